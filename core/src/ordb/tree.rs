//! The content tree: a 15-ary SHA-256 hash tree over chunk hashes, shaped so that the
//! children of one node fit in one DB_HASHES cell.
//!
//! Hashes are domain-separated by their first byte: `0x00` leaf (a chunk), `0x01` inner
//! node, and the top node uses a caller-given prefix (`0x02` file, `0x03` live segment)
//! followed by metadata, so the root binds what the tree is about (size, chunk size,
//! segment number, ...), and no leaf, inner node or root can pass for another.

use alloc::vec::Vec;
use sha2::{Digest, Sha256};

/// Children per node: as many 32-byte hashes as one DB_HASHES cell carries.
pub const ARITY: usize = crate::cells::relay::MAX_HASHES_PER_MSG;

/// Domain byte of a leaf (chunk) hash.
pub(crate) const LEAF_TAG: u8 = 0x00;
/// Domain byte of an inner node hash.
pub(crate) const NODE_TAG: u8 = 0x01;

/// The hash of one chunk: `SHA-256(0x00 | data)`.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([LEAF_TAG]);
    h.update(data);
    h.finalize().into()
}

/// Hash of a node's children: `SHA-256(prefix | child hashes)`. `prefix` is `[0x01]` for
/// an inner node and the root prefix for the top node.
pub(crate) fn node_hash(prefix: &[u8], children: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prefix);
    for c in children {
        h.update(c);
    }
    h.finalize().into()
}

/// A node of a tree: `level` 0 is the chunks, the top is at [`TreeShape::depth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeRef {
    /// Level (0 = chunks).
    pub level: u8,
    /// Index within the level.
    pub node: u32,
}

/// The shape of a tree over `n_leaves` chunks (at least 1): level `l` has
/// `ceil(n / 15^l)` nodes, and the top is the first level `≥ 1` with one node, so even a
/// one-chunk file has one DB_HASHES (its top's children).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeShape {
    n_leaves: u64,
    depth: u8,
}

impl TreeShape {
    /// The shape over `n_leaves` chunks; `None` for 0 or more than `u32::MAX` (DB_DATA
    /// numbers chunks with a u32).
    pub fn new(n_leaves: u64) -> Option<TreeShape> {
        if n_leaves == 0 || n_leaves > u64::from(u32::MAX) {
            return None;
        }
        let mut depth = 1u8;
        let mut len = n_leaves.div_ceil(ARITY as u64);
        while len > 1 {
            len = len.div_ceil(ARITY as u64);
            depth += 1;
        }
        Some(TreeShape { n_leaves, depth })
    }

    /// Number of chunks.
    pub fn n_leaves(&self) -> u64 {
        self.n_leaves
    }

    /// Level of the top node (≥ 1; at most 9 for `u32::MAX` chunks).
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// Nodes at `level` (0 above the top).
    pub fn level_len(&self, level: u8) -> u64 {
        if level > self.depth {
            return 0;
        }
        let mut len = self.n_leaves;
        for _ in 0..level {
            len = len.div_ceil(ARITY as u64);
        }
        len
    }

    /// How many children node (`level`, `node`) has; 0 if it does not exist or is a leaf.
    pub fn children_len(&self, level: u8, node: u64) -> usize {
        if level == 0 || node >= self.level_len(level) {
            return 0;
        }
        let below = self.level_len(level - 1);
        let first = node * ARITY as u64;
        below.saturating_sub(first).min(ARITY as u64) as usize
    }

    /// The ancestor at `level` of chunk `leaf`.
    pub fn ancestor(&self, leaf: u64, level: u8) -> u64 {
        let mut i = leaf;
        for _ in 0..level {
            i /= ARITY as u64;
        }
        i
    }
}

/// Every level of a tree, leaves first, built by a seeder. `levels[l]` holds the hashes of
/// level `l`; the top level holds the root.
pub(crate) fn build_levels(leaves: Vec<[u8; 32]>, root_prefix: &[u8]) -> Vec<Vec<[u8; 32]>> {
    let shape = TreeShape::new(leaves.len() as u64);
    let depth = shape.map_or(1, |s| s.depth());
    let mut levels = alloc::vec![leaves];
    for l in 1..=depth {
        let below = levels.last().map(|v| v.as_slice()).unwrap_or(&[]);
        let prefix: &[u8] = if l == depth { root_prefix } else { &[NODE_TAG] };
        let next: Vec<[u8; 32]> = below.chunks(ARITY).map(|c| node_hash(prefix, c)).collect();
        levels.push(next);
    }
    levels
}
