//! Throughput on loopback, in one run: the same 50 MiB fetched over SOCKS through
//! 3 onionpeer relays (an onionpeer onion proxy) and through 3 tor relays of a private
//! Tor network (a real tor client's SocksPort), SHA-256 checked; prints each and the
//! ratio. Each is measured twice, alternating, and the better run counts (the machine is
//! shared).
//!
//! `cargo bench -p onionpeer-smol --bench throughput` (Debian's `tor` needed for the tor
//! half; `ONIONPEER_BENCH_MIB` sets the size). Not run by `cargo test`.

#[path = "../tests/common/tornet.rs"]
mod tornet;

use std::net::SocketAddr;
use std::sync::Arc;

use onionpeer_core::node::api::FirstHop;
use onionpeer_core::node::exit_policy::ExitPolicy;
use onionpeer_smol::driver::{spawn_client, spawn_relay};
use onionpeer_smol::proxy::{CircuitPool, FixedPath, serve_socks};
use sha2::{Digest, Sha256};
use smol::net::TcpListener;
use tornet::*;

fn main() {
    // `cargo test --benches` runs this without `--bench`: nothing to check quickly.
    if !std::env::args().any(|a| a == "--bench") {
        println!("throughput: run with `cargo bench -p onionpeer-smol --bench throughput`");
        return;
    }
    let mib: usize = std::env::var("ONIONPEER_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let size = mib << 20;
    let tor = tor_installed();
    if !tor {
        println!("tor not installed: measuring onionpeer only");
    }
    // The tor network first, so its start-up does not compete with a measurement.
    let (dirauth, _net) = if tor {
        let (d, g) = start_network();
        (Some(d), g)
    } else {
        (None, None)
    };
    let tor_client = dirauth.as_deref().map(start_tor_client);

    smol::block_on(async {
        let data = Arc::new(pattern(size));
        let want = Sha256::digest(&data[..]);
        // Port 80 or 443 if possible: a tor client only picks exits whose port summary
        // lists the port.
        let server = source(data.clone(), true, None).await;

        // 3 onionpeer relays, the last an exit, and an onion proxy with a SOCKS port.
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut relays = Vec::new();
        for i in 0..3 {
            let policy = (i == 2).then(|| "accept 127.0.0.1:*".parse::<ExitPolicy>().unwrap());
            relays.push(spawn_relay(any, policy).await.unwrap());
        }
        let path = relays
            .iter()
            .map(|r| r.relay_target().unwrap().clone())
            .collect();
        let pool = Arc::new(CircuitPool::new(
            spawn_client().unwrap(),
            Arc::new(FixedPath(path)),
            FirstHop::Ntor,
        ));
        let l = TcpListener::bind(any).await.unwrap();
        let our_socks = l.local_addr().unwrap();
        smol::spawn(serve_socks(l, pool)).detach();
        let tor_socks = match &tor_client {
            Some(_) if !matches!(server.port(), 80 | 443) => {
                println!("cannot listen on port 80 or 443: measuring onionpeer only");
                None
            }
            Some((socks, _, _)) => Some(*socks),
            None => None,
        };

        let mut ours = 0f64;
        let mut theirs = 0f64;
        for round in 1..=2 {
            let (got, secs) = fetch_via_socks(our_socks, server).await;
            assert_eq!(Sha256::digest(&got), want, "onionpeer: SHA-256");
            println!(
                "round {round}: onionpeer proxy, 3 onionpeer relays: {mib} MiB in {secs:.2} s = {:.1} MiB/s",
                mib_s(size, secs)
            );
            ours = ours.max(mib_s(size, secs));
            if let Some(tor_socks) = tor_socks {
                let (got, secs) = fetch_via_socks(tor_socks, server).await;
                assert_eq!(Sha256::digest(&got), want, "tor: SHA-256");
                println!(
                    "round {round}: tor client, 3 tor relays:           {mib} MiB in {secs:.2} s = {:.1} MiB/s",
                    mib_s(size, secs)
                );
                theirs = theirs.max(mib_s(size, secs));
            }
        }
        println!("onionpeer (3 onionpeer relays): {ours:.1} MiB/s");
        if theirs > 0.0 {
            println!("tor (3 tor relays):             {theirs:.1} MiB/s");
            println!("ratio onionpeer/tor:            {:.2}", ours / theirs);
        }
        for r in &relays {
            r.shutdown();
        }
    });
    if let Some((_, group, dir)) = tor_client {
        drop(group);
        let _ = std::fs::remove_dir_all(dir);
    }
}
