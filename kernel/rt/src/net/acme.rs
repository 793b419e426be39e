//! Certificates from an ACME CA (RFC 8555, http-01), obtained and renewed by the image itself
//! (cargo feature `acme`). Boot keys: `acme_directory=` (the CA's directory URL; empty: off),
//! `acme_domain=` (names, comma-separated), `acme_email=`, `acme_ca=` (the CA certificate
//! that signs the ACME server's own HTTPS, base64 of PEM; empty: the web PKI roots when the
//! image has them).
//!
//! [`Acme::start`] runs a task that puts a certificate into a [`CertStore`]: first one kept in
//! the key-value store from an earlier boot (if still valid), else a new one from the CA; then
//! it renews before expiry. The application's HTTP server on port 80 answers the CA's
//! challenges with [`Acme::answer`]. Every failure is logged with the server's problem
//! document and retried with back-off (10 s doubling to 1 h); nothing here ends the program.
//!
//! With a store, the account key, the account URL, the certificate and its key are kept under
//! `fata.acme.*` keys, so a reboot neither registers again nor asks for a new certificate.
//! The certificate key and account key are made from [`crate::rand`], which must be seeded
//! (see `fata::net::tls::context`).

use super::Stack;
use super::https;
use super::tls::{CertStore, Identity, TlsConnector, TlsError};
use crate::config::Secret;
use crate::kv::Store;
use crate::time::Duration;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use fata_acme::{
    Client, Http01Tokens, HttpRequest, HttpResponse, Issued, KeyPair, Method, Transport,
    TransportError,
};

crate::config! {
    /// ACME keys, present in every image built with the `acme` feature.
    #[derive(Clone)]
    pub(crate) struct AcmeKeys {
        /// The ACME CA's directory URL (https://...); empty: no ACME.
        acme_directory: String = "",
        /// The names to obtain a certificate for, comma-separated.
        acme_domain: String = "",
        /// Contact address given to the CA (optional).
        acme_email: String = "",
        /// The CA that signs the ACME server's HTTPS certificate: a PEM file in base64;
        /// empty: the web PKI roots (images built with them).
        acme_ca: Secret = "",
    }
}

static KEYS: crate::single::Local<spin::Once<AcmeKeys>> = crate::single::Local(spin::Once::new());

pub(crate) fn set_keys(k: AcmeKeys) {
    KEYS.0.call_once(|| k);
}

fn keys() -> AcmeKeys {
    KEYS.0
        .get()
        .cloned()
        .unwrap_or_else(<AcmeKeys as crate::config::Config>::defaults)
}

/// A running ACME client: hand [`Acme::answer`] the path of every request that arrives on
/// port 80.
#[derive(Clone)]
pub struct Acme {
    tokens: Http01Tokens,
}

impl Acme {
    /// Whether the boot keys ask for ACME (`acme_directory` is set).
    pub fn configured() -> bool {
        !keys().acme_directory.is_empty()
    }

    /// Starts obtaining (and renewing) a certificate into `certs`, keeping state in `store`
    /// when given. `Ok(None)` when ACME is not configured; an error for keys that cannot
    /// work (no domain, a bad CA, no entropy).
    pub fn start(
        net: Stack,
        certs: Arc<CertStore>,
        store: Option<Store>,
    ) -> Result<Option<Acme>, TlsError> {
        let k = keys();
        if k.acme_directory.is_empty() {
            return Ok(None);
        }
        let domains: Vec<String> = k
            .acme_domain
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(String::from)
            .collect();
        if domains.is_empty() {
            return Err(TlsError::Config(
                "acme_directory is set but acme_domain is not".into(),
            ));
        }
        https::parse_url(&k.acme_directory)
            .map_err(|e| TlsError::Config(format!("acme_directory: {e}")))?;
        let connector = if k.acme_ca.expose().is_empty() {
            web_roots()?
        } else {
            let pem = super::tls::pem_value("acme_ca", k.acme_ca.expose())?;
            TlsConnector::from_pem(&pem)?
        };
        let tokens = Http01Tokens::new();
        let job = Job {
            net,
            connector,
            certs,
            store,
            directory: k.acme_directory.clone(),
            email: (!k.acme_email.is_empty()).then(|| k.acme_email.clone()),
            domains,
            tokens: tokens.clone(),
            memory: Default::default(),
        };
        crate::spawn(job.run());
        Ok(Some(Acme { tokens }))
    }

