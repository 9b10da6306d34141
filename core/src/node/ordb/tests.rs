//! The ORDB function on one node: arbitrary DB_* messages never panic and never grow its
//! state past the configured bounds.

use super::*;
use crate::Instant;
use crate::cells::relay::RelayCmd;
use crate::node::config::{NodeConfig, PeersmConfig, Role};

const DB_CMDS: [u8; 8] = [80, 81, 82, 83, 84, 85, 93, 94];

fn node() -> (Node, Name20) {
    let mut cfg = NodeConfig::new([3; 32], Role::RELAY, 0);
    let mut p = PeersmConfig::new("10.0.0.1:9001".parse().unwrap());
    p.ordb.max_serving = 4;
    p.ordb.max_splices = 4;
    p.ordb.max_names = 8;
    p.ordb.refs_per_name = 3;
    cfg.peersm = Some(p);
    let mut n = Node::new(cfg, Instant::ZERO).unwrap();
    let name = match n
        .command(
            Instant::ZERO,
            Command::Seed {
                data: alloc::vec![7; 3000],
                mime_type: "text/plain".into(),
                key: Some([1; 32]),
            },
        )
        .unwrap()
    {
        CommandOk::Content(n) => n,
        o => panic!("{o:?}"),
    };
    (n, name)
}

/// Feed `input` as a sequence of DB_* messages on a few (absent) circuits.
fn feed(n: &mut Node, name: &Name20, input: &[u8]) {
    let mut rest = input;
    while let [op, circ, sid, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(len);
        rest = next;
        let key = CircKey(1_000 + u64::from(circ % 4));
        let sid = StreamId::new(u16::from(*sid));
        let msg = if op & 0x80 != 0 {
            // A query for the seeded name, so serving paths run too.
            let [a, b, c, ..] = *body else { continue };
            DbQuery {
                hash_name: HashName::new(name).unwrap(),
                chunk: u64::from(a),
                nb_chunks: u16::from(b),
                counter: c % 7,
            }
            .into()
        } else {
            let cmd = RelayCmd(DB_CMDS[usize::from(op % 8)]);
            match RelayMsg::decode(cmd, body) {
                Ok(m) => m,
                Err(_) => continue,
            }
        };
        n.on_ordb_msg(key, sid, msg);
        let c = n.ordb_census();
        assert!(c[0] <= 4 && c[1] <= 4, "{c:?}");
        assert!(c[2] <= 8 && c[3] <= 8 * 3, "{c:?}");
        assert!(c[4] <= 32 && c[6] == 0, "{c:?}");
    }
}

#[test]
fn arbitrary_db_messages_never_panic_and_state_stays_bounded() {
    bolero::check!().for_each(|input: &[u8]| {
        let (mut n, name) = node();
        feed(&mut n, &name, input);
    });
}

#[test]
fn loop_counter_and_unknown_names_end_without_state() {
    let (mut n, name) = node();
    let key = CircKey(7);
    let sid = StreamId::new(9);
    let q = |counter| DbQuery {
        hash_name: HashName::new(&[1; 20]).unwrap(),
        chunk: 1,
        nb_chunks: 5,
        counter,
    };
    n.on_ordb_msg(key, sid, q(5).into());
    assert_eq!(n.counters().get(Count::OrdbLoopStopped), 1);
    // Unknown name, no lists, empty routing table: the lookup ends at once, UNAVAILABLE.
    n.on_ordb_msg(key, sid, q(0).into());
    assert_eq!(n.ordb_census(), [0; 7]);
    assert!(n.counters().get(Count::OrdbUnavailable) >= 2);
    // A DB_INFO makes a reference; without ORDB circuits nobody is told.
    let info = DbInfo {
        hash_name: HashName::new(&name).unwrap(),
        progress: Progress::Half,
        facilitator: true,
        have: None,
    };
    n.on_ordb_msg(key, None, info.into());
    assert_eq!(n.ordb_references(&HashName::new(&name).unwrap()), 1);
}

fn node_with(tweak: impl Fn(&mut PeersmConfig)) -> Node {
    let mut cfg = NodeConfig::new([4; 32], Role::RELAY, 0);
    let mut p = PeersmConfig::new("10.0.0.1:9001".parse().unwrap());
    tweak(&mut p);
    cfg.peersm = Some(p);
    Node::new(cfg, Instant::ZERO).unwrap()
}

