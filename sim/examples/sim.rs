//! The `sim` command without the `onionpeer` binary:
//! `cargo run --release -p onionpeer-sim --example sim -- SCENARIO [--trace FILE] ...`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    onionpeer_sim::cli::main(onionpeer_sim::SimArgs::parse())
}
