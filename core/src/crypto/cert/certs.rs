//! A responder's CERTS cell entries: checking them as Tor's client does (tor-spec
//! "Validating a responder's CERTS cell") and producing them as a Tor relay does.
//!
//! Entries come in as `(cert_type, body)` pairs, so this code does not depend on the
//! CERTS cell codec.

use alloc::vec::Vec;
use core::fmt;

use rand_core::CryptoRng;
use sha2::{Digest, Sha256};

use super::{
    CertError, CertKeyType, CertType, Ed25519Cert, RsaCrosscert, X509Cert, X509Params, create_x509,
    hours_ceil, random_hostname, rsa_spki,
};
use crate::crypto::identity::{
    Ed25519Identity, Ed25519Keypair, KeyError, PeerId, RSA_IDENTITY_BITS, RsaIdentityKey,
    RsaPublicIdentity,
};

/// Why a responder's CERTS entries do not authenticate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertsError {
    /// A required certificate type is absent.
    Missing(u8),
    /// More than one certificate of a known type (1..=7).
    Duplicate(u8),
    /// A certificate body does not parse.
    Malformed(u8),
    /// An ed25519 certificate of the wrong internal type or certified-key type for its
    /// CERTS slot.
    WrongCertType(u8),
    /// A certificate failed a check (signature, expiry, signing key).
    Invalid {
        /// The CERTS type of the certificate.
        cert_type: u8,
        /// What was wrong.
        error: CertError,
    },
    /// The RSA identity key is not 1024 bits.
    IdentityKeySize,
    /// The cross-certificate's ed25519 key is not the one that signed the
    /// identity->signing certificate.
    IdentityMismatch,
    /// The link certificate (type 5's certified digest, or type 1 in the RSA-only case)
    /// does not match the TLS certificate of the connection.
    LinkKeyMismatch,
}

impl fmt::Display for CertsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertsError::Missing(t) => write!(f, "CERTS: no certificate of type {t}"),
            CertsError::Duplicate(t) => write!(f, "CERTS: several certificates of type {t}"),
            CertsError::Malformed(t) => write!(f, "CERTS: malformed certificate of type {t}"),
            CertsError::WrongCertType(t) => {
                write!(f, "CERTS: wrong kind of certificate as type {t}")
            }
            CertsError::Invalid { cert_type, error } => {
                write!(f, "CERTS: certificate of type {cert_type}: {error}")
            }
            CertsError::IdentityKeySize => f.write_str("CERTS: RSA identity key is not 1024 bits"),
            CertsError::IdentityMismatch => {
                f.write_str("CERTS: cross-certificate names another ed25519 identity")
            }
            CertsError::LinkKeyMismatch => {
                f.write_str("CERTS: link certificate does not match the TLS certificate")
            }
        }
    }
}

impl core::error::Error for CertsError {}

/// Who the responder proved to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderIdentity {
    /// The RSA identity fingerprint (peer ID).
    pub rsa_id: PeerId,
    /// The RSA identity key.
    pub rsa_key: RsaPublicIdentity,
    /// The ed25519 identity, unless the responder authenticated with RSA only (types 1+2).
    pub ed25519_id: Option<Ed25519Identity>,
}

fn invalid(cert_type: u8) -> impl Fn(CertError) -> CertsError {
    move |error| CertsError::Invalid { cert_type, error }
}

