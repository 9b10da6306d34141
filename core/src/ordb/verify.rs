//! The downloader's side: [`FileVerifier`] and [`LiveVerifier`] hold what has been proven
//! (the manifest, tree hashes checked top-down against the signed root) and accept a chunk
//! only when its hash matches a proven leaf hash, or its whole block a proven block hash.
//! The first bad input is reported with a
//! precise [`VerifyError`]; [`VerifyError::is_tampering`] says when it proves the sender
//! misbehaved (drop its circuit, fetch the block elsewhere). A relaying ORDB checks each
//! answer stream it splices with [`FileVerifier::for_relay`], so a tamperer upstream of it
//! is caught by the first honest ORDB, not by the downloader (PROTOCOL.md 6.6).
//!
//! A file's block (the 15 chunks under one level-1 node) is checked either chunk by chunk,
//! when the stream carried its leaf hashes, or as a whole against its proven node hash,
//! when it did not (PROTOCOL.md 6.3: a served range that covers a whole block skips its
//! leaf-hash cell). In the second case the chunks are held here until the block is
//! complete, then released together ([`FileVerifier::take_released`]).
//!
//! Memory, for a file of `n` chunks: the proven inner hashes, at most `n/14 + 9` map
//! entries of 32 bytes and a key (≈ 4 bytes per 486-byte chunk, ≈ 9 MB for the default
//! 1 GiB limit, only for the paths proven), one bit per chunk, and the leaf hashes of at
//! most `max_pending_blocks` blocks (480 bytes each) whose chunks are not all verified
//! yet, or as many blocks of held chunks (at most 15 × 486 bytes each). Leaf hashes of
//! finished blocks are dropped.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;

use super::content::{FileManifest, Manifest, file_root_prefix, verify_manifest};
use super::live::{LiveManifest, segment_root_prefix, verify_live_manifest, verify_segment};
use super::tree::{ARITY, NODE_TAG, NodeRef, TreeShape, leaf_hash, node_hash};
use super::{Name20, content};
use crate::cells::relay::{DbConnected, DbData, DbHashes, DbSegment, MAX_CHUNK_DATA_LEN};

/// Why an input was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The manifest is malformed or out of range.
    BadManifest(&'static str),
    /// A manifest or segment signature is not the seeder's.
    BadSignature,
    /// The manifest's key and root do not derive the requested hash_name.
    HashNameMismatch,
    /// The file is larger than the configured limit (or than DB_DATA can number).
    TooLarge,
    /// A DB_HASHES does not hash to its (proven) parent, or has the wrong shape.
    BadHashList {
        /// Tree (0 for a file, segment number for a stream).
        tree: u32,
        /// Level of the node.
        level: u8,
        /// Node index.
        node: u32,
    },
    /// Not an attack: the hashes of this node's children must be fetched first.
    NeedHashes {
        /// Tree (0 for a file, segment number for a stream).
        tree: u32,
        /// Level of the node whose children are needed.
        level: u8,
        /// Node index.
        node: u32,
    },
    /// The chunk's data does not match its proven hash or length.
    BadChunk {
        /// Chunk index (0-based; absolute for a stream).
        index: u64,
    },
    /// The chunks of a block, checked together, do not hash to its proven node hash.
    BadBlock {
        /// Block (level-1 node) index.
        block: u64,
    },
    /// The DB_DATA tag (timestamp, prefix) differs from the seeder's.
    BadTag {
        /// Chunk index.
        index: u64,
    },
    /// A chunk number beyond the end of the file.
    ChunkOutOfRange {
        /// Chunk index.
        index: u64,
    },
    /// Too many blocks have proven hashes but unfinished chunks.
    TooManyPending,
    /// A segment header is malformed (chunk count).
    BadSegment {
        /// Segment number.
        segment: u32,
    },
    /// A segment's timestamp is older than the allowed age.
    StaleTimestamp {
        /// The timestamp.
        timestamp: u32,
    },
    /// A segment's timestamp is too far in the future.
    FutureTimestamp {
        /// The timestamp.
        timestamp: u32,
    },
    /// A segment older than the window (a replay, or far too late).
    StaleSegment {
        /// Segment number.
        segment: u32,
    },
    /// A segment whose timestamp goes against the order of segment numbers.
    OutOfOrder {
        /// Segment number.
        segment: u32,
    },
    /// Two different validly signed headers for one segment: the seeder equivocates.
    ConflictingSegment {
        /// Segment number.
        segment: u32,
    },
    /// Not an attack: a chunk or hashes for a segment whose header has not been accepted.
    UnknownSegment {
        /// Segment number.
        segment: u32,
    },
}

