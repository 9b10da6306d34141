//! The node's long-lived keys, drawn from its seeded RNG at start: the RSA identity
//! (whose SHA-1 fingerprint is the node's ID), the ed25519 identity and signing keys,
//! and the ntor onion key; and the CERTS cell it presents as a responder.

use core::net::SocketAddr;

use rand_core::CryptoRng;
use x25519_dalek::StaticSecret;

use crate::cells::channel::Certs;
use crate::crypto::cert::{RelayCertSet, RelayKeys};
use crate::crypto::handshake::NtorSecretKey;
use crate::crypto::identity::{KeyError, PeerId};
use crate::link::handshake::certs_cell;
use crate::node::api::RelayTarget;

/// A node's keys.
pub(crate) struct NodeKeys {
    pub relay: RelayKeys,
    pub ntor: NtorSecretKey,
    /// The last CERTS cell made, for the TLS certificate digest it covers: runtimes use
    /// one certificate per process, so this is nearly always a hit and saves two RSA
    /// signatures per link.
    certs: Option<([u8; 32], Certs)>,
}

impl NodeKeys {
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<NodeKeys, KeyError> {
        let relay = RelayKeys::generate(rng)?;
        let ntor = NtorSecretKey::new(
            relay.rsa_identity.peer_id().0,
            StaticSecret::random_from_rng(rng),
        );
        Ok(NodeKeys {
            relay,
            ntor,
            certs: None,
        })
    }

    pub fn peer_id(&self) -> PeerId {
        self.relay.rsa_identity.peer_id()
    }

    /// How others reach and authenticate this node.
    pub fn relay_target(&self, addr: SocketAddr) -> RelayTarget {
        RelayTarget {
            addr,
            id: self.peer_id(),
            ntor_key: self.ntor.public().onion_key.to_bytes(),
            ed_id: Some(self.relay.ed_identity.public().0),
        }
    }

    /// The CERTS cell for a link whose TLS certificate has SHA-256 `tls_digest`.
    pub fn certs_for_link<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        tls_digest: [u8; 32],
        unix_now: u64,
    ) -> Result<Certs, KeyError> {
        if let Some((d, certs)) = &self.certs
            && *d == tls_digest
        {
            return Ok(certs.clone());
        }
        let set = RelayCertSet::generate(rng, &self.relay, tls_digest, unix_now)?;
        let entries: alloc::vec::Vec<(u8, alloc::vec::Vec<u8>)> = set
            .entries()
            .into_iter()
            .map(|(t, b)| (t, b.to_vec()))
            .collect();
        let certs = certs_cell(&entries);
        self.certs = Some((tls_digest, certs.clone()));
        Ok(certs)
    }
}
