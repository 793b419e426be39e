//! The Linux baseline for `cargo xtask bench`: a Debian kernel and an initramfs with busybox
//! and nginx, all from Debian's packages (`apt-get download`), that serves the same page as
//! fata's `http` example.
//!
//! Nothing is compiled: the kernel is Debian's cloud kernel (`linux-image-cloud-amd64`, its
//! virtio drivers are modules and are loaded by the init script), busybox is `busybox-static`,
//! and nginx is Debian's `nginx` binary with the shared libraries it needs copied from the
//! host system (same Debian release). Artefacts go to `target/bench/linux/`.
//!
//! The storage figures boot the same kernel with a disk ([`prepare_storage`]): one initramfs
//! with the static `linux-kv-server` (the only compiled piece, built by the benchmark from
//! `tests/fixtures/linux-kv-server`) on an ext4 file system, one with Debian's fio on the raw
//! disk.

use crate::{Error, Result, bail, cmd};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the baseline boots.
pub struct LinuxGuest {
    /// The kernel (bzImage).
    pub kernel: PathBuf,
    /// The initramfs (uncompressed newc cpio).
    pub initrd: PathBuf,
    /// Describes what is in it, for the report.
    pub description: String,
}

const PACKAGES: [&str; 3] = ["linux-image-cloud-amd64", "busybox-static", "nginx"];
const MODULES: [&str; 6] = [
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "failover",
    "net_failover",
    "virtio_net",
];

/// The directories of a web server guest's initramfs (the benchmark's Linux guest, the Xen
/// harness's Linux domU).
pub(crate) const WEB_GUEST_DIRS: [&str; 17] = [
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

/// Minimal newc cpio writer.
pub(crate) struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    pub(crate) fn new() -> Cpio {
        Cpio {
            out: Vec::new(),
            ino: 1,
        }
    }

    pub(crate) fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let name_z = format!("{name}\0");
        let hdr = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name_z.len(),
            0
        );
        self.ino += 1;
        self.out.extend_from_slice(hdr.as_bytes());
        self.out.extend_from_slice(name_z.as_bytes());
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
        self.out.extend_from_slice(data);
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    pub(crate) fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[]);
    }

    pub(crate) fn file(&mut self, name: &str, exec: bool, data: &[u8]) {
        self.entry(name, if exec { 0o100755 } else { 0o100644 }, data);
    }

    pub(crate) fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, target.as_bytes());
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        while !self.out.len().is_multiple_of(512) {
            self.out.push(0);
        }
        self.out
    }
}

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /var/log/nginx /var/lib/nginx
for m in MODULES; do insmod /lib/modules/$m.ko; done
ip link set lo up
if ! ip link set eth0 up; then echo "linux: no network device" > /dev/console; poweroff -f; fi
ADDR=$(sed -n 's/.* fata_ipv4=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$ADDR" ]; then
  ip addr add "$ADDR" dev eth0
else
  udhcpc -i eth0 -q -n -t 20 -T 1 -s /bin/udhcpc.script >/dev/null 2>&1
fi
nginx -c /etc/nginx.conf
# Bulk TCP targets for the throughput figures: a sink on port 7, a 32 MiB source on port 9.
(while true; do nc -l -p 7 > /dev/null; done) &
(while true; do head -c 33554432 /dev/zero | nc -l -p 9; done) &
UP=$(cut -d' ' -f1 /proc/uptime)
echo "linux: ready tcp/80 after ${UP} s" > /dev/console
while true; do sleep 3600; done
"#;

const UDHCPC: &str = r#"#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}"
    ;;
esac
"#;

const NGINX_CONF: &str = r#"user root;
worker_processes 1;
daemon on;
pid /tmp/nginx.pid;
error_log /dev/console error;
events { worker_connections 4096; use epoll; }
http {
  access_log off;
  sendfile on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 65;
  client_body_temp_path /tmp/body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  types { text/html html; }
  server { listen 80 reuseport backlog=4096; root /www; }
}
"#;

/// The `server` block the TLS baseline adds to [`NGINX_CONF`]: HTTPS on 443 with the
/// certificate and key written to `/etc/tls/`, TLS 1.2 and 1.3, a session cache and tickets
/// (nginx's defaults for everything else: OpenSSL's groups, X25519 first, and ciphers).
const NGINX_TLS_SERVER: &str = r#"  server {
    listen 443 ssl reuseport backlog=4096;
    root /www;
    ssl_certificate /etc/tls/server.pem;
    ssl_certificate_key /etc/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
  }
"#;

