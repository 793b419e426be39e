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
#![cfg_attr(not(test), no_std)]
// Code used only by the image (entry, hardware init) is dead in host unit tests.
#![cfg_attr(test, allow(dead_code))]

pub mod cpu;
#[cfg(all(feature = "image", not(test)))]
mod entry;
pub mod layout;
#[cfg(all(feature = "image", not(test)))]
mod mem;
pub mod paging;
pub mod start_info;
pub mod trap;
