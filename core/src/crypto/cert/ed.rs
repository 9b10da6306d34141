//! Tor's ed25519 certificate (cert-spec.txt, "Certificate format").
//!
//! ```text
//! VERSION 1 | CERT_TYPE 1 | EXPIRATION_DATE 4 (hours) | CERT_KEY_TYPE 1 |
//! CERTIFIED_KEY 32 | N_EXTENSIONS 1 | extensions | SIGNATURE 64
//! extension: ExtLength 2 | ExtType 1 | ExtFlags 1 | ExtData
//! ```
//!
//! The signature is ed25519 over every byte before it. The encoding is canonical (every
//! length is exact and nothing may follow the signature), so re-encoding a parsed
//! certificate gives back its signed bytes.

use alloc::vec::Vec;

use super::CertError;
use crate::codec::{self, EncodeError, Reader, Writeable, Writer};
use crate::crypto::identity::{Ed25519Identity, Ed25519Keypair};

/// The only certificate version.
pub const ED25519_CERT_VERSION: u8 = 1;

/// What a certificate certifies (cert-spec "Certificate types"). Open: unknown values
/// round-trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CertType(pub u8);

impl CertType {
    /// Link key certificate certified by RSA1024 identity (X.509, CERTS cell only).
    pub const TLS_LINK_X509: CertType = CertType(1);
    /// RSA1024 identity certificate, self-signed (X.509, CERTS cell only).
    pub const RSA_ID_X509: CertType = CertType(2);
    /// RSA1024 AUTHENTICATE cell link certificate (X.509, CERTS cell only).
    pub const LINK_AUTH_X509: CertType = CertType(3);
    /// Ed25519 signing key, signed with the identity key.
    pub const IDENTITY_V_SIGNING: CertType = CertType(4);
    /// SHA-256 of a TLS certificate, signed with the signing key.
    pub const SIGNING_V_TLS_CERT: CertType = CertType(5);
    /// Ed25519 AUTHENTICATE cell key, signed with the signing key.
    pub const SIGNING_V_LINK_AUTH: CertType = CertType(6);
    /// RSA->Ed25519 cross-certificate (CERTS cell only).
    pub const RSA_ID_V_IDENTITY: CertType = CertType(7);
    /// Onion service: short-term descriptor signing key, signed with blinded public key.
    pub const HS_BLINDED_ID_V_SIGNING: CertType = CertType(8);
    /// Onion service: intro point authentication key, cross-certified by the descriptor
    /// signing key.
    pub const HS_IP_V_SIGNING: CertType = CertType(9);
    /// ntor onion key cross-certifying the ed25519 identity key.
    pub const NTOR_CC_IDENTITY: CertType = CertType(10);
    /// Onion service: ntor-extra encryption key, cross-certified with the descriptor
    /// signing key.
    pub const HS_IP_CC_SIGNING: CertType = CertType(11);
}

impl From<u8> for CertType {
    fn from(v: u8) -> Self {
        CertType(v)
    }
}

/// The kind of the certified key (cert-spec "CERT_KEY_TYPE"). Open newtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CertKeyType(pub u8);

impl CertKeyType {
    /// An ed25519 public key.
    pub const ED25519: CertKeyType = CertKeyType(1);
    /// SHA-256 of an RSA key.
    pub const SHA256_OF_RSA: CertKeyType = CertKeyType(2);
    /// SHA-256 of an X.509 certificate.
    pub const SHA256_OF_X509: CertKeyType = CertKeyType(3);
}

/// The type of a certificate extension. Open newtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtType(pub u8);

impl ExtType {
    /// The ed25519 key that signed the certificate (32 bytes).
    pub const SIGNED_WITH_ED25519_KEY: ExtType = ExtType(4);
}

/// Extension flag: a reader that does not understand the extension must reject the
/// certificate.
pub const EXT_FLAG_AFFECTS_VALIDATION: u8 = 0x01;

/// One certificate extension, kept verbatim (unknown ones included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertExt {
    /// Its type.
    pub ext_type: ExtType,
    /// Its flags.
    pub flags: u8,
    /// Its data (32 bytes for [`ExtType::SIGNED_WITH_ED25519_KEY`]).
    pub data: Vec<u8>,
}

/// A Tor ed25519 certificate, parsed but not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519Cert {
    /// What it certifies.
    pub cert_type: CertType,
    /// Hours since the Unix epoch after which the certificate is expired.
    pub expiration_hours: u32,
    /// What kind of key `certified_key` is.
    pub cert_key_type: CertKeyType,
    /// The certified key (or digest).
    pub certified_key: [u8; 32],
    /// The extensions, in order.
    pub extensions: Vec<CertExt>,
    /// ed25519 signature over all preceding bytes.
    pub signature: [u8; 64],
}

/// Round up seconds to whole hours, as Tor does for expiration dates.
pub fn hours_ceil(secs: u64) -> u32 {
    u32::try_from(secs.div_ceil(3600)).unwrap_or(u32::MAX)
}

impl Ed25519Cert {
    /// Decode a certificate that fills all of `bytes`. Never panics. Rejects a version
    /// other than 1, a signed-with-key extension of the wrong length, and any unknown
    /// extension flagged AFFECTS_VALIDATION (as Tor does at parse time).
    pub fn decode(bytes: &[u8]) -> codec::Result<Self> {
        let mut r = Reader::new(bytes);
        let c = Self::take(&mut r).map_err(codec::Error::truncated)?;
        r.should_be_exhausted()?;
        Ok(c)
    }

