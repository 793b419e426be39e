//! `cargo xtask bench` (compare): fata against a Linux guest on the same QEMU machine type,
//! accelerator, memory and network set-up, figure by figure, runs alternating between the two
//! systems so machine drift hits both alike. Prints a table and writes it (with the machine,
//! QEMU version, date and commands) to `docs/benchmarks.md` (or, with `--quick`, to
//! `target/bench/benchmarks-quick.md`).

use crate::build::{BuildOpts, Image, build, stripped_size};
use crate::linux_guest::{self, LinuxGuest};
use crate::netns::Netns;
use crate::qemu::NetBackend;
use crate::runner::{BootOpts, Running, boot};
use crate::target::Target;
use crate::{Result, bail, cmd};
use std::fmt::Write as _;
use std::time::Duration;

mod app;
mod image;
mod limits;
mod storage;
mod tls;
mod xen;

pub use storage::{KvFigures, kv_load, kv_load_cli};

/// Options of a comparison run.
#[derive(Clone, Debug, Default)]
pub struct CompareOpts {
    /// Fewer runs and shorter measurements (a smoke run, not figures to quote).
    pub quick: bool,
    /// Only this figure group: size, boot, memory, limits, wrk, bulk, tls, hosted, storage,
    /// xen, image, app.
    pub only: Option<String>,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// What is measured.
    pub figure: String,
    /// fata's value, formatted.
    pub fata: String,
    /// Linux's value, formatted.
    pub linux: String,
    /// fata / Linux, when both are numbers.
    pub ratio: Option<f64>,
    /// The goal the figure is held against, if any.
    pub goal: String,
}

pub(crate) fn row(figure: &str, fata: f64, linux: f64, unit: &str, goal: &str) -> Row {
    let fmt = |v: f64| {
        if v.is_nan() {
            "n/a".to_string()
        } else {
            format!("{} {unit}", trim(v))
        }
    };
    Row {
        figure: figure.into(),
        fata: fmt(fata),
        linux: fmt(linux),
        ratio: (fata.is_finite() && linux.is_finite() && linux != 0.0).then(|| fata / linux),
        goal: goal.into(),
    }
}

