//! End-to-end transfers through circuits of the in-memory network.

use onionpeer_core::node::api::FirstHop;
use onionpeer_tests::{chain, pattern};

fn echo_through(relays: usize, first_hop: FirstHop, total: usize) {
    let (mut net, op, hops) = chain(relays);
    let circ = net.build(op, &hops, first_hop);
    let s = net.open(op, circ, "echo.example", 7);

    let data = pattern(0, total);
    let (mut sent, mut received) = (0usize, Vec::with_capacity(total));
    let mut buf = vec![0u8; 64 * 1024];
    let mut steps = 0u64;
    while received.len() < total {
        let now = net.now;
        if sent < total {
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
            "network idle with {} of {total} bytes back",
            received.len()
        );
        steps += 1;
        assert!(steps < 5_000_000, "no progress");
    }
    assert_eq!(received.len(), total);
    assert!(received == data, "echoed bytes differ");
    assert_eq!(net.service_received(), total);
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
        "{total} bytes each way through {} hops in {} of virtual time, {steps} steps",
        hops.len(),
        net.now
    );
}

#[test]
fn ten_megabytes_each_way_through_four_hops() {
    echo_through(3, FirstHop::Ntor, 10 * 1024 * 1024);
}

#[test]
fn create_fast_first_hop_three_hops() {
    echo_through(2, FirstHop::Fast, 1024 * 1024);
}

#[test]
fn single_hop_circuit() {
    echo_through(0, FirstHop::Fast, 100_000);
}
