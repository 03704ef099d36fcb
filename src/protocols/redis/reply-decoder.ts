/**
 * Upstream -> proxy: frames complete RESP2/RESP3 replies without building
 * values. Each reply is handed out as a byte range (a view of the chunk it
 * arrived in, or one copy when it straddled chunks) plus its type byte.
 *
 *   value      = simple | blob | aggregate | attribute value
 *   simple     = ("+" | "-" | ":" | "_" | "#" | "," | "(") text CRLF
 *   blob       = ("$" | "!" | "=") length CRLF bytes CRLF
 *              | "$-1" CRLF                                  ; RESP2 null bulk
 *              | "$?" CRLF { ";" length CRLF bytes CRLF } ";0" CRLF   ; streamed
 *   aggregate  = ("*" | "~" | ">") count CRLF count*value
 *              | ("%") count CRLF count*(value value)
 *              | "*-1" CRLF                                  ; RESP2 null array
 *              | ("*" | "~" | "%" | ">") "?" CRLF { value } "." CRLF      ; streamed
 *   attribute  = "|" count CRLF count*(value value)         ; precedes a value
 *
 * An attribute is not a reply of its own: it is framed together with the
 * value it annotates, and the reported type is that value's. A push (">")
 * at top level is out of band (RESP3 pub/sub, client tracking): it answers
 * no request, so a session must not match it against its FIFO.
 */
import { FAIL, FrameDecoder, NEED, parseRespInteger } from './frame-decoder';
import { RespProtocolError, type RespReplyErrorKind } from './protocol-error';

const CR = 13;
const LF = 10;

/** Reply type bytes. */
export const RespType = {
  SimpleString: 43, // +
  Error: 45, // -
  Integer: 58, // :
  BulkString: 36, // $
  Array: 42, // *
  Null: 95, // _
  Boolean: 35, // #
  Double: 44, // ,
  BigNumber: 40, // (
  BulkError: 33, // !
  VerbatimString: 61, // =
  Map: 37, // %
  Set: 126, // ~
  Attribute: 124, // |
  Push: 62, // >
} as const;

const T = RespType;
const QUESTION = 63;
const DOT = 46;
const SEMICOLON = 59;

export interface ReplyDecoderOptions {
  /** Largest blob length accepted. Default 2^53 - 1 (no limit beyond memory). */
  maxBulkLength?: number;
  /** Longest simple line. Default 8 MB. */
  maxLineLength?: number;
  /** Largest reply kept across chunks. Default no limit. */
  maxFrameBytes?: number;
}

export interface ReplyHandler {
  /**
   * One complete reply: buf[start, end). `type` is a RespType byte (the
   * annotated value's type when an attribute leads). The buffer is never
   * reused by the decoder.
   */
  onReply(buf: Buffer, start: number, end: number, type: number): void;
  /** The upstream stream is broken; it cannot be resynchronised. */
  onError(err: RespProtocolError): void;
}

export class RespReplyDecoder extends FrameDecoder {
  private readonly maxBulkLength: number;
  private readonly maxLineLength: number;
  protected readonly maxFrameBytes: number;

  /** Elements still expected per open aggregate (-1: streamed, until "."). */
  private counts: number[] = [];
  /** Whether the open aggregate at each depth is an attribute. */
  private attrs: boolean[] = [];
  private depth = 0;
  private bulkLeft = 0;
  /** Inside "$?": expecting ";len" chunks. */
  private inStream = false;
  private frameType = 0;

  constructor(
    private readonly handler: ReplyHandler,
    opts: ReplyDecoderOptions = {},
  ) {
    super();
    this.maxBulkLength = opts.maxBulkLength ?? Number.MAX_SAFE_INTEGER;
    this.maxLineLength = opts.maxLineLength ?? 8 * 1024 * 1024;
    this.maxFrameBytes = opts.maxFrameBytes ?? Number.MAX_SAFE_INTEGER;
  }

