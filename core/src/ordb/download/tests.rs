use super::*;
use crate::cells::relay::{ChunkSignature, DbConnected, DbData, DbHashes, DbSegment};
use crate::crypto::identity::Ed25519Keypair;
use crate::ordb::{FileSeeder, LiveSeeder, SignedSegment};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

const PUBLISHED: u32 = 0x6500_0000;

fn content(len: usize, seed: u8) -> Vec<u8> {
    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

fn seeder(len: usize, chunk: u16) -> FileSeeder {
    let key = Ed25519Keypair::from_secret(&[1; 32]);
    FileSeeder::with_chunk_size(&key, "video/webm", PUBLISHED, chunk, content(len, 7)).unwrap()
}

fn small_cfg() -> DownloadConfig {
    DownloadConfig {
        block_chunks: 30,
        window_blocks: 5,
        ..DownloadConfig::default()
    }
}

#[derive(Debug, Clone)]
enum Msg {
    Connected(DbConnected),
    Hashes(DbHashes),
    Segment(DbSegment),
    Data(DbData),
}

/// One GET as the fake ORDB sees it: what it will answer, in order.
#[derive(Debug)]
struct Stream {
    circ: DlCircuit,
    answers: VecDeque<Msg>,
}

/// A downloader wired to fake ORDBs that answer from a seeder.
struct Harness {
    d: Downloader,
    seeder: FileSeeder,
    now: Instant,
    streams: BTreeMap<GetId, Stream>,
    sent: Vec<(GetId, DlCircuit, u64, u16)>,
    replaced: Vec<(DlCircuit, DropReason)>,
    /// GETs we closed with DB_END to their ORDB.
    stopped: Vec<GetId>,
    advertised: Vec<Progress>,
    info: Option<(u64, String)>,
    out: Vec<u8>,
    /// File offsets of every read, in order (must increase, never overlap).
    reads: Vec<(u64, usize)>,
    done: Option<Result<(), DlError>>,
    next_circ: u64,
}

impl Harness {
    fn new(seeder: FileSeeder, held: &[(u64, u64)], cfg: DownloadConfig) -> Harness {
        let d = Downloader::new_file(&seeder.hash_name(), held, cfg);
        let size = seeder.manifest().size as usize;
        Harness {
            d,
            seeder,
            now: Instant::from_millis(1000),
            streams: BTreeMap::new(),
            sent: Vec::new(),
            replaced: Vec::new(),
            stopped: Vec::new(),
            advertised: Vec::new(),
            info: None,
            out: vec![0; size],
            reads: Vec::new(),
            done: None,
            next_circ: 1,
        }
    }

    fn circuit_up(&mut self) -> DlCircuit {
        let c = DlCircuit(self.next_circ);
        self.next_circ += 1;
        self.d.handle_circuit_up(self.now, c);
        self.pump();
        c
    }

    fn answers(&self, chunk_nb: u64, nb: u16) -> VecDeque<Msg> {
        // Like a real ORDB: the manifest first on every stream (PROTOCOL.md 6.4).
        let mut q = VecDeque::new();
        let first = chunk_nb - 1;
        if first >= self.seeder.n_chunks() {
            return q;
        }
        q.push_back(Msg::Connected(self.seeder.db_connected()));
        if nb == 0 {
            return q;
        }
        for h in self.seeder.hashes_for_range(first, u64::from(nb)) {
            q.push_back(Msg::Hashes(h));
        }
        for i in first..first + u64::from(nb) {
            if let Some(d) = self.seeder.db_data(i) {
                q.push_back(Msg::Data(d));
            }
        }
        q
    }

    fn pump(&mut self) {
        while let Some(a) = self.d.poll_action() {
            assert!(self.done.is_none(), "action after Done: {a:?}");
            match a {
                DlAction::SendGet {
                    get,
                    circuit,
                    chunk_nb,
                    nb_chunks,
                } => {
                    let answers = self.answers(chunk_nb, nb_chunks);
                    self.sent.push((get, circuit, chunk_nb, nb_chunks));
                    self.streams.insert(
                        get,
                        Stream {
                            circ: circuit,
                            answers,
                        },
                    );
                }
                DlAction::CloseGet { get, send_end, .. } => {
                    if send_end {
                        self.stopped.push(get);
                    }
                    self.streams.remove(&get);
                }
                DlAction::ReplaceCircuit { circuit, reason } => {
                    self.replaced.push((circuit, reason));
                    self.streams.retain(|_, s| s.circ != circuit);
                }
                DlAction::Info { size, mime } => self.info = Some((size, mime)),
                DlAction::Readable => self.read_all(),
                DlAction::Advertise(p) => self.advertised.push(p),
                DlAction::Done(r) => self.done = Some(r),
            }
            self.d.check_invariants().unwrap();
        }
        self.d.check_invariants().unwrap();
    }

    fn read_all(&mut self) {
        let mut buf = [0u8; 100];
        while let Some((off, n)) = self.d.read(self.now, &mut buf) {
            if let Some(&(o, m)) = self.reads.last() {
                assert!(off >= o + m as u64, "read went back: {off} after {o}+{m}");
            }
            self.reads.push((off, n));
            self.out[off as usize..off as usize + n].copy_from_slice(&buf[..n]);
        }
    }

    /// Deliver the next answer of `get`.
    fn step(&mut self, get: GetId) -> bool {
        let Some(msg) = self
            .streams
            .get_mut(&get)
            .and_then(|s| s.answers.pop_front())
        else {
            return false;
        };
        self.feed(get, msg);
        true
    }

    fn feed(&mut self, get: GetId, msg: Msg) {
        let now = self.now;
        match msg {
            Msg::Connected(c) => self.d.handle_connected(now, get, &c),
            Msg::Hashes(h) => self.d.handle_hashes(now, get, &h),
            Msg::Segment(s) => self.d.handle_segment(now, get, &s),
            Msg::Data(m) => self.d.handle_data(now, get, m),
        }
        self.pump();
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now + Duration::from_millis(ms);
        self.d.handle_timeout(self.now);
        self.pump();
    }

    /// Serve every stream one answer per round (circuits in `slow` only every
    /// `slow_every` rounds), 1 ms per round, until done or `max_rounds`.
    fn run(&mut self, slow: &[DlCircuit], slow_every: u64, max_rounds: u64) {
        for round in 0..max_rounds {
            if self.done.is_some() {
                return;
            }
            let gets: Vec<GetId> = self.streams.keys().copied().collect();
            for g in gets {
                let Some(s) = self.streams.get(&g) else {
                    continue;
                };
                if slow.contains(&s.circ) && round % slow_every != 0 {
                    continue;
                }
                self.step(g);
            }
            self.advance(1);
        }
    }

    fn assert_complete(&self) {
        assert_eq!(self.done, Some(Ok(())));
        assert_eq!(self.out, self.seeder_data());
        // At most one DB_INFO per sixteenth of the file, rising, through every quarter.
        let a = &self.advertised;
        assert!(a.len() <= 16 && a.windows(2).all(|w| w[0] <= w[1]), "{a:?}");
        for p in [
            Progress::Quarter,
            Progress::Half,
            Progress::ThreeQuarters,
            Progress::Full,
        ] {
            assert!(a.contains(&p), "{a:?}");
        }
        assert_eq!(a.last(), Some(&Progress::Full));
    }

    fn seeder_data(&self) -> Vec<u8> {
        (0..self.seeder.n_chunks())
            .flat_map(|i| self.seeder.chunk(i).unwrap().to_vec())
            .collect()
    }
}

#[test]
fn downloads_in_order_over_five_of_six_circuits() {
    let mut h = Harness::new(seeder(20_000, 16), &[], small_cfg());
    let circs: Vec<DlCircuit> = (0..6).map(|_| h.circuit_up()).collect();
    // The first round asks each of the 5 used circuits for one of the window's first
    // blocks at once (the manifest leads every answer): chunks 1, 31, 61, 91, 121.
    assert_eq!(h.sent.len(), 5);
    for (i, s) in h.sent.iter().enumerate() {
        assert_eq!((s.2, s.3), (1 + 30 * i as u64, 30));
    }
    h.run(&[], 1, 100_000);
    h.assert_complete();
    assert_eq!(h.info, Some((20_000, String::from("video/webm"))));
    // Only 5 circuits carried GETs; the sixth is a spare.
    let used: BTreeSet<DlCircuit> = h.sent.iter().map(|s| s.1).collect();
    assert_eq!(used.len(), 5);
    assert!(!used.contains(&circs[5]));
    // Every range GET is at most one block, the first five on five circuits.
    assert!(h.sent.iter().all(|s| s.3 >= 1 && s.3 <= 30));
    let first5: BTreeSet<DlCircuit> = h.sent[..5].iter().map(|s| s.1).collect();
    assert_eq!(first5.len(), 5);
    assert!(h.replaced.is_empty());
}

#[test]
fn out_of_order_answers_are_read_in_order() {
    let mut h = Harness::new(seeder(6_000, 16), &[], small_cfg());
    for _ in 0..5 {
        h.circuit_up();
    }
    let info = h.sent[0].0;
    h.step(info);
    // Five GETs; serve them last first, each whole.
    assert_eq!(h.streams.len(), 5);
    while h.done.is_none() {
        let Some(&last) = h.streams.keys().next_back() else {
            break;
        };
        while h.step(last) {}
        h.advance(1);
    }
    h.assert_complete();
    // Nothing could be read before the first block arrived.
    assert_eq!(h.reads.first().map(|r| r.0), Some(0));
}

#[test]
fn interrupted_get_resumes_from_first_missing_chunk() {
    let mut h = Harness::new(seeder(6_000, 16), &[], small_cfg());
    let c1 = h.circuit_up();
    h.circuit_up();
    let info = h.sent[0].0;
    h.step(info);
    let (g, _, nb, n) = *h.sent.iter().find(|s| s.1 == c1 && s.3 > 0).unwrap();
    // Hashes, then 10 chunks, then the ORDB gives up.
    let hashes = h.streams[&g]
        .answers
        .iter()
        .filter(|m| matches!(m, Msg::Hashes(_)))
        .count();
    for _ in 0..hashes + 10 {
        assert!(h.step(g));
    }
    let before = h.sent.len();
    h.d.handle_end(h.now, g, DbEndReason::DESTROYED);
    h.pump();
    let resumed: Vec<_> = h.sent[before..].to_vec();
    assert!(
        resumed.iter().any(|s| s.2 == nb + 10 && s.3 == n - 10),
        "resumed GETs: {resumed:?}"
    );
    h.run(&[], 1, 100_000);
    h.assert_complete();
}

#[test]
fn tampered_chunk_drops_circuit_and_is_fetched_elsewhere() {
    let mut h = Harness::new(seeder(6_000, 16), &[], small_cfg());
    let c1 = h.circuit_up();
    for _ in 0..5 {
        h.circuit_up();
    }
    let info = h.sent[0].0;
    h.step(info);
    let (g, _, nb, _) = *h.sent.iter().find(|s| s.1 == c1 && s.3 > 0).unwrap();
    // Alter the third chunk of c1's GET.
    let stream = h.streams.get_mut(&g).unwrap();
    let mut seen = 0;
    for m in stream.answers.iter_mut() {
        if let Msg::Data(d) = m {
            seen += 1;
            if seen == 3 {
                d.data[0] ^= 1;
            }
        }
    }
    while h.step(g) {}
    assert_eq!(h.replaced.len(), 1);
    assert_eq!(h.replaced[0].0, c1);
    assert!(matches!(
        h.replaced[0].1,
        DropReason::Tampering(VerifyError::BadChunk { .. })
    ));
    // The bad chunk (wire nb + 2) is asked again on another circuit.
    assert!(
        h.sent
            .iter()
            .any(|s| s.1 != c1 && s.2 <= nb + 2 && nb + 2 < s.2 + u64::from(s.3))
    );
    h.run(&[], 1, 100_000);
    h.assert_complete();
}

#[test]
fn slow_circuit_is_replaced() {
    let mut h = Harness::new(seeder(40_000, 16), &[], small_cfg());
    let circs: Vec<DlCircuit> = (0..6).map(|_| h.circuit_up()).collect();
    let slow = circs[1];
    // 10 ms per answer round: the slow circuit gets one answer per 20 rounds.
    for round in 0..20_000u64 {
        if h.done.is_some() {
            break;
        }
        let gets: Vec<GetId> = h.streams.keys().copied().collect();
        for g in gets {
            let Some(s) = h.streams.get(&g) else { continue };
            if s.circ == slow && round % 20 != 0 {
                continue;
            }
            h.step(g);
        }
        h.advance(10);
    }
    assert!(
        h.replaced.contains(&(slow, DropReason::Slow)),
        "replaced: {:?}",
        h.replaced
    );
    h.assert_complete();
}

#[test]
fn stalled_get_drops_its_circuit() {
    // Two circuits: too few for the slow-circuit rule, so only the stall rule can act.
    let mut h = Harness::new(seeder(3_000, 16), &[], small_cfg());
    let circs: Vec<DlCircuit> = (0..2).map(|_| h.circuit_up()).collect();
    let info = h.sent[0].0;
    h.step(info);
    let mute = circs[0];
    for _ in 0..20_000 {
        if h.done.is_some() {
            break;
        }
        let gets: Vec<GetId> = h.streams.keys().copied().collect();
        for g in gets {
            if h.streams.get(&g).is_some_and(|s| s.circ != mute) {
                h.step(g);
            }
        }
        h.advance(10);
    }
    assert!(h.replaced.contains(&(mute, DropReason::Stalled)));
    h.assert_complete();
}

/// A congested path is slow, not dead: a circuit whose answers take 10 s gets 4 × that
/// before its silent GET counts as stalled; one never measured is judged by the slowest
/// measured circuit; and `stall_timeout_max` is the limit whatever the delay.
#[test]
fn the_stall_timeout_follows_the_measured_delay() {
    fn stalled_after(delay_s: u64, measured: bool, max_s: u64) -> u64 {
        let cfg = DownloadConfig {
            stall_timeout_max: Duration::from_secs(max_s),
            ..small_cfg()
        };
        let mut h = Harness::new(seeder(20_000, 16), &[], cfg);
        let c = h.circuit_up();
        // The answer to the info GET sets the circuit's delay.
        h.advance(delay_s * 1000);
        let info = h.sent[0].0;
        while h.step(info) {}
        assert!(h.info.is_some());
        let mute = if measured { c } else { h.circuit_up() };
        h.streams.retain(|_, s| s.circ == mute);
        let start = h.now;
        while !h.replaced.contains(&(mute, DropReason::Stalled)) {
            assert!(
                h.now < start + Duration::from_secs(120),
                "never judged stalled"
            );
            h.advance(500);
        }
        (h.now - start).as_secs()
    }
    // Unmeasured, or quick to answer: the 15 s floor.
    assert_eq!(stalled_after(0, true, 60), 15);
    assert_eq!(stalled_after(10, true, 60), 40);
    assert_eq!(stalled_after(10, false, 60), 40);
    assert_eq!(stalled_after(10, true, 30), 30);
}

#[test]
fn resume_never_asks_for_held_chunks() {
    let s = seeder(10_000, 16);
    let n = s.n_chunks();
    let held = [(0, 100), (200, 260), (500, n)];
    let mut h = Harness::new(s, &held, small_cfg());
    for _ in 0..6 {
        h.circuit_up();
    }
    h.run(&[], 1, 100_000);
    assert_eq!(h.done, Some(Ok(())));
    for &(_, _, nb, cnt) in &h.sent[1..] {
        let (a, b) = (nb - 1, nb - 1 + u64::from(cnt));
        for &(x, y) in &held {
            assert!(b <= x || a >= y, "GET {a}..{b} overlaps held {x}..{y}");
        }
    }
    // Reads jump over the held chunks and cover exactly the rest.
    let data = h.seeder_data();
    let mut covered = 0;
    for &(off, len) in &h.reads {
        assert_eq!(
            &h.out[off as usize..off as usize + len],
            &data[off as usize..off as usize + len]
        );
        covered += len;
    }
    assert_eq!(covered as u64, (200 - 100 + 500 - 260) * 16);
}

#[test]
fn pipelines_a_second_get_before_the_first_ends() {
    let mut h = Harness::new(seeder(60_000, 16), &[], small_cfg());
    for _ in 0..6 {
        h.circuit_up();
    }
    let mut max_on_one = 0;
    for _ in 0..100_000 {
        if h.done.is_some() {
            break;
        }
        let gets: Vec<GetId> = h.streams.keys().copied().collect();
        for g in gets {
            h.step(g);
        }
        // The answers take 20 ms to start (response delay) and then flow.
        h.advance(5);
        for c in 1..=6 {
            max_on_one = max_on_one.max(h.d.gets_on(DlCircuit(c)));
        }
    }
    h.assert_complete();
    assert_eq!(max_on_one, small_cfg().pipeline);
}

#[test]
fn unavailable_everywhere_gives_up() {
    let mut h = Harness::new(seeder(3_000, 16), &[], small_cfg());
    for _ in 0..6 {
        h.circuit_up();
    }
    for _ in 0..1000 {
        if h.done.is_some() {
            break;
        }
        let gets: Vec<GetId> = h.streams.keys().copied().collect();
        for g in gets {
            h.d.handle_end(h.now, g, DbEndReason::UNAVAILABLE);
            h.pump();
        }
        // Replaced circuits come back as new ones.
        while h.done.is_none() && h.d.circuit_counts().0 + h.d.circuit_counts().1 < 6 {
            h.circuit_up();
        }
        h.advance(10);
    }
    assert_eq!(h.done, Some(Err(DlError::Unavailable)));
}

/// Once the manifest is verified, failed GETs alone do not end the download: a busy
/// swarm fails many and still delivers. It ends when no new chunk came for
/// `give_up_after` as well, and a chunk in between starts the wait again.
#[test]
fn a_download_with_a_known_seeder_waits_before_giving_up() {
    let cfg = DownloadConfig {
        give_up_after: Duration::from_secs(60),
        ..small_cfg()
    };
    let mut h = Harness::new(seeder(20_000, 16), &[], cfg);
    for _ in 0..6 {
        h.circuit_up();
    }
    let first = h.sent[0].0;
    while h.info.is_none() && h.step(first) {}
    assert!(h.info.is_some());
    assert_eq!(h.d.progress().0, 0);
    let fail_all = |h: &mut Harness| {
        let gets: Vec<GetId> = h.streams.keys().copied().collect();
        for g in gets {
            h.d.handle_end(h.now, g, DbEndReason::FINISHED);
            h.pump();
        }
    };
    // 40 rounds of failures (well over `max_failures`) within 40 s: still running.
    for _ in 0..40 {
        fail_all(&mut h);
        h.advance(1000);
    }
    assert_eq!(h.done, None);
    // One new chunk: the wait starts again from it.
    let get = *h.streams.keys().next().expect("a GET in flight");
    while h.d.progress().0 == 0 && h.step(get) {}
    assert_eq!(h.d.progress().0, 1);
    let chunk_at = h.now;
    for _ in 0..59 {
        fail_all(&mut h);
        h.advance(1000);
    }
    assert_eq!(h.done, None);
    // Nothing new for `give_up_after`: the timer alone ends it (no GET needs to fail).
    h.streams.clear();
    while h.done.is_none() && h.now < chunk_at + Duration::from_secs(61) {
        let next = h.d.poll_timeout().expect("a wake-up while running");
        h.now = h.now.max(next);
        h.d.handle_timeout(h.now);
        h.pump();
    }
    assert_eq!(h.done, Some(Err(DlError::Unavailable)));
    assert!(h.now >= chunk_at + Duration::from_secs(60));
}

#[test]
fn forged_manifest_drops_the_circuit() {
    let good = seeder(3_000, 16);
    let other = {
        let key = Ed25519Keypair::from_secret(&[2; 32]);
        FileSeeder::with_chunk_size(&key, "video/webm", PUBLISHED, 16, content(3_000, 7)).unwrap()
    };
    let mut h = Harness::new(good, &[], small_cfg());
    let c1 = h.circuit_up();
    h.circuit_up();
    let info = h.sent[0].0;
    h.d.handle_connected(h.now, info, &other.db_connected());
    h.pump();
    assert_eq!(h.replaced.len(), 1);
    assert_eq!(h.replaced[0].0, c1);
    // The other circuit's GET of the same first round still brings the manifest: no
    // retry is sent, and the dropped circuit's block is asked again after it.
    assert_eq!(h.sent.len(), 2);
    assert_eq!((h.sent[1].2, h.sent[1].3), (31, 30));
    h.run(&[], 1, 100_000);
    h.assert_complete();
}

// ---- live ----

const T0: u32 = 0x6600_0000;

struct LiveHarness {
    d: Downloader,
    segs: Vec<(SignedSegment, Vec<Vec<u8>>)>,
    seg_chunks: u64,
    now: Instant,
    unix_at_zero: u64,
}

fn live_setup(n_segments: u32) -> (LiveSeeder, LiveHarness) {
    let mut s = LiveSeeder::new(Ed25519Keypair::from_secret(&[3; 32]), "video/mp4", T0, 8).unwrap();
    let mut segs = Vec::new();
    for k in 0..n_segments {
        let chunks: Vec<Vec<u8>> = (0..8)
            .map(|i| content(100 + i, k as u8 ^ i as u8))
            .collect();
        let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
        segs.push((s.sign_segment(&refs, T0 + k).unwrap(), chunks));
    }
    let unix_at_zero = u64::from(T0) + u64::from(n_segments);
    let cfg = DownloadConfig {
        block_chunks: 8,
        window_blocks: 2,
        ..DownloadConfig::default()
    };
    let d = Downloader::new_live(&s.hash_name(), unix_at_zero, cfg);
    let h = LiveHarness {
        d,
        segs,
        seg_chunks: 8,
        now: Instant::ZERO,
        unix_at_zero,
    };
    (s, h)
}

impl LiveHarness {
    /// What an ORDB answers for chunks `first..first+n` (absolute).
    fn answer(&self, first: u64, n: u64) -> Vec<Msg> {
        let mut out = Vec::new();
        let mut segs_sent = BTreeSet::new();
        for abs in first..first + n {
            let seg = (abs / self.seg_chunks) as usize;
            let Some((s, _)) = self.segs.get(seg) else {
                continue;
            };
            if segs_sent.insert(seg) {
                out.push(Msg::Segment(s.header.clone()));
                for h in &s.hashes {
                    out.push(Msg::Hashes(h.clone()));
                }
            }
            out.push(Msg::Data(s.data[(abs % self.seg_chunks) as usize].clone()));
        }
        out
    }
}

#[test]
fn live_join_follows_the_ring_in_order() {
    let (s, mut h) = live_setup(6);
    let _ = h.unix_at_zero;
    for c in 1..=6 {
        h.d.handle_circuit_up(h.now, DlCircuit(c));
    }
    let mut reads: Vec<u8> = Vec::new();
    let mut pending: VecDeque<(GetId, Vec<Msg>)> = VecDeque::new();
    let mut saw_join = false;
    let mut info = false;
    for _ in 0..200 {
        while let Some(a) = h.d.poll_action() {
            match a {
                DlAction::SendGet {
                    get,
                    chunk_nb,
                    nb_chunks,
                    ..
                } => {
                    let msgs = if nb_chunks == 0 {
                        vec![Msg::Connected(s.db_connected())]
                    } else if chunk_nb == 0 {
                        saw_join = true;
                        // The ORDB chooses 2 windows (here 2 segments) behind the newest.
                        h.answer(3 * h.seg_chunks, 1)
                    } else {
                        let ring = s.manifest().ring();
                        let abs = ring.to_absolute(chunk_nb as u32, 3 * h.seg_chunks).unwrap();
                        h.answer(abs, u64::from(nb_chunks))
                    };
                    pending.push_back((get, msgs));
                }
                DlAction::Info { size, .. } => {
                    info = true;
                    assert_eq!(size, 0);
                }
                DlAction::Readable => {
                    let mut buf = [0u8; 64];
                    while let Some((off, n)) = h.d.read(h.now, &mut buf) {
                        assert_eq!(off, reads.len() as u64);
                        reads.extend_from_slice(&buf[..n]);
                    }
                }
                DlAction::Done(_) => panic!("a live stream never ends"),
                _ => {}
            }
            h.d.check_invariants().unwrap();
        }
        let Some((get, msgs)) = pending.pop_front() else {
            h.now = h.now + Duration::from_millis(600);
            h.d.handle_timeout(h.now);
            continue;
        };
        for m in msgs {
            match m {
                Msg::Connected(c) => h.d.handle_connected(h.now, get, &c),
                Msg::Segment(x) => h.d.handle_segment(h.now, get, &x),
                Msg::Hashes(x) => h.d.handle_hashes(h.now, get, &x),
                Msg::Data(x) => h.d.handle_data(h.now, get, x),
            }
        }
        // Past the newest segment the ORDB has nothing yet.
        if h.d.circuit_of(get).is_some() {
            h.d.handle_end(h.now, get, DbEndReason::UNAVAILABLE);
        }
        h.now = h.now + Duration::from_millis(1);
    }
    assert!(info && saw_join);
    // Everything from the join point (segment 3) to the newest, in order, byte-exact.
    let expect: Vec<u8> = h.segs[3..]
        .iter()
        .flat_map(|(_, c)| c.iter().flatten().copied())
        .collect();
    assert_eq!(reads, expect);
}

// ---- fuzzing the scheduler ----

/// Arbitrary sequences of circuit up/down, good and bad answers, ends, time and reads:
/// no panic, the invariants hold after every step, reads never go back, and every byte
/// read is the file's.
#[test]
fn fuzz_scheduler() {
    let s = seeder(3_000, 16);
    let data: Vec<u8> = (0..s.n_chunks())
        .flat_map(|i| s.chunk(i).unwrap().to_vec())
        .collect();
    bolero::check!().for_each(|input: &[u8]| {
        // The window follows the rate between 4 and 8 blocks (it grows and shrinks).
        let cfg = DownloadConfig {
            block_chunks: 15,
            window_blocks: 4,
            window_blocks_max: 8,
            ..DownloadConfig::default()
        };
        let held: &[(u64, u64)] = match input.first() {
            Some(b) if b & 1 == 1 => &[(20, 40), (100, 120)],
            _ => &[],
        };
        let mut h = Harness::new(s.clone(), held, cfg);
        let mut ops = input.iter().skip(1);
        while let (Some(&op), Some(&arg)) = (ops.next(), ops.next()) {
            let gets: Vec<GetId> = h.streams.keys().copied().collect();
            let pick = gets.get(usize::from(arg) % gets.len().max(1)).copied();
            match op % 9 {
                0 => {
                    h.circuit_up();
                }
                1 => {
                    let c = DlCircuit(u64::from(arg % 8) + 1);
                    h.d.handle_circuit_down(h.now, c);
                    h.streams.retain(|_, s| s.circ != c);
                    h.pump();
                }
                2 | 3 => {
                    if let Some(g) = pick {
                        for _ in 0..=(arg % 20) {
                            h.step(g);
                        }
                    }
                }
                4 => {
                    // Tamper with the next chunk (or hash list) of a GET.
                    if let Some(g) = pick
                        && let Some(m) = h.streams.get_mut(&g).and_then(|s| s.answers.pop_front())
                    {
                        let bad = match m {
                            Msg::Data(mut d) => {
                                if let Some(b) = d.data.first_mut() {
                                    *b ^= 0x80;
                                } else {
                                    d.signature = ChunkSignature::new(0, [0; 4]);
                                }
                                Msg::Data(d)
                            }
                            Msg::Hashes(mut x) => {
                                if let Some(hh) = x.hashes.first_mut() {
                                    hh[0] ^= 1;
                                }
                                Msg::Hashes(x)
                            }
                            other => other,
                        };
                        h.feed(g, bad);
                    }
                }
                5 => {
                    if let Some(g) = pick {
                        h.d.handle_end(h.now, g, DbEndReason(arg % 4));
                        h.pump();
                    }
                }
                6 => h.advance(u64::from(arg) * 100),
                7 => h.read_all(),
                _ => {
                    // An answer for a chunk the GET did not ask for, or reordered.
                    if let Some(g) = pick
                        && let Some(st) = h.streams.get_mut(&g)
                        && st.answers.len() > 1
                    {
                        let m = st.answers.remove(1).unwrap();
                        h.feed(g, m);
                    } else if let Some(g) = pick {
                        let i = u64::from(arg) % h.seeder.n_chunks();
                        let m = Msg::Data(h.seeder.db_data(i).unwrap());
                        h.feed(g, m);
                    }
                }
            }
            h.d.check_invariants().unwrap();
            let pipeline = small_cfg().pipeline;
            let per_circ_ok = (1..h.next_circ).all(|c| h.d.gets_on(DlCircuit(c)) <= pipeline);
            assert!(per_circ_ok);
        }
        for &(off, n) in &h.reads {
            let (a, b) = (off as usize, off as usize + n);
            assert_eq!(&h.out[a..b], &data[a..b]);
        }
        // Honest ORDBs from here on: the download completes.
        if h.done.is_none() {
            while h.done.is_none() && h.d.circuit_counts().0 + h.d.circuit_counts().1 < 6 {
                h.circuit_up();
            }
            h.run(&[], 1, 20_000);
            if h.done.is_none() {
                // Circuits dropped during the run come back.
                for _ in 0..50 {
                    while h.done.is_none() && h.d.circuit_counts().0 + h.d.circuit_counts().1 < 6 {
                        h.circuit_up();
                    }
                    h.run(&[], 1, 2_000);
                }
            }
        }
        match &h.done {
            Some(Ok(())) => {
                let mut covered = vec![false; data.len()];
                for &(off, n) in &h.reads {
                    covered[off as usize..off as usize + n].fill(true);
                }
                for &(a, b) in held {
                    covered[(a * 16) as usize..(b * 16) as usize].fill(true);
                }
                assert!(covered.iter().all(|c| *c));
            }
            Some(Err(DlError::Unavailable)) => {}
            other => panic!("download did not finish: {other:?}"),
        }
    });
}

#[test]
fn live_reader_too_far_behind_skips_stale_chunks_without_blaming_the_ordb() {
    let (s, mut h) = live_setup(6);
    for c in 1..=6 {
        h.d.handle_circuit_up(h.now, DlCircuit(c));
    }
    let mut gets: Vec<(GetId, DlCircuit, u64, u16)> = Vec::new();
    let mut actions = Vec::new();
    let drain = |d: &mut Downloader, gets: &mut Vec<_>, actions: &mut Vec<DlAction>| {
        while let Some(a) = d.poll_action() {
            if let DlAction::SendGet {
                get,
                circuit,
                chunk_nb,
                nb_chunks,
            } = a
            {
                gets.push((get, circuit, chunk_nb, nb_chunks));
            }
            actions.push(a);
            d.check_invariants().unwrap();
        }
    };
    drain(&mut h.d, &mut gets, &mut actions);
    let info = gets[0].0;
    h.d.handle_connected(h.now, info, &s.db_connected());
    drain(&mut h.d, &mut gets, &mut actions);
    let join = gets.iter().find(|g| g.2 == 0).unwrap().0;
    for m in h.answer(3 * h.seg_chunks, 1) {
        match m {
            Msg::Segment(x) => h.d.handle_segment(h.now, join, &x),
            Msg::Hashes(x) => h.d.handle_hashes(h.now, join, &x),
            Msg::Data(x) => h.d.handle_data(h.now, join, x),
            Msg::Connected(_) => {}
        }
    }
    drain(&mut h.d, &mut gets, &mut actions);
    // Five minutes later the ORDB answers a range GET with segments now too old.
    h.now = h.now + Duration::from_secs(300);
    // The GET of chunks 33.. (segment 4, all of it newer than the join's segment 3).
    let ring = s.manifest().ring();
    let wire33 = u64::from(ring.to_wire(33));
    let (g, circ, nb, n) = *gets.iter().find(|g| g.2 == wire33).unwrap();
    let abs = ring.to_absolute(nb as u32, 3 * h.seg_chunks).unwrap();
    let msgs = h.answer(abs, u64::from(n));
    actions.clear();
    let before = gets.len();
    for m in msgs {
        match m {
            Msg::Segment(x) => h.d.handle_segment(h.now, g, &x),
            Msg::Hashes(x) => h.d.handle_hashes(h.now, g, &x),
            Msg::Data(x) => h.d.handle_data(h.now, g, x),
            Msg::Connected(_) => {}
        }
    }
    drain(&mut h.d, &mut gets, &mut actions);
    assert!(actions.contains(&DlAction::CloseGet {
        get: g,
        circuit: circ,
        send_end: true
    }));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, DlAction::ReplaceCircuit { .. }))
    );
    // The lost range is not asked again.
    assert!(!gets[before..].iter().any(|x| x.2 == nb));
    let mut buf = [0u8; 4096];
    // The join chunk is read, then the reader jumps over the lost range.
    let first = h.d.read(h.now, &mut buf);
    assert_eq!(first.map(|r| r.1), Some(h.segs[3].1[0].len()));
}

