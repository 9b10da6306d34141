//! Circuits inside the node: building them hop by hop (OP), accepting and extending
//! them (OR), moving relay cells through the crypto layers, and tearing them down.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use super::api::{CircuitHandle, CommandError, ConnId, Event, FirstHop, RelayTarget};
use super::counters::Count;
use super::{Node, Timer, ordb};
use crate::Instant;
use crate::cells::channel::{
    ChanCell, ChanMsg, CircId, Create2, CreateFast, Created2, CreatedFast, Destroy, DestroyReason,
    HandshakeType, Relay, RelayCellBody, RelayEarly,
};
use crate::cells::relay::{Extend2, Extended2, LinkSpec, RelayCell, RelayMsg, Sendme, Truncated};
use crate::circuit::{
    CircEnd, CircFlow, CircKey, Circuit, ClientCircuit, NextHop, PendingHop, RelayCircuit,
};
use crate::crypto::handshake::{
    NtorPublicKey, fast_client_create, fast_server_reply, ntor_client_create, ntor_server_reply,
};
use crate::crypto::relay::{ClientCircuitCrypto, HopNum, OutboundCell, RelayHopCrypto, SendmeTag};

/// Most hops a circuit may have (tor allows 8 RELAY_EARLY cells, one per extend).
pub const MAX_PATH_LEN: usize = 8;

/// A CREATED_FAST or CREATED2 reply.
pub(super) enum CreatedReply {
    Fast(CreatedFast),
    Ntor(Created2),
}

impl From<CreatedFast> for CreatedReply {
    fn from(m: CreatedFast) -> Self {
        CreatedReply::Fast(m)
    }
}

impl From<Created2> for CreatedReply {
    fn from(m: Created2) -> Self {
        CreatedReply::Ntor(m)
    }
}

impl Node {
    // ---- OP: building ----------------------------------------------------------------

    pub(super) fn start_circuit(
        &mut self,
        path: Vec<RelayTarget>,
        first_hop: FirstHop,
    ) -> Result<CircuitHandle, CommandError> {
        if path.is_empty() || path.len() > MAX_PATH_LEN {
            return Err(CommandError::BadPath);
        }
        if self.circuits.len() >= self.config.limits.max_circuits {
            self.counters.bump(Count::TooManyCircuits);
            return Err(CommandError::Limit);
        }
        let link = self
            .link_to(path[0].addr, path[0].id)
            .ok_or(CommandError::Limit)?;
        let key = CircKey(self.fresh_u64());
        let handle = CircuitHandle(key.0);
        let deadline = self.now + self.config.limits.circuit_build_timeout;
        self.circuits.insert(
            key,
            Circuit::Client(alloc::boxed::Box::new(ClientCircuit {
                handle,
                link,
                circ_id: None,
                path,
                first_hop,
                crypto: ClientCircuitCrypto::new(),
                pending: None,
                deadline: Some(deadline),
                relay_early_left: self.config.limits.max_relay_early,
                flow: CircFlow::new(),
                streams: BTreeMap::new(),
            })),
        );
        self.client_circs.insert(handle, key);
        self.timers.insert((deadline, Timer::Circuit(key)));
        if self.links.get(&link).is_some_and(|l| l.is_open()) {
            self.send_create(key);
        }
        Ok(handle)
    }

    /// The first hop's link and our circuit id on it, for a client circuit that has sent
    /// its CREATE (for diagnostics and tests).
    pub fn circuit_first_hop(&self, handle: CircuitHandle) -> Option<(ConnId, CircId)> {
        let key = self.client_circs.get(&handle)?;
        match self.circuits.get(key)? {
            Circuit::Client(c) => c.circ_id.map(|id| (c.link, id)),
            Circuit::Relay(_) => None,
        }
    }

