//! `cargo xtask run --target xen`: one fata image on the nested Xen, started by `xl create`
//! in dom0 with a network card (the guest is 10.0.0.2/24 unless its boot arguments say
//! otherwise; dom0 is 10.0.0.1) and the `--disk` images, its console streamed as it prints.
//!
//! A disk image is copied into dom0's memory for the run: what the guest writes to it stays
//! there (the harness has no way back to the host's file), which the command says.

use super::{Harness, Output, Session, XlConfig, run, xl_config};
use crate::disk::DiskSpec;
use crate::runner::Line;
use crate::{Result, bail};
use std::path::Path;
use std::time::Duration;

/// Marks the guest's console lines in dom0's output.
const PREFIX: &str = "guest| ";

/// What a run of a fata image on the harness ended with.
#[derive(Debug)]
pub struct GuestRun {
    /// The exit code the image printed (`fata: exit N`), if it printed one.
    pub code: Option<u8>,
    /// Whether it was still running when the time was up.
    pub timed_out: bool,
    /// The session's output.
    pub output: Output,
}

/// The session script; `DISKS` (commands that create fresh disks) and `TIMEOUT` (seconds) are
/// replaced.
const SCRIPT: &str = r#". /lib/fata.sh
DISKS
start app /etc/xen/app.xl
i=0; while [ ! -e /var/log/xen/console/guest-app.log ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
tail -n +1 -f /var/log/xen/console/guest-app.log 2>/dev/null | while IFS= read -r l; do echo "guest| $l"; done &
tailer=$!
if wait_exit app TIMEOUT; then result app_ended yes; else result app_ended no; xl destroy app; wait_exit app 20; fi
sleep 0.3; kill $tailer 2>/dev/null
result app_rc "$(cat /tmp/xl-app.rc 2>/dev/null)"
"#;

/// Boots `image` (a `xen` image) with boot arguments `args`, `memory_mib` of RAM and
/// `disks`, streaming its console lines (all serial lines with `verbose`) to stderr.
pub fn run_guest(
    h: &Harness,
    image: &Path,
    args: &str,
    memory_mib: u32,
    disks: &[DiskSpec],
    timeout: Duration,
    verbose: bool,
) -> Result<GuestRun> {
    let mut files = vec![("/guest/app".to_string(), std::fs::read(image)?, false)];
    let mut disk_specs = Vec::new();
    let mut setup = String::new();
    for (i, d) in disks.iter().enumerate() {
        let dom0_path = format!("/tmp/disk{i}.img");
        let data = if d.path.exists() {
            std::fs::read(&d.path)?
        } else if let Some(size) = d.size {
            setup.push_str(&format!(
                "dd if=/dev/zero of={dom0_path} bs=512 count={} 2>/dev/null\n",
                size / 512
            ));
            Vec::new()
        } else {
            bail!(
                "{}: no such disk image (give a size to create one: PATH:64M)",
                d.path.display()
            );
        };
        if !data.is_empty() {
            files.push((dom0_path.clone(), data, false));
        }
        eprintln!(
            "xtask: xen: {} is copied into the nested dom0 as {dom0_path}; the guest's writes stay there",
            d.path.display()
        );
        let access = if d.read_only { "ro" } else { "rw" };
        disk_specs.push(format!(
            "format=raw,vdev=xvd{},access={access},script=/etc/xen/scripts/fata-block,target={dom0_path}",
            (b'a' + i as u8) as char
        ));
    }
    let mut extra = args.to_string();
    let image_bytes = &files[0].1;
    if has_network(image_bytes)
        && !extra
            .split_whitespace()
            .any(|w| w.starts_with("ipv4=") || w.starts_with("dhcp="))
    {
        // dom0 runs no DHCP server: the guest gets the address the vif script routes.
        extra = format!("ipv4=10.0.0.2/24 {extra}").trim().to_string();
    }
    let cfg = xl_config(&XlConfig {
        name: "app".into(),
        kernel: "/guest/app".into(),
        memory_mib,
        vifs: vec!["mac=00:16:3e:00:00:02,script=/etc/xen/scripts/fata-vif".into()],
        disks: disk_specs,
        extra,
        tsc_native: true,
        ..Default::default()
    })?;
    files.push(("/etc/xen/app.xl".into(), cfg.into_bytes(), false));
    let script = SCRIPT
        .replace("DISKS", &setup)
        .replace("TIMEOUT", &timeout.as_secs().max(1).to_string());
    let session = Session {
        files,
        script,
        // Xen and dom0 take about 10 s to come up under TCG.
        timeout: timeout + Duration::from_secs(120),
    };
    let mut code = None;
    let output = run(h, &session, &mut |l: &Line| {
        if let Some(t) = l.text.strip_prefix(PREFIX) {
            eprintln!("{t}");
            if let Some(n) = t
                .strip_prefix("fata: exit ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
            {
                code = Some(n);
            }
        } else if verbose {
            eprintln!("{:8.3} {}", l.at.as_secs_f64(), l.text);
        }
    })?;
    let timed_out = output
        .results
        .get("app_ended")
        .is_some_and(|v| v.first().is_some_and(|s| s == "no"));
    Ok(GuestRun {
        code,
        timed_out,
        output,
    })
}

/// Whether a fata image was built with networking: its boot keys (`dhcp_timeout` among them)
/// are in its read-only data.
fn has_network(image: &[u8]) -> bool {
    image.windows(12).any(|w| w == b"dhcp_timeout")
}
