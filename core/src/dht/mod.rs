//! The Peersm Kademlia DHT (seed, "DHT and Bridges", "Boostrap and peers discovery",
//! "Content discovery", "Security"): pure data structures and state machines that a node
//! drives with the DHT messages it carries on circuits.
//!
//! - [`distance`]: [`Key`], [`Distance`] (XOR) and [`bucket_index`].
//! - [`table`]: the [`RoutingTable`], 160 buckets of at most [`K`] peers kept from the
//!   longest-lived to the newest, a full bucket pinging its least recently seen peer
//!   before it lets a newcomer in.
//! - [`lookup`]: the iterative FIND_NODE / FIND_VALUE [`Lookup`], fed partial DHT_FOUND
//!   answers as they arrive.
//! - [`store`]: the bounded [`RecordStore`] of DHT_STORE announcements, and a per-peer
//!   [`RateLimiter`] for the defences.
//!
//! Nothing here sends, reads a clock or draws randomness: every entry point that needs
//! time takes `now: Instant`, and the node moves the messages.

pub mod distance;
pub mod lookup;
pub mod store;
pub mod table;

#[cfg(test)]
mod tests;

use core::time::Duration;

pub use distance::{Distance, Key, bucket_index};
pub use lookup::{Action, Lookup, LookupKind, PeerState};
pub use store::{Holder, RateLimiter, RecordStore, StoreError};
pub use table::{
    Entry, EntryStatus, InsertResult, K, NUM_BUCKETS, PendingEntry, PingOutcome, RoutingTable,
};

/// Every knob of the DHT. [`Default`] gives the values we run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtConfig {
    /// How many closest peers a lookup returns and waits for (Kademlia's k; the seed's
    /// buckets hold 8). The routing table's bucket size is the constant [`K`].
    pub k: usize,
    /// Requests a lookup keeps in flight at once (Kademlia's alpha).
    pub alpha: usize,
    /// How long a lookup waits for one peer before it stops counting it toward `alpha`
    /// (a late answer is still used).
    pub peer_timeout: Duration,
    /// Candidates a lookup remembers: the closest ones win.
    pub max_candidates: usize,
    /// Peers one lookup contacts at most: bounds a lookup fed endless fake "closer" peers.
    pub max_contacts: usize,
    /// Holders a FIND_VALUE lookup collects before it stops.
    pub max_lookup_holders: usize,
    /// A peer not heard from for this long is PINGed (seed: "a PING every 15mn").
    pub ping_interval: Duration,
    /// How long a newcomer waits for the ping of the peer it would evict; after this the
    /// next newcomer may take its place.
    pub ping_timeout: Duration,
    /// Hash_names the store keeps.
    pub max_records: usize,
    /// Holders kept per hash_name.
    pub max_holders_per_record: usize,
    /// A STORE is forgotten this long after it was last received.
    pub record_ttl: Duration,
    /// With a value: a STORE for part of a file is forgotten this long after it was last
    /// received, and the closest nodes do not send it on. It names the ORDB of a
    /// download, which holds the file only through that download's circuit to it, and
    /// which STOREs it again only while that circuit lives (PROTOCOL.md §8, "Partial
    /// records"). `None` (the default: measured and not kept, sim/README.md): such
    /// records live `record_ttl` like any other.
    pub partial_record_ttl: Option<Duration>,
    /// A kept STORE is due to be sent on again this long after it was stored or last sent
    /// (shorter than `record_ttl`, so the closest nodes keep it alive).
    pub republish_interval: Duration,
    /// A bootstrapped peer looks up its own id again this often (jittered down to half),
    /// registering with the peers it meets: the neighbourhood then learns peers that
    /// joined since, and the peer learns them (Kademlia's bucket refresh, for the buckets
    /// that matter most under churn).
    pub refresh_interval: Duration,
    /// Verify peers listed in DHT_FOUND answers that would fit a bucket with room, so
    /// they can enter the table (each costs a circuit and a PING). Off, a table holds
    /// only the peers asked and those that registered, and lookups miss more often.
    pub verify_listed: bool,
    /// When a peer enters the table among our `k` closest, tell our other `k` closest
    /// about it (a DB_FIND_PEER naming it, which they verify by PING as any
    /// registration). Queried peers never learn who asked (lookups are anonymous), so
    /// without it a newcomer is known only by the peers its own lookups reached, and
    /// neighbourhoods that an early, poor lookup missed never meet.
    pub introduce_neighbours: bool,
    /// DB_FIND_PEERs a bootstrap sends its bridge: each answer is another random peer
    /// the bootstrap lookup starts from. One entry point puts a joiner in that peer's
    /// part of the network only; from several, its lookup and its registrations span
    /// the parts, so parts that formed apart (early joiners that met nobody) merge.
    pub bootstrap_seeds: usize,
    /// Closest peers an announcement's DHT_STORE goes to (each passes it on toward the
    /// closest): a record survives its closest holder leaving.
    pub store_replicas: usize,
    /// Rate limiting: requests a peer may send in a burst.
    pub rate_burst: u32,
    /// Rate limiting: requests per second a peer may sustain.
    pub rate_per_sec: u32,
    /// Rate limiting: peers tracked at once (least recently seen forgotten first).
    pub rate_max_peers: usize,
    /// A FIND_VALUE answer names first this many holders of part of the file, those
    /// stored longest, before the whole holders, so that ORDBs send the queries for what
    /// downloaders already hold to them (PROTOCOL.md §8, "answer order"). 0 (the
    /// default): measured and not kept, since partial holders are mostly ORDBs of
    /// downloads, which churn (sim/README.md, "Partial holders first").
    pub answer_partial_lead: usize,
    /// With `answer_partial_lead`, the first partial holder named goes to the back of
    /// the record, so successive answers lead with each partial holder in turn.
    pub answer_partial_turn: bool,
}

impl Default for DhtConfig {
    fn default() -> DhtConfig {
        DhtConfig {
            k: K,
            alpha: 3,
            peer_timeout: Duration::from_secs(10),
            max_candidates: 4 * K,
            max_contacts: 128,
            max_lookup_holders: 16,
            ping_interval: Duration::from_secs(15 * 60),
            ping_timeout: Duration::from_secs(30),
            max_records: 4096,
            max_holders_per_record: 16,
            record_ttl: Duration::from_secs(60 * 60),
            partial_record_ttl: None,
            republish_interval: Duration::from_secs(45 * 60),
            refresh_interval: Duration::from_secs(10 * 60),
            verify_listed: true,
            introduce_neighbours: true,
            bootstrap_seeds: 3,
            store_replicas: 3,
            rate_burst: 20,
            rate_per_sec: 2,
            rate_max_peers: 1024,
            answer_partial_lead: 0,
            answer_partial_turn: false,
        }
    }
}
