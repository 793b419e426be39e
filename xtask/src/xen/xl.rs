//! `xl` domain configuration files (`xl.cfg(5)`): the one writer of them, for the nested
//! harness's domUs and for the `.xl` file shipped next to every `xen` image.
//!
//! Every value is written as a double-quoted string. `xl`'s parser has no escapes that
//! both its versions in use agree on, so a value holding a `"`, a `\` or a control
//! character (a newline would end the setting) is refused with an error instead of
//! producing a file that `xl` reads differently or not at all.

use crate::{Result, bail};

/// What Xen does with a domain that crashed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnCrash {
    /// Remove it (the default: a test harness wants no leftovers).
    #[default]
    Destroy,
    /// Keep it, paused, for `xl dump-core` / `xenctx` post-mortems.
    Preserve,
}

impl OnCrash {
    /// The `on_crash` value.
    pub fn name(self) -> &'static str {
        match self {
            OnCrash::Destroy => "destroy",
            OnCrash::Preserve => "preserve",
        }
    }
}

/// A PVH domain: a kernel booted directly by Xen (fata's `xen` images, or Linux with
/// `CONFIG_XEN_PVH`), no device model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XlConfig {
    /// The domain name (`xl list`, `/var/log/xen/console/guest-NAME.log`): letters, digits,
    /// `-`, `_` and `.`.
    pub name: String,
    /// The kernel image, as a path on the machine that runs `xl`.
    pub kernel: String,
    /// An initial ramdisk (Linux guests), same.
    pub ramdisk: Option<String>,
    /// Guest memory in MiB (at least 1).
    pub memory_mib: u32,
    /// Virtual CPUs (at least 1).
    pub vcpus: u32,
    /// Network cards, each a full `xl-network-configuration(5)` spec, e.g.
    /// `mac=00:16:3e:00:00:02,bridge=xenbr0`.
    pub vifs: Vec<String>,
    /// Disks, each a full `xl-disk-configuration(5)` spec, e.g.
    /// `format=raw,vdev=xvda,access=rw,target=/srv/kv.img` (`target=` last: it may hold
    /// commas).
    pub disks: Vec<String>,
    /// The kernel's boot arguments (`extra`): fata's `key=value` words.
    pub extra: String,
    /// What to do when the domain crashes (a power-off and a reboot always destroy it: an
    /// image that asks to reboot has ended).
    pub on_crash: OnCrash,
    /// `tsc_mode = "native"`: the guest reads the TSC without Xen intercepting it. Needed by
    /// the nested harness (QEMU's TCG misreports intercepted `RDTSCP` to Xen, which then fails
    /// the guest); not needed on real hardware.
    pub tsc_native: bool,
}

impl Default for XlConfig {
    fn default() -> XlConfig {
        XlConfig {
            name: String::new(),
            kernel: String::new(),
            ramdisk: None,
            memory_mib: 32,
            vcpus: 1,
            vifs: Vec::new(),
            disks: Vec::new(),
            extra: String::new(),
            on_crash: OnCrash::Destroy,
            tsc_native: false,
        }
    }
}

/// `"value"`, or an error naming `what` if `value` cannot be written as an `xl` string.
fn quoted(what: &str, value: &str) -> Result<String> {
    if let Some(c) = value
        .chars()
        .find(|&c| c == '"' || c == '\\' || c.is_control())
    {
        bail!(
            "xl config: {what} `{}` holds {c:?}, which an xl string cannot carry; remove it",
            value.escape_debug()
        );
    }
    Ok(format!("\"{value}\""))
}

/// `[ "a", "b" ]`.
fn list(what: &str, items: &[String]) -> Result<String> {
    let items: Vec<String> = items
        .iter()
        .map(|i| quoted(what, i))
        .collect::<Result<_>>()?;
    Ok(format!("[ {} ]", items.join(", ")))
}

