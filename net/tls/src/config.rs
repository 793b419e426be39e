//! Certificates, keys and trust roots: PEM loading, the server's certificate store (chosen by
//! SNI, replaceable while serving, for ACME renewals) and the client's roots.

use crate::TlsError;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::RootCertStore;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate chain (leaf first) and its private key.
pub struct Identity {
    /// The chain, leaf first, as DER.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Identity({} certificates, key hidden)", self.chain.len())
    }
}

impl Identity {
    /// Parses a PEM certificate chain (leaf first) and a PEM private key (PKCS#8 or SEC1).
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Identity, TlsError> {
        let chain = certs_from_pem(chain_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError::Config(format!("private key: no usable PEM key ({e:?})")))?;
        Ok(Identity { chain, key })
    }

    /// A certified key for rustls, after checking that the key can sign here and matches
    /// the leaf certificate.
    pub fn certified(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let signing = crate::sign::load(&self.key).map_err(|e| match e {
            // Our own messages, without rustls's "unexpected error: " in front.
            rustls::Error::General(m) => TlsError::Config(format!("private key: {m}")),
            e => TlsError::Config(format!("private key: {e}")),
        })?;
        let ck = CertifiedKey::new(self.chain.clone(), signing);
        ck.keys_match().map_err(|e| {
            TlsError::Config(format!(
                "the private key does not belong to the certificate ({e})"
            ))
        })?;
        Ok(Arc::new(ck))
    }
}

/// Every certificate in a PEM text, in order; an error if there is none or one is damaged.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(pem) {
        out.push(c.map_err(|e| TlsError::Config(format!("certificate PEM: {e:?}")))?);
    }
    if out.is_empty() {
        return Err(TlsError::Config(
            "no `-----BEGIN CERTIFICATE-----` block found".into(),
        ));
    }
    Ok(out)
}

/// Trust roots from a PEM text of CA certificates.
pub fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs_from_pem(pem)? {
        roots
            .add(c)
            .map_err(|e| TlsError::Config(format!("CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The Mozilla root programme's CAs (the `web-pki-roots` feature).
#[cfg(feature = "web-pki-roots")]
pub fn web_pki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

struct Entry {
    /// The leaf, to match SNI against its names.
    leaf: CertificateDer<'static>,
    key: Arc<CertifiedKey>,
}

/// The server's certificates: one per set of names, picked by the client's SNI; the first is
/// the default for a client that sends no name or one that matches nothing (the client then
/// sees the mismatch, and the server goes on serving everyone else). Certificates can be
/// added and replaced while connections are served.
#[derive(Default)]
pub struct CertStore {
    entries: spin::Mutex<Vec<Entry>>,
}

impl core::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CertStore({} certificates)", self.entries.lock().len())
    }
}

impl CertStore {
    /// An empty store: handshakes fail until a certificate is added.
    pub fn new() -> Arc<CertStore> {
        Arc::new(CertStore::default())
    }

    /// Adds `id`, replacing a certificate whose leaf has exactly the same names
    /// (a renewal); checks the key first.
    pub fn insert(&self, id: &Identity) -> Result<(), TlsError> {
        let key = id.certified()?;
        let leaf = id.chain[0].clone();
        let names = names_of(&leaf);
        let mut e = self.entries.lock();
        match e.iter_mut().find(|x| names_of(&x.leaf) == names) {
            Some(x) => *x = Entry { leaf, key },
            None => e.push(Entry { leaf, key }),
        }
        Ok(())
    }

    /// Whether the store holds no certificate.
    pub fn is_empty(&self) -> bool {
        self.entries.lock().is_empty()
    }

    /// How many certificates the store holds.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let e = self.entries.lock();
        let by_name = sni.and_then(|n| {
            let name = ServerName::try_from(n).ok()?;
            e.iter().find(|x| {
                webpki::EndEntityCert::try_from(&x.leaf)
                    .is_ok_and(|c| c.verify_is_valid_for_subject_name(&name).is_ok())
            })
        });
        by_name.or(e.first()).map(|x| x.key.clone())
    }
}

/// The DNS names a leaf certificate is valid for (compared to recognise a renewal).
fn names_of(leaf: &CertificateDer<'_>) -> Vec<String> {
    let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
        return Vec::new();
    };
    let mut v: Vec<String> = cert.valid_dns_names().map(String::from).collect();
    v.sort();
    v
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}
