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

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::cells::relay::{HashName, Progress};
use crate::circuit::CircKey;

/// A peer that has (part of) a name, reached over `circ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PeerRef {
    pub(super) circ: CircKey,
    pub(super) progress: Progress,
    pub(super) facilitator: bool,
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
            e.progress = r.progress;
            e.facilitator = r.facilitator;
            return new;
        }
        if list.refs.len() >= refs_per_name.max(1) {
            list.refs.pop_front();
        }
        list.refs.push_back(r);
        new
    }

    /// The first reference of `name` whose circuit `valid` accepts, moved to the end of
    /// the list; invalid ones met on the way are dropped. `skip` references are valid
    /// but not wanted now (the requester's own circuit): they stay in place.
    pub(super) fn take(
        &mut self,
        name: &HashName,
        mut valid: impl FnMut(CircKey) -> bool,
        skip: &[CircKey],
    ) -> Option<PeerRef> {
        let list = self.names.get_mut(name)?;
        let mut i = 0;
        while i < list.refs.len() {
            let r = list.refs[i];
            if skip.contains(&r.circ) {
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
        PeerRef {
            circ: CircKey(i),
            progress: Progress::Full,
            facilitator: false,
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
        let got = l.take(&n, |c| c != CircKey(1), &[]).unwrap();
        assert_eq!(got.circ, CircKey(2));
        let order: Vec<u64> = l.refs(&n).iter().map(|r| r.circ.0).collect();
        assert_eq!(order, [3, 2]);
        // The requester's own circuit is skipped, not dropped.
        let got = l.take(&n, |_| true, &[CircKey(3)]).unwrap();
        assert_eq!(got.circ, CircKey(2));
        assert_eq!(l.refs(&n).len(), 2);
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
