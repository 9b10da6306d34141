//! The X.509 certificates of a CERTS cell: the self-signed RSA-1024 identity certificate
//! (type 2) and the link certificate it signs (type 1, the TLS certificate).
//!
//! Parsing uses the RustCrypto `x509-cert` crate (strict DER); the signed `tbsCertificate`
//! bytes are taken verbatim from the input rather than re-encoded. Creation writes the
//! few DER structures Tor's own certificates contain (v3, 8-byte serial,
//! sha256WithRSAEncryption, a single CN in issuer and subject, no extensions).

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use x509_cert::der::asn1::{GeneralizedTime, UtcTime};
use x509_cert::der::{Decode, Encode, Reader as _, SliceReader};

use super::CertError;
use crate::crypto::identity::{KeyError, RsaIdentityKey, RsaPublicIdentity};

/// DER of OID 1.2.840.113549.1.1.11, sha256WithRSAEncryption.
const OID_SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
/// DER of OID 1.2.840.113549.1.1.1, rsaEncryption.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// DER of OID 2.5.4.3, commonName.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// Tor accepts an X.509 certificate that becomes valid up to this long after `now`
/// (clock skew between relays).
pub const X509_PAST_SLOP_SECS: u64 = 2 * 24 * 3600;
/// Tor accepts an X.509 certificate that expired up to this long before `now`.
pub const X509_FUTURE_SLOP_SECS: u64 = 30 * 24 * 3600;

/// A parsed X.509 certificate with the fields the Tor link handshake needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct X509Cert {
    tbs: Vec<u8>,
    signature: Vec<u8>,
    key_is_rsa: bool,
    subject_key: Vec<u8>,
    spki: Vec<u8>,
    not_before: u64,
    not_after: u64,
}

impl X509Cert {
    /// Parse a DER certificate. Never panics; rejects anything but
    /// sha256WithRSAEncryption signatures (all Tor certificates since 0.2.4).
    pub fn parse(der: &[u8]) -> Result<Self, CertError> {
        let cert = x509_cert::Certificate::from_der(der).map_err(|_| CertError::BadX509)?;
        let tbs = raw_tbs(der).ok_or(CertError::BadX509)?;
        let tbsc = cert.tbs_certificate();
        if cert.signature_algorithm().oid.as_bytes() != OID_SHA256_WITH_RSA
            || tbsc.signature().oid.as_bytes() != OID_SHA256_WITH_RSA
        {
            return Err(CertError::UnsupportedAlgorithm);
        }
        let signature = cert
            .signature()
            .as_bytes()
            .ok_or(CertError::BadX509)?
            .to_vec();
        let spki_info = tbsc.subject_public_key_info();
        let key_is_rsa = spki_info.algorithm.oid.as_bytes() == OID_RSA_ENCRYPTION;
        let subject_key = spki_info.subject_public_key.raw_bytes().to_vec();
        let spki = spki_info.to_der().map_err(|_| CertError::BadX509)?;
        let v = tbsc.validity();
        Ok(X509Cert {
            tbs: tbs.to_vec(),
            signature,
            key_is_rsa,
            subject_key,
            spki,
            not_before: v.not_before.to_unix_duration().as_secs(),
            not_after: v.not_after.to_unix_duration().as_secs(),
        })
    }

    /// The certified RSA public key (errors if the key is not RSA).
    pub fn subject_rsa_key(&self) -> Result<RsaPublicIdentity, CertError> {
        if !self.key_is_rsa {
            return Err(CertError::UnsupportedAlgorithm);
        }
        RsaPublicIdentity::from_der(&self.subject_key).map_err(|_| CertError::BadX509)
    }

    /// The DER `SubjectPublicKeyInfo` of the certified key.
    pub fn subject_public_key_info(&self) -> &[u8] {
        &self.spki
    }

    /// The signed `tbsCertificate` bytes, as they appeared in the input.
    pub fn tbs_bytes(&self) -> &[u8] {
        &self.tbs
    }

    /// notBefore, seconds since the epoch.
    pub fn not_before(&self) -> u64 {
        self.not_before
    }

    /// notAfter, seconds since the epoch.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// Check the signature with `issuer`'s key.
    pub fn verify_signed_by(&self, issuer: &RsaPublicIdentity) -> Result<(), CertError> {
        let digest: [u8; 32] = Sha256::digest(&self.tbs).into();
        issuer
            .verify_sha256_digestinfo(&digest, &self.signature)
            .map_err(|_| CertError::BadSignature)
    }

    /// Check the validity period at `now`, with Tor's tolerances
    /// ([`X509_PAST_SLOP_SECS`], [`X509_FUTURE_SLOP_SECS`]).
    pub fn check_validity(&self, now: u64) -> Result<(), CertError> {
        if now.saturating_add(X509_PAST_SLOP_SECS) < self.not_before {
            return Err(CertError::NotYetValid);
        }
        if now.saturating_sub(X509_FUTURE_SLOP_SECS) > self.not_after {
            return Err(CertError::Expired);
        }
        Ok(())
    }
}

