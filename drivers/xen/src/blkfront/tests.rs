//! blkfront against a simulated xenstored and blkback, honest and hostile.

use super::*;
use crate::sim::{BackRing, SimHv};
use crate::xenstore::tests::{Daemon, setup};
use alloc::rc::Rc;
use alloc::string::ToString;
use alloc::vec;
use core::cell::RefCell;

const BE: &str = "/local/domain/0/backend/vbd/7/51712";

fn store(d: &Rc<RefCell<Daemon>>, sectors512: u64, sector_size: u32, info: u32, flush: bool) {
    let mut dm = d.borrow_mut();
    dm.store
        .insert("device/vbd/51712/backend".into(), BE.into());
    dm.store
        .insert("device/vbd/51712/backend-id".into(), "0".into());
    dm.store.insert(format!("{BE}/state"), "2".into());
    dm.store
        .insert(format!("{BE}/sectors"), sectors512.to_string());
    dm.store
        .insert(format!("{BE}/sector-size"), sector_size.to_string());
    dm.store.insert(format!("{BE}/info"), info.to_string());
    if flush {
        dm.store
            .insert(format!("{BE}/feature-flush-cache"), "1".into());
    }
    dm.script = Some(alloc::boxed::Box::new(|path: &str, value: &str| {
        if path == "device/vbd/51712/state" && value == "3" {
            alloc::vec![(format!("{BE}/state"), "4".to_string())]
        } else {
            alloc::vec![]
        }
    }));
}

struct Bench {
    hv: SimHv,
    bf: Blkfront<SimHv>,
    ring: BackRing,
    disk: Vec<u8>,
    sector_size: usize,
}

fn connect_with(sectors512: u64, sector_size: u32, info: u32, flush: bool, pages: u16) -> Bench {
    let (mut xs, d) = setup(13);
    store(&d, sectors512, sector_size, info, flush);
    let hv = SimHv::default();
    let dd = d.clone();
    let bf = Blkfront::connect(
        hv.clone(),
        &mut xs,
        "device/vbd/51712",
        Config {
            bounce_pages: pages,
        },
        &mut || dd.borrow_mut().step(),
    )
    .unwrap();
    let s = &d.borrow().store;
    assert_eq!(s["device/vbd/51712/state"], "4");
    assert_eq!(s["device/vbd/51712/protocol"], "x86_64-abi");
    let gref: u32 = s["device/vbd/51712/ring-ref"].parse().unwrap();
    let ring = BackRing::new(hv.map(gref, 0, true), ENTRY);
    Bench {
        hv,
        bf,
        ring,
        disk: vec![0; sectors512 as usize * 512],
        sector_size: sector_size as usize,
    }
}

use crate::blkif::ENTRY;

fn response(id: u64, op: u8, status: i16) -> [u8; 12] {
    let mut r = [0u8; 12];
    r[..8].copy_from_slice(&id.to_le_bytes());
    r[8] = op;
    r[10..12].copy_from_slice(&status.to_le_bytes());
    r
}

impl Bench {
    /// blkback: serves every request against `disk`.
    fn serve(&mut self) {
        while let Some(req) = self.ring.next_request() {
            let op = req[0];
            let nseg = usize::from(req[1]);
            let id = u64::from_le_bytes(req[8..16].try_into().unwrap());
            let mut sector = u64::from_le_bytes(req[16..24].try_into().unwrap()) as usize;
            for i in 0..nseg {
                let at = 24 + 8 * i;
                let gref = u32::from_le_bytes(req[at..at + 4].try_into().unwrap());
                let (first, last) = (usize::from(req[at + 4]), usize::from(req[at + 5]));
                let page = self.hv.map(gref, 0, op == op::READ);
                let n = (last - first + 1) * 512;
                let d = sector * 512;
                if op == op::READ {
                    page.0.borrow_mut()[first * 512..first * 512 + n]
                        .copy_from_slice(&self.disk[d..d + n]);
                } else {
                    self.disk[d..d + n]
                        .copy_from_slice(&page.0.borrow()[first * 512..first * 512 + n]);
                }
                sector += n / 512;
            }
            self.ring.respond(&response(id, op, 0));
        }
    }

