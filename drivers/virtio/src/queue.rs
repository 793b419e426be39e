//! The split virtqueue (virtio 1.x §2.7): single buffers and descriptor chains.
//!
//! Layout in one page-aligned allocation, valid for both modern and legacy devices: the
//! descriptor table at 0, the available ring right after it, the used ring at the next 4 KiB
//! boundary (the legacy `QueueAlign`). The size comes from the device (capped by the driver's
//! budget where the transport allows a smaller size).
//!
//! Two ways to post memory:
//! - [`Queue::push`]: one [`Dma`] buffer as one descriptor (virtio-net: one frame per buffer;
//!   some hosts reject chained frames, and one descriptor per frame is enough for one MTU).
//! - [`Queue::push_chain`]: a chain of descriptors ([`Part`]s) pointing into the memory of one
//!   owner ([`Buffers`]) — virtio-blk: a device-readable header, the data, a device-writable
//!   status byte. Device-readable parts come first (§2.7.4.2); the chain's descriptors are
//!   taken from the free list and all go back to it when the device returns the chain.
//!
//! Whatever is posted is *owned* by the queue until the device gives it back: the device may be
//! reading or writing it, so no other reference to it exists, and dropping a request's future
//! cannot free memory under the device. The owner comes back whole in [`Used`].
//!
//! What the device writes back is checked: a used entry naming a descriptor that is not the
//! head of a chain (or single buffer) in flight — unknown, not a head, or already returned —
//! is reported as [`Used::BadId`] and changes nothing; a length beyond what the device may
//! write as [`Used::TooLong`] (with the buffers, so they can be reused). "What the device may
//! write" is the whole buffer for [`Queue::push`] and the sum of the device-writable parts for
//! a chain.
//!
//! The ring entries are `repr(C)` types (`Desc`, `AvailHeader`, `UsedHeader`, `UsedElem`)
//! and every offset into ring memory is taken from them (`offset_of!`, `size_of`); the tests
//! pin each offset and size to the specification. They are never placed in ring memory as
//! Rust objects, because the device reads and writes it concurrently: the queue moves them
//! field by field through the volatile accessors of [`Dma`], which also convert to and from
//! little endian, the byte order of the rings. The chain links the driver follows when a chain
//! comes back are its own copy, never read back from ring memory.

use crate::dma::{Dma, fence_acquire, fence_release};
use alloc::vec::Vec;
use core::fmt;
use core::mem::{offset_of, size_of};

/// One entry of the descriptor table (`struct virtq_desc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Desc {
    /// Physical address of the buffer.
    pub(crate) addr: u64,
    /// Length of the buffer in bytes.
    pub(crate) len: u32,
    /// `VIRTQ_DESC_F_*`.
    pub(crate) flags: u16,
    /// The next descriptor of a chain (when `flags` has `VIRTQ_DESC_F_NEXT`).
    pub(crate) next: u16,
}

/// The start of the available ring (`struct virtq_avail`), which the driver writes; `size`
/// descriptor ids (`u16`) follow, then `used_event` (`u16`).
#[repr(C)]
struct AvailHeader {
    flags: u16,
    /// Where the driver will put the next id (free-running, modulo 2^16).
    idx: u16,
}

/// The start of the used ring (`struct virtq_used`), which the device writes; `size`
/// [`UsedElem`]s follow, then `avail_event` (`u16`).
#[repr(C)]
struct UsedHeader {
    /// `VIRTQ_USED_F_*`.
    flags: u16,
    /// Where the device will put the next completion (free-running, modulo 2^16).
    idx: u16,
}

/// One completion in the used ring (`struct virtq_used_elem`). Both fields come from the
/// device and are checked before use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct UsedElem {
    /// The descriptor (head of the chain) the device is done with.
    id: u32,
    /// How many bytes the device wrote into it.
    len: u32,
}

/// An entry of the available ring: a descriptor id.
type AvailElem = u16;
/// The event-index field after either ring (`used_event`, `avail_event`; not used here, but
/// part of the layout).
type EventIdx = u16;

/// Descriptor flag: the chain continues in `next`.
pub(crate) const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the device writes this buffer.
pub(crate) const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Used-ring flag: the device does not need notifications.
const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;
/// Alignment of the used ring in the legacy layout (`QueueAlign`), and of the allocation.
const PAGE: usize = 4096;

