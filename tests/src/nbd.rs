//! An NBD server whose disk has a volatile write cache and can lose power, for end-to-end
//! crash tests (STORAGE-NOTES.md §3, item 4: a missing flush survives `kill -9` of QEMU on a
//! raw image, but not a power cut of a disk with a write cache).
//!
//! The server holds a **stable image** (what the media hold) and, in [`Cache::Volatile`]
//! mode, a **volatile cache**: every write is split into 512-byte sector writes that are
//! visible to later reads at once but reach the stable image only on `NBD_CMD_FLUSH` (or a
//! write with `NBD_CMD_FLAG_FUA`, handled as write + flush), or when the cache is over
//! [`NbdConfig::max_pending_bytes`] (the oldest sector writes are then written back, as a real
//! cache evicts). [`NbdServer::power_cut`] stops serving (every connection is shut, the socket
//! removed, so QEMU sees the device die), then lets each pending sector write independently be
//! *dropped*, *applied* or *torn* (a mix of old and new halves, a new prefix over the old
//! suffix, or garbage), applying the survivors in a random order, so a later write to a sector
//! may be lost while an earlier one lands. Sectors with no pending write are never touched.
//! The outcome is a function of the seed and the pending writes (splitmix64, no `rand`).
//! [`Cache::WriteThrough`] applies every write to the stable image at once: the control.
//!
//! Protocol (<https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md>): fixed
//! newstyle handshake (`NO_ZEROES` honoured); options `EXPORT_NAME`, `ABORT`, `LIST`, `INFO`,
//! `GO` (with `NBD_INFO_EXPORT` and, if asked, `NBD_INFO_BLOCK_SIZE` 512/4096/32 MiB); any
//! other option gets `NBD_REP_ERR_UNSUP`. The export is named [`EXPORT_NAME`]; the default
//! export (empty name, what `nbd:unix:PATH` asks for) is the same disk. Transmission: simple
//! replies only; `READ`, `WRITE`, `DISC`, `FLUSH`, `WRITE_ZEROES`, flag `FUA`. Unaligned
//! requests are served by read-modify-write of whole sectors. Errors: a read past the end or
//! with a wrapping `offset + length` → `EINVAL`; a write past the end → `ENOSPC` (wrapping →
//! `EINVAL`); a read longer than [`MAX_PAYLOAD`] → `EINVAL` (nothing allocated); unknown
//! command or flag → `EINVAL`. A write longer than [`MAX_PAYLOAD`], a bad magic, unknown client
//! flags, an option longer than 64 KiB or a truncated stream close the connection. Nothing a
//! client sends makes the server panic or allocate more than [`MAX_PAYLOAD`] per request.
//!
//! Use with QEMU (7.2 here; `qemu-nbd` is not needed):
//!
//! ```no_run
//! use fata_tests::nbd::NbdServer;
//! let image = vec![0u8; 16 << 20]; // 16 MiB, all zero
//! let disk = NbdServer::start(image, 42).unwrap();
//! let qemu_args = [
//!     "-drive".to_string(),
//!     disk.qemu_drive_arg("d0"), // driver=raw,file.driver=nbd,...,id=d0
//!     "-device".to_string(),
//!     "virtio-blk-device,drive=d0".to_string(), // virtio-blk-pci on q35
//! ];
//! // ... boot the guest with `qemu_args` (e.g. `BootOpts::qemu.extra`), let it write ...
//! let after = disk.power_cut(); // stop serving, lose/tear unflushed writes
//! // ... kill QEMU; `disk.stats().last_cut` says what was lost ...
//! let disk = NbdServer::start(after, 43).unwrap(); // the "reboot"
//! # drop(disk); let _ = qemu_args;
//! ```

use crate::rng::Rng;
use std::collections::{HashMap, VecDeque};
use std::io::{self, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The sector size of the cache model: the unit that is dropped, applied or torn.
pub const SECTOR: usize = 512;
/// The export's name (the empty default name is accepted too).
pub const EXPORT_NAME: &str = "fata";
/// The largest read or write payload served (the protocol's default maximum, 32 MiB).
pub const MAX_PAYLOAD: u32 = 1 << 25;
/// The longest option data accepted during the handshake; longer closes the connection.
const MAX_OPTION_LEN: u32 = 64 * 1024;

// Handshake.
const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
const FLAG_NO_ZEROES: u16 = 1 << 1;
const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
const FLAG_C_NO_ZEROES: u32 = 1 << 1;
// Options.
const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_LIST: u32 = 3;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;
// Option replies.
const REP_ACK: u32 = 1;
const REP_SERVER: u32 = 2;
const REP_INFO: u32 = 3;
const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
const REP_ERR_INVALID: u32 = (1 << 31) + 3;
const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
const INFO_EXPORT: u16 = 0;
const INFO_BLOCK_SIZE: u16 = 3;
// Transmission flags.
const TFLAG_HAS_FLAGS: u16 = 1 << 0;
const TFLAG_SEND_FLUSH: u16 = 1 << 2;
const TFLAG_SEND_FUA: u16 = 1 << 3;
const TFLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
const TRANSMISSION_FLAGS: u16 =
    TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_SEND_FUA | TFLAG_SEND_WRITE_ZEROES;
// Requests and replies.
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_WRITE_ZEROES: u16 = 6;
const CMD_FLAG_FUA: u16 = 1 << 0;
const CMD_FLAG_NO_HOLE: u16 = 1 << 1;
// Errors.
const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;

/// Where writes go before a flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Writes wait in a volatile cache until a flush (or FUA, or eviction); a power cut
    /// drops, tears and reorders them.
    Volatile,
    /// Every write reaches the stable image before its reply: nothing to lose (the control).
    WriteThrough,
}

/// How the server's disk behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NbdConfig {
    /// Volatile cache or write-through.
    pub cache: Cache,
    /// Seeds the power cut's choices.
    pub seed: u64,
    /// Per mille of pending sector writes dropped at a power cut.
    pub drop_permille: u16,
    /// Per mille of pending sector writes torn at a power cut (the rest are applied).
    /// `drop_permille + tear_permille` must not exceed 1000.
    pub tear_permille: u16,
    /// When the cache holds more than this, its oldest sector writes are written back.
    pub max_pending_bytes: usize,
    /// A disk that lies: flushes (and FUA) are acknowledged but make nothing stable. For
    /// showing that a test can see a missing flush.
    pub ignore_flush: bool,
}

impl NbdConfig {
    /// A volatile cache: 40% of pending sector writes dropped, 20% torn, 40% applied at a
    /// power cut; up to 256 MiB pending.
    pub fn volatile(seed: u64) -> Self {
        NbdConfig {
            cache: Cache::Volatile,
            seed,
            drop_permille: 400,
            tear_permille: 200,
            max_pending_bytes: 256 << 20,
            ignore_flush: false,
        }
    }

    /// Write-through: every write is stable when acknowledged.
    pub fn write_through() -> Self {
        NbdConfig {
            cache: Cache::WriteThrough,
            ..Self::volatile(0)
        }
    }
}

/// What the last power cut did to the pending sector writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Sector writes pending at the cut (`dropped + applied + torn`).
    pub pending: u64,
    /// Lost.
    pub dropped: u64,
    /// Written whole.
    pub applied: u64,
    /// Written partly, or as garbage.
    pub torn: u64,
}

/// Counters since the server started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NbdStats {
    /// Connections that got the greeting.
    pub connections: u64,
    /// Successful `NBD_CMD_READ`s.
    pub reads: u64,
    /// Successful `NBD_CMD_WRITE`s and `NBD_CMD_WRITE_ZEROES`.
    pub writes: u64,
    /// Bytes those writes covered.
    pub bytes_written: u64,
    /// `NBD_CMD_FLUSH`es, plus writes with FUA (each is a flush too).
    pub flushes: u64,
    /// Writes with `NBD_CMD_FLAG_FUA`.
    pub fua_writes: u64,
    /// Error replies sent (range, length, unknown command or flag).
    pub error_replies: u64,
    /// Sector writes in the volatile cache now.
    pub pending_writes: u64,
    /// Bytes in the volatile cache now (`pending_writes * SECTOR`).
    pub pending_bytes: u64,
    /// Sector writes written back because the cache was full.
    pub evicted: u64,
    /// Connection threads that panicked (a bug: tests should assert 0 after a power cut
    /// or [`NbdServer::stop`], which wait for every connection thread).
    pub handler_panics: u64,
    /// What the power cut did, once there was one.
    pub last_cut: Option<CrashReport>,
}

