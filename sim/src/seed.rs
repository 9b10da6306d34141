//! Per-host seeds derived from one master seed.

use sha2::{Digest, Sha256};

/// A master seed: a number from a scenario file, or 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterSeed {
    /// A small seed, as written in scenario files.
    Number(u64),
    /// A full 32-byte seed.
    Bytes([u8; 32]),
}

impl From<u64> for MasterSeed {
    fn from(n: u64) -> Self {
        MasterSeed::Number(n)
    }
}

impl From<[u8; 32]> for MasterSeed {
    fn from(b: [u8; 32]) -> Self {
        MasterSeed::Bytes(b)
    }
}

impl MasterSeed {
    /// The seed as 32 bytes (a number is written little-endian, zero-padded).
    pub fn to_bytes(self) -> [u8; 32] {
        match self {
            MasterSeed::Bytes(b) => b,
            MasterSeed::Number(n) => {
                let mut b = [0u8; 32];
                b[..8].copy_from_slice(&n.to_le_bytes());
                b
            }
        }
    }
}

/// The 32-byte seed of the host `name`: SHA-256("onionpeer-sim host seed" || master ||
/// name). Stable across runs, platforms and versions, so a host's identity depends only on
/// the master seed and its name.
pub fn derive_seed(master: impl Into<MasterSeed>, name: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    Digest::update(&mut h, b"onionpeer-sim host seed");
    Digest::update(&mut h, master.into().to_bytes());
    Digest::update(&mut h, name.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_stable_and_distinct() {
        let a = derive_seed(1u64, "relay0");
        assert_eq!(a, derive_seed(1u64, "relay0"));
        assert_ne!(a, derive_seed(2u64, "relay0"));
        assert_ne!(a, derive_seed(1u64, "relay1"));
        assert_eq!(a, derive_seed(MasterSeed::Number(1).to_bytes(), "relay0"));
    }
}
