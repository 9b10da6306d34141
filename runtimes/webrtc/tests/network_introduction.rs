//! A node signals its WebRTC links through the network on its own: peers whose HTTP
//! signalling endpoints nobody can reach (only the bridge's is reachable, and the bridge
//! reaches none) still link over WebRTC. The bridge verifies each registrant by an offer
//! down the circuit it registered on; the core names the bridge that handed a peer out as
//! its introducer and the offer goes through it (PEER_SIGNAL). An offer the network
//! cannot carry is refused at once (REFUSED), not left to time out.

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
    // The bridge reaches nobody's HTTP endpoint either: it verifies registrants by
    // offers down the circuits they registered on.
    let bridge_refused = Arc::new(Mutex::new(Vec::new()));
    let bridge_sig = NetworkSignaller::new(Some(Arc::new(OnlyTo {
        allowed: SocketAddr::from(([0, 0, 0, 0], 0)),
        refused: bridge_refused.clone(),
    })));
    let bridge = webrtc_peer(true, false, bridge_sig.clone(), tune).await;
    let (b, _, b_refused) = fenced_peer(&bridge, true).await;
    // The bridge has nobody to give B (its bootstrap ends only after its retries): what
    // matters is that the bridge verified B over its own circuit and can introduce it.
    b.command(Command::Bootstrap {
        via: BootstrapVia::Bridge(bridge.webrtc_target().unwrap().clone()),
    })
    .await
    .unwrap();
    registered(&bridge, b.peer_id()).await;
    let stats = bridge_sig.stats();
    assert!(
        stats.answered >= 1,
        "B verified over its circuit: {stats:?}"
    );
    assert!(
        bridge_refused.lock().unwrap().is_empty(),
        "the bridge tried HTTP"
    );
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

/// A dial whose introducer refuses the offer falls back to HTTP at once: C names the
/// bridge as introducer of a peer the bridge does not know (REFUSED NO_ROUTE); C's HTTP
/// fallback then gets the answer of the node at the dialled address (here the bridge's
/// own endpoint, the one C reaches), in milliseconds rather than after the 8 s wait.
#[test]
fn a_refused_offer_falls_back_to_http_at_once() {
    init_log();
    smol::block_on(async {
        let (bridge, _, (c, c_sig, c_refused)) = network(|_| {}).await;
        bootstrap(&c, &bridge).await;
        let before = c_sig.stats();
        let refused_before = c_refused.lock().unwrap().len();
        // A real offer, from an endpoint of the test's own.
        let socket = onionpeer_webrtc::rtc::bind_udp(any()).unwrap();
        let cert = onionpeer_webrtc::rtc::generate_cert().unwrap();
        let mut endpoint =
            onionpeer_webrtc::rtc::RtcEndpoint::new(socket, cert, Duration::from_secs(10)).unwrap();
        let (key, offer) = endpoint.offer().unwrap();
        let target = DialTarget {
            addr: bridge.webrtc_target().unwrap().addr,
            peer: Some(PeerId([0x77; 20])),
            introducer: Some(bridge.peer_id()),
        };
        let t = Instant::now();
        let answer = c_sig
            .exchange(&target, offer)
            .await
            .expect("the fallback's answer");
        let took = t.elapsed();
        eprintln!("refused, then answered by HTTP: {took:?}");
        assert!(answer.contains("a=fingerprint:sha-256"), "{answer}");
        endpoint.accept_answer(key, &answer).unwrap();
        let after = c_sig.stats();
        assert_eq!(after.refused, before.refused + 1, "{after:?}");
        assert_eq!(after.fallbacks, before.fallbacks + 1, "{after:?}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
        // HTTP to the bridge is allowed: this exchange was not one of C's refused ones.
        assert_eq!(c_refused.lock().unwrap().len(), refused_before);
        let counters = bridge.inspect(|n| n.counters().clone()).await.unwrap();
        assert!(counters.get(Count::SignalRefusalSent) >= 1);
    });
}
