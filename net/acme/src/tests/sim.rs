//! A simulated ACME CA implementing [`Transport`]: strict about what a real CA checks, and told
//! by [`Faults`] how to misbehave.

use crate::der::{self, Reader, tag};
use crate::json::{self, ObjectWriter, Value};
use crate::{
    Http01Tokens, HttpRequest, HttpResponse, KeyPair, Method, Transport, TransportError, b64, pem,
};
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Ref, RefCell};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

pub const BASE: &str = "https://ca.test";
pub const DIRECTORY: &str = "https://ca.test/dir";
pub const NEW_ACCOUNT: &str = "https://ca.test/new-acct";
pub const NEW_ORDER: &str = "https://ca.test/new-order";
pub const ACCOUNT_URL: &str = "https://ca.test/acct/1";
/// 2026-01-01T00:00:00Z and 2026-04-01T00:00:00Z.
pub const NOT_BEFORE: i64 = 1_767_225_600;
pub const NOT_AFTER: i64 = 1_775_001_600;
/// 2050-01-01T00:00:00Z (GeneralizedTime).
pub const NOT_AFTER_2050: i64 = 2_524_608_000;

#[derive(Default, Clone)]
pub struct Faults {
    pub challenge_invalid: bool,
    /// Refuse this many good nonces (badNonce) on the first POSTs.
    pub bad_nonce: u32,
    /// 503 with a problem document on this path.
    pub fail_path: Option<&'static str>,
    /// 200 with broken JSON on this path.
    pub malformed_path: Option<&'static str>,
    /// Cut every response body to this many bytes.
    pub truncate_all: Option<usize>,
    pub never_finish: bool,
    /// Authorization stays pending for this many polls after the challenge POST (and the order
    /// processing for as many after finalize).
    pub pending_polls: u32,
    pub retry_after: Option<u64>,
    pub no_http01: bool,
    pub authz_valid: bool,
    pub order_invalid: bool,
    pub wrong_cert_key: bool,
    pub transport_down: bool,
    pub generalized_not_after: bool,
}

struct Authz {
    domain: String,
    token: String,
    status: &'static str,
    polls_left: u32,
    error: Option<String>,
}

struct Order {
    authzs: Vec<usize>,
    finalized: bool,
    polls_left: u32,
    cert_pem: Option<String>,
}

#[derive(Default)]
pub struct State {
    pub log: Vec<String>,
    nonces: Vec<String>,
    next_nonce: u64,
    account_key: Option<VerifyingKey>,
    pub thumbprint: String,
    pub contact: Vec<String>,
    pub accounts_created: u32,
    authzs: Vec<Authz>,
    orders: Vec<Order>,
    pub csr_names: Vec<String>,
    pub validated: u32,
    pub served: Vec<(String, String)>,
    pub bad_nonces_sent: u32,
    faults: Faults,
}

#[derive(Clone)]
pub struct Sim {
    state: Rc<RefCell<State>>,
    tokens: Http01Tokens,
}

fn problem(status: u16, kind: &str, detail: &str) -> HttpResponse {
    let body = ObjectWriter::new()
        .str("type", &format!("urn:ietf:params:acme:error:{kind}"))
        .str("detail", detail)
        .raw("status", &status.to_string())
        .finish();
    HttpResponse {
        status,
        headers: vec![("Content-Type".into(), "application/problem+json".into())],
        body: body.into_bytes(),
    }
}

fn ok(status: u16, body: String) -> HttpResponse {
    HttpResponse {
        status,
        headers: Vec::new(),
        body: body.into_bytes(),
    }
}

impl Sim {
    pub fn new(faults: Faults, tokens: Http01Tokens) -> Self {
        Sim {
            state: Rc::new(RefCell::new(State {
                faults,
                ..State::default()
            })),
            tokens,
        }
    }

