//! bolero: arbitrary sequences of inputs and commands into a node never panic and never
//! break the window and limit invariants (issue 3).
//!
//! Three drivers, each reading a list of operations from the fuzzer's bytes:
//! - `relay_node_survives_hostile_peers`: one relay (exit) node; the fuzzer is every
//!   peer. Besides raw bytes it speaks well-formed but hostile cells built with the
//!   core's codecs, and completes CREATE_FAST / CREATE2 itself so that its RELAY cells are
//!   correctly encrypted and reach the relay's message handlers (BEGIN, DATA, SENDME,
//!   EXTEND2, TRUNCATE, …) with arbitrary fields.
//! - `client_node_survives_hostile_peers`: one client node building arbitrary paths; the
//!   fuzzer answers its dials and speaks hostile cells to it.
//! - `damaged_wire_between_client_and_relay`: a real client and a real relay whose link
//!   bytes the fuzzer flips, inserts and drops; every damaged link or circuit must end
//!   closed with a counter bumped, never hang.
//!
//! After every operation the driver drains `poll_output` (which must end in `Timeout`)
//! and checks the census against the configured `Limits`, the queued bytes of every
//! connection (by pulling them), and that no stream offers more than its window.
//!
//! Creating a node costs an RSA key generation, so nodes are created once per input and
//! every input carries many operations.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use onionpeer_core::Instant;
use onionpeer_core::cells::channel::{
    AuthChallenge, AuthMethod, Authenticate, CertEntry, CertType, Certs, ChanCell, ChanCmd,
    ChanMsg, ChannelCodec, CircId, Create2, CreateFast, Destroy, DestroyReason, HandshakeType,
    LINK_VERSIONS, Netinfo, Padding, Relay, RelayCellBody, RelayEarly, Unrecognized, Versions,
    Vpadding,
};
use onionpeer_core::cells::relay::{
    Begin, BeginDir, Connected, Data, DropMsg, End, EndReason, Extend2, Extended2, Host, LinkSpec,
    MAX_DATA_LEN, RelayCell, RelayMsg, Sendme, StreamId, Truncate, Truncated,
};
use onionpeer_core::cells::relay::{
    DbFindPeer, DbFoundPeer, DhtFindNode, DhtFindValue, DhtFound, DhtPing, DhtStore, FoundKind,
    HashName, PeerRecord, Progress,
};
use onionpeer_core::crypto::handshake::{
    CircuitKeys, FastClientState, NtorClientState, NtorPublicKey, fast_client_create_fixed,
    ntor_client_create_fixed,
};
use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::crypto::relay::{ClientCircuitCrypto, HopNum};
use onionpeer_core::dht::{K, Key, NUM_BUCKETS};
use onionpeer_core::node::Node;
use onionpeer_core::node::api::{BootstrapVia, Command};
use onionpeer_core::node::api::{
    CircuitHandle, ConnId, ConnectTarget, Event, FirstHop, Input, LinkBinding, Output, RelayTarget,
    StreamHandle, StreamTarget,
};
use onionpeer_core::node::config::{Limits, NodeConfig, PeersmConfig, Role};
use onionpeer_core::node::exit_policy::ExitPolicy;

// ---- the fuzzer's bytes as a stream of choices ---------------------------------------

/// Reads choices from the fuzzer's input, then from a generator seeded by it: a short
/// input still drives a long run, and the fuzzer's bytes steer its beginning.
struct Choices<'a> {
    data: &'a [u8],
    pos: usize,
    /// xorshift state once `data` is used up.
    state: u64,
    /// Choices left before the run ends.
    budget: usize,
}

impl<'a> Choices<'a> {
    fn new(data: &'a [u8], budget: usize) -> Self {
        let state = data.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }) | 1;
        Choices {
            data,
            pos: 0,
            state,
            budget: budget.max(data.len()),
        }
    }
    fn done(&self) -> bool {
        self.pos >= self.budget
    }
    fn u8(&mut self) -> u8 {
        let b = match self.data.get(self.pos) {
            Some(&b) => b,
            None => {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                (self.state >> 24) as u8
            }
        };
        self.pos += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.u16() as usize % n }
    }
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        for b in &mut a {
            *b = self.u8();
        }
        a
    }
    /// Up to `max` bytes (length first).
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.u8()).collect()
    }
    fn pick<'b, T>(&mut self, items: &'b [T]) -> Option<&'b T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len())])
        }
    }
}

// ---- configuration -------------------------------------------------------------------

const QUEUE_LIMIT: usize = 16 * 1024;
/// Choices (bytes) one run consumes at least: a few hundred operations.
const RUN_CHOICES: usize = 6000;
const UNIX_AT_ZERO: u64 = 1_767_225_600;

/// Small limits, so the fuzzer reaches every one of them.
fn small_limits() -> Limits {
    Limits {
        max_links: 3,
        max_circuits_per_link: 3,
        max_circuits: 5,
        max_streams_per_circuit: 2,
        max_queued_bytes_per_conn: QUEUE_LIMIT,
        max_exit_buffer: 4096,
        link_handshake_timeout: Duration::from_secs(5),
        link_idle_timeout: None,
        circuit_build_timeout: Duration::from_secs(10),
        exit_connect_timeout: Duration::from_secs(5),
        max_relay_early: 3,
        clock_skew_report_secs: 60,
    }
}

fn config(seed: u8, role: Role) -> NodeConfig {
    let mut c = NodeConfig::new([seed; 32], role, UNIX_AT_ZERO);
    c.limits = small_limits();
    if role.exit {
        c.exit_policy = ExitPolicy::accept_all();
        c.directory.insert(
            "/tor/server/authority".into(),
            b"router test 10.0.0.1 9001 0 0\n".to_vec(),
        );
    }
    c
}

// ---- invariants ----------------------------------------------------------------------

/// Stream window (cells) times the largest DATA payload.
const MAX_STREAM_CAPACITY: usize = 500 * MAX_DATA_LEN;

/// What the driver learned while draining a node's outputs.
#[derive(Default)]
struct Drained {
    transmit: Vec<ConnId>,
    connect: Vec<(ConnId, ConnectTarget)>,
    close: Vec<ConnId>,
    events: Vec<Event>,
}

/// Drain `poll_output`: it must end with `Timeout` within a bounded number of outputs.
fn drain(node: &mut Node) -> Drained {
    let mut d = Drained::default();
    for _ in 0..100_000 {
        match node.poll_output() {
            Output::Timeout(at, _) => {
                assert!(at >= node.now() || at == Instant::FAR_FUTURE || at < node.now());
                return d;
            }
            Output::Transmit(c) => d.transmit.push(c),
            Output::Connect { conn, target } => d.connect.push((conn, target)),
            Output::Close(c) => d.close.push(c),
            Output::Event(e) => d.events.push(e),
        }
    }
    panic!("poll_output never reached Timeout");
}