    /// A link opened: circuits waiting for it can send their CREATE.
    pub(super) fn on_link_open(&mut self, conn: ConnId) {
        let waiting: Vec<CircKey> = self
            .circuits
            .iter()
            .filter(|(_, c)| match c {
                Circuit::Client(c) => c.link == conn && c.circ_id.is_none(),
                Circuit::Relay(r) => {
                    matches!(r.next, NextHop::AwaitingLink { conn: c, .. } if c == conn)
                }
            })
            .map(|(&k, _)| k)
            .collect();
        for key in waiting {
            match self.circuits.get(&key) {
                Some(Circuit::Client(_)) => self.send_create(key),
                Some(Circuit::Relay(_)) => self.send_extend_create(key),
                None => {}
            }
        }
    }

    /// A fresh circuit id on `conn`, registered to `key`.
    fn claim_circ_id(&mut self, conn: ConnId, key: CircKey) -> Option<CircId> {
        let link = self.links.get(&conn)?;
        if link.n_circuits >= self.config.limits.max_circuits_per_link {
            self.counters.bump(Count::TooManyCircuits);
            return None;
        }
        let ends = &self.circ_ends;
        let id = link.fresh_circ_id(&mut self.rng, |id| ends.contains_key(&(conn, id)))?;
        self.circ_ends.insert((conn, id), key);
        if let Some(link) = self.links.get_mut(&conn) {
            link.n_circuits += 1;
        }
        Some(id)
    }

    fn send_create(&mut self, key: CircKey) {
        let Some(Circuit::Client(c)) = self.circuits.get(&key) else {
            return;
        };
        let conn = c.link;
        let Some(id) = self.claim_circ_id(conn, key) else {
            self.destroy_circuit(key, DestroyReason::RESOURCELIMIT, None);
            return;
        };
        let Some(Circuit::Client(c)) = self.circuits.get_mut(&key) else {
            return;
        };
        c.circ_id = Some(id);
        let (pending, msg): (PendingHop, ChanMsg) = match c.first_hop {
            FirstHop::Fast => {
                let (state, x) = fast_client_create(&mut self.rng);
                (PendingHop::Fast(state), CreateFast { x }.into())
            }
            FirstHop::Ntor => {
                let relay = ntor_public(&c.path[0]);
                let (state, onion_skin) = ntor_client_create(&mut self.rng, &relay);
                let msg = Create2 {
                    handshake_type: HandshakeType::NTOR,
                    hdata: onion_skin.to_vec(),
                };
                (PendingHop::Ntor(state), msg.into())
            }
        };
        c.pending = Some(pending);
        self.send_cell(conn, &ChanCell::new(Some(id), msg));
    }

    pub(super) fn on_created(&mut self, conn: ConnId, id: CircId, reply: CreatedReply) {
        let Some(&key) = self.circ_ends.get(&(conn, id)) else {
            self.counters.bump(Count::UnknownCircuit);
            return;
        };
        match self.circuits.get_mut(&key) {
            Some(Circuit::Client(c)) if c.crypto.n_hops() == 0 => {
                let keys = match (c.pending.take(), reply) {
                    (Some(PendingHop::Fast(s)), CreatedReply::Fast(m)) => {
                        let mut r = [0u8; 40];
                        r[..20].copy_from_slice(&m.y);
                        r[20..].copy_from_slice(&m.kh);
                        s.finish(&r).ok()
                    }
                    (Some(PendingHop::Ntor(s)), CreatedReply::Ntor(m)) => s.finish(&m.hdata).ok(),
                    _ => None,
                };
                match keys.map(|k| c.crypto.add_hop(&k)) {
                    Some(Ok(_)) => self.advance_build(key),
                    _ => {
                        self.counters.bump(Count::CircuitHandshakeFailed);
                        self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                    }
                }
            }
            Some(Circuit::Relay(r)) => {
                let expected =
                    matches!(r.next, NextHop::AwaitingCreated(e) if e.conn == conn && e.id == id);
                let CreatedReply::Ntor(m) = reply else {
                    self.counters.bump(Count::UnexpectedCell);
                    self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                    return;
                };
                if !expected {
                    self.counters.bump(Count::UnexpectedCell);
                    self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                    return;
                }
                r.next = NextHop::Open(CircEnd { conn, id });
                let cell = RelayCell::new(None, Extended2 { hdata: m.hdata });
                self.send_relay_inbound(key, &cell);
            }
            _ => {
                self.counters.bump(Count::UnexpectedCell);
                self.destroy_circuit(key, DestroyReason::PROTOCOL, Some(conn));
            }
        }
    }