    pub fn state(&self) -> Ref<'_, State> {
        self.state.borrow()
    }

    pub fn issue_nonce(&self) -> String {
        let mut s = self.state.borrow_mut();
        s.next_nonce += 1;
        let n = b64::encode_url(&s.next_nonce.to_be_bytes());
        s.nonces.push(n.clone());
        n
    }

    fn handle(&self, req: &HttpRequest<'_>) -> HttpResponse {
        let Some(path) = req.url.strip_prefix(BASE) else {
            return problem(404, "malformed", "unknown host");
        };
        let faults = self.state.borrow().faults.clone();
        if faults.fail_path == Some(path) {
            return problem(503, "serverInternal", "simulated outage");
        }
        let mut resp = match (req.method, path) {
            (Method::Get, "/dir") => ok(
                200,
                format!(
                    r#"{{"newNonce":"{BASE}/nonce","newAccount":"{NEW_ACCOUNT}","newOrder":"{NEW_ORDER}","meta":{{"termsOfService":"{BASE}/tos"}}}}"#
                ),
            ),
            (Method::Head, "/nonce") => ok(200, String::new()),
            (Method::Post, _) => self.post(req, path),
            _ => problem(405, "malformed", "method not allowed"),
        };
        if faults.malformed_path == Some(path) {
            resp = ok(200, String::from(r#"{"status": "val"#));
        }
        if let Some(cut) = faults.truncate_all {
            resp.body.truncate(cut);
        }
        resp
    }

    fn post(&self, req: &HttpRequest<'_>, path: &str) -> HttpResponse {
        if req.content_type != Some(crate::JOSE_JSON) {
            return problem(415, "malformed", "expected application/jose+json");
        }
        let Ok(jws) = json::parse(req.body) else {
            return problem(400, "malformed", "JWS is not JSON");
        };
        let (Some(p64), Some(pay64), Some(sig64)) = (
            jws.str_field("protected"),
            jws.str_field("payload"),
            jws.str_field("signature"),
        ) else {
            return problem(400, "malformed", "JWS lacks a member");
        };
        let Some(prot) = b64::decode_url(p64).and_then(|p| json::parse(&p).ok()) else {
            return problem(400, "malformed", "protected header");
        };
        let Some(payload) = b64::decode_url(pay64) else {
            return problem(400, "malformed", "payload");
        };
        let Some(sig) = b64::decode_url(sig64).and_then(|s| Signature::from_slice(&s).ok()) else {
            return problem(400, "malformed", "signature is not 64 bytes r||s");
        };
        if prot.str_field("alg") != Some("ES256") {
            return problem(400, "badSignatureAlgorithm", "ES256 expected");
        }
        if prot.str_field("url") != Some(req.url) {
            return problem(
                400,
                "malformed",
                "url header does not match the request URL",
            );
        }
        // Nonce: issued by us and never used before.
        let nonce = prot.str_field("nonce").unwrap_or("");
        {
            let mut s = self.state.borrow_mut();
            let Some(pos) = s.nonces.iter().position(|n| n == nonce) else {
                drop(s);
                return problem(400, "badNonce", "unknown or reused nonce");
            };
            s.nonces.remove(pos);
            if s.bad_nonces_sent < s.faults.bad_nonce {
                s.bad_nonces_sent += 1;
                drop(s);
                return problem(
                    400,
                    "badNonce",
                    "JWS has an invalid anti-replay nonce (simulated)",
                );
            }
        }
        // Signer: jwk only for newAccount, kid (the account URL) afterwards.
        let key = if path == "/new-acct" {
            if prot.get("kid").is_some() {
                return problem(400, "malformed", "newAccount must use jwk");
            }
            let Some(jwk) = prot.get("jwk") else {
                return problem(400, "malformed", "no jwk");
            };
            let (Some(x), Some(y)) = (
                jwk.str_field("x").and_then(b64::decode_url),
                jwk.str_field("y").and_then(b64::decode_url),
            ) else {
                return problem(400, "malformed", "jwk coordinates");
            };
            if jwk.str_field("kty") != Some("EC")
                || jwk.str_field("crv") != Some("P-256")
                || x.len() != 32
                || y.len() != 32
            {
                return problem(400, "badPublicKey", "P-256 EC key expected");
            }
            let Ok(vk) = VerifyingKey::from_sec1_bytes(&[&[4u8][..], &x, &y].concat()) else {
                return problem(400, "badPublicKey", "not on the curve");
            };
            // Thumbprint computed here, independently of the client's canonical JWK writer.
            let canonical = format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64::encode_url(&x),
                b64::encode_url(&y)
            );
            self.state.borrow_mut().thumbprint =
                b64::encode_url(&Sha256::digest(canonical.as_bytes()));
            vk
        } else {
            if prot.get("jwk").is_some() {
                return problem(400, "malformed", "jwk after registration: use kid");
            }
            let Some(vk) = self.state.borrow().account_key else {
                return problem(400, "accountDoesNotExist", "no account");
            };
            if prot.str_field("kid") != Some(ACCOUNT_URL) {
                return problem(400, "malformed", "kid is not the account URL");
            }
            vk
        };
        let signing_input = format!("{p64}.{pay64}");
        if key.verify(signing_input.as_bytes(), &sig).is_err() {
            return problem(401, "unauthorized", "signature does not verify");
        }
        let mut resp = self.route(path, &payload, key);
        let retry_after = self.state.borrow().faults.retry_after;
        if let Some(s) = retry_after {
            resp.headers.push(("Retry-After".into(), s.to_string()));
        }
        resp
    }

    fn route(&self, path: &str, payload: &[u8], key: VerifyingKey) -> HttpResponse {
        let post_as_get = payload.is_empty();
        let body = if post_as_get {
            Value::Null
        } else {
            match json::parse(payload) {
                Ok(v) => v,
                Err(_) => return problem(400, "malformed", "payload is not JSON"),
            }
        };
        let mut s = self.state.borrow_mut();
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segs.as_slice() {
            ["new-acct"] => {
                if body.get("termsOfServiceAgreed").and_then(Value::as_bool) != Some(true) {
                    return problem(400, "userActionRequired", "terms of service not agreed");
                }
                let status = if s.account_key == Some(key) {
                    200
                } else {
                    if s.account_key.is_some() {
                        return problem(409, "malformed", "one account per simulator");
                    }
                    s.account_key = Some(key);
                    s.accounts_created += 1;
                    s.contact = body
                        .get("contact")
                        .and_then(Value::as_array)
                        .unwrap_or(&[])
                        .iter()
                        .filter_map(|c| c.as_str().map(String::from))
                        .collect();
                    201
                };
                let mut r = ok(status, String::from(r#"{"status":"valid"}"#));
                r.headers.push(("Location".into(), ACCOUNT_URL.into()));
                r
            }
            ["new-order"] => {
                let Some(ids) = body.get("identifiers").and_then(Value::as_array) else {
                    return problem(400, "malformed", "identifiers");
                };
                let mut authzs = Vec::new();
                for id in ids {
                    if id.str_field("type") != Some("dns") {
                        return problem(400, "unsupportedIdentifier", "dns only");
                    }
                    let Some(domain) = id.str_field("value") else {
                        return problem(400, "malformed", "value");
                    };
                    let n = s.authzs.len() + 1;
                    let (status, polls) = if s.faults.authz_valid {
                        ("valid", 0)
                    } else {
                        ("pending", s.faults.pending_polls)
                    };
                    s.authzs.push(Authz {
                        domain: domain.into(),
                        token: b64::encode_url(&Sha256::digest(format!("tok{n}").as_bytes())),
                        status,
                        polls_left: polls,
                        error: None,
                    });
                    authzs.push(n - 1);
                }
                let polls = s.faults.pending_polls;
                s.orders.push(Order {
                    authzs,
                    finalized: false,
                    polls_left: polls,
                    cert_pem: None,
                });
                let n = s.orders.len();
                let mut r = ok(201, order_json(&s, n));
                r.headers
                    .push(("Location".into(), format!("{BASE}/order/{n}")));
                r
            }
            ["authz", n] => {
                if !post_as_get {
                    return problem(400, "malformed", "POST-as-GET expected");
                }
                let Some(i) = n
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .filter(|&i| i < s.authzs.len())
                else {
                    return problem(404, "malformed", "no authz");
                };
                let never = s.faults.never_finish;
                let a = &mut s.authzs[i];
                if a.status == "processing" && !never {
                    if a.polls_left == 0 {
                        a.status = "valid"
                    } else {
                        a.polls_left -= 1
                    }
                }
                let a = &s.authzs[i];
                let status = if a.status == "processing" {
                    "pending"
                } else {
                    a.status
                };
                ok(200, authz_json(a, i + 1, status, s.faults.no_http01))
            }
            ["chall", n] => {
                if payload != b"{}" {
                    return problem(400, "malformed", "challenge payload must be {}");
                }
                let Some(i) = n
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .filter(|&i| i < s.authzs.len())
                else {
                    return problem(404, "malformed", "no challenge");
                };
                // "Fetch" http://<domain>/.well-known/acme-challenge/<token> from the client's responder.
                let token = s.authzs[i].token.clone();
                let served = self
                    .tokens
                    .answer(&format!("/.well-known/acme-challenge/{token}"));
                let expected = format!("{token}.{}", s.thumbprint);
                if let Some(body) = &served {
                    s.served.push((token.clone(), body.clone()));
                }
                let refuse = s.faults.challenge_invalid;
                let a = &mut s.authzs[i];
                if served.as_deref() != Some(expected.as_str()) || refuse {
                    a.status = "invalid";
                    a.error = Some(format!(
                        "The key authorization file from the server did not match this challenge {expected:?} != {served:?}"
                    ));
                } else {
                    a.status = "processing";
                    s.validated += 1;
                }
                let a = &s.authzs[i];
                // Like pebble: the answer says "processing"; the outcome shows when the authorization is polled.
                let chall = "processing";
                ok(
                    200,
                    format!(
                        r#"{{"type":"http-01","url":"{BASE}/chall/{}","token":"{}","status":"{chall}"}}"#,
                        i + 1,
                        a.token
                    ),
                )
            }
            ["order", n] => {
                if !post_as_get {
                    return problem(400, "malformed", "POST-as-GET expected");
                }
                let Some(i) = n
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .filter(|&i| i < s.orders.len())
                else {
                    return problem(404, "malformed", "no order");
                };
                if s.orders[i].finalized && s.orders[i].polls_left > 0 {
                    s.orders[i].polls_left -= 1;
                }
                ok(200, order_json(&s, i + 1))
            }
            ["order", n, "finalize"] => {
                let Some(i) = n
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .filter(|&i| i < s.orders.len())
                else {
                    return problem(404, "malformed", "no order");
                };
                if !order_status(&s, i).eq("ready") {
                    return problem(403, "orderNotReady", "order is not ready");
                }
                let Some(csr) = body.str_field("csr").and_then(b64::decode_url) else {
                    return problem(400, "badCSR", "csr");
                };
                let Some((spki, names)) = verify_csr(&csr) else {
                    return problem(400, "badCSR", "CSR does not parse or verify");
                };
                let mut wanted: Vec<String> = s.orders[i]
                    .authzs
                    .iter()
                    .map(|&a| s.authzs[a].domain.clone())
                    .collect();
                let mut got = names.clone();
                wanted.sort();
                got.sort();
                if wanted != got {
                    return problem(400, "badCSR", "CSR names differ from the order");
                }
                s.csr_names = names;
                let spki = if s.faults.wrong_cert_key {
                    let other = KeyPair::from_bytes(&[0x44; 32]).unwrap();
                    crate::der::seq(&[
                        &crate::der::seq(&[
                            &der::oid(&[1, 2, 840, 10045, 2, 1]),
                            &der::oid(&[1, 2, 840, 10045, 3, 1, 7]),
                        ]),
                        &der::bit_string(&other.public_point()),
                    ])
                } else {
                    spki
                };
                let leaf = make_cert(&s.csr_names[0], &spki, s.faults.generalized_not_after);
                let ca = make_cert("Simulated CA", &der::seq(&[]), false);
                s.orders[i].cert_pem =
                    Some(pem::encode("CERTIFICATE", &leaf) + &pem::encode("CERTIFICATE", &ca));
                s.orders[i].finalized = true;
                ok(200, order_json(&s, i + 1))
            }
            ["cert", n] => {
                if !post_as_get {
                    return problem(400, "malformed", "POST-as-GET expected");
                }
                let pem = n
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|i| s.orders.get(i))
                    .and_then(|o| o.cert_pem.clone());
                match pem {
                    Some(p) => {
                        let mut r = ok(200, p);
                        r.headers.push((
                            "Content-Type".into(),
                            "application/pem-certificate-chain".into(),
                        ));
                        r
                    }
                    None => problem(404, "malformed", "no certificate"),
                }
            }
            _ => problem(404, "malformed", "no such resource"),
        }
    }
}

fn authz_json(a: &Authz, n: usize, status: &str, no_http01: bool) -> String {
    let chall_status = match status {
        "valid" => "valid",
        "invalid" => "invalid",
        _ => "pending",
    };
    let error = match &a.error {
        Some(d) => format!(
            r#","error":{{"type":"urn:ietf:params:acme:error:unauthorized","detail":{},"status":403}}"#,
            quote(d)
        ),
        None => String::new(),
    };
    let http01 = if no_http01 {
        String::new()
    } else {
        format!(
            r#",{{"type":"http-01","url":"{BASE}/chall/{n}","token":"{}","status":"{chall_status}"{error}}}"#,
            a.token
        )
    };
    format!(
        r#"{{"status":"{status}","identifier":{{"type":"dns","value":{}}},"challenges":[{{"type":"dns-01","url":"{BASE}/dns/{n}","token":"x","status":"pending"}}{http01}]}}"#,
        quote(&a.domain)
    )
}

fn quote(s: &str) -> String {
    let mut out = String::new();
    json::write_str(&mut out, s);
    out
}

fn order_status(s: &State, i: usize) -> &'static str {
    let o = &s.orders[i];
    if s.faults.order_invalid && o.finalized {
        return "invalid";
    }
    if o.authzs.iter().any(|&a| s.authzs[a].status == "invalid") {
        return "invalid";
    }
    if o.finalized {
        return if o.polls_left > 0 || s.faults.never_finish {
            "processing"
        } else {
            "valid"
        };
    }
    if o.authzs.iter().all(|&a| s.authzs[a].status == "valid") {
        "ready"
    } else {
        "pending"
    }
}

