//! Debugging with gdb (`run --gdb`): Debian's gdb, in batch mode, against `hello` booted in
//! QEMU with its gdb stub (virtio) and run as a process (unix), with exactly the commands that
//! `cargo xtask run --gdb` prints (xtask::gdb) and the script it loads (xtask/gdb/fata.gdb).
//! Each session stops at the app's `main`, reads its locals, checks that `bt` shows the
//! runtime's frames and ends at the entry without garbage frames, and continues to exit 0.
#![forbid(unsafe_code)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xtask::build::{BuildOpts, Image};
use xtask::runner::{BootOpts, Exit};
use xtask::target::Target;

/// Bounds every gdb session; QEMU gets the same bound plus a little.
const SESSION: Duration = Duration::from_secs(120);

fn gdb_image(target: Target) -> Image {
    xtask::setup::ensure_program("gdb", "gdb").expect("gdb");
    xtask::gdb::build(
        &BuildOpts {
            target,
            example: "hello".into(),
            release: false,
        },
        None,
        false,
    )
    .expect("a --gdb build of hello")
}

/// The line of `examples/hello/src/main.rs` that prints a greeting, inside the loop.
fn greeting_line() -> usize {
    let src = std::fs::read_to_string(xtask::root().join("examples/hello/src/main.rs")).unwrap();
    1 + src
        .lines()
        .position(|l| l.contains("fata::println!(\"Hello"))
        .expect("hello prints a greeting")
}

/// Runs gdb (`argv`, program first, already in batch mode), killing it after [`SESSION`];
/// everything it printed.
fn run_gdb(argv: &[String]) -> String {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    xtask::cmd::echo(&c);
    let mut child = c.spawn().expect("gdb starts");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + SESSION;
    let timed_out = loop {
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = format!("{}{}", o.join().unwrap(), e.join().unwrap());
    eprintln!("--- gdb ---\n{text}--- end of gdb ---");
    assert!(!timed_out, "gdb did not finish within {SESSION:?}");
    text
}

/// The frame lines (`#N ...`) of the first `bt` after `marker` was echoed.
fn frames(text: &str, marker: &str) -> Vec<String> {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("no `{marker}` in the session"));
    text[start + marker.len()..]
        .lines()
        .skip_while(|l| !l.starts_with("#0"))
        // A frame's text may continue on the next line (long argument lists).
        .take_while(|l| l.starts_with('#') || l.starts_with(' '))
        .filter(|l| l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// gdb's `-ex` options for `cmds`, each announced by an `echo` so the output can be cut up.
fn batch(cmds: &[&str]) -> Vec<String> {
    let mut v = Vec::new();
    for c in cmds {
        v.push("-ex".into());
        v.push(format!("echo @@ {c}\\n"));
        v.push("-ex".into());
        v.push(c.to_string());
    }
    v
}

#[test]
fn gdb_on_virtio_stops_in_main_reads_locals_backtraces_to_the_entry_and_continues_to_exit_0() {
    let img = gdb_image(Target::Virtio);
    let port = xtask::gdb::free_port().unwrap();
    let mut opts = BootOpts {
        args: vec!["count=2".into()],
        ..Default::default()
    };
    opts.qemu.extra = xtask::gdb::qemu_args(port);
    let vm = xtask::runner::boot(&img, &opts).expect("QEMU starts");
    let script = xtask::gdb::script(&img.path).unwrap();
    let mut argv = xtask::gdb::attach_command(&img.path, port, &script);
    // Batch mode, and no ~/.gdbinit: only what the printed command brings.
    argv.splice(1..1, ["-batch".to_string(), "-nx".to_string()]);
    let line = greeting_line();
    argv.extend(batch(&[
        &format!("break main.rs:{line}"),
        "continue",
        "info source",
        "print i",
        "print cfg.count",
        "bt",
        "fata-tasks",
        "delete",
        "continue",
    ]));
    let text = run_gdb(&argv);
    let out = vm.wait(SESSION).expect("QEMU ends");
    eprintln!("--- console ---\n{}\n--- end ---", out.console());

    // The script ran the guest to the Rust entry, and `break` then held.
    assert!(text.contains("stopped at the Rust entry"), "{text}");
    assert!(
        text.contains(&format!("examples/hello/src/main.rs:{line}")),
        "the breakpoint in main was not hit"
    );
    assert!(
        text.contains("Located in") && text.contains("examples/hello/src/main.rs"),
        "the app's source does not resolve"
    );
    assert!(text.contains("\n$1 = 1\n"), "the loop counter `i` is not 1");
    assert!(
        text.contains("\n$2 = 2\n"),
        "cfg.count (count=2) is not read"
    );
    let bt = frames(&text, "@@ bt");
    let all = bt.join("\n");
    assert!(bt[0].contains("hello::__fata_app_main"), "{all}");
    for expected in [
        "fata::executor::",
        "fata::runtime::start",
        "hello::__fata_start",
        "fata_platform_entry",
    ] {
        assert!(all.contains(expected), "no `{expected}` frame in:\n{all}");
    }
    assert!(
        bt.last().unwrap().contains("fata_enter_rust"),
        "the backtrace does not end at the entry:\n{all}"
    );
    assert!(
        !all.contains("?? (") && !text.contains("Backtrace stopped"),
        "garbage frames:\n{all}"
    );
    assert!(text.contains("timer(s) armed"), "fata-tasks failed");
    assert_eq!(out.exit, Exit::Code(0), "{}", out.console());
    assert!(out.has_line("Hello, world! (2/2)"), "{}", out.console());
}

#[test]
fn gdb_on_unix_runs_the_process_stops_in_main_backtraces_to_its_entry_and_it_exits_0() {
    let img = gdb_image(Target::Unix);
    let script = xtask::gdb::script(&img.path).unwrap();
    let mut argv = xtask::gdb::unix_command(&img.path, &script, &["count=2".into()]);
    argv.splice(1..1, ["-batch".to_string(), "-nx".to_string()]);
    let line = greeting_line();
    let at = argv.iter().position(|a| a == "--args").unwrap();
    argv.splice(
        at..at,
        batch(&[
            &format!("break main.rs:{line}"),
            "run",
            "print i",
            "print cfg.count",
            "bt",
            "delete",
            "continue",
        ]),
    );
    let text = run_gdb(&argv);
    assert!(
        text.contains(&format!("examples/hello/src/main.rs:{line}")),
        "the breakpoint in main was not hit"
    );
    assert!(text.contains("\n$1 = 1\n"), "the loop counter `i` is not 1");
    assert!(
        text.contains("\n$2 = 2\n"),
        "cfg.count (count=2) is not read"
    );
    let bt = frames(&text, "@@ bt");
    let all = bt.join("\n");
    assert!(bt[0].contains("hello::__fata_app_main"), "{all}");
    for expected in [
        "fata::executor::",
        "fata::runtime::start",
        "hello::__fata_start",
    ] {
        assert!(all.contains(expected), "no `{expected}` frame in:\n{all}");
    }
    // gdb stops at the process's `main` (fata's, in the unix platform), as for any C program.
    assert!(
        bt.last()
            .unwrap()
            .contains("fata_platform_unix::entry::main"),
        "the backtrace does not end at the process entry:\n{all}"
    );
    assert!(!all.contains("?? ("), "garbage frames:\n{all}");
    assert!(text.contains("Hello, world! (2/2)"), "{text}");
    assert!(
        text.contains("exited normally"),
        "the process did not exit 0"
    );
}
