//! Tests of the DHT: unit tests per file, never-panic / invariant targets (bolero) for the
//! table, the lookup and the store, a snapshot of a table's rendering, and an in-memory
//! network of 1,000 peers on which lookups must find the true closest peers.

use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr};
use core::time::Duration;
use std::println;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::*;
use crate::Instant;
use crate::cells::relay::{HashName, PeerRecord, Progress};
use crate::crypto::identity::PeerId;

fn rec(id: [u8; 20]) -> PeerRecord {
    PeerRecord {
        id: PeerId(id),
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, id[19], id[0])),
        port: 9001,
        modulus: vec![0xAB; 4],
        ntor_key: None,
    }
}

fn random_id(rng: &mut ChaCha20Rng) -> [u8; 20] {
    let mut id = [0u8; 20];
    rng.fill_bytes(&mut id);
    id
}

fn secs(s: u64) -> Instant {
    Instant::from_millis(s * 1000)
}

/// An id at distance `2^159 + n` from zero: bucket 159 of a table whose local id is zero.
fn far(n: u8) -> [u8; 20] {
    let mut id = [0u8; 20];
    id[0] = 0x80;
    id[19] = n;
    id
}

// ---------------------------------------------------------------- distance

#[test]
fn bucket_index_follows_the_seed() {
    let zero = Key([0; 20]);
    let mut one = [0u8; 20];
    one[19] = 1;
    assert_eq!(bucket_index(&zero, &zero), None);
    assert_eq!(bucket_index(&zero, &Key(one)), Some(0));
    one[19] = 3;
    assert_eq!(bucket_index(&zero, &Key(one)), Some(1));
    one[19] = 0x80;
    assert_eq!(bucket_index(&zero, &Key(one)), Some(7));
    assert_eq!(bucket_index(&zero, &Key(far(0))), Some(159));
    let a = Key(far(7));
    let b = Key(far(9));
    assert_eq!(bucket_index(&a, &b), bucket_index(&b, &a));
    assert_eq!(bucket_index(&a, &b), Some(3)); // 7 ^ 9 = 14
    assert_eq!(Distance::ZERO.leading_zeros(), 160);
    assert!(a.distance(&b) < a.distance(&zero));
}

#[test]
fn key_in_bucket_lands_in_that_bucket() {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    for _ in 0..64 {
        let local = Key(random_id(&mut rng));
        for b in 0..160u8 {
            let k = local.in_bucket(b, random_id(&mut rng)).unwrap();
            assert_eq!(bucket_index(&local, &k), Some(b));
        }
        assert_eq!(local.in_bucket(160, [0; 20]), None);
    }
}

#[test]
fn hash_name_keys() {
    let twenty = HashName::new(&[7u8; 20]).unwrap();
    assert_eq!(Key::for_hash_name(&twenty), Key([7; 20]));
    let abcd = HashName::new(b"abcd").unwrap();
    // SHA-1("abcd").
    assert_eq!(
        hex::encode(Key::from(&abcd).as_bytes()),
        "81fe8bfe87576c3ecb22426f8e57847382917acf"
    );
}

// ---------------------------------------------------------------- table

fn table() -> RoutingTable {
    RoutingTable::new(PeerId([0; 20]), DhtConfig::default().ping_timeout)
}

#[test]
fn full_bucket_pings_least_recently_seen() {
    let mut t = table();
    assert_eq!(
        t.insert_or_update(rec([0; 20]), secs(0)),
        InsertResult::SelfId
    );
    for n in 0..8 {
        assert_eq!(
            t.insert_or_update(rec(far(n)), secs(u64::from(n))),
            InsertResult::Inserted
        );
    }
    // Peer 0 talks again: peer 1 is now the least recently seen.
    assert_eq!(
        t.insert_or_update(rec(far(0)), secs(10)),
        InsertResult::Updated
    );
    let ping = PeerId(far(1));
    assert_eq!(
        t.insert_or_update(rec(far(100)), secs(11)),
        InsertResult::Pending { ping }
    );
    assert_eq!(
        t.insert_or_update(rec(far(101)), secs(11)),
        InsertResult::Full
    );
    assert_eq!(t.pending(159).unwrap().record.id, PeerId(far(100)));
    // It answers: the newcomer is dropped.
    assert_eq!(t.on_ping_result(&ping, true, secs(12)), PingOutcome::Alive);
    assert!(t.pending(159).is_none());
    assert_eq!(t.len(), 8);
    // Next newcomer; the victim is now peer 2; it fails and is replaced.
    let ping = PeerId(far(2));
    assert_eq!(
        t.insert_or_update(rec(far(102)), secs(13)),
        InsertResult::Pending { ping }
    );
    assert_eq!(
        t.on_ping_result(&ping, false, secs(14)),
        PingOutcome::Evicted {
            replaced_by: Some(PeerId(far(102)))
        }
    );
    assert!(t.get(&ping).is_none());
    // Kept from the longest-lived to the newest.
    let order: Vec<u8> = t.bucket(159).iter().map(|e| e.record.id.0[19]).collect();
    assert_eq!(order, [0, 1, 3, 4, 5, 6, 7, 102]);
    assert_eq!(
        t.on_ping_result(&PeerId(far(200)), false, secs(14)),
        PingOutcome::Unknown
    );
}

