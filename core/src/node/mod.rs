//! The node: one onion proxy / onion router as a deterministic state machine behind the
//! drive contract of [`api`].
//!
//! ```text
//!   runtime ──handle_input(Input)──▶ ┌──────┐ ──poll_output()──▶ Connect / Transmit / Close /
//!   app     ──command(now, Command)▶ │ Node │                     Event / … / Timeout (last)
//!           ◀─poll_transmit(conn)─── └──────┘
//! ```
//!
//! After every input or command, drain [`Node::poll_output`] until it returns
//! [`Output::Timeout`]. Bytes queued for a connection are announced once with
//! [`Output::Transmit`] and pulled with [`Node::poll_transmit`] when the transport can
//! take them: that is the node's backpressure.

pub mod api;
pub mod config;
pub mod counters;
pub mod exit_policy;
mod keys;

mod circuits;
mod download;
mod links;
mod ordb;
mod ordb_lists;
mod peersm;
mod signal;
mod streams;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::Instant;
use crate::cells::channel::CircId;
use crate::circuit::{CircKey, Circuit};
use crate::crypto::identity::{KeyError, PeerId};
use crate::link::Link;
use crate::stream::{ClientStream, ExitStream};
use api::{
    CircuitHandle, Command, CommandError, CommandOk, ConnId, Event, FirstHop, Input, LinkBinding,
    Output, RelayTarget, StreamHandle, StreamTarget, TimeoutReason,
};
use config::NodeConfig;
use counters::{Count, Counters};
use keys::NodeKeys;

/// Why a node could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// Generating the identity keys failed.
    Keys(KeyError),
}

impl core::fmt::Display for NodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NodeError::Keys(e) => write!(f, "cannot generate identity keys: {e:?}"),
        }
    }
}

/// Something with a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Link(ConnId),
    Circuit(CircKey),
    Exit(ConnId),
    /// A DHT lookup's next per-peer deadline.
    DhtQuery(u64),
    /// DHT maintenance: pings, request deadlines, records, ORDB circuits.
    DhtTick,
    /// A download's scheduler (stalls, slow circuits, retries).
    Download(u64),
}

/// An onion proxy and (optionally) onion router. See the module docs for how to drive it.
pub struct Node {
    config: NodeConfig,
    rng: ChaCha20Rng,
    now: Instant,
    keys: NodeKeys,
    my_addrs: Vec<IpAddr>,
    next_id: u64,
    links: BTreeMap<ConnId, Link>,
    exits: BTreeMap<ConnId, ExitStream>,
    circuits: BTreeMap<CircKey, Circuit>,
    /// Which circuit a (link, circuit id) pair belongs to, for both ends of a relay.
    circ_ends: BTreeMap<(ConnId, CircId), CircKey>,
    client_circs: BTreeMap<CircuitHandle, CircKey>,
    streams: BTreeMap<StreamHandle, ClientStream>,
    timers: BTreeSet<(Instant, Timer)>,
    outputs: VecDeque<Output>,
    counters: Counters,
    /// The Peersm DHT/peer state, when `config.peersm` is set.
    peersm: Option<alloc::boxed::Box<peersm::PeersmState>>,
    /// The ORDB and seeder state (store, lists, served and spliced streams), with Peersm.
    ordb: Option<alloc::boxed::Box<ordb::OrdbState>>,
    /// Downloads through the ORDBs (`Command::Get`).
    downloads: download::Downloads,
    /// Peer introduction: WebRTC offers and answers carried through the network.
    signals: signal::SignalState,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.keys.peer_id())
            .field("now", &self.now)
            .field("links", &self.links.len())
            .field("circuits", &self.circuits.len())
            .field("streams", &self.streams.len())
            .field("exits", &self.exits.len())
            .field("counters", &self.counters)
            .finish()
    }
}

impl Node {
    /// A node with fresh keys drawn from `config.seed`.
    pub fn new(config: NodeConfig, now: Instant) -> Result<Node, NodeError> {
        let mut rng = ChaCha20Rng::from_seed(config.seed);
        let keys = NodeKeys::generate(&mut rng).map_err(NodeError::Keys)?;
        let peersm = config
            .peersm
            .as_ref()
            .map(|p| alloc::boxed::Box::new(peersm::PeersmState::new(p, &keys)));
        let ordb = config
            .peersm
            .as_ref()
            .map(|p| alloc::boxed::Box::new(ordb::OrdbState::new(&p.ordb)));
        let signals = signal::SignalState::new(
            &config
                .peersm
                .as_ref()
                .map(|p| p.signal.clone())
                .unwrap_or_default(),
        );
        let mut node = Node {
            config,
            rng,
            now,
            keys,
            my_addrs: Vec::new(),
            next_id: 1,
            links: BTreeMap::new(),
            exits: BTreeMap::new(),
            circuits: BTreeMap::new(),
            circ_ends: BTreeMap::new(),
            client_circs: BTreeMap::new(),
            streams: BTreeMap::new(),
            timers: BTreeSet::new(),
            outputs: VecDeque::new(),
            counters: Counters::default(),
            peersm,
            ordb,
            downloads: download::Downloads::default(),
            signals,
        };
        node.arm_dht_tick();
        Ok(node)
    }

