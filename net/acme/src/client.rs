//! The ACME protocol flow (RFC 8555 §7) over the abstract [`Transport`]: directory, nonces,
//! newAccount, newOrder, http-01 authorizations, finalize with a CSR, polling, download.
//! Every server answer is parsed with the checked JSON/PEM/DER readers; every loop is bounded.

use crate::error::{BAD_NONCE, Error, Problem, Step};
use crate::json::{self, ObjectWriter, Value};
use crate::key::{self, JwsSigner, KeyPair};
use crate::transport::{Http01Responder, HttpRequest, HttpResponse, Method, Sleep, Transport};
use crate::{b64, csr, der, pem};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

/// The JOSE content type of every POST (RFC 8555 §6.2).
pub const JOSE_JSON: &str = "application/jose+json";

/// The URLs of a CA's directory (RFC 8555 §7.1.1) that this client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// `newNonce`
    pub new_nonce: String,
    /// `newAccount`
    pub new_account: String,
    /// `newOrder`
    pub new_order: String,
    /// `meta.termsOfService`, if the CA has one.
    pub terms_of_service: Option<String>,
}

impl Directory {
    /// Reads a directory object.
    pub fn parse(body: &[u8]) -> Option<Directory> {
        let v = json::parse(body).ok()?;
        Some(Directory {
            new_nonce: String::from(v.str_field("newNonce")?),
            new_account: String::from(v.str_field("newAccount")?),
            new_order: String::from(v.str_field("newOrder")?),
            terms_of_service: v
                .get("meta")
                .and_then(|m| m.str_field("termsOfService"))
                .map(String::from),
        })
    }
}

/// Limits of the client's polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// At most this many fetches of one authorization or order while waiting for it.
    pub max_polls: u32,
    /// The wait between polls when the server sends no `Retry-After`.
    pub poll_interval: Duration,
    /// `Retry-After` values above this are cut to it.
    pub max_retry_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_polls: 30,
            poll_interval: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// What a successful issuance returns.
#[derive(Clone)]
pub struct Issued {
    /// The certificate chain as the CA sent it, leaf first (PEM).
    pub chain_pem: String,
    /// The leaf and issuers, decoded (DER), leaf first.
    pub chain_der: Vec<Vec<u8>>,
    /// The certificate's private key, PKCS#8 DER.
    pub key_pkcs8_der: Vec<u8>,
    /// The same key as PEM (`PRIVATE KEY`).
    pub key_pem: String,
    /// The leaf's notBefore, Unix seconds.
    pub not_before: i64,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: i64,
}

impl core::fmt::Debug for Issued {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Issued")
            .field("chain_certificates", &self.chain_der.len())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key", &"<secret>")
            .finish()
    }
}

/// The validity of an X.509 certificate (DER): (notBefore, notAfter) in Unix seconds.
pub fn cert_validity(cert_der: &[u8]) -> Option<(i64, i64)> {
    der::cert_validity(cert_der)
}

/// An ACME client bound to one CA and one account key.
pub struct Client<T: Transport> {
    transport: T,
    directory_url: String,
    directory: Option<Directory>,
    key: KeyPair,
    account_url: Option<String>,
    nonce: Option<String>,
    config: Config,
}

enum Payload<'a> {
    Json(&'a [u8]),
    /// POST-as-GET: an empty payload (RFC 8555 §6.3).
    Empty,
}

impl<T: Transport> Client<T> {
    /// A client for the CA whose directory is at `directory_url`, acting with `account_key`.
    /// Nothing is sent until a method is called.
    pub fn new(transport: T, directory_url: &str, account_key: KeyPair) -> Self {
        Client {
            transport,
            directory_url: String::from(directory_url),
            directory: None,
            key: account_key,
            account_url: None,
            nonce: None,
            config: Config::default(),
        }
    }

    /// Replaces the polling limits.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The account key (persist [`KeyPair::to_bytes`] so a reboot reuses the account).
    pub fn account_key(&self) -> &KeyPair {
        &self.key
    }

    /// The account URL (`kid`) once registered.
    pub fn account_url(&self) -> Option<&str> {
        self.account_url.as_deref()
    }

    /// Sets a persisted account URL, which skips newAccount.
    pub fn set_account_url(&mut self, url: &str) {
        self.account_url = Some(String::from(url));
    }

    /// The transport, for reuse.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Fetches (once) and returns the directory.
    pub async fn directory(&mut self) -> Result<&Directory, Error> {
        if self.directory.is_none() {
            let step = Step::Directory;
            let req = HttpRequest {
                method: Method::Get,
                url: &self.directory_url,
                content_type: None,
                body: &[],
            };
            let resp = self
                .transport
                .request(req)
                .await
                .map_err(|error| Error::Transport { step, error })?;
            check_status(step, &resp)?;
            let dir = Directory::parse(&resp.body).ok_or(Error::Malformed {
                step,
                what: "not a directory (newNonce/newAccount/newOrder)",
            })?;
            self.directory = Some(dir);
        }
        // Set just above; the error arm is never taken.
        self.directory.as_ref().ok_or(Error::Malformed {
            step: Step::Directory,
            what: "no directory",
        })
    }

