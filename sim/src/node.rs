//! Real nodes in the world: [`SimPeer`] adapts an unmodified core
//! [`Node`](onionpeer_core::node::Node) (plus the application on top of it, the
//! [`workload`](crate::workload)) or a simulated service to [`SimHost`].
//!
//! The adapter is the node's runtime: it turns the world's link inputs into node inputs
//! (with a fake TLS binding: SHA-256 of `"tls-cert:" + host name` for each end, as the
//! test harness does), the node's `Connect` outputs into dials (relays by address, exit
//! connections to the service host of that name), and respects the exit's read
//! capacity by holding back bytes from destinations. It knows nothing of cells.
//!
//! Roles (the `role` of a scenario group): `client`, `relay`, `exit` (core nodes), the
//! Peersm DHT roles `peer`, `bridge` (a peer that registers others and hands them out),
//! `colluder` (a peer marked as one of a colluding clique, for the measurements) and
//! `evil_bridge` (a bridge the clique registers with), `victim` (an honest peer addressed
//! apart, fed by an evil bridge), and the
//! services `echo` (sends back what it gets), `sink` (swallows) and `source` (reads an
//! 8-byte big-endian length `n`, sends `n` pattern bytes, closes).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;

use onionpeer_core::cells::relay::{EndReason, HashName, PeerRecord};
use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::dht::Key;
use onionpeer_core::node::Node;
use onionpeer_core::node::api::{
    ConnId, ConnectTarget, Event, Input, LinkBinding, Output, RelayTarget,
};
use onionpeer_core::node::config::{NodeConfig, PeersmConfig, Role};
use onionpeer_core::node::exit_policy::ExitPolicy;
use sha2::{Digest, Sha256};

use crate::host::{HostInput, HostOutput, Instant, LinkId, SimHost};
use crate::scenario::Action;
use crate::scenario::PeersmKnobs;
use crate::workload::{AppEvent, Workload};
use crate::world::{HookCtx, HostSpec};

/// Unix time the simulated nodes believe `Instant::ZERO` is (2026-01-01).
pub const UNIX_TIME_AT_ZERO: u64 = 1_767_225_600;

/// What a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostRole {
    /// Builds circuits, relays nothing.
    Client,
    /// A middle relay.
    Relay,
    /// An exit relay (accepts every exit target).
    Exit,
    /// A service that sends back what it receives.
    Echo,
    /// A service that swallows what it receives.
    Sink,
    /// A service that answers an 8-byte length `n` with `n` bytes, then closes.
    Source,
    /// A Peersm DHT peer.
    Peer,
    /// A Peersm bridge.
    Bridge,
    /// A Peersm peer of the colluding clique.
    Colluder,
    /// A Peersm bridge of the colluding clique.
    EvilBridge,
    /// An honest Peersm peer that scenario actions address apart (fed by an evil bridge).
    Victim,
    /// A Peersm peer that seeds content (`seed` action); never churned.
    Seeder,
    /// A Peersm peer that downloads content (`get` action); never churned.
    Downloader,
    /// A Peersm peer whose ORDB function flips a byte of every DB_DATA it relays.
    Tamperer,
}

impl HostRole {
    /// Parse a scenario role name; unknown names are clients.
    pub fn parse(role: &str) -> HostRole {
        match role {
            "relay" => HostRole::Relay,
            "exit" => HostRole::Exit,
            "echo" => HostRole::Echo,
            "sink" => HostRole::Sink,
            "source" => HostRole::Source,
            "peer" => HostRole::Peer,
            "bridge" => HostRole::Bridge,
            "colluder" => HostRole::Colluder,
            "evil_bridge" => HostRole::EvilBridge,
            "victim" => HostRole::Victim,
            "seeder" => HostRole::Seeder,
            "downloader" => HostRole::Downloader,
            "tamperer" => HostRole::Tamperer,
            _ => HostRole::Client,
        }
    }

    /// Whether this is a core node (rather than a service).
    pub fn is_node(self) -> bool {
        matches!(self, HostRole::Client | HostRole::Relay | HostRole::Exit) || self.is_peersm()
    }