#[test]
fn silent_ping_evicts_after_timeout() {
    let mut t = table();
    for n in 0..8 {
        t.insert_or_update(rec(far(n)), secs(0));
    }
    assert_eq!(
        t.insert_or_update(rec(far(50)), secs(1)),
        InsertResult::Pending {
            ping: PeerId(far(0))
        }
    );
    assert_eq!(t.settle_expired_pings(secs(5)), 0);
    assert_eq!(t.settle_expired_pings(secs(31)), 1);
    assert!(t.get(&PeerId(far(0))).is_none());
    assert!(t.get(&PeerId(far(50))).is_some());
    // Removing an entry lets a waiting newcomer in.
    assert_eq!(
        t.insert_or_update(rec(far(51)), secs(40)),
        InsertResult::Pending {
            ping: PeerId(far(1))
        }
    );
    assert!(t.remove(&PeerId(far(3))).is_some());
    assert!(t.get(&PeerId(far(51))).is_some());
    assert!(t.pending(159).is_none());
}

#[test]
fn due_for_ping_and_closest() {
    let mut t = table();
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let ids: Vec<[u8; 20]> = (0..300).map(|_| random_id(&mut rng)).collect();
    for (i, id) in ids.iter().enumerate() {
        t.insert_or_update(rec(*id), secs(i as u64));
    }
    let interval = Duration::from_secs(15 * 60);
    let now = secs(300 + 15 * 60 - 10);
    let due: Vec<PeerId> = t.peers_due_for_ping(now, interval).map(Entry::id).collect();
    assert!(!due.is_empty());
    assert!(
        due.iter()
            .all(|p| now - t.get(p).unwrap().last_seen >= interval)
    );
    assert!(t.ping_sent(&due[0], now));
    assert!(
        t.peers_due_for_ping(now, interval)
            .all(|e| e.id() != due[0])
    );

    for _ in 0..20 {
        let target = Key(random_id(&mut rng));
        let got: Vec<PeerId> = t.closest(&target, 8).iter().map(|e| e.id()).collect();
        let mut all: Vec<PeerId> = t.iter().map(Entry::id).collect();
        all.sort_by_key(|p| target.distance(&Key::from(p)));
        all.truncate(8);
        assert_eq!(got, all);
    }
}

/// Checks everything the table promises.
fn check_table(t: &RoutingTable) {
    let local = Key::from(t.local_id());
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    for i in 0..=159u8 {
        let b = t.bucket(i);
        assert!(b.len() <= K);
        total += b.len();
        for e in b {
            assert_eq!(bucket_index(&local, &Key::from(e.id())), Some(i));
            assert!(seen.insert(e.id()), "duplicate");
            assert!(e.last_seen >= e.first_seen);
        }
        assert!(b.windows(2).all(|w| w[0].first_seen <= w[1].first_seen));
        if let Some(p) = t.pending(i) {
            assert_eq!(b.len(), K, "pending only in a full bucket");
            assert_eq!(bucket_index(&local, &Key::from(p.record.id)), Some(i));
            assert!(b.iter().any(|e| e.id() == p.ping));
            assert!(seen.insert(p.record.id), "pending duplicates an entry");
        }
    }
    assert_eq!(total, t.len());
    assert!(t.get(&t.local_id()).is_none());
}