/// The first round asks ranges before the size is known: on a file shorter than the
/// window's first blocks, the GETs beyond its end are closed when the manifest comes,
/// the one across it is cut at the end, and their UNAVAILABLE answers before that blame
/// no circuit.
#[test]
fn first_round_ranges_beyond_a_small_file_are_dropped_without_blame() {
    let cfg = DownloadConfig {
        max_strikes: 1,
        ..small_cfg()
    };
    // 40 chunks: blocks 0..30 and 30..40; the 3 other first-round blocks lie beyond.
    let mut h = Harness::new(seeder(640, 16), &[], cfg);
    for _ in 0..5 {
        h.circuit_up();
    }
    assert_eq!(h.sent.len(), 5);
    let beyond: Vec<GetId> = h.sent[2..4].iter().map(|s| s.0).collect();
    for g in beyond {
        h.d.handle_end(h.now, g, DbEndReason::UNAVAILABLE);
        h.pump();
    }
    assert!(h.replaced.is_empty(), "blamed: {:?}", h.replaced);
    let first = h.sent[0].0;
    h.step(first);
    assert_eq!(h.info, Some((640, String::from("video/webm"))));
    // Only the two GETs within the file are left (and, the whole file being asked, the
    // end game's split of the first on an idle circuit); nothing beyond it is asked.
    assert_eq!(h.d.gets_in_flight(), 3);
    h.run(&[], 1, 100_000);
    h.assert_complete();
    assert!(h.replaced.is_empty());
    assert!(h.sent[5..].iter().all(|s| s.2 <= 40));
}

