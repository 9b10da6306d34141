//! The tape: every call made into a [`Node`] and what it returned, as text, one call a
//! line. Because a node is a pure function of its config (seed included) and its inputs,
//! replaying a tape's inputs into a fresh node with the same config must reproduce every
//! recorded result byte for byte; [`replay`] checks exactly that.
//!
//! ```text
//! accept 1000000 10.0.0.1:9001 <local digest> <remote digest> = Ok(ConnId(1))
//! data 11000000 1 <hex bytes>
//! output = Transmit(ConnId(1))
//! transmit 1 65536 = <hex bytes>
//! build 0 ntor <addr>,<id>,<ntor key>,<ed id|-> ... = Ok(Circuit(CircuitHandle(3)))
//! ```

use std::net::SocketAddr;

use onionpeer_core::Instant;
use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::node::Node;
use onionpeer_core::node::api::{
    CircuitHandle, Command, CommandError, CommandOk, ConnId, FirstHop, Input, LinkBinding, Output,
    RelayTarget, StreamHandle, StreamTarget,
};
use onionpeer_core::node::config::NodeConfig;

/// One recorded call, as a line of text.
pub type Call = String;

/// The calls made into one node, in order.
#[derive(Debug, Clone, Default)]
pub struct Tape {
    /// One line per call.
    pub lines: Vec<Call>,
}

impl Tape {
    /// The tape as text, one call a line.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// The tape with byte strings shortened to their length and a digest prefix, for
    /// snapshots a reviewer can read.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            let words: Vec<String> = l
                .split(' ')
                .map(|w| {
                    if w.len() > 24 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
                        let d = <sha2::Sha256 as sha2::Digest>::digest(w.as_bytes());
                        format!("<{}B:{}>", w.len() / 2, hex::encode(&d[..4]))
                    } else {
                        w.to_string()
                    }
                })
                .collect();
            s.push_str(&words.join(" "));
            s.push('\n');
        }
        s
    }
}

/// A [`Node`] that records every call on a [`Tape`].
pub struct TapedNode {
    node: Node,
    /// What was called so far (when `recording`).
    pub tape: Tape,
    /// Whether calls are recorded; off by default, since a tape holds every byte.
    pub recording: bool,
}

impl TapedNode {
    /// Wrap a freshly created node.
    pub fn new(node: Node) -> TapedNode {
        TapedNode {
            node,
            tape: Tape::default(),
            recording: false,
        }
    }

    /// See [`Node::read_content`] (not recorded: a download's reads are for tests that
    /// do not replay).
    pub fn read_content(
        &mut self,
        h: onionpeer_core::node::api::DownloadHandle,
        buf: &mut [u8],
    ) -> Option<(u64, usize)> {
        self.node.read_content(h, buf)
    }

    /// The node, for getters.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// See [`Node::set_chunk_store`] (not recorded: tests that give a node a prepared
    /// store do not replay).
    pub fn set_chunk_store(&mut self, store: Box<dyn onionpeer_core::ordb::ChunkStore + Send>) {
        self.node.set_chunk_store(store)
    }

    /// See [`Node::take_query_replies`] (a test hook; not recorded: it only drains the
    /// node's buffer of answers).
    pub fn take_query_replies(
        &mut self,
    ) -> Vec<(
        onionpeer_core::node::api::QueryId,
        onionpeer_core::cells::relay::RelayMsg,
    )> {
        self.node.take_query_replies()
    }

    fn rec(&mut self, line: impl FnOnce() -> String) {
        if self.recording {
            self.tape.lines.push(line());
        }
    }

    /// See [`Node::accept_link`].
    pub fn accept_link(
        &mut self,
        now: Instant,
        remote: Option<SocketAddr>,
        binding: LinkBinding,
    ) -> Result<ConnId, CommandError> {
        let r = self.node.accept_link(now, remote, binding);
        let remote_s = remote.map_or("-".to_string(), |a| a.to_string());
        self.rec(|| {
            format!(
                "accept {} {remote_s} {} {} = {r:?}",
                now.as_nanos(),
                hex::encode(binding.local),
                hex::encode(binding.remote)
            )
        });
        r
    }

    /// See [`Node::handle_input`].
    pub fn handle_input(&mut self, input: Input<'_>) {
        let line = self.recording.then(|| input_line(&input));
        self.node.handle_input(input);
        if let Some(line) = line {
            self.tape.lines.push(line);
        }
    }

