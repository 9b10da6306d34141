//! # onionpeer-core
//!
//! The protocol logic of onionpeer — Tor's link, circuit and stream protocols and the
//! Peersm layer (Kademlia DHT, ORDB content distribution) — as deterministic state
//! machines with no I/O of their own.
//!
//! This crate performs no network or disk access, reads no clock and draws no entropy of
//! its own: bytes, time and randomness all come in through its API, so the same inputs
//! give the same outputs, byte for byte. Runtimes (`onionpeer-smol`, `onionpeer-webrtc`)
//! and the simulator (`onionpeer-sim`) move bytes and time in and out of it.
//!
//! The crate is `no_std` + `alloc` so it builds for browsers (wasm32) and small boxes.
//!
//! Layout, bottom up:
//! - [`codec`]: the byte reader and writer every encoding is built on.
//! - [`cells`]: channel cells and relay cells, every message of the protocol.
//! - [`crypto`]: KDFs, handshakes, relay crypto, identity keys and certificates.
//! - [`dir`]: the Tor directory (authorities, consensus, microdescriptors) and path
//!   selection.
//! - [`dht`]: the Peersm Kademlia DHT (routing table, iterative lookups, record store).
//! - [`ordb`]: ORDB data validation — content trees, signed manifests and live segments,
//!   the seeder's builders and the downloader's verifiers.
//! - [`time`]: the [`Instant`] every entry point takes as `now`.
//! - [`link`], [`circuit`], [`stream`]: the state machines of links, circuits and streams.
//! - [`node`]: the [`Node`](node::Node) that ties them together behind the drive contract.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod cells;
pub mod circuit;
pub mod codec;
pub mod crypto;
pub mod dht;
pub mod dir;
pub mod link;
pub mod node;
pub mod ordb;
pub mod stream;
pub mod time;

pub use time::Instant;
