//! Tor certificates: the ed25519 certificate format and the RSA->ed25519 cross-certificate.
