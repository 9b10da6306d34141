//! RSA as directory documents use it: PKCS#1 DER public keys in `RSA PUBLIC KEY`
//! objects, and PKCS#1 v1.5 signatures over a raw digest (no DigestInfo prefix;
//! dir-spec §1.3 "signatures ... PKCS1-padded ... of the digest").

use rsa::PublicKey as RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use sha1::{Digest, Sha1};

/// A directory RSA public key with the DER it came from (its SHA-1 digest is the key's
/// fingerprint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirRsaKey {
    key: RsaPublicKey,
    digest: [u8; 20],
}

impl DirRsaKey {
    /// Decodes a PKCS#1 DER `RSAPublicKey` (1024 to 8192 bits); `None` if malformed.
    pub fn from_pkcs1_der(der: &[u8]) -> Option<DirRsaKey> {
        let key = RsaPublicKey::from_pkcs1_der(der).ok()?;
        Some(DirRsaKey {
            key,
            digest: Sha1::digest(der).into(),
        })
    }

    /// SHA-1 of the key's DER encoding: the fingerprint / v3ident / signing-key digest.
    pub fn digest(&self) -> [u8; 20] {
        self.digest
    }

    /// The key itself.
    pub fn key(&self) -> &RsaPublicKey {
        &self.key
    }

    /// Whether `signature` is this key's PKCS#1 v1.5 signature of the raw `digest`.
    pub fn verifies(&self, digest: &[u8], signature: &[u8]) -> bool {
        self.key
            .verify(rsa::Pkcs1v15Sign::new_unprefixed(), digest, signature)
            .is_ok()
    }
}
