/**
 * One segment of a partition: `<baseOffset, 20 digits>.log` holding record
 * batches back to back, exactly as they are served, and its sparse
 * `.index` (index-file.ts). The baseOffset in the name is the offset of the
 * segment's first batch.
 *
 * Recovery reads segments with synchronous calls (the component is built
 * synchronously at startup); the running log uses one promise FileHandle per
 * segment, whose close waits for reads in flight, so deleting a segment
 * under a reader fails that read instead of reading a recycled descriptor.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2, OFF_ATTRIBUTES, OFF_BATCH_LENGTH, OFF_CRC, OFF_LAST_OFFSET_DELTA, OFF_MAGIC, OFF_MAX_TIMESTAMP } from './batch';
import { crc32c } from './crc32c';
import { NO_TIMESTAMP, SparseIndex } from './index-file';

export const LOG_SUFFIX = '.log';
export const INDEX_SUFFIX = '.index';
const SCAN_CHUNK = 1 << 20;

export function segmentFileName(base: bigint, suffix: string): string {
  return base.toString().padStart(20, '0') + suffix;
}

/** Where a scan starts: the segment start, or a batch the index points at. */
export interface ScanFrom {
  pos: number;
  offset: bigint;
  maxTsBefore: bigint;
}

export interface ScanResult {
  /** End of the last sound batch: the segment's length after recovery. */
  validEnd: number;
  /** Offset after the last sound batch. */
  nextOffset: bigint;
  /** Largest maxTimestamp seen, NO_TIMESTAMP when no batch. */
  maxTimestamp: bigint;
  batches: number;
  /** Why the scan stopped before the end of the file; null when it reached it. */
  problem: string | null;
}

/**
 * Reads batches from `from` to `fileSize`, checking framing, magic, offset
 * continuity and (when verifyCrc) the CRC-32C, adding index entries for the
 * batches it passes. Stops at the first batch that is not whole and sound.
 */
export function scanSegmentSync(
  fd: number,
  base: bigint,
  fileSize: number,
  from: ScanFrom,
  opts: { verifyCrc: boolean; index: SparseIndex | null; indexInterval: number; maxBatchBytes: number },
): ScanResult {
  let buf = Buffer.allocUnsafe(Math.min(SCAN_CHUNK, Math.max(fileSize - from.pos, 0)) || 1);
  let bufPos = 0;
  let bufLen = 0;
  /** Makes file bytes [p, p + n) available in buf; false when the file has fewer. */
  const ensure = (p: number, n: number): boolean => {
    if (p + n > fileSize) return false;
    if (p >= bufPos && p + n <= bufPos + bufLen) return true;
    const want = Math.min(Math.max(n, SCAN_CHUNK), fileSize - p);
    if (buf.length < want) buf = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const r = fs.readSync(fd, buf, got, want - got, p + got);
      if (r === 0) break;
      got += r;
    }
    bufPos = p;
    bufLen = got;
    return got >= n;
  };
  let pos = from.pos;
  let expected = from.offset;
  let maxTs = from.maxTsBefore;
  let batches = 0;
  let problem: string | null = null;
  const index = opts.index;
  while (pos < fileSize) {
    if (!ensure(pos, LOG_OVERHEAD)) {
      problem = `torn batch header (${fileSize - pos} bytes left)`;
      break;
    }
    const at = pos - bufPos;
    const len = buf.readInt32BE(at + OFF_BATCH_LENGTH);
    const total = len + LOG_OVERHEAD;
    if (len < BATCH_HEADER_BYTES - LOG_OVERHEAD || total > opts.maxBatchBytes) {
      problem = `bad batch length ${len}`;
      break;
    }
    if (!ensure(pos, total)) {
      problem = `torn batch (${total} bytes, ${fileSize - pos} left)`;
      break;
    }
    const b = pos - bufPos;
    const baseOffset = buf.readBigInt64BE(b);
    if (buf[b + OFF_MAGIC] !== MAGIC_V2) {
      problem = `magic ${buf[b + OFF_MAGIC]}`;
      break;
    }
    if (baseOffset !== expected) {
      problem = `baseOffset ${baseOffset} where ${expected} was expected`;
      break;
    }
    const delta = buf.readInt32BE(b + OFF_LAST_OFFSET_DELTA);
    if (delta < 0) {
      problem = `negative lastOffsetDelta ${delta}`;
      break;
    }
    if (opts.verifyCrc && crc32c(buf, b + OFF_ATTRIBUTES, b + total) !== buf.readUInt32BE(b + OFF_CRC)) {
      problem = `CRC mismatch in the batch at offset ${baseOffset}`;
      break;
    }
    if (index !== null && (index.length === 0 || pos - index.lastPosition() >= opts.indexInterval)) {
      if (index.length === 0 || pos > index.lastPosition()) index.add(Number(baseOffset - base), pos, maxTs);
    }
    const ts = buf.readBigInt64BE(b + OFF_MAX_TIMESTAMP);
    if (ts > maxTs) maxTs = ts;
    expected = baseOffset + BigInt(delta) + 1n;
    pos += total;
    batches++;
  }
  return { validEnd: pos, nextOffset: expected, maxTimestamp: maxTs, batches, problem };
}

