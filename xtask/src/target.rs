//! Everything that differs per platform, in one place.

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// The host triple every image is compiled for (the only target installed; see
/// docs/toolchain.md).
pub const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// A platform an application can be built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// PVH image for QEMU microvm/q35/pc, Firecracker, KVM clouds.
    Virtio,
    /// PVH domU for Xen.
    Xen,
    /// A Linux process.
    Unix,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 3] = [Target::Virtio, Target::Xen, Target::Unix];

    /// The name used on the command line and for the target directory.
    pub fn name(self) -> &'static str {
        match self {
            Target::Virtio => "virtio",
            Target::Xen => "xen",
            Target::Unix => "unix",
        }
    }

    /// Parses a `--target` value.
    pub fn parse(s: &str) -> Result<Target> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
                Error(format!(
                    "unknown target `{s}`; the targets are: {}",
                    names.join(", ")
                ))
            })
    }

    /// The `fata` feature that selects this platform.
    pub fn feature(self) -> &'static str {
        match self {
            Target::Virtio => "fata/platform-virtio",
            Target::Xen => "fata/platform-xen",
            Target::Unix => "fata/platform-unix",
        }
    }

    /// Whether images for this target are bare-metal (no host OS underneath).
    pub fn bare_metal(self) -> bool {
        matches!(self, Target::Virtio | Target::Xen)
    }

    /// Compiler flags for every crate of an image (not build scripts or proc-macros: images
    /// are built with an explicit `--target`). Bare-metal targets select getrandom's custom
    /// backend, which `fata` implements over `fata::rand` (getrandom 0.3 and 0.4 read this
    /// cfg; 0.2 cannot be redirected on a Linux target).
    pub fn rustflags(self) -> &'static [&'static str] {
        match self {
            Target::Virtio | Target::Xen => &["--cfg", "getrandom_backend=\"custom\""],
            Target::Unix => &[],
        }
    }

    /// This target's own cargo target directory: building one platform never touches
    /// another's artefacts.
    pub fn target_dir(self, root: &Path) -> PathBuf {
        root.join("target").join(self.name())
    }

    /// Extra linker arguments for the final image (bare-metal targets only).
    pub fn link_args(self, root: &Path, stubs: &Path) -> Vec<String> {
        match self {
            Target::Virtio | Target::Xen => [
                format!("-T{}", root.join("boot/link.ld").display()),
                "-nostartfiles".into(),
                "-nostdlib".into(),
                "-static".into(),
                "-no-pie".into(),
                "-Wl,--gc-sections".into(),
                "-Wl,--build-id=none".into(),
                "-Wl,-z,max-page-size=4096".into(),
                "-Wl,-z,noexecstack".into(),
                format!("-L{}", stubs.display()),
            ]
            .into(),
            Target::Unix => Vec::new(),
        }
    }
}

/// A QEMU machine type for hypervisor targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Machine {
    /// `-M microvm`: no PCI, no firmware; fastest boot.
    Microvm,
    /// `-M q35`: PCI Express machine with SeaBIOS.
    Q35,
    /// `-M pc`: i440FX machine with SeaBIOS.
    Pc,
}

impl Machine {
    /// Parses a `--machine` value.
    pub fn parse(s: &str) -> Result<Machine> {
        match s {
            "microvm" => Ok(Machine::Microvm),
            "q35" => Ok(Machine::Q35),
            "pc" => Ok(Machine::Pc),
            _ => Err(Error(format!(
                "unknown machine `{s}`; the machines are: microvm, q35, pc"
            ))),
        }
    }

    /// The `-M` argument.
    pub fn qemu_arg(self) -> &'static str {
        match self {
            // No option ROMs or ACPI tables to build: the PVH entry needs neither, and
            // `acpi=off` makes QEMU list virtio-mmio devices on the command line.
            Machine::Microvm => "microvm,x-option-roms=off,rtc=on,acpi=off",
            Machine::Q35 => "q35",
            Machine::Pc => "pc",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_target_error_lists_the_targets() {
        let e = Target::parse("xne").unwrap_err().0;
        assert!(
            e.contains("unknown target `xne`") && e.contains("virtio, xen, unix"),
            "{e}"
        );
        assert_eq!(Target::parse("unix").unwrap(), Target::Unix);
    }

    #[test]
    fn only_bare_metal_images_select_getrandoms_custom_backend() {
        for t in [Target::Virtio, Target::Xen] {
            assert_eq!(t.rustflags(), ["--cfg", "getrandom_backend=\"custom\""]);
        }
        assert!(
            Target::Unix.rustflags().is_empty(),
            "unix uses the host's getrandom"
        );
    }

    #[test]
    fn each_platform_has_its_own_target_directory() {
        let root = Path::new("/r");
        assert_ne!(
            Target::Virtio.target_dir(root),
            Target::Unix.target_dir(root)
        );
    }
}