fn trim(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

const FATA_MACHINE: &str = "microvm,rtc=on,acpi=off";
const LINUX_MACHINE: &str = "microvm,rtc=on";
const MEMORY_MIB: u32 = 256;
pub(crate) const GUEST_IP: &str = "10.77.0.2";
/// fata's TCP buffers for the bulk figures. The default (16 KiB, sized for many small
/// connections in little memory) caps the receive window and so the throughput (37 MB/s here
/// against 65 MB/s with 256 KiB); Linux tunes its buffers up to megabytes by itself.
const BULK_BUFFER: &str = "tcp_buffer=262144";

/// The two systems under test.
struct Systems {
    /// The http example as built by default (with HTTPS and ACME).
    http: Image,
    /// The http example without its default features: the plain-HTTP site, the build the
    /// size and memory goals were set for.
    http_minimal: Image,
    echo: Image,
    linux: LinuxGuest,
    linux_image: Image,
    tsc_khz: u64,
}

impl Systems {
    fn fata_opts(&self, mib: u32) -> BootOpts {
        let mut o = BootOpts::default();
        o.qemu.machine_args = Some(FATA_MACHINE.into());
        o.qemu.memory_mib = mib;
        o
    }

    fn linux_opts(&self, mib: u32, cmdline_extra: &str) -> BootOpts {
        let mut o = BootOpts::default();
        o.qemu.machine_args = Some(LINUX_MACHINE.into());
        o.qemu.memory_mib = mib;
        o.qemu.initrd = Some(self.linux.initrd.clone());
        o.qemu.debug_exit = false;
        o.args = vec![
            "console=ttyS0".into(),
            "quiet".into(),
            "panic=-1".into(),
            format!("tsc_early_khz={}", self.tsc_khz),
        ];
        o.args
            .extend(cmdline_extra.split_whitespace().map(str::to_string));
        o
    }
}

/// A guest booted for a measurement.
struct Booted {
    vm: Running,
    ready_after_ms: f64,
    guest_boot_ms: f64,
}

fn wait_ready(vm: Running, needle: &str) -> Result<Booted> {
    let line = match vm.wait_for_line(needle, Duration::from_secs(60)) {
        Ok(l) => l,
        Err(e) => {
            let out = vm.wait(Duration::from_secs(1))?;
            let tail: Vec<String> = out
                .lines
                .iter()
                .rev()
                .take(15)
                .rev()
                .map(|l| l.text.clone())
                .collect();
            bail!(
                "{e}; last console lines:\n{}\n{}",
                tail.join("\n"),
                out.stderr
            );
        }
    };
    // "fata: ready tcp/80 after 21 ms" / "linux: ready tcp/80 after 2.31 s"
    let guest = line.text.split(" after ").nth(1).and_then(|t| {
        let mut w = t.split_whitespace();
        let v: f64 = w.next()?.parse().ok()?;
        Some(if w.next() == Some("s") { v * 1000.0 } else { v })
    });
    Ok(Booted {
        ready_after_ms: line.at.as_secs_f64() * 1000.0,
        guest_boot_ms: guest.unwrap_or(f64::NAN),
        vm,
    })
}

fn boot_fata(img: &Image, opts: BootOpts, ready: &str) -> Result<Booted> {
    wait_ready(boot(img, &opts)?, ready)
}

static LINUX_RETRIES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Boots the Linux guest. A guest that prints nothing at all within a minute is started once
/// more (seen occasionally under TCG here); retries are counted in the report.
fn boot_linux(s: &Systems, opts: BootOpts) -> Result<Booted> {
    match wait_ready(boot(&s.linux_image, &opts)?, "linux: ready tcp/80") {
        Ok(b) => Ok(b),
        Err(e) => {
            LINUX_RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            eprintln!("xtask: the Linux guest did not come up ({e}); starting it again");
            wait_ready(boot(&s.linux_image, &opts)?, "linux: ready tcp/80")
        }
    }
}

pub(crate) fn first_200(addr: std::net::SocketAddr, limit: Duration) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if crate::client::get(addr, "/612.html")
            .is_ok_and(|r| r.status == 200 && r.body.len() == 612)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

pub(crate) fn user_net(o: &mut BootOpts, guest_port: u16) -> std::net::SocketAddr {
    let port = free_port();
    o.qemu.net = Some(NetBackend::User {
        forwards: vec![(port, guest_port)],
    });
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

fn tap(o: &mut BootOpts, ns: &Netns) {
    o.netns = Some(ns.name.clone());
    o.qemu.net = Some(NetBackend::Tap {
        ifname: "tap0".into(),
    });
}

/// The 612-byte page both systems serve (nginx's default page is 612 bytes too).
pub fn page() -> Vec<u8> {
    std::fs::read(crate::root().join("examples/http/site/612.html")).unwrap_or_default()
}

/// Builds an example for `virtio`, release.
pub(crate) fn release_image(example: &str) -> Result<Image> {
    release_build(Target::Virtio, example)
}

/// Builds an example for `target`, release.
pub(crate) fn release_build(target: Target, example: &str) -> Result<Image> {
    build(&BuildOpts {
        target,
        example: example.into(),
        release: true,
    })
}

fn prepare() -> Result<Systems> {
    crate::qemu::find()?;
    let http = release_image("http")?;
    let http_minimal = crate::build::build_minimal(&BuildOpts {
        target: Target::Virtio,
        example: "http".into(),
        release: true,
    })?;
    let echo = release_image("echo")?;
    let page = page();
    if page.len() != 612 {
        bail!(
            "examples/http/site/612.html must be 612 bytes, it is {}",
            page.len()
        );
    }
    let linux = linux_guest::prepare(&page)?;
    let linux_image = Image {
        target: Target::Virtio,
        path: linux.kernel.clone(),
    };
    let tsc_khz = measure_tsc_khz()?;
    Ok(Systems {
        http,
        http_minimal,
        echo,
        linux,
        linux_image,
        tsc_khz,
    })
}

/// The TSC frequency as fata's boot measures it ("TSC 2.606 GHz (PIT-calibrated)"). The
/// Linux guest is given it (`tsc_early_khz=`): its own PIT calibration fails when this machine
/// is busy, and the guest then hangs with no clock source (seen here) — KVM clouds hand the
/// frequency to guests the same way.
fn measure_tsc_khz() -> Result<u64> {
    let hello = build(&BuildOpts {
        target: Target::Virtio,
        example: "hello".into(),
        release: true,
    })?;
    let o = BootOpts {
        args: vec!["count=1".into()],
        ..Default::default()
    };
    let out = boot(&hello, &o)?.wait(Duration::from_secs(30))?;
    let line = out
        .lines
        .iter()
        .find(|l| l.text.contains(" TSC "))
        .map(|l| l.text.clone())
        .unwrap_or_default();
    let ghz: f64 = line
        .split(" TSC ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    if ghz <= 0.0 {
        bail!("could not read the TSC frequency from `hello`: {line:?}");
    }
    Ok((ghz * 1e6) as u64)
}

fn sizes(s: &Systems, rows: &mut Vec<Row>) -> Result<()> {
    for ex in crate::build::examples(&crate::root()) {
        let img = build(&BuildOpts {
            target: Target::Virtio,
            example: ex.clone(),
            release: true,
        })?;
        let kib = stripped_size(&img.path)? as f64 / 1024.0;
        let linux = if ex == "http" {
            (std::fs::metadata(&s.linux.kernel)?.len() + std::fs::metadata(&s.linux.initrd)?.len())
                as f64
                / 1024.0
        } else {
            f64::NAN
        };
        let goal = match ex.as_str() {
            "hello" => "≤ 100 KB",
            _ => "",
        };
        let what = if ex == "http" {
            "image size: http with HTTPS and ACME (default features; stripped; Linux: kernel + \
             initramfs)"
                .to_string()
        } else {
            format!("image size: {ex} (stripped; Linux: kernel + initramfs)")
        };
        rows.push(row(&what, kib, linux, "KiB", goal));
    }
    // The plain-HTTP site, what the size goal was set for: the same app built with
    // `--no-default-features` (no TLS in the image).
    let kib = stripped_size(&s.http_minimal.path)? as f64 / 1024.0;
    let linux = (std::fs::metadata(&s.linux.kernel)?.len()
        + std::fs::metadata(&s.linux.initrd)?.len()) as f64
        / 1024.0;
    rows.push(row(
        "image size: http without HTTPS (--no-default-features; stripped; Linux: kernel + \
         initramfs)",
        kib,
        linux,
        "KiB",
        "≤ 512 KiB",
    ));
    Ok(())
}

/// A row of millisecond figures shown as "median (min–max)".
pub(crate) fn range_row(figure: &str, fata: &mut [f64], linux: &mut [f64], goal: &str) -> Row {
    let span = |v: &mut [f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        let m = median(v);
        (m, format!("{} ms ({}–{})", trim(m), trim(lo), trim(hi)))
    };
    let (fm, ft) = span(fata);
    let (lm, lt) = span(linux);
    let mut r = row(figure, fm, lm, "ms", goal);
    r.fata = ft;
    r.linux = lt;
    r
}

fn boot_times(s: &Systems, runs: usize, rows: &mut Vec<Row>) -> Result<()> {
    let (mut fr, mut f2, mut fg, mut lr, mut l2, mut lg) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let mut o = s.fata_opts(MEMORY_MIB);
        let addr = user_net(&mut o, 80);
        let b = boot_fata(&s.http, o, "fata: ready tcp/80")?;
        if !first_200(addr, Duration::from_secs(10)) {
            bail!("fata: no HTTP 200");
        }
        f2.push(b.vm.elapsed().as_secs_f64() * 1000.0);
        fr.push(b.ready_after_ms);
        fg.push(b.guest_boot_ms);
        drop(b);
        let mut o = s.linux_opts(MEMORY_MIB, "");
        let addr = user_net(&mut o, 80);
        let b = boot_linux(s, o)?;
        if !first_200(addr, Duration::from_secs(30)) {
            bail!("linux: no HTTP 200");
        }
        l2.push(b.vm.elapsed().as_secs_f64() * 1000.0);
        lr.push(b.ready_after_ms);
        lg.push(b.guest_boot_ms);
    }
    rows.push(range_row(
        &format!("launch → first HTTP 200, user networking (median of {runs})"),
        &mut f2,
        &mut l2,
        "fata ≤ 1/20 of Linux",
    ));
    rows.push(range_row(
        &format!("launch → ready line (median of {runs})"),
        &mut fr,
        &mut lr,
        "",
    ));
    rows.push(row(
        "guest-side boot → ready, by the guest clock (median)",
        median(&mut fg),
        median(&mut lg),
        "ms",
        "",
    ));
    Ok(())
}

/// Waits until the guest in `ns` answers HTTP (a fresh neighbour entry first: the previous
/// guest on the TAP device had the same MAC address and may have left a failed one).
fn reachable(ns: &Netns, netclient: &str) -> Result<()> {
    ns.ip(&["neigh", "flush", "dev", "tap0"]);
    let (ok, out) = ns.run(netclient, &["wait", GUEST_IP, "80", "20"]);
    if !ok {
        bail!("the guest does not answer on the TAP device: {out}");
    }
    Ok(())
}

/// wrk with keep-alive connections against `url` for `secs` seconds, from inside `ns`:
/// requests/s and the p50 and p99 latencies in ms.
fn wrk(ns: &Netns, url: &str, conns: u32, secs: u32) -> Result<(f64, f64, f64)> {
    let threads = conns.min(2).to_string();
    let (ok, out) = ns.run(
        "wrk",
        &[
            "-t",
            &threads,
            "-c",
            &conns.to_string(),
            "-d",
            &format!("{secs}s"),
            "--latency",
            url,
        ],
    );
    if !ok {
        bail!("wrk failed (apt-get install wrk): {out}");
    }
    parse_wrk(&out)
}

/// Requests/s and the p50 and p99 latencies in ms of a `wrk --latency` report; an error if
/// wrk saw answers other than 2xx.
pub(crate) fn parse_wrk(out: &str) -> Result<(f64, f64, f64)> {
    let field = |prefix: &str| -> Option<&str> {
        out.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim())
    };
    let lat = |v: Option<&str>| -> f64 {
        let Some(v) = v else { return f64::NAN };
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            _ => f64::NAN,
        }
    };
    if out.contains("Non-2xx") {
        bail!("wrk saw non-2xx answers: {out}");
    }
    let rps: f64 = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    Ok((rps, lat(field("50%")), lat(field("99%"))))
}