    fn run(&mut self, tag: u64, req: Request) -> Result<Vec<u8>, BlockError> {
        assert_eq!(self.bf.submit(tag, req), Submitted::Queued);
        self.serve();
        self.bf.service();
        let c = self.bf.complete().expect("a completion");
        assert_eq!(c.tag, tag);
        c.result
    }
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7) ^ seed ^ (i >> 9) as u8)
        .collect()
}

#[test]
fn reads_what_it_wrote_in_requests_up_to_eleven_pages() {
    let mut b = connect_with(2048, 512, 0, true, 22);
    let info = b.bf.info();
    assert_eq!(
        (info.sector_size, info.sectors, info.read_only, info.cache),
        (512, 2048, false, CacheMode::Volatile)
    );
    assert_eq!(info.max_request_bytes, 11 * 4096);
    assert_eq!(info.max_in_flight, 2);
    for (i, len) in [512usize, 4096, 4608, 11 * 4096].into_iter().enumerate() {
        let data = pattern(len, i as u8);
        let sector = 3 + 100 * i as u64;
        assert_eq!(
            b.run(
                1,
                Request::Write {
                    sector,
                    buf: data.clone()
                }
            )
            .unwrap(),
            data
        );
        assert_eq!(&b.disk[sector as usize * 512..][..len], &data[..]);
        let back = b
            .run(
                2,
                Request::Read {
                    sector,
                    buf: vec![0; len],
                },
            )
            .unwrap();
        assert_eq!(back, data, "{len} bytes");
    }
    assert_eq!(b.run(3, Request::Flush).unwrap(), Vec::<u8>::new());
    let st = b.bf.stats();
    assert_eq!(
        (st.reads, st.writes, st.flushes, st.bad_completions),
        (4, 4, 1, 0)
    );
}

#[test]
fn four_kib_sectors_are_addressed_in_512_byte_units_on_the_wire() {
    let mut b = connect_with(64, 4096, 0, true, 11);
    assert_eq!(b.bf.info().sectors, 8);
    let data = pattern(8192, 5);
    b.run(
        1,
        Request::Write {
            sector: 3,
            buf: data.clone(),
        },
    )
    .unwrap();
    assert_eq!(&b.disk[3 * 4096..5 * 4096], &data[..]);
    assert_eq!(b.sector_size, 4096);
}

#[test]
fn bad_requests_are_refused_before_the_ring() {
    let mut b = connect_with(64, 512, 4, false, 11);
    let info = b.bf.info();
    assert!(info.read_only);
    assert_eq!(info.cache, CacheMode::NoFlush);
    for (req, want) in [
        (
            Request::Write {
                sector: 0,
                buf: vec![0; 512],
            },
            BlockError::ReadOnly,
        ),
        (Request::Flush, BlockError::Unsupported),
        (
            Request::Read {
                sector: 63,
                buf: vec![0; 1024],
            },
            BlockError::OutOfRange {
                sector: 63,
                count: 2,
                capacity: 64,
            },
        ),
        (
            Request::Read {
                sector: 0,
                buf: vec![0; 100],
            },
            BlockError::Misaligned {
                len: 100,
                sector_size: 512,
            },
        ),
        (
            Request::Read {
                sector: 0,
                buf: vec![0; 12 * 4096],
            },
            BlockError::TooLarge {
                len: 12 * 4096,
                max: 11 * 4096,
            },
        ),
    ] {
        assert_eq!(b.bf.submit(9, req), Submitted::Queued);
        assert_eq!(b.bf.complete().unwrap().result, Err(want));
    }
    assert!(
        b.ring.next_request().is_none(),
        "nothing reached the back end"
    );
}

#[test]
fn a_full_device_hands_the_request_back() {
    let mut b = connect_with(2048, 512, 0, true, 11);
    assert_eq!(b.bf.info().max_in_flight, 1);
    let r = Request::Read {
        sector: 0,
        buf: vec![0; 512],
    };
    assert_eq!(b.bf.submit(1, r), Submitted::Queued);
    match b.bf.submit(
        2,
        Request::Read {
            sector: 1,
            buf: vec![7; 1024],
        },
    ) {
        Submitted::Busy(Request::Read { sector: 1, buf }) => assert_eq!(buf, vec![7; 1024]),
        other => panic!("{other:?}"),
    }
    b.serve();
    b.bf.service();
    assert_eq!(b.bf.complete().unwrap().tag, 1);
}