impl VerifyError {
    /// True when the error proves the sender altered or invented data: drop the circuit
    /// that delivered it and fetch the block elsewhere. False for "fetch this first" and
    /// for inputs that may just be late or over a limit.
    pub fn is_tampering(&self) -> bool {
        matches!(
            self,
            VerifyError::BadManifest(_)
                | VerifyError::BadSignature
                | VerifyError::HashNameMismatch
                | VerifyError::BadHashList { .. }
                | VerifyError::BadChunk { .. }
                | VerifyError::BadBlock { .. }
                | VerifyError::BadTag { .. }
                | VerifyError::ChunkOutOfRange { .. }
                | VerifyError::BadSegment { .. }
                | VerifyError::OutOfOrder { .. }
                | VerifyError::ConflictingSegment { .. }
        )
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl core::error::Error for VerifyError {}

/// What an accepted input did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Newly verified.
    New,
    /// Already verified before; nothing changed (a repeated chunk is not re-checked, since
    /// its leaf hash may have been dropped; its bytes must be discarded).
    Duplicate,
    /// A file chunk whose leaf hash was not sent: held until its whole block can be
    /// checked. What that check verifies comes out of [`FileVerifier::take_released`].
    Held,
}

/// Bytes of one chunk.
pub type ChunkBytes = heapless::Vec<u8, MAX_CHUNK_DATA_LEN>;

/// What a block checked as a whole released, in order: its leaf hashes (computed from
/// the chunks, now proven, for a store to serve the block's chunks one by one), then its
/// chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The block's leaf hashes, as the DB_HASHES of its level-1 node.
    Hashes(DbHashes),
    /// A verified chunk: index, bytes.
    Chunk(u64, ChunkBytes),
}

/// Limits of the verifiers (from the node's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyLimits {
    /// Largest file accepted, bytes.
    pub max_file_size: u64,
    /// Most blocks (15 chunks) whose leaf hashes are held while their chunks are awaited.
    pub max_pending_blocks: usize,
    /// Oldest live segment accepted, seconds before `now`.
    pub live_max_age_secs: u32,
    /// Newest live segment accepted, seconds after `now` (clock skew).
    pub live_max_skew_secs: u32,
    /// Live segments held at once (the seed's 4 × window); older ones are forgotten and
    /// refused from then on.
    pub live_max_segments: usize,
}

impl Default for VerifyLimits {
    fn default() -> Self {
        VerifyLimits {
            max_file_size: 1 << 30,
            max_pending_blocks: 4096,
            live_max_age_secs: 120,
            live_max_skew_secs: 30,
            live_max_segments: 64,
        }
    }
}

/// A growable bitmap.
#[derive(Debug, Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: u64) -> Bits {
        Bits(vec![0; n.div_ceil(64) as usize])
    }
    fn get(&self, i: u64) -> bool {
        self.0
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn set(&mut self, i: u64) {
        if let Some(w) = self.0.get_mut((i / 64) as usize) {
            *w |= 1 << (i % 64);
        }
    }
}

/// Inner hashes, and blocks of leaf hashes, a relay's tree keeps (each): 256 blocks are
/// 3,840 chunks, several times a GET's range.
const RELAY_MAX_HASHES: usize = 256;

/// Blocks of held chunks a relay's tree keeps: an honest stream is in order and holds
/// one at a time; past it the farthest from the newest is forgotten (≤ 117 kB).
const RELAY_MAX_HELD: usize = 16;

/// Remove the entry of `map` within `range` whose `distance` is largest (of the first
/// and last there).
fn forget_farthest<K: Ord + Copy, V>(
    map: &mut BTreeMap<K, V>,
    range: RangeInclusive<K>,
    distance: impl Fn(&K) -> u64,
) {
    let mut held = map.range(range).map(|(k, _)| *k);
    let (Some(low), high) = (held.next(), held.next_back()) else {
        return;
    };
    let victim = match high {
        Some(h) if distance(&h) > distance(&low) => h,
        _ => low,
    };
    map.remove(&victim);
}

