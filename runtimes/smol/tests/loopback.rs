//! Our own relays on loopback: three onionpeer relays and an onion proxy over real TCP
//! and TLS, a SOCKS5 client fetching 10 MB through them, and a relay killed mid-transfer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onionpeer_core::node::api::FirstHop;
use onionpeer_core::node::exit_policy::ExitPolicy;
use onionpeer_smol::driver::{NodeHandle, spawn_client, spawn_relay};
use onionpeer_smol::proxy::{CircuitPool, FixedPath, serve_socks};
use sha2::{Digest, Sha256};
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

const SIZE: usize = 10 << 20;

#[path = "common/serve.rs"]
mod serve;
use serve::{pattern, serve};

/// A server that sends `data` to every client, then closes; optionally slowly.
async fn source(data: Arc<Vec<u8>>, pace: Option<Duration>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    serve(l, data, pace);
    addr
}

struct Net {
    relays: Vec<NodeHandle>,
    socks: SocketAddr,
}

async fn network() -> Net {
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
    let client = spawn_client().unwrap();
    let pool = Arc::new(CircuitPool::new(
        client,
        Arc::new(FixedPath(path)),
        FirstHop::Ntor,
    ));
    let l = TcpListener::bind(any).await.unwrap();
    let socks = l.local_addr().unwrap();
    smol::spawn(serve_socks(l, pool)).detach();
    Net { relays, socks }
}

/// SOCKS5 CONNECT to `target` (no authentication); returns the stream after the reply.
async fn socks5_connect(proxy: SocketAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(proxy).await?;
    s.write_all(&[5, 1, 0]).await?;
    let mut r = [0u8; 2];
    s.read_exact(&mut r).await?;
    assert_eq!(r, [5, 0]);
    let SocketAddr::V4(v4) = target else {
        panic!("ipv4 only")
    };
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&v4.ip().octets());
    req.extend_from_slice(&v4.port().to_be_bytes());
    s.write_all(&req).await?;
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await?;
    if reply[1] != 0 {
        return Err(std::io::Error::other(format!("SOCKS reply {}", reply[1])));
    }
    Ok(s)
}

#[test]
fn ten_megabytes_through_three_relays_over_socks() {
    smol::block_on(async {
        let data = Arc::new(pattern(SIZE));
        let server = source(data.clone(), None).await;
        let net = network().await;
        let started = Instant::now();
        let mut s = socks5_connect(net.socks, server).await.unwrap();
        let mut got = Vec::with_capacity(SIZE);
        s.read_to_end(&mut got)
            .or(async {
                smol::Timer::after(Duration::from_secs(120)).await;
                panic!("transfer timed out")
            })
            .await
            .unwrap();
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(got.len(), SIZE);
        assert_eq!(Sha256::digest(&got), Sha256::digest(&data[..]));
        eprintln!(
            "10 MiB via 3 onionpeer relays: {:.2} s, {:.1} MiB/s",
            secs,
            SIZE as f64 / secs / (1 << 20) as f64
        );
        // The second stream reuses the circuit.
        let mut s = socks5_connect(net.socks, server).await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), SIZE);
        drop(net.relays);
    });
}

#[test]
fn relay_killed_mid_transfer_closes_the_socks_connection() {
    smol::block_on(async {
        let data = Arc::new(pattern(SIZE));
        // Paced so the transfer is still running when the relay dies.
        let server = source(data, Some(Duration::from_millis(20))).await;
        let net = network().await;
        let mut s = socks5_connect(net.socks, server).await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < 256 * 1024 {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got += n;
        }
        net.relays[1].shutdown();
        let rest = async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got += n,
                }
            }
        }
        .or(async {
            smol::Timer::after(Duration::from_secs(30)).await;
            panic!("the SOCKS connection hung after the relay died")
        })
        .await;
        assert!(rest < SIZE, "the transfer cannot have finished");
        // A new connection works again on a new circuit? Not with the middle relay gone:
        // it is refused with a SOCKS error instead of hanging.
        let r = socks5_connect(net.socks, server)
            .or(async {
                smol::Timer::after(Duration::from_secs(60)).await;
                panic!("the new SOCKS request hung")
            })
            .await;
        assert!(r.is_err());
    });
}
