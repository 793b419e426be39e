//! ACME (RFC 8555) client logic for fata: obtains a certificate with the http-01 challenge.
//!
//! Layer: a pure library under `net/`, like `fata-http`. It knows nothing of sockets, TLS,
//! timers or entropy sources: the runtime hands it a [`Transport`] (one HTTPS request at a time),
//! a [`Sleep`], an [`Http01Responder`] that its port-80 server consults, and random bytes for
//! keys. So the whole protocol is tested on the host against a simulated CA (`src/tests/`).
//!
//! What it does, in order ([`Client::issue`]): fetch the directory; get a nonce (`newNonce`, then
//! each response's `Replay-Nonce`; one retry on `badNonce`); newAccount (JWS with `jwk`,
//! `termsOfServiceAgreed`, optional `mailto:`), afterwards JWS with `kid`; newOrder for the DNS
//! names; for each authorization publish `token → token.thumbprint` and POST `{}` to its http-01
//! challenge, then poll (honouring `Retry-After`, bounded); finalize with a PKCS#10 CSR built here
//! (CN = first name, subjectAltName = all names, ECDSA P-256/SHA-256); poll the order; download
//! the PEM chain and read the leaf's `notAfter`. [`renew_at`] and [`default_backoff`] tell the
//! caller when to run it again.
//!
//! Keys are P-256 ([`KeyPair`]) made from 32 caller-supplied random bytes; ECDSA signatures are
//! deterministic (RFC 6979), so nothing here needs a random source and no dependency pulls
//! `getrandom` (see `docs/` TLS notes: images cannot use getrandom 0.2).
//!
//! JSON: a small hand-written reader/writer ([`json`]) rather than `serde_json`. The client reads
//! six object shapes and writes four; the reader is ~300 lines, bounded in nesting, tested on
//! truncated and mutated documents, and keeps numbers as text. `serde_json` would bring `serde`
//! and its derive macros (proc-macro build time on a 2-core machine, more image code) for no gain
//! in safety: both refuse malformed input, and here the limits and error texts are ours.
//!
//! Nothing a server sends can make this crate panic: JSON, base64, PEM and DER readers return
//! errors for malformed input, and every wait loop has a bound.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod b64;
mod client;
pub mod csr;
pub mod der;
mod error;
pub mod json;
mod key;
pub mod pem;
mod schedule;
mod transport;

#[cfg(test)]
mod tests;

pub use client::{Client, Config, Directory, Issued, JOSE_JSON, cert_validity};
pub use error::{BAD_NONCE, Error, Problem, Step};
pub use key::{GENERATE_ATTEMPTS, JwsSigner, KeyError, KeyPair, jws, key_authorization};
pub use schedule::{RENEW_BEFORE, backoff, default_backoff, renew_at};
pub use transport::{
    HTTP01_PREFIX, Http01Responder, Http01Tokens, HttpRequest, HttpResponse, Method, Sleep,
    Transport, TransportError,
};