/// What the request path's metrics cost: the http example at 16 keep-alive connections with
/// its request-latency histogram on (the default) and off (`request_metrics=false`), booted
/// alternately (3 rounds each, medians; 1 round with `--quick`). The counters stay on in
/// both: each is one relaxed atomic add.
fn metrics_cost(
    s: &Systems,
    ns: &Netns,
    quick: bool,
    netclient: &str,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let (secs, rounds) = if quick { (1, 1) } else { (5, 3) };
    let mut on = Vec::new();
    let mut off = Vec::new();
    for _ in 0..rounds {
        for (metrics, out) in [(true, &mut on), (false, &mut off)] {
            let mut o = s.fata_opts(MEMORY_MIB);
            o.args = vec![
                format!("ipv4={GUEST_IP}/24"),
                format!("request_metrics={metrics}"),
            ];
            tap(&mut o, ns);
            let _b = boot_fata(&s.http, o, "fata: ready tcp/80")?;
            reachable(ns, netclient)?;
            out.push(wrk(ns, &format!("http://{GUEST_IP}/612.html"), 16, secs)?.0);
        }
    }
    rows.push(row(
        "wrk 16 conn, request-latency histogram on (default): requests/s",
        median(&mut on),
        f64::NAN,
        "req/s",
        "",
    ));
    rows.push(row(
        "wrk 16 conn, request-latency histogram off (request_metrics=false): requests/s",
        median(&mut off),
        f64::NAN,
        "req/s",
        "",
    ));
    Ok(())
}

