//! netfront: a Xen virtual network card as a HAL [`NetDevice`].
//!
//! One transmit and one receive ring (one page each), one page per frame buffer, every buffer
//! granted once when the device connects and reused: receive pages writable by the back end,
//! transmit pages read-only. No scatter-gather, no offloads (`feature-no-csum-offload`, so
//! dom0's own packets arrive with real checksums), receive by copy (`request-rx-copy`, which
//! netback requires).
//!
//! Everything the back end writes is untrusted: response counts are checked against what is
//! outstanding (a ring that breaks that rule takes the link down and is never read again), ids
//! are looked up, lengths are checked against the page and the largest frame, and each bad
//! response is counted in [`NetStats`] and dropped.

use crate::ring::{FrontRing, RingError};
use crate::xenbus::{self, State};
use crate::xenstore::{Tx, XenStore};
use crate::{Hypervisor, Notify, SharedPage, netif};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use fata_hal::net::{NetCaps, NetDevice, NetStats, RxToken, TxToken};

/// The largest frame sent or received: a 1500-byte MTU plus the Ethernet header.
pub const MAX_FRAME: usize = 1514;
/// The shortest frame: an Ethernet header.
const MIN_FRAME: usize = 14;

/// How many buffers the device gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Receive buffers (1..=256; one page each).
    pub rx_buffers: u16,
    /// Transmit buffers (1..=256; one page each).
    pub tx_buffers: u16,
}

impl Config {
    /// Buffers for a machine whose heap has `heap_bytes`: at most a thirty-second of the heap,
    /// split evenly, between 16 and 256 of each kind.
    pub fn for_heap(heap_bytes: u64) -> Config {
        let pages = heap_bytes / 32 / netif::PAGE as u64;
        let each = (pages / 2).clamp(16, 256) as u16;
        Config {
            rx_buffers: each,
            tx_buffers: each,
        }
    }
}

/// Why the device could not be connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// xenstore or the back end's state machine failed.
    Xenbus(xenbus::Error),
    /// The `mac` key does not hold a MAC address.
    BadMac(String),
    /// No memory for the rings or buffers.
    NoMemory,
    /// The grant table is full.
    NoGrant,
    /// No event channel could be allocated.
    NoChannel,
}

impl From<xenbus::Error> for ConnectError {
    fn from(e: xenbus::Error) -> Self {
        ConnectError::Xenbus(e)
    }
}

impl From<crate::xenstore::Error> for ConnectError {
    fn from(e: crate::xenstore::Error) -> Self {
        ConnectError::Xenbus(e.into())
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Xenbus(e) => write!(f, "{e}"),
            ConnectError::BadMac(m) => write!(f, "netfront: `mac` holds {m:?}, not a MAC address"),
            ConnectError::NoMemory => f.write_str("netfront: out of memory for rings and buffers"),
            ConnectError::NoGrant => f.write_str("netfront: the grant table is full"),
            ConnectError::NoChannel => f.write_str("netfront: no event channel"),
        }
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim_end_matches('\0').split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// A page granted to the back end.
pub(crate) struct Buf<P> {
    pub(crate) page: P,
    pub(crate) gref: u32,
}

/// Allocates `n` pages and grants each to `domid`.
pub(crate) fn granted_pages<H: Hypervisor>(
    hv: &mut H,
    domid: u16,
    n: usize,
    readonly: bool,
) -> Result<Vec<Buf<H::Page>>, ConnectError> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let page = hv.alloc_page().ok_or(ConnectError::NoMemory)?;
        let gref = hv
            .grant(domid, hv.frame(&page), readonly)
            .ok_or(ConnectError::NoGrant)?;
        v.push(Buf { page, gref });
    }
    Ok(v)
}

struct Inner<H: Hypervisor> {
    hv: H,
    port: u32,
    tx: FrontRing<H::Page>,
    rx: FrontRing<H::Page>,
    rx_bufs: Vec<Buf<H::Page>>,
    /// `rx_posted[id]`: buffer `id` is with the back end.
    rx_posted: Vec<bool>,
    /// Frames received and not yet consumed: (id, offset, length).
    rx_ready: VecDeque<(u16, u16, u16)>,
    tx_bufs: Vec<Buf<H::Page>>,
    /// `tx_busy[id]`: buffer `id` is with the back end.
    tx_busy: Vec<bool>,
    tx_free: Vec<u16>,
    stats: NetStats,
    /// Why the rings are no longer used.
    broken: Option<&'static str>,
}

