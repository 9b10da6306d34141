//! Counted reasons: every refusal, limit hit and protocol violation increments one named
//! counter, so operators and tests can see what a node rejected and why.

use core::fmt;

macro_rules! counters {
    ($( $(#[$m:meta])* $name:ident, )*) => {
        /// Something the node refused, closed or dropped.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(usize)]
        pub enum Count { $( $(#[$m])* $name, )* }

        impl Count {
            /// Every counter, in order.
            pub const ALL: &'static [Count] = &[$(Count::$name,)*];

            /// The counter's name.
            pub const fn name(self) -> &'static str {
                match self { $(Count::$name => stringify!($name),)* }
            }
        }
    };
}

counters! {
    /// A cell that did not decode (closes the link).
    MalformedCell,
    /// A cell not allowed in the link's or circuit's current state.
    UnexpectedCell,
    /// The peer's VERSIONS had no version in common with ours.
    NoCommonVersion,
    /// The peer's CERTS did not prove an identity (or not the expected one).
    BadCertificates,
    /// A link handshake ran out of time.
    HandshakeTimeout,
    /// A circuit handshake (CREATE_FAST, ntor) failed to verify.
    CircuitHandshakeFailed,
    /// A circuit took too long to build.
    CircuitBuildTimeout,
    /// A cell named a circuit that does not exist.
    UnknownCircuit,
    /// A CREATE named a circuit id already in use, or one with the wrong high bit.
    CircuitIdInUse,
    /// A CREATE arrived at a node that is not a relay.
    NotARelay,
    /// A relay cell no hop recognized where it had to be recognized.
    UnrecognizedRelayCell,
    /// A relay message that did not decode.
    MalformedRelayMessage,
    /// More RELAY_EARLY cells than allowed, or EXTEND2 outside RELAY_EARLY.
    RelayEarlyViolation,
    /// DATA beyond a flow-control window, or an unexpected SENDME.
    FlowControlViolation,
    /// An authenticated SENDME with a wrong tag, or a SENDME without one.
    BadSendmeTag,
    /// A limit on links was hit.
    TooManyLinks,
    /// A limit on circuits was hit.
    TooManyCircuits,
    /// A limit on streams was hit.
    TooManyStreams,
    /// A connection's send queue was full; the circuit was closed.
    SendQueueFull,
    /// An exit connection's buffer was overrun by its runtime.
    ExitBufferOverrun,
    /// A BEGIN refused by the exit policy (or at a non-exit).
    ExitPolicyRejected,
    /// An EXTEND2 that could not be carried out (bad link specifiers, failed link).
    ExtendFailed,
    /// An event about a stream or circuit that no longer exists (dropped quietly).
    StaleReference,
    /// A DHT request over a peer's rate limit (dropped unanswered).
    DhtRateLimited,
    /// A DHT request refused: a limit on requests, records or registrations was hit.
    DhtRefused,
    /// A DHT reply that matched no request of ours (late, or forged).
    DhtUnexpectedReply,
    /// A DHT request of ours timed out or its circuit failed.
    DhtRequestFailed,
    /// A routing-table peer dropped after it failed a PING.
    DhtPeerDropped,
    /// A lookup peer whose answers were never closer to the target (seed, "Security"):
    /// once per lookup that caught it.
    SuspectPeer,
    /// A DB_QUERY whose counter reached 5 (a forwarding loop): answered DB_END.
    OrdbLoopStopped,
    /// A DB_QUERY answered DB_END UNAVAILABLE (nobody found to serve it).
    OrdbUnavailable,
    /// A query from another ORDB for chunks of a file that neither we nor the partial
    /// holders we know hold: answered UNAVAILABLE at once, for the asker to try its next
    /// holder.
    OrdbPartialMiss,
    /// An ORDB request refused by a limit (streams served, splices, lists, store).
    OrdbRefused,
    /// A server sent more DB_DATA than the stream's window allowed (the splice ended).
    OrdbWindowViolation,
    /// A DB_* message on a stream that carries no such exchange.
    OrdbUnexpected,
    /// A content reply (DB_CONNECTED, DB_DATA, ...) for a request no one made here, or
    /// one the bounded reply buffer could not keep.
    OrdbReplyDropped,
    /// Bytes of DB_DATA payload this node served from its own chunk store (not relayed):
    /// what it contributed as a seeder. Grows by the bytes, not by one.
    OrdbBytesServed,
    /// A download dropped an ORDB circuit that delivered data failing verification.
    DownloadTampering,
    /// An ORDB caught an answer it relays failing verification (PROTOCOL.md 6.6): the
    /// upstream circuit destroyed, a holder's peer convicted, the requester told DESTROYED.
    OrdbTamperCaught,
    /// A peer proven to tamper (a download's ORDB, or a holder an ORDB connected to):
    /// never picked as an ORDB or a holder again, removed from the DHT table.
    PeerConvicted,
    /// An ORDB ended a relayed answer whose DB_DATA came without the hashes that prove it
    /// (not relayed; the requester told DESTROYED).
    OrdbRelayUnproven,
    /// A download dropped an ORDB circuit far slower than its others.
    DownloadCircuitSlow,
    /// A download dropped an ORDB circuit whose GET got no data for the stall timeout.
    DownloadCircuitStalled,
    /// A download dropped an ORDB circuit after repeated UNAVAILABLE or hash-less answers.
    DownloadCircuitStrikes,
    /// A download asked a range on a second circuit, the first not answering (a hedge).
    DownloadHedge,
    /// A hedge's second GET answered first and kept the range.
    DownloadHedgeWon,
    /// A download handed the tail of a range to an idle circuit (the end game).
    DownloadTailSplit,
    /// A PEER_SIGNAL that broke the fragment rules (out of order, wrong circuit, unknown
    /// kind, a loop) or a reassembly restarted: dropped.
    SignalBad,
    /// A PEER_SIGNAL for a peer we cannot reach, or an answer with no route: dropped.
    SignalNoRoute,
    /// A PEER_SIGNAL introduction refused by a limit (routes, circuits).
    SignalRefused,
    /// A signal reassembly or reply path dropped by a bound or its lifetime.
    SignalDropped,
    /// A DB_QUERY refused by the per-circuit query rate limit (answered DB_END
    /// UNAVAILABLE).
    OrdbRateLimited,
    /// DB_DATA cells served from this node's own store (what it seeded or downloaded).
    OrdbChunksServed,
    /// Queries forwarded to a facilitator after an unsuccessful FIND_VALUE.
    OrdbToFacilitator,
    /// A DB_QUERY served from the relay cache: chunks we relayed for an earlier query.
    OrdbCacheHit,
    /// A DB_QUERY served from the relay cache while a query of ours still fetches its
    /// chunks (served as they arrive; also counted in `OrdbCacheHit`).
    OrdbCacheJoined,
    /// A PEER_SIGNAL offer refused by the introducer's per-offerer rate limit (answered
    /// REFUSED RATE_LIMITED).
    SignalRateLimited,
    /// PEER_SIGNAL REFUSED sent back to an offerer (any reason).
    SignalRefusalSent,
}

/// The counters of one node.
#[derive(Clone, PartialEq, Eq)]
pub struct Counters {
    counts: [u64; Count::ALL.len()],
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            counts: [0; Count::ALL.len()],
        }
    }
}

impl Counters {
    /// Add one to `c`.
    pub fn bump(&mut self, c: Count) {
        self.counts[c as usize] = self.counts[c as usize].saturating_add(1);
    }

    /// Add `n` to `c` (for counters of bytes).
    pub fn add(&mut self, c: Count, n: u64) {
        self.counts[c as usize] = self.counts[c as usize].saturating_add(n);
    }

    /// The value of `c`.
    pub fn get(&self, c: Count) -> u64 {
        self.counts[c as usize]
    }

    /// The counters that are not zero.
    pub fn nonzero(&self) -> impl Iterator<Item = (Count, u64)> + '_ {
        Count::ALL
            .iter()
            .map(|&c| (c, self.get(c)))
            .filter(|&(_, n)| n > 0)
    }

    /// Sum of all counters.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.nonzero().map(|(c, n)| (c.name(), n)))
            .finish()
    }
}
