//! Xen drivers for fata's `xen` platform, each tested without Xen: the xenstore client
//! ([`xenstore`]) and the front-end handshake ([`xenbus`]), the front end of the shared I/O
//! rings ([`ring`]), the messages of the block ([`blkif`]) and network ([`netif`]) protocols,
//! and the two front ends on top of them: [`netfront`] (a HAL network device) and
//! [`blkfront`] (a HAL block device).
//!
//! Driver layer: depends on nothing but `alloc`. The protocols are written against two small
//! traits — [`SharedPage`] for a page shared with another domain, and [`Notify`] for kicking
//! the other end's event channel — so the platform supplies the real memory and hypercalls and
//! the tests supply a simulated xenstored. The front ends also need the hypervisor services of
//! [`Hypervisor`] (pages to share, grants, event channels), which the tests simulate together
//! with hostile back ends. Everything the other end writes into shared memory
//! is untrusted: indices and lengths are checked before use, bad messages are counted and
//! refused, and nothing here can panic or read outside the page on their account.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod blkfront;
pub mod blkif;
pub mod netfront;
pub mod netif;
pub mod ring;
#[cfg(test)]
mod sim;
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

/// What a front end needs from the hypervisor besides xenstore: pages it can share, grants on
/// them, and an event channel to its back end.
pub trait Hypervisor {
    /// A zeroed 4 KiB page of our memory that another domain may be granted.
    type Page: SharedPage;
    /// A fresh page, or `None` when memory is exhausted.
    fn alloc_page(&mut self) -> Option<Self::Page>;
    /// The frame number a grant on `page` names.
    fn frame(&self, page: &Self::Page) -> u64;
    /// Grants domain `domid` access to `frame` (read-only or read-write); `None` when the grant
    /// table is full.
    fn grant(&mut self, domid: u16, frame: u64, readonly: bool) -> Option<u32>;
    /// Ends grant `gref`: `false` while the other domain still has it mapped (the page must
    /// then never be reused or freed).
    fn end_grant(&mut self, gref: u32) -> bool;
    /// A new event channel whose other end domain `remote` may bind; its local port.
    fn alloc_unbound(&mut self, remote: u16) -> Option<u32>;
    /// Signals the event channel `port`.
    fn notify(&mut self, port: u32);
    /// Unmasks `port`, so its events wake the platform's `wait`.
    fn unmask(&mut self, port: u32);
}
