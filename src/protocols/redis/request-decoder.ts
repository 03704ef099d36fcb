/**
 * Client -> proxy: a streaming decoder of Redis requests, following the
 * acceptance rules of redis-server 7.0 byte for byte (checked against the
 * real server with raw sockets).
 *
 * A request whose first byte is '*' is a multibulk:
 *
 *   request   = "*" count CR X { bulk }           ; X: any one byte (redis skips it)
 *   bulk      = "$" length CR X payload Y Z       ; Y Z: any two bytes (redis skips them)
 *   count     = string2ll integer                 ; <= 0: no command, nothing answered
 *   length    = string2ll integer 0..maxBulkLength
 *
 * Redis finds a header line with strchr(buf, '\r') and needs one more byte
 * after the CR before it parses; it never looks at the LF or at the two
 * bytes after a payload. A NUL before the CR hides it from strchr, so redis
 * waits until more than 64 KB are pending ("too big mbulk count string" /
 * "too big bulk count string"). We do the same; `strictCrlf` instead
 * rejects anything but CR LF.
 *
 * Any other first byte starts an inline request: one line up to LF (a CR
 * before the LF is dropped), split like sdssplitargs(): blanks separate
 * arguments; "double quotes" take \xHH \n \r \t \b \a and \<c> escapes;
 * 'single quotes' take only \'; a closing quote must be followed by a blank
 * or the end of the line, else "unbalanced quotes". An empty line is no
 * command. A NUL before the LF hides it (strchr) until 64 KB are pending.
 * Inline commands are re-encoded as a multibulk so upstreams get RESP.
 */
import { commandName, upperAscii } from './command-name';
import { FAIL, FrameDecoder, NEED, parseRespInteger } from './frame-decoder';
import { RespProtocolError, type RespRequestErrorKind } from './protocol-error';

const CR = 13;
const LF = 10;
const STAR = 42;
const DOLLAR = 36;

/** Redis limits: proto-max-bulk-len, INT_MAX, PROTO_INLINE_MAX_SIZE, client-query-buffer-limit. */
export const REDIS_MAX_BULK_LENGTH = 512 * 1024 * 1024;
export const REDIS_MAX_MULTIBULK_LENGTH = 2147483647;
export const REDIS_INLINE_MAX_SIZE = 64 * 1024;
export const REDIS_QUERY_BUFFER_LIMIT = 1024 * 1024 * 1024;
/** Before AUTH redis accepts at most 10 arguments of at most 16384 bytes. */
const UNAUTH_MAX_MULTIBULK = 10;
const UNAUTH_MAX_BULK = 16384;
/** parseWhole() takes frames of up to this many arguments. */
const FAST_MAX_ARGS = 1024;

export interface RequestDecoderOptions {
  /** Largest argument (proto-max-bulk-len). Default 512 MB. */
  maxBulkLength?: number;
  /** Largest argument count. Default INT_MAX, like redis 7.0. */
  maxMultibulkLength?: number;
  /** Longest inline request or header line without its terminator. Default 64 KB. */
  maxInlineLength?: number;
  /** Largest frame kept across chunks (client-query-buffer-limit). Default 1 GB. */
  maxFrameBytes?: number;
  /** Reject header lines and payloads not ended by CR LF (redis does not). Default false. */
  strictCrlf?: boolean;
  /** Apply redis' limits for clients that have not authenticated yet. Default false. */
  unauthenticated?: boolean;
}

export interface RequestHandler {
  /** One complete command. Its buffers stay valid; the decoder never reuses them. */
  onCommand(cmd: RespCommand): void;
  /** The stream is broken: answer `err.toReply()` (when `err.hasReply`) and close. */
  onError(err: RespProtocolError): void;
}

/**
 * One decoded request. Arguments are views of the buffer the frame arrived
 * in (a copy only when the frame straddled chunks); `raw` is the frame as
 * received, or for inline commands its RESP re-encoding.
 */
export class RespCommand {
  private cachedName: string | undefined = undefined;

