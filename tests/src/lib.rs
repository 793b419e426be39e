//! Helpers for the integration tests in `tests/tests/`: build an example once per test
//! process (release profile, through the same xtask library users run), boot it, and check
//! the exit status *and* the console.
#![forbid(unsafe_code)]

pub use xtask::client;

pub mod kv;
pub mod nbd;
pub mod rng;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
pub use xtask::build::Image;
pub use xtask::runner::{BootOpts, Exit, Outcome};
pub use xtask::target::{Machine, Target};

/// How long any single boot may take before the harness kills it.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// The image of `example` for `target`, built on first use.
pub fn image(target: Target, example: &str) -> Image {
    static BUILT: OnceLock<Mutex<HashMap<(Target, String), Image>>> = OnceLock::new();
    let map = BUILT.get_or_init(Default::default);
    // Building under the lock serialises cargo runs of one test process (cargo would anyway).
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    m.entry((target, example.to_string()))
        .or_insert_with(|| {
            let opts = xtask::build::BuildOpts {
                target,
                example: example.to_string(),
                release: true,
            };
            xtask::build::build(&opts)
                .unwrap_or_else(|e| panic!("building {example} for {target:?}: {e}"))
        })
        .clone()
}

/// Boots `example` on `target` with boot arguments `args` and waits for it to end.
pub fn run(target: Target, example: &str, args: &[&str]) -> Outcome {
    run_with(target, example, args, |_| {})
}

/// Like [`run`], with the boot options adjusted by `f` (machine, memory, ...).
pub fn run_with(
    target: Target,
    example: &str,
    args: &[&str],
    f: impl FnOnce(&mut BootOpts),
) -> Outcome {
    let img = image(target, example);
    let mut opts = BootOpts {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    f(&mut opts);
    xtask::runner::boot(&img, &opts)
        .and_then(|r| r.wait(BOOT_TIMEOUT))
        .unwrap_or_else(|e| panic!("booting {example} on {target:?}: {e}"))
}

/// Asserts the exit and that every `lines` entry appears on the console, in order (two
/// entries may match the same line).
#[track_caller]
pub fn expect(out: &Outcome, exit: Exit, lines: &[&str]) {
    let console = out.console();
    assert_eq!(
        out.exit, exit,
        "unexpected exit; console:\n{console}\nstderr:\n{}",
        out.stderr
    );
    let mut from = 0;
    for want in lines {
        match out.lines[from..].iter().position(|l| l.text.contains(want)) {
            Some(i) => from += i, // the next needle may be on the same line
            None => panic!(
                "missing (in order) `{want}`; console:\n{console}\nstderr:\n{}",
                out.stderr
            ),
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A network image booted with QEMU user networking, host port forwarded to `guest_port`,
/// after its readiness line. Killed on drop.
pub struct NetVm {
    /// The running image.
    pub vm: xtask::runner::Running,
    /// 127.0.0.1 and the forwarded host port.
    pub addr: std::net::SocketAddr,
    /// 127.0.0.1 and the host port forwarded to each of [`UserNetBoot::extra_ports`], in order.
    pub extra: Vec<std::net::SocketAddr>,
}

/// Boots `example` on `machine` with user networking and waits for `fata: ready tcp/<guest_port>`.
pub fn boot_user_net(
    example: &str,
    machine: Machine,
    guest_port: u16,
    args: &[&str],
    nic: &[&str],
) -> NetVm {
    boot_user_net_with(example, machine, guest_port, args, nic, &[])
}

/// [`boot_user_net`] with extra QEMU arguments.
pub fn boot_user_net_with(
    example: &str,
    machine: Machine,
    guest_port: u16,
    args: &[&str],
    nic: &[&str],
    qemu_extra: &[&str],
) -> NetVm {
    UserNetBoot {
        args,
        nic,
        qemu_extra,
        ..UserNetBoot::new(example, machine, guest_port)
    }
    .boot()
}

/// Everything a boot with QEMU user networking can vary: [`UserNetBoot::boot`] it.
pub struct UserNetBoot<'a> {
    /// The example.
    pub example: &'a str,
    /// The machine.
    pub machine: Machine,
    /// The guest port the host forwards to (and whose readiness line is awaited).
    pub guest_port: u16,
    /// Boot arguments.
    pub args: &'a [&'a str],
    /// Network card properties.
    pub nic: &'a [&'a str],
    /// Extra QEMU arguments.
    pub qemu_extra: &'a [&'a str],
    /// Disks (`disk0`, `disk1`, ...).
    pub disks: &'a [xtask::disk::DiskSpec],
    /// Boot from this disk (`cargo xtask image`) through the firmware instead of `-kernel`.
    pub boot_disk: Option<xtask::qemu::BootDisk>,
    /// More guest ports to forward (each from a free host port, see [`NetVm::extra`]); their
    /// readiness lines are awaited too.
    pub extra_ports: &'a [u16],
    /// The CPU model (`-cpu`), when not QEMU's `max` (`qemu64` has neither RDRAND nor RDSEED).
    pub cpu: Option<&'a str>,
}

