//! Metrics and health of `examples/http` on a booted guest: `/metrics` parses with the
//! official parser (`promtool check metrics`, Debian's `prometheus` package); a real
//! Prometheus server in a network namespace scrapes the guest every second and its query API
//! returns the counters, which move as requests are made and agree with the guest's own;
//! `/readyz` answers 503 until DHCP has given the guest its address and 200 after; `/livez`
//! and `/readyz` keep answering while a keep-alive load runs; `examples/kv`'s `/metrics` has
//! the store's figures.
//! Needs root (namespaces, TAP) and installs `prometheus` with apt-get when missing.
#![forbid(unsafe_code)]

use fata_tests::{BOOT_TIMEOUT, Machine, Netns, Target, boot_in, boot_user_net, client, image};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GUEST: &str = "10.77.0.2";
const STATIC: [&str; 2] = ["ipv4=10.77.0.2/24", "gateway=10.77.0.1"];

/// The value of the sample line that starts with `series` (name and labels exactly).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Installs Debian's `prometheus` (the server and `promtool`) when missing, once per test
/// process: tests run in parallel, and two `apt-get`s at once would fight over dpkg's lock.
fn ensure_prometheus() {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    xtask::setup::ensure_program("promtool", "prometheus").unwrap();
    xtask::setup::ensure_program("prometheus", "prometheus").unwrap();
}

