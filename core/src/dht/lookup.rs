//! The iterative Kademlia lookup (FIND_NODE and FIND_VALUE) as a state machine.
//!
//! The node asks [`Lookup::next`] whom to contact, sends DHT_FIND_NODE / DHT_FIND_VALUE,
//! and feeds back what comes: [`Lookup::on_response`] for each DHT_FOUND of closer nodes
//! (an answer of up to 8 peers spans several cells: each is fed as it arrives, the last
//! with `is_final`), [`Lookup::on_value`] for holders of the value, [`Lookup::on_failure`]
//! when the circuit or stream fails. Peers a partial answer names can be contacted at
//! once.
//!
//! At most `alpha` requests are in flight. A peer that does not answer within
//! `peer_timeout` stops counting toward `alpha` (so a slow peer does not stall the lookup)
//! but its late answer is still used. The lookup ends when the `k` closest peers it knows
//! (failed ones skipped) have all answered, when nobody is left to ask, after
//! `max_contacts` requests, or for FIND_VALUE once `max_lookup_holders` holders are known.
//!
//! FIND_VALUE does not stop at the first holder (the seed connects "as soon as it
//! receives" one): the node may start a download from the holders each
//! [`Lookup::on_value`] returns while the lookup goes on collecting more, so downloads do
//! not all go to the first holder found.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::time::Duration;

use super::DhtConfig;
use super::distance::{Distance, Key};
use crate::Instant;
use crate::cells::relay::PeerRecord;
use crate::crypto::identity::PeerId;

/// Which question the lookup asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// DHT_FIND_NODE: the peers closest to the target.
    FindNode,
    /// DHT_FIND_VALUE: peers holding the value stored at the target.
    FindValue,
}

/// Where a candidate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Known, not asked yet.
    NotContacted,
    /// Asked; counts toward `alpha` until `deadline`.
    Waiting {
        /// When it stops counting toward `alpha`.
        deadline: Instant,
    },
    /// Asked and timed out; a late answer is still used.
    Unresponsive,
    /// Answered in full.
    Succeeded,
    /// Its request failed.
    Failed,
}

/// What the node should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the request to this peer.
    Contact(PeerRecord),
    /// Nothing to send now: call [`Lookup::next`] again on an answer or at `until`.
    Wait {
        /// The earliest per-peer deadline.
        until: Option<Instant>,
    },
    /// The lookup is over: read [`Lookup::closest`] and [`Lookup::holders`].
    Finished,
}

#[derive(Debug, Clone)]
struct Candidate {
    record: PeerRecord,
    distance: Distance,
    state: PeerState,
    /// Length of the chain of answers that led to it: 1 for a starting peer.
    depth: u32,
    /// Peers it listed so far (capped per peer).
    listed: usize,
    /// It listed a peer closer to the target than itself.
    returned_closer: bool,
}

/// An iterative lookup of the peers closest to a key (and, for FIND_VALUE, of the value's
/// holders).
#[derive(Debug, Clone)]
pub struct Lookup {
    kind: LookupKind,
    target: Key,
    local: PeerId,
    /// Sorted by distance to `target`, closest first; at most `max_candidates`.
    candidates: Vec<Candidate>,
    holders: Vec<PeerRecord>,
    /// Every peer asked (at most `max_contacts`): one pruned from the candidates and
    /// listed again is not asked twice.
    contacted: BTreeSet<PeerId>,
    in_flight: usize,
    contacts: usize,
    k: usize,
    alpha: usize,
    peer_timeout: Duration,
    max_candidates: usize,
    max_contacts: usize,
    max_holders: usize,
    finished: bool,
    latest: Instant,
}

/// Peers taken from one answer (the seed: "n (<=8) peers"); more are ignored, so a peer
/// cannot flood the candidate set.
const MAX_LISTED_PER_PEER: usize = crate::cells::relay::MAX_FOUND_PEERS;

impl Lookup {
    /// A lookup of `target` for `local`, starting from `seeds` (typically
    /// [`super::RoutingTable::closest`]; the local id is never a candidate).
    pub fn new(
        kind: LookupKind,
        local: PeerId,
        target: Key,
        seeds: impl IntoIterator<Item = PeerRecord>,
        config: &DhtConfig,
    ) -> Lookup {
        let k = config.k.max(1);
        let mut l = Lookup {
            kind,
            target,
            local,
            candidates: Vec::new(),
            holders: Vec::new(),
            contacted: BTreeSet::new(),
            in_flight: 0,
            contacts: 0,
            k,
            alpha: config.alpha.max(1),
            peer_timeout: config.peer_timeout,
            max_candidates: config.max_candidates.max(k),
            max_contacts: config.max_contacts.max(1),
            max_holders: config.max_lookup_holders.max(1),
            finished: false,
            latest: Instant::ZERO,
        };
        for s in seeds {
            l.add_candidate(s, 1);
        }
        l
    }

