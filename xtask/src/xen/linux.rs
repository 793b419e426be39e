//! A Linux PVH domU on the nested harness: proves that dom0, the hotplug scripts, netback
//! and blkback work, and gives the Linux side of the Xen benchmarks.
//!
//! The domU is the Linux benchmark guest's kernel and busybox (Debian's cloud kernel, whose
//! `xen-netfront` and `xen-blkfront` are modules; [`crate::linux_guest`]) with its own
//! initramfs: it writes a marker onto `/dev/xvda`, takes 10.0.0.2/24 on `eth0`, starts a web
//! server (busybox `httpd`, or nginx with the benchmark guest's configuration) and prints
//! `DOMU-READY`. dom0 times the way to that line and to the first answered GET, checks the
//! page, optionally loads the server with `wrk`, destroys the domU and finds the marker in
//! the disk's file.

use super::{Harness, Output, Session, XlConfig, run, xl_config};
use crate::linux_guest;
use crate::runner::Line;
use crate::{Error, Result};
use std::path::PathBuf;
use std::time::Duration;

/// The domU's modules, from the cloud kernel.
const DOMU_MODULES: [&str; 2] = ["xen-netfront", "xen-blkfront"];

/// The domU's `/init`; `MODULES` and `SERVER` are replaced.
const DOMU_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /var/log/nginx /var/lib/nginx
for m in MODULES; do insmod /lib/modules/$m.ko || echo "domU: insmod $m failed"; done
i=0
while [ ! -b /dev/xvda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if [ -b /dev/xvda ]; then
  echo FATA-XVDA-MARKER | dd of=/dev/xvda bs=512 conv=sync,fsync 2>/dev/null && echo "domU: marker written to /dev/xvda"
else
  echo "domU: no /dev/xvda"
fi
ip link set lo up
ip link set eth0 up && ip addr add 10.0.0.2/24 dev eth0 || echo "domU: no eth0"
SERVER
echo "DOMU-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
while true; do sleep 3600; done
"#;

/// dom0's session; `WRK` is replaced by the load run or nothing.
const SESSION: &str = r#". /lib/fata.sh
dd if=/dev/zero of=/tmp/xvda.img bs=1M count=16 2>/dev/null || fail "cannot create /tmp/xvda.img"
t0=$(ms)
start linux /etc/xen/linux.cfg
( wait_http http://10.0.0.2/ 240 > /tmp/http.out && echo $(( $(ms) - t0 )) > /tmp/http-ms ) &
poller=$!
wait_console linux DOMU-READY 240 || fail "the Linux domU did not print DOMU-READY"
result linux_ready_ms $(( $(ms) - t0 ))
wait $poller || fail "$(cat /tmp/http.out)"
result linux_http_ms $(cat /tmp/http-ms)
got=$(wget -q -O- http://10.0.0.2/ | sha256sum | cut -d' ' -f1)
want=$(sha256sum < /guest/page.html | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "GET / answered a page with sha256 $got, expected $want"
result linux_page sha256 ok
WRK
xl destroy linux || fail "xl destroy linux failed"
wait_exit linux 60 || fail "xl create -F linux did not return after xl destroy"
head -c 16 /tmp/xvda.img | grep -q FATA-XVDA-MARKER || fail "the marker the domU wrote to xvda is not in /tmp/xvda.img"
result linux_disk marker ok
"#;

/// The load run from dom0, with `wrk` copied into it.
const WRK_RUN: &str = r#"wrk -t1 -c16 -d5s http://10.0.0.2:80/ > /tmp/wrk.out 2>&1 || { cat /tmp/wrk.out; fail "wrk failed"; }
cat /tmp/wrk.out
result linux_wrk_rps $(sed -n 's/^Requests\/sec: *//p' /tmp/wrk.out)
"#;

/// The page the domU serves.
const PAGE: &str = "<!DOCTYPE html>\n<html><head><title>fata nested Xen</title></head>\n<body><p>Served by a Linux PVH domU to dom0 over netfront and netback.</p></body></html>\n";

/// What runs in the domU and how it is loaded.
#[derive(Clone, Debug, Default)]
pub struct LinuxDomu {
    /// Serve with Debian's nginx (the benchmark guest's build and configuration) instead of
    /// busybox `httpd`.
    pub nginx: bool,
    /// Load the server from dom0 with Debian's `wrk` (`-t1 -c16 -d5s`) and report requests/s.
    pub wrk: bool,
}

/// The figures of one session.
#[derive(Clone, Debug)]
pub struct LinuxFigures {
    /// QEMU's start to `DOM0-DONE`.
    pub session: Duration,
    /// QEMU's start to dom0 ready for `xl create` (`DOM0-READY`).
    pub dom0_ready: Duration,
    /// `xl create` to the domU's ready line in its console log (dom0's clock, polled every
    /// 50 ms).
    pub ready_ms: u64,
    /// `xl create` to the first answered `GET /` from dom0 (tried every 50 ms).
    pub http_ms: u64,
    /// Requests/s of `wrk -t1 -c16 -d5s` from dom0, when asked for.
    pub wrk_rps: Option<f64>,
    /// What ran, for reports.
    pub description: String,
}

/// [`linux_domu`] with busybox `httpd` and no load run, silent.
pub fn linux_domu_smoke(h: &Harness) -> Result<LinuxFigures> {
    linux_domu(h, &LinuxDomu::default(), &mut |_| {})
}

/// Boots a session with the Linux domU `d` (see the module doc); `on_line` gets every serial
/// line. Fails with the console's story when any check fails.
pub fn linux_domu(
    h: &Harness,
    d: &LinuxDomu,
    on_line: &mut dyn FnMut(&Line),
) -> Result<LinuxFigures> {
    let root = linux_guest::unpacked_guest()?;
    let (kernel, kver) = linux_guest::kernel_of(&root)?;
    let dirs = [
        "bin",
        "sbin",
        "usr",
        "usr/sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "www",
        "lib",
        "lib64",
        "lib/modules",
        "lib/x86_64-linux-gnu",
        "var",
        "var/log",
        "var/lib",
    ];
    let server = if d.nginx {
        "nginx -c /etc/nginx.conf || echo \"domU: nginx did not start\""
    } else {
        "httpd -p 80 -h /www || echo \"domU: httpd did not start\""
    };
    let init = DOMU_INIT.replace("SERVER", server);
    let mut c = linux_guest::busybox_cpio(&root, &kver, &dirs, &init, &DOMU_MODULES)?;
    if d.nginx {
        linux_guest::add_nginx(&mut c, &root, PAGE.as_bytes())?;
    } else {
        c.file("www/index.html", false, PAGE.as_bytes());
    }
    let cfg = xl_config(&XlConfig {
        name: "linux".into(),
        kernel: "/guest/vmlinuz".into(),
        ramdisk: Some("/guest/initrd.cpio".into()),
        memory_mib: 128,
        vifs: vec!["mac=00:16:3e:00:00:02,script=/etc/xen/scripts/fata-vif".into()],
        disks: vec![
            "format=raw,vdev=xvda,access=rw,script=/etc/xen/scripts/fata-block,target=/tmp/xvda.img"
                .into(),
        ],
        extra: "console=hvc0 quiet".into(),
        tsc_native: true,
        ..Default::default()
    })?;
    let mut files = vec![
        ("/guest/vmlinuz".to_string(), std::fs::read(&kernel)?, false),
        ("/guest/initrd.cpio".into(), c.finish(), false),
        ("/guest/page.html".into(), PAGE.as_bytes().to_vec(), false),
        ("/etc/xen/linux.cfg".into(), cfg.into_bytes(), false),
    ];
    if d.wrk {
        files.extend(wrk_files(h)?);
    }
    let script = SESSION.replace("WRK", if d.wrk { WRK_RUN } else { "" });
    let s = Session {
        files,
        script,
        timeout: Duration::from_secs(600),
    };
    let out = run(h, &s, on_line)?;
    figures(&out, d, &kver)
}

/// The figures of a finished session, or an error with its story.
fn figures(out: &Output, d: &LinuxDomu, kver: &str) -> Result<LinuxFigures> {
    let fail = |what: &str| {
        Error(format!(
            "the Linux domU session failed: {what}\n{}",
            out.summary()
        ))
    };
    if !out.ok() {
        return Err(fail("it did not end with DOM0-DONE rc=0"));
    }
    for (key, want) in [("linux_page", "ok"), ("linux_disk", "ok")] {
        if out.result(key)?.last().map(String::as_str) != Some(want) {
            return Err(fail(&format!("{key} is not {want}")));
        }
    }
    let wrk_rps = if d.wrk {
        let v = out.result("linux_wrk_rps")?;
        Some(
            v.first()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| fail("wrk printed no Requests/sec"))?,
        )
    } else {
        None
    };
    Ok(LinuxFigures {
        session: out.done.map(|(t, _)| t).unwrap_or(out.elapsed),
        dom0_ready: out.dom0_ready.ok_or_else(|| fail("no DOM0-READY"))?,
        ready_ms: out.number("linux_ready_ms")?,
        http_ms: out.number("linux_http_ms")?,
        wrk_rps,
        description: format!(
            "Linux {kver} PVH domU (128 MiB, 1 vCPU), {}",
            if d.nginx { "nginx" } else { "busybox httpd" }
        ),
    })
}

/// `wrk` and the libraries it needs that dom0 lacks, as session files.
fn wrk_files(h: &Harness) -> Result<Vec<(String, Vec<u8>, bool)>> {
    let debs = h.dir.join("wrk-debs");
    linux_guest::download_with_libs(&debs, &["wrk"])?;
    let root = h.dir.join("wrk-root");
    linux_guest::unpack(&debs, &root, "usr/bin/wrk")?;
    // download_with_libs fetches nothing this machine has installed: then wrk is the host's
    // (the same Debian release).
    let wrk = Some(root.join("usr/bin/wrk"))
        .filter(|p| p.exists())
        .or_else(|| crate::cmd::which("wrk"))
        .ok_or_else(|| Error("the wrk package has no usr/bin/wrk".into()))?;
    let dirs: Vec<PathBuf> = ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    let mut files = vec![("/usr/bin/wrk".to_string(), std::fs::read(&wrk)?, true)];
    for lib in linux_guest::shared_libs_in(&wrk, &dirs)? {
        let data = std::fs::read(std::fs::canonicalize(&lib)?)?;
        files.push((format!("/{}", linux_guest::lib_dest(&lib)), data, true));
    }
    Ok(files)
}
