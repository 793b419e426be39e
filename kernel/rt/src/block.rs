//! Disks: the platform's block devices as async `read`/`write`/`flush`.
//!
//! ```ignore
//! let disk = fata::block::open("disk0")?;         // the first disk attached
//! let info = disk.info();                         // sector size, sectors, cache mode, ...
//! let buf = disk.read(0, vec![0; info.sector_size as usize]).await?;
//! disk.write(8, buf).await?;
//! disk.flush().await?;                            // completed writes are now durable
//! ```
//!
//! Buffers are owned: a request takes its buffer and gives it back when it completes, so a
//! future dropped mid-request never leaves the device writing into freed memory (its
//! completion is discarded when it arrives). The contract of every disk, on every platform:
//! - no ordering among requests in flight at the same time: wait for one to order the next;
//! - a flush makes durable the writes that had completed when it was submitted, no others;
//! - a sector being written when power fails may hold old data, new data or a mix.
//!
//! Transfers are whole sectors ([`BlockInfo::sector_size`]) of at most
//! [`BlockInfo::max_request_bytes`]; anything else fails with a [`BlockError`] saying why.

use crate::executor::current;
use crate::platform::Plat;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::task::{Poll, Waker};
use fata_hal::block::{BlockDevice, Request, Submitted};
pub use fata_hal::block::{BlockError, BlockInfo, BlockStats, CacheMode, OpenError};
use fata_hal::{Events, Platform};

type Dev = <Plat as Platform>::Block;

struct Inner<D> {
    dev: RefCell<D>,
    events: Events,
    info: BlockInfo,
    next_tag: Cell<u64>,
    /// Requests whose futures still wait: each one's result once it arrives, and its waker.
    waiting: RefCell<BTreeMap<u64, Waiting>>,
    /// Futures waiting for room to submit.
    blocked: RefCell<Vec<Waker>>,
}

/// A submitted request whose future still waits.
#[derive(Default)]
struct Waiting {
    result: Option<Result<Vec<u8>, BlockError>>,
    waker: Option<Waker>,
}

/// A disk. Clone it freely: clones share the device.
#[derive(Clone)]
pub struct Disk(Rc<Inner<Dev>>);

/// Opens the disk `name`: `disk0`, `disk1`, ... in the order the disks were attached
/// (`cargo xtask run --disk PATH`). A disk can be opened once.
pub fn open(name: &str) -> Result<Disk, OpenError> {
    let (dev, events) = Plat::open_block(name)?;
    let info = dev.info();
    log::info!(
        "block: {name}: {}, {} sectors of {} bytes ({} MiB){}, {} cache",
        dev.describe(),
        info.sectors,
        info.sector_size,
        info.bytes() >> 20,
        if info.read_only { ", read-only" } else { "" },
        info.cache.name()
    );
    current().add_event_source();
    Ok(Disk(Rc::new(Inner::new(dev, events))))
}

/// Forgets a request whose future is gone (or finished): a late completion is discarded.
struct Forget<'a, D>(&'a Inner<D>, u64);

impl<D> Drop for Forget<'_, D> {
    fn drop(&mut self) {
        self.0.waiting.borrow_mut().remove(&self.1);
    }
}

impl<D: BlockDevice> Inner<D> {
    fn new(dev: D, events: Events) -> Inner<D> {
        Inner {
            info: dev.info(),
            dev: RefCell::new(dev),
            events,
            next_tag: Cell::new(1),
            waiting: RefCell::new(BTreeMap::new()),
            blocked: RefCell::new(Vec::new()),
        }
    }

    /// Collects finished requests and wakes their futures (and those waiting for room).
    fn pump(&self) {
        let mut any = false;
        loop {
            let c = {
                let mut dev = self.dev.borrow_mut();
                dev.service();
                dev.complete()
            };
            let Some(c) = c else { break };
            any = true;
            let waker = self.waiting.borrow_mut().get_mut(&c.tag).and_then(|w| {
                w.result = Some(c.result);
                w.waker.take()
            });
            if let Some(w) = waker {
                w.wake();
            }
        }
        if any {
            for w in self.blocked.borrow_mut().drain(..) {
                w.wake();
            }
        }
    }

