//! The `xen` platform: a PVH domU on Xen.
//!
//! Platform layer: wires the boot code (`fata-boot`, the same PVH entry as `virtio`) and the
//! Xen drivers (`fata-xen`: xenstore, netfront, blkfront) to the HAL. It owns what only a Xen
//! guest has: the hypercall page, shared_info and event channels (the idle loop), the grant
//! table, pvclock time, the PV console ring and `SCHEDOP_shutdown`.
//!
//! Boot: `fata_boot`'s entry code calls [`entry`]'s `fata_platform_entry`, which brings the
//! domain up (`startup`) and calls the application's `__fata_start`.
//!
//! `unsafe` code is allowed in three small modules only: `hw` (CPUID, the MSR write, the
//! hypercall trampoline, I/O ports, `sti; hlt`, and volatile access to pages shared with
//! Xen), `hypercall` (passing pointers to Xen) and `entry` (linking by symbol name). The rest of
//! the crate is safe code on top of them; `deny(unsafe_code)` enforces it.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
// Code used only by the image (entry, hardware init) is dead in host unit tests.
#![cfg_attr(test, allow(dead_code))]

extern crate alloc;

mod clock;
mod console;
mod devices;
#[cfg(not(test))]
#[allow(unsafe_code)]
mod entry;
mod events;
mod exit;
mod grant;
#[allow(unsafe_code)]
mod hw;
#[allow(unsafe_code)]
mod hypercall;
#[cfg(not(test))]
mod startup;

use fata_hal::{Events, ExitCode, Nanos, Platform};

/// The `xen` platform.
pub struct Xen;

impl Platform for Xen {
    const NAME: &'static str = "xen";
    type Net = fata_xen::netfront::Netfront<devices::XenHv>;
    type Sockets = fata_hal::sockets::NoSockets;
    type Block = fata_xen::blkfront::Blkfront<devices::XenHv>;

    fn open_block(name: &str) -> Result<(Self::Block, Events), fata_hal::block::OpenError> {
        devices::open_block(name)
    }

    fn open_net(name: &str) -> Result<(Self::Net, Events), fata_hal::net::OpenError> {
        devices::open_net(name)
    }

    /// RDSEED and RDRAND when the domain's CPUID offers them: Xen has no paravirtual
    /// entropy device.
    fn entropy_sources() -> alloc::vec::Vec<alloc::boxed::Box<dyn fata_hal::entropy::EntropySource>>
    {
        fata_boot::cpu_rng::sources(console::write)
    }

    fn console_write(bytes: &[u8]) {
        console::write(bytes);
    }

    fn monotonic_ns() -> Nanos {
        clock::monotonic_ns()
    }

    fn wall_ns() -> Option<Nanos> {
        clock::wall_ns()
    }

    fn wait(deadline: Option<Nanos>) -> Events {
        events::wait(deadline)
    }

    fn exit(code: ExitCode) -> ! {
        exit::exit(code.code())
    }
}
