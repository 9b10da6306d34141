//! Key derivation functions: KDF-TOR and ntor's HKDF-SHA256.
