//! The ORDB and seeder function of a Peersm node (seed: "Content discovery", "Requests",
//! "Handling the lists in the ORDBs", "Live Streaming"; PROTOCOL.md section 9).
//!
//! - **Store.** Every Peersm node has a bounded [`ChunkStore`]; what it holds it serves,
//!   whether it seeded it ([`Command::Seed`], [`Command::Live`]) or downloaded it.
//! - **Discovery.** A node advertises what it has with DB_INFO on its ORDB circuits
//!   ([`Node::advertise`]). An ORDB (the last hop of someone's ORDB circuit) keeps, per
//!   name, the circuits that advertised it ([`OrdbLists`]), STOREs a new name in the DHT
//!   with its own record (a publisher never STOREs itself unless `store_own_record`)
//!   and, only when `pass_on_names` is set, passes a name on once to each of its own
//!   ORDBs.
//! - **Requests.** A DB_QUERY at any node: counter 5 → DB_END; the node holds the range →
//!   it serves it (DB_CONNECTED, DB_HASHES, DB_DATA, DB_END FINISHED) within a window of
//!   chunks opened by DB_SENDME; else it forwards the query (counter + 1) on the first
//!   valid circuit of its lists whose peer holds the range (DB_INFO's HAVE) and splices
//!   the answer back; else it looks the name up (FIND_VALUE), builds a one-hop circuit to
//!   each holder found and forwards there; else DB_END UNAVAILABLE. A file query another
//!   ORDB sent goes on only to a peer that advertised itself here, else ends at once
//!   (UNAVAILABLE): it crosses two ORDBs at most.
//! - **Bounds.** Served streams, splices, lists, forward circuits, advertised names and
//!   test replies are all bounded; nothing is queued per stream beyond the window (an
//!   ORDB relays a cell as it arrives; a server stops at the window).

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::net::SocketAddr;

use rand_core::Rng;

use super::Node;
use super::api::{Command, CommandError, CommandOk, ConnId, FirstHop, QueryId, RelayTarget};
use super::config::OrdbConfig;
use super::counters::Count;
use super::ordb_lists::{OrdbLists, PeerRef, Wanted};
use crate::Instant;
use crate::cells::channel::DestroyReason;
use crate::cells::relay::{
    DbData, DbEnd, DbEndReason, DbInfo, DbQuery, DbSendme, HashName, MAX_QUERY_COUNTER, PeerRecord,
    Progress, RelayCell, RelayMsg, StreamId,
};
use crate::circuit::{CircKey, Circuit};
use crate::crypto::identity::{Ed25519Keypair, PeerId};
use crate::ordb::{
    Accepted, ChunkStore, FileSeeder, FileVerifier, LiveSeeder, Manifest, MemoryStore, Name20,
    RelayCache, Released, ServeCursor, ServeStep, ServedTally, Verified, VerifyError, VerifyLimits,
    index_from_wire, store_file, store_segment,
};

/// DB_DATA cells a server may send on one stream before the receiver's DB_SENDME opens
/// the window again: 500 × 486 B ≈ 243 kB, more than one GET (a 420-chunk block), so a
/// GET is never held back by a round trip of its path (6–7 relays, up to ~1 s): with
/// 100 a stream carried at most ~50 kB per round trip (PROTOCOL.md §9, measurements).
/// Still within Tor's 500-cell stream window.
pub const STREAM_WINDOW: u16 = 500;
/// A downloader sends DB_SENDME `{chunks: SENDME_CHUNKS}` each time it consumed that many
/// DB_DATA cells of a stream (a fifth of the window, so the server never stalls).
pub const SENDME_CHUNKS: u16 = 100;
/// Stream ids an ORDB picks for the queries it forwards have this bit set; clients pick
/// theirs without it, so the two never collide on one circuit.
const FORWARD_SID_BIT: u16 = 0x8000;
/// A stream we serve queues cells on its link only while the link holds less than this
/// (64 cells): a busy server keeps the rest back and sends, as the link drains, the
/// rarest parts first instead of every stream's whole window in arrival order (where a
/// new stream waited behind megabytes, and a full queue closed the circuit).
const SERVE_QUEUE_BYTES: usize = 64 * crate::cells::channel::MAX_FIXED_CELL_LEN;
/// Replies kept for [`Node::take_query_replies`] at most.
const MAX_TEST_REPLIES: usize = 4096;
/// Names we advertised, re-sent to a new ORDB circuit, at most.
const MAX_ADVERTISED: usize = 256;
/// Live streams published at once.
const MAX_LIVE: usize = 16;
/// Upstream attempts per forwarded query at the requester's own ORDB (an UNAVAILABLE
/// before any answer tries the next reference; partial holders answer that at once).
const MAX_ATTEMPTS: u8 = 6;
/// The same for a query another ORDB sent: each level of a chain retrying as often would
/// multiply the attempts (attempts^levels when peers claim a name nobody has).
const MAX_ATTEMPTS_RELAYED: u8 = 3;

