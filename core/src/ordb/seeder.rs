//! The seeder's side: build a file's tree, manifest, DB_HASHES and DB_DATA cells; sign a
//! live stream's segments.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::content::{FileManifest, chunk_count, file_hash_name, file_root_prefix, wire_chunk_nb};
use super::live::{LiveManifest, MAX_SEGMENT_CHUNKS, segment_root_prefix, segment_signed_message};
use super::tree::{ARITY, TreeShape, build_levels, leaf_hash};
use super::{CHUNK_SIZE, Name20};
use crate::cells::relay::{ChunkSignature, DbConnected, DbData, DbHashes, DbSegment};
use crate::crypto::identity::Ed25519Keypair;

/// Why content could not be seeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedError {
    /// Chunk size not in 1..=486, or segment size not in 1..=225.
    BadChunkSize,
    /// More chunks than DB_DATA can number, or a segment with too many chunks.
    TooLarge,
    /// MIME type longer than 255 bytes.
    MimeTooLong,
    /// A live chunk longer than the stream's chunk size, or an empty segment.
    BadChunk,
}

impl fmt::Display for SeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl core::error::Error for SeedError {}

/// DB_HASHES carrying the children of node (`level`, `node`) from a full set of levels.
fn hashes_msg(
    levels: &[Vec<[u8; 32]>],
    shape: &TreeShape,
    tree: u32,
    level: u8,
    node: u64,
) -> Option<DbHashes> {
    let len = shape.children_len(level, node);
    if len == 0 {
        return None;
    }
    let below = levels.get(usize::from(level) - 1)?;
    let first = node as usize * ARITY;
    let hashes = heapless::Vec::from_slice(below.get(first..first + len)?).ok()?;
    Some(DbHashes {
        tree,
        level,
        node: u32::try_from(node).ok()?,
        hashes,
    })
}

/// The DB_HASHES (top-down, each node once) that prove chunks `first..first+count`.
fn hashes_path(
    levels: &[Vec<[u8; 32]>],
    shape: &TreeShape,
    tree: u32,
    first: u64,
    count: u64,
) -> Vec<DbHashes> {
    let mut out = Vec::new();
    if count == 0 || first >= shape.n_leaves() {
        return out;
    }
    let last = first.saturating_add(count - 1).min(shape.n_leaves() - 1);
    for level in (1..=shape.depth()).rev() {
        for node in shape.ancestor(first, level)..=shape.ancestor(last, level) {
            if let Some(m) = hashes_msg(levels, shape, tree, level, node) {
                out.push(m);
            }
        }
    }
    out
}

fn check_mime(mime_type: &str) -> Result<(), SeedError> {
    if mime_type.len() > 255 {
        return Err(SeedError::MimeTooLong);
    }
    Ok(())
}

/// A file ready to be served: its bytes, every level of its tree, its signed manifest.
/// Memory: the file plus 32 bytes per chunk (and 1/14 of that for inner nodes).
#[derive(Debug, Clone)]
pub struct FileSeeder {
    manifest: FileManifest,
    shape: TreeShape,
    data: Vec<u8>,
    levels: Vec<Vec<[u8; 32]>>,
}

impl FileSeeder {
    /// Seed `data` in 486-byte chunks, published at `published` (Unix seconds).
    pub fn new(
        key: &Ed25519Keypair,
        mime_type: &str,
        published: u32,
        data: Vec<u8>,
    ) -> Result<FileSeeder, SeedError> {
        FileSeeder::with_chunk_size(key, mime_type, published, CHUNK_SIZE, data)
    }

    /// Seed `data` in chunks of `chunk_size` bytes (1..=486).
    pub fn with_chunk_size(
        key: &Ed25519Keypair,
        mime_type: &str,
        published: u32,
        chunk_size: u16,
        data: Vec<u8>,
    ) -> Result<FileSeeder, SeedError> {
        if chunk_size == 0 || chunk_size > CHUNK_SIZE {
            return Err(SeedError::BadChunkSize);
        }
        check_mime(mime_type)?;
        let size = data.len() as u64;
        let shape = TreeShape::new(chunk_count(size, chunk_size)).ok_or(SeedError::TooLarge)?;
        let leaves: Vec<[u8; 32]> = if data.is_empty() {
            alloc::vec![leaf_hash(&[])]
        } else {
            data.chunks(usize::from(chunk_size))
                .map(leaf_hash)
                .collect()
        };
        let levels = build_levels(leaves, &file_root_prefix(size, chunk_size));
        let root = levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .ok_or(SeedError::TooLarge)?;
        let mut manifest = FileManifest {
            size,
            mime_type: String::from(mime_type),
            chunk_size,
            published,
            root,
            seeder_key: key.public(),
            signature: [0; 64],
        };
        manifest.signature = key.sign(&manifest.signed_message());
        Ok(FileSeeder {
            manifest,
            shape,
            data,
            levels,
        })
    }

    /// The signed manifest.
    pub fn manifest(&self) -> &FileManifest {
        &self.manifest
    }

    /// The file's hash_name (its DHT key).
    pub fn hash_name(&self) -> Name20 {
        file_hash_name(&self.manifest.seeder_key, &self.manifest.root)
    }

    /// The DB_CONNECTED answering a file-info query.
    pub fn db_connected(&self) -> DbConnected {
        self.manifest.to_db_connected()
    }

    /// Number of chunks.
    pub fn n_chunks(&self) -> u64 {
        self.shape.n_leaves()
    }

    /// The tree shape.
    pub fn shape(&self) -> TreeShape {
        self.shape
    }

