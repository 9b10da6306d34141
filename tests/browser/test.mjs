// The real-browser test's driver: loads the bridge's page in Debian's headless Chromium
// (playwright-core, executablePath: never a downloaded browser) and waits until the
// browser peer joined: bridge introduction, circuits built, ORDB circuits up. Then, when
// run.sh gives the names (SEED_HASH, SEED_FILE, ONIONPEER_BIN, BRIDGE_LINE, GET_OR_PORT):
//   A. the browser downloads the file a native peer seeds (SHA-256 checked in the page,
//      bytes compared here);
//   B. the browser seeds random bytes and a new native peer (`onionpeer get`)
//      downloads them; the file it writes is compared here;
//   M. (VIDEO_HASH, VIDEO_FILE, VIDEO_MIME) the browser downloads a WebM a native peer
//      seeds and plays it through Media Source Extensions: the video element must reach
//      readyState >= 2 and currentTime > 0;
//   D. (RESUME_HASH, RESUME_FILE) the page reloads in the middle of a download; the new
//      page's download keeps the pieces already in IndexedDB (`held`), fetches fewer
//      bytes, and ends byte-exact;
//   C. the page is loaded again with `?transport=webrtc`: every link of the browser
//      peer is a WebRTC data channel (signalling: an HTTP POST to the bridge, then offers
//      through the network to the peers it was introduced to, answered the same way);
//      it joins and downloads scenario A's file again (fresh), byte-exact.
//
//   node test.mjs URL [TIMEOUT_SECS]
//
// Prints the page's timings as one JSON line (`RESULT {...}`); exits non-zero on failure.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = process.argv[2] ?? "http://127.0.0.1:8080/";
const timeoutMs = Number(process.argv[3] ?? 90) * 1000;
const executablePath =
  process.env.CHROMIUM ??
  ["/usr/bin/chromium-headless-shell", "/usr/bin/chromium"].find((p) => existsSync(p));

const profile = mkdtempSync(join(tmpdir(), "onionpeer-chromium-"));
const launch = () =>
  chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    timeout: 60_000,
    // WebRTC on loopback only (see shared/notes/webrtc-chromium.md): both the loopback
    // switch and the mDNS feature off are needed, and only the last --disable-features
    // counts; muted autoplay for the MSE scenario.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--allow-loopback-in-peer-connection",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      "--force-fieldtrials=WebRTC-SetSocketReceiveBuffer/Enabled-2048/",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
// A loaded 2-core machine can make Chromium's start time out once: try twice.
let context;
try {
  context = await launch();
} catch (e) {
  console.log(`Chromium did not start (${e}); once more`);
  context = await launch();
}

// Wait until the page's peer joined (or failed); its state.
async function joined(page) {
  await page.waitForFunction(
    () => {
      const s = window.onionpeerState;
      return (
        s &&
        (s.phase === "failed" ||
          (s.ordbCircuits > 0 && s.times.bootstrapDone !== undefined))
      );
    },
    null,
    { timeout: timeoutMs, polling: 100 },
  );
  return page.evaluate(() => JSON.parse(JSON.stringify(window.onionpeerState)));
}

// Download `name` in the page (resuming from the chunk store unless `fresh`): its record
// and, when done, the saved file's bytes.
async function download(page, name, fresh) {
  const got = await page.evaluate(async ([name, ms, fresh]) => {
    const st = await Promise.race([
      window.onionpeerGet(name, { fresh }),
      new Promise((r) => setTimeout(() => r({ ...window.onionpeerState.downloads[name], phase: "timed out" }), ms)),
    ]);
    let b64 = null;
    if (st.phase === "done") {
      // The save link's Blob, built from the IndexedDB chunk store.
      const href = document.getElementById("save").href;
      const bytes = new Uint8Array(await (await fetch(href)).arrayBuffer());
      let bin = "";
      for (let i = 0; i < bytes.length; i += 32768) bin += String.fromCharCode(...bytes.subarray(i, i + 32768));
      b64 = btoa(bin);
    }
    return { st: JSON.parse(JSON.stringify(st)), b64 };
  }, [name, timeoutMs, fresh]);
  return { ...got.st, file: got.b64 ? Buffer.from(got.b64, "base64") : Buffer.alloc(0) };
}

