//! P-256 keys made from caller-supplied random bytes, their JWK and RFC 7638 thumbprint, and
//! JWS (RFC 7515) ES256 signing as ACME uses it (RFC 8555 §6.2). Signatures are deterministic
//! (RFC 6979), so no random source is needed after the key exists.

use crate::b64;
use crate::json::ObjectWriter;
use alloc::string::String;
use alloc::vec::Vec;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePrivateKey;
use sha2::{Digest, Sha256};

/// How many 32-byte draws [`KeyPair::generate`] tries before it decides the source is broken.
/// A uniform source fails one draw with probability below 2^-32.
pub const GENERATE_ATTEMPTS: usize = 16;

/// Why a key could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The bytes are zero or not below the P-256 group order.
    OutOfRange,
    /// Every draw from the random source was out of range: the source is broken (e.g. all zeros).
    BadRandomSource,
}

impl core::fmt::Display for KeyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            KeyError::OutOfRange => "key bytes are zero or not below the P-256 group order",
            KeyError::BadRandomSource => {
                "the random source gave only out-of-range P-256 scalars (is it all zeros?)"
            }
        })
    }
}

/// A P-256 private key (account key or certificate key).
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
}

impl core::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KeyPair(P-256, thumbprint {})", self.thumbprint())
    }
}

impl KeyPair {
    /// Makes a key from the scalar in `bytes` (big-endian), e.g. one read back from storage.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        SigningKey::from_slice(bytes)
            .map(|signing| KeyPair { signing })
            .map_err(|_| KeyError::OutOfRange)
    }

    /// Makes a fresh key: `fill` writes random bytes; an out-of-range draw is retried
    /// (at most [`GENERATE_ATTEMPTS`] draws).
    pub fn generate(mut fill: impl FnMut(&mut [u8])) -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        for _ in 0..GENERATE_ATTEMPTS {
            fill(&mut bytes);
            if let Ok(k) = Self::from_bytes(&bytes) {
                bytes.fill(0);
                return Ok(k);
            }
        }
        bytes.fill(0);
        Err(KeyError::BadRandomSource)
    }

    /// The private scalar, big-endian, for persistence (keep it secret).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes().into()
    }

    /// The private key as PKCS#8 DER (RFC 5958), as TLS stacks load it.
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        // Encoding a valid P-256 key into an in-memory document only fails on allocation.
        let secret = p256::SecretKey::from(&self.signing);
        match secret.to_pkcs8_der() {
            Ok(doc) => doc.as_bytes().to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// The uncompressed public point `04 || x || y` (65 bytes).
    pub fn public_point(&self) -> [u8; 65] {
        let point = self.signing.verifying_key().to_encoded_point(false);
        let mut out = [0u8; 65];
        out.copy_from_slice(point.as_bytes());
        out
    }

    /// The public key as a JWK with members in RFC 7638 order (`crv`, `kty`, `x`, `y`), which
    /// makes this text also the thumbprint input.
    pub fn jwk(&self) -> String {
        let p = self.public_point();
        ObjectWriter::new()
            .str("crv", "P-256")
            .str("kty", "EC")
            .str("x", &b64::encode_url(&p[1..33]))
            .str("y", &b64::encode_url(&p[33..65]))
            .finish()
    }

    /// The RFC 7638 JWK thumbprint: base64url(SHA-256(canonical JWK)).
    pub fn thumbprint(&self) -> String {
        b64::encode_url(&Sha256::digest(self.jwk().as_bytes()))
    }

    /// ECDSA P-256 with SHA-256 over `msg` (RFC 6979 deterministic).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        self.signing.sign(msg)
    }

    /// The verifying (public) key.
    pub fn verifying_key(&self) -> p256::ecdsa::VerifyingKey {
        *self.signing.verifying_key()
    }
}

/// How the JWS names its signer (RFC 8555 §6.2).
#[derive(Debug, Clone, Copy)]
pub enum JwsSigner<'a> {
    /// The whole public key: only for newAccount (and revocation by certificate key).
    Jwk,
    /// The account URL returned by newAccount.
    Kid(&'a str),
}

/// A flattened JWS JSON serialization of `payload` (empty for POST-as-GET), signed ES256.
pub fn jws(key: &KeyPair, signer: JwsSigner<'_>, nonce: &str, url: &str, payload: &[u8]) -> String {
    let protected = ObjectWriter::new().str("alg", "ES256");
    let protected = match signer {
        JwsSigner::Jwk => protected.raw("jwk", &key.jwk()),
        JwsSigner::Kid(kid) => protected.str("kid", kid),
    };
    let protected = protected.str("nonce", nonce).str("url", url).finish();
    let protected_b64 = b64::encode_url(protected.as_bytes());
    let payload_b64 = b64::encode_url(payload);
    let mut signing_input = String::with_capacity(protected_b64.len() + payload_b64.len() + 1);
    signing_input.push_str(&protected_b64);
    signing_input.push('.');
    signing_input.push_str(&payload_b64);
    let sig = key.sign(signing_input.as_bytes());
    ObjectWriter::new()
        .str("protected", &protected_b64)
        .str("payload", &payload_b64)
        .str("signature", &b64::encode_url(&sig.to_bytes()))
        .finish()
}