/// Byte offsets of the parts of a queue of `size` entries: (available ring, used ring, total).
pub fn layout(size: u16) -> (usize, usize, usize) {
    let n = usize::from(size);
    let avail = size_of::<Desc>() * n;
    let avail_len = size_of::<AvailHeader>() + size_of::<AvailElem>() * n + size_of::<EventIdx>();
    let used = (avail + avail_len).next_multiple_of(PAGE);
    let used_len = size_of::<UsedHeader>() + size_of::<UsedElem>() * n + size_of::<EventIdx>();
    let total = (used + used_len).next_multiple_of(PAGE);
    (avail, used, total)
}

/// Where a queue lives, as a transport tells the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Number of entries.
    pub size: u16,
    /// Physical address of the descriptor table (also the start of the legacy layout).
    pub desc: u64,
    /// Physical address of the available ring (the "driver area").
    pub avail: u64,
    /// Physical address of the used ring (the "device area").
    pub used: u64,
}

pub(crate) mod sealed {
    /// Only this crate's types may own posted memory (see [`super::Buffers`]).
    pub trait Sealed {}
}

/// The owner of the memory a chain's descriptors point into: the queue holds it while the
/// device may access that memory and hands it back in [`Used`].
///
/// Sealed: only types of this crate that own their [`Dma`] regions outright implement it, so
/// no region can be freed, or read, elsewhere while the device holds it.
pub trait Buffers: sealed::Sealed {
    /// DMA region `i` (0, 1, ...), `None` past the last.
    fn region(&self, i: usize) -> Option<&Dma>;

    /// The same region, mutable (the simulated devices of the tests write through it).
    #[cfg(test)]
    fn region_mut(&mut self, i: usize) -> Option<&mut Dma>;
}

impl sealed::Sealed for Dma {}

/// A single buffer is its own only region.
impl Buffers for Dma {
    fn region(&self, i: usize) -> Option<&Dma> {
        (i == 0).then_some(self)
    }

    #[cfg(test)]
    fn region_mut(&mut self, i: usize) -> Option<&mut Dma> {
        (i == 0).then_some(self)
    }
}

/// One descriptor of a chain: `len` bytes at `offset` in region `region` of the chain's
/// [`Buffers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// Which region of the owner.
    pub region: usize,
    /// Where in the region the descriptor starts.
    pub offset: usize,
    /// Length in bytes (at least 1: devices reject empty descriptors).
    pub len: usize,
    /// The device writes this part (otherwise it reads it).
    pub device_writes: bool,
}

/// Why [`Queue::push_chain`] did not post a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// Not enough free descriptors now; try again after a completion.
    Full,
    /// The chain is empty or longer than the queue.
    BadLength(usize),
    /// Part `n` names a missing region, is empty, reaches past its region or is longer than a
    /// descriptor can say (4 GiB).
    BadPart(usize),
    /// Part `n` is device-readable but follows a device-writable part (§2.7.4.2 forbids it).
    ReadAfterWrite(usize),
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full => f.write_str("no free descriptors"),
            PushError::BadLength(n) => write!(f, "a chain of {n} descriptors does not fit"),
            PushError::BadPart(n) => write!(f, "part {n} lies outside its buffer"),
            PushError::ReadAfterWrite(n) => {
                write!(
                    f,
                    "part {n} is device-readable after a device-writable part"
                )
            }
        }
    }
}

/// A chain [`Queue::push_chain`] did not post, with its buffers back.
pub struct Refused<B> {
    /// The owner, untouched.
    pub bufs: B,
    /// Why.
    pub why: PushError,
}

/// A completion the device reported.
pub enum Used<B = Dma> {
    /// The buffers came back with `len` bytes written.
    Done { buf: B, len: u32 },
    /// The device claims to have written more than it may (the buffer for a single buffer,
    /// the device-writable parts for a chain); `buf` is back, its contents are not to be
    /// trusted.
    TooLong { buf: B, len: u32 },
    /// The device named a descriptor that is not the head of anything in flight.
    BadId { id: u32 },
}

/// What the queue holds for one head while the device has it.
struct Posted<B> {
    bufs: B,
    /// Descriptors in the chain (1 for a single buffer).
    descs: u16,
    /// The most bytes the device may report as written.
    max_len: u64,
}

