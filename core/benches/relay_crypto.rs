//! Relay-crypto costs per cell, and how close the relay paths come to the bare
//! primitives they are built on.
//!
//! Paths: (a) the last hop decrypting and recognizing a cell; (b) a middle relay
//! forwarding a cell not for it (AES only); (c) a client encrypting for hop 3 of 3.
//! Raw: AES-128-CTR over 509 bytes; AES plus SHA-1 update and digest peek.
//! After criterion, a short manual timing prints cells/s and path/raw ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes::Aes128;
use cipher::{KeyIvInit, StreamCipher};
use criterion::{Criterion, Throughput};
use ctr::Ctr128BE;
use onionpeer_core::crypto::kdf::kdf_tor;
use onionpeer_core::crypto::relay::{
    CircuitKeys, ClientCircuitCrypto, HopNum, OutboundCell, RELAY_BODY_LEN, RelayCellBody,
    RelayHopCrypto,
};
use sha1::{Digest, Sha1};

/// Cells prepared (untimed) per batch for the recognizing-hop benchmark.
const BATCH: usize = 1024;

fn keys(i: u8) -> CircuitKeys {
    let mut m = [0u8; CircuitKeys::LEN];
    kdf_tor(&[i; 20], &mut m).expect("92 bytes of KDF-TOR");
    CircuitKeys::from_kdf_tor_material(&m)
}

fn data_cell() -> RelayCellBody {
    let mut b = [0x5au8; RELAY_BODY_LEN];
    b[0] = 2;
    b[9..11].copy_from_slice(&498u16.to_be_bytes());
    b
}

/// A client and the one relay that recognizes its cells, kept in step.
struct RecognizingHop {
    client: ClientCircuitCrypto,
    relay: RelayHopCrypto,
    cells: Vec<RelayCellBody>,
}

impl RecognizingHop {
    fn new() -> Self {
        let k = keys(1);
        let mut client = ClientCircuitCrypto::new();
        client.add_hop(&k).expect("one hop");
        RecognizingHop {
            client,
            relay: RelayHopCrypto::new(&k),
            cells: vec![data_cell(); BATCH],
        }
    }

    /// Encrypts a batch (untimed), then times the relay decrypting it.
    fn timed_batch(&mut self, n: usize) -> Duration {
        for c in self.cells[..n].iter_mut() {
            *c = data_cell();
            self.client.encrypt_outbound(c, HopNum(0)).expect("hop 0");
        }
        let start = Instant::now();
        for c in self.cells[..n].iter_mut() {
            let r = self.relay.decrypt_outbound(c);
            debug_assert!(matches!(r, OutboundCell::ForUs(_)));
            black_box(r);
        }
        start.elapsed()
    }

    fn timed(&mut self, iters: u64) -> Duration {
        let mut left = iters as usize;
        let mut total = Duration::ZERO;
        while left > 0 {
            let n = left.min(BATCH);
            total += self.timed_batch(n);
            left -= n;
        }
        total
    }
}

fn middle_relay() -> RelayHopCrypto {
    RelayHopCrypto::new(&keys(2))
}

fn three_hop_client() -> ClientCircuitCrypto {
    let mut c = ClientCircuitCrypto::new();
    for i in 0..3 {
        c.add_hop(&keys(10 + i)).expect("three hops");
    }
    c
}

fn raw_aes() -> Ctr128BE<Aes128> {
    Ctr128BE::<Aes128>::new(&[7u8; 16].into(), &[0u8; 16].into())
}

fn raw_aes_sha(aes: &mut Ctr128BE<Aes128>, sha: &mut Sha1, buf: &mut RelayCellBody) -> [u8; 20] {
    aes.apply_keystream(buf);
    Digest::update(sha, &buf[..]);
    sha.clone().finalize().into()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("relay_crypto");
    g.throughput(Throughput::Elements(1));

    let mut hop = RecognizingHop::new();
    g.bench_function("a_last_hop_recognize", |b| b.iter_custom(|n| hop.timed(n)));

    let mut mid = middle_relay();
    let mut cell = data_cell();
    g.bench_function("b_middle_forward", |b| {
        b.iter(|| black_box(mid.decrypt_outbound(black_box(&mut cell))))
    });

    let mut client = three_hop_client();
    let mut cell = data_cell();
    g.bench_function("c_client_encrypt_3_hops", |b| {
        b.iter(|| black_box(client.encrypt_outbound(black_box(&mut cell), HopNum(2))))
    });

    let mut aes = raw_aes();
    let mut buf = data_cell();
    g.bench_function("raw_aes_ctr_509", |b| {
        b.iter(|| aes.apply_keystream(black_box(&mut buf)))
    });

    let mut aes = raw_aes();
    let mut sha = Sha1::new();
    let mut buf = data_cell();
    g.bench_function("raw_aes_sha1_peek_509", |b| {
        b.iter(|| black_box(raw_aes_sha(&mut aes, &mut sha, black_box(&mut buf))))
    });
    g.finish();
}

/// Seconds per cell over `n` cells of `f`.
fn per_cell(n: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_secs_f64() / n as f64
}

fn summary() {
    const N: u64 = 200_000;
    let a = {
        let mut hop = RecognizingHop::new();
        hop.timed(N).as_secs_f64() / N as f64
    };
    let b = {
        let mut mid = middle_relay();
        let mut cell = data_cell();
        per_cell(N, || {
            black_box(mid.decrypt_outbound(black_box(&mut cell)));
        })
    };
    let c = {
        let mut client = three_hop_client();
        let mut cell = data_cell();
        per_cell(N, || {
            black_box(
                client
                    .encrypt_outbound(black_box(&mut cell), HopNum(2))
                    .ok(),
            );
        })
    };
    let aes_t = {
        let mut aes = raw_aes();
        let mut buf = data_cell();
        per_cell(N, || aes.apply_keystream(black_box(&mut buf)))
    };
    let aes_sha = {
        let mut aes = raw_aes();
        let mut sha = Sha1::new();
        let mut buf = data_cell();
        per_cell(N, || {
            black_box(raw_aes_sha(&mut aes, &mut sha, black_box(&mut buf)));
        })
    };
    let row = |name: &str, t: f64, raw: f64, raw_name: &str| {
        println!(
            "{name:<28} {:>7.2} M cells/s {:>8.1} MB/s payload  path/raw = {:.2} (raw: {raw_name})",
            1e-6 / t,
            498.0 / t / 1e6,
            t / raw
        );
    };
    println!();
    println!("relay_crypto summary ({N} cells each, one core)");
    row("raw AES-128-CTR", aes_t, aes_t, "itself");
    row("raw AES + SHA-1 + peek", aes_sha, aes_sha, "itself");
    row("(a) last hop recognize", a, aes_sha, "AES + SHA-1 + peek");
    row("(b) middle relay forward", b, aes_t, "AES");
    row(
        "(c) client encrypt 3 hops",
        c,
        aes_sha + 2.0 * aes_t,
        "AES+SHA-1 + 2 AES",
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    summary();
}
