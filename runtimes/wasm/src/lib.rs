//! onionpeer in the browser: the Sans-IO core behind wasm-bindgen.
//!
//! The JavaScript driver (`www/driver.js`) owns every WebSocket and timer; this crate
//! only converts between JS values and the core's drive contract:
//!
//! ```text
//!  WebSocket open/message/close ─▶ Peer.connected / data / closed ─┐
//!  setTimeout fired             ─▶ Peer.timeout                     ├─▶ Node
//!  page buttons                 ─▶ Peer.bootstrap_bridge / ask_ordbs┘
//!  Peer.poll() ─▶ {kind: "connect" | "transmit" | "close" | "event" | "timeout", ...}
//! ```
//!
//! After every call the driver calls `poll()` until it returns a `timeout` object (always
//! last), exactly as a native runtime drains `Node::poll_output`. Time is the page's
//! `performance.now()` in milliseconds; the seed comes from `crypto.getRandomValues`.
//!
//! A WebRTC link (the driver's RTCPeerConnection with one ordered data channel) is bound
//! by the DTLS certificate fingerprints of the two SDPs ([`Peer::connected_webrtc`]),
//! exactly as runtimes/webrtc binds its links. Its offer goes through the network when
//! the `connect` output names an introducer ([`Peer::signal_offer`], the answer a
//! `SignalReceived` event), else, or when that is refused or unanswered, it is POSTed to
//! `http://<addr>/offer` (how a newcomer reaches its bridge). A browser peer answers no
//! offers: it is a client, no peer builds a circuit to it, so none can reach it.
//!
//! A WebSocket link's binding (PROTOCOL.md, "WebSocket links"): the driver draws a
//! 32-byte nonce, puts it in the URL (`/link?b=<hex>`), and hands it to
//! [`Peer::connected`]; the bridge certifies `SHA-256(prefix || nonce)` in its CERTS, and
//! the core checks it as it checks a TLS certificate digest.

use std::net::SocketAddr;

use js_sys::{Array, Object, Reflect, Uint8Array};
use onionpeer_core::Instant;
use onionpeer_core::cells::relay::HashName;
use onionpeer_core::cells::relay::PeerRecord;
use onionpeer_core::cells::relay::{SignalKind, SignalRefusal};
use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::node::Node;
use onionpeer_core::node::api::{
    BootstrapVia, Command, CommandOk, ConnId, ConnectTarget, DownloadHandle, Event, Input,
    LinkBinding, Output, RelayTarget,
};
use onionpeer_core::node::config::{NodeConfig, PeersmConfig, Role};
use sha2::{Digest, Sha256};
use wasm_bindgen::prelude::*;

/// Domain separation of the WebSocket link binding (same bytes as onionpeer-smol's
/// `ws::BINDING_PREFIX`; both crates test the same known answer).
pub const BINDING_PREFIX: &[u8] = b"onionpeer websocket link binding v1\0";

/// The binding of a WebSocket link opened with `nonce` in its URL.
pub fn ws_binding(nonce: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    Digest::update(&mut h, BINDING_PREFIX);
    Digest::update(&mut h, nonce);
    h.finalize().into()
}

/// The SHA-256 DTLS certificate fingerprint of an SDP (its `a=fingerprint:sha-256` lines,
/// which must all agree; other hash functions are ignored).
pub fn sdp_fingerprint(sdp: &str) -> Result<[u8; 32], String> {
    let mut found: Option<[u8; 32]> = None;
    for line in sdp.lines() {
        let Some(rest) = line.trim().strip_prefix("a=fingerprint:") else {
            continue;
        };
        let Some((hash, value)) = rest.trim().split_once(' ') else {
            return Err("malformed a=fingerprint line".into());
        };
        if !hash.eq_ignore_ascii_case("sha-256") {
            continue;
        }
        let digits: String = value.trim().split(':').collect();
        let fp = unhex::<32>(&digits).map_err(|_| "malformed SHA-256 fingerprint".to_string())?;
        match found {
            Some(f) if f != fp => return Err("two different SHA-256 fingerprints".into()),
            _ => found = Some(fp),
        }
    }
    found.ok_or_else(|| "no SHA-256 fingerprint in the SDP".into())
}

