//! Handshake cost of fata's crypto provider beside rustls's stock ring provider and the
//! pure-Rust `rustls-rustcrypto` provider, measured on the host (the figures in docs/tls.md,
//! "Choosing the crypto provider").
//!
//! ```text
//! cargo run --release -p fata-tls --example handshakes [N] [handshakes|primitives|all] [filter]
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*run_measured*' \
//!     target/release/examples/handshakes 20 handshakes "fata X25519 P-256 full"
//! ```
//!
//! A client engine and a server engine (`fata_tls::engine`, as in the host tests) talk TLS 1.3
//! in memory: N full handshakes (no resumption) and N resumed ones (a session ticket from the
//! previous connection, psk_dhe_ke) per provider, key-exchange group and certificate, with
//! the suite fixed to TLS13_AES_128_GCM_SHA256 so that only the provider differs. Server and
//! client steps are timed apart, and each runs in its own `#[inline(never)]` function
//! (`server_step`, `client_step`) so that callgrind can count their instructions. Then the
//! primitives behind the difference: one side's ECDHE (share + agreement), handshake
//! signatures, signature verification, and 16 KiB AEAD records and SHA-256.
//!
//! A benchmark program, not a test: the numbers depend on the machine and its load.

use fata_tls::engine::{Engine, Progress};
use rustls::client::{ClientSessionMemoryCache, Resumption, UnbufferedClientConnection};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ServerSessionMemoryCache, UnbufferedServerConnection};
use rustls::{CipherSuite, ClientConfig, HandshakeKind, NamedGroup, ServerConfig, SignatureScheme};
use std::fmt;
use std::hint::black_box;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const CA: &[u8] = include_bytes!("../src/testdata/ca.pem");
const P256_CERT: &[u8] = include_bytes!("../src/testdata/server.pem");
const P256_KEY: &[u8] = include_bytes!("../src/testdata/server.key");
const ED25519_CERT: &[u8] = include_bytes!("../src/testdata/other.pem");
const ED25519_KEY: &[u8] = include_bytes!("../src/testdata/other.key");

/// fata's provider takes a fill function; here it reads the host's /dev/urandom, opened once
/// (one read system call per fill, like the getrandom call of the other two providers).
fn urandom(buf: &mut [u8]) {
    static F: OnceLock<Mutex<std::fs::File>> = OnceLock::new();
    F.get_or_init(|| Mutex::new(std::fs::File::open("/dev/urandom").expect("/dev/urandom")))
        .lock()
        .unwrap()
        .read_exact(buf)
        .expect("/dev/urandom");
}

fn now_secs() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[derive(Debug)]
struct Now;

impl rustls::time_provider::TimeProvider for Now {
    fn current_time(&self) -> Option<UnixTime> {
        now_secs().map(|s| UnixTime::since_unix_epoch(Duration::from_secs(s)))
    }
}

/// rustls is built without `std` here too (as in an image): its session caches want a mutex.
struct StdMutex;

struct StdLock<T>(Mutex<T>);

impl<T> fmt::Debug for StdLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StdLock")
    }
}

impl<T: Send> rustls::lock::Lock<T> for StdLock<T> {
    fn lock(&self) -> Result<rustls::lock::MutexGuard<'_, T>, rustls::lock::Poisoned> {
        match self.0.lock() {
            Ok(g) => Ok(Box::new(g)),
            Err(_) => Err(rustls::lock::Poisoned),
        }
    }
}

impl rustls::lock::MakeMutex for StdMutex {
    fn make_mutex<T: Send + 'static>(value: T) -> Arc<dyn rustls::lock::Lock<T>> {
        Arc::new(StdLock(Mutex::new(value)))
    }
}

fn providers() -> Vec<(&'static str, CryptoProvider)> {
    vec![
        (
            "fata",
            (*fata_tls::Tls::new(urandom, now_secs).provider()).clone(),
        ),
        ("ring", rustls::crypto::ring::default_provider()),
        ("rustcrypto", rustls_rustcrypto::provider()),
    ]
}

/// `p` limited to one suite and one group, so that every provider does the same handshake.
fn limited(p: &CryptoProvider, group: NamedGroup) -> Arc<CryptoProvider> {
    let mut p = p.clone();
    p.cipher_suites
        .retain(|s| s.suite() == CipherSuite::TLS13_AES_128_GCM_SHA256);
    p.kx_groups.retain(|g| g.name() == group);
    assert_eq!((p.cipher_suites.len(), p.kx_groups.len()), (1, 1));
    Arc::new(p)
}

