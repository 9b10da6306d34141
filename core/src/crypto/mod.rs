//! Cryptography: key derivation, circuit handshakes, relay-cell crypto, identity keys and
//! Tor certificates. Pure functions and state machines; randomness comes in as an
//! argument (a `rand_core::CryptoRng`).

pub mod cert;
pub mod handshake;
pub mod identity;
pub mod kdf;
pub mod relay;
