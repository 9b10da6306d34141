//! The Peersm DHT on real nodes in the in-memory network: bootstrap through a bridge,
//! ORDB circuits, lookups, STORE/FIND_VALUE, a colluding bridge, a vanishing peer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use onionpeer_core::cells::relay::{HashName, PeerRecord, Progress};
use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::dht::Key;
use onionpeer_core::node::api::{BootstrapVia, Command, CommandOk, Event, QueryId};
use onionpeer_core::node::config::{NodeConfig, PeersmConfig, Role};
use onionpeer_core::node::counters::Count;
use onionpeer_tests::{Network, NodeIx};

/// The address the harness gives the `ix`-th node added.
fn harness_addr(ix: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, (ix >> 8) as u8, ix as u8 + 1)),
        9001,
    )
}

fn add_peer(net: &mut Network, n: &mut usize, name: &str, bridge: bool) -> NodeIx {
    add_peer_with(net, n, name, bridge, true)
}

/// `verify_listed` off keeps links sparse: a peer then dials only the peers it asks.
fn add_peer_with(
    net: &mut Network,
    n: &mut usize,
    name: &str,
    bridge: bool,
    verify_listed: bool,
) -> NodeIx {
    let mut cfg = NodeConfig::new([0; 32], Role::RELAY, 0);
    let mut p = PeersmConfig::new(harness_addr(*n));
    p.bridge = bridge;
    p.dht.verify_listed = verify_listed;
    cfg.peersm = Some(p);
    *n += 1;
    let ix = net.add_node(name, cfg);
    assert_eq!(net.addr(ix), harness_addr(*n - 1));
    ix
}

struct Done {
    closest: Vec<PeerRecord>,
    holders: Vec<PeerRecord>,
    hops: u32,
}

/// Run a DHT command at `ix` and drive until its lookup is done.
fn query(net: &mut Network, ix: NodeIx, cmd: Command) -> Done {
    let now = net.now;
    let q = match net.taped(ix).command(now, cmd).expect("command") {
        CommandOk::Query(q) => q,
        other => panic!("{other:?}"),
    };
    net.flush(ix);
    let find = |net: &Network, q: QueryId| {
        net.events_of(ix).find_map(|e| match e {
            Event::DhtLookupDone {
                query,
                closest,
                holders,
                hops,
            } if *query == q => Some(Done {
                closest: closest.clone(),
                holders: holders.clone(),
                hops: *hops,
            }),
            _ => None,
        })
    };
    net.drive_bounded(2_000_000, |n| find(n, q).is_some());
    let done = find(net, q).unwrap();
    // Let the STORE / registrations that follow settle.
    let t = net.now + Duration::from_secs(2);
    net.drive_until(t);
    done
}

fn id_of(net: &Network, ix: NodeIx) -> PeerId {
    net.node(ix).peer_id()
}

fn record_of(net: &Network, ix: NodeIx) -> PeerRecord {
    net.node(ix).peer_record().unwrap().clone()
}

/// The `n` peers of `all` closest to `target` (excluding `target` itself).
fn true_closest(net: &Network, all: &[NodeIx], target: PeerId, n: usize) -> Vec<PeerId> {
    let mut ids: Vec<PeerId> = all
        .iter()
        .map(|&i| id_of(net, i))
        .filter(|&id| id != target)
        .collect();
    let t = Key::from(target);
    ids.sort_by_key(|id| t.distance(&Key::from(*id)));
    ids.truncate(n);
    ids
}

/// A bridge and `peers` peers, each bootstrapped through the bridge, then a second
/// round in which each refreshes its place (the network grew after the early ones).
fn bootstrapped(peers: usize) -> (Network, NodeIx, Vec<NodeIx>) {
    bootstrapped_with(peers, true)
}

