//! virtio-blk (virtio 1.x §5.2): one request queue, several requests in flight, behind the
//! HAL's owned-buffer [`BlockDevice`].
//!
//! # Requests
//!
//! Every request is a chain of three descriptors (two for a flush): a 16-byte header the
//! device reads ([`ReqHeader`]: type, reserved, sector in 512-byte units), the data (the
//! device reads it for a write, writes it for a read) and one status byte the device writes.
//! Legacy devices without `ANY_LAYOUT` need exactly this framing, modern ones accept it.
//!
//! Header and status live in a small [`Dma`] buffer per request slot ([`Budget::max_in_flight`]
//! of them, fewer on small queues: a third of the queue, since each request takes up to three
//! descriptors). The data descriptor points into the caller's own `Vec` ([`Dma::from_vec`]: no
//! copy, which under TCG halved the sequential throughput); the driver holds that `Vec` until
//! the request completes and hands it back in the [`Completion`], so a dropped future never
//! leaves the device writing into freed memory.
//!
//! # What the device says is checked
//!
//! The status byte is set to 0xFF, which is no status, before each request is posted: a
//! completion whose status byte is still 0xFF (or any value other than OK 0, IOERR 1,
//! UNSUPP 2) is an impossible completion. So is a used length beyond what the chain lets the
//! device write (the data plus the status byte for a read, the status byte for a write or a
//! flush), and a used id that is not the head of a request in flight (see [`crate::queue`]).
//! Each is counted in [`BlockStats::bad_completions`]; where a request can be named, it fails
//! with [`BlockError::Device`]. A shorter used length than the chain allows is accepted:
//! devices differ in what they report there, and the specification does not let a driver
//! rely on it.
//!
//! # Geometry and caching, from the device's configuration
//!
//! - Sector size: `blk_size` if `BLK_SIZE` was negotiated and it is a power of two from 512 to
//!   65,536 (QEMU refuses requests not aligned to its logical block size), else 512.
//!   `capacity` counts 512-byte units whatever the sector size; a capacity of 0 is a disk no
//!   request can reach (every read or write is refused as out of range).
//! - Largest request: one data descriptor per request, so `size_max` (`SIZE_MAX`) bounds it;
//!   without `SIZE_MAX`, [`DEFAULT_REQUEST_BYTES`]; never more than [`MAX_REQUEST_BYTES`];
//!   rounded down to whole sectors but at least one sector.
//! - Cache mode: with `FLUSH` negotiated, completed writes may sit in a volatile cache until a
//!   flush completes ([`CacheMode::Volatile`]). The driver never negotiates `CONFIG_WCE`, so it
//!   never switches the cache to write-through itself. A device that does not offer `FLUSH`
//!   "MAY" commit each write before completing it (§5.2.6.3), but nothing obliges it to: the
//!   specification describes not offering `FLUSH` as the choice of devices that do not want to
//!   be crash safe. Such a device is reported as [`CacheMode::NoFlush`], so the store above can
//!   warn instead of trusting a promise nobody made; flushes on it complete with
//!   [`BlockError::Unsupported`].

use crate::dma::Dma;
use crate::queue::{Buffers, Part, PushError, Queue, Refused, Used, sealed};
use crate::transport::{self, InitError, Transport};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::mem::{offset_of, size_of};
use fata_hal::block::{
    BlockDevice, BlockError, BlockInfo, BlockStats, CacheMode, Completion, Request, Submitted,
};

/// `VIRTIO_BLK_F_SIZE_MAX`: `size_max` bounds one data descriptor.
pub const F_SIZE_MAX: u64 = 1 << 1;
/// `VIRTIO_BLK_F_SEG_MAX`: `seg_max` bounds the data descriptors of one request.
pub const F_SEG_MAX: u64 = 1 << 2;
/// `VIRTIO_BLK_F_RO`: the device is read-only.
pub const F_RO: u64 = 1 << 5;
/// `VIRTIO_BLK_F_BLK_SIZE`: `blk_size` is the logical block size.
pub const F_BLK_SIZE: u64 = 1 << 6;
/// `VIRTIO_BLK_F_FLUSH` (legacy name `WCE`): the device has a cache and a flush command.
pub const F_FLUSH: u64 = 1 << 9;
/// `VIRTIO_BLK_F_TOPOLOGY`: the physical block size and optimal I/O sizes are known.
pub const F_TOPOLOGY: u64 = 1 << 10;
/// The features the driver asks for. Not `CONFIG_WCE` (bit 11): the cache mode stays the
/// device's, see the module documentation.
pub const FEATURES: u64 = F_SIZE_MAX | F_SEG_MAX | F_RO | F_BLK_SIZE | F_FLUSH | F_TOPOLOGY;

/// The request queue (`requestq`; the driver does not negotiate `MQ`).
const REQUEST_QUEUE: u16 = 0;

/// The unit of `capacity` and of a request's `sector`, whatever the device's sector size.
pub const VIRTIO_SECTOR: u32 = 512;
/// The largest sector size taken from `blk_size`.
pub const MAX_SECTOR_SIZE: u32 = 65536;
/// The largest request when the device does not give `size_max` (then no segment limit
/// applies: QEMU and Firecracker offer none). A limit, not a size: callers choose their
/// buffers, and the store reads in windows of at most 256 KiB.
pub const DEFAULT_REQUEST_BYTES: usize = 1 << 20;
/// The largest request whatever the device says: it bounds the DMA buffer of one request.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Descriptors of the longest request (header, data, status).
const CHAIN: u16 = 3;

// Request types (`VIRTIO_BLK_T_*`).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
// Status values (`VIRTIO_BLK_S_*`).
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
/// What the status byte holds before the device writes it: no status at all.
const S_UNSET: u8 = 0xff;
/// Length of the device id `GET_ID` returns (NUL-padded, not NUL-terminated when full).
const ID_BYTES: usize = 20;

/// The request header (`struct virtio_blk_req` up to the data), device-readable. Like the
/// ring entries, it is written field by field at the offsets this type gives.
#[repr(C)]
struct ReqHeader {
    /// `VIRTIO_BLK_T_*`.
    type_: u32,
    /// Zero (legacy: `ioprio`).
    reserved: u32,
    /// First sector, in 512-byte units.
    sector: u64,
}

/// Where the status byte is in a slot's buffer: right after the header.
const STATUS_AT: usize = size_of::<ReqHeader>();
/// Size of a slot's buffer: header and status.
const SLOT_BYTES: usize = STATUS_AT + 1;

/// The device-specific configuration (`struct virtio_blk_config`) up to the fields read here;
/// only the offsets are used (reads go through the transport).
#[repr(C)]
struct Config {
    /// Capacity in 512-byte units.
    capacity: u64,
    /// Largest data descriptor (`SIZE_MAX`).
    size_max: u32,
    /// Most data descriptors per request (`SEG_MAX`).
    seg_max: u32,
    /// Cylinders (16 bits), heads (8), sectors (8): not used.
    geometry: u32,
    /// Logical block size (`BLK_SIZE`).
    blk_size: u32,
    /// log2 of logical blocks per physical block (`TOPOLOGY`).
    physical_block_exp: u8,
    /// Offset of the first aligned logical block.
    alignment_offset: u8,
    /// Suggested minimum I/O size, in logical blocks.
    min_io_size: u16,
    /// Suggested maximum I/O size, in logical blocks.
    opt_io_size: u32,
}

