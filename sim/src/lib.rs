//! # onionpeer-sim
//!
//! A deterministic discrete-event network simulator for onionpeer. Hosts (core nodes, or
//! any [`SimHost`]) run in virtual time on one event queue; links are reliable ordered
//! byte streams with latency, jitter and bandwidth queueing; faults are link closes,
//! partitions, holds, crashes, restarts and churn. A run is a pure function of the
//! master seed and the scenario: its trace hash proves it.
//!
//! Modules, one concept each:
//! - [`host`]: the drive contract a host implements.
//! - [`queue`]: the (instant, sequence) event queue.
//! - [`seed`]: per-host seeds from the master seed.
//! - [`link`]: link state and the bandwidth math.
//! - [`topology`]: the network graph and its generators.
//! - [`scenario`]: scenario files.
//! - [`trace`]: the trace, its hash, the summary and percentiles.
//! - [`plot`]: SVG plots.
//! - [`world`]: the runner that ties them together.
//! - [`node`]: core nodes (and simulated services) as hosts.
//! - [`workload`]: the application on a node: circuits and streams, measured.
//! - [`dht`]: the Peersm DHT application on a peer, judged against global knowledge.
//! - [`run`]: [`run_scenario`] — a scenario of real nodes, run and summarised.
//! - [`cli`]: the `sim` command line ([`cli::main`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod dht;
pub mod host;
pub mod link;
pub mod node;
pub mod plot;
pub mod queue;
pub mod run;
pub mod scenario;
pub mod seed;
pub mod swarm;
pub mod topology;
pub mod trace;
pub mod workload;
pub mod world;

pub use cli::SimArgs;
pub use host::{HostInput, HostOutput, Instant, LinkId, SimHost};
pub use node::{SimEvent, SimPeer};
pub use run::{RunOptions, SimError, render_summary, run_scenario};
pub use scenario::{Action, Scenario};
pub use seed::derive_seed;
pub use trace::{Summary, Trace, check_determinism, percentiles};
pub use world::{HostSpec, Report, SimConfig, World};
