//! The Peersm peer role inside the node (seed, "DHT and Bridges", "Boostrap and peers
//! discovery", "Security"): serving DHT requests at the last hop of a circuit, running
//! lookups over one-hop CREATE_FAST circuits, bootstrapping through a bridge, keeping the
//! ORDB circuits and PINGing the routing table.
//!
//! Decisions (see also PROTOCOL.md, "Peersm DHT in the node"):
//! - **Who enters a routing table.** Only peers whose id a link proved: a peer that
//!   answered one of our requests over a circuit we built to it (the link's CERTS proved
//!   its id at that address). A DB_FIND_PEER sender is *verified* first: we build our own
//!   circuit to the address it claims and PING it; only its answer inserts it (and, at a
//!   bridge, registers it). Anonymous askers of FIND_NODE/FIND_VALUE are never inserted,
//!   and peers merely listed in a DHT_FOUND are only lookup candidates.
//! - **End of an answer.** A DHT_FOUND answer is complete once it listed 8 peers or with
//!   a DHT_FOUND listing none (sent after the last one when fewer than 8 were listed).
//! - **ORDB circuits are two hops.** CREATE_FAST to a peer P1, EXTEND2 (ntor, with the
//!   key from P2's PEER record) to another known peer P2, preferably one we have no link
//!   to; P2 is the ORDB, and it only sees P1. They are circuits of their own (a fresh
//!   circuit through P1, not the one-hop lookup circuit to P1), so lookups and ORDB
//!   traffic never share a circuit.
//! - **Rate limits** apply per previous-hop link (circuits on one link share a bucket).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::net::SocketAddr;

use rand_core::Rng;

use super::api::{BootstrapVia, Command, CommandError, Event, FirstHop, QueryId, RelayTarget};
use super::config::PeersmConfig;
use super::counters::Count;
use super::keys::NodeKeys;
use super::{Node, Timer};
use crate::Instant;
use crate::cells::channel::DestroyReason;
use crate::cells::relay::{
    DbFindPeer, DbFoundPeer, DhtFindNode, DhtFindValue, DhtFound, DhtPing, DhtStore, FoundKind,
    HashName, MAX_DATA_LEN, MAX_FOUND_PEERS, PeerRecord, Progress, RelayCell, RelayMsg, StreamId,
};
use crate::circuit::{CircKey, Circuit};
use crate::crypto::identity::PeerId;
use crate::dht::{
    Action, InsertResult, Key, Lookup, LookupKind, PingOutcome, RateLimiter, RecordStore,
    RoutingTable,
};

/// How often maintenance runs (PINGs due, deadlines, records, ORDB replacement).
const TICK: core::time::Duration = core::time::Duration::from_secs(30);
/// A peer caught this many times answering "never closer" is no longer asked.
const SUSPECT_LIMIT: u32 = 2;
/// Answering peers closer than a "never closer" peer for it to be caught.
const SUSPECT_MARGIN: usize = 3;
/// Peers tracked as suspects at most.
const MAX_SUSPECTS: usize = 1024;
/// Records heard of in DHT_FOUND answers kept as ORDB candidates at most.
const MAX_HEARD: usize = 64;
/// Times a bootstrap asks its bridge again when the peer it gave never answered.
const BRIDGE_RETRIES: u8 = 3;
/// Fellow bridges a bridge keeps at most.
const MAX_FELLOWS: usize = 16;
/// DHT_STOREs handed to a newcomer to our table at most (see `hand_over_records`).
const MAX_HANDOVER: usize = 32;

/// What one of our requests was for.
#[derive(Debug, Clone)]
enum ReqKind {
    /// DB_FIND_PEER to a bridge; the answer starts lookup `query`.
    FindPeer { query: u64 },
    /// DB_FIND_PEER sent to register with a peer we contacted; the answer is ignored.
    Register,
    /// FIND_NODE / FIND_VALUE for lookup `query`.
    Lookup { query: u64 },
    /// Periodic PING of a routing-table peer.
    Ping,
    /// PING verifying a peer that registered with us.
    Verify(PeerRecord),
    /// A request sent to an ORDB over its two-hop circuit (`Command::AskOrdbs`).
    Ordb { query: u64 },
}

#[derive(Debug, Clone)]
struct Request {
    peer: PeerId,
    kind: ReqKind,
    /// Peers listed so far in a DHT_FOUND answer.
    got: usize,
    /// It listed a peer (or holder) closer to the target than itself.
    closer: bool,
    deadline: Instant,
}

/// A one-hop CREATE_FAST circuit to a peer (lookups, PINGs, registration, STORE).
#[derive(Debug)]
struct PeerCirc {
    key: CircKey,
    record: PeerRecord,
    built: bool,
    queued: Vec<RelayCell>,
}

/// A two-hop ORDB circuit: CREATE_FAST to `first`, then EXTEND2 (ntor) to `ordb`.
#[derive(Debug)]
struct OrdbCirc {
    first: PeerId,
    ordb: PeerRecord,
    built: bool,
    queued: Vec<RelayCell>,
}

#[derive(Debug, Clone)]
enum Purpose {
    User,
    Value(HashName),
    Bootstrap,
    /// The periodic lookup of our own id (`DhtConfig::refresh_interval`).
    Refresh,
    Store(HashName, Progress),
}

struct Query {
    lookup: Lookup,
    /// Peers that answered in full, and whether they listed anyone closer to the target
    /// than themselves (bounded by the lookup's `max_contacts`).
    answered: Vec<(PeerId, bool)>,
    purpose: Purpose,
    timer: Option<Instant>,
}

/// The Peersm state of a node.
pub(super) struct PeersmState {
    cfg: PeersmConfig,
    me: PeerRecord,
    table: RoutingTable,
    store: RecordStore,
    limiter: RateLimiter,
    registered: Vec<PeerRecord>,
    /// At a bridge: the other bridges of the network (`Command::Bootstrap` at a bridge),
    /// told of every peer that registers here so all bridges hand out peers from one
    /// pool. Without them each bridge's joiners only ever meet each other and the DHT
    /// splits into one network per bridge.
    fellows: Vec<PeerRecord>,
    queries: BTreeMap<u64, Query>,
    requests: BTreeMap<(CircKey, StreamId), Request>,
    circs: BTreeMap<PeerId, PeerCirc>,
    by_circ: BTreeMap<CircKey, PeerId>,
    ordbs: BTreeMap<CircKey, OrdbCirc>,
    /// Records listed in DHT_FOUND answers with an ntor key: candidates for the second
    /// hop of ORDB circuits (the seed: "another peer it knows ... different from the ones
    /// it has already connected to"). Oldest forgotten first.
    heard: Vec<PeerRecord>,
    suspects: BTreeMap<PeerId, u32>,
    verifying: BTreeSet<PeerId>,
    bootstrapped: bool,
    /// Names we announced with `Command::Store`, re-announced every
    /// `republish_interval` so the holders' records do not expire (bounded by
    /// `max_records`).
    announced: BTreeMap<HashName, Progress>,
    next_announce: Option<Instant>,
    /// When the next refresh lookup of our own id is due (once bootstrapped).
    next_refresh: Option<Instant>,
    /// The bridge of the running bootstrap, its query and the retries made: a peer the
    /// bridge handed out may have left, and a bootstrap that met nobody asks again.
    bridge_tries: Option<(PeerRecord, u64, u8)>,
    /// The bootstrap query whose lookup was started from a bridge's answer: later
    /// answers to the same query's other DB_FIND_PEERs add starting peers to it.
    boot_started: Option<u64>,
    next_query: u64,
    tick_at: Option<Instant>,
}

impl PeersmState {
    pub(super) fn new(cfg: &PeersmConfig, keys: &NodeKeys) -> PeersmState {
        let me = PeerRecord {
            id: keys.peer_id(),
            ip: cfg.addr.ip(),
            port: cfg.addr.port(),
            modulus: keys.relay.rsa_identity.public().modulus(),
            ntor_key: Some(keys.ntor.public().onion_key.to_bytes()),
        };
        PeersmState {
            table: RoutingTable::new(me.id, cfg.dht.ping_timeout),
            store: RecordStore::new(&cfg.dht),
            limiter: RateLimiter::from_config(&cfg.dht),
            cfg: cfg.clone(),
            me,
            registered: Vec::new(),
            fellows: Vec::new(),
            queries: BTreeMap::new(),
            requests: BTreeMap::new(),
            circs: BTreeMap::new(),
            by_circ: BTreeMap::new(),
            ordbs: BTreeMap::new(),
            heard: Vec::new(),
            suspects: BTreeMap::new(),
            verifying: BTreeSet::new(),
            bootstrapped: false,
            announced: BTreeMap::new(),
            next_announce: None,
            next_refresh: None,
            bridge_tries: None,
            boot_started: None,
            next_query: 1,
            tick_at: None,
        }
    }

