//! `cargo xtask deploy-config`: the files an existing platform needs to run a fata image —
//! an `xl` file for Xen, libvirt domain XML (QEMU/KVM with direct kernel boot or disk boot,
//! Xen PVH), a Firecracker JSON configuration. Every value comes from [`DeployOpts`], whose
//! defaults fit a small web service.

use crate::{Result, bail};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// A configuration format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeployFormat {
    /// Xen `xl` (PVH).
    Xl,
    /// libvirt domain XML.
    Libvirt,
    /// Firecracker's `--config-file` JSON.
    Firecracker,
}

impl DeployFormat {
    /// Parses `--format`.
    pub fn parse(s: &str) -> Result<DeployFormat> {
        match s {
            "xl" => Ok(DeployFormat::Xl),
            "libvirt" => Ok(DeployFormat::Libvirt),
            "firecracker" => Ok(DeployFormat::Firecracker),
            _ => bail!(
                "unknown configuration format `{s}`; the formats are: xl, libvirt, firecracker"
            ),
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            DeployFormat::Xl => "xl",
            DeployFormat::Libvirt => "xml",
            DeployFormat::Firecracker => "firecracker.json",
        }
    }
}

/// What the domain looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployOpts {
    /// The domain's name.
    pub name: String,
    /// The kernel (the fata ELF image), for direct boot.
    pub kernel: PathBuf,
    /// libvirt: boot this disk (from `cargo xtask image`) through the firmware instead.
    pub boot_disk: Option<PathBuf>,
    /// RAM in MiB.
    pub memory_mib: u32,
    /// The host bridge the network card joins (xl, libvirt) or the TAP device (Firecracker).
    pub bridge: String,
    /// The card's MAC address.
    pub mac: String,
    /// Data disks (`disk0`, `disk1`, …).
    pub disks: Vec<PathBuf>,
    /// Boot arguments.
    pub args: String,
    /// libvirt's domain type for QEMU: `kvm`, or `qemu` (TCG, no KVM).
    pub domain_type: String,
    /// libvirt: plug the card into this existing TAP device instead of a bridge.
    pub tap: Option<String>,
}

impl DeployOpts {
    /// Defaults for `name` with `kernel`.
    pub fn new(name: &str, kernel: &Path) -> DeployOpts {
        DeployOpts {
            name: name.to_string(),
            kernel: kernel.to_path_buf(),
            boot_disk: None,
            memory_mib: 64,
            bridge: "virbr0".into(),
            mac: "52:54:00:fa:7a:01".into(),
            disks: Vec::new(),
            args: String::new(),
            domain_type: "kvm".into(),
            tap: None,
        }
    }

    fn check(&self) -> Result<()> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!(
                "the domain name `{}` may hold only letters, digits, `-`, `_` and `.`",
                self.name
            );
        }
        if !is_mac(&self.mac) {
            bail!("`{}` is not a MAC address (aa:bb:cc:dd:ee:ff)", self.mac);
        }
        for p in std::iter::once(&self.kernel)
            .chain(&self.boot_disk)
            .chain(&self.disks)
        {
            if !p.is_absolute() {
                bail!("{}: a configuration needs absolute paths", p.display());
            }
        }
        if self.memory_mib == 0 {
            bail!("a domain needs memory");
        }
        if !matches!(self.domain_type.as_str(), "kvm" | "qemu") {
            bail!(
                "the libvirt domain type is kvm or qemu, not `{}`",
                self.domain_type
            );
        }
        Ok(())
    }
}

