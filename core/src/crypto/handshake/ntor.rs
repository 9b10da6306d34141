//! The ntor handshake (tor-spec "The ntor handshake"), PROTOID
//! `ntor-curve25519-sha256-1`.
//!
//! The client sends `ID | KEYID(B) | X` (84 bytes); the relay answers `Y | AUTH`
//! (64 bytes). With `secret_input = EXP(X,y) | EXP(X,b) | ID | B | X | Y | PROTOID`:
//! `KEY_SEED = H(secret_input, t_key)`, `verify = H(secret_input, t_verify)`,
//! `AUTH = H(verify | ID | B | Y | X | PROTOID | "Server", t_mac)`, H being
//! HMAC-SHA256 keyed with the tweak, and the keys are HKDF-SHA256(secret_input, t_key,
//! m_expand) split as `Df | Db | Kf | Kb | nonce`.

use hmac::{Hmac, KeyInit, Mac};
use rand_core::CryptoRng;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroize;

use super::{HandshakeError, exact};
use crate::codec::{SliceWriter, Writer};
use crate::crypto::kdf::ntor_kdf;
use crate::crypto::relay::CircuitKeys;

/// Length of the client's onion-skin: `ID | KEYID(B) | X`.
pub const NTOR_CLIENT_MSG_LEN: usize = ID_LEN + 32 + 32;
/// Length of the relay's reply: `Y | AUTH`.
pub const NTOR_SERVER_MSG_LEN: usize = 32 + 32;

const ID_LEN: usize = 20;
const PROTOID: &[u8] = b"ntor-curve25519-sha256-1";
const T_MAC: &[u8] = b"ntor-curve25519-sha256-1:mac";
const T_VERIFY: &[u8] = b"ntor-curve25519-sha256-1:verify";
const SERVER_STR: &[u8] = b"Server";
const SECRET_INPUT_LEN: usize = 32 + 32 + ID_LEN + 32 + 32 + 32 + PROTOID.len();
const AUTH_INPUT_LEN: usize = 32 + ID_LEN + 32 + 32 + 32 + PROTOID.len() + SERVER_STR.len();

/// What a client knows of a relay to run ntor with it: its identity (the SHA-1 of its
/// RSA identity key) and its ntor onion key B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtorPublicKey {
    /// The relay's identity digest, `ID`.
    pub id: [u8; ID_LEN],
    /// The relay's ntor onion key, `B`.
    pub onion_key: PublicKey,
}

/// A relay's ntor onion key pair, with the identity it belongs to.
pub struct NtorSecretKey {
    public: NtorPublicKey,
    secret: StaticSecret,
}

impl NtorSecretKey {
    /// The key pair of onion secret `b` for the relay of identity `id`.
    pub fn new(id: [u8; ID_LEN], secret: StaticSecret) -> Self {
        let onion_key = PublicKey::from(&secret);
        NtorSecretKey {
            public: NtorPublicKey { id, onion_key },
            secret,
        }
    }

    /// The public half, as published in the relay's descriptor.
    pub fn public(&self) -> &NtorPublicKey {
        &self.public
    }
}

/// The client's state between sending the onion-skin and receiving the reply.
pub struct NtorClientState {
    relay: NtorPublicKey,
    x: StaticSecret,
    x_pub: PublicKey,
}

/// Starts ntor with `relay`: draws the ephemeral x from `rng`. Returns the state to keep
/// and the onion-skin to send in CREATE2/EXTEND2.
pub fn ntor_client_create<R: CryptoRng + ?Sized>(
    rng: &mut R,
    relay: &NtorPublicKey,
) -> (NtorClientState, [u8; NTOR_CLIENT_MSG_LEN]) {
    ntor_client_create_fixed(StaticSecret::random_from_rng(rng), relay)
}

/// Starts ntor with a given ephemeral secret x (known-answer tests).
pub fn ntor_client_create_fixed(
    x: StaticSecret,
    relay: &NtorPublicKey,
) -> (NtorClientState, [u8; NTOR_CLIENT_MSG_LEN]) {
    let x_pub = PublicKey::from(&x);
    let mut msg = [0u8; NTOR_CLIENT_MSG_LEN];
    let mut w = SliceWriter::new(&mut msg);
    w.write_all(&relay.id);
    w.write_all(relay.onion_key.as_bytes());
    w.write_all(x_pub.as_bytes());
    // The three parts fill the array exactly.
    debug_assert_eq!(w.finish(), Ok(NTOR_CLIENT_MSG_LEN));
    let state = NtorClientState {
        relay: relay.clone(),
        x,
        x_pub,
    };
    (state, msg)
}

impl NtorClientState {
    /// Finishes the handshake with the relay's reply (exactly [`NTOR_SERVER_MSG_LEN`]
    /// bytes): rejects all-zero shared secrets, checks AUTH in constant time, and returns
    /// the keys.
    pub fn finish(self, reply: &[u8]) -> Result<CircuitKeys, HandshakeError> {
        let reply: [u8; NTOR_SERVER_MSG_LEN] = exact(reply)?;
        let (y, auth) = reply
            .split_first_chunk::<32>()
            .ok_or(HandshakeError::Failed)?;
        let y_pub = PublicKey::from(*y);
        let xy = self.x.diffie_hellman(&y_pub);
        let xb = self.x.diffie_hellman(&self.relay.onion_key);
        let out = derive(&xy, &xb, &self.relay, &self.x_pub, &y_pub)?;
        let ok = out.zero_free & out.auth.ct_eq(auth);
        if bool::from(ok) {
            Ok(out.keys)
        } else {
            Err(HandshakeError::Failed)
        }
    }
}

