//! shared_info, event channels and the idle loop.
//!
//! Xen delivers events as the callback vector [`CALLBACK_VECTOR`], injected while vCPU 0's
//! `upcall_pending` is set and interrupts are enabled — and interrupts are enabled only inside
//! [`wait`]'s `sti; hlt`. The interrupt handler only clears `upcall_pending`; [`wait`] itself
//! scans the pending bitmap, clears the bits of unmasked ports it knows, and turns them into
//! the [`Events`] bits of their devices.
//!
//! The blocking race (an event that arrives after the scan and before `hlt`) cannot lose a
//! wake-up: the scan runs with interrupts disabled and an event arriving after it sets
//! `upcall_pending`, which Xen turns into an interrupt the moment `sti` takes effect, so `hlt`
//! returns at once (`XEN-NOTES.md` §3).

use crate::hw::{self, Phys};
use crate::hypercall;
use core::sync::atomic::{AtomicU64, Ordering};
use fata_hal::{Events, Nanos};

/// The vector Xen injects for events (`HVM_PARAM_CALLBACK_IRQ`, type 2).
pub(crate) const CALLBACK_VECTOR: u8 = 0xf3;

/// vcpu_info[0] fields.
pub(crate) const UPCALL_PENDING: usize = 0;
pub(crate) const PENDING_SEL: usize = 8;
/// The pending and mask bitmaps (64 words of 64 bits: the 2-level ABI's 4096 ports).
pub(crate) const EVTCHN_PENDING: usize = 2048;
pub(crate) const EVTCHN_MASK: usize = 2560;
const WORDS: usize = 64;

/// A port that maps to an [`Events`] bit: (port + 1) << 8 | slot, 0 when unused.
static PORTS: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
/// Device bits seen by a wait that did not report them (a xenstore handshake's), to be
/// reported by the next [`wait`].
static CARRY: AtomicU64 = AtomicU64::new(0);
/// Event bits of ports that are not devices (xenstore's): they wake [`pause`] and are never
/// reported.
pub(crate) const INTERNAL: u64 = 1 << INTERNAL_SLOT;
/// The slot of internal ports.
pub(crate) const INTERNAL_SLOT: u8 = 63;
/// Events handled.
pub(crate) static UPCALLS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn shared() -> Phys {
    hw::shared_info_page()
}

/// Masks every port (before the callback vector is set up).
pub(crate) fn mask_all() {
    let s = shared();
    for w in 0..WORDS {
        s.write_u64(EVTCHN_MASK + 8 * w, u64::MAX);
    }
}

/// Reports `port`'s events as event bit `slot` and unmasks it.
pub(crate) fn bind(port: u32, slot: u8) {
    for p in &PORTS {
        if p.compare_exchange(
            0,
            ((u64::from(port) + 1) << 8) | u64::from(slot),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
        {
            break;
        }
    }
    unmask(port);
}

/// Unmasks `port` (Xen raises the upcall again if it was pending).
pub(crate) fn unmask(port: u32) {
    hypercall::evtchn_unmask(port);
}

/// The trap layer's hook: the upcall only needs `upcall_pending` cleared (no EOI).
pub(crate) fn on_interrupt(vector: u8) {
    if vector == CALLBACK_VECTOR {
        shared().write_u8(UPCALL_PENDING, 0);
        UPCALLS.fetch_add(1, Ordering::Relaxed);
    }
}

fn slot_of(port: u32) -> Option<u8> {
    PORTS.iter().find_map(|p| {
        let v = p.load(Ordering::Acquire);
        (v != 0 && (v >> 8) == u64::from(port) + 1).then_some(v as u8)
    })
}

/// Collects pending unmasked ports: clears their bits and returns the event bits of those
/// bound to a slot (the timer's and unbound ones only wake).
fn scan() -> u64 {
    let s = shared();
    s.write_u8(UPCALL_PENDING, 0);
    // The selector is cleared (so Xen raises the upcall for the next event) but not used to
    // skip words: a bit left pending while its port was masked has no selector bit any more.
    s.u64_at(PENDING_SEL).store(0, Ordering::Release);
    let mut out = 0u64;
    for w in 0..WORDS {
        let pending = s.u64_at(EVTCHN_PENDING + 8 * w);
        let mask = s.read_u64(EVTCHN_MASK + 8 * w);
        let bits = pending.load(Ordering::Acquire) & !mask;
        if bits == 0 {
            continue;
        }
        let taken = pending.fetch_and(!bits, Ordering::AcqRel) & bits;
        let mut t = taken;
        while t != 0 {
            let b = t.trailing_zeros();
            t &= t - 1;
            if let Some(slot) = slot_of((w as u32) * 64 + b) {
                out |= 1 << slot;
            }
        }
    }
    out
}

/// Idles until an event or `deadline` (monotonic ns); the event bits seen.
fn idle(deadline: Option<Nanos>) -> u64 {
    let seen = scan();
    if seen != 0 {
        return seen;
    }
    if let Some(d) = deadline {
        if d <= crate::clock::monotonic_ns() {
            return 0;
        }
        // Flags 0 (set_timer_op): a deadline that passed meanwhile fires at once.
        let _ = hypercall::set_timer_op(crate::clock::to_system_time(d));
    }
    hw::wait_for_interrupt();
    scan()
}

/// Idles until an event or `deadline` (monotonic ns); the device bits seen (internal ports,
/// such as xenstore's, only wake).
pub(crate) fn wait(deadline: Option<Nanos>) -> Events {
    let carried = CARRY.swap(0, Ordering::AcqRel);
    let seen = if carried != 0 {
        scan() | carried
    } else {
        idle(deadline)
    };
    Events(seen & !INTERNAL)
}

/// A wait during a device handshake: idles until an event or `ns` have passed, and keeps the
/// device bits it saw for the next [`wait`].
pub(crate) fn pause(ns: Nanos) {
    let seen = idle(Some(crate::clock::monotonic_ns().saturating_add(ns)));
    CARRY.fetch_or(seen & !INTERNAL, Ordering::AcqRel);
}