    /// Another starting peer (a bootstrap's further entry points); ignored once the
    /// lookup is over or if known already.
    pub fn add_peer(&mut self, record: PeerRecord) {
        if !self.finished {
            self.add_candidate(record, 1);
        }
    }

    /// The question asked.
    pub fn kind(&self) -> LookupKind {
        self.kind
    }

    /// The key searched.
    pub fn target(&self) -> Key {
        self.target
    }

    fn position(&self, id: &PeerId) -> Option<usize> {
        self.candidates.iter().position(|c| c.record.id == *id)
    }

    /// Adds a candidate in distance order, keeping only the `max_candidates` closest
    /// (never dropping one that counts toward `alpha`). True if it is new.
    fn add_candidate(&mut self, record: PeerRecord, depth: u32) -> bool {
        if record.id == self.local
            || self.contacted.contains(&record.id)
            || self.position(&record.id).is_some()
        {
            return false;
        }
        let distance = self.target.distance(&Key::from(record.id));
        let at = self.candidates.partition_point(|c| c.distance < distance);
        self.candidates.insert(
            at,
            Candidate {
                record,
                distance,
                state: PeerState::NotContacted,
                depth,
                listed: 0,
                returned_closer: false,
            },
        );
        while self.candidates.len() > self.max_candidates {
            let Some(i) = self
                .candidates
                .iter()
                .rposition(|c| !matches!(c.state, PeerState::Waiting { .. }))
            else {
                break;
            };
            self.candidates.remove(i);
        }
        true
    }

    /// What to do now: contact a peer, wait, or stop. Call it until it returns `Wait` or
    /// `Finished`, after every answer, failure and deadline.
    pub fn next(&mut self, now: Instant) -> Action {
        let now = {
            self.latest = self.latest.max(now);
            self.latest
        };
        if self.finished {
            return Action::Finished;
        }
        for c in &mut self.candidates {
            if let PeerState::Waiting { deadline } = c.state
                && deadline <= now
            {
                c.state = PeerState::Unresponsive;
                self.in_flight -= 1;
            }
        }
        if self.holders.len() >= self.max_holders {
            return self.finish();
        }
        // Walk the closest first. Done once `k` answered with nobody closer still being
        // asked; otherwise ask the closest not yet asked while there is room.
        let mut succeeded = 0;
        let mut counting = true;
        let mut contact = None;
        for (i, c) in self.candidates.iter().enumerate() {
            match c.state {
                PeerState::Succeeded if counting => {
                    succeeded += 1;
                    if succeeded >= self.k {
                        return self.finish();
                    }
                }
                PeerState::Succeeded => {}
                PeerState::Waiting { .. } => counting = false,
                PeerState::NotContacted => {
                    if self.in_flight < self.alpha && self.contacts < self.max_contacts {
                        contact = Some(i);
                    }
                    break;
                }
                PeerState::Unresponsive | PeerState::Failed => {}
            }
        }
        if let Some(i) = contact {
            let deadline = now + self.peer_timeout;
            let c = &mut self.candidates[i];
            c.state = PeerState::Waiting { deadline };
            self.in_flight += 1;
            self.contacts += 1;
            self.contacted.insert(c.record.id);
            return Action::Contact(c.record.clone());
        }
        if self.in_flight == 0 {
            return self.finish();
        }
        let until = self
            .candidates
            .iter()
            .filter_map(|c| match c.state {
                PeerState::Waiting { deadline } => Some(deadline),
                _ => None,
            })
            .min();
        Action::Wait { until }
    }

    fn finish(&mut self) -> Action {
        self.finished = true;
        self.in_flight = 0;
        for c in &mut self.candidates {
            if let PeerState::Waiting { .. } = c.state {
                c.state = PeerState::Unresponsive;
            }
        }
        Action::Finished
    }

    /// Ends the lookup now (the node gave up on it).
    pub fn cancel(&mut self) {
        self.finish();
    }

    /// The lookup is over.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Marks `candidates[i]`'s answer complete.
    fn complete(&mut self, i: usize) {
        match self.candidates[i].state {
            PeerState::Waiting { .. } => {
                self.in_flight -= 1;
                self.candidates[i].state = PeerState::Succeeded;
            }
            PeerState::Unresponsive => self.candidates[i].state = PeerState::Succeeded,
            _ => {}
        }
    }

    /// Index of `peer` if an answer from it is expected (asked, not yet complete).
    fn answering(&self, peer: &PeerId) -> Option<usize> {
        let i = self.position(peer)?;
        match self.candidates[i].state {
            PeerState::Waiting { .. } | PeerState::Unresponsive => Some(i),
            _ => None,
        }
    }

