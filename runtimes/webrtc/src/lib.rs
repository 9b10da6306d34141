//! onionpeer links over WebRTC data channels, on str0m and smol.
//!
//! - [`rtc`]: the str0m adapter: one UDP socket per node, one `Rtc` per peer (inputs
//!   demultiplexed with `Rtc::accepts`), one reliable ordered data channel per link
//!   carrying the cell byte stream. Its identity binding is the pair of SHA-256 DTLS
//!   certificate fingerprints from the SDP, which the responder's CERTS cell signs with
//!   its identity key (the type-5 certificate), exactly as a TLS link's certificate.
//! - [`signal`]: offer/answer exchange: the [`signal::Signaller`] trait, HTTP POST
//!   signalling ([`signal::HttpSignaller`], [`signal::serve_signalling`]).
//! - [`driver`]: one task per node, the core driven as `onionpeer_smol::driver` drives
//!   it, with WebRTC links (and optionally TLS ones) and the application's
//!   [`driver::NodeHandle`].
//! - [`socks`]: a SOCKS port over one circuit along a fixed path (for the CLI's proxy).

pub mod driver;
pub mod rtc;
pub mod signal;
pub mod socks;

pub use driver::{DialPolicy, DriverConfig, DriverError, NodeHandle, OnionStream, spawn_node};
