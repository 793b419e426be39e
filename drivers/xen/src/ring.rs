//! The front end of a shared I/O ring (`io/ring.h`), as netfront and blkfront use it.
//!
//! One page: a 64-byte header (`req_prod`, `req_event`, `rsp_prod`, `rsp_event`, padding), then
//! as many fixed-size entries as fit, rounded down to a power of two (blkif: 32 entries of 112
//! bytes; netif tx: 256 of 12; rx: 256 of 8). A slot holds a request until the back end
//! overwrites it with the response. Indices run freely (modulo 2^32).
//!
//! The back end's `rsp_prod` is untrusted: more responses than requests outstanding (or than
//! the ring holds) is a protocol error, reported and never followed.

use crate::SharedPage;

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
/// Bytes before the first entry.
pub const HEADER: usize = 64;
const PAGE: usize = 4096;

/// The back end broke the ring protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingError(pub &'static str);

/// Entries of a ring of `entry`-byte entries in one page: the largest power of two that fits.
pub const fn ring_size(entry: usize) -> u32 {
    let fit = (PAGE - HEADER) / entry;
    let mut n = 1;
    while n * 2 <= fit {
        n *= 2;
    }
    n as u32
}

/// The front end's view of a ring on `page`.
pub struct FrontRing<P: SharedPage> {
    page: P,
    entry: usize,
    size: u32,
    /// Requests written, published or not.
    req_prod_pvt: u32,
    /// Responses consumed.
    rsp_cons: u32,
}

impl<P: SharedPage> FrontRing<P> {
    /// Initialises the shared header on `page` (all indices 0, both events 1) for entries of
    /// `entry` bytes (`entry` must be at least 1 and at most 4032).
    pub fn new(page: P, entry: usize) -> FrontRing<P> {
        let entry = entry.clamp(1, PAGE - HEADER);
        page.write(0, &[0; HEADER]);
        page.store_u32(REQ_EVENT, 1);
        page.store_u32(RSP_EVENT, 1);
        FrontRing {
            page,
            entry,
            size: ring_size(entry),
            req_prod_pvt: 0,
            rsp_cons: 0,
        }
    }