#[test]
fn table_invariants_under_any_operations() {
    bolero::check!()
        .with_type::<Vec<(u8, u8, u8, u8)>>()
        .for_each(|ops| {
            let mut t = table();
            let mut now = Instant::ZERO;
            for &(op, x, y, dt) in ops {
                // Few distinct ids so buckets fill and collide; x == y == 0 is us.
                let mut id = [0u8; 20];
                id[0] = x & 0x0F;
                id[19] = y & 0x3F;
                let id = PeerId(id);
                now = now + Duration::from_secs(u64::from(dt));
                match op % 6 {
                    0 => {
                        let r = t.insert_or_update(rec(id.0), now);
                        assert_eq!(r == InsertResult::SelfId, id == t.local_id());
                    }
                    1 => {
                        t.on_ping_result(&id, true, now);
                    }
                    2 => {
                        t.on_ping_result(&id, false, now);
                    }
                    3 => {
                        t.remove(&id);
                    }
                    4 => {
                        t.settle_expired_pings(now);
                    }
                    _ => {
                        t.ping_sent(&id, now);
                    }
                }
                check_table(&t);
            }
        });
}

#[test]
fn table_rendering_snapshot() {
    let mut rng = ChaCha20Rng::from_seed([42; 32]);
    let local = PeerId(random_id(&mut rng));
    let mut t = RoutingTable::new(local, Duration::from_secs(30));
    for i in 0..40u64 {
        let mut id = random_id(&mut rng);
        // Some near ids too, so low buckets show up.
        if i % 4 == 0 {
            id[..17].copy_from_slice(&local.0[..17]);
        }
        t.insert_or_update(rec(id), secs(i * 10));
    }
    let victim = t.bucket(159)[0].id();
    t.on_ping_result(&victim, true, secs(405));
    // A newcomer waiting on a full bucket, and a periodic ping outstanding.
    while !matches!(
        t.insert_or_update(rec(random_id(&mut rng)), secs(500)),
        InsertResult::Pending { .. }
    ) {}
    let near = t.bucket(22)[0].id();
    t.ping_sent(&near, secs(600));
    insta::assert_snapshot!(t.render(secs(1000)));
}

// ---------------------------------------------------------------- lookup

fn config() -> DhtConfig {
    DhtConfig::default()
}

#[test]
fn lookup_takes_partial_answers_and_terminates() {
    let local = PeerId([0xFF; 20]);
    let target = Key([0; 20]);
    let seeds = (10..13).map(|n| rec([n; 20]));
    let mut l = Lookup::new(LookupKind::FindNode, local, target, seeds, &config());
    let mut asked = Vec::new();
    while let Action::Contact(p) = l.next(secs(0)) {
        asked.push(p.id);
    }
    assert_eq!(asked.len(), 3);
    assert_eq!(l.in_flight(), 3);
    // [10;20] answers in two cells; the peers of the first are known at once but all
    // three slots stay taken until an answer completes.
    assert!(l.on_response(&asked[0], &[rec([1; 20]), rec([2; 20])], false));
    assert!(matches!(l.next(secs(1)), Action::Wait { until: Some(_) }));
    assert!(l.on_response(&asked[0], &[rec([3; 20])], true));
    assert_eq!(l.state(&asked[0]), Some(PeerState::Succeeded));
    assert_eq!(l.next(secs(1)), Action::Contact(rec([1; 20])));
    // Unsolicited answers are ignored.
    assert!(!l.on_response(&PeerId([3; 20]), &[], true));
    // Time out everyone in flight: a late answer still counts.
    let late = asked[1];
    assert!(matches!(l.next(secs(100)), Action::Contact(_)));
    assert_eq!(l.state(&late), Some(PeerState::Unresponsive));
    assert!(l.on_response(&late, &[], true));
    assert_eq!(l.state(&late), Some(PeerState::Succeeded));
    // Everything else fails: the lookup ends with who answered.
    for _ in 0..100 {
        match l.next(secs(100)) {
            Action::Contact(p) => l.on_failure(&p.id),
            Action::Wait { .. } => {
                let waiting: Vec<PeerId> = [1u8, 2, 3, 10, 11, 12]
                    .iter()
                    .map(|&n| PeerId([n; 20]))
                    .filter(|p| matches!(l.state(p), Some(PeerState::Waiting { .. })))
                    .collect();
                for p in waiting {
                    l.on_failure(&p);
                }
            }
            Action::Finished => break,
        }
    }
    assert!(l.is_finished());
    let got: Vec<PeerId> = l.closest().iter().map(|r| r.id).collect();
    assert_eq!(got, [PeerId([10; 20]), PeerId([11; 20])]);
    // [10;20] listed closer peers; [11;20] listed none but is in the result.
    assert!(l.never_closer().is_empty());
}

