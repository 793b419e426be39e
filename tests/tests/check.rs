//! `cargo xtask check` on the fixture applications in `tests/fixtures/` (a workspace of their
//! own): a clean app passes; a dependency using `std::fs`, one calling libc under
//! `cfg(unix)`, and one whose `std` feature another crate turns on are each caught, with the
//! crate, what it uses, the dependency path and (for features) who enabled it.
#![forbid(unsafe_code)]

use xtask::check::{CheckOpts, TargetReport, check};
use xtask::target::Target;

fn run(fixture: &str) -> Vec<TargetReport> {
    let manifest = xtask::root()
        .join("tests/fixtures")
        .join(fixture)
        .join("Cargo.toml");
    check(&CheckOpts {
        manifest,
        verbose: false,
    })
    .unwrap_or_else(|e| panic!("check {fixture}: {e}"))
}

fn virtio(reports: &[TargetReport]) -> &TargetReport {
    reports.iter().find(|r| r.target == Target::Virtio).unwrap()
}

#[test]
fn a_clean_app_runs_on_every_target() {
    let r = run("clean");
    assert!(r.iter().all(|t| t.ok), "{}", xtask::check::render(&r, true));
}

#[test]
fn every_detector_ran_on_every_crate_of_a_clean_app() {
    // No crate root, rlib or toolchain library left unread, no message left undecoded.
    let r = run("clean");
    assert!(
        r.iter().all(|t| t.warnings.is_empty()),
        "{}",
        xtask::check::render(&r, false)
    );
}

#[test]
fn a_dependency_using_std_fs_is_named_with_its_path() {
    let r = run("fs_app");
    let v = virtio(&r);
    assert!(!v.ok);
    assert_eq!(v.findings.len(), 1, "{}", xtask::check::render(&r, false));
    let f = &v.findings[0];
    assert_eq!(f.krate, "uses-fs");
    assert_eq!(f.path, ["fs_app", "middle", "uses-fs"]);
    assert!(
        f.uses.iter().any(|u| u.contains("std::fs::read_to_string")),
        "{:?}",
        f.uses
    );
    assert!(
        r.iter().find(|t| t.target == Target::Unix).unwrap().ok,
        "unix builds with std"
    );
}

#[test]
fn libc_pulled_in_through_cfg_unix_is_caught() {
    let r = run("libc_app");
    let v = virtio(&r);
    assert!(!v.ok);
    let f = v
        .findings
        .iter()
        .find(|f| f.krate == "unix-libc")
        .expect("unix-libc named");
    assert_eq!(f.path, ["libc_app", "unix-libc"]);
    assert!(
        f.uses.iter().any(|u| u.contains("C library: getpid")),
        "{:?}",
        f.uses
    );
}

#[test]
fn a_std_feature_turned_on_by_another_crate_is_caught_and_named() {
    let r = run("feature_app");
    let v = virtio(&r);
    let f = v
        .findings
        .iter()
        .find(|f| f.krate == "featured")
        .expect("featured named");
    assert_eq!(f.path, ["feature_app", "enabler", "featured"]);
    assert_eq!(
        f.feature,
        Some(("std".to_string(), vec!["enabler".to_string()]))
    );
    let text = xtask::check::render(&r, false);
    assert!(
        text.contains("turn off feature `std` of `featured`: it is enabled by `enabler`"),
        "{text}"
    );
}

#[test]
fn build_explains_the_failure_instead_of_printing_linker_errors() {
    let manifest = xtask::root().join("tests/fixtures/fs_app/Cargo.toml");
    let e = xtask::build::build_manifest(&manifest, Target::Virtio, false)
        .unwrap_err()
        .0;
    assert!(e.contains("a dependency needs the host OS"), "{e}");
    assert!(
        e.contains("crate `uses-fs`") && e.contains("fs_app -> middle -> uses-fs"),
        "{e}"
    );
    assert!(
        !e.contains("undefined reference"),
        "the raw linker output leaked: {e}"
    );
}

#[test]
fn the_examples_pass_the_check() {
    for ex in ["http", "hello"] {
        let manifest = xtask::root().join("examples").join(ex).join("Cargo.toml");
        let r = check(&CheckOpts {
            manifest,
            verbose: false,
        })
        .unwrap();
        assert!(
            r.iter().all(|t| t.ok),
            "{ex}: {}",
            xtask::check::render(&r, true)
        );
    }
}
