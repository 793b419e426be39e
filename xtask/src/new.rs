//! `cargo fata new NAME [--template hello|http|kv]`: an app in its own directory that builds,
//! boots and tests at once — `Cargo.toml` (fata as a path dependency on the checkout the tool
//! was installed from, with how to pin a git revision instead), `src/main.rs`, an integration
//! test that boots the image through `fata-test`, a `README.md`, a GitHub Actions workflow and
//! a `.gitignore`.

use crate::{Result, bail};
use std::path::Path;

const HELLO: &str = r#"#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;
use alloc::string::String;

fata::config! {
    pub struct Config {
        /// Who to greet.
        name: String = "world",
    }
}

#[fata::main]
async fn main(rt: fata::Runtime<Config>) -> Result<(), &'static str> {
    fata::println!("Hello, {}!", rt.config().name);
    Ok(())
}
"#;

const HTTP: &str = r#"#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;
use alloc::format;
use alloc::string::String;
use fata::net::TcpStream;

fata::config! {
    pub struct Config {
        /// TCP port to listen on.
        port: u16 = 80,
        /// The page's greeting.
        greeting: String = "Hello from NAME",
    }
}

/// Answers one request, then closes.
async fn serve(mut conn: TcpStream, greeting: &str) {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    // Read up to the end of the request head (or a full buffer).
    while n < buf.len() {
        match conn.read(&mut buf[n..]).await {
            Ok(0) | Err(_) => return,
            Ok(k) => n += k,
        }
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let body = format!("<!DOCTYPE html><title>NAME</title><p>{greeting}</p>\n");
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(body.as_bytes()).await;
}

#[fata::main]
async fn main(rt: fata::Runtime<Config>) -> Result<(), String> {
    let net = rt.net().map_err(|e| format!("no network: {e}"))?;
    let listener = net
        .listen(rt.config().port)
        .map_err(|e| format!("listen: {e}"))?;
    loop {
        let (conn, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accept: {e}"))?;
        let greeting = rt.config().greeting.clone();
        fata::spawn(async move { serve(conn, &greeting).await });
    }
}
"#;

const KV: &str = r#"#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;
use alloc::format;
use alloc::string::String;

fata::config! {
    pub struct Config {
        /// Which key to count boots under.
        key: String = "boots",
    }
}

/// Counts its boots in the key-value store on `disk0` (boot once with `format=true` on a
/// blank disk): every boot adds one, durably, and prints the total.
#[fata::main]
async fn main(rt: fata::Runtime<Config>) -> Result<(), String> {
    let store = fata::kv::open().await.map_err(|e| format!("{e}"))?;
    let key = rt.config().key.as_bytes();
    let before = match store.get(key).await.map_err(|e| format!("{e}"))? {
        Some(v) => core::str::from_utf8(&v).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
        None => 0,
    };
    let now = before + 1;
    store
        .put(key, format!("{now}").as_bytes())
        .await
        .map_err(|e| format!("{e}"))?;
    fata::println!("NAME: boot number {now}");
    Ok(())
}
"#;

const TEST_HELLO: &str = r#"//! Boots the app and checks what it says, on every target this machine runs.

#[test]
fn greets_in_qemu() {
    let (code, console) = fata_test::Guest::virtio().arg("name=test").start().wait();
    assert_eq!(code, Some(0), "{console}");
    assert!(console.contains("Hello, test!"), "{console}");
}

#[test]
#[ignore = "boots Xen nested under QEMU (about 20 s, and 75 MB of Debian packages the first time): cargo fata test -- --ignored"]
fn greets_on_xen() {
    let (code, console) = fata_test::Guest::on_xen(&["name=xen"], std::time::Duration::from_secs(60));
    assert_eq!(code, Some(0), "{console}");
    assert!(console.contains("Hello, xen!"), "{console}");
}

#[test]
fn greets_as_a_process() {
    let (code, console) = fata_test::Guest::unix().start().wait();
    assert_eq!(code, Some(0), "{console}");
    assert!(console.contains("Hello, world!"), "{console}");
}
"#;

const TEST_HTTP: &str = r#"//! Boots the app and asks it for its page, in QEMU and as a process.

#[test]
fn serves_its_page_in_qemu() {
    let g = fata_test::Guest::virtio().port(80).start();
    let page = fata_test::get(g.addr(), "/").unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Hello from NAME"), "{page}");
}

#[test]
fn serves_its_page_as_a_process() {
    let g = fata_test::Guest::unix().port(80).start();
    let page = fata_test::get(g.addr(), "/").unwrap();
    assert!(page.contains("Hello from NAME"), "{page}");
}
"#;

const TEST_KV: &str = r#"//! Boots the app twice on one disk: the count survives.

#[test]
fn counts_boots_on_its_disk() {
    let dir = std::env::temp_dir().join(format!("NAME-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0u8; 16 << 20]).unwrap();
    let arg = format!("disk0={}", disk.display());
    let (code, console) = fata_test::Guest::unix().arg(&arg).arg("format=true").start().wait();
    assert_eq!(code, Some(0), "{console}");
    assert!(console.contains("boot number 1"), "{console}");
    let (code, console) = fata_test::Guest::unix().arg(&arg).start().wait();
    assert_eq!(code, Some(0), "{console}");
    assert!(console.contains("boot number 2"), "{console}");
}
"#;

const WORKFLOW: &str = r#"# Before this runs on GitHub, point Cargo.toml's `fata` and `fata-test` at a git revision
# of fata (see the comment there) and FATA_REPO below at the same repository.
name: ci
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      # fata itself, where Cargo.toml's path dependency expects it (or pin a git revision there).
      - run: git clone FATA_REPO ../fata
      - run: sudo apt-get update && sudo apt-get install -y qemu-system-x86 qemu-utils
      - run: cargo install --path ../fata/xtask --bin cargo-fata
      - run: cargo fata check
      - run: cargo fata test
      - run: cargo fata release
      - uses: actions/upload-artifact@v4
        with:
          name: NAME
          path: dist/NAME
"#;

/// Creates the app `name` in `dir` from `template`.
pub fn create(dir: &Path, name: &str, template: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        bail!(
            "`{name}` is not a crate name: letters, digits, `-` and `_`, not starting with a digit"
        );
    }
    let (main, test, features) = match template {
        "hello" => (HELLO, TEST_HELLO, ""),
        "http" => (HTTP, TEST_HTTP, ", features = [\"net\"]"),
        "kv" => (KV, TEST_KV, ", features = [\"kv\"]"),
        other => bail!("unknown template `{other}`; the templates are: hello, http, kv"),
    };
    if dir.exists() {
        bail!("{} exists; choose another name", dir.display());
    }
    let fata = crate::root();
    let fata = fata.display();
    let manifest = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# fata from the checkout `cargo fata` was installed from. To pin a version, use its git
# repository at a fixed commit instead (and the same for fata-test below):
#   fata = {{ git = "https://example.org/fata.git", rev = "<commit>"{features}, optional = true }}
[dependencies]
fata = {{ path = "{fata}/kernel/rt"{features}, optional = true }}

[dev-dependencies]
fata-test = {{ path = "{fata}/tests/fata-test" }}

[features]
# Turned on by `cargo fata` when it builds the image. Without it, `cargo test` builds neither
# the bare-metal binary nor fata for the host: the tests boot the image instead.
image = ["dep:fata"]

[[bin]]
name = "{name}"
path = "src/main.rs"
required-features = ["image"]

# An app is its own workspace.
[workspace]
"#
    );
    let readme = format!(
        "# {name}\n\nA [fata](https://example.org/fata) unikernel app (template `{template}`).\n\n\
         ```sh\n\
         cargo fata run                      # boot it in QEMU\n\
         cargo fata run --target unix        # run it as a Linux process\n\
         cargo fata test                     # its tests boot the image\n\
         cargo fata check                    # can every dependency run without an OS?\n\
         cargo fata release                  # every artefact, each booted, in dist/{name}/\n\
         ```\n\n\
         Boot arguments go after `--` (`cargo fata run -- help` lists the keys).\n"
    );
    let sub = |t: &str| t.replace("NAME", name);
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::create_dir_all(dir.join("tests"))?;
    std::fs::create_dir_all(dir.join(".github/workflows"))?;
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    std::fs::write(dir.join("src/main.rs"), sub(main))?;
    std::fs::write(dir.join("tests/boots.rs"), sub(test))?;
    std::fs::write(dir.join("README.md"), readme)?;
    std::fs::write(
        dir.join(".github/workflows/ci.yml"),
        sub(WORKFLOW).replace("FATA_REPO", "https://example.org/fata.git"),
    )?;
    std::fs::write(dir.join(".gitignore"), "/target\n/dist\n")?;
    Ok(())
}
