//! The CPU's random number instructions as entropy sources: `RDSEED` (output of the
//! hardware's conditioned entropy source, meant for seeding) and `RDRAND` (output of a DRBG the
//! hardware reseeds from it). Shared by the `virtio` and `xen` platforms.
//!
//! Detection by CPUID: leaf 1 ECX bit 30 is RDRAND, leaf 7 (subleaf 0) EBX bit 18 is RDSEED.
//! A hypervisor may hide either (QEMU's `-cpu qemu64` has neither, `-cpu max` both).
//!
//! Neither instruction is trusted blindly:
//! - both may report "no value now" (carry clear): RDRAND is retried [`RDRAND_RETRIES`] times
//!   (Intel's guidance), RDSEED [`RDSEED_RETRIES`] times with a pause between attempts (it
//!   underflows under load); then the fill fails with [`EntropyError::Exhausted`];
//! - some CPUs return a constant while reporting success (AMD family 15h/16h/17h after suspend
//!   returned all ones; a buggy microcode returned the same value): a source is probed at start
//!   and never offered if it fails [`Health`]; a later failure makes that fill fail and the
//!   source stay broken for good.
//!
//! The instructions are in the private module `imp`, the only `unsafe` code here.

use alloc::boxed::Box;
use alloc::vec::Vec;
use fata_hal::entropy::{EntropyError, EntropySource};

/// RDRAND attempts per 64-bit value before giving up (Intel's DRNG guide: 10).
pub const RDRAND_RETRIES: u32 = 10;
/// RDSEED attempts per 64-bit value before giving up (with `pause` between them).
pub const RDSEED_RETRIES: u32 = 1000;
/// Values drawn when a source is probed at start.
const PROBE_VALUES: usize = 4;

/// Which instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insn {
    /// `RDSEED`.
    Rdseed,
    /// `RDRAND`.
    Rdrand,
}

impl Insn {
    /// Its name, as the boot line shows it.
    pub fn name(self) -> &'static str {
        match self {
            Insn::Rdseed => "rdseed",
            Insn::Rdrand => "rdrand",
        }
    }

    fn retries(self) -> u32 {
        match self {
            Insn::Rdseed => RDSEED_RETRIES,
            Insn::Rdrand => RDRAND_RETRIES,
        }
    }
}

/// Which instructions CPUID offers, from leaf 1 ECX and leaf 7 EBX (`None` if the CPU has no
/// leaf 7): `(rdrand, rdseed)`.
pub fn offered(leaf1_ecx: u32, leaf7_ebx: Option<u32>) -> (bool, bool) {
    (
        leaf1_ecx & (1 << 30) != 0,
        leaf7_ebx.is_some_and(|b| b & (1 << 18) != 0),
    )
}

/// The sanity check on every value: all ones, all zeros, or the previous value again means the
/// source is broken (each has probability 2^-64 from a working source).
#[derive(Clone, Debug, Default)]
pub struct Health {
    last: Option<u64>,
    broken: Option<&'static str>,
}

impl Health {
    /// Checks `v`; once broken, always broken.
    pub fn check(&mut self, v: u64) -> Result<(), EntropyError> {
        if self.broken.is_none() {
            self.broken = if v == u64::MAX {
                Some("all ones")
            } else if v == 0 {
                Some("all zeros")
            } else if self.last == Some(v) {
                Some("the same 64-bit value twice in a row")
            } else {
                None
            };
        }
        self.last = Some(v);
        self.broken
            .map_or(Ok(()), |why| Err(EntropyError::Broken(why)))
    }
}

/// Fills `buf` with values from `next` (one attempt per call; `None` is "no value now"),
/// trying each value up to `retries` times and checking every value with `health`.
pub fn fill_from(
    buf: &mut [u8],
    retries: u32,
    health: &mut Health,
    mut next: impl FnMut() -> Option<u64>,
) -> Result<(), EntropyError> {
    for chunk in buf.chunks_mut(8) {
        let v = (0..retries.max(1))
            .find_map(|_| next())
            .ok_or(EntropyError::Exhausted)?;
        health.check(v)?;
        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
    }
    Ok(())
}

/// RDSEED or RDRAND as an [`EntropySource`].
pub struct CpuRng {
    insn: Insn,
    health: Health,
}

impl CpuRng {
    /// The source for `insn` if CPUID offers it and a probe of a few values passes [`Health`];
    /// `Err` with the reason if it is offered but broken, `Ok(None)` if it is not offered.
    pub fn probe(insn: Insn) -> Result<Option<CpuRng>, EntropyError> {
        let (rdrand, rdseed) = imp::cpuid_offers();
        let here = match insn {
            Insn::Rdseed => rdseed,
            Insn::Rdrand => rdrand,
        };
        if !here {
            return Ok(None);
        }
        let mut s = CpuRng {
            insn,
            health: Health::default(),
        };
        s.fill(&mut [0u8; 8 * PROBE_VALUES])?;
        Ok(Some(s))
    }
}

