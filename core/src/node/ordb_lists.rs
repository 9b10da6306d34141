//! The ORDB's OR_files_P / OR_streams_P lists (seed, "Handling the lists in the ORDBs"):
//! per hash_name, the circuits of peers that said (DB_INFO) they have it.
//!
//! - One map serves both lists: a DB_INFO does not say whether a name is a file or a live
//!   stream, so an ORDB cannot sort them; the server at the end of the chain knows.
//! - A reference is a circuit (the advertiser's ORDB circuit to us, or a circuit we built
//!   to a holder), never copied; a query takes the first valid one and moves it to the end
//!   (rotation spreads load). Circuits that broke are not searched for (the seed: "the
//!   ORDBs do not update the lists if circuits break"); they are dropped when a query
//!   meets them.
//! - Bounded: `max_names` names (the least recently advertised is forgotten) and
//!   `refs_per_name` references per name (the oldest is forgotten).
//! - `told` records which of our own ORDB circuits we passed the name on to, so each is
//!   told once (the seed: "only when ... the ORDBs they are connected to don't know it").
//! - Range-aware: a query for chunks `first..end` takes the first reference that holds
//!   them, as far as we know: its DB_INFO's HAVE (chunks held from the start) reaches
//!   `end`, and it did not answer UNAVAILABLE for that part within [`MISS_MEMORY`].
//!   References that do not hold the range keep their place.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use core::time::Duration;

use crate::Instant;
use crate::cells::relay::{DbInfo, HashName, Progress};
use crate::circuit::CircKey;

/// How long a reference that answered UNAVAILABLE from a chunk on is not asked for that
/// chunk or later ones (it is downloading: it may hold them soon).
pub(super) const MISS_MEMORY: Duration = Duration::from_secs(10);

/// A peer that has (part of) a name, reached over `circ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PeerRef {
    pub(super) circ: CircKey,
    pub(super) progress: Progress,
    pub(super) facilitator: bool,
    /// Chunks it holds from the file's start (DB_INFO's HAVE); `None`: all of it, as far
    /// as we know.
    pub(super) have: Option<u64>,
    /// It answered UNAVAILABLE for a range from this chunk, at this time.
    pub(super) missed: Option<(u64, Instant)>,
    /// The peer told us itself (DB_INFO on its circuit to us), rather than the DHT
    /// naming it as a holder.
    pub(super) direct: bool,
}

impl PeerRef {
    /// The peer on `circ` that sent us `info`.
    pub(super) fn advertised(circ: CircKey, info: &DbInfo) -> PeerRef {
        PeerRef {
            circ,
            progress: info.progress,
            facilitator: info.facilitator,
            have: info.have.map(u64::from),
            missed: None,
            direct: true,
        }
    }

    /// A holder the DHT named, reached over `circ`: the whole file, as far as we know.
    pub(super) fn found(circ: CircKey) -> PeerRef {
        PeerRef {
            circ,
            progress: Progress::Full,
            facilitator: false,
            have: None,
            missed: None,
            direct: false,
        }
    }

    /// Whether it is a reference `wanted` may take: it holds chunks up to `end`
    /// (exclusive) as far as we know at `now`.
    fn serves(&self, wanted: Wanted) -> bool {
        let Wanted {
            end,
            now,
            direct_only,
        } = wanted;
        (self.direct || !direct_only)
            && self.have.is_none_or(|h| end <= h)
            && self
                .missed
                .is_none_or(|(from, at)| end <= from || now >= at + MISS_MEMORY)
    }
}

/// The chunks a forwarded query asks for, to pick a reference that holds them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wanted {
    /// One past the last chunk asked (0: the file info only, which every holder has).
    pub(super) end: u64,
    /// The current time (misses are remembered for [`MISS_MEMORY`]).
    pub(super) now: Instant,
    /// Only references that advertised themselves to us: a query another ORDB sent us
    /// goes one step further at most, to a holder that told us, never on through the
    /// DHT's holders (the asker finds those itself).
    pub(super) direct_only: bool,
}