  protected parse(b: Buffer, p: number, end: number): number {
    for (;;) {
      if (this.bulkLeft > 0) {
        const data = this.bulkLeft - 2;
        if (data > 0) {
          const avail = end - p;
          if (avail <= data) {
            this.bulkLeft -= avail;
            this.lineRel = -1;
            return NEED;
          }
          p += data;
          this.bulkLeft = 2;
        }
        // The CRLF after a payload may itself be split across chunks.
        if (this.bulkLeft === 2) {
          if (p >= end) return NEED;
          if (b[p] !== CR) return this.fail('reply-expected-crlf', 'Protocol error: expected CRLF after bulk data');
          p++;
          this.bulkLeft = 1;
        }
        if (p >= end) return NEED;
        if (b[p] !== LF) return this.fail('reply-expected-crlf', 'Protocol error: expected CRLF after bulk data');
        p++;
        this.bulkLeft = 0;
        if (!this.inStream && this.valueDone()) return p;
        continue;
      }
      if (p >= end) {
        this.lineRel = -1;
        return NEED;
      }

      // A line: find its CR LF.
      let i = this.lineRel >= 0 && this.scanRel - this.delta > p ? this.scanRel - this.delta : p + 1;
      for (; i < end; i++) if (b[i] === CR) break;
      if (i + 1 >= end) {
        if (end - p > this.maxLineLength) return this.fail('reply-line-too-long', 'Protocol error: too long reply line');
        this.lineRel = p + this.delta;
        this.scanRel = i + this.delta;
        return NEED;
      }
      if (b[i + 1] !== LF) return this.fail('reply-expected-crlf', 'Protocol error: expected CRLF');
      this.lineRel = -1;
      const t = b[p];
      const next = i + 2;

      if (this.inStream) {
        // "$?" chunks: ";len" then len bytes, ";0" ends the string.
        const n = t === SEMICOLON ? parseRespInteger(b, p + 1, i) : NaN;
        if (!(n >= 0 && n <= this.maxBulkLength)) return this.fail('reply-invalid-length', 'Protocol error: invalid streamed string chunk');
        p = next;
        if (n > 0) {
          this.bulkLeft = n + 2;
          continue;
        }
        this.inStream = false;
        if (this.valueDone()) return p;
        continue;
      }
      if (this.depth === 0 && t !== T.Attribute) this.frameType = t;

      switch (t) {
        case T.Integer:
        case T.Null:
        case T.Boolean:
        case T.Double:
        case T.BigNumber:
        case T.SimpleString:
        case T.Error:
          if (t !== T.SimpleString && t !== T.Error && !validScalar(t, b, p + 1, i)) {
            return this.fail('reply-invalid-type', `Protocol error: invalid '${String.fromCharCode(t)}' reply`);
          }
          p = next;
          if (this.valueDone()) return p;
          continue;

        case T.BulkString:
        case T.BulkError:
        case T.VerbatimString: {
          if (t === T.BulkString && i === p + 2 && b[p + 1] === QUESTION) {
            this.inStream = true;
            p = next;
            continue;
          }
          const n = parseRespInteger(b, p + 1, i);
          p = next;
          if (n === -1 && t === T.BulkString) {
            if (this.valueDone()) return p;
            continue;
          }
          if (!(n >= 0 && n <= this.maxBulkLength)) return this.fail('reply-invalid-length', 'Protocol error: invalid bulk length');
          this.bulkLeft = n + 2;
          continue;
        }

        case T.Array:
        case T.Set:
        case T.Push:
        case T.Map:
        case T.Attribute: {
          const lineStart = p;
          p = next;
          if (i === lineStart + 2 && b[lineStart + 1] === QUESTION && t !== T.Attribute) {
            this.open(-1, false);
            continue;
          }
          const n = parseRespInteger(b, lineStart + 1, i);
          if (n === -1 && t === T.Array) {
            if (this.valueDone()) return p;
            continue;
          }
          if (!(n >= 0)) return this.fail('reply-invalid-length', 'Protocol error: invalid multibulk length');
          const count = t === T.Map || t === T.Attribute ? 2 * n : n;
          if (count > 0) {
            this.open(count, t === T.Attribute);
            continue;
          }
          // An empty attribute annotates nothing; the value still follows.
          if (t === T.Attribute) continue;
          if (this.valueDone()) return p;
          continue;
        }

        case DOT:
          if (i === p + 1 && this.depth > 0 && this.counts[this.depth - 1] < 0) {
            p = next;
            this.depth--;
            if (this.valueDone()) return p;
            continue;
          }
          return this.fail('reply-unexpected', "Protocol error: unexpected '.'");

        default:
          return this.fail('reply-invalid-type', `Protocol error: invalid reply type byte '${String.fromCharCode(t)}'`);
      }
    }
  }

