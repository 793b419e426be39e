//! Network namespaces with a TAP device, for tests and benchmarks that need a real link
//! (root and iproute2 required): the guest's NIC is plugged into `tap0` inside the namespace,
//! and host-side programs run there with [`Netns::run`].

use crate::build::Image;
use crate::runner::{BootOpts, Running, boot};
use crate::{Error, Result};
use std::time::Duration;

/// A network namespace with a TAP device `tap0` (host side 10.77.0.1/24 and fd77::1/64),
/// removed on drop.
/// Needs root and `ip` (iproute2).
pub struct Netns {
    /// The namespace's name.
    pub name: String,
}

fn ip(args: &[&str]) {
    let st = std::process::Command::new("ip")
        .args(args)
        .status()
        .expect("running ip (iproute2)");
    assert!(st.success(), "ip {} failed", args.join(" "));
}

impl Netns {
    /// Creates `fata-<pid>-<tag>` with `tap0` up at 10.77.0.1/24 and fd77::1/64, MTU `mtu`.
    pub fn new(tag: &str, mtu: u32) -> Netns {
        let name = format!("fata-{}-{tag}", std::process::id());
        // A namespace left over by an earlier, killed run.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        crate::cleanup::add_netns(&name);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["tuntap", "add", "dev", "tap0", "mode", "tap"]);
        ns.ip(&["link", "set", "tap0", "mtu", &mtu.to_string()]);
        ns.ip(&["addr", "add", "10.77.0.1/24", "dev", "tap0"]);
        // No duplicate address detection: the address is usable at once.
        ns.ip(&["-6", "addr", "add", "fd77::1/64", "dev", "tap0", "nodad"]);
        ns.ip(&["link", "set", "tap0", "up"]);
        ns
    }

    /// Runs `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) {
        let mut a = vec!["netns", "exec", &self.name, "ip"];
        a.extend_from_slice(args);
        ip(&a);
    }

    /// Runs a program inside the namespace; returns (success, stdout + stderr).
    pub fn run(&self, program: &str, args: &[&str]) -> (bool, String) {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .expect("ip netns exec");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

impl Netns {
    /// Starts a program inside the namespace in the background (a test server); the caller
    /// kills it.
    pub fn spawn(&self, program: &str, args: &[&str]) -> std::process::Child {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .spawn()
            .expect("ip netns exec")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        crate::cleanup::remove_netns(&self.name);
    }
}

/// Boots `image` on microvm with its NIC on the namespace's `tap0` and waits for
/// `fata: ready tcp/<port>`.
pub fn boot_ready(
    ns: &Netns,
    image: &Image,
    port: u16,
    args: &[&str],
    timeout: Duration,
) -> Result<Running> {
    boot_ready_mem(
        ns,
        image,
        port,
        args,
        timeout,
        BootOpts::default().qemu.memory_mib,
    )
}

/// [`boot_ready`] with `memory_mib` of guest RAM.
pub fn boot_ready_mem(
    ns: &Netns,
    image: &Image,
    port: u16,
    args: &[&str],
    timeout: Duration,
    memory_mib: u32,
) -> Result<Running> {
    let mut opts = BootOpts {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    opts.netns = Some(ns.name.clone());
    opts.qemu.net = Some(crate::qemu::NetBackend::Tap {
        ifname: "tap0".into(),
    });
    opts.qemu.memory_mib = memory_mib;
    let vm = boot(image, &opts)?;
    if let Err(e) = vm.wait_for_line(&format!("fata: ready tcp/{port}"), timeout) {
        let out = vm
            .wait(Duration::from_secs(1))
            .map(|o| format!("{}\n{}", o.console(), o.stderr))
            .unwrap_or_default();
        return Err(Error(format!(
            "{} never became ready: {e}\n{out}",
            image.path.display()
        )));
    }
    Ok(vm)
}
