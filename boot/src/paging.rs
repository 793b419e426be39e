//! The final page tables: an identity map of the low 4 GiB in which every part of the image
//! gets exactly the rights it needs.
//!
//! - page 0 is unmapped (a null dereference faults);
//! - text is read + execute; rodata is read-only, no-execute;
//! - data, `.bss`, stacks and everything beyond the image (heap, MMIO) are read-write,
//!   no-execute;
//! - the guard page below each stack is unmapped, so an overflow faults instead of
//!   silently overwriting whatever lies below;
//! - 2 MiB chunks that hold no RAM (device MMIO: LAPIC, IOAPIC, virtio-mmio, PCI BARs) are
//!   mapped uncached.
//!
//! The image's region (up to [`MAX_IMAGE_BYTES`]) uses 4 KiB pages; the rest 2 MiB pages.
//! [`build`] is pure (it fills a [`Tables`] value) so it is unit-tested on the host;
//! [`init`] builds the static tables and loads them into CR3.

use crate::layout::{ImageLayout, PAGE_SIZE, Range};

/// Present.
const P: u64 = 1 << 0;
/// Writable.
const W: u64 = 1 << 1;
/// Write-through (with `PCD`: uncached).
const PWT: u64 = 1 << 3;
/// Cache disable.
const PCD: u64 = 1 << 4;
/// Large page (in a page directory entry: 2 MiB).
const PS: u64 = 1 << 7;
/// No-execute.
const NX: u64 = 1 << 63;

const LARGE: u64 = 2 << 20;
/// Gigabytes of physical address space identity-mapped.
const MAPPED_GIB: usize = 4;
/// Page tables reserved for the image's 4 KiB mappings.
const IMAGE_PTS: usize = 8;
/// The largest image (from address 0 to its end) the 4 KiB mappings cover: 16 MiB.
pub const MAX_IMAGE_BYTES: u64 = IMAGE_PTS as u64 * LARGE;

/// The rights of one 4 KiB page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    /// Not mapped: any access faults.
    Unmapped,
    /// Code.
    ReadExecute,
    /// Constants.
    Read,
    /// Everything else.
    ReadWrite,
}

/// The rights the page at `addr` gets.
pub fn perm_of(layout: &ImageLayout, addr: u64) -> Perm {
    if addr < PAGE_SIZE || layout.guard_hit(addr).is_some() {
        Perm::Unmapped
    } else if layout.text.contains(addr) {
        Perm::ReadExecute
    } else if layout.rodata.contains(addr) {
        Perm::Read
    } else {
        Perm::ReadWrite
    }
}

fn leaf_flags(perm: Perm) -> u64 {
    match perm {
        Perm::Unmapped => 0,
        Perm::ReadExecute => P,
        Perm::Read => P | NX,
        Perm::ReadWrite => P | W | NX,
    }
}

/// One 4 KiB page table.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
pub struct Table(pub [u64; 512]);

/// Every table of the final map.
#[repr(C)]
pub struct Tables {
    pml4: Table,
    pdpt: Table,
    pd: [Table; MAPPED_GIB],
    pt: [Table; IMAGE_PTS],
}

impl Tables {
    /// All entries empty.
    pub const fn new() -> Tables {
        const EMPTY: Table = Table([0; 512]);
        Tables {
            pml4: EMPTY,
            pdpt: EMPTY,
            pd: [EMPTY; MAPPED_GIB],
            pt: [EMPTY; IMAGE_PTS],
        }
    }

    /// The leaf entry that maps `addr`, and whether it is a 2 MiB entry (for tests and
    /// crash reports).
    pub fn leaf(&self, addr: u64) -> Option<(u64, bool)> {
        let chunk = (addr / LARGE) as usize;
        if chunk >= MAPPED_GIB * 512 {
            return None;
        }
        if chunk < IMAGE_PTS {
            Some((self.pt[chunk].0[((addr / PAGE_SIZE) % 512) as usize], false))
        } else {
            Some((self.pd[chunk / 512].0[chunk % 512], true))
        }
    }
}

impl Default for Tables {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the page tables cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// The image reaches past [`MAX_IMAGE_BYTES`].
    ImageTooLarge { end: u64 },
}

impl core::fmt::Display for PagingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PagingError::ImageTooLarge { end } => write!(
                f,
                "the image ends at {end:#x}; the page tables cover images up to {MAX_IMAGE_BYTES:#x}"
            ),
        }
    }
}