    /// After each hop: extend to the next one, or report the circuit built.
    fn advance_build(&mut self, key: CircKey) {
        let Some(Circuit::Client(c)) = self.circuits.get_mut(&key) else {
            return;
        };
        let n = c.crypto.n_hops();
        if n >= c.path.len() {
            if let Some(at) = c.deadline.take() {
                self.timers.remove(&(at, Timer::Circuit(key)));
            }
            let handle = c.handle;
            // The DHT's own circuits are not the application's: no event for them.
            if !self.on_dht_circuit_built(key) {
                self.emit(Event::CircuitBuilt(handle));
            }
            self.on_ordb_circuit_built(key);
            self.on_download_circuit_built(key);
            return;
        }
        if c.relay_early_left == 0 {
            self.destroy_circuit(key, DestroyReason::RESOURCELIMIT, None);
            return;
        }
        let next = c.path[n].clone();
        let (state, onion_skin) = ntor_client_create(&mut self.rng, &ntor_public(&next));
        c.pending = Some(PendingHop::Ntor(state));
        let mut link_specs = alloc::vec![link_spec_addr(next.addr), LinkSpec::RsaId(next.id.0)];
        if let Some(ed) = next.ed_id {
            link_specs.push(LinkSpec::Ed25519Id(ed));
        }
        let extend = Extend2 {
            link_specs,
            handshake_type: HandshakeType::NTOR,
            hdata: onion_skin.to_vec(),
        };
        let hop = HopNum(u8::try_from(n - 1).unwrap_or(u8::MAX));
        self.send_relay_outbound(key, hop, &RelayCell::new(None, extend), true);
    }

    pub(super) fn on_circuit_timer(&mut self, key: CircKey, at: Instant) {
        let due =
            matches!(self.circuits.get(&key), Some(Circuit::Client(c)) if c.deadline == Some(at));
        if due {
            self.counters.bump(Count::CircuitBuildTimeout);
            self.destroy_circuit(key, DestroyReason::TIMEOUT, None);
        }
    }

    // ---- OR: accepting and extending --------------------------------------------------

    /// Checks common to CREATE_FAST and CREATE2; `true` when the circuit may be created.
    fn may_create(&mut self, conn: ConnId, id: CircId) -> bool {
        if !self.config.role.relay {
            self.counters.bump(Count::NotARelay);
            self.send_destroy(conn, id, DestroyReason::PROTOCOL);
            return false;
        }
        let Some(link) = self.links.get(&conn) else {
            return false;
        };
        if self.circ_ends.contains_key(&(conn, id)) || !link.peer_may_use(id) {
            // A peer that reuses or forges circuit ids is broken: drop the link.
            self.counters.bump(Count::CircuitIdInUse);
            self.drop_link(conn, super::api::LinkCloseReason::ProtocolViolation, true);
            return false;
        }
        if self.circuits.len() >= self.config.limits.max_circuits
            || link.n_circuits >= self.config.limits.max_circuits_per_link
        {
            self.counters.bump(Count::TooManyCircuits);
            self.send_destroy(conn, id, DestroyReason::RESOURCELIMIT);
            return false;
        }
        true
    }

