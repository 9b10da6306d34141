//! End-to-end tests of the simulator with the test host.

mod common;

use std::collections::BTreeMap;

use common::run;
use onionpeer_sim::check_determinism;

fn lines_with<'a>(report: &'a onionpeer_sim::Report, word: &str) -> Vec<&'a str> {
    let lines = report.lines.iter().map(String::as_str);
    lines.filter(|l| l.contains(word)).collect()
}

/// The time, in seconds, of a trace line.
fn time_of(line: &str) -> f64 {
    line.split_whitespace().next().unwrap().parse().unwrap()
}

const JITTERY: &str = r#"
seed = SEED
duration_ms = 5000
[topology]
generator = "regions"
regions = ["eu", "us"]
nodes_per_region = 2
intra_ms = 5.0
inter_ms = 40.0
jitter_ms = 3.0
[config]
chunk_bytes = 1000
[[group]]
prefix = "h"
count = 4
role = "echo"
[[action]]
at_ms = 0
kind = "dial"
host = "h0"
to = "h3"
bytes = 50000
rounds = 3
[[action]]
at_ms = 10
kind = "dial"
host = "h1"
to = "h2"
bytes = 20000
"#;

#[test]
fn same_seed_same_trace_different_seed_different_trace() {
    let scenario = |seed: u64| JITTERY.replace("SEED", &seed.to_string());
    let hash = check_determinism(|| run(&scenario(1)).lines).expect("deterministic");
    assert_eq!(hash, run(&scenario(1)).trace_hash);
    assert_ne!(hash, run(&scenario(2)).trace_hash);
}

#[test]
fn jitter_never_reorders_a_stream() {
    let r = run(&JITTERY.replace("SEED", "3"));
    assert!(lines_with(&r, "Misordered").is_empty());
    // Three rounds on h0's link and one on h1's came back whole.
    assert_eq!(lines_with(&r, "Echoed").len(), 4, "{:#?}", r.lines);
}

const TWO_HOSTS: &str = r#"
seed = 1
duration_ms = 5000
[[topology.node]]
id = "a"
up_bps = BW
down_bps = BW
[[topology.node]]
id = "b"
up_bps = BW
down_bps = BW
[[topology.edge]]
a = "a"
b = "b"
latency_ms = LAT
[[group]]
prefix = "src"
count = 1
role = "echo"
nodes = ["a"]
[[group]]
prefix = "dst"
count = 1
role = "ROLE"
nodes = ["b"]
[[action]]
at_ms = 0
kind = "dial"
host = "src0"
to = "dst0"
bytes = BYTES
"#;

fn two_hosts(bw: u64, lat_ms: u64, bytes: u64, role: &str) -> String {
    TWO_HOSTS
        .replace("BW", &bw.to_string())
        .replace("LAT", &lat_ms.to_string())
        .replace("BYTES", &bytes.to_string())
        .replace("ROLE", role)
}

#[test]
fn handshake_and_echo_take_round_trips() {
    // Unlimited bandwidth, 50 ms each way: up after 100 ms, echo after 100 ms more.
    let r = run(&two_hosts(0, 50, 10, "echo"));
    let up = lines_with(&r, " up ");
    assert_eq!(time_of(up[0]), 0.1);
    let echoed = lines_with(&r, "Echoed");
    assert!(echoed[0].contains("rtt_ms: 100"), "{echoed:?}");
    assert_eq!(time_of(echoed[0]), 0.2);
}

#[test]
fn one_megabyte_over_one_megabyte_per_second_takes_a_second_plus_latency() {
    let r = run(&two_hosts(1_000_000, 10, 1_000_000, "sink"));
    let up = time_of(lines_with(&r, " up ")[0]);
    let done = lines_with(&r, "Received");
    let last = done
        .iter()
        .find(|l| l.contains("total: 1000000"))
        .expect("all bytes");
    let took = time_of(last) - up;
    // 1 s of serialisation + 10 ms latency + the last chunk's downlink time.
    assert!((1.010..1.030).contains(&took), "took {took} s");
    assert_eq!(r.summary.bytes_delivered, 1_000_000);
}

#[test]
fn uplink_is_shared_between_links() {
    // Two 500 kB transfers from one host share its 1 MB/s uplink: both end near 1 s.
    let mut s = two_hosts(1_000_000, 10, 500_000, "sink");
    s.push_str(
        "[[action]]\nat_ms = 0\nkind = \"dial\"\nhost = \"src0\"\nto = \"dst0\"\nbytes = 500000\n",
    );
    let r = run(&s);
    let last = lines_with(&r, "recv").last().map(|l| time_of(l)).unwrap();
    assert!((1.02..1.05).contains(&last), "last byte at {last} s");
}