    async fn fresh_nonce(&mut self) -> Result<String, Error> {
        if let Some(n) = self.nonce.take() {
            return Ok(n);
        }
        let url = self.directory().await?.new_nonce.clone();
        let step = Step::NewNonce;
        let req = HttpRequest {
            method: Method::Head,
            url: &url,
            content_type: None,
            body: &[],
        };
        let resp = self
            .transport
            .request(req)
            .await
            .map_err(|error| Error::Transport { step, error })?;
        check_status(step, &resp)?;
        resp.header("Replay-Nonce")
            .filter(|n| is_nonce(n))
            .map(String::from)
            .ok_or(Error::Malformed {
                step,
                what: "no valid Replay-Nonce header",
            })
    }

    /// One signed POST; retries once on `badNonce`. Returns 2xx responses only.
    async fn post(
        &mut self,
        step: Step,
        url: &str,
        payload: Payload<'_>,
    ) -> Result<HttpResponse, Error> {
        let payload = match payload {
            Payload::Json(p) => p,
            Payload::Empty => &[][..],
        };
        let mut retried = false;
        loop {
            let nonce = self.fresh_nonce().await?;
            let signer = match (&self.account_url, step) {
                (Some(kid), s) if s != Step::NewAccount => JwsSigner::Kid(kid),
                _ => JwsSigner::Jwk,
            };
            let body = key::jws(&self.key, signer, &nonce, url, payload);
            let req = HttpRequest {
                method: Method::Post,
                url,
                content_type: Some(JOSE_JSON),
                body: body.as_bytes(),
            };
            let resp = self
                .transport
                .request(req)
                .await
                .map_err(|error| Error::Transport { step, error })?;
            self.nonce = resp
                .header("Replay-Nonce")
                .filter(|n| is_nonce(n))
                .map(String::from);
            match check_status(step, &resp) {
                Err(Error::Http {
                    problem: Some(p), ..
                }) if p.kind == BAD_NONCE && !retried => {
                    retried = true;
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(resp),
            }
        }
    }

    /// newAccount with `termsOfServiceAgreed: true` and an optional `mailto:` contact. An existing
    /// account for this key is found again (200) rather than duplicated. Returns the account URL.
    pub async fn register(&mut self, email: Option<&str>) -> Result<String, Error> {
        let url = self.directory().await?.new_account.clone();
        let mailto: Option<String> = email.map(|e| {
            let mut s = String::from("mailto:");
            s.push_str(e);
            s
        });
        let mut body = ObjectWriter::new().bool("termsOfServiceAgreed", true);
        if let Some(m) = &mailto {
            body = body.str_array("contact", &[m.as_str()]);
        }
        let body = body.finish();
        let step = Step::NewAccount;
        let resp = self
            .post(step, &url, Payload::Json(body.as_bytes()))
            .await?;
        let kid = resp.header("Location").ok_or(Error::Malformed {
            step,
            what: "no Location header (account URL)",
        })?;
        let v = parse_json(step, &resp)?;
        if v.str_field("status").is_some_and(|s| s != "valid") {
            return Err(Error::Malformed {
                step,
                what: "account is not valid (deactivated or revoked)",
            });
        }
        let kid = String::from(kid);
        self.account_url = Some(kid.clone());
        Ok(kid)
    }

    /// Obtains a certificate for `domains` (the first becomes the subject CN) with http-01,
    /// for the key `cert_key` (make it with [`KeyPair::generate`]). Registers first (without a
    /// contact) if [`Client::register`] was not called. `responder` is given each token and key
    /// authorization while its challenge is open; `sleep` waits between polls.
    pub async fn issue<R: Http01Responder, S: Sleep>(
        &mut self,
        domains: &[&str],
        cert_key: &KeyPair,
        responder: &mut R,
        sleep: &mut S,
    ) -> Result<Issued, Error> {
        // Check the names before anything is sent.
        let csr = csr::build(cert_key, domains)?;
        if self.account_url.is_none() {
            self.register(None).await?;
        }

        // newOrder
        let step = Step::NewOrder;
        let url = self.directory().await?.new_order.clone();
        let mut ids = String::from("[");
        for (i, d) in domains.iter().enumerate() {
            if i > 0 {
                ids.push(',');
            }
            ids.push_str(
                &ObjectWriter::new()
                    .str("type", "dns")
                    .str("value", d)
                    .finish(),
            );
        }
        ids.push(']');
        let body = ObjectWriter::new().raw("identifiers", &ids).finish();
        let resp = self
            .post(step, &url, Payload::Json(body.as_bytes()))
            .await?;
        let order_url = String::from(resp.header("Location").ok_or(Error::Malformed {
            step,
            what: "no Location header (order URL)",
        })?);
        let order = parse_json(step, &resp)?;
        check_order(&order)?;
        let authz_urls: Vec<String> = order
            .get("authorizations")
            .and_then(Value::as_array)
            .ok_or(Error::Malformed {
                step,
                what: "order has no authorizations",
            })?
            .iter()
            .map(|a| {
                a.as_str().map(String::from).ok_or(Error::Malformed {
                    step,
                    what: "authorization URL is not a string",
                })
            })
            .collect::<Result<_, _>>()?;
        let finalize_url = String::from(order.str_field("finalize").ok_or(Error::Malformed {
            step,
            what: "order has no finalize URL",
        })?);

        for authz_url in &authz_urls {
            self.authorize(authz_url, responder, sleep).await?;
        }

        // Wait for `ready`, then finalize.
        let order = self
            .poll_order(&order_url, &["ready", "valid", "processing"], sleep)
            .await?;
        let order = if order.str_field("status") == Some("ready") {
            let step = Step::Finalize;
            let body = ObjectWriter::new()
                .str("csr", &b64::encode_url(&csr))
                .finish();
            let resp = self
                .post(step, &finalize_url, Payload::Json(body.as_bytes()))
                .await?;
            let order = parse_json(step, &resp)?;
            check_order(&order)?;
            order
        } else {
            order
        };
        let order = if order.str_field("status") == Some("valid") {
            order
        } else {
            self.poll_order(&order_url, &["valid"], sleep).await?
        };

        // Download.
        let step = Step::Download;
        let cert_url = String::from(order.str_field("certificate").ok_or(Error::Malformed {
            step: Step::Order,
            what: "valid order has no certificate URL",
        })?);
        let resp = self.post(step, &cert_url, Payload::Empty).await?;
        let chain_pem = String::from_utf8(resp.body).map_err(|_| Error::Malformed {
            step,
            what: "certificate chain is not text",
        })?;
        let blocks = pem::parse_all(&chain_pem).map_err(|_| Error::Malformed {
            step,
            what: "certificate chain is not valid PEM",
        })?;
        let chain_der: Vec<Vec<u8>> = blocks
            .into_iter()
            .filter(|b| b.label == "CERTIFICATE")
            .map(|b| b.der)
            .collect();
        let leaf = chain_der.first().ok_or(Error::Malformed {
            step,
            what: "no CERTIFICATE in the chain",
        })?;
        let (not_before, not_after) = der::cert_validity(leaf).ok_or(Error::Malformed {
            step,
            what: "leaf certificate validity unreadable",
        })?;
        let point = cert_key.public_point();
        if !leaf.windows(point.len()).any(|w| w == point) {
            return Err(Error::Malformed {
                step,
                what: "leaf certificate is not for the requested key",
            });
        }
        let key_pkcs8_der = cert_key.to_pkcs8_der();
        let key_pem = pem::encode("PRIVATE KEY", &key_pkcs8_der);
        Ok(Issued {
            chain_pem,
            chain_der,
            key_pkcs8_der,
            key_pem,
            not_before,
            not_after,
        })
    }

    /// Completes one authorization with http-01 (nothing to do if it is already valid).
    async fn authorize<R: Http01Responder, S: Sleep>(
        &mut self,
        authz_url: &str,
        responder: &mut R,
        sleep: &mut S,
    ) -> Result<(), Error> {
        let step = Step::Authorization;
        let resp = self.post(step, authz_url, Payload::Empty).await?;
        let authz = parse_json(step, &resp)?;
        let domain = String::from(
            authz
                .get("identifier")
                .and_then(|i| i.str_field("value"))
                .unwrap_or("?"),
        );
        match authz.str_field("status") {
            Some("valid") => return Ok(()),
            Some("pending") => {}
            Some(_) => {
                return Err(Error::ChallengeFailed {
                    problem: challenge_problem(&authz),
                    domain,
                });
            }
            None => {
                return Err(Error::Malformed {
                    step,
                    what: "authorization has no status",
                });
            }
        }
        let challenges =
            authz
                .get("challenges")
                .and_then(Value::as_array)
                .ok_or(Error::Malformed {
                    step,
                    what: "authorization has no challenges",
                })?;
        let http01 = challenges
            .iter()
            .find(|c| c.str_field("type") == Some("http-01"))
            .ok_or_else(|| Error::NoHttp01 {
                domain: domain.clone(),
            })?;
        let chall_url = String::from(http01.str_field("url").ok_or(Error::Malformed {
            step,
            what: "challenge has no url",
        })?);
        let token = http01.str_field("token").ok_or(Error::Malformed {
            step,
            what: "challenge has no token",
        })?;
        // RFC 8555 §8.3: base64url characters only (it becomes a URL path segment).
        if token.is_empty() || token.len() > 256 || b64::decode_url(token).is_none() {
            return Err(Error::Malformed {
                step,
                what: "challenge token is not base64url",
            });
        }
        let token = String::from(token);
        let key_authz = key::key_authorization(&self.key, &token);
        responder.publish(&token, &key_authz);
        let result = self.validate(&chall_url, authz_url, &domain, sleep).await;
        responder.withdraw(&token);
        result
    }

    /// Tells the CA to validate, then polls the authorization until it is final.
    async fn validate<S: Sleep>(
        &mut self,
        chall_url: &str,
        authz_url: &str,
        domain: &str,
        sleep: &mut S,
    ) -> Result<(), Error> {
        let resp = self
            .post(Step::Challenge, chall_url, Payload::Json(b"{}"))
            .await?;
        let chall = parse_json(Step::Challenge, &resp)?;
        if chall.str_field("status") == Some("invalid") {
            return Err(Error::ChallengeFailed {
                domain: String::from(domain),
                problem: chall
                    .get("error")
                    .and_then(Problem::from_json)
                    .map(Box::new),
            });
        }
        let mut delay = self.retry_after(&resp);
        let step = Step::Authorization;
        for _ in 0..self.config.max_polls {
            sleep.sleep(delay).await;
            let resp = self.post(step, authz_url, Payload::Empty).await?;
            let authz = parse_json(step, &resp)?;
            match authz.str_field("status") {
                Some("valid") => return Ok(()),
                Some("pending" | "processing") => delay = self.retry_after(&resp),
                Some(_) => {
                    return Err(Error::ChallengeFailed {
                        domain: String::from(domain),
                        problem: challenge_problem(&authz),
                    });
                }
                None => {
                    return Err(Error::Malformed {
                        step,
                        what: "authorization has no status",
                    });
                }
            }
        }
        Err(Error::PollLimit {
            step,
            polls: self.config.max_polls,
        })
    }

    /// Polls the order until its status is one of `until` (or `invalid`, an error).
    async fn poll_order<S: Sleep>(
        &mut self,
        order_url: &str,
        until: &[&str],
        sleep: &mut S,
    ) -> Result<Value, Error> {
        let step = Step::Order;
        for i in 0..self.config.max_polls {
            let resp = self.post(step, order_url, Payload::Empty).await?;
            let order = parse_json(step, &resp)?;
            check_order(&order)?;
            let status = order.str_field("status").ok_or(Error::Malformed {
                step,
                what: "order has no status",
            })?;
            if until.contains(&status) {
                return Ok(order);
            }
            if i + 1 < self.config.max_polls {
                sleep.sleep(self.retry_after(&resp)).await;
            }
        }
        Err(Error::PollLimit {
            step,
            polls: self.config.max_polls,
        })
    }

    /// The server's `Retry-After` in seconds (capped), or the configured interval.
    fn retry_after(&self, resp: &HttpResponse) -> Duration {
        match resp
            .header("Retry-After")
            .and_then(|v| v.parse::<u64>().ok())
        {
            Some(s) => Duration::from_secs(s).min(self.config.max_retry_after),
            None => self.config.poll_interval,
        }
    }
}

fn is_nonce(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 512
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_status(step: Step, resp: &HttpResponse) -> Result<(), Error> {
    if (200..300).contains(&resp.status) {
        Ok(())
    } else {
        Err(Error::Http {
            step,
            status: resp.status,
            problem: Problem::from_body(&resp.body).map(Box::new),
        })
    }
}

fn parse_json(step: Step, resp: &HttpResponse) -> Result<Value, Error> {
    match json::parse(&resp.body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Error::Malformed {
            step,
            what: "response is not a JSON object",
        }),
        Err(_) => Err(Error::Malformed {
            step,
            what: "response is not valid JSON",
        }),
    }
}

fn check_order(order: &Value) -> Result<(), Error> {
    if order.str_field("status") == Some("invalid") {
        return Err(Error::OrderInvalid {
            problem: order
                .get("error")
                .and_then(Problem::from_json)
                .map(Box::new),
        });
    }
    Ok(())
}

/// The first challenge `error` in an authorization.
fn challenge_problem(authz: &Value) -> Option<Box<Problem>> {
    authz
        .get("challenges")?
        .as_array()?
        .iter()
        .find_map(|c| c.get("error").and_then(Problem::from_json))
        .map(Box::new)
}