    /// Bytes of chunk `index` (0-based).
    pub fn chunk(&self, index: u64) -> Option<&[u8]> {
        if index >= self.n_chunks() {
            return None;
        }
        let c = usize::from(self.manifest.chunk_size);
        let start = usize::try_from(index).ok()?.checked_mul(c)?;
        let end = start.saturating_add(c).min(self.data.len());
        self.data.get(start..end).or(Some(&[]))
    }

    /// The DB_DATA tag of chunk `index`: publish time and the first 4 bytes of the chunk's
    /// leaf hash.
    pub fn tag(&self, index: u64) -> Option<ChunkSignature> {
        let leaf = self.levels.first()?.get(usize::try_from(index).ok()?)?;
        let [a, b, c, d, ..] = *leaf;
        Some(ChunkSignature::new(self.manifest.published, [a, b, c, d]))
    }

    /// The DB_DATA cell of chunk `index` (wire number `index + 1`).
    pub fn db_data(&self, index: u64) -> Option<DbData> {
        DbData::new(wire_chunk_nb(index)?, self.tag(index)?, self.chunk(index)?).ok()
    }

    /// The DB_HASHES carrying the children of node (`level`, `node`).
    pub fn hashes(&self, level: u8, node: u32) -> Option<DbHashes> {
        hashes_msg(&self.levels, &self.shape, 0, level, u64::from(node))
    }

    /// Every DB_HASHES a fresh downloader needs to verify chunks `first..first+count`,
    /// top-down (send them before the DB_DATA cells; a downloader ignores duplicates).
    pub fn hashes_for_range(&self, first: u64, count: u64) -> Vec<DbHashes> {
        hashes_path(&self.levels, &self.shape, 0, first, count)
    }
}

/// What the seeder sends for one live segment: header, then hashes, then chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedSegment {
    /// The signed DB_SEGMENT.
    pub header: DbSegment,
    /// Every DB_HASHES of the segment's tree, top-down.
    pub hashes: Vec<DbHashes>,
    /// The DB_DATA cells, numbered on the stream's ring.
    pub data: Vec<DbData>,
}

/// A live stream's seeder: signs one header per segment.
#[derive(Debug, Clone)]
pub struct LiveSeeder {
    key: Ed25519Keypair,
    manifest: LiveManifest,
    next_segment: u32,
}

impl LiveSeeder {
    /// A stream created at `created` (Unix seconds) with `segment_chunks` chunks (1..=225)
    /// of at most 486 bytes per segment.
    pub fn new(
        key: Ed25519Keypair,
        mime_type: &str,
        created: u32,
        segment_chunks: u16,
    ) -> Result<LiveSeeder, SeedError> {
        if segment_chunks == 0 || segment_chunks > MAX_SEGMENT_CHUNKS {
            return Err(SeedError::BadChunkSize);
        }
        check_mime(mime_type)?;
        let mut manifest = LiveManifest {
            mime_type: String::from(mime_type),
            chunk_size: CHUNK_SIZE,
            segment_chunks,
            created,
            seeder_key: key.public(),
            signature: [0; 64],
        };
        manifest.signature = key.sign(&manifest.signed_message());
        Ok(LiveSeeder {
            key,
            manifest,
            next_segment: 0,
        })
    }

    /// The signed manifest.
    pub fn manifest(&self) -> &LiveManifest {
        &self.manifest
    }

    /// The stream's hash_name.
    pub fn hash_name(&self) -> Name20 {
        self.manifest.hash_name()
    }

    /// The DB_CONNECTED answering a stream-info query.
    pub fn db_connected(&self) -> DbConnected {
        self.manifest.to_db_connected()
    }

    /// Number of the next segment [`LiveSeeder::sign_segment`] produces.
    pub fn next_segment(&self) -> u32 {
        self.next_segment
    }

    /// Sign the next segment, made of `chunks` (1..=segment_chunks, each ≤ 486 bytes),
    /// produced at `timestamp` (Unix seconds). One ed25519 signature per segment.
    pub fn sign_segment(
        &mut self,
        chunks: &[&[u8]],
        timestamp: u32,
    ) -> Result<SignedSegment, SeedError> {
        let s = self.manifest.segment_chunks;
        if chunks.is_empty() || chunks.len() > usize::from(s) {
            return Err(SeedError::BadChunk);
        }
        if chunks.iter().any(|c| c.len() > usize::from(CHUNK_SIZE)) {
            return Err(SeedError::BadChunk);
        }
        let segment = self.next_segment;
        let n_chunks = chunks.len() as u16;
        let shape = TreeShape::new(u64::from(n_chunks)).ok_or(SeedError::TooLarge)?;
        let leaves: Vec<[u8; 32]> = chunks.iter().map(|c| leaf_hash(c)).collect();
        let levels = build_levels(leaves, &segment_root_prefix(segment, n_chunks));
        let root = levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .ok_or(SeedError::TooLarge)?;
        let mut header = DbSegment {
            segment,
            timestamp,
            n_chunks,
            root,
            signature: [0; 64],
        };
        header.signature = self
            .key
            .sign(&segment_signed_message(&self.manifest.hash_name(), &header));
        let hashes = hashes_path(&levels, &shape, segment, 0, u64::from(n_chunks));
        let [a, b, c, d, ..] = header.signature;
        let tag = ChunkSignature::new(timestamp, [a, b, c, d]);
        let ring = self.manifest.ring();
        let base = u64::from(segment) * u64::from(s);
        let data = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| DbData::new(ring.to_wire(base + i as u64), tag, c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| SeedError::BadChunk)?;
        self.next_segment = segment.checked_add(1).ok_or(SeedError::TooLarge)?;
        Ok(SignedSegment {
            header,
            hashes,
            data,
        })
    }
}