/// The `xl.cfg` text for `c`, or an error that says which value cannot be written.
pub fn xl_config(c: &XlConfig) -> Result<String> {
    if c.name.is_empty()
        || !c
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
    {
        bail!(
            "xl config: the domain name `{}` must be non-empty letters, digits, `-`, `_` or `.`",
            c.name.escape_debug()
        );
    }
    if c.kernel.is_empty() {
        bail!("xl config: domain `{}` has no kernel", c.name);
    }
    if c.memory_mib == 0 || c.vcpus == 0 {
        bail!(
            "xl config: domain `{}` needs at least 1 MiB and 1 vCPU (has {} MiB, {} vCPUs)",
            c.name,
            c.memory_mib,
            c.vcpus
        );
    }
    let mut s = String::new();
    s.push_str(&format!("name = {}\n", quoted("name", &c.name)?));
    s.push_str("type = \"pvh\"\n");
    s.push_str(&format!("kernel = {}\n", quoted("kernel", &c.kernel)?));
    if let Some(r) = &c.ramdisk {
        s.push_str(&format!("ramdisk = {}\n", quoted("ramdisk", r)?));
    }
    s.push_str(&format!("extra = {}\n", quoted("extra", &c.extra)?));
    s.push_str(&format!("memory = {}\nvcpus = {}\n", c.memory_mib, c.vcpus));
    if !c.vifs.is_empty() {
        s.push_str(&format!("vif = {}\n", list("vif", &c.vifs)?));
    }
    if !c.disks.is_empty() {
        s.push_str(&format!("disk = {}\n", list("disk", &c.disks)?));
    }
    s.push_str("on_poweroff = \"destroy\"\non_reboot = \"destroy\"\n");
    s.push_str(&format!("on_crash = \"{}\"\n", c.on_crash.name()));
    if c.tsc_native {
        s.push_str("tsc_mode = \"native\"\n");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> XlConfig {
        XlConfig {
            name: "http".into(),
            kernel: "/guest/http".into(),
            extra: "ipv4=10.0.0.2/24 name=big world".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_minimal_domain_is_pvh_and_destroyed_on_every_ending() {
        let text = xl_config(&base()).unwrap();
        assert_eq!(
            text,
            "name = \"http\"\ntype = \"pvh\"\nkernel = \"/guest/http\"\n\
             extra = \"ipv4=10.0.0.2/24 name=big world\"\nmemory = 32\nvcpus = 1\n\
             on_poweroff = \"destroy\"\non_reboot = \"destroy\"\non_crash = \"destroy\"\n"
        );
    }

    #[test]
    fn devices_ramdisk_and_harness_options_appear_only_when_asked() {
        let c = XlConfig {
            ramdisk: Some("/guest/initrd".into()),
            memory_mib: 128,
            vcpus: 2,
            vifs: vec!["mac=00:16:3e:00:00:02,script=/etc/xen/scripts/fata-vif".into()],
            disks: vec![
                "format=raw,vdev=xvda,access=rw,target=/tmp/a.img".into(),
                "format=raw,vdev=xvdb,access=ro,target=/tmp/b.img".into(),
            ],
            on_crash: OnCrash::Preserve,
            tsc_native: true,
            ..base()
        };
        let text = xl_config(&c).unwrap();
        for line in [
            "ramdisk = \"/guest/initrd\"\n",
            "memory = 128\nvcpus = 2\n",
            "vif = [ \"mac=00:16:3e:00:00:02,script=/etc/xen/scripts/fata-vif\" ]\n",
            "disk = [ \"format=raw,vdev=xvda,access=rw,target=/tmp/a.img\", \"format=raw,vdev=xvdb,access=ro,target=/tmp/b.img\" ]\n",
            "on_crash = \"preserve\"\n",
            "tsc_mode = \"native\"\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(!xl_config(&base()).unwrap().contains("tsc_mode"));
    }

    #[test]
    fn quotes_backslashes_and_newlines_are_refused_naming_the_setting() {
        for (bad, what) in [
            (
                XlConfig {
                    extra: "msg=\"hi\"".into(),
                    ..base()
                },
                "extra",
            ),
            (
                XlConfig {
                    extra: "a=1\nkernel=\"/evil\"".into(),
                    ..base()
                },
                "extra",
            ),
            (
                XlConfig {
                    kernel: "C:\\guest".into(),
                    ..base()
                },
                "kernel",
            ),
            (
                XlConfig {
                    disks: vec!["target=/tmp/x\"y".into()],
                    ..base()
                },
                "disk",
            ),
        ] {
            let e = xl_config(&bad).unwrap_err().0;
            assert!(
                e.contains(&format!("xl config: {what} ")) && e.contains("cannot carry"),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_names_empty_kernels_and_zero_sizes_are_refused() {
        for name in ["", "a b", "x\"y", "ü"] {
            let c = XlConfig {
                name: name.into(),
                ..base()
            };
            assert!(
                xl_config(&c).unwrap_err().0.contains("domain name"),
                "{name}"
            );
        }
        let c = XlConfig {
            kernel: String::new(),
            ..base()
        };
        assert!(xl_config(&c).unwrap_err().0.contains("has no kernel"));
        let c = XlConfig {
            memory_mib: 0,
            ..base()
        };
        assert!(xl_config(&c).unwrap_err().0.contains("at least 1 MiB"));
    }
}
