//! Identity keys: RSA identity (DER, SHA-1 fingerprint = peer ID, signatures) and ed25519 keys.
