//! The Kademlia routing table: 160 buckets of at most [`K`] peers.
//!
//! Bucket `j` holds the peers at XOR distance `2^j <= d < 2^(j+1)` from us (seed, "DHT and
//! Bridges"). Each entry keeps its live time (`first_seen`); a bucket is sorted from the
//! longest-lived peer to the newest and a full bucket takes no newcomer while its peers
//! answer (seed: "sort the bucket from the older to the newer, if the bucket is full no
//! new peer can be added"): long-lived peers are the likeliest to stay.
//!
//! libp2p's refinement: a newcomer to a full bucket waits as the bucket's one
//! [`PendingEntry`] while the bucket's least recently seen peer is PINGed. If that peer
//! fails (or does not answer within `ping_timeout`), it is evicted and the newcomer takes
//! its place; if it answers, the newcomer is dropped. So dead peers leave, live ones are
//! never displaced, and the table never holds more than `160 * K` entries plus one pending
//! newcomer per bucket.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::time::Duration;

use super::distance::{Key, bucket_index};
use crate::Instant;
use crate::cells::relay::PeerRecord;
use crate::crypto::identity::PeerId;

/// Peers per bucket (the seed's "160 buckets of 8 peers max").
pub const K: usize = 8;

/// Buckets in a table: one per bit of the 160-bit id.
pub const NUM_BUCKETS: usize = 160;

/// Whether a PING to an entry is outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    /// Heard from, no PING outstanding.
    Alive,
    /// PINGed at `since`, no answer yet.
    Pinging {
        /// When the PING was sent.
        since: Instant,
    },
}

/// A peer in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// How to reach it.
    pub record: PeerRecord,
    /// When it entered the table: its live time is `now - first_seen`.
    pub first_seen: Instant,
    /// When we last heard from it (a message or a PING answer).
    pub last_seen: Instant,
    /// Whether a PING is outstanding.
    pub status: EntryStatus,
}

impl Entry {
    /// Its id.
    pub fn id(&self) -> PeerId {
        self.record.id
    }

    /// How long it has been in the table.
    pub fn live_time(&self, now: Instant) -> Duration {
        now - self.first_seen
    }
}

/// A newcomer waiting for a full bucket's PING to decide whether it gets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// The newcomer.
    pub record: PeerRecord,
    /// When it arrived (and when the PING of `ping` was asked for).
    pub since: Instant,
    /// The entry being PINGed: it is evicted for the newcomer if it fails.
    pub ping: PeerId,
}

/// What [`RoutingTable::insert_or_update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertResult {
    /// The peer is new and had room.
    Inserted,
    /// The peer was known: its record and `last_seen` were refreshed.
    Updated,
    /// Its bucket is full: the peer waits while the node PINGs `ping` and reports with
    /// [`RoutingTable::on_ping_result`].
    Pending {
        /// The entry to PING.
        ping: PeerId,
    },
    /// Its bucket is full and already has a newcomer waiting: the peer is dropped.
    Full,
    /// The peer is us.
    SelfId,
}

/// What [`RoutingTable::on_ping_result`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingOutcome {
    /// The peer answered and stays; a newcomer waiting on it was dropped.
    Alive,
    /// The peer failed and was removed; `replaced_by` is the newcomer that took its place.
    Evicted {
        /// The newcomer let in, if one was waiting.
        replaced_by: Option<PeerId>,
    },
    /// The peer is not in the table.
    Unknown,
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    /// Sorted by `first_seen`, oldest first; at most `K`.
    entries: Vec<Entry>,
    pending: Option<PendingEntry>,
}

impl Bucket {
    fn position(&self, id: &PeerId) -> Option<usize> {
        self.entries.iter().position(|e| e.record.id == *id)
    }

    /// Inserts keeping the `first_seen` order (after equal ones).
    fn insert_sorted(&mut self, entry: Entry) {
        let at = self
            .entries
            .partition_point(|e| e.first_seen <= entry.first_seen);
        self.entries.insert(at, entry);
    }

    /// Lets the waiting newcomer in, if there is one and room.
    fn promote_pending(&mut self) -> Option<PeerId> {
        if self.entries.len() >= K {
            return None;
        }
        let p = self.pending.take()?;
        let id = p.record.id;
        self.insert_sorted(Entry {
            record: p.record,
            first_seen: p.since,
            last_seen: p.since,
            status: EntryStatus::Alive,
        });
        Some(id)
    }

    /// Settles a newcomer whose PING got no answer in `timeout`: the silent entry is
    /// evicted for it; one heard from since is kept and the newcomer dropped.
    fn settle_expired_pending(&mut self, now: Instant, timeout: Duration) -> bool {
        let Some(p) = &self.pending else {
            return false;
        };
        if p.since + timeout > now {
            return false;
        }
        match self.position(&p.ping) {
            Some(i) if matches!(self.entries[i].status, EntryStatus::Pinging { .. }) => {
                self.entries.remove(i);
                self.promote_pending();
            }
            _ => self.pending = None,
        }
        true
    }
}