fn order_json(s: &State, n: usize) -> String {
    let status = order_status(s, n - 1);
    let o = &s.orders[n - 1];
    let authz: Vec<String> = o
        .authzs
        .iter()
        .map(|a| format!("\"{BASE}/authz/{}\"", a + 1))
        .collect();
    let ids: Vec<String> = o
        .authzs
        .iter()
        .map(|&a| format!(r#"{{"type":"dns","value":{}}}"#, quote(&s.authzs[a].domain)))
        .collect();
    let cert = if status == "valid" {
        format!(r#","certificate":"{BASE}/cert/{n}""#)
    } else {
        String::new()
    };
    let error = if status == "invalid" && s.faults.order_invalid {
        String::from(
            r#","error":{"type":"urn:ietf:params:acme:error:badCSR","detail":"simulated refusal"}"#,
        )
    } else {
        String::new()
    };
    format!(
        r#"{{"status":"{status}","identifiers":[{}],"authorizations":[{}],"finalize":"{BASE}/order/{n}/finalize"{cert}{error}}}"#,
        ids.join(","),
        authz.join(",")
    )
}

/// Parses a CSR, verifies its signature; returns (SPKI TLV, SAN DNS names).
fn verify_csr(csr: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    let mut req = Reader::new(csr).sequence()?;
    let info = req.read(tag::SEQUENCE)?;
    let mut alg = req.sequence()?;
    if alg.read(tag::OID)? != [0x2A, 0x86, 0x48, 0xCE, 0x3D, 4, 3, 2] {
        return None;
    }
    let sig = req.read(tag::BIT_STRING)?;
    let mut r = Reader::new(info);
    r.read(tag::INTEGER)?;
    r.sequence()?;
    let spki_content = r.read(tag::SEQUENCE)?;
    let mut spki = Reader::new(spki_content);
    spki.sequence()?;
    let point = spki.read(tag::BIT_STRING)?;
    let vk = VerifyingKey::from_sec1_bytes(point.get(1..)?).ok()?;
    let sig = Signature::from_der(sig.get(1..)?).ok()?;
    vk.verify(&der::tlv(tag::SEQUENCE, info), &sig).ok()?;
    let mut attrs = Reader::new(r.read(0xA0)?);
    let mut attr = attrs.sequence()?;
    attr.read(tag::OID)?;
    let mut set = Reader::new(attr.read(tag::SET)?);
    let mut exts = set.sequence()?;
    let mut ext = exts.sequence()?;
    if ext.read(tag::OID)? != [0x55, 0x1D, 0x11] {
        return None;
    }
    let mut names = Reader::new(ext.read(tag::OCTET_STRING)?).sequence()?;
    let mut out = Vec::new();
    while !names.is_empty() {
        out.push(String::from_utf8(names.read(0x82)?.to_vec()).ok()?);
    }
    Some((der::tlv(tag::SEQUENCE, spki_content), out))
}

/// An X.509 v3 certificate signed by the simulator's CA key. An empty `spki` means the CA's own.
fn make_cert(cn: &str, spki: &[u8], generalized: bool) -> Vec<u8> {
    let ca = KeyPair::from_bytes(&[0x55; 32]).unwrap();
    let ca_spki = der::seq(&[
        &der::seq(&[
            &der::oid(&[1, 2, 840, 10045, 2, 1]),
            &der::oid(&[1, 2, 840, 10045, 3, 1, 7]),
        ]),
        &der::bit_string(&ca.public_point()),
    ]);
    let spki = if spki.len() <= 2 {
        ca_spki
    } else {
        spki.to_vec()
    };
    let name = |cn: &str| {
        der::seq(&[&der::cons(
            tag::SET,
            &[&der::seq(&[
                &der::oid(&[2, 5, 4, 3]),
                &der::tlv(tag::UTF8_STRING, cn.as_bytes()),
            ])],
        )])
    };
    let alg = der::seq(&[&der::oid(&[1, 2, 840, 10045, 4, 3, 2])]);
    let not_after = if generalized {
        der::tlv(tag::GENERALIZED_TIME, b"20500101000000Z")
    } else {
        der::tlv(tag::UTC_TIME, b"260401000000Z")
    };
    let validity = der::seq(&[&der::tlv(tag::UTC_TIME, b"260101000000Z"), &not_after]);
    let tbs = der::seq(&[
        &der::cons(0xA0, &[&der::uint(&[2])]),
        &der::uint(&[0x01, 0x23, 0x45]),
        &alg,
        &name("Simulated CA"),
        &validity,
        &name(cn),
        &spki,
    ]);
    let sig = ca.sign(&tbs);
    der::seq(&[&tbs, &alg, &der::bit_string(sig.to_der().as_bytes())])
}

impl Transport for Sim {
    async fn request(&mut self, req: HttpRequest<'_>) -> Result<HttpResponse, TransportError> {
        if self.state.borrow().faults.transport_down {
            return Err(TransportError("connection refused (simulated)".into()));
        }
        let path = req.url.strip_prefix(BASE).unwrap_or(req.url);
        let method = match req.method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
        };
        self.state.borrow_mut().log.push(format!("{method} {path}"));
        let mut resp = self.handle(&req);
        let nonce = self.issue_nonce();
        resp.headers.push(("Replay-Nonce".into(), nonce));
        Ok(resp)
    }
}