    fn suspected(&self, id: &PeerId) -> bool {
        self.suspects.get(id).is_some_and(|&n| n >= SUSPECT_LIMIT)
    }

    fn ordb_count(&self) -> usize {
        self.ordbs.values().filter(|c| c.built).count()
    }

    /// `id` is the first hop or the ORDB of one of our ORDB circuits.
    fn in_ordb_path(&self, id: &PeerId) -> bool {
        self.ordbs
            .values()
            .any(|c| c.first == *id || c.ordb.id == *id)
    }

    /// Remember records from a DHT_FOUND as ORDB candidates.
    fn hear(&mut self, peers: &[PeerRecord]) {
        for r in peers {
            if r.ntor_key.is_none() || r.id == self.me.id || self.heard.iter().any(|h| h.id == r.id)
            {
                continue;
            }
            if self.heard.len() >= MAX_HEARD {
                self.heard.remove(0);
            }
            self.heard.push(r.clone());
        }
    }
}

fn target_of(r: &PeerRecord) -> RelayTarget {
    RelayTarget {
        addr: SocketAddr::new(r.ip, r.port),
        id: r.id,
        // Unused for a CREATE_FAST hop; an extended hop needs the key (callers check).
        ntor_key: r.ntor_key.unwrap_or([0; 32]),
        ed_id: None,
    }
}

/// Encoded size of a PEER record.
fn record_len(r: &PeerRecord) -> usize {
    let ip = if r.ip.is_ipv4() { 4 } else { 16 };
    let ntor = if r.ntor_key.is_some() { 32 } else { 0 };
    1 + 20 + 1 + ip + 1 + 2 + 1 + r.modulus.len() + 1 + ntor
}

/// `peers` split into DHT_FOUND bodies that each fit a relay cell, then the empty
/// end-of-answer cell when fewer than 8 peers were listed.
fn found_cells(kind: FoundKind, peers: &[PeerRecord]) -> Vec<DhtFound> {
    let peers = &peers[..peers.len().min(MAX_FOUND_PEERS)];
    let mut out = Vec::new();
    let mut cur: Vec<PeerRecord> = Vec::new();
    let mut size = 2;
    for p in peers {
        let n = record_len(p);
        if !cur.is_empty() && size + n > MAX_DATA_LEN {
            out.push(DhtFound {
                kind,
                peers: core::mem::take(&mut cur),
            });
            size = 2;
        }
        size += n;
        cur.push(p.clone());
    }
    if !cur.is_empty() {
        out.push(DhtFound { kind, peers: cur });
    }
    if peers.len() < MAX_FOUND_PEERS {
        out.push(DhtFound {
            kind,
            peers: Vec::new(),
        });
    }
    out
}

/// A rate-limit key for the link a circuit came in on.
pub(super) fn link_key(conn: super::api::ConnId) -> PeerId {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&conn.0.to_be_bytes());
    PeerId(b)
}

impl Node {
    // ---- getters -------------------------------------------------------------------

    /// Our Peersm PEER record (`None` without a Peersm config).
    pub fn peer_record(&self) -> Option<&PeerRecord> {
        self.peersm.as_ref().map(|p| &p.me)
    }

    /// The DHT routing table (`None` without a Peersm config).
    pub fn routing_table(&self) -> Option<&RoutingTable> {
        self.peersm.as_ref().map(|p| &p.table)
    }

    /// The DHT_STORE records kept (`None` without a Peersm config).
    pub fn record_store(&self) -> Option<&RecordStore> {
        self.peersm.as_ref().map(|p| &p.store)
    }

    /// ORDB circuits built and open.
    pub fn ordb_circuits(&self) -> usize {
        self.peersm.as_ref().map_or(0, |p| p.ordb_count())
    }

    /// The peers our ORDB circuits go to (their last hops: the ORDBs).
    pub fn ordb_peers(&self) -> Vec<PeerId> {
        self.ordb_paths()
            .into_iter()
            .map(|(_, ordb)| ordb)
            .collect()
    }

    /// The built ORDB circuits as (first hop, ORDB) pairs.
    pub fn ordb_paths(&self) -> Vec<(PeerId, PeerId)> {
        self.peersm.as_ref().map_or_else(Vec::new, |p| {
            p.ordbs
                .values()
                .filter(|c| c.built)
                .map(|c| (c.first, c.ordb.id))
                .collect()
        })
    }

    /// How many times `peer` was caught answering "never closer" (seed, "Security").
    pub fn suspicion(&self, peer: &PeerId) -> u32 {
        self.peersm
            .as_ref()
            .and_then(|p| p.suspects.get(peer).copied())
            .unwrap_or(0)
    }

    // ---- hooks for downloads (node/download.rs) ---------------------------------------

    /// The ORDB (last hop) of our ORDB circuit `key`.
    pub(super) fn ordb_of_circuit(&self, key: CircKey) -> Option<PeerId> {
        self.peersm.as_ref()?.ordbs.get(&key).map(|c| c.ordb.id)
    }

    /// `id` delivered data that failed verification (proof, not suspicion): from now on it
    /// is never picked as an ORDB, never connected to as a holder, and out of our DHT
    /// table (`Count::PeerConvicted`).
    pub(super) fn convict(&mut self, id: PeerId) {
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        if !p.suspects.contains_key(&id) && p.suspects.len() >= MAX_SUSPECTS {
            // Make room with the least suspected peer.
            let least = p.suspects.iter().min_by_key(|(_, n)| **n).map(|(k, _)| *k);
            if let Some(k) = least {
                p.suspects.remove(&k);
            }
        }
        let n = p.suspects.entry(id).or_insert(0);
        *n = (*n).max(SUSPECT_LIMIT);
        p.table.remove(&id);
        self.counters.bump(Count::PeerConvicted);
    }

    /// `id` was convicted or suspected enough to be avoided.
    pub(super) fn is_suspected(&self, id: &PeerId) -> bool {
        self.peersm.as_ref().is_some_and(|p| p.suspected(id))
    }

    /// `key` is a built ORDB circuit.
    pub(super) fn is_ordb_circuit(&self, key: CircKey) -> bool {
        self.peersm
            .as_ref()
            .is_some_and(|p| p.ordbs.get(&key).is_some_and(|c| c.built))
    }

    /// A DHT request uses stream `sid` on circuit `key`.
    pub(super) fn dht_stream_in_use(&self, key: CircKey, sid: StreamId) -> bool {
        self.peersm
            .as_ref()
            .is_some_and(|p| p.requests.contains_key(&(key, sid)))
    }

    /// Build ORDB circuits now, up to the configured number (a download dropped one).
    pub(super) fn replace_ordb_circuits(&mut self) {
        self.fill_ordbs();
    }

    /// Tests: pretend `key` is a built ORDB circuit to `ordb` (no real circuit behind it).
    #[cfg(test)]
    pub(super) fn fake_ordb_circuit(&mut self, key: CircKey, ordb: PeerRecord) {
        if let Some(p) = self.peersm.as_mut() {
            p.ordbs.insert(
                key,
                OrdbCirc {
                    first: ordb.id,
                    ordb,
                    built: true,
                    queued: Vec::new(),
                },
            );
        }
        self.on_download_circuit_built(key);
    }

    /// Tests: forget the fake ORDB circuit `key` as if it closed.
    #[cfg(test)]
    pub(super) fn fake_ordb_closed(&mut self, key: CircKey) {
        if let Some(p) = self.peersm.as_mut() {
            p.ordbs.remove(&key);
        }
        self.on_download_circuit_closed(key);
    }

    // ---- commands ------------------------------------------------------------------

