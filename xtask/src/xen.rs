//! The nested Xen harness: Xen 4.17 booted by QEMU (TCG) with a busybox dom0 that runs one
//! shell script per boot — a *session* — which starts domUs with `xl`, drives them from dom0
//! and prints `DOM0-RESULT` lines for the host.
//!
//! Everything comes from Debian's packages (`apt-get download`, cached under
//! `target/xen-harness/`): the hypervisor (`xen-hypervisor-4.17-amd64`, gunzipped: QEMU's
//! multiboot loader needs the ELF), the tools (`xen-utils-4.17`, `xenstore-utils` and the
//! `lib*` packages they need that this machine lacks), the generic kernel as dom0 and
//! `busybox-static`. [`prepare`] assembles dom0's initramfs once; [`run`] appends a session's
//! files and script to it and boots. QEMU loads Xen with `-kernel` and dom0's kernel and
//! initramfs as multiboot modules (`-initrd "KERNEL ARGS,INITRD"`).
//!
//! dom0's userland is in [`dom0`]: `/init` loads the backend modules, starts `xenstored`,
//! `xen-init-dom0` and `xenconsoled` (guest consoles go to
//! `/var/log/xen/console/guest-NAME.log`), prints `DOM0-READY`, runs `/session.sh` and prints
//! `DOM0-DONE rc=N` before powering off. Session scripts source `/lib/fata.sh` ([`dom0::LIB`]:
//! `ms`, `result`, `start`, `wait_console`, `wait_exit`, `wait_http`, `dump`, `fail`); vifs
//! and disks use the busybox hotplug scripts `/etc/xen/scripts/fata-vif` (dom0 is 10.0.0.1)
//! and `fata-block` (a file is attached to a loop device).
//!
//! [`xl_config`] writes domain configurations; [`linux_domu_smoke`] proves the whole path
//! with a Linux PVH domU that has a vif and a disk (`cargo xtask xen-linux`).
//!
//! Times on this machine (2 shared cores, QEMU 7.2 TCG): dom0 is ready for `xl create`
//! 9–11 s after QEMU starts (Xen builds the PV dom0 in ~3 s of it), a Linux domU prints its
//! ready line ~12 s after `xl create`, and the Linux session ends 22–30 s after QEMU's
//! start. [`prepare`] takes 0.1 s once its cache is complete.

pub mod dom0;
pub mod guest;
pub mod linux;
pub mod xl;

pub use linux::{LinuxFigures, linux_domu_smoke};
pub use xl::{OnCrash, XlConfig, xl_config};

use crate::linux_guest::{self, Cpio};
use crate::runner::Line;
use crate::{Error, Result, bail, cmd};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The hypervisor package; the tools must be of the same release.
const HYPERVISOR: &str = "xen-hypervisor-4.17-amd64";
/// Xen's tools and the xenstore command-line tools.
const TOOLS: [&str; 2] = ["xen-utils-4.17", "xenstore-utils"];
/// Where the tools are installed.
const TOOL_DIR: &str = "usr/lib/xen-4.17/bin";
/// The tools dom0 runs, in [`TOOL_DIR`]. `xenstored` is the C daemon (the package also has
/// `oxenstored`).
const DOM0_TOOLS: [&str; 5] = [
    "xl",
    "xenstored",
    "xenconsoled",
    "xen-init-dom0",
    "xenconsole",
];
/// The names of the multi-call `/usr/bin/xenstore` of `xenstore-utils`.
const XENSTORE_NAMES: [&str; 8] = [
    "xenstore-read",
    "xenstore-write",
    "xenstore-ls",
    "xenstore-list",
    "xenstore-rm",
    "xenstore-exists",
    "xenstore-watch",
    "xenstore-chmod",
];

/// Xen's command line: its console on the serial port, a fixed dom0 of 768 MiB and one vCPU
/// (the machine has 2 GiB and 2 CPUs; the rest is for domUs), every message.
pub const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 dom0_mem=768M,max:768M dom0_max_vcpus=1 loglvl=all guest_loglvl=all";
/// dom0's kernel command line.
pub const DOM0_CMDLINE: &str = "console=hvc0 earlyprintk=xen";
/// QEMU's CPU. Xen runs PVH guests with SVM, which TCG emulates for `-cpu max`. SMAP must
/// be off: with it (QEMU 7.2 TCG, Xen 4.17), the PV dom0 dies at its first exception, when
/// Xen writes the bounce frame onto dom0's kernel stack (`d0v0 Unhandled: vec 14,
/// #PF[0001]`, "fault at create_bounce_frame", then "Hardware Dom0 crashed").
pub const QEMU_CPU: &str = "max,smap=off";

