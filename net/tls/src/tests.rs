//! Host tests: a client engine against a server engine, bytes shuttled in memory.

use crate::engine::{Engine, Progress};
use crate::{CertStore, Identity, Tls, TlsError, roots_from_pem};
use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;
use rustls::{ClientConfig, HandshakeKind, ProtocolVersion};
use std::io::Read;
use std::sync::Arc;

const CA: &[u8] = include_bytes!("testdata/ca.pem");
const WRONG_CA: &[u8] = include_bytes!("testdata/wrong-ca.pem");
const SERVER: &[u8] = include_bytes!("testdata/server.pem");
const SERVER_KEY: &[u8] = include_bytes!("testdata/server.key");
const SERVER_SEC1: &[u8] = include_bytes!("testdata/server-sec1.key");
const OTHER: &[u8] = include_bytes!("testdata/other.pem");
const OTHER_KEY: &[u8] = include_bytes!("testdata/other.key");
const RSA_KEY: &[u8] = include_bytes!("testdata/rsa.key");
const CA2: &[u8] = include_bytes!("testdata/ca2.pem");
const RSA: &[u8] = include_bytes!("testdata/rsa.pem");
const P384: &[u8] = include_bytes!("testdata/p384.pem");
const P384_KEY: &[u8] = include_bytes!("testdata/p384.key");

fn urandom(buf: &mut [u8]) {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("/dev/urandom");
}

fn now() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

fn tls() -> Tls {
    Tls::new(urandom, now)
}

fn store() -> Arc<CertStore> {
    let s = CertStore::new();
    s.insert(&Identity::from_pem(SERVER, SERVER_KEY).unwrap())
        .unwrap();
    s
}

type Client = Engine<UnbufferedClientConnection>;
type Server = Engine<UnbufferedServerConnection>;

fn client(cfg: &Arc<ClientConfig>, name: &str) -> Client {
    let name = pki_types::ServerName::try_from(name.to_string()).unwrap();
    Engine::new(UnbufferedClientConnection::new(cfg.clone(), name).unwrap())
}

fn server(cfg: &Arc<rustls::ServerConfig>) -> Server {
    Engine::new(UnbufferedServerConnection::new(cfg.clone()).unwrap())
}

/// Moves bytes both ways until neither side has anything to say; returns each side's last
/// result.
fn pump(
    c: &mut Client,
    s: &mut Server,
) -> (
    Result<Progress, rustls::Error>,
    Result<Progress, rustls::Error>,
) {
    let mut rc = c.process(&mut &[][..], false);
    let mut rs = s.process(&mut &[][..], false);
    for _ in 0..100 {
        if c.outgoing.is_empty() && s.outgoing.is_empty() {
            break;
        }
        s.incoming.append(&mut c.outgoing);
        rs = s.process(&mut &[][..], false);
        c.incoming.append(&mut s.outgoing);
        rc = c.process(&mut &[][..], false);
    }
    (rc, rs)
}

fn client_config(t: &Tls, ca: &[u8]) -> Arc<ClientConfig> {
    t.client_config(roots_from_pem(ca).unwrap()).unwrap()
}

fn only(t: &Tls, ca: &[u8], v: &'static rustls::SupportedProtocolVersion) -> Arc<ClientConfig> {
    t.client_config_with(roots_from_pem(ca).unwrap(), &[v])
        .unwrap()
}

/// Sends `data` from `from` through `to` and returns what `to` decrypted.
fn transfer<A: crate::engine::Side, B: crate::engine::Side>(
    from: &mut Engine<A>,
    to: &mut Engine<B>,
    data: &[u8],
) -> Vec<u8> {
    let mut rest = data;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 7000];
    while !rest.is_empty() {
        assert_eq!(from.process(&mut rest, false).unwrap(), Progress::Open);
        // Deliver in uneven pieces, as TCP would.
        let bytes = std::mem::take(&mut from.outgoing);
        for piece in bytes.chunks(1000) {
            to.incoming.extend_from_slice(piece);
            to.process(&mut &[][..], false).unwrap();
            loop {
                let n = to.take_plain(&mut buf);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        }
    }
    got
}

fn version(c: &mut Client) -> Option<ProtocolVersion> {
    c.connection().protocol_version()
}

