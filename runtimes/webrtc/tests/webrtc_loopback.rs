//! onionpeer nodes linked only over WebRTC data channels on 127.0.0.1: a client and three
//! relays build a 3-hop circuit and move 10 MiB through an exit stream; a relay that
//! stops closes its circuits; a relay signing the wrong DTLS fingerprint is refused.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use onionpeer_core::node::api::{Event, FirstHop, LinkCloseReason, StreamTarget};
use onionpeer_core::node::counters::Count;
use onionpeer_webrtc::driver::{spawn_client, spawn_relay};
use sha2::{Digest, Sha256};
use smol::future::FutureExt as _;

#[test]
fn ten_megabytes_through_three_webrtc_relays() {
    init_log();
    smol::block_on(async {
        let data = Arc::new(pattern(SIZE));
        let server = source(data.clone(), None).await;
        let net = network().await;
        let client = spawn_client(any()).unwrap();
        let started = Instant::now();
        let circ = client
            .build_circuit(net.path(), FirstHop::Ntor)
            .or(give_up(60, "circuit build"))
            .await
            .unwrap();
        let built = started.elapsed();
        let target = StreamTarget::Tcp {
            host: "127.0.0.1".into(),
            port: server.port(),
        };
        let mut s = client.open_stream(circ, target).await.unwrap();
        let got = read_all(&mut s).or(give_up(120, "transfer")).await;
        let secs = started.elapsed().as_secs_f64() - built.as_secs_f64();
        assert_eq!(got.len(), SIZE);
        assert_eq!(Sha256::digest(&got), Sha256::digest(&data[..]));
        eprintln!(
            "WebRTC: circuit built in {:.0} ms; 10 MiB via 3 relays in {secs:.2} s, {:.1} MiB/s",
            built.as_secs_f64() * 1e3,
            SIZE as f64 / secs / (1 << 20) as f64
        );
        // Every link is a WebRTC one: the client holds exactly one, to the guard.
        let links = client.inspect(|n| n.census().0).await.unwrap();
        assert_eq!(links, 1);
    });
}

#[test]
fn stopped_relay_closes_its_circuits() {
    init_log();
    smol::block_on(async {
        let data = Arc::new(pattern(SIZE));
        // Paced so the transfer is still running when the relay stops.
        let server = source(data, Some(Duration::from_millis(20))).await;
        let net = network().await;
        let client = spawn_client(any()).unwrap();
        let events = client.events();
        let circ = client
            .build_circuit(net.path(), FirstHop::Ntor)
            .or(give_up(60, "circuit build"))
            .await
            .unwrap();
        let target = StreamTarget::Tcp {
            host: "127.0.0.1".into(),
            port: server.port(),
        };
        let mut s = client.open_stream(circ, target).await.unwrap();
        let mut got = 0;
        while got < 256 * 1024 {
            got += s.read().await.unwrap().unwrap().len();
        }
        net.relays[1].shutdown();
        // The stream ends (with an error: the circuit is gone) rather than hanging.
        let ended = async {
            loop {
                match s.read().await {
                    Ok(Some(d)) => got += d.len(),
                    Ok(None) | Err(_) => return got,
                }
            }
        }
        .or(give_up(30, "stream end after the relay stopped"))
        .await;
        assert!(ended < SIZE, "the transfer cannot have finished");
        let closed = async {
            loop {
                if let Ok(Event::CircuitClosed { circuit, .. }) = events.recv().await
                    && circuit == circ
                {
                    return;
                }
            }
        }
        .or(give_up(30, "CircuitClosed"))
        .await;
        let () = closed;
        // A new circuit through the stopped relay fails instead of hanging.
        let again = client
            .build_circuit(net.path(), FirstHop::Ntor)
            .or(give_up(90, "second build"))
            .await;
        assert!(
            again.is_err(),
            "a circuit through a stopped relay was built"
        );
    });
}

#[test]
fn relay_signing_a_wrong_fingerprint_is_refused() {
    init_log();
    smol::block_on(async {
        let honest = spawn_relay(any(), None).await.unwrap();
        let liar = spawn_signing(Some([0x5a; 32])).await;
        let client = spawn_client(any()).unwrap();
        let events = client.events();
        // The honest relay's link comes up and proves its identity.
        let ok = client
            .build_circuit(
                vec![honest.webrtc_target().unwrap().clone()],
                FirstHop::Ntor,
            )
            .or(give_up(60, "honest build"))
            .await;
        assert!(ok.is_ok(), "{ok:?}");
        // The liar's CERTS sign a value other than its DTLS fingerprint: refused.
        let r = client
            .build_circuit(vec![liar.webrtc_target().unwrap().clone()], FirstHop::Ntor)
            .or(give_up(60, "liar build"))
            .await;
        assert!(r.is_err(), "a circuit over a mis-bound link was built");
        let reason = async {
            loop {
                if let Ok(Event::LinkDown { reason, .. }) = events.recv().await
                    && reason != LinkCloseReason::Local
                {
                    return reason;
                }
            }
        }
        .or(give_up(10, "LinkDown"))
        .await;
        assert_eq!(reason, LinkCloseReason::BadCertificates);
        let bad = client
            .inspect(|n| n.counters().get(Count::BadCertificates))
            .await
            .unwrap();
        assert_eq!(bad, 1);
    });
}

#[test]
fn socks_port_over_webrtc_links() {
    use onionpeer_smol::proxy::{CircuitPool, FixedPath, serve_socks};
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    init_log();
    smol::block_on(async {
        let data = Arc::new(pattern(1 << 20));
        let server = source(data.clone(), None).await;
        let net = network().await;
        let client = spawn_client(any()).unwrap();
        let circuits = Arc::new(CircuitPool::new(
            client.smol_handle().clone(),
            Arc::new(FixedPath(net.path())),
            FirstHop::Ntor,
        ));
        let l = smol::net::TcpListener::bind(any()).await.unwrap();
        let socks = l.local_addr().unwrap();
        smol::spawn(serve_socks(l, circuits)).detach();
        for _ in 0..2 {
            let mut s = smol::net::TcpStream::connect(socks).await.unwrap();
            s.write_all(&[5, 1, 0]).await.unwrap();
            let mut r = [0u8; 2];
            s.read_exact(&mut r).await.unwrap();
            assert_eq!(r, [5, 0]);
            let mut req = vec![5, 1, 0, 1, 127, 0, 0, 1];
            req.extend_from_slice(&server.port().to_be_bytes());
            s.write_all(&req).await.unwrap();
            let mut reply = [0u8; 10];
            s.read_exact(&mut reply).await.unwrap();
            assert_eq!(reply[1], 0, "SOCKS reply {}", reply[1]);
            let mut got = Vec::new();
            s.read_to_end(&mut got)
                .or(give_up(60, "SOCKS transfer"))
                .await
                .unwrap();
            assert_eq!(Sha256::digest(&got), Sha256::digest(&data[..]));
        }
    });
}
