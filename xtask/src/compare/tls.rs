//! The `tls` group (`cargo xtask bench --only tls`): HTTPS from fata's `http` example
//! against nginx in the Linux guest, both serving the same 612-byte page with the same P-256
//! certificate (`net/tls/src/testdata/server.pem`): image size and TLS's share of it, full and
//! resumed handshakes per second (`openssl s_time`), requests per second over TLS keep-alive
//! (`wrk` on https) at 1 and 16 connections — all on the TAP device in a network namespace,
//! runs alternating between the systems — and launch → first HTTPS 200 over user networking
//! with the certificate from the boot keys (nginx: from its initramfs).

use super::{
    GUEST_IP, MEMORY_MIB, Row, Systems, boot_fata, boot_linux, free_port, range_row, reachable,
    row, tap, wrk,
};
use crate::build::stripped_size;
use crate::netns::Netns;
use crate::qemu::NetBackend;
use crate::runner::BootOpts;
use crate::{Result, bail};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The certificate both systems serve: chain and key PEM.
fn certificate() -> Result<(Vec<u8>, Vec<u8>)> {
    let dir = crate::root().join("net/tls/src/testdata");
    Ok((
        std::fs::read(dir.join("server.pem"))?,
        std::fs::read(dir.join("server.key"))?,
    ))
}

/// Bytes of the image's symbols defined by the TLS crates (rustls, its pki types and webpki,
/// fata-tls, ring with its C and assembly, the RustCrypto P-256/X25519 code): a lower bound
/// of what TLS adds, since generic code instantiated in other crates and code inlined into
/// them is not counted.
fn tls_symbol_bytes(image: &std::path::Path) -> Result<u64> {
    use object::{Object, ObjectSymbol};
    const CRATES: [&str; 16] = [
        "6rustls",
        "16rustls_pki_types",
        "7webpki",
        "8fata_tls",
        "4ring",
        "4p256",
        "14elliptic_curve",
        "11primeorder",
        "5ecdsa",
        "12x25519_dalek",
        "15curve25519_dalek",
        "4spki",
        "3der",
        "4sec1",
        "9crypto_bigint",
        "4hmac",
    ];
    let data = std::fs::read(image)?;
    let file = object::File::parse(&*data).map_err(|e| crate::Error(e.to_string()))?;
    let mut total = 0;
    for s in file.symbols() {
        let Ok(name) = s.name() else { continue };
        // Legacy mangling: `_ZN` then the path's components, each prefixed by its length.
        let ours = name
            .strip_prefix("_ZN")
            .is_some_and(|rest| CRATES.iter().any(|c| rest.starts_with(c)))
            || name.contains("ring_core_");
        if ours && s.is_definition() {
            total += s.size();
        }
    }
    Ok(total)
}

