//! onionpeer's cross-crate test support: an in-memory network of [`Node`]s in the style
//! of quinn-proto's test `Pair` — links as byte queues with latency, services that exits
//! connect to, and `step`/`drive`/`drive_bounded` to run it — plus the call tape that
//! makes every run replayable.
//!
//! Time is virtual: the network jumps from one delivery or timeout to the next, so tests
//! are fast and exactly reproducible.

pub mod tape;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use onionpeer_core::Instant;
use onionpeer_core::node::Node;
use onionpeer_core::node::api::{ConnId, ConnectTarget, Event, Input, LinkBinding, Output};
use onionpeer_core::node::config::NodeConfig;
use sha2::{Digest, Sha256};

pub use tape::{Call, Tape, TapedNode};

/// Index of a node in a [`Network`].
pub type NodeIx = usize;

/// A service an exit can connect to.
#[derive(Debug, Clone)]
pub enum Service {
    /// Sends back whatever it receives.
    Echo,
    /// Swallows everything.
    Sink,
    /// Sends `n` bytes of a fixed pattern as soon as it is connected, then closes.
    Source(usize),
    /// Like `Source`, but starts sending only after the given delay.
    LateSource(usize, Duration),
}

/// The far end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// Another node's connection.
    Node(NodeIx, ConnId),
    /// A service instance.
    Service(usize),
    /// Nothing: a connection that failed to open.
    Nowhere,
}

/// Something scheduled on the network.
#[derive(Debug)]
enum Delivery {
    /// The dial from `from` reached its target; tell the dialer.
    Connected {
        to: (NodeIx, ConnId),
        binding: LinkBinding,
    },
    /// Bytes arrive.
    Data { to: Peer, bytes: Vec<u8> },
    /// The transport closed.
    Closed { to: Peer, error: bool },
}

struct Host {
    name: String,
    node: TapedNode,
    addr: SocketAddr,
    /// SHA-256 of the host's (imaginary) TLS certificate, bound by the link handshake.
    tls_digest: [u8; 32],
    /// Earliest wakeup the node asked for.
    wake: Instant,
    alive: bool,
}

struct ServiceConn {
    kind: Service,
    /// The exit connection this service instance talks to.
    exit: (NodeIx, ConnId),
    received: usize,
}

/// An in-memory network of nodes.
pub struct Network {
    /// Current virtual time.
    pub now: Instant,
    /// One-way latency of every connection.
    pub latency: Duration,
    hosts: Vec<Host>,
    by_addr: BTreeMap<SocketAddr, NodeIx>,
    /// Open connections: (node, conn) -> far end.
    conns: BTreeMap<(NodeIx, ConnId), Peer>,
    services: BTreeMap<(String, u16), Service>,
    service_conns: Vec<ServiceConn>,
    queue: BTreeMap<(Instant, u64), Delivery>,
    seq: u64,
    /// Every event each node emitted, with its time.
    pub events: Vec<(Instant, NodeIx, Event)>,
    /// Largest chunk moved per transmit.
    pub chunk: usize,
    /// Corrupt the TLS digest a dialer sees for this node (to test certificate checks).
    pub forge_binding_of: Option<NodeIx>,
    /// Record every call into nodes added from now on (see [`tape`]).
    pub record: bool,
    /// Directions (from, to) whose deliveries are held back until released.
    held: std::collections::BTreeSet<(NodeIx, NodeIx)>,
    held_queue: Vec<Delivery>,
    /// Nodes whose links are not drained (their bytes stay queued in the node) until
    /// [`Self::resume_sending`].
    paused: std::collections::BTreeSet<NodeIx>,
    configs: Vec<NodeConfig>,
}

/// Unix time the harness's nodes believe `Instant::ZERO` is (2026-01-01).
pub const UNIX_EPOCH_AT_ZERO: u64 = 1_767_225_600;

