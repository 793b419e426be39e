//! THE platform selection point: exactly one `platform-*` feature picks the platform crate
//! that `Plat` names. No other file in fata tests a platform feature. Unit tests (no feature)
//! run against the HAL's mock platform.

#[cfg(any(
    all(feature = "platform-virtio", feature = "platform-unix"),
    all(feature = "platform-virtio", feature = "platform-xen"),
    all(feature = "platform-xen", feature = "platform-unix"),
))]
compile_error!(
    "fata: two platforms selected; build through `cargo xtask build --target <virtio|xen|unix>`"
);

#[cfg(all(
    not(test),
    not(any(
        feature = "platform-virtio",
        feature = "platform-xen",
        feature = "platform-unix"
    ))
))]
compile_error!(
    "fata: no platform selected; build applications through `cargo xtask build --target <virtio|xen|unix> --example NAME`"
);

// The allocator is installed here (one `unsafe` call to hand it the RAM).
#[cfg(any(feature = "platform-virtio", feature = "platform-xen"))]
#[path = "platform/bare_metal.rs"]
#[allow(unsafe_code)]
mod imp;

#[cfg(all(
    feature = "platform-unix",
    not(any(feature = "platform-virtio", feature = "platform-xen"))
))]
#[path = "platform/unix.rs"]
mod imp;

#[cfg(not(any(
    feature = "platform-virtio",
    feature = "platform-xen",
    feature = "platform-unix"
)))]
mod imp {
    pub use fata_hal::mock::MockPlatform as Plat;
    pub fn init_heap(_boot: &fata_hal::BootInfo) {}
}

pub(crate) use imp::{Plat, init_heap};