    pub(super) fn on_create_fast(&mut self, conn: ConnId, id: CircId, m: CreateFast) {
        if !self.may_create(conn, id) {
            return;
        }
        let Ok((reply, keys)) = fast_server_reply(&mut self.rng, &m.x) else {
            self.counters.bump(Count::CircuitHandshakeFailed);
            self.send_destroy(conn, id, DestroyReason::PROTOCOL);
            return;
        };
        let mut y = [0u8; 20];
        let mut kh = [0u8; 20];
        y.copy_from_slice(&reply[..20]);
        kh.copy_from_slice(&reply[20..]);
        self.add_relay_circuit(conn, id, RelayHopCrypto::new(&keys));
        self.send_cell(conn, &ChanCell::new(Some(id), CreatedFast { y, kh }));
    }

    pub(super) fn on_create2(&mut self, conn: ConnId, id: CircId, m: Create2) {
        if !self.may_create(conn, id) {
            return;
        }
        let result = if m.handshake_type == HandshakeType::NTOR {
            ntor_server_reply(
                &mut self.rng,
                core::slice::from_ref(&self.keys.ntor),
                &m.hdata,
            )
            .ok()
        } else {
            None
        };
        let Some((reply, keys)) = result else {
            self.counters.bump(Count::CircuitHandshakeFailed);
            self.send_destroy(conn, id, DestroyReason::PROTOCOL);
            return;
        };
        self.add_relay_circuit(conn, id, RelayHopCrypto::new(&keys));
        self.send_cell(
            conn,
            &ChanCell::new(
                Some(id),
                Created2 {
                    hdata: reply.to_vec(),
                },
            ),
        );
    }

    fn add_relay_circuit(&mut self, conn: ConnId, id: CircId, crypto: RelayHopCrypto) {
        let key = CircKey(self.fresh_u64());
        self.circuits.insert(
            key,
            Circuit::Relay(alloc::boxed::Box::new(RelayCircuit {
                prev: CircEnd { conn, id },
                next: NextHop::None,
                crypto,
                relay_early_seen: 0,
                flow: CircFlow::new(),
                streams: BTreeMap::new(),
            })),
        );
        self.circ_ends.insert((conn, id), key);
        if let Some(link) = self.links.get_mut(&conn) {
            link.n_circuits += 1;
        }
    }

    fn on_extend2(&mut self, key: CircKey, m: Extend2, early: bool) {
        if !early {
            self.counters.bump(Count::RelayEarlyViolation);
            self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
            return;
        }
        let Some(Circuit::Relay(r)) = self.circuits.get(&key) else {
            return;
        };
        if !matches!(r.next, NextHop::None) {
            self.counters.bump(Count::UnexpectedCell);
            self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
            return;
        }
        let addr = m.link_specs.iter().find_map(|s| match *s {
            LinkSpec::Ipv4 { addr, port } => Some(SocketAddr::new(IpAddr::V4(addr), port)),
            LinkSpec::Ipv6 { addr, port } => Some(SocketAddr::new(IpAddr::V6(addr), port)),
            _ => None,
        });
        let id = m.link_specs.iter().find_map(|s| match *s {
            LinkSpec::RsaId(id) => Some(crate::crypto::identity::PeerId(id)),
            _ => None,
        });
        let (Some(addr), Some(id)) = (addr, id) else {
            self.counters.bump(Count::ExtendFailed);
            self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
            return;
        };
        if id == self.peer_id() {
            self.counters.bump(Count::ExtendFailed);
            self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
            return;
        }
        let Some(conn) = self.link_to(addr, id) else {
            self.destroy_circuit(key, DestroyReason::RESOURCELIMIT, None);
            return;
        };
        if let Some(Circuit::Relay(r)) = self.circuits.get_mut(&key) {
            r.next = NextHop::AwaitingLink {
                conn,
                htype: m.handshake_type,
                hdata: m.hdata,
            };
        }
        if self.links.get(&conn).is_some_and(|l| l.is_open()) {
            self.send_extend_create(key);
        }
    }

