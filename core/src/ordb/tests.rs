use super::*;
use crate::cells::relay::{ChunkSignature, DbConnected, DbData, DbHashes, DbSegment, RelayBody};
use crate::crypto::identity::Ed25519Keypair;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

const PUBLISHED: u32 = 0x6500_0000;

fn key(b: u8) -> Ed25519Keypair {
    Ed25519Keypair::from_secret(&[b; 32])
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

fn seed_file(len: usize) -> FileSeeder {
    FileSeeder::new(&key(1), "video/webm", PUBLISHED, content(len, 9)).unwrap()
}

fn verifier(s: &FileSeeder) -> FileVerifier {
    FileVerifier::from_db_connected(&s.hash_name(), &s.db_connected(), VerifyLimits::default())
        .unwrap()
}

fn relay_verifier(s: &FileSeeder) -> FileVerifier {
    FileVerifier::for_relay(&s.hash_name(), &s.db_connected(), VerifyLimits::default())
        .unwrap()
        .expect("a file is checked")
}

/// Feed DB_DATA for `index` to be checked alone: first every hash down to its leaf that
/// the verifier names.
fn fetch(v: &mut FileVerifier, s: &FileSeeder, index: u64) -> Result<Accepted, VerifyError> {
    while let Some(NodeRef { level, node }) = v.next_hashes_needed(index) {
        assert_eq!(
            v.accept_hashes(&s.hashes(level, node).unwrap()),
            Ok(Accepted::New)
        );
    }
    v.accept_db_data(&s.db_data(index).unwrap())
}

/// Feed DB_DATA for `index` as a stream covering its whole block sends it: the hashes
/// down to the block's node hash, no leaf hashes. The chunks released so far.
fn fetch_by_block(
    v: &mut FileVerifier,
    s: &FileSeeder,
    index: u64,
) -> Result<Vec<(u64, Vec<u8>)>, VerifyError> {
    loop {
        match v.next_hashes_needed(index) {
            Some(NodeRef { level, node }) if level > 1 => {
                assert_eq!(
                    v.accept_hashes(&s.hashes(level, node).unwrap()),
                    Ok(Accepted::New)
                );
            }
            _ => break,
        }
    }
    match v.accept_db_data(&s.db_data(index).unwrap())? {
        Accepted::New => Ok(vec![(index, s.chunk(index).unwrap().to_vec())]),
        Accepted::Duplicate => Ok(Vec::new()),
        Accepted::Held => Ok(released_chunks(v)),
    }
}

/// DB_DATA of chunk `index` with byte `at` altered and a tag that matches the new bytes
/// (a tamperer that knows the tag format).
fn forged(s: &FileSeeder, index: u64, at: usize) -> DbData {
    let mut bad = s.db_data(index).unwrap();
    bad.data[at] ^= 0x10;
    let [a, b, c, d, ..] = leaf_hash(&bad.data);
    bad.signature = ChunkSignature::new(PUBLISHED, [a, b, c, d]);
    bad
}

/// The chunks released by blocks checked whole, in order.
fn released_chunks(v: &mut FileVerifier) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(r) = v.take_released() {
        if let Released::Chunk(i, d) = r {
            out.push((i, d.to_vec()));
        }
    }
    out
}

