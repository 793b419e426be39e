//! virtio-rng (virtio 1.x §5.4, device id 4): the host's entropy as a HAL
//! [`EntropySource`].
//!
//! The device has one queue (`requestq`) and no configuration or feature bits: the driver
//! posts device-writable buffers, the device fills them with random bytes and reports how many
//! it wrote. This driver keeps exactly one [`BUF_BYTES`]-byte buffer posted at all times (from
//! start, and again right after each completion), so the host can fill it whenever it has
//! entropy, and [`EntropySource::fill`] only collects.
//!
//! It is used at boot and for reseeds, so it is polled (no interrupt) with a bounded time:
//! `fill` gives up with [`EntropyError::Timeout`] after the budget's timeout by the platform's
//! monotonic clock. The posted buffer stays with the device meanwhile (the queue owns it, so a
//! late answer writes into memory nobody else uses) and a later `fill` takes the late answer.
//!
//! What the device reports is checked (see [`crate::queue`]): a used length larger than the
//! buffer is counted in [`RngStats::bad_completions`] and fails the fill with
//! [`EntropyError::Device`] (the buffer is posted again, its bytes unused); a completion
//! naming a descriptor not in flight is counted and ignored; a zero-length answer is accepted
//! and the buffer posted again.

use crate::dma::Dma;
use crate::queue::{Queue, Used};
use crate::transport::{self, InitError, Transport};
use alloc::boxed::Box;
use alloc::format;
use fata_hal::entropy::{EntropyError, EntropySource};

/// The request queue.
const REQUEST_QUEUE: u16 = 0;
/// Bytes asked for per request.
pub const BUF_BYTES: usize = 256;
/// The largest queue the driver asks for where it may choose (one entry is used).
const QUEUE_CAP: u16 = 16;

/// Counters, since the device was started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RngStats {
    /// Completions taken (any length).
    pub completions: u64,
    /// Random bytes the device delivered and the driver used or discarded.
    pub bytes: u64,
    /// Completions with an impossible length or a descriptor not in flight.
    pub bad_completions: u64,
    /// Fills that ran out of time.
    pub timeouts: u64,
}

/// How long a fill may wait, by which clock.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// The monotonic clock, in nanoseconds.
    pub now_ns: fn() -> u64,
    /// The longest one `fill` waits for the device.
    pub timeout_ns: u64,
}

/// A virtio entropy device.
pub struct VirtioRng {
    transport: Box<dyn Transport>,
    queue: Queue<Dma>,
    /// The buffer when it is not posted (posting failed; tried again at the next fill).
    spare: Option<Dma>,
    budget: Budget,
    stats: RngStats,
}

impl VirtioRng {
    /// Initialises the device behind `t` and posts the first request. Fails if the device
    /// refuses the (empty) feature set, has no request queue, or the heap cannot hold the
    /// queue and buffer.
    pub fn new(mut t: Box<dyn Transport>, budget: Budget) -> Result<VirtioRng, InitError> {
        transport::negotiate(&mut *t, 0)?;
        let queue = transport::make_queue(&mut *t, REQUEST_QUEUE, QUEUE_CAP)?;
        let buf = Dma::zeroed(BUF_BYTES, 64).ok_or(InitError::OutOfMemory)?;
        transport::driver_ok(&mut *t);
        let mut dev = VirtioRng {
            transport: t,
            queue,
            spare: Some(buf),
            budget,
            stats: RngStats::default(),
        };
        dev.repost();
        Ok(dev)
    }

    /// Counters.
    pub fn stats(&self) -> RngStats {
        self.stats
    }

    /// Queue size as negotiated with the device.
    pub fn queue_size(&self) -> u16 {
        self.queue.size()
    }

    /// Posts the spare buffer (if there is one) and notifies the device.
    fn repost(&mut self) {
        let Some(buf) = self.spare.take() else {
            return;
        };
        match self.queue.push(buf, BUF_BYTES, true) {
            Ok(()) => {
                if self.queue.needs_notify() {
                    self.transport.notify(REQUEST_QUEUE);
                }
            }
            Err(buf) => self.spare = Some(buf),
        }
    }