/// Answers take 100 ms to start and then arrive at once (a long path, a fast flow).
/// Waiting for a GET's first chunk before asking the next one would leave each circuit
/// idle for most of every round trip; measured, a circuit gets its second GET while
/// the first is still unanswered, and the download keeps both flowing.
#[test]
fn a_measured_circuit_asks_again_before_the_answer_starts() {
    let mut h = Harness::new(seeder(60_000, 16), &[], small_cfg());
    for _ in 0..6 {
        h.circuit_up();
    }
    let mut sent_at: BTreeMap<GetId, Instant> = BTreeMap::new();
    let mut answered: BTreeSet<GetId> = BTreeSet::new();
    let mut overlapped = false;
    for _ in 0..10_000 {
        if h.done.is_some() {
            break;
        }
        let gets: Vec<GetId> = h.streams.keys().copied().collect();
        for g in &gets {
            sent_at.entry(*g).or_insert(h.now);
        }
        for g in gets {
            if h.now.saturating_duration_since(sent_at[&g]) >= Duration::from_millis(100) {
                answered.insert(g);
                while h.step(g) {}
            }
        }
        for c in 1..=6 {
            let waiting = h
                .streams
                .iter()
                .filter(|(g, s)| s.circ == DlCircuit(c) && !answered.contains(g))
                .count();
            overlapped |= waiting >= 2;
        }
        h.advance(10);
    }
    h.assert_complete();
    assert!(
        overlapped,
        "no circuit ever had a GET asked before the last one answered"
    );
}

