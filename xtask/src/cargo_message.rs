//! cargo's machine-readable messages (`--message-format json…`): one JSON object per line on
//! cargo's standard output, told apart by their `reason`.
//!
//! Host-side tool code: it decodes text it is given and touches nothing else. Each line is
//! parsed as a whole by [`crate::json`]; the messages the xtask uses are decoded into
//! [`Message`] with their fields checked, so a message that lacks a field (or has one of the
//! wrong type) is an error that names the field, not a library silently missing from the
//! analysis. Lines that are not JSON at all (a build script or proc-macro printing to stdout)
//! are the caller's to keep as text.

use crate::json::{self, Value};
use std::path::PathBuf;

/// A message the xtask acts on.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// `compiler-artifact`: a target was built (or found fresh).
    Artifact(Artifact),
    /// `compiler-message`: a diagnostic of the compiler, with its rendered text (ANSI colours
    /// included with `json-diagnostic-rendered-ansi`; `None` if cargo sent `null`).
    CompilerMessage {
        /// The package the diagnostic is about.
        package_id: String,
        /// The text the compiler would have printed.
        rendered: Option<String>,
    },
    /// `build-finished`: the last message of a build.
    BuildFinished {
        /// Whether the build succeeded.
        success: bool,
    },
    /// Any other reason (`build-script-executed`, `timing-info`, …): not used by the xtask.
    Other {
        /// The `reason` field.
        reason: String,
    },
}

/// The fields of a `compiler-artifact` message that the xtask uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// `package_id`, e.g. `registry+https://…#serde@1.0.0` (see [`package_name`]).
    pub package_id: String,
    /// `target.name`: the crate name (`-` turned into `_`).
    pub target_name: String,
    /// `target.kind`: `lib`, `rlib`, `bin`, `proc-macro`, `custom-build`, …
    pub kind: Vec<String>,
    /// `target.src_path`: the crate root.
    pub src_path: PathBuf,
    /// `features`: the features the package was built with.
    pub features: Vec<String>,
    /// `filenames`: the files produced (`.rlib`, `.rmeta`, executables, …).
    pub filenames: Vec<PathBuf>,
}

impl Artifact {
    /// The name of the package, taken from [`Artifact::package_id`].
    pub fn package_name(&self) -> String {
        package_name(&self.package_id)
    }

    /// Whether this is a Rust library that other crates link (`lib` or `rlib`; not a
    /// proc-macro, which runs in the compiler and is never linked into the program).
    pub fn is_linkable_lib(&self) -> bool {
        self.kind.iter().any(|k| k == "lib" || k == "rlib")
    }
}

/// Why a line of cargo's output could not be decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum MessageError {
    /// The line is not JSON.
    Json(json::ParseError),
    /// The line is JSON, but not an object with a string `reason`.
    NoReason,
    /// A field the message must have is missing or has the wrong type.
    Field {
        /// The message's `reason`.
        reason: String,
        /// The field, as a path (`target.src_path`).
        field: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageError::Json(e) => e.fmt(f),
            MessageError::NoReason => f.write_str("not an object with a string `reason` field"),
            MessageError::Field {
                reason,
                field,
                expected,
            } => write!(
                f,
                "`{reason}` message: field `{field}` is missing or not {expected}"
            ),
        }
    }
}

impl std::error::Error for MessageError {}

impl Message {
    /// Decodes one line of cargo's JSON output.
    pub fn parse(line: &str) -> Result<Message, MessageError> {
        let v = json::parse(line).map_err(MessageError::Json)?;
        let reason = v
            .get("reason")
            .and_then(Value::as_str)
            .ok_or(MessageError::NoReason)?
            .to_string();
        let field = |field, expected| MessageError::Field {
            reason: reason.clone(),
            field,
            expected,
        };
        let string = |v: &Value, name| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| field(name, "a string"))
        };
        let strings = |v: Option<&Value>, name| {
            v.and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .map(|s| s.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| field(name, "an array of strings"))
        };
        let missing = Value::Null;
        match reason.as_str() {
            "compiler-artifact" => {
                let target = v.get("target").unwrap_or(&missing);
                Ok(Message::Artifact(Artifact {
                    package_id: string(v.get("package_id").unwrap_or(&missing), "package_id")?,
                    target_name: string(target.get("name").unwrap_or(&missing), "target.name")?,
                    kind: strings(target.get("kind"), "target.kind")?,
                    src_path: string(
                        target.get("src_path").unwrap_or(&missing),
                        "target.src_path",
                    )?
                    .into(),
                    features: strings(v.get("features"), "features")?,
                    filenames: strings(v.get("filenames"), "filenames")?
                        .into_iter()
                        .map(PathBuf::from)
                        .collect(),
                }))
            }
            "compiler-message" => {
                let rendered = match v.get("message").and_then(|m| m.get("rendered")) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Null) => None,
                    _ => return Err(field("message.rendered", "a string or null")),
                };
                Ok(Message::CompilerMessage {
                    package_id: string(v.get("package_id").unwrap_or(&missing), "package_id")?,
                    rendered,
                })
            }
            "build-finished" => Ok(Message::BuildFinished {
                success: v
                    .get("success")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| field("success", "a boolean"))?,
            }),
            _ => Ok(Message::Other { reason }),
        }
    }
}

