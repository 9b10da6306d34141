//! onionpeer links over WebRTC data channels, on str0m and smol.
//!
//! - [`rtc`]: the str0m adapter: one UDP socket per node, one `Rtc` per peer (inputs
//!   demultiplexed with `Rtc::accepts`), one reliable ordered data channel per link
//!   carrying the cell byte stream. Its identity binding is the pair of SHA-256 DTLS
//!   certificate fingerprints from the SDP, which the responder's CERTS cell signs with
//!   its identity key (the type-5 certificate), exactly as a TLS link's certificate.
//! - [`signal`]: offer/answer exchange: the [`signal::Signaller`] trait, HTTP POST
//!   signalling ([`signal::HttpSignaller`], [`signal::serve_signalling`]).
//! - [`netsignal`]: offers and answers carried through the onionpeer network itself
//!   (PEER_SIGNAL through a peer both share a circuit with): [`netsignal::NetworkSignaller`].
//! - [`driver`]: the node runs on `onionpeer_smol::driver`, with the endpoint plugged in
//!   as its `LinkTransport` (WebRTC links, and optionally TLS ones), and the
//!   application's [`driver::NodeHandle`]. A SOCKS port over it is
//!   `onionpeer_smol::proxy` (with `NodeHandle::smol_handle`).

pub mod driver;
pub mod netsignal;
pub mod rtc;
pub mod signal;

pub use driver::{DialPolicy, DriverConfig, DriverError, NodeHandle, OnionStream, spawn_node};