fn server_config(p: &Arc<CryptoProvider>, cert: &[u8], key: &[u8]) -> Arc<ServerConfig> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key).unwrap();
    // As fata's server configuration: a session cache (stateful TLS 1.3 tickets, 2 per
    // handshake by rustls's default).
    let mut c = ServerConfig::builder_with_details(p.clone(), Arc::new(Now))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    c.session_storage = ServerSessionMemoryCache::new::<StdMutex>(256);
    Arc::new(c)
}

fn client_config(p: &Arc<CryptoProvider>, resume: bool) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(CA) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut c = ClientConfig::builder_with_details(p.clone(), Arc::new(Now))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.resumption = if resume {
        Resumption::store(Arc::new(ClientSessionMemoryCache::new::<StdMutex>(32)))
    } else {
        Resumption::disabled()
    };
    Arc::new(c)
}

type Client = Engine<UnbufferedClientConnection>;
type Server = Engine<UnbufferedServerConnection>;

#[inline(never)]
fn server_step(s: &mut Server) -> Result<Progress, rustls::Error> {
    s.process(&mut &[][..], false)
}

#[inline(never)]
fn client_step(c: &mut Client) -> Result<Progress, rustls::Error> {
    c.process(&mut &[][..], false)
}

#[inline(never)]
fn new_server(cfg: &Arc<ServerConfig>) -> Server {
    Engine::new(UnbufferedServerConnection::new(cfg.clone()).unwrap())
}

#[inline(never)]
fn new_client(cfg: &Arc<ClientConfig>, name: &ServerName<'static>) -> Client {
    Engine::new(UnbufferedClientConnection::new(cfg.clone(), name.clone()).unwrap())
}

/// Time spent on each side.
#[derive(Default)]
struct Spent {
    client: Duration,
    server: Duration,
}

fn timed<T>(acc: &mut Duration, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    *acc += t.elapsed();
    r
}

/// One handshake, bytes shuttled until neither side has more to say (the session tickets
/// that follow a TLS 1.3 handshake included). Returns how it went.
fn handshake(
    ccfg: &Arc<ClientConfig>,
    scfg: &Arc<ServerConfig>,
    name: &ServerName<'static>,
    spent: &mut Spent,
) -> HandshakeKind {
    let mut c = timed(&mut spent.client, || new_client(ccfg, name));
    let mut s = timed(&mut spent.server, || new_server(scfg));
    let mut rc = timed(&mut spent.client, || client_step(&mut c));
    let mut rs = Ok(Progress::Handshaking);
    for _ in 0..20 {
        if c.outgoing.is_empty() && s.outgoing.is_empty() {
            break;
        }
        s.incoming.append(&mut c.outgoing);
        rs = timed(&mut spent.server, || server_step(&mut s));
        c.incoming.append(&mut s.outgoing);
        rc = timed(&mut spent.client, || client_step(&mut c));
    }
    assert_eq!(rc.unwrap(), Progress::Open);
    assert_eq!(rs.unwrap(), Progress::Open);
    let kind = c.connection().handshake_kind().unwrap();
    timed(&mut spent.client, || drop(c));
    timed(&mut spent.server, || drop(s));
    kind
}

/// The measured handshakes (callgrind: `--collect-atstart=no
/// --toggle-collect='*run_measured*'`, then the inclusive cost of `server_step`/`new_server`
/// and `client_step`/`new_client`).
#[inline(never)]
fn run_measured(
    ccfg: &Arc<ClientConfig>,
    scfg: &Arc<ServerConfig>,
    name: &ServerName<'static>,
    n: u32,
    want: HandshakeKind,
    spent: &mut Spent,
) {
    for _ in 0..n {
        assert_eq!(handshake(ccfg, scfg, name, spent), want);
    }
}

struct Case {
    provider: &'static str,
    group: NamedGroup,
    cert: &'static str,
}