/// One split virtqueue, holding buffers of type `B` while they are posted.
pub struct Queue<B: Buffers = Dma> {
    size: u16,
    mem: Dma,
    avail_off: usize,
    used_off: usize,
    /// Descriptor ids not in any posted chain.
    free: Vec<u16>,
    /// The driver's own copy of each descriptor's `next` link (never read back from the ring).
    next: Vec<u16>,
    /// What is posted, indexed by head descriptor id.
    posted: Vec<Option<Posted<B>>>,
    /// Chains (or single buffers) posted.
    chains: usize,
    avail_idx: u16,
    last_used: u16,
}

impl<B: Buffers> Queue<B> {
    /// A queue of `size` entries (a power of two, 1..=32768); `None` if `size` is invalid or
    /// the heap cannot hold it.
    pub fn new(size: u16) -> Option<Queue<B>> {
        if size == 0 || !size.is_power_of_two() || size > 32768 {
            return None;
        }
        let (avail_off, used_off, total) = layout(size);
        let mem = Dma::zeroed(total, 4096)?;
        let mut posted = Vec::new();
        posted.resize_with(usize::from(size), || None);
        Some(Queue {
            size,
            mem,
            avail_off,
            used_off,
            free: (0..size).rev().collect(),
            next: alloc::vec![0; usize::from(size)],
            posted,
            chains: 0,
            avail_idx: 0,
            last_used: 0,
        })
    }

    /// Number of entries.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Physical addresses of the descriptor table, available ring and used ring.
    pub fn addresses(&self) -> (u64, u64, u64) {
        let b = self.mem.paddr();
        (b, b + self.avail_off as u64, b + self.used_off as u64)
    }

    /// Where the queue lives, for a transport's `setup_queue`.
    pub fn ring(&self) -> Ring {
        let (desc, avail, used) = self.addresses();
        Ring {
            size: self.size,
            desc,
            avail,
            used,
        }
    }

    /// Descriptors free for new buffers.
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// Buffers (single buffers and chains) currently posted to the device.
    pub fn in_flight(&self) -> usize {
        self.chains
    }

