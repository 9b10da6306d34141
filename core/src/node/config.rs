//! A node's configuration: who it is, what it does, and the limits that bound it.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::exit_policy::ExitPolicy;

/// The functions a node performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Role {
    /// Accept links and relay circuits (an onion router). A node that is not a relay
    /// refuses CREATE cells (an onion proxy only).
    pub relay: bool,
    /// Open exit connections for BEGIN (subject to the exit policy).
    pub exit: bool,
}

impl Role {
    /// An onion proxy: builds circuits, relays nothing.
    pub const CLIENT: Role = Role {
        relay: false,
        exit: false,
    };
    /// A middle relay.
    pub const RELAY: Role = Role {
        relay: true,
        exit: false,
    };
    /// An exit relay.
    pub const EXIT: Role = Role {
        relay: true,
        exit: true,
    };
}

/// Upper bounds on everything a peer can make the node hold. Hitting one is a counted,
/// reported event (the object is refused or closed), never a panic or unbounded growth.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Links (handshaking or open) at once.
    pub max_links: usize,
    /// Circuits on one link.
    pub max_circuits_per_link: usize,
    /// Circuits through or from this node in all.
    pub max_circuits: usize,
    /// Streams on one circuit.
    pub max_streams_per_circuit: usize,
    /// Bytes queued for sending on one connection; a circuit whose cells would overflow
    /// it is closed with RESOURCELIMIT.
    pub max_queued_bytes_per_conn: usize,
    /// Bytes an exit connection may buffer from its destination beyond what the windows
    /// let it send; the runtime should read no more than `Node::read_capacity` allows.
    pub max_exit_buffer: usize,
    /// How long a link handshake may take.
    pub link_handshake_timeout: Duration,
    /// An open link that carries no circuit and no cell for this long is closed (its
    /// transport closed, as tor-spec's channels are; Tor closes idle channels after
    /// a few minutes too), so a bridge dialed by thousands of joiners does not keep a
    /// link to each. `None`: links stay until a side closes them.
    pub link_idle_timeout: Option<Duration>,
    /// How long building a circuit may take.
    pub circuit_build_timeout: Duration,
    /// How long an exit connection may take to open.
    pub exit_connect_timeout: Duration,
    /// RELAY_EARLY cells accepted on one circuit (tor-spec: at most 8).
    pub max_relay_early: u8,
    /// NETINFO clock skew reported as an event beyond this many seconds.
    pub clock_skew_report_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_links: 1024,
            max_circuits_per_link: 4096,
            max_circuits: 16384,
            max_streams_per_circuit: 256,
            max_queued_bytes_per_conn: 4 << 20,
            max_exit_buffer: 256 << 10,
            link_handshake_timeout: Duration::from_secs(30),
            link_idle_timeout: Some(Duration::from_secs(180)),
            circuit_build_timeout: Duration::from_secs(60),
            exit_connect_timeout: Duration::from_secs(30),
            max_relay_early: 8,
            clock_skew_report_secs: 3600,
        }
    }
}

/// Everything a node is made from. A node is a pure function of its config and inputs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The seed of every random choice the node makes (keys, ids, padding, challenges).
    pub seed: [u8; 32],
    /// What the node does.
    pub role: Role,
    /// Unix time (seconds) at `Instant::ZERO` of the driver's clock, for NETINFO
    /// timestamps and certificate lifetimes. The runtime reads the wall clock once; the
    /// simulator picks a fixed date.
    pub unix_time_at_zero: u64,
    /// Which exits this node opens (only used when `role.exit`).
    pub exit_policy: ExitPolicy,
    /// Documents served to BEGIN_DIR streams, by HTTP path (e.g.
    /// `/tor/status-vote/current/consensus-microdesc`). Empty: not a directory, and
    /// BEGIN_DIR is answered with END NOTDIRECTORY.
    pub directory: BTreeMap<String, Vec<u8>>,
    /// Resource bounds.
    pub limits: Limits,
    /// The Peersm DHT/peer role (`None`: the node takes no part in the DHT and counts
    /// DHT messages as unexpected).
    pub peersm: Option<PeersmConfig>,
}