fn wrk_figures(
    s: &Systems,
    ns: &Netns,
    quick: bool,
    netclient: &str,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let secs = if quick { 1 } else { 5 };
    let mut fo = s.fata_opts(MEMORY_MIB);
    fo.args = vec![format!("ipv4={GUEST_IP}/24")];
    tap(&mut fo, ns);
    let mut lo = s.linux_opts(MEMORY_MIB, &format!("fata_ipv4={GUEST_IP}/24"));
    tap(&mut lo, ns);
    let mut results = Vec::new();
    for conns in [1u32, 16, 64] {
        // Alternate: fata, then Linux, for each connection count.
        let f = {
            let _b = boot_fata(&s.http, fo.clone(), "fata: ready tcp/80")?;
            reachable(ns, netclient)?;
            wrk(ns, &format!("http://{GUEST_IP}/612.html"), conns, secs)?
        };
        let l = {
            let _b = boot_linux(s, lo.clone())?;
            reachable(ns, netclient)?;
            wrk(ns, &format!("http://{GUEST_IP}/612.html"), conns, secs)?
        };
        results.push((conns, f, l));
    }
    for (c, f, l) in &results {
        rows.push(row(
            &format!("wrk 612-byte page, keep-alive, {c} conn: requests/s"),
            f.0,
            l.0,
            "req/s",
            "fata ≥ 3× Linux",
        ));
    }
    for (c, f, l) in &results {
        rows.push(row(
            &format!("wrk {c} conn: latency p50"),
            f.1,
            l.1,
            "ms",
            "",
        ));
        rows.push(row(
            &format!("wrk {c} conn: latency p99"),
            f.2,
            l.2,
            "ms",
            "",
        ));
    }
    Ok(())
}

