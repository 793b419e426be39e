//! The store: open (format or recover), reads, the committer (group commit, compaction).

use crate::format::{
    self, HEADER_LEN, Header, OP_OVERHEAD, SB_SECTORS, Slot, Superblock, chain_seed, decode_op,
    encode_op, epoch_of, record_bytes,
};
use crate::{Error, MAX_KEY, MAX_RECORD, MAX_VALUE, MIN_DISK};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::{Rc, Weak};
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::poll_fn;
use core::ops::Bound;
use core::task::{Poll, Waker};
use fata_hal::block::{BlockInfo, CacheMode, Disk};

/// Largest read or write the store makes at once (scan windows, record chunks): enough for
/// sequential speed, small enough for a guest of a few MiB.
const IO_WINDOW: usize = 256 << 10;

/// How a disk is opened.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    /// Format the disk if it is blank (all zeros at the start). A disk holding anything else
    /// is never formatted.
    pub format: bool,
    /// The store's identity if it is formatted now: pass random bits (records carry it, so
    /// data written by a value that imitates a record cannot pass for one).
    pub store_id: u64,
}

/// One write of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Sets a key.
    Put(Vec<u8>, Vec<u8>),
    /// Removes a key (not an error if it is absent).
    Delete(Vec<u8>),
}

/// A key found by [`Store::list`], with the length of its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// Its value's length in bytes.
    pub value_len: usize,
}

/// Figures about a store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Keys stored.
    pub keys: u64,
    /// Bytes of the live operations (keys, values, framing).
    pub live_bytes: u64,
    /// Bytes of the log in use (live and dead).
    pub log_bytes: u64,
    /// Bytes of one region: the most the log can hold.
    pub region_bytes: u64,
    /// Generation (compactions since the format, plus one).
    pub generation: u64,
    /// Records replayed at open.
    pub recovered_records: u64,
    /// Commits written (each one write and one flush).
    pub commits: u64,
    /// Batches acknowledged (several can share a commit).
    pub batches: u64,
    /// Flushes sent to the device.
    pub flushes: u64,
    /// Compactions completed.
    pub compactions: u64,
    /// Bytes written to the device.
    pub bytes_written: u64,
    /// Values read back that failed their checksum.
    pub corrupt_reads: u64,
    /// Longest value this disk takes.
    pub max_value: usize,
    /// Whether writes are refused after a failed write or flush.
    pub poisoned: bool,
    /// Whether the disk is read-only.
    pub read_only: bool,
    /// The device's sector size.
    pub sector_size: u32,
    /// What a completed write means on this device.
    pub cache: Option<CacheMode>,
}

/// Where an operation lies on the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    /// Byte offset of the operation from the start of the disk.
    off: u64,
    /// Its encoded length.
    len: u32,
}

/// The end of the log.
#[derive(Clone, Copy, Debug)]
struct Log {
    sb: Superblock,
    /// Bytes used in the region (a whole number of sectors).
    tail: u64,
    /// Sequence number of the next record.
    seq: u64,
    /// Header checksum of the last record.
    prev: u32,
}

/// Fixed figures of an open store.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    info: BlockInfo,
    ss: u64,
    /// Bytes per read or write request.
    io: usize,
    region_bytes: u64,
    /// Largest record payload.
    max_payload: usize,
}

impl Geometry {
    fn new(info: BlockInfo, region_sectors: u64) -> Geometry {
        let ss = u64::from(info.sector_size);
        let region_bytes = region_sectors * ss;
        let io = info
            .max_request_bytes
            .min(IO_WINDOW)
            .max(info.sector_size as usize)
            / info.sector_size as usize
            * info.sector_size as usize;
        // A record takes at most a quarter of a region, so compaction always leaves room.
        let max_payload = (MAX_RECORD as u64)
            .min(region_bytes / 4)
            .saturating_sub(HEADER_LEN as u64) as usize;
        Geometry {
            info,
            ss,
            io,
            region_bytes,
            max_payload,
        }
    }

    fn max_value(&self) -> usize {
        MAX_VALUE.min(self.max_payload.saturating_sub(4 + OP_OVERHEAD + MAX_KEY))
    }
}

