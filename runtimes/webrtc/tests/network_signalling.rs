//! WebRTC links signalled through the onionpeer network (PEER_SIGNAL), no HTTP: a bridge
//! linked to peers A and B over TLS introduces them; A's link to B comes up over WebRTC,
//! a circuit is built over it and data moves; a fingerprint that does not match (a
//! forged one in the carried SDP, or a peer signing another) is refused.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use onionpeer_core::node::api::{BootstrapVia, Command, Event, FirstHop, LinkCloseReason};
use onionpeer_core::node::config::{NodeConfig, PeersmConfig, Role};
use onionpeer_core::node::counters::Count;
use onionpeer_core::node::exit_policy::ExitPolicy;
use onionpeer_smol::driver::WeakNodeHandle;
use onionpeer_smol::tls::{LinkCert, TlsListener, TlsResponder};
use onionpeer_webrtc::driver::{
    DialPolicy, DriverConfig, NodeHandle, dial_only_endpoint, os_seed, spawn_node,
};
use onionpeer_webrtc::netsignal::{Introduction, NetworkSignaller};
use onionpeer_webrtc::signal::{AnswerFuture, DialTarget, HttpSignaller, Signaller};
use smol::future::FutureExt as _;

/// A Peersm peer whose links are TLS unless its signaller routes them (its PEER record
/// gives its TLS address); it has a WebRTC endpoint without any HTTP signalling.
async fn peer(
    bridge: bool,
    exit: bool,
    signaller: Arc<dyn Signaller>,
    sign_fingerprint: Option<[u8; 32]>,
) -> NodeHandle {
    let listener = TlsListener::bind(
        any(),
        TlsResponder::new(LinkCert::generate().unwrap()).unwrap(),
    )
    .await
    .unwrap();
    let role = if exit { Role::EXIT } else { Role::RELAY };
    let mut node = NodeConfig::new(os_seed().unwrap(), role, 0);
    if exit {
        node.exit_policy = "accept 127.0.0.1:*".parse::<ExitPolicy>().unwrap();
    }
    let mut p = PeersmConfig::new(listener.local_addr().unwrap());
    p.bridge = bridge;
    node.peersm = Some(p);
    spawn_node(DriverConfig {
        node,
        listener: Some(listener),
        endpoint: dial_only_endpoint(any()).unwrap(),
        signalling: None,
        signaller,
        dial: DialPolicy::WebRtcFor(BTreeSet::new()),
        sign_fingerprint,
    })
    .unwrap()
}