#[test]
fn never_closer_flags_peers_that_only_point_away() {
    let cfg = DhtConfig { k: 2, ..config() };
    let target = Key([0; 20]);
    let seeds = [rec([0x10; 20]), rec([0x20; 20]), rec([0x30; 20])];
    let mut l = Lookup::new(
        LookupKind::FindNode,
        PeerId([0xFF; 20]),
        target,
        seeds,
        &cfg,
    );
    while let Action::Contact(_) = l.next(secs(0)) {}
    // The suspect lists only peers farther from the target than itself.
    l.on_response(
        &PeerId([0x30; 20]),
        &[rec([0x40; 20]), rec([0x50; 20])],
        true,
    );
    l.on_response(&PeerId([0x10; 20]), &[rec([0x01; 20])], true);
    l.on_response(&PeerId([0x20; 20]), &[rec([0x02; 20])], true);
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 100);
        match l.next(secs(0)) {
            Action::Contact(p) => {
                l.on_response(&p.id, &[], true);
            }
            Action::Finished => break,
            Action::Wait { .. } => panic!("all answered"),
        }
    }
    let got: Vec<PeerId> = l.closest().iter().map(|r| r.id).collect();
    assert_eq!(got, [PeerId([1; 20]), PeerId([2; 20])]);
    assert_eq!(l.never_closer(), [PeerId([0x30; 20])]);
}

#[test]
fn find_value_collects_holders_and_keeps_going() {
    let cfg = DhtConfig {
        max_lookup_holders: 3,
        ..config()
    };
    let target = Key([0; 20]);
    let seeds = (10..15).map(|n| rec([n; 20]));
    let mut l = Lookup::new(
        LookupKind::FindValue,
        PeerId([0xFF; 20]),
        target,
        seeds,
        &cfg,
    );
    let a = match l.next(secs(0)) {
        Action::Contact(p) => p.id,
        other => panic!("{other:?}"),
    };
    let new = l
        .on_value(&a, &[rec([0x50; 20]), rec([0x51; 20])], false)
        .to_vec();
    assert_eq!(new.len(), 2);
    let new = l.on_value(&a, &[rec([0x51; 20])], true).to_vec();
    assert!(new.is_empty());
    // Not finished: more holders are sought.
    assert!(matches!(l.next(secs(0)), Action::Contact(_)));
    let b = PeerId([11; 20]);
    assert_eq!(
        l.on_value(&b, &[rec([0x52; 20]), rec([0x53; 20])], true)
            .len(),
        1
    );
    assert_eq!(l.next(secs(0)), Action::Finished);
    assert_eq!(l.holders().len(), 3);
}

#[test]
fn lookup_never_exceeds_alpha_and_always_terminates() {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let universe: Vec<PeerRecord> = (0..48).map(|_| rec(random_id(&mut rng))).collect();
    let local = PeerId(random_id(&mut rng));
    let target = Key(random_id(&mut rng));
    let cfg = DhtConfig {
        max_candidates: 12,
        ..config()
    };
    bolero::check!()
        .with_type::<(u8, Vec<(u8, u8, u64)>)>()
        .for_each(|(nseeds, ops)| {
            let seeds = universe.iter().take(usize::from(*nseeds % 10)).cloned();
            let mut l = Lookup::new(LookupKind::FindNode, local, target, seeds, &cfg);
            let mut now = Instant::ZERO;
            let mut asked: Vec<PeerId> = Vec::new();
            let mut ops = ops.iter();
            let mut steps = 0;
            loop {
                steps += 1;
                assert!(steps < 10_000, "lookup did not terminate");
                let action = l.next(now);
                assert!(l.in_flight() <= cfg.alpha);
                let waiting = asked
                    .iter()
                    .filter(|p| matches!(l.state(p), Some(PeerState::Waiting { .. })))
                    .count();
                assert!(waiting <= cfg.alpha);
                match action {
                    Action::Contact(p) => {
                        assert!(!asked.contains(&p.id), "asked twice");
                        asked.push(p.id);
                    }
                    Action::Finished => break,
                    Action::Wait { until } => {
                        assert!(until.is_some());
                        match ops.next() {
                            // Out of input: let time run out.
                            None => now = until.unwrap(),
                            Some(&(op, sel, bits)) => {
                                let Some(&who) = asked.get(usize::from(sel) % asked.len().max(1))
                                else {
                                    now = until.unwrap();
                                    continue;
                                };
                                let listed: Vec<PeerRecord> = (0..48)
                                    .filter(|i| bits >> i & 1 == 1)
                                    .map(|i| universe[i].clone())
                                    .collect();
                                match op % 5 {
                                    0 => {
                                        l.on_response(&who, &listed, true);
                                    }
                                    4 => {
                                        l.on_value(&who, &listed, op & 8 != 0);
                                    }
                                    1 => {
                                        l.on_response(&who, &listed, false);
                                    }
                                    2 => l.on_failure(&who),
                                    _ => now = now + Duration::from_secs(u64::from(op)),
                                }
                            }
                        }
                    }
                }
            }
            assert!(l.contacts() <= cfg.max_contacts);
            let ds: Vec<Distance> = l
                .closest()
                .iter()
                .map(|r| target.distance(&Key::from(r.id)))
                .collect();
            assert!(ds.windows(2).all(|w| w[0] < w[1]));
            assert!(ds.len() <= cfg.k);
        });
}