    /// Whether it runs the Peersm DHT.
    pub fn is_peersm(self) -> bool {
        matches!(
            self,
            HostRole::Peer
                | HostRole::Bridge
                | HostRole::Colluder
                | HostRole::EvilBridge
                | HostRole::Victim
                | HostRole::Seeder
                | HostRole::Downloader
                | HostRole::Tamperer
        )
    }

    /// Whether it is a Peersm bridge.
    pub fn is_bridge(self) -> bool {
        matches!(self, HostRole::Bridge | HostRole::EvilBridge)
    }

    /// The scenario name of the role.
    pub fn name(self) -> &'static str {
        match self {
            HostRole::Client => "client",
            HostRole::Relay => "relay",
            HostRole::Exit => "exit",
            HostRole::Echo => "echo",
            HostRole::Sink => "sink",
            HostRole::Source => "source",
            HostRole::Peer => "peer",
            HostRole::Bridge => "bridge",
            HostRole::Colluder => "colluder",
            HostRole::EvilBridge => "evil_bridge",
            HostRole::Victim => "victim",
            HostRole::Seeder => "seeder",
            HostRole::Downloader => "downloader",
            HostRole::Tamperer => "tamperer",
        }
    }

    /// Whether it relays circuits.
    pub fn is_relay(self) -> bool {
        matches!(self, HostRole::Relay | HostRole::Exit)
    }
}

/// One host in the [`Directory`].
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// Its address.
    pub addr: SocketAddr,
    /// Its role.
    pub role: HostRole,
    /// For relays: how to put it in a path (its current incarnation's keys).
    pub target: Option<RelayTarget>,
    /// For Peersm nodes: its PEER record (its current incarnation's id).
    pub peer: Option<PeerRecord>,
    /// A Peersm node that finished a bootstrap and is still up: the simulator's global
    /// knowledge of who a lookup should find.
    pub member: bool,
    /// When it last became a member (finished a bootstrap while up).
    pub member_since: Option<Instant>,
}

/// What every host knows of the others: a consensus that is never stale about who
/// exists, but may list relays that have crashed (they are not removed, as in Tor).
#[derive(Debug, Default)]
pub struct Directory {
    /// Hosts by name.
    pub hosts: BTreeMap<String, DirEntry>,
    by_addr: BTreeMap<SocketAddr, String>,
    by_peer: BTreeMap<PeerId, String>,
    /// Names announced with a `store` action, and who announced them.
    pub stored: Vec<(HashName, String)>,
    /// What the swarm actions seeded and measured.
    pub swarm: crate::swarm::SwarmState,
}

impl Directory {
    /// Add or replace a host.
    pub fn insert(&mut self, name: &str, entry: DirEntry) {
        self.by_addr.insert(entry.addr, name.to_string());
        if let Some(p) = &entry.peer {
            self.by_peer.insert(p.id, name.to_string());
        }
        self.hosts.insert(name.to_string(), entry);
    }

    /// The name of the host whose (current or past) Peersm id is `id`.
    pub fn by_id(&self, id: &PeerId) -> Option<&str> {
        let name = self.by_peer.get(id)?;
        let e = self.hosts.get(name)?;
        (e.peer.as_ref().map(|p| p.id) == Some(*id)).then_some(name.as_str())
    }

    /// The name of the host at `addr`.
    pub fn name_at(&self, addr: SocketAddr) -> Option<&str> {
        self.by_addr.get(&addr).map(String::as_str)
    }

    /// The DHT members (bootstrapped and up), but `except`, closest to `key` first.
    pub fn closest_members(&self, key: &Key, except: &str, n: usize) -> Vec<(&str, PeerId)> {
        self.closest_members_since(key, except, n, Instant::FAR_FUTURE)
    }

