//! `fata`: the runtime that every fata application depends on, and the only crate an
//! application names.
//!
//! It provides the single-core async executor ([`spawn`], [`time`]), the heap, typed
//! configuration keys ([`config!`], [`config`]), logging through the `log` facade, console
//! printing ([`println!`]), random numbers ([`rand`]), Prometheus metrics ([`metrics`]),
//! `/livez` and `/readyz` health checks ([`health`]), the panic and error reporting that turns every failure into a
//! message and a non-zero exit, and `#[fata::main]`.
//!
//! This is the one place that selects a platform (see `platform.rs`): with the cargo feature
//! `platform-virtio`, `platform-xen` or `platform-unix`, set by `cargo xtask`. Everything else here is generic
//! over `fata_hal::Platform` and unit-tested against its mock.
#![cfg_attr(not(test), no_std)]
// `unsafe` is allowed only in `heap` (the allocator) and `single` (one `Sync` assertion), and
// in the platform wiring that installs the allocator.
#![deny(unsafe_code)]

extern crate alloc;

pub mod block;
pub mod config;
pub mod console;
mod executor;
pub mod health;
#[allow(unsafe_code)]
pub mod heap;
#[cfg(feature = "kv")]
pub mod kv;
mod logger;
pub mod metrics;
#[cfg(feature = "net")]
pub mod net;
mod platform;
pub mod rand;
mod runtime;
#[allow(unsafe_code)]
mod single;
pub mod time;

pub use executor::{JoinHandle, spawn};
pub use fata_hal::ExitCode;
pub use fata_macros::main;
pub use log;
pub use runtime::{Runtime, Termination};

/// The platform this image was built for (`virtio`, `unix`, ...).
pub fn platform_name() -> &'static str {
    <platform::Plat as fata_hal::Platform>::NAME
}

/// Ends the program now with `code`, after flushing the console.
pub fn exit(code: ExitCode) -> ! {
    runtime::exit_with(code)
}

#[doc(hidden)]
pub mod __private {
    pub use crate::runtime::start;
    pub use fata_hal::BootInfo;
}
