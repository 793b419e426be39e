//! ECDSA P-256 signature verification with the `p256` crate instead of ring.
//!
//! Why: ring verifies P-256 with a 148 KiB table of precomputed points, linked into every
//! image that verifies anything, although an image verifies P-256 signatures only as a
//! client (ACME, webhooks) — a few per connection, off the request path. `p256` is already
//! linked for key exchange and signing. P-384, Ed25519 and RSA stay with ring.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use pki_types::{AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm, alg_id};
use sha2::Digest;

/// The hash an ECDSA P-256 signature was made over.
#[derive(Debug)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
}

/// `ecdsa-with-SHA256` / `ecdsa-with-SHA384` over a P-256 key.
#[derive(Debug)]
pub(crate) struct EcdsaP256(pub(crate) Hash);

/// ECDSA P-256 with SHA-256.
pub(crate) static ECDSA_P256_SHA256: &dyn SignatureVerificationAlgorithm = &EcdsaP256(Hash::Sha256);
/// ECDSA P-256 with SHA-384.
pub(crate) static ECDSA_P256_SHA384: &dyn SignatureVerificationAlgorithm = &EcdsaP256(Hash::Sha384);

impl SignatureVerificationAlgorithm for EcdsaP256 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        match self.0 {
            Hash::Sha256 => key.verify(message, &sig),
            Hash::Sha384 => key.verify_prehash(&sha2::Sha384::digest(message), &sig),
        }
        .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        match self.0 {
            Hash::Sha256 => alg_id::ECDSA_SHA256,
            Hash::Sha384 => alg_id::ECDSA_SHA384,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;

    /// Our verifier agrees with ring's on good, bad and garbage input, for both hashes.
    #[test]
    fn agrees_with_ring_on_good_and_bad_signatures() {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let public = p256::EncodedPoint::from(sk.verifying_key())
            .as_bytes()
            .to_vec();
        let msg = b"the message";
        let s256: p256::ecdsa::Signature = sk.sign(msg);
        let d384 = sha2::Sha384::digest(msg);
        let s384: p256::ecdsa::Signature =
            p256::ecdsa::signature::hazmat::PrehashSigner::sign_prehash(&sk, &d384).unwrap();
        for (ours, ring, sig) in [
            (
                ECDSA_P256_SHA256,
                webpki::ring::ECDSA_P256_SHA256,
                s256.to_der(),
            ),
            (
                ECDSA_P256_SHA384,
                webpki::ring::ECDSA_P256_SHA384,
                s384.to_der(),
            ),
        ] {
            let sig = sig.as_bytes();
            assert!(ours.verify_signature(&public, msg, sig).is_ok());
            assert!(ring.verify_signature(&public, msg, sig).is_ok());
            assert!(ours.verify_signature(&public, b"another", sig).is_err());
            let mut bad = sig.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert_eq!(
                ours.verify_signature(&public, msg, &bad).is_ok(),
                ring.verify_signature(&public, msg, &bad).is_ok()
            );
            assert!(ours.verify_signature(&public[..10], msg, sig).is_err());
            assert!(
                ours.verify_signature(&public, msg, &sig[..sig.len() - 3])
                    .is_err()
            );
            assert!(ours.verify_signature(&[4; 65], msg, sig).is_err());
            assert_eq!(ours.public_key_alg_id(), ring.public_key_alg_id());
            assert_eq!(ours.signature_alg_id(), ring.signature_alg_id());
        }
    }
}
