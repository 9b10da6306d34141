//! A chunk store on disk: the core's [`ChunkStore`] with file chunks kept in files under a
//! directory (one file per content, chunk `i` at offset `i × 486`), bounded by a byte
//! budget, so a node serves more than it could hold in memory.
//!
//! Manifests, DB_HASHES and live streams (small, or short-lived) stay in an in-memory
//! [`MemoryStore`]. Past the budget, whole unpinned contents are evicted least recently
//! used first; pinned content (the node's own seeds) never is. The files are scratch
//! space: a new store starts empty (the directory's old chunk files are removed).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use onionpeer_core::cells::relay::{DbHashes, DbSegment, MAX_CHUNK_DATA_LEN};
use onionpeer_core::ordb::store::ChunkBuf;
use onionpeer_core::ordb::{ChunkStore, Manifest, MemoryStore, Name20, StoreError};

/// Room for manifests and proofs (a DB_HASHES covers 15 chunks, about 500 bytes).
const META_BUDGET: usize = 64 << 20;

struct OnDisk {
    file: File,
    held: BTreeMap<u64, u16>,
    bytes: usize,
    pinned: bool,
    last_used: u64,
}

/// A [`ChunkStore`] keeping file chunks on disk under a directory.
pub struct DiskStore {
    dir: PathBuf,
    budget: usize,
    used: usize,
    clock: u64,
    meta: MemoryStore,
    files: BTreeMap<Name20, OnDisk>,
}

fn hex(name: &Name20) -> String {
    name.iter().map(|b| format!("{b:02x}")).collect()
}

impl DiskStore {
    /// A store under `dir` (created if missing) holding at most about `budget` bytes of
    /// chunks.
    pub fn new(dir: impl Into<PathBuf>, budget: usize) -> std::io::Result<DiskStore> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        for e in std::fs::read_dir(&dir)?.flatten() {
            if e.path().extension().is_some_and(|x| x == "chunks") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(DiskStore {
            dir,
            budget,
            used: 0,
            clock: 0,
            meta: MemoryStore::new(META_BUDGET),
            files: BTreeMap::new(),
        })
    }

    fn is_file(&self, name: &Name20) -> bool {
        matches!(self.meta.manifest(name), Some(Manifest::File(_)))
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Evict unpinned contents (least recently used first, never `keep`) until `need`
    /// more bytes fit.
    fn make_room(&mut self, need: usize, keep: &Name20) -> Result<(), StoreError> {
        while self.used + need > self.budget {
            let victim = self
                .files
                .iter()
                .filter(|(n, f)| !f.pinned && *n != keep)
                .min_by_key(|(_, f)| f.last_used)
                .map(|(n, _)| *n);
            match victim {
                Some(v) => self.remove(&v),
                None => return Err(StoreError::Full),
            }
        }
        Ok(())
    }
}

impl ChunkStore for DiskStore {
    fn put_manifest(
        &mut self,
        name: &Name20,
        manifest: Manifest,
        pinned: bool,
    ) -> Result<(), StoreError> {
        let file = matches!(manifest, Manifest::File(_));
        self.meta.put_manifest(name, manifest, pinned)?;
        if file && !self.files.contains_key(name) {
            let path = self.dir.join(format!("{}.chunks", hex(name)));
            let f = OpenOptions::new()
                .create(true)
                .read(true)
                .write(true)
                .truncate(true)
                .open(path)
                .map_err(|_| StoreError::Full)?;
            let last_used = self.tick();
            self.files.insert(
                *name,
                OnDisk {
                    file: f,
                    held: BTreeMap::new(),
                    bytes: 0,
                    pinned,
                    last_used,
                },
            );
        } else if let Some(f) = self.files.get_mut(name) {
            f.pinned |= pinned;
        }
        Ok(())
    }

    fn manifest(&self, name: &Name20) -> Option<Manifest> {
        self.meta.manifest(name)
    }

    fn put_chunk(&mut self, name: &Name20, index: u64, data: &[u8]) -> Result<(), StoreError> {
        if !self.is_file(name) {
            return self.meta.put_chunk(name, index, data);
        }
        if data.len() > MAX_CHUNK_DATA_LEN {
            return Err(StoreError::OutOfRange);
        }
        if self
            .files
            .get(name)
            .is_some_and(|f| f.held.contains_key(&index))
        {
            return Ok(());
        }
        self.make_room(data.len(), name)?;
        let t = self.tick();
        let f = self.files.get_mut(name).ok_or(StoreError::UnknownName)?;
        let at = index
            .checked_mul(MAX_CHUNK_DATA_LEN as u64)
            .ok_or(StoreError::OutOfRange)?;
        f.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| f.file.write_all(data))
            .map_err(|_| StoreError::Full)?;
        f.held.insert(index, data.len() as u16);
        f.bytes += data.len();
        f.last_used = t;
        self.used += data.len();
        Ok(())
    }

