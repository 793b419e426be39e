//! `log_format=json`: every console line after the configuration is read is one JSON object
//! (time, level, target, message) that a JSON parser accepts, on a hypervisor and on `unix`,
//! also while the service is under load and logging at debug level; `fata: ready tcp/PORT`
//! is still found by tools that wait for it.
#![forbid(unsafe_code)]

use fata_tests::client::get;
use fata_tests::{Machine, Target, UserNetBoot};
use xtask::json::{Value, parse};

/// Checks that every line from the first JSON one on parses as an object with the four
/// members; returns the parsed lines.
fn json_lines(console: &str) -> Vec<Value> {
    let lines: Vec<&str> = console.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in:\n{console}"));
    // Before it: only what precedes reading the configuration (the platform's line, the banner).
    assert!(first <= 3, "too many text lines before JSON:\n{console}");
    lines[first..]
        .iter()
        .map(|l| {
            let v = parse(l).unwrap_or_else(|e| panic!("not JSON: {e}: {l:?}"));
            for member in ["time", "level", "target", "message"] {
                assert!(v.get(member).is_some(), "no `{member}` in {l}");
            }
            v
        })
        .collect()
}

fn messages(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|v| v.get("message").and_then(Value::as_str).map(String::from))
        .collect()
}

#[test]
fn json_logs_parse_line_by_line_under_load_on_virtio() {
    let vm = UserNetBoot {
        args: &["log_format=json", "log=trace"],
        ..UserNetBoot::new("http", Machine::Microvm, 80)
    }
    .boot();
    // Load with smoltcp's and the runtime's trace logging on: many lines, none broken.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let addr = vm.addr;
            std::thread::spawn(move || {
                for _ in 0..25 {
                    assert_eq!(get(addr, "/hello.txt").unwrap().status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let console = vm.vm.console();
    let lines = json_lines(&console);
    assert!(
        lines.len() > 200,
        "expected a busy log, got {} lines",
        lines.len()
    );
    let msgs = messages(&lines);
    assert!(
        msgs.iter().any(|m| m.starts_with("fata: ready tcp/80")),
        "{console}"
    );
    assert!(
        msgs.iter()
            .any(|m| m == "fata: config log_format=json (boot)")
    );
    assert!(
        lines
            .iter()
            .any(|v| v.get("level").and_then(Value::as_str) == Some("TRACE")),
        "trace records present"
    );
}

#[test]
fn errors_panics_and_the_exit_line_are_json_too_on_unix_and_virtio() {
    for target in [Target::Unix, Target::Virtio] {
        for (what, want) in [
            (
                "error",
                "fata: main returned an error: the application gave up",
            ),
            ("panic", "fata: panic at examples/crash/src/main.rs"),
        ] {
            let out = fata_tests::run(
                target,
                "crash",
                &["log_format=json", &format!("what={what}")],
            );
            let console = out.console();
            // The app's own `println!` output is its own business: raw text.
            let ours: String = console
                .lines()
                .filter(|l| !l.starts_with("crash: "))
                .map(|l| format!("{l}\n"))
                .collect();
            let msgs = messages(&json_lines(&ours));
            assert!(
                msgs.iter().any(|m| m.starts_with(want)),
                "{target:?} {what}:\n{console}"
            );
            let code = if what == "error" { 1 } else { 2 };
            assert!(
                msgs.last()
                    .is_some_and(|m| m.starts_with(&format!("fata: exit {code} "))),
                "{target:?} {what}: the last line is the JSON exit line:\n{console}"
            );
        }
    }
}
