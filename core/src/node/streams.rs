//! Streams inside the node: application streams at the OP, exit and directory streams
//! at the last hop, and the stream-level flow control between them.

use alloc::collections::VecDeque;
use alloc::string::String;

use super::api::{
    CircuitHandle, CommandError, ConnId, ConnectTarget, Event, Output, StreamHandle, StreamTarget,
};
use super::counters::Count;
use super::{Node, Timer};
use crate::Instant;
use crate::cells::channel::DestroyReason;
use crate::cells::relay::{
    Begin, BeginDir, Connected, Data, End, EndReason, Host, MAX_DATA_LEN, RelayCell, RelayMsg,
    Sendme, StreamId,
};
use crate::circuit::{CircKey, Circuit};
use crate::crypto::relay::{HopNum, SendmeTag};
use crate::stream::dir::{DirRequest, DirStep};
use crate::stream::{ClientStream, ExitKind, ExitStream, StreamFlow};

/// A stream SENDME is sent only while fewer than this many received bytes wait to be
/// consumed, so a stream never buffers more than its window.
const SENDME_BUFFER_THRESHOLD: usize = 50 * MAX_DATA_LEN;

impl Node {
    // ---- OP: application streams ------------------------------------------------------

    pub(super) fn start_stream(
        &mut self,
        circuit: CircuitHandle,
        target: StreamTarget,
    ) -> Result<StreamHandle, CommandError> {
        let key = *self
            .client_circs
            .get(&circuit)
            .ok_or(CommandError::NoSuchCircuit)?;
        let Some(Circuit::Client(c)) = self.circuits.get(&key) else {
            return Err(CommandError::NoSuchCircuit);
        };
        if !c.is_built() {
            return Err(CommandError::NoSuchCircuit);
        }
        if c.streams.len() >= self.config.limits.max_streams_per_circuit {
            self.counters.bump(Count::TooManyStreams);
            return Err(CommandError::Limit);
        }
        let msg: RelayMsg = match target {
            StreamTarget::Tcp { host, port } => Begin {
                host: parse_host(host),
                port,
                flags: None,
            }
            .into(),
            StreamTarget::Directory => BeginDir.into(),
        };
        let id = loop {
            let raw = (rand_core::Rng::next_u32(&mut self.rng) & 0xffff) as u16;
            if let Some(id) = StreamId::new(raw)
                && !c.streams.contains_key(&id)
            {
                break id;
            }
        };
        let hop = c.last_hop();
        let handle = StreamHandle(self.fresh_u64());
        if let Some(Circuit::Client(c)) = self.circuits.get_mut(&key) {
            c.streams.insert(id, handle);
        }
        self.streams.insert(
            handle,
            ClientStream {
                circ: key,
                id,
                open: false,
                flow: StreamFlow::new(),
                inbuf: VecDeque::new(),
                readable_announced: false,
                want_writable: false,
                ended: None,
            },
        );
        self.send_relay_outbound(key, hop, &RelayCell::new(Some(id), msg), false);
        Ok(handle)
    }

    pub(super) fn close_client_stream(&mut self, handle: StreamHandle) -> Result<(), CommandError> {
        let s = self
            .streams
            .remove(&handle)
            .ok_or(CommandError::NoSuchStream)?;
        if let Some(Circuit::Client(c)) = self.circuits.get_mut(&s.circ) {
            c.streams.remove(&s.id);
            if s.ended.is_none() {
                let hop = c.last_hop();
                let end = RelayCell::new(Some(s.id), End::new(EndReason::DONE));
                self.send_relay_outbound(s.circ, hop, &end, false);
            }
        }
        Ok(())
    }

    /// Received bytes of a stream waiting to be read.
    pub fn stream_buffered(&self, handle: StreamHandle) -> usize {
        self.streams.get(&handle).map_or(0, |s| s.inbuf.len())
    }

