//! Entropy on the `virtio` platform under QEMU (TCG): which sources the boot line names for a
//! CPU model and an rng device, the warning without any, crates on getrandom 0.3 and 0.4
//! unchanged in an image, and boots that differ where randomness matters (`fata::rand`, and
//! TCP initial sequence numbers as an outside client sees them on a TAP link).
//!
//! QEMU 7.2's TCG offers RDRAND with `-cpu max` but not RDSEED (it masks `+rdseed` with a
//! warning), so the CPU line here is `rdrand`; a CPU that offers both lists `rdseed rdrand`.
#![forbid(unsafe_code)]

use fata_tests::{BOOT_TIMEOUT, BootOpts, Exit, Machine, Netns, Outcome, Target, expect, run_with};
use std::sync::OnceLock;

/// The boot line of an image that found sources (or the warning).
fn entropy_line(out: &Outcome) -> String {
    out.console()
        .lines()
        .find(|l| l.starts_with("fata: entropy: ") || l.starts_with("fata: WARNING: no entropy"))
        .unwrap_or_else(|| panic!("no entropy line:\n{}", out.console()))
        .to_string()
}

fn hello(f: impl FnOnce(&mut BootOpts)) -> Outcome {
    let out = run_with(Target::Virtio, "hello", &["count=1"], f);
    expect(&out, Exit::Code(0), &["Hello, world! (1/1)"]);
    out
}

#[test]
fn cpu_max_offers_rdrand_and_the_boot_line_names_it() {
    let line = entropy_line(&hello(|_| {}));
    assert!(
        line == "fata: entropy: rdrand" || line == "fata: entropy: rdseed rdrand",
        "{line}"
    );
}

#[test]
fn a_virtio_rng_pci_device_on_q35_is_a_source() {
    let line = entropy_line(&hello(|o| {
        o.qemu.machine = Machine::Q35;
        o.qemu.rng = true;
    }));
    assert!(
        line.ends_with(" virtio-rng") && line.contains("rdrand"),
        "{line}"
    );
}

#[test]
fn a_virtio_rng_mmio_device_on_microvm_is_the_only_source_of_a_cpu_without_rdrand() {
    let line = entropy_line(&hello(|o| {
        o.qemu.cpu = "qemu64".into();
        o.qemu.rng = true;
    }));
    assert_eq!(line, "fata: entropy: virtio-rng");
}

#[test]
fn without_rdrand_or_an_rng_device_the_boot_warns_and_still_runs() {
    let out = hello(|o| o.qemu.cpu = "qemu64".into());
    let line = entropy_line(&out);
    assert!(
        line.starts_with("fata: WARNING: no entropy source")
            && line.contains("TLS will refuse to start unless insecure_entropy=true"),
        "{line}"
    );
}

/// The getrandom fixture's image (tests/fixtures/getrandom_app), built once.
fn getrandom_app() -> &'static fata_tests::Image {
    static IMG: OnceLock<fata_tests::Image> = OnceLock::new();
    IMG.get_or_init(|| {
        let manifest = xtask::root().join("tests/fixtures/getrandom_app/Cargo.toml");
        xtask::build::build_manifest(&manifest, Target::Virtio, true)
            .unwrap_or_else(|e| panic!("building the getrandom fixture: {e}"))
    })
}

/// The values the fixture printed: getrandom 0.3, getrandom 0.4, fata::rand.
fn random_values(cpu: &str) -> [String; 3] {
    let mut opts = BootOpts::default();
    opts.qemu.cpu = cpu.into();
    let out = xtask::runner::boot(getrandom_app(), &opts)
        .and_then(|r| r.wait(BOOT_TIMEOUT))
        .unwrap_or_else(|e| panic!("{e}"));
    expect(&out, Exit::Code(0), &["fata: exit 0"]);
    let console = out.console();
    let value = |prefix: &str| {
        let v = console
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line:\n{console}"))
            .to_string();
        assert!(v.len() >= 16, "{prefix}{v}");
        v
    };
    [
        value("getrandom 0.3: "),
        value("getrandom 0.4: "),
        value("fata::rand: "),
    ]
}

#[test]
fn crates_on_getrandom_0_3_and_0_4_get_bytes_in_an_image_and_two_boots_differ() {
    let a = random_values("max");
    let b = random_values("max");
    for (x, y) in a.iter().zip(&b) {
        assert_ne!(x, y, "the same value in two boots");
    }
    assert!(a[2].ends_with("secure=true"), "{}", a[2]);
    assert_ne!(a[0], a[1], "0.3 and 0.4 draw different bytes");
}

/// The initial sequence numbers of `count` connections to the http example, booted afresh.
fn isns(ns: &Netns, count: usize) -> Vec<u32> {
    let _vm = fata_tests::boot_in(ns, "http", 80, &["ipv4=10.77.0.2/24", "gateway=10.77.0.1"]);
    let script = xtask::root().join("tests/scripts/isn.py");
    let (ok, out) = ns.run(
        "python3",
        &[
            script.to_str().unwrap(),
            "10.77.0.2",
            "80",
            &count.to_string(),
        ],
    );
    assert!(ok, "isn.py: {out}");
    let v: Vec<u32> = out
        .lines()
        .filter_map(|l| l.strip_prefix("isn="))
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(v.len(), count, "{out}");
    v
}

#[test]
fn two_boots_of_the_same_image_answer_with_different_initial_sequence_numbers() {
    let ns = Netns::new("isn", 1500);
    let first = isns(&ns, 3);
    let second = isns(&ns, 3);
    assert_ne!(first, second, "the same sequence numbers after a reboot");
    assert_ne!(first[0], second[0]);
    assert!(first.windows(2).all(|w| w[0] != w[1]), "{first:?}");
}
