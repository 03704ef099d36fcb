/**
 * The memory store: 16 databases, one periodic expiry sweep for all of
 * them, and the optional key-count bound.
 *
 * The sweep is a single unref'd interval (never a timer per key): every
 * 100 ms (redis' hz 10) each database samples its keys that carry an expiry
 * and deletes the expired ones, within a fixed sample budget per tick, so a
 * tick stays short whatever the store holds.
 */
import { Database } from './database';

export const DATABASES = 16;
const SWEEP_INTERVAL_MS = 100;
/** Samples per database per tick: bounds the work of one tick. */
const SWEEP_BUDGET = 200;

export type EvictionPolicy = 'none' | 'random';

export interface StoreOptions {
  /** Bound on keys over all databases; 0 for none. */
  maxKeys: number;
  /** What a write that would pass the bound does: fail ('none') or evict random keys first ('random'). */
  eviction: EvictionPolicy;
  /** Sweep period; tests may shorten it. 0 disables the sweep. */
  sweepIntervalMs?: number;
}

export class MemoryStore {
  readonly dbs: Database[] = [];
  readonly maxKeys: number;
  readonly eviction: EvictionPolicy;
  /** Keys removed by random eviction (max_keys with eviction: random). */
  evictedKeys = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(opts: StoreOptions) {
    for (let i = 0; i < DATABASES; i++) this.dbs.push(new Database());
    this.maxKeys = opts.maxKeys;
    this.eviction = opts.eviction;
    const every = opts.sweepIntervalMs ?? SWEEP_INTERVAL_MS;
    if (every > 0) {
      this.timer = setInterval(() => this.sweep(), every);
      this.timer.unref();
    }
  }

  /** Keys in all databases (expired ones not yet reclaimed included). */
  totalKeys(): number {
    let n = 0;
    for (const db of this.dbs) n += db.size;
    return n;
  }

  /** One round of active expiry over every database. */
  sweep(): void {
    const now = Date.now();
    for (const db of this.dbs) {
      if (db.volatileCount > 0) db.sweep(SWEEP_BUDGET, now);
    }
  }

  /**
   * Room for `adding` new keys under max_keys. When the bound would be
   * passed: first reclaim expired keys, then evict random keys if the
   * policy allows; false means the write must fail.
   */
  makeRoom(adding: number): boolean {
    if (this.maxKeys === 0) return true;
    let total = this.totalKeys();
    if (total + adding <= this.maxKeys) return true;
    this.sweep();
    total = this.totalKeys();
    if (total + adding <= this.maxKeys) return true;
    if (this.eviction !== 'random' || adding > this.maxKeys) return false;
    while (total + adding > this.maxKeys) {
      const db = this.randomNonEmptyDb(total);
      const slot = db.randomSlot();
      if (slot >= 0) {
        db.removeAt(slot);
        this.evictedKeys++;
      }
      total = this.totalKeys();
    }
    return true;
  }

  /** A database chosen with probability proportional to its size, so every key is equally likely to go. */
  private randomNonEmptyDb(total: number): Database {
    let r = Math.floor(Math.random() * total);
    for (const db of this.dbs) {
      if (r < db.size) return db;
      r -= db.size;
    }
    return this.dbs.find((d) => d.size > 0) ?? this.dbs[0];
  }

  /** Keys deleted on expiry so far, lazily or by the sweep. */
  expiredKeys(): number {
    let n = 0;
    for (const db of this.dbs) n += db.expiredKeys;
    return n;
  }

  flushAll(): void {
    for (const db of this.dbs) db.clear();
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.flushAll();
  }
}
