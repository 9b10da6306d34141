//! What an ORDB keeps of the file answers it relays, so it serves the next query for the
//! same chunks itself instead of asking the holder again.
//!
//! In a swarm where downloads fetch in order, every downloader wants the same chunks
//! at about the same time, and the only holder of the newest ones is the seeder: each
//! chunk left the seeder once per downloader (sim/README.md, the 50 MB convoy). Every
//! query for the seeder passes through one of its few ORDBs, and an ORDB checks every
//! cell it splices (PROTOCOL.md 6.6), so it can keep what it checked and answer the
//! next query for those chunks: the seed's "if the ORDB has chunks N to N+n it sends it".
//!
//! The cache is bounded by a byte budget and forgets by age of last use: a chunk or hash
//! list stored or stored again goes to the back, the oldest goes first. Only files are
//! cached (live streams have their own rings); only verified items are put in.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use super::store::{ChunkBuf, ChunkStore, HASHES_COST, ITEM_OVERHEAD, MANIFEST_COST, StoreError};
use super::{Manifest, Name20};
use crate::cells::relay::{DbHashes, DbSegment};

/// One cached item of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Chunk(u64),
    Hashes(u32, u8, u32),
}

#[derive(Debug)]
struct Cached {
    manifest: Manifest,
    chunks: BTreeMap<u64, (u64, ChunkBuf)>,
    hashes: BTreeMap<(u32, u8, u32), (u64, DbHashes)>,
}

/// A bounded cache of verified file chunks and proofs, by age of last store.
#[derive(Debug)]
pub struct RelayCache {
    budget: usize,
    used: usize,
    /// Chunks and hash lists held (what `order` holds besides stale entries).
    held: usize,
    seq: u64,
    names: BTreeMap<Name20, Cached>,
    /// Items by age: (sequence number when stored, name, item). An entry whose sequence
    /// number no longer matches the item's is stale (the item was stored again since).
    order: VecDeque<(u64, Name20, Item)>,
}