// ---------------------------------------------------------------- store

#[test]
fn store_limits_expiry_and_republish() {
    let cfg = DhtConfig {
        max_records: 2,
        max_holders_per_record: 2,
        ..config()
    };
    let mut s = RecordStore::new(&cfg);
    let a = HashName::new(b"a").unwrap();
    let b = HashName::new(b"b").unwrap();
    let c = HashName::new(b"c").unwrap();
    s.put(&a, rec([1; 20]), Progress::Half, secs(0)).unwrap();
    s.put(&a, rec([2; 20]), Progress::Full, secs(0)).unwrap();
    // Full: a newcomer with less of the file than every holder is refused...
    assert_eq!(
        s.put(&a, rec([3; 20]), Progress::Quarter, secs(0)),
        Err(StoreError::TooManyHolders)
    );
    // ... one with at least the least progress takes that holder's place.
    s.put(&a, rec([3; 20]), Progress::Full, secs(0)).unwrap();
    assert!(s.get(&a, secs(0)).all(|h| h.peer.id != rec([1; 20]).id));
    // A known holder is refreshed, not added.
    s.put(&a, rec([2; 20]), Progress::Full, secs(600)).unwrap();
    s.put(&b, rec([1; 20]), Progress::Quarter, secs(0)).unwrap();
    assert_eq!(
        s.put(&c, rec([1; 20]), Progress::Quarter, secs(0)),
        Err(StoreError::Full)
    );
    assert_eq!(s.get(&a, secs(10)).count(), 2);
    assert!(s.get(&a, secs(10)).all(|h| h.progress == Progress::Full));

    let due = s.due_for_republish(secs(45 * 60));
    assert_eq!(due.len(), 2); // a/[3] and b/[1]; a/[2] was stored at 0, refreshed at 600
    let due = s.due_for_republish(secs(45 * 60));
    assert_eq!(due.len(), 0);
    // After an hour the first announcements are gone; a/[2] (refreshed at 600 s) lives.
    assert_eq!(s.expire(secs(3600)), 2);
    assert_eq!(s.len(), 1);
    assert_eq!(s.get(&a, secs(3600)).count(), 1);
    // An expired holder makes room for a new one.
    s.put(&a, rec([4; 20]), Progress::Half, secs(3600)).unwrap();
    s.put(&a, rec([5; 20]), Progress::Half, secs(4200 + 1))
        .unwrap();
    assert_eq!(s.holder_count(), 2);
}

#[test]
fn partial_records_live_only_while_refreshed_and_are_not_sent_on() {
    let ttl = 180;
    let cfg = DhtConfig {
        partial_record_ttl: Some(Duration::from_secs(ttl)),
        ..config()
    };
    let mut s = RecordStore::new(&cfg);
    let a = HashName::new(b"a").unwrap();
    s.put(&a, rec([1; 20]), Progress::Half, secs(0)).unwrap();
    s.put(&a, rec([2; 20]), Progress::Full, secs(0)).unwrap();
    s.put(&a, rec([3; 20]), Progress::Quarter, secs(0)).unwrap();
    // Holder 3's announcer refreshes it; holder 1's does not (its download is gone).
    s.put(&a, rec([3; 20]), Progress::Half, secs(ttl - 1))
        .unwrap();
    let live = |s: &RecordStore, t| {
        let mut v: Vec<u8> = s.get(&a, secs(t)).map(|h| h.peer.id.0[0]).collect();
        v.sort();
        v
    };
    assert_eq!(live(&s, ttl - 1), [1, 2, 3]);
    assert_eq!(live(&s, ttl), [2, 3]);
    assert_eq!(live(&s, 2 * ttl - 1), [2]);
    // Only the whole holder is sent on by the closest nodes.
    let due = s.due_for_republish(secs(cfg.republish_interval.as_secs()));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1.peer.id.0[0], 2);
    // A holder that has it all now lives as long as any whole holder.
    s.put(&a, rec([3; 20]), Progress::Full, secs(ttl)).unwrap();
    assert_eq!(live(&s, cfg.record_ttl.as_secs()), [3]);
    // Without a lifetime of their own, partial records live and are sent on as others.
    let mut s = RecordStore::new(&config());
    s.put(&a, rec([1; 20]), Progress::Half, secs(0)).unwrap();
    assert_eq!(live(&s, 3599), [1]);
    assert_eq!(s.due_for_republish(secs(45 * 60)).len(), 1);
}

