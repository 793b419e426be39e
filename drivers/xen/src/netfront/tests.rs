//! netfront against a simulated xenstored and netback, honest and hostile.

use super::*;
use crate::ring::tests::MemPage;
use crate::sim::{BackRing, SimHv};
use crate::xenstore::tests::{Daemon, setup};
use alloc::rc::Rc;
use alloc::string::ToString;
use alloc::vec::Vec;
use fata_hal::net::{NetDevice, RxToken, TxToken};

const BE: &str = "/local/domain/0/backend/vif/7/0";

fn store(d: &Rc<RefCell<Daemon>>, mac: &str) {
    let mut dm = d.borrow_mut();
    dm.store.insert("device/vif/0/backend".into(), BE.into());
    dm.store
        .insert("device/vif/0/backend-id".into(), "0".into());
    dm.store.insert("device/vif/0/mac".into(), mac.into());
    dm.store.insert(format!("{BE}/state"), "2".into());
    dm.script = Some(alloc::boxed::Box::new(|path: &str, value: &str| {
        if path == "device/vif/0/state" && value == "4" {
            alloc::vec![(format!("{BE}/state"), "4".to_string())]
        } else {
            alloc::vec![]
        }
    }));
}

struct Bench {
    hv: SimHv,
    nf: Netfront<SimHv>,
    tx: BackRing,
    rx: BackRing,
}

fn ring_of(hv: &SimHv, d: &Rc<RefCell<Daemon>>, key: &str, entry: usize) -> BackRing {
    let gref: u32 = d.borrow().store[&format!("device/vif/0/{key}")]
        .parse()
        .unwrap();
    BackRing::new(hv.map(gref, 0, true), entry)
}

fn connect(cfg: Config) -> Bench {
    let (mut xs, d) = setup(7);
    store(&d, "00:16:3e:00:00:02");
    let hv = SimHv::default();
    let dd = d.clone();
    let nf = Netfront::connect(hv.clone(), &mut xs, "device/vif/0", cfg, &mut || {
        dd.borrow_mut().step()
    })
    .unwrap();
    let tx = ring_of(&hv, &d, "tx-ring-ref", netif::TX_ENTRY);
    let rx = ring_of(&hv, &d, "rx-ring-ref", netif::RX_ENTRY);
    Bench { hv, nf, tx, rx }
}

const SMALL: Config = Config {
    rx_buffers: 8,
    tx_buffers: 4,
};

impl Bench {
    /// netback's receive side: fills the next posted buffer with `frame`.
    fn deliver(&mut self, frame: &[u8]) {
        let req = self.rx.next_request().expect("a posted buffer");
        let id = u16::from_le_bytes([req[0], req[1]]);
        let gref = u32::from_le_bytes(req[4..8].try_into().unwrap());
        self.hv.map(gref, 0, true).0.borrow_mut()[..frame.len()].copy_from_slice(frame);
        self.rx.respond(&rx_response(id, 0, 0, frame.len() as i16));
    }

    /// netback's transmit side: the frames sent, each answered with `status`.
    fn sent(&mut self, status: i16) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(req) = self.tx.next_request() {
            let gref = u32::from_le_bytes(req[0..4].try_into().unwrap());
            let off = usize::from(u16::from_le_bytes([req[4], req[5]]));
            let id = u16::from_le_bytes([req[8], req[9]]);
            let size = usize::from(u16::from_le_bytes([req[10], req[11]]));
            let page: MemPage = self.hv.map(gref, 0, false);
            out.push(page.0.borrow()[off..off + size].to_vec());
            let mut r = [0u8; 12];
            r[0..2].copy_from_slice(&id.to_le_bytes());
            r[2..4].copy_from_slice(&status.to_le_bytes());
            self.tx.respond(&r);
        }
        out
    }

    fn received(&mut self) -> Option<Vec<u8>> {
        self.nf.service();
        let (rx, _tx) = self.nf.receive()?;
        Some(rx.consume(|f| f.to_vec()))
    }

    fn send(&mut self, frame: &[u8]) -> bool {
        match self.nf.transmit() {
            Some(t) => {
                t.consume(frame.len(), |b| b.copy_from_slice(frame));
                true
            }
            None => false,
        }
    }
}

fn rx_response(id: u16, offset: u16, flags: u16, status: i16) -> [u8; 8] {
    let mut r = [0u8; 8];
    r[0..2].copy_from_slice(&id.to_le_bytes());
    r[2..4].copy_from_slice(&offset.to_le_bytes());
    r[4..6].copy_from_slice(&flags.to_le_bytes());
    r[6..8].copy_from_slice(&status.to_le_bytes());
    r
}