/// A WebRTC link's binding: our certificate's fingerprint (from our SDP) and the peer's
/// (from its SDP), as runtimes/webrtc builds it from str0m.
pub fn webrtc_binding(local_sdp: &str, remote_sdp: &str) -> Result<LinkBinding, String> {
    Ok(LinkBinding {
        local: sdp_fingerprint(local_sdp).map_err(|e| format!("our SDP: {e}"))?,
        remote: sdp_fingerprint(remote_sdp).map_err(|e| format!("the peer's SDP: {e}"))?,
    })
}

/// Most bytes handed to JavaScript in one `transmit` output.
const MAX_TRANSMIT: usize = 256 * 1024;

fn instant(ms: f64) -> Instant {
    if ms.is_finite() && ms > 0.0 {
        Instant::from_nanos((ms * 1e6) as u64)
    } else {
        Instant::ZERO
    }
}

fn unhex<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let bad = || format!("expected {} hex digits", 2 * N);
    if s.len() != 2 * N {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = s
            .get(2 * i..2 * i + 2)
            .and_then(|d| u8::from_str_radix(d, 16).ok())
            .ok_or_else(bad)?;
    }
    Ok(out)
}

/// A JS object from `(name, value)` pairs.
fn obj(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn s(v: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&v.to_string())
}

fn n(v: impl Into<f64>) -> JsValue {
    JsValue::from_f64(v.into())
}

fn conn_js(c: ConnId) -> JsValue {
    n(c.0 as f64)
}

fn record_js(r: &PeerRecord) -> JsValue {
    obj(&[("id", s(r.id)), ("addr", s(SocketAddr::new(r.ip, r.port)))])
}

fn records_js(rs: &[PeerRecord]) -> JsValue {
    rs.iter().map(record_js).collect::<Array>().into()
}

/// An event as a JS object: `{kind: "event", type: "<variant>", ...fields}`.
fn event_js(e: &Event) -> JsValue {
    let ev = |ty: &str, rest: &[(&str, JsValue)]| {
        let mut f = vec![("kind", s("event")), ("type", s(ty))];
        f.extend(rest.iter().cloned());
        obj(&f)
    };
    match e {
        Event::LinkUp {
            conn,
            peer,
            version,
        } => ev(
            "LinkUp",
            &[
                ("conn", conn_js(*conn)),
                ("peer", peer.map_or(JsValue::NULL, s)),
                ("version", n(*version)),
            ],
        ),
        Event::LinkDown { conn, reason } => ev(
            "LinkDown",
            &[
                ("conn", conn_js(*conn)),
                ("reason", s(format!("{reason:?}"))),
            ],
        ),
        Event::CircuitBuilt(h) => ev("CircuitBuilt", &[("circuit", n(h.0 as f64))]),
        Event::CircuitClosed { circuit, reason } => ev(
            "CircuitClosed",
            &[("circuit", n(circuit.0 as f64)), ("reason", n(reason.0))],
        ),
        Event::DhtLookupDone {
            query,
            closest,
            holders,
            hops,
        } => ev(
            "DhtLookupDone",
            &[
                ("query", n(query.0 as f64)),
                ("closest", records_js(closest)),
                ("holders", records_js(holders)),
                ("hops", n(*hops)),
            ],
        ),
        Event::OrdbCircuitsReady(k) => ev("OrdbCircuitsReady", &[("count", n(*k as f64))]),
        Event::PeerFound(r) => ev("PeerFound", &[("peer", record_js(r))]),
        Event::OrdbAnswered {
            query,
            ordb,
            peers,
            done,
        } => ev(
            "OrdbAnswered",
            &[
                ("query", n(query.0 as f64)),
                ("ordb", s(ordb)),
                ("peers", records_js(peers)),
                ("done", JsValue::from_bool(*done)),
            ],
        ),
        Event::ContentInfo { handle, size, mime } => ev(
            "ContentInfo",
            &[
                ("handle", n(handle.0 as f64)),
                ("size", n(*size as f64)),
                ("mime", s(mime)),
            ],
        ),
        Event::ContentReadable(h) => ev("ContentReadable", &[("handle", n(h.0 as f64))]),
        Event::ContentProgress {
            handle,
            verified_chunks,
            total_chunks,
        } => ev(
            "ContentProgress",
            &[
                ("handle", n(handle.0 as f64)),
                ("verified", n(*verified_chunks as f64)),
                ("total", n(*total_chunks as f64)),
            ],
        ),
        Event::ContentDone { handle, result } => ev(
            "ContentDone",
            &[
                ("handle", n(handle.0 as f64)),
                ("ok", JsValue::from_bool(result.is_ok())),
                (
                    "error",
                    match result {
                        Ok(()) => JsValue::NULL,
                        Err(e) => s(format!("{e:?}")),
                    },
                ),
            ],
        ),
        Event::SignalReceived {
            from,
            session,
            kind,
            sdp,
        } => {
            let (signal, sdp, reason) = match *kind {
                SignalKind::OFFER => ("offer", s(String::from_utf8_lossy(sdp)), JsValue::NULL),
                SignalKind::ANSWER => ("answer", s(String::from_utf8_lossy(sdp)), JsValue::NULL),
                _ => (
                    "refused",
                    JsValue::NULL,
                    s(SignalRefusal::decode(sdp)
                        .unwrap_or(SignalRefusal::UNANSWERED)
                        .name()),
                ),
            };
            ev(
                "SignalReceived",
                &[
                    ("from", s(from)),
                    ("session", n(*session)),
                    ("signal", s(signal)),
                    ("sdp", sdp),
                    ("reason", reason),
                ],
            )
        }
        // Streams, clock skew: the page only logs them.
        other => ev("Other", &[("detail", s(format!("{other:?}")))]),
    }
}