fn check_census(node: &Node) {
    let l = &node.config().limits;
    let (links, circuits, streams, exits) = node.census();
    // Links: accepted ones are bounded by max_links; dialed ones too.
    assert!(links <= l.max_links, "links {links} > {}", l.max_links);
    assert!(
        circuits <= l.max_circuits,
        "circuits {circuits} > {}",
        l.max_circuits
    );
    assert!(
        streams <= l.max_circuits * l.max_streams_per_circuit,
        "client streams {streams}"
    );
    assert!(
        exits <= l.max_circuits * l.max_streams_per_circuit,
        "exit streams {exits}"
    );
}

/// A Peersm node's tables stay within their configured bounds.
fn check_dht(node: &Node) {
    let Some(cfg) = node.config().peersm.as_ref() else {
        return;
    };
    let table = node.routing_table().expect("a peer has a table");
    assert!(table.len() <= NUM_BUCKETS * K, "table {}", table.len());
    for b in 0..NUM_BUCKETS as u8 {
        assert!(table.bucket(b).len() <= K, "bucket {b}");
    }
    assert!(
        table.iter().all(|e| e.id() != table.local_id()),
        "the node is in its own table"
    );
    let store = node.record_store().expect("a peer has a store");
    assert!(
        store.len() <= cfg.dht.max_records,
        "records {} > {}",
        store.len(),
        cfg.dht.max_records
    );
    assert!(
        store
            .iter()
            .all(|(_, h)| h.len() <= cfg.dht.max_holders_per_record),
        "holders per record"
    );
    assert!(node.ordb_circuits() <= cfg.ordb_circuits, "ORDB circuits");
}

fn check_streams(node: &Node, streams: &[StreamHandle]) {
    for &s in streams {
        let cap = node.stream_capacity(s);
        assert!(cap <= MAX_STREAM_CAPACITY, "stream capacity {cap}");
    }
}

