//! `fata::rand`: cryptographically secure random numbers for applications, the TCP/IP stack,
//! TLS and (through the `getrandom` custom backend on bare-metal platforms) any crate that
//! uses `getrandom` 0.3 or 0.4.
//!
//! # How it works
//!
//! - **Sources.** At boot the runtime takes every entropy source the platform has
//!   (`fata_hal::Platform::entropy_sources`: RDSEED, RDRAND, virtio-rng, the host's
//!   `getrandom`) and reads [`SEED_BYTES`] bytes from each.
//! - **Seed.** The 32-byte key is SHA-256 over everything read, each source's bytes preceded
//!   by its name and length, plus boot timing (the monotonic and wall clocks, and clock
//!   readings around the reads). One good source is enough for a secure seed even if the
//!   others are weak; a source that fails is left out (and named in the log), one whose output
//!   is broken is dropped for good.
//! - **Generator.** ChaCha20 (RFC 8439 block function, written here) with fast key erasure:
//!   each refill computes four blocks, the first 32 bytes become the next key, the rest is
//!   handed out and erased as it is (see `chacha`). No state kept after a call can reproduce
//!   earlier output.
//! - **Reseed.** After [`RESEED_BYTES`] bytes of output or [`RESEED_INTERVAL_NS`] of time,
//!   whichever comes first, the next call reads [`RESEED_SOURCE_BYTES`] from every source and
//!   sets key = SHA-256(old key ‖ the new material ‖ the clocks). The check runs when output
//!   is asked for, so an idle system does not reseed; the first output after a long idle
//!   period does.
//!
//! # Without a source
//!
//! [`is_secure`] is `false` when no source produced a single byte: the seed then comes from
//! boot timing only, which an attacker may guess. The system still works (TCP sequence
//! numbers, ports), the runtime prints a loud warning at boot, and code that needs secret keys
//! must refuse to run unless [`allow_insecure`] says the operator accepted it with the boot key
//! `insecure_entropy=true`:
//!
//! ```ignore
//! if !fata::rand::is_secure() && !fata::rand::allow_insecure() {
//!     return Err("no entropy source: refusing to create keys (insecure_entropy=true overrides)");
//! }
//! ```

mod chacha;

use crate::platform::Plat;
use alloc::boxed::Box;
use alloc::vec::Vec;
use chacha::ChaCha;
use core::sync::atomic::{AtomicBool, Ordering};
use fata_hal::Platform;
use fata_hal::entropy::{EntropyError, EntropySource};
use sha2::{Digest, Sha256};

/// Bytes read from each source for the boot seed.
pub const SEED_BYTES: usize = 64;
/// Bytes read from each source at a reseed.
pub const RESEED_SOURCE_BYTES: usize = 32;
/// Output after which the generator reseeds (1 MiB).
pub const RESEED_BYTES: u64 = 1 << 20;
/// Time after which the generator reseeds (five minutes).
pub const RESEED_INTERVAL_NS: u64 = 300_000_000_000;

/// Set from the boot key `insecure_entropy`.
static ALLOW_INSECURE: AtomicBool = AtomicBool::new(false);

/// Fills `buf` with random bytes. Never fails and never blocks for long (a due reseed reads
/// the sources, each bounded in time).
pub fn fill(buf: &mut [u8]) {
    with(|p| p.fill(buf, Plat::monotonic_ns, Plat::wall_ns));
}

/// A random `u64`.
pub fn u64() -> u64 {
    let mut b = [0u8; 8];
    fill(&mut b);
    u64::from_le_bytes(b)
}

/// A random `u32`.
pub fn u32() -> u32 {
    let mut b = [0u8; 4];
    fill(&mut b);
    u32::from_le_bytes(b)
}

/// Whether the generator was seeded from at least one entropy source (not from timing alone).
pub fn is_secure() -> bool {
    with(|p| p.secure)
}

/// Whether the operator allowed code that needs secure randomness to run without it (boot key
/// `insecure_entropy=true`). Check `is_secure() || allow_insecure()` before making keys.
pub fn allow_insecure() -> bool {
    ALLOW_INSECURE.load(Ordering::Relaxed)
}

/// The names of the sources that contributed to the seed, in the platform's order.
pub fn sources() -> Vec<&'static str> {
    with(|p| p.used.clone())
}

/// Boot: records the `insecure_entropy` key, seeds the generator and prints which sources
/// were used, or the warning that there is none.
pub(crate) fn init(insecure_allowed: bool) {
    ALLOW_INSECURE.store(insecure_allowed, Ordering::Relaxed);
    let line = with(|p| p.boot_line());
    crate::logger::status_lines(&line);
}

