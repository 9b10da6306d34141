//! A relay node through the drive API, in memory: cells/s a middle relay forwards, next
//! to the raw AES-128-CTR rate over 509 bytes (its crypto floor), and heap bytes per open
//! circuit on each side.
//!
//! Setup (untimed): a tiny inline driver builds client -> A -> B -> C and opens a stream
//! to C; one RELAY cell is captured on the A -> B link. Timed: B alone is fed batches of
//! that cell (B's counter-mode state moves on, so every copy is just another cell not
//! for B, which B forwards) with `handle_input(Data)`, and its B -> C queue is drained
//! with `poll_transmit`.
//!
//! Memory: a counting global allocator; 1,000 one-hop circuits from a client through a
//! relay, with the net heap change inside each node's calls added up per node.

// The counting allocator needs `unsafe impl GlobalAlloc` (the library forbids unsafe).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, VecDeque};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant as StdInstant;

use aes::Aes128;
use cipher::{KeyIvInit, StreamCipher};
use criterion::{Criterion, Throughput};
use ctr::Ctr128BE;
use onionpeer_core::Instant;
use onionpeer_core::cells::channel::{ChanCmd, ChannelCodec};
use onionpeer_core::node::Node;
use onionpeer_core::node::api::{
    ConnId, ConnectTarget, Event, FirstHop, Input, LinkBinding, Output, StreamTarget,
};
use onionpeer_core::node::config::{NodeConfig, Role};
use onionpeer_core::node::exit_policy::ExitPolicy;

// ---- a counting allocator --------------------------------------------------------------

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: as for `GlobalAlloc::realloc`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

// ---- a tiny in-memory driver -----------------------------------------------------------

struct Net {
    nodes: Vec<Node>,
    addrs: Vec<SocketAddr>,
    /// (node, conn) -> (node, conn) for links; exits are answered at once and sink data.
    peers: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    queue: VecDeque<(usize, Msg)>,
    /// Bytes seen on links from `tap.0` to `tap.1`.
    tap: Option<(usize, usize, Vec<u8>)>,
    /// Net heap change inside each node's calls.
    heap: Vec<isize>,
    events: Vec<(usize, Event)>,
    now: Instant,
}

enum Msg {
    Connected(ConnId, LinkBinding),
    Data(ConnId, Vec<u8>),
}

fn digest(i: usize) -> [u8; 32] {
    [i as u8 + 1; 32]
}