/// Chunks held for whole-block checks: by block, by chunk index, (leaf hash, bytes).
type HeldBlocks = BTreeMap<u64, BTreeMap<u64, ([u8; 32], ChunkBytes)>>;

/// A file tree's whole-block checks (boxed: live segments have none).
#[derive(Debug, Clone, Default)]
struct BlockChecks {
    held: HeldBlocks,
    /// What completed blocks verified, not taken yet.
    released: VecDeque<Released>,
}

/// What a tree keeps of what it proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keeping {
    /// The downloader's: a bit per verified chunk; a finished block's leaf hashes are
    /// dropped and its chunks are duplicates from then on.
    Downloader,
    /// A relaying ORDB's: no bits (every chunk passing by is checked, since each goes to
    /// someone else), and at most this many inner hashes and blocks of leaf hashes; past
    /// it the one farthest from the newest proof is forgotten (a served stream moves one
    /// way).
    Relay(usize),
}

/// Proven state of one tree (a file, or one live segment).
#[derive(Debug, Clone)]
struct TreeState {
    id: u32,
    shape: TreeShape,
    root_prefix: Vec<u8>,
    root: [u8; 32],
    /// Proven hashes of inner nodes, levels 1..depth, by (level, node). Sparse: a relay
    /// or a short download proves only the paths it needs.
    inner: BTreeMap<(u8, u64), [u8; 32]>,
    /// Leaf hashes of level-1 nodes (blocks) proven but not finished.
    pending: BTreeMap<u64, Vec<[u8; 32]>>,
    /// Chunks of blocks without leaf hashes, held until the block is complete (file trees
    /// only; `None` for live segments, which always carry theirs).
    blocks: Option<Box<BlockChecks>>,
    done: Bits,
    done_count: u64,
    keeping: Keeping,
}

impl TreeState {
    fn new(
        id: u32,
        shape: TreeShape,
        root_prefix: &[u8],
        root: [u8; 32],
        keeping: Keeping,
    ) -> TreeState {
        let done = match keeping {
            Keeping::Downloader => Bits::new(shape.n_leaves()),
            Keeping::Relay(_) => Bits::default(),
        };
        TreeState {
            id,
            shape,
            root_prefix: root_prefix.into(),
            root,
            inner: BTreeMap::new(),
            pending: BTreeMap::new(),
            blocks: None,
            done,
            done_count: 0,
            keeping,
        }
    }

    /// The proven hash of inner node (`level`, `node`), `1 ≤ level < depth`.
    fn inner_hash(&self, level: u8, node: u64) -> Option<&[u8; 32]> {
        self.inner.get(&(level, node))
    }

    fn block_complete(&self, block: u64) -> bool {
        let first = block * ARITY as u64;
        let len = self.shape.children_len(1, block) as u64;
        (first..first + len).all(|i| self.done.get(i))
    }

    fn bad_list(&self, level: u8, node: u32) -> VerifyError {
        VerifyError::BadHashList {
            tree: self.id,
            level,
            node,
        }
    }

    fn accept_hashes(
        &mut self,
        level: u8,
        node: u32,
        hashes: &[[u8; 32]],
        max_pending: usize,
    ) -> Result<Accepted, VerifyError> {
        let n = u64::from(node);
        if level == 0 || level > self.shape.depth() || n >= self.shape.level_len(level) {
            return Err(self.bad_list(level, node));
        }
        if hashes.len() != self.shape.children_len(level, n) {
            return Err(self.bad_list(level, node));
        }
        let ok = if level == self.shape.depth() {
            node_hash(&self.root_prefix, hashes) == self.root
        } else {
            let Some(parent) = self.inner_hash(level, n) else {
                return Err(VerifyError::NeedHashes {
                    tree: self.id,
                    level: level + 1,
                    node: node / ARITY as u32,
                });
            };
            node_hash(&[NODE_TAG], hashes) == *parent
        };
        if !ok {
            return Err(self.bad_list(level, node));
        }
        let first = n * ARITY as u64;
        if level >= 2 {
            let mut fresh = false;
            for (i, h) in hashes.iter().enumerate() {
                fresh |= self
                    .inner
                    .insert((level - 1, first + i as u64), *h)
                    .is_none();
            }
            if let Keeping::Relay(max) = self.keeping {
                while self.inner.len() > max {
                    self.forget_inner(level - 1, first);
                }
            }
            return Ok(if fresh {
                Accepted::New
            } else {
                Accepted::Duplicate
            });
        }
        if self.pending.contains_key(&n) || self.block_complete(n) {
            return Ok(Accepted::Duplicate);
        }
        match self.keeping {
            Keeping::Relay(max) => {
                while self.pending.len() >= max.max(1) {
                    forget_farthest(&mut self.pending, 0..=u64::MAX, |b| b.abs_diff(n));
                }
            }
            Keeping::Downloader if self.pending.len() >= max_pending => {
                return Err(VerifyError::TooManyPending);
            }
            Keeping::Downloader => {}
        }
        self.pending.insert(n, hashes.to_vec());
        // Chunks held for this block can now be checked one by one. One that fails came
        // on an earlier stream (this one proved the hashes): it is dropped, not blamed.
        if let Some(held) = self.blocks.as_mut().and_then(|b| b.held.remove(&n)) {
            for (i, (leaf, data)) in held {
                if self.leaf(i) == Some(&leaf) {
                    self.verified(i);
                    self.release(Released::Chunk(i, data));
                }
            }
        }
        Ok(Accepted::New)
    }

