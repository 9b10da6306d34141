//! The world: hosts, links and faults driven by one event queue in virtual time.
//!
//! Semantics worth knowing:
//! - Connection setup takes one round trip: the listener accepts after one latency, the
//!   dialer gets `LinkUp` after two. Dials to an unknown or dead address, or across a
//!   partition, fail (`LinkFailed`) after [`SimConfig::dial_timeout_ms`]; a listener that
//!   died before accepting refuses (the dialer fails one latency later).
//! - A host's `CloseLink` is graceful: its queued bytes are flushed, the peer gets
//!   `LinkClosed` after the last byte. The closing host is not told.
//! - A scripted `close_link`, a path failure (`loss`) and a partition timeout are abortive:
//!   both ends get `LinkClosed` at once and bytes in flight are dropped.
//! - A partition holds traffic across it (dials fail); links that still cross it after
//!   [`SimConfig::partition_close_ms`] close at both ends (reason `partition`). Healing
//!   before then releases the held bytes in order.
//! - A crash drops the host's state; each peer gets `LinkClosed` one latency later.
//! - Close counts in the summary are per end told (a link closed at both ends counts 2).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::host::{HostInput, HostOutput, Instant, LinkId, SimHost};
use crate::link::{Direction, End, Link, Pipe};
use crate::plot::{self, PlotError};
use crate::queue::EventQueue;
use crate::scenario::Action;
use crate::seed::{MasterSeed, derive_seed};
use crate::topology::{Path, Topology};
use crate::trace::{Metrics, Summary, Trace};

/// Knobs of the link model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Bytes a sender may have in flight on one link direction (its send window).
    pub window_bytes: usize,
    /// Largest chunk pulled from a host at once (one delivery event).
    pub chunk_bytes: usize,
    /// How long a dial that cannot connect takes to fail.
    pub dial_timeout_ms: u64,
    /// How long a link may stall across a partition before both ends close it.
    pub partition_close_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            window_bytes: 256 * 1024,
            chunk_bytes: 16 * 1024,
            dial_timeout_ms: 3_000,
            partition_close_ms: 10_000,
        }
    }
}

/// What a host factory is given to build a host.
#[derive(Debug, Clone, Copy)]
pub struct HostSpec<'a> {
    /// The host's name.
    pub name: &'a str,
    /// Its 32-byte RNG seed: `derive_seed(master, name)` for the first incarnation,
    /// `derive_seed(master, "name#k")` for the k-th restart (a fresh identity).
    pub seed: [u8; 32],
    /// Its address (stable across restarts).
    pub addr: SocketAddr,
    /// The role string of its group.
    pub role: &'a str,
    /// 0 for the first start, k after k restarts.
    pub incarnation: u32,
    /// The current time.
    pub now: Instant,
}

/// Context for hooks: the time and how to find hosts.
#[derive(Debug)]
pub struct HookCtx<'a> {
    /// The current time.
    pub now: Instant,
    /// The host the hook runs for.
    pub host: &'a str,
    directory: &'a BTreeMap<String, SocketAddr>,
}

impl HookCtx<'_> {
    /// The address of the host `name`.
    pub fn addr_of(&self, name: &str) -> Option<SocketAddr> {
        self.directory.get(name).copied()
    }
}

