//! The drive contract: what goes into a [`Node`](super::Node) and what comes out.
//!
//! One way in per kind of stimulus — [`Input`] for the network and timers, [`Command`] for
//! the application — and one way out, [`Output`], drained with `poll_output` after every
//! input or command until it yields [`Output::Timeout`], which is always last.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use crate::Instant;
use crate::cells::channel::DestroyReason;
use crate::cells::relay::EndReason;
use crate::cells::relay::{HashName, PeerRecord, Progress, SignalKind};
use crate::crypto::identity::PeerId;
use crate::dht::Key;

/// A byte connection the runtime carries for the node: a link to another node, or at an
/// exit, a connection to a destination. Chosen by the node (for connections it asks for)
/// or returned by `accept_link` (for links a peer opened).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// An application's handle on a circuit this node built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CircuitHandle(pub u64);

/// An application's handle on a stream this node opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamHandle(pub u64);

/// What a link's transport proves about the two ends, passed in by the runtime: the
/// SHA-256 digests of the TLS (or DTLS) certificates. The responder certifies its own in
/// CERTS (type 5); the initiator checks the peer's against it. This is what binds the
/// Tor handshake to the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkBinding {
    /// Digest of this end's certificate.
    pub local: [u8; 32],
    /// Digest of the peer's certificate.
    pub remote: [u8; 32],
}

/// A network or timer stimulus.
#[derive(Debug)]
pub enum Input<'a> {
    /// Time has advanced to this instant; due timers fire. An early timeout is a no-op.
    Timeout(Instant),
    /// A connection the node asked for (with [`Output::Connect`]) is established.
    Connected {
        /// When.
        now: Instant,
        /// Which connection.
        conn: ConnId,
        /// For a link: the transport's certificate digests. Ignored for exit connections.
        binding: LinkBinding,
    },
    /// Bytes arrived on a connection, in any chunking.
    Data {
        /// When.
        now: Instant,
        /// Which connection.
        conn: ConnId,
        /// The bytes.
        data: &'a [u8],
    },
    /// A connection closed, failed to open, or was reset.
    Closed {
        /// When.
        now: Instant,
        /// Which connection.
        conn: ConnId,
        /// True when the connection ended in an error (refused, reset, timed out) rather
        /// than an orderly close.
        error: bool,
    },
}

impl Input<'_> {
    /// The instant this input happened at.
    pub fn now(&self) -> Instant {
        match *self {
            Input::Timeout(now)
            | Input::Connected { now, .. }
            | Input::Data { now, .. }
            | Input::Closed { now, .. } => now,
        }
    }
}

/// A hop of a path, as the application (or a directory) describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTarget {
    /// Where to reach it.
    pub addr: SocketAddr,
    /// Its RSA identity fingerprint.
    pub id: PeerId,
    /// Its ntor onion key (curve25519).
    pub ntor_key: [u8; 32],
    /// Its ed25519 identity, if known (sent as a link specifier when extending).
    pub ed_id: Option<[u8; 32]>,
}

/// How the first hop of a circuit is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstHop {
    /// CREATE2 with ntor: authenticated against the relay's onion key.
    #[default]
    Ntor,
    /// CREATE_FAST: no public-key step, relying on the link's authentication (as the
    /// Peersm design does for its first hops).
    Fast,
}

/// Where an exit stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamTarget {
    /// A TCP destination, by name or address.
    Tcp {
        /// Host name or address literal.
        host: String,
        /// Port.
        port: u16,
    },
    /// The last hop's directory service (BEGIN_DIR).
    Directory,
}

