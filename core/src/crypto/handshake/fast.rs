//! CREATE_FAST (tor-spec "CREATE_FAST/CREATED_FAST cells"): the client sends 20 random
//! bytes X, the relay answers Y and `KH`, both derive keys with KDF-TOR(X | Y).
//!
//! Only safe as the first hop, inside the TLS link that already authenticates it.

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::{HandshakeError, exact};
use crate::crypto::kdf::kdf_tor;
use crate::crypto::relay::CircuitKeys;

/// Length of the client's CREATE_FAST message: X.
pub const FAST_CLIENT_MSG_LEN: usize = 20;
/// Length of the relay's CREATED_FAST message: Y | KH.
pub const FAST_SERVER_MSG_LEN: usize = 40;

/// The client's secret between sending CREATE_FAST and receiving CREATED_FAST.
pub struct FastClientState {
    x: [u8; FAST_CLIENT_MSG_LEN],
}

impl Drop for FastClientState {
    fn drop(&mut self) {
        self.x.zeroize();
    }
}

/// Starts CREATE_FAST: draws X from `rng`. Returns the state to keep and the message.
pub fn fast_client_create<R: CryptoRng + ?Sized>(
    rng: &mut R,
) -> (FastClientState, [u8; FAST_CLIENT_MSG_LEN]) {
    let mut x = [0u8; FAST_CLIENT_MSG_LEN];
    rng.fill_bytes(&mut x);
    fast_client_create_fixed(x)
}

/// Starts CREATE_FAST with a given X (known-answer tests).
pub fn fast_client_create_fixed(
    x: [u8; FAST_CLIENT_MSG_LEN],
) -> (FastClientState, [u8; FAST_CLIENT_MSG_LEN]) {
    (FastClientState { x }, x)
}

impl FastClientState {
    /// Finishes the handshake with the relay's CREATED_FAST message (exactly
    /// [`FAST_SERVER_MSG_LEN`] bytes): checks KH in constant time, returns the keys.
    pub fn finish(self, reply: &[u8]) -> Result<CircuitKeys, HandshakeError> {
        let reply: [u8; FAST_SERVER_MSG_LEN] = exact(reply)?;
        let (y, kh) = reply
            .split_first_chunk::<FAST_CLIENT_MSG_LEN>()
            .ok_or(HandshakeError::Failed)?;
        let keys = derive(&self.x, y)?;
        if bool::from(keys.kh.ct_eq(kh)) {
            Ok(keys)
        } else {
            Err(HandshakeError::Failed)
        }
    }
}

/// The relay's side of CREATE_FAST: draws Y from `rng`, returns the CREATED_FAST message
/// (Y | KH) and the keys. `client_msg` must be exactly [`FAST_CLIENT_MSG_LEN`] bytes.
pub fn fast_server_reply<R: CryptoRng + ?Sized>(
    rng: &mut R,
    client_msg: &[u8],
) -> Result<([u8; FAST_SERVER_MSG_LEN], CircuitKeys), HandshakeError> {
    let mut y = [0u8; FAST_CLIENT_MSG_LEN];
    rng.fill_bytes(&mut y);
    fast_server_reply_fixed(y, client_msg)
}

/// The relay's side of CREATE_FAST with a given Y (known-answer tests).
pub fn fast_server_reply_fixed(
    y: [u8; FAST_CLIENT_MSG_LEN],
    client_msg: &[u8],
) -> Result<([u8; FAST_SERVER_MSG_LEN], CircuitKeys), HandshakeError> {
    let mut x: [u8; FAST_CLIENT_MSG_LEN] = exact(client_msg)?;
    let keys = derive(&x, &y);
    x.zeroize();
    let keys = keys?;
    let mut reply = [0u8; FAST_SERVER_MSG_LEN];
    reply[..FAST_CLIENT_MSG_LEN].copy_from_slice(&y);
    reply[FAST_CLIENT_MSG_LEN..].copy_from_slice(&keys.kh);
    Ok((reply, keys))
}

/// KDF-TOR(X | Y), split as KH | Df | Db | Kf | Kb.
fn derive(
    x: &[u8; FAST_CLIENT_MSG_LEN],
    y: &[u8; FAST_CLIENT_MSG_LEN],
) -> Result<CircuitKeys, HandshakeError> {
    let mut seed = [0u8; 2 * FAST_CLIENT_MSG_LEN];
    seed[..FAST_CLIENT_MSG_LEN].copy_from_slice(x);
    seed[FAST_CLIENT_MSG_LEN..].copy_from_slice(y);
    let mut material = [0u8; CircuitKeys::LEN];
    // CircuitKeys::LEN is far below KDF_TOR_MAX_LEN: this never fails.
    let derived = kdf_tor(&seed, &mut material).map_err(|_| HandshakeError::Failed);
    let keys = CircuitKeys::from_kdf_tor_material(&material);
    seed.zeroize();
    material.zeroize();
    derived.map(|()| keys)
}
