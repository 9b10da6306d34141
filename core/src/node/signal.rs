//! Peer introduction (seed: "the peer introduction can be performed by other means"):
//! WebRTC offers and answers carried as PEER_SIGNAL cells between two peers through a
//! peer both share a circuit with, so two peers of the network can open a direct link
//! without any signalling server. PROTOCOL.md section 3.1 has the wire rules, section
//! 12 the node's.
//!
//! Roles (one node can play all three):
//! - **Sender** ([`Command::Signal`](super::api::Command::Signal)): splits the SDP into
//!   fragments and sends them on its one-hop circuit to `via` (or to the target itself).
//!   An answer goes back on the circuit its offer came in on.
//! - **Introducer**: a PEER_SIGNAL for someone else, arriving on a circuit a peer built
//!   to us, is passed fragment by fragment (nothing buffered) on *our own* circuit to the
//!   target, whose id that circuit's link proved; the route (both circuits) is kept so
//!   the answer goes back the same way. Only offers open routes.
//! - **Target**: reassembles the fragments (in order, bounded), then emits
//!   [`Event::SignalReceived`](super::api::Event::SignalReceived).
//! - **Refusals**: an introducer that will not or cannot pass an offer on (no record or
//!   circuit for the target, the offerer's rate spent, its table full, the target's
//!   circuit lost before the answer) sends REFUSED back on the offerer's circuit at
//!   once, so the offerer falls back to other signalling instead of waiting out its
//!   timeout; a target that cannot answer refuses the same way.
//! - **Who introduces whom** ([`Introducers`]): the peer we learned a record from (a
//!   bridge's DB_FOUND_PEER, a DHT_FOUND) has or had a circuit to that peer, so it can
//!   pass our offers on; a dial to the peer names it (`ConnectTarget::Relay`'s
//!   `introducer`) for the runtime to signal through.
//! - **Registrants** ([`SignalPaths`]): a DB_FIND_PEER came on a circuit its sender built
//!   to us, so an offer sent back down that circuit reaches whoever asked: the registrant
//!   itself, or a fellow bridge forwarding it, which passes it on as an introducer. The
//!   dial that verifies a registrant names the registrant as its own introducer, so a
//!   node can verify peers whose signalling endpoint it cannot reach. The sender keeps
//!   that circuit open for the purpose (`SignalConfig::registration_hold`).
//!
//! Every bound (reassemblies, routes, lifetime) drops the oldest and counts it; input that
//! breaks the fragment rules is dropped and counted (`Signal*` counters). A PEER_SIGNAL
//! that does not decode closes its circuit, as every malformed relay message does.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

use super::Node;
use super::api::{CommandError, Event};
use super::config::SignalConfig;
use super::counters::Count;
use crate::Instant;
use crate::cells::relay::{MAX_SIGNAL_LEN, PeerSignal, RelayCell, SignalKind, SignalRefusal};
use crate::circuit::{CircKey, Circuit};
use crate::crypto::identity::PeerId;
use crate::dht::RateLimiter;

/// How long a reassembly, a route or a reply path lives: an exchange takes a few round
/// trips, the runtime's signalling times out after 15 s.
pub const SIGNAL_LIFETIME: Duration = Duration::from_secs(30);
/// SDPs being reassembled at once, at most (8 × 8 KiB).
pub const MAX_REASSEMBLIES: usize = 8;
/// Introductions passed on at once, at most.
pub const MAX_ROUTES: usize = 64;
/// Offers received whose answer path is kept, at most.
pub const MAX_REPLY_PATHS: usize = 64;
/// Registrants whose circuit to us is kept as a signalling path, at most (a bridge
/// verifies every peer that registers, a few hundred in a lifetime when busy).
pub const MAX_SIGNAL_PATHS: usize = 1024;

/// An SDP being reassembled.
#[derive(Debug)]
struct Partial {
    total: u16,
    buf: Vec<u8>,
    started: Instant,
    /// Fragments must all come on this circuit.
    came_on: CircKey,
}

/// What one fragment did to the reassemblies.
#[derive(Debug, Default)]
pub(crate) struct Push {
    /// The SDP it completed.
    pub complete: Option<Vec<u8>>,
    /// Fragments or reassemblies dropped for breaking the rules.
    pub bad: usize,
    /// Reassemblies dropped by the bound.
    pub dropped: usize,
}

