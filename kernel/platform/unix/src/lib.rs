//! The `unix` platform: the same application as an ordinary Linux process, for a fast edit
//! loop. This is the only platform crate that may use `std`.
//!
//! Console: standard output. Clocks: `clock_gettime` (through `std::time`). `wait`: `ppoll`
//! with a nanosecond timeout (file descriptors of devices join the poll set as devices are
//! added). Exit: `process::exit`. Boot command line: the process arguments. Network: a TAP
//! device ([`tap`]) or the host's sockets ([`sockets`]). Disks: files or host block devices
//! named by the boot arguments `diskN=PATH` ([`disk`]). Entropy: the host's `getrandom(2)`.
//!
//! The application crate is `#![no_main]`; this crate defines the C `main` that glibc's start
//! code calls, and hands the arguments to the application's `__fata_start`.
//!
//! `unsafe` code is allowed in two small modules only: `sys` (the `libc` calls `std` does not
//! wrap) and `entry` (the `main` symbol and the call of `__fata_start`); `deny(unsafe_code)`
//! keeps the rest of the crate safe.
#![deny(unsafe_code)]

#[cfg(not(test))]
use fata_hal::BootInfo;
use fata_hal::{Events, ExitCode, Nanos, Platform};
use std::sync::Mutex;

pub mod disk;
#[cfg(not(test))]
#[allow(unsafe_code)]
mod entry;
pub mod sockets;
#[allow(unsafe_code)]
mod sys;
pub mod tap;

/// File descriptors `wait` polls for readability, with the event bit each reports.
static POLL_FDS: Mutex<Vec<(std::os::fd::RawFd, u64)>> = Mutex::new(Vec::new());

/// Adds a descriptor to `wait`'s poll set.
pub(crate) fn register_fd(fd: std::os::fd::RawFd, event: u64) {
    POLL_FDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((fd, event));
}

/// Removes a descriptor from `wait`'s poll set.
pub(crate) fn unregister_fd(fd: std::os::fd::RawFd) {
    POLL_FDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&(f, _)| f != fd);
}
use std::io::Write;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The `unix` platform.
pub struct Unix;

static START: OnceLock<Instant> = OnceLock::new();

fn start() -> Instant {
    *START.get_or_init(Instant::now)
}

impl Platform for Unix {
    const NAME: &'static str = "unix";
    type Net = tap::TapDevice;
    type Sockets = sockets::Host;
    type Block = disk::FileDisk;

    /// Opens `diskN`, the file or block device named by the boot argument `diskN=PATH`.
    fn open_block(name: &str) -> Result<(Self::Block, Events), fata_hal::block::OpenError> {
        disk::open_named(name, disk::boot_args()).map(|d| (d, Events(disk::DISK_EVENT)))
    }

    /// The disks' keys (`diskN=PATH`, `diskN_ro=BOOL`).
    fn is_platform_arg(key: &str) -> bool {
        disk::is_disk_key(key)
    }

    /// Opens the TAP device `name` (`service0`, the hypervisor's first NIC, does not exist
    /// in a process: the runtime asks for a TAP device by name, `net=tap:NAME`).
    fn open_net(name: &str) -> Result<(Self::Net, Events), fata_hal::net::OpenError> {
        if name == "service0" {
            return Err(fata_hal::net::OpenError::NotFound(
                "a process has no hypervisor network card: use net=tap:NAME or net=socket",
            ));
        }
        tap::TapDevice::open(name).map(|d| (d, Events(tap::TAP_EVENT)))
    }

    /// The host kernel's `getrandom(2)`.
    fn entropy_sources() -> Vec<Box<dyn fata_hal::entropy::EntropySource>> {
        vec![Box::new(HostRandom)]
    }

    fn console_write(bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }

    fn monotonic_ns() -> Nanos {
        start().elapsed().as_nanos() as Nanos
    }

    fn wall_ns() -> Option<Nanos> {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_nanos() as Nanos)
    }

    fn wait(deadline: Option<Nanos>) -> Events {
        // The TAP device (its event bit) and the host sockets tasks wait on (their wakers).
        let watched: Vec<(std::os::fd::RawFd, u64)> =
            POLL_FDS.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let sockets = sockets::poll_set();
        let mut fds: Vec<libc::pollfd> = watched
            .iter()
            .map(|&(fd, _)| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .chain(sockets.iter().map(|&(fd, events)| libc::pollfd {
                fd,
                events,
                revents: 0,
            }))
            .collect();
        let timeout = deadline.map(|d| {
            let left = d.saturating_sub(Self::monotonic_ns());
            libc::timespec {
                tv_sec: (left / 1_000_000_000) as libc::time_t,
                tv_nsec: (left % 1_000_000_000) as libc::c_long,
            }
        });
        // EINTR simply ends the wait early, which the contract allows.
        let n = sys::ppoll(&mut fds, timeout);
        if n <= 0 {
            return Events::NONE;
        }
        let mut ev = 0;
        for (p, &(_, bit)) in fds.iter().zip(&watched) {
            if p.revents != 0 {
                ev |= bit;
            }
        }
        for p in &fds[watched.len()..] {
            if p.revents != 0 {
                sockets::ready(p.fd, p.revents);
            }
        }
        Events(ev)
    }

    fn exit(code: ExitCode) -> ! {
        let _ = std::io::stdout().flush();
        std::process::exit(i32::from(code.code()))
    }
}

