//! Private keys that sign the handshake: ECDSA P-256 (`p256`, deterministic RFC 6979 nonces,
//! so no random source is involved) and Ed25519 (ring, deterministic by design).
//!
//! RSA and P-384 keys are refused with an error that says so: ring signs those only with its
//! own `SystemRandom`, which an image cannot provide (see `provider.rs`). Peers' RSA
//! certificates are still verified.

use alloc::boxed::Box;
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
use pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use rustls::crypto::KeyProvider;
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, SignatureAlgorithm, SignatureScheme};

/// Loads private keys for rustls (the provider's `key_provider`).
#[derive(Debug)]
pub(crate) struct Keys;

impl KeyProvider for Keys {
    fn load_private_key(&self, der: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, Error> {
        load(&der)
    }
}

/// A signing key from a PKCS#8 or SEC1 private key.
pub(crate) fn load(der: &PrivateKeyDer<'_>) -> Result<Arc<dyn SigningKey>, Error> {
    match der {
        PrivateKeyDer::Pkcs8(k) => {
            let bytes = k.secret_pkcs8_der();
            if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_der(bytes) {
                return Ok(Arc::new(EcdsaP256(key)));
            }
            if let Ok(key) = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes) {
                return Ok(Arc::new(Ed25519(Arc::new(key))));
            }
            Err(unsupported(bytes))
        }
        PrivateKeyDer::Sec1(k) => {
            let sk = p256::SecretKey::from_sec1_der(k.secret_sec1_der()).map_err(|_| {
                Error::General("the SEC1 key is not a P-256 key (only P-256 is supported)".into())
            })?;
            Ok(Arc::new(EcdsaP256(sk.into())))
        }
        PrivateKeyDer::Pkcs1(_) => Err(unsupported(&[])),
        _ => Err(Error::General("unknown private key format".into())),
    }
}

/// The error for a key that is well-formed but of a type this build cannot sign with.
fn unsupported(pkcs8: &[u8]) -> Error {
    // OIDs as they appear in DER: rsaEncryption 1.2.840.113549.1.1.1, secp384r1 1.3.132.0.34.
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    let has = |oid: &[u8]| pkcs8.windows(oid.len()).any(|w| w == oid);
    let what = if pkcs8.is_empty() || has(RSA) {
        "an RSA key"
    } else if has(P384) {
        "a P-384 key"
    } else {
        "a key of a type"
    };
    Error::General(format!(
        "{what} cannot sign in a fata image: use an ECDSA P-256 or Ed25519 key \
         (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)"
    ))
}

#[derive(Debug)]
struct EcdsaP256(p256::ecdsa::SigningKey);

impl SigningKey for EcdsaP256 {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(EcdsaP256Signer(self.0.clone())) as Box<dyn Signer>)
    }
    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        let der = p256::PublicKey::from(self.0.verifying_key())
            .to_public_key_der()
            .ok()?;
        Some(SubjectPublicKeyInfoDer::from(der.as_bytes().to_vec()))
    }
    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct EcdsaP256Signer(p256::ecdsa::SigningKey);

impl Signer for EcdsaP256Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let sig: p256::ecdsa::Signature = self
            .0
            .try_sign(message)
            .map_err(|_| Error::General("ECDSA signing failed".into()))?;
        Ok(sig.to_der().as_bytes().to_vec())
    }
    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

#[derive(Debug, Clone)]
struct Ed25519(Arc<ring::signature::Ed25519KeyPair>);

impl SigningKey for Ed25519 {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ED25519)
            .then(|| Box::new(self.clone()) as Box<dyn Signer>)
    }
    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        use ring::signature::KeyPair;
        // SubjectPublicKeyInfo { AlgorithmIdentifier { id-Ed25519 1.3.101.112 }, BIT STRING }
        let mut der = alloc::vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00
        ];
        der.extend_from_slice(self.0.public_key().as_ref());
        Some(SubjectPublicKeyInfoDer::from(der))
    }
    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ED25519
    }
}

impl Signer for Ed25519 {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self.0.sign(message).as_ref().to_vec())
    }
    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}