fn shuffled(n: u64, seed: u8) -> Vec<u64> {
    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
    let mut order: Vec<u64> = (0..n).collect();
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[test]
fn round_trip_random_order_all_sizes() {
    let sizes = [
        0,
        1,
        486,
        487,
        15 * 486,
        15 * 486 + 1,
        225 * 486 + 5,
        1 << 20,
    ];
    for (k, &len) in sizes.iter().enumerate() {
        let s = seed_file(len);
        let n = s.n_chunks();
        assert_eq!(n, (len as u64).div_ceil(486).max(1), "{len}");
        let mut v = verifier(&s);
        assert_eq!(v.n_chunks(), n);
        let mut out = vec![Vec::new(); n as usize];
        for i in shuffled(n, k as u8) {
            assert!(!v.is_verified(i));
            assert_eq!(fetch(&mut v, &s, i), Ok(Accepted::New), "{len} {i}");
            assert!(v.is_verified(i));
            out[i as usize] = s.chunk(i).unwrap().to_vec();
        }
        assert!(v.is_complete());
        assert_eq!(
            v.pending_blocks(),
            0,
            "finished blocks drop their leaf hashes"
        );
        assert_eq!(out.concat(), content(len, 9));
        // A repeated chunk is a no-op.
        assert_eq!(fetch(&mut v, &s, 0), Ok(Accepted::Duplicate));
    }
}

#[test]
fn whole_blocks_without_leaf_hashes_are_checked_together() {
    // One block (the root covers the leaves), a short last block, several levels.
    for len in [1, 15 * 486, 15 * 486 + 1, 300 * 486 + 7] {
        let s = seed_file(len);
        let mut v = verifier(&s);
        let mut got = Vec::new();
        for i in 0..s.n_chunks() {
            let released = fetch_by_block(&mut v, &s, i).unwrap();
            let block_end = ((i / 15 + 1) * 15).min(s.n_chunks());
            // Nothing is verified before the block's last chunk; then all of it at once.
            if i + 1 < block_end {
                assert!(released.is_empty(), "{len}: chunk {i} released early");
                assert!(!v.is_verified(i));
            } else {
                assert_eq!(released.len() as u64, block_end - i / 15 * 15, "{len}");
            }
            got.extend(released);
        }
        assert!(v.is_complete(), "{len}");
        assert_eq!(v.held_blocks(), 0);
        assert!(
            got.iter().map(|c| c.0).eq(0..s.n_chunks()),
            "in order, once each"
        );
        let bytes: Vec<u8> = got.into_iter().flat_map(|c| c.1).collect();
        assert_eq!(bytes, content(len, 9));
    }
}

#[test]
fn a_block_checked_whole_releases_its_leaf_hashes_first() {
    let s = seed_file(40 * 486);
    let mut v = verifier(&s);
    for i in 15..29 {
        assert!(fetch_by_block(&mut v, &s, i).unwrap().is_empty());
    }
    assert_eq!(v.held_blocks(), 1);
    assert_eq!(
        v.accept_db_data(&s.db_data(29).unwrap()),
        Ok(Accepted::Held)
    );
    // The block's leaf hashes, as its seeder would send them, then its chunks: what a
    // store needs to serve any part of it again.
    assert_eq!(
        v.take_released(),
        Some(Released::Hashes(s.hashes(1, 1).unwrap()))
    );
    for i in 15..30 {
        match v.take_released() {
            Some(Released::Chunk(j, d)) => assert_eq!((j, &d[..]), (i, s.chunk(i).unwrap())),
            r => panic!("{r:?}"),
        }
    }
    assert_eq!(v.take_released(), None);
    assert_eq!(v.held_blocks(), 0);
    // Verified now: a repeat is a duplicate, not held again.
    assert_eq!(
        v.accept_db_data(&s.db_data(20).unwrap()),
        Ok(Accepted::Duplicate)
    );
}

#[test]
fn a_bad_block_is_caught_at_its_last_chunk_and_fetched_again() {
    let s = seed_file(40 * 486);
    let mut v = verifier(&s);
    // A tamperer that also forges the tag to match its data is held with the rest...
    let bad = forged(&s, 20, 7);
    for i in 15..30 {
        let r = if i == 20 {
            v.accept_db_data(&bad)
        } else {
            fetch_by_block(&mut v, &s, i).map(|_| Accepted::Held)
        };
        if i < 29 {
            assert_eq!(r, Ok(Accepted::Held), "chunk {i}");
        } else {
            // ...and the block fails as a whole: nothing of it is verified.
            assert_eq!(r, Err(VerifyError::BadBlock { block: 1 }));
            assert!(r.unwrap_err().is_tampering());
        }
    }
    assert_eq!(v.take_released(), None);
    assert!((15..30).all(|i| !v.is_verified(i)));
    assert_eq!(v.held_blocks(), 0);
    // The block again, from an honest circuit.
    let again: Vec<u64> = (15..30)
        .flat_map(|i| fetch_by_block(&mut v, &s, i).unwrap())
        .map(|c| c.0)
        .collect();
    assert!(again.into_iter().eq(15..30));
}

#[test]
fn held_chunks_are_checked_alone_when_their_leaf_hashes_come() {
    let s = seed_file(40 * 486);
    let mut v = verifier(&s);
    // A stream cut after 5 chunks of block 1, one of them bad (with a matching tag).
    for i in 15..19 {
        assert!(fetch_by_block(&mut v, &s, i).unwrap().is_empty());
    }
    let bad = forged(&s, 19, 0);
    assert_eq!(v.accept_db_data(&bad), Ok(Accepted::Held));
    // The resumed range starts inside the block, so its leaf hashes come first: the
    // good held chunks are released, the bad one dropped (its stream is gone).
    assert_eq!(v.accept_hashes(&s.hashes(1, 1).unwrap()), Ok(Accepted::New));
    let released: Vec<u64> = released_chunks(&mut v).into_iter().map(|c| c.0).collect();
    assert_eq!(released, vec![15, 16, 17, 18]);
    assert!(!v.is_verified(19));
    assert_eq!(v.held_blocks(), 0);
    assert_eq!(fetch(&mut v, &s, 19), Ok(Accepted::New));
}

#[test]
fn a_relay_holds_few_blocks() {
    let s = seed_file(400 * 486);
    let mut r = relay_verifier(&s);
    // One chunk of each of 25 blocks: only the 16 nearest the newest are held.
    for b in 0..25 {
        assert!(fetch_by_block(&mut r, &s, b * 15).unwrap().is_empty());
        assert!(r.held_blocks() <= 16);
    }
    assert_eq!(r.held_blocks(), 16);
    // A relay checks whole blocks too, and keeps no per-chunk state.
    let mut n = 0;
    for i in 24 * 15..25 * 15 {
        n += fetch_by_block(&mut r, &s, i).unwrap().len();
    }
    assert_eq!(n, 15);
    assert_eq!(r.verified_count(), 0);
}

#[test]
fn hashes_for_range_proves_the_range() {
    let s = seed_file(300 * 486);
    let mut v = verifier(&s);
    let msgs = s.hashes_for_range(100, 50);
    // Top (depth 3 here: 300 chunks → 20 blocks → 2 → 1), one level-2 node, 4 blocks.
    assert_eq!(s.shape().depth(), 3);
    assert_eq!(msgs.len(), 1 + 1 + 4);
    for m in &msgs {
        assert_eq!(v.accept_hashes(m), Ok(Accepted::New));
    }
    for i in 100..150 {
        assert_eq!(v.accept_db_data(&s.db_data(i).unwrap()), Ok(Accepted::New));
    }
    // Outside the range, the next thing to fetch is named precisely. Chunk 0's block
    // hash is proven (its level-2 node came along): held for a check of the whole block.
    assert_eq!(v.next_hashes_needed(0), Some(NodeRef { level: 1, node: 0 }));
    assert_eq!(v.accept_chunk(0, s.chunk(0).unwrap()), Ok(Accepted::Held));
    assert_eq!(
        v.accept_chunk(299, s.chunk(299).unwrap()),
        Err(VerifyError::NeedHashes {
            tree: 0,
            level: 2,
            node: 1
        })
    );
    assert_eq!(s.hashes_for_range(0, 300).len(), 1 + 2 + 20);
}

#[test]
fn tampered_chunk_detected_then_fetched_elsewhere() {
    let s = seed_file(40 * 486);
    let mut v = verifier(&s);
    let mut d = s.db_data(17).unwrap();
    d.data[100] ^= 1;
    // Without its leaf hash, the tag no longer matches the data.
    let e = fetch_by_block(&mut v, &s, 16).and_then(|_| v.accept_db_data(&d));
    assert_eq!(e, Err(VerifyError::BadTag { index: 17 }));
    while let Some(NodeRef { level, node }) = v.next_hashes_needed(17) {
        v.accept_hashes(&s.hashes(level, node).unwrap()).unwrap();
    }
    // With it, the tag is the proven one and the data does not match.
    let e = v.accept_db_data(&d);
    assert_eq!(e, Err(VerifyError::BadChunk { index: 17 }));
    assert!(e.unwrap_err().is_tampering());
    assert!(!v.is_verified(17));
    // The honest copy from another circuit is accepted.
    assert_eq!(v.accept_db_data(&s.db_data(17).unwrap()), Ok(Accepted::New));
}

#[test]
fn wrong_index_swapped_and_truncated_chunks() {
    let s = seed_file(40 * 486 + 10);
    let mut v = verifier(&s);
    for m in s.hashes_for_range(0, 41) {
        v.accept_hashes(&m).unwrap();
    }
    // Chunk 4's data under number 3 (with 3's tag): caught by the hash.
    assert_eq!(
        v.accept_chunk(3, s.chunk(4).unwrap()),
        Err(VerifyError::BadChunk { index: 3 })
    );
    // Swapped cells: DB_DATA 4 says it is chunk 3: its tag gives it away first.
    let mut swapped = s.db_data(4).unwrap();
    swapped.chunk = 4; // wire number 4 = index 3
    assert_eq!(
        v.accept_db_data(&swapped),
        Err(VerifyError::BadTag { index: 3 })
    );
    // Truncated last chunk (10 bytes expected).
    let last = s.chunk(40).unwrap();
    assert_eq!(last.len(), 10);
    assert_eq!(
        v.accept_chunk(40, &last[..9]),
        Err(VerifyError::BadChunk { index: 40 })
    );
    // A chunk beyond the end.
    assert_eq!(
        v.accept_chunk(41, b""),
        Err(VerifyError::ChunkOutOfRange { index: 41 })
    );
    // A forged tag timestamp.
    let mut d = s.db_data(5).unwrap();
    d.signature = ChunkSignature::new(PUBLISHED + 1, d.signature.sig_prefix());
    assert_eq!(v.accept_db_data(&d), Err(VerifyError::BadTag { index: 5 }));
    assert_eq!(v.verified_count(), 0);
    for i in 0..41 {
        assert_eq!(v.accept_db_data(&s.db_data(i).unwrap()), Ok(Accepted::New));
    }
    assert!(v.is_complete());
}

#[test]
fn forged_hash_lists_detected() {
    let s = seed_file(300 * 486);
    let mut v = verifier(&s);
    // Forged top: one hash changed.
    let mut top = s.hashes(3, 0).unwrap();
    top.hashes[1][0] ^= 0x80;
    let e = v.accept_hashes(&top).unwrap_err();
    assert_eq!(
        e,
        VerifyError::BadHashList {
            tree: 0,
            level: 3,
            node: 0
        }
    );
    assert!(e.is_tampering());
    // Wrong count (one hash dropped).
    let mut short = s.hashes(3, 0).unwrap();
    short.hashes.pop();
    assert!(v.accept_hashes(&short).unwrap_err().is_tampering());
    // A lower node before its parent: not tampering, fetch the parent.
    assert_eq!(
        v.accept_hashes(&s.hashes(1, 0).unwrap()),
        Err(VerifyError::NeedHashes {
            tree: 0,
            level: 2,
            node: 0
        })
    );
    v.accept_hashes(&s.hashes(3, 0).unwrap()).unwrap();
    v.accept_hashes(&s.hashes(2, 0).unwrap()).unwrap();
    // Forged block hash list under a proven parent.
    let mut blk = s.hashes(1, 2).unwrap();
    blk.hashes[14] = [0; 32];
    assert_eq!(
        v.accept_hashes(&blk),
        Err(VerifyError::BadHashList {
            tree: 0,
            level: 1,
            node: 2
        })
    );
    // A node that does not exist, another tree, level above the top.
    let mut odd = s.hashes(1, 2).unwrap();
    odd.node = 20;
    assert!(v.accept_hashes(&odd).unwrap_err().is_tampering());
    odd.node = 2;
    odd.tree = 1;
    assert!(v.accept_hashes(&odd).unwrap_err().is_tampering());
    let mut high = s.hashes(3, 0).unwrap();
    high.level = 4;
    assert!(v.accept_hashes(&high).unwrap_err().is_tampering());
    // Nothing forged was recorded: honest lists still go through.
    assert_eq!(v.accept_hashes(&s.hashes(1, 2).unwrap()), Ok(Accepted::New));
    assert_eq!(
        v.accept_hashes(&s.hashes(3, 0).unwrap()),
        Ok(Accepted::Duplicate)
    );
}

#[test]
fn manifest_checks() {
    let a = seed_file(5000);
    let name = a.hash_name();
    let lim = VerifyLimits::default();
    // Same content seeded by someone else: another name.
    let b = FileSeeder::new(&key(2), "video/webm", PUBLISHED, content(5000, 9)).unwrap();
    assert_eq!(b.manifest().root, a.manifest().root);
    assert_ne!(b.hash_name(), name);
    assert_eq!(
        FileVerifier::new(&name, b.manifest().clone(), lim).unwrap_err(),
        VerifyError::HashNameMismatch
    );
    // Another seeder's signature under A's key.
    let mut m = a.manifest().clone();
    m.signature = b.manifest().signature;
    assert_eq!(verify_manifest(&name, &m), Err(VerifyError::BadSignature));
    // Altered MIME type, size, publish time: signature.
    for f in [
        |m: &mut FileManifest| m.mime_type = "text/html".into(),
        |m: &mut FileManifest| m.size -= 1,
        |m: &mut FileManifest| m.published += 1,
    ] {
        let mut m = a.manifest().clone();
        f(&mut m);
        assert_eq!(verify_manifest(&name, &m), Err(VerifyError::BadSignature));
    }
    // Altered root or name: name.
    let mut m = a.manifest().clone();
    m.root[0] ^= 1;
    assert_eq!(
        verify_manifest(&name, &m),
        Err(VerifyError::HashNameMismatch)
    );
    assert_eq!(
        verify_manifest(&name[..19], a.manifest()),
        Err(VerifyError::HashNameMismatch)
    );
    assert_eq!(
        verify_manifest(b"abcd", a.manifest()),
        Err(VerifyError::HashNameMismatch)
    );
    // Size limit.
    let small = VerifyLimits {
        max_file_size: 4999,
        ..lim
    };
    assert_eq!(
        FileVerifier::new(&name, a.manifest().clone(), small).unwrap_err(),
        VerifyError::TooLarge
    );
    // Bad DB_CONNECTED forms.
    let mut c = a.db_connected();
    c.public_key.pop();
    assert!(matches!(
        Manifest::from_db_connected(&c),
        Err(VerifyError::BadManifest(_))
    ));
    let mut c = a.db_connected();
    c.trailer.push(0);
    assert!(Manifest::from_db_connected(&c).is_err());
    let mut c = a.db_connected();
    c.trailer[0] = 9;
    assert!(Manifest::from_db_connected(&c).is_err());
    // Chunk size out of range.
    let mut m = a.manifest().clone();
    m.chunk_size = 487;
    assert!(matches!(
        verify_manifest(&name, &m),
        Err(VerifyError::BadManifest(_))
    ));
}

#[test]
fn cross_file_substitution_detected() {
    let a = seed_file(40 * 486);
    let b = FileSeeder::new(&key(1), "video/webm", PUBLISHED, content(40 * 486, 10)).unwrap();
    let mut v = verifier(&a);
    // B's hashes and chunks, same numbers, same seeder key: refused.
    assert!(
        v.accept_hashes(&b.hashes(2, 0).unwrap())
            .unwrap_err()
            .is_tampering()
    );
    v.accept_hashes(&a.hashes(2, 0).unwrap()).unwrap();
    assert!(
        v.accept_hashes(&b.hashes(1, 0).unwrap())
            .unwrap_err()
            .is_tampering()
    );
    v.accept_hashes(&a.hashes(1, 0).unwrap()).unwrap();
    assert!(
        v.accept_db_data(&b.db_data(0).unwrap())
            .unwrap_err()
            .is_tampering()
    );
    assert_eq!(
        v.accept_chunk(0, b.chunk(0).unwrap()),
        Err(VerifyError::BadChunk { index: 0 })
    );
    // B's manifest under A's name.
    assert_eq!(
        FileVerifier::from_db_connected(&a.hash_name(), &b.db_connected(), VerifyLimits::default())
            .unwrap_err(),
        VerifyError::HashNameMismatch
    );
}

#[test]
fn pending_blocks_are_bounded() {
    let s = seed_file(100 * 486);
    let lim = VerifyLimits {
        max_pending_blocks: 2,
        ..VerifyLimits::default()
    };
    let mut v = FileVerifier::new(&s.hash_name(), s.manifest().clone(), lim).unwrap();
    v.accept_hashes(&s.hashes(2, 0).unwrap()).unwrap();
    v.accept_hashes(&s.hashes(1, 0).unwrap()).unwrap();
    v.accept_hashes(&s.hashes(1, 1).unwrap()).unwrap();
    assert_eq!(
        v.accept_hashes(&s.hashes(1, 2).unwrap()),
        Err(VerifyError::TooManyPending)
    );
    for i in 0..15 {
        v.accept_chunk(i, s.chunk(i).unwrap()).unwrap();
    }
    assert_eq!(v.pending_blocks(), 1);
    assert_eq!(v.accept_hashes(&s.hashes(1, 2).unwrap()), Ok(Accepted::New));
    // A finished block's hashes come again: checked, not stored.
    assert_eq!(
        v.accept_hashes(&s.hashes(1, 0).unwrap()),
        Ok(Accepted::Duplicate)
    );
    assert_eq!(v.pending_blocks(), 2);
}

#[test]
fn a_relay_checks_every_chunk_passing_by_in_bounded_memory() {
    // 5,000 chunks: 334 blocks, more than a relay keeps.
    let s = seed_file(5_000 * 486);
    let lim = VerifyLimits::default();
    let mut r = relay_verifier(&s);
    for i in 0..s.n_chunks() {
        assert_eq!(fetch(&mut r, &s, i), Ok(Accepted::New), "chunk {i}");
        // The same chunk again (for another requester): checked again, not a duplicate.
        assert_eq!(r.accept_db_data(&s.db_data(i).unwrap()), Ok(Accepted::New));
        let mut bad = s.db_data(i).unwrap();
        let at = i as usize % bad.data.len();
        bad.data[at] ^= 0x40;
        let e = r.accept_db_data(&bad).unwrap_err();
        assert!(e.is_tampering(), "{e:?}");
        assert!(r.pending_blocks() <= 256);
    }
    assert_eq!(r.verified_count(), 0, "a relay keeps no per-chunk state");
    // The lowest blocks were forgotten: their chunks need their proofs again (not an
    // accusation), and a forged chunk is still never accepted.
    let e = r.accept_db_data(&s.db_data(0).unwrap()).unwrap_err();
    assert!(matches!(e, VerifyError::NeedHashes { .. }), "{e:?}");
    assert!(!e.is_tampering());
    assert_eq!(fetch(&mut r, &s, 0), Ok(Accepted::New));
    // Another file's manifest under this name is refused; a live stream is not checked.
    let other = FileSeeder::new(&key(2), "video/webm", PUBLISHED, content(999, 1)).unwrap();
    let e = FileVerifier::for_relay(&s.hash_name(), &other.db_connected(), lim).unwrap_err();
    assert!(e.is_tampering());
    let live = live_seeder(64);
    assert!(
        FileVerifier::for_relay(&live.hash_name(), &live.db_connected(), lim)
            .unwrap()
            .is_none()
    );
}

#[test]
fn tree_shapes() {
    let t = TreeShape::new(1).unwrap();
    assert_eq!((t.depth(), t.level_len(1), t.children_len(1, 0)), (1, 1, 1));
    let t = TreeShape::new(15).unwrap();
    assert_eq!((t.depth(), t.children_len(1, 0)), (1, 15));
    let t = TreeShape::new(16).unwrap();
    assert_eq!((t.depth(), t.level_len(1), t.children_len(1, 1)), (2, 2, 1));
    let t = TreeShape::new(u64::from(u32::MAX)).unwrap();
    assert_eq!(t.depth(), 9);
    assert!(TreeShape::new(0).is_none());
    assert!(TreeShape::new(u64::from(u32::MAX) + 1).is_none());
    assert_eq!(wire_chunk_nb(0), Some(1));
    assert_eq!(index_from_wire(1), Some(0));
    assert_eq!(index_from_wire(0), None);
}

// ---- live streams ----

const T0: u32 = 0x6600_0000;

fn live_seeder(segment_chunks: u16) -> LiveSeeder {
    LiveSeeder::new(key(3), "video/mp4", T0 - 10, segment_chunks).unwrap()
}

fn live_verifier(s: &LiveSeeder, lim: VerifyLimits) -> LiveVerifier {
    let c = s.db_connected();
    let Manifest::Live(m) = Manifest::from_db_connected(&c).unwrap() else {
        panic!("live manifest expected");
    };
    LiveVerifier::new(&s.hash_name(), m, lim).unwrap()
}

fn segment_chunks(seg: u32, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| content(486 - i % 7, (seg as u8) ^ (i as u8)))
        .collect()
}