/// The message kinds the ORDB function handles.
pub(super) fn is_ordb_msg(msg: &RelayMsg) -> bool {
    matches!(
        msg,
        RelayMsg::DbInfo(_)
            | RelayMsg::DbQuery(_)
            | RelayMsg::DbConnected(_)
            | RelayMsg::DbData(_)
            | RelayMsg::DbEnd(_)
            | RelayMsg::DbSendme(_)
            | RelayMsg::DbHashes(_)
            | RelayMsg::DbSegment(_)
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leg {
    circ: CircKey,
    sid: StreamId,
}

/// A stream we serve from our store.
#[derive(Debug)]
struct Serving {
    cursor: ServeCursor,
    window: u16,
    /// Served from the relay cache, not the store.
    cached: bool,
    /// When it last sent a chunk (`OrdbState::sent_seq`): among streams of equally
    /// served parts, the one that waited longest goes first.
    last_sent: u64,
}

/// A query we forwarded: the requester's stream (`down`) spliced to ours (`up`).
#[derive(Debug)]
struct Splice {
    down: Leg,
    up: Option<Leg>,
    /// The query as forwarded (counter already incremented).
    query: DbQuery,
    /// Circuits to holders found by FIND_VALUE, still to try.
    candidates: Vec<CircKey>,
    /// Circuits already tried.
    tried: Vec<CircKey>,
    /// DB_DATA the upstream may still send before the requester's next DB_SENDME.
    credit: u16,
    /// Answer cells relayed so far.
    relayed: u64,
    /// The chunk after the last one verified (0-based; the query's first before any):
    /// what a query waiting on this one may expect in the cache below it.
    upto: u64,
    attempts: u8,
    /// The check of the current upstream's answer.
    check: Check,
}

impl Splice {
    /// Another ORDB sent the query (it reached us with counter ≥ 1, now incremented).
    fn relayed(&self) -> bool {
        self.query.counter > 1
    }
}

/// What an ORDB checks of the answer stream it splices (PROTOCOL.md 6.6): a file's hash
/// lists and chunks against its signed manifest, so that a tamperer upstream is caught
/// here, at the first bad cell (or block), and never reached again from here.
#[derive(Debug)]
enum Check {
    /// No DB_CONNECTED yet: a hash list or chunk now is invented.
    Manifest,
    /// A file: every DB_HASHES and DB_DATA is verified before it is relayed.
    File(Box<FileVerifier>),
    /// A live stream or a file over the size limit: relayed as it comes (the viewer
    /// checks it).
    Unchecked,
}

/// A one-hop circuit we built to a holder found with FIND_VALUE.
#[derive(Debug)]
struct FwdCirc {
    peer: PeerId,
    built: bool,
}

#[derive(Debug)]
enum Lookup {
    /// FIND_VALUE for queries waiting on it.
    Find { name: HashName, splices: Vec<u64> },
    /// A STORE announcement: its end is of no interest.
    Quiet,
}

/// A circuit's DB_QUERY token bucket (PROTOCOL.md 9.7).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Thousandths of a query.
    milli: u64,
    last: Instant,
}

/// Circuits with a DB_QUERY bucket at once (the fullest are forgotten first: a full
/// bucket is what a new one starts as).
const MAX_BUCKETS: usize = 4096;

/// A test query's state.
#[derive(Debug)]
struct TestQuery {
    id: QueryId,
    data_seen: u16,
}

/// What we last advertised of a name (DB_INFO's P and HAVE).
#[derive(Debug, Clone, Copy)]
struct Advert {
    progress: Progress,
    have: Option<u32>,
}

/// The ORDB state of a node.
pub(super) struct OrdbState {
    cfg: OrdbConfig,
    store: Box<dyn ChunkStore + Send>,
    /// What we relayed of files, to serve again (PROTOCOL.md §9, DB_QUERY step 2).
    cache: RelayCache,
    live: BTreeMap<Name20, LiveSeeder>,
    lists: OrdbLists,
    serving: BTreeMap<(CircKey, StreamId), Serving>,
    splices: BTreeMap<u64, Splice>,
    by_down: BTreeMap<(CircKey, StreamId), u64>,
    by_up: BTreeMap<(CircKey, StreamId), u64>,
    lookups: BTreeMap<u64, Lookup>,
    fwd: BTreeMap<CircKey, FwdCirc>,
    advertised: BTreeMap<HashName, Advert>,
    /// Names we STOREd for peers that told us (DB_INFO) they have part of them, with
    /// when: kept alive while such a peer downloads over a live circuit to us (bounded
    /// by `max_names`, as the lists).
    stored_for: BTreeMap<HashName, Instant>,
    test_queries: BTreeMap<(CircKey, StreamId), TestQuery>,
    test_replies: VecDeque<(QueryId, RelayMsg)>,
    next_splice: u64,
    next_test: u64,
    buckets: BTreeMap<CircKey, Bucket>,
    /// How often we sent each part of what we serve: a busy link sends the rarest first.
    tally: ServedTally,
    /// Chunks sent so far, to order streams by when they last sent.
    sent_seq: u64,
}

impl OrdbState {
    pub(super) fn new(cfg: &OrdbConfig) -> OrdbState {
        OrdbState {
            store: Box::new(MemoryStore::new(cfg.store_budget)),
            cache: RelayCache::new(cfg.relay_cache_budget),
            cfg: cfg.clone(),
            live: BTreeMap::new(),
            lists: OrdbLists::default(),
            serving: BTreeMap::new(),
            splices: BTreeMap::new(),
            by_down: BTreeMap::new(),
            by_up: BTreeMap::new(),
            lookups: BTreeMap::new(),
            fwd: BTreeMap::new(),
            advertised: BTreeMap::new(),
            stored_for: BTreeMap::new(),
            test_queries: BTreeMap::new(),
            test_replies: VecDeque::new(),
            next_splice: 1,
            next_test: 1,
            buckets: BTreeMap::new(),
            tally: ServedTally::new(),
            sent_seq: 0,
        }
    }

    fn sid_taken(&self, key: CircKey, sid: StreamId) -> bool {
        self.by_up.contains_key(&(key, sid))
            || self.by_down.contains_key(&(key, sid))
            || self.serving.contains_key(&(key, sid))
            || self.test_queries.contains_key(&(key, sid))
    }

    /// Sizes of the bounded collections (for tests): served streams, splices, list names,
    /// list references, forward circuits, lookups, test replies.
    fn census(&self) -> [usize; 7] {
        [
            self.serving.len(),
            self.splices.len(),
            self.lists.len(),
            self.lists.total_refs(),
            self.fwd.len(),
            self.lookups.len(),
            self.test_replies.len(),
        ]
    }
}

fn target_of(r: &PeerRecord) -> RelayTarget {
    RelayTarget {
        addr: SocketAddr::new(r.ip, r.port),
        id: r.id,
        ntor_key: r.ntor_key.unwrap_or([0; 32]),
        ed_id: None,
    }
}

fn name20(name: &HashName) -> Option<Name20> {
    name.as_bytes().try_into().ok()
}

impl Node {
    // ---- public getters --------------------------------------------------------------

    /// The node's chunk store (`None` without a Peersm config).
    pub fn chunk_store(&self) -> Option<&dyn ChunkStore> {
        self.ordb.as_ref().map(|o| &*o.store as &dyn ChunkStore)
    }

    /// Replace the node's chunk store (a runtime's disk store, say). What the old store
    /// held is forgotten; what the new one holds is served but not advertised until
    /// [`Node::advertise_held`].
    pub fn set_chunk_store(&mut self, store: Box<dyn ChunkStore + Send>) {
        if let Some(o) = self.ordb.as_mut() {
            o.store = store;
        }
    }

    /// Advertise the files the chunk store holds (a disk store reloaded after a restart):
    /// DB_INFO on our ORDB circuits, now and as they are built, with the share held of
    /// each (25 % or more). The names advertised.
    pub fn advertise_held(&mut self) -> Vec<[u8; 20]> {
        let Some(o) = self.ordb.as_mut() else {
            return Vec::new();
        };
        let mut held = Vec::new();
        for name in o.store.names() {
            let progress = match o.store.manifest(&name) {
                Some(Manifest::File(m)) => Progress::of(o.store.chunk_count(&name), m.n_chunks()),
                // A live stream's segments are not kept across restarts.
                _ => None,
            };
            if let Some(p) = progress {
                held.push((name, p));
            }
        }
        let mut names = Vec::new();
        for (name, p) in held {
            if let Ok(h) = HashName::new(&name) {
                self.advertise(&h, p);
                names.push(name);
            }
        }
        names
    }

    /// Say (the F flag of our DB_INFO from now on) whether we are a facilitator: a
    /// long-running peer that keeps content alive, to which ORDBs send the queries a FIND
    /// could not place (PROTOCOL.md section 9).
    pub fn set_facilitator(&mut self, facilitator: bool) {
        if let Some(o) = self.ordb.as_mut() {
            o.cfg.facilitator = facilitator;
        }
    }

    /// Facilitators this node (as an ORDB) knows: peers whose DB_INFO had F = 1.
    pub fn ordb_facilitators(&self) -> usize {
        self.ordb
            .as_ref()
            .map_or(0, |o| o.lists.facilitator_count())
    }

    /// DB_DATA cells this node has served from its own store (seeded or downloaded).
    pub fn served_chunks(&self) -> u64 {
        self.counters.get(Count::OrdbChunksServed)
    }

    /// The peers' circuits this node (as an ORDB) knows have `hash_name`, in rotation
    /// order: their count (for tests and inspection).
    pub fn ordb_references(&self, hash_name: &HashName) -> usize {
        self.ordb
            .as_ref()
            .map_or(0, |o| o.lists.refs(hash_name).len())
    }

    /// Sizes of the ORDB state: served streams, splices, list names, list references,
    /// forward circuits, lookups, buffered test replies. All are bounded by
    /// [`OrdbConfig`].
    pub fn ordb_census(&self) -> [usize; 7] {
        self.ordb.as_ref().map_or([0; 7], |o| o.census())
    }

    /// **Test hook**: the answer cells received for [`Command::Query`] queries so far.
    pub fn take_query_replies(&mut self) -> Vec<(QueryId, RelayMsg)> {
        self.ordb
            .as_mut()
            .map_or_else(Vec::new, |o| o.test_replies.drain(..).collect())
    }

    // ---- hooks for the downloader ----------------------------------------------------

    /// Tell our ORDBs we have `progress` of `hash_name` (DB_INFO on every built ORDB
    /// circuit, with our facilitator flag and, for part of a file, HAVE: the chunks our
    /// store holds from its start). Remembered (bounded), and re-sent on ORDB circuits
    /// built later. The downloader calls this at each sixteenth of the file.
    pub(super) fn advertise(&mut self, hash_name: &HashName, progress: Progress) {
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        if o.advertised.len() >= MAX_ADVERTISED
            && !o.advertised.contains_key(hash_name)
            && let Some(k) = o.advertised.keys().next().cloned()
        {
            o.advertised.remove(&k);
        }
        let since = o.advertised.get(hash_name).and_then(|a| a.have);
        let have = name20(hash_name).and_then(|n| held_prefix(&*o.store, &n, since));
        o.advertised
            .insert(hash_name.clone(), Advert { progress, have });
        let msg = DbInfo {
            hash_name: hash_name.clone(),
            progress,
            facilitator: o.cfg.facilitator,
            have,
        };
        for (key, _) in self.ordb_circuit_list() {
            self.circ_send(key, None, msg.clone().into());
        }
    }

    /// Keep one item a download verified, so this node serves it too (files and live
    /// streams alike). A live stream is advertised (an OR_streams_P holder) once its
    /// first segment is held, and every chunk kept serves the streams waiting for it. A
    /// full store (pinned content) only means we do not re-serve.
    pub(super) fn keep_verified_item(&mut self, name: &Name20, v: Verified) {
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        let live = matches!(o.store.manifest(name), Some(Manifest::Live(_)));
        let mut first_segment = false;
        let kept = match v {
            Verified::Manifest(m) => o.store.put_manifest(name, m, false),
            Verified::Hashes(msg) => o.store.put_hashes(name, &msg),
            Verified::Segment(h) => {
                first_segment = live && o.store.segment_range(name).is_none();
                o.store.put_segment(name, &h)
            }
            Verified::Chunk(i, data) => o.store.put_chunk(name, i, &data),
        };
        if kept.is_err() || !live {
            return;
        }
        if first_segment
            && let Ok(h) = HashName::new(name)
            && !o.advertised.contains_key(&h)
        {
            self.advertise(&h, Progress::Full);
        }
        self.pump_name(name);
    }

    /// A content reply (DB_CONNECTED, DB_DATA, DB_HASHES, DB_SEGMENT, DB_END, DB_SENDME)
    /// on one of our circuits that is not an ORDB splice, a stream we serve or a test
    /// query: the downloader's. Dropped (counted) until the downloader takes it: the
    /// downloader replaces this body with a call into its own state.
    pub(super) fn on_content_reply(&mut self, _key: CircKey, _sid: StreamId, _msg: RelayMsg) {
        self.counters.bump(Count::OrdbReplyDropped);
    }

    // ---- commands --------------------------------------------------------------------

    pub(super) fn ordb_command(&mut self, cmd: Command) -> Result<CommandOk, CommandError> {
        if self.ordb.is_none() {
            return Err(CommandError::NotAPeer);
        }
        let now = self.unix_now() as u32;
        match cmd {
            Command::Seed {
                data,
                mime_type,
                key,
            } => {
                let kp = self.content_key(key);
                let seeder = FileSeeder::new(&kp, &mime_type, now, data)
                    .map_err(|_| CommandError::BadContent)?;
                let o = self.ordb.as_mut().ok_or(CommandError::NotAPeer)?;
                let name = store_file(&mut *o.store, &seeder, true).map_err(|_| {
                    o.store.remove(&seeder.hash_name());
                    CommandError::Limit
                })?;
                self.publish(name);
                Ok(CommandOk::Content(name))
            }
            Command::Live {
                mime_type,
                key,
                segment_chunks,
            } => {
                let kp = self.content_key(key);
                let seeder = LiveSeeder::new(kp, &mime_type, now, segment_chunks)
                    .map_err(|_| CommandError::BadContent)?;
                let name = seeder.hash_name();
                let o = self.ordb.as_mut().ok_or(CommandError::NotAPeer)?;
                if o.live.len() >= MAX_LIVE && !o.live.contains_key(&name) {
                    return Err(CommandError::Limit);
                }
                o.store
                    .put_manifest(&name, Manifest::Live(seeder.manifest().clone()), true)
                    .map_err(|_| CommandError::Limit)?;
                o.live.insert(name, seeder);
                self.publish(name);
                Ok(CommandOk::Content(name))
            }
            Command::LivePush { hash_name, chunks } => {
                let o = self.ordb.as_mut().ok_or(CommandError::NotAPeer)?;
                let seeder = o
                    .live
                    .get_mut(&hash_name)
                    .ok_or(CommandError::UnknownContent)?;
                let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
                let seg = seeder
                    .sign_segment(&refs, now)
                    .map_err(|_| CommandError::BadContent)?;
                store_segment(&mut *o.store, &hash_name, &seg).map_err(|_| CommandError::Limit)?;
                self.pump_name(&hash_name);
                Ok(CommandOk::Done)
            }
            Command::Advertise {
                hash_name,
                progress,
            } => {
                self.advertise(&hash_name, progress);
                Ok(CommandOk::Done)
            }
            Command::Query {
                hash_name,
                chunk,
                nb_chunks,
                via,
            } => {
                let circ = self
                    .ordb_circuit_list()
                    .into_iter()
                    .find(|(_, p)| via.is_none_or(|v| v == *p))
                    .map(|(k, _)| k)
                    .ok_or(CommandError::NoSuchCircuit)?;
                let sid = self.fresh_sid(circ, 0).ok_or(CommandError::Limit)?;
                let o = self.ordb.as_mut().ok_or(CommandError::NotAPeer)?;
                let id = QueryId(o.next_test);
                o.next_test += 1;
                o.test_queries
                    .insert((circ, sid), TestQuery { id, data_seen: 0 });
                let q = DbQuery {
                    hash_name,
                    chunk,
                    nb_chunks,
                    counter: 0,
                };
                self.circ_send(circ, Some(sid), q.into());
                Ok(CommandOk::Query(id))
            }
            _ => Err(CommandError::BadPath),
        }
    }

    fn content_key(&mut self, key: Option<[u8; 32]>) -> Ed25519Keypair {
        match key {
            Some(k) => Ed25519Keypair::from_secret(&k),
            None => Ed25519Keypair::generate(&mut self.rng),
        }
    }

    /// Content we publish (seeded, live): DB_INFO 100 % to our ORDBs, which STORE the
    /// name in the DHT with their own records, so those who look it up reach us through
    /// them and never learn who published it (the seed: "each time an ORDB has a new
    /// hash_name it sends a STORE"). A public server (`OrdbConfig::store_own_record`)
    /// STOREs its own record too.
    fn publish(&mut self, name: Name20) {
        let own = self.ordb.as_ref().is_some_and(|o| o.cfg.store_own_record);
        self.announce_whole(name, own);
    }

    /// Content we hold whole: DB_INFO 100 % to our ORDBs and, when `own`, a DHT STORE
    /// of our own record.
    pub(super) fn announce_whole(&mut self, name: Name20, own: bool) {
        let Ok(hash_name) = HashName::new(&name) else {
            return;
        };
        self.advertise(&hash_name, Progress::Full);
        if own {
            self.quiet_store(hash_name, Progress::Full);
        }
    }

    /// STORE `name` toward the closest node, without an event at the end.
    fn quiet_store(&mut self, hash_name: HashName, progress: Progress) {
        let Some(q) = self.next_dht_query_id() else {
            return;
        };
        if let Some(o) = self.ordb.as_mut() {
            o.lookups.insert(q, Lookup::Quiet);
        }
        let cmd = Command::Store {
            hash_name,
            progress,
        };
        if self.dht_command(cmd).is_err()
            && let Some(o) = self.ordb.as_mut()
        {
            o.lookups.remove(&q);
        }
    }

    // ---- sending ---------------------------------------------------------------------

    /// Send `msg` on circuit `key`: toward the last hop on our own circuits, toward the
    /// client on a circuit we are the last hop of. `false` if it could not be sent.
    pub(super) fn circ_send(&mut self, key: CircKey, sid: Option<StreamId>, msg: RelayMsg) -> bool {
        let cell = RelayCell::new(sid, msg);
        #[cfg(test)]
        self.downloads.sent.push((key, cell.clone()));
        match self.circuits.get(&key) {
            Some(Circuit::Client(c)) => {
                if !c.is_built() {
                    return false;
                }
                let hop = c.last_hop();
                self.send_relay_outbound(key, hop, &cell, false).is_some()
            }
            Some(Circuit::Relay(_)) => self.send_relay_inbound(key, &cell).is_some(),
            None => false,
        }
    }

    fn send_end(&mut self, leg: Leg, reason: DbEndReason) {
        if reason == DbEndReason::UNAVAILABLE {
            self.counters.bump(Count::OrdbUnavailable);
        }
        self.circ_send(leg.circ, Some(leg.sid), DbEnd { reason }.into());
    }

    /// A stream id free on `key` (with `bit` set), not used by the DHT either. A client
    /// (the downloader) passes `bit` 0; ORDBs forward with [`FORWARD_SID_BIT`].
    pub(super) fn fresh_sid(&mut self, key: CircKey, bit: u16) -> Option<StreamId> {
        for _ in 0..32 {
            let raw = ((self.rng.next_u32() & 0x7fff) as u16) | bit;
            let Some(sid) = StreamId::new(raw) else {
                continue;
            };
            let taken = self.ordb.as_ref().is_none_or(|o| o.sid_taken(key, sid))
                || self.dht_stream_in_use(key, sid)
                || self.is_download_stream(key, Some(sid));
            if !taken {
                return Some(sid);
            }
        }
        None
    }

    // ---- receiving -------------------------------------------------------------------

    /// A DB_* message on circuit `key` for this node (as its last hop, or on our own
    /// circuit from its last hop).
    pub(super) fn on_ordb_msg(&mut self, key: CircKey, sid: Option<StreamId>, msg: RelayMsg) {
        match (msg, sid) {
            (RelayMsg::DbInfo(m), _) => self.on_db_info(key, m),
            (RelayMsg::DbQuery(m), Some(sid)) => self.on_db_query(key, sid, m),
            (msg, Some(sid)) => self.on_db_stream_msg(key, sid, msg),
            (_, None) => self.counters.bump(Count::OrdbUnexpected),
        }
    }

    /// DB_INFO: a peer on circuit `key` has (part of) a name. Keep the reference; pass
    /// the name on to our ORDBs that were not told (when `pass_on_names`); STORE a name
    /// new to us.
    fn on_db_info(&mut self, key: CircKey, m: DbInfo) {
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        let r = PeerRef::advertised(key, &m);
        let new = o
            .lists
            .add(&m.hash_name, r, o.cfg.max_names, o.cfg.refs_per_name);
        if m.facilitator {
            o.lists.add_facilitator(key, o.cfg.max_facilitators);
        }
        // Passing names on makes cycles of ORDBs that list each other: queries then go
        // round them until the loop counter stops them (PROTOCOL.md §9, "Passing
        // references on"), so it is off unless configured.
        if o.cfg.pass_on_names {
            let ordbs: Vec<CircKey> = self
                .ordb_circuit_list()
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| *k != key)
                .collect();
            let Some(o) = self.ordb.as_mut() else {
                return;
            };
            let tell = o.lists.mark_told(&m.hash_name, &ordbs);
            // Passed on, the reference is us, and we are no facilitator for it.
            let passed = DbInfo {
                facilitator: false,
                ..m.clone()
            };
            for c in tell {
                self.circ_send(c, None, passed.clone().into());
            }
        }
        if new && m.progress != Progress::Full && self.partial_record_ttl().is_some() {
            self.store_for(m.hash_name, m.progress);
        } else if new {
            self.quiet_store(m.hash_name, m.progress);
        }
    }

    /// STORE that peers that told us have part of `name` hold `progress` of it, and
    /// remember when, to keep the record alive while they do (`refresh_stored_for`).
    fn store_for(&mut self, name: HashName, progress: Progress) {
        let now = self.now;
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        if !o.stored_for.contains_key(&name) && o.stored_for.len() >= o.cfg.max_names.max(1) {
            let oldest = o
                .stored_for
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(n, _)| n.clone());
            if let Some(n) = oldest {
                o.stored_for.remove(&n);
            }
        }
        o.stored_for.insert(name.clone(), now);
        self.quiet_store(name, progress);
    }

    /// On the DHT tick: a record of part of a file we STOREd for peers that told us is
    /// STOREd again every half `partial_record_ttl` while one of them is still
    /// downloading over a live circuit to us. Once none is, we stop announcing it
    /// (unless we hold the name ourselves) and the record expires: the peer held the
    /// file, not us, and a peer that finished announces itself as a whole holder
    /// (PROTOCOL.md §8, "Partial records").
    pub(super) fn refresh_stored_for(&mut self) {
        let now = self.now;
        let Some(ttl) = self.partial_record_ttl() else {
            return;
        };
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        let circuits = &self.circuits;
        let mut gone = Vec::new();
        let mut due = Vec::new();
        for (name, at) in &o.stored_for {
            match o.lists.told_progress(name, |c| circuits.contains_key(&c)) {
                None | Some(Progress::Full) => gone.push(name.clone()),
                Some(p) if now >= *at + ttl / 2 => due.push((name.clone(), p)),
                Some(_) => {}
            }
        }
        for name in &gone {
            o.stored_for.remove(name);
        }
        gone.retain(|n| !o.advertised.contains_key(n));
        for name in &gone {
            self.withdraw_announcement(name);
        }
        for (name, progress) in due {
            self.store_for(name, progress);
        }
    }

    fn on_db_query(&mut self, key: CircKey, sid: StreamId, q: DbQuery) {
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        // A new query on a stream already in use replaces what it carried.
        o.serving.remove(&(key, sid));
        if let Some(id) = o.by_down.get(&(key, sid)).copied() {
            self.drop_splice(id, Some(DbEndReason::FINISHED), None);
        }
        if q.counter >= MAX_QUERY_COUNTER {
            self.counters.bump(Count::OrdbLoopStopped);
            self.send_end(Leg { circ: key, sid }, DbEndReason::UNAVAILABLE);
            return;
        }
        if !self.query_allowed(key) {
            self.counters.bump(Count::OrdbRateLimited);
            self.circ_send(
                key,
                Some(sid),
                DbEnd {
                    reason: DbEndReason::UNAVAILABLE,
                }
                .into(),
            );
            return;
        }
        if self.try_serve(key, sid, &q) {
            return;
        }
        self.forward_query(key, sid, q);
    }

    /// Take a token from circuit `key`'s DB_QUERY bucket; `false` when it is empty.
    fn query_allowed(&mut self, key: CircKey) -> bool {
        let now = self.now;
        let Some(o) = self.ordb.as_mut() else {
            return false;
        };
        let (rate, burst) = (u64::from(o.cfg.query_rate), u64::from(o.cfg.query_burst));
        if rate == 0 {
            return true;
        }
        let full = burst.max(1).saturating_mul(1000);
        if !o.buckets.contains_key(&key) && o.buckets.len() >= MAX_BUCKETS {
            // Forget the fullest (an idle circuit's): it restarts full anyway.
            let fullest = o
                .buckets
                .iter()
                .max_by_key(|(_, b)| {
                    let ms = u64::try_from((now - b.last).as_millis()).unwrap_or(u64::MAX);
                    b.milli.saturating_add(ms.saturating_mul(rate))
                })
                .map(|(k, _)| *k);
            if let Some(k) = fullest {
                o.buckets.remove(&k);
            }
        }
        let b = o.buckets.entry(key).or_insert(Bucket {
            milli: full,
            last: now,
        });
        // rate queries/s = rate thousandths per millisecond.
        let ms = u64::try_from((now - b.last).as_millis()).unwrap_or(u64::MAX);
        b.milli = b.milli.saturating_add(ms.saturating_mul(rate)).min(full);
        b.last = now;
        if b.milli < 1000 {
            return false;
        }
        b.milli -= 1000;
        true
    }

    /// Serve `q` from our store if we hold what it asks; `false` to forward it.
    fn try_serve(&mut self, key: CircKey, sid: StreamId, q: &DbQuery) -> bool {
        let leg = Leg { circ: key, sid };
        let Some(name) = name20(&q.hash_name) else {
            return false;
        };
        let Some(o) = self.ordb.as_mut() else {
            return false;
        };
        let Some(manifest) = o.store.manifest(&name) else {
            return self.try_serve_cached(leg, name, q);
        };
        let count = u64::from(q.nb_chunks);
        let first = match &manifest {
            Manifest::File(m) => {
                let first = q.chunk.saturating_sub(1);
                if q.nb_chunks != 0 {
                    let n = m.n_chunks();
                    if first >= n {
                        self.send_end(leg, DbEndReason::UNAVAILABLE);
                        return true;
                    }
                    if !o.store.has_range(&name, first, count.min(n - first)) {
                        return self.try_serve_cached(leg, name, q);
                    }
                }
                first
            }
            Manifest::Live(m) => {
                let per = u64::from(m.segment_chunks.max(1));
                let Some((newest, oldest)) = o.store.segment_range(&name) else {
                    // Nothing published yet: only the publisher waits for it.
                    if o.live.contains_key(&name) || q.nb_chunks == 0 {
                        if q.nb_chunks == 0 {
                            self.serve_info(leg, &manifest);
                        } else {
                            self.start_serving(leg, &manifest, name, 0, count, false);
                        }
                        return true;
                    }
                    return false;
                };
                let newest_len = o
                    .store
                    .segment(&name, newest)
                    .map_or(per, |h| u64::from(h.n_chunks));
                let newest_abs = (u64::from(newest) * per + newest_len).saturating_sub(1);
                let oldest_abs = u64::from(oldest) * per;
                let first = if q.chunk == 0 {
                    // Join: 2 windows behind the newest chunk (a window is a quarter of
                    // the ring), at a segment start, not before what we hold.
                    let window = u64::from(m.ring().size() / 4);
                    let start = (newest_abs + 1).saturating_sub(2 * window);
                    (start - start % per).max(oldest_abs)
                } else {
                    // Resolved nearest to a window behind the newest chunk: a viewer asks
                    // from up to 2 windows (the join) plus what was published since
                    // behind, and at most a window ahead (PROTOCOL.md 6.5); nearest to
                    // the newest itself, a range the join started would name a future
                    // chunk once one more segment is out, and the viewer would wait on it.
                    let window = u64::from(m.ring().size() / 4);
                    let reference = newest_abs.saturating_sub(window);
                    match u32::try_from(q.chunk)
                        .ok()
                        .and_then(|w| m.ring().to_absolute(w, reference))
                    {
                        Some(a) if a >= oldest_abs => a,
                        _ => {
                            self.send_end(leg, DbEndReason::UNAVAILABLE);
                            return true;
                        }
                    }
                };
                // A viewer re-serving serves from a chunk it holds; what it has not got
                // (yet) is asked upstream, where the publisher is (never ourselves: we
                // may be the viewer asking).
                if !o.live.contains_key(&name) && q.nb_chunks != 0 && !o.store.has(&name, first) {
                    return false;
                }
                first
            }
        };
        if q.nb_chunks == 0 {
            self.serve_info(leg, &manifest);
        } else {
            self.start_serving(leg, &manifest, name, first, count, false);
        }
        true
    }

    /// Serve `q` from what we relayed of the file, if we kept all the range (or the
    /// manifest, for an info query); `false` to forward it.
    fn try_serve_cached(&mut self, leg: Leg, name: Name20, q: &DbQuery) -> bool {
        let Some(o) = self.ordb.as_mut() else {
            return false;
        };
        let Some(manifest) = o.cache.manifest(&name) else {
            return false;
        };
        let Manifest::File(m) = &manifest else {
            return false;
        };
        let (first, n) = (q.chunk.saturating_sub(1), m.n_chunks());
        let count = u64::from(q.nb_chunks).min(n.saturating_sub(first));
        if q.nb_chunks != 0 && (count == 0 || !o.cache.has_range(&name, first, count)) {
            if count == 0 || !self.fetching(&name, first, first + count) {
                return false;
            }
            // The range is on its way here for an earlier query: served as it arrives.
            self.counters.bump(Count::OrdbCacheJoined);
        }
        self.counters.bump(Count::OrdbCacheHit);
        if q.nb_chunks == 0 {
            self.serve_info(leg, &manifest);
        } else {
            self.start_serving(leg, &manifest, name, first, count, true);
        }
        true
    }

    /// Chunks `first..end` of file `name` are in the relay cache or on their way into it:
    /// a splice of ours is fetching a range that covers them, and what it has relayed of
    /// them so far is cached (a name whose manifest is not cached caches nothing, so
    /// its chunks never are).
    fn fetching(&self, name: &Name20, first: u64, end: u64) -> bool {
        let Some(o) = self.ordb.as_ref() else {
            return false;
        };
        o.splices.values().any(|s| {
            let from = s.query.chunk.saturating_sub(1);
            let to = from.saturating_add(u64::from(s.query.nb_chunks));
            s.up.is_some()
                && matches!(s.check, Check::File(_))
                && s.query.hash_name.as_bytes() == name.as_slice()
                && from <= first
                && end <= to
                && (s.upto <= first || o.cache.has_range(name, first, s.upto.min(end) - first))
        })
    }

    /// `name` is a file: its manifest is in our store or relay cache, or a reference said
    /// it holds part of it.
    fn known_file(&self, name: &HashName) -> bool {
        let Some(o) = self.ordb.as_ref() else {
            return false;
        };
        let file = |m: Option<Manifest>| matches!(m, Some(Manifest::File(_)));
        name20(name).is_some_and(|n| file(o.store.manifest(&n)) || file(o.cache.manifest(&n)))
            || o.lists.has_partial(name)
    }

    /// The manifest alone, then the end of the stream.
    fn serve_info(&mut self, leg: Leg, manifest: &Manifest) {
        if self.circ_send(leg.circ, Some(leg.sid), manifest.to_db_connected().into()) {
            self.send_end(leg, DbEndReason::FINISHED);
        }
    }

    fn start_serving(
        &mut self,
        leg: Leg,
        manifest: &Manifest,
        name: Name20,
        first: u64,
        count: u64,
        cached: bool,
    ) {
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        if o.serving.len() >= o.cfg.max_serving {
            self.counters.bump(Count::OrdbRefused);
            self.send_end(leg, DbEndReason::UNAVAILABLE);
            return;
        }
        o.serving.insert(
            (leg.circ, leg.sid),
            Serving {
                cursor: ServeCursor::new(name, first, count),
                window: STREAM_WINDOW,
                cached,
                last_sent: 0,
            },
        );
        // The manifest first, on every stream: each answer verifies on its own.
        if !self.circ_send(leg.circ, Some(leg.sid), manifest.to_db_connected().into()) {
            if let Some(o) = self.ordb.as_mut() {
                o.serving.remove(&(leg.circ, leg.sid));
            }
            return;
        }
        self.pump(leg);
    }

    /// A stream served from the cache whose next chunks a splice is still fetching.
    fn awaits_fetch(&self, leg: Leg) -> bool {
        let Some(s) = self
            .ordb
            .as_ref()
            .and_then(|o| o.serving.get(&(leg.circ, leg.sid)))
        else {
            return false;
        };
        let (next, end) = s.cursor.position();
        s.cached && self.fetching(s.cursor.name(), next, end)
    }

    /// Send what the stream's window and its link allow (what the link does not take
    /// now goes when it drains, rarest first: [`Node::serve_on_drained`]).
    fn pump(&mut self, leg: Leg) {
        while self.serve_room(leg.circ) && self.pump_one(leg) {}
    }

    /// Send the stream's next cell; `false` when it has nothing to send now (its window
    /// is closed, it waits for chunks) or it ended.
    fn pump_one(&mut self, leg: Leg) -> bool {
        let step = {
            let Some(o) = self.ordb.as_deref_mut() else {
                return false;
            };
            let Some(s) = o.serving.get_mut(&(leg.circ, leg.sid)) else {
                return false;
            };
            let next = s.cursor.position().0;
            let mut step = if s.cached {
                s.cursor.next_msg(&mut o.cache, s.window)
            } else {
                s.cursor.next_msg(&mut *o.store, s.window)
            };
            if let ServeStep::Send { data: true, msg } = &mut step {
                s.window = s.window.saturating_sub(1);
                o.sent_seq += 1;
                s.last_sent = o.sent_seq;
                o.tally.note(s.cursor.name(), next);
                self.counters.bump(Count::OrdbChunksServed);
                // What a tampering ORDB relays, it serves from its cache too.
                if s.cached
                    && o.cfg.tamper_relayed_data
                    && let RelayMsg::DbData(d) = msg
                {
                    tamper(d);
                }
            }
            step
        };
        match step {
            ServeStep::Send { msg, .. } => {
                if let RelayMsg::DbData(d) = &msg {
                    self.counters
                        .add(Count::OrdbBytesServed, d.data.len() as u64);
                }
                if self.circ_send(leg.circ, Some(leg.sid), msg) {
                    return true;
                }
                if let Some(o) = self.ordb.as_mut() {
                    o.serving.remove(&(leg.circ, leg.sid));
                }
                false
            }
            ServeStep::Blocked | ServeStep::Waiting => false,
            ServeStep::Missing if self.awaits_fetch(leg) => false,
            ServeStep::Done | ServeStep::Missing => {
                if let Some(o) = self.ordb.as_mut() {
                    o.serving.remove(&(leg.circ, leg.sid));
                }
                let reason = if step == ServeStep::Done {
                    DbEndReason::FINISHED
                } else {
                    DbEndReason::UNAVAILABLE
                };
                self.send_end(leg, reason);
                false
            }
        }
    }

    /// The link a stream we serve on circuit `circ` leaves by: our first hop's, or the
    /// previous hop's of a circuit we are the last hop of.
    fn serve_link(&self, circ: CircKey) -> Option<ConnId> {
        match self.circuits.get(&circ)? {
            Circuit::Client(c) => Some(c.link),
            Circuit::Relay(r) => Some(r.prev.conn),
        }
    }

    /// Whether a stream on `circ` may queue another cell: its link holds less than
    /// [`SERVE_QUEUE_BYTES`] (a circuit gone has room: sending fails and ends the stream).
    fn serve_room(&self, circ: CircKey) -> bool {
        self.serve_link(circ)
            .is_none_or(|conn| self.link_room_to_serve(conn))
    }

    /// Whether link `conn` holds less than [`SERVE_QUEUE_BYTES`].
    fn link_room_to_serve(&self, conn: ConnId) -> bool {
        self.link_queued(conn) < SERVE_QUEUE_BYTES
    }

    /// `conn` drained: fill it again from the streams we serve on it, the least served
    /// part of a name first (the one sent longest ago among equals), while it has room.
    pub(super) fn serve_on_drained(&mut self, conn: ConnId) {
        let Some(o) = self.ordb.as_ref().filter(|o| !o.serving.is_empty()) else {
            return;
        };
        let mut ready: Vec<Leg> = o
            .serving
            .iter()
            .filter(|(_, s)| s.window > 0)
            .map(|(k, _)| Leg {
                circ: k.0,
                sid: k.1,
            })
            .filter(|leg| self.serve_link(leg.circ) == Some(conn))
            .collect();
        while !ready.is_empty() && self.link_room_to_serve(conn) {
            let Some(o) = self.ordb.as_ref() else {
                return;
            };
            let rank = |leg: &Leg| {
                o.serving.get(&(leg.circ, leg.sid)).map_or((0, 0), |s| {
                    let next = s.cursor.position().0;
                    (o.tally.count(s.cursor.name(), next), s.last_sent)
                })
            };
            let Some(i) = (0..ready.len()).min_by_key(|&i| rank(&ready[i])) else {
                return;
            };
            let leg = ready[i];
            if !self.pump_one(leg) {
                ready.swap_remove(i);
            }
        }
    }

    /// New content for `name` (a live segment): serve the streams waiting for it.
    fn pump_name(&mut self, name: &Name20) {
        self.pump_streams(name, false);
    }

    /// Streams served from the cache for `name`: go on with what has arrived, or end
    /// when it will not.
    fn pump_cached(&mut self, name: &Name20) {
        self.pump_streams(name, true);
    }

    fn pump_streams(&mut self, name: &Name20, only_cached: bool) {
        let legs: Vec<Leg> = self.ordb.as_ref().map_or_else(Vec::new, |o| {
            o.serving
                .iter()
                .filter(|(_, s)| s.cursor.name() == name && (s.cached || !only_cached))
                .map(|(k, _)| Leg {
                    circ: k.0,
                    sid: k.1,
                })
                .collect()
        });
        for leg in legs {
            self.pump(leg);
        }
    }

    // ---- forwarding ------------------------------------------------------------------

    fn forward_query(&mut self, key: CircKey, sid: StreamId, mut q: DbQuery) {
        let down = Leg { circ: key, sid };
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        if o.splices.len() >= o.cfg.max_splices {
            self.counters.bump(Count::OrdbRefused);
            self.send_end(down, DbEndReason::UNAVAILABLE);
            return;
        }
        let q_counter = q.counter;
        q.counter = q.counter.saturating_add(1);
        let id = o.next_splice;
        o.next_splice += 1;
        let name = q.hash_name.clone();
        let first = q.chunk.saturating_sub(1);
        o.splices.insert(
            id,
            Splice {
                down,
                up: None,
                query: q,
                candidates: Vec::new(),
                tried: alloc::vec![key],
                credit: STREAM_WINDOW,
                relayed: 0,
                upto: first,
                attempts: 0,
                check: Check::Manifest,
            },
        );
        o.by_down.insert((key, sid), id);
        if self.forward_from_lists(id) {
            return;
        }
        if q_counter > 0 && self.known_file(&name) {
            // Another ORDB asked us for chunks of a file that neither we nor the holders
            // that told us hold: the asker tries its next holder. Asking on would send
            // the query round partial holders (PROTOCOL.md §9, step 3).
            self.counters.bump(Count::OrdbPartialMiss);
            self.drop_splice(id, None, Some(DbEndReason::UNAVAILABLE));
            return;
        }
        // Nobody in our lists: ask the DHT (one lookup per name at a time).
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        for l in o.lookups.values_mut() {
            if let Lookup::Find { name: n, splices } = l
                && *n == name
            {
                splices.push(id);
                return;
            }
        }
        let Some(qid) = self.next_dht_query_id() else {
            self.drop_splice(id, None, Some(DbEndReason::UNAVAILABLE));
            return;
        };
        if let Some(o) = self.ordb.as_mut() {
            o.lookups.insert(
                qid,
                Lookup::Find {
                    name: name.clone(),
                    splices: alloc::vec![id],
                },
            );
        }
        if self.dht_command(Command::FindValue(name)).is_err() {
            if let Some(o) = self.ordb.as_mut() {
                o.lookups.remove(&qid);
            }
            self.counters.bump(Count::OrdbRefused);
            self.drop_splice(id, None, Some(DbEndReason::UNAVAILABLE));
        }
    }

    /// Forward splice `id` on the first valid circuit of the name's list; `false` when
    /// the list has none.
    fn forward_from_lists(&mut self, id: u64) -> bool {
        let Some(name) = self
            .ordb
            .as_ref()
            .and_then(|o| o.splices.get(&id))
            .map(|s| s.query.hash_name.clone())
        else {
            return true;
        };
        let file = self.known_file(&name);
        for _ in 0..8 {
            let Some(o) = self.ordb.as_deref_mut() else {
                return false;
            };
            let Some(s) = o.splices.get(&id) else {
                return true;
            };
            let skip = s.tried.clone();
            let wanted = Wanted {
                end: (s.query.chunk.saturating_sub(1)).saturating_add(s.query.nb_chunks.into()),
                now: self.now,
                direct_only: s.relayed() && file,
            };
            let circuits = &self.circuits;
            let valid = |c: CircKey| match circuits.get(&c) {
                Some(Circuit::Client(cc)) => cc.is_built() || o.fwd.contains_key(&c),
                Some(Circuit::Relay(_)) => true,
                None => false,
            };
            let Some(r) = o.lists.take(&name, valid, &skip, wanted) else {
                return false;
            };
            if self.send_up(id, r.circ) {
                return true;
            }
        }
        false
    }

    /// Send splice `id`'s query on `circ` (now, or once that forward circuit is built).
    fn send_up(&mut self, id: u64, circ: CircKey) -> bool {
        let Some(sid) = self.fresh_sid(circ, FORWARD_SID_BIT) else {
            return false;
        };
        let Some(o) = self.ordb.as_mut() else {
            return false;
        };
        let Some(s) = o.splices.get_mut(&id) else {
            return false;
        };
        if let Some(old) = s.up.take() {
            o.by_up.remove(&(old.circ, old.sid));
        }
        s.up = Some(Leg { circ, sid });
        s.check = Check::Manifest;
        s.tried.push(circ);
        s.attempts = s.attempts.saturating_add(1);
        let q = s.query.clone();
        o.by_up.insert((circ, sid), id);
        let waiting = o.fwd.get(&circ).is_some_and(|f| !f.built);
        if waiting {
            return true;
        }
        if self.circ_send(circ, Some(sid), q.into()) {
            return true;
        }
        if let Some(o) = self.ordb.as_mut()
            && let Some(s) = o.splices.get_mut(&id)
        {
            s.up = None;
            o.by_up.remove(&(circ, sid));
        }
        false
    }

    /// Try the next way up for splice `id` (another list reference, another holder);
    /// DB_END UNAVAILABLE when none is left.
    fn retry_up(&mut self, id: u64) {
        let attempts_left = {
            let Some(o) = self.ordb.as_mut() else {
                return;
            };
            let Some(s) = o.splices.get_mut(&id) else {
                return;
            };
            if let Some(old) = s.up.take() {
                o.by_up.remove(&(old.circ, old.sid));
            }
            let max = if s.relayed() {
                MAX_ATTEMPTS_RELAYED
            } else {
                MAX_ATTEMPTS
            };
            s.attempts < max
        };
        if attempts_left {
            loop {
                let next = self
                    .ordb
                    .as_mut()
                    .and_then(|o| o.splices.get_mut(&id))
                    .and_then(|s| (!s.candidates.is_empty()).then(|| s.candidates.remove(0)));
                let Some(c) = next else {
                    break;
                };
                if self.circuits.contains_key(&c) && self.send_up(id, c) {
                    return;
                }
            }
            if self.forward_from_lists(id) {
                return;
            }
        }
        self.drop_splice(id, None, Some(DbEndReason::UNAVAILABLE));
    }

    /// Forget splice `id`; send DB_END `up_reason` upstream and `down_reason` to the
    /// requester when given.
    fn drop_splice(
        &mut self,
        id: u64,
        up_reason: Option<DbEndReason>,
        down_reason: Option<DbEndReason>,
    ) {
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        let Some(s) = o.splices.remove(&id) else {
            return;
        };
        o.by_down.remove(&(s.down.circ, s.down.sid));
        if let Some(up) = s.up {
            o.by_up.remove(&(up.circ, up.sid));
        }
        for l in o.lookups.values_mut() {
            if let Lookup::Find { splices, .. } = l {
                splices.retain(|x| *x != id);
            }
        }
        if let (Some(r), Some(up)) = (up_reason, s.up) {
            self.send_end(up, r);
        }
        if let Some(r) = down_reason {
            self.send_end(s.down, r);
        }
        // Streams waiting on this fetch end now unless another covers them.
        if let Some(name) = name20(&s.query.hash_name) {
            self.pump_cached(&name);
        }
    }

    /// A lookup ended. `true` when it was one of ours (no event for it).
    pub(super) fn ordb_lookup_done(&mut self, q: u64, holders: &[PeerRecord]) -> bool {
        let me = self.peer_record().map(|r| r.id);
        let Some(o) = self.ordb.as_mut() else {
            return false;
        };
        let Some(lookup) = o.lookups.remove(&q) else {
            return false;
        };
        let Lookup::Find { name, splices } = lookup else {
            return true;
        };
        let want = o.cfg.find_value_peers;
        let found: Vec<PeerRecord> = holders
            .iter()
            .filter(|h| Some(h.id) != me && !self.is_suspected(&h.id))
            .take(want)
            .cloned()
            .collect();
        let mut circs = Vec::new();
        for h in &found {
            if let Some(c) = self.fwd_circ_to(h) {
                circs.push(c);
                // The seed's OR_ORDB: the holder joins the name's list.
                if let Some(o) = self.ordb.as_mut() {
                    let r = PeerRef::found(c);
                    o.lists.add(&name, r, o.cfg.max_names, o.cfg.refs_per_name);
                }
            }
        }
        for id in splices {
            if let Some(s) = self.ordb.as_mut().and_then(|o| o.splices.get_mut(&id)) {
                s.candidates = circs
                    .iter()
                    .copied()
                    .filter(|c| !s.tried.contains(c))
                    .collect();
            }
            if circs.is_empty() {
                // The FIND was unsuccessful: "the ORDB sends the request to several
                // facilitators" (seed, "Requests").
                self.offer_to_facilitators(id);
            }
            self.retry_up(id);
        }
        true
    }

    /// Make the facilitators we know the candidates of splice `id` (each tried in turn;
    /// a facilitator that does not have it answers UNAVAILABLE and the next is tried).
    fn offer_to_facilitators(&mut self, id: u64) {
        let Some(o) = self.ordb.as_deref_mut() else {
            return;
        };
        let Some(s) = o.splices.get_mut(&id) else {
            return;
        };
        let circuits = &self.circuits;
        let valid = |c: CircKey| match circuits.get(&c) {
            Some(Circuit::Client(cc)) => cc.is_built(),
            Some(Circuit::Relay(_)) => true,
            None => false,
        };
        let n = o.cfg.facilitator_tries;
        let found = o.lists.take_facilitators(n, valid, &s.tried);
        if !found.is_empty() {
            self.counters.bump(Count::OrdbToFacilitator);
            // The facilitators get the splice's remaining attempts.
            s.attempts = 0;
        }
        s.candidates = found;
    }

    /// A one-hop CREATE_FAST circuit to holder `h` (an existing one is reused).
    fn fwd_circ_to(&mut self, h: &PeerRecord) -> Option<CircKey> {
        let o = self.ordb.as_ref()?;
        if let Some((k, _)) = o.fwd.iter().find(|(_, f)| f.peer == h.id) {
            return Some(*k);
        }
        if o.fwd.len() >= o.cfg.max_forward_circuits {
            // The oldest idle one makes room.
            let idle = o
                .fwd
                .keys()
                .find(|k| !o.by_up.keys().any(|(c, _)| c == *k))
                .copied();
            match idle {
                Some(k) => {
                    self.destroy_circuit(k, crate::cells::channel::DestroyReason::FINISHED, None)
                }
                None => {
                    self.counters.bump(Count::OrdbRefused);
                    return None;
                }
            }
        }
        let handle = self
            .start_circuit(alloc::vec![target_of(h)], FirstHop::Fast)
            .ok()?;
        let key = *self.client_circs.get(&handle)?;
        self.ordb.as_mut()?.fwd.insert(
            key,
            FwdCirc {
                peer: h.id,
                built: false,
            },
        );
        Some(key)
    }

    /// A DB_* answer or control message on a stream.
    fn on_db_stream_msg(&mut self, key: CircKey, sid: StreamId, msg: RelayMsg) {
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        let k = (key, sid);
        if let Some(s) = o.serving.get_mut(&k) {
            match msg {
                RelayMsg::DbSendme(m) => {
                    s.window = s.window.saturating_add(m.chunks).min(STREAM_WINDOW);
                    self.pump(Leg { circ: key, sid });
                }
                RelayMsg::DbEnd(_) => {
                    o.serving.remove(&k);
                }
                _ => self.counters.bump(Count::OrdbUnexpected),
            }
            return;
        }
        if let Some(id) = o.by_down.get(&k).copied() {
            match msg {
                RelayMsg::DbSendme(m) => {
                    let Some(s) = o.splices.get_mut(&id) else {
                        return;
                    };
                    s.credit = s.credit.saturating_add(m.chunks).min(STREAM_WINDOW);
                    if let Some(up) = s.up {
                        self.circ_send(up.circ, Some(up.sid), m.into());
                    }
                }
                RelayMsg::DbEnd(_) => self.drop_splice(id, Some(DbEndReason::FINISHED), None),
                _ => self.counters.bump(Count::OrdbUnexpected),
            }
            return;
        }
        if let Some(id) = o.by_up.get(&k).copied() {
            self.relay_down(id, msg);
            return;
        }
        if o.test_queries.contains_key(&k) {
            self.on_test_reply(k, msg);
            return;
        }
        self.on_content_reply(key, sid, msg);
    }

    /// An answer cell from upstream of splice `id`: checked, then to the requester.
    fn relay_down(&mut self, id: u64, msg: RelayMsg) {
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        let tamper_data = o.cfg.tamper_relayed_data;
        let limits = o.cfg.download.limits;
        let Some(s) = o.splices.get_mut(&id) else {
            return;
        };
        let down = s.down;
        let new = match check_answer(&mut s.check, &s.query.hash_name, &msg, limits) {
            Err(e) => {
                self.on_bad_answer(id, e);
                return;
            }
            Ok(new) => new,
        };
        // What this cell verified goes to the cache: itself, or the block it completed.
        let mut verified = false;
        if let Check::File(v) = &mut s.check {
            if new {
                cache_verified(&mut o.cache, &*o.store, v, &msg);
                if let RelayMsg::DbData(d) = &msg {
                    verified = true;
                    s.upto = s.upto.max(index_from_wire(d.chunk).map_or(0, |i| i + 1));
                }
            }
            let name = v.hash_name();
            while let Some(r) = v.take_released() {
                if let Some(i) = cache_released(&mut o.cache, &name, r) {
                    verified = true;
                    s.upto = s.upto.max(i + 1);
                }
            }
        }
        let msg = match msg {
            RelayMsg::DbEnd(e) => {
                if e.reason == DbEndReason::UNAVAILABLE && s.relayed == 0 {
                    // That way up does not have it after all: try another. For a file's
                    // chunks, remember the miss (the range is not asked that way again for
                    // a while); a live stream's chunk numbers turn round, so not for those.
                    let (name, first) = (s.query.hash_name.clone(), s.query.chunk);
                    if let Some(up) = s.up
                        && s.query.nb_chunks > 0
                        && self.known_file(&name)
                        && let Some(o) = self.ordb.as_mut()
                    {
                        o.lists
                            .missed(&name, up.circ, first.saturating_sub(1), self.now);
                    }
                    self.retry_up(id);
                } else {
                    self.drop_splice(id, None, Some(e.reason));
                }
                return;
            }
            RelayMsg::DbData(mut d) => {
                if s.credit == 0 {
                    self.counters.bump(Count::OrdbWindowViolation);
                    self.drop_splice(
                        id,
                        Some(DbEndReason::FINISHED),
                        Some(DbEndReason::DESTROYED),
                    );
                    return;
                }
                s.credit -= 1;
                if tamper_data {
                    tamper(&mut d);
                }
                RelayMsg::DbData(d)
            }
            m @ (RelayMsg::DbConnected(_) | RelayMsg::DbHashes(_) | RelayMsg::DbSegment(_)) => m,
            _ => {
                self.counters.bump(Count::OrdbUnexpected);
                return;
            }
        };
        s.relayed += 1;
        let name = name20(&s.query.hash_name);
        if !self.circ_send(down.circ, Some(down.sid), msg) {
            self.drop_splice(id, Some(DbEndReason::FINISHED), None);
        }
        if let (true, Some(name)) = (verified, name) {
            self.pump_cached(&name);
        }
    }

    /// Splice `id`'s upstream answered something that does not verify. Tampering: the
    /// upstream circuit is destroyed (whatever else rides on it is resumed elsewhere) and
    /// its peer, when we connected to it as a holder, convicted. The requester gets DB_END
    /// DESTROYED and resumes the GET on another way; the bad cell is never relayed.
    fn on_bad_answer(&mut self, id: u64, e: VerifyError) {
        let Some(up) = self
            .ordb
            .as_ref()
            .and_then(|o| o.splices.get(&id))
            .and_then(|s| s.up)
        else {
            return;
        };
        self.drop_splice(id, None, Some(DbEndReason::DESTROYED));
        if !e.is_tampering() {
            // An answer that skips its proofs (or whose proofs we forgot): not relayed.
            self.counters.bump(Count::OrdbRelayUnproven);
            self.send_end(up, DbEndReason::FINISHED);
            return;
        }
        self.counters.bump(Count::OrdbTamperCaught);
        if let Some(peer) = self
            .ordb
            .as_ref()
            .and_then(|o| o.fwd.get(&up.circ))
            .map(|f| f.peer)
        {
            self.convict(peer);
        }
        self.destroy_circuit(up.circ, DestroyReason::PROTOCOL, None);
    }

    fn on_test_reply(&mut self, k: (CircKey, StreamId), msg: RelayMsg) {
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        let Some(t) = o.test_queries.get_mut(&k) else {
            return;
        };
        let id = t.id;
        let mut sendme = false;
        match &msg {
            RelayMsg::DbData(_) => {
                t.data_seen += 1;
                if t.data_seen >= SENDME_CHUNKS {
                    t.data_seen = 0;
                    sendme = true;
                }
            }
            RelayMsg::DbEnd(_) => {
                o.test_queries.remove(&k);
            }
            _ => {}
        }
        if o.test_replies.len() >= MAX_TEST_REPLIES {
            self.counters.bump(Count::OrdbReplyDropped);
        } else {
            o.test_replies.push_back((id, msg));
        }
        if sendme {
            let m = DbSendme {
                chunks: SENDME_CHUNKS,
            };
            self.circ_send(k.0, Some(k.1), m.into());
        }
    }

    // ---- circuit hooks ---------------------------------------------------------------

    /// One of our circuits is built: a forward circuit sends the queries waiting for it;
    /// an ORDB circuit learns what we advertised.
    pub(super) fn on_ordb_circuit_built(&mut self, key: CircKey) {
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        if let Some(f) = o.fwd.get_mut(&key) {
            f.built = true;
            let waiting: Vec<(StreamId, u64)> = o
                .by_up
                .iter()
                .filter(|((c, _), _)| *c == key)
                .map(|((_, s), id)| (*s, *id))
                .collect();
            for (sid, id) in waiting {
                let q = self
                    .ordb
                    .as_ref()
                    .and_then(|o| o.splices.get(&id))
                    .map(|s| s.query.clone());
                if let Some(q) = q
                    && !self.circ_send(key, Some(sid), q.into())
                {
                    self.retry_up(id);
                }
            }
            return;
        }
        if self.ordb_circuit_list().iter().any(|(k, _)| *k == key) {
            let Some(o) = self.ordb.as_ref() else {
                return;
            };
            let facilitator = o.cfg.facilitator;
            let infos: Vec<DbInfo> = o
                .advertised
                .iter()
                .map(|(n, a)| DbInfo {
                    hash_name: n.clone(),
                    progress: a.progress,
                    facilitator,
                    have: a.have,
                })
                .collect();
            for m in infos {
                self.circ_send(key, None, m.into());
            }
        }
    }

    /// A circuit (ours or one we are a hop of) closed: end what rode on it.
    pub(super) fn on_ordb_circuit_gone(&mut self, key: CircKey) {
        let Some(o) = self.ordb.as_mut() else {
            return;
        };
        o.fwd.remove(&key);
        o.buckets.remove(&key);
        o.serving.retain(|k, _| k.0 != key);
        o.test_queries.retain(|k, _| k.0 != key);
        let downs: Vec<u64> = o
            .by_down
            .iter()
            .filter(|(k, _)| k.0 == key)
            .map(|(_, id)| *id)
            .collect();
        let ups: Vec<u64> = o
            .by_up
            .iter()
            .filter(|(k, _)| k.0 == key)
            .map(|(_, id)| *id)
            .collect();
        for id in downs {
            // The requester is gone: the server can stop.
            self.drop_splice(id, Some(DbEndReason::FINISHED), None);
        }
        for id in ups {
            let relayed = self
                .ordb
                .as_ref()
                .and_then(|o| o.splices.get(&id))
                .map(|s| s.relayed);
            match relayed {
                Some(0) => self.retry_up(id),
                Some(_) => self.drop_splice(id, None, Some(DbEndReason::DESTROYED)),
                None => {}
            }
        }
        if let Some(o) = self.ordb.as_mut() {
            o.by_up.retain(|k, _| k.0 != key);
        }
    }
}

