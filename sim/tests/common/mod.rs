//! A small test host for the simulator's own tests: it dials, sends rounds of patterned
//! bytes, and checks that its peer echoes them back in order. It exists only to exercise
//! the simulator.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use onionpeer_sim::scenario::Action;
use onionpeer_sim::world::{HookCtx, HostSpec};
use onionpeer_sim::{HostInput, HostOutput, Instant, LinkId, SimHost, World};

/// What the test host reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestEvent {
    /// A dialed link came up.
    Connected(LinkId),
    /// A round came back whole: `bytes` echoed after `rtt`.
    Echoed {
        link: LinkId,
        bytes: u64,
        rtt_ms: u64,
    },
    /// A sink received `total` bytes so far (reported every full MB and at 1000 B).
    Received { link: LinkId, total: u64 },
    /// A link closed.
    Closed(LinkId),
    /// A dial failed.
    Failed(LinkId),
    /// A byte arrived out of order: the simulator broke the stream.
    Misordered(LinkId),
}

/// The byte at stream offset `i`.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

#[derive(Debug, Default)]
struct Conn {
    dialer: bool,
    tx: VecDeque<u8>,
    sent: u64,
    received: u64,
    round_bytes: u64,
    round_start: Instant,
    round_target: u64,
    next_round: Option<Instant>,
    rounds_left: u64,
}

/// Accepted links echo (role "echo") or swallow (role "sink"); dialed links send rounds.
#[derive(Debug)]
pub struct TestHost {
    echo: bool,
    period: Option<Duration>,
    next_link: u64,
    out: VecDeque<HostOutput<TestEvent>>,
    conns: BTreeMap<LinkId, Conn>,
}

impl TestHost {
    /// A host for `role` ("sink" swallows accepted bytes, anything else echoes them).
    pub fn new(role: &str) -> TestHost {
        TestHost {
            echo: role != "sink",
            period: None,
            next_link: 1,
            out: VecDeque::new(),
            conns: BTreeMap::new(),
        }
    }

    /// Repeat rounds every `period`.
    pub fn repeating(mut self, period: Duration) -> TestHost {
        self.period = Some(period);
        self
    }

    /// Dial `addr` and, once up, send `rounds` rounds of `bytes` bytes.
    pub fn dial(&mut self, addr: SocketAddr, bytes: u64, rounds: u64) -> LinkId {
        let link = LinkId(self.next_link);
        self.next_link += 1;
        let conn = Conn {
            dialer: true,
            round_bytes: bytes,
            rounds_left: rounds,
            ..Conn::default()
        };
        self.conns.insert(link, conn);
        self.out.push_back(HostOutput::Dial { link, addr });
        link
    }

    fn start_round(&mut self, link: LinkId, now: Instant) {
        let Some(c) = self.conns.get_mut(&link) else {
            return;
        };
        if c.rounds_left == 0 || c.round_bytes == 0 {
            return;
        }
        c.rounds_left -= 1;
        c.next_round = None;
        c.round_start = now;
        for _ in 0..c.round_bytes {
            c.tx.push_back(pattern(c.sent));
            c.sent += 1;
        }
        c.round_target = c.sent;
        self.out.push_back(HostOutput::Transmit(link));
    }

    /// The factory the tests use: role "echo" or "sink".
    pub fn factory(spec: &HostSpec<'_>) -> TestHost {
        TestHost::new(spec.role)
    }

    /// The action hook: `dial` with `to`, `bytes`, optional `rounds` (default 1).
    pub fn hook(host: &mut TestHost, ctx: &HookCtx<'_>, action: &Action) {
        if action.kind == "dial" {
            let to = action
                .str("to")
                .and_then(|n| ctx.addr_of(n))
                .expect("dial target");
            let bytes = action.u64("bytes").unwrap_or(100);
            host.dial(to, bytes, action.u64("rounds").unwrap_or(1));
        }
    }
}

