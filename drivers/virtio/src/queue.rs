//! The split virtqueue (virtio 1.x §2.7), one descriptor per buffer.
//!
//! Layout in one page-aligned allocation, valid for both modern and legacy devices: the
//! descriptor table at 0, the available ring right after it, the used ring at the next 4 KiB
//! boundary (the legacy `QueueAlign`). The size comes from the device (capped by the driver's
//! budget where the transport allows a smaller size).
//!
//! Every buffer is a single descriptor: some hosts reject chained buffers, and one descriptor
//! per frame is enough for frames of one MTU. What the device writes back is checked: a used
//! entry naming a descriptor we did not post (or posted once and got back twice) is reported
//! as [`Used::BadId`]; a length beyond the buffer as [`Used::TooLong`] (with the buffer, so it
//! can be reposted).
//!
//! The ring entries are `repr(C)` types (`Desc`, `AvailHeader`, `UsedHeader`, `UsedElem`)
//! and every offset into ring memory is taken from them (`offset_of!`, `size_of`); the tests
//! pin each offset and size to the specification. They are never placed in ring memory as
//! Rust objects, because the device reads and writes it concurrently: the queue moves them
//! field by field through the volatile accessors of [`Dma`], which also convert to and from
//! little endian, the byte order of the rings.

use crate::dma::{Dma, fence_acquire, fence_release};
use alloc::vec::Vec;
use core::mem::{offset_of, size_of};

/// One entry of the descriptor table (`struct virtq_desc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Desc {
    /// Physical address of the buffer.
    addr: u64,
    /// Length of the buffer in bytes.
    len: u32,
    /// `VIRTQ_DESC_F_*`.
    flags: u16,
    /// The next descriptor of a chain (unused: every buffer is one descriptor).
    next: u16,
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

/// Descriptor flag: the device writes this buffer.
const VIRTQ_DESC_F_WRITE: u16 = 2;
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

/// A completion the device reported.
pub enum Used {
    /// The buffer came back with `len` bytes written.
    Done { buf: Dma, len: u32 },
    /// The device claims to have written more than the buffer holds.
    TooLong { buf: Dma, len: u32 },
    /// The device named a descriptor that is not in flight.
    BadId { id: u32 },
}

/// One split virtqueue.
pub struct Queue {
    size: u16,
    mem: Dma,
    avail_off: usize,
    used_off: usize,
    free: Vec<u16>,
    in_flight: Vec<Option<Dma>>,
    avail_idx: u16,
    last_used: u16,
}

impl Queue {
    /// A queue of `size` entries (a power of two, 1..=32768); `None` if `size` is invalid or
    /// the heap cannot hold it.
    pub fn new(size: u16) -> Option<Queue> {
        if size == 0 || !size.is_power_of_two() || size > 32768 {
            return None;
        }
        let (avail_off, used_off, total) = layout(size);
        let mem = Dma::zeroed(total, 4096)?;
        let mut in_flight = Vec::new();
        in_flight.resize_with(usize::from(size), || None);
        Some(Queue {
            size,
            mem,
            avail_off,
            used_off,
            free: (0..size).rev().collect(),
            in_flight,
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

    /// Descriptors free for new buffers.
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// Buffers currently posted to the device.
    pub fn in_flight(&self) -> usize {
        usize::from(self.size) - self.free.len()
    }

    /// Posts `buf` (its first `len` bytes) to the device. `device_writes`: a receive buffer.
    /// Gives the buffer back if the queue is full. Call [`Queue::needs_notify`] afterwards.
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
        self.in_flight[usize::from(id)] = Some(buf);
        self.mem.write_u16(self.avail_entry(self.avail_idx), id);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // The descriptor and ring entry must be visible before the index that publishes them.
        fence_release();
        self.mem.write_u16(self.avail_idx_at(), self.avail_idx);
        Ok(())
    }

    /// Whether the device wants to be notified of new buffers.
    pub fn needs_notify(&self) -> bool {
        fence_release();
        self.mem.read_u16(self.used_flags_at()) & VIRTQ_USED_F_NO_NOTIFY == 0
    }

    /// The next completion, if the device reported one.
    pub fn pop_used(&mut self) -> Option<Used> {
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
            .and_then(|i| self.in_flight.get_mut(i))
            .and_then(Option::take);
        let Some(buf) = taken else {
            return Some(Used::BadId { id });
        };
        self.free.push(id as u16);
        if len as usize > buf.len() {
            Some(Used::TooLong { buf, len })
        } else {
            Some(Used::Done { buf, len })
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

    /// Test support: plays the device, completing descriptor `id` with `len` bytes.
    #[cfg(test)]
    pub(crate) fn device_complete(&self, id: u32, len: u32) {
        let idx_at = self.used_idx_at();
        let idx = self.mem.read_u16(idx_at);
        let at = self.used_entry(idx);
        self.mem.write_u32(at + offset_of!(UsedElem, id), id);
        self.mem.write_u32(at + offset_of!(UsedElem, len), len);
        self.mem.write_u16(idx_at, idx.wrapping_add(1));
    }

    /// Test support: the descriptor ids in the available ring, oldest first.
    #[cfg(test)]
    pub(crate) fn device_avail(&self) -> Vec<u16> {
        let n = self.mem.read_u16(self.avail_idx_at());
        (0..n)
            .map(|i| self.mem.read_u16(self.avail_entry(i)))
            .collect()
    }

    /// Test support: descriptor `id` as the device reads it.
    #[cfg(test)]
    fn device_desc(&self, id: u16) -> Desc {
        let at = usize::from(id) * size_of::<Desc>();
        Desc {
            addr: self.mem.read_u64(at + offset_of!(Desc, addr)),
            len: self.mem.read_u32(at + offset_of!(Desc, len)),
            flags: self.mem.read_u16(at + offset_of!(Desc, flags)),
            next: self.mem.read_u16(at + offset_of!(Desc, next)),
        }
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
        let mut q = Queue::new(4).unwrap();
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
        assert!(Queue::new(0).is_none());
        assert!(Queue::new(100).is_none());
        for size in [256u16, 1024, 4096, 8192] {
            let (avail, used, total) = layout(size);
            assert_eq!(avail, 16 * usize::from(size));
            assert_eq!(used % 4096, 0);
            assert!(used >= avail + 6 + 2 * usize::from(size));
            assert!(total >= used + 6 + 8 * usize::from(size));
        }
        let q = Queue::new(1024).unwrap();
        assert_eq!(q.size(), 1024);
        assert_eq!(q.free(), 1024);
    }

    #[test]
    fn posted_buffers_come_back_with_their_length() {
        let mut q = Queue::new(4).unwrap();
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
        let mut q = Queue::new(8).unwrap();
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
        let mut q = Queue::new(2).unwrap();
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
}
