// The page: start a browser peer, join the network through the bridge that served this
// page (Peersm bootstrap: DB_FIND_PEER to the bridge, then a FIND_NODE lookup of our own
// id), and show links, circuits and ORDB circuits. Everything the page shows is also in
// `window.onionpeerState`, which the real-browser test reads.
//
// `?transport=webrtc`: every link is a WebRTC data channel (offers POSTed to the node's
// `/offer`); otherwise WebSockets.

import { startPeer } from "./driver.js";
import { Peer } from "./onionpeer_wasm.js";
import { ChunkStore, sha256Hex } from "./chunks.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const transport = params.get("transport") === "webrtc" ? "webrtc" : "ws";
const state = {
  phase: "loading",
  transport,
  // Links opened by kind, and bytes moved over links (the driver's counts).
  opened: { ws: 0, webrtc: 0 },
  bytesIn: 0,
  bytesOut: 0,
  // How WebRTC offers went (the driver's counts): through the network or by HTTP.
  signalling: { network: 0, answered: 0, refused: 0, unanswered: 0, http: 0 },
  peerId: null,
  bridge: null,
  // Milliseconds since navigation start (performance.now()).
  times: {},
  linksUp: 0,
  // Why links went down (LinkCloseReason names).
  linkDowns: [],
  links: {},
  circuitsBuilt: 0,
  circuitsClosed: 0,
  peersFound: [],
  bootstraps: [],
  ordbCircuits: 0,
  ordbPaths: [],
  table: [],
  census: null,
  errors: [],
  chunkStore: false,
  // hash_name -> {phase, size, mime, verified, total, bytes, sha256, ms, rate, error}
  downloads: {},
  // hash_name -> {size, mime, sha256}
  seeded: {},
};
window.onionpeerState = state;

function log(msg) {
  const line = `${(performance.now() / 1000).toFixed(3)}s ${msg}`;
  const el = $("log");
  el.textContent += line + "\n";
  el.scrollTop = el.scrollHeight;
  console.log(line);
}

function mark(name) {
  if (state.times[name] === undefined) state.times[name] = performance.now();
}

function setPhase(p) {
  state.phase = p;
  $("phase").textContent = p;
}

const short = (id) => (id ? `${id.slice(0, 8)}…` : "?");

function row(table, cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c;
    tr.appendChild(td);
  }
  table.appendChild(tr);
}

function clearRows(table) {
  while (table.rows.length > 1) table.deleteRow(1);
}

let driver = null;
let bootstrapQuery = null;
let retries = 0;

function render() {
  if (!driver) return;
  const s = driver.peer.state();
  state.census = { links: s.links, circuits: s.circuits, streams: s.streams };
  state.ordbCircuits = s.ordbCircuits;
  state.ordbPaths = s.ordbPaths;
  state.table = s.table;
  state.counters = s.counters;
  state.bytesIn = driver.bytesIn;
  state.bytesOut = driver.bytesOut;
  state.signalling = { ...driver.signalling };
  if (s.ordbCircuits > 0) {
    mark("ordbCircuit");
    $("get").disabled = false;
    $("seed").disabled = false;
    if (!Object.keys(state.downloads).length) $("dl-status").textContent = "ready";
    if (state.phase === "joining" || state.phase === "bootstrapped") setPhase("joined");
  }
  $("links").textContent = s.links;
  $("circuits").textContent = s.circuits;
  $("circuits-built").textContent = state.circuitsBuilt;
  $("ordb-count").textContent = s.ordbCircuits;
  const t = state.times;
  if (t.firstCircuit !== undefined) $("t-first-circuit").textContent = `${t.firstCircuit.toFixed(0)} ms`;
  if (t.ordbCircuit !== undefined) $("t-ordb").textContent = `${t.ordbCircuit.toFixed(0)} ms`;
  clearRows($("links-table"));
  for (const [conn, l] of Object.entries(state.links)) row($("links-table"), [conn, short(l.peer), l.addr, l.state]);
  clearRows($("ordb-table"));
  for (const p of s.ordbPaths) row($("ordb-table"), [short(p.first), short(p.ordb)]);
  clearRows($("dht-table"));
  for (const r of s.table) row($("dht-table"), [short(r.id), r.addr]);
}

function bootstrap() {
  const b = state.bridge;
  const addr = b.ws[0] || b.or_addr;
  try {
    bootstrapQuery = driver.peer.bootstrap_bridge(addr, b.id, b.ntor_key, performance.now());
    state.bootstraps.push({ query: bootstrapQuery, at: performance.now() });
    mark("bootstrapStart");
    log(`bootstrap through bridge ${short(b.id.toUpperCase())} at ${addr} (query ${bootstrapQuery})`);
  } catch (e) {
    state.errors.push(String(e));
    log(`bootstrap refused: ${e}`);
  }
  driver.drain();
}