/// What [`prepare`] made: everything a session needs besides its own files.
#[derive(Clone, Debug)]
pub struct Harness {
    /// The hypervisor (multiboot ELF).
    pub xen: PathBuf,
    /// dom0's kernel.
    pub dom0_kernel: PathBuf,
    /// dom0's kernel version (`6.1.0-57-amd64`).
    pub dom0_kver: String,
    /// dom0's base initramfs (uncompressed newc cpio): sessions append to it.
    pub base_initrd: PathBuf,
    /// The cache directory (`target/xen-harness`).
    pub dir: PathBuf,
    /// The Debian packages, for reports (`xen-hypervisor-4.17-amd64_4.17.7...`).
    pub packages: Vec<String>,
}

/// Downloads (once) what the harness boots, unpacks it and assembles dom0's base initramfs.
/// Installs QEMU if it is missing (as `cargo xtask setup` does).
pub fn prepare() -> Result<Harness> {
    crate::setup::ensure_qemu()?;
    let dir = crate::root().join("target/xen-harness");
    let debs = dir.join("debs");
    let root = dir.join("root");
    // Written once everything is downloaded and unpacked: then no apt-cache call (most of a
    // second each, and download_with_libs makes one per package) is needed.
    let stamp = root.join(".fata-unpacked");
    if !stamp.exists() {
        let kernel = linux_guest::resolve_kernel("linux-image-amd64")?;
        linux_guest::download_packages(&debs, &[HYPERVISOR, &kernel, "busybox-static"])?;
        linux_guest::download_with_libs(&debs, &TOOLS)?;
        linux_guest::unpack(&debs, &root, ".fata-unpacked")?;
        std::fs::write(&stamp, b"")?;
    }
    let xen = dir.join("xen-4.17.elf");
    if !xen.exists() {
        let gz = std::fs::read_dir(root.join("boot"))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with("xen-") && n.ends_with(".gz")
                })
            })
            .ok_or_else(|| Error(format!("{HYPERVISOR} has no boot/xen-*.gz")))?;
        let tmp = dir.join("xen-4.17.elf.tmp");
        let mut c = Command::new("gzip");
        c.arg("-dc").arg(&gz).stdout(std::fs::File::create(&tmp)?);
        cmd::run(&mut c, "unpacking the hypervisor")?;
        std::fs::rename(&tmp, &xen)?;
    }
    let (dom0_kernel, dom0_kver) = linux_guest::kernel_of(&root)?;
    // Written aside and renamed: a session of another process may be reading the old one.
    let base_initrd = dir.join("dom0-base.cpio");
    let tmp = dir.join(format!("dom0-base.cpio.{}", std::process::id()));
    std::fs::write(&tmp, base_cpio(&root, &dom0_kver)?)?;
    std::fs::rename(&tmp, &base_initrd)?;
    let mut packages: Vec<String> = std::fs::read_dir(&debs)?
        .flatten()
        .map(|e| {
            e.file_name()
                .to_string_lossy()
                .trim_end_matches(".deb")
                .to_string()
        })
        .collect();
    packages.sort();
    Ok(Harness {
        xen,
        dom0_kernel,
        dom0_kver,
        base_initrd,
        dir,
        packages,
    })
}

