//! Shared by the WebRTC tests and the throughput bench: a byte source, a 3-relay
//! WebRTC network, helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use onionpeer_core::node::api::RelayTarget;
use onionpeer_core::node::config::{NodeConfig, Role};
use onionpeer_core::node::exit_policy::ExitPolicy;
use onionpeer_webrtc::driver::{
    DialPolicy, DriverConfig, NodeHandle, OnionStream, bind_webrtc, os_seed, spawn_node,
    spawn_relay,
};
use onionpeer_webrtc::signal::HttpSignaller;
use smol::net::TcpListener;

/// Bytes moved by the transfer tests.
pub const SIZE: usize = 10 << 20;

/// Logs from RUST_LOG, once.
pub fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// 127.0.0.1, any port.
pub fn any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[path = "../../../smol/tests/common/serve.rs"]
mod serve;
#[allow(unused_imports)] // each user takes what it needs
pub use serve::pattern;
use serve::serve;

/// A server that sends `data` to every client, then closes; optionally slowly.
pub async fn source(data: Arc<Vec<u8>>, pace: Option<Duration>) -> SocketAddr {
    let l = TcpListener::bind(any()).await.unwrap();
    let addr = l.local_addr().unwrap();
    serve(l, data, pace);
    addr
}

/// Everything a stream delivers until its clean end.
pub async fn read_all(s: &mut OnionStream) -> Vec<u8> {
    let mut got = Vec::new();
    while let Some(d) = s.read().await.unwrap() {
        got.extend_from_slice(&d);
    }
    got
}

/// Build a one-hop circuit to `target` from `from`, fetch 1 MiB through it from a local
/// source and check it (SHA-256).
pub async fn fetch_1mib_through(from: &NodeHandle, target: RelayTarget) {
    use sha2::{Digest, Sha256};
    use smol::future::FutureExt as _;
    let data = Arc::new(pattern(1 << 20));
    let server = source(data.clone(), None).await;
    let circ = from
        .build_circuit(vec![target], onionpeer_core::node::api::FirstHop::Ntor)
        .or(give_up(60, "circuit build"))
        .await
        .unwrap();
    let target = onionpeer_core::node::api::StreamTarget::Tcp {
        host: "127.0.0.1".into(),
        port: server.port(),
    };
    let mut s = from.open_stream(circ, target).await.unwrap();
    let got = read_all(&mut s).or(give_up(60, "transfer")).await;
    assert_eq!(Sha256::digest(&got), Sha256::digest(&data[..]));
}

/// Panics after `secs` seconds: race it against something that must not hang.
pub async fn give_up<T>(secs: u64, what: &str) -> T {
    smol::Timer::after(Duration::from_secs(secs)).await;
    panic!("{what} timed out")
}

/// Three WebRTC relays, the last an exit to 127.0.0.1.
pub struct Net {
    /// Guard, middle, exit.
    pub relays: Vec<NodeHandle>,
}

impl Net {
    /// The three relays as a path.
    pub fn path(&self) -> Vec<RelayTarget> {
        self.relays
            .iter()
            .map(|r| r.webrtc_target().unwrap().clone())
            .collect()
    }
}

/// Start three WebRTC relays on 127.0.0.1.
pub async fn network() -> Net {
    let mut relays = Vec::new();
    for i in 0..3 {
        let policy = (i == 2).then(|| "accept 127.0.0.1:*".parse::<ExitPolicy>().unwrap());
        relays.push(spawn_relay(any(), policy).await.unwrap());
    }
    Net { relays }
}

/// A WebRTC relay whose CERTS sign `fake` instead of its DTLS fingerprint (when given).
pub async fn spawn_signing(fake: Option<[u8; 32]>) -> NodeHandle {
    let (signalling, endpoint) = bind_webrtc(any()).await.unwrap();
    spawn_node(DriverConfig {
        node: NodeConfig::new(os_seed().unwrap(), Role::RELAY, 0),
        listener: None,
        endpoint,
        signalling: Some(signalling),
        signaller: Arc::new(HttpSignaller),
        dial: DialPolicy::AllWebRtc,
        sign_fingerprint: fake,
    })
    .unwrap()
}