/// The outcome of a batch, handed from the committer to the waiting writer.
#[derive(Default)]
struct Slot1 {
    result: Option<Result<(), Error>>,
    waker: Option<Waker>,
}

type Ticket = Rc<RefCell<Slot1>>;

fn resolve(t: &Ticket, r: Result<(), Error>) {
    let mut s = t.borrow_mut();
    s.result = Some(r);
    if let Some(w) = s.waker.take() {
        w.wake();
    }
}

async fn wait(t: &Ticket) -> Result<(), Error> {
    poll_fn(|cx| {
        let mut s = t.borrow_mut();
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await
}

/// A batch waiting for the committer: its operations encoded, and their count.
struct Pending {
    ops: Vec<u8>,
    count: u32,
    ticket: Ticket,
}

struct State {
    index: BTreeMap<Vec<u8>, Loc>,
    log: Log,
    live_bytes: u64,
    queue: VecDeque<Pending>,
    compactions: Vec<Ticket>,
    committer: Option<Waker>,
    /// Reads in flight per region, and the committer waiting for a region to be free of them.
    readers: [u32; 2],
    reader_waiter: Option<Waker>,
    poisoned: bool,
    closed: bool,
    stats: Stats,
}

struct Inner<D> {
    disk: D,
    geo: Geometry,
    state: RefCell<State>,
}

/// A handle on an open store. Clone it freely; every clone is the same store.
pub struct Store<D: Disk> {
    inner: Rc<Inner<D>>,
}

impl<D: Disk> Clone for Store<D> {
    fn clone(&self) -> Self {
        Store {
            inner: self.inner.clone(),
        }
    }
}

/// A handle that does not keep the store open (for figures read now and then, such as the
/// runtime's metrics): [`WeakStore::stats`] is `None` once every [`Store`] and the committer
/// are gone.
pub struct WeakStore<D: Disk> {
    inner: Weak<Inner<D>>,
}

impl<D: Disk> WeakStore<D> {
    /// The store's figures, if it is still open.
    pub fn stats(&self) -> Option<Stats> {
        self.inner.upgrade().map(|inner| Store { inner }.stats())
    }
}

/// The task that writes: run [`Committer::run`] on the executor for as long as the store is
/// used (the runtime does this in `fata::kv::open`).
pub struct Committer<D: Disk> {
    inner: Rc<Inner<D>>,
}

/// Reads `len` bytes at byte offset `off`, in requests of at most `geo.io` bytes.
async fn read_at<D: Disk>(
    disk: &D,
    geo: &Geometry,
    off: u64,
    len: usize,
) -> Result<Vec<u8>, Error> {
    let first = off / geo.ss;
    let end = (off + len as u64).div_ceil(geo.ss);
    let mut out = Vec::with_capacity(((end - first) * geo.ss) as usize);
    let mut s = first;
    while s < end {
        let n = (((end - s) * geo.ss) as usize).min(geo.io);
        let buf = disk.read(s, vec![0; n]).await?;
        out.extend_from_slice(&buf);
        s += n as u64 / geo.ss;
    }
    let skip = (off - first * geo.ss) as usize;
    out.drain(..skip);
    out.truncate(len);
    Ok(out)
}

/// Writes `data` (whole sectors) from `sector` on, in requests of at most `geo.io` bytes.
async fn write_at<D: Disk>(
    disk: &D,
    geo: &Geometry,
    sector: u64,
    data: &[u8],
) -> Result<(), Error> {
    for (i, chunk) in data.chunks(geo.io).enumerate() {
        let at = sector + (i * geo.io) as u64 / geo.ss;
        disk.write(at, chunk.to_vec()).await?;
    }
    Ok(())
}

/// A sector-aligned window over the disk for sequential scans.
struct Scan<'a, D> {
    disk: &'a D,
    geo: Geometry,
    /// Byte offset of `buf`.
    at: u64,
    buf: Vec<u8>,
}

impl<D: Disk> Scan<'_, D> {
    /// `len` bytes at byte offset `off` (within the disk), read through the window.
    async fn bytes(&mut self, off: u64, len: usize) -> Result<&[u8], Error> {
        let end = off + len as u64;
        if off < self.at || end > self.at + self.buf.len() as u64 {
            let start = off / self.geo.ss * self.geo.ss;
            let want = ((end - start) as usize).max(self.geo.io);
            let limit = self.geo.info.bytes() - start;
            let n = (want as u64).min(limit).div_ceil(self.geo.ss) * self.geo.ss;
            self.buf = read_at(self.disk, &self.geo, start, n as usize).await?;
            self.at = start;
        }
        let from = (off - self.at) as usize;
        Ok(&self.buf[from..from + len])
    }
}

