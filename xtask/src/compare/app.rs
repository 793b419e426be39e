//! The `app` group (`cargo xtask bench --only app`): an app author's loop with `cargo fata` —
//! from `cargo fata new` to the first boot (cold: the app's first build compiles fata and its
//! dependencies; warm: a second new app whose target directory already holds them), and
//! edit → rebuild → boot → first HTTP 200 for a one-line change of the `http` template (debug
//! build, QEMU microvm, user networking).

use super::{Row, median, row, user_net};
use crate::app::App;
use crate::runner::{BootOpts, boot};
use crate::target::Target;
use crate::{Result, bail};
use std::time::{Duration, Instant};

/// Build (debug) and boot to the first HTTP 200; seconds.
fn build_boot_200(app: &App) -> Result<f64> {
    let t = Instant::now();
    let img = app.build(Target::Virtio, false)?;
    let mut o = BootOpts::default();
    let addr = user_net(&mut o, 80);
    let vm = boot(&img, &o)?;
    vm.wait_for_line("fata: ready tcp/80", Duration::from_secs(60))?;
    let end = Instant::now() + Duration::from_secs(20);
    while !crate::client::get(addr, "/").is_ok_and(|r| r.status == 200) {
        if Instant::now() > end {
            bail!("no HTTP 200");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let s = t.elapsed().as_secs_f64();
    let _ = vm.wait(Duration::from_millis(10));
    Ok(s)
}

/// Measures the group into `rows`; returns the notes.
pub(crate) fn app_figures(quick: bool, rows: &mut Vec<Row>) -> Result<String> {
    let dir = crate::root().join("target/bench/app");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("web");
    let t = Instant::now();
    crate::new::create(&path, "web", "http")?;
    let app = App::Manifest(path.join("Cargo.toml"));
    let cold = t.elapsed().as_secs_f64() + build_boot_200(&app)?;
    // Warm: a second new app whose target directory already holds the compiled dependencies
    // (a CI cache, or a copy from another app): only its own crate is compiled.
    let path2 = dir.join("web2");
    let t = Instant::now();
    crate::new::create(&path2, "web2", "http")?;
    let mut c = std::process::Command::new("cp");
    c.arg("-a")
        .arg(path.join("target"))
        .arg(path2.join("target"));
    crate::cmd::run(&mut c, "copying the first app's target directory")?;
    let warm_new =
        t.elapsed().as_secs_f64() + build_boot_200(&App::Manifest(path2.join("Cargo.toml")))?;
    let main = path.join("src/main.rs");
    let text = std::fs::read_to_string(&main)?;
    let runs = if quick { 2 } else { 5 };
    let mut edits = Vec::new();
    for i in 0..runs {
        let changed = text.replace("Hello from web", &format!("Hello from web, edit {i}"));
        std::fs::write(&main, changed)?;
        edits.push(build_boot_200(&app)?);
    }
    let mut r = row(
        "cargo fata new → first HTTP 200, cold (the app's first build)",
        cold,
        f64::NAN,
        "s",
        "",
    );
    r.linux = String::new();
    rows.push(r);
    let mut r = row(
        "… warm (a new app whose target directory holds the compiled dependencies)",
        warm_new,
        f64::NAN,
        "s",
        "",
    );
    r.linux = String::new();
    rows.push(r);
    let lo = edits.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = edits.iter().copied().fold(0.0, f64::max);
    let m = median(&mut edits);
    let mut r = row(
        &format!("one-line edit → rebuild (debug) → boot → first HTTP 200 (median of {runs})"),
        m,
        f64::NAN,
        "s",
        "≤ 1 s warm",
    );
    r.fata = format!("{m:.2} s ({lo:.2}–{hi:.2})");
    r.linux = String::new();
    rows.push(r);
    Ok("The `http` template of `cargo fata new` in `target/bench/app/web`, built through the same library `cargo fata` runs (debug build, `virtio`), booted in QEMU microvm (TCG) with user networking; the first GET once the console says `fata: ready tcp/80`. The edit changes the greeting in `src/main.rs`. `cargo xtask bench --only app`.\n".into())
}