/// The relay's side of ntor: picks the key pair the onion-skin names among `keys` (the
/// current and previous onion keys), draws the ephemeral y from `rng`, and returns the
/// reply and the keys. Rejects an onion-skin for another identity or onion key.
pub fn ntor_server_reply<R: CryptoRng + ?Sized>(
    rng: &mut R,
    keys: &[NtorSecretKey],
    onion_skin: &[u8],
) -> Result<([u8; NTOR_SERVER_MSG_LEN], CircuitKeys), HandshakeError> {
    ntor_server_reply_fixed(StaticSecret::random_from_rng(rng), keys, onion_skin)
}

/// The relay's side of ntor with a given ephemeral secret y (known-answer tests).
pub fn ntor_server_reply_fixed(
    y: StaticSecret,
    keys: &[NtorSecretKey],
    onion_skin: &[u8],
) -> Result<([u8; NTOR_SERVER_MSG_LEN], CircuitKeys), HandshakeError> {
    let skin: [u8; NTOR_CLIENT_MSG_LEN] = exact(onion_skin)?;
    let (id, rest) = skin
        .split_first_chunk::<ID_LEN>()
        .ok_or(HandshakeError::Failed)?;
    let (key_id, x) = rest
        .split_first_chunk::<32>()
        .ok_or(HandshakeError::Failed)?;
    let x: [u8; 32] = x.try_into().map_err(|_| HandshakeError::Failed)?;
    // ID and KEYID(B) are public: an ordinary comparison is fine here.
    let key = keys
        .iter()
        .find(|k| &k.public.id == id && k.public.onion_key.as_bytes() == key_id)
        .ok_or(HandshakeError::UnknownKey)?;
    let x_pub = PublicKey::from(x);
    let y_pub = PublicKey::from(&y);
    let xy = y.diffie_hellman(&x_pub);
    let xb = key.secret.diffie_hellman(&x_pub);
    let out = derive(&xy, &xb, &key.public, &x_pub, &y_pub)?;
    if !bool::from(out.zero_free) {
        return Err(HandshakeError::Failed);
    }
    let mut reply = [0u8; NTOR_SERVER_MSG_LEN];
    reply[..32].copy_from_slice(y_pub.as_bytes());
    reply[32..].copy_from_slice(&out.auth);
    Ok((reply, out.keys))
}

/// What both sides compute from the two Diffie-Hellman results.
struct Derived {
    keys: CircuitKeys,
    auth: [u8; 32],
    /// Neither DH result was the all-zero output (a small-order point).
    zero_free: Choice,
}

fn derive(
    xy: &SharedSecret,
    xb: &SharedSecret,
    relay: &NtorPublicKey,
    x_pub: &PublicKey,
    y_pub: &PublicKey,
) -> Result<Derived, HandshakeError> {
    let zero_free = !(xy.as_bytes().ct_eq(&[0u8; 32]) | xb.as_bytes().ct_eq(&[0u8; 32]));

    let mut secret_input = [0u8; SECRET_INPUT_LEN];
    let mut w = SliceWriter::new(&mut secret_input);
    w.write_all(xy.as_bytes());
    w.write_all(xb.as_bytes());
    w.write_all(&relay.id);
    w.write_all(relay.onion_key.as_bytes());
    w.write_all(x_pub.as_bytes());
    w.write_all(y_pub.as_bytes());
    w.write_all(PROTOID);
    let filled = w.finish();

    let mut material = [0u8; CircuitKeys::LEN];
    let expanded = ntor_kdf(&secret_input, &mut material);
    let verify = hmac_sha256(T_VERIFY, &secret_input);
    secret_input.zeroize();
    let keys = CircuitKeys::from_ntor_material(&material);
    material.zeroize();

    let mut verify = verify?;
    let mut auth_input = [0u8; AUTH_INPUT_LEN];
    let mut w = SliceWriter::new(&mut auth_input);
    w.write_all(&verify);
    w.write_all(&relay.id);
    w.write_all(relay.onion_key.as_bytes());
    w.write_all(y_pub.as_bytes());
    w.write_all(x_pub.as_bytes());
    w.write_all(PROTOID);
    w.write_all(SERVER_STR);
    let auth_filled = w.finish();
    verify.zeroize();
    let auth = hmac_sha256(T_MAC, &auth_input)?;

    // The buffers are sized to fit exactly; these never fail.
    match (filled, auth_filled, expanded) {
        (Ok(SECRET_INPUT_LEN), Ok(AUTH_INPUT_LEN), Ok(())) => Ok(Derived {
            keys,
            auth,
            zero_free,
        }),
        _ => Err(HandshakeError::Failed),
    }
}

/// ntor's `H(x, t)`: HMAC-SHA256 keyed with the tweak `t`.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Result<[u8; 32], HandshakeError> {
    // HMAC takes keys of any length: this never fails.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| HandshakeError::Failed)?;
    Mac::update(&mut mac, msg);
    Ok(mac.finalize().into_bytes().into())
}
