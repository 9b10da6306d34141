//! onionpeer on real sockets, with smol: the I/O pieces around the Sans-IO core.
//!
//! - [`tls`]: Tor links over TLS, initiator and responder, and the [`tls::LinkBinding`]
//!   (certificate digests) they hand to the link handshake.
//! - [`dirclient`]: consensus, certificates and microdescriptors over DirPorts, verified;
//!   path selection from them.
//! - [`driver`]: one task per node, moving bytes, timers and commands in and out of the
//!   core, and the application's [`driver::NodeHandle`].
//! - [`content`]: seeding files and downloading them through the ORDBs, as streams of
//!   progress and data.
//! - [`proxy`]: the SOCKS port: circuits pooled and rotated, streams per CONNECT.
//! - [`socks`]: a Sans-IO SOCKS4/4a/5 server handshake, as tor's SocksPort speaks it.
//! - [`store`]: a chunk store on disk, bounded by a byte budget.
//! - [`ws`]: browser links over WebSocket, and the HTTP server of the browser page.

pub mod content;
pub mod dirclient;
pub mod driver;
pub mod proxy;
pub mod socks;
pub mod store;
pub mod tls;
pub mod ws;