/// The browser peer: one onionpeer node (a Peersm client: it builds circuits and keeps
/// ORDB circuits, and relays nothing), driven from JavaScript.
#[wasm_bindgen]
pub struct Peer {
    node: Node,
    buf: Vec<u8>,
}

#[wasm_bindgen]
impl Peer {
    /// A peer with keys drawn from `seed` (32 bytes from `crypto.getRandomValues`).
    /// `now_ms` is `performance.now()`, `unix_ms` is `Date.now()` at the same moment;
    /// `ordb_circuits` is how many ORDB circuits it keeps (0: the default, 6).
    #[wasm_bindgen(constructor)]
    pub fn new(
        seed: &[u8],
        now_ms: f64,
        unix_ms: f64,
        ordb_circuits: u32,
    ) -> Result<Peer, JsError> {
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| JsError::new("the seed must be 32 bytes"))?;
        let unix_at_zero = ((unix_ms - now_ms).max(0.0) / 1000.0) as u64;
        let mut config = NodeConfig::new(seed, Role::CLIENT, unix_at_zero);
        // A browser cannot be dialled: its PEER record says so with an unroutable address,
        // and peers that try to verify it fail fast and never register it.
        let mut peersm = PeersmConfig::new(SocketAddr::from(([0, 0, 0, 0], 0)));
        if ordb_circuits > 0 {
            peersm.ordb_circuits = ordb_circuits as usize;
        }
        config.peersm = Some(peersm);
        let node = Node::new(config, instant(now_ms)).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Peer {
            node,
            buf: vec![0; MAX_TRANSMIT],
        })
    }

    /// This peer's id (hex, upper case, as Tor prints fingerprints).
    pub fn id(&self) -> String {
        self.node.peer_id().to_string()
    }

    /// The WebSocket of connection `conn` opened, with `nonce` (32 bytes) in its URL.
    pub fn connected(&mut self, conn: f64, nonce: &[u8], now_ms: f64) -> Result<(), JsError> {
        let nonce: [u8; 32] = nonce
            .try_into()
            .map_err(|_| JsError::new("the nonce must be 32 bytes"))?;
        self.node.handle_input(Input::Connected {
            now: instant(now_ms),
            conn: ConnId(conn as u64),
            binding: LinkBinding {
                local: [0; 32],
                remote: ws_binding(&nonce),
            },
        });
        Ok(())
    }

    /// The WebRTC data channel of connection `conn` opened. `local_sdp` is the offer the
    /// driver made (`pc.localDescription.sdp`), `remote_sdp` the answer it set: their
    /// SHA-256 `a=fingerprint` lines are the link's binding, as a native WebRTC link's
    /// (the peer's CERTS must sign the answer's fingerprint, which the browser's DTLS
    /// checked against the certificate the peer presented). Refuses SDP without exactly
    /// one SHA-256 fingerprint; the driver then closes the connection.
    pub fn connected_webrtc(
        &mut self,
        conn: f64,
        local_sdp: &str,
        remote_sdp: &str,
        now_ms: f64,
    ) -> Result<(), JsError> {
        let binding = webrtc_binding(local_sdp, remote_sdp).map_err(|e| JsError::new(&e))?;
        self.node.handle_input(Input::Connected {
            now: instant(now_ms),
            conn: ConnId(conn as u64),
            binding,
        });
        Ok(())
    }

    /// A binary message arrived on connection `conn`.
    pub fn data(&mut self, conn: f64, bytes: &[u8], now_ms: f64) {
        self.node.handle_input(Input::Data {
            now: instant(now_ms),
            conn: ConnId(conn as u64),
            data: bytes,
        });
    }

    /// Connection `conn` closed (`error`: it failed or was reset) or never opened.
    pub fn closed(&mut self, conn: f64, error: bool, now_ms: f64) {
        self.node.handle_input(Input::Closed {
            now: instant(now_ms),
            conn: ConnId(conn as u64),
            error,
        });
    }

    /// Time has reached `now_ms`.
    pub fn timeout(&mut self, now_ms: f64) {
        self.node.handle_input(Input::Timeout(instant(now_ms)));
    }

    /// The next output as a JS object (see the module docs); `{kind: "timeout", at_ms}`
    /// (`at_ms` null: nothing scheduled) when there is nothing else, always last.
    pub fn poll(&mut self) -> JsValue {
        match self.node.poll_output() {
            Output::Connect { conn, target } => match target {
                ConnectTarget::Relay {
                    addr,
                    id,
                    introducer,
                } => obj(&[
                    ("kind", s("connect")),
                    ("conn", conn_js(conn)),
                    ("addr", s(addr)),
                    ("id", id.map_or(JsValue::NULL, s)),
                    // The peer that can pass an offer to `id` ([`Peer::signal_offer`]).
                    ("introducer", introducer.map_or(JsValue::NULL, s)),
                ]),
                // A browser peer is no exit; the driver refuses these.
                ConnectTarget::Exit { host, port } => obj(&[
                    ("kind", s("connect")),
                    ("conn", conn_js(conn)),
                    ("exit", s(format!("{host}:{port}"))),
                ]),
            },
            Output::Transmit(conn) => {
                let k = self.node.poll_transmit(conn, &mut self.buf);
                obj(&[
                    ("kind", s("transmit")),
                    ("conn", conn_js(conn)),
                    ("data", Uint8Array::from(&self.buf[..k]).into()),
                ])
            }
            Output::Close(conn) => obj(&[("kind", s("close")), ("conn", conn_js(conn))]),
            Output::Event(e) => event_js(&e),
            Output::Timeout(at, reason) => obj(&[
                ("kind", s("timeout")),
                (
                    "at_ms",
                    if at == Instant::FAR_FUTURE {
                        JsValue::NULL
                    } else {
                        n(at.as_nanos() as f64 / 1e6)
                    },
                ),
                ("reason", s(format!("{reason:?}"))),
            ]),
        }
    }

    /// More bytes queued on `conn` (after a `transmit` output filled its buffer): an
    /// empty array when none.
    pub fn transmit(&mut self, conn: f64) -> Uint8Array {
        let k = self.node.poll_transmit(ConnId(conn as u64), &mut self.buf);
        Uint8Array::from(&self.buf[..k])
    }

    /// Join the DHT through a bridge (its `/node.json`: WebSocket address, hex id and
    /// hex ntor key). Returns the query id of the bootstrap.
    pub fn bootstrap_bridge(
        &mut self,
        addr: &str,
        id_hex: &str,
        ntor_hex: &str,
        now_ms: f64,
    ) -> Result<f64, JsError> {
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| JsError::new("bad bridge address"))?;
        let target = RelayTarget {
            addr,
            id: PeerId(unhex::<20>(id_hex).map_err(|e| JsError::new(&e))?),
            ntor_key: unhex::<32>(ntor_hex).map_err(|e| JsError::new(&e))?,
            ed_id: None,
        };
        self.query(
            Command::Bootstrap {
                via: BootstrapVia::Bridge(target),
            },
            now_ms,
        )
    }

    /// Send a WebRTC offer (`sdp`, our `pc.localDescription.sdp`) to peer `to_hex`
    /// through the network: to `via_hex` (the introducer a `connect` output named), which
    /// passes it on to the peer (PEER_SIGNAL, PROTOCOL.md section 3.1). The answer, or a
    /// refusal, comes back as a `SignalReceived` event from `to_hex` with this `session`.
    pub fn signal_offer(
        &mut self,
        to_hex: &str,
        via_hex: &str,
        session: u32,
        sdp: &str,
        now_ms: f64,
    ) -> Result<(), JsError> {
        let to = PeerId(unhex::<20>(to_hex).map_err(|e| JsError::new(&e))?);
        let via = PeerId(unhex::<20>(via_hex).map_err(|e| JsError::new(&e))?);
        let cmd = Command::Signal {
            to,
            via: Some(via),
            session,
            kind: SignalKind::OFFER,
            sdp: sdp.as_bytes().to_vec(),
        };
        match self.node.command(instant(now_ms), cmd) {
            Ok(_) => Ok(()),
            Err(e) => Err(JsError::new(&format!("offer not sent: {e}"))),
        }
    }

    /// PING every ORDB over its ORDB circuit (answers come as `OrdbAnswered` events).
    pub fn ask_ordbs(&mut self, now_ms: f64) -> Result<f64, JsError> {
        self.query(Command::AskOrdbs(None), now_ms)
    }

    /// Seed a file (its bytes and MIME type) under a fresh key: the node keeps it, tells
    /// its ORDBs and STOREs the name. Returns the hash_name (hex).
    pub fn seed(&mut self, bytes: &[u8], mime: &str, now_ms: f64) -> Result<String, JsError> {
        let cmd = Command::Seed {
            data: bytes.to_vec(),
            mime_type: mime.to_string(),
            key: None,
        };
        match self.node.command(instant(now_ms), cmd) {
            Ok(CommandOk::Content(name)) => Ok(hex(&name)),
            Ok(other) => Err(JsError::new(&format!("unexpected answer {other:?}"))),
            Err(e) => Err(JsError::new(&e.to_string())),
        }
    }

    /// Start downloading the file named `hash_name_hex` through the ORDB circuits
    /// (`held`: flat `[start, end, start, end, ...]` chunk ranges already in the page's
    /// store, never asked for again). Returns the download's handle; its progress comes
    /// as `ContentInfo` / `ContentReadable` / `ContentProgress` / `ContentDone` events.
    pub fn get(&mut self, hash_name_hex: &str, held: &[f64], now_ms: f64) -> Result<f64, JsError> {
        let name = unhex::<20>(hash_name_hex).map_err(|e| JsError::new(&e))?;
        let hash_name = HashName::new(&name).map_err(|e| JsError::new(&format!("{e:?}")))?;
        let held = held
            .chunks_exact(2)
            .map(|r| (r[0] as u64, r[1] as u64))
            .collect();
        match self
            .node
            .command(instant(now_ms), Command::Get { hash_name, held })
        {
            Ok(CommandOk::Download(h)) => Ok(h.0 as f64),
            Ok(other) => Err(JsError::new(&format!("unexpected answer {other:?}"))),
            Err(e) => Err(JsError::new(&e.to_string())),
        }
    }

    /// The next in-order verified bytes of download `handle`: `{offset, data}`, or null
    /// when none are ready (wait for the next `ContentReadable`). Call `poll()` after:
    /// reading lets the download ask for more.
    pub fn read_content(&mut self, handle: f64) -> JsValue {
        match self
            .node
            .read_content(DownloadHandle(handle as u64), &mut self.buf)
        {
            Some((offset, k)) if k > 0 => obj(&[
                ("offset", n(offset as f64)),
                ("data", Uint8Array::from(&self.buf[..k]).into()),
            ]),
            _ => JsValue::NULL,
        }
    }

    /// Stop download `handle` (no further event).
    pub fn cancel_get(&mut self, handle: f64, now_ms: f64) {
        let _ = self.node.command(
            instant(now_ms),
            Command::CancelGet(DownloadHandle(handle as u64)),
        );
    }

    /// How many ORDB circuits are built (cheap: the page asks after every drain to time
    /// its first circuit, since the DHT's own circuits emit no `CircuitBuilt`).
    pub fn ordb_count(&self) -> u32 {
        self.node.ordb_circuits() as u32
    }

    /// The chunk size of files seeded by onionpeer (bytes): the page turns the byte
    /// ranges it kept of an interrupted download into the chunk ranges `get` takes.
    pub fn chunk_size() -> u32 {
        u32::from(onionpeer_core::ordb::CHUNK_SIZE)
    }

    /// What the page shows: id, open objects, ORDB circuits, routing table, counters.
    pub fn state(&self) -> JsValue {
        let (links, circuits, streams, exits) = self.node.census();
        let paths: Array = self
            .node
            .ordb_paths()
            .iter()
            .map(|(first, ordb)| obj(&[("first", s(first)), ("ordb", s(ordb))]))
            .collect();
        let table: Array = self
            .node
            .routing_table()
            .map(|t| t.iter().map(|e| record_js(&e.record)).collect())
            .unwrap_or_default();
        obj(&[
            ("id", s(self.node.peer_id())),
            ("links", n(links as f64)),
            ("circuits", n(circuits as f64)),
            ("streams", n(streams as f64)),
            ("exits", n(exits as f64)),
            ("ordbCircuits", n(self.node.ordb_circuits() as f64)),
            ("ordbPaths", paths.into()),
            ("table", table.into()),
            ("counters", s(format!("{:?}", self.node.counters()))),
        ])
    }
}

