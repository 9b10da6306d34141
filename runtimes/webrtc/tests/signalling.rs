//! The HTTP signalling endpoint as a browser or another node sees it: POST an offer SDP,
//! get the answer SDP; CORS preflight; garbage refused with 400.

mod common;

use std::io;

use common::*;
use onionpeer_webrtc::driver::{dial_only_endpoint, spawn_relay};
use onionpeer_webrtc::signal::{Answerer, post_offer, serve_signalling};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

#[derive(Clone)]
struct Echo;

impl Answerer for Echo {
    async fn answer(&self, offer: String) -> io::Result<String> {
        Ok(format!("answer to {offer}"))
    }
}

async fn raw(addr: std::net::SocketAddr, req: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[test]
fn post_gets_the_answer_and_preflight_is_allowed() {
    smol::block_on(async {
        let l = TcpListener::bind(any()).await.unwrap();
        let addr = l.local_addr().unwrap();
        smol::spawn(serve_signalling(l, Echo)).detach();
        assert_eq!(
            post_offer(addr, "v=0 x".into()).await.unwrap(),
            "answer to v=0 x"
        );
        let pre = raw(
            addr,
            "OPTIONS /offer HTTP/1.1\r\nOrigin: http://x\r\nAccess-Control-Request-Method: POST\r\n\r\n",
        )
        .await;
        assert!(pre.starts_with("HTTP/1.1 204"), "{pre}");
        assert!(pre.contains("Access-Control-Allow-Origin: *"), "{pre}");
        let get = raw(addr, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(get.starts_with("HTTP/1.1 405"), "{get}");
    });
}

#[test]
fn a_node_answers_a_real_offer_and_refuses_garbage() {
    init_log();
    smol::block_on(async {
        let relay = spawn_relay(any(), None).await.unwrap();
        let addr = relay.webrtc_target().unwrap().addr;
        let mut ep = dial_only_endpoint(any()).unwrap();
        let (_key, offer) = ep.offer().unwrap();
        let answer = post_offer(addr, offer).await.unwrap();
        assert!(answer.starts_with("v=0"), "{answer}");
        // The answer names the relay's DTLS fingerprint and its host candidate.
        let fp = relay
            .dtls_fingerprint()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        assert!(answer.contains(&fp), "{answer}");
        assert!(answer.contains(&format!("{} {} typ host", addr.ip(), addr.port())));
        let refused = post_offer(addr, "not an SDP".into()).await;
        assert!(refused.is_err());
        let r = raw(addr, "POST /offer HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").await;
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    });
}
