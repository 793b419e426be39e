//! TLS for applications (cargo feature `tls`): servers and clients over [`TcpStream`], with
//! the image's CSPRNG ([`crate::rand`]) and wall clock plugged into rustls (`fata-tls`).
//!
//! ```ignore
//! let certs = fata::net::tls::CertStore::new();
//! if let Some(id) = fata::net::tls::boot_identity()? { certs.insert(&id)?; }
//! let tls = fata::net::tls::TlsAcceptor::new(certs)?;
//! let listener = net.listen(443)?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let tls = tls.clone();
//!     fata::spawn(async move {
//!         let Ok(mut s) = tls.accept(tcp).await else { return };  // bounded handshake
//!         // s.read / s.write_all / s.close
//!     });
//! }
//! ```
//! TLS refuses to start when no entropy source seeded the CSPRNG, unless the boot key
//! `insecure_entropy=true` says otherwise: keys made from predictable bytes protect nothing.

use super::{Stack, Stream, TcpStream};
use crate::config::Secret;
use crate::time::{Duration, timeout};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
pub use fata_tls::{
    CertStore, Identity, RootCertStore, TlsError, certs_from_pem, roots_from_pem, rustls,
};

/// A server-side TLS connection over a TCP stream.
pub type TlsStream = fata_tls::ServerStream<TcpStream>;
/// A client-side TLS connection over a TCP stream.
pub type TlsClientStream = fata_tls::ClientStream<TcpStream>;

crate::config! {
    /// TLS keys, present in every image built with the `tls` feature.
    #[derive(Clone)]
    pub(crate) struct TlsKeys {
        /// The server's certificate chain, leaf first: a PEM file in base64
        /// (`base64 -w0 fullchain.pem`).
        tls_cert: Secret = "",
        /// The certificate's private key (ECDSA P-256 or Ed25519): a PEM file in base64.
        tls_key: Secret = "",
        /// A TLS handshake must complete within this long, or the connection is closed.
        tls_handshake_timeout: Duration = Duration::from_secs(10),
        /// When main returns an error, POST a JSON report of it to this https:// URL
        /// (a webhook) before exiting; empty: no report.
        report_url: String = "",
        /// The CA that signs report_url's certificate: a PEM file in base64; empty: the web
        /// PKI roots (images built with them).
        report_ca: Secret = "",
    }
}

static KEYS: crate::single::Local<spin::Once<TlsKeys>> = crate::single::Local(spin::Once::new());

pub(crate) fn set_keys(k: TlsKeys) {
    KEYS.0.call_once(|| k);
}

pub(crate) fn keys() -> TlsKeys {
    KEYS.0
        .get()
        .cloned()
        .unwrap_or_else(<TlsKeys as crate::config::Config>::defaults)
}

static CONTEXT: crate::single::Local<spin::Once<fata_tls::Tls>> =
    crate::single::Local(spin::Once::new());

fn wall_secs() -> Option<u64> {
    crate::time::wall_ns().map(|ns| ns / 1_000_000_000)
}

/// The image's TLS context, or why TLS may not run: no entropy source seeded
/// [`crate::rand`] and `insecure_entropy=true` was not given.
pub fn context() -> Result<&'static fata_tls::Tls, TlsError> {
    if !crate::rand::is_secure() && !crate::rand::allow_insecure() {
        return Err(TlsError::Config(String::from(
            "TLS refuses to start: no entropy source seeded the random generator, so keys \
             would be predictable (attach one: -device virtio-rng-pci, a CPU with RDRAND; or \
             boot with insecure_entropy=true for a test)",
        )));
    }
    Ok(CONTEXT
        .0
        .call_once(|| fata_tls::Tls::new(crate::rand::fill, wall_secs)))
}

/// The certificate and key given on the boot command line (`tls_cert=`, `tls_key=`), if any.
pub fn boot_identity() -> Result<Option<Identity>, TlsError> {
    let k = keys();
    match (
        k.tls_cert.expose().is_empty(),
        k.tls_key.expose().is_empty(),
    ) {
        (true, true) => Ok(None),
        (false, true) => Err(TlsError::Config(
            "tls_cert is set but tls_key is not".into(),
        )),
        (true, false) => Err(TlsError::Config(
            "tls_key is set but tls_cert is not".into(),
        )),
        (false, false) => {
            let cert = pem_value("tls_cert", k.tls_cert.expose())?;
            let key = pem_value("tls_key", k.tls_key.expose())?;
            Identity::from_pem(&cert, &key)
                .map_err(|e| TlsError::Config(format!("tls_cert/tls_key: {e}")))
                .map(Some)
        }
    }
}

/// A boot value holding a PEM file: the PEM text itself, or (as it must be on a command
/// line, which cannot carry newlines) its base64.
pub fn pem_value(key: &str, v: &str) -> Result<Vec<u8>, TlsError> {
    if v.starts_with("-----BEGIN") {
        return Ok(v.as_bytes().to_vec());
    }
    let pem = base64_decode(v)
        .ok_or_else(|| TlsError::Config(format!("{key}: not base64 (base64 -w0 file.pem)")))?;
    if !pem.starts_with(b"-----BEGIN") {
        return Err(TlsError::Config(format!(
            "{key}: the base64 does not hold a PEM file (it must start with -----BEGIN)"
        )));
    }
    Ok(pem)
}

/// Standard base64 (RFC 4648, padding optional); `None` on any other character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// TLS server counters since boot.
#[derive(Clone, Copy, Debug, Default)]
pub struct TlsCounters {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Handshakes that failed (bad records, no common parameters, alerts, resets).
    pub failed: u64,
    /// Handshakes closed because they did not complete within `tls_handshake_timeout`.
    pub timeouts: u64,
}

