// The browser peer's chunk store: pieces of a file kept in IndexedDB by (hash_name,
// index), so a download survives a reload and a finished file can be seeded again.
// The page's downloads key each piece by its byte offset in the file (`index`): what
// the core read out verified, in any sizes; `ranges` and `assemble` work on those.

const DB = "onionpeer";
const STORE = "chunks";

function req(r) {
  return new Promise((ok, err) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => err(r.error);
  });
}

export class ChunkStore {
  static async open() {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => {
      const store = r.result.createObjectStore(STORE, { keyPath: ["name", "index"] });
      store.createIndex("name", "name");
    };
    return new ChunkStore(await req(r));
  }

  constructor(db) {
    this.db = db;
  }

  async put(name, index, bytes) {
    const tx = this.db.transaction(STORE, "readwrite");
    await req(tx.objectStore(STORE).put({ name, index, bytes }));
  }

  // Several pieces of `name` ([index, bytes] pairs) in one transaction: a download's
  // writes keep up with its reads, so a reload loses little.
  async putAll(name, pieces) {
    // Relaxed: a commit need not reach the disk before it completes (much faster; what
    // a crash loses is fetched again).
    const tx = this.db.transaction(STORE, "readwrite", { durability: "relaxed" });
    const store = tx.objectStore(STORE);
    for (const [index, bytes] of pieces) store.put({ name, index, bytes });
    await new Promise((ok, err) => {
      tx.oncomplete = () => ok();
      tx.onerror = () => err(tx.error);
      tx.onabort = () => err(tx.error);
    });
  }

  async get(name, index) {
    const tx = this.db.transaction(STORE, "readonly");
    const row = await req(tx.objectStore(STORE).get([name, index]));
    return row ? row.bytes : null;
  }

  // Indices held of `name`, ascending.
  async indices(name) {
    const tx = this.db.transaction(STORE, "readonly");
    const keys = await req(tx.objectStore(STORE).index("name").getAllKeys(IDBKeyRange.only(name)));
    return keys.map((k) => k[1]).sort((a, b) => a - b);
  }

  // The whole file as a Blob (chunks 0..count-1), or null if one is missing.
  async blob(name, count, type = "application/octet-stream") {
    const parts = [];
    for (let i = 0; i < count; i++) {
      const c = await this.get(name, i);
      if (!c) return null;
      parts.push(c);
    }
    return new Blob(parts, { type });
  }

  // Every piece of `name` as {index, bytes}, ascending by index.
  async pieces(name) {
    const tx = this.db.transaction(STORE, "readonly");
    const rows = await req(tx.objectStore(STORE).index("name").getAll(IDBKeyRange.only(name)));
    return rows.map((r) => ({ index: r.index, bytes: r.bytes })).sort((a, b) => a.index - b.index);
  }

  // The byte ranges [start, end) held of `name` (pieces keyed by offset), merged.
  async ranges(name) {
    const out = [];
    for (const p of await this.pieces(name)) {
      const end = p.index + p.bytes.length;
      const last = out[out.length - 1];
      if (last && p.index <= last[1]) last[1] = Math.max(last[1], end);
      else out.push([p.index, end]);
    }
    return out;
  }

  // The file of `size` bytes from pieces keyed by offset (overlaps allowed), or null if
  // a byte is missing.
  async assemble(name, size, type = "application/octet-stream") {
    const parts = [];
    let covered = 0;
    for (const p of await this.pieces(name)) {
      const end = p.index + p.bytes.length;
      if (end <= covered) continue;
      if (p.index > covered) return null;
      parts.push(p.bytes.subarray(covered - p.index, Math.min(p.bytes.length, size - p.index)));
      covered = Math.min(end, size);
      if (covered >= size) break;
    }
    return covered === size ? new Blob(parts, { type }) : null;
  }

  async remove(name) {
    const tx = this.db.transaction(STORE, "readwrite");
    const index = tx.objectStore(STORE).index("name");
    const keys = await req(index.getAllKeys(IDBKeyRange.only(name)));
    for (const k of keys) await req(tx.objectStore(STORE).delete(k));
  }
}

// SHA-256 of a Blob, hex (the page checks a finished download with it).
export async function sha256Hex(blob) {
  const d = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Hand a finished file to the user.
export function save(blob, filename) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
