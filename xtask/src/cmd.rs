//! Running external commands, each echoed first so the user sees exactly what happens.

use crate::{Error, Result};
use std::process::Command;

/// Prints the command as a shell would read it.
pub fn echo(c: &Command) {
    let mut line = String::from("$");
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            let v = v.to_string_lossy();
            // CARGO_ENCODED_RUSTFLAGS separates flags with 0x1f: bash's $'…' keeps the line
            // copy-pasteable.
            let shown = if v.contains('\x1f') {
                format!(
                    "$'{}'",
                    v.replace('\\', "\\\\")
                        .replace('\'', "\\'")
                        .replace('\x1f', "\\x1f")
                )
            } else {
                shell_quote(&v)
            };
            line.push_str(&format!(" {}={shown}", k.to_string_lossy()));
        }
    }
    line.push(' ');
    line.push_str(&shell_quote(&c.get_program().to_string_lossy()));
    for a in c.get_args() {
        line.push(' ');
        line.push_str(&shell_quote(&a.to_string_lossy()));
    }
    eprintln!("{line}");
}

/// Quotes a word for a POSIX shell if it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Echoes and runs `c`, failing with `what` if it does not exit 0.
pub fn run(c: &mut Command, what: &str) -> Result<()> {
    echo(c);
    let status = c
        .status()
        .map_err(|e| Error(format!("{what}: cannot start {:?}: {e}", c.get_program())))?;
    if !status.success() {
        crate::bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Whether `program` is on `PATH`.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    which_in(program, &std::env::var_os("PATH")?)
}

/// Where `program` is on the search path `path`, if it is.
pub fn which_in(program: &str, path: &std::ffi::OsStr) -> Option<std::path::PathBuf> {
    std::env::split_paths(path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("cargo"), "cargo");
        assert_eq!(shell_quote("name=big world"), "'name=big world'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
