//! The downloader's scheduler (seed, "Pieces and sliding window", "Requests", "Live
//! Streaming"; PROTOCOL.md §10): which range of chunks to ask of which ORDB circuit, when,
//! and what to do when a circuit is slow, stalls, lies or vanishes.
//!
//! [`Downloader`] is Sans-IO, like quinn-proto's `Connection`: the node feeds it what
//! happened (`handle_*`, each with `now`) and drains what it must do
//! ([`Downloader::poll_action`]) and when to wake it ([`Downloader::poll_timeout`]).
//! Circuits are opaque [`DlCircuit`] ids and GETs (one DB_QUERY stream each) are
//! [`GetId`]s the downloader allocates; the node maps them to circuits and stream ids.
//!
//! Rules (defaults of [`DownloadConfig`]):
//! - **Info first.** Nothing is accepted before the manifest (DB_CONNECTED) is checked
//!   against the hash_name ([`FileVerifier`] / [`LiveVerifier`]). The first round asks
//!   every used circuit at once, so each ORDB finds the name in parallel (the first
//!   verified manifest wins). A file's first round asks the window's first blocks, one
//!   per circuit: every answer starts with the manifest, so the chunks follow it without
//!   another round trip; ranges found past the end once the size is known are dropped
//!   (and their UNAVAILABLE blames nobody). A live stream asks for the info alone
//!   (`chunk_nb 1, nb_chunks 0`); so do retries, one circuit at a time.
//! - **Circuits.** 5 of the circuits the node has are *used*; the others are spares that
//!   replace a used one when it is dropped.
//! - **Window and blocks.** The window is 10 blocks of 420 chunks (420 × 486 B ≈ 204 kB, a
//!   multiple of the tree's 15-chunk blocks), counted from the first chunk the application
//!   has not read: no chunk outside it is asked for, so buffered data never exceeds the
//!   window (≈ 2 MB). One GET asks for at most one block. Why larger than the seed's
//!   5 × 100 kB: with 5 blocks in the window one slow GET at its start (the paths cross
//!   6–7 relays) held every other circuit idle once the 4 blocks after it were in
//!   (PROTOCOL.md §10, measurements).
//! - **Placement.** A new GET goes to the idle used circuit with the best measured rate
//!   (unmeasured circuits first, so every circuit gets measured); lowest missing chunks
//!   first (re-requests before new ranges).
//! - **Pipelining.** At most 2 GETs in flight per circuit: the next is sent early, when
//!   all the circuit has asked would have arrived within 1.5 × its measured response
//!   delay (a GET not answered yet: at its expected first answer, then the rest at the
//!   circuit's transfer rate), so the circuit does not idle while an answer starts.
//!   Hence at most `2 × used` GETs in flight in all, and never more than 2 × the
//!   circuits up.
//! - **Slow circuits.** Each check (every second while GETs run), once 3 used circuits
//!   have a rate, a circuit whose rate is below the median / 4 is dropped
//!   ([`DlAction::ReplaceCircuit`]); a GET with no data for 15 s (or 4 × the circuit's
//!   measured response delay, at most 60 s) drops its circuit too.
//!   What the dropped circuit had outstanding is asked elsewhere.
//! - **End game.** Once every chunk is asked for, a used circuit with nothing to do
//!   takes the second half of what the GET with the most chunks left still has to send
//!   (when its circuit would take longer than the idle one's response delay to send
//!   it); that GET is closed with DB_END once it holds the first half. Nothing is
//!   fetched twice.
//! - **Hedge.** When nothing can be asked (the window cannot slide) and a circuit idles,
//!   the window's first range, if its GET has had no answer for twice that circuit's
//!   response delay (at least 1 s), is asked on it too; the first GET to send a chunk
//!   keeps the range, the other is closed with DB_END.
//! - **Giving up.** 32 failed GETs in a row without a new chunk; once the manifest is
//!   verified, only after 5 minutes without a new chunk as well.
//! - **Resume.** An interrupted GET (DB_END, circuit gone, bad data) is re-requested from
//!   its first chunk not received; chunks already held (a restart) are never asked.
//! - **Verification.** Every chunk is verified before it is buffered; a tampering error
//!   drops the circuit; a GET whose ORDB skips the hashes (`NeedHashes`) or answers
//!   UNAVAILABLE gives its circuit a strike (3 strikes: dropped).
//! - **Live.** After the info, a join GET `chunk_nb 0, nb_chunks 1` lets the ORDB choose
//!   the position; the downloader follows from there on the ring ([`ChunkRing`]), skips
//!   chunks that fell more than 4 windows behind the newest one, and never finishes.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::content::Manifest;
use super::live::ChunkRing;
use super::verify::{
    Accepted, ChunkBytes, FileVerifier, LiveVerifier, Released, VerifyError, VerifyLimits,
};
use crate::Instant;
use crate::cells::relay::{
    DbConnected, DbData, DbEndReason, DbHashes, DbSegment, MAX_CHUNK_DATA_LEN, Progress,
};

/// A file download advertises (DB_INFO) at each 1/`ADVERTISE_STEPS` of the file: the
/// seed's 25/50/75/100 % and the steps between them.
const ADVERTISE_STEPS: u64 = 16;

/// The end game splits a GET only when it still has this many chunks to send (two of
/// the tree's blocks): smaller tails are not worth a round trip.
const SPLIT_MIN_CHUNKS: u64 = 30;

/// An ORDB circuit, as the node names it to the downloader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DlCircuit(pub u64);

/// One GET (one DB_QUERY and its answer stream), allocated by the downloader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GetId(pub u64);

/// Tunables of a download (defaults: the seed's numbers, see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadConfig {
    /// Circuits used at once (the seed: 5 of the ≥ 6).
    pub circuits: usize,
    /// Chunks per block (one GET asks for at most one block).
    pub block_chunks: u16,
    /// Blocks per window (the least, when `window_blocks_max` is larger).
    pub window_blocks: u16,
    /// Blocks per window at most: a file download's window follows its rate (it holds
    /// `window_time` of data at the rate measured over the last 2 s) up to this. The
    /// default, `window_blocks`, keeps the window fixed (PROTOCOL.md §10 says why).
    pub window_blocks_max: u16,
    /// Time of data at the download's measured rate the window holds, within
    /// `window_blocks ..= window_blocks_max`.
    pub window_time: Duration,
    /// GETs in flight per circuit at most (2: one running, one sent early).
    pub pipeline: usize,
    /// A GET that got no data for this long drops its circuit, or for 4 × the
    /// circuit's measured response delay when that is longer (a congested path is slow
    /// to answer, not dead: dropping it throws away what is queued for it and asks the
    /// same servers again)...
    pub stall_timeout: Duration,
    /// ... but never longer than this.
    pub stall_timeout_max: Duration,
    /// How long a GET must have run before its rate is judged.
    pub measure_after: Duration,
    /// A circuit slower than the median rate divided by this is dropped.
    pub slow_factor: u64,
    /// Strikes (UNAVAILABLE, missing hashes) before a circuit is dropped.
    pub max_strikes: u32,
    /// Failed GETs in a row without a new verified chunk before giving up.
    pub max_failures: u32,
    /// Once the manifest is verified (someone serves the name), the failures alone do
    /// not end the download: it also takes this long without a new verified chunk.
    pub give_up_after: Duration,
    /// Circuits tracked at most (used and spare); more are ignored.
    pub max_circuits: usize,
    /// Live: chunks older than this many windows behind the newest are skipped.
    pub live_windows_kept: u16,
    /// Live: delay before asking again for chunks an ORDB does not have yet.
    pub live_retry: Duration,
    /// Limits of the verifier.
    pub limits: VerifyLimits,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            circuits: 5,
            block_chunks: 420,
            window_blocks: 10,
            window_blocks_max: 10,
            window_time: Duration::from_secs(6),
            pipeline: 2,
            stall_timeout: Duration::from_secs(15),
            stall_timeout_max: Duration::from_secs(60),
            measure_after: Duration::from_secs(4),
            slow_factor: 4,
            max_strikes: 3,
            max_failures: 32,
            give_up_after: Duration::from_secs(300),
            max_circuits: 16,
            live_windows_kept: 4,
            live_retry: Duration::from_millis(500),
            limits: VerifyLimits::default(),
        }
    }
}

