/**
 * The sparse index of one segment, in memory and in its `.index` file.
 *
 * An entry is written for the first batch of the segment and then for the
 * first batch after every `interval` bytes. File format, 16 bytes an entry,
 * big-endian, in offset order:
 *
 *   relativeOffset uint32   batch baseOffset - segment baseOffset
 *   position       uint32   byte position of the batch in the .log file
 *   maxTsBefore    int64    largest batch maxTimestamp of the segment before
 *                           this batch (INT64_MIN for the first)
 *
 * maxTsBefore never decreases, so one binary search answers both "where is
 * offset X" and "where can the first batch with maxTimestamp >= T be".
 * The file is written whole when a segment is closed (rolled, or the log
 * closed); the active segment's index lives in memory and is rebuilt by the
 * recovery scan on start, so an index never has to be fsynced on the append
 * path.
 */
export const INDEX_ENTRY_BYTES = 16;
export const NO_TIMESTAMP = -(2n ** 63n);

export class SparseIndex {
  private rel = new Uint32Array(64);
  private pos = new Uint32Array(64);
  private ts = new BigInt64Array(64);
  private n = 0;

  get length(): number {
    return this.n;
  }

  relOffset(i: number): number {
    return this.rel[i]!;
  }

  position(i: number): number {
    return this.pos[i]!;
  }

  maxTsBefore(i: number): bigint {
    return this.ts[i]!;
  }

  lastPosition(): number {
    return this.n === 0 ? -1 : this.pos[this.n - 1]!;
  }

  add(relOffset: number, position: number, maxTsBefore: bigint): void {
    if (this.n === this.rel.length) {
      const cap = this.n * 2;
      const r = new Uint32Array(cap);
      r.set(this.rel);
      const p = new Uint32Array(cap);
      p.set(this.pos);
      const t = new BigInt64Array(cap);
      t.set(this.ts);
      this.rel = r;
      this.pos = p;
      this.ts = t;
    }
    this.rel[this.n] = relOffset;
    this.pos[this.n] = position;
    this.ts[this.n] = maxTsBefore;
    this.n++;
  }

  /** Index of the last entry with relOffset <= rel (0 when none: the first entry is at the segment start). */
  floorOffset(rel: number): number {
    let lo = 0;
    let hi = this.n - 1;
    if (hi < 0) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.rel[mid]! <= rel) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Index of the last entry whose maxTsBefore < ts: every batch before it has maxTimestamp < ts. */
  floorTime(ts: bigint): number {
    let lo = 0;
    let hi = this.n - 1;
    if (hi < 0) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.ts[mid]! < ts) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  serialize(): Buffer {
    const b = Buffer.allocUnsafe(this.n * INDEX_ENTRY_BYTES);
    for (let i = 0; i < this.n; i++) {
      const o = i * INDEX_ENTRY_BYTES;
      b.writeUInt32BE(this.rel[i]!, o);
      b.writeUInt32BE(this.pos[i]!, o + 4);
      b.writeBigInt64BE(this.ts[i]!, o + 8);
    }
    return b;
  }

  /**
   * Parses an index file; null when it cannot be right for a segment of
   * `segmentBytes` bytes (size not a multiple of 16, no entry at 0, entries
   * out of order or past the end). The caller also checks the last entry
   * against the batch it points at.
   */
  static parse(b: Buffer, segmentBytes: number): SparseIndex | null {
    if (b.length === 0 || b.length % INDEX_ENTRY_BYTES !== 0) return null;
    const idx = new SparseIndex();
    let prevRel = -1;
    let prevPos = -1;
    let prevTs = NO_TIMESTAMP;
    for (let o = 0; o < b.length; o += INDEX_ENTRY_BYTES) {
      const rel = b.readUInt32BE(o);
      const pos = b.readUInt32BE(o + 4);
      const ts = b.readBigInt64BE(o + 8);
      if (o === 0 ? rel !== 0 || pos !== 0 : rel <= prevRel || pos <= prevPos || ts < prevTs) return null;
      if (pos >= segmentBytes) return null;
      idx.add(rel, pos, ts);
      prevRel = rel;
      prevPos = pos;
      prevTs = ts;
    }
    return idx;
  }
}