fn bulk_figures(
    s: &Systems,
    ns: &Netns,
    quick: bool,
    netclient: &str,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let bytes: usize = if quick { 4 << 20 } else { 32 << 20 };
    let mb_s = |out: &str| -> f64 {
        out.split(": ")
            .last()
            .and_then(|t| t.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let run = |args: &[&str]| -> Result<f64> {
        let (ok, out) = ns.run(netclient, args);
        if !ok {
            bail!("netclient {}: {out}", args.join(" "));
        }
        Ok(mb_s(out.lines().next().unwrap_or("")))
    };
    let mut fo = s.fata_opts(MEMORY_MIB);
    tap(&mut fo, ns);
    let mut lo = s.linux_opts(MEMORY_MIB, &format!("fata_ipv4={GUEST_IP}/24"));
    tap(&mut lo, ns);
    let f_in = {
        let mut o = fo.clone();
        o.args = vec![
            format!("ipv4={GUEST_IP}/24"),
            "mode=sink".into(),
            BULK_BUFFER.into(),
        ];
        let _b = boot_fata(&s.echo, o, "fata: ready tcp/7")?;
        ns.ip(&["neigh", "flush", "dev", "tap0"]);
        run(&["send", GUEST_IP, "7", &bytes.to_string()])?
    };
    let (l_in, l_out) = {
        let _b = boot_linux(s, lo.clone())?;
        reachable(ns, netclient)?;
        (
            run(&["send", GUEST_IP, "7", &bytes.to_string()])?,
            run(&["recv", GUEST_IP, "9"])?,
        )
    };
    let f_out = {
        let mut o = fo.clone();
        o.args = vec![
            format!("ipv4={GUEST_IP}/24"),
            "mode=source".into(),
            "bytes=33554432".into(),
            BULK_BUFFER.into(),
        ];
        let _b = boot_fata(&s.echo, o, "fata: ready tcp/7")?;
        ns.ip(&["neigh", "flush", "dev", "tap0"]);
        run(&["recv", GUEST_IP, "7"])?
    };
    rows.push(row(
        "bulk TCP host → guest (TAP)",
        f_in,
        l_in,
        "MB/s",
        "fata ≥ Linux",
    ));
    rows.push(row(
        "bulk TCP guest → host (TAP)",
        f_out,
        l_out,
        "MB/s",
        "fata ≥ Linux",
    ));
    Ok(())
}

/// The hosted comparison: the `unix` build of `http`, in direct mode (fata's stack on a TAP
/// device) and socket mode (the host's sockets), against a small std Rust server
/// (`tests/src/bin/stdhttp.rs`, a thread per connection), all in the same network namespace,
/// wrk at 1, 16 and 64 connections.
fn hosted_figures(ns: &Netns, quick: bool, rows: &mut Vec<Row>) -> Result<()> {
    let secs = if quick { 1 } else { 5 };
    let unix_http = build(&BuildOpts {
        target: Target::Unix,
        example: "http".into(),
        release: true,
    })?;
    let mut c = crate::build::cargo();
    c.current_dir(crate::root()).args([
        "build",
        "--release",
        "--package",
        "fata-tests",
        "--bin",
        "stdhttp",
    ]);
    cmd::run(&mut c, "building stdhttp")?;
    let stdhttp = crate::root().join("target/release/stdhttp");
    let page = crate::root().join("examples/http/site/612.html");
    let wrk_at = |url: &str, conns: u32| -> Result<f64> { wrk(ns, url, conns, secs).map(|r| r.0) };
    let start = |program: &std::path::Path, args: &[&str], ready: &str| -> Result<Running> {
        let img = Image {
            target: Target::Unix,
            path: program.to_path_buf(),
        };
        let mut o = BootOpts {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        o.netns = Some(ns.name.clone());
        let r = boot(&img, &o)?;
        r.wait_for_line(ready, Duration::from_secs(30))?;
        Ok(r)
    };
    // Starts one server, measures it at `conns` connections, stops it.
    let measure = |program: &std::path::Path,
                   args: &[&str],
                   ready: &str,
                   url: &str,
                   conns: u32|
     -> Result<f64> {
        let _server = start(program, args, ready)?;
        ns.ip(&["neigh", "flush", "dev", "tap0"]);
        wrk_at(url, conns)
    };
    let direct_ip = format!("ipv4={GUEST_IP}/24");
    let direct_url = format!("http://{GUEST_IP}/612.html");
    let mut results: Vec<(u32, f64, f64, f64)> = Vec::new();
    for conns in [1u32, 16, 64] {
        let std_args = ["127.0.0.1:8081", page.to_str().unwrap_or("")];
        let std_rps = measure(
            &stdhttp,
            &std_args,
            "stdhttp: ready",
            "http://127.0.0.1:8081/612.html",
            conns,
        )?;
        let socket_args = ["net=socket", "port=8082"];
        let socket = measure(
            &unix_http.path,
            &socket_args,
            "fata: ready tcp/8082",
            "http://127.0.0.1:8082/612.html",
            conns,
        )?;
        let direct_args = ["net=tap:tap0", direct_ip.as_str()];
        let direct = measure(
            &unix_http.path,
            &direct_args,
            "fata: ready tcp/80",
            &direct_url,
            conns,
        )?;
        results.push((conns, socket, direct, std_rps));
    }
    for (c, socket, direct, std_rps) in results {
        rows.push(row(
            &format!("unix http, socket mode, {c} conn: requests/s"),
            socket,
            std_rps,
            "req/s",
            "",
        ));
        rows.push(row(
            &format!("unix http, direct mode (TAP), {c} conn: requests/s"),
            direct,
            std_rps,
            "req/s",
            "",
        ));
    }
    Ok(())
}

fn render(rows: &[Row]) -> String {
    let mut t = String::from(
        "| figure | fata | Linux guest | fata / Linux | goal |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        let ratio = r.ratio.map_or("–".to_string(), |x| {
            if x >= 0.1 {
                format!("{x:.2}")
            } else {
                format!("{x:.3}")
            }
        });
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} |",
            r.figure, r.fata, r.linux, ratio, r.goal
        );
    }
    t
}