impl EntropySource for CpuRng {
    fn name(&self) -> &'static str {
        self.insn.name()
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        let insn = self.insn;
        fill_from(buf, insn.retries(), &mut self.health, || {
            let v = imp::step(insn);
            if v.is_none() && insn == Insn::Rdseed {
                // RDSEED underflows under load: give the entropy source a moment.
                core::hint::spin_loop();
            }
            v
        })
    }
}

/// Every CPU instruction source that is offered and passes its probe: RDSEED first, then
/// RDRAND. One offered but broken is left out, with a warning on `console`.
pub fn sources(console: fn(&[u8])) -> Vec<Box<dyn EntropySource>> {
    let mut v: Vec<Box<dyn EntropySource>> = Vec::new();
    for insn in [Insn::Rdseed, Insn::Rdrand] {
        match CpuRng::probe(insn) {
            Ok(Some(s)) => v.push(Box::new(s)),
            Ok(None) => {}
            Err(e) => crate::say(
                console,
                format_args!(
                    "fata: entropy: {} is offered but left out: {e}\n",
                    insn.name()
                ),
            ),
        }
    }
    v
}

#[allow(unsafe_code)]
mod imp {
    use core::arch::x86_64::__cpuid_count;

    /// `(rdrand, rdseed)` as CPUID reports them.
    pub(super) fn cpuid_offers() -> (bool, bool) {
        // Leaf 0 gives the highest standard leaf, so leaf 7 is asked only if it exists.
        let (max, l1) = (__cpuid_count(0, 0).eax, __cpuid_count(1, 0).ecx);
        let l7 = (max >= 7).then(|| __cpuid_count(7, 0).ebx);
        super::offered(l1, l7)
    }

    /// One attempt of `insn`: the value, or `None` when the CPU had none (carry clear). Only
    /// called after CPUID reported the instruction (a `CpuRng` exists only then).
    pub(super) fn step(insn: super::Insn) -> Option<u64> {
        let v: u64;
        let ok: u8;
        match insn {
            // SAFETY: the CPU has RDSEED (checked by CPUID before a `CpuRng` exists); it
            // writes only the output register and the flags, touches no memory and no stack.
            super::Insn::Rdseed => unsafe {
                core::arch::asm!("rdseed {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok,
                    options(nomem, nostack))
            },
            // SAFETY: as above, for RDRAND.
            super::Insn::Rdrand => unsafe {
                core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok,
                    options(nomem, nostack))
            },
        }
        (ok == 1).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_bits_30_of_leaf_1_and_18_of_leaf_7_name_the_instructions() {
        assert_eq!(offered(1 << 30, Some(1 << 18)), (true, true));
        assert_eq!(offered(!(1 << 30), Some(!(1 << 18))), (false, false));
        assert_eq!(
            offered(1 << 30, None),
            (true, false),
            "no leaf 7: no RDSEED"
        );
    }

    #[test]
    fn all_ones_zeros_and_repeats_are_broken_for_good() {
        let mut h = Health::default();
        assert!(h.check(1).is_ok() && h.check(2).is_ok() && h.check(1).is_ok());
        assert_eq!(
            h.check(1),
            Err(EntropyError::Broken("the same 64-bit value twice in a row"))
        );
        assert!(h.check(5).is_err(), "stays broken");
        assert_eq!(
            Health::default().check(u64::MAX),
            Err(EntropyError::Broken("all ones"))
        );
        assert_eq!(
            Health::default().check(0),
            Err(EntropyError::Broken("all zeros"))
        );
    }

    #[test]
    fn fills_retry_a_bounded_number_of_times_and_cover_odd_lengths() {
        let mut n = 0u64;
        let mut buf = [0u8; 11];
        // Every other attempt fails: still fills, values 1 and 2.
        let r = fill_from(&mut buf, 2, &mut Health::default(), || {
            n += 1;
            n.is_multiple_of(2).then_some(n / 2)
        });
        assert!(r.is_ok());
        assert_eq!(buf[0], 1);
        assert_eq!(buf[8], 2);
        let mut tries = 0;
        let r = fill_from(&mut buf, 10, &mut Health::default(), || {
            tries += 1;
            None
        });
        assert_eq!((r, tries), (Err(EntropyError::Exhausted), 10));
        // AMD's failure: success reported, all ones returned.
        let r = fill_from(&mut buf, 10, &mut Health::default(), || Some(u64::MAX));
        assert_eq!(r, Err(EntropyError::Broken("all ones")));
    }

    #[test]
    fn the_host_cpus_instructions_when_offered_give_varying_output() {
        for insn in [Insn::Rdseed, Insn::Rdrand] {
            let Ok(Some(mut s)) = CpuRng::probe(insn) else {
                continue; // not offered on this host (or broken: nothing to test here)
            };
            let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
            s.fill(&mut a).unwrap();
            s.fill(&mut b).unwrap();
            assert_ne!(a, b, "{}", insn.name());
        }
    }
}
