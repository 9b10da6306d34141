//! PEER_SIGNAL on real nodes in the in-memory network: a bridge introduces two peers that
//! share no circuit, a multi-cell offer and its answer cross it, and the introducer
//! refuses what it cannot route.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use onionpeer_core::cells::relay::{SignalKind, SignalRefusal};
use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::node::api::{BootstrapVia, Command, CommandOk, Event};
use onionpeer_core::node::config::{NodeConfig, PeersmConfig, Role};
use onionpeer_core::node::counters::Count;
use onionpeer_tests::{Network, NodeIx};

fn add_peer(net: &mut Network, n: &mut usize, name: &str, bridge: bool) -> NodeIx {
    add_peer_with(net, n, name, bridge, |_| {})
}

fn add_peer_with(
    net: &mut Network,
    n: &mut usize,
    name: &str,
    bridge: bool,
    tune: impl FnOnce(&mut PeersmConfig),
) -> NodeIx {
    let mut cfg = NodeConfig::new([0; 32], Role::RELAY, 0);
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, *n as u8 + 1)), 9001);
    let mut p = PeersmConfig::new(addr);
    p.bridge = bridge;
    tune(&mut p);
    p.dht.verify_listed = false;
    cfg.peersm = Some(p);
    *n += 1;
    net.add_node(name, cfg)
}

fn settle(net: &mut Network, secs: u64) {
    let t = net.now + Duration::from_secs(secs);
    net.drive_until(t);
}

/// A bridge, and peers A and B bootstrapped through it (the bridge verified both, so it
/// has its own circuits to them).
fn three() -> (Network, NodeIx, NodeIx, NodeIx) {
    three_with(|_| {})
}

/// [`three`] with the bridge's config tuned.
fn three_with(tune: impl FnOnce(&mut PeersmConfig)) -> (Network, NodeIx, NodeIx, NodeIx) {
    let mut net = Network::new();
    let mut n = 0;
    let bridge = add_peer_with(&mut net, &mut n, "bridge", true, tune);
    let a = add_peer(&mut net, &mut n, "a", false);
    let b = add_peer(&mut net, &mut n, "b", false);
    let via = BootstrapVia::Bridge(net.target(bridge));
    for ix in [a, b] {
        let now = net.now;
        net.taped(ix)
            .command(now, Command::Bootstrap { via: via.clone() })
            .unwrap();
        net.flush(ix);
        settle(&mut net, 20);
    }
    (net, bridge, a, b)
}

fn signals(net: &Network, ix: NodeIx) -> Vec<(PeerId, u32, SignalKind, Vec<u8>)> {
    net.events_of(ix)
        .filter_map(|e| match e {
            Event::SignalReceived {
                from,
                session,
                kind,
                sdp,
            } => Some((*from, *session, *kind, sdp.clone())),
            _ => None,
        })
        .collect()
}

fn signal(net: &mut Network, ix: NodeIx, cmd: Command) {
    let now = net.now;
    assert_eq!(net.taped(ix).command(now, cmd), Ok(CommandOk::Done));
    net.flush(ix);
}

/// None of `nodes` dropped, refused or failed to route a signal, nor saw a malformed one.
fn assert_no_signal_trouble(net: &Network, nodes: &[NodeIx]) {
    for &ix in nodes {
        let c = net.node(ix).counters();
        for k in [
            Count::SignalBad,
            Count::SignalNoRoute,
            Count::SignalRefused,
            Count::SignalDropped,
            Count::MalformedRelayMessage,
        ] {
            assert_eq!(c.get(k), 0, "{}: {k:?}", net.name(ix));
        }
    }
}

#[test]
fn bridge_introduces_two_peers_offer_and_answer_cross_it() {
    let (mut net, bridge, a, b) = three();
    let (ida, idb, idbr) = (
        net.node(a).peer_id(),
        net.node(b).peer_id(),
        net.node(bridge).peer_id(),
    );
    // An offer longer than three cells.
    let offer: Vec<u8> = (0..1500u32)
        .map(|i| b"v=0 o=- a=fingerprint"[i as usize % 21])
        .collect();
    signal(
        &mut net,
        a,
        Command::Signal {
            to: idb,
            via: Some(idbr),
            session: 42,
            kind: SignalKind::OFFER,
            sdp: offer.clone(),
        },
    );
    net.drive_bounded(200_000, |n| !signals(n, b).is_empty());
    assert_eq!(signals(&net, b), vec![(ida, 42, SignalKind::OFFER, offer)]);
    assert_eq!(
        net.node(bridge).signal_census().0,
        1,
        "one route at the bridge"
    );

    let answer = b"v=0 answer".repeat(60);
    signal(
        &mut net,
        b,
        Command::Signal {
            to: ida,
            via: None,
            session: 42,
            kind: SignalKind::ANSWER,
            sdp: answer.clone(),
        },
    );
    net.drive_bounded(200_000, |n| !signals(n, a).is_empty());
    assert_eq!(
        signals(&net, a),
        vec![(idb, 42, SignalKind::ANSWER, answer)]
    );
    assert_no_signal_trouble(&net, &[a, b, bridge]);
    // Routes and reply paths expire.
    settle(&mut net, 40);
    signal(
        &mut net,
        a,
        Command::Signal {
            to: idb,
            via: Some(idbr),
            session: 43,
            kind: SignalKind::OFFER,
            sdp: b"again".to_vec(),
        },
    );
    net.drive_bounded(200_000, |n| signals(n, b).len() == 2);
    assert_eq!(
        net.node(bridge).signal_census().0,
        1,
        "the old route expired"
    );
}