/// Check a responder's CERTS entries at `now` (seconds since the epoch) against the
/// SHA-256 of the TLS certificate it presented.
///
/// If any ed25519 certificate (type 4, 5 or 7) is present, the ed25519 rules apply:
/// exactly one each of types 2, 4, 5 and 7; type 2 a self-signed 1024-bit RSA X.509
/// certificate within its validity; type 7 signed by that RSA key, unexpired; type 4
/// signed by the ed25519 identity its extension names, which must be the key type 7
/// certifies; type 5 signed by the key type 4 certifies and certifying
/// `tls_cert_sha256`. A type 1 certificate is then ignored.
/// Otherwise the RSA-only rules apply: exactly one each of types 1 and 2, both valid at
/// `now`, type 2 self-signed by a 1024-bit key that also signed type 1, and the SHA-256
/// of type 1 equal to `tls_cert_sha256` (Tor's link certificate is its TLS certificate).
///
/// Unknown certificate types are ignored; a second certificate of types 1 to 7 is an
/// error.
pub fn validate_responder_certs(
    entries: &[(u8, &[u8])],
    tls_cert_sha256: &[u8; 32],
    now: u64,
) -> Result<ResponderIdentity, CertsError> {
    let mut slots: [Option<&[u8]>; 8] = [None; 8];
    for &(t, body) in entries {
        if let Some(slot) = slots.get_mut(usize::from(t)).filter(|_| t != 0) {
            if slot.is_some() {
                return Err(CertsError::Duplicate(t));
            }
            *slot = Some(body);
        }
    }
    let get = |t: u8| slots[usize::from(t)].ok_or(CertsError::Missing(t));
    let ed_case = slots[4].is_some() || slots[5].is_some() || slots[7].is_some();

    // The RSA identity (type 2) is needed in both cases.
    let id_cert = X509Cert::parse(get(2)?).map_err(|_| CertsError::Malformed(2))?;
    let rsa_key = id_cert
        .subject_rsa_key()
        .map_err(|_| CertsError::Malformed(2))?;
    if rsa_key.bits() != RSA_IDENTITY_BITS {
        return Err(CertsError::IdentityKeySize);
    }

    if !ed_case {
        let link_body = get(1)?;
        let link_cert = X509Cert::parse(link_body).map_err(|_| CertsError::Malformed(1))?;
        id_cert.verify_signed_by(&rsa_key).map_err(invalid(2))?;
        link_cert.verify_signed_by(&rsa_key).map_err(invalid(1))?;
        id_cert.check_validity(now).map_err(invalid(2))?;
        link_cert.check_validity(now).map_err(invalid(1))?;
        let digest: [u8; 32] = Sha256::digest(link_body).into();
        if &digest != tls_cert_sha256 {
            return Err(CertsError::LinkKeyMismatch);
        }
        return Ok(ResponderIdentity {
            rsa_id: rsa_key.peer_id(),
            rsa_key,
            ed25519_id: None,
        });
    }

    let cross = RsaCrosscert::decode(get(7)?).map_err(|_| CertsError::Malformed(7))?;
    let id_signing = Ed25519Cert::decode(get(4)?).map_err(|_| CertsError::Malformed(4))?;
    let signing_tls = Ed25519Cert::decode(get(5)?).map_err(|_| CertsError::Malformed(5))?;
    if id_signing.cert_type != CertType::IDENTITY_V_SIGNING
        || id_signing.cert_key_type != CertKeyType::ED25519
    {
        return Err(CertsError::WrongCertType(4));
    }
    if signing_tls.cert_type != CertType::SIGNING_V_TLS_CERT
        || signing_tls.cert_key_type != CertKeyType::SHA256_OF_X509
    {
        return Err(CertsError::WrongCertType(5));
    }

    id_cert.verify_signed_by(&rsa_key).map_err(invalid(2))?;
    id_cert.check_validity(now).map_err(invalid(2))?;
    cross.verify(&rsa_key, now).map_err(invalid(7))?;

    // Tor requires the identity->signing certificate to carry the identity key.
    let ed_id = id_signing.signing_key().ok_or(CertsError::Invalid {
        cert_type: 4,
        error: CertError::MissingSigningKey,
    })?;
    id_signing.verify(Some(&ed_id), now).map_err(invalid(4))?;
    if ed_id != cross.ed25519_key {
        return Err(CertsError::IdentityMismatch);
    }
    let signing_key = id_signing.certified_ed25519();
    signing_tls
        .verify(Some(&signing_key), now)
        .map_err(invalid(5))?;
    if &signing_tls.certified_key != tls_cert_sha256 {
        return Err(CertsError::LinkKeyMismatch);
    }
    Ok(ResponderIdentity {
        rsa_id: rsa_key.peer_id(),
        rsa_key,
        ed25519_id: Some(ed_id),
    })
}

/// A relay's long- and medium-term keys.
#[derive(Clone, Debug)]
pub struct RelayKeys {
    /// RSA-1024 identity key (fingerprint = peer ID).
    pub rsa_identity: RsaIdentityKey,
    /// Ed25519 identity key.
    pub ed_identity: Ed25519Keypair,
    /// Ed25519 medium-term signing key, certified by the identity.
    pub ed_signing: Ed25519Keypair,
}

impl RelayKeys {
    /// Fresh keys from `rng` (deterministic for a seeded RNG).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<Self, KeyError> {
        let rsa_identity = RsaIdentityKey::generate(rng)?;
        let ed_identity = Ed25519Keypair::generate(rng);
        let ed_signing = Ed25519Keypair::generate(rng);
        Ok(RelayKeys {
            rsa_identity,
            ed_identity,
            ed_signing,
        })
    }
}

/// Lifetime of the identity->signing certificate (Tor's default signing-key lifetime).
pub const SIGNING_KEY_LIFETIME_SECS: u64 = 30 * 24 * 3600;
/// Lifetime of the signing->TLS certificate.
pub const LINK_CERT_LIFETIME_SECS: u64 = 2 * 24 * 3600;
/// Lifetime of the X.509 certificates and the cross-certificate.
pub const IDENTITY_CERT_LIFETIME_SECS: u64 = 365 * 24 * 3600;

/// The certificates a relay sends in its CERTS cell as responder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayCertSet {
    /// Type 1: the TLS link certificate signed by the RSA identity, when we made one.
    pub link_x509: Option<Vec<u8>>,
    /// Type 2: the self-signed RSA identity certificate.
    pub rsa_id_x509: Vec<u8>,
    /// Type 4: ed25519 identity -> signing key.
    pub id_signing: Vec<u8>,
    /// Type 5: signing key -> SHA-256 of the TLS certificate.
    pub signing_tls: Vec<u8>,
    /// Type 7: RSA identity -> ed25519 identity.
    pub crosscert: Vec<u8>,
    /// The SHA-256 of the TLS certificate that type 5 certifies.
    pub tls_cert_sha256: [u8; 32],
}

