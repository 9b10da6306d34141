// The page: start a browser peer, join the network through the bridge that served this
// page (Peersm bootstrap: DB_FIND_PEER to the bridge, then a FIND_NODE lookup of our own
// id), and show links, circuits and ORDB circuits. Everything the page shows is also in
// `window.onionpeerState`, which the real-browser test reads.

import { startPeer } from "./driver.js";
import { ChunkStore } from "./chunks.js";

const $ = (id) => document.getElementById(id);
const state = {
  phase: "loading",
  peerId: null,
  bridge: null,
  // Milliseconds since navigation start (performance.now()).
  times: {},
  linksUp: 0,
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
  download: "needs the core's Command::Get (ORDB file distribution, issue 7)",
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
  if (s.ordbCircuits > 0) {
    mark("ordbCircuit");
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
    case "OrdbAnswered":
      log(`ORDB ${short(e.ordb)} answered`);
      break;
    default:
      break;
  }
  render();
}

async function main() {
  try {
    mark("start");
    const res = await fetch("./node.json", { cache: "no-store" });
    state.bridge = await res.json();
    driver = await startPeer((e) => onEvent(e));
    // Remember where each link goes, for the links table.
    const poll = driver.peer.poll.bind(driver.peer);
    driver.peer.poll = () => {
      const out = poll();
      if (out.kind === "connect" && out.addr) state.links[out.conn] = { peer: out.id, addr: out.addr, state: "connecting" };
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