/// dom0's initramfs without a session: busybox, Xen's tools and their libraries, the modules,
/// `/init`, `/lib/fata.sh` and the hotplug scripts.
fn base_cpio(root: &Path, kver: &str) -> Result<Vec<u8>> {
    let modules = dom0::modules(root, kver, &dom0::DOM0_MODULES)?;
    let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
    let dirs = [
        "bin",
        "sbin",
        "etc",
        "etc/xen",
        "etc/xen/scripts",
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "guest",
        "lib",
        "lib64",
        "lib/x86_64-linux-gnu",
        "lib/modules",
        "usr",
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib/xen-4.17",
        TOOL_DIR,
        "var",
        "var/lib",
        "var/lib/xen",
        "var/lib/xenstored",
        "var/log",
        "var/log/xen",
        "var/log/xen/console",
    ];
    let init = dom0::INIT.replace("MODULES", &names.join(" "));
    let mut c = Cpio::new();
    for d in dirs {
        c.dir(d);
    }
    c.symlink("var/run", "/run");
    c.file(
        "bin/busybox",
        true,
        &std::fs::read(root.join("bin/busybox"))?,
    );
    c.symlink("bin/sh", "busybox");
    c.file("init", true, init.as_bytes());
    c.file("lib/fata.sh", false, dom0::LIB.as_bytes());
    // Without it, every xl command says "Failed to read config file".
    c.file("etc/xen/xl.conf", false, b"# xl defaults (none)\n");
    c.file(
        "etc/xen/scripts/fata-vif",
        true,
        dom0::VIF_SCRIPT.as_bytes(),
    );
    c.file(
        "etc/xen/scripts/fata-block",
        true,
        dom0::BLOCK_SCRIPT.as_bytes(),
    );
    for (name, data) in &modules {
        c.file(&format!("lib/modules/{name}.ko"), false, data);
    }
    let lib_dirs = [
        root.join("usr/lib/x86_64-linux-gnu"),
        root.join("lib/x86_64-linux-gnu"),
    ];
    let mut libs = BTreeSet::new();
    let mut binaries: Vec<(String, PathBuf)> = DOM0_TOOLS
        .iter()
        .map(|t| (format!("{TOOL_DIR}/{t}"), root.join(TOOL_DIR).join(t)))
        .collect();
    binaries.push(("usr/bin/xenstore".into(), root.join("usr/bin/xenstore")));
    for (name, path) in &binaries {
        c.file(name, true, &std::fs::read(path)?);
        libs.extend(linux_guest::shared_libs_in(path, &lib_dirs)?);
    }
    for n in XENSTORE_NAMES {
        c.symlink(&format!("usr/bin/{n}"), "xenstore");
    }
    // xl cancels threads, and glibc's pthread_cancel dlopen()s libgcc_s: without it, xl
    // aborts ("libgcc_s.so.1 must be installed for pthread_cancel to work").
    let gcc_s = PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1");
    if !gcc_s.exists() {
        bail!(
            "{} is missing; install it: apt-get install libgcc-s1",
            gcc_s.display()
        );
    }
    libs.insert(gcc_s);
    linux_guest::add_libs(&mut c, &libs.into_iter().collect::<Vec<_>>())?;
    Ok(c.finish())
}

/// One boot of the harness: files added to dom0 and the script it runs.
#[derive(Clone, Debug)]
pub struct Session {
    /// Files added to dom0: (absolute path, contents, executable). Missing parent
    /// directories are created.
    pub files: Vec<(String, Vec<u8>, bool)>,
    /// `/session.sh`, run by busybox `sh` once dom0's Xen daemons are up. Source
    /// `/lib/fata.sh` for the helpers. Its exit status is reported as `DOM0-DONE rc=N`.
    pub script: String,
    /// QEMU is killed after this long.
    pub timeout: Duration,
}

/// What a session printed.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Every serial line (Xen's, dom0's console and the session's output), timed from
    /// QEMU's start.
    pub lines: Vec<Line>,
    /// `DOM0-RESULT KEY VALUE...` lines: KEY → the VALUE words (the last line of a key wins).
    pub results: BTreeMap<String, Vec<String>>,
    /// `DOM0-FAIL MESSAGE` lines, in order.
    pub failures: Vec<String>,
    /// When dom0 was ready for `xl create` (`DOM0-READY`), from QEMU's start.
    pub dom0_ready: Option<Duration>,
    /// When the session script ended (`DOM0-DONE`), and its exit status.
    pub done: Option<(Duration, i32)>,
    /// QEMU was killed after [`Session::timeout`].
    pub timed_out: bool,
    /// What QEMU wrote on stderr.
    pub stderr: String,
    /// QEMU's start to its exit.
    pub elapsed: Duration,
}

impl Output {
    /// Whether the script ran to its end and exited 0 with no `DOM0-FAIL`.
    pub fn ok(&self) -> bool {
        matches!(self.done, Some((_, 0))) && self.failures.is_empty()
    }

    /// The values of result `key`, or an error with the end of the console.
    pub fn result(&self, key: &str) -> Result<&[String]> {
        self.results
            .get(key)
            .map(Vec::as_slice)
            .ok_or_else(|| Error(format!("no DOM0-RESULT {key}\n{}", self.summary())))
    }

