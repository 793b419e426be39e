//! Hosted wiring for the `unix` platform: std's allocator and panic machinery are present
//! (the platform crate installs a panic hook that reports and exits like the bare-metal
//! handler), so there is nothing to set up here.

pub use fata_platform_unix::Unix as Plat;

pub fn init_heap(_boot: &fata_hal::BootInfo) {}
