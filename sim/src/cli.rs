//! The `sim` command: run a scenario of real nodes and print its summary.
//!
//! ```text
//! onionpeer sim SCENARIO [--trace FILE] [--plots DIR] [--check-determinism] [--seed N]
//! ```
//! `SIM_SEED` in the environment sets `--seed`. Plots go to `--plots DIR`, or next to
//! the trace file when only `--trace` is given. On any failure the seed is printed, so
//! `SIM_SEED=<seed>` reproduces the run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::run::{RunOptions, SimError, render_summary, run, run_checked};
use crate::scenario::Scenario;

/// Arguments of the `sim` command.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "sim",
    about = "Run a deterministic simulation of onionpeer nodes from a scenario file"
)]
pub struct SimArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Write the full trace to FILE.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Run twice and fail on the first differing trace line.
    #[arg(long)]
    pub check_determinism: bool,
    /// Write SVG plots into DIR (default: next to the trace, if any).
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Master seed, replacing the scenario's.
    #[arg(long, env = "SIM_SEED")]
    pub seed: Option<u64>,
}

/// Run the command; prints the summary (or the error and the seed to reproduce it).
pub fn main(args: SimArgs) -> ExitCode {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let seed = args.seed.unwrap_or(scenario.seed);
    let plots = args.plots.clone().or_else(|| {
        let t = args.trace.as_ref()?;
        Some(t.parent().unwrap_or(Path::new(".")).to_path_buf())
    });
    let opts = RunOptions {
        seed: Some(seed),
        trace: args.trace.clone(),
        keep_lines: false,
        plots,
    };
    let base = args
        .scenario
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if args.check_determinism {
            run_checked(&scenario, &base, &opts)
        } else {
            run(&scenario, &base, &opts)
        }
    }));
    match outcome {
        Ok(Ok(report)) => {
            print!("{}", render_summary(&report));
            if args.check_determinism {
                println!("deterministic: two runs gave identical traces");
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            report_seed(seed, matches!(e, SimError::Diverged(_)));
            ExitCode::FAILURE
        }
        Err(panic) => {
            report_seed(seed, true);
            std::panic::resume_unwind(panic)
        }
    }
}

fn report_seed(seed: u64, show: bool) {
    if show {
        eprintln!("seed {seed}: reproduce with SIM_SEED={seed}");
    }
}
