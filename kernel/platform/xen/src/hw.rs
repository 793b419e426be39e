//! The machine-level operations of the `xen` platform: CPUID, the one MSR write that installs
//! the hypercall page, the hypercall itself, the two I/O ports used before Xen's console is up
//! (0xe9, Xen's debug port, and 0xf4, QEMU's `isa-debug-exit`, for the "not on Xen" refusal),
//! the idle instruction pair, and plain accesses to guest-physical memory shared with Xen.
//!
//! All of it is `unsafe` by nature, so this module is allowed `unsafe` code and holds nothing
//! else; every other module of the crate is safe code on top of these functions.
//!
//! # The hypercall page and the red zone
//! Xen fills a page of stubs (`mov $n, %eax; vmcall|vmmcall; ret`, 32 bytes each) at the
//! physical address written to its MSR. The target fata compiles for keeps a red zone below
//! `rsp`, so an inline-asm `call` into the page would overwrite 8 bytes of it. The call is made
//! from `fata_xen_hypercall`, a `global_asm!` function reached through `extern "C"`: the
//! compiler treats it as an ordinary call (which owns nothing below `rsp`), and the five
//! argument registers Xen's debug builds scribble over are caller-saved in the C ABI.

use core::sync::atomic::{AtomicU16, AtomicU32};

core::arch::global_asm!(
    r#"
    .section .text.fata_xen_hypercall_page, "ax", @progbits
    .balign 4096
    .globl fata_xen_hypercall_page
fata_xen_hypercall_page:
    .fill 4096, 1, 0xc3
    .size fata_xen_hypercall_page, 4096

    .section .text.fata_xen_hypercall, "ax", @progbits
    .globl fata_xen_hypercall
    .type fata_xen_hypercall, @function
fata_xen_hypercall:
    // C ABI in: rdi = number, rsi, rdx, rcx, r8, r9 = arguments 1..5.
    // Xen's ABI: rdi, rsi, rdx, r10, r8 = arguments 1..5; the result in rax.
    mov rax, rdi
    and rax, 63
    shl rax, 5
    lea r11, [rip + fata_xen_hypercall_page]
    add r11, rax
    mov rdi, rsi
    mov rsi, rdx
    mov rdx, rcx
    mov r10, r8
    mov r8, r9
    call r11
    ret
    .size fata_xen_hypercall, . - fata_xen_hypercall
"#
);

unsafe extern "C" {
    static fata_xen_hypercall_page: [u8; 4096];
    fn fata_xen_hypercall(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64;
}

/// The physical (= virtual, identity map) address of the hypercall page.
pub(crate) fn hypercall_page() -> u64 {
    core::ptr::addr_of!(fata_xen_hypercall_page) as u64
}

/// Whether Xen has filled the hypercall page (its first stub no longer starts with the `ret`
/// poison).
pub(crate) fn hypercall_page_filled() -> bool {
    // SAFETY: the page is a 4096-byte static in the image; a volatile read of its first byte
    // is in bounds (volatile: Xen writes it behind the compiler's back).
    unsafe {
        core::ptr::read_volatile(core::ptr::addr_of!(fata_xen_hypercall_page).cast::<u8>()) != 0xc3
    }
}

/// Makes hypercall `nr` with up to five arguments.
///
/// # Safety
/// Pointer arguments must point to memory that is valid for what Xen reads or writes for this
/// hypercall and operation (Xen writes through them as the guest kernel); guest-physical
/// frames handed to Xen (shared_info, grant frames) must be pages this image owns and will not
/// use for anything else. The hypercall page must have been installed ([`install_hypercall_page`]).
pub(crate) unsafe fn hypercall(nr: u32, a: [u64; 5]) -> i64 {
    // SAFETY: the caller upholds the argument contract; the trampoline follows the C ABI.
    unsafe { fata_xen_hypercall(u64::from(nr), a[0], a[1], a[2], a[3], a[4]) }
}

/// Writes the hypercall page's physical address to Xen's MSR `msr`.
pub(crate) fn install_hypercall_page(msr: u32) {
    let addr = hypercall_page();
    // SAFETY: `msr` is the MSR Xen's CPUID leaf names for this purpose; writing it makes Xen
    // fill the page at `addr`, a page-aligned 4 KiB static in `.text` reserved for this.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") addr as u32, in("edx") (addr >> 32) as u32,
            options(nostack, preserves_flags));
    }
}