/// One operation of a record: key, value (`None`: a deletion), offset in the payload, length.
type RecordOp<'a> = (&'a [u8], Option<&'a [u8]>, usize, usize);

/// The operations of a record's payload, or `None` if it does not decode exactly.
fn parse_payload(p: &[u8]) -> Option<Vec<RecordOp<'_>>> {
    if p.len() < 4 {
        return None;
    }
    let count = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize;
    let mut at = 4;
    let mut ops = Vec::with_capacity(count.min(p.len() / OP_OVERHEAD));
    for _ in 0..count {
        let op = decode_op(&p[at..])?;
        ops.push((op.key, op.value, at, op.len));
        at += op.len;
    }
    (at == p.len()).then_some(ops)
}

/// Is the disk's start all zeros (a blank disk)? `skip_slots`: ignore the superblock sectors
/// (an interrupted format left something there).
async fn blank<D: Disk>(disk: &D, geo: &Geometry, skip_slots: bool) -> Result<bool, Error> {
    let window = geo.info.bytes().min(1 << 20);
    let from = if skip_slots { SB_SECTORS * geo.ss } else { 0 };
    let mut off = from;
    while off < window {
        let n = ((window - off) as usize).min(geo.io);
        if read_at(disk, geo, off, n).await?.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        off += n as u64;
    }
    Ok(true)
}

impl<D: Disk> Store<D> {
    /// Opens the store on `disk`: recovers it, or formats a blank disk when `opts.format` is
    /// set. Writes nothing unless it formats. Returns the store and its committer, which must
    /// be run (spawned) for writes to complete.
    pub async fn open(disk: D, opts: OpenOptions) -> Result<(Store<D>, Committer<D>), Error> {
        let info = disk.info();
        let ss = info.sector_size;
        if !ss.is_power_of_two()
            || !(512..=65536).contains(&ss)
            || info.max_request_bytes < ss as usize
        {
            return Err(Error::Incompatible(alloc::format!(
                "sector size {ss} (or largest request {}) is not usable",
                info.max_request_bytes
            )));
        }
        let min = MIN_DISK.max(u64::from(ss) * 64);
        if info.bytes() < min {
            return Err(Error::TooSmall {
                bytes: info.bytes(),
                min,
            });
        }
        if info.sectors.checked_mul(u64::from(ss)).is_none() {
            // (A device that claims more bytes than 64 bits count: every offset would wrap.)
            return Err(Error::Incompatible(alloc::format!(
                "{} sectors of {ss} bytes is more than a 64-bit offset reaches",
                info.sectors
            )));
        }
        let probe = Geometry::new(info, (info.sectors - SB_SECTORS) / 2);
        let slots = read_at(&disk, &probe, 0, 2 * ss as usize).await?;
        let decode = |b: &[u8]| {
            Superblock::decode(b).map_err(|v| {
                Error::Incompatible(alloc::format!(
                    "format version {v}, this build reads {}",
                    format::VERSION
                ))
            })
        };
        let a = decode(&slots[..ss as usize])?;
        let b = decode(&slots[ss as usize..])?;
        let newest = [a, b]
            .into_iter()
            .filter_map(|s| match s {
                Slot::Valid(sb) => Some(sb),
                _ => None,
            })
            .max_by_key(|sb| sb.generation);
        let sb = match newest {
            Some(sb) => sb,
            None if a == Slot::Foreign && b == Slot::Foreign => {
                if !blank(&disk, &probe, false).await? {
                    return Err(Error::Foreign);
                }
                if !opts.format {
                    return Err(Error::NotFormatted);
                }
                Self::format(&disk, &probe, opts.store_id).await?
            }
            None => {
                // Our magic with a bad checksum in both slots: a format cut short (nothing
                // else on the disk) may be redone; anything else is damage.
                if opts.format && blank(&disk, &probe, true).await? {
                    Self::format(&disk, &probe, opts.store_id).await?
                } else {
                    return Err(Error::Corrupt {
                        sector: 0,
                        what: "both superblocks",
                    });
                }
            }
        };
        if sb.sector_size != ss {
            return Err(Error::Incompatible(alloc::format!(
                "formatted with {}-byte sectors, the device has {ss}",
                sb.sector_size
            )));
        }
        if sb.disk_sectors > info.sectors {
            return Err(Error::Incompatible(alloc::format!(
                "formatted on {} sectors, the device has only {}",
                sb.disk_sectors,
                info.sectors
            )));
        }
        let geo = Geometry::new(info, sb.region_sectors);
        let (index, log, live_bytes, records) = recover(&disk, &geo, sb).await?;
        let stats = Stats {
            recovered_records: records,
            region_bytes: geo.region_bytes,
            max_value: geo.max_value(),
            read_only: info.read_only,
            sector_size: ss,
            cache: Some(info.cache),
            ..Stats::default()
        };
        let inner = Rc::new(Inner {
            disk,
            geo,
            state: RefCell::new(State {
                index,
                log,
                live_bytes,
                queue: VecDeque::new(),
                compactions: Vec::new(),
                committer: None,
                readers: [0; 2],
                reader_waiter: None,
                poisoned: false,
                closed: false,
                stats,
            }),
        });
        Ok((
            Store {
                inner: inner.clone(),
            },
            Committer { inner },
        ))
    }