  constructor(
    /** The buffer holding the frame. */
    readonly buffer: Buffer,
    /** Offset of the frame in `buffer`. */
    readonly start: number,
    /** Offset just after the frame in `buffer`. */
    readonly end: number,
    /** Number of arguments, the command name included (argc >= 1). */
    readonly argc: number,
    /** start, end of each argument, relative to `start`. */
    private readonly offsets: number[],
    /** Sent as an inline command; `raw` is then our re-encoding. */
    readonly inline: boolean,
  ) {}

  /** Build a command from arguments (tests, internal requests). */
  static from(args: ReadonlyArray<string | Buffer>): RespCommand {
    return commandFromParts(args.map((a) => (typeof a === 'string' ? Buffer.from(a) : a)), false);
  }

  /** The command name, ASCII-uppercased and interned (no allocation for known names). */
  get name(): string {
    let n = this.cachedName;
    if (n === undefined) {
      n = commandName(this.buffer, this.start + this.offsets[0], this.start + this.offsets[1]);
      this.cachedName = n;
    }
    return n;
  }

  /** The whole frame as RESP, ready to forward unchanged. */
  get raw(): Buffer {
    return this.buffer.subarray(this.start, this.end);
  }

  get rawLength(): number {
    return this.end - this.start;
  }

  /** Copy the frame into target at `at` (coalesced writes); returns bytes copied. */
  copyRawTo(target: Buffer, at: number): number {
    return this.buffer.copy(target, at, this.start, this.end);
  }

  /** Argument i (0 is the command name) as a view. */
  arg(i: number): Buffer {
    const o = this.offsets;
    return this.buffer.subarray(this.start + o[2 * i], this.start + o[2 * i + 1]);
  }

  /** Offset of argument i in `buffer`. */
  argStart(i: number): number {
    return this.start + this.offsets[2 * i];
  }

  /** Offset just after argument i in `buffer`. */
  argEnd(i: number): number {
    return this.start + this.offsets[2 * i + 1];
  }

  argLength(i: number): number {
    return this.offsets[2 * i + 1] - this.offsets[2 * i];
  }

  argString(i: number, encoding: BufferEncoding = 'utf8'): string {
    return this.buffer.toString(encoding, this.start + this.offsets[2 * i], this.start + this.offsets[2 * i + 1]);
  }

  /** Argument i ASCII-uppercased, one char per byte. */
  argUpper(i: number): string {
    return upperAscii(this.buffer, this.start + this.offsets[2 * i], this.start + this.offsets[2 * i + 1]);
  }

  /**
   * Case-insensitive ASCII comparison with `upper` (an uppercase literal
   * such as "STREAMS"), like redis' strcasecmp, without allocating.
   */
  argEquals(i: number, upper: string): boolean {
    const b = this.buffer;
    const s = this.start + this.offsets[2 * i];
    const n = this.offsets[2 * i + 1] - this.offsets[2 * i];
    if (n !== upper.length) return false;
    for (let j = 0; j < n; j++) {
      const u = upper.charCodeAt(j);
      const c = b[s + j];
      if (c !== u && !(u >= 65 && u <= 90 && c === u + 32)) return false;
    }
    return true;
  }

  /** Argument i as an integer with string2ll rules, or undefined. */
  argInteger(i: number): number | undefined {
    const v = parseRespInteger(this.buffer, this.start + this.offsets[2 * i], this.start + this.offsets[2 * i + 1]);
    return Number.isNaN(v) ? undefined : v;
  }

  /** A copy that owns its bytes, for a command kept beyond the chunk it arrived in. */
  clone(): RespCommand {
    const buf = Buffer.from(this.buffer.subarray(this.start, this.end));
    return new RespCommand(buf, 0, buf.length, this.argc, this.offsets, this.inline);
  }

  /** All arguments as views (allocates an array; for tests and slow paths). */
  args(): Buffer[] {
    const out = new Array<Buffer>(this.argc);
    for (let i = 0; i < this.argc; i++) out[i] = this.arg(i);
    return out;
  }
}