impl DownloadConfig {
    fn window(&self) -> u64 {
        u64::from(self.block_chunks.max(1)) * u64::from(self.window_blocks.max(1))
    }

    fn window_max(&self) -> u64 {
        let blocks = self.window_blocks_max.max(self.window_blocks).max(1);
        u64::from(self.block_chunks.max(1)) * u64::from(blocks)
    }
}

/// How often the download's rate is measured for the window.
const RATE_PERIOD: Duration = Duration::from_secs(2);

/// Why a circuit should be destroyed and replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// It delivered data that failed verification (or a chunk it was not asked for).
    Tampering(VerifyError),
    /// Its rate is far below the other circuits'.
    Slow,
    /// A GET on it got no data within the stall timeout.
    Stalled,
    /// Too many UNAVAILABLE answers or GETs answered without their hashes.
    Strikes,
}

/// How a download ended badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DlError {
    /// Too many GETs failed in a row: nobody serves it.
    Unavailable,
    /// The content is not of the kind asked for (a file vs a live stream) or over a limit.
    Refused(VerifyError),
}

/// What the node must do for the downloader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DlAction {
    /// Send DB_QUERY `[hash_name][chunk_nb][nb_chunks][counter 0]` on `circuit`, on a new
    /// stream that `get` names; route its answers to the `handle_*` calls with `get`.
    SendGet {
        /// The GET.
        get: GetId,
        /// Where.
        circuit: DlCircuit,
        /// Wire chunk number (index + 1; 0 = live join; 1 with `nb_chunks` 0 = info).
        chunk_nb: u64,
        /// Chunks asked for (0 = the file info).
        nb_chunks: u16,
    },
    /// The GET is over: forget its stream; send DB_END FINISHED on it when `send_end`
    /// (we stop it before the ORDB finished).
    CloseGet {
        /// The GET.
        get: GetId,
        /// Its circuit.
        circuit: DlCircuit,
        /// Tell the ORDB to stop.
        send_end: bool,
    },
    /// Destroy this circuit and build a new ORDB circuit in its place. The downloader has
    /// already forgotten it (its GETs are closed and will be asked elsewhere).
    ReplaceCircuit {
        /// The circuit.
        circuit: DlCircuit,
        /// Why.
        reason: DropReason,
    },
    /// The verified manifest: size (0 for a live stream) and MIME type.
    Info {
        /// Bytes.
        size: u64,
        /// MIME type.
        mime: String,
    },
    /// In-order bytes can be read with [`Downloader::read`] (once per transition).
    Readable,
    /// Tell the ORDBs that we hold this share of the file (DB_INFO, with the chunks
    /// held from the start): at each sixteenth of the file, so ORDBs can send queries
    /// for what we hold our way while we download.
    Advertise(Progress),
    /// The download ended (files only; reported once, last).
    Done(Result<(), DlError>),
}

/// Something the downloader verified, for the node to keep in its chunk store so it
/// serves it in turn ("a node becomes a seeder for what it has"). Files only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The manifest (checked against the name).
    Manifest(Manifest),
    /// An accepted DB_HASHES.
    Hashes(DbHashes),
    /// A verified chunk (0-based index; absolute for live streams).
    Chunk(u64, heapless::Vec<u8, MAX_CHUNK_DATA_LEN>),
    /// A live stream's accepted signed segment header (before its hashes and chunks).
    Segment(DbSegment),
}

/// A rate and delay measured on one circuit.
#[derive(Debug, Clone, Copy, Default)]
struct CircState {
    used: bool,
    /// Effective rate of finished GETs, bytes/s (EWMA, ½ weight).
    rate: Option<u64>,
    /// Transfer rate of finished GETs, first to last chunk, bytes/s (EWMA, ½ weight):
    /// how fast what is asked drains once it flows, without the response delay.
    flow_rate: Option<u64>,
    /// Time from a GET to its first answer (EWMA).
    delay: Option<Duration>,
    strikes: u32,
    in_flight: usize,
    /// This circuit had its GET of the first round.
    first_round: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GetKind {
    Info,
    Join,
    /// Chunks `first .. end` (absolute indexes).
    Range {
        first: u64,
        end: u64,
    },
}

#[derive(Debug, Clone)]
struct Get {
    circ: DlCircuit,
    kind: GetKind,
    /// First chunk of the range not yet received.
    next: u64,
    bytes: u64,
    sent_at: Instant,
    first_at: Option<Instant>,
    last_at: Instant,
    /// The end the ORDB was asked for, when the end game gave the range's tail to
    /// another circuit (`kind`'s end is then the new, nearer one).
    asked_end: Option<u64>,
    /// The same range asked on another circuit (a hedge): the first of the two to
    /// send a chunk keeps the range, the other is closed.
    twin: Option<GetId>,
}

#[derive(Debug)]
enum Content {
    /// Waiting for DB_CONNECTED.
    Unknown,
    File(FileVerifier),
    Live {
        v: LiveVerifier,
        ring: ChunkRing,
        /// Set once the join GET delivered a chunk.
        joined: bool,
        newest: u64,
    },
}

/// The scheduler of one download (file or live stream). See the module docs.
#[derive(Debug)]
pub struct Downloader {
    cfg: DownloadConfig,
    hash_name: Vec<u8>,
    live: bool,
    unix_at_zero: u64,
    content: Content,
    circuits: BTreeMap<DlCircuit, CircState>,
    gets: BTreeMap<GetId, Get>,
    next_get: u64,
    /// Ranges to ask again (start → end), disjoint from GETs in flight and `frontier..`.
    todo: BTreeMap<u64, u64>,
    /// First chunk never asked for.
    frontier: u64,
    /// Verified chunks not yet read by the application (`read_chunk ..`).
    ready: BTreeMap<u64, heapless::Vec<u8, MAX_CHUNK_DATA_LEN>>,
    /// The application's read position: chunk, and bytes of it already read.
    read_chunk: u64,
    read_off: usize,
    /// Live: bytes handed out since the join (the offset of a live read).
    live_read_bytes: u64,
    /// Live: chunks below this that are not buffered are lost (too old to be served):
    /// never asked again, skipped by the reader.
    live_lost: u64,
    held: Vec<(u64, u64)>,
    readable_signalled: bool,
    /// Sixteenths of the file verified when we last advertised.
    advertised: u64,
    failures: u32,
    /// When the last new chunk (or the manifest) was verified.
    last_progress: Option<Instant>,
    info_attempts: u64,
    hold_until: Option<Instant>,
    next_check: Option<Instant>,
    actions: VecDeque<DlAction>,
    /// What was verified and not yet taken by [`Downloader::poll_verified`] (files).
    verified: VecDeque<Verified>,
    stats: DownloadStats,
    done: bool,
    /// The window, in chunks (`DownloadConfig::window_time`).
    window: u64,
    /// Chunks verified so far, and the count and time the rate was last measured from.
    verified_count: u64,
    rate_mark: Option<(Instant, u64)>,
}

/// What the scheduler did beyond asking each range once (for counters and studies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadStats {
    /// Ranges asked on a second circuit because the first had not answered
    /// (PROTOCOL.md §10, "Hedge").
    pub hedges: u64,
    /// Hedges whose second GET sent the range's first chunk before the first GET.
    pub hedges_won: u64,
    /// Tails of the last ranges handed to an idle circuit (PROTOCOL.md §10, "End game").
    pub tail_splits: u64,
}