/// Chunks of file `name` our store holds from the start, counted on from `since` (what we
/// advertised last: a download's store only grows); `None` for the whole file, a live
/// stream or an unknown name (DB_INFO's HAVE is for partial files only).
fn held_prefix(store: &dyn ChunkStore, name: &Name20, since: Option<u32>) -> Option<u32> {
    let Some(Manifest::File(m)) = store.manifest(name) else {
        return None;
    };
    let n = m.n_chunks();
    let mut i = since.map_or(0, u64::from).min(n);
    while i < n && store.has(name, i) {
        i += 1;
    }
    (i < n).then(|| u32::try_from(i).unwrap_or(u32::MAX))
}

/// Check one answer cell against what the stream proved so far (`Ok` for what is not
/// checked); a DB_CONNECTED starts the check. `Ok(true)`: a file's manifest, hash list
/// or chunk newly verified (worth caching).
fn check_answer(
    check: &mut Check,
    hash_name: &HashName,
    msg: &RelayMsg,
    limits: VerifyLimits,
) -> Result<bool, VerifyError> {
    let new = |a: Accepted| a == Accepted::New;
    match (msg, &mut *check) {
        (RelayMsg::DbConnected(c), _) => {
            *check = match FileVerifier::for_relay(hash_name.as_bytes(), c, limits) {
                Ok(Some(v)) => Check::File(Box::new(v)),
                Ok(None) => Check::Unchecked,
                Err(e) if e.is_tampering() => return Err(e),
                Err(_) => Check::Unchecked,
            };
            Ok(matches!(check, Check::File(_)))
        }
        (RelayMsg::DbHashes(h), Check::File(v)) => v.accept_hashes(h).map(new),
        (RelayMsg::DbData(d), Check::File(v)) => v.accept_db_data(d).map(new),
        (RelayMsg::DbHashes(_) | RelayMsg::DbData(_), Check::Manifest) => Err(
            VerifyError::BadManifest("proofs or data before DB_CONNECTED"),
        ),
        _ => Ok(false),
    }
}