    fn chunk(&mut self, name: &Name20, index: u64) -> Option<ChunkBuf> {
        if !self.is_file(name) {
            return self.meta.chunk(name, index);
        }
        let t = self.tick();
        let f = self.files.get_mut(name)?;
        let len = usize::from(*f.held.get(&index)?);
        let mut buf = [0u8; MAX_CHUNK_DATA_LEN];
        let dst = buf.get_mut(..len)?;
        f.file
            .seek(SeekFrom::Start(index * MAX_CHUNK_DATA_LEN as u64))
            .ok()?;
        f.file.read_exact(dst).ok()?;
        f.last_used = t;
        ChunkBuf::from_slice(dst).ok()
    }

    fn has(&self, name: &Name20, index: u64) -> bool {
        match self.files.get(name) {
            Some(f) => f.held.contains_key(&index),
            None => self.meta.has(name, index),
        }
    }

    fn has_range(&self, name: &Name20, first: u64, count: u64) -> bool {
        match self.files.get(name) {
            Some(f) => {
                let end = first.saturating_add(count);
                f.held.range(first..end).count() as u64 == count
            }
            None => self.meta.has_range(name, first, count),
        }
    }

    fn put_hashes(&mut self, name: &Name20, msg: &DbHashes) -> Result<(), StoreError> {
        self.meta.put_hashes(name, msg)
    }

    fn hashes(&self, name: &Name20, tree: u32, level: u8, node: u32) -> Option<DbHashes> {
        self.meta.hashes(name, tree, level, node)
    }

    fn put_segment(&mut self, name: &Name20, header: &DbSegment) -> Result<(), StoreError> {
        self.meta.put_segment(name, header)
    }

    fn segment(&self, name: &Name20, segment: u32) -> Option<DbSegment> {
        self.meta.segment(name, segment)
    }

    fn segment_range(&self, name: &Name20) -> Option<(u32, u32)> {
        self.meta.segment_range(name)
    }

    fn remove(&mut self, name: &Name20) {
        self.meta.remove(name);
        if let Some(f) = self.files.remove(name) {
            self.used -= f.bytes;
            drop(f.file);
            let _ = std::fs::remove_file(self.dir.join(format!("{}.chunks", hex(name))));
        }
    }

    fn names(&self) -> Vec<Name20> {
        let mut names: BTreeSet<Name20> = self.meta.names().into_iter().collect();
        names.extend(self.files.keys().copied());
        names.into_iter().collect()
    }

    fn chunk_count(&self, name: &Name20) -> u64 {
        match self.files.get(name) {
            Some(f) => f.held.len() as u64,
            None => self.meta.chunk_count(name),
        }
    }

    fn bytes_used(&self) -> usize {
        self.used + self.meta.bytes_used()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_unpinned_content_is_evicted() {
        let dir = std::env::temp_dir().join(format!("onionpeer-store-{}", std::process::id()));
        let mut s = DiskStore::new(&dir, 3 * 486).unwrap();
        let data: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
        let key = |b| onionpeer_core::crypto::identity::Ed25519Keypair::from_secret(&[b; 32]);
        let seeder =
            onionpeer_core::ordb::FileSeeder::new(&key(1), "application/octet-stream", 0, data)
                .unwrap();
        let name = seeder.hash_name();
        s.put_manifest(&name, Manifest::File(seeder.manifest().clone()), false)
            .unwrap();
        for i in 0..3 {
            s.put_chunk(&name, i, seeder.chunk(i).unwrap()).unwrap();
        }
        assert!(s.has_range(&name, 0, 3));
        assert_eq!(&s.chunk(&name, 1).unwrap()[..], seeder.chunk(1).unwrap());
        // A second content past the budget evicts the first (unpinned).
        let other =
            onionpeer_core::ordb::FileSeeder::new(&key(2), "text/plain", 0, vec![9; 600]).unwrap();
        let n2 = other.hash_name();
        s.put_manifest(&n2, Manifest::File(other.manifest().clone()), true)
            .unwrap();
        s.put_chunk(&n2, 0, other.chunk(0).unwrap()).unwrap();
        assert!(s.manifest(&name).is_none());
        assert_eq!(s.chunk(&n2, 0).unwrap().len(), 486);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