impl Harness {
    /// Serve every stream of circuits other than `except` one answer at a time in turn
    /// until they have nothing more, without time passing.
    fn serve_all_but(&mut self, except: DlCircuit) {
        loop {
            let gets: Vec<GetId> = self
                .streams
                .iter()
                .filter(|(_, s)| s.circ != except)
                .map(|(g, _)| *g)
                .collect();
            let mut any = false;
            for g in gets {
                any |= self.step(g);
            }
            if !any {
                return;
            }
        }
    }

    /// Deliver what `get`'s answer sends before its first chunk (the manifest, hashes),
    /// then its next `msgs` answers.
    fn deliver(&mut self, get: GetId, msgs: usize) {
        while self.streams[&get]
            .answers
            .front()
            .is_some_and(|m| !matches!(m, Msg::Data(_)))
        {
            self.step(get);
        }
        for _ in 0..msgs {
            assert!(self.step(get));
        }
    }
}

/// Blocks of 60 chunks, 5 in the window (300 chunks).
fn blocks_of_60() -> DownloadConfig {
    DownloadConfig {
        block_chunks: 60,
        window_blocks: 5,
        ..DownloadConfig::default()
    }
}

#[test]
fn the_end_game_gives_the_tail_of_the_slowest_get_to_an_idle_circuit() {
    // 300 chunks of 16 B, 5 blocks of 60: the first round asks for the whole file.
    let mut h = Harness::new(seeder(4_800, 16), &[], blocks_of_60());
    let circs: Vec<DlCircuit> = (0..5).map(|_| h.circuit_up()).collect();
    assert_eq!(h.sent.len(), 5);
    let slow = circs[2];
    let (g, _, nb, n) = *h.sent.iter().find(|s| s.1 == slow).unwrap();
    assert_eq!((nb, n), (121, 60));
    // The slow GET delivers its manifest, hashes and 2 chunks; the others everything.
    h.deliver(g, 2);
    h.advance(300);
    h.serve_all_but(slow);
    // One idle circuit took the second half of the 58 chunks left (chunks 151..180,
    // wire numbers 152..): one split only, as the halves are now under 30 chunks.
    let split: Vec<_> = h.sent[5..].to_vec();
    assert_eq!(split.len(), 1, "{split:?}");
    assert_ne!(split[0].1, slow);
    assert_eq!((split[0].2, split[0].3), (121 + 2 + 29, 29));
    // The slow GET is closed with DB_END once it has its first half, never sending
    // the tail; the split GET brings it.
    for _ in 0..29 {
        assert!(h.step(g));
    }
    assert_eq!(h.stopped, vec![g]);
    assert!(!h.streams.contains_key(&g));
    h.run(&[], 1, 10_000);
    h.assert_complete();
    assert!(h.replaced.is_empty());
    let stats = h.d.stats();
    assert_eq!((stats.tail_splits, stats.hedges), (1, 0));
}