fn sign(s: &mut LiveSeeder, n: usize, ts: u32) -> (SignedSegment, Vec<Vec<u8>>) {
    let chunks = segment_chunks(s.next_segment(), n);
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    (s.sign_segment(&refs, ts).unwrap(), chunks)
}

fn deliver(v: &mut LiveVerifier, seg: &SignedSegment, now: u32) {
    assert_eq!(v.accept_segment(&seg.header, now), Ok(Accepted::New));
    for h in &seg.hashes {
        assert_eq!(v.accept_hashes(h), Ok(Accepted::New));
    }
    for d in &seg.data {
        assert_eq!(v.accept_db_data(d), Ok(Accepted::New));
    }
}

#[test]
fn live_segments_verified() {
    let mut s = live_seeder(DEFAULT_SEGMENT_CHUNKS);
    let mut v = live_verifier(&s, VerifyLimits::default());
    for k in 0..5u32 {
        let n = if k == 4 { 10 } else { 64 };
        let (seg, _) = sign(&mut s, n, T0 + k);
        assert_eq!(seg.hashes.len(), if n == 64 { 1 + 5 } else { 1 });
        deliver(&mut v, &seg, T0 + k);
        for i in 0..n as u64 {
            assert!(v.is_verified(u64::from(k) * 64 + i));
        }
    }
    assert!(!v.is_verified(4 * 64 + 10));
}

