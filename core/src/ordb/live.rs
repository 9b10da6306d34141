//! Live streams: no end and no global root, so the seeder signs each segment (default 64
//! chunks, about 31 kB) with ed25519: a DB_SEGMENT header carries the segment number, its
//! timestamp, its chunk count and the root of a content tree over its chunks. Chunks are
//! checked against their segment's tree exactly as file chunks are against a file's.
//!
//! Also here: the seed's sliding window of chunk numbers ([`ChunkRing`]).

use alloc::string::String;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

use super::content::TRAILER_KIND_LIVE;
use super::tree::ARITY;
use super::{CHUNK_SIZE, Name20, VerifyError};
use crate::cells::relay::{DbConnected, DbSegment};
use crate::codec::Writer;
use crate::crypto::identity::Ed25519Identity;

/// Domain tag of a live stream's hash_name derivation.
pub const LIVE_NAME_TAG: &[u8] = b"onionpeer ordb live name v1\0";
/// Domain tag of a live manifest's signed message.
pub const LIVE_SIGN_TAG: &[u8] = b"onionpeer ordb live manifest v1\0";
/// Domain tag of a segment header's signed message.
pub const SEGMENT_SIGN_TAG: &[u8] = b"onionpeer ordb live segment v1\0";
/// Domain byte of a segment tree's root.
pub(crate) const SEGMENT_ROOT_TAG: u8 = 0x03;
/// Default chunks per segment: 64 × 486 = 31,104 bytes, one signature each.
pub const DEFAULT_SEGMENT_CHUNKS: u16 = 64;
/// Most chunks per segment: a tree of depth 2 (15 × 15), so a segment's hashes are at
/// most 1 + 15 DB_HASHES.
pub const MAX_SEGMENT_CHUNKS: u16 = (ARITY * ARITY) as u16;
/// Segments in the sliding window of chunk numbers: 64 segments of 64 chunks ≈ 2 MB, the
/// seed's "4 times the window size" for its ~500 kB window.
pub const RING_SEGMENTS: u32 = 64;

/// `SHA-256(LIVE_NAME_TAG | seeder key | created u32)[..20]`: a stream's hash_name. One key
/// can run several streams, told apart by their creation time.
pub fn live_hash_name(seeder_key: &Ed25519Identity, created: u32) -> Name20 {
    let mut h = Sha256::new();
    h.update(LIVE_NAME_TAG);
    h.update(seeder_key.as_bytes());
    h.update(created.to_be_bytes());
    let d: [u8; 32] = h.finalize().into();
    let mut out = [0u8; 20];
    out.copy_from_slice(&d[..20]);
    out
}

/// What DB_CONNECTED says about a live stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveManifest {
    /// MIME type (≤ 255 bytes of UTF-8).
    pub mime_type: String,
    /// Largest chunk (1..=486); live chunks may be shorter.
    pub chunk_size: u16,
    /// Chunks per segment (1..=225).
    pub segment_chunks: u16,
    /// When the stream was created, seconds since the Unix epoch (part of the name).
    pub created: u32,
    /// The seeder's ed25519 public key.
    pub seeder_key: Ed25519Identity,
    /// Signature over [`LiveManifest::signed_message`].
    pub signature: [u8; 64],
}

impl LiveManifest {
    /// The stream's hash_name.
    pub fn hash_name(&self) -> Name20 {
        live_hash_name(&self.seeder_key, self.created)
    }

    /// `LIVE_SIGN_TAG | hash_name [20] | chunk_size u16 | segment_chunks u16 | created u32 |
    /// mime_len u8 | mime`.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut m = Vec::new();
        m.write_all(LIVE_SIGN_TAG);
        m.write_all(&self.hash_name());
        m.write_u16(self.chunk_size);
        m.write_u16(self.segment_chunks);
        m.write_u32(self.created);
        let mime = self.mime_type.as_bytes();
        m.write_u8(mime.len().min(255) as u8);
        m.write_all(mime.get(..255).unwrap_or(mime));
        m
    }

    /// DB_CONNECTED with size 0, the key, and the trailer `kind u8 (2) | chunk_size u16 |
    /// segment_chunks u16 | created u32 | signature [64]`.
    pub fn to_db_connected(&self) -> DbConnected {
        let mut trailer = Vec::with_capacity(73);
        trailer.write_u8(TRAILER_KIND_LIVE);
        trailer.write_u16(self.chunk_size);
        trailer.write_u16(self.segment_chunks);
        trailer.write_u32(self.created);
        trailer.write_all(&self.signature);
        DbConnected {
            size: 0,
            mime_type: self.mime_type.clone(),
            public_key: self.seeder_key.as_bytes().to_vec(),
            trailer,
        }
    }

    /// The stream's ring of wire chunk numbers.
    pub fn ring(&self) -> ChunkRing {
        ChunkRing::new(u32::from(self.segment_chunks.max(1)) * RING_SEGMENTS)
    }
}

