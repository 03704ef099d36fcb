/**
 * The chunk bookkeeping shared by the RESP request and reply decoders.
 *
 * A subclass supplies a resumable `parse(b, p, end)`: it continues the
 * current frame at b[p] and either completes it (returns the position just
 * after it), runs out of bytes (NEED, its state saved) or fails (FAIL).
 * Positions it must remember across chunks are kept frame-relative
 * (`pos + delta`), so they stay valid when the frame's bytes move.
 *
 * Frames that lie wholly inside one chunk are handed out as views of that
 * chunk. Only a frame that straddles chunks is copied, once, into `acc`:
 * its head when the chunk ends, then the rest of it from the next chunks.
 * Bulk payloads are skipped by count, so a big value costs one copy and no
 * rescans. A header line cut by a chunk end is completed in `acc` (bytes up
 * to the next LF are moved over) and parsed there.
 */

/** parse(): the frame is not complete; all bytes up to `end` were taken in. */
export const NEED = -1;
/** parse(): a protocol error was reported; the decoder is dead. */
export const FAIL = -2;

export abstract class FrameDecoder {
  /** The bytes of a frame that began in an earlier chunk; null between frames. */
  protected acc: Buffer | null = null;
  protected accLen = 0;
  /** Added to a position in the buffer being parsed gives the frame-relative position. */
  protected delta = 0;
  /** Frame-relative start of a header line cut by the end of a chunk, or -1. */
  protected lineRel = -1;
  /** Frame-relative position before which the cut line holds no terminator. */
  protected scanRel = 0;
  /**
   * A header line holds a NUL before its terminator. redis-server looks for
   * the terminator with strchr() and so waits until its limit is passed;
   * we do the same without keeping the bytes.
   */
  protected stalled = false;
  protected stallBytes = 0;
  protected stallLimit = 0;
  protected dead = false;

  /** Continue the current frame at b[p]; see the file comment. */
  protected abstract parse(b: Buffer, p: number, end: number): number;
  /**
   * Optional fast path: decode a frame that lies wholly in b from p, using
   * locals only. Returns its end, or -1 to let parse() do it (incomplete,
   * unusual or erroneous input); it must not change state on -1.
   */
  protected parseWhole(_b: Buffer, _p: number, _end: number): number {
    return -1;
  }
  /** A frame is complete: it is buf[start, end). */
  protected abstract emit(buf: Buffer, start: number, end: number): void;
  /** The stalled line passed its limit. */
  protected abstract stallFailed(): void;
  /** The frame in `acc` would pass `maxFrameBytes`. */
  protected abstract frameTooLarge(): void;
  /** Upper bound for one frame; checked when a frame straddles chunks. */
  protected abstract readonly maxFrameBytes: number;

  /** True once a protocol error was reported; further input is ignored. */
  get failed(): boolean {
    return this.dead;
  }

  /** Bytes held for an incomplete frame (0 between frames). */
  get pendingBytes(): number {
    return this.acc === null ? 0 : this.stalled ? this.stallBytes : this.accLen;
  }

  /** Memory held for an incomplete frame (capacity, >= pendingBytes). */
  get heldBytes(): number {
    return this.acc === null ? 0 : this.acc.length;
  }

  /** Consume a chunk; complete frames are emitted synchronously, in order. */
  push(chunk: Buffer): void {
    if (this.dead) return;
    const end = chunk.length;
    let p = 0;
    if (this.acc !== null) {
      p = this.resume(chunk, end);
      if (p < 0) return;
    }
    while (p < end) {
      let q = this.parseWhole(chunk, p, end);
      if (q < 0) {
        this.delta = -p;
        this.scanRel = 0;
        q = this.parse(chunk, p, end);
      }
      if (q >= 0) {
        this.emit(chunk, p, q);
        if (this.dead) return;
        p = q;
      } else {
        if (q === NEED) this.suspend(chunk, p, end);
        return;
      }
    }
  }

  /** Drop any partial frame and stop decoding. */
  destroy(): void {
    this.dead = true;
    this.acc = null;
  }

