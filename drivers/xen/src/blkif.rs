//! The block protocol's messages (`io/blkif.h`, x86_64 ABI), encoded into and decoded from ring
//! entries. A request carries up to 11 segments, each a granted page and a range of 512-byte
//! sectors inside it; a response names the request's id, its operation and a status.
//!
//! Decoding trusts nothing: an unknown status, or an operation that does not match the
//! request with that id, is reported so the driver can count it and fail only that request.

/// Bytes of a ring entry (the larger of request and response).
pub const ENTRY: usize = 112;
/// Segments in one request.
pub const MAX_SEGMENTS: usize = 11;
/// Sectors per page (the protocol's sectors are 512 bytes).
pub const SECTORS_PER_PAGE: u8 = 8;

/// Operations.
pub mod op {
    /// Read.
    pub const READ: u8 = 0;
    /// Write.
    pub const WRITE: u8 = 1;
    /// Write barrier (ordering and durability of what came before).
    pub const WRITE_BARRIER: u8 = 2;
    /// Flush the disk's cache.
    pub const FLUSH_DISKCACHE: u8 = 3;
}

/// One segment: `first..=last` (512-byte sectors) of the page granted as `gref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The grant of the page.
    pub gref: u32,
    /// First sector in the page (0..=7).
    pub first: u8,
    /// Last sector in the page (`first..=7`).
    pub last: u8,
}

/// A request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// [`op`].
    pub op: u8,
    /// The device's handle (from xenstore's `virtual-device`).
    pub handle: u16,
    /// Our id, echoed in the response.
    pub id: u64,
    /// First 512-byte sector on the disk.
    pub sector: u64,
    /// The data (none for a flush).
    pub segments: Segments,
}

/// Up to [`MAX_SEGMENTS`] segments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Segments {
    items: [Option<Segment>; MAX_SEGMENTS],
    len: usize,
}

impl Segments {
    /// Adds a segment; `false` if full or if the sector range is not inside one page.
    pub fn push(&mut self, s: Segment) -> bool {
        if self.len == MAX_SEGMENTS || s.first > s.last || s.last >= SECTORS_PER_PAGE {
            return false;
        }
        self.items[self.len] = Some(s);
        self.len += 1;
        true
    }

    /// The segments.
    pub fn iter(&self) -> impl Iterator<Item = Segment> + '_ {
        self.items[..self.len].iter().flatten().copied()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Request {
    /// The entry: `{u8 op, u8 nr_segments, u16 handle, u32 pad, u64 id, u64 sector,
    /// seg[11] {u32 gref, u8 first, u8 last, u16 pad}}`.
    pub fn encode(&self) -> [u8; ENTRY] {
        let mut b = [0u8; ENTRY];
        b[0] = self.op;
        b[1] = self.segments.len() as u8;
        b[2..4].copy_from_slice(&self.handle.to_le_bytes());
        b[8..16].copy_from_slice(&self.id.to_le_bytes());
        b[16..24].copy_from_slice(&self.sector.to_le_bytes());
        for (i, s) in self.segments.iter().enumerate() {
            let at = 24 + 8 * i;
            b[at..at + 4].copy_from_slice(&s.gref.to_le_bytes());
            b[at + 4] = s.first;
            b[at + 5] = s.last;
        }
        b
    }

    /// Bytes the request moves.
    pub fn bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|s| usize::from(s.last - s.first + 1) * 512)
            .sum()
    }
}

/// What a response said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Ok,
    /// The back end failed the request.
    Error,
    /// The back end does not support the operation.
    NotSupported,
    /// A value that is not a status.
    Invalid(i16),
}

/// A response: `{u64 id, u8 op, u8 pad, i16 status}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The request's id (untrusted: look it up).
    pub id: u64,
    /// The operation (untrusted: compare with the request's).
    pub op: u8,
    /// The outcome.
    pub status: Status,
}