/// Whether `s` is `aa:bb:cc:dd:ee:ff`.
fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// XML-escapes `s`.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// JSON-escapes `s` (inside quotes).
fn json(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// The `xl` file for a `xen` image.
pub fn xl(o: &DeployOpts) -> Result<String> {
    o.check()?;
    crate::xen::xl_config(&crate::xen::XlConfig {
        name: o.name.clone(),
        kernel: o.kernel.display().to_string(),
        memory_mib: o.memory_mib,
        vifs: vec![format!("mac={},bridge={}", o.mac, o.bridge)],
        disks: o
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| {
                format!(
                    "format=raw,vdev=xvd{},access=rw,target={}",
                    (b'a' + i as u8) as char,
                    d.display()
                )
            })
            .collect(),
        extra: o.args.clone(),
        ..Default::default()
    })
}

/// libvirt domain XML: for a `virtio` image, QEMU/KVM (`q35`) with direct kernel boot or
/// (with [`DeployOpts::boot_disk`]) disk boot; for a `xen` image (`xen`), a Xen PVH domain.
pub fn libvirt(o: &DeployOpts, xen: bool) -> Result<String> {
    o.check()?;
    let mut x = String::new();
    let kind = if xen { "xen" } else { &o.domain_type };
    let _ = writeln!(x, "<domain type='{kind}'>");
    let _ = writeln!(x, "  <name>{}</name>", esc(&o.name));
    let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", o.memory_mib);
    let _ = writeln!(x, "  <vcpu>1</vcpu>");
    let _ = writeln!(x, "  <os>");
    if xen {
        let _ = writeln!(x, "    <type arch='x86_64' machine='xenpvh'>xenpvh</type>");
    } else {
        let _ = writeln!(x, "    <type arch='x86_64' machine='q35'>hvm</type>");
    }
    match (&o.boot_disk, xen) {
        (Some(_), false) => {
            let _ = writeln!(x, "    <boot dev='hd'/>");
        }
        (Some(_), true) => {
            bail!("a xen domain boots its kernel directly; --boot-disk is for virtio")
        }
        (None, _) => {
            let _ = writeln!(
                x,
                "    <kernel>{}</kernel>",
                esc(&o.kernel.display().to_string())
            );
            let _ = writeln!(x, "    <cmdline>{}</cmdline>", esc(&o.args));
        }
    }
    let _ = writeln!(x, "  </os>");
    let _ = writeln!(x, "  <on_poweroff>destroy</on_poweroff>");
    let _ = writeln!(x, "  <on_reboot>destroy</on_reboot>");
    let _ = writeln!(x, "  <on_crash>destroy</on_crash>");
    let _ = writeln!(x, "  <devices>");
    let bus = if xen { "xen" } else { "virtio" };
    let mut disks: Vec<(&Path, &str)> = Vec::new();
    if let Some(b) = &o.boot_disk {
        disks.push((b, "sata"));
    }
    for d in &o.disks {
        disks.push((d, bus));
    }
    for (i, (d, b)) in disks.iter().enumerate() {
        let dev = match *b {
            "sata" => format!("sd{}", (b'a' + i as u8) as char),
            "xen" => format!("xvd{}", (b'a' + i as u8) as char),
            _ => format!("vd{}", (b'a' + i as u8) as char),
        };
        let _ = writeln!(x, "    <disk type='file' device='disk'>");
        let _ = writeln!(x, "      <driver name='qemu' type='raw'/>");
        let _ = writeln!(
            x,
            "      <source file='{}'/>",
            esc(&d.display().to_string())
        );
        let _ = writeln!(x, "      <target dev='{dev}' bus='{b}'/>");
        let _ = writeln!(x, "    </disk>");
    }
    match &o.tap {
        Some(t) => {
            let _ = writeln!(x, "    <interface type='ethernet'>");
            let _ = writeln!(x, "      <target dev='{}' managed='no'/>", esc(t));
        }
        None => {
            let _ = writeln!(x, "    <interface type='bridge'>");
            let _ = writeln!(x, "      <source bridge='{}'/>", esc(&o.bridge));
        }
    }
    let _ = writeln!(x, "      <mac address='{}'/>", esc(&o.mac));
    if !xen {
        let _ = writeln!(x, "      <model type='virtio'/>");
    }
    let _ = writeln!(x, "    </interface>");
    let _ = writeln!(x, "    <console type='pty'/>");
    if !xen {
        let _ = writeln!(x, "    <serial type='pty'><target port='0'/></serial>");
        let _ = writeln!(x, "    <memballoon model='none'/>");
    }
    let _ = writeln!(x, "  </devices>");
    let _ = writeln!(x, "</domain>");
    Ok(x)
}