type Factory<H> = Box<dyn FnMut(&HostSpec<'_>) -> H>;
type ActionHook<H> = Box<dyn FnMut(&mut H, &HookCtx<'_>, &Action)>;
type EventHook<H> = Box<dyn FnMut(&HookCtx<'_>, &<H as SimHost>::Event, &mut Metrics)>;

struct HostSlot<H> {
    name: String,
    role: String,
    addr: SocketAddr,
    node: usize,
    generation: u32,
    host: Option<H>,
    wake: Option<Instant>,
    up: Pipe,
    down: Pipe,
}

#[derive(Debug)]
enum Ev {
    Wake {
        host: usize,
        generation: u32,
        at: Instant,
    },
    Accept {
        link: u64,
    },
    Up {
        link: u64,
    },
    Deliver {
        link: u64,
        to: usize,
        data: Vec<u8>,
    },
    EndClosed {
        link: u64,
        end: usize,
        reason: &'static str,
    },
    PartitionCheck {
        link: u64,
    },
    PathFailure {
        link: u64,
    },
    Action(Action),
    Churn {
        join: bool,
    },
}

struct Partition {
    a: BTreeSet<usize>,
    b: BTreeSet<usize>,
    two_way: bool,
}

/// Random joins and leaves (Poisson processes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Joins per second.
    #[serde(default)]
    pub join_per_s: f64,
    /// Leaves per second (a random live host of `role` crashes for good).
    #[serde(default)]
    pub leave_per_s: f64,
    /// Role of joining hosts, and of the hosts that may leave.
    pub role: String,
    /// Name prefix of joining hosts.
    #[serde(default = "default_churn_prefix")]
    pub prefix: String,
    /// When churn starts, ms.
    #[serde(default)]
    pub start_ms: u64,
    /// When churn stops, ms (default: never).
    #[serde(default)]
    pub end_ms: Option<u64>,
}

fn default_churn_prefix() -> String {
    "churn".into()
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Report {
    /// SHA-256 of the trace, hex.
    pub trace_hash: String,
    /// Trace lines, if kept.
    pub lines: Vec<String>,
    /// Counts.
    pub summary: Summary,
    /// Samples and series reported through the event hook.
    pub metrics: Metrics,
    /// Virtual time at the end.
    pub end: Instant,
    /// The master seed (0 when it was given as bytes).
    pub seed: u64,
    /// Non-zero node counters of the hosts alive at the end, by host name (filled by
    /// [`crate::run::run`]; empty from [`World::finish`]).
    pub node_counters: BTreeMap<String, BTreeMap<String, u64>>,
    /// For Peersm runs: one peer's name and its routing table rendered as text.
    pub routing_table: Option<(String, String)>,
}

/// A simulated network of hosts of type `H`.
pub struct World<H: SimHost> {
    config: SimConfig,
    master: MasterSeed,
    now: Instant,
    queue: EventQueue<Ev>,
    hosts: Vec<HostSlot<H>>,
    by_name: BTreeMap<String, usize>,
    by_addr: BTreeMap<SocketAddr, usize>,
    directory: BTreeMap<String, SocketAddr>,
    links: BTreeMap<u64, Link>,
    link_ix: BTreeMap<(usize, LinkId), (u64, usize)>,
    next_link: u64,
    topology: Topology,
    paths: BTreeMap<(usize, usize), Option<Path>>,
    next_node: usize,
    partitions: Vec<Partition>,
    churn: Option<Churn>,
    churn_joined: u64,
    rng: ChaCha20Rng,
    factory: Factory<H>,
    action_hook: Option<ActionHook<H>>,
    event_hook: Option<EventHook<H>>,
    trace: Trace,
    summary: Summary,
    metrics: Metrics,
}

/// The address of the `i`-th host: 10.x.y.z:9001, unique per index.
pub fn host_addr(index: usize) -> SocketAddr {
    let n = u32::try_from(index + 1).unwrap_or(u32::MAX) & 0x00ff_ffff;
    let ip = Ipv4Addr::from(0x0a00_0000 | n);
    SocketAddr::V4(SocketAddrV4::new(ip, 9001))
}

fn exp_delay(rng: &mut ChaCha20Rng, rate_per_s: f64) -> Duration {
    // u in (0, 1]: never ln(0).
    let u = ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
    Duration::from_secs_f64((-u.ln() / rate_per_s).min(1e9))
}

impl Report {
    /// Write plots of the run's metrics into `dir` (next to the trace): `<name>.cdf.svg`
    /// for every sample set and `series.svg` with every time series. Returns the files.
    pub fn write_plots(&self, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, PlotError> {
        let mut written = Vec::new();
        for (name, samples) in &self.metrics.samples {
            let path = dir.join(format!("{name}.cdf.svg"));
            plot::cdf_svg(&path, name, name, samples)?;
            written.push(path);
        }
        if !self.metrics.series.is_empty() {
            let path = dir.join("series.svg");
            let series: Vec<(&str, &[(f64, f64)])> = self
                .metrics
                .series
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            plot::time_series_svg(&path, "series", "value", &series)?;
            written.push(path);
        }
        Ok(written)
    }
}

impl<H: SimHost> World<H> {
    /// An empty world. `factory` builds a host from its spec, at start and on restart.
    pub fn new(
        master: impl Into<MasterSeed>,
        config: SimConfig,
        topology: Topology,
        trace: Trace,
        factory: impl FnMut(&HostSpec<'_>) -> H + 'static,
    ) -> World<H> {
        let master = master.into();
        World {
            config,
            master,
            now: Instant::ZERO,
            queue: EventQueue::new(),
            hosts: Vec::new(),
            by_name: BTreeMap::new(),
            by_addr: BTreeMap::new(),
            directory: BTreeMap::new(),
            links: BTreeMap::new(),
            link_ix: BTreeMap::new(),
            next_link: 0,
            topology,
            paths: BTreeMap::new(),
            next_node: 0,
            partitions: Vec::new(),
            churn: None,
            churn_joined: 0,
            rng: ChaCha20Rng::from_seed(derive_seed(master, "onionpeer-sim world")),
            factory: Box::new(factory),
            action_hook: None,
            event_hook: None,
            trace,
            summary: Summary::default(),
            metrics: Metrics::default(),
        }
    }

    /// Run `hook` for actions the world does not know (see [`World::schedule`]).
    pub fn on_action(&mut self, hook: impl FnMut(&mut H, &HookCtx<'_>, &Action) + 'static) {
        self.action_hook = Some(Box::new(hook));
    }

    /// Run `hook` for every event a host emits, e.g. to record latency samples.
    pub fn on_event(&mut self, hook: impl FnMut(&HookCtx<'_>, &H::Event, &mut Metrics) + 'static) {
        self.event_hook = Some(Box::new(hook));
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The trace so far.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The counts so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The host `name`, if it is alive.
    pub fn host(&self, name: &str) -> Option<&H> {
        self.hosts[*self.by_name.get(name)?].host.as_ref()
    }

    /// The address of the host `name`.
    pub fn addr_of(&self, name: &str) -> Option<SocketAddr> {
        self.directory.get(name).copied()
    }

    /// Names of the hosts that are alive, in the order they were added.
    pub fn live_hosts(&self) -> Vec<&str> {
        let live = self.hosts.iter().filter(|s| s.host.is_some());
        live.map(|s| s.name.as_str()).collect()
    }

    /// Every live host with its name, in the order they were added.
    pub fn hosts(&self) -> impl Iterator<Item = (&str, &H)> {
        let live = self.hosts.iter();
        live.filter_map(|s| Some((s.name.as_str(), s.host.as_ref()?)))
    }

    /// How many links are open (at either end).
    pub fn open_links(&self) -> usize {
        self.links.len()
    }

    /// Add and start a host attached to graph node `node` (by default, the next node
    /// round-robin). Returns its address. A name already in use restarts that host.
    pub fn add_host(&mut self, name: &str, role: &str, node: Option<&str>) -> SocketAddr {
        if let Some(&h) = self.by_name.get(name) {
            self.restart(h);
            return self.hosts[h].addr;
        }
        let node = node
            .and_then(|n| self.topology.node_index(n))
            .unwrap_or_else(|| {
                let n = self.next_node % self.topology.nodes.len().max(1);
                self.next_node += 1;
                n
            });
        let (up, down) = self
            .topology
            .nodes
            .get(node)
            .map_or((0, 0), |n| (n.up_bps, n.down_bps));
        let h = self.hosts.len();
        let addr = host_addr(h);
        self.hosts.push(HostSlot {
            name: name.to_string(),
            role: role.to_string(),
            addr,
            node,
            generation: 0,
            host: None,
            wake: None,
            up: Pipe::new(up),
            down: Pipe::new(down),
        });
        self.by_name.insert(name.to_string(), h);
        self.by_addr.insert(addr, h);
        self.directory.insert(name.to_string(), addr);
        self.start(h);
        addr
    }

    /// Schedule `action` at `at` (see [`Action`] for the built-in kinds).
    pub fn schedule(&mut self, at: Instant, action: Action) {
        self.queue.push(at.max(self.now), Ev::Action(action));
    }

    /// Start random joins and leaves.
    pub fn set_churn(&mut self, churn: Churn) {
        let start = Instant::from_millis(churn.start_ms).max(self.now);
        for (join, rate) in [(true, churn.join_per_s), (false, churn.leave_per_s)] {
            if rate > 0.0 {
                let at = start + exp_delay(&mut self.rng, rate);
                self.queue.push(at, Ev::Churn { join });
            }
        }
        self.churn = Some(churn);
    }

    /// Process every event up to and including `end`, then set the clock to `end`.
    pub fn run_until(&mut self, end: Instant) {
        while self.queue.peek_time().is_some_and(|t| t <= end) {
            let Some((t, ev)) = self.queue.pop() else {
                break;
            };
            self.now = self.now.max(t);
            self.handle(ev);
        }
        self.now = self.now.max(end);
    }

    /// Run for `d` more virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// End the run: flush the trace file and hand back what it produced.
    pub fn finish(mut self) -> Report {
        if let Err(e) = self.trace.flush() {
            tracing::warn!("trace file: {e}");
        }
        Report {
            trace_hash: self.trace.hash_hex(),
            lines: self.trace.lines().to_vec(),
            summary: self.summary,
            metrics: self.metrics,
            end: self.now,
            seed: match self.master {
                MasterSeed::Number(n) => n,
                MasterSeed::Bytes(_) => 0,
            },
            node_counters: BTreeMap::new(),
            routing_table: None,
        }
    }

    // ---- trace ----

    fn log(&mut self, host: Option<usize>, what: &str) {
        let name = host.map_or("-", |h| self.hosts[h].name.as_str());
        self.trace.record(self.now, name, what);
        let kind = what.split(' ').next().unwrap_or(what);
        self.summary.count_event(kind);
    }

    // ---- hosts ----

    fn start(&mut self, h: usize) {
        let slot = &self.hosts[h];
        let incarnation = slot.generation;
        let seed_name = if incarnation == 0 {
            slot.name.clone()
        } else {
            format!("{}#{incarnation}", slot.name)
        };
        let spec = HostSpec {
            name: &slot.name,
            seed: derive_seed(self.master, &seed_name),
            addr: slot.addr,
            role: &slot.role,
            incarnation,
            now: self.now,
        };
        let host = (self.factory)(&spec);
        self.hosts[h].host = Some(host);
        let what = format!("start {} role={}", self.hosts[h].addr, self.hosts[h].role);
        self.log(Some(h), &what);
        self.drain(h);
    }

    fn restart(&mut self, h: usize) {
        if self.hosts[h].host.is_some() {
            self.crash(h, "restart");
        }
        self.hosts[h].generation += 1;
        self.start(h);
    }

    /// Drop the host's state; its peers learn one latency later.
    fn crash(&mut self, h: usize, reason: &'static str) {
        if self.hosts[h].host.is_none() {
            return;
        }
        self.log(Some(h), reason);
        let mine: Vec<_> = self
            .link_ix
            .range((h, LinkId(0))..=(h, LinkId(u64::MAX)))
            .map(|(k, v)| (*k, *v))
            .collect();
        for (key, (id, e)) in mine {
            self.link_ix.remove(&key);
            let Some(link) = self.links.get_mut(&id) else {
                continue;
            };
            link.ends[e].open = false;
            let o = 1 - e;
            if link.ends[o].open {
                if link.ends[o].local.is_some() {
                    let at = self.now + link.path.latency;
                    self.queue.push(
                        at,
                        Ev::EndClosed {
                            link: id,
                            end: o,
                            reason,
                        },
                    );
                } else {
                    link.ends[o].open = false;
                }
            }
            self.forget_if_finished(id);
        }
        let slot = &mut self.hosts[h];
        slot.host = None;
        slot.generation += 1;
        slot.wake = None;
    }

    fn feed(&mut self, h: usize, input: HostInput<'_>) {
        let Some(host) = self.hosts[h].host.as_mut() else {
            return;
        };
        host.handle_input(input);
        self.drain(h);
    }

    /// Apply the host's outputs until it asks to be woken.
    fn drain(&mut self, h: usize) {
        loop {
            let Some(host) = self.hosts[h].host.as_mut() else {
                return;
            };
            match host.poll_output() {
                HostOutput::Transmit(l) => {
                    if let Some(&(id, e)) = self.link_ix.get(&(h, l)) {
                        if let Some(link) = self.links.get_mut(&id) {
                            link.dirs[e].pending = true;
                        }
                        self.pump(id, e);
                    }
                }
                HostOutput::Dial { link, addr } => self.dial(h, link, addr),
                HostOutput::CloseLink(l) => self.close_by_host(h, l),
                HostOutput::ReadMore(l) => {
                    if let Some(&(id, e)) = self.link_ix.get(&(h, l))
                        && self.pump(id, 1 - e)
                        && let Some(sender) = self.links.get(&id).map(|l| l.ends[1 - e].host)
                    {
                        self.drain(sender);
                    }
                }
                HostOutput::Event(ev) => {
                    self.log(Some(h), &format!("event {ev:?}"));
                    if let Some(hook) = &mut self.event_hook {
                        let ctx = HookCtx {
                            now: self.now,
                            host: &self.hosts[h].name,
                            directory: &self.directory,
                        };
                        hook(&ctx, &ev, &mut self.metrics);
                    }
                }
                HostOutput::Timeout(at) => {
                    let slot = &mut self.hosts[h];
                    if at == Instant::FAR_FUTURE {
                        slot.wake = None;
                    } else if slot.wake != Some(at) {
                        slot.wake = Some(at);
                        let generation = slot.generation;
                        let ev = Ev::Wake {
                            host: h,
                            generation,
                            at,
                        };
                        self.queue.push(at.max(self.now), ev);
                    }
                    return;
                }
            }
        }
    }

    // ---- links ----

    fn path(&mut self, a: usize, b: usize) -> Option<Path> {
        let (na, nb) = (self.hosts[a].node, self.hosts[b].node);
        let key = (na.min(nb), na.max(nb));
        if let Some(p) = self.paths.get(&key) {
            return *p;
        }
        let p = self.topology.path(key.0, key.1);
        self.paths.insert(key, p);
        p
    }

    fn blocked(&self, from: usize, to: usize) -> bool {
        self.partitions.iter().any(|p| {
            (p.a.contains(&from) && p.b.contains(&to))
                || (p.two_way && p.b.contains(&from) && p.a.contains(&to))
        })
    }

    fn crosses_partition(&self, link: &Link) -> bool {
        let (a, b) = (link.ends[0].host, link.ends[1].host);
        self.blocked(a, b) || self.blocked(b, a)
    }

    fn dial(&mut self, h: usize, local: LinkId, addr: SocketAddr) {
        let id = self.next_link;
        self.next_link += 1;
        let target = self
            .by_addr
            .get(&addr)
            .copied()
            .filter(|&t| self.hosts[t].host.is_some());
        let path = target.and_then(|t| self.path(h, t));
        let (remote, remote_gen) =
            target.map_or((usize::MAX, 0), |t| (t, self.hosts[t].generation));
        let end = |host, generation, local| End {
            host,
            generation,
            local,
            open: true,
        };
        let mut link = Link {
            ends: [
                end(h, self.hosts[h].generation, Some(local)),
                end(remote, remote_gen, None),
            ],
            up: false,
            dirs: [Direction::default(), Direction::default()],
            path: path.unwrap_or(Path::ZERO),
        };
        let peer = target.map_or_else(|| addr.to_string(), |t| self.hosts[t].name.clone());
        self.log(Some(h), &format!("dial {local} -> {peer}"));
        let fail = match (target, path) {
            (None, _) | (_, None) => Some("unreachable"),
            _ if self.crosses_partition(&link) => Some("partition"),
            _ => None,
        };
        let at = match fail {
            Some(reason) => {
                link.ends[1].open = false;
                let at = self.now + Duration::from_millis(self.config.dial_timeout_ms);
                self.queue.push(
                    at,
                    Ev::EndClosed {
                        link: id,
                        end: 0,
                        reason,
                    },
                );
                None
            }
            None => Some(self.now + link.path.latency),
        };
        if let Some(at) = at {
            self.queue.push(at, Ev::Accept { link: id });
        }
        self.links.insert(id, link);
        self.link_ix.insert((h, local), (id, 0));
    }

    fn accept(&mut self, id: u64) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        if !link.ends[0].open {
            return;
        }
        let (d, t) = (link.ends[0].host, link.ends[1].host);
        let alive =
            self.hosts[t].host.is_some() && self.hosts[t].generation == link.ends[1].generation;
        let refusal = if !alive {
            Some(("refused", link.path.latency))
        } else if self.crosses_partition(link) {
            Some((
                "partition",
                Duration::from_millis(self.config.dial_timeout_ms),
            ))
        } else {
            None
        };
        if let Some((reason, delay)) = refusal {
            if let Some(link) = self.links.get_mut(&id) {
                link.ends[1].open = false;
            }
            self.queue.push(
                self.now + delay,
                Ev::EndClosed {
                    link: id,
                    end: 0,
                    reason,
                },
            );
            return;
        }
        let remote = self.hosts[d].addr;
        let latency = link.path.latency;
        let Some(host) = self.hosts[t].host.as_mut() else {
            return;
        };
        let Some(local) = host.accept_link(self.now, remote) else {
            if let Some(link) = self.links.get_mut(&id) {
                link.ends[1].open = false;
            }
            let ev = Ev::EndClosed {
                link: id,
                end: 0,
                reason: "refused",
            };
            self.queue.push(self.now + latency, ev);
            self.drain(t);
            return;
        };
        if let Some(link) = self.links.get_mut(&id) {
            link.ends[1].local = Some(local);
        }
        self.link_ix.insert((t, local), (id, 1));
        let peer = self.hosts[d].name.clone();
        self.log(Some(t), &format!("accept {local} <- {peer}"));
        self.queue.push(self.now + latency, Ev::Up { link: id });
        self.drain(t);
    }

    fn link_up(&mut self, id: u64) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let (open, h, local) = (link.ends[0].open, link.ends[0].host, link.ends[0].local);
        let Some(local) = local.filter(|_| open) else {
            return;
        };
        link.up = true;
        let fail_rate = link.path.fail_rate;
        if fail_rate > 0.0 {
            let at = self.now + exp_delay(&mut self.rng, fail_rate);
            self.queue.push(at, Ev::PathFailure { link: id });
        }
        if self
            .links
            .get(&id)
            .is_some_and(|l| self.crosses_partition(l))
        {
            let at = self.now + Duration::from_millis(self.config.partition_close_ms);
            self.queue.push(at, Ev::PartitionCheck { link: id });
        }
        self.log(Some(h), &format!("up {local}"));
        self.feed(
            h,
            HostInput::LinkUp {
                now: self.now,
                link: local,
            },
        );
        self.pump(id, 0);
        self.drain(h);
    }

    /// Pull bytes from end `e`'s host while its window allows, and send them. Returns
    /// whether any were pulled (pulling may make the host queue outputs: drain it).
    fn pump(&mut self, id: u64, e: usize) -> bool {
        let (window, chunk) = (self.config.window_bytes, self.config.chunk_bytes.max(1));
        let mut pulled = false;
        loop {
            let Some(link) = self.links.get_mut(&id) else {
                return pulled;
            };
            let dir = &link.dirs[e];
            let receiver = &link.ends[1 - e];
            let held = match (receiver.local, self.hosts.get(receiver.host)) {
                (Some(l), Some(slot)) => slot.host.as_ref().map_or(0, |h| h.backlog(l)),
                _ => 0,
            };
            let used = dir.in_flight.saturating_add(held);
            if !link.writable(e) || !dir.pending || used >= window {
                return pulled;
            }
            let want = chunk.min(window - used);
            let (h, local) = (link.ends[e].host, link.ends[e].local);
            let (Some(local), Some(host)) = (local, self.hosts[h].host.as_mut()) else {
                return pulled;
            };
            let mut buf = vec![0u8; want];
            let n = host.poll_transmit(local, &mut buf).min(want);
            buf.truncate(n);
            if n < want {
                link.dirs[e].pending = false;
            }
            if n == 0 {
                return pulled;
            }
            pulled = true;
            self.send_chunk(id, e, buf);
        }
    }

    fn send_chunk(&mut self, id: u64, e: usize, data: Vec<u8>) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let (src, dst) = (link.ends[e].host, link.ends[1 - e].host);
        let n = data.len();
        let departed = self.hosts[src].up.reserve(self.now, n);
        let jitter_ns = u64::try_from(link.path.jitter.as_nanos()).unwrap_or(u64::MAX);
        let jitter = match jitter_ns {
            0 => 0,
            j => self.rng.next_u64() % j.saturating_add(1),
        };
        let arrived = departed + link.path.latency + Duration::from_nanos(jitter);
        let mut done = match self.hosts.get_mut(dst) {
            Some(slot) => slot.down.reserve(arrived, n),
            None => arrived,
        };
        let dir = &mut link.dirs[e];
        done = done.max(dir.last_arrival);
        dir.last_arrival = done;
        dir.in_flight += n;
        self.queue.push(
            done,
            Ev::Deliver {
                link: id,
                to: 1 - e,
                data,
            },
        );
    }

    fn arrive(&mut self, id: u64, to: usize, data: Vec<u8>) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        if !link.ends[to].open {
            return;
        }
        let from = 1 - to;
        let stalled = link.dirs[from].held
            || !link.dirs[from].buffer.is_empty()
            || self.blocked(link.ends[from].host, link.ends[to].host);
        if stalled {
            if let Some(link) = self.links.get_mut(&id) {
                link.dirs[from].buffer.push_back(data);
            }
            return;
        }
        self.deliver(id, to, &data);
    }

    fn deliver(&mut self, id: u64, to: usize, data: &[u8]) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let from = 1 - to;
        link.dirs[from].in_flight = link.dirs[from].in_flight.saturating_sub(data.len());
        let (h, local) = (link.ends[to].host, link.ends[to].local);
        let Some(local) = local.filter(|_| link.ends[to].open) else {
            return;
        };
        self.summary.bytes_delivered += data.len() as u64;
        self.log(Some(h), &format!("recv {local} {}B", data.len()));
        self.feed(
            h,
            HostInput::LinkData {
                now: self.now,
                link: local,
                data,
            },
        );
        // The sender's window opened: pull more, and act on what pulling made it say.
        if self.pump(id, from)
            && let Some(sender) = self.links.get(&id).map(|l| l.ends[from].host)
        {
            self.drain(sender);
        }
    }

    /// Deliver, in order, what a direction held, if nothing holds it any more.
    fn release(&mut self, id: u64, from: usize) {
        loop {
            let Some(link) = self.links.get(&id) else {
                return;
            };
            let to = 1 - from;
            if link.dirs[from].held || self.blocked(link.ends[from].host, link.ends[to].host) {
                return;
            }
            let Some(link) = self.links.get_mut(&id) else {
                return;
            };
            let Some(data) = link.dirs[from].buffer.pop_front() else {
                return;
            };
            if !link.ends[to].open {
                link.dirs[from].buffer.clear();
                return;
            }
            self.deliver(id, to, &data);
        }
    }

    /// Mark end `e` closed and tell its host (if it still has an id for the link).
    fn close_end(&mut self, id: u64, e: usize, reason: &str) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let end = link.ends[e];
        if !end.open {
            return;
        }
        link.ends[e].open = false;
        let failed = e == 0 && !link.up;
        if let Some(local) = end.local {
            self.link_ix.remove(&(end.host, local));
            let alive = self.hosts[end.host].host.is_some()
                && self.hosts[end.host].generation == end.generation;
            if alive {
                let what = if failed { "failed" } else { "closed" };
                self.log(Some(end.host), &format!("{what} {local} {reason}"));
                if failed {
                    *self
                        .summary
                        .dial_failures
                        .entry(reason.to_string())
                        .or_default() += 1;
                } else {
                    self.summary.count_close(reason);
                }
                let now = self.now;
                let input = if failed {
                    HostInput::LinkFailed { now, link: local }
                } else {
                    HostInput::LinkClosed {
                        now,
                        link: local,
                        error: reason != "remote",
                    }
                };
                self.feed(end.host, input);
            }
        }
        self.forget_if_finished(id);
    }

    fn abort(&mut self, id: u64, reason: &'static str) {
        self.close_end(id, 0, reason);
        self.close_end(id, 1, reason);
    }

    fn forget_if_finished(&mut self, id: u64) {
        if self.links.get(&id).is_some_and(Link::finished) {
            self.links.remove(&id);
        }
    }

    fn close_by_host(&mut self, h: usize, local: LinkId) {
        let Some((id, e)) = self.link_ix.remove(&(h, local)) else {
            return;
        };
        self.log(Some(h), &format!("close {local}"));
        self.summary.count_close("local");
        // Flush what the host still has queued, ignoring the window (close() lingers).
        if let Some(link) = self.links.get_mut(&id)
            && link.writable(e)
        {
            link.dirs[e].pending = true;
            let window = self.config.window_bytes;
            self.config.window_bytes = usize::MAX;
            self.pump(id, e);
            self.config.window_bytes = window;
        }
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.ends[e].open = false;
        let o = 1 - e;
        if link.ends[o].open {
            if link.ends[o].local.is_some() {
                let at = (self.now + link.path.latency).max(link.dirs[e].last_arrival);
                let ev = Ev::EndClosed {
                    link: id,
                    end: o,
                    reason: "remote",
                };
                self.queue.push(at, ev);
            } else {
                link.ends[o].open = false;
            }
        }
        self.forget_if_finished(id);
    }

    fn links_between(&self, a: usize, b: usize) -> Vec<u64> {
        let between = |l: &Link| {
            let (x, y) = (l.ends[0].host, l.ends[1].host);
            (x == a && y == b) || (x == b && y == a)
        };
        self.links
            .iter()
            .filter(|(_, l)| between(l))
            .map(|(id, _)| *id)
            .collect()
    }

    // ---- events and actions ----

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Wake {
                host,
                generation,
                at,
            } => {
                let slot = &mut self.hosts[host];
                if slot.generation == generation && slot.wake == Some(at) {
                    slot.wake = None;
                    self.log(Some(host), "timeout");
                    self.feed(host, HostInput::Timeout(self.now));
                }
            }
            Ev::Accept { link } => self.accept(link),
            Ev::Up { link } => self.link_up(link),
            Ev::Deliver { link, to, data } => self.arrive(link, to, data),
            Ev::EndClosed { link, end, reason } => self.close_end(link, end, reason),
            Ev::PartitionCheck { link } => {
                if self
                    .links
                    .get(&link)
                    .is_some_and(|l| self.crosses_partition(l))
                {
                    self.abort(link, "partition");
                }
            }
            Ev::PathFailure { link } => self.abort(link, "loss"),
            Ev::Action(action) => self.apply(&action),
            Ev::Churn { join } => self.churn_step(join),
        }
    }

    /// Host indices named by `sel`: exact names, or prefixes ending in `*`.
    fn select(&self, sel: &[String]) -> BTreeSet<usize> {
        let matches = |name: &str| {
            sel.iter().any(|s| match s.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => s == name,
            })
        };
        (0..self.hosts.len())
            .filter(|&h| matches(&self.hosts[h].name))
            .collect()
    }

    fn pair(&self, action: &Action) -> Option<(usize, usize)> {
        let a = *self.by_name.get(action.str("a")?)?;
        let b = *self.by_name.get(action.str("b")?)?;
        Some((a, b))
    }

    fn apply(&mut self, action: &Action) {
        let host = action
            .str("host")
            .and_then(|n| self.by_name.get(n).copied());
        match action.kind.as_str() {
            "crash" | "leave" => {
                if let Some(h) = host {
                    self.crash(
                        h,
                        if action.kind == "crash" {
                            "crash"
                        } else {
                            "leave"
                        },
                    );
                }
            }
            "restart" => {
                if let Some(h) = host {
                    self.restart(h);
                }
            }
            "join" => {
                let Some(name) = action.str("host").map(str::to_string) else {
                    return;
                };
                let role = action.str("role").unwrap_or("").to_string();
                self.add_host(&name, &role, action.str("node"));
            }
            "close_link" => {
                let Some((a, b)) = self.pair(action) else {
                    return;
                };
                self.log(
                    None,
                    &format!("close_link {} {}", self.hosts[a].name, self.hosts[b].name),
                );
                for id in self.links_between(a, b) {
                    self.abort(id, "fault");
                }
            }
            "hold" | "release" => {
                let Some((a, b)) = self.pair(action) else {
                    return;
                };
                let hold = action.kind == "hold";
                let what = format!(
                    "{} {} {}",
                    action.kind, self.hosts[a].name, self.hosts[b].name
                );
                self.log(None, &what);
                for id in self.links_between(a, b) {
                    if let Some(link) = self.links.get_mut(&id) {
                        link.dirs[0].held = hold;
                        link.dirs[1].held = hold;
                    }
                    self.release(id, 0);
                    self.release(id, 1);
                }
            }
            "partition" => {
                let a = self.select(&action.strs("a"));
                let b = self.select(&action.strs("b"));
                let two_way = !action.bool("oneway").unwrap_or(false);
                let what = format!(
                    "partition {:?} {} {:?}",
                    action.strs("a"),
                    if two_way { "<->" } else { "->" },
                    action.strs("b")
                );
                self.log(None, &what);
                self.partitions.push(Partition { a, b, two_way });
                let at = self.now + Duration::from_millis(self.config.partition_close_ms);
                let crossing: Vec<u64> = self
                    .links
                    .iter()
                    .filter(|(_, l)| l.up && self.crosses_partition(l))
                    .map(|(id, _)| *id)
                    .collect();
                for link in crossing {
                    self.queue.push(at, Ev::PartitionCheck { link });
                }
            }
            "heal" => {
                self.log(None, "heal");
                self.partitions.clear();
                let ids: Vec<u64> = self.links.keys().copied().collect();
                for id in ids {
                    self.release(id, 0);
                    self.release(id, 1);
                }
            }
            _ => self.apply_to_hosts(host, action),
        }
    }

    /// An action the world does not know: hand it to the hook, for `host` or every host.
    fn apply_to_hosts(&mut self, host: Option<usize>, action: &Action) {
        let role = action.str("role");
        let targets: Vec<usize> = match (host, action.str("host")) {
            (Some(h), _) => vec![h],
            (None, Some(_)) => return,
            (None, None) => (0..self.hosts.len())
                .filter(|&h| role.is_none_or(|r| self.hosts[h].role == r))
                .collect(),
        };
        for h in targets {
            let Some(hook) = &mut self.action_hook else {
                return;
            };
            let slot = &mut self.hosts[h];
            let Some(state) = slot.host.as_mut() else {
                continue;
            };
            let ctx = HookCtx {
                now: self.now,
                host: &slot.name,
                directory: &self.directory,
            };
            hook(state, &ctx, action);
            self.log(Some(h), &format!("action {}", action.kind));
            self.drain(h);
        }
    }

    fn churn_step(&mut self, join: bool) {
        let Some(churn) = self.churn.clone() else {
            return;
        };
        if churn
            .end_ms
            .is_some_and(|end| self.now > Instant::from_millis(end))
        {
            return;
        }
        if join {
            let name = format!("{}{}", churn.prefix, self.churn_joined);
            self.churn_joined += 1;
            self.add_host(&name, &churn.role, None);
        } else {
            let candidates: Vec<usize> = (0..self.hosts.len())
                .filter(|&h| self.hosts[h].host.is_some() && self.hosts[h].role == churn.role)
                .collect();
            if !candidates.is_empty() {
                let pick = (self.rng.next_u64() % candidates.len() as u64) as usize;
                self.crash(candidates[pick], "leave");
            }
        }
        let rate = if join {
            churn.join_per_s
        } else {
            churn.leave_per_s
        };
        let at = self.now + exp_delay(&mut self.rng, rate);
        self.queue.push(at, Ev::Churn { join });
    }
}