    /// How many bytes `write_stream` would accept now.
    pub fn stream_capacity(&self, handle: StreamHandle) -> usize {
        let Some(s) = self.streams.get(&handle) else {
            return 0;
        };
        let Some(Circuit::Client(c)) = self.circuits.get(&s.circ) else {
            return 0;
        };
        if !s.open || s.ended.is_some() {
            return 0;
        }
        let room = self.links.get(&c.link).map_or(0, |l| {
            l.room(self.config.limits.max_queued_bytes_per_conn)
                / crate::cells::channel::MAX_FIXED_CELL_LEN
        });
        let cells = usize::from(s.flow.send.available().min(c.flow.send.available())).min(room);
        cells * MAX_DATA_LEN
    }

    /// Send application bytes on a stream; returns how many were taken (fewer when the
    /// flow-control windows or the link's queue are full — the rest waits for
    /// [`Event::StreamWritable`]).
    pub fn write_stream(
        &mut self,
        now: Instant,
        handle: StreamHandle,
        data: &[u8],
    ) -> Result<usize, CommandError> {
        self.advance(now);
        let s = self
            .streams
            .get(&handle)
            .ok_or(CommandError::NoSuchStream)?;
        if s.ended.is_some() {
            return Err(CommandError::NoSuchStream);
        }
        if !s.open {
            return Err(CommandError::NotConnected);
        }
        let mut taken = 0;
        while taken < data.len() && self.stream_capacity(handle) > 0 {
            let chunk = &data[taken..data.len().min(taken + MAX_DATA_LEN)];
            let Some(s) = self.streams.get_mut(&handle) else {
                break;
            };
            let (key, id) = (s.circ, s.id);
            let _ = s.flow.send.take();
            let Some(Circuit::Client(c)) = self.circuits.get_mut(&key) else {
                break;
            };
            let record = c.flow.send.take() == Some(true);
            let hop = c.last_hop();
            let Ok(msg) = Data::new(chunk) else { break };
            let Some(tag) =
                self.send_relay_outbound(key, hop, &RelayCell::new(Some(id), msg), false)
            else {
                break;
            };
            if record && let Some(Circuit::Client(c)) = self.circuits.get_mut(&key) {
                let _ = c.flow.tags.record(tag.0);
            }
            taken += chunk.len();
        }
        if taken < data.len()
            && let Some(s) = self.streams.get_mut(&handle)
        {
            s.want_writable = true;
        }
        Ok(taken)
    }

    /// Read received bytes of a stream into `buf`; returns how many (0: nothing yet).
    /// Reading lets the node acknowledge data with SENDMEs, so the peer may send more.
    pub fn read_stream(
        &mut self,
        now: Instant,
        handle: StreamHandle,
        buf: &mut [u8],
    ) -> Result<usize, CommandError> {
        self.advance(now);
        let s = self
            .streams
            .get_mut(&handle)
            .ok_or(CommandError::NoSuchStream)?;
        let n = super::drain_into(&mut s.inbuf, buf);
        if s.inbuf.is_empty() {
            s.readable_announced = false;
            if let Some(reason) = s.ended {
                self.streams.remove(&handle);
                self.emit(Event::StreamClosed {
                    stream: handle,
                    reason,
                });
                return Ok(n);
            }
        }
        let (key, id) = (s.circ, s.id);
        while let Some(s) = self.streams.get_mut(&handle) {
            if !(s.flow.recv.sendme_due() && s.inbuf.len() < SENDME_BUFFER_THRESHOLD) {
                break;
            }
            s.flow.recv.sendme_sent();
            let Some(Circuit::Client(c)) = self.circuits.get(&key) else {
                break;
            };
            let hop = c.last_hop();
            self.send_relay_outbound(key, hop, &RelayCell::new(Some(id), Sendme::V0), false);
        }
        Ok(n)
    }

    /// A stream's end: reported now, or once its received bytes are read.
    pub(super) fn stream_gone(&mut self, handle: StreamHandle, reason: EndReason) {
        let Some(s) = self.streams.get_mut(&handle) else {
            return;
        };
        if s.inbuf.is_empty() {
            self.streams.remove(&handle);
            self.emit(Event::StreamClosed {
                stream: handle,
                reason,
            });
        } else {
            s.ended = Some(reason);
        }
    }