/// splitmix64: small, deterministic, good enough to pick fates.
#[derive(Clone, Debug)]

/// One sector write waiting in the cache.
struct Pending {
    sector: u64,
    data: Box<[u8]>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Drop,
    Apply,
    Tear,
}

/// The disk model, without any networking. Callers check ranges first.
struct Disk {
    stable: Vec<u8>,
    cache: Cache,
    max_pending_bytes: usize,
    /// Sector writes in arrival order; entry `i` has sequence number `first_seq + i`.
    pending: VecDeque<Pending>,
    first_seq: u64,
    /// The newest pending write of each sector.
    latest: HashMap<u64, u64>,
    evicted: u64,
    /// [`NbdConfig::ignore_flush`].
    ignore_flush: bool,
}

impl Disk {
    fn new(stable: Vec<u8>, cache: Cache, max_pending_bytes: usize) -> Self {
        Disk {
            stable,
            cache,
            max_pending_bytes,
            pending: VecDeque::new(),
            first_seq: 0,
            latest: HashMap::new(),
            evicted: 0,
            ignore_flush: false,
        }
    }

    fn len(&self) -> u64 {
        self.stable.len() as u64
    }

    fn stable_sector(&self, sector: u64) -> &[u8] {
        let at = sector as usize * SECTOR;
        &self.stable[at..at + SECTOR]
    }

    /// What a read of `sector` sees now.
    fn sector_now(&self, sector: u64) -> &[u8] {
        match self.latest.get(&sector) {
            Some(&seq) => &self.pending[(seq - self.first_seq) as usize].data,
            None => self.stable_sector(sector),
        }
    }

    /// Reads `len` bytes at `off` (in range) as a reader sees them.
    fn read(&self, off: u64, len: usize) -> Vec<u8> {
        let start = off as usize;
        let mut out = self.stable[start..start + len].to_vec();
        if self.latest.is_empty() || len == 0 {
            return out;
        }
        let end = start + len;
        for sector in start / SECTOR..end.div_ceil(SECTOR) {
            if let Some(&seq) = self.latest.get(&(sector as u64)) {
                let data = &self.pending[(seq - self.first_seq) as usize].data;
                let lo = (sector * SECTOR).max(start);
                let hi = ((sector + 1) * SECTOR).min(end);
                out[lo - start..hi - start]
                    .copy_from_slice(&data[lo - sector * SECTOR..hi - sector * SECTOR]);
            }
        }
        out
    }

    /// Writes `data` at `off` (in range).
    fn write(&mut self, off: u64, data: &[u8]) {
        let start = off as usize;
        let end = start + data.len();
        if self.cache == Cache::WriteThrough {
            self.stable[start..end].copy_from_slice(data);
            return;
        }
        if data.is_empty() {
            return;
        }
        for sector in start / SECTOR..end.div_ceil(SECTOR) {
            let base = sector * SECTOR;
            let lo = base.max(start);
            let hi = (base + SECTOR).min(end);
            let part = &data[lo - start..hi - start];
            let new: Box<[u8]> = if hi - lo == SECTOR {
                part.into()
            } else {
                let mut s: Box<[u8]> = self.sector_now(sector as u64).into();
                s[lo - base..hi - base].copy_from_slice(part);
                s
            };
            self.push(sector as u64, new);
        }
    }