/// Runs `promtool check metrics` on `text`; returns (success, what it said).
fn promtool_check(text: &str) -> (bool, String) {
    ensure_prometheus();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn promtool_finds_broken_text_so_its_pass_below_means_something() {
    let (ok, out) = promtool_check("# TYPE x counter\nx{a=\"b} 1\n");
    assert!(!ok, "promtool accepted a broken label: {out}");
}

#[test]
fn a_live_guests_metrics_pass_promtool_and_move_with_requests() {
    let vm = boot_user_net("http", Machine::Microvm, 80, &[], &[]);
    let get = |path: &str| {
        let r = client::get(vm.addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status, 200, "GET {path}");
        r
    };
    let r = get("/metrics");
    let ct = r.header("content-type").unwrap_or_default().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let before = String::from_utf8(r.body).unwrap();
    let (ok, out) = promtool_check(&before);
    assert!(ok, "promtool check metrics: {out}\n{before}");
    for family in [
        "fata_net_rx_frames_total",
        "fata_net_dropped_frames_total",
        "fata_tcp_sockets_limit",
        "fata_heap_in_use_bytes",
        "fata_heap_peak_bytes",
        "fata_executor_polls_total",
        "fata_timers_armed",
        "fata_tls_handshakes_total",
        "http_request_duration_seconds",
        "http_connections_total",
    ] {
        assert!(
            before.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{before}"
        );
    }
    for _ in 0..20 {
        get("/612.html");
    }
    let after = String::from_utf8(get("/metrics").body).unwrap();
    let moved = |series: &str, by: f64| {
        let (a, b) = (sample(&before, series), sample(&after, series));
        assert!(b >= a + by, "{series}: {a} -> {b}, expected +{by}");
    };
    // The first /metrics is counted (and timed) after it was rendered: 20 pages + it.
    moved("http_requests_total", 21.0);
    moved("http_request_duration_seconds_count", 21.0);
    moved("http_request_duration_seconds_bucket{le=\"+Inf\"}", 21.0);
    moved("http_connections_total{scheme=\"http\"}", 21.0);
    moved("fata_net_rx_frames_total", 40.0);
    moved("fata_executor_polls_total", 21.0);
    assert!(sample(&after, "fata_heap_peak_bytes") >= sample(&after, "fata_heap_in_use_bytes"));
    assert_eq!(sample(&after, "fata_ready"), 1.0);
}

#[test]
fn the_stores_figures_are_in_the_kv_examples_metrics_and_pass_promtool() {
    let path = std::env::temp_dir().join(format!("fata-metrics-{}-kv.img", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let disk = xtask::disk::DiskSpec::sized(&path, 32 << 20);
    let vm = fata_tests::UserNetBoot {
        args: &["format=true"],
        disks: std::slice::from_ref(&disk),
        ..fata_tests::UserNetBoot::new("kv", Machine::Microvm, 80)
    }
    .boot();
    let mut kv = fata_tests::kv::Kv::connect(vm.addr).unwrap();
    for i in 0..10 {
        assert_eq!(kv.put(&format!("k{i}"), b"value").unwrap(), 201);
    }
    let r = client::get(vm.addr, "/metrics").unwrap();
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    let (ok, out) = promtool_check(&text);
    assert!(ok, "promtool check metrics: {out}\n{text}");
    assert_eq!(sample(&text, "fata_kv_keys{disk=\"disk0\"}"), 10.0);
    assert!(sample(&text, "fata_kv_commits_total{disk=\"disk0\"}") >= 1.0);
    assert!(sample(&text, "fata_kv_written_bytes_total{disk=\"disk0\"}") > 0.0);
    assert_eq!(sample(&text, "fata_kv_poisoned{disk=\"disk0\"}"), 0.0);
    assert_eq!(client::get(vm.addr, "/readyz").unwrap().status, 200);
    drop(vm);
    let _ = std::fs::remove_file(&path);
}

/// A Prometheus server in `ns` on 10.77.0.1:9090, scraping `target` every second; killed
/// on drop.
struct Prometheus {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Prometheus {
    fn start(ns: &Netns, target: &str) -> Prometheus {
        ensure_prometheus();
        let dir = std::env::temp_dir().join(format!("fata-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: fata\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let child = ns.spawn(
            "prometheus",
            &[
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", dir.join("data").display()),
                "--web.listen-address=10.77.0.1:9090",
                "--log.level=warn",
            ],
        );
        Prometheus { child, dir }
    }

    /// The value of the instant query `q`, if it has exactly one series.
    fn query(&self, ns: &Netns, q: &str) -> Option<f64> {
        let (ok, out) = ns.run(
            "curl",
            &[
                "-sS",
                "--max-time",
                "2",
                "--get",
                "--data-urlencode",
                &format!("query={q}"),
                "http://10.77.0.1:9090/api/v1/query",
            ],
        );
        if !ok || !out.contains("\"status\":\"success\"") {
            return None;
        }
        // {"status":"success","data":{"resultType":"vector","result":[{"metric":{...},"value":[T,"V"]}]}}
        let mut values = out.split("\"value\":[").skip(1);
        let v = values.next()?;
        if values.next().is_some() {
            return None;
        }
        v.split('"').nth(1)?.parse().ok()
    }

    /// Waits until `q` has a value for which `f` holds; returns it.
    fn wait_for(&self, ns: &Netns, q: &str, secs: u64, f: impl Fn(f64) -> bool) -> f64 {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.query(ns, q);
            match v {
                Some(v) if f(v) => return v,
                _ if Instant::now() > end => panic!("{q}: {v:?} after {secs} s"),
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn prometheus_scrapes_the_guest_and_stores_counters_that_move_with_requests() {
    let ns = Netns::new("prom", 1500);
    let _vm = boot_in(&ns, "http", 80, &STATIC);
    let prom = Prometheus::start(&ns, &format!("{GUEST}:80"));
    prom.wait_for(&ns, "up{job=\"fata\"}", 30, |v| v == 1.0);
    let limit = prom.wait_for(&ns, "fata_tcp_sockets_limit", 10, |v| v > 0.0);
    let before = prom.wait_for(&ns, "http_requests_total", 10, |v| v >= 1.0);
    let frames = prom.wait_for(&ns, "fata_net_rx_frames_total", 10, |v| v > 0.0);
    let site = fata_tests::site_dir();
    fata_tests::netclient(
        &ns,
        &["http", GUEST, "80", site.to_str().unwrap(), "100", "10"],
    );
    // The next scrapes see the 100 requests (each scrape is a request too).
    let after = prom.wait_for(&ns, "http_requests_total", 10, |v| v >= before + 100.0);
    prom.wait_for(&ns, "fata_net_rx_frames_total", 10, |v| v >= frames + 100.0);
    prom.wait_for(&ns, "http_request_duration_seconds_count", 10, |v| {
        v >= before + 100.0
    });
    // Prometheus's values are the guest's: the limit exactly, the request count within the
    // scrapes made since Prometheus's last one.
    let status = fata_tests::status(&ns, GUEST);
    assert_eq!(fata_tests::field(&status, "tcp_limit") as f64, limit);
    let guest = fata_tests::field(&status, "requests") as f64;
    let stored = prom
        .query(&ns, "http_requests_total")
        .expect("http_requests_total");
    assert!(
        stored <= guest && guest <= stored + 10.0,
        "Prometheus stored {stored}, the guest says {guest} (before the load: {before}, after: {after})"
    );
}

/// The HTTP status of `GET url` from inside `ns` (0 when there was no answer).
fn status_code(ns: &Netns, url: &str) -> u16 {
    let (_, out) = ns.run(
        "curl",
        &[
            "-s",
            "-g",
            "-o",
            "/dev/null",
            "--max-time",
            "2",
            "-w",
            "%{http_code}",
            url,
        ],
    );
    out.trim().parse().unwrap_or(0)
}

#[test]
fn readyz_is_503_until_dhcp_gives_the_address_and_200_after() {
    let ns = Netns::new("readyz", 1500);
    // DHCP with no server yet, and a static IPv6 address to ask over meanwhile.
    let img = image(Target::Virtio, "http");
    let mut opts = fata_tests::BootOpts {
        args: ["dhcp=true", "ipv6=fd77::2/64", "slaac=false"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..Default::default()
    };
    opts.netns = Some(ns.name.clone());
    opts.qemu.net = Some(xtask::qemu::NetBackend::Tap {
        ifname: "tap0".into(),
    });
    let vm = xtask::runner::boot(&img, &opts).unwrap();
    vm.wait_for_line("net: asking for a DHCP lease", BOOT_TIMEOUT)
        .unwrap();
    vm.wait_for_line("http: serving", BOOT_TIMEOUT).unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while status_code(&ns, "http://[fd77::2]:80/livez") != 200 {
        assert!(Instant::now() < end, "/livez never answered over IPv6");
        std::thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..3 {
        assert_eq!(status_code(&ns, "http://[fd77::2]:80/readyz"), 503);
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, body) = ns.run(
        "curl",
        &["-s", "-g", "--max-time", "2", "http://[fd77::2]:80/readyz"],
    );
    assert!(body.contains("no address"), "{body}");
    assert!(
        !vm.console().contains("fata: ready tcp/80"),
        "ready line before the lease"
    );
    // Now a DHCP server: the lease makes the guest ready.
    let script = xtask::root().join("tests/scripts/dhcp.py");
    let mut dhcp = ns.spawn(
        "python3",
        &[script.to_str().unwrap(), "tap0", "10.77.0.1", GUEST],
    );
    let ready = vm.wait_for_line("fata: ready tcp/80", Duration::from_secs(30));
    let _ = dhcp.kill();
    let _ = dhcp.wait();
    ready.unwrap();
    assert_eq!(status_code(&ns, "http://10.77.0.2:80/readyz"), 200);
    assert_eq!(status_code(&ns, "http://[fd77::2]:80/readyz"), 200);
    assert_eq!(status_code(&ns, "http://10.77.0.2:80/livez"), 200);
}

#[test]
fn health_endpoints_keep_answering_under_a_keep_alive_load() {
    let ns = Netns::new("hload", 1500);
    let _vm = boot_in(&ns, "http", 80, &STATIC);
    let exe = std::env::current_exe().unwrap();
    let netclient = exe.parent().unwrap().parent().unwrap().join("netclient");
    // 32 clients, 4000 keep-alive requests each: several seconds of load (18k requests/s
    // were measured here under TCG).
    let mut load = ns.spawn(
        netclient.to_str().unwrap(),
        &["keepalive", GUEST, "80", "32", "4000"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut answered = 0;
    let mut during_load = 0;
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let path = if i % 2 == 0 { "livez" } else { "readyz" };
        let t = Instant::now();
        let code = status_code(&ns, &format!("http://{GUEST}:80/{path}"));
        assert_eq!(code, 200, "/{path} under load (after {:?})", t.elapsed());
        worst = worst.max(t.elapsed());
        answered += 1;
        if load.try_wait().unwrap().is_none() {
            during_load += 1;
        }
    }
    let st = load.wait().unwrap();
    eprintln!("{during_load} health checks during the load, the slowest in {worst:?} (curl)");
    assert!(st.success(), "the load itself failed");
    assert_eq!(answered, 20);
    assert!(
        during_load >= 15,
        "only {during_load} health checks ran while the load did: make the load longer"
    );
}

/// Requests/s of `wrk -t2 -c16 -d5s` on `/612.html` from a `wrk --latency` report.
fn wrk_rps(ns: &Netns, secs: u32) -> f64 {
    let (ok, out) = ns.run(
        "wrk",
        &[
            "-t2",
            "-c16",
            &format!("-d{secs}s"),
            &format!("http://{GUEST}/612.html"),
        ],
    );
    assert!(ok && !out.contains("Non-2xx"), "wrk: {out}");
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk: {out}"))
}

/// A figure for docs/operations.md, not a test: requests/s of the 612-byte page with the
/// request-latency histogram updated on every request and without (`request_metrics=false`),
/// alternating boots of the same image, three rounds.
#[test]
#[ignore = "a benchmark: cargo test -p fata-tests --test metrics -- --ignored --nocapture"]
fn bench_request_latency_metrics_cost() {
    xtask::setup::ensure_program("wrk", "wrk").unwrap();
    let ns = Netns::new("mbench", 1500);
    let mut on = Vec::new();
    let mut off = Vec::new();
    for _ in 0..3 {
        for timed in [true, false] {
            let key = format!("request_metrics={timed}");
            let _vm = boot_in(&ns, "http", 80, &[STATIC[0], STATIC[1], &key]);
            wrk_rps(&ns, 1);
            let rps = wrk_rps(&ns, 5);
            eprintln!("{key}: {rps:.0} requests/s");
            if timed { &mut on } else { &mut off }.push(rps);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut on), median(&mut off));
    println!(
        "612-byte page, wrk -t2 -c16 -d5s, median of 3: with the latency histogram {a:.0} req/s, without {b:.0} req/s ({:+.1} %)",
        (a - b) / b * 100.0
    );
}
