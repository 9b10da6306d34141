//! Relay-cell crypto ("tor1"): one hop's layer, a whole circuit's layers, SENDME v1 tags.
//!
//! Each direction of each hop has an AES-128-CTR stream (zero IV) and a running SHA-1
//! digest seeded with `Df`/`Db` (tor-spec "Routing relay cells"). The originator of a
//! relay cell sets its 4-byte digest field from its running digest, then encrypts; the
//! receiver decrypts, and a cell is *recognized* when its `recognized` field is zero and
//! its digest field matches the receiver's running digest.
//!
//! - [`ClientCircuitCrypto`]: the client (OP), holding the layers of every hop.
//! - [`RelayHopCrypto`]: a relay (OR), holding its own layer.
//!
//! Per-cell operations work in place on a [`RelayCellBody`] and never allocate. A cell
//! that is not recognized never changes a running digest: the check runs on a copy of
//! the digest state, committed only on a match.
//!
//! Every originated or recognized cell yields its [`SendmeTag`] (prop 289): the full
//! 20-byte running digest just after that cell, which the circuit layer records for the
//! cells a SENDME v1 acknowledges.

mod client;
mod hop;
mod keys;
mod layer;

#[cfg(test)]
mod tests;

use core::fmt;

pub use client::ClientCircuitCrypto;
pub use hop::{OutboundCell, RelayHopCrypto};
pub use keys::{CIPHER_KEY_LEN, CircuitKeys, DIGEST_KEY_LEN};

/// Length of a relay cell body: the payload of a RELAY/RELAY_EARLY cell.
pub const RELAY_BODY_LEN: usize = 509;

/// A relay cell body, encrypted or not. Fixed size so the per-cell path never allocates.
pub type RelayCellBody = [u8; RELAY_BODY_LEN];

// Relay cell header offsets (tor-spec "Relay cells"); the codec lives in `cells::relay`.
const RECOGNIZED: core::ops::Range<usize> = 1..3;
const DIGEST: core::ops::Range<usize> = 5..9;

/// A SENDME v1 authentication tag: the running digest (all 20 bytes) just after the cell
/// it names (prop 289).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SendmeTag(pub [u8; 20]);

impl SendmeTag {
    /// The tag's bytes, as a SENDME v1 cell carries them.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Debug for SendmeTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendmeTag(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The position of a hop in a circuit, counted from the client: 0 is the first hop
/// (the guard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HopNum(pub u8);

impl HopNum {
    /// The hop's index into a circuit's list of hops.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl From<u8> for HopNum {
    fn from(n: u8) -> Self {
        HopNum(n)
    }
}

impl fmt::Display for HopNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hop {}", self.0)
    }
}

/// Why relay crypto refused a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayCryptoError {
    /// The client asked to send to a hop the circuit does not have.
    NoSuchHop(HopNum),
    /// An inbound cell was recognized at no hop: a protocol violation that closes the
    /// circuit.
    NotRecognized,
    /// The circuit already has the most hops this type supports (255).
    TooManyHops,
}

impl fmt::Display for RelayCryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayCryptoError::NoSuchHop(h) => write!(f, "no such hop: {h}"),
            RelayCryptoError::NotRecognized => f.write_str("relay cell recognized at no hop"),
            RelayCryptoError::TooManyHops => f.write_str("too many hops on one circuit"),
        }
    }
}

impl core::error::Error for RelayCryptoError {}
