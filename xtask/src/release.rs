//! `cargo xtask release --example NAME`: from the source to every artefact a user deploys,
//! each one proven to boot and answer before it is written to `dist/NAME/`.
//!
//! Steps, each timed: the portability check on every target; release builds for `virtio`,
//! `xen` and `unix`; the disk artefacts (raw, Compute Engine tarball, qcow2) and the deployment
//! configurations (xl, libvirt for QEMU/KVM and Xen, Firecracker); then every artefact that
//! QEMU or the host can run is started — the `virtio` image with `-kernel`, the raw disk, the
//! qcow2 disk and the tarball's `disk.raw` through SeaBIOS on `q35`, the `unix` build as a
//! process — and must print `fata: ready tcp/PORT` and answer a real request on that port (an
//! HTTP response, or its own bytes back from an echo service); an application without a
//! listener must exit 0 instead. Last, the artefacts are copied to `dist/NAME/` with
//! `SHA256SUMS` and `manifest.json`.
//!
//! The `xen` image is built and its `.xl` written, but not booted here: that needs the nested
//! Xen harness (`cargo xtask test --xen` proves the same images boot on Xen).

use crate::build::Image;
use crate::qemu::{BootDisk, NetBackend};
use crate::runner::{BootOpts, Exit};
use crate::target::{Machine, Target};
use crate::{Error, Result, bail, cmd};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One artefact in `dist/`.
#[derive(Clone, Debug)]
pub struct Artefact {
    /// Its file name in `dist/NAME/`.
    pub name: String,
    /// Where it was made.
    pub source: PathBuf,
    /// How it was proven, if it was started ("answered HTTP on tcp/80 in 0.4 s").
    pub proof: Option<String>,
}

/// What a release did.
#[derive(Debug)]
pub struct Release {
    /// `dist/NAME/`.
    pub dir: PathBuf,
    /// The artefacts.
    pub artefacts: Vec<Artefact>,
    /// (step, seconds).
    pub steps: Vec<(String, f64)>,
}

fn step<T>(steps: &mut Vec<(String, f64)>, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("xtask: release: {what} ...");
    let t = Instant::now();
    let r = f().map_err(|e| Error(format!("{what}: {e}")))?;
    let s = t.elapsed().as_secs_f64();
    eprintln!("xtask: release: {what}: {s:.1} s");
    steps.push((what.to_string(), s));
    Ok(r)
}