/// Keep a verified answer cell of file `v` in the relay cache. The manifest is cached
/// only when the store does not hold the file (then the store serves it); hashes and
/// chunks of a name whose manifest is not cached are refused, so the store is looked
/// at once per answer, not per cell. A cache that refuses only forgets.
fn cache_verified(
    cache: &mut RelayCache,
    store: &dyn ChunkStore,
    v: &FileVerifier,
    msg: &RelayMsg,
) {
    let name = v.hash_name();
    let _ = match msg {
        RelayMsg::DbConnected(_) if store.manifest(&name).is_none() => {
            cache.put_manifest(&name, Manifest::File(v.manifest().clone()), false)
        }
        RelayMsg::DbHashes(h) => cache.put_hashes(&name, h),
        RelayMsg::DbData(d) => match index_from_wire(d.chunk) {
            Some(i) => cache.put_chunk(&name, i, &d.data),
            None => return,
        },
        _ => return,
    };
}

/// Keep what a block checked as a whole released in the relay cache (the manifest is
/// already there when the cache takes the name); the chunk's index when it was a chunk.
fn cache_released(cache: &mut RelayCache, name: &Name20, r: Released) -> Option<u64> {
    match r {
        Released::Hashes(h) => {
            let _ = cache.put_hashes(name, &h);
            None
        }
        Released::Chunk(i, data) => {
            let _ = cache.put_chunk(name, i, &data);
            Some(i)
        }
    }
}

/// A tampering ORDB's change to a chunk (test and simulation only).
fn tamper(d: &mut DbData) {
    match d.data.first_mut() {
        Some(b) => *b ^= 0xff,
        None => d.signature.0[7] ^= 0xff,
    }
}

#[cfg(test)]
mod tests;