#[test]
fn no_end_game_while_chunks_remain_to_ask_or_the_tail_is_short() {
    // 600 chunks: the window (300) holds back half the file; circuits that idle at
    // the window's edge wait for it to slide, they do not split.
    let mut h = Harness::new(seeder(9_600, 16), &[], blocks_of_60());
    let circs: Vec<DlCircuit> = (0..5).map(|_| h.circuit_up()).collect();
    let (g, ..) = *h.sent.iter().find(|s| s.1 == circs[0]).unwrap();
    h.step(g);
    h.serve_all_but(circs[0]);
    // Nothing is read while the first block is missing: the window cannot slide.
    assert!(h.sent[5..].iter().all(|s| s.2 > 300), "{:?}", &h.sent[5..]);
    assert!(h.stopped.is_empty());
    // A last GET with under 30 chunks left is not split either.
    let mut h = Harness::new(seeder(4_800, 16), &[], blocks_of_60());
    let circs: Vec<DlCircuit> = (0..5).map(|_| h.circuit_up()).collect();
    let (g, ..) = *h.sent.iter().find(|s| s.1 == circs[4]).unwrap();
    h.deliver(g, 31);
    h.serve_all_but(circs[4]);
    assert_eq!(h.sent.len(), 5);
    h.run(&[], 1, 10_000);
    h.assert_complete();
    assert!(h.stopped.is_empty());
}

