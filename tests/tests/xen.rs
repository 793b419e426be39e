//! The `xen` target on a real Xen: Xen 4.17 and a Debian dom0 under QEMU (TCG), from Debian's
//! packages (`xtask::xen`). One harness session runs every guest in turn — booting Xen and
//! dom0 takes most of a session — and prints what each did; the tests below check it.
//!
//! Guests and what is checked:
//! - `hello`: its lines reach the PV console, exit 0 becomes a power-off `xl` sees;
//! - `crash what=panic`: the panic message and `fata: exit 2 (Panic)`, and a crash shutdown;
//! - `http` on netfront: every file of the site byte-exact (sha256 in dom0), a 404, 50
//!   parallel clients;
//! - `echo` on netfront: 1 MiB sent and received back byte-exact;
//! - `kv` on blkfront: acknowledged writes survive `xl destroy` and a new `xl create`;
//! - `http` without a vif and `kv` without a disk: a clear message and a non-zero exit.
//!
//! The same `xen` image under plain QEMU (no Xen) must say it needs Xen and exit non-zero:
//! that test needs no harness.
#![forbid(unsafe_code)]

use fata_tests::{BootOpts, Exit, Target, image, site_dir};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;
use xtask::xen::{self, Output, Session, XlConfig};

const VIF: &str = "mac=00:16:3e:00:00:02,script=/etc/xen/scripts/fata-vif";
const DISK: &str =
    "format=raw,vdev=xvda,access=rw,script=/etc/xen/scripts/fata-block,target=/tmp/kv.img";

fn xl(name: &str, kernel: &str, vif: bool, disk: bool, extra: &str) -> String {
    xen::xl_config(&XlConfig {
        name: name.into(),
        kernel: format!("/guest/{kernel}"),
        memory_mib: 32,
        vifs: if vif { vec![VIF.into()] } else { vec![] },
        disks: if disk { vec![DISK.into()] } else { vec![] },
        extra: extra.into(),
        tsc_native: true,
        ..Default::default()
    })
    .unwrap()
}

/// sha256 of every file of the http site, by URL path.
fn site_hashes() -> BTreeMap<String, String> {
    let root = site_dir();
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let o = std::process::Command::new("sha256sum")
                    .arg(&p)
                    .output()
                    .unwrap();
                let h = String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
                out.insert(format!("/{rel}"), h);
            }
        }
    }
    out
}

