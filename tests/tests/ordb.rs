//! The ORDB function on real nodes in the in-memory network: a seeder serves a raw
//! DB_QUERY over a two-hop ORDB circuit; an ORDB forwards a query it cannot serve and
//! splices the answer back byte-exact; the FIND_VALUE fallback; the loop counter;
//! DB_END UNAVAILABLE; a tampering ORDB, and one caught by the honest ORDB it answers
//! through; a live stream joined 2 windows behind; a live
//! stream re-served by a viewer; the facilitator fallback; a record of part of a file
//! that lives as long as the download it names (`partial_record_ttl`).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use onionpeer_core::cells::relay::{DbEndReason, HashName, Progress, RelayMsg};
use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::node::api::{BootstrapVia, Command, CommandOk, DownloadHandle, Event, QueryId};
use onionpeer_core::node::config::{NodeConfig, PeersmConfig, Role};
use onionpeer_core::node::counters::Count;
use onionpeer_core::ordb::{Accepted, ChunkRing, FileVerifier, Released, VerifyLimits};
use onionpeer_tests::{Network, NodeIx, pattern};

fn harness_addr(ix: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, (ix >> 8) as u8, ix as u8 + 1)),
        9001,
    )
}

fn add_peer(
    net: &mut Network,
    n: &mut usize,
    name: &str,
    bridge: bool,
    tweak: impl Fn(&mut PeersmConfig),
) -> NodeIx {
    let mut cfg = NodeConfig::new([0; 32], Role::RELAY, 0);
    let mut p = PeersmConfig::new(harness_addr(*n));
    p.bridge = bridge;
    tweak(&mut p);
    cfg.peersm = Some(p);
    *n += 1;
    net.add_node(name, cfg)
}

fn settle(net: &mut Network, secs: u64) {
    let t = net.now + Duration::from_secs(secs);
    net.drive_until(t);
}

fn run(net: &mut Network, ix: NodeIx, cmd: Command) -> CommandOk {
    let now = net.now;
    let ok = net.taped(ix).command(now, cmd).expect("command");
    net.flush(ix);
    ok
}

/// A bridge and `peers` bootstrapped peers (two rounds, as in the DHT tests).
fn bootstrapped(peers: usize, tamper: bool) -> (Network, Vec<NodeIx>) {
    bootstrapped_with(peers, |_, p| p.ordb.tamper_relayed_data = tamper)
}

/// As [`bootstrapped`], with each peer's config changed by `tweak(index, config)`.
fn bootstrapped_with(
    peers: usize,
    tweak: impl Fn(usize, &mut PeersmConfig),
) -> (Network, Vec<NodeIx>) {
    let mut net = Network::new();
    let mut n = 0;
    let bridge = add_peer(&mut net, &mut n, "bridge", true, |_| {});
    let bt = net.target(bridge);
    let mut all = Vec::new();
    for i in 0..peers {
        all.push(add_peer(
            &mut net,
            &mut n,
            &format!("peer{i}"),
            false,
            |p| tweak(i, p),
        ));
    }
    for _round in 0..2 {
        for &ix in &all {
            let q = match run(
                &mut net,
                ix,
                Command::Bootstrap {
                    via: BootstrapVia::Bridge(bt.clone()),
                },
            ) {
                CommandOk::Query(q) => q,
                o => panic!("{o:?}"),
            };
            net.drive_bounded(2_000_000, |n| {
                n.events_of(ix)
                    .any(|e| matches!(e, Event::DhtLookupDone { query, .. } if *query == q))
            });
            settle(&mut net, 2);
        }
    }
    (net, all)
}

fn id_of(net: &Network, ix: NodeIx) -> PeerId {
    net.node(ix).peer_id()
}

/// Send a raw DB_QUERY from `from` through its ORDB `via`.
fn ask(
    net: &mut Network,
    from: NodeIx,
    via: PeerId,
    name: &HashName,
    chunk: u64,
    nb_chunks: u16,
) -> QueryId {
    match run(
        net,
        from,
        Command::Query {
            hash_name: name.clone(),
            chunk,
            nb_chunks,
            via: Some(via),
        },
    ) {
        CommandOk::Query(q) => q,
        o => panic!("{o:?}"),
    }
}

/// The answer cells `from` gets for each of `queries`, until each has its DB_END (or
/// time runs out).
fn answers(net: &mut Network, from: NodeIx, queries: &[QueryId]) -> Vec<Vec<RelayMsg>> {
    let mut got = vec![Vec::new(); queries.len()];
    for _ in 0..60 {
        settle(net, 1);
        for (id, m) in net.taped(from).take_query_replies() {
            if let Some(i) = queries.iter().position(|q| *q == id) {
                got[i].push(m);
            }
        }
        if got.iter().all(|g| end_reason(g).is_some()) {
            break;
        }
    }
    got
}

/// Send a raw DB_QUERY from `from` through its ORDB `via` and collect the answer cells
/// until DB_END (or time runs out).
fn query(
    net: &mut Network,
    from: NodeIx,
    via: PeerId,
    name: &HashName,
    chunk: u64,
    nb_chunks: u16,
) -> Vec<RelayMsg> {
    let q = ask(net, from, via, name, chunk, nb_chunks);
    answers(net, from, &[q]).remove(0)
}

fn end_reason(msgs: &[RelayMsg]) -> Option<DbEndReason> {
    msgs.iter().find_map(|m| match m {
        RelayMsg::DbEnd(e) => Some(e.reason),
        _ => None,
    })
}

