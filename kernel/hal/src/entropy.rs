//! Entropy sources: the contract between whatever the machine offers as randomness and the
//! runtime's CSPRNG (`fata::rand`).
//!
//! A source fills a buffer with bytes that should be unpredictable: the CPU's `RDSEED` and
//! `RDRAND` instructions, a virtio-rng device, the host's `getrandom(2)`. The runtime never
//! hands these bytes to applications directly: it hashes the output of every source the
//! platform has (plus boot timing) into the seed of its ChaCha20 generator, and reseeds from
//! the same sources later. One weak or broken source therefore cannot make the output
//! predictable as long as another one is good; the runtime only needs each source to say when
//! it failed instead of returning garbage.
//!
//! A platform hands over every source it has, once, with [`crate::Platform::entropy_sources`];
//! sources that are not there (no RDRAND in the CPU model, no rng device attached) are simply
//! not in the list.
//!
//! # Errors
//!
//! [`EntropySource::fill`] either fills the whole buffer or fails with:
//! - [`EntropyError::Exhausted`]: the source had no output within its retry bound (RDSEED
//!   reports underflow under load; a device delivered too little). Worth trying again later.
//! - [`EntropyError::Timeout`]: a device did not answer within its bound.
//! - [`EntropyError::Broken`]: the output failed a sanity check (the same value again and
//!   again, all ones): the source must not be trusted, now or later.
//! - [`EntropyError::Device`]: the device (or host) reported something impossible or an error;
//!   the message says what.
//!
//! On an error the buffer's contents are unspecified and must not be used.

use alloc::string::String;
use core::fmt;

/// Why a source produced no bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntropyError {
    /// No output within the source's retry bound (try again later).
    Exhausted,
    /// The device did not answer within its bound.
    Timeout,
    /// The output failed a sanity check (what it was); the source is not to be trusted.
    Broken(&'static str),
    /// The device or host reported an error or an impossible value (the message says which).
    Device(String),
}

impl fmt::Display for EntropyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntropyError::Exhausted => f.write_str("no output within the retry bound"),
            EntropyError::Timeout => f.write_str("the device did not answer in time"),
            EntropyError::Broken(why) => write!(f, "broken output ({why})"),
            EntropyError::Device(why) => write!(f, "device error: {why}"),
        }
    }
}

/// A source of unpredictable bytes.
pub trait EntropySource {
    /// Short name for the boot line and logs: `rdseed`, `rdrand`, `virtio-rng`, `getrandom`.
    fn name(&self) -> &'static str;

    /// Fills all of `buf`, or fails (see the module documentation for the errors). Bounded in
    /// time: a source never blocks for long (it is called at boot and for reseeds).
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError>;
}