    /// The DHT members that are up now and have been members since `since` or earlier
    /// (but `except`), closest to `key` first: whom a lookup started at `since` and
    /// ending now can fairly be asked to find.
    pub fn closest_members_since(
        &self,
        key: &Key,
        except: &str,
        n: usize,
        since: Instant,
    ) -> Vec<(&str, PeerId)> {
        let mut v: Vec<(&str, PeerId)> = self
            .hosts
            .iter()
            .filter(|(name, e)| {
                e.member && e.member_since.is_none_or(|t| t <= since) && name.as_str() != except
            })
            .filter_map(|(name, e)| Some((name.as_str(), e.peer.as_ref()?.id)))
            .collect();
        if n > 0 && n < v.len() {
            v.select_nth_unstable_by_key(n - 1, |(_, id)| key.distance(&Key::from(*id)));
            v.truncate(n);
        }
        v.sort_by_key(|(_, id)| key.distance(&Key::from(*id)));
        v
    }
}

/// The directory shared by every host of a world (the world is single-threaded).
pub type SharedDirectory = Rc<RefCell<Directory>>;

/// The SHA-256 digest of the host's imaginary TLS certificate.
pub fn tls_digest(name: &str) -> [u8; 32] {
    Sha256::digest(format!("tls-cert:{name}").as_bytes()).into()
}

/// The byte at offset `i` of every pattern stream (the same pattern as the test harness).
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

/// What a [`SimPeer`] reports.
#[derive(Clone, PartialEq)]
pub enum SimEvent {
    /// An event of the core node.
    Node(Event),
    /// An event of the workload.
    App(AppEvent),
}

impl fmt::Debug for SimEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimEvent::Node(e) => fmt_node_event(e, f),
            SimEvent::App(e) => write!(f, "{e:?}"),
        }
    }
}

/// The spec's name of a stream END reason.
pub fn end_reason_name(r: EndReason) -> String {
    const NAMES: [&str; 14] = [
        "MISC",
        "RESOLVEFAILED",
        "CONNECTREFUSED",
        "EXITPOLICY",
        "DESTROY",
        "DONE",
        "TIMEOUT",
        "NOROUTE",
        "HIBERNATING",
        "INTERNAL",
        "RESOURCELIMIT",
        "CONNRESET",
        "TORPROTOCOL",
        "NOTDIRECTORY",
    ];
    match NAMES.get(usize::from(r.0).wrapping_sub(1)) {
        Some(n) => (*n).to_string(),
        None => format!("EndReason({})", r.0),
    }
}

/// Node events in one short line each (the trace shows them).
fn fmt_node_event(e: &Event, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match e {
        Event::LinkUp { conn, version, .. } => write!(f, "LinkUp c{} v{version}", conn.0),
        Event::LinkDown { conn, reason } => write!(f, "LinkDown c{} {reason:?}", conn.0),
        Event::ClockSkew { conn, skew_secs } => write!(f, "ClockSkew c{} {skew_secs}s", conn.0),
        Event::CircuitBuilt(h) => write!(f, "CircuitBuilt #{}", h.0),
        Event::CircuitClosed { circuit, reason } => {
            write!(f, "CircuitClosed #{} {reason}", circuit.0)
        }
        Event::StreamOpened { stream, .. } => write!(f, "StreamOpened s{}", stream.0),
        Event::StreamReadable(s) => write!(f, "StreamReadable s{}", s.0),
        Event::StreamWritable(s) => write!(f, "StreamWritable s{}", s.0),
        Event::StreamClosed { stream, reason } => {
            write!(f, "StreamClosed s{} {}", stream.0, end_reason_name(*reason))
        }
        Event::DhtLookupDone {
            query,
            closest,
            holders,
            hops,
        } => write!(
            f,
            "DhtLookupDone q{} closest {} holders {} hops {hops}",
            query.0,
            closest.len(),
            holders.len()
        ),
        Event::OrdbCircuitsReady(n) => write!(f, "OrdbCircuitsReady {n}"),
        Event::PeerFound(r) => write!(f, "PeerFound {}", r.id),
        Event::OrdbAnswered {
            query,
            ordb,
            peers,
            done,
        } => {
            write!(
                f,
                "OrdbAnswered q{} {ordb} peers={} done={done}",
                query.0,
                peers.len()
            )
        }
        Event::ContentInfo { handle, size, mime } => {
            write!(f, "ContentInfo d{} {size} {mime}", handle.0)
        }
        Event::ContentReadable(h) => write!(f, "ContentReadable d{}", h.0),
        Event::ContentProgress {
            handle,
            verified_chunks,
            total_chunks,
        } => write!(
            f,
            "ContentProgress d{} {verified_chunks}/{total_chunks}",
            handle.0
        ),
        Event::ContentDone { handle, result } => {
            write!(f, "ContentDone d{} {result:?}", handle.0)
        }
        Event::SignalReceived {
            from,
            session,
            kind,
            sdp,
        } => write!(
            f,
            "SignalReceived {from} s{session} kind={} {} bytes",
            kind.0,
            sdp.len()
        ),
    }
}

