//! Flow control, failures and hostile input, on the in-memory network.

use onionpeer_core::cells::channel::{
    ChanCell, ChanMsg, ChannelCodec, CircId, CreateFast, DestroyReason, Relay, RelayCellBody,
    Versions,
};
use onionpeer_core::node::api::{Event, FirstHop, LinkBinding, LinkCloseReason};
use onionpeer_core::node::counters::Count;
use onionpeer_tests::{Service, chain, pattern};

const CELL: usize = 498;

fn closed_reason(events: &[&Event]) -> Option<DestroyReason> {
    events.iter().find_map(|e| match e {
        Event::CircuitClosed { reason, .. } => Some(*reason),
        _ => None,
    })
}

#[test]
fn stream_window_bounds_unread_data() {
    let (mut net, op, hops) = chain(2);
    net.add_service("source.example", 80, Service::Source(1 << 20));
    let circ = net.build(op, &hops, FirstHop::Ntor);
    let s = net.open(op, circ, "source.example", 80);
    // The application reads nothing: the exit may send one stream window, no more.
    let until = net.now + std::time::Duration::from_secs(30);
    net.drive_until(until);
    // At most one window of cells (not all of them full), and the window — not a lack
    // of data — is what stopped the exit.
    let buffered = net.node(op).stream_buffered(s);
    assert!((450 * CELL..=500 * CELL).contains(&buffered), "{buffered}");
    // Reading releases SENDMEs; the whole megabyte then arrives intact.
    let mut got = Vec::new();
    net.drive_bounded(1_000_000, |n| {
        n.read_available(op, s, &mut got);
        got.len() == 1 << 20
    });
    assert!(got == pattern(0, 1 << 20));
    assert_eq!(net.node(op).counters().total(), 0);
}

#[test]
fn circuit_window_bounds_cells_in_flight() {
    let (mut net, op, hops) = chain(1);
    let start = std::time::Duration::from_secs(5);
    net.add_service("source.example", 80, Service::LateSource(1 << 20, start));
    let circ = net.build(op, &hops, FirstHop::Ntor);
    let streams: Vec<_> = (0..3)
        .map(|_| net.open(op, circ, "source.example", 80))
        .collect();
    // The sources start later. Hold everything the client sends to its guard: no SENDME
    // reaches the exit, so it may have at most one circuit window (1000 cells)
    // outstanding, though the three stream windows would allow 1500.
    let guard = hops[0];
    net.hold(op, guard);
    let until = net.now + std::time::Duration::from_secs(30);
    net.drive_until(until);
    let buffered: usize = streams
        .iter()
        .map(|&s| net.node(op).stream_buffered(s))
        .sum();
    assert!((900 * CELL..=1000 * CELL).contains(&buffered), "{buffered}");
    net.release(op, guard);
    let mut got = Vec::new();
    net.drive_bounded(1_000_000, |n| {
        for &s in &streams {
            n.read_available(op, s, &mut got);
        }
        got.len() == 3 << 20
    });
    for ix in [op].iter().chain(&hops) {
        assert_eq!(
            net.node(*ix).counters().total(),
            0,
            "{:?}",
            net.node(*ix).counters()
        );
    }
}

#[test]
fn relay_vanishing_mid_transfer_closes_the_circuit_cleanly() {
    let (mut net, op, hops) = chain(2);
    let circ = net.build(op, &hops, FirstHop::Ntor);
    let s = net.open(op, circ, "echo.example", 7);
    let now = net.now;
    net.taped(op)
        .write_stream(now, s, &pattern(0, 200_000))
        .unwrap();
    net.flush(op);
    for _ in 0..20 {
        net.step();
    }
    net.crash(hops[1]);
    net.drive_bounded(100_000, |n| {
        n.events_of(op)
            .any(|e| matches!(e, Event::CircuitClosed { .. }))
    });
    let events: Vec<_> = net.events_of(op).collect();
    assert_eq!(closed_reason(&events), Some(DestroyReason::CHANNEL_CLOSED));
    // The stream ends with the circuit (after any bytes already received are read).
    let mut buf = vec![0u8; 1 << 20];
    let now = net.now;
    let _ = net.taped(op).read_stream(now, s, &mut buf);
    net.flush(op);
    assert!(
        net.events_of(op)
            .any(|e| matches!(e, Event::StreamClosed { stream, .. } if *stream == s))
    );
    let until = net.now + std::time::Duration::from_secs(5);
    net.drive_until(until);
    // Nothing is left on the survivors.
    let (_, circuits, streams, exits) = net.node(op).census();
    assert_eq!((circuits, streams, exits), (0, 0, 0));
    let (_, circuits, _, exits) = net.node(hops[0]).census();
    assert_eq!((circuits, exits), (0, 0));
    assert_eq!(net.node(op).counters().total(), 0);
}

#[test]
fn malformed_cell_closes_the_link_with_a_reason() {
    let (mut net, op, hops) = chain(1);
    let circ = net.build(op, &hops, FirstHop::Ntor);
    let guard = hops[0];
    let conn = net.conns_between(guard, op)[0];
    // A CREATE2 whose HLEN runs past the cell body.
    let mut cell = vec![0x80, 0, 0, 9, 10, 0, 2, 0xff, 0xff];
    cell.resize(514, 0);
    net.inject(guard, conn, &cell);
    assert_eq!(net.node(guard).counters().get(Count::MalformedCell), 1);
    assert!(net.events_of(guard).any(|e| matches!(
        e,
        Event::LinkDown {
            reason: LinkCloseReason::ProtocolViolation,
            ..
        }
    )));
    net.drive_bounded(10_000, |n| {
        n.events_of(op)
            .any(|e| matches!(e, Event::CircuitClosed { circuit, .. } if *circuit == circ))
    });
}