    fn send_extend_create(&mut self, key: CircKey) {
        let Some(Circuit::Relay(r)) = self.circuits.get(&key) else {
            return;
        };
        let NextHop::AwaitingLink { conn, .. } = r.next else {
            return;
        };
        let Some(id) = self.claim_circ_id(conn, key) else {
            self.counters.bump(Count::ExtendFailed);
            self.destroy_circuit(key, DestroyReason::RESOURCELIMIT, None);
            return;
        };
        let Some(Circuit::Relay(r)) = self.circuits.get_mut(&key) else {
            return;
        };
        let NextHop::AwaitingLink { htype, hdata, .. } =
            core::mem::replace(&mut r.next, NextHop::AwaitingCreated(CircEnd { conn, id }))
        else {
            return;
        };
        self.send_cell(
            conn,
            &ChanCell::new(
                Some(id),
                Create2 {
                    handshake_type: htype,
                    hdata,
                },
            ),
        );
    }

    // ---- relay cells ------------------------------------------------------------------

    pub(super) fn on_relay_cell(
        &mut self,
        conn: ConnId,
        id: CircId,
        body: RelayCellBody,
        early: bool,
    ) {
        let Some(&key) = self.circ_ends.get(&(conn, id)) else {
            self.counters.bump(Count::UnknownCircuit);
            return;
        };
        let mut body = body.0;
        match self.circuits.get_mut(&key) {
            Some(Circuit::Client(c)) => {
                if early {
                    // RELAY_EARLY only travels away from the client.
                    self.counters.bump(Count::RelayEarlyViolation);
                    self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                    return;
                }
                let Ok((hop, tag)) = c.crypto.decrypt_inbound(&mut body) else {
                    self.counters.bump(Count::UnrecognizedRelayCell);
                    self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                    return;
                };
                match RelayCell::decode(&body) {
                    Ok(cell) => self.on_client_relay_msg(key, hop, tag, cell),
                    Err(_) => {
                        self.counters.bump(Count::MalformedRelayMessage);
                        self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                    }
                }
            }
            Some(Circuit::Relay(r)) => {
                let from_prev = r.prev.conn == conn && r.prev.id == id;
                if !from_prev {
                    // Inbound, from the next hop: add our layer and pass it back.
                    r.crypto.encrypt_inbound(&mut body);
                    let prev = r.prev;
                    let cell = ChanCell::new(
                        Some(prev.id),
                        Relay {
                            body: RelayCellBody(body),
                        },
                    );
                    if !self.send_cell(prev.conn, &cell) {
                        self.destroy_circuit(key, DestroyReason::RESOURCELIMIT, None);
                    }
                    return;
                }
                if early {
                    r.relay_early_seen = r.relay_early_seen.saturating_add(1);
                    if r.relay_early_seen > self.config.limits.max_relay_early {
                        self.counters.bump(Count::RelayEarlyViolation);
                        self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                        return;
                    }
                }
                match r.crypto.decrypt_outbound(&mut body) {
                    OutboundCell::Forward => {
                        let NextHop::Open(next) = r.next else {
                            self.counters.bump(Count::UnrecognizedRelayCell);
                            self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                            return;
                        };
                        let body = RelayCellBody(body);
                        let msg: ChanMsg = if early {
                            RelayEarly { body }.into()
                        } else {
                            Relay { body }.into()
                        };
                        if !self.send_cell(next.conn, &ChanCell::new(Some(next.id), msg)) {
                            self.destroy_circuit(key, DestroyReason::RESOURCELIMIT, None);
                        }
                    }
                    OutboundCell::ForUs(tag) => match RelayCell::decode(&body) {
                        Ok(cell) => self.on_hop_relay_msg(key, tag, cell, early),
                        Err(_) => {
                            self.counters.bump(Count::MalformedRelayMessage);
                            self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                        }
                    },
                }
            }
            None => {}
        }
    }

