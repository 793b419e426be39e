//! fata's build driver as a library: the `cargo xtask` binary and the integration tests in
//! `tests/` both use it, so a test builds and boots an image exactly the way a user does.
//!
//! - [`target::Target`] owns everything that differs per platform (cargo features, target
//!   directory, link arguments, how an image is started);
//! - [`build`] builds an example for a target and checks the linked image ([`elfcheck`]);
//! - [`qemu`] and [`runner`] start an image (QEMU for hypervisor targets, a process for
//!   `unix`), capture its console with timestamps, bound it with a timeout and decode the
//!   exit status; [`disk`] attaches disk images to it (`--disk`);
//! - [`check`] tells whether an application can run on each target; it reads cargo's JSON
//!   messages with [`cargo_message`] (on [`json`]) and the symbols of rlibs with [`symbols`];
//! - every external command is echoed before it runs ([`cmd::echo`]).
//!
//! No `unsafe` anywhere: the build driver needs none, and the compiler enforces it.

#![forbid(unsafe_code)]

pub mod app;
pub mod bench;
pub mod build;
pub mod cargo_message;
pub mod check;
pub mod cleanup;
pub mod cli;
pub mod client;
pub mod cmd;
pub mod compare;
pub mod deploy;
pub mod disk;
pub mod elfcheck;
pub mod encode;
pub mod gdb;
pub mod image;
pub mod json;
pub mod lint;
pub mod linux_guest;
pub mod load;
pub mod netns;
pub mod new;
pub mod qemu;
pub mod release;
pub mod runner;
pub mod setup;
pub mod symbols;
pub mod target;
pub mod xen;

use std::path::PathBuf;

/// The repository root (the directory holding the workspace `Cargo.toml`).
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// An error with a message meant for the user.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error(e.to_string())
    }
}

/// `Err(Error(format!(...)))`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::Error(format!($($arg)*))) };
}

/// Result with a user-facing error.
pub type Result<T> = std::result::Result<T, Error>;
