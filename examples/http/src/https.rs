//! The site over HTTPS (cargo feature `https`, on by default): the certificate from the boot
//! keys, from files embedded at build time, or from an ACME CA; the HTTPS listener; the
//! answers to the CA's http-01 challenges and the redirect for the plain-HTTP side.

use crate::{Config, TLS_CONNECTIONS, accept_loop, serve_connection};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use fata::net::acme::Acme;
use fata::net::tls::{CertStore, Identity, TlsAcceptor};
use fata::net::{Stack, TcpListener};
use fata::time::Duration;
use fata_http::{Request, RequestTimer};

include!(concat!(env!("OUT_DIR"), "/tls.rs"));

/// What the plain-HTTP side needs from the HTTPS side.
#[derive(Clone)]
pub struct Https {
    certs: Arc<CertStore>,
    acme: Option<Acme>,
    /// `redirect_https`: the port to redirect to.
    redirect: Option<u16>,
}

pub use fata::net::tls::counters;

impl Https {
    /// Loads the certificate (or starts ACME) and, when there is one, starts serving HTTPS
    /// on `https_port` in a task of its own.
    pub async fn start(net: &Stack, cfg: &Config, timer: RequestTimer) -> Result<Https, String> {
        let certs = CertStore::new();
        let source = load_certificate(&certs)?;
        let acme = if source.is_none() && Acme::configured() {
            let store = open_store().await;
            Acme::start(net.clone(), certs.clone(), store).map_err(|e| format!("acme: {e}"))?
        } else {
            None
        };
        if source.is_some() || acme.is_some() {
            let tls = TlsAcceptor::new(certs.clone()).map_err(|e| format!("https: {e}"))?;
            let (net, certs, port) = (net.clone(), certs.clone(), cfg.https_port);
            let limit = cfg.request_timeout;
            fata::spawn(async move {
                // Listen only once there is a certificate (ACME may take a while), so the
                // readiness line means HTTPS works.
                while certs.is_empty() {
                    fata::time::sleep(Duration::from_millis(200)).await;
                }
                match net.listen(port) {
                    Ok(l) => {
                        fata::log::info!(
                            "https: serving on port {port} with the certificate from {}",
                            source.unwrap_or("ACME")
                        );
                        let _ = serve_tls(l, tls, net, timer, limit).await;
                    }
                    Err(e) => fata::log::error!("https: listen on {port}: {e}"),
                }
            });
        }
        Ok(Https {
            certs,
            acme,
            redirect: cfg.redirect_https.then_some(cfg.https_port),
        })
    }

    /// The answer to an ACME http-01 challenge for `path`, if one is under way.
    pub fn challenge(&self, path: &str) -> Option<String> {
        self.acme.as_ref()?.answer(path)
    }

    /// Where to redirect `req` (`redirect_https=true`), while a certificate is held.
    pub fn redirect(&self, req: &Request<'_>) -> Option<String> {
        let port = self.redirect.filter(|_| !self.certs.is_empty())?;
        fata_http::https_location(req, port)
    }
}

/// Accepts connections on `listener` and serves each over TLS in its own task (the
/// handshake, bounded by `tls_handshake_timeout`, runs in that task too).
async fn serve_tls(
    listener: TcpListener,
    tls: TlsAcceptor,
    net: Stack,
    timer: RequestTimer,
    write_limit: Duration,
) -> Result<(), String> {
    accept_loop(listener, net, &TLS_CONNECTIONS, move |conn, net| {
        let tls = tls.clone();
        async move {
            if let Ok(conn) = tls.accept(conn).await {
                serve_connection(conn, net, timer, write_limit, None).await;
            }
        }
    })
    .await
}

/// The key-value store on the attached disk, for ACME's account and certificate; `None`
/// (with a note) when there is no usable disk.
async fn open_store() -> Option<fata::kv::Store> {
    match fata::kv::open().await {
        Ok(s) => Some(s),
        Err(e) => {
            fata::log::info!("acme: no store ({e}): the certificate is not kept across boots");
            None
        }
    }
}

/// Puts the configured certificate into `certs`: the boot keys' first, else the one
/// embedded at build time. Returns where it came from, `None` when there is none.
fn load_certificate(certs: &CertStore) -> Result<Option<&'static str>, String> {
    let (id, source) = match fata::net::tls::boot_identity().map_err(|e| e.to_string())? {
        Some(id) => (id, "the boot keys"),
        None => match EMBEDDED_TLS {
            Some((cert, key)) => (
                Identity::from_pem(cert, key).map_err(|e| format!("embedded certificate: {e}"))?,
                "the image (embedded at build time)",
            ),
            None => return Ok(None),
        },
    };
    certs
        .insert(&id)
        .map_err(|e| format!("certificate from {source}: {e}"))?;
    Ok(Some(source))
}
