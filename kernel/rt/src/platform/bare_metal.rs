//! Bare-metal wiring for the `virtio` and `xen` platforms: the heap over the RAM the platform
//! found, and the panic handler (std is not there to provide one).

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
