//! Bounded chunk storage: what a node holds of files and live streams, kept so it can
//! serve them ("a node becomes a seeder for what it has").
//!
//! A store keeps, per hash_name, the signed manifest (DB_CONNECTED), the chunks it has,
//! the DB_HASHES cells that prove them and, for live streams, the signed DB_SEGMENT
//! headers. That is everything an ORDB needs to answer a DB_QUERY with proofs a
//! downloader checks against the name (PROTOCOL.md section 6), whether the node seeded
//! the content or downloaded (and verified) it.
//!
//! Stores are bounded by a byte budget: putting past it evicts, in order, the oldest
//! segments of live streams, then whole unpinned contents least recently used; pinned
//! content (what the node seeds itself) is never evicted and a put that cannot fit fails
//! with [`StoreError::Full`]. A live stream keeps at most [`RING_SEGMENTS`] segments (the
//! seed: "peers remove chunks older than 4 times the window size").

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use super::live::RING_SEGMENTS;
use super::{FileSeeder, Manifest, Name20, SignedSegment};
use crate::cells::relay::{DbHashes, DbSegment, MAX_CHUNK_DATA_LEN};

/// One chunk's bytes, without allocating.
pub type ChunkBuf = heapless::Vec<u8, MAX_CHUNK_DATA_LEN>;

/// Bytes accounted per stored item beyond its payload (map entry, allocation).
pub(super) const ITEM_OVERHEAD: usize = 48;
/// Bytes accounted for a manifest.
pub(super) const MANIFEST_COST: usize = 512;
/// Bytes accounted for one DB_HASHES.
pub(super) const HASHES_COST: usize = 15 * 32 + 16;
/// Bytes accounted for one DB_SEGMENT header.
const SEGMENT_COST: usize = 106 + ITEM_OVERHEAD;

/// Why a store refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The byte budget is reached by pinned content.
    Full,
    /// No manifest for this name: put the manifest first.
    UnknownName,
    /// A chunk index or hash node outside the content, or a chunk longer than allowed.
    OutOfRange,
    /// A different manifest is already held under this name.
    Conflict,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl core::error::Error for StoreError {}

/// Where a node keeps chunks, manifests and proofs, within a byte budget. Callers store
/// only what they verified (or produced); a store does not check proofs.
pub trait ChunkStore {
    /// Hold content `name` described by `manifest`. `pinned` content is never evicted
    /// (the node's own seeds). Putting the same manifest again is a no-op (it may pin).
    fn put_manifest(
        &mut self,
        name: &Name20,
        manifest: Manifest,
        pinned: bool,
    ) -> Result<(), StoreError>;
    /// The manifest of `name`, if held.
    fn manifest(&self, name: &Name20) -> Option<Manifest>;
    /// Store chunk `index` (0-based; absolute for live streams).
    fn put_chunk(&mut self, name: &Name20, index: u64, data: &[u8]) -> Result<(), StoreError>;
    /// Chunk `index` of `name`, if held.
    fn chunk(&mut self, name: &Name20, index: u64) -> Option<ChunkBuf>;
    /// Whether chunk `index` of `name` is held.
    fn has(&self, name: &Name20, index: u64) -> bool;
    /// Whether chunks `first..first+count` of `name` are all held.
    fn has_range(&self, name: &Name20, first: u64, count: u64) -> bool;
    /// Store a DB_HASHES (tree 0 for files, the segment number for live streams).
    fn put_hashes(&mut self, name: &Name20, msg: &DbHashes) -> Result<(), StoreError>;
    /// The DB_HASHES for node (`level`, `node`) of tree `tree`, if held.
    fn hashes(&self, name: &Name20, tree: u32, level: u8, node: u32) -> Option<DbHashes>;
    /// Store a live stream's signed segment header (older segments beyond the ring are
    /// dropped).
    fn put_segment(&mut self, name: &Name20, header: &DbSegment) -> Result<(), StoreError>;
    /// A live segment's header, if held.
    fn segment(&self, name: &Name20, segment: u32) -> Option<DbSegment>;
    /// The newest and oldest held segment numbers of a live stream.
    fn segment_range(&self, name: &Name20) -> Option<(u32, u32)>;
    /// Forget `name` entirely.
    fn remove(&mut self, name: &Name20);
    /// The names held.
    fn names(&self) -> Vec<Name20>;
    /// Chunks held for `name`.
    fn chunk_count(&self, name: &Name20) -> u64;
    /// Bytes accounted against the budget.
    fn bytes_used(&self) -> usize;
}