    fn take(r: &mut Reader<'_>) -> codec::Result<Self> {
        if r.take_u8()? != ED25519_CERT_VERSION {
            return Err(codec::Error::Invalid(
                "ed25519 certificate version is not 1",
            ));
        }
        let cert_type = CertType(r.take_u8()?);
        let expiration_hours = r.take_u32()?;
        let cert_key_type = CertKeyType(r.take_u8()?);
        let certified_key = r.take_array()?;
        let n_ext = r.take_u8()?;
        let mut extensions = Vec::with_capacity(usize::from(n_ext));
        for _ in 0..n_ext {
            let len = usize::from(r.take_u16()?);
            let ext_type = ExtType(r.take_u8()?);
            let flags = r.take_u8()?;
            let data = r.take(len)?;
            if ext_type == ExtType::SIGNED_WITH_ED25519_KEY {
                if data.len() != 32 {
                    return Err(codec::Error::BadLength("signed-with-ed25519-key extension"));
                }
            } else if flags & EXT_FLAG_AFFECTS_VALIDATION != 0 {
                return Err(codec::Error::Invalid(
                    "unknown extension affects validation",
                ));
            }
            extensions.push(CertExt {
                ext_type,
                flags,
                data: data.to_vec(),
            });
        }
        let signature = r.take_array()?;
        Ok(Ed25519Cert {
            cert_type,
            expiration_hours,
            cert_key_type,
            certified_key,
            extensions,
            signature,
        })
    }

    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = Vec::new();
        self.write_unsigned(&mut w)?;
        Ok(w)
    }

    fn write_unsigned<W: Writer + ?Sized>(&self, w: &mut W) -> Result<(), EncodeError> {
        w.write_u8(ED25519_CERT_VERSION);
        w.write_u8(self.cert_type.0);
        w.write_u32(self.expiration_hours);
        w.write_u8(self.cert_key_type.0);
        w.write_all(&self.certified_key);
        let n = u8::try_from(self.extensions.len())
            .map_err(|_| EncodeError::TooLong("certificate extensions"))?;
        w.write_u8(n);
        for e in &self.extensions {
            let len = u16::try_from(e.data.len())
                .map_err(|_| EncodeError::TooLong("certificate extension"))?;
            w.write_u16(len);
            w.write_u8(e.ext_type.0);
            w.write_u8(e.flags);
            w.write_all(&e.data);
        }
        Ok(())
    }

    /// Encode to bytes.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::to_vec(self)
    }

    /// Create and sign a certificate with `signer`. With `include_signing_key` the
    /// signer's public key goes into a signed-with-ed25519-key extension (Tor includes it
    /// in IDENTITY_V_SIGNING certificates so that they are self-contained).
    pub fn create(
        cert_type: CertType,
        expiration_hours: u32,
        cert_key_type: CertKeyType,
        certified_key: [u8; 32],
        signer: &Ed25519Keypair,
        include_signing_key: bool,
    ) -> Self {
        let mut extensions = Vec::new();
        if include_signing_key {
            extensions.push(CertExt {
                ext_type: ExtType::SIGNED_WITH_ED25519_KEY,
                flags: 0,
                data: signer.public().0.to_vec(),
            });
        }
        let mut c = Ed25519Cert {
            cert_type,
            expiration_hours,
            cert_key_type,
            certified_key,
            extensions,
            signature: [0; 64],
        };
        // At most one extension of 32 bytes: encoding cannot fail.
        let msg = c.signed_bytes().unwrap_or_default();
        c.signature = signer.sign(&msg);
        c
    }

    /// The key named by the signed-with-ed25519-key extension, if present.
    pub fn signing_key(&self) -> Option<Ed25519Identity> {
        self.extensions
            .iter()
            .find(|e| e.ext_type == ExtType::SIGNED_WITH_ED25519_KEY)
            .and_then(|e| <[u8; 32]>::try_from(e.data.as_slice()).ok())
            .map(Ed25519Identity)
    }

    /// The certified key as an ed25519 identity (meaningful when `cert_key_type` is
    /// [`CertKeyType::ED25519`]).
    pub fn certified_ed25519(&self) -> Ed25519Identity {
        Ed25519Identity(self.certified_key)
    }

    /// Seconds since the epoch after which the certificate is expired.
    pub fn expiry_secs(&self) -> u64 {
        u64::from(self.expiration_hours) * 3600
    }

    /// True when expired at `now` (seconds since the epoch): Tor's `now > valid_until`.
    pub fn is_expired_at(&self, now: u64) -> bool {
        now > self.expiry_secs()
    }

    /// Check the signature and expiry. The signing key is `key` if given, else the one in
    /// the extension; when both exist they must agree. Returns the key that signed.
    pub fn verify(
        &self,
        key: Option<&Ed25519Identity>,
        now: u64,
    ) -> Result<Ed25519Identity, CertError> {
        let signer = match (key, self.signing_key()) {
            (Some(k), Some(ext)) if *k != ext => return Err(CertError::SigningKeyMismatch),
            (Some(k), _) => *k,
            (None, Some(ext)) => ext,
            (None, None) => return Err(CertError::MissingSigningKey),
        };
        let msg = self.signed_bytes().map_err(|_| CertError::BadSignature)?;
        signer
            .verify(&msg, &self.signature)
            .map_err(|_| CertError::BadSignature)?;
        if self.is_expired_at(now) {
            return Err(CertError::Expired);
        }
        Ok(signer)
    }
}

impl Writeable for Ed25519Cert {
    fn write_onto<W: Writer + ?Sized>(&self, w: &mut W) -> Result<(), EncodeError> {
        self.write_unsigned(w)?;
        w.write_all(&self.signature);
        Ok(())
    }
}