fn download(dir: &Path) -> Result<()> {
    let image = resolve_kernel(PACKAGES[0])?;
    download_packages(dir, &[image.as_str(), PACKAGES[1], PACKAGES[2]])
}

/// The versioned kernel package (`linux-image-6.1.0-57-cloud-amd64`) a kernel metapackage
/// (`linux-image-cloud-amd64`) depends on.
pub(crate) fn resolve_kernel(meta: &str) -> Result<String> {
    let out = Command::new("apt-cache").args(["depends", meta]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_string)
        .ok_or_else(|| {
            Error(format!(
                "apt-cache cannot resolve {meta}: run `apt-get update` first"
            ))
        })
}

/// Downloads each of `packages` into `dir` (`apt-get download`) unless a file of it is there.
pub(crate) fn download_packages(dir: &Path, packages: &[&str]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let have: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for p in packages {
        if !have.iter().any(|n| n.starts_with(&format!("{p}_"))) {
            let mut c = Command::new("apt-get");
            c.current_dir(dir).args(["download", "-q", p]);
            cmd::run(&mut c, &format!("downloading the Debian package {p}"))?;
        }
    }
    Ok(())
}

/// Unpacks every package in `debs` into `root` (`dpkg-deb -x`) unless `marker`, a file one of
/// them holds, is already there.
pub(crate) fn unpack(debs: &Path, root: &Path, marker: &str) -> Result<()> {
    if root.join(marker).exists() {
        return Ok(());
    }
    for e in std::fs::read_dir(debs)?.flatten() {
        let mut c = Command::new("dpkg-deb");
        c.arg("-x").arg(e.path()).arg(root);
        cmd::run(&mut c, "unpacking a Debian package")?;
    }
    Ok(())
}

/// Downloads (once) and unpacks the guest's packages (the cloud kernel, busybox-static and
/// nginx); returns the directory they are unpacked in.
pub(crate) fn unpacked_guest() -> Result<PathBuf> {
    let base = crate::root().join("target/bench/linux");
    let root = base.join("root");
    // Unpacked already: skip apt-cache, which takes most of a second per call.
    if !root.join("usr/sbin/nginx").exists() {
        download(&base.join("debs"))?;
        unpack(&base.join("debs"), &root, "usr/sbin/nginx")?;
    }
    Ok(root)
}

/// Downloads (once) and assembles the Linux guest; `page` is served as `/612.html` and `/`.
pub fn prepare(page: &[u8]) -> Result<LinuxGuest> {
    let base = crate::root().join("target/bench/linux");
    let debs = base.join("debs");
    let root = unpacked_guest()?;
    let (kernel, kver) = kernel_of(&root)?;
    let dirs = WEB_GUEST_DIRS;
    let mut c = busybox_cpio(&root, &kver, &dirs, INIT, &MODULES)?;
    c.file("bin/udhcpc.script", true, UDHCPC.as_bytes());
    add_nginx(&mut c, &root, page)?;
    let initrd = base.join("initrd.cpio");
    std::fs::write(&initrd, c.finish())?;
    let nginx_ver = downloaded(&debs, "nginx_")?;
    Ok(LinuxGuest {
        kernel,
        initrd,
        description: format!(
            "Debian kernel {kver}, busybox-static, {} (1 worker, epoll, sendfile)",
            nginx_ver.trim_end_matches(".deb")
        ),
    })
}

