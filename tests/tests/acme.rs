//! ACME end to end: `examples/http` obtains its certificate from Debian's `pebble` (an RFC
//! 8555 test CA) in a network namespace, answering the http-01 challenge itself on port 80,
//! then serves HTTPS that `curl --cacert <pebble's root>` verifies; with a disk, a reboot
//! takes the certificate from the key-value store instead of asking again; a CA that refuses
//! or cannot be reached is logged and retried while plain HTTP keeps working.
//! Needs root (namespaces, TAP) and installs `pebble` with apt-get when missing.
#![forbid(unsafe_code)]

use fata_tests::{BOOT_TIMEOUT, BootOpts, Netns, Target, base64, image};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use xtask::disk::DiskSpec;

const GUEST: &str = "10.77.0.2";
const CA_HOST: &str = "10.77.0.1";

/// A scratch directory for this test's files.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fata-acme-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sh(script: &str) {
    let st = Command::new("sh").args(["-ec", script]).status().unwrap();
    assert!(st.success(), "{script}");
}

/// pebble in `ns` on 10.77.0.1:14000 (ACME) and :15000 (management), validating http-01 on
/// port 80 of whatever `hosts` maps the names to. Killed on drop, with its `/etc/netns` files.
struct Pebble {
    child: std::process::Child,
    dir: PathBuf,
    etc: PathBuf,
}

impl Pebble {
    fn start(ns: &Netns, dir: &Path, hosts: &str) -> Pebble {
        Pebble::start_with(ns, dir, hosts, 5 * 365 * 86_400)
    }

    /// [`Pebble::start`] issuing certificates valid for `validity` seconds.
    fn start_with(ns: &Netns, dir: &Path, hosts: &str, validity: u64) -> Pebble {
        xtask::setup::ensure_program("pebble", "pebble").unwrap();
        // `ip netns exec` bind-mounts these over /etc/hosts and /etc/resolv.conf for pebble,
        // so the names it validates resolve to the guest and nothing leaves the namespace.
        let etc = PathBuf::from("/etc/netns").join(&ns.name);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("hosts"), format!("127.0.0.1 localhost\n{hosts}")).unwrap();
        std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        sh(&format!(
            "cd {d}
             openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
                 -subj '/CN=pebble API CA' -keyout api-ca.key -out api-ca.pem 2>/dev/null
             openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=pebble \
                 -keyout api.key -out api.csr 2>/dev/null
             printf 'subjectAltName=IP:{CA_HOST}\\n' > ext
             openssl x509 -req -in api.csr -CA api-ca.pem -CAkey api-ca.key -CAcreateserial \
                 -days 30 -extfile ext -out api.pem 2>/dev/null",
            d = dir.display()
        ));
        let config = format!(
            r#"{{"pebble": {{"listenAddress": "{CA_HOST}:14000",
                "managementListenAddress": "{CA_HOST}:15000",
                "certificate": "{d}/api.pem", "privateKey": "{d}/api.key",
                "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": {validity}}}}}"#,
            d = dir.display()
        );
        std::fs::write(dir.join("pebble.json"), config).unwrap();
        let log = dir.join("pebble.log");
        let child = ns.spawn(
            "sh",
            &[
                "-c",
                &format!(
                    "exec env PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
                     pebble -config {}/pebble.json > {} 2>&1",
                    dir.display(),
                    log.display()
                ),
            ],
        );
        let p = Pebble {
            child,
            dir: dir.to_path_buf(),
            etc,
        };
        let t = Instant::now();
        while !p.log().contains("Listening on") {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "pebble did not start:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }

    /// The boot arguments that point the image at this CA.
    fn args(&self, domain: &str) -> Vec<String> {
        let ca = std::fs::read(self.dir.join("api-ca.pem")).unwrap();
        vec![
            format!("acme_directory=https://{CA_HOST}:14000/dir"),
            format!("acme_domain={domain}"),
            "acme_email=ops@fata.test".into(),
            format!("acme_ca={}", base64(&ca)),
        ]
    }

    /// The root that signs what pebble issues (made anew at each pebble start).
    fn root(&self, ns: &Netns) -> PathBuf {
        let out = self.dir.join("root.pem");
        let (ok, text) = ns.run(
            "curl",
            &[
                "-sS",
                "--cacert",
                self.dir.join("api-ca.pem").to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                &format!("https://{CA_HOST}:15000/roots/0"),
            ],
        );
        assert!(ok, "fetching pebble's root: {text}");
        out
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // pebble itself is the child of `ip netns exec` … `sh -c exec`: the same process.
        let _ = std::fs::remove_dir_all(&self.etc);
    }
}

