//! Run a scenario of real nodes: build the world of [`SimPeer`]s from the scenario file,
//! run it to its end, and turn what the nodes and their workloads reported into a
//! [`Report`] (metrics, counters, failures by reason) and its summary text.
//!
//! Metrics recorded (names in [`Metrics`](crate::trace::Metrics)):
//! - samples `circuit_build_ms`, `stream_ms`, `ttfb_ms`, `stream_kBps`;
//! - series `throughput_kBps` (per finished stream, at its finish time);
//! - counts `circuits_built`, `streams_done`, `stream_bytes`, `no_path`,
//!   `circuit_build_failed/<DESTROY reason>`, `circuit_lost/<DESTROY reason>`,
//!   `stream_failed/<END reason>`, `stream_corrupt`, `refused/<error>`,
//!   `link_down/<reason>`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::dht::{Distance, Key};
use onionpeer_core::node::api::Event;

use crate::node::{Directory, SharedDirectory, SimEvent, SimPeer};
use crate::plot::PlotError;
use crate::scenario::{Scenario, ScenarioError};
use crate::trace::{Divergence, Metrics, Trace, first_difference, percentiles};
use crate::workload::AppEvent;
use crate::world::{HookCtx, Report};

/// How to run a scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replace the scenario's seed.
    pub seed: Option<u64>,
    /// Write the trace to this file.
    pub trace: Option<PathBuf>,
    /// Keep the trace lines in the report (for snapshots and determinism checks).
    pub keep_lines: bool,
    /// Write SVG plots into this folder.
    pub plots: Option<PathBuf>,
}

/// Why a run failed.
#[derive(Debug)]
pub enum SimError {
    /// The scenario could not be loaded or built.
    Scenario(ScenarioError),
    /// The trace file could not be created.
    Io(String),
    /// A plot could not be written.
    Plot(PlotError),
    /// Two runs of the same seed differed.
    Diverged(Divergence),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::Scenario(e) => write!(f, "scenario: {e}"),
            SimError::Io(e) => write!(f, "trace: {e}"),
            SimError::Plot(e) => write!(f, "{e}"),
            SimError::Diverged(d) => write!(f, "not deterministic: {d}"),
        }
    }
}

impl std::error::Error for SimError {}

impl From<ScenarioError> for SimError {
    fn from(e: ScenarioError) -> Self {
        SimError::Scenario(e)
    }
}