/// Pull everything queued on `conn`; the first pull, with room for more than the limit,
/// must not exceed the limit. Returns the bytes.
fn pull_all(node: &mut Node, conn: ConnId) -> Vec<u8> {
    let limit = node.config().limits.max_queued_bytes_per_conn;
    let mut buf = vec![0u8; limit + 4096];
    let mut out = Vec::new();
    let mut first = true;
    for _ in 0..10_000 {
        let n = node.poll_transmit(conn, &mut buf);
        if first {
            assert!(n <= limit, "{n} bytes queued on {conn:?}, limit {limit}");
            first = false;
        }
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
    panic!("poll_transmit never ran dry on {conn:?}");
}

// ---- the fuzzer as a peer: hostile but well-formed cells -----------------------------

/// A circuit the fuzzer created on a node (it plays the client).
enum PeerCirc {
    /// CREATEs sent with this id, oldest first. Some were never delivered (framing
    /// failed) or refused, so the node's reply answers the oldest one it accepted.
    Pending(VecDeque<Create>),
    Open {
        crypto: Box<ClientCircuitCrypto>,
        /// The tag of the last cell the node sent us (for authenticated SENDMEs).
        last_tag: [u8; 20],
    },
}

/// Our half of a CREATE handshake, kept until the node answers it.
enum Create {
    Fast(FastClientState),
    Ntor(Box<NtorClientState>),
}

/// The fuzzer's end of one link to the node.
struct Peer {
    /// The link version we offered (the node picks it, if it supports it).
    version: Option<u16>,
    /// Whether the node's VERSIONS has been parsed from `rx`.
    saw_versions: bool,
    /// Bytes from the node not yet parsed into cells.
    rx: Vec<u8>,
    circs: BTreeMap<u32, PeerCirc>,
    /// Exit conns are not links: their bytes are not parsed.
    is_link: bool,
}

impl Peer {
    fn link() -> Peer {
        Peer {
            version: None,
            saw_versions: false,
            rx: Vec::new(),
            circs: BTreeMap::new(),
            is_link: true,
        }
    }

    fn codec(&self) -> ChannelCodec {
        match self.version.map(ChannelCodec::new) {
            Some(Ok(c)) if self.saw_versions => c,
            _ => ChannelCodec::negotiating(),
        }
    }

    /// Parse what the node sent: every cell must decode (the node never sends garbage),
    /// and CREATED_FAST / CREATED2 / RELAY cells move our circuits along.
    fn receive(&mut self, bytes: &[u8]) {
        if !self.is_link {
            return;
        }
        self.rx.extend_from_slice(bytes);
        let mut off = 0;
        loop {
            let codec = self.codec();
            match codec.decode(&self.rx[off..]) {
                Ok(Some((cell, used))) => {
                    off += used;
                    self.on_cell(cell);
                }
                Ok(None) => break,
                Err(e) => panic!("the node sent an undecodable cell: {e:?}"),
            }
        }
        self.rx.drain(..off);
    }

    fn on_cell(&mut self, cell: ChanCell) {
        let id = CircId::raw(cell.circ_id);
        match cell.msg {
            ChanMsg::Versions(_) => self.saw_versions = true,
            ChanMsg::CreatedFast(m) => {
                let mut r = [0u8; 40];
                r[..20].copy_from_slice(&m.y);
                r[20..].copy_from_slice(&m.kh);
                self.answer(id, |create| match create {
                    Create::Fast(s) => s.finish(&r).ok(),
                    Create::Ntor(_) => None,
                });
            }
            ChanMsg::Created2(m) => self.answer(id, |create| match create {
                Create::Ntor(s) => s.finish(&m.hdata).ok(),
                Create::Fast(_) => None,
            }),
            ChanMsg::Relay(mut r) => {
                if let Some(PeerCirc::Open { crypto, last_tag }) = self.circs.get_mut(&id)
                    && let Ok((_, tag)) = crypto.decrypt_inbound(&mut r.body.0)
                {
                    *last_tag = tag.0;
                }
            }
            ChanMsg::Destroy(_) => {
                self.circs.remove(&id);
            }
            _ => {}
        }
    }

    /// The node answered a CREATE on `id`: it must verify against one of ours.
    fn answer(&mut self, id: u32, finish: impl Fn(Create) -> Option<CircuitKeys>) {
        let Some(PeerCirc::Pending(sent)) = self.circs.get_mut(&id) else {
            return;
        };
        while let Some(create) = sent.pop_front() {
            if let Some(keys) = finish(create) {
                self.open(id, &keys);
                return;
            }
        }
        panic!("the node's answer on circuit {id:#x} matches none of our CREATEs");
    }

    /// Remember a CREATE we send, unless `id` is already an open circuit of ours.
    fn sent_create(&mut self, id: u32, create: Create) {
        match self
            .circs
            .entry(id)
            .or_insert(PeerCirc::Pending(VecDeque::new()))
        {
            PeerCirc::Pending(sent) => sent.push_back(create),
            PeerCirc::Open { .. } => {}
        }
    }

    fn open(&mut self, id: u32, keys: &CircuitKeys) {
        let mut crypto = Box::new(ClientCircuitCrypto::new());
        crypto.add_hop(keys).expect("first hop");
        self.circs.insert(
            id,
            PeerCirc::Open {
                crypto,
                last_tag: [0; 20],
            },
        );
    }

    /// Encode a cell as this link's current framing would, or `None` if it cannot.
    fn frame(&self, cell: &ChanCell) -> Option<Vec<u8>> {
        let codec = if cell.msg.cmd() == ChanCmd::VERSIONS {
            ChannelCodec::negotiating()
        } else {
            self.codec()
        };
        codec.encode_to_vec(cell).ok()
    }
}

/// An arbitrary circuit id: often one of ours, sometimes anything.
fn circ_id(c: &mut Choices, peer: &Peer) -> u32 {
    let ours: Vec<u32> = peer.circs.keys().copied().collect();
    match c.u8() % 4 {
        0 => c.u32(),
        1 => u32::from(c.u16() & 0x7fff),
        2 => c.pick(&ours).copied().unwrap_or(1),
        _ => {
            // A fresh id with the right high bit for an initiator (the fuzzer) on v4+.
            if peer.version.unwrap_or(0) >= 4 {
                c.u32() | 0x8000_0000
            } else {
                u32::from(c.u16() | 0x8000)
            }
        }
    }
}

fn ip(c: &mut Choices) -> IpAddr {
    if c.bool() {
        IpAddr::V4(Ipv4Addr::from(c.u32()))
    } else {
        IpAddr::from(c.array::<16>())
    }
}

fn link_specs(c: &mut Choices, known: &[RelayTarget]) -> Vec<LinkSpec> {
    let n = c.below(5);
    let mut specs = Vec::new();
    for _ in 0..n {
        specs.push(match c.u8() % 6 {
            0 => match c.pick(known) {
                Some(t) => match t.addr {
                    SocketAddr::V4(a) => LinkSpec::Ipv4 {
                        addr: *a.ip(),
                        port: a.port(),
                    },
                    SocketAddr::V6(a) => LinkSpec::Ipv6 {
                        addr: *a.ip(),
                        port: a.port(),
                    },
                },
                None => LinkSpec::Ipv4 {
                    addr: Ipv4Addr::from(c.u32()),
                    port: c.u16(),
                },
            },
            1 => LinkSpec::Ipv4 {
                addr: Ipv4Addr::from(c.u32()),
                port: c.u16(),
            },
            2 => LinkSpec::Ipv6 {
                addr: c.array::<16>().into(),
                port: c.u16(),
            },
            3 => match c.pick(known) {
                Some(t) => LinkSpec::RsaId(t.id.0),
                None => LinkSpec::RsaId(c.array()),
            },
            4 => LinkSpec::Ed25519Id(c.array()),
            _ => LinkSpec::Unrecognized {
                ty: c.u8(),
                body: c.bytes(20),
            },
        });
    }
    specs
}

/// A well-formed relay message with arbitrary fields.
fn relay_msg(c: &mut Choices, last_tag: [u8; 20], known: &[RelayTarget], dht: bool) -> RelayMsg {
    if dht && c.bool() {
        return dht_msg(c, known);
    }
    match c.u8() % 14 {
        0 => Begin {
            host: match c.u8() % 3 {
                0 => Host::Name(if c.bool() {
                    "echo.example".into()
                } else {
                    String::from_utf8_lossy(&c.bytes(30)).replace('\0', "")
                }),
                1 => Host::Ipv4(Ipv4Addr::from(c.u32())),
                _ => Host::Ipv6(c.array::<16>().into()),
            },
            port: c.u16(),
            flags: c.bool().then(|| c.u32()),
        }
        .into(),
        1 => BeginDir.into(),
        2..=4 => {
            let d = if c.bool() {
                b"GET /tor/server/authority HTTP/1.0\r\n\r\n".to_vec()
            } else {
                c.bytes(MAX_DATA_LEN)
            };
            Data::new(&d).expect("fits").into()
        }
        5 => End::new(EndReason(c.u8())).into(),
        6 => Sendme::V0.into(),
        7 => Sendme::V1 { tag: last_tag }.into(),
        8 => Sendme::V1 { tag: c.array() }.into(),
        9 => Extend2 {
            link_specs: link_specs(c, known),
            handshake_type: HandshakeType(c.u16() % 4),
            hdata: c.bytes(100),
        }
        .into(),
        10 => Truncate.into(),
        11 => DropMsg.into(),
        12 => Connected { addr: None }.into(),
        _ => match c.u8() % 2 {
            0 => Extended2 { hdata: c.bytes(64) }.into(),
            _ => Truncated {
                reason: DestroyReason(c.u8()),
            }
            .into(),
        },
    }
}

/// A PEER record: often one of the known relays (or the node itself), sometimes anything.
fn peer_record(c: &mut Choices, known: &[RelayTarget]) -> PeerRecord {
    let (id, addr, ntor) = match c.pick(known) {
        Some(t) if c.bool() => (t.id, t.addr, t.ntor_key),
        _ => (
            PeerId(c.array()),
            SocketAddr::new(ip(c), c.u16()),
            c.array(),
        ),
    };
    let modulus_len = 1 + c.below(160);
    PeerRecord {
        id,
        ip: addr.ip(),
        port: addr.port(),
        modulus: (0..modulus_len).map(|_| c.u8()).collect(),
        ntor_key: c.bool().then_some(ntor),
    }
}

/// A hash_name: one of a few (so STOREs pile up on the same names) or anything.
fn hash_name(c: &mut Choices) -> HashName {
    let bytes = if c.bool() {
        vec![b'n', c.u8() % 4]
    } else {
        c.bytes(60)
    };
    HashName::new(&bytes).unwrap_or_else(|_| HashName::new(b"x").expect("short name"))
}

/// A well-formed Peersm DHT message with arbitrary (hostile) fields: requests the node
/// serves, and answers it never asked for or asked for on another stream.
fn dht_msg(c: &mut Choices, known: &[RelayTarget]) -> RelayMsg {
    match c.u8() % 9 {
        0 => DhtPing { reply: c.bool() }.into(),
        1 => DhtFindNode {
            target: PeerId(c.array()),
            modulus: (0..1 + c.below(140)).map(|_| c.u8()).collect(),
        }
        .into(),
        2 => DhtFindValue {
            hash_name: hash_name(c),
        }
        .into(),
        3 | 4 => DhtStore {
            hash_name: hash_name(c),
            peer: peer_record(c, known),
            progress: [
                Progress::Quarter,
                Progress::Half,
                Progress::ThreeQuarters,
                Progress::Full,
            ][c.below(4)],
        }
        .into(),
        5 => DbFindPeer {
            peer: peer_record(c, known),
        }
        .into(),
        6 => DbFoundPeer {
            peer: peer_record(c, known),
        }
        .into(),
        _ => DhtFound {
            kind: if c.bool() {
                FoundKind::CloserNodes
            } else {
                FoundKind::Holders
            },
            peers: (0..c.below(4)).map(|_| peer_record(c, known)).collect(),
        }
        .into(),
    }
}

/// A well-formed but hostile channel cell for `peer`'s link, with arbitrary fields.
/// RELAY cells on circuits the fuzzer opened are correctly encrypted; with `dht`, many
/// of them carry Peersm DHT messages.
fn hostile_cell(
    c: &mut Choices,
    peer: &mut Peer,
    node_ntor: &NtorPublicKey,
    known: &[RelayTarget],
    dht: bool,
) -> Option<Vec<u8>> {
    let has_open = peer
        .circs
        .values()
        .any(|p| matches!(p, PeerCirc::Open { .. }));
    let kind = if has_open && !c.u8().is_multiple_of(3) {
        7
    } else {
        c.u8() % 13
    };
    let cell = match kind {
        0 => {
            let mut vs: Vec<u16> = (0..c.below(4) + 1)
                .map(|_| match c.u8() % 5 {
                    0 => 3,
                    1 => 4,
                    2 | 3 => 5,
                    _ => c.u16(),
                })
                .collect();
            if c.u8().is_multiple_of(8) {
                vs.clear();
            }
            if peer.version.is_none() {
                peer.version = vs
                    .iter()
                    .copied()
                    .filter(|v| LINK_VERSIONS.contains(v))
                    .max();
            }
            ChanCell::new(None, Versions { versions: vs })
        }
        1 => ChanCell::new(
            None,
            Netinfo {
                timestamp: if c.bool() {
                    UNIX_AT_ZERO as u32
                } else {
                    c.u32()
                },
                other_addr: c.bool().then(|| ip(c)),
                my_addrs: (0..c.below(3)).map(|_| ip(c)).collect(),
            },
        ),
        2 => ChanCell::new(
            None,
            Certs {
                entries: (0..c.below(4))
                    .map(|_| CertEntry {
                        cert_type: CertType(c.u8() % 8),
                        body: c.bytes(200),
                    })
                    .collect(),
            },
        ),
        3 => match c.u8() % 3 {
            0 => ChanCell::new(
                None,
                AuthChallenge {
                    challenge: c.array(),
                    methods: (0..c.below(3)).map(|_| AuthMethod(c.u16())).collect(),
                },
            ),
            1 => ChanCell::new(
                None,
                Authenticate {
                    auth_type: AuthMethod(c.u16() % 4),
                    body: c.bytes(300),
                },
            ),
            _ => ChanCell::new(None, Vpadding { len: c.u16() % 600 }),
        },
        4 | 5 => {
            let id = circ_id(c, peer);
            let (state, x) = fast_client_create_fixed(c.array());
            if CircId::new(id).is_some() {
                peer.sent_create(id, Create::Fast(state));
            }
            ChanCell::new(CircId::new(id), CreateFast { x })
        }
        6 => {
            let id = circ_id(c, peer);
            let (htype, hdata) = if !c.u8().is_multiple_of(4) {
                let secret = x25519_secret(c.array());
                let (state, skin) = ntor_client_create_fixed(secret, node_ntor);
                if CircId::new(id).is_some() {
                    peer.sent_create(id, Create::Ntor(Box::new(state)));
                }
                (HandshakeType::NTOR, skin.to_vec())
            } else {
                (HandshakeType(c.u16()), c.bytes(120))
            };
            ChanCell::new(
                CircId::new(id),
                Create2 {
                    handshake_type: htype,
                    hdata,
                },
            )
        }
        7..=9 => {
            // A correctly encrypted relay message on one of our open circuits.
            let open: Vec<u32> = peer
                .circs
                .iter()
                .filter(|(_, p)| matches!(p, PeerCirc::Open { .. }))
                .map(|(&k, _)| k)
                .collect();
            let id = *c.pick(&open)?;
            let Some(PeerCirc::Open { crypto, last_tag }) = peer.circs.get_mut(&id) else {
                return None;
            };
            let tag = *last_tag;
            let msg = relay_msg(c, tag, known, dht);
            let sid = match c.u8() % 4 {
                0 => None,
                1 => StreamId::new(c.u16()),
                _ => StreamId::new(1 + u16::from(c.u8() % 3)),
            };
            let cell = RelayCell {
                stream_id: sid,
                msg,
            };
            let mut body = cell.encode_zero_padded().ok()?;
            crypto.encrypt_outbound(&mut body, HopNum(0)).ok()?;
            let body = RelayCellBody(body);
            // EXTEND2 belongs in RELAY_EARLY; the fuzzer picks either for anything.
            let early =
                c.u8().is_multiple_of(3) || matches!(cell.msg, RelayMsg::Extend2(_)) && c.bool();
            if early {
                ChanCell::new(CircId::new(id), RelayEarly { body })
            } else {
                ChanCell::new(CircId::new(id), Relay { body })
            }
        }
        10 => {
            let id = circ_id(c, peer);
            let mut body = [0u8; 509];
            for b in body.iter_mut().take(c.below(510)) {
                *b = c.u8();
            }
            let body = RelayCellBody(body);
            if c.bool() {
                ChanCell::new(CircId::new(id), Relay { body })
            } else {
                ChanCell::new(CircId::new(id), RelayEarly { body })
            }
        }
        11 => {
            let id = circ_id(c, peer);
            ChanCell::new(
                CircId::new(id),
                Destroy {
                    reason: DestroyReason(c.u8()),
                },
            )
        }
        _ => match c.u8() % 3 {
            0 => ChanCell::new(None, Padding),
            1 => {
                let id = circ_id(c, peer);
                let cmd = ChanCmd(c.u8());
                let body = if cmd.is_var_len() {
                    c.bytes(600)
                } else {
                    {
                        let mut b = c.bytes(509);
                        b.resize(509, 0);
                        b
                    }
                };
                ChanCell::new(CircId::new(id), Unrecognized { cmd, body })
            }
            _ => {
                // Any message in the wrong place: a CREATED_FAST to a relay.
                let id = circ_id(c, peer);
                ChanCell::new(
                    CircId::new(id),
                    onionpeer_core::cells::channel::CreatedFast {
                        y: c.array(),
                        kh: c.array(),
                    },
                )
            }
        },
    };
    peer.frame(&cell)
}

fn x25519_secret(bytes: [u8; 32]) -> x25519_dalek::StaticSecret {
    x25519_dalek::StaticSecret::from(bytes)
}

fn ntor_of(t: &RelayTarget) -> NtorPublicKey {
    NtorPublicKey {
        id: t.id.0,
        onion_key: x25519_dalek::PublicKey::from(t.ntor_key),
    }
}

/// Fake relays for paths (nobody answers at their addresses unless the fuzzer does).
fn fake_targets() -> Vec<RelayTarget> {
    (0..3u8)
        .map(|i| RelayTarget {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 0, i + 1)), 9001),
            id: PeerId([i + 1; 20]),
            ntor_key: [i + 7; 32],
            ed_id: (i != 0).then_some([i; 32]),
        })
        .collect()
}

