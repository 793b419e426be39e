//! virtio drivers: the transports (virtio-mmio v1/v2, virtio-pci modern and legacy), the split
//! virtqueue, and the network device.
//!
//! Driver layer: depends on the HAL and never on the TCP/IP stack or the runtime. Everything
//! the device writes (used-ring entries, lengths, indices, configuration) is checked before it
//! is trusted: an impossible value is counted and dropped, never a panic.
//!
//! `unsafe` is confined to [`dma`] (memory shared with the device) and [`regs`] (device
//! registers); the rest of the crate is safe code over those two.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod dma;
pub mod mmio;
pub mod net;
pub mod pci;
pub mod queue;
pub mod regs;
pub mod transport;

pub use transport::Transport;