// Decoder states.
const ST_IDLE = 0;
const ST_COUNT = 1;
const ST_BULK_LINE = 2;
const ST_BULK_DATA = 3;
const ST_INLINE = 4;

/** Line scan results besides a CR position. */
const LINE_CUT = -1;
const LINE_STALL = -3;

const MSG: Record<Exclude<RespRequestErrorKind, 'expected-dollar'>, string> = {
  'invalid-multibulk-length': 'Protocol error: invalid multibulk length',
  'invalid-bulk-length': 'Protocol error: invalid bulk length',
  'unbalanced-quotes': 'Protocol error: unbalanced quotes in request',
  'too-big-inline-request': 'Protocol error: too big inline request',
  'too-big-mbulk-count-string': 'Protocol error: too big mbulk count string',
  'too-big-bulk-count-string': 'Protocol error: too big bulk count string',
  'unauthenticated-multibulk-length': 'Protocol error: unauthenticated multibulk length',
  'unauthenticated-bulk-length': 'Protocol error: unauthenticated bulk length',
  'expected-crlf': "Protocol error: expected '\\r\\n'",
  'query-buffer-limit': 'Protocol error: query buffer limit reached',
};

export class RespRequestDecoder extends FrameDecoder {
  private readonly maxBulkLength: number;
  private readonly maxMultibulkLength: number;
  private readonly maxInlineLength: number;
  protected readonly maxFrameBytes: number;
  private readonly strictCrlf: boolean;
  /** Redis' limits for clients not yet authenticated; the session clears it after AUTH. */
  unauthenticated: boolean;

  private st = ST_IDLE;
  private argc = 0;
  private argsLeft = 0;
  private offsets: number[] = [];
  /** Frame-relative start of the payload being read, and its length. */
  private argRel = 0;
  private bulkLen = 0;
  /** Payload bytes plus its 2 trailing bytes still to come. */
  private bulkLeft = 0;
  private inlineCmd: RespCommand | null = null;
  private stallKind: Exclude<RespRequestErrorKind, 'expected-dollar'> = 'too-big-inline-request';
  /** CR position found by lengthFast(). */
  private lineCR = 0;

  constructor(
    private readonly handler: RequestHandler,
    opts: RequestDecoderOptions = {},
  ) {
    super();
    this.maxBulkLength = opts.maxBulkLength ?? REDIS_MAX_BULK_LENGTH;
    this.maxMultibulkLength = opts.maxMultibulkLength ?? REDIS_MAX_MULTIBULK_LENGTH;
    this.maxInlineLength = opts.maxInlineLength ?? REDIS_INLINE_MAX_SIZE;
    this.maxFrameBytes = opts.maxFrameBytes ?? REDIS_QUERY_BUFFER_LIMIT;
    this.strictCrlf = opts.strictCrlf ?? false;
    this.unauthenticated = opts.unauthenticated ?? false;
  }