// ---- one node, the fuzzer as every peer ----------------------------------------------

/// One node under test with the fuzzer around it.
struct Solo {
    node: Node,
    now: Instant,
    ntor: NtorPublicKey,
    known: Vec<RelayTarget>,
    /// Connections the node knows (accepted, dialed, exit), with the fuzzer's end.
    peers: BTreeMap<ConnId, Peer>,
    circuits: Vec<CircuitHandle>,
    streams: Vec<StreamHandle>,
    /// The node is a Peersm peer: hostile relay cells carry DHT messages too.
    dht: bool,
}

impl Solo {
    fn new(node: Node) -> Solo {
        let me = node.relay_target(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            9001,
        ));
        let mut known = fake_targets();
        known.push(me.clone());
        let node_is_peer = node.peer_record().is_some();
        let mut s = Solo {
            ntor: ntor_of(&me),
            now: node.now(),
            node,
            known,
            peers: BTreeMap::new(),
            circuits: Vec::new(),
            streams: Vec::new(),
            dht: node_is_peer,
        };
        s.after();
        s
    }

    fn conn(&self, c: &mut Choices) -> ConnId {
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        if c.u8().is_multiple_of(8) {
            ConnId(u64::from(c.u8()))
        } else {
            c.pick(&conns).copied().unwrap_or(ConnId(1))
        }
    }

    /// Drain outputs, record what they ask, and check the invariants.
    fn after(&mut self) {
        let d = drain(&mut self.node);
        for (conn, target) in d.connect {
            let mut p = Peer::link();
            p.is_link = matches!(target, ConnectTarget::Relay { .. });
            self.peers.insert(conn, p);
        }
        for conn in d.close {
            self.peers.remove(&conn);
        }
        check_census(&self.node);
        check_streams(&self.node, &self.streams);
        check_dht(&self.node);
    }

    fn pull(&mut self, conn: ConnId) {
        let bytes = pull_all(&mut self.node, conn);
        if let Some(p) = self.peers.get_mut(&conn) {
            p.receive(&bytes);
        }
    }

    fn pull_everything(&mut self) {
        for _ in 0..4 {
            let conns: Vec<ConnId> = self.peers.keys().copied().collect();
            for conn in conns {
                self.pull(conn);
            }
            self.after();
        }
    }

    fn tick(&mut self, c: &mut Choices) -> Instant {
        if c.u8().is_multiple_of(4) {
            self.now = self.now + Duration::from_millis(u64::from(c.u8()));
        }
        self.now
    }

    /// One operation common to both roles; `false` if the op byte was not one of these.
    fn common_op(&mut self, op: u8, c: &mut Choices) -> bool {
        let now = self.tick(c);
        match op {
            0..=4 => {
                let with_circs: Vec<ConnId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| !p.circs.is_empty())
                    .map(|(&k, _)| k)
                    .collect();
                let conn = match c.pick(&with_circs) {
                    Some(&k) if !c.u8().is_multiple_of(4) => k,
                    _ => self.conn(c),
                };
                let mut peer = self.peers.remove(&conn).unwrap_or_else(Peer::link);
                if let Some(bytes) = hostile_cell(c, &mut peer, &self.ntor, &self.known, self.dht) {
                    // Sometimes split the cell across two inputs.
                    let cut = if c.bool() {
                        c.below(bytes.len() + 1)
                    } else {
                        bytes.len()
                    };
                    for part in [&bytes[..cut], &bytes[cut..]] {
                        if !part.is_empty() {
                            self.node.handle_input(Input::Data {
                                now,
                                conn,
                                data: part,
                            });
                        }
                    }
                }
                if self.node.census().0 > 0 || peer.is_link {
                    self.peers.insert(conn, peer);
                }
            }
            5 => {
                let conn = self.conn(c);
                let data = c.bytes(1200);
                self.node.handle_input(Input::Data {
                    now,
                    conn,
                    data: &data,
                });
            }
            6 => {
                let conn = self.conn(c);
                let error = c.bool();
                self.node.handle_input(Input::Closed { now, conn, error });
                self.peers.remove(&conn);
            }
            7 => {
                let step = match c.u8() {
                    0..=199 => Duration::from_millis(u64::from(c.u16() % 2000)),
                    200..=250 => Duration::from_secs(u64::from(c.u8() % 16)),
                    _ => Duration::from_secs(3600),
                };
                self.now = self.now + step;
                self.node.handle_input(Input::Timeout(self.now));
            }
            8 => {
                let conn = self.conn(c);
                let mut buf = vec![0u8; c.below(2000)];
                let n = self.node.poll_transmit(conn, &mut buf);
                assert!(n <= buf.len());
                if let Some(p) = self.peers.get_mut(&conn) {
                    p.receive(&buf[..n]);
                }
            }
            9 => {
                let conn = self.conn(c);
                let binding = if c.bool() {
                    LinkBinding::default()
                } else {
                    LinkBinding {
                        local: c.array(),
                        remote: c.array(),
                    }
                };
                self.node
                    .handle_input(Input::Connected { now, conn, binding });
            }
            10 => {
                // Bytes from an exit's destination: within what the node allows, or not.
                let conn = self.conn(c);
                let cap = self.node.read_capacity(conn);
                let n = if c.bool() {
                    cap.min(3000)
                } else {
                    c.below(6000)
                };
                let data = vec![c.u8(); n];
                self.node.handle_input(Input::Data {
                    now,
                    conn,
                    data: &data,
                });
            }
            11 => self.pull_everything(),
            _ => return false,
        }
        self.after();
        true
    }
}

