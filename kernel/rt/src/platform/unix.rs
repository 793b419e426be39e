//! Hosted wiring for the `unix` platform: std's allocator and panic machinery are present
//! (the platform crate installs a panic hook); the runtime only routes the hook's report
//! through its own reporter, so a panic prints like every other line (text or JSON) and
//! exits like the bare-metal handler.

pub use fata_platform_unix::Unix as Plat;

pub fn init_heap(_boot: &fata_hal::BootInfo) {
    fata_platform_unix::set_panic_reporter(|location, msg| {
        crate::runtime::report_panic(location, msg)
    });
}