/// Verify an answer as a downloader does; the verified bytes, or the first error.
fn verify(name: &[u8; 20], msgs: &[RelayMsg]) -> Result<Vec<u8>, String> {
    let mut v: Option<FileVerifier> = None;
    let mut out = Vec::new();
    for m in msgs {
        match m {
            RelayMsg::DbConnected(c) if v.is_none() => {
                v = Some(
                    FileVerifier::from_db_connected(name, c, VerifyLimits::default())
                        .map_err(|e| format!("manifest: {e}"))?,
                );
            }
            RelayMsg::DbHashes(h) => {
                v.as_mut()
                    .ok_or("hashes first")?
                    .accept_hashes(h)
                    .map_err(|e| format!("hashes: {e}"))?;
            }
            RelayMsg::DbData(d) => {
                let a = v
                    .as_mut()
                    .ok_or("data first")?
                    .accept_db_data(d)
                    .map_err(|e| format!("data {}: {e}", d.chunk))?;
                if a == Accepted::New {
                    out.extend_from_slice(&d.data);
                }
            }
            _ => {}
        }
        // Blocks sent without their leaf hashes are verified whole.
        while let Some(r) = v.as_mut().and_then(FileVerifier::take_released) {
            if let Released::Chunk(_, data) = r {
                out.extend_from_slice(&data);
            }
        }
    }
    Ok(out)
}

fn seed(net: &mut Network, ix: NodeIx, data: Vec<u8>) -> ([u8; 20], HashName) {
    let name = match run(
        net,
        ix,
        Command::Seed {
            data,
            mime_type: "application/octet-stream".into(),
            key: Some([7; 32]),
        },
    ) {
        CommandOk::Content(n) => n,
        o => panic!("{o:?}"),
    };
    settle(net, 5);
    (name, HashName::new(&name).unwrap())
}

#[test]
fn seeder_serves_and_ordbs_forward_byte_exact() {
    let (mut net, all) = bootstrapped(14, false);
    let seeder = all[3];
    let data = pattern(0, 300_000);
    let (name, hname) = seed(&mut net, seeder, data.clone());
    let s_id = id_of(&net, seeder);

    // The seeder's ORDBs keep a reference to it.
    let s_ordbs = net.node(seeder).ordb_peers();
    let by_id: std::collections::BTreeMap<PeerId, NodeIx> =
        all.iter().map(|&i| (id_of(&net, i), i)).collect();
    for o in &s_ordbs {
        assert!(
            net.node(by_id[o]).ordb_references(&hname) > 0,
            "ORDB {} of the seeder has no reference",
            net.name(by_id[o])
        );
    }

    // 1. Directly: a peer whose ORDB is the seeder.
    let direct = all
        .iter()
        .copied()
        .find(|&i| i != seeder && net.node(i).ordb_peers().contains(&s_id))
        .expect("a peer with the seeder as ORDB");
    let info = query(&mut net, direct, s_id, &hname, 1, 0);
    assert!(
        matches!(info.first(), Some(RelayMsg::DbConnected(_))),
        "{info:?}"
    );
    assert_eq!(end_reason(&info), Some(DbEndReason::FINISHED));
    let msgs = query(&mut net, direct, s_id, &hname, 1, 30);
    assert_eq!(end_reason(&msgs), Some(DbEndReason::FINISHED));
    assert_eq!(verify(&name, &msgs).unwrap(), data[..30 * 486]);
    // The whole file: 618 chunks, past one window (DB_SENDMEs keep it flowing).
    let n_chunks = data.len().div_ceil(486) as u16;
    let msgs = query(&mut net, direct, s_id, &hname, 1, n_chunks);
    assert_eq!(verify(&name, &msgs).unwrap(), data);

    // 2. Through an ORDB that does not have it but references the seeder.
    let (asker, ordb, _) = sharing_an_ordb_with(&net, &all, seeder);
    assert!(
        net.node(by_id[&ordb])
            .chunk_store()
            .unwrap()
            .manifest(&name)
            .is_none()
    );
    let msgs = query(&mut net, asker, ordb, &hname, 1, n_chunks);
    assert_eq!(end_reason(&msgs), Some(DbEndReason::FINISHED));
    assert_eq!(verify(&name, &msgs).unwrap(), data, "forwarded answer");
}

/// A peer (not the seeder) with an ORDB that is also one of the seeder's: the peer,
/// the ORDB's id and its node.
fn sharing_an_ordb_with(net: &Network, all: &[NodeIx], seeder: NodeIx) -> (NodeIx, PeerId, NodeIx) {
    let s_id = id_of(net, seeder);
    let s_ordbs = net.node(seeder).ordb_peers();
    let (asker, ordb) = all
        .iter()
        .copied()
        .filter(|&i| i != seeder)
        .find_map(|i| {
            net.node(i)
                .ordb_peers()
                .into_iter()
                .find(|o| *o != s_id && s_ordbs.contains(o))
                .map(|o| (i, o))
        })
        .expect("a peer sharing an ORDB with the seeder");
    let o = all
        .iter()
        .copied()
        .find(|&i| id_of(net, i) == ordb)
        .expect("the ORDB");
    (asker, ordb, o)
}