#[test]
fn hostile_responses_fail_only_their_request_or_are_counted() {
    let mut b = connect_with(2048, 512, 0, true, 44);
    let data = pattern(4096, 1);
    for tag in 0..4 {
        let r = Request::Write {
            sector: tag * 8,
            buf: data.clone(),
        };
        assert_eq!(b.bf.submit(tag, r), Submitted::Queued);
    }
    let ids: Vec<u64> = (0..4)
        .map(|_| {
            let req = b.ring.next_request().unwrap();
            u64::from_le_bytes(req[8..16].try_into().unwrap())
        })
        .collect();
    b.ring.respond(&response(ids[0], op::READ, 0)); // not the request's operation
    b.ring.respond(&response(ids[1], op::WRITE, 77)); // not a status
    b.ring.respond(&response(5000, op::WRITE, 0)); // an id never used
    b.ring.respond(&response(ids[2], op::WRITE, 0)); // honest
    b.bf.service();
    let mut got: Vec<(u64, bool)> = core::iter::from_fn(|| b.bf.complete())
        .map(|c| (c.tag, c.result.is_ok()))
        .collect();
    got.sort();
    assert_eq!(got, vec![(0, false), (1, false), (2, true)]);
    assert_eq!(b.bf.stats().bad_completions, 3);
    // Request 3 is still in flight (its bounce page with it); a second answer for a finished
    // id is one response too many for the ring: the device stops and fails request 3.
    b.ring.respond(&response(ids[2], op::WRITE, 0));
    b.ring.respond(&response(ids[2], op::WRITE, 0));
    b.bf.service();
    let c = b.bf.complete().unwrap();
    assert!(matches!((c.tag, c.result), (3, Err(BlockError::Device(_)))));
}

#[test]
fn io_errors_and_unsupported_map_to_their_errors() {
    let mut b = connect_with(2048, 512, 0, true, 22);
    for (status, want) in [(-1i16, BlockError::Io), (-2, BlockError::Unsupported)] {
        assert_eq!(b.bf.submit(1, Request::Flush), Submitted::Queued);
        let req = b.ring.next_request().unwrap();
        let id = u64::from_le_bytes(req[8..16].try_into().unwrap());
        b.ring.respond(&response(id, op::FLUSH_DISKCACHE, status));
        b.bf.service();
        assert_eq!(b.bf.complete().unwrap().result, Err(want));
    }
    assert_eq!(b.bf.stats().failed, 2);
}

#[test]
fn responses_for_requests_never_made_stop_the_device_and_fail_what_was_in_flight() {
    let mut b = connect_with(2048, 512, 0, true, 22);
    let r = Request::Read {
        sector: 0,
        buf: vec![0; 512],
    };
    assert_eq!(b.bf.submit(1, r), Submitted::Queued);
    b.ring.publish(40);
    b.bf.service();
    assert!(matches!(
        b.bf.complete().unwrap().result,
        Err(BlockError::Device(_))
    ));
    let r = Request::Read {
        sector: 0,
        buf: vec![0; 512],
    };
    assert_eq!(b.bf.submit(2, r), Submitted::Queued);
    assert!(matches!(
        b.bf.complete().unwrap().result,
        Err(BlockError::Device(_))
    ));
}

#[test]
fn impossible_sizes_from_the_back_end_fail_the_connect() {
    for size in ["0", "100", "8192", "lots"] {
        let (mut xs, d) = setup(64);
        store(&d, 64, 512, 0, true);
        d.borrow_mut()
            .store
            .insert(format!("{BE}/sector-size"), size.into());
        let dd = d.clone();
        let r = Blkfront::connect(
            SimHv::default(),
            &mut xs,
            "device/vbd/51712",
            Config { bounce_pages: 11 },
            &mut || dd.borrow_mut().step(),
        );
        assert!(r.is_err(), "sector-size {size}");
    }
}
