/**
 * One partition of the embedded log: a directory of segments, the last one
 * active. Appends are serialized and grouped: every append that arrives
 * while the previous write is under way (or in the same event-loop turn)
 * goes out in one positional write and, with fsync 'always', one
 * fdatasync, before any of them resolves. Offsets are assigned when the
 * group is written, so a failed write leaves no hole.
 *
 * Readers see only acknowledged bytes (Segment.committed), so a fetch never
 * returns a record that a crash could take back under the configured
 * policy's promise.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Logger } from '../../logger';
import type { Counter, Histogram } from '../../metrics';
import { ErrorCode, ProxyError } from '../../errors';
import type { AppendResult, PartitionLog, ReadResult, StoredBatch } from '../log-component';
import { batchShapeProblem, BATCH_HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2, OFF_BATCH_LENGTH, OFF_LAST_OFFSET_DELTA, OFF_MAGIC, OFF_MAX_TIMESTAMP, OFF_RECORD_COUNT, lastOffsetDelta, maxTimestamp } from './batch';
import { NO_TIMESTAMP, SparseIndex } from './index-file';
import { OffsetWaiters } from './offset-waiters';
import { INDEX_SUFFIX, LOG_SUFFIX, scanSegmentSync, Segment, SegmentGoneError, segmentFileName } from './segment';

export type FsyncPolicy = 'always' | 'interval';

/** Settings shared by every partition of one log (a reload may change them in place). */
export interface PartitionSettings {
  fsync: FsyncPolicy;
  segmentBytes: number;
  indexIntervalBytes: number;
  maxBatchBytes: number;
  retentionBytes: number | undefined;
  retentionMs: number | undefined;
}

export interface LogMetrics {
  appendedBytes: Counter;
  appendedRecords: Counter;
  appendedBatches: Counter;
  fsyncSeconds: Histogram;
  segmentsDeleted: Counter;
  truncatedBytes: Counter;
}

const LOCATE_CHUNK = 16 * 1024;
/** Relative offsets are uint32 in the index; roll well before. */
const MAX_RELATIVE_OFFSET = 0x7fffffffn;
const SEGMENT_NAME = /^(\d{20})\.log$/;