    /// Posts a chain of descriptors, one per part, pointing into `bufs`; the queue holds
    /// `bufs` until the device returns the chain. Returns the head descriptor id (the id the
    /// completion will name). Gives `bufs` back if the chain is malformed or there are not
    /// enough free descriptors. Call [`Queue::needs_notify`] afterwards.
    pub fn push_chain(&mut self, bufs: B, parts: &[Part]) -> Result<u16, Refused<B>> {
        let refuse = |bufs, why| Err(Refused { bufs, why });
        if parts.is_empty() || parts.len() > usize::from(self.size) {
            return refuse(bufs, PushError::BadLength(parts.len()));
        }
        let mut max_len = 0u64;
        let mut seen_write = false;
        for (n, p) in parts.iter().enumerate() {
            let inside = bufs.region(p.region).is_some_and(|r| {
                p.offset
                    .checked_add(p.len)
                    .is_some_and(|end| end <= r.len())
            });
            if !inside || p.len == 0 || u32::try_from(p.len).is_err() {
                return refuse(bufs, PushError::BadPart(n));
            }
            if p.device_writes {
                seen_write = true;
                max_len += p.len as u64;
            } else if seen_write {
                return refuse(bufs, PushError::ReadAfterWrite(n));
            }
        }
        if self.free.len() < parts.len() {
            return refuse(bufs, PushError::Full);
        }
        // The chain takes the last `parts.len()` free ids, in list order; a returned chain
        // pushes them back in the same order, so the next chain of that length reuses them.
        let top = self.free.len();
        let first = top - parts.len();
        let id_of = |free: &[u16], i: usize| free[first + i];
        for (i, p) in parts.iter().enumerate() {
            let id = id_of(&self.free, i);
            let next = (i + 1 < parts.len()).then(|| id_of(&self.free, i + 1));
            let addr = bufs.region(p.region).map_or(0, Dma::paddr) + p.offset as u64;
            let mut flags = if p.device_writes {
                VIRTQ_DESC_F_WRITE
            } else {
                0
            };
            if next.is_some() {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            let next = next.unwrap_or(0);
            self.next[usize::from(id)] = next;
            self.write_desc(
                id,
                Desc {
                    addr,
                    len: p.len as u32,
                    flags,
                    next,
                },
            );
        }
        let head = id_of(&self.free, 0);
        self.free.truncate(first);
        self.publish(
            head,
            Posted {
                bufs,
                descs: parts.len() as u16,
                max_len,
            },
        );
        Ok(head)
    }

    /// Records `posted` under `head` and makes it visible to the device.
    fn publish(&mut self, head: u16, posted: Posted<B>) {
        self.posted[usize::from(head)] = Some(posted);
        self.chains += 1;
        self.mem.write_u16(self.avail_entry(self.avail_idx), head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // The descriptors and ring entry must be visible before the index that publishes them.
        fence_release();
        self.mem.write_u16(self.avail_idx_at(), self.avail_idx);
    }

    /// Whether the device wants to be notified of new buffers.
    pub fn needs_notify(&self) -> bool {
        fence_release();
        self.mem.read_u16(self.used_flags_at()) & VIRTQ_USED_F_NO_NOTIFY == 0
    }

    /// Whether the device has reported a completion that [`Queue::pop_used`] has not taken.
    pub fn has_used(&self) -> bool {
        self.mem.read_u16(self.used_idx_at()) != self.last_used
    }

    /// The next completion, if the device reported one.
    pub fn pop_used(&mut self) -> Option<Used<B>> {
        let idx = self.mem.read_u16(self.used_idx_at());
        if idx == self.last_used {
            return None;
        }
        // The entry must be read after the index that published it.
        fence_acquire();
        let UsedElem { id, len } = self.read_used(self.last_used);
        self.last_used = self.last_used.wrapping_add(1);
        let taken = usize::try_from(id)
            .ok()
            .and_then(|i| self.posted.get_mut(i))
            .and_then(Option::take);
        let Some(Posted {
            bufs,
            descs,
            max_len,
        }) = taken
        else {
            return Some(Used::BadId { id });
        };
        self.chains -= 1;
        // Give the chain's descriptors back, following the driver's own links.
        let mut d = id as u16;
        for _ in 0..descs {
            self.free.push(d);
            d = self.next[usize::from(d)];
        }
        if u64::from(len) > max_len {
            Some(Used::TooLong { buf: bufs, len })
        } else {
            Some(Used::Done { buf: bufs, len })
        }
    }

    /// Writes descriptor `id` of the table.
    fn write_desc(&self, id: u16, d: Desc) {
        let at = usize::from(id) * size_of::<Desc>();
        self.mem.write_u64(at + offset_of!(Desc, addr), d.addr);
        self.mem.write_u32(at + offset_of!(Desc, len), d.len);
        self.mem.write_u16(at + offset_of!(Desc, flags), d.flags);
        self.mem.write_u16(at + offset_of!(Desc, next), d.next);
    }

    /// Offset of the available ring's index.
    fn avail_idx_at(&self) -> usize {
        self.avail_off + offset_of!(AvailHeader, idx)
    }

    /// Offset of the available-ring entry that free-running index `idx` names.
    fn avail_entry(&self, idx: u16) -> usize {
        self.avail_off
            + size_of::<AvailHeader>()
            + size_of::<AvailElem>() * usize::from(idx % self.size)
    }

    /// Offset of the used ring's flags.
    fn used_flags_at(&self) -> usize {
        self.used_off + offset_of!(UsedHeader, flags)
    }

    /// Offset of the used ring's index.
    fn used_idx_at(&self) -> usize {
        self.used_off + offset_of!(UsedHeader, idx)
    }

    /// Offset of the used-ring entry that free-running index `idx` names.
    fn used_entry(&self, idx: u16) -> usize {
        self.used_off
            + size_of::<UsedHeader>()
            + size_of::<UsedElem>() * usize::from(idx % self.size)
    }

    /// Reads the used-ring entry that free-running index `idx` names, as the device wrote it
    /// (unchecked: the caller checks both fields).
    fn read_used(&self, idx: u16) -> UsedElem {
        let at = self.used_entry(idx);
        UsedElem {
            id: self.mem.read_u32(at + offset_of!(UsedElem, id)),
            len: self.mem.read_u32(at + offset_of!(UsedElem, len)),
        }
    }
}

impl Queue<Dma> {
    /// Posts `buf` (its first `len` bytes) to the device as one descriptor. `device_writes`:
    /// a receive buffer. Gives the buffer back if the queue is full. Call
    /// [`Queue::needs_notify`] afterwards.
    pub fn push(&mut self, buf: Dma, len: usize, device_writes: bool) -> Result<(), Dma> {
        let Some(id) = self.free.pop() else {
            return Err(buf);
        };
        self.write_desc(
            id,
            Desc {
                addr: buf.paddr(),
                len: len.min(buf.len()) as u32,
                flags: if device_writes { VIRTQ_DESC_F_WRITE } else { 0 },
                next: 0,
            },
        );
        let max_len = buf.len() as u64;
        self.publish(
            id,
            Posted {
                bufs: buf,
                descs: 1,
                max_len,
            },
        );
        Ok(())
    }
}

/// Test support: the device's side of the rings, read and written as a device would.
#[cfg(test)]
impl<B: Buffers> Queue<B> {
    /// Plays the device, completing descriptor `id` with `len` bytes.
    pub(crate) fn device_complete(&self, id: u32, len: u32) {
        let idx_at = self.used_idx_at();
        let idx = self.mem.read_u16(idx_at);
        let at = self.used_entry(idx);
        self.mem.write_u32(at + offset_of!(UsedElem, id), id);
        self.mem.write_u32(at + offset_of!(UsedElem, len), len);
        self.mem.write_u16(idx_at, idx.wrapping_add(1));
    }

    /// The descriptor ids in the available ring, oldest first (the first `size` only).
    pub(crate) fn device_avail(&self) -> Vec<u16> {
        let n = self.mem.read_u16(self.avail_idx_at());
        (0..n)
            .map(|i| self.mem.read_u16(self.avail_entry(i)))
            .collect()
    }

    /// The available ring's index, as the device reads it.
    pub(crate) fn device_avail_idx(&self) -> u16 {
        self.mem.read_u16(self.avail_idx_at())
    }

    /// The available-ring entry that free-running index `idx` names.
    pub(crate) fn device_avail_at(&self, idx: u16) -> u16 {
        self.mem.read_u16(self.avail_entry(idx))
    }

    /// Descriptor `id` as the device reads it.
    pub(crate) fn device_desc(&self, id: u16) -> Desc {
        let at = usize::from(id % self.size) * size_of::<Desc>();
        Desc {
            addr: self.mem.read_u64(at + offset_of!(Desc, addr)),
            len: self.mem.read_u32(at + offset_of!(Desc, len)),
            flags: self.mem.read_u16(at + offset_of!(Desc, flags)),
            next: self.mem.read_u16(at + offset_of!(Desc, next)),
        }
    }

    /// The chain starting at `head`, following the `next` links in the table as the device
    /// does (at most `size` descriptors).
    pub(crate) fn device_chain(&self, head: u16) -> Vec<Desc> {
        let mut chain = Vec::new();
        let mut d = head;
        for _ in 0..self.size {
            let desc = self.device_desc(d);
            chain.push(desc);
            if desc.flags & VIRTQ_DESC_F_NEXT == 0 {
                break;
            }
            d = desc.next;
        }
        chain
    }

    /// The memory at physical address `addr..addr + len`, if it lies inside one region of the
    /// buffers posted under `head` — the only memory a correct device touches for that chain.
    pub(crate) fn device_bytes(&mut self, head: u16, addr: u64, len: usize) -> Option<&mut [u8]> {
        let bufs = &mut self.posted.get_mut(usize::from(head))?.as_mut()?.bufs;
        let mut i = 0;
        while let Some(r) = bufs.region(i) {
            let start = r.paddr();
            if addr >= start && (addr - start).saturating_add(len as u64) <= r.len() as u64 {
                let off = (addr - start) as usize;
                return bufs
                    .region_mut(i)
                    .map(|r| &mut r.bytes_mut()[off..off + len]);
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf() -> Dma {
        Dma::zeroed(2048, 64).unwrap()
    }

    #[test]
    fn ring_entries_have_the_specified_layout() {
        // virtio 1.x §2.7.5: struct virtq_desc { le64 addr; le32 len; le16 flags; le16 next; }
        assert_eq!(offset_of!(Desc, addr), 0);
        assert_eq!(offset_of!(Desc, len), 8);
        assert_eq!(offset_of!(Desc, flags), 12);
        assert_eq!(offset_of!(Desc, next), 14);
        assert_eq!(size_of::<Desc>(), 16);
        // §2.7.6: struct virtq_avail { le16 flags; le16 idx; le16 ring[]; le16 used_event; }
        assert_eq!(offset_of!(AvailHeader, flags), 0);
        assert_eq!(offset_of!(AvailHeader, idx), 2);
        assert_eq!(size_of::<AvailHeader>(), 4);
        assert_eq!(size_of::<AvailElem>(), 2);
        // §2.7.8: struct virtq_used { le16 flags; le16 idx; struct virtq_used_elem ring[];
        // le16 avail_event; } with struct virtq_used_elem { le32 id; le32 len; }
        assert_eq!(offset_of!(UsedHeader, flags), 0);
        assert_eq!(offset_of!(UsedHeader, idx), 2);
        assert_eq!(size_of::<UsedHeader>(), 4);
        assert_eq!(offset_of!(UsedElem, id), 0);
        assert_eq!(offset_of!(UsedElem, len), 4);
        assert_eq!(size_of::<UsedElem>(), 8);
        assert_eq!(size_of::<EventIdx>(), 2);
    }

    #[test]
    fn layout_matches_the_legacy_formula_and_the_ring_alignments() {
        // The legacy layout (virtio 0.9.5 `vring_size`, `QueueAlign` 4096): descriptors, then
        // the available ring (4 + 2n + 2 bytes), the used ring on the next page (4 + 8n + 2).
        for size in [1u16, 2, 4, 256, 1024, 4096, 32768] {
            let n = usize::from(size);
            let (avail, used, total) = layout(size);
            assert_eq!(avail, 16 * n);
            assert_eq!(used, (16 * n + 6 + 2 * n).next_multiple_of(4096));
            assert_eq!(total, (used + 6 + 8 * n).next_multiple_of(4096));
            // §2.7: descriptor table 16-, available ring 2-, used ring 4-byte aligned.
            assert_eq!(avail % 2, 0);
            assert_eq!(used % 4, 0);
        }
    }

    #[test]
    fn a_posted_buffer_is_one_descriptor_with_its_address_length_and_direction() {
        let mut q = Queue::<Dma>::new(4).unwrap();
        let rx = buf();
        let (rx_addr, rx_len) = (rx.paddr(), rx.len());
        q.push(rx, 4096, true).ok().unwrap();
        let tx = buf();
        let tx_addr = tx.paddr();
        q.push(tx, 60, false).ok().unwrap();
        let ids = q.device_avail();
        assert_eq!(
            q.device_desc(ids[0]),
            Desc {
                addr: rx_addr,
                len: rx_len as u32,
                flags: VIRTQ_DESC_F_WRITE,
                next: 0
            },
            "the length is capped at the buffer's"
        );
        assert_eq!(
            q.device_desc(ids[1]),
            Desc {
                addr: tx_addr,
                len: 60,
                flags: 0,
                next: 0
            }
        );
    }

    #[test]
    fn sizes_must_be_powers_of_two_and_layout_is_legacy_compatible() {
        assert!(Queue::<Dma>::new(0).is_none());
        assert!(Queue::<Dma>::new(100).is_none());
        for size in [256u16, 1024, 4096, 8192] {
            let (avail, used, total) = layout(size);
            assert_eq!(avail, 16 * usize::from(size));
            assert_eq!(used % 4096, 0);
            assert!(used >= avail + 6 + 2 * usize::from(size));
            assert!(total >= used + 6 + 8 * usize::from(size));
        }
        let q = Queue::<Dma>::new(1024).unwrap();
        assert_eq!(q.size(), 1024);
        assert_eq!(q.free(), 1024);
    }

    #[test]
    fn posted_buffers_come_back_with_their_length() {
        let mut q = Queue::<Dma>::new(4).unwrap();
        for _ in 0..4 {
            assert!(q.push(buf(), 2048, true).is_ok());
        }
        assert!(
            q.push(buf(), 2048, true).is_err(),
            "a full queue gives the buffer back"
        );
        let ids = q.device_avail();
        assert_eq!(ids.len(), 4);
        q.device_complete(u32::from(ids[2]), 60);
        match q.pop_used() {
            Some(Used::Done { len: 60, .. }) => {}
            _ => panic!("expected a completion of 60 bytes"),
        }
        assert!(q.pop_used().is_none());
        assert_eq!(q.free(), 1);
    }

    #[test]
    fn impossible_completions_are_reported_not_trusted() {
        let mut q = Queue::<Dma>::new(8).unwrap();
        q.push(buf(), 2048, true).ok().unwrap();
        let id = u32::from(q.device_avail()[0]);
        q.device_complete(id, 4096);
        assert!(matches!(
            q.pop_used(),
            Some(Used::TooLong { len: 4096, .. })
        ));
        // The same descriptor again (no longer in flight), and one out of range.
        q.device_complete(id, 10);
        q.device_complete(77, 10);
        q.device_complete(u32::MAX, 10);
        assert!(matches!(q.pop_used(), Some(Used::BadId { .. })));
        assert!(matches!(q.pop_used(), Some(Used::BadId { id: 77 })));
        assert!(matches!(q.pop_used(), Some(Used::BadId { id: u32::MAX })));
        assert!(q.pop_used().is_none());
        assert_eq!(q.free(), 8, "the buffer returned once and only once");
    }

    #[test]
    fn indices_wrap_around_u16() {
        let mut q = Queue::<Dma>::new(2).unwrap();
        for round in 0..70_000u32 {
            q.push(buf(), 100, false).ok().unwrap();
            let idx = q.mem.read_u16(q.avail_idx_at()).wrapping_sub(1);
            let id = q.mem.read_u16(q.avail_entry(idx));
            q.device_complete(u32::from(id), 100);
            assert!(
                matches!(q.pop_used(), Some(Used::Done { len: 100, .. })),
                "round {round}"
            );
        }
    }

    /// An owner of two regions, as virtio-blk uses: header and status in one, data in the other.
    struct Two(Dma, Dma);
    impl sealed::Sealed for Two {}
    impl Buffers for Two {
        fn region(&self, i: usize) -> Option<&Dma> {
            [&self.0, &self.1].get(i).copied()
        }
        fn region_mut(&mut self, i: usize) -> Option<&mut Dma> {
            match i {
                0 => Some(&mut self.0),
                1 => Some(&mut self.1),
                _ => None,
            }
        }
    }

    fn two() -> Two {
        Two(
            Dma::zeroed(32, 16).unwrap(),
            Dma::zeroed(1024, 512).unwrap(),
        )
    }

    /// header (readable, 16 bytes), data (`data_writes`), status (writable, 1 byte).
    fn blk_parts(data_writes: bool) -> [Part; 3] {
        [
            Part {
                region: 0,
                offset: 0,
                len: 16,
                device_writes: false,
            },
            Part {
                region: 1,
                offset: 0,
                len: 1024,
                device_writes: data_writes,
            },
            Part {
                region: 0,
                offset: 16,
                len: 1,
                device_writes: true,
            },
        ]
    }

    #[test]
    fn a_chain_is_linked_descriptors_in_part_order_with_addresses_lengths_and_directions() {
        let mut q = Queue::<Two>::new(8).unwrap();
        let b = two();
        let (hdr, data) = (b.0.paddr(), b.1.paddr());
        let head = q.push_chain(b, &blk_parts(true)).ok().unwrap();
        assert_eq!(q.device_avail(), [head], "one available entry: the head");
        assert_eq!((q.free(), q.in_flight()), (5, 1));
        let chain = q.device_chain(head);
        assert_eq!(chain.len(), 3);
        assert_eq!(
            (chain[0].addr, chain[0].len, chain[0].flags),
            (hdr, 16, VIRTQ_DESC_F_NEXT)
        );
        assert_eq!(
            (chain[1].addr, chain[1].len, chain[1].flags),
            (data, 1024, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE)
        );
        assert_eq!(
            (chain[2].addr, chain[2].len, chain[2].flags),
            (hdr + 16, 1, VIRTQ_DESC_F_WRITE)
        );
        let mut ids = [head, q.device_desc(head).next, chain[1].next];
        ids.sort();
        assert!(
            ids.windows(2).all(|w| w[0] != w[1]),
            "three distinct descriptors"
        );
    }

    #[test]
    fn a_returned_chain_gives_back_its_buffers_and_every_descriptor() {
        // Chains of one to three parts, completed out of order, many times round the ring: a
        // descriptor leaked or handed out twice would show up as a full queue or a wrong chain.
        let mut q = Queue::<Two>::new(8).unwrap();
        let mut posted = Vec::new();
        for round in 0..5000usize {
            let n = 1 + round % 3;
            let parts = &blk_parts(false)[3 - n..];
            match q.push_chain(two(), parts) {
                Ok(head) => {
                    assert_eq!(q.device_chain(head).len(), n);
                    posted.push((head, n));
                }
                Err(Refused { why, .. }) => {
                    assert_eq!(why, PushError::Full, "round {round}");
                    assert!(q.free() < n);
                    // Complete the second oldest first, then the oldest.
                    let k = posted.len().min(2);
                    for (head, _) in posted.drain(..k).rev() {
                        // Every shape ends in the one-byte status: one writable byte.
                        q.device_complete(u32::from(head), 1);
                        assert!(matches!(q.pop_used(), Some(Used::Done { len: 1, .. })));
                    }
                }
            }
            let held: usize = posted.iter().map(|p| p.1).sum();
            assert_eq!(q.free() + held, 8, "round {round}");
            assert_eq!(q.in_flight(), posted.len());
        }
    }

    #[test]
    fn malformed_chains_are_refused_and_their_buffers_returned() {
        let mut q = Queue::<Two>::new(4).unwrap();
        let p = blk_parts(true);
        let refused = |r: Result<u16, Refused<Two>>| r.err().map(|e| e.why);
        assert_eq!(
            refused(q.push_chain(two(), &[])),
            Some(PushError::BadLength(0))
        );
        assert_eq!(
            refused(q.push_chain(two(), &[p[0]; 5])),
            Some(PushError::BadLength(5))
        );
        let past_end = Part { offset: 1, ..p[1] };
        assert_eq!(
            refused(q.push_chain(two(), &[p[0], past_end])),
            Some(PushError::BadPart(1))
        );
        let empty = Part { len: 0, ..p[0] };
        assert_eq!(
            refused(q.push_chain(two(), &[empty])),
            Some(PushError::BadPart(0))
        );
        let no_region = Part { region: 2, ..p[0] };
        assert_eq!(
            refused(q.push_chain(two(), &[no_region])),
            Some(PushError::BadPart(0))
        );
        let huge = Part {
            offset: usize::MAX,
            ..p[0]
        };
        assert_eq!(
            refused(q.push_chain(two(), &[huge])),
            Some(PushError::BadPart(0))
        );
        assert_eq!(
            refused(q.push_chain(two(), &[p[2], p[0]])),
            Some(PushError::ReadAfterWrite(1))
        );
        assert_eq!((q.free(), q.in_flight()), (4, 0), "nothing was posted");
        assert!(q.device_avail().is_empty());
        q.push_chain(two(), &p).ok().unwrap();
        let r = q.push_chain(two(), &p).err().unwrap();
        assert_eq!(r.why, PushError::Full);
        assert_eq!(r.bufs.1.len(), 1024, "the buffers come back");
        assert!(q.push_chain(two(), &p[2..]).is_ok(), "one descriptor left");
    }

    #[test]
    fn chain_completions_are_checked_against_head_and_writable_length() {
        let mut q = Queue::<Two>::new(8).unwrap();
        let read = q.push_chain(two(), &blk_parts(true)).ok().unwrap();
        let write = q.push_chain(two(), &blk_parts(false)).ok().unwrap();
        // A descriptor in the middle of a chain in flight is not a head.
        let middle = q.device_desc(read).next;
        q.device_complete(u32::from(middle), 1);
        assert!(matches!(q.pop_used(), Some(Used::BadId { id }) if id == u32::from(middle)));
        assert_eq!(q.in_flight(), 2, "the chain is still in flight");
        // A read may write data and status (1025 bytes), a write only the status.
        q.device_complete(u32::from(read), 1025);
        assert!(matches!(q.pop_used(), Some(Used::Done { len: 1025, .. })));
        q.device_complete(u32::from(write), 2);
        assert!(matches!(q.pop_used(), Some(Used::TooLong { len: 2, .. })));
        // Both again: no longer in flight.
        q.device_complete(u32::from(read), 1);
        q.device_complete(u32::from(write), 1);
        assert!(matches!(q.pop_used(), Some(Used::BadId { .. })));
        assert!(matches!(q.pop_used(), Some(Used::BadId { .. })));
        assert!(q.pop_used().is_none());
        assert_eq!((q.free(), q.in_flight()), (8, 0));
    }

    #[test]
    fn the_simulated_device_reaches_only_the_memory_of_the_chain() {
        let mut q = Queue::<Two>::new(8).unwrap();
        let head = q.push_chain(two(), &blk_parts(true)).ok().unwrap();
        let chain = q.device_chain(head);
        q.device_bytes(head, chain[1].addr, 1024).unwrap().fill(7);
        assert!(q.device_bytes(head, chain[1].addr, 1025).is_none());
        assert!(q.device_bytes(head + 1, chain[1].addr, 1).is_none());
        q.device_complete(u32::from(head), 1025);
        let Some(Used::Done { buf, .. }) = q.pop_used() else {
            panic!("expected the chain back");
        };
        assert!(buf.1.bytes().iter().all(|&b| b == 7));
    }
}