#[test]
fn introducer_refuses_unknown_targets_and_unrouted_answers() {
    let (mut net, bridge, a, b) = three();
    let idbr = net.node(bridge).peer_id();
    let idb = net.node(b).peer_id();
    let stranger = PeerId([0x77; 20]);
    signal(
        &mut net,
        a,
        Command::Signal {
            to: stranger,
            via: Some(idbr),
            session: 1,
            kind: SignalKind::OFFER,
            sdp: b"v=0".to_vec(),
        },
    );
    settle(&mut net, 2);
    assert_eq!(net.node(bridge).counters().get(Count::SignalNoRoute), 1);
    // A is told at once (not left to time out): REFUSED NO_ROUTE, named by the target.
    assert_eq!(
        signals(&net, a),
        vec![(
            stranger,
            1,
            SignalKind::REFUSED,
            SignalRefusal::NO_ROUTE.encode().to_vec()
        )]
    );
    assert_eq!(net.node(bridge).counters().get(Count::SignalRefusalSent), 1);
    // An answer to an offer that never crossed the bridge has no route.
    signal(
        &mut net,
        a,
        Command::Signal {
            to: idb,
            via: Some(idbr),
            session: 9,
            kind: SignalKind::ANSWER,
            sdp: b"v=0".to_vec(),
        },
    );
    settle(&mut net, 2);
    assert_eq!(net.node(bridge).counters().get(Count::SignalNoRoute), 2);
    assert!(signals(&net, b).is_empty());
    // Commands the node refuses outright.
    let now = net.now;
    let me = net.node(a).peer_id();
    let bad = |to, kind, sdp: Vec<u8>| Command::Signal {
        to,
        via: Some(idbr),
        session: 1,
        kind,
        sdp,
    };
    assert!(
        net.taped(a)
            .command(now, bad(me, SignalKind::OFFER, b"x".to_vec()))
            .is_err()
    );
    assert!(
        net.taped(a)
            .command(now, bad(stranger, SignalKind(7), b"x".to_vec()))
            .is_err()
    );
    assert!(
        net.taped(a)
            .command(now, bad(stranger, SignalKind::OFFER, vec![]))
            .is_err()
    );
    assert!(
        net.taped(a)
            .command(now, bad(stranger, SignalKind::OFFER, vec![0; 8193]))
            .is_err()
    );
}

#[test]
fn a_bridge_is_the_introducer_of_the_peer_it_handed_out() {
    let (net, bridge, a, b) = three();
    let (ida, idbr) = (net.node(a).peer_id(), net.node(bridge).peer_id());
    // B joined after A: the bridge's DB_FOUND_PEER gave it A.
    let found_a = net
        .events_of(b)
        .any(|e| matches!(e, Event::PeerFound(r) if r.id == ida));
    assert!(found_a, "B met A through the bridge");
    assert_eq!(net.node(b).introducer_of(&ida), Some(idbr));
    // Nobody introduces the bridge, and nobody is their own introducer.
    assert_eq!(net.node(b).introducer_of(&idbr), None);
    assert_eq!(net.node(b).introducer_of(&net.node(b).peer_id()), None);
}

