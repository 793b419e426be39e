//! Disks on `unix`: the HAL block device ([`fata_hal::block::BlockDevice`]) over a regular
//! file or a host block device.
//!
//! # Naming
//!
//! `diskN` is the file named by the boot argument `diskN=PATH` (the process arguments are the
//! boot command line); `diskN_ro=true` attaches it read-only. The runtime's configuration
//! parser leaves these keys to the platform ([`is_disk_key`]). `cargo xtask run --target unix
//! --disk PATH` passes them.
//!
//! # I/O
//!
//! Opening a disk logs nothing on success: the runtime logs one line with
//! [`BlockDevice::describe`] (`file PATH, flushed with fdatasync`), the size and the cache mode.
//! A size that is not a whole number of sectors is logged as a warning.
//!
//! Every request runs synchronously inside [`BlockDevice::submit`] with `pread`/`pwrite` on
//! the host's page cache, and its completion waits in a queue for [`BlockDevice::complete`]:
//! completions come out in submission order, and at most [`MAX_IN_FLIGHT`] uncollected ones
//! are kept (then `submit` answers `Busy`). A flush is `fdatasync`, so the cache mode is
//! [`CacheMode::Volatile`]: a completed write sits in the host's page cache until a flush.
//! After a failed `fdatasync` every later flush fails too: Linux may drop the dirty pages and
//! report success next time, which would claim durability for lost writes.
//!
//! No descriptor joins `wait`'s poll set: a completion is ready as soon as `submit` returns,
//! so [`DISK_EVENT`] is never reported.
//!
//! # Sharing
//!
//! A disk is locked while open, against a second user of the same file: `flock` (exclusive for
//! a writer, shared for a reader) and open-file-description record locks in QEMU's protocol for
//! its images, so a QEMU guest and a `unix` process never use one image in conflicting ways
//! (readers share; a writer excludes everyone). Both are released when the disk is dropped or
//! the process ends.
//!
//! This module is safe code; the system calls `std` does not wrap are in `sys`.

use crate::sys;
use fata_hal::block::{
    BlockDevice, BlockError, BlockInfo, BlockStats, CacheMode, Completion, OpenError, Request,
    Submitted,
};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The event bit of disks in `wait`'s result. Nothing sets it: completions are ready when
/// `submit` returns.
pub const DISK_EVENT: u64 = 1 << 1;

/// Bytes per sector of a disk in a regular file.
pub const SECTOR_SIZE: u32 = 512;

/// The largest transfer of one request.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Completions kept for [`BlockDevice::complete`] before `submit` answers `Busy`.
pub const MAX_IN_FLIGHT: usize = 32;

/// How to attach a disk, for the messages that say so.
const HOW_TO_ATTACH: &str = "attach one with the boot argument diskN=PATH (`cargo xtask run --target unix --disk PATH[:SIZE]`)";

/// `diskN` → `N`, for the canonical spelling only (`disk0`, `disk12`; not `disk`, `disk01`).
fn disk_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("disk")?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// Whether a boot argument key belongs to the disks: `diskN` (the path) or `diskN_ro`.
pub fn is_disk_key(key: &str) -> bool {
    disk_number(key.strip_suffix("_ro").unwrap_or(key)).is_some()
}

/// The disk arguments of the process (`(key, value)` pairs), captured at start.
static BOOT_ARGS: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// The `(key, value)` pairs among `args` that belong to the disks, in order.
pub fn disk_args<'a>(args: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
    args.into_iter()
        .filter_map(|a| a.split_once('='))
        .filter(|(k, _)| is_disk_key(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Remembers the process arguments' disk keys for [`open_named`] (the first call wins).
#[cfg_attr(test, allow(dead_code))] // called by `start_process`, which tests do not build
pub(crate) fn capture_args(args: &[String]) {
    let _ = BOOT_ARGS.set(disk_args(args.iter().map(String::as_str)));
}

/// The disk arguments captured at start (none in unit tests).
pub(crate) fn boot_args() -> &'static [(String, String)] {
    BOOT_ARGS.get().map_or(&[], Vec::as_slice)
}

/// A disk named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskArg {
    /// `diskN`.
    pub name: String,
    /// The file or block device.
    pub path: PathBuf,
    /// `diskN_ro=true`.
    pub read_only: bool,
}