#[test]
fn live_tampering_and_replay_rejected() {
    let mut s = live_seeder(16);
    let lim = VerifyLimits {
        live_max_segments: 3,
        ..VerifyLimits::default()
    };
    let mut v = live_verifier(&s, lim);
    let (s0, _) = sign(&mut s, 16, T0);
    // Chunks before their header: ask for the header.
    assert_eq!(
        v.accept_db_data(&s0.data[0]),
        Err(VerifyError::UnknownSegment { segment: 0 })
    );
    // Forged header: root changed (signature fails).
    let mut forged = s0.header.clone();
    forged.root[0] ^= 1;
    assert_eq!(
        v.accept_segment(&forged, T0),
        Err(VerifyError::BadSignature)
    );
    // Stale and future timestamps.
    assert_eq!(
        v.accept_segment(&s0.header, T0 + 121),
        Err(VerifyError::StaleTimestamp { timestamp: T0 })
    );
    assert_eq!(
        v.accept_segment(&s0.header, T0 - 31),
        Err(VerifyError::FutureTimestamp { timestamp: T0 })
    );
    assert_eq!(v.accept_segment(&s0.header, T0), Ok(Accepted::New));
    assert_eq!(v.accept_segment(&s0.header, T0), Ok(Accepted::Duplicate));
    // Tampered chunk and hash list.
    let mut h = s0.hashes[0].clone();
    h.hashes[0][5] ^= 1;
    assert!(v.accept_hashes(&h).unwrap_err().is_tampering());
    for h in &s0.hashes {
        v.accept_hashes(h).unwrap();
    }
    let mut d = s0.data[3].clone();
    d.data[0] ^= 1;
    assert_eq!(
        v.accept_db_data(&d),
        Err(VerifyError::BadChunk { index: 3 })
    );
    let mut d = s0.data[3].clone();
    d.signature = ChunkSignature::new(T0 + 1, d.signature.sig_prefix());
    assert_eq!(v.accept_db_data(&d), Err(VerifyError::BadTag { index: 3 }));
    // Too long for a live chunk.
    assert_eq!(
        v.accept_chunk(4, &[0u8; 487]),
        Err(VerifyError::BadChunk { index: 4 })
    );
    for d in &s0.data {
        v.accept_db_data(d).unwrap();
    }
    // A second, different, validly signed segment 0: equivocation.
    let mut other = live_seeder(16);
    let (o0, _) = sign(&mut other, 5, T0);
    assert_eq!(
        v.accept_segment(&o0.header, T0),
        Err(VerifyError::ConflictingSegment { segment: 0 })
    );
    // Another stream's segment 1 (other key): signature.
    let mut foreign = LiveSeeder::new(key(4), "video/mp4", T0 - 10, 16).unwrap();
    sign(&mut foreign, 16, T0);
    let (f1, _) = sign(&mut foreign, 16, T0 + 1);
    assert_eq!(
        v.accept_segment(&f1.header, T0 + 1),
        Err(VerifyError::BadSignature)
    );
    // Timestamps must follow segment order.
    let (s1, _) = sign(&mut s, 16, T0 - 1);
    assert_eq!(
        v.accept_segment(&s1.header, T0),
        Err(VerifyError::OutOfOrder { segment: 1 })
    );
    // Move the window on: 2, 3, 4 evict 0 and 1... (1 was never accepted).
    let (s2, _) = sign(&mut s, 16, T0 + 2);
    deliver(&mut v, &s2, T0 + 2);
    let (s3, _) = sign(&mut s, 16, T0 + 3);
    deliver(&mut v, &s3, T0 + 3);
    let (s4, _) = sign(&mut s, 16, T0 + 4);
    deliver(&mut v, &s4, T0 + 4);
    assert_eq!(v.segments().collect::<Vec<_>>(), vec![2, 3, 4]);
    // Replays of the forgotten segment 0, and of a late segment 1, are stale.
    assert_eq!(
        v.accept_segment(&s0.header, T0 + 4),
        Err(VerifyError::StaleSegment { segment: 0 })
    );
    assert_eq!(
        v.accept_segment(&s1.header, T0 + 4),
        Err(VerifyError::StaleSegment { segment: 1 })
    );
}