fn handshakes(n: u32, filter: &str) {
    println!("## TLS 1.3 handshakes, TLS13_AES_128_GCM_SHA256, client and server in one thread");
    println!(
        "{:<11} {:<9} {:<8} {:<7} {:>6} {:>10} {:>10} {:>12} {:>8}",
        "provider",
        "group",
        "cert",
        "kind",
        "n",
        "server us",
        "client us",
        "server hs/s",
        "pairs/s"
    );
    let mut cases = Vec::new();
    for (pname, p) in providers() {
        for group in [NamedGroup::X25519, NamedGroup::secp256r1] {
            for cert in ["P-256", "Ed25519"] {
                cases.push((
                    Case {
                        provider: pname,
                        group,
                        cert,
                    },
                    p.clone(),
                ));
            }
        }
    }
    for (case, p) in cases {
        let lp = limited(&p, case.group);
        let (cert, key, sni) = match case.cert {
            "P-256" => (P256_CERT, P256_KEY, "fata.test"),
            _ => (ED25519_CERT, ED25519_KEY, "other.test"),
        };
        let scfg = server_config(&lp, cert, key);
        let name = ServerName::try_from(sni).unwrap().to_owned();
        for resume in [false, true] {
            let label = format!(
                "{} {:?} {} {}",
                case.provider,
                case.group,
                case.cert,
                if resume { "resumed" } else { "full" }
            );
            if !label.contains(filter) {
                continue;
            }
            let ccfg = client_config(&lp, resume);
            let want = if resume {
                HandshakeKind::Resumed
            } else {
                HandshakeKind::Full
            };
            // Warm up (and, for resumption, get the first ticket).
            for _ in 0..3 {
                handshake(&ccfg, &scfg, &name, &mut Spent::default());
            }
            let mut spent = Spent::default();
            run_measured(&ccfg, &scfg, &name, n, want, &mut spent);
            let us = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
            let (s, c) = (us(spent.server), us(spent.client));
            println!(
                "{:<11} {:<9} {:<8} {:<7} {:>6} {:>10.1} {:>10.1} {:>12.0} {:>8.0}",
                case.provider,
                format!("{:?}", case.group),
                case.cert,
                if resume { "resumed" } else { "full" },
                n,
                s,
                c,
                1e6 / s,
                1e6 / (s + c),
            );
        }
    }
}

/// Best of three rounds of `iters` calls: nanoseconds per call.
fn bench(iters: u32, mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() * 1e9 / f64::from(iters)
        })
        .fold(f64::INFINITY, f64::min)
}

/// The subjectPublicKey bits at the end of a SubjectPublicKeyInfo (65 bytes for an
/// uncompressed P-256 point, 32 for Ed25519): what verification algorithms take.
fn raw_public_key(spki: &[u8], len: usize) -> &[u8] {
    &spki[spki.len() - len..]
}

fn primitives(n: u32) {
    println!("## Primitives through each provider's rustls interface (best of 3, ns per call)");
    println!(
        "{:<11} {:<44} {:>12} {:>10}",
        "provider", "operation", "ns/call", "calls/s"
    );
    let row =
        |p: &str, op: &str, ns: f64| println!("{p:<11} {op:<44} {ns:>12.0} {:>10.0}", 1e9 / ns);
    let msg = [0x5au8; 130]; // about the size of a TLS 1.3 CertificateVerify input
    // The public keys, through fata's key loader (rustls-rustcrypto's keys do not report
    // theirs).
    let fata = fata_tls::Tls::new(urandom, now_secs).provider();
    let spki = |pem: &[u8]| {
        let key = PrivateKeyDer::from_pem_slice(pem).unwrap();
        let sk = fata.key_provider.load_private_key(key).unwrap();
        sk.public_key().unwrap().as_ref().to_vec()
    };
    let (p256_spki, ed25519_spki) = (spki(P256_KEY), spki(ED25519_KEY));
    for (pname, p) in providers() {
        for g in &p.kx_groups {
            if !matches!(g.name(), NamedGroup::X25519 | NamedGroup::secp256r1) {
                continue;
            }
            let peer = g.start().unwrap();
            let peer_pub = peer.pub_key().to_vec();
            let ns = bench(n, || {
                let share = g.start().unwrap();
                black_box(share.pub_key());
                black_box(share.complete(&peer_pub).unwrap());
            });
            row(
                pname,
                &format!("ECDHE {:?}: share + agreement", g.name()),
                ns,
            );
        }
        for (label, key, spki, scheme, raw_len) in [
            (
                "ECDSA P-256 SHA-256",
                P256_KEY,
                &p256_spki,
                SignatureScheme::ECDSA_NISTP256_SHA256,
                65,
            ),
            (
                "Ed25519",
                ED25519_KEY,
                &ed25519_spki,
                SignatureScheme::ED25519,
                32,
            ),
        ] {
            let key = PrivateKeyDer::from_pem_slice(key).unwrap();
            let sk = p.key_provider.load_private_key(key).unwrap();
            let signer = sk.choose_scheme(&[scheme]).unwrap();
            let ns = bench(n, || {
                black_box(signer.sign(black_box(&msg)).unwrap());
            });
            row(pname, &format!("sign {label}"), ns);
            let sig = signer.sign(&msg).unwrap();
            let public = raw_public_key(spki, raw_len);
            let alg = p
                .signature_verification_algorithms
                .mapping
                .iter()
                .find(|(s, _)| *s == scheme)
                .unwrap()
                .1[0];
            let ns = bench(n, || {
                alg.verify_signature(public, &msg, &sig).unwrap();
            });
            row(pname, &format!("verify {label}"), ns);
        }
    }
    bulk(n);
}