impl Net {
    fn new(roles: &[Role]) -> Net {
        let mut net = Net {
            nodes: Vec::new(),
            addrs: Vec::new(),
            peers: BTreeMap::new(),
            queue: VecDeque::new(),
            tap: None,
            heap: vec![0; roles.len()],
            events: Vec::new(),
            now: Instant::ZERO,
        };
        for (i, &role) in roles.iter().enumerate() {
            let mut cfg = NodeConfig::new([i as u8 + 1; 32], role, 1_767_225_600);
            if role.exit {
                cfg.exit_policy = ExitPolicy::accept_all();
            }
            net.nodes.push(Node::new(cfg, Instant::ZERO).expect("node"));
            net.addrs.push(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)),
                9001,
            ));
        }
        net
    }

    /// Run `f` on node `i`, counting its net heap change, then act on its outputs.
    fn with<T>(&mut self, i: usize, f: impl FnOnce(&mut Node) -> T) -> T {
        let before = live();
        let t = f(&mut self.nodes[i]);
        self.after(i, before);
        t
    }

    /// Drain node `i`'s outputs and carry them out.
    fn after(&mut self, i: usize, before: isize) {
        let mut outs = Vec::new();
        loop {
            match self.nodes[i].poll_output() {
                Output::Timeout(..) => break,
                o => outs.push(o),
            }
        }
        self.heap[i] += live() - before;
        for o in outs {
            match o {
                Output::Connect {
                    conn,
                    target: ConnectTarget::Relay { addr, .. },
                } => {
                    let to = self.addrs.iter().position(|a| *a == addr).expect("known");
                    let binding = LinkBinding {
                        local: digest(to),
                        remote: digest(i),
                    };
                    let now = self.now;
                    let theirs = self
                        .with(to, |n| n.accept_link(now, Some(addr), binding))
                        .expect("accept");
                    self.peers.insert((i, conn), (to, theirs));
                    self.peers.insert((to, theirs), (i, conn));
                    let b = LinkBinding {
                        local: digest(i),
                        remote: digest(to),
                    };
                    self.queue.push_back((i, Msg::Connected(conn, b)));
                }
                Output::Connect { conn, .. } => {
                    self.queue
                        .push_back((i, Msg::Connected(conn, LinkBinding::default())));
                }
                Output::Transmit(conn) => {
                    let mut buf = vec![0u8; 64 * 1024];
                    let before = live();
                    loop {
                        let n = self.nodes[i].poll_transmit(conn, &mut buf);
                        if n == 0 {
                            break;
                        }
                        if let Some(&(to, tc)) = self.peers.get(&(i, conn)) {
                            if let Some((a, b, cap)) = &mut self.tap
                                && *a == i
                                && *b == to
                            {
                                cap.extend_from_slice(&buf[..n]);
                            }
                            self.queue.push_back((to, Msg::Data(tc, buf[..n].to_vec())));
                        }
                    }
                    self.heap[i] += live() - before;
                }
                Output::Event(e) => self.events.push((i, e)),
                Output::Close(_) | Output::Timeout(..) => {}
            }
        }
    }

    fn run(&mut self) {
        while let Some((i, m)) = self.queue.pop_front() {
            let now = self.now;
            match m {
                Msg::Connected(conn, binding) => self.with(i, |n| {
                    n.handle_input(Input::Connected { now, conn, binding })
                }),
                Msg::Data(conn, data) => self.with(i, |n| {
                    n.handle_input(Input::Data {
                        now,
                        conn,
                        data: &data,
                    })
                }),
            }
        }
    }
}

/// The middle relay B of client -> A -> B -> C, its link from A and to C, and a RELAY
/// cell captured on A -> B (framed for that link).
struct Middle {
    node: Node,
    from_a: ConnId,
    to_c: ConnId,
    cell: Vec<u8>,
}

fn middle() -> Middle {
    let mut net = Net::new(&[Role::CLIENT, Role::RELAY, Role::RELAY, Role::EXIT]);
    let path = (1..4)
        .map(|i| net.nodes[i].relay_target(net.addrs[i]))
        .collect();
    let now = net.now;
    let h = net
        .with(0, |n| n.build_circuit(now, path, FirstHop::Ntor))
        .expect("build");
    net.run();
    assert!(
        net.events
            .iter()
            .any(|(i, e)| *i == 0 && *e == Event::CircuitBuilt(h)),
        "circuit built"
    );
    net.tap = Some((1, 2, Vec::new()));
    let target = StreamTarget::Tcp {
        host: "sink.example".into(),
        port: 9,
    };
    net.with(0, |n| n.open_stream(now, h, target))
        .expect("stream");
    net.run();
    let (_, _, captured) = net.tap.take().expect("tap");
    let codec = ChannelCodec::new(5).expect("v5");
    let mut off = 0;
    let mut cell = None;
    while let Ok(Some((c, used))) = codec.decode(&captured[off..]) {
        if c.msg.cmd() == ChanCmd::RELAY {
            cell = Some(captured[off..off + used].to_vec());
            break;
        }
        off += used;
    }
    let cell = cell.expect("a RELAY cell on A -> B");
    let from_a = *net
        .peers
        .iter()
        .find(|((n, _), (m, _))| *n == 2 && *m == 1)
        .expect("B's link from A")
        .0;
    let to_c = *net
        .peers
        .iter()
        .find(|((n, _), (m, _))| *n == 2 && *m == 3)
        .expect("B's link to C")
        .0;
    Middle {
        node: net.nodes.swap_remove(2),
        from_a: from_a.1,
        to_c: to_c.1,
        cell,
    }
}