    fn release(&mut self, r: Released) {
        if let Some(b) = self.blocks.as_mut() {
            b.released.push_back(r);
        }
    }

    /// Count chunk `index` verified; a finished block's leaf hashes are dropped.
    fn verified(&mut self, index: u64) {
        if let Keeping::Relay(_) = self.keeping {
            return;
        }
        self.done.set(index);
        self.done_count += 1;
        let block = index / ARITY as u64;
        if self.block_complete(block) {
            self.pending.remove(&block);
        }
    }

    /// Whether block `block` can be checked as a whole: its node hash is proven (the
    /// signed root itself when the file is one block).
    fn block_provable(&self, block: u64) -> bool {
        self.shape.depth() == 1 || self.inner_hash(1, block).is_some()
    }

    /// Hold chunk `index` (leaf hash `leaf`) of a block without leaf hashes; once the block
    /// is complete, check it against its node hash and release it.
    fn hold(
        &mut self,
        index: u64,
        leaf: [u8; 32],
        data: &[u8],
        max_pending: usize,
    ) -> Result<Accepted, VerifyError> {
        let block = index / ARITY as u64;
        let data = ChunkBytes::from_slice(data).map_err(|_| VerifyError::BadChunk { index })?;
        let keeping = self.keeping;
        let Some(held) = self.blocks.as_mut().map(|b| &mut b.held) else {
            return Err(self.need_leaf_error(index));
        };
        if !held.contains_key(&block) {
            match keeping {
                Keeping::Relay(_) => {
                    while held.len() >= RELAY_MAX_HELD {
                        forget_farthest(held, 0..=u64::MAX, |b| b.abs_diff(block));
                    }
                }
                Keeping::Downloader if held.len() + self.pending.len() >= max_pending => {
                    return Err(VerifyError::TooManyPending);
                }
                Keeping::Downloader => {}
            }
        }
        let chunks = held.entry(block).or_default();
        // A repeat replaces what an earlier stream sent.
        chunks.insert(index, (leaf, data));
        if chunks.len() < self.shape.children_len(1, block) {
            return Ok(Accepted::Held);
        }
        let chunks = held.remove(&block).unwrap_or_default();
        let leaves: Vec<[u8; 32]> = chunks.values().map(|c| c.0).collect();
        let ok = if self.shape.depth() == 1 {
            node_hash(&self.root_prefix, &leaves) == self.root
        } else {
            self.inner_hash(1, block) == Some(&node_hash(&[NODE_TAG], &leaves))
        };
        if !ok {
            return Err(VerifyError::BadBlock { block });
        }
        if let (Ok(node), Ok(hashes)) = (u32::try_from(block), heapless::Vec::from_slice(&leaves)) {
            self.release(Released::Hashes(DbHashes {
                tree: self.id,
                level: 1,
                node,
                hashes,
            }));
        }
        for (i, (_, data)) in chunks {
            self.verified(i);
            self.release(Released::Chunk(i, data));
        }
        Ok(Accepted::Held)
    }

    /// A relay's bound: forget one inner hash, at the lowest level held, the farthest
    /// from node `near` of `level` (a served range moves one way; the top of the tree,
    /// needed by every chunk, is kept).
    fn forget_inner(&mut self, level: u8, near: u64) {
        let Some(&(lowest, _)) = self.inner.keys().next() else {
            return;
        };
        let scale = (ARITY as u64).saturating_pow(u32::from(level.saturating_sub(lowest)));
        let near = near.saturating_mul(scale);
        forget_farthest(&mut self.inner, (lowest, 0)..=(lowest, u64::MAX), |k| {
            k.1.abs_diff(near)
        });
    }

