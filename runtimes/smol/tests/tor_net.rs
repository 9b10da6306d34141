//! Real-tor interop: a private Tor network (`tests/tor-net/start.sh`: three authorities,
//! two relays, one exit, all Debian's `tor` on 127.0.0.1), and onionpeer as its client:
//! bootstrap from the authorities (consensus verified against their v3 keys), 3-hop
//! circuits through the tor relays (ntor and CREATE_FAST first hops, ntor extends in
//! RELAY_EARLY), a 50 MiB download over SOCKS through the tor exit with its SHA-256
//! checked (far more than 500 KB, so tor's authenticated SENDME v1 checks pass), BEGIN_DIR
//! to an authority, and
//! the same download through a real tor client for comparison, and finally the tor exit
//! killed mid-transfer: the SOCKS client sees the transfer fail within a bounded time.
//!
//! Prints `SKIPPED: tor not installed` without `tor`. Set `ONIONPEER_TORNET_DIRAUTH` to
//! the DirAuthority file of a network already running to skip starting one.

#[path = "common/tornet.rs"]
mod tornet;

use std::sync::Arc;
use std::time::{Duration, Instant};

use onionpeer_core::dir::{
    HttpResponseParser, PathConfig, UnverifiedConsensus, parse_dir_authorities,
};
use onionpeer_core::node::api::{FirstHop, StreamTarget};
use onionpeer_smol::dirclient::{DirClient, DirPaths, relay_target};
use onionpeer_smol::driver::spawn_client;
use onionpeer_smol::proxy::{CircuitPool, PathSource, serve_socks};
use sha2::{Digest, Sha256};
use smol::future::FutureExt as _;
use smol::io::AsyncReadExt;
use smol::net::TcpListener;
use tornet::*;

/// The download through 3 tor relays (ntor first hop, and the tor client's).
const SIZE: usize = 50 << 20;
/// The download with a CREATE_FAST first hop.
const SMALL: usize = 8 << 20;

async fn with_timeout<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    f.or(async {
        smol::Timer::after(Duration::from_secs(secs)).await;
        panic!("{what}: timed out after {secs} s")
    })
    .await
}

/// What the node saw since `events` subscribed, and where its streams and circuits stand:
/// tells a DESTROY that never came from a stream not closed on one.
async fn node_report(
    client: &onionpeer_smol::driver::NodeHandle,
    events: &smol::channel::Receiver<onionpeer_core::node::api::Event>,
) -> String {
    use onionpeer_core::node::api::{CircuitHandle, Event};
    let seen: Vec<Event> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    let mut readable: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            Event::StreamReadable(h) => Some(*h),
            _ => None,
        })
        .collect();
    readable.dedup();
    let state = client
        .with_node_mut(move |n, now| {
            // A read of nothing says whether the stream is still there.
            let streams: Vec<_> = readable
                .iter()
                .map(|h| (*h, n.stream_buffered(*h), n.read_stream(now, *h, &mut [])))
                .collect();
            let open: Vec<_> = (0..64)
                .map(CircuitHandle)
                .filter_map(|c| n.circuit_first_hop(c).map(|h| (c, h)))
                .collect();
            format!(
                "counters {:?}; census {:?}; streams (buffered, read) {streams:?}; \
                 open circuits (first hop) {open:?}",
                n.counters(),
                n.census()
            )
        })
        .await;
    format!("node events since: {seen:?}; {state:?}")
}

