//! A usable view of the network: a verified consensus joined with the
//! microdescriptors it names.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{SocketAddrV4, SocketAddrV6};

use super::consensus::{Consensus, Lifetime, RelayFlags};
use super::microdesc::{FamilyMember, Microdesc, PortPolicy};

/// A relay a client can build circuits through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// Its nickname.
    pub nickname: String,
    /// SHA-1 fingerprint of its RSA identity key.
    pub rsa_identity: [u8; 20],
    /// Its ed25519 identity, if its microdescriptor gives one.
    pub ed25519_identity: Option<[u8; 32]>,
    /// Its ntor (curve25519) onion key.
    pub ntor_onion_key: [u8; 32],
    /// Its IPv4 ORPort address.
    pub or_addr: SocketAddrV4,
    /// Its first IPv6 ORPort address, if any.
    pub ipv6: Option<SocketAddrV6>,
    /// Its consensus flags.
    pub flags: RelayFlags,
    /// Its consensus bandwidth (kilobytes per second; a weight, not a promise).
    pub bandwidth: u32,
    /// Its IPv4 exit-port summary.
    pub ipv4_policy: PortPolicy,
    /// Its declared family.
    pub family: Vec<FamilyMember>,
}

impl Relay {
    /// Whether this relay lists `other` in its family (by identity or nickname).
    fn declares(&self, other: &Relay) -> bool {
        self.family.iter().any(|m| match m {
            FamilyMember::Id(id) => *id == other.rsa_identity,
            FamilyMember::Nickname(n) => n.eq_ignore_ascii_case(&other.nickname),
        })
    }

    /// Whether the two relays are in one family: each must declare the other
    /// (path-spec §2.2: a one-sided claim proves nothing).
    pub fn same_family(&self, other: &Relay) -> bool {
        self.declares(other) && other.declares(self)
    }

    /// Whether the two relays' IPv4 addresses share a /16.
    pub fn same_ipv4_16(&self, other: &Relay) -> bool {
        let (a, b) = (self.or_addr.ip().octets(), other.or_addr.ip().octets());
        a[..2] == b[..2]
    }
}

/// The network directory: every consensus relay whose microdescriptor is known.
#[derive(Debug, Clone)]
pub struct NetDir {
    lifetime: Lifetime,
    relays: Vec<Relay>,
    missing: Vec<[u8; 32]>,
    weights: BTreeMap<String, i32>,
    params: BTreeMap<String, i32>,
}

impl NetDir {
    /// Joins a verified consensus with microdescriptors (extra or unmatched ones are
    /// ignored; relays whose microdescriptor is absent are left out and listed in
    /// [`missing_microdescs`](Self::missing_microdescs)).
    pub fn new(consensus: Consensus, microdescs: impl IntoIterator<Item = Microdesc>) -> NetDir {
        let mut by_digest: BTreeMap<[u8; 32], Microdesc> =
            microdescs.into_iter().map(|m| (m.digest, m)).collect();
        let mut relays = Vec::new();
        let mut missing = Vec::new();
        for rs in consensus.routers {
            let Some(md) = by_digest.remove(&rs.md_digest) else {
                missing.push(rs.md_digest);
                continue;
            };
            relays.push(Relay {
                nickname: rs.nickname,
                rsa_identity: rs.rsa_identity,
                ed25519_identity: md.ed25519_id,
                ntor_onion_key: md.ntor_onion_key,
                or_addr: rs.or_addr,
                ipv6: rs.ipv6.first().copied(),
                flags: rs.flags,
                bandwidth: rs.bandwidth,
                ipv4_policy: md.ipv4_policy,
                family: md.family,
            });
        }
        NetDir {
            lifetime: consensus.lifetime,
            relays,
            missing,
            weights: consensus.bandwidth_weights,
            params: consensus.params,
        }
    }

    /// The usable relays.
    pub fn relays(&self) -> &[Relay] {
        &self.relays
    }

    /// Digests of the microdescriptors still to fetch.
    pub fn missing_microdescs(&self) -> &[[u8; 32]] {
        &self.missing
    }

    /// The lifetime of the consensus this view comes from.
    pub fn lifetime(&self) -> Lifetime {
        self.lifetime
    }

    /// The relay with this RSA identity.
    pub fn by_rsa_identity(&self, id: &[u8; 20]) -> Option<&Relay> {
        self.relays.iter().find(|r| &r.rsa_identity == id)
    }

    /// A `bandwidth-weights` entry (`Wgg`, ...), if the consensus gave it.
    pub fn bandwidth_weight(&self, name: &str) -> Option<i32> {
        self.weights.get(name).copied()
    }

    /// A consensus parameter, `default` if absent, clamped to `[min, max]`.
    pub fn param(&self, name: &str, default: i32, min: i32, max: i32) -> i32 {
        self.params
            .get(name)
            .copied()
            .unwrap_or(default)
            .clamp(min, max)
    }
}
