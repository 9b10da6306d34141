//! The relay (OR) side: this relay's own layer of a circuit.

use super::keys::CircuitKeys;
use super::layer::Layer;
use super::{RelayCellBody, SendmeTag};

/// What a relay should do with an outbound cell it has decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundCell {
    /// The cell is for this relay; it carries this SENDME tag.
    ForUs(SendmeTag),
    /// The cell is not for this relay: pass it on to the next hop (or, at the last hop,
    /// treat it as a protocol violation).
    Forward,
}

/// A relay's crypto state for one circuit: its forward and backward layers.
pub struct RelayHopCrypto {
    forward: Layer,
    backward: Layer,
}

impl RelayHopCrypto {
    /// The relay's layer, from the keys its side of the handshake derived.
    pub fn new(keys: &CircuitKeys) -> Self {
        RelayHopCrypto {
            forward: Layer::new(&keys.kf, &keys.df),
            backward: Layer::new(&keys.kb, &keys.db),
        }
    }

    /// Decrypts an outbound (client to exit) cell in place and tells whether it is for
    /// this relay.
    pub fn decrypt_outbound(&mut self, body: &mut RelayCellBody) -> OutboundCell {
        self.forward.apply(body);
        match self.forward.check_recognized(body) {
            Some(tag) => OutboundCell::ForUs(tag),
            None => OutboundCell::Forward,
        }
    }

    /// Prepares and encrypts an inbound cell this relay originates: sets its digest, then
    /// encrypts. Returns the cell's SENDME tag.
    pub fn originate_inbound(&mut self, body: &mut RelayCellBody) -> SendmeTag {
        let tag = self.backward.set_digest(body);
        self.backward.apply(body);
        tag
    }

    /// Encrypts an inbound cell this relay forwards from further along the circuit.
    pub fn encrypt_inbound(&mut self, body: &mut RelayCellBody) {
        self.backward.apply(body);
    }

    /// The forward running digest: the tag of the last outbound cell this relay
    /// recognized.
    pub fn last_outbound_tag(&self) -> SendmeTag {
        self.forward.current_tag()
    }

    /// The backward running digest: the tag of the last inbound cell this relay
    /// originated.
    pub fn last_inbound_tag(&self) -> SendmeTag {
        self.backward.current_tag()
    }
}
