//! Links inside the node: dialing and reusing them, framing their bytes into cells,
//! driving the handshake, and tearing them down.

use alloc::vec::Vec;
use core::net::SocketAddr;

use rand_core::Rng;

use super::api::{ConnId, ConnectTarget, Event, LinkBinding, LinkCloseReason, Output};
use super::counters::Count;
use super::{Node, Timer};
use crate::Instant;
use crate::cells::channel::{ChanCell, ChanMsg, DestroyReason};
use crate::circuit::Circuit;
use crate::crypto::identity::PeerId;
use crate::link::handshake::{HandshakeContext, HandshakeError};
use crate::link::{Link, LinkHandshake, LinkState, QueueError};

impl Node {
    /// An open or opening link we initiated to `id`, or a new one: the id of the link.
    pub(super) fn link_to(&mut self, addr: SocketAddr, id: PeerId) -> Option<ConnId> {
        let reusable = self
            .links
            .iter()
            .find(|(_, l)| l.peer_id == Some(id) && (l.is_open() || l.initiator));
        if let Some((&conn, _)) = reusable {
            return Some(conn);
        }
        if self.links.len() >= self.config.limits.max_links {
            self.counters.bump(Count::TooManyLinks);
            return None;
        }
        let conn = self.fresh_conn();
        self.links
            .insert(conn, Link::new(true, Some(addr), Some(id)));
        self.set_link_deadline(conn);
        self.outputs.push_back(Output::Connect {
            conn,
            target: ConnectTarget::Relay {
                addr,
                id: Some(id),
                introducer: self.introducer_of(&id),
            },
        });
        Some(conn)
    }