/// The Linux baseline of the TLS figures (`cargo xtask bench --only tls`): the initramfs of
/// [`prepare`] (same kernel, busybox, nginx and page), with nginx also serving HTTPS on 443
/// with the certificate chain `cert_pem` and key `key_pem`. Call [`prepare`] first.
pub fn prepare_tls(page: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<PathBuf> {
    let base = crate::root().join("target/bench/linux");
    let root = unpacked_guest()?;
    let (_, kver) = kernel_of(&root)?;
    let mut c = busybox_cpio(&root, &kver, &WEB_GUEST_DIRS, INIT, &MODULES)?;
    c.file("bin/udhcpc.script", true, UDHCPC.as_bytes());
    let conf = NGINX_CONF.replacen("  server {", &format!("{NGINX_TLS_SERVER}  server {{"), 1);
    add_nginx_with(&mut c, &root, page, &conf)?;
    c.dir("etc/tls");
    c.file("etc/tls/server.pem", false, cert_pem);
    c.file("etc/tls/server.key", false, key_pem);
    let initrd = base.join("initrd-tls.cpio");
    std::fs::write(&initrd, c.finish())?;
    Ok(initrd)
}

/// Adds nginx (unpacked under `root`) with its libraries, `/etc/nginx.conf` and the users it
/// needs, and `page` as `/www/612.html` and `/www/index.html`. The init script starts it with
/// `nginx -c /etc/nginx.conf` after creating `/tmp`, `/var/log/nginx` and `/var/lib/nginx`.
pub(crate) fn add_nginx(c: &mut Cpio, root: &Path, page: &[u8]) -> Result<()> {
    add_nginx_with(c, root, page, NGINX_CONF)
}

/// [`add_nginx`] with `conf` as `/etc/nginx.conf`.
fn add_nginx_with(c: &mut Cpio, root: &Path, page: &[u8], conf: &str) -> Result<()> {
    let nginx = root.join("usr/sbin/nginx");
    c.file("usr/sbin/nginx", true, &std::fs::read(&nginx)?);
    c.symlink("bin/nginx", "/usr/sbin/nginx");
    add_libs(c, &shared_libs_in(&nginx, &[])?)?;
    c.file("etc/nginx.conf", false, conf.as_bytes());
    c.file(
        "etc/passwd",
        false,
        b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    c.file("etc/group", false, b"root:x:0:\nnogroup:x:65534:\n");
    c.file("www/612.html", false, page);
    c.file("www/index.html", false, page);
    Ok(())
}

/// The kernel image in the unpacked packages under `root`, and its version.
pub(crate) fn kernel_of(root: &Path) -> Result<(PathBuf, String)> {
    let kernel = std::fs::read_dir(root.join("boot"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| Error("the kernel package has no vmlinuz".into()))?;
    let kver = kernel
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    Ok((kernel, kver))
}

/// The modules `names` of kernel `kver` (unpacked under `root`), by name.
fn modules_of<'a>(
    root: &Path,
    kver: &str,
    names: &[&'a str],
) -> Result<BTreeMap<&'a str, Vec<u8>>> {
    let files = walk(&root.join("lib/modules").join(kver).join("kernel"));
    let mut modules = BTreeMap::new();
    for &m in names {
        let found = files.iter().find(|p| {
            p.file_name()
                .is_some_and(|n| n == format!("{m}.ko").as_str())
        });
        let p = found.ok_or_else(|| Error(format!("module {m}.ko not in the kernel package")))?;
        modules.insert(m, std::fs::read(p)?);
    }
    Ok(modules)
}

pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

// The storage baseline: the same kernel with a disk, for `cargo xtask bench --only storage`.

/// The module the storage guest loads after [`MODULES`]. `virtio_blk` depends on `virtio`
/// and `virtio_ring` only; ext4 (with jbd2, mbcache, crc16 and crc32c) is built into Debian's
/// cloud kernel (`CONFIG_EXT4_FS=y`), so it needs no module.
const STORAGE_MODULE: &str = "virtio_blk";

/// Options every fio job of the raw-disk figures shares: the whole disk, unbuffered
/// (`O_DIRECT`), one synchronous request at a time, timed with `clock_gettime` (a run on
/// fio's default clock source reported a median latency of 0 here, under TCG).
pub const FIO_COMMON: &str = "--filename=/dev/vda --direct=1 --ioengine=psync --iodepth=1 --numjobs=1 --clocksource=clock_gettime";

/// The fio jobs of the raw-disk figures, in order: (name, options). `SECS` is replaced by the
/// measured time of the random writes. `--sync=dsync` opens the disk `O_DSYNC`: on virtio-blk,
/// which has no FUA, the block layer follows every write with a FLUSH and the write returns
/// after both, so a latency is that of a write + flush pair, like fata's `blkbench`.
pub const FIO_JOBS: [(&str, &str); 3] = [
    (
        "seq_write",
        "--name=seq_write --rw=write --bs=1M --size=64M --end_fsync=1",
    ),
    ("seq_read", "--name=seq_read --rw=read --bs=1M --size=64M"),
    (
        "rand_write_flush",
        "--name=rand_write_flush --rw=randwrite --bs=4k --size=64M --sync=dsync --ramp_time=1 --time_based --runtime=SECS",
    ),
];

const STORAGE_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /data
fail() { echo "linux: $*" > /dev/console; poweroff -f; while true; do sleep 1; done; }
arg() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" /proc/cmdline; }
for m in MODULES; do insmod /lib/modules/$m.ko || fail "insmod $m failed"; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ -b /dev/vda ] || fail "no disk: /dev/vda did not appear"
MODE=$(arg fata_storage)
case "$MODE" in
sqlite|redb)
  ip link set lo up
  ip link set eth0 up || fail "no network device"
  ip addr add "$(arg fata_ipv4)" dev eth0 || fail "no address (fata_ipv4=)"
  mount -t ext4 /dev/vda /data || fail "cannot mount /dev/vda as ext4"
  echo "linux: mounted $(grep ' /data ' /proc/mounts)" > /dev/console
  /bin/kv-server "$MODE" /data 80 > /dev/console 2>&1
  fail "the kv server stopped"
  ;;