/// The SDPs being reassembled, keyed by (sender, session, kind): at most
/// [`MAX_REASSEMBLIES`], each at most its `total` (≤ 8 KiB) long, fragments in order on
/// one circuit.
#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    partial: BTreeMap<(PeerId, u32, SignalKind), Partial>,
}

impl Reassembler {
    /// Add fragment `m`, which came on circuit `came_on`.
    pub(crate) fn push(&mut self, came_on: CircKey, m: &PeerSignal, now: Instant) -> Push {
        let mut out = Push::default();
        let pk = (m.from, m.session, m.kind);
        if m.offset == 0 {
            if self.partial.remove(&pk).is_some() {
                // A restart: the earlier one can no longer complete.
                out.bad += 1;
            }
            if self.partial.len() >= MAX_REASSEMBLIES {
                let oldest = self
                    .partial
                    .iter()
                    .min_by_key(|(_, p)| p.started)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.partial.remove(&k);
                    out.dropped += 1;
                }
            }
            self.partial.insert(
                pk,
                Partial {
                    total: m.total,
                    buf: Vec::with_capacity(usize::from(m.total).min(MAX_SIGNAL_LEN)),
                    started: now,
                    came_on,
                },
            );
        }
        let Some(p) = self.partial.get_mut(&pk) else {
            out.bad += 1;
            return out;
        };
        // The decoder guarantees offset + len <= total, so a buffer never outgrows it.
        if p.came_on != came_on || p.total != m.total || p.buf.len() != usize::from(m.offset) {
            self.partial.remove(&pk);
            out.bad += 1;
            return out;
        }
        p.buf.extend_from_slice(&m.data);
        if m.is_last() {
            out.complete = self.partial.remove(&pk).map(|p| p.buf);
        }
        out
    }

    /// Drop reassemblies started before `now - lifetime`; how many.
    fn expire(&mut self, now: Instant) -> usize {
        let before = self.partial.len();
        self.partial
            .retain(|_, p| p.started + SIGNAL_LIFETIME > now);
        before - self.partial.len()
    }

    /// Reassemblies held.
    pub(crate) fn len(&self) -> usize {
        self.partial.len()
    }

    /// Bytes buffered in all reassemblies.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.partial.values().map(|p| p.buf.len()).sum()
    }
}

/// Who can pass an offer to a peer: for each peer whose record we learned from another
/// peer, that peer (the latest one wins: its circuit to the peer is the freshest). At
/// most `max` peers; the one learned longest ago is forgotten first.
#[derive(Debug, Default)]
pub(crate) struct Introducers {
    /// peer -> (introducer, when learned: the key in `order`).
    by_peer: BTreeMap<PeerId, (PeerId, u64)>,
    /// Learning order -> peer.
    order: BTreeMap<u64, PeerId>,
    next: u64,
    max: usize,
}

impl Introducers {
    /// A table of at most `max` peers.
    pub(crate) fn new(max: usize) -> Introducers {
        Introducers {
            max,
            ..Introducers::default()
        }
    }

    /// We learned `peer`'s record from `introducer`.
    pub(crate) fn learned(&mut self, peer: PeerId, introducer: PeerId) {
        if peer == introducer || self.max == 0 {
            return;
        }
        if let Some((_, seq)) = self.by_peer.remove(&peer) {
            self.order.remove(&seq);
        }
        while self.by_peer.len() >= self.max {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            self.by_peer.remove(&old);
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, peer);
        self.by_peer.insert(peer, (introducer, seq));
    }

    /// The peer we learned `peer`'s record from, if we remember one.
    pub(crate) fn get(&self, peer: &PeerId) -> Option<PeerId> {
        self.by_peer.get(peer).map(|&(i, _)| i)
    }

    /// Peers remembered.
    pub(crate) fn len(&self) -> usize {
        self.by_peer.len()
    }
}