const THREE_HOSTS: &str = r#"
seed = 9
duration_ms = 20000
[topology]
generator = "full_mesh"
nodes = 3
latency_ms = [20.0, 20.0]
[config]
partition_close_ms = 2000
[[group]]
prefix = "h"
count = 3
role = "echo"
[[action]]
at_ms = 0
kind = "dial"
host = "h0"
to = "h1"
[[action]]
at_ms = 0
kind = "dial"
host = "h2"
to = "h1"
"#;

#[test]
fn partition_stalls_then_closes_only_crossing_links() {
    let mut s = THREE_HOSTS.to_string();
    s.push_str(
        r#"
[[action]]
at_ms = 1000
kind = "partition"
a = ["h0"]
b = ["h1"]
[[action]]
at_ms = 1500
kind = "dial"
host = "h0"
to = "h1"
"#,
    );
    let r = run(&s);
    let expected = BTreeMap::from([("partition".to_string(), 2)]);
    assert_eq!(r.summary.closes, expected, "{:#?}", r.lines);
    let closed = lines_with(&r, "closed");
    assert_eq!(closed.len(), 2);
    assert!(closed.iter().all(|l| time_of(l) == 3.0), "{closed:?}");
    // The dial across the partition failed after the dial timeout (3 s).
    let failed = lines_with(&r, "failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(time_of(failed[0]), 4.5);
    // h2's link was untouched.
    assert!(
        !r.lines
            .iter()
            .any(|l| l.contains(" h2 ") && l.contains("closed"))
    );
}

#[test]
fn healed_partition_releases_held_bytes_in_order() {
    let s = format!(
        "{THREE_HOSTS}{}",
        r#"
[[action]]
at_ms = 950
kind = "dial"
host = "h0"
to = "h1"
bytes = 3000
[[action]]
at_ms = 1000
kind = "partition"
a = ["h0"]
b = ["h1"]
oneway = true
[[action]]
at_ms = 1200
kind = "heal"
"#
    );
    // Up at 0.99 s; its bytes reach the partition at 1.01 s, wait for the heal at 1.2 s,
    // and come back 20 ms later. Nothing closes: the heal came before the timeout.
    let r = run(&s);
    assert!(r.summary.closes.is_empty(), "{:?}", r.summary.closes);
    let echoed = lines_with(&r, "Echoed");
    assert_eq!(echoed.len(), 3, "{:#?}", r.lines);
    assert_eq!(time_of(echoed[2]), 1.22, "{echoed:?}");
    assert!(lines_with(&r, "Misordered").is_empty());
}

#[test]
fn hold_then_release_delivers_in_order_at_release() {
    let s = format!(
        "{THREE_HOSTS}{}",
        r#"
[[action]]
at_ms = 450
kind = "dial"
host = "h0"
to = "h1"
bytes = 3000
[[action]]
at_ms = 500
kind = "hold"
a = "h0"
b = "h1"
[[action]]
at_ms = 1000
kind = "release"
a = "h0"
b = "h1"
"#
    );
    let r = run(&s);
    // The second link is up at 0.49 s; its bytes reach h1 at 0.51 s, during the hold,
    // and wait for the release.
    let echoed: Vec<_> = lines_with(&r, "Echoed");
    assert_eq!(echoed.len(), 3, "{:#?}", r.lines);
    assert_eq!(time_of(echoed[2]), 1.02, "{echoed:?}");
    assert!(lines_with(&r, "Misordered").is_empty());
}

#[test]
fn crash_closes_links_at_peers_and_restart_gives_a_fresh_host() {
    let mut s = THREE_HOSTS.to_string();
    s.push_str(
        r#"
[[action]]
at_ms = 1000
kind = "crash"
host = "h1"
[[action]]
at_ms = 2000
kind = "restart"
host = "h1"
[[action]]
at_ms = 2500
kind = "dial"
host = "h0"
to = "h1"
"#,
    );
    let r = run(&s);
    let expected = BTreeMap::from([("crash".to_string(), 2)]);
    assert_eq!(r.summary.closes, expected, "{:#?}", r.lines);
    let closed = lines_with(&r, "closed");
    assert!(closed.iter().all(|l| time_of(l) == 1.02), "{closed:?}");
    assert_eq!(lines_with(&r, " h1 start").len(), 2);
    // The restarted host accepts and echoes.
    assert_eq!(lines_with(&r, "Echoed").len(), 3, "{:#?}", r.lines);
}

#[test]
fn churn_is_seeded() {
    let s = r#"
seed = 4
duration_ms = 60000
[[group]]
prefix = "h"
count = 5
role = "echo"
[churn]
join_per_s = 0.5
leave_per_s = 0.2
role = "echo"
"#;
    let a = run(s);
    assert_eq!(a.trace_hash, run(s).trace_hash);
    let joins = lines_with(&a, " start ").len() - 5;
    let leaves = lines_with(&a, " leave").len();
    assert!((10..60).contains(&joins), "{joins} joins");
    assert!((3..30).contains(&leaves), "{leaves} leaves");
}
