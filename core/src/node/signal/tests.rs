use super::*;
use alloc::vec;

fn frags(kind: SignalKind, session: u32, from: u8, sdp: &[u8]) -> Vec<PeerSignal> {
    PeerSignal::fragments(kind, session, PeerId([0xee; 20]), PeerId([from; 20]), sdp)
        .unwrap()
        .collect()
}

const T0: Instant = Instant::from_millis(0);

#[test]
fn in_order_fragments_reassemble() {
    let sdp: Vec<u8> = (0..1400u32).map(|i| (i % 251) as u8).collect();
    let mut r = Reassembler::default();
    let fs = frags(SignalKind::OFFER, 1, 1, &sdp);
    assert_eq!(fs.len(), 4);
    for (i, f) in fs.iter().enumerate() {
        let p = r.push(CircKey(5), f, T0);
        assert_eq!((p.bad, p.dropped), (0, 0));
        assert_eq!(p.complete.is_some(), i == 3);
        if let Some(whole) = p.complete {
            assert_eq!(whole, sdp);
        }
    }
    assert_eq!(r.len(), 0);
}

#[test]
fn out_of_order_wrong_circuit_and_orphans_are_bad() {
    let sdp = vec![b'x'; 1000];
    let fs = frags(SignalKind::ANSWER, 2, 1, &sdp);
    let mut r = Reassembler::default();
    // A middle fragment with nothing started.
    assert_eq!(r.push(CircKey(1), &fs[1], T0).bad, 1);
    // Skipping a fragment drops the reassembly.
    r.push(CircKey(1), &fs[0], T0);
    assert_eq!(r.push(CircKey(1), &fs[2], T0).bad, 1);
    assert_eq!(r.len(), 0);
    // A fragment on another circuit drops it too.
    r.push(CircKey(1), &fs[0], T0);
    assert_eq!(r.push(CircKey(2), &fs[1], T0).bad, 1);
    assert_eq!(r.len(), 0);
    // A restart replaces the earlier one (counted).
    r.push(CircKey(1), &fs[0], T0);
    let p = r.push(CircKey(1), &fs[0], T0);
    assert_eq!((p.bad, r.len()), (1, 1));
}

#[test]
fn reassemblies_are_bounded_and_expire() {
    let sdp = vec![b'y'; 600];
    let mut r = Reassembler::default();
    for s in 0..(MAX_REASSEMBLIES as u32 + 3) {
        let first = &frags(SignalKind::OFFER, s, 9, &sdp)[0];
        let p = r.push(CircKey(1), first, Instant::from_millis(u64::from(s)));
        assert_eq!(p.dropped, usize::from(s >= MAX_REASSEMBLIES as u32));
        assert!(r.len() <= MAX_REASSEMBLIES);
    }
    assert_eq!(
        r.expire(T0 + SIGNAL_LIFETIME + Duration::from_secs(1)),
        MAX_REASSEMBLIES
    );
    assert_eq!(r.len(), 0);
}

/// Any sequence of decodable fragments, from a few senders on a few circuits: never a
/// panic, never more than the bounds buffered, and a completed SDP is exactly `total`
/// long.
#[test]
fn fuzz_reassembly_stays_bounded() {
    bolero::check!().for_each(|input: &[u8]| {
        let mut r = Reassembler::default();
        let mut now = T0;
        for chunk in input.chunks(8) {
            let [a, b, c, d, e, f, g, h] = match <[u8; 8]>::try_from(chunk) {
                Ok(x) => x,
                Err(_) => return,
            };
            let total = 1 + u16::from_be_bytes([a, b]) % (MAX_SIGNAL_LEN as u16);
            // Half the fragments start an SDP, so completions happen.
            let offset = if c & 1 == 0 {
                0
            } else {
                u16::from_be_bytes([c, d]) % total
            };
            let len = (1 + usize::from(e) * 2)
                .min(usize::from(total - offset))
                .min(crate::cells::relay::MAX_SIGNAL_FRAGMENT);
            let m = PeerSignal {
                kind: SignalKind(f % 2),
                session: u32::from(g % 4),
                to: PeerId([0; 20]),
                from: PeerId([h % 3; 20]),
                total,
                offset,
                data: heapless::Vec::from_slice(&vec![h; len]).unwrap(),
            };
            now = now + Duration::from_millis(u64::from(h));
            let p = r.push(CircKey(u64::from(h % 2)), &m, now);
            if let Some(sdp) = p.complete {
                assert_eq!(sdp.len(), usize::from(total));
            }
            assert!(r.len() <= MAX_REASSEMBLIES);
            assert!(r.buffered() <= MAX_REASSEMBLIES * MAX_SIGNAL_LEN);
            r.expire(now);
        }
    });
}