#[derive(Debug, Default)]
pub(super) struct RefList {
    refs: VecDeque<PeerRef>,
    /// Our ORDB circuits this name was passed on to.
    told: Vec<CircKey>,
    /// When the list last gained a reference (for eviction).
    seq: u64,
}

/// The lists of one ORDB.
#[derive(Debug, Default)]
pub(super) struct OrdbLists {
    names: BTreeMap<HashName, RefList>,
    seq: u64,
    /// Circuits of peers that said (DB_INFO with F = 1) they are facilitators, oldest
    /// first: the seed's fallback when a FIND finds no holder ("the ORDB sends the
    /// request to several facilitators").
    facilitators: VecDeque<CircKey>,
}

impl OrdbLists {
    /// Names held.
    pub(super) fn len(&self) -> usize {
        self.names.len()
    }

    /// References held in all.
    pub(super) fn total_refs(&self) -> usize {
        self.names.values().map(|l| l.refs.len()).sum()
    }

    /// Add (or refresh) a reference; `true` when the name is new to the lists.
    pub(super) fn add(
        &mut self,
        name: &HashName,
        r: PeerRef,
        max_names: usize,
        refs_per_name: usize,
    ) -> bool {
        self.seq += 1;
        let seq = self.seq;
        let new = !self.names.contains_key(name);
        if new && self.names.len() >= max_names.max(1) {
            let oldest = self
                .names
                .iter()
                .min_by_key(|(_, l)| l.seq)
                .map(|(n, _)| n.clone());
            if let Some(n) = oldest {
                self.names.remove(&n);
            }
        }
        let list = self.names.entry(name.clone()).or_default();
        list.seq = seq;
        if let Some(e) = list.refs.iter_mut().find(|e| e.circ == r.circ) {
            // News from (or about) the peer: what it misses may have come since.
            *e = r;
            return new;
        }
        if list.refs.len() >= refs_per_name.max(1) {
            list.refs.pop_front();
        }
        list.refs.push_back(r);
        new
    }

    /// The first reference of `name` whose circuit `valid` accepts and that holds what is
    /// `wanted`, moved to the end of the list; invalid ones met on the way are dropped.
    /// `skip` references are valid but not wanted now (the requester's own circuit), and
    /// those that do not hold the range are not wanted now either: they stay in place.
    pub(super) fn take(
        &mut self,
        name: &HashName,
        mut valid: impl FnMut(CircKey) -> bool,
        skip: &[CircKey],
        wanted: Wanted,
    ) -> Option<PeerRef> {
        let list = self.names.get_mut(name)?;
        let mut i = 0;
        while i < list.refs.len() {
            let r = list.refs[i];
            if skip.contains(&r.circ) || !r.serves(wanted) {
                i += 1;
                continue;
            }
            if !valid(r.circ) {
                list.refs.remove(i);
                continue;
            }
            list.refs.remove(i);
            list.refs.push_back(r);
            return Some(r);
        }
        None
    }

    /// The reference on `circ` answered UNAVAILABLE for a range of `name` from `first`:
    /// not asked for it again for a while.
    pub(super) fn missed(&mut self, name: &HashName, circ: CircKey, first: u64, now: Instant) {
        if let Some(r) = self
            .names
            .get_mut(name)
            .and_then(|l| l.refs.iter_mut().find(|r| r.circ == circ))
        {
            r.missed = Some((first, now));
        }
    }

    /// The most of `name` a peer that told us itself (DB_INFO) holds, among those whose
    /// circuit `live` accepts; `None` when none is left.
    pub(super) fn told_progress(
        &self,
        name: &HashName,
        live: impl Fn(CircKey) -> bool,
    ) -> Option<Progress> {
        self.names
            .get(name)?
            .refs
            .iter()
            .filter(|r| r.direct && live(r.circ))
            .map(|r| r.progress)
            .max()
    }

    /// Whether a reference of `name` said it holds only part of it: the name is a file
    /// some of whose holders we know are still downloading it.
    pub(super) fn has_partial(&self, name: &HashName) -> bool {
        self.names
            .get(name)
            .is_some_and(|l| l.refs.iter().any(|r| r.have.is_some()))
    }

