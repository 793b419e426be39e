//! A simulated hypervisor and back-end helpers for the front ends' tests: pages in memory, a
//! grant table that records who may map what, event channels that count notifications, and
//! direct access to a ring from the back end's side (including ways to break the protocol).

use crate::Hypervisor;
use crate::ring::tests::MemPage;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

#[derive(Default)]
pub(crate) struct State {
    /// Every page handed out, by frame number.
    pub(crate) pages: Vec<MemPage>,
    /// gref -> (frame, domid, read-only).
    pub(crate) grants: BTreeMap<u32, (u64, u16, bool)>,
    pub(crate) next_gref: u32,
    pub(crate) grant_limit: Option<u32>,
    pub(crate) page_limit: Option<usize>,
    pub(crate) notifies: u32,
    pub(crate) unmasked: Vec<u32>,
    pub(crate) next_port: u32,
}

#[derive(Clone, Default)]
pub(crate) struct SimHv(pub(crate) Rc<RefCell<State>>);

impl SimHv {
    /// The page behind grant `gref`, checked like Xen would: it must exist, be granted to
    /// `domid`, and be writable if `write`.
    pub(crate) fn map(&self, gref: u32, domid: u16, write: bool) -> MemPage {
        let s = self.0.borrow();
        let &(frame, d, ro) = s.grants.get(&gref).expect("no such grant");
        assert_eq!(d, domid, "grant for another domain");
        assert!(!(write && ro), "write through a read-only grant");
        s.pages[frame as usize].clone()
    }
}

impl Hypervisor for SimHv {
    type Page = MemPage;
    fn alloc_page(&mut self) -> Option<MemPage> {
        let mut s = self.0.borrow_mut();
        if s.page_limit.is_some_and(|l| s.pages.len() >= l) {
            return None;
        }
        let p = MemPage::new();
        s.pages.push(p.clone());
        Some(p)
    }
    fn frame(&self, page: &MemPage) -> u64 {
        let s = self.0.borrow();
        s.pages
            .iter()
            .position(|p| Rc::ptr_eq(&p.0, &page.0))
            .unwrap() as u64
    }
    fn grant(&mut self, domid: u16, frame: u64, readonly: bool) -> Option<u32> {
        let mut s = self.0.borrow_mut();
        if s.grant_limit.is_some_and(|l| s.next_gref >= l) {
            return None;
        }
        s.next_gref += 1;
        let g = s.next_gref;
        s.grants.insert(g, (frame, domid, readonly));
        Some(g)
    }
    fn end_grant(&mut self, gref: u32) -> bool {
        self.0.borrow_mut().grants.remove(&gref).is_some()
    }
    fn alloc_unbound(&mut self, _remote: u16) -> Option<u32> {
        let mut s = self.0.borrow_mut();
        s.next_port += 1;
        Some(s.next_port + 10)
    }
    fn notify(&mut self, _port: u32) {
        self.0.borrow_mut().notifies += 1;
    }
    fn unmask(&mut self, port: u32) {
        self.0.borrow_mut().unmasked.push(port);
    }
}

const REQ_PROD: usize = 0;
const RSP_PROD: usize = 8;
const HEADER: usize = 64;

/// The back end's side of one ring.
pub(crate) struct BackRing {
    pub(crate) page: MemPage,
    entry: usize,
    size: u32,
    pub(crate) req_cons: u32,
    pub(crate) rsp_prod: u32,
}

impl BackRing {
    pub(crate) fn new(page: MemPage, entry: usize) -> BackRing {
        BackRing {
            page,
            entry,
            size: crate::ring::ring_size(entry),
            req_cons: 0,
            rsp_prod: 0,
        }
    }

    fn u32_at(&self, off: usize) -> u32 {
        let p = self.page.0.borrow();
        u32::from_le_bytes([p[off], p[off + 1], p[off + 2], p[off + 3]])
    }

    /// The next request, if the front end published one.
    pub(crate) fn next_request(&mut self) -> Option<Vec<u8>> {
        if self.req_cons == self.u32_at(REQ_PROD) {
            return None;
        }
        let at = HEADER + (self.req_cons % self.size) as usize * self.entry;
        self.req_cons = self.req_cons.wrapping_add(1);
        Some(self.page.0.borrow()[at..at + self.entry].to_vec())
    }

    /// Writes a response into the next slot and publishes it.
    pub(crate) fn respond(&mut self, rsp: &[u8]) {
        let at = HEADER + (self.rsp_prod % self.size) as usize * self.entry;
        self.page.0.borrow_mut()[at..at + rsp.len()].copy_from_slice(rsp);
        self.rsp_prod = self.rsp_prod.wrapping_add(1);
        self.publish(self.rsp_prod);
    }

    /// Sets the shared `rsp_prod` to anything (a hostile back end).
    pub(crate) fn publish(&mut self, prod: u32) {
        self.page.0.borrow_mut()[RSP_PROD..RSP_PROD + 4].copy_from_slice(&prod.to_le_bytes());
    }
}
