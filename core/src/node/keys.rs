//! The node's long-lived keys, drawn from its seeded RNG at start: the RSA identity
//! (whose SHA-1 fingerprint is the node's ID), the ed25519 identity and signing keys,
//! and the ntor onion key.

use alloc::vec::Vec;
use core::net::SocketAddr;

use rand_core::CryptoRng;
use x25519_dalek::StaticSecret;

use crate::crypto::cert::RelayCertSet;
use crate::crypto::handshake::NtorSecretKey;
use crate::crypto::identity::{Ed25519Keypair, KeyError, PeerId, RsaIdentityKey};
use crate::node::api::RelayTarget;

/// A node's keys.
pub(crate) struct NodeKeys {
    pub rsa: RsaIdentityKey,
    pub ed_identity: Ed25519Keypair,
    pub ed_signing: Ed25519Keypair,
    pub ntor: NtorSecretKey,
}

impl NodeKeys {
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<NodeKeys, KeyError> {
        let rsa = RsaIdentityKey::generate(rng)?;
        let ed_identity = Ed25519Keypair::generate(rng);
        let ed_signing = Ed25519Keypair::generate(rng);
        let ntor = NtorSecretKey::new(rsa.peer_id().0, StaticSecret::random_from_rng(rng));
        Ok(NodeKeys { rsa, ed_identity, ed_signing, ntor })
    }

    pub fn peer_id(&self) -> PeerId {
        self.rsa.peer_id()
    }

    /// How others reach and authenticate this node.
    pub fn relay_target(&self, addr: SocketAddr) -> RelayTarget {
        RelayTarget {
            addr,
            id: self.peer_id(),
            ntor_key: self.ntor.public().onion_key_bytes(),
            ed_id: Some(self.ed_identity.public().0),
        }
    }

    /// The CERTS cell entries for a link whose TLS certificate has digest `tls_digest`.
    pub fn certs_for_link<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        tls_digest: &[u8; 32],
        unix_now: u64,
    ) -> Vec<(u8, Vec<u8>)> {
        RelayCertSet::new(&self.rsa, &self.ed_identity, &self.ed_signing)
            .certs_for_link(rng, tls_digest, unix_now)
    }
}