function onEvent(e) {
  switch (e.type) {
    case "LinkUp":
      state.linksUp++;
      mark("firstLink");
      state.links[e.conn] = { ...(state.links[e.conn] || {}), peer: e.peer, state: `up (v${e.version})` };
      log(`link ${e.conn} up to ${short(e.peer)}`);
      break;
    case "LinkDown":
      if (state.links[e.conn]) state.links[e.conn].state = `down (${e.reason})`;
      state.linkDowns.push(e.reason);
      log(`link ${e.conn} down: ${e.reason}`);
      break;
    case "CircuitBuilt":
      state.circuitsBuilt++;
      mark("firstCircuit");
      if (state.circuitsBuilt === 1) log(`first circuit built after ${state.times.firstCircuit.toFixed(0)} ms`);
      break;
    case "CircuitClosed":
      state.circuitsClosed++;
      break;
    case "PeerFound":
      state.peersFound.push(e.peer);
      mark("peerFound");
      // The bridge's DB_FOUND_PEER came back over our first circuit (the DHT's one-hop
      // circuits emit no CircuitBuilt): the first circuit was built by now.
      mark("firstCircuit");
      log(`bridge introduced peer ${short(e.peer.id)} at ${e.peer.addr}`);
      break;
    case "DhtLookupDone":
      log(`lookup ${e.query} done: ${e.closest.length} closest, ${e.hops} hops`);
      if (e.query === bootstrapQuery && e.closest.length === 0) {
        // The bridge knew nobody yet (or the lookup failed): try again shortly.
        if (retries++ < 20) setTimeout(bootstrap, 2000);
      }
      break;
    case "OrdbCircuitsReady":
      mark("bootstrapDone");
      setPhase("bootstrapped");
      log(`bootstrap done: ${e.count} ORDB circuits being built`);
      if (e.count === 0 && retries++ < 20) setTimeout(bootstrap, 2000);
      break;
    case "ContentInfo":
    case "ContentReadable":
    case "ContentProgress":
    case "ContentDone":
      onContent(e);
      break;
    case "OrdbAnswered":
      log(`ORDB ${short(e.ordb)} answered`);
      break;
    default:
      break;
  }
  render();
}

// ---- downloads: Peer.get, read_content into the IndexedDB chunk store, SHA-256 -------

const downloads = new Map(); // handle -> download record
const hexOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function onContent(e) {
  const dl = downloads.get(e.handle);
  if (!dl) return;
  const st = state.downloads[dl.name];
  switch (e.type) {
    case "ContentInfo":
      st.size = e.size;
      st.mime = e.mime;
      st.phase = "downloading";
      // Playback needs every byte in order: not for a resumed download.
      dl.media = st.heldBytes === 0 ? MediaFeed.open(e.mime) : null;
      st.media = dl.media !== null;
      localStorage.setItem(`onionpeer-dl-${dl.name}`, JSON.stringify({ size: e.size, mime: e.mime }));
      log(`download ${dl.name.slice(0, 8)}…: ${e.size} bytes, ${e.mime}`);
      break;
    case "ContentReadable":
      // Take every in-order verified byte now (reading slides the download's window);
      // the chunk store writes follow in order (see `store`).
      for (;;) {
        const r = driver.peer.read_content(e.handle);
        if (!r) break;
        if (r.offset < dl.readEnd) {
          st.error = `read at ${r.offset}, before ${dl.readEnd}`;
        }
        dl.readEnd = r.offset + r.data.length;
        dl.pieces++;
        st.bytes += r.data.length;
        // Keyed by offset: a reload keeps what was stored (see `get`).
        store(dl, r.offset, r.data);
        if (dl.media) dl.media.push(r.data);
      }
      break;
    case "ContentProgress":
      st.verified = e.verified;
      st.total = e.total;
      $("progress").max = e.total;
      $("progress").value = e.verified;
      $("dl-status").textContent = `${e.verified} / ${e.total} chunks`;
      break;
    case "ContentDone":
      downloads.delete(e.handle);
      st.ms = performance.now() - dl.start;
      if (!e.ok) {
        flush(dl); // kept for a later try
        st.phase = "failed";
        st.error = e.error;
        $("dl-status").textContent = `failed: ${e.error}`;
        log(`download failed: ${e.error}`);
        dl.done(st);
        return;
      }
      finish(dl, st).then(
        () => dl.done(st),
        (err) => {
          st.phase = "failed";
          st.error = String(err);
          dl.done(st);
        },
      );
      break;
  }
}

