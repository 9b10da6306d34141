//! A node signals its WebRTC links through the network on its own: peers whose HTTP
//! signalling endpoints the other peers cannot reach (only the bridge's is) still link
//! over WebRTC, because the core names the bridge that handed a peer out as its
//! introducer and the offer goes through it (PEER_SIGNAL). An offer the network cannot
//! carry is refused at once (REFUSED), not left to time out.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::node::api::{BootstrapVia, Command, Event};
use onionpeer_core::node::config::{NodeConfig, PeersmConfig, Role};
use onionpeer_core::node::counters::Count;
use onionpeer_core::node::exit_policy::ExitPolicy;
use onionpeer_smol::driver::WeakNodeHandle;
use onionpeer_webrtc::driver::{
    DialPolicy, DriverConfig, NodeHandle, bind_webrtc, os_seed, spawn_node,
};
use onionpeer_webrtc::netsignal::{Introduction, NetworkSignaller};
use onionpeer_webrtc::signal::{AnswerFuture, DialTarget, HttpSignaller, Signaller};
use smol::future::FutureExt as _;

/// HTTP signalling to one address only (the bridge's); every other exchange fails at
/// once and is recorded: the peers' endpoints are unreachable for each other.
struct OnlyTo {
    allowed: SocketAddr,
    refused: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Signaller for OnlyTo {
    fn exchange(&self, to: &DialTarget, offer: String) -> AnswerFuture {
        if to.addr == self.allowed {
            return HttpSignaller.exchange(to, offer);
        }
        self.refused.lock().unwrap().push(to.addr);
        let addr = to.addr;
        Box::pin(async move { Err(std::io::Error::other(format!("{addr} unreachable"))) })
    }
    fn attach(&self, _node: WeakNodeHandle) {}
}

/// A Peersm node (bridge or peer, an exit to 127.0.0.1 with `exit`) whose every link is
/// WebRTC, its PEER record the address of its signalling endpoint.
async fn webrtc_peer(
    bridge: bool,
    exit: bool,
    signaller: NetworkSignaller,
    tune: impl FnOnce(&mut PeersmConfig),
) -> NodeHandle {
    let (signalling, endpoint) = bind_webrtc(any()).await.unwrap();
    let role = if exit { Role::EXIT } else { Role::RELAY };
    let mut node = NodeConfig::new(os_seed().unwrap(), role, 0);
    if exit {
        node.exit_policy = "accept 127.0.0.1:*".parse::<ExitPolicy>().unwrap();
    }
    let mut p = PeersmConfig::new(signalling.local_addr().unwrap());
    p.bridge = bridge;
    tune(&mut p);
    node.peersm = Some(p);
    spawn_node(DriverConfig {
        node,
        listener: None,
        endpoint,
        signalling: Some(signalling),
        signaller: Arc::new(signaller),
        dial: DialPolicy::AllWebRtc,
        sign_fingerprint: None,
    })
    .unwrap()
}

/// A peer that reaches only `bridge` by HTTP; its signaller, and the addresses its HTTP
/// fallback was asked for and refused.
async fn fenced_peer(
    bridge: &NodeHandle,
    exit: bool,
) -> (NodeHandle, NetworkSignaller, Arc<Mutex<Vec<SocketAddr>>>) {
    let refused = Arc::new(Mutex::new(Vec::new()));
    let sig = NetworkSignaller::new(Some(Arc::new(OnlyTo {
        allowed: bridge.webrtc_target().unwrap().addr,
        refused: refused.clone(),
    })));
    let node = webrtc_peer(false, exit, sig.clone(), |_| {}).await;
    (node, sig, refused)
}

async fn bootstrap(node: &NodeHandle, bridge: &NodeHandle) {
    let t = Instant::now();
    let events = node.events();
    node.command(Command::Bootstrap {
        via: BootstrapVia::Bridge(bridge.webrtc_target().unwrap().clone()),
    })
    .await
    .unwrap();
    async {
        while let Ok(e) = events.recv().await {
            if matches!(e, Event::DhtLookupDone { .. }) {
                return;
            }
        }
    }
    .or(give_up(60, "bootstrap"))
    .await;
    eprintln!("bootstrap: {:?}", t.elapsed());
}

async fn registered(bridge: &NodeHandle, peer: PeerId) {
    async {
        while !bridge
            .inspect(move |n| n.routing_table().is_some_and(|t| t.get(&peer).is_some()))
            .await
            .unwrap()
        {
            smol::Timer::after(Duration::from_millis(20)).await;
        }
    }
    .or(give_up(60, "registered at the bridge"))
    .await;
}

/// A bridge (HTTP signalling reachable), B (an exit) registered with it, then C joining:
/// both fenced off each other's HTTP endpoints. The bridge is tuned by `tune`.
async fn network(
    tune: impl FnOnce(&mut PeersmConfig),
) -> (
    NodeHandle,
    (NodeHandle, Arc<Mutex<Vec<SocketAddr>>>),
    (NodeHandle, NetworkSignaller, Arc<Mutex<Vec<SocketAddr>>>),
) {
    let bridge = webrtc_peer(
        true,
        false,
        NetworkSignaller::new(Some(Arc::new(HttpSignaller))),
        tune,
    )
    .await;
    let (b, _, b_refused) = fenced_peer(&bridge, true).await;
    // The bridge has nobody to give B (its bootstrap ends only after its retries): what
    // matters is that the bridge verified B over its own circuit and can introduce it.
    b.command(Command::Bootstrap {
        via: BootstrapVia::Bridge(bridge.webrtc_target().unwrap().clone()),
    })
    .await
    .unwrap();
    registered(&bridge, b.peer_id()).await;
    let (c, c_sig, c_refused) = fenced_peer(&bridge, false).await;
    (bridge, (b, b_refused), (c, c_sig, c_refused))
}

#[test]
fn peers_link_through_the_bridge_they_met_by_and_move_data() {
    init_log();
    smol::block_on(async {
        let (bridge, (b, _), (c, c_sig, c_refused)) = network(|_| {}).await;
        let c_events = c.events();
        let (idb, idbr) = (b.peer_id(), bridge.peer_id());
        // C's bootstrap gets B from the bridge and looks it up: that link is signalled
        // through the bridge.
        bootstrap(&c, &bridge).await;
        let intro = c.inspect(move |n| n.introducer_of(&idb)).await.unwrap();
        assert_eq!(intro, Some(idbr), "the bridge introduces B to C");
        let started = Instant::now();
        fetch_1mib_through(&c, b.webrtc_target().unwrap().clone()).await;
        eprintln!(
            "circuit + 1 MiB through B: {:?}; C's signalling: {:?}",
            started.elapsed(),
            c_sig.stats()
        );
        // The link to B proved B's id, and C's HTTP never was asked for B.
        let mut up = Vec::new();
        while let Ok(e) = c_events.try_recv() {
            if let Event::LinkUp { peer: Some(p), .. } = e {
                up.push(p);
            }
        }
        assert!(up.contains(&idb), "links up: {up:?}");
        let b_addr = b.webrtc_target().unwrap().addr;
        assert!(
            !c_refused.lock().unwrap().contains(&b_addr),
            "C tried HTTP to B"
        );
        let stats = c_sig.stats();
        assert!(stats.answered >= 1, "{stats:?}");
        assert_eq!(stats.refused, 0, "{stats:?}");
        // The bridge passed the offer on and refused nothing.
        let (routes, counters) = bridge
            .inspect(|n| (n.signal_census().0, n.counters().clone()))
            .await
            .unwrap();
        assert!(routes >= 1);
        for k in [
            Count::SignalBad,
            Count::SignalRefused,
            Count::SignalRateLimited,
            Count::SignalRefusalSent,
        ] {
            assert_eq!(counters.get(k), 0, "{k:?}");
        }
        assert!(c.webrtc_links().await >= 2, "links to the bridge and B");
    });
}

/// Time one exchange through the bridge that must be refused; its error.
async fn refused_within(
    sig: &NetworkSignaller,
    intro: Introduction,
    offer: &str,
    what: &str,
) -> (Duration, String) {
    let t = Instant::now();
    let r = sig
        .exchange_via_network(intro, offer.to_string(), Duration::from_secs(15))
        .await;
    let took = t.elapsed();
    let e = r.expect_err(what);
    assert_eq!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{what}: {e}"
    );
    // Far under the 15 s an unanswered offer waits.
    assert!(took < Duration::from_secs(3), "{what} took {took:?}");
    (took, e.to_string())
}

