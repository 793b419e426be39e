//! virtio-net (virtio 1.x §5.1): one receive and one transmit queue, one descriptor per frame,
//! no offloads.
//!
//! Sizes come from the device: each queue gets the size the device reports (capped by
//! [`Budget::queue_cap`] where the transport lets the driver choose), and at most
//! [`Budget::rx_buffers`] / [`Budget::tx_buffers`] frame buffers of [`BUF_SIZE`] bytes are
//! allocated, so a device with 4096-entry queues does not cost 16 MiB of buffers. The default
//! budget — 256 receive and 128 transmit buffers, about 576 KiB with the rings of a 256-entry
//! device — is documented in docs/networking.md.
//!
//! Receive buffers are reposted as soon as the stack has consumed the frame, so a burst can
//! only run the ring dry if the stack stops consuming. A frame the device reports with an
//! impossible length (beyond the buffer), a frame above 1514 bytes, a runt, or a completion
//! for a descriptor that is not in flight is dropped and counted ([`NetStats`]).

use crate::dma::Dma;
use crate::queue::{Queue, Used};
use crate::transport::{self, InitError, Transport};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::RefCell;
use fata_hal::net::{NetCaps, NetDevice, NetStats, RxToken, TxToken};

/// The device has a MAC address in its configuration.
pub const F_MAC: u64 = 1 << 5;
/// The device reports link status.
pub const F_STATUS: u64 = 1 << 16;

const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;
/// Largest Ethernet frame without FCS for a 1500-byte MTU.
pub const MAX_FRAME: usize = 1514;
/// Size of each frame buffer: the virtio-net header (10 or 12 bytes) plus a maximal frame.
pub const BUF_SIZE: usize = 1536;

/// How much memory the driver may use.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Largest queue size the driver asks for (when the transport lets it choose).
    pub queue_cap: u16,
    /// Receive buffers posted at most.
    pub rx_buffers: usize,
    /// Transmit buffers at most.
    pub tx_buffers: usize,
}

impl Budget {
    /// The budget for a guest with `heap` bytes of heap: frame buffers take at most a
    /// thirty-second of it (at least 32 receive and 16 transmit buffers, at most the default),
    /// so a 4 MiB guest spends about 110 KiB on them and a 64 MiB guest the default 576 KiB.
    pub fn for_heap(heap: usize) -> Budget {
        let rx = (heap / 32 / BUF_SIZE).clamp(32, 256);
        Budget {
            queue_cap: 4096,
            rx_buffers: rx,
            tx_buffers: (rx / 2).clamp(16, 128),
        }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            queue_cap: 4096,
            rx_buffers: 256,
            tx_buffers: 128,
        }
    }
}

struct Rx {
    queue: Queue,
    stats: NetStats,
}

struct Tx {
    queue: Queue,
    pool: Vec<Dma>,
}

/// A virtio network device.
pub struct VirtioNet {
    transport: RefCell<Box<dyn Transport>>,
    rx: RefCell<Rx>,
    tx: RefCell<Tx>,
    hdr_len: usize,
    mac: [u8; 6],
    features: u64,
}

impl VirtioNet {
    /// Initialises the device behind `t`.
    pub fn new(mut t: Box<dyn Transport>, budget: Budget) -> Result<VirtioNet, InitError> {
        let features = transport::negotiate(&mut *t, F_MAC | F_STATUS)?;
        let rx = transport::make_queue(&mut *t, RX_QUEUE, budget.queue_cap)?;
        let tx = transport::make_queue(&mut *t, TX_QUEUE, budget.queue_cap)?;
        let hdr_len = if features & transport::F_VERSION_1 != 0 {
            12
        } else {
            10
        };
        let mac = if features & F_MAC != 0 {
            core::array::from_fn(|i| t.config_u8(i))
        } else {
            [0x02, 0x66, 0x61, 0x74, 0x61, 0x01] // locally administered
        };
        let mut dev = VirtioNet {
            transport: RefCell::new(t),
            rx: RefCell::new(Rx {
                queue: rx,
                stats: NetStats::default(),
            }),
            tx: RefCell::new(Tx {
                queue: tx,
                pool: Vec::new(),
            }),
            hdr_len,
            mac,
            features,
        };
        {
            let rx = dev.rx.get_mut();
            let n = budget.rx_buffers.min(usize::from(rx.queue.size())).max(1);
            for _ in 0..n {
                let buf = Dma::zeroed(BUF_SIZE, 64).ok_or(InitError::OutOfMemory)?;
                if rx.queue.push(buf, BUF_SIZE, true).is_err() {
                    break;
                }
            }
            let tx = dev.tx.get_mut();
            let n = budget.tx_buffers.min(usize::from(tx.queue.size())).max(1);
            for _ in 0..n {
                tx.pool
                    .push(Dma::zeroed(BUF_SIZE, 64).ok_or(InitError::OutOfMemory)?);
            }
        }
        let t = dev.transport.get_mut();
        transport::driver_ok(&mut **t);
        t.notify(RX_QUEUE);
        Ok(dev)
    }