#[test]
fn an_ordb_serves_again_what_it_relayed() {
    // An ORDB keeps the verified cells it relays (PROTOCOL.md 6.6): a second query for
    // the same range is answered from its cache, byte-exact, without asking the seeder.
    let (mut net, all) = bootstrapped(14, false);
    let seeder = all[3];
    let data = pattern(2, 100_000);
    let (name, hname) = seed(&mut net, seeder, data.clone());
    let (asker, ordb, o) = sharing_an_ordb_with(&net, &all, seeder);
    let served = |net: &Network| net.node(seeder).counters().get(Count::OrdbChunksServed);
    let hits = |net: &Network| net.node(o).counters().get(Count::OrdbCacheHit);

    let before = served(&net);
    let first = query(&mut net, asker, ordb, &hname, 11, 60);
    assert_eq!(end_reason(&first), Some(DbEndReason::FINISHED));
    assert_eq!(verify(&name, &first).unwrap(), data[10 * 486..70 * 486]);
    assert_eq!(
        served(&net) - before,
        60,
        "the first answer came from the seeder"
    );
    assert_eq!(hits(&net), 0);

    // The same range, and a part of it: from the ORDB's cache.
    for (chunk, nb) in [(11, 60), (31, 20)] {
        let msgs = query(&mut net, asker, ordb, &hname, chunk, nb);
        assert_eq!(end_reason(&msgs), Some(DbEndReason::FINISHED));
        let at = (chunk as usize - 1) * 486;
        assert_eq!(
            verify(&name, &msgs).unwrap(),
            data[at..at + usize::from(nb) * 486]
        );
    }
    assert_eq!(served(&net) - before, 60, "the seeder was not asked again");
    assert_eq!(hits(&net), 2);
    // A range the ORDB did not relay still goes to the seeder.
    let msgs = query(&mut net, asker, ordb, &hname, 61, 20);
    assert_eq!(verify(&name, &msgs).unwrap(), data[60 * 486..80 * 486]);
    assert_eq!(served(&net) - before, 80);
    assert_eq!(hits(&net), 2);
}

#[test]
fn a_busy_seeder_sends_the_rarest_chunks_first() {
    // A seeder whose uplink is busy keeps back what its links do not take and, as they
    // drain, sends first the parts of the file it sent least (PROTOCOL.md §9, "Serving
    // order"): a range asked for the first time overtakes one it already sent and that
    // was asked before it. In arrival order (the old behaviour) the first range ends
    // first.
    let (mut net, all) = bootstrapped_with(14, |_, p| p.ordb.relay_cache_budget = 0);
    let seeder = all[3];
    let data = pattern(9, 300_000);
    let (name, hname) = seed(&mut net, seeder, data.clone());
    let (asker, ordb, _) = sharing_an_ordb_with(&net, &all, seeder);
    // Chunks 1-200 (the tally's first span) go out once.
    let msgs = query(&mut net, asker, ordb, &hname, 1, 200);
    assert_eq!(verify(&name, &msgs).unwrap(), data[..200 * 486]);

    net.pause_sending(seeder);
    let again = ask(&mut net, asker, ordb, &hname, 1, 200);
    settle(&mut net, 1);
    let fresh = ask(&mut net, asker, ordb, &hname, 301, 200);
    settle(&mut net, 1);
    assert_eq!(
        net.node(seeder).ordb_census()[0],
        2,
        "both streams at the seeder"
    );
    net.resume_sending(seeder);

    // Every answer cell as it arrives, in one sequence.
    let mut arrived: Vec<(QueryId, RelayMsg)> = Vec::new();
    for _ in 0..3000 {
        let t = net.now + Duration::from_millis(10);
        net.drive_until(t);
        arrived.extend(net.taped(asker).take_query_replies());
        let ended = |q: QueryId| {
            arrived
                .iter()
                .any(|(id, m)| *id == q && matches!(m, RelayMsg::DbEnd(_)))
        };
        if ended(again) && ended(fresh) {
            break;
        }
    }
    let of = |q: QueryId| -> Vec<RelayMsg> {
        arrived
            .iter()
            .filter(|(id, _)| *id == q)
            .map(|(_, m)| m.clone())
            .collect()
    };
    assert_eq!(verify(&name, &of(again)).unwrap(), data[..200 * 486]);
    assert_eq!(
        verify(&name, &of(fresh)).unwrap(),
        data[300 * 486..500 * 486]
    );
    let end_at = |q: QueryId| {
        arrived
            .iter()
            .position(|(id, m)| *id == q && matches!(m, RelayMsg::DbEnd(_)))
            .unwrap()
    };
    assert!(
        end_at(fresh) < end_at(again),
        "the range never sent ended first ({} < {})",
        end_at(fresh),
        end_at(again)
    );
    // The range sent before still started at once: it was not starved until the end.
    let first_data = |q: QueryId| {
        arrived
            .iter()
            .position(|(id, m)| *id == q && matches!(m, RelayMsg::DbData(_)))
            .unwrap()
    };
    assert!(first_data(again) < first_data(fresh));
}

#[test]
fn a_query_for_a_range_an_ordb_is_fetching_rides_on_that_fetch() {
    // Two requesters ask an ORDB for the same range at about the same time: the second
    // is served from the relay cache as the first one's answer arrives, and the seeder
    // sends the range once.
    let (mut net, all) = bootstrapped(14, false);
    let seeder = all[3];
    // Past a stream window (500 chunks): the seeder waits for DB_SENDMEs, so the first
    // answer is still flowing when the second query comes.
    let data = pattern(5, 600_000);
    let (name, hname) = seed(&mut net, seeder, data.clone());
    let (asker, ordb, o) = sharing_an_ordb_with(&net, &all, seeder);
    let served = |net: &Network| net.node(seeder).counters().get(Count::OrdbChunksServed);
    let n_chunks = data.len().div_ceil(486) as u16;
    let before = served(&net);
    let q1 = ask(&mut net, asker, ordb, &hname, 1, n_chunks);
    // Until the first answer flows through the ORDB.
    net.drive_bounded(1_000_000, |net| served(net) - before >= 20);
    let q2 = ask(&mut net, asker, ordb, &hname, 1, n_chunks);
    let got = answers(&mut net, asker, &[q1, q2]);
    for g in &got {
        assert_eq!(end_reason(g), Some(DbEndReason::FINISHED));
        assert_eq!(verify(&name, g).unwrap(), data);
    }
    assert_eq!(net.node(o).counters().get(Count::OrdbCacheJoined), 1);
    assert_eq!(
        served(&net) - before,
        u64::from(n_chunks),
        "sent once by the seeder"
    );
}