impl<'a> UserNetBoot<'a> {
    /// `example` on `machine`, listening on `guest_port`, with nothing else.
    pub fn new(example: &'a str, machine: Machine, guest_port: u16) -> UserNetBoot<'a> {
        UserNetBoot {
            example,
            machine,
            guest_port,
            args: &[],
            nic: &[],
            qemu_extra: &[],
            disks: &[],
            boot_disk: None,
            extra_ports: &[],
            cpu: None,
        }
    }

    /// Boots and waits for the readiness line; panics with the console if it never comes.
    pub fn boot(&self) -> NetVm {
        self.try_boot().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`UserNetBoot::boot`], with an image that never becomes ready as an error (its console).
    pub fn try_boot(&self) -> Result<NetVm, String> {
        let UserNetBoot {
            example,
            machine,
            guest_port,
            args,
            nic,
            qemu_extra,
            disks,
            ref boot_disk,
            extra_ports,
            cpu,
        } = *self;
        let img = image(Target::Virtio, example);
        let host = free_port();
        let extra: Vec<(u16, u16)> = extra_ports.iter().map(|&g| (free_port(), g)).collect();
        let mut opts = BootOpts {
            args: args.iter().map(|s| s.to_string()).collect(),
            disks: disks.to_vec(),
            ..Default::default()
        };
        opts.qemu.machine = machine;
        opts.qemu.net = Some(xtask::qemu::NetBackend::User {
            forwards: [(host, guest_port)]
                .into_iter()
                .chain(extra.iter().copied())
                .collect(),
        });
        opts.qemu.nic_props = nic.iter().map(|s| s.to_string()).collect();
        opts.qemu.extra = qemu_extra.iter().map(|s| s.to_string()).collect();
        opts.qemu.boot_disk = boot_disk.clone();
        if let Some(cpu) = cpu {
            opts.qemu.cpu = cpu.to_string();
        }
        let vm = xtask::runner::boot(&img, &opts).map_err(|e| format!("booting {example}: {e}"))?;
        let ready = |port: u16| vm.wait_for_line(&format!("fata: ready tcp/{port}"), BOOT_TIMEOUT);
        let waited = std::iter::once(guest_port)
            .chain(extra_ports.iter().copied())
            .try_for_each(|p| ready(p).map(drop));
        if let Err(e) = waited {
            let out = vm
                .wait(Duration::from_secs(1))
                .map(|o| format!("{}{}", o.console(), o.stderr))
                .unwrap_or_default();
            return Err(format!("{example} never became ready: {e}\n{out}"));
        }
        Ok(NetVm {
            vm,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], host)),
            extra: extra
                .iter()
                .map(|&(h, _)| std::net::SocketAddr::from(([127, 0, 0, 1], h)))
                .collect(),
        })
    }
}

/// The site directory the http example embeds.
pub fn site_dir() -> std::path::PathBuf {
    xtask::root().join("examples/http/site")
}

pub use xtask::netns::Netns;

/// Boots `example` on microvm with its NIC on the namespace's `tap0`, and waits for
/// `fata: ready tcp/<port>`.
pub fn boot_in(ns: &Netns, example: &str, port: u16, args: &[&str]) -> xtask::runner::Running {
    let img = image(Target::Virtio, example);
    xtask::netns::boot_ready(ns, &img, port, args, BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `netclient ARGS` inside the namespace and asserts it printed `ok`; returns its output.
#[track_caller]
pub fn netclient(ns: &Netns, args: &[&str]) -> String {
    // Test binaries live in target/<profile>/deps; cargo builds `netclient` next to deps.
    let exe = std::env::current_exe().expect("the test binary's path");
    let netclient = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("netclient"))
        .expect("target directory");
    let (ok, out) = ns.run(netclient.to_str().expect("UTF-8 path"), args);
    assert!(
        ok && out.contains("ok"),
        "netclient {}: {out}",
        args.join(" ")
    );
    out
}

/// The http example's `/status` document, fetched from inside the namespace.
#[track_caller]
pub fn status(ns: &Netns, guest: &str) -> String {
    netclient(ns, &["status", guest, "80"])
}

/// A numeric field of a `/status` document (panics, naming the field, if it is missing).
#[track_caller]
pub fn field(status: &str, name: &str) -> u64 {
    xtask::load::status_field(status, name).unwrap_or_else(|| panic!("{name} missing: {status}"))
}

/// Boots the echo example in `ns` with `args` plus `lookup=fata.test`, while
/// `tests/scripts/dns.py` answers for `fata.test` on `server` with `records`, and waits for the
/// example to print `line`.
#[track_caller]
pub fn lookup_through_test_dns(
    ns: &Netns,
    server: &str,
    records: &[&str],
    args: &[&str],
    line: &str,
) {
    let script = xtask::root().join("tests/scripts/dns.py");
    let mut dns_args = vec![script.to_str().expect("UTF-8 path"), server, "fata.test"];
    dns_args.extend_from_slice(records);
    let mut dns = ns.spawn("python3", &dns_args);
    std::thread::sleep(Duration::from_millis(300));
    let mut boot_args = args.to_vec();
    boot_args.push("lookup=fata.test");
    let vm = boot_in(ns, "echo", 7, &boot_args);
    let r = vm.wait_for_line(line, Duration::from_secs(10));
    let _ = dns.kill();
    let _ = dns.wait();
    r.unwrap();
}

pub use xtask::encode::base64;