    /// One DHT_FOUND of closer nodes from `peer`; `is_final` on the last cell of its
    /// answer. Answers from peers not asked, or already complete, are ignored (false).
    /// After the lookup finished, answers are still accepted, for [`Self::never_closer`].
    pub fn on_response(&mut self, peer: &PeerId, peers: &[PeerRecord], is_final: bool) -> bool {
        let Some(i) = self.answering(peer) else {
            return false;
        };
        self.take_listed(i, peers);
        // New candidates may sit before it now: find it again. It is still there, as
        // pruning spares awaited peers and it was awaited (or the lookup, finished, adds
        // nobody).
        if is_final && let Some(i) = self.position(peer) {
            self.complete(i);
        }
        true
    }

    /// Adds the peers `candidates[i]` listed (up to the per-peer cap).
    fn take_listed(&mut self, i: usize, peers: &[PeerRecord]) {
        let c = &self.candidates[i];
        let (own, depth) = (c.distance, c.depth.saturating_add(1));
        let room = MAX_LISTED_PER_PEER.saturating_sub(c.listed);
        let taken = &peers[..peers.len().min(room)];
        let closer = taken
            .iter()
            .any(|p| self.target.distance(&Key::from(p.id)) < own);
        {
            let c = &mut self.candidates[i];
            c.listed += taken.len();
            c.returned_closer |= closer;
        }
        if self.finished {
            return;
        }
        for p in taken {
            self.add_candidate(p.clone(), depth);
        }
    }

    /// One DHT_FOUND of holders of the value from `peer` (FIND_VALUE); `is_final` on the
    /// last cell of its answer. Returns the holders not seen before (up to
    /// `max_lookup_holders` in all): the node may start downloading from them at once.
    pub fn on_value(
        &mut self,
        peer: &PeerId,
        holders: &[PeerRecord],
        is_final: bool,
    ) -> &[PeerRecord] {
        let start = self.holders.len();
        let Some(i) = self.answering(peer) else {
            return &[];
        };
        let c = &mut self.candidates[i];
        let room = MAX_LISTED_PER_PEER.saturating_sub(c.listed);
        let taken = &holders[..holders.len().min(room)];
        c.listed += taken.len();
        // Knowing the value is as good an answer as knowing closer peers.
        c.returned_closer |= !taken.is_empty();
        for h in taken {
            if self.holders.len() >= self.max_holders {
                break;
            }
            if !self.holders.iter().any(|x| x.id == h.id) {
                self.holders.push(h.clone());
            }
        }
        if is_final {
            self.complete(i);
        }
        &self.holders[start..]
    }

    /// `peer`'s request failed (circuit or stream closed, error answer).
    pub fn on_failure(&mut self, peer: &PeerId) {
        let Some(i) = self.position(peer) else {
            return;
        };
        match self.candidates[i].state {
            PeerState::Waiting { .. } => {
                self.in_flight -= 1;
                self.candidates[i].state = PeerState::Failed;
            }
            PeerState::Unresponsive => self.candidates[i].state = PeerState::Failed,
            _ => {}
        }
    }

    /// Requests counting toward `alpha` now.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Requests sent so far.
    pub fn contacts(&self) -> usize {
        self.contacts
    }

    /// Where `peer` stands, if it is still a candidate.
    pub fn state(&self, peer: &PeerId) -> Option<PeerState> {
        self.position(peer).map(|i| self.candidates[i].state)
    }

    /// The `k` closest peers that answered, closest first: the FIND_NODE result.
    pub fn closest(&self) -> Vec<&PeerRecord> {
        self.candidates
            .iter()
            .filter(|c| c.state == PeerState::Succeeded)
            .take(self.k)
            .map(|c| &c.record)
            .collect()
    }

    /// The holders found (FIND_VALUE), in the order found.
    pub fn holders(&self) -> &[PeerRecord] {
        &self.holders
    }

    /// Hops: the longest chain of answers that led to a peer that answered (1 when only
    /// the starting peers answered, 0 when none did).
    pub fn hops(&self) -> u32 {
        self.candidates
            .iter()
            .filter(|c| c.state == PeerState::Succeeded)
            .map(|c| c.depth)
            .max()
            .unwrap_or(0)
    }

    /// Hops to the closest peer that answered: how deep the chain to the result went.
    pub fn hops_to_closest(&self) -> u32 {
        self.candidates
            .iter()
            .find(|c| c.state == PeerState::Succeeded)
            .map_or(0, |c| c.depth)
    }

    /// Peers that answered yet never listed a peer closer to the target than themselves,
    /// leaving out the `k` closest (which legitimately know nobody closer). The seed's
    /// hint ("Security") that a bridge's peers may be compromised: a node counts how often
    /// a peer lands here.
    pub fn never_closer(&self) -> Vec<PeerId> {
        self.candidates
            .iter()
            .filter(|c| c.state == PeerState::Succeeded)
            .skip(self.k)
            .filter(|c| !c.returned_closer)
            .map(|c| c.record.id)
            .collect()
    }
}