#[test]
fn db_queries_past_a_circuits_rate_are_refused_and_counted() {
    let mut n = node_with(|p| {
        p.ordb.query_rate = 10;
        p.ordb.query_burst = 3;
    });
    let q = || DbQuery {
        hash_name: HashName::new(&[1; 20]).unwrap(),
        chunk: 1,
        nb_chunks: 5,
        counter: 0,
    };
    let sid = StreamId::new(9);
    // A burst of 5 on one circuit: 3 pass (and end UNAVAILABLE: nobody has the name),
    // 2 are refused.
    for _ in 0..5 {
        n.on_ordb_msg(CircKey(7), sid, q().into());
    }
    assert_eq!(n.counters().get(Count::OrdbRateLimited), 2);
    assert_eq!(n.counters().get(Count::OrdbUnavailable), 3);
    // Another circuit has its own bucket.
    n.on_ordb_msg(CircKey(8), sid, q().into());
    assert_eq!(n.counters().get(Count::OrdbRateLimited), 2);
    // 10 per second: 250 ms later two more tokens, not three.
    let later = Instant::ZERO + core::time::Duration::from_millis(250);
    n.command(
        later,
        Command::CancelGet(super::super::api::DownloadHandle(0)),
    )
    .unwrap();
    for _ in 0..3 {
        n.on_ordb_msg(CircKey(7), sid, q().into());
    }
    assert_eq!(n.counters().get(Count::OrdbRateLimited), 3);
    // The bucket goes with the circuit.
    n.on_ordb_circuit_gone(CircKey(7));
    n.on_ordb_msg(CircKey(7), sid, q().into());
    assert_eq!(n.counters().get(Count::OrdbRateLimited), 3);
    // Rate 0 turns the limit off.
    let mut free = node_with(|p| p.ordb.query_rate = 0);
    for _ in 0..500 {
        free.on_ordb_msg(CircKey(7), sid, q().into());
    }
    assert_eq!(free.counters().get(Count::OrdbRateLimited), 0);
}

#[test]
fn facilitator_flag_is_kept_with_the_reference_and_the_circuit() {
    let mut n = node_with(|_| {});
    let name = HashName::new(&[2; 20]).unwrap();
    let info = |f| DbInfo {
        hash_name: name.clone(),
        progress: Progress::Full,
        facilitator: f,
        have: None,
    };
    n.on_ordb_msg(CircKey(7), None, info(false).into());
    assert_eq!(n.ordb_facilitators(), 0);
    n.on_ordb_msg(CircKey(8), None, info(true).into());
    n.on_ordb_msg(CircKey(8), None, info(true).into());
    assert_eq!(n.ordb_facilitators(), 1);
    let refs = n.ordb.as_ref().unwrap().lists.refs(&name);
    assert_eq!(
        refs.iter()
            .map(|r| (r.circ, r.facilitator))
            .collect::<Vec<_>>(),
        [(CircKey(7), false), (CircKey(8), true)]
    );
}

#[test]
fn a_forwarded_query_for_chunks_no_known_holder_has_ends_at_once() {
    let mut n = node_with(|_| {});
    let name = HashName::new(&[4; 20]).unwrap();
    // A peer downloading the file holds its first 10 chunks.
    let info = DbInfo {
        hash_name: name.clone(),
        progress: Progress::Quarter,
        facilitator: false,
        have: Some(10),
    };
    n.on_ordb_msg(CircKey(8), None, info.into());
    assert!(n.ordb.as_ref().unwrap().lists.has_partial(&name));
    let q = |chunk, counter| DbQuery {
        hash_name: name.clone(),
        chunk,
        nb_chunks: 5,
        counter,
    };
    // Another ORDB asks for chunks 20..25: nobody we know holds them, UNAVAILABLE at once
    // (no DHT lookup, no splice left), and the reference keeps its place.
    n.on_ordb_msg(CircKey(7), StreamId::new(1), q(21, 1).into());
    assert_eq!(n.counters().get(Count::OrdbPartialMiss), 1);
    assert_eq!(n.ordb_census()[1], 0);
    assert_eq!(n.ordb_references(&name), 1);
    // The requester's own ORDB (counter 0) looks further: the DHT (empty here).
    n.on_ordb_msg(CircKey(7), StreamId::new(2), q(21, 0).into());
    assert_eq!(n.counters().get(Count::OrdbPartialMiss), 1);
    assert!(n.counters().get(Count::OrdbUnavailable) >= 1);
}
