//! The post-link image check on real images: a good image passes; the check is what rejects a
//! hosted executable (see xtask's unit tests for the individual refusals).
#![forbid(unsafe_code)]

use fata_tests::Target;

#[test]
fn built_virtio_image_is_static_fixed_address_with_pvh_note_and_no_libc() {
    let img = fata_tests::image(Target::Virtio, "hello");
    let r = xtask::elfcheck::check(&img.path).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(
        r.warnings.is_empty(),
        "a check was skipped: {:?}",
        r.warnings
    );
    let (lo, _) = r.load_range.unwrap();
    assert_eq!(lo, 0x10_0000);
    assert_eq!(r.pvh_entry, Some(0x10_0000));
}

#[test]
fn the_unix_build_of_the_same_app_is_not_a_valid_image() {
    let img = fata_tests::image(Target::Unix, "hello");
    let r = xtask::elfcheck::check(&img.path).unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("no PVH entry note")),
        "{:?}",
        r.problems
    );
}

#[test]
fn unknown_example_is_refused_with_the_list_of_examples() {
    let opts = xtask::build::BuildOpts {
        target: Target::Virtio,
        example: "helo".into(),
        release: false,
    };
    let e = xtask::build::build(&opts).unwrap_err().0;
    assert!(
        e.contains("unknown example `helo`") && e.contains("hello"),
        "{e}"
    );
}