/// The generator, its sources and its bookkeeping.
pub(crate) struct Pool {
    rng: ChaCha,
    sources: Vec<Box<dyn EntropySource>>,
    /// Some source produced output for a seed.
    secure: bool,
    /// Sources that produced output for the boot seed.
    used: Vec<&'static str>,
    /// Sources that failed at the boot seed, with why.
    failed: Vec<(&'static str, EntropyError)>,
    /// Output since the last (re)seed.
    since_reseed: u64,
    /// When the last (re)seed was.
    seeded_at: u64,
    /// Reseeds so far.
    reseeds: u64,
}

/// Reads `n` bytes from every source into `h` (name, length, bytes each); drops sources whose
/// output is broken. Returns the names of the sources that gave output and the failures.
fn gather(
    sources: &mut Vec<Box<dyn EntropySource>>,
    n: usize,
    h: &mut Sha256,
    now: fn() -> u64,
) -> (Vec<&'static str>, Vec<(&'static str, EntropyError)>) {
    let mut used = Vec::new();
    let mut failed = Vec::new();
    let mut buf = alloc::vec![0u8; n];
    sources.retain_mut(|s| {
        h.update(now().to_le_bytes());
        let r = s.fill(&mut buf);
        h.update(now().to_le_bytes());
        let keep = !matches!(r, Err(EntropyError::Broken(_)));
        match r {
            Ok(()) => {
                h.update(s.name().as_bytes());
                h.update((n as u64).to_le_bytes());
                h.update(&buf);
                used.push(s.name());
            }
            Err(e) => failed.push((s.name(), e)),
        }
        keep
    });
    buf.fill(0);
    (used, failed)
}

/// Clock readings around a little work: what timing alone can contribute.
fn timing(h: &mut Sha256, now: fn() -> u64, wall: Option<u64>) {
    h.update(wall.unwrap_or(0).to_le_bytes());
    let mut x = 0u64;
    for i in 0..64u64 {
        let t = now();
        x = x.rotate_left(7) ^ t.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i;
        h.update(t.to_le_bytes());
    }
    h.update(x.to_le_bytes());
}

impl Pool {
    /// Seeds a generator from `sources` and the clocks.
    pub(crate) fn seed(
        mut sources: Vec<Box<dyn EntropySource>>,
        now: fn() -> u64,
        wall: Option<u64>,
    ) -> Pool {
        let mut h = Sha256::new();
        h.update(b"fata::rand seed v1");
        let (used, failed) = gather(&mut sources, SEED_BYTES, &mut h, now);
        timing(&mut h, now, wall);
        Pool {
            rng: ChaCha::new(h.finalize().into()),
            sources,
            secure: !used.is_empty(),
            used,
            failed,
            since_reseed: 0,
            seeded_at: now(),
            reseeds: 0,
        }
    }

    /// Mixes fresh material from every source into the key.
    pub(crate) fn reseed(&mut self, now: fn() -> u64, wall: Option<u64>) {
        let mut h = Sha256::new();
        h.update(b"fata::rand reseed v1");
        h.update(self.rng.key());
        let (used, failed) = gather(&mut self.sources, RESEED_SOURCE_BYTES, &mut h, now);
        for (name, e) in &failed {
            log::warn!("rand: reseed: entropy source {name} failed: {e}");
        }
        timing(&mut h, now, wall);
        self.rng.rekey(h.finalize().into());
        self.secure |= !used.is_empty();
        self.since_reseed = 0;
        self.seeded_at = now();
        self.reseeds += 1;
    }

    /// Whether a reseed is due at `now_ns`.
    fn reseed_due(&self, now_ns: u64) -> bool {
        self.since_reseed >= RESEED_BYTES
            || now_ns.saturating_sub(self.seeded_at) >= RESEED_INTERVAL_NS
    }

    /// Fills `out`, reseeding first if it is due.
    pub(crate) fn fill(&mut self, out: &mut [u8], now: fn() -> u64, wall: fn() -> Option<u64>) {
        if self.reseed_due(now()) {
            self.reseed(now, wall());
        }
        self.rng.fill(out);
        self.since_reseed = self.since_reseed.saturating_add(out.len() as u64);
    }

    /// What the runtime prints at boot.
    fn boot_line(&self) -> alloc::string::String {
        use core::fmt::Write;
        let mut s = alloc::string::String::new();
        for (name, e) in &self.failed {
            let _ = writeln!(s, "fata: entropy: source {name} failed: {e}");
        }
        if self.secure {
            let _ = write!(s, "fata: entropy: {}", self.used.join(" "));
        } else {
            let _ = write!(
                s,
                "fata: WARNING: no entropy source (no RDSEED/RDRAND offered by the CPU, no \
                 virtio-rng device, or all failed): fata::rand is seeded from boot timing only \
                 and is predictable; TLS will refuse to start unless insecure_entropy=true"
            );
        }
        s
    }
}

#[cfg(not(test))]
mod global {
    use super::Pool;
    use crate::single::Local;
    use core::cell::RefCell;

    static POOL: Local<RefCell<Option<Pool>>> = Local(RefCell::new(None));

    pub(super) fn with<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
        let mut p = POOL.0.borrow_mut();
        f(p.get_or_insert_with(super::from_platform))
    }
}

#[cfg(test)]
mod global {
    use super::Pool;
    use core::cell::RefCell;

    std::thread_local! {
        static POOL: RefCell<Option<Pool>> = const { RefCell::new(None) };
    }

    pub(super) fn with<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
        POOL.with(|p| f(p.borrow_mut().get_or_insert_with(super::from_platform)))
    }

    /// Forgets the generator, so the next use seeds it again from the mock platform.
    pub(super) fn reset() {
        POOL.with(|p| *p.borrow_mut() = None);
    }
}

use global::with;

/// Seeds from the platform's sources (the first use, normally [`init`] at boot).
fn from_platform() -> Pool {
    Pool::seed(Plat::entropy_sources(), Plat::monotonic_ns, Plat::wall_ns())
}

#[cfg(test)]
mod tests;