/// The Peersm peer role: how the node advertises itself in the DHT and what it builds.
#[derive(Debug, Clone)]
pub struct PeersmConfig {
    /// The address other peers reach us at (our PEER record's IP and port).
    pub addr: core::net::SocketAddr,
    /// The DHT's knobs.
    pub dht: crate::dht::DhtConfig,
    /// ORDB circuits the node keeps (the seed: "at least 6 circuits").
    pub ordb_circuits: usize,
    /// Act as a bridge: register peers that send DB_FIND_PEER and answer with one of them.
    pub bridge: bool,
    /// Peers a bridge keeps registered (the oldest is forgotten first).
    pub max_registered: usize,
    /// DHT requests this node keeps outstanding at once (lookups, pings, verifications).
    pub max_requests: usize,
    /// Lookups running at once.
    pub max_queries: usize,
    /// The ORDB and seeder role: content store, lists, serving (PROTOCOL.md section 9).
    pub ordb: OrdbConfig,
    /// Peer introduction (PEER_SIGNAL): what an introducer accepts, what a node keeps.
    pub signal: SignalConfig,
}

/// Peer introduction knobs (PROTOCOL.md section 12).
#[derive(Debug, Clone)]
pub struct SignalConfig {
    /// Offers one offerer may have introduced in a burst (a token bucket per link the
    /// offers come in on; 0 with `offers_per_sec` 0 turns the limit off).
    pub offer_burst: u32,
    /// Offers one offerer may have introduced per second after its burst.
    pub offers_per_sec: u32,
    /// Offerers whose bucket is kept (the least recently seen is forgotten first).
    pub max_offerers: usize,
    /// Peers whose introducer (the peer we learned their record from) is remembered
    /// (the oldest is forgotten first).
    pub max_introducers: usize,
    /// How long a circuit we sent a DB_FIND_PEER registering a peer on stays open for
    /// the verifier's offer to come down it (PROTOCOL.md section 12, "Registrants"):
    /// zero (the default) when peers reach us without signalling (TLS); the WebRTC
    /// runtime sets it for nodes whose every link is WebRTC.
    pub registration_hold: Duration,
}

impl Default for SignalConfig {
    fn default() -> SignalConfig {
        SignalConfig {
            // A joining peer dials the bridge's peer and then, during its lookups, a few
            // peers per answer: 16 at once and 4 a second cover that; a flood does not
            // get through.
            offer_burst: 16,
            offers_per_sec: 4,
            max_offerers: 1024,
            max_introducers: 512,
            registration_hold: Duration::ZERO,
        }
    }
}