impl Network {
    /// An empty network with 10 ms links.
    pub fn new() -> Network {
        Network {
            now: Instant::ZERO,
            latency: Duration::from_millis(10),
            hosts: Vec::new(),
            by_addr: BTreeMap::new(),
            conns: BTreeMap::new(),
            services: BTreeMap::new(),
            service_conns: Vec::new(),
            queue: BTreeMap::new(),
            seq: 0,
            events: Vec::new(),
            chunk: 64 * 1024,
            forge_binding_of: None,
            record: false,
            held: Default::default(),
            held_queue: Vec::new(),
            paused: Default::default(),
            configs: Vec::new(),
        }
    }

    /// A seed derived from a name, so each node's keys are fixed by its name.
    pub fn seed_for(name: &str) -> [u8; 32] {
        Sha256::digest(format!("onionpeer-test-node:{name}").as_bytes()).into()
    }

    /// Add a node with `config` (its seed is replaced by one derived from `name`).
    pub fn add_node(&mut self, name: &str, mut config: NodeConfig) -> NodeIx {
        config.seed = Self::seed_for(name);
        config.unix_time_at_zero = UNIX_EPOCH_AT_ZERO;
        let ix = self.hosts.len();
        let addr = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 0, (ix >> 8) as u8, ix as u8 + 1)),
            9001,
        );
        let mut node = TapedNode::new(Node::new(config.clone(), self.now).expect("node keys"));
        node.recording = self.record;
        self.configs.push(config);
        let tls_digest = Sha256::digest(format!("tls-cert:{name}").as_bytes()).into();
        self.hosts.push(Host {
            name: name.to_string(),
            node,
            addr,
            tls_digest,
            wake: Instant::ZERO,
            alive: true,
        });
        self.by_addr.insert(addr, ix);
        self.flush(ix);
        ix
    }

    /// Register a service exits may connect to at `host:port`.
    pub fn add_service(&mut self, host: &str, port: u16, service: Service) {
        self.services.insert((host.to_string(), port), service);
    }

    /// The node at `ix`.
    pub fn node(&self, ix: NodeIx) -> &Node {
        self.hosts[ix].node.node()
    }

    /// The node at `ix`, recording every call made through it on its tape.
    pub fn taped(&mut self, ix: NodeIx) -> &mut TapedNode {
        &mut self.hosts[ix].node
    }

    /// A node's address.
    pub fn addr(&self, ix: NodeIx) -> SocketAddr {
        self.hosts[ix].addr
    }

    /// A node's name.
    pub fn name(&self, ix: NodeIx) -> &str {
        &self.hosts[ix].name
    }

    /// How a client reaches node `ix` in a path.
    pub fn target(&self, ix: NodeIx) -> onionpeer_core::node::api::RelayTarget {
        self.node(ix).relay_target(self.hosts[ix].addr)
    }

    /// Drain the outputs of node `ix` and act on them. Call after using [`Self::taped`].
    pub fn flush(&mut self, ix: NodeIx) {
        if !self.hosts[ix].alive {
            return;
        }
        loop {
            let out = self.hosts[ix].node.poll_output();
            match out {
                Output::Timeout(at, _) => {
                    self.hosts[ix].wake = at;
                    break;
                }
                Output::Event(e) => self.events.push((self.now, ix, e)),
                Output::Connect { conn, target } => self.connect(ix, conn, target),
                Output::Transmit(conn) => self.transmit(ix, conn),
                Output::Close(conn) => {
                    self.transmit(ix, conn);
                    if let Some(peer) = self.conns.remove(&(ix, conn)) {
                        self.schedule(Delivery::Closed {
                            to: peer,
                            error: false,
                        });
                    }
                }
            }
        }
    }

    /// The config node `ix` was made from (with its seed), for replaying its tape.
    pub fn config(&self, ix: NodeIx) -> NodeConfig {
        self.configs[ix].clone()
    }

    /// Hold back everything node `from` sends to node `to` (in order) until
    /// [`Self::release`].
    pub fn hold(&mut self, from: NodeIx, to: NodeIx) {
        self.held.insert((from, to));
    }

    /// Deliver what was held from `from` to `to`, in order, and stop holding.
    pub fn release(&mut self, from: NodeIx, to: NodeIx) {
        self.held.remove(&(from, to));
        let held = std::mem::take(&mut self.held_queue);
        let tagged: Vec<_> = held.into_iter().map(|d| (self.source_of(&d), d)).collect();
        for (src, d) in tagged {
            match src {
                Some(pair) if self.held.contains(&pair) => self.held_queue.push(d),
                _ => self.schedule(d),
            }
        }
    }

    /// Stop taking bytes from node `ix`'s links: what it sends stays queued in the node,
    /// as behind a congested uplink.
    pub fn pause_sending(&mut self, ix: NodeIx) {
        self.paused.insert(ix);
    }

    /// Take what node `ix` queued while paused, and go on draining it.
    pub fn resume_sending(&mut self, ix: NodeIx) {
        self.paused.remove(&ix);
        let conns: Vec<ConnId> = self
            .conns
            .keys()
            .filter(|(i, _)| *i == ix)
            .map(|(_, c)| *c)
            .collect();
        for conn in conns {
            self.transmit(ix, conn);
        }
        self.flush(ix);
    }

    fn source_of(&self, d: &Delivery) -> Option<(NodeIx, NodeIx)> {
        let to = match d {
            Delivery::Data {
                to: Peer::Node(i, c),
                ..
            }
            | Delivery::Closed {
                to: Peer::Node(i, c),
                ..
            } => (*i, *c),
            _ => return None,
        };
        match self.conns.get(&to) {
            Some(Peer::Node(from, _)) => Some((*from, to.0)),
            _ => None,
        }
    }

    fn schedule(&mut self, d: Delivery) {
        self.schedule_at(self.now + self.latency, d);
    }

    fn schedule_at(&mut self, at: Instant, d: Delivery) {
        if let Some(pair) = self.source_of(&d)
            && self.held.contains(&pair)
        {
            self.held_queue.push(d);
            return;
        }
        self.seq += 1;
        self.queue.insert((at, self.seq), d);
    }

    /// A dial that fails: the dialer hears `Closed` with an error.
    fn fail_dial(&mut self, ix: NodeIx, conn: ConnId) {
        self.conns.insert((ix, conn), Peer::Nowhere);
        self.schedule(Delivery::Closed {
            to: Peer::Node(ix, conn),
            error: true,
        });
    }

    fn connect(&mut self, ix: NodeIx, conn: ConnId, target: ConnectTarget) {
        match target {
            ConnectTarget::Relay { addr, .. } => {
                let Some(&to) = self.by_addr.get(&addr).filter(|&&to| self.hosts[to].alive) else {
                    return self.fail_dial(ix, conn);
                };
                let dialer_digest = self.hosts[ix].tls_digest;
                let mut their_digest = self.hosts[to].tls_digest;
                if self.forge_binding_of == Some(to) {
                    their_digest[0] ^= 1;
                }
                let (now, dialer_addr, local) =
                    (self.now, self.hosts[ix].addr, self.hosts[to].tls_digest);
                let binding = LinkBinding {
                    local,
                    remote: dialer_digest,
                };
                let accepted = self.hosts[to]
                    .node
                    .accept_link(now, Some(dialer_addr), binding);
                self.flush(to);
                let Ok(theirs) = accepted else {
                    return self.fail_dial(ix, conn);
                };
                self.conns.insert((ix, conn), Peer::Node(to, theirs));
                self.conns.insert((to, theirs), Peer::Node(ix, conn));
                let binding = LinkBinding {
                    local: dialer_digest,
                    remote: their_digest,
                };
                self.schedule(Delivery::Connected {
                    to: (ix, conn),
                    binding,
                });
            }
            ConnectTarget::Exit { host, port } => {
                let Some(kind) = self.services.get(&(host, port)).cloned() else {
                    return self.fail_dial(ix, conn);
                };
                let s = self.service_conns.len();
                self.service_conns.push(ServiceConn {
                    kind: kind.clone(),
                    exit: (ix, conn),
                    received: 0,
                });
                self.conns.insert((ix, conn), Peer::Service(s));
                self.schedule(Delivery::Connected {
                    to: (ix, conn),
                    binding: LinkBinding::default(),
                });
                let (n, delay) = match kind {
                    Service::Source(n) => (n, Duration::ZERO),
                    Service::LateSource(n, d) => (n, d),
                    Service::Echo | Service::Sink => return,
                };
                let at = self.now + self.latency + delay;
                for c in pattern(0, n).chunks(self.chunk) {
                    self.schedule_at(
                        at,
                        Delivery::Data {
                            to: Peer::Node(ix, conn),
                            bytes: c.to_vec(),
                        },
                    );
                }
                self.schedule_at(
                    at,
                    Delivery::Closed {
                        to: Peer::Node(ix, conn),
                        error: false,
                    },
                );
            }
        }
    }

    fn transmit(&mut self, ix: NodeIx, conn: ConnId) {
        if self.paused.contains(&ix) {
            return;
        }
        let mut buf = vec![0u8; self.chunk];
        loop {
            let n = self.hosts[ix].node.poll_transmit(conn, &mut buf);
            if n == 0 {
                break;
            }
            if let Some(&peer) = self.conns.get(&(ix, conn)) {
                self.schedule(Delivery::Data {
                    to: peer,
                    bytes: buf[..n].to_vec(),
                });
            }
        }
    }

    /// Run the next delivery or timeout. `false` when nothing is left to do.
    pub fn step(&mut self) -> bool {
        let next_delivery = self.queue.keys().next().map(|&(t, _)| t);
        let next_wake = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.alive)
            .map(|(i, h)| (h.wake, i))
            .min();
        match (next_delivery, next_wake) {
            (Some(t), Some((w, _))) if t <= w => self.deliver_next(),
            (Some(_), None) => self.deliver_next(),
            (_, Some((w, i))) if w < Instant::FAR_FUTURE => {
                self.now = self.now.max(w);
                self.hosts[i].node.handle_input(Input::Timeout(self.now));
                self.flush(i);
            }
            _ => return false,
        }
        true
    }

    fn deliver_next(&mut self) {
        let Some(((t, _), d)) = self.queue.pop_first() else {
            return;
        };
        self.now = self.now.max(t);
        let now = self.now;
        match d {
            Delivery::Connected {
                to: (ix, conn),
                binding,
            } => {
                if self.hosts[ix].alive && self.conns.contains_key(&(ix, conn)) {
                    self.hosts[ix]
                        .node
                        .handle_input(Input::Connected { now, conn, binding });
                    self.flush(ix);
                }
            }
            Delivery::Data {
                to: Peer::Node(ix, conn),
                mut bytes,
            } => {
                if self.hosts[ix].alive && self.conns.contains_key(&(ix, conn)) {
                    // A runtime reads an exit's destination only while the node has room.
                    if matches!(self.conns.get(&(ix, conn)), Some(Peer::Service(_))) {
                        let room = self.hosts[ix].node.node().read_capacity(conn);
                        if room < bytes.len() {
                            let rest = bytes.split_off(room);
                            self.seq += 1;
                            let retry = self.now + Duration::from_millis(1);
                            self.queue.insert(
                                (retry, self.seq),
                                Delivery::Data {
                                    to: Peer::Node(ix, conn),
                                    bytes: rest,
                                },
                            );
                        }
                        if bytes.is_empty() {
                            return;
                        }
                    }
                    self.hosts[ix].node.handle_input(Input::Data {
                        now,
                        conn,
                        data: &bytes,
                    });
                    self.flush(ix);
                }
            }
            Delivery::Closed {
                to: Peer::Node(ix, conn),
                error,
            } => {
                // A close follows the data before it, even data held back by backpressure.
                let data_pending = self.queue.values().any(
                    |d| matches!(d, Delivery::Data { to: Peer::Node(i, c), .. } if (*i, *c) == (ix, conn)),
                );
                if data_pending {
                    self.seq += 1;
                    let retry = self.now + Duration::from_millis(1);
                    self.queue.insert(
                        (retry, self.seq),
                        Delivery::Closed {
                            to: Peer::Node(ix, conn),
                            error,
                        },
                    );
                    return;
                }
                if self.hosts[ix].alive && self.conns.remove(&(ix, conn)).is_some() {
                    self.hosts[ix]
                        .node
                        .handle_input(Input::Closed { now, conn, error });
                    self.flush(ix);
                }
            }
            Delivery::Data {
                to: Peer::Service(s),
                bytes,
            } => {
                let sc = &mut self.service_conns[s];
                sc.received += bytes.len();
                let exit = sc.exit;
                if matches!(sc.kind, Service::Echo) && self.conns.contains_key(&exit) {
                    self.schedule(Delivery::Data {
                        to: Peer::Node(exit.0, exit.1),
                        bytes,
                    });
                }
            }
            Delivery::Closed {
                to: Peer::Service(s),
                ..
            } => {
                let exit = self.service_conns[s].exit;
                if self.conns.remove(&exit).is_some() {
                    self.schedule(Delivery::Closed {
                        to: Peer::Node(exit.0, exit.1),
                        error: false,
                    });
                }
            }
            Delivery::Data {
                to: Peer::Nowhere, ..
            }
            | Delivery::Closed {
                to: Peer::Nowhere, ..
            } => {}
        }
    }

    /// Step until `done` holds or nothing is left; panics after `max_steps` (a livelock).
    pub fn drive_bounded(&mut self, max_steps: usize, mut done: impl FnMut(&mut Network) -> bool) {
        for _ in 0..max_steps {
            if done(self) {
                return;
            }
            if !self.step() {
                assert!(done(self), "network went idle before the condition held");
                return;
            }
        }
        panic!(
            "condition not reached within {max_steps} steps (at {})",
            self.now
        );
    }

    /// Step until nothing is left to do before `until`.
    pub fn drive_until(&mut self, until: Instant) {
        loop {
            let next = self.queue.keys().next().map(|&(t, _)| t);
            let wake = self.hosts.iter().filter(|h| h.alive).map(|h| h.wake).min();
            let earliest = match (next, wake) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if earliest > until || !self.step() {
                break;
            }
        }
        self.now = self.now.max(until);
    }

    /// Crash node `ix`: its state is gone and every peer sees its connections close.
    pub fn crash(&mut self, ix: NodeIx) {
        self.hosts[ix].alive = false;
        let mine: Vec<_> = self
            .conns
            .keys()
            .filter(|(i, _)| *i == ix)
            .copied()
            .collect();
        for k in mine {
            if let Some(peer) = self.conns.remove(&k) {
                self.schedule(Delivery::Closed {
                    to: peer,
                    error: true,
                });
            }
        }
    }

    /// Inject raw bytes into node `ix`'s connection `conn`, as if its peer sent them.
    pub fn inject(&mut self, ix: NodeIx, conn: ConnId, bytes: &[u8]) {
        let now = self.now;
        self.hosts[ix].node.handle_input(Input::Data {
            now,
            conn,
            data: bytes,
        });
        self.flush(ix);
    }

    /// The connections node `ix` has to node `other`.
    pub fn conns_between(&self, ix: NodeIx, other: NodeIx) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|((i, _), p)| *i == ix && matches!(p, Peer::Node(o, _) if *o == other))
            .map(|((_, c), _)| *c)
            .collect()
    }

    /// Events node `ix` emitted.
    pub fn events_of(&self, ix: NodeIx) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .filter(move |(_, i, _)| *i == ix)
            .map(|(_, _, e)| e)
    }

    /// Bytes service instances received in all.
    pub fn service_received(&self) -> usize {
        self.service_conns.iter().map(|s| s.received).sum()
    }
}