#[test]
fn introducers_are_bounded_and_the_latest_wins() {
    let id = |b: u8| PeerId([b; 20]);
    let mut t = Introducers::new(3);
    t.learned(id(1), id(100));
    t.learned(id(2), id(100));
    // Learned again from someone else: that one introduces it now, and it counts as new.
    t.learned(id(1), id(101));
    assert_eq!(t.get(&id(1)), Some(id(101)));
    t.learned(id(3), id(100));
    t.learned(id(4), id(100));
    // The oldest (2) made room.
    assert_eq!(t.len(), 3);
    assert_eq!(t.get(&id(2)), None);
    assert_eq!(t.get(&id(1)), Some(id(101)));
    // Nobody introduces themselves; a zero-sized table keeps nothing.
    t.learned(id(5), id(5));
    assert_eq!(t.get(&id(5)), None);
    let mut none = Introducers::new(0);
    none.learned(id(1), id(2));
    assert_eq!(none.len(), 0);
}

/// Any sequence of records learned keeps the introducer table within its bound, and the
/// last introducer learned for a peer still held is the one given.
#[test]
fn fuzz_introducers_stay_bounded() {
    bolero::check!().for_each(|input: &[u8]| {
        let mut t = Introducers::new(8);
        let mut last = BTreeMap::new();
        for pair in input.chunks_exact(2) {
            let (peer, via) = (PeerId([pair[0] % 32; 20]), PeerId([pair[1] % 32; 20]));
            t.learned(peer, via);
            if peer != via {
                last.insert(peer, via);
            }
            assert!(t.len() <= 8);
            if peer != via {
                assert_eq!(t.get(&peer), Some(via));
            }
        }
        for (peer, via) in last {
            assert!(t.get(&peer).is_none_or(|v| v == via));
        }
    });
}

#[test]
fn signal_paths_are_bounded_expire_and_end_with_their_circuit() {
    let id = |n: u32| {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&n.to_be_bytes());
        PeerId(b)
    };
    let mut p = SignalPaths::default();
    p.insert(id(1), CircKey(1), T0);
    assert_eq!(p.get(&id(1), T0), Some(CircKey(1)));
    // Gone with its lifetime, and with its circuit.
    assert_eq!(p.get(&id(1), T0 + SIGNAL_LIFETIME), None);
    p.circuit_gone(CircKey(1));
    assert_eq!(p.get(&id(1), T0), None);
    // Bounded: the oldest makes room.
    for n in 0..(MAX_SIGNAL_PATHS as u32 + 5) {
        p.insert(
            id(n),
            CircKey(u64::from(n)),
            Instant::from_millis(u64::from(n)),
        );
        assert!(p.len() <= MAX_SIGNAL_PATHS);
    }
    assert_eq!(p.get(&id(0), T0), None);
    let last = MAX_SIGNAL_PATHS as u32 + 4;
    assert_eq!(p.get(&id(last), T0), Some(CircKey(u64::from(last))));
    p.expire(T0 + SIGNAL_LIFETIME + Duration::from_secs(10));
    assert_eq!(p.len(), 0);
}