#[test]
fn onionpeer_client_on_a_real_tor_network() {
    if !tor_installed() {
        println!("SKIPPED: tor not installed");
        return;
    }
    let (dirauth, _net) = start_network();
    let torrc = std::fs::read_to_string(&dirauth).unwrap();
    let authorities = parse_dir_authorities(&torrc).unwrap();
    assert_eq!(authorities.len(), 3);
    smol::block_on(async {
        // Bootstrap: consensus, certificates, microdescriptors, all verified.
        let config = PathConfig {
            enforce_distinct_subnets: false,
            require_fast: false,
            require_stable: false,
        };
        let paths = with_timeout(
            60,
            "bootstrap",
            DirPaths::bootstrap(DirClient::new(authorities.clone()), config),
        )
        .await
        .unwrap();
        let netdir = paths.netdir();
        assert!(
            netdir.relays().len() >= 6,
            "{} relays",
            netdir.relays().len()
        );
        eprintln!("bootstrapped: {} relays", netdir.relays().len());

        let data = Arc::new(pattern(SIZE));
        let server = source(data.clone(), true, None).await;
        let want = Sha256::digest(&data[..]);
        let small = Arc::new(pattern(SMALL));
        let small_server = source(small.clone(), false, None).await;
        let client = spawn_client().unwrap();

        // 3 hops with an ntor first hop (50 MiB), then with CREATE_FAST (8 MiB).
        let mut ours = 0.0;
        let mut our_socks = None;
        for (first_hop, size, server, want) in [
            (FirstHop::Ntor, SIZE, server, want),
            (
                FirstHop::Fast,
                SMALL,
                small_server,
                Sha256::digest(&small[..]),
            ),
        ] {
            let pool = Arc::new(CircuitPool::new(
                client.clone(),
                paths.clone() as Arc<dyn PathSource>,
                first_hop,
            ));
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let socks = l.local_addr().unwrap();
            smol::spawn(serve_socks(l, pool)).detach();
            let (got, secs) = with_timeout(
                120,
                "fetch through tor relays",
                fetch_via_socks(socks, server),
            )
            .await;
            assert_eq!(got.len(), size, "{first_hop:?}");
            assert_eq!(Sha256::digest(&got), want, "{first_hop:?}");
            eprintln!(
                "onionpeer client, {first_hop:?} first hop, 3 tor relays: {} MiB in {secs:.2} s = {:.1} MiB/s, SHA-256 ok",
                size >> 20,
                mib_s(size, secs)
            );
            if first_hop == FirstHop::Ntor {
                ours = secs;
                our_socks = Some(socks);
            }
        }
        let our_socks = our_socks.unwrap();

        // BEGIN_DIR on a one-hop circuit to an authority.
        let auth = netdir
            .by_rsa_identity(&authorities[0].rsa_identity)
            .expect("authority in consensus");
        let circ = with_timeout(
            30,
            "one-hop circuit",
            client.build_circuit(vec![relay_target(auth)], FirstHop::Fast),
        )
        .await
        .unwrap();
        let mut s = with_timeout(
            30,
            "BEGIN_DIR",
            client.open_stream(circ, StreamTarget::Directory),
        )
        .await
        .unwrap();
        s.write_all(&onionpeer_core::dir::build_request(
            "127.0.0.1",
            onionpeer_core::dir::CONSENSUS_MICRODESC_PATH,
        ))
        .await
        .unwrap();
        let mut parser = HttpResponseParser::new(8 << 20);
        while let Some(chunk) = with_timeout(30, "BEGIN_DIR read", s.read()).await.unwrap() {
            parser.push(&chunk).unwrap();
        }
        let resp = parser.finish().unwrap();
        assert_eq!(resp.status, 200);
        UnverifiedConsensus::parse(&resp.body).expect("consensus over BEGIN_DIR");
        eprintln!("BEGIN_DIR: consensus of {} bytes", resp.body.len());

        // The same fetch through a real tor client.
        if !matches!(server.port(), 80 | 443) {
            println!("SKIPPED tor-client comparison: cannot listen on port 80 or 443");
        } else {
            let (tor_socks, tor, tor_dir) = start_tor_client(&dirauth);
            let (got, tor_secs) = with_timeout(
                120,
                "fetch through tor client",
                fetch_via_socks(tor_socks, server),
            )
            .await;
            assert_eq!(Sha256::digest(&got), want);
            eprintln!(
                "tor client, 3 tor relays: {} MiB in {tor_secs:.2} s = {:.1} MiB/s; onionpeer/tor throughput ratio {:.2}",
                SIZE >> 20,
                mib_s(SIZE, tor_secs),
                tor_secs / ours
            );
            drop(tor);
            let _ = std::fs::remove_dir_all(tor_dir);
            // Let the relays tear down the tor client's circuits before the next one is
            // built: a circuit built while they did, then cut by the exit's death below,
            // was seen (about 1 run in 8, under load) to get no DESTROY from the relays at
            // all, the node's circuit and stream left open with nothing buffered. 3 s made
            // it rare (0 in 47 runs) but not gone (once in CI, 2026-12-07): 10 s.
            smol::Timer::after(Duration::from_secs(10)).await;
        }

        // Last, as it breaks the network: the tor exit killed mid-transfer. The SOCKS
        // client sees the connection end early (no hang), and a new request gets an
        // error reply.
        let Some(net_dir) = dirauth.parent() else {
            return;
        };
        let Ok(exit_pid) = std::fs::read_to_string(net_dir.join("exit0/pid")) else {
            println!("SKIPPED exit kill: no exit0/pid in {}", net_dir.display());
            return;
        };
        let paced = source(data.clone(), false, Some(Duration::from_millis(20))).await;
        let mut s = with_timeout(60, "SOCKS connect", socks_connect(our_socks, paced))
            .await
            .expect("SOCKS reply");
        let mut buf = vec![0u8; 64 << 10];
        let mut got = 0;
        while got < 512 << 10 {
            let n = with_timeout(30, "paced read", s.read(&mut buf))
                .await
                .unwrap();
            assert!(n > 0, "stream ended before the exit was killed");
            got += n;
        }
        // What the node saw, to tell a lost DESTROY from a stream not closed on one.
        let events = client.events();
        kill_pid(exit_pid.trim(), "KILL");
        // Timed from when the process is gone (its sockets close then), not from the
        // signal, which a loaded machine can take seconds to act on.
        let gone = wait_exited(exit_pid.trim(), Duration::from_secs(60))
            .expect("the tor exit still runs 60 s after SIGKILL");
        let killed = Instant::now();
        let ended = async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return Some(got),
                    Ok(n) => got += n,
                }
            }
        }
        .or(async {
            smol::Timer::after(Duration::from_secs(60)).await;
            None
        })
        .await;
        let Some(total) = ended else {
            panic!(
                "the stream did not end within 60 s of the exit's death ({} KiB read); {}",
                got >> 10,
                node_report(&client, &events).await
            );
        };
        assert!(total < SIZE, "the transfer cannot have finished");
        eprintln!(
            "exit killed after {} KiB (gone {:.2} s after SIGKILL): the SOCKS connection ended {:.2} s later",
            total >> 10,
            gone.as_secs_f64(),
            killed.elapsed().as_secs_f64()
        );
        let r = with_timeout(
            90,
            "SOCKS request with the exit gone",
            socks_connect(our_socks, paced),
        )
        .await;
        assert!(r.is_err(), "a stream opened through a dead exit");
        eprintln!(
            "new SOCKS request with the exit gone: reply code {}",
            r.err().unwrap_or(0)
        );
    });
}