/// How many resources the driver may use.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Largest queue size the driver asks for (when the transport lets it choose).
    pub queue_cap: u16,
    /// Requests in flight at most (also bounded by a third of the queue).
    pub max_in_flight: usize,
    /// How many times [`VirtioBlk::new`] polls for the device id before going on without it
    /// (the answer, if it comes later, is still taken).
    pub id_wait_spins: u32,
}

impl Default for Budget {
    /// A 128-entry queue (8 KiB of rings), 32 requests in flight, a million polls (a few
    /// milliseconds) for the device id. QEMU answers `GET_ID` before the notification returns.
    fn default() -> Self {
        Budget {
            queue_cap: 128,
            max_in_flight: 32,
            id_wait_spins: 1_000_000,
        }
    }
}

/// The device's configuration as read at start (raw, unchecked).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawConfig {
    /// `capacity` (512-byte units).
    pub capacity: u64,
    /// `size_max`.
    pub size_max: u32,
    /// `seg_max`.
    pub seg_max: u32,
    /// `blk_size`.
    pub blk_size: u32,
    /// `topology.physical_block_exp`.
    pub physical_block_exp: u8,
}

impl RawConfig {
    /// Reads the fields the negotiated `features` make valid (the others stay 0).
    fn read(t: &mut dyn Transport, features: u64) -> RawConfig {
        let mut c = RawConfig {
            capacity: transport::config_u64(t, offset_of!(Config, capacity)),
            ..RawConfig::default()
        };
        if features & F_SIZE_MAX != 0 {
            c.size_max = t.config_u32(offset_of!(Config, size_max));
        }
        if features & F_SEG_MAX != 0 {
            c.seg_max = t.config_u32(offset_of!(Config, seg_max));
        }
        if features & F_BLK_SIZE != 0 {
            c.blk_size = t.config_u32(offset_of!(Config, blk_size));
        }
        if features & F_TOPOLOGY != 0 {
            c.physical_block_exp = t.config_u8(offset_of!(Config, physical_block_exp));
        }
        c
    }
}

/// The [`BlockInfo`] for a device with configuration `c`, negotiated `features` and a queue
/// of `queue_size` entries (at least [`CHAIN`]). Never fails: values out of reason fall back
/// to safe ones (see the module documentation).
pub fn block_info(c: &RawConfig, features: u64, queue_size: u16, budget: &Budget) -> BlockInfo {
    let sector_size = if features & F_BLK_SIZE != 0
        && c.blk_size.is_power_of_two()
        && (VIRTIO_SECTOR..=MAX_SECTOR_SIZE).contains(&c.blk_size)
    {
        c.blk_size
    } else {
        VIRTIO_SECTOR
    };
    let ss = sector_size as usize;
    let limit = if features & F_SIZE_MAX != 0 && c.size_max != 0 {
        c.size_max as usize
    } else {
        DEFAULT_REQUEST_BYTES
    };
    let max_request_bytes = (limit.min(MAX_REQUEST_BYTES) / ss * ss).max(ss);
    BlockInfo {
        sector_size,
        sectors: c.capacity / u64::from(sector_size / VIRTIO_SECTOR),
        read_only: features & F_RO != 0,
        max_request_bytes,
        max_in_flight: (usize::from(queue_size) / usize::from(CHAIN))
            .min(budget.max_in_flight)
            .max(1),
        cache: if features & F_FLUSH != 0 {
            CacheMode::Volatile
        } else {
            CacheMode::NoFlush
        },
    }
}

/// What a request in flight is for.
enum Op {
    /// The caller's buffer is the request's data region (lent to the device, no copy).
    Read {
        tag: u64,
    },
    Write {
        tag: u64,
    },
    Flush {
        tag: u64,
    },
    /// The driver's own `GET_ID` at start.
    GetId,
}

/// Everything one request holds while the device has it: the queue owns it until the
/// completion (region 0: header and status, region 1: data).
struct InFlight {
    slot: Dma,
    data: Option<Dma>,
    op: Op,
}

impl sealed::Sealed for InFlight {}

impl Buffers for InFlight {
    fn region(&self, i: usize) -> Option<&Dma> {
        match i {
            0 => Some(&self.slot),
            1 => self.data.as_ref(),
            _ => None,
        }
    }

    #[cfg(test)]
    fn region_mut(&mut self, i: usize) -> Option<&mut Dma> {
        match i {
            0 => Some(&mut self.slot),
            1 => self.data.as_mut(),
            _ => None,
        }
    }
}

/// A virtio block device.
pub struct VirtioBlk {
    transport: Box<dyn Transport>,
    queue: Queue<InFlight>,
    /// Header-and-status buffers of the slots not in flight.
    slots: Vec<Dma>,
    /// Completions not yet taken by [`BlockDevice::complete`].
    done: VecDeque<Completion>,
    info: BlockInfo,
    config: RawConfig,
    features: u64,
    stats: BlockStats,
    /// The device id from `GET_ID`, once it answered.
    serial: Option<String>,
}

impl VirtioBlk {
    /// Initialises the device behind `t`. Fails if the device refuses the features, has no
    /// request queue, a queue too small for one request (fewer than three descriptors), or
    /// the heap cannot hold the queue.
    pub fn new(mut t: Box<dyn Transport>, budget: Budget) -> Result<VirtioBlk, InitError> {
        let features = transport::negotiate(&mut *t, FEATURES)?;
        let queue: Queue<InFlight> =
            transport::make_queue(&mut *t, REQUEST_QUEUE, budget.queue_cap.max(CHAIN))?;
        if queue.size() < CHAIN {
            t.set_status(transport::status::FAILED);
            return Err(InitError::QueueTooSmall {
                size: queue.size(),
                need: CHAIN,
            });
        }
        let config = RawConfig::read(&mut *t, features);
        if features & F_BLK_SIZE != 0 {
            let b = config.blk_size;
            if !b.is_power_of_two() || !(VIRTIO_SECTOR..=MAX_SECTOR_SIZE).contains(&b) {
                log::warn!("virtio-blk: ignoring block size {b}; using 512-byte sectors");
            }
        }
        let info = block_info(&config, features, queue.size(), &budget);
        let mut slots = Vec::with_capacity(info.max_in_flight);
        for _ in 0..info.max_in_flight {
            slots.push(Dma::zeroed(SLOT_BYTES, 64).ok_or(InitError::OutOfMemory)?);
        }
        transport::driver_ok(&mut *t);
        let mut dev = VirtioBlk {
            transport: t,
            queue,
            slots,
            done: VecDeque::new(),
            info,
            config,
            features,
            stats: BlockStats::default(),
            serial: None,
        };
        dev.ask_id(budget.id_wait_spins);
        Ok(dev)
    }

