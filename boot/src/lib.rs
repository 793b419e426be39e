//! fata boot layer: everything between the hypervisor's PVH entry and the first line of the
//! platform's Rust code, and the CPU-level mechanisms the platform drives afterwards.
//!
//! Boot sequence (see [`entry`]): the loader jumps to `fata_pvh_start` in 32-bit protected
//! mode with the physical address of the PVH start info in `%ebx`. The entry code builds a
//! temporary identity map, enables PAE, long mode, NX and SSE, loads a boot GDT, zeroes
//! `.bss`, switches to the 256 KiB boot stack and calls `fata_platform_entry(start_info)`,
//! which the platform crate defines. The platform then calls, in order:
//! [`cpu::init`] (final GDT, TSS with IST stacks, IDT), [`start_info::read`],
//! [`paging::init`] (page tables that separate permissions), and hands over to the runtime.
//!
//! This crate may touch the CPU (control registers, descriptor tables, page tables) and
//! nothing else: no device, no console. Console output for crash reports goes through the
//! hooks the platform installs with [`trap::install`].
//!
//! Only images link this crate's symbols: the assembly, `mem*` and the unwinding dummies
//! are compiled only with the `image` feature (which `fata` turns on with its bare-metal
//! platform features) and never in host unit tests.
//!
//! `unsafe` is inherent to this layer, but it is still kept out of the logic: the crate denies
//! `unsafe_code`, and allows it only in `entry` (assembly), `mem` (the `mem*` symbols) and
//! in the image-only `imp`/`symbols` submodules of [`cpu`], [`layout`], [`paging`],
//! [`start_info`] and [`trap`], which hold the statics, the privileged instructions and the
//! raw memory reads; and in the private `imp` module of [`cpu_rng`] (CPUID, RDSEED, RDRAND).
//! What those modules compute (descriptor encodings, the page-table plan,
//! the start-info checks, crash diagnosis) is safe code, unit-tested on the host.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
// Code used only by the image (entry, hardware init) is dead in host unit tests.
#![cfg_attr(test, allow(dead_code))]

extern crate alloc;

pub mod app;
pub mod cpu;
pub mod cpu_rng;
#[cfg(all(feature = "image", not(test)))]
#[allow(unsafe_code)]
mod entry;
pub mod layout;
#[cfg(all(feature = "image", not(test)))]
#[allow(unsafe_code)]
mod mem;
pub mod memory;
pub mod paging;
pub mod start_info;
pub mod trap;

/// `core::fmt::Write` over a platform's console function, for what the platform says before
/// the runtime's logger exists.
pub struct Console(pub fn(&[u8]));

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        (self.0)(s.as_bytes());
        Ok(())
    }
}

/// Writes `args` on `console` (what a platform says at boot, before the runtime's logger).
pub fn say(console: fn(&[u8]), args: core::fmt::Arguments<'_>) {
    let _ = core::fmt::Write::write_fmt(&mut Console(console), args);
}

/// Says on `console` why the machine cannot run the application, and the exit line the runtime
/// would print (`fata: exit N (Name)`); the platform then stops with `code`.
pub fn refuse(console: fn(&[u8]), code: fata_hal::ExitCode, why: core::fmt::Arguments<'_>) {
    use core::fmt::Write;
    let mut c = Console(console);
    let _ = writeln!(c, "fata: cannot boot: {why}");
    let _ = writeln!(c, "fata: exit {} ({:?})", code.code(), code);
}
