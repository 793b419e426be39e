//! blkfront: a Xen virtual disk as a HAL [`BlockDevice`].
//!
//! One ring page (32 requests of up to 11 segments). Data moves through bounce pages granted
//! once at connect and reused: a request takes as many pages as it needs (at most 11, 44 KiB),
//! a write copies the caller's buffer into them, a read copies them out when the response
//! comes. The caller's buffer never becomes visible to the back end, so a request whose future
//! was dropped, or a back end that answers late or never, cannot touch freed memory.
//!
//! Durability: with `feature-flush-cache` a flush is `BLKIF_OP_FLUSH_DISKCACHE` and the cache
//! mode is [`CacheMode::Volatile`]; a back end without it gets [`CacheMode::NoFlush`], which
//! the key-value store reports at boot.
//!
//! Responses are untrusted: an id that names no request in flight, an operation that is not
//! the request's, or a status that is not one of the three the protocol defines fails that
//! request (or is counted in `bad_completions` when it names none) — never a panic. More
//! responses than requests in flight stops the device: every request then fails.

use crate::blkif::{self, MAX_SEGMENTS, Request as Wire, Response, Segment, Segments, Status, op};
use crate::netfront::{Buf, ConnectError, granted_pages};
use crate::ring::FrontRing;
use crate::xenbus::{self, State};
use crate::xenstore::{Tx, XenStore};
use crate::{Hypervisor, Notify, SharedPage};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use fata_hal::block::{
    BlockDevice, BlockError, BlockInfo, BlockStats, CacheMode, Completion, Request, Submitted,
};

const PAGE: usize = 4096;
/// `info` bit: the disk is read-only (`VDISK_READONLY`).
const VDISK_READONLY: u64 = 4;

/// How many bounce pages the disk gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Bounce pages (11 per request in flight; at least 11).
    pub bounce_pages: u16,
}

impl Config {
    /// Pages for a machine whose heap has `heap_bytes`: a sixty-fourth of the heap, between one
    /// and 32 requests' worth.
    pub fn for_heap(heap_bytes: u64) -> Config {
        let pages = heap_bytes / 64 / PAGE as u64;
        let per = MAX_SEGMENTS as u64;
        Config {
            bounce_pages: pages.clamp(per, 32 * per) as u16,
        }
    }
}

struct InFlight {
    tag: u64,
    op: u8,
    /// The caller's buffer (reads: filled from the pages on completion).
    buf: Option<Vec<u8>>,
    /// Indices of the bounce pages it holds.
    pages: Vec<usize>,
}

/// A connected virtual disk.
pub struct Blkfront<H: Hypervisor> {
    hv: H,
    port: u32,
    ring: FrontRing<H::Page>,
    handle: u16,
    info: BlockInfo,
    /// `slots[id]`: the request with ring id `id`, if one is in flight.
    slots: Vec<Option<InFlight>>,
    bounce: Vec<Buf<H::Page>>,
    free_pages: Vec<usize>,
    done: VecDeque<Completion>,
    stats: BlockStats,
    broken: Option<&'static str>,
    path: String,
    /// 512-byte protocol sectors per device sector.
    scale: u64,
}

