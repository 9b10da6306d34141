// The browser peer's chunk store: chunks of a file kept in IndexedDB by (hash_name,
// index), so a download survives a reload and a finished file can be seeded again.
// Used by the page's download once the core has `Command::Get` (ORDB distribution).

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
