//! Memory shared with a device (DMA): page-aligned heap allocations whose physical address is
//! their virtual address (fata identity-maps RAM).
//!
//! Two kinds of use, each with its own rules:
//! - **buffers** (frames): owned by exactly one side at a time. While a buffer is posted to the
//!   device it sits in the queue's in-flight table and nothing reads or writes it; when the
//!   device returns it (after an acquire fence), the driver owns it again and may take slices.
//! - **rings** (descriptor table, available and used rings): both sides access them at the
//!   same time, so they are only ever touched through the volatile accessors here, never
//!   through references.

use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{Ordering, fence};

/// A zeroed, aligned allocation visible to devices, or a vector's memory lent to one.
pub struct Dma {
    ptr: NonNull<u8>,
    /// The allocation: what `zeroed` allocated, or the vector's capacity (align 1).
    layout: Layout,
    /// Bytes in use (initialised): the allocation's size, or the vector's length.
    len: usize,
    /// Whether the memory is a `Vec<u8>`'s (given back by [`Dma::into_vec`]).
    from_vec: bool,
}

// SAFETY: `Dma` owns its allocation exclusively (like a `Box<[u8]>`); moving it to another
// thread moves that ownership.
unsafe impl Send for Dma {}

impl Dma {
    /// Allocates `len` zeroed bytes aligned to `align`; `None` if the heap is exhausted.
    pub fn zeroed(len: usize, align: usize) -> Option<Dma> {
        let layout = Layout::from_size_align(len.max(1), align).ok()?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        NonNull::new(p).map(|ptr| Dma {
            ptr,
            layout,
            len: layout.size(),
            from_vec: false,
        })
    }

    /// Lends a vector's memory to a device without copying (a block request's data). `None`
    /// for a vector that has no allocation (capacity 0).
    pub fn from_vec(v: Vec<u8>) -> Option<Dma> {
        let mut v = core::mem::ManuallyDrop::new(v);
        let layout = Layout::array::<u8>(v.capacity()).ok()?;
        if layout.size() == 0 {
            // Nothing was allocated: give the (empty) vector back to be dropped normally.
            drop(core::mem::ManuallyDrop::into_inner(v));
            return None;
        }
        let ptr = NonNull::new(v.as_mut_ptr())?;
        Some(Dma {
            ptr,
            layout,
            len: v.len(),
            from_vec: true,
        })
    }

    /// The memory as a vector again: the one [`Dma::from_vec`] took, or a copy of the bytes.
    pub fn into_vec(self) -> Vec<u8> {
        if !self.from_vec {
            return self.bytes().to_vec();
        }
        let me = core::mem::ManuallyDrop::new(self);
        // SAFETY: the pointer, length and capacity are those of the vector `from_vec` took
        // apart (its allocation, made by the global allocator with `Layout::array::<u8>(cap)`,
        // which `layout` still is); `me` is never dropped, so the allocation has one owner.
        unsafe { Vec::from_raw_parts(me.ptr.as_ptr(), me.len, me.layout.size()) }
    }

