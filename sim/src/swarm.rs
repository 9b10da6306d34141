//! Content distribution on the Peersm peers (issue 7's studies): one peer seeds a file,
//! downloaders fetch it through their ORDB circuits at times spread over the run, and
//! every byte they read is checked against the seeded content.
//!
//! Actions:
//! - `seed` (normally for one `host`, of role `seeder`): seed `bytes` (default 1 MB) of
//!   deterministic content ([`content_byte`]); the directory remembers its hash_name,
//!   size and seeder.
//! - `get` (every host of `role`, default `downloader`, each at a random time within
//!   `spread_ms`): fetch the seeded content with `Command::Get`. A `get` before anything
//!   was seeded waits and tries again every 5 s. A download that ends in error is asked
//!   again at once with `held` = the whole chunks already read (a resume). A downloader
//!   back from a `restart` (new identity, empty store) asks again 10 s later with `held`
//!   = the whole chunks it had read: the record of what it read lives in the directory,
//!   as `onionpeer get` keeps its `.part` file.
//!
//! Roles: `seeder` and `downloader` are Peersm peers that churn never picks (churn picks
//! from its own `role`, normally `peer`); `tamperer` is a peer whose ORDB function flips
//! a byte of every DB_DATA it relays (`OrdbConfig::tamper_relayed_data`).
//!
//! What is measured ([`SwarmState`], kept in the shared directory, turned into metrics,
//! CSV, JSON and plots by [`finish`]): per-download request, info and completion times,
//! bytes read and the first wrong byte if any; bytes read by all downloaders per
//! [`BIN_S`] seconds; at the end, the node counters `OrdbBytesServed` (DB_DATA bytes
//! served from a node's own store: the seeder's versus the other peers'),
//! `DownloadTampering`, `OrdbTamperCaught` and `DownloadCircuitSlow` / `Stalled` / `Strikes`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use onionpeer_core::cells::relay::HashName;
use onionpeer_core::node::Node;
use onionpeer_core::node::api::{Command, CommandOk, DownloadHandle, Event};
use onionpeer_core::node::counters::Count;

use crate::host::Instant;
use crate::node::{HostRole, SharedDirectory};
use crate::plot::PlotError;
use crate::trace::{Metrics, percentiles, quantile};
use crate::workload::AppEvent;

/// The action kinds this module handles.
pub const SWARM_ACTIONS: [&str; 2] = ["seed", "get"];

/// Bytes of one chunk (a DB_DATA payload) of a seeded file.
const CHUNK: u64 = 486;

/// What a resumed download holds of `read` bytes: the whole chunks (a partial last chunk
/// is read again).
fn held_bytes(read: u64) -> u64 {
    read / CHUNK * CHUNK
}

/// Width of a throughput bin, seconds.
pub const BIN_S: u64 = 5;