/// Peers that asked us something on a circuit they built to us (a DB_FIND_PEER): an offer
/// for such a peer goes back down that circuit until [`SIGNAL_LIFETIME`] has passed or
/// the circuit closes. At most [`MAX_SIGNAL_PATHS`]; the oldest goes first.
#[derive(Debug, Default)]
pub(crate) struct SignalPaths {
    by_peer: BTreeMap<PeerId, (CircKey, Instant)>,
}

impl SignalPaths {
    /// `peer` can be reached on `key` until `now + SIGNAL_LIFETIME`.
    pub(crate) fn insert(&mut self, peer: PeerId, key: CircKey, now: Instant) {
        if !self.by_peer.contains_key(&peer) && self.by_peer.len() >= MAX_SIGNAL_PATHS {
            drop_oldest(&mut self.by_peer, |(_, until)| *until);
        }
        self.by_peer.insert(peer, (key, now + SIGNAL_LIFETIME));
    }

    /// The circuit `peer` built to us, if still usable at `now`.
    pub(crate) fn get(&self, peer: &PeerId, now: Instant) -> Option<CircKey> {
        self.by_peer
            .get(peer)
            .filter(|(_, until)| *until > now)
            .map(|(k, _)| *k)
    }

    /// Circuit `key` closed.
    fn circuit_gone(&mut self, key: CircKey) {
        self.by_peer.retain(|_, (k, _)| *k != key);
    }

    fn expire(&mut self, now: Instant) {
        self.by_peer.retain(|_, (_, until)| *until > now);
    }

    /// Paths held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_peer.len()
    }
}

/// Remove the entry of `map` whose `time` is earliest; whether there was one.
fn drop_oldest<K: Ord + Copy, V>(map: &mut BTreeMap<K, V>, time: impl Fn(&V) -> Instant) -> bool {
    let oldest = map.iter().min_by_key(|(_, v)| time(v)).map(|(k, _)| *k);
    oldest.is_some_and(|k| map.remove(&k).is_some())
}

/// An introduction passed on: the offerer's circuit to us and ours to the target.
#[derive(Debug, Clone, Copy)]
struct Route {
    offerer_leg: CircKey,
    target_leg: CircKey,
    expires: Instant,
    /// The target's answer (or refusal) went back whole: the exchange is over, and losing
    /// the target's circuit now refuses nothing.
    answered: bool,
}

/// The node's signalling state.
#[derive(Debug)]
pub(super) struct SignalState {
    /// SDPs for us being reassembled.
    partial: Reassembler,
    /// Keyed by (offerer, target, session).
    routes: BTreeMap<(PeerId, PeerId, u32), Route>,
    /// At a target: the circuit an offer from (offerer, session) came in on.
    replies: BTreeMap<(PeerId, u32), (CircKey, Instant)>,
    /// Circuits carrying an exchange, until when: not closed as idle meanwhile.
    busy: BTreeMap<CircKey, Instant>,
    /// Who can pass our offers to whom.
    introducers: Introducers,
    /// Registrants reachable down the circuit they registered on.
    paths: SignalPaths,
    /// Offers introduced per offerer (keyed by the link they come in on), when limited.
    offer_rate: Option<RateLimiter>,
}

impl SignalState {
    /// The state of a node with these knobs.
    pub(super) fn new(cfg: &SignalConfig) -> SignalState {
        SignalState {
            partial: Reassembler::default(),
            routes: BTreeMap::new(),
            replies: BTreeMap::new(),
            busy: BTreeMap::new(),
            introducers: Introducers::new(cfg.max_introducers),
            paths: SignalPaths::default(),
            offer_rate: (cfg.offer_burst > 0)
                .then(|| RateLimiter::new(cfg.offer_burst, cfg.offers_per_sec, cfg.max_offerers)),
        }
    }

    /// `key` carries a signalling exchange (so it is not idle).
    pub(super) fn is_busy(&self, key: CircKey, now: Instant) -> bool {
        self.busy.get(&key).is_some_and(|&t| t > now)
    }