/// 600 chunks, a window of 150: the first round asks the window's 5 blocks; every
/// circuit but the first answers its block at once, the first stays silent. Returns
/// the harness, the silent circuit and its GET, after 1.2 s.
fn window_held_by_a_silent_get() -> (Harness, DlCircuit, GetId) {
    let mut h = Harness::new(seeder(9_600, 16), &[], small_cfg());
    let circs: Vec<DlCircuit> = (0..5).map(|_| h.circuit_up()).collect();
    let (g, _, nb, _) = *h.sent.iter().find(|s| s.1 == circs[0]).unwrap();
    assert_eq!(nb, 1);
    h.advance(100);
    h.serve_all_but(circs[0]);
    assert_eq!(h.sent.len(), 5, "nothing else fits in the window");
    h.advance(1_100);
    (h, circs[0], g)
}

#[test]
fn a_silent_get_at_the_window_start_is_asked_again_elsewhere() {
    let (mut h, silent, g) = window_held_by_a_silent_get();
    // After twice the idle circuits' delay (at least 1 s), its range is asked on one
    // of them as well (a hedge), once.
    let hedges: Vec<_> = h.sent[5..].to_vec();
    assert_eq!(hedges.len(), 1, "{hedges:?}");
    let (t, c, nb, n) = hedges[0];
    assert_ne!(c, silent);
    assert_eq!((nb, n), (1, 30));
    // The hedge answers first: the silent GET is closed with DB_END; nothing twice.
    h.deliver(t, 1);
    assert_eq!(h.stopped, vec![g]);
    assert!(!h.streams.contains_key(&g));
    h.run(&[silent], u64::MAX, 20_000);
    h.assert_complete();
    assert!(h.replaced.is_empty());
    // Later GETs on the silent circuit are hedged too, and every hedge wins.
    let stats = h.d.stats();
    assert!(
        stats.hedges >= 1 && stats.hedges_won == stats.hedges,
        "{stats:?}"
    );
}