impl<H: Hypervisor> Inner<H> {
    fn fail(&mut self, e: RingError) {
        if self.broken.is_none() {
            self.stats.bad_descriptor += 1;
            self.broken = Some(e.0);
        }
    }

    /// Takes every transmit response, freeing the buffers they name, and asks the back end
    /// to signal the next one (so a wake-up is never missed, whoever calls this).
    fn reclaim_tx(&mut self) {
        let mut entry = [0u8; netif::TX_ENTRY];
        while self.broken.is_none() {
            match self.tx.next(&mut entry) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return self.fail(e),
            }
            let Some((id, status)) = netif::decode_tx_response(&entry) else {
                continue;
            };
            match self.tx_busy.get_mut(usize::from(id)) {
                Some(busy) if *busy => {
                    *busy = false;
                    self.tx_free.push(id);
                    // 0: sent; 1 (NETIF_RSP_NULL) only answers extra slots we never use.
                    if status != 0 {
                        self.stats.tx_dropped += 1;
                    }
                }
                _ => self.stats.bad_descriptor += 1,
            }
        }
    }

    /// Takes every receive response: frames go to `rx_ready`, refused ones are counted and
    /// their buffers posted again. Asks the back end to signal the next response.
    fn collect_rx(&mut self) {
        let mut entry = [0u8; netif::RX_ENTRY];
        let mut repost = false;
        while self.broken.is_none() {
            match self.rx.next(&mut entry) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return self.fail(e),
            }
            let Some(r) = netif::decode_rx_response(&entry) else {
                continue;
            };
            let id = match r {
                Ok(f) => f.id,
                Err(
                    netif::RxDrop::Error { id, .. }
                    | netif::RxDrop::BadLength { id }
                    | netif::RxDrop::Unrequested { id },
                ) => id,
            };
            match self.rx_posted.get_mut(usize::from(id)) {
                Some(posted) if *posted => *posted = false,
                _ => {
                    self.stats.bad_descriptor += 1;
                    continue;
                }
            }
            match r {
                Ok(f) if usize::from(f.len) > MAX_FRAME => {
                    self.stats.rx_oversize += 1;
                    repost = true;
                    self.post_rx(id);
                }
                Ok(f) if usize::from(f.len) < MIN_FRAME => {
                    self.stats.rx_runt += 1;
                    self.post_rx(id);
                    repost = true;
                }
                Ok(f) => self.rx_ready.push_back((f.id, f.offset, f.len)),
                Err(netif::RxDrop::BadLength { .. }) => {
                    self.stats.rx_oversize += 1;
                    self.post_rx(id);
                    repost = true;
                }
                Err(_) => {
                    self.stats.bad_descriptor += 1;
                    self.post_rx(id);
                    repost = true;
                }
            }
        }
        if repost {
            self.push_rx();
        }
    }

    /// Writes a receive request for buffer `id` (published by [`Inner::push_rx`]).
    fn post_rx(&mut self, id: u16) {
        let Some(b) = self.rx_bufs.get(usize::from(id)) else {
            return;
        };
        if self.rx.put(&netif::encode_rx_request(id, b.gref)) {
            self.rx_posted[usize::from(id)] = true;
        }
    }

    fn push_rx(&mut self) {
        if self.rx.push() {
            self.hv.notify(self.port);
        }
    }

    fn tx_room(&self) -> bool {
        self.broken.is_none() && !self.tx_free.is_empty() && self.tx.free() > 0
    }

    /// Sends `frame` from a free buffer.
    fn send(&mut self, frame: &[u8]) {
        let Some(id) = self.tx_free.pop() else {
            self.stats.tx_ring_full += 1;
            return;
        };
        let b = &self.tx_bufs[usize::from(id)];
        b.page.write(0, frame);
        let req = netif::TxRequest {
            gref: b.gref,
            offset: 0,
            id,
            size: frame.len() as u16,
        };
        match req.encode() {
            Some(e) if self.tx.put(&e) => {
                self.tx_busy[usize::from(id)] = true;
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += frame.len() as u64;
                if self.tx.push() {
                    self.hv.notify(self.port);
                }
            }
            _ => {
                self.tx_free.push(id);
                self.stats.tx_dropped += 1;
            }
        }
    }
}

