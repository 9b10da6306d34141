// The real-browser test's driver: loads the bridge's page in Debian's headless Chromium
// (playwright-core, executablePath: never a downloaded browser) and waits until the
// browser peer joined: bridge introduction, circuits built, ORDB circuits up. Then, when
// run.sh gives the names (SEED_HASH, SEED_FILE, ONIONPEER_BIN, BRIDGE_LINE, GET_OR_PORT):
//   A. the browser downloads the file a native peer seeds (SHA-256 checked in the page,
//      bytes compared here);
//   B. the browser seeds random bytes and a new native peer (`onionpeer peer --get`)
//      downloads them; the file it writes is compared here.
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
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
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

let failed = null;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => console.log(`[page] ${m.text()}`));
  page.on("pageerror", (e) => console.log(`[page error] ${e}`));
  await page.goto(url);
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
  const s = await page.evaluate(() => JSON.parse(JSON.stringify(window.onionpeerState)));
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
    const got = await page.evaluate(async ([name, ms]) => {
      const st = await Promise.race([
        window.onionpeerGet(name),
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
    }, [process.env.SEED_HASH, timeoutMs]);
    const bytes = got.b64 ? Buffer.from(got.b64, "base64") : Buffer.alloc(0);
    a = {
      ...got.st,
      wantSha256: sha(want),
      byteExact: bytes.equals(want),
    };
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
      ["peer", "--or-port", process.env.GET_OR_PORT, "--bridge", process.env.BRIDGE_LINE, "--get", seeded.name, "-o", out],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const line = await new Promise((ok) => {
      let buf = "";
      const timer = setTimeout(() => ok("timeout"), timeoutMs);
      child.stdout.on("data", (d) => {
        buf += d;
        const m = buf.match(/^get (done|failed).*$/m);
        if (m) {
          clearTimeout(timer);
          ok(m[0]);
        }
      });
      child.on("exit", () => ok(`exited: ${buf}`));
    });
    child.kill();
    const got = existsSync(out) ? readFileSync(out) : Buffer.alloc(0);
    b = { name: seeded.name, line, ms: Date.now() - started, size: want.length, byteExact: got.equals(want), sha256: sha(got), wantSha256: sha(want) };
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
    scenarioA: a && { phase: a.phase, bytes: a.bytes, ms: a.ms, rate: a.rate, sha256: a.sha256, wantSha256: a.wantSha256, byteExact: a.byteExact, error: a.error },
    scenarioB: b,
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
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
    checks.push([b.line.startsWith("get done"), `B: the native download: ${b.line}`]);
    checks.push([b.byteExact, "B: the native peer's file differs from what the browser seeded"]);
  }
  for (const [ok, what] of checks) if (!ok) failed = failed ?? what;
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
    (process.env.SEED_HASH ? "; downloaded a native peer's file and seeded one a native peer downloaded, byte-exact" : ""),
);