impl<H: Hypervisor> Blkfront<H> {
    /// Connects the disk at `path` (`device/vbd/51712`): waits for the back end, publishes the
    /// ring and event channel, waits until the back end is connected and reads the disk's size
    /// and features.
    pub fn connect<P: SharedPage, N: Notify>(
        mut hv: H,
        xs: &mut XenStore<P, N>,
        path: &str,
        cfg: Config,
        wait: &mut dyn FnMut(),
    ) -> Result<Blkfront<H>, ConnectError> {
        let dev = xenbus::device(xs, path, wait)?;
        xenbus::wait_state(xs, &dev.backend, State::InitWait, wait)?;
        let domid = dev.backend_id;
        let ring = granted_pages(&mut hv, domid, 1, false)?
            .pop()
            .ok_or(ConnectError::NoMemory)?;
        let port = hv.alloc_unbound(domid).ok_or(ConnectError::NoChannel)?;
        let n = usize::from(cfg.bounce_pages).max(MAX_SEGMENTS);
        let bounce = granted_pages(&mut hv, domid, n, false)?;
        let ring_gref = ring.gref;
        let ring = FrontRing::new(ring.page, blkif::ENTRY);
        xenbus::publish(
            xs,
            &dev,
            &[
                ("ring-ref", format!("{ring_gref}")),
                ("event-channel", format!("{port}")),
                ("protocol", "x86_64-abi".into()),
            ],
            State::Initialised,
            wait,
        )?;
        hv.unmask(port);
        xenbus::wait_state(xs, &dev.backend, State::Connected, wait)?;

        let be = &dev.backend;
        let number = |xs: &mut XenStore<P, N>, key: &str, w: &mut dyn FnMut()| {
            let k = format!("{be}/{key}");
            match xs.read(Tx::NONE, &k, w) {
                Ok(v) => v
                    .trim_end_matches('\0')
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| ConnectError::Xenbus(xenbus::Error::BadKey(k, v))),
                Err(crate::xenstore::Error::Xs(e)) if e == "ENOENT" => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        let sectors512 = number(xs, "sectors", wait)?.ok_or_else(|| {
            ConnectError::Xenbus(xenbus::Error::BadKey(
                format!("{be}/sectors"),
                "missing".into(),
            ))
        })?;
        let sector_size = number(xs, "sector-size", wait)?.unwrap_or(512);
        let info_bits = number(xs, "info", wait)?.unwrap_or(0);
        let flush = number(xs, "feature-flush-cache", wait)?.unwrap_or(0) == 1;
        let handle = number(xs, "virtual-device", wait)?
            .or(path.rsplit('/').next().and_then(|s| s.parse().ok()))
            .unwrap_or(0) as u16;
        if !(512..=PAGE as u64).contains(&sector_size) || !sector_size.is_power_of_two() {
            return Err(ConnectError::Xenbus(xenbus::Error::BadKey(
                format!("{be}/sector-size"),
                format!("{sector_size}"),
            )));
        }
        let scale = sector_size / 512;
        xs.write(
            Tx::NONE,
            &format!("{path}/state"),
            State::Connected.value(),
            wait,
        )?;

        let max_in_flight = (n / MAX_SEGMENTS).clamp(1, ring.size() as usize);
        let info = BlockInfo {
            sector_size: sector_size as u32,
            // `sectors` counts 512-byte units whatever the sector size.
            sectors: sectors512 / scale,
            read_only: info_bits & VDISK_READONLY != 0,
            max_request_bytes: MAX_SEGMENTS * PAGE,
            max_in_flight,
            cache: if flush {
                CacheMode::Volatile
            } else {
                CacheMode::NoFlush
            },
        };
        Ok(Blkfront {
            hv,
            port,
            ring,
            handle,
            info,
            slots: (0..max_in_flight).map(|_| None).collect(),
            free_pages: (0..bounce.len()).rev().collect(),
            bounce,
            done: VecDeque::new(),
            stats: BlockStats::default(),
            broken: None,
            path: path.into(),
            scale,
        })
    }

    /// The event channel port the back end signals.
    pub fn port(&self) -> u32 {
        self.port
    }

    fn fail_all(&mut self, why: &'static str) {
        self.broken.get_or_insert(why);
        for s in self.slots.iter_mut() {
            if let Some(f) = s.take() {
                // The back end may still write these pages: they are never reused.
                self.done.push_back(Completion {
                    tag: f.tag,
                    result: Err(BlockError::Device(why.into())),
                });
            }
        }
    }

    fn finish(&mut self, id: usize, status: Status, resp_op: u8) {
        let Some(f) = self.slots.get_mut(id).and_then(Option::take) else {
            self.stats.bad_completions += 1;
            return;
        };
        let result = if resp_op != f.op {
            self.stats.bad_completions += 1;
            Err(BlockError::Device(format!(
                "the back end answered operation {resp_op} to a request for {}",
                f.op
            )))
        } else {
            match status {
                Status::Ok => Ok(()),
                Status::Error => Err(BlockError::Io),
                Status::NotSupported => Err(BlockError::Unsupported),
                Status::Invalid(s) => {
                    self.stats.bad_completions += 1;
                    Err(BlockError::Device(format!(
                        "the back end answered status {s}"
                    )))
                }
            }
        };
        let result = result.map(|()| {
            let mut buf = f.buf.unwrap_or_default();
            if f.op == op::READ {
                for (i, chunk) in buf.chunks_mut(PAGE).enumerate() {
                    if let Some(&p) = f.pages.get(i) {
                        self.bounce[p].page.read(0, chunk);
                    }
                }
            }
            buf
        });
        match (&result, f.op) {
            (Ok(b), op::READ) => {
                self.stats.reads += 1;
                self.stats.bytes_read += b.len() as u64;
            }
            (Ok(b), op::WRITE) => {
                self.stats.writes += 1;
                self.stats.bytes_written += b.len() as u64;
            }
            (Ok(_), _) => self.stats.flushes += 1,
            (Err(_), _) => self.stats.failed += 1,
        }
        self.free_pages.extend(f.pages);
        self.done.push_back(Completion { tag: f.tag, result });
    }

    fn collect(&mut self) {
        let mut entry = [0u8; blkif::ENTRY];
        while self.broken.is_none() {
            match self.ring.next(&mut entry) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return self.fail_all(e.0),
            }
            match Response::decode(&entry) {
                Some(r) if r.id < self.slots.len() as u64 => {
                    self.finish(r.id as usize, r.status, r.op)
                }
                _ => self.stats.bad_completions += 1,
            }
        }
    }
}