    /// Sends `GET_ID` and polls `spins` times for the answer (the completion is taken
    /// whenever it comes; a device that does not support it answers UNSUPP).
    fn ask_id(&mut self, spins: u32) {
        let Some(data) = Dma::zeroed(ID_BYTES, 64) else {
            return;
        };
        let Some(slot) = self.slots.pop() else {
            return;
        };
        let req = InFlight {
            slot,
            data: Some(data),
            op: Op::GetId,
        };
        if let Err(r) = self.post(req, T_GET_ID, 0, ID_BYTES, true) {
            self.slots.push(r.bufs.slot);
            return;
        }
        for _ in 0..spins {
            if self.queue.has_used() {
                break;
            }
            core::hint::spin_loop();
        }
        self.reap();
    }

    /// Negotiated feature bits.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Queue size as negotiated with the device.
    pub fn queue_size(&self) -> u16 {
        self.queue.size()
    }

    /// Requests in flight (including the driver's own `GET_ID` until it is answered).
    pub fn in_flight(&self) -> usize {
        self.queue.in_flight()
    }

    /// The device id (`GET_ID`), if the device gave a non-empty one.
    pub fn serial(&self) -> Option<&str> {
        self.serial.as_deref()
    }

    /// Writes the request header into `slot`'s buffer and presets the status to "none".
    fn fill_slot(slot: &mut Dma, type_: u32, sector: u64) {
        let b = slot.bytes_mut();
        let field = |off: usize, len: usize| off..off + len;
        b[field(offset_of!(ReqHeader, type_), 4)].copy_from_slice(&type_.to_le_bytes());
        b[field(offset_of!(ReqHeader, reserved), 4)].copy_from_slice(&0u32.to_le_bytes());
        b[field(offset_of!(ReqHeader, sector), 8)].copy_from_slice(&sector.to_le_bytes());
        b[STATUS_AT] = S_UNSET;
    }

    /// Posts `req` as a `type_` request at `sector` (512-byte units) with `len` bytes of data
    /// (none if 0; `device_writes`: a read), and notifies the device if it wants it.
    fn post(
        &mut self,
        mut req: InFlight,
        type_: u32,
        sector: u64,
        len: usize,
        device_writes: bool,
    ) -> Result<(), Refused<InFlight>> {
        Self::fill_slot(&mut req.slot, type_, sector);
        let header = Part {
            region: 0,
            offset: 0,
            len: STATUS_AT,
            device_writes: false,
        };
        let data = Part {
            region: 1,
            offset: 0,
            len,
            device_writes,
        };
        let status = Part {
            region: 0,
            offset: STATUS_AT,
            len: 1,
            device_writes: true,
        };
        let with_data = [header, data, status];
        let without = [header, status];
        let parts: &[Part] = if len == 0 { &without } else { &with_data };
        self.queue.push_chain(req, parts)?;
        if self.queue.needs_notify() {
            self.transport.notify(REQUEST_QUEUE);
        }
        Ok(())
    }

    /// Why `req` cannot go to the device, if it cannot.
    fn refusal(&self, req: &Request) -> Option<BlockError> {
        match req {
            Request::Read { sector, buf } => self.info.check(*sector, buf.len(), false).err(),
            Request::Write { sector, buf } => self.info.check(*sector, buf.len(), true).err(),
            Request::Flush if self.info.read_only => Some(BlockError::ReadOnly),
            Request::Flush if self.features & F_FLUSH == 0 => Some(BlockError::Unsupported),
            Request::Flush => None,
        }
    }

    /// Takes every completion the device reported.
    fn reap(&mut self) {
        while let Some(u) = self.queue.pop_used() {
            match u {
                Used::Done { buf, len } => self.finish(buf, len, false),
                Used::TooLong { buf, len } => self.finish(buf, len, true),
                Used::BadId { id } => {
                    self.bad_completion(format_args!(
                        "a completion names descriptor {id}, not a request in flight"
                    ));
                }
            }
        }
    }

    /// Turns a request the device returned into its completion; `too_long`: the device
    /// reported writing `len` bytes, more than the request lets it.
    fn finish(&mut self, req: InFlight, len: u32, too_long: bool) {
        let InFlight { slot, data, op } = req;
        let status = slot.bytes()[STATUS_AT];
        self.slots.push(slot);
        let outcome = if too_long {
            Err(BlockError::Device(format!(
                "the device reported writing {len} bytes, more than the request allows"
            )))
        } else {
            match status {
                S_OK => Ok(()),
                S_IOERR => Err(BlockError::Io),
                S_UNSUPP => Err(BlockError::Unsupported),
                s => Err(BlockError::Device(format!(
                    "the device completed a request with status {s:#04x}, which is not a status"
                ))),
            }
        };
        match &outcome {
            Err(BlockError::Device(why)) => self.bad_completion(format_args!("{why}")),
            Err(_) if !matches!(op, Op::GetId) => self.stats.failed += 1,
            _ => {}
        }
        let (tag, result) = match op {
            Op::GetId => {
                // (QEMU answers an empty id for a disk without `serial=`.)
                if let (Ok(()), Some(d)) = (&outcome, data) {
                    self.serial = Some(parse_id(d.bytes())).filter(|id| !id.is_empty());
                }
                return;
            }
            Op::Read { tag } | Op::Write { tag } => (
                tag,
                outcome.map(|()| {
                    let buf = data.map(Dma::into_vec).unwrap_or_default();
                    let (count, bytes) = if matches!(op, Op::Read { .. }) {
                        (&mut self.stats.reads, &mut self.stats.bytes_read)
                    } else {
                        (&mut self.stats.writes, &mut self.stats.bytes_written)
                    };
                    *count += 1;
                    *bytes += buf.len() as u64;
                    buf
                }),
            ),
            Op::Flush { tag } => (
                tag,
                outcome.map(|()| {
                    self.stats.flushes += 1;
                    Vec::new()
                }),
            ),
        };
        self.done.push_back(Completion { tag, result });
    }

    /// Counts an impossible completion; the first one is logged (a device that sends them
    /// keeps sending them, and the counter says how many).
    fn bad_completion(&mut self, why: core::fmt::Arguments<'_>) {
        self.stats.bad_completions += 1;
        if self.stats.bad_completions == 1 {
            log::warn!("virtio-blk: {why} (counted; further ones are not logged)");
        }
    }

    /// Re-reads the capacity after a configuration change (a resized disk).
    fn config_changed(&mut self) {
        let capacity = transport::config_u64(&mut *self.transport, offset_of!(Config, capacity));
        if capacity != self.config.capacity {
            self.config.capacity = capacity;
            let per = u64::from(self.info.sector_size / VIRTIO_SECTOR);
            self.info.sectors = capacity / per;
            log::info!(
                "virtio-blk: capacity changed to {} sectors of {} bytes",
                self.info.sectors,
                self.info.sector_size
            );
        }
    }
}

