//! The glue, with fake ORDB circuits: what the node sends is read from
//! `Downloads::sent`, and the ORDBs' answers are fed to `on_download_reply` as the
//! circuit layer would (decrypted relay messages on the GET's stream).

use super::super::Node;
use super::super::api::{Command, CommandOk, DownloadHandle, Event, Output};
use super::super::config::{NodeConfig, PeersmConfig, Role};
use super::super::counters::Count;
use super::{DB_SENDME_EVERY, StreamId};
use crate::Instant;
use crate::cells::relay::{DbEnd, DbEndReason, HashName, PeerRecord, Progress, RelayMsg};
use crate::circuit::CircKey;
use crate::crypto::identity::{Ed25519Keypair, PeerId};
use crate::ordb::FileSeeder;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

fn node() -> Node {
    let mut cfg = NodeConfig::new([7; 32], Role::RELAY, 1_700_000_000);
    cfg.peersm = Some(PeersmConfig::new("10.0.0.1:9001".parse().unwrap()));
    Node::new(cfg, Instant::from_millis(1)).unwrap()
}

fn ordb(i: u8) -> PeerRecord {
    PeerRecord {
        id: PeerId([i; 20]),
        ip: core::net::IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 1, i)),
        port: 9001,
        modulus: vec![0xA5; 128],
        ntor_key: Some([i; 32]),
    }
}

fn seeder(len: usize) -> FileSeeder {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 486) as u8).collect();
    FileSeeder::new(
        &Ed25519Keypair::from_secret(&[5; 32]),
        "text/plain",
        1,
        data,
    )
    .unwrap()
}

/// The node, its fake ORDB circuits, and what it reported.
struct Glue {
    node: Node,
    seeder: FileSeeder,
    keys: Vec<CircKey>,
    /// Cells of `Downloads::sent` already looked at.
    seen: usize,
    events: Vec<Event>,
    out: Vec<u8>,
}

impl Glue {
    fn new(len: usize, circuits: u64) -> Glue {
        let mut node = node();
        let keys: Vec<CircKey> = (0..circuits).map(|i| CircKey(1000 + i)).collect();
        for (i, k) in keys.iter().enumerate() {
            node.fake_ordb_circuit(*k, ordb(i as u8 + 1));
        }
        Glue {
            node,
            seeder: seeder(len),
            keys,
            seen: 0,
            events: Vec::new(),
            out: Vec::new(),
        }
    }

    fn name(&self) -> HashName {
        HashName::new(&self.seeder.hash_name()).unwrap()
    }

