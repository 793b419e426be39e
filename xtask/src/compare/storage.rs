//! The storage figures of `cargo xtask bench` (`--only storage`): durable key-value commits and
//! the raw disk, fata against the Linux guest on the same QEMU machine, memory and disk flags
//! (a fresh sparse raw image per run, `cache=writeback`, virtio-blk on microvm).
//!
//! - **Key-value commits**: a host-side load generator ([`kv_load`], std threads on
//!   [`HttpConn`], run inside the benchmark's network namespace as `xtask bench kvload`) PUTs
//!   unique 24-byte keys with 150-byte values (the sizes of redb's benchmark) from 1 and from 16
//!   keep-alive clients, and counts the answers (201/204: durable) after a warm-up. fata runs
//!   `examples/kv` on its own log-structured store; Linux runs `linux-kv-server`
//!   (`tests/fixtures/linux-kv-server`, a static binary) on ext4, backed by SQLite (WAL,
//!   `synchronous=FULL`) or by redb (default durability), one commit per PUT.
//! - **Raw disk**: fata runs `examples/blkbench`; Linux runs Debian's fio with the same sizes
//!   ([`linux_guest::FIO_JOBS`]) on `/dev/vda`, unbuffered.

use super::{GUEST_IP, MEMORY_MIB, Row, Systems, boot_fata, boot_linux, release_image, row, tap};
use crate::client::HttpConn;
use crate::disk::DiskSpec;
use crate::linux_guest::{self, StorageGuest};
use crate::netns::Netns;
use crate::runner::{Exit, boot};
use crate::{Error, Result, bail, cmd};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Size of every disk image (created sparse, fresh for each run).
const DISK_BYTES: u64 = 256 << 20;
/// Key size of the PUTs (redb's benchmark: 24-byte keys, 150-byte values).
const KEY_BYTES: usize = 24;
/// Value size of the PUTs.
const VALUE_BYTES: usize = 150;
/// Client counts of the key-value figures.
const CLIENTS: [u32; 2] = [1, 16];
/// The two Linux engines, as `linux-kv-server` names them, and as the table does.
const ENGINES: [(&str, &str); 2] = [("sqlite", "Linux+SQLite"), ("redb", "Linux+redb")];

/// How long the measurements run.
#[derive(Clone, Copy, Debug)]
struct Timing {
    warmup: Duration,
    measure: Duration,
}

impl Timing {
    fn new(quick: bool) -> Timing {
        if quick {
            Timing {
                warmup: Duration::from_millis(500),
                measure: Duration::from_secs(2),
            }
        } else {
            Timing {
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs(10),
            }
        }
    }
}

/// What one key-value run measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KvFigures {
    /// Answered PUTs (each durable) sent and answered inside the measured window.
    pub commits: u64,
    /// The window, in seconds.
    pub secs: f64,
    /// Median PUT latency (send to answer), ms.
    pub p50_ms: f64,
    /// 99th percentile PUT latency, ms.
    pub p99_ms: f64,
}

impl KvFigures {
    /// Commits per second.
    pub fn per_sec(&self) -> f64 {
        self.commits as f64 / self.secs
    }

    /// The median of each figure over `runs`.
    fn median(runs: &[KvFigures]) -> KvFigures {
        let m =
            |f: fn(&KvFigures) -> f64| super::median(&mut runs.iter().map(f).collect::<Vec<_>>());
        KvFigures {
            commits: m(|r| r.commits as f64) as u64,
            secs: m(|r| r.secs),
            p50_ms: m(|r| r.p50_ms),
            p99_ms: m(|r| r.p99_ms),
        }
    }

    fn line(&self, clients: u32) -> String {
        format!(
            "kvload: clients={clients} commits={} secs={:.3} commits_per_s={:.1} p50_ms={:.3} p99_ms={:.3}",
            self.commits,
            self.secs,
            self.per_sec(),
            self.p50_ms,
            self.p99_ms
        )
    }