/// A client `op`, `relays` middle relays and an exit accepting everything, with an echo
/// service at `echo.example:7`: returns the network, the client and the path (exit last).
pub fn chain(relays: usize) -> (Network, NodeIx, Vec<NodeIx>) {
    chain_on(Network::new(), relays)
}

/// [`chain`] on a prepared (e.g. recording) network.
pub fn chain_on(mut net: Network, relays: usize) -> (Network, NodeIx, Vec<NodeIx>) {
    use onionpeer_core::node::config::Role;
    let op = net.add_node("op", NodeConfig::new([0; 32], Role::CLIENT, 0));
    let mut path = Vec::new();
    for i in 0..relays {
        path.push(net.add_node(
            &format!("relay{i}"),
            NodeConfig::new([0; 32], Role::RELAY, 0),
        ));
    }
    let mut exit_cfg = NodeConfig::new([0; 32], Role::EXIT, 0);
    exit_cfg.exit_policy = onionpeer_core::node::exit_policy::ExitPolicy::accept_all();
    path.push(net.add_node("exit", exit_cfg));
    net.add_service("echo.example", 7, Service::Echo);
    (net, op, path)
}

impl Network {
    /// Build a circuit from `op` along `path` and drive until it is built.
    pub fn build(
        &mut self,
        op: NodeIx,
        path: &[NodeIx],
        first_hop: onionpeer_core::node::api::FirstHop,
    ) -> onionpeer_core::node::api::CircuitHandle {
        let targets = path.iter().map(|&h| self.target(h)).collect();
        let now = self.now;
        let circ = self
            .taped(op)
            .build_circuit(now, targets, first_hop)
            .expect("build");
        self.flush(op);
        self.drive_bounded(100_000, |n| {
            n.events_of(op)
                .any(|e| matches!(e, Event::CircuitBuilt(c) if *c == circ))
        });
        circ
    }

