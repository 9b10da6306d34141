//! Downloads in the node: [`Command::Get`] / [`Command::GetLive`] run an
//! [`ordb::Downloader`](crate::ordb::Downloader) over the node's ORDB circuits
//! (PROTOCOL.md §10).
//!
//! The glue only moves things between the scheduler and the circuits:
//! - every `SendGet` becomes a DB_QUERY on a fresh stream id of the ORDB circuit;
//!   DB_CONNECTED, DB_HASHES, DB_SEGMENT, DB_DATA and DB_END on that stream go back to the
//!   scheduler under the GET's id;
//! - flow control: one DB_SENDME `chunks = 50` per 50 DB_DATA received on a stream (the
//!   ORDB's window starts at 100 chunks), sent on receipt since the scheduler never asks
//!   for more than its window;
//! - `ReplaceCircuit` destroys the circuit and asks the Peersm layer for a new ORDB
//!   circuit at once; ORDB circuits coming up or going down are reported to every
//!   download;
//! - at each sixteenth of the file (25/50/75/100 % among them) the node sends DB_INFO,
//!   with the chunks it holds from the start (HAVE), on its ORDB circuits;
//! - the application pulls the in-order bytes with [`Node::read_content`] after
//!   [`Event::ContentReadable`]; what is buffered is bounded by the scheduler's window.

use alloc::collections::BTreeMap;
#[cfg(test)]
use alloc::vec::Vec;

use super::Node;
use super::Timer;
use super::api::{Command, CommandError, CommandOk, DownloadHandle, Event};
use super::counters::Count;
use crate::Instant;
use crate::cells::channel::DestroyReason;
use crate::cells::relay::{
    DbEnd, DbEndReason, DbQuery, DbSendme, HashName, Progress, RelayMsg, StreamId,
};
use crate::circuit::CircKey;
use crate::ordb::{DlAction, DlCircuit, DownloadStats, Downloader, DropReason, GetId};

/// DB_DATA cells received on a stream between two DB_SENDMEs.
pub const DB_SENDME_EVERY: u16 = super::ordb::SENDME_CHUNKS;
/// The ORDB's initial chunk window on a DB_QUERY stream (what it may send unacknowledged).
pub const DB_WINDOW: u16 = super::ordb::STREAM_WINDOW;
// A DB_SENDME goes out when a fifth of the window is used, so the ORDB never waits a
// round trip.
const _: () = assert!(DB_SENDME_EVERY * 5 == DB_WINDOW);
/// Downloads running at once.
const MAX_DOWNLOADS: usize = 8;

struct Active {
    dl: Downloader,
    hash_name: HashName,
    timer: Option<Instant>,
    progress: u64,
    /// The scheduler's stats as last counted.
    counted: DownloadStats,
}

/// Which GET a stream carries.
#[derive(Debug, Clone, Copy)]
struct StreamRef {
    handle: u64,
    get: GetId,
    unacked: u16,
}

/// The node's downloads.
#[derive(Default)]
pub(super) struct Downloads {
    next: u64,
    active: BTreeMap<u64, Active>,
    streams: BTreeMap<(CircKey, StreamId), StreamRef>,
    by_get: BTreeMap<(u64, GetId), (CircKey, StreamId)>,
    /// Cells the glue sent (tests look at them).
    #[cfg(test)]
    pub(super) sent: Vec<(CircKey, crate::cells::relay::RelayCell)>,
}

impl Node {
    // ---- commands --------------------------------------------------------------------