    pub(super) fn on_link_connected(&mut self, conn: ConnId, binding: LinkBinding) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if !matches!(link.state, LinkState::Connecting) {
            self.counters.bump(Count::StaleReference);
            return;
        }
        link.binding = binding;
        let (hs, versions) = LinkHandshake::initiator();
        link.state = LinkState::Handshaking(hs);
        self.send_cell(conn, &versions);
    }

    /// Bytes from a link's transport: frame them into cells and act on each.
    pub(super) fn on_link_data(&mut self, conn: ConnId, data: &[u8]) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if matches!(link.state, LinkState::Connecting) {
            self.counters.bump(Count::UnexpectedCell);
            self.drop_link(conn, LinkCloseReason::ProtocolViolation, true);
            return;
        }
        // The buffer holds at most one partial cell between calls; it grows to the size
        // of the runtime's read for the duration of this call only.
        link.last_active = self.now;
        let mut buf = core::mem::take(&mut link.inbuf);
        buf.extend_from_slice(data);
        let mut off = 0;
        loop {
            // The link may close, or its version change, after any cell.
            let Some(link) = self.links.get(&conn) else {
                return;
            };
            match link.codec.decode(&buf[off..]) {
                Ok(Some((cell, used))) => {
                    off += used;
                    self.on_link_cell(conn, cell);
                }
                Ok(None) => break,
                Err(_) => {
                    self.counters.bump(Count::MalformedCell);
                    self.drop_link(conn, LinkCloseReason::ProtocolViolation, true);
                    return;
                }
            }
        }
        buf.drain(..off);
        if let Some(link) = self.links.get_mut(&conn) {
            link.inbuf = buf;
        }
    }

    fn on_link_cell(&mut self, conn: ConnId, cell: ChanCell) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        match &link.state {
            LinkState::Handshaking(_) => self.on_handshake_cell(conn, cell),
            LinkState::Open => self.on_open_link_cell(conn, cell),
            LinkState::Connecting => {}
        }
    }

    fn on_handshake_cell(&mut self, conn: ConnId, cell: ChanCell) {
        let unix_now = self.unix_now();
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        let LinkState::Handshaking(hs) = &link.state else {
            return;
        };
        let responding = matches!(hs, LinkHandshake::AwaitInitiatorVersions);
        let binding = link.binding;
        let expected_peer = if link.initiator { link.peer_id } else { None };
        let peer_addr = link.remote.map(|a| a.ip());
        let our_certs = if responding {
            match self
                .keys
                .certs_for_link(&mut self.rng, binding.local, unix_now)
            {
                Ok(c) => Some(c),
                Err(_) => {
                    self.drop_link(conn, LinkCloseReason::Local, true);
                    return;
                }
            }
        } else {
            None
        };
        let mut challenge = [0u8; 32];
        if responding {
            self.rng.fill_bytes(&mut challenge);
        }
        let ctx = HandshakeContext {
            unix_now,
            binding,
            expected_peer,
            our_certs: our_certs.as_ref(),
            challenge,
            peer_addr,
            my_addrs: &self.my_addrs,
        };
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        let LinkState::Handshaking(hs) = &mut link.state else {
            return;
        };
        let step = match hs.handle_cell(cell, &ctx) {
            Ok(step) => step,
            Err(e) => {
                let (count, reason) = match e {
                    HandshakeError::NoCommonVersion => {
                        (Count::NoCommonVersion, LinkCloseReason::NoCommonVersion)
                    }
                    HandshakeError::UnexpectedCell(_) => {
                        (Count::UnexpectedCell, LinkCloseReason::ProtocolViolation)
                    }
                    HandshakeError::BadCertificates(_) | HandshakeError::WrongIdentity => {
                        (Count::BadCertificates, LinkCloseReason::BadCertificates)
                    }
                };
                self.counters.bump(count);
                self.drop_link(conn, reason, true);
                return;
            }
        };
        if let Some(v) = step.negotiated {
            // `negotiate` only picks versions the framer supports.
            let _ = link.codec.set_link_version(v);
        }
        for c in &step.send {
            self.send_cell(conn, c);
        }
        let Some(opened) = step.opened else { return };
        let now = self.now;
        let idle_at = self.config.limits.link_idle_timeout.map(|d| now + d);
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        link.state = LinkState::Open;
        if let Some(at) = link.deadline.take() {
            self.timers.remove(&(at, Timer::Link(conn)));
        }
        link.last_active = now;
        if let Some(at) = idle_at {
            link.idle_check = Some(at);
            self.timers.insert((at, Timer::Link(conn)));
        }
        if let Some(p) = &opened.peer {
            link.peer_id = Some(p.rsa_id);
        }
        let peer = opened.peer.map(|p| p.rsa_id);
        self.emit(Event::LinkUp {
            conn,
            peer,
            version: opened.version,
        });
        if let Some(skew) = opened.clock_skew
            && skew.unsigned_abs() > self.config.limits.clock_skew_report_secs
        {
            self.emit(Event::ClockSkew {
                conn,
                skew_secs: skew,
            });
        }
        self.on_link_open(conn);
    }

    fn on_open_link_cell(&mut self, conn: ConnId, cell: ChanCell) {
        let ChanCell { circ_id, msg } = cell;
        match (circ_id, msg) {
            (_, ChanMsg::Padding(_) | ChanMsg::Vpadding(_) | ChanMsg::PaddingNegotiate(_)) => {}
            // Later VERSIONS cells are ignored (tor-spec §4.1); unknown commands dropped.
            (_, ChanMsg::Versions(_) | ChanMsg::Unrecognized(_)) => {}
            (Some(id), ChanMsg::CreateFast(m)) => self.on_create_fast(conn, id, m),
            (Some(id), ChanMsg::Create2(m)) => self.on_create2(conn, id, m),
            (Some(id), ChanMsg::Create(_)) => {
                // TAP is obsolete: refuse as tor 0.4.9 does.
                self.counters.bump(Count::CircuitHandshakeFailed);
                self.send_destroy(conn, id, DestroyReason::PROTOCOL);
            }
            (Some(id), ChanMsg::CreatedFast(m)) => self.on_created(conn, id, m.into()),
            (Some(id), ChanMsg::Created2(m)) => self.on_created(conn, id, m.into()),
            (Some(id), ChanMsg::Relay(m)) => self.on_relay_cell(conn, id, m.body, false),
            (Some(id), ChanMsg::RelayEarly(m)) => self.on_relay_cell(conn, id, m.body, true),
            (Some(id), ChanMsg::Destroy(m)) => self.on_destroy(conn, id, m.reason),
            _ => {
                self.counters.bump(Count::UnexpectedCell);
                self.drop_link(conn, LinkCloseReason::ProtocolViolation, true);
            }
        }
    }

    pub(super) fn on_link_timer(&mut self, conn: ConnId, at: Instant) {
        let due = self
            .links
            .get(&conn)
            .is_some_and(|l| l.deadline == Some(at) && !l.is_open());
        if due {
            self.counters.bump(Count::HandshakeTimeout);
            self.drop_link(conn, LinkCloseReason::HandshakeTimeout, true);
            return;
        }
        let idle_due = self
            .links
            .get(&conn)
            .is_some_and(|l| l.idle_check == Some(at) && l.is_open());
        if idle_due {
            self.check_idle_link(conn);
        }
    }

    /// An open link's idle check: closed if it carried no circuit and no cell for
    /// `link_idle_timeout`, else checked again when that could first be true.
    fn check_idle_link(&mut self, conn: ConnId) {
        let now = self.now;
        let Some(idle) = self.config.limits.link_idle_timeout else {
            return;
        };
        let busy = self.link_carries_circuits(conn);
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        let next = if busy {
            now + idle
        } else {
            link.last_active + idle
        };
        if next <= now {
            link.idle_check = None;
            self.drop_link(conn, LinkCloseReason::Local, true);
            return;
        }
        link.idle_check = Some(next);
        self.timers.insert((next, Timer::Link(conn)));
    }

    /// Some circuit uses `conn`: with an id on it, or waiting for it to open.
    fn link_carries_circuits(&self, conn: ConnId) -> bool {
        if self.links.get(&conn).is_some_and(|l| l.n_circuits > 0) {
            return true;
        }
        self.circuits.values().any(|c| match c {
            Circuit::Client(c) => c.link == conn,
            Circuit::Relay(r) => matches!(
                r.next,
                crate::circuit::NextHop::AwaitingLink { conn: c, .. } if c == conn
            ),
        })
    }

    /// Frame `cell` onto `conn`'s queue and announce it. A full queue is counted and
    /// reported as `false`; the caller closes what caused it.
    pub(super) fn send_cell(&mut self, conn: ConnId, cell: &ChanCell) -> bool {
        let limit = self.config.limits.max_queued_bytes_per_conn;
        let Some(link) = self.links.get_mut(&conn) else {
            return false;
        };
        match link.queue_cell(cell, limit) {
            Ok(()) => {
                link.last_active = self.now;
                if !link.transmit_announced {
                    link.transmit_announced = true;
                    self.outputs.push_back(Output::Transmit(conn));
                }
                true
            }
            Err(QueueError::Full) => {
                self.counters.bump(Count::SendQueueFull);
                false
            }
            Err(QueueError::Encode(_)) => {
                self.counters.bump(Count::UnexpectedCell);
                false
            }
        }
    }

    /// Bytes queued on `conn` that the runtime has not taken yet.
    pub(super) fn link_queued(&self, conn: ConnId) -> usize {
        self.links.get(&conn).map_or(0, |l| l.outbuf.len())
    }

    /// Whether `conn` can take another fixed cell now.
    pub(super) fn link_has_room(&self, conn: ConnId) -> bool {
        self.links.get(&conn).is_some_and(|l| {
            l.room(self.config.limits.max_queued_bytes_per_conn)
                >= crate::cells::channel::MAX_FIXED_CELL_LEN
        })
    }

    /// Close a link: every circuit on it (or waiting for it) closes too, the other end of
    /// each relayed circuit gets a DESTROY, and the application hears `LinkDown`.
    pub(super) fn drop_link(&mut self, conn: ConnId, reason: LinkCloseReason, close: bool) {
        let Some(link) = self.links.remove(&conn) else {
            return;
        };
        if let Some(at) = link.deadline {
            self.timers.remove(&(at, Timer::Link(conn)));
        }
        if let Some(at) = link.idle_check {
            self.timers.remove(&(at, Timer::Link(conn)));
        }
        let on_link: Vec<_> = self
            .circ_ends
            .range((conn, crate::cells::channel::CircId::MIN)..)
            .take_while(|((c, _), _)| *c == conn)
            .map(|(&(_, id), &key)| (id, key))
            .collect();
        for (id, key) in on_link {
            self.circ_ends.remove(&(conn, id));
            self.destroy_circuit(key, DestroyReason::CHANNEL_CLOSED, Some(conn));
        }
        let waiting: Vec<_> = self
            .circuits
            .iter()
            .filter(|(_, c)| match c {
                Circuit::Client(c) => c.link == conn,
                Circuit::Relay(r) => matches!(
                    r.next,
                    crate::circuit::NextHop::AwaitingLink { conn: c, .. } if c == conn
                ),
            })
            .map(|(&k, _)| k)
            .collect();
        for key in waiting {
            self.destroy_circuit(key, DestroyReason::CHANNEL_CLOSED, Some(conn));
        }
        self.emit(Event::LinkDown { conn, reason });
        if close {
            self.outputs.push_back(Output::Close(conn));
        }
    }
}