#[test]
fn find_value_fallback_and_unavailable() {
    // The seeder keeps no ORDB circuits, so it advertises to nobody: its only trace is
    // the DHT record it STOREs as a public server (`store_own_record`). Any ORDB asked
    // must look the name up.
    let (mut net, all) = bootstrapped_with(14, |i, p| {
        if i == 5 {
            p.ordb_circuits = 0;
            p.ordb.store_own_record = true;
        }
    });
    let seeder = all[5];
    let data = pattern(3, 3_000);
    let (name, hname) = seed(&mut net, seeder, data.clone());
    assert!(net.node(seeder).ordb_peers().is_empty());
    let by_id: std::collections::BTreeMap<PeerId, NodeIx> =
        all.iter().map(|&i| (id_of(&net, i), i)).collect();
    for &i in &all {
        assert_eq!(net.node(i).ordb_references(&hname), 0);
    }
    let asker = all[0];
    let ordb = net.node(asker).ordb_peers()[0];
    let msgs = query(&mut net, asker, ordb, &hname, 1, 7);
    assert_eq!(end_reason(&msgs), Some(DbEndReason::FINISHED), "{msgs:?}");
    assert_eq!(verify(&name, &msgs).unwrap(), data);
    // The holder found joined the ORDB's list.
    assert!(net.node(by_id[&ordb]).ordb_references(&hname) > 0);

    // A name nobody has: DB_END UNAVAILABLE.
    let nothing = HashName::new(&[0x42; 20]).unwrap();
    let via = net.node(asker).ordb_peers()[0];
    let msgs = query(&mut net, asker, via, &nothing, 1, 5);
    assert_eq!(
        end_reason(&msgs),
        Some(DbEndReason::UNAVAILABLE),
        "{msgs:?}"
    );
    assert!(!msgs.iter().any(|m| matches!(m, RelayMsg::DbData(_))));
}

#[test]
fn loop_counter_stops_a_request_cycle() {
    let (mut net, all) = bootstrapped(10, false);
    // Every peer claims a name nobody has: the ORDBs reference each other in circles.
    let fake = HashName::new(&[0x99; 20]).unwrap();
    for &ix in &all {
        run(
            &mut net,
            ix,
            Command::Advertise {
                hash_name: fake.clone(),
                progress: Progress::Full,
            },
        );
    }
    settle(&mut net, 5);
    let asker = all[0];
    let via = net.node(asker).ordb_peers()[0];
    let msgs = query(&mut net, asker, via, &fake, 1, 5);
    assert_eq!(
        end_reason(&msgs),
        Some(DbEndReason::UNAVAILABLE),
        "{msgs:?}"
    );
    let stopped: u64 = all
        .iter()
        .map(|&i| net.node(i).counters().get(Count::OrdbLoopStopped))
        .sum();
    assert!(stopped > 0, "no query reached the counter limit");
    // Everything wound down: no splice or served stream left anywhere.
    settle(&mut net, 10);
    for &i in &all {
        let c = net.node(i).ordb_census();
        assert_eq!(c[0] + c[1], 0, "{}: {c:?}", net.name(i));
    }
}

#[test]
fn tampering_ordb_is_caught() {
    let (mut net, all) = bootstrapped(12, true);
    let seeder = all[2];
    let data = pattern(9, 5_000);
    let (name, hname) = seed(&mut net, seeder, data);
    let (asker, ordb, _) = sharing_an_ordb_with(&net, &all, seeder);
    let msgs = query(&mut net, asker, ordb, &hname, 1, 11);
    assert!(msgs.iter().any(|m| matches!(m, RelayMsg::DbData(_))));
    let err = verify(&name, &msgs).unwrap_err();
    assert!(err.starts_with("data"), "{err}");
}

#[test]
fn an_ordb_catches_a_tamperer_upstream_and_goes_around_it() {
    // The seeder keeps no ORDB circuits (a public server that STOREs its own record); a
    // tampering peer claims the name to its ORDBs.
    // An honest ORDB of the tamperer forwards there, the tamperer fetches from the seeder
    // and flips a byte of each DB_DATA: the honest ORDB must catch it at the first bad
    // cell (never relaying it), drop that circuit, and serve later queries around it.
    let (seeder_i, tamperer_i) = (5, 7);
    let (mut net, all) = bootstrapped_with(14, |i, p| {
        if i == seeder_i {
            p.ordb_circuits = 0;
            p.ordb.store_own_record = true;
        }
        p.ordb.tamper_relayed_data = i == tamperer_i;
    });
    let (seeder, tamperer) = (all[seeder_i], all[tamperer_i]);
    let data = pattern(4, 20_000);
    let (name, hname) = seed(&mut net, seeder, data.clone());
    run(
        &mut net,
        tamperer,
        Command::Advertise {
            hash_name: hname.clone(),
            progress: Progress::Full,
        },
    );
    settle(&mut net, 5);
    let t_id = id_of(&net, tamperer);
    let by_id: std::collections::BTreeMap<PeerId, NodeIx> =
        all.iter().map(|&i| (id_of(&net, i), i)).collect();
    let (asker, ordb) = all
        .iter()
        .copied()
        .filter(|&i| i != seeder && i != tamperer)
        .find_map(|i| {
            net.node(i)
                .ordb_peers()
                .into_iter()
                .find(|o| *o != t_id && net.node(by_id[o]).ordb_references(&hname) > 0)
                .map(|o| (i, o))
        })
        .expect("a peer whose ORDB references the tamperer");
    let caught = |net: &Network| {
        net.node(by_id[&ordb])
            .counters()
            .get(Count::OrdbTamperCaught)
    };

    let n_chunks = data.len().div_ceil(486) as u16;
    let first = query(&mut net, asker, ordb, &hname, 1, n_chunks);
    assert_eq!(
        end_reason(&first),
        Some(DbEndReason::DESTROYED),
        "{} cells",
        first.len()
    );
    verify(&name, &first).expect("a tampered cell reached the asker");
    assert!(!first.iter().any(|m| matches!(m, RelayMsg::DbData(_))));
    assert_eq!(caught(&net), 1);
    assert_eq!(
        net.node(tamperer).counters().get(Count::OrdbTamperCaught),
        0
    );

    // Later queries go around the tamperer: the whole file, byte-exact.
    let mut got = None;
    for _ in 0..3 {
        let msgs = query(&mut net, asker, ordb, &hname, 1, n_chunks);
        let ok = verify(&name, &msgs).expect("a tampered cell reached the asker");
        if end_reason(&msgs) == Some(DbEndReason::FINISHED) {
            got = Some(ok);
            break;
        }
    }
    assert_eq!(got.as_deref(), Some(&data[..]), "caught {}", caught(&net));
}

