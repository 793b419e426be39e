//! The on-disk format: two superblock slots, then two log regions. All integers little endian.
//!
//! ```text
//! sector 0  superblock slot 0 ┐ both hold the newest superblock once a generation is
//! sector 1  superblock slot 1 ┘ complete; the slot gen%2 is written first
//! sector 2  region 0: the log of even generations
//! 2+R       region 1: the log of odd generations
//! ```
//!
//! A record starts on a sector boundary: a 64-byte header, then the payload (the operations of
//! one or more batches), padded with zeros to the next sector boundary.

use crate::crc::{crc32c, update};
use alloc::vec::Vec;

/// First bytes of a superblock.
pub const SB_MAGIC: [u8; 8] = *b"FATA-KV\0";
/// Format version this code writes and reads.
pub const VERSION: u32 = 1;
/// Bytes of a superblock that carry data (the rest of the sector is zero).
pub const SB_LEN: usize = 64;
/// First bytes of a record header.
pub const REC_MAGIC: [u8; 4] = *b"FKVR";
/// Bytes of a record header.
pub const HEADER_LEN: usize = 64;
/// Bytes an operation takes besides its key and value: kind, key length, value length, CRC.
pub const OP_OVERHEAD: usize = 1 + 2 + 4 + 4;
/// Sectors before the first region (the two superblock slots).
pub const SB_SECTORS: u64 = 2;

/// Operation kinds.
pub const OP_PUT: u8 = 1;
/// A deletion (no value).
pub const OP_DELETE: u8 = 2;

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The superblock: which generation (and so which region) holds the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Sector size the store was formatted with.
    pub sector_size: u32,
    /// Random identity chosen at format time; every record carries it.
    pub store_id: u64,
    /// Generation: incremented by every compaction. The log is in region `gen % 2`.
    pub generation: u64,
    /// Identity of the compaction that made this generation: every record of the generation
    /// carries it, so records of an abandoned attempt at the same generation never count.
    pub epoch: u64,
    /// Sectors per region.
    pub region_sectors: u64,
    /// Sectors of the disk when it was formatted.
    pub disk_sectors: u64,
}

/// What a superblock slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// A valid superblock.
    Valid(Superblock),
    /// Our magic, but a bad checksum or impossible fields (torn or corrupt).
    Damaged,
    /// Something else (zeros, another format).
    Foreign,
}

impl Superblock {
    /// The first sector of the region of this generation.
    pub fn region_start(&self) -> u64 {
        SB_SECTORS + (self.generation % 2) * self.region_sectors
    }

    /// The superblock as the first bytes of a sector of `sector_size` bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = alloc::vec![0u8; self.sector_size as usize];
        b[0..8].copy_from_slice(&SB_MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.sector_size.to_le_bytes());
        b[16..24].copy_from_slice(&self.store_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.generation.to_le_bytes());
        b[32..40].copy_from_slice(&self.region_sectors.to_le_bytes());
        b[40..48].copy_from_slice(&self.disk_sectors.to_le_bytes());
        b[48..56].copy_from_slice(&self.epoch.to_le_bytes());
        let c = crc32c(&b[..SB_LEN - 4]);
        b[SB_LEN - 4..SB_LEN].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// Reads a slot. `Err(version)` for a valid superblock of another format version.
    pub fn decode(b: &[u8]) -> Result<Slot, u32> {
        if b.len() < SB_LEN || b[0..8] != SB_MAGIC {
            return Ok(Slot::Foreign);
        }
        if le_u32(b, SB_LEN - 4) != crc32c(&b[..SB_LEN - 4]) {
            return Ok(Slot::Damaged);
        }
        let version = le_u32(b, 8);
        if version != VERSION {
            return Err(version);
        }
        let sb = Superblock {
            sector_size: le_u32(b, 12),
            store_id: le_u64(b, 16),
            generation: le_u64(b, 24),
            region_sectors: le_u64(b, 32),
            disk_sectors: le_u64(b, 40),
            epoch: le_u64(b, 48),
        };
        let sane = sb.sector_size.is_power_of_two()
            && sb.sector_size >= 512
            && sb.region_sectors > 0
            && sb
                .region_sectors
                .checked_mul(2)
                .and_then(|r| r.checked_add(SB_SECTORS))
                .is_some_and(|end| end <= sb.disk_sectors);
        Ok(if sane { Slot::Valid(sb) } else { Slot::Damaged })
    }
}