    /// The proven leaf hash of chunk `index`, if its block's hashes are held.
    fn leaf(&self, index: u64) -> Option<&[u8; 32]> {
        let block = index / ARITY as u64;
        self.pending
            .get(&block)?
            .get((index % ARITY as u64) as usize)
    }

    fn need_leaf_error(&self, index: u64) -> VerifyError {
        let want = self.next_needed(index).unwrap_or(NodeRef {
            level: 1,
            node: (index / ARITY as u64) as u32,
        });
        VerifyError::NeedHashes {
            tree: self.id,
            level: want.level,
            node: want.node,
        }
    }

    /// Accept chunk `index` whose leaf hash is `leaf` (computed by the caller).
    fn accept_leaf(
        &mut self,
        index: u64,
        data: &[u8],
        leaf: [u8; 32],
        max_pending: usize,
    ) -> Result<Accepted, VerifyError> {
        if index >= self.shape.n_leaves() {
            return Err(VerifyError::ChunkOutOfRange { index });
        }
        if self.done.get(index) {
            return Ok(Accepted::Duplicate);
        }
        let Some(want) = self.leaf(index) else {
            if self.blocks.is_some() && self.block_provable(index / ARITY as u64) {
                return self.hold(index, leaf, data, max_pending);
            }
            return Err(self.need_leaf_error(index));
        };
        if leaf != *want {
            return Err(VerifyError::BadChunk { index });
        }
        self.verified(index);
        Ok(Accepted::New)
    }

    /// The highest node on the path to chunk `index` whose children are not yet proven:
    /// what to ask for next (top-down). `None` when the chunk's leaf hash is held or the
    /// chunk is verified.
    fn next_needed(&self, index: u64) -> Option<NodeRef> {
        if index >= self.shape.n_leaves() || self.done.get(index) || self.leaf(index).is_some() {
            return None;
        }
        let mut level = self.shape.depth();
        while level > 1 {
            let child = self.shape.ancestor(index, level - 1);
            if self.inner_hash(level - 1, child).is_none() {
                break;
            }
            level -= 1;
        }
        Some(NodeRef {
            level,
            node: self.shape.ancestor(index, level) as u32,
        })
    }
}

/// The downloader's verifier for one file.
#[derive(Debug, Clone)]
pub struct FileVerifier {
    manifest: FileManifest,
    limits: VerifyLimits,
    tree: TreeState,
}

impl FileVerifier {
    /// Start from a manifest, checked against the hash_name that was asked for.
    pub fn new(
        hash_name: &[u8],
        manifest: FileManifest,
        limits: VerifyLimits,
    ) -> Result<FileVerifier, VerifyError> {
        FileVerifier::keeping(hash_name, manifest, limits, Keeping::Downloader)
    }

    /// Start from the DB_CONNECTED answer (must be a file manifest).
    pub fn from_db_connected(
        hash_name: &[u8],
        c: &DbConnected,
        limits: VerifyLimits,
    ) -> Result<FileVerifier, VerifyError> {
        match Manifest::from_db_connected(c)? {
            Manifest::File(m) => FileVerifier::new(hash_name, m, limits),
            Manifest::Live(_) => Err(VerifyError::BadManifest("a live stream, not a file")),
        }
    }

    /// A relaying ORDB's check of one answer stream, from its DB_CONNECTED: every chunk
    /// passing by is checked against the hashes the stream proved (none counts as a
    /// duplicate), and memory stays bounded (about 135 kB at most) whatever the file's
    /// size, by forgetting the lowest hashes first. `Ok(None)` for a live stream, which
    /// is not checked on the way.
    pub fn for_relay(
        hash_name: &[u8],
        c: &DbConnected,
        limits: VerifyLimits,
    ) -> Result<Option<FileVerifier>, VerifyError> {
        match Manifest::from_db_connected(c)? {
            Manifest::File(m) => {
                FileVerifier::keeping(hash_name, m, limits, Keeping::Relay(RELAY_MAX_HASHES))
                    .map(Some)
            }
            Manifest::Live(_) => Ok(None),
        }
    }