/// The device id from a `GET_ID` answer: up to the first NUL, printable ASCII (anything else
/// shown as `?`).
fn parse_id(raw: &[u8]) -> String {
    raw.iter()
        .take(ID_BYTES)
        .take_while(|&&b| b != 0)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

/// `bytes` for people: "512 bytes", "64 KiB", "1 MiB", "2.5 GiB" (one decimal).
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut tenths = u128::from(bytes) * 10;
    while tenths >= 10 * 1024 && unit + 1 < UNITS.len() {
        tenths /= 1024;
        unit += 1;
    }
    if tenths % 10 == 0 {
        format!("{} {}", tenths / 10, UNITS[unit])
    } else {
        format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
    }
}

impl BlockDevice for VirtioBlk {
    fn info(&self) -> BlockInfo {
        self.info
    }

    fn submit(&mut self, tag: u64, req: Request) -> Submitted {
        if let Some(e) = self.refusal(&req) {
            self.stats.refused += 1;
            self.done.push_back(Completion {
                tag,
                result: Err(e),
            });
            return Submitted::Queued;
        }
        if self.slots.is_empty() {
            // Completions the device has already reported free slots.
            self.reap();
        }
        let Some(slot) = self.slots.pop() else {
            return Submitted::Busy(req);
        };
        // The caller's buffer itself is the data region: the device reads or writes it in
        // place (no copy; the driver owns it until the completion hands it back).
        let per = u64::from(self.info.sector_size / VIRTIO_SECTOR);
        let (type_, sector, op, data) = match req {
            Request::Read { sector, buf } => (T_IN, sector, Op::Read { tag }, Dma::from_vec(buf)),
            Request::Write { sector, buf } => {
                (T_OUT, sector, Op::Write { tag }, Dma::from_vec(buf))
            }
            Request::Flush => (T_FLUSH, 0, Op::Flush { tag }, None),
        };
        if type_ != T_FLUSH && data.is_none() {
            // (`refusal` already turned empty transfers away.)
            self.slots.push(slot);
            self.stats.refused += 1;
            self.done.push_back(Completion {
                tag,
                result: Err(BlockError::Misaligned {
                    len: 0,
                    sector_size: self.info.sector_size,
                }),
            });
            return Submitted::Queued;
        }
        let len = data.as_ref().map_or(0, Dma::len);
        let req = InFlight { slot, data, op };
        // `check` keeps `sector` within the device, whose size in 512-byte units fits in
        // 64 bits, so this does not saturate.
        let virtio_sector = sector.saturating_mul(per);
        match self.post(req, type_, virtio_sector, len, type_ == T_IN) {
            Ok(()) => Submitted::Queued,
            Err(Refused { bufs, why }) => {
                let InFlight { slot, op, data } = bufs;
                self.slots.push(slot);
                let buf = data.map(Dma::into_vec).unwrap_or_default();
                let req = match op {
                    Op::Read { .. } => Request::Read { sector, buf },
                    Op::Write { .. } => Request::Write { sector, buf },
                    // (`GetId` is never submitted here.)
                    Op::Flush { .. } | Op::GetId => Request::Flush,
                };
                if why == PushError::Full {
                    return Submitted::Busy(req);
                }
                self.stats.failed += 1;
                self.done.push_back(Completion {
                    tag,
                    result: Err(BlockError::Device(format!(
                        "the driver could not post the request: {why}"
                    ))),
                });
                Submitted::Queued
            }
        }
    }

    fn complete(&mut self) -> Option<Completion> {
        if self.done.is_empty() {
            self.reap();
        }
        self.done.pop_front()
    }

    fn service(&mut self) {
        let isr = self.transport.ack_interrupt();
        if isr != 0 {
            self.stats.interrupts += 1;
        }
        if isr & transport::ISR_CONFIG != 0 {
            self.config_changed();
        }
        self.reap();
    }

    fn stats(&self) -> BlockStats {
        self.stats
    }

