//! Identity keys: RSA identity (DER, SHA-1 fingerprint = peer ID, signatures) and ed25519 keys.
//!
//! A relay's RSA-1024 identity key is named by the SHA-1 of its PKCS#1 DER encoding (Tor's
//! "fingerprint"); the Peersm layer uses the same 160-bit value as the peer's DHT ID. Peers
//! make fresh keys each session, so every constructor takes an injected RNG: the same seed
//! gives the same keys.
//!
//! RSA signatures are Tor's legacy kind: PKCS#1 v1.5 padding over a raw digest, without the
//! DigestInfo prefix.

use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use ed25519_dalek::{Signer, Verifier};
use rand_core::CryptoRng;
use rsa::pkcs1::{DecodeRsaPublicKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, PrivateKey, PublicKey};
use sha1::{Digest, Sha1};

#[cfg(test)]
mod tests;

/// Size in bits of Tor's RSA identity keys.
pub const RSA_IDENTITY_BITS: usize = 1024;

/// Why a key operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// RSA key generation failed (the RNG failed).
    Generate,
    /// Bytes are not a valid encoded key.
    BadEncoding,
    /// The RSA key does not have the size the protocol requires.
    WrongSize,
    /// The private-key operation failed (input too long for the modulus, say).
    Sign,
    /// The signature does not verify.
    BadSignature,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::Generate => "key generation failed",
            KeyError::BadEncoding => "malformed key encoding",
            KeyError::WrongSize => "key has the wrong size",
            KeyError::Sign => "signing failed",
            KeyError::BadSignature => "bad signature",
        })
    }
}

impl core::error::Error for KeyError {}

/// A 160-bit identity: the SHA-1 of a relay's PKCS#1 DER RSA public key.
///
/// Tor calls it the RSA identity fingerprint; the Peersm DHT uses it as the peer's ID.
/// Displayed as 40 uppercase hex digits, as tor prints fingerprints.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    /// Length in bytes.
    pub const LEN: usize = 20;

    /// The ID of the key whose PKCS#1 DER encoding is `der`.
    pub fn from_der(der: &[u8]) -> Self {
        PeerId(Sha1::digest(der).into())
    }

    /// The raw 20 bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Parse 40 hex digits (either case; an optional leading `$` as in tor's notation).
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let s = s.strip_prefix('$').unwrap_or(s);
        let b = s.as_bytes();
        if b.len() != 40 {
            return Err(KeyError::BadEncoding);
        }
        let mut out = [0u8; 20];
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            let hi = hex_val(pair[0]).ok_or(KeyError::BadEncoding)?;
            let lo = hex_val(pair[1]).ok_or(KeyError::BadEncoding)?;
            *o = (hi << 4) | lo;
        }
        Ok(PeerId(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for PeerId {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        PeerId::from_hex(s)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl From<[u8; 20]> for PeerId {
    fn from(b: [u8; 20]) -> Self {
        PeerId(b)
    }
}

/// An RSA public identity key.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublicIdentity {
    key: PublicKey,
}

impl fmt::Debug for RsaPublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaPublicIdentity({})", self.peer_id())
    }
}

impl RsaPublicIdentity {
    /// Decode a PKCS#1 DER `RSAPublicKey` (any size rsa accepts, 1024..=8192 bits).
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let key = PublicKey::from_pkcs1_der(der).map_err(|_| KeyError::BadEncoding)?;
        Ok(RsaPublicIdentity { key })
    }

    /// The PKCS#1 DER `RSAPublicKey` encoding: the bytes Tor hashes for the fingerprint.
    pub fn to_der(&self) -> Vec<u8> {
        // Encoding a valid in-memory key cannot fail; an empty result would only make the
        // fingerprint wrong, never panic.
        self.key
            .to_pkcs1_der()
            .map(|d| d.into_vec())
            .unwrap_or_default()
    }

    /// The SHA-1 of [`Self::to_der`]: Tor's fingerprint and the Peersm peer ID.
    pub fn peer_id(&self) -> PeerId {
        PeerId::from_der(&self.to_der())
    }

    /// The modulus, big-endian, without leading zeros (128 bytes for a 1024-bit key).
    pub fn modulus(&self) -> Vec<u8> {
        self.key.n_bytes().into_vec()
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> usize {
        self.key.n().as_ref().bit_width() as usize
    }

    /// Verify a Tor-style signature: PKCS#1 v1.5 over the raw `digest`, no DigestInfo.
    pub fn verify_digest(&self, digest: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        self.key
            .verify(Pkcs1v15Sign::new_unprefixed(), digest, signature)
            .map_err(|_| KeyError::BadSignature)
    }

    /// Verify a standard PKCS#1 v1.5 signature with SHA-256 (X.509's
    /// sha256WithRSAEncryption) over `digest` = SHA-256(message).
    pub fn verify_sha256_digestinfo(
        &self,
        digest: &[u8; 32],
        signature: &[u8],
    ) -> Result<(), KeyError> {
        self.key
            .verify(Pkcs1v15Sign::new::<sha2::Sha256>(), digest, signature)
            .map_err(|_| KeyError::BadSignature)
    }

    /// The underlying rsa key.
    pub fn as_rsa(&self) -> &PublicKey {
        &self.key
    }
}