    fn parse(line: &str) -> Option<KvFigures> {
        let field = |name: &str| word_value(line, name);
        Some(KvFigures {
            commits: field("commits")? as u64,
            secs: field("secs")?,
            p50_ms: field("p50_ms")?,
            p99_ms: field("p99_ms")?,
        })
    }
}

/// The key of the `seq`-th PUT of client `client`: exactly [`KEY_BYTES`] bytes, unique.
fn key(client: u32, seq: u64) -> String {
    format!("c{client:03}-{seq:019}")
}

/// The value stored under `key`: [`VALUE_BYTES`] bytes derived from it, so a read can be checked.
fn value(key: &str) -> Vec<u8> {
    key.bytes()
        .chain(b"=".iter().copied())
        .cycle()
        .take(VALUE_BYTES)
        .collect()
}

/// The `p`-th percentile (0–100) of sorted values.
fn percentile(sorted: &[f64], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Waits (up to 20 s) until the server at `addr` answers HTTP at all.
fn wait_http(addr: SocketAddr) -> std::result::Result<(), String> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let r = HttpConn::connect(addr).and_then(|mut c| c.request("GET", "/kv/probe", &[]));
        match r {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= end => return Err(format!("no HTTP answer: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The load generator: `clients` threads, each on its own keep-alive connection, PUT unique
/// keys one after another for `warmup + measure`; a PUT counts if it was sent after the
/// warm-up and answered before the end. Any answer but 201 or 204 is an error. Afterwards the
/// first and last keys of client 0 are read back and compared.
pub fn kv_load(
    addr: SocketAddr,
    clients: u32,
    warmup: Duration,
    measure: Duration,
) -> std::result::Result<KvFigures, String> {
    wait_http(addr)?;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(clients as usize + 1));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let barrier = barrier.clone();
            std::thread::spawn(move || -> std::result::Result<(Vec<f64>, u64), String> {
                let conn = HttpConn::connect(addr).map_err(|e| format!("client {c}: {e}"));
                barrier.wait();
                let mut conn = conn?;
                let start = Instant::now();
                let (from, to) = (start + warmup, start + warmup + measure);
                let mut lat = Vec::new();
                let mut seq = 0u64;
                loop {
                    let t0 = Instant::now();
                    if t0 >= to {
                        return Ok((lat, seq));
                    }
                    let k = key(c, seq);
                    let r = conn
                        .request_with_body("PUT", &format!("/kv/{k}"), &[], Some(&value(&k)))
                        .map_err(|e| format!("client {c}, PUT {k}: {e}"))?;
                    if r.status != 201 && r.status != 204 {
                        return Err(format!(
                            "client {c}, PUT {k}: status {} ({})",
                            r.status,
                            String::from_utf8_lossy(&r.body).trim()
                        ));
                    }
                    let t1 = Instant::now();
                    if t0 >= from && t1 <= to {
                        lat.push((t1 - t0).as_secs_f64() * 1000.0);
                    }
                    seq += 1;
                }
            })
        })
        .collect();
    barrier.wait();
    let mut lat = Vec::new();
    let mut written = 0;
    let mut errors = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok((l, n))) => {
                lat.extend(l);
                if i == 0 {
                    written = n;
                }
            }
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a client thread panicked".into()),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    let mut conn = HttpConn::connect(addr).map_err(|e| format!("read-back: {e}"))?;
    for seq in [0, written.saturating_sub(1)] {
        let k = key(0, seq);
        let r = conn
            .request("GET", &format!("/kv/{k}"), &[])
            .map_err(|e| format!("GET {k}: {e}"))?;
        if r.status != 200 || r.body != value(&k) {
            return Err(format!(
                "GET {k} after the run: status {}, {} bytes: not the value written",
                r.status,
                r.body.len()
            ));
        }
    }
    lat.sort_by(f64::total_cmp);
    Ok(KvFigures {
        commits: lat.len() as u64,
        secs: measure.as_secs_f64(),
        p50_ms: percentile(&lat, 50),
        p99_ms: percentile(&lat, 99),
    })
}