    /// A relay message for the OP, from hop `hop`.
    fn on_client_relay_msg(&mut self, key: CircKey, hop: HopNum, tag: SendmeTag, cell: RelayCell) {
        let RelayCell { stream_id, msg } = cell;
        match msg {
            RelayMsg::Extended2(m) => {
                let Some(Circuit::Client(c)) = self.circuits.get_mut(&key) else {
                    return;
                };
                let from_last = usize::from(hop.0) + 1 == c.crypto.n_hops();
                let keys = match c.pending.take() {
                    Some(PendingHop::Ntor(s)) if from_last && !c.is_built() => {
                        s.finish(&m.hdata).ok()
                    }
                    _ => None,
                };
                match keys.map(|k| c.crypto.add_hop(&k)) {
                    Some(Ok(_)) => self.advance_build(key),
                    _ => {
                        self.counters.bump(Count::CircuitHandshakeFailed);
                        self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                    }
                }
            }
            RelayMsg::Truncated(m) => {
                // We never re-extend a cut circuit: report it closed with the reason.
                self.destroy_circuit(key, m.reason, None);
            }
            RelayMsg::Sendme(s) if stream_id.is_none() => {
                if self.on_circuit_sendme(key, s) {
                    self.on_client_circuit_window_open(key);
                }
            }
            RelayMsg::Drop(_) => {}
            RelayMsg::PeerSignal(m) if self.peersm.is_some() => self.on_peer_signal(key, m),
            msg @ (RelayMsg::DhtFound(_) | RelayMsg::DhtPing(_) | RelayMsg::DbFoundPeer(_))
                if self.peersm.is_some() =>
            {
                self.on_dht_reply(key, stream_id, msg)
            }
            msg @ (RelayMsg::DbConnected(_)
            | RelayMsg::DbHashes(_)
            | RelayMsg::DbSegment(_)
            | RelayMsg::DbData(_)
            | RelayMsg::DbEnd(_))
                if self.is_download_stream(key, stream_id) =>
            {
                self.on_download_reply(key, stream_id, msg)
            }
            msg if self.ordb.is_some() && ordb::is_ordb_msg(&msg) => {
                self.on_ordb_msg(key, stream_id, msg)
            }
            msg => self.on_client_stream_msg(key, hop, tag, stream_id, msg),
        }
    }

    /// A relay message for this hop (OR side).
    fn on_hop_relay_msg(&mut self, key: CircKey, tag: SendmeTag, cell: RelayCell, early: bool) {
        let RelayCell { stream_id, msg } = cell;
        match msg {
            RelayMsg::Extend2(m) => self.on_extend2(key, m, early),
            RelayMsg::Truncate(_) => {
                let Some(Circuit::Relay(r)) = self.circuits.get_mut(&key) else {
                    return;
                };
                match core::mem::replace(&mut r.next, NextHop::None) {
                    NextHop::Open(end) | NextHop::AwaitingCreated(end) => {
                        self.circ_ends.remove(&(end.conn, end.id));
                        self.release_circ_id(end.conn);
                        self.send_destroy(end.conn, end.id, DestroyReason::REQUESTED);
                    }
                    NextHop::AwaitingLink { .. } | NextHop::None => {}
                }
                let reply = RelayCell::new(
                    None,
                    Truncated {
                        reason: DestroyReason::REQUESTED,
                    },
                );
                self.send_relay_inbound(key, &reply);
            }
            RelayMsg::Sendme(s) if stream_id.is_none() => {
                if self.on_circuit_sendme(key, s) {
                    self.pump_circuit_exits(key);
                }
            }
            RelayMsg::Drop(_) => {}
            RelayMsg::PeerSignal(m) if self.peersm.is_some() => self.on_peer_signal(key, m),
            msg @ (RelayMsg::DhtPing(_)
            | RelayMsg::DhtFindNode(_)
            | RelayMsg::DhtFindValue(_)
            | RelayMsg::DhtStore(_)
            | RelayMsg::DbFindPeer(_))
                if self.peersm.is_some() =>
            {
                self.on_dht_request(key, stream_id, msg)
            }
            msg if self.ordb.is_some() && ordb::is_ordb_msg(&msg) => {
                self.on_ordb_msg(key, stream_id, msg)
            }
            msg => self.on_exit_msg(key, tag, stream_id, msg),
        }
    }