fn bootstrapped_with(peers: usize, verify_listed: bool) -> (Network, NodeIx, Vec<NodeIx>) {
    let mut net = Network::new();
    let mut n = 0;
    let bridge = add_peer_with(&mut net, &mut n, "bridge", true, verify_listed);
    let bridge_target = net.target(bridge);
    let mut all = Vec::new();
    for i in 0..peers {
        let ix = add_peer_with(&mut net, &mut n, &format!("peer{i}"), false, verify_listed);
        all.push(ix);
        query(
            &mut net,
            ix,
            Command::Bootstrap {
                via: BootstrapVia::Bridge(bridge_target.clone()),
            },
        );
    }
    for &ix in &all {
        query(
            &mut net,
            ix,
            Command::Bootstrap {
                via: BootstrapVia::Bridge(bridge_target.clone()),
            },
        );
    }
    (net, bridge, all)
}

#[test]
fn thirty_peers_bootstrap_lookup_store_and_find() {
    let (mut net, _bridge, all) = bootstrapped(30);
    let log2n = (all.len() as f64).log2().ceil() as u32;

    for &ix in &all {
        let node = net.node(ix);
        let table = node.routing_table().unwrap();
        assert!(
            node.ordb_circuits() >= 6,
            "{}: {} ORDB circuits",
            net.name(ix),
            node.ordb_circuits()
        );
        let closest = true_closest(&net, &all, id_of(&net, ix), 8);
        let known = closest.iter().filter(|id| table.get(id).is_some()).count();
        assert!(
            closest[..3].iter().all(|id| table.get(id).is_some()) && known >= 6,
            "{}: knows {known} of its 8 closest ({} entries)",
            net.name(ix),
            table.len()
        );
    }

    // One node's routing table, as text.
    let now = net.now;
    insta::assert_snapshot!(
        "routing_table_peer0",
        net.node(all[0]).routing_table().unwrap().render(now)
    );

    // FIND_NODE of every peer's id from another peer finds it, in few hops.
    let mut hops = Vec::new();
    for (i, &target) in all.iter().enumerate() {
        let asker = all[(i * 7 + 3) % all.len()];
        if asker == target {
            continue;
        }
        let id = id_of(&net, target);
        let d = query(&mut net, asker, Command::FindNode(Key::from(id)));
        assert_eq!(
            d.closest.first().map(|r| r.id),
            Some(id),
            "lookup of {} from {}",
            net.name(target),
            net.name(asker)
        );
        assert!(d.hops <= log2n, "{} hops > log2(N) = {log2n}", d.hops);
        hops.push(d.hops);
    }
    hops.sort();
    println!(
        "FIND_NODE hops: median {}, max {:?}",
        hops[hops.len() / 2],
        hops.last()
    );

    // STORE from one peer, FIND_VALUE from another finds it as a holder.
    let name = HashName::new(b"abcd").unwrap();
    let (holder, seeker) = (all[4], all[17]);
    query(
        &mut net,
        holder,
        Command::Store {
            hash_name: name.clone(),
            progress: Progress::Full,
        },
    );
    let stored: usize = all
        .iter()
        .map(|&i| net.node(i).record_store().unwrap().len())
        .sum();
    assert!(stored >= 1, "nobody stored the record");
    let d = query(&mut net, seeker, Command::FindValue(name.clone()));
    assert!(
        d.holders.iter().any(|h| h.id == id_of(&net, holder)),
        "FIND_VALUE did not find the holder"
    );
    assert!(d.hops <= log2n);

    // Records live an hour; the holder re-announces, so three hours on it is found still.
    let until = net.now + Duration::from_secs(3 * 3600);
    net.drive_until(until);
    let stored: Vec<usize> = all
        .iter()
        .map(|&i| net.node(i).record_store().unwrap().len())
        .collect();
    let tables: Vec<usize> = all
        .iter()
        .map(|&i| net.node(i).routing_table().unwrap().len())
        .collect();
    let mut total = std::collections::BTreeMap::new();
    for &ix in &all {
        for (c, n) in net.node(ix).counters().nonzero() {
            *total.entry(c.name()).or_insert(0) += n;
        }
    }
    println!("after 3h: stored {stored:?} tables {tables:?} {total:?}");
    let d = query(&mut net, all[22], Command::FindValue(name));
    assert!(
        d.holders.iter().any(|h| h.id == id_of(&net, holder)),
        "the record expired although its holder re-announced it"
    );

    // Serving DHT requests never needed a counted refusal, and no honest peer was
    // suspected.
    let mut total = std::collections::BTreeMap::new();
    for &ix in &all {
        for (c, n) in net.node(ix).counters().nonzero() {
            *total.entry(c.name()).or_insert(0) += n;
        }
    }
    println!("counters over all peers: {total:?}");
    // Honest peers with a still-sparse table (early in the bootstrap) may be caught once;
    // none is caught often enough to be shunned.
    for &ix in &all {
        for &other in &all {
            let s = net.node(ix).suspicion(&id_of(&net, other));
            assert!(s < 2, "{} shuns honest {}", net.name(ix), net.name(other));
        }
        let c = net.node(ix).counters();
        assert_eq!(c.get(Count::DhtRateLimited), 0, "{}", net.name(ix));
        assert_eq!(c.get(Count::MalformedRelayMessage), 0);
        assert_eq!(c.get(Count::UnexpectedCell), 0);
    }
}