#[test]
fn live_ring_wraps() {
    // 2 chunks a segment → ring of 128 numbers; run 100 segments (200 chunks).
    let mut s = live_seeder(2);
    let mut v = live_verifier(&s, VerifyLimits::default());
    assert_eq!(s.manifest().ring().size(), 128);
    for k in 0..100u32 {
        let (seg, _) = sign(&mut s, 2, T0 + k);
        assert_eq!(seg.data[0].chunk, (2 * k) % 128 + 1);
        deliver(&mut v, &seg, T0 + k);
    }
    assert!(v.is_verified(199));
    assert!(!v.is_verified(0), "forgotten with its segment");
    // Held window of 64 segments = the whole ring: the oldest held segment's chunks
    // still resolve (to the lap behind, not ahead).
    assert_eq!(v.segments().next(), Some(36));
    assert_eq!(v.absolute_chunk(73), Some(72));
    assert_eq!(v.absolute_chunk(72), Some(199));
    assert_eq!(v.absolute_chunk(0), None);
    assert_eq!(v.absolute_chunk(129), None);
}

#[test]
fn chunk_ring() {
    let r = ChunkRing::new(100);
    assert_eq!(r.to_wire(0), 1);
    assert_eq!(r.to_wire(99), 100);
    assert_eq!(r.to_wire(100), 1);
    assert_eq!(r.to_absolute(1, 0), Some(0));
    assert_eq!(r.to_absolute(100, 0), Some(99));
    assert_eq!(r.to_absolute(1, 95), Some(100));
    assert_eq!(r.to_absolute(98, 105), Some(97));
    assert_eq!(r.to_absolute(0, 5), None);
    assert_eq!(r.to_absolute(101, 5), None);
    assert_eq!(r.to_absolute(50, u64::MAX), Some(u64::MAX - 15 - 100 + 49));
    assert_eq!(r.to_absolute(1, u64::MAX), Some(u64::MAX - 15));
}