    /// We learned the record of each of `peers` from `introducer` (a DB_FOUND_PEER, a
    /// DHT_FOUND); `me` is never anyone's.
    pub(super) fn learned<'a>(
        &mut self,
        peers: impl IntoIterator<Item = &'a PeerId>,
        introducer: PeerId,
        me: PeerId,
    ) {
        for p in peers {
            if *p != me {
                self.introducers.learned(*p, introducer);
            }
        }
    }

    /// `peer` asked us something on circuit `key`, which it (or a peer forwarding for
    /// it) built to us: offers for it can go back that way for a while.
    pub(super) fn reachable_on(&mut self, peer: PeerId, key: CircKey, now: Instant) {
        self.paths.insert(peer, key, now);
    }

    /// Routes, reassemblies and reply paths held now (for tests and bounds checks).
    pub(super) fn census(&self) -> (usize, usize, usize) {
        (self.routes.len(), self.partial.len(), self.replies.len())
    }

    /// Forget what has outlived [`SIGNAL_LIFETIME`]; the number of reassemblies dropped.
    fn expire(&mut self, now: Instant) -> usize {
        let dropped = self.partial.expire(now);
        self.routes.retain(|_, r| r.expires > now);
        self.replies.retain(|_, (_, t)| *t > now);
        self.busy.retain(|_, t| *t > now);
        self.paths.expire(now);
        dropped
    }

    /// Keep circuit `key` open for [`SIGNAL_LIFETIME`]: it carries an exchange.
    fn mark_busy(&mut self, key: CircKey, now: Instant) {
        self.hold(key, now + SIGNAL_LIFETIME);
    }

    /// Keep circuit `key` open until `until` (never shortening an earlier hold): the
    /// peer at its end may send an offer down it (we just registered with it).
    pub(super) fn hold(&mut self, key: CircKey, until: Instant) {
        let t = self.busy.entry(key).or_insert(until);
        *t = (*t).max(until);
    }
}

impl Node {
    /// Routes, reassemblies and reply paths the signalling layer holds:
    /// (introductions passed on, SDPs being reassembled, answers awaited from us).
    pub fn signal_census(&self) -> (usize, usize, usize) {
        self.signals.census()
    }

    /// The peer that can pass our WebRTC offers to `peer` (the one we learned its record
    /// from), if we know one; `peer` itself while the circuit it registered with us on is
    /// open (an offer for it goes back down that circuit). Dials name it too
    /// (`ConnectTarget::Relay::introducer`).
    pub fn introducer_of(&self, peer: &PeerId) -> Option<PeerId> {
        if self.signals.paths.get(peer, self.now).is_some() {
            return Some(*peer);
        }
        self.signals.introducers.get(peer)
    }

    /// Peers whose introducer we remember.
    pub fn introducers_known(&self) -> usize {
        self.signals.introducers.len()
    }

    /// A circuit closed: the introductions through it end. One whose target's circuit
    /// went before the answer came back is refused to its offerer (NO_ROUTE).
    pub(super) fn on_signal_circuit_gone(&mut self, key: CircKey) {
        let gone: Vec<((PeerId, PeerId, u32), Route)> = self
            .signals
            .routes
            .iter()
            .filter(|(_, r)| r.offerer_leg == key || r.target_leg == key)
            .map(|(k, r)| (*k, *r))
            .collect();
        for ((offerer, target, session), r) in gone {
            self.signals.routes.remove(&(offerer, target, session));
            if r.target_leg == key && !r.answered {
                self.signal_refuse(
                    r.offerer_leg,
                    offerer,
                    target,
                    session,
                    SignalRefusal::NO_ROUTE,
                );
            }
        }
        self.signals.busy.remove(&key);
        self.signals.paths.circuit_gone(key);
    }