  protected parse(b: Buffer, p: number, end: number): number {
    for (;;) {
      switch (this.st) {
        case ST_IDLE:
          this.st = b[p] === STAR ? ST_COUNT : ST_INLINE;
          continue;

        case ST_COUNT: {
          let n = this.lengthFast(b, p, end);
          let c = this.lineCR;
          if (n < 0) {
            c = this.findCR(b, p, end);
            if (c < 0) return this.cutLine(p, end, c, 'too-big-mbulk-count-string');
            n = parseRespInteger(b, p + 1, c);
          }
          if (this.strictCrlf && b[c + 1] !== LF) return this.fail('expected-crlf');
          if (!(n <= this.maxMultibulkLength)) return this.fail('invalid-multibulk-length');
          if (n > UNAUTH_MAX_MULTIBULK && this.unauthenticated) return this.fail('unauthenticated-multibulk-length');
          this.lineRel = -1;
          p = c + 2;
          if (n <= 0) {
            // "*0" and "*-1" are consumed silently.
            this.st = ST_IDLE;
            return p;
          }
          this.argc = n;
          this.argsLeft = n;
          this.offsets = [];
          this.st = ST_BULK_LINE;
          continue;
        }

        case ST_BULK_LINE: {
          if (p >= end) {
            this.lineRel = -1;
            return NEED;
          }
          let n = b[p] === DOLLAR ? this.lengthFast(b, p, end) : -1;
          let c = this.lineCR;
          if (n < 0) {
            c = this.findCR(b, p, end);
            if (c < 0) return this.cutLine(p, end, c, 'too-big-bulk-count-string');
            if (b[p] !== DOLLAR) return this.failExpectedDollar(b[p]);
            n = parseRespInteger(b, p + 1, c);
          }
          if (this.strictCrlf && b[c + 1] !== LF) return this.fail('expected-crlf');
          if (!(n >= 0 && n <= this.maxBulkLength)) return this.fail('invalid-bulk-length');
          if (n > UNAUTH_MAX_BULK && this.unauthenticated) return this.fail('unauthenticated-bulk-length');
          this.lineRel = -1;
          p = c + 2;
          this.argRel = p + this.delta;
          this.bulkLen = n;
          this.bulkLeft = n + 2;
          this.st = ST_BULK_DATA;
          continue;
        }

        case ST_BULK_DATA: {
          const avail = end - p;
          if (this.strictCrlf) {
            // Check the two trailing bytes one by one: they may arrive in different chunks.
            const data = this.bulkLeft - 2;
            if (data > 0) {
              if (avail <= data) {
                this.bulkLeft -= avail;
                return NEED;
              }
              p += data;
              this.bulkLeft = 2;
            }
            while (this.bulkLeft > 0) {
              if (p >= end) return NEED;
              if (b[p] !== (this.bulkLeft === 2 ? CR : LF)) return this.fail('expected-crlf');
              p++;
              this.bulkLeft--;
            }
          } else {
            if (avail < this.bulkLeft) {
              this.bulkLeft -= avail;
              return NEED;
            }
            p += this.bulkLeft;
            this.bulkLeft = 0;
          }
          this.offsets.push(this.argRel, this.argRel + this.bulkLen);
          if (--this.argsLeft === 0) {
            this.st = ST_IDLE;
            return p;
          }
          this.st = ST_BULK_LINE;
          continue;
        }

        case ST_INLINE:
          return this.parseInline(b, p, end);
      }
      throw new Error('unreachable decoder state');
    }
  }

  /**
   * A whole multibulk in b[p, end) with plain headers ("*N" / "$N", N
   * without sign or leading zero, within limits). Anything else, including
   * "$0", is left to parse(), which accepts the same bytes.
   */
  protected override parseWhole(b: Buffer, p: number, end: number): number {
    if (b[p] !== STAR) return -1;
    let i = p + 1;
    let c = b[i];
    if (c < 49 || c > 57) return -1;
    let n = c - 48;
    for (i++; i < end; i++) {
      c = b[i];
      if (c < 48 || c > 57) break;
      n = n * 10 + (c - 48);
    }
    if (c !== CR || i + 1 >= end || n > FAST_MAX_ARGS || n > this.maxMultibulkLength) return -1;
    if (this.strictCrlf && b[i + 1] !== LF) return -1;
    if (this.unauthenticated && n > UNAUTH_MAX_MULTIBULK) return -1;
    const offsets = new Array<number>(2 * n);
    let q = i + 2;
    const maxLen = this.unauthenticated ? UNAUTH_MAX_BULK : this.maxBulkLength;
    for (let k = 0; k < n; k++) {
      if (q + 3 >= end || b[q] !== DOLLAR) return -1;
      i = q + 1;
      c = b[i];
      if (c < 49 || c > 57) return -1;
      let len = c - 48;
      for (i++; i < end; i++) {
        c = b[i];
        if (c < 48 || c > 57) break;
        len = len * 10 + (c - 48);
      }
      if (c !== CR || len > maxLen) return -1;
      const s = i + 2;
      q = s + len + 2;
      if (q > end) return -1;
      if (this.strictCrlf && (b[i + 1] !== LF || b[q - 2] !== CR || b[q - 1] !== LF)) return -1;
      offsets[2 * k] = s - p;
      offsets[2 * k + 1] = s - p + len;
    }
    this.argc = n;
    this.offsets = offsets;
    return q;
  }