    pub(super) fn dht_command(&mut self, cmd: Command) -> Result<QueryId, CommandError> {
        let Some(p) = self.peersm.as_mut() else {
            return Err(CommandError::NotAPeer);
        };
        if p.queries.len() >= p.cfg.max_queries {
            self.counters.bump(Count::DhtRefused);
            return Err(CommandError::Limit);
        }
        let q = p.next_query;
        p.next_query += 1;
        match cmd {
            Command::Bootstrap {
                via: BootstrapVia::Bridge(t),
            } if p.cfg.bridge => {
                // A bridge does not join: it links up with a fellow bridge, which it then
                // tells of every peer that registers here (and the peers registered so
                // far). Answered by no event.
                let fellow = PeerRecord {
                    id: t.id,
                    ip: t.addr.ip(),
                    port: t.addr.port(),
                    modulus: Vec::new(),
                    ntor_key: Some(t.ntor_key),
                };
                if fellow.id == p.me.id || p.fellows.iter().any(|f| f.id == fellow.id) {
                    return Ok(QueryId(q));
                }
                if p.fellows.len() >= MAX_FELLOWS {
                    return Err(CommandError::Limit);
                }
                p.fellows.push(fellow.clone());
                let known = p.registered.clone();
                for r in known {
                    self.dht_send(&fellow, DbFindPeer { peer: r }.into(), ReqKind::Register);
                }
            }
            Command::Bootstrap { via } => match via {
                BootstrapVia::Bridge(t) => {
                    let bridge = PeerRecord {
                        id: t.id,
                        ip: t.addr.ip(),
                        port: t.addr.port(),
                        modulus: Vec::new(),
                        ntor_key: Some(t.ntor_key),
                    };
                    let msg: RelayMsg = DbFindPeer { peer: p.me.clone() }.into();
                    p.bridge_tries = Some((bridge.clone(), q, 0));
                    let seeds = p.cfg.dht.bootstrap_seeds.max(1);
                    if !self.dht_send(&bridge, msg.clone(), ReqKind::FindPeer { query: q }) {
                        return Err(CommandError::Limit);
                    }
                    // More random peers to start from (see `DhtConfig::bootstrap_seeds`).
                    for _ in 1..seeds {
                        self.dht_send(&bridge, msg.clone(), ReqKind::FindPeer { query: q });
                    }
                }
                BootstrapVia::Peer(r) => self.start_query(q, Purpose::Bootstrap, Some(r)),
            },
            Command::FindNode(key) => {
                self.start_lookup(q, LookupKind::FindNode, key, Purpose::User, None)
            }
            Command::FindValue(name) => self.start_lookup(
                q,
                LookupKind::FindValue,
                Key::for_hash_name(&name),
                Purpose::Value(name),
                None,
            ),
            Command::Store {
                hash_name,
                progress,
            } => {
                if p.announced.len() < p.cfg.dht.max_records || p.announced.contains_key(&hash_name)
                {
                    p.announced.insert(hash_name.clone(), progress);
                }
                if p.next_announce.is_none() {
                    p.next_announce = Some(self.now + p.cfg.dht.republish_interval);
                }
                let key = Key::for_hash_name(&hash_name);
                let purpose = Purpose::Store(hash_name, progress);
                self.start_lookup(q, LookupKind::FindNode, key, purpose, None)
            }
            Command::AskOrdbs(name) => {
                let msg: RelayMsg = match name {
                    None => DhtPing { reply: false }.into(),
                    Some(hash_name) => DhtFindValue { hash_name }.into(),
                };
                let keys: Vec<CircKey> = p.ordbs.keys().copied().collect();
                for key in keys {
                    self.ordb_send(key, msg.clone(), ReqKind::Ordb { query: q });
                }
            }
            _ => return Err(CommandError::BadPath),
        }
        Ok(QueryId(q))
    }

    fn start_query(&mut self, q: u64, purpose: Purpose, first: Option<PeerRecord>) {
        let Some(p) = self.peersm.as_ref() else {
            return;
        };
        let own = Key::from(p.me.id);
        self.start_lookup(q, LookupKind::FindNode, own, purpose, first);
    }

    fn start_lookup(
        &mut self,
        q: u64,
        kind: LookupKind,
        target: Key,
        purpose: Purpose,
        first: Option<PeerRecord>,
    ) {
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        let mut seeds: Vec<PeerRecord> = first.into_iter().collect();
        seeds.extend(
            p.table
                .closest(&target, p.cfg.dht.k)
                .into_iter()
                .map(|e| e.record.clone())
                .filter(|r| !p.suspected(&r.id)),
        );
        let lookup = Lookup::new(kind, p.me.id, target, seeds, &p.cfg.dht);
        p.queries.insert(
            q,
            Query {
                lookup,
                answered: Vec::new(),
                purpose,
                timer: None,
            },
        );
        self.drive_query(q);
    }

    /// Contact whom the lookup asks for, then wait or finish.
    fn drive_query(&mut self, q: u64) {
        loop {
            let now = self.now;
            let Some(p) = self.peersm.as_mut() else {
                return;
            };
            let suspects = &p.suspects;
            let Some(query) = p.queries.get_mut(&q) else {
                return;
            };
            match query.lookup.next(now) {
                Action::Contact(rec) => {
                    if suspects.get(&rec.id).is_some_and(|&n| n >= SUSPECT_LIMIT) {
                        query.lookup.on_failure(&rec.id);
                        continue;
                    }
                    let msg: RelayMsg = match query.lookup.kind() {
                        LookupKind::FindNode => DhtFindNode {
                            target: PeerId(query.lookup.target().0),
                            modulus: p.me.modulus.clone(),
                        }
                        .into(),
                        LookupKind::FindValue => match &query.purpose {
                            Purpose::Value(name) => DhtFindValue {
                                hash_name: name.clone(),
                            }
                            .into(),
                            _ => {
                                query.lookup.on_failure(&rec.id);
                                continue;
                            }
                        },
                    };
                    let joining = matches!(
                        self.peersm.as_ref().and_then(|p| p.queries.get(&q)),
                        Some(Query {
                            purpose: Purpose::Bootstrap | Purpose::Refresh,
                            ..
                        })
                    );
                    if !self.dht_send(&rec, msg, ReqKind::Lookup { query: q }) {
                        if let Some(query) =
                            self.peersm.as_mut().and_then(|p| p.queries.get_mut(&q))
                        {
                            query.lookup.on_failure(&rec.id);
                        }
                        continue;
                    }
                    if joining {
                        // "Each peer connected to A adds A in its routing table": ask
                        // it to register (it verifies us before it does; one that knows
                        // us already does nothing). Every peer a bootstrap or refresh
                        // meets, as those are the peers closest to us.
                        let me = self.peersm.as_ref().map(|p| p.me.clone());
                        if let Some(me) = me {
                            self.dht_send(&rec, DbFindPeer { peer: me }.into(), ReqKind::Register);
                        }
                    }
                }
                Action::Wait { until } => {
                    if let Some(old) = query.timer.take() {
                        self.timers.remove(&(old, Timer::DhtQuery(q)));
                    }
                    if let Some(at) = until {
                        query.timer = Some(at);
                        self.timers.insert((at, Timer::DhtQuery(q)));
                    }
                    return;
                }
                Action::Finished => {
                    self.finish_query(q);
                    return;
                }
            }
        }
    }

    pub(super) fn on_dht_query_timer(&mut self, q: u64) {
        if let Some(query) = self.peersm.as_mut().and_then(|p| p.queries.get_mut(&q)) {
            query.timer = None;
        }
        self.drive_query(q);
    }