impl RelayCache {
    /// An empty cache of about `budget` bytes (0: caches nothing).
    pub fn new(budget: usize) -> RelayCache {
        RelayCache {
            budget,
            used: 0,
            held: 0,
            seq: 0,
            names: BTreeMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Forget oldest items until `need` more bytes fit; names left without items go too.
    fn make_room(&mut self, need: usize) -> Result<(), StoreError> {
        if need > self.budget {
            return Err(StoreError::Full);
        }
        while self.used + need > self.budget {
            let Some((seq, name, item)) = self.order.pop_front() else {
                // Only manifests left: forget them all.
                self.used = 0;
                self.names.clear();
                break;
            };
            let Some(c) = self.names.get_mut(&name) else {
                continue;
            };
            let freed = match item {
                Item::Chunk(i) => match c.chunks.get(&i) {
                    Some((s, d)) if *s == seq => {
                        let n = d.len() + ITEM_OVERHEAD;
                        c.chunks.remove(&i);
                        n
                    }
                    _ => 0,
                },
                Item::Hashes(t, l, n) => match c.hashes.get(&(t, l, n)) {
                    Some((s, _)) if *s == seq => {
                        c.hashes.remove(&(t, l, n));
                        HASHES_COST
                    }
                    _ => 0,
                },
            };
            if freed > 0 {
                self.used -= freed;
                self.held -= 1;
            }
            if c.chunks.is_empty() && c.hashes.is_empty() {
                self.names.remove(&name);
                self.used -= MANIFEST_COST;
            }
        }
        // Stale entries pile up when items are stored again: compact now and then.
        if self.order.len() > 2 * self.held + 64 {
            let names = &self.names;
            self.order.retain(|(s, n, item)| {
                names.get(n).is_some_and(|c| match item {
                    Item::Chunk(i) => c.chunks.get(i).is_some_and(|e| e.0 == *s),
                    Item::Hashes(t, l, x) => c.hashes.get(&(*t, *l, *x)).is_some_and(|e| e.0 == *s),
                })
            });
        }
        Ok(())
    }

    /// Put `item` of `name` at the back of the age order; `new` when it was not held.
    fn stored(&mut self, name: &Name20, item: Item, new: bool) -> u64 {
        self.seq += 1;
        self.order.push_back((self.seq, *name, item));
        self.held += usize::from(new);
        self.seq
    }
}

impl ChunkStore for RelayCache {
    /// Caches file manifests only; `pinned` is ignored (nothing in a cache is pinned).
    fn put_manifest(
        &mut self,
        name: &Name20,
        manifest: Manifest,
        _pinned: bool,
    ) -> Result<(), StoreError> {
        if !matches!(manifest, Manifest::File(_)) {
            return Err(StoreError::OutOfRange);
        }
        if let Some(c) = self.names.get(name) {
            return if c.manifest == manifest {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            };
        }
        self.make_room(MANIFEST_COST)?;
        self.names.insert(
            *name,
            Cached {
                manifest,
                chunks: BTreeMap::new(),
                hashes: BTreeMap::new(),
            },
        );
        self.used += MANIFEST_COST;
        Ok(())
    }

    fn manifest(&self, name: &Name20) -> Option<Manifest> {
        self.names.get(name).map(|c| c.manifest.clone())
    }

    fn put_chunk(&mut self, name: &Name20, index: u64, data: &[u8]) -> Result<(), StoreError> {
        let c = self.names.get(name).ok_or(StoreError::UnknownName)?;
        let Manifest::File(m) = &c.manifest else {
            return Err(StoreError::OutOfRange);
        };
        if index >= m.n_chunks() || data.len() != m.chunk_len(index) {
            return Err(StoreError::OutOfRange);
        }
        let buf = ChunkBuf::from_slice(data).map_err(|_| StoreError::OutOfRange)?;
        let cost = if c.chunks.contains_key(&index) {
            0
        } else {
            data.len() + ITEM_OVERHEAD
        };
        self.make_room(cost)?;
        // make_room may have forgotten the name itself.
        if !self.names.contains_key(name) {
            return Err(StoreError::Full);
        }
        let seq = self.stored(name, Item::Chunk(index), cost > 0);
        if let Some(c) = self.names.get_mut(name) {
            c.chunks.insert(index, (seq, buf));
        }
        self.used += cost;
        Ok(())
    }

    fn chunk(&mut self, name: &Name20, index: u64) -> Option<ChunkBuf> {
        self.names
            .get(name)?
            .chunks
            .get(&index)
            .map(|c| c.1.clone())
    }

    fn has(&self, name: &Name20, index: u64) -> bool {
        self.names
            .get(name)
            .is_some_and(|c| c.chunks.contains_key(&index))
    }

    fn has_range(&self, name: &Name20, first: u64, count: u64) -> bool {
        let (Some(c), Some(end)) = (self.names.get(name), first.checked_add(count)) else {
            return false;
        };
        c.chunks.range(first..end).count() as u64 == count
    }

    fn put_hashes(&mut self, name: &Name20, msg: &DbHashes) -> Result<(), StoreError> {
        let c = self.names.get(name).ok_or(StoreError::UnknownName)?;
        if msg.level == 0 || msg.hashes.is_empty() {
            return Err(StoreError::OutOfRange);
        }
        let key = (msg.tree, msg.level, msg.node);
        let cost = if c.hashes.contains_key(&key) {
            0
        } else {
            HASHES_COST
        };
        self.make_room(cost)?;
        // make_room may have forgotten the name itself.
        if !self.names.contains_key(name) {
            return Err(StoreError::Full);
        }
        let seq = self.stored(name, Item::Hashes(key.0, key.1, key.2), cost > 0);
        if let Some(c) = self.names.get_mut(name) {
            c.hashes.insert(key, (seq, msg.clone()));
        }
        self.used += cost;
        Ok(())
    }

    fn hashes(&self, name: &Name20, tree: u32, level: u8, node: u32) -> Option<DbHashes> {
        let c = self.names.get(name)?;
        c.hashes.get(&(tree, level, node)).map(|h| h.1.clone())
    }

    /// Live streams are not cached.
    fn put_segment(&mut self, _: &Name20, _: &DbSegment) -> Result<(), StoreError> {
        Err(StoreError::OutOfRange)
    }

    fn segment(&self, _: &Name20, _: u32) -> Option<DbSegment> {
        None
    }

    fn segment_range(&self, _: &Name20) -> Option<(u32, u32)> {
        None
    }

    fn remove(&mut self, name: &Name20) {
        if let Some(c) = self.names.remove(name) {
            let bytes: usize = c.chunks.values().map(|x| x.1.len() + ITEM_OVERHEAD).sum();
            self.used -= MANIFEST_COST + bytes + c.hashes.len() * HASHES_COST;
            self.held -= c.chunks.len() + c.hashes.len();
        }
    }

    fn names(&self) -> Vec<Name20> {
        self.names.keys().copied().collect()
    }

    fn chunk_count(&self, name: &Name20) -> u64 {
        self.names.get(name).map_or(0, |c| c.chunks.len() as u64)
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
    use crate::ordb::store::{MemoryStore, store_file};
    use crate::ordb::{
        Accepted, FileSeeder, FileVerifier, Released, ServeCursor, ServeStep, VerifyLimits,
        index_from_wire,
    };

    fn seeded(len: usize) -> (FileSeeder, MemoryStore) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let s = FileSeeder::new(&Ed25519Keypair::from_secret(&[9; 32]), "x/y", 1, data).unwrap();
        let mut store = MemoryStore::new(1 << 24);
        store_file(&mut store, &s, true).unwrap();
        (s, store)
    }

    /// Serve `first..first+count` from `store` into `cache` as a relay would (verified).
    fn relay(
        store: &mut dyn ChunkStore,
        cache: &mut RelayCache,
        name: &Name20,
        first: u64,
        count: u64,
    ) {
        let m = store.manifest(name).unwrap();
        let mut v = FileVerifier::for_relay(name, &m.to_db_connected(), VerifyLimits::default())
            .unwrap()
            .unwrap();
        cache.put_manifest(name, m, false).unwrap();
        let mut c = ServeCursor::new(*name, first, count);
        loop {
            match c.next_msg(store, u16::MAX) {
                ServeStep::Send {
                    msg: RelayMsg::DbHashes(h),
                    ..
                } => {
                    v.accept_hashes(&h).unwrap();
                    cache.put_hashes(name, &h).unwrap();
                }
                ServeStep::Send {
                    msg: RelayMsg::DbData(d),
                    ..
                } => {
                    if v.accept_db_data(&d).unwrap() == Accepted::New {
                        let i = index_from_wire(d.chunk).unwrap();
                        cache.put_chunk(name, i, &d.data).unwrap();
                    }
                    // Blocks the range covers come without leaf hashes, verified whole.
                    while let Some(r) = v.take_released() {
                        match r {
                            Released::Hashes(h) => cache.put_hashes(name, &h).unwrap(),
                            Released::Chunk(i, data) => cache.put_chunk(name, i, &data).unwrap(),
                        }
                    }
                }
                ServeStep::Done => return,
                s => panic!("{s:?}"),
            }
        }
    }

    #[test]
    fn a_relayed_range_serves_again_from_the_cache_and_verifies() {
        let (s, mut store) = seeded(100_000);
        let name = s.hash_name();
        let mut cache = RelayCache::new(1 << 20);
        relay(&mut store, &mut cache, &name, 30, 60);
        assert!(cache.has_range(&name, 30, 60));
        assert!(!cache.has_range(&name, 29, 2));
        // A fresh downloader's check accepts everything the cache serves for that range,
        // and for a part of it that splits blocks (their leaf hashes were cached too).
        for (first, count) in [(30, 60), (37, 20)] {
            assert_eq!(
                serve_and_verify(&mut cache, &name, first, count),
                count,
                "{first}+{count}"
            );
        }
    }

    /// Serve `first..first+count` from `store` to a fresh verifier: the chunks verified.
    fn serve_and_verify(store: &mut dyn ChunkStore, name: &Name20, first: u64, count: u64) -> u64 {
        let m = store.manifest(name).unwrap();
        let mut v = FileVerifier::for_relay(name, &m.to_db_connected(), VerifyLimits::default())
            .unwrap()
            .unwrap();
        let mut c = ServeCursor::new(*name, first, count);
        let mut chunks = 0;
        loop {
            match c.next_msg(store, u16::MAX) {
                ServeStep::Send {
                    msg: RelayMsg::DbHashes(h),
                    ..
                } => {
                    v.accept_hashes(&h).unwrap();
                }
                ServeStep::Send {
                    msg: RelayMsg::DbData(d),
                    ..
                } => match v.accept_db_data(&d) {
                    Ok(Accepted::New) => chunks += 1,
                    Ok(Accepted::Held) => {
                        while let Some(r) = v.take_released() {
                            chunks += u64::from(matches!(r, Released::Chunk(..)));
                        }
                    }
                    r => panic!("{r:?}"),
                },
                ServeStep::Done => return chunks,
                s => panic!("{s:?}"),
            }
        }
    }

    #[test]
    fn the_budget_forgets_the_oldest_and_holds() {
        let (s, mut store) = seeded(200_000);
        let name = s.hash_name();
        let budget = 60 * (486 + ITEM_OVERHEAD) + 20 * HASHES_COST + MANIFEST_COST;
        let mut cache = RelayCache::new(budget);
        for first in (0..400).step_by(40) {
            relay(&mut store, &mut cache, &name, first, 40);
            assert!(cache.bytes_used() <= budget);
        }
        // The newest range is whole, the oldest forgotten.
        assert!(cache.has_range(&name, 360, 40));
        assert!(!cache.has(&name, 0));
        // Nothing fits in a zero budget.
        let mut none = RelayCache::new(0);
        assert_eq!(
            none.put_manifest(&name, store.manifest(&name).unwrap(), false),
            Err(StoreError::Full)
        );
        cache.remove(&name);
        assert_eq!(cache.bytes_used(), 0);
    }

    /// What the cache accounts, recomputed from what it holds.
    fn recount(c: &RelayCache) -> usize {
        c.names
            .values()
            .map(|x| {
                MANIFEST_COST
                    + x.chunks
                        .values()
                        .map(|e| e.1.len() + ITEM_OVERHEAD)
                        .sum::<usize>()
                    + x.hashes.len() * HASHES_COST
            })
            .sum()
    }

    #[test]
    fn arbitrary_puts_stay_within_the_budget_and_accounted() {
        let (s, mut store) = seeded(20_000);
        let name = s.hash_name();
        let manifest = store.manifest(&name).unwrap();
        let n = s.manifest().n_chunks();
        let hashes: Vec<DbHashes> = (1..=3)
            .flat_map(|level| (0..4).map(move |node| (level, node)))
            .filter_map(|(level, node)| store.hashes(&name, 0, level, node))
            .collect();
        assert!(hashes.len() >= 2);
        bolero::check!().for_each(|input: &[u8]| {
            let budget = usize::from(input.first().copied().unwrap_or(0)) * 64;
            let mut cache = RelayCache::new(budget);
            for op in input.chunks(2).skip(1) {
                let arg = u64::from(op.get(1).copied().unwrap_or(0));
                let _ = match op[0] % 4 {
                    0 => cache.put_manifest(&name, manifest.clone(), false),
                    1 => match store.chunk(&name, arg % (n + 2)) {
                        Some(d) => cache.put_chunk(&name, arg % (n + 2), &d),
                        None => cache.put_chunk(&name, arg, &[0; 3]),
                    },
                    2 => match hashes.get(arg as usize % hashes.len().max(1)) {
                        Some(h) => cache.put_hashes(&name, h),
                        None => Ok(()),
                    },
                    _ => {
                        cache.remove(&name);
                        Ok(())
                    }
                };
                assert!(cache.bytes_used() <= budget);
                assert_eq!(cache.bytes_used(), recount(&cache));
                let held: usize = cache
                    .names
                    .values()
                    .map(|c| c.chunks.len() + c.hashes.len())
                    .sum();
                assert_eq!(cache.held, held);
                assert!(cache.order.len() <= 2 * held + 65);
            }
        });
    }
}
