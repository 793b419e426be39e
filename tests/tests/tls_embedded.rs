//! A certificate embedded at build time: `HTTP_TLS_CERT`/`HTTP_TLS_KEY` given to the build of
//! `examples/http` put the PEM files into the image, which then serves HTTPS with no boot key.
//! Built for `unix` into a target directory of its own, so the ordinary `http` images used by
//! the other tests are not rebuilt with a certificate inside.
#![forbid(unsafe_code)]

use fata_tests::{BootOpts, Target, free_port};
use std::process::Command;
use std::time::Duration;

#[test]
fn a_certificate_embedded_at_build_time_is_served_without_boot_keys() {
    let root = xtask::root();
    let data = root.join("net/tls/src/testdata");
    let tdir = root.join("target/unix-embedded-tls");
    let manifest = root.join("examples/http/Cargo.toml");
    let mut c =
        xtask::build::cargo_command(&manifest, "http", Target::Unix, &tdir, false, &[]).unwrap();
    c.env("HTTP_TLS_CERT", data.join("server.pem"))
        .env("HTTP_TLS_KEY", data.join("server.key"));
    let st = c.status().unwrap();
    assert!(st.success(), "building http with an embedded certificate");
    let image = xtask::build::Image {
        target: Target::Unix,
        path: tdir.join("x86_64-unknown-linux-gnu/debug/http"),
    };
    let (port, tls_port) = (free_port(), free_port());
    let vm = xtask::runner::boot(
        &image,
        &BootOpts {
            args: vec![
                "net=socket".into(),
                format!("port={port}"),
                format!("https_port={tls_port}"),
            ],
            ..Default::default()
        },
    )
    .unwrap();
    vm.wait_for_line(
        &format!("fata: ready tcp/{tls_port}"),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", vm.console()));
    vm.wait_for_line(
        "the certificate from the image (embedded at build time)",
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", vm.console()));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(data.join("ca.pem"))
        .args([
            "--resolve",
            &format!("fata.test:{tls_port}:127.0.0.1"),
            &format!("https://fata.test:{tls_port}/hello.txt"),
        ])
        .output()
        .unwrap();
    let want = std::fs::read(fata_tests::site_dir().join("hello.txt")).unwrap();
    assert_eq!(out.stdout, want, "{}", String::from_utf8_lossy(&out.stderr));
}