#[test]
fn seeder_rejects_bad_input() {
    let k = key(1);
    assert_eq!(
        FileSeeder::with_chunk_size(&k, "a", 0, 0, vec![]).unwrap_err(),
        SeedError::BadChunkSize
    );
    assert_eq!(
        FileSeeder::new(&k, &"x".repeat(256), 0, vec![]).unwrap_err(),
        SeedError::MimeTooLong
    );
    assert_eq!(
        LiveSeeder::new(k.clone(), "a", 0, 226).unwrap_err(),
        SeedError::BadChunkSize
    );
    let mut l = LiveSeeder::new(k, "a", 0, 4).unwrap();
    assert_eq!(l.sign_segment(&[], 0).unwrap_err(), SeedError::BadChunk);
    assert_eq!(
        l.sign_segment(&[&[0u8; 487]], 0).unwrap_err(),
        SeedError::BadChunk
    );
    assert_eq!(
        l.sign_segment(&[b"a", b"b", b"c", b"d", b"e"], 0)
            .unwrap_err(),
        SeedError::BadChunk
    );
    // A small chunk size works end to end.
    let s = FileSeeder::with_chunk_size(&key(1), "a", 1, 7, content(100, 1)).unwrap();
    let mut v = verifier(&s);
    for i in 0..s.n_chunks() {
        assert_eq!(fetch(&mut v, &s, i), Ok(Accepted::New));
    }
}