fio)
  SECS=$(arg fata_rand_secs)
FIO_RUNS
  echo "linux-fio: done" > /dev/console
  poweroff -f
  ;;
*)
  fail "fata_storage= must be sqlite, redb or fio"
  ;;
esac
"#;

/// What the storage baseline boots (with [`LinuxGuest::kernel`]).
pub struct StorageGuest {
    /// The initramfs of the key-value runs: busybox and the static `linux-kv-server`, which
    /// the init script starts on the ext4 file system of `/dev/vda` (`fata_storage=sqlite` or
    /// `redb` on the kernel command line, address from `fata_ipv4=`).
    pub kv_initrd: PathBuf,
    /// The initramfs of the raw-disk runs (`fata_storage=fio`, `fata_rand_secs=N`), gzipped:
    /// busybox, Debian's fio and its shared libraries. It runs [`FIO_JOBS`] on `/dev/vda` and prints
    /// each job's JSON report between `fio-json-begin NAME` and `fio-json-end`, then
    /// `linux-fio: done`, and powers off.
    pub fio_initrd: PathBuf,
    /// The fio package, for the report.
    pub fio: String,
}

/// The file name of the downloaded package whose name starts with `prefix` (`nginx_`), or
/// an empty string.
pub(crate) fn downloaded(debs: &Path, prefix: &str) -> Result<String> {
    Ok(std::fs::read_dir(debs)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(prefix))
        .unwrap_or_default())
}

/// A cpio with the directories `dirs`, busybox (also as `/bin/sh`), `init` (its word
/// `MODULES` replaced by the names of `modules`) and those modules of the kernel unpacked under
/// `root`.
pub(crate) fn busybox_cpio(
    root: &Path,
    kver: &str,
    dirs: &[&str],
    init: &str,
    modules: &[&str],
) -> Result<Cpio> {
    let mut c = Cpio::new();
    for d in dirs {
        c.dir(d);
    }
    c.file(
        "bin/busybox",
        true,
        &std::fs::read(root.join("bin/busybox"))?,
    );
    c.symlink("bin/sh", "busybox");
    c.file(
        "init",
        true,
        init.replace("MODULES", &modules.join(" ")).as_bytes(),
    );
    for (m, data) in &modules_of(root, kver, modules)? {
        c.file(&format!("lib/modules/{m}.ko"), false, data);
    }
    Ok(c)
}

/// A cpio with busybox, `init` and the storage modules of the kernel unpacked under `root`.
fn storage_cpio(root: &Path, kver: &str, init: &str) -> Result<Cpio> {
    let dirs = [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "data",
        "lib",
        "lib64",
        "lib/modules",
        "lib/x86_64-linux-gnu",
    ];
    let modules = [&MODULES[..], &[STORAGE_MODULE]].concat();
    let mut c = busybox_cpio(root, kver, &dirs, init, &modules)?;
    c.file("etc/passwd", false, b"root:x:0:0:root:/:/bin/sh\n");
    Ok(c)
}

/// Downloads `packages` and, transitively, every `lib*` package they depend on that this
/// machine does not have installed (the libraries it has are copied from it, as nginx's are:
/// the same Debian release).
pub(crate) fn download_with_libs(dir: &Path, packages: &[&str]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let installed = |p: &str| {
        Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", p])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).ends_with("ok installed"))
    };
    let mut queue: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut fetch = Vec::new();
    while let Some(p) = queue.pop() {
        if !seen.insert(p.clone()) || installed(&p) {
            continue;
        }
        let out = Command::new("apt-cache")
            .args([
                "depends",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
            ])
            .args(["--no-breaks", "--no-replaces", "--no-enhances", &p])
            .output()?;
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let l = l.trim().trim_start_matches('|');
            if let Some(d) = l
                .strip_prefix("Depends: ")
                .or_else(|| l.strip_prefix("PreDepends: "))
                && d.starts_with("lib")
            {
                queue.push(d.to_string());
            }
        }
        fetch.push(p);
    }
    let fetch: Vec<&str> = fetch.iter().map(String::as_str).collect();
    download_packages(dir, &fetch)
}