/// Boots the http example in `ns` at 10.77.0.2 with `args` and `disks`; waits for port 80.
fn boot(ns: &Netns, args: &[String], disks: &[DiskSpec]) -> xtask::runner::Running {
    let mut all = vec![format!("ipv4={GUEST}/24"), format!("gateway={CA_HOST}")];
    all.extend(args.iter().cloned());
    let mut opts = BootOpts {
        args: all,
        disks: disks.to_vec(),
        ..Default::default()
    };
    opts.netns = Some(ns.name.clone());
    opts.qemu.net = Some(xtask::qemu::NetBackend::Tap {
        ifname: "tap0".into(),
    });
    let vm = xtask::runner::boot(&image(Target::Virtio, "http"), &opts).unwrap();
    wait(&vm, "fata: ready tcp/80", BOOT_TIMEOUT);
    vm
}

#[track_caller]
fn wait(vm: &xtask::runner::Running, line: &str, limit: Duration) {
    if let Err(e) = vm.wait_for_line(line, limit) {
        panic!("waiting for `{line}`: {e}\n{}", vm.console());
    }
}

/// `curl` inside the namespace; returns (exit code, output).
fn curl(ns: &Netns, args: &[&str]) -> (bool, String) {
    let mut a = vec!["-sS", "--max-time", "20"];
    a.extend_from_slice(args);
    ns.run("curl", &a)
}

