//! `cargo fata` from directories outside fata's checkout, as an app author meets it: `new` for
//! each template, then build, boot on `virtio` and `unix`, the app's own `cargo test`, `check`
//! naming a bad dependency; a crate written by hand; and the refusals.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh directory outside the repository.
fn outside(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fata-apps-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `cargo fata ARGS` in `dir` (the `cargo-fata` binary of this checkout); (success,
/// stdout + stderr).
fn cargo_fata(dir: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO"))
        .current_dir(dir)
        .args(["run", "-q", "--manifest-path"])
        .arg(xtask::root().join("Cargo.toml"))
        .args(["-p", "xtask", "--bin", "cargo-fata", "--", "fata"])
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[track_caller]
fn ok(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = cargo_fata(dir, args);
    assert!(ok, "cargo fata {args:?} in {}:\n{out}", dir.display());
    out
}

#[track_caller]
fn fails(dir: &Path, args: &[&str], says: &str) {
    let (ok, out) = cargo_fata(dir, args);
    assert!(!ok, "cargo fata {args:?} succeeded:\n{out}");
    assert!(out.contains(says), "expected `{says}` in:\n{out}");
}

fn new_app(dir: &Path, name: &str, template: &str) -> PathBuf {
    ok(dir, &["new", name, "--template", template]);
    dir.join(name)
}

#[test]
fn the_hello_template_boots_on_virtio_and_unix_and_its_tests_pass() {
    let app = new_app(&outside("hello"), "greeter", "hello");
    let out = ok(&app, &["run", "--", "name=author"]);
    assert!(out.contains("Hello, author!"), "{out}");
    let out = ok(&app, &["run", "--target", "unix"]);
    assert!(out.contains("Hello, world!"), "{out}");
    let out = ok(&app, &["test"]);
    assert!(out.contains("test result: ok. 2 passed"), "{out}");
    // Each platform builds into the app's own target/fata/<platform>.
    assert!(app.join("target/fata/virtio").is_dir() && app.join("target/fata/unix").is_dir());
}

#[test]
fn the_http_and_kv_templates_pass_their_own_tests() {
    let dir = outside("http-kv");
    let web = new_app(&dir, "web", "http");
    let out = ok(&web, &["test"]);
    assert!(out.contains("test result: ok. 2 passed"), "{out}");
    let counter = new_app(&dir, "counter", "kv");
    let out = ok(&counter, &["test"]);
    assert!(out.contains("test result: ok. 1 passed"), "{out}");
}

#[test]
fn check_names_a_dependency_that_needs_the_host_os() {
    let dir = outside("check");
    // A library that reads a file: it needs the host OS.
    let lib = dir.join("uses-fs");
    std::fs::create_dir_all(lib.join("src")).unwrap();
    std::fs::write(
        lib.join("Cargo.toml"),
        "[package]\nname = \"uses-fs\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        lib.join("src/lib.rs"),
        "pub fn read_config() -> usize {\n    std::fs::read_to_string(\"/etc/fata.conf\").map(|s| s.len()).unwrap_or(0)\n}\n",
    )
    .unwrap();
    let app = new_app(&dir, "checked", "hello");
    let manifest = app.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "[dev-dependencies]",
        &format!(
            "uses-fs = {{ path = \"{}\" }}\n\n[dev-dependencies]",
            lib.display()
        ),
    );
    std::fs::write(&manifest, text).unwrap();
    let main = app.join("src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap().replace(
        "    fata::println!(",
        "    let _ = uses_fs::read_config();\n    fata::println!(",
    );
    std::fs::write(&main, text).unwrap();
    let (ok, out) = cargo_fata(&app, &["check"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("uses-fs") && out.contains("checked -> uses-fs"),
        "{out}"
    );
}

#[test]
fn a_crate_written_by_hand_builds_and_runs_without_further_edits() {
    let dir = outside("byhand");
    let st = Command::new(env!("CARGO"))
        .current_dir(&dir)
        .args(["new", "-q", "byhand"])
        .status()
        .unwrap();
    assert!(st.success());
    let app = dir.join("byhand");
    let mut manifest = std::fs::read_to_string(app.join("Cargo.toml")).unwrap();
    manifest.push_str(&format!(
        "fata = {{ path = \"{}\" }}\n",
        xtask::root().join("kernel/rt").display()
    ));
    std::fs::write(app.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(
        app.join("src/main.rs"),
        "#![no_std]\n#![no_main]\n\n#[fata::main]\nasync fn main(_rt: fata::Runtime) -> Result<(), &'static str> {\n    fata::println!(\"by hand\");\n    Ok(())\n}\n",
    )
    .unwrap();
    let out = ok(&app, &["run"]);
    assert!(
        out.contains("by hand") && out.contains("fata: exit 0"),
        "{out}"
    );
}

#[test]
fn bad_places_and_crates_get_errors_that_say_what_to_do() {
    let dir = outside("bad");
    fails(&dir, &["build"], "is not inside a Rust crate");
    // A crate that depends on fata but has no #[fata::main].
    let app = new_app(&dir, "nomain", "hello");
    std::fs::write(
        app.join("src/main.rs"),
        "#![no_std]\n#![no_main]\nfn unused() {}\n",
    )
    .unwrap();
    fails(&app, &["build"], "has no `#[fata::main]`");
    // A package whose binaries have other names than the package.
    let multi = new_app(&dir, "multi", "hello");
    let m = std::fs::read_to_string(multi.join("Cargo.toml"))
        .unwrap()
        .replace("name = \"multi\"\npath", "name = \"first\"\npath")
        + "\n[[bin]]\nname = \"second\"\npath = \"src/main.rs\"\n";
    std::fs::write(multi.join("Cargo.toml"), m).unwrap();
    fails(
        &multi,
        &["build"],
        "binaries first, second but none named `multi`",
    );
    // A workspace with two apps: -p chooses, otherwise the error lists them.
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    new_app(&ws, "one", "hello");
    new_app(&ws, "two", "hello");
    for a in ["one", "two"] {
        let p = ws.join(a).join("Cargo.toml");
        let t = std::fs::read_to_string(&p)
            .unwrap()
            .replace("# An app is its own workspace.\n[workspace]\n", "");
        std::fs::write(&p, t).unwrap();
    }
    std::fs::write(
        ws.join("Cargo.toml"),
        "[workspace]\nmembers = [\"one\", \"two\"]\nresolver = \"2\"\n",
    )
    .unwrap();
    fails(&ws, &["build"], "this workspace has 2 apps: one, two");
    let out = ok(&ws, &["run", "-p", "two", "--", "name=two"]);
    assert!(out.contains("Hello, two!"), "{out}");
    fails(&dir, &["new", "9lives"], "is not a crate name");
    fails(
        &dir,
        &["new", "x", "--template", "gui"],
        "unknown template `gui`",
    );
}
