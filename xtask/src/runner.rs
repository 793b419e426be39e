//! Starting an image and watching its console: the same code for QEMU and for `unix`
//! processes. The child is killed when the handle is dropped, and every wait is bounded.

use crate::build::Image;
use crate::qemu::{self, QemuOpts};
use crate::target::Target;
use crate::{Error, Result, cmd};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How an image ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The image exited with this code (`fata_hal::ExitCode`).
    Code(u8),
    /// The machine powered off without reporting a code (no `isa-debug-exit` device).
    PoweredOff,
    /// Killed by the harness after the timeout.
    TimedOut,
    /// The process died from a signal.
    Signal(i32),
    /// QEMU itself failed (bad arguments, missing file, ...); its message.
    QemuFailed(String),
}

/// A console line and when it arrived, counted from the launch.
#[derive(Clone, Debug)]
pub struct Line {
    /// Time since the launch.
    pub at: Duration,
    /// The text, without the line ending.
    pub text: String,
}

#[derive(Default)]
struct Shared {
    lines: Vec<Line>,
    done: bool,
}

/// A running image.
pub struct Running {
    child: Option<Child>,
    target: Target,
    started: Instant,
    console: Arc<(Mutex<Shared>, Condvar)>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// How it ended.
    pub exit: Exit,
    /// Every console line.
    pub lines: Vec<Line>,
    /// Whatever the process or QEMU wrote on stderr.
    pub stderr: String,
    /// Launch to exit.
    pub elapsed: Duration,
}

impl Outcome {
    /// The console as one string.
    pub fn console(&self) -> String {
        self.lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether some line contains `needle`.
    pub fn has_line(&self, needle: &str) -> bool {
        self.lines.iter().any(|l| l.text.contains(needle))
    }
}

/// How to start an image.
#[derive(Clone, Debug, Default)]
pub struct BootOpts {
    /// Boot arguments (`key=value` words).
    pub args: Vec<String>,
    /// QEMU options (hypervisor targets only).
    pub qemu: QemuOpts,
    /// Copy the console to our stdout as it arrives.
    pub echo: bool,
    /// Run inside this network namespace (`ip netns exec`), e.g. to reach a TAP device there.
    pub netns: Option<String>,
    /// Disks, attached as `disk0`, `disk1`, ... in this order: virtio-blk devices on QEMU,
    /// `diskN=PATH` boot arguments on unix. A missing image with a size is created (sparse)
    /// by [`boot`].
    pub disks: Vec<crate::disk::DiskSpec>,
}

/// Joins boot arguments into one command line, double-quoting values with spaces or quotes.
pub fn cmdline(args: &[String]) -> String {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v))
                if v.is_empty()
                    || v.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') =>
            {
                format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
            }
            _ => a.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads `out` until it ends, handing each line (decoded lossily, without its line ending,
/// timed from `started`) to `f`, which returns false to stop.
pub(crate) fn read_lines(out: impl Read, started: Instant, mut f: impl FnMut(Line) -> bool) {
    let mut r = BufReader::new(out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                if !f(Line {
                    at: started.elapsed(),
                    text,
                }) {
                    break;
                }
            }
        }
    }
}

/// Makes the disks of `opts` ready for `target` ([`crate::disk::prepare_all`]: a missing image
/// with a size is created) and refuses boot arguments that name disks besides them. [`boot`]
/// does this; call it first to fail before a long build.
pub fn prepare_disks(opts: &BootOpts, target: Target) -> Result<()> {
    if let Some(a) = opts.args.iter().find(|a| crate::disk::is_disk_arg(a))
        && !opts.disks.is_empty()
    {
        return Err(Error(format!(
            "the boot argument `{a}` names a disk, and so does --disk; attach disks with --disk only"
        )));
    }
    crate::disk::prepare_all(&opts.disks, target)
}

/// Echoes and starts `c` with stdin closed and stdout and stderr piped, registered for
/// clean-up on Ctrl-C; the child and when it started.
pub(crate) fn spawn_piped(c: &mut Command) -> Result<(std::process::Child, Instant)> {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd::echo(c);
    let started = Instant::now();
    let child = c
        .spawn()
        .map_err(|e| Error(format!("cannot start {:?}: {e}", c.get_program())))?;
    crate::cleanup::add_pid(child.id());
    Ok((child, started))
}

