//! Formatting and clippy, on the host crates and on the applications for every platform (the
//! image-only code, such as the boot assembly wrappers, only compiles with a platform).

use crate::target::{TRIPLE, Target};
use crate::{Result, cmd};

/// Runs `cargo fmt --check` and clippy (warnings are errors).
pub fn run() -> Result<()> {
    let root = crate::root();
    let mut fmt = crate::build::cargo();
    fmt.current_dir(&root)
        .args(["fmt", "--all", "--", "--check"]);
    cmd::run(&mut fmt, "formatting check (fix with `cargo fmt --all`)")?;

    // `fata` and the applications only build with a platform (or, for `fata`, as its own
    // unit tests), so they are linted separately below.
    let examples = crate::build::examples(&root);
    let mut host = crate::build::cargo();
    host.current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--exclude",
        "fata",
    ]);
    for e in &examples {
        host.args(["--exclude", e]);
    }
    host.args(["--", "-D", "warnings"]);
    cmd::run(&mut host, "clippy on the host crates")?;

    let mut rt = crate::build::cargo();
    rt.current_dir(&root).args([
        "clippy",
        "--package",
        "fata",
        "--tests",
        // Every optional part of the runtime: networking, TLS, ACME (with the store) and the
        // web PKI roots.
        "--features",
        "acme,web-pki-roots,log-fields",
        "--",
        "-D",
        "warnings",
    ]);
    cmd::run(&mut rt, "clippy on the runtime's unit tests")?;

    for t in Target::ALL {
        let mut c = crate::build::cargo();
        c.current_dir(&root).arg("clippy");
        // The image builds' flags, so linting does not invalidate their target directory.
        if !t.rustflags().is_empty() {
            c.env(
                "CARGO_ENCODED_RUSTFLAGS",
                crate::build::encoded_rustflags(t.rustflags()),
            );
            c.env_remove("RUSTFLAGS");
        }
        for e in &examples {
            c.args(["--package", e]);
        }
        c.args(["--features", t.feature(), "--target", TRIPLE])
            .arg("--target-dir")
            .arg(t.target_dir(&root))
            .args(["--", "-D", "warnings"]);
        cmd::run(
            &mut c,
            &format!("clippy on the applications for {}", t.name()),
        )?;
    }
    // `http` without its default features (no HTTPS) is a different program: lint it too,
    // where `--no-default-features` builds go (`build::build_minimal`).
    let t = Target::Virtio;
    let mut c = crate::build::cargo();
    c.current_dir(&root)
        .arg("clippy")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            crate::build::encoded_rustflags(t.rustflags()),
        )
        .env_remove("RUSTFLAGS")
        .args(["--package", "http", "--no-default-features"])
        .args(["--features", t.feature(), "--target", TRIPLE])
        .arg("--target-dir")
        .arg(crate::build::minimal_target_dir(&root, t))
        .args(["--", "-D", "warnings"]);
    cmd::run(&mut c, "clippy on http without its default features")?;
    Ok(())
}