/// The shared libraries `binary` loads (with the interpreter), looked up in `dirs` first and
/// then in the host's; an error names any that is found nowhere.
pub(crate) fn shared_libs_in(binary: &Path, dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let path = std::env::join_paths(dirs).map_err(|e| Error(e.to_string()))?;
    let out = Command::new("ldd")
        .arg(binary)
        .env("LD_LIBRARY_PATH", path)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not found") {
        bail!(
            "{} needs libraries found nowhere:\n{text}",
            binary.display()
        );
    }
    let libs: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| match l.split_once("=>") {
            Some((_, r)) => r.split_whitespace().next(),
            None => l.split_whitespace().next(),
        })
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    if libs.is_empty() {
        bail!("ldd found no libraries for {}: {text}", binary.display());
    }
    Ok(libs)
}

/// Adds `libs` to the cpio at [`lib_dest`], each the file a symbolic link names.
pub(crate) fn add_libs(c: &mut Cpio, libs: &[PathBuf]) -> Result<()> {
    for lib in libs {
        let real = std::fs::canonicalize(lib)?;
        c.file(&lib_dest(lib), true, &std::fs::read(real)?);
    }
    Ok(())
}

/// Where a guest gets the shared library `lib` (a host path), relative to its root: the
/// interpreter under `lib64/`, the rest in `lib/x86_64-linux-gnu/`.
pub(crate) fn lib_dest(lib: &Path) -> String {
    let name = lib.to_string_lossy().trim_start_matches('/').to_string();
    if name.starts_with("lib64/") {
        name
    } else {
        format!(
            "lib/x86_64-linux-gnu/{}",
            lib.file_name().unwrap_or_default().to_string_lossy()
        )
    }
}

/// Assembles the storage baseline's two initramfs images (after [`prepare`], which unpacks
/// the kernel and busybox): `kv_server` is the static `linux-kv-server` binary. Downloads fio
/// (and the libraries it needs that this machine lacks) once.
pub fn prepare_storage(kv_server: &Path) -> Result<StorageGuest> {
    let base = crate::root().join("target/bench/linux");
    let root = base.join("root");
    let (_, kver) = kernel_of(&root)?;

    let mut kv = storage_cpio(&root, &kver, &STORAGE_INIT.replace("FIO_RUNS", ""))?;
    kv.file("bin/kv-server", true, &std::fs::read(kv_server)?);
    let kv_initrd = base.join("initrd-kv.cpio");
    std::fs::write(&kv_initrd, kv.finish())?;

    let debs = base.join("storage-debs");
    download_with_libs(&debs, &["fio"])?;
    let sroot = base.join("storage-root");
    let fio_bin = sroot.join("usr/bin/fio");
    unpack(&debs, &sroot, "usr/bin/fio")?;
    let lib_dirs: Vec<PathBuf> = [
        "usr/lib/x86_64-linux-gnu",
        "lib/x86_64-linux-gnu",
        "usr/lib/x86_64-linux-gnu/ceph",
    ]
    .iter()
    .map(|d| sroot.join(d))
    .collect();
    let runs: String = FIO_JOBS
        .iter()
        .map(|(name, opts)| {
            format!(
                "  fio --eta=never --output-format=json --output=/tmp/{name}.json {FIO_COMMON} {} > /dev/console 2>&1 || fail \"fio {name} failed\"\n  \
                 echo \"fio-json-begin {name}\" > /dev/console\n  \
                 cat /tmp/{name}.json > /dev/console\n  \
                 echo \"fio-json-end\" > /dev/console\n",
                opts.replace("SECS", "$SECS")
            )
        })
        .collect();
    let mut fio = storage_cpio(&root, &kver, &STORAGE_INIT.replace("FIO_RUNS", &runs))?;
    fio.file("usr/bin/fio", true, &std::fs::read(&fio_bin)?);
    fio.symlink("bin/fio", "/usr/bin/fio");
    add_libs(&mut fio, &shared_libs_in(&fio_bin, &lib_dirs)?)?;
    // fio's libraries make this initramfs ~85 MiB: uncompressed, it and its unpacked copy do
    // not fit in the guest's 256 MiB together ("Initramfs unpacking failed: write error").
    let cpio = base.join("initrd-fio.cpio");
    std::fs::write(&cpio, fio.finish())?;
    let mut gz = Command::new("gzip");
    gz.args(["-f", "-6"]).arg(&cpio);
    cmd::run(&mut gz, "compressing the fio initramfs")?;
    let fio_initrd = base.join("initrd-fio.cpio.gz");
    let fio_deb = downloaded(&debs, "fio_")?;
    Ok(StorageGuest {
        kv_initrd,
        fio_initrd,
        fio: fio_deb.trim_end_matches(".deb").to_string(),
    })
}