/// A connection of a node host.
#[derive(Debug)]
enum Conn {
    /// A link to a relay (dialed or accepted), with the peer's certificate digest.
    Link { peer_tls: [u8; 32] },
    /// An exit connection to a destination, with the bytes it sent that the node had no
    /// room for yet, and a close that waits for them.
    Exit {
        held: VecDeque<u8>,
        closed: Option<bool>,
    },
}

/// A core node, its runtime glue and its application.
pub struct NodeHost {
    node: Node,
    role: HostRole,
    name: String,
    tls: [u8; 32],
    dir: SharedDirectory,
    conns: BTreeMap<LinkId, Conn>,
    /// Exit connections holding bytes back.
    backlogged: BTreeSet<LinkId>,
    app: Workload,
    out: VecDeque<HostOutput<SimEvent>>,
}

/// A simulated service's state for one accepted connection.
#[derive(Debug, Default)]
struct ServiceConn {
    tx: VecDeque<u8>,
    request: Vec<u8>,
    answered: bool,
}

/// A service exits connect to.
#[derive(Debug)]
pub struct ServiceHost {
    role: HostRole,
    next: u64,
    conns: BTreeMap<LinkId, ServiceConn>,
    out: VecDeque<HostOutput<SimEvent>>,
    /// Bytes received in all.
    pub received: u64,
}

/// A host of the simulated network: a core node or a service.
pub enum SimPeer {
    /// A core node (boxed: it is much larger than a service).
    Node(Box<NodeHost>),
    /// A service.
    Service(ServiceHost),
}

impl fmt::Debug for SimPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimPeer::Node(n) => write!(f, "{:?}", n.node),
            SimPeer::Service(s) => write!(f, "{:?}", s.role),
        }
    }
}