#[test]
fn tls13_and_tls12_handshakes_verify_the_chain_and_carry_a_mebibyte_both_ways() {
    let t = tls();
    let scfg = t.server_config(store(), Vec::new(), 64).unwrap();
    for (v, want) in [
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
    ] {
        let ccfg = only(&t, CA, v);
        let (mut c, mut s) = (client(&ccfg, "fata.test"), server(&scfg));
        let (rc, rs) = pump(&mut c, &mut s);
        assert_eq!(rc.unwrap(), Progress::Open);
        assert_eq!(rs.unwrap(), Progress::Open);
        assert_eq!(version(&mut c), Some(want));
        let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 + i / 251) as u8).collect();
        assert_eq!(transfer(&mut c, &mut s, &big), big);
        assert_eq!(transfer(&mut s, &mut c, &big), big);
        // close_notify from the client reaches the server as the end of its data.
        c.process(&mut &[][..], true).unwrap();
        s.incoming.append(&mut c.outgoing);
        s.process(&mut &[][..], false).unwrap();
        assert!(s.peer_closed());
    }
}

#[test]
fn both_key_exchange_groups_and_both_key_types_work() {
    let t = tls();
    let both = CertStore::new();
    both.insert(&Identity::from_pem(SERVER, SERVER_SEC1).unwrap())
        .unwrap();
    both.insert(&Identity::from_pem(OTHER, OTHER_KEY).unwrap())
        .unwrap();
    let scfg = t.server_config(both, Vec::new(), 0).unwrap();
    for group in [rustls::NamedGroup::X25519, rustls::NamedGroup::secp256r1] {
        let mut p = (*t.provider()).clone();
        p.kx_groups.retain(|g| g.name() == group);
        let ccfg = Arc::new(
            ClientConfig::builder_with_details(Arc::new(p), Arc::new(crate::provider::Clock(now)))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots_from_pem(CA).unwrap())
                .with_no_client_auth(),
        );
        // fata.test gets the P-256 leaf, other.test the Ed25519 one (chosen by SNI).
        for name in ["fata.test", "other.test"] {
            let (mut c, mut s) = (client(&ccfg, name), server(&scfg));
            let (rc, rs) = pump(&mut c, &mut s);
            assert_eq!(rc.unwrap(), Progress::Open, "{group:?} {name}");
            assert_eq!(rs.unwrap(), Progress::Open);
            assert_eq!(
                c.connection()
                    .negotiated_key_exchange_group()
                    .unwrap()
                    .name(),
                group
            );
        }
    }
}

#[test]
fn a_second_connection_resumes_the_first_session() {
    let t = tls();
    let scfg = t.server_config(store(), Vec::new(), 64).unwrap();
    for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let ccfg = only(&t, CA, v);
        let (mut c, mut s) = (client(&ccfg, "fata.test"), server(&scfg));
        pump(&mut c, &mut s).0.unwrap();
        // TLS 1.3 tickets follow the handshake: let them arrive.
        transfer(&mut c, &mut s, b"ping");
        transfer(&mut s, &mut c, b"pong");
        assert_eq!(c.connection().handshake_kind(), Some(HandshakeKind::Full));
        let (mut c2, mut s2) = (client(&ccfg, "fata.test"), server(&scfg));
        pump(&mut c2, &mut s2).0.unwrap();
        assert_eq!(
            c2.connection().handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{v:?}"
        );
    }
}

#[test]
fn a_server_the_client_does_not_trust_or_a_wrong_name_fails_on_the_client_and_alerts_the_server() {
    let t = tls();
    let scfg = t.server_config(store(), Vec::new(), 0).unwrap();
    for (ca, name, why) in [
        (WRONG_CA, "fata.test", "UnknownIssuer"),
        (CA, "nope.test", "NotValidForName"),
    ] {
        let ccfg = client_config(&t, ca);
        let (mut c, mut s) = (client(&ccfg, name), server(&scfg));
        let (rc, rs) = pump(&mut c, &mut s);
        let e = rc.unwrap_err();
        assert!(format!("{e:?}").contains(why), "{e:?}");
        // The client's alert made the server fail too, cleanly.
        assert!(rs.is_err(), "{rs:?}");
    }
}

