//! The client (OP) side: the layers of every hop of a circuit.

use alloc::vec::Vec;

use super::keys::CircuitKeys;
use super::layer::Layer;
use super::{HopNum, RelayCellBody, RelayCryptoError, SendmeTag};

/// One hop's layers as the client holds them.
struct ClientHop {
    forward: Layer,
    backward: Layer,
}

/// A client's relay crypto for one circuit: one pair of layers per hop, hop 0 first.
///
/// The list of hops is allocated as the circuit grows; encrypting and decrypting cells
/// allocates nothing.
#[derive(Default)]
pub struct ClientCircuitCrypto {
    hops: Vec<ClientHop>,
}

impl ClientCircuitCrypto {
    /// A circuit with no hops yet.
    pub fn new() -> Self {
        ClientCircuitCrypto { hops: Vec::new() }
    }

    /// Adds the next hop, keyed from the handshake with it; returns its number.
    pub fn add_hop(&mut self, keys: &CircuitKeys) -> Result<HopNum, RelayCryptoError> {
        let n = u8::try_from(self.hops.len()).map_err(|_| RelayCryptoError::TooManyHops)?;
        if n == u8::MAX {
            return Err(RelayCryptoError::TooManyHops);
        }
        self.hops.push(ClientHop {
            forward: Layer::new(&keys.kf, &keys.df),
            backward: Layer::new(&keys.kb, &keys.db),
        });
        Ok(HopNum(n))
    }

    /// How many hops the circuit has.
    pub fn n_hops(&self) -> usize {
        self.hops.len()
    }

    /// Drops every hop after the first `n` (after a TRUNCATED cell).
    pub fn truncate(&mut self, n: usize) {
        self.hops.truncate(n);
    }

    /// Prepares an outbound cell for `hop`: sets its digest from that hop's forward
    /// running digest, then applies the layers of `hop`, `hop - 1`, ..., 0. Returns the
    /// cell's SENDME tag (to record when the cell is one a SENDME will acknowledge).
    pub fn encrypt_outbound(
        &mut self,
        body: &mut RelayCellBody,
        hop: HopNum,
    ) -> Result<SendmeTag, RelayCryptoError> {
        let layers = self
            .hops
            .get_mut(..=hop.index())
            .ok_or(RelayCryptoError::NoSuchHop(hop))?;
        let (target, inner) = layers
            .split_last_mut()
            .ok_or(RelayCryptoError::NoSuchHop(hop))?;
        let tag = target.forward.set_digest(body);
        target.forward.apply(body);
        for h in inner.iter_mut().rev() {
            h.forward.apply(body);
        }
        Ok(tag)
    }

    /// Decrypts an inbound cell: peels layer 0, 1, ... until one hop recognizes it, and
    /// returns that hop and the cell's SENDME tag. A cell no hop recognizes is a protocol
    /// error; every hop's running digest is then left as it was.
    pub fn decrypt_inbound(
        &mut self,
        body: &mut RelayCellBody,
    ) -> Result<(HopNum, SendmeTag), RelayCryptoError> {
        for (i, h) in self.hops.iter_mut().enumerate() {
            h.backward.apply(body);
            if let Some(tag) = h.backward.check_recognized(body) {
                // `add_hop` keeps the count within u8.
                let n = u8::try_from(i).map_err(|_| RelayCryptoError::TooManyHops)?;
                return Ok((HopNum(n), tag));
            }
        }
        Err(RelayCryptoError::NotRecognized)
    }

    /// The forward running digest of `hop`: the tag of the last cell sent to it.
    pub fn last_outbound_tag(&self, hop: HopNum) -> Option<SendmeTag> {
        self.hops.get(hop.index()).map(|h| h.forward.current_tag())
    }

    /// The backward running digest of `hop`: the tag of the last cell received from it.
    pub fn last_inbound_tag(&self, hop: HopNum) -> Option<SendmeTag> {
        self.hops.get(hop.index()).map(|h| h.backward.current_tag())
    }
}