impl SimPeer {
    /// Build the host for `spec` and enter it in `dir`. Panics if the node cannot be
    /// created (key generation from a seed does not fail in practice).
    pub fn new(spec: &HostSpec<'_>, dir: &SharedDirectory, knobs: &PeersmKnobs) -> SimPeer {
        let role = HostRole::parse(spec.role);
        let mut entry = DirEntry {
            addr: spec.addr,
            role,
            target: None,
            peer: None,
            member: false,
            member_since: None,
        };
        let peer = if role.is_node() {
            let node_role = match role {
                HostRole::Relay => Role::RELAY,
                HostRole::Exit => Role::EXIT,
                _ => Role::CLIENT,
            };
            let mut config = NodeConfig::new(spec.seed, node_role, UNIX_TIME_AT_ZERO);
            if role == HostRole::Exit {
                config.exit_policy = ExitPolicy::accept_all();
            }
            if role.is_peersm() {
                // A peer relays DHT requests at the last hop of one-hop circuits.
                config.role = Role::RELAY;
                let mut p = PeersmConfig::new(spec.addr);
                p.bridge = role.is_bridge();
                // Idle links close after 3 minutes, but a bridge of a 10,000-peer network
                // is dialed by thousands of peers within that time during the bootstrap
                // wave, and a peer meets hundreds over an hour of lookups.
                config.limits.max_links = 16_384;
                p.ordb.tamper_relayed_data = role == HostRole::Tamperer;
                knobs.apply(&mut p);
                config.peersm = Some(p);
            }
            let mut node = Node::new(config, spec.now).expect("node keys from a seed");
            node.set_my_addrs(vec![spec.addr.ip()]);
            if role.is_relay() || role.is_bridge() {
                entry.target = Some(node.relay_target(spec.addr));
            }
            entry.peer = node.peer_record().cloned();
            // A bridge is an entry point, not a DHT member: it registers peers but never
            // bootstraps, so nobody's table holds it and no lookup should find it.
            let mut app = Workload::new(spec.seed, spec.name);
            if role.is_peersm() && !role.is_bridge() && spec.now > Instant::ZERO {
                // A peer that joins later (churn, `join`) bootstraps at once.
                app.add_task(spec.now, &Action::new("bootstrap"));
            }
            if role == HostRole::Downloader && spec.now > Instant::ZERO {
                // A downloader back after a crash or restart resumes its download (with
                // `held`: what it had read) once it has ORDB circuits again.
                let later = spec.now + std::time::Duration::from_secs(10);
                app.add_task(later, &Action::new("get").with("resume", true));
            }
            SimPeer::Node(Box::new(NodeHost {
                node,
                role,
                name: spec.name.to_string(),
                tls: tls_digest(spec.name),
                dir: Rc::clone(dir),
                conns: BTreeMap::new(),
                backlogged: BTreeSet::new(),
                app,
                out: VecDeque::new(),
            }))
        } else {
            SimPeer::Service(ServiceHost {
                role,
                next: 1,
                conns: BTreeMap::new(),
                out: VecDeque::new(),
                received: 0,
            })
        };
        dir.borrow_mut().insert(spec.name, entry);
        peer
    }

    /// The core node, if this host is one.
    pub fn node(&self) -> Option<&Node> {
        match self {
            SimPeer::Node(n) => Some(&n.node),
            SimPeer::Service(_) => None,
        }
    }

    /// The host's role (`None` for a service).
    pub fn role(&self) -> Option<HostRole> {
        match self {
            SimPeer::Node(n) => Some(n.role),
            SimPeer::Service(_) => None,
        }
    }

    /// The workload, if this host is a node.
    pub fn workload(&self) -> Option<&Workload> {
        match self {
            SimPeer::Node(n) => Some(&n.app),
            SimPeer::Service(_) => None,
        }
    }

    /// The action hook: workload actions (`build_circuit`, `stream`) for nodes.
    pub fn on_action(&mut self, ctx: &HookCtx<'_>, action: &Action) {
        if let SimPeer::Node(n) = self {
            let role = n.role;
            let default = if crate::dht::DHT_ACTIONS.contains(&action.kind.as_str()) {
                "peer"
            } else if crate::swarm::SWARM_ACTIONS.contains(&action.kind.as_str()) {
                "downloader"
            } else {
                "client"
            };
            let wanted = action.str("role").unwrap_or(default);
            let named = action.str("host").is_some();
            if named || HostRole::parse(wanted) == role {
                let at = n.app.add_task(ctx.now, action);
                if action.kind == "get" && action.bool("resume") != Some(true) {
                    let mut dir = n.dir.borrow_mut();
                    let r = dir.swarm.downloads.entry(n.name.clone()).or_default();
                    r.planned = r.planned.or(at);
                }
            }
        }
    }
}

impl Drop for NodeHost {
    /// A crashed (or departed) peer is no longer one a lookup should find.
    fn drop(&mut self) {
        if let Ok(mut dir) = self.dir.try_borrow_mut()
            && let Some(e) = dir.hosts.get_mut(&self.name)
            && e.peer.as_ref().map(|p| p.id) == self.node.peer_record().map(|p| p.id)
        {
            e.member = false;
        }
    }
}

