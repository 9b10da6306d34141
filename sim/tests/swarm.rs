//! Content distribution, small (`swarm_small`: 34 hosts, 3 MB seeded once, 5 downloaders,
//! 4 tampering peers, 2 downloaders restarted mid-download): every download completes
//! byte-exact, restarted ones resume with `held`, tampering is caught, and a run is a pure
//! function of its seed.

use std::path::Path;

use onionpeer_sim::{RunOptions, run_scenario};

#[test]
fn swarm_small_downloads_complete_byte_exact_and_tampering_is_caught() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/swarm_small.toml");
    let report = run_scenario(&path, &RunOptions::default()).unwrap();
    let c = |k: &str| report.metrics.counts.get(k).copied().unwrap_or(0);
    assert_eq!(c("swarm/size"), 3_000_000);
    assert_eq!(c("swarm/downloaders"), 5);
    assert_eq!(c("swarm/completed"), 5, "{:?}", report.metrics.counts);
    assert_eq!(c("swarm/exact"), 5);
    assert_eq!(c("swarm/done_corrupt"), 0);
    assert!(
        c("swarm/tamper_detections") + c("swarm/tamper_caught_by_ordbs") >= 1,
        "no tampering caught: {:?}",
        report.metrics.counts
    );
    assert!(c("swarm/seeder_bytes_served") > 0);
    // The downloaders' hedges and end-game splits reach the summary.
    assert!(report.metrics.counts.contains_key("swarm/hedges"));
    assert!(report.metrics.counts.contains_key("swarm/tail_splits"));
    assert!(c("swarm/hedges_won") <= c("swarm/hedges"));
    // dl0 and dl3 restart mid-download and resume with what they had read.
    assert_eq!(c("swarm/restarts"), 2);
    assert!(c("swarm/resumed") >= 2);
    let again = run_scenario(&path, &RunOptions::default()).unwrap();
    assert_eq!(report.trace_hash, again.trace_hash, "same seed, same trace");
}