    /// Takes one completion, if there is one: copies what the device wrote into `out`,
    /// returns how many bytes were copied.
    fn take(&mut self, out: &mut [u8]) -> Option<Result<usize, EntropyError>> {
        let used = self.queue.pop_used()?;
        self.stats.completions += 1;
        let r = match used {
            Used::Done { mut buf, len } => {
                let len = len as usize;
                let n = len.min(out.len());
                out[..n].copy_from_slice(&buf.bytes()[..n]);
                // Nothing of the device's output stays in memory the driver keeps.
                buf.bytes_mut()[..len].fill(0);
                self.stats.bytes += len as u64;
                self.spare = Some(buf);
                Ok(n)
            }
            Used::TooLong { buf, len } => {
                self.stats.bad_completions += 1;
                self.spare = Some(buf);
                Err(EntropyError::Device(format!(
                    "virtio-rng reported {len} bytes written into a {BUF_BYTES}-byte buffer"
                )))
            }
            Used::BadId { id } => {
                self.stats.bad_completions += 1;
                if self.stats.bad_completions == 1 {
                    log::warn!(
                        "virtio-rng: a completion names descriptor {id}, not a request in flight (counted; further ones are not logged)"
                    );
                }
                Ok(0)
            }
        };
        self.repost();
        Some(r)
    }
}

