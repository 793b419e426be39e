//! Helpers for the integration tests in `tests/tests/`: build an example once per test
//! process (release profile, through the same xtask library users run), boot it, and check
//! the exit status *and* the console.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
pub use xtask::build::Image;
pub use xtask::runner::{BootOpts, Exit, Outcome};
pub use xtask::target::{Machine, Target};

/// How long any single boot may take before the harness kills it.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// The image of `example` for `target`, built on first use.
pub fn image(target: Target, example: &str) -> Image {
    static BUILT: OnceLock<Mutex<HashMap<(Target, String), Image>>> = OnceLock::new();
    let map = BUILT.get_or_init(Default::default);
    // Building under the lock serialises cargo runs of one test process (cargo would anyway).
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    m.entry((target, example.to_string()))
        .or_insert_with(|| {
            let opts = xtask::build::BuildOpts {
                target,
                example: example.to_string(),
                release: true,
            };
            xtask::build::build(&opts)
                .unwrap_or_else(|e| panic!("building {example} for {target:?}: {e}"))
        })
        .clone()
}

/// Boots `example` on `target` with boot arguments `args` and waits for it to end.
pub fn run(target: Target, example: &str, args: &[&str]) -> Outcome {
    run_with(target, example, args, |_| {})
}

/// Like [`run`], with the boot options adjusted by `f` (machine, memory, ...).
pub fn run_with(
    target: Target,
    example: &str,
    args: &[&str],
    f: impl FnOnce(&mut BootOpts),
) -> Outcome {
    let img = image(target, example);
    let mut opts = BootOpts {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    f(&mut opts);
    xtask::runner::boot(&img, &opts)
        .and_then(|r| r.wait(BOOT_TIMEOUT))
        .unwrap_or_else(|e| panic!("booting {example} on {target:?}: {e}"))
}

/// Asserts the exit and that every `lines` entry appears on the console, in order (two
/// entries may match the same line).
#[track_caller]
pub fn expect(out: &Outcome, exit: Exit, lines: &[&str]) {
    let console = out.console();
    assert_eq!(
        out.exit, exit,
        "unexpected exit; console:\n{console}\nstderr:\n{}",
        out.stderr
    );
    let mut from = 0;
    for want in lines {
        match out.lines[from..].iter().position(|l| l.text.contains(want)) {
            Some(i) => from += i, // the next needle may be on the same line
            None => panic!(
                "missing (in order) `{want}`; console:\n{console}\nstderr:\n{}",
                out.stderr
            ),
        }
    }
}