    /// The first value of result `key` as a number.
    pub fn number(&self, key: &str) -> Result<u64> {
        let v = self.result(key)?;
        v.first()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error(format!("DOM0-RESULT {key} {}: not a number", v.join(" "))))
    }

    /// How the session ended and the serial lines that tell why (from a little before the
    /// first `DOM0-FAIL`, else the last 60), for error messages.
    pub fn summary(&self) -> String {
        let end = match (&self.done, self.timed_out) {
            (Some((_, rc)), _) => format!("the session script exited with {rc}"),
            (None, true) => "QEMU was killed after the session's timeout".into(),
            (None, false) => "QEMU ended before the session script did".into(),
        };
        // From a little before the first failure (its dump follows it), else the last lines.
        let from = match self
            .lines
            .iter()
            .position(|l| l.text.contains("DOM0-FAIL "))
        {
            Some(i) => i.saturating_sub(20),
            None => self.lines.len().saturating_sub(60),
        };
        let tail: Vec<String> = self.lines[from..]
            .iter()
            .map(|l| format!("{:8.3} {}", l.at.as_secs_f64(), l.text))
            .collect();
        let mut s = format!("{end}; failures: {:?}\n", self.failures);
        if !self.stderr.trim().is_empty() {
            s.push_str(&format!("QEMU stderr: {}\n", self.stderr.trim()));
        }
        s.push_str(&tail.join("\n"));
        s
    }

    /// Takes in one serial line.
    fn add(&mut self, line: Line) {
        let text = line.text.as_str();
        if let Some(i) = text.find("DOM0-RESULT ") {
            let mut words = text[i + 12..].split_whitespace().map(str::to_string);
            if let Some(k) = words.next() {
                self.results.insert(k, words.collect());
            }
        } else if let Some(i) = text.find("DOM0-FAIL ") {
            self.failures.push(text[i + 10..].trim().to_string());
        } else if text.starts_with("DOM0-READY") && self.dom0_ready.is_none() {
            self.dom0_ready = Some(line.at);
        } else if let Some(rest) = text.strip_prefix("DOM0-DONE rc=") {
            let rc = rest
                .split_whitespace()
                .next()
                .and_then(|r| r.parse().ok())
                .unwrap_or(-1);
            self.done = Some((line.at, rc));
        }
        self.lines.push(line);
    }
}

/// Distinguishes the initramfs files of sessions run at the same time.
static SESSIONS: AtomicU32 = AtomicU32::new(0);

/// The session's part of dom0's initramfs: its files (with their parent directories) and
/// `/session.sh`.
fn session_cpio(s: &Session) -> Result<Vec<u8>> {
    let mut c = Cpio::new();
    let mut dirs = BTreeSet::new();
    for (path, _, _) in &s.files {
        let Some(rel) = path.strip_prefix('/').filter(|r| !r.is_empty()) else {
            bail!("session file `{path}`: the path must be absolute");
        };
        let mut parent = Path::new(rel).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
    }
    for d in &dirs {
        c.dir(d);
    }
    for (path, data, exec) in &s.files {
        c.file(&path[1..], *exec, data);
    }
    c.file("session.sh", true, s.script.as_bytes());
    Ok(c.finish())
}

/// Boots the harness with session `s`: every serial line goes to `on_line` as it arrives
/// (timed from QEMU's start) and into the [`Output`]. QEMU is killed after `s.timeout`, or
/// 10 s after `DOM0-DONE` if Xen did not power the machine off by then. An error means QEMU
/// could not run; a session that failed is an `Output` with [`Output::ok`] false.
pub fn run(h: &Harness, s: &Session, on_line: &mut dyn FnMut(&Line)) -> Result<Output> {
    let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
    let initrd = h
        .dir
        .join(format!("session-{}-{n}.cpio", std::process::id()));
    let mut data = std::fs::read(&h.base_initrd)?;
    data.extend(session_cpio(s)?);
    std::fs::write(&initrd, data)?;
    let out = boot(h, &initrd, s.timeout, on_line);
    let _ = std::fs::remove_file(&initrd);
    out
}

/// The multiboot module list of QEMU's `-initrd`: QEMU splits it at commas and each module
/// at its first space, so no path may hold either.
fn modules_arg(h: &Harness, initrd: &Path) -> Result<String> {
    for p in [&h.dom0_kernel, initrd, &h.xen] {
        let s = p.to_string_lossy();
        if s.contains([',', ' ']) {
            bail!(
                "{s}: QEMU's multiboot loader cannot take a path with a comma or a space; move the repository"
            );
        }
    }
    Ok(format!(
        "{} {DOM0_CMDLINE},{}",
        h.dom0_kernel.display(),
        initrd.display()
    ))
}