impl Response {
    /// Decodes the first 12 bytes of a ring entry (`None` if `b` is shorter).
    pub fn decode(b: &[u8]) -> Option<Response> {
        let b = b.get(..12)?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[..8]);
        let status = i16::from_le_bytes([b[10], b[11]]);
        Some(Response {
            id: u64::from_le_bytes(id),
            op: b[8],
            status: match status {
                0 => Status::Ok,
                -1 => Status::Error,
                -2 => Status::NotSupported,
                s => Status::Invalid(s),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::FrontRing;
    use crate::ring::tests::{MemPage, serve};

    fn req(op: u8, id: u64, segs: &[(u32, u8, u8)]) -> Request {
        let mut s = Segments::default();
        for &(gref, first, last) in segs {
            assert!(s.push(Segment { gref, first, last }));
        }
        Request {
            op,
            handle: 51712,
            id,
            sector: 0x1234_5678_9abc,
            segments: s,
        }
    }

    #[test]
    fn requests_have_the_abi_layout() {
        let b = req(op::WRITE, 0xdead_beef_0001, &[(7, 0, 7), (8, 2, 3)]).encode();
        assert_eq!((b[0], b[1]), (op::WRITE, 2));
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), 51712);
        assert_eq!(
            u64::from_le_bytes(b[8..16].try_into().unwrap()),
            0xdead_beef_0001
        );
        assert_eq!(
            u64::from_le_bytes(b[16..24].try_into().unwrap()),
            0x1234_5678_9abc
        );
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 7);
        assert_eq!((b[28], b[29]), (0, 7));
        assert_eq!(u32::from_le_bytes(b[32..36].try_into().unwrap()), 8);
        assert_eq!((b[36], b[37]), (2, 3));
        assert_eq!(
            req(op::READ, 1, &[(1, 0, 7), (2, 2, 3)]).bytes(),
            4096 + 1024
        );
        // 11 segments fill the entry exactly: 24 + 11 * 8 = 112.
        assert_eq!(24 + MAX_SEGMENTS * 8, ENTRY);
    }

    #[test]
    fn segments_outside_a_page_or_past_eleven_are_refused() {
        let mut s = Segments::default();
        assert!(!s.push(Segment {
            gref: 1,
            first: 3,
            last: 2
        }));
        assert!(!s.push(Segment {
            gref: 1,
            first: 0,
            last: 8
        }));
        for i in 0..MAX_SEGMENTS as u32 {
            assert!(s.push(Segment {
                gref: i,
                first: 0,
                last: 7
            }));
        }
        assert!(!s.push(Segment {
            gref: 99,
            first: 0,
            last: 7
        }));
        assert_eq!(s.len(), MAX_SEGMENTS);
    }

    #[test]
    fn responses_decode_and_hostile_statuses_are_told_apart() {
        let page = MemPage::new();
        let mut ring = FrontRing::new(page.clone(), ENTRY);
        assert_eq!(ring.size(), 32);
        for id in 0..4u64 {
            assert!(ring.put(&req(op::FLUSH_DISKCACHE, id, &[]).encode()));
        }
        ring.push();
        let mut cons = 0;
        let statuses = [0i16, -1, -2, 7];
        serve(&page, ENTRY, &mut cons, &mut |r| {
            let id = u64::from_le_bytes(r[8..16].try_into().unwrap());
            let mut out = alloc::vec![0u8; ENTRY];
            out[..8].copy_from_slice(&id.to_le_bytes());
            out[8] = r[0];
            out[10..12].copy_from_slice(&statuses[id as usize].to_le_bytes());
            out
        });
        let mut out = [0u8; ENTRY];
        let mut seen = alloc::vec::Vec::new();
        while ring.take(&mut out).unwrap() {
            seen.push(Response::decode(&out).unwrap());
        }
        let want = [
            Status::Ok,
            Status::Error,
            Status::NotSupported,
            Status::Invalid(7),
        ];
        for (i, r) in seen.iter().enumerate() {
            assert_eq!(
                (r.id, r.op, r.status),
                (i as u64, op::FLUSH_DISKCACHE, want[i])
            );
        }
        assert_eq!(Response::decode(&[0; 11]), None);
    }
}