impl RelayCertSet {
    /// Certificates 2, 4, 5 and 7 for a TLS certificate with SHA-256 `tls_cert_sha256`
    /// (made by the TLS layer with any key), valid from `now`.
    pub fn generate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        keys: &RelayKeys,
        tls_cert_sha256: [u8; 32],
        now: u64,
    ) -> Result<Self, KeyError> {
        Self::build(rng, keys, None, tls_cert_sha256, now)
    }

    /// As Tor does: also create the type 1 link certificate, for the TLS key with DER
    /// `SubjectPublicKeyInfo` `link_spki`, signed by the RSA identity. The TLS layer must
    /// present exactly `link_x509` (type 5 certifies its SHA-256).
    pub fn generate_with_link_cert<R: CryptoRng + ?Sized>(
        rng: &mut R,
        keys: &RelayKeys,
        link_spki: &[u8],
        now: u64,
    ) -> Result<Self, KeyError> {
        let (start, end) = x509_validity(now);
        let id_cn = random_hostname(rng, "www.", ".com");
        let link_cn = random_hostname(rng, "www.", ".net");
        let mut serial = [0u8; 8];
        rng.fill_bytes(&mut serial);
        let link = create_x509(
            rng,
            &keys.rsa_identity,
            &X509Params {
                issuer_cn: &id_cn,
                subject_cn: &link_cn,
                subject_spki: link_spki,
                serial,
                not_before: start,
                not_after: end,
            },
        )?;
        let digest = Sha256::digest(&link).into();
        Self::build_named(rng, keys, Some(link), digest, now, &id_cn)
    }

    fn build<R: CryptoRng + ?Sized>(
        rng: &mut R,
        keys: &RelayKeys,
        link_x509: Option<Vec<u8>>,
        tls_cert_sha256: [u8; 32],
        now: u64,
    ) -> Result<Self, KeyError> {
        let id_cn = random_hostname(rng, "www.", ".com");
        Self::build_named(rng, keys, link_x509, tls_cert_sha256, now, &id_cn)
    }

    fn build_named<R: CryptoRng + ?Sized>(
        rng: &mut R,
        keys: &RelayKeys,
        link_x509: Option<Vec<u8>>,
        tls_cert_sha256: [u8; 32],
        now: u64,
        id_cn: &str,
    ) -> Result<Self, KeyError> {
        let (start, end) = x509_validity(now);
        let mut serial = [0u8; 8];
        rng.fill_bytes(&mut serial);
        let rsa_id_x509 = create_x509(
            rng,
            &keys.rsa_identity,
            &X509Params {
                issuer_cn: id_cn,
                subject_cn: id_cn,
                subject_spki: &rsa_spki(keys.rsa_identity.public()),
                serial,
                not_before: start,
                not_after: end,
            },
        )?;
        let enc = |c: &Ed25519Cert| c.encode().map_err(|_| KeyError::BadEncoding);
        let id_signing = enc(&Ed25519Cert::create(
            CertType::IDENTITY_V_SIGNING,
            hours_ceil(now.saturating_add(SIGNING_KEY_LIFETIME_SECS)),
            CertKeyType::ED25519,
            keys.ed_signing.public().0,
            &keys.ed_identity,
            true,
        ))?;
        let signing_tls = enc(&Ed25519Cert::create(
            CertType::SIGNING_V_TLS_CERT,
            hours_ceil(now.saturating_add(LINK_CERT_LIFETIME_SECS)),
            CertKeyType::SHA256_OF_X509,
            tls_cert_sha256,
            &keys.ed_signing,
            false,
        ))?;
        let crosscert = RsaCrosscert::create(
            rng,
            &keys.rsa_identity,
            keys.ed_identity.public(),
            hours_ceil(now.saturating_add(IDENTITY_CERT_LIFETIME_SECS)),
        )?
        .encode()
        .map_err(|_| KeyError::BadEncoding)?;
        Ok(RelayCertSet {
            link_x509,
            rsa_id_x509,
            id_signing,
            signing_tls,
            crosscert,
            tls_cert_sha256,
        })
    }

    /// The CERTS cell entries, in type order (1 if present, 2, 4, 5, 7).
    pub fn entries(&self) -> Vec<(u8, &[u8])> {
        let mut v = Vec::with_capacity(5);
        if let Some(l) = &self.link_x509 {
            v.push((1, l.as_slice()));
        }
        v.push((2, self.rsa_id_x509.as_slice()));
        v.push((4, self.id_signing.as_slice()));
        v.push((5, self.signing_tls.as_slice()));
        v.push((7, self.crosscert.as_slice()));
        v
    }
}

/// X.509 validity for certificates made at `now`: from the start of the previous day
/// (whole days, as Tor rounds) for [`IDENTITY_CERT_LIFETIME_SECS`].
fn x509_validity(now: u64) -> (u64, u64) {
    let start = (now - now % 86400).saturating_sub(86400);
    (start, start.saturating_add(IDENTITY_CERT_LIFETIME_SECS))
}