/// Put a whole file produced by a [`FileSeeder`] into `store`: its manifest (pinned when
/// `pinned`), every chunk and every DB_HASHES of its tree.
pub fn store_file(
    store: &mut dyn ChunkStore,
    seeder: &FileSeeder,
    pinned: bool,
) -> Result<Name20, StoreError> {
    let name = seeder.hash_name();
    store.put_manifest(&name, Manifest::File(seeder.manifest().clone()), pinned)?;
    let shape = seeder.shape();
    for level in 1..=shape.depth() {
        for node in 0..shape.level_len(level) {
            let node = u32::try_from(node).map_err(|_| StoreError::OutOfRange)?;
            if let Some(h) = seeder.hashes(level, node) {
                store.put_hashes(&name, &h)?;
            }
        }
    }
    for i in 0..seeder.n_chunks() {
        store.put_chunk(&name, i, seeder.chunk(i).unwrap_or(&[]))?;
    }
    Ok(name)
}

/// Put one signed live segment into `store` (the manifest must be held): header, hashes,
/// chunks at absolute indexes `segment × segment_chunks + i`.
pub fn store_segment(
    store: &mut dyn ChunkStore,
    name: &Name20,
    seg: &SignedSegment,
) -> Result<(), StoreError> {
    let Some(Manifest::Live(m)) = store.manifest(name) else {
        return Err(StoreError::UnknownName);
    };
    store.put_segment(name, &seg.header)?;
    for h in &seg.hashes {
        store.put_hashes(name, h)?;
    }
    let base = u64::from(seg.header.segment) * u64::from(m.segment_chunks);
    for (i, d) in seg.data.iter().enumerate() {
        store.put_chunk(name, base + i as u64, &d.data)?;
    }
    Ok(())
}

struct Content {
    manifest: Manifest,
    pinned: bool,
    last_use: u64,
    chunks: BTreeMap<u64, Box<[u8]>>,
    hashes: BTreeMap<(u32, u8, u32), DbHashes>,
    segments: BTreeMap<u32, DbSegment>,
    bytes: usize,
}

impl Content {
    fn segment_chunks(&self) -> u64 {
        match &self.manifest {
            Manifest::Live(m) => u64::from(m.segment_chunks.max(1)),
            Manifest::File(_) => 0,
        }
    }

    /// Drop the oldest live segment (header, hashes, chunks); the bytes freed.
    fn drop_oldest_segment(&mut self) -> usize {
        let Some((seg, _)) = self.segments.pop_first() else {
            return 0;
        };
        let mut freed = SEGMENT_COST;
        let per = self.segment_chunks();
        let first = u64::from(seg) * per;
        let idx: Vec<u64> = self
            .chunks
            .range(first..first.saturating_add(per))
            .map(|(k, _)| *k)
            .collect();
        for i in idx {
            if let Some(c) = self.chunks.remove(&i) {
                freed += c.len() + ITEM_OVERHEAD;
            }
        }
        let keys: Vec<(u32, u8, u32)> = self
            .hashes
            .range((seg, 0, 0)..=(seg, u8::MAX, u32::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.hashes.remove(&k);
            freed += HASHES_COST;
        }
        self.bytes = self.bytes.saturating_sub(freed);
        freed
    }
}

/// A [`ChunkStore`] in memory, bounded by a byte budget.
pub struct MemoryStore {
    budget: usize,
    used: usize,
    clock: u64,
    items: BTreeMap<Name20, Content>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("budget", &self.budget)
            .field("used", &self.used)
            .field("names", &self.items.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store that holds at most about `budget` bytes.
    pub fn new(budget: usize) -> MemoryStore {
        MemoryStore {
            budget,
            used: 0,
            clock: 0,
            items: BTreeMap::new(),
        }
    }

    /// The byte budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    fn touch(&mut self, name: &Name20) {
        self.clock += 1;
        let t = self.clock;
        if let Some(c) = self.items.get_mut(name) {
            c.last_use = t;
        }
    }