    /// Queue sizes (receive, transmit) as negotiated with the device.
    pub fn queue_sizes(&self) -> (u16, u16) {
        (self.rx.borrow().queue.size(), self.tx.borrow().queue.size())
    }

    /// Receive buffers posted right now.
    pub fn rx_posted(&self) -> usize {
        self.rx.borrow().queue.in_flight()
    }

    /// Describes the transport.
    pub fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        self.transport.borrow().describe(out)
    }

    /// Gives a receive buffer back to the device.
    fn repost(&self, buf: Dma) {
        let mut rx = self.rx.borrow_mut();
        if rx.queue.push(buf, BUF_SIZE, true).is_ok() {
            drop(rx);
            let mut t = self.transport.borrow_mut();
            t.notify(RX_QUEUE);
        }
    }

    fn has_tx_room(&self) -> bool {
        let tx = self.tx.borrow();
        !tx.pool.is_empty() && tx.queue.free() > 0
    }

    /// Takes back finished transmit buffers.
    fn reclaim_tx(&self) {
        let mut tx = self.tx.borrow_mut();
        let mut bad = 0;
        while let Some(u) = tx.queue.pop_used() {
            match u {
                Used::Done { buf, .. } | Used::TooLong { buf, .. } => tx.pool.push(buf),
                Used::BadId { .. } => bad += 1,
            }
        }
        drop(tx);
        self.rx.borrow_mut().stats.bad_descriptor += bad;
    }
}

/// A received frame (owns its buffer until consumed or dropped).
pub struct VirtioRx<'a> {
    dev: &'a VirtioNet,
    buf: Option<Dma>,
    len: usize,
}

impl RxToken for VirtioRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(mut self, f: F) -> R {
        let buf = self.buf.take().expect("token consumed once");
        let hdr = self.dev.hdr_len;
        let r = f(&buf.bytes()[hdr..hdr + self.len]);
        self.dev.repost(buf);
        r
    }
}

impl Drop for VirtioRx<'_> {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.dev.repost(buf);
        }
    }
}

/// Room for one frame to send.
pub struct VirtioTx<'a> {
    dev: &'a VirtioNet,
}

impl TxToken for VirtioTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let dev = self.dev;
        let hdr = dev.hdr_len;
        let mut buf = match dev.tx.borrow_mut().pool.pop() {
            Some(b) => b,
            // The token was handed out with a buffer available; only a caller holding two
            // tokens at once can get here. Let `f` write into scratch space and drop it.
            None => {
                dev.rx.borrow_mut().stats.tx_ring_full += 1;
                let mut scratch = alloc::vec![0u8; len.min(MAX_FRAME)];
                return f(&mut scratch);
            }
        };
        let n = len.min(MAX_FRAME);
        buf.bytes_mut()[..hdr].fill(0);
        let r = f(&mut buf.bytes_mut()[hdr..hdr + n]);
        if len > MAX_FRAME {
            dev.rx.borrow_mut().stats.tx_dropped += 1;
            dev.tx.borrow_mut().pool.push(buf);
            return r;
        }
        let mut tx = dev.tx.borrow_mut();
        match tx.queue.push(buf, hdr + n, false) {
            Ok(()) => {
                let notify = tx.queue.needs_notify();
                drop(tx);
                let mut rx = dev.rx.borrow_mut();
                rx.stats.tx_frames += 1;
                rx.stats.tx_bytes += n as u64;
                drop(rx);
                if notify {
                    dev.transport.borrow_mut().notify(TX_QUEUE);
                }
            }
            Err(buf) => {
                tx.pool.push(buf);
                drop(tx);
                dev.rx.borrow_mut().stats.tx_ring_full += 1;
            }
        }
        r
    }
}

