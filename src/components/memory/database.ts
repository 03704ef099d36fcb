/**
 * One of the 16 keyspaces of the memory store.
 *
 * Keys are latin1 strings (one char per byte of the binary key). Like hashes
 * and sets (see values.ts) the keyspace is dense: `index` maps a key to its
 * slot and parallel arrays hold key, value and expiry per slot, removal
 * moving the last slot into the hole. That buys O(1) RANDOMKEY and random
 * eviction, and a SCAN cursor that needs no server-side state yet returns
 * every key that lives through the whole scan.
 *
 * Expiry: `expires[slot]` is the absolute unix time in ms, or 0. Keys with
 * an expiry are also listed in `vol` (slots, dense again) so the periodic
 * sweep samples only keys that can expire, as redis samples its expires
 * dict. A key found expired on access is deleted there and then (lazy
 * expiry); the sweep bounds the memory held by keys nobody reads again.
 */
import type { Value } from './values';

/** How many volatile keys one sweep round samples, and the expired share that makes it go on (redis: 20, 25%). */
const SWEEP_SAMPLE = 20;
const SWEEP_AGAIN = 5;

export class Database {
  private readonly index = new Map<string, number>();
  private keys: string[] = [];
  private values: Value[] = [];
  private expires: number[] = [];
  /** slot -> position in `vol`, or -1 */
  private volPos: number[] = [];
  /** slots of keys with an expiry */
  private vol: number[] = [];

  /** Keys deleted because their time had come (lazily or by the sweep). */
  expiredKeys = 0;

  /** Number of keys, including expired ones not yet reclaimed (like redis' DBSIZE). */
  get size(): number {
    return this.keys.length;
  }

  /** Keys with an expiry. */
  get volatileCount(): number {
    return this.vol.length;
  }

  /** The slot of a live key, or -1. An expired key is deleted. */
  find(key: string): number {
    const i = this.index.get(key);
    if (i === undefined) return -1;
    const at = this.expires[i];
    if (at !== 0 && at <= Date.now()) {
      this.removeAt(i);
      this.expiredKeys++;
      return -1;
    }
    return i;
  }

  /** The value of a live key. */
  get(key: string): Value | undefined {
    const i = this.find(key);
    return i < 0 ? undefined : this.values[i];
  }

  keyAt(i: number): string {
    return this.keys[i];
  }

  valueAt(i: number): Value {
    return this.values[i];
  }

  setValueAt(i: number, v: Value): void {
    this.values[i] = v;
  }

  /** Absolute expiry in ms of slot i, 0 for none. */
  expireAt(i: number): number {
    return this.expires[i];
  }

  /** True when slot i holds a key past its expiry (not yet reclaimed). */
  expiredAt(i: number, now: number): boolean {
    const at = this.expires[i];
    return at !== 0 && at <= now;
  }

  /** Adds a key known to be absent; returns its slot. */
  add(key: string, v: Value): number {
    const i = this.keys.length;
    this.index.set(key, i);
    this.keys.push(key);
    this.values.push(v);
    this.expires.push(0);
    this.volPos.push(-1);
    return i;
  }

  /** SET semantics: replace or add, dropping any expiry unless keepTtl. Returns the slot. */
  set(key: string, v: Value, keepTtl = false): number {
    const i = this.find(key);
    if (i < 0) return this.add(key, v);
    this.values[i] = v;
    if (!keepTtl && this.expires[i] !== 0) this.persistAt(i);
    return i;
  }

  /** Deletes a live key; false if there was none. */
  delete(key: string): boolean {
    const i = this.find(key);
    if (i < 0) return false;
    this.removeAt(i);
    return true;
  }

  /** Removes slot i; the last slot moves into it. */
  removeAt(i: number): void {
    if (this.volPos[i] >= 0) this.volRemove(i);
    const keys = this.keys;
    const last = keys.length - 1;
    this.index.delete(keys[i]);
    if (i !== last) {
      const moved = keys[last];
      keys[i] = moved;
      this.values[i] = this.values[last];
      this.expires[i] = this.expires[last];
      const vp = this.volPos[last];
      this.volPos[i] = vp;
      if (vp >= 0) this.vol[vp] = i;
      this.index.set(moved, i);
    }
    keys.pop();
    this.values.pop();
    this.expires.pop();
    this.volPos.pop();
  }

  /** Sets the absolute expiry (ms) of slot i. */
  setExpireAt(i: number, at: number): void {
    this.expires[i] = at;
    if (this.volPos[i] < 0) {
      this.volPos[i] = this.vol.length;
      this.vol.push(i);
    }
  }

  /** Drops the expiry of slot i; false if it had none. */
  persistAt(i: number): boolean {
    if (this.expires[i] === 0) return false;
    this.expires[i] = 0;
    this.volRemove(i);
    return true;
  }

  private volRemove(i: number): void {
    const p = this.volPos[i];
    const vol = this.vol;
    const lastSlot = vol[vol.length - 1];
    vol[p] = lastSlot;
    this.volPos[lastSlot] = p;
    vol.pop();
    this.volPos[i] = -1;
  }

  clear(): void {
    this.index.clear();
    this.keys = [];
    this.values = [];
    this.expires = [];
    this.volPos = [];
    this.vol = [];
  }

  /** A uniformly random live key's slot, or -1 when empty. Expired keys met on the way are reclaimed. */
  randomSlot(): number {
    const now = Date.now();
    while (this.keys.length > 0) {
      const i = Math.floor(Math.random() * this.keys.length);
      if (!this.expiredAt(i, now)) return i;
      this.removeAt(i);
      this.expiredKeys++;
    }
    return -1;
  }

  /**
   * One SCAN step: visits up to `count` slots from `cursor` downwards
   * (cursor 0 starts at the top; cursor c resumes at slot c-1) and calls
   * `visit` with each live slot. Returns the next cursor, 0 when done.
   */
  scan(cursor: number, count: number, visit: (db: Database, slot: number) => void): number {
    const now = Date.now();
    let i = cursor === 0 ? this.keys.length - 1 : Math.min(cursor - 1, this.keys.length - 1);
    for (let n = 0; n < count && i >= 0; n++, i--) {
      if (this.expiredAt(i, now)) {
        // The top slot moves here; it is already visited (or new since the scan began).
        this.removeAt(i);
        this.expiredKeys++;
        continue;
      }
      visit(this, i);
    }
    return i < 0 ? 0 : i + 1;
  }

  /**
   * Active expiry: sample random volatile keys and delete the expired ones,
   * again while more than a quarter of a sample had expired, within
   * `budget` samples. Returns the number of keys deleted.
   */
  sweep(budget: number, now: number): number {
    let deleted = 0;
    while (budget > 0 && this.vol.length > 0) {
      let expired = 0;
      const n = Math.min(SWEEP_SAMPLE, this.vol.length, budget);
      budget -= n;
      for (let k = 0; k < n && this.vol.length > 0; k++) {
        const slot = this.vol[Math.floor(Math.random() * this.vol.length)];
        if (this.expires[slot] <= now) {
          this.removeAt(slot);
          expired++;
        }
      }
      deleted += expired;
      if (expired <= SWEEP_AGAIN) break;
    }
    this.expiredKeys += deleted;
    return deleted;
  }
}