    /// Make room for `need` more bytes, never evicting `keep`'s chunks beyond its live
    /// ring. Live segments go first, then unpinned contents by age.
    fn make_room(&mut self, need: usize, keep: &Name20) -> Result<(), StoreError> {
        while self.used.saturating_add(need) > self.budget {
            // The oldest segment of the live stream holding the most segments.
            let live = self
                .items
                .iter()
                .filter(|(_, c)| c.segments.len() > 1)
                .max_by_key(|(_, c)| c.segments.len())
                .map(|(n, _)| *n);
            if let Some(n) = live
                && let Some(c) = self.items.get_mut(&n)
            {
                let freed = c.drop_oldest_segment();
                self.used = self.used.saturating_sub(freed);
                continue;
            }
            let victim = self
                .items
                .iter()
                .filter(|(n, c)| !c.pinned && *n != keep)
                .min_by_key(|(_, c)| c.last_use)
                .map(|(n, _)| *n);
            match victim {
                Some(n) => self.remove(&n),
                None => return Err(StoreError::Full),
            }
        }
        Ok(())
    }

    fn charge(&mut self, name: &Name20, cost: usize) -> Result<(), StoreError> {
        self.make_room(cost, name)?;
        let c = self.items.get_mut(name).ok_or(StoreError::UnknownName)?;
        c.bytes += cost;
        self.used += cost;
        Ok(())
    }
}

impl ChunkStore for MemoryStore {
    fn put_manifest(
        &mut self,
        name: &Name20,
        manifest: Manifest,
        pinned: bool,
    ) -> Result<(), StoreError> {
        if let Some(c) = self.items.get_mut(name) {
            if c.manifest != manifest {
                return Err(StoreError::Conflict);
            }
            c.pinned |= pinned;
            self.touch(name);
            return Ok(());
        }
        self.make_room(MANIFEST_COST, name)?;
        self.items.insert(
            *name,
            Content {
                manifest,
                pinned,
                last_use: 0,
                chunks: BTreeMap::new(),
                hashes: BTreeMap::new(),
                segments: BTreeMap::new(),
                bytes: MANIFEST_COST,
            },
        );
        self.used += MANIFEST_COST;
        self.touch(name);
        Ok(())
    }

    fn manifest(&self, name: &Name20) -> Option<Manifest> {
        self.items.get(name).map(|c| c.manifest.clone())
    }

    fn put_chunk(&mut self, name: &Name20, index: u64, data: &[u8]) -> Result<(), StoreError> {
        let c = self.items.get(name).ok_or(StoreError::UnknownName)?;
        let ok = match &c.manifest {
            Manifest::File(m) => index < m.n_chunks() && data.len() == m.chunk_len(index),
            // Only chunks of a held segment: the ring drops them with their segment.
            Manifest::Live(m) => {
                data.len() <= usize::from(m.chunk_size)
                    && u32::try_from(index / u64::from(m.segment_chunks.max(1)))
                        .is_ok_and(|seg| c.segments.contains_key(&seg))
            }
        };
        if !ok {
            return Err(StoreError::OutOfRange);
        }
        if c.chunks.contains_key(&index) {
            return Ok(());
        }
        self.charge(name, data.len() + ITEM_OVERHEAD)?;
        if let Some(c) = self.items.get_mut(name) {
            c.chunks.insert(index, data.into());
        }
        Ok(())
    }

    fn chunk(&mut self, name: &Name20, index: u64) -> Option<ChunkBuf> {
        let out = self
            .items
            .get(name)?
            .chunks
            .get(&index)
            .and_then(|c| ChunkBuf::from_slice(c).ok());
        if out.is_some() {
            self.touch(name);
        }
        out
    }

    fn has(&self, name: &Name20, index: u64) -> bool {
        self.items
            .get(name)
            .is_some_and(|c| c.chunks.contains_key(&index))
    }

    fn has_range(&self, name: &Name20, first: u64, count: u64) -> bool {
        let Some(c) = self.items.get(name) else {
            return false;
        };
        let Some(end) = first.checked_add(count) else {
            return false;
        };
        c.chunks.range(first..end).count() as u64 == count
    }

    fn put_hashes(&mut self, name: &Name20, msg: &DbHashes) -> Result<(), StoreError> {
        let c = self.items.get(name).ok_or(StoreError::UnknownName)?;
        if msg.level == 0 || msg.hashes.is_empty() {
            return Err(StoreError::OutOfRange);
        }
        let key = (msg.tree, msg.level, msg.node);
        if c.hashes.contains_key(&key) {
            return Ok(());
        }
        self.charge(name, HASHES_COST)?;
        if let Some(c) = self.items.get_mut(name) {
            c.hashes.insert(key, msg.clone());
        }
        Ok(())
    }