impl Downloader {
    /// A file download of `hash_name`. `held` lists chunk ranges (`start..end`, 0-based)
    /// the application already holds from an earlier run: they are never asked for nor
    /// handed out again.
    pub fn new_file(hash_name: &[u8], held: &[(u64, u64)], cfg: DownloadConfig) -> Downloader {
        Downloader::new(hash_name, false, 0, held, cfg)
    }

    /// A live stream of `hash_name`; `unix_at_zero` is the Unix time (s) of
    /// `Instant::ZERO`, for the segment timestamp checks.
    pub fn new_live(hash_name: &[u8], unix_at_zero: u64, cfg: DownloadConfig) -> Downloader {
        Downloader::new(hash_name, true, unix_at_zero, &[], cfg)
    }

    fn new(
        hash_name: &[u8],
        live: bool,
        unix_at_zero: u64,
        held: &[(u64, u64)],
        cfg: DownloadConfig,
    ) -> Downloader {
        Downloader {
            cfg,
            hash_name: hash_name.into(),
            live,
            unix_at_zero,
            content: Content::Unknown,
            circuits: BTreeMap::new(),
            gets: BTreeMap::new(),
            next_get: 1,
            todo: BTreeMap::new(),
            frontier: 0,
            ready: BTreeMap::new(),
            read_chunk: 0,
            read_off: 0,
            live_read_bytes: 0,
            live_lost: 0,
            held: held.iter().copied().filter(|(a, b)| a < b).collect(),
            readable_signalled: false,
            advertised: 0,
            failures: 0,
            last_progress: None,
            info_attempts: 0,
            hold_until: None,
            next_check: None,
            actions: VecDeque::new(),
            verified: VecDeque::new(),
            stats: DownloadStats::default(),
            done: false,
            window: cfg.window(),
            verified_count: 0,
            rate_mark: None,
        }
    }

    // ---- getters -----------------------------------------------------------------

    /// Hedges and end-game splits so far.
    pub fn stats(&self) -> DownloadStats {
        self.stats
    }

    /// The hash_name being fetched.
    pub fn hash_name(&self) -> &[u8] {
        &self.hash_name
    }

    /// True for a live stream.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// File size once the manifest is verified (`None` before, and for live streams).
    pub fn size(&self) -> Option<u64> {
        match &self.content {
            Content::File(v) => Some(v.manifest().size),
            _ => None,
        }
    }

    /// (verified chunks, total chunks) of a file; (0, 0) before the manifest or live.
    pub fn progress(&self) -> (u64, u64) {
        match &self.content {
            Content::File(v) => (v.verified_count(), v.n_chunks()),
            _ => (0, 0),
        }
    }

    /// True once the download ended (files).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// GETs in flight.
    pub fn gets_in_flight(&self) -> usize {
        self.gets.len()
    }

    /// GETs in flight on `circuit`.
    pub fn gets_on(&self, circuit: DlCircuit) -> usize {
        self.circuits.get(&circuit).map_or(0, |c| c.in_flight)
    }

    /// The circuit `get` runs on, if it is in flight.
    pub fn circuit_of(&self, get: GetId) -> Option<DlCircuit> {
        self.gets.get(&get).map(|g| g.circ)
    }

    /// Circuits tracked: (used, spare).
    pub fn circuit_counts(&self) -> (usize, usize) {
        let used = self.circuits.values().filter(|c| c.used).count();
        (used, self.circuits.len() - used)
    }

    /// Verified chunks buffered for the application.
    pub fn buffered_chunks(&self) -> usize {
        self.ready.len()
    }

    /// The window, in chunks: no chunk at or past the reader's position + this is asked.
    pub fn window_chunks(&self) -> u64 {
        self.window
    }

    /// The bound on [`Downloader::buffered_chunks`]: the largest a file's window may
    /// reach (a chunk asked before the window shrank still has its place).
    pub fn buffer_bound(&self) -> u64 {
        if self.live {
            self.window
        } else {
            self.cfg.window_max()
        }
    }

    /// The measured rate of `circuit`, bytes/s.
    pub fn rate_of(&self, circuit: DlCircuit) -> Option<u64> {
        self.circuits.get(&circuit).and_then(|c| c.rate)
    }

    // ---- driver --------------------------------------------------------------------

    /// The next verified item to keep in the chunk store, if any (see [`Verified`]).
    pub fn poll_verified(&mut self) -> Option<Verified> {
        self.verified.pop_front()
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<DlAction> {
        self.actions.pop_front()
    }

    /// When to call [`Downloader::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        let mut t = self.next_check;
        if let Some(h) = self.hold_until {
            t = Some(t.map_or(h, |x| x.min(h)));
        }
        if self.failures >= self.cfg.max_failures
            && let Some(p) = self.last_progress
        {
            let g = p + self.cfg.give_up_after;
            t = Some(t.map_or(g, |x| x.min(g)));
        }
        t
    }

