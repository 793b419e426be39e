//! Devices: the xenstore client, and the network and block front ends it finds under
//! `device/vif` and `device/vbd`.
//!
//! Slot 0 (bit 0 of [`Events`]) is the network card (`service0`, the first vif); disk `diskN`
//! is slot `1 + N`, the N-th vbd in order of its device number (xvda, xvdb, ...).

use crate::hw::{HeapPage, Phys};
use crate::{events, grant, hypercall};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use fata_hal::Events;
use fata_hal::block::OpenError as BlockOpenError;
use fata_hal::net::OpenError;
use fata_xen::blkfront::{self, Blkfront};
use fata_xen::netfront::{self, Netfront};
use fata_xen::xenstore::{self, Tx, XenStore};
use fata_xen::{Hypervisor, Notify, SharedPage};

/// A page shared with a back end or xenstored.
pub struct XenPage(Phys);

impl SharedPage for XenPage {
    fn load_u32(&self, off: usize) -> u32 {
        self.0.u32_at(off).load(Ordering::Acquire)
    }
    fn store_u32(&self, off: usize, v: u32) {
        self.0.u32_at(off).store(v, Ordering::Release)
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        self.0.read(off, out)
    }
    fn write(&self, off: usize, data: &[u8]) {
        self.0.write(off, data)
    }
}

/// A heap page a front end grants to its back end.
pub struct GrantPage(HeapPage);

impl SharedPage for GrantPage {
    fn load_u32(&self, off: usize) -> u32 {
        self.0.phys().u32_at(off).load(Ordering::Acquire)
    }
    fn store_u32(&self, off: usize, v: u32) {
        self.0.phys().u32_at(off).store(v, Ordering::Release)
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        self.0.phys().read(off, out)
    }
    fn write(&self, off: usize, data: &[u8]) {
        self.0.phys().write(off, data)
    }
}

/// The hypervisor services of the front ends.
pub struct XenHv;

impl Hypervisor for XenHv {
    type Page = GrantPage;
    fn alloc_page(&mut self) -> Option<GrantPage> {
        HeapPage::new().map(GrantPage)
    }
    fn frame(&self, page: &GrantPage) -> u64 {
        page.0.phys().addr() as u64 >> 12
    }
    fn grant(&mut self, domid: u16, frame: u64, readonly: bool) -> Option<u32> {
        grant::grant(domid, frame, readonly)
    }
    fn end_grant(&mut self, gref: u32) -> bool {
        grant::end(gref)
    }
    fn alloc_unbound(&mut self, remote: u16) -> Option<u32> {
        hypercall::evtchn_alloc_unbound(remote).ok()
    }
    fn notify(&mut self, port: u32) {
        hypercall::evtchn_send(port)
    }
    fn unmask(&mut self, port: u32) {
        events::unmask(port)
    }
}

/// Kicks xenstored.
pub struct StoreNotify(u32);

impl Notify for StoreNotify {
    fn notify(&mut self) {
        hypercall::evtchn_send(self.0)
    }
}

type Store = XenStore<XenPage, StoreNotify>;
static STORE: spin::Mutex<Option<Store>> = spin::Mutex::new(None);
static HEAP_BYTES: AtomicU64 = AtomicU64::new(0);
static NET_TAKEN: AtomicBool = AtomicBool::new(false);
static DISKS_TAKEN: AtomicU64 = AtomicU64::new(0);

const FIRST_DISK_SLOT: u8 = 1;
const MAX_DISKS: usize = 62;

/// Connects to xenstored on the ring at guest frame `pfn`, signalled through `port`.
pub(crate) fn init(pfn: u64, port: u32, heap_bytes: u64) {
    HEAP_BYTES.store(heap_bytes, Ordering::Relaxed);
    let page = XenPage(crate::hw::special_page(pfn));
    *STORE.lock() = Some(XenStore::new(page, StoreNotify(port)));
    events::bind(port, events::INTERNAL_SLOT);
}