    fn keeping(
        hash_name: &[u8],
        manifest: FileManifest,
        limits: VerifyLimits,
        keeping: Keeping,
    ) -> Result<FileVerifier, VerifyError> {
        verify_manifest(hash_name, &manifest)?;
        if manifest.size > limits.max_file_size {
            return Err(VerifyError::TooLarge);
        }
        let shape = manifest.shape().ok_or(VerifyError::TooLarge)?;
        let prefix = file_root_prefix(manifest.size, manifest.chunk_size);
        let mut tree = TreeState::new(0, shape, &prefix, manifest.root, keeping);
        tree.blocks = Some(Box::default());
        Ok(FileVerifier {
            manifest,
            limits,
            tree,
        })
    }

    /// The verified manifest.
    pub fn manifest(&self) -> &FileManifest {
        &self.manifest
    }

    /// The hash_name this verifier checks.
    pub fn hash_name(&self) -> Name20 {
        self.manifest.hash_name()
    }

    /// Number of chunks.
    pub fn n_chunks(&self) -> u64 {
        self.tree.shape.n_leaves()
    }

    /// Accept a DB_HASHES answer: its hashes must hash to their proven parent (the root
    /// for the top node). A request (no hashes) or a node of another tree is refused.
    pub fn accept_hashes(&mut self, msg: &DbHashes) -> Result<Accepted, VerifyError> {
        if msg.tree != 0 {
            return Err(VerifyError::BadHashList {
                tree: msg.tree,
                level: msg.level,
                node: msg.node,
            });
        }
        self.tree.accept_hashes(
            msg.level,
            msg.node,
            &msg.hashes,
            self.limits.max_pending_blocks,
        )
    }

    /// Accept chunk `index` (0-based): its length must be the one the signed size implies
    /// and its hash the proven leaf hash, or, when its block's leaf hashes were not sent,
    /// it is held until the whole block hashes to the block's proven node hash
    /// ([`Accepted::Held`]; see [`FileVerifier::take_released`]). `NeedHashes` says what
    /// to fetch first.
    pub fn accept_chunk(&mut self, index: u64, data: &[u8]) -> Result<Accepted, VerifyError> {
        self.accept_hashed(index, data, leaf_hash(data))
    }

    fn accept_hashed(
        &mut self,
        index: u64,
        data: &[u8],
        leaf: [u8; 32],
    ) -> Result<Accepted, VerifyError> {
        if index < self.n_chunks()
            && !self.tree.done.get(index)
            && data.len() != self.manifest.chunk_len(index)
        {
            return Err(VerifyError::BadChunk { index });
        }
        let max = self.limits.max_pending_blocks;
        self.tree.accept_leaf(index, data, leaf, max)
    }

    /// Accept a DB_DATA cell: the chunk number is 1-based on the wire, and the tag must be
    /// the seeder's (publish time, first 4 bytes of the leaf hash) before the data is
    /// checked.
    pub fn accept_db_data(&mut self, msg: &DbData) -> Result<Accepted, VerifyError> {
        let Some(index) = content::index_from_wire(msg.chunk) else {
            return Err(VerifyError::ChunkOutOfRange { index: 0 });
        };
        let leaf = leaf_hash(&msg.data);
        if index < self.n_chunks() && !self.tree.done.get(index) {
            // Against the proven leaf when there is one, else against the data.
            let want = self.tree.leaf(index).unwrap_or(&leaf);
            let tag = &msg.signature;
            if tag.timestamp() != self.manifest.published || tag.sig_prefix() != want[..4] {
                return Err(VerifyError::BadTag { index });
            }
        }
        self.accept_hashed(index, &msg.data, leaf)
    }

    /// The next of what blocks checked as a whole verified (their leaf hashes, then their
    /// chunks, in order). Take them all after each accepted chunk or hash list.
    pub fn take_released(&mut self) -> Option<Released> {
        self.tree.blocks.as_mut()?.released.pop_front()
    }

    /// Blocks with chunks held, waiting for the rest of the block.
    pub fn held_blocks(&self) -> usize {
        self.tree.blocks.as_ref().map_or(0, |b| b.held.len())
    }

    /// True once chunk `index` is verified.
    pub fn is_verified(&self, index: u64) -> bool {
        self.tree.done.get(index)
    }