/// An RSA private identity key (1024 bits, as Tor's identity keys are).
#[derive(Clone)]
pub struct RsaIdentityKey {
    key: PrivateKey,
    public: RsaPublicIdentity,
}

impl fmt::Debug for RsaIdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaIdentityKey({})", self.public.peer_id())
    }
}

impl RsaIdentityKey {
    /// A fresh 1024-bit key with exponent 65537, drawn from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<Self, KeyError> {
        let key = PrivateKey::new(rng, RSA_IDENTITY_BITS).map_err(|_| KeyError::Generate)?;
        let public = RsaPublicIdentity {
            key: key.to_public_key(),
        };
        Ok(RsaIdentityKey { key, public })
    }

    /// The public half.
    pub fn public(&self) -> &RsaPublicIdentity {
        &self.public
    }

    /// The fingerprint / peer ID of this key.
    pub fn peer_id(&self) -> PeerId {
        self.public.peer_id()
    }

    /// Tor-style signature: PKCS#1 v1.5 over the raw `digest`, no DigestInfo. `rng` blinds
    /// the private-key operation; the signature itself is deterministic.
    pub fn sign_digest<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        digest: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        self.key
            .sign_with_rng(rng, Pkcs1v15Sign::new_unprefixed(), digest)
            .map_err(|_| KeyError::Sign)
    }

    /// Standard sha256WithRSAEncryption signature (DigestInfo prefix) over
    /// `digest` = SHA-256(message), as X.509 certificates use.
    pub fn sign_sha256_digestinfo<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, KeyError> {
        self.key
            .sign_with_rng(rng, Pkcs1v15Sign::new::<sha2::Sha256>(), digest)
            .map_err(|_| KeyError::Sign)
    }
}

/// An ed25519 public key used as an identity (Tor's "Ed25519 identity").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ed25519Identity(pub [u8; 32]);

impl Ed25519Identity {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Verify an ed25519 `signature` over `msg` by this key. Fails as well when the
    /// bytes are not a valid curve point.
    pub fn verify(&self, msg: &[u8], signature: &[u8; 64]) -> Result<(), KeyError> {
        let vk =
            ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| KeyError::BadEncoding)?;
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        vk.verify(msg, &sig).map_err(|_| KeyError::BadSignature)
    }
}

impl fmt::Display for Ed25519Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Ed25519Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519Identity({self})")
    }
}

impl From<[u8; 32]> for Ed25519Identity {
    fn from(b: [u8; 32]) -> Self {
        Ed25519Identity(b)
    }
}

/// An ed25519 key pair: a relay's identity key, its medium-term signing key, or a link
/// authentication key.
#[derive(Clone)]
pub struct Ed25519Keypair {
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for Ed25519Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519Keypair({})", self.public())
    }
}

impl Ed25519Keypair {
    /// A fresh key pair drawn from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Ed25519Keypair {
            key: ed25519_dalek::SigningKey::generate(rng),
        }
    }

    /// The key pair of a 32-byte secret seed.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Ed25519Keypair {
            key: ed25519_dalek::SigningKey::from_bytes(secret),
        }
    }

    /// The public key.
    pub fn public(&self) -> Ed25519Identity {
        Ed25519Identity(self.key.verifying_key().to_bytes())
    }

    /// Sign `msg` (deterministic, as ed25519 is).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    /// Verify a signature by this key pair's public key.
    pub fn verify(&self, msg: &[u8], signature: &[u8; 64]) -> Result<(), KeyError> {
        self.public().verify(msg, signature)
    }
}