/// Waits for xenstored or a back end: 10 ms at most per call.
fn pause() {
    events::pause(10_000_000);
}

/// The devices of `class` (`vif`, `vbd`) in order of their number.
fn list(xs: &mut Store, class: &str) -> Result<Vec<String>, xenstore::Error> {
    let mut ids: Vec<(u64, String)> = xs
        .directory(Tx::NONE, &format!("device/{class}"), &mut pause)?
        .into_iter()
        .filter_map(|n| n.parse::<u64>().ok().map(|k| (k, n)))
        .collect();
    ids.sort();
    Ok(ids
        .into_iter()
        .map(|(_, n)| format!("device/{class}/{n}"))
        .collect())
}

fn missing(e: &xenstore::Error) -> bool {
    matches!(e, xenstore::Error::Xs(x) if x == "ENOENT")
}

/// Opens the first vif as `service0`.
pub(crate) fn open_net(name: &str) -> Result<(Netfront<XenHv>, Events), OpenError> {
    if name != "service0" {
        return Err(OpenError::NotFound(
            "only `service0` (the first vif) exists",
        ));
    }
    if NET_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(OpenError::InUse);
    }
    let mut guard = STORE.lock();
    let xs = guard
        .as_mut()
        .ok_or(OpenError::Failed("xenstore is not connected".into()))?;
    let path = match list(xs, "vif") {
        Ok(v) if !v.is_empty() => v[0].clone(),
        Ok(_) => return Err(no_vif()),
        Err(e) if missing(&e) => return Err(no_vif()),
        Err(e) => return Err(OpenError::Failed(format!("{e}"))),
    };
    let cfg = netfront::Config::for_heap(HEAP_BYTES.load(Ordering::Relaxed));
    let nf = Netfront::connect(XenHv, xs, &path, cfg, &mut pause)
        .map_err(|e| OpenError::Failed(format!("{path}: {e}")))?;
    events::bind(nf.port(), 0);
    log::info!("{}", nf.describe());
    Ok((nf, Events(1)))
}

fn no_vif() -> OpenError {
    OpenError::NotFound(
        "the domain has no network card: add `vif = [ '...' ]` to its .xl file (cargo xtask build --target xen writes one)",
    )
}

/// Opens disk `diskN`, the N-th vbd.
pub(crate) fn open_block(name: &str) -> Result<(Blkfront<XenHv>, Events), BlockOpenError> {
    let n: usize = name
        .strip_prefix("disk")
        .and_then(|s| s.parse().ok())
        .filter(|&n| n < MAX_DISKS)
        .ok_or_else(|| {
            BlockOpenError::NotFound(format!(
                "no disk `{name}`: disks are named disk0, disk1, ..."
            ))
        })?;
    let mut guard = STORE.lock();
    let xs = guard
        .as_mut()
        .ok_or(BlockOpenError::Failed("xenstore is not connected".into()))?;
    let disks = match list(xs, "vbd") {
        Ok(v) => v,
        Err(e) if missing(&e) => Vec::new(),
        Err(e) => return Err(BlockOpenError::Failed(format!("{e}"))),
    };
    let Some(path) = disks.get(n).cloned() else {
        return Err(BlockOpenError::NotFound(format!(
            "no disk `{name}`: the domain has {} disk(s); add them to `disk = [ '...' ]` in its .xl file",
            disks.len()
        )));
    };
    if DISKS_TAKEN.fetch_or(1 << n, Ordering::SeqCst) & (1 << n) != 0 {
        return Err(BlockOpenError::InUse);
    }
    let cfg = blkfront::Config::for_heap(HEAP_BYTES.load(Ordering::Relaxed));
    let bf = Blkfront::connect(XenHv, xs, &path, cfg, &mut pause)
        .map_err(|e| BlockOpenError::Failed(format!("{path}: {e}")))?;
    let slot = FIRST_DISK_SLOT + n as u8;
    events::bind(bf.port(), slot);
    Ok((bf, Events(1 << slot)))
}