    /// Of `ordbs` (our ORDB circuits), those not yet told about `name`; they are marked
    /// told.
    pub(super) fn mark_told(&mut self, name: &HashName, ordbs: &[CircKey]) -> Vec<CircKey> {
        let Some(list) = self.names.get_mut(name) else {
            return Vec::new();
        };
        // Forget circuits that are no longer ours (replaced ORDB circuits get told anew).
        list.told.retain(|c| ordbs.contains(c));
        let out: Vec<CircKey> = ordbs
            .iter()
            .copied()
            .filter(|c| !list.told.contains(c))
            .collect();
        list.told.extend(out.iter().copied());
        out
    }

    /// Remember `circ` as a facilitator's (refreshed to the end; the oldest is forgotten
    /// past `max`).
    pub(super) fn add_facilitator(&mut self, circ: CircKey, max: usize) {
        self.facilitators.retain(|c| *c != circ);
        if self.facilitators.len() >= max.max(1) {
            self.facilitators.pop_front();
        }
        self.facilitators.push_back(circ);
    }

    /// Up to `n` facilitator circuits `valid` accepts, not in `skip`; each taken one is
    /// rotated to the end (load spreads), invalid ones are forgotten.
    pub(super) fn take_facilitators(
        &mut self,
        n: usize,
        mut valid: impl FnMut(CircKey) -> bool,
        skip: &[CircKey],
    ) -> Vec<CircKey> {
        self.facilitators.retain(|c| valid(*c));
        let out: Vec<CircKey> = self
            .facilitators
            .iter()
            .copied()
            .filter(|c| !skip.contains(c))
            .take(n)
            .collect();
        self.facilitators.retain(|c| !out.contains(c));
        self.facilitators.extend(out.iter().copied());
        out
    }

    /// Facilitator circuits known (for tests and inspection).
    pub(super) fn facilitator_count(&self) -> usize {
        self.facilitators.len()
    }