impl NetDevice for VirtioNet {
    type Rx<'a> = VirtioRx<'a>;
    type Tx<'a> = VirtioTx<'a>;

    fn receive(&mut self) -> Option<(VirtioRx<'_>, VirtioTx<'_>)> {
        self.reclaim_tx();
        // A frame comes with room for the reply, or waits until there is some.
        if !self.has_tx_room() {
            return None;
        }
        let hdr = self.hdr_len;
        loop {
            let used = self.rx.borrow_mut().queue.pop_used()?;
            let mut rx = self.rx.borrow_mut();
            let (buf, len) = match used {
                Used::Done { buf, len } => (buf, len as usize),
                Used::TooLong { buf, .. } => {
                    rx.stats.rx_oversize += 1;
                    drop(rx);
                    self.repost(buf);
                    continue;
                }
                Used::BadId { .. } => {
                    rx.stats.bad_descriptor += 1;
                    continue;
                }
            };
            let frame = len.saturating_sub(hdr);
            if frame > MAX_FRAME || len >= BUF_SIZE {
                rx.stats.rx_oversize += 1;
            } else if frame < 14 {
                rx.stats.rx_runt += 1;
            } else {
                rx.stats.rx_frames += 1;
                rx.stats.rx_bytes += frame as u64;
                drop(rx);
                return Some((
                    VirtioRx {
                        dev: self,
                        buf: Some(buf),
                        len: frame,
                    },
                    VirtioTx { dev: self },
                ));
            }
            drop(rx);
            self.repost(buf);
        }
    }