impl Solo {
    /// The steps a real client takes, so runs reach open links and circuits: open a
    /// link and handshake, or create a circuit on an open link with a fresh id.
    fn guided(&mut self, c: &mut Choices) {
        let now = self.now;
        if c.bool() {
            let binding = LinkBinding {
                local: [1; 32],
                remote: [2; 32],
            };
            let Ok(conn) = self.node.accept_link(now, None, binding) else {
                return;
            };
            let mut peer = Peer::link();
            let v = [3u16, 4, 5][c.below(3)];
            peer.version = Some(v);
            let versions = ChanCell::new(None, Versions { versions: vec![v] });
            let bytes = peer.frame(&versions).expect("versions");
            self.node.handle_input(Input::Data {
                now,
                conn,
                data: &bytes,
            });
            self.after();
            let bytes = pull_all(&mut self.node, conn);
            peer.receive(&bytes);
            let netinfo = ChanCell::new(
                None,
                Netinfo {
                    timestamp: UNIX_AT_ZERO as u32,
                    other_addr: None,
                    my_addrs: vec![],
                },
            );
            let bytes = peer.frame(&netinfo).expect("netinfo");
            self.node.handle_input(Input::Data {
                now,
                conn,
                data: &bytes,
            });
            self.peers.insert(conn, peer);
        } else {
            let conns: Vec<ConnId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.is_link && p.saw_versions && p.version.is_some())
                .map(|(&k, _)| k)
                .collect();
            let Some(&conn) = c.pick(&conns) else { return };
            let Some(peer) = self.peers.get_mut(&conn) else {
                return;
            };
            let high = if peer.version.unwrap_or(3) >= 4 {
                0x8000_0000
            } else {
                0x8000
            };
            let id = (c.u32() & (high - 1)) | high;
            let cell = if c.bool() {
                let (state, x) = fast_client_create_fixed(c.array());
                peer.sent_create(id, Create::Fast(state));
                ChanCell::new(CircId::new(id), CreateFast { x })
            } else {
                let (state, skin) = ntor_client_create_fixed(x25519_secret(c.array()), &self.ntor);
                peer.sent_create(id, Create::Ntor(Box::new(state)));
                ChanCell::new(
                    CircId::new(id),
                    Create2 {
                        handshake_type: HandshakeType::NTOR,
                        hdata: skin.to_vec(),
                    },
                )
            };
            let bytes = peer.frame(&cell).expect("create");
            self.node.handle_input(Input::Data {
                now,
                conn,
                data: &bytes,
            });
            self.after();
            self.pull(conn);
        }
    }
}