  /**
   * Fast path for the usual replies when wholly in b: a simple line, a
   * bulk string, or a flat array of those. Anything else (nulls, empty
   * strings, RESP3 types, nesting, errors) is left to parse().
   */
  protected override parseWhole(b: Buffer, p: number, end: number): number {
    const t = b[p];
    if (t === T.Array) {
      let i = p + 1;
      let c = b[i];
      if (c < 49 || c > 57) return -1;
      let n = c - 48;
      for (i++; i < end; i++) {
        c = b[i];
        if (c < 48 || c > 57) break;
        n = n * 10 + (c - 48);
      }
      if (c !== CR || i + 1 >= end || b[i + 1] !== LF) return -1;
      let q = i + 2;
      for (let k = 0; k < n; k++) {
        q = this.flatElement(b, q, end);
        if (q < 0) return -1;
      }
      this.frameType = t;
      return q;
    }
    const q = this.flatElement(b, p, end);
    if (q >= 0) this.frameType = t;
    return q;
  }

  /** One "+", "-", ":" line or non-empty "$" string at b[p]; its end or -1. */
  private flatElement(b: Buffer, p: number, end: number): number {
    if (p >= end) return -1;
    const t = b[p];
    let i = p + 1;
    if (t === T.BulkString) {
      let c = b[i];
      if (c < 49 || c > 57) return -1;
      let len = c - 48;
      for (i++; i < end; i++) {
        c = b[i];
        if (c < 48 || c > 57) break;
        len = len * 10 + (c - 48);
      }
      const q = i + 2 + len + 2;
      if (c !== CR || q > end || len > this.maxBulkLength) return -1;
      if (b[i + 1] !== LF || b[q - 2] !== CR || b[q - 1] !== LF) return -1;
      return q;
    }
    if (t !== T.SimpleString && t !== T.Integer && t !== T.Error) return -1;
    for (; i < end; i++) if (b[i] === CR) break;
    if (i + 1 >= end || b[i + 1] !== LF) return -1;
    if (t === T.Integer && !validScalar(t, b, p + 1, i)) return -1;
    return i + 2;
  }

  private open(count: number, attribute: boolean): void {
    const d = this.depth++;
    this.counts[d] = count;
    this.attrs[d] = attribute;
  }

  /** A value ended; true when it completed the top-level reply. */
  private valueDone(): boolean {
    while (this.depth > 0) {
      const top = this.depth - 1;
      const left = this.counts[top];
      if (left < 0) return false;
      if (left > 1) {
        this.counts[top] = left - 1;
        return false;
      }
      this.depth = top;
      // A finished attribute is not a value: its parent still waits for one.
      if (this.attrs[top]) return false;
    }
    return true;
  }

  protected emit(buf: Buffer, start: number, end: number): void {
    this.handler.onReply(buf, start, end, this.frameType);
  }

  protected override bulkReserve(): number {
    return this.bulkLeft;
  }

  protected stallFailed(): void {
    // Replies are not scanned for NUL, so they never stall.
  }

  protected frameTooLarge(): void {
    this.fail('reply-too-large', 'Protocol error: reply larger than maxFrameBytes');
  }

  private fail(kind: RespReplyErrorKind, message: string): number {
    this.dead = true;
    this.acc = null;
    this.handler.onError(new RespProtocolError(kind, message, 'upstream'));
    return FAIL;
  }
}

/**
 * The text of a scalar line, so that whatever is framed also parses:
 *   ":" and "(" [+|-] digits       "_" nothing       "#" t | f
 *   "," [+|-] digits [. digits] [(e|E) [+|-] digits] | inf | -inf | nan
 */
export function validScalar(t: number, b: Buffer, s: number, e: number): boolean {
  if (t === T.Null) return s === e;
  if (t === T.Boolean) return e === s + 1 && (b[s] === 116 || b[s] === 102);
  let i = s;
  if (t === T.Double) {
    const n = e - s;
    // inf, -inf, +inf, nan
    if ((n === 3 || n === 4) && (b[e - 3] === 105 || b[e - 3] === 110)) {
      const w = b.toString('latin1', s, e);
      return w === 'inf' || w === '-inf' || w === '+inf' || w === 'nan';
    }
  }
  if (b[i] === 43 || b[i] === 45) i++;
  const d0 = i;
  while (i < e && b[i] >= 48 && b[i] <= 57) i++;
  if (i === d0) return false;
  if (t !== T.Double) return i === e;
  if (i < e && b[i] === 46) {
    const f0 = ++i;
    while (i < e && b[i] >= 48 && b[i] <= 57) i++;
    if (i === f0) return false;
  }
  if (i < e && (b[i] === 101 || b[i] === 69)) {
    i++;
    if (i < e && (b[i] === 43 || b[i] === 45)) i++;
    const x0 = i;
    while (i < e && b[i] >= 48 && b[i] <= 57) i++;
    if (i === x0) return false;
  }
  return i === e;
}
