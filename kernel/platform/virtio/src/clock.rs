//! Clocks: the TSC, calibrated once at boot against the PIT (a 5 ms window, in which the
//! LAPIC timer is calibrated too), gives monotonic time; the CMOS
//! RTC, read once at boot, anchors wall-clock time.
//!
//! The conversion is `ns = (tsc - tsc0) * mult >> 32`, with `mult = 10^9 * 2^32 / tsc_hz`.
//! If the machine has no PIT (some microVMs), CPUID leaves 0x15/0x16 give the frequency; if
//! they do not either, 1 GHz is assumed and the boot log says so.
//! (kvmclock would be preferable on KVM; KVM is unusable on the development machines, so it is
//! not implemented yet — see docs/platforms.md.)

use crate::cpu::rdtsc;
use crate::pio::{inb, outb};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static TSC0: AtomicU64 = AtomicU64::new(0);
static MULT: AtomicU64 = AtomicU64::new(1 << 32);
static LAST: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static WALL_AT_ZERO: AtomicU64 = AtomicU64::new(0);
static HAVE_WALL: AtomicBool = AtomicBool::new(false);

/// Where the TSC frequency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Pit,
    Cpuid,
    Assumed,
}

const PIT_HZ: u64 = 1_193_182;

/// Counts PIT channel 0 ticks for about 5 ms and returns (TSC ticks, PIT ticks), or `None`
/// if the PIT does not count.
fn pit_measure() -> Option<(u64, u64)> {
    fn read() -> u16 {
        outb(0x43, 0x00); // latch channel 0
        let lo = inb(0x40);
        let hi = inb(0x40);
        u16::from_le_bytes([lo, hi])
    }
    outb(0x43, 0x34); // channel 0, lobyte/hibyte, mode 2 (rate generator), binary
    outb(0x40, 0);
    outb(0x40, 0); // reload value 65536
    let target = PIT_HZ / 200;
    let mut last = read();
    let t0 = rdtsc();
    let mut elapsed = 0u64;
    let mut polls = 0u32;
    while elapsed < target {
        let now = read();
        elapsed += u64::from(last.wrapping_sub(now));
        last = now;
        polls += 1;
        if polls > 2_000_000 || (polls > 1000 && elapsed == 0) {
            return None;
        }
    }
    Some((rdtsc() - t0, elapsed))
}

fn cpuid_hz() -> Option<u64> {
    // CPUID is available on every x86_64 CPU and only reads identification data.
    let max = core::arch::x86_64::__cpuid(0).eax;
    if max >= 0x15 {
        let l = core::arch::x86_64::__cpuid(0x15);
        if l.eax != 0 && l.ebx != 0 && l.ecx != 0 {
            return Some(u64::from(l.ecx) * u64::from(l.ebx) / u64::from(l.eax));
        }
    }
    if max >= 0x16 {
        let l = core::arch::x86_64::__cpuid(0x16);
        if l.eax & 0xffff != 0 {
            return Some(u64::from(l.eax & 0xffff) * 1_000_000);
        }
    }
    None
}

/// Makes "now" the zero of the monotonic clock (call first thing at boot, so guest-side
/// times include the boot itself).
pub(crate) fn mark_boot() {
    TSC0.store(rdtsc(), Ordering::Relaxed);
}

/// Calibrates the TSC; returns its frequency and where it came from.
pub(crate) fn init() -> (u64, Source) {
    let (hz, src) = match pit_measure() {
        Some((tsc, pit)) if pit > 0 && tsc > 0 => (tsc * PIT_HZ / pit, Source::Pit),
        _ => match cpuid_hz() {
            Some(hz) => (hz, Source::Cpuid),
            None => (1_000_000_000, Source::Assumed),
        },
    };
    let hz = hz.max(1_000_000);
    MULT.store(
        ((1_000_000_000u128 << 32) / u128::from(hz)) as u64,
        Ordering::Relaxed,
    );
    TSC_HZ.store(hz, Ordering::Relaxed);
    if let Some(secs) = rtc_unix_seconds() {
        WALL_AT_ZERO.store(secs * 1_000_000_000, Ordering::Relaxed);
        HAVE_WALL.store(true, Ordering::Relaxed);
    }
    (hz, src)
}