#[test]
fn introducer_refuses_offers_past_the_offerers_rate_at_once() {
    let (mut net, bridge, a, b) = three_with(|p| {
        p.signal.offer_burst = 3;
        p.signal.offers_per_sec = 1;
    });
    let (ida, idb, idbr) = (
        net.node(a).peer_id(),
        net.node(b).peer_id(),
        net.node(bridge).peer_id(),
    );
    // Five offers in one go: three pass (the burst), two are refused RATE_LIMITED.
    for session in 1..=5 {
        signal(
            &mut net,
            a,
            Command::Signal {
                to: idb,
                via: Some(idbr),
                session,
                kind: SignalKind::OFFER,
                sdp: b"v=0 offer".to_vec(),
            },
        );
    }
    net.drive_bounded(200_000, |n| {
        signals(n, b).len() == 3 && signals(n, a).len() == 2
    });
    let refusals = signals(&net, a);
    let limited = SignalRefusal::RATE_LIMITED.encode().to_vec();
    assert_eq!(
        refusals,
        vec![
            (idb, 4, SignalKind::REFUSED, limited.clone()),
            (idb, 5, SignalKind::REFUSED, limited.clone())
        ]
    );
    assert_eq!(
        signals(&net, b).iter().map(|s| s.1).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let c = net.node(bridge).counters();
    assert_eq!(c.get(Count::SignalRateLimited), 2);
    assert_eq!(c.get(Count::SignalRefusalSent), 2);
    // B refuses one of the offers it got: the refusal travels the route back to A.
    signal(
        &mut net,
        b,
        Command::Signal {
            to: ida,
            via: None,
            session: 2,
            kind: SignalKind::REFUSED,
            sdp: SignalRefusal::UNANSWERED.encode().to_vec(),
        },
    );
    net.drive_bounded(200_000, |n| signals(n, a).len() == 3);
    assert_eq!(
        signals(&net, a)[2],
        (
            idb,
            2,
            SignalKind::REFUSED,
            SignalRefusal::UNANSWERED.encode().to_vec()
        )
    );
    // A refusal answers only an offer received: B cannot send one out of the blue.
    let now = net.now;
    assert!(
        net.taped(b)
            .command(
                now,
                Command::Signal {
                    to: ida,
                    via: Some(idbr),
                    session: 99,
                    kind: SignalKind::REFUSED,
                    sdp: vec![0],
                }
            )
            .is_err()
    );
    // The bucket refills: a second later one more offer passes.
    settle(&mut net, 1);
    signal(
        &mut net,
        a,
        Command::Signal {
            to: idb,
            via: Some(idbr),
            session: 6,
            kind: SignalKind::OFFER,
            sdp: b"v=0 offer".to_vec(),
        },
    );
    net.drive_bounded(200_000, |n| signals(n, b).len() == 4);
    assert_eq!(net.node(bridge).counters().get(Count::SignalRateLimited), 2);
}

/// A registrant is reached down the circuit it registered on: the bridge names it as its
/// own introducer while that circuit is open, and an offer sent to it there is answered
/// the same way. A fellow bridge that got the registration forwarded reaches the
/// registrant through the bridge that forwarded it, which passes the offer on. Neither
/// needs a signalling endpoint of the registrant (PROTOCOL.md section 12).
#[test]
fn registrants_are_reached_down_the_circuit_they_registered_on() {
    let mut net = Network::new();
    let mut n = 0;
    // As the WebRTC runtime sets it: registrations keep their circuit for the offer.
    let hold = |p: &mut PeersmConfig| p.signal.registration_hold = Duration::from_secs(30);
    let br1 = add_peer_with(&mut net, &mut n, "bridge1", true, hold);
    let br2 = add_peer_with(&mut net, &mut n, "bridge2", true, hold);
    let a = add_peer_with(&mut net, &mut n, "a", false, hold);
    let (ida, id1, id2) = (
        net.node(a).peer_id(),
        net.node(br1).peer_id(),
        net.node(br2).peer_id(),
    );
    // Bridge 1 forwards its registrations to bridge 2.
    let fellow = BootstrapVia::Bridge(net.target(br2));
    let now = net.now;
    net.taped(br1)
        .command(now, Command::Bootstrap { via: fellow })
        .unwrap();
    net.flush(br1);
    settle(&mut net, 2);
    let via = BootstrapVia::Bridge(net.target(br1));
    let now = net.now;
    net.taped(a)
        .command(now, Command::Bootstrap { via })
        .unwrap();
    net.flush(a);
    net.drive_bounded(200_000, |n| n.node(br2).introducer_of(&ida).is_some());
    assert_eq!(net.node(br1).introducer_of(&ida), Some(ida));
    assert_eq!(net.node(br2).introducer_of(&ida), Some(ida));

    let exchange = |net: &mut Network, from: NodeIx, from_id: PeerId, session: u32| {
        let offer = format!("v=0 offer from {}", net.name(from)).into_bytes();
        signal(
            net,
            from,
            Command::Signal {
                to: ida,
                via: Some(ida),
                session,
                kind: SignalKind::OFFER,
                sdp: offer.clone(),
            },
        );
        let got = |n: &mut Network| signals(n, a).into_iter().any(|s| s.1 == session);
        net.drive_bounded(200_000, got);
        assert!(
            signals(net, a).contains(&(from_id, session, SignalKind::OFFER, offer)),
            "the offer from {} reached A",
            net.name(from)
        );
        signal(
            net,
            a,
            Command::Signal {
                to: from_id,
                via: None,
                session,
                kind: SignalKind::ANSWER,
                sdp: b"v=0 answer".to_vec(),
            },
        );
        let answered = |n: &mut Network| signals(n, from).iter().any(|s| s.1 == session);
        net.drive_bounded(200_000, answered);
        assert!(
            signals(net, from).contains(&(
                ida,
                session,
                SignalKind::ANSWER,
                b"v=0 answer".to_vec()
            )),
            "A's answer reached {}",
            net.name(from)
        );
    };
    exchange(&mut net, br1, id1, 1);
    exchange(&mut net, br2, id2, 2);
    // Bridge 1 passed bridge 2's offer on (one route); nothing was refused or dropped.
    assert_eq!(net.node(br1).signal_census().0, 1);
    assert_no_signal_trouble(&net, &[a, br1, br2]);
}
