//! ORDB data validation: every byte a downloader accepts is provably the seeder's.
//!
//! The seed's 8-byte DB_DATA tag (timestamp + 4 bytes of a signature) cannot be checked by a
//! receiver, so we authenticate content with hash trees instead (PROTOCOL.md section 6):
//!
//! - A **file** is cut into chunks of one DB_DATA payload (486 bytes). A 15-ary SHA-256
//!   tree is built over the chunk hashes; its root binds the file size and chunk size. The
//!   seeder signs a [`FileManifest`] (size, MIME type, root) with ed25519, and the file's
//!   hash_name is `SHA-256(tag | seeder key | root)[..20]`: a self-certifying 160-bit DHT
//!   key ([`file_hash_name`]). DB_HASHES cells carry the 15 child hashes of one tree node
//!   (one cell each), so a downloader verifies hashes top-down and then each chunk with a
//!   single hash compare.
//! - A **live stream** has no end, so no global root: every segment (default 64 chunks)
//!   gets its own tree, whose root the seeder signs in a DB_SEGMENT header with a
//!   timestamp ([`live`]).
//! - [`FileVerifier`] and [`LiveVerifier`] are the downloader's state machines;
//!   [`FileSeeder`] and [`LiveSeeder`] produce manifests, hash messages and DB_DATA cells.
//!
//! Everything here is pure and deterministic: no clock (live checks take `now_secs`), no
//! randomness (ed25519 signing is deterministic).

pub mod cache;
mod content;
pub mod download;
pub mod live;
mod seeder;
pub mod serve;
pub mod store;
pub mod tally;
mod tree;
mod verify;

pub use cache::RelayCache;
pub use content::{
    FILE_NAME_TAG, FILE_SIGN_TAG, FileManifest, Manifest, TRAILER_KIND_FILE, TRAILER_KIND_LIVE,
    file_hash_name, index_from_wire, verify_manifest, wire_chunk_nb,
};
pub use download::{
    DlAction, DlCircuit, DlError, DownloadConfig, DownloadStats, Downloader, DropReason, GetId,
    Verified,
};
pub use live::{
    ChunkRing, DEFAULT_SEGMENT_CHUNKS, LiveManifest, MAX_SEGMENT_CHUNKS, live_hash_name,
    segment_signed_message, verify_live_manifest, verify_segment,
};
pub use seeder::{FileSeeder, LiveSeeder, SeedError, SignedSegment};
pub use serve::{ServeCursor, ServeStep};
pub use store::{ChunkStore, MemoryStore, StoreError, store_file, store_segment};
pub use tally::ServedTally;
pub use tree::{ARITY, NodeRef, TreeShape, leaf_hash};
pub use verify::{
    Accepted, ChunkBytes, FileVerifier, LiveVerifier, Released, VerifyError, VerifyLimits,
};

/// Bytes of content per chunk: one full DB_DATA payload.
pub const CHUNK_SIZE: u16 = crate::cells::relay::MAX_CHUNK_DATA_LEN as u16;

/// A file's or stream's 20-byte name (a DHT key), as derived here.
pub type Name20 = [u8; 20];

#[cfg(test)]
mod tests;
