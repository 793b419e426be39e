//! The adapter from a HAL [`NetDevice`] to `smoltcp::phy::Device`, with the stack's own
//! filters on the way (see [`crate::filter`]):
//! - a received SYN for a listener that has no free socket is dropped before smoltcp sees it;
//! - a reply smoltcp builds on its own (echo reply, ICMP error, reset) is rate limited. Replies
//!   are written into a scratch buffer first, classified, and only then copied into the
//!   device's buffer, so a suppressed reply never reaches the wire. Frames the stack sends on
//!   its own initiative (data, retransmissions) go straight into the device's buffer.

use crate::filter::{Bucket, Reply, classify_reply, syn_port};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use fata_hal::net::NetDevice;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Largest reply that goes through the scratch buffer; larger ones (jumbo devices) are sent
/// unfiltered.
const SCRATCH: usize = 1514;

/// Filter state shared by a received frame's token and its reply token.
pub(crate) struct Filter {
    pub(crate) now_ms: Cell<u64>,
    /// Listener ports with no socket in LISTEN right now.
    pub(crate) full_ports: RefCell<Vec<u16>>,
    echo: RefCell<Bucket>,
    errors: RefCell<Bucket>,
    pub(crate) syn_dropped: Cell<u64>,
    pub(crate) icmp_limited: Cell<u64>,
    pub(crate) rst_limited: Cell<u64>,
}

impl Filter {
    /// `rate` replies per second of each kind (echo; errors and resets), bursts of `rate / 4`
    /// (at least 10); 0: unlimited.
    pub(crate) fn new(rate: u32) -> Filter {
        let burst = (rate / 4).max(10);
        Filter {
            now_ms: Cell::new(0),
            full_ports: RefCell::new(Vec::new()),
            echo: RefCell::new(Bucket::new(rate, burst)),
            errors: RefCell::new(Bucket::new(rate, burst)),
            syn_dropped: Cell::new(0),
            icmp_limited: Cell::new(0),
            rst_limited: Cell::new(0),
        }
    }

    fn admit_rx(&self, frame: &[u8]) -> bool {
        match syn_port(frame) {
            Some(p) if self.full_ports.borrow().contains(&p) => {
                self.syn_dropped.set(self.syn_dropped.get() + 1);
                false
            }
            _ => true,
        }
    }

    fn admit_reply(&self, frame: &[u8]) -> bool {
        let now = self.now_ms.get();
        let (bucket, counter) = match classify_reply(frame) {
            Reply::Other => return true,
            Reply::Echo => (&self.echo, &self.icmp_limited),
            Reply::IcmpError => (&self.errors, &self.icmp_limited),
            Reply::Reset => (&self.errors, &self.rst_limited),
        };
        let ok = bucket.borrow_mut().take(now);
        if !ok {
            counter.set(counter.get() + 1);
        }
        ok
    }
}

/// A HAL device seen by smoltcp.
pub(crate) struct Adapter<D> {
    pub(crate) dev: D,
    pub(crate) filter: Filter,
}

pub(crate) struct Rx<'f, T> {
    token: T,
    filter: &'f Filter,
}

pub(crate) struct Tx<'f, T> {
    token: T,
    /// Set for the token paired with a received frame: what it sends is a reply.
    reply_to: Option<&'f Filter>,
}

impl<T: fata_hal::net::RxToken> phy::RxToken for Rx<'_, T> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let filter = self.filter;
        // An empty frame is what smoltcp drops without a reply: the way to drop this one.
        self.token.consume(|frame| {
            if filter.admit_rx(frame) {
                f(frame)
            } else {
                f(&[])
            }
        })
    }
}

impl<T: fata_hal::net::TxToken> phy::TxToken for Tx<'_, T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        match self.reply_to {
            Some(filter) if len <= SCRATCH => {
                let mut scratch = [0u8; SCRATCH];
                let r = f(&mut scratch[..len]);
                if filter.admit_reply(&scratch[..len]) {
                    self.token
                        .consume(len, |buf| buf.copy_from_slice(&scratch[..len]));
                }
                r
            }
            _ => self.token.consume(len, f),
        }
    }
}

impl<D: NetDevice> phy::Device for Adapter<D> {
    type RxToken<'a>
        = Rx<'a, D::Rx<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a, D::Tx<'a>>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let filter = &self.filter;
        self.dev.receive().map(|(r, t)| {
            (
                Rx { token: r, filter },
                Tx {
                    token: t,
                    reply_to: Some(filter),
                },
            )
        })
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        self.dev.transmit().map(|t| Tx {
            token: t,
            reply_to: None,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let c = self.dev.caps();
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = c.max_frame;
        caps.max_burst_size = Some(c.max_burst);
        caps
    }
}
