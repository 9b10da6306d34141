// The browser peer's driver: owns the WebSockets, the WebRTC peer connections and the
// timer, feeds the core (a wasm `Peer`) and carries out what `peer.poll()` asks for. No
// protocol logic lives here.
//
// Links are of one kind per page (`transport`):
// - "ws": a WebSocket to `ws://<addr>/link?b=<nonce>`: the bridge's WebSocket port, or a
//   native peer's OR port (which tells WebSocket from TLS by the first byte). The nonce
//   binds the link (PROTOCOL.md, "WebSocket links").
// - "webrtc": an RTCPeerConnection with one reliable ordered data channel ("onionpeer").
//   Its offer goes through the network when the core names an introducer for the peer
//   (the bridge that handed it out, the peer whose DHT answer listed it): PEER_SIGNAL via
//   `Peer.signal_offer`, the answer a `SignalReceived` event. Otherwise (the bridge, for a
//   newcomer), or when the introducer refuses it or no answer comes within 8 s, the offer
//   is POSTed to `http://<addr>/offer`. Once the channel opens, both SDPs go to
//   `Peer.connected_webrtc`, whose core binds the link to their DTLS fingerprints (the
//   peer's CERTS must sign the answer's). Binary messages carry the cell stream, at most
//   16 KiB each.

import init, { Peer } from "./onionpeer_wasm.js";

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

// Largest data channel message sent (what every implementation takes).
const RTC_MESSAGE = 16 * 1024;
// How long an offer sent through the network waits for its answer before the HTTP
// fallback is tried (answers take a few round trips; the core's link deadline is 30 s).
const NETWORK_ANSWER_MS = 8000;

export class Driver {
  constructor(peer, onEvent, transport = "ws", certificate = null) {
    this.peer = peer;
    this.onEvent = onEvent;
    this.transport = transport;
    this.certificate = certificate;
    this.sockets = new Map(); // conn -> WebSocket or WebRTC link
    this.timer = null;
    this.wakeAt = null;
    // Bytes in and out over links, for the page's figures.
    this.bytesIn = 0;
    this.bytesOut = 0;
    // Offers sent through the network awaiting their answer: "<peer>/<session>" -> resolve.
    this.exchanges = new Map();
    // How the WebRTC offers went: through the network (answered, refused, unanswered),
    // and by HTTP.
    this.signalling = { network: 0, answered: 0, refused: 0, unanswered: 0, http: 0 };
  }

  now() {
    return performance.now();
  }

  // Drain every output until the timeout, which is always last.
  drain() {
    for (;;) {
      const out = this.peer.poll();
      switch (out.kind) {
        case "connect":
          this.connect(out);
          break;
        case "transmit":
          this.send(out.conn, out.data);
          break;
        case "close":
          this.close(out.conn);
          break;
        case "event":
          if (out.type === "SignalReceived") this.onSignal(out);
          try {
            this.onEvent(out);
          } catch (e) {
            console.error("event handler", e);
          }
          break;
        case "timeout":
          this.arm(out.at_ms);
          if (this.afterDrain) this.afterDrain();
          return;
        default:
          console.error("unknown output", out);
          return;
      }
    }
  }

