//! Scenarios of real nodes in the simulator (issue 4): a hundred nodes building circuits
//! and moving data, faults that close exactly the affected circuits, determinism, and the
//! rendered trace of a small scenario.

use std::collections::BTreeMap;
use std::path::Path;

use onionpeer_sim::run::{RunOptions, failures, run_checked, run_scenario_str};
use onionpeer_sim::{Report, Scenario, render_summary};

fn run(text: &str, opts: &RunOptions) -> Report {
    let seed = opts
        .seed
        .unwrap_or_else(|| Scenario::from_toml(text).unwrap().seed);
    run_scenario_str(text, Path::new("."), opts)
        .unwrap_or_else(|e| panic!("seed {seed} (SIM_SEED={seed}): {e}"))
}

fn count(r: &Report, k: &str) -> u64 {
    r.metrics.counts.get(k).copied().unwrap_or(0)
}

/// The seed to use: `SIM_SEED` if set (to reproduce a failure), else `default`.
fn seed_or(default: u64) -> u64 {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

const HUNDRED: &str = r#"
seed = 3
duration_ms = 20000
[topology]
generator = "regions"
regions = ["eu", "us", "asia"]
nodes_per_region = 3
intra_ms = 5.0
inter_ms = 50.0
jitter_ms = 2.0
bandwidth_bps = 5000000
[[group]]
prefix = "client"
count = 50
role = "client"
[[group]]
prefix = "relay"
count = 40
role = "relay"
[[group]]
prefix = "exit"
count = 8
role = "exit"
[[group]]
prefix = "echo"
count = 1
role = "echo"
[[group]]
prefix = "web"
count = 1
role = "source"
[[action]]
at_ms = 0
kind = "build_circuit"
role = "client"
every_ms = 3000
count = 2
[[action]]
at_ms = 0
kind = "stream"
role = "client"
service = "echo0"
bytes = 30000
every_ms = 4000
count = 2
[[action]]
at_ms = 0
kind = "stream"
role = "client"
service = "web0"
bytes = 100000
every_ms = 5000
count = 2
"#;

#[test]
fn sim_hundred_nodes_build_circuits_and_move_data_intact() {
    let seed = seed_or(3);
    let r = run(
        HUNDRED,
        &RunOptions {
            seed: Some(seed),
            ..RunOptions::default()
        },
    );
    let summary = render_summary(&r);
    let ctx = format!("seed {seed} (rerun with SIM_SEED={seed})\n{summary}");
    // 50 clients × (2 plain circuits + 2 echo streams + 2 source streams).
    assert_eq!(count(&r, "circuits_built"), 300, "{ctx}");
    assert_eq!(count(&r, "streams_done"), 200, "{ctx}");
    assert_eq!(
        count(&r, "stream_bytes"),
        50 * 2 * (30_000 + 100_000),
        "{ctx}"
    );
    assert!(failures(&r).is_empty(), "{ctx}");
    assert!(r.node_counters.is_empty(), "{ctx}");
    assert_eq!(r.metrics.samples["circuit_build_ms"].len(), 300);
    assert!(summary.contains("circuit_build_ms") && summary.contains("p99"));
}

/// Four clients with fixed paths, each fetching 1.5 MB from a source over 1 MB/s host
/// links. Mid-transfer, relay1 crashes (client0's path) and client2 is cut off from its
/// first hop relay4 until the partition closes the link. client1 and client3 use other
/// relays (client3 shares exit0 with client0).
const FAULTS: &str = r#"
seed = 5
duration_ms = 15000
[topology]
generator = "full_mesh"
nodes = 1
latency_ms = [10.0, 10.0]
bandwidth_bps = 1000000
[config]
partition_close_ms = 1000
[[group]]
prefix = "client"
count = 4
role = "client"
[[group]]
prefix = "relay"
count = 6
role = "relay"
[[group]]
prefix = "exit"
count = 2
role = "exit"
[[group]]
prefix = "web"
count = 1
role = "source"
[[action]]
at_ms = 0
kind = "stream"
host = "client0"
path = ["relay0", "relay1", "exit0"]
service = "web0"
bytes = 1500000
[[action]]
at_ms = 0
kind = "stream"
host = "client1"
path = ["relay2", "relay3", "exit1"]
service = "web0"
bytes = 1500000
[[action]]
at_ms = 0
kind = "stream"
host = "client2"
path = ["relay4", "relay5", "exit1"]
service = "web0"
bytes = 1500000
[[action]]
at_ms = 0
kind = "stream"
host = "client3"
path = ["relay3", "relay2", "exit0"]
service = "web0"
bytes = 1500000
[[action]]
at_ms = 2000
kind = "crash"
host = "relay1"
[[action]]
at_ms = 2000
kind = "partition"
a = ["client2"]
b = ["relay4"]
"#;

#[test]
fn sim_crash_and_partition_close_exactly_the_affected_circuits() {
    let r = run(FAULTS, &RunOptions::default());
    let summary = render_summary(&r);
    let expected: BTreeMap<String, u64> = [
        ("circuits_built", 4),
        ("streams_done", 2),
        ("stream_bytes", 3_000_000),
        // client0 and client2: their circuit closes under the stream.
        ("circuit_lost/CHANNEL_CLOSED", 2),
        ("stream_failed/DESTROY", 2),
        // relay0 and exit0 lose their links to relay1; client2 and relay4 the link
        // across the partition.
        ("link_down/TransportError", 4),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(r.metrics.counts, expected, "{summary}");
    // Nodes off the two broken paths count nothing. On them, the only count allowed is
    // cells that were in flight when the circuit was destroyed (UnknownCircuit).
    let broken = [
        "client0", "relay0", "relay1", "exit0", "client2", "relay4", "relay5", "exit1",
    ];
    for (node, counters) in &r.node_counters {
        assert!(
            broken.contains(&node.as_str()),
            "{node}: {counters:?}\n{summary}"
        );
        assert!(
            counters.keys().all(|k| k == "UnknownCircuit"),
            "{node}: {counters:?}"
        );
    }
    assert_eq!(r.summary.closes.get("crash"), Some(&2), "{summary}");
    assert_eq!(r.summary.closes.get("partition"), Some(&2), "{summary}");
}

const SMALL: &str = include_str!("../../sim/scenarios/small.toml");

#[test]
fn sim_same_seed_same_hash_different_seed_different_hash() {
    let short = SMALL.replace("duration_ms = 20000", "duration_ms = 5000");
    let s = Scenario::from_toml(&short).unwrap();
    let opts = RunOptions {
        seed: Some(seed_or(1)),
        ..RunOptions::default()
    };
    // Twice, compared line by line.
    let a = run_checked(&s, Path::new("."), &opts).expect("deterministic");
    let b = run(&short, &opts);
    assert_eq!(a.trace_hash, b.trace_hash);
    let other = RunOptions {
        seed: Some(opts.seed.unwrap() + 1),
        ..RunOptions::default()
    };
    assert_ne!(a.trace_hash, run(&short, &other).trace_hash);
}

const TINY: &str = r#"
seed = 9
duration_ms = 3000
[topology]
generator = "full_mesh"
nodes = 1
latency_ms = [10.0, 10.0]
[[group]]
prefix = "client"
count = 1
role = "client"
[[group]]
prefix = "relay"
count = 2
role = "relay"
[[group]]
prefix = "exit"
count = 1
role = "exit"
[[group]]
prefix = "echo"
count = 1
role = "echo"
[[action]]
at_ms = 100
kind = "stream"
host = "client0"
path = ["relay0", "relay1", "exit0"]
service = "echo0"
bytes = 3000
"#;

#[test]
fn sim_small_scenario_trace() {
    let r = run(
        TINY,
        &RunOptions {
            keep_lines: true,
            ..RunOptions::default()
        },
    );
    assert_eq!(count(&r, "streams_done"), 1, "{}", render_summary(&r));
    insta::assert_snapshot!(r.lines.join("\n"));
}