    /// Writes zeroes over `len` bytes at `off` (in range), a chunk at a time.
    fn write_zeroes(&mut self, off: u64, len: u64) {
        const CHUNK: u64 = 64 * 1024;
        let zeroes = vec![0u8; CHUNK.min(len) as usize];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK);
            self.write(off + done, &zeroes[..n as usize]);
            done += n;
        }
    }

    fn push(&mut self, sector: u64, data: Box<[u8]>) {
        let seq = self.first_seq + self.pending.len() as u64;
        self.pending.push_back(Pending { sector, data });
        self.latest.insert(sector, seq);
        while self.pending.len() * SECTOR > self.max_pending_bytes {
            self.write_back_oldest();
            self.evicted += 1;
        }
    }

    fn write_back_oldest(&mut self) {
        let Some(p) = self.pending.pop_front() else {
            return;
        };
        let seq = self.first_seq;
        self.first_seq += 1;
        if self.latest.get(&p.sector) == Some(&seq) {
            self.latest.remove(&p.sector);
        }
        let at = p.sector as usize * SECTOR;
        self.stable[at..at + SECTOR].copy_from_slice(&p.data);
    }

    /// Makes every pending write stable, in arrival order (unless the disk lies).
    fn flush(&mut self) {
        if self.ignore_flush {
            return;
        }
        while !self.pending.is_empty() {
            self.write_back_oldest();
        }
    }

    /// The power cut: each pending sector write is dropped, applied or torn; survivors land
    /// in a random order. The cache is empty afterwards.
    fn power_cut(&mut self, rng: &mut Rng, drop_permille: u16, tear_permille: u16) -> CrashReport {
        let writes: Vec<Pending> = self.pending.drain(..).collect();
        self.first_seq += writes.len() as u64;
        self.latest.clear();
        let mut report = CrashReport {
            pending: writes.len() as u64,
            ..CrashReport::default()
        };
        let fates: Vec<Fate> = writes
            .iter()
            .map(|_| {
                let r = rng.below(1000);
                if r < u64::from(drop_permille) {
                    report.dropped += 1;
                    Fate::Drop
                } else if r < u64::from(drop_permille) + u64::from(tear_permille) {
                    report.torn += 1;
                    Fate::Tear
                } else {
                    report.applied += 1;
                    Fate::Apply
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..writes.len()).collect();
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        for i in order {
            let w = &writes[i];
            let at = w.sector as usize * SECTOR;
            let old = &mut self.stable[at..at + SECTOR];
            match fates[i] {
                Fate::Drop => {}
                Fate::Apply => old.copy_from_slice(&w.data),
                Fate::Tear => tear(old, &w.data, rng),
            }
        }
        report
    }
}

/// Overwrites `old` with a torn version of `new`.
fn tear(old: &mut [u8], new: &[u8], rng: &mut Rng) {
    let half = SECTOR / 2;
    match rng.below(4) {
        0 => old[..half].copy_from_slice(&new[..half]),
        1 => old[half..].copy_from_slice(&new[half..]),
        2 => {
            let cut = 1 + rng.below(SECTOR as u64 - 1) as usize;
            old[..cut].copy_from_slice(&new[..cut]);
        }
        _ => {
            for chunk in old.chunks_mut(8) {
                let bytes = rng.next_u64().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
        }
    }
}

struct State {
    disk: Disk,
    config: NbdConfig,
    stats: NbdStats,
    /// Set by the power cut (or stop): no command may touch the disk any more.
    dead: bool,
    /// The power cut has happened (the cache has been dropped/applied/torn).
    cut: bool,
}

struct Shared {
    state: Mutex<State>,
    stopping: AtomicBool,
    conns: Mutex<Vec<(UnixStream, JoinHandle<()>)>>,
    handler_panics: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins connection threads that have ended (all of them with `all`, after shutting
    /// their sockets).
    fn reap(&self, all: bool) {
        let done: Vec<(UnixStream, JoinHandle<()>)> = {
            let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            if all {
                conns.drain(..).collect()
            } else {
                let (done, live) = conns.drain(..).partition(|(_, h)| h.is_finished());
                *conns = live;
                done
            }
        };
        for (stream, handle) in done {
            let _ = stream.shutdown(Shutdown::Both);
            if handle.join().is_err() {
                self.handler_panics.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// An NBD server on a Unix socket in a fresh temporary directory, serving one disk from
/// background threads until [`NbdServer::power_cut`], [`NbdServer::stop`] or drop.
pub struct NbdServer {
    shared: Arc<Shared>,
    dir: PathBuf,
    sock: PathBuf,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl NbdServer {
    /// Serves `image` (its length must be a multiple of [`SECTOR`]) with a volatile write
    /// cache whose power cut is seeded by `seed` ([`NbdConfig::volatile`]).
    pub fn start(image: Vec<u8>, seed: u64) -> io::Result<NbdServer> {
        Self::start_with(image, NbdConfig::volatile(seed))
    }

    /// Serves `image` write-through: a power cut loses nothing (the control).
    pub fn start_write_through(image: Vec<u8>) -> io::Result<NbdServer> {
        Self::start_with(image, NbdConfig::write_through())
    }

    /// Serves `image` as `config` says.
    pub fn start_with(image: Vec<u8>, config: NbdConfig) -> io::Result<NbdServer> {
        let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_string());
        if !image.len().is_multiple_of(SECTOR) {
            return Err(invalid("the image length must be a multiple of 512"));
        }
        if u32::from(config.drop_permille) + u32::from(config.tear_permille) > 1000 {
            return Err(invalid("drop_permille + tear_permille exceeds 1000"));
        }
        let dir = fresh_dir()?;
        let sock = dir.join("disk.sock");
        let listener = match UnixListener::bind(&sock).and_then(|l| {
            l.set_nonblocking(true)?;
            Ok(l)
        }) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let mut disk = Disk::new(image, config.cache, config.max_pending_bytes);
        disk.ignore_flush = config.ignore_flush;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                disk,
                config,
                stats: NbdStats::default(),
                dead: false,
                cut: false,
            }),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            handler_panics: AtomicU64::new(0),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("nbd-accept".into())
            .spawn(move || accept_loop(&s, listener))?;
        Ok(NbdServer {
            shared,
            dir,
            sock,
            accept: Mutex::new(Some(accept)),
        })
    }

    /// The Unix socket clients connect to (removed once the server stops).
    pub fn sock_path(&self) -> &Path {
        &self.sock
    }

    /// The value of a QEMU `-drive` option for this disk, with node id `id`:
    /// `driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=SOCK,if=none,id=ID`
    /// (equivalent to `file=nbd:unix:SOCK,format=raw,if=none,id=ID`, but safe for any path).
    /// Attach it with `-device virtio-blk-device,drive=ID` (or `virtio-blk-pci`).
    pub fn qemu_drive_arg(&self, id: &str) -> String {
        let path = self.sock.to_string_lossy().replace(',', ",,");
        format!(
            "driver=raw,file.driver=nbd,file.server.type=unix,file.server.path={path},\
             if=none,id={id}"
        )
    }

    /// Cuts the power: stops serving (no command completes after this; every connection is
    /// shut and the socket removed, so QEMU's requests fail), then drops, applies or tears
    /// each pending sector write (see the module docs) and returns the resulting stable
    /// image (also after [`NbdServer::stop`]). A second call returns the same image. Start a
    /// new server on it to "reboot".
    pub fn power_cut(&self) -> Vec<u8> {
        {
            let mut st = self.shared.lock();
            st.dead = true;
            if !st.cut {
                st.cut = true;
                let State {
                    disk,
                    config,
                    stats,
                    ..
                } = &mut *st;
                let mut rng = Rng(config.seed);
                let report = disk.power_cut(&mut rng, config.drop_permille, config.tear_permille);
                stats.last_cut = Some(report);
            }
        }
        self.stop();
        self.stable_image()
    }

    /// Stops serving without a power cut (the cache keeps its contents; see
    /// [`NbdServer::current_image`]). Waits for every connection thread. Idempotent.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let accept = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = accept
            && h.join().is_err()
        {
            self.shared.handler_panics.fetch_add(1, Ordering::Relaxed);
        }
        self.shared.lock().dead = true;
        self.shared.reap(true);
        let _ = std::fs::remove_file(&self.sock);
    }

    /// The stable image now (what a power cut at this instant would keep for sure).
    pub fn stable_image(&self) -> Vec<u8> {
        self.shared.lock().disk.stable.clone()
    }

    /// The image as a reader sees it now (stable image plus the cache).
    pub fn current_image(&self) -> Vec<u8> {
        let st = self.shared.lock();
        st.disk.read(0, st.disk.stable.len())
    }

    /// The counters.
    pub fn stats(&self) -> NbdStats {
        let st = self.shared.lock();
        let mut s = st.stats.clone();
        s.pending_writes = st.disk.pending.len() as u64;
        s.pending_bytes = s.pending_writes * SECTOR as u64;
        s.evicted = st.disk.evicted;
        s.handler_panics = self.shared.handler_panics.load(Ordering::Relaxed);
        s
    }
}

impl Drop for NbdServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new private directory for the socket (short enough for `sun_path`).
fn fresh_dir() -> io::Result<PathBuf> {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut base = std::env::temp_dir();
    if base.as_os_str().len() > 60 {
        base = PathBuf::from("/tmp");
    }
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("fata-nbd-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: UnixListener) {
    while !shared.stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                shared.reap(false);
                let Ok(keep) = stream.try_clone() else {
                    continue;
                };
                let s = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("nbd-conn".into())
                    .spawn(move || serve(&s, stream));
                if let Ok(h) = spawned {
                    let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
                    conns.push((keep, h));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Serves one connection; any protocol violation or I/O error ends it.
fn serve(shared: &Shared, stream: UnixStream) {
    let _ = stream.set_nonblocking(false);
    let _ = serve_conn(shared, &stream);
    let _ = stream.shutdown(Shutdown::Both);
}

fn violation(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

fn option_reply(w: &mut impl Write, opt: u32, typ: u32, data: &[u8]) -> io::Result<()> {
    let mut m = Vec::with_capacity(20 + data.len());
    m.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
    m.extend_from_slice(&opt.to_be_bytes());
    m.extend_from_slice(&typ.to_be_bytes());
    m.extend_from_slice(&(data.len() as u32).to_be_bytes());
    m.extend_from_slice(data);
    w.write_all(&m)
}

/// Is `name` this server's export?
fn known_export(name: &[u8]) -> bool {
    name.is_empty() || name == EXPORT_NAME.as_bytes()
}

/// Parses `NBD_OPT_INFO`/`NBD_OPT_GO` data: (export name, information requests).
fn parse_info_request(data: &[u8]) -> Option<(&[u8], Vec<u16>)> {
    let name_len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let name = data.get(4..4usize.checked_add(name_len)?)?;
    let rest = &data[4 + name_len..];
    let n = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let reqs = &rest[2..];
    if reqs.len() != n * 2 {
        return None;
    }
    let reqs = reqs
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    Some((name, reqs))
}

fn serve_conn(shared: &Shared, stream: &UnixStream) -> io::Result<()> {
    let size = {
        let mut st = shared.lock();
        if st.dead {
            return Ok(());
        }
        st.stats.connections += 1;
        st.disk.len()
    };
    let mut rd = BufReader::new(stream.try_clone()?);
    let mut wr = stream;
    let mut greeting = Vec::with_capacity(18);
    greeting.extend_from_slice(&NBDMAGIC.to_be_bytes());
    greeting.extend_from_slice(&IHAVEOPT.to_be_bytes());
    greeting.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    wr.write_all(&greeting)?;
    let cflags = read_u32(&mut rd)?;
    if cflags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0
        || cflags & FLAG_C_FIXED_NEWSTYLE == 0
    {
        return Err(violation("client flags"));
    }
    let no_zeroes = cflags & FLAG_C_NO_ZEROES != 0;

    // Option haggling, until EXPORT_NAME or a successful GO.
    loop {
        if read_u64(&mut rd)? != IHAVEOPT {
            return Err(violation("option magic"));
        }
        let opt = read_u32(&mut rd)?;
        let len = read_u32(&mut rd)?;
        if len > MAX_OPTION_LEN {
            return Err(violation("option too long"));
        }
        let mut data = vec![0u8; len as usize];
        rd.read_exact(&mut data)?;
        match opt {
            OPT_EXPORT_NAME => {
                if !known_export(&data) {
                    return Err(violation("unknown export"));
                }
                let mut m = Vec::with_capacity(134);
                m.extend_from_slice(&size.to_be_bytes());
                m.extend_from_slice(&TRANSMISSION_FLAGS.to_be_bytes());
                if !no_zeroes {
                    m.extend_from_slice(&[0; 124]);
                }
                wr.write_all(&m)?;
                break;
            }
            OPT_ABORT => {
                let _ = option_reply(&mut wr, opt, REP_ACK, &[]);
                return Ok(());
            }
            OPT_LIST => {
                if len != 0 {
                    option_reply(&mut wr, opt, REP_ERR_INVALID, b"NBD_OPT_LIST takes no data")?;
                    continue;
                }
                let mut m = (EXPORT_NAME.len() as u32).to_be_bytes().to_vec();
                m.extend_from_slice(EXPORT_NAME.as_bytes());
                option_reply(&mut wr, opt, REP_SERVER, &m)?;
                option_reply(&mut wr, opt, REP_ACK, &[])?;
            }
            OPT_INFO | OPT_GO => {
                let Some((name, reqs)) = parse_info_request(&data) else {
                    option_reply(&mut wr, opt, REP_ERR_INVALID, b"malformed request")?;
                    continue;
                };
                if !known_export(name) {
                    option_reply(&mut wr, opt, REP_ERR_UNKNOWN, b"no such export")?;
                    continue;
                }
                let mut export = INFO_EXPORT.to_be_bytes().to_vec();
                export.extend_from_slice(&size.to_be_bytes());
                export.extend_from_slice(&TRANSMISSION_FLAGS.to_be_bytes());
                option_reply(&mut wr, opt, REP_INFO, &export)?;
                if reqs.contains(&INFO_BLOCK_SIZE) {
                    let mut b = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
                    b.extend_from_slice(&(SECTOR as u32).to_be_bytes());
                    b.extend_from_slice(&4096u32.to_be_bytes());
                    b.extend_from_slice(&MAX_PAYLOAD.to_be_bytes());
                    option_reply(&mut wr, opt, REP_INFO, &b)?;
                }
                option_reply(&mut wr, opt, REP_ACK, &[])?;
                if opt == OPT_GO {
                    break;
                }
            }
            _ => option_reply(&mut wr, opt, REP_ERR_UNSUP, b"unsupported option")?,
        }
    }
    transmission(shared, &mut rd, &mut wr, size)
}

/// Checks `off..off + len` against the export: `Err(errno)` if out of range.
fn check_range(off: u64, len: u64, size: u64, past_end: u32) -> Result<(), u32> {
    match off.checked_add(len) {
        None => Err(EINVAL),
        Some(end) if end > size => Err(past_end),
        Some(_) => Ok(()),
    }
}

fn simple_reply(w: &mut impl Write, cookie: u64, result: Result<Vec<u8>, u32>) -> io::Result<()> {
    let (err, data) = match result {
        Ok(d) => (0, d),
        Err(e) => (e, Vec::new()),
    };
    let mut m = Vec::with_capacity(16 + data.len());
    m.extend_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    m.extend_from_slice(&err.to_be_bytes());
    m.extend_from_slice(&cookie.to_be_bytes());
    m.extend_from_slice(&data);
    w.write_all(&m)
}

fn transmission(
    shared: &Shared,
    rd: &mut impl Read,
    wr: &mut impl Write,
    size: u64,
) -> io::Result<()> {
    loop {
        let mut h = [0u8; 28];
        rd.read_exact(&mut h)?;
        let field = |r: std::ops::Range<usize>| h[r].iter().fold(0u64, |a, &b| a << 8 | b as u64);
        if field(0..4) as u32 != REQUEST_MAGIC {
            return Err(violation("request magic"));
        }
        let flags = field(4..6) as u16;
        let typ = field(6..8) as u16;
        let cookie = field(8..16);
        let off = field(16..24);
        let len = field(24..28) as u32;
        let payload = if typ == CMD_WRITE {
            if len > MAX_PAYLOAD {
                return Err(violation("write payload too long"));
            }
            let mut p = vec![0u8; len as usize];
            rd.read_exact(&mut p)?;
            p
        } else {
            Vec::new()
        };
        if typ == CMD_DISC {
            return Ok(());
        }
        let result = {
            let mut st = shared.lock();
            if st.dead {
                return Ok(());
            }
            let r = command(&mut st, flags, typ, off, len, &payload, size);
            if r.is_err() {
                st.stats.error_replies += 1;
            }
            r
        };
        simple_reply(wr, cookie, result)?;
    }
}

/// Runs one command against the disk.
fn command(
    st: &mut State,
    flags: u16,
    typ: u16,
    off: u64,
    len: u32,
    payload: &[u8],
    size: u64,
) -> Result<Vec<u8>, u32> {
    let allowed = match typ {
        CMD_WRITE_ZEROES => CMD_FLAG_FUA | CMD_FLAG_NO_HOLE,
        _ => CMD_FLAG_FUA,
    };
    if flags & !allowed != 0 {
        return Err(EINVAL);
    }
    let fua = flags & CMD_FLAG_FUA != 0;
    match typ {
        CMD_READ => {
            if len > MAX_PAYLOAD {
                return Err(EINVAL);
            }
            check_range(off, len.into(), size, EINVAL)?;
            st.stats.reads += 1;
            Ok(st.disk.read(off, len as usize))
        }
        CMD_WRITE | CMD_WRITE_ZEROES => {
            check_range(off, len.into(), size, ENOSPC)?;
            if typ == CMD_WRITE {
                st.disk.write(off, payload);
            } else {
                st.disk.write_zeroes(off, len.into());
            }
            st.stats.writes += 1;
            st.stats.bytes_written += u64::from(len);
            if fua {
                st.stats.fua_writes += 1;
                st.stats.flushes += 1;
                st.disk.flush();
            }
            Ok(Vec::new())
        }
        CMD_FLUSH => {
            st.stats.flushes += 1;
            st.disk.flush();
            Ok(Vec::new())
        }
        _ => Err(EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    /// A minimal NBD client, written from the protocol document rather than from the server.
    struct Client {
        s: UnixStream,
        cookie: u64,
    }

    /// Connects, negotiates fixed newstyle + NO_ZEROES, returns the stream at option haggling.
    fn hello(path: &Path) -> UnixStream {
        let mut s = UnixStream::connect(path).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut g = [0u8; 18];
        s.read_exact(&mut g).expect("greeting");
        assert_eq!(&g[..8], b"NBDMAGIC");
        assert_eq!(&g[8..16], b"IHAVEOPT");
        let hs = u16::from_be_bytes([g[16], g[17]]);
        assert_eq!(hs & 3, 3, "FIXED_NEWSTYLE | NO_ZEROES");
        s.write_all(&3u32.to_be_bytes()).unwrap();
        s
    }

    fn send_option(s: &mut UnixStream, opt: u32, data: &[u8]) {
        let mut m = b"IHAVEOPT".to_vec();
        m.extend_from_slice(&opt.to_be_bytes());
        m.extend_from_slice(&(data.len() as u32).to_be_bytes());
        m.extend_from_slice(data);
        s.write_all(&m).unwrap();
    }

    /// One option reply: (option, type, data).
    fn option_reply_of(s: &mut UnixStream) -> (u32, u32, Vec<u8>) {
        let mut h = [0u8; 20];
        s.read_exact(&mut h).expect("option reply");
        assert_eq!(
            u64::from_be_bytes(h[..8].try_into().unwrap()),
            0x3e889045565a9
        );
        let opt = u32::from_be_bytes(h[8..12].try_into().unwrap());
        let typ = u32::from_be_bytes(h[12..16].try_into().unwrap());
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap());
        let mut d = vec![0u8; len as usize];
        s.read_exact(&mut d).unwrap();
        (opt, typ, d)
    }

    fn go_data(name: &str, infos: &[u16]) -> Vec<u8> {
        let mut d = (name.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(name.as_bytes());
        d.extend_from_slice(&(infos.len() as u16).to_be_bytes());
        for i in infos {
            d.extend_from_slice(&i.to_be_bytes());
        }
        d
    }

    /// Sends GO/INFO; on success returns (size, transmission flags, block sizes if sent).
    fn info_or_go(
        s: &mut UnixStream,
        opt: u32,
        name: &str,
        infos: &[u16],
    ) -> Result<(u64, u16, Option<[u32; 3]>), u32> {
        send_option(s, opt, &go_data(name, infos));
        let mut export = None;
        let mut sizes = None;
        loop {
            let (o, typ, d) = option_reply_of(s);
            assert_eq!(o, opt);
            match typ {
                3 => match u16::from_be_bytes([d[0], d[1]]) {
                    0 => {
                        assert_eq!(d.len(), 12);
                        export = Some((
                            u64::from_be_bytes(d[2..10].try_into().unwrap()),
                            u16::from_be_bytes([d[10], d[11]]),
                        ));
                    }
                    3 => {
                        assert_eq!(d.len(), 14);
                        let w = |i: usize| u32::from_be_bytes(d[i..i + 4].try_into().unwrap());
                        sizes = Some([w(2), w(6), w(10)]);
                    }
                    _ => {}
                },
                1 => {
                    let (size, flags) = export.expect("NBD_INFO_EXPORT before ACK");
                    return Ok((size, flags, sizes));
                }
                e => return Err(e),
            }
        }
    }

    impl Client {
        fn connect(path: &Path) -> Client {
            let mut s = hello(path);
            let (_, flags, _) = info_or_go(&mut s, 7, "", &[]).expect("GO");
            assert_eq!(flags & 0b1101, 0b1101, "HAS_FLAGS|SEND_FLUSH|SEND_FUA");
            Client { s, cookie: 1 }
        }

        /// Sends one request; returns (error, read data if any and no error).
        fn request(&mut self, flags: u16, typ: u16, off: u64, len: u32, data: &[u8]) -> u32 {
            self.cookie += 1;
            let mut m = 0x25609513u32.to_be_bytes().to_vec();
            m.extend_from_slice(&flags.to_be_bytes());
            m.extend_from_slice(&typ.to_be_bytes());
            m.extend_from_slice(&self.cookie.to_be_bytes());
            m.extend_from_slice(&off.to_be_bytes());
            m.extend_from_slice(&len.to_be_bytes());
            m.extend_from_slice(data);
            self.s.write_all(&m).unwrap();
            let mut r = [0u8; 16];
            self.s.read_exact(&mut r).expect("reply");
            assert_eq!(u32::from_be_bytes(r[..4].try_into().unwrap()), 0x67446698);
            assert_eq!(
                u64::from_be_bytes(r[8..16].try_into().unwrap()),
                self.cookie,
                "cookie echoed"
            );
            u32::from_be_bytes(r[4..8].try_into().unwrap())
        }

        fn read(&mut self, off: u64, len: u32) -> Result<Vec<u8>, u32> {
            match self.request(0, 0, off, len, &[]) {
                0 => {
                    let mut d = vec![0u8; len as usize];
                    self.s.read_exact(&mut d).expect("read data");
                    Ok(d)
                }
                e => Err(e),
            }
        }

        fn write(&mut self, off: u64, data: &[u8]) -> Result<(), u32> {
            match self.request(0, 1, off, data.len() as u32, data) {
                0 => Ok(()),
                e => Err(e),
            }
        }

        fn write_fua(&mut self, off: u64, data: &[u8]) -> Result<(), u32> {
            match self.request(1, 1, off, data.len() as u32, data) {
                0 => Ok(()),
                e => Err(e),
            }
        }

        fn flush(&mut self) -> Result<(), u32> {
            match self.request(0, 3, 0, 0, &[]) {
                0 => Ok(()),
                e => Err(e),
            }
        }
    }

    /// The server has closed `s`: EOF (or a reset), not a timeout.
    #[track_caller]
    fn assert_closed(s: &mut UnixStream) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 64];
        loop {
            match s.read(&mut b) {
                Ok(0) => return,
                Ok(_) => continue, // replies to earlier requests
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("connection still open ({e})"),
            }
        }
    }

    /// After a test's hostile traffic: the server still serves, and no thread panicked.
    #[track_caller]
    fn assert_healthy(srv: &NbdServer) {
        let mut c = Client::connect(srv.sock_path());
        c.write(0, &[7u8; 512]).unwrap();
        assert_eq!(c.read(0, 512).unwrap(), vec![7u8; 512]);
        srv.stop();
        assert_eq!(srv.stats().handler_panics, 0);
    }

    fn pattern(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 9) as u8)
            .collect()
    }

    #[test]
    fn nbd_round_trip() {
        let image = pattern(1, MIB);
        let srv = NbdServer::start(image.clone(), 1).unwrap();
        let mut c = Client::connect(srv.sock_path());
        assert_eq!(c.read(0, MIB as u32).unwrap(), image, "initial image");
        let data = pattern(9, 8192);
        c.write(4096, &data).unwrap();
        assert_eq!(c.read(4096, 8192).unwrap(), data);
        // Unaligned read-modify-write inside and across sectors.
        c.write(10_000, b"hello, sector boundary").unwrap();
        let mut want = image.clone();
        want[4096..4096 + 8192].copy_from_slice(&data);
        want[10_000..10_022].copy_from_slice(b"hello, sector boundary");
        c.write(MIB as u64 - 3, b"end").unwrap();
        want[MIB - 3..].copy_from_slice(b"end");
        assert_eq!(c.read(0, MIB as u32).unwrap(), want);
        assert_eq!(srv.current_image(), want);
        assert_eq!(srv.stable_image(), image, "nothing flushed yet");
        c.flush().unwrap();
        assert_eq!(srv.stable_image(), want, "flushed");
        let st = srv.stats();
        assert_eq!((st.writes, st.flushes, st.pending_writes), (3, 1, 0));
        assert_eq!(st.connections, 1);
        // Write zeroes, then a clean disconnect.
        assert_eq!(c.request(0, 6, 0, 2048, &[]), 0);
        want[..2048].fill(0);
        assert_eq!(c.read(0, 4096).unwrap(), want[..4096]);
        c.request_disc();
        assert_closed(&mut c.s);
        assert_eq!(srv.power_cut().len(), MIB);
        assert_eq!(srv.stats().handler_panics, 0);
    }

    impl Client {
        fn request_disc(&mut self) {
            let mut m = 0x25609513u32.to_be_bytes().to_vec();
            m.extend_from_slice(&0u16.to_be_bytes());
            m.extend_from_slice(&2u16.to_be_bytes());
            m.extend_from_slice(&[0; 20]);
            self.s.write_all(&m).unwrap();
        }
    }

    #[test]
    fn nbd_unflushed_writes_are_visible_but_not_stable() {
        let srv = NbdServer::start(vec![0; 64 * 1024], 5).unwrap();
        let mut c = Client::connect(srv.sock_path());
        c.write(512, &[0xab; 1024]).unwrap();
        // Visible on this connection and on another one.
        assert_eq!(c.read(512, 1024).unwrap(), vec![0xab; 1024]);
        let mut c2 = Client::connect(srv.sock_path());
        assert_eq!(c2.read(0, 2048).unwrap()[512..1536], [0xab; 1024]);
        assert_eq!(srv.stable_image(), vec![0; 64 * 1024]);
        let st = srv.stats();
        assert_eq!((st.pending_writes, st.pending_bytes), (2, 1024));
        // A flush from the *other* connection makes them stable.
        c2.flush().unwrap();
        assert_eq!(srv.stable_image()[512..1536], [0xab; 1024]);
        assert_eq!(srv.stats().pending_writes, 0);
        // FUA: stable on acknowledgement.
        c.write_fua(8192, &[0xcd; 512]).unwrap();
        assert_eq!(srv.stable_image()[8192..8704], [0xcd; 512]);
        assert_eq!(srv.stats().fua_writes, 1);
    }

    /// Sector outcome after a power cut: old, new or neither (torn).
    #[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
    enum Outcome {
        Old,
        New,
        Torn,
    }

    fn outcome(got: &[u8], old: &[u8], new: &[u8]) -> Outcome {
        if got == new {
            Outcome::New
        } else if got == old {
            Outcome::Old
        } else {
            Outcome::Torn
        }
    }

    #[test]
    fn nbd_flushed_writes_survive_every_power_cut() {
        let size = 256 * 1024;
        let base = pattern(3, size);
        for seed in 0..100u64 {
            let srv = NbdServer::start(base.clone(), seed).unwrap();
            let mut c = Client::connect(srv.sock_path());
            let a = pattern(0x40 ^ seed as u8, 64 * 1024);
            c.write(0, &a).unwrap(); // sectors 0..128
            c.flush().unwrap();
            let b = pattern(0x80 ^ seed as u8, 32 * 1024);
            c.write(32 * 1024, &b).unwrap(); // rewrites 64..128 unflushed
            c.write(128 * 1024, &b).unwrap(); // new sectors 256..320 unflushed
            let img = srv.power_cut();
            let cut = srv.stats().last_cut.unwrap();
            assert_eq!(cut.pending, 128, "seed {seed}");
            assert_eq!(cut.pending, cut.dropped + cut.applied + cut.torn);
            assert_eq!(img[..32 * 1024], a[..32 * 1024], "flushed, seed {seed}");
            // Sectors rewritten after the flush (32..64 KiB) may hold A, B or a tear; sectors
            // never written are exactly as they were.
            assert_eq!(
                img[160 * 1024..],
                base[160 * 1024..],
                "untouched, seed {seed}"
            );
            assert_eq!(img[64 * 1024..128 * 1024], base[64 * 1024..128 * 1024]);
            // The connection is gone.
            assert_closed(&mut c.s);
            assert!(
                UnixStream::connect(srv.sock_path()).is_err(),
                "socket removed"
            );
            assert_eq!(srv.power_cut(), img, "a second cut changes nothing");
        }
    }

    #[test]
    fn nbd_unflushed_writes_are_dropped_applied_or_torn_across_seeds() {
        use std::collections::HashSet;
        let size = 64 * 1024;
        let old = vec![0x11u8; size];
        let new = vec![0x22u8; 4096];
        // Outcomes of a lone one-sector write, and of the 8 sectors of a 4 KiB write.
        let mut lone = HashSet::new();
        let (mut whole, mut partial, mut none) = (0, 0, 0);
        let mut images = HashSet::new();
        for seed in 0..100u64 {
            let srv = NbdServer::start(old.clone(), seed).unwrap();
            let mut c = Client::connect(srv.sock_path());
            c.write(0, &new[..SECTOR]).unwrap();
            c.write(8192, &new).unwrap(); // never flushed
            let img = srv.power_cut();
            let sector = |s: usize| outcome(&img[s * 512..(s + 1) * 512], &old[..512], &new[..512]);
            lone.insert(sector(0));
            let outs: Vec<Outcome> = (16..24).map(sector).collect();
            match outs.iter().filter(|&&o| o == Outcome::New).count() {
                8 => whole += 1,
                0 => none += 1,
                _ => partial += 1,
            }
            let cut = srv.stats().last_cut.unwrap();
            assert_eq!(cut.pending, 9, "seed {seed}");
            assert_eq!(cut.pending, cut.dropped + cut.applied + cut.torn);
            let torn = (0..24).filter(|&s| sector(s) == Outcome::Torn).count() as u64;
            assert!(
                torn <= cut.torn,
                "seed {seed}: {torn} torn sectors, {cut:?}"
            );
            let kept = (0..24).filter(|&s| sector(s) == Outcome::New).count() as u64;
            assert!(kept <= cut.applied + cut.torn, "seed {seed}");
            assert_eq!(img[512..8192], old[512..8192], "untouched, seed {seed}");
            assert_eq!(img[12288..], old[12288..], "untouched, seed {seed}");
            images.insert(img);
        }
        let all = HashSet::from([Outcome::Old, Outcome::New, Outcome::Torn]);
        assert_eq!(
            lone, all,
            "a lone sector write is sometimes lost, kept, torn"
        );
        assert!(
            partial > 50,
            "multi-sector writes mostly land in part: {partial}"
        );
        assert!(whole + none < 50, "{whole} whole, {none} lost entirely");
        assert!(images.len() > 90, "{} distinct images", images.len());
    }

    #[test]
    fn nbd_power_cut_reorders_writes_to_one_sector() {
        use std::collections::HashSet;
        let mut finals = HashSet::new();
        for seed in 0..200u64 {
            let srv = NbdServer::start_with(
                vec![0; 4096],
                NbdConfig {
                    tear_permille: 0,
                    ..NbdConfig::volatile(seed)
                },
            )
            .unwrap();
            let mut c = Client::connect(srv.sock_path());
            c.write(1024, &[1; 512]).unwrap();
            c.write(1024, &[2; 512]).unwrap();
            let img = srv.power_cut();
            let s = &img[1024..1536];
            assert!(s.iter().all(|&b| b == s[0]), "no tearing configured");
            finals.insert(s[0]);
        }
        // Older-over-newer (1) happens: the later write lost while the earlier landed.
        assert_eq!(finals, HashSet::from([0, 1, 2]));
    }

    #[test]
    fn nbd_power_cut_is_deterministic_per_seed() {
        let run = |seed| {
            let srv = NbdServer::start(vec![0; 64 * 1024], seed).unwrap();
            let mut c = Client::connect(srv.sock_path());
            for i in 0..16u64 {
                c.write(i * 2048, &pattern(i as u8, 1536)).unwrap();
            }
            srv.power_cut()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn nbd_write_through_loses_nothing() {
        for seed in 0..20 {
            let srv = NbdServer::start_with(
                vec![0; 64 * 1024],
                NbdConfig {
                    seed,
                    ..NbdConfig::write_through()
                },
            )
            .unwrap();
            let mut c = Client::connect(srv.sock_path());
            c.write(0, &pattern(5, 32 * 1024)).unwrap();
            assert_eq!(srv.stable_image()[..32 * 1024], pattern(5, 32 * 1024));
            let img = srv.power_cut();
            assert_eq!(img[..32 * 1024], pattern(5, 32 * 1024));
            assert_eq!(srv.stats().last_cut.unwrap().pending, 0);
        }
    }

    #[test]
    fn nbd_full_cache_writes_back_oldest() {
        let srv = NbdServer::start_with(
            vec![0; 64 * 1024],
            NbdConfig {
                max_pending_bytes: 4 * SECTOR,
                drop_permille: 1000,
                tear_permille: 0,
                ..NbdConfig::volatile(1)
            },
        )
        .unwrap();
        let mut c = Client::connect(srv.sock_path());
        c.write(0, &[9; 10 * SECTOR]).unwrap();
        assert_eq!(srv.stats().evicted, 6);
        assert_eq!(srv.stats().pending_writes, 4);
        let img = srv.power_cut();
        assert_eq!(img[..6 * SECTOR], [9; 6 * SECTOR], "written back");
        assert_eq!(img[6 * SECTOR..10 * SECTOR], [0; 4 * SECTOR], "all dropped");
    }

    #[test]
    fn nbd_restart_on_the_cut_image() {
        let srv = NbdServer::start(vec![0; 8192], 3).unwrap();
        let mut c = Client::connect(srv.sock_path());
        c.write(0, &[5; 512]).unwrap();
        c.flush().unwrap();
        c.write(512, &[6; 512]).unwrap();
        let img = srv.power_cut();
        let srv2 = NbdServer::start(img.clone(), 4).unwrap();
        assert_ne!(srv.sock_path(), srv2.sock_path());
        let mut c2 = Client::connect(srv2.sock_path());
        assert_eq!(c2.read(0, 8192).unwrap(), img);
        assert_eq!(img[..512], [5; 512]);
    }

    #[test]
    fn nbd_rejects_bad_config() {
        assert!(NbdServer::start(vec![0; 1000], 0).is_err());
        let bad = NbdConfig {
            drop_permille: 800,
            tear_permille: 300,
            ..NbdConfig::volatile(0)
        };
        assert!(NbdServer::start_with(vec![0; 512], bad).is_err());
    }

    #[test]
    fn nbd_option_haggling() {
        let srv = NbdServer::start(vec![0; 3 * MIB], 0).unwrap();
        let mut s = hello(srv.sock_path());
        // Unknown options: STARTTLS, STRUCTURED_REPLY, EXTENDED_HEADERS, something new.
        for opt in [5u32, 8, 11, 0xdead_beef] {
            send_option(&mut s, opt, b"whatever data");
            let (o, typ, _) = option_reply_of(&mut s);
            assert_eq!((o, typ), (opt, (1 << 31) + 1), "ERR_UNSUP for {opt}");
        }
        // LIST: with data → ERR_INVALID; without → our export, then ACK.
        send_option(&mut s, 3, b"x");
        assert_eq!(option_reply_of(&mut s).1, (1 << 31) + 3);
        send_option(&mut s, 3, &[]);
        let (_, typ, d) = option_reply_of(&mut s);
        assert_eq!(typ, 2);
        assert_eq!(d[..4], 4u32.to_be_bytes());
        assert_eq!(&d[4..], b"fata");
        assert_eq!(option_reply_of(&mut s).1, 1);
        // INFO on an unknown export, then on a malformed request (name longer than the data).
        assert_eq!(info_or_go(&mut s, 6, "nope", &[]), Err((1 << 31) + 6));
        let mut bad = go_data("fata", &[]);
        bad[3] = 200;
        send_option(&mut s, 6, &bad);
        assert_eq!(option_reply_of(&mut s).1, (1 << 31) + 3);
        // Wrong number of info requests.
        let mut bad = go_data("fata", &[3]);
        bad[9] = 5;
        send_option(&mut s, 7, &bad);
        assert_eq!(option_reply_of(&mut s).1, (1 << 31) + 3);
        // INFO with block sizes, by name; then GO by the default name.
        let (size, flags, sizes) = info_or_go(&mut s, 6, "fata", &[3, 1, 2]).unwrap();
        assert_eq!(size, 3 * MIB as u64);
        assert_eq!(flags & 1, 1);
        assert_eq!(sizes, Some([512, 4096, 1 << 25]));
        let (_, _, sizes) = info_or_go(&mut s, 7, "", &[]).unwrap();
        assert_eq!(sizes, None, "block sizes only when asked");
        let mut c = Client { s, cookie: 0 };
        c.write(0, &[1; 512]).unwrap();
        assert_eq!(c.read(0, 512).unwrap(), [1; 512]);
        assert_healthy(&srv);
    }

    #[test]
    fn nbd_export_name_and_abort() {
        let srv = NbdServer::start(vec![0; MIB], 0).unwrap();
        // EXPORT_NAME without NO_ZEROES: size, flags, 124 zero bytes.
        let mut s = UnixStream::connect(srv.sock_path()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut g = [0u8; 18];
        s.read_exact(&mut g).unwrap();
        s.write_all(&1u32.to_be_bytes()).unwrap();
        send_option(&mut s, 1, b"fata");
        let mut r = [0u8; 134];
        s.read_exact(&mut r).unwrap();
        assert_eq!(r[..8], (MIB as u64).to_be_bytes());
        assert_eq!(r[10..], [0; 124]);
        let mut c = Client { s, cookie: 0 };
        assert_eq!(c.read(0, 512).unwrap(), [0; 512]);
        // EXPORT_NAME with NO_ZEROES: no padding; the next bytes are a reply.
        let mut s = hello(srv.sock_path());
        send_option(&mut s, 1, b"");
        let mut r = [0u8; 10];
        s.read_exact(&mut r).unwrap();
        let mut c = Client { s, cookie: 0 };
        assert_eq!(c.read(0, 512).unwrap(), [0; 512]);
        // EXPORT_NAME of an unknown export: the server must hang up.
        let mut s = hello(srv.sock_path());
        send_option(&mut s, 1, b"other");
        assert_closed(&mut s);
        // ABORT: ACK, then closed.
        let mut s = hello(srv.sock_path());
        send_option(&mut s, 2, &[]);
        assert_eq!(option_reply_of(&mut s), (2, 1, Vec::new()));
        assert_closed(&mut s);
        assert_healthy(&srv);
    }

    #[test]
    fn nbd_hostile_handshakes_close_the_connection() {
        let srv = NbdServer::start(vec![0; MIB], 0).unwrap();
        // Unknown client flags; no FIXED_NEWSTYLE.
        for flags in [0x8000_0000u32, 0x4, 0] {
            let mut s = UnixStream::connect(srv.sock_path()).unwrap();
            let mut g = [0u8; 18];
            s.read_exact(&mut g).unwrap();
            s.write_all(&flags.to_be_bytes()).unwrap();
            assert_closed(&mut s);
        }
        // Bad option magic.
        let mut s = hello(srv.sock_path());
        s.write_all(b"IHAVEOPX\0\0\0\x07\0\0\0\0").unwrap();
        assert_closed(&mut s);
        // An option claiming 4 GiB of data: refused, nothing allocated.
        let mut s = hello(srv.sock_path());
        s.write_all(b"IHAVEOPT\0\0\0\x07\xff\xff\xff\xff").unwrap();
        assert_closed(&mut s);
        // A truncated option, then hang-up.
        let mut s = hello(srv.sock_path());
        s.write_all(b"IHAVEOPT\0\0\0\x07\0\0\0\x10abc").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_closed(&mut s);
        // Garbage instead of client flags, and instant hang-ups.
        let mut s = UnixStream::connect(srv.sock_path()).unwrap();
        s.write_all(&[0xff; 3]).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_closed(&mut s);
        for _ in 0..10 {
            drop(UnixStream::connect(srv.sock_path()).unwrap());
        }
        assert_healthy(&srv);
    }

    #[test]
    fn nbd_hostile_requests_get_errors_not_panics() {
        let size = MIB as u64;
        let srv = NbdServer::start(vec![0; MIB], 0).unwrap();
        let mut c = Client::connect(srv.sock_path());
        // Out of range reads: EINVAL, connection usable.
        assert_eq!(c.read(size, 512), Err(22));
        assert_eq!(c.read(size - 511, 512), Err(22));
        assert_eq!(c.read(u64::MAX - 10, 512), Err(22), "offset + len wraps");
        assert_eq!(
            c.read(0, u32::MAX),
            Err(22),
            "4 GiB read: refused, no allocation"
        );
        assert_eq!(c.read(0, MAX_PAYLOAD + 1), Err(22));
        // Out of range writes: the payload is consumed, ENOSPC (past the end) or EINVAL.
        assert_eq!(c.write(size, &[1; 512]), Err(28));
        assert_eq!(c.write(size - 256, &[1; 512]), Err(28));
        assert_eq!(c.write(u64::MAX - 100, &[1; 512]), Err(22), "wraps");
        assert_eq!(
            c.request(0, 6, u64::MAX - 1, 4096, &[]),
            22,
            "write zeroes wraps"
        );
        assert_eq!(
            c.request(0, 6, 0, u32::MAX, &[]),
            28,
            "write zeroes past end"
        );
        // Unknown commands and flags.
        assert_eq!(c.request(0, 4, 0, 512, &[]), 22, "TRIM not offered");
        assert_eq!(c.request(0, 7, 0, 512, &[]), 22, "BLOCK_STATUS not offered");
        assert_eq!(c.request(0, 0xffff, 0, 512, &[]), 22);
        assert_eq!(c.request(0x8000, 3, 0, 0, &[]), 22, "unknown flag");
        // Zero-length requests are harmless.
        assert_eq!(c.request(0, 1, 0, 0, &[]), 0);
        assert_eq!(c.read(size, 0), Ok(Vec::new()));
        // Nothing above changed the disk; the connection still works.
        assert_eq!(c.read(size - 512, 512).unwrap(), [0; 512]);
        assert_eq!(srv.current_image(), vec![0; MIB]);
        assert_eq!(srv.stats().error_replies, 14);
        // A 4 GiB write: the server hangs up rather than read or allocate it.
        let mut m = 0x25609513u32.to_be_bytes().to_vec();
        m.extend_from_slice(&[0, 0, 0, 1]);
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&u32::MAX.to_be_bytes());
        c.s.write_all(&m).unwrap();
        assert_closed(&mut c.s);
        // Bad request magic.
        let mut c = Client::connect(srv.sock_path());
        c.s.write_all(&[0x25, 0x60, 0x95, 0x14]).unwrap();
        c.s.write_all(&[0; 24]).unwrap();
        assert_closed(&mut c.s);
        // A write whose payload never fully arrives.
        let mut c = Client::connect(srv.sock_path());
        let mut m = 0x25609513u32.to_be_bytes().to_vec();
        m.extend_from_slice(&[0, 0, 0, 1]);
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&4096u32.to_be_bytes());
        m.extend_from_slice(&[0xee; 100]);
        c.s.write_all(&m).unwrap();
        c.s.shutdown(Shutdown::Write).unwrap();
        assert_closed(&mut c.s);
        assert_eq!(
            srv.current_image(),
            vec![0; MIB],
            "partial write not applied"
        );
        assert_healthy(&srv);
    }

    #[test]
    fn nbd_power_cut_after_stop_still_loses_the_cache() {
        let srv = NbdServer::start_with(
            vec![0; 8192],
            NbdConfig {
                drop_permille: 1000,
                tear_permille: 0,
                ..NbdConfig::volatile(0)
            },
        )
        .unwrap();
        let mut c = Client::connect(srv.sock_path());
        c.write(0, &[4; 1024]).unwrap();
        srv.stop();
        assert_eq!(
            srv.current_image()[..1024],
            [4; 1024],
            "stop keeps the cache"
        );
        assert_eq!(srv.power_cut(), vec![0; 8192], "the cut drops it");
        assert_eq!(srv.stats().last_cut.unwrap().dropped, 2);
    }

    #[test]
    fn nbd_power_cut_kills_live_connections() {
        let srv = NbdServer::start(vec![0; MIB], 0).unwrap();
        let mut idle = hello(srv.sock_path()); // mid-handshake
        let mut c = Client::connect(srv.sock_path());
        c.write(0, &[1; 4096]).unwrap();
        srv.power_cut();
        assert_closed(&mut idle);
        assert_closed(&mut c.s);
        assert!(UnixStream::connect(srv.sock_path()).is_err());
        assert_eq!(srv.stats().handler_panics, 0);
    }

    /// The disk model alone, without networking.
    #[test]
    fn nbd_disk_model_tears_only_pending_sectors() {
        let mut d = Disk::new(vec![0xaa; 8 * SECTOR], Cache::Volatile, usize::MAX);
        d.write(SECTOR as u64, &[0xbb; SECTOR]);
        d.write(3 * SECTOR as u64 + 10, &[0xcc; 20]); // partial: RMW of sector 3
        assert_eq!(d.read(3 * SECTOR as u64, SECTOR)[10..30], [0xcc; 20]);
        assert_eq!(d.read(3 * SECTOR as u64, SECTOR)[..10], [0xaa; 10]);
        let mut rng = Rng(1);
        let r = d.power_cut(&mut rng, 0, 1000);
        assert_eq!((r.pending, r.torn), (2, 2));
        for s in [0, 2, 4, 5, 6, 7] {
            assert_eq!(d.stable_sector(s), [0xaa; SECTOR], "sector {s}");
        }
        assert!(d.pending.is_empty() && d.latest.is_empty());
        // After the cut, new writes index correctly (sequence numbers moved on).
        d.write(0, &[1; SECTOR]);
        assert_eq!(d.read(0, SECTOR), [1; SECTOR]);
        d.flush();
        assert_eq!(d.stable_sector(0), [1; SECTOR]);
    }

    /// A QEMU monitor (HMP on stdio), killed on drop.
    struct Monitor {
        child: std::process::Child,
        stdin: std::process::ChildStdin,
        out: Arc<Mutex<String>>,
        err: Arc<Mutex<String>>,
    }

    impl Monitor {
        /// Starts `qemu-system-x86_64 -machine none` with `drive`; `None` if QEMU is missing.
        fn start(drive: &str) -> Option<Monitor> {
            use std::process::{Command, Stdio};
            let spawned = Command::new(xtask::qemu::QEMU)
                .args(["-machine", "none", "-nodefaults", "-display", "none"])
                .args(["-monitor", "stdio", "-drive", drive])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn();
            let mut child = match spawned {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
                Err(e) => panic!("starting {}: {e}", xtask::qemu::QEMU),
            };
            let stdin = child.stdin.take().unwrap();
            let pump = |mut r: Box<dyn Read + Send>| {
                let buf = Arc::new(Mutex::new(String::new()));
                let b = buf.clone();
                std::thread::spawn(move || {
                    let mut chunk = [0u8; 4096];
                    while let Ok(n @ 1..) = r.read(&mut chunk) {
                        b.lock()
                            .unwrap()
                            .push_str(&String::from_utf8_lossy(&chunk[..n]));
                    }
                });
                buf
            };
            let out = pump(Box::new(child.stdout.take().unwrap()));
            let err = pump(Box::new(child.stderr.take().unwrap()));
            let mut m = Monitor {
                child,
                stdin,
                out,
                err,
            };
            m.wait_prompts(1);
            Some(m)
        }

        fn wait_prompts(&mut self, n: usize) {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while self.out.lock().unwrap().matches("(qemu) ").count() < n {
                assert!(
                    std::time::Instant::now() < deadline
                        && self.child.try_wait().unwrap().is_none(),
                    "QEMU monitor stalled or exited; stdout:\n{}\nstderr:\n{}",
                    self.out.lock().unwrap(),
                    self.err.lock().unwrap()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        /// Runs one HMP command; returns what it printed (with the monitor's line editing).
        fn run(&mut self, cmd: &str) -> String {
            let (prompts, from) = {
                let o = self.out.lock().unwrap();
                (o.matches("(qemu) ").count(), o.len())
            };
            writeln!(self.stdin, "{cmd}").unwrap();
            self.wait_prompts(prompts + 1);
            self.out.lock().unwrap()[from..].to_string()
        }
    }

    impl Drop for Monitor {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Real QEMU as the client: its NBD driver negotiates with the server (through
    /// [`NbdServer::qemu_drive_arg`]), and the monitor's `qemu-io` command reads patterns,
    /// writes, flushes and writes with FUA; then a power cut while QEMU runs loses some
    /// unflushed writes, keeps every flushed one, and QEMU's next I/O fails. Skipped (with a
    /// message) when QEMU is not installed.
    #[test]
    fn nbd_qemu_client_reads_writes_flushes_and_sees_the_power_cut() {
        let mut image = vec![0u8; MIB];
        for (i, chunk) in image.chunks_mut(4096).enumerate() {
            chunk.fill(0x5a ^ i as u8);
        }
        let srv = NbdServer::start(image.clone(), 11).unwrap();
        let Some(mut qemu) = Monitor::start(&srv.qemu_drive_arg("d0")) else {
            eprintln!("skipping: {} is not installed", xtask::qemu::QEMU);
            return;
        };
        let ok = |out: &str, what: &str| {
            assert!(out.contains(what), "expected `{what}` in:\n{out}");
            assert!(!out.contains("failed"), "{out}");
        };
        ok(
            &qemu.run(r#"qemu-io d0 "read -P 0x5a 0 4096""#),
            "read 4096/4096",
        );
        ok(
            &qemu.run(r#"qemu-io d0 "read -P 0x4a 65536 4096""#),
            "read 4096/4096",
        );
        let wrong = qemu.run(r#"qemu-io d0 "read -P 0x00 0 4096""#);
        assert!(wrong.contains("Pattern verification failed"), "{wrong}");
        // A write waits in the cache; a flush makes it stable.
        ok(
            &qemu.run(r#"qemu-io d0 "write -P 0xa5 8192 8192""#),
            "wrote 8192/8192",
        );
        assert_eq!(srv.stats().pending_writes, 16);
        assert_eq!(srv.stable_image()[8192..16384], image[8192..16384]);
        assert_eq!(srv.current_image()[8192..16384], [0xa5; 8192]);
        ok(
            &qemu.run(r#"qemu-io d0 "read -P 0xa5 8192 8192""#),
            "read 8192/8192",
        );
        ok(&qemu.run(r#"qemu-io d0 "flush""#), "");
        assert_eq!(srv.stats().pending_writes, 0);
        assert_eq!(srv.stable_image()[8192..16384], [0xa5; 8192]);
        // FUA: stable on completion.
        ok(
            &qemu.run(r#"qemu-io d0 "write -f -P 0x77 16384 4096""#),
            "wrote 4096/4096",
        );
        assert_eq!(srv.stats().fua_writes, 1);
        assert_eq!(srv.stable_image()[16384..20480], [0x77; 4096]);
        // 64 KiB never flushed, then the power cut.
        ok(
            &qemu.run(r#"qemu-io d0 "write -P 0x33 65536 65536""#),
            "wrote 65536/65536",
        );
        assert_eq!(srv.stats().pending_writes, 128);
        let after = srv.power_cut();
        let cut = srv.stats().last_cut.unwrap();
        assert_eq!(cut.pending, 128);
        assert!(cut.applied < 128, "{cut:?}");
        assert_eq!(after[8192..16384], [0xa5; 8192], "flushed");
        assert_eq!(after[16384..20480], [0x77; 4096], "FUA");
        assert_eq!(after[..8192], image[..8192]);
        assert_eq!(after[20480..65536], image[20480..65536]);
        assert_eq!(after[131072..], image[131072..], "never written");
        let lost = (65536..131072)
            .step_by(SECTOR)
            .filter(|&at| after[at..at + SECTOR] != [0x33; SECTOR])
            .count();
        assert_eq!(lost as u64, cut.dropped + cut.torn, "{cut:?}");
        // QEMU's device is dead.
        let dead = qemu.run(r#"qemu-io d0 "read 0 512""#);
        assert!(dead.contains("Input/output error"), "{dead}");
        drop(qemu);
        assert_eq!(srv.stats().handler_panics, 0);
    }
}