    pub(super) fn on_client_stream_msg(
        &mut self,
        key: CircKey,
        hop: HopNum,
        tag: SendmeTag,
        stream_id: Option<StreamId>,
        msg: RelayMsg,
    ) {
        let Some(Circuit::Client(c)) = self.circuits.get(&key) else {
            return;
        };
        if hop != c.last_hop() {
            self.counters.bump(Count::UnexpectedCell);
            return;
        }
        let is_data = matches!(msg, RelayMsg::Data(_));
        if is_data && !self.circuit_data_received(key, tag) {
            return;
        }
        let Some(Circuit::Client(c)) = self.circuits.get(&key) else {
            return;
        };
        let Some(&handle) = stream_id.and_then(|id| c.streams.get(&id)) else {
            // Data for a stream we already closed is normal; anything else is counted.
            self.counters.bump(Count::StaleReference);
            return;
        };
        let Some(s) = self.streams.get_mut(&handle) else {
            return;
        };
        match msg {
            RelayMsg::Connected(m) if !s.open => {
                s.open = true;
                self.emit(Event::StreamOpened {
                    stream: handle,
                    addr: m.addr.map(|(a, _)| a),
                });
            }
            RelayMsg::Data(d) if s.open && s.ended.is_none() => {
                if s.flow.recv.on_data().is_err() {
                    self.counters.bump(Count::FlowControlViolation);
                    self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                    return;
                }
                s.inbuf.extend(d.data.iter());
                if !s.readable_announced {
                    s.readable_announced = true;
                    self.emit(Event::StreamReadable(handle));
                }
            }
            RelayMsg::End(m) => {
                if let Some(Circuit::Client(c)) = self.circuits.get_mut(&key) {
                    c.streams.remove(&s.id);
                }
                self.stream_gone(handle, m.reason);
            }
            RelayMsg::Sendme(_) => {
                if s.flow.send.on_sendme().is_err() {
                    self.counters.bump(Count::FlowControlViolation);
                    self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                    return;
                }
                if s.want_writable {
                    s.want_writable = false;
                    self.emit(Event::StreamWritable(handle));
                }
            }
            _ => {
                self.counters.bump(Count::UnexpectedCell);
                self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
            }
        }
    }

    /// The circuit window of a client circuit opened: streams that were blocked hear it.
    pub(super) fn on_client_circuit_window_open(&mut self, key: CircKey) {
        let Some(Circuit::Client(c)) = self.circuits.get(&key) else {
            return;
        };
        let handles: alloc::vec::Vec<StreamHandle> = c.streams.values().copied().collect();
        for h in handles {
            if let Some(s) = self.streams.get_mut(&h)
                && s.want_writable
            {
                s.want_writable = false;
                self.emit(Event::StreamWritable(h));
            }
        }
    }

    // ---- exit side --------------------------------------------------------------------

    /// A stream message at the last hop.
    pub(super) fn on_exit_msg(
        &mut self,
        key: CircKey,
        tag: SendmeTag,
        stream_id: Option<StreamId>,
        msg: RelayMsg,
    ) {
        let Some(id) = stream_id else {
            self.counters.bump(Count::UnexpectedCell);
            return;
        };
        match msg {
            RelayMsg::Begin(b) => self.on_begin(key, id, b),
            RelayMsg::BeginDir(_) => self.on_begin_dir(key, id),
            RelayMsg::Data(d) => {
                if !self.circuit_data_received(key, tag) {
                    return;
                }
                let Some(conn) = self.exit_of(key, id) else {
                    self.counters.bump(Count::StaleReference);
                    return;
                };
                self.on_exit_stream_data(conn, &d.data);
            }
            RelayMsg::End(_) => {
                if let Some(conn) = self.exit_of(key, id) {
                    self.drop_exit(conn, true);
                }
            }
            RelayMsg::Sendme(_) => {
                let Some(conn) = self.exit_of(key, id) else {
                    return;
                };
                let Some(e) = self.exits.get_mut(&conn) else {
                    return;
                };
                if e.flow.send.on_sendme().is_err() {
                    self.counters.bump(Count::FlowControlViolation);
                    self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
                    return;
                }
                self.pump_exit(conn);
            }
            _ => {
                // Peersm messages are handled by the DHT and ORDB layers; anything else
                // at a last hop is not for us.
                self.counters.bump(Count::UnexpectedCell);
            }
        }
    }

