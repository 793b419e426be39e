//! virtio drivers: the transports (virtio-mmio v1/v2, virtio-pci modern and legacy), the split
//! virtqueue (single buffers and descriptor chains), the network device, the block device and the
//! entropy device.
//!
//! Driver layer: depends on the HAL and never on the TCP/IP stack or the runtime. Everything
//! the device writes (used-ring entries, lengths, indices, configuration) is checked before it
//! is trusted: an impossible value is counted and dropped, never a panic.
//!
//! `unsafe` is confined to [`dma`] (memory shared with the device), [`regs`] (device
//! registers) and [`pci::config`] (the PCI configuration ports, and the register windows made
//! from BARs); the compiler enforces it (`deny(unsafe_code)` here, `allow` on those three
//! modules only). The rest of the crate is safe code over them.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod blk;
#[allow(unsafe_code)]
pub mod dma;
pub mod mmio;
pub mod net;
pub mod pci;
pub mod queue;
#[allow(unsafe_code)]
pub mod regs;
pub mod rng;
pub mod transport;

pub use transport::Transport;