    fn hashes(&self, name: &Name20, tree: u32, level: u8, node: u32) -> Option<DbHashes> {
        self.items
            .get(name)?
            .hashes
            .get(&(tree, level, node))
            .cloned()
    }

    fn put_segment(&mut self, name: &Name20, header: &DbSegment) -> Result<(), StoreError> {
        let c = self.items.get(name).ok_or(StoreError::UnknownName)?;
        if !matches!(c.manifest, Manifest::Live(_)) {
            return Err(StoreError::OutOfRange);
        }
        if c.segments.contains_key(&header.segment) {
            return Ok(());
        }
        self.charge(name, SEGMENT_COST)?;
        let mut freed = 0;
        if let Some(c) = self.items.get_mut(name) {
            c.segments.insert(header.segment, header.clone());
            // Keep the ring: 4 windows of segments.
            while c.segments.len() > RING_SEGMENTS as usize {
                freed += c.drop_oldest_segment();
            }
        }
        self.used = self.used.saturating_sub(freed);
        Ok(())
    }

    fn segment(&self, name: &Name20, segment: u32) -> Option<DbSegment> {
        self.items.get(name)?.segments.get(&segment).cloned()
    }

    fn segment_range(&self, name: &Name20) -> Option<(u32, u32)> {
        let s = &self.items.get(name)?.segments;
        Some((*s.last_key_value()?.0, *s.first_key_value()?.0))
    }

    fn remove(&mut self, name: &Name20) {
        if let Some(c) = self.items.remove(name) {
            self.used = self.used.saturating_sub(c.bytes);
        }
    }

    fn names(&self) -> Vec<Name20> {
        self.items.keys().copied().collect()
    }

    fn chunk_count(&self, name: &Name20) -> u64 {
        self.items.get(name).map_or(0, |c| c.chunks.len() as u64)
    }

    fn bytes_used(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cells::relay::RelayMsg;
    use crate::crypto::identity::Ed25519Keypair;
    use crate::ordb::{
        Accepted, FileVerifier, LiveSeeder, LiveVerifier, Released, ServeCursor, ServeStep,
        VerifyLimits,
    };

    fn file(len: usize, seed: u8) -> FileSeeder {
        let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ seed).collect();
        FileSeeder::new(&Ed25519Keypair::from_secret(&[seed; 32]), "x/y", 1, data).unwrap()
    }

    /// Drain a cursor with an always-open window.
    fn serve_all(store: &mut dyn ChunkStore, c: &mut ServeCursor) -> (Vec<RelayMsg>, ServeStep) {
        let mut out = Vec::new();
        loop {
            match c.next_msg(store, 1) {
                ServeStep::Send { msg, .. } => out.push(msg),
                end => return (out, end),
            }
        }
    }

    #[test]
    fn a_stored_file_serves_cells_a_downloader_verifies() {
        let f = file(20_000, 3);
        let mut s = MemoryStore::new(1 << 20);
        let name = store_file(&mut s, &f, true).unwrap();
        let mut v =
            FileVerifier::new(&name, f.manifest().clone(), VerifyLimits::default()).unwrap();
        // Two ranges on one stream: the second sends no hash twice.
        let mut c = ServeCursor::new(name, 0, 20);
        let (a, end) = serve_all(&mut s, &mut c);
        assert_eq!(end, ServeStep::Done);
        c.restart(20, 100);
        let (b, end) = serve_all(&mut s, &mut c);
        assert_eq!(end, ServeStep::Done);
        let mut got = Vec::new();
        let mut leaf_lists = 0;
        for m in a.iter().chain(&b) {
            match m {
                RelayMsg::DbHashes(h) => {
                    leaf_lists += usize::from(h.level == 1);
                    assert_eq!(v.accept_hashes(h), Ok(Accepted::New));
                }
                // Whole blocks come without leaf hashes: held, then released together.
                RelayMsg::DbData(d) => match v.accept_db_data(d) {
                    Ok(Accepted::New) => got.extend_from_slice(&d.data),
                    Ok(Accepted::Held) => {
                        while let Some(r) = v.take_released() {
                            if let Released::Chunk(_, data) = r {
                                got.extend_from_slice(&data);
                            }
                        }
                    }
                    r => panic!("{r:?}"),
                },
                m => panic!("{m:?}"),
            }
        }
        assert!(v.is_complete());
        let want: Vec<u8> = (0..f.n_chunks())
            .flat_map(|i| f.chunk(i).unwrap().to_vec())
            .collect();
        assert_eq!(got, want);
        // 0..20 splits block 1 (15..30): its leaf hashes are sent (once on the stream); the
        // whole blocks 0 and 2 go without theirs.
        assert_eq!(leaf_lists, 1);
    }

