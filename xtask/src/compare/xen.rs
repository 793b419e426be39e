//! The Xen figures of `cargo xtask bench` (`--only xen`): fata's `xen` images against a Linux
//! PVH domU, both on the nested Xen harness ([`crate::xen`]: Xen 4.17 and a busybox dom0
//! under QEMU TCG) and both in ONE harness session — nested TCG figures are only comparable
//! within one boot of the harness.
//!
//! - **Sizes**: the release `xen` images of `hello`, `http` and `kv` (file and stripped)
//!   against the Linux domU's bzImage plus its initramfs (busybox, nginx, netfront).
//! - **Launch times**: dom0 runs the two domUs in turn, fata's `http` then Linux with nginx,
//!   [`runs`] rounds, each domU destroyed before the next starts; from `xl create` it times
//!   the domU's ready line in its console log (`fata: ready tcp/80`, `DOMU-READY`) and the
//!   first answered GET of `/612.html` from dom0, both polled every 50 ms
//!   ([`linux::SESSION_LIB`], shared with the Linux smoke session).
//! - **Requests/s**: in the last round, `wrk -t1 -c16 --latency` from dom0 against
//!   `/612.html` of the running domU (keep-alive: wrk's connections stay open, and both
//!   servers keep them).
//!
//! Both domUs get the same memory ([`linux::DOMU_MIB`]), one vCPU, the same vif and address,
//! and serve the same bytes ([`super::page`]), which dom0 checks by sha256 in every round.

use super::{Row, page, parse_wrk, range_row, release_build, row};
use crate::build::stripped_size;
use crate::target::Target;
use crate::xen::{self, Output, Session, XlConfig, linux};
use crate::{Error, Result, bail};
use std::fmt::Write as _;
use std::time::Duration;

/// The URL both domUs are timed and loaded at, from dom0 (with the port: dom0 has no
/// `/etc/services`, so `wrk` cannot resolve `http`).
const URL: &str = "http://10.0.0.2:80/612.html";
/// The domUs of each round, in order: (domain name, its ready line as a `grep -E` regex).
const GUESTS: [(&str, &str); 2] = [("fata", "fata: ready tcp/80"), ("linux", "DOMU-READY")];
/// The `xen` images whose sizes are reported.
const SIZED: [&str; 3] = ["hello", "http", "kv"];

/// Rounds of the launch figures (each starts both domUs once).
fn runs(quick: bool) -> usize {
    if quick { 1 } else { 3 }
}

/// Seconds of each `wrk` run.
fn wrk_secs(quick: bool) -> u32 {
    if quick { 2 } else { 5 }
}

/// dom0's script: [`linux::SESSION_LIB`], then `runs` rounds of [`GUESTS`], `wrk` in the
/// last. Results: `NAME_ready_ms_I`, `NAME_http_ms_I` and `NAME_wrk_rps`.
fn script(runs: usize, wrk_secs: u32) -> String {
    let mut s = String::from(linux::SESSION_LIB);
    for i in 1..=runs {
        for (name, ready) in GUESTS {
            let _ = writeln!(
                s,
                "timed_start {name} /etc/xen/{name}.cfg '{ready}' {URL}\n\
                 result {name}_ready_ms_{i} $ready_ms\n\
                 result {name}_http_ms_{i} $http_ms\n\
                 check_page {URL} /guest/page.html"
            );
            if i == runs {
                let _ = writeln!(s, "wrk_load {name} {URL} {wrk_secs}");
            }
            let _ = writeln!(s, "stop {name}");
        }
    }
    s
}

/// The session's output between `WRK-BEGIN name` and `WRK-END name`.
fn wrk_report(out: &Output, name: &str) -> String {
    let (begin, end) = (format!("WRK-BEGIN {name}"), format!("WRK-END {name}"));
    out.lines
        .iter()
        .skip_while(|l| !l.text.contains(&begin))
        .skip(1)
        .take_while(|l| !l.text.contains(&end))
        .map(|l| format!("{}\n", l.text.trim()))
        .collect()
}

/// The values of the results `key_1` .. `key_runs`.
fn series(out: &Output, key: &str, runs: usize) -> Result<Vec<f64>> {
    (1..=runs)
        .map(|i| out.number(&format!("{key}_{i}")).map(|v| v as f64))
        .collect()
}