#[test]
fn vanished_peer_is_dropped_after_failed_ping() {
    let (mut net, _bridge, all) = bootstrapped(10);
    let gone = all[3];
    let gone_id = id_of(&net, gone);
    let knowers: Vec<NodeIx> = all
        .iter()
        .copied()
        .filter(|&i| i != gone && net.node(i).routing_table().unwrap().get(&gone_id).is_some())
        .collect();
    assert!(!knowers.is_empty());
    let ordb_users: Vec<NodeIx> = all
        .iter()
        .copied()
        .filter(|&i| net.node(i).ordb_peers().contains(&gone_id))
        .collect();
    net.crash(gone);
    let until = net.now + Duration::from_secs(20 * 60);
    net.drive_until(until);
    for &i in &knowers {
        assert!(
            net.node(i).routing_table().unwrap().get(&gone_id).is_none(),
            "{} still lists the vanished peer",
            net.name(i)
        );
    }
    let dropped: u64 = knowers
        .iter()
        .map(|&i| net.node(i).counters().get(Count::DhtPeerDropped))
        .sum();
    assert!(dropped >= knowers.len() as u64);
    // A lost ORDB circuit is replaced.
    for &i in &ordb_users {
        assert!(!net.node(i).ordb_peers().contains(&gone_id));
        assert!(
            net.node(i).ordb_circuits() >= 6,
            "{}: {} ORDB circuits after losing one",
            net.name(i),
            net.node(i).ordb_circuits()
        );
    }
    println!("{} nodes replaced an ORDB circuit", ordb_users.len());
}

#[test]
fn colluding_bridge_is_detected() {
    // Honest network.
    let (mut net, _bridge, honest) = bootstrapped(16);
    let mut n = 1 + honest.len();
    // A colluding clique behind its own bridge: they only know each other.
    let evil_bridge = add_peer(&mut net, &mut n, "evil-bridge", true);
    let evil_target = net.target(evil_bridge);
    let mut clique = Vec::new();
    for i in 0..3 {
        let ix = add_peer(&mut net, &mut n, &format!("colluder{i}"), false);
        clique.push(ix);
        query(
            &mut net,
            ix,
            Command::Bootstrap {
                via: BootstrapVia::Bridge(evil_target.clone()),
            },
        );
    }
    // The victim is fed by the evil bridge, then also learns one honest peer.
    let victim = add_peer(&mut net, &mut n, "victim", false);
    let first = query(
        &mut net,
        victim,
        Command::Bootstrap {
            via: BootstrapVia::Bridge(evil_target),
        },
    );
    let clique_ids: Vec<PeerId> = clique.iter().map(|&i| id_of(&net, i)).collect();
    assert!(first.closest.iter().all(|r| clique_ids.contains(&r.id)));
    let honest_peer = record_of(&net, honest[0]);
    for _ in 0..2 {
        query(
            &mut net,
            victim,
            Command::Bootstrap {
                via: BootstrapVia::Peer(honest_peer.clone()),
            },
        );
    }
    // Lookups of other keys give the clique more chances to show it hides peers.
    for i in 0..8u8 {
        let key = Key(std::array::from_fn(|j| i.wrapping_mul(67) ^ (j as u8 * 13)));
        query(&mut net, victim, Command::FindNode(key));
    }
    let caught: Vec<&PeerId> = clique_ids
        .iter()
        .filter(|id| net.node(victim).suspicion(id) > 0)
        .collect();
    println!(
        "suspect counts: {}, colluders caught: {}",
        net.node(victim).counters().get(Count::SuspectPeer),
        caught.len()
    );
    assert!(net.node(victim).counters().get(Count::SuspectPeer) >= 1);
    assert!(!caught.is_empty(), "no colluder caught");
    // Caught twice: shunned (out of the table, never asked again).
    let table = net.node(victim).routing_table().unwrap();
    assert!(
        caught
            .iter()
            .any(|id| net.node(victim).suspicion(id) >= 2 && table.get(id).is_none()),
        "no colluder shunned"
    );
    // No honest peer is suspected.
    for &h in &honest {
        assert_eq!(net.node(victim).suspicion(&id_of(&net, h)), 0);
    }
}

