//! The RSA->Ed25519 cross-certificate (cert-spec "RSA->Ed25519 cross-certificate"; CERTS
//! cell type 7): the RSA identity key vouches for the ed25519 identity key.
//!
//! ```text
//! ED25519_KEY 32 | EXPIRATION_DATE 4 (hours) | SIGLEN 1 | SIGNATURE SIGLEN
//! SIGNATURE = RSA PKCS#1 v1.5 (no DigestInfo) over
//!   SHA256("Tor TLS RSA/Ed25519 cross-certificate" | ED25519_KEY | EXPIRATION_DATE)
//! ```

use alloc::vec::Vec;

use rand_core::CryptoRng;
use sha2::{Digest, Sha256};

use super::CertError;
use crate::codec::{self, EncodeError, Reader, Writeable, Writer};
use crate::crypto::identity::{Ed25519Identity, KeyError, RsaIdentityKey, RsaPublicIdentity};

/// The prefix hashed before the signed fields.
pub const CROSSCERT_PREFIX: &[u8] = b"Tor TLS RSA/Ed25519 cross-certificate";

/// An RSA->Ed25519 cross-certificate, parsed but not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaCrosscert {
    /// The certified ed25519 identity.
    pub ed25519_key: Ed25519Identity,
    /// Hours since the epoch after which it is expired.
    pub expiration_hours: u32,
    /// The RSA signature (128 bytes for a 1024-bit key).
    pub signature: Vec<u8>,
}

impl RsaCrosscert {
    /// Decode a cross-certificate filling all of `bytes`. Never panics.
    pub fn decode(bytes: &[u8]) -> codec::Result<Self> {
        let mut r = Reader::new(bytes);
        let c = (|| {
            let ed25519_key = Ed25519Identity(r.take_array()?);
            let expiration_hours = r.take_u32()?;
            let signature = r.take_u8_prefixed()?.to_vec();
            Ok(RsaCrosscert {
                ed25519_key,
                expiration_hours,
                signature,
            })
        })()
        .map_err(codec::Error::truncated)?;
        r.should_be_exhausted()?;
        Ok(c)
    }

    /// The SHA-256 digest the RSA key signs.
    pub fn digest(&self) -> [u8; 32] {
        digest(&self.ed25519_key, self.expiration_hours)
    }

    /// Create and sign with the RSA identity key (`rng` blinds the RSA operation).
    pub fn create<R: CryptoRng + ?Sized>(
        rng: &mut R,
        rsa: &RsaIdentityKey,
        ed25519_key: Ed25519Identity,
        expiration_hours: u32,
    ) -> Result<Self, KeyError> {
        let signature = rsa.sign_digest(rng, &digest(&ed25519_key, expiration_hours))?;
        Ok(RsaCrosscert {
            ed25519_key,
            expiration_hours,
            signature,
        })
    }

    /// Encode to bytes.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::to_vec(self)
    }

    /// Seconds since the epoch after which it is expired.
    pub fn expiry_secs(&self) -> u64 {
        u64::from(self.expiration_hours) * 3600
    }

    /// True when expired at `now` (seconds since the epoch).
    pub fn is_expired_at(&self, now: u64) -> bool {
        now > self.expiry_secs()
    }

    /// Check the signature by `rsa` and the expiry at `now`.
    pub fn verify(&self, rsa: &RsaPublicIdentity, now: u64) -> Result<(), CertError> {
        rsa.verify_digest(&self.digest(), &self.signature)
            .map_err(|_| CertError::BadSignature)?;
        if self.is_expired_at(now) {
            return Err(CertError::Expired);
        }
        Ok(())
    }
}

fn digest(key: &Ed25519Identity, expiration_hours: u32) -> [u8; 32] {
    let mut h = Sha256::new();
    Digest::update(&mut h, CROSSCERT_PREFIX);
    Digest::update(&mut h, key.as_bytes());
    Digest::update(&mut h, expiration_hours.to_be_bytes());
    h.finalize().into()
}

impl Writeable for RsaCrosscert {
    fn write_onto<W: Writer + ?Sized>(&self, w: &mut W) -> Result<(), EncodeError> {
        w.write_all(self.ed25519_key.as_bytes());
        w.write_u32(self.expiration_hours);
        w.write_u8_prefixed(&self.signature)
    }
}