#[test]
fn a_hedged_get_that_answers_first_keeps_its_range() {
    let (mut h, _silent, g) = window_held_by_a_silent_get();
    let (t, ..) = h.sent[5];
    // The silent GET answers after all: the hedge is closed.
    h.deliver(g, 1);
    assert_eq!(h.stopped, vec![t]);
    h.run(&[], 1, 20_000);
    h.assert_complete();
    let stats = h.d.stats();
    assert_eq!((stats.hedges, stats.hedges_won), (1, 0));
}

#[test]
fn a_hedge_that_fails_leaves_its_range_to_its_twin() {
    let (mut h, _silent, g) = window_held_by_a_silent_get();
    let (t, ..) = h.sent[5];
    let before = h.sent.len();
    h.d.handle_end(h.now, t, DbEndReason::UNAVAILABLE);
    h.pump();
    // The range is not put back to be asked anew: the silent GET still asks it, and
    // at most a new hedge joins it on another idle circuit (the invariants check that
    // no GETs but twins ask the same chunks).
    let again: Vec<_> = h.sent[before..].to_vec();
    assert!(again.len() <= 1, "{again:?}");
    assert!(again.iter().all(|s| (s.2, s.3) == (1, 30)), "{again:?}");
    while h.step(g) {}
    let closed: Vec<GetId> = again.iter().map(|s| s.0).collect();
    assert_eq!(h.stopped, closed);
    h.run(&[], 1, 20_000);
    h.assert_complete();
}

