//! `cargo xtask bench --quick` runs end to end — both systems boot, serve and are measured —
//! and produces a well-formed table. No figure is checked: benchmarks are not tests.
//!
//! Needs root (TAP devices in a network namespace), apt-get (Debian's kernel, busybox, nginx,
//! and wrk) — as CI has.
#![forbid(unsafe_code)]

#[test]
fn quick_benchmark_runs_end_to_end_and_writes_a_well_formed_table() {
    xtask::setup::ensure_tools(&["wrk"]).unwrap();
    let opts = xtask::compare::CompareOpts {
        quick: true,
        only: None,
    };
    let doc = xtask::compare::run(&opts).unwrap_or_else(|e| panic!("bench --quick failed: {e}"));
    let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| ")).collect();
    assert!(
        rows[0].starts_with("| figure | fata | Linux guest | fata / Linux | goal |"),
        "{doc}"
    );
    for want in [
        "launch → first HTTP 200",
        "guest-side boot",
        "memory that serves 64 keep-alive clients",
        "largest connect burst with every client served",
        "heap per idle connection",
        "heap in use after 1000 connections",
        "keep-alive, 1 conn: requests/s",
        "keep-alive, 16 conn: requests/s",
        "keep-alive, 64 conn: requests/s",
        "wrk 64 conn: latency p99",
        "bulk TCP host → guest",
        "bulk TCP guest → host",
        "image size: http",
        "image size: hello",
    ] {
        let row = rows
            .iter()
            .find(|r| r.contains(want))
            .unwrap_or_else(|| panic!("no row `{want}` in:\n{doc}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 7, "malformed row {row}");
        // fata's cell always holds a measured number.
        assert!(
            cells[2].chars().next().is_some_and(|c| c.is_ascii_digit()),
            "fata not measured in {row}"
        );
    }
    for want in [
        "machine:",
        "accelerator TCG",
        "date:",
        "nginx",
        "cargo xtask bench --quick",
    ] {
        assert!(doc.contains(want), "the report lacks `{want}`:\n{doc}");
    }
}
