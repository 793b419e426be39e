//! The Linux baseline for `cargo xtask bench`: a Debian kernel and an initramfs with busybox
//! and nginx, all from Debian's packages (`apt-get download`), that serves the same page as
//! fata's `http` example.
//!
//! Nothing is compiled: the kernel is Debian's cloud kernel (`linux-image-cloud-amd64`, its
//! virtio drivers are modules and are loaded by the init script), busybox is `busybox-static`,
//! and nginx is Debian's `nginx` binary with the shared libraries it needs copied from the
//! host system (same Debian release). Artefacts go to `target/bench/linux/`.

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

/// Minimal newc cpio writer.
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn new() -> Cpio {
        Cpio {
            out: Vec::new(),
            ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
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

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[]);
    }

    fn file(&mut self, name: &str, exec: bool, data: &[u8]) {
        self.entry(name, if exec { 0o100755 } else { 0o100644 }, data);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, target.as_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
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

fn download(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let have = |prefix: &str| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
            })
            .unwrap_or(false)
    };
    // The kernel metapackage only depends on the versioned image: resolve it.
    let out = Command::new("apt-cache")
        .args(["depends", PACKAGES[0]])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let image = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_string);
    let Some(image) = image else {
        bail!(
            "apt-cache cannot resolve {}: run `apt-get update` first",
            PACKAGES[0]
        );
    };
    for p in [image.as_str(), PACKAGES[1], PACKAGES[2]] {
        if !have(&format!("{p}_")) {
            let mut c = Command::new("apt-get");
            c.current_dir(dir).args(["download", "-q", p]);
            cmd::run(&mut c, &format!("downloading the Debian package {p}"))?;
        }
    }
    Ok(())
}

fn shared_libs(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for l in text.lines() {
        let path = match l.split_once("=>") {
            Some((_, r)) => r.split_whitespace().next(),
            None => l.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    if libs.is_empty() {
        bail!("ldd found no libraries for {}: {text}", binary.display());
    }
    Ok(libs)
}

/// Downloads (once) and assembles the Linux guest; `page` is served as `/612.html` and `/`.
pub fn prepare(page: &[u8]) -> Result<LinuxGuest> {
    let base = crate::root().join("target/bench/linux");
    let debs = base.join("debs");
    download(&debs)?;
    let root = base.join("root");
    if !root.join("usr/sbin/nginx").exists() {
        for e in std::fs::read_dir(&debs)?.flatten() {
            let mut c = Command::new("dpkg-deb");
            c.arg("-x").arg(e.path()).arg(&root);
            cmd::run(&mut c, "unpacking a Debian package")?;
        }
    }
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
    let moddir = root.join("lib/modules").join(&kver).join("kernel");
    let mut modules = BTreeMap::new();
    for m in MODULES {
        let found = walk(&moddir).into_iter().find(|p| {
            p.file_name()
                .is_some_and(|n| n == format!("{m}.ko").as_str())
        });
        let p = found.ok_or_else(|| Error(format!("module {m}.ko not in the kernel package")))?;
        modules.insert(m, std::fs::read(p)?);
    }

    let mut c = Cpio::new();
    for d in [
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
    ] {
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
        INIT.replace("MODULES", &MODULES.join(" ")).as_bytes(),
    );
    c.file("bin/udhcpc.script", true, UDHCPC.as_bytes());
    let nginx = root.join("usr/sbin/nginx");
    c.file("usr/sbin/nginx", true, &std::fs::read(&nginx)?);
    c.symlink("bin/nginx", "/usr/sbin/nginx");
    for lib in shared_libs(&nginx)? {
        let real = std::fs::canonicalize(&lib)?;
        let name = lib.to_string_lossy().trim_start_matches('/').to_string();
        let name = if name.starts_with("lib64/") {
            name
        } else {
            format!(
                "lib/x86_64-linux-gnu/{}",
                lib.file_name().unwrap().to_string_lossy()
            )
        };
        c.file(&name, true, &std::fs::read(real)?);
    }
    c.file("etc/nginx.conf", false, NGINX_CONF.as_bytes());
    c.file(
        "etc/passwd",
        false,
        b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    c.file("etc/group", false, b"root:x:0:\nnogroup:x:65534:\n");
    for (m, data) in &modules {
        c.file(&format!("lib/modules/{m}.ko"), false, data);
    }
    c.file("www/612.html", false, page);
    c.file("www/index.html", false, page);
    let initrd = base.join("initrd.cpio");
    std::fs::write(&initrd, c.finish())?;
    let nginx_ver = std::fs::read_dir(&debs)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("nginx_"))
        .unwrap_or_default();
    Ok(LinuxGuest {
        kernel,
        initrd,
        description: format!(
            "Debian kernel {kver}, busybox-static, {} (1 worker, epoll, sendfile)",
            nginx_ver.trim_end_matches(".deb")
        ),
    })
}

fn walk(dir: &Path) -> Vec<PathBuf> {
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