impl NodeHost {
    /// Feed held exit bytes as far as the node has room; deliver a deferred close once
    /// they are all in. Returns whether it fed anything.
    fn feed_backlog(&mut self, now: Instant) -> bool {
        let mut fed = false;
        let links: Vec<LinkId> = self.backlogged.iter().copied().collect();
        for link in links {
            let conn = ConnId(link.0);
            let room = self.node.read_capacity(conn);
            let Some(Conn::Exit { held, .. }) = self.conns.get_mut(&link) else {
                self.backlogged.remove(&link);
                continue;
            };
            let n = room.min(held.len());
            if n > 0 {
                let bytes: Vec<u8> = held.drain(..n).collect();
                self.out.push_back(HostOutput::ReadMore(link));
                self.node.handle_input(Input::Data {
                    now,
                    conn,
                    data: &bytes,
                });
                fed = true;
            }
            let Some(Conn::Exit { held, closed: c }) = self.conns.get_mut(&link) else {
                continue;
            };
            if held.is_empty() {
                self.backlogged.remove(&link);
                if let Some(error) = c.take() {
                    self.conns.remove(&link);
                    self.node.handle_input(Input::Closed { now, conn, error });
                    fed = true;
                }
            }
        }
        fed
    }

    fn handle(&mut self, input: HostInput<'_>) {
        match input {
            HostInput::Timeout(now) => {
                self.node.handle_input(Input::Timeout(now));
                self.app
                    .on_timeout(now, &mut self.node, &self.dir, &mut self.out);
            }
            HostInput::LinkUp { now, link } => {
                let binding = match self.conns.get(&link) {
                    Some(Conn::Link { peer_tls }) => LinkBinding {
                        local: self.tls,
                        remote: *peer_tls,
                    },
                    _ => LinkBinding::default(),
                };
                let conn = ConnId(link.0);
                self.node
                    .handle_input(Input::Connected { now, conn, binding });
            }
            HostInput::LinkData { now, link, data } => {
                let conn = ConnId(link.0);
                match self.conns.get_mut(&link) {
                    Some(Conn::Exit { held, .. }) => {
                        held.extend(data);
                        self.backlogged.insert(link);
                        self.feed_backlog(now);
                    }
                    _ => self.node.handle_input(Input::Data { now, conn, data }),
                }
            }
            HostInput::LinkClosed { now, link, error } => {
                if let Some(Conn::Exit { held, closed }) = self.conns.get_mut(&link)
                    && !held.is_empty()
                {
                    *closed = Some(error);
                    return;
                }
                self.conns.remove(&link);
                let conn = ConnId(link.0);
                self.node.handle_input(Input::Closed { now, conn, error });
            }
            HostInput::LinkFailed { now, link } => {
                self.conns.remove(&link);
                let conn = ConnId(link.0);
                let error = true;
                self.node.handle_input(Input::Closed { now, conn, error });
            }
        }
    }

    fn poll(&mut self) -> HostOutput<SimEvent> {
        loop {
            if let Some(o) = self.out.pop_front() {
                return o;
            }
            match self.node.poll_output() {
                Output::Connect { conn, target } => {
                    let link = LinkId(conn.0);
                    let dir = self.dir.borrow();
                    let (addr, kind) = match target {
                        ConnectTarget::Relay { addr, .. } => {
                            let peer_tls = dir.name_at(addr).map_or([0; 32], tls_digest);
                            (addr, Conn::Link { peer_tls })
                        }
                        ConnectTarget::Exit { host, port } => {
                            // A service by name; anything else is unreachable.
                            let addr = dir.hosts.get(&host).map_or(
                                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
                                |e| e.addr,
                            );
                            let held = VecDeque::new();
                            (addr, Conn::Exit { held, closed: None })
                        }
                    };
                    drop(dir);
                    self.conns.insert(link, kind);
                    return HostOutput::Dial { link, addr };
                }
                Output::Transmit(conn) => return HostOutput::Transmit(LinkId(conn.0)),
                Output::Close(conn) => {
                    let link = LinkId(conn.0);
                    self.conns.remove(&link);
                    self.backlogged.remove(&link);
                    return HostOutput::CloseLink(link);
                }
                Output::Event(e) => {
                    let now = self.node.now();
                    self.app
                        .on_event(now, &e, &mut self.node, &self.dir, &mut self.out);
                    return HostOutput::Event(SimEvent::Node(e));
                }
                Output::Timeout(at, _) => {
                    let now = self.node.now();
                    if !self.backlogged.is_empty() && self.feed_backlog(now) {
                        continue;
                    }
                    let at = self.app.next_wake().map_or(at, |t| t.min(at));
                    return HostOutput::Timeout(at);
                }
            }
        }
    }
}

