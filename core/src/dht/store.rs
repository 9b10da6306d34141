//! What a node keeps for others: the DHT_STORE announcements ("`peer` holds `hash_name`")
//! it is among the closest to, bounded in every dimension, and a per-peer rate limiter for
//! the requests it serves.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

use super::DhtConfig;
use crate::Instant;
use crate::cells::relay::{HashName, PeerRecord, Progress};
use crate::crypto::identity::PeerId;

/// Why a STORE was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The store holds `max_records` hash_names already.
    Full,
    /// This hash_name has `max_holders_per_record` live holders already, none with less
    /// of the file than the newcomer.
    TooManyHolders,
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            StoreError::Full => "record store full",
            StoreError::TooManyHolders => "too many holders for this hash_name",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StoreError {}

/// One peer holding (part of) a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// How to reach it.
    pub peer: PeerRecord,
    /// How much it has.
    pub progress: Progress,
    /// When it is forgotten unless announced again.
    pub expires: Instant,
    /// When the node should send this STORE on again.
    pub republish_at: Instant,
    /// It came once the record was full, in the place of a holder with less of the
    /// file: for a whole holder, a peer that finished after the first announcers.
    pub late: bool,
}

/// The bounded store of DHT_STORE announcements, keyed by hash_name (the DHT key of a
/// name is [`super::Key::for_hash_name`]).
#[derive(Debug, Clone)]
pub struct RecordStore {
    records: BTreeMap<HashName, Vec<Holder>>,
    max_records: usize,
    max_holders: usize,
    ttl: Duration,
    partial_ttl: Option<Duration>,
    republish_interval: Duration,
    partial_lead: usize,
    partial_turn: bool,
}

impl RecordStore {
    /// An empty store with `config`'s limits.
    pub fn new(config: &DhtConfig) -> RecordStore {
        RecordStore {
            records: BTreeMap::new(),
            max_records: config.max_records,
            max_holders: config.max_holders_per_record,
            ttl: config.record_ttl,
            partial_ttl: config.partial_record_ttl,
            republish_interval: config.republish_interval,
            partial_lead: config.answer_partial_lead,
            partial_turn: config.answer_partial_turn,
        }
    }

    /// Keeps "`peer` holds `hash_name` at `progress`" until `now + record_ttl` (for part
    /// of the file, `partial_record_ttl` when set). A holder
    /// already known is refreshed (its record and progress replaced). Expired holders of
    /// the name make room; expired names do not (call [`Self::expire`] periodically), so a
    /// put never scans the whole store. When the name's holders are all live, the
    /// newcomer replaces the one with the least progress (the longest announced among
    /// equals) if it has at least as much.
    pub fn put(
        &mut self,
        hash_name: &HashName,
        peer: PeerRecord,
        progress: Progress,
        now: Instant,
    ) -> Result<(), StoreError> {
        let expires = now
            + match self.partial_ttl {
                Some(ttl) if progress != Progress::Full => ttl,
                _ => self.ttl,
            };
        let republish_at = now + self.republish_interval;
        let mut holder = Holder {
            peer,
            progress,
            expires,
            republish_at,
            late: false,
        };
        let Some(holders) = self.records.get_mut(hash_name) else {
            if self.records.len() >= self.max_records {
                return Err(StoreError::Full);
            }
            if self.max_holders == 0 {
                return Err(StoreError::TooManyHolders);
            }
            self.records.insert(hash_name.clone(), alloc::vec![holder]);
            return Ok(());
        };
        if let Some(h) = holders.iter_mut().find(|h| h.peer.id == holder.peer.id) {
            h.peer = holder.peer;
            h.progress = holder.progress;
            h.expires = expires;
            // The announcer just sent it around: no need to send it on before the next
            // interval.
            h.republish_at = republish_at;
            return Ok(());
        }
        if holders.len() >= self.max_holders {
            holders.retain(|h| h.expires > now);
        }
        if holders.len() >= self.max_holders {
            // Full: the newcomer takes the place of the holder with the least of the file,
            // the longest announced among those, if it has as much. Otherwise the first
            // announcers would be every lookup's answer for a whole TTL, while those who
            // finished later (idle uplinks) were never found: the swarm's queries then
            // queued at a few holders (sim/README.md, `swarm --seed 32`).
            let weakest = holders
                .iter()
                .enumerate()
                .min_by_key(|(_, h)| (h.progress, h.expires))
                .map(|(i, h)| (i, h.progress));
            match weakest {
                Some((i, p)) if p <= holder.progress => {
                    holders.remove(i);
                    holder.late = true;
                }
                _ => return Err(StoreError::TooManyHolders),
            }
        }
        holders.push(holder);
        Ok(())
    }

