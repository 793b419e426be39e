//! Block devices: the contract between a disk driver and the runtime (and, through the
//! runtime's async wrapper, the key-value store).
//!
//! # The device side: owned buffers, submit then complete
//!
//! A request owns its buffer from [`BlockDevice::submit`] until the device hands it back in a
//! [`Completion`]: the device may be writing into it (DMA) the whole time, so no reference to
//! it exists outside the driver. A future that is dropped mid-request therefore never leaves a
//! device writing into freed memory; its completion simply arrives for nobody and is
//! discarded. Every request the driver accepts gets exactly one completion, including requests
//! it refuses (out of range, misaligned, read-only): those complete at once with the error.
//!
//! # The contract every user relies on
//!
//! - **No ordering among in-flight requests.** Two requests submitted before either completed
//!   may reach the medium in either order. To order writes, wait for the first to complete.
//! - **A flush covers completed writes only.** After a flush completes, every write that had
//!   *completed* before the flush was submitted is durable (survives power loss). Writes still
//!   in flight when the flush was submitted are not covered.
//! - **A sector may tear.** If power fails during a write, any sector it covers may hold the
//!   old contents, the new contents, or (on some media) a mix; sectors never written are
//!   untouched. A completed write is not durable until a later flush completes, unless the
//!   device reports [`CacheMode::WriteThrough`].
//! - Transfers are whole sectors of [`BlockInfo::sector_size`] bytes (taken from the device),
//!   at most [`BlockInfo::max_request_bytes`] per request; there is no short I/O: a request
//!   either transfers all its bytes or fails.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// What a completed write means for durability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheMode {
    /// A completed write is durable: the device has no volatile cache (or runs it in
    /// write-through mode). Flushes are accepted and cost little.
    WriteThrough,
    /// A completed write may sit in a volatile cache: it is durable only once a flush
    /// submitted after it completed has completed.
    Volatile,
    /// The device cannot flush and does not promise that completed writes are durable. Nothing
    /// stored on it is safe from a power cut; the key-value store warns loudly.
    NoFlush,
}

impl CacheMode {
    /// Short name for logs: `write-through`, `volatile`, `no-flush`.
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::WriteThrough => "write-through",
            CacheMode::Volatile => "volatile",
            CacheMode::NoFlush => "no-flush",
        }
    }
}

/// Static properties of a block device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Bytes per sector: the unit of every transfer (512 or 4096 on real devices; a power of
    /// two from 512 to 65,536).
    pub sector_size: u32,
    /// Number of sectors.
    pub sectors: u64,
    /// Writes (and flushes) are refused with [`BlockError::ReadOnly`].
    pub read_only: bool,
    /// Largest transfer of one request, in bytes (a whole number of sectors, at least one).
    pub max_request_bytes: usize,
    /// How many requests may be in flight at once (at least one).
    pub max_in_flight: usize,
    /// What a completed write means.
    pub cache: CacheMode,
}

impl BlockInfo {
    /// Capacity in bytes.
    pub fn bytes(&self) -> u64 {
        self.sectors.saturating_mul(u64::from(self.sector_size))
    }

    /// Checks a read or write of `len` bytes at `sector` against this device: whole sectors,
    /// not more than one request may carry, inside the device, and (for writes) a writable
    /// device. Every driver calls this before it touches the device.
    pub fn check(&self, sector: u64, len: usize, write: bool) -> Result<(), BlockError> {
        let ss = self.sector_size as usize;
        if len == 0 || ss == 0 || !len.is_multiple_of(ss) {
            return Err(BlockError::Misaligned {
                len,
                sector_size: self.sector_size,
            });
        }
        if len > self.max_request_bytes {
            return Err(BlockError::TooLarge {
                len,
                max: self.max_request_bytes,
            });
        }
        let count = (len / ss) as u64;
        if sector
            .checked_add(count)
            .is_none_or(|end| end > self.sectors)
        {
            return Err(BlockError::OutOfRange {
                sector,
                count,
                capacity: self.sectors,
            });
        }
        if write && self.read_only {
            return Err(BlockError::ReadOnly);
        }
        Ok(())
    }
}

/// Why a block request failed. Every variant says what to do about it in its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The request reaches past the end of the device.
    OutOfRange {
        /// First sector asked for.
        sector: u64,
        /// Number of sectors asked for.
        count: u64,
        /// Sectors the device has.
        capacity: u64,
    },
    /// The buffer is empty or not a whole number of sectors.
    Misaligned {
        /// The buffer's length.
        len: usize,
        /// The device's sector size.
        sector_size: u32,
    },
    /// The buffer is larger than one request may carry (split it).
    TooLarge {
        /// The buffer's length.
        len: usize,
        /// The largest request.
        max: usize,
    },
    /// The device is read-only.
    ReadOnly,
    /// The device reported an I/O error.
    Io,
    /// The device does not support the operation (for instance a flush on a device that
    /// cannot flush).
    Unsupported,
    /// The device broke the protocol (an impossible completion) or the backend failed; the
    /// message says how. The request's outcome is unknown.
    Device(String),
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::OutOfRange {
                sector,
                count,
                capacity,
            } => write!(
                f,
                "out of range: sectors {sector}..{} of a device with {capacity}",
                sector.saturating_add(*count)
            ),
            BlockError::Misaligned { len, sector_size } => write!(
                f,
                "misaligned: {len} bytes is not a whole number of {sector_size}-byte sectors"
            ),
            BlockError::TooLarge { len, max } => {
                write!(
                    f,
                    "request of {len} bytes is larger than the device's {max}"
                )
            }
            BlockError::ReadOnly => f.write_str("the device is read-only"),
            BlockError::Io => f.write_str("the device reported an I/O error"),
            BlockError::Unsupported => f.write_str("the device does not support this operation"),
            BlockError::Device(why) => write!(f, "device error: {why}"),
        }
    }
}