#[test]
fn requests_over_the_rate_limit_are_dropped_and_lookups_still_end() {
    let mut net = Network::new();
    let mut n = 0;
    let mut add = |net: &mut Network, name: &str, bridge: bool| {
        let mut cfg = NodeConfig::new([0; 32], Role::RELAY, 0);
        let mut p = PeersmConfig::new(harness_addr(n));
        p.bridge = bridge;
        p.dht.rate_burst = 4;
        p.dht.rate_per_sec = 1;
        cfg.peersm = Some(p);
        n += 1;
        net.add_node(name, cfg)
    };
    let bridge = add(&mut net, "rl-bridge", true);
    let target = net.target(bridge);
    let mut peers = Vec::new();
    for i in 0..6 {
        let ix = add(&mut net, &format!("rl-peer{i}"), false);
        peers.push(ix);
        query(
            &mut net,
            ix,
            Command::Bootstrap {
                via: BootstrapVia::Bridge(target.clone()),
            },
        );
    }
    let asker = peers[0];
    let now = net.now;
    let mut qs = Vec::new();
    for i in 0..12u8 {
        let key = Key([i.wrapping_mul(41); 20]);
        match net.taped(asker).command(now, Command::FindNode(key)) {
            Ok(CommandOk::Query(q)) => qs.push(q),
            other => panic!("{other:?}"),
        }
    }
    net.flush(asker);
    let until = net.now + Duration::from_secs(120);
    net.drive_until(until);
    let done = net
        .events_of(asker)
        .filter(|e| matches!(e, Event::DhtLookupDone { query, .. } if qs.contains(query)))
        .count();
    assert_eq!(done, qs.len(), "every lookup ends");
    let limited: u64 = peers
        .iter()
        .map(|&i| net.node(i).counters().get(Count::DhtRateLimited))
        .sum();
    assert!(limited > 0, "no request was rate limited");
}