#[test]
fn live_stream_joined_two_windows_behind() {
    let (mut net, all) = bootstrapped(8, false);
    let seeder = all[1];
    let name = start_live(&mut net, seeder, "video/webm", 5, 4);
    // 40 segments of 4 chunks: absolute chunks 0..160.
    for s in 0..40u32 {
        live_push(&mut net, seeder, name, s);
    }
    settle(&mut net, 3);
    let hname = HashName::new(&name).unwrap();
    let s_id = id_of(&net, seeder);
    let viewer = all
        .iter()
        .copied()
        .find(|&i| i != seeder && net.node(i).ordb_peers().contains(&s_id))
        .expect("a peer with the seeder as ORDB");
    // Ask 8 chunks while the stream has 160: the join starts 2 windows (2 × 64) behind.
    let q = match run(
        &mut net,
        viewer,
        Command::Query {
            hash_name: hname.clone(),
            chunk: 0,
            nb_chunks: 8,
            via: Some(s_id),
        },
    ) {
        CommandOk::Query(q) => q,
        o => panic!("{o:?}"),
    };
    settle(&mut net, 5);
    let msgs: Vec<RelayMsg> = net
        .taped(viewer)
        .take_query_replies()
        .into_iter()
        .filter(|(id, _)| *id == q)
        .map(|(_, m)| m)
        .collect();
    let ring = ChunkRing::new(4 * 64);
    let wires: Vec<u32> = msgs
        .iter()
        .filter_map(|m| match m {
            RelayMsg::DbData(d) => Some(d.chunk),
            _ => None,
        })
        .collect();
    let expect: Vec<u32> = (32..40).map(|a| ring.to_wire(a)).collect();
    assert_eq!(wires, expect);
    let segs: BTreeSet<u32> = msgs
        .iter()
        .filter_map(|m| match m {
            RelayMsg::DbSegment(s) => Some(s.segment),
            _ => None,
        })
        .collect();
    assert_eq!(segs, BTreeSet::from([8, 9]));
    assert_eq!(end_reason(&msgs), Some(DbEndReason::FINISHED));
}

#[test]
fn seeder_lost_mid_answer_ends_the_requester_stream_destroyed() {
    let (mut net, all) = bootstrapped(12, false);
    let seeder = all[4];
    // More chunks than one DB_SENDME window, so the seeder is still sending when lost.
    let (_, hname) = seed(&mut net, seeder, pattern(1, 1500 * 486));
    let s_id = id_of(&net, seeder);
    let s_ordbs = net.node(seeder).ordb_peers();
    // An asker whose ORDB (not reached through the seeder) references the seeder.
    let (asker, ordb) = all
        .iter()
        .copied()
        .filter(|&i| i != seeder)
        .find_map(|i| {
            net.node(i)
                .ordb_paths()
                .into_iter()
                .find(|(first, o)| *first != s_id && *o != s_id && s_ordbs.contains(o))
                .map(|(_, o)| (i, o))
        })
        .expect("a peer sharing an ORDB with the seeder");
    let q = match run(
        &mut net,
        asker,
        Command::Query {
            hash_name: hname,
            chunk: 1,
            nb_chunks: 1500,
            via: Some(ordb),
        },
    ) {
        CommandOk::Query(q) => q,
        o => panic!("{o:?}"),
    };
    let mut got: Vec<RelayMsg> = Vec::new();
    net.drive_bounded(2_000_000, |n| {
        got.extend(
            n.taped(asker)
                .take_query_replies()
                .into_iter()
                .filter(|(id, _)| *id == q)
                .map(|(_, m)| m),
        );
        got.iter().any(|m| matches!(m, RelayMsg::DbData(_)))
    });
    net.crash(seeder);
    settle(&mut net, 10);
    got.extend(
        net.taped(asker)
            .take_query_replies()
            .into_iter()
            .filter(|(id, _)| *id == q)
            .map(|(_, m)| m),
    );
    let data = got
        .iter()
        .filter(|m| matches!(m, RelayMsg::DbData(_)))
        .count();
    assert!(data < 1500, "{data} chunks arrived");
    assert_eq!(end_reason(&got), Some(DbEndReason::DESTROYED));
}