    /// A circuit-level SENDME at an endpoint: check its tag and open the window. `true`
    /// when the window opened; on a violation the circuit is destroyed.
    fn on_circuit_sendme(&mut self, key: CircKey, s: Sendme) -> bool {
        let flow = match self.circuits.get_mut(&key) {
            Some(Circuit::Client(c)) => &mut c.flow,
            Some(Circuit::Relay(r)) => &mut r.flow,
            None => return false,
        };
        // Authenticated SENDMEs (v1) are required, as tor 0.4.9 requires them.
        let checked = match s {
            Sendme::V1 { tag } => flow.tags.check(&tag).map_err(|_| Count::BadSendmeTag),
            _ => Err(Count::BadSendmeTag),
        };
        let result = checked.and_then(|()| {
            flow.send
                .on_sendme()
                .map_err(|_| Count::FlowControlViolation)
        });
        match result {
            Ok(()) => true,
            Err(count) => {
                self.counters.bump(count);
                self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                false
            }
        }
    }

    /// Account a DATA cell at a circuit endpoint; sends the circuit SENDME when due.
    /// `false` (circuit destroyed) on a window violation.
    pub(super) fn circuit_data_received(&mut self, key: CircKey, tag: SendmeTag) -> bool {
        let (flow, client) = match self.circuits.get_mut(&key) {
            Some(Circuit::Client(c)) => (&mut c.flow, true),
            Some(Circuit::Relay(r)) => (&mut r.flow, false),
            None => return false,
        };
        if flow.recv.on_data().is_err() {
            self.counters.bump(Count::FlowControlViolation);
            self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
            return false;
        }
        if !flow.recv.sendme_due() {
            return true;
        }
        flow.recv.sendme_sent();
        let sendme = RelayCell::new(None, Sendme::V1 { tag: tag.0 });
        if client {
            let hop = match self.circuits.get(&key) {
                Some(Circuit::Client(c)) => c.last_hop(),
                _ => return false,
            };
            self.send_relay_outbound(key, hop, &sendme, false);
        } else {
            self.send_relay_inbound(key, &sendme);
        }
        true
    }

    // ---- sending relay cells -----------------------------------------------------------

    /// Encrypt a relay cell for `hop` of a client circuit and queue it. Returns the cell's
    /// SENDME tag, or `None` when it could not be sent (the circuit is then destroyed).
    pub(super) fn send_relay_outbound(
        &mut self,
        key: CircKey,
        hop: HopNum,
        cell: &RelayCell,
        early: bool,
    ) -> Option<SendmeTag> {
        let Some(Circuit::Client(c)) = self.circuits.get_mut(&key) else {
            return None;
        };
        let (Some(id), conn) = (c.circ_id, c.link) else {
            return None;
        };
        let Ok(mut body) = cell.encode(&mut self.rng) else {
            self.counters.bump(Count::MalformedRelayMessage);
            return None;
        };
        let Ok(tag) = c.crypto.encrypt_outbound(&mut body, hop) else {
            return None;
        };
        let body = RelayCellBody(body);
        let msg: ChanMsg = if early {
            c.relay_early_left = c.relay_early_left.saturating_sub(1);
            RelayEarly { body }.into()
        } else {
            Relay { body }.into()
        };
        if self.send_cell(conn, &ChanCell::new(Some(id), msg)) {
            Some(tag)
        } else {
            self.destroy_circuit(key, DestroyReason::RESOURCELIMIT, None);
            None
        }
    }

