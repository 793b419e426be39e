//! Global symbols of static archives — rlibs, `libgcc.a` — read with the `object` crate.
//!
//! Host-side tool code: it reads the archive it is given and nothing else, and needs no
//! external tool (it used to run binutils' `nm`, and a missing `nm` silently turned the
//! object-code detector of `cargo xtask check` off). An archive or member that cannot be read
//! is an error naming the file and the member: the caller decides how loudly to say so.

use object::{FileKind, Object, ObjectSymbol};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The global symbols of an archive's object files, as `nm -g` lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Symbols {
    /// Defined in some member (functions, data, common and absolute symbols; weak ones too).
    pub defined: BTreeSet<String>,
    /// Referenced by some member and not defined there. Weak references are left out: they
    /// are optional by definition and resolve to null when nothing defines them.
    pub undefined: BTreeSet<String>,
}

/// Why an archive's symbols could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolsError {
    /// The archive.
    pub path: PathBuf,
    /// The member at fault, if the archive itself was readable.
    pub member: Option<String>,
    /// What went wrong.
    pub reason: String,
}

impl std::fmt::Display for SymbolsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(m) = &self.member {
            write!(f, " (member `{m}`)")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for SymbolsError {}

/// The name rustc gives the metadata member of an rlib. Current rustc wraps the metadata in an
/// object file (read like any other member, it has no global symbols); older ones stored it raw.
const RLIB_METADATA: &str = "lib.rmeta";

/// Reads the global symbols of the archive at `path`.
pub fn archive_symbols(path: &Path) -> Result<Symbols, SymbolsError> {
    let data = std::fs::read(path).map_err(|e| SymbolsError {
        path: path.to_path_buf(),
        member: None,
        reason: e.to_string(),
    })?;
    archive_symbols_in(&data).map_err(|(member, reason)| SymbolsError {
        path: path.to_path_buf(),
        member,
        reason,
    })
}

/// Reads the global symbols of an archive held in memory; errors are (member, reason).
fn archive_symbols_in(data: &[u8]) -> Result<Symbols, (Option<String>, String)> {
    let archive = object::read::archive::ArchiveFile::parse(data)
        .map_err(|e| (None, format!("not a static archive: {e}")))?;
    if archive.is_thin() {
        return Err((
            None,
            "a thin archive (its members live in other files)".into(),
        ));
    }
    let mut syms = Symbols::default();
    for member in archive.members() {
        let member = member.map_err(|e| (None, format!("corrupt member header: {e}")))?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        let fail = |reason: String| (Some(name.clone()), reason);
        let bytes = member
            .data(data)
            .map_err(|e| fail(format!("unreadable: {e}")))?;
        match FileKind::parse(bytes) {
            Ok(FileKind::Elf32 | FileKind::Elf64) => {
                let file = object::File::parse(bytes)
                    .map_err(|e| fail(format!("not a readable ELF object: {e}")))?;
                object_symbols(&file, &mut syms).map_err(fail)?;
            }
            Ok(kind) => return Err(fail(format!("an object of another format ({kind:?})"))),
            Err(_) if name == RLIB_METADATA => {}
            Err(_)
                if bytes.starts_with(b"BC\xC0\xDE") || bytes.starts_with(b"\xDE\xC0\x17\x0B") =>
            {
                return Err(fail(
                    "LLVM bitcode, not machine code (built with `-C linker-plugin-lto`?): its symbols cannot be read".into(),
                ));
            }
            Err(_) => return Err(fail("not an object file".into())),
        }
    }
    Ok(syms)
}

/// Adds the global symbols of one object file.
fn object_symbols(file: &object::File<'_>, syms: &mut Symbols) -> Result<(), String> {
    for s in file.symbols() {
        if s.is_local() {
            continue;
        }
        let name = s
            .name_bytes()
            .map_err(|e| format!("symbol {}: {e}", s.index().0))?;
        if name.is_empty() {
            continue;
        }
        let name = String::from_utf8_lossy(name).into_owned();
        if !s.is_undefined() {
            syms.defined.insert(name);
        } else if !s.is_weak() {
            syms.undefined.insert(name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let e = archive_symbols(Path::new("/nonexistent/libx.rlib")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/libx.rlib: "), "{e}");
        let e = archive_symbols_in(b"hello").unwrap_err();
        assert!(e.1.contains("not a static archive"), "{e:?}");
    }

    /// An archive with one member, in the GNU format rustc writes.
    fn archive(name: &str, member: &[u8]) -> Vec<u8> {
        let mut a = b"!<arch>\n".to_vec();
        a.extend(
            format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                format!("{name}/"),
                0,
                0,
                0,
                644,
                member.len()
            )
            .bytes(),
        );
        a.extend(member);
        if member.len() % 2 == 1 {
            a.push(b'\n');
        }
        a
    }

    #[test]
    fn a_member_that_is_no_object_is_an_error_naming_it() {
        let e = archive_symbols_in(&archive("x.o", b"not an object")).unwrap_err();
        assert_eq!(e, (Some("x.o".into()), "not an object file".into()));
        let e = archive_symbols_in(&archive("y.o", b"BC\xC0\xDE\x35\x14\0\0")).unwrap_err();
        assert_eq!(e.0.as_deref(), Some("y.o"));
        assert!(e.1.contains("LLVM bitcode"), "{e:?}");
        // Raw metadata of older rustc is skipped; an empty archive has no symbols.
        assert_eq!(
            archive_symbols_in(&archive("lib.rmeta", b"rust\0\0\0\x08")),
            Ok(Symbols::default())
        );
        assert_eq!(archive_symbols_in(b"!<arch>\n"), Ok(Symbols::default()));
    }

    /// A scratch directory for one test, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("xtask-symbols-{}-{test}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    fn run(c: &mut std::process::Command) {
        let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn an_rlib_gives_its_defined_and_undefined_global_symbols() {
        let dir = Scratch::new("rlib");
        let src = dir.0.join("symprobe.rs");
        std::fs::write(
            &src,
            r#"#![no_std]
unsafe extern "C" {
    fn symprobe_needed(x: u32) -> u32;
}
#[unsafe(no_mangle)]
pub extern "C" fn symprobe_defined(x: u32) -> u32 {
    // SAFETY: a test fixture, never linked into a program.
    unsafe { symprobe_needed(x) }
}
#[unsafe(no_mangle)]
pub static SYMPROBE_DATA: u32 = 7;
pub fn uses_std_free_formatting(x: u32) -> bool {
    core::hint::black_box(x) == 3
}
"#,
        )
        .unwrap();
        run(std::process::Command::new("rustc")
            .args(["--crate-type=rlib", "--edition=2024", "-Cpanic=abort"])
            .arg("--out-dir")
            .arg(&dir.0)
            .arg(&src));
        let syms = archive_symbols(&dir.0.join("libsymprobe.rlib")).unwrap();
        assert!(syms.defined.contains("symprobe_defined"), "{syms:?}");
        assert!(syms.defined.contains("SYMPROBE_DATA"), "{syms:?}");
        assert!(
            syms.defined
                .iter()
                .any(|s| s.starts_with("_ZN8symprobe24uses_std_free_formatting")),
            "mangled Rust functions are listed: {syms:?}"
        );
        assert!(syms.undefined.contains("symprobe_needed"), "{syms:?}");
        assert!(!syms.defined.contains("symprobe_needed"), "{syms:?}");
    }

    #[test]
    fn weak_references_and_local_symbols_are_left_out_like_nm_g() {
        let dir = Scratch::new("c");
        let src = dir.0.join("probe.c");
        std::fs::write(
            &src,
            "extern int needed(int);\n\
             extern int optional(int) __attribute__((weak));\n\
             int defined_fn(int x) { return needed(x) + (optional ? optional(x) : 0); }\n\
             __attribute__((weak)) int weak_defined(void) { return 1; }\n\
             static int helper(int x) { return x * 2; }\n\
             int uses_helper(int x) { return helper(x); }\n\
             int common_var;\n",
        )
        .unwrap();
        let obj = dir.0.join("probe.o");
        run(std::process::Command::new("cc")
            .args(["-c", "-O0", "-fcommon", "-o"])
            .arg(&obj)
            .arg(&src));
        let syms = archive_symbols_in(&archive("probe.o", &std::fs::read(&obj).unwrap())).unwrap();
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            syms.defined,
            set(&["common_var", "defined_fn", "uses_helper", "weak_defined"])
        );
        // (A position-independent object also references `_GLOBAL_OFFSET_TABLE_`.)
        assert!(syms.undefined.contains("needed"), "{syms:?}");
        assert!(!syms.undefined.contains("optional"), "{syms:?}");
        assert!(!syms.defined.contains("optional"), "{syms:?}");
    }
}
