//! A seeded pseudo-random source for tests (splitmix64): power-cut choices, kill timings.

use std::time::Duration;

/// splitmix64; the same seed gives the same sequence.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// A source seeded from the clock, or from `FATA_TEST_SEED`; the seed is printed so a
    /// failure can be replayed.
    pub fn from_time(what: &str) -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let seed = std::env::var("FATA_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(seed);
        eprintln!("{what}: seed {seed} (FATA_TEST_SEED={seed} replays it)");
        Rng(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A duration between `lo` and `hi`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = (hi - lo).as_millis().max(1) as u64;
        lo + Duration::from_millis(self.below(span))
    }
}
