//! `--webrtc ADDR` on `peer`, `bridge`, `seed` and `get`: the node's links are WebRTC.
//! It answers offers on its HTTP signalling endpoint at ADDR (newcomers, browsers) and
//! through the network (PEER_SIGNAL), its UDP socket shares the port, its PEER record
//! advertises ADDR, and it dials every link over WebRTC — so every node of such a
//! network runs with `--webrtc` (the bridge line to give is the one it prints).

use std::io;
use std::net::SocketAddr;

use onionpeer_core::node::api::RelayTarget;
use onionpeer_smol::driver::NodeHandle;
use onionpeer_smol::ws::Web;

/// A Peersm peer (or bridge): over WebRTC at `webrtc` when given, else TLS only.
pub async fn spawn_peer(
    webrtc: Option<SocketAddr>,
    or_port: SocketAddr,
    bridge: bool,
    web: Option<Web>,
) -> io::Result<NodeHandle> {
    match webrtc {
        None => onionpeer_smol::driver::spawn_peer(or_port, bridge, web).await,
        Some(addr) => {
            let (node, _) =
                onionpeer_webrtc::driver::spawn_peer(addr, or_port, bridge, web).await?;
            Ok(node.smol_handle().clone())
        }
    }
}

/// How peers reach the node: its WebRTC endpoint when it has one, else its OR port.
pub fn target(node: &NodeHandle) -> Option<&RelayTarget> {
    node.transport_target().or(node.relay_target())
}
