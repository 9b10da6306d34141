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
}

/// The far end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// Another node's connection.
    Node(NodeIx, ConnId),
    /// A service instance.
    Service(usize),
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
        let node = TapedNode::new(Node::new(config, self.now).expect("node keys"));
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

    fn schedule(&mut self, d: Delivery) {
        self.seq += 1;
        self.queue.insert((self.now + self.latency, self.seq), d);
    }

    fn connect(&mut self, ix: NodeIx, conn: ConnId, target: ConnectTarget) {
        match target {
            ConnectTarget::Relay { addr, .. } => {
                let Some(&to) = self.by_addr.get(&addr).filter(|&&to| self.hosts[to].alive) else {
                    self.schedule(Delivery::Closed {
                        to: Peer::Node(ix, conn),
                        error: true,
                    });
                    return;
                };
                let dialer_digest = self.hosts[ix].tls_digest;
                let mut their_digest = self.hosts[to].tls_digest;
                if self.forge_binding_of == Some(to) {
                    their_digest[0] ^= 1;
                }
                let (now, dialer_addr, local) =
                    (self.now, self.hosts[ix].addr, self.hosts[to].tls_digest);
                let accepted = self.hosts[to].node.accept_link(
                    now,
                    Some(dialer_addr),
                    LinkBinding {
                        local,
                        remote: dialer_digest,
                    },
                );
                self.flush(to);
                match accepted {
                    Ok(theirs) => {
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
                    Err(_) => self.schedule(Delivery::Closed {
                        to: Peer::Node(ix, conn),
                        error: true,
                    }),
                }
            }
            ConnectTarget::Exit { host, port } => {
                let Some(kind) = self.services.get(&(host, port)).cloned() else {
                    self.schedule(Delivery::Closed {
                        to: Peer::Node(ix, conn),
                        error: true,
                    });
                    return;
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
                if let Service::Source(n) = kind {
                    let bytes = pattern(0, n);
                    for c in bytes.chunks(self.chunk) {
                        self.schedule(Delivery::Data {
                            to: Peer::Node(ix, conn),
                            bytes: c.to_vec(),
                        });
                    }
                    self.schedule(Delivery::Closed {
                        to: Peer::Node(ix, conn),
                        error: false,
                    });
                }
            }
        }
    }

    fn transmit(&mut self, ix: NodeIx, conn: ConnId) {
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
                bytes,
            } => {
                if self.hosts[ix].alive && self.conns.contains_key(&(ix, conn)) {
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
