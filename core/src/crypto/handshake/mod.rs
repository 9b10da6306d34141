//! Circuit-extension handshakes: CREATE_FAST and ntor.
//!
//! Both sides of each handshake end with a [`CircuitKeys`] that seeds relay crypto
//! ([`crate::crypto::relay`]). Randomness comes in as an injected `rand_core::CryptoRng`;
//! `*_fixed` variants take the ephemeral secret directly, for known-answer tests.

pub mod fast;
pub mod ntor;

#[cfg(test)]
mod tests;

use core::fmt;

pub use crate::crypto::relay::CircuitKeys;
pub use fast::{
    FAST_CLIENT_MSG_LEN, FAST_SERVER_MSG_LEN, FastClientState, fast_client_create,
    fast_client_create_fixed, fast_server_reply, fast_server_reply_fixed,
};
pub use ntor::{
    NTOR_CLIENT_MSG_LEN, NTOR_SERVER_MSG_LEN, NtorClientState, NtorPublicKey, NtorSecretKey,
    ntor_client_create, ntor_client_create_fixed, ntor_server_reply, ntor_server_reply_fixed,
};

/// Why a handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// A handshake message had the wrong length.
    BadLength {
        /// The length this message must have.
        expected: usize,
        /// The length it had.
        got: usize,
    },
    /// The client's onion-skin names a relay identity or onion key this server does not
    /// have.
    UnknownKey,
    /// The reply did not authenticate (wrong KH or AUTH), or a Diffie-Hellman result was
    /// the all-zero point. One variant for all, so a failure tells an attacker nothing.
    Failed,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::BadLength { expected, got } => {
                write!(f, "handshake message of {got} bytes, expected {expected}")
            }
            HandshakeError::UnknownKey => f.write_str("handshake for a key this relay lacks"),
            HandshakeError::Failed => f.write_str("handshake did not authenticate"),
        }
    }
}

impl core::error::Error for HandshakeError {}

/// Reads exactly `N` bytes, or says how the length was wrong.
fn exact<const N: usize>(msg: &[u8]) -> Result<[u8; N], HandshakeError> {
    <[u8; N]>::try_from(msg).map_err(|_| HandshakeError::BadLength {
        expected: N,
        got: msg.len(),
    })
}