/// Op numbers from a byte: hostile cells (0..=4) and role-specific ops (12..) are
/// common, destructive ones (raw bytes, closes, long sleeps) rare.
fn weighted(b: u8, n_ops: u8) -> u8 {
    match b {
        0..=99 => b % 5,
        100..=107 => 5,
        108..=111 => 6,
        112..=125 => 7,
        126..=137 => 8,
        138..=143 => 9,
        144..=159 => 10,
        160..=175 => 11,
        _ => 12 + (b - 176) % (n_ops - 12),
    }
}

fn relay_case(node: Node, input: &[u8]) {
    let mut s = Solo::new(node);
    let mut c = Choices::new(input, RUN_CHOICES);
    while !c.done() {
        let op = weighted(c.u8(), 16);
        if s.common_op(op, &mut c) {
            continue;
        }
        let now = s.tick(&mut c);
        if op >= 14 {
            s.guided(&mut c);
            s.after();
            continue;
        }
        // 12, 13: a peer opens a link to the relay.
        let binding = LinkBinding {
            local: [1; 32],
            remote: c.array(),
        };
        let remote = c.bool().then(|| SocketAddr::new(ip(&mut c), c.u16()));
        if let Ok(conn) = s.node.accept_link(now, remote, binding) {
            s.peers.insert(conn, Peer::link());
        }
        s.after();
    }
    s.pull_everything();
    report(&s);
}

/// With FUZZ_STATS set, print how deep an input went (to tune the generators).
fn report(s: &Solo) {
    if std::env::var_os("FUZZ_STATS").is_some() {
        let open = s
            .peers
            .values()
            .map(|p| {
                p.circs
                    .values()
                    .filter(|c| matches!(c, PeerCirc::Open { .. }))
                    .count()
            })
            .sum::<usize>();
        eprintln!(
            "census {:?} peer-open-circs {open} circuits {} streams {} records {:?} counters {:?}",
            s.node.census(),
            s.circuits.len(),
            s.streams.len(),
            s.node.record_store().map(|r| r.len()),
            s.node.counters()
        );
    }
}

fn client_case(node: Node, input: &[u8]) {
    let mut s = Solo::new(node);
    let mut c = Choices::new(input, RUN_CHOICES);
    while !c.done() {
        let op = weighted(c.u8(), 20);
        if s.common_op(op, &mut c) {
            continue;
        }
        let now = s.tick(&mut c);
        match op {
            12 | 13 => {
                let n = c.below(10);
                let path: Vec<RelayTarget> = (0..n)
                    .map(|_| match c.pick(&s.known).cloned() {
                        Some(t) if !c.u8().is_multiple_of(4) => t,
                        _ => RelayTarget {
                            addr: SocketAddr::new(ip(&mut c), c.u16()),
                            id: PeerId(c.array()),
                            ntor_key: c.array(),
                            ed_id: c.bool().then(|| c.array()),
                        },
                    })
                    .collect();
                let first_hop = if c.bool() {
                    FirstHop::Fast
                } else {
                    FirstHop::Ntor
                };
                if let Ok(h) = s.node.build_circuit(now, path, first_hop) {
                    s.circuits.push(h);
                }
            }
            14 => {
                let circ = c
                    .pick(&s.circuits)
                    .copied()
                    .unwrap_or(CircuitHandle(u64::from(c.u8())));
                let target = if c.bool() {
                    StreamTarget::Directory
                } else {
                    StreamTarget::Tcp {
                        host: String::from_utf8_lossy(&c.bytes(20)).into_owned(),
                        port: c.u16(),
                    }
                };
                if let Ok(h) = s.node.open_stream(now, circ, target) {
                    s.streams.push(h);
                }
            }
            15 | 16 => {
                let st = c
                    .pick(&s.streams)
                    .copied()
                    .unwrap_or(StreamHandle(u64::from(c.u8())));
                let data = vec![c.u8(); c.below(3000)];
                if let Ok(n) = s.node.write_stream(now, st, &data) {
                    assert!(n <= data.len());
                }
            }
            17 => {
                let st = c
                    .pick(&s.streams)
                    .copied()
                    .unwrap_or(StreamHandle(u64::from(c.u8())));
                let mut buf = vec![0u8; c.below(3000)];
                if let Ok(n) = s.node.read_stream(now, st, &mut buf) {
                    assert!(n <= buf.len());
                }
            }
            18 => {
                let st = c
                    .pick(&s.streams)
                    .copied()
                    .unwrap_or(StreamHandle(u64::from(c.u8())));
                let _ = s.node.command(now, Command::CloseStream(st));
            }
            _ => {
                let h = c
                    .pick(&s.circuits)
                    .copied()
                    .unwrap_or(CircuitHandle(u64::from(c.u8())));
                let _ = s.node.command(now, Command::CloseCircuit(h));
            }
        }
        s.after();
    }
    s.pull_everything();
    report(&s);
}