#[test]
fn wrong_state_cell_in_handshake_is_refused() {
    let (mut net, _op, hops) = chain(0);
    let relay = hops[0];
    let now = net.now;
    let conn = net
        .taped(relay)
        .accept_link(now, None, LinkBinding::default())
        .unwrap();
    net.flush(relay);
    let versions = ChannelCodec::negotiating()
        .encode_to_vec(&ChanCell::new(
            None,
            Versions {
                versions: vec![4, 5],
            },
        ))
        .unwrap();
    net.inject(relay, conn, &versions);
    // Before the initiator's NETINFO, a CREATE_FAST is out of place.
    let create = ChannelCodec::new(5)
        .unwrap()
        .encode_to_vec(&ChanCell::new(
            CircId::new(0x8000_0001),
            CreateFast { x: [7; 20] },
        ))
        .unwrap();
    net.inject(relay, conn, &create);
    assert_eq!(net.node(relay).counters().get(Count::UnexpectedCell), 1);
    assert_eq!(net.node(relay).census().0, 0, "link dropped");
}

#[test]
fn relay_cell_with_a_bad_digest_destroys_the_circuit() {
    let (mut net, op, hops) = chain(1);
    let circ = net.build(op, &hops, FirstHop::Ntor);
    let (op_conn, id) = net.node(op).circuit_first_hop(circ).unwrap();
    let guard = hops[0];
    let conn = net.conns_between(guard, op)[0];
    assert!(net.conns_between(op, guard).contains(&op_conn));
    // Random bytes as a RELAY cell from the client: no hop recognizes them, and the last
    // hop has nowhere to forward them.
    let junk = ChannelCodec::new(5)
        .unwrap()
        .encode_to_vec(&ChanCell::new(
            Some(id),
            ChanMsg::Relay(Relay {
                body: RelayCellBody([0x5a; 509]),
            }),
        ))
        .unwrap();
    net.inject(guard, conn, &junk);
    net.drive_bounded(10_000, |n| {
        n.events_of(op)
            .any(|e| matches!(e, Event::CircuitClosed { circuit, .. } if *circuit == circ))
    });
    let events: Vec<_> = net.events_of(op).collect();
    assert_eq!(closed_reason(&events), Some(DestroyReason::PROTOCOL));
    assert_eq!(
        net.node(hops[1])
            .counters()
            .get(Count::UnrecognizedRelayCell),
        1
    );
}

#[test]
fn forged_link_certificate_binding_is_refused() {
    let (mut net, op, hops) = chain(1);
    net.forge_binding_of = Some(hops[0]);
    let targets = hops.iter().map(|&h| net.target(h)).collect();
    let now = net.now;
    let circ = net
        .taped(op)
        .build_circuit(now, targets, FirstHop::Ntor)
        .unwrap();
    net.flush(op);
    net.drive_bounded(10_000, |n| {
        n.events_of(op)
            .any(|e| matches!(e, Event::CircuitClosed { circuit, .. } if *circuit == circ))
    });
    assert_eq!(net.node(op).counters().get(Count::BadCertificates), 1);
    assert!(net.events_of(op).any(|e| matches!(
        e,
        Event::LinkDown {
            reason: LinkCloseReason::BadCertificates,
            ..
        }
    )));
}

#[test]
fn relay_proving_another_identity_is_refused() {
    let (mut net, op, hops) = chain(1);
    let mut first = net.target(hops[0]);
    first.id = net.target(hops[1]).id;
    let now = net.now;
    let circ = net
        .taped(op)
        .build_circuit(now, vec![first], FirstHop::Ntor)
        .unwrap();
    net.flush(op);
    net.drive_bounded(10_000, |n| {
        n.events_of(op)
            .any(|e| matches!(e, Event::CircuitClosed { circuit, .. } if *circuit == circ))
    });
    assert_eq!(net.node(op).counters().get(Count::BadCertificates), 1);
}

#[test]
fn exit_policy_refusal_reaches_the_client() {
    let (mut net, op, hops) = chain(0);
    let circ = net.build(op, &hops, FirstHop::Fast);
    // The exit accepts everything but the service does not exist: connection refused.
    let now = net.now;
    let target = onionpeer_core::node::api::StreamTarget::Tcp {
        host: "nowhere.example".into(),
        port: 1,
    };
    let s = net.taped(op).open_stream(now, circ, target).unwrap();
    net.flush(op);
    net.drive_bounded(10_000, |n| {
        n.events_of(op)
            .any(|e| matches!(e, Event::StreamClosed { stream, .. } if *stream == s))
    });
    let reason = net.events_of(op).find_map(|e| match e {
        Event::StreamClosed { reason, .. } => Some(*reason),
        _ => None,
    });
    assert_eq!(
        reason,
        Some(onionpeer_core::cells::relay::EndReason::CONNECTREFUSED)
    );
}
