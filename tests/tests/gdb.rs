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
use xtask::runner::{BootOpts, Exit, Outcome};
use xtask::target::Target;

/// Bounds every gdb session; QEMU gets the same bound plus a little.
const SESSION: Duration = Duration::from_secs(120);

fn gdb_image(target: Target, example: &str) -> Image {
    xtask::setup::ensure_program("gdb", "gdb").expect("gdb");
    xtask::gdb::build(
        &BuildOpts {
            target,
            example: example.into(),
            release: false,
        },
        None,
        false,
    )
    .unwrap_or_else(|e| panic!("a --gdb build of {example}: {e}"))
}

/// The first line of `examples/EXAMPLE/src/main.rs` that contains `needle`.
fn line_of(example: &str, needle: &str) -> usize {
    let path = xtask::root().join(format!("examples/{example}/src/main.rs"));
    let src = std::fs::read_to_string(path).unwrap();
    1 + src
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in {example}"))
}

/// The line of `examples/hello/src/main.rs` that prints a greeting, inside the loop.
fn greeting_line() -> usize {
    line_of("hello", "fata::println!(\"Hello")
}

/// Boots `example` (virtio) halted under QEMU's gdb stub with boot arguments `args`, attaches
/// gdb in batch mode with the printed command and runs `cmds`; gdb's output and how the guest
/// ended.
fn virtio_session(example: &str, args: &[&str], cmds: &[&str]) -> (String, Outcome) {
    let img = gdb_image(Target::Virtio, example);
    let port = xtask::gdb::free_port().unwrap();
    let mut opts = BootOpts {
        args: args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    };
    opts.qemu.extra = xtask::gdb::qemu_args(port);
    let vm = xtask::runner::boot(&img, &opts).expect("QEMU starts");
    let script = xtask::gdb::script(&img.path).unwrap();
    let mut argv = xtask::gdb::attach_command(&img.path, port, &script);
    // Batch mode, and no ~/.gdbinit: only what the printed command brings.
    argv.splice(1..1, ["-batch".to_string(), "-nx".to_string()]);
    argv.extend(batch(cmds));
    // On failure `vm` is dropped, which kills QEMU.
    let text = run_gdb(&argv);
    let out = vm.wait(SESSION).expect("QEMU ends");
    eprintln!("--- console ---\n{}\n--- end ---", out.console());
    (text, out)
}