/// Firecracker's JSON configuration (`firecracker --config-file`): the kernel, the boot
/// arguments, a virtio-mmio network card on the TAP device [`DeployOpts::bridge`], the data
/// disks as virtio-mmio block devices.
pub fn firecracker(o: &DeployOpts) -> Result<String> {
    o.check()?;
    let drives: Vec<String> = o
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            format!(
                "    {{ \"drive_id\": \"disk{i}\", \"path_on_host\": \"{}\", \"is_root_device\": false, \"is_read_only\": false }}",
                json(&d.display().to_string())
            )
        })
        .collect();
    Ok(format!(
        "{{\n  \"boot-source\": {{\n    \"kernel_image_path\": \"{}\",\n    \"boot_args\": \"{}\"\n  }},\n  \"drives\": [\n{}\n  ],\n  \"machine-config\": {{ \"vcpu_count\": 1, \"mem_size_mib\": {} }},\n  \"network-interfaces\": [\n    {{ \"iface_id\": \"service0\", \"guest_mac\": \"{}\", \"host_dev_name\": \"{}\" }}\n  ]\n}}\n",
        json(&o.kernel.display().to_string()),
        json(&o.args),
        drives.join(",\n"),
        o.memory_mib,
        json(&o.mac),
        json(&o.bridge)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> DeployOpts {
        let mut o = DeployOpts::new("web", Path::new("/srv/http"));
        o.args = "ipv4=10.0.0.2/24 name=\"a <b>\"".into();
        o.disks = vec!["/srv/kv.img".into()];
        o
    }

    #[test]
    fn formats_parse_and_unknown_ones_list_the_choices() {
        assert_eq!(DeployFormat::parse("xl").unwrap(), DeployFormat::Xl);
        assert!(
            DeployFormat::parse("vmx")
                .unwrap_err()
                .0
                .contains("xl, libvirt, firecracker")
        );
    }

    #[test]
    fn libvirt_xml_escapes_the_arguments_and_boots_the_kernel_or_the_disk() {
        let x = libvirt(&opts(), false).unwrap();
        assert!(x.contains("<kernel>/srv/http</kernel>"), "{x}");
        assert!(x.contains("name=&quot;a &lt;b&gt;&quot;"), "{x}");
        assert!(x.contains("<target dev='vda' bus='virtio'/>"), "{x}");
        let mut o = opts();
        o.boot_disk = Some("/srv/http.raw".into());
        let x = libvirt(&o, false).unwrap();
        assert!(
            x.contains("<boot dev='hd'/>") && !x.contains("<kernel>"),
            "{x}"
        );
        let x = libvirt(&opts(), true).unwrap();
        assert!(
            x.contains("machine='xenpvh'") && x.contains("<domain type='xen'>"),
            "{x}"
        );
    }

    #[test]
    fn firecracker_json_escapes_its_strings() {
        let j = firecracker(&opts()).unwrap();
        assert!(
            j.contains("\"boot_args\": \"ipv4=10.0.0.2/24 name=\\\"a <b>\\\"\""),
            "{j}"
        );
        assert!(j.contains("\"path_on_host\": \"/srv/kv.img\""), "{j}");
    }

    #[test]
    fn bad_values_are_refused() {
        let mut o = opts();
        o.mac = "00:11".into();
        assert!(xl(&o).is_err());
        let mut o = opts();
        o.name = "a b".into();
        assert!(firecracker(&o).is_err());
        let mut o = opts();
        o.domain_type = "vmware".into();
        assert!(libvirt(&o, false).is_err());
    }
}