/// Holders 1, 2, … of `a` announce `progress` in turn, one a second from 0 s.
fn announce_in_order(s: &mut RecordStore, a: &HashName, progress: &[Progress]) {
    for (i, p) in progress.iter().enumerate() {
        s.put(a, rec([i as u8 + 1; 20]), *p, secs(i as u64))
            .unwrap();
    }
}

/// The first byte of each id of an answer.
fn ids(v: Vec<PeerRecord>) -> Vec<u8> {
    v.iter().map(|r| r.id.0[0]).collect()
}

#[test]
fn find_value_answers_name_late_whole_holders_in_turn() {
    let cfg = DhtConfig {
        max_holders_per_record: 4,
        ..config()
    };
    let mut s = RecordStore::new(&cfg);
    let a = HashName::new(b"a").unwrap();
    // The first announcers: the seeder, its ORDB, two downloaders' ORDBs.
    use Progress::{Full, Half, Quarter};
    announce_in_order(&mut s, &a, &[Full, Full, Quarter, Half]);
    // Until others hold the whole file, the answer is the record's order, every time.
    assert_eq!(ids(s.answer(&a, secs(4), 8)), [1, 2, 3, 4]);
    assert_eq!(ids(s.answer(&a, secs(4), 8)), [1, 2, 3, 4]);
    // Two downloaders finish: each takes the place of the holder with the least.
    s.put(&a, rec([5; 20]), Progress::Full, secs(5)).unwrap();
    s.put(&a, rec([6; 20]), Progress::Full, secs(6)).unwrap();
    assert!(
        s.get(&a, secs(6))
            .all(|h| h.peer.id.0[0] != 3 && h.peer.id.0[0] != 4)
    );
    // They come first, in turn; the first announcers after them.
    assert_eq!(ids(s.answer(&a, secs(7), 8)), [5, 6, 1, 2]);
    assert_eq!(ids(s.answer(&a, secs(7), 8)), [6, 5, 1, 2]);
    assert_eq!(ids(s.answer(&a, secs(7), 1)), [5]);
    assert_eq!(ids(s.answer(&a, secs(7), 1)), [6]);
    // A refreshed announcement keeps its place in the turn.
    s.put(&a, rec([5; 20]), Progress::Full, secs(8)).unwrap();
    assert_eq!(ids(s.answer(&a, secs(8), 8)), [5, 6, 1, 2]);
    // Expired holders are never named; an unknown name has none.
    assert!(s.answer(&a, secs(7200), 8).is_empty());
    assert!(
        s.answer(&HashName::new(b"b").unwrap(), secs(1), 8)
            .is_empty()
    );
}

