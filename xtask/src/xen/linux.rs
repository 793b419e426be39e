//! A Linux PVH domU on the nested harness: proves that dom0, the hotplug scripts, netback
//! and blkback work, and gives the Linux side of the Xen benchmarks.
//!
//! The domU is the Linux benchmark guest's kernel and busybox (Debian's cloud kernel, whose
//! `xen-netfront` and `xen-blkfront` are modules; [`crate::linux_guest`]) with its own
//! initramfs: it writes a marker onto `/dev/xvda` (the smoke session; the `xen` bench group's
//! domU has no disk), takes 10.0.0.2/24 on `eth0`, starts a web
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

/// The domU's `/init`; `MODULES`, `DISK` ([`DISK_MARKER`] or nothing) and `SERVER` are
/// replaced.
const DOMU_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /var/log/nginx /var/lib/nginx
for m in MODULES; do insmod /lib/modules/$m.ko || echo "domU: insmod $m failed"; done
DISK
ip link set lo up
ip link set eth0 up && ip addr add 10.0.0.2/24 dev eth0 || echo "domU: no eth0"
SERVER
echo "DOMU-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
while true; do sleep 3600; done
"#;

/// The disk step of the domU's `/init`: waits up to 10 s for `/dev/xvda` and writes a marker
/// onto it.
const DISK_MARKER: &str = r#"i=0
while [ ! -b /dev/xvda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if [ -b /dev/xvda ]; then
  echo FATA-XVDA-MARKER | dd of=/dev/xvda bs=512 conv=sync,fsync 2>/dev/null && echo "domU: marker written to /dev/xvda"
else
  echo "domU: no /dev/xvda"
fi"#;

/// The start of every session that times domUs: the harness library and these functions.
///
/// - `timed_start NAME CFG REGEX URL`: `xl create` NAME, then sets `ready_ms` to the
///   milliseconds until a line of its console matches REGEX and `http_ms` to those until a
///   GET of URL from dom0 is answered (both polled every 50 ms, on dom0's 10 ms clock);
/// - `check_page URL FILE`: the body of URL has FILE's bytes (sha256), else the session fails;
/// - `wrk_load NAME URL SECS`: `wrk -t1 -c16 -dSECS` against URL, its output between
///   `WRK-BEGIN NAME` and `WRK-END NAME` and `DOM0-RESULT NAME_wrk_rps N`;
/// - `stop NAME`: `xl destroy` NAME and wait for its `xl create -F` to return.
///
/// dom0 resends unanswered ARP requests every 50 ms instead of every second (vifs take the
/// default when they appear), so the HTTP poll finds an address a domU has just taken within
/// 50 ms, not within a second.
pub(crate) const SESSION_LIB: &str = r#". /lib/fata.sh
echo 50 > /proc/sys/net/ipv4/neigh/default/retrans_time_ms
timed_start() {
  t0=$(ms)
  rm -f /tmp/http-ms
  start "$1" "$2"
  ( wait_http "$4" 240 > /tmp/http.out && echo $(( $(ms) - t0 )) > /tmp/http-ms ) &
  poller=$!
  wait_console "$1" "$3" 240 || fail "$1 printed no line matching '$3'"
  ready_ms=$(( $(ms) - t0 ))
  wait $poller || fail "$(cat /tmp/http.out)"
  http_ms=$(cat /tmp/http-ms)
}
check_page() {
  got=$(wget -q -O- "$1" | sha256sum | cut -d' ' -f1)
  want=$(sha256sum < "$2" | cut -d' ' -f1)
  [ "$got" = "$want" ] || fail "GET $1 answered a body with sha256 $got, expected $want (of $2)"
}
wrk_load() {
  wrk -t1 -c16 -d"$3"s --latency "$2" > /tmp/wrk.out 2>&1 || { cat /tmp/wrk.out; fail "wrk $2 failed"; }
  echo "WRK-BEGIN $1"; cat /tmp/wrk.out; echo "WRK-END $1"
  result "$1_wrk_rps" $(sed -n 's/^Requests\/sec: *//p' /tmp/wrk.out)
}
stop() {
  xl destroy "$1" || fail "xl destroy $1 failed"
  wait_exit "$1" 60 || fail "xl create -F $1 did not return after xl destroy"
}
"#;

/// The smoke session, after [`SESSION_LIB`]; `WRK` is replaced by the load run or nothing.
const SESSION: &str = r#"dd if=/dev/zero of=/tmp/xvda.img bs=1M count=16 2>/dev/null || fail "cannot create /tmp/xvda.img"
timed_start linux /etc/xen/linux.cfg DOMU-READY http://10.0.0.2/
result linux_ready_ms $ready_ms
result linux_http_ms $http_ms
check_page http://10.0.0.2/ /guest/page.html
result linux_page sha256 ok
WRK
stop linux
head -c 16 /tmp/xvda.img | grep -q FATA-XVDA-MARKER || fail "the marker the domU wrote to xvda is not in /tmp/xvda.img"
result linux_disk marker ok
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

/// The vif of every domU the harness times: dom0 routes to it ([`super::dom0::VIF_SCRIPT`]),
/// the guest takes 10.0.0.2/24.
pub(crate) const VIF: &str = "mac=00:16:3e:00:00:02,script=/etc/xen/scripts/fata-vif";

/// The configuration of a domU the harness times: [`xl_config`] of `c`, and AVX hidden from
/// the guest's CPUID. A Linux domU's busybox died of an invalid-opcode trap on an AVX
/// instruction (`vmovd`, glibc's string functions) in one of two boots in a session (Xen 4.17
/// under QEMU 7.2 TCG); without AVX, glibc picks its SSE2 code. fata uses no AVX.
pub(crate) fn harness_config(c: &XlConfig) -> Result<String> {
    Ok(format!("{}cpuid = \"host,avx=0,avx2=0\"\n", xl_config(c)?))
}

/// The Linux domU's guest memory, MiB.
pub(crate) const DOMU_MIB: u32 = 128;

/// A Linux domU ready to be put into a session.
pub(crate) struct DomuImage {
    /// The kernel (Debian's cloud bzImage).
    pub kernel: PathBuf,
    /// Its version (`6.1.0-57-cloud-amd64`).
    pub kver: String,
    /// The initramfs (uncompressed newc cpio).
    pub initrd: Vec<u8>,
}

/// Assembles the domU (see the module doc): nginx or busybox `httpd` serving `page` as `/`
/// (nginx: also as `/612.html`), with the disk step when `disk`.
pub(crate) fn domu_image(nginx: bool, disk: bool, page: &[u8]) -> Result<DomuImage> {
    let root = linux_guest::unpacked_guest()?;
    let (kernel, kver) = linux_guest::kernel_of(&root)?;
    let dirs = linux_guest::WEB_GUEST_DIRS;
    let server = if nginx {
        "nginx -c /etc/nginx.conf || echo \"domU: nginx did not start\""
    } else {
        "httpd -p 80 -h /www || echo \"domU: httpd did not start\""
    };
    let init = DOMU_INIT
        .replace("DISK", if disk { DISK_MARKER } else { "" })
        .replace("SERVER", server);
    let mut c = linux_guest::busybox_cpio(&root, &kver, &dirs, &init, &DOMU_MODULES)?;
    if nginx {
        linux_guest::add_nginx(&mut c, &root, page)?;
    } else {
        c.file("www/index.html", false, page);
    }
    Ok(DomuImage {
        kernel,
        kver,
        initrd: c.finish(),
    })
}

impl DomuImage {
    /// The session files of the domU named `name`: its kernel and initramfs under
    /// `/guest/NAME.*` and its configuration `/etc/xen/NAME.cfg` (with the disk
    /// `/tmp/xvda.img` when `disk`).
    pub(crate) fn files(&self, name: &str, disk: bool) -> Result<Vec<(String, Vec<u8>, bool)>> {
        let cfg = harness_config(&XlConfig {
            name: name.into(),
            kernel: format!("/guest/{name}.vmlinuz"),
            ramdisk: Some(format!("/guest/{name}.cpio")),
            memory_mib: DOMU_MIB,
            vifs: vec![VIF.into()],
            disks: if disk {
                vec!["format=raw,vdev=xvda,access=rw,script=/etc/xen/scripts/fata-block,target=/tmp/xvda.img".into()]
            } else {
                Vec::new()
            },
            extra: "console=hvc0 quiet".into(),
            tsc_native: true,
            ..Default::default()
        })?;
        Ok(vec![
            (
                format!("/guest/{name}.vmlinuz"),
                std::fs::read(&self.kernel)?,
                false,
            ),
            (format!("/guest/{name}.cpio"), self.initrd.clone(), false),
            (format!("/etc/xen/{name}.cfg"), cfg.into_bytes(), false),
        ])
    }
}

/// Boots a session with the Linux domU `d` (see the module doc); `on_line` gets every serial
/// line. Fails with the console's story when any check fails.
pub fn linux_domu(
    h: &Harness,
    d: &LinuxDomu,
    on_line: &mut dyn FnMut(&Line),
) -> Result<LinuxFigures> {
    let image = domu_image(d.nginx, true, PAGE.as_bytes())?;
    let mut files = image.files("linux", true)?;
    files.push(("/guest/page.html".into(), PAGE.as_bytes().to_vec(), false));
    if d.wrk {
        files.extend(wrk_files(h)?);
    }
    let body = SESSION.replace(
        "WRK",
        if d.wrk {
            "wrk_load linux http://10.0.0.2:80/ 5"
        } else {
            ""
        },
    );
    let s = Session {
        files,
        script: format!("{SESSION_LIB}{body}"),
        timeout: Duration::from_secs(600),
    };
    let out = run(h, &s, on_line)?;
    figures(&out, d, &image.kver)
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
pub(crate) fn wrk_files(h: &Harness) -> Result<Vec<(String, Vec<u8>, bool)>> {
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