    /// Read everything stream `s` of node `op` has received into `out`, then act on what
    /// reading caused (SENDMEs). Returns how many bytes were read.
    pub fn read_available(
        &mut self,
        op: NodeIx,
        s: onionpeer_core::node::api::StreamHandle,
        out: &mut Vec<u8>,
    ) -> usize {
        let mut buf = [0u8; 16 * 1024];
        let now = self.now;
        let mut total = 0;
        while let Ok(k) = self.taped(op).read_stream(now, s, &mut buf) {
            if k == 0 {
                break;
            }
            out.extend_from_slice(&buf[..k]);
            total += k;
        }
        self.flush(op);
        total
    }

    /// Open a stream to `host:port` on `circ` and drive until it is connected.
    pub fn open(
        &mut self,
        op: NodeIx,
        circ: onionpeer_core::node::api::CircuitHandle,
        host: &str,
        port: u16,
    ) -> onionpeer_core::node::api::StreamHandle {
        let now = self.now;
        let target = onionpeer_core::node::api::StreamTarget::Tcp {
            host: host.into(),
            port,
        };
        let s = self.taped(op).open_stream(now, circ, target).expect("open");
        self.flush(op);
        self.drive_bounded(100_000, |n| {
            n.events_of(op)
                .any(|e| matches!(e, Event::StreamOpened { stream, .. } if *stream == s))
        });
        s
    }
}

impl Default for Network {
    fn default() -> Self {
        Network::new()
    }
}

/// A deterministic byte pattern: byte `i` of a stream starting at `offset`.
pub fn pattern(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}