/// A connected virtual network card.
pub struct Netfront<H: Hypervisor> {
    inner: RefCell<Inner<H>>,
    mac: [u8; 6],
    /// Where a received frame is copied for the stack (taken out while the stack has it).
    rx_scratch: RefCell<Vec<u8>>,
    /// Where the stack writes a frame to send.
    tx_scratch: RefCell<Vec<u8>>,
    path: String,
}

impl<H: Hypervisor> Netfront<H> {
    /// Connects the card at `path` (`device/vif/0`): reads its back end and MAC address, waits
    /// for the back end, sets up rings, buffers and the event channel, publishes them and waits
    /// until the back end is connected. `wait` idles until the xenstore event channel fires or
    /// a short time has passed.
    pub fn connect<P: SharedPage, N: Notify>(
        mut hv: H,
        xs: &mut XenStore<P, N>,
        path: &str,
        cfg: Config,
        wait: &mut dyn FnMut(),
    ) -> Result<Netfront<H>, ConnectError> {
        let dev = xenbus::device(xs, path, wait)?;
        let mac_text = xs.read(Tx::NONE, &format!("{path}/mac"), wait)?;
        let mac = parse_mac(&mac_text).ok_or(ConnectError::BadMac(mac_text))?;
        xenbus::wait_state(xs, &dev.backend, State::InitWait, wait)?;

        let domid = dev.backend_id;
        let mut rings = granted_pages(&mut hv, domid, 2, false)?;
        let rx_ring = rings.pop().ok_or(ConnectError::NoMemory)?;
        let tx_ring = rings.pop().ok_or(ConnectError::NoMemory)?;
        let port = hv.alloc_unbound(domid).ok_or(ConnectError::NoChannel)?;
        let n_rx = usize::from(cfg.rx_buffers.clamp(1, 256));
        let n_tx = usize::from(cfg.tx_buffers.clamp(1, 256));
        let rx_bufs = granted_pages(&mut hv, domid, n_rx, false)?;
        let tx_bufs = granted_pages(&mut hv, domid, n_tx, true)?;

        xenbus::publish(
            xs,
            &dev,
            &[
                ("tx-ring-ref", format!("{}", tx_ring.gref)),
                ("rx-ring-ref", format!("{}", rx_ring.gref)),
                ("event-channel", format!("{port}")),
                ("request-rx-copy", "1".into()),
                ("feature-rx-notify", "1".into()),
                ("feature-no-csum-offload", "1".into()),
                ("feature-sg", "0".into()),
                ("feature-gso-tcpv4", "0".into()),
            ],
            State::Connected,
            wait,
        )?;
        let mut inner = Inner {
            tx: FrontRing::new(tx_ring.page, netif::TX_ENTRY),
            rx: FrontRing::new(rx_ring.page, netif::RX_ENTRY),
            hv,
            port,
            rx_posted: vec![false; n_rx],
            rx_bufs,
            rx_ready: VecDeque::new(),
            tx_busy: vec![false; n_tx],
            tx_free: (0..n_tx as u16).rev().collect(),
            tx_bufs,
            stats: NetStats::default(),
            broken: None,
        };
        for id in 0..n_rx as u16 {
            inner.post_rx(id);
        }
        inner.push_rx();
        inner.hv.unmask(port);
        inner.hv.notify(port);
        xenbus::wait_state(xs, &dev.backend, State::Connected, wait)?;
        Ok(Netfront {
            inner: RefCell::new(inner),
            mac,
            rx_scratch: RefCell::new(vec![0; netif::PAGE]),
            tx_scratch: RefCell::new(vec![0; MAX_FRAME]),
            path: path.into(),
        })
    }