/// One request, owning its buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Fill `buf` from `sector` on.
    Read {
        /// First sector.
        sector: u64,
        /// Its length is the transfer size.
        buf: Vec<u8>,
    },
    /// Write `buf` from `sector` on.
    Write {
        /// First sector.
        sector: u64,
        /// Its length is the transfer size.
        buf: Vec<u8>,
    },
    /// Make every completed write durable.
    Flush,
}

/// A finished request: the caller's tag and the buffer back (empty for a flush), or the error.
#[derive(Debug, PartialEq, Eq)]
pub struct Completion {
    /// The tag given to [`BlockDevice::submit`].
    pub tag: u64,
    /// The buffer (read: filled) or why the request failed.
    pub result: Result<Vec<u8>, BlockError>,
}

/// What [`BlockDevice::submit`] did with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Submitted {
    /// The request is the device's; its completion will come from [`BlockDevice::complete`].
    Queued,
    /// No room for another request now: here it is back. Try again after a completion.
    Busy(Request),
}

/// Counters a driver keeps. All are totals since the device was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Reads completed successfully.
    pub reads: u64,
    /// Writes completed successfully.
    pub writes: u64,
    /// Flushes completed successfully.
    pub flushes: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Requests refused before reaching the device (range, alignment, size, read-only).
    pub refused: u64,
    /// Requests the device failed (I/O error, unsupported).
    pub failed: u64,
    /// Impossible completions from the device (unknown or repeated id, wrong length, a status
    /// that is not a status): counted and dropped, never trusted.
    pub bad_completions: u64,
    /// Interrupts handled.
    pub interrupts: u64,
}

/// A block device driver.
pub trait BlockDevice {
    /// Static properties.
    fn info(&self) -> BlockInfo;
    /// Hands a request to the device under `tag` (the caller's choice; used only to match the
    /// completion). A request that breaks [`BlockInfo::check`] is accepted and completes at
    /// once with the error.
    fn submit(&mut self, tag: u64, req: Request) -> Submitted;
    /// A finished request, if any.
    fn complete(&mut self) -> Option<Completion>;
    /// Acknowledges the device's interrupt and collects finished requests. Call after every
    /// wake-up the device may have caused (it is cheap when there was nothing).
    fn service(&mut self);
    /// Counters.
    fn stats(&self) -> BlockStats;
    /// A one-line description for the boot log (model, serial, features).
    fn describe(&self) -> String;
}

/// The async face of a block device, as the runtime offers it (`fata::block::Disk`) and as the
/// key-value store uses it. Same contract as [`BlockDevice`].
#[allow(async_fn_in_trait)]
pub trait Disk {
    /// Static properties.
    fn info(&self) -> BlockInfo;
    /// Reads `buf.len()` bytes from `sector` on into `buf` and returns it.
    async fn read(&self, sector: u64, buf: Vec<u8>) -> Result<Vec<u8>, BlockError>;
    /// Writes `buf` from `sector` on, then returns it (to be reused).
    async fn write(&self, sector: u64, buf: Vec<u8>) -> Result<Vec<u8>, BlockError>;
    /// Makes every completed write durable.
    async fn flush(&self) -> Result<(), BlockError>;
}

/// Why a block device could not be acquired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// No device of that name (the message says what exists).
    NotFound(String),
    /// The device was already acquired.
    InUse,
    /// The device exists but could not be started (the message says why).
    Failed(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NotFound(why) => write!(f, "no such disk: {why}"),
            OpenError::InUse => f.write_str("the disk is already in use"),
            OpenError::Failed(why) => write!(f, "the disk failed to start: {why}"),
        }
    }
}

/// A platform without disks.
pub enum NoBlock {}

impl BlockDevice for NoBlock {
    fn info(&self) -> BlockInfo {
        match *self {}
    }
    fn submit(&mut self, _: u64, _: Request) -> Submitted {
        match *self {}
    }
    fn complete(&mut self) -> Option<Completion> {
        match *self {}
    }
    fn service(&mut self) {
        match *self {}
    }
    fn stats(&self) -> BlockStats {
        match *self {}
    }
    fn describe(&self) -> String {
        match *self {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> BlockInfo {
        BlockInfo {
            sector_size: 512,
            sectors: 100,
            read_only: false,
            max_request_bytes: 4096,
            max_in_flight: 4,
            cache: CacheMode::Volatile,
        }
    }

    #[test]
    fn check_refuses_every_kind_of_bad_request() {
        let i = info();
        assert_eq!(i.check(0, 512, true), Ok(()));
        assert_eq!(i.check(92, 4096, false), Ok(()));
        assert!(matches!(
            i.check(0, 0, false),
            Err(BlockError::Misaligned { .. })
        ));
        assert!(matches!(
            i.check(0, 513, false),
            Err(BlockError::Misaligned { .. })
        ));
        assert!(matches!(
            i.check(0, 8192, false),
            Err(BlockError::TooLarge { .. })
        ));
        assert!(matches!(
            i.check(93, 4096, false),
            Err(BlockError::OutOfRange { .. })
        ));
        assert!(matches!(
            i.check(u64::MAX, 512, false),
            Err(BlockError::OutOfRange { .. })
        ));
        let ro = BlockInfo {
            read_only: true,
            ..i
        };
        assert_eq!(ro.check(0, 512, true), Err(BlockError::ReadOnly));
        assert_eq!(ro.check(0, 512, false), Ok(()));
        assert_eq!(
            BlockError::OutOfRange {
                sector: u64::MAX,
                count: 2,
                capacity: 1
            }
            .to_string(),
            "out of range: sectors 18446744073709551615..18446744073709551615 of a device with 1"
        );
    }
}
