//! Installing what the project needs on a fresh Debian/Ubuntu machine: QEMU.

use crate::{Result, bail, cmd, qemu};
use std::process::Command;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Makes sure QEMU is installed, installing it with apt-get when running as root.
pub fn ensure_qemu() -> Result<()> {
    if qemu::find().is_ok() {
        return Ok(());
    }
    if cmd::which("apt-get").is_none() {
        bail!(
            "{} is missing and this machine has no apt-get: install QEMU for x86_64 guests with your package manager",
            qemu::QEMU
        );
    }
    if !is_root() {
        bail!(
            "{} is missing. Install it with: sudo apt-get update && sudo apt-get install -y qemu-system-x86",
            qemu::QEMU
        );
    }
    eprintln!(
        "xtask: {} is missing; installing qemu-system-x86 and qemu-utils (headless)",
        qemu::QEMU
    );
    // Without the recommended packages: they are QEMU's GUI (GTK, SDL, OpenGL, sound) and
    // firmware fata does not boot. On a fresh Debian 12 (debootstrap minbase) that is 60
    // packages and 15 s instead of 365 packages and 64 s; qemu-utils (qemu-img, for
    // `cargo xtask image --format qcow2`) was one of the recommendations, so it is named.
    apt_install_headless(&["qemu-system-x86", "qemu-utils"])?;
    qemu::find().map(|_| ())
}

/// Makes sure the Debian packages providing `programs` are installed (apt-get, as root).
/// Makes sure `program` is installed, from the Debian package `package` (as root, with
/// `apt-get`; otherwise says the command to run).
pub fn ensure_program(program: &str, package: &str) -> Result<()> {
    if cmd::which(program).is_some() {
        return Ok(());
    }
    if !is_root() || cmd::which("apt-get").is_none() {
        bail!("missing: {program}. Install with: sudo apt-get install -y {package}");
    }
    apt_install(&[package])
}

/// Makes sure the file `path` exists, installing the Debian package `package` that provides it
/// if not (as root; otherwise says the command to run).
pub fn ensure_file(path: &std::path::Path, package: &str) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    if !is_root() || cmd::which("apt-get").is_none() {
        bail!(
            "missing: {}. Install with: sudo apt-get install -y {package}",
            path.display()
        );
    }
    apt_install(&[package])
}

pub fn ensure_tools(programs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| cmd::which(p).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || cmd::which("apt-get").is_none() {
        bail!(
            "missing: {}. Install with: sudo apt-get install -y {}",
            missing.join(", "),
            missing.join(" ")
        );
    }
    apt_install(&missing)
}

/// `apt-get update` and `apt-get install -y PACKAGES` (as root).
fn apt_install(packages: &[&str]) -> Result<()> {
    apt_get_install(packages, &[])
}

/// [`apt_install`] without the packages' recommendations (QEMU's are its GUI).
fn apt_install_headless(packages: &[&str]) -> Result<()> {
    apt_get_install(packages, &["--no-install-recommends"])
}

fn apt_get_install(packages: &[&str], options: &[&str]) -> Result<()> {
    cmd::run(
        Command::new("apt-get").arg("update").arg("-q"),
        "apt-get update",
    )?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q"])
            .args(options)
            .args(packages),
        "installing packages",
    )
}
