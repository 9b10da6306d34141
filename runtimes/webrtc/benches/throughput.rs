//! Throughput on loopback, in one run: the same transfer through a 3-hop circuit of
//! onionpeer relays linked over WebRTC data channels, and over smol's TLS links; an exit
//! stream to a local TCP source, SHA-256 checked; prints each and the ratio. Each is
//! measured twice, alternating, and the better run counts (the machine is shared).
//!
//! `cargo bench -p onionpeer-webrtc --bench throughput` (`ONIONPEER_BENCH_MIB` sets the
//! size, 10 by default). Not run by `cargo test`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use onionpeer_core::node::api::{FirstHop, StreamTarget};
use onionpeer_core::node::exit_policy::ExitPolicy;
use sha2::{Digest, Sha256};

fn main() {
    // `cargo test --benches` runs this without `--bench`: nothing to check quickly.
    if !std::env::args().any(|a| a == "--bench") {
        println!("throughput: run with `cargo bench -p onionpeer-webrtc --bench throughput`");
        return;
    }
    let mib: usize = std::env::var("ONIONPEER_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let size = mib << 20;
    smol::block_on(async {
        let data = Arc::new(pattern(size));
        let want = Sha256::digest(&data[..]);
        let server = source(data.clone(), None).await;
        let target = StreamTarget::Tcp {
            host: "127.0.0.1".into(),
            port: server.port(),
        };

        // WebRTC: three relays and a client.
        let rtc_net = network().await;
        let rtc_client = onionpeer_webrtc::driver::spawn_client(any()).unwrap();
        let rtc_circ = rtc_client
            .build_circuit(rtc_net.path(), FirstHop::Ntor)
            .await
            .expect("WebRTC circuit");

        // TLS: the same over onionpeer-smol.
        let mut tls_relays = Vec::new();
        for i in 0..3 {
            let policy = (i == 2).then(|| "accept 127.0.0.1:*".parse::<ExitPolicy>().unwrap());
            tls_relays.push(
                onionpeer_smol::driver::spawn_relay(any(), policy)
                    .await
                    .unwrap(),
            );
        }
        let tls_path = tls_relays
            .iter()
            .map(|r| r.relay_target().unwrap().clone())
            .collect();
        let tls_client = onionpeer_smol::driver::spawn_client().unwrap();
        let tls_circ = tls_client
            .build_circuit(tls_path, FirstHop::Ntor)
            .await
            .expect("TLS circuit");

        let mut best_rtc = f64::MAX;
        let mut best_tls = f64::MAX;
        for _ in 0..2 {
            let t = Instant::now();
            let mut s = rtc_client
                .open_stream(rtc_circ, target.clone())
                .await
                .unwrap();
            let got = read_all(&mut s).await;
            best_rtc = best_rtc.min(t.elapsed().as_secs_f64());
            assert_eq!(Sha256::digest(&got), want, "WebRTC transfer corrupted");

            let t = Instant::now();
            let mut s = tls_client
                .open_stream(tls_circ, target.clone())
                .await
                .unwrap();
            let mut got = Vec::with_capacity(size);
            while let Some(d) = s.read().await.unwrap() {
                got.extend_from_slice(&d);
            }
            best_tls = best_tls.min(t.elapsed().as_secs_f64());
            assert_eq!(Sha256::digest(&got), want, "TLS transfer corrupted");
        }
        let rate = |secs: f64| size as f64 / secs / (1 << 20) as f64;
        println!(
            "{mib} MiB through 3 hops: WebRTC {:.2} s ({:.1} MiB/s), TLS {:.2} s ({:.1} MiB/s); \
             WebRTC/TLS throughput ratio {:.2}",
            best_rtc,
            rate(best_rtc),
            best_tls,
            rate(best_tls),
            best_tls / best_rtc
        );
    });
}