/// Download `hname` on `getter` with `Command::Get`, reading in order until done.
fn fetch(net: &mut Network, getter: NodeIx, hname: &HashName, max_secs: u64) -> Vec<u8> {
    let cmd = Command::Get {
        hash_name: hname.clone(),
        held: Vec::new(),
    };
    let h = match run(net, getter, cmd) {
        CommandOk::Download(h) => h,
        o => panic!("{o:?}"),
    };
    let (mut out, mut buf) = (Vec::new(), vec![0u8; 1 << 16]);
    let done = |net: &Network| {
        net.events_of(getter).find_map(|e| match e {
            Event::ContentDone { handle, result } if *handle == h => Some(*result),
            _ => None,
        })
    };
    for _ in 0..max_secs {
        settle(net, 1);
        while let Some((off, n)) = net.taped(getter).read_content(h, &mut buf) {
            assert_eq!(off, out.len() as u64, "content is read in order");
            out.extend_from_slice(&buf[..n]);
        }
        net.flush(getter);
        if done(net).is_some() {
            break;
        }
    }
    assert_eq!(done(net), Some(Ok(())), "download did not finish");
    out
}

#[test]
fn get_fetches_a_seeded_file_through_the_ordbs() {
    let (mut net, all) = bootstrapped(14, false);
    let data = pattern(0, 700_000);
    let (_n, hname) = seed(&mut net, all[3], data.clone());
    assert!(fetch(&mut net, all[9], &hname, 600) == data);
}

#[test]
fn a_publisher_is_named_in_the_dht_only_through_its_ordbs() {
    // Anyone may look a name up: the seeder is never named in a DHT record, only its
    // ORDBs, which STORE the name when it tells them (the seed: ORDBs send the STORE).
    // A downloader still fetches through them. A public server (`store_own_record`)
    // names itself too.
    let (mut net, all) = bootstrapped(14, false);
    let seeder = all[3];
    let data = pattern(6, 100_000);
    let (_n, hname) = seed(&mut net, seeder, data.clone());
    let s_id = id_of(&net, seeder);
    // A getter that is not the seeder's ORDB, nor has it as its ORDB: the seeder could
    // be named as the getter's ORDB, as any ORDB is.
    let getter = all
        .iter()
        .copied()
        .find(|&i| {
            i != seeder
                && !net.node(i).ordb_peers().contains(&s_id)
                && !net.node(seeder).ordb_peers().contains(&id_of(&net, i))
        })
        .expect("a peer apart from the seeder");
    assert!(fetch(&mut net, getter, &hname, 600) == data);
    settle(&mut net, 10);
    let held = recorded_holders(&net, &all, &hname);
    let named_as_its_ordb = net.node(getter).ordb_peers().contains(&s_id);
    assert!(
        named_as_its_ordb || !held.iter().any(|(id, _)| *id == s_id),
        "the seeder is named in a record: {held:?}"
    );
    // Its ORDBs are named, as whole holders.
    assert!(
        net.node(seeder)
            .ordb_peers()
            .iter()
            .any(|o| held.contains(&(*o, Progress::Full))),
        "no ORDB of the seeder STOREd the name: {held:?}"
    );

    // A public server names itself.
    let (mut net, all) = bootstrapped_with(14, |i, p| p.ordb.store_own_record = i == 3);
    let (_n, hname) = seed(&mut net, all[3], data);
    let held = recorded_holders(&net, &all, &hname);
    assert!(
        held.contains(&(id_of(&net, all[3]), Progress::Full)),
        "{held:?}"
    );
}

#[test]
fn get_survives_tampering_ordbs() {
    let (mut net, all) = bootstrapped_with(14, |i, p| p.ordb.tamper_relayed_data = i % 3 == 1);
    let data = pattern(0, 200_000);
    let (_n, hname) = seed(&mut net, all[3], data.clone());
    assert!(fetch(&mut net, all[9], &hname, 900) == data);
}

#[test]
fn a_downloader_serves_what_it_verified_after_the_seeder_is_gone() {
    let (mut net, all) = bootstrapped(14, false);
    let data = pattern(2, 120_000);
    let (name, hname) = seed(&mut net, all[3], data.clone());
    assert!(fetch(&mut net, all[9], &hname, 600) == data);
    // A holds everything it verified: manifest and every chunk.
    let store = net.node(all[9]).chunk_store().expect("a peer has a store");
    assert!(store.manifest(&name).is_some());
    assert_eq!(store.chunk_count(&name), data.len().div_ceil(486) as u64);
    settle(&mut net, 10);
    net.crash(all[3]);
    settle(&mut net, 30);
    assert!(fetch(&mut net, all[11], &hname, 900) == data);
}