// Queue a piece for the chunk store: written in batches (~256 KiB, or 50 ms after the
// first piece), one relaxed transaction each, started at once — IndexedDB runs read-write
// transactions on a store in the order they were made. Few large transactions keep up
// with the download, so a reload loses little.
function store(dl, offset, data) {
  if (!window.onionpeerChunks) return;
  dl.batch = dl.batch || [];
  dl.batch.push([offset, data]);
  dl.batchBytes = (dl.batchBytes || 0) + data.length;
  if (dl.batchBytes >= 256 * 1024) flush(dl);
  else if (!dl.batchTimer) dl.batchTimer = setTimeout(() => flush(dl), 50);
}

function flush(dl) {
  if (dl.batchTimer) clearTimeout(dl.batchTimer);
  dl.batchTimer = null;
  if (!dl.batch || !dl.batch.length) return;
  const batch = dl.batch;
  dl.batch = [];
  dl.batchBytes = 0;
  dl.writes = Promise.all([dl.writes, window.onionpeerChunks.putAll(dl.name, batch)]);
}

async function finish(dl, st) {
  flush(dl);
  await dl.writes;
  const blob = await window.onionpeerChunks.assemble(dl.name, st.size, st.mime || "application/octet-stream");
  if (!blob) throw new Error("a piece is missing from the store");
  st.sha256 = await sha256Hex(blob);
  st.stored = blob.size;
  st.rate = st.bytes / (st.ms / 1000);
  localStorage.removeItem(`onionpeer-dl-${dl.name}`);
  st.phase = blob.size === st.size ? "done" : "failed";
  if (st.phase === "failed") st.error = `stored ${blob.size} of ${st.size} bytes`;
  $("progress").value = $("progress").max;
  $("dl-status").textContent = `done: ${st.bytes} bytes in ${(st.ms / 1000).toFixed(2)} s (${(st.rate / 1e6).toFixed(2)} MB/s)`;
  $("dl-sha").textContent = `SHA-256 ${st.sha256}`;
  const a = $("save");
  if (a.href) URL.revokeObjectURL(a.href);
  a.href = URL.createObjectURL(blob);
  a.download = dl.name;
  a.hidden = false;
  if (dl.media) dl.media.end();
  log(`download done: ${st.bytes} bytes, SHA-256 ${st.sha256.slice(0, 16)}…`);
}

// Media Source Extensions playback while a video downloads: the in-order bytes are
// appended as they are read (WebM, or fragmented MP4: a MIME type with codecs that
// MediaSource.isTypeSupported accepts, e.g. `video/webm; codecs="vp8, vorbis"`).
class MediaFeed {
  static open(mime) {
    if (!/^video\/(webm|mp4)/.test(mime || "") || !window.MediaSource || !MediaSource.isTypeSupported(mime)) return null;
    return new MediaFeed(mime);
  }

  constructor(mime) {
    this.queue = [];
    this.ended = false;
    this.buffer = null;
    const ms = new MediaSource();
    const video = $("player");
    video.muted = true;
    video.src = URL.createObjectURL(ms);
    video.hidden = false;
    this.video = video;
    this.played = false;
    state.media = { mime, appended: 0, errors: [] };
    ms.addEventListener("sourceopen", () => {
      this.ms = ms;
      this.buffer = ms.addSourceBuffer(mime);
      this.buffer.addEventListener("updateend", () => this.pump());
      this.pump();
    });
  }

  push(bytes) {
    this.queue.push(bytes);
    this.pump();
  }

  end() {
    this.ended = true;
    this.pump();
  }

  pump() {
    if (!this.buffer || this.buffer.updating) return;
    if (!this.played && this.buffer.buffered.length > 0) {
      // Start as soon as something is buffered (muted: autoplay is allowed).
      this.played = true;
      this.video.play().catch((e) => state.media.errors.push(`play: ${e}`));
    }
    const next = this.queue.shift();
    if (next) {
      try {
        this.buffer.appendBuffer(next);
        state.media.appended += next.length;
      } catch (e) {
        log(`media: ${e}`);
        state.media.errors.push(String(e));
        this.buffer = null;
      }
    } else if (this.ended && this.ms.readyState === "open") {
      this.ms.endOfStream();
    }
  }
}

// The chunk ranges, flat [start, end, ...], wholly inside the byte ranges kept of an
// interrupted download (its pieces are keyed by offset; chunks are `chunk_size` bytes,
// the last one possibly shorter: it counts when the kept bytes reach the file's end).
function heldChunks(ranges, size) {
  const cs = Peer.chunk_size();
  const held = [];
  for (const [a, b] of ranges) {
    const first = Math.ceil(a / cs);
    const end = size !== null && b >= size ? Math.ceil(size / cs) : Math.floor(b / cs);
    if (end > first) held.push(first, end);
  }
  return held;
}