/// The verbatim first element of the outer SEQUENCE.
fn raw_tbs(der: &[u8]) -> Option<&[u8]> {
    let mut r = SliceReader::new(der).ok()?;
    let tbs = r
        .sequence(|r| {
            let tbs = r.tlv_bytes()?;
            r.tlv_bytes()?;
            r.tlv_bytes()?;
            Ok::<_, x509_cert::der::Error>(tbs)
        })
        .ok()?;
    r.finish().ok()?;
    Some(tbs)
}

/// What to put in a certificate we create.
#[derive(Clone, Debug)]
pub struct X509Params<'a> {
    /// Issuer common name (Tor: `www.<random>.com` for its identity certificate).
    pub issuer_cn: &'a str,
    /// Subject common name (the issuer's for a self-signed certificate).
    pub subject_cn: &'a str,
    /// DER `SubjectPublicKeyInfo` of the certified key.
    pub subject_spki: &'a [u8],
    /// Serial number bytes (Tor: 8 random bytes).
    pub serial: [u8; 8],
    /// notBefore, seconds since the epoch.
    pub not_before: u64,
    /// notAfter, seconds since the epoch.
    pub not_after: u64,
}

/// Create a DER certificate signed (sha256WithRSAEncryption) by `issuer`. `rng` blinds
/// the RSA operation only: the output is a function of the parameters.
pub fn create_x509<R: CryptoRng + ?Sized>(
    rng: &mut R,
    issuer: &RsaIdentityKey,
    p: &X509Params<'_>,
) -> Result<Vec<u8>, KeyError> {
    let alg = tlv(
        0x30,
        &[tlv(0x06, OID_SHA256_WITH_RSA), tlv(0x05, &[])].concat(),
    );
    let tbs = tlv(
        0x30,
        &[
            tlv(0xa0, &tlv(0x02, &[2])),
            der_uint(&p.serial),
            alg.clone(),
            name(p.issuer_cn),
            tlv(0x30, &[time(p.not_before)?, time(p.not_after)?].concat()),
            name(p.subject_cn),
            p.subject_spki.to_vec(),
        ]
        .concat(),
    );
    let digest: [u8; 32] = Sha256::digest(&tbs).into();
    let sig = issuer.sign_sha256_digestinfo(rng, &digest)?;
    let mut bits = Vec::with_capacity(sig.len() + 1);
    bits.push(0);
    bits.extend_from_slice(&sig);
    Ok(tlv(0x30, &[tbs, alg, tlv(0x03, &bits)].concat()))
}

/// DER `SubjectPublicKeyInfo` for an RSA key.
pub fn rsa_spki(key: &RsaPublicIdentity) -> Vec<u8> {
    let alg = tlv(
        0x30,
        &[tlv(0x06, OID_RSA_ENCRYPTION), tlv(0x05, &[])].concat(),
    );
    let mut bits = Vec::new();
    bits.push(0);
    bits.extend_from_slice(&key.to_der());
    tlv(0x30, &[alg, tlv(0x03, &bits)].concat())
}

/// A hostname like the ones Tor puts in its certificates: `prefix`, 8 to 20 random
/// base32 characters, `suffix`.
pub fn random_hostname<R: CryptoRng + ?Sized>(rng: &mut R, prefix: &str, suffix: &str) -> String {
    const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let n = 8 + (rng.next_u32() % 13) as usize;
    let mut s = String::with_capacity(prefix.len() + n + suffix.len());
    s.push_str(prefix);
    for _ in 0..n {
        s.push(char::from(B32[(rng.next_u32() % 32) as usize]));
    }
    s.push_str(suffix);
    s
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let be = (len as u64).to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (be.len() - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER from big-endian bytes: minimal, with a 0 byte if the top bit
/// is set.
fn der_uint(be: &[u8]) -> Vec<u8> {
    let skip = be
        .iter()
        .take_while(|b| **b == 0)
        .count()
        .min(be.len().saturating_sub(1));
    let digits = be.get(skip..).unwrap_or(&[]);
    let mut v = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(digits);
    tlv(0x02, &v)
}

fn name(cn: &str) -> Vec<u8> {
    let atv = tlv(
        0x30,
        &[tlv(0x06, OID_COMMON_NAME), tlv(0x0c, cn.as_bytes())].concat(),
    );
    tlv(0x30, &tlv(0x31, &atv))
}

/// UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5).
fn time(secs: u64) -> Result<Vec<u8>, KeyError> {
    let d = Duration::from_secs(secs);
    let enc = match UtcTime::from_unix_duration(d) {
        Ok(t) => t.to_der(),
        Err(_) => GeneralizedTime::from_unix_duration(d)
            .map_err(|_| KeyError::BadEncoding)?
            .to_der(),
    };
    enc.map_err(|_| KeyError::BadEncoding)
}
