//! The Kademlia metric: XOR distance between 160-bit keys, and the bucket a distance falls
//! in.

use core::fmt;

use sha1::{Digest, Sha1};

use crate::cells::relay::HashName;
use crate::crypto::identity::PeerId;

/// A point of the 160-bit DHT key space: a peer's id, or the key a hash_name is stored
/// under.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Key(pub [u8; 20]);

impl Key {
    /// The key a hash_name is stored under (seed: STORE goes "to the closest node from the
    /// hash_name"). A 20-byte hash_name (a SHA-1 or a BitTorrent v1 infohash) is its own
    /// key; any other length is hashed with SHA-1 to 20 bytes, so names of every length
    /// spread evenly over the key space. Two names could map to one key only through a
    /// SHA-1 collision or a 20-byte name equal to another name's SHA-1: the store keeps the
    /// name itself, so such names still never mix.
    pub fn for_hash_name(name: &HashName) -> Key {
        let bytes = name.as_bytes();
        match <[u8; 20]>::try_from(bytes) {
            Ok(b) => Key(b),
            Err(_) => Key(Sha1::digest(bytes).into()),
        }
    }

    /// XOR distance to `other`.
    pub fn distance(&self, other: &Key) -> Distance {
        let mut d = [0u8; 20];
        for ((o, a), b) in d.iter_mut().zip(self.0).zip(other.0) {
            *o = a ^ b;
        }
        Distance(d)
    }

    /// The raw 20 bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// A key in bucket `bucket` of `self`'s table (`2^bucket <= d < 2^(bucket+1)`), its
    /// lower bits taken from `noise`: the target of a bucket refresh (Kademlia §2.3: a
    /// lookup of a random id in the bucket's range). `None` past bucket 159.
    pub fn in_bucket(&self, bucket: u8, noise: [u8; 20]) -> Option<Key> {
        if usize::from(bucket) >= 160 {
            return None;
        }
        // Big-endian: bit `bucket` of the distance is bit `bucket % 8` of byte
        // `19 - bucket / 8`.
        let byte = 19 - usize::from(bucket / 8);
        let bit = bucket % 8;
        let mut d = noise;
        for b in d.iter_mut().take(byte) {
            *b = 0;
        }
        let low = (1u16 << bit) - 1;
        d[byte] = (1u8 << bit) | (noise[byte] & low as u8);
        let mut out = self.0;
        for (o, x) in out.iter_mut().zip(d) {
            *o ^= x;
        }
        Some(Key(out))
    }
}

impl From<PeerId> for Key {
    fn from(id: PeerId) -> Key {
        Key(id.0)
    }
}

impl From<&PeerId> for Key {
    fn from(id: &PeerId) -> Key {
        Key(id.0)
    }
}

impl From<&HashName> for Key {
    fn from(name: &HashName) -> Key {
        Key::for_hash_name(name)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(")?;
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        write!(f, ")")
    }
}

/// XOR of two keys, read as a 160-bit big-endian integer: the derived ordering (byte-wise,
/// most significant byte first) is the numeric one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Distance(pub [u8; 20]);

impl Distance {
    /// Distance from a key to itself.
    pub const ZERO: Distance = Distance([0; 20]);
    /// The largest distance.
    pub const MAX: Distance = Distance([0xFF; 20]);

    /// Leading zero bits (160 for zero).
    pub fn leading_zeros(&self) -> u32 {
        let mut n = 0;
        for b in self.0 {
            if b != 0 {
                return n + b.leading_zeros();
            }
            n += 8;
        }
        n
    }

    /// The bucket this distance falls in: `j` with `2^j <= d < 2^(j+1)`, that is
    /// `159 - leading_zeros`; `None` for distance zero (a key is in no bucket of its own).
    pub fn bucket_index(&self) -> Option<u8> {
        let lz = self.leading_zeros();
        159u32.checked_sub(lz).map(|j| j as u8)
    }
}

/// The bucket of `b` in the table of `a` (symmetric): `j` with `2^j <= a XOR b < 2^(j+1)`,
/// `None` when `a == b`.
pub fn bucket_index(a: &Key, b: &Key) -> Option<u8> {
    a.distance(b).bucket_index()
}
