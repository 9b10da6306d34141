//! The `sim` command on the shipped small scenario: summary, trace file, plots; and every
//! shipped scenario parses.

use clap::Parser;
use onionpeer_sim::SimArgs;
use onionpeer_sim::run::{RunOptions, render_summary};

#[test]
fn cli_writes_trace_and_plots_next_to_it() {
    let dir = std::env::temp_dir().join(format!("onionpeer-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.toml");
    let trace = dir.join("small.trace");
    let args = SimArgs::try_parse_from([
        "sim",
        scenario,
        "--trace",
        trace.to_str().unwrap(),
        "--seed",
        "2",
    ])
    .unwrap();
    assert_eq!(args.seed, Some(2));
    let code = onionpeer_sim::cli::main(args);
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
    assert!(std::fs::metadata(&trace).unwrap().len() > 0);
    for plot in ["circuit_build_ms.cdf.svg", "series.svg"] {
        assert!(dir.join(plot).exists(), "{plot}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_scenario_reports_percentiles_and_failures() {
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.toml"));
    let opts = RunOptions {
        seed: Some(4),
        ..RunOptions::default()
    };
    let r = onionpeer_sim::run_scenario(path, &opts).unwrap();
    assert_eq!(r.seed, 4);
    let s = render_summary(&r);
    assert!(s.contains("circuit_build_ms") && s.contains("p50") && s.contains("trace hash"));
    assert!(r.metrics.counts["streams_done"] > 5, "{s}");
    assert!(
        !r.metrics
            .counts
            .keys()
            .any(|k| k.starts_with("stream_failed")),
        "{s}"
    );
}

/// Every shipped scenario parses and its topology resolves (the big ones are release runs
/// no test executes: a typo there would only show hours into a study).
#[test]
fn every_scenario_parses() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"));
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let s = onionpeer_sim::scenario::Scenario::load(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        s.topology
            .resolve(dir, s.seed)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(s.duration_ms > 0, "{}", path.display());
        n += 1;
    }
    assert!(n >= 10, "only {n} scenarios found");
}