/// Check a live manifest: sizes in range, name derived from key and creation time,
/// signature the seeder's.
pub fn verify_live_manifest(hash_name: &[u8], m: &LiveManifest) -> Result<(), VerifyError> {
    if m.chunk_size == 0 || m.chunk_size > CHUNK_SIZE {
        return Err(VerifyError::BadManifest("chunk size not in 1..=486"));
    }
    if m.segment_chunks == 0 || m.segment_chunks > MAX_SEGMENT_CHUNKS {
        return Err(VerifyError::BadManifest("segment chunks not in 1..=225"));
    }
    if m.mime_type.len() > 255 {
        return Err(VerifyError::BadManifest("MIME type longer than 255 bytes"));
    }
    if hash_name != m.hash_name() {
        return Err(VerifyError::HashNameMismatch);
    }
    m.seeder_key
        .verify(&m.signed_message(), &m.signature)
        .map_err(|_| VerifyError::BadSignature)
}

/// The prefix of a segment tree's top node: `0x03 | segment u32 | n_chunks u16`.
pub(crate) fn segment_root_prefix(segment: u32, n_chunks: u16) -> [u8; 7] {
    let mut p = [0u8; 7];
    p[0] = SEGMENT_ROOT_TAG;
    p[1..5].copy_from_slice(&segment.to_be_bytes());
    p[5..].copy_from_slice(&n_chunks.to_be_bytes());
    p
}

/// What the seeder signs for a segment: `SEGMENT_SIGN_TAG | hash_name [20] | segment u32 |
/// timestamp u32 | n_chunks u16 | root [32]`. The name keeps a segment from being replayed
/// into another stream.
pub fn segment_signed_message(hash_name: &Name20, h: &DbSegment) -> Vec<u8> {
    let mut m = Vec::with_capacity(SEGMENT_SIGN_TAG.len() + 62);
    m.write_all(SEGMENT_SIGN_TAG);
    m.write_all(hash_name);
    m.write_u32(h.segment);
    m.write_u32(h.timestamp);
    m.write_u16(h.n_chunks);
    m.write_all(&h.root);
    m
}

/// Check one segment header on its own: chunk count in range, timestamp within
/// `[now - max_age, now + max_skew]`, signature the seeder's. (Ordering against other
/// segments is the verifier's job.)
pub fn verify_segment(
    m: &LiveManifest,
    h: &DbSegment,
    now_secs: u32,
    max_age_secs: u32,
    max_skew_secs: u32,
) -> Result<(), VerifyError> {
    if h.n_chunks == 0 || h.n_chunks > m.segment_chunks {
        return Err(VerifyError::BadSegment { segment: h.segment });
    }
    if h.timestamp < now_secs.saturating_sub(max_age_secs) {
        return Err(VerifyError::StaleTimestamp {
            timestamp: h.timestamp,
        });
    }
    if h.timestamp > now_secs.saturating_add(max_skew_secs) {
        return Err(VerifyError::FutureTimestamp {
            timestamp: h.timestamp,
        });
    }
    m.seeder_key
        .verify(&segment_signed_message(&m.hash_name(), h), &h.signature)
        .map_err(|_| VerifyError::BadSignature)
}

/// The seed's sliding window: live chunk numbers on the wire run `1..=size` and wrap, so
/// they never run out; the absolute position is recovered from a nearby known one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRing {
    size: u32,
}

impl ChunkRing {
    /// A ring of `size` chunk numbers (at least 1).
    pub fn new(size: u32) -> ChunkRing {
        ChunkRing { size: size.max(1) }
    }

    /// Number of slots.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The wire number (1-based; 0 means "ORDB's choice" in DB_QUERY) of absolute chunk
    /// `abs`.
    pub fn to_wire(&self, abs: u64) -> u32 {
        (abs % u64::from(self.size)) as u32 + 1
    }

    /// The absolute chunk with wire number `wire` nearest to `reference`; `None` for a
    /// number outside the ring.
    pub fn to_absolute(&self, wire: u32, reference: u64) -> Option<u64> {
        if wire == 0 || wire > self.size {
            return None;
        }
        let size = u64::from(self.size);
        let slot = u64::from(wire - 1);
        let base = reference - reference % size;
        // Near the top of u64 the slot in the reference's lap may not exist: use the lap
        // before.
        let cand = match base.checked_add(slot) {
            Some(c) => c,
            None => base.checked_sub(size)? + slot,
        };
        // The candidates one ring before and after, nearest wins (ties go forward).
        let mut best = cand;
        let dist = |a: u64| a.abs_diff(reference);
        if let Some(prev) = cand.checked_sub(size)
            && dist(prev) < dist(best)
        {
            best = prev;
        }
        if let Some(next) = cand.checked_add(size)
            && dist(next) < dist(best)
        {
            best = next;
        }
        Some(best)
    }
}