    async fn format(disk: &D, geo: &Geometry, store_id: u64) -> Result<Superblock, Error> {
        if geo.info.read_only {
            return Err(Error::ReadOnly);
        }
        let generation = 1;
        let sb = Superblock {
            sector_size: geo.info.sector_size,
            store_id,
            generation,
            epoch: epoch_of(store_id, generation, 0, 0, 0),
            region_sectors: (geo.info.sectors - SB_SECTORS) / 2,
            disk_sectors: geo.info.sectors,
        };
        let b = sb.encode();
        disk.write(generation % 2, b.clone()).await?;
        disk.write(1 - generation % 2, b).await?;
        disk.flush().await?;
        Ok(sb)
    }

    /// The value of `key`, or `None`. A value that fails its checksum is an error.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let geo = self.inner.geo;
        let (loc, region) = {
            let mut st = self.inner.state.borrow_mut();
            let Some(&loc) = st.index.get(key) else {
                return Ok(None);
            };
            let region = region_of(&geo, loc.off);
            st.readers[region] += 1;
            (loc, region)
        };
        let _guard = Reading {
            state: &self.inner.state,
            region,
        };
        let bytes = read_at(&self.inner.disk, &geo, loc.off, loc.len as usize).await?;
        match decode_op(&bytes) {
            Some(op) if op.key == key && op.value.is_some() && op.len == bytes.len() => {
                Ok(op.value.map(<[u8]>::to_vec))
            }
            _ => {
                self.inner.state.borrow_mut().stats.corrupt_reads += 1;
                Err(Error::Corrupt {
                    sector: loc.off / geo.ss,
                    what: "a value",
                })
            }
        }
    }

    /// Whether `key` has a value (from the index: no disk read).
    pub fn contains(&self, key: &[u8]) -> bool {
        self.inner.state.borrow().index.contains_key(key)
    }

    /// Sets `key` to `value`; returns once it is durable.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.commit(&[(key, Some(value))]).await
    }

    /// Removes `key` (whether or not it exists); returns once that is durable.
    pub async fn delete(&self, key: &[u8]) -> Result<(), Error> {
        self.commit(&[(key, None)]).await
    }

    /// Applies every write of `writes` atomically: after a crash either all are there or none.
    /// Returns once they are durable.
    pub async fn batch(&self, writes: &[Write]) -> Result<(), Error> {
        let ops: Vec<(&[u8], Option<&[u8]>)> = writes
            .iter()
            .map(|w| match w {
                Write::Put(k, v) => (k.as_slice(), Some(v.as_slice())),
                Write::Delete(k) => (k.as_slice(), None),
            })
            .collect();
        self.commit(&ops).await
    }

    /// Checks the limits, queues the batch for the committer and waits for its outcome.
    async fn commit(&self, ops: &[(&[u8], Option<&[u8]>)]) -> Result<(), Error> {
        let geo = self.inner.geo;
        let mut bytes = 0usize;
        for (k, v) in ops {
            if k.is_empty() || k.len() > MAX_KEY {
                return Err(Error::BadKey { len: k.len() });
            }
            let vl = v.map_or(0, <[u8]>::len);
            if vl > geo.max_value() {
                return Err(Error::ValueTooLarge {
                    len: vl,
                    max: geo.max_value(),
                });
            }
            bytes = bytes.saturating_add(format::op_len(k.len(), vl));
        }
        if bytes.saturating_add(4) > geo.max_payload || ops.len() > u32::MAX as usize {
            return Err(Error::BatchTooLarge {
                bytes,
                max: geo.max_payload - 4,
            });
        }
        let ticket = {
            let mut st = self.inner.state.borrow_mut();
            if let Some(e) = writable(&geo, &st) {
                return Err(e);
            }
            let mut enc = Vec::with_capacity(bytes);
            for (k, v) in ops {
                encode_op(&mut enc, k, *v);
            }
            let ticket = Ticket::default();
            st.queue.push_back(Pending {
                ops: enc,
                count: ops.len() as u32,
                ticket: ticket.clone(),
            });
            if let Some(w) = st.committer.take() {
                w.wake();
            }
            ticket
        };
        wait(&ticket).await
    }

    /// Up to `limit` keys that start with `prefix` and sort after `after` (all from the first,
    /// when `after` is `None`), in byte order, with their value lengths.
    pub fn list(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Vec<Entry> {
        let st = self.inner.state.borrow();
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        st.index
            .range::<[u8], _>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, loc)| Entry {
                key: k.clone(),
                value_len: loc.len as usize - OP_OVERHEAD - k.len(),
            })
            .collect()
    }

    /// Copies the live values into the other region and switches to it, freeing the space of
    /// overwritten and deleted values. Writes wait while it runs; reads do not.
    pub async fn compact(&self) -> Result<(), Error> {
        let ticket = {
            let mut st = self.inner.state.borrow_mut();
            if let Some(e) = writable(&self.inner.geo, &st) {
                return Err(e);
            }
            let t = Ticket::default();
            st.compactions.push(t.clone());
            if let Some(w) = st.committer.take() {
                w.wake();
            }
            t
        };
        wait(&ticket).await
    }

    /// A handle that does not keep the store open.
    pub fn downgrade(&self) -> WeakStore<D> {
        WeakStore {
            inner: Rc::downgrade(&self.inner),
        }
    }

    /// Figures about the store.
    pub fn stats(&self) -> Stats {
        let st = self.inner.state.borrow();
        Stats {
            keys: st.index.len() as u64,
            live_bytes: st.live_bytes,
            log_bytes: st.log.tail,
            generation: st.log.sb.generation,
            poisoned: st.poisoned,
            ..st.stats
        }
    }

    /// The disk under the store.
    pub fn disk(&self) -> &D {
        &self.inner.disk
    }
}

