//! Outbound HTTPS: an app whose `main` fails posts the error to `report_url` (a webhook),
//! verifying the server against `report_ca`; a server signed by another CA is refused and
//! gets nothing. The webhook is a Python HTTPS server in a network namespace with a test CA
//! made by openssl. Needs root (namespaces, TAP).
#![forbid(unsafe_code)]

use fata_tests::{BootOpts, Netns, Target, base64};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn report_app() -> &'static fata_tests::Image {
    static IMG: OnceLock<fata_tests::Image> = OnceLock::new();
    IMG.get_or_init(|| {
        let manifest = xtask::root().join("tests/fixtures/report_app/Cargo.toml");
        xtask::build::build_manifest(&manifest, Target::Virtio, true)
            .unwrap_or_else(|e| panic!("building the report fixture: {e}"))
    })
}

fn sh(dir: &Path, script: &str) {
    let st = Command::new("sh")
        .current_dir(dir)
        .args(["-ec", script])
        .status()
        .unwrap();
    assert!(st.success(), "{script}");
}

/// Two CAs (`ca`, `other`) and a server certificate for 10.77.0.1 signed by `ca`.
fn certificates(dir: &Path) {
    sh(
        dir,
        "for ca in ca other; do
           openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
             -subj /CN=$ca -keyout $ca.key -out $ca.pem 2>/dev/null
         done
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=hook \
           -keyout hook.key -out hook.csr 2>/dev/null
         printf 'subjectAltName=IP:10.77.0.1\\n' > ext
         openssl x509 -req -in hook.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
           -extfile ext -out hook.pem 2>/dev/null",
    );
}

/// A webhook on https://10.77.0.1:8443/: appends each POST body to `bodies`, answers 204.
const HOOK: &str = r#"
import http.server, ssl, sys
d = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        body = self.rfile.read(n)
        with open(d + '/bodies', 'ab') as f:
            f.write(self.path.encode() + b' ' + self.headers.get('Content-Type', '').encode() + b' ' + body)
        self.send_response(204)
        self.end_headers()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + '/hook.pem', d + '/hook.key')
s = http.server.HTTPServer(('10.77.0.1', 8443), H)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
open(d + '/up', 'w').close()
s.serve_forever()
"#;

/// Boots the fixture with `report_ca` = `ca` and waits for it to exit; returns its console.
fn run(ns: &Netns, dir: &Path, ca: &str) -> String {
    let mut opts = BootOpts {
        args: vec![
            "ipv4=10.77.0.2/24".into(),
            "gateway=10.77.0.1".into(),
            "report_url=https://10.77.0.1:8443/hook".into(),
            format!(
                "report_ca={}",
                base64(&std::fs::read(dir.join(format!("{ca}.pem"))).unwrap())
            ),
        ],
        ..Default::default()
    };
    opts.netns = Some(ns.name.clone());
    opts.qemu.net = Some(xtask::qemu::NetBackend::Tap {
        ifname: "tap0".into(),
    });
    let vm = xtask::runner::boot(report_app(), &opts).unwrap();
    let out = vm.wait(Duration::from_secs(90)).unwrap();
    let console = out.console();
    assert!(
        console.contains("fata: main returned an error: the \"orders\" table is on fire"),
        "{console}"
    );
    assert!(
        console.contains("fata: exit 1"),
        "an error still exits non-zero: {console}"
    );
    console
}

#[test]
fn a_failing_main_posts_its_error_to_the_webhook_and_a_server_of_another_ca_gets_nothing() {
    let ns = Netns::new("report", 1500);
    let dir: PathBuf = std::env::temp_dir().join(format!("fata-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    std::fs::write(dir.join("hook.py"), HOOK).unwrap();
    let mut hook = ns.spawn(
        "python3",
        &[dir.join("hook.py").to_str().unwrap(), dir.to_str().unwrap()],
    );
    let t = Instant::now();
    while !dir.join("up").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the webhook did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let console = run(&ns, &dir, "ca");
    assert!(
        console.contains("report: sent to https://10.77.0.1:8443/hook (204)"),
        "{console}"
    );
    let bodies = std::fs::read_to_string(dir.join("bodies")).unwrap_or_default();
    assert!(
        bodies.starts_with("/hook application/json {\"platform\":\"virtio\""),
        "{bodies}"
    );
    assert!(
        bodies.contains(r#""error":"the \"orders\" table is on fire"}"#),
        "the error arrives JSON-escaped: {bodies}"
    );

    // The same server, but the image trusts another CA: refused, nothing posted.
    std::fs::remove_file(dir.join("bodies")).unwrap();
    let console = run(&ns, &dir, "other");
    assert!(console.contains("report: not sent"), "{console}");
    assert!(
        console.contains("UnknownIssuer"),
        "the reason is given: {console}"
    );
    assert!(!dir.join("bodies").exists(), "nothing reached the server");
    let _ = hook.kill();
    let _ = hook.wait();
}