/// The routing table of the peer `local`.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    local: PeerId,
    buckets: Vec<Bucket>,
    ping_timeout: Duration,
    /// Latest `now` seen: time never goes backwards.
    latest: Instant,
}

impl RoutingTable {
    /// An empty table for `local`; a newcomer waits at most `ping_timeout` for the PING
    /// that decides whether it gets in (see [`super::DhtConfig::ping_timeout`]).
    pub fn new(local: PeerId, ping_timeout: Duration) -> RoutingTable {
        RoutingTable {
            local,
            buckets: (0..NUM_BUCKETS).map(|_| Bucket::default()).collect(),
            ping_timeout,
            latest: Instant::ZERO,
        }
    }

    /// Our own id.
    pub fn local_id(&self) -> PeerId {
        self.local
    }

    fn clock(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now);
        self.latest
    }

    fn bucket_of(&self, id: &PeerId) -> Option<usize> {
        bucket_index(&Key::from(self.local), &Key::from(id)).map(usize::from)
    }

    /// Records that we heard from `record`'s peer at `now` (it sent us a message or
    /// answered one). The node should call this only for peers it talked to, not for
    /// peers merely listed in a DHT_FOUND: those are unverified.
    pub fn insert_or_update(&mut self, record: PeerRecord, now: Instant) -> InsertResult {
        let now = self.clock(now);
        let ping_timeout = self.ping_timeout;
        let Some(b) = self.bucket_of(&record.id) else {
            return InsertResult::SelfId;
        };
        let bucket = &mut self.buckets[b];
        bucket.settle_expired_pending(now, ping_timeout);
        if let Some(i) = bucket.position(&record.id) {
            let e = &mut bucket.entries[i];
            e.record = record;
            e.last_seen = now;
            e.status = EntryStatus::Alive;
            // Hearing from the peer is as good as its PING answer.
            if bucket
                .pending
                .as_ref()
                .is_some_and(|p| p.ping == e.record.id)
            {
                bucket.pending = None;
            }
            return InsertResult::Updated;
        }
        if let Some(p) = bucket.pending.as_mut().filter(|p| p.record.id == record.id) {
            p.record = record;
            return InsertResult::Pending { ping: p.ping };
        }
        if bucket.entries.len() < K {
            bucket.insert_sorted(Entry {
                record,
                first_seen: now,
                last_seen: now,
                status: EntryStatus::Alive,
            });
            return InsertResult::Inserted;
        }
        if bucket.pending.is_some() {
            return InsertResult::Full;
        }
        // Full: PING the least recently seen entry (ties: the longest-lived).
        let Some(victim) = bucket.entries.iter_mut().min_by_key(|e| e.last_seen) else {
            return InsertResult::Full;
        };
        if victim.status == EntryStatus::Alive {
            victim.status = EntryStatus::Pinging { since: now };
        }
        let ping = victim.record.id;
        bucket.pending = Some(PendingEntry {
            record,
            since: now,
            ping,
        });
        InsertResult::Pending { ping }
    }

    /// Records that the node sent a periodic PING to `peer` (see
    /// [`Self::peers_due_for_ping`]), so it is not listed as due again. False if unknown.
    pub fn ping_sent(&mut self, peer: &PeerId, now: Instant) -> bool {
        let now = self.clock(now);
        match self.get_mut(peer) {
            Some(e) => {
                if e.status == EntryStatus::Alive {
                    e.status = EntryStatus::Pinging { since: now };
                }
                true
            }
            None => false,
        }
    }

    /// The answer to a PING of `peer` (`ok`), or its failure or timeout (`!ok`). A failed
    /// peer is removed (the seed: peers "leave the network without telling the others")
    /// and a newcomer waiting in its bucket takes the place.
    pub fn on_ping_result(&mut self, peer: &PeerId, ok: bool, now: Instant) -> PingOutcome {
        let now = self.clock(now);
        let Some(b) = self.bucket_of(peer) else {
            return PingOutcome::Unknown;
        };
        let bucket = &mut self.buckets[b];
        let Some(i) = bucket.position(peer) else {
            return PingOutcome::Unknown;
        };
        if ok {
            let e = &mut bucket.entries[i];
            e.last_seen = now;
            e.status = EntryStatus::Alive;
            if bucket.pending.as_ref().is_some_and(|p| p.ping == *peer) {
                bucket.pending = None;
            }
            PingOutcome::Alive
        } else {
            bucket.entries.remove(i);
            PingOutcome::Evicted {
                replaced_by: bucket.promote_pending(),
            }
        }
    }

    /// Removes `peer` (a waiting newcomer takes its place). Returns the removed entry.
    pub fn remove(&mut self, peer: &PeerId) -> Option<Entry> {
        let b = self.bucket_of(peer)?;
        let bucket = &mut self.buckets[b];
        if bucket
            .pending
            .as_ref()
            .is_some_and(|p| p.record.id == *peer)
        {
            bucket.pending = None;
            return None;
        }
        let i = bucket.position(peer)?;
        let e = bucket.entries.remove(i);
        bucket.promote_pending();
        Some(e)
    }

    /// Settles every newcomer whose PING got no answer within `ping_timeout`: the silent
    /// peer is evicted for it. Returns how many were settled. Also done lazily by
    /// [`Self::insert_or_update`] for its own bucket.
    pub fn settle_expired_pings(&mut self, now: Instant) -> usize {
        let now = self.clock(now);
        let timeout = self.ping_timeout;
        self.buckets
            .iter_mut()
            .filter(|b| b.pending.is_some())
            .map(|b| b.settle_expired_pending(now, timeout))
            .filter(|&s| s)
            .count()
    }

    /// The entry of `peer`.
    pub fn get(&self, peer: &PeerId) -> Option<&Entry> {
        let b = self.bucket_of(peer)?;
        let bucket = &self.buckets[b];
        bucket.position(peer).map(|i| &bucket.entries[i])
    }

    fn get_mut(&mut self, peer: &PeerId) -> Option<&mut Entry> {
        let b = self.bucket_of(peer)?;
        let bucket = &mut self.buckets[b];
        let i = bucket.position(peer)?;
        Some(&mut bucket.entries[i])
    }

    /// The `n` entries closest to `target`, closest first (exact: every entry is ranked).
    pub fn closest(&self, target: &Key, n: usize) -> Vec<&Entry> {
        let mut all: Vec<&Entry> = self.iter().collect();
        all.sort_by_cached_key(|e| target.distance(&Key::from(e.record.id)));
        all.truncate(n);
        all
    }

    /// Entries not heard from for `interval` (the seed: a PING every 15 minutes) and with
    /// no PING outstanding. Mark each one PINGed with [`Self::ping_sent`].
    pub fn peers_due_for_ping(
        &self,
        now: Instant,
        interval: Duration,
    ) -> impl Iterator<Item = &Entry> + '_ {
        let now = self.latest.max(now);
        self.iter()
            .filter(move |e| e.status == EntryStatus::Alive && now - e.last_seen >= interval)
    }

    /// Every entry, bucket 0 (closest) first, each bucket longest-lived first.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.buckets.iter().flat_map(|b| b.entries.iter())
    }

    /// Bucket `index`'s entries, longest-lived first (empty past 159).
    pub fn bucket(&self, index: u8) -> &[Entry] {
        self.buckets
            .get(usize::from(index))
            .map_or(&[], |b| b.entries.as_slice())
    }

    /// Bucket `index`'s waiting newcomer.
    pub fn pending(&self, index: u8) -> Option<&PendingEntry> {
        self.buckets
            .get(usize::from(index))
            .and_then(|b| b.pending.as_ref())
    }

    /// Entries in the table (waiting newcomers not counted).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.entries.len()).sum()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One line per non-empty bucket, for snapshot tests and the simulator:
    /// `b<index> n=<count>: <id> <live time>s/<since seen>s[ ping] ...[ | pending <id> ->
    /// <id>]`, farthest bucket first, ids abbreviated (`2C8B..5D19`), ages in whole
    /// seconds.
    pub fn render(&self, now: Instant) -> String {
        let now = self.latest.max(now);
        let mut s = String::new();
        let _ = writeln!(s, "table {} entries={}", abbrev(&self.local), self.len());
        for (i, b) in self.buckets.iter().enumerate().rev() {
            if b.entries.is_empty() && b.pending.is_none() {
                continue;
            }
            let _ = write!(s, "b{i} n={}:", b.entries.len());
            for e in &b.entries {
                let _ = write!(
                    s,
                    " {} {}s/{}s",
                    abbrev(&e.record.id),
                    (now - e.first_seen).as_secs(),
                    (now - e.last_seen).as_secs()
                );
                if let EntryStatus::Pinging { .. } = e.status {
                    s.push_str(" ping");
                }
            }
            if let Some(p) = &b.pending {
                let _ = write!(
                    s,
                    " | pending {} -> {}",
                    abbrev(&p.record.id),
                    abbrev(&p.ping)
                );
            }
            s.push('\n');
        }
        s
    }
}

/// An id abbreviated to its first and last two bytes (`2C8B..5D19`): the head tells
/// far peers apart, the tail near ones (which share our head).
fn abbrev(id: &PeerId) -> String {
    let [a, b, .., y, z] = id.0;
    let mut s = String::with_capacity(10);
    let _ = write!(s, "{a:02X}{b:02X}..{y:02X}{z:02X}");
    s
}