  arm(atMs) {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.wakeAt = atMs;
    if (atMs === null) return;
    const delay = Math.max(0, Math.min(atMs - this.now(), 2 ** 31 - 1));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.peer.timeout(this.now());
      this.drain();
    }, delay);
  }

  connect(out) {
    const conn = out.conn;
    if (out.exit !== undefined) {
      // A browser peer is no exit.
      queueMicrotask(() => {
        this.peer.closed(conn, true, this.now());
        this.drain();
      });
      return;
    }
    if (this.transport === "webrtc") {
      this.connectRtc(conn, out);
      return;
    }
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    let ws;
    try {
      ws = new WebSocket(`ws://${out.addr}/link?b=${hex(nonce)}`);
    } catch (e) {
      queueMicrotask(() => {
        this.peer.closed(conn, true, this.now());
        this.drain();
      });
      return;
    }
    ws.binaryType = "arraybuffer";
    ws.pending = [];
    this.sockets.set(conn, ws);
    ws.onopen = () => {
      this.peer.connected(conn, nonce, this.now());
      for (const d of ws.pending) ws.send(d);
      ws.pending = null;
      this.drain();
    };
    ws.onmessage = (m) => {
      if (!(m.data instanceof ArrayBuffer)) return;
      this.bytesIn += m.data.byteLength;
      this.peer.data(conn, new Uint8Array(m.data), this.now());
      this.drain();
    };
    ws.onclose = (c) => {
      if (this.sockets.get(conn) !== ws) return;
      this.sockets.delete(conn);
      this.peer.closed(conn, !c.wasClean, this.now());
      this.drain();
    };
    ws.onerror = () => {};
  }

  // An answer or refusal for one of our offers. (Offers never reach a browser peer: it
  // is a client, no peer has a circuit to it.)
  onSignal(out) {
    const resolve = this.exchanges.get(`${out.from}/${out.session}`);
    if (out.signal === "offer" || !resolve) return;
    this.exchanges.delete(`${out.from}/${out.session}`);
    resolve(out);
  }

  // Send `sdp` to peer `to` through introducer `via`; its answer, or null when it was
  // refused, could not be sent or got no answer in time.
  async offerThroughNetwork(to, via, sdp) {
    const session = crypto.getRandomValues(new Uint32Array(1))[0];
    const key = `${to}/${session}`;
    const reply = new Promise((resolve) => {
      this.exchanges.set(key, resolve);
      setTimeout(() => resolve(null), NETWORK_ANSWER_MS);
    });
    try {
      this.peer.signal_offer(to, via, session, sdp, this.now());
    } catch (e) {
      this.exchanges.delete(key);
      console.warn(`offer to ${to} via ${via}: ${e}`);
      return null;
    }
    this.signalling.network++;
    this.drain();
    const got = await reply;
    this.exchanges.delete(key);
    if (got === null) this.signalling.unanswered++;
    else if (got.signal === "answer") {
      this.signalling.answered++;
      return got.sdp;
    } else {
      this.signalling.refused++;
      console.warn(`offer to ${to} refused by the network: ${got.reason}`);
    }
    return null;
  }

  // A WebRTC link to peer `out.id` at `out.addr`: signalled through `out.introducer`,
  // else (or when that fails) by POSTing the offer to `http://<out.addr>/offer`.
  connectRtc(conn, out) {
    const addr = out.addr;
    let pc, dc;
    try {
      pc = new RTCPeerConnection({ iceServers: [], certificates: this.certificate ? [this.certificate] : undefined });
      dc = pc.createDataChannel("onionpeer", { ordered: true });
    } catch (e) {
      console.error("RTCPeerConnection", e);
      queueMicrotask(() => {
        this.peer.closed(conn, true, this.now());
        this.drain();
      });
      return;
    }
    dc.binaryType = "arraybuffer";
    const link = { rtc: true, pc, dc, pending: [], localSdp: null, remoteSdp: null, done: false };
    this.sockets.set(conn, link);
    // Report the end once, unless the core closed it itself.
    const end = (error) => {
      if (link.done) return;
      link.done = true;
      try {
        pc.close();
      } catch {}
      if (this.sockets.get(conn) !== link) return;
      this.sockets.delete(conn);
      this.peer.closed(conn, error, this.now());
      this.drain();
    };
    dc.onopen = () => {
      if (link.done) return;
      // Test only (`?tamper=1`): hand the core another fingerprint than the one DTLS
      // checked, as if the peer's certificate were not the one its CERTS signs.
      const remote = this.tamper ? link.remoteSdp.replace(/(a=fingerprint:sha-256 )(.)/gi, (_, p, c) => p + (c === "0" ? "1" : "0")) : link.remoteSdp;
      try {
        this.peer.connected_webrtc(conn, link.localSdp, remote, this.now());
      } catch (e) {
        console.error(`link ${conn}: ${e}`);
        end(true);
        return;
      }
      const pending = link.pending;
      link.pending = null;
      for (const d of pending) this.rtcSend(link, d);
      this.drain();
    };
    dc.onmessage = (m) => {
      if (link.done || !(m.data instanceof ArrayBuffer)) return;
      this.bytesIn += m.data.byteLength;
      this.peer.data(conn, new Uint8Array(m.data), this.now());
      this.drain();
    };
    dc.onclose = () => end(link.pending !== null);
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" || pc.connectionState === "closed") end(true);
    };
    (async () => {
      await pc.setLocalDescription(await pc.createOffer());
      link.localSdp = pc.localDescription.sdp;
      // One offer, no trickle: the node learns our address from our connectivity checks.
      let answer = null;
      if (out.id && out.introducer) answer = await this.offerThroughNetwork(out.id, out.introducer, link.localSdp);
      if (link.done) return;
      if (answer === null) {
        this.signalling.http++;
        // A text/plain body keeps it a "simple" cross-origin request (no preflight).
        const res = await fetch(`http://${addr}/offer`, { method: "POST", body: link.localSdp, cache: "no-store" });
        answer = await res.text();
        if (!res.ok) throw new Error(`offer refused: ${res.status} ${answer.trim()}`);
      }
      if (link.done) return;
      link.remoteSdp = answer;
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
    })().catch((e) => {
      console.error(`link ${conn} to ${addr}: ${e}`);
      end(true);
    });
  }

  rtcSend(link, data) {
    if (link.dc.readyState !== "open") return;
    for (let i = 0; i < data.length; i += RTC_MESSAGE) link.dc.send(data.subarray(i, Math.min(data.length, i + RTC_MESSAGE)));
  }

  send(conn, data) {
    const ws = this.sockets.get(conn);
    // The core may hold more than one output's worth: take the rest too.
    const chunks = [data];
    for (;;) {
      const more = this.peer.transmit(conn);
      if (more.length === 0) break;
      chunks.push(more);
    }
    if (!ws) return;
    for (const c of chunks) {
      if (c.length === 0) continue;
      this.bytesOut += c.length;
      if (ws.pending) ws.pending.push(c);
      else if (ws.rtc) this.rtcSend(ws, c);
      else if (ws.readyState === WebSocket.OPEN) ws.send(c);
    }
  }

  close(conn) {
    const ws = this.sockets.get(conn);
    this.sockets.delete(conn);
    if (!ws) return;
    if (ws.rtc) {
      ws.done = true;
      try {
        ws.dc.close();
        ws.pc.close();
      } catch {}
    } else ws.close();
  }
}

// Start a peer: load the wasm, draw a seed, return the driver. `transport`: "ws" or
// "webrtc" (every link of the page is of that kind).
export async function startPeer(onEvent, ordbCircuits = 0, transport = "ws") {
  await init();
  let certificate = null;
  if (transport === "webrtc") {
    // One DTLS certificate for every link of the page (a fresh one per link is slower).
    certificate = await RTCPeerConnection.generateCertificate({ name: "ECDSA", namedCurve: "P-256" });
  }
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const peer = new Peer(seed, performance.now(), Date.now(), ordbCircuits);
  const driver = new Driver(peer, onEvent, transport, certificate);
  driver.drain();
  return driver;
}