/// Fills `t` for `layout`. `ram` lists the RAM regions (everything else is mapped uncached).
/// `base` is the physical address of `t` itself (upper levels point at it).
pub fn build(
    t: &mut Tables,
    base: u64,
    layout: &ImageLayout,
    ram: &[Range],
) -> Result<(), PagingError> {
    if layout.end() > MAX_IMAGE_BYTES {
        return Err(PagingError::ImageTooLarge { end: layout.end() });
    }
    let origin = t as *const Tables as u64;
    let off = |field: *const Table| field as u64 - origin + base;

    let pdpt = off(&t.pdpt);
    t.pml4.0 = [0; 512];
    t.pml4.0[0] = pdpt | P | W;
    for gib in 0..MAPPED_GIB {
        t.pdpt.0[gib] = off(&t.pd[gib]) | P | W;
    }
    for chunk in 0..MAPPED_GIB * 512 {
        let addr = chunk as u64 * LARGE;
        let entry = if chunk < IMAGE_PTS {
            off(&t.pt[chunk]) | P | W
        } else {
            let is_ram = ram.iter().any(|r| r.start < addr + LARGE && addr < r.end);
            let cache = if is_ram { 0 } else { PCD | PWT };
            addr | P | W | PS | NX | cache
        };
        t.pd[chunk / 512].0[chunk % 512] = entry;
    }
    for (i, pt) in t.pt.iter_mut().enumerate() {
        for (j, e) in pt.0.iter_mut().enumerate() {
            let addr = (i as u64 * 512 + j as u64) * PAGE_SIZE;
            let flags = leaf_flags(perm_of(layout, addr));
            *e = if flags == 0 { 0 } else { addr | flags };
        }
    }
    Ok(())
}

/// The image side: the static tables and the switch to them, which need `unsafe` (a
/// write-once static, the write to CR3).
#[cfg(not(test))]
#[allow(unsafe_code)]
mod imp {
    use super::*;

    struct Static(core::cell::UnsafeCell<Tables>);
    // SAFETY: the tables are written once, by `init`, on the only CPU, before interrupts are
    // ever enabled; afterwards only the MMU reads them.
    unsafe impl Sync for Static {}
    static TABLES: Static = Static(core::cell::UnsafeCell::new(Tables::new()));
    static DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

    /// Builds the final page tables for the running image and switches to them.
    /// Call once; later calls do nothing.
    pub fn init(ram: &[Range]) -> Result<(), PagingError> {
        if DONE.swap(true, core::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let layout = ImageLayout::current();
        let ptr = TABLES.0.get();
        // SAFETY: `DONE` guarantees this is the only reference ever made to the tables, and
        // the identity map means their virtual address is their physical address.
        let tables = unsafe { &mut *ptr };
        build(tables, ptr as u64, &layout, ram)?;
        // SAFETY: the new tables identity-map all code, data and stacks in use (only guard
        // pages and page 0 are left out), so execution continues at the same addresses.
        unsafe {
            core::arch::asm!("mov cr3, {}", in(reg) ptr as u64, options(nostack, preserves_flags));
        }
        Ok(())
    }
}
#[cfg(not(test))]
pub use imp::init;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::testing::sample;

    fn built() -> Box<Tables> {
        let mut t = Box::new(Tables::new());
        let ram = [Range {
            start: 0,
            end: 0x0800_0000,
        }];
        build(&mut t, 0x20_0000, &sample(), &ram).unwrap();
        t
    }

    #[test]
    fn page_zero_and_guard_pages_are_unmapped() {
        let t = built();
        let l = sample();
        assert_eq!(t.leaf(0).unwrap().0 & P, 0);
        assert_eq!(t.leaf(0xfff).unwrap().0 & P, 0);
        for s in l.stacks {
            assert_eq!(t.leaf(s.guard).unwrap().0 & P, 0, "{}", s.name);
            assert_ne!(t.leaf(s.memory.start).unwrap().0 & P, 0, "{}", s.name);
            assert_ne!(t.leaf(s.memory.end - 1).unwrap().0 & P, 0, "{}", s.name);
        }
    }

    #[test]
    fn text_is_executable_read_only_and_data_is_writable_no_execute() {
        let t = built();
        let l = sample();
        let text = t.leaf(l.text.start).unwrap().0;
        assert_eq!(text & (P | W | NX), P);
        let ro = t.leaf(l.rodata.start).unwrap().0;
        assert_eq!(ro & (P | W | NX), P | NX);
        let data = t.leaf(l.data.start).unwrap().0;
        assert_eq!(data & (P | W | NX), P | W | NX);
        let low = t.leaf(0x1000).unwrap().0;
        assert_eq!(low & (P | W | NX), P | W | NX);
        assert_eq!(text & !0xfff & !NX, l.text.start, "identity mapped");
    }

    #[test]
    fn ram_beyond_the_image_is_large_cached_and_mmio_is_uncached() {
        let t = built();
        let (heap, large) = t.leaf(0x0400_0000).unwrap();
        assert!(large);
        assert_eq!(heap & (P | W | NX | PCD), P | W | NX);
        let (lapic, large) = t.leaf(0xfee0_0000).unwrap();
        assert!(large);
        assert_eq!(lapic & (PCD | PWT), PCD | PWT);
        assert_eq!(lapic & 0x000f_ffff_ffe0_0000, 0xfee0_0000);
        assert!(t.leaf(4 << 30).is_none());
    }

    #[test]
    fn an_image_past_the_covered_range_is_refused() {
        let mut t = Box::new(Tables::new());
        let mut l = sample();
        l.data.end = MAX_IMAGE_BYTES + PAGE_SIZE;
        assert_eq!(
            build(&mut t, 0, &l, &[]),
            Err(PagingError::ImageTooLarge {
                end: MAX_IMAGE_BYTES + PAGE_SIZE
            })
        );
    }
}