    /// The body to answer a request for `path` with, if it is one of the CA's http-01
    /// challenges (`/.well-known/acme-challenge/TOKEN`) under way.
    pub fn answer(&self, path: &str) -> Option<String> {
        self.tokens.answer(path)
    }
}

#[cfg(feature = "web-pki-roots")]
fn web_roots() -> Result<TlsConnector, TlsError> {
    TlsConnector::new(fata_tls::web_pki_roots())
}

#[cfg(not(feature = "web-pki-roots"))]
fn web_roots() -> Result<TlsConnector, TlsError> {
    Err(TlsError::Config(
        "acme_ca is empty and this image has no web PKI roots (cargo feature \
         `web-pki-roots` of fata): give the ACME server's CA as acme_ca="
            .into(),
    ))
}

struct Job {
    net: Stack,
    connector: TlsConnector,
    certs: Arc<CertStore>,
    store: Option<Store>,
    directory: String,
    email: Option<String>,
    domains: Vec<String>,
    tokens: Http01Tokens,
    /// What would be kept in the store, kept in memory too: without a store, a retry still
    /// reuses its account instead of registering a new one each time (public CAs limit
    /// how many accounts an address may create).
    memory: core::cell::RefCell<alloc::collections::BTreeMap<Vec<u8>, Vec<u8>>>,
}

/// The seconds since the Unix epoch, if the machine has a wall clock.
fn now() -> Option<i64> {
    crate::time::wall_ns().map(|ns| (ns / 1_000_000_000) as i64)
}

impl Job {
    /// A store key for `what`, specific to the directory (accounts) or to the directory and
    /// the names (certificates).
    fn key(&self, what: &str) -> Vec<u8> {
        let mut id = self.directory.clone();
        if what.starts_with("cert") {
            id.push(' ');
            id.push_str(&self.domains.join(","));
        }
        format!(
            "fata.acme.{what}.{:016x}",
            fata_http::fnv1a64(id.as_bytes())
        )
        .into_bytes()
    }

    async fn get(&self, what: &str) -> Option<Vec<u8>> {
        let key = self.key(what);
        if let Some(v) = self.memory.borrow().get(&key) {
            return Some(v.clone());
        }
        let s = self.store.as_ref()?;
        match s.get(&key).await {
            Ok(v) => v,
            Err(e) => {
                log::warn!("acme: reading {what} from the store: {e}");
                None
            }
        }
    }

    async fn put(&self, what: &str, value: &[u8]) {
        self.memory
            .borrow_mut()
            .insert(self.key(what), value.to_vec());
        if let Some(s) = &self.store
            && let Err(e) = s.put(&self.key(what), value).await
        {
            log::warn!("acme: keeping {what} in the store: {e}");
        }
    }

    /// The certificate kept by an earlier boot, if it is still valid: its validity.
    async fn stored(&self) -> Option<(i64, i64)> {
        let chain = self.get("cert").await?;
        let key = self.get("certkey").await?;
        let id = match Identity::from_pem(&chain, &key) {
            Ok(id) => id,
            Err(e) => {
                log::warn!("acme: the stored certificate cannot be read: {e}");
                return None;
            }
        };
        let (nb, na) = fata_acme::cert_validity(id.chain.first()?.as_ref())?;
        if now().is_some_and(|t| t >= na) {
            log::info!("acme: the stored certificate has expired");
            return None;
        }
        match self.certs.insert(&id) {
            Ok(()) => Some((nb, na)),
            Err(e) => {
                log::warn!("acme: the stored certificate cannot be used: {e}");
                None
            }
        }
    }