/// A Peersm peer (a relay with the DHT): the fuzzer's circuits to it carry hostile DHT
/// requests and unasked-for answers, and the application drives bootstraps, lookups,
/// stores and ORDB requests that dial the fuzzer's fake peers.
fn peer_case(node: Node, input: &[u8]) {
    let mut s = Solo::new(node);
    let mut c = Choices::new(input, RUN_CHOICES);
    while !c.done() {
        let op = weighted(c.u8(), 18);
        if s.common_op(op, &mut c) {
            continue;
        }
        let now = s.tick(&mut c);
        match op {
            12 => {
                let binding = LinkBinding {
                    local: [1; 32],
                    remote: c.array(),
                };
                let remote = c.bool().then(|| SocketAddr::new(ip(&mut c), c.u16()));
                if let Ok(conn) = s.node.accept_link(now, remote, binding) {
                    s.peers.insert(conn, Peer::link());
                }
            }
            13..=16 => s.guided(&mut c),
            _ => {
                let cmd = match c.u8() % 6 {
                    0 => Command::Bootstrap {
                        via: match c.pick(&s.known).cloned() {
                            Some(t) if c.bool() => BootstrapVia::Bridge(t),
                            _ => BootstrapVia::Peer(peer_record(&mut c, &s.known)),
                        },
                    },
                    1 | 2 => Command::FindNode(Key(c.array())),
                    3 => Command::FindValue(hash_name(&mut c)),
                    4 => Command::Store {
                        hash_name: hash_name(&mut c),
                        progress: Progress::Full,
                    },
                    _ => Command::AskOrdbs(c.bool().then(|| hash_name(&mut c))),
                };
                let _ = s.node.command(now, cmd);
            }
        }
        s.after();
    }
    s.pull_everything();
    report(&s);
}

/// A peer's config: small limits and small DHT bounds, so the fuzzer reaches them.
fn peer_config(seed: u8) -> NodeConfig {
    let mut c = config(seed, Role::RELAY);
    let mut p = PeersmConfig::new(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        9001,
    ));
    p.dht.max_records = 4;
    p.dht.max_holders_per_record = 2;
    p.dht.rate_burst = 4;
    p.dht.rate_max_peers = 4;
    p.max_requests = 6;
    p.max_queries = 3;
    p.max_registered = 3;
    p.ordb_circuits = 2;
    c.peersm = Some(p);
    c
}

/// Bolero inputs for one node: the node is made once per input (RSA keygen dominates),
/// so inputs are long and iterations few.
fn fuzz_one_node(role: Role, case: fn(Node, &[u8])) {
    bolero::check!()
        .with_max_len(4096)
        .with_iterations(100)
        .for_each(|input: &[u8]| {
            let node = Node::new(config(3, role), Instant::ZERO).expect("node");
            case(node, input);
        });
}

#[test]
fn relay_node_survives_hostile_peers() {
    fuzz_one_node(Role::EXIT, relay_case);
}

#[test]
fn client_node_survives_hostile_peers() {
    fuzz_one_node(Role::CLIENT, client_case);
}

#[test]
fn peer_node_survives_hostile_dht_peers() {
    bolero::check!()
        .with_max_len(4096)
        .with_iterations(100)
        .for_each(|input: &[u8]| {
            let node = Node::new(peer_config(5), Instant::ZERO).expect("node");
            peer_case(node, input);
        });
}

// ---- two real nodes, the fuzzer damaging the wire between them -----------------------

const CLIENT: usize = 0;
const RELAY: usize = 1;

/// A client and an exit relay whose link bytes pass through the fuzzer.
struct Pair {
    nodes: [Node; 2],
    now: Instant,
    relay_target: RelayTarget,
    /// Link ends: (node, conn) -> (node, conn).
    peers: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    /// Bytes in flight to (node, conn).
    wire: BTreeMap<(usize, ConnId), Vec<u8>>,
    /// Inputs to deliver next: dial results.
    pending: Vec<(usize, ConnId, bool)>,
    /// The relay's exit connections.
    exits: Vec<ConnId>,
    circuits: Vec<CircuitHandle>,
    streams: Vec<StreamHandle>,
    events: Vec<(usize, Event)>,
    damaged: bool,
}