    fn finish_query(&mut self, q: u64) {
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        let Some(query) = p.queries.remove(&q) else {
            return;
        };
        if let Some(at) = query.timer {
            self.timers.remove(&(at, Timer::DhtQuery(q)));
        }
        let l = &query.lookup;
        let closest: Vec<PeerRecord> = l.closest().into_iter().cloned().collect();
        if matches!(query.purpose, Purpose::Bootstrap)
            && closest.is_empty()
            && let Some((bridge, bq, tries)) = p.bridge_tries.clone()
            && bq == q
            && tries < BRIDGE_RETRIES
        {
            // The peer the bridge gave us did not answer (it may have left): ask the
            // bridge for another under the same query.
            p.bridge_tries = Some((bridge.clone(), q, tries + 1));
            p.boot_started = None;
            let msg = DbFindPeer { peer: p.me.clone() }.into();
            if self.dht_send(&bridge, msg, ReqKind::FindPeer { query: q }) {
                return;
            }
            let Some(p) = self.peersm.as_mut() else {
                return;
            };
            p.bridge_tries = None;
        }
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        let l = &query.lookup;
        // The seed's "Security" hint, made precise: a peer that listed nobody closer to
        // the target than itself although the lookup found SUSPECT_MARGIN answering peers
        // closer than it is hiding them (an honest table knows its neighbourhood). The
        // lookup's own `never_closer` exempts the k closest, too lenient in a small or
        // poisoned neighbourhood.
        let target = l.target();
        let ranked: Vec<crate::dht::Distance> = closest
            .iter()
            .map(|r| target.distance(&Key::from(r.id)))
            .collect();
        let caught: Vec<PeerId> = query
            .answered
            .iter()
            .filter(|(_, closer)| !closer)
            .filter(|(id, _)| {
                let d = target.distance(&Key::from(*id));
                ranked.iter().filter(|&&x| x < d).count() >= SUSPECT_MARGIN
            })
            .map(|(id, _)| *id)
            .collect();
        for id in caught {
            if p.suspects.len() < MAX_SUSPECTS || p.suspects.contains_key(&id) {
                let n = p.suspects.entry(id).or_insert(0);
                *n = n.saturating_add(1);
                self.counters.bump(Count::SuspectPeer);
                if *n >= SUSPECT_LIMIT {
                    p.table.remove(&id);
                }
            }
        }
        // Requests of this lookup still out are answered into nothing.
        for r in p.requests.values_mut() {
            if matches!(r.kind, ReqKind::Lookup { query } if query == q) {
                r.kind = ReqKind::Register;
            }
        }
        // We may be (one of) the closest nodes ourselves: our own store counts.
        let mut holders: Vec<PeerRecord> = match &query.purpose {
            Purpose::Value(name) => p.store.answer(name, self.now, MAX_FOUND_PEERS),
            _ => Vec::new(),
        };
        for h in l.holders() {
            if !holders.iter().any(|x| x.id == h.id) {
                holders.push(h.clone());
            }
        }
        // Lookups the ORDB function started for itself end there, not as events.
        if !self.ordb_lookup_done(q, &holders) {
            self.emit(Event::DhtLookupDone {
                query: QueryId(q),
                closest: closest.clone(),
                holders,
                hops: l.hops(),
            });
        }
        match query.purpose {
            Purpose::Bootstrap => {
                // The first refresh comes early (a tenth of the interval): a joiner's
                // table is thinnest right after its one lookup, and peers joining near
                // it since are met then rather than minutes later.
                let jitter = self.refresh_jitter() / 10;
                if let Some(p) = self.peersm.as_mut() {
                    p.bootstrapped = true;
                    p.next_refresh = Some(self.now + jitter);
                }
                self.fill_ordbs();
                let n = self.ordb_circuits_promised();
                self.emit(Event::OrdbCircuitsReady(n));
            }
            Purpose::Store(name, progress) => {
                let me = self.peersm.as_ref().map(|p| p.me.clone());
                let replicas = self
                    .peersm
                    .as_ref()
                    .map_or(1, |p| p.cfg.dht.store_replicas.max(1));
                if let Some(me) = me {
                    let msg: RelayMsg = DhtStore {
                        hash_name: name,
                        peer: me,
                        progress,
                    }
                    .into();
                    for r in closest.iter().take(replicas) {
                        self.dht_send_oneway(r, msg.clone());
                    }
                }
            }
            Purpose::User | Purpose::Value(_) | Purpose::Refresh => {}
        }
        self.close_idle_circuits();
    }

    /// ORDB circuits up or being built.
    fn ordb_circuits_promised(&self) -> usize {
        self.peersm.as_ref().map_or(0, |p| p.ordbs.len())
    }

    // ---- sending requests ------------------------------------------------------------

    /// The circuit to `rec`'s peer, built or being built; opens one if needed.
    pub(super) fn circ_to(&mut self, rec: &PeerRecord) -> Option<CircKey> {
        let p = self.peersm.as_ref()?;
        if let Some(c) = p.circs.get(&rec.id) {
            return Some(c.key);
        }
        if rec.id == p.me.id || p.circs.len() >= p.cfg.max_requests {
            return None;
        }
        let handle = self
            .start_circuit(alloc::vec![target_of(rec)], FirstHop::Fast)
            .ok()?;
        let key = *self.client_circs.get(&handle)?;
        let p = self.peersm.as_mut()?;
        p.circs.insert(
            rec.id,
            PeerCirc {
                key,
                record: rec.clone(),
                built: false,
                queued: Vec::new(),
            },
        );
        p.by_circ.insert(key, rec.id);
        Some(key)
    }

    /// Send `cell` on `key` now, or once the circuit is built.
    fn send_on(&mut self, peer: &PeerId, key: CircKey, cell: RelayCell) {
        let Some(c) = self.peersm.as_mut().and_then(|p| p.circs.get_mut(peer)) else {
            return;
        };
        if !c.built {
            c.queued.push(cell);
            return;
        }
        let hop = match self.circuits.get(&key) {
            Some(Circuit::Client(c)) => c.last_hop(),
            _ => return,
        };
        self.send_relay_outbound(key, hop, &cell, false);
    }

    /// Record a request to `peer` on circuit `key` under a fresh stream id, with its
    /// deadline; the id the request must be sent on.
    fn register_request(&mut self, key: CircKey, peer: PeerId, kind: ReqKind) -> Option<StreamId> {
        let p = self.peersm.as_mut()?;
        let sid = loop {
            let raw = (self.rng.next_u32() & 0xffff) as u16;
            if let Some(id) = StreamId::new(raw)
                && !p.requests.contains_key(&(key, id))
            {
                break id;
            }
        };
        let deadline = self.now + p.cfg.dht.peer_timeout * 3;
        let request = Request {
            peer,
            kind,
            got: 0,
            closer: false,
            deadline,
        };
        p.requests.insert((key, sid), request);
        Some(sid)
    }

    /// What we know of peer `id`'s record: a circuit of ours to it, the routing table,
    /// the peers registered with us, our bridge, or ORDB candidates.
    pub(super) fn peer_record_of(&self, id: &PeerId) -> Option<PeerRecord> {
        let p = self.peersm.as_ref()?;
        if let Some(c) = p.circs.get(id) {
            return Some(c.record.clone());
        }
        if let Some(e) = p.table.get(id) {
            return Some(e.record.clone());
        }
        p.registered
            .iter()
            .chain(p.bridge_tries.as_ref().map(|(b, _, _)| b))
            .chain(p.heard.iter())
            .find(|r| r.id == *id)
            .cloned()
    }

    /// Send `cell` on our client circuit `key`: queued until built when it is one of our
    /// one-hop peer circuits, else now to its last hop. False when there is no such
    /// circuit.
    pub(super) fn send_on_client_circ(&mut self, key: CircKey, cell: RelayCell) -> bool {
        if let Some(peer) = self
            .peersm
            .as_ref()
            .and_then(|p| p.by_circ.get(&key))
            .copied()
        {
            self.send_on(&peer, key, cell);
            return true;
        }
        let hop = match self.circuits.get(&key) {
            Some(Circuit::Client(c)) if c.is_built() => c.last_hop(),
            _ => return false,
        };
        self.send_relay_outbound(key, hop, &cell, false).is_some()
    }

    /// Send a request to `rec`'s peer on a fresh stream id; false if it cannot be sent.
    fn dht_send(&mut self, rec: &PeerRecord, msg: RelayMsg, kind: ReqKind) -> bool {
        let Some(p) = self.peersm.as_ref() else {
            return false;
        };
        if p.requests.len() >= p.cfg.max_requests {
            self.counters.bump(Count::DhtRefused);
            return false;
        }
        let Some(key) = self.circ_to(rec) else {
            return false;
        };
        let Some(sid) = self.register_request(key, rec.id, kind) else {
            return false;
        };
        let hold = self
            .config
            .peersm
            .as_ref()
            .map(|c| c.signal.registration_hold);
        if let Some(hold) = hold.filter(|h| !h.is_zero())
            && matches!(msg, RelayMsg::DbFindPeer(_))
        {
            // The peer may verify the registrant by an offer down this circuit (signal.rs).
            self.signals.hold(key, self.now + hold);
        }
        self.send_on(&rec.id, key, RelayCell::new(Some(sid), msg));
        true
    }

