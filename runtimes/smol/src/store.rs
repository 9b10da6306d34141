//! A chunk store on disk: the core's [`ChunkStore`] with file chunks kept in files under a
//! directory (one file per content, chunk `i` at offset `i × 486`), bounded by a byte
//! budget, so a node serves more than it could hold in memory.
//!
//! Manifests, DB_HASHES and live streams (small, or short-lived) are served from an
//! in-memory [`MemoryStore`]. Past the budget, whole unpinned contents are evicted least
//! recently used first; pinned content (the node's own seeds) never is.
//!
//! **Restarts.** Next to each `HEX.chunks` file, `HEX.log` records what the store holds
//! of that file, append-only: the manifest (as its DB_CONNECTED body, with the pinned
//! flag), each DB_HASHES body, and each chunk written (index, length). A new store over
//! the same directory replays the logs, so what was seeded or downloaded (and verified)
//! before a restart is held, served and advertised again. A log cut short by a crash
//! keeps what it recorded before the cut; a chunk is logged only once its bytes are
//! written. Chunk files without a log (or with an unreadable manifest) are removed.
//! Live streams are not kept across restarts (their segments age out in minutes).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use onionpeer_core::cells::relay::{
    DbConnected, DbHashes, DbSegment, MAX_CHUNK_DATA_LEN, RelayBody, RelayMsg,
};
use onionpeer_core::ordb::store::ChunkBuf;
use onionpeer_core::ordb::{ChunkStore, Manifest, MemoryStore, Name20, StoreError};

/// Room for manifests and proofs (a DB_HASHES covers 15 chunks, about 500 bytes).
const META_BUDGET: usize = 64 << 20;

/// Log record kinds (`HEX.log`): `[kind u8][len u16 BE][len bytes]`.
const REC_MANIFEST: u8 = 1;
/// The manifest again, pinned (a seed of ours).
const REC_MANIFEST_PINNED: u8 = 2;
/// A DB_HASHES body.
const REC_HASHES: u8 = 3;
/// A chunk written: `[index u64 BE][len u16 BE]`.
const REC_CHUNK: u8 = 4;