/// How long a `get` waits for something to be seeded before it looks again.
const WAIT_FOR_SEED: Duration = Duration::from_secs(5);

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Byte `i` of the seeded content (no period: every chunk differs, so a chunk served at
/// the wrong index cannot pass for the right one).
pub fn content_byte(i: u64) -> u8 {
    splitmix(i / 8).to_le_bytes()[(i % 8) as usize]
}

/// The first `size` bytes of the seeded content.
pub fn content(size: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(size as usize);
    let mut w = 0;
    while (v.len() as u64) < size {
        let want = (size - v.len() as u64).min(8) as usize;
        v.extend_from_slice(&splitmix(w).to_le_bytes()[..want]);
        w += 1;
    }
    v
}

/// The offset of the first byte of `buf` (read at `offset`) that differs from the content.
fn first_wrong(offset: u64, buf: &[u8]) -> Option<u64> {
    let mut i = 0usize;
    while i < buf.len() {
        let at = offset + i as u64;
        if at.is_multiple_of(8) && buf.len() - i >= 8 {
            let want = splitmix(at / 8).to_le_bytes();
            if buf[i..i + 8] != want {
                let k = (0..8).find(|&k| buf[i + k] != want[k]).unwrap_or(0);
                return Some(at + k as u64);
            }
            i += 8;
        } else {
            if buf[i] != content_byte(at) {
                return Some(at);
            }
            i += 1;
        }
    }
    None
}

/// A swarm task.
#[derive(Debug, Clone, PartialEq)]
pub enum SwarmJob {
    /// Seed `bytes` of content.
    Seed {
        /// Size.
        bytes: u64,
    },
    /// Fetch what was seeded.
    Get {
        /// Only resume a download this host started in an earlier life (restarts).
        resume_only: bool,
    },
}

impl SwarmJob {
    /// The job an action describes, if it is a swarm action.
    pub fn from_action(kind: &str, bytes: Option<u64>, resume: bool) -> Option<SwarmJob> {
        match kind {
            "seed" => Some(SwarmJob::Seed {
                bytes: bytes.unwrap_or(1_000_000),
            }),
            "get" => Some(SwarmJob::Get {
                resume_only: resume,
            }),
            _ => None,
        }
    }
}

/// What the swarm workload reports (one trace line each; reads are not reported one by
/// one but binned in [`SwarmState`]).
#[derive(Debug, Clone, PartialEq)]
pub enum SwarmEvent {
    /// Content was seeded.
    Seeded {
        /// Its size.
        bytes: u64,
    },
    /// A download was asked for (`resume`: again, after an error).
    Asked {
        /// Resumed with `held`.
        resume: bool,
    },
    /// A download finished with every byte read and checked.
    Done {
        /// From the (first) request to the last byte, ms.
        ms: f64,
        /// Bytes read.
        bytes: u64,
        /// Every byte matched the content.
        exact: bool,
    },
    /// A download ended in error (it is resumed at once).
    Failed {
        /// The error.
        reason: String,
    },
}

/// What was seeded.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Its name.
    pub name: HashName,
    /// Its size.
    pub size: u64,
    /// The seeding host.
    pub seeder: String,
    /// When.
    pub at: Instant,
}

/// One downloader's download.
#[derive(Debug, Clone, Default)]
pub struct DlRecord {
    /// When its first `get` is due (kept across restarts: a downloader restarted before
    /// its arrival time still asks then).
    pub planned: Option<Instant>,
    /// When it was first asked for.
    pub asked: Option<Instant>,
    /// When the manifest was verified.
    pub info: Option<Instant>,
    /// When the last byte was read.
    pub done: Option<Instant>,
    /// Bytes read in order so far (what the application kept: it survives restarts).
    pub read: u64,
    /// The first byte that differed from the content.
    pub wrong_at: Option<u64>,
    /// Errors that made it resume.
    pub failures: u32,
    /// Times the host came back (restart) and resumed it.
    pub restarts: u32,
}

/// The swarm's global record (in the shared directory).
#[derive(Debug, Default)]
pub struct SwarmState {
    /// What was seeded.
    pub content: Option<Seeded>,
    /// Downloads by host.
    pub downloads: BTreeMap<String, DlRecord>,
    /// Bytes read by all downloaders, per [`BIN_S`] seconds.
    pub bins: Vec<u64>,
}

#[derive(Debug)]
struct Active {
    handle: DownloadHandle,
    buf: Vec<u8>,
}

/// One host's swarm application.
#[derive(Debug, Default)]
pub struct SwarmApp {
    active: Option<Active>,
}

fn ms_between(a: Instant, b: Instant) -> f64 {
    (b - a).as_nanos() as f64 / 1e6
}