const pick = (d) => d && { phase: d.phase, size: d.size, bytes: d.bytes, heldChunks: d.heldChunks, heldBytes: d.heldBytes, ms: d.ms, rate: d.rate, sha256: d.sha256, wantSha256: d.wantSha256, byteExact: d.byteExact, error: d.error };
const timesOf = (t) => ({ wasmReady: t.wasmReady, firstLink: t.firstLink, firstCircuit: t.firstCircuit, bootstrapDone: t.bootstrapDone, ordbCircuit: t.ordbCircuit });

let failed = null;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => console.log(`[page] ${m.text()}`));
  page.on("pageerror", (e) => console.log(`[page error] ${e}`));
  await page.goto(url);
  const s = await joined(page);
  // The IndexedDB chunk store the download will fill: chunks in, the file out, intact.
  const store = await page.evaluate(async () => {
    const cs = window.onionpeerChunks;
    if (!cs) return "no chunk store";
    const name = "test-" + Math.random();
    const a = crypto.getRandomValues(new Uint8Array(65536));
    const b = crypto.getRandomValues(new Uint8Array(1000));
    await cs.put(name, 1, b);
    await cs.put(name, 0, a);
    const idx = await cs.indices(name);
    const blob = await cs.blob(name, 2);
    const got = new Uint8Array(await blob.arrayBuffer());
    const want = new Uint8Array([...a, ...b]);
    await cs.remove(name);
    const left = await cs.indices(name);
    const same = got.length === want.length && got.every((x, i) => x === want[i]);
    return idx.join(",") === "0,1" && same && left.length === 0 ? "ok" : "chunk store mismatch";
  });
  const sha = (b) => createHash("sha256").update(b).digest("hex");
  // Scenario A: native seeder -> browser.
  let a = null;
  if (process.env.SEED_HASH) {
    const want = readFileSync(process.env.SEED_FILE);
    const got = await download(page, process.env.SEED_HASH, true);
    a = { ...got, wantSha256: sha(want), byteExact: got.file.equals(want) };
  }
  // Scenario B: browser seeder -> native peer.
  let b = null;
  if (process.env.ONIONPEER_BIN && process.env.BRIDGE_LINE) {
    const size = Number(process.env.SEED_BYTES ?? 1000000);
    const seeded = await page.evaluate(async (size) => {
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
      const name = await window.onionpeerSeed(bytes, "application/octet-stream");
      let bin = "";
      for (let i = 0; i < bytes.length; i += 32768) bin += String.fromCharCode(...bytes.subarray(i, i + 32768));
      return { name, b64: btoa(bin) };
    }, size);
    const want = Buffer.from(seeded.b64, "base64");
    const out = join(process.env.WORK ?? tmpdir(), "got.bin");
    const started = Date.now();
    const child = spawn(
      process.env.ONIONPEER_BIN,
      ["get", seeded.name, "-o", out, "--or-port", process.env.GET_OR_PORT, "--bridge", process.env.BRIDGE_LINE, "--timeout", String(Math.ceil(timeoutMs / 1000))],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const line = await new Promise((ok) => {
      let buf = "";
      const timer = setTimeout(() => ok("timeout"), timeoutMs);
      child.stdout.on("data", (d) => {
        buf += d;
        const m = buf.match(/^wrote .*$/m);
        if (m) {
          clearTimeout(timer);
          ok(m[0]);
        }
      });
      // "close", not "exit": stdout is read to its end first.
      child.on("close", () => ok(`exited: ${buf}`));
    });
    child.kill();
    const got = existsSync(out) ? readFileSync(out) : Buffer.alloc(0);
    b = { name: seeded.name, line, ms: Date.now() - started, size: want.length, byteExact: got.equals(want), sha256: sha(got), wantSha256: sha(want) };
  }
  // Scenario M: a WebM through Media Source Extensions.
  let m = null;
  if (process.env.VIDEO_HASH) {
    const want = readFileSync(process.env.VIDEO_FILE);
    const got = await download(page, process.env.VIDEO_HASH, true);
    const play = await page.evaluate(async ([mime]) => {
      const v = document.getElementById("player");
      const t0 = performance.now();
      while (performance.now() - t0 < 15000 && !(v.readyState >= 2 && v.currentTime > 0)) await new Promise((r) => setTimeout(r, 100));
      return {
        supported: window.MediaSource ? MediaSource.isTypeSupported(mime) : false,
        readyState: v.readyState,
        currentTime: v.currentTime,
        duration: v.duration,
        paused: v.paused,
        error: v.error ? `${v.error.code} ${v.error.message}` : null,
        media: window.onionpeerState.media ?? null,
      };
    }, [process.env.VIDEO_MIME]);
    m = { ...pick({ ...got, wantSha256: sha(want), byteExact: got.file.equals(want) }), mime: got.mime, play };
  }
  // Scenario D: the page reloads mid-download; the new page resumes from IndexedDB.
  let d = null;
  if (process.env.RESUME_HASH) {
    const name = process.env.RESUME_HASH;
    const want = readFileSync(process.env.RESUME_FILE);
    await page.evaluate((name) => {
      window.onionpeerGet(name, { fresh: true });
    }, name);
    await page.waitForFunction(
      (name) => {
        const x = window.onionpeerState.downloads[name];
        return x && (x.phase === "done" || x.phase === "failed" || (x.size && x.bytes >= x.size * 0.3));
      },
      name,
      { timeout: timeoutMs, polling: 10 },
    );
    const first = await page.evaluate((name) => JSON.parse(JSON.stringify(window.onionpeerState.downloads[name])), name);
    await page.reload();
    const again = await joined(page);
    const got = await download(page, name, false);
    d = {
      firstPhase: first.phase,
      firstBytes: first.bytes,
      rejoinMs: timesOf(again.times).ordbCircuit,
      ...pick({ ...got, wantSha256: sha(want), byteExact: got.file.equals(want) }),
    };
  }
  // Scenario C: the page again, every link over WebRTC; scenario A's file, fresh.
  let c = null;
  if (process.env.SEED_HASH && process.env.WEBRTC !== "0") {
    const want = readFileSync(process.env.SEED_FILE);
    await page.goto(`${url}?transport=webrtc`);
    const sc = await joined(page);
    const got = await download(page, process.env.SEED_HASH, true);
    const after = await page.evaluate(() => JSON.parse(JSON.stringify(window.onionpeerState)));
    c = {
      phase: sc.phase,
      transport: after.transport,
      opened: after.opened,
      signalling: after.signalling,
      linksUp: after.linksUp,
      ordbCircuits: sc.ordbCircuits,
      ms: timesOf(sc.times),
      errors: after.errors,
      download: pick({ ...got, wantSha256: sha(want), byteExact: got.file.equals(want) }),
    };
    // The same over WebSockets in the same conditions (page cached, file fetched before),
    // for a fair rate comparison.
    await page.goto(url);
    const sw = await joined(page);
    const again = await download(page, process.env.SEED_HASH, true);
    c.wsAgain = { ms: timesOf(sw.times), download: pick({ ...again, wantSha256: sha(want), byteExact: again.file.equals(want) }) };
    // The identity binding: a page that hands its core another fingerprint than the one
    // the peer's DTLS certificate has (`tamper=1`) gets no link up: the peers' CERTS sign
    // their real fingerprints, so every link is refused (BadCertificates).
    await page.goto(`${url}?transport=webrtc&tamper=1`);
    await page
      .waitForFunction(() => (window.onionpeerState?.linkDowns ?? []).filter((r) => r === "BadCertificates").length >= 1, null, { timeout: 20_000, polling: 100 })
      .catch(() => {});
    await new Promise((r) => setTimeout(r, 1000));
    const bad = await page.evaluate(() => JSON.parse(JSON.stringify(window.onionpeerState)));
    c.tampered = { linksUp: bad.linksUp, opened: bad.opened, refused: bad.linkDowns.filter((r) => r === "BadCertificates").length, linkDowns: bad.linkDowns.slice(0, 5) };
  }
  const t = s.times;
  const result = {
    phase: s.phase,
    peerId: s.peerId,
    peersFound: s.peersFound.length,
    linksUp: s.linksUp,
    circuitsBuilt: s.circuitsBuilt,
    ordbCircuits: s.ordbCircuits,
    ordbPaths: s.ordbPaths.length,
    table: s.table.length,
    chunkStore: store,
    ms: {
      wasmReady: t.wasmReady,
      firstLink: t.firstLink,
      peerFound: t.peerFound,
      firstCircuit: t.firstCircuit,
      bootstrapDone: t.bootstrapDone,
      ordbCircuit: t.ordbCircuit,
    },
    errors: s.errors,
    scenarioA: pick(a),
    scenarioB: b,
    scenarioM: m,
    scenarioD: d,
    scenarioC: c,
  };
  console.log(`RESULT ${JSON.stringify(result, (k, v) => (k === "file" ? undefined : v))}`);
  const checks = [
    [s.phase !== "failed", "the page failed"],
    [s.peersFound.length > 0, "the bridge introduced no peer (DB_FOUND_PEER)"],
    // ORDB circuits are internal (no CircuitBuilt event since the DHT-at-scale merge).
    [s.circuitsBuilt > 0 || s.ordbCircuits > 0, "no circuit built"],
    [s.ordbCircuits > 0, "no ORDB circuit"],
    [s.ordbPaths.every((p) => p.first !== p.ordb), "an ORDB circuit with one peer twice"],
    [store === "ok", `IndexedDB chunk store: ${store}`],
  ];
  if (a) {
    checks.push([a.phase === "done", `A: the browser download ended ${a.phase} (${a.error})`]);
    checks.push([a.sha256 === a.wantSha256, "A: the page's SHA-256 differs from the seeded file's"]);
    checks.push([a.byteExact, "A: the downloaded bytes differ from the seeded file"]);
  }
  if (b) {
    checks.push([b.line.startsWith("wrote"), `B: the native download: ${b.line}`]);
    checks.push([b.byteExact, "B: the native peer's file differs from what the browser seeded"]);
  }
  if (m) {
    checks.push([m.phase === "done" && m.byteExact, `M: the video download ended ${m.phase} (${m.error}), byte-exact ${m.byteExact}`]);
    checks.push([m.play.supported, `M: Chromium does not take ${process.env.VIDEO_MIME} in MSE`]);
    checks.push([m.play.readyState >= 2 && m.play.currentTime > 0, `M: the video did not play (readyState ${m.play.readyState}, currentTime ${m.play.currentTime}, error ${m.play.error})`]);
  }
  if (d) {
    checks.push([d.firstPhase === "downloading", `D: the first download was ${d.firstPhase} when the page reloaded`]);
    checks.push([d.phase === "done" && d.byteExact && d.sha256 === d.wantSha256, `D: the resumed download ended ${d.phase} (${d.error}), byte-exact ${d.byteExact}`]);
    checks.push([d.heldChunks > 0 && d.bytes < d.size, `D: nothing was kept over the reload (held ${d.heldChunks} chunks, fetched ${d.bytes} of ${d.size} bytes)`]);
  }
  if (c) {
    checks.push([c.phase !== "failed" && c.ordbCircuits > 0, "C: the WebRTC page did not join"]);
    checks.push([c.transport === "webrtc" && c.opened.ws === 0 && c.opened.webrtc > 0 && c.linksUp > 0, `C: links were not WebRTC only (${JSON.stringify(c.opened)}, ${c.linksUp} up)`]);
    // The bridge is dialled by HTTP (a newcomer's signalling); the peers it and the DHT
    // introduced are dialled through the network (PEER_SIGNAL), answered by them.
    checks.push([c.signalling.http >= 1 && c.signalling.answered >= 1, `C: no offer went through the network and was answered (${JSON.stringify(c.signalling)})`]);
    checks.push([c.download.phase === "done" && c.download.byteExact && c.download.sha256 === c.download.wantSha256, `C: the WebRTC download ended ${c.download.phase} (${c.download.error})`]);
    checks.push([c.wsAgain.download.phase === "done" && c.wsAgain.download.byteExact, `C: the WebSocket download after it ended ${c.wsAgain.download.phase} (${c.wsAgain.download.error})`]);
    checks.push([c.tampered.refused > 0 && c.tampered.linksUp === 0, `C: links with a wrong fingerprint were not refused (${JSON.stringify(c.tampered)})`]);
  }
  for (const [ok, what] of checks) if (!ok) failed = failed ?? what;
  const mb = (x) => (x && x.rate ? (x.rate / 1e6).toFixed(2) : "–");
  console.log(
    `FIGURES download over WebSocket (A) ${mb(a)} MB/s, over WebRTC (C) ${mb(c && c.download)} MB/s, over WebSocket again after C ${mb(c && c.wsAgain.download)} MB/s; ` +
      `page load -> wasm ${t.wasmReady?.toFixed(0)} ms, first link ${t.firstLink?.toFixed(0)} ms, first circuit ${t.firstCircuit?.toFixed(0)} ms, first ORDB circuit ${t.ordbCircuit?.toFixed(0)} ms (WebSocket)` +
      (c ? `; WebRTC: wasm ${c.ms.wasmReady?.toFixed(0)} ms, first link ${c.ms.firstLink?.toFixed(0)} ms, first circuit ${c.ms.firstCircuit?.toFixed(0)} ms, first ORDB circuit ${c.ms.ordbCircuit?.toFixed(0)} ms` : "") +
      (c ? `; WebSocket again: wasm ${c.wsAgain.ms.wasmReady?.toFixed(0)} ms, first link ${c.wsAgain.ms.firstLink?.toFixed(0)} ms, first circuit ${c.wsAgain.ms.firstCircuit?.toFixed(0)} ms, first ORDB circuit ${c.wsAgain.ms.ordbCircuit?.toFixed(0)} ms` : "") +
      (c ? `; WebRTC offers ${JSON.stringify(c.signalling)}` : "") +
      (d ? `; resume: ${d.firstBytes} bytes before the reload, ${d.heldChunks} chunks kept, ${d.bytes} of ${d.size} fetched after` : ""),
  );
} catch (e) {
  failed = String(e);
  try {
    const page = context.pages()[0];
    const s = await page.evaluate(() => JSON.stringify(window.onionpeerState));
    console.log(`STATE ${s}`);
  } catch {}
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
if (failed) {
  console.error(`FAIL: ${failed}`);
  process.exit(1);
}
console.log(
  "PASS: the browser peer joined through the bridge and keeps ORDB circuits" +
    (process.env.SEED_HASH ? "; downloaded a native peer's file and seeded one a native peer downloaded, byte-exact" : "") +
    (process.env.VIDEO_HASH ? "; played a WebM through MSE" : "") +
    (process.env.RESUME_HASH ? "; resumed a download over a reload" : "") +
    (process.env.SEED_HASH && process.env.WEBRTC !== "0" ? "; joined and downloaded over WebRTC only, and a wrong fingerprint was refused" : ""),
);