/// Starts `image`: a `virtio` image in QEMU, a `unix` image as a process. A `xen` image is
/// started in plain QEMU too, where it finds no Xen and must refuse to run (the nested Xen
/// harness, [`crate::xen`], is how it really boots).
pub fn boot(image: &Image, opts: &BootOpts) -> Result<Running> {
    if image.target.bare_metal() {
        qemu::check_memory(&image.path, opts.qemu.memory_mib)?;
    }
    prepare_disks(opts, image.target)?;
    let mut c = match image.target {
        Target::Virtio | Target::Xen => {
            qemu::command(&image.path, &cmdline(&opts.args), &opts.qemu, &opts.disks)?
        }
        Target::Unix => {
            let mut c = Command::new(&image.path);
            c.args(&opts.args)
                .args(crate::disk::unix_args(&opts.disks)?);
            c
        }
    };
    if let Some(ns) = &opts.netns {
        let mut wrapped = Command::new("ip");
        wrapped
            .args(["netns", "exec", ns])
            .arg(c.get_program())
            .args(c.get_args());
        c = wrapped;
    }
    let (mut child, started) = spawn_piped(&mut c)?;
    let console = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let echo = opts.echo;
    let c2 = console.clone();
    let r1 = std::thread::spawn(move || {
        read_lines(out, started, |line| {
            if echo {
                println!("{}", line.text);
            }
            let (m, cv) = &*c2;
            m.lock().unwrap().lines.push(line);
            cv.notify_all();
            true
        });
        let (m, cv) = &*c2;
        m.lock().unwrap().done = true;
        cv.notify_all();
    });
    let e2 = stderr.clone();
    let r2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(err).read_to_string(&mut s);
        if echo && !s.is_empty() {
            eprint!("{s}");
        }
        *e2.lock().unwrap() = s;
    });
    Ok(Running {
        child: Some(child),
        target: image.target,
        started,
        console,
        stderr,
        readers: vec![r1, r2],
    })
}

impl Running {
    /// Time since launch.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The console lines printed so far, one per line.
    pub fn console(&self) -> String {
        let g = self.console.0.lock().unwrap_or_else(|e| e.into_inner());
        g.lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until a console line contains `needle`; returns it. Fails if the image ends
    /// first or `timeout` passes.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Result<Line> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.console;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(l) = g.lines.iter().find(|l| l.text.contains(needle)) {
                return Ok(l.clone());
            }
            if g.done {
                return Err(Error(format!("the image ended before printing `{needle}`")));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error(format!(
                    "no `{needle}` on the console within {timeout:?}"
                )));
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits for the image to end (killing it after `timeout`) and collects everything.
    pub fn wait(mut self, timeout: Duration) -> Result<Outcome> {
        let mut child = self.child.take().expect("not yet waited");
        let pid = child.id();
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let elapsed = self.started.elapsed();
        crate::cleanup::remove_pid(pid);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let stderr = self.stderr.lock().unwrap().clone();
        let lines = std::mem::take(&mut self.console.0.lock().unwrap().lines);
        let exit = match status {
            None => Exit::TimedOut,
            Some(s) => match self.target {
                Target::Virtio | Target::Xen => qemu::decode_exit(s, &stderr, !lines.is_empty()),
                Target::Unix => {
                    use std::os::unix::process::ExitStatusExt;
                    match (s.code(), s.signal()) {
                        (Some(c), _) => Exit::Code(c as u8),
                        (None, Some(sig)) => Exit::Signal(sig),
                        _ => Exit::Signal(0),
                    }
                }
            },
        };
        Ok(Outcome {
            exit,
            lines,
            stderr,
            elapsed,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            crate::cleanup::remove_pid(c.id());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_quotes_values_with_spaces_and_quotes() {
        let a = [
            "name=big world".to_string(),
            "x=1".into(),
            "q=a\"b".into(),
            "e=".into(),
        ];
        assert_eq!(cmdline(&a), r#"name="big world" x=1 q="a\"b" e="""#);
    }

    #[test]
    fn disk_boot_arguments_beside_disks_are_refused_before_anything_is_created() {
        let path = std::env::temp_dir().join(format!("xtask-runner-{}.img", std::process::id()));
        let opts = BootOpts {
            args: vec!["disk0=/other.img".into()],
            disks: vec![crate::disk::DiskSpec::sized(&path, 1 << 20)],
            ..Default::default()
        };
        let e = prepare_disks(&opts, Target::Unix).unwrap_err().0;
        assert!(e.contains("`disk0=/other.img` names a disk"), "{e}");
        assert!(!path.exists());
        // Without --disk, the argument is the user's business.
        let alone = BootOpts {
            args: vec!["disk0=/other.img".into()],
            ..Default::default()
        };
        prepare_disks(&alone, Target::Unix).unwrap();
    }
}