/// Nanoseconds since `init`.
pub(crate) fn monotonic_ns() -> u64 {
    let delta = rdtsc().wrapping_sub(TSC0.load(Ordering::Relaxed));
    let ns = ((u128::from(delta) * u128::from(MULT.load(Ordering::Relaxed))) >> 32) as u64;
    // Never go backwards, even if the TSC does (unsynchronised host TSCs, migration).
    let prev = LAST.fetch_max(ns, Ordering::Relaxed);
    prev.max(ns)
}

/// TSC ticks per second, as calibrated.
pub(crate) fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

pub(crate) fn wall_ns() -> Option<u64> {
    HAVE_WALL
        .load(Ordering::Relaxed)
        .then(|| WALL_AT_ZERO.load(Ordering::Relaxed) + monotonic_ns())
}

fn cmos(reg: u8) -> u8 {
    outb(0x70, 0x80 | reg); // bit 7: keep NMIs disabled
    inb(0x71)
}

/// Reads the CMOS RTC as seconds since the Unix epoch; `None` if there is no RTC or its
/// contents are not a valid date.
fn rtc_unix_seconds() -> Option<u64> {
    let read = || {
        let mut spins = 0;
        while cmos(0x0a) & 0x80 != 0 {
            spins += 1;
            if spins > 100_000 {
                return None;
            }
        }
        Some([
            cmos(0x00),
            cmos(0x02),
            cmos(0x04),
            cmos(0x07),
            cmos(0x08),
            cmos(0x09),
            cmos(0x32),
        ])
    };
    let mut a = read()?;
    for _ in 0..5 {
        let b = read()?;
        if a == b {
            break;
        }
        a = b;
    }
    decode_rtc(a, cmos(0x0b))
}

/// Turns raw RTC registers (sec, min, hour, day, month, year, century) into Unix seconds.
pub(crate) fn decode_rtc(raw: [u8; 7], status_b: u8) -> Option<u64> {
    if raw.iter().all(|&b| b == 0xff) {
        return None;
    }
    let binary = status_b & 0x04 != 0;
    let h24 = status_b & 0x02 != 0;
    let bcd = |v: u8| {
        if binary {
            Some(v)
        } else {
            ((v >> 4) < 10 && (v & 0xf) < 10).then(|| (v >> 4) * 10 + (v & 0xf))
        }
    };
    let sec = u64::from(bcd(raw[0])?);
    let min = u64::from(bcd(raw[1])?);
    let pm = raw[2] & 0x80 != 0;
    let mut hour = u64::from(bcd(raw[2] & 0x7f)?);
    if !h24 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let day = u64::from(bcd(raw[3])?);
    let month = u64::from(bcd(raw[4])?);
    let century = bcd(raw[6]).filter(|c| (19..=30).contains(c)).unwrap_or(20);
    let year = u64::from(century) * 100 + u64::from(bcd(raw[5])?);
    if sec > 60 || min > 59 || hour > 23 || !(1..=31).contains(&day) || !(1..=12).contains(&month) {
        return None;
    }
    Some(days_from_civil(year, month, day)? * 86400 + hour * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtc_bcd_date_converts_to_unix_seconds() {
        // 2026-11-22 13:45:30, BCD, 24-hour.
        let raw = [0x30, 0x45, 0x13, 0x22, 0x11, 0x26, 0x20];
        assert_eq!(decode_rtc(raw, 0x02), Some(1_795_355_130));
    }

    #[test]
    fn rtc_binary_12_hour_pm_converts() {
        // 1970-01-02 13:00:00 in binary, 12-hour mode: 1 PM.
        let raw = [0, 0, 0x80 | 1, 2, 1, 70, 19];
        assert_eq!(decode_rtc(raw, 0x04), Some(86_400 + 13 * 3600));
    }

    #[test]
    fn absent_or_garbage_rtc_gives_no_wall_clock() {
        assert_eq!(decode_rtc([0xff; 7], 0xff), None);
        assert_eq!(
            decode_rtc([0x99, 0x99, 0x99, 0x99, 0x99, 0x99, 0x20], 0x02),
            None
        );
        assert_eq!(decode_rtc([0, 0, 0, 0, 1, 0x26, 0x20], 0x02), None);
    }
}
