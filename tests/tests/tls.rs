//! HTTPS from the `http` example under QEMU (TCG, user networking, no root) and on the
//! `unix` target, checked with the clients people use: curl, `openssl s_client` and Python's
//! `ssl` + `http.client`. The certificate is `net/tls/src/testdata/server.pem` (P-256, for
//! localhost, fata.test and 127.0.0.1, signed by `ca.pem`), given as boot keys; clients reach
//! the guest's port 443 through a forwarded host port and ask for `fata.test`.
//!
//! Besides the handshakes (TLS 1.3 and 1.2, chain verified), keep-alive, a 1 MiB request
//! body and session resumption, the tests send what a hostile or broken client sends —
//! plain HTTP, garbage, half a ClientHello, nothing at all, a name the certificate lacks —
//! and check that the server drops that connection and goes on serving good ones, and what
//! a boot with a bad key or without entropy does.
#![forbid(unsafe_code)]

use fata_tests::client::HttpResponse;
use fata_tests::{
    BootOpts, Exit, Machine, NetVm, Target, UserNetBoot, base64, expect, field, free_port, image,
    run_with, site_dir,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A file of `net/tls/src/testdata/`.
fn testdata(name: &str) -> PathBuf {
    xtask::root().join("net/tls/src/testdata").join(name)
}

fn ca() -> String {
    testdata("ca.pem").to_str().unwrap().to_string()
}

/// `tls_cert=` and `tls_key=` boot arguments for two files of the test data.
fn tls_keys(cert: &str, key: &str) -> Vec<String> {
    let b64 = |f: &str| base64(&std::fs::read(testdata(f)).unwrap());
    vec![
        format!("tls_cert={}", b64(cert)),
        format!("tls_key={}", b64(key)),
    ]
}

/// The http example on microvm with `server.pem`/`server.key` from the boot keys plus
/// `args`, after its ready lines for ports 80 and 443.
struct Https {
    vm: NetVm,
}

impl Https {
    fn boot(args: &[&str]) -> Https {
        Https::boot_on(None, args)
    }

    fn boot_on(cpu: Option<&str>, args: &[&str]) -> Https {
        let mut all = tls_keys("server.pem", "server.key");
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let vm = UserNetBoot {
            args: &all,
            extra_ports: &[443],
            cpu,
            ..UserNetBoot::new("http", Machine::Microvm, 80)
        }
        .boot();
        vm.vm
            .wait_for_line(
                "https: serving on port 443 with the certificate from the boot keys",
                Duration::from_secs(1),
            )
            .unwrap();
        Https { vm }
    }

    /// The host port forwarded to the guest's 443.
    fn port(&self) -> u16 {
        self.vm.extra[0].port()
    }

    fn tls_addr(&self) -> SocketAddr {
        self.vm.extra[0]
    }

    /// A numeric field of `/status`, fetched over plain HTTP.
    fn status(&self, name: &str) -> u64 {
        let r = fata_tests::client::get(self.vm.addr, "/status").unwrap();
        assert_eq!(r.status, 200);
        field(&String::from_utf8_lossy(&r.body), name)
    }

    /// The console so far, for failure messages.
    fn console(&self) -> String {
        self.vm.vm.console()
    }

    /// Asserts that a good HTTPS request (curl, TLS 1.3, verified) gets the index.
    #[track_caller]
    fn assert_serves(&self, after: &str) {
        let r = curl_index(self.port(), &[]);
        assert!(
            r.code == Some(0) && r.status == "200" && r.body == index(),
            "after {after}: curl exit {:?}, status {:?}\n{}\nconsole:\n{}",
            r.code,
            r.status,
            r.stderr,
            self.console()
        );
    }
}

fn index() -> Vec<u8> {
    std::fs::read(site_dir().join("index.html")).unwrap()
}

/// Runs `program args` with `stdin` as its input, killed after 60 s; returns its exit code
/// (`None` if killed) and its stdout and stderr.
fn run_tool(program: &str, args: &[&str], stdin: &[u8]) -> (Option<i32>, Vec<u8>, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let ereader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    (
        status.and_then(|s| s.code()),
        reader.join().unwrap(),
        ereader.join().unwrap(),
    )
}

struct Curl {
    code: Option<i32>,
    status: String,
    body: Vec<u8>,
    stderr: String,
}

/// `curl -v` for `https://NAME:PORT/PATH...` with `--resolve NAME:PORT:127.0.0.1` and the test
/// CA; the bodies go to stdout, each status to stderr after `status=`.
fn curl(name: &str, port: u16, paths: &[&str], extra: &[&str]) -> Curl {
    let resolve = format!("{name}:{port}:127.0.0.1");
    let ca = ca();
    let mut args = vec![
        "-sS",
        "-v",
        "--max-time",
        "60",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "-w",
        "%{stderr}status=%{http_code}\n",
    ];
    args.extend_from_slice(extra);
    let urls: Vec<String> = paths
        .iter()
        .map(|p| format!("https://{name}:{port}{p}"))
        .collect();
    args.extend(urls.iter().map(String::as_str));
    let (code, body, stderr) = run_tool("curl", &args, b"");
    let status = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("status="))
        .collect::<Vec<_>>()
        .join(" ");
    Curl {
        code,
        status,
        body,
        stderr,
    }
}