/// The host's `getrandom(2)` as an entropy source.
struct HostRandom;

impl fata_hal::entropy::EntropySource for HostRandom {
    fn name(&self) -> &'static str {
        "getrandom"
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), fata_hal::entropy::EntropyError> {
        sys::getrandom(buf).map_err(|e| fata_hal::entropy::EntropyError::Device(e.to_string()))
    }
}

/// Quotes a process argument for the `key=value` command-line syntax: values with spaces or
/// quotes are wrapped in double quotes with `\"` and `\\` escaped.
pub fn quote_arg(arg: &str) -> String {
    match arg.split_once('=') {
        Some((k, v))
            if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') =>
        {
            let mut s = format!("{k}=\"");
            for c in v.chars() {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push('"');
            s
        }
        _ => arg.to_string(),
    }
}

/// Reports a panic (location and message) and ends the process; the runtime installs its
/// own, which formats the report like every other line it prints (text or JSON).
pub type PanicReporter = fn(Option<&core::panic::Location<'_>>, &str) -> !;

static PANIC_REPORTER: std::sync::OnceLock<PanicReporter> = std::sync::OnceLock::new();

/// Makes panics go to `r` instead of the platform's own text report.
pub fn set_panic_reporter(r: PanicReporter) {
    let _ = PANIC_REPORTER.set(r);
}

/// Starts the process side of the platform (clock, panic hook) and turns the process
/// arguments into the boot command line; see `entry`, which calls it from `main`.
#[cfg(not(test))]
fn start_process() -> BootInfo {
    start();
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload_as_str()
            .unwrap_or("(non-string panic payload)");
        if let Some(report) = PANIC_REPORTER.get() {
            report(info.location(), msg);
        }
        let line = match info.location() {
            Some(l) => format!(
                "fata: panic at {}:{}:{}: {msg}\n",
                l.file(),
                l.line(),
                l.column()
            ),
            None => format!("fata: panic: {msg}\n"),
        };
        Unix::console_write(line.as_bytes());
        Unix::console_write(b"fata: exit 2 (Panic)\n");
        Unix::exit(ExitCode::Panic)
    }));
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| match a.into_string() {
            Ok(s) => s,
            Err(a) => {
                Unix::console_write(
                    format!("fata: cannot boot: argument {a:?} is not UTF-8\n").as_bytes(),
                );
                Unix::exit(ExitCode::Usage)
            }
        })
        .collect();
    // The disks' paths as given, before quoting for the command line.
    disk::capture_args(&args);
    let quoted: Vec<String> = args.iter().map(|a| quote_arg(a)).collect();
    let cmdline: &'static str = Box::leak(quoted.join(" ").into_boxed_str());
    BootInfo::hosted(cmdline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_with_spaces_and_quotes_are_quoted_for_the_cmdline_parser() {
        assert_eq!(quote_arg("name=fata"), "name=fata");
        assert_eq!(quote_arg("name=big world"), "name=\"big world\"");
        assert_eq!(quote_arg("q=a\"b\\c"), "q=\"a\\\"b\\\\c\"");
        assert_eq!(quote_arg("empty="), "empty=\"\"");
        assert_eq!(quote_arg("help"), "help");
    }

    #[test]
    fn monotonic_clock_never_goes_back_and_wait_respects_deadline() {
        let a = Unix::monotonic_ns();
        let d = a + 2_000_000;
        while Unix::monotonic_ns() < d {
            Unix::wait(Some(d));
        }
        assert!(Unix::monotonic_ns() >= d);
    }

    #[test]
    fn the_hosts_getrandom_is_the_one_entropy_source_and_fills_whole_buffers() {
        let mut sources = Unix::entropy_sources();
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].name(), "getrandom");
        let (mut a, mut b) = ([0u8; 4096], [0u8; 4096]);
        sources[0].fill(&mut a).unwrap();
        sources[0].fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert!(a[4000..].iter().any(|&x| x != 0), "the end is filled too");
    }
}