// Fetch `name` (hex hash_name): resolves with its record in state.downloads. What the
// chunk store kept of an earlier, interrupted download of it (a reload) is not fetched
// again (`held`), unless `fresh`.
async function get(name, { fresh = false } = {}) {
  name = name.trim().toLowerCase();
  const st = { phase: "asking", size: null, mime: null, verified: 0, total: 0, bytes: 0, heldBytes: 0, heldChunks: 0, sha256: null, ms: null, rate: null, error: null };
  state.downloads[name] = st;
  const cs = window.onionpeerChunks;
  let held = [];
  if (cs && fresh) await cs.remove(name);
  else if (cs) {
    const known = JSON.parse(localStorage.getItem(`onionpeer-dl-${name}`) || "null");
    held = heldChunks(await cs.ranges(name), known ? known.size : null);
    for (let i = 0; i < held.length; i += 2) st.heldChunks += held[i + 1] - held[i];
    st.heldBytes = known ? Math.min(known.size, st.heldChunks * Peer.chunk_size()) : st.heldChunks * Peer.chunk_size();
    if (st.heldChunks > 0) log(`resuming ${name.slice(0, 8)}…: ${st.heldChunks} chunks kept from before`);
  }
  return new Promise((done) => {
    try {
      const handle = driver.peer.get(name, new Float64Array(held), performance.now());
      const writes = Promise.resolve();
      downloads.set(handle, { name, start: performance.now(), pieces: 0, readEnd: 0, writes, done, media: null });
      $("dl-status").textContent = "asking the ORDBs";
      log(`get ${name.slice(0, 8)}… (download ${handle})`);
    } catch (e) {
      st.phase = "failed";
      st.error = String(e);
      $("dl-status").textContent = `refused: ${e}`;
      done(st);
    }
    driver.drain();
  });
}

// Seed `bytes` (a Uint8Array) as a file of type `mime`: resolves with its hash_name (hex).
async function seed(bytes, mime = "application/octet-stream") {
  const name = driver.peer.seed(bytes, mime, performance.now());
  driver.drain();
  const d = await crypto.subtle.digest("SHA-256", bytes);
  state.seeded[name] = { size: bytes.length, mime, sha256: hexOf(new Uint8Array(d)) };
  log(`seeding ${bytes.length} bytes as ${name}`);
  return name;
}

window.onionpeerGet = get;
window.onionpeerSeed = seed;

function wireUi() {
  $("get").onclick = () => {
    const name = $("hash-name").value;
    if (name) get(name);
  };
  $("seed").onclick = async () => {
    const f = $("seed-file").files[0];
    if (!f) return;
    try {
      const name = await seed(new Uint8Array(await f.arrayBuffer()), f.type || "application/octet-stream");
      $("seed-status").textContent = `hash_name ${name}`;
    } catch (e) {
      $("seed-status").textContent = `refused: ${e}`;
    }
  };
}

async function main() {
  wireUi();
  try {
    mark("start");
    const res = await fetch("./node.json", { cache: "no-store" });
    state.bridge = await res.json();
    driver = await startPeer((e) => onEvent(e), 0, transport);
    // Test only: the real-browser test checks that a WebRTC link whose fingerprint is not
    // the one the peer's CERTS signs is refused.
    driver.tamper = params.get("tamper") === "1";
    driver.afterDrain = () => {
      if (state.times.ordbCircuit === undefined && driver.peer.ordb_count() > 0) mark("ordbCircuit");
    };
    // Remember where each link goes, for the links table.
    const poll = driver.peer.poll.bind(driver.peer);
    driver.peer.poll = () => {
      const out = poll();
      if (out.kind === "connect" && out.addr) {
        state.links[out.conn] = { peer: out.id, addr: out.addr, state: "connecting", kind: transport };
        state.opened[transport]++;
      }
      return out;
    };
    mark("wasmReady");
    state.peerId = driver.peer.id();
    window.onionpeerDriver = driver;
    $("peer-id").textContent = state.peerId;
    log(`peer ${state.peerId} started (wasm ready after ${state.times.wasmReady.toFixed(0)} ms)`);
    setPhase("joining");
    bootstrap();
    setInterval(render, 250);
  } catch (e) {
    state.errors.push(String(e && e.stack ? e.stack : e));
    setPhase("failed");
    log(`failed: ${e}`);
  }
  try {
    window.onionpeerChunks = await ChunkStore.open();
    state.chunkStore = true;
  } catch (e) {
    state.errors.push(`chunk store: ${e}`);
  }
}

main();