/// `xtask bench kvload -- ADDR CLIENTS WARMUP_MS MEASURE_MS`: runs [`kv_load`] and prints its
/// figures as one `kvload: ...` line. The benchmark runs it inside its network namespace.
pub fn kv_load_cli(args: &[String]) -> Result<()> {
    let usage = || Error("usage: xtask bench kvload -- ADDR CLIENTS WARMUP_MS MEASURE_MS".into());
    let [addr, clients, warmup, measure] = args else {
        return Err(usage());
    };
    let addr: SocketAddr = addr.parse().map_err(|_| usage())?;
    let clients: u32 = clients.parse().map_err(|_| usage())?;
    let ms = |s: &str| s.parse().map(Duration::from_millis).map_err(|_| usage());
    let f = kv_load(addr, clients, ms(warmup)?, ms(measure)?).map_err(Error)?;
    println!("{}", f.line(clients));
    Ok(())
}

/// Builds the `xtask` binary, which runs the load generator inside the namespace. (The
/// running program is not always it: the benchmark also runs inside the test harness.)
fn build_xtask() -> Result<PathBuf> {
    let mut c = crate::build::cargo();
    c.current_dir(crate::root())
        .args(["build", "--package", "xtask", "--bin", "xtask"]);
    cmd::run(&mut c, "building xtask (the load generator)")?;
    Ok(crate::root().join("target/debug/xtask"))
}

/// Runs the load generator (`xtask`, at `xtask`) inside `ns` against the guest.
fn run_kv_load(xtask: &Path, ns: &Netns, clients: u32, t: Timing) -> Result<KvFigures> {
    let args = [
        "bench".to_string(),
        "kvload".into(),
        "--".into(),
        format!("{GUEST_IP}:80"),
        clients.to_string(),
        t.warmup.as_millis().to_string(),
        t.measure.as_millis().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out) = ns.run(&xtask.to_string_lossy(), &args);
    let line = out.lines().find(|l| l.starts_with("kvload: "));
    match line.and_then(KvFigures::parse) {
        Some(f) if ok => {
            eprintln!("xtask: {}", line.unwrap_or_default());
            Ok(f)
        }
        _ => bail!("the load generator failed: {}", out.trim()),
    }
}