/// A record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The store's identity (from the superblock).
    pub store_id: u64,
    /// The epoch of the generation the record belongs to ([`Superblock::epoch`]).
    pub epoch: u64,
    /// Position in the generation's log, from 0.
    pub seq: u64,
    /// The header checksum of the previous record (the chain; [`chain_seed`] for seq 0).
    pub prev: u32,
    /// Payload bytes after the header.
    pub len: u32,
    /// CRC-32C of the payload.
    pub payload_crc: u32,
}

/// The `prev` of a generation's first record.
pub fn chain_seed(store_id: u64, epoch: u64) -> u32 {
    update(crc32c(&store_id.to_le_bytes()), &epoch.to_le_bytes())
}

/// The epoch of a compaction into `generation` from a log whose last record had checksum
/// `prev`, sequence `seq` and ended at `tail`: equal only for compactions of the same state,
/// which write the same records.
pub fn epoch_of(store_id: u64, generation: u64, prev: u32, seq: u64, tail: u64) -> u64 {
    let mut b = [0u8; 36];
    b[0..8].copy_from_slice(&store_id.to_le_bytes());
    b[8..16].copy_from_slice(&generation.to_le_bytes());
    b[16..20].copy_from_slice(&prev.to_le_bytes());
    b[20..28].copy_from_slice(&seq.to_le_bytes());
    b[28..36].copy_from_slice(&tail.to_le_bytes());
    let lo = crc32c(&b);
    let hi = update(lo, &b);
    (u64::from(hi) << 32) | u64::from(lo)
}

impl Header {
    /// Encodes into the first [`HEADER_LEN`] bytes of `out`; returns the header checksum (the
    /// next record's `prev`).
    pub fn encode(&self, out: &mut [u8]) -> u32 {
        let b = &mut out[..HEADER_LEN];
        b.fill(0);
        b[0..4].copy_from_slice(&REC_MAGIC);
        b[8..16].copy_from_slice(&self.store_id.to_le_bytes());
        b[16..24].copy_from_slice(&self.epoch.to_le_bytes());
        b[24..32].copy_from_slice(&self.seq.to_le_bytes());
        b[32..36].copy_from_slice(&self.prev.to_le_bytes());
        b[36..40].copy_from_slice(&self.len.to_le_bytes());
        b[40..44].copy_from_slice(&self.payload_crc.to_le_bytes());
        let c = crc32c(&b[..HEADER_LEN - 4]);
        b[HEADER_LEN - 4..].copy_from_slice(&c.to_le_bytes());
        c
    }

    /// Decodes a header whose magic and checksum are right, with its checksum.
    pub fn decode(b: &[u8]) -> Option<(Header, u32)> {
        if b.len() < HEADER_LEN || b[0..4] != REC_MAGIC {
            return None;
        }
        let c = le_u32(b, HEADER_LEN - 4);
        if c != crc32c(&b[..HEADER_LEN - 4]) {
            return None;
        }
        Some((
            Header {
                store_id: le_u64(b, 8),
                epoch: le_u64(b, 16),
                seq: le_u64(b, 24),
                prev: le_u32(b, 32),
                len: le_u32(b, 36),
                payload_crc: le_u32(b, 40),
            },
            c,
        ))
    }
}

/// Bytes a record of `payload` bytes takes on a disk of `sector_size`-byte sectors.
pub fn record_bytes(payload: usize, sector_size: usize) -> usize {
    (HEADER_LEN + payload).next_multiple_of(sector_size)
}