/// What the application asks of the node.
#[derive(Debug, Clone)]
pub enum Command {
    /// Build a circuit along `path` (first hop first). Answered with
    /// [`Event::CircuitBuilt`] or [`Event::CircuitClosed`].
    BuildCircuit {
        /// The hops, first to last.
        path: Vec<RelayTarget>,
        /// How to create the first hop.
        first_hop: FirstHop,
    },
    /// Close a circuit (DESTROY towards the first hop).
    CloseCircuit(CircuitHandle),
    /// Open a stream on a built circuit; answered with [`Event::StreamOpened`] or
    /// [`Event::StreamClosed`].
    OpenStream {
        /// The circuit to carry it.
        circuit: CircuitHandle,
        /// Where the last hop should connect it.
        target: StreamTarget,
    },
    /// Close a stream (RELAY_END, reason DONE) once its queued data is sent.
    CloseStream(StreamHandle),
    /// Peersm: join the DHT (or refresh our place in it) through a bridge or a known
    /// peer: a FIND_NODE lookup of our own id whose first answering peers become our ORDB
    /// circuits. Answered with [`Event::DhtLookupDone`] then [`Event::OrdbCircuitsReady`].
    Bootstrap {
        /// Where the first peer comes from.
        via: BootstrapVia,
    },
    /// Peersm: the peers closest to a key ([`Event::DhtLookupDone`]).
    FindNode(Key),
    /// Peersm: the holders of a hash_name ([`Event::DhtLookupDone`] with `holders`).
    FindValue(HashName),
    /// Peersm: announce that we hold `hash_name`: a lookup of the name's key, then a
    /// DHT_STORE to the closest peer found (which passes it on).
    Store {
        /// The file.
        hash_name: HashName,
        /// How much of it we have.
        progress: Progress,
    },
    /// Peersm: send a request to every ORDB over its two-hop ORDB circuit: DHT_PING
    /// (`None`) or DHT_FIND_VALUE of the name. Each answer is an [`Event::OrdbAnswered`].
    AskOrdbs(Option<HashName>),
    /// ORDB: seed a file. The node signs it (ed25519, with `key` as the secret seed, or a
    /// key drawn from its RNG), keeps it pinned in its chunk store and advertises it to
    /// its ORDBs (DB_INFO 100 %), which STORE the name in the DHT (the node itself too
    /// only with `OrdbConfig::store_own_record`). Answered with [`CommandOk::Content`]
    /// (the hash_name).
    Seed {
        /// The file's bytes.
        data: Vec<u8>,
        /// Its MIME type (≤ 255 bytes).
        mime_type: String,
        /// The ed25519 secret seed, or `None` for a fresh key.
        key: Option<[u8; 32]>,
    },
    /// ORDB: start publishing a live stream (advertised and STOREd like a file); segments
    /// are added with [`Command::LivePush`]. Answered with [`CommandOk::Content`].
    Live {
        /// Its MIME type.
        mime_type: String,
        /// The ed25519 secret seed, or `None` for a fresh key.
        key: Option<[u8; 32]>,
        /// Chunks per signed segment (1..=225; 64 is the default of PROTOCOL.md 6.5).
        segment_chunks: u16,
    },
    /// ORDB: publish the next segment of a live stream we started: 1..=segment_chunks
    /// chunks of at most 486 bytes, signed with the current time. Streams waiting for
    /// them are served at once.
    LivePush {
        /// The stream's hash_name.
        hash_name: [u8; 20],
        /// The segment's chunks.
        chunks: Vec<Vec<u8>>,
    },
    /// ORDB: tell our ORDBs (DB_INFO) that we have `progress` of `hash_name`; repeated to
    /// ORDB circuits built later. Seeding does this itself; this is for content that
    /// arrives otherwise (and for tests).
    Advertise {
        /// The name.
        hash_name: HashName,
        /// How much of it we have.
        progress: Progress,
    },
    /// **Test hook**: send a raw DB_QUERY (counter 0) on one ORDB circuit (the one to
    /// `via`, or the first). Every answer cell is kept for [`crate::node::Node::take_query_replies`];
    /// DB_SENDME is sent as a downloader would.
    Query {
        /// The name.
        hash_name: HashName,
        /// Wire chunk number (1-based; 0 = info / live join).
        chunk: u64,
        /// Chunks asked for (0 = the manifest only).
        nb_chunks: u16,
        /// The ORDB to ask (its peer id), or `None` for the first ORDB circuit.
        via: Option<PeerId>,
    },
    /// Peersm: fetch a file through the ORDB circuits (PROTOCOL.md §10). Answered with
    /// [`Event::ContentInfo`], [`Event::ContentReadable`] (read with
    /// `Node::read_content`), [`Event::ContentProgress`] and finally
    /// [`Event::ContentDone`].
    Get {
        /// The file's name.
        hash_name: HashName,
        /// Chunk ranges (`start..end`, 0-based) already held from an earlier run: never
        /// asked for, never read again (a resumed download).
        held: Vec<(u64, u64)>,
    },
    /// Peersm: join a live stream through the ORDB circuits; it never ends by itself.
    GetLive {
        /// The stream's name.
        hash_name: HashName,
    },
    /// Stop a download (DB_END FINISHED on its GETs); no further event.
    CancelGet(DownloadHandle),
    /// Peersm: send a WebRTC offer or answer (SDP) to peer `to` through the network
    /// (PEER_SIGNAL, PROTOCOL.md 3.1 and 12). An offer goes on our one-hop circuit to
    /// `via` (a peer with a circuit to `to`, a bridge say) or, without `via`, straight to
    /// `to`; an answer goes back the way its offer came, and so does a refusal
    /// ([`SignalKind::REFUSED`], one [`SignalRefusal`](crate::cells::relay::SignalRefusal)
    /// byte: the offer cannot be answered). The peer's reply (or an introducer's
    /// refusal) arrives as [`Event::SignalReceived`]. Answered with [`CommandOk::Done`].
    Signal {
        /// The peer the SDP is for.
        to: PeerId,
        /// The introducer, or `None` to send on our own circuit to `to`.
        via: Option<PeerId>,
        /// The exchange's id: chosen by the offerer, repeated by the answer.
        session: u32,
        /// [`SignalKind::OFFER`], [`SignalKind::ANSWER`] or [`SignalKind::REFUSED`].
        kind: SignalKind,
        /// The SDP (1..=8192 bytes); for a refusal, the reason byte.
        sdp: Vec<u8>,
    },
}

