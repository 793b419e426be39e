//! The crypto provider: which algorithms rustls may use in an image, and where its random
//! bytes come from.
//!
//! `ring` supplies what needs no randomness — the AEADs (AES-GCM, ChaCha20-Poly1305), the
//! hashes and HMACs, Ed25519 signing and all signature verification. ring's key exchange and
//! ECDSA/RSA signing draw from its own `SystemRandom`, which on a Linux target calls the C
//! library (`getrandom` 0.2) and cannot be redirected (ring's random trait is sealed), so
//! those parts come from elsewhere: X25519 from `x25519-dalek` and P-256 ECDH and ECDSA from
//! `p256` (deterministic RFC 6979 signatures), both on secrets built from the caller's random
//! bytes. Nothing linked here calls `SystemRandom`, so nothing reaches the C library; the
//! image check (`cargo xtask check`) would name it if it did. The comparison with other
//! providers is in `docs/tls.md`.

use crate::{kx, sign, verify};
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use rustls::SignatureScheme;
use rustls::crypto::{CryptoProvider, GetRandomFailed, SecureRandom, WebPkiSupportedAlgorithms};
use webpki::ring as alg;

/// Where every random byte of a TLS connection comes from: key shares, nonces, hello randoms,
/// session ids. In an image this is `fata::rand::fill`; it must be a CSPRNG.
pub type RandomFn = fn(&mut [u8]);

/// Where the current wall-clock time comes from: seconds since the Unix epoch, or `None`
/// when the machine has no trustworthy clock (certificates then cannot be checked).
pub type ClockFn = fn() -> Option<u64>;

#[derive(Clone, Copy)]
pub(crate) struct Random(pub(crate) RandomFn);

impl fmt::Debug for Random {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fata::rand")
    }
}

impl SecureRandom for Random {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        (self.0)(buf);
        Ok(())
    }
}

/// The wall clock as rustls's time provider (the no_std build has none of its own).
#[derive(Clone, Copy)]
pub(crate) struct Clock(pub(crate) ClockFn);

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wall clock")
    }
}

impl rustls::time_provider::TimeProvider for Clock {
    fn current_time(&self) -> Option<pki_types::UnixTime> {
        (self.0)()
            .map(|s| pki_types::UnixTime::since_unix_epoch(core::time::Duration::from_secs(s)))
    }
}

/// Signature algorithms accepted from peers (certificate chains and handshake signatures):
/// ECDSA P-256/P-384, Ed25519, RSA PKCS#1 and PSS from 2048 bits. Verification needs no
/// randomness: ring's, except ECDSA P-256, which is `p256`'s (see `verify.rs`: it spares
/// the image ring's 148 KiB P-256 table).
pub(crate) static VERIFY_ALGS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        verify::ECDSA_P256_SHA256,
        verify::ECDSA_P256_SHA384,
        alg::ECDSA_P384_SHA256,
        alg::ECDSA_P384_SHA384,
        alg::ED25519,
        alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        alg::RSA_PKCS1_2048_8192_SHA256,
        alg::RSA_PKCS1_2048_8192_SHA384,
        alg::RSA_PKCS1_2048_8192_SHA512,
    ],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[alg::ECDSA_P384_SHA384, verify::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[verify::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[alg::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[alg::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[alg::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[alg::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// The provider: ring's TLS 1.3 and 1.2 ECDHE suites (AES-128/256-GCM, ChaCha20-Poly1305),
/// X25519 and P-256 key exchange, keys loaded by [`sign::Keys`], randomness from `random`.
pub fn provider(random: RandomFn) -> Arc<CryptoProvider> {
    // rustls keeps `&'static` references to these; one leak per provider, and an image
    // builds one provider per random source (see `Tls` in lib.rs).
    let rng: &'static Random = Box::leak(Box::new(Random(random)));
    let x25519: &'static kx::X25519 = Box::leak(Box::new(kx::X25519(*rng)));
    let p256: &'static kx::P256 = Box::leak(Box::new(kx::P256(*rng)));
    Arc::new(CryptoProvider {
        cipher_suites: rustls::crypto::ring::DEFAULT_CIPHER_SUITES.to_vec(),
        kx_groups: alloc::vec![x25519, p256],
        signature_verification_algorithms: VERIFY_ALGS,
        secure_random: rng,
        key_provider: &sign::Keys,
    })
}