/// Finds disk `name` among the disk arguments `args` (see [`disk_args`]).
pub fn resolve(name: &str, args: &[(String, String)]) -> Result<DiskArg, OpenError> {
    let paths: Vec<&str> = args
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    let path = match (disk_number(name), paths.as_slice()) {
        (Some(_), [p]) => *p,
        (Some(_), [_, _, ..]) => {
            return Err(OpenError::Failed(format!(
                "{name} is given {} times on the command line ({}); give it once",
                paths.len(),
                paths.join(", ")
            )));
        }
        _ => {
            let attached: Vec<String> = args
                .iter()
                .filter(|(k, _)| disk_number(k).is_some())
                .map(|(k, v)| format!("{k} ({v})"))
                .collect();
            let have = if attached.is_empty() {
                "no disks are attached".to_string()
            } else {
                format!("the disks are {}", attached.join(", "))
            };
            let hint = if disk_number(name).is_some() {
                format!(
                    "attach it with the boot argument {name}=PATH (`cargo xtask run --target unix --disk PATH[:SIZE]`)"
                )
            } else {
                format!("disks are named disk0, disk1, ...; {HOW_TO_ATTACH}")
            };
            return Err(OpenError::NotFound(format!("`{name}`: {have}; {hint}")));
        }
    };
    if path.is_empty() {
        return Err(OpenError::Failed(format!(
            "{name}= names no file; give a path: {name}=PATH"
        )));
    }
    let ro_key = format!("{name}_ro");
    let mut read_only = false;
    for (_, v) in args.iter().filter(|(k, _)| *k == ro_key) {
        read_only = match v.as_str() {
            "true" | "yes" | "on" | "1" => true,
            "false" | "no" | "off" | "0" => false,
            _ => {
                return Err(OpenError::Failed(format!(
                    "{ro_key}={v}: expected true or false"
                )));
            }
        };
    }
    Ok(DiskArg {
        name: name.to_string(),
        path: PathBuf::from(path),
        read_only,
    })
}

/// Names of the disks this process has open (each is acquired once).
static TAKEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Opens disk `name` as the disk arguments `args` name it: what `Platform::open_block` does
/// with the arguments captured at start.
pub fn open_named(name: &str, args: &[(String, String)]) -> Result<FileDisk, OpenError> {
    let arg = resolve(name, args)?;
    {
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        if taken.contains(&arg.name) {
            return Err(OpenError::InUse);
        }
        taken.push(arg.name.clone());
    }
    match FileDisk::open(&arg.name, &arg.path, arg.read_only) {
        Ok(mut d) => {
            d.registered = true;
            Ok(d)
        }
        Err(e) => {
            release(&arg.name);
            Err(e)
        }
    }
}

fn release(name: &str) {
    TAKEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|t| t != name);
}

/// QEMU's image locks (`block/file-posix.c`, stable since QEMU 2.10 so that versions agree):
/// a user holding permission bit `i` read-locks byte `100 + i`; a user that does not share it
/// read-locks byte `200 + i`. Bits: 0 consistent read, 1 write, 2 write-unchanged, 3 resize.
const QEMU_PERM: i64 = 100;
const QEMU_UNSHARED: i64 = 200;
const QEMU_READ: i64 = 0;
const QEMU_WRITE: i64 = 1;
const QEMU_RESIZE: i64 = 3;

