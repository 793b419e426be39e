//! QEMU: finding it, building its command line, and decoding how it exited.
//!
//! Images boot with `-kernel` through the PVH note, under TCG (KVM on the development
//! machines is a nested PVM that cannot run ordinary guests; see docs/toolchain.md). The
//! `isa-debug-exit` device carries the exit code: QEMU exits with `(code << 1) | 1`.

use crate::runner::Exit;
use crate::target::Machine;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// The QEMU binary for x86_64 guests.
pub const QEMU: &str = "qemu-system-x86_64";

/// QEMU settings.
#[derive(Clone, Debug)]
pub struct QemuOpts {
    /// Machine type.
    pub machine: Machine,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// Attach `isa-debug-exit`, which carries the exit code (without it the guest can only
    /// power off or reset, and the code is lost).
    pub debug_exit: bool,
    /// Replaces the `-M` value (for guests that need other machine options, such as the Linux
    /// baseline, which needs microvm's option ROMs and ACPI).
    pub machine_args: Option<String>,
    /// An initial ramdisk (`-initrd`), for Linux guests.
    pub initrd: Option<std::path::PathBuf>,
    /// The network card's backend, if the machine has one.
    pub net: Option<NetBackend>,
    /// Extra properties of the network card (`rx_queue_size=1024`, `disable-modern=on`, ...).
    pub nic_props: Vec<String>,
    /// The CPU model (`-cpu`): `max` offers RDRAND and RDSEED under TCG; `qemu64` neither.
    pub cpu: String,
    /// Attach a virtio-rng device (`virtio-rng-device` on microvm, `virtio-rng-pci` on q35/pc),
    /// fed from the host's random source.
    pub rng: bool,
    /// Further QEMU arguments.
    pub extra: Vec<String>,
    /// Boot from this disk image (`cargo xtask image`: raw or qcow2) through the firmware
    /// instead of loading the ELF with `-kernel`; the boot arguments are the disk's own.
    pub boot_disk: Option<BootDisk>,
}

/// A bootable disk image and its format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootDisk {
    /// The image file.
    pub path: PathBuf,
    /// `raw` or `qcow2`.
    pub format: &'static str,
}

/// Where the guest's network card is plugged in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetBackend {
    /// QEMU user networking (no root needed): DHCP at 10.0.2.15, and host ports forwarded to
    /// guest ports, bound on 127.0.0.1.
    User {
        /// (host port, guest port) pairs.
        forwards: Vec<(u16, u16)>,
    },
    /// An existing TAP device.
    Tap {
        /// The interface name.
        ifname: String,
    },
}

/// Parses a `-p HOST:GUEST` port forward.
pub fn parse_forward(s: &str) -> Result<(u16, u16)> {
    let err = || {
        Error(format!(
            "-p {s}: expected HOST_PORT:GUEST_PORT, e.g. -p 8080:80"
        ))
    };
    let (h, g) = s.split_once(':').ok_or_else(err)?;
    let h: u16 = h.parse().map_err(|_| err())?;
    let g: u16 = g.parse().map_err(|_| err())?;
    if h == 0 || g == 0 {
        return Err(err());
    }
    Ok((h, g))
}

impl Default for QemuOpts {
    fn default() -> Self {
        QemuOpts {
            machine: Machine::Microvm,
            memory_mib: 64,
            debug_exit: true,
            machine_args: None,
            initrd: None,
            net: None,
            nic_props: Vec::new(),
            cpu: "max".into(),
            rng: false,
            extra: Vec::new(),
            boot_disk: None,
        }
    }
}

/// The QEMU binary, or an error that says how to install it.
pub fn find() -> Result<PathBuf> {
    find_in(std::env::var_os("PATH").unwrap_or_default())
}

/// [`find`] on a given search path.
pub fn find_in(path: impl AsRef<std::ffi::OsStr>) -> Result<PathBuf> {
    crate::cmd::which_in(QEMU, path.as_ref()).ok_or_else(|| {
        Error(format!(
            "{QEMU} is not installed. Run `cargo xtask setup` (installs it with apt-get when run as root), \
             or install it yourself: `sudo apt-get install qemu-system-x86`"
        ))
    })
}