#[test]
fn first_boot_obtains_a_certificate_curl_verifies_and_a_reboot_with_the_disk_reuses_it() {
    let ns = Netns::new("acme", 1500);
    let dir = scratch("issue");
    let pebble = Pebble::start(&ns, &dir, &format!("{GUEST} fata.test www.fata.test\n"));
    let disk = DiskSpec {
        size: Some(64 << 20),
        ..DiskSpec::new(dir.join("data.raw"))
    };
    let mut args = pebble.args("fata.test,www.fata.test");
    args.push("format=true".into());

    let vm = boot(&ns, &args, std::slice::from_ref(&disk));
    wait(&vm, "fata: ready tcp/443", Duration::from_secs(90));
    // HTTPS starts as soon as the certificate is in; keeping it on the disk follows.
    wait(
        &vm,
        "acme: certificate for fata.test, www.fata.test issued, valid for",
        Duration::from_secs(10),
    );
    wait(&vm, "kept in the store", Duration::from_secs(10));
    let root = pebble.root(&ns);
    for name in ["fata.test", "www.fata.test"] {
        let (ok, out) = curl(
            &ns,
            &[
                "--cacert",
                root.to_str().unwrap(),
                "--resolve",
                &format!("{name}:443:{GUEST}"),
                &format!("https://{name}/hello.txt"),
            ],
        );
        let want = std::fs::read_to_string(fata_tests::site_dir().join("hello.txt")).unwrap();
        assert!(
            ok && out == want,
            "curl https://{name}/: {out}\n{}",
            vm.console()
        );
    }
    let orders = pebble.log().matches("Issued certificate").count();
    assert!(orders >= 1, "pebble issued nothing?\n{}", pebble.log());
    drop(vm);

    // A reboot with the same disk: the certificate comes from the store, pebble is not asked.
    let vm = boot(&ns, &args, std::slice::from_ref(&disk));
    wait(&vm, "fata: ready tcp/443", Duration::from_secs(30));
    let console = vm.console();
    assert!(console.contains("from the store"), "{console}");
    assert!(!console.contains("asking https://"), "{console}");
    let (ok, out) = curl(
        &ns,
        &[
            "--cacert",
            root.to_str().unwrap(),
            "--resolve",
            &format!("fata.test:443:{GUEST}"),
            "https://fata.test/hello.txt",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        pebble.log().matches("Issued certificate").count(),
        orders,
        "asked again"
    );
}

#[test]
fn a_ca_that_refuses_or_cannot_be_reached_is_logged_and_retried_while_http_keeps_serving() {
    let ns = Netns::new("acmefail", 1500);
    let dir = scratch("fail");
    // `nowhere.test` resolves, for pebble, to an address where nothing answers port 80.
    let pebble = Pebble::start(&ns, &dir, "10.77.0.99 nowhere.test\n");
    let vm = boot(&ns, &pebble.args("nowhere.test"), &[]);
    // pebble's problem document reaches the log, then the back-off and a second attempt.
    wait(&vm, "urn:ietf:params:acme:error:", Duration::from_secs(60));
    wait(&vm, "trying again in 10 s", Duration::from_secs(10));
    let (ok, out) = curl(&ns, &[&format!("http://{GUEST}/hello.txt")]);
    assert!(
        ok && out.starts_with("Hello"),
        "plain HTTP while ACME fails: {out}"
    );
    wait(&vm, "trying again in 20 s", Duration::from_secs(60));
    let console = vm.console();
    assert!(!console.contains("ready tcp/443"));
    // Without a store the retry still reuses its account (public CAs limit new accounts).
    assert_eq!(
        console.matches("acme: account https://").count(),
        1,
        "{console}"
    );
    drop(vm);

    // An ACME server that is not there at all (nothing listens on 14999).
    let mut args = pebble.args("fata.test");
    args[0] = format!("acme_directory=https://{CA_HOST}:14999/dir");
    let vm = boot(&ns, &args, &[]);
    wait(&vm, "trying again in 10 s", Duration::from_secs(60));
    let console = vm.console();
    assert!(
        console.contains("14999/dir"),
        "the log names the directory: {console}"
    );
    let (ok, out) = curl(&ns, &[&format!("http://{GUEST}/hello.txt")]);
    assert!(ok && out.starts_with("Hello"), "{out}");
    assert!(!console.contains("panic"), "{console}");
}

#[test]
fn a_short_lived_certificate_is_renewed_before_it_expires_and_the_new_one_is_served() {
    let ns = Netns::new("acmerenew", 1500);
    let dir = scratch("renew");
    // Certificates for 30 s: fata renews at half the lifetime of short certificates.
    let pebble = Pebble::start_with(&ns, &dir, &format!("{GUEST} fata.test\n"), 30);
    let vm = boot(&ns, &pebble.args("fata.test"), &[]);
    wait(&vm, "fata: ready tcp/443", Duration::from_secs(90));
    let first = Instant::now();
    wait(
        &vm,
        "acme: renewing the certificate for fata.test",
        Duration::from_secs(90),
    );
    let t = Instant::now();
    while vm
        .console()
        .matches("acme: certificate for fata.test issued")
        .count()
        < 2
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no second certificate:\n{}",
            vm.console()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        pebble.log().matches("Issued certificate").count() >= 2,
        "{}",
        pebble.log()
    );
    // Once the first certificate has expired, a verified handshake proves the renewed one
    // is served.
    std::thread::sleep(Duration::from_secs(35).saturating_sub(first.elapsed()));
    let root = pebble.root(&ns);
    let (ok, out) = curl(
        &ns,
        &[
            "-v",
            "--cacert",
            root.to_str().unwrap(),
            "--resolve",
            &format!("fata.test:443:{GUEST}"),
            "https://fata.test/hello.txt",
        ],
    );
    assert!(ok && out.contains("Hello from fata!"), "{out}");
    assert!(out.contains("SSL certificate verify ok"), "{out}");
}
