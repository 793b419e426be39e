//! The local APIC: its one-shot timer bounds [`wait`], and every interrupt is acknowledged
//! here. The legacy PIC is masked so that its vectors can never alias CPU exceptions.
//!
//! The register window is MMIO at the address in `IA32_APIC_BASE` (normally `0xfee00000`),
//! identity-mapped uncached by the boot page tables.

use crate::pio::outb;
use crate::{clock, cpu};
use core::sync::atomic::{AtomicU64, Ordering};
use fata_hal::{Events, Nanos};
use fata_virtio::regs::Mmio;

/// Vector of the LAPIC timer.
pub(crate) const TIMER_VECTOR: u8 = 0xf0;
/// Spurious-interrupt vector (never acknowledged).
pub(crate) const SPURIOUS_VECTOR: u8 = 0xff;

const REG_EOI: usize = 0xb0;
const REG_SVR: usize = 0xf0;
const REG_LVT_TIMER: usize = 0x320;
const REG_INITIAL: usize = 0x380;
const REG_CURRENT: usize = 0x390;
const REG_DIVIDE: usize = 0x3e0;

/// Data (mask) ports of the two 8259 PICs.
const PIC1_DATA: u16 = 0x21;
const PIC2_DATA: u16 = 0xa1;
const PIC_MASK_ALL: u8 = 0xff;

/// The register window, once the APIC is enabled (before, writes are dropped, reads give 0).
static REGS: spin::Once<Mmio> = spin::Once::new();
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);

fn write(off: usize, v: u32) {
    if let Some(r) = REGS.get() {
        r.write32(off, v);
    }
}

fn read(off: usize) -> u32 {
    REGS.get().map_or(0, |r| r.read32(off))
}

static CALIBRATION_TSC0: AtomicU64 = AtomicU64::new(0);

/// Masks the 8259 PICs, enables the LAPIC and starts its timer counting down from the maximum,
/// so that it is calibrated in the same window as the TSC (see [`finish_calibration`]).
pub(crate) fn start_calibration() {
    outb(PIC1_DATA, PIC_MASK_ALL);
    outb(PIC2_DATA, PIC_MASK_ALL);
    REGS.call_once(crate::mmio::lapic);
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(REG_DIVIDE, 0x3); // divide by 16
    write(REG_LVT_TIMER, 1 << 16); // masked while calibrating
    CALIBRATION_TSC0.store(cpu::rdtsc(), Ordering::Relaxed);
    write(REG_INITIAL, u32::MAX);
}

/// Reads how far the timer counted since [`start_calibration`] and converts it to a frequency
/// with the (already calibrated) TSC. Returns the timer frequency.
pub(crate) fn finish_calibration() -> u64 {
    let ticks = u64::from(u32::MAX - read(REG_CURRENT));
    let tsc = cpu::rdtsc().wrapping_sub(CALIBRATION_TSC0.load(Ordering::Relaxed));
    write(REG_INITIAL, 0);
    let hz = (u128::from(ticks) * u128::from(clock::tsc_hz()) / u128::from(tsc.max(1))) as u64;
    let hz = hz.max(1000);
    TIMER_HZ.store(hz, Ordering::Relaxed);
    write(REG_LVT_TIMER, u32::from(TIMER_VECTOR)); // one-shot, unmasked
    hz
}

/// Acknowledges an interrupt (the trap layer calls this for every vector >= 32).
pub(crate) fn on_interrupt(vector: u8) {
    if vector != SPURIOUS_VECTOR {
        write(REG_EOI, 0);
    }
}

/// Halts until an interrupt or until the monotonic clock reaches `deadline`.
pub(crate) fn wait(deadline: Option<Nanos>) -> Events {
    // Devices without an interrupt are looked at every millisecond.
    let polled = crate::devices::POLLED.load(Ordering::Relaxed);
    let deadline = if polled != 0 {
        let next_poll = clock::monotonic_ns().saturating_add(POLL_NS);
        Some(deadline.map_or(next_poll, |d| d.min(next_poll)))
    } else {
        deadline
    };
    if let Some(d) = deadline {
        let now = clock::monotonic_ns();
        if d <= now {
            return Events(polled);
        }
        let hz = u128::from(TIMER_HZ.load(Ordering::Relaxed));
        // Round up so the timer never fires before the deadline.
        let ticks = (u128::from(d - now) * hz)
            .div_ceil(1_000_000_000)
            .clamp(1, u128::from(u32::MAX));
        write(REG_INITIAL, ticks as u32);
    }
    cpu::wait_for_interrupt();
    write(REG_INITIAL, 0);
    let pending = fata_boot::trap::take_pending();
    // Device interrupts (vectors 0x30..0x6f) map to event bits 0..63; the timer is no event.
    const _: () = assert!(crate::devices::DEVICE_VECTOR_BASE == 0x30);
    let devices = (pending[0] >> 48) | (pending[1] << 16);
    Events(devices | polled)
}

/// How often devices without an interrupt are polled while the CPU idles.
const POLL_NS: Nanos = 1_000_000;