/// Read what download `h` has ready into `out` for `secs` seconds of network time.
fn read_for(net: &mut Network, ix: NodeIx, h: DownloadHandle, secs: u64, out: &mut Vec<u8>) {
    let mut buf = vec![0u8; 1 << 16];
    for _ in 0..secs {
        settle(net, 1);
        while let Some((_, n)) = net.taped(ix).read_content(h, &mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        net.flush(ix);
    }
}

/// Start a live stream at `ix` (signing key `[key; 32]`); its hash_name.
fn start_live(net: &mut Network, ix: NodeIx, mime: &str, key: u8, segment_chunks: u16) -> [u8; 20] {
    match run(
        net,
        ix,
        Command::Live {
            mime_type: mime.into(),
            key: Some([key; 32]),
            segment_chunks,
        },
    ) {
        CommandOk::Content(n) => n,
        o => panic!("{o:?}"),
    }
}

/// Push segment `s` (4 chunks of 100 bytes of the test pattern) to the stream `name`.
fn live_push(net: &mut Network, ix: NodeIx, name: [u8; 20], s: u32) {
    let chunks: Vec<Vec<u8>> = (0..4).map(|i| pattern((s * 4 + i) as usize, 100)).collect();
    run(
        net,
        ix,
        Command::LivePush {
            hash_name: name,
            chunks,
        },
    );
}

/// A viewer keeps the live segments it verified in its store's ring, advertises the
/// stream, and serves it: with the seeder gone, a second viewer joins and plays it from
/// the first viewer's store (byte-exact, chunk-aligned).
#[test]
fn a_viewer_reserves_a_live_stream_after_the_seeder_is_gone() {
    let (mut net, all) = bootstrapped(12, false);
    let seeder = all[1];
    let name = start_live(&mut net, seeder, "video/webm", 6, 4);
    let mut stream: Vec<u8> = Vec::new();
    let mut s = 0u32;
    for _ in 0..40 {
        live_push(&mut net, seeder, name, s);
        s += 1;
    }
    settle(&mut net, 3);
    let hname = HashName::new(&name).unwrap();
    let v1 = all[6];
    let h1 = match run(
        &mut net,
        v1,
        Command::GetLive {
            hash_name: hname.clone(),
        },
    ) {
        CommandOk::Download(h) => h,
        o => panic!("{o:?}"),
    };
    let mut got1 = Vec::new();
    read_for(&mut net, v1, h1, 5, &mut got1);
    // The stream goes on while the viewer follows.
    for _ in 0..10 {
        live_push(&mut net, seeder, name, s);
        s += 1;
        read_for(&mut net, v1, h1, 1, &mut got1);
    }
    read_for(&mut net, v1, h1, 3, &mut got1);
    for i in 0..s * 4 {
        stream.extend_from_slice(&pattern(i as usize, 100));
    }
    assert!(!got1.is_empty(), "the first viewer got nothing");
    let store = net.node(v1).chunk_store().unwrap();
    let (newest, oldest) = store
        .segment_range(&name)
        .expect("the viewer keeps segments");
    assert_eq!(newest, s - 1, "the viewer kept up");
    assert!(newest - oldest < 64, "the ring bounds what it keeps");
    net.crash(seeder);
    settle(&mut net, 5);
    let served_before = net.node(v1).served_chunks();
    let v2 = all[10];
    let h2 = match run(&mut net, v2, Command::GetLive { hash_name: hname }) {
        CommandOk::Download(h) => h,
        o => panic!("{o:?}"),
    };
    let mut got2 = Vec::new();
    read_for(&mut net, v2, h2, 20, &mut got2);
    assert!(!got2.is_empty(), "the second viewer got nothing");
    assert!(
        net.node(v1).served_chunks() > served_before,
        "the first viewer served nothing"
    );
    let at = (0..stream.len() / 100)
        .map(|c| c * 100)
        .find(|&o| stream.get(o..o + got2.len()) == Some(&got2[..]))
        .expect("the second viewer's bytes are not a run of the stream");
    // Joined 2 windows (32 segments of 4 chunks) behind the newest chunk it could see.
    assert!(
        at > 0 && at + got2.len() == stream.len(),
        "{at} + {}",
        got2.len()
    );
}

/// The seed's facilitators: an ORDB remembers peers whose DB_INFO had F = 1, and when a
/// FIND finds no holder of a name it sends the query to them; a facilitator that has
/// the content (never advertised) serves it.
#[test]
fn an_unsuccessful_find_goes_to_a_facilitator() {
    use onionpeer_core::ordb::{FileSeeder, MemoryStore, store_file};
    let (mut net, all) = bootstrapped_with(12, |i, p| p.ordb.facilitator = i == 4);
    let f = all[4];
    // The facilitator holds X without telling anyone (as if fetched from elsewhere).
    let key = onionpeer_core::crypto::identity::Ed25519Keypair::from_secret(&[9; 32]);
    let data = pattern(5, 5 * 486);
    let x = FileSeeder::new(&key, "application/octet-stream", 0, data.clone()).unwrap();
    let mut store = MemoryStore::new(1 << 20);
    let xname = store_file(&mut store, &x, true).unwrap();
    net.taped(f).set_chunk_store(Box::new(store));
    // It advertises something else, with its F flag.
    seed(&mut net, f, pattern(6, 1000));
    let f_id = id_of(&net, f);
    let ordb = net
        .node(f)
        .ordb_peers()
        .into_iter()
        .find(|o| {
            all.iter()
                .any(|&i| id_of(&net, i) == *o && net.node(i).ordb_facilitators() > 0)
        })
        .expect("an ORDB of the facilitator knows it as one");
    let asker = all
        .iter()
        .copied()
        .filter(|&i| i != f && id_of(&net, i) != ordb)
        .find(|&i| {
            net.node(i)
                .ordb_paths()
                .iter()
                .any(|(first, o)| *o == ordb && *first != f_id)
        })
        .expect("a peer sharing that ORDB");
    let o_ix = all
        .iter()
        .copied()
        .find(|&i| id_of(&net, i) == ordb)
        .unwrap();
    let msgs = query(&mut net, asker, ordb, &HashName::new(&xname).unwrap(), 1, 5);
    assert_eq!(end_reason(&msgs), Some(DbEndReason::FINISHED), "{msgs:?}");
    assert_eq!(verify(&xname, &msgs).unwrap(), data);
    assert!(net.node(o_ix).counters().get(Count::OrdbToFacilitator) >= 1);
}

/// The CLI's live test in memory: segments of 16 full chunks, 40 at once, then one
/// every 300 ms while a viewer that joined 2 windows behind reads; the viewer keeps
/// getting bytes (it once stalled after its first read).
#[test]
fn a_live_viewer_keeps_up_with_a_steady_seeder() {
    let (mut net, all) = bootstrapped(8, false);
    let seeder = all[1];
    let name = start_live(&mut net, seeder, "application/octet-stream", 7, 16);
    let push = |net: &mut Network, s: u32| {
        let chunks: Vec<Vec<u8>> = (0..16)
            .map(|i| pattern((s * 16 + i) as usize, 486))
            .collect();
        run(
            net,
            seeder,
            Command::LivePush {
                hash_name: name,
                chunks,
            },
        );
    };
    let mut s = 0u32;
    while s < 40 {
        push(&mut net, s);
        s += 1;
    }
    settle(&mut net, 2);
    let viewer = all[6];
    let h = match run(
        &mut net,
        viewer,
        Command::GetLive {
            hash_name: HashName::new(&name).unwrap(),
        },
    ) {
        CommandOk::Download(h) => h,
        o => panic!("{o:?}"),
    };
    // Past the join's 2 windows and well into the part produced while reading.
    let want = 100 * 16 * 486;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    for _ in 0..400 {
        push(&mut net, s);
        s += 1;
        let t = net.now + Duration::from_millis(300);
        net.drive_until(t);
        while let Some((_, n)) = net.taped(viewer).read_content(h, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        net.flush(viewer);
        if got.len() >= want {
            break;
        }
    }
    assert!(
        got.len() >= want,
        "the viewer stalled at {} bytes",
        got.len()
    );
    let stream: Vec<u8> = (0..s * 16).flat_map(|i| pattern(i as usize, 486)).collect();
    assert!(
        (0..s as usize * 16)
            .map(|c| c * 486)
            .any(|o| stream.get(o..o + got.len()) == Some(&got[..])),
        "the viewer's bytes are not a run of the stream"
    );
}

/// A range a viewer asks just after its join, once the seeder published one more
/// segment, starts a little more than 2 windows behind the newest chunk: the ORDB still
/// serves it (it once read the wire number as a chunk a ring later, not produced yet,
/// and the viewer waited on it forever).
#[test]
fn a_live_range_just_past_two_windows_behind_is_served() {
    let (mut net, all) = bootstrapped(8, false);
    let seeder = all[1];
    let name = start_live(&mut net, seeder, "video/webm", 8, 4);
    // 40 segments of 4 chunks: absolute chunks 0..160 (ring 256, window 64).
    for s in 0..40u32 {
        live_push(&mut net, seeder, name, s);
    }
    settle(&mut net, 3);
    let hname = HashName::new(&name).unwrap();
    let s_id = id_of(&net, seeder);
    let viewer = all
        .iter()
        .copied()
        .find(|&i| i != seeder && net.node(i).ordb_peers().contains(&s_id))
        .expect("a peer with the seeder as ORDB");
    let ring = ChunkRing::new(4 * 64);
    // The join of one segment earlier started at 28 (2 windows behind 155).
    let q = match run(
        &mut net,
        viewer,
        Command::Query {
            hash_name: hname,
            chunk: u64::from(ring.to_wire(28)),
            nb_chunks: 8,
            via: Some(s_id),
        },
    ) {
        CommandOk::Query(q) => q,
        o => panic!("{o:?}"),
    };
    settle(&mut net, 5);
    let msgs: Vec<RelayMsg> = net
        .taped(viewer)
        .take_query_replies()
        .into_iter()
        .filter(|(id, _)| *id == q)
        .map(|(_, m)| m)
        .collect();
    let wires: Vec<u32> = msgs
        .iter()
        .filter_map(|m| match m {
            RelayMsg::DbData(d) => Some(d.chunk),
            _ => None,
        })
        .collect();
    let expect: Vec<u32> = (28..36).map(|a| ring.to_wire(a)).collect();
    assert_eq!(wires, expect);
    assert_eq!(end_reason(&msgs), Some(DbEndReason::FINISHED));
}

/// The peers whose live records say they hold `name`, across every node's store, with
/// the progress each says.
fn recorded_holders(
    net: &Network,
    all: &[NodeIx],
    name: &HashName,
) -> BTreeSet<(PeerId, Progress)> {
    let now = net.now;
    all.iter()
        .filter_map(|&ix| net.node(ix).record_store())
        .flat_map(|s| s.get(name, now).map(|h| (h.peer.id, h.progress)))
        .collect()
}

#[test]
fn a_partial_record_lives_as_long_as_the_download_it_speaks_for() {
    let ttl = Duration::from_secs(180);
    let (mut net, all) = bootstrapped_with(14, |_, p| p.dht.partial_record_ttl = Some(ttl));
    let downloader = all[9];
    let hname = HashName::new(&[0x5a; 20]).unwrap();
    let cmd = Command::Advertise {
        hash_name: hname.clone(),
        progress: Progress::Half,
    };
    run(&mut net, downloader, cmd);
    settle(&mut net, 20);
    // Its ORDBs STOREd themselves as holders of half of it.
    let ordbs: BTreeSet<PeerId> = net.node(downloader).ordb_peers().into_iter().collect();
    let named = |net: &Network| {
        recorded_holders(net, &all, &hname)
            .into_iter()
            .filter(|(id, _)| ordbs.contains(id))
            .collect::<BTreeSet<_>>()
    };
    let first = named(&net);
    assert!(!first.is_empty(), "no ORDB STOREd the partial holding");
    assert!(first.iter().all(|(_, p)| *p == Progress::Half));
    // While the download's circuits live, its ORDBs keep the records alive past their
    // lifetime.
    settle(&mut net, 2 * ttl.as_secs());
    assert_eq!(
        named(&net),
        first,
        "records refreshed while the download lives"
    );
    // Gone, the download's records go within a lifetime: no ORDB claims it any more.
    net.crash(downloader);
    settle(&mut net, ttl.as_secs() + 40);
    assert_eq!(recorded_holders(&net, &all, &hname), BTreeSet::new());
}