impl ServiceHost {
    fn handle(&mut self, input: HostInput<'_>) {
        match input {
            HostInput::LinkData { link, data, .. } => {
                self.received += data.len() as u64;
                let role = self.role;
                let Some(c) = self.conns.get_mut(&link) else {
                    return;
                };
                match role {
                    HostRole::Echo => {
                        c.tx.extend(data);
                        self.out.push_back(HostOutput::Transmit(link));
                    }
                    HostRole::Source if !c.answered => {
                        let need = 8 - c.request.len();
                        c.request.extend(data.iter().take(need));
                        if let Ok(len) = <[u8; 8]>::try_from(c.request.as_slice()) {
                            c.answered = true;
                            let n = u64::from_be_bytes(len);
                            c.tx.extend((0..n).map(pattern_byte));
                            self.out.push_back(HostOutput::Transmit(link));
                            self.out.push_back(HostOutput::CloseLink(link));
                        }
                    }
                    _ => {}
                }
            }
            HostInput::LinkClosed { link, .. } | HostInput::LinkFailed { link, .. } => {
                self.conns.remove(&link);
            }
            HostInput::Timeout(_) | HostInput::LinkUp { .. } => {}
        }
    }
}

impl SimHost for SimPeer {
    type Event = SimEvent;

    fn accept_link(&mut self, now: Instant, remote: SocketAddr) -> Option<LinkId> {
        match self {
            SimPeer::Node(n) => {
                let peer_tls = n.dir.borrow().name_at(remote).map_or([0; 32], tls_digest);
                let binding = LinkBinding {
                    local: n.tls,
                    remote: peer_tls,
                };
                let conn = n.node.accept_link(now, Some(remote), binding).ok()?;
                let link = LinkId(conn.0);
                n.conns.insert(link, Conn::Link { peer_tls });
                Some(link)
            }
            SimPeer::Service(s) => {
                let link = LinkId(s.next);
                s.next += 1;
                s.conns.insert(link, ServiceConn::default());
                Some(link)
            }
        }
    }

    fn handle_input(&mut self, input: HostInput<'_>) {
        match self {
            SimPeer::Node(n) => n.handle(input),
            SimPeer::Service(s) => s.handle(input),
        }
    }

    fn poll_output(&mut self) -> HostOutput<SimEvent> {
        match self {
            SimPeer::Node(n) => n.poll(),
            SimPeer::Service(s) => s
                .out
                .pop_front()
                .unwrap_or(HostOutput::Timeout(Instant::FAR_FUTURE)),
        }
    }

    fn backlog(&self, link: LinkId) -> usize {
        match self {
            SimPeer::Node(n) => match n.conns.get(&link) {
                Some(Conn::Exit { held, .. }) => held.len(),
                _ => 0,
            },
            SimPeer::Service(_) => 0,
        }
    }

    fn poll_transmit(&mut self, link: LinkId, buf: &mut [u8]) -> usize {
        match self {
            SimPeer::Node(n) => n.node.poll_transmit(ConnId(link.0), buf),
            SimPeer::Service(s) => {
                let Some(c) = s.conns.get_mut(&link) else {
                    return 0;
                };
                let k = buf.len().min(c.tx.len());
                for (slot, b) in buf.iter_mut().zip(c.tx.drain(..k)) {
                    *slot = b;
                }
                k
            }
        }
    }
}

impl fmt::Debug for NodeHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.name, self.node)
    }
}
