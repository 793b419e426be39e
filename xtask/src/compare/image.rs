//! The `image` group (`cargo xtask bench --only image`): the deployable artefacts of
//! `examples/http` — their sizes, how long the raw disk takes from QEMU's launch to the first
//! HTTP 200 through SeaBIOS and fata's loader against the same image with `-kernel` (both on
//! `q35`, runs alternating), and how long a warm `cargo xtask release` takes.

use super::{Row, first_200, range_row, row, user_net};
use crate::qemu::BootDisk;
use crate::runner::{BootOpts, boot};
use crate::target::{Machine, Target};
use crate::{Result, bail};
use std::time::{Duration, Instant};

/// Launch → first 200 of `img` on q35, from `disk` through the firmware or with `-kernel`.
fn first_200_ms(img: &crate::build::Image, disk: Option<BootDisk>) -> Result<f64> {
    let mut o = BootOpts::default();
    o.qemu.machine = Machine::Q35;
    o.qemu.boot_disk = disk;
    let addr = user_net(&mut o, 80);
    let vm = boot(img, &o)?;
    // Poll only once the guest listens: QEMU's user networking accepts a connection on the
    // host side at once and retries the guest with back-off, so early polls would measure
    // slirp's timers, not the boot.
    vm.wait_for_line("fata: ready tcp/80", Duration::from_secs(60))?;
    if !first_200(addr, Duration::from_secs(30)) {
        bail!("no HTTP 200 within 30 s");
    }
    let ms = vm.elapsed().as_secs_f64() * 1000.0;
    let _ = vm.wait(Duration::from_millis(10));
    Ok(ms)
}

/// Measures the group into `rows`; returns the notes for the report.
pub(crate) fn image_figures(quick: bool, rows: &mut Vec<Row>) -> Result<String> {
    let t = Instant::now();
    let r = crate::release::release(&crate::app::App::Example("http".into()), &[])?;
    let release_s = t.elapsed().as_secs_f64();
    for a in &r.artefacts {
        let p = r.dir.join(&a.name);
        let meta = std::fs::metadata(&p)?;
        let allocated = std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
        let mut x = row(
            &format!("artefact {}: size (allocated on disk)", a.name),
            meta.len() as f64 / 1024.0,
            f64::NAN,
            "KiB",
            "",
        );
        x.fata = format!("{} KiB ({} KiB)", meta.len() / 1024, allocated / 1024);
        x.linux = String::new();
        rows.push(x);
    }
    let img = crate::compare::release_build(Target::Virtio, "http")?;
    let raw = r.dir.join("http.raw");
    let runs = if quick { 2 } else { 7 };
    let (mut disk, mut kernel) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        disk.push(first_200_ms(
            &img,
            Some(BootDisk {
                path: raw.clone(),
                format: "raw",
            }),
        )?);
        kernel.push(first_200_ms(&img, None)?);
    }
    let mut x = range_row(
        &format!(
            "launch → first HTTP 200, q35, raw disk (SeaBIOS + fata's loader) against -kernel (median of {runs})"
        ),
        &mut disk,
        &mut kernel,
        "",
    );
    x.goal = String::new();
    rows.push(x);
    let mut x = row(
        "cargo xtask release --example http, warm (check, 3 builds, 3 disks, 5 configurations, 5 boots)",
        release_s,
        f64::NAN,
        "s",
        "fresh clone ≤ 180 s",
    );
    x.linux = String::new();
    rows.push(x);
    Ok(format!(
        "Release build of `examples/http`; `cargo xtask release` wrote the artefacts to `dist/http/` and proved each bootable one first. \
         Boot times: QEMU {} TCG, `-M q35`, 64 MiB, user networking, the first GET of `/612.html` once the console says `fata: ready tcp/80` (polling earlier would time QEMU's user-network retries); \
         the raw disk runs SeaBIOS, fata's boot sector and second stage (`boot/loader/loader.S`), then the same PVH entry as `-kernel`. \
         The second column is the same image booted with `-kernel`. `cargo xtask bench --only image`.\n",
        crate::qemu::version().unwrap_or_else(|_| "?".into())
    ))
}