    fn exit_of(&self, key: CircKey, id: StreamId) -> Option<ConnId> {
        match self.circuits.get(&key) {
            Some(Circuit::Relay(r)) => r.streams.get(&id).copied(),
            _ => None,
        }
    }

    /// Reply END on a stream that was never opened.
    fn refuse_stream(&mut self, key: CircKey, id: StreamId, reason: EndReason) {
        self.send_relay_inbound(key, &RelayCell::new(Some(id), End::new(reason)));
    }

    /// Room for one more stream on `key`; `false` after replying END or destroying.
    fn may_open_stream(&mut self, key: CircKey, id: StreamId) -> bool {
        let Some(Circuit::Relay(r)) = self.circuits.get(&key) else {
            return false;
        };
        if r.streams.contains_key(&id) {
            self.counters.bump(Count::UnexpectedCell);
            self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
            return false;
        }
        if r.streams.len() >= self.config.limits.max_streams_per_circuit {
            self.counters.bump(Count::TooManyStreams);
            self.refuse_stream(key, id, EndReason::RESOURCELIMIT);
            return false;
        }
        true
    }

    fn new_exit(&mut self, key: CircKey, id: StreamId, kind: ExitKind, open: bool) -> ConnId {
        let conn = self.fresh_conn();
        let deadline = (!open).then(|| self.now + self.config.limits.exit_connect_timeout);
        if let Some(at) = deadline {
            self.timers.insert((at, Timer::Exit(conn)));
        }
        self.exits.insert(
            conn,
            ExitStream {
                circ: key,
                id,
                kind,
                open,
                deadline,
                flow: StreamFlow::new(),
                from_dest: VecDeque::new(),
                to_dest: VecDeque::new(),
                transmit_announced: false,
                dest_closed: false,
            },
        );
        if let Some(Circuit::Relay(r)) = self.circuits.get_mut(&key) {
            r.streams.insert(id, conn);
        }
        conn
    }

    fn on_begin(&mut self, key: CircKey, id: StreamId, b: Begin) {
        if !self.may_open_stream(key, id) {
            return;
        }
        let host = match &b.host {
            Host::Name(n) => n.clone(),
            Host::Ipv4(a) => alloc::format!("{a}"),
            Host::Ipv6(a) => alloc::format!("{a}"),
        };
        if !self.config.role.exit || !self.config.exit_policy.allows(&host, b.port) {
            self.counters.bump(Count::ExitPolicyRejected);
            self.refuse_stream(key, id, EndReason::EXITPOLICY);
            return;
        }
        let conn = self.new_exit(key, id, ExitKind::Tcp, false);
        self.outputs.push_back(Output::Connect {
            conn,
            target: ConnectTarget::Exit { host, port: b.port },
        });
    }

    fn on_begin_dir(&mut self, key: CircKey, id: StreamId) {
        if !self.may_open_stream(key, id) {
            return;
        }
        if self.config.directory.is_empty() {
            self.refuse_stream(key, id, EndReason::NOTDIRECTORY);
            return;
        }
        self.new_exit(key, id, ExitKind::Dir(DirRequest::default()), true);
        self.send_relay_inbound(key, &RelayCell::new(Some(id), Connected { addr: None }));
    }