#[test]
fn find_value_answers_lead_with_the_partial_holders_stored_longest() {
    let cfg = DhtConfig {
        max_holders_per_record: 6,
        answer_partial_lead: 2,
        ..config()
    };
    let mut s = RecordStore::new(&cfg);
    let a = HashName::new(b"a").unwrap();
    // The seeder and its ORDB, then three downloaders' ORDBs.
    use Progress::{Full, Half, Quarter};
    announce_in_order(&mut s, &a, &[Full, Full, Quarter, Half, Quarter]);
    // The two partial holders stored first lead, every time; then the record's order.
    assert_eq!(ids(s.answer(&a, secs(5), 8)), [3, 4, 1, 2, 5]);
    assert_eq!(ids(s.answer(&a, secs(5), 8)), [3, 4, 1, 2, 5]);
    assert_eq!(ids(s.answer(&a, secs(5), 3)), [3, 4, 1]);
    // One of them finishes: a whole holder now, it keeps its place in the record, and
    // the next partial holder leads in its place.
    s.put(&a, rec([3; 20]), Progress::Full, secs(6)).unwrap();
    assert_eq!(ids(s.answer(&a, secs(6), 8)), [4, 5, 1, 2, 3]);
    // 6 fills the record; 7, late, takes 5's place and comes after the partial lead.
    s.put(&a, rec([6; 20]), Progress::Full, secs(7)).unwrap();
    s.put(&a, rec([7; 20]), Progress::Full, secs(8)).unwrap();
    assert_eq!(ids(s.answer(&a, secs(9), 8)), [4, 7, 1, 2, 3, 6]);
    // 8 takes the last partial holder's place: late whole holders lead, in turn.
    s.put(&a, rec([8; 20]), Progress::Full, secs(10)).unwrap();
    assert!(s.get(&a, secs(10)).all(|h| h.progress == Progress::Full));
    assert_eq!(ids(s.answer(&a, secs(10), 8)), [7, 8, 1, 2, 3, 6]);
    assert_eq!(ids(s.answer(&a, secs(10), 8)), [8, 7, 1, 2, 3, 6]);
    // In turn: each answer leads with the next partial holder.
    let cfg = DhtConfig {
        answer_partial_turn: true,
        ..cfg
    };
    let mut s = RecordStore::new(&cfg);
    announce_in_order(&mut s, &a, &[Full, Quarter, Half, Quarter]);
    assert_eq!(ids(s.answer(&a, secs(5), 8)), [2, 3, 1, 4]);
    assert_eq!(ids(s.answer(&a, secs(5), 8)), [3, 4, 1, 2]);
    assert_eq!(ids(s.answer(&a, secs(5), 8)), [4, 2, 1, 3]);
}

#[test]
fn store_never_exceeds_limits() {
    let cfg = DhtConfig {
        max_records: 4,
        max_holders_per_record: 3,
        ..config()
    };
    bolero::check!()
        .with_type::<Vec<(u8, u8, u8, u16)>>()
        .for_each(|ops| {
            let mut s = RecordStore::new(&cfg);
            let mut now = Instant::ZERO;
            for &(op, name, peer, dt) in ops {
                now = now + Duration::from_secs(u64::from(dt));
                let n = HashName::new(&[name % 8]).unwrap();
                match op % 5 {
                    0 | 1 => {
                        let progress = if peer & 0x80 != 0 {
                            Progress::Full
                        } else {
                            Progress::Half
                        };
                        let _ = s.put(&n, rec([peer % 8; 20]), progress, now);
                    }
                    2 => {
                        s.expire(now);
                    }
                    3 => {
                        for (_, h) in s.due_for_republish(now) {
                            assert!(h.expires > now);
                        }
                    }
                    _ => {
                        // Bounded, live holders only, each once; the record keeps them.
                        let before = s.holder_count();
                        let live: Vec<PeerId> = s.get(&n, now).map(|h| h.peer.id).collect();
                        let got = s.answer(&n, now, usize::from(dt % 4));
                        assert_eq!(got.len(), usize::from(dt % 4).min(live.len()));
                        assert!(got.iter().all(|r| live.contains(&r.id)));
                        assert!(
                            got.iter()
                                .enumerate()
                                .all(|(i, r)| { got[..i].iter().all(|x| x.id != r.id) })
                        );
                        assert_eq!(s.holder_count(), before);
                    }
                }
                assert!(s.len() <= cfg.max_records);
                for (_, holders) in s.iter() {
                    assert!(holders.len() <= cfg.max_holders_per_record);
                    assert!(!holders.is_empty());
                }
            }
        });
}

#[test]
fn rate_limiter_bursts_refills_and_stays_bounded() {
    let mut r = RateLimiter::new(3, 1, 2);
    let p = PeerId([1; 20]);
    assert!((0..3).all(|_| r.allow(&p, secs(0))));
    assert!(!r.allow(&p, secs(0)));
    assert!(!r.allow(&p, Instant::from_millis(500)));
    assert!(r.allow(&p, secs(1)));
    assert!(!r.allow(&p, secs(1)));
    assert!(r.allow(&p, secs(100)));
    // Tracking a third peer forgets the least recently seen one.
    r.allow(&PeerId([2; 20]), secs(101));
    r.allow(&p, secs(102));
    r.allow(&PeerId([3; 20]), secs(103));
    assert_eq!(r.len(), 2);
    // p was kept (used after [2]): its bucket is not full again.
    assert!((0..3).filter(|_| r.allow(&p, secs(102))).count() < 3);
}

// ---------------------------------------------------------------- simulation

