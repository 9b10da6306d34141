//! Real core nodes in the simulator: memory per idle node, simulated events per
//! wall-clock second, and the time to simulate an hour of 1,000 nodes building circuits.
//!
//! A plain (harness = false) bench that prints its figures. Run it in release:
//! `nice cargo bench -p onionpeer-sim --bench nodes` (`SIM_BENCH_NODES=1000` to skip the
//! 10,000-node round, `SIM_BENCH_HOUR=0` to skip the hour).
//!
//! Memory is counted by a global allocator that tallies live heap bytes.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant as WallClock;

use onionpeer_sim::Scenario;
use onionpeer_sim::node::{Directory, SharedDirectory, SimPeer};
use onionpeer_sim::run::{record_metrics, render_summary};
use onionpeer_sim::topology::Topology;
use onionpeer_sim::{Instant, SimConfig, Trace, World};

/// The system allocator, counting live bytes and the peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let now = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// `n` idle nodes (90% clients, 9% relays, 1% exits) in a world: bytes per node.
fn idle(n: usize) {
    let before = LIVE.load(Ordering::Relaxed);
    let start = WallClock::now();
    let dir: SharedDirectory = SharedDirectory::new(Directory::default().into());
    let factory_dir = SharedDirectory::clone(&dir);
    let topology = Topology::full_mesh(50, (5.0, 80.0), 1.0, 0, 1);
    let mut world = World::new(
        1u64,
        SimConfig::default(),
        topology,
        Trace::new(),
        move |s| SimPeer::new(s, &factory_dir, &Default::default()),
    );
    for i in 0..n {
        let role = match i % 100 {
            0 => "exit",
            1..=9 => "relay",
            _ => "client",
        };
        world.add_host(&format!("h{i}"), role, None);
    }
    world.run_until(Instant::from_millis(1000));
    let bytes = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    println!(
        "idle {n:>6} nodes: {:>8.1} MiB heap, {:>6} bytes/node, created in {:.1} s",
        mib(bytes),
        bytes / n,
        start.elapsed().as_secs_f64()
    );
    drop(world);
}

/// A scenario of `n` nodes (80% clients building a 3-hop circuit every `every_ms`, 18%
/// relays, 2% exits) for `secs` simulated seconds.
fn circuits_scenario(n: usize, every_ms: u64, secs: u64) -> String {
    let (clients, exits) = (n * 80 / 100, (n * 2 / 100).max(1));
    let relays = n - clients - exits;
    format!(
        r#"
seed = 1
duration_ms = {ms}
[topology]
generator = "regions"
regions = ["eu", "us", "asia", "sa"]
nodes_per_region = 5
intra_ms = 8.0
inter_ms = 60.0
jitter_ms = 2.0
[[group]]
prefix = "client"
count = {clients}
role = "client"
[[group]]
prefix = "relay"
count = {relays}
role = "relay"
[[group]]
prefix = "exit"
count = {exits}
role = "exit"
[[action]]
at_ms = 0
kind = "build_circuit"
role = "client"
every_ms = {every_ms}
"#,
        ms = secs * 1000
    )
}

fn run_circuits(label: &str, n: usize, every_ms: u64, secs: u64) {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let start = WallClock::now();
    let scenario = Scenario::from_toml(&circuits_scenario(n, every_ms, secs)).expect("toml");
    let dir: SharedDirectory = SharedDirectory::new(Directory::default().into());
    let factory_dir = SharedDirectory::clone(&dir);
    let mut world = scenario
        .build(std::path::Path::new("."), Trace::new(), move |s| {
            SimPeer::new(s, &factory_dir, &Default::default())
        })
        .expect("scenario");
    world.on_action(|h: &mut SimPeer, ctx, a| h.on_action(ctx, a));
    world.on_event(record_metrics);
    let created = start.elapsed().as_secs_f64();
    let start = WallClock::now();
    world.run_until(scenario.end());
    let wall = start.elapsed().as_secs_f64();
    let r = world.finish();
    let events: u64 = r.summary.events.values().sum();
    println!(
        "{label}: {n} nodes (created in {created:.1} s), {secs} s simulated in {wall:.1} s \
         wall ({:.0}x real time), {events} events, {:.0} events/s, peak heap {:.0} MiB, \
         total {:.1} s",
        secs as f64 / wall,
        events as f64 / wall,
        mib(PEAK.load(Ordering::Relaxed)),
        created + wall
    );
    for line in render_summary(&r).lines().take(4) {
        println!("    {line}");
    }
}

fn main() {
    // `cargo test --benches` passes `--bench`-less args; only run under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("SIM_BENCH_NODES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10_000]);
    for &n in &sizes {
        idle(n);
    }
    for &n in &sizes {
        // One simulated minute, every client building a circuit every 10 minutes.
        run_circuits("events", n, 600_000, 60);
    }
    if std::env::var("SIM_BENCH_HOUR").map_or(true, |v| v != "0") {
        run_circuits("hour", 1000, 600_000, 3600);
    }
}