impl Middle {
    /// Feed `batch` (many copies of the cell) and drain what B sends on; returns the
    /// bytes sent on.
    fn relay(&mut self, batch: &[u8], out: &mut [u8]) -> usize {
        self.node.handle_input(Input::Data {
            now: Instant::ZERO,
            conn: self.from_a,
            data: batch,
        });
        while !matches!(self.node.poll_output(), Output::Timeout(..)) {}
        let mut total = 0;
        loop {
            let n = self.node.poll_transmit(self.to_c, out);
            if n == 0 {
                return total;
            }
            total += n;
        }
    }
}

const CELLS_PER_BATCH: usize = 256;

fn raw_aes() -> Ctr128BE<Aes128> {
    Ctr128BE::<Aes128>::new(&[7u8; 16].into(), &[0u8; 16].into())
}

fn bench(c: &mut Criterion) {
    let mut mid = middle();
    let batch = mid.cell.repeat(CELLS_PER_BATCH);
    let mut out = vec![0u8; 256 * 1024];
    assert_eq!(
        mid.relay(&batch, &mut out),
        batch.len(),
        "every cell forwarded"
    );

    let mut g = c.benchmark_group("node_relay");
    g.throughput(Throughput::Elements(CELLS_PER_BATCH as u64));
    g.bench_function("middle_relay_256_cells", |b| {
        b.iter(|| black_box(mid.relay(black_box(&batch), &mut out)))
    });
    g.throughput(Throughput::Elements(1));
    let mut aes = raw_aes();
    let mut buf = [0x5au8; 509];
    g.bench_function("raw_aes_ctr_509", |b| {
        b.iter(|| aes.apply_keystream(black_box(&mut buf)))
    });
    g.finish();
}

/// Heap bytes per open circuit: 1,000 one-hop circuits from a client through a relay.
fn memory_per_circuit() -> (f64, f64) {
    const N: usize = 1000;
    let mut net = Net::new(&[Role::CLIENT, Role::RELAY]);
    let target = net.nodes[1].relay_target(net.addrs[1]);
    // One circuit first, so the link and its buffers exist before measuring.
    let now = net.now;
    let t = target.clone();
    net.with(0, |n| n.build_circuit(now, vec![t], FirstHop::Fast))
        .expect("build");
    net.run();
    net.heap = vec![0; 2];
    for _ in 0..N {
        let t = target.clone();
        net.with(0, |n| n.build_circuit(now, vec![t], FirstHop::Fast))
            .expect("build");
        net.run();
    }
    let built = net
        .events
        .iter()
        .filter(|(i, e)| *i == 0 && matches!(e, Event::CircuitBuilt(_)))
        .count();
    assert_eq!(built, N + 1, "all circuits built");
    assert_eq!(net.nodes[1].census().1, N + 1);
    (net.heap[0] as f64 / N as f64, net.heap[1] as f64 / N as f64)
}

fn summary() {
    const BATCHES: usize = 400;
    let mut mid = middle();
    let batch = mid.cell.repeat(CELLS_PER_BATCH);
    let mut out = vec![0u8; 256 * 1024];
    mid.relay(&batch, &mut out);
    let start = StdInstant::now();
    for _ in 0..BATCHES {
        black_box(mid.relay(&batch, &mut out));
    }
    let node_t = start.elapsed().as_secs_f64() / (BATCHES * CELLS_PER_BATCH) as f64;
    const N: usize = 200_000;
    let mut aes = raw_aes();
    let mut buf = [0x5au8; 509];
    let start = StdInstant::now();
    for _ in 0..N {
        aes.apply_keystream(black_box(&mut buf));
    }
    let aes_t = start.elapsed().as_secs_f64() / N as f64;
    let (client_b, relay_b) = memory_per_circuit();
    println!();
    println!("node_relay summary (one core; shared machine, figures are indicative)");
    println!(
        "middle relay via API  {:>7.3} M cells/s {:>8.1} MB/s (514-byte cells in)",
        1e-6 / node_t,
        514.0 / node_t / 1e6
    );
    println!(
        "raw AES-128-CTR 509 B {:>7.3} M cells/s {:>8.1} MB/s",
        1e-6 / aes_t,
        509.0 / aes_t / 1e6
    );
    println!(
        "node relays at {:.1}% of the raw AES rate",
        100.0 * aes_t / node_t
    );
    println!("heap per open circuit: client side {client_b:.0} B, relay side {relay_b:.0} B");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    summary();
}