// ---- snapshots ----

fn hex_of(m: &impl RelayBody) -> String {
    let mut v = Vec::new();
    m.encode_body(&mut v).unwrap();
    hex::encode(v)
}

#[test]
fn snapshots() {
    let s = FileSeeder::new(
        &key(1),
        "text/plain",
        PUBLISHED,
        b"hello, onionpeer".repeat(40),
    )
    .unwrap();
    insta::assert_snapshot!("file_hash_name", hex::encode(s.hash_name()));
    insta::assert_snapshot!("file_db_connected", hex_of(&s.db_connected()));
    insta::assert_snapshot!("file_db_hashes_top", hex_of(&s.hashes(1, 0).unwrap()));
    insta::assert_snapshot!("file_db_data_0", hex_of(&s.db_data(0).unwrap()));
    let mut l = LiveSeeder::new(key(3), "video/mp4", T0, 4).unwrap();
    insta::assert_snapshot!("live_hash_name", hex::encode(l.hash_name()));
    insta::assert_snapshot!("live_db_connected", hex_of(&l.db_connected()));
    let seg = l.sign_segment(&[b"one", b"two", b"three"], T0 + 1).unwrap();
    insta::assert_snapshot!("live_db_segment", hex_of(&seg.header));
    insta::assert_snapshot!("live_db_hashes", hex_of(&seg.hashes[0]));
    insta::assert_snapshot!("live_db_data_2", hex_of(&seg.data[2]));
    // Known answers for the leaf hash domain: SHA-256(0x00 || "").
    assert_eq!(
        hex::encode(leaf_hash(b"")),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    );
}

// ---- properties ----

#[test]
fn fuzz_manifest_decode() {
    bolero::check!().for_each(|input: &[u8]| {
        let Ok(c) = DbConnected::decode_body(input) else {
            return;
        };
        if let Ok(m) = Manifest::from_db_connected(&c) {
            let again = m.to_db_connected();
            assert_eq!(Manifest::from_db_connected(&again).unwrap(), m);
            let _ = m.verify(&[0; 20]);
        }
    });
}

#[test]
fn fuzz_hashes_and_segment_decode() {
    bolero::check!().for_each(|input: &[u8]| {
        if let Ok(h) = DbHashes::decode_body(input) {
            assert_eq!(hex_of(&h), hex::encode(input));
        }
        if let Ok(h) = DbSegment::decode_body(input) {
            assert_eq!(hex_of(&h), hex::encode(input));
        }
    });
}