impl SwarmApp {
    /// Start `job` at `node` (host `me`); `Some(d)`: try again in `d`.
    pub fn start(
        &mut self,
        now: Instant,
        job: &SwarmJob,
        me: &str,
        node: &mut Node,
        dir: &SharedDirectory,
        emit: &mut dyn FnMut(AppEvent),
    ) -> Option<Duration> {
        match job {
            SwarmJob::Seed { bytes } => {
                let cmd = Command::Seed {
                    data: content(*bytes),
                    mime_type: "application/octet-stream".into(),
                    key: None,
                };
                match node.command(now, cmd) {
                    Ok(CommandOk::Content(n)) => {
                        let name = HashName::new(&n).expect("a 20-byte name");
                        dir.borrow_mut().swarm.content = Some(Seeded {
                            name,
                            size: *bytes,
                            seeder: me.to_string(),
                            at: now,
                        });
                        emit(AppEvent::Swarm(SwarmEvent::Seeded { bytes: *bytes }));
                    }
                    other => emit(AppEvent::Refused(format!("seed: {other:?}"))),
                }
                None
            }
            SwarmJob::Get { resume_only } => {
                if self.active.is_some() {
                    return None;
                }
                let name = dir.borrow().swarm.content.as_ref().map(|c| c.name.clone());
                let Some(name) = name else {
                    return (!resume_only).then_some(WAIT_FOR_SEED);
                };
                // A host that asked before (in an earlier life: a restart) resumes from
                // what it read, as the CLI resumes from its `.part` file; one that has
                // finished does nothing.
                let read = {
                    let mut d = dir.borrow_mut();
                    let r = d.swarm.downloads.entry(me.to_string()).or_default();
                    if r.done.is_some() {
                        return None;
                    }
                    if *resume_only && r.asked.is_none() {
                        // Restarted before its first `get`: it asks at its planned time.
                        match r.planned {
                            Some(t) if t > now => return Some(t - now),
                            Some(_) => {}
                            None => return None,
                        }
                    }
                    if r.asked.is_some() {
                        r.restarts += 1;
                    }
                    r.asked.get_or_insert(now);
                    r.read = held_bytes(r.read);
                    r.read
                };
                self.ask(now, name, read, node, emit);
                None
            }
        }
    }

    fn ask(
        &mut self,
        now: Instant,
        name: HashName,
        read: u64,
        node: &mut Node,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        // What was read is whole chunks but (maybe) the last: those are held.
        let held_chunks = read / CHUNK;
        let held = if held_chunks > 0 {
            vec![(0, held_chunks)]
        } else {
            Vec::new()
        };
        let resume = read > 0;
        match node.command(
            now,
            Command::Get {
                hash_name: name,
                held,
            },
        ) {
            Ok(CommandOk::Download(handle)) => {
                self.active = Some(Active {
                    handle,
                    buf: vec![0; 1 << 16],
                });
                emit(AppEvent::Swarm(SwarmEvent::Asked { resume }));
            }
            other => emit(AppEvent::Refused(format!("get: {other:?}"))),
        }
    }