impl Pair {
    fn new(client: Node, relay: Node) -> Pair {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 9001);
        Pair {
            relay_target: relay.relay_target(addr),
            nodes: [client, relay],
            now: Instant::ZERO,
            peers: BTreeMap::new(),
            wire: BTreeMap::new(),
            pending: Vec::new(),
            exits: Vec::new(),
            circuits: Vec::new(),
            streams: Vec::new(),
            events: Vec::new(),
            damaged: false,
        }
    }

    fn digest(i: usize) -> [u8; 32] {
        [i as u8 + 1; 32]
    }

    /// Drain node `i`, carry out its outputs, check its invariants.
    fn after(&mut self, i: usize) {
        let d = drain(&mut self.nodes[i]);
        for (conn, target) in d.connect {
            match target {
                ConnectTarget::Relay { addr, .. }
                    if i == CLIENT && addr == self.relay_target.addr =>
                {
                    let binding = LinkBinding {
                        local: Self::digest(RELAY),
                        remote: Self::digest(CLIENT),
                    };
                    match self.nodes[RELAY].accept_link(self.now, None, binding) {
                        Ok(theirs) => {
                            self.peers.insert((CLIENT, conn), (RELAY, theirs));
                            self.peers.insert((RELAY, theirs), (CLIENT, conn));
                            self.pending.push((CLIENT, conn, true));
                        }
                        Err(_) => self.pending.push((CLIENT, conn, false)),
                    }
                }
                ConnectTarget::Relay { .. } => self.pending.push((i, conn, false)),
                ConnectTarget::Exit { .. } => self.exits.push(conn),
            }
        }
        for conn in d.transmit {
            let bytes = pull_all(&mut self.nodes[i], conn);
            if let Some(&to) = self.peers.get(&(i, conn)) {
                self.wire.entry(to).or_default().extend_from_slice(&bytes);
            }
        }
        for conn in d.close {
            self.exits.retain(|&e| !(i == RELAY && e == conn));
            if let Some(to) = self.peers.remove(&(i, conn)) {
                self.peers.remove(&to);
                self.wire.remove(&to);
                self.wire.remove(&(i, conn));
                let (j, c) = to;
                self.nodes[j].handle_input(Input::Closed {
                    now: self.now,
                    conn: c,
                    error: false,
                });
                self.after(j);
            }
        }
        self.events.extend(d.events.into_iter().map(|e| (i, e)));
        check_census(&self.nodes[i]);
        check_streams(&self.nodes[CLIENT], &self.streams);
    }

    fn run_pending(&mut self) {
        while let Some((i, conn, ok)) = self.pending.pop() {
            let now = self.now;
            let input = if ok {
                Input::Connected {
                    now,
                    conn,
                    binding: LinkBinding {
                        local: Self::digest(i),
                        remote: Self::digest(1 - i),
                    },
                }
            } else {
                Input::Closed {
                    now,
                    conn,
                    error: true,
                }
            };
            self.nodes[i].handle_input(input);
            self.after(i);
        }
    }

    /// Deliver up to `n` bytes in flight to `to`, damaged by `damage` first.
    fn deliver(&mut self, to: (usize, ConnId), n: usize, damage: Option<(u8, usize, u8)>) {
        let Some(buf) = self.wire.get_mut(&to) else {
            return;
        };
        let n = n.min(buf.len());
        let mut bytes: Vec<u8> = buf.drain(..n).collect();
        if let Some((kind, at, v)) = damage
            && !bytes.is_empty()
        {
            let at = at % bytes.len();
            match kind % 3 {
                0 => bytes[at] ^= v.max(1),
                1 => bytes.insert(at, v),
                _ => {
                    bytes.remove(at);
                }
            }
            self.damaged = true;
        }
        if bytes.is_empty() {
            return;
        }
        let (i, conn) = to;
        self.nodes[i].handle_input(Input::Data {
            now: self.now,
            conn,
            data: &bytes,
        });
        self.after(i);
    }

    fn deliver_all(&mut self) -> bool {
        let mut moved = false;
        for _ in 0..200 {
            self.run_pending();
            let Some((&to, _)) = self.wire.iter().find(|(_, b)| !b.is_empty()) else {
                return moved;
            };
            moved = true;
            self.deliver(to, usize::MAX, None);
        }
        moved
    }

    fn op(&mut self, c: &mut Choices) {
        let now = self.now;
        match c.u8() % 16 {
            0 => {
                let mut path = vec![self.relay_target.clone()];
                match c.u8() % 6 {
                    0 => path.push(self.relay_target.clone()),
                    1 => path.push(fake_targets()[0].clone()),
                    _ => {}
                }
                let first = if c.bool() {
                    FirstHop::Fast
                } else {
                    FirstHop::Ntor
                };
                if let Ok(h) = self.nodes[CLIENT].build_circuit(now, path, first) {
                    self.circuits.push(h);
                }
                self.after(CLIENT);
            }
            1 | 2 => {
                let Some(&h) = c.pick(&self.circuits) else {
                    return;
                };
                let target = if c.bool() {
                    StreamTarget::Directory
                } else {
                    StreamTarget::Tcp {
                        host: "echo.example".into(),
                        port: 7,
                    }
                };
                if let Ok(s) = self.nodes[CLIENT].open_stream(now, h, target) {
                    self.streams.push(s);
                }
                self.after(CLIENT);
            }
            3 | 4 => {
                let Some(&s) = c.pick(&self.streams) else {
                    return;
                };
                let data = vec![c.u8(); c.below(4000)];
                let _ = self.nodes[CLIENT].write_stream(now, s, &data);
                self.after(CLIENT);
            }
            5 => {
                let Some(&s) = c.pick(&self.streams) else {
                    return;
                };
                let mut buf = vec![0u8; c.below(4000)];
                let _ = self.nodes[CLIENT].read_stream(now, s, &mut buf);
                self.after(CLIENT);
            }
            6..=9 => {
                let keys: Vec<_> = self.wire.keys().copied().collect();
                let Some(&to) = c.pick(&keys) else { return };
                let n = if c.bool() { usize::MAX } else { c.below(2000) };
                self.deliver(to, n, None);
            }
            10 | 11 => {
                let keys: Vec<_> = self.wire.keys().copied().collect();
                let Some(&to) = c.pick(&keys) else { return };
                let n = 1 + c.below(1200);
                let damage = (c.u8(), c.u16() as usize, c.u8());
                self.deliver(to, n, Some(damage));
            }
            12 => {
                self.now = self.now + Duration::from_millis(u64::from(c.u16() % 3000));
                for i in [CLIENT, RELAY] {
                    self.nodes[i].handle_input(Input::Timeout(self.now));
                    self.after(i);
                }
            }
            _ => {
                // The relay's exit connections: open, echo some bytes, or fail.
                let Some(&conn) = c.pick(&self.exits) else {
                    return;
                };
                let input_data = vec![c.u8(); c.below(1500)];
                let input = match c.u8() % 4 {
                    0 | 1 => Input::Connected {
                        now,
                        conn,
                        binding: LinkBinding::default(),
                    },
                    2 => Input::Data {
                        now,
                        conn,
                        data: &input_data,
                    },
                    _ => Input::Closed {
                        now,
                        conn,
                        error: c.bool(),
                    },
                };
                self.nodes[RELAY].handle_input(input);
                self.after(RELAY);
            }
        }
        self.run_pending();
    }

    /// Deliver everything faithfully and let every timer fire; then check that nothing
    /// hangs and that damage that closed anything was counted.
    fn settle(&mut self) {
        for _ in 0..4 {
            self.deliver_all();
            self.now = self.now + Duration::from_secs(120);
            for i in [CLIENT, RELAY] {
                self.nodes[i].handle_input(Input::Timeout(self.now));
                self.after(i);
            }
        }
        self.deliver_all();
        for &h in &self.circuits {
            let resolved = self.events.iter().any(|(i, e)| {
                *i == CLIENT
                    && matches!(e, Event::CircuitBuilt(b) | Event::CircuitClosed { circuit: b, .. } if *b == h)
            });
            assert!(resolved, "circuit {h:?} neither built nor closed");
        }
        let broke = self.events.iter().any(|(_, e)| match e {
            Event::LinkDown { .. } => true,
            Event::CircuitClosed { reason, .. } => *reason != DestroyReason::FINISHED,
            _ => false,
        });
        let counted = self.nodes[CLIENT].counters().total() + self.nodes[RELAY].counters().total();
        if self.damaged && broke {
            assert!(counted > 0, "damage closed something without a counter");
        }
    }
}

fn pair_case(client: Node, relay: Node, input: &[u8]) {
    let mut p = Pair::new(client, relay);
    let mut c = Choices::new(input, RUN_CHOICES / 2);
    while !c.done() {
        p.op(&mut c);
    }
    p.settle();
    if std::env::var_os("FUZZ_STATS").is_some() {
        eprintln!(
            "pair: circuits {} streams {} damaged {} client {:?} relay {:?}",
            p.circuits.len(),
            p.streams.len(),
            p.damaged,
            p.nodes[CLIENT].counters(),
            p.nodes[RELAY].counters()
        );
    }
}

#[test]
fn damaged_wire_between_client_and_relay() {
    bolero::check!()
        .with_max_len(4096)
        .with_iterations(40)
        .for_each(|input: &[u8]| {
            let client = Node::new(config(1, Role::CLIENT), Instant::ZERO).expect("client");
            let relay = Node::new(config(2, Role::EXIT), Instant::ZERO).expect("relay");
            pair_case(client, relay, input);
        });
}