/// Where the consoles are kept.
fn logs_dir() -> Result<PathBuf> {
    let d = crate::root().join("target/bench/storage");
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Where this run's disk images live: a directory of its own, so that two benchmarks running
/// at once never share an image; removed when the figures are done.
fn images_dir() -> Result<PathBuf> {
    let d = logs_dir()?.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Appends a guest's console to `target/bench/storage/NAME.log`, for a look at the raw
/// output behind the figures (the logs are emptied when the storage figures start).
fn keep_console(name: &str, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs_dir()?.join(format!("{name}.log")))?;
    writeln!(f, "{text}\n")?;
    Ok(())
}

/// A path for a fresh image: whatever was there is removed ([`boot`] creates it sparse).
fn fresh_image(name: &str) -> Result<PathBuf> {
    let p = images_dir()?.join(name);
    if p.exists() {
        std::fs::remove_file(&p)?;
    }
    Ok(p)
}

/// `mkfs.ext4`, on the search path or in the `sbin` directories (not always on a root
/// shell's path).
fn mkfs_ext4() -> Option<PathBuf> {
    cmd::which("mkfs.ext4").or_else(|| {
        ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    })
}

/// A fresh sparse image of [`DISK_BYTES`] with an ext4 file system made on the host. The inode
/// tables and the journal are initialised by mkfs, so the guest's kernel has no background
/// initialisation to do during the measurement.
fn ext4_image(name: &str) -> Result<PathBuf> {
    let p = fresh_image(name)?;
    std::fs::File::create(&p)?.set_len(DISK_BYTES)?;
    let mkfs = match mkfs_ext4() {
        Some(m) => m,
        None => {
            // Not on every fresh machine; `ensure_tools` installs the package it is named
            // after (as root, with apt-get) or says how to.
            crate::setup::ensure_tools(&["e2fsprogs"])?;
            mkfs_ext4()
                .ok_or_else(|| Error("mkfs.ext4 is missing: apt-get install e2fsprogs".into()))?
        }
    };
    let mut c = std::process::Command::new(mkfs);
    c.args(["-F", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
        .arg(&p);
    cmd::run(&mut c, "formatting the Linux guest's disk (ext4)")?;
    Ok(p)
}

/// Builds `tests/fixtures/linux-kv-server` as a static binary and checks that it is one.
fn build_kv_server() -> Result<PathBuf> {
    let root = crate::root();
    let tdir = root.join("target/bench/linux-kv-server");
    let mut c = crate::build::cargo();
    c.current_dir(&root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .args(["build", "--release", "--target", crate::target::TRIPLE])
        .arg("--manifest-path")
        .arg(root.join("tests/fixtures/linux-kv-server/Cargo.toml"))
        .arg("--target-dir")
        .arg(&tdir);
    cmd::run(&mut c, "building linux-kv-server")?;
    let bin = tdir
        .join(crate::target::TRIPLE)
        .join("release/linux-kv-server");
    check_static(&bin)?;
    Ok(bin)
}

/// Refuses a binary that needs a dynamic loader (the initramfs has no libraries for it).
fn check_static(bin: &Path) -> Result<()> {
    let report = crate::elfcheck::check(bin)?;
    if let Some(p) = report.problems.iter().find(|p| p.contains("PT_INTERP")) {
        bail!("{} is not static: it {p}", bin.display());
    }
    if cmd::which("file").is_some() {
        let out = std::process::Command::new("file").arg(bin).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("xtask: {}", text.trim());
        if !text.contains("statically linked") && !text.contains("static-pie linked") {
            bail!("`file` does not call {} static: {text}", bin.display());
        }
    }
    Ok(())
}

/// Everything the storage figures boot, besides [`Systems`].
struct Storage {
    xtask: PathBuf,
    kv: crate::build::Image,
    blkbench: crate::build::Image,
    linux: StorageGuest,
}

fn prepare() -> Result<Storage> {
    let kv = release_image("kv")?;
    let blkbench = release_image("blkbench")?;
    let server = build_kv_server()?;
    let linux = linux_guest::prepare_storage(&server)?;
    Ok(Storage {
        xtask: build_xtask()?,
        kv,
        blkbench,
        linux,
    })
}

fn fata_kv(s: &Systems, st: &Storage, ns: &Netns, clients: u32, t: Timing) -> Result<KvFigures> {
    let mut o = s.fata_opts(MEMORY_MIB);
    o.args = vec![format!("ipv4={GUEST_IP}/24"), "format=true".into()];
    o.disks = vec![DiskSpec::sized(fresh_image("fata-kv.img")?, DISK_BYTES)];
    tap(&mut o, ns);
    let _vm = boot_fata(&st.kv, o, "fata: ready tcp/80")?;
    ns.ip(&["neigh", "flush", "dev", "tap0"]);
    run_kv_load(&st.xtask, ns, clients, t)
}

fn linux_kv(
    s: &Systems,
    st: &Storage,
    ns: &Netns,
    engine: &str,
    clients: u32,
    t: Timing,
) -> Result<(KvFigures, String)> {
    let mut o = s.linux_opts(
        MEMORY_MIB,
        &format!("fata_ipv4={GUEST_IP}/24 fata_storage={engine}"),
    );
    o.qemu.initrd = Some(st.linux.kv_initrd.clone());
    o.disks = vec![DiskSpec::sized(
        ext4_image(&format!("linux-{engine}.img"))?,
        DISK_BYTES,
    )];
    tap(&mut o, ns);
    let b = boot_linux(s, o)?;
    // The server names its engine and settings when it opens the database.
    let engine_line =
        b.vm.wait_for_line("linux-kv-server: ", Duration::from_secs(1))
            .map(|l| l.text.trim_start_matches("linux-kv-server: ").to_string())
            .unwrap_or_default();
    ns.ip(&["neigh", "flush", "dev", "tap0"]);
    Ok((run_kv_load(&st.xtask, ns, clients, t)?, engine_line))
}

/// What one raw-disk run measured.
#[derive(Clone, Copy, Debug)]
struct BlkFigures {
    seq_write_mb_s: f64,
    seq_read_mb_s: f64,
    rand_iops: f64,
    rand_p50_us: f64,
    rand_p99_us: f64,
}

impl BlkFigures {
    /// The median of each figure over `runs`.
    fn median(runs: &[BlkFigures]) -> BlkFigures {
        let m =
            |f: fn(&BlkFigures) -> f64| super::median(&mut runs.iter().map(f).collect::<Vec<_>>());
        BlkFigures {
            seq_write_mb_s: m(|r| r.seq_write_mb_s),
            seq_read_mb_s: m(|r| r.seq_read_mb_s),
            rand_iops: m(|r| r.rand_iops),
            rand_p50_us: m(|r| r.rand_p50_us),
            rand_p99_us: m(|r| r.rand_p99_us),
        }
    }
}

/// The number in the word `key=NUMBER` of a figures line.
fn word_value(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// The value of `key=` in a `blkbench: NAME ...` line.
fn blk_field(console: &str, name: &str, key: &str) -> Result<f64> {
    console
        .lines()
        .find_map(|l| l.strip_prefix(&format!("blkbench: {name} ")))
        .and_then(|l| word_value(l, key))
        .ok_or_else(|| {
            Error(format!(
                "blkbench printed no `{name} ... {key}=`:\n{console}"
            ))
        })
}

fn fata_blk(s: &Systems, st: &Storage, t: Timing) -> Result<BlkFigures> {
    let mut o = s.fata_opts(MEMORY_MIB);
    o.args = vec![
        format!("warmup={}ms", t.warmup.as_millis()),
        format!("rand_time={}ms", t.measure.as_millis()),
    ];
    o.disks = vec![DiskSpec::sized(fresh_image("fata-blk.img")?, DISK_BYTES)];
    let out = boot(&st.blkbench, &o)?.wait(Duration::from_secs(300))?;
    let console = out.console();
    keep_console("fata-blkbench", &console)?;
    if out.exit != Exit::Code(0) || !out.has_line("blkbench: done") {
        bail!(
            "blkbench failed ({:?}):\n{console}\n{}",
            out.exit,
            out.stderr
        );
    }
    for l in out
        .lines
        .iter()
        .filter(|l| l.text.starts_with("blkbench: "))
    {
        eprintln!("xtask: fata {}", l.text);
    }
    Ok(BlkFigures {
        seq_write_mb_s: blk_field(&console, "seq_write", "mb_s")?,
        seq_read_mb_s: blk_field(&console, "seq_read", "mb_s")?,
        rand_iops: blk_field(&console, "rand_write_flush", "iops")?,
        rand_p50_us: blk_field(&console, "rand_write_flush", "p50_us")?,
        rand_p99_us: blk_field(&console, "rand_write_flush", "p99_us")?,
    })
}

/// The JSON report of fio job `name`, from the console of the fio guest.
fn fio_report(console: &[String], name: &str) -> Result<crate::json::Value> {
    let begin = format!("fio-json-begin {name}");
    // A line ending in the marker: fio's status output may precede it on the same line.
    let Some(at) = console.iter().position(|l| l.trim_end().ends_with(&begin)) else {
        bail!("no fio report for {name}:\n{}", console.join("\n"));
    };
    let text: Vec<&str> = console[at + 1..]
        .iter()
        .map(String::as_str)
        .take_while(|l| l.trim() != "fio-json-end")
        .collect();
    crate::json::parse(&text.join("\n"))
        .map_err(|e| Error(format!("fio's report for {name} is not JSON: {e}")))
}

/// A number at `path` (member names) in a fio report's first job.
fn fio_number(report: &crate::json::Value, path: &[&str]) -> Result<f64> {
    let mut v = report
        .get("jobs")
        .and_then(|j| j.as_array())
        .and_then(|j| j.first());
    for p in path {
        v = v.and_then(|x| x.get(p));
    }
    match v {
        Some(crate::json::Value::Number(n)) => n
            .parse()
            .map_err(|_| Error(format!("fio: {} is not a number", path.join(".")))),
        _ => bail!("fio's report has no {}", path.join(".")),
    }
}

fn linux_blk(s: &Systems, st: &Storage, t: Timing) -> Result<BlkFigures> {
    let secs = t.measure.as_secs().max(1);
    let mut o = s.linux_opts(
        MEMORY_MIB,
        &format!("fata_storage=fio fata_rand_secs={secs}"),
    );
    o.qemu.initrd = Some(st.linux.fio_initrd.clone());
    o.disks = vec![DiskSpec::sized(fresh_image("linux-blk.img")?, DISK_BYTES)];
    let out = boot(&s.linux_image, &o)?.wait(Duration::from_secs(600))?;
    let lines: Vec<String> = out.lines.iter().map(|l| l.text.clone()).collect();
    keep_console("linux-fio", &lines.join("\n"))?;
    if !out.has_line("linux-fio: done") {
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        bail!(
            "the fio guest did not finish ({:?}):\n{tail}\n{}",
            out.exit,
            out.stderr
        );
    }
    let w = fio_report(&lines, "seq_write")?;
    let r = fio_report(&lines, "seq_read")?;
    let rand = fio_report(&lines, "rand_write_flush")?;
    let f = BlkFigures {
        seq_write_mb_s: fio_number(&w, &["write", "bw_bytes"])? / 1e6,
        seq_read_mb_s: fio_number(&r, &["read", "bw_bytes"])? / 1e6,
        rand_iops: fio_number(&rand, &["write", "iops"])?,
        rand_p50_us: fio_number(&rand, &["write", "clat_ns", "percentile", "50.000000"])? / 1e3,
        rand_p99_us: fio_number(&rand, &["write", "clat_ns", "percentile", "99.000000"])? / 1e3,
    };
    eprintln!("xtask: Linux fio {f:?}");
    Ok(f)
}

/// The load average (1, 5, 15 minutes) as `/proc/loadavg` has it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The storage figures: rows of the table and the paragraph that goes above it.
pub(super) fn storage_figures(
    s: &Systems,
    ns: &Netns,
    quick: bool,
    rows: &mut Vec<Row>,
) -> Result<String> {
    let st = prepare()?;
    let t = Timing::new(quick);
    let runs = if quick { 1 } else { 3 };
    for log in ["fata-blkbench.log", "linux-fio.log"] {
        let _ = std::fs::remove_file(logs_dir()?.join(log));
    }
    let load_before = load_average();
    // Alternate between the systems: in each round, for each client count, fata then each
    // Linux engine; then the raw disk, fata then Linux.
    let mut kv_runs: Vec<(u32, Vec<KvFigures>, Vec<Vec<KvFigures>>)> = CLIENTS
        .iter()
        .map(|&c| (c, Vec::new(), vec![Vec::new(); ENGINES.len()]))
        .collect();
    let mut engines: Vec<String> = Vec::new();
    let (mut fata_blks, mut linux_blks) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (clients, f, l) in kv_runs.iter_mut() {
            f.push(fata_kv(s, &st, ns, *clients, t)?);
            for (i, (engine, _)) in ENGINES.iter().enumerate() {
                let (figures, line) = linux_kv(s, &st, ns, engine, *clients, t)?;
                if !engines.contains(&line) {
                    engines.push(line);
                }
                l[i].push(figures);
            }
        }
        fata_blks.push(fata_blk(s, &st, t)?);
        linux_blks.push(linux_blk(s, &st, t)?);
    }
    let load_after = load_average();
    std::fs::remove_dir_all(images_dir()?)?;
    let kv: Vec<(u32, KvFigures, Vec<KvFigures>)> = kv_runs
        .iter()
        .map(|(c, f, l)| {
            (
                *c,
                KvFigures::median(f),
                l.iter().map(|v| KvFigures::median(v)).collect(),
            )
        })
        .collect();
    let (fb, lb) = (
        BlkFigures::median(&fata_blks),
        BlkFigures::median(&linux_blks),
    );

    for (clients, f, l) in &kv {
        let c = if *clients == 1 {
            "1 client".to_string()
        } else {
            format!("{clients} clients")
        };
        for ((_, name), lf) in ENGINES.iter().zip(l) {
            let goal = match (*clients, *name) {
                (1, "Linux+SQLite") => "fata ≥ 2× Linux+SQLite",
                (1, _) => "fata ≥ 1× Linux+redb",
                (_, "Linux+SQLite") => "fata ≥ 10× Linux+SQLite (5 × 2×)",
                _ => "fata ≥ 5× Linux+redb (5 × 1×)",
            };
            rows.push(row(
                &format!("KV durable PUTs/s, {c} (fata vs {name})"),
                f.per_sec(),
                lf.per_sec(),
                "commits/s",
                goal,
            ));
        }
    }
    for (clients, f, l) in &kv {
        for ((_, name), lf) in ENGINES.iter().zip(l) {
            rows.push(row(
                &format!("KV PUT latency p50, {clients} cl. (fata vs {name})"),
                f.p50_ms,
                lf.p50_ms,
                "ms",
                "",
            ));
            rows.push(row(
                &format!("KV PUT latency p99, {clients} cl. (fata vs {name})"),
                f.p99_ms,
                lf.p99_ms,
                "ms",
                "",
            ));
        }
    }
    rows.push(row(
        "raw disk: sequential write, 64 MiB in 1 MiB requests, then a flush",
        fb.seq_write_mb_s,
        lb.seq_write_mb_s,
        "MB/s",
        "",
    ));
    rows.push(row(
        "raw disk: sequential read, 64 MiB in 1 MiB requests",
        fb.seq_read_mb_s,
        lb.seq_read_mb_s,
        "MB/s",
        "",
    ));
    rows.push(row(
        "raw disk: 4 KiB random write + flush, QD1",
        fb.rand_iops,
        lb.rand_iops,
        "IOPS",
        "",
    ));
    rows.push(row(
        "raw disk: 4 KiB write + flush latency p50",
        fb.rand_p50_us,
        lb.rand_p50_us,
        "µs",
        "",
    ));
    rows.push(row(
        "raw disk: 4 KiB write + flush latency p99",
        fb.rand_p99_us,
        lb.rand_p99_us,
        "µs",
        "",
    ));

    let group = |clients: u32, i: Option<usize>| -> f64 {
        kv.iter()
            .find(|(c, _, _)| *c == clients)
            .map_or(f64::NAN, |(_, f, l)| match i {
                None => f.per_sec(),
                Some(i) => l[i].per_sec(),
            })
    };
    let ratio = |i: Option<usize>| group(16, i) / group(1, i);
    let (wsecs, msecs) = (t.warmup.as_secs_f64(), t.measure.as_secs_f64());
    Ok(format!(
        "- {runs} round(s), each running every system once, alternating; medians quoted (each figure's median on its own)\n\
         - load average (1, 5, 15 min) before the storage runs: {load_before}; after: {load_after}\n\
         - disks: a fresh sparse raw image of {} MiB per run, `-drive ...,format=raw,cache=writeback` + `virtio-blk-device` on both systems; `-m {MEMORY_MIB}M`, one vCPU, TCG, microvm, virtio-net on a TAP device in a network namespace\n\
         - KV: {KEY_BYTES}-byte unique keys, {VALUE_BYTES}-byte values, `PUT /kv/<key>` answered once durable; {wsecs} s warm-up, then {msecs} s counted, each client on one keep-alive connection sending its next PUT when the previous one is answered (`xtask::compare::kv_load`, run inside the namespace as `xtask bench kvload`). fata: `examples/kv` (`format=true`). Linux: `tests/fixtures/linux-kv-server` (static, a thread per connection) on ext4 (made on the host by `mkfs.ext4 -E lazy_itable_init=0,lazy_journal_init=0`, mounted with the defaults: `data=ordered`, barriers on), SQLite (WAL, `synchronous=FULL`) or redb 4 (default durability), one transaction and one durable commit per PUT; the server said: {}\n\
         - commits/s at 16 clients ÷ at 1 client: fata {:.2}, Linux+SQLite {:.2}, Linux+redb {:.2}\n\
         - raw disk: fata `examples/blkbench` (1 MiB requests, each cut into pieces of the driver's largest request if that is smaller, the pieces in flight at once; the device reads and writes the request's own buffer; then one flush; the random writes wait for each write and then each flush); Linux: {} (`{}`; jobs: {}), on `/dev/vda` with no file system; {wsecs} s warm-up and {msecs} s counted for the random writes; the consoles are kept in `target/bench/storage/*.log`\n",
        DISK_BYTES >> 20,
        engines.join("; "),
        ratio(None),
        ratio(Some(0)),
        ratio(Some(1)),
        st.linux.fio,
        linux_guest::FIO_COMMON,
        linux_guest::FIO_JOBS
            .iter()
            .map(|(_, o)| format!(
                "`{}`",
                o.replace("SECS", &t.measure.as_secs().max(1).to_string())
            ))
            .collect::<Vec<_>>()
            .join(", "),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_have_the_sizes_of_redbs_benchmark_and_keys_are_unique() {
        assert_eq!(key(0, 0).len(), KEY_BYTES);
        assert_eq!(key(999, u64::MAX / 2).len(), KEY_BYTES);
        assert_ne!(key(1, 23), key(12, 3));
        assert_eq!(value(&key(3, 7)).len(), VALUE_BYTES);
        assert_ne!(value(&key(3, 7)), value(&key(3, 8)));
    }

    #[test]
    fn the_load_generators_line_reads_back_as_the_same_figures() {
        let f = KvFigures {
            commits: 12345,
            secs: 10.0,
            p50_ms: 0.532,
            p99_ms: 7.25,
        };
        assert_eq!(KvFigures::parse(&f.line(16)), Some(f));
        assert_eq!(KvFigures::parse("kvload: clients=1 commits=3"), None);
    }

    #[test]
    fn medians_are_taken_figure_by_figure() {
        let r = |c, p50| KvFigures {
            commits: c,
            secs: 10.0,
            p50_ms: p50,
            p99_ms: 1.0,
        };
        let m = KvFigures::median(&[r(10, 3.0), r(30, 1.0), r(20, 2.0)]);
        assert_eq!((m.commits, m.p50_ms), (20, 2.0));
    }

    #[test]
    fn blkbench_lines_and_fio_reports_behind_status_output_are_read() {
        let console = "blkbench: seq_write bytes=1 request_bytes=1 pieces=1 secs=0.5 mb_s=131.00\n\
                       blkbench: rand_write_flush bytes=4096 ops=9 secs=2 iops=3366.3 p50_us=249.0 p99_us=799.3";
        assert_eq!(blk_field(console, "seq_write", "mb_s").unwrap(), 131.0);
        assert_eq!(
            blk_field(console, "rand_write_flush", "p99_us").unwrap(),
            799.3
        );
        assert!(blk_field(console, "seq_read", "mb_s").is_err());

        let lines: Vec<String> = [
            "Jobs: 1 (f=1): [w(1)][eta 00m:00s]fio-json-begin rand_write_flush",
            r#"{"jobs": [{"write": {"iops": 659.8, "clat_ns": {"percentile": {"50.000000": 995328}}}}]}"#,
            "fio-json-end",
        ]
        .map(String::from)
        .to_vec();
        let r = fio_report(&lines, "rand_write_flush").unwrap();
        assert_eq!(fio_number(&r, &["write", "iops"]).unwrap(), 659.8);
        assert_eq!(
            fio_number(&r, &["write", "clat_ns", "percentile", "50.000000"]).unwrap(),
            995328.0
        );
        assert!(fio_number(&r, &["read", "iops"]).is_err());
        assert!(fio_report(&lines, "seq_write").is_err());
    }

    #[test]
    fn percentiles_of_sorted_values() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50), 51.0);
        assert_eq!(percentile(&v, 99), 100.0);
        assert!(percentile(&[], 50).is_nan());
    }
}
