//! The application on top of a simulated node: it builds circuits along random paths and
//! moves bytes over streams to services, as scenario actions ask, and reports what it
//! measured as [`AppEvent`]s.
//!
//! Actions (sent to one `host`, or to every host of `role`, default `client`):
//! - `build_circuit`: `hops` (default 3) random distinct relays, or the relays named in
//!   `path` (a list of host names); the circuit is closed
//!   `hold_ms` (default 0) after it is built.
//! - `stream`: a circuit of `hops` ending at a random exit (or the hosts named in
//!   `path`, as for `build_circuit`), then a stream to the service
//!   host `service` moving `bytes` (default 10000): to an `echo`, written and read back;
//!   to a `sink`, written; from a `source`, requested and read. Every byte read is checked
//!   against the pattern. The stream and circuit are closed when done.
//!
//! Either repeats every `every_ms` (the first one at a random offset within the period,
//! so hosts do not act in lockstep), `count` times (default: once without `every_ms`,
//! forever with it).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use onionpeer_core::cells::relay::EndReason;
use onionpeer_core::node::Node;
use onionpeer_core::node::api::{
    CircuitHandle, Command, CommandError, Event, FirstHop, RelayTarget, StreamHandle, StreamTarget,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::dht::{DhtApp, DhtJob, spread};
use crate::host::{HostOutput, Instant};
use crate::node::{HostRole, SharedDirectory, SimEvent, end_reason_name, pattern_byte};
use crate::scenario::Action;
use crate::seed::derive_seed;
use crate::swarm::{SwarmApp, SwarmEvent, SwarmJob};

/// Something the workload measured or ran into.
#[derive(Debug, Clone, PartialEq)]
pub enum AppEvent {
    /// A circuit was built after `ms` milliseconds.
    Built {
        /// The circuit.
        circuit: u64,
        /// Build time.
        ms: f64,
    },
    /// A circuit closed before it was built.
    BuildFailed {
        /// The DESTROY reason.
        reason: String,
    },
    /// A built circuit closed while we were still using it.
    CircuitLost {
        /// The DESTROY reason.
        reason: String,
    },
    /// A stream moved all its bytes intact.
    StreamDone {
        /// The stream.
        stream: u64,
        /// Bytes moved (each way for an echo).
        bytes: u64,
        /// From asking for the circuit to the first byte read (0 for a sink).
        ttfb_ms: f64,
        /// From asking for the circuit to done.
        ms: f64,
    },
    /// A stream closed before it was done.
    StreamFailed {
        /// The END reason.
        reason: String,
        /// Bytes read before it closed.
        read: u64,
    },
    /// A stream delivered a byte that differs from what was sent.
    Corrupt {
        /// The stream.
        stream: u64,
        /// Offset of the first wrong byte.
        offset: u64,
    },
    /// Not enough relays (or no exit) in the directory for a path.
    NoPath,
    /// The node refused a command.
    Refused(String),
    /// A DHT bootstrap ended with `ordb` ORDB circuits after `ms` milliseconds.
    Bootstrapped {
        /// From the first `bootstrap` to the ORDB circuits.
        ms: f64,
        /// ORDB circuits up.
        ordb: usize,
    },
    /// A DHT lookup ended.
    Lookup {
        /// `bootstrap`, `find_node`, `store` or `find_value`.
        kind: &'static str,
        /// Whether it found what the global knowledge says it should (`None`: not judged).
        ok: Option<bool>,
        /// Its hops.
        hops: u32,
        /// How long it took.
        ms: f64,
        /// Its result set is all colluders.
        captured: bool,
        /// Its result set misses the closest honest member (FIND_NODE; `None`: not
        /// judged).
        missed_honest: Option<bool>,
        /// The asker is a `victim` (bootstrapped through a colluding bridge).
        victim: bool,
    },
    /// A content-distribution event (see [`crate::swarm`]).
    Swarm(SwarmEvent),
}

#[derive(Debug, Clone, PartialEq)]
enum Job {
    Circuit {
        hops: usize,
        path: Vec<String>,
        hold: Duration,
    },
    Stream {
        hops: usize,
        path: Vec<String>,
        service: String,
        bytes: u64,
    },
    Dht(DhtJob),
    Swarm(SwarmJob),
}

#[derive(Debug)]
struct Task {
    job: Job,
    every: Option<Duration>,
    left: Option<u64>,
    next: Instant,
}

#[derive(Debug)]
struct CircJob {
    job: Job,
    started: Instant,
    built: bool,
    closing: bool,
}

#[derive(Debug)]
struct StreamJob {
    circuit: CircuitHandle,
    service: HostRole,
    bytes: u64,
    started: Instant,
    first_byte: Option<Instant>,
    written: u64,
    read: u64,
}

/// What one node's application is doing.
#[derive(Debug)]
pub struct Workload {
    name: String,
    rng: ChaCha20Rng,
    tasks: Vec<Task>,
    circuits: BTreeMap<CircuitHandle, CircJob>,
    streams: BTreeMap<StreamHandle, StreamJob>,
    closes: BTreeSet<(Instant, CircuitHandle)>,
    dht: DhtApp,
    swarm: SwarmApp,
    /// Streams finished intact.
    pub streams_done: u64,
}

type Out = VecDeque<HostOutput<SimEvent>>;

fn emit(out: &mut Out, e: AppEvent) {
    out.push_back(HostOutput::Event(SimEvent::App(e)));
}

fn ms_between(a: Instant, b: Instant) -> f64 {
    (b - a).as_nanos() as f64 / 1e6
}

impl Workload {
    /// An idle workload for the host `name` with the host's `seed`.
    pub fn new(seed: [u8; 32], name: &str) -> Workload {
        Workload {
            name: name.to_string(),
            rng: ChaCha20Rng::from_seed(derive_seed(seed, "workload")),
            tasks: Vec::new(),
            circuits: BTreeMap::new(),
            streams: BTreeMap::new(),
            closes: BTreeSet::new(),
            dht: DhtApp::default(),
            swarm: SwarmApp::default(),
            streams_done: 0,
        }
    }

    /// Streams in progress.
    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }

    /// Add the task an action describes (other actions are ignored); when it first runs.
    pub fn add_task(&mut self, now: Instant, action: &Action) -> Option<Instant> {
        let hops = action.u64("hops").unwrap_or(3) as usize;
        let path = action.strs("path");
        let job = match action.kind.as_str() {
            "build_circuit" => Job::Circuit {
                hops,
                path,
                hold: Duration::from_millis(action.u64("hold_ms").unwrap_or(0)),
            },
            "stream" => Job::Stream {
                hops,
                path,
                service: action.str("service").unwrap_or("echo0").to_string(),
                bytes: action.u64("bytes").unwrap_or(10_000),
            },
            kind => match DhtJob::from_action(kind, action.str("via"), action.str("target")) {
                Some(j) => Job::Dht(j),
                None => match SwarmJob::from_action(
                    kind,
                    action.u64("bytes"),
                    action.bool("resume").unwrap_or(false),
                ) {
                    Some(j) => Job::Swarm(j),
                    None => return None,
                },
            },
        };
        let every = action.u64("every_ms").map(Duration::from_millis);
        let left = action
            .u64("count")
            .or(if every.is_some() { None } else { Some(1) });
        let offset = match every {
            Some(p) if p > Duration::ZERO => {
                let ns = u64::try_from(p.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(self.rng.next_u64() % ns)
            }
            _ => Duration::ZERO,
        };
        let offset = offset + spread(&mut self.rng, action.u64("spread_ms").unwrap_or(0));
        self.tasks.push(Task {
            job,
            every,
            left,
            next: now + offset,
        });
        Some(now + offset)
    }

    /// When the workload next has something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        let tasks = self.tasks.iter().filter(|t| t.left != Some(0));
        let next = tasks.map(|t| t.next).min();
        let close = self.closes.first().map(|&(t, _)| t);
        match (next, close) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Run what is due.
    pub fn on_timeout(
        &mut self,
        now: Instant,
        node: &mut Node,
        dir: &SharedDirectory,
        out: &mut Out,
    ) {
        while let Some(&(at, h)) = self.closes.first() {
            if at > now {
                break;
            }
            self.closes.pop_first();
            self.close_circuit(now, h, node);
        }
        for i in 0..self.tasks.len() {
            while self.tasks[i].left != Some(0) && self.tasks[i].next <= now {
                let t = &mut self.tasks[i];
                if let Some(n) = &mut t.left {
                    *n -= 1;
                }
                match t.every {
                    Some(p) if p > Duration::ZERO => t.next = t.next + p,
                    _ => t.left = Some(0),
                }
                let job = t.job.clone();
                self.start(now, job, node, dir, out);
            }
        }
        self.tasks.retain(|t| t.left != Some(0));
    }

    fn start(
        &mut self,
        now: Instant,
        job: Job,
        node: &mut Node,
        dir: &SharedDirectory,
        out: &mut Out,
    ) {
        let (hops, names, exit) = match &job {
            Job::Circuit { hops, path, .. } => (*hops, path, false),
            Job::Stream { hops, path, .. } => (*hops, path, true),
            Job::Dht(j) => {
                let mut e = |ev| emit(out, ev);
                self.dht
                    .start(now, j, &self.name, &mut self.rng, node, dir, &mut e);
                return;
            }
            Job::Swarm(j) => {
                let mut e = |ev| emit(out, ev);
                if let Some(wait) = self.swarm.start(now, j, &self.name, node, dir, &mut e) {
                    self.tasks.push(Task {
                        job: job.clone(),
                        every: None,
                        left: Some(1),
                        next: now + wait,
                    });
                }
                return;
            }
        };
        let path = if names.is_empty() {
            self.choose_path(dir, hops, exit)
        } else {
            let dir = dir.borrow();
            let hop = |n: &String| dir.hosts.get(n)?.target.clone();
            names.iter().map(hop).collect()
        };
        let Some(path) = path else {
            emit(out, AppEvent::NoPath);
            return;
        };
        match node.build_circuit(now, path, FirstHop::Ntor) {
            Ok(h) => {
                let c = CircJob {
                    job,
                    started: now,
                    built: false,
                    closing: false,
                };
                self.circuits.insert(h, c);
            }
            Err(e) => emit(out, AppEvent::Refused(format!("{e:?}"))),
        }
    }

    /// `hops` distinct relays other than us, the last an exit if `exit`.
    fn choose_path(
        &mut self,
        dir: &SharedDirectory,
        hops: usize,
        exit: bool,
    ) -> Option<Vec<RelayTarget>> {
        let dir = dir.borrow();
        let mut relays: Vec<(HostRole, &RelayTarget)> = dir
            .hosts
            .iter()
            .filter(|(name, _)| **name != self.name)
            .filter_map(|(_, e)| Some((e.role, e.target.as_ref()?)))
            .collect();
        if hops == 0 || relays.len() < hops {
            return None;
        }
        let mut path = Vec::with_capacity(hops);
        let mut last = None;
        if exit {
            let exits: Vec<usize> = (0..relays.len())
                .filter(|&i| relays[i].0 == HostRole::Exit)
                .collect();
            if exits.is_empty() {
                return None;
            }
            let pick = exits[(self.rng.next_u64() % exits.len() as u64) as usize];
            last = Some(relays.swap_remove(pick).1.clone());
        }
        let want = hops - usize::from(exit);
        for i in 0..want {
            let j = i + (self.rng.next_u64() % (relays.len() - i) as u64) as usize;
            relays.swap(i, j);
            path.push(relays[i].1.clone());
        }
        path.extend(last);
        Some(path)
    }

    fn close_circuit(&mut self, now: Instant, h: CircuitHandle, node: &mut Node) {
        if let Some(c) = self.circuits.get_mut(&h)
            && !c.closing
        {
            c.closing = true;
            if node.command(now, Command::CloseCircuit(h)).is_err() {
                // Already gone (no CircuitClosed will come).
                self.circuits.remove(&h);
            }
        }
    }

    /// React to a node event.
    pub fn on_event(
        &mut self,
        now: Instant,
        event: &Event,
        node: &mut Node,
        dir: &SharedDirectory,
        out: &mut Out,
    ) {
        match *event {
            Event::CircuitBuilt(h) => self.on_built(now, h, node, dir, out),
            Event::CircuitClosed { circuit, reason } => {
                if let Some(c) = self.circuits.remove(&circuit)
                    && !c.closing
                {
                    let reason = reason.to_string();
                    emit(
                        out,
                        if c.built {
                            AppEvent::CircuitLost { reason }
                        } else {
                            AppEvent::BuildFailed { reason }
                        },
                    );
                }
            }
            Event::StreamOpened { stream, .. } => {
                let Some(s) = self.streams.get_mut(&stream) else {
                    return;
                };
                if s.service == HostRole::Source {
                    let _ = node.write_stream(now, stream, &s.bytes.to_be_bytes());
                } else {
                    self.write_more(now, stream, node, out);
                }
            }
            Event::StreamWritable(s) => self.write_more(now, s, node, out),
            Event::StreamReadable(s) => self.read_all(now, s, node, out),
            Event::StreamClosed { stream, reason } => {
                let Some(s) = self.streams.get(&stream) else {
                    return;
                };
                // A source's stream is done when the exit passes on its orderly close
                // (closing on the last byte would race the exit's END).
                if s.service == HostRole::Source && s.read == s.bytes && reason == EndReason::DONE {
                    self.finish(now, stream, node, out);
                } else if let Some(s) = self.streams.remove(&stream) {
                    let read = s.read;
                    emit(
                        out,
                        AppEvent::StreamFailed {
                            reason: end_reason_name(reason),
                            read,
                        },
                    );
                    // Close the circuit a moment later: when the stream ended because the
                    // circuit is going, its CircuitClosed (with the reason) comes first.
                    self.closes.insert((now, s.circuit));
                }
            }
            Event::DhtLookupDone { .. } | Event::OrdbCircuitsReady(_) => {
                let mut e = |ev| emit(out, ev);
                self.dht.on_event(now, event, &self.name, node, dir, &mut e);
            }
            Event::ContentInfo { .. } | Event::ContentReadable(_) | Event::ContentDone { .. } => {
                let mut e = |ev| emit(out, ev);
                self.swarm
                    .on_event(now, event, &self.name, node, dir, &mut e);
            }
            Event::LinkUp { .. }
            | Event::LinkDown { .. }
            | Event::ClockSkew { .. }
            | Event::PeerFound(_)
            | Event::OrdbAnswered { .. }
            | Event::ContentProgress { .. }
            | Event::SignalReceived { .. } => {}
        }
    }

    fn on_built(
        &mut self,
        now: Instant,
        h: CircuitHandle,
        node: &mut Node,
        dir: &SharedDirectory,
        out: &mut Out,
    ) {
        let Some(c) = self.circuits.get_mut(&h) else {
            return;
        };
        c.built = true;
        let ms = ms_between(c.started, now);
        emit(out, AppEvent::Built { circuit: h.0, ms });
        match c.job.clone() {
            Job::Circuit { hold, .. } => {
                if hold.is_zero() {
                    self.close_circuit(now, h, node);
                } else {
                    self.closes.insert((now + hold, h));
                }
            }
            Job::Dht(_) | Job::Swarm(_) => {}
            Job::Stream { service, bytes, .. } => {
                let started = c.started;
                let role = dir
                    .borrow()
                    .hosts
                    .get(&service)
                    .map_or(HostRole::Echo, |e| e.role);
                let target = StreamTarget::Tcp {
                    host: service,
                    port: 80,
                };
                match node.open_stream(now, h, target) {
                    Ok(s) => {
                        let job = StreamJob {
                            circuit: h,
                            service: role,
                            bytes,
                            started,
                            first_byte: None,
                            written: 0,
                            read: 0,
                        };
                        self.streams.insert(s, job);
                    }
                    Err(e) => {
                        emit(out, AppEvent::Refused(refusal(e)));
                        self.close_circuit(now, h, node);
                    }
                }
            }
        }
    }

    fn write_more(&mut self, now: Instant, h: StreamHandle, node: &mut Node, out: &mut Out) {
        let Some(s) = self.streams.get_mut(&h) else {
            return;
        };
        if s.service == HostRole::Source {
            return;
        }
        loop {
            let n = (s.bytes - s.written).min(node.stream_capacity(h) as u64);
            if n == 0 {
                break;
            }
            let buf: Vec<u8> = (s.written..s.written + n).map(pattern_byte).collect();
            match node.write_stream(now, h, &buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => s.written += k as u64,
            }
        }
        if s.service == HostRole::Sink && s.written == s.bytes {
            self.finish(now, h, node, out);
        }
    }

    fn read_all(&mut self, now: Instant, h: StreamHandle, node: &mut Node, out: &mut Out) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Ok(n) = node.read_stream(now, h, &mut buf) else {
                return;
            };
            if n == 0 {
                return;
            }
            let Some(s) = self.streams.get_mut(&h) else {
                return;
            };
            s.first_byte.get_or_insert(now);
            if let Some(i) = (0..n).find(|&i| buf[i] != pattern_byte(s.read + i as u64)) {
                let offset = s.read + i as u64;
                emit(
                    out,
                    AppEvent::Corrupt {
                        stream: h.0,
                        offset,
                    },
                );
                let c = s.circuit;
                self.streams.remove(&h);
                let _ = node.command(now, Command::CloseStream(h));
                self.close_circuit(now, c, node);
                return;
            }
            s.read += n as u64;
            if s.service == HostRole::Echo && s.read >= s.bytes {
                self.finish(now, h, node, out);
            }
        }
    }

    fn finish(&mut self, now: Instant, h: StreamHandle, node: &mut Node, out: &mut Out) {
        let Some(s) = self.streams.get_mut(&h) else {
            return;
        };
        self.streams_done += 1;
        let ttfb_ms = s.first_byte.map_or(0.0, |t| ms_between(s.started, t));
        emit(
            out,
            AppEvent::StreamDone {
                stream: h.0,
                bytes: s.bytes,
                ttfb_ms,
                ms: ms_between(s.started, now),
            },
        );
        let c = s.circuit;
        self.streams.remove(&h);
        let _ = node.command(now, Command::CloseStream(h));
        self.close_circuit(now, c, node);
    }
}

fn refusal(e: CommandError) -> String {
    format!("{e:?}")
}