    #[test]
    fn window_blocks_data_not_proofs() {
        let f = file(5_000, 1);
        let mut s = MemoryStore::new(1 << 20);
        let name = store_file(&mut s, &f, true).unwrap();
        let mut c = ServeCursor::new(name, 0, 5);
        // With a closed window only the hashes go out.
        let mut n = 0;
        while let ServeStep::Send { data, .. } = c.next_msg(&mut s, 0) {
            assert!(!data);
            n += 1;
        }
        assert!(n >= 1);
        assert_eq!(c.next_msg(&mut s, 0), ServeStep::Blocked);
        assert!(matches!(
            c.next_msg(&mut s, 1),
            ServeStep::Send { data: true, .. }
        ));
    }

    #[test]
    fn budget_evicts_unpinned_first_and_refuses_past_pinned() {
        let a = file(40_000, 1);
        let b = file(40_000, 2);
        let mut s = MemoryStore::new(60_000);
        let na = store_file(&mut s, &a, false).unwrap();
        let nb = store_file(&mut s, &b, true).unwrap();
        assert!(s.manifest(&na).is_none(), "the unpinned file made room");
        assert_eq!(s.chunk_count(&nb), b.n_chunks());
        assert!(s.bytes_used() <= s.budget());
        let c = file(40_000, 3);
        assert_eq!(store_file(&mut s, &c, true), Err(StoreError::Full));
        assert!(s.bytes_used() <= s.budget());
        // Chunks that do not match the manifest are refused.
        assert_eq!(s.put_chunk(&nb, 0, b"short"), Err(StoreError::OutOfRange));
        assert_eq!(s.put_chunk(&[9; 20], 0, b""), Err(StoreError::UnknownName));
    }

    #[test]
    fn live_keeps_four_windows_of_segments_and_serves_verifiably() {
        let mut seeder =
            LiveSeeder::new(Ed25519Keypair::from_secret(&[4; 32]), "video/webm", 100, 2).unwrap();
        let name = seeder.hash_name();
        let mut s = MemoryStore::new(1 << 22);
        s.put_manifest(&name, Manifest::Live(seeder.manifest().clone()), true)
            .unwrap();
        for i in 0..(RING_SEGMENTS + 10) {
            let c = [i as u8; 50];
            let seg = seeder.sign_segment(&[&c, &c], 1000 + i).unwrap();
            store_segment(&mut s, &name, &seg).unwrap();
        }
        let (newest, oldest) = s.segment_range(&name).unwrap();
        assert_eq!(newest, RING_SEGMENTS + 9);
        assert_eq!(newest - oldest + 1, RING_SEGMENTS);
        assert!(!s.has(&name, 0));
        // Serve the newest two segments and verify them as a viewer would.
        let first = u64::from(newest - 1) * 2;
        let mut c = ServeCursor::new(name, first, 6);
        let (msgs, end) = serve_all(&mut s, &mut c);
        assert_eq!(end, ServeStep::Waiting, "the next segment is not out yet");
        let mut v =
            LiveVerifier::new(&name, seeder.manifest().clone(), VerifyLimits::default()).unwrap();
        let mut chunks = 0;
        for m in &msgs {
            match m {
                RelayMsg::DbSegment(h) => {
                    v.accept_segment(h, 1000 + newest).unwrap();
                }
                RelayMsg::DbHashes(h) => {
                    v.accept_hashes(h).unwrap();
                }
                RelayMsg::DbData(d) => {
                    assert_eq!(v.accept_db_data(d), Ok(Accepted::New));
                    chunks += 1;
                }
                m => panic!("{m:?}"),
            }
        }
        assert_eq!(chunks, 4);
        // Below the ring: missing.
        let mut old = ServeCursor::new(name, 0, 2);
        assert_eq!(old.next_msg(&mut s, 5), ServeStep::Missing);
    }
}