  /**
   * The common header: 1-15 digits without a leading zero, then CR and one
   * more byte, all in this buffer. Returns the value (CR position in
   * lineCR), or -1 to take the general path, which gives the same answer.
   */
  private lengthFast(b: Buffer, p: number, end: number): number {
    let i = p + 1;
    let c = b[i];
    if (c < 49 || c > 57 || this.lineRel >= 0) return -1;
    let v = c - 48;
    const stop = Math.min(end, p + 16);
    for (i++; i < stop; i++) {
      c = b[i];
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
    }
    if (c !== CR || i + 1 >= end) return -1;
    this.lineCR = i;
    return v;
  }

  /** First CR at or after p with one more byte after it; LINE_CUT or LINE_STALL otherwise. */
  private findCR(b: Buffer, p: number, end: number): number {
    let i = this.lineRel >= 0 && this.scanRel - this.delta > p ? this.scanRel - this.delta : p;
    for (; i < end; i++) {
      const c = b[i];
      if (c === CR) {
        if (i + 1 < end) return i;
        break;
      }
      if (c === 0) return LINE_STALL;
    }
    this.scanRel = i + this.delta;
    return LINE_CUT;
  }

  /** The header line at p has no terminator yet. */
  private cutLine(p: number, end: number, why: number, kind: Exclude<RespRequestErrorKind, 'expected-dollar'>): number {
    if (end - p > this.maxInlineLength) return this.fail(kind);
    this.lineRel = p + this.delta;
    if (why === LINE_STALL) {
      this.stalled = true;
      this.stallKind = kind;
      this.stallLimit = this.maxInlineLength;
    }
    return NEED;
  }

  private parseInline(b: Buffer, p: number, end: number): number {
    const from = this.lineRel >= 0 && this.scanRel - this.delta > p ? this.scanRel - this.delta : p;
    const lf = b.indexOf(LF, from);
    const stop = lf < 0 || lf >= end ? end : lf;
    for (let i = from; i < stop; i++) {
      if (b[i] === 0) return this.cutLine(p, end, LINE_STALL, 'too-big-inline-request');
    }
    if (stop === end) {
      this.scanRel = end + this.delta;
      return this.cutLine(p, end, LINE_CUT, 'too-big-inline-request');
    }
    this.lineRel = -1;
    this.st = ST_IDLE;
    const lineEnd = lf > p && b[lf - 1] === CR ? lf - 1 : lf;
    const args = splitInline(b, p, lineEnd);
    if (args === null) return this.fail('unbalanced-quotes');
    if (args.length > 0) this.inlineCmd = commandFromParts(args, true);
    return lf + 1;
  }

  protected emit(buf: Buffer, start: number, end: number): void {
    const inline = this.inlineCmd;
    if (inline !== null) {
      this.inlineCmd = null;
      this.handler.onCommand(inline);
      return;
    }
    if (this.argc === 0) return; // "*0", "*-1" or an empty inline line
    const cmd = new RespCommand(buf, start, end, this.argc, this.offsets, false);
    this.argc = 0;
    this.handler.onCommand(cmd);
  }

  protected override bulkReserve(): number {
    return this.st === ST_BULK_DATA ? this.bulkLeft : 0;
  }

  protected stallFailed(): void {
    this.fail(this.stallKind);
  }

  protected frameTooLarge(): void {
    this.fail('query-buffer-limit');
  }

  private failExpectedDollar(byte: number): number {
    // addReplyErrorFormat turns CR and LF into spaces; other bytes go out raw.
    const ch = byte === CR || byte === LF ? ' ' : String.fromCharCode(byte);
    return this.report(new RespProtocolError('expected-dollar', `Protocol error: expected '$', got '${ch}'`, 'downstream'));
  }