#[test]
fn garbage_and_truncated_hellos_give_errors_or_wait_never_a_panic() {
    let t = tls();
    let scfg = t.server_config(store(), Vec::new(), 0).unwrap();
    // An HTTP request on the TLS port: a clean error and an alert to send.
    let mut s = server(&scfg);
    s.incoming
        .extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(s.process(&mut &[][..], false).is_err());
    assert!(!s.outgoing.is_empty(), "an alert tells the peer why");
    assert!(
        s.process(&mut &[][..], false).is_err(),
        "the error is final"
    );
    // A real hello cut short: the server waits for the rest.
    let ccfg = client_config(&t, CA);
    let mut c = client(&ccfg, "fata.test");
    c.process(&mut &[][..], false).unwrap();
    let hello = std::mem::take(&mut c.outgoing);
    for cut in [1, 5, hello.len() / 2, hello.len() - 1] {
        let mut s = server(&scfg);
        s.incoming.extend_from_slice(&hello[..cut]);
        assert_eq!(
            s.process(&mut &[][..], false).unwrap(),
            Progress::Handshaking
        );
    }
    // Random bytes and every prefix-damaged hello: never a panic.
    let mut noise = vec![0u8; 4096];
    for i in 0..200 {
        urandom(&mut noise);
        let mut s = server(&scfg);
        if i % 2 == 0 {
            s.incoming.extend_from_slice(&noise);
        } else {
            let mut h = hello.clone();
            let at = (noise[0] as usize * 7 + i) % h.len();
            h[at] ^= noise[1] | 1;
            s.incoming.extend_from_slice(&h);
        }
        let _ = s.process(&mut &[][..], false);
    }
}

#[test]
fn writing_before_the_handshake_is_refused() {
    let t = tls();
    let ccfg = client_config(&t, CA);
    let mut c = client(&ccfg, "fata.test");
    let mut data = &b"early"[..];
    assert_eq!(c.process(&mut data, false).unwrap(), Progress::Handshaking);
    assert_eq!(data, b"early", "nothing was taken");
}

#[test]
fn keys_that_cannot_sign_here_or_do_not_match_are_refused_with_a_reason() {
    let e = Identity::from_pem(SERVER, RSA_KEY)
        .unwrap()
        .certified()
        .unwrap_err();
    assert!(e.to_string().contains("RSA key cannot sign"), "{e}");
    let e = Identity::from_pem(SERVER, OTHER_KEY)
        .unwrap()
        .certified()
        .unwrap_err();
    assert!(e.to_string().contains("does not belong"), "{e}");
    let e = Identity::from_pem(b"junk", SERVER_KEY).unwrap_err();
    assert!(e.to_string().contains("BEGIN CERTIFICATE"), "{e}");
    assert!(matches!(
        Identity::from_pem(SERVER, b"junk"),
        Err(TlsError::Config(_))
    ));
    assert!(CertStore::new().is_empty());
}

#[test]
fn a_renewed_certificate_replaces_the_old_one_for_the_same_names() {
    let s = store();
    s.insert(&Identity::from_pem(SERVER, SERVER_SEC1).unwrap())
        .unwrap();
    assert_eq!(s.len(), 1);
    s.insert(&Identity::from_pem(OTHER, OTHER_KEY).unwrap())
        .unwrap();
    assert_eq!(s.len(), 2);
}

#[test]
fn clients_verify_servers_with_rsa_and_p384_certificates() {
    // The image cannot sign with these keys, but must verify peers that do: a server on
    // rustls's stock ring provider (host only: it draws from the OS) presents them.
    let t = tls();
    for (cert, key) in [(RSA, RSA_KEY), (P384, P384_KEY)] {
        let chain = crate::certs_from_pem(cert).unwrap();
        let key = <pki_types::PrivateKeyDer<'_> as pki_types::pem::PemObject>::from_pem_slice(key)
            .unwrap();
        let scfg = Arc::new(
            rustls::ServerConfig::builder_with_details(
                Arc::new(rustls::crypto::ring::default_provider()),
                Arc::new(crate::provider::Clock(now)),
            )
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
        );
        for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let (mut c, mut s) = (client(&only(&t, CA2, v), "fata.test"), server(&scfg));
            let (rc, rs) = pump(&mut c, &mut s);
            assert_eq!(rc.unwrap(), Progress::Open, "{v:?}");
            assert_eq!(rs.unwrap(), Progress::Open);
            assert_eq!(transfer(&mut s, &mut c, b"verified"), b"verified");
            // The same server is refused by a client that trusts another CA.
            let (mut c, mut s) = (client(&only(&t, CA, v), "fata.test"), server(&scfg));
            assert!(pump(&mut c, &mut s).0.is_err());
        }
    }
}