/// How a started artefact proved itself.
enum Started {
    /// Ready on a port and answered there.
    Answered(u16, &'static str),
    /// No listener: ran to exit 0.
    Exited,
}

/// Connects to `addr`, sends an HTTP request and accepts an HTTP response or its own bytes
/// back (an echo service).
fn real_request(addr: SocketAddr) -> Result<&'static str> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = (|| -> std::io::Result<Vec<u8>> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let req = b"GET / HTTP/1.0\r\nHost: fata\r\n\r\n";
            s.write_all(req)?;
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while got.len() < req.len() || !got.starts_with(b"HTTP/1.") {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if got.is_empty() => return Err(e),
                    Err(_) => break,
                }
                if got.starts_with(b"HTTP/1.") && got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Ok(got)
        })();
        match attempt {
            Ok(got) if got.starts_with(b"HTTP/1.") => return Ok("an HTTP response"),
            Ok(got) if got.starts_with(b"GET / HTTP/1.0") => return Ok("its bytes echoed"),
            Ok(got) if Instant::now() >= deadline => bail!(
                "it answered neither HTTP nor an echo: {:?}",
                String::from_utf8_lossy(&got[..got.len().min(80)])
            ),
            Err(e) if Instant::now() >= deadline => bail!("no answer: {e}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The port of a `fata: ready tcp/PORT` line.
fn ready_port(line: &str) -> Option<u16> {
    line.split("fata: ready tcp/")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Starts `img` (with `disk`, through the firmware), forwarding `port` if known; waits for the
/// ready line (or the exit) and makes the real request.
fn prove(
    img: &Image,
    disk: Option<BootDisk>,
    port: Option<u16>,
    args: &[String],
) -> Result<Started> {
    let host = crate::compare::free_port();
    let mut opts = BootOpts {
        args: args.to_vec(),
        ..Default::default()
    };
    // A unix build listens on the host's own sockets, on its own port.
    if img.target != Target::Unix {
        opts.qemu.machine = Machine::Q35;
        opts.qemu.net = Some(NetBackend::User {
            forwards: port.map(|p| vec![(host, p)]).unwrap_or_default(),
        });
        opts.qemu.boot_disk = disk;
    }
    let vm = crate::runner::boot(img, &opts)?;
    let line = vm.wait_for_line("fata: ready tcp/", Duration::from_secs(60));
    match line {
        Ok(l) => {
            let p = ready_port(&l.text)
                .ok_or_else(|| Error(format!("unreadable ready line: {}", l.text)))?;
            let answered = match (img.target, port) {
                (Target::Unix, _) => Some(real_request(SocketAddr::from(([127, 0, 0, 1], p)))),
                (_, Some(_)) => Some(real_request(SocketAddr::from(([127, 0, 0, 1], host)))),
                _ => None,
            };
            let _ = vm.wait(Duration::from_millis(50));
            match answered {
                Some(Ok(how)) => Ok(Started::Answered(p, how)),
                Some(Err(e)) => Err(e),
                None => Ok(Started::Answered(p, "")),
            }
        }
        Err(_) => {
            let out = vm.wait(Duration::from_secs(60))?;
            match &out.exit {
                Exit::Code(0) | Exit::PoweredOff if port.is_none() => Ok(Started::Exited),
                e => bail!(
                    "it never printed `fata: ready tcp/…` ({e:?})\n{}",
                    out.console()
                ),
            }
        }
    }
}

fn sha256(path: &Path) -> Result<String> {
    let out = std::process::Command::new("sha256sum").arg(path).output()?;
    if !out.status.success() {
        bail!("sha256sum {} failed", path.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Runs the release of `example` with boot arguments `args` (baked into the disks and the
/// configurations).
pub fn release(app: &crate::app::App, args: &[String]) -> Result<Release> {
    let root = app.out_root()?;
    let manifest = app.manifest()?;
    let name = app.name()?;
    let example = name.as_str();
    let cmdline = crate::runner::cmdline(args);
    crate::image::check_args(&cmdline)?;
    let mut steps = Vec::new();
    step(&mut steps, "portability check (every target)", || {
        let reports = crate::check::check(&crate::check::CheckOpts {
            manifest: manifest.clone(),
            verbose: false,
        })?;
        if reports.iter().all(|r| r.ok) {
            Ok(())
        } else {
            bail!("{}", crate::check::render(&reports, false))
        }
    })?;
    let mut images = Vec::new();
    for t in Target::ALL {
        let img = step(&mut steps, &format!("build {} (release)", t.name()), || {
            app.build(t, true)
        })?;
        images.push(img);
    }
    let virtio = images[0].clone();
    let xen = images[1].clone();
    let unix = images[2].clone();
    let work = root.join("target/release-work").join(example);
    std::fs::create_dir_all(&work)?;
    let raw = work.join(format!("{example}.raw"));
    let gce = work.join(format!("{example}.tar.gz"));
    let qcow2 = work.join(format!("{example}.qcow2"));
    step(&mut steps, "disk images (raw, gce, qcow2)", || {
        for (f, out) in [
            (crate::image::Format::Raw, &raw),
            (crate::image::Format::Gce, &gce),
            (crate::image::Format::Qcow2, &qcow2),
        ] {
            crate::image::make(&virtio.path, f, &cmdline, out)?;
        }
        Ok(())
    })?;
    let dir = root.join("dist").join(example);
    // The configurations name the artefacts where they will be: in `dist/NAME/`.
    let configs = step(&mut steps, "deployment configurations", || {
        use crate::deploy::{DeployOpts, firecracker, libvirt, xl};
        let mut o = DeployOpts::new(example, &dir.join(format!("{example}-virtio.elf")));
        o.args = cmdline.clone();
        let mut out = Vec::new();
        let mut put = |name: String, text: String| -> Result<()> {
            let p = work.join(&name);
            std::fs::write(&p, text)?;
            out.push(p);
            Ok(())
        };
        put(format!("{example}-kvm.xml"), libvirt(&o, false)?)?;
        put(format!("{example}.firecracker.json"), firecracker(&o)?)?;
        let mut x = DeployOpts::new(example, &dir.join(format!("{example}-xen.elf")));
        x.args = cmdline.clone();
        x.bridge = "xenbr0".into();
        x.mac = "00:16:3e:fa:7a:01".into();
        put(format!("{example}-xen.xml"), libvirt(&x, true)?)?;
        put(format!("{example}.xl"), xl(&x)?)?;
        Ok(out)
    })?;

    // The port: from the first boot's ready line.
    let mut artefacts: Vec<Artefact> = Vec::new();
    let mut proofs: Vec<(PathBuf, String)> = Vec::new();
    let port = step(&mut steps, "boot the virtio image (-kernel, q35)", || {
        let first = prove(&virtio, None, None, args)?;
        Ok(match first {
            Started::Answered(p, _) => Some(p),
            Started::Exited => None,
        })
    })?;
    let describe = |s: Started| match s {
        Started::Answered(p, how) => format!("ready on tcp/{p}, answered with {how}"),
        Started::Exited => "ran to exit 0 (no listener)".into(),
    };
    let s = step(&mut steps, "request to the virtio image", || {
        prove(&virtio, None, port, args)
    })?;
    proofs.push((virtio.path.clone(), describe(s)));
    let gce_dir = work.join("gce-check");
    let _ = std::fs::remove_dir_all(&gce_dir);
    std::fs::create_dir_all(&gce_dir)?;
    let mut c = std::process::Command::new("tar");
    c.arg("-xzSf").arg(&gce).arg("-C").arg(&gce_dir);
    cmd::run(&mut c, "unpacking the Compute Engine tarball")?;
    for (what, path, disk, format) in [
        ("boot the raw disk (SeaBIOS, q35)", &raw, raw.clone(), "raw"),
        (
            "boot the qcow2 disk (SeaBIOS, q35)",
            &qcow2,
            qcow2.clone(),
            "qcow2",
        ),
        (
            "boot the Compute Engine disk.raw (SeaBIOS, q35)",
            &gce,
            gce_dir.join("disk.raw"),
            "raw",
        ),
    ] {
        let s = step(&mut steps, what, || {
            prove(
                &virtio,
                Some(BootDisk {
                    path: disk.clone(),
                    format,
                }),
                port,
                &[],
            )
        })?;
        proofs.push((path.clone(), describe(s)));
    }
    let s = step(&mut steps, "run the unix build", || {
        prove(&unix, None, port, args)
    })?;
    proofs.push((unix.path.clone(), describe(s)));
    let _ = std::fs::remove_dir_all(&gce_dir);

    let dir = root.join("dist").join(example);
    step(
        &mut steps,
        "write dist/ with SHA256SUMS and manifest.json",
        || {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let mut files: Vec<(String, PathBuf)> = vec![
                (format!("{example}-virtio.elf"), virtio.path.clone()),
                (format!("{example}-xen.elf"), xen.path.clone()),
                (format!("{example}-unix"), unix.path.clone()),
                (format!("{example}.raw"), raw.clone()),
                (format!("{example}-gce.tar.gz"), gce.clone()),
                (format!("{example}.qcow2"), qcow2.clone()),
            ];
            for c in &configs {
                files.push((
                    c.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    c.clone(),
                ));
            }
            let mut sums = String::new();
            let mut manifest = format!(
                "{{\n  \"example\": \"{example}\",\n  \"boot_arguments\": \"{}\",\n  \"artefacts\": [\n",
                cmdline.replace('\\', "\\\\").replace('"', "\\\"")
            );
            for (i, (name, src)) in files.iter().enumerate() {
                let dst = dir.join(name);
                // Sparse files stay sparse: `cp --sparse=always`.
                let mut c = std::process::Command::new("cp");
                c.arg("--sparse=always").arg(src).arg(&dst);
                cmd::run(&mut c, &format!("copying {name}"))?;
                let sum = sha256(&dst)?;
                let size = std::fs::metadata(&dst)?.len();
                sums.push_str(&format!("{sum}  {name}\n"));
                let proof = proofs
                    .iter()
                    .find(|(p, _)| p == src)
                    .map(|(_, s)| s.clone());
                manifest.push_str(&format!(
                "    {{ \"file\": \"{name}\", \"bytes\": {size}, \"sha256\": \"{sum}\", \"proven\": {} }}{}\n",
                proof
                    .as_ref()
                    .map(|s| format!("\"{s}\""))
                    .unwrap_or_else(|| "null".into()),
                if i + 1 < files.len() { "," } else { "" }
            ));
                artefacts.push(Artefact {
                    name: name.clone(),
                    source: src.clone(),
                    proof,
                });
            }
            manifest.push_str("  ]\n}\n");
            std::fs::write(dir.join("SHA256SUMS"), sums)?;
            std::fs::write(dir.join("manifest.json"), manifest)?;
            Ok(())
        },
    )?;
    Ok(Release {
        dir,
        artefacts,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_give_their_port() {
        assert_eq!(ready_port("fata: ready tcp/80 after 95.1 ms"), Some(80));
        assert_eq!(ready_port("fata: ready tcp/8080"), Some(8080));
        assert_eq!(ready_port("fata: ready udp/53"), None);
    }
}