async fn bootstrap(node: &NodeHandle, bridge: &NodeHandle) {
    let events = node.events();
    node.command(Command::Bootstrap {
        via: BootstrapVia::Bridge(bridge.relay_target().unwrap().clone()),
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
}

/// A bridge, B (an exit to 127.0.0.1) bootstrapped through it, and A whose signaller
/// sends its offers for B's address through the bridge.
async fn introduced(
    a_signaller: impl FnOnce(NetworkSignaller) -> Arc<dyn Signaller>,
    b_signs: Option<[u8; 32]>,
) -> (NodeHandle, NodeHandle, NodeHandle) {
    let bridge = peer(true, false, Arc::new(HttpSignaller), None).await;
    let b = peer(false, true, Arc::new(HttpSignaller), b_signs).await;
    // B registers with the bridge (which has nobody to give it yet): once the bridge
    // verified B, it has its own circuit to B and can introduce it.
    b.command(Command::Bootstrap {
        via: BootstrapVia::Bridge(bridge.relay_target().unwrap().clone()),
    })
    .await
    .unwrap();
    let idb = b.peer_id();
    async {
        while !bridge
            .inspect(move |n| n.routing_table().is_some_and(|t| t.get(&idb).is_some()))
            .await
            .unwrap()
        {
            smol::Timer::after(Duration::from_millis(20)).await;
        }
    }
    .or(give_up(60, "B registered at the bridge"))
    .await;
    let net = NetworkSignaller::new(Some(Arc::new(HttpSignaller)));
    net.introduce(
        b.relay_target().unwrap().addr,
        Introduction {
            peer: b.peer_id(),
            via: Some(bridge.peer_id()),
        },
    );
    let a = peer(false, false, a_signaller(net), None).await;
    (bridge, a, b)
}

#[test]
fn peers_introduced_by_a_bridge_link_over_webrtc_and_move_data() {
    init_log();
    smol::block_on(async {
        let (bridge, a, b) = introduced(|n| Arc::new(n), None).await;
        let a_events = a.events();
        // A's bootstrap meets B through the bridge: that link is WebRTC.
        bootstrap(&a, &bridge).await;
        fetch_1mib_through(&a, b.relay_target().unwrap().clone()).await;
        // The link to B proved B's id and is a WebRTC one (A has no other).
        let mut up = Vec::new();
        while let Ok(e) = a_events.try_recv() {
            if let Event::LinkUp { peer: Some(p), .. } = e {
                up.push(p);
            }
        }
        assert!(up.contains(&b.peer_id()), "links up: {up:?}");
        assert_eq!(a.webrtc_links().await, 1);
        assert_eq!(b.webrtc_links().await, 1);
        assert_eq!(bridge.webrtc_links().await, 0);
        // The bridge passed one offer on (route kept until it expires), refused nothing.
        let (routes, counters) = bridge
            .inspect(|n| (n.signal_census().0, n.counters().clone()))
            .await
            .unwrap();
        assert!(routes >= 1);
        for c in [Count::SignalBad, Count::SignalNoRoute, Count::SignalRefused] {
            assert_eq!(counters.get(c), 0, "{c:?}");
        }
    });
}

/// B signs a fingerprint that is not the one in its carried answer: A refuses the link.
#[test]
fn peer_signing_another_fingerprint_is_refused() {
    init_log();
    smol::block_on(async {
        let (bridge, a, b) = introduced(|n| Arc::new(n), Some([0x5a; 32])).await;
        bootstrap(&a, &bridge).await;
        let r = a
            .build_circuit(vec![b.relay_target().unwrap().clone()], FirstHop::Ntor)
            .or(give_up(60, "circuit build"))
            .await;
        assert!(r.is_err(), "a circuit over an unproven link");
        let refused = a
            .inspect(|n| n.counters().get(Count::BadCertificates))
            .await
            .unwrap();
        assert!(refused >= 1);
    });
}

/// Rewrites the fingerprint in every answer A receives (an introducer forging it).
struct Forging(NetworkSignaller);

impl Signaller for Forging {
    fn exchange(&self, to: &DialTarget, offer: String) -> AnswerFuture {
        let answer = self.0.exchange(to, offer);
        Box::pin(async move {
            let answer = answer.await?;
            Ok(answer
                .lines()
                .map(|l| {
                    if l.starts_with("a=fingerprint:sha-256 ") {
                        let fake = vec!["AB"; 32].join(":");
                        format!("a=fingerprint:sha-256 {fake}")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\r\n")
                + "\r\n")
        })
    }
    fn routes(&self, addr: &SocketAddr) -> bool {
        self.0.routes(addr)
    }
    fn attach(&self, node: WeakNodeHandle) {
        self.0.attach(node)
    }
}

#[test]
fn forged_fingerprint_in_the_carried_answer_is_refused() {
    init_log();
    smol::block_on(async {
        let (bridge, a, b) = introduced(|n| Arc::new(Forging(n)), None).await;
        let a_events = a.events();
        bootstrap(&a, &bridge).await;
        let r = a
            .build_circuit(vec![b.relay_target().unwrap().clone()], FirstHop::Ntor)
            .or(give_up(90, "circuit build"))
            .await;
        assert!(r.is_err(), "a circuit over a forged link");
        let mut downs = Vec::new();
        while let Ok(e) = a_events.try_recv() {
            if let Event::LinkDown { reason, .. } = e {
                downs.push(reason);
            }
        }
        assert!(
            !downs.is_empty() && !downs.contains(&LinkCloseReason::Closed),
            "link downs: {downs:?}"
        );
    });
}
