//! The rendered trace of a tiny scenario, the summary, and plots from a run.

mod common;

use std::collections::BTreeMap;

use common::{TestEvent, world_from};
use onionpeer_sim::percentiles;

const TINY: &str = r#"
seed = 11
duration_ms = 2000
[topology]
generator = "full_mesh"
nodes = 2
latency_ms = [15.0, 15.0]
jitter_ms = 2.0
[[group]]
prefix = "a"
count = 1
role = "echo"
[[group]]
prefix = "b"
count = 1
role = "echo"
[[action]]
at_ms = 0
kind = "dial"
host = "a0"
to = "b0"
bytes = 40000
rounds = 2
[[action]]
at_ms = 1000
kind = "close_link"
a = "a0"
b = "b0"
"#;

#[test]
fn tiny_scenario_trace() {
    let r = common::run(TINY);
    insta::assert_snapshot!(r.lines.join("\n"));
    assert_eq!(r.summary.closes, BTreeMap::from([("fault".to_string(), 2)]));
    assert_eq!(r.summary.events["closed"], 2);
}

#[test]
fn latency_samples_feed_percentiles_and_plots() {
    let scenario = TINY.replace("rounds = 2", "rounds = 20");
    let mut w = world_from(&scenario, false);
    w.on_event(|ctx, ev, metrics| {
        if let TestEvent::Echoed { rtt_ms, .. } = ev {
            metrics.sample("rtt_ms", *rtt_ms as f64);
            metrics.point("rtt_ms", ctx.now, *rtt_ms as f64);
        }
    });
    w.run_until(onionpeer_sim::Instant::from_millis(2000));
    let r = w.finish();
    let p = percentiles(&r.metrics.samples["rtt_ms"]).unwrap();
    assert!(p.count == 20 && p.p50 >= 30.0 && p.p99 <= 34.0, "{p:?}");
    let dir = std::env::temp_dir().join(format!("onionpeer-sim-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = r.write_plots(&dir).unwrap();
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|f| f.exists()));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(r.summary.to_string().contains("bytes delivered"));
}