fn curl_index(port: u16, extra: &[&str]) -> Curl {
    curl("fata.test", port, &["/"], extra)
}

/// The protocol curl reports (`* SSL connection using TLSv1.3 / ...`).
fn curl_protocol(stderr: &str) -> &str {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("* SSL connection using "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("none")
}

#[test]
fn curl_gets_the_index_byte_identical_over_tls_1_3_and_tls_1_2_with_the_chain_verified() {
    let s = Https::boot(&[]);
    for (extra, want) in [(&[][..], "TLSv1.3"), (&["--tls-max", "1.2"][..], "TLSv1.2")] {
        let r = curl_index(s.port(), extra);
        assert_eq!(r.code, Some(0), "curl {extra:?}:\n{}", r.stderr);
        assert_eq!(r.status, "200", "{}", r.stderr);
        assert_eq!(curl_protocol(&r.stderr), want, "{}", r.stderr);
        assert!(
            r.stderr.contains("SSL certificate verify ok"),
            "{}",
            r.stderr
        );
        assert!(r.body == index(), "the body differs from index.html");
    }
    assert_eq!(s.status("tls_handshakes"), 2);
}

/// `openssl s_client` to the guest asking for fata.test, verifying chain and name against the
/// test CA, sending one request with `Connection: close`; `extra` picks the version and
/// session files. Returns its exit code and output.
fn s_client(port: u16, extra: &[&str]) -> (Option<i32>, String) {
    let connect = format!("127.0.0.1:{port}");
    let ca = ca();
    let mut args = vec![
        "s_client",
        "-connect",
        &connect,
        "-servername",
        "fata.test",
        "-verify_hostname",
        "fata.test",
        "-CAfile",
        &ca,
        "-verify_return_error",
        // Read until the server closes, so TLS 1.3 session tickets (sent after the
        // handshake) are seen and the response is complete.
        "-ign_eof",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = run_tool(
        "openssl",
        &args,
        b"GET / HTTP/1.1\r\nHost: fata.test\r\nConnection: close\r\n\r\n",
    );
    (code, format!("{}{err}", String::from_utf8_lossy(&out)))
}

/// The `Protocol  : TLSv1.x` line of s_client's session block.
fn s_client_protocol(out: &str) -> &str {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Protocol  : "))
        .unwrap_or("none")
}

#[test]
fn openssl_s_client_verifies_the_chain_and_negotiates_tls_1_3_and_tls_1_2() {
    let s = Https::boot(&[]);
    for (flag, want) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let (code, out) = s_client(s.port(), &[flag]);
        assert_eq!(code, Some(0), "s_client {flag}:\n{out}");
        assert!(out.contains("Verify return code: 0 (ok)"), "{flag}:\n{out}");
        assert_eq!(s_client_protocol(&out), want, "{flag}:\n{out}");
        assert!(out.contains(&format!("New, {want}, Cipher is")), "{out}");
        assert!(out.contains("HTTP/1.1 200 OK"), "{flag}:\n{out}");
    }
}

/// Python's `ssl` and `http.client` on one TLS connection to fata.test (SNI and name checked
/// against the CA): `keepalive N` sends N GETs of /index.html; `post N` a POST of N bytes and
/// then a GET. Prints `version TLSv1.x`, the statuses, and `ok` at the end.
const PY_CLIENT: &str = r#"
import http.client, socket, ssl, sys
port, ca, mode, n, index = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
want = open(index, 'rb').read()
ctx = ssl.create_default_context(cafile=ca)
sock = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port), timeout=60), server_hostname='fata.test')
print('version', sock.version())
c = http.client.HTTPConnection('fata.test', port, timeout=60)
c.sock = sock
c.auto_open = 0  # never reconnect: every request must go over this one TLS connection
def get():
    c.request('GET', '/index.html')
    r = c.getresponse()
    body = r.read()
    assert r.status == 200 and body == want, (r.status, len(body))
