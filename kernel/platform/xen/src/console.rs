//! The console: Xen's PV console ring (`io/console.h`) once it is set up, Xen's debug port
//! 0xe9 before (its lines appear in `xl dmesg` as `(d<N>)`) and for crash reports.
//!
//! A write copies into the 2 KiB output ring while there is room, publishes the producer index
//! after a write barrier and signals the console's event channel. When the ring stays full
//! (xenconsoled not reading) the writer waits a bounded time, then drops the rest and counts it:
//! the console never blocks the service for long.

use crate::hw::{self, Phys};
use crate::{clock, hypercall};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

const OUT: usize = 1024;
const OUT_SIZE: u32 = 2048;
const OUT_CONS: usize = 3080;
const OUT_PROD: usize = 3084;

/// How long a writer waits for room in a full ring.
const FULL_WAIT_NS: u64 = 50_000_000;

static PAGE: AtomicU64 = AtomicU64::new(0);
static PORT: AtomicU32 = AtomicU32::new(0);
static READY: AtomicBool = AtomicBool::new(false);
/// Bytes dropped because the ring stayed full.
pub(crate) static DROPPED: AtomicU64 = AtomicU64::new(0);
static LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// Switches output to the ring at guest frame `pfn`, signalled through `port`.
pub(crate) fn init(pfn: u64, port: u32) {
    PAGE.store(pfn, Ordering::Relaxed);
    PORT.store(port, Ordering::Relaxed);
    READY.store(true, Ordering::Release);
}

fn ring() -> Option<(Phys, u32)> {
    READY.load(Ordering::Acquire).then(|| {
        (
            hw::special_page(PAGE.load(Ordering::Relaxed)),
            PORT.load(Ordering::Relaxed),
        )
    })
}

/// Writes to Xen's debug port.
pub(crate) fn debug_port(bytes: &[u8]) {
    for &b in bytes {
        hw::outb(0xe9, b);
    }
}

/// Writes to the console.
pub(crate) fn write(bytes: &[u8]) {
    let Some((page, port)) = ring() else {
        return debug_port(bytes);
    };
    // A crash report may interrupt a writer: never wait for the lock for long.
    let mut guard = None;
    for _ in 0..1_000_000 {
        if let Some(g) = LOCK.try_lock() {
            guard = Some(g);
            break;
        }
        core::hint::spin_loop();
    }
    let mut rest = bytes;
    let mut started_waiting = None;
    let mut spins = 0u32;
    while !rest.is_empty() {
        let cons = page.u32_at(OUT_CONS).load(Ordering::Acquire);
        let prod = page.u32_at(OUT_PROD).load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons);
        let room = OUT_SIZE.saturating_sub(used) as usize;
        if room == 0 {
            hypercall::evtchn_send(port);
            let now = clock::monotonic_ns();
            let since = *started_waiting.get_or_insert(now);
            spins += 1;
            // The spin bound covers a clock that is not running yet.
            if now.saturating_sub(since) > FULL_WAIT_NS || spins > 50_000_000 {
                DROPPED.fetch_add(rest.len() as u64, Ordering::Relaxed);
                break;
            }
            core::hint::spin_loop();
            continue;
        }
        let n = room.min(rest.len());
        for (i, &b) in rest[..n].iter().enumerate() {
            let at = (prod.wrapping_add(i as u32) % OUT_SIZE) as usize;
            page.write_u8(OUT + at, b);
        }
        page.u32_at(OUT_PROD)
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        rest = &rest[n..];
    }
    hypercall::evtchn_send(port);
    drop(guard);
}

/// Waits (up to `ns`) until xenconsoled has read everything written, so the last lines before
/// a shutdown reach the log.
pub(crate) fn drain(ns: u64) {
    let Some((page, port)) = ring() else {
        return;
    };
    let start = clock::monotonic_ns();
    loop {
        let cons = page.u32_at(OUT_CONS).load(Ordering::Acquire);
        let prod = page.u32_at(OUT_PROD).load(Ordering::Acquire);
        if cons == prod || clock::monotonic_ns().saturating_sub(start) > ns {
            return;
        }
        hypercall::evtchn_send(port);
        core::hint::spin_loop();
    }
}