/// Asserts that the backtrace `bt` ends at the boot entry with no unknown frame.
fn ends_cleanly_at_the_entry(bt: &[String]) {
    let all = bt.join("\n");
    assert!(
        bt.last().is_some_and(|l| l.contains("fata_enter_rust")),
        "the backtrace does not end at the entry:\n{all}"
    );
    assert!(!all.contains("?? ("), "garbage frames:\n{all}");
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

/// The checks common to both targets' `hello` sessions: the breakpoint at `line` of main was
/// hit, the loop counter `i` (1) and `cfg.count` (2) were printed, and the backtrace starts
/// in main and passes through the executor, the runtime and the app's entry (plus `more`).
/// Returns the backtrace's frames and their text.
fn stopped_in_hello_main(text: &str, line: usize, more: &[&str]) -> (Vec<String>, String) {
    assert!(
        text.contains(&format!("examples/hello/src/main.rs:{line}")),
        "the breakpoint in main was not hit"
    );
    assert!(text.contains("\n$1 = 1\n"), "the loop counter `i` is not 1");
    assert!(
        text.contains("\n$2 = 2\n"),
        "cfg.count (count=2) is not read"
    );
    let bt = frames(text, "@@ bt");
    let all = bt.join("\n");
    assert!(bt[0].contains("hello::__fata_app_main"), "{all}");
    for expected in [
        "fata::executor::",
        "fata::runtime::start",
        "hello::__fata_start",
    ]
    .iter()
    .chain(more)
    {
        assert!(all.contains(expected), "no `{expected}` frame in:\n{all}");
    }
    (bt, all)
}

#[test]
fn gdb_on_virtio_stops_in_main_reads_locals_backtraces_to_the_entry_and_continues_to_exit_0() {
    let line = greeting_line();
    let (text, out) = virtio_session(
        "hello",
        &["count=2"],
        &[
            &format!("break main.rs:{line}"),
            "continue",
            "info source",
            "print i",
            "print cfg.count",
            "bt",
            "fata-tasks",
            "delete",
            "continue",
        ],
    );

    // A software breakpoint planted at the reset vector held: the image was already in memory.
    assert!(
        text.contains("0x000000000000fff0 in ?? ()"),
        "not attached at reset"
    );
    assert!(
        text.contains("Located in") && text.contains("examples/hello/src/main.rs"),
        "the app's source does not resolve"
    );
    let (bt, all) = stopped_in_hello_main(&text, line, &["fata_platform_entry"]);
    ends_cleanly_at_the_entry(&bt);
    assert!(!text.contains("Backtrace stopped"), "{all}");
    assert!(text.contains("timer(s) armed"), "fata-tasks failed");
    assert_eq!(out.exit, Exit::Code(0), "{}", out.console());
    assert!(out.has_line("Hello, world! (2/2)"), "{}", out.console());
}

#[test]
fn gdb_on_unix_runs_the_process_stops_in_main_backtraces_to_its_entry_and_it_exits_0() {
    let img = gdb_image(Target::Unix, "hello");
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
    let (bt, all) = stopped_in_hello_main(&text, line, &[]);
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

#[test]
fn gdb_backtraces_a_cpu_exception_into_the_faulting_code_and_a_panic_to_its_line() {
    // A page fault: from the trap handler through the exception into the code that faulted.
    let (text, out) = virtio_session(
        "crash",
        &["what=null"],
        &["break fata_trap", "continue", "bt", "delete", "continue"],
    );
    let bt = frames(&text, "@@ bt");
    let all = bt.join("\n");
    assert!(bt[0].contains("fata_trap"), "{all}");
    assert!(bt[1].contains("<signal handler called>"), "{all}");
    let null = line_of("crash", "read_volatile(p)");
    assert!(
        all.contains(&format!(
            "crash::faults::null () at examples/crash/src/main.rs:{null}"
        )),
        "the faulting function is not in:\n{all}"
    );
    ends_cleanly_at_the_entry(&bt);
    assert_eq!(out.exit, Exit::Code(3), "{}", out.console());

    // A panic: the script's breakpoint on the panic handler, then up to the panic! line.
    let (text, out) = virtio_session(
        "crash",
        &["what=panic"],
        &["fata-panic", "continue", "bt", "delete", "continue"],
    );
    let bt = frames(&text, "@@ bt");
    let all = bt.join("\n");
    assert!(bt[0].contains("fata::platform::imp::panic"), "{all}");
    assert!(all.contains("core::panicking::panic_fmt"), "{all}");
    let panic = line_of("crash", "\"panic\" => panic!");
    assert!(
        all.contains(&format!("examples/crash/src/main.rs:{panic}")),
        "the panic! line is not in:\n{all}"
    );
    ends_cleanly_at_the_entry(&bt);
    assert_eq!(out.exit, Exit::Code(2), "{}", out.console());
}

#[test]
fn gdb_script_lists_the_executors_tasks_and_the_timers_that_wake_them() {
    // `timers` spawns tasks that sleep 0, 85, 70 and 55 ms; the first time the executor idles,
    // every task has been polled once and three of them sleep.
    let src = std::fs::read_to_string(xtask::root().join("kernel/rt/src/executor.rs")).unwrap();
    let idle = 1 + src
        .lines()
        .position(|l| l.contains("P::wait(deadline)"))
        .expect("the executor idles in P::wait");
    let (text, out) = virtio_session(
        "timers",
        &["tasks=4"],
        &[
            &format!("break kernel/rt/src/executor.rs:{idle}"),
            "continue",
            "fata-tasks",
            "delete",
            "continue",
        ],
    );
    let listing = &text[text.find("@@ fata-tasks").expect("fata-tasks ran")..];
    assert!(
        listing.contains("fata::executor::spawn::{async_block_env#0}<timers::"),
        "the spawned tasks' futures are not named:\n{listing}"
    );
    let armed = listing
        .lines()
        .find(|l| l.contains("timer(s) armed"))
        .expect("timers listed");
    let n: usize = armed.split_whitespace().next().unwrap().parse().unwrap();
    let waking = listing
        .lines()
        .filter(|l| l.contains("wakes task "))
        .count();
    assert_eq!(waking, n, "every timer wakes a task:\n{listing}");
    assert_eq!(out.exit, Exit::Code(0), "{}", out.console());
    assert!(out.has_line("timers ok"), "{}", out.console());
}

#[test]
fn fata_next_steps_across_an_await_that_suspends_to_the_next_line_of_the_async_fn() {
    // Line 30 of hello awaits a sleep: `next` there ends in the executor (docs/debugging.md);
    // `fata-next` must come back to main's own code, in the next iteration.
    let await_line = line_of("hello", "sleep(cfg.interval).await");
    let (text, out) = virtio_session(
        "hello",
        &["count=3"],
        &[
            &format!("break main.rs:{await_line}"),
            "continue",
            "print i",
            "delete",
            "fata-next",
            "print i",
            "fata-next",
            "print i",
            "continue",
        ],
    );
    assert!(
        text.contains("\n$1 = 1\n"),
        "stopped at the await in the first iteration:\n{text}"
    );
    // Everything from the first `fata-next` on.
    let after = text.split_once("@@ fata-next").map_or("", |(_, t)| t);
    assert!(
        !after.contains("executor.rs"),
        "fata-next ended in the executor:\n{after}"
    );
    // After the sleep the loop goes on: the `for` line (where `i` is not bound yet), then the
    // greeting of the second iteration.
    let for_line = line_of("hello", "for i in 1..=cfg.count");
    assert!(
        after.contains(&format!("examples/hello/src/main.rs:{for_line}")),
        "the first fata-next did not reach the loop:\n{after}"
    );
    assert!(
        after.contains("$2 = 2"),
        "the second iteration was not reached:\n{after}"
    );
    assert_eq!(out.exit, Exit::Code(0), "{}", out.console());
}