    /// See [`Node::command`].
    pub fn command(&mut self, now: Instant, cmd: Command) -> Result<CommandOk, CommandError> {
        let line = self.recording.then(|| command_line(now, &cmd));
        let r = self.node.command(now, cmd);
        if let Some(line) = line {
            self.tape.lines.push(format!("{line} = {r:?}"));
        }
        r
    }

    /// Build a circuit; see [`Command::BuildCircuit`].
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

    /// Open a stream; see [`Command::OpenStream`].
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

    /// See [`Node::write_stream`].
    pub fn write_stream(
        &mut self,
        now: Instant,
        s: StreamHandle,
        data: &[u8],
    ) -> Result<usize, CommandError> {
        let r = self.node.write_stream(now, s, data);
        // The node's behaviour depends only on the bytes it took and on whether more
        // were offered, so one byte past what it took is enough to replay the call.
        let shown = &data[..data.len().min(r.as_ref().map_or(0, |n| n + 1))];
        self.rec(|| {
            format!(
                "write {} {} {} = {r:?}",
                now.as_nanos(),
                s.0,
                hex::encode(shown)
            )
        });
        r
    }

    /// See [`Node::read_stream`].
    pub fn read_stream(
        &mut self,
        now: Instant,
        s: StreamHandle,
        buf: &mut [u8],
    ) -> Result<usize, CommandError> {
        let r = self.node.read_stream(now, s, buf);
        let len = buf.len();
        self.rec(|| {
            let shown = match &r {
                Ok(n) => hex::encode(&buf[..*n]),
                Err(e) => format!("{e:?}"),
            };
            format!("read {} {} {len} = {shown}", now.as_nanos(), s.0)
        });
        r
    }

    /// See [`Node::poll_transmit`].
    pub fn poll_transmit(&mut self, conn: ConnId, buf: &mut [u8]) -> usize {
        let n = self.node.poll_transmit(conn, buf);
        if n > 0 {
            self.rec(|| {
                format!(
                    "transmit {} {} = {}",
                    conn.0,
                    buf.len(),
                    hex::encode(&buf[..n])
                )
            });
        }
        n
    }

    /// See [`Node::poll_output`].
    pub fn poll_output(&mut self) -> Output {
        let o = self.node.poll_output();
        self.rec(|| format!("output = {o:?}"));
        o
    }
}

fn input_line(input: &Input<'_>) -> String {
    match input {
        Input::Timeout(now) => format!("timeout {}", now.as_nanos()),
        Input::Connected { now, conn, binding } => format!(
            "connected {} {} {} {}",
            now.as_nanos(),
            conn.0,
            hex::encode(binding.local),
            hex::encode(binding.remote)
        ),
        Input::Data { now, conn, data } => {
            format!("data {} {} {}", now.as_nanos(), conn.0, hex::encode(data))
        }
        Input::Closed { now, conn, error } => {
            format!("closed {} {} {}", now.as_nanos(), conn.0, u8::from(*error))
        }
    }
}

fn command_line(now: Instant, cmd: &Command) -> String {
    let t = now.as_nanos();
    match cmd {
        Command::BuildCircuit { path, first_hop } => {
            let hops: Vec<String> = path
                .iter()
                .map(|h| {
                    format!(
                        "{},{},{},{}",
                        h.addr,
                        hex::encode(h.id.0),
                        hex::encode(h.ntor_key),
                        h.ed_id.map_or("-".to_string(), hex::encode)
                    )
                })
                .collect();
            let fh = match first_hop {
                FirstHop::Fast => "fast",
                FirstHop::Ntor => "ntor",
            };
            format!("build {t} {fh} {}", hops.join(" "))
        }
        Command::CloseCircuit(c) => format!("closecirc {t} {}", c.0),
        Command::OpenStream { circuit, target } => match target {
            StreamTarget::Tcp { host, port } => format!("open {t} {} tcp {host} {port}", circuit.0),
            StreamTarget::Directory => format!("open {t} {} dir", circuit.0),
        },
        Command::CloseStream(s) => format!("closestream {t} {}", s.0),
        // DHT commands are recorded for reading, not replayed.
        other => format!("dht {t} {other:?}"),
    }
}

/// Where a replay first disagreed with the tape.
#[derive(Debug, PartialEq, Eq)]
pub struct Divergence {
    /// 1-based line of the tape.
    pub line: usize,
    /// What the tape recorded.
    pub expected: String,
    /// What the fresh node returned.
    pub got: String,
}

