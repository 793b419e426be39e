//! The dom0 of the nested harness: its shell files (init, the session library, the hotplug
//! scripts) and the kernel modules it loads.
//!
//! dom0 is Debian's generic kernel with a busybox initramfs; everything in it runs as busybox
//! `sh` scripts, so these texts are the whole of dom0's userland besides Xen's own tools.

use crate::{Error, Result};
use std::path::Path;

/// Modules dom0 loads before `xl create`, in this order (each after its dependencies, which
/// [`modules`] adds): event channels, `privcmd` (hypercalls from user space), `xenfs`
/// (`/proc/xen`), grant tables, the network and block backends, and loop devices for
/// file-backed disks.
pub const DOM0_MODULES: [&str; 8] = [
    "xen-evtchn",
    "xen-privcmd",
    "xenfs",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-netback",
    "xen-blkback",
    "loop",
];

/// dom0's `/init`. `MODULES` is replaced by the module names in load order.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /run/xen /run/xenstored /var/log/xen/console /var/lib/xen /tmp
mount -t devpts devpts /dev/pts
export PATH=/usr/lib/xen-4.17/bin:/usr/bin:/usr/sbin:/bin:/sbin
. /lib/fata.sh
echo "DOM0-STAGE init ms=$(ms)"
for m in MODULES; do insmod /lib/modules/$m.ko || echo "DOM0-FAIL insmod $m failed"; done
mount -t xenfs xenfs /proc/xen || echo "DOM0-FAIL cannot mount xenfs"
xenstored --pid-file=/run/xenstored.pid || echo "DOM0-FAIL xenstored did not start"
xen-init-dom0 > /tmp/xen-init-dom0.log 2>&1 || { echo "DOM0-FAIL xen-init-dom0 failed"; cat /tmp/xen-init-dom0.log; }
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || echo "DOM0-FAIL xenconsoled did not start"
echo "DOM0-READY ms=$(ms)"
sh /session.sh
echo "DOM0-DONE rc=$? ms=$(ms)"
poweroff -f
"#;

/// `/lib/fata.sh`, the library session scripts source (`. /lib/fata.sh`).
pub const LIB: &str = r#"# fata's dom0 session library. Guests are named; NAME's console is
# /var/log/xen/console/guest-NAME.log, `xl create -F` writes /tmp/xl-NAME.log and, once the
# domain is gone, "rc=N" and xl's shutdown reason into /tmp/xl-NAME.rc.

