//! Bare-metal wiring for the `virtio` and `xen` platforms: the heap over the RAM the platform
//! found, the panic handler (std is not there to provide one) and the `getrandom` custom
//! backend over `fata::rand`.

#[cfg(feature = "platform-virtio")]
pub use fata_platform_virtio::Virtio as Plat;
#[cfg(feature = "platform-xen")]
pub use fata_platform_xen::Xen as Plat;

#[global_allocator]
static HEAP: crate::heap::Heap = crate::heap::Heap::new();

/// Hands every free RAM region to the heap.
pub fn init_heap(boot: &fata_hal::BootInfo) {
    for r in boot.heap_regions() {
        // SAFETY: the platform reports these regions as free RAM above the image, mapped
        // read-write and used by nothing else, for the rest of the program; each once.
        unsafe { HEAP.claim(r) };
    }
    crate::heap::set_global(&HEAP);
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::runtime::report_panic(info.location(), info.message())
}

/// The `getrandom` custom backend (`--cfg getrandom_backend="custom"`, which the xtask sets for
/// bare-metal image builds): crates on getrandom 0.3 or 0.4 (`rand` 0.9, `rand_core` 0.9,
/// current RustCrypto) get their bytes from [`crate::rand`]. Both versions declare this symbol
/// as `fn(*mut u8, usize) -> Result<(), getrandom::Error>`, whose `Error` is a non-zero 32-bit
/// code; this never fails, so it always returns `Ok(())` (all zero bits in either layout).
/// It does not refuse when [`crate::rand::is_secure`] is false: the boot warning says so, and
/// code that makes keys checks `is_secure() || allow_insecure()` itself.
///
/// # Safety
///
/// `dest` must be valid for writes of `len` bytes (they may be uninitialised), as getrandom
/// guarantees.
#[unsafe(no_mangle)]
unsafe extern "Rust" fn __getrandom_v03_custom(
    dest: *mut u8,
    len: usize,
) -> Result<(), core::num::NonZeroU32> {
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len());
        crate::rand::fill(&mut chunk[..n]);
        // SAFETY: the caller gives `dest` valid for `len` bytes of writes; `done + n <= len`,
        // and `chunk` is a distinct local buffer, so the ranges do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), dest.add(done), n) };
        done += n;
    }
    chunk.fill(0);
    Ok(())
}