    /// Entries in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Requests that can be written now.
    pub fn free(&self) -> u32 {
        self.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Requests written whose responses have not been consumed.
    pub fn outstanding(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    fn slot(&self, idx: u32) -> usize {
        HEADER + (idx % self.size) as usize * self.entry
    }

    /// Writes one request (at most one entry long) into the next slot; `false` if the ring is
    /// full. Not visible to the back end until [`FrontRing::push`].
    pub fn put(&mut self, req: &[u8]) -> bool {
        if self.free() == 0 || req.len() > self.entry {
            return false;
        }
        self.page.write(self.slot(self.req_prod_pvt), req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        true
    }

    /// Publishes the requests written; whether the back end must be notified (it asked to be
    /// told about requests past `req_event`).
    pub fn push(&mut self) -> bool {
        let old = self.page.load_u32(REQ_PROD);
        let new = self.req_prod_pvt;
        self.page.store_u32(REQ_PROD, new);
        self.page.full_fence();
        let event = self.page.load_u32(REQ_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Responses published and not consumed, checked against what can be outstanding.
    pub fn pending(&self) -> Result<u32, RingError> {
        let prod = self.page.load_u32(RSP_PROD);
        let n = prod.wrapping_sub(self.rsp_cons);
        if n > self.outstanding() {
            return Err(RingError(
                "the back end published more responses than requests are outstanding",
            ));
        }
        Ok(n)
    }

    /// Copies the next response into `out` (at most one entry) and consumes it; `Ok(false)`
    /// if there is none.
    pub fn take(&mut self, out: &mut [u8]) -> Result<bool, RingError> {
        if self.pending()? == 0 {
            return Ok(false);
        }
        let n = out.len().min(self.entry);
        self.page.read(self.slot(self.rsp_cons), &mut out[..n]);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(true)
    }

    /// The next response, like [`FrontRing::take`]; when there is none, first asks for a
    /// notification at the next one and looks again (a response published in between would
    /// otherwise be slept through). A front end that drains its ring with this never misses a
    /// wake-up, whoever drains it.
    pub fn next(&mut self, out: &mut [u8]) -> Result<bool, RingError> {
        if self.take(out)? {
            return Ok(true);
        }
        if self.final_check()? {
            return self.take(out);
        }
        Ok(false)
    }

    /// Before sleeping: asks for a notification at the next response, then checks again (a
    /// response published in between would otherwise be slept through). Whether responses
    /// are waiting.
    pub fn final_check(&mut self) -> Result<bool, RingError> {
        if self.pending()? > 0 {
            return Ok(true);
        }
        self.page
            .store_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        self.page.full_fence();
        Ok(self.pending()? > 0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::rc::Rc;
    use core::cell::RefCell;

    /// A page in memory, shared by a test's front and simulated back end.
    #[derive(Clone)]
    pub(crate) struct MemPage(pub(crate) Rc<RefCell<[u8; 4096]>>);

    impl MemPage {
        pub(crate) fn new() -> MemPage {
            MemPage(Rc::new(RefCell::new([0; 4096])))
        }
    }

    impl SharedPage for MemPage {
        fn load_u32(&self, off: usize) -> u32 {
            let p = self.0.borrow();
            u32::from_le_bytes([p[off], p[off + 1], p[off + 2], p[off + 3]])
        }
        fn store_u32(&self, off: usize, v: u32) {
            self.0.borrow_mut()[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
        fn read(&self, off: usize, out: &mut [u8]) {
            out.copy_from_slice(&self.0.borrow()[off..off + out.len()]);
        }
        fn write(&self, off: usize, data: &[u8]) {
            self.0.borrow_mut()[off..off + data.len()].copy_from_slice(data);
        }
    }

    /// The back end's side: consume requests, answer with `respond`.
    pub(crate) fn serve(
        page: &MemPage,
        entry: usize,
        cons: &mut u32,
        respond: &mut dyn FnMut(&[u8]) -> alloc::vec::Vec<u8>,
    ) {
        let size = ring_size(entry);
        let prod = page.load_u32(REQ_PROD);
        let mut rsp = page.load_u32(RSP_PROD);
        while *cons != prod {
            let at = HEADER + (*cons % size) as usize * entry;
            let mut req = alloc::vec![0; entry];
            page.read(at, &mut req);
            let out = respond(&req);
            let at = HEADER + (rsp % size) as usize * entry;
            page.write(at, &out);
            rsp = rsp.wrapping_add(1);
            *cons = cons.wrapping_add(1);
        }
        page.store_u32(RSP_PROD, rsp);
    }

    #[test]
    fn ring_sizes_match_the_protocols() {
        assert_eq!(ring_size(112), 32); // blkif
        assert_eq!(ring_size(12), 256); // netif tx
        assert_eq!(ring_size(8), 256); // netif rx
    }

    #[test]
    fn requests_and_responses_flow_and_indices_wrap() {
        let page = MemPage::new();
        let mut ring = FrontRing::new(page.clone(), 16);
        // Start near the top of the index space on both sides.
        let start = u32::MAX - 40;
        ring.req_prod_pvt = start;
        ring.rsp_cons = start;
        for off in [REQ_PROD, RSP_PROD] {
            page.store_u32(off, start);
        }
        page.store_u32(REQ_EVENT, start.wrapping_add(1));
        let mut cons = start;
        let mut got = 0u32;
        for round in 0..50u32 {
            for i in 0..5u32 {
                assert!(ring.put(&(round * 5 + i).to_le_bytes()));
            }
            ring.push();
            serve(&page, 16, &mut cons, &mut |req| {
                let mut r = req.to_vec();
                r[4] = 0xAA;
                r
            });
            let mut out = [0u8; 16];
            while ring.take(&mut out).unwrap() {
                assert_eq!(u32::from_le_bytes(out[..4].try_into().unwrap()), got);
                assert_eq!(out[4], 0xAA);
                got += 1;
            }
        }
        assert_eq!(got, 250);
        assert_eq!(ring.outstanding(), 0);
        assert!(!ring.final_check().unwrap());
    }

    #[test]
    fn draining_with_next_asks_for_the_next_response() {
        let page = MemPage::new();
        let mut ring = FrontRing::new(page.clone(), 16);
        let mut cons = 0;
        for i in 0..3u8 {
            ring.put(&[i]);
        }
        ring.push();
        serve(&page, 16, &mut cons, &mut |req| req.to_vec());
        let mut out = [0u8; 16];
        let mut n = 0;
        while ring.next(&mut out).unwrap() {
            n += 1;
        }
        assert_eq!(n, 3);
        // The back end is asked to signal the fourth response.
        assert_eq!(page.load_u32(RSP_EVENT), 4);
    }

    #[test]
    fn a_full_ring_refuses_and_notification_follows_req_event() {
        let page = MemPage::new();
        let mut ring = FrontRing::new(page.clone(), 112);
        for i in 0..32u8 {
            assert!(ring.put(&[i]));
        }
        assert!(!ring.put(&[99]), "32 slots");
        assert!(!ring.put(&[0; 113][..]), "longer than an entry");
        // req_event is 1 after init: the first push crosses it.
        assert!(ring.push());
        // The back end asks to hear only from request 100 on.
        page.store_u32(REQ_EVENT, 100);
        let mut cons = 0;
        serve(&page, 112, &mut cons, &mut |r| r.to_vec());
        let mut out = [0u8; 112];
        while ring.take(&mut out).unwrap() {}
        assert!(ring.put(&[1]));
        assert!(!ring.push());
    }

    #[test]
    fn more_responses_than_requests_is_a_protocol_error() {
        let page = MemPage::new();
        let mut ring = FrontRing::new(page.clone(), 8);
        assert!(ring.put(&[1]));
        ring.push();
        page.store_u32(RSP_PROD, 2);
        let mut out = [0u8; 8];
        assert!(ring.take(&mut out).is_err());
        page.store_u32(RSP_PROD, u32::MAX);
        assert!(ring.final_check().is_err());
        page.store_u32(RSP_PROD, 1);
        assert_eq!(ring.take(&mut out), Ok(true));
        assert_eq!(ring.take(&mut out), Ok(false));
    }
}