    pub(super) fn on_exit_connected(&mut self, conn: ConnId) {
        let Some(e) = self.exits.get_mut(&conn) else {
            return;
        };
        if e.open {
            self.counters.bump(Count::StaleReference);
            return;
        }
        e.open = true;
        if let Some(at) = e.deadline.take() {
            self.timers.remove(&(at, Timer::Exit(conn)));
        }
        let (key, id) = (e.circ, e.id);
        self.send_relay_inbound(key, &RelayCell::new(Some(id), Connected { addr: None }));
        self.pump_exit(conn);
    }

    /// Bytes from an exit's destination.
    pub(super) fn on_exit_data(&mut self, conn: ConnId, data: &[u8]) {
        let limit = self.config.limits.max_exit_buffer;
        let Some(e) = self.exits.get_mut(&conn) else {
            return;
        };
        if e.from_dest.len() + data.len() > limit {
            self.counters.bump(Count::ExitBufferOverrun);
            let (key, id) = (e.circ, e.id);
            self.refuse_stream(key, id, EndReason::RESOURCELIMIT);
            self.drop_exit(conn, true);
            return;
        }
        e.from_dest.extend(data.iter());
        self.pump_exit(conn);
    }

    pub(super) fn on_exit_closed(&mut self, conn: ConnId, error: bool) {
        let Some(e) = self.exits.get_mut(&conn) else {
            return;
        };
        if !e.open {
            let (key, id) = (e.circ, e.id);
            let reason = if error {
                EndReason::CONNECTREFUSED
            } else {
                EndReason::MISC
            };
            self.refuse_stream(key, id, reason);
            self.drop_exit(conn, false);
            return;
        }
        e.dest_closed = true;
        self.pump_exit(conn);
    }

    pub(super) fn on_exit_timer(&mut self, conn: ConnId, at: Instant) {
        let Some(e) = self.exits.get(&conn) else {
            return;
        };
        if e.deadline == Some(at) && !e.open {
            let (key, id) = (e.circ, e.id);
            self.refuse_stream(key, id, EndReason::TIMEOUT);
            self.drop_exit(conn, true);
        }
    }

    /// Client bytes for an exit's destination (or its directory request).
    fn on_exit_stream_data(&mut self, conn: ConnId, data: &[u8]) {
        let Some(e) = self.exits.get_mut(&conn) else {
            return;
        };
        let key = e.circ;
        if e.flow.recv.on_data().is_err() {
            self.counters.bump(Count::FlowControlViolation);
            self.destroy_circuit(key, DestroyReason::PROTOCOL, None);
            return;
        }
        match &mut e.kind {
            ExitKind::Tcp => {
                e.to_dest.extend(data.iter());
                if !e.transmit_announced {
                    e.transmit_announced = true;
                    self.outputs.push_back(Output::Transmit(conn));
                }
            }
            ExitKind::Dir(req) => match req.push(data, &self.config.directory) {
                DirStep::NeedMore => {}
                DirStep::Respond(bytes) => {
                    e.from_dest.extend(bytes);
                    e.dest_closed = true;
                    self.pump_exit(conn);
                }
                DirStep::Reject => {
                    let id = e.id;
                    self.refuse_stream(key, id, EndReason::MISC);
                    self.drop_exit(conn, false);
                }
            },
        }
        self.maybe_exit_sendme(conn);
    }

    /// Send stream SENDMEs for data the destination has taken.
    fn maybe_exit_sendme(&mut self, conn: ConnId) {
        loop {
            let Some(e) = self.exits.get_mut(&conn) else {
                return;
            };
            if !(e.flow.recv.sendme_due() && e.to_dest.len() < SENDME_BUFFER_THRESHOLD) {
                return;
            }
            e.flow.recv.sendme_sent();
            let (key, id) = (e.circ, e.id);
            if self
                .send_relay_inbound(key, &RelayCell::new(Some(id), Sendme::V0))
                .is_none()
            {
                return;
            }
        }
    }

