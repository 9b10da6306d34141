// The browser peer's driver: owns the WebSockets and the timer, feeds the core (a wasm
// `Peer`) and carries out what `peer.poll()` asks for. No protocol logic lives here.
//
// Every link is a WebSocket to `ws://<addr>/link?b=<nonce>`: the bridge's WebSocket
// port, or a native peer's OR port (which tells WebSocket from TLS by the first byte).
// The nonce binds the link (PROTOCOL.md, "WebSocket links").

import init, { Peer } from "./onionpeer_wasm.js";

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

export class Driver {
  constructor(peer, onEvent) {
    this.peer = peer;
    this.onEvent = onEvent;
    this.sockets = new Map(); // conn -> WebSocket
    this.timer = null;
    this.wakeAt = null;
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
          try {
            this.onEvent(out);
          } catch (e) {
            console.error("event handler", e);
          }
          break;
        case "timeout":
          this.arm(out.at_ms);
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
      if (ws.pending) ws.pending.push(c);
      else if (ws.readyState === WebSocket.OPEN) ws.send(c);
    }
  }

  close(conn) {
    const ws = this.sockets.get(conn);
    this.sockets.delete(conn);
    if (ws) ws.close();
  }
}

// Start a peer: load the wasm, draw a seed, return the driver.
export async function startPeer(onEvent, ordbCircuits = 0) {
  await init();
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const peer = new Peer(seed, performance.now(), Date.now(), ordbCircuits);
  const driver = new Driver(peer, onEvent);
  driver.drain();
  return driver;
}