    pub(super) fn download_command(&mut self, cmd: Command) -> Result<CommandOk, CommandError> {
        if self.peersm.is_none() {
            return Err(CommandError::NotAPeer);
        }
        let cfg = self.config.peersm.as_ref().map(|p| p.ordb.download);
        let cfg = cfg.unwrap_or_default();
        let (hash_name, dl) = match cmd {
            Command::Get { hash_name, held } => {
                let dl = Downloader::new_file(hash_name.as_bytes(), &held, cfg);
                (hash_name, dl)
            }
            Command::GetLive { hash_name } => {
                let dl =
                    Downloader::new_live(hash_name.as_bytes(), self.config.unix_time_at_zero, cfg);
                (hash_name, dl)
            }
            Command::CancelGet(h) => {
                self.drop_download(h.0, true);
                return Ok(CommandOk::Done);
            }
            _ => return Err(CommandError::BadPath),
        };
        if self.downloads.active.len() >= MAX_DOWNLOADS {
            self.counters.bump(super::counters::Count::DhtRefused);
            return Err(CommandError::Limit);
        }
        self.downloads.next += 1;
        let h = self.downloads.next;
        self.downloads.active.insert(
            h,
            Active {
                dl,
                hash_name,
                timer: None,
                progress: 0,
                counted: DownloadStats::default(),
            },
        );
        let now = self.now;
        for (key, _) in self.ordb_circuit_list() {
            if let Some(a) = self.downloads.active.get_mut(&h) {
                a.dl.handle_circuit_up(now, DlCircuit(key.0));
            }
        }
        self.drive_download(h);
        Ok(CommandOk::Download(DownloadHandle(h)))
    }

    /// Copy in-order verified bytes of a download into `buf`: `(offset, bytes)` (see
    /// [`Downloader::read`]); `None` when nothing is ready or no such download.
    pub fn read_content(&mut self, handle: DownloadHandle, buf: &mut [u8]) -> Option<(u64, usize)> {
        let now = self.now;
        let r = self.downloads.active.get_mut(&handle.0)?.dl.read(now, buf);
        self.drive_download(handle.0);
        r
    }

    /// (verified chunks, total chunks) of a file download.
    pub fn content_progress(&self, handle: DownloadHandle) -> Option<(u64, u64)> {
        self.downloads
            .active
            .get(&handle.0)
            .map(|a| a.dl.progress())
    }

    // ---- hooks from the circuit layer ---------------------------------------------------

    /// A client circuit was built: if it is an ORDB circuit, every download may use it.
    pub(super) fn on_download_circuit_built(&mut self, key: CircKey) {
        if self.downloads.active.is_empty() || !self.is_ordb_circuit(key) {
            return;
        }
        let now = self.now;
        let handles: alloc::vec::Vec<u64> = self.downloads.active.keys().copied().collect();
        for h in handles {
            if let Some(a) = self.downloads.active.get_mut(&h) {
                a.dl.handle_circuit_up(now, DlCircuit(key.0));
            }
            self.drive_download(h);
        }
    }