/// An application's handle on a download ([`Command::Get`], [`Command::GetLive`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DownloadHandle(pub u64);

/// Where a bootstrap gets its first peer.
#[derive(Debug, Clone)]
pub enum BootstrapVia {
    /// Ask a bridge with DB_FIND_PEER (over a one-hop CREATE_FAST circuit).
    Bridge(RelayTarget),
    /// A peer given out of band (the seed: "A just needs to know about one peer first").
    Peer(PeerRecord),
}

/// An application's handle on a DHT lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u64);

/// What a command started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOk {
    /// A circuit is being built under this handle.
    Circuit(CircuitHandle),
    /// A stream is being opened under this handle.
    Stream(StreamHandle),
    /// Done (closes).
    Done,
    /// A DHT lookup is running under this id.
    Query(QueryId),
    /// Content seeded or published under this hash_name.
    Content([u8; 20]),
    /// A download is running under this handle.
    Download(DownloadHandle),
}

/// Why a command or stream call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    /// The path is empty or longer than the node allows.
    BadPath,
    /// No such circuit, or it is not built yet.
    NoSuchCircuit,
    /// No such stream, or it is closed.
    NoSuchStream,
    /// The stream is not connected yet.
    NotConnected,
    /// A configured limit would be exceeded (see the counters).
    Limit,
    /// A Peersm command at a node without a Peersm config.
    NotAPeer,
    /// The content cannot be seeded (size, MIME type, chunk or segment size).
    BadContent,
    /// No such content (a live stream we do not publish).
    UnknownContent,
}

impl core::fmt::Display for CommandError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CommandError::BadPath => "a path needs between 1 and 8 hops",
            CommandError::NoSuchCircuit => "no such circuit, or it is not built yet",
            CommandError::NoSuchStream => "no such stream, or it is closed",
            CommandError::NotConnected => "the stream is not connected yet",
            CommandError::Limit => "a configured limit would be exceeded",
            CommandError::NotAPeer => "the node has no Peersm config",
            CommandError::BadContent => "the content cannot be seeded",
            CommandError::UnknownContent => "no such content",
        })
    }
}

/// Where a connection the node asks for should go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectTarget {
    /// A link (TLS or DTLS) to a relay; the handshake checks `id` when given.
    Relay {
        /// The relay's address.
        addr: SocketAddr,
        /// The identity the link must prove, if known.
        id: Option<PeerId>,
        /// A peer that can pass a WebRTC offer to `id` through the network (the
        /// `via` of a [`Command::Signal`]): the peer we learned `id`'s record from (a
        /// bridge's DB_FOUND_PEER, a DHT_FOUND), which has or had a circuit to it.
        /// Transports that need signalling send the offer through it and fall back to
        /// their own signalling without it; others ignore it.
        introducer: Option<PeerId>,
    },
    /// At an exit: a plain TCP connection for a stream, already checked against the exit
    /// policy.
    Exit {
        /// Host name or address literal to connect to.
        host: String,
        /// Port.
        port: u16,
    },
}