/// Arbitrary sequences of hash lists and chunks (forged or genuine, in any order) never
/// panic, and a chunk is only ever accepted (alone, or released with its block) with the
/// seeder's bytes.
#[test]
fn fuzz_file_verifier() {
    let s = seed_file(300 * 486 + 17);
    let n = s.n_chunks();
    let relay = FileVerifier::for_relay(&s.hash_name(), &s.db_connected(), Default::default())
        .unwrap()
        .unwrap();
    bolero::check!().for_each(|input: &[u8]| {
        let mut v = verifier(&s);
        // A relay's check sees the same inputs: it never accepts a wrong chunk either.
        let mut r = relay.clone();
        let mut it = input.chunks(3);
        while let Some(op) = it.next() {
            let [kind, a, b] = [0, 1, 2].map(|i| op.get(i).copied().unwrap_or(0));
            let idx = (u64::from(a) << 8 | u64::from(b)) % (n + 2);
            match kind % 5 {
                0 => {
                    // Genuine hashes of a node on idx's path.
                    let level = 1 + b % 3;
                    let node = s.shape().ancestor(idx.min(n - 1), level) as u32;
                    if let Some(h) = s.hashes(level, node) {
                        let _ = v.accept_hashes(&h);
                        let _ = r.accept_hashes(&h);
                    }
                }
                1 => {
                    // Forged hashes from the rest of the input.
                    let body: Vec<u8> = it.by_ref().take(30).flatten().copied().collect();
                    if let Ok(h) = DbHashes::decode_body(&body) {
                        let _ = v.accept_hashes(&h);
                        let _ = r.accept_hashes(&h);
                    }
                }
                2 => {
                    if let Some(d) = s.db_data(idx) {
                        let _ = v.accept_db_data(&d);
                        let _ = r.accept_db_data(&d);
                    }
                }
                3 => {
                    let data: Vec<u8> = it.by_ref().take(4).flatten().copied().collect();
                    if v.accept_chunk(idx, &data) == Ok(Accepted::New) {
                        assert_eq!(Some(data.as_slice()), s.chunk(idx));
                    }
                    if r.accept_chunk(idx, &data) == Ok(Accepted::New) {
                        assert_eq!(Some(data.as_slice()), s.chunk(idx));
                    }
                }
                _ => {
                    // A genuine chunk with one bit flipped.
                    if let Some(mut d) = s.db_data(idx)
                        && let Some(x) = d.data.get_mut(usize::from(a) % 486)
                    {
                        *x ^= 1 << (b % 8);
                        assert_ne!(v.accept_db_data(&d), Ok(Accepted::New));
                        assert!(r.accept_db_data(&d).is_err());
                    }
                }
            }
            // What blocks checked whole release is the seeder's, leaf hashes included.
            for x in [&mut v, &mut r] {
                while let Some(rel) = x.take_released() {
                    match rel {
                        Released::Chunk(i, d) => assert_eq!(Some(&d[..]), s.chunk(i)),
                        Released::Hashes(h) => assert_eq!(Some(h.clone()), s.hashes(1, h.node)),
                    }
                }
            }
            assert!(r.held_blocks() <= 16);
            for i in 0..n {
                if v.is_verified(i) {
                    assert!(v.verified_count() > 0);
                }
            }
        }
        assert!(v.verified_count() <= n);
    });
}

#[test]
fn fuzz_live_verifier() {
    let mut s = live_seeder(16);
    let segs: Vec<SignedSegment> = (0..6).map(|k| sign(&mut s, 16, T0 + k).0).collect();
    bolero::check!().for_each(|input: &[u8]| {
        let mut v = live_verifier(
            &s,
            VerifyLimits {
                live_max_segments: 3,
                ..VerifyLimits::default()
            },
        );
        let mut it = input.chunks(3);
        while let Some(op) = it.next() {
            let [kind, a, b] = [0, 1, 2].map(|i| op.get(i).copied().unwrap_or(0));
            let seg = &segs[usize::from(a) % segs.len()];
            let now = T0 + u32::from(b) % 200;
            match kind % 5 {
                0 => {
                    let _ = v.accept_segment(&seg.header, now);
                }
                1 => {
                    let _ = v.accept_hashes(&seg.hashes[usize::from(b) % seg.hashes.len()]);
                }
                2 => {
                    let _ = v.accept_db_data(&seg.data[usize::from(b) % 16]);
                }
                3 => {
                    let body: Vec<u8> = it.by_ref().take(36).flatten().copied().collect();
                    if let Ok(h) = DbSegment::decode_body(&body) {
                        let _ = v.accept_segment(&h, now);
                    }
                    if let Ok(h) = DbHashes::decode_body(&body) {
                        let _ = v.accept_hashes(&h);
                    }
                }
                _ => {
                    let data: Vec<u8> = it.by_ref().take(4).flatten().copied().collect();
                    let abs = u64::from(a) << 8 | u64::from(b);
                    if v.accept_chunk(abs, &data) == Ok(Accepted::New) {
                        let k = (abs / 16) as usize;
                        let want = &segs[k].data[(abs % 16) as usize].data;
                        assert_eq!(data.as_slice(), want.as_slice());
                    }
                }
            }
        }
    });
}