    async fn request(&self, req: Request) -> Result<Vec<u8>, BlockError> {
        let tag = self.next_tag.get();
        self.next_tag.set(tag + 1);
        let mut req = Some(req);
        poll_fn(|cx| {
            self.pump();
            let Some(r) = req.take() else {
                return Poll::Ready(());
            };
            match self.dev.borrow_mut().submit(tag, r) {
                Submitted::Queued => Poll::Ready(()),
                Submitted::Busy(r) => {
                    req = Some(r);
                    self.blocked.borrow_mut().push(cx.waker().clone());
                    current().on_events(self.events.0, cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        self.waiting.borrow_mut().insert(tag, Waiting::default());
        let _forget = Forget(self, tag);
        poll_fn(|cx| {
            self.pump();
            let mut waiting = self.waiting.borrow_mut();
            let Some(w) = waiting.get_mut(&tag) else {
                // (Only `Forget` removes the entry.)
                return Poll::Ready(Err(BlockError::Device("request lost".into())));
            };
            if let Some(r) = w.result.take() {
                return Poll::Ready(r);
            }
            w.waker = Some(cx.waker().clone());
            current().on_events(self.events.0, cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl Disk {
    /// Sector size, number of sectors, largest request, cache mode, ...
    pub fn info(&self) -> BlockInfo {
        self.0.info
    }

    /// The device's counters.
    pub fn stats(&self) -> BlockStats {
        self.0.dev.borrow().stats()
    }

    /// Reads `buf.len()` bytes (whole sectors) from `sector` on into `buf`, and returns it.
    pub async fn read(&self, sector: u64, buf: Vec<u8>) -> Result<Vec<u8>, BlockError> {
        self.0.request(Request::Read { sector, buf }).await
    }

    /// Writes `buf` (whole sectors) from `sector` on, and returns it for reuse. Not durable
    /// until a later [`Disk::flush`] completes (unless the cache mode is write-through).
    pub async fn write(&self, sector: u64, buf: Vec<u8>) -> Result<Vec<u8>, BlockError> {
        self.0.request(Request::Write { sector, buf }).await
    }

    /// Makes every write that has completed durable.
    pub async fn flush(&self) -> Result<(), BlockError> {
        self.0.request(Request::Flush).await.map(drop)
    }
}

impl fata_hal::block::Disk for Disk {
    fn info(&self) -> BlockInfo {
        Disk::info(self)
    }
    async fn read(&self, sector: u64, buf: Vec<u8>) -> Result<Vec<u8>, BlockError> {
        Disk::read(self, sector, buf).await
    }
    async fn write(&self, sector: u64, buf: Vec<u8>) -> Result<Vec<u8>, BlockError> {
        Disk::write(self, sector, buf).await
    }
    async fn flush(&self) -> Result<(), BlockError> {
        Disk::flush(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::tests::fresh;
    use alloc::vec;
    use fata_hal::mock::{MemDisk, MockPlatform};

    #[test]
    fn requests_wait_for_room_complete_in_any_order_and_dropped_ones_are_discarded() {
        let exec = fresh();
        let mut dev = MemDisk::new(512, 64);
        dev.info.max_in_flight = 2;
        let disk = Rc::new(Inner::new(dev, Events(1)));
        let d = disk.clone();
        let out = exec
            .block_on::<MockPlatform, _>(async move {
                // More writes than the device takes at once.
                let writes: Vec<_> = (0..5u8)
                    .map(|i| {
                        let d = d.clone();
                        crate::spawn(async move {
                            d.request(Request::Write {
                                sector: u64::from(i),
                                buf: vec![i; 512],
                            })
                            .await
                        })
                    })
                    .collect();
                for w in writes {
                    w.await.unwrap();
                }
                // A read whose future is dropped at once: its completion is thrown away.
                {
                    let mut f = core::pin::pin!(d.request(Request::Read {
                        sector: 0,
                        buf: vec![0; 512]
                    }));
                    let _ = core::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await;
                }
                let bad = d
                    .request(Request::Read {
                        sector: 64,
                        buf: vec![0; 512],
                    })
                    .await;
                let r = d
                    .request(Request::Read {
                        sector: 3,
                        buf: vec![0; 1024],
                    })
                    .await
                    .unwrap();
                d.request(Request::Flush).await.unwrap();
                (bad, r)
            })
            .ok()
            .unwrap();
        assert!(matches!(out.0, Err(BlockError::OutOfRange { .. })));
        assert_eq!(&out.1[..512], &[3; 512][..]);
        assert_eq!(&out.1[512..], &[4; 512][..]);
        assert!(disk.waiting.borrow().is_empty());
        assert_eq!(disk.dev.borrow().stats().writes, 5);
    }
}