/// Takes the record locks that keep QEMU (and other `unix` processes) away: a writer locks the
/// whole file for writing, which conflicts with every QEMU user; a reader takes QEMU's locks
/// for "reads, shares no writing or resizing" and checks that nobody writes, resizes or refuses
/// to share reading. `Ok(false)`: someone else uses the file in a way that conflicts.
fn qemu_lock(fd: std::os::fd::RawFd, writable: bool) -> std::io::Result<bool> {
    let held = |r: std::io::Result<()>| match r {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    };
    if writable {
        return held(sys::ofd_lock(fd, true, 0, 0));
    }
    for byte in [
        QEMU_PERM + QEMU_READ,
        QEMU_UNSHARED + QEMU_WRITE,
        QEMU_UNSHARED + QEMU_RESIZE,
    ] {
        if !held(sys::ofd_lock(fd, false, byte, 1))? {
            return Ok(false);
        }
    }
    for byte in [
        QEMU_PERM + QEMU_WRITE,
        QEMU_PERM + QEMU_RESIZE,
        QEMU_UNSHARED + QEMU_READ,
    ] {
        if sys::ofd_locked_by_others(fd, byte, 1)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A disk backed by a file or a host block device.
pub struct FileDisk {
    file: File,
    name: String,
    path: PathBuf,
    info: BlockInfo,
    block_device: bool,
    /// Why the disk is read-only, when it is.
    read_only_why: Option<&'static str>,
    done: VecDeque<Completion>,
    stats: BlockStats,
    /// The error of a failed flush: every later flush fails with it.
    flush_failed: Option<String>,
    /// Listed in [`TAKEN`] (opened through [`open_named`]).
    registered: bool,
}

fn in_use(path: &Path) -> OpenError {
    OpenError::Failed(format!(
        "`{}` is in use by another process (or attached twice, or by a QEMU guest); stop it or use another file",
        path.display()
    ))
}

fn how_to_create(path: &Path) -> String {
    format!(
        "create it with `truncate -s 64M {p}`, or let the xtask do it: `cargo xtask run --target unix --disk {p}:64M`",
        p = path.display()
    )
}

impl FileDisk {
    /// Opens `path` as disk `name` (the name is for messages): read-write, or read-only when
    /// `read_only` is set or the file is not writable by this process. Locks it against other
    /// users and logs one line saying what it is.
    pub fn open(name: &str, path: &Path, read_only: bool) -> Result<FileDisk, OpenError> {
        let p = path.display();
        // Check the type before opening: opening a FIFO could block.
        let meta = std::fs::metadata(path).map_err(|e| {
            OpenError::Failed(match e.kind() {
                ErrorKind::NotFound => {
                    format!("{name}: `{p}` does not exist: {}", how_to_create(path))
                }
                _ => format!("{name}: cannot look at `{p}`: {e}"),
            })
        })?;
        let ft = meta.file_type();
        if ft.is_dir() {
            return Err(OpenError::Failed(format!(
                "{name}: `{p}` is a directory; name an image file or a block device"
            )));
        }
        if !ft.is_file() && !ft.is_block_device() {
            return Err(OpenError::Failed(format!(
                "{name}: `{p}` is neither a regular file nor a block device"
            )));
        }
        let open = |write: bool| File::options().read(true).write(write).open(path);
        let (file, read_only_why) = if read_only {
            (open(false), Some("asked for with diskN_ro"))
        } else {
            match open(true) {
                Err(e)
                    if e.kind() == ErrorKind::PermissionDenied
                        || e.raw_os_error() == Some(libc::EROFS) =>
                {
                    (open(false), Some("not writable by this process"))
                }
                r => (r, None),
            }
        };
        let file =
            file.map_err(|e| OpenError::Failed(format!("{name}: cannot open `{p}`: {e}")))?;
        let writable = read_only_why.is_none();
        let fd = file.as_raw_fd();
        match sys::flock_nonblocking(fd, writable) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => return Err(in_use(path)),
            Err(e) => {
                return Err(OpenError::Failed(format!("{name}: cannot lock `{p}`: {e}")));
            }
        }
        match qemu_lock(fd, writable) {
            Ok(true) => {}
            Ok(false) => return Err(in_use(path)),
            // File systems without record locks (some network ones): flock still holds.
            Err(e) if e.raw_os_error() == Some(libc::ENOLCK) => {}
            Err(e) => {
                return Err(OpenError::Failed(format!("{name}: cannot lock `{p}`: {e}")));
            }
        }
        let meta = file
            .metadata()
            .map_err(|e| OpenError::Failed(format!("{name}: cannot look at `{p}`: {e}")))?;
        let block_device = meta.file_type().is_block_device();
        let (bytes, sector_size) = if block_device {
            let bytes = (&file)
                .seek(SeekFrom::End(0))
                .map_err(|e| OpenError::Failed(format!("{name}: size of `{p}`: {e}")))?;
            let ss = match sys::logical_sector_size(fd) {
                Ok(s) if s.is_power_of_two() && (512..=65536).contains(&s) => s,
                Ok(s) => {
                    log::warn!(
                        "block: {name}: `{p}` reports a sector size of {s} bytes; using {SECTOR_SIZE}"
                    );
                    SECTOR_SIZE
                }
                Err(_) => SECTOR_SIZE,
            };
            (bytes, ss)
        } else {
            (meta.len(), SECTOR_SIZE)
        };
        let ss = u64::from(sector_size);
        if bytes == 0 {
            return Err(OpenError::Failed(format!(
                "{name}: `{p}` is empty (0 bytes); give it a size: {}",
                how_to_create(path)
            )));
        }
        if bytes < ss {
            return Err(OpenError::Failed(format!(
                "{name}: `{p}` has {bytes} bytes, less than one {sector_size}-byte sector; give it a size: {}",
                how_to_create(path)
            )));
        }
        let tail = bytes % ss;
        if tail != 0 {
            log::warn!(
                "block: {name}: `{p}` is {bytes} bytes, not a whole number of {sector_size}-byte sectors: the last {tail} bytes are not used"
            );
        }
        let info = BlockInfo {
            sector_size,
            sectors: bytes / ss,
            read_only: !writable,
            max_request_bytes: MAX_REQUEST_BYTES,
            max_in_flight: MAX_IN_FLIGHT,
            cache: CacheMode::Volatile,
        };
        let disk = FileDisk {
            file,
            name: name.to_string(),
            path: path.to_path_buf(),
            info,
            block_device,
            read_only_why,
            done: VecDeque::new(),
            stats: BlockStats::default(),
            flush_failed: None,
            registered: false,
        };
        Ok(disk)
    }

    /// What the disk is, for the runtime's boot-log line (which adds the name, the size, the
    /// cache mode and "read-only"): `file /path, flushed with fdatasync`.
    fn summary(&self) -> String {
        let kind = if self.block_device {
            "block device"
        } else {
            "file"
        };
        let mut s = format!("{kind} {}", self.path.display());
        if let Some(why) = self.read_only_why {
            s.push_str(&format!(" (read-only: {why})"));
        }
        s.push_str(", flushed with fdatasync");
        s
    }

    /// The file or block device.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, what: &str, len: usize, at: u64, e: std::io::Error) -> BlockError {
        if e.raw_os_error() == Some(libc::EIO) {
            log::warn!(
                "block: {}: I/O error on {} of {len} bytes at byte {at} of `{}`",
                self.name,
                what,
                self.path.display()
            );
            return BlockError::Io;
        }
        let why = if e.kind() == ErrorKind::UnexpectedEof {
            "the file is shorter than when it was opened (was it truncated?)".to_string()
        } else {
            e.to_string()
        };
        BlockError::Device(format!(
            "{what} of {len} bytes at byte {at} of `{}`: {why}",
            self.path.display()
        ))
    }

    fn run(&mut self, req: Request) -> Result<Vec<u8>, BlockError> {
        let ss = u64::from(self.info.sector_size);
        match req {
            Request::Read { sector, mut buf } => {
                self.info.check(sector, buf.len(), false)?;
                let at = sector * ss;
                match self.file.read_exact_at(&mut buf, at) {
                    Ok(()) => {
                        self.stats.reads += 1;
                        self.stats.bytes_read += buf.len() as u64;
                        Ok(buf)
                    }
                    Err(e) => Err(self.io_error("read", buf.len(), at, e)),
                }
            }
            Request::Write { sector, buf } => {
                self.info.check(sector, buf.len(), true)?;
                let at = sector * ss;
                match self.file.write_all_at(&buf, at) {
                    Ok(()) => {
                        self.stats.writes += 1;
                        self.stats.bytes_written += buf.len() as u64;
                        Ok(buf)
                    }
                    Err(e) => Err(self.io_error("write", buf.len(), at, e)),
                }
            }
            Request::Flush if self.info.read_only => Err(BlockError::ReadOnly),
            Request::Flush => {
                let r = retry_interrupted(|| self.file.sync_data());
                flush_outcome(&mut self.flush_failed, &self.path, r)?;
                self.stats.flushes += 1;
                Ok(Vec::new())
            }
        }
    }
}