/// 16 KiB records: ring (fata's and rustls's ring provider) against the RustCrypto crates of
/// `rustls-rustcrypto` (aes-gcm, chacha20poly1305, sha2).
fn bulk(n: u32) {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use ring::aead;
    const LEN: usize = 16384;
    let iters = (n / 10).max(20);
    println!("## 16 KiB records (best of 3, MB/s = 10^6 bytes per second)");
    let row = |who: &str, op: &str, ns: f64| {
        println!(
            "{who:<11} {op:<44} {ns:>12.0} {:>10.0}",
            LEN as f64 / ns * 1e3
        )
    };
    let mut buf = vec![0x17u8; LEN];
    let nonce = [7u8; 12];
    let aad = [0x17u8, 3, 3, 0x40, 0x11];
    for (label, alg, key_len) in [
        ("AES-128-GCM seal", &aead::AES_128_GCM, 16),
        ("ChaCha20-Poly1305 seal", &aead::CHACHA20_POLY1305, 32),
    ] {
        let key =
            aead::LessSafeKey::new(aead::UnboundKey::new(alg, &[9u8; 32][..key_len]).unwrap());
        let ns = bench(iters, || {
            let tag = key
                .seal_in_place_separate_tag(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(aad),
                    &mut buf,
                )
                .unwrap();
            let _ = black_box(tag);
        });
        row("ring", label, ns);
    }
    let k = aes_gcm::Aes128Gcm::new_from_slice(&[9u8; 16]).unwrap();
    let ns = bench(iters, || {
        black_box(
            k.encrypt_in_place_detached((&nonce).into(), &aad, &mut buf)
                .unwrap(),
        );
    });
    row("rustcrypto", "AES-128-GCM seal (aes-gcm)", ns);
    let k = chacha20poly1305::ChaCha20Poly1305::new_from_slice(&[9u8; 32]).unwrap();
    let ns = bench(iters, || {
        black_box(
            k.encrypt_in_place_detached((&nonce).into(), &aad, &mut buf)
                .unwrap(),
        );
    });
    row(
        "rustcrypto",
        "ChaCha20-Poly1305 seal (chacha20poly1305)",
        ns,
    );
    let ns = bench(iters, || {
        black_box(ring::digest::digest(&ring::digest::SHA256, black_box(&buf)));
    });
    row("ring", "SHA-256", ns);
    let ns = bench(iters, || {
        use sha2::Digest;
        black_box(sha2::Sha256::digest(black_box(&buf)));
    });
    row("rustcrypto", "SHA-256 (sha2)", ns);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().map_or(200, |a| a.parse().expect("N: a number"));
    let what = args.next().unwrap_or_else(|| "all".into());
    // Only the cases whose "provider group cert kind" contains this, e.g. "fata X25519 P-256 full".
    let filter = args.next().unwrap_or_default();
    let f = |on: bool, x: &'static str| if on { x } else { "-" };
    println!(
        "# CPU features seen: {} {} {} {} {} {}",
        f(std::is_x86_feature_detected!("aes"), "aes"),
        f(std::is_x86_feature_detected!("pclmulqdq"), "pclmulqdq"),
        f(std::is_x86_feature_detected!("avx2"), "avx2"),
        f(std::is_x86_feature_detected!("sha"), "sha"),
        f(std::is_x86_feature_detected!("adx"), "adx"),
        f(std::is_x86_feature_detected!("bmi2"), "bmi2"),
    );
    if what == "handshakes" || what == "all" {
        handshakes(n, &filter);
    }
    if what == "primitives" || what == "all" {
        primitives(n);
    }
}