/// Encoded size of an operation.
pub fn op_len(key: usize, value: usize) -> usize {
    OP_OVERHEAD + key + value
}

/// Appends one operation (`value` is `None` for a deletion).
pub fn encode_op(out: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>) {
    let start = out.len();
    out.push(if value.is_some() { OP_PUT } else { OP_DELETE });
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    let v = value.unwrap_or(&[]);
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(v);
    let c = crc32c(&out[start..]);
    out.extend_from_slice(&c.to_le_bytes());
}

/// One decoded operation, borrowing the record's bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Op<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value, `None` for a deletion.
    pub value: Option<&'a [u8]>,
    /// Encoded length.
    pub len: usize,
}

/// Decodes the operation at the start of `b`, checking its checksum; `None` if it is cut
/// short, of an unknown kind, or corrupt.
pub fn decode_op(b: &[u8]) -> Option<Op<'_>> {
    if b.len() < OP_OVERHEAD {
        return None;
    }
    let kind = b[0];
    let klen = usize::from(u16::from_le_bytes([b[1], b[2]]));
    let vlen = le_u32(b, 3) as usize;
    let body = 7usize.checked_add(klen)?.checked_add(vlen)?;
    let len = body.checked_add(4)?;
    if len > b.len() || le_u32(b, body) != crc32c(&b[..body]) {
        return None;
    }
    let key = &b[7..7 + klen];
    let value = match kind {
        OP_PUT => Some(&b[7 + klen..body]),
        OP_DELETE if vlen == 0 => None,
        _ => return None,
    };
    Some(Op { key, value, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_round_trips_and_any_flipped_bit_is_caught() {
        let sb = Superblock {
            sector_size: 512,
            store_id: 0x1234_5678_9abc_def0,
            generation: 7,
            epoch: 3,
            region_sectors: 100,
            disk_sectors: 202,
        };
        let b = sb.encode();
        assert_eq!(Superblock::decode(&b), Ok(Slot::Valid(sb)));
        for bit in 8 * 8..SB_LEN * 8 {
            let mut c = b.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Superblock::decode(&c), Ok(Slot::Damaged), "bit {bit}");
        }
        assert_eq!(Superblock::decode(&[0; 512]), Ok(Slot::Foreign));
        // Regions that do not fit the disk are damage, not a reason to read past the end.
        let bad = Superblock {
            region_sectors: u64::MAX,
            ..sb
        };
        assert_eq!(Superblock::decode(&bad.encode()), Ok(Slot::Damaged));
    }

    #[test]
    fn headers_and_ops_round_trip_and_reject_damage() {
        let h = Header {
            store_id: 9,
            epoch: 2,
            seq: 5,
            prev: 77,
            len: 300,
            payload_crc: 1,
        };
        let mut b = [0u8; 512];
        let c = h.encode(&mut b);
        assert_eq!(Header::decode(&b), Some((h, c)));
        b[30] ^= 4;
        assert_eq!(Header::decode(&b), None);

        let mut ops = Vec::new();
        encode_op(&mut ops, b"key", Some(b"value"));
        encode_op(&mut ops, b"gone", None);
        let a = decode_op(&ops).unwrap();
        assert_eq!((a.key, a.value), (&b"key"[..], Some(&b"value"[..])));
        let d = decode_op(&ops[a.len..]).unwrap();
        assert_eq!((d.key, d.value), (&b"gone"[..], None));
        for i in 0..a.len {
            let mut x = ops.clone();
            x[i] ^= 0x10;
            assert_ne!(decode_op(&x).map(|o| o.value), Some(Some(&b"value"[..])));
        }
        // Hostile lengths never read past the buffer.
        let mut hostile = alloc::vec![OP_PUT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        hostile.extend_from_slice(&[0; 8]);
        assert_eq!(decode_op(&hostile), None);
        assert_eq!(decode_op(&ops[..5]), None);
    }
}