    /// Count chunk `index` as verified without its data: the application already holds
    /// it, checked in an earlier run (a resumed download). Out-of-range indexes are
    /// ignored. Also lets a block whose other chunks arrive now be finished (its leaf
    /// hashes dropped).
    pub fn mark_held(&mut self, index: u64) {
        if index < self.n_chunks() && !self.tree.done.get(index) {
            self.tree.verified(index);
        }
    }

    /// Chunks verified so far.
    pub fn verified_count(&self) -> u64 {
        self.tree.done_count
    }

    /// True when every chunk is verified.
    pub fn is_complete(&self) -> bool {
        self.tree.done_count == self.n_chunks()
    }

    /// The node whose DB_HASHES must be fetched next before chunk `index` can be checked
    /// alone (against its leaf hash).
    pub fn next_hashes_needed(&self, index: u64) -> Option<NodeRef> {
        self.tree.next_needed(index)
    }

    /// Blocks whose leaf hashes are held (bounded by `max_pending_blocks`).
    pub fn pending_blocks(&self) -> usize {
        self.tree.pending.len()
    }
}

/// One accepted live segment.
#[derive(Debug, Clone)]
struct LiveSegment {
    header: DbSegment,
    tree: TreeState,
}

/// The downloader's verifier for one live stream: a window of recent segments.
#[derive(Debug, Clone)]
pub struct LiveVerifier {
    manifest: LiveManifest,
    limits: VerifyLimits,
    segments: BTreeMap<u32, LiveSegment>,
    /// Segments below this were forgotten (or never wanted): refused as stale.
    floor: u32,
    /// Highest segment accepted and its timestamp.
    newest: Option<(u32, u32)>,
}

impl LiveVerifier {
    /// Start from a live manifest, checked against the requested hash_name.
    pub fn new(
        hash_name: &[u8],
        manifest: LiveManifest,
        limits: VerifyLimits,
    ) -> Result<LiveVerifier, VerifyError> {
        verify_live_manifest(hash_name, &manifest)?;
        Ok(LiveVerifier {
            manifest,
            limits,
            segments: BTreeMap::new(),
            floor: 0,
            newest: None,
        })
    }

    /// The verified manifest.
    pub fn manifest(&self) -> &LiveManifest {
        &self.manifest
    }

    /// Accept a segment header at wall-clock time `now_secs` (Unix seconds, from the
    /// driver): signature, timestamp window, order against the newest segment, no
    /// replay of forgotten segments, no second version of a held one.
    pub fn accept_segment(
        &mut self,
        h: &DbSegment,
        now_secs: u32,
    ) -> Result<Accepted, VerifyError> {
        if let Some(s) = self.segments.get(&h.segment) {
            return if s.header == *h {
                Ok(Accepted::Duplicate)
            } else {
                verify_segment(&self.manifest, h, now_secs, u32::MAX, u32::MAX)?;
                Err(VerifyError::ConflictingSegment { segment: h.segment })
            };
        }
        if h.segment < self.floor {
            return Err(VerifyError::StaleSegment { segment: h.segment });
        }
        let max_segments = self.limits.live_max_segments.max(1);
        if let Some((seg, _)) = self.newest
            && u64::from(h.segment) + max_segments as u64 <= u64::from(seg)
        {
            return Err(VerifyError::StaleSegment { segment: h.segment });
        }
        verify_segment(
            &self.manifest,
            h,
            now_secs,
            self.limits.live_max_age_secs,
            self.limits.live_max_skew_secs,
        )?;
        if let Some((seg, ts)) = self.newest
            && ((h.segment > seg && h.timestamp < ts) || (h.segment < seg && h.timestamp > ts))
        {
            return Err(VerifyError::OutOfOrder { segment: h.segment });
        }
        let shape = TreeShape::new(u64::from(h.n_chunks))
            .ok_or(VerifyError::BadSegment { segment: h.segment })?;
        let prefix = segment_root_prefix(h.segment, h.n_chunks);
        let tree = TreeState::new(h.segment, shape, &prefix, h.root, Keeping::Downloader);
        self.segments.insert(
            h.segment,
            LiveSegment {
                header: h.clone(),
                tree,
            },
        );
        if self.newest.is_none_or(|(seg, _)| h.segment > seg) {
            self.newest = Some((h.segment, h.timestamp));
        }
        while self.segments.len() > max_segments {
            let Some((&old, _)) = self.segments.first_key_value() else {
                break;
            };
            self.segments.remove(&old);
            self.floor = self.floor.max(old.saturating_add(1));
        }
        Ok(Accepted::New)
    }

