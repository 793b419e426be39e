//! Xen drivers for fata's `xen` platform. So far the protocol layers, each tested without Xen:
//! the xenstore client ([`xenstore`]) and the front-end handshake ([`xenbus`]), the front end of the shared I/O rings ([`ring`]), and the
//! messages of the block ([`blkif`]) and network ([`netif`]) protocols. netfront and blkfront
//! themselves, the grant table and the platform are not written yet.
//!
//! Driver layer: depends on nothing but `alloc`. The protocols are written against two small
//! traits — [`SharedPage`] for a page shared with another domain, and [`Notify`] for kicking
//! the other end's event channel — so the platform supplies the real memory and hypercalls and
//! the tests supply a simulated xenstored. Everything the other end writes into shared memory
//! is untrusted: indices and lengths are checked before use, bad messages are counted and
//! refused, and nothing here can panic or read outside the page on their account.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod blkif;
pub mod netif;
pub mod ring;
pub mod xenbus;
pub mod xenstore;

/// A 4 KiB page shared with another domain, accessed only through these calls (the platform
/// implements them with volatile accesses and the right barriers).
pub trait SharedPage {
    /// Reads the little-endian `u32` at `off` with acquire ordering (an index the other side
    /// publishes).
    fn load_u32(&self, off: usize) -> u32;
    /// Writes the `u32` at `off` with release ordering (an index we publish: everything
    /// written before is visible first).
    fn store_u32(&self, off: usize, v: u32);
    /// Copies bytes out of the page (`off + out.len() <= 4096`).
    fn read(&self, off: usize, out: &mut [u8]);
    /// Copies bytes into the page (`off + data.len() <= 4096`).
    fn write(&self, off: usize, data: &[u8]);
    /// A full barrier: our stores before it are visible before our loads after it are made
    /// (publishing an index, then reading the other side's event threshold).
    fn full_fence(&self) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }
}

/// Kicks the other end (an event channel send).
pub trait Notify {
    /// Sends the notification.
    fn notify(&mut self);
}