    // ---- getters -------------------------------------------------------------------

    /// This node's ID: the SHA-1 fingerprint of its RSA identity key.
    pub fn peer_id(&self) -> PeerId {
        self.keys.peer_id()
    }

    /// How other nodes reach and authenticate this node at `addr` (for their paths).
    pub fn relay_target(&self, addr: SocketAddr) -> RelayTarget {
        self.keys.relay_target(addr)
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// What the node refused, closed or dropped, by reason.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The latest instant the node has seen.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Numbers of open objects: (links, circuits, client streams, exit streams).
    pub fn census(&self) -> (usize, usize, usize, usize) {
        (
            self.links.len(),
            self.circuits.len(),
            self.streams.len(),
            self.exits.len(),
        )
    }

    /// Announce our own public addresses (sent in NETINFO).
    pub fn set_my_addrs(&mut self, addrs: Vec<IpAddr>) {
        self.my_addrs = addrs;
    }

    // ---- input ---------------------------------------------------------------------

    /// A peer opened a transport to us: returns the id the node will know it by. The
    /// link handshake starts when the peer speaks.
    pub fn accept_link(
        &mut self,
        now: Instant,
        remote: Option<SocketAddr>,
        binding: LinkBinding,
    ) -> Result<ConnId, CommandError> {
        self.advance(now);
        if !self.config.role.relay {
            self.counters.bump(Count::NotARelay);
            return Err(CommandError::Limit);
        }
        if self.links.len() >= self.config.limits.max_links {
            self.counters.bump(Count::TooManyLinks);
            return Err(CommandError::Limit);
        }
        let conn = self.fresh_conn();
        let mut link = Link::new(false, remote, None);
        link.binding = binding;
        link.state = crate::link::LinkState::Handshaking(crate::link::LinkHandshake::responder());
        self.links.insert(conn, link);
        self.set_link_deadline(conn);
        Ok(conn)
    }

    /// Feed one network or timer input.
    pub fn handle_input(&mut self, input: Input<'_>) {
        self.advance(input.now());
        match input {
            Input::Timeout(_) => {}
            Input::Connected { conn, binding, .. } => {
                if self.links.contains_key(&conn) {
                    self.on_link_connected(conn, binding);
                } else if self.exits.contains_key(&conn) {
                    self.on_exit_connected(conn);
                } else {
                    self.counters.bump(Count::StaleReference);
                }
            }
            Input::Data { conn, data, .. } => {
                if self.links.contains_key(&conn) {
                    self.on_link_data(conn, data);
                } else if self.exits.contains_key(&conn) {
                    self.on_exit_data(conn, data);
                } else {
                    self.counters.bump(Count::StaleReference);
                }
            }
            Input::Closed { conn, error, .. } => {
                if self.links.contains_key(&conn) {
                    let reason = if error {
                        api::LinkCloseReason::TransportError
                    } else {
                        api::LinkCloseReason::Closed
                    };
                    self.drop_link(conn, reason, false);
                } else if self.exits.contains_key(&conn) {
                    self.on_exit_closed(conn, error);
                } else {
                    self.counters.bump(Count::StaleReference);
                }
            }
        }
    }

    /// Carry out an application command.
    pub fn command(&mut self, now: Instant, cmd: Command) -> Result<CommandOk, CommandError> {
        self.advance(now);
        match cmd {
            Command::BuildCircuit { path, first_hop } => {
                self.start_circuit(path, first_hop).map(CommandOk::Circuit)
            }
            Command::CloseCircuit(h) => {
                let key = *self
                    .client_circs
                    .get(&h)
                    .ok_or(CommandError::NoSuchCircuit)?;
                self.destroy_circuit(key, crate::cells::channel::DestroyReason::FINISHED, None);
                Ok(CommandOk::Done)
            }
            Command::OpenStream { circuit, target } => {
                self.start_stream(circuit, target).map(CommandOk::Stream)
            }
            Command::CloseStream(s) => {
                self.close_client_stream(s)?;
                Ok(CommandOk::Done)
            }
            cmd @ (Command::Bootstrap { .. }
            | Command::FindNode(_)
            | Command::FindValue(_)
            | Command::Store { .. }
            | Command::AskOrdbs(_)) => self.dht_command(cmd).map(CommandOk::Query),
            cmd @ (Command::Seed { .. }
            | Command::Live { .. }
            | Command::LivePush { .. }
            | Command::Advertise { .. }
            | Command::Query { .. }) => self.ordb_command(cmd),
            cmd @ (Command::Get { .. } | Command::GetLive { .. } | Command::CancelGet(_)) => {
                self.download_command(cmd)
            }
            Command::Signal {
                to,
                via,
                session,
                kind,
                sdp,
            } => self
                .signal_command(to, via, session, kind, &sdp)
                .map(|()| CommandOk::Done),
        }
    }

    /// Build a circuit along `path` (see [`Command::BuildCircuit`]).
    pub fn build_circuit(
        &mut self,
        now: Instant,
        path: Vec<RelayTarget>,
        first_hop: FirstHop,
    ) -> Result<CircuitHandle, CommandError> {
        match self.command(now, Command::BuildCircuit { path, first_hop })? {
            CommandOk::Circuit(h) => Ok(h),
            _ => Err(CommandError::NoSuchCircuit),
        }
    }

    /// Open a stream on a built circuit (see [`Command::OpenStream`]).
    pub fn open_stream(
        &mut self,
        now: Instant,
        circuit: CircuitHandle,
        target: StreamTarget,
    ) -> Result<StreamHandle, CommandError> {
        match self.command(now, Command::OpenStream { circuit, target })? {
            CommandOk::Stream(s) => Ok(s),
            _ => Err(CommandError::NoSuchStream),
        }
    }

    // ---- output --------------------------------------------------------------------

    /// The next thing the driver must do; [`Output::Timeout`] when nothing is left.
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.outputs.pop_front() {
            return o;
        }
        match self.timers.first() {
            Some(&(at, timer)) => {
                let reason = match timer {
                    Timer::Link(_) => TimeoutReason::Link,
                    Timer::Circuit(_) => TimeoutReason::CircuitBuild,
                    Timer::Exit(_) => TimeoutReason::ExitConnect,
                    Timer::DhtQuery(_) | Timer::DhtTick | Timer::Download(_) => TimeoutReason::Dht,
                };
                Output::Timeout(at, reason)
            }
            None => Output::Timeout(Instant::FAR_FUTURE, TimeoutReason::Idle),
        }
    }