    /// The live holders of `hash_name`.
    pub fn get(&self, hash_name: &HashName, now: Instant) -> impl Iterator<Item = &Holder> + '_ {
        self.records
            .get(hash_name)
            .into_iter()
            .flatten()
            .filter(move |h| h.expires > now)
    }

    /// A FIND_VALUE answer: up to `max` live holders of `hash_name`. The
    /// `answer_partial_lead` holders of part of the file stored longest come first
    /// (none by default; with `answer_partial_turn`, each in turn). Then whole holders
    /// that came once the record was full, in turn: the first one named goes to
    /// the back of the record (the seed's rotation on use), so successive lookups
    /// spread over them. Then the other holders, in the record's order: the first
    /// announcers (the seeder and its ORDBs, whose relay caches keep the chunks the
    /// swarm's front asks for) carry the swarm until others hold the whole file.
    /// Before, the answer was always the record's first holders: downloaders that
    /// finished later were stored but never named (sim/README.md, "Whole holders in
    /// turn").
    pub fn answer(&mut self, hash_name: &HashName, now: Instant, max: usize) -> Vec<PeerRecord> {
        let Some(holders) = self.records.get_mut(hash_name) else {
            return Vec::new();
        };
        let late_whole = |h: &Holder| h.late && h.progress == Progress::Full;
        let mut live: Vec<&Holder> = holders.iter().filter(|h| h.expires > now).collect();
        let lead: Vec<PeerId> = live
            .iter()
            .filter(|h| h.progress != Progress::Full)
            .take(self.partial_lead)
            .map(|h| h.peer.id)
            .collect();
        // Stable: record order within each group.
        live.sort_by_key(|h| (!lead.contains(&h.peer.id), !late_whole(h)));
        let answer: Vec<PeerRecord> = live.iter().take(max).map(|h| h.peer.clone()).collect();
        // The first named of each group in turn goes to the back of the record.
        if let Some(i) = holders
            .iter()
            .position(|h| h.expires > now && late_whole(h))
        {
            holders[i..].rotate_left(1);
        }
        if self.partial_turn
            && let Some(first) = lead.first()
            && let Some(i) = holders.iter().position(|h| h.peer.id == *first)
        {
            holders[i..].rotate_left(1);
        }
        answer
    }

    /// Forgets expired holders and names left without holders. Returns how many holders
    /// were dropped.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        self.records.retain(|_, holders| {
            let before = holders.len();
            holders.retain(|h| h.expires > now);
            dropped += before - holders.len();
            !holders.is_empty()
        });
        dropped
    }

    /// The live announcements due to be sent on (a DHT_STORE each, to the closest peers of
    /// the name), rescheduled `republish_interval` later. With `partial_record_ttl`,
    /// holders of part of a file are not: only their announcer keeps them alive, while
    /// the download it speaks for lasts (PROTOCOL.md §8, "Partial records").
    pub fn due_for_republish(&mut self, now: Instant) -> Vec<(HashName, Holder)> {
        let mut due = Vec::new();
        for (name, holders) in &mut self.records {
            for h in holders.iter_mut() {
                let sent_on = h.progress == Progress::Full || self.partial_ttl.is_none();
                if sent_on && h.republish_at <= now && h.expires > now {
                    h.republish_at = now + self.republish_interval;
                    due.push((name.clone(), h.clone()));
                }
            }
        }
        due
    }

    /// Names stored.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// No names stored.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Holders stored, all names together (expired ones not yet dropped included).
    pub fn holder_count(&self) -> usize {
        self.records.values().map(Vec::len).sum()
    }

    /// Every name with its holders (expired ones not yet dropped included).
    pub fn iter(&self) -> impl Iterator<Item = (&HashName, &[Holder])> + '_ {
        self.records.iter().map(|(n, h)| (n, h.as_slice()))
    }
}

/// Token units per request: tokens are counted in billionths so a refill of `per_sec`
/// tokens a second is exact per nanosecond.
const TOKEN: u64 = 1_000_000_000;

#[derive(Debug, Clone)]
struct TokenBucket {
    /// Billionths of a token.
    tokens: u64,
    refilled: Instant,
    /// Key of this peer in the LRU index.
    seq: u64,
}

/// Per-peer token buckets: each peer may send `burst` requests at once and `per_sec` a
/// second after that. At most `max_peers` peers are tracked; the least recently seen is
/// forgotten first (it comes back with a full bucket, which is the cost of bounded
/// memory).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    peers: BTreeMap<PeerId, TokenBucket>,
    /// Last-use order: sequence number -> peer.
    lru: BTreeMap<u64, PeerId>,
    next_seq: u64,
    burst: u64,
    per_sec: u64,
    max_peers: usize,
}

impl RateLimiter {
    /// A limiter allowing `burst` requests at once and `per_sec` a second, for at most
    /// `max_peers` peers.
    pub fn new(burst: u32, per_sec: u32, max_peers: usize) -> RateLimiter {
        RateLimiter {
            peers: BTreeMap::new(),
            lru: BTreeMap::new(),
            next_seq: 0,
            burst: u64::from(burst).saturating_mul(TOKEN),
            per_sec: u64::from(per_sec),
            max_peers: max_peers.max(1),
        }
    }

    /// A limiter with `config`'s `rate_*` limits.
    pub fn from_config(config: &DhtConfig) -> RateLimiter {
        RateLimiter::new(
            config.rate_burst,
            config.rate_per_sec,
            config.rate_max_peers,
        )
    }

    /// Whether `peer` may make one more request now; if so, it is counted.
    pub fn allow(&mut self, peer: &PeerId, now: Instant) -> bool {
        let seq = self.next_seq;
        self.next_seq += 1;
        let bucket = match self.peers.get_mut(peer) {
            Some(b) => {
                self.lru.remove(&b.seq);
                b
            }
            None => {
                if self.peers.len() >= self.max_peers
                    && let Some((_, old)) = self.lru.pop_first()
                {
                    self.peers.remove(&old);
                }
                self.peers.entry(*peer).or_insert(TokenBucket {
                    tokens: self.burst,
                    refilled: now,
                    seq,
                })
            }
        };
        bucket.seq = seq;
        self.lru.insert(seq, *peer);
        let elapsed = u64::try_from((now - bucket.refilled).as_nanos()).unwrap_or(u64::MAX);
        bucket.tokens = bucket
            .tokens
            .saturating_add(elapsed.saturating_mul(self.per_sec))
            .min(self.burst);
        bucket.refilled = bucket.refilled.max(now);
        if bucket.tokens >= TOKEN {
            bucket.tokens -= TOKEN;
            true
        } else {
            false
        }
    }

    /// Peers tracked.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// No peers tracked.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}