impl EntropySource for VirtioRng {
    fn name(&self) -> &'static str {
        "virtio-rng"
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        let deadline = (self.budget.now_ns)().saturating_add(self.budget.timeout_ns);
        let mut done = 0;
        self.repost();
        while done < buf.len() {
            match self.take(&mut buf[done..]) {
                Some(Ok(n)) => done += n,
                Some(Err(e)) => return Err(e),
                None if (self.budget.now_ns)() >= deadline => {
                    self.stats.timeouts += 1;
                    return Err(EntropyError::Timeout);
                }
                None => core::hint::spin_loop(),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::fake::{Fake, Regs};
    use crate::transport::{F_VERSION_1, status};
    use alloc::rc::Rc;
    use alloc::vec::Vec;
    use core::cell::{Cell, RefCell};

    std::thread_local! {
        static NOW: Cell<u64> = const { Cell::new(0) };
    }

    /// A clock that moves 1 ms each time it is read.
    fn ticking() -> u64 {
        NOW.with(|n| {
            n.set(n.get() + 1_000_000);
            n.get()
        })
    }

    fn start(queue_max: u16) -> (VirtioRng, Rc<RefCell<Regs>>) {
        let regs = Rc::new(RefCell::new(Regs {
            modern: true,
            offered: F_VERSION_1,
            queue_max,
            ..Regs::default()
        }));
        let budget = Budget {
            now_ns: ticking,
            timeout_ns: 50_000_000,
        };
        let dev = VirtioRng::new(Box::new(Fake(regs.clone())), budget).unwrap();
        (dev, regs)
    }

    /// Plays the device: writes `bytes` into the posted buffer and completes it with `len`.
    fn answer(dev: &mut VirtioRng, bytes: &[u8], len: u32) {
        let head = *dev.queue.device_avail().last().unwrap();
        let d = dev.queue.device_desc(head);
        assert_eq!(d.len as usize, BUF_BYTES);
        dev.queue
            .device_bytes(head, d.addr, bytes.len())
            .unwrap()
            .copy_from_slice(bytes);
        dev.queue.device_complete(u32::from(head), len);
    }

    #[test]
    fn one_writable_buffer_is_posted_at_start_on_a_queue_of_the_devices_size() {
        let (dev, regs) = start(4);
        assert_eq!(dev.queue_size(), 4, "the device's size, below the cap");
        assert_eq!(dev.queue.in_flight(), 1);
        let head = dev.queue.device_avail()[0];
        let d = dev.queue.device_desc(head);
        assert_eq!(
            d.flags & crate::queue::VIRTQ_DESC_F_WRITE,
            crate::queue::VIRTQ_DESC_F_WRITE
        );
        let r = regs.borrow();
        assert!(r.notified >= 1, "the device was told");
        assert_eq!(r.status & status::DRIVER_OK, status::DRIVER_OK);
        let (big, _) = start(1024);
        assert_eq!(big.queue_size(), QUEUE_CAP);
    }

    #[test]
    fn the_devices_bytes_fill_the_buffer_and_the_buffer_goes_back_to_the_device() {
        let (mut dev, _) = start(8);
        let want: Vec<u8> = (1..=64).collect();
        answer(&mut dev, &want, 64);
        let mut out = [0u8; 40];
        dev.fill(&mut out).unwrap();
        assert_eq!(out[..], want[..40]);
        assert_eq!(dev.queue.in_flight(), 1, "posted again");
        // Two answers for one fill: 10 bytes, then the rest.
        answer(&mut dev, &[7; 10], 10);
        let mut out = [0u8; 8];
        dev.fill(&mut out).unwrap();
        assert_eq!(out, [7; 8]);
        assert_eq!(dev.stats().bytes, 74);
    }

    #[test]
    fn a_used_length_beyond_the_buffer_fails_the_fill_and_is_counted() {
        let (mut dev, _) = start(8);
        for len in [BUF_BYTES as u32 + 1, u32::MAX] {
            answer(&mut dev, &[9; 4], len);
            let mut out = [0u8; 16];
            let e = dev.fill(&mut out).unwrap_err();
            assert!(
                matches!(&e, EntropyError::Device(m) if m.contains(&len.to_string())),
                "{e}"
            );
            assert_eq!(out, [0; 16], "nothing of it was used");
            assert_eq!(dev.queue.in_flight(), 1, "the buffer is posted again");
        }
        assert_eq!(dev.stats().bad_completions, 2);
        answer(&mut dev, &[5; 16], 16);
        let mut out = [0u8; 16];
        dev.fill(&mut out).unwrap();
        assert_eq!(out, [5; 16], "the device works again afterwards");
    }

    #[test]
    fn wrong_ids_are_counted_and_a_silent_device_times_out_within_the_budget() {
        let (mut dev, _) = start(8);
        for id in [3, 999, u32::MAX] {
            dev.queue.device_complete(id, 8);
        }
        let mut out = [0u8; 8];
        let t0 = NOW.with(|n| n.get());
        assert_eq!(dev.fill(&mut out), Err(EntropyError::Timeout));
        let waited = NOW.with(|n| n.get()) - t0;
        assert!((50_000_000..60_000_000).contains(&waited), "{waited}");
        let s = dev.stats();
        assert_eq!((s.bad_completions, s.timeouts), (3, 1));
        assert_eq!(dev.queue.in_flight(), 1, "the buffer stays with the device");
        // A late answer is taken by the next fill.
        answer(&mut dev, &[1; 8], 8);
        dev.fill(&mut out).unwrap();
        assert_eq!(out, [1; 8]);
    }

    #[test]
    fn zero_length_answers_are_accepted_but_give_nothing() {
        let (mut dev, _) = start(8);
        answer(&mut dev, &[], 0);
        let mut out = [0u8; 4];
        assert_eq!(dev.fill(&mut out), Err(EntropyError::Timeout));
        assert_eq!(dev.stats().completions, 1);
        assert_eq!(dev.stats().bad_completions, 0);
    }

    #[test]
    fn a_device_without_a_queue_is_refused() {
        let regs = Rc::new(RefCell::new(Regs {
            modern: true,
            offered: F_VERSION_1,
            queue_max: 0,
            ..Regs::default()
        }));
        let budget = Budget {
            now_ns: ticking,
            timeout_ns: 1,
        };
        let e = VirtioRng::new(Box::new(Fake(regs)), budget).err();
        assert_eq!(e, Some(InitError::NoQueue(0)));
    }
}