    async fn run(self) {
        let names = self.domains.join(", ");
        let mut valid = self.stored().await;
        if let Some((_, na)) = valid {
            log::info!(
                "acme: certificate for {names} from the store, valid for {} more days",
                days_left(na)
            );
        }
        let mut attempt = 0u32;
        loop {
            if let Some((nb, na)) = valid {
                let Some(t) = now() else {
                    log::warn!("acme: no wall clock: cannot tell when to renew");
                    return;
                };
                let at = fata_acme::renew_at(nb, na, t);
                if t < at {
                    // Sleep in steps of at most a day, so a clock that jumps is noticed.
                    let secs = (at - t).clamp(1, 86_400) as u64;
                    crate::time::sleep(Duration::from_secs(secs)).await;
                    continue;
                }
                log::info!("acme: renewing the certificate for {names}");
            } else {
                log::info!(
                    "acme: asking {} for a certificate for {names}",
                    self.directory
                );
            }
            let outcome = match self.obtain().await {
                Ok(issued) => self.install(&issued).await.map(|()| issued),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(issued) => {
                    // Reset only once the certificate is in use: an unusable one must back
                    // off like any failure, or the CA's rate limits are spent every 10 s.
                    attempt = 0;
                    log::info!(
                        "acme: certificate for {names} issued, valid for {} days{}",
                        days_left(issued.not_after),
                        if self.store.is_some() {
                            ", kept in the store"
                        } else {
                            ""
                        }
                    );
                    valid = Some((issued.not_before, issued.not_after));
                }
                Err(e) => {
                    let wait = fata_acme::default_backoff(attempt);
                    attempt = attempt.saturating_add(1);
                    log::warn!("acme: {e}; trying again in {} s", wait.as_secs());
                    crate::time::sleep(wait).await;
                }
            }
        }
    }

    /// Puts an issued certificate into service (the TLS store) and keeps it.
    async fn install(&self, issued: &Issued) -> Result<(), String> {
        Identity::from_pem(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes())
            .and_then(|id| self.certs.insert(&id))
            .map_err(|e| format!("the issued certificate is unusable: {e}"))?;
        self.put("cert", issued.chain_pem.as_bytes()).await;
        self.put("certkey", issued.key_pem.as_bytes()).await;
        Ok(())
    }

    /// One whole issuance: account (kept or new), order, challenges, certificate.
    async fn obtain(&self) -> Result<Issued, String> {
        let account = match self
            .get("account")
            .await
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            Some(b) => KeyPair::from_bytes(&b).map_err(|e| format!("stored account key: {e}"))?,
            None => {
                let k = KeyPair::generate(crate::rand::fill).map_err(|e| e.to_string())?;
                self.put("account", &k.to_bytes()).await;
                k
            }
        };
        let transport = HttpsTransport {
            net: self.net.clone(),
            tls: self.connector.clone(),
        };
        let mut client = Client::new(transport, &self.directory, account);
        match self
            .get("accounturl")
            .await
            .and_then(|u| String::from_utf8(u).ok())
        {
            Some(url) => client.set_account_url(&url),
            None => {
                let url = client
                    .register(self.email.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                log::info!("acme: account {url}");
                self.put("accounturl", url.as_bytes()).await;
            }
        }
        let cert_key = KeyPair::generate(crate::rand::fill).map_err(|e| e.to_string())?;
        let domains: Vec<&str> = self.domains.iter().map(String::as_str).collect();
        let mut responder = self.tokens.clone();
        match client
            .issue(&domains, &cert_key, &mut responder, &mut Sleeper)
            .await
        {
            Ok(i) => Ok(i),
            Err(e) => {
                // The CA forgot the account (a test CA restarted): register again next time.
                let forgotten = e
                    .problem()
                    .is_some_and(|p| p.kind.ends_with(":accountDoesNotExist"));
                if forgotten {
                    self.memory.borrow_mut().remove(&self.key("accounturl"));
                    if let Some(s) = &self.store
                        && let Err(d) = s.delete(&self.key("accounturl")).await
                    {
                        log::warn!("acme: forgetting the account in the store: {d}");
                    }
                }
                Err(e.to_string())
            }
        }
    }
}

fn days_left(not_after: i64) -> i64 {
    now().map_or(0, |t| (not_after - t) / 86_400)
}

struct Sleeper;

impl fata_acme::Sleep for Sleeper {
    async fn sleep(&mut self, d: core::time::Duration) {
        crate::time::sleep(d).await
    }
}

/// fata-acme's transport over [`https::request`].
struct HttpsTransport {
    net: Stack,
    tls: TlsConnector,
}

impl Transport for HttpsTransport {
    async fn request(&mut self, req: HttpRequest<'_>) -> Result<HttpResponse, TransportError> {
        let method = match req.method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
        };
        let mut headers = Vec::new();
        if let Some(ct) = req.content_type {
            headers.push(("Content-Type", ct));
        }
        let r = https::request(&self.net, &self.tls, method, req.url, &headers, req.body)
            .await
            .map_err(|e| TransportError(format!("{method} {}: {e}", req.url)))?;
        Ok(HttpResponse {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
    }
}