/// Replay `text` (a tape) into a fresh node made from `config` at `start`, checking every
/// recorded result. Returns the number of calls replayed.
pub fn replay(text: &str, config: NodeConfig, start: Instant) -> Result<usize, Divergence> {
    let mut node = Node::new(config, start).expect("node keys");
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let (call, expected) = match line.split_once(" = ") {
            Some((c, e)) => (c, Some(e)),
            None => (line, None),
        };
        let w: Vec<&str> = call.split(' ').collect();
        let ns = |k: usize| Instant::from_nanos(w[k].parse().expect("time"));
        let conn = |k: usize| ConnId(w[k].parse().expect("conn"));
        let got: Option<String> = match w[0] {
            "accept" => {
                let remote = (w[2] != "-").then(|| w[2].parse().expect("addr"));
                let binding = LinkBinding {
                    local: arr(w[3]),
                    remote: arr(w[4]),
                };
                Some(format!("{:?}", node.accept_link(ns(1), remote, binding)))
            }
            "timeout" => {
                node.handle_input(Input::Timeout(ns(1)));
                None
            }
            "connected" => {
                let binding = LinkBinding {
                    local: arr(w[3]),
                    remote: arr(w[4]),
                };
                node.handle_input(Input::Connected {
                    now: ns(1),
                    conn: conn(2),
                    binding,
                });
                None
            }
            "data" => {
                let data = hex::decode(w[3]).expect("hex");
                node.handle_input(Input::Data {
                    now: ns(1),
                    conn: conn(2),
                    data: &data,
                });
                None
            }
            "closed" => {
                node.handle_input(Input::Closed {
                    now: ns(1),
                    conn: conn(2),
                    error: w[3] == "1",
                });
                None
            }
            "build" => {
                let first_hop = if w[2] == "fast" {
                    FirstHop::Fast
                } else {
                    FirstHop::Ntor
                };
                let path = w[3..].iter().map(|h| parse_hop(h)).collect();
                Some(format!(
                    "{:?}",
                    node.command(ns(1), Command::BuildCircuit { path, first_hop })
                ))
            }
            "closecirc" => Some(format!(
                "{:?}",
                node.command(
                    ns(1),
                    Command::CloseCircuit(CircuitHandle(w[2].parse().expect("circ")))
                )
            )),
            "open" => {
                let circuit = CircuitHandle(w[2].parse().expect("circ"));
                let target = if w[3] == "dir" {
                    StreamTarget::Directory
                } else {
                    StreamTarget::Tcp {
                        host: w[4].to_string(),
                        port: w[5].parse().expect("port"),
                    }
                };
                Some(format!(
                    "{:?}",
                    node.command(ns(1), Command::OpenStream { circuit, target })
                ))
            }
            "closestream" => Some(format!(
                "{:?}",
                node.command(
                    ns(1),
                    Command::CloseStream(StreamHandle(w[2].parse().expect("s")))
                )
            )),
            "write" => {
                let data = hex::decode(w[3]).expect("hex");
                Some(format!(
                    "{:?}",
                    node.write_stream(ns(1), StreamHandle(w[2].parse().expect("s")), &data)
                ))
            }
            "read" => {
                let mut buf = vec![0u8; w[3].parse().expect("len")];
                let r = node.read_stream(ns(1), StreamHandle(w[2].parse().expect("s")), &mut buf);
                Some(match r {
                    Ok(k) => hex::encode(&buf[..k]),
                    Err(e) => format!("{e:?}"),
                })
            }
            "transmit" => {
                let mut buf = vec![0u8; w[2].parse().expect("len")];
                let k = node.poll_transmit(conn(1), &mut buf);
                Some(hex::encode(&buf[..k]))
            }
            "output" => Some(format!("{:?}", node.poll_output())),
            other => panic!("unknown tape call {other:?} on line {}", i + 1),
        };
        if let (Some(e), Some(g)) = (expected, got)
            && e != g
        {
            return Err(Divergence {
                line: i + 1,
                expected: e.to_string(),
                got: g,
            });
        }
        n += 1;
    }
    Ok(n)
}

fn arr<const N: usize>(h: &str) -> [u8; N] {
    let v = hex::decode(h).expect("hex");
    v.try_into().expect("length")
}

fn parse_hop(h: &str) -> RelayTarget {
    let p: Vec<&str> = h.split(',').collect();
    RelayTarget {
        addr: p[0].parse().expect("addr"),
        id: PeerId(arr(p[1])),
        ntor_key: arr(p[2]),
        ed_id: (p[3] != "-").then(|| arr(p[3])),
    }
}