/// The ORDB and seeder knobs of a Peersm node (PROTOCOL.md, "ORDB function in the node").
#[derive(Debug, Clone)]
pub struct OrdbConfig {
    /// Bytes the node's chunk store may hold (what it seeds and what it downloaded).
    pub store_budget: usize,
    /// Bytes of the file answers this node relays as an ORDB that it keeps, to answer
    /// the next query for the same chunks itself (oldest forgotten first; 0 turns the
    /// cache off). PROTOCOL.md §9, DB_QUERY step 2.
    pub relay_cache_budget: usize,
    /// We are a facilitator (the F flag of our DB_INFO).
    pub facilitator: bool,
    /// Names kept in the OR_files_P / OR_streams_P lists (the oldest is forgotten).
    pub max_names: usize,
    /// Peer references kept per name (the oldest is forgotten).
    pub refs_per_name: usize,
    /// Streams served from our store (or relay cache) at once; past it a query is
    /// answered UNAVAILABLE. 256: since a busy server sends the rarest parts first,
    /// the streams of the others stay open longer, and at 64 the seeder refused
    /// thousands of queries, which its ORDBs then took for misses (PROTOCOL.md §9,
    /// "Bounds").
    pub max_serving: usize,
    /// Queries forwarded (spliced) at once.
    pub max_splices: usize,
    /// One-hop circuits to peers found with FIND_VALUE kept at once.
    pub max_forward_circuits: usize,
    /// Holders of a name a FIND_VALUE fallback connects to (the seed: 4).
    pub find_value_peers: usize,
    /// DB_QUERYs accepted per second on one circuit (a token bucket per circuit; 0 turns
    /// the limit off). Past it a query is answered DB_END UNAVAILABLE (PROTOCOL.md 9.7).
    pub query_rate: u32,
    /// The bucket's depth: DB_QUERYs one circuit may send in a burst.
    pub query_burst: u32,
    /// Facilitators (peers whose DB_INFO had F = 1) remembered; the seed's fallback when
    /// a FIND_VALUE finds no holder.
    pub max_facilitators: usize,
    /// Facilitators a query is sent to, in turn, after an unsuccessful FIND_VALUE.
    pub facilitator_tries: usize,
    /// Pass every name we get a reference for on to our own ORDBs (the seed's "they
    /// tell them what they know other peers have"). Off by default: the passed-on
    /// references cannot be told from holders' and make ORDBs forward queries around
    /// cycles (PROTOCOL.md §9); without it an ORDB that has no reference finds holders
    /// with FIND_VALUE (ORDBs STORE names new to them, whole holders announce).
    pub pass_on_names: bool,
    /// STORE our own record in the DHT for what we publish (`Command::Seed`,
    /// `Command::Live`), beside the records our ORDBs STORE. Off by default: the record
    /// names us as the publisher to anyone who looks the name up, and queries that
    /// reach us directly bypass our ORDBs' relay caches (PROTOCOL.md §9, "Seeding").
    /// For a public server, or a publisher without ORDB circuits.
    pub store_own_record: bool,
    /// **Test and simulation only**: this node flips a byte of every DB_DATA it relays
    /// for others (a tampering ORDB), so tests can check downloaders catch it.
    pub tamper_relayed_data: bool,
    /// The downloader's knobs (circuits used, window, blocks, pipelining, slow and stall
    /// rules) for the files and live streams this node fetches.
    pub download: crate::ordb::DownloadConfig,
}

impl Default for OrdbConfig {
    fn default() -> OrdbConfig {
        OrdbConfig {
            store_budget: 256 << 20,
            relay_cache_budget: 8 << 20,
            facilitator: false,
            max_names: 4096,
            refs_per_name: 16,
            max_serving: 256,
            max_splices: 256,
            max_forward_circuits: 32,
            find_value_peers: 4,
            query_rate: 200,
            query_burst: 100,
            max_facilitators: 16,
            facilitator_tries: 3,
            pass_on_names: false,
            store_own_record: false,
            tamper_relayed_data: false,
            download: crate::ordb::DownloadConfig::default(),
        }
    }
}

impl PeersmConfig {
    /// Defaults for a peer reachable at `addr`.
    pub fn new(addr: core::net::SocketAddr) -> PeersmConfig {
        PeersmConfig {
            addr,
            dht: crate::dht::DhtConfig::default(),
            ordb_circuits: 6,
            bridge: false,
            max_registered: 1024,
            max_requests: 256,
            max_queries: 16,
            ordb: OrdbConfig::default(),
            signal: SignalConfig::default(),
        }
    }
}

impl NodeConfig {
    /// A config with default limits, no exits and no directory.
    pub fn new(seed: [u8; 32], role: Role, unix_time_at_zero: u64) -> Self {
        NodeConfig {
            seed,
            role,
            unix_time_at_zero,
            exit_policy: ExitPolicy::reject_all(),
            directory: BTreeMap::new(),
            limits: Limits::default(),
            peersm: None,
        }
    }
}
