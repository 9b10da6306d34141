//! Directory authority key certificates (dir-spec §3.1): an authority's long-term v3
//! identity key certifies a medium-term signing key, which signs consensuses.

use alloc::vec::Vec;
use core::net::SocketAddrV4;

use sha1::{Digest, Sha1};

use super::encoding::{hex_decode_array, parse_datetime};
use super::rsa_sig::DirRsaKey;
use super::tokens::{ParseError, Tokenizer, split_at_keyword};

/// The most certificates accepted from one `/tor/keys/...` response.
pub const MAX_CERTS_PER_DOCUMENT: usize = 64;
/// The largest certificate accepted, in bytes (real ones are under 3 KiB).
pub const MAX_CERT_LEN: usize = 16 * 1024;

/// Why a certificate or consensus failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The certificate's identity key does not hash to its `fingerprint`.
    FingerprintMismatch,
    /// The `dir-key-certification` signature (by the identity key) is bad.
    BadCertification,
    /// The `dir-key-crosscert` signature (by the signing key) is bad.
    BadCrossCert,
    /// Not current at the given time (not yet published, or expired / too old).
    NotTimely,
    /// Fewer than a majority of the configured authorities signed validly.
    NotEnoughSignatures {
        /// Distinct configured authorities with a valid signature.
        valid: usize,
        /// Configured authorities.
        configured: usize,
    },
}

impl core::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VerifyError::FingerprintMismatch => {
                f.write_str("identity key does not match fingerprint")
            }
            VerifyError::BadCertification => f.write_str("bad dir-key-certification signature"),
            VerifyError::BadCrossCert => f.write_str("bad dir-key-crosscert signature"),
            VerifyError::NotTimely => f.write_str("document not valid at this time"),
            VerifyError::NotEnoughSignatures { valid, configured } => {
                write!(f, "only {valid} of {configured} authorities signed validly")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for VerifyError {}

/// A verified authority key certificate. Only [`UnverifiedAuthCert::verify`] makes one,
/// so holding an `AuthCert` means both its signatures checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCert {
    /// The authority's v3 identity fingerprint (v3ident).
    pub fingerprint: [u8; 20],
    /// The `dir-address`, if given.
    pub dir_address: Option<SocketAddrV4>,
    /// `dir-key-published`, Unix seconds.
    pub published: u64,
    /// `dir-key-expires`, Unix seconds.
    pub expires: u64,
    /// The long-term identity key.
    pub identity_key: DirRsaKey,
    /// The medium-term signing key; its digest is named in `directory-signature` lines.
    pub signing_key: DirRsaKey,
}

impl AuthCert {
    /// Whether the certificate is current at `now` (Unix seconds): published and not
    /// expired.
    pub fn is_current(&self, now: u64) -> bool {
        self.published <= now && now <= self.expires
    }
}

/// A parsed, not yet verified, authority key certificate.
#[derive(Debug, Clone)]
pub struct UnverifiedAuthCert {
    cert: AuthCert,
    crosscert: Vec<u8>,
    certification: Vec<u8>,
    signed_digest: [u8; 20],
}