    /// `Command::Signal`: send an SDP to `to`, through `via` (or straight to `to`: down
    /// the circuit it registered on, if open, else on our own circuit to it; `via ==
    /// Some(to)` means the same). An answer to an offer we received goes back on that
    /// offer's circuit.
    pub(super) fn signal_command(
        &mut self,
        to: PeerId,
        via: Option<PeerId>,
        session: u32,
        kind: SignalKind,
        sdp: &[u8],
    ) -> Result<(), CommandError> {
        if self.peersm.is_none() {
            return Err(CommandError::NotAPeer);
        }
        let me = self.peer_id();
        let known = [SignalKind::OFFER, SignalKind::ANSWER, SignalKind::REFUSED];
        if to == me || !known.contains(&kind) {
            return Err(CommandError::BadPath);
        }
        if sdp.is_empty() || sdp.len() > MAX_SIGNAL_LEN {
            return Err(CommandError::BadContent);
        }
        let dropped = self.signals.expire(self.now);
        self.bump_n(Count::SignalDropped, dropped);
        let back = match kind {
            SignalKind::OFFER => None,
            _ => self.signals.replies.get(&(to, session)).map(|&(k, _)| k),
        };
        // A refusal only ever answers an offer we received.
        if kind == SignalKind::REFUSED && back.is_none() {
            return Err(CommandError::BadPath);
        }
        let via = via.filter(|v| *v != to);
        let path = match via {
            None => self.signals.paths.get(&to, self.now),
            Some(_) => None,
        };
        let leg = match back.or(path) {
            Some(k) => k,
            None => {
                let hop = via.unwrap_or(to);
                let rec = self
                    .peer_record_of(&hop)
                    .ok_or(CommandError::NoSuchCircuit)?;
                self.circ_to(&rec).ok_or(CommandError::Limit)?
            }
        };
        let frags = PeerSignal::fragments(kind, session, to, me, sdp)
            .map_err(|_| CommandError::BadContent)?;
        for f in frags {
            if !self.signal_send(leg, RelayCell::new(None, f)) {
                return Err(CommandError::NoSuchCircuit);
            }
        }
        if back.is_some() {
            self.signals.replies.remove(&(to, session));
        }
        self.signals.mark_busy(leg, self.now);
        Ok(())
    }

    /// A PEER_SIGNAL arrived on circuit `key` (ours or one built to us).
    pub(super) fn on_peer_signal(&mut self, key: CircKey, m: PeerSignal) {
        let now = self.now;
        let dropped = self.signals.expire(now);
        self.bump_n(Count::SignalDropped, dropped);
        let me = self.peer_id();
        let known = [SignalKind::OFFER, SignalKind::ANSWER, SignalKind::REFUSED].contains(&m.kind);
        // Our own signal coming back is a loop.
        if !known || m.from == me || m.from == m.to {
            self.counters.bump(Count::SignalBad);
            return;
        }
        if m.to == me {
            self.signal_deliver(key, m);
        } else {
            self.signal_pass_on(key, m);
        }
    }

    /// Reassemble a signal for us; emit it once whole.
    fn signal_deliver(&mut self, key: CircKey, m: PeerSignal) {
        let now = self.now;
        let push = self.signals.partial.push(key, &m, now);
        self.bump_n(Count::SignalBad, push.bad);
        self.bump_n(Count::SignalDropped, push.dropped);
        let Some(sdp) = push.complete else {
            return;
        };
        let s = &mut self.signals;
        if m.kind == SignalKind::OFFER {
            if s.replies.len() >= MAX_REPLY_PATHS
                && drop_oldest(&mut s.replies, |(_, until)| *until)
            {
                self.counters.bump(Count::SignalDropped);
            }
            s.replies
                .insert((m.from, m.session), (key, now + SIGNAL_LIFETIME));
            s.mark_busy(key, now);
        }
        self.emit(Event::SignalReceived {
            from: m.from,
            session: m.session,
            kind: m.kind,
            sdp,
        });
    }

    /// Introducer: pass a signal for another peer on, fragment by fragment.
    fn signal_pass_on(&mut self, key: CircKey, m: PeerSignal) {
        let now = self.now;
        let offer = m.kind == SignalKind::OFFER;
        let rk = if offer {
            (m.from, m.to, m.session)
        } else {
            (m.to, m.from, m.session)
        };
        let out = match self.signals.routes.get(&rk).copied() {
            Some(r) if offer && key == r.offerer_leg => r.target_leg,
            Some(r) if !offer && key == r.target_leg => r.offerer_leg,
            Some(_) => {
                self.counters.bump(Count::SignalBad);
                return;
            }
            None => match self.signal_open_route(key, &m) {
                Ok(target_leg) => {
                    self.signals.routes.insert(
                        rk,
                        Route {
                            offerer_leg: key,
                            target_leg,
                            expires: now + SIGNAL_LIFETIME,
                            answered: false,
                        },
                    );
                    target_leg
                }
                Err(Some(reason)) => {
                    self.signal_refuse(key, m.from, m.to, m.session, reason);
                    return;
                }
                Err(None) => return,
            },
        };
        self.signals.mark_busy(key, now);
        self.signals.mark_busy(out, now);
        let last = m.is_last();
        if !self.signal_send(out, RelayCell::new(None, m)) {
            if let Some(r) = self.signals.routes.remove(&rk)
                && offer
            {
                self.signal_refuse(r.offerer_leg, rk.0, rk.1, rk.2, SignalRefusal::NO_ROUTE);
            }
            self.counters.bump(Count::SignalNoRoute);
        } else if !offer && last {
            // The answer (or refusal) is through: the route only waits to expire.
            if let Some(r) = self.signals.routes.get_mut(&rk) {
                r.answered = true;
            }
        }
    }