/** A read or write reached a segment that retention deleted or the log closed meanwhile. */
export class SegmentGoneError extends Error {
  constructor(file: string) {
    super(`segment ${file} was deleted or closed`);
    this.name = 'SegmentGoneError';
  }
}

export class Segment {
  readonly logPath: string;
  readonly indexPath: string;
  /** Bytes written to the file. */
  size: number;
  /** Bytes readers may see (appends acknowledged; <= size). */
  committed: number;
  /** Bytes known to be fsynced. */
  synced: number;
  /** Largest batch maxTimestamp; null until computed for a segment recovered closed. */
  maxTimestamp: bigint | null;
  /** Broker time of the newest append (file mtime for a recovered segment); retention by age reads it. */
  lastAppendMs: number;
  /** Offset after the segment's last batch; known for the active segment. */
  nextOffset: bigint;
  deleted = false;
  closed = false;
  private fh: Promise<fsp.FileHandle> | null = null;

  constructor(
    readonly dir: string,
    readonly base: bigint,
    readonly index: SparseIndex,
    size: number,
    opts: { maxTimestamp: bigint | null; lastAppendMs: number; nextOffset: bigint; synced: number },
  ) {
    this.logPath = path.join(dir, segmentFileName(base, LOG_SUFFIX));
    this.indexPath = path.join(dir, segmentFileName(base, INDEX_SUFFIX));
    this.size = size;
    this.committed = size;
    this.synced = opts.synced;
    this.maxTimestamp = opts.maxTimestamp;
    this.lastAppendMs = opts.lastAppendMs;
    this.nextOffset = opts.nextOffset;
  }

  handle(): Promise<fsp.FileHandle> {
    if (this.deleted || this.closed) return Promise.reject(new SegmentGoneError(this.logPath));
    if (this.fh === null) {
      this.fh = fsp.open(this.logPath, 'r+');
      this.fh.catch(() => (this.fh = null));
    }
    return this.fh;
  }

  /** Reads file bytes [pos, pos + n) (fewer at end of file). */
  async readAt(pos: number, n: number): Promise<Buffer> {
    const fh = await this.handle();
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await fh.read(buf, got, n - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === n ? buf : buf.subarray(0, got);
  }

  async writeAt(buf: Buffer, pos: number): Promise<void> {
    const fh = await this.handle();
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await fh.write(buf, done, buf.length - done, pos + done);
      done += bytesWritten;
    }
  }

  async datasync(): Promise<void> {
    const target = this.size;
    if (this.synced >= target) return;
    const fh = await this.handle();
    await fh.datasync();
    if (target > this.synced) this.synced = target;
  }

  /** Writes the whole index file (segment closing). A torn index is detected and rebuilt on start. */
  async writeIndex(): Promise<void> {
    const fh = await fsp.open(this.indexPath, 'w');
    try {
      await fh.writeFile(this.index.serialize());
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }

  /**
   * The segment's largest batch maxTimestamp: known for segments written
   * since start; for recovered closed segments read from the last index
   * entry's batch onwards (at most one index interval plus a batch).
   */
  async largestTimestamp(): Promise<bigint> {
    if (this.maxTimestamp !== null) return this.maxTimestamp;
    let max = NO_TIMESTAMP;
    if (this.index.length > 0) {
      const last = this.index.length - 1;
      max = this.index.maxTsBefore(last);
      let pos = this.index.position(last);
      while (pos < this.committed) {
        const h = await this.readAt(pos, BATCH_HEADER_BYTES);
        if (h.length < BATCH_HEADER_BYTES) break;
        const ts = h.readBigInt64BE(OFF_MAX_TIMESTAMP);
        if (ts > max) max = ts;
        pos += h.readInt32BE(OFF_BATCH_LENGTH) + LOG_OVERHEAD;
      }
    }
    this.maxTimestamp = max;
    return max;
  }

  async close(): Promise<void> {
    this.closed = true;
    const fh = this.fh;
    this.fh = null;
    if (fh !== null) await (await fh.catch(() => null))?.close();
  }

  /** Closes and removes both files. */
  async remove(): Promise<void> {
    this.deleted = true;
    await this.close();
    await fsp.rm(this.logPath, { force: true });
    await fsp.rm(this.indexPath, { force: true });
  }
}