    fn get(&mut self) -> DownloadHandle {
        let cmd = Command::Get {
            hash_name: self.name(),
            held: Vec::new(),
        };
        match self.node.command(Instant::from_millis(2), cmd) {
            Ok(CommandOk::Download(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    /// New cells the node sent since the last call.
    fn sent(&mut self) -> Vec<(CircKey, Option<StreamId>, RelayMsg)> {
        let all = &self.node.downloads.sent;
        let new: Vec<_> = all[self.seen..]
            .iter()
            .map(|(k, c)| (*k, c.stream_id, c.msg.clone()))
            .collect();
        self.seen = all.len();
        new
    }

    /// Drain the node's outputs; read whatever is readable.
    fn drain(&mut self, h: DownloadHandle) {
        loop {
            match self.node.poll_output() {
                Output::Timeout(..) => break,
                Output::Event(e) => {
                    if e == Event::ContentReadable(h) {
                        let mut buf = [0u8; 1000];
                        while let Some((off, n)) = self.node.read_content(h, &mut buf) {
                            assert_eq!(off, self.out.len() as u64);
                            self.out.extend_from_slice(&buf[..n]);
                        }
                    }
                    self.events.push(e);
                }
                _ => {}
            }
        }
    }

    /// Answer every DB_QUERY sent so far as an honest ORDB would; `tamper` alters the
    /// n-th DB_DATA of the first range GET on `keys[0]`.
    fn serve(
        &mut self,
        h: DownloadHandle,
        tamper: Option<usize>,
    ) -> Vec<(CircKey, Option<StreamId>, RelayMsg)> {
        let mut log = Vec::new();
        let mut tamper = tamper;
        for _ in 0..10_000 {
            let sent = self.sent();
            if sent.is_empty() {
                break;
            }
            for (key, sid, msg) in sent {
                log.push((key, sid, msg.clone()));
                let RelayMsg::DbQuery(q) = msg else {
                    continue;
                };
                // The manifest leads every answer; a range past the end is UNAVAILABLE.
                let mut answers: Vec<RelayMsg> = Vec::new();
                let (first, n) = (q.chunk - 1, self.seeder.n_chunks());
                if first >= n {
                    answers.push(
                        DbEnd {
                            reason: DbEndReason::UNAVAILABLE,
                        }
                        .into(),
                    );
                } else {
                    answers.push(self.seeder.db_connected().into());
                }
                if q.nb_chunks != 0 && first < n {
                    let count = u64::from(q.nb_chunks).min(n - first);
                    for x in self.seeder.hashes_for_range(first, count) {
                        answers.push(x.into());
                    }
                    for i in first..first + count {
                        let mut d = self.seeder.db_data(i).unwrap();
                        if key == self.keys[0]
                            && let Some(n) = tamper.as_mut()
                        {
                            if *n == 0 {
                                d.data[0] ^= 1;
                                tamper = None;
                            } else {
                                *n -= 1;
                            }
                        }
                        answers.push(d.into());
                    }
                }
                for a in answers {
                    if self.node.is_download_stream(key, sid) {
                        self.node.on_download_reply(key, sid, a);
                    }
                }
                self.drain(h);
            }
        }
        log
    }
}

#[test]
fn get_fetches_over_ordb_circuits_with_sendmes_and_db_info() {
    let mut g = Glue::new(486 * 2400 + 100, 6);
    let h = g.get();
    let first = g.sent();
    // The first round, on each of the 5 used circuits: one of the window's first blocks
    // (the manifest leads each answer), counter 0.
    assert_eq!(first.len(), 5);
    for (i, sent) in first.iter().enumerate() {
        let RelayMsg::DbQuery(q) = &sent.2 else {
            panic!("{first:?}")
        };
        assert_eq!(
            (q.chunk, q.nb_chunks, q.counter),
            (1 + 420 * i as u64, 420, 0)
        );
        assert_eq!(q.hash_name, g.name());
    }
    g.seen = 0;
    let log = g.serve(h, None);
    g.drain(h);
    let expect: Vec<u8> = (0..g.seeder.n_chunks())
        .flat_map(|i| g.seeder.chunk(i).unwrap().to_vec())
        .collect();
    assert_eq!(g.out, expect);
    assert!(g.events.contains(&Event::ContentInfo {
        handle: h,
        size: expect.len() as u64,
        mime: "text/plain".into(),
    }));
    assert!(g.events.contains(&Event::ContentDone {
        handle: h,
        result: Ok(()),
    }));
    assert!(
        g.events
            .iter()
            .any(|e| matches!(e, Event::ContentProgress { handle, .. } if *handle == h))
    );
    // One DB_SENDME per 100 DB_DATA on a stream: a 420-chunk GET gets 4.
    let mut sendmes: BTreeMap<(CircKey, Option<StreamId>), u32> = BTreeMap::new();
    for (k, s, m) in &log {
        if let RelayMsg::DbSendme(x) = m {
            assert_eq!(x.chunks, DB_SENDME_EVERY);
            *sendmes.entry((*k, *s)).or_default() += 1;
        }
    }
    assert!(sendmes.values().any(|&n| n == 4), "{sendmes:?}");
    // DB_INFO at each sixteenth of the file on each of the 6 ORDB circuits, stream 0:
    // HAVE (chunks held from the start) growing, then 100 % without HAVE (the whole file).
    let mut infos: BTreeMap<CircKey, Vec<(Progress, Option<u32>)>> = BTreeMap::new();
    for (k, s, m) in &log {
        if let RelayMsg::DbInfo(i) = m {
            assert!(s.is_none());
            infos.entry(*k).or_default().push((i.progress, i.have));
        }
    }
    assert_eq!(infos.len(), 6);
    for seq in infos.values() {
        assert_eq!(seq.len(), 16, "{seq:?}");
        assert_eq!(seq.last(), Some(&(Progress::Full, None)));
        let haves: Vec<u32> = seq.iter().filter_map(|(_, h)| *h).collect();
        assert_eq!(haves.len(), 15, "{seq:?}");
        // Never falling; it may stand still while the end game fetches a tail.
        assert!(haves.windows(2).all(|w| w[0] <= w[1]), "{seq:?}");
        assert!(haves[0] < haves[14], "{seq:?}");
        assert_eq!(seq[0].0, Progress::Quarter);
    }
    // Only 5 circuits carried DB_QUERYs.
    let used: alloc::collections::BTreeSet<CircKey> = log
        .iter()
        .filter(|(_, _, m)| matches!(m, RelayMsg::DbQuery(_)))
        .map(|(k, _, _)| *k)
        .collect();
    assert_eq!(used.len(), 5);
    // The download is forgotten once done.
    assert_eq!(g.node.content_progress(h), None);
}

#[test]
fn tampering_ordb_is_dropped_and_the_file_still_arrives() {
    let mut g = Glue::new(486 * 400, 6);
    let h = g.get();
    g.seen = 0;
    let log = g.serve(h, Some(3));
    g.drain(h);
    let expect: Vec<u8> = (0..g.seeder.n_chunks())
        .flat_map(|i| g.seeder.chunk(i).unwrap().to_vec())
        .collect();
    assert_eq!(g.out, expect);
    // keys[0] carried one range GET, of the first round (no time passes, so no rate is
    // measured and nothing is pipelined); after its bad chunk it was never asked again.
    let bad = g.keys[0];
    let on_bad = log
        .iter()
        .filter(|(k, _, m)| *k == bad && matches!(m, RelayMsg::DbQuery(_)))
        .count();
    assert_eq!(on_bad, 1);
    // Its ORDB is convicted: never picked again, the others not suspected at all.
    assert_eq!(g.node.counters().get(Count::PeerConvicted), 1);
    assert!(g.node.suspicion(&ordb(1).id) >= 2);
    assert_eq!(g.node.suspicion(&ordb(2).id), 0);
    assert!(g.events.contains(&Event::ContentDone {
        handle: h,
        result: Ok(()),
    }));
}

#[test]
fn lost_circuit_and_db_end_resume_elsewhere() {
    let mut g = Glue::new(486 * 2400, 6);
    let h = g.get();
    // Answer the first round's manifest by hand, then cut a range GET with DB_END
    // DESTROYED and close another circuit.
    let gets = g.sent();
    assert_eq!(gets.len(), 5);
    let (k, s, _) = gets[0].clone();
    g.node
        .on_download_reply(k, s, g.seeder.db_connected().into());
    g.drain(h);
    assert!(g.sent().is_empty());
    let (k1, s1, _) = gets[0].clone();
    g.node.on_download_reply(
        k1,
        s1,
        DbEnd {
            reason: DbEndReason::DESTROYED,
        }
        .into(),
    );
    assert!(!g.node.is_download_stream(k1, s1));
    let (k2, s2, _) = gets[1].clone();
    g.node.fake_ordb_closed(k2);
    assert!(!g.node.is_download_stream(k2, s2));
    g.drain(h);
    // Both ranges were asked again.
    let again = g.sent();
    let queries: Vec<_> = again
        .iter()
        .filter_map(|(k, _, m)| match m {
            RelayMsg::DbQuery(q) => Some((*k, q.chunk)),
            _ => None,
        })
        .collect();
    let chunk_of = |m: &RelayMsg| match m {
        RelayMsg::DbQuery(q) => q.chunk,
        _ => 0,
    };
    assert!(queries.iter().any(|(_, c)| *c == chunk_of(&gets[0].2)));
    assert!(
        queries
            .iter()
            .any(|(k, c)| *c == chunk_of(&gets[1].2) && *k != k2)
    );
    // Serve everything from here: the new queries and the three untouched GETs.
    g.seen -= again.len();
    for (k, s, m) in gets[2..].iter() {
        let cell = crate::cells::relay::RelayCell::new(*s, m.clone());
        g.node.downloads.sent.push((*k, cell));
    }
    g.serve(h, None);
    g.drain(h);
    let expect: Vec<u8> = (0..g.seeder.n_chunks())
        .flat_map(|i| g.seeder.chunk(i).unwrap().to_vec())
        .collect();
    assert_eq!(g.out, expect);
}

#[test]
fn get_needs_a_peer_and_cancel_ends_the_streams() {
    let mut plain = Node::new(NodeConfig::new([1; 32], Role::CLIENT, 0), Instant::ZERO).unwrap();
    let name = HashName::new(&[1; 20]).unwrap();
    assert!(
        plain
            .command(
                Instant::ZERO,
                Command::Get {
                    hash_name: name,
                    held: Vec::new()
                }
            )
            .is_err()
    );
    let mut g = Glue::new(4000, 6);
    let h = g.get();
    let q = g.sent();
    assert_eq!(q.len(), 5, "the info asked on each used circuit");
    g.node
        .command(Instant::from_millis(3), Command::CancelGet(h))
        .unwrap();
    // Each of those streams ends with DB_END FINISHED.
    let end = g.sent();
    assert_eq!(end.len(), q.len(), "{end:?}");
    for (k, s, _) in &q {
        assert!(
            end.iter().any(|(k2, s2, m)| k2 == k
                && s2 == s
                && matches!(m, RelayMsg::DbEnd(e) if e.reason == DbEndReason::FINISHED)),
            "{end:?}"
        );
    }
    assert_eq!(g.node.content_progress(h), None);
}