    /// Originate a relay cell at this hop toward the client and queue it. Returns the
    /// cell's SENDME tag, or `None` when it could not be sent (the circuit is destroyed).
    pub(super) fn send_relay_inbound(
        &mut self,
        key: CircKey,
        cell: &RelayCell,
    ) -> Option<SendmeTag> {
        let Some(Circuit::Relay(r)) = self.circuits.get_mut(&key) else {
            return None;
        };
        let Ok(mut body) = cell.encode(&mut self.rng) else {
            self.counters.bump(Count::MalformedRelayMessage);
            return None;
        };
        let tag = r.crypto.originate_inbound(&mut body);
        let prev = r.prev;
        let cell = ChanCell::new(
            Some(prev.id),
            Relay {
                body: RelayCellBody(body),
            },
        );
        if self.send_cell(prev.conn, &cell) {
            Some(tag)
        } else {
            self.destroy_circuit(key, DestroyReason::RESOURCELIMIT, None);
            None
        }
    }

    // ---- teardown ---------------------------------------------------------------------

    pub(super) fn send_destroy(&mut self, conn: ConnId, id: CircId, reason: DestroyReason) {
        self.send_cell(conn, &ChanCell::new(Some(id), Destroy { reason }));
    }

    fn release_circ_id(&mut self, conn: ConnId) {
        if let Some(l) = self.links.get_mut(&conn) {
            l.n_circuits = l.n_circuits.saturating_sub(1);
        }
    }

    pub(super) fn on_destroy(&mut self, conn: ConnId, id: CircId, reason: DestroyReason) {
        let Some(key) = self.circ_ends.remove(&(conn, id)) else {
            self.counters.bump(Count::UnknownCircuit);
            return;
        };
        self.release_circ_id(conn);
        self.destroy_circuit(key, reason, Some(conn));
    }

    /// Close a circuit everywhere: DESTROY to each end except `from` (which already knows),
    /// its streams closed, the application told.
    pub(super) fn destroy_circuit(
        &mut self,
        key: CircKey,
        reason: DestroyReason,
        from: Option<ConnId>,
    ) {
        let Some(circ) = self.circuits.remove(&key) else {
            return;
        };
        match circ {
            Circuit::Client(c) => {
                if let Some(at) = c.deadline {
                    self.timers.remove(&(at, Timer::Circuit(key)));
                }
                if let Some(id) = c.circ_id {
                    if self.circ_ends.remove(&(c.link, id)).is_some() {
                        self.release_circ_id(c.link);
                    }
                    if from != Some(c.link) {
                        self.send_destroy(c.link, id, reason);
                    }
                }
                self.client_circs.remove(&c.handle);
                for (_, s) in c.streams {
                    self.stream_gone(s, crate::cells::relay::EndReason::DESTROY);
                }
                if !self.on_dht_circuit_closed(key) {
                    self.emit(Event::CircuitClosed {
                        circuit: c.handle,
                        reason,
                    });
                }
                self.on_ordb_circuit_gone(key);
                self.on_download_circuit_closed(key);
                self.on_signal_circuit_gone(key);
            }
            Circuit::Relay(r) => {
                let mut ends = alloc::vec![r.prev];
                if let NextHop::Open(e) | NextHop::AwaitingCreated(e) = r.next {
                    ends.push(e);
                }
                for e in ends {
                    if self.circ_ends.remove(&(e.conn, e.id)).is_some() {
                        self.release_circ_id(e.conn);
                    }
                    if from != Some(e.conn) {
                        self.send_destroy(e.conn, e.id, reason);
                    }
                }
                for (_, exit) in r.streams {
                    self.drop_exit(exit, true);
                }
                self.on_ordb_circuit_gone(key);
                self.on_signal_circuit_gone(key);
            }
        }
    }
}

fn ntor_public(t: &RelayTarget) -> NtorPublicKey {
    NtorPublicKey {
        id: t.id.0,
        onion_key: x25519_dalek::PublicKey::from(t.ntor_key),
    }
}

fn link_spec_addr(a: SocketAddr) -> LinkSpec {
    match a {
        SocketAddr::V4(v4) => LinkSpec::Ipv4 {
            addr: *v4.ip(),
            port: v4.port(),
        },
        SocketAddr::V6(v6) => LinkSpec::Ipv6 {
            addr: *v6.ip(),
            port: v6.port(),
        },
    }
}
