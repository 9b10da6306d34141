//! A node that serves the web side (WebSocket links, the page) also answers WebRTC offers
//! POSTed to `/offer` on its HTTP port, as the browser page links over WebRTC: a WebRTC
//! client dialling that address (HTTP signalling posts to the same path) gets a link whose
//! CERTS binding checks, and builds a circuit through the node.

mod common;

use std::sync::Arc;

use common::*;
use onionpeer_core::node::api::FirstHop;
use onionpeer_smol::ws::{Site, Web};
use onionpeer_webrtc::driver::{
    DialPolicy, DriverConfig, dial_only_endpoint, spawn_client, spawn_node_with_web,
};
use onionpeer_webrtc::signal::HttpSignaller;
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn offers_posted_to_the_web_port_open_webrtc_links() {
    init_log();
    smol::block_on(async {
        let http = smol::net::TcpListener::bind(any()).await.unwrap();
        let addr = http.local_addr().unwrap();
        let web = Web {
            listeners: vec![http],
            on_or_port: false,
            site: Site::default(),
        };
        let node = spawn_node_with_web(
            DriverConfig {
                node: onionpeer_smol::driver::relay_config(None).unwrap(),
                listener: None,
                endpoint: dial_only_endpoint(any()).unwrap(),
                signalling: None,
                signaller: Arc::new(HttpSignaller),
                // It dials nothing over WebRTC: it only accepts.
                dial: DialPolicy::WebRtcFor(Default::default()),
                sign_fingerprint: None,
            },
            Some(web),
        )
        .unwrap();
        // The CORS preflight a page may send first.
        let mut s = smol::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"OPTIONS /offer HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 204"), "{reply}");
        assert!(reply.contains("Access-Control-Allow-Origin: *"), "{reply}");
        // A link and a one-hop circuit from a WebRTC client dialling the web port.
        let target = node.inspect(move |n| n.relay_target(addr)).await.unwrap();
        let client = spawn_client(any()).unwrap();
        client
            .build_circuit(vec![target], FirstHop::Fast)
            .or(give_up(30, "circuit build"))
            .await
            .unwrap();
        assert_eq!(client.inspect(|n| n.census().0).await.unwrap(), 1);
        // A page's offer that is no SDP is refused with 400, not a hang.
        let refused = onionpeer_webrtc::signal::post_offer(addr, "v=0\r\nnonsense".into())
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("400"), "{refused}");
    });
}