    /// Time passed: stalled and slow circuits, retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.done {
            return;
        }
        if self.hold_until.is_some_and(|h| h <= now) {
            self.hold_until = None;
        }
        if self.next_check.is_some_and(|t| t <= now) {
            self.next_check = None;
            self.check_circuits(now);
        }
        self.check_failures(now);
        if self.done {
            return;
        }
        self.schedule(now);
    }

    /// An ORDB circuit is up and may be used.
    pub fn handle_circuit_up(&mut self, now: Instant, circuit: DlCircuit) {
        if self.done
            || self.circuits.contains_key(&circuit)
            || self.circuits.len() >= self.cfg.max_circuits
        {
            return;
        }
        self.circuits.insert(circuit, CircState::default());
        self.fill_used();
        self.schedule(now);
    }

    /// An ORDB circuit closed: its GETs are resumed elsewhere.
    pub fn handle_circuit_down(&mut self, now: Instant, circuit: DlCircuit) {
        if self.forget_circuit(circuit).is_some_and(|n| n > 0) {
            self.failures = self.failures.saturating_add(1);
            self.check_failures(now);
        }
        self.schedule(now);
    }

    /// DB_CONNECTED on `get`: the manifest.
    pub fn handle_connected(&mut self, now: Instant, get: GetId, msg: &DbConnected) {
        let Some(g) = self.gets.get(&get) else {
            return;
        };
        let circ = g.circ;
        let known = !matches!(self.content, Content::Unknown);
        let info = g.kind == GetKind::Info;
        if !info && known {
            // Every answer starts with the manifest; once it is verified, the others are
            // only looked at through the data they lead (which must verify against it).
            return;
        }
        if known {
            // A second info (the first round asks every circuit): already known.
            self.end_get(get, false);
            self.schedule(now);
            return;
        }
        let result = match Manifest::from_db_connected(msg) {
            Err(e) => Err(e),
            Ok(Manifest::File(m)) if !self.live => {
                FileVerifier::new(&self.hash_name, m, self.cfg.limits).map(Content::File)
            }
            Ok(Manifest::Live(m)) if self.live => {
                let ring = m.ring();
                LiveVerifier::new(&self.hash_name, m, self.cfg.limits).map(|v| Content::Live {
                    v,
                    ring,
                    joined: false,
                    newest: 0,
                })
            }
            Ok(_) => Err(VerifyError::BadManifest(
                "not the kind of content asked for",
            )),
        };
        match result {
            Ok(content) => {
                if let Ok(m) = Manifest::from_db_connected(msg) {
                    self.verified.push_back(Verified::Manifest(m));
                }
                self.content = content;
                self.last_progress = Some(now);
                self.measure_first(circ, now, get);
                // A first-round range GET goes on with its data; an info GET is done.
                // The other circuits' info GETs have done their work (their ORDBs found
                // the name): free those circuits for ranges at once. Their answers
                // arrive on forgotten streams.
                let infos: Vec<GetId> = self
                    .gets
                    .iter()
                    .filter(|(_, g)| g.kind == GetKind::Info)
                    .map(|(id, _)| *id)
                    .collect();
                for id in infos {
                    self.end_get(id, false);
                }
                self.on_manifest();
            }
            Err(e) if e.is_tampering() => {
                self.drop_circuit(circ, DropReason::Tampering(e));
            }
            Err(e) => {
                self.finish(Err(DlError::Refused(e)));
                return;
            }
        }
        self.schedule(now);
    }

    /// DB_HASHES on `get`.
    pub fn handle_hashes(&mut self, now: Instant, get: GetId, msg: &DbHashes) {
        let Some(g) = self.gets.get_mut(&get) else {
            return;
        };
        g.last_at = now;
        let circ = g.circ;
        let r = match &mut self.content {
            Content::File(v) => v.accept_hashes(msg),
            Content::Live { v, .. } => v.accept_hashes(msg),
            Content::Unknown => return,
        };
        if matches!(r, Ok(Accepted::New)) {
            self.verified.push_back(Verified::Hashes(msg.clone()));
        }
        self.take_released(now);
        self.on_verify_error(now, get, circ, r.err());
    }

    /// DB_SEGMENT on `get` (live streams).
    pub fn handle_segment(&mut self, now: Instant, get: GetId, msg: &DbSegment) {
        let Some(g) = self.gets.get_mut(&get) else {
            return;
        };
        g.last_at = now;
        let circ = g.circ;
        let now_secs = self.unix_secs(now);
        let r = match &mut self.content {
            Content::Live { v, .. } => v.accept_segment(msg, now_secs),
            _ => Err(VerifyError::BadSegment {
                segment: msg.segment,
            }),
        };
        if matches!(r, Ok(Accepted::New)) {
            self.verified.push_back(Verified::Segment(msg.clone()));
        }
        // Too old / too new is not proof of tampering: the GET is cut short instead.
        self.on_verify_error(now, get, circ, r.err());
    }

    /// DB_DATA on `get`.
    pub fn handle_data(&mut self, now: Instant, get: GetId, msg: DbData) {
        let Some(g) = self.gets.get(&get) else {
            return;
        };
        let circ = g.circ;
        let kind = g.kind;
        let asked_end = g.asked_end;
        let len = msg.data.len() as u64;
        let index = match &self.content {
            Content::Unknown => return,
            Content::File(_) => u64::from(msg.chunk).checked_sub(1),
            Content::Live { v, .. } => v.absolute_chunk(msg.chunk),
        };
        if let (GetKind::Range { end, .. }, Some(i), Some(asked)) = (kind, index, asked_end)
            && i >= end
            && i < asked
        {
            // The tail the end game asked elsewhere, sent before our DB_END arrived.
            return;
        }
        let in_range = match (kind, index) {
            (GetKind::Range { first, end }, Some(i)) => i >= first && i < end,
            (GetKind::Join, Some(_)) => true,
            _ => false,
        };
        let Some(index) = index.filter(|_| in_range) else {
            // Not what this GET asked for (checked before verifying, so that a chunk is
            // never counted verified without being buffered): the ORDB does not follow
            // the protocol, and it would let it fill our memory outside the window.
            let e = VerifyError::ChunkOutOfRange {
                index: index.unwrap_or(u64::from(msg.chunk)),
            };
            self.drop_circuit(circ, DropReason::Tampering(e));
            self.schedule(now);
            return;
        };
        let r = match &mut self.content {
            Content::Unknown => return,
            Content::File(v) => v.accept_db_data(&msg),
            Content::Live { v, .. } => v.accept_db_data(&msg),
        };
        match r {
            Ok(acc) => {
                if let Some(g) = self.gets.get_mut(&get) {
                    g.last_at = now;
                    g.bytes = g.bytes.saturating_add(len);
                }
                self.measure_first(circ, now, get);
                if let Some(t) = self.gets.get_mut(&get).and_then(|g| g.twin.take()) {
                    // The hedge is decided: this GET sends the range (the later of
                    // the two ids is the hedge).
                    if get > t {
                        self.stats.hedges_won += 1;
                    }
                    self.end_get(t, true);
                }
                if kind == GetKind::Join {
                    self.on_joined(index);
                }
                if acc == Accepted::New {
                    self.on_new_chunk(now, index, msg.data);
                }
                self.take_released(now);
                self.advance_get(now, get);
                self.after_chunk();
            }
            Err(e) => self.on_verify_error(now, get, circ, Some(e)),
        }
        self.schedule(now);
    }

    /// DB_END on `get`: the ORDB stopped (UNAVAILABLE, FINISHED, DESTROYED).
    pub fn handle_end(&mut self, now: Instant, get: GetId, reason: DbEndReason) {
        let Some(g) = self.gets.get(&get) else {
            return;
        };
        let circ = g.circ;
        // A first-round range past the start may lie beyond the end of a small file:
        // its UNAVAILABLE proves nothing against the circuit.
        let blind = matches!(self.content, Content::Unknown)
            && matches!(g.kind, GetKind::Range { first, .. } if first > 0);
        self.end_get(get, false);
        self.failures = self.failures.saturating_add(1);
        if reason == DbEndReason::UNAVAILABLE && !blind {
            if self.live && matches!(self.content, Content::Live { .. }) {
                // Chunks not produced yet: ask again a little later.
                self.hold_until = Some(now + self.cfg.live_retry);
            } else {
                self.strike(circ);
            }
        }
        self.check_failures(now);
        self.schedule(now);
    }

    /// Copy in-order verified bytes into `buf`: `(file offset, bytes copied)`, or `None`
    /// when nothing is ready. One call copies one contiguous run (it stops where chunks
    /// held from an earlier run, or skipped live chunks, are jumped over, so the offset
    /// is right for every byte). Reading slides the window.
    pub fn read(&mut self, now: Instant, buf: &mut [u8]) -> Option<(u64, usize)> {
        self.readable_signalled = false;
        self.skip_absent();
        let chunk_size = self.chunk_size();
        let start_chunk = self.read_chunk;
        let offset = if self.live {
            self.live_read_bytes
        } else {
            start_chunk
                .saturating_mul(chunk_size)
                .saturating_add(self.read_off as u64)
        };
        let mut n = 0;
        while n < buf.len() {
            let Some(data) = self.ready.get(&self.read_chunk) else {
                break;
            };
            let rest = data.get(self.read_off..).unwrap_or(&[]);
            let take = rest.len().min(buf.len() - n);
            if let (Some(dst), Some(src)) = (buf.get_mut(n..n + take), rest.get(..take)) {
                dst.copy_from_slice(src);
            }
            n += take;
            self.read_off += take;
            if self.read_off >= data.len() {
                self.ready.remove(&self.read_chunk);
                self.read_chunk += 1;
                self.read_off = 0;
            }
        }
        self.live_read_bytes = self.live_read_bytes.saturating_add(n as u64);
        self.after_chunk();
        self.schedule(now);
        (n > 0).then_some((offset, n))
    }

    // ---- internals ---------------------------------------------------------------------

    fn unix_secs(&self, now: Instant) -> u32 {
        let s = self
            .unix_at_zero
            .saturating_add(now.as_nanos() / 1_000_000_000);
        u32::try_from(s).unwrap_or(u32::MAX)
    }

    fn chunk_size(&self) -> u64 {
        match &self.content {
            Content::File(v) => u64::from(v.manifest().chunk_size),
            Content::Live { v, .. } => u64::from(v.manifest().chunk_size),
            Content::Unknown => 1,
        }
    }

    fn n_chunks(&self) -> Option<u64> {
        match &self.content {
            Content::File(v) => Some(v.n_chunks()),
            _ => None,
        }
    }

    /// Chunk `i` is verified (buffered, held, or already read).
    fn have(&self, i: u64) -> bool {
        if i < self.read_chunk || i < self.live_lost || self.ready.contains_key(&i) {
            return true;
        }
        match &self.content {
            Content::File(v) => v.is_verified(i),
            Content::Live { v, .. } => v.is_verified(i),
            // Before the manifest only the application's word counts (a restart's held
            // ranges): the first round must not ask them again.
            Content::Unknown => self.held.iter().any(|&(a, b)| a <= i && i < b),
        }
    }

    fn on_manifest(&mut self) {
        let (size, mime) = match &mut self.content {
            Content::File(v) => {
                for &(a, b) in &self.held {
                    for i in a..b.min(v.n_chunks()) {
                        v.mark_held(i);
                    }
                }
                (v.manifest().size, v.manifest().mime_type.clone())
            }
            Content::Live { v, .. } => (0, v.manifest().mime_type.clone()),
            Content::Unknown => return,
        };
        if let Some(n) = self.n_chunks() {
            self.clip_to(n);
        }
        self.held = Vec::new();
        self.actions.push_back(DlAction::Info { size, mime });
        self.after_chunk();
    }

    /// The file has `n` chunks: the first round's ranges were asked before that was
    /// known, so what lies beyond it is forgotten (closed, never asked again).
    fn clip_to(&mut self, n: u64) {
        let beyond: Vec<GetId> = self
            .gets
            .iter()
            .filter(|(_, g)| matches!(g.kind, GetKind::Range { first, .. } if first >= n))
            .map(|(id, _)| *id)
            .collect();
        for id in beyond {
            // Its range goes back to `todo`, trimmed below like every range.
            self.end_get(id, true);
        }
        for g in self.gets.values_mut() {
            if let GetKind::Range { end, .. } = &mut g.kind {
                *end = (*end).min(n);
            }
        }
        self.todo.retain(|&a, _| a < n);
        for e in self.todo.values_mut() {
            *e = (*e).min(n);
        }
        self.frontier = self.frontier.min(n);
    }

    fn on_joined(&mut self, abs: u64) {
        if let Content::Live { joined, newest, .. } = &mut self.content
            && !*joined
        {
            *joined = true;
            *newest = abs;
            self.read_chunk = abs;
            self.read_off = 0;
            self.frontier = abs;
        }
    }

    /// What a block checked as a whole verified: its leaf hashes and chunks.
    fn take_released(&mut self, now: Instant) {
        while let Content::File(v) = &mut self.content
            && let Some(r) = v.take_released()
        {
            match r {
                Released::Hashes(h) => self.verified.push_back(Verified::Hashes(h)),
                Released::Chunk(i, data) => self.on_new_chunk(now, i, data),
            }
        }
    }

    /// A newly verified chunk: to the store, and to the reader when in the window.
    fn on_new_chunk(&mut self, now: Instant, index: u64, data: ChunkBytes) {
        self.failures = 0;
        self.verified_count += 1;
        self.last_progress = Some(now);
        self.verified
            .push_back(Verified::Chunk(index, data.clone()));
        if let Content::Live { newest, .. } = &mut self.content {
            *newest = (*newest).max(index);
        }
        if index >= self.read_chunk && index < self.read_chunk.saturating_add(self.buffer_bound()) {
            self.ready.insert(index, data);
        }
    }

    /// After a chunk: move the GET's resume point; a finished GET is closed.
    fn advance_get(&mut self, now: Instant, get: GetId) {
        let Some(g) = self.gets.get(&get) else {
            return;
        };
        let (first, end) = match g.kind {
            GetKind::Range { first, end } => (first, end),
            GetKind::Join => {
                self.end_get(get, false);
                self.measure_done(now, get);
                return;
            }
            GetKind::Info => return,
        };
        let mut next = g.next.max(first);
        while next < end && self.have(next) {
            next += 1;
        }
        let cut = match self.gets.get_mut(&get) {
            Some(g) => {
                g.next = next;
                g.asked_end.is_some()
            }
            None => false,
        };
        if next >= end {
            self.measure_done(now, get);
            // A cut GET's ORDB would go on sending the tail: stop it.
            self.end_get(get, cut);
        }
    }

    /// Rate and delay samples when a GET finishes.
    fn measure_done(&mut self, now: Instant, get: GetId) {
        let Some(g) = self.gets.get(&get) else {
            return;
        };
        let sample = rate(g.bytes, now.saturating_duration_since(g.sent_at));
        let flowing = g
            .first_at
            .and_then(|f| rate(g.bytes, g.last_at.saturating_duration_since(f)));
        let Some(c) = self.circuits.get_mut(&g.circ) else {
            return;
        };
        if let Some(s) = sample {
            c.rate = Some(c.rate.map_or(s, |r| r / 2 + s / 2));
        }
        if let Some(s) = flowing {
            c.flow_rate = Some(c.flow_rate.map_or(s, |r| r / 2 + s / 2));
        }
    }

    fn measure_first(&mut self, circ: DlCircuit, now: Instant, get: GetId) {
        let Some(g) = self.gets.get_mut(&get) else {
            // The info GET was closed just before: no sample needed.
            return;
        };
        if g.first_at.is_some() {
            return;
        }
        g.first_at = Some(now);
        let d = now.saturating_duration_since(g.sent_at);
        if let Some(c) = self.circuits.get_mut(&circ) {
            c.delay = Some(c.delay.map_or(d, |x| x / 2 + d / 2));
        }
    }

    /// Skip what the reader cannot get: chunks held from an earlier run (files) and live
    /// chunks too far behind the newest.
    fn skip_absent(&mut self) {
        if self.read_off != 0 {
            return;
        }
        match &self.content {
            Content::File(v) => {
                let n = v.n_chunks();
                while self.read_chunk < n
                    && !self.ready.contains_key(&self.read_chunk)
                    && v.is_verified(self.read_chunk)
                {
                    self.read_chunk += 1;
                }
            }
            Content::Live {
                joined: true,
                newest,
                ..
            } => {
                while self.read_chunk < self.live_lost && !self.ready.contains_key(&self.read_chunk)
                {
                    self.read_chunk += 1;
                }
                let keep = self.window * u64::from(self.cfg.live_windows_kept.max(1));
                let oldest = newest.saturating_sub(keep);
                if self.read_chunk < oldest {
                    self.read_chunk = oldest;
                    let stale: Vec<u64> = self.ready.range(..oldest).map(|(k, _)| *k).collect();
                    for k in stale {
                        self.ready.remove(&k);
                    }
                    let old: Vec<(u64, u64)> =
                        self.todo.range(..oldest).map(|(a, b)| (*a, *b)).collect();
                    for (a, b) in old {
                        self.todo.remove(&a);
                        if b > oldest {
                            self.todo.insert(oldest, b);
                        }
                    }
                    self.frontier = self.frontier.max(oldest);
                }
            }
            _ => {}
        }
    }

    /// Readable / progress / advertise / done, after the state changed.
    fn after_chunk(&mut self) {
        self.skip_absent();
        if !self.readable_signalled && self.ready.contains_key(&self.read_chunk) {
            self.readable_signalled = true;
            self.actions.push_back(DlAction::Readable);
        }
        let Content::File(v) = &self.content else {
            return;
        };
        let (got, n) = (v.verified_count(), v.n_chunks().max(1));
        let sixteenths = got.saturating_mul(ADVERTISE_STEPS) / n;
        if sixteenths > self.advertised {
            self.advertised = sixteenths;
            // P is the seed's quarter, rounded down (at least 25 %: DB_INFO has no 0 %);
            // the exact share travels in the DB_INFO's HAVE.
            let p = Progress::of(sixteenths, ADVERTISE_STEPS).unwrap_or(Progress::Quarter);
            self.actions.push_back(DlAction::Advertise(p));
        }
        if v.is_complete() && self.read_chunk >= v.n_chunks() && !self.done {
            self.finish(Ok(()));
        }
    }

    fn finish(&mut self, result: Result<(), DlError>) {
        if self.done {
            return;
        }
        let gets: Vec<GetId> = self.gets.keys().copied().collect();
        for g in gets {
            self.end_get(g, true);
        }
        self.done = true;
        self.next_check = None;
        self.hold_until = None;
        self.actions.push_back(DlAction::Done(result));
    }

    /// Give up after `max_failures` failed GETs in a row; once the manifest is known,
    /// only if no new chunk came for `give_up_after` as well: a busy swarm (a saturated
    /// seeder, churning relays) fails many GETs and still delivers, and giving up would
    /// throw away the window's out-of-order chunks.
    fn check_failures(&mut self, now: Instant) {
        let starved = self
            .last_progress
            .is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.give_up_after);
        if self.failures >= self.cfg.max_failures && starved && !self.live {
            self.finish(Err(DlError::Unavailable));
        }
    }

    /// A verification outcome on `get` (None: fine).
    fn on_verify_error(
        &mut self,
        now: Instant,
        get: GetId,
        circ: DlCircuit,
        e: Option<VerifyError>,
    ) {
        let Some(e) = e else {
            return;
        };
        let stale = matches!(
            e,
            VerifyError::StaleTimestamp { .. } | VerifyError::StaleSegment { .. }
        );
        if e.is_tampering() {
            self.drop_circuit(circ, DropReason::Tampering(e));
        } else if stale && self.live {
            // The reader fell behind what is still served: give those chunks up (no
            // strike, the ORDB did nothing wrong) and move on.
            if let Some(GetKind::Range { end, .. }) = self.gets.get(&get).map(|g| g.kind) {
                self.live_lost = self.live_lost.max(end);
            }
            self.end_get(get, true);
            self.after_chunk();
        } else {
            // Hashes skipped, stale live data, over a limit: cut the GET short, ask the
            // rest elsewhere, and count it against the circuit.
            self.end_get(get, true);
            self.failures = self.failures.saturating_add(1);
            self.strike(circ);
            self.check_failures(now);
        }
        self.schedule(now);
    }

    fn strike(&mut self, circ: DlCircuit) {
        let Some(c) = self.circuits.get_mut(&circ) else {
            return;
        };
        c.strikes += 1;
        if c.strikes >= self.cfg.max_strikes {
            self.drop_circuit(circ, DropReason::Strikes);
        }
    }

    /// Close `get`, putting what it did not deliver back to be asked again.
    fn end_get(&mut self, get: GetId, send_end: bool) {
        let Some(g) = self.gets.remove(&get) else {
            return;
        };
        if let Some(c) = self.circuits.get_mut(&g.circ) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
        let twin_asks = g
            .twin
            .and_then(|t| self.gets.get_mut(&t))
            .map(|t| t.twin = None)
            .is_some();
        if let GetKind::Range { first, end } = g.kind
            && !twin_asks
        {
            let mut i = g.next.max(first);
            while i < end {
                while i < end && self.have(i) {
                    i += 1;
                }
                let start = i;
                while i < end && !self.have(i) {
                    i += 1;
                }
                if start < i && i > self.read_chunk {
                    self.todo.insert(start.max(self.read_chunk), i);
                }
            }
        }
        self.actions.push_back(DlAction::CloseGet {
            get,
            circuit: g.circ,
            send_end,
        });
    }

    /// Forget `circ` and its GETs; how many GETs it had (`None`: unknown circuit).
    fn forget_circuit(&mut self, circ: DlCircuit) -> Option<usize> {
        if !self.circuits.contains_key(&circ) {
            return None;
        }
        let gets: Vec<GetId> = self
            .gets
            .iter()
            .filter(|(_, g)| g.circ == circ)
            .map(|(id, _)| *id)
            .collect();
        let n = gets.len();
        for g in gets {
            self.end_get(g, false);
        }
        self.circuits.remove(&circ);
        self.fill_used();
        Some(n)
    }

    fn drop_circuit(&mut self, circ: DlCircuit, reason: DropReason) {
        if self.forget_circuit(circ).is_some() {
            self.actions.push_back(DlAction::ReplaceCircuit {
                circuit: circ,
                reason,
            });
        }
    }

    /// Promote spares until `circuits` are used.
    fn fill_used(&mut self) {
        let mut used = self.circuits.values().filter(|c| c.used).count();
        for c in self.circuits.values_mut() {
            if used >= self.cfg.circuits {
                break;
            }
            if !c.used {
                c.used = true;
                used += 1;
            }
        }
    }

    /// The rate `circ` shows now: its running GET's if measurable, else its history.
    fn current_rate(&self, now: Instant, circ: DlCircuit) -> Option<u64> {
        let running = self
            .gets
            .values()
            .filter(|g| g.circ == circ && matches!(g.kind, GetKind::Range { .. }))
            .filter(|g| !self.awaits_production(g))
            .filter(|g| now.saturating_duration_since(g.sent_at) >= self.cfg.measure_after)
            .filter_map(|g| rate(g.bytes, now.saturating_duration_since(g.sent_at)))
            .max();
        let hist = self.circuits.get(&circ)?.rate;
        match (running, hist) {
            (Some(r), Some(h)) => Some(r.min(h)),
            (r, h) => r.or(h),
        }
    }

    /// A live GET for chunks past the newest one verified: the ORDB sends them as the
    /// seeder produces them, so neither its silence nor its rate says anything about
    /// the circuit.
    fn awaits_production(&self, g: &Get) -> bool {
        match (&self.content, g.kind) {
            (Content::Live { newest, .. }, GetKind::Range { .. }) => g.next > *newest,
            _ => false,
        }
    }

    /// How long a GET on `circ` may go without data: 4 × the circuit's measured
    /// response delay (a circuit not measured yet: the slowest measured one's), within
    /// `stall_timeout ..= stall_timeout_max`.
    fn stall_after(&self, circ: DlCircuit) -> Duration {
        let delay = self
            .circuits
            .get(&circ)
            .and_then(|c| c.delay)
            .or_else(|| self.circuits.values().filter_map(|c| c.delay).max());
        let floor = self.cfg.stall_timeout;
        delay
            .map_or(floor, |d| d.saturating_mul(4).max(floor))
            .min(self.cfg.stall_timeout_max.max(floor))
    }

    /// A file's window holds `window_time` of data at the rate measured over the last
    /// `RATE_PERIOD`, within `window_blocks ..= window_blocks_max`. Why: a GET at the
    /// window's start holds the window until it is in (its path's round trip, ~1 s,
    /// more behind a queue), and a window shorter than that at the download's rate
    /// leaves circuits idle and cuts GETs to slivers. Off by default (PROTOCOL.md §10).
    fn size_window(&mut self, now: Instant) {
        if self.live {
            return;
        }
        let Some((at, count)) = self.rate_mark else {
            self.rate_mark = Some((now, self.verified_count));
            return;
        };
        let elapsed = now.saturating_duration_since(at);
        if elapsed < RATE_PERIOD {
            return;
        }
        self.rate_mark = Some((now, self.verified_count));
        let chunks = u128::from(self.verified_count.saturating_sub(count));
        let want = chunks * self.cfg.window_time.as_nanos() / elapsed.as_nanos().max(1);
        let want = u64::try_from(want).unwrap_or(u64::MAX);
        self.window = want.clamp(self.cfg.window(), self.cfg.window_max());
    }

    /// Stalled GETs and slow circuits.
    fn check_circuits(&mut self, now: Instant) {
        self.size_window(now);
        let stalled: Vec<DlCircuit> = self
            .gets
            .values()
            .filter(|g| !self.awaits_production(g))
            .filter(|g| now.saturating_duration_since(g.last_at) >= self.stall_after(g.circ))
            .map(|g| g.circ)
            .collect();
        for c in stalled {
            self.failures = self.failures.saturating_add(1);
            self.drop_circuit(c, DropReason::Stalled);
        }
        self.check_failures(now);
        let busy: Vec<DlCircuit> = self
            .circuits
            .iter()
            .filter(|(_, s)| s.used)
            .map(|(c, _)| *c)
            .collect();
        let mut rates: Vec<(u64, DlCircuit)> = busy
            .iter()
            .filter_map(|&c| Some((self.current_rate(now, c)?, c)))
            .collect();
        if rates.len() >= 3 {
            rates.sort();
            let median = rates.get(rates.len() / 2).map_or(0, |r| r.0);
            // At most one circuit per check: replacing costs a circuit build.
            if let Some(&(r, c)) = rates.first()
                && r.saturating_mul(self.cfg.slow_factor) < median
                && self.gets_on(c) > 0
            {
                self.drop_circuit(c, DropReason::Slow);
            }
        }
    }

    /// Window end: no chunk at or beyond it is asked for.
    fn window_end(&self) -> u64 {
        let mut end = self.read_chunk.saturating_add(self.window);
        // A live GET names its first chunk by its wire number, which an ORDB resolves
        // nearest to its own newest chunk: asked more than half a ring ahead, it would
        // serve an old chunk instead (out of range here: the circuit dropped). A quarter
        // ring (an ORDB's window) ahead of the newest chunk is always unambiguous.
        if let Content::Live {
            ring,
            newest,
            joined: true,
            ..
        } = &self.content
        {
            let ahead = u64::from(ring.size() / 4).max(1);
            end = end.min(newest.saturating_add(1).saturating_add(ahead));
        }
        self.n_chunks().map_or(end, |n| end.min(n))
    }

    /// The next range to ask for, taken out of `todo` / `frontier`.
    fn pick_range(&mut self) -> Option<(u64, u64)> {
        let block = u64::from(self.cfg.block_chunks.max(1));
        let win_end = self.window_end();
        while let Some((&s, &e)) = self.todo.first_key_value() {
            if s >= win_end {
                break;
            }
            self.todo.remove(&s);
            let mut a = s;
            while a < e && self.have(a) {
                a += 1;
            }
            if a >= e {
                continue;
            }
            let mut b = a;
            let lim = e.min(a + block).min(win_end);
            while b < lim && !self.have(b) {
                b += 1;
            }
            if b < e {
                self.todo.insert(b, e);
            }
            return Some((a, b));
        }
        while self.frontier < win_end && self.have(self.frontier) {
            self.frontier += 1;
        }
        if self.frontier >= win_end {
            return None;
        }
        let a = self.frontier;
        let lim = win_end.min(a + block);
        let mut b = a;
        while b < lim && !self.have(b) {
            b += 1;
        }
        let at_end = self.n_chunks().is_some_and(|n| b >= n);
        // Not a sliver cut by the window while other GETs run: wait for it to slide.
        if b - a < block / 4 && b == win_end && !at_end && !self.gets.is_empty() {
            return None;
        }
        self.frontier = b;
        Some((a, b))
    }

    /// Circuits that may take a GET now, best first.
    fn candidates(&self, now: Instant) -> Vec<DlCircuit> {
        let mut idle: Vec<(u64, DlCircuit)> = Vec::new();
        let mut early: Vec<(u64, DlCircuit)> = Vec::new();
        for (&c, s) in &self.circuits {
            if !s.used {
                continue;
            }
            let r = self.current_rate(now, c);
            // Unmeasured circuits first: measure every circuit.
            let key = u64::MAX - r.unwrap_or(u64::MAX);
            if s.in_flight == 0 {
                idle.push((key, c));
            } else if s.in_flight < self.cfg.pipeline.max(1) && self.drains_soon(now, c, s) {
                early.push((key, c));
            }
        }
        idle.sort();
        early.sort();
        idle.into_iter().chain(early).map(|(_, c)| c).collect()
    }

    /// What `c` has asked will have arrived within 1.5 × its response delay: a GET
    /// sent now starts to flow as the circuit runs dry. A GET not answered yet counts
    /// until its expected first chunk, then what is left of all of them drains at the
    /// circuit's transfer rate (one GET of 420 chunks flows in ~0.2 s on a free path,
    /// while an answer takes 0.6–1 s to start: waiting for the first chunk before
    /// asking again left circuits idle most of each round trip).
    fn drains_soon(&self, now: Instant, c: DlCircuit, s: &CircState) -> bool {
        let (Some(delay), Some(rate)) = (s.delay, s.flow_rate.or(s.rate)) else {
            return false;
        };
        if rate == 0 {
            return false;
        }
        let cs = self.chunk_size();
        let mut starts_in = Duration::ZERO;
        let mut left: u64 = 0;
        for g in self.gets.values().filter(|g| g.circ == c) {
            let GetKind::Range { end, .. } = g.kind else {
                return false;
            };
            left = left.saturating_add(end.saturating_sub(g.next).saturating_mul(cs));
            if g.first_at.is_none() {
                let first = g.sent_at + delay;
                starts_in = starts_in.max(first.saturating_duration_since(now));
            }
        }
        starts_in.saturating_add(time_to_send(left, rate)) <= delay.saturating_mul(3) / 2
    }

    fn send_get(&mut self, now: Instant, circ: DlCircuit, kind: GetKind) -> GetId {
        let id = GetId(self.next_get);
        self.next_get += 1;
        let (chunk_nb, nb_chunks, next) = match kind {
            GetKind::Info => (1, 0, 0),
            GetKind::Join => (0, 1, 0),
            GetKind::Range { first, end } => {
                let nb = u16::try_from(end - first).unwrap_or(u16::MAX);
                let nb_wire = match &self.content {
                    Content::Live { ring, .. } => u64::from(ring.to_wire(first)),
                    _ => first + 1,
                };
                (nb_wire, nb, first)
            }
        };
        if let Some(c) = self.circuits.get_mut(&circ) {
            c.in_flight += 1;
        }
        self.gets.insert(
            id,
            Get {
                circ,
                kind,
                next,
                bytes: 0,
                sent_at: now,
                first_at: None,
                last_at: now,
                asked_end: None,
                twin: None,
            },
        );
        self.actions.push_back(DlAction::SendGet {
            get: id,
            circuit: circ,
            chunk_nb,
            nb_chunks,
        });
        id
    }

    /// Send what can be sent now.
    fn schedule(&mut self, now: Instant) {
        if self.done {
            return;
        }
        let first_step = match &self.content {
            Content::Unknown => Some(GetKind::Info),
            Content::Live { joined: false, .. } => Some(GetKind::Join),
            _ => None,
        };
        if let Some(kind) = first_step {
            if kind == GetKind::Info && self.hold_until.is_none() {
                // First round: every used circuit asks at once, so each of their ORDBs
                // looks the name up (FIND_VALUE, a circuit to a holder) in parallel; the
                // first verified manifest wins. A file's first round asks ranges (the
                // window's first blocks, one per circuit): every answer starts with the
                // manifest, so the data follows it without another round trip. A live
                // stream must learn its ring first, and asks for the info alone.
                let fresh: Vec<DlCircuit> = self
                    .circuits
                    .iter()
                    .filter(|(_, s)| s.used && !s.first_round && s.in_flight == 0)
                    .map(|(c, _)| *c)
                    .collect();
                for c in fresh {
                    if let Some(s) = self.circuits.get_mut(&c) {
                        s.first_round = true;
                    }
                    self.info_attempts += 1;
                    let range = if self.live { None } else { self.pick_range() };
                    let kind = range.map_or(kind, |(first, end)| GetKind::Range { first, end });
                    self.send_get(now, c, kind);
                }
            }
            // Any GET in flight brings the manifest; retries go one at a time.
            let waiting = match kind {
                GetKind::Info => !self.gets.is_empty(),
                _ => self.gets.values().any(|g| g.kind == kind),
            };
            if !waiting && self.hold_until.is_none() {
                // Rotate through the used circuits on retries.
                let used: Vec<DlCircuit> = self
                    .circuits
                    .iter()
                    .filter(|(_, s)| s.used)
                    .map(|(c, _)| *c)
                    .collect();
                if !used.is_empty() {
                    let c = used[(self.info_attempts % used.len() as u64) as usize];
                    self.info_attempts += 1;
                    self.send_get(now, c, kind);
                }
            }
        } else if self.hold_until.is_none() {
            for c in self.candidates(now) {
                if let Some((a, b)) = self.pick_range_for_live(now) {
                    self.send_get(now, c, GetKind::Range { first: a, end: b });
                } else if !self.split_tail(now, c) && !self.hedge(now, c) {
                    break;
                }
            }
        }
        if !self.gets.is_empty() && self.next_check.is_none() {
            self.next_check = Some(now + Duration::from_secs(1));
        }
    }

    /// The end game: every chunk of the file is asked for and circuit `c` has nothing
    /// to do. The GET with the most chunks still to send gives the second half of them
    /// to `c`, unless its circuit would send them within `c`'s response delay; it is
    /// closed once it holds the first half. Without it, a download's last block came
    /// from one circuit while the others idled.
    fn split_tail(&mut self, now: Instant, c: DlCircuit) -> bool {
        let Some(n) = self.n_chunks() else {
            return false;
        };
        if self.live || !self.todo.is_empty() || self.frontier < n || self.gets_on(c) > 0 {
            return false;
        }
        // (chunks left, GET, its circuit, first chunk not received, end)
        let Some((left, id, circ, next, end)) = self
            .gets
            .iter()
            .filter(|(_, g)| g.circ != c && g.twin.is_none())
            .filter_map(|(&id, g)| match g.kind {
                GetKind::Range { end, .. } => {
                    Some((end.saturating_sub(g.next), id, g.circ, g.next, end))
                }
                _ => None,
            })
            .max_by_key(|&(left, id, ..)| (left, core::cmp::Reverse(id)))
        else {
            return false;
        };
        if left < SPLIT_MIN_CHUNKS {
            return false;
        }
        let rate = self
            .circuits
            .get(&circ)
            .and_then(|s| s.flow_rate.or(s.rate))
            .filter(|r| *r > 0);
        let delay = self
            .circuits
            .get(&c)
            .and_then(|s| s.delay)
            .unwrap_or(Duration::from_secs(1));
        if rate.is_some_and(|r| time_to_send(left.saturating_mul(self.chunk_size()), r) <= delay) {
            return false;
        }
        let mid = next + left / 2;
        if let Some(g) = self.gets.get_mut(&id)
            && let GetKind::Range { first, .. } = g.kind
        {
            g.kind = GetKind::Range { first, end: mid };
            g.asked_end.get_or_insert(end);
        }
        self.send_get(now, c, GetKind::Range { first: mid, end });
        self.stats.tail_splits += 1;
        true
    }

    /// The window cannot slide and circuit `c` has nothing to do: the window's first
    /// range in flight has had no answer for twice `c`'s response delay (at least
    /// 1 s). Ask that range on `c` as well; the first GET to send a chunk keeps it.
    /// A GET at the window's start whose ORDB is slow to answer (a lookup, a queue at
    /// its holder) otherwise held every circuit idle until it came (`swarm`: 3 s of an
    /// 8 s download).
    fn hedge(&mut self, now: Instant, c: DlCircuit) -> bool {
        let Some(delay) = self.circuits.get(&c).and_then(|s| s.delay) else {
            return false;
        };
        if self.live || self.gets_on(c) > 0 {
            return false;
        }
        let Some((&id, g)) = self
            .gets
            .iter()
            .filter(|(_, g)| matches!(g.kind, GetKind::Range { .. }))
            .min_by_key(|(_, g)| g.next)
        else {
            return false;
        };
        let waited = now.saturating_duration_since(g.sent_at);
        if g.circ == c
            || g.first_at.is_some()
            || g.twin.is_some()
            || waited < delay.saturating_mul(2).max(Duration::from_secs(1))
        {
            return false;
        }
        let kind = g.kind;
        let twin = self.send_get(now, c, kind);
        if let Some(g) = self.gets.get_mut(&id) {
            g.twin = Some(twin);
        }
        if let Some(t) = self.gets.get_mut(&twin) {
            t.twin = Some(id);
        }
        self.stats.hedges += 1;
        true
    }

    /// A range to ask; on a live ring a range never wraps (wire numbers stay consecutive).
    fn pick_range_for_live(&mut self, _now: Instant) -> Option<(u64, u64)> {
        let (a, b) = self.pick_range()?;
        if let Content::Live { ring, .. } = &self.content {
            let size = u64::from(ring.size().max(1));
            let wrap = (a / size + 1) * size;
            if b > wrap {
                self.todo.insert(wrap, b);
                return Some((a, wrap));
            }
        }
        Some((a, b))
    }

    /// Check the scheduler's invariants (tests and fuzzing): GETs per circuit, disjoint
    /// ranges, the window bound on buffered data.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let pipeline = self.cfg.pipeline.max(1);
        let mut used = 0;
        for (c, s) in &self.circuits {
            let n = self.gets.values().filter(|g| g.circ == *c).count();
            if n != s.in_flight {
                return Err("in-flight count out of sync");
            }
            if n > pipeline {
                return Err("more GETs on a circuit than pipelining allows");
            }
            if s.used {
                used += 1;
            } else if n > 0 {
                return Err("a GET on a spare circuit");
            }
        }
        if used > self.cfg.circuits {
            return Err("too many circuits used");
        }
        if self.gets.len() > pipeline * used {
            return Err("more GETs in flight than circuits allow");
        }
        if self
            .gets
            .values()
            .any(|g| !self.circuits.contains_key(&g.circ))
        {
            return Err("a GET on an unknown circuit");
        }
        if self.ready.len() as u64 > self.buffer_bound() {
            return Err("buffered beyond the window");
        }
        if self
            .ready
            .keys()
            .next()
            .is_some_and(|&k| k < self.read_chunk)
        {
            return Err("a chunk behind the reader is buffered");
        }
        for (id, g) in &self.gets {
            if let Some(t) = g.twin
                && self
                    .gets
                    .get(&t)
                    .is_none_or(|t| t.twin != Some(*id) || t.kind != g.kind)
            {
                return Err("a hedge without its twin");
            }
        }
        // Ranges in flight and to do are disjoint, and all below the frontier.
        let mut ranges: Vec<(u64, u64)> = self
            .gets
            .iter()
            // Twins ask the same range: count it once.
            .filter(|(id, g)| g.twin.is_none_or(|t| t > **id))
            .map(|(_, g)| g)
            .filter_map(|g| match g.kind {
                GetKind::Range { first, end } => Some((first, end)),
                _ => None,
            })
            .chain(self.todo.iter().map(|(a, b)| (*a, *b)))
            .collect();
        ranges.sort();
        for w in ranges.windows(2) {
            if w[0].1 > w[1].0 {
                return Err("overlapping ranges");
            }
        }
        if ranges.last().is_some_and(|r| r.1 > self.frontier) {
            return Err("a range beyond the frontier");
        }
        Ok(())
    }
}

/// How long `bytes` take at `rate` bytes/s (`rate` > 0).
fn time_to_send(bytes: u64, rate: u64) -> Duration {
    u64::try_from(u128::from(bytes) * 1_000_000_000 / u128::from(rate.max(1)))
        .map_or(Duration::MAX, Duration::from_nanos)
}

/// Bytes per second, if the duration is measurable.
fn rate(bytes: u64, d: Duration) -> Option<u64> {
    let ns = d.as_nanos();
    if ns == 0 {
        return None;
    }
    u64::try_from(u128::from(bytes) * 1_000_000_000 / ns).ok()
}

#[cfg(test)]
mod tests;
