//! TLS for fata: rustls 1.2 and 1.3, server and client, over fata's TCP streams.
//!
//! Layer: above `fata-net` (its `TcpStream`), below the runtime, which supplies the two
//! things an image has to provide itself — a CSPRNG ([`RandomFn`], `fata::rand`) and a wall
//! clock ([`ClockFn`]) — and the handshake deadline. Nothing here does I/O except through
//! [`Io`], so the protocol core ([`engine`]) is tested on the host, client against server.
//!
//! - [`provider`]: which algorithms, and why (ring where no randomness is needed, x25519-dalek
//!   and p256 where it is);
//! - [`Tls`]: server and client configurations;
//! - [`CertStore`]: the server's certificates, chosen by SNI, replaceable while serving;
//! - [`TlsStream`]: handshake, read, write, close_notify.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod config;
pub mod engine;
mod kx;
pub mod provider;
mod sign;
mod stream;
mod verify;

#[cfg(feature = "web-pki-roots")]
pub use config::web_pki_roots;
pub use config::{CertStore, Identity, certs_from_pem, roots_from_pem};
pub use provider::{ClockFn, RandomFn};
pub use rustls;
pub use rustls::RootCertStore;
pub use stream::{ClientStream, Io, ServerStream, TlsStream};

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ServerConfig};

/// Why a TLS operation failed.
#[derive(Debug)]
pub enum TlsError {
    /// The TCP stream failed.
    Io(fata_net::NetError),
    /// The TLS protocol failed (bad record, failed verification, alert from the peer, ...).
    Tls(rustls::Error),
    /// The peer closed the connection before the handshake completed.
    HandshakeEof,
    /// The handshake did not complete in time.
    HandshakeTimeout,
    /// Data was written before the handshake completed or after close.
    NotOpen,
    /// The server name is not a valid DNS name or IP address.
    BadServerName,
    /// A certificate, key or trust root could not be used.
    Config(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Io(e) => write!(f, "connection: {e}"),
            TlsError::Tls(e) => write!(f, "TLS: {e}"),
            TlsError::HandshakeEof => {
                f.write_str("the peer closed the connection during the handshake")
            }
            TlsError::HandshakeTimeout => f.write_str("the TLS handshake did not complete in time"),
            TlsError::NotOpen => f.write_str("the TLS connection is not open"),
            TlsError::BadServerName => f.write_str("not a valid server name"),
            TlsError::Config(m) => f.write_str(m),
        }
    }
}

/// The TLS context of an image: the crypto provider and the clock. Build it once.
#[derive(Clone, Debug)]
pub struct Tls {
    provider: Arc<CryptoProvider>,
    clock: provider::Clock,
}

impl Tls {
    /// A context whose random bytes come from `random` (a CSPRNG) and whose time comes from
    /// `clock`.
    pub fn new(random: RandomFn, clock: ClockFn) -> Tls {
        Tls {
            provider: provider::provider(random),
            clock: provider::Clock(clock),
        }
    }

    /// The crypto provider (for custom rustls configurations).
    pub fn provider(&self) -> Arc<CryptoProvider> {
        self.provider.clone()
    }

    /// A server configuration: TLS 1.3 and 1.2, certificates from `certs` by SNI, `alpn`
    /// protocols in preference order (empty: no ALPN), and a session cache of `sessions`
    /// entries for resumption (TLS 1.2 session ids and TLS 1.3 tickets).
    pub fn server_config(
        &self,
        certs: Arc<CertStore>,
        alpn: Vec<Vec<u8>>,
        sessions: usize,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let mut c = ServerConfig::builder_with_details(self.provider.clone(), Arc::new(self.clock))
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(TlsError::Tls)?
            .with_no_client_auth()
            .with_cert_resolver(certs);
        c.alpn_protocols = alpn;
        c.session_storage = if sessions == 0 {
            Arc::new(rustls::server::NoServerSessionStorage {})
        } else {
            rustls::server::ServerSessionMemoryCache::new::<SpinMutex>(sessions)
        };
        Ok(Arc::new(c))
    }

    /// A client configuration that verifies servers against `roots` (TLS 1.3 and 1.2, with
    /// a small session cache so repeated requests to one server resume).
    pub fn client_config(&self, roots: RootCertStore) -> Result<Arc<ClientConfig>, TlsError> {
        self.client_config_with(roots, rustls::ALL_VERSIONS)
    }

    /// [`Tls::client_config`] limited to some protocol `versions`.
    pub fn client_config_with(
        &self,
        roots: RootCertStore,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let mut c = ClientConfig::builder_with_details(self.provider.clone(), Arc::new(self.clock))
            .with_protocol_versions(versions)
            .map_err(TlsError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.resumption = rustls::client::Resumption::store(Arc::new(
            rustls::client::ClientSessionMemoryCache::new::<SpinMutex>(32),
        ));
        Ok(Arc::new(c))
    }
}

/// rustls's no_std build asks for a mutex implementation for its session caches: a spin
/// lock (the runtime is single-threaded, so it is never contended).
struct SpinMutex;

struct SpinLock<T>(spin::Mutex<T>);

impl<T> fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpinLock")
    }
}

impl<T: Send> rustls::lock::Lock<T> for SpinLock<T> {
    fn lock(&self) -> Result<rustls::lock::MutexGuard<'_, T>, rustls::lock::Poisoned> {
        Ok(alloc::boxed::Box::new(self.0.lock()))
    }
}

impl rustls::lock::MakeMutex for SpinMutex {
    fn make_mutex<T: Send + 'static>(value: T) -> Arc<dyn rustls::lock::Lock<T>> {
        Arc::new(SpinLock(spin::Mutex::new(value)))
    }
}

#[cfg(test)]
mod tests;
