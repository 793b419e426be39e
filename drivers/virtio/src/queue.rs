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

use crate::dma::{Dma, fence_acquire, fence_release};
use alloc::vec::Vec;

const DESC_SIZE: usize = 16;
/// Descriptor flag: the device writes this buffer.
const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Used-ring flag: the device does not need notifications.
const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;

/// Byte offsets of the parts of a queue of `size` entries: (available ring, used ring, total).
pub fn layout(size: u16) -> (usize, usize, usize) {
    let n = usize::from(size);
    let avail = DESC_SIZE * n;
    let used = (avail + 6 + 2 * n).next_multiple_of(4096);
    let total = (used + 6 + 8 * n).next_multiple_of(4096);
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
        let d = usize::from(id) * DESC_SIZE;
        self.mem.write_u64(d, buf.paddr());
        self.mem.write_u32(d + 8, len.min(buf.len()) as u32);
        self.mem
            .write_u16(d + 12, if device_writes { VIRTQ_DESC_F_WRITE } else { 0 });
        self.mem.write_u16(d + 14, 0);
        self.in_flight[usize::from(id)] = Some(buf);
        let slot = usize::from(self.avail_idx % self.size);
        self.mem.write_u16(self.avail_off + 4 + 2 * slot, id);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // The descriptor and ring entry must be visible before the index that publishes them.
        fence_release();
        self.mem.write_u16(self.avail_off + 2, self.avail_idx);
        Ok(())
    }

    /// Whether the device wants to be notified of new buffers.
    pub fn needs_notify(&self) -> bool {
        fence_release();
        self.mem.read_u16(self.used_off) & VIRTQ_USED_F_NO_NOTIFY == 0
    }

    /// The next completion, if the device reported one.
    pub fn pop_used(&mut self) -> Option<Used> {
        let idx = self.mem.read_u16(self.used_off + 2);
        if idx == self.last_used {
            return None;
        }
        // The entry must be read after the index that published it.
        fence_acquire();
        let slot = usize::from(self.last_used % self.size);
        let e = self.used_off + 4 + 8 * slot;
        let id = self.mem.read_u32(e);
        let len = self.mem.read_u32(e + 4);
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

    /// Test support: plays the device, completing descriptor `id` with `len` bytes.
    #[cfg(test)]
    pub(crate) fn device_complete(&self, id: u32, len: u32) {
        let idx = self.mem.read_u16(self.used_off + 2);
        let slot = usize::from(idx % self.size);
        let e = self.used_off + 4 + 8 * slot;
        self.mem.write_u32(e, id);
        self.mem.write_u32(e + 4, len);
        self.mem.write_u16(self.used_off + 2, idx.wrapping_add(1));
    }

    /// Test support: the descriptor ids in the available ring, oldest first.
    #[cfg(test)]
    pub(crate) fn device_avail(&self) -> Vec<u16> {
        let n = self.mem.read_u16(self.avail_off + 2);
        (0..n)
            .map(|i| {
                self.mem
                    .read_u16(self.avail_off + 4 + 2 * usize::from(i % self.size))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf() -> Dma {
        Dma::zeroed(2048, 64).unwrap()
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
            let idx = q.mem.read_u16(q.avail_off + 2).wrapping_sub(1);
            let id = q
                .mem
                .read_u16(q.avail_off + 4 + 2 * usize::from(idx % q.size));
            q.device_complete(u32::from(id), 100);
            assert!(
                matches!(q.pop_used(), Some(Used::Done { len: 100, .. })),
                "round {round}"
            );
        }
    }
}