/// `f`, again while it is interrupted by a signal.
fn retry_interrupted(mut f: impl FnMut() -> std::io::Result<()>) -> std::io::Result<()> {
    loop {
        match f() {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// The result of a flush whose `fdatasync` returned `r`, given the error of an earlier failed
/// flush (`failed`, updated): once a flush failed, every later one fails with the same message,
/// because the writes it should have made durable may be lost even if `fdatasync` succeeds now.
fn flush_outcome(
    failed: &mut Option<String>,
    path: &Path,
    r: std::io::Result<()>,
) -> Result<(), BlockError> {
    if let Some(why) = failed {
        return Err(BlockError::Device(why.clone()));
    }
    match r {
        Ok(()) => Ok(()),
        Err(e) => {
            let why = format!(
                "fdatasync of `{}` failed ({e}): writes since the last good flush may be lost; every later flush of this disk fails",
                path.display()
            );
            log::error!("block: {why}");
            *failed = Some(why.clone());
            Err(BlockError::Device(why))
        }
    }
}

impl BlockDevice for FileDisk {
    fn info(&self) -> BlockInfo {
        self.info
    }

    fn submit(&mut self, tag: u64, req: Request) -> Submitted {
        if self.done.len() >= self.info.max_in_flight {
            return Submitted::Busy(req);
        }
        let result = self.run(req);
        match &result {
            Ok(_) => {}
            Err(
                BlockError::OutOfRange { .. }
                | BlockError::Misaligned { .. }
                | BlockError::TooLarge { .. }
                | BlockError::ReadOnly,
            ) => self.stats.refused += 1,
            Err(_) => self.stats.failed += 1,
        }
        self.done.push_back(Completion { tag, result });
        Submitted::Queued
    }

    fn complete(&mut self) -> Option<Completion> {
        self.done.pop_front()
    }

    /// Nothing to do: requests complete inside `submit`.
    fn service(&mut self) {}

    fn stats(&self) -> BlockStats {
        self.stats
    }

    fn describe(&self) -> String {
        self.summary()
    }
}

impl Drop for FileDisk {
    fn drop(&mut self) {
        // The locks go with the descriptor.
        if self.registered {
            release(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A file under the temporary directory, removed on drop.
    struct Temp(PathBuf);

    impl Temp {
        fn new(what: &str, bytes: u64) -> Temp {
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "fata-disk-{}-{what}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let f = File::create(&path).unwrap();
            f.set_len(bytes).unwrap();
            Temp(path)
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn args(a: &[&str]) -> Vec<(String, String)> {
        disk_args(a.iter().copied())
    }

    /// Submits `req` and returns its completion, which must be ready at once.
    fn run(d: &mut FileDisk, tag: u64, req: Request) -> Result<Vec<u8>, BlockError> {
        assert_eq!(d.submit(tag, req), Submitted::Queued);
        d.service();
        let c = d.complete().expect("a completion right after submit");
        assert_eq!(c.tag, tag);
        assert!(d.complete().is_none(), "exactly one completion per request");
        c.result
    }

    fn failed(r: Result<FileDisk, OpenError>) -> String {
        match r {
            Err(OpenError::Failed(m)) => m,
            Err(e) => panic!("expected Failed, got {e:?}"),
            Ok(d) => panic!("expected an error, opened {}", d.summary()),
        }
    }

    #[test]
    fn written_sectors_read_back_and_land_in_the_file() {
        let t = Temp::new("roundtrip", 64 * 512);
        let mut d = FileDisk::open("disk0", &t.0, false).unwrap();
        let info = d.info();
        assert_eq!(
            (info.sector_size, info.sectors, info.read_only, info.cache),
            (512, 64, false, CacheMode::Volatile)
        );
        let data: Vec<u8> = (0..2048u32).map(|i| (i * 7 % 251) as u8).collect();
        let back = run(
            &mut d,
            1,
            Request::Write {
                sector: 10,
                buf: data.clone(),
            },
        )
        .unwrap();
        assert_eq!(back, data, "the write hands its buffer back");
        let read = run(
            &mut d,
            2,
            Request::Read {
                sector: 10,
                buf: vec![0; 2048],
            },
        )
        .unwrap();
        assert_eq!(read, data);
        // Sectors around it are untouched, and the bytes are in the file where they belong.
        let file = std::fs::read(&t.0).unwrap();
        assert_eq!(&file[10 * 512..14 * 512], &data[..]);
        assert!(file[..10 * 512].iter().all(|&b| b == 0));
        assert!(file[14 * 512..].iter().all(|&b| b == 0));
        let last = run(
            &mut d,
            3,
            Request::Read {
                sector: 63,
                buf: vec![1; 512],
            },
        )
        .unwrap();
        assert_eq!(last, vec![0; 512]);
        let s = d.stats();
        assert_eq!(
            (s.reads, s.writes, s.bytes_read, s.bytes_written, s.refused),
            (2, 1, 2560, 2048, 0)
        );
    }

    #[test]
    fn a_reopened_disk_sees_what_was_written_and_flushed() {
        let t = Temp::new("flush", 8 * 512);
        {
            let mut d = FileDisk::open("disk0", &t.0, false).unwrap();
            run(
                &mut d,
                1,
                Request::Write {
                    sector: 7,
                    buf: vec![0xab; 512],
                },
            )
            .unwrap();
            assert_eq!(run(&mut d, 2, Request::Flush), Ok(Vec::new()));
            assert_eq!(d.stats().flushes, 1);
        }
        let mut d = FileDisk::open("disk0", &t.0, false).unwrap();
        let read = run(
            &mut d,
            3,
            Request::Read {
                sector: 7,
                buf: vec![0; 512],
            },
        )
        .unwrap();
        assert_eq!(read, vec![0xab; 512]);
    }

    #[test]
    fn bad_requests_complete_once_with_their_error_and_touch_nothing() {
        let t = Temp::new("refused", 16 * 512);
        let mut d = FileDisk::open("disk0", &t.0, false).unwrap();
        let write = |sector, len| Request::Write {
            sector,
            buf: vec![0xff; len],
        };
        assert!(matches!(
            run(&mut d, 1, write(15, 1024)),
            Err(BlockError::OutOfRange {
                sector: 15,
                count: 2,
                capacity: 16
            })
        ));
        assert!(matches!(
            run(&mut d, 2, write(u64::MAX, 512)),
            Err(BlockError::OutOfRange { .. })
        ));
        assert!(matches!(
            run(&mut d, 3, write(0, 100)),
            Err(BlockError::Misaligned { .. })
        ));
        assert!(matches!(
            run(
                &mut d,
                4,
                Request::Read {
                    sector: 0,
                    buf: Vec::new()
                }
            ),
            Err(BlockError::Misaligned { .. })
        ));
        assert!(matches!(
            run(&mut d, 5, write(0, MAX_REQUEST_BYTES + 512)),
            Err(BlockError::TooLarge { .. })
        ));
        assert_eq!(d.stats().refused, 5);
        assert_eq!(d.stats().writes, 0);
        let file = std::fs::read(&t.0).unwrap();
        assert_eq!(file.len(), 16 * 512, "the file did not grow");
        assert!(file.iter().all(|&b| b == 0), "nothing was written");
    }

    #[test]
    fn read_only_disk_refuses_writes_and_flushes_and_keeps_the_file() {
        let t = Temp::new("ro", 4 * 512);
        std::fs::write(&t.0, vec![7u8; 4 * 512]).unwrap();
        let a = args(&[&format!("disk3={}", t.0.display()), "disk3_ro=true"]);
        let mut d = open_named("disk3", &a).unwrap();
        assert!(d.info().read_only);
        assert!(
            d.describe()
                .contains("(read-only: asked for with diskN_ro)")
        );
        assert_eq!(
            run(
                &mut d,
                1,
                Request::Write {
                    sector: 0,
                    buf: vec![0; 512]
                }
            ),
            Err(BlockError::ReadOnly)
        );
        assert_eq!(run(&mut d, 2, Request::Flush), Err(BlockError::ReadOnly));
        let read = run(
            &mut d,
            3,
            Request::Read {
                sector: 3,
                buf: vec![0; 512],
            },
        )
        .unwrap();
        assert_eq!(read, vec![7; 512]);
        assert_eq!(d.stats().refused, 2);
        assert_eq!(std::fs::read(&t.0).unwrap(), vec![7u8; 4 * 512]);
    }

    #[test]
    fn a_file_this_process_cannot_write_opens_read_only() {
        use std::os::unix::fs::PermissionsExt;
        let t = Temp::new("perm", 4 * 512);
        std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(0o444)).unwrap();
        // Root may write anyway: then the disk must be writable.
        let writable = File::options().write(true).open(&t.0).is_ok();
        let d = FileDisk::open("disk0", &t.0, false).unwrap();
        assert_eq!(d.info().read_only, !writable);
        assert_eq!(
            d.describe().contains("not writable by this process"),
            !writable
        );
    }

    #[test]
    fn a_second_open_of_a_disk_in_use_is_refused_until_the_first_is_dropped() {
        let t = Temp::new("lock", 4 * 512);
        let first = FileDisk::open("disk0", &t.0, false).unwrap();
        let e = failed(FileDisk::open("disk1", &t.0, false));
        assert!(e.contains("is in use by another process"), "{e}");
        // A reader is refused while a writer holds it, and a writer while a reader does.
        let e = failed(FileDisk::open("disk1", &t.0, true));
        assert!(e.contains("is in use"), "{e}");
        drop(first);
        let reader = FileDisk::open("disk0", &t.0, true).unwrap();
        let e = failed(FileDisk::open("disk1", &t.0, false));
        assert!(e.contains("is in use"), "{e}");
        drop(reader);
        FileDisk::open("disk0", &t.0, false).unwrap();
    }

    #[test]
    fn qemu_image_locks_keep_a_conflicting_open_out() {
        let t = Temp::new("ofd", 4 * 512);
        // What a QEMU guest with the image read-write holds: permissions read, write and
        // write-unchanged; writes and resizes not shared. No flock: only the record locks can
        // refuse these opens.
        let qemu = File::options().read(true).write(true).open(&t.0).unwrap();
        for byte in [100, 101, 102, 201, 203] {
            sys::ofd_lock(qemu.as_raw_fd(), false, byte, 1).unwrap();
        }
        let e = failed(FileDisk::open("disk0", &t.0, false));
        assert!(e.contains("is in use"), "{e}");
        let e = failed(FileDisk::open("disk0", &t.0, true));
        assert!(e.contains("is in use"), "{e}");
        drop(qemu);
        // A QEMU guest with the image read-only: readers share it, a writer is refused.
        let qemu = File::options().read(true).open(&t.0).unwrap();
        for byte in [100, 201, 203] {
            sys::ofd_lock(qemu.as_raw_fd(), false, byte, 1).unwrap();
        }
        FileDisk::open("disk0", &t.0, true).unwrap();
        let e = failed(FileDisk::open("disk0", &t.0, false));
        assert!(e.contains("is in use"), "{e}");
        drop(qemu);
        FileDisk::open("disk0", &t.0, false).unwrap();
    }

    #[test]
    fn a_disk_is_acquired_once_by_name() {
        let t = Temp::new("once", 4 * 512);
        let a = args(&[&format!("disk4={}", t.0.display())]);
        let d = open_named("disk4", &a).unwrap();
        assert!(matches!(open_named("disk4", &a), Err(OpenError::InUse)));
        drop(d);
        open_named("disk4", &a).unwrap();
    }

    #[test]
    fn empty_and_tiny_files_are_refused_with_how_to_size_them() {
        let t = Temp::new("empty", 0);
        let e = failed(FileDisk::open("disk0", &t.0, false));
        assert!(
            e.contains("is empty (0 bytes)") && e.contains("truncate -s 64M"),
            "{e}"
        );
        let t = Temp::new("tiny", 511);
        let e = failed(FileDisk::open("disk0", &t.0, false));
        assert!(e.contains("less than one 512-byte sector"), "{e}");
    }

    #[test]
    fn a_partial_last_sector_is_left_out() {
        let t = Temp::new("tail", 3 * 512 + 100);
        let mut d = FileDisk::open("disk0", &t.0, false).unwrap();
        assert_eq!(d.info().sectors, 3);
        assert!(matches!(
            run(
                &mut d,
                1,
                Request::Write {
                    sector: 3,
                    buf: vec![1; 512]
                }
            ),
            Err(BlockError::OutOfRange { .. })
        ));
        assert_eq!(std::fs::metadata(&t.0).unwrap().len(), 3 * 512 + 100);
    }

    #[test]
    fn missing_files_directories_and_devices_that_are_not_disks_are_refused() {
        let missing = std::env::temp_dir().join("fata-disk-does-not-exist.img");
        let e = failed(FileDisk::open("disk0", &missing, false));
        assert!(
            e.contains("does not exist") && e.contains("--disk") && e.contains(":64M"),
            "{e}"
        );
        let e = failed(FileDisk::open("disk0", &std::env::temp_dir(), false));
        assert!(e.contains("is a directory"), "{e}");
        let e = failed(FileDisk::open("disk0", Path::new("/dev/null"), false));
        assert!(
            e.contains("neither a regular file nor a block device"),
            "{e}"
        );
    }

    #[test]
    fn unknown_disk_names_say_what_exists_and_how_to_attach_one() {
        let a = args(&["log=debug", "disk0=/a.img", "disk1=/b b.img"]);
        let Err(OpenError::NotFound(m)) = resolve("disk2", &a) else {
            panic!("disk2 must not be found");
        };
        assert!(
            m.contains("disk0 (/a.img), disk1 (/b b.img)")
                && m.contains("disk2=PATH")
                && m.contains("cargo xtask run --target unix --disk PATH"),
            "{m}"
        );
        let Err(OpenError::NotFound(m)) = resolve("service0", &[]) else {
            panic!("service0 is not a disk");
        };
        assert!(
            m.contains("no disks are attached") && m.contains("diskN=PATH"),
            "{m}"
        );
        let Err(OpenError::NotFound(_)) = resolve("disk01", &args(&["disk1=/x"])) else {
            panic!("disk01 is not disk1");
        };
    }

    #[test]
    fn disk_arguments_resolve_and_bad_ones_are_named() {
        let a = args(&["disk0=/a b.img", "disk0_ro=yes", "disk1=/b.img", "x=1"]);
        assert_eq!(
            resolve("disk0", &a).unwrap(),
            DiskArg {
                name: "disk0".into(),
                path: "/a b.img".into(),
                read_only: true
            }
        );
        assert!(!resolve("disk1", &a).unwrap().read_only);
        let twice = args(&["disk0=/a", "disk0=/b"]);
        let Err(OpenError::Failed(m)) = resolve("disk0", &twice) else {
            panic!("a repeated disk must be refused");
        };
        assert!(m.contains("given 2 times") && m.contains("/a, /b"), "{m}");
        let Err(OpenError::Failed(m)) = resolve("disk0", &args(&["disk0=/a", "disk0_ro=maybe"]))
        else {
            panic!("a bad disk0_ro must be refused");
        };
        assert!(m.contains("disk0_ro=maybe: expected true or false"), "{m}");
        let Err(OpenError::Failed(m)) = resolve("disk0", &args(&["disk0="])) else {
            panic!("an empty path must be refused");
        };
        assert!(m.contains("names no file"), "{m}");
    }

    #[test]
    fn only_disk_keys_belong_to_the_platform() {
        for k in ["disk0", "disk1", "disk12", "disk0_ro", "disk7_ro"] {
            assert!(is_disk_key(k), "{k}");
        }
        for k in [
            "disk", "disk01", "diskx", "disks", "disk0x", "disk_ro", "disk0_rw", "xdisk0", "log",
            "disk-1",
        ] {
            assert!(!is_disk_key(k), "{k}");
        }
        assert!(<crate::Unix as fata_hal::Platform>::is_platform_arg(
            "disk3"
        ));
        assert!(!<crate::Unix as fata_hal::Platform>::is_platform_arg(
            "name"
        ));
    }

    #[test]
    fn uncollected_completions_make_submit_busy_and_come_out_in_order() {
        let t = Temp::new("busy", 4 * 512);
        let mut d = FileDisk::open("disk0", &t.0, false).unwrap();
        for tag in 0..MAX_IN_FLIGHT as u64 {
            let r = Request::Read {
                sector: tag % 4,
                buf: vec![0; 512],
            };
            assert_eq!(d.submit(tag, r), Submitted::Queued);
        }
        let r = d.submit(99, Request::Flush);
        assert_eq!(r, Submitted::Busy(Request::Flush));
        for tag in 0..MAX_IN_FLIGHT as u64 {
            let c = d.complete().unwrap();
            assert_eq!(c.tag, tag);
            assert!(c.result.is_ok());
        }
        assert!(d.complete().is_none());
        assert_eq!(d.submit(99, Request::Flush), Submitted::Queued);
    }

    #[test]
    fn a_file_truncated_under_the_disk_gives_an_error_not_a_panic() {
        let t = Temp::new("shrink", 8 * 512);
        let mut d = FileDisk::open("disk0", &t.0, false).unwrap();
        File::options()
            .write(true)
            .open(&t.0)
            .unwrap()
            .set_len(512)
            .unwrap();
        let r = run(
            &mut d,
            1,
            Request::Read {
                sector: 4,
                buf: vec![0; 512],
            },
        );
        match r {
            Err(BlockError::Device(m)) => assert!(m.contains("was it truncated?"), "{m}"),
            other => panic!("expected a device error, got {other:?}"),
        }
        assert_eq!(d.stats().failed, 1);
    }

    #[test]
    fn after_a_failed_flush_every_later_flush_fails() {
        let mut failed = None;
        let p = Path::new("/x.img");
        assert_eq!(flush_outcome(&mut failed, p, Ok(())), Ok(()));
        let e = flush_outcome(
            &mut failed,
            p,
            Err(std::io::Error::from_raw_os_error(libc::EIO)),
        )
        .unwrap_err();
        assert!(
            matches!(&e, BlockError::Device(m) if m.contains("/x.img") && m.contains("may be lost"))
        );
        assert_eq!(flush_outcome(&mut failed, p, Ok(())), Err(e));
    }

    #[test]
    fn describe_says_what_backs_the_disk_and_how_it_flushes() {
        let t = Temp::new("summary", 2048 * 512);
        let d = FileDisk::open("disk0", &t.0, false).unwrap();
        assert_eq!(
            d.describe(),
            format!("file {}, flushed with fdatasync", t.0.display())
        );
        assert_eq!(d.path(), t.0);
    }
}