  private fail(kind: Exclude<RespRequestErrorKind, 'expected-dollar'>): number {
    return this.report(new RespProtocolError(kind, MSG[kind], 'downstream'));
  }

  private report(err: RespProtocolError): number {
    this.dead = true;
    this.acc = null;
    this.handler.onError(err);
    return FAIL;
  }
}

/** isspace() in the C locale. */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Split an inline line (no NUL inside) the way sdssplitargs() does; null
 * for unbalanced quotes or a closing quote followed by a non-blank.
 */
export function splitInline(b: Buffer, s: number, e: number): Buffer[] | null {
  const args: Buffer[] = [];
  let i = s;
  for (;;) {
    while (i < e && isSpace(b[i])) i++;
    if (i >= e) return args;
    // Fast path: an unquoted token is a plain slice.
    const t0 = i;
    while (i < e) {
      const c = b[i];
      if (c === 32 || c === 10 || c === 13 || c === 9 || c === 34 || c === 39) break;
      i++;
    }
    if (i >= e || (b[i] !== 34 && b[i] !== 39)) {
      args.push(b.subarray(t0, i));
      if (i < e) i++;
      continue;
    }
    // A quote inside or at the start of a token: decode byte by byte.
    const out: number[] = [];
    for (let j = t0; j < i; j++) out.push(b[j]);
    let inDouble = false;
    let inSingle = false;
    for (;;) {
      const c = i < e ? b[i] : 0;
      if (inDouble) {
        if (c === 92 && i + 3 < e && b[i + 1] === 120 && hexValue(b[i + 2]) >= 0 && hexValue(b[i + 3]) >= 0) {
          out.push(hexValue(b[i + 2]) * 16 + hexValue(b[i + 3]));
          i += 3;
        } else if (c === 92 && i + 1 < e) {
          i++;
          const d = b[i];
          out.push(d === 110 ? 10 : d === 114 ? 13 : d === 116 ? 9 : d === 98 ? 8 : d === 97 ? 7 : d);
        } else if (c === 34) {
          if (i + 1 < e && !isSpace(b[i + 1])) return null;
          if (i < e) i++;
          break;
        } else if (i >= e) {
          return null;
        } else {
          out.push(c);
        }
      } else if (inSingle) {
        if (c === 92 && i + 1 < e && b[i + 1] === 39) {
          i++;
          out.push(39);
        } else if (c === 39) {
          if (i + 1 < e && !isSpace(b[i + 1])) return null;
          if (i < e) i++;
          break;
        } else if (i >= e) {
          return null;
        } else {
          out.push(c);
        }
      } else if (c === 32 || c === 10 || c === 13 || c === 9 || i >= e) {
        if (i < e) i++;
        break;
      } else if (c === 34) {
        inDouble = true;
      } else if (c === 39) {
        inSingle = true;
      } else {
        out.push(c);
      }
      if (i < e) i++;
    }
    args.push(Buffer.from(out));
  }
}

/** Encode arguments as a RESP multibulk and wrap it as a command. */
function commandFromParts(parts: Buffer[], inline: boolean): RespCommand {
  const n = parts.length;
  let size = 3 + decimalLength(n);
  for (let i = 0; i < n; i++) size += parts[i].length + 5 + decimalLength(parts[i].length);
  const out = Buffer.allocUnsafe(size);
  const offsets: number[] = [];
  let p = writeHeader(out, 0, STAR, n);
  for (let i = 0; i < n; i++) {
    const a = parts[i];
    p = writeHeader(out, p, DOLLAR, a.length);
    offsets.push(p, p + a.length);
    p += a.copy(out, p);
    out[p++] = CR;
    out[p++] = LF;
  }
  return new RespCommand(out, 0, p, n, offsets, inline);
}

function decimalLength(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

function writeHeader(out: Buffer, p: number, type: number, n: number): number {
  out[p++] = type;
  p += out.write(String(n), p, 'latin1');
  out[p++] = CR;
  out[p++] = LF;
  return p;
}