fn machine_info() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let qemu = std::process::Command::new(crate::qemu::QEMU)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "- machine: {cpu}, {cores} cores (shared)\n- {qemu}, accelerator TCG (`-accel tcg -cpu max`)\n- date: {date}\n"
    )
}

/// Runs the comparison and returns the table (markdown).
pub fn run(opts: &CompareOpts) -> Result<String> {
    let s = prepare()?;
    let want = |g: &str| opts.only.as_deref().is_none_or(|o| o == g);
    if let Some(o) = &opts.only
        && ![
            "size", "boot", "memory", "limits", "wrk", "bulk", "tls", "hosted", "storage", "xen",
            "image", "app",
        ]
        .contains(&o.as_str())
    {
        bail!(
            "unknown figure group `{o}`; the groups are: size, boot, memory, limits, wrk, bulk, tls, hosted, storage, xen, image, app"
        );
    }
    let runs = if opts.quick { 2 } else { 10 };
    let mut rows = Vec::new();
    let mut tls_rows = Vec::new();
    let mut tls_notes = String::new();
    if want("boot") {
        boot_times(&s, runs, &mut rows)?;
    }
    if want("memory") || want("limits") || want("wrk") || want("bulk") || want("tls") {
        let mut c = crate::build::cargo();
        c.current_dir(crate::root()).args([
            "build",
            "--package",
            "fata-tests",
            "--bin",
            "netclient",
        ]);
        cmd::run(&mut c, "building netclient")?;
        let netclient = crate::root()
            .join("target/debug/netclient")
            .to_string_lossy()
            .into_owned();
        let ns = Netns::new("bench", 1500);
        if want("memory") {
            limits::smallest_memory(&s, &ns, &netclient, opts.quick, &mut rows)?;
        }
        if want("limits") {
            limits::limit_figures(&s, &ns, &netclient, opts.quick, &mut rows)?;
        }
        if want("wrk") {
            wrk_figures(&s, &ns, opts.quick, &netclient, &mut rows)?;
            metrics_cost(&s, &ns, opts.quick, &netclient, &mut rows)?;
        }
        if want("bulk") {
            bulk_figures(&s, &ns, opts.quick, &netclient, &mut rows)?;
        }
        if want("tls") {
            tls_notes = tls::tls_figures(&s, &ns, opts.quick, &netclient, &mut tls_rows)?;
        }
    }
    if want("size") {
        sizes(&s, &mut rows)?;
    }
    let mut storage_rows = Vec::new();
    let mut storage_notes = String::new();
    if want("storage") {
        let ns = Netns::new("storage", 1500);
        storage_notes = storage::storage_figures(&s, &ns, opts.quick, &mut storage_rows)?;
    }
    let mut xen_rows = Vec::new();
    let mut xen_notes = String::new();
    if want("xen") {
        xen_notes = xen::xen_figures(opts.quick, &mut xen_rows)?;
    }
    let mut image_rows = Vec::new();
    let mut image_notes = String::new();
    if want("image") {
        image_notes = image::image_figures(opts.quick, &mut image_rows)?;
    }
    let mut app_rows = Vec::new();
    let mut app_notes = String::new();
    if want("app") {
        app_notes = app::app_figures(opts.quick, &mut app_rows)?;
    }
    let mut hosted = Vec::new();
    if want("hosted") {
        let ns = Netns::new("hosted", 1500);
        hosted_figures(&ns, opts.quick, &mut hosted)?;
    }
    let table = render(&rows);
    let hosted_table = render(&hosted).replace(
        "| Linux guest | fata / Linux |",
        "| std Rust server | fata / std |",
    );
    let mut doc = String::from("# Benchmarks: fata against a Linux guest\n\n");
    if opts.quick {
        doc.push_str("**Quick run (`--quick`): too few runs to quote.**\n\n");
    }
    doc.push_str(&machine_info());
    let _ = writeln!(
        doc,
        "- fata: `http`/`echo` examples (release), QEMU `-M {FATA_MACHINE}` (devices named on the command line)\n\
         - Linux: {}, QEMU `-M {LINUX_MACHINE}` (Debian's cloud kernel finds virtio-mmio devices through ACPI only; option ROMs boot its bzImage); kernel command line `console=ttyS0 quiet tsc_early_khz=<the TSC frequency fata measured>` (without it the kernel's PIT calibration fails when the machine is busy and it hangs)\n\
         - fata's bulk TCP figures use `tcp_buffer=262144` (the default, 16 KiB from 32 MiB of heap up, limits the window; Linux sizes its own buffers automatically)\n\
         - both: `-m {MEMORY_MIB}M` unless measuring memory, one vCPU, virtio-net; user networking for boot times, a TAP device in a network namespace for memory, connect bursts, wrk and bulk TCP (clients: `netclient` and `xtask::load`); runs alternate between the systems; medians quoted\n\
         - commands: `cargo xtask bench{}` (wrk from Debian; `tests/src/bin/netclient.rs` for bulk transfers)\n",
        s.linux.description,
        if opts.quick { " --quick" } else { "" }
    );
    doc.push('\n');
    doc.push_str(&table);
    let retries = LINUX_RETRIES.load(std::sync::atomic::Ordering::Relaxed);
    if retries > 0 {
        let _ = writeln!(
            doc,
            "\nThe Linux guest printed nothing within 60 s and was started again {retries} time(s) in this run (not counted in the figures)."
        );
    }
    let tls_table = render(&tls_rows);
    if !tls_rows.is_empty() {
        doc.push_str(
            "\n## HTTPS: the http example against nginx over TLS\n\n\
             fata's `http` example serving HTTPS with a certificate from its boot keys, against \
             the Linux guest's nginx with the same certificate and page. \
             `cargo xtask bench --only tls`.\n\n",
        );
        doc.push_str(&tls_notes);
        doc.push('\n');
        doc.push_str(&tls_table);
    }
    let storage_table = render(&storage_rows);
    if !storage_rows.is_empty() {
        doc.push_str(
            "\n## Storage: durable key-value commits and the raw disk\n\n\
             fata's `examples/kv` against the same HTTP API on Linux backed by SQLite and by redb, \
             and fata's `examples/blkbench` against fio on the raw disk. \
             `cargo xtask bench --only storage`.\n\n",
        );
        doc.push_str(&storage_notes);
        doc.push('\n');
        doc.push_str(&storage_table);
    }
    let xen_table = render(&xen_rows);
    if !xen_rows.is_empty() {
        doc.push_str(
            "\n## Xen: PVH domUs on a nested Xen\n\n\
             fata's `xen` images against a Linux PVH domU, side by side in one session of the \
             nested Xen harness (`xtask/src/xen.rs`).\n\n",
        );
        doc.push_str(&xen_notes);
        doc.push('\n');
        doc.push_str(&xen_table);
    }
    if !image_rows.is_empty() {
        doc.push_str("\n## Deployable artefacts: disk images and `cargo xtask release`\n\n");
        doc.push_str(&image_notes);
        doc.push('\n');
        doc.push_str(&render(&image_rows).replace(
            "| fata | Linux guest | fata / Linux |",
            "| fata | -kernel | disk / -kernel |",
        ));
    }
    if !app_rows.is_empty() {
        doc.push_str("\n## An app author's loop: `cargo fata`\n\n");
        doc.push_str(&app_notes);
        doc.push('\n');
        doc.push_str(&render(&app_rows));
    }
    if !hosted.is_empty() {
        doc.push_str(
            "\n## Hosted: the `unix` build against a small std Rust server\n\n\
             Same 612-byte page, same network namespace, wrk as above. The std server \
             (`tests/src/bin/stdhttp.rs`) runs a thread per connection; fata (one thread, async) \
             serves the same loopback in socket mode (`net=socket`); direct mode (`net=tap:tap0`) runs fata's own TCP/IP \
             stack over a TAP device.\n\n",
        );
        doc.push_str(&hosted_table);
    }
    let out = if opts.quick || opts.only.is_some() {
        crate::root().join("target/bench/benchmarks-quick.md")
    } else {
        crate::root().join("docs/benchmarks.md")
    };
    std::fs::create_dir_all(out.parent().unwrap())?;
    std::fs::write(&out, &doc)?;
    println!("{table}");
    if !tls_rows.is_empty() {
        println!("{tls_notes}\n{tls_table}");
    }
    if !storage_rows.is_empty() {
        println!("{storage_notes}\n{storage_table}");
    }
    if !xen_rows.is_empty() {
        println!("{xen_notes}\n{xen_table}");
    }
    if !hosted.is_empty() {
        println!("{hosted_table}");
    }
    eprintln!("xtask: wrote {}", out.display());
    Ok(doc)
}