/// Why a link went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkCloseReason {
    /// The transport closed cleanly.
    Closed,
    /// The transport failed (refused, reset).
    TransportError,
    /// The link handshake did not finish in time.
    HandshakeTimeout,
    /// The peer broke the protocol (a counter says which rule).
    ProtocolViolation,
    /// The peer's certificates did not prove the expected identity.
    BadCertificates,
    /// No link protocol version in common.
    NoCommonVersion,
    /// We closed it (idle, shutdown, limit).
    Local,
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A link finished its handshake.
    LinkUp {
        /// The connection.
        conn: ConnId,
        /// The peer's proven RSA identity (for links we initiated), if any.
        peer: Option<PeerId>,
        /// The negotiated link protocol version.
        version: u16,
    },
    /// A link closed.
    LinkDown {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: LinkCloseReason,
    },
    /// The peer's NETINFO clock differs from ours by this many seconds (positive: the
    /// peer is ahead). Reported when beyond a threshold.
    ClockSkew {
        /// The connection.
        conn: ConnId,
        /// Peer's clock minus ours, in seconds.
        skew_secs: i64,
    },
    /// A circuit this node built is ready.
    CircuitBuilt(CircuitHandle),
    /// A circuit this node built closed (or failed to build).
    CircuitClosed {
        /// Which.
        circuit: CircuitHandle,
        /// The DESTROY reason (from the network or our own).
        reason: DestroyReason,
    },
    /// A stream was connected by the exit.
    StreamOpened {
        /// Which.
        stream: StreamHandle,
        /// The address the exit connected to, if it said.
        addr: Option<IpAddr>,
    },
    /// A stream has data to read with `Node::read_stream`.
    StreamReadable(StreamHandle),
    /// A stream can take more data with `Node::write_stream`.
    StreamWritable(StreamHandle),
    /// A stream closed.
    StreamClosed {
        /// Which.
        stream: StreamHandle,
        /// The END reason.
        reason: EndReason,
    },
    /// A DHT lookup ended.
    DhtLookupDone {
        /// Which.
        query: QueryId,
        /// The closest peers that answered, closest first (at most k).
        closest: Vec<PeerRecord>,
        /// For FIND_VALUE: the holders found.
        holders: Vec<PeerRecord>,
        /// The longest chain of answers that led to a peer that answered.
        hops: u32,
    },
    /// A bootstrap finished with this many ORDB circuits up.
    OrdbCircuitsReady(usize),
    /// A bridge (or peer) answered DB_FIND_PEER with this peer.
    PeerFound(PeerRecord),
    /// An ORDB answered a [`Command::AskOrdbs`] request over its ORDB circuit (one event
    /// per answer cell).
    OrdbAnswered {
        /// The command's id.
        query: QueryId,
        /// The ORDB (the circuit's last hop).
        ordb: PeerId,
        /// Peers a DHT_FOUND listed (empty for a PING reply).
        peers: Vec<PeerRecord>,
        /// The answer is complete.
        done: bool,
    },
    /// A download's manifest is verified.
    ContentInfo {
        /// Which download.
        handle: DownloadHandle,
        /// Bytes (0 for a live stream).
        size: u64,
        /// MIME type.
        mime: String,
    },
    /// In-order verified bytes can be read with `Node::read_content`.
    ContentReadable(DownloadHandle),
    /// A file download verified more chunks (at most one event per 0.1 %).
    ContentProgress {
        /// Which download.
        handle: DownloadHandle,
        /// Chunks verified.
        verified_chunks: u64,
        /// Chunks in the file.
        total_chunks: u64,
    },
    /// A file download ended (after its last byte was read, when it succeeded).
    ContentDone {
        /// Which download.
        handle: DownloadHandle,
        /// How.
        result: Result<(), crate::ordb::DlError>,
    },
    /// A peer's WebRTC offer or answer reached us through the network (whole), or a
    /// refusal of one of our offers. Answer an offer with [`Command::Signal`] (kind
    /// ANSWER, same `session`, `to: from`), or refuse it (kind REFUSED).
    SignalReceived {
        /// The sender (as it claims: the link handshake proves the answerer's identity);
        /// for a refusal, the target of our offer.
        from: PeerId,
        /// The exchange's id.
        session: u32,
        /// Offer, answer or refusal.
        kind: SignalKind,
        /// The SDP; for a refusal, its one reason byte
        /// ([`SignalRefusal`](crate::cells::relay::SignalRefusal)).
        sdp: Vec<u8>,
    },
}

/// Why the node wants to be woken at a [`Output::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutReason {
    /// Nothing scheduled; the instant is far in the future.
    Idle,
    /// A link deadline: its handshake's, or the next check for an idle link.
    Link,
    /// A circuit build deadline.
    CircuitBuild,
    /// An exit connection deadline.
    ExitConnect,
    /// A DHT deadline (lookup, request, PING, maintenance), or a download's (stalls,
    /// slow circuits, retries).
    Dht,
}

/// What the node asks of its driver.
#[derive(Debug)]
pub enum Output {
    /// Open a connection; report it with [`Input::Connected`] or [`Input::Closed`].
    Connect {
        /// The id the node will know it by.
        conn: ConnId,
        /// Where to.
        target: ConnectTarget,
    },
    /// Bytes are queued on this connection: pull them with `Node::poll_transmit` when the
    /// transport can take them.
    Transmit(ConnId),
    /// Close this connection (after sending what `poll_transmit` gave).
    Close(ConnId),
    /// Something for the application.
    Event(Event),
    /// Nothing more to do until this instant (or the next input). Always the last output.
    Timeout(Instant, TimeoutReason),
}