/// The command that boots `image` with `cmdline` and `disks` (prepared already:
/// [`crate::disk::prepare_all`]), which follow the network card in order.
pub fn command(
    image: &Path,
    cmdline: &str,
    o: &QemuOpts,
    disks: &[crate::disk::DiskSpec],
) -> Result<Command> {
    let mut c = Command::new(find()?);
    let machine = o.machine_args.as_deref().unwrap_or(o.machine.qemu_arg());
    c.args(["-M", machine, "-accel", "tcg", "-cpu", &o.cpu])
        .args(["-m", &format!("{}M", o.memory_mib)])
        .args(["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"])
        .args(["-serial", "stdio"]);
    match &o.boot_disk {
        // The firmware boots the disk's loader, which reads the image and its arguments.
        Some(d) => {
            let mut drive = std::ffi::OsString::from("file=");
            drive.push(&d.path);
            drive.push(format!(",format={},if=ide,index=0,media=disk", d.format));
            c.arg("-drive").arg(drive).args(["-boot", "c"]);
        }
        None => {
            c.arg("-kernel").arg(image).args(["-append", cmdline]);
        }
    }
    if let Some(initrd) = &o.initrd {
        c.arg("-initrd").arg(initrd);
    }
    if let Some(net) = &o.net {
        let backend = match net {
            NetBackend::User { forwards } => {
                let mut b = String::from("user,id=n0");
                for (h, g) in forwards {
                    b.push_str(&format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"));
                }
                b
            }
            NetBackend::Tap { ifname } => {
                format!("tap,id=n0,ifname={ifname},script=no,downscript=no")
            }
        };
        let model = match o.machine {
            Machine::Microvm => "virtio-net-device",
            Machine::Q35 | Machine::Pc => "virtio-net-pci",
        };
        let mut nic = format!("{model},netdev=n0");
        for p in &o.nic_props {
            nic.push(',');
            nic.push_str(p);
        }
        c.args(["-netdev", &backend, "-device", &nic]);
    }
    c.args(crate::disk::qemu_args(disks, o.machine));
    if o.rng {
        let model = match o.machine {
            Machine::Microvm => "virtio-rng-device",
            Machine::Q35 | Machine::Pc => "virtio-rng-pci",
        };
        c.args(["-object", "rng-random,id=rng0,filename=/dev/urandom"])
            .args(["-device", &format!("{model},rng=rng0")]);
    }
    c.args(&o.extra);
    if o.debug_exit {
        c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    }
    Ok(c)
}

/// QEMU's version (`7.2.22`), for reports.
pub fn version() -> Result<String> {
    let out = Command::new(find()?).arg("--version").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or("?")
        .to_string())
}

/// The smallest heap an image boots with (`fata-platform-virtio`'s `MIN_HEAP`).
pub const MIN_HEAP: u64 = 256 * 1024;

/// Refuses to start a machine too small to even hold the image: the guest could not say so
/// itself (its code would not be in RAM), it would just hang.
pub fn check_memory(image: &Path, memory_mib: u32) -> Result<()> {
    let report = crate::elfcheck::check(image)?;
    let Some((_, end)) = report.load_range else {
        return Ok(());
    };
    let need = end + MIN_HEAP;
    if u64::from(memory_mib) << 20 < need {
        crate::bail!(
            "-m {memory_mib} is too small: the image occupies memory up to {end:#x} ({} KiB) and needs {} KiB of heap above it; use at least -m {}",
            end / 1024,
            MIN_HEAP / 1024,
            need.div_ceil(1 << 20)
        );
    }
    Ok(())
}

/// Turns QEMU's exit status into how the guest ended.
pub fn decode_exit(status: ExitStatus, stderr: &str, guest_printed: bool) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match status.code() {
        Some(0) => Exit::PoweredOff,
        // QEMU's own failures also exit 1, but then the guest never printed and QEMU said why.
        Some(1) if !guest_printed && stderr.contains("qemu-system") => {
            Exit::QemuFailed(stderr.trim().to_string())
        }
        Some(c) if c & 1 == 1 => Exit::Code((c >> 1) as u8),
        Some(c) => Exit::QemuFailed(format!("QEMU exited with {c}: {}", stderr.trim())),
        None => Exit::Signal(status.signal().unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn st(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn port_forwards_parse_and_bad_ones_say_the_syntax() {
        assert_eq!(parse_forward("8080:80").unwrap(), (8080, 80));
        for bad in ["8080", "x:80", "8080:0", "70000:80", ":"] {
            assert!(
                parse_forward(bad)
                    .unwrap_err()
                    .0
                    .contains("HOST_PORT:GUEST_PORT"),
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_qemu_error_says_how_to_install_it() {
        let empty = std::env::temp_dir().join("fata-no-qemu-here");
        std::fs::create_dir_all(&empty).unwrap();
        let e = find_in(&empty).unwrap_err().0;
        assert!(e.contains("qemu-system-x86_64 is not installed"), "{e}");
        assert!(
            e.contains("cargo xtask setup") && e.contains("apt-get install qemu-system-x86"),
            "{e}"
        );
    }

    #[test]
    fn debug_exit_codes_decode_and_qemu_errors_are_told_apart() {
        assert_eq!(decode_exit(st(1), "", true), Exit::Code(0));
        assert_eq!(decode_exit(st(5), "", true), Exit::Code(2));
        assert_eq!(decode_exit(st(129), "", true), Exit::Code(64));
        assert_eq!(decode_exit(st(0), "", true), Exit::PoweredOff);
        assert!(matches!(
            decode_exit(st(1), "qemu-system-x86_64: -kernel x: No such file", false),
            Exit::QemuFailed(_)
        ));
    }
}