static HANDSHAKES: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// The TLS server counters.
pub fn counters() -> TlsCounters {
    TlsCounters {
        handshakes: HANDSHAKES.load(Ordering::Relaxed),
        failed: FAILED.load(Ordering::Relaxed),
        timeouts: TIMEOUTS.load(Ordering::Relaxed),
    }
}

/// Accepts TLS connections: certificates from a [`CertStore`] (by SNI), TLS 1.3 and 1.2,
/// ALPN `http/1.1`, session resumption, and a deadline on every handshake. Cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<rustls::ServerConfig>,
    deadline: Duration,
}

impl TlsAcceptor {
    /// An acceptor serving the certificates in `certs` (which may change while it serves).
    pub fn new(certs: Arc<CertStore>) -> Result<TlsAcceptor, TlsError> {
        let config = context()?.server_config(certs, alloc::vec![b"http/1.1".to_vec()], 256)?;
        Ok(TlsAcceptor {
            config,
            deadline: keys().tls_handshake_timeout,
        })
    }

    /// Runs the handshake on an accepted TCP connection, within `tls_handshake_timeout`.
    /// On failure the connection is closed (after the alert that says why, if any).
    pub async fn accept(&self, tcp: TcpStream) -> Result<TlsStream, TlsError> {
        let mut s = TlsStream::server(tcp, self.config.clone())?;
        match timeout(self.deadline, s.handshake()).await {
            Ok(Ok(())) => {
                HANDSHAKES.fetch_add(1, Ordering::Relaxed);
                Ok(s)
            }
            Ok(Err(e)) => {
                FAILED.fetch_add(1, Ordering::Relaxed);
                // Debug level: scanners and broken clients must not flood the log.
                log::debug!(
                    "tls: handshake with {:?} failed: {e}",
                    s.get_mut().peer_addr()
                );
                s.get_mut().shutdown();
                Err(e)
            }
            Err(_) => {
                TIMEOUTS.fetch_add(1, Ordering::Relaxed);
                log::debug!(
                    "tls: handshake with {:?} timed out",
                    s.get_mut().peer_addr()
                );
                s.get_mut().shutdown();
                Err(TlsError::HandshakeTimeout)
            }
        }
    }
}

/// Opens TLS connections to servers verified against a set of trust roots.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    deadline: Duration,
}

impl TlsConnector {
    /// A connector that trusts the CAs in `roots`.
    pub fn new(roots: RootCertStore) -> Result<TlsConnector, TlsError> {
        Ok(TlsConnector {
            config: context()?.client_config(roots)?,
            deadline: keys().tls_handshake_timeout,
        })
    }

    /// A connector that trusts the CAs in a PEM text.
    pub fn from_pem(ca_pem: &[u8]) -> Result<TlsConnector, TlsError> {
        TlsConnector::new(roots_from_pem(ca_pem)?)
    }

    /// Connects to `host:port` (a DNS name, looked up, or an IP address), runs the
    /// handshake within `tls_handshake_timeout` and checks the server's certificate
    /// against the roots and `host`.
    pub async fn connect(
        &self,
        net: &Stack,
        host: &str,
        port: u16,
    ) -> Result<TlsClientStream, TlsError> {
        let ip = match host.parse::<super::IpAddr>() {
            Ok(ip) => ip,
            Err(_) => *net
                .resolve(host)
                .await
                .map_err(TlsError::Io)?
                .first()
                .ok_or(TlsError::Io(super::NetError::NameNotFound))?,
        };
        let tcp = timeout(self.deadline, net.connect((ip, port)))
            .await
            .map_err(|_| TlsError::HandshakeTimeout)?
            .map_err(TlsError::Io)?;
        let mut s = TlsClientStream::client(tcp, self.config.clone(), host)?;
        timeout(self.deadline, s.handshake())
            .await
            .map_err(|_| TlsError::HandshakeTimeout)??;
        Ok(s)
    }
}

impl<C: fata_tls::engine::Side> Stream for fata_tls::TlsStream<TcpStream, C> {
    type Error = TlsError;
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, TlsError> {
        fata_tls::TlsStream::read(self, buf).await
    }
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), TlsError> {
        fata_tls::TlsStream::write_all(self, buf).await
    }
    async fn close(&mut self) {
        let _ = fata_tls::TlsStream::close(self).await;
        let _ = self.flush().await;
    }
    fn shutdown(&mut self) {
        self.get_mut().shutdown()
    }
    fn set_idle(&mut self, idle: bool) {
        self.get_mut().set_idle(idle)
    }
}

impl fata_tls::Io for TcpStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, super::NetError> {
        TcpStream::read(self, buf).await
    }
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), super::NetError> {
        TcpStream::write_all(self, buf).await
    }
    async fn flush(&mut self) -> Result<(), super::NetError> {
        TcpStream::flush(self).await
    }
    fn shutdown(&mut self) {
        TcpStream::shutdown(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_pem_values_are_base64_or_pem_and_bad_ones_say_why() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_value("k", pem).unwrap(), pem.as_bytes());
        // base64 -w0 of the same text
        let b64 =
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFBQUEKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";
        assert_eq!(pem_value("k", b64).unwrap(), pem.as_bytes());
        let e = pem_value("tls_key", "not base64!").unwrap_err().to_string();
        assert!(e.contains("tls_key: not base64"), "{e}");
        let e = pem_value("tls_cert", "aGVsbG8=").unwrap_err().to_string();
        assert!(e.contains("does not hold a PEM"), "{e}");
    }
}