    /// References of `name` (for tests and inspection).
    pub(super) fn refs(&self, name: &HashName) -> Vec<PeerRef> {
        self.names
            .get(name)
            .map_or_else(Vec::new, |l| l.refs.iter().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(i: u64) -> PeerRef {
        adv(i, None)
    }

    /// The reference of a peer that advertised holding `have` chunks (`None`: all).
    fn adv(i: u64, have: Option<u32>) -> PeerRef {
        let info = DbInfo {
            hash_name: HashName::new(b"file").unwrap(),
            progress: Progress::Full,
            facilitator: false,
            have,
        };
        PeerRef::advertised(CircKey(i), &info)
    }

    fn any(end: u64) -> Wanted {
        Wanted {
            end,
            now: Instant::ZERO,
            direct_only: false,
        }
    }

    #[test]
    fn rotation_takes_first_valid_and_moves_it_last() {
        let mut l = OrdbLists::default();
        let n = HashName::new(b"abcd").unwrap();
        assert!(l.add(&n, r(1), 8, 4));
        assert!(!l.add(&n, r(2), 8, 4));
        l.add(&n, r(3), 8, 4);
        // 1 is broken: dropped; 2 taken and moved to the end.
        let got = l.take(&n, |c| c != CircKey(1), &[], any(0)).unwrap();
        assert_eq!(got.circ, CircKey(2));
        let order: Vec<u64> = l.refs(&n).iter().map(|r| r.circ.0).collect();
        assert_eq!(order, [3, 2]);
        // The requester's own circuit is skipped, not dropped.
        let got = l.take(&n, |_| true, &[CircKey(3)], any(0)).unwrap();
        assert_eq!(got.circ, CircKey(2));
        assert_eq!(l.refs(&n).len(), 2);
    }

    #[test]
    fn a_query_takes_a_reference_that_holds_its_range() {
        let mut l = OrdbLists::default();
        let n = HashName::new(b"file").unwrap();
        // 1 holds the first 100 chunks, 2 the first 300, 3 all of it.
        l.add(&n, adv(1, Some(100)), 8, 4);
        l.add(&n, adv(2, Some(300)), 8, 4);
        l.add(&n, r(3), 8, 4);
        assert!(l.has_partial(&n));
        let take = |l: &mut OrdbLists, end, now| {
            let wanted = Wanted {
                end,
                now,
                direct_only: false,
            };
            l.take(&n, |_| true, &[], wanted).map(|r| r.circ.0)
        };
        let t0 = Instant::ZERO;
        assert_eq!(take(&mut l, 100, t0), Some(1));
        assert_eq!(take(&mut l, 200, t0), Some(2));
        // The info (end 0) and chunks up to 300: the rotation goes on among holders.
        assert_eq!(take(&mut l, 0, t0), Some(3));
        assert_eq!(take(&mut l, 300, t0), Some(2));
        assert_eq!(take(&mut l, 301, t0), Some(3));
        // 3 answered UNAVAILABLE from chunk 500: skipped for 500.. for a while, not
        // before; after MISS_MEMORY it is asked again.
        l.missed(&n, CircKey(3), 500, t0);
        assert_eq!(take(&mut l, 600, t0), None);
        assert_eq!(take(&mut l, 400, t0), Some(3));
        assert_eq!(take(&mut l, 600, t0 + MISS_MEMORY), Some(3));
        // A new DB_INFO from a peer replaces what we knew of it (its miss too).
        l.missed(&n, CircKey(1), 50, t0);
        l.add(&n, adv(1, Some(700)), 8, 4);
        assert_eq!(take(&mut l, 650, t0), Some(1));
        // A holder the DHT named is not taken for a query another ORDB sent us.
        l.add(&n, PeerRef::found(CircKey(4)), 8, 4);
        let from_ordb = Wanted {
            end: 800,
            now: t0,
            direct_only: true,
        };
        assert_eq!(l.take(&n, |_| true, &[], from_ordb), None);
        assert!(take(&mut l, 800, t0).is_some());
        // None left partial: the name is no longer known as one being downloaded.
        l.add(&n, r(1), 8, 4);
        l.add(&n, r(2), 8, 4);
        assert!(!l.has_partial(&n));
    }

    #[test]
    fn bounded_names_and_refs() {
        let mut l = OrdbLists::default();
        for i in 0..20u8 {
            let n = HashName::new(&[i]).unwrap();
            for j in 0..10 {
                l.add(&n, r(j), 5, 3);
            }
        }
        assert_eq!(l.len(), 5);
        assert_eq!(l.total_refs(), 15);
    }

    #[test]
    fn facilitators_are_bounded_rotated_and_pruned() {
        let mut l = OrdbLists::default();
        for i in 1..=5 {
            l.add_facilitator(CircKey(i), 4);
        }
        // 1 was forgotten (bound 4); 3 broke; 2 is the requester's own circuit.
        assert_eq!(l.facilitator_count(), 4);
        let got = l.take_facilitators(2, |c| c != CircKey(3), &[CircKey(2)]);
        assert_eq!(got, [CircKey(4), CircKey(5)]);
        assert_eq!(l.facilitator_count(), 3);
        // Rotated: the next take starts with the one not used last time.
        assert_eq!(l.take_facilitators(1, |_| true, &[]), [CircKey(2)]);
        // Re-advertising refreshes, never duplicates.
        l.add_facilitator(CircKey(4), 4);
        assert_eq!(l.facilitator_count(), 3);
    }

    #[test]
    fn each_ordb_told_once() {
        let mut l = OrdbLists::default();
        let n = HashName::new(b"x").unwrap();
        l.add(&n, r(9), 8, 4);
        let ordbs = [CircKey(1), CircKey(2)];
        assert_eq!(l.mark_told(&n, &ordbs), ordbs);
        assert!(l.mark_told(&n, &ordbs).is_empty());
        assert_eq!(l.mark_told(&n, &[CircKey(2), CircKey(5)]), [CircKey(5)]);
    }
}
