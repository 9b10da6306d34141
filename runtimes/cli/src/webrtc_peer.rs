//! How a Peersm node's links run, shared by `peer`, `bridge`, `seed`, `get`, `live` and
//! `stream`:
//! - `--webrtc ADDR`: the node's links are WebRTC. It answers offers on its HTTP
//!   signalling endpoint at ADDR (newcomers, browsers) and through the network
//!   (PEER_SIGNAL), its UDP socket shares the port, its PEER record advertises ADDR, and
//!   it dials every link over WebRTC — so every node of such a network runs with
//!   `--webrtc` (the bridge line to give is the one it prints). Its offers go through
//!   the peer that introduced the target (the bridge that handed it out, the peer whose
//!   DHT answer listed it), HTTP to the target's endpoint being the fallback.
//! - `--browser-webrtc ADDR`: native links stay TLS; browsers may also link over WebRTC
//!   (offers POSTed to `/offer` on ADDR and on the node's web and OR ports, data channels
//!   on a UDP socket on ADDR's port).
//! - neither: TLS (and WebSocket links from browsers on the OR port).

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use onionpeer_core::node::api::RelayTarget;
use onionpeer_smol::driver::NodeHandle;
use onionpeer_smol::ws::Web;

use crate::Result;

/// `--webrtc` / `--browser-webrtc`.
#[derive(Args, Debug, Default, Clone)]
pub struct LinkArgs {
    /// Link over WebRTC: HTTP signalling endpoint and UDP socket at this address
    /// (127.0.0.1:0: any port); every node of the network must use it.
    #[arg(long, value_name = "ADDR", conflicts_with = "browser_webrtc")]
    pub webrtc: Option<SocketAddr>,
    /// Also take WebRTC links from browsers (native links stay TLS): offers POSTed to
    /// `/offer` on this TCP address and on the web and OR ports, data channels on a UDP
    /// socket on this address's port (port 0: any).
    #[arg(long, value_name = "ADDR")]
    pub browser_webrtc: Option<SocketAddr>,
}

/// A Peersm peer (with `bridge`, a bridge) on the OR port `or_port`, serving `web`,
/// linked as `links` says.
pub async fn spawn_peer(
    links: &LinkArgs,
    or_port: SocketAddr,
    bridge: bool,
    web: Web,
) -> Result<NodeHandle> {
    if let Some(addr) = links.webrtc {
        let (node, _) =
            onionpeer_webrtc::driver::spawn_peer(addr, or_port, bridge, Some(web)).await?;
        return Ok(node.smol_handle().clone());
    }
    let Some(addr) = links.browser_webrtc else {
        return Ok(onionpeer_smol::driver::spawn_peer(or_port, bridge, Some(web)).await?);
    };
    use onionpeer_core::node::config::{NodeConfig, PeersmConfig, Role};
    let (signalling, endpoint) = onionpeer_webrtc::driver::bind_webrtc(addr).await?;
    println!(
        "browser WebRTC links: POST /offer on http://{} (and the web and OR ports), udp {}",
        signalling.local_addr()?,
        endpoint.local_addr()
    );
    let cert = onionpeer_smol::tls::LinkCert::generate()?;
    let responder = onionpeer_smol::tls::TlsResponder::new(cert)?;
    let listener = onionpeer_smol::tls::TlsListener::bind(or_port, responder).await?;
    let mut node = NodeConfig::new(onionpeer_webrtc::driver::os_seed()?, Role::RELAY, 0);
    let mut peersm = PeersmConfig::new(listener.local_addr()?);
    peersm.bridge = bridge;
    node.peersm = Some(peersm);
    let handle = onionpeer_webrtc::driver::spawn_node_with_web(
        onionpeer_webrtc::DriverConfig {
            node,
            listener: Some(listener),
            endpoint,
            signalling: Some(signalling),
            signaller: Arc::new(onionpeer_webrtc::signal::HttpSignaller),
            // Dials stay TLS: the DHT address of such a node is its OR port.
            dial: onionpeer_webrtc::DialPolicy::WebRtcFor(Default::default()),
            sign_fingerprint: None,
        },
        Some(web),
    )
    .map_err(|e| e.to_string())?;
    Ok(handle.smol_handle().clone())
}

/// How peers reach the node: with `--webrtc` its WebRTC endpoint, else its OR port (a
/// `--browser-webrtc` node's WebRTC endpoint is for browsers; native nodes dial TLS).
pub fn target<'a>(links: &LinkArgs, node: &'a NodeHandle) -> Option<&'a RelayTarget> {
    match links.webrtc {
        Some(_) => node.transport_target().or(node.relay_target()),
        None => node.relay_target(),
    }
}