#[test]
fn the_window_follows_the_rate() {
    // 3,750 chunks of 16 B, blocks of 30, a window of 5 blocks that may grow to 10.
    let cfg = DownloadConfig {
        window_blocks_max: 10,
        ..small_cfg()
    };
    let mut h = Harness::new(seeder(60_000, 16), &[], cfg);
    for _ in 0..5 {
        h.circuit_up();
    }
    // One answer every 50 ms: ~20 chunks/s, 6 s of which (120) fit the first window.
    let serve = |h: &mut Harness, rounds: u32, every_ms: u64| {
        for _ in 0..rounds {
            let gets: Vec<GetId> = h.streams.keys().copied().collect();
            let served = gets.into_iter().any(|g| h.step(g));
            assert!(served || h.done.is_some());
            h.advance(every_ms);
        }
    };
    serve(&mut h, 200, 50);
    assert_eq!(
        h.d.window_chunks(),
        150,
        "slow: the window stays at its start"
    );
    // Served at once: the window grows to its bound.
    serve(&mut h, 3_000, 2);
    assert_eq!(h.d.window_chunks(), 300);
    // With the GET at the reader's position silent, GETs reach past the first window.
    let read = h.reads.iter().map(|r| r.1 as u64).sum::<u64>() / 16;
    let (&held, _) = h
        .streams
        .iter()
        .min_by_key(|(g, _)| h.sent.iter().find(|s| s.0 == **g).map(|s| s.2))
        .unwrap();
    for _ in 0..200 {
        let gets: Vec<GetId> = h.streams.keys().copied().filter(|g| *g != held).collect();
        for g in gets {
            h.step(g);
        }
        h.advance(2);
    }
    let furthest = h
        .sent
        .iter()
        .map(|s| s.2 - 1 + u64::from(s.3))
        .max()
        .unwrap();
    assert!(furthest > read + 150, "asked up to {furthest}, read {read}");
    assert!(
        furthest <= read + 300,
        "asked up to {furthest}, read {read}"
    );
    // Slow again: the window shrinks; what was asked under the larger one still fits.
    serve(&mut h, 200, 50);
    assert_eq!(h.d.window_chunks(), 150);
    assert!(h.d.buffered_chunks() as u64 <= h.d.buffer_bound());
    h.run(&[], 1, 100_000);
    h.assert_complete();
}
