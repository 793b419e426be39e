//! Test harness for fata apps, used as a dev-dependency: from a plain `#[test]` it builds the
//! app's image (the crate whose tests are running) for a target, boots it — QEMU for `virtio`,
//! a process for `unix`; `Guest::on_xen` runs it to its end on the nested Xen — waits for its ready line, hands the test an address to connect to,
//! captures the console, and kills the guest on drop, printing the console if the test failed.
//!
//! ```no_run
//! #[test]
//! fn it_serves() {
//!     let g = fata_test::Guest::virtio().port(80).start();
//!     let page = fata_test::get(g.addr(), "/").unwrap();
//!     assert!(page.starts_with("HTTP/1.1 200"), "{}", g.console());
//! }
//! ```
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;
use xtask::runner::{BootOpts, Exit, Running};
pub use xtask::target::Target;

/// How long a guest may take to become ready or to finish.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// What to boot.
#[derive(Clone, Debug)]
pub struct Builder {
    manifest: PathBuf,
    target: Target,
    port: Option<u16>,
    args: Vec<String>,
}

/// A running guest; killed when dropped.
pub struct Guest {
    vm: Option<Running>,
    addr: Option<SocketAddr>,
}

/// The image of the crate under test (`CARGO_MANIFEST_DIR`) for `target`, built once per
/// target and test process.
fn image(manifest: &std::path::Path, target: Target) -> xtask::build::Image {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<HashMap<(PathBuf, Target), xtask::build::Image>>> =
        OnceLock::new();
    let mut m = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    m.entry((manifest.to_path_buf(), target))
        .or_insert_with(|| {
            xtask::build::build_manifest(manifest, target, false)
                .unwrap_or_else(|e| panic!("building the app for {}: {e}", target.name()))
        })
        .clone()
}

impl Guest {
    /// The app under test on `target`.
    pub fn on(target: Target) -> Builder {
        Builder {
            manifest: PathBuf::from(
                std::env::var("CARGO_MANIFEST_DIR").expect("run from `cargo test`"),
            )
            .join("Cargo.toml"),
            target,
            port: None,
            args: Vec::new(),
        }
    }

    /// The app in QEMU (`virtio`, microvm, user networking).
    pub fn virtio() -> Builder {
        Guest::on(Target::Virtio)
    }

    /// The app as a Linux process (`unix`, the host's sockets).
    pub fn unix() -> Builder {
        Guest::on(Target::Unix)
    }

    /// The app's `xen` image on the nested Xen harness (Xen 4.17 and dom0 under QEMU, from
    /// Debian's packages, downloaded once): boots it with `xl create`, waits until it ends or
    /// `timeout` passes, and returns its exit code (from `fata: exit N`) and console. A guest
    /// there is reachable only from the nested dom0, so there is no address to connect to.
    pub fn on_xen(args: &[&str], timeout: Duration) -> (Option<u8>, String) {
        let b = Guest::on(Target::Xen);
        let img = image(&b.manifest, Target::Xen);
        let h = xtask::xen::prepare().unwrap_or_else(|e| panic!("the nested Xen harness: {e}"));
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let r = xtask::xen::guest::run_guest(
            &h,
            &img.path,
            &xtask::runner::cmdline(&args),
            64,
            &[],
            timeout,
            false,
        )
        .unwrap_or_else(|e| panic!("running on the nested Xen: {e}"));
        let console: Vec<String> = r
            .output
            .lines
            .iter()
            .filter_map(|l| l.text.strip_prefix("guest| ").map(str::to_string))
            .collect();
        (r.code, console.join("\n"))
    }

    /// Where to connect (127.0.0.1 and the port), if the builder named a port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .expect("start the guest with .port(N) to connect to it")
    }

    /// The console so far.
    pub fn console(&self) -> String {
        self.vm.as_ref().map(Running::console).unwrap_or_default()
    }

    /// Waits for the app to end (for apps without a listener); its exit code and console.
    pub fn wait(mut self) -> (Option<u8>, String) {
        let vm = self.vm.take().expect("running");
        let out = vm
            .wait(TIMEOUT)
            .unwrap_or_else(|e| panic!("waiting for the guest: {e}"));
        let code = match out.exit {
            Exit::Code(c) => Some(c),
            _ => None,
        };
        (code, out.console())
    }
}

impl Builder {
    /// The app listens on `port`: the guest is started with it reachable and [`Guest::addr`]
    /// points at it; [`Builder::start`] waits for `fata: ready tcp/PORT`.
    pub fn port(mut self, port: u16) -> Builder {
        self.port = Some(port);
        self
    }

    /// A boot argument (`key=value`).
    pub fn arg(mut self, a: &str) -> Builder {
        self.args.push(a.to_string());
        self
    }

    /// Builds (once per test process) and boots the app; with a port, waits until it is ready.
    pub fn start(self) -> Guest {
        let img = image(&self.manifest, self.target);
        let host = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut opts = BootOpts {
            args: self.args.clone(),
            ..Default::default()
        };
        let mut addr = None;
        if let Some(p) = self.port {
            match self.target {
                Target::Unix => {
                    opts.args.push(format!("port={host}"));
                    opts.args.push("net=socket".into());
                }
                _ => {
                    opts.qemu.net = Some(xtask::qemu::NetBackend::User {
                        forwards: vec![(host, p)],
                    });
                }
            }
            addr = Some(SocketAddr::from(([127, 0, 0, 1], host)));
        } else if self.target != Target::Unix {
            opts.qemu.net = Some(xtask::qemu::NetBackend::User { forwards: vec![] });
        }
        let vm = xtask::runner::boot(&img, &opts).unwrap_or_else(|e| panic!("booting: {e}"));
        let g = Guest { vm: Some(vm), addr };
        if self.port.is_some() {
            let port = if self.target == Target::Unix {
                host
            } else {
                self.port.unwrap_or(0)
            };
            let needle = format!("fata: ready tcp/{port}");
            if let Err(e) =
                g.vm.as_ref()
                    .expect("running")
                    .wait_for_line(&needle, TIMEOUT)
            {
                panic!("{e}\n{}", g.console());
            }
        }
        g
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(vm) = self.vm.take() {
            let console = vm.console();
            let _ = vm.wait(Duration::from_millis(10));
            if std::thread::panicking() {
                eprintln!("---- the guest's console ----\n{console}\n----");
            }
        }
    }
}

/// `GET path` over HTTP/1.0: the whole response (status line, headers, body) as text.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: fata\r\n\r\n")?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
