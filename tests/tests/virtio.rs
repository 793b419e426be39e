//! The `virtio` platform under QEMU (TCG): boot, configuration, failure reporting and the
//! CPU-exception crash reports, on microvm and on the PCI machines.
#![forbid(unsafe_code)]

#[path = "common_apps.rs"]
mod common_apps;

mod apps {
    crate::app_tests!(fata_tests::Target::Virtio);
}

use fata_tests::{Exit, Machine, Target, expect, run, run_with};

#[test]
fn hello_boots_on_q35() {
    let out = run_with(Target::Virtio, "hello", &["count=1"], |o| {
        o.qemu.machine = Machine::Q35
    });
    expect(
        &out,
        Exit::Code(0),
        &[
            "fata 0.1.0 on virtio",
            "Hello, world! (1/1)",
            "fata: exit 0",
        ],
    );
}

#[test]
fn hello_boots_on_pc() {
    let out = run_with(Target::Virtio, "hello", &["count=1"], |o| {
        o.qemu.machine = Machine::Pc
    });
    expect(
        &out,
        Exit::Code(0),
        &["Hello, world! (1/1)", "fata: exit 0"],
    );
}

#[test]
fn platform_reports_memory_and_calibrated_clock() {
    let out = run_with(Target::Virtio, "hello", &["count=1"], |o| {
        o.qemu.memory_mib = 16
    });
    expect(
        &out,
        Exit::Code(0),
        &["fata: virtio: 15 MiB RAM", "TSC", "(PIT-calibrated)"],
    );
}

#[test]
fn over_long_command_line_is_refused_with_a_clear_message() {
    let long = format!("name={}", "x".repeat(5000));
    let out = run(Target::Virtio, "hello", &[&long]);
    expect(
        &out,
        Exit::Code(64),
        &[
            "fata: cannot boot: the boot command line is",
            "the limit is 4096",
        ],
    );
}

#[test]
fn command_line_at_the_limit_is_accepted() {
    // 4096 bytes in all: "name=" + value.
    let arg = format!("name={}", "y".repeat(4096 - 5));
    let out = run(Target::Virtio, "hello", &[&arg]);
    expect(&out, Exit::Code(0), &["Hello, yyyy"]);
}

#[test]
fn machine_too_small_for_the_image_is_refused_before_launch() {
    let img = fata_tests::image(Target::Virtio, "hello");
    let mut opts = fata_tests::BootOpts::default();
    opts.qemu.memory_mib = 1;
    let err = xtask::runner::boot(&img, &opts)
        .err()
        .expect("a 1 MiB machine must be refused");
    assert!(
        err.0.contains("-m 1 is too small") && err.0.contains("use at least -m 2"),
        "{err}"
    );
}

#[test]
fn smallest_machine_that_fits_still_boots() {
    let out = run_with(Target::Virtio, "hello", &["count=1"], |o| {
        o.qemu.memory_mib = 2
    });
    expect(&out, Exit::Code(0), &["Hello, world! (1/1)"]);
}

#[test]
fn a_hanging_guest_is_killed_by_the_timeout() {
    let img = fata_tests::image(Target::Virtio, "hello");
    let opts = fata_tests::BootOpts {
        args: vec!["count=2".into(), "interval=1h".into()],
        ..Default::default()
    };
    let r = xtask::runner::boot(&img, &opts).unwrap();
    r.wait_for_line("Hello, world! (1/2)", fata_tests::BOOT_TIMEOUT)
        .unwrap();
    let out = r.wait(std::time::Duration::from_secs(1)).unwrap();
    assert_eq!(out.exit, Exit::TimedOut);
}

fn crash(what: &str, report: &[&str]) {
    let out = run(Target::Virtio, "crash", &[&format!("what={what}")]);
    let mut lines = vec!["fata: CPU exception"];
    lines.extend_from_slice(report);
    lines.push("fata: exit 3 (CpuException)");
    expect(&out, Exit::Code(3), &lines);
}

#[test]
fn null_dereference_is_a_page_fault_report_with_cause() {
    crash(
        "null",
        &[
            "page fault (#PF)",
            "cause: null pointer dereference",
            "cr2=0x0000000000000008",
            "stack:",
        ],
    );
}

#[test]
fn unmapped_read_reports_rip_error_code_and_cr2() {
    crash(
        "page-fault",
        &[
            "page fault (#PF)) at rip=0x",
            "error=0x0 (page not present, read in kernel mode) cr2=0x0000000700000000",
        ],
    );
}

#[test]
fn stack_overflow_hits_the_guard_page_and_is_named() {
    crash(
        "stack-overflow",
        &[
            "page fault (#PF)",
            "cause: stack overflow: the boot stack ran into its guard page",
        ],
    );
}

#[test]
fn code_is_not_writable() {
    crash(
        "write-text",
        &[
            "cause: write to read-only memory",
            "protection violation, write",
        ],
    );
}

#[test]
fn data_is_not_executable() {
    crash(
        "exec-data",
        &[
            "cause: attempt to execute non-executable memory",
            "instruction fetch",
        ],
    );
}

#[test]
fn invalid_opcode_is_reported() {
    crash(
        "invalid-opcode",
        &["CPU exception 6 (invalid opcode (#UD))"],
    );
}

#[test]
fn heap_exhaustion_is_a_reported_panic() {
    let out = run_with(Target::Virtio, "crash", &["what=oom"], |o| {
        o.qemu.memory_mib = 8
    });
    expect(
        &out,
        Exit::Code(2),
        &[
            "fata: panic at",
            "memory allocation of 1048576 bytes failed",
        ],
    );
}

#[test]
fn without_debug_exit_q35_powers_off_through_acpi_after_saying_the_code() {
    let out = run_with(Target::Virtio, "hello", &["count=1"], |o| {
        o.qemu.machine = Machine::Q35;
        o.qemu.debug_exit = false;
    });
    expect(
        &out,
        Exit::PoweredOff,
        &["Hello, world! (1/1)", "fata: exit 0 (Success)"],
    );
}

#[test]
fn without_debug_exit_microvm_still_stops_after_saying_the_code() {
    let out = run_with(Target::Virtio, "crash", &["what=panic"], |o| {
        o.qemu.debug_exit = false
    });
    expect(
        &out,
        Exit::PoweredOff,
        &["deliberate panic", "fata: exit 2 (Panic)"],
    );
}
