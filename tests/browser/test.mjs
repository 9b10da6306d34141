// The real-browser test's driver: loads the bridge's page in Debian's headless Chromium
// (playwright-core, executablePath: never a downloaded browser) and waits until the
// browser peer joined: bridge introduction, circuits built, ORDB circuits up.
//
//   node test.mjs URL [TIMEOUT_SECS]
//
// Prints the page's timings as one JSON line (`RESULT {...}`); exits non-zero on failure.

import { existsSync, mkdtempSync, rmSync } from "node:fs";
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
          (s.ordbCircuits > 0 && s.circuitsBuilt > 0 && s.times.bootstrapDone !== undefined))
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
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
  const checks = [
    [s.phase !== "failed", "the page failed"],
    [s.peersFound.length > 0, "the bridge introduced no peer (DB_FOUND_PEER)"],
    [s.circuitsBuilt > 0, "no circuit built"],
    [s.ordbCircuits > 0, "no ORDB circuit"],
    [s.ordbPaths.every((p) => p.first !== p.ordb), "an ORDB circuit with one peer twice"],
    [store === "ok", `IndexedDB chunk store: ${store}`],
  ];
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
console.log("PASS: the browser peer joined through the bridge and keeps ORDB circuits");