/// The package name in a cargo package id: `registry+…#name@1.0`, `path+file:///x/name#1.0`
/// (the name is the last path segment when the fragment has none), or the older
/// `name 1.0 (source)` form.
pub fn package_name(id: &str) -> String {
    if !id.contains('#')
        && let Some((name, _)) = id.split_once(' ')
    {
        return name.to_string();
    }
    let (url, frag) = id.rsplit_once('#').unwrap_or((id, ""));
    match frag.split_once('@') {
        Some((name, _)) => name.to_string(),
        None => url.rsplit('/').next().unwrap_or(url).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `compiler-artifact` message as cargo 1.95 prints it, with a path that needs escaping
    /// (a quote, a backslash, a non-ASCII letter as `\u` escape, an emoji as a surrogate pair).
    const ARTIFACT: &str = r#"{"reason":"compiler-artifact","package_id":"path+file:///work/we%22ird/crates/uses-fs#0.1.0","manifest_path":"/work/we\"ird/crates/uses-fs/Cargo.toml","target":{"kind":["lib"],"crate_types":["lib"],"name":"uses_fs","src_path":"/work/we\"ird\\dir/caf\u00e9/\ud83d\ude00/src/lib.rs","edition":"2024","doc":true,"doctest":true,"test":true},"profile":{"opt_level":"0","debuginfo":2,"debug_assertions":true,"overflow_checks":true,"test":false},"features":["alloc","default"],"filenames":["/work/we\"ird/target/x86_64-unknown-linux-gnu/debug/deps/libuses_fs-c10d419c4f968aea.rlib","/work/we\"ird/target/x86_64-unknown-linux-gnu/debug/deps/libuses_fs-c10d419c4f968aea.rmeta"],"executable":null,"fresh":true}"#;

    #[test]
    fn an_artifact_message_gives_its_fields_unescaped() {
        let Message::Artifact(a) = Message::parse(ARTIFACT).unwrap() else {
            panic!("not an artifact");
        };
        assert_eq!(a.package_name(), "uses-fs");
        assert_eq!(a.target_name, "uses_fs");
        assert_eq!(a.kind, ["lib"]);
        assert!(a.is_linkable_lib());
        assert_eq!(
            a.src_path,
            PathBuf::from("/work/we\"ird\\dir/café/😀/src/lib.rs")
        );
        assert_eq!(a.features, ["alloc", "default"]);
        assert_eq!(a.filenames.len(), 2);
        assert_eq!(
            a.filenames[0],
            PathBuf::from(
                "/work/we\"ird/target/x86_64-unknown-linux-gnu/debug/deps/libuses_fs-c10d419c4f968aea.rlib"
            )
        );
    }

    #[test]
    fn a_proc_macro_artifact_is_not_a_linkable_library() {
        let line = r#"{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#serde_derive@1.0.219","manifest_path":"/r/serde_derive-1.0.219/Cargo.toml","target":{"kind":["proc-macro"],"crate_types":["proc-macro"],"name":"serde_derive","src_path":"/r/serde_derive-1.0.219/src/lib.rs","edition":"2015","doc":true,"doctest":true,"test":true},"profile":{"opt_level":"0","debuginfo":0,"debug_assertions":true,"overflow_checks":true,"test":false},"features":["default"],"filenames":["/t/debug/deps/libserde_derive-0e5f2a0c3bb1b2c4.so"],"executable":null,"fresh":false}"#;
        let Message::Artifact(a) = Message::parse(line).unwrap() else {
            panic!("not an artifact");
        };
        assert_eq!(a.package_name(), "serde_derive");
        assert!(!a.is_linkable_lib());
    }

    #[test]
    fn a_compiler_message_keeps_rendered_text_with_braces_quotes_and_colours() {
        // The rendered text contains what a substring search would trip over: braces, quotes,
        // `"reason":"compiler-artifact"`, `"kind":["lib"]`, and ANSI colour escapes.
        let line = r#"{"reason":"compiler-message","package_id":"path+file:///w/app#0.1.0","manifest_path":"/w/app/Cargo.toml","target":{"kind":["bin"],"crate_types":["bin"],"name":"app","src_path":"/w/app/src/main.rs","edition":"2024","doc":true,"doctest":false,"test":true},"message":{"rendered":"\u001b[0m\u001b[1m\u001b[33mwarning\u001b[0m: unused variable: `x`\n --> src/main.rs:3:9\n  |\n3 |     let x = format!(\"{{\\\"reason\\\":\\\"compiler-artifact\\\",\\\"kind\\\":[\\\"lib\\\"]}}\");\n  |         ^ help: `_x`\n","$message_type":"diagnostic","children":[{"children":[],"code":null,"level":"help","message":"if this is intentional, prefix it with an underscore: `_x`","rendered":null,"spans":[{"byte_end":44,"byte_start":43,"column_end":10,"column_start":9,"expansion":null,"file_name":"src/main.rs","is_primary":true,"label":null,"line_end":3,"line_start":3,"suggested_replacement":"_x","suggestion_applicability":"MaybeIncorrect","text":[{"highlight_end":10,"highlight_start":9,"text":"    let x = 1;"}]}]}],"code":{"code":"unused_variables","explanation":null},"level":"warning","message":"unused variable: `x`","spans":[]}}"#;
        let m = Message::parse(line).unwrap();
        let Message::CompilerMessage {
            package_id,
            rendered,
        } = m
        else {
            panic!("not a compiler message: {m:?}");
        };
        assert_eq!(package_id, "path+file:///w/app#0.1.0");
        let r = rendered.unwrap();
        assert!(r.starts_with("\u{1b}[0m\u{1b}[1m\u{1b}[33mwarning\u{1b}[0m: unused variable"));
        assert!(
            r.contains(r#"format!("{{\"reason\":\"compiler-artifact\",\"kind\":[\"lib\"]}}");"#),
            "{r}"
        );
        assert!(r.ends_with("help: `_x`\n"));
    }

    #[test]
    fn build_finished_and_other_reasons_are_told_apart() {
        assert_eq!(
            Message::parse(r#"{"reason":"build-finished","success":false}"#),
            Ok(Message::BuildFinished { success: false })
        );
        assert_eq!(
            Message::parse(
                r#"{"reason":"build-script-executed","package_id":"p#0.1.0","linked_libs":[],"linked_paths":[],"cfgs":["has_x"],"env":[["K","{\"v\": 1}"]],"out_dir":"/t/out"}"#
            ),
            Ok(Message::Other {
                reason: "build-script-executed".into()
            })
        );
    }

    #[test]
    fn a_message_missing_a_field_names_it() {
        let no_filenames = ARTIFACT.replace(r#""filenames":"#, r#""filenames_":"#);
        assert_eq!(
            Message::parse(&no_filenames).unwrap_err().to_string(),
            "`compiler-artifact` message: field `filenames` is missing or not an array of strings"
        );
        let src_number = ARTIFACT.replace(
            r#""src_path":"/work/we\"ird\\dir/caf\u00e9/\ud83d\ude00/src/lib.rs""#,
            r#""src_path":7"#,
        );
        assert_eq!(
            Message::parse(&src_number).unwrap_err(),
            MessageError::Field {
                reason: "compiler-artifact".into(),
                field: "target.src_path",
                expected: "a string"
            }
        );
        assert_eq!(
            Message::parse(r#"{"success":true}"#),
            Err(MessageError::NoReason)
        );
        assert!(matches!(
            Message::parse("   Compiling foo v0.1.0"),
            Err(MessageError::Json(_))
        ));
    }

    #[test]
    fn package_names_come_out_of_package_ids() {
        assert_eq!(
            package_name("registry+https://github.com/rust-lang/crates.io-index#x86_64@0.15.5"),
            "x86_64"
        );
        assert_eq!(
            package_name("path+file:///work/main/boot#fata-boot@0.1.0"),
            "fata-boot"
        );
        assert_eq!(
            package_name("path+file:///work/t/crates/featured#0.1.0"),
            "featured"
        );
        assert_eq!(
            package_name("featured 0.1.0 (path+file:///work/t/crates/featured)"),
            "featured"
        );
    }
}