    /// Send a request to the ORDB at the end of ORDB circuit `key`.
    fn ordb_send(&mut self, key: CircKey, msg: RelayMsg, kind: ReqKind) -> bool {
        let Some(p) = self.peersm.as_mut() else {
            return false;
        };
        if p.requests.len() >= p.cfg.max_requests {
            self.counters.bump(Count::DhtRefused);
            return false;
        }
        let Some(c) = p.ordbs.get(&key) else {
            return false;
        };
        let peer = c.ordb.id;
        let Some(sid) = self.register_request(key, peer, kind) else {
            return false;
        };
        let cell = RelayCell::new(Some(sid), msg);
        let Some(c) = self.peersm.as_mut().and_then(|p| p.ordbs.get_mut(&key)) else {
            return false;
        };
        if !c.built {
            c.queued.push(cell);
            return true;
        }
        let hop = match self.circuits.get(&key) {
            Some(Circuit::Client(c)) => c.last_hop(),
            _ => return false,
        };
        self.send_relay_outbound(key, hop, &cell, false);
        true
    }

    /// Send a message that takes no answer (DHT_STORE) to `rec`'s peer.
    fn dht_send_oneway(&mut self, rec: &PeerRecord, msg: RelayMsg) {
        if let Some(key) = self.circ_to(rec) {
            self.send_on(&rec.id, key, RelayCell::new(None, msg));
        }
    }

    fn send_ping(&mut self, rec: &PeerRecord, kind: ReqKind) {
        if !self.dht_send(rec, DhtPing { reply: false }.into(), kind.clone()) {
            self.dht_request_failed(rec.id, kind);
        }
    }

    // ---- circuit hooks -----------------------------------------------------------------

    /// A client circuit is built; true if it is one of the DHT's own (lookup or ORDB)
    /// circuits, which the application never sees.
    pub(super) fn on_dht_circuit_built(&mut self, key: CircKey) -> bool {
        let Some(p) = self.peersm.as_mut() else {
            return false;
        };
        if let Some(c) = p.ordbs.get_mut(&key) {
            c.built = true;
            let queued = core::mem::take(&mut c.queued);
            let hop = match self.circuits.get(&key) {
                Some(Circuit::Client(c)) => c.last_hop(),
                _ => return true,
            };
            for cell in queued {
                self.send_relay_outbound(key, hop, &cell, false);
            }
            return true;
        }
        let Some(peer) = p.by_circ.get(&key).copied() else {
            return false;
        };
        let Some(c) = p.circs.get_mut(&peer) else {
            return true;
        };
        c.built = true;
        let queued = core::mem::take(&mut c.queued);
        for cell in queued {
            self.send_on(&peer, key, cell);
        }
        true
    }