/// Load the scenario at `path` and run it.
pub fn run_scenario(path: &Path, opts: &RunOptions) -> Result<Report, SimError> {
    let scenario = Scenario::load(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    run(&scenario, base, opts)
}

/// Run a scenario given as TOML text (`base`: where relative file names are read from).
pub fn run_scenario_str(text: &str, base: &Path, opts: &RunOptions) -> Result<Report, SimError> {
    run(&Scenario::from_toml(text)?, base, opts)
}

/// Run `scenario` to its end.
pub fn run(scenario: &Scenario, base: &Path, opts: &RunOptions) -> Result<Report, SimError> {
    let mut scenario = scenario.clone();
    if let Some(seed) = opts.seed {
        scenario.seed = seed;
    }
    let mut trace = Trace::new();
    if opts.keep_lines {
        trace = trace.keep_lines();
    }
    if let Some(path) = &opts.trace {
        trace = trace
            .write_to(path)
            .map_err(|e| SimError::Io(format!("{}: {e}", path.display())))?;
    }
    let dir: SharedDirectory = SharedDirectory::new(Directory::default().into());
    let factory_dir = SharedDirectory::clone(&dir);
    let knobs = scenario.peersm.clone();
    let mut world = scenario.build(base, trace, move |spec| {
        SimPeer::new(spec, &factory_dir, &knobs)
    })?;
    world.on_action(|host: &mut SimPeer, ctx, action| host.on_action(ctx, action));
    world.on_event(record_metrics);
    world.run_until(scenario.end());
    let mut node_counters = std::collections::BTreeMap::new();
    let mut active = 0;
    let mut swarm_hosts = crate::swarm::HostFigures::default();
    for (name, host) in world.hosts() {
        if let (Some(node), Some(role)) = (host.node(), host.role()) {
            swarm_hosts.add(name, role, node);
        }
        if let Some(node) = host.node() {
            let nonzero: std::collections::BTreeMap<String, u64> = node
                .counters()
                .nonzero()
                .map(|(c, n)| (c.name().to_string(), n))
                .collect();
            if !nonzero.is_empty() {
                node_counters.insert(name.to_string(), nonzero);
            }
        }
        active += host.workload().map_or(0, |w| w.active_streams());
    }
    let now = world.now();
    let dht = dht_end_state(&world, now);
    let mut report = world.finish();
    report.node_counters = node_counters;
    if let Some(d) = dht {
        for (k, v) in &d.counts {
            report.metrics.count(k, *v);
        }
        for (k, v) in &d.samples {
            for x in v {
                report.metrics.sample(k, *x);
            }
        }
        if let Some(path) = &opts.trace {
            let txt = path.with_file_name(format!("routing_table_{}.txt", d.table_host));
            std::fs::write(&txt, &d.table_text)
                .map_err(|e| SimError::Io(format!("{}: {e}", txt.display())))?;
        }
        if let Some(dir) = &opts.plots {
            std::fs::create_dir_all(dir).map_err(|e| SimError::Io(e.to_string()))?;
            let svg = dir.join(format!("routing_table_{}.svg", d.table_host));
            let title = format!("routing table of {}", d.table_host);
            crate::plot::routing_table_svg(&svg, &title, &d.buckets).map_err(SimError::Plot)?;
        }
        report.routing_table = Some((d.table_host, d.table_text));
    }
    let (down, up) = swarm_capacity(&scenario, base);
    let swarm_out = opts.plots.clone().or_else(|| {
        let t = opts.trace.as_ref()?;
        Some(t.parent().unwrap_or(Path::new(".")).to_path_buf())
    });
    crate::swarm::finish(
        &dir,
        &swarm_hosts,
        down,
        up,
        &mut report.metrics,
        swarm_out.as_deref(),
    )
    .map_err(SimError::Plot)?;
    if active > 0 {
        report
            .metrics
            .count("streams_unfinished_at_end", active as u64);
    }
    if let Some(dir) = &opts.plots {
        std::fs::create_dir_all(dir).map_err(|e| SimError::Io(e.to_string()))?;
        report.write_plots(dir).map_err(SimError::Plot)?;
    }
    Ok(report)
}

/// The smallest down and up capacity of the topology's nodes, bytes/s (the swarm
/// scenarios give every host the same).
fn swarm_capacity(scenario: &Scenario, base: &Path) -> (u64, u64) {
    let Ok(t) = scenario.topology.resolve(base, scenario.seed) else {
        return (0, 0);
    };
    let down = t.nodes.iter().map(|n| n.down_bps).min().unwrap_or(0);
    let up = t.nodes.iter().map(|n| n.up_bps).min().unwrap_or(0);
    (down, up)
}

/// What the DHT looks like at the end of a run.
struct DhtEnd {
    counts: Vec<(String, u64)>,
    samples: Vec<(String, Vec<f64>)>,
    table_host: String,
    table_text: String,
    buckets: Vec<(u8, Vec<f64>)>,
}

/// Per-peer figures at the end (ORDB circuits, table sizes, colluders flagged) and the
/// routing table of the first peer by name; `None` without Peersm nodes.
fn dht_end_state(
    world: &crate::world::World<SimPeer>,
    now: onionpeer_core::Instant,
) -> Option<DhtEnd> {
    use crate::node::HostRole;
    let mut ordb = Vec::new();
    let mut sizes = Vec::new();
    let mut colluders = Vec::new();
    let mut honest = Vec::new();
    let mut table_host = None;
    for (name, host) in world.hosts() {
        let (Some(role), Some(node)) = (host.role(), host.node()) else {
            continue;
        };
        if !role.is_peersm() {
            continue;
        }
        let Some(table) = node.routing_table() else {
            continue;
        };
        match role {
            HostRole::Colluder | HostRole::EvilBridge => colluders.push(node.peer_id()),
            _ => honest.push(node),
        }
        if matches!(role, HostRole::Peer | HostRole::Victim) {
            ordb.push(node.ordb_circuits() as f64);
            sizes.push(table.len() as f64);
            if table_host.is_none() {
                table_host = Some((name.to_string(), node));
            }
        }
    }
    // How well tables know their neighbourhood (of each peer's 8 closest live peers, how
    // many its table holds) and how many of their entries are gone (left the network).
    let live: Vec<PeerId> = honest
        .iter()
        .filter(|n| n.routing_table().is_some_and(|t| !t.is_empty()))
        .map(|n| n.peer_id())
        .chain(colluders.iter().copied())
        .collect();
    let live_set: std::collections::BTreeSet<PeerId> = live.iter().copied().collect();
    let stride = (honest.len() / 1000).max(1);
    let mut known = Vec::new();
    let mut stale = Vec::new();
    for n in honest.iter().step_by(stride) {
        let Some(t) = n.routing_table() else { continue };
        if t.is_empty() {
            continue;
        }
        let me = Key::from(n.peer_id());
        let mut others: Vec<(Distance, PeerId)> = live
            .iter()
            .filter(|id| **id != n.peer_id())
            .map(|id| (me.distance(&Key::from(*id)), *id))
            .collect();
        let k = others.len().min(8);
        if k > 0 && k < others.len() {
            others.select_nth_unstable(k - 1);
        }
        let hits = others[..k]
            .iter()
            .filter(|(_, id)| t.get(id).is_some())
            .count();
        known.push(hits as f64);
        stale.push(t.iter().filter(|e| !live_set.contains(&e.id())).count() as f64);
    }
    if std::env::var_os("SIM_DHT_DEBUG").is_some() {
        for (name, host) in world.hosts() {
            let Some(n) = host.node() else { continue };
            if n.routing_table().is_none_or(|t| t.is_empty()) {
                continue;
            }
            let id = n.peer_id();
            let by = honest
                .iter()
                .filter(|o| o.routing_table().is_some_and(|t| t.get(&id).is_some()))
                .count();
            let sus = honest.iter().filter(|o| o.suspicion(&id) > 0).count();
            let me = Key::from(id);
            let mut others: Vec<(Distance, String, bool)> = world
                .hosts()
                .filter_map(|(nm, h)| {
                    let o = h.node()?;
                    if o.routing_table().is_none_or(|t| t.is_empty()) || o.peer_id() == id {
                        return None;
                    }
                    let oid = o.peer_id();
                    Some((
                        me.distance(&Key::from(oid)),
                        nm.to_string(),
                        n.routing_table().is_some_and(|t| t.get(&oid).is_some()),
                    ))
                })
                .collect();
            others.sort();
            let t = n.routing_table().expect("table");
            let missing: Vec<String> = others
                .iter()
                .take(8)
                .filter(|o| !o.2)
                .map(|o| {
                    let b = 159
                        - o.0
                            .0
                            .iter()
                            .position(|x| *x != 0)
                            .map_or(160, |i| i * 8 + o.0.0[i].leading_zeros() as usize);
                    format!("{}@b{}({})", o.1, b, t.bucket(b as u8).len())
                })
                .collect();
            eprintln!(
                "known {name} by {by} suspected_by {sus} table {} missing {missing:?}",
                n.routing_table().map_or(0, |t| t.len())
            );
        }
    }
    let (table_host, node) = table_host?;
    let table = node.routing_table()?;
    let buckets = (0..=159u8)
        .map(|i| {
            let ages = table.bucket(i).iter();
            (
                i,
                ages.map(|e| e.live_time(now).as_secs_f64() / 60.0)
                    .collect(),
            )
        })
        .collect();
    let flagged = colluders
        .iter()
        .filter(|c| honest.iter().any(|n| n.suspicion(c) > 0))
        .count();
    let shunned = colluders
        .iter()
        .filter(|c| honest.iter().any(|n| n.suspicion(c) >= 2))
        .count();
    let mut counts = vec![("dht_peers_at_end".to_string(), ordb.len() as u64)];
    if !colluders.is_empty() {
        counts.push(("colluders".into(), colluders.len() as u64));
        counts.push(("colluders_flagged".into(), flagged as u64));
        counts.push(("colluders_shunned".into(), shunned as u64));
    }
    Some(DhtEnd {
        counts,
        samples: vec![
            ("ordb_circuits_per_peer".into(), ordb),
            ("routing_table_size".into(), sizes),
            ("neighbours_known_of_8".into(), known),
            ("stale_table_entries".into(), stale),
        ],
        table_text: table.render(now),
        table_host,
        buckets,
    })
}

/// The DHT lines of the summary: success rates, hops against log2(N), bootstraps,
/// ORDB circuits, captured lookups and flagged colluders.
fn render_dht(report: &Report, s: &mut String) {
    let c = |k: &str| report.metrics.counts.get(k).copied().unwrap_or(0);
    let peers = c("dht_peers_at_end");
    if peers == 0 {
        return;
    }
    let log2n = (peers as f64).log2();
    let _ = writeln!(
        s,
        "dht: {peers} peers at end (log2 N = {log2n:.1}), bootstraps {}",
        c("dht_bootstraps")
    );
    for kind in ["find_node", "find_value"] {
        let (ok, miss) = (
            c(&format!("lookup/{kind}/ok")),
            c(&format!("lookup/{kind}/miss")),
        );
        if ok + miss == 0 {
            continue;
        }
        let rate = 100.0 * ok as f64 / (ok + miss) as f64;
        let _ = write!(
            s,
            "  {kind:<10} success {rate:.2}% ({ok}/{}, unjudged {}, captured {})",
            ok + miss,
            c(&format!("lookup/{kind}/unjudged")),
            c(&format!("lookup/{kind}/captured"))
        );
        let hops = report.metrics.samples.get(&format!("{kind}_hops"));
        if let Some((p, v)) = hops.and_then(|v| Some((percentiles(v)?, v))) {
            let max = v.iter().copied().fold(0.0, f64::max);
            let _ = write!(s, "  hops p50 {} p99 {} max {max}", p.p50, p.p99);
        }
        let _ = writeln!(s);
        let v = |x: &str| c(&format!("lookup/{kind}/victim/{x}"));
        let victim_n = v("ok") + v("miss") + v("unjudged");
        if victim_n > 0 {
            let _ = writeln!(
                s,
                "    victims: {victim_n} lookups, ok {}, all-colluder results {}, missing the closest honest peer {} (all peers: {})",
                v("ok"),
                v("captured"),
                v("missed_honest"),
                c(&format!("lookup/{kind}/missed_honest"))
            );
        }
    }
    let rows = [
        ("bootstrap_ms", "ms"),
        ("find_node_ms", "ms"),
        ("find_value_ms", "ms"),
        ("ordb_circuits_per_peer", ""),
        ("routing_table_size", ""),
        ("neighbours_known_of_8", ""),
        ("stale_table_entries", ""),
    ];
    write_percentiles(s, report, &rows, "  ", 23, 8);
    if c("colluders") > 0 {
        let _ = writeln!(
            s,
            "  colluders {}: flagged {} (shunned {}) by some honest peer",
            c("colluders"),
            c("colluders_flagged"),
            c("colluders_shunned")
        );
    }
}

/// Run twice with kept lines; the report of the first run if both traces are identical.
pub fn run_checked(
    scenario: &Scenario,
    base: &Path,
    opts: &RunOptions,
) -> Result<Report, SimError> {
    let mut first_opts = opts.clone();
    first_opts.keep_lines = true;
    let first = run(scenario, base, &first_opts)?;
    let second_opts = RunOptions {
        keep_lines: true,
        seed: opts.seed,
        ..RunOptions::default()
    };
    let second = run(scenario, base, &second_opts)?;
    match first_difference(&first.lines, &second.lines) {
        Some(d) => Err(SimError::Diverged(d)),
        None => Ok(first),
    }
}

/// The world's event hook: turn what nodes report into metrics.
pub fn record_metrics(ctx: &HookCtx<'_>, event: &SimEvent, m: &mut Metrics) {
    match event {
        SimEvent::Node(Event::LinkDown { reason, .. }) => {
            m.count(&format!("link_down/{reason:?}"), 1);
        }
        SimEvent::Node(_) => {}
        SimEvent::App(e) => match e {
            AppEvent::Built { ms, .. } => {
                m.count("circuits_built", 1);
                m.sample("circuit_build_ms", *ms);
            }
            AppEvent::BuildFailed { reason } => {
                m.count(&format!("circuit_build_failed/{reason}"), 1);
            }
            AppEvent::CircuitLost { reason } => m.count(&format!("circuit_lost/{reason}"), 1),
            AppEvent::StreamDone {
                bytes, ttfb_ms, ms, ..
            } => {
                m.count("streams_done", 1);
                m.count("stream_bytes", *bytes);
                m.sample("stream_ms", *ms);
                if *ttfb_ms > 0.0 {
                    m.sample("ttfb_ms", *ttfb_ms);
                }
                let kbps = *bytes as f64 / ms.max(1e-3);
                m.sample("stream_kBps", kbps);
                m.point("throughput_kBps", ctx.now, kbps);
            }
            AppEvent::StreamFailed { reason, .. } => {
                m.count(&format!("stream_failed/{reason}"), 1);
            }
            AppEvent::Corrupt { .. } => m.count("stream_corrupt", 1),
            AppEvent::NoPath => m.count("no_path", 1),
            AppEvent::Refused(e) => m.count(&format!("refused/{e}"), 1),
            AppEvent::Swarm(e) => crate::swarm::record(e, m),
            AppEvent::Bootstrapped { ms, ordb } => {
                m.count("dht_bootstraps", 1);
                m.sample("bootstrap_ms", *ms);
                m.sample("ordb_at_bootstrap", *ordb as f64);
            }
            AppEvent::Lookup {
                kind,
                ok,
                hops,
                ms,
                captured,
                missed_honest,
                victim,
            } => {
                let verdict = match ok {
                    Some(true) => "ok",
                    Some(false) => "miss",
                    None => "unjudged",
                };
                m.count(&format!("lookup/{kind}/{verdict}"), 1);
                if *captured {
                    m.count(&format!("lookup/{kind}/captured"), 1);
                }
                if *missed_honest == Some(true) {
                    m.count(&format!("lookup/{kind}/missed_honest"), 1);
                }
                if *victim {
                    m.count(&format!("lookup/{kind}/victim/{verdict}"), 1);
                    if *captured {
                        m.count(&format!("lookup/{kind}/victim/captured"), 1);
                    }
                    if *missed_honest == Some(true) {
                        m.count(&format!("lookup/{kind}/victim/missed_honest"), 1);
                    }
                }
                if *kind != "bootstrap" {
                    m.sample(&format!("{kind}_hops"), f64::from(*hops));
                    m.sample(&format!("{kind}_ms"), *ms);
                }
            }
        },
    }
}

/// The failures of a run: every count that is not a success, by reason.
pub fn failures(report: &Report) -> Vec<(&str, u64)> {
    const FAILURES: [&str; 8] = [
        "circuit_build_failed/",
        "circuit_lost/",
        "stream_failed/",
        "stream_corrupt",
        "no_path",
        "refused/",
        "streams_unfinished_at_end",
        "link_down/",
    ];
    let counts = report.metrics.counts.iter();
    counts
        .filter(|(k, _)| FAILURES.iter().any(|f| k.starts_with(f)))
        .map(|(k, v)| (k.as_str(), *v))
        .collect()
}

/// The summary a run prints: counts, latencies as p50/p90/p99, bytes, failures by reason,
/// node counters and the trace hash.
pub fn render_summary(report: &Report) -> String {
    let mut s = String::new();
    let c = |k: &str| report.metrics.counts.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        s,
        "seed {}  simulated {:.3}s  trace events {}",
        report.seed,
        report.end.as_nanos() as f64 / 1e9,
        report.summary.events.values().sum::<u64>()
    );
    let _ = writeln!(
        s,
        "circuits built {}  streams done {}  stream bytes {}  bytes on links {}",
        c("circuits_built"),
        c("streams_done"),
        c("stream_bytes"),
        report.summary.bytes_delivered
    );
    let rows = [
        ("circuit_build_ms", "ms"),
        ("ttfb_ms", "ms"),
        ("stream_ms", "ms"),
        ("stream_kBps", "kB/s"),
    ];
    write_percentiles(&mut s, report, &rows, "", 17, 10);
    render_dht(report, &mut s);
    crate::swarm::render(&report.metrics, &mut s);
    let fails = failures(report);
    let _ = writeln!(
        s,
        "failures by reason:{}",
        if fails.is_empty() { " none" } else { "" }
    );
    for (k, v) in fails {
        let _ = writeln!(s, "  {k:<40} {v}");
    }
    let mut totals = std::collections::BTreeMap::<&str, (u64, Vec<&str>)>::new();
    for (node, counters) in &report.node_counters {
        for (k, v) in counters {
            let t = totals.entry(k).or_default();
            t.0 += v;
            t.1.push(node);
        }
    }
    let _ = writeln!(
        s,
        "node counters:{}",
        if totals.is_empty() { " none" } else { "" }
    );
    for (k, (v, nodes)) in totals {
        let more = if nodes.len() > 4 { " ..." } else { "" };
        let names = nodes[..nodes.len().min(4)].join(" ");
        let _ = writeln!(s, "  {k:<40} {v} on {} nodes: {names}{more}", nodes.len());
    }
    let world_closes = report.summary.closes.iter();
    let closes: Vec<String> = world_closes.map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(s, "link closes: {}", closes.join(", "));
    let dial = report.summary.dial_failures.iter();
    let dial: Vec<String> = dial.map(|(k, v)| format!("{k} {v}")).collect();
    if !dial.is_empty() {
        let _ = writeln!(s, "dial failures: {}", dial.join(", "));
    }
    let _ = writeln!(s, "trace hash {}", report.trace_hash);
    s
}

/// One line per sample set: count and p50/p90/p99, in columns of the given widths.
fn write_percentiles(
    s: &mut String,
    report: &Report,
    rows: &[(&str, &str)],
    indent: &str,
    name_width: usize,
    num_width: usize,
) {
    for &(name, unit) in rows {
        if let Some(p) = report
            .metrics
            .samples
            .get(name)
            .and_then(|v| percentiles(v))
        {
            let _ = writeln!(
                s,
                "{indent}{name:<name_width$} n={:<6} p50 {:>num_width$.1} p90 {:>num_width$.1} p99 {:>num_width$.1} {unit}",
                p.count, p.p50, p.p90, p.p99
            );
        }
    }
}