    /// A client circuit closed: its GETs are resumed elsewhere.
    pub(super) fn on_download_circuit_closed(&mut self, key: CircKey) {
        if self.downloads.active.is_empty() {
            return;
        }
        let gone: alloc::vec::Vec<(CircKey, StreamId)> = self
            .downloads
            .streams
            .range((key, StreamId::MIN)..=(key, StreamId::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            if let Some(s) = self.downloads.streams.remove(&k) {
                self.downloads.by_get.remove(&(s.handle, s.get));
            }
        }
        let now = self.now;
        let handles: alloc::vec::Vec<u64> = self.downloads.active.keys().copied().collect();
        for h in handles {
            if let Some(a) = self.downloads.active.get_mut(&h) {
                a.dl.handle_circuit_down(now, DlCircuit(key.0));
            }
            self.drive_download(h);
        }
    }

    /// True when (`key`, `sid`) carries one of our GETs.
    pub(super) fn is_download_stream(&self, key: CircKey, sid: Option<StreamId>) -> bool {
        sid.is_some_and(|s| self.downloads.streams.contains_key(&(key, s)))
    }

    /// An answer on one of our GET streams.
    pub(super) fn on_download_reply(&mut self, key: CircKey, sid: Option<StreamId>, msg: RelayMsg) {
        let Some(sid) = sid else {
            return;
        };
        let Some(s) = self.downloads.streams.get_mut(&(key, sid)) else {
            return;
        };
        let (h, get) = (s.handle, s.get);
        let mut sendme = false;
        if matches!(msg, RelayMsg::DbData(_)) {
            s.unacked += 1;
            if s.unacked >= DB_SENDME_EVERY {
                s.unacked = 0;
                sendme = true;
            }
        }
        if matches!(msg, RelayMsg::DbEnd(_)) {
            self.downloads.streams.remove(&(key, sid));
            self.downloads.by_get.remove(&(h, get));
        }
        if sendme {
            let m = DbSendme {
                chunks: DB_SENDME_EVERY,
            };
            self.circ_send(key, Some(sid), m.into());
        }
        let now = self.now;
        let Some(a) = self.downloads.active.get_mut(&h) else {
            return;
        };
        match msg {
            RelayMsg::DbConnected(m) => a.dl.handle_connected(now, get, &m),
            RelayMsg::DbHashes(m) => a.dl.handle_hashes(now, get, &m),
            RelayMsg::DbSegment(m) => a.dl.handle_segment(now, get, &m),
            RelayMsg::DbData(m) => a.dl.handle_data(now, get, m),
            RelayMsg::DbEnd(m) => a.dl.handle_end(now, get, m.reason),
            _ => {}
        }
        self.drive_download(h);
    }

    pub(super) fn on_download_timer(&mut self, h: u64) {
        let now = self.now;
        if let Some(a) = self.downloads.active.get_mut(&h) {
            a.timer = None;
            a.dl.handle_timeout(now);
        }
        self.drive_download(h);
    }

    // ---- internals -------------------------------------------------------------------

    /// Add what download `h`'s scheduler did since the last call (hedges, end-game
    /// splits) to the node's counters.
    fn count_download_stats(&mut self, h: u64) {
        let Some(a) = self.downloads.active.get_mut(&h) else {
            return;
        };
        let now = a.dl.stats();
        let was = core::mem::replace(&mut a.counted, now);
        self.counters
            .add(Count::DownloadHedge, now.hedges - was.hedges);
        self.counters
            .add(Count::DownloadHedgeWon, now.hedges_won - was.hedges_won);
        self.counters
            .add(Count::DownloadTailSplit, now.tail_splits - was.tail_splits);
    }

    /// Carry out what download `h` asks for, then re-arm its timer.
    fn drive_download(&mut self, h: u64) {
        self.keep_verified(h);
        loop {
            let Some(a) = self.downloads.active.get_mut(&h) else {
                return;
            };
            let Some(action) = a.dl.poll_action() else {
                break;
            };
            match action {
                DlAction::SendGet {
                    get,
                    circuit,
                    chunk_nb,
                    nb_chunks,
                } => {
                    let key = CircKey(circuit.0);
                    let msg = DbQuery {
                        hash_name: a.hash_name.clone(),
                        chunk: chunk_nb,
                        nb_chunks,
                        counter: 0,
                    };
                    // No free id (the circuit is saturated): the GET stalls and the
                    // scheduler moves it to another circuit.
                    let Some(sid) = self.fresh_sid(key, 0) else {
                        continue;
                    };
                    let r = StreamRef {
                        handle: h,
                        get,
                        unacked: 0,
                    };
                    self.downloads.streams.insert((key, sid), r);
                    self.downloads.by_get.insert((h, get), (key, sid));
                    self.circ_send(key, Some(sid), msg.into());
                }
                DlAction::CloseGet { get, send_end, .. } => {
                    if let Some((key, sid)) = self.downloads.by_get.remove(&(h, get)) {
                        self.downloads.streams.remove(&(key, sid));
                        if send_end {
                            let end = DbEnd {
                                reason: DbEndReason::FINISHED,
                            };
                            self.circ_send(key, Some(sid), end.into());
                        }
                    }
                }
                DlAction::ReplaceCircuit { circuit, reason } => {
                    self.counters.bump(match reason {
                        DropReason::Tampering(_) => Count::DownloadTampering,
                        DropReason::Slow => Count::DownloadCircuitSlow,
                        DropReason::Stalled => Count::DownloadCircuitStalled,
                        DropReason::Strikes => Count::DownloadCircuitStrikes,
                    });
                    let key = CircKey(circuit.0);
                    if let DropReason::Tampering(_) = reason
                        && let Some(ordb) = self.ordb_of_circuit(key)
                    {
                        // Our circuit's middle hop cannot alter cells unseen (relay
                        // digests), and ORDBs check what they relay: the ORDB did it.
                        self.convict(ordb);
                    }
                    if self.is_ordb_circuit(key) {
                        self.destroy_circuit(key, DestroyReason::FINISHED, None);
                        self.replace_ordb_circuits();
                    }
                }
                DlAction::Info { size, mime } => self.emit(Event::ContentInfo {
                    handle: DownloadHandle(h),
                    size,
                    mime,
                }),
                DlAction::Readable => self.emit(Event::ContentReadable(DownloadHandle(h))),
                DlAction::Advertise(p) => {
                    let name = a.hash_name.clone();
                    match <[u8; 20]>::try_from(name.as_bytes()) {
                        // Whole and in the store: a seeder like any other, in the DHT
                        // too, under our own record (PROTOCOL.md §9, "Seeding", says
                        // why not only through our ORDBs yet).
                        Ok(n20) if p == Progress::Full && self.holds_whole(&n20) => {
                            self.announce_whole(n20, true)
                        }
                        _ => self.advertise(&name, p),
                    }
                }
                DlAction::Done(result) => {
                    self.count_download_stats(h);
                    self.emit(Event::ContentDone {
                        handle: DownloadHandle(h),
                        result,
                    });
                    self.drop_download(h, false);
                    return;
                }
            }
        }
        self.count_download_stats(h);
        let Some(a) = self.downloads.active.get_mut(&h) else {
            return;
        };
        let (got, total) = a.dl.progress();
        let permille = got.saturating_mul(1000) / total.max(1);
        let progress_event = (total > 0 && permille != a.progress).then(|| {
            a.progress = permille;
            Event::ContentProgress {
                handle: DownloadHandle(h),
                verified_chunks: got,
                total_chunks: total,
            }
        });
        let want = a.dl.poll_timeout();
        let old = a.timer;
        if want != old {
            a.timer = want;
            if let Some(t) = old {
                self.timers.remove(&(t, Timer::Download(h)));
            }
            if let Some(t) = want {
                self.timers.insert((t, Timer::Download(h)));
            }
        }
        if let Some(e) = progress_event {
            self.emit(e);
        }
    }

    /// Put what download `h` verified into the chunk store, so this node serves it too.
    /// A full store (pinned content) only means we do not re-serve: the download goes on.
    fn keep_verified(&mut self, h: u64) {
        let Some(a) = self.downloads.active.get(&h) else {
            return;
        };
        let Ok(name) = <[u8; 20]>::try_from(a.hash_name.as_bytes()) else {
            return;
        };
        while let Some(v) = self
            .downloads
            .active
            .get_mut(&h)
            .and_then(|a| a.dl.poll_verified())
        {
            self.keep_verified_item(&name, v);
        }
    }

    /// Whether the chunk store holds every chunk of file `name`.
    fn holds_whole(&self, name: &[u8; 20]) -> bool {
        let Some(store) = self.chunk_store() else {
            return false;
        };
        match store.manifest(name) {
            Some(crate::ordb::Manifest::File(m)) => store.has_range(name, 0, m.n_chunks()),
            _ => false,
        }
    }

    /// Forget download `h` and its streams (DB_END FINISHED on them when `end_streams`).
    fn drop_download(&mut self, h: u64, end_streams: bool) {
        let Some(a) = self.downloads.active.remove(&h) else {
            return;
        };
        if let Some(t) = a.timer {
            self.timers.remove(&(t, Timer::Download(h)));
        }
        let mine: alloc::vec::Vec<((u64, GetId), (CircKey, StreamId))> = self
            .downloads
            .by_get
            .range((h, GetId(0))..=(h, GetId(u64::MAX)))
            .map(|(k, v)| (*k, *v))
            .collect();
        for (k, (key, sid)) in mine {
            self.downloads.by_get.remove(&k);
            self.downloads.streams.remove(&(key, sid));
            if end_streams {
                let end = DbEnd {
                    reason: DbEndReason::FINISHED,
                };
                self.circ_send(key, Some(sid), end.into());
            }
        }
    }
}

#[cfg(test)]
mod tests;