/// `openssl s_time -connect GUEST:443 ARGS -time SECS` from inside `ns`: connections per
/// second of wall time (s_time's own "real seconds" are whole seconds), and the share of them
/// that resumed a session (s_time prints `r` for each). s_time has no timeout of its own: a
/// run that has not ended 60 s after its time is killed and reported as `Ok(None)`, with the
/// number of connections it had made.
fn s_time(ns: &Netns, args: &[&str], secs: u32) -> Result<std::result::Result<(f64, f64), usize>> {
    let connect = format!("{GUEST_IP}:443");
    let time = secs.to_string();
    let kill_after = (secs + 60).to_string();
    let mut all = vec![
        "-s",
        "KILL",
        &kill_after,
        "openssl",
        "s_time",
        "-connect",
        &connect,
        "-time",
        &time,
    ];
    all.extend_from_slice(args);
    let t = Instant::now();
    let (ok, out) = ns.run("timeout", &all);
    let wall = t.elapsed().as_secs_f64();
    if !ok && t.elapsed() >= Duration::from_secs(u64::from(secs) + 60) {
        let made: usize = out
            .lines()
            .filter(|l| !l.is_empty() && l.chars().all(|c| "*rt3".contains(c)))
            .map(str::len)
            .sum();
        eprintln!(
            "xtask: openssl s_time {} stalled after {made} connections; killed",
            args.join(" ")
        );
        return Ok(Err(made));
    }
    if !ok {
        bail!("openssl s_time {}: {out}", args.join(" "));
    }
    // "1234 connections in 5 real seconds, 0 bytes read per connection"
    let conns: f64 = out
        .lines()
        .find(|l| l.contains(" connections in ") && l.contains(" real seconds"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| crate::Error(format!("no result in s_time's output: {out}")))?;
    if conns == 0.0 {
        bail!("s_time {} made no connection: {out}", args.join(" "));
    }
    // The progress characters: one per connection, `r` when the session was resumed.
    let marks: String = out
        .lines()
        .filter(|l| !l.is_empty() && l.chars().all(|c| "*rt3".contains(c)))
        .collect();
    let resumed = marks.chars().filter(|&c| c == 'r').count() as f64;
    let share = if marks.is_empty() {
        f64::NAN
    } else {
        resumed / marks.len() as f64
    };
    Ok(Ok((conns / wall, share)))
}

/// Launch → first HTTPS 200 of /612.html (verified against the test CA, for the name
/// fata.test) through a forwarded port, after the ready line; milliseconds.
fn first_https_200(vm: &crate::runner::Running, port: u16, ca: &str) -> Result<f64> {
    let resolve = format!("fata.test:{port}:127.0.0.1");
    let url = format!("https://fata.test:{port}/612.html");
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .args(["--cacert", ca, "--resolve", &resolve, &url])
            .output()?;
        if out.stdout == b"200" {
            return Ok(vm.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("no HTTPS 200 within 30 s")
}

/// Measures the group into `rows`; returns the notes.
pub(crate) fn tls_figures(
    s: &Systems,
    ns: &Netns,
    quick: bool,
    netclient: &str,
    rows: &mut Vec<Row>,
) -> Result<String> {
    let secs = if quick { 2 } else { 5 };
    let runs = if quick { 2 } else { 5 };
    let (cert, key) = certificate()?;
    let linux_initrd = crate::linux_guest::prepare_tls(&super::page(), &cert, &key)?;
    let keys = [
        format!("tls_cert={}", crate::encode::base64(&cert)),
        format!("tls_key={}", crate::encode::base64(&key)),
    ];
    let ca = crate::root().join("net/tls/src/testdata/ca.pem");
    let ca = ca.to_string_lossy();

    // Sizes.
    let hello = super::release_image("hello")?;
    let http_kib = stripped_size(&s.http.path)? as f64 / 1024.0;
    let hello_kib = stripped_size(&hello.path)? as f64 / 1024.0;
    let tls_kib = tls_symbol_bytes(&s.http.path)? as f64 / 1024.0;
    let linux_kib = (std::fs::metadata(&s.linux.kernel)?.len()
        + std::fs::metadata(&linux_initrd)?.len()) as f64
        / 1024.0;
    rows.push(row(
        "image size: http with TLS (stripped; Linux: kernel + initramfs with nginx, OpenSSL)",
        http_kib,
        linux_kib,
        "KiB",
        "",
    ));
    rows.push(row(
        "image size: hello (no network, no TLS), for scale",
        hello_kib,
        f64::NAN,
        "KiB",
        "",
    ));
    rows.push(row(
        "of http: symbols of the TLS crates (rustls, webpki, ring, p256, x25519; lower bound)",
        tls_kib,
        f64::NAN,
        "KiB",
        "",
    ));

    // Handshakes and requests over the TAP device, alternating fata and Linux.
    let fata_opts = || {
        let mut o = s.fata_opts(MEMORY_MIB);
        o.args = vec![format!("ipv4={GUEST_IP}/24")];
        o.args.extend(keys.iter().cloned());
        tap(&mut o, ns);
        o
    };
    let linux_opts = || {
        let mut o = s.linux_opts(MEMORY_MIB, &format!("fata_ipv4={GUEST_IP}/24"));
        o.qemu.initrd = Some(linux_initrd.clone());
        tap(&mut o, ns);
        o
    };
    let url = format!("https://{GUEST_IP}/612.html");
    // The s_time runs: (figure, arguments, whether it resumes).
    let page = ["-www", "/612.html"];
    let runs_s_time: [(&str, Vec<&str>, bool); 5] = [
        (
            "full TLS 1.3 handshakes/s (s_time -new)",
            vec!["-new"],
            false,
        ),
        (
            "full TLS 1.2 handshakes/s (s_time -new -tls1_2)",
            vec!["-new", "-tls1_2"],
            false,
        ),
        (
            "resumed TLS 1.2 handshakes/s (s_time -reuse -tls1_2, session id)",
            vec!["-reuse", "-tls1_2"],
            true,
        ),
        (
            "TLS 1.3 full handshake + GET 612 bytes, per s (s_time -new -www)",
            [&["-new"][..], &page].concat(),
            false,
        ),
        (
            "TLS 1.3 resumed handshake + GET 612 bytes, per s (s_time -reuse -www)",
            [&["-reuse"][..], &page].concat(),
            true,
        ),
    ];
    type Figures = (Vec<(f64, f64)>, Vec<(f64, f64, f64)>);
    let stalls = std::cell::RefCell::new(String::new());
    let measure = |fata: bool| -> Result<Figures> {
        let _b = if fata {
            boot_fata(&s.http, fata_opts(), "fata: ready tcp/443")?
        } else {
            boot_linux(s, linux_opts())?
        };
        reachable(ns, netclient)?;
        let mut hs = Vec::new();
        for (_, args, _) in &runs_s_time {
            hs.push(match s_time(ns, args, secs)? {
                Ok(r) => r,
                Err(made) => {
                    let _ = writeln!(
                        stalls.borrow_mut(),
                        "- **{}: `openssl s_time {}` stalled** after {made} connections (killed \
                         60 s after its {secs} s): a connection that neither side closed",
                        if fata { "fata" } else { "Linux" },
                        args.join(" ")
                    );
                    (f64::NAN, f64::NAN)
                }
            });
        }
        let mut w = Vec::new();
        for conns in [1u32, 16] {
            w.push(wrk(ns, &url, conns, secs)?);
        }
        Ok((hs, w))
    };
    let f = measure(true)?;
    let l = measure(false)?;
    for (i, (figure, _, resumes)) in runs_s_time.iter().enumerate() {
        rows.push(row(figure, f.0[i].0, l.0[i].0, "/s", ""));
        if *resumes {
            rows.push(row(
                "… of these connections resumed",
                f.0[i].1 * 100.0,
                l.0[i].1 * 100.0,
                "%",
                "",
            ));
        }
    }
    for (i, c) in [1, 16].iter().enumerate() {
        rows.push(row(
            &format!("wrk https 612-byte page, keep-alive, {c} conn: requests/s"),
            f.1[i].0,
            l.1[i].0,
            "req/s",
            "",
        ));
        rows.push(row(
            &format!("wrk https {c} conn: latency p50"),
            f.1[i].1,
            l.1[i].1,
            "ms",
            "",
        ));
    }

    // Launch → first HTTPS 200, user networking.
    let (mut f200, mut l200) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut o = s.fata_opts(MEMORY_MIB);
        o.args = keys.to_vec();
        let port = free_port();
        o.qemu.net = Some(NetBackend::User {
            forwards: vec![(port, 443)],
        });
        let b = boot_fata(&s.http, o, "fata: ready tcp/443")?;
        f200.push(first_https_200(&b.vm, port, &ca)?);
        drop(b);
        let mut o: BootOpts = s.linux_opts(MEMORY_MIB, "");
        o.qemu.initrd = Some(linux_initrd.clone());
        let port = free_port();
        o.qemu.net = Some(NetBackend::User {
            forwards: vec![(port, 443)],
        });
        let b = boot_linux(s, o)?;
        l200.push(first_https_200(&b.vm, port, &ca)?);
    }
    rows.push(range_row(
        &format!("launch → first HTTPS 200, user networking (median of {runs})"),
        &mut f200,
        &mut l200,
        "",
    ));

    let openssl = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| {
            let v = String::from_utf8_lossy(&o.stdout).into_owned();
            v.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
        })
        .unwrap_or_default();
    let mut notes = String::new();
    let _ = writeln!(
        notes,
        "- both: the P-256 certificate `net/tls/src/testdata/server.pem` (fata: from the boot keys \
         `tls_cert=`/`tls_key=`; nginx: `ssl_certificate` in its initramfs, TLS 1.2 and 1.3, \
         session cache and tickets), the 612-byte page, `-m {MEMORY_MIB}M`, microvm as above\n\
         - handshakes: `openssl s_time -connect {GUEST_IP}:443 -time {secs}` and the options \
         shown, from the network namespace (the host's {openssl}: X25519, ECDSA P-256; \
         without `-www` s_time fetches no page), rate = connections / wall time of the run; \
         TLS 1.3 resumption needs `-www`: the session ticket comes after the handshake and s_time \
         only reads it when it reads a page; requests: `wrk --latency -c 1|16 -d {secs}s {url}`\n\
         - launch → first HTTPS 200: after the ready line, `curl --cacert ca.pem --resolve \
         fata.test:PORT:127.0.0.1` in a loop (each try a new curl process, a few ms)\n\
         - TLS's share of the image counts only symbols defined in the TLS crates; code they \
         instantiate or inline elsewhere is not counted"
    );
    notes.push_str(&stalls.into_inner());
    Ok(notes)
}