if mode == 'keepalive':
    for i in range(n):
        get()
    print('requests', n)
elif mode == 'post':
    c.request('POST', '/index.html', body=b'x' * n, headers={'Content-Type': 'application/octet-stream'})
    r = c.getresponse()
    r.read()
    print('post', r.status)
    get()
    print('get after post 200')
print('ok')
"#;

fn py_client(port: u16, mode: &str, n: usize) -> String {
    let index = site_dir().join("index.html");
    let (code, out, err) = run_tool(
        "python3",
        &[
            "-c",
            PY_CLIENT,
            &port.to_string(),
            &ca(),
            mode,
            &n.to_string(),
            index.to_str().unwrap(),
        ],
        b"",
    );
    let out = format!("{}{err}", String::from_utf8_lossy(&out));
    assert!(
        code == Some(0) && out.trim_end().ends_with("ok"),
        "python {mode} {n}: exit {code:?}\n{out}"
    );
    out
}

#[test]
fn fifty_requests_share_one_tls_connection_and_curl_reuses_its_connection() {
    let s = Https::boot(&[]);
    let out = py_client(s.port(), "keepalive", 50);
    assert!(out.contains("version TLSv1.3"), "{out}");
    assert!(out.contains("requests 50"), "{out}");
    // Seen from the server: one handshake for the fifty requests.
    assert_eq!(s.status("tls_handshakes"), 1, "{out}");
    let r = curl("fata.test", s.port(), &["/", "/hello.txt", "/"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.status, "200 200 200", "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("Re-using existing connection").count(),
        2,
        "{}",
        r.stderr
    );
    assert_eq!(s.status("tls_handshakes"), 2);
}

#[test]
fn a_one_mebibyte_request_body_over_tls_is_answered_and_the_connection_goes_on() {
    let s = Https::boot(&[]);
    // The server serves files only: a POST gets 405, after which its whole body (the
    // largest the server accepts) is read and skipped, and the next request is answered.
    let out = py_client(s.port(), "post", 1 << 20);
    assert!(out.contains("post 405"), "{out}");
    assert!(out.contains("get after post 200"), "{out}");
    assert_eq!(s.status("tls_handshakes"), 1);
}

#[test]
fn one_mebibyte_responses_arrive_intact_over_tls_1_3_and_tls_1_2_on_one_connection() {
    let s = Https::boot(&[]);
    let want: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    for (extra, proto) in [(&[][..], "TLSv1.3"), (&["--tls-max", "1.2"][..], "TLSv1.2")] {
        // Twice on one connection: the second response follows the first 1 MiB.
        let r = curl(
            "fata.test",
            s.port(),
            &["/bytes/1048576", "/bytes/1048576"],
            extra,
        );
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert_eq!(
            (r.status.as_str(), curl_protocol(&r.stderr)),
            ("200 200", proto)
        );
        assert!(
            r.stderr.contains("Re-using existing connection"),
            "{}",
            r.stderr
        );
        assert_eq!(r.body.len(), 2 << 20);
        assert!(
            r.body[..1 << 20] == want[..] && r.body[1 << 20..] == want[..],
            "body differs"
        );
    }
    assert_eq!(s.status("tls_handshakes"), 2);
}

/// A TCP connection to `addr` that sends `bytes` (and, with `close`, closes its sending
/// side); returns what the server sent until it closed, and how long that took. Panics if
/// the server keeps the connection open for 30 s.
fn hostile(addr: SocketAddr, bytes: &[u8], close: bool) -> (Vec<u8>, Duration) {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let start = Instant::now();
    // The server may close while we still send: a reset is an answer too.
    let _ = c.write_all(bytes);
    if close {
        let _ = c.shutdown(std::net::Shutdown::Write);
    }
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match c.read(&mut b) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the server kept a connection open after {:?} ({e}); it sent {:?}",
                start.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    (got, start.elapsed())
}

/// A TLS record carrying an alert (content type 21), or nothing: what a TLS server may
/// answer to bytes that are not TLS. Never HTTP.
#[track_caller]
fn is_alert_or_nothing(got: &[u8]) {
    assert!(
        got.is_empty() || (got[0] == 21 && got[1] == 3),
        "the server answered {:?}",
        String::from_utf8_lossy(got)
    );
}

/// A real ClientHello for fata.test, as Python's `ssl` makes it.
fn client_hello() -> Vec<u8> {
    let script = r#"
import ssl
ctx = ssl.create_default_context()
i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
t = ctx.wrap_bio(i, o, server_hostname='fata.test')
try:
    t.do_handshake()
except ssl.SSLWantReadError:
    pass
print(o.read().hex())
"#;
    let (code, out, err) = run_tool("python3", &["-c", script], b"");
    assert_eq!(code, Some(0), "{err}");
    let hex = String::from_utf8(out).unwrap();
    let hex = hex.trim();
    let hello: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    // A handshake record (22) holding a ClientHello (1).
    assert!(
        hello.len() > 100 && hello[0] == 22 && hello[5] == 1,
        "{hex}"
    );
    hello
}

#[test]
fn plain_http_garbage_and_a_truncated_client_hello_are_dropped_and_https_goes_on() {
    let s = Https::boot(&[]);
    let (got, _) = hostile(
        s.tls_addr(),
        b"GET / HTTP/1.1\r\nHost: fata.test\r\n\r\n",
        false,
    );
    is_alert_or_nothing(&got);
    s.assert_serves("plain HTTP on the TLS port");

    // Deterministic garbage (xorshift), 4 KiB.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let (got, _) = hostile(s.tls_addr(), &garbage, false);
    is_alert_or_nothing(&got);
    s.assert_serves("random garbage");

    let hello = client_hello();
    let (got, _) = hostile(s.tls_addr(), &hello[..hello.len() / 2], true);
    is_alert_or_nothing(&got);
    s.assert_serves("a truncated ClientHello and close");

    assert_eq!(s.status("tls_failed"), 3, "{}", s.console());
    assert_eq!(s.status("tls_handshakes"), 3);
}

#[test]
fn stalled_handshakes_are_closed_after_tls_handshake_timeout_and_counted() {
    let s = Https::boot(&["tls_handshake_timeout=2s"]);
    let hello = client_hello();
    let (silent, half) = std::thread::scope(|t| {
        let silent = t.spawn(|| hostile(s.tls_addr(), b"", false));
        let half = t.spawn(|| hostile(s.tls_addr(), &hello[..hello.len() / 2], false));
        (silent.join().unwrap(), half.join().unwrap())
    });
    for (what, (got, took)) in [("nothing", silent), ("half a ClientHello", half)] {
        is_alert_or_nothing(&got);
        // Closed by the deadline, not at once (the guest's clock runs the 2 s).
        assert!(
            took >= Duration::from_secs(1),
            "{what}: closed after {took:?}"
        );
    }
    assert_eq!(s.status("tls_timeouts"), 2, "{}", s.console());
    s.assert_serves("two stalled handshakes");
}

#[test]
fn a_name_the_certificate_lacks_fails_verification_and_the_server_keeps_serving() {
    let s = Https::boot(&[]);
    let r = curl("other.test", s.port(), &["/"], &[]);
    assert_eq!(
        r.code,
        Some(60),
        "curl for other.test (not in the certificate):\n{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("no alternative certificate subject name matches"),
        "{}",
        r.stderr
    );
    s.assert_serves("a client asking for other.test");
}

#[test]
fn openssl_sessions_are_resumed_over_tls_1_3_and_tls_1_2() {
    let s = Https::boot(&[]);
    let dir = std::env::temp_dir().join(format!("fata-tls-sess-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (flag, want) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let sess = dir.join(format!("{flag}.pem"));
        let sess = sess.to_str().unwrap();
        let (code, first) = s_client(s.port(), &[flag, "-sess_out", sess]);
        assert_eq!(code, Some(0), "{first}");
        assert!(first.contains(&format!("New, {want}")), "{first}");
        let (code, second) = s_client(s.port(), &[flag, "-sess_in", sess]);
        assert_eq!(code, Some(0), "{second}");
        assert!(
            second.contains(&format!("Reused, {want}")),
            "{flag}: not resumed:\n{second}"
        );
        assert!(second.contains("HTTP/1.1 200 OK"), "{second}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn raw_get(addr: SocketAddr, request: &str) -> HttpResponse {
    let mut c = fata_tests::client::HttpConn::connect(addr).unwrap();
    c.send_raw(request.as_bytes()).unwrap();
    c.read_response(false).unwrap()
}

#[test]
fn redirect_https_answers_plain_http_with_301_to_the_same_path_on_https() {
    let s = Https::boot(&["redirect_https=true"]);
    let r = raw_get(
        s.vm.addr,
        "GET /index.html HTTP/1.1\r\nHost: fata.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://fata.test/index.html"),
        "{:?}",
        r.headers
    );
    // With the port a client used in its Host header, the redirect still names 443's URL.
    let r = raw_get(
        s.vm.addr,
        "GET /a?b=1 HTTP/1.1\r\nHost: fata.test:8080\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.header("location"), Some("https://fata.test/a?b=1"));
    s.assert_serves("redirects");
}

/// Boots the http example with user networking and `args`, and waits for it to end.
fn run_http(cpu: Option<&str>, args: &[String]) -> fata_tests::Outcome {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_with(Target::Virtio, "http", &args, |o: &mut BootOpts| {
        o.qemu.net = Some(xtask::qemu::NetBackend::User {
            forwards: vec![(free_port(), 443)],
        });
        if let Some(cpu) = cpu {
            o.qemu.cpu = cpu.into();
        }
    })
}

#[test]
fn a_key_that_is_rsa_or_not_the_certificates_stops_the_boot_naming_the_problem() {
    let out = run_http(None, &tls_keys("server.pem", "rsa.key"));
    expect(
        &out,
        Exit::Code(1),
        &[
            "certificate from the boot keys: private key: an RSA key cannot sign in a fata \
             image: use an ECDSA P-256 or Ed25519 key",
            "fata: exit 1",
        ],
    );
    let out = run_http(None, &tls_keys("server.pem", "other.key"));
    expect(
        &out,
        Exit::Code(1),
        &[
            "certificate from the boot keys: the private key does not belong to the certificate",
            "fata: exit 1",
        ],
    );
    assert!(!out.has_line("fata: ready tcp/"), "{}", out.console());
}

#[test]
fn without_entropy_https_refuses_to_start_unless_insecure_entropy_is_set() {
    let out = run_http(Some("qemu64"), &tls_keys("server.pem", "server.key"));
    expect(
        &out,
        Exit::Code(1),
        &[
            "fata: WARNING: no entropy source",
            "TLS refuses to start",
            "fata: exit 1",
        ],
    );
    assert!(!out.has_line("fata: ready tcp/443"), "{}", out.console());
    let s = Https::boot_on(Some("qemu64"), &["insecure_entropy=true"]);
    s.vm.vm
        .wait_for_line("fata: WARNING: no entropy source", Duration::from_secs(1))
        .unwrap();
    s.assert_serves("a boot with insecure_entropy=true");
}

#[test]
fn the_unix_build_serves_https_over_the_hosts_sockets() {
    let img = image(Target::Unix, "http");
    let (port, https_port) = (free_port(), free_port());
    let mut args = vec![
        "net=socket".to_string(),
        format!("port={port}"),
        format!("https_port={https_port}"),
    ];
    args.extend(tls_keys("server.pem", "server.key"));
    let vm = xtask::runner::boot(
        &img,
        &BootOpts {
            args,
            ..Default::default()
        },
    )
    .unwrap();
    for p in [https_port, port] {
        vm.wait_for_line(&format!("fata: ready tcp/{p}"), Duration::from_secs(30))
            .unwrap();
    }
    for (extra, want) in [(&[][..], "TLSv1.3"), (&["--tls-max", "1.2"][..], "TLSv1.2")] {
        let r = curl_index(https_port, extra);
        assert_eq!(r.code, Some(0), "{}\n{}", r.stderr, vm.console());
        assert_eq!(r.status, "200");
        assert_eq!(curl_protocol(&r.stderr), want, "{}", r.stderr);
        assert!(r.body == index());
    }
}
