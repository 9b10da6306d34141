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
//!
//! Every bound (reassemblies, routes, lifetime) drops the oldest and counts it; input that
//! breaks the fragment rules is dropped and counted (`Signal*` counters). A PEER_SIGNAL
//! that does not decode closes its circuit, as every malformed relay message does.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

use super::Node;
use super::api::{CommandError, Event};
use super::counters::Count;
use crate::Instant;
use crate::cells::relay::{MAX_SIGNAL_LEN, PeerSignal, RelayCell, SignalKind};
use crate::circuit::{CircKey, Circuit};
use crate::crypto::identity::PeerId;

/// How long a reassembly, a route or a reply path lives: an exchange takes a few round
/// trips, the runtime's signalling times out after 15 s.
pub const SIGNAL_LIFETIME: Duration = Duration::from_secs(30);
/// SDPs being reassembled at once, at most (8 × 8 KiB).
pub const MAX_REASSEMBLIES: usize = 8;
/// Introductions passed on at once, at most.
pub const MAX_ROUTES: usize = 64;
/// Offers received whose answer path is kept, at most.
pub const MAX_REPLY_PATHS: usize = 64;

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

/// An introduction passed on: the offerer's circuit to us and ours to the target.
#[derive(Debug, Clone, Copy)]
struct Route {
    offerer_leg: CircKey,
    target_leg: CircKey,
    expires: Instant,
}

/// The node's signalling state.
#[derive(Debug, Default)]
pub(super) struct SignalState {
    /// SDPs for us being reassembled.
    partial: Reassembler,
    /// Keyed by (offerer, target, session).
    routes: BTreeMap<(PeerId, PeerId, u32), Route>,
    /// At a target: the circuit an offer from (offerer, session) came in on.
    replies: BTreeMap<(PeerId, u32), (CircKey, Instant)>,
    /// Circuits carrying an exchange, until when: not closed as idle meanwhile.
    busy: BTreeMap<CircKey, Instant>,
}

impl SignalState {
    /// `key` carries a signalling exchange (so it is not idle).
    pub(super) fn is_busy(&self, key: CircKey, now: Instant) -> bool {
        self.busy.get(&key).is_some_and(|&t| t > now)
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
        dropped
    }

    fn mark_busy(&mut self, key: CircKey, now: Instant) {
        self.busy.insert(key, now + SIGNAL_LIFETIME);
    }
}

impl Node {
    /// Routes, reassemblies and reply paths the signalling layer holds:
    /// (introductions passed on, SDPs being reassembled, answers awaited from us).
    pub fn signal_census(&self) -> (usize, usize, usize) {
        self.signals.census()
    }

    /// `Command::Signal`: send an SDP to `to`, through `via` (or straight to `to`). An
    /// answer to an offer we received goes back on that offer's circuit.
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
        if to == me || (kind != SignalKind::OFFER && kind != SignalKind::ANSWER) {
            return Err(CommandError::BadPath);
        }
        if sdp.is_empty() || sdp.len() > MAX_SIGNAL_LEN {
            return Err(CommandError::BadContent);
        }
        let dropped = self.signals.expire(self.now);
        self.bump_n(Count::SignalDropped, dropped);
        let back = match kind {
            SignalKind::ANSWER => self.signals.replies.get(&(to, session)).map(|&(k, _)| k),
            _ => None,
        };
        let leg = match back {
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
        let known = m.kind == SignalKind::OFFER || m.kind == SignalKind::ANSWER;
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
            if s.replies.len() >= MAX_REPLY_PATHS {
                let first = s
                    .replies
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| *k);
                if let Some(k) = first {
                    s.replies.remove(&k);
                    self.counters.bump(Count::SignalDropped);
                }
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
            None => {
                // Only the first fragment of an offer, on a circuit a peer built to us,
                // opens a route; the target must be a peer we can reach ourselves.
                let from_relay_side = matches!(self.circuits.get(&key), Some(Circuit::Relay(_)));
                if !offer || m.offset != 0 || !from_relay_side {
                    self.counters.bump(Count::SignalNoRoute);
                    return;
                }
                if self.signals.routes.len() >= MAX_ROUTES {
                    self.counters.bump(Count::SignalRefused);
                    return;
                }
                let Some(rec) = self.peer_record_of(&m.to) else {
                    self.counters.bump(Count::SignalNoRoute);
                    return;
                };
                let Some(target_leg) = self.circ_to(&rec) else {
                    self.counters.bump(Count::SignalRefused);
                    return;
                };
                if target_leg == key {
                    self.counters.bump(Count::SignalBad);
                    return;
                }
                self.signals.routes.insert(
                    rk,
                    Route {
                        offerer_leg: key,
                        target_leg,
                        expires: now + SIGNAL_LIFETIME,
                    },
                );
                target_leg
            }
        };
        self.signals.mark_busy(key, now);
        self.signals.mark_busy(out, now);
        if !self.signal_send(out, RelayCell::new(None, m)) {
            self.signals.routes.remove(&rk);
            self.counters.bump(Count::SignalNoRoute);
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
