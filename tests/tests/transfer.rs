//! End-to-end transfers through circuits of the in-memory network.

use onionpeer_core::node::api::{Event, FirstHop, StreamHandle, StreamTarget};
use onionpeer_core::node::config::{NodeConfig, Role};
use onionpeer_core::node::exit_policy::ExitPolicy;
use onionpeer_tests::{Network, NodeIx, Service, pattern};

/// A client, `relays` middle relays and an exit that accepts everything.
pub fn network(relays: usize) -> (Network, NodeIx, Vec<NodeIx>) {
    let mut net = Network::new();
    let op = net.add_node("op", NodeConfig::new([0; 32], Role::CLIENT, 0));
    let mut path = Vec::new();
    for i in 0..relays {
        path.push(net.add_node(
            &format!("relay{i}"),
            NodeConfig::new([0; 32], Role::RELAY, 0),
        ));
    }
    let mut exit_cfg = NodeConfig::new([0; 32], Role::EXIT, 0);
    exit_cfg.exit_policy = ExitPolicy::accept_all();
    path.push(net.add_node("exit", exit_cfg));
    net.add_service("echo.example", 7, Service::Echo);
    (net, op, path)
}

fn built(net: &Network, op: NodeIx) -> bool {
    net.events_of(op)
        .any(|e| matches!(e, Event::CircuitBuilt(_)))
}

fn opened(net: &Network, op: NodeIx, s: StreamHandle) -> bool {
    net.events_of(op)
        .any(|e| matches!(e, Event::StreamOpened { stream, .. } if *stream == s))
}

#[test]
fn ten_megabytes_each_way_through_four_hops() {
    let (mut net, op, hops) = network(3);
    let path = hops.iter().map(|&h| net.target(h)).collect();
    let now = net.now;
    let circ = net
        .taped(op)
        .build_circuit(now, path, FirstHop::Ntor)
        .unwrap();
    net.flush(op);
    net.drive_bounded(10_000, |n| built(n, op));
    let now = net.now;
    let s = net
        .taped(op)
        .open_stream(
            now,
            circ,
            StreamTarget::Tcp {
                host: "echo.example".into(),
                port: 7,
            },
        )
        .unwrap();
    net.flush(op);
    net.drive_bounded(10_000, |n| opened(n, op, s));

    const TOTAL: usize = 10 * 1024 * 1024;
    let data = pattern(0, TOTAL);
    let (mut sent, mut received) = (0usize, Vec::with_capacity(TOTAL));
    let mut buf = vec![0u8; 64 * 1024];
    let mut steps = 0u64;
    while received.len() < TOTAL {
        let now = net.now;
        if sent < TOTAL {
            sent += net.taped(op).write_stream(now, s, &data[sent..]).unwrap();
        }
        loop {
            let n = net.taped(op).read_stream(now, s, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
        net.flush(op);
        assert!(
            net.step(),
            "network idle with {} of {TOTAL} bytes back",
            received.len()
        );
        steps += 1;
        assert!(steps < 5_000_000, "no progress");
    }
    assert_eq!(received.len(), TOTAL);
    assert!(received == data, "echoed bytes differ");
    assert_eq!(net.service_received(), TOTAL);
    for ix in [op].iter().chain(&hops) {
        assert_eq!(
            net.node(*ix).counters().total(),
            0,
            "{}: {:?}",
            net.name(*ix),
            net.node(*ix).counters()
        );
    }
    println!(
        "10 MiB each way in {} of virtual time, {steps} steps",
        net.now
    );
}