#[test]
fn ordb_circuits_are_two_hops_and_the_ordb_never_sees_the_asker() {
    // Verifying listed peers links nearly every pair of a 16-peer network; without it
    // some ORDBs have no link to their asker, which is what shows they only see P1.
    let (mut net, bridge, all) = bootstrapped_with(16, false);
    let mut by_id = std::collections::BTreeMap::new();
    for &ix in all.iter().chain([&bridge]) {
        by_id.insert(id_of(&net, ix), ix);
    }
    for &ix in &all {
        let paths = net.node(ix).ordb_paths();
        assert!(
            paths.len() >= 6,
            "{}: {} ORDB circuits",
            net.name(ix),
            paths.len()
        );
        let firsts: std::collections::BTreeSet<PeerId> = paths.iter().map(|p| p.0).collect();
        let lasts: std::collections::BTreeSet<PeerId> = paths.iter().map(|p| p.1).collect();
        assert_eq!(
            firsts.len(),
            paths.len(),
            "{}: a first hop twice",
            net.name(ix)
        );
        assert_eq!(lasts.len(), paths.len(), "{}: an ORDB twice", net.name(ix));
        for (first, last) in &paths {
            assert_ne!(first, last, "{}", net.name(ix));
            assert_ne!(*last, id_of(&net, ix));
        }
    }

    // A record to find: the holder announces it.
    let name = HashName::new(b"ordb-test").unwrap();
    let holder = all[5];
    query(
        &mut net,
        holder,
        Command::Store {
            hash_name: name.clone(),
            progress: Progress::Half,
        },
    );

    // Every peer PINGs its ORDBs, then asks them FIND_VALUE, over the ORDB circuits.
    let mut unlinked_answers = 0;
    for &ix in &all {
        let ordbs: Vec<PeerId> = net.node(ix).ordb_peers();
        // ORDBs with no link to the asker, before and after the exchange.
        let unlinked = |net: &Network| -> Vec<PeerId> {
            ordbs
                .iter()
                .copied()
                .filter(|o| {
                    let o = by_id[o];
                    net.conns_between(o, ix).is_empty() && net.conns_between(ix, o).is_empty()
                })
                .collect()
        };
        let before = unlinked(&net);
        for ask in [None, Some(name.clone())] {
            let now = net.now;
            let q = match net.taped(ix).command(now, Command::AskOrdbs(ask.clone())) {
                Ok(CommandOk::Query(q)) => q,
                other => panic!("{other:?}"),
            };
            net.flush(ix);
            let t = net.now + Duration::from_secs(5);
            net.drive_until(t);
            let answered: std::collections::BTreeSet<PeerId> = net
                .events_of(ix)
                .filter_map(|e| match e {
                    Event::OrdbAnswered {
                        query, ordb, done, ..
                    } if *query == q && *done => Some(*ordb),
                    _ => None,
                })
                .collect();
            for o in &ordbs {
                assert!(
                    answered.contains(o),
                    "{}: ORDB {} did not answer {ask:?}",
                    net.name(ix),
                    net.name(by_id[o])
                );
            }
        }
        // The ORDBs that had no link to the asker answered and still have none: what
        // they served came through the first hop.
        let after = unlinked(&net);
        for o in &before {
            assert!(after.contains(o), "{}: a link appeared", net.name(ix));
            unlinked_answers += 1;
        }
    }
    println!("{unlinked_answers} ORDBs answered an asker they have no link to");
    assert!(unlinked_answers > 0, "every ORDB had a link to its asker");

    // FIND_VALUE over an ORDB circuit reaches a peer that stores the record or knows who
    // is closer to it: some ORDB of the seeker lists the holder or closer nodes.
    let seeker = all[11];
    let now = net.now;
    let q = match net
        .taped(seeker)
        .command(now, Command::AskOrdbs(Some(name.clone())))
    {
        Ok(CommandOk::Query(q)) => q,
        other => panic!("{other:?}"),
    };
    net.flush(seeker);
    let t = net.now + Duration::from_secs(5);
    net.drive_until(t);
    let listed = net
        .events_of(seeker)
        .filter(|e| matches!(e, Event::OrdbAnswered { query, peers, .. } if *query == q && !peers.is_empty()))
        .count();
    assert!(listed > 0);
}

#[test]
fn dht_circuits_are_not_reported_to_the_application() {
    // Bootstraps, lookups, registrations, PINGs and ORDB circuits all build (and close)
    // circuits of the DHT's own: the application owns none of them, so it hears of none.
    let (mut net, bridge, all) = bootstrapped(8);
    let t = net.now + Duration::from_secs(20 * 60);
    net.drive_until(t);
    for ix in all.iter().copied().chain([bridge]) {
        assert!(net.node(ix).ordb_circuits() > 0 || ix == bridge);
        let leaked = net
            .events_of(ix)
            .filter(|e| matches!(e, Event::CircuitBuilt(_) | Event::CircuitClosed { .. }))
            .count();
        assert_eq!(leaked, 0, "node {ix:?} reported DHT circuits");
    }
}