    /// The event channel port the back end signals.
    pub fn port(&self) -> u32 {
        self.inner.borrow().port
    }

    /// A one-line description for the boot log.
    pub fn describe(&self) -> String {
        let i = self.inner.borrow();
        format!(
            "xen netfront {}: mac {}, {} rx and {} tx buffers, event channel {}",
            self.path,
            fata_hal::net::Mac(self.mac),
            i.rx_bufs.len(),
            i.tx_bufs.len(),
            i.port
        )
    }

    /// Why the device stopped, if it did (the back end broke the ring protocol).
    pub fn broken(&self) -> Option<&'static str> {
        self.inner.borrow().broken
    }
}

/// A received frame.
pub struct NetfrontRx<'a, H: Hypervisor> {
    dev: &'a Netfront<H>,
}

/// Room for a frame to send.
pub struct NetfrontTx<'a, H: Hypervisor> {
    dev: &'a Netfront<H>,
}

impl<H: Hypervisor> RxToken for NetfrontRx<'_, H> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let mut scratch = core::mem::take(&mut *self.dev.rx_scratch.borrow_mut());
        let len = {
            let mut i = self.dev.inner.borrow_mut();
            match i.rx_ready.pop_front() {
                Some((id, off, len)) => {
                    let len = usize::from(len);
                    scratch.resize(netif::PAGE, 0);
                    i.rx_bufs[usize::from(id)]
                        .page
                        .read(usize::from(off), &mut scratch[..len]);
                    i.stats.rx_frames += 1;
                    i.stats.rx_bytes += len as u64;
                    i.post_rx(id);
                    i.push_rx();
                    len
                }
                None => 0,
            }
        };
        // The stack may send a reply from inside `f`: no borrow of the device is held.
        let r = f(&scratch[..len]);
        *self.dev.rx_scratch.borrow_mut() = scratch;
        r
    }
}

impl<H: Hypervisor> TxToken for NetfrontTx<'_, H> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut scratch = core::mem::take(&mut *self.dev.tx_scratch.borrow_mut());
        let too_long = len > MAX_FRAME;
        let n = len.min(MAX_FRAME);
        scratch.resize(MAX_FRAME, 0);
        let r = f(&mut scratch[..n]);
        {
            let mut i = self.dev.inner.borrow_mut();
            if too_long || n == 0 {
                i.stats.tx_dropped += 1;
            } else {
                i.send(&scratch[..n]);
            }
        }
        *self.dev.tx_scratch.borrow_mut() = scratch;
        r
    }
}

impl<H: Hypervisor> NetDevice for Netfront<H> {
    type Rx<'a>
        = NetfrontRx<'a, H>
    where
        Self: 'a;
    type Tx<'a>
        = NetfrontTx<'a, H>
    where
        Self: 'a;

    fn receive(&mut self) -> Option<(NetfrontRx<'_, H>, NetfrontTx<'_, H>)> {
        {
            let mut i = self.inner.borrow_mut();
            i.reclaim_tx();
            if i.rx_ready.is_empty() {
                i.collect_rx();
            }
            if i.rx_ready.is_empty() || !i.tx_room() {
                return None;
            }
        }
        Some((NetfrontRx { dev: self }, NetfrontTx { dev: self }))
    }

    fn transmit(&mut self) -> Option<NetfrontTx<'_, H>> {
        let mut i = self.inner.borrow_mut();
        i.reclaim_tx();
        if !i.tx_room() {
            return None;
        }
        drop(i);
        Some(NetfrontTx { dev: self })
    }

    fn caps(&self) -> NetCaps {
        let i = self.inner.borrow();
        NetCaps {
            max_frame: MAX_FRAME,
            max_burst: i.tx_bufs.len().min(i.tx.size() as usize),
        }
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn link_up(&self) -> bool {
        self.inner.borrow().broken.is_none()
    }

    fn stats(&self) -> NetStats {
        self.inner.borrow().stats
    }

    fn service(&mut self) {
        let mut i = self.inner.borrow_mut();
        i.stats.interrupts += 1;
        i.reclaim_tx();
        i.collect_rx();
    }
}

#[cfg(test)]
mod tests;