impl<H: Hypervisor> BlockDevice for Blkfront<H> {
    fn info(&self) -> BlockInfo {
        self.info
    }

    fn submit(&mut self, tag: u64, req: Request) -> Submitted {
        let refuse = |done: &mut VecDeque<Completion>, e: BlockError| {
            done.push_back(Completion {
                tag,
                result: Err(e),
            });
            Submitted::Queued
        };
        let refused = |stats: &mut BlockStats| stats.refused += 1;
        if let Some(why) = self.broken {
            return refuse(&mut self.done, BlockError::Device(why.into()));
        }
        let (wire_op, sector, buf) = match req {
            Request::Read { sector, buf } => {
                if let Err(e) = self.info.check(sector, buf.len(), false) {
                    refused(&mut self.stats);
                    return refuse(&mut self.done, e);
                }
                (op::READ, sector, Some(buf))
            }
            Request::Write { sector, buf } => {
                if let Err(e) = self.info.check(sector, buf.len(), true) {
                    refused(&mut self.stats);
                    return refuse(&mut self.done, e);
                }
                (op::WRITE, sector, Some(buf))
            }
            Request::Flush => {
                if self.info.cache == CacheMode::NoFlush {
                    return refuse(&mut self.done, BlockError::Unsupported);
                }
                (op::FLUSH_DISKCACHE, 0, None)
            }
        };
        let len = buf.as_ref().map_or(0, Vec::len);
        let need = len.div_ceil(PAGE);
        let Some(id) = self.slots.iter().position(Option::is_none) else {
            return Submitted::Busy(give_back(wire_op, sector, buf));
        };
        if self.free_pages.len() < need || self.ring.free() == 0 {
            return Submitted::Busy(give_back(wire_op, sector, buf));
        }
        let mut segments = Segments::default();
        let mut pages = Vec::with_capacity(need);
        for i in 0..need {
            let Some(p) = self.free_pages.pop() else {
                break;
            };
            let start = i * PAGE;
            let bytes = (len - start).min(PAGE);
            if let (op::WRITE, Some(b)) = (wire_op, &buf) {
                self.bounce[p].page.write(0, &b[start..start + bytes]);
            }
            segments.push(Segment {
                gref: self.bounce[p].gref,
                first: 0,
                last: (bytes / 512 - 1) as u8,
            });
            pages.push(p);
        }
        let wire = Wire {
            op: wire_op,
            handle: self.handle,
            id: id as u64,
            sector: sector * self.scale,
            segments,
        };
        if !self.ring.put(&wire.encode()) {
            self.free_pages.extend(pages);
            return Submitted::Busy(give_back(wire_op, sector, buf));
        }
        self.slots[id] = Some(InFlight {
            tag,
            op: wire_op,
            buf,
            pages,
        });
        if self.ring.push() {
            self.hv.notify(self.port);
        }
        Submitted::Queued
    }

    fn complete(&mut self) -> Option<Completion> {
        if self.done.is_empty() {
            self.collect();
        }
        self.done.pop_front()
    }

    fn service(&mut self) {
        self.stats.interrupts += 1;
        self.collect();
    }

    fn stats(&self) -> BlockStats {
        self.stats
    }

    fn describe(&self) -> String {
        format!(
            "xen blkfront {}: {} sectors of {} bytes{}, {} requests of {} KiB in flight, flush {}, event channel {}",
            self.path,
            self.info.sectors,
            self.info.sector_size,
            if self.info.read_only {
                ", read-only"
            } else {
                ""
            },
            self.info.max_in_flight,
            self.info.max_request_bytes / 1024,
            if self.info.cache == CacheMode::NoFlush {
                "not supported"
            } else {
                "supported"
            },
            self.port
        )
    }
}

fn give_back(wire_op: u8, sector: u64, buf: Option<Vec<u8>>) -> Request {
    match (wire_op, buf) {
        (op::READ, Some(buf)) => Request::Read { sector, buf },
        (op::WRITE, Some(buf)) => Request::Write { sector, buf },
        _ => Request::Flush,
    }
}

#[cfg(test)]
mod tests;
