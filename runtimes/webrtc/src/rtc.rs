//! The str0m adapter: one UDP socket, many [`Rtc`]s, one reliable ordered data channel
//! per link carrying the cell byte stream.
//!
//! ```text
//!  UDP socket ─recv─▶ Rtc::accepts ─▶ rtc.handle_input ─┐
//!                                                       ├─ poll_output until Timeout
//!  UDP socket ◀─send─ Output::Transmit ◀────────────────┘    └─▶ RtcEvent (open, data,
//!                                                                 writable, closed)
//! ```
//!
//! The endpoint knows nothing of cells or circuits: it opens channels, moves bytes and
//! reports what happened, keyed by a [`RtcKey`]. The driver maps keys to the core's
//! connections. Each channel's identity binding is the SHA-256 DTLS fingerprints: ours
//! (local) and the peer's (remote), which str0m has checked against the SDP's
//! `a=fingerprint` before the channel opens.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use async_io::Async;
use onionpeer_core::node::api::LinkBinding;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId};
use str0m::config::{DtlsCert, Fingerprint};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

/// The label of the one data channel of a link (the browser peer opens the same).
pub const CHANNEL_LABEL: &str = "onionpeer";
/// Largest data channel message we send (browsers take up to 256 KiB; 16 KiB is safe
/// with every implementation).
pub const MESSAGE: usize = 16 * 1024;
/// Stop writing to a channel while more than this is buffered in SCTP (str0m's default
/// buffer is 128 KiB; we keep it, a larger one was slower).
const HIGH_WATER: usize = 112 * 1024;
/// Ask str0m to say when the buffer drained below this.
const LOW_WATER: usize = 48 * 1024;
/// Receive buffer of the UDP socket: small buffers drop bursts and stall SCTP for seconds.
const RECV_BUFFER: usize = 4 << 20;
/// Datagrams read per wake before other work gets a turn.
const RECV_BATCH: usize = 256;
/// Datagrams no connection accepted yet, kept for a retry.
const STRAY_MAX: usize = 16;
/// How long such a datagram is worth a retry.
const STRAY_AGE: Duration = Duration::from_millis(500);
/// UDP sockets an endpoint opens at most (see [`RtcEndpoint::accept_offer`]).
const MAX_SOCKETS: usize = 8;

/// The host candidates' addresses in an SDP (`a=candidate:... <ip> <port> typ ...`).
fn candidate_addrs(sdp: &str) -> Vec<SocketAddr> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a=candidate:"))
        .filter_map(|c| {
            let f: Vec<&str> = c.split_whitespace().collect();
            let ip: std::net::IpAddr = f.get(4)?.parse().ok()?;
            Some(SocketAddr::new(ip, f.get(5)?.parse().ok()?))
        })
        .collect()
}

/// Identifies one peer connection of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RtcKey(pub u64);