/// The dom0 script: each guest in turn; its console between `GUEST-LOG name` markers.
fn script() -> String {
    String::from(
        r#". /lib/fata.sh
# busybox's own wget -T crashes; every fetch is bounded with timeout(1) instead.
get() { timeout 10 wget -q "$@"; }
# FATA_XEN_ONLY="http kv" on the host runs only those steps (for debugging).
ONLY=$(cat /etc/fata-only 2>/dev/null)
want() { [ -z "$ONLY" ] || echo " $ONLY " | grep -q " $1 "; }
log() { echo "GUEST-LOG-BEGIN $1"; cat "/var/log/xen/console/guest-$1.log" 2>/dev/null; echo "GUEST-LOG-END $1"; echo "GUEST-RC $1 $(cat /tmp/xl-$1.rc 2>/dev/null)"; }

# hello: output and a power-off.
if want hello; then
start hello /etc/xen/hello.xl
wait_exit hello 60; log hello
fi

# crash: a panic is a crash shutdown.
if want crash; then
start crash /etc/xen/crash.xl
wait_exit crash 60; log crash
# The exit line also goes to Xen's debug port, so it is in `xl dmesg` as (dN).
result crash_dmesg "$(xl dmesg | grep -c 'fata: exit 2$')"
fi

# http on netfront.
if want http; then
t0=$(ms)
start http /etc/xen/http.xl
if wait_console http 'fata: ready tcp/80' 60; then
  result http_ready_ms $(( $(ms) - t0 ))
  wait_http http://10.0.0.2/ 30 && result http_first_200_ms $(( $(ms) - t0 ))
  ok=0; bad=0
  while read -r path hash; do
    got=$(get -O- "http://10.0.0.2$path" | sha256sum | cut -d' ' -f1)
    if [ "$got" = "$hash" ]; then ok=$((ok+1)); else bad=$((bad+1)); echo "MISMATCH $path $got"; fi
  done < /guest/site.sha256
  result http_files $ok $bad
  if timeout 10 wget -q -O /dev/null http://10.0.0.2/no-such-page 2>/tmp/404.err; then result http_404 no; else grep -q 404 /tmp/404.err && result http_404 yes || result http_404 "$(cat /tmp/404.err)"; fi
  pids=""; i=0
  while [ $i -lt 50 ]; do (get -O- http://10.0.0.2/612.html | sha256sum | cut -d' ' -f1 > /tmp/par.$i) & pids="$pids $!"; i=$((i+1)); done
  wait $pids
  want=$(grep '^/612.html ' /guest/site.sha256 | cut -d' ' -f2)
  good=$(cat /tmp/par.* | grep -c "^$want\$")
  result http_parallel $good
  if [ "$good" != 50 ]; then
    # What netback and Xen see of the guest, for the post-mortem.
    mount -t debugfs none /sys/kernel/debug 2>/dev/null
    for f in /sys/kernel/debug/xen-netback/*/io_ring_q0; do echo "---- $f"; cat "$f"; done
    xl debug-keys e; xl debug-keys q; xl dmesg | tail -80
  fi
  result http_status "$(get -O- http://10.0.0.2/status)"
fi
xl destroy http; wait_exit http 20; log http
fi

# echo on netfront: 1 MiB there and back.
if want echo; then
start echo /etc/xen/echo.xl
if wait_console echo 'fata: ready tcp/7' 60; then
  head -c 1048576 /dev/urandom > /tmp/mib
  : > /tmp/mib.back
  timeout 30 nc 10.0.0.2 7 < /tmp/mib > /tmp/mib.back &
  ncpid=$!
  i=0; while [ $i -lt 300 ] && [ "$(wc -c < /tmp/mib.back)" -lt 1048576 ]; do sleep 0.1; i=$((i+1)); done
  kill $ncpid 2>/dev/null
  result echo_bytes $(wc -c < /tmp/mib.back)
  [ "$(sha256sum < /tmp/mib | cut -d' ' -f1)" = "$(sha256sum < /tmp/mib.back | cut -d' ' -f1)" ] && result echo_same yes || result echo_same no
fi
xl destroy echo; wait_exit echo 20; log echo
fi

# kv on blkfront: writes acknowledged before `xl destroy` are there after a new `xl create`.
if want kv; then
dd if=/dev/zero of=/tmp/kv.img bs=1M count=16 2>/dev/null
start kv /etc/xen/kv-format.xl
if wait_console kv 'fata: ready tcp/80' 60; then
  acked=0; i=0
  while [ $i -lt 40 ]; do
    if get -O /dev/null --post-data "[{\"op\":\"put\",\"key\":\"key$i\",\"value\":\"value-$i\"}]" http://10.0.0.2/kv 2>/dev/null; then acked=$((acked+1)); fi
    i=$((i+1))
  done
  result kv_acked $acked
fi
xl destroy kv; wait_exit kv 20; log kv
start kv /etc/xen/kv.xl
if wait_console kv 'fata: ready tcp/80' 60; then
  found=0; i=0
  while [ $i -lt 40 ]; do
    [ "$(get -O- "http://10.0.0.2/kv/key$i")" = "value-$i" ] && found=$((found+1))
    i=$((i+1))
  done
  result kv_found $found
fi
xl destroy kv; wait_exit kv 20; log kv
fi

# Missing devices: a clear message and a non-zero exit.
if want missing; then
start novif /etc/xen/novif.xl
wait_exit novif 60; log novif
start nodisk /etc/xen/nodisk.xl
wait_exit nodisk 60; log nodisk
fi
"#,
    )
}

struct Run {
    out: Output,
    /// Console of each guest (the last run of a name wins).
    logs: BTreeMap<String, String>,
    rcs: BTreeMap<String, String>,
}

/// Builds the guests, runs the session once per test process and parses what it printed.
fn session() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let h = xen::prepare().unwrap_or_else(|e| panic!("the nested Xen harness: {e}"));
        let mut files = Vec::new();
        for ex in ["hello", "crash", "http", "echo", "kv"] {
            let img = image(Target::Xen, ex);
            files.push((
                format!("/guest/{ex}"),
                std::fs::read(&img.path).unwrap(),
                false,
            ));
        }
        let hashes = site_hashes();
        let list: String = hashes.iter().map(|(p, h)| format!("{p} {h}\n")).collect();
        files.push(("/guest/site.sha256".into(), list.into_bytes(), false));
        for (name, cfg) in [
            (
                "hello",
                xl("hello", "hello", false, false, "name=xen count=2"),
            ),
            ("crash", xl("crash", "crash", false, false, "what=panic")),
            ("http", xl("http", "http", true, false, "ipv4=10.0.0.2/24")),
            ("echo", xl("echo", "echo", true, false, "ipv4=10.0.0.2/24")),
            (
                "kv-format",
                xl("kv", "kv", true, true, "ipv4=10.0.0.2/24 format=true"),
            ),
            ("kv", xl("kv", "kv", true, true, "ipv4=10.0.0.2/24")),
            ("novif", xl("novif", "http", false, false, "")),
            (
                "nodisk",
                xl("nodisk", "kv", true, false, "ipv4=10.0.0.2/24"),
            ),
        ] {
            files.push((format!("/etc/xen/{name}.xl"), cfg.into_bytes(), false));
        }
        if let Ok(only) = std::env::var("FATA_XEN_ONLY") {
            files.push(("/etc/fata-only".into(), only.into_bytes(), false));
        }
        let s = Session {
            files,
            script: script(),
            timeout: Duration::from_secs(300),
        };
        // The whole serial output, for a failure's post-mortem.
        let log_path = xtask::root().join("target/xen-test-session.log");
        let mut log = std::fs::File::create(&log_path).unwrap();
        let out = xen::run(&h, &s, &mut |l| {
            use std::io::Write;
            let _ = writeln!(log, "{:8.3} {}", l.at.as_secs_f64(), l.text);
        })
        .unwrap();
        eprintln!("the session's serial output: {}", log_path.display());
        let mut logs = BTreeMap::new();
        let mut rcs = BTreeMap::new();
        let mut cur: Option<(String, String)> = None;
        for l in &out.lines {
            let t = l.text.as_str();
            if let Some(n) = t.strip_prefix("GUEST-LOG-BEGIN ") {
                cur = Some((n.trim().to_string(), String::new()));
            } else if let Some(n) = t.strip_prefix("GUEST-LOG-END ") {
                if let Some((name, text)) = cur.take()
                    && name == n.trim()
                {
                    logs.insert(name, text);
                }
            } else if let Some(r) = t.strip_prefix("GUEST-RC ") {
                let (n, rc) = r.split_once(' ').unwrap_or((r, ""));
                rcs.insert(n.to_string(), rc.to_string());
            } else if let Some((_, text)) = &mut cur {
                text.push_str(t);
                text.push('\n');
            }
        }
        Run { out, logs, rcs }
    })
}

fn log_of(name: &str) -> &'static str {
    let r = session();
    r.logs
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no console log of {name}\n{}", r.out.summary()))
}

fn number(key: &str) -> u64 {
    session().out.number(key).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_xen_image_refuses_to_run_without_xen() {
    let img = image(Target::Xen, "hello");
    let out = xtask::runner::boot(&img, &BootOpts::default())
        .and_then(|r| r.wait(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(out.exit, Exit::Code(4), "{}", out.console());
    assert!(
        out.console().contains("no Xen hypervisor was found"),
        "{}",
        out.console()
    );
}

#[test]
fn every_xen_image_ships_with_an_xl_file() {
    let img = image(Target::Xen, "http");
    let xl = img.path.with_extension("xl");
    let text = std::fs::read_to_string(&xl).unwrap_or_else(|e| panic!("{}: {e}", xl.display()));
    assert!(text.contains("type = \"pvh\""), "{text}");
    assert!(text.contains(&img.path.display().to_string()), "{text}");
    assert!(Path::new(&xl).exists());
}

#[test]
fn hello_prints_through_the_pv_console_and_powers_off() {
    let log = log_of("hello");
    assert!(log.contains("Hello, xen! (2/2)"), "{log}");
    assert!(log.contains("fata: xen: Xen 4.17"), "{log}");
    // Xen has no PV entropy device; the nested domU (QEMU TCG `-cpu max` under Xen 4.17) is
    // offered RDRAND but not RDSEED, which TCG does not implement.
    assert!(log.contains("fata: entropy: rdrand"), "{log}");
    assert!(log.contains("fata: exit 0 (Success)"), "{log}");
    // Exit 0 is a power-off: xl reports shutdown reason 0.
    let rc = &session().rcs["hello"];
    assert!(rc.ends_with("reason code 0"), "{rc}");
}

#[test]
fn a_panic_is_a_crash_shutdown_with_its_message() {
    let log = log_of("crash");
    assert!(log.contains("deliberate panic for the test suite"), "{log}");
    assert!(log.contains("fata: exit 2 (Panic)"), "{log}");
    // Any other exit is a crash: reason 3. The code itself is on the console and in xl dmesg.
    let rc = &session().rcs["crash"];
    assert!(rc.ends_with("reason code 3"), "{rc}");
    assert_eq!(number("crash_dmesg"), 1, "{}", session().out.summary());
}

#[test]
fn http_on_netfront_serves_every_file_byte_exact_404_and_50_parallel_clients() {
    let files = session().out.result("http_files").unwrap();
    assert_eq!(files[1], "0", "{:?}\n{}", files, log_of("http"));
    assert_eq!(files[0], site_hashes().len().to_string());
    assert_eq!(session().out.result("http_404").unwrap()[0], "yes");
    assert_eq!(number("http_parallel"), 50, "{}", log_of("http"));
}

#[test]
fn echo_on_netfront_round_trips_a_mebibyte() {
    assert_eq!(number("echo_bytes"), 1 << 20, "{}", log_of("echo"));
    assert_eq!(session().out.result("echo_same").unwrap()[0], "yes");
}

#[test]
fn kv_on_blkfront_keeps_acknowledged_writes_across_xl_destroy() {
    let acked = number("kv_acked");
    assert_eq!(acked, 40, "{}", log_of("kv"));
    assert_eq!(number("kv_found"), acked, "{}", log_of("kv"));
}

#[test]
fn a_missing_vif_or_disk_is_named_and_the_exit_is_non_zero() {
    let log = log_of("novif");
    assert!(log.contains("no network card"), "{log}");
    assert!(!log.contains("fata: exit 0"), "{log}");
    let log = log_of("nodisk");
    assert!(log.contains("disk"), "{log}");
    assert!(!log.contains("fata: exit 0"), "{log}");
}
