//! Ephemeral key exchange for the handshake: X25519 (`x25519-dalek`) and P-256 ECDH (`p256`),
//! each secret made from 32 bytes of the image's CSPRNG.

use crate::provider::Random;
use alloc::boxed::Box;
use alloc::vec::Vec;
use rustls::crypto::{ActiveKeyExchange, SecureRandom, SharedSecret, SupportedKxGroup};
use rustls::{Error, NamedGroup, PeerMisbehaved};
use zeroize::Zeroize;

fn secret_bytes(rng: &Random) -> Result<[u8; 32], Error> {
    let mut b = [0u8; 32];
    rng.fill(&mut b)
        .map_err(|_| Error::FailedToGetRandomBytes)?;
    Ok(b)
}

/// X25519 (RFC 7748).
#[derive(Debug)]
pub(crate) struct X25519(pub(crate) Random);

struct X25519Share {
    secret: x25519_dalek::StaticSecret,
    public: [u8; 32],
}

impl SupportedKxGroup for X25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut b = secret_bytes(&self.0)?;
        let secret = x25519_dalek::StaticSecret::from(b);
        b.zeroize();
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        Ok(Box::new(X25519Share { secret, public }))
    }
    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

impl ActiveKeyExchange for X25519Share {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        let peer: [u8; 32] = peer
            .try_into()
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        // A low-order peer point gives an all-zero secret (RFC 7748 section 6.1): refuse it.
        if !shared.was_contributory() {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared.as_bytes()[..]))
    }
    fn pub_key(&self) -> &[u8] {
        &self.public
    }
    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// ECDH on NIST P-256 (secp256r1), uncompressed points.
#[derive(Debug)]
pub(crate) struct P256(pub(crate) Random);

struct P256Share {
    secret: p256::NonZeroScalar,
    public: Vec<u8>,
}

impl SupportedKxGroup for P256 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        // A uniformly random 256-bit value is a valid scalar with overwhelming probability;
        // draw again in the astronomically rare case it is zero or not below the order.
        for _ in 0..8 {
            let mut b = secret_bytes(&self.0)?;
            let secret = p256::SecretKey::from_slice(&b);
            b.zeroize();
            if let Ok(secret) = secret {
                let public = secret.public_key();
                let point = p256::EncodedPoint::from(public);
                return Ok(Box::new(P256Share {
                    secret: secret.to_nonzero_scalar(),
                    public: point.as_bytes().to_vec(),
                }));
            }
        }
        Err(Error::FailedToGetRandomBytes)
    }
    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

impl ActiveKeyExchange for P256Share {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        // TLS sends uncompressed points only (RFC 8446 section 4.2.8.2).
        if peer.first() != Some(&4) {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        let peer = p256::PublicKey::from_sec1_bytes(peer)
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = p256::ecdh::diffie_hellman(self.secret, peer.as_affine());
        Ok(SharedSecret::from(&shared.raw_secret_bytes()[..]))
    }
    fn pub_key(&self) -> &[u8] {
        &self.public
    }
    fn group(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}