impl UnverifiedAuthCert {
    /// Parses one `dir-key-certificate-version 3` document.
    pub fn parse(doc: &[u8]) -> Result<UnverifiedAuthCert, ParseError> {
        if doc.len() > MAX_CERT_LEN {
            return Err(ParseError::at(0, "certificate too large"));
        }
        let mut fingerprint = None;
        let mut dir_address = None;
        let mut published = None;
        let mut expires = None;
        let mut identity_key = None;
        let mut signing_key = None;
        let mut crosscert = None;
        let mut certification = None;
        let mut signed_digest = None;
        let mut first = true;
        for item in Tokenizer::from_bytes(doc)? {
            let item = item?;
            if certification.is_some() {
                return Err(item.err("item after dir-key-certification"));
            }
            if first {
                if item.keyword != "dir-key-certificate-version" || item.args_text.trim_end() != "3"
                {
                    return Err(item.err("expected dir-key-certificate-version 3"));
                }
                first = false;
                continue;
            }
            let dup = |set: bool| {
                if set {
                    Err(item.err("duplicate item"))
                } else {
                    Ok(())
                }
            };
            match item.keyword {
                "fingerprint" => {
                    dup(fingerprint.is_some())?;
                    let hex = item.arg(0, "fingerprint missing")?;
                    fingerprint =
                        Some(hex_decode_array::<20>(hex).ok_or(item.err("bad fingerprint"))?);
                }
                "dir-address" => {
                    dup(dir_address.is_some())?;
                    let a = item.arg(0, "dir-address missing")?;
                    dir_address = Some(a.parse().map_err(|_| item.err("bad dir-address"))?);
                }
                "dir-key-published" | "dir-key-expires" => {
                    let t =
                        parse_datetime(item.arg(0, "date missing")?, item.arg(1, "time missing")?)
                            .ok_or(item.err("bad timestamp"))?;
                    let slot = if item.keyword == "dir-key-published" {
                        &mut published
                    } else {
                        &mut expires
                    };
                    dup(slot.is_some())?;
                    *slot = Some(t);
                }
                "dir-identity-key" | "dir-signing-key" => {
                    let der = item.object_labelled(&["RSA PUBLIC KEY"])?;
                    let key = DirRsaKey::from_pkcs1_der(der).ok_or(item.err("bad RSA key"))?;
                    let slot = if item.keyword == "dir-identity-key" {
                        &mut identity_key
                    } else {
                        &mut signing_key
                    };
                    dup(slot.is_some())?;
                    *slot = Some(key);
                }
                "dir-key-crosscert" => {
                    dup(crosscert.is_some())?;
                    crosscert = Some(
                        item.object_labelled(&["ID SIGNATURE", "SIGNATURE"])?
                            .to_vec(),
                    );
                }
                "dir-key-certification" => {
                    // Signed: from the start through "dir-key-certification\n".
                    let signed_end = item.start + "dir-key-certification\n".len();
                    let signed = doc.get(..signed_end).ok_or(item.err("truncated"))?;
                    if !signed.ends_with(b"dir-key-certification\n") {
                        return Err(item.err("dir-key-certification takes no arguments"));
                    }
                    signed_digest = Some(Sha1::digest(signed).into());
                    certification = Some(item.object_labelled(&["SIGNATURE"])?.to_vec());
                }
                _ => {} // Unknown items are ignored, as the meta-format requires.
            }
        }
        let missing = |what| ParseError::at(0, what);
        let cert = AuthCert {
            fingerprint: fingerprint.ok_or(missing("fingerprint missing"))?,
            dir_address,
            published: published.ok_or(missing("dir-key-published missing"))?,
            expires: expires.ok_or(missing("dir-key-expires missing"))?,
            identity_key: identity_key.ok_or(missing("dir-identity-key missing"))?,
            signing_key: signing_key.ok_or(missing("dir-signing-key missing"))?,
        };
        Ok(UnverifiedAuthCert {
            cert,
            crosscert: crosscert.ok_or(missing("dir-key-crosscert missing"))?,
            certification: certification.ok_or(missing("dir-key-certification missing"))?,
            signed_digest: signed_digest.ok_or(missing("dir-key-certification missing"))?,
        })
    }

    /// The fingerprint the certificate claims, before verification (to match it against
    /// the configured authorities first).
    pub fn claimed_fingerprint(&self) -> [u8; 20] {
        self.cert.fingerprint
    }

    /// Checks the identity key against the fingerprint, the certification by the
    /// identity key and the cross-certification by the signing key (over the identity
    /// key's digest). Time is checked separately ([`AuthCert::is_current`]).
    pub fn verify(self) -> Result<AuthCert, VerifyError> {
        let id_digest = self.cert.identity_key.digest();
        if id_digest != self.cert.fingerprint {
            return Err(VerifyError::FingerprintMismatch);
        }
        if !self
            .cert
            .identity_key
            .verifies(&self.signed_digest, &self.certification)
        {
            return Err(VerifyError::BadCertification);
        }
        if !self.cert.signing_key.verifies(&id_digest, &self.crosscert) {
            return Err(VerifyError::BadCrossCert);
        }
        Ok(self.cert)
    }
}

/// Parses a concatenation of certificates (a `/tor/keys/...` response body). Each
/// piece is parsed on its own; at most [`MAX_CERTS_PER_DOCUMENT`] are returned.
pub fn parse_authcerts(
    body: &[u8],
) -> Result<Vec<Result<UnverifiedAuthCert, ParseError>>, ParseError> {
    let text = core::str::from_utf8(body).map_err(|_| ParseError::at(0, "not UTF-8"))?;
    let pieces = split_at_keyword(text, "dir-key-certificate-version");
    if pieces.len() > MAX_CERTS_PER_DOCUMENT {
        return Err(ParseError::at(0, "too many certificates"));
    }
    Ok(pieces
        .into_iter()
        .map(|p| UnverifiedAuthCert::parse(p.as_bytes()))
        .collect())
}