    /// The transport, the device id, the queue and request limits, the physical block size:
    /// what the runtime's log line (which adds sectors, size and cache mode) cannot know.
    fn describe(&self) -> String {
        let mut s = String::from("virtio-blk over ");
        let _ = self.transport.describe(&mut s);
        if let Some(id) = &self.serial {
            let _ = write!(s, ", serial \"{id}\"");
        }
        let _ = write!(
            s,
            ", queue {}, {} in flight, {} per request",
            self.queue.size(),
            self.info.max_in_flight,
            human(self.info.max_request_bytes as u64),
        );
        if (1..16).contains(&self.config.physical_block_exp) {
            let physical = u64::from(self.info.sector_size) << self.config.physical_block_exp;
            let _ = write!(s, ", physical blocks of {}", human(physical));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::VIRTQ_DESC_F_WRITE;
    use crate::transport::fake::{Fake, Regs};
    use crate::transport::status;
    use alloc::rc::Rc;
    use core::cell::RefCell;

    /// The medium and request processing of the simulated device. It reads each request as a
    /// device does — the available ring, the descriptor chain, the header — and touches only
    /// memory the chain's descriptors name; it checks the framing a strict device checks.
    struct Disk {
        data: Vec<u8>,
        /// What `GET_ID` answers (`None`: UNSUPP).
        id: Option<&'static [u8]>,
        last_avail: u16,
        flushes: usize,
        /// Requests seen, as (type, sector in 512-byte units, data length).
        seen: Vec<(u32, u64, usize)>,
    }

    impl Disk {
        fn new(bytes: usize) -> Disk {
            Disk {
                data: (0..bytes).map(|i| (i / 512) as u8).collect(),
                id: Some(b"fata-disk-0"),
                last_avail: 0,
                flushes: 0,
                seen: Vec::new(),
            }
        }

        /// The next request posted and not yet taken, by head id.
        fn take(&mut self, blk: &VirtioBlk) -> Option<u16> {
            if blk.queue.device_avail_idx() == self.last_avail {
                return None;
            }
            let head = blk.queue.device_avail_at(self.last_avail);
            self.last_avail = self.last_avail.wrapping_add(1);
            Some(head)
        }

        /// Carries out request `head` and writes its status; returns the used length to report.
        fn execute(&mut self, blk: &mut VirtioBlk, head: u16) -> u32 {
            let q = &mut blk.queue;
            let chain = q.device_chain(head);
            assert!((2..=3).contains(&chain.len()), "{chain:?}");
            let (hdr, status) = (chain[0], chain[chain.len() - 1]);
            assert_eq!((hdr.len, hdr.flags & VIRTQ_DESC_F_WRITE), (16, 0));
            assert_eq!(
                (status.len, status.flags & VIRTQ_DESC_F_WRITE),
                (1, VIRTQ_DESC_F_WRITE)
            );
            let h = q
                .device_bytes(head, hdr.addr, 16)
                .expect("header in the chain's memory");
            let type_ = u32::from_le_bytes(h[0..4].try_into().unwrap());
            assert_eq!(&h[4..8], &[0; 4], "reserved");
            let sector = u64::from_le_bytes(h[8..16].try_into().unwrap());
            let data = chain.get(1).filter(|_| chain.len() == 3).copied();
            let len = data.map_or(0, |d| d.len as usize);
            self.seen.push((type_, sector, len));
            let at = sector as usize * 512;
            let in_range = at.checked_add(len).is_some_and(|e| e <= self.data.len());
            let (st, written) = match (type_, data) {
                (T_IN, Some(d)) if in_range => {
                    assert_ne!(
                        d.flags & VIRTQ_DESC_F_WRITE,
                        0,
                        "read data is device-writable"
                    );
                    let src = &self.data[at..at + len];
                    q.device_bytes(head, d.addr, len)
                        .unwrap()
                        .copy_from_slice(src);
                    (S_OK, len as u32)
                }
                (T_OUT, Some(d)) if in_range => {
                    assert_eq!(
                        d.flags & VIRTQ_DESC_F_WRITE,
                        0,
                        "write data is device-readable"
                    );
                    let src = q.device_bytes(head, d.addr, len).unwrap();
                    self.data[at..at + len].copy_from_slice(src);
                    (S_OK, 0)
                }
                (T_IN | T_OUT, _) => (S_IOERR, 0),
                (T_FLUSH, None) => {
                    self.flushes += 1;
                    (S_OK, 0)
                }
                (T_GET_ID, Some(d)) if self.id.is_some() => {
                    let id = self.id.unwrap_or_default();
                    let out = q.device_bytes(head, d.addr, len).unwrap();
                    out.fill(0);
                    out[..id.len()].copy_from_slice(id);
                    (S_OK, len as u32)
                }
                _ => (S_UNSUPP, 0),
            };
            q.device_bytes(head, status.addr, 1).unwrap()[0] = st;
            written + 1
        }

        /// Overwrites the status byte of request `head` (a hostile device).
        fn set_status(blk: &mut VirtioBlk, head: u16, st: u8) {
            let chain = blk.queue.device_chain(head);
            let at = chain[chain.len() - 1].addr;
            blk.queue.device_bytes(head, at, 1).unwrap()[0] = st;
        }

        /// Carries out and completes every request posted so far.
        fn serve(&mut self, blk: &mut VirtioBlk) -> usize {
            let mut n = 0;
            while let Some(head) = self.take(blk) {
                let len = self.execute(blk, head);
                blk.queue.device_complete(u32::from(head), len);
                n += 1;
            }
            n
        }
    }

    const GIB: u64 = 1 << 30;

    /// A modern device offering everything a QEMU disk offers, `sectors` 512-byte sectors.
    fn regs(capacity: u64) -> Regs {
        let mut r = Regs {
            modern: true,
            offered: (FEATURES & !F_RO)
                | (1 << 11)
                | (1 << 12)
                | (1 << 13)
                | transport::F_VERSION_1,
            queue_max: 256,
            ..Regs::default()
        };
        r.set_config(offset_of!(Config, capacity), &capacity.to_le_bytes());
        r.set_config(offset_of!(Config, size_max), &(128u32 << 10).to_le_bytes());
        r.set_config(offset_of!(Config, seg_max), &126u32.to_le_bytes());
        r.set_config(offset_of!(Config, blk_size), &512u32.to_le_bytes());
        r
    }

    fn budget() -> Budget {
        Budget {
            queue_cap: 64,
            max_in_flight: 8,
            id_wait_spins: 0,
        }
    }

    /// A started device and its disk, the start-up `GET_ID` answered.
    fn start(r: Regs, disk_bytes: usize) -> (VirtioBlk, Disk, Rc<RefCell<Regs>>) {
        let regs = Rc::new(RefCell::new(r));
        let mut blk = VirtioBlk::new(Box::new(Fake(regs.clone())), budget()).unwrap();
        let mut disk = Disk::new(disk_bytes);
        assert_eq!(disk.serve(&mut blk), 1, "the GET_ID sent at start");
        assert!(blk.complete().is_none(), "GET_ID is the driver's own");
        disk.seen.clear();
        (blk, disk, regs)
    }

    fn dev() -> (VirtioBlk, Disk, Rc<RefCell<Regs>>) {
        start(regs(2048), 2048 * 512)
    }

    fn read(sector: u64, len: usize) -> Request {
        Request::Read {
            sector,
            buf: alloc::vec![0; len],
        }
    }

    /// Submits, serves, and returns the one completion.
    fn run(blk: &mut VirtioBlk, disk: &mut Disk, tag: u64, req: Request) -> Completion {
        assert_eq!(blk.submit(tag, req), Submitted::Queued);
        disk.serve(blk);
        let c = blk.complete().expect("a completion");
        assert_eq!(c.tag, tag);
        assert!(blk.complete().is_none());
        c
    }

    #[test]
    fn header_and_configuration_have_the_specified_layout() {
        // virtio 1.2 §5.2.6: struct virtio_blk_req { le32 type; le32 reserved; le64 sector; ...
        assert_eq!(offset_of!(ReqHeader, type_), 0);
        assert_eq!(offset_of!(ReqHeader, reserved), 4);
        assert_eq!(offset_of!(ReqHeader, sector), 8);
        assert_eq!(size_of::<ReqHeader>(), 16);
        // §5.2.4: struct virtio_blk_config { le64 capacity; le32 size_max; le32 seg_max;
        // struct virtio_blk_geometry (4 bytes); le32 blk_size; u8 physical_block_exp;
        // u8 alignment_offset; le16 min_io_size; le32 opt_io_size; ...
        assert_eq!(offset_of!(Config, capacity), 0);
        assert_eq!(offset_of!(Config, size_max), 8);
        assert_eq!(offset_of!(Config, seg_max), 12);
        assert_eq!(offset_of!(Config, geometry), 16);
        assert_eq!(offset_of!(Config, blk_size), 20);
        assert_eq!(offset_of!(Config, physical_block_exp), 24);
        assert_eq!(offset_of!(Config, alignment_offset), 25);
        assert_eq!(offset_of!(Config, min_io_size), 26);
        assert_eq!(offset_of!(Config, opt_io_size), 28);
    }

    #[test]
    fn start_negotiates_flush_geometry_and_topology_but_not_config_wce() {
        let mut r = regs(8 * 1000);
        r.set_config(offset_of!(Config, blk_size), &4096u32.to_le_bytes());
        r.set_config(offset_of!(Config, physical_block_exp), &[3]);
        let (blk, _, regs) = start(r, 8 * 1000 * 512);
        let regs = regs.borrow();
        assert_eq!(regs.accepted, (FEATURES & !F_RO) | transport::F_VERSION_1);
        assert_eq!(regs.accepted & (1 << 11), 0, "never CONFIG_WCE");
        assert_ne!(regs.status & status::DRIVER_OK, 0);
        assert_eq!(
            regs.ring.unwrap().size,
            64,
            "the device offers 256, the budget caps at 64"
        );
        assert_eq!(
            blk.info(),
            BlockInfo {
                sector_size: 4096,
                sectors: 1000,
                read_only: false,
                max_request_bytes: 128 << 10,
                max_in_flight: 8,
                cache: CacheMode::Volatile,
            }
        );
        assert_eq!(
            blk.describe(),
            "virtio-blk over fake transport, serial \"fata-disk-0\", queue 64, 8 in flight, \
             128 KiB per request, physical blocks of 32 KiB"
        );
        assert_eq!(blk.serial(), Some("fata-disk-0"));
    }

    #[test]
    fn geometry_falls_back_to_safe_values_when_the_configuration_is_absurd() {
        let b = budget();
        let all = FEATURES;
        let base = RawConfig {
            capacity: 2048,
            size_max: 0,
            seg_max: 0,
            blk_size: 512,
            physical_block_exp: 0,
        };
        let info = |c: RawConfig, f: u64, q: u16| block_info(&c, f, q, &b);
        for bad in [0, 256, 3000, 4097, 1 << 17, u32::MAX] {
            let c = RawConfig {
                blk_size: bad,
                ..base
            };
            assert_eq!(info(c, all, 64).sector_size, 512, "blk_size {bad}");
        }
        let big = RawConfig {
            blk_size: 65536,
            ..base
        };
        assert_eq!(info(big, all, 64).sector_size, 65536);
        assert_eq!(
            info(big, all & !F_BLK_SIZE, 64).sector_size,
            512,
            "not negotiated"
        );
        assert_eq!(info(big, all, 64).sectors, 2048 / 128);
        let empty = RawConfig {
            capacity: 0,
            ..base
        };
        assert_eq!(info(empty, all, 64).sectors, 0);
        let huge = RawConfig {
            capacity: u64::MAX,
            blk_size: 4096,
            ..base
        };
        assert_eq!(info(huge, all, 64).sectors, u64::MAX / 8);
        assert_eq!(info(huge, all, 64).bytes(), u64::MAX, "saturates");
        // Request size: size_max, else 1 MiB; at most 1 MiB; whole sectors, at least one.
        assert_eq!(info(base, all, 64).max_request_bytes, DEFAULT_REQUEST_BYTES);
        let sm = |size_max, blk_size| RawConfig {
            size_max,
            blk_size,
            ..base
        };
        assert_eq!(info(sm(100, 512), all, 64).max_request_bytes, 512);
        assert_eq!(info(sm(5000, 4096), all, 64).max_request_bytes, 4096);
        assert_eq!(
            info(sm(1 << 30, 512), all, 64).max_request_bytes,
            MAX_REQUEST_BYTES
        );
        assert_eq!(
            info(sm(4096, 512), all & !F_SIZE_MAX, 64).max_request_bytes,
            DEFAULT_REQUEST_BYTES
        );
        // In flight: a third of the queue, at most the budget.
        assert_eq!(info(base, all, 4).max_in_flight, 1);
        assert_eq!(info(base, all, 16).max_in_flight, 5);
        assert_eq!(info(base, all, 1024).max_in_flight, 8);
        // Cache and read-only from the features.
        assert_eq!(info(base, all & !F_FLUSH, 64).cache, CacheMode::NoFlush);
        assert!(info(base, all, 64).read_only);
        assert!(!info(base, all & !F_RO, 64).read_only);
    }

    #[test]
    fn writes_and_reads_round_trip_through_the_device_in_512_byte_units() {
        for blk_size in [512u32, 4096] {
            let mut r = regs(2048);
            r.set_config(offset_of!(Config, blk_size), &blk_size.to_le_bytes());
            let (mut blk, mut disk, _) = start(r, 2048 * 512);
            let ss = blk_size as usize;
            let pattern: Vec<u8> = (0..2 * ss).map(|i| (i * 7 + 3) as u8).collect();
            let w = Request::Write {
                sector: 3,
                buf: pattern.clone(),
            };
            let c = run(&mut blk, &mut disk, 1, w);
            assert_eq!(c.result, Ok(pattern.clone()), "the buffer comes back");
            let per = u64::from(blk_size / 512);
            assert_eq!(disk.seen, [(T_OUT, 3 * per, 2 * ss)]);
            assert_eq!(&disk.data[3 * ss..5 * ss], &pattern[..]);
            let c = run(&mut blk, &mut disk, 2, read(3, 2 * ss));
            assert_eq!(c.result, Ok(pattern.clone()));
            let c = run(&mut blk, &mut disk, 3, read(0, ss));
            let first = c.result.unwrap();
            let medium: Vec<u8> = (0..ss).map(|i| (i / 512) as u8).collect();
            assert_eq!(first, medium, "sector 0 of the initial medium");
            let s = blk.stats();
            assert_eq!(
                (s.reads, s.writes, s.bytes_read, s.bytes_written),
                (2, 1, 3 * ss as u64, 2 * ss as u64)
            );
            assert_eq!((s.refused, s.failed, s.bad_completions), (0, 0, 0));
        }
    }

    #[test]
    fn several_requests_are_in_flight_at_once_and_complete_in_device_order() {
        let (mut blk, mut disk, regs) = dev();
        let before = regs.borrow().notified;
        for tag in 0..4u64 {
            assert_eq!(blk.submit(tag, read(tag * 10, 1024)), Submitted::Queued);
        }
        assert_eq!(blk.in_flight(), 4);
        assert!(regs.borrow().notified > before, "the device was told");
        // The device finishes them in reverse order.
        let mut heads = Vec::new();
        while let Some(h) = disk.take(&blk) {
            heads.push(h);
        }
        for &h in heads.iter().rev() {
            let len = disk.execute(&mut blk, h);
            blk.queue.device_complete(u32::from(h), len);
        }
        let tags: Vec<u64> = core::iter::from_fn(|| blk.complete())
            .map(|c| {
                let buf = c.result.unwrap();
                let at = (c.tag * 10) as u8;
                assert!(buf[..512].iter().all(|&b| b == at), "tag {}", c.tag);
                assert!(buf[512..].iter().all(|&b| b == at + 1), "tag {}", c.tag);
                c.tag
            })
            .collect();
        assert_eq!(tags, [3, 2, 1, 0]);
        assert_eq!(blk.in_flight(), 0);
    }

    #[test]
    fn flush_reaches_the_device_only_if_it_can_flush() {
        let (mut blk, mut disk, _) = dev();
        let c = run(&mut blk, &mut disk, 5, Request::Flush);
        assert_eq!(c.result, Ok(Vec::new()));
        assert_eq!((disk.flushes, blk.stats().flushes), (1, 1));
        assert_eq!(disk.seen, [(T_FLUSH, 0, 0)], "header and status only");

        let mut r = regs(2048);
        r.offered &= !F_FLUSH;
        let (mut blk, mut disk, regs) = start(r, 2048 * 512);
        assert_eq!(blk.info().cache, CacheMode::NoFlush);
        let notified = regs.borrow().notified;
        assert_eq!(blk.submit(6, Request::Flush), Submitted::Queued);
        assert_eq!(blk.complete().unwrap().result, Err(BlockError::Unsupported));
        assert_eq!(disk.serve(&mut blk), 0, "nothing reached the device");
        assert_eq!(regs.borrow().notified, notified);
        assert_eq!(blk.stats().refused, 1);
    }

    #[test]
    fn bad_requests_complete_at_once_with_their_error_without_touching_the_device() {
        let (mut blk, mut disk, regs) = dev();
        let notified = regs.borrow().notified;
        let bad = [
            read(2047, 1024),
            read(u64::MAX, 512),
            read(0, 0),
            read(0, 513),
            read(0, 128 << 10 | 512),
        ];
        for (tag, req) in bad.into_iter().enumerate() {
            assert_eq!(blk.submit(tag as u64, req), Submitted::Queued);
        }
        let errs: Vec<_> = core::iter::from_fn(|| blk.complete())
            .map(|c| (c.tag, c.result.unwrap_err()))
            .collect();
        assert!(matches!(
            errs[0],
            (
                0,
                BlockError::OutOfRange {
                    sector: 2047,
                    count: 2,
                    capacity: 2048
                }
            )
        ));
        assert!(matches!(errs[1], (1, BlockError::OutOfRange { .. })));
        assert!(matches!(
            errs[2],
            (2, BlockError::Misaligned { len: 0, .. })
        ));
        assert!(matches!(
            errs[3],
            (3, BlockError::Misaligned { len: 513, .. })
        ));
        assert!(matches!(errs[4], (4, BlockError::TooLarge { len, max: 131072 }) if len == 131584));
        assert_eq!(disk.serve(&mut blk), 0);
        assert_eq!(regs.borrow().notified, notified);
        assert_eq!(blk.stats().refused, 5);

        let mut r = regs_ro();
        r.queue_max = 8;
        let (mut blk, mut disk, _) = start(r, 2048 * 512);
        assert!(blk.info().read_only);
        let w = Request::Write {
            sector: 0,
            buf: alloc::vec![1; 512],
        };
        assert_eq!(blk.submit(1, w), Submitted::Queued);
        assert_eq!(blk.submit(2, Request::Flush), Submitted::Queued);
        assert_eq!(blk.complete().unwrap().result, Err(BlockError::ReadOnly));
        assert_eq!(blk.complete().unwrap().result, Err(BlockError::ReadOnly));
        assert_eq!(disk.serve(&mut blk), 0);
        let c = run(&mut blk, &mut disk, 3, read(0, 512));
        assert!(c.result.is_ok(), "reads still work");
    }

    fn regs_ro() -> Regs {
        let mut r = regs(2048);
        r.offered |= F_RO;
        r
    }

    #[test]
    fn busy_when_every_slot_is_in_flight_and_room_again_after_a_completion() {
        let (mut blk, mut disk, _) = dev();
        let max = blk.info().max_in_flight;
        for tag in 0..max as u64 {
            assert_eq!(blk.submit(tag, read(tag, 512)), Submitted::Queued);
        }
        let req = Request::Write {
            sector: 9,
            buf: alloc::vec![9; 512],
        };
        let Submitted::Busy(back) = blk.submit(99, req) else {
            panic!("expected Busy");
        };
        assert_eq!(
            back,
            Request::Write {
                sector: 9,
                buf: alloc::vec![9; 512]
            },
            "the request comes back whole"
        );
        // One completion, not yet collected: submit collects it and has room again.
        let h = disk.take(&blk).unwrap();
        let len = disk.execute(&mut blk, h);
        blk.queue.device_complete(u32::from(h), len);
        assert_eq!(blk.submit(99, back), Submitted::Queued);
        assert_eq!(blk.complete().unwrap().tag, 0);
        disk.serve(&mut blk);
        assert_eq!(core::iter::from_fn(|| blk.complete()).count(), max);
    }

    #[test]
    fn device_errors_become_io_and_unsupported() {
        let (mut blk, mut disk, _) = dev();
        for (st, want) in [
            (S_IOERR, BlockError::Io),
            (S_UNSUPP, BlockError::Unsupported),
        ] {
            blk.submit(1, read(0, 512));
            let h = disk.take(&blk).unwrap();
            let len = disk.execute(&mut blk, h);
            Disk::set_status(&mut blk, h, st);
            blk.queue.device_complete(u32::from(h), len);
            assert_eq!(blk.complete().unwrap().result, Err(want));
        }
        // A read past the medium's end (the device is smaller than it claims): IOERR.
        let c = run(&mut blk, &mut disk, 2, read(2047, 512));
        assert!(c.result.is_ok());
        disk.data.truncate(1024);
        let c = run(&mut blk, &mut disk, 3, read(2047, 512));
        assert_eq!(c.result, Err(BlockError::Io));
        let s = blk.stats();
        assert_eq!((s.failed, s.bad_completions, s.reads), (3, 0, 1));
    }

    #[test]
    fn impossible_statuses_fail_the_request_and_are_counted() {
        let (mut blk, mut disk, _) = dev();
        for st in [S_UNSET, 7] {
            blk.submit(1, read(0, 512));
            let h = disk.take(&blk).unwrap();
            let len = disk.execute(&mut blk, h);
            Disk::set_status(&mut blk, h, st);
            blk.queue.device_complete(u32::from(h), len);
            let r = blk.complete().unwrap().result;
            assert!(
                matches!(&r, Err(BlockError::Device(m)) if m.contains("not a status")),
                "{r:?}"
            );
        }
        // A device that completes without writing the status at all.
        blk.submit(2, Request::Flush);
        let h = disk.take(&blk).unwrap();
        blk.queue.device_complete(u32::from(h), 1);
        assert!(matches!(
            blk.complete().unwrap().result,
            Err(BlockError::Device(_))
        ));
        let s = blk.stats();
        assert_eq!(
            (s.bad_completions, s.failed, s.reads, s.flushes),
            (3, 0, 0, 0)
        );
        assert_eq!(blk.in_flight(), 0, "every slot is back");
    }

    #[test]
    fn impossible_used_lengths_fail_the_request_and_are_counted() {
        let (mut blk, mut disk, _) = dev();
        // A read may report data + status (513), a write or flush only the status (1).
        let w = Request::Write {
            sector: 0,
            buf: alloc::vec![1; 512],
        };
        for (req, len, ok) in [
            (read(0, 512), 513, true),
            (read(0, 512), 514, false),
            (w, 2, false),
            (Request::Flush, 1, true),
            (Request::Flush, u32::MAX, false),
            (read(0, 512), 1, true),
        ] {
            blk.submit(1, req);
            let h = disk.take(&blk).unwrap();
            disk.execute(&mut blk, h);
            blk.queue.device_complete(u32::from(h), len);
            let r = blk.complete().unwrap().result;
            assert_eq!(r.is_ok(), ok, "len {len}: {r:?}");
            if !ok {
                assert!(
                    matches!(&r, Err(BlockError::Device(m)) if m.contains(&len.to_string())),
                    "{r:?}"
                );
            }
        }
        assert_eq!(blk.stats().bad_completions, 3);
    }

    #[test]
    fn unknown_and_repeated_ids_are_counted_and_change_nothing() {
        let (mut blk, mut disk, _) = dev();
        blk.submit(1, read(5, 512));
        blk.submit(2, read(6, 512));
        let first = disk.take(&blk).unwrap();
        let second = disk.take(&blk).unwrap();
        let len = disk.execute(&mut blk, first);
        blk.queue.device_complete(u32::from(first), len);
        assert_eq!(blk.complete().unwrap().tag, 1);
        // Unknown ids, the finished request again, and a descriptor inside the pending chain.
        let inner = blk.queue.device_desc(second).next;
        for id in [999, u32::MAX, u32::from(first), u32::from(inner)] {
            blk.queue.device_complete(id, 1);
        }
        assert!(blk.complete().is_none(), "no request completes");
        assert_eq!(blk.stats().bad_completions, 4);
        assert_eq!(blk.in_flight(), 1);
        let len = disk.execute(&mut blk, second);
        blk.queue.device_complete(u32::from(second), len);
        let c = blk.complete().unwrap();
        assert_eq!(
            (c.tag, c.result.unwrap()[0]),
            (2, 6),
            "the pending request is intact"
        );
        assert_eq!(blk.stats().reads, 2);
    }

    #[test]
    fn a_repeated_id_that_names_a_reused_slot_fails_that_request_not_the_memory() {
        // With one request at a time, the device's second completion of a finished request
        // names the head of the next one, which the device has not carried out: its status is
        // still the preset 0xFF, so the request fails as a device error, never as success.
        let mut r = regs(2048);
        r.queue_max = 4;
        let (mut blk, mut disk, _) = start(r, 2048 * 512);
        assert_eq!(blk.info().max_in_flight, 1);
        blk.submit(1, read(1, 512));
        let h = disk.take(&blk).unwrap();
        let len = disk.execute(&mut blk, h);
        blk.queue.device_complete(u32::from(h), len);
        assert!(blk.complete().unwrap().result.is_ok());
        blk.submit(2, read(2, 512));
        let h2 = disk.take(&blk).unwrap();
        assert_eq!(h2, h, "the same descriptors again");
        blk.queue.device_complete(u32::from(h), len); // the stale completion
        let c = blk.complete().unwrap();
        assert_eq!(c.tag, 2);
        assert!(matches!(c.result, Err(BlockError::Device(_))));
        assert_eq!(blk.stats().bad_completions, 1);
    }

    #[test]
    fn queues_too_small_for_a_request_are_refused_at_start() {
        for size in [1u16, 2] {
            let mut r = regs(2048);
            r.queue_max = size;
            let regs = Rc::new(RefCell::new(r));
            let e = VirtioBlk::new(Box::new(Fake(regs.clone())), budget()).err();
            assert_eq!(e, Some(InitError::QueueTooSmall { size, need: 3 }));
            assert_eq!(regs.borrow().status, status::FAILED);
        }
        let mut r = regs(2048);
        r.queue_max = 100;
        let e = VirtioBlk::new(Box::new(Fake(Rc::new(RefCell::new(r)))), budget()).err();
        assert_eq!(e, Some(InitError::BadQueueSize(100)));
    }

    #[test]
    fn an_empty_disk_refuses_every_transfer_but_flushes() {
        let (mut blk, mut disk, _) = start(regs(0), 0);
        assert_eq!(blk.info().sectors, 0);
        let c = run(&mut blk, &mut disk, 1, Request::Flush);
        assert!(c.result.is_ok());
        blk.submit(2, read(0, 512));
        assert!(matches!(
            blk.complete().unwrap().result,
            Err(BlockError::OutOfRange { capacity: 0, .. })
        ));
    }

    #[test]
    fn legacy_devices_use_the_same_framing_without_version_1() {
        let mut r = regs(2048);
        r.modern = false;
        r.offered &= !transport::F_VERSION_1;
        r.queue_max = 16;
        let (mut blk, mut disk, regs) = start(r, 2048 * 512);
        assert_eq!(regs.borrow().accepted, FEATURES & !F_RO);
        assert_eq!(
            blk.queue_size(),
            16,
            "a legacy PCI queue has the device's size"
        );
        let w = Request::Write {
            sector: 7,
            buf: alloc::vec![0xab; 1024],
        };
        assert!(run(&mut blk, &mut disk, 1, w).result.is_ok());
        assert_eq!(
            run(&mut blk, &mut disk, 2, read(7, 1024)).result,
            Ok(alloc::vec![0xab; 1024])
        );
    }

    #[test]
    fn interrupts_are_acknowledged_and_a_resize_is_seen() {
        let (mut blk, _, regs) = dev();
        blk.service();
        assert_eq!(blk.stats().interrupts, 0, "no interrupt pending");
        regs.borrow_mut().isr = transport::ISR_QUEUE;
        blk.service();
        assert_eq!(blk.stats().interrupts, 1);
        assert_eq!(regs.borrow().isr, 0, "acknowledged");
        regs.borrow_mut()
            .set_config(0, &(4 * GIB / 512).to_le_bytes());
        regs.borrow_mut().isr = transport::ISR_CONFIG;
        blk.service();
        assert_eq!(blk.info().sectors, 4 * GIB / 512);
    }

    #[test]
    fn an_empty_or_unsupported_device_id_is_no_serial_and_no_failure() {
        for id in [Some(&b""[..]), None] {
            let regs = Rc::new(RefCell::new(regs(2048)));
            let mut blk = VirtioBlk::new(Box::new(Fake(regs.clone())), budget()).unwrap();
            let mut disk = Disk::new(2048 * 512);
            disk.id = id;
            assert_eq!(disk.serve(&mut blk), 1);
            assert!(blk.complete().is_none());
            assert_eq!(blk.serial(), None);
            assert!(!blk.describe().contains("serial"), "{}", blk.describe());
            let s = blk.stats();
            assert_eq!((s.failed, s.bad_completions), (0, 0), "{id:?}");
            assert_eq!(blk.in_flight(), 0);
        }
    }

    #[test]
    fn device_ids_are_cut_at_the_first_nul_and_shown_printable() {
        assert_eq!(parse_id(b"disk-7\0\0\0garbage"), "disk-7");
        assert_eq!(
            parse_id(&[b'a'; 24]),
            "a".repeat(20),
            "a full id has no NUL"
        );
        assert_eq!(parse_id(b"a\x01b\xffc"), "a?b?c");
        assert_eq!(parse_id(b""), "");
    }

    #[test]
    fn sizes_are_printed_for_people() {
        assert_eq!(human(0), "0 bytes");
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(64 << 10), "64 KiB");
        assert_eq!(human(1536 << 20), "1.5 GiB");
        assert!(
            human(u64::MAX).ends_with(" TiB"),
            "the largest unit, no overflow"
        );
    }
}
