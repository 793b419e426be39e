//! Time from Xen's pvclock: vCPU 0's `vcpu_time_info` in shared_info gives Xen system time
//! (nanoseconds since the host booted) as a TSC snapshot and a scale; the wall clock is
//! shared_info's `wc_*` plus system time. Both are read as seqlocks (retry while the version
//! is odd or changed). PVH has no PIT and no RTC.

use crate::events::shared;
use crate::hw::rdtsc;
use core::sync::atomic::{AtomicU64, Ordering};
use fata_hal::Nanos;

pub(crate) const TIME: usize = 32;
pub(crate) const WC_VERSION: usize = 3072;
pub(crate) const WC_SEC: usize = 3076;
pub(crate) const WC_NSEC: usize = 3080;
pub(crate) const WC_SEC_HI: usize = 3084;

/// Xen system time at boot: monotonic time counts from it.
static BOOT_SYS: AtomicU64 = AtomicU64::new(0);
static LAST: AtomicU64 = AtomicU64::new(0);

/// The pvclock fields: (tsc_timestamp, system_time, mul, shift).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeInfo {
    pub(crate) tsc: u64,
    pub(crate) system_ns: u64,
    pub(crate) mul: u32,
    pub(crate) shift: i8,
}

impl TimeInfo {
    /// Xen system time at TSC value `now`.
    pub(crate) fn at(&self, now: u64) -> u64 {
        let delta = now.wrapping_sub(self.tsc);
        let delta = if self.shift >= 0 {
            delta << (self.shift as u32).min(63)
        } else {
            delta >> ((-(self.shift as i32)) as u32).min(63)
        };
        self.system_ns
            .wrapping_add(((u128::from(delta) * u128::from(self.mul)) >> 32) as u64)
    }
}

fn read_time() -> TimeInfo {
    let s = shared();
    loop {
        let v1 = s.u32_at(TIME).load(Ordering::Acquire);
        let tsc = s.read_u64(TIME + 8);
        let system_ns = s.read_u64(TIME + 16);
        let mul = s.u32_at(TIME + 24).load(Ordering::Relaxed);
        let shift = s.read_u8(TIME + 28) as i8;
        core::sync::atomic::fence(Ordering::Acquire);
        let v2 = s.u32_at(TIME).load(Ordering::Acquire);
        if v1 == v2 && v1 & 1 == 0 {
            return TimeInfo {
                tsc,
                system_ns,
                mul,
                shift,
            };
        }
        core::hint::spin_loop();
    }
}

/// Xen system time now.
pub(crate) fn system_ns() -> u64 {
    read_time().at(rdtsc())
}

/// Starts the monotonic clock; `false` if Xen publishes no time (scale 0).
pub(crate) fn init() -> bool {
    let t = read_time();
    BOOT_SYS.store(t.at(rdtsc()), Ordering::Relaxed);
    t.mul != 0
}

/// Nanoseconds since boot; never goes backwards.
pub(crate) fn monotonic_ns() -> Nanos {
    let base = BOOT_SYS.load(Ordering::Relaxed);
    if base == 0 {
        return 0;
    }
    let now = system_ns().saturating_sub(base);
    let last = LAST.fetch_max(now, Ordering::AcqRel);
    now.max(last)
}

/// The Xen system time of monotonic time `t`.
pub(crate) fn to_system_time(t: Nanos) -> u64 {
    BOOT_SYS.load(Ordering::Relaxed).saturating_add(t)
}

/// Wall-clock time (ns since the Unix epoch), if Xen set one.
pub(crate) fn wall_ns() -> Option<Nanos> {
    let s = shared();
    loop {
        let v1 = s.u32_at(WC_VERSION).load(Ordering::Acquire);
        let sec = u64::from(s.u32_at(WC_SEC).load(Ordering::Relaxed))
            | (u64::from(s.u32_at(WC_SEC_HI).load(Ordering::Relaxed)) << 32);
        let nsec = u64::from(s.u32_at(WC_NSEC).load(Ordering::Relaxed));
        core::sync::atomic::fence(Ordering::Acquire);
        let v2 = s.u32_at(WC_VERSION).load(Ordering::Acquire);
        if v1 == v2 && v1 & 1 == 0 {
            if sec == 0 {
                return None;
            }
            return Some(
                sec.saturating_mul(1_000_000_000)
                    .saturating_add(nsec)
                    .saturating_add(system_ns()),
            );
        }
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvclock_scales_tsc_deltas_with_a_128_bit_product() {
        // 2 GHz TSC: mul = 2^31 (0.5 ns per tick), shift 0.
        let t = TimeInfo {
            tsc: 1000,
            system_ns: 5_000,
            mul: 1 << 31,
            shift: 0,
        };
        assert_eq!(t.at(3000), 6_000);
        // A negative shift halves the delta first; a large delta does not overflow.
        let t = TimeInfo {
            tsc: 0,
            system_ns: 0,
            mul: u32::MAX,
            shift: -1,
        };
        assert_eq!(
            t.at(u64::MAX),
            ((u128::from(u64::MAX >> 1) * u128::from(u32::MAX)) >> 32) as u64
        );
        let t = TimeInfo {
            tsc: 0,
            system_ns: 7,
            mul: 1 << 30,
            shift: 2,
        };
        assert_eq!(t.at(10), 7 + 10);
    }
}