struct OnDisk {
    file: File,
    log: File,
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

fn record(log: &mut File, kind: u8, body: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(body.len()).map_err(std::io::Error::other)?;
    let mut rec = Vec::with_capacity(3 + body.len());
    rec.push(kind);
    rec.extend_from_slice(&len.to_be_bytes());
    rec.extend_from_slice(body);
    log.write_all(&rec)
}

fn body_of(msg: RelayMsg) -> Vec<u8> {
    let mut out = Vec::new();
    // Messages we decoded or built always encode.
    let _ = msg.encode_body(&mut out);
    out
}

/// The records of a log, up to the first incomplete one.
fn records(bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let [kind, a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        let Some((body, next)) = tail.split_at_checked(len) else {
            break;
        };
        out.push((*kind, body));
        rest = next;
    }
    out
}

fn name_of(path: &std::path::Path) -> Option<Name20> {
    let stem = path.file_stem()?.to_str()?;
    if stem.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(stem.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl DiskStore {
    /// A store under `dir` (created if missing) holding at most about `budget` bytes of
    /// chunks. What an earlier store left in `dir` is loaded again (see the module doc).
    pub fn new(dir: impl Into<PathBuf>, budget: usize) -> std::io::Result<DiskStore> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let mut store = DiskStore {
            dir,
            budget,
            used: 0,
            clock: 0,
            meta: MemoryStore::new(META_BUDGET),
            files: BTreeMap::new(),
        };
        let mut logs = Vec::new();
        for e in std::fs::read_dir(&store.dir)?.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log")
                && let Some(name) = name_of(&p)
            {
                logs.push(name);
            }
        }
        logs.sort();
        for name in &logs {
            if store.reload(name).is_err() {
                store.forget_files(name);
            }
        }
        // Chunk files nothing describes are scratch left by an older store.
        for e in std::fs::read_dir(&store.dir)?.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "chunks")
                && name_of(&p).is_none_or(|n| !store.files.contains_key(&n))
            {
                let _ = std::fs::remove_file(p);
            }
        }
        Ok(store)
    }

    fn path(&self, name: &Name20, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", hex(name)))
    }

    fn forget_files(&mut self, name: &Name20) {
        let _ = std::fs::remove_file(self.path(name, "chunks"));
        let _ = std::fs::remove_file(self.path(name, "log"));
    }

    /// Replay `HEX.log` for `name`.
    fn reload(&mut self, name: &Name20) -> std::io::Result<()> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let bytes = std::fs::read(self.path(name, "log"))?;
        let recs = records(&bytes);
        let mut manifest = None;
        let mut pinned = false;
        for (kind, body) in &recs {
            if matches!(*kind, REC_MANIFEST | REC_MANIFEST_PINNED) {
                let c = DbConnected::decode_body(body).map_err(|_| bad("manifest"))?;
                let m = Manifest::from_db_connected(&c).map_err(|_| bad("manifest"))?;
                manifest.get_or_insert(m);
                pinned |= *kind == REC_MANIFEST_PINNED;
            }
        }
        let Some(manifest @ Manifest::File(_)) = manifest else {
            return Err(bad("no file manifest"));
        };
        // The signed manifest must be the name's (a log copied under another name is not).
        if manifest.verify(name).is_err() {
            return Err(bad("manifest of another name"));
        }
        self.meta
            .put_manifest(name, manifest, pinned)
            .map_err(|_| bad("meta store full"))?;
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(self.path(name, "chunks"))?;
        let file_len = file.metadata()?.len();
        // Rewrite the log compactly (a torn tail is dropped); appended to from here on.
        let mut compact = Vec::new();
        let mut held = BTreeMap::new();
        let mut bytes_held = 0;
        for (kind, body) in recs {
            match kind {
                REC_MANIFEST | REC_MANIFEST_PINNED => {}
                REC_HASHES => {
                    if let Ok(h) = DbHashes::decode_body(body)
                        && self.meta.put_hashes(name, &h).is_ok()
                    {
                        compact.push((REC_HASHES, body.to_vec()));
                    }
                }
                REC_CHUNK => {
                    let [i0, i1, i2, i3, i4, i5, i6, i7, l0, l1] = body else {
                        continue;
                    };
                    let index = u64::from_be_bytes([*i0, *i1, *i2, *i3, *i4, *i5, *i6, *i7]);
                    let len = u16::from_be_bytes([*l0, *l1]);
                    let end = index
                        .saturating_mul(MAX_CHUNK_DATA_LEN as u64)
                        .saturating_add(u64::from(len));
                    if end <= file_len && held.insert(index, len).is_none() {
                        bytes_held += usize::from(len);
                        compact.push((REC_CHUNK, body.to_vec()));
                    }
                }
                _ => {}
            }
        }
        let tmp = self.path(name, "log.tmp");
        {
            let mut log = File::create(&tmp)?;
            let m = self.meta.manifest(name).ok_or_else(|| bad("manifest"))?;
            let kind = if pinned {
                REC_MANIFEST_PINNED
            } else {
                REC_MANIFEST
            };
            record(&mut log, kind, &body_of(m.to_db_connected().into()))?;
            for (k, b) in &compact {
                record(&mut log, *k, b)?;
            }
            log.sync_all()?;
        }
        std::fs::rename(&tmp, self.path(name, "log"))?;
        let log = OpenOptions::new()
            .append(true)
            .open(self.path(name, "log"))?;
        let last_used = self.tick();
        self.used += bytes_held;
        self.files.insert(
            *name,
            OnDisk {
                file,
                log,
                held,
                bytes: bytes_held,
                pinned,
                last_used,
            },
        );
        Ok(())
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
        let body = body_of(manifest.to_db_connected().into());
        self.meta.put_manifest(name, manifest, pinned)?;
        if file && !self.files.contains_key(name) {
            let open = |path: PathBuf| {
                OpenOptions::new()
                    .create(true)
                    .read(true)
                    .write(true)
                    .truncate(true)
                    .open(path)
            };
            let (Ok(f), Ok(mut log)) = (
                open(self.path(name, "chunks")),
                open(self.path(name, "log")),
            ) else {
                self.meta.remove(name);
                return Err(StoreError::Full);
            };
            let kind = if pinned {
                REC_MANIFEST_PINNED
            } else {
                REC_MANIFEST
            };
            if record(&mut log, kind, &body).is_err() {
                self.meta.remove(name);
                return Err(StoreError::Full);
            }
            let last_used = self.tick();
            self.files.insert(
                *name,
                OnDisk {
                    file: f,
                    log,
                    held: BTreeMap::new(),
                    bytes: 0,
                    pinned,
                    last_used,
                },
            );
        } else if let Some(f) = self.files.get_mut(name)
            && pinned
            && !f.pinned
        {
            f.pinned = true;
            let _ = record(&mut f.log, REC_MANIFEST_PINNED, &body);
        }
        Ok(())
    }

    fn manifest(&self, name: &Name20) -> Option<Manifest> {
        self.meta.manifest(name)
    }

    fn put_chunk(&mut self, name: &Name20, index: u64, data: &[u8]) -> Result<(), StoreError> {
        let Some(Manifest::File(m)) = self.meta.manifest(name) else {
            return self.meta.put_chunk(name, index, data);
        };
        if index >= m.n_chunks() || data.len() != m.chunk_len(index) {
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
        let mut rec = [0u8; 10];
        rec[..8].copy_from_slice(&index.to_be_bytes());
        rec[8..].copy_from_slice(&(data.len() as u16).to_be_bytes());
        record(&mut f.log, REC_CHUNK, &rec).map_err(|_| StoreError::Full)?;
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
        let new = self
            .meta
            .hashes(name, msg.tree, msg.level, msg.node)
            .is_none();
        self.meta.put_hashes(name, msg)?;
        if new && let Some(f) = self.files.get_mut(name) {
            record(&mut f.log, REC_HASHES, &body_of(msg.clone().into()))
                .map_err(|_| StoreError::Full)?;
        }
        Ok(())
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
            drop(f);
            self.forget_files(name);
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

    /// What a store held is found again by a new store over the same directory
    /// (manifests, proofs, chunks, pinning), a torn log tail is ignored, and a log whose
    /// manifest is not its name's is removed.
    #[test]
    fn a_new_store_over_the_same_directory_reloads() {
        use onionpeer_core::ordb::{
            Accepted, FileVerifier, Released, ServeCursor, ServeStep, VerifyLimits,
        };
        let dir =
            std::env::temp_dir().join(format!("onionpeer-store-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = |b| onionpeer_core::crypto::identity::Ed25519Keypair::from_secret(&[b; 32]);
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
        let seeder =
            onionpeer_core::ordb::FileSeeder::new(&key(3), "text/plain", 5, data.clone()).unwrap();
        let half = onionpeer_core::ordb::FileSeeder::new(&key(4), "x/y", 5, vec![1; 5000]).unwrap();
        let (name, hname) = {
            let mut s = DiskStore::new(&dir, 1 << 20).unwrap();
            let name = onionpeer_core::ordb::store_file(&mut s, &seeder, true).unwrap();
            // A downloaded (unpinned) file, 3 chunks of 11 held.
            let hname = half.hash_name();
            s.put_manifest(&hname, Manifest::File(half.manifest().clone()), false)
                .unwrap();
            for i in [0, 4, 10] {
                s.put_chunk(&hname, i, half.chunk(i).unwrap()).unwrap();
            }
            (name, hname)
        };
        // A crash mid-record: a torn tail.
        let log = dir.join(format!("{}.log", hex(&hname)));
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(&[REC_CHUNK, 0, 10, 0, 0]).unwrap();
        drop(f);
        // A log copied under another name.
        std::fs::copy(&log, dir.join(format!("{}.log", "ab".repeat(20)))).unwrap();
        let mut s = DiskStore::new(&dir, 1 << 20).unwrap();
        let mut names = s.names();
        names.sort();
        let mut want = vec![name, hname];
        want.sort();
        assert_eq!(names, want);
        assert!(!dir.join(format!("{}.log", "ab".repeat(20))).exists());
        assert_eq!(s.chunk_count(&hname), 3);
        assert!(s.has(&hname, 4) && !s.has(&hname, 5));
        let held: usize = [0, 4, 10]
            .iter()
            .map(|&i| half.chunk(i).unwrap().len())
            .sum();
        assert_eq!(s.bytes_used() - s.meta.bytes_used(), 20_000 + held);
        // The reloaded file serves cells a downloader verifies: the proofs came back too.
        let m = match s.manifest(&name) {
            Some(Manifest::File(m)) => m,
            o => panic!("{o:?}"),
        };
        let mut v = FileVerifier::new(&name, m.clone(), VerifyLimits::default()).unwrap();
        let mut c = ServeCursor::new(name, 0, m.n_chunks());
        let mut got = Vec::new();
        loop {
            match c.next_msg(&mut s, 1) {
                ServeStep::Send { msg, .. } => match msg {
                    RelayMsg::DbHashes(h) => {
                        v.accept_hashes(&h).unwrap();
                    }
                    RelayMsg::DbData(d) => {
                        if v.accept_db_data(&d).unwrap() == Accepted::New {
                            got.extend_from_slice(&d.data);
                        }
                        while let Some(r) = v.take_released() {
                            if let Released::Chunk(_, data) = r {
                                got.extend_from_slice(&data);
                            }
                        }
                    }
                    m => panic!("{m:?}"),
                },
                ServeStep::Done => break,
                o => panic!("{o:?}"),
            }
        }
        assert_eq!(got, data);
        // Still pinned: a budget too small for both evicts the downloaded file only.
        drop(s);
        let mut s = DiskStore::new(&dir, 20_000).unwrap();
        s.make_room(0, &[0; 20]).unwrap();
        assert!(s.manifest(&name).is_some() && s.manifest(&hname).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