    /// Package an exit's pending destination bytes into DATA cells while the windows and
    /// the link allow; END once the destination is done and everything is sent.
    fn pump_exit(&mut self, conn: ConnId) {
        let mut chunk = [0u8; MAX_DATA_LEN];
        loop {
            let Some(e) = self.exits.get(&conn) else {
                return;
            };
            let key = e.circ;
            let Some(Circuit::Relay(r)) = self.circuits.get(&key) else {
                return;
            };
            if e.from_dest.is_empty() {
                if e.dest_closed {
                    let id = e.id;
                    self.send_relay_inbound(
                        key,
                        &RelayCell::new(Some(id), End::new(EndReason::DONE)),
                    );
                    self.drop_exit(conn, false);
                }
                return;
            }
            let ready = e.open
                && e.flow.send.available() > 0
                && r.flow.send.available() > 0
                && self.link_has_room(r.prev.conn);
            if !ready {
                return;
            }
            let Some(e) = self.exits.get_mut(&conn) else {
                return;
            };
            let n = super::drain_into(&mut e.from_dest, &mut chunk);
            let _ = e.flow.send.take();
            let id = e.id;
            let Some(Circuit::Relay(r)) = self.circuits.get_mut(&key) else {
                return;
            };
            let record = r.flow.send.take() == Some(true);
            let Ok(msg) = Data::new(&chunk[..n]) else {
                return;
            };
            let Some(tag) = self.send_relay_inbound(key, &RelayCell::new(Some(id), msg)) else {
                return;
            };
            if record && let Some(Circuit::Relay(r)) = self.circuits.get_mut(&key) {
                let _ = r.flow.tags.record(tag.0);
            }
        }
    }

    pub(super) fn pump_circuit_exits(&mut self, key: CircKey) {
        let Some(Circuit::Relay(r)) = self.circuits.get(&key) else {
            return;
        };
        let conns: alloc::vec::Vec<ConnId> = r.streams.values().copied().collect();
        for c in conns {
            self.pump_exit(c);
        }
    }

    /// Forget an exit stream; `close` asks the runtime to close its connection.
    pub(super) fn drop_exit(&mut self, conn: ConnId, close: bool) {
        let Some(e) = self.exits.remove(&conn) else {
            return;
        };
        if let Some(at) = e.deadline {
            self.timers.remove(&(at, Timer::Exit(conn)));
        }
        if let Some(Circuit::Relay(r)) = self.circuits.get_mut(&e.circ) {
            r.streams.remove(&e.id);
        }
        if close && matches!(e.kind, ExitKind::Tcp) {
            self.outputs.push_back(Output::Close(conn));
        }
    }

    /// How many bytes the runtime may read from an exit connection's destination now.
    pub fn read_capacity(&self, conn: ConnId) -> usize {
        self.exits.get(&conn).map_or(0, |e| {
            self.config
                .limits
                .max_exit_buffer
                .saturating_sub(e.from_dest.len())
        })
    }

    /// The runtime took bytes from `conn`: room may have opened for more cells.
    pub(super) fn after_drain(&mut self, conn: ConnId) {
        if self.exits.contains_key(&conn) {
            self.maybe_exit_sendme(conn);
            return;
        }
        // A link drained: exits feeding it and blocked writers may continue.
        let keys: alloc::vec::Vec<CircKey> = self
            .circuits
            .iter()
            .filter(|(_, c)| match c {
                Circuit::Relay(r) => r.prev.conn == conn && !r.streams.is_empty(),
                Circuit::Client(c) => c.link == conn,
            })
            .map(|(&k, _)| k)
            .collect();
        for key in keys {
            match self.circuits.get(&key) {
                Some(Circuit::Relay(_)) => self.pump_circuit_exits(key),
                Some(Circuit::Client(_)) => self.on_client_circuit_window_open(key),
                None => {}
            }
        }
        self.serve_on_drained(conn);
    }
}

fn parse_host(host: String) -> Host {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&host);
    if let Ok(a) = bare.parse() {
        return Host::Ipv4(a);
    }
    if let Ok(a) = bare.parse() {
        return Host::Ipv6(a);
    }
    Host::Name(host)
}
