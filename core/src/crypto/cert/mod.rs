//! Tor certificates: the ed25519 certificate format, the RSA->ed25519 cross-certificate,
//! the X.509 certificates of a CERTS cell, and checking (or producing) a responder's full
//! CERTS set the way Tor does.
//!
//! Time is an argument everywhere (`now`, seconds since the Unix epoch): nothing here
//! reads a clock.

use core::fmt;

mod certs;
mod cross;
mod ed;
mod x509;

#[cfg(test)]
mod tests;

pub use certs::{CertsError, RelayCertSet, RelayKeys, ResponderIdentity, validate_responder_certs};
pub use cross::{CROSSCERT_PREFIX, RsaCrosscert};
pub use ed::{
    CertExt, CertKeyType, CertType, ED25519_CERT_VERSION, EXT_FLAG_AFFECTS_VALIDATION, Ed25519Cert,
    ExtType, hours_ceil,
};
pub use x509::{
    X509_FUTURE_SLOP_SECS, X509_PAST_SLOP_SECS, X509Cert, X509Params, create_x509, random_hostname,
    rsa_spki,
};

/// Why one certificate is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertError {
    /// The signature does not verify (or the signing key is not a valid key).
    BadSignature,
    /// Expired at the given time.
    Expired,
    /// Not valid yet at the given time (X.509 notBefore).
    NotYetValid,
    /// No signing key was given and the certificate names none.
    MissingSigningKey,
    /// The key in the signed-with-ed25519-key extension is not the expected one.
    SigningKeyMismatch,
    /// The X.509 DER is malformed.
    BadX509,
    /// An X.509 signature or key algorithm other than the ones Tor uses.
    UnsupportedAlgorithm,
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertError::BadSignature => "bad certificate signature",
            CertError::Expired => "certificate expired",
            CertError::NotYetValid => "certificate not yet valid",
            CertError::MissingSigningKey => "no signing key for certificate",
            CertError::SigningKeyMismatch => "certificate signed by an unexpected key",
            CertError::BadX509 => "malformed X.509 certificate",
            CertError::UnsupportedAlgorithm => "unsupported X.509 algorithm",
        })
    }
}

impl core::error::Error for CertError {}
