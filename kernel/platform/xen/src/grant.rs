//! The grant table (version 1): 8-byte entries `{u16 flags, u16 domid, u32 frame}` in frames
//! Xen maps onto pages of this image. Entries 0..8 are reserved (the toolstack uses them for
//! the console and xenstore rings).
//!
//! Granting writes domid and frame, then (after a write barrier) the flags; ending a grant
//! clears the flags only if the other domain is neither reading nor writing the page, with a
//! compare-and-swap so that a mapping made at the same moment is not missed.

use crate::hw::{self, GRANT_FRAMES};
use crate::hypercall::{self, XenError};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

const ENTRY: usize = 8;
const PER_FRAME: u32 = 4096 / ENTRY as u32;
const RESERVED: u32 = 8;
const GTF_PERMIT_ACCESS: u16 = 1;
const GTF_READONLY: u16 = 1 << 2;
const GTF_READING: u16 = 1 << 3;
const GTF_WRITING: u16 = 1 << 4;

/// Entries mapped.
static ENTRIES: AtomicU32 = AtomicU32::new(0);
static FREE: spin::Mutex<Vec<u32>> = spin::Mutex::new(Vec::new());
static NEXT: AtomicU32 = AtomicU32::new(RESERVED);

/// Maps up to [`GRANT_FRAMES`] frames (fewer if Xen allows fewer); the number of grants.
pub(crate) fn init() -> Result<u32, XenError> {
    let (_, max) = hypercall::grant_query_size()?;
    let frames = (GRANT_FRAMES as u32).min(max);
    for i in 0..frames {
        hypercall::map_grant_frame(i as usize)?;
    }
    ENTRIES.store(frames * PER_FRAME, Ordering::Release);
    Ok(frames * PER_FRAME)
}

fn entry(gref: u32) -> Option<(crate::hw::Phys, usize)> {
    if gref < RESERVED || gref >= ENTRIES.load(Ordering::Acquire) {
        return None;
    }
    let frame = (gref / PER_FRAME) as usize;
    Some((hw::grant_frame(frame), (gref % PER_FRAME) as usize * ENTRY))
}

/// Grants `domid` access to `frame`; `None` when the table is full.
pub(crate) fn grant(domid: u16, frame: u64, readonly: bool) -> Option<u32> {
    let frame = u32::try_from(frame).ok()?;
    let gref = match FREE.lock().pop() {
        Some(g) => g,
        None => {
            let g = NEXT.fetch_add(1, Ordering::AcqRel);
            if g >= ENTRIES.load(Ordering::Acquire) {
                NEXT.fetch_sub(1, Ordering::AcqRel);
                return None;
            }
            g
        }
    };
    let (page, off) = entry(gref)?;
    page.u16_at(off + 2).store(domid, Ordering::Relaxed);
    page.u32_at(off + 4).store(frame, Ordering::Relaxed);
    let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
    page.u16_at(off).store(flags, Ordering::Release);
    Some(gref)
}

/// Ends grant `gref`; `false` while the other domain still maps it.
pub(crate) fn end(gref: u32) -> bool {
    let Some((page, off)) = entry(gref) else {
        return false;
    };
    let flags = page.u16_at(off);
    let mut cur = flags.load(Ordering::Acquire);
    loop {
        if cur & (GTF_READING | GTF_WRITING) != 0 {
            return false;
        }
        match flags.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    FREE.lock().push(gref);
    true
}
