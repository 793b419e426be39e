use super::*;
use fata_hal::mock::{MockEntropy, MockPlatform};

fn zero() -> u64 {
    0
}

fn no_wall() -> Option<u64> {
    None
}

fn boxed(v: Vec<MockEntropy>) -> Vec<Box<dyn EntropySource>> {
    v.into_iter().map(|s| Box::new(s) as _).collect()
}

/// The first 64 bytes of a pool seeded from `sources` with a clock stuck at zero.
fn output(sources: Vec<MockEntropy>) -> [u8; 64] {
    let mut p = Pool::seed(boxed(sources), zero, None);
    let mut out = [0u8; 64];
    p.fill(&mut out, zero, no_wall);
    out
}

#[test]
fn the_seed_depends_on_every_sources_bytes_and_on_nothing_else_when_time_stands_still() {
    let a = || MockEntropy::new("a", 1);
    let base = output(vec![a()]);
    assert_eq!(output(vec![a()]), base, "same inputs, same stream");
    let two = output(vec![a(), MockEntropy::new("b", 2)]);
    assert_ne!(two, base, "a second source changes it");
    assert_ne!(
        output(vec![a(), MockEntropy::new("b", 3)]),
        two,
        "so do its bytes"
    );
    assert_ne!(
        output(vec![a(), MockEntropy::new("c", 2)]),
        two,
        "and its name"
    );
    assert_ne!(output(vec![]), base);
}

#[test]
fn failing_sources_are_left_out_and_broken_ones_dropped_for_good() {
    let p = Pool::seed(
        boxed(vec![
            MockEntropy::failing("dev", EntropyError::Timeout),
            MockEntropy::new("good", 9),
            MockEntropy::failing("bad", EntropyError::Broken("all ones")),
        ]),
        zero,
        None,
    );
    assert!(p.secure);
    assert_eq!(p.used, ["good"]);
    let failed: Vec<_> = p.failed.iter().map(|f| f.0).collect();
    assert_eq!(failed, ["dev", "bad"]);
    let kept: Vec<_> = p.sources.iter().map(|s| s.name()).collect();
    assert_eq!(
        kept,
        ["dev", "good"],
        "a timeout may pass, broken output never does"
    );
    let line = p.boot_line();
    assert!(
        line.contains("source dev failed: the device did not answer in time"),
        "{line}"
    );
    assert!(line.ends_with("fata: entropy: good"), "{line}");
}

#[test]
fn without_any_output_the_pool_is_not_secure_and_says_so_loudly() {
    for sources in [
        vec![],
        vec![MockEntropy::failing("x", EntropyError::Exhausted)],
    ] {
        let p = Pool::seed(boxed(sources), zero, None);
        assert!(!p.secure);
        assert!(p.used.is_empty());
        let line = p.boot_line();
        assert!(
            line.contains("fata: WARNING: no entropy source")
                && line.contains("TLS will refuse to start unless insecure_entropy=true"),
            "{line}"
        );
    }
}

#[test]
fn a_reseed_changes_the_stream_and_reads_every_source_again() {
    let mk = || Pool::seed(boxed(vec![MockEntropy::new("a", 1)]), zero, None);
    let (mut p, mut q) = (mk(), mk());
    let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
    p.fill(&mut x, zero, no_wall);
    q.fill(&mut y, zero, no_wall);
    assert_eq!(x, y);
    let before = MockPlatform::entropy_fills();
    q.reseed(zero, None);
    assert_eq!(
        MockPlatform::entropy_fills(),
        before + 1,
        "the source was read again"
    );
    p.fill(&mut x, zero, no_wall);
    q.fill(&mut y, zero, no_wall);
    assert_ne!(x, y);
    assert_eq!(q.reseeds, 1);
}

#[test]
fn reseeds_come_after_a_mebibyte_of_output_and_after_five_minutes() {
    let mut p = Pool::seed(boxed(vec![MockEntropy::new("a", 1)]), zero, None);
    let mut big = alloc::vec![0u8; (RESEED_BYTES - 1) as usize];
    p.fill(&mut big, zero, no_wall);
    assert_eq!(p.reseeds, 0);
    p.fill(&mut [0u8; 1], zero, no_wall);
    assert_eq!(p.reseeds, 0, "due now, done at the next call");
    p.fill(&mut [0u8; 1], zero, no_wall);
    assert_eq!(p.reseeds, 1);

    MockPlatform::set_now(1_000);
    let mut p = Pool::seed(
        boxed(vec![MockEntropy::new("a", 1)]),
        MockPlatform::monotonic_ns,
        None,
    );
    MockPlatform::set_now(1_000 + RESEED_INTERVAL_NS - 1);
    p.fill(&mut [0u8; 8], MockPlatform::monotonic_ns, no_wall);
    assert_eq!(p.reseeds, 0);
    MockPlatform::set_now(1_000 + RESEED_INTERVAL_NS);
    p.fill(&mut [0u8; 8], MockPlatform::monotonic_ns, no_wall);
    assert_eq!(p.reseeds, 1);
}

#[test]
fn a_pool_seeded_without_sources_becomes_secure_when_a_late_source_answers() {
    // (A source that timed out at boot and answers at a reseed.)
    let mut p = Pool::seed(
        boxed(vec![MockEntropy::failing("late", EntropyError::Timeout)]),
        zero,
        None,
    );
    assert!(!p.secure);
    p.sources = boxed(vec![MockEntropy::new("late", 4)]);
    p.reseed(zero, None);
    assert!(p.secure);
}

#[test]
fn the_public_api_seeds_from_the_platforms_sources() {
    MockPlatform::set_entropy(vec![MockEntropy::new("mock", 5)]);
    global::reset();
    assert!(is_secure());
    assert_eq!(sources(), ["mock"]);
    let (a, b) = (u64(), u64());
    assert_ne!(a, b);
    let mut buf = [0u8; 300];
    fill(&mut buf);
    assert!(buf.iter().any(|&x| x != 0));

    MockPlatform::set_entropy(vec![]);
    global::reset();
    assert!(!is_secure(), "no source");
    assert_ne!(u64(), u64(), "still works");
    global::reset();
}