#[test]
fn unroutable_unanswerable_and_rate_limited_offers_are_refused_at_once() {
    init_log();
    smol::block_on(async {
        // No refill: the bucket's 4 tokens are all C gets.
        let (bridge, (b, _), (c, c_sig, _)) = network(|p| {
            p.signal.offer_burst = 4;
            p.signal.offers_per_sec = 0;
        })
        .await;
        bootstrap(&c, &bridge).await;
        let spent = c_sig.stats().offers_sent;
        let via = Some(bridge.peer_id());
        let junk = "v=0\r\nnonsense\r\n";
        // Nobody the bridge knows.
        let stranger = Introduction {
            peer: PeerId([0x77; 20]),
            via,
        };
        let (t_route, e) = refused_within(&c_sig, stranger, junk, "unknown target").await;
        assert!(e.contains("no route"), "{e}");
        // B gets it and cannot answer it: B refuses through the bridge.
        let to_b = Introduction {
            peer: b.peer_id(),
            via,
        };
        let (t_target, e) = refused_within(&c_sig, to_b, junk, "junk offer").await;
        assert!(e.contains("cannot answer"), "{e}");
        // Then the bucket runs dry.
        let mut limited = None;
        for _ in 0..4 {
            let (t, e) = refused_within(&c_sig, to_b, junk, "offer").await;
            if e.contains("rate limited") {
                limited = Some(t);
                break;
            }
        }
        let t_limit = limited.expect("the offer rate was never enforced");
        eprintln!(
            "refusals: no route {t_route:?}, target {t_target:?}, rate {t_limit:?} \
             ({spent} offers spent by the bootstrap)"
        );
        let c = bridge.inspect(|n| n.counters().clone()).await.unwrap();
        assert!(c.get(Count::SignalRateLimited) >= 1);
        assert!(c.get(Count::SignalRefusalSent) >= 2);
        assert_eq!(c.get(Count::SignalBad), 0);
    });
}