fn frame(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

#[test]
fn connects_with_the_keys_netback_needs_and_posts_every_buffer() {
    let (mut xs, d) = setup(5);
    store(&d, "00:16:3e:00:00:02");
    let hv = SimHv::default();
    let dd = d.clone();
    let nf = Netfront::connect(hv.clone(), &mut xs, "device/vif/0", SMALL, &mut || {
        dd.borrow_mut().step()
    })
    .unwrap();
    let s = &d.borrow().store;
    for (k, v) in [
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-no-csum-offload", "1"),
        ("state", "4"),
    ] {
        assert_eq!(s[&format!("device/vif/0/{k}")], v, "{k}");
    }
    assert_eq!(nf.mac(), [0, 0x16, 0x3e, 0, 0, 2]);
    let port: u32 = s["device/vif/0/event-channel"].parse().unwrap();
    assert_eq!(port, nf.port());
    assert!(hv.0.borrow().unmasked.contains(&port));
    let mut rx = ring_of(&hv, &d, "rx-ring-ref", netif::RX_ENTRY);
    let mut posted = 0;
    while let Some(req) = rx.next_request() {
        let gref = u32::from_le_bytes(req[4..8].try_into().unwrap());
        hv.map(gref, 0, true); // writable for the back end
        posted += 1;
    }
    assert_eq!(posted, 8);
    // Transmit buffers are granted read-only.
    let ro = hv.0.borrow().grants.values().filter(|g| g.2).count();
    assert_eq!(ro, 4);
}

#[test]
fn frames_cross_both_ways_byte_exact_and_buffers_are_reused() {
    let mut b = connect(SMALL);
    for round in 0..50u8 {
        let f = frame(60 + usize::from(round) * 29, round);
        b.deliver(&f);
        assert_eq!(b.received().unwrap(), f, "round {round}");
        let g = frame(1514 - usize::from(round), !round);
        assert!(b.send(&g));
        assert_eq!(b.sent(0), alloc::vec![g]);
    }
    let st = b.nf.stats();
    assert_eq!((st.rx_frames, st.tx_frames, st.dropped()), (50, 50, 0));
}

#[test]
fn transmit_stops_when_buffers_are_out_and_resumes_on_responses() {
    let mut b = connect(SMALL);
    for i in 0..4 {
        assert!(b.send(&frame(100, i)), "buffer {i}");
    }
    assert!(
        b.nf.transmit().is_none(),
        "4 buffers, all with the back end"
    );
    assert_eq!(b.sent(0).len(), 4);
    assert!(b.send(&frame(100, 9)));
}

#[test]
fn the_stack_may_reply_from_inside_a_receive() {
    let mut b = connect(SMALL);
    b.deliver(&frame(64, 1));
    b.nf.service();
    let (rx, tx) = b.nf.receive().unwrap();
    rx.consume(|f| tx.consume(f.len(), |out| out.copy_from_slice(f)));
    assert_eq!(b.sent(0), alloc::vec![frame(64, 1)]);
}

#[test]
fn bad_receive_responses_are_counted_dropped_and_their_buffers_reposted() {
    let mut b = connect(SMALL);
    // Take the 8 posted requests' ids.
    let mut ids = Vec::new();
    while let Some(req) = b.rx.next_request() {
        ids.push(u16::from_le_bytes([req[0], req[1]]));
    }
    // Negative status, a length past the page, a frame larger than 1514, a runt,
    // scatter-gather flags we never asked for, and an id never posted.
    b.rx.respond(&rx_response(ids[0], 0, 0, -1));
    b.rx.respond(&rx_response(ids[1], 4000, 0, 200));
    b.rx.respond(&rx_response(ids[2], 0, 0, 3000));
    b.rx.respond(&rx_response(ids[3], 0, 0, 5));
    b.rx.respond(&rx_response(ids[4], 0, netif::RXF_MORE_DATA, 100));
    b.rx.respond(&rx_response(900, 0, 0, 100));
    assert!(b.received().is_none());
    let st = b.nf.stats();
    assert_eq!(st.rx_oversize, 2);
    assert_eq!(st.rx_runt, 1);
    assert_eq!(st.bad_descriptor, 3);
    assert!(b.nf.link_up());
    // The five buffers came back to the ring: eight can be filled again... after the id the
    // back end answered twice is refused.
    let mut again = 0;
    while b.rx.next_request().is_some() {
        again += 1;
    }
    assert_eq!(again, 5);
    b.rx.respond(&rx_response(ids[0], 0, 0, 60));
    b.rx.respond(&rx_response(ids[0], 0, 0, 60));
    assert_eq!(b.received().map(|f| f.len()), Some(60));
    assert!(b.received().is_none());
    assert_eq!(
        b.nf.stats().bad_descriptor,
        4,
        "second answer for one buffer"
    );
}

#[test]
fn bad_transmit_responses_are_counted_and_never_free_a_busy_buffer_twice() {
    let mut b = connect(SMALL);
    assert!(b.send(&frame(80, 3)));
    assert!(b.send(&frame(80, 4)));
    let _lost = b.tx.next_request().unwrap();
    let req = b.tx.next_request().unwrap();
    let id = u16::from_le_bytes([req[8], req[9]]);
    let mut r = [0u8; 12];
    r[0..2].copy_from_slice(&(id + 100).to_le_bytes()); // an id never sent
    b.tx.respond(&r);
    r[0..2].copy_from_slice(&id.to_le_bytes());
    r[2..4].copy_from_slice(&(-1i16).to_le_bytes()); // error: sent nothing
    b.tx.respond(&r);
    b.nf.service();
    let st = b.nf.stats();
    assert_eq!((st.bad_descriptor, st.tx_dropped), (1, 1));
    // The buffer the back end never answered stays its own; the other three are free.
    for i in 0..3 {
        assert!(b.send(&frame(80, i)), "buffer {i}");
    }
    assert!(b.nf.transmit().is_none());
}

#[test]
fn a_back_end_publishing_responses_for_requests_never_made_takes_the_link_down() {
    let mut b = connect(SMALL);
    b.rx.publish(1_000_000);
    assert!(b.received().is_none());
    assert!(!b.nf.link_up());
    assert!(b.nf.broken().is_some());
    assert!(b.nf.transmit().is_none());
    assert_eq!(b.nf.stats().bad_descriptor, 1);
    // Nothing else is read from the broken ring.
    b.nf.service();
    assert_eq!(b.nf.stats().bad_descriptor, 1);
}

#[test]
fn oversized_frames_from_the_stack_are_dropped_and_counted() {
    let mut b = connect(SMALL);
    let t = b.nf.transmit().unwrap();
    t.consume(3000, |buf| assert_eq!(buf.len(), MAX_FRAME));
    assert!(b.sent(0).is_empty());
    assert_eq!(b.nf.stats().tx_dropped, 1);
}

/// Connects with `mac` in xenstore and the back end in `state` and `hv`; the error.
fn connect_error(mac: &str, state: &str, hv: SimHv) -> ConnectError {
    let (mut xs, d) = setup(64);
    store(&d, mac);
    d.borrow_mut()
        .store
        .insert(format!("{BE}/state"), state.into());
    let dd = d.clone();
    Netfront::connect(hv, &mut xs, "device/vif/0", SMALL, &mut || {
        dd.borrow_mut().step()
    })
    .err()
    .unwrap()
}

#[test]
fn a_bad_mac_or_a_closing_back_end_fails_the_connect_with_a_reason() {
    let e = connect_error("00:16:3e:00:00", "2", SimHv::default());
    assert!(matches!(e, ConnectError::BadMac(_)), "{e}");
    let e = connect_error("00:16:3e:00:00:02", "6", SimHv::default());
    assert!(e.to_string().contains("closed"), "{e}");
}

#[test]
fn a_full_grant_table_or_heap_fails_the_connect_cleanly() {
    for limit in [0u32, 3, 9] {
        let hv = SimHv::default();
        hv.0.borrow_mut().grant_limit = Some(limit);
        assert_eq!(
            connect_error("00:16:3e:00:00:02", "2", hv),
            ConnectError::NoGrant
        );
    }
    let hv = SimHv::default();
    hv.0.borrow_mut().page_limit = Some(5);
    assert_eq!(
        connect_error("00:16:3e:00:00:02", "2", hv),
        ConnectError::NoMemory
    );
}

#[test]
fn macs_parse_strictly() {
    assert_eq!(
        parse_mac("00:16:3e:0a:bB:ff"),
        Some([0, 0x16, 0x3e, 0xa, 0xbb, 0xff])
    );
    for bad in [
        "",
        "00:16:3e:0a:bb",
        "00:16:3e:0a:bb:ff:00",
        "0:16:3e:0a:bb:ff",
        "zz:16:3e:0a:bb:ff",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
}

#[test]
fn buffers_scale_with_the_heap() {
    assert_eq!(Config::for_heap(1 << 20).rx_buffers, 16);
    assert_eq!(Config::for_heap(64 << 20).rx_buffers, 256);
    let c = Config::for_heap(16 << 20);
    assert_eq!((c.rx_buffers, c.tx_buffers), (64, 64));
}