/// The QEMU command that boots Xen with dom0 and `initrd`.
fn command(h: &Harness, initrd: &Path) -> Result<Command> {
    let mut c = Command::new(crate::qemu::find()?);
    c.args(["-M", "q35", "-accel", "tcg", "-cpu", QEMU_CPU])
        .args(["-m", "2048", "-smp", "2"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-monitor", "none", "-no-reboot", "-serial", "stdio"])
        .arg("-kernel")
        .arg(&h.xen)
        .args(["-append", XEN_CMDLINE])
        .args(["-initrd", &modules_arg(h, initrd)?]);
    Ok(c)
}

fn boot(
    h: &Harness,
    initrd: &Path,
    timeout: Duration,
    on_line: &mut dyn FnMut(&Line),
) -> Result<Output> {
    let mut c = command(h, initrd)?;
    let (mut child, started) = crate::runner::spawn_piped(&mut c)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        crate::runner::read_lines(stdout, started, |line| tx.send(line).is_ok());
    });
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out = Output::default();
    let mut deadline = started + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                on_line(&line);
                out.add(line);
                if out.done.is_some() {
                    deadline = deadline.min(Instant::now() + Duration::from_secs(10));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                out.timed_out = out.done.is_none();
                let _ = child.kill();
                break;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.wait();
    out.elapsed = started.elapsed();
    crate::cleanup::remove_pid(child.id());
    let _ = reader.join();
    out.stderr = err_reader.join().unwrap_or_default();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, ms: u64) -> Line {
        Line {
            at: Duration::from_millis(ms),
            text: text.into(),
        }
    }

    #[test]
    fn results_failures_and_the_end_are_parsed_from_the_console() {
        let mut o = Output::default();
        o.add(line("(XEN) Xen version 4.17", 10));
        o.add(line("DOM0-READY ms=4100", 5000));
        o.add(line("DOM0-RESULT linux_ready_ms 812", 6000));
        o.add(line("\rDOM0-RESULT linux_http sha256 ok", 6100));
        o.add(line("DOM0-RESULT linux_ready_ms 900", 6200));
        assert!(!o.ok());
        o.add(line("DOM0-DONE rc=0 ms=7000", 7000));
        assert_eq!(o.dom0_ready, Some(Duration::from_millis(5000)));
        assert_eq!(o.done, Some((Duration::from_millis(7000), 0)));
        assert_eq!(o.number("linux_ready_ms").unwrap(), 900);
        assert_eq!(o.result("linux_http").unwrap(), ["sha256", "ok"]);
        assert!(o.ok());
        assert!(
            o.result("nope")
                .unwrap_err()
                .0
                .contains("no DOM0-RESULT nope")
        );
        o.add(line("DOM0-FAIL the page differs", 7100));
        assert!(!o.ok());
        assert_eq!(o.failures, ["the page differs"]);
        assert_eq!(o.lines.len(), 7);
    }

    #[test]
    fn a_session_adds_its_files_with_their_directories_and_the_script() {
        let s = Session {
            files: vec![("/guest/a/k".into(), b"KERNEL".to_vec(), false)],
            script: "echo hi\n".into(),
            timeout: Duration::from_secs(1),
        };
        let c = session_cpio(&s).unwrap();
        let text = String::from_utf8_lossy(&c);
        let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle}"));
        assert!(at("guest\0") < at("guest/a\0") && at("guest/a\0") < at("guest/a/k\0"));
        assert!(text.contains("session.sh\0") && text.contains("echo hi"));
        assert_eq!(c.len() % 512, 0);
        let bad = Session {
            files: vec![("guest/k".into(), Vec::new(), false)],
            ..s
        };
        assert!(
            session_cpio(&bad)
                .unwrap_err()
                .0
                .contains("must be absolute")
        );
    }

    #[test]
    fn multiboot_module_paths_with_commas_or_spaces_are_refused() {
        let h = Harness {
            xen: "/x/xen".into(),
            dom0_kernel: "/x/vmlinuz".into(),
            dom0_kver: "6.1".into(),
            base_initrd: "/x/base".into(),
            dir: "/x".into(),
            packages: Vec::new(),
        };
        assert_eq!(
            modules_arg(&h, Path::new("/x/s.cpio")).unwrap(),
            "/x/vmlinuz console=hvc0 earlyprintk=xen,/x/s.cpio"
        );
        let e = modules_arg(&h, Path::new("/x/a,b.cpio")).unwrap_err().0;
        assert!(e.contains("comma or a space"), "{e}");
    }
}
