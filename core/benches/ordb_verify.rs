//! ORDB data-validation costs: the seeder hashing a file into its tree (MB/s), the
//! downloader verifying chunks (chunks/s, hash lists included; each chunk against its
//! leaf hash, or whole blocks against their node hash as ranges covering whole blocks are
//! sent, PROTOCOL.md 6.3), and a live segment's
//! signature and its check. After criterion, a short manual timing prints the figures
//! next to raw SHA-256 over the same bytes measured in the same run.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use onionpeer_core::crypto::identity::Ed25519Keypair;
use onionpeer_core::ordb::{FileSeeder, FileVerifier, LiveSeeder, LiveVerifier, VerifyLimits};
use sha2::{Digest, Sha256};

const FILE_LEN: usize = 1 << 20;

fn file() -> Vec<u8> {
    (0..FILE_LEN).map(|i| (i * 31 % 251) as u8).collect()
}

fn seed() -> FileSeeder {
    FileSeeder::new(
        &Ed25519Keypair::from_secret(&[1; 32]),
        "video/webm",
        1,
        file(),
    )
    .expect("1 MB seeds")
}

/// Verify the whole file: hash lists first (as an ORDB sends them), then every chunk
/// (what blocks checked whole release is taken as a downloader does).
fn verify_all(s: &FileSeeder, hashes: &[onionpeer_core::cells::relay::DbHashes]) -> u64 {
    let mut v = FileVerifier::new(
        &s.hash_name(),
        s.manifest().clone(),
        VerifyLimits::default(),
    )
    .expect("manifest");
    for h in hashes {
        v.accept_hashes(h).expect("hashes");
    }
    for i in 0..s.n_chunks() {
        let d = s.db_data(i).expect("chunk");
        v.accept_db_data(black_box(&d)).expect("verified");
        while let Some(r) = v.take_released() {
            black_box(r);
        }
    }
    v.verified_count()
}

/// The hash lists a range covering the whole file carries: no leaf lists.
fn block_hashes(s: &FileSeeder) -> Vec<onionpeer_core::cells::relay::DbHashes> {
    let mut h = s.hashes_for_range(0, s.n_chunks());
    h.retain(|h| h.level > 1);
    h
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ordb");
    let data = file();
    g.throughput(Throughput::Bytes(FILE_LEN as u64));
    g.bench_function("seeder_hash_1MB", |b| {
        b.iter(|| {
            FileSeeder::new(&Ed25519Keypair::from_secret(&[1; 32]), "v", 1, data.clone())
                .expect("seeds")
        })
    });
    let s = seed();
    let hashes = s.hashes_for_range(0, s.n_chunks());
    g.throughput(Throughput::Elements(s.n_chunks()));
    g.bench_function("verifier_1MB_chunks", |b| {
        b.iter(|| verify_all(&s, &hashes))
    });
    let whole = block_hashes(&s);
    g.bench_function("verifier_1MB_whole_blocks", |b| {
        b.iter(|| verify_all(&s, &whole))
    });
    g.throughput(Throughput::Elements(1));
    let mut live =
        LiveSeeder::new(Ed25519Keypair::from_secret(&[2; 32]), "v", 0, 64).expect("live");
    let chunks = vec![vec![7u8; 486]; 64];
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    g.bench_function("live_sign_segment_64", |b| {
        b.iter(|| live.sign_segment(&refs, 10).expect("segment"))
    });
    g.finish();
}

fn summary() {
    let data = file();
    let reps = 20;
    let t = Instant::now();
    for _ in 0..reps {
        black_box(Sha256::digest(black_box(&data)));
    }
    let raw = t.elapsed().as_secs_f64() / reps as f64;
    let t = Instant::now();
    for _ in 0..reps {
        black_box(seed());
    }
    let seed_t = t.elapsed().as_secs_f64() / reps as f64;
    let s = seed();
    let hashes = s.hashes_for_range(0, s.n_chunks());
    let t = Instant::now();
    let mut n = 0;
    for _ in 0..reps {
        n += verify_all(&s, &hashes);
    }
    let ver_t = t.elapsed().as_secs_f64();
    let whole = block_hashes(&s);
    let t = Instant::now();
    let mut nb = 0;
    for _ in 0..reps {
        nb += verify_all(&s, &whole);
    }
    let blk_t = t.elapsed().as_secs_f64();
    let mut live =
        LiveSeeder::new(Ed25519Keypair::from_secret(&[2; 32]), "v", 0, 64).expect("live");
    let mut lv = LiveVerifier::new(
        &live.hash_name(),
        live.manifest().clone(),
        VerifyLimits {
            live_max_segments: 1 << 20,
            ..VerifyLimits::default()
        },
    )
    .expect("live manifest");
    let chunks = vec![vec![7u8; 486]; 64];
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let segs = 200;
    let t = Instant::now();
    let signed: Vec<_> = (0..segs)
        .map(|k| live.sign_segment(&refs, 10 + k).expect("seg"))
        .collect();
    let sign_t = t.elapsed().as_secs_f64() / f64::from(segs);
    let t = Instant::now();
    for seg in &signed {
        lv.accept_segment(&seg.header, seg.header.timestamp)
            .expect("header");
        for h in &seg.hashes {
            lv.accept_hashes(h).expect("hashes");
        }
        for d in &seg.data {
            lv.accept_db_data(d).expect("chunk");
        }
    }
    let live_t = t.elapsed().as_secs_f64() / f64::from(segs);
    let mb = FILE_LEN as f64 / 1e6;
    println!();
    println!(
        "ordb summary (1 MB file = {} chunks, one core)",
        s.n_chunks()
    );
    println!("raw SHA-256 over 1 MB          {:>8.1} MB/s", mb / raw);
    println!(
        "seeder: hash + tree + sign     {:>8.1} MB/s   seeder/raw = {:.2}",
        mb / seed_t,
        seed_t / raw
    );
    println!(
        "verifier: hashes + chunks      {:>8.2} M chunks/s ({:.1} MB/s of content)",
        n as f64 / ver_t / 1e6,
        mb * reps as f64 / ver_t
    );
    println!(
        "verifier: whole blocks         {:>8.2} M chunks/s ({:.1} MB/s of content)",
        nb as f64 / blk_t / 1e6,
        mb * reps as f64 / blk_t
    );
    println!(
        "live: sign one 64-chunk segment {:>7.1} µs; verify header + 6 hash lists + 64 chunks {:>7.1} µs ({:.1} MB/s)",
        sign_t * 1e6,
        live_t * 1e6,
        64.0 * 486.0 / live_t / 1e6
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    summary();
}