  /** Continue a frame kept in `acc`; returns where the next frame starts in chunk, or -1. */
  private resume(chunk: Buffer, end: number): number {
    if (this.stalled) {
      this.stallMore(end);
      return -1;
    }
    // chunk[x] is frame-relative position base + x once appended.
    const base = this.accLen;
    let k = 0;
    while (this.lineRel >= 0) {
      if (k >= end) return -1;
      const lf = chunk.indexOf(10, k);
      const n = lf < 0 ? end : lf + 1;
      if (!this.append(chunk, k, n, 0)) return -1;
      k = n;
      const acc = this.acc as Buffer;
      this.delta = 0;
      const r = this.parse(acc, this.lineRel, this.accLen);
      if (r === FAIL) return -1;
      if (r >= 0) {
        // The frame ended inside acc; bytes after r are re-read from chunk.
        this.acc = null;
        this.emit(acc, 0, r);
        return this.dead ? -1 : r - base;
      }
      if (this.stalled) {
        this.stallBytes = this.accLen - this.lineRel;
        this.acc = EMPTY;
        this.stallMore(end - k);
        return -1;
      }
    }
    if (k >= end) return -1;
    this.delta = base;
    const r = this.parse(chunk, k, end);
    if (r === FAIL) return -1;
    if (r >= 0) {
      if (!this.append(chunk, k, r, 0)) return -1;
      const acc = this.acc as Buffer;
      const len = this.accLen;
      this.acc = null;
      this.emit(acc, 0, len);
      return this.dead ? -1 : r;
    }
    if (this.stalled) {
      this.stallBytes = base + end - this.lineRel;
      this.acc = EMPTY;
      return -1;
    }
    this.append(chunk, k, end, this.reserve());
    return -1;
  }

  /** The frame starting at chunk[fs] is cut by the chunk end: keep its head. */
  private suspend(chunk: Buffer, fs: number, end: number): void {
    if (this.stalled) {
      this.acc = EMPTY;
      this.accLen = 0;
      this.stallBytes = end - fs - this.lineRel;
      return;
    }
    const n = end - fs;
    if (n > this.maxFrameBytes) {
      this.frameTooLarge();
      return;
    }
    const acc = Buffer.allocUnsafe(Math.max(n + this.reserve(), 256));
    chunk.copy(acc, 0, fs, end);
    this.acc = acc;
    this.accLen = n;
  }

  private stallMore(n: number): void {
    this.stallBytes += n;
    if (this.stallBytes > this.stallLimit) this.stallFailed();
  }

  /** Bytes known to follow (the rest of a bulk payload), to size `acc` once. */
  protected bulkReserve(): number {
    return 0;
  }

  /**
   * Room to reserve ahead: the announced rest of a payload, but at most
   * MAX_RESERVE, so memory follows the bytes received rather than the
   * lengths announced (a client may announce 512 MB and send nothing).
   */
  private reserve(): number {
    return Math.min(this.bulkReserve(), MAX_RESERVE, this.maxFrameBytes);
  }

  private append(src: Buffer, s: number, e: number, reserve: number): boolean {
    const n = e - s;
    const need = this.accLen + n;
    if (need > this.maxFrameBytes) {
      this.frameTooLarge();
      return false;
    }
    let acc = this.acc as Buffer;
    if (need > acc.length) {
      const grown = Math.min(Math.max(need + reserve, acc.length * 2), Math.max(need, this.maxFrameBytes));
      const next = Buffer.allocUnsafe(grown);
      acc.copy(next, 0, 0, this.accLen);
      acc = next;
      this.acc = next;
    }
    src.copy(acc, this.accLen, s, e);
    this.accLen = need;
    return true;
  }
}

const EMPTY = Buffer.alloc(0);
const MAX_RESERVE = 1024 * 1024;

/**
 * string2ll() of redis util.c: optional '-', no '+', no leading zeros or
 * spaces, within int64. Returns NaN where string2ll fails. Magnitudes over
 * 2^53 come back as the nearest double.
 */
export function parseRespInteger(b: Buffer, s: number, e: number): number {
  const len = e - s;
  if (len <= 0) return NaN;
  let c = b[s];
  if (len === 1) return c >= 48 && c <= 57 ? c - 48 : NaN;
  let i = s;
  let neg = false;
  if (c === 45) {
    neg = true;
    i++;
    c = b[i];
  }
  if (c < 49 || c > 57) return NaN;
  const digits = e - i;
  if (digits > 19) return NaN;
  let v = 0;
  for (; i < e; i++) {
    c = b[i];
    if (c < 48 || c > 57) return NaN;
    v = v * 10 + (c - 48);
  }
  if (digits > 15) {
    if (digits === 19 && !fitsInt64(b, e - 19, neg)) return NaN;
    // Summing digits in doubles drifts past 2^53; let the runtime round once.
    v = Number(b.toString('latin1', e - digits, e));
  }
  return neg ? -v : v;
}

const INT64_MAX_DIGITS = Buffer.from('9223372036854775807', 'latin1');

function fitsInt64(b: Buffer, s: number, neg: boolean): boolean {
  for (let j = 0; j < 19; j++) {
    const lim = INT64_MAX_DIGITS[j] + (neg && j === 18 ? 1 : 0);
    const c = b[s + j];
    if (c < lim) return true;
    if (c > lim) return false;
  }
  return true;
}