    /// A signal for another peer with no route yet: open one if it is the first fragment
    /// of an offer, on a circuit a peer built to us (or one we built to a peer that
    /// verifies a registrant we forwarded), towards a peer we reach on our own circuit,
    /// within the offerer's rate and our table. `Err(Some(reason))`: refuse the offer;
    /// `Err(None)`: drop the signal (counted).
    fn signal_open_route(
        &mut self,
        key: CircKey,
        m: &PeerSignal,
    ) -> Result<CircKey, Option<SignalRefusal>> {
        let prev_link = match self.circuits.get(&key) {
            Some(Circuit::Relay(r)) => Some(r.prev.conn),
            Some(Circuit::Client(c)) => Some(c.link),
            None => None,
        };
        let Some(prev_link) = prev_link.filter(|_| m.kind == SignalKind::OFFER && m.offset == 0)
        else {
            self.counters.bump(Count::SignalNoRoute);
            return Err(None);
        };
        // Per offerer: the link the offer came in on is the offerer's own for the one-hop
        // circuits offers travel on (either way round), and unlike `from` it cannot be
        // made up.
        if let Some(limiter) = self.signals.offer_rate.as_mut()
            && !limiter.allow(&super::peersm::link_key(prev_link), self.now)
        {
            self.counters.bump(Count::SignalRateLimited);
            return Err(Some(SignalRefusal::RATE_LIMITED));
        }
        if self.signals.routes.len() >= MAX_ROUTES {
            self.counters.bump(Count::SignalRefused);
            return Err(Some(SignalRefusal::BUSY));
        }
        let Some(rec) = self.peer_record_of(&m.to) else {
            self.counters.bump(Count::SignalNoRoute);
            return Err(Some(SignalRefusal::NO_ROUTE));
        };
        let Some(target_leg) = self.circ_to(&rec) else {
            self.counters.bump(Count::SignalRefused);
            return Err(Some(SignalRefusal::BUSY));
        };
        if target_leg == key {
            self.counters.bump(Count::SignalBad);
            return Err(None);
        }
        Ok(target_leg)
    }

    /// Send REFUSED for `offerer`'s offer `session` to `target` back on `leg`.
    fn signal_refuse(
        &mut self,
        leg: CircKey,
        offerer: PeerId,
        target: PeerId,
        session: u32,
        reason: SignalRefusal,
    ) {
        let refusal = PeerSignal {
            kind: SignalKind::REFUSED,
            session,
            to: offerer,
            from: target,
            total: 1,
            offset: 0,
            data: heapless::Vec::from_slice(&reason.encode()).unwrap_or_default(),
        };
        if self.signal_send(leg, RelayCell::new(None, refusal)) {
            self.counters.bump(Count::SignalRefusalSent);
        }
    }

    /// Send `cell` on `key`, towards its client if we are a hop of it, else towards its
    /// last hop.
    fn signal_send(&mut self, key: CircKey, cell: RelayCell) -> bool {
        match self.circuits.get(&key) {
            Some(Circuit::Relay(_)) => self.send_relay_inbound(key, &cell).is_some(),
            Some(Circuit::Client(_)) => self.send_on_client_circ(key, cell),
            None => false,
        }
    }

    fn bump_n(&mut self, c: Count, n: usize) {
        for _ in 0..n {
            self.counters.bump(c);
        }
    }
}

#[cfg(test)]
mod tests;