    /// Copy up to `buf.len()` queued bytes of `conn` into `buf`; returns how many. Call
    /// after [`Output::Transmit`] whenever the transport can take more, until it returns
    /// 0. Taking bytes may let the node queue more (announced with a new `Transmit`).
    pub fn poll_transmit(&mut self, conn: ConnId, buf: &mut [u8]) -> usize {
        let n = if let Some(link) = self.links.get_mut(&conn) {
            let n = drain_into(&mut link.outbuf, buf);
            if link.outbuf.is_empty() {
                link.transmit_announced = false;
            }
            n
        } else if let Some(exit) = self.exits.get_mut(&conn) {
            let n = drain_into(&mut exit.to_dest, buf);
            if exit.to_dest.is_empty() {
                exit.transmit_announced = false;
            }
            n
        } else {
            0
        };
        if n > 0 {
            self.after_drain(conn);
        }
        n
    }

    // ---- internals shared by the submodules ----------------------------------------

    fn fresh_conn(&mut self) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        id
    }

    fn fresh_u64(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn unix_now(&self) -> u64 {
        self.config.unix_time_at_zero + self.now.as_nanos() / 1_000_000_000
    }

    /// Move time forward (never back) and fire due timers.
    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        while let Some(&(at, timer)) = self.timers.first() {
            if at > self.now {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::Link(c) => self.on_link_timer(c, at),
                Timer::Circuit(k) => self.on_circuit_timer(k, at),
                Timer::Exit(c) => self.on_exit_timer(c, at),
                Timer::DhtQuery(q) => self.on_dht_query_timer(q),
                Timer::DhtTick => self.on_dht_tick(),
                Timer::Download(h) => self.on_download_timer(h),
            }
        }
    }

    fn set_link_deadline(&mut self, conn: ConnId) {
        let at = self.now + self.config.limits.link_handshake_timeout;
        if let Some(l) = self.links.get_mut(&conn) {
            l.deadline = Some(at);
            self.timers.insert((at, Timer::Link(conn)));
        }
    }
}

fn drain_into(q: &mut VecDeque<u8>, buf: &mut [u8]) -> usize {
    let n = q.len().min(buf.len());
    let (a, b) = q.as_slices();
    let from_a = n.min(a.len());
    buf[..from_a].copy_from_slice(&a[..from_a]);
    buf[from_a..n].copy_from_slice(&b[..n - from_a]);
    q.drain(..n);
    n
}