/// CPUID leaf `leaf`: (eax, ebx, ecx, edx).
pub(crate) fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid(leaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Reads the time-stamp counter.
pub(crate) fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available on every x86_64 CPU and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Writes a byte to I/O port `port` (only 0xe9 and 0xf4 are used: Xen's and QEMU's debug ports).
pub(crate) fn outb(port: u16, v: u8) {
    // SAFETY: the ports used are debug ports with no effect on memory; on a machine without
    // them the write is ignored.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    };
}

core::arch::global_asm!(
    r#"
    .section .text.fata_xen_idle, "ax", @progbits
    .globl fata_xen_idle
    .type fata_xen_idle, @function
fata_xen_idle:
    sti
    .globl fata_xen_idle_hlt
fata_xen_idle_hlt:
    hlt
    cli
    ret
    .size fata_xen_idle, . - fata_xen_idle
"#
);

unsafe extern "C" {
    fn fata_xen_idle();
    static fata_xen_idle_hlt: u8;
}

/// The address of the idle `hlt` (for `fata_boot::trap::set_idle_halt`).
pub(crate) fn idle_hlt_address() -> u64 {
    core::ptr::addr_of!(fata_xen_idle_hlt) as u64
}

/// Halts until the next interrupt, which is taken; returns with interrupts disabled again.
pub(crate) fn wait_for_interrupt() {
    // SAFETY: `sti; hlt; cli` is the atomic idle idiom: the interrupt shadow of `sti` makes
    // `hlt` run before any interrupt is taken, so an upcall that became pending while
    // interrupts were off wakes the `hlt` instead of being lost (and should an interrupt be
    // taken at the `hlt` anyway, the trap layer resumes after it: `set_idle_halt`). Every
    // vector has an IST stack and the stubs save all state; the function clobbers nothing.
    unsafe { fata_xen_idle() };
}

/// Stops this CPU for good (the last resort after a failed shutdown).
pub(crate) fn halt_forever() -> ! {
    loop {
        // SAFETY: halting with interrupts disabled only stops this CPU.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}

/// A page-aligned 4 KiB page of guest memory that Xen or another domain may read and write at
/// any time: every access goes through volatile or atomic operations, so no Rust reference
/// to its bytes ever exists.
#[derive(Debug)]
pub(crate) struct Phys {
    addr: usize,
}

impl Phys {
    /// The page at physical address `addr`.
    ///
    /// # Safety
    /// `addr` must be 4 KiB aligned, identity-mapped, and a page nothing else in the image
    /// uses as ordinary Rust memory for as long as the `Phys` (or copies of its address) live.
    pub(crate) const unsafe fn new(addr: usize) -> Phys {
        Phys { addr }
    }

    /// The page's physical address.
    pub(crate) fn addr(&self) -> usize {
        self.addr
    }

    fn check(off: usize, len: usize, align: usize) {
        assert!(
            off.checked_add(len).is_some_and(|e| e <= 4096) && off.is_multiple_of(align),
            "shared page access out of bounds"
        );
    }

    /// Atomic view of the `u32` at `off` (4-aligned).
    pub(crate) fn u32_at(&self, off: usize) -> &AtomicU32 {
        Self::check(off, 4, 4);
        // SAFETY: in bounds and aligned (checked); the page outlives `self` (contract of
        // `new`), and only atomic operations are made through the reference.
        unsafe { &*((self.addr + off) as *const AtomicU32) }
    }

    /// Atomic view of the `u16` at `off` (2-aligned).
    pub(crate) fn u16_at(&self, off: usize) -> &AtomicU16 {
        Self::check(off, 2, 2);
        // SAFETY: as for `u32_at`.
        unsafe { &*((self.addr + off) as *const AtomicU16) }
    }

    /// The `u64` at `off` (8-aligned), read with a volatile access.
    pub(crate) fn read_u64(&self, off: usize) -> u64 {
        Self::check(off, 8, 8);
        // SAFETY: in bounds and aligned (checked); the page is valid (contract of `new`).
        unsafe { core::ptr::read_volatile((self.addr + off) as *const u64) }
    }

    /// Writes the `u64` at `off` (8-aligned) with a volatile access.
    pub(crate) fn write_u64(&self, off: usize, v: u64) {
        Self::check(off, 8, 8);
        // SAFETY: as for `read_u64`.
        unsafe { core::ptr::write_volatile((self.addr + off) as *mut u64, v) }
    }

    /// Copies bytes out of the page: volatile 8-byte loads where aligned (a frame is copied
    /// on every packet), single bytes at the ends.
    pub(crate) fn read(&self, off: usize, out: &mut [u8]) {
        Self::check(off, out.len(), 1);
        let mut i = 0;
        while i < out.len() {
            let at = self.addr + off + i;
            if at.is_multiple_of(8) && out.len() - i >= 8 {
                // SAFETY: in bounds (checked above) and 8-aligned; the page is valid (contract
                // of `new`).
                let w = unsafe { core::ptr::read_volatile(at as *const u64) };
                out[i..i + 8].copy_from_slice(&w.to_ne_bytes());
                i += 8;
            } else {
                // SAFETY: in bounds (checked above); the page is valid (contract of `new`).
                out[i] = unsafe { core::ptr::read_volatile(at as *const u8) };
                i += 1;
            }
        }
    }

    /// Copies bytes into the page, as [`Phys::read`] does.
    pub(crate) fn write(&self, off: usize, data: &[u8]) {
        Self::check(off, data.len(), 1);
        let mut i = 0;
        while i < data.len() {
            let at = self.addr + off + i;
            if at.is_multiple_of(8) && data.len() - i >= 8 {
                let mut w = [0u8; 8];
                w.copy_from_slice(&data[i..i + 8]);
                // SAFETY: as for `read`.
                unsafe { core::ptr::write_volatile(at as *mut u64, u64::from_ne_bytes(w)) };
                i += 8;
            } else {
                // SAFETY: as for `read`.
                unsafe { core::ptr::write_volatile(at as *mut u8, data[i]) };
                i += 1;
            }
        }
    }

    /// Writes the byte at `off` with a volatile access.
    pub(crate) fn write_u8(&self, off: usize, v: u8) {
        Self::check(off, 1, 1);
        // SAFETY: in bounds (checked); the page is valid (contract of `new`).
        unsafe { core::ptr::write_volatile((self.addr + off) as *mut u8, v) }
    }

    /// Reads the byte at `off` with a volatile access.
    pub(crate) fn read_u8(&self, off: usize) -> u8 {
        Self::check(off, 1, 1);
        // SAFETY: in bounds (checked); the page is valid (contract of `new`).
        unsafe { core::ptr::read_volatile((self.addr + off) as *const u8) }
    }

    /// Atomic view of the `u64` at `off` (8-aligned).
    pub(crate) fn u64_at(&self, off: usize) -> &core::sync::atomic::AtomicU64 {
        Self::check(off, 8, 8);
        // SAFETY: as for `u32_at`.
        unsafe { &*((self.addr + off) as *const core::sync::atomic::AtomicU64) }
    }
}

/// A page of heap memory handed to another domain through a grant: allocated zeroed and
/// page-aligned, accessed only through [`Phys`], and freed when dropped. A page whose grant
/// could not be ended must be leaked with [`core::mem::forget`] instead (the other domain may
/// still write it).
pub(crate) struct HeapPage(Phys);

const PAGE_LAYOUT: core::alloc::Layout = match core::alloc::Layout::from_size_align(4096, 4096) {
    Ok(l) => l,
    Err(_) => panic!("page layout"),
};

impl HeapPage {
    /// A fresh zeroed page, or `None` when the heap is exhausted.
    pub(crate) fn new() -> Option<HeapPage> {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc::alloc_zeroed(PAGE_LAYOUT) };
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` is a fresh 4 KiB-aligned allocation of 4 KiB owned by this value until
        // it is dropped (which frees it) or forgotten (which leaks it); the heap is
        // identity-mapped RAM.
        Some(HeapPage(unsafe { Phys::new(p as usize) }))
    }

    /// The page.
    pub(crate) fn phys(&self) -> &Phys {
        &self.0
    }
}

impl Drop for HeapPage {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `alloc_zeroed` with this layout in `new` and is freed once.
        unsafe { alloc::alloc::dealloc(self.0.addr as *mut u8, PAGE_LAYOUT) }
    }
}

/// Page-aligned pages in `.bss` that are handed to Xen (shared_info, the grant table frames):
/// only ever accessed through [`Phys`].
#[repr(C, align(4096))]
struct StaticPages<const N: usize>(core::cell::UnsafeCell<[[u8; 4096]; N]>);

// SAFETY: the bytes are never accessed through references, only through `Phys` (volatile and
// atomic accesses), which is how memory shared with the hypervisor must be accessed anyway.
unsafe impl<const N: usize> Sync for StaticPages<N> {}

/// How many grant table frames the image reserves (512 grants each).
pub(crate) const GRANT_FRAMES: usize = 4;

static SHARED_INFO: StaticPages<1> = StaticPages(core::cell::UnsafeCell::new([[0; 4096]; 1]));
static GRANT_TABLE: StaticPages<GRANT_FRAMES> =
    StaticPages(core::cell::UnsafeCell::new([[0; 4096]; GRANT_FRAMES]));

/// The page Xen's shared_info is mapped onto.
pub(crate) fn shared_info_page() -> Phys {
    // SAFETY: a page-aligned static page used for nothing else, identity-mapped with the image.
    unsafe { Phys::new(SHARED_INFO.0.get() as usize) }
}

/// Grant table frame `i` (`i < GRANT_FRAMES`).
pub(crate) fn grant_frame(i: usize) -> Phys {
    assert!(i < GRANT_FRAMES, "grant frame out of range");
    // SAFETY: page `i` of a page-aligned static array used for nothing else.
    unsafe { Phys::new(GRANT_TABLE.0.get() as usize + i * 4096) }
}

/// One of Xen's special pages (console or xenstore ring) at guest frame `pfn`, which must lie
/// outside the heap and below 4 GiB (checked by the caller against the memory map).
pub(crate) fn special_page(pfn: u64) -> Phys {
    // SAFETY: the caller checked that the frame is reserved (not heap, not image) and mapped;
    // Xen put the ring there for this domain.
    unsafe { Phys::new((pfn << 12) as usize) }
}