/// Runs `lookup` against a network where peer `id` answers with `tables[id]`'s closest,
/// split into DHT_FOUND-sized chunks of 3, answering the oldest request first.
fn drive(l: &mut Lookup, tables: &std::collections::BTreeMap<PeerId, RoutingTable>, target: &Key) {
    let mut queue: std::collections::VecDeque<PeerId> = Default::default();
    let now = Instant::ZERO;
    loop {
        match l.next(now) {
            Action::Contact(p) => queue.push_back(p.id),
            Action::Finished => return,
            Action::Wait { .. } => {
                let who = queue.pop_front().expect("waiting with nothing in flight");
                let answer: Vec<PeerRecord> = tables[&who]
                    .closest(target, K)
                    .iter()
                    .map(|e| e.record.clone())
                    .collect();
                let chunks: Vec<&[PeerRecord]> = answer.chunks(3).collect();
                if chunks.is_empty() {
                    l.on_response(&who, &[], true);
                }
                for (i, c) in chunks.iter().enumerate() {
                    l.on_response(&who, c, i + 1 == chunks.len());
                }
            }
        }
    }
}

#[test]
fn simulated_network_finds_true_closest() {
    const N: usize = 1000;
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    let ids: Vec<PeerId> = (0..N).map(|_| PeerId(random_id(&mut rng))).collect();
    let mut tables = std::collections::BTreeMap::new();
    for &me in &ids {
        let mut t = RoutingTable::new(me, Duration::from_secs(30));
        for &other in &ids {
            t.insert_or_update(rec(other.0), Instant::ZERO);
        }
        tables.insert(me, t);
    }
    let cfg = config();
    let lookups = 100;
    let (mut hops, mut hops_closest, mut contacts) = (0u32, 0u32, 0usize);
    let mut max_hops = 0;
    for _ in 0..lookups {
        let target = Key(random_id(&mut rng));
        let start = ids[(rng.next_u32() as usize) % N];
        let seeds: Vec<PeerRecord> = tables[&start]
            .closest(&target, K)
            .iter()
            .map(|e| e.record.clone())
            .collect();
        let mut l = Lookup::new(LookupKind::FindNode, start, target, seeds, &cfg);
        drive(&mut l, &tables, &target);
        let got: Vec<PeerId> = l.closest().iter().map(|r| r.id).collect();
        let mut truth: Vec<PeerId> = ids.iter().copied().filter(|&p| p != start).collect();
        truth.sort_by_key(|p| target.distance(&Key::from(p)));
        truth.truncate(K);
        assert_eq!(got, truth);
        hops += l.hops();
        hops_closest += l.hops_to_closest();
        max_hops = max_hops.max(l.hops());
        contacts += l.contacts();
    }
    let log2n = (N as f64).log2();
    let mean_hops = f64::from(hops) / f64::from(lookups);
    let mean_closest = f64::from(hops_closest) / f64::from(lookups);
    println!(
        "N={N} log2(N)={log2n:.2}: mean hops {mean_hops:.2} (max {max_hops}), \
         mean hops to the closest {mean_closest:.2}, mean contacts {:.1}",
        contacts as f64 / f64::from(lookups)
    );
    assert!(mean_closest <= log2n / 2.0);
    assert!(mean_hops <= log2n / 2.0);
}

#[test]
fn added_starting_peers_join_a_running_lookup_only() {
    // A bootstrap's further entry points (DB_FIND_PEER answers arriving after the lookup
    // started) are asked like the first one; once the lookup is over they are ignored.
    let local = PeerId([0xFF; 20]);
    let target = Key([0; 20]);
    let mut l = Lookup::new(
        LookupKind::FindNode,
        local,
        target,
        [rec([10; 20])],
        &config(),
    );
    assert_eq!(l.next(secs(0)), Action::Contact(rec([10; 20])));
    l.add_peer(rec([20; 20]));
    l.add_peer(rec([20; 20]));
    l.add_peer(rec([0xFF; 20])); // ourselves: never a candidate
    assert_eq!(l.next(secs(0)), Action::Contact(rec([20; 20])));
    assert!(matches!(l.next(secs(0)), Action::Wait { .. }));
    assert!(l.on_response(&PeerId([10; 20]), &[], true));
    assert!(l.on_response(&PeerId([20; 20]), &[], true));
    assert_eq!(l.next(secs(1)), Action::Finished);
    l.add_peer(rec([5; 20]));
    assert_eq!(l.state(&PeerId([5; 20])), None);
    let got: Vec<PeerId> = l.closest().iter().map(|r| r.id).collect();
    assert_eq!(got, [PeerId([10; 20]), PeerId([20; 20])]);
}