    fn transmit(&mut self) -> Option<VirtioTx<'_>> {
        self.reclaim_tx();
        if !self.has_tx_room() {
            self.rx.get_mut().stats.tx_ring_full += 1;
            return None;
        }
        Some(VirtioTx { dev: self })
    }

    fn caps(&self) -> NetCaps {
        let tx = self.tx.borrow();
        NetCaps {
            max_frame: MAX_FRAME,
            max_burst: tx.pool.len().max(1),
        }
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn link_up(&self) -> bool {
        if self.features & F_STATUS == 0 {
            return true;
        }
        let mut t = self.transport.borrow_mut();
        t.config_u8(6) & 1 == 1
    }

    fn stats(&self) -> NetStats {
        self.rx.borrow().stats
    }

    fn service(&mut self) {
        let isr = self.transport.get_mut().ack_interrupt();
        if isr != 0 {
            self.rx.get_mut().stats.interrupts += 1;
        }
        self.reclaim_tx();
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn frame_buffers_scale_with_the_heap() {
        let small = Budget::for_heap(2_400_000);
        assert_eq!((small.rx_buffers, small.tx_buffers), (48, 24));
        assert!((small.rx_buffers + small.tx_buffers) * BUF_SIZE <= 2_400_000 / 16);
        let tiny = Budget::for_heap(256 * 1024);
        assert_eq!((tiny.rx_buffers, tiny.tx_buffers), (32, 16));
        let big = Budget::for_heap(62 << 20);
        assert_eq!(
            (big.rx_buffers, big.tx_buffers),
            (Budget::default().rx_buffers, Budget::default().tx_buffers)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::status;
    use core::fmt;
    use fata_hal::net::{NetDevice, RxToken, TxToken};

    /// A device that accepts everything; the test plays its side of the queues directly.
    struct Fake {
        status: u8,
        notified: usize,
    }

    impl Transport for Fake {
        fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
            out.write_str("fake")
        }
        fn modern(&self) -> bool {
            true
        }
        fn device_features(&mut self) -> u64 {
            F_MAC | F_STATUS | transport::F_VERSION_1
        }
        fn set_driver_features(&mut self, _: u64) {}
        fn status(&mut self) -> u8 {
            self.status
        }
        fn set_status(&mut self, s: u8) {
            self.status = s;
        }
        fn max_queue_size(&mut self, _: u16) -> u16 {
            256
        }
        fn queue_size_settable(&self) -> bool {
            true
        }
        fn setup_queue(&mut self, _: u16, _: &crate::queue::Ring) -> Result<(), InitError> {
            Ok(())
        }
        fn notify(&mut self, _: u16) {
            self.notified += 1;
        }
        fn ack_interrupt(&mut self) -> u8 {
            1
        }
        fn config_u8(&mut self, off: usize) -> u8 {
            [2, 0, 0, 0, 0, 7, 1, 0][off.min(7)]
        }
    }

    fn dev() -> VirtioNet {
        let budget = Budget {
            queue_cap: 64,
            rx_buffers: 8,
            tx_buffers: 4,
        };
        VirtioNet::new(
            Box::new(Fake {
                status: 0,
                notified: 0,
            }),
            budget,
        )
        .unwrap()
    }

    /// Completes the oldest posted receive buffer with `len` bytes (header included).
    fn deliver(d: &VirtioNet, len: u32) {
        let rx = d.rx.borrow();
        let ids = rx.queue.device_avail();
        let n = rx.queue.in_flight();
        let id = ids[ids.len() - n];
        rx.queue.device_complete(u32::from(id), len);
    }

    #[test]
    fn negotiates_reads_mac_and_posts_the_budgeted_buffers() {
        let d = dev();
        assert_eq!(d.mac(), [2, 0, 0, 0, 0, 7]);
        assert!(d.link_up());
        assert_eq!(
            d.queue_sizes(),
            (64, 64),
            "the device offers 256, the budget caps at 64"
        );
        assert_eq!(d.rx_posted(), 8);
        assert_eq!(d.hdr_len, 12);
        assert!(d.transport.borrow_mut().status() & status::DRIVER_OK != 0);
    }

    #[test]
    fn good_frames_arrive_and_their_buffer_is_reposted() {
        let mut d = dev();
        deliver(&d, 12 + 60);
        let (rx, _tx) = d.receive().expect("a frame");
        assert_eq!(rx.consume(|f| f.len()), 60);
        assert_eq!(d.rx_posted(), 8, "reposted after consumption");
        assert_eq!(d.stats().rx_frames, 1);
        assert!(d.receive().is_none());
    }

    #[test]
    fn impossible_lengths_runts_and_oversize_frames_are_counted_and_dropped() {
        let mut d = dev();
        deliver(&d, BUF_SIZE as u32 + 100); // beyond the buffer
        deliver(&d, BUF_SIZE as u32); // fills the buffer: longer than 1514 bytes
        deliver(&d, 12 + 5); // runt
        deliver(&d, 3); // shorter than the header
        deliver(&d, 12 + 64);
        let (rx, _) = d.receive().expect("the good frame after the bad ones");
        assert_eq!(rx.consume(|f| f.len()), 64);
        let s = d.stats();
        assert_eq!((s.rx_oversize, s.rx_runt, s.rx_frames), (2, 2, 1));
        assert_eq!(d.rx_posted(), 8, "every buffer went back to the device");
        d.rx.borrow().queue.device_complete(999, 10);
        assert!(d.receive().is_none());
        assert_eq!(d.stats().bad_descriptor, 1);
    }

    #[test]
    fn transmit_tokens_only_when_there_is_room_and_completions_return_buffers() {
        let mut d = dev();
        for _ in 0..4 {
            let t = d.transmit().expect("room");
            t.consume(60, |b| b.fill(0xab));
        }
        assert!(
            d.transmit().is_none(),
            "four buffers in the budget, all in flight"
        );
        assert_eq!(d.stats().tx_frames, 4);
        let ids = d.tx.borrow().queue.device_avail();
        d.tx.borrow().queue.device_complete(u32::from(ids[0]), 0);
        assert!(d.transmit().is_some(), "a completion frees a buffer");
        let t = d.transmit().unwrap();
        t.consume(5000, |_| ());
        assert_eq!(
            d.stats().tx_dropped,
            1,
            "a frame longer than 1514 bytes is dropped"
        );
    }
}