/// Measures the Xen figures into `rows`; returns the notes that describe the set-up and the
/// session.
pub(super) fn xen_figures(quick: bool, rows: &mut Vec<Row>) -> Result<String> {
    let page = page();
    let mut fata_http = None;
    let mut sizes = Vec::new();
    for ex in SIZED {
        let img = release_build(Target::Xen, ex)?;
        let file = std::fs::metadata(&img.path)?.len();
        sizes.push((ex, file, stripped_size(&img.path)?));
        if ex == "http" {
            fata_http = Some(img);
        }
    }
    let fata_http = fata_http.ok_or_else(|| Error("no http image".into()))?;
    let h = xen::prepare()?;
    let domu = linux::domu_image(true, false, &page)?;
    let kernel_bytes = std::fs::metadata(&domu.kernel)?.len();
    let linux_bytes = kernel_bytes + domu.initrd.len() as u64;
    let kib = |b: u64| b as f64 / 1024.0;
    for (ex, file, stripped) in &sizes {
        let linux = if *ex == "http" {
            kib(linux_bytes)
        } else {
            f64::NAN
        };
        let mut r = row(
            &format!("xen image size: {ex} (stripped, file; Linux: bzImage + initramfs)"),
            kib(*stripped),
            linux,
            "KiB",
            "",
        );
        r.fata = format!("{} (file {:.0} KiB)", r.fata, kib(*file));
        rows.push(r);
    }

    let fata_cfg = linux::harness_config(&XlConfig {
        name: "fata".into(),
        kernel: "/guest/fata.elf".into(),
        memory_mib: linux::DOMU_MIB,
        vifs: vec![linux::VIF.into()],
        extra: "ipv4=10.0.0.2/24".into(),
        tsc_native: true,
        ..Default::default()
    })?;
    let mut files = domu.files("linux", false)?;
    files.extend([
        (
            "/guest/fata.elf".to_string(),
            std::fs::read(&fata_http.path)?,
            false,
        ),
        ("/etc/xen/fata.cfg".into(), fata_cfg.into_bytes(), false),
        ("/guest/page.html".into(), page.clone(), false),
    ]);
    files.extend(linux::wrk_files(&h)?);
    let (runs, secs) = (runs(quick), wrk_secs(quick));
    let session = Session {
        files,
        script: script(runs, secs),
        timeout: Duration::from_secs(300),
    };
    // Every serial line, for a post-mortem; the results on the terminal as they come.
    let log_path = crate::root().join("target/bench/xen-session.log");
    std::fs::create_dir_all(log_path.parent().unwrap_or(&log_path))?;
    let mut log = std::fs::File::create(&log_path)?;
    let out = xen::run(&h, &session, &mut |l| {
        use std::io::Write;
        let _ = writeln!(log, "{:8.3} {}", l.at.as_secs_f64(), l.text);
        if l.text.contains("DOM0-RESULT") || l.text.contains("DOM0-FAIL") {
            eprintln!("{:8.3} {}", l.at.as_secs_f64(), l.text.trim());
        }
    })?;
    if !out.ok() {
        bail!(
            "the Xen benchmark session failed (every line: {})\n{}",
            log_path.display(),
            out.summary()
        );
    }

    let [fata, linux_name] = GUESTS.map(|(n, _)| n);
    let mut fr = series(&out, &format!("{fata}_ready_ms"), runs)?;
    let mut lr = series(&out, &format!("{linux_name}_ready_ms"), runs)?;
    let mut fh = series(&out, &format!("{fata}_http_ms"), runs)?;
    let mut lh = series(&out, &format!("{linux_name}_http_ms"), runs)?;
    rows.push(range_row(
        &format!("xen: xl create → ready line in the console log (median of {runs})"),
        &mut fr,
        &mut lr,
        "",
    ));
    rows.push(range_row(
        &format!("xen: xl create → first HTTP 200 of /612.html from dom0 (median of {runs})"),
        &mut fh,
        &mut lh,
        "",
    ));
    let fw = parse_wrk(&wrk_report(&out, fata))?;
    let lw = parse_wrk(&wrk_report(&out, linux_name))?;
    rows.push(row(
        &format!("xen: wrk -t1 -c16 -d{secs}s from dom0, keep-alive, /612.html: requests/s"),
        fw.0,
        lw.0,
        "req/s",
        "",
    ));
    rows.push(row("xen: wrk 16 conn: latency p50", fw.1, lw.1, "ms", ""));
    rows.push(row("xen: wrk 16 conn: latency p99", fw.2, lw.2, "ms", ""));

    let session_s = out.done.map_or(out.elapsed, |(t, _)| t).as_secs_f64();
    let dom0_s = out.dom0_ready.map_or(f64::NAN, |t| t.as_secs_f64());
    let hypervisor = h
        .packages
        .iter()
        .find(|p| p.starts_with("xen-hypervisor"))
        .map_or("Xen 4.17", String::as_str);
    let mut notes = format!(
        "Xen ({hypervisor}) under QEMU TCG (`-M q35 -cpu {cpu}`, 2 vCPUs, 2 GiB), with a busybox \
         dom0 (768 MiB, 1 vCPU) that drives the domUs with `xl`. One harness session runs \
         {runs} round(s) of: fata's `http` (release `xen` image, `ipv4=10.0.0.2/24`), then a \
         Linux {kver} PVH domU (Debian's cloud kernel, busybox init, xen-netfront, nginx with \
         the configuration of the QEMU Linux guest above); each is destroyed before the next \
         starts. Both: PVH, {mib} MiB, 1 vCPU, `tsc_mode=\"native\"`, one vif routed by dom0 \
         (10.0.0.1), no disk, AVX hidden from CPUID (`cpuid = \"host,avx=0,avx2=0\"`: Linux's busybox \
         died of an invalid-opcode trap on an AVX instruction under nested TCG), and the 612-byte page at `{URL}`, whose sha256 dom0 checks in \
         every round. dom0 times from `xl create` (its 10 ms clock) to the domU's ready line in \
         its console log (`fata: ready tcp/80`, `DOMU-READY` after nginx started) and to the \
         first answered GET from dom0 (busybox `wget`, tried every 50 ms; dom0 resends ARP \
         requests every 50 ms so an address just taken is found within that). In the last \
         round dom0 loads each domU with `wrk -t1 -c16 -d{secs}s --latency` (keep-alive: the \
         16 connections stay open for the whole run). Nested TCG figures compare the two \
         systems within one session only. This session: dom0 ready {dom0_s:.1} s after QEMU \
         started, session {session_s:.1} s. `cargo xtask bench --only xen`.\n",
        cpu = xen::QEMU_CPU,
        kver = domu.kver,
        mib = linux::DOMU_MIB,
    );
    for (name, report) in [
        (fata, wrk_report(&out, fata)),
        (linux_name, wrk_report(&out, linux_name)),
    ] {
        if let Some(errors) = report.lines().find(|l| l.starts_with("Socket errors")) {
            let _ = writeln!(notes, "\nwrk against {name}: {errors}");
        }
    }
    let _ = writeln!(
        notes,
        "\nLinux domU: bzImage {:.0} KiB + initramfs {:.0} KiB (uncompressed cpio).",
        kib(kernel_bytes),
        kib(domu.initrd.len() as u64)
    );
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Line;

    #[test]
    fn every_round_times_both_domus_in_turn_and_only_the_last_runs_wrk() {
        let s = script(2, 5);
        let at = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle}\n{s}"));
        assert!(at("result fata_ready_ms_1") < at("stop fata"));
        assert!(at("stop fata") < at("timed_start linux"));
        assert!(at("result linux_http_ms_1") < at("result fata_ready_ms_2"));
        assert_eq!(s.matches("wrk_load ").count(), 2);
        assert!(at("result fata_http_ms_2") < at("wrk_load fata"));
        assert!(
            at("wrk_load fata")
                < at(
                    "stop fata\ntimed_start linux /etc/xen/linux.cfg 'DOMU-READY' http://10.0.0.2:80/612.html\nresult linux_ready_ms_2"
                )
        );
        assert_eq!(
            s.matches("check_page ").count(),
            4,
            "one per domU and round"
        );
    }

    #[test]
    fn the_wrk_report_of_a_domu_is_cut_from_the_console_between_its_markers() {
        let mut out = Output::default();
        for t in [
            "WRK-BEGIN fata",
            "  Latency Distribution",
            "     50%  1.50ms",
            "\r     99%  12.00ms",
            "Requests/sec:   1234.50",
            "WRK-END fata",
            "WRK-BEGIN linux",
            "Requests/sec:    99.00",
            "WRK-END linux",
        ] {
            out.lines.push(Line {
                at: Duration::ZERO,
                text: t.into(),
            });
        }
        let (rps, p50, p99) = parse_wrk(&wrk_report(&out, "fata")).unwrap();
        assert_eq!((rps, p50, p99), (1234.5, 1.5, 12.0));
        assert_eq!(parse_wrk(&wrk_report(&out, "linux")).unwrap().0, 99.0);
        assert!(wrk_report(&out, "none").is_empty());
    }
}
