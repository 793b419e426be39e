//! Host tests of the whole ACME flow against a simulated CA ([`sim::Sim`]) that checks every JWS
//! (ES256 signature, protected header, nonce freshness, `jwk` for newAccount and `kid` after),
//! validates http-01 through the client's [`Http01Tokens`], verifies the CSR and issues a real
//! X.509 certificate — and can be told to misbehave.

mod sim;

use crate::{Client, Config, Error, Http01Tokens, KeyPair, Sleep, Step, Transport, cert_validity};
use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use sim::{Faults, Sim};

/// Runs a future whose leaves (simulated transport, recording sleep) never return `Pending`.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("future did not complete: something awaited a real event");
}

/// A sleep that records what it was asked to wait.
#[derive(Default)]
struct RecordingSleep(Vec<Duration>);

impl Sleep for RecordingSleep {
    async fn sleep(&mut self, d: Duration) {
        self.0.push(d);
    }
}

fn account_key() -> KeyPair {
    KeyPair::from_bytes(&[0x11; 32]).unwrap()
}

fn cert_key() -> KeyPair {
    KeyPair::from_bytes(&[0x22; 32]).unwrap()
}

struct Run {
    result: Result<crate::Issued, Error>,
    sim: Sim,
    tokens: Http01Tokens,
    sleeps: Vec<Duration>,
    account_url: Option<String>,
}

fn run(faults: Faults, domains: &[&str], config: Config) -> Run {
    let tokens = Http01Tokens::new();
    let sim = Sim::new(faults, tokens.clone());
    let mut client = Client::new(sim.clone(), sim::DIRECTORY, account_key()).with_config(config);
    let mut responder = tokens.clone();
    let mut sleep = RecordingSleep::default();
    let result = block_on(async {
        client.register(Some("admin@example.org")).await?;
        client
            .issue(domains, &cert_key(), &mut responder, &mut sleep)
            .await
    });
    Run {
        result,
        account_url: client.account_url().map(String::from),
        sim,
        tokens,
        sleeps: sleep.0,
    }
}

fn quick() -> Config {
    Config {
        max_polls: 5,
        poll_interval: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(60),
    }
}

#[test]
fn issues_a_certificate_for_two_domains_end_to_end() {
    let r = run(
        Faults::default(),
        &["example.org", "www.example.org"],
        quick(),
    );
    let issued = r.result.unwrap();
    assert_eq!(issued.chain_der.len(), 2, "leaf + issuer");
    assert_eq!(
        (issued.not_before, issued.not_after),
        (sim::NOT_BEFORE, sim::NOT_AFTER)
    );
    assert_eq!(
        cert_validity(&issued.chain_der[0]),
        Some((sim::NOT_BEFORE, sim::NOT_AFTER))
    );
    assert!(
        issued
            .chain_pem
            .matches("-----BEGIN CERTIFICATE-----")
            .count()
            == 2
    );
    // The key handed back is the one the certificate is for.
    use p256::pkcs8::DecodePrivateKey;
    let back = p256::ecdsa::SigningKey::from_pkcs8_der(&issued.key_pkcs8_der).unwrap();
    assert_eq!(back.to_bytes()[..], cert_key().to_bytes());
    assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let state = r.sim.state();
    assert_eq!(state.csr_names, ["example.org", "www.example.org"]);
    assert_eq!(state.contact, ["mailto:admin@example.org"]);
    assert_eq!(
        state.validated, 2,
        "both http-01 answers matched token.thumbprint"
    );
    assert_eq!(r.account_url.as_deref(), Some(sim::ACCOUNT_URL));
    assert!(r.tokens.is_empty(), "tokens withdrawn after validation");
    // One newNonce at the start; afterwards every response's Replay-Nonce is used.
    assert_eq!(
        state.log.iter().filter(|l| l.starts_with("HEAD")).count(),
        1,
        "{:?}",
        state.log
    );
    assert_eq!(
        state.log[..4],
        [
            "GET /dir",
            "HEAD /nonce",
            "POST /new-acct",
            "POST /new-order"
        ]
    );
    assert_eq!(state.log.last().map(String::as_str), Some("POST /cert/1"));
    assert!(issued.chain_pem.len() > 500);
    assert!(
        !alloc::format!("{issued:?}").contains("BEGIN PRIVATE"),
        "Debug hides the key"
    );
}