/// What the endpoint reports to its owner.
#[derive(Debug)]
pub enum RtcEvent {
    /// The data channel is open: bytes may flow. `remote` is the peer's UDP address.
    Open {
        /// Which connection.
        key: RtcKey,
        /// Our and the peer's DTLS certificate fingerprints (SHA-256).
        binding: LinkBinding,
        /// The peer's address, as its packets come from.
        remote: Option<SocketAddr>,
    },
    /// Bytes of the channel, in order.
    Data {
        /// Which connection.
        key: RtcKey,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The channel's send buffer drained: more may be written.
    Writable(RtcKey),
    /// The connection is gone (closed by the peer, ICE failed, DTLS failed).
    Closed {
        /// Which connection.
        key: RtcKey,
        /// True unless the peer closed the channel in order.
        error: bool,
    },
}

/// One peer connection.
struct Peer {
    rtc: Rtc,
    /// The offerer's side of an exchange not yet answered.
    pending: Option<SdpPendingOffer>,
    channel: Option<ChannelId>,
    /// Where the peer's packets come from.
    remote: Option<SocketAddr>,
    /// The peer's candidates, from its SDP.
    cands: Vec<SocketAddr>,
    /// Which of the endpoint's sockets the connection uses.
    sock: usize,
    /// When str0m next wants a timeout.
    wake: Instant,
    /// Closing: forget the peer once this passes (or str0m says it is dead).
    close_by: Option<Instant>,
    /// Until the channel opens: give up then.
    open_by: Option<Instant>,
    /// The owner was told it closed (no second report).
    reported_closed: bool,
}

/// A node's WebRTC endpoint: its UDP socket, DTLS certificate and peer connections.
pub struct RtcEndpoint {
    /// The node's socket first, then the extra ones answers needed.
    sockets: Vec<(Async<UdpSocket>, SocketAddr)>,
    local: SocketAddr,
    cert: DtlsCert,
    fingerprint: [u8; 32],
    peers: BTreeMap<RtcKey, Peer>,
    next_key: u64,
    events: VecDeque<RtcEvent>,
    /// Datagrams that came before their connection could accept them (socket, source).
    stray: VecDeque<(Instant, usize, SocketAddr, Vec<u8>)>,
    buf: Vec<u8>,
    open_timeout: Duration,
}

/// A fresh DTLS certificate (reuse one per node: generating costs 40–150 ms).
pub fn generate_cert() -> io::Result<DtlsCert> {
    str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
        .ok_or_else(|| io::Error::other("cannot generate a DTLS certificate"))
}

/// The SHA-256 fingerprint of a certificate as a binding value; other hashes are refused.
pub fn fingerprint_bytes(f: &Fingerprint) -> Option<[u8; 32]> {
    if !f.hash_func.eq_ignore_ascii_case("sha-256") {
        return None;
    }
    f.bytes.as_slice().try_into().ok()
}

/// Bind a UDP socket with a large receive buffer.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol as SockProto, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(SockProto::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER) {
        tracing::debug!(error = %e, "cannot raise the UDP receive buffer");
    }
    let _ = socket.set_send_buffer_size(RECV_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

impl RtcEndpoint {
    /// An endpoint on `socket`, using `cert` for every connection. Channels that do not
    /// open within `open_timeout` of their offer are reported closed.
    pub fn new(socket: UdpSocket, cert: DtlsCert, open_timeout: Duration) -> io::Result<Self> {
        let local = socket.local_addr()?;
        let socket = Async::new(socket)?;
        // Learn our fingerprint from a throwaway Rtc with the same certificate.
        let mut probe = RtcConfig::new()
            .set_dtls_cert(cert.clone())
            .build(Instant::now());
        let fingerprint = fingerprint_bytes(probe.direct_api().local_dtls_fingerprint())
            .ok_or_else(|| io::Error::other("DTLS fingerprint is not SHA-256"))?;
        Ok(RtcEndpoint {
            sockets: vec![(socket, local)],
            local,
            cert,
            fingerprint,
            peers: BTreeMap::new(),
            next_key: 0,
            events: VecDeque::new(),
            stray: VecDeque::new(),
            buf: vec![0; 2048],
            open_timeout,
        })
    }

    /// The UDP address peers reach us on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The SHA-256 fingerprint of our DTLS certificate (what our CERTS cell signs).
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// How many peer connections exist (opening, open or closing).
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether there are no peer connections.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    fn new_rtc(&self, now: Instant, sock: usize) -> io::Result<Rtc> {
        let mut rtc = RtcConfig::new().set_dtls_cert(self.cert.clone()).build(now);
        let local = self.sockets.get(sock).map_or(self.local, |s| s.1);
        let cand = Candidate::host(local, "udp")
            .map_err(|e| io::Error::other(format!("host candidate: {e}")))?;
        rtc.add_local_candidate(cand);
        Ok(rtc)
    }

    fn insert(
        &mut self,
        rtc: Rtc,
        pending: Option<SdpPendingOffer>,
        now: Instant,
        sock: usize,
        cands: Vec<SocketAddr>,
    ) -> RtcKey {
        let key = RtcKey(self.next_key);
        self.next_key += 1;
        self.peers.insert(
            key,
            Peer {
                rtc,
                pending,
                channel: None,
                remote: None,
                cands,
                sock,
                wake: now,
                close_by: None,
                open_by: Some(now + self.open_timeout),
                reported_closed: false,
            },
        );
        key
    }

    /// Start a connection as the offerer: its key and the offer SDP to signal.
    pub fn offer(&mut self) -> io::Result<(RtcKey, String)> {
        let now = Instant::now();
        let mut rtc = self.new_rtc(now, 0)?;
        let mut change = rtc.sdp_api();
        change.add_channel_with_config(ChannelConfig {
            label: CHANNEL_LABEL.into(),
            ..ChannelConfig::default()
        });
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| io::Error::other("no SDP change to offer"))?;
        let sdp = offer.to_sdp_string();
        Ok((self.insert(rtc, Some(pending), now, 0, Vec::new()), sdp))
    }

    /// The answer to an offer we made arrived.
    pub fn accept_answer(&mut self, key: RtcKey, answer: &str) -> io::Result<()> {
        let peer = self
            .peers
            .get_mut(&key)
            .ok_or_else(|| io::Error::other("no such connection"))?;
        let pending = peer
            .pending
            .take()
            .ok_or_else(|| io::Error::other("no offer pending"))?;
        peer.cands = candidate_addrs(answer);
        let answer = SdpAnswer::from_sdp_string(answer).map_err(io::Error::other)?;
        peer.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(io::Error::other)?;
        self.drive(key);
        Ok(())
    }

    /// Answer a peer's offer: the new connection's key and the answer SDP.
    ///
    /// Datagrams are told apart by their addresses only, so two connections between the
    /// same two sockets (a peer's link to us and ours to it) would steal each other's
    /// DTLS and SCTP packets. When one of ours already uses a socket with the offer's
    /// candidates, the answer takes another socket (opened on demand, at most 8).
    pub fn accept_offer(&mut self, offer: &str) -> io::Result<(RtcKey, String)> {
        let now = Instant::now();
        let cands = candidate_addrs(offer);
        let sock = self.socket_for(&cands)?;
        let offer = SdpOffer::from_sdp_string(offer).map_err(io::Error::other)?;
        let mut rtc = self.new_rtc(now, sock)?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(io::Error::other)?;
        let key = self.insert(rtc, None, now, sock, cands);
        self.drive(key);
        Ok((key, answer.to_sdp_string()))
    }

    /// A socket none of our connections to `cands` uses; opens one if needed.
    fn socket_for(&mut self, cands: &[SocketAddr]) -> io::Result<usize> {
        let used = |i: usize| {
            self.peers.values().any(|p| {
                p.sock == i
                    && (p.remote.is_some_and(|r| cands.contains(&r))
                        || p.cands.iter().any(|c| cands.contains(c)))
            })
        };
        if let Some(i) = (0..self.sockets.len()).find(|&i| !used(i)) {
            return Ok(i);
        }
        if self.sockets.len() >= MAX_SOCKETS {
            return Err(io::Error::other("too many connections to one peer"));
        }
        let udp = bind_udp(SocketAddr::new(self.local.ip(), 0))?;
        let at = udp.local_addr()?;
        self.sockets.push((Async::new(udp)?, at));
        tracing::debug!(%at, "extra UDP socket for a second connection to a peer");
        Ok(self.sockets.len() - 1)
    }

    /// Write `data` on the connection's channel; false when it is not open or its
    /// buffer has no room (wait for [`RtcEvent::Writable`]).
    pub fn write(&mut self, key: RtcKey, data: &[u8]) -> bool {
        let Some(peer) = self.peers.get_mut(&key) else {
            return false;
        };
        if peer.close_by.is_some() {
            return false;
        }
        let Some(cid) = peer.channel else {
            return false;
        };
        let Some(mut ch) = peer.rtc.channel(cid) else {
            return false;
        };
        let ok = data
            .chunks(MESSAGE)
            .all(|c| matches!(ch.write(true, c), Ok(true)));
        self.drive(key);
        ok
    }

    /// How many more bytes the channel should take now (0 when closed or full).
    pub fn writable(&mut self, key: RtcKey) -> usize {
        let Some(peer) = self.peers.get_mut(&key) else {
            return 0;
        };
        if peer.close_by.is_some() {
            return 0;
        }
        let Some(mut ch) = peer.channel.and_then(|c| peer.rtc.channel(c)) else {
            return 0;
        };
        HIGH_WATER.saturating_sub(ch.buffered_amount())
    }

    /// Close a connection in order: what is buffered is still sent for a short while,
    /// then the DTLS session ends. No [`RtcEvent::Closed`] is reported for it.
    pub fn close(&mut self, key: RtcKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.reported_closed = true;
        if peer.close_by.is_none() {
            peer.close_by = Some(Instant::now() + Duration::from_secs(5));
        }
        let drained = match peer.channel.and_then(|c| peer.rtc.channel(c)) {
            Some(mut ch) => {
                let empty = ch.buffered_amount() == 0;
                if !empty {
                    // Close once str0m says the buffer ran dry.
                    ch.set_buffered_amount_low_threshold(0);
                }
                empty
            }
            None => true,
        };
        if drained {
            let _ = peer.rtc.close();
        }
        self.drive(key);
    }

    /// Close every connection at once (the node stops).
    pub fn close_all(&mut self) {
        let keys: Vec<RtcKey> = self.peers.keys().copied().collect();
        tracing::debug!(n = keys.len(), "closing every WebRTC connection");
        for key in keys {
            if let Some(peer) = self.peers.get_mut(&key) {
                peer.reported_closed = true;
                let _ = peer.rtc.close();
            }
            self.drive(key);
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<RtcEvent> {
        self.events.pop_front()
    }

    /// When [`RtcEndpoint::handle_timeout`] should next run.
    pub fn next_wake(&self) -> Option<Instant> {
        self.peers
            .values()
            .map(|p| {
                let mut w = p.wake;
                if let Some(c) = p.close_by {
                    w = w.min(c);
                }
                if let Some(o) = p.open_by {
                    w = w.min(o);
                }
                w
            })
            .min()
    }

    /// Time advanced: feed the connections that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<RtcKey> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.wake <= now
                    || p.close_by.is_some_and(|c| c <= now)
                    || p.open_by.is_some_and(|o| o <= now)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            if peer.open_by.is_some_and(|o| o <= now) || peer.close_by.is_some_and(|c| c <= now) {
                tracing::debug!(key = key.0, "WebRTC connection timed out");
                peer.rtc.disconnect();
            } else if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(key = key.0, error = %e, "WebRTC timeout failed");
                peer.rtc.disconnect();
            }
            self.drive(key);
        }
    }

    /// Wait until a socket has datagrams.
    pub async fn readable(&self) -> io::Result<()> {
        use smol::future::FutureExt as _;
        type Ready<'a> =
            std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<()>> + Send + 'a>>;
        let mut ready: Ready<'_> = Box::pin(self.sockets[0].0.readable());
        for (s, _) in &self.sockets[1..] {
            ready = Box::pin(ready.or(s.readable()));
        }
        ready.await
    }

    /// Read what the socket holds (up to a batch) and hand each datagram to the
    /// connection that accepts it.
    pub fn recv(&mut self) {
        for sock in 0..self.sockets.len() {
            self.recv_on(sock);
        }
    }

    fn recv_on(&mut self, sock: usize) {
        for _ in 0..RECV_BATCH {
            let (n, source) = match self.sockets[sock].0.get_ref().recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "UDP receive failed");
                    break;
                }
            };
            let datagram = std::mem::take(&mut self.buf);
            let taken = self.dispatch(sock, source, &datagram[..n]);
            if !taken {
                // Often a DTLS ClientHello that overtook the STUN check which makes its
                // source known: keep it a moment rather than wait for a retransmit.
                if self.stray.len() >= STRAY_MAX {
                    self.stray.pop_front();
                }
                self.stray
                    .push_back((Instant::now(), sock, source, datagram[..n].to_vec()));
            } else if self
                .stray
                .iter()
                .any(|(_, k, s, _)| *k == sock && *s == source)
            {
                let now = Instant::now();
                let strays: Vec<_> = self.stray.drain(..).collect();
                for (at, k, from, d) in strays {
                    if now.duration_since(at) > STRAY_AGE {
                        continue;
                    }
                    if k != sock || from != source || !self.dispatch(k, from, &d) {
                        self.stray.push_back((at, k, from, d));
                    }
                }
            }
            self.buf = datagram;
        }
    }

    /// Hand one datagram to the connection that accepts it; false if none does.
    fn dispatch(&mut self, sock: usize, source: SocketAddr, datagram: &[u8]) -> bool {
        let Ok(contents) = datagram.try_into() else {
            return true;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.sockets.get(sock).map_or(self.local, |s| s.1),
                contents,
            },
        );
        let Some((key, peer)) = self
            .peers
            .iter_mut()
            .find(|(_, p)| p.sock == sock && p.rtc.accepts(&input))
        else {
            tracing::trace!(%source, "datagram for no connection (yet)");
            return false;
        };
        peer.remote.get_or_insert(source);
        if let Err(e) = peer.rtc.handle_input(input) {
            tracing::debug!(key = key.0, error = %e, "WebRTC input refused");
            peer.rtc.disconnect();
        }
        // Drain the output after every input: str0m's receive queues are bounded.
        let key = *key;
        self.drive(key);
        true
    }

    /// Poll one connection's output until str0m asks for a timeout: send its datagrams,
    /// queue its events.
    fn drive(&mut self, key: RtcKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let mut closed: Option<bool> = None;
        loop {
            if !peer.rtc.is_alive() {
                closed.get_or_insert(true);
                break;
            }
            let out = match peer.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(key = key.0, error = %e, "WebRTC connection failed");
                    peer.rtc.disconnect();
                    closed.get_or_insert(true);
                    break;
                }
            };
            match out {
                Output::Timeout(at) => {
                    peer.wake = at;
                    break;
                }
                Output::Transmit(t) => {
                    let socket = &self.sockets[peer.sock.min(self.sockets.len() - 1)].0;
                    if let Err(e) = socket.get_ref().send_to(&t.contents, t.destination) {
                        // UDP: a dropped datagram is retransmitted by SCTP or DTLS.
                        tracing::trace!(error = %e, "UDP send failed");
                    }
                }
                Output::Event(e) => match e {
                    Event::ChannelOpen(cid, _) if peer.channel.is_none() => {
                        peer.channel = Some(cid);
                        peer.open_by = None;
                        let remote_fp = peer
                            .rtc
                            .direct_api()
                            .remote_dtls_fingerprint()
                            .and_then(fingerprint_bytes);
                        let Some(remote_fp) = remote_fp else {
                            tracing::info!(key = key.0, "peer's DTLS fingerprint is not SHA-256");
                            peer.rtc.disconnect();
                            closed = Some(true);
                            continue;
                        };
                        if let Some(mut ch) = peer.rtc.channel(cid) {
                            ch.set_buffered_amount_low_threshold(LOW_WATER);
                        }
                        if !peer.reported_closed {
                            self.events.push_back(RtcEvent::Open {
                                key,
                                binding: LinkBinding {
                                    local: self.fingerprint,
                                    remote: remote_fp,
                                },
                                remote: peer.remote,
                            });
                        }
                    }
                    Event::ChannelData(d) if Some(d.id) == peer.channel => {
                        if !peer.reported_closed {
                            self.events.push_back(RtcEvent::Data { key, data: d.data });
                        }
                    }
                    Event::ChannelBufferedAmountLow(cid) if Some(cid) == peer.channel => {
                        if peer.close_by.is_some() {
                            let _ = peer.rtc.close();
                        } else {
                            self.events.push_back(RtcEvent::Writable(key));
                        }
                    }
                    Event::ChannelClose(cid) if Some(cid) == peer.channel => {
                        closed.get_or_insert(false);
                        let _ = peer.rtc.close();
                    }
                    Event::Closed => {
                        tracing::debug!(key = key.0, "peer closed the WebRTC connection");
                        closed.get_or_insert(false);
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        closed.get_or_insert(true);
                        peer.rtc.disconnect();
                    }
                    other => tracing::trace!(key = key.0, event = ?other, "str0m event"),
                },
            }
        }
        if let Some(error) = closed {
            if !peer.reported_closed {
                peer.reported_closed = true;
                self.events.push_back(RtcEvent::Closed { key, error });
            }
            if !peer.rtc.is_alive() {
                self.peers.remove(&key);
            }
        }
    }
}