impl SimHost for TestHost {
    type Event = TestEvent;

    fn accept_link(&mut self, _now: Instant, _remote: SocketAddr) -> Option<LinkId> {
        let link = LinkId(self.next_link);
        self.next_link += 1;
        self.conns.insert(link, Conn::default());
        Some(link)
    }

    fn handle_input(&mut self, input: HostInput<'_>) {
        match input {
            HostInput::Timeout(now) => {
                let due: Vec<LinkId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.next_round.is_some_and(|t| t <= now))
                    .map(|(l, _)| *l)
                    .collect();
                for link in due {
                    self.start_round(link, now);
                }
            }
            HostInput::LinkUp { now, link } => {
                self.out
                    .push_back(HostOutput::Event(TestEvent::Connected(link)));
                self.start_round(link, now);
            }
            HostInput::LinkData { now, link, data } => {
                let echo = self.echo;
                let period = self.period;
                let Some(c) = self.conns.get_mut(&link) else {
                    return;
                };
                if !c.dialer {
                    let before = c.received;
                    c.received += data.len() as u64;
                    if echo {
                        c.tx.extend(data);
                        self.out.push_back(HostOutput::Transmit(link));
                    } else if c.received / 1_000_000 > before / 1_000_000
                        || (before < 1000 && c.received >= 1000)
                    {
                        let total = c.received;
                        self.out
                            .push_back(HostOutput::Event(TestEvent::Received { link, total }));
                    }
                    return;
                }
                for &b in data {
                    if b != pattern(c.received) {
                        self.out
                            .push_back(HostOutput::Event(TestEvent::Misordered(link)));
                        return;
                    }
                    c.received += 1;
                }
                if c.received == c.round_target && c.round_target > 0 {
                    let rtt_ms = (now - c.round_start).as_millis() as u64;
                    let bytes = c.round_bytes;
                    c.next_round = period.map(|p| now + p);
                    self.out.push_back(HostOutput::Event(TestEvent::Echoed {
                        link,
                        bytes,
                        rtt_ms,
                    }));
                    if period.is_none() {
                        self.start_round(link, now);
                    }
                }
            }
            HostInput::LinkClosed { link, .. } => {
                self.conns.remove(&link);
                self.out
                    .push_back(HostOutput::Event(TestEvent::Closed(link)));
            }
            HostInput::LinkFailed { link, .. } => {
                self.conns.remove(&link);
                self.out
                    .push_back(HostOutput::Event(TestEvent::Failed(link)));
            }
        }
    }

    fn poll_output(&mut self) -> HostOutput<TestEvent> {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let next = self.conns.values().filter_map(|c| c.next_round).min();
        HostOutput::Timeout(next.unwrap_or(Instant::FAR_FUTURE))
    }

    fn poll_transmit(&mut self, link: LinkId, buf: &mut [u8]) -> usize {
        let Some(c) = self.conns.get_mut(&link) else {
            return 0;
        };
        let n = buf.len().min(c.tx.len());
        for (slot, b) in buf.iter_mut().zip(c.tx.drain(..n)) {
            *slot = b;
        }
        n
    }
}

/// A world of test hosts with the dial hook installed.
pub fn world_from(scenario: &str, keep_lines: bool) -> World<TestHost> {
    let s = onionpeer_sim::Scenario::from_toml(scenario).expect("scenario");
    let trace = if keep_lines {
        onionpeer_sim::Trace::new().keep_lines()
    } else {
        onionpeer_sim::Trace::new()
    };
    let mut w = s
        .build(std::path::Path::new("."), trace, TestHost::factory)
        .expect("build");
    w.on_action(TestHost::hook);
    w
}

/// Run a scenario to its end.
pub fn run(scenario: &str) -> onionpeer_sim::Report {
    let end = onionpeer_sim::Scenario::from_toml(scenario).unwrap().end();
    let mut w = world_from(scenario, true);
    w.run_until(end);
    w.finish()
}