    /// A client circuit closed; true if it was one of the DHT's own circuits.
    pub(super) fn on_dht_circuit_closed(&mut self, key: CircKey) -> bool {
        let Some(p) = self.peersm.as_mut() else {
            return false;
        };
        if let Some(c) = p.ordbs.remove(&key) {
            // One that never got built: its ORDB candidate may be gone or lying about its
            // key; do not pick it again from the heard-of pool. Replaced at the next tick.
            if !c.built {
                p.heard.retain(|h| h.id != c.ordb.id);
            }
        } else if let Some(peer) = p.by_circ.remove(&key) {
            p.circs.remove(&peer);
        } else {
            return false;
        }
        let failed: Vec<(CircKey, StreamId)> = p
            .requests
            .range((key, StreamId::MIN)..=(key, StreamId::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in failed {
            if let Some(r) = self.peersm.as_mut().and_then(|p| p.requests.remove(&k)) {
                self.dht_request_failed(r.peer, r.kind);
            }
        }
        true
    }

    /// A request of ours got no answer (timeout, circuit failed).
    fn dht_request_failed(&mut self, peer: PeerId, kind: ReqKind) {
        self.counters.bump(Count::DhtRequestFailed);
        let now = self.now;
        match kind {
            ReqKind::FindPeer { query } => {
                // The bootstrap failed only if no other DB_FIND_PEER of it is out and no
                // answer started its lookup.
                let alive = self.peersm.as_ref().is_some_and(|p| {
                    p.boot_started == Some(query)
                        || p.queries.contains_key(&query)
                        || p.requests
                            .values()
                            .any(|r| matches!(r.kind, ReqKind::FindPeer { query: x } if x == query))
                });
                if !alive {
                    self.emit(Event::DhtLookupDone {
                        query: QueryId(query),
                        closest: Vec::new(),
                        holders: Vec::new(),
                        hops: 0,
                    });
                }
            }
            ReqKind::Register | ReqKind::Ordb { .. } => {}
            ReqKind::Lookup { query } => {
                if let Some(q) = self.peersm.as_mut().and_then(|p| p.queries.get_mut(&query)) {
                    q.lookup.on_failure(&peer);
                    self.drive_query(query);
                }
                self.check_alive(&peer);
            }
            ReqKind::Ping => {
                let Some(p) = self.peersm.as_mut() else {
                    return;
                };
                // A bridge stops handing out a peer that is gone.
                p.registered.retain(|r| r.id != peer);
                if matches!(
                    p.table.on_ping_result(&peer, false, now),
                    PingOutcome::Evicted { .. }
                ) {
                    self.counters.bump(Count::DhtPeerDropped);
                }
            }
            ReqKind::Verify(rec) => {
                if let Some(p) = self.peersm.as_mut() {
                    p.verifying.remove(&rec.id);
                }
            }
        }
    }

    // ---- replies (client side) ---------------------------------------------------------

    pub(super) fn on_dht_reply(&mut self, key: CircKey, sid: Option<StreamId>, msg: RelayMsg) {
        let now = self.now;
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        let Some(sid) = sid else {
            self.counters.bump(Count::DhtUnexpectedReply);
            return;
        };
        let Some(req) = p.requests.get_mut(&(key, sid)) else {
            self.counters.bump(Count::DhtUnexpectedReply);
            return;
        };
        let peer = req.peer;
        if let ReqKind::Ordb { query } = req.kind {
            let (peers, done) = match msg {
                RelayMsg::DhtPing(m) if m.reply => (Vec::new(), true),
                RelayMsg::DhtFound(m) => {
                    req.got += m.peers.len();
                    let done = m.peers.is_empty() || req.got >= MAX_FOUND_PEERS;
                    self.signals
                        .learned(m.peers.iter().map(|r| &r.id), peer, p.me.id);
                    (m.peers, done)
                }
                _ => {
                    self.counters.bump(Count::DhtUnexpectedReply);
                    return;
                }
            };
            if done {
                p.requests.remove(&(key, sid));
            }
            self.emit(Event::OrdbAnswered {
                query: QueryId(query),
                ordb: peer,
                peers,
                done,
            });
            return;
        }
        // The link proved the id of the peer at the end of this one-hop circuit.
        let record = p.circs.get(&peer).map(|c| c.record.clone());
        let mut done = true;
        match (&req.kind, msg) {
            (ReqKind::FindPeer { query }, RelayMsg::DbFoundPeer(m)) => {
                let q = *query;
                // The bridge verified the peer over its own circuit: it can introduce us.
                self.signals.learned([&m.peer.id], peer, p.me.id);
                p.requests.remove(&(key, sid));
                if let Some(query) = p.queries.get_mut(&q) {
                    // Another starting peer for the running bootstrap.
                    query.lookup.add_peer(m.peer);
                    self.drive_query(q);
                    self.close_idle_circuits();
                    return;
                }
                if p.boot_started == Some(q) {
                    // That bootstrap is over.
                    self.close_idle_circuits();
                    return;
                }
                p.boot_started = Some(q);
                self.emit(Event::PeerFound(m.peer.clone()));
                self.start_query(q, Purpose::Bootstrap, Some(m.peer));
                self.close_idle_circuits();
                return;
            }
            (ReqKind::Register, RelayMsg::DbFoundPeer(m)) => {
                // A peer (a fellow bridge, say) we registered with handed out one of its
                // peers: it can introduce that one should we dial it.
                self.signals.learned([&m.peer.id], peer, p.me.id);
            }
            (ReqKind::Register, RelayMsg::DhtFound(m)) => {
                req.got += m.peers.len();
                done = m.peers.is_empty() || req.got >= MAX_FOUND_PEERS;
                self.signals
                    .learned(m.peers.iter().map(|r| &r.id), peer, p.me.id);
            }
            (ReqKind::Lookup { query }, RelayMsg::DhtFound(m)) => {
                let q = *query;
                req.got += m.peers.len();
                done = m.peers.is_empty() || req.got >= MAX_FOUND_PEERS;
                let closer = req.closer;
                let mut closer_now = closer;
                p.hear(&m.peers);
                // The answerer knows the peers it lists from its own circuits to them.
                self.signals
                    .learned(m.peers.iter().map(|r| &r.id), peer, p.me.id);
                let learn = m.kind == FoundKind::CloserNodes;
                if let Some(query) = p.queries.get_mut(&q) {
                    let t = query.lookup.target();
                    let own = t.distance(&Key::from(peer));
                    closer_now |= m.kind == FoundKind::Holders && !m.peers.is_empty();
                    closer_now |= m.peers.iter().any(|r| t.distance(&Key::from(r.id)) < own);
                    if done && query.answered.len() < p.cfg.dht.max_contacts {
                        query.answered.push((peer, closer_now));
                    }
                    match m.kind {
                        FoundKind::CloserNodes => {
                            query.lookup.on_response(&peer, &m.peers, done);
                        }
                        FoundKind::Holders => {
                            query.lookup.on_value(&peer, &m.peers, done);
                        }
                    }
                }
                if let Some(r) = p.requests.get_mut(&(key, sid)) {
                    r.closer = closer_now;
                }
                if done {
                    p.requests.remove(&(key, sid));
                }
                if learn {
                    self.learn_listed(&m.peers);
                }
                if done {
                    self.dht_heard_from(record.clone(), now);
                    if let Some(first) = record {
                        self.mark_ordb(first, q);
                    }
                }
                self.drive_query(q);
                self.close_idle_circuits();
                return;
            }
            (ReqKind::Ping, RelayMsg::DhtPing(m)) if m.reply => {
                p.table.on_ping_result(&peer, true, now);
            }
            (ReqKind::Verify(rec), RelayMsg::DhtPing(m)) if m.reply => {
                let rec = rec.clone();
                p.verifying.remove(&rec.id);
                let mut tell = Vec::new();
                if p.cfg.bridge && !p.registered.iter().any(|r| r.id == rec.id) {
                    if p.registered.len() >= p.cfg.max_registered {
                        p.registered.remove(0);
                    }
                    p.registered.push(rec.clone());
                    tell = p.fellows.clone();
                }
                for f in &tell {
                    let msg = DbFindPeer { peer: rec.clone() }.into();
                    self.dht_send(f, msg, ReqKind::Register);
                }
                let Some(p) = self.peersm.as_mut() else {
                    return;
                };
                p.requests.remove(&(key, sid));
                self.dht_heard_from(Some(rec), now);
                self.close_idle_circuits();
                return;
            }
            _ => {
                self.counters.bump(Count::DhtUnexpectedReply);
                done = true;
            }
        }
        if done && let Some(p) = self.peersm.as_mut() {
            p.requests.remove(&(key, sid));
        }
        self.close_idle_circuits();
    }

    /// A peer whose id a link proved answered us: into the routing table.
    fn dht_heard_from(&mut self, record: Option<PeerRecord>, now: Instant) {
        let Some(rec) = record.filter(|r| !r.modulus.is_empty()) else {
            return;
        };
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        if p.suspected(&rec.id) {
            return;
        }
        match p.table.insert_or_update(rec.clone(), now) {
            InsertResult::Pending { ping } => {
                // A full bucket: its least recently seen peer must answer a PING to stay.
                if let Some(e) = p.table.get(&ping) {
                    let r = e.record.clone();
                    p.table.ping_sent(&ping, now);
                    self.send_ping(&r, ReqKind::Ping);
                }
            }
            InsertResult::Inserted => {
                self.hand_over_records(&rec);
                self.introduce(&rec);
            }
            _ => {}
        }
    }

    /// `rec` just entered our table: if it is among our `k` closest, our other `k`
    /// closest are its neighbours too, and may not know it (see
    /// `DhtConfig::introduce_neighbours`). Each gets a DB_FIND_PEER naming it and verifies
    /// it as a registration; one that knows it already does nothing. A peer is
    /// introduced once per peer that inserts it, so a join costs about `k * k` cells.
    fn introduce(&mut self, rec: &PeerRecord) {
        let Some(p) = self
            .peersm
            .as_ref()
            .filter(|p| p.cfg.dht.introduce_neighbours && p.bootstrapped)
        else {
            return;
        };
        let k = p.cfg.dht.k;
        let near: Vec<PeerRecord> = p
            .table
            .closest(&Key::from(p.me.id), k)
            .into_iter()
            .map(|e| e.record.clone())
            .collect();
        if !near.iter().any(|r| r.id == rec.id) {
            return;
        }
        for n in near.iter().filter(|n| n.id != rec.id) {
            let msg = DbFindPeer { peer: rec.clone() }.into();
            self.dht_send(n, msg, ReqKind::Register);
        }
    }

    /// Peers a DHT_FOUND listed that would fit a bucket of ours with room: verify them
    /// (our own circuit and PING, as for a registration) so they can enter the table.
    /// Without it a table holds only the peers we asked and those that registered with
    /// us, and sparse buckets leave lookups stuck short of the closest peers.
    fn learn_listed(&mut self, peers: &[PeerRecord]) {
        let Some(p) = self.peersm.as_ref().filter(|p| p.cfg.dht.verify_listed) else {
            return;
        };
        let me = Key::from(p.me.id);
        let fresh: Vec<PeerRecord> = peers
            .iter()
            .filter(|r| !r.modulus.is_empty() && p.table.get(&r.id).is_none())
            .filter(|r| {
                crate::dht::bucket_index(&me, &Key::from(r.id))
                    .is_some_and(|b| p.table.bucket(b).len() < crate::dht::K)
            })
            .cloned()
            .collect();
        for r in fresh {
            self.verify_peer(r);
        }
    }

    /// A request to a table peer failed: PING it now rather than at its next due time,
    /// so a peer that left is dropped (its failed PING evicts it) before more lookups
    /// waste a request and a timeout on it.
    fn check_alive(&mut self, peer: &PeerId) {
        let now = self.now;
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        let Some(e) = p.table.get(peer) else {
            return;
        };
        if e.status != crate::dht::EntryStatus::Alive {
            return;
        }
        let r = e.record.clone();
        p.table.ping_sent(peer, now);
        self.send_ping(&r, ReqKind::Ping);
    }

    /// A peer just entered our table: the records we keep that it is now among the
    /// `store_replicas` closest known holders of (closer to the name than we are) are
    /// stored at it too (Kademlia's rule for a newcomer), so a record follows the
    /// neighbourhood of its name as peers join. At most `MAX_HANDOVER` a time.
    fn hand_over_records(&mut self, rec: &PeerRecord) {
        let Some(p) = self.peersm.as_ref() else {
            return;
        };
        if p.store.is_empty() {
            return;
        }
        let replicas = p.cfg.dht.store_replicas.max(1);
        let me = Key::from(p.me.id);
        let new = Key::from(rec.id);
        let mut out: Vec<DhtStore> = Vec::new();
        for (name, holders) in p.store.iter() {
            let key = Key::for_hash_name(name);
            let d = key.distance(&new);
            if d >= key.distance(&me) {
                continue;
            }
            let closer = p
                .table
                .iter()
                .filter(|e| e.record.id != rec.id && key.distance(&Key::from(e.record.id)) < d)
                .take(replicas)
                .count();
            if closer >= replicas {
                continue;
            }
            for h in holders.iter().filter(|h| h.peer.id != rec.id) {
                if out.len() >= MAX_HANDOVER {
                    break;
                }
                out.push(DhtStore {
                    hash_name: name.clone(),
                    peer: h.peer.clone(),
                    progress: h.progress,
                });
            }
        }
        for m in out {
            self.dht_send_oneway(rec, m.into());
        }
    }

    /// Delay to the next refresh: `refresh_interval` jittered down to half of it, so
    /// peers that joined together do not refresh together.
    fn refresh_jitter(&mut self) -> core::time::Duration {
        let Some(p) = self.peersm.as_ref() else {
            return core::time::Duration::ZERO;
        };
        let full = p.cfg.dht.refresh_interval;
        let half = full / 2;
        let frac = self.rng.next_u32() % 1024;
        half + half * frac / 1024
    }

    /// The periodic lookup of our own id, once bootstrapped.
    fn refresh(&mut self) {
        let now = self.now;
        let Some(p) = self.peersm.as_ref() else {
            return;
        };
        if !p.bootstrapped || p.next_refresh.is_none_or(|at| at > now) {
            return;
        }
        let jitter = self.refresh_jitter();
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        p.next_refresh = Some(now + jitter);
        if p.queries.len() >= p.cfg.max_queries {
            self.counters.bump(Count::DhtRefused);
            return;
        }
        let q = p.next_query;
        p.next_query += 1;
        self.start_query(q, Purpose::Refresh, None);
    }

    /// During a bootstrap, each of the first peers that answer becomes the first hop of
    /// an ORDB circuit (seed: "A extends each circuit to another peer it knows").
    fn mark_ordb(&mut self, first: PeerRecord, q: u64) {
        let Some(p) = self.peersm.as_ref() else {
            return;
        };
        let bootstrap = matches!(
            p.queries.get(&q),
            Some(Query {
                purpose: Purpose::Bootstrap,
                ..
            })
        );
        if bootstrap
            && p.ordbs.len() < p.cfg.ordb_circuits
            && !p.ordbs.values().any(|c| c.first == first.id)
        {
            self.open_ordb(first);
        }
    }

    /// A random ORDB for a circuit through `first`: a known peer with an ntor key, not
    /// `first`, not an ORDB already, preferring peers we have no link to and that are not
    /// on another ORDB circuit.
    fn pick_ordb(&mut self, first: &PeerId) -> Option<PeerRecord> {
        let p = self.peersm.as_ref()?;
        let mut pool: Vec<PeerRecord> = p.table.iter().map(|e| e.record.clone()).collect();
        for h in &p.heard {
            if !pool.iter().any(|r| r.id == h.id) {
                pool.push(h.clone());
            }
        }
        let linked = |id: &PeerId| self.links.values().any(|l| l.peer_id == Some(*id));
        let mut best: Vec<(u8, PeerRecord)> = pool
            .into_iter()
            .filter(|r| {
                r.ntor_key.is_some()
                    && r.id != *first
                    && r.id != p.me.id
                    && !p.suspected(&r.id)
                    && !p.ordbs.values().any(|c| c.ordb.id == r.id)
            })
            .map(|r| {
                let rank = u8::from(linked(&r.id) || p.circs.contains_key(&r.id))
                    + u8::from(p.in_ordb_path(&r.id));
                (rank, r)
            })
            .collect();
        let top = best.iter().map(|(rank, _)| *rank).min()?;
        best.retain(|(rank, _)| *rank == top);
        let i = (self.rng.next_u32() as usize) % best.len();
        best.into_iter().nth(i).map(|(_, r)| r)
    }

    /// Build an ORDB circuit: CREATE_FAST to `first`, EXTEND2 to a random other peer.
    fn open_ordb(&mut self, first: PeerRecord) -> bool {
        let Some(ordb) = self.pick_ordb(&first.id) else {
            return false;
        };
        let path = alloc::vec![target_of(&first), target_of(&ordb)];
        let Ok(handle) = self.start_circuit(path, FirstHop::Fast) else {
            return false;
        };
        let Some(key) = self.client_circs.get(&handle).copied() else {
            return false;
        };
        let Some(p) = self.peersm.as_mut() else {
            return false;
        };
        p.ordbs.insert(
            key,
            OrdbCirc {
                first: first.id,
                ordb,
                built: false,
                queued: Vec::new(),
            },
        );
        true
    }

    /// Close circuits to peers that carry no request.
    fn close_idle_circuits(&mut self) {
        let Some(p) = self.peersm.as_ref() else {
            return;
        };
        let idle: Vec<CircKey> = p
            .circs
            .values()
            .filter(|c| c.built && c.queued.is_empty())
            .filter(|c| !self.signals.is_busy(c.key, self.now))
            .filter(|c| {
                p.requests
                    .range((c.key, StreamId::MIN)..=(c.key, StreamId::MAX))
                    .next()
                    .is_none()
            })
            .map(|c| c.key)
            .collect();
        for key in idle {
            self.destroy_circuit(key, DestroyReason::FINISHED, None);
        }
    }

    /// Replace lost ORDB circuits (seed: "a new circuit (CREATE_FAST) with a peer
    /// randomly chosen taking the first one of the selected bucket and extend to another
    /// one randomly chosen too").
    fn fill_ordbs(&mut self) {
        for _ in 0..8 {
            let Some(p) = self.peersm.as_ref() else {
                return;
            };
            if !p.bootstrapped || p.ordbs.len() >= p.cfg.ordb_circuits {
                return;
            }
            // The first (longest-lived) peer of each bucket that is not a first hop yet.
            let eligible =
                |r: &PeerRecord| !p.ordbs.values().any(|c| c.first == r.id) && !p.suspected(&r.id);
            let buckets: Vec<PeerRecord> = (0..crate::dht::NUM_BUCKETS as u8)
                .filter_map(|b| p.table.bucket(b).iter().find(|e| eligible(&e.record)))
                .map(|e| e.record.clone())
                .collect();
            if buckets.is_empty() {
                return;
            }
            let i = (self.rng.next_u32() as usize) % buckets.len();
            let first = buckets[i].clone();
            if !self.open_ordb(first) {
                return;
            }
        }
    }

    // ---- serving side ------------------------------------------------------------------

    pub(super) fn on_dht_request(&mut self, key: CircKey, sid: Option<StreamId>, msg: RelayMsg) {
        let now = self.now;
        let Some(Circuit::Relay(r)) = self.circuits.get(&key) else {
            return;
        };
        let from = link_key(r.prev.conn);
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        // At a bridge, registrations are the job (a fellow bridge forwards every peer
        // registered there over one link, faster than a peer's rate): they are bounded
        // by the cap on verifications in flight instead.
        let exempt = p.cfg.bridge && matches!(msg, RelayMsg::DbFindPeer(_));
        if !exempt && !p.limiter.allow(&from, now) {
            self.counters.bump(Count::DhtRateLimited);
            return;
        }
        let k = p.cfg.dht.k;
        let closest = |p: &PeersmState, target: &Key| -> Vec<PeerRecord> {
            p.table
                .closest(target, k)
                .into_iter()
                .map(|e| e.record.clone())
                .collect()
        };
        match msg {
            RelayMsg::DhtPing(m) if !m.reply && sid.is_some() => {
                let cell = RelayCell::new(sid, DhtPing { reply: true });
                self.send_relay_inbound(key, &cell);
            }
            RelayMsg::DhtFindNode(m) if sid.is_some() => {
                let peers = closest(p, &Key::from(m.target));
                self.send_found(key, sid, FoundKind::CloserNodes, &peers);
            }
            RelayMsg::DhtFindValue(m) if sid.is_some() => {
                let holders = p.store.answer(&m.hash_name, now, MAX_FOUND_PEERS);
                if holders.is_empty() {
                    let peers = closest(p, &Key::for_hash_name(&m.hash_name));
                    self.send_found(key, sid, FoundKind::CloserNodes, &peers);
                } else {
                    self.send_found(key, sid, FoundKind::Holders, &holders);
                }
            }
            RelayMsg::DhtStore(m) => self.on_dht_store(m),
            RelayMsg::DbFindPeer(m) if sid.is_some() => {
                let asker = m.peer;
                // A random peer other than the asker: registered ones at a bridge.
                let pool: Vec<PeerRecord> = if p.cfg.bridge {
                    p.registered.clone()
                } else {
                    p.table.iter().map(|e| e.record.clone()).collect()
                };
                let pool: Vec<PeerRecord> = pool.into_iter().filter(|r| r.id != asker.id).collect();
                if !pool.is_empty() {
                    let i = (self.rng.next_u32() as usize) % pool.len();
                    let cell = RelayCell::new(
                        sid,
                        DbFoundPeer {
                            peer: pool[i].clone(),
                        },
                    );
                    self.send_relay_inbound(key, &cell);
                }
                // The asker (or the fellow forwarding it) built this circuit: our offer
                // verifying it can come down it, needing no signalling endpoint.
                self.signals.reachable_on(asker.id, key, self.now);
                self.verify_peer(asker);
            }
            _ => self.counters.bump(Count::UnexpectedCell),
        }
    }

    fn send_found(
        &mut self,
        key: CircKey,
        sid: Option<StreamId>,
        kind: FoundKind,
        peers: &[PeerRecord],
    ) {
        for body in found_cells(kind, peers) {
            if self
                .send_relay_inbound(key, &RelayCell::new(sid, body))
                .is_none()
            {
                return;
            }
        }
    }

    /// A peer asked to be registered: check it is who and where it says by building our
    /// own circuit to it and PINGing it; its answer inserts it.
    fn verify_peer(&mut self, rec: PeerRecord) {
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        if rec.id == p.me.id
            || p.verifying.contains(&rec.id)
            || (p.cfg.bridge && p.registered.iter().any(|r| r.id == rec.id))
            || p.table.get(&rec.id).is_some()
            || p.suspected(&rec.id)
        {
            return;
        }
        if p.verifying.len() >= p.cfg.max_requests / 2 {
            self.counters.bump(Count::DhtRefused);
            return;
        }
        p.verifying.insert(rec.id);
        self.send_ping(&rec.clone(), ReqKind::Verify(rec));
    }

    /// DHT_STORE: keep it, and pass it on to the closest peer we know if it is closer to
    /// the name than we are (the distance strictly shrinks, so the chain ends).
    fn on_dht_store(&mut self, m: DhtStore) {
        let now = self.now;
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        if p.store
            .put(&m.hash_name, m.peer.clone(), m.progress, now)
            .is_err()
        {
            self.counters.bump(Count::DhtRefused);
            return;
        }
        self.pass_on_store(m);
    }

    fn pass_on_store(&mut self, m: DhtStore) {
        let Some(p) = self.peersm.as_ref() else {
            return;
        };
        let key = Key::for_hash_name(&m.hash_name);
        let mine = key.distance(&Key::from(p.me.id));
        let next = p
            .table
            .closest(&key, 2)
            .into_iter()
            .map(|e| e.record.clone())
            .find(|r| r.id != m.peer.id && key.distance(&Key::from(r.id)) < mine);
        if let Some(next) = next {
            self.dht_send_oneway(&next, m.into());
        }
    }

    // ---- for the ORDB function (node/ordb.rs) -----------------------------------------

    /// Our built ORDB circuits and their ORDBs.
    pub(super) fn ordb_circuit_list(&self) -> Vec<(CircKey, PeerId)> {
        self.peersm.as_ref().map_or_else(Vec::new, |p| {
            p.ordbs
                .iter()
                .filter(|(_, c)| c.built)
                .map(|(k, c)| (*k, c.ordb.id))
                .collect()
        })
    }

    /// How long a DHT record of part of a file lives unless STOREd again, when such
    /// records have a lifetime of their own.
    pub(super) fn partial_record_ttl(&self) -> Option<core::time::Duration> {
        self.peersm
            .as_ref()
            .and_then(|p| p.cfg.dht.partial_record_ttl)
    }

    /// Stop re-announcing `name` (its record then expires at the closest nodes).
    pub(super) fn withdraw_announcement(&mut self, name: &HashName) {
        if let Some(p) = self.peersm.as_mut() {
            p.announced.remove(name);
        }
    }

    /// The id the next DHT lookup will run under.
    pub(super) fn next_dht_query_id(&self) -> Option<u64> {
        self.peersm.as_ref().map(|p| p.next_query)
    }

    // ---- maintenance -------------------------------------------------------------------

    /// Our own announcements are sent again (a fresh lookup each, as the closest node may
    /// have changed) every `republish_interval`.
    fn reannounce(&mut self) {
        let now = self.now;
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        if p.next_announce.is_none_or(|at| at > now) {
            return;
        }
        p.next_announce = Some(now + p.cfg.dht.republish_interval);
        let names: Vec<(HashName, Progress)> =
            p.announced.iter().map(|(n, g)| (n.clone(), *g)).collect();
        for (name, progress) in names {
            let Some(p) = self.peersm.as_mut() else {
                return;
            };
            if p.queries.len() >= p.cfg.max_queries {
                // The rest go at the next interval.
                self.counters.bump(Count::DhtRefused);
                return;
            }
            let q = p.next_query;
            p.next_query += 1;
            let key = Key::for_hash_name(&name);
            self.start_lookup(
                q,
                LookupKind::FindNode,
                key,
                Purpose::Store(name, progress),
                None,
            );
        }
    }

    pub(super) fn arm_dht_tick(&mut self) {
        let now = self.now;
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        let at = now + TICK;
        p.tick_at = Some(at);
        self.timers.insert((at, Timer::DhtTick));
    }

    pub(super) fn on_dht_tick(&mut self) {
        let now = self.now;
        let Some(p) = self.peersm.as_mut() else {
            return;
        };
        p.table.settle_expired_pings(now);
        p.store.expire(now);
        let republish = p.store.due_for_republish(now);
        let expired: Vec<(CircKey, StreamId)> = p
            .requests
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        let interval = p.cfg.dht.ping_interval;
        let due: Vec<PeerRecord> = p
            .table
            .peers_due_for_ping(now, interval)
            .map(|e| e.record.clone())
            .collect();
        for r in &due {
            p.table.ping_sent(&r.id, now);
        }
        for k in expired {
            if let Some(r) = self.peersm.as_mut().and_then(|p| p.requests.remove(&k)) {
                self.dht_request_failed(r.peer, r.kind);
            }
        }
        for r in due {
            self.send_ping(&r, ReqKind::Ping);
        }
        for (hash_name, h) in republish {
            self.pass_on_store(DhtStore {
                hash_name,
                peer: h.peer,
                progress: h.progress,
            });
        }
        self.reannounce();
        self.refresh_stored_for();
        self.refresh();
        self.fill_ordbs();
        self.close_idle_circuits();
        self.arm_dht_tick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cells::relay::RelayBody;

    fn rec(i: u8, modulus: usize) -> PeerRecord {
        PeerRecord {
            id: PeerId([i; 20]),
            ip: core::net::IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 0, i)),
            port: 9001,
            modulus: alloc::vec![0xA5; modulus],
            ntor_key: Some([i; 32]),
        }
    }

    fn body_len(m: &DhtFound) -> usize {
        let mut v = Vec::new();
        m.encode_body(&mut v).unwrap();
        v.len()
    }

    #[test]
    fn found_answers_fit_cells_and_end_as_specified() {
        // Eight 128-byte moduli with ntor keys: 2 records a cell, complete at 8, no end
        // cell.
        let eight: Vec<PeerRecord> = (0..8).map(|i| rec(i, 128)).collect();
        let cells = found_cells(FoundKind::CloserNodes, &eight);
        let counts: Vec<usize> = cells.iter().map(|c| c.peers.len()).collect();
        assert_eq!(counts, [2, 2, 2, 2]);
        // Fewer than 8: the empty DHT_FOUND ends the answer.
        let five = &eight[..5];
        let counts: Vec<usize> = found_cells(FoundKind::Holders, five)
            .iter()
            .map(|c| c.peers.len())
            .collect();
        assert_eq!(counts, [2, 2, 1, 0]);
        assert_eq!(found_cells(FoundKind::CloserNodes, &[]).len(), 1);
        // Any mix of moduli and more than 8 peers: every cell fits, at most 8 listed.
        for m in [1usize, 64, 128, 200, 255] {
            let many: Vec<PeerRecord> = (0..12).map(|i| rec(i, m)).collect();
            let cells = found_cells(FoundKind::CloserNodes, &many);
            assert!(
                cells.iter().all(|c| body_len(c) <= MAX_DATA_LEN),
                "modulus {m}"
            );
            let total: usize = cells.iter().map(|c| c.peers.len()).sum();
            assert_eq!(total, MAX_FOUND_PEERS);
            assert_eq!(record_len(&many[0]), {
                let mut v = Vec::new();
                DhtFound {
                    kind: FoundKind::CloserNodes,
                    peers: alloc::vec![many[0].clone()],
                }
                .encode_body(&mut v)
                .unwrap();
                v.len() - 2
            });
        }
    }
}