/// Why writes are refused now, if they are.
fn writable(geo: &Geometry, st: &State) -> Option<Error> {
    if geo.info.read_only {
        Some(Error::ReadOnly)
    } else if st.poisoned {
        Some(Error::Poisoned)
    } else if st.closed {
        Some(Error::Closed)
    } else {
        None
    }
}

fn region_of(geo: &Geometry, off: u64) -> usize {
    usize::from(off >= (SB_SECTORS * geo.ss + geo.region_bytes))
}

/// A read in flight in a region: the committer does not write over that region until it ends.
struct Reading<'a> {
    state: &'a RefCell<State>,
    region: usize,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut st = self.state.borrow_mut();
        st.readers[self.region] -= 1;
        if let Some(w) = st.reader_waiter.take() {
            w.wake();
        }
    }
}

/// Index, log end, live bytes and records replayed.
type Recovered = (BTreeMap<Vec<u8>, Loc>, Log, u64, u64);

/// Replays the log of `sb`'s generation. Stops at the first record that is torn, corrupt, or
/// not the next in the chain; refuses to open if a valid record of the same log lies after it
/// (then the bad record was acknowledged once: corruption, not a crash).
async fn recover<D: Disk>(disk: &D, geo: &Geometry, sb: Superblock) -> Result<Recovered, Error> {
    let base = sb.region_start() * geo.ss;
    let mut scan = Scan {
        disk,
        geo: *geo,
        at: 0,
        buf: Vec::new(),
    };
    let mut index: BTreeMap<Vec<u8>, Loc> = BTreeMap::new();
    let mut live = 0u64;
    let mut log = Log {
        sb,
        tail: 0,
        seq: 0,
        prev: chain_seed(sb.store_id, sb.epoch),
    };
    let of_this_log = |h: &Header| h.store_id == sb.store_id && h.epoch == sb.epoch;
    loop {
        if log.tail + geo.ss > geo.region_bytes {
            break;
        }
        let head = scan.bytes(base + log.tail, HEADER_LEN).await?;
        let Some((h, hcrc)) = Header::decode(head) else {
            break;
        };
        let size = record_bytes(h.len as usize, geo.ss as usize) as u64;
        if !of_this_log(&h)
            || h.seq != log.seq
            || h.prev != log.prev
            || h.len as usize > geo.max_payload
            || log.tail + size > geo.region_bytes
        {
            break;
        }
        let at = base + log.tail + HEADER_LEN as u64;
        let payload = scan.bytes(at, h.len as usize).await?;
        if crate::crc::crc32c(payload) != h.payload_crc {
            break;
        }
        let Some(ops) = parse_payload(payload) else {
            break;
        };
        for (k, v, off, len) in ops {
            if let Some(old) = index.remove(k) {
                live -= u64::from(old.len);
            }
            if v.is_some() {
                index.insert(
                    k.to_vec(),
                    Loc {
                        off: at + off as u64,
                        len: len as u32,
                    },
                );
                live += len as u64;
            }
        }
        log.tail += size;
        log.seq += 1;
        log.prev = hcrc;
    }
    // A torn tail is at most one record long; a valid record of this log after the stop
    // means the stop is damage inside acknowledged data.
    let horizon = (log.tail + record_bytes(geo.max_payload, geo.ss as usize) as u64 + geo.ss)
        .min(geo.region_bytes);
    let mut q = log.tail + geo.ss;
    while q + geo.ss <= horizon {
        let head = scan.bytes(base + q, HEADER_LEN).await?;
        if Header::decode(head).is_some_and(|(h, _)| of_this_log(&h)) {
            return Err(Error::Corrupt {
                sector: (base + log.tail) / geo.ss,
                what: "a record in the middle of the log",
            });
        }
        q += geo.ss;
    }
    let records = log.seq;
    Ok((index, log, live, records))
}

