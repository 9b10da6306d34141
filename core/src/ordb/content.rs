//! File manifests: what DB_CONNECTED says about a file, how its hash_name is derived from
//! the seeder's key and the content root, and how both are checked.

use alloc::string::String;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

use super::live::LiveManifest;
use super::tree::TreeShape;
use super::{CHUNK_SIZE, Name20, VerifyError};
use crate::cells::relay::DbConnected;
use crate::codec::{Reader, Writer};
use crate::crypto::identity::Ed25519Identity;

/// Domain tag of a file's hash_name derivation.
pub const FILE_NAME_TAG: &[u8] = b"onionpeer ordb file name v1\0";
/// Domain tag of a file manifest's signed message.
pub const FILE_SIGN_TAG: &[u8] = b"onionpeer ordb file manifest v1\0";
/// First trailer byte of a file's DB_CONNECTED.
pub const TRAILER_KIND_FILE: u8 = 1;
/// First trailer byte of a live stream's DB_CONNECTED.
pub const TRAILER_KIND_LIVE: u8 = 2;
/// Domain byte of a file tree's root.
pub(crate) const FILE_ROOT_TAG: u8 = 0x02;

/// Length of a file trailer: kind, chunk size, published, root, signature.
const FILE_TRAILER_LEN: usize = 1 + 2 + 4 + 32 + 64;

/// `SHA-256(FILE_NAME_TAG | seeder key | root)[..20]`: the file's hash_name, a 160-bit DHT
/// key that certifies itself — whoever knows the name can check a manifest's key and root
/// against it without trusting who served it.
pub fn file_hash_name(seeder_key: &Ed25519Identity, root: &[u8; 32]) -> Name20 {
    let mut h = Sha256::new();
    h.update(FILE_NAME_TAG);
    h.update(seeder_key.as_bytes());
    h.update(root);
    let d: [u8; 32] = h.finalize().into();
    let mut out = [0u8; 20];
    out.copy_from_slice(&d[..20]);
    out
}

/// Chunks of a `size`-byte file cut in `chunk_size` pieces: at least one (an empty file has
/// one empty chunk, so every file has a tree and a root).
pub(crate) fn chunk_count(size: u64, chunk_size: u16) -> u64 {
    size.div_ceil(u64::from(chunk_size.max(1))).max(1)
}

/// The prefix of a file tree's top node: `0x02 | size u64 | chunk_size u16`. Binding the
/// size binds the chunk count and the last chunk's length, so truncation is detected.
pub(crate) fn file_root_prefix(size: u64, chunk_size: u16) -> [u8; 11] {
    let mut p = [0u8; 11];
    p[0] = FILE_ROOT_TAG;
    p[1..9].copy_from_slice(&size.to_be_bytes());
    p[9..].copy_from_slice(&chunk_size.to_be_bytes());
    p
}

/// What a downloader learns about a file before its first chunk, all signed by the seeder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileManifest {
    /// Size in bytes.
    pub size: u64,
    /// MIME type (≤ 255 bytes of UTF-8).
    pub mime_type: String,
    /// Bytes per chunk (1..=486; the last chunk holds the rest).
    pub chunk_size: u16,
    /// The seeder's publish time, seconds since the Unix epoch; every DB_DATA tag of the
    /// file carries it.
    pub published: u32,
    /// Root of the content tree.
    pub root: [u8; 32],
    /// The seeder's ed25519 public key.
    pub seeder_key: Ed25519Identity,
    /// Ed25519 signature over [`FileManifest::signed_message`].
    pub signature: [u8; 64],
}

impl FileManifest {
    /// Number of chunks (≥ 1).
    pub fn n_chunks(&self) -> u64 {
        chunk_count(self.size, self.chunk_size)
    }

    /// The tree shape, if the chunk count is representable.
    pub fn shape(&self) -> Option<TreeShape> {
        TreeShape::new(self.n_chunks())
    }

    /// Expected length of chunk `index` (the last one holds the remainder).
    pub fn chunk_len(&self, index: u64) -> usize {
        let c = u64::from(self.chunk_size);
        let start = index.saturating_mul(c);
        self.size.saturating_sub(start).min(c) as usize
    }

    /// This file's hash_name.
    pub fn hash_name(&self) -> Name20 {
        file_hash_name(&self.seeder_key, &self.root)
    }

