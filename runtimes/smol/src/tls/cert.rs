//! The TLS certificate of a link: self-signed, random names, as tor relays present.

use std::fmt;
use std::io;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{cert_digest, random_hostname};

/// A TLS certificate and its private key, generated at start-up.
///
/// The key is ECDSA P-256: cheap to generate, and tor accepts any key type for the TLS
/// certificate since it only checks the certificate's SHA-256 against the CERTS cell.
pub struct LinkCert {
    der: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    digest: [u8; 32],
}

impl LinkCert {
    /// Generate a fresh self-signed certificate whose names look like tor's
    /// (`www.<random>.net`), so a link does not stand out by its certificate.
    pub fn generate() -> io::Result<Self> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(io::Error::other)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, random_hostname(".net")?);
        params.distinguished_name = name;
        let cert = params.self_signed(&key).map_err(io::Error::other)?;
        let der = cert.der().clone();
        let digest = cert_digest(&der);
        Ok(LinkCert {
            der,
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            digest,
        })
    }

    /// The certificate, DER-encoded.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 of [`LinkCert::der`]: what a CERTS type-5 certificate certifies.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The chain and key in rustls' form.
    pub(crate) fn rustls_parts(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.der.clone()],
            PrivateKeyDer::Pkcs8(self.key.clone_key()),
        )
    }
}

impl Clone for LinkCert {
    fn clone(&self) -> Self {
        LinkCert {
            der: self.der.clone(),
            key: self.key.clone_key(),
            digest: self.digest,
        }
    }
}

impl fmt::Debug for LinkCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("LinkCert")
            .field("digest", &hex_short(&self.digest))
            .finish_non_exhaustive()
    }
}

fn hex_short(d: &[u8; 32]) -> String {
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
