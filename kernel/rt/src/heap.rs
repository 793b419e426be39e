//! The heap of bare-metal images: `talc` over every free RAM region the platform reports.
//!
//! The one module of the runtime with `unsafe` besides `single`: the allocator hands out raw
//! memory. Applications see only [`stats`]; the allocator itself is internal.
//!
//! Chosen by measurement (`cargo xtask bench alloc`, figures in `docs/allocator.md`): talc
//! against `linked_list_allocator`, the other common `no_std` choice. Hosted platforms use the
//! host's allocator and report no heap statistics.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;
use fata_hal::MemoryRegion;
use talc::base::Talc;
use talc::source::Manual;

/// The allocator and the most bytes it ever had in use.
struct SendTalc(Talc<Manual, talc::DefaultBinning>, usize);

// SAFETY: `Talc` holds raw pointers into the heap regions it was given; those regions belong
// to the allocator for the rest of the program, so the allocator may be used from any thread
// as long as access is serialised, which the mutex around it does.
unsafe impl Send for SendTalc {}

/// A `GlobalAlloc` over `talc`.
pub(crate) struct Heap {
    talc: spin::Mutex<SendTalc>,
}

/// Heap figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes handed to the allocator.
    pub total: usize,
    /// Bytes in live allocations.
    pub in_use: usize,
    /// Live allocations.
    pub allocations: usize,
    /// The most bytes in live allocations at any time so far.
    pub peak_in_use: usize,
}

// Only bare-metal platforms have a heap of their own; on `unix` the host allocates.
#[allow(dead_code)]
impl Heap {
    /// An empty heap; give it memory with [`Heap::claim`].
    pub(crate) const fn new() -> Heap {
        Heap {
            talc: spin::Mutex::new(SendTalc(Talc::new(Manual), 0)),
        }
    }

    /// Adds a region of free RAM. Returns whether the allocator could use it.
    ///
    /// # Safety
    ///
    /// `r` must be memory that nothing else uses or will use, mapped read-write, valid for
    /// the rest of the program, and not already given to this or another heap.
    pub(crate) unsafe fn claim(&self, r: MemoryRegion) -> bool {
        // SAFETY: the caller guarantees `r` is unused, writable memory that belongs to this
        // heap from now on.
        unsafe { self.talc.lock().0.claim(r.start as *mut u8, r.len) }.is_some()
    }

    /// Current figures.
    pub(crate) fn stats(&self) -> HeapStats {
        let t = self.talc.lock();
        let c = t.0.counters();
        HeapStats {
            total: c.claimed_bytes,
            in_use: c.allocated_bytes,
            allocations: c.allocation_count,
            peak_in_use: t.1.max(c.allocated_bytes),
        }
    }
}

impl Default for Heap {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: allocation and deallocation are delegated to talc under a lock; talc returns
// blocks that satisfy `layout` (or none), from memory that only it hands out.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut t = self.talc.lock();
        // SAFETY: `layout` has a non-zero size (GlobalAlloc contract).
        let p = unsafe { t.0.allocate(layout) }.map_or(null_mut(), |p| p.as_ptr());
        // The peak for `stats`: a field read and a compare under the lock already held.
        let used = t.0.counters().allocated_bytes;
        if used > t.1 {
            t.1 = used;
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned, with its layout.
        unsafe { self.talc.lock().0.deallocate(ptr, layout) }
    }
}

static GLOBAL: spin::Once<&'static Heap> = spin::Once::new();

#[allow(dead_code)] // only bare-metal platforms have a heap of their own
pub(crate) fn set_global(h: &'static Heap) {
    GLOBAL.call_once(|| h);
}

/// Figures of the image's heap, or `None` on hosted platforms (the host allocates).
pub fn stats() -> Option<HeapStats> {
    GLOBAL.get().map(|h| h.stats())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn heap_allocates_from_claimed_regions_and_counts_use() {
        let heap = Heap::new();
        let mut arena = vec![0u8; 256 * 1024];
        // SAFETY: the arena is a fresh allocation that only this heap uses, and it outlives
        // the heap (both are dropped at the end of the test, the heap first).
        assert!(unsafe {
            heap.claim(MemoryRegion {
                start: arena.as_mut_ptr() as usize,
                len: arena.len(),
            })
        });
        let layout = Layout::from_size_align(1000, 64).unwrap();
        // SAFETY: non-zero layout; freed below with the same layout.
        let p = unsafe { heap.alloc(layout) };
        assert!(!p.is_null());
        assert_eq!(p as usize % 64, 0);
        assert!(arena.as_ptr_range().contains(&(p as *const u8)));
        assert!(heap.stats().in_use >= 1000);
        // SAFETY: `p` came from `heap.alloc(layout)`.
        unsafe { heap.dealloc(p, layout) };
        assert_eq!(heap.stats().in_use, 0);
        assert!(
            heap.stats().peak_in_use >= 1000,
            "the peak is kept after the free"
        );
        // Exhaustion is a null pointer, not a crash.
        let huge = Layout::from_size_align(1 << 20, 8).unwrap();
        // SAFETY: non-zero layout.
        assert!(unsafe { heap.alloc(huge) }.is_null());
    }
}
