//! `fata-kv`: a persistent key-value store on one block device that never loses an
//! acknowledged write.
//!
//! The design (full description in `docs/storage.md`): a log of checksummed records in one of
//! two regions, two superblock slots naming the region in use, an in-memory index from key to
//! the place of its newest value on disk, group commit, and compaction that copies the live
//! values into the other region and flips the superblock.
//!
//! - A commit is acknowledged only after its record is written **and flushed**.
//! - A sector holding acknowledged data is never written again while it is reachable: records
//!   are appended after the last one, and compaction writes into the region not in use.
//! - Recovery at open replays records while their checksums, sequence numbers and chain hold,
//!   and stops at the first torn or corrupt one. If a valid record of the same log follows the
//!   bad one, the bad one cannot be a torn tail: the store refuses to open with
//!   [`Error::Corrupt`] rather than silently drop acknowledged data.
//! - Every value read is checked against its checksum: a corrupt value is an error, never
//!   served.
//! - A batch is one record: it is applied entirely or not at all.
//!
//! The store is written against [`fata_hal::block::Disk`] only, so it runs on any platform and
//! on the simulated disk of its tests, which crash it at every point.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod crc;
mod format;
mod store;
#[cfg(test)]
mod tests;

pub use fata_hal::block::{BlockError, CacheMode, Disk};
pub use store::{Committer, Entry, OpenOptions, Stats, Store, WeakStore, Write};

use alloc::string::String;
use core::fmt;

/// Longest key, in bytes.
pub const MAX_KEY: usize = 1024;
/// Longest value, in bytes (smaller on disks too small for it: see [`Stats::max_value`]).
pub const MAX_VALUE: usize = 1 << 20;
/// Largest record (one group commit, or one batch), payload bytes.
pub const MAX_RECORD: usize = 4 << 20;
/// Smallest disk the store formats, in bytes.
pub const MIN_DISK: u64 = 64 * 1024;

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The device failed (the commit that met it may or may not have reached the disk).
    Io(BlockError),
    /// Data on the disk fails its checksum where it must not: `sector` is the first bad one.
    Corrupt {
        /// First sector of the damaged structure.
        sector: u64,
        /// What was damaged.
        what: &'static str,
    },
    /// The disk is blank and formatting was not asked for (`format=true`).
    NotFormatted,
    /// The disk holds something else; it was not touched.
    Foreign,
    /// The disk holds a store this version cannot read, or one made for another sector size.
    Incompatible(String),
    /// The disk is smaller than the store needs.
    TooSmall {
        /// The disk's size.
        bytes: u64,
        /// The smallest size that works.
        min: u64,
    },
    /// A key that is empty or longer than the limit.
    BadKey {
        /// Its length.
        len: usize,
    },
    /// A value longer than the limit.
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The limit on this disk.
        max: usize,
    },
    /// A batch larger than one record holds.
    BatchTooLarge {
        /// Its encoded size.
        bytes: usize,
        /// The limit on this disk.
        max: usize,
    },
    /// No room for the write even after compaction.
    Full {
        /// Bytes the write needs.
        need: u64,
        /// Bytes free after compaction.
        free: u64,
    },
    /// The disk is read-only: reads work, writes are refused.
    ReadOnly,
    /// An earlier write or flush failed, so what is on the disk is uncertain: writes are
    /// refused until the store is opened again (reads still work).
    Poisoned,
    /// The store's committer task has stopped.
    Closed,
}

impl From<BlockError> for Error {
    fn from(e: BlockError) -> Error {
        Error::Io(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "disk error: {e}"),
            Error::Corrupt { sector, what } => {
                write!(f, "corrupt data on disk: {what} at sector {sector}")
            }
            Error::NotFormatted => {
                f.write_str("the disk is blank; boot with format=true to create a store on it")
            }
            Error::Foreign => f.write_str(
                "the disk holds something that is not a fata store; it was left untouched",
            ),
            Error::Incompatible(why) => write!(f, "incompatible store: {why}"),
            Error::TooSmall { bytes, min } => {
                write!(
                    f,
                    "the disk has {bytes} bytes; a store needs at least {min}"
                )
            }
            Error::BadKey { len } => write!(
                f,
                "a key must be 1 to {MAX_KEY} bytes long (this one has {len})"
            ),
            Error::ValueTooLarge { len, max } => {
                write!(f, "a value of {len} bytes is over the limit of {max}")
            }
            Error::BatchTooLarge { bytes, max } => {
                write!(f, "a batch of {bytes} bytes is over the limit of {max}")
            }
            Error::Full { need, free } => write!(
                f,
                "the store is full: the write needs {need} bytes, {free} are free after compaction"
            ),
            Error::ReadOnly => f.write_str("the disk is read-only"),
            Error::Poisoned => f.write_str(
                "an earlier write or flush failed; writes are refused until the store is reopened",
            ),
            Error::Closed => f.write_str("the store's committer has stopped"),
        }
    }
}