/// The http-01 key authorization: `token || '.' || thumbprint` (RFC 8555 §8.1).
pub fn key_authorization(key: &KeyPair, token: &str) -> String {
    let mut s = String::from(token);
    s.push('.');
    s.push_str(&key.thumbprint());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;
    use p256::ecdsa::signature::Verifier;

    fn key(n: u8) -> KeyPair {
        KeyPair::from_bytes(&[n; 32]).unwrap()
    }

    #[test]
    fn out_of_range_scalars_are_refused_and_generate_retries() {
        assert_eq!(
            KeyPair::from_bytes(&[0; 32]).unwrap_err(),
            KeyError::OutOfRange
        );
        assert_eq!(
            KeyPair::from_bytes(&[0xFF; 32]).unwrap_err(),
            KeyError::OutOfRange
        );
        let mut draws = 0;
        let k = KeyPair::generate(|b| {
            draws += 1;
            b.fill(if draws < 3 { 0xFF } else { 7 });
        })
        .unwrap();
        assert_eq!(draws, 3);
        assert_eq!(k.to_bytes(), [7; 32]);
        assert_eq!(
            KeyPair::generate(|b| b.fill(0)).unwrap_err(),
            KeyError::BadRandomSource
        );
    }

    #[test]
    fn key_bytes_round_trip() {
        let k = key(9);
        assert_eq!(KeyPair::from_bytes(&k.to_bytes()).unwrap().jwk(), k.jwk());
    }

    #[test]
    fn jwk_is_canonical_and_thumbprint_is_sha256_of_it() {
        let k = key(1);
        let jwk = k.jwk();
        let v = json::parse(jwk.as_bytes()).unwrap();
        let p = k.public_point();
        assert_eq!(
            v.str_field("x").and_then(b64::decode_url).unwrap(),
            p[1..33]
        );
        assert_eq!(v.str_field("y").and_then(b64::decode_url).unwrap(), p[33..]);
        assert!(jwk.starts_with(r#"{"crv":"P-256","kty":"EC","x":""#));
        assert!(!jwk.contains(' '));
        let t = b64::decode_url(&k.thumbprint()).unwrap();
        assert_eq!(t.as_slice(), &Sha256::digest(jwk.as_bytes())[..]);
        assert_ne!(k.thumbprint(), key(2).thumbprint());
    }

    #[test]
    fn rfc7638_thumbprint_rule_on_a_known_p256_jwk() {
        // The thumbprint input is exactly the lexicographic, whitespace-free member list.
        let canonical = r#"{"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        let x = b64::decode_url("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU").unwrap();
        let y = b64::decode_url("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0").unwrap();
        let rebuilt = ObjectWriter::new()
            .str("crv", "P-256")
            .str("kty", "EC")
            .str("x", &b64::encode_url(&x))
            .str("y", &b64::encode_url(&y))
            .finish();
        assert_eq!(rebuilt, canonical);
    }

    #[test]
    fn jws_verifies_and_names_its_signer() {
        let k = key(3);
        for signer in [JwsSigner::Jwk, JwsSigner::Kid("https://ca/acct/1")] {
            let body = jws(&k, signer, "n0nce", "https://ca/new-order", b"{\"a\":1}");
            let v = json::parse(body.as_bytes()).unwrap();
            let prot_b64 = v.str_field("protected").unwrap();
            let pay_b64 = v.str_field("payload").unwrap();
            let sig = b64::decode_url(v.str_field("signature").unwrap()).unwrap();
            let prot = json::parse(&b64::decode_url(prot_b64).unwrap()).unwrap();
            assert_eq!(prot.str_field("alg"), Some("ES256"));
            assert_eq!(prot.str_field("nonce"), Some("n0nce"));
            assert_eq!(prot.str_field("url"), Some("https://ca/new-order"));
            match signer {
                JwsSigner::Jwk => {
                    assert!(prot.get("kid").is_none());
                    assert_eq!(prot.get("jwk").unwrap().str_field("kty"), Some("EC"));
                }
                JwsSigner::Kid(kid) => {
                    assert!(prot.get("jwk").is_none());
                    assert_eq!(prot.str_field("kid"), Some(kid));
                }
            }
            assert_eq!(b64::decode_url(pay_b64).unwrap(), b"{\"a\":1}");
            let sig = Signature::from_slice(&sig).unwrap();
            let input = alloc::format!("{prot_b64}.{pay_b64}");
            k.verifying_key().verify(input.as_bytes(), &sig).unwrap();
            assert!(k.verifying_key().verify(b"other", &sig).is_err());
        }
    }

    #[test]
    fn post_as_get_payload_is_empty_string() {
        let body = jws(&key(4), JwsSigner::Kid("k"), "n", "u", b"");
        let v = json::parse(body.as_bytes()).unwrap();
        assert_eq!(v.str_field("payload"), Some(""));
    }

    #[test]
    fn key_authorization_is_token_dot_thumbprint() {
        let k = key(5);
        let ka = key_authorization(&k, "tok_EN");
        assert_eq!(ka, alloc::format!("tok_EN.{}", k.thumbprint()));
    }

    #[test]
    fn pkcs8_export_loads_back_with_p256() {
        use p256::pkcs8::DecodePrivateKey;
        let k = key(6);
        let der = k.to_pkcs8_der();
        let back = SigningKey::from_pkcs8_der(&der).unwrap();
        assert_eq!(back.to_bytes()[..], k.to_bytes());
    }
}