# ms: milliseconds since dom0's kernel started (10 ms steps, from /proc/uptime).
ms() {
  read -r _up _ < /proc/uptime
  _f=${_up#*.}
  echo $(( ${_up%.*} * 1000 + ${_f#0} * 10 ))
}

# result KEY VALUE...: a figure or verdict for the host (`DOM0-RESULT KEY VALUE...`).
result() { echo "DOM0-RESULT $*"; }

# start NAME CFG: `xl create -F CFG` in the background.
start() {
  rm -f "/tmp/xl-$1.rc" "/var/log/xen/console/guest-$1.log"
  (
    xl create -F "$2" > "/tmp/xl-$1.log" 2>&1
    rc=$?
    echo "rc=$rc $(grep -o 'reason code [0-9]*\|has shut down.*' "/tmp/xl-$1.log" | tail -1)" > "/tmp/xl-$1.rc"
  ) &
}

# wait_console NAME REGEX TIMEOUT_S: until a line of NAME's console matches REGEX (grep -E).
# Fails (and says why) when the domain ends first or on timeout.
wait_console() {
  _end=$(( $(ms) + $3 * 1000 ))
  while [ "$(ms)" -lt "$_end" ]; do
    grep -qE "$2" "/var/log/xen/console/guest-$1.log" 2>/dev/null && return 0
    if [ -e "/tmp/xl-$1.rc" ]; then
      grep -qE "$2" "/var/log/xen/console/guest-$1.log" 2>/dev/null && return 0
      echo "wait_console: $1 ended ($(cat "/tmp/xl-$1.rc")) before a line matched '$2'"
      return 1
    fi
    sleep 0.05
  done
  echo "wait_console: no line of $1 matched '$2' within $3 s"
  return 1
}

# wait_exit NAME TIMEOUT_S: until `xl create -F` of NAME has returned.
wait_exit() {
  _end=$(( $(ms) + $2 * 1000 ))
  while [ "$(ms)" -lt "$_end" ]; do
    [ -e "/tmp/xl-$1.rc" ] && return 0
    sleep 0.05
  done
  echo "wait_exit: $1 still runs after $2 s"
  return 1
}

# wait_http URL TIMEOUT_S: until a GET of URL succeeds, trying every 50 ms (each try bounded
# by `timeout 2`: busybox 1.35's `wget -T` crashes).
wait_http() {
  _end=$(( $(ms) + $2 * 1000 ))
  while [ "$(ms)" -lt "$_end" ]; do
    timeout 2 wget -q -O /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "wait_http: no answer from $1 within $2 s"
  return 1
}

# dump: the state of Xen, xenstore and every guest, for a failure report.
dump() {
  echo "---- xl list"; xl list 2>&1
  echo "---- xenstore-ls -f /local/domain (first 120 lines)"
  xenstore-ls -f /local/domain 2>&1 | head -120
  echo "---- xl dmesg (last 40 lines)"; xl dmesg 2>&1 | tail -40
  for f in /var/log/xen/console/guest-*.log /tmp/xl-*.log /tmp/xl-*.rc; do
    [ -e "$f" ] && { echo "---- $f (last 60 lines)"; tail -60 "$f"; }
  done
  echo "---- dom0 dmesg (last 20 lines)"; dmesg | tail -20
  echo "---- end of dump"
}

# fail MESSAGE: reports the failure, dumps the state and ends the session.
fail() { echo "DOM0-FAIL $*"; dump; exit 1; }
"#;

/// `/etc/xen/scripts/fata-vif`: libxl runs it as `fata-vif online|offline type_if=vif` with
/// `vif=vifD.N` and `XENBUS_PATH=backend/vif/D/N`. It routes: dom0 is 10.0.0.1 on every vif,
/// with a /24 unless the vif spec names the guest's `ip=`, then a host route to that address.
pub const VIF_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
online|add)
  ip link set "$vif" up || { xenstore-write "$XENBUS_PATH/hotplug-status" error; exit 1; }
  ip=$(xenstore-read "$XENBUS_PATH/ip" 2>/dev/null)
  if [ -n "$ip" ]; then
    ip addr add 10.0.0.1/32 dev "$vif" && ip route add "$ip/32" dev "$vif"
  else
    ip addr add 10.0.0.1/24 dev "$vif"
  fi || { xenstore-write "$XENBUS_PATH/hotplug-status" error; exit 1; }
  xenstore-write "$XENBUS_PATH/hotplug-status" connected
  ;;
*) exit 0 ;;
esac
"#;

/// `/etc/xen/scripts/fata-block`: libxl runs it as `fata-block add|remove` with
/// `XENBUS_PATH=backend/vbd/D/N`. `params` (the disk's `target=`) is a loop device, used as
/// it is, or a file, attached to a free loop device; blkback waits for `physical-device`
/// (hex `major:minor`).
pub const BLOCK_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
add)
  p=$(xenstore-read "$XENBUS_PATH/params")
  case "$p" in
  /dev/*) dev=$p ;;
  *) dev=$(losetup -f) && losetup "$dev" "$p" || { xenstore-write "$XENBUS_PATH/hotplug-status" error; exit 1; } ;;
  esac
  xenstore-write "$XENBUS_PATH/physical-device" "$(stat -L -c %t:%T "$dev")"
  xenstore-write "$XENBUS_PATH/hotplug-status" connected
  ;;
*) exit 0 ;;
esac
"#;

/// The modules `names` of the kernel `kver` unpacked under `root`, each after the modules it
/// depends on (read from its `depends=` field), as (name, contents) in load order. Modules
/// built into the kernel (`modules.builtin`) are left out.
pub fn modules(root: &Path, kver: &str, names: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    let dir = root.join("lib/modules").join(kver);
    let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    let files = crate::linux_guest::walk(&dir.join("kernel"));
    let norm = |s: &str| s.replace('_', "-");
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut stack: Vec<(String, bool)> =
        names.iter().rev().map(|n| (n.to_string(), false)).collect();
    while let Some((name, deps_done)) = stack.pop() {
        if out.iter().any(|(n, _)| norm(n) == norm(&name)) {
            continue;
        }
        let file_name = |p: &Path| {
            p.file_name()
                .map(|f| norm(&f.to_string_lossy()))
                .unwrap_or_default()
        };
        let ko = format!("{}.ko", norm(&name));
        if builtin.lines().any(|l| file_name(Path::new(l)) == ko) {
            continue;
        }
        let path = files.iter().find(|p| file_name(p) == ko).ok_or_else(|| {
            Error(format!(
                "module {name}.ko is neither in the kernel package {} nor built in",
                dir.display()
            ))
        })?;
        let data = std::fs::read(path)?;
        if deps_done {
            out.push((name, data));
            continue;
        }
        stack.push((name, true));
        for d in depends(&data) {
            if stack.len() > 64 {
                return Err(Error(format!("module dependencies of {ko} loop")));
            }
            stack.push((d, false));
        }
    }
    Ok(out)
}

/// The `depends=` list of a module's `.modinfo`.
fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_dependencies_come_from_the_modinfo_depends_field() {
        let ko = b"\x7fELF junk\0license=GPL\0depends=xen-privcmd,foo\0name=xenfs\0";
        assert_eq!(depends(ko), ["xen-privcmd", "foo"]);
        assert!(depends(b"\0depends=\0name=loop\0").is_empty());
        assert!(depends(b"no modinfo").is_empty());
    }

    #[test]
    fn modules_load_after_their_dependencies_and_built_in_ones_are_skipped() {
        let root = std::env::temp_dir().join(format!("xtask-xen-modules-{}", std::process::id()));
        let kdir = root.join("lib/modules/9.9/kernel/drivers/xen");
        std::fs::create_dir_all(&kdir).unwrap();
        std::fs::write(kdir.join("xenfs.ko"), b"\0depends=xen-privcmd\0").unwrap();
        std::fs::write(kdir.join("xen-privcmd.ko"), b"\0depends=\0").unwrap();
        std::fs::write(
            root.join("lib/modules/9.9/modules.builtin"),
            "kernel/drivers/block/loop.ko\n",
        )
        .unwrap();
        let got = modules(&root, "9.9", &["xenfs", "loop", "xen_privcmd"]).unwrap();
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["xen-privcmd", "xenfs"]);
        let e = modules(&root, "9.9", &["xen-netback"]).unwrap_err().0;
        assert!(e.contains("xen-netback.ko is neither"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