    /// The bytes the seeder signs: `FILE_SIGN_TAG | hash_name [20] | size u64 |
    /// chunk_size u16 | published u32 | mime_len u8 | mime | root [32]`.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(FILE_SIGN_TAG.len() + 67 + self.mime_type.len());
        m.write_all(FILE_SIGN_TAG);
        m.write_all(&self.hash_name());
        m.write_u64(self.size);
        m.write_u16(self.chunk_size);
        m.write_u32(self.published);
        let mime = self.mime_type.as_bytes();
        m.write_u8(mime.len().min(255) as u8);
        m.write_all(mime.get(..255).unwrap_or(mime));
        m.write_all(&self.root);
        m
    }

    /// The DB_CONNECTED answer: size, MIME type, 32-byte key, then the trailer
    /// `kind u8 (1) | chunk_size u16 | published u32 | root [32] | signature [64]`.
    pub fn to_db_connected(&self) -> DbConnected {
        let mut trailer = Vec::with_capacity(FILE_TRAILER_LEN);
        trailer.write_u8(TRAILER_KIND_FILE);
        trailer.write_u16(self.chunk_size);
        trailer.write_u32(self.published);
        trailer.write_all(&self.root);
        trailer.write_all(&self.signature);
        DbConnected {
            size: self.size,
            mime_type: self.mime_type.clone(),
            public_key: self.seeder_key.as_bytes().to_vec(),
            trailer,
        }
    }
}

/// `verify_manifest(hash_name, m)`: the name is the one derived from `m`'s key and root,
/// the chunk size is valid, the file is not larger than DB_DATA can number, and the
/// signature is the seeder's. Needs nothing but the name the downloader asked for.
pub fn verify_manifest(hash_name: &[u8], m: &FileManifest) -> Result<(), VerifyError> {
    if m.chunk_size == 0 || m.chunk_size > CHUNK_SIZE {
        return Err(VerifyError::BadManifest("chunk size not in 1..=486"));
    }
    if m.mime_type.len() > 255 {
        return Err(VerifyError::BadManifest("MIME type longer than 255 bytes"));
    }
    if m.shape().is_none() {
        return Err(VerifyError::TooLarge);
    }
    if hash_name != m.hash_name() {
        return Err(VerifyError::HashNameMismatch);
    }
    m.seeder_key
        .verify(&m.signed_message(), &m.signature)
        .map_err(|_| VerifyError::BadSignature)
}

/// A DB_CONNECTED decoded as a file or a live-stream manifest (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// A file (trailer kind 1).
    File(FileManifest),
    /// A live stream (trailer kind 2).
    Live(LiveManifest),
}

impl Manifest {
    /// Read the manifest out of a DB_CONNECTED. Fails (`BadManifest`) when the key is not
    /// 32 bytes or the trailer is not one of ours; the signature is not checked here.
    pub fn from_db_connected(c: &DbConnected) -> Result<Manifest, VerifyError> {
        let key: [u8; 32] = c
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| VerifyError::BadManifest("public key is not 32 bytes of ed25519"))?;
        let seeder_key = Ed25519Identity(key);
        let bad = |_| VerifyError::BadManifest("truncated trailer");
        let mut r = Reader::new(&c.trailer);
        let m = match r.take_u8().map_err(bad)? {
            TRAILER_KIND_FILE => {
                let chunk_size = r.take_u16().map_err(bad)?;
                let published = r.take_u32().map_err(bad)?;
                let root = r.take_array().map_err(bad)?;
                let signature = r.take_array().map_err(bad)?;
                Manifest::File(FileManifest {
                    size: c.size,
                    mime_type: c.mime_type.clone(),
                    chunk_size,
                    published,
                    root,
                    seeder_key,
                    signature,
                })
            }
            TRAILER_KIND_LIVE => {
                if c.size != 0 {
                    return Err(VerifyError::BadManifest("a live stream has size 0"));
                }
                let chunk_size = r.take_u16().map_err(bad)?;
                let segment_chunks = r.take_u16().map_err(bad)?;
                let created = r.take_u32().map_err(bad)?;
                let signature = r.take_array().map_err(bad)?;
                Manifest::Live(LiveManifest {
                    mime_type: c.mime_type.clone(),
                    chunk_size,
                    segment_chunks,
                    created,
                    seeder_key,
                    signature,
                })
            }
            _ => return Err(VerifyError::BadManifest("unknown trailer kind")),
        };
        r.should_be_exhausted()
            .map_err(|_| VerifyError::BadManifest("bytes after the trailer"))?;
        Ok(m)
    }

    /// The DB_CONNECTED carrying this manifest.
    pub fn to_db_connected(&self) -> DbConnected {
        match self {
            Manifest::File(m) => m.to_db_connected(),
            Manifest::Live(m) => m.to_db_connected(),
        }
    }

    /// Check the manifest against the name the downloader asked for.
    pub fn verify(&self, hash_name: &[u8]) -> Result<(), VerifyError> {
        match self {
            Manifest::File(m) => verify_manifest(hash_name, m),
            Manifest::Live(m) => super::live::verify_live_manifest(hash_name, m),
        }
    }
}

/// The DB_DATA / DB_QUERY chunk number of file chunk `index` (0-based): chunk numbers on
/// the wire start at 1, as in the seed (number 0 means "the ORDB's choice" on streams).
pub fn wire_chunk_nb(index: u64) -> Option<u32> {
    u32::try_from(index.checked_add(1)?).ok()
}

/// The 0-based file chunk index of wire chunk number `nb` (`None` for 0).
pub fn index_from_wire(nb: u32) -> Option<u64> {
    u64::from(nb).checked_sub(1)
}
