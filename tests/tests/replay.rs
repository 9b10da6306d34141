//! Replay: a node is a pure function of its config and inputs. Every call into every
//! node of a run is recorded on a text tape; replaying the tape into a fresh node with
//! the same seed reproduces every output byte for byte.

use onionpeer_core::Instant;
use onionpeer_core::node::api::FirstHop;
use onionpeer_tests::tape::{Divergence, replay};
use onionpeer_tests::{Network, chain_on, pattern};

fn recorded_run() -> (Network, usize, Vec<usize>, String) {
    let mut net = Network::new();
    net.record = true;
    let (mut net, op, hops) = chain_on(net, 2);
    let circ = net.build(op, &hops, FirstHop::Ntor);
    let build_tape = net.taped(op).tape.summary();
    let s = net.open(op, circ, "echo.example", 7);
    let data = pattern(0, 20_000);
    let now = net.now;
    assert_eq!(net.taped(op).write_stream(now, s, &data), Ok(data.len()));
    net.flush(op);
    let mut got = Vec::new();
    net.drive_bounded(100_000, |n| {
        n.read_available(op, s, &mut got);
        got.len() == data.len()
    });
    assert_eq!(got, data);
    (net, op, hops, build_tape)
}

#[test]
fn every_node_replays_byte_for_byte() {
    let (mut net, op, hops, _) = recorded_run();
    for ix in std::iter::once(op).chain(hops) {
        let text = net.taped(ix).tape.text();
        let calls = text.lines().count();
        assert!(calls > 20, "{} recorded only {calls} calls", net.name(ix));
        assert_eq!(
            replay(&text, net.config(ix), Instant::ZERO),
            Ok(calls),
            "{}",
            net.name(ix)
        );
    }
}

#[test]
fn a_changed_input_is_caught() {
    let (mut net, op, _, _) = recorded_run();
    let text = net.taped(op).tape.text();
    // Flip one bit inside the last relay cell the client received: its digest no longer
    // matches, so the client's outputs must differ from the recorded ones.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let i = lines
        .iter()
        .rposition(|l| l.starts_with("data "))
        .expect("a data line");
    let mid = lines[i].len() - 200;
    let flipped = match &lines[i][mid..=mid] {
        "0" => "1",
        _ => "0",
    };
    lines[i].replace_range(mid..=mid, flipped);
    let err: Divergence =
        replay(&(lines.join("\n") + "\n"), net.config(op), Instant::ZERO).unwrap_err();
    assert!(
        err.line > i,
        "diverged at {} before the change at {}",
        err.line,
        i + 1
    );
}

#[test]
fn same_seeds_give_the_same_tape() {
    let (mut a, op_a, _, _) = recorded_run();
    let (mut b, op_b, _, _) = recorded_run();
    assert_eq!(a.taped(op_a).tape.text(), b.taped(op_b).tape.text());
}

#[test]
fn three_hop_build_trace_snapshot() {
    let (_, _, _, build_tape) = recorded_run();
    insta::assert_snapshot!(build_tape);
}