    /// React to a node's content events.
    pub fn on_event(
        &mut self,
        now: Instant,
        event: &Event,
        me: &str,
        node: &mut Node,
        dir: &SharedDirectory,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        match event {
            Event::ContentInfo { handle, .. } if *handle == a.handle => {
                let mut d = dir.borrow_mut();
                let r = d.swarm.downloads.entry(me.to_string()).or_default();
                r.info.get_or_insert(now);
            }
            Event::ContentReadable(h) if *h == a.handle => {
                let mut got = 0u64;
                let mut d = dir.borrow_mut();
                let r = d.swarm.downloads.entry(me.to_string()).or_default();
                while let Some((off, n)) = node.read_content(a.handle, &mut a.buf) {
                    if off != r.read && r.wrong_at.is_none() {
                        // Out of order, or a gap: wrong from where we expected the next.
                        r.wrong_at = Some(r.read.min(off));
                    }
                    if r.wrong_at.is_none()
                        && let Some(w) = first_wrong(off, &a.buf[..n])
                    {
                        r.wrong_at = Some(w);
                    }
                    r.read = off + n as u64;
                    got += n as u64;
                }
                let bin = (now.as_nanos() / 1_000_000_000 / BIN_S) as usize;
                if d.swarm.bins.len() <= bin {
                    d.swarm.bins.resize(bin + 1, 0);
                }
                d.swarm.bins[bin] += got;
            }
            Event::ContentDone { handle, result } if *handle == a.handle => {
                self.active = None;
                let (size, name) = {
                    let d = dir.borrow();
                    match &d.swarm.content {
                        Some(c) => (c.size, c.name.clone()),
                        None => return,
                    }
                };
                let mut d = dir.borrow_mut();
                let r = d.swarm.downloads.entry(me.to_string()).or_default();
                match result {
                    Ok(()) => {
                        r.done = Some(now);
                        let exact = r.read == size && r.wrong_at.is_none();
                        let ms = r.asked.map_or(0.0, |t| ms_between(t, now));
                        let bytes = r.read;
                        drop(d);
                        emit(AppEvent::Swarm(SwarmEvent::Done { ms, bytes, exact }));
                    }
                    Err(e) => {
                        r.failures += 1;
                        r.read = held_bytes(r.read);
                        let read = r.read;
                        drop(d);
                        emit(AppEvent::Swarm(SwarmEvent::Failed {
                            reason: format!("{e:?}"),
                        }));
                        self.ask(now, name, read, node, emit);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The world's event hook for swarm events.
pub fn record(e: &SwarmEvent, m: &mut Metrics) {
    match e {
        SwarmEvent::Seeded { bytes } => m.count("swarm/seeded_bytes", *bytes),
        SwarmEvent::Asked { resume } => {
            m.count(
                if *resume {
                    "swarm/resumed"
                } else {
                    "swarm/asked"
                },
                1,
            );
        }
        SwarmEvent::Done { exact, .. } => {
            m.count(
                if *exact {
                    "swarm/done_exact"
                } else {
                    "swarm/done_corrupt"
                },
                1,
            );
        }
        SwarmEvent::Failed { reason } => m.count(&format!("swarm/failed/{reason}"), 1),
    }
}

/// Per-host figures the end of a run needs from the world.
#[derive(Debug, Default)]
pub struct HostFigures {
    /// `OrdbBytesServed` by host.
    pub served: BTreeMap<String, (HostRole, u64)>,
    /// `DownloadTampering` summed over hosts.
    pub tampering: u64,
    /// `OrdbTamperCaught` summed over hosts (tampering caught by a relaying ORDB).
    pub relay_caught: u64,
    /// `DownloadCircuitSlow` summed over hosts.
    pub slow: u64,
    /// `DownloadCircuitStalled` summed over hosts.
    pub stalled: u64,
    /// `DownloadCircuitStrikes` summed over hosts.
    pub strikes: u64,
    /// `DownloadHedge` summed over hosts.
    pub hedges: u64,
    /// `DownloadHedgeWon` summed over hosts.
    pub hedges_won: u64,
    /// `DownloadTailSplit` summed over hosts.
    pub tail_splits: u64,
}

impl HostFigures {
    /// Add one live host's counters.
    pub fn add(&mut self, name: &str, role: HostRole, node: &Node) {
        let c = node.counters();
        let served = c.get(Count::OrdbBytesServed);
        if served > 0 {
            self.served.insert(name.to_string(), (role, served));
        }
        self.tampering += c.get(Count::DownloadTampering);
        self.relay_caught += c.get(Count::OrdbTamperCaught);
        self.slow += c.get(Count::DownloadCircuitSlow);
        self.stalled += c.get(Count::DownloadCircuitStalled);
        self.strikes += c.get(Count::DownloadCircuitStrikes);
        self.hedges += c.get(Count::DownloadHedge);
        self.hedges_won += c.get(Count::DownloadHedgeWon);
        self.tail_splits += c.get(Count::DownloadTailSplit);
    }
}

/// One row of the per-download table.
#[derive(Debug, Clone)]
struct Row {
    host: String,
    asked_s: f64,
    info_s: Option<f64>,
    done_s: Option<f64>,
    completion_s: Option<f64>,
    rate_bps: Option<f64>,
    pct_capacity: Option<f64>,
    after_formed: bool,
    exact: bool,
    failures: u32,
    restarts: u32,
}

fn secs(t: Instant) -> f64 {
    t.as_nanos() as f64 / 1e9
}

/// Turn the swarm record into metrics (counts, samples) and write `swarm_downloads.csv`,
/// `swarm.json` and the swarm plots into `out` (when given). `down_bps`/`up_bps` are the
/// hosts' link capacities (the swarm scenarios give every host the same). Does nothing
/// when nothing was seeded.
pub fn finish(
    dir: &SharedDirectory,
    hosts: &HostFigures,
    down_bps: u64,
    up_bps: u64,
    metrics: &mut Metrics,
    out: Option<&Path>,
) -> Result<(), PlotError> {
    let d = dir.borrow();
    let s = &d.swarm;
    let Some(c) = &s.content else {
        return Ok(());
    };
    // The swarm has formed when a tenth of the downloaders (at least one) hold the file.
    let mut dones: Vec<Instant> = s.downloads.values().filter_map(|r| r.done).collect();
    dones.sort();
    let formed_k = s.downloads.len().div_ceil(10).max(1);
    let formed = dones.get(formed_k - 1).copied();
    let cap = down_bps.max(1) as f64;
    let rows: Vec<Row> = s
        .downloads
        .iter()
        .map(|(host, r)| {
            let asked = r.asked.unwrap_or(Instant::ZERO);
            let completion_s = r.done.map(|t| (t - asked).as_secs_f64());
            // Rate from the verified manifest to the last byte: the transfer itself.
            let start = r.info.unwrap_or(asked);
            let rate_bps = r
                .done
                .map(|t| c.size as f64 / (t - start).as_secs_f64().max(1e-3));
            Row {
                host: host.clone(),
                asked_s: secs(asked),
                info_s: r.info.map(secs),
                done_s: r.done.map(secs),
                completion_s,
                rate_bps,
                pct_capacity: rate_bps.map(|x| 100.0 * x / cap),
                after_formed: formed.is_some_and(|f| asked >= f),
                exact: r.done.is_some() && r.read == c.size && r.wrong_at.is_none(),
                failures: r.failures,
                restarts: r.restarts,
            }
        })
        .collect();
    for r in &rows {
        if let Some(x) = r.completion_s {
            metrics.sample("swarm_completion_s", x);
        }
        if let Some(p) = r.pct_capacity {
            metrics.sample("swarm_pct_of_bottleneck", p);
            if r.after_formed {
                metrics.sample("swarm_pct_of_bottleneck_after_formed", p);
            }
        }
    }
    let seeder_bytes = hosts.served.get(&c.seeder).map_or(0, |x| x.1);
    let peer_bytes: u64 = hosts
        .served
        .iter()
        .filter(|(h, _)| **h != c.seeder)
        .map(|(_, x)| x.1)
        .sum();
    metrics.count("swarm/downloaders", rows.len() as u64);
    metrics.count("swarm/completed", dones.len() as u64);
    metrics.count(
        "swarm/restarts",
        rows.iter().map(|r| u64::from(r.restarts)).sum(),
    );
    metrics.count(
        "swarm/exact",
        rows.iter().filter(|r| r.exact).count() as u64,
    );
    metrics.count("swarm/size", c.size);
    metrics.count("swarm/seeder_bytes_served", seeder_bytes);
    metrics.count("swarm/peer_bytes_served", peer_bytes);
    metrics.count(
        "swarm/peers_serving",
        hosts.served.keys().filter(|h| **h != c.seeder).count() as u64,
    );
    metrics.count("swarm/tamper_detections", hosts.tampering);
    metrics.count("swarm/tamper_caught_by_ordbs", hosts.relay_caught);
    metrics.count("swarm/circuits_slow", hosts.slow);
    metrics.count("swarm/circuits_stalled", hosts.stalled);
    metrics.count("swarm/circuits_strikes", hosts.strikes);
    metrics.count("swarm/hedges", hosts.hedges);
    metrics.count("swarm/hedges_won", hosts.hedges_won);
    metrics.count("swarm/tail_splits", hosts.tail_splits);
    metrics.count("swarm/down_bps", down_bps);
    metrics.count("swarm/up_bps", up_bps);
    if let Some(f) = formed {
        metrics.count("swarm/formed_ms", f.as_nanos() / 1_000_000);
    }
    let Some(out) = out else {
        return Ok(());
    };
    std::fs::create_dir_all(out).map_err(|e| PlotError(e.to_string()))?;
    // Per-download CSV.
    let mut csv = String::from(
        "host,asked_s,info_s,done_s,completion_s,rate_Bps,pct_of_bottleneck,after_swarm_formed,byte_exact,resumes,restarts\n",
    );
    let opt = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.3}"));
    for r in &rows {
        let _ = writeln!(
            csv,
            "{},{:.3},{},{},{},{},{},{},{},{},{}",
            r.host,
            r.asked_s,
            opt(r.info_s),
            opt(r.done_s),
            opt(r.completion_s),
            opt(r.rate_bps),
            opt(r.pct_capacity),
            r.after_formed,
            r.exact,
            r.failures,
            r.restarts
        );
    }
    write(out.join("swarm_downloads.csv"), &csv)?;
    // Throughput over time against capacity.
    let bin = BIN_S as f64;
    let n_bins = s.bins.len();
    let active_at = |t: f64| {
        rows.iter()
            .filter(|r| r.asked_s <= t && r.done_s.is_none_or(|d| d > t))
            .count() as f64
    };
    let holders_at = |t: f64| {
        1.0 + rows
            .iter()
            .filter(|r| r.done_s.is_some_and(|d| d <= t))
            .count() as f64
    };
    let mut agg = Vec::with_capacity(n_bins);
    let mut demand = Vec::with_capacity(n_bins);
    let mut supply = Vec::with_capacity(n_bins);
    let mut tcsv = String::from(
        "t_s,read_MBps,downloaders_active,demand_capacity_MBps,holders,holder_uplink_MBps\n",
    );
    for (i, b) in s.bins.iter().enumerate() {
        let t = i as f64 * bin;
        let mid = t + bin / 2.0;
        let mbps = *b as f64 / bin / 1e6;
        let act = active_at(mid);
        let hold = holders_at(mid);
        agg.push((t, mbps));
        demand.push((t, act * down_bps as f64 / 1e6));
        supply.push((t, hold * up_bps as f64 / 1e6));
        let _ = writeln!(
            tcsv,
            "{t:.0},{mbps:.4},{act},{:.4},{hold},{:.4}",
            act * down_bps as f64 / 1e6,
            hold * up_bps as f64 / 1e6
        );
    }
    write(out.join("swarm_throughput.csv"), &tcsv)?;
    crate::plot::time_series_svg(
        &out.join("swarm_throughput.svg"),
        "aggregate download rate vs capacity",
        "MB/s",
        &[
            ("read by downloaders", &agg),
            ("downlinks of active downloaders", &demand),
            ("uplinks of whole-file holders", &supply),
        ],
    )?;
    let completions: Vec<f64> = rows.iter().filter_map(|r| r.completion_s).collect();
    crate::plot::cdf_svg(
        &out.join("swarm_completion.svg"),
        &format!(
            "download completion ({} of {})",
            completions.len(),
            rows.len()
        ),
        "seconds from request to last byte",
        &completions,
    )?;
    let pct: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.asked_s, r.pct_capacity?)))
        .collect();
    crate::plot::scatter_svg(
        &out.join("swarm_rate_vs_capacity.svg"),
        "download rate, % of the bottleneck capacity, by arrival",
        "arrival (s)",
        "% of bottleneck",
        &pct,
        formed.map(secs),
    )?;
    let mut served: Vec<(String, f64)> = vec![("seeder".into(), seeder_bytes as f64 / 1e6)];
    let mut others: Vec<(&String, &(HostRole, u64))> = hosts
        .served
        .iter()
        .filter(|(h, _)| **h != c.seeder)
        .collect();
    others.sort_by_key(|(_, x)| std::cmp::Reverse(x.1));
    served.push(("all other peers".into(), peer_bytes as f64 / 1e6));
    for (h, x) in others.iter().take(8) {
        served.push(((*h).clone(), x.1 as f64 / 1e6));
    }
    crate::plot::bars_svg(
        &out.join("swarm_bytes_served.svg"),
        "DB_DATA served from own store (MB)",
        "MB",
        &served,
    )?;
    // JSON summary.
    let c_ = |k: &str| metrics.counts.get(k).copied().unwrap_or(0);
    let p = |k: &str| metrics.samples.get(k).and_then(|v| percentiles(v));
    let mean = |k: &str| {
        metrics
            .samples
            .get(k)
            .filter(|v| !v.is_empty())
            .map(|v| v.iter().sum::<f64>() / v.len() as f64)
    };
    let fmt = |x: Option<f64>| x.map_or("null".to_string(), |v| format!("{v:.3}"));
    let comp = p("swarm_completion_s");
    let json = format!(
        "{{\"size\":{},\"downloaders\":{},\"completed\":{},\"byte_exact\":{},\"completion_s_p50\":{},\"completion_s_p90\":{},\"pct_of_bottleneck_mean\":{},\"pct_of_bottleneck_after_formed_mean\":{},\"swarm_formed_s\":{},\"seeder_bytes_served\":{},\"peer_bytes_served\":{},\"tamper_detections\":{},\"tamper_caught_by_ordbs\":{},\"circuits_slow\":{},\"circuits_stalled\":{},\"circuits_strikes\":{},\"resumes\":{},\"restarts\":{},\"down_bps\":{},\"up_bps\":{}}}\n",
        c.size,
        rows.len(),
        dones.len(),
        c_("swarm/exact"),
        fmt(comp.map(|p| p.p50)),
        fmt(comp.map(|p| p.p90)),
        fmt(mean("swarm_pct_of_bottleneck")),
        fmt(mean("swarm_pct_of_bottleneck_after_formed")),
        fmt(formed.map(secs)),
        seeder_bytes,
        peer_bytes,
        hosts.tampering,
        hosts.relay_caught,
        hosts.slow,
        hosts.stalled,
        hosts.strikes,
        c_("swarm/resumed"),
        c_("swarm/restarts"),
        down_bps,
        up_bps
    );
    write(out.join("swarm.json"), &json)?;
    Ok(())
}

fn write(path: std::path::PathBuf, text: &str) -> Result<(), PlotError> {
    std::fs::write(&path, text).map_err(|e| PlotError(format!("{}: {e}", path.display())))
}

/// The swarm lines of the summary.
pub fn render(metrics: &Metrics, s: &mut String) {
    let c = |k: &str| metrics.counts.get(k).copied().unwrap_or(0);
    let n = c("swarm/downloaders");
    if n == 0 && c("swarm/seeded_bytes") == 0 {
        return;
    }
    let _ = writeln!(
        s,
        "swarm: {} B seeded; {n} downloaders, completed {}, byte-exact {}, corrupt {}, resumes {} (after {} restarts of a downloader)",
        c("swarm/size"),
        c("swarm/completed"),
        c("swarm/exact"),
        c("swarm/done_corrupt"),
        c("swarm/resumed"),
        c("swarm/restarts")
    );
    let v = |k: &str| metrics.samples.get(k).map_or(&[][..], |v| v.as_slice());
    let mut comp: Vec<f64> = v("swarm_completion_s").to_vec();
    comp.sort_by(f64::total_cmp);
    if let (Some(p50), Some(p90), Some(max)) = (
        quantile(&comp, 0.5),
        quantile(&comp, 0.9),
        comp.last().copied(),
    ) {
        let _ = writeln!(
            s,
            "  completion time p50 {p50:.1} s  p90 {p90:.1} s  max {max:.1} s"
        );
    }
    let mean = |k: &str| {
        let x = v(k);
        (!x.is_empty()).then(|| x.iter().sum::<f64>() / x.len() as f64)
    };
    let formed = metrics.counts.get("swarm/formed_ms");
    let _ = writeln!(
        s,
        "  rate vs bottleneck ({} B/s down): mean {:.1}% all, {:.1}% of {} started after the swarm formed ({})",
        c("swarm/down_bps"),
        mean("swarm_pct_of_bottleneck").unwrap_or(0.0),
        mean("swarm_pct_of_bottleneck_after_formed").unwrap_or(0.0),
        v("swarm_pct_of_bottleneck_after_formed").len(),
        formed.map_or("never".to_string(), |t| format!(
            "at {:.1} s",
            *t as f64 / 1e3
        )),
    );
    let (sb, pb) = (c("swarm/seeder_bytes_served"), c("swarm/peer_bytes_served"));
    let total = (sb + pb).max(1) as f64;
    let _ = writeln!(
        s,
        "  served from own store: seeder {:.1} MB ({:.1}%), {} other peers {:.1} MB ({:.1}%)",
        sb as f64 / 1e6,
        100.0 * sb as f64 / total,
        c("swarm/peers_serving"),
        pb as f64 / 1e6,
        100.0 * pb as f64 / total
    );
    let _ = writeln!(
        s,
        "  tampering detected by downloads {}, by relaying ORDBs {} (circuits dropped); circuits replaced as slow {}, stalled {}, after strikes {}",
        c("swarm/tamper_detections"),
        c("swarm/tamper_caught_by_ordbs"),
        c("swarm/circuits_slow"),
        c("swarm/circuits_stalled"),
        c("swarm/circuits_strikes")
    );
    let _ = writeln!(
        s,
        "  ranges asked twice: hedges {} ({} won by the second GET), end-game splits {}",
        c("swarm/hedges"),
        c("swarm/hedges_won"),
        c("swarm/tail_splits")
    );
}