impl Peer {
    fn query(&mut self, cmd: Command, now_ms: f64) -> Result<f64, JsError> {
        match self.node.command(instant(now_ms), cmd) {
            Ok(CommandOk::Query(q)) => Ok(q.0 as f64),
            Ok(other) => Err(JsError::new(&format!("unexpected answer {other:?}"))),
            Err(e) => Err(JsError::new(&e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same known answer as onionpeer-smol's `ws` tests: both ends must agree.
    #[test]
    fn ws_binding_known_answer() {
        assert_eq!(hex(&ws_binding(&[0; 32])), WS_BINDING_ZERO_NONCE);
    }

    const WS_BINDING_ZERO_NONCE: &str =
        "8fefdd252a600332ea557de065a87898e598a7430622f8d941445ea763d4ee37";

    #[test]
    fn sdp_fingerprint_reads_sha256_lines() {
        let fp = "AB:".repeat(31) + "CD";
        let sdp = format!(
            "v=0\r\na=fingerprint:sha-1 00:11\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
             a=fingerprint:sha-256 {fp}\r\na=fingerprint:SHA-256 {}\r\n",
            fp.to_lowercase()
        );
        let got = sdp_fingerprint(&sdp).unwrap();
        assert_eq!(got[0], 0xab);
        assert_eq!(got[31], 0xcd);
        assert!(sdp_fingerprint("v=0\r\n").is_err());
        assert!(sdp_fingerprint("a=fingerprint:sha-256 AB:CD\r\n").is_err());
        let other = "AB:".repeat(31) + "CE";
        let two = format!("a=fingerprint:sha-256 {fp}\na=fingerprint:sha-256 {other}\n");
        assert!(sdp_fingerprint(&two).is_err());
        let b = webrtc_binding(&sdp, &format!("a=fingerprint:sha-256 {other}")).unwrap();
        assert_eq!((b.local[31], b.remote[31]), (0xcd, 0xce));
    }

    #[test]
    fn unhex_checks_length_and_digits() {
        assert_eq!(unhex::<2>("0aFf").ok(), Some([0x0a, 0xff]));
        assert!(unhex::<2>("0a").is_err());
        assert!(unhex::<2>("0g00").is_err());
    }
}
