//! The Peersm DHT scenario `dht_small` (100 peers, 3 bridges): lookups succeed, take few
//! hops, and a run is a pure function of its seed.

use std::path::Path;

use onionpeer_sim::{RunOptions, percentiles, run_scenario};

#[test]
fn dht_small_lookups_succeed_in_few_hops_deterministically() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/dht_small.toml");
    let report = run_scenario(&path, &RunOptions::default()).unwrap();
    let c = |k: &str| report.metrics.counts.get(k).copied().unwrap_or(0);
    let peers = c("dht_peers_at_end");
    assert_eq!(peers, 100);
    let log2n = (peers as f64).log2();
    for kind in ["find_node", "find_value"] {
        let ok = c(&format!("lookup/{kind}/ok"));
        let miss = c(&format!("lookup/{kind}/miss"));
        assert!(
            ok + miss >= 100,
            "{kind}: only {} lookups judged",
            ok + miss
        );
        let rate = ok as f64 / (ok + miss) as f64;
        assert!(rate >= 0.99, "{kind}: success {rate} ({ok}/{})", ok + miss);
        let hops = percentiles(&report.metrics.samples[&format!("{kind}_hops")]).unwrap();
        assert!(
            hops.p50 <= log2n / 2.0,
            "{kind}: median hops {} > log2(N)/2 = {}",
            hops.p50,
            log2n / 2.0
        );
    }
    let ordb = percentiles(&report.metrics.samples["ordb_circuits_per_peer"]).unwrap();
    assert!(ordb.p50 >= 6.0, "median ORDB circuits {}", ordb.p50);
    let (host, table) = report.routing_table.clone().unwrap();
    assert!(table.starts_with("table "), "{host}: {table}");

    let again = run_scenario(&path, &RunOptions::default()).unwrap();
    assert_eq!(report.trace_hash, again.trace_hash, "same seed, same trace");
}