class PendingAppend {
  constructor(
    readonly batch: Buffer,
    readonly resolve: (r: AppendResult) => void,
    readonly reject: (e: unknown) => void,
  ) {}
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export class EmbeddedPartition implements PartitionLog {
  readonly segments: Segment[];
  private hw: bigint;
  private queue: PendingAppend[] = [];
  private scheduled = false;
  private flushing: Promise<void> | null = null;
  private syncing = false;
  private retaining = false;
  private readonly waiters = new OffsetWaiters();
  /** Where the last read ended, so a tailing fetch skips the index lookup. */
  private hint: { seg: Segment; offset: bigint; pos: number } | null = null;
  /** Set when a write or fsync failed: the partition refuses appends until restart (like a Kafka log dir going offline). */
  failure: Error | null = null;
  closed = false;
  private readonly runFlush = () => {
    this.scheduled = false;
    if (this.flushing !== null) return;
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = null;
      this.kick();
    });
  };

  private constructor(
    readonly topic: string,
    readonly partition: number,
    readonly dir: string,
    segments: Segment[],
    private readonly settings: PartitionSettings,
    private readonly metrics: LogMetrics,
    private readonly log: Logger,
  ) {
    this.segments = segments;
    this.hw = segments[segments.length - 1]!.nextOffset;
  }

  /**
   * Opens (or creates) a partition directory and recovers it: closed
   * segments keep their index when it checks out (else it is rebuilt by a
   * header scan); the last segment is scanned whole, every batch's framing,
   * magic, offset continuity and CRC-32C checked, and the file truncated
   * after the last sound batch.
   */
  static openSync(topic: string, partition: number, dir: string, settings: PartitionSettings, metrics: LogMetrics, log: Logger): EmbeddedPartition {
    fs.mkdirSync(dir, { recursive: true });
    const names = fs.readdirSync(dir);
    const bases: bigint[] = [];
    for (const n of names) {
      const m = SEGMENT_NAME.exec(n);
      if (m !== null) bases.push(BigInt(m[1]!));
    }
    bases.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    // Index files whose segment is gone (a crash while retention deleted it).
    const have = new Set(bases.map((b) => segmentFileName(b, INDEX_SUFFIX)));
    for (const n of names) if (n.endsWith(INDEX_SUFFIX) && !have.has(n)) fs.rmSync(path.join(dir, n), { force: true });
    if (bases.length === 0) {
      fs.writeFileSync(path.join(dir, segmentFileName(0n, LOG_SUFFIX)), '');
      fsyncDirSync(dir);
      bases.push(0n);
    }
    const plog = log.child({ topic, partition });
    const segments: Segment[] = [];
    for (let i = 0; i < bases.length; i++) {
      const base = bases[i]!;
      const last = i === bases.length - 1;
      const segPath = path.join(dir, segmentFileName(base, LOG_SUFFIX));
      const st = fs.statSync(segPath);
      const fd = fs.openSync(segPath, last ? 'r+' : 'r');
      try {
        if (last) segments.push(EmbeddedPartition.recoverLast(fd, dir, base, st, settings, metrics, plog));
        else segments.push(EmbeddedPartition.loadClosed(fd, dir, base, bases[i + 1]!, st, settings, plog));
      } finally {
        fs.closeSync(fd);
      }
    }
    return new EmbeddedPartition(topic, partition, dir, segments, settings, metrics, plog);
  }

  private static recoverLast(fd: number, dir: string, base: bigint, st: fs.Stats, settings: PartitionSettings, metrics: LogMetrics, log: Logger): Segment {
    const index = new SparseIndex();
    const scan = scanSegmentSync(fd, base, st.size, { pos: 0, offset: base, maxTsBefore: NO_TIMESTAMP }, { verifyCrc: true, index, indexInterval: settings.indexIntervalBytes, maxBatchBytes: settings.maxBatchBytes });
    if (scan.validEnd < st.size) {
      log.warn({ segment: segmentFileName(base, LOG_SUFFIX), kept_bytes: scan.validEnd, dropped_bytes: st.size - scan.validEnd, reason: scan.problem, next_offset: scan.nextOffset.toString() }, 'log recovery: truncating a torn or corrupt tail');
      fs.ftruncateSync(fd, scan.validEnd);
      fs.fsyncSync(fd);
      metrics.truncatedBytes.inc(st.size - scan.validEnd);
    }
    return new Segment(dir, base, index, scan.validEnd, { maxTimestamp: scan.maxTimestamp, lastAppendMs: st.mtimeMs, nextOffset: scan.nextOffset, synced: scan.validEnd });
  }

  private static loadClosed(fd: number, dir: string, base: bigint, nextBase: bigint, st: fs.Stats, settings: PartitionSettings, log: Logger): Segment {
    const indexPath = path.join(dir, segmentFileName(base, INDEX_SUFFIX));
    let index: SparseIndex | null = null;
    try {
      index = SparseIndex.parse(fs.readFileSync(indexPath), st.size);
    } catch {
      index = null;
    }
    if (index !== null) {
      // The last entry must point at a whole v2 batch with the offset it claims.
      const i = index.length - 1;
      const h = Buffer.alloc(BATCH_HEADER_BYTES);
      const n = fs.readSync(fd, h, 0, BATCH_HEADER_BYTES, index.position(i));
      const ok = n === BATCH_HEADER_BYTES && h[OFF_MAGIC] === MAGIC_V2 && h.readBigInt64BE(0) === base + BigInt(index.relOffset(i)) && index.position(i) + h.readInt32BE(OFF_BATCH_LENGTH) + LOG_OVERHEAD <= st.size;
      if (!ok) index = null;
    }
    let size = st.size;
    if (index === null) {
      index = new SparseIndex();
      const scan = scanSegmentSync(fd, base, st.size, { pos: 0, offset: base, maxTsBefore: NO_TIMESTAMP }, { verifyCrc: false, index, indexInterval: settings.indexIntervalBytes, maxBatchBytes: settings.maxBatchBytes });
      if (scan.problem !== null) {
        // A closed segment was fsynced whole before the next one started: damage here is not a torn write. Serve what is sound.
        log.error({ segment: segmentFileName(base, LOG_SUFFIX), sound_bytes: scan.validEnd, file_bytes: st.size, reason: scan.problem }, 'log recovery: a closed segment is damaged; its readable part ends early');
        size = scan.validEnd;
      }
      try {
        fs.writeFileSync(indexPath, index.serialize());
      } catch (e) {
        log.warn({ error: (e as Error).message }, 'log recovery: could not write a rebuilt index');
      }
    }
    return new Segment(dir, base, index, size, { maxTimestamp: null, lastAppendMs: st.mtimeMs, nextOffset: nextBase, synced: size });
  }

  private active(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  // ---- PartitionLog ----

  append(batch: Buffer): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new ProxyError(ErrorCode.Storage, `partition ${this.topic}-${this.partition} is closed`, { source: 'upstream' }));
    if (this.failure !== null) return Promise.reject(this.offline());
    const problem = batchShapeProblem(batch);
    if (problem !== null) return Promise.reject(new ProxyError(ErrorCode.Protocol, problem, { source: 'downstream' }));
    if (batch.length > this.settings.maxBatchBytes) {
      return Promise.reject(new ProxyError(ErrorCode.Protocol, `record batch of ${batch.length} bytes is over max_batch_bytes (${this.settings.maxBatchBytes})`, { source: 'downstream' }));
    }
    return new Promise<AppendResult>((resolve, reject) => {
      this.queue.push(new PendingAppend(batch, resolve, reject));
      if (this.flushing === null) this.kick();
    });
  }

  /** Schedules a flush for the next turn when appends wait and no writer runs or is scheduled. */
  private kick(): void {
    if (this.queue.length > 0 && this.flushing === null && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.runFlush);
    }
  }

  async read(offset: bigint, maxBytes: number): Promise<ReadResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.readOnce(offset, maxBytes);
      } catch (e) {
        // Retention removed a segment under the read: the log start moved, look again.
        if (e instanceof SegmentGoneError && !this.closed && attempt < 3) continue;
        throw this.storageError('read', e);
      }
    }
  }

  logStartOffset(): bigint {
    return this.segments[0]!.base;
  }

  highWatermark(): bigint {
    return this.hw;
  }

  async offsetForTimestamp(ts: bigint): Promise<bigint | null> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.offsetForTimestampOnce(ts);
      } catch (e) {
        if (e instanceof SegmentGoneError && !this.closed && attempt < 3) continue;
        throw this.storageError('offsetForTimestamp', e);
      }
    }
  }

  waitFor(offset: bigint, timeoutMs: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return this.waiters.wait(offset, timeoutMs, this.hw);
  }

  // ---- the rest of the log uses these ----

  /** Bytes held over all segments. */
  size(): number {
    let n = 0;
    for (const s of this.segments) n += s.size;
    return n;
  }

  /** fsync 'interval': makes what was written durable. */
  async syncNow(): Promise<void> {
    if (this.syncing || this.closed || this.failure !== null) return;
    const seg = this.active();
    if (seg.synced >= seg.size) return;
    this.syncing = true;
    try {
      await this.timedSync(seg);
    } catch (e) {
      if (!(e instanceof SegmentGoneError)) this.fail(e);
    } finally {
      this.syncing = false;
    }
  }

  /**
   * Deletes whole segments past retention (never the active one; an active
   * segment older than the age bound is rolled first so it can go). Returns
   * how many went.
   */
  async enforceRetention(now = Date.now()): Promise<number> {
    const { retentionBytes, retentionMs } = this.settings;
    if (this.closed || this.retaining || (retentionBytes === undefined && retentionMs === undefined)) return 0;
    this.retaining = true;
    try {
      const segs = this.segments;
      if (retentionMs !== undefined) {
        const act = this.active();
        if (act.size > 0 && act.lastAppendMs < now - retentionMs && this.flushing === null && !this.scheduled && this.failure === null) {
          // Roll under the writer's flag so no append interleaves.
          let done!: () => void;
          this.flushing = new Promise<void>((r) => (done = r));
          try {
            await this.roll(this.hw);
          } finally {
            this.flushing = null;
            done();
            this.kick();
          }
        }
      }
      const gone: Segment[] = [];
      if (retentionMs !== undefined) {
        const cutoff = now - retentionMs;
        while (segs.length > 1 && segs[0]!.lastAppendMs < cutoff) gone.push(segs.shift()!);
      }
      if (retentionBytes !== undefined) {
        let total = this.size();
        while (segs.length > 1 && total - segs[0]!.size >= retentionBytes) {
          total -= segs[0]!.size;
          gone.push(segs.shift()!);
        }
      }
      if (gone.length === 0) return 0;
      if (this.hint !== null && gone.includes(this.hint.seg)) this.hint = null;
      this.log.info({ segments: gone.length, log_start_offset: this.logStartOffset().toString() }, 'retention deleted segments');
      for (const s of gone) await s.remove();
      this.metrics.segmentsDeleted.inc(gone.length);
      return gone.length;
    } catch (e) {
      this.log.warn({ error: (e as Error).message }, 'retention failed');
      return 0;
    } finally {
      this.retaining = false;
    }
  }

  /** Waits for queued appends, syncs and closes files. Pending waits resolve false. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waiters.cancelAll();
    while (this.flushing !== null || this.scheduled) {
      if (this.flushing !== null) await this.flushing;
      else await new Promise((r) => setImmediate(r));
    }
    const act = this.active();
    if (this.failure === null) {
      try {
        await act.datasync();
        if (act.size > 0) await act.writeIndex();
      } catch (e) {
        this.log.warn({ error: (e as Error).message }, 'closing: final sync failed');
      }
    }
    for (const s of this.segments) await s.close();
  }

  /** Closes and removes the partition directory (topic deletion). */
  async destroy(): Promise<void> {
    await this.close();
    const trash = `${this.dir}.${Date.now()}.deleted`;
    await fsp.rename(this.dir, trash);
    await fsp.rm(trash, { recursive: true, force: true });
  }

  // ---- writing ----

  private async flushLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const group = this.queue;
      this.queue = [];
      if (this.failure !== null) {
        const err = this.offline();
        for (const p of group) p.reject(err);
        continue;
      }
      try {
        await this.writeGroup(group);
      } catch (e) {
        this.fail(e);
        const err = this.storageError('append', e);
        for (const p of group) p.reject(err);
      }
    }
  }

  private async writeGroup(group: PendingAppend[]): Promise<void> {
    const s = this.settings;
    const now = Date.now();
    const appendTime = BigInt(now);
    const bases: bigint[] = new Array(group.length);
    const touched: Segment[] = [];
    let seg = this.active();
    let next = this.hw;
    let records = 0;
    let bytes = 0;
    let i = 0;
    while (i < group.length) {
      const start = seg.size;
      let runLen = 0;
      let j = i;
      let maxTs = seg.maxTimestamp ?? NO_TIMESTAMP;
      for (; j < group.length; j++) {
        const b = group[j]!.batch;
        const delta = BigInt(lastOffsetDelta(b));
        if ((start + runLen > 0 && start + runLen + b.length > s.segmentBytes) || next + delta - seg.base > MAX_RELATIVE_OFFSET) break;
        const pos = start + runLen;
        if (seg.index.length === 0 || pos - seg.index.lastPosition() >= s.indexIntervalBytes) seg.index.add(Number(next - seg.base), pos, maxTs);
        const ts = maxTimestamp(b);
        if (ts > maxTs) maxTs = ts;
        bases[j] = next;
        next += delta + 1n;
        runLen += b.length;
        records += b.readInt32BE(OFF_RECORD_COUNT);
      }
      if (j > i) {
        const buf = Buffer.allocUnsafe(runLen);
        let p = 0;
        for (let k = i; k < j; k++) {
          const b = group[k]!.batch;
          b.copy(buf, p);
          buf.writeBigInt64BE(bases[k]!, p);
          p += b.length;
        }
        await seg.writeAt(buf, start);
        seg.size = start + runLen;
        seg.maxTimestamp = maxTs;
        seg.nextOffset = next;
        seg.lastAppendMs = now;
        bytes += runLen;
        if (!touched.includes(seg)) touched.push(seg);
      }
      if (j < group.length) seg = await this.roll(next);
      i = j;
    }
    if (s.fsync === 'always') for (const t of touched) await this.timedSync(t);
    // Acknowledge: readers and waiters see the group only now.
    for (const t of touched) t.committed = t.size;
    this.hw = next;
    const logStart = this.logStartOffset();
    for (let k = 0; k < group.length; k++) group[k]!.resolve({ baseOffset: bases[k]!, appendTimeMs: appendTime, logStartOffset: logStart });
    this.metrics.appendedBatches.inc(group.length);
    this.metrics.appendedRecords.inc(records);
    this.metrics.appendedBytes.inc(bytes);
    this.waiters.notify(next);
    if (touched.length > 1 && s.retentionBytes !== undefined) void this.enforceRetention();
  }

  /** Closes the active segment (fsynced whole, index written) and starts one at `base`. */
  private async roll(base: bigint): Promise<Segment> {
    const old = this.active();
    await this.timedSync(old);
    await old.writeIndex();
    const seg = new Segment(this.dir, base, new SparseIndex(), 0, { maxTimestamp: NO_TIMESTAMP, lastAppendMs: Date.now(), nextOffset: base, synced: 0 });
    const fh = await fsp.open(seg.logPath, 'w');
    await fh.close();
    await fsyncDir(this.dir);
    this.segments.push(seg);
    this.log.debug({ base_offset: base.toString(), segments: this.segments.length }, 'rolled a new segment');
    return seg;
  }

  private async timedSync(seg: Segment): Promise<void> {
    if (seg.synced >= seg.size) return;
    const t0 = performance.now();
    await seg.datasync();
    this.metrics.fsyncSeconds.observe((performance.now() - t0) / 1000);
  }

  private fail(e: unknown): void {
    if (this.failure !== null) return;
    this.failure = e instanceof Error ? e : new Error(String(e));
    this.log.error({ error: this.failure.message }, 'partition storage failed: appends refused until restart');
  }

  private offline(): ProxyError {
    return new ProxyError(ErrorCode.Storage, `partition ${this.topic}-${this.partition} is offline after a storage failure: ${this.failure?.message}`, { source: 'upstream', cause: this.failure });
  }

  private storageError(op: string, e: unknown): ProxyError {
    if (e instanceof ProxyError) return e;
    return new ProxyError(ErrorCode.Storage, `${op} on ${this.topic}-${this.partition} failed: ${(e as Error)?.message ?? String(e)}`, { source: 'upstream', cause: e });
  }

  // ---- reading ----

  /** Index in `segments` of the last segment with base <= offset (0 when offset is below them all). */
  private segmentIndexFor(offset: bigint): number {
    const segs = this.segments;
    let lo = 0;
    let hi = segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (segs[mid]!.base <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Byte position of the first batch in `seg` whose lastOffset >= offset, or `end` when none before it. */
  private async locate(seg: Segment, offset: bigint, end: number): Promise<number> {
    const h = this.hint;
    if (h !== null && h.seg === seg && h.offset === offset && h.pos <= end) return h.pos;
    const i = seg.index.floorOffset(Number(offset - seg.base));
    let pos = i < 0 ? 0 : seg.index.position(i);
    while (pos < end) {
      const chunk = await seg.readAt(pos, Math.min(LOCATE_CHUNK, end - pos));
      let p = 0;
      while (p + OFF_LAST_OFFSET_DELTA + 4 <= chunk.length) {
        const last = chunk.readBigInt64BE(p) + BigInt(chunk.readInt32BE(p + OFF_LAST_OFFSET_DELTA));
        if (last >= offset) return pos + p;
        p += chunk.readInt32BE(p + OFF_BATCH_LENGTH) + LOG_OVERHEAD;
      }
      if (p === 0) break;
      pos += p;
    }
    return end;
  }

  /** The segment after `seg` (by base offset, so retention removing older ones meanwhile does not matter), or undefined. */
  private segmentAfter(seg: Segment): Segment | undefined {
    const segs = this.segments;
    let lo = 0;
    let hi = segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (segs[mid]!.base <= seg.base) lo = mid + 1;
      else hi = mid;
    }
    return segs[lo];
  }

  private async readOnce(from: bigint, maxBytes: number): Promise<ReadResult> {
    const hw = this.hw;
    const logStart = this.logStartOffset();
    let offset = from < logStart ? logStart : from;
    const out: StoredBatch[] = [];
    let budget = maxBytes;
    let seg: Segment | undefined = this.segments[this.segmentIndexFor(offset)];
    while (offset < hw && seg !== undefined) {
      const end = seg.committed;
      const pos = await this.locate(seg, offset, end);
      if (pos >= end) {
        seg = this.segmentAfter(seg);
        continue;
      }
      const want = Math.min(end - pos, out.length === 0 ? Math.max(budget, BATCH_HEADER_BYTES) : budget);
      if (want <= 0) break;
      let buf = await seg.readAt(pos, want);
      let p = 0;
      while (p + LOG_OVERHEAD <= buf.length) {
        const total = buf.readInt32BE(p + OFF_BATCH_LENGTH) + LOG_OVERHEAD;
        if (p + total > buf.length) {
          if (out.length === 0 && p === 0 && total <= end - pos) {
            // The first batch is larger than maxBytes: Kafka still returns it whole.
            buf = await seg.readAt(pos, total);
            continue;
          }
          break;
        }
        const bytes = buf.subarray(p, p + total);
        const base = bytes.readBigInt64BE(0);
        const last = base + BigInt(bytes.readInt32BE(OFF_LAST_OFFSET_DELTA));
        out.push({ baseOffset: base, lastOffset: last, bytes });
        budget -= total;
        p += total;
        offset = last + 1n;
      }
      this.hint = { seg, offset, pos: pos + p };
      if (pos + p < end || budget <= 0) break;
      seg = this.segmentAfter(seg);
      // Retention deleted the segments in between while this read ran: stop at the hole (the next fetch is out of range).
      if (seg !== undefined && seg.base !== offset && out.length > 0) break;
    }
    return { batches: out, highWatermark: hw, logStartOffset: logStart };
  }

  private async offsetForTimestampOnce(ts: bigint): Promise<bigint | null> {
    const segs = [...this.segments];
    for (const seg of segs) {
      const end = seg.committed;
      if (end === 0) continue;
      if ((await seg.largestTimestamp()) < ts) continue;
      const i = seg.index.floorTime(ts);
      let pos = i < 0 ? 0 : seg.index.position(i);
      while (pos < end) {
        const chunk = await seg.readAt(pos, Math.min(LOCATE_CHUNK, end - pos));
        let p = 0;
        while (p + OFF_MAX_TIMESTAMP + 8 <= chunk.length) {
          if (chunk.readBigInt64BE(p + OFF_MAX_TIMESTAMP) >= ts) {
            const base = chunk.readBigInt64BE(p);
            const start = this.logStartOffset();
            return base > start ? base : start;
          }
          p += chunk.readInt32BE(p + OFF_BATCH_LENGTH) + LOG_OVERHEAD;
        }
        if (p === 0) break;
        pos += p;
      }
    }
    return null;
  }
}