/// Two bridges, half the peers joining through each, one round: whether every peer finds
/// the peers that joined through the other bridge (`linked`: the bridges are fellows).
fn two_bridges(linked: bool) -> usize {
    let mut net = Network::new();
    let mut n = 0;
    let a = add_peer(&mut net, &mut n, "bridgeA", true);
    let b = add_peer(&mut net, &mut n, "bridgeB", true);
    let (ta, tb) = (net.target(a), net.target(b));
    if linked {
        for (at, fellow) in [(a, tb.clone()), (b, ta.clone())] {
            let now = net.now;
            let ok = net.taped(at).command(
                now,
                Command::Bootstrap {
                    via: BootstrapVia::Bridge(fellow),
                },
            );
            assert!(matches!(ok, Ok(CommandOk::Query(_))), "{ok:?}");
            net.flush(at);
        }
    }
    let mut halves = (Vec::new(), Vec::new());
    for i in 0..16 {
        let ix = add_peer(&mut net, &mut n, &format!("peer{i}"), false);
        let via = if i % 2 == 0 { &ta } else { &tb };
        query(
            &mut net,
            ix,
            Command::Bootstrap {
                via: BootstrapVia::Bridge(via.clone()),
            },
        );
        if i % 2 == 0 {
            halves.0.push(ix);
        } else {
            halves.1.push(ix);
        }
    }
    let mut found = 0;
    for (&x, &y) in halves.0.iter().zip(&halves.1) {
        for (from, to) in [(x, y), (y, x)] {
            let target = id_of(&net, to);
            let d = query(&mut net, from, Command::FindNode(Key::from(target)));
            if d.closest.first().map(|r| r.id) == Some(target) {
                found += 1;
            }
        }
    }
    found
}

#[test]
fn peers_of_linked_bridges_find_each_other() {
    // Each bridge hands out only the peers that registered with it: unlinked, the
    // peers of one bridge never meet those of the other (the DHT splits, one per
    // bridge; at 2,000 peers and 3 bridges lookups succeeded ~1 time in 3). Linked
    // bridges tell each other of every registration and hand out peers from one pool.
    assert_eq!(two_bridges(false), 0, "unlinked bridges: two separate DHTs");
    assert_eq!(two_bridges(true), 16, "linked bridges: one DHT");
}

#[test]
fn links_without_circuits_close_after_the_idle_timeout() {
    use onionpeer_core::node::api::{FirstHop, LinkCloseReason};
    // Three minutes by default: a link keeps its circuit as long as it is open, and is
    // closed (transport closed, LinkDown Local) once it has carried no circuit and no cell
    // for that long; the relay's end sees its transport close.
    let (mut net, op, path) = onionpeer_tests::chain(1);
    let idle = net
        .config(op)
        .limits
        .link_idle_timeout
        .expect("an idle timeout by default");
    assert_eq!(idle, Duration::from_secs(180));
    let circ = net.build(op, &path, FirstHop::Fast);
    let t = net.now + idle * 2;
    net.drive_until(t);
    assert_eq!(net.node(op).census().0, 1, "a link with a circuit stays");
    let now = net.now;
    net.taped(op)
        .command(now, Command::CloseCircuit(circ))
        .expect("close");
    net.flush(op);
    let closed_at = net.now;
    let t = closed_at + idle - Duration::from_secs(5);
    net.drive_until(t);
    assert_eq!(net.node(op).census().0, 1, "not idle long enough yet");
    let t = closed_at + idle + Duration::from_secs(5);
    net.drive_until(t);
    assert_eq!(net.node(op).census().0, 0, "idle link closed");
    let local = net
        .events_of(op)
        .filter(|e| {
            matches!(
                e,
                Event::LinkDown {
                    reason: LinkCloseReason::Local,
                    ..
                }
            )
        })
        .count();
    assert_eq!(local, 1);
    assert_eq!(net.node(path[0]).census().0, 0, "the relay saw the close");
}