#[test]
fn http01_answer_is_published_only_while_its_challenge_is_open() {
    let r = run(Faults::default(), &["example.org"], quick());
    r.result.unwrap();
    let state = r.sim.state();
    // The simulated validator fetched token.thumbprint, with the thumbprint it computed itself
    // from the JWK of the newAccount request.
    assert_eq!(state.served.len(), 1);
    let (token, body) = &state.served[0];
    assert_eq!(body, &alloc::format!("{token}.{}", state.thumbprint));
    assert!(
        r.tokens
            .answer(&alloc::format!("/.well-known/acme-challenge/{token}"))
            .is_none()
    );
}

#[test]
fn invalid_challenge_reports_the_servers_problem_and_withdraws_the_token() {
    let r = run(
        Faults {
            challenge_invalid: true,
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    let e = r.result.unwrap_err();
    let p = e.problem().unwrap();
    assert_eq!(p.kind, "urn:ietf:params:acme:error:unauthorized");
    let text = alloc::format!("{e}");
    assert!(
        text.starts_with("ACME challenge: example.org could not be validated: "),
        "{text}"
    );
    assert!(
        text.contains("urn:ietf:params:acme:error:unauthorized: The key authorization file"),
        "{text}"
    );
    assert!(r.tokens.is_empty());
}

#[test]
fn bad_nonce_is_retried_once_with_the_nonce_from_the_error() {
    let r = run(
        Faults {
            bad_nonce: 1,
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    r.result.unwrap();
    let state = r.sim.state();
    assert_eq!(state.bad_nonces_sent, 1);
    assert_eq!(
        state.log.iter().filter(|l| l.starts_with("HEAD")).count(),
        1,
        "retry used the error's Replay-Nonce"
    );
}

#[test]
fn bad_nonce_twice_in_a_row_is_an_error_naming_the_step() {
    let r = run(
        Faults {
            bad_nonce: 2,
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    let e = r.result.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Http {
                step: Step::NewAccount,
                status: 400,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        alloc::format!("{e}")
            .contains("ACME newAccount: HTTP 400: urn:ietf:params:acme:error:badNonce"),
        "{e}"
    );
    assert_eq!(r.sim.state().bad_nonces_sent, 2);
}

#[test]
fn stale_nonces_are_refused_by_the_simulator() {
    // Negative control: the simulated CA really checks nonces, so the tests above can fail.
    let sim = Sim::new(Faults::default(), Http01Tokens::new());
    let mut t = sim.clone();
    let body = crate::jws(
        &account_key(),
        crate::JwsSigner::Jwk,
        "never-issued",
        sim::NEW_ACCOUNT,
        b"{}",
    );
    let req = crate::HttpRequest {
        method: crate::Method::Post,
        url: sim::NEW_ACCOUNT,
        content_type: Some(crate::JOSE_JSON),
        body: body.as_bytes(),
    };
    let resp = block_on(t.request(req)).unwrap();
    assert_eq!(resp.status, 400);
    assert!(String::from_utf8_lossy(&resp.body).contains("badNonce"));
}

#[test]
fn forged_signature_and_jwk_after_registration_are_refused_by_the_simulator() {
    let sim = Sim::new(Faults::default(), Http01Tokens::new());
    let mut t = sim.clone();
    let mut post = |key: &KeyPair, signer, url: &str, payload: &[u8]| {
        let nonce = sim.issue_nonce();
        // A JWS for newOrder sent to another URL must be refused.
        let signed_url = if url.ends_with("/elsewhere") {
            sim::NEW_ORDER
        } else {
            url
        };
        let body = crate::jws(key, signer, &nonce, signed_url, payload);
        let req = crate::HttpRequest {
            method: crate::Method::Post,
            url,
            content_type: Some(crate::JOSE_JSON),
            body: body.as_bytes(),
        };
        block_on(t.request(req)).unwrap().status
    };
    assert_eq!(
        post(
            &account_key(),
            crate::JwsSigner::Jwk,
            sim::NEW_ACCOUNT,
            b"{\"termsOfServiceAgreed\":true}"
        ),
        201
    );
    let other = KeyPair::from_bytes(&[0x33; 32]).unwrap();
    let order = br#"{"identifiers":[{"type":"dns","value":"example.org"}]}"#;
    assert_eq!(
        post(
            &other,
            crate::JwsSigner::Kid(sim::ACCOUNT_URL),
            sim::NEW_ORDER,
            order
        ),
        401,
        "wrong key for kid"
    );
    assert_eq!(
        post(&account_key(), crate::JwsSigner::Jwk, sim::NEW_ORDER, order),
        400,
        "jwk after registration"
    );
    assert_eq!(
        post(
            &account_key(),
            crate::JwsSigner::Kid(sim::ACCOUNT_URL),
            "https://ca.test/elsewhere",
            order
        ),
        400,
        "url header differs from the request URL"
    );
    assert_eq!(
        post(
            &account_key(),
            crate::JwsSigner::Kid(sim::ACCOUNT_URL),
            sim::NEW_ORDER,
            order
        ),
        201
    );
}

#[test]
fn server_error_names_the_step_and_carries_the_problem() {
    let r = run(
        Faults {
            fail_path: Some("/new-order"),
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    let e = r.result.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Http {
                step: Step::NewOrder,
                status: 503,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        alloc::format!("{e}"),
        "ACME newOrder: HTTP 503: urn:ietf:params:acme:error:serverInternal: simulated outage"
    );
}

#[test]
fn malformed_json_at_every_step_is_an_error_not_a_panic() {
    for (path, step) in [
        ("/dir", Step::Directory),
        ("/new-acct", Step::NewAccount),
        ("/new-order", Step::NewOrder),
        ("/authz/1", Step::Authorization),
        ("/chall/1", Step::Challenge),
        ("/order/1/finalize", Step::Finalize),
        ("/order/1", Step::Order),
        ("/cert/1", Step::Download),
    ] {
        let r = run(
            Faults {
                malformed_path: Some(path),
                ..Faults::default()
            },
            &["example.org"],
            quick(),
        );
        match r.result {
            Err(Error::Malformed { step: s, .. }) => assert_eq!(s, step, "{path}"),
            other => panic!("{path}: {other:?}"),
        }
    }
}

#[test]
fn truncated_bodies_at_every_length_never_panic() {
    for cut in 0..120 {
        let r = run(
            Faults {
                truncate_all: Some(cut),
                ..Faults::default()
            },
            &["example.org"],
            quick(),
        );
        assert!(r.result.is_err(), "cut {cut}");
    }
}

#[test]
fn a_challenge_that_never_finishes_stops_at_the_poll_limit() {
    let r = run(
        Faults {
            never_finish: true,
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    let e = r.result.unwrap_err();
    assert_eq!(
        e,
        Error::PollLimit {
            step: Step::Authorization,
            polls: 5
        }
    );
    assert_eq!(
        r.sleeps,
        [Duration::from_secs(1); 5],
        "default interval between polls"
    );
    assert!(r.tokens.is_empty());
    assert!(alloc::format!("{e}").contains("ACME authorization: still not finished after 5 polls"));
}

#[test]
fn retry_after_is_honoured_and_capped() {
    let r = run(
        Faults {
            pending_polls: 2,
            retry_after: Some(3),
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    r.result.unwrap();
    // Challenge response and two pending authorization polls each said Retry-After: 3;
    // the order's processing state after finalize said so too.
    assert!(r.sleeps.len() >= 3, "{:?}", r.sleeps);
    assert!(
        r.sleeps.iter().all(|d| *d == Duration::from_secs(3)),
        "{:?}",
        r.sleeps
    );

    let r = run(
        Faults {
            pending_polls: 1,
            retry_after: Some(86_400),
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    r.result.unwrap();
    assert!(
        r.sleeps.iter().all(|d| *d == Duration::from_secs(60)),
        "{:?}",
        r.sleeps
    );
}

#[test]
fn registering_again_finds_the_same_account_and_a_stored_url_skips_it() {
    let tokens = Http01Tokens::new();
    let sim = Sim::new(Faults::default(), tokens.clone());
    let mut client = Client::new(sim.clone(), sim::DIRECTORY, account_key());
    let a = block_on(client.register(None)).unwrap();
    let b = block_on(client.register(None)).unwrap();
    assert_eq!(a, b);
    assert_eq!(sim.state().accounts_created, 1);

    let mut client = Client::new(sim.clone(), sim::DIRECTORY, account_key()).with_config(quick());
    client.set_account_url(&a);
    let before = sim
        .state()
        .log
        .iter()
        .filter(|l| *l == "POST /new-acct")
        .count();
    let mut responder = tokens.clone();
    block_on(client.issue(
        &["example.org"],
        &cert_key(),
        &mut responder,
        &mut RecordingSleep::default(),
    ))
    .unwrap();
    assert_eq!(
        sim.state()
            .log
            .iter()
            .filter(|l| *l == "POST /new-acct")
            .count(),
        before
    );
}

#[test]
fn issue_without_register_creates_the_account_first() {
    let tokens = Http01Tokens::new();
    let sim = Sim::new(Faults::default(), tokens.clone());
    let mut client = Client::new(sim.clone(), sim::DIRECTORY, account_key()).with_config(quick());
    let mut responder = tokens.clone();
    block_on(client.issue(
        &["example.org"],
        &cert_key(),
        &mut responder,
        &mut RecordingSleep::default(),
    ))
    .unwrap();
    assert_eq!(client.account_url(), Some(sim::ACCOUNT_URL));
    assert!(sim.state().contact.is_empty());
}

#[test]
fn invalid_domain_is_refused_before_anything_is_sent() {
    let r = run(Faults::default(), &["bad domain.org"], quick());
    assert!(matches!(r.result, Err(Error::InvalidDomain(_))));
    assert!(!r.sim.state().log.iter().any(|l| l.contains("new-order")));
}

#[test]
fn an_authorization_without_http01_is_reported() {
    let r = run(
        Faults {
            no_http01: true,
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    assert_eq!(
        r.result.unwrap_err(),
        Error::NoHttp01 {
            domain: "example.org".into()
        }
    );
}

#[test]
fn an_already_valid_authorization_needs_no_challenge() {
    let r = run(
        Faults {
            authz_valid: true,
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    r.result.unwrap();
    assert!(
        !r.sim
            .state()
            .log
            .iter()
            .any(|l| l.starts_with("POST /chall"))
    );
}

#[test]
fn an_order_that_becomes_invalid_reports_its_error() {
    let r = run(
        Faults {
            order_invalid: true,
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    let e = r.result.unwrap_err();
    assert!(matches!(e, Error::OrderInvalid { .. }), "{e:?}");
    assert!(
        alloc::format!("{e}").contains("urn:ietf:params:acme:error:badCSR: simulated refusal"),
        "{e}"
    );
}

#[test]
fn a_certificate_for_another_key_is_refused() {
    let r = run(
        Faults {
            wrong_cert_key: true,
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    assert!(
        matches!(
            r.result,
            Err(Error::Malformed {
                step: Step::Download,
                ..
            })
        ),
        "{:?}",
        r.result
    );
}

#[test]
fn transport_failure_names_the_step() {
    let r = run(
        Faults {
            transport_down: true,
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    let e = r.result.unwrap_err();
    assert!(matches!(
        e,
        Error::Transport {
            step: Step::Directory,
            ..
        }
    ));
    assert_eq!(
        alloc::format!("{e}"),
        "ACME directory: request failed: connection refused (simulated)"
    );
}

#[test]
fn generalized_time_not_after_is_read() {
    let r = run(
        Faults {
            generalized_not_after: true,
            ..Faults::default()
        },
        &["example.org"],
        quick(),
    );
    assert_eq!(r.result.unwrap().not_after, sim::NOT_AFTER_2050);
}

#[test]
fn openssl_reads_the_same_validity_from_the_simulated_certificate() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        std::eprintln!("openssl not installed: skipped");
        return;
    }
    let r = run(Faults::default(), &["example.org"], quick());
    let issued = r.result.unwrap();
    let path =
        std::env::temp_dir().join(alloc::format!("fata-acme-cert-{}.der", std::process::id()));
    std::fs::write(&path, &issued.chain_der[0]).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "x509",
            "-inform",
            "DER",
            "-noout",
            "-enddate",
            "-startdate",
            "-in",
        ])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // sim::NOT_BEFORE = 2026-01-01 00:00:00, sim::NOT_AFTER = 2026-04-01 00:00:00
    assert!(text.contains("notAfter=Apr  1 00:00:00 2026 GMT"), "{text}");
    assert!(
        text.contains("notBefore=Jan  1 00:00:00 2026 GMT"),
        "{text}"
    );
}