impl<D: Disk> Committer<D> {
    /// Writes queued batches (as many as fit in one record per commit: group commit) and runs
    /// compactions, forever. Never returns while the store is in use.
    pub async fn run(self) {
        loop {
            poll_fn(|cx| {
                let mut st = self.inner.state.borrow_mut();
                if st.queue.is_empty() && st.compactions.is_empty() {
                    st.committer = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            let asked = core::mem::take(&mut self.inner.state.borrow_mut().compactions);
            if !asked.is_empty() {
                let r = self.compact().await;
                for t in &asked {
                    resolve(t, r.clone());
                }
            }
            let group = self.take_group();
            if !group.is_empty() {
                self.commit(group).await;
            }
        }
    }

    /// Takes queued batches while they fit in one record.
    fn take_group(&self) -> Vec<Pending> {
        let mut st = self.inner.state.borrow_mut();
        let mut size = 4;
        let mut group = Vec::new();
        while let Some(p) = st.queue.front() {
            if !group.is_empty() && size + p.ops.len() > self.inner.geo.max_payload {
                break;
            }
            size += p.ops.len();
            group.extend(st.queue.pop_front());
        }
        group
    }

    fn fail(&self, group: &[Pending], e: &Error) {
        for p in group {
            resolve(&p.ticket, Err(e.clone()));
        }
    }

    fn poison(&self, group: &[Pending], e: Error) {
        self.inner.state.borrow_mut().poisoned = true;
        self.fail(group, &e);
    }

    async fn commit(&self, group: Vec<Pending>) {
        let geo = self.inner.geo;
        if let Some(e) = writable(&geo, &self.inner.state.borrow()) {
            return self.fail(&group, &e);
        }
        let payload_len = 4 + group.iter().map(|p| p.ops.len()).sum::<usize>();
        let size = record_bytes(payload_len, geo.ss as usize) as u64;
        let fits = |c: &Self| c.inner.state.borrow().log.tail + size <= geo.region_bytes;
        if !fits(self) {
            if let Err(e) = self.compact().await {
                return self.fail(&group, &e);
            }
            if !fits(self) {
                let free = geo.region_bytes - self.inner.state.borrow().log.tail;
                return self.fail(&group, &Error::Full { need: size, free });
            }
        }
        let log = self.inner.state.borrow().log;
        let mut rec = vec![0u8; size as usize];
        let count: u32 = group.iter().map(|p| p.count).sum();
        rec[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&count.to_le_bytes());
        let mut at = HEADER_LEN + 4;
        for p in &group {
            rec[at..at + p.ops.len()].copy_from_slice(&p.ops);
            at += p.ops.len();
        }
        let payload_crc = crate::crc::crc32c(&rec[HEADER_LEN..HEADER_LEN + payload_len]);
        let hcrc = Header {
            store_id: log.sb.store_id,
            epoch: log.sb.epoch,
            seq: log.seq,
            prev: log.prev,
            len: payload_len as u32,
            payload_crc,
        }
        .encode(&mut rec);
        let first = log.sb.region_start() + log.tail / geo.ss;
        if let Err(e) = write_at(&self.inner.disk, &geo, first, &rec).await {
            return self.poison(&group, e);
        }
        if let Err(e) = self.flush().await {
            return self.poison(&group, e);
        }
        let base = first * geo.ss + HEADER_LEN as u64;
        let mut st = self.inner.state.borrow_mut();
        let st = &mut *st;
        for (k, v, off, len) in parse_payload(&rec[HEADER_LEN..HEADER_LEN + payload_len])
            .expect("the committer's own record decodes")
        {
            if let Some(old) = st.index.remove(k) {
                st.live_bytes -= u64::from(old.len);
            }
            if v.is_some() {
                st.index.insert(
                    k.to_vec(),
                    Loc {
                        off: base + off as u64,
                        len: len as u32,
                    },
                );
                st.live_bytes += len as u64;
            }
        }
        st.log.tail += size;
        st.log.seq += 1;
        st.log.prev = hcrc;
        st.stats.commits += 1;
        st.stats.batches += group.len() as u64;
        st.stats.bytes_written += size;
        for p in &group {
            resolve(&p.ticket, Ok(()));
        }
    }

    /// Flushes unless the device makes completed writes durable by itself (or cannot flush).
    async fn flush(&self) -> Result<(), Error> {
        match self.inner.geo.info.cache {
            CacheMode::Volatile => {
                self.inner.disk.flush().await?;
                self.inner.state.borrow_mut().stats.flushes += 1;
                Ok(())
            }
            CacheMode::WriteThrough | CacheMode::NoFlush => Ok(()),
        }
    }

    /// Copies the live operations into the other region, then switches the superblocks to it.
    async fn compact(&self) -> Result<(), Error> {
        let geo = self.inner.geo;
        if let Some(e) = writable(&geo, &self.inner.state.borrow()) {
            return Err(e);
        }
        let (old, mut live): (Log, Vec<(Vec<u8>, Loc)>) = {
            let st = self.inner.state.borrow();
            (
                st.log,
                st.index.iter().map(|(k, l)| (k.clone(), *l)).collect(),
            )
        };
        // In disk order, so the old log is read sequentially in large requests.
        live.sort_unstable_by_key(|(_, l)| l.off);
        let mut scan = Scan {
            disk: &self.inner.disk,
            geo,
            at: 0,
            buf: Vec::new(),
        };
        let generation = old.sb.generation + 1;
        let sb = Superblock {
            generation,
            epoch: epoch_of(old.sb.store_id, generation, old.prev, old.seq, old.tail),
            ..old.sb
        };
        let target = (generation % 2) as usize;
        // Reads of the previous generation in this region must end before it is overwritten.
        poll_fn(|cx| {
            let mut st = self.inner.state.borrow_mut();
            if st.readers[target] == 0 {
                Poll::Ready(())
            } else {
                st.reader_waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        let mut log = Log {
            sb,
            tail: 0,
            seq: 0,
            prev: chain_seed(sb.store_id, sb.epoch),
        };
        let mut moved: Vec<(Vec<u8>, Loc)> = Vec::with_capacity(live.len());
        let mut payload: Vec<u8> = vec![0; 4];
        let mut keys: Vec<(Vec<u8>, usize, usize)> = Vec::new();
        let mut written = 0u64;
        for (key, loc) in live {
            let bytes = scan.bytes(loc.off, loc.len as usize).await?.to_vec();
            if !decode_op(&bytes).is_some_and(|op| op.key == key && op.len == bytes.len()) {
                self.inner.state.borrow_mut().stats.corrupt_reads += 1;
                return Err(Error::Corrupt {
                    sector: loc.off / geo.ss,
                    what: "a value met by compaction",
                });
            }
            if payload.len() + bytes.len() > geo.max_payload {
                written += self
                    .write_moved(&mut log, &mut payload, &mut keys, &mut moved)
                    .await?;
            }
            keys.push((key, payload.len(), bytes.len()));
            payload.extend_from_slice(&bytes);
        }
        if !keys.is_empty() {
            written += self
                .write_moved(&mut log, &mut payload, &mut keys, &mut moved)
                .await?;
        }
        // The new region is durable before any superblock names it; the slot of the new
        // generation is written first, so a torn write leaves the other (old) one intact.
        let poison = |e: Error| {
            self.inner.state.borrow_mut().poisoned = true;
            e
        };
        self.flush().await.map_err(poison)?;
        let b = sb.encode();
        for slot in [generation % 2, 1 - generation % 2] {
            self.inner
                .disk
                .write(slot, b.clone())
                .await
                .map_err(Error::from)
                .map_err(poison)?;
            self.flush().await.map_err(poison)?;
        }
        let mut st = self.inner.state.borrow_mut();
        for (k, loc) in moved {
            st.index.insert(k, loc);
        }
        st.log = log;
        st.stats.compactions += 1;
        st.stats.bytes_written += written + 2 * geo.ss;
        Ok(())
    }

    /// Writes one record of moved operations at the end of the new log.
    async fn write_moved(
        &self,
        log: &mut Log,
        payload: &mut Vec<u8>,
        keys: &mut Vec<(Vec<u8>, usize, usize)>,
        moved: &mut Vec<(Vec<u8>, Loc)>,
    ) -> Result<u64, Error> {
        let geo = self.inner.geo;
        payload[0..4].copy_from_slice(&(keys.len() as u32).to_le_bytes());
        let size = record_bytes(payload.len(), geo.ss as usize);
        if log.tail + size as u64 > geo.region_bytes {
            let free = geo.region_bytes - log.tail;
            return Err(Error::Full {
                need: size as u64,
                free,
            });
        }
        let mut rec = vec![0u8; size];
        rec[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
        let hcrc = Header {
            store_id: log.sb.store_id,
            epoch: log.sb.epoch,
            seq: log.seq,
            prev: log.prev,
            len: payload.len() as u32,
            payload_crc: crate::crc::crc32c(payload),
        }
        .encode(&mut rec);
        let first = log.sb.region_start() + log.tail / geo.ss;
        write_at(&self.inner.disk, &geo, first, &rec).await?;
        let base = first * geo.ss + HEADER_LEN as u64;
        for (k, off, len) in keys.drain(..) {
            moved.push((
                k,
                Loc {
                    off: base + off as u64,
                    len: len as u32,
                },
            ));
        }
        payload.truncate(4);
        log.tail += size as u64;
        log.seq += 1;
        log.prev = hcrc;
        Ok(size as u64)
    }
}

impl<D: Disk> Drop for Committer<D> {
    fn drop(&mut self) {
        let mut st = self.inner.state.borrow_mut();
        st.closed = true;
        for p in st.queue.drain(..) {
            resolve(&p.ticket, Err(Error::Closed));
        }
        for t in st.compactions.drain(..) {
            resolve(&t, Err(Error::Closed));
        }
    }
}
