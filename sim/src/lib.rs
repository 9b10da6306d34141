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

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod host;
pub mod link;
pub mod plot;
pub mod queue;
pub mod scenario;
pub mod seed;
pub mod topology;
pub mod trace;
pub mod world;

pub use host::{HostInput, HostOutput, Instant, LinkId, SimHost};
pub use scenario::{Action, Scenario};
pub use seed::derive_seed;
pub use trace::{Summary, Trace, check_determinism, percentiles};
pub use world::{HostSpec, Report, SimConfig, World};
