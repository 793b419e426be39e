//! The site without HTTPS (built with `--no-default-features`: no TLS in the image): the same
//! names as `https.rs`, doing nothing.

use crate::Config;
use alloc::string::String;
use fata::net::Stack;
use fata_http::{Request, RequestTimer};

/// Nothing: there is no HTTPS side.
#[derive(Clone)]
pub struct Https;

impl Https {
    /// Nothing to start.
    pub async fn start(_: &Stack, _: &Config, _: RequestTimer) -> Result<Https, String> {
        Ok(Https)
    }

    /// No ACME, so no challenge.
    pub fn challenge(&self, _: &str) -> Option<String> {
        None
    }

    /// No HTTPS to redirect to.
    pub fn redirect(&self, _: &Request<'_>) -> Option<String> {
        None
    }
}

/// TLS counters for `/status`: none.
#[derive(Default)]
pub struct Counters {
    pub handshakes: u64,
    pub failed: u64,
    pub timeouts: u64,
}

/// All zero.
pub fn counters() -> Counters {
    Counters::default()
}