    /// The physical address (identity map).
    pub fn paddr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is in use (only a lent empty vector with spare capacity).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes, for a buffer the driver owns (see the module rules).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` bytes for the life of `self`, initialised (zeroed
        // at allocation, or a vector's initialised length, then written by the driver or by
        // the device before it handed the buffer back, which `fence_acquire` ordered before
        // this read); a shared borrow of `self` prevents writes through `bytes_mut` meanwhile.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len()) }
    }

    /// The bytes, mutable, for a buffer the driver owns.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `bytes`; the exclusive borrow of `self` makes this the only access.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }

    fn at<T>(&self, off: usize) -> *mut T {
        assert!(
            off.checked_add(size_of::<T>())
                .is_some_and(|end| end <= self.len()),
            "dma offset {off:#x} out of range"
        );
        assert!(
            off.is_multiple_of(align_of::<T>()),
            "dma offset {off:#x} misaligned"
        );
        self.ptr.as_ptr().wrapping_add(off).cast()
    }

    /// Reads a little-endian `u16` of ring memory.
    pub fn read_u16(&self, off: usize) -> u16 {
        // SAFETY: `at` checked bounds and alignment; ring memory is plain integers, valid for
        // any bit pattern; volatile because the device writes it concurrently.
        u16::from_le(unsafe { self.at::<u16>(off).read_volatile() })
    }

    /// Reads a little-endian `u32` of ring memory.
    pub fn read_u32(&self, off: usize) -> u32 {
        // SAFETY: as for `read_u16`.
        u32::from_le(unsafe { self.at::<u32>(off).read_volatile() })
    }

    /// Reads a little-endian `u64` of ring memory.
    pub fn read_u64(&self, off: usize) -> u64 {
        // SAFETY: as for `read_u16`.
        u64::from_le(unsafe { self.at::<u64>(off).read_volatile() })
    }

    /// Writes a little-endian `u16` of ring memory.
    pub fn write_u16(&self, off: usize, v: u16) {
        // SAFETY: `at` checked bounds and alignment; no reference to ring memory exists (only
        // these accessors touch it), so a write through `&self` aliases nothing.
        unsafe { self.at::<u16>(off).write_volatile(v.to_le()) }
    }

    /// Writes a little-endian `u32` of ring memory.
    pub fn write_u32(&self, off: usize, v: u32) {
        // SAFETY: as for `write_u16`.
        unsafe { self.at::<u32>(off).write_volatile(v.to_le()) }
    }

    /// Writes a little-endian `u64` of ring memory.
    pub fn write_u64(&self, off: usize, v: u64) {
        // SAFETY: as for `write_u16`.
        unsafe { self.at::<u64>(off).write_volatile(v.to_le()) }
    }
}

impl Drop for Dma {
    fn drop(&mut self) {
        // SAFETY: allocated with exactly this layout (in `zeroed`, or by the vector
        // `from_vec` took over, whose capacity `layout` records), freed once (`into_vec`
        // never drops).
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Orders the driver's writes to shared memory before a following write the device observes
/// (the available index, a notification).
pub fn fence_release() {
    fence(Ordering::SeqCst);
}

/// Orders a read of a device-written index before the reads of the data it covers.
pub fn fence_acquire() {
    fence(Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lent_vector_comes_back_whole_and_an_empty_one_is_refused() {
        let mut v = Vec::with_capacity(8192);
        v.extend((0..5000u32).map(|i| i as u8));
        let p = v.as_ptr();
        let mut d = Dma::from_vec(v).unwrap();
        assert_eq!((d.len(), d.paddr()), (5000, p as u64));
        d.bytes_mut()[0] = 0xAA;
        let back = d.into_vec();
        assert_eq!(
            (back.len(), back.capacity(), back.as_ptr()),
            (5000, 8192, p)
        );
        assert_eq!(back[0], 0xAA);
        assert_eq!(back[4999], (4999u32 % 256) as u8);
        assert!(Dma::from_vec(Vec::new()).is_none());
        // Dropped without `into_vec`: freed with the vector's layout.
        drop(Dma::from_vec(vec![1u8; 100]).unwrap());
        // An allocation of our own comes back as a copy.
        let z = Dma::zeroed(64, 64).unwrap();
        assert_eq!(z.into_vec(), vec![0u8; 64]);
    }

    #[test]
    fn allocations_are_aligned_zeroed_and_accessible() {
        let mut d = Dma::zeroed(8192, 4096).unwrap();
        assert_eq!(d.paddr() % 4096, 0);
        assert!(d.bytes().iter().all(|&b| b == 0));
        d.write_u16(2, 0xbeef);
        d.write_u32(4, 7);
        d.write_u64(8, u64::MAX);
        assert_eq!(d.read_u16(2), 0xbeef);
        assert_eq!(d.read_u32(4), 7);
        assert_eq!(d.read_u64(8), u64::MAX);
        d.bytes_mut()[0] = 1;
        assert_eq!(d.bytes()[0], 1);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn ring_accesses_are_bounds_checked() {
        Dma::zeroed(16, 16).unwrap().read_u32(14);
    }
}