    /// Accept a DB_HASHES for segment `msg.tree`.
    pub fn accept_hashes(&mut self, msg: &DbHashes) -> Result<Accepted, VerifyError> {
        let max = self.limits.max_pending_blocks;
        let seg = self
            .segments
            .get_mut(&msg.tree)
            .ok_or(VerifyError::UnknownSegment { segment: msg.tree })?;
        seg.tree
            .accept_hashes(msg.level, msg.node, &msg.hashes, max)
    }

    /// Segment and position within it of absolute chunk `abs`.
    fn locate(&self, abs: u64) -> Option<(u32, u64)> {
        let s = u64::from(self.manifest.segment_chunks.max(1));
        Some((u32::try_from(abs / s).ok()?, abs % s))
    }

    /// Accept absolute chunk `abs` (segment = abs / segment_chunks): at most `chunk_size`
    /// bytes, hashing to its segment's proven leaf hash.
    pub fn accept_chunk(&mut self, abs: u64, data: &[u8]) -> Result<Accepted, VerifyError> {
        let Some((segment, local)) = self.locate(abs) else {
            return Err(VerifyError::ChunkOutOfRange { index: abs });
        };
        let max_len = usize::from(self.manifest.chunk_size);
        let seg = self
            .segments
            .get_mut(&segment)
            .ok_or(VerifyError::UnknownSegment { segment })?;
        if data.len() > max_len {
            return Err(VerifyError::BadChunk { index: abs });
        }
        let max = self.limits.max_pending_blocks;
        let leaf = leaf_hash(data);
        seg.tree
            .accept_leaf(local, data, leaf, max)
            .map_err(|e| match e {
                VerifyError::BadChunk { .. } => VerifyError::BadChunk { index: abs },
                VerifyError::ChunkOutOfRange { .. } => VerifyError::ChunkOutOfRange { index: abs },
                e => e,
            })
    }

    /// The absolute chunk a wire chunk number stands for: the latest one on the ring not
    /// after the newest accepted segment's end (chunks never run ahead of their header,
    /// and the held window, ≤ 64 segments, fits in the ring).
    pub fn absolute_chunk(&self, wire: u32) -> Option<u64> {
        let s = u64::from(self.manifest.segment_chunks.max(1));
        let ring = self.manifest.ring();
        let size = u64::from(ring.size());
        if wire == 0 || u64::from(wire) > size {
            return None;
        }
        let end = self.newest.map_or(s, |(seg, _)| (u64::from(seg) + 1) * s) - 1;
        let slot = u64::from(wire - 1);
        let lap = end - end % size;
        if lap + slot <= end {
            Some(lap + slot)
        } else {
            lap.checked_sub(size).map(|l| l + slot)
        }
    }

    /// Accept a DB_DATA cell: wire number resolved on the ring; the tag must be the
    /// segment's timestamp and the first 4 bytes of its signature.
    pub fn accept_db_data(&mut self, msg: &DbData) -> Result<Accepted, VerifyError> {
        let abs = self
            .absolute_chunk(msg.chunk)
            .ok_or(VerifyError::ChunkOutOfRange {
                index: u64::from(msg.chunk),
            })?;
        if let Some((segment, _)) = self.locate(abs)
            && let Some(seg) = self.segments.get(&segment)
        {
            let tag = &msg.signature;
            if tag.timestamp() != seg.header.timestamp
                || tag.sig_prefix() != seg.header.signature[..4]
            {
                return Err(VerifyError::BadTag { index: abs });
            }
        }
        self.accept_chunk(abs, &msg.data)
    }

    /// True once absolute chunk `abs` is verified (and its segment still held).
    pub fn is_verified(&self, abs: u64) -> bool {
        self.locate(abs)
            .and_then(|(seg, local)| Some(self.segments.get(&seg)?.tree.done.get(local)))
            .unwrap_or(false)
    }

    /// The DB_HASHES node to fetch next for absolute chunk `abs`, as (segment, node).
    pub fn next_hashes_needed(&self, abs: u64) -> Option<(u32, NodeRef)> {
        let (seg, local) = self.locate(abs)?;
        Some((seg, self.segments.get(&seg)?.tree.next_needed(local)?))
    }

    /// The held segment numbers, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = u32> + '_ {
        self.segments.keys().copied()
    }
}
