/**
 * RESP encoding into slabs. A writer appends replies (or commands) to the
 * free end of a slab and `take()` hands out the bytes written since the
 * last take as a view; later writes go after them, so the view stays valid
 * while the socket holds it. A new slab is started only when one fills up.
 * One take per event-loop turn, written inside socket.cork()/uncork(), is
 * the intended use.
 *
 *   simple  "+" text CRLF      error   "-" text CRLF     integer ":" n CRLF
 *   bulk    "$" len CRLF bytes CRLF                       null bulk "$-1" CRLF
 *   array   "*" n CRLF ...     null array "*-1" CRLF
 *   RESP3   "_" null, "#t"/"#f", "," double, "(" bignum, "!" bulk error,
 *           "=" len CRLF fmt ":" text CRLF, "%" map, "~" set, ">" push, "|" attribute
 */
import { doubleText, type RespPairs, type RespValue } from './resp-value';

/** Copies up to this many bytes by hand (see raw()). */
const SMALL_COPY = 64;
const CR = 13;
const LF = 10;

export type RespProtocolVersion = 2 | 3;

export class RespWriter {
  private buf: Buffer;
  private pos = 0;
  private mark = 0;

  constructor(private readonly slabSize = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(slabSize);
  }

  /** Bytes written since the last take(). */
  get length(): number {
    return this.pos - this.mark;
  }

  /** The bytes written since the last take(), as a view that later writes never touch. */
  take(): Buffer {
    const out = this.buf.subarray(this.mark, this.pos);
    this.mark = this.pos;
    return out;
  }

  /** Forget what was written since the last take(). */
  discard(): void {
    this.pos = this.mark;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const pending = this.pos - this.mark;
    const next = Buffer.allocUnsafe(Math.max(this.slabSize, pending + n));
    this.buf.copy(next, 0, this.mark, this.pos);
    this.buf = next;
    this.mark = 0;
    this.pos = pending;
  }

  /** type byte, decimal n, CRLF. */
  private header(type: number, n: number): this {
    this.reserve(24);
    const b = this.buf;
    b[this.pos++] = type;
    this.pos = writeDecimal(b, this.pos, n);
    b[this.pos++] = CR;
    b[this.pos++] = LF;
    return this;
  }

  private line(type: number, text: string, encoding: BufferEncoding): this {
    const n = Buffer.byteLength(text, encoding);
    this.reserve(n + 3);
    this.buf[this.pos++] = type;
    this.pos += this.buf.write(text, this.pos, encoding);
    this.buf[this.pos++] = CR;
    this.buf[this.pos++] = LF;
    return this;
  }

  private blob(type: number, data: Buffer | string, encoding: BufferEncoding): this {
    const n = typeof data === 'string' ? Buffer.byteLength(data, encoding) : data.length;
    this.header(type, n);
    this.reserve(n + 2);
    if (typeof data === 'string') this.pos += this.buf.write(data, this.pos, encoding);
    else this.pos += data.copy(this.buf, this.pos);
    this.buf[this.pos++] = CR;
    this.buf[this.pos++] = LF;
    return this;
  }

  /** "+text"; text must not hold CR or LF. */
  simpleString(text: string): this {
    return this.line(43, text, 'utf8');
  }

  /** "-ERR message": pass the whole line, prefix included; CR and LF become spaces. */
  error(text: string): this {
    return this.line(45, /[\r\n]/.test(text) ? text.replace(/[\r\n]/g, ' ') : text, 'utf8');
  }

  integer(n: number | bigint): this {
    if (typeof n === 'bigint' || !Number.isSafeInteger(n)) return this.line(58, BigInt(n).toString(), 'latin1');
    return this.header(58, n);
  }

  /** A bulk string; null writes the RESP2 null bulk "$-1". */
  bulk(data: Buffer | string | null): this {
    if (data === null) return this.nullBulk();
    return this.blob(36, data, 'utf8');
  }

  nullBulk(): this {
    return this.raw(NULL_BULK);
  }

  nullArray(): this {
    return this.raw(NULL_ARRAY);
  }

  /** RESP3 null "_". */
  null(): this {
    return this.raw(NULL3);
  }

  /** Array header; the caller writes n values after it. n < 0 writes "*-1". */
  arrayHeader(n: number): this {
    return n < 0 ? this.nullArray() : this.header(42, n);
  }

  /** RESP3 map header: n pairs follow. */
  mapHeader(n: number): this {
    return this.header(37, n);
  }

  setHeader(n: number): this {
    return this.header(126, n);
  }

  pushHeader(n: number): this {
    return this.header(62, n);
  }

  attributeHeader(n: number): this {
    return this.header(124, n);
  }

  boolean(v: boolean): this {
    return this.raw(v ? TRUE3 : FALSE3);
  }

  double(d: number, text = doubleText(d)): this {
    return this.line(44, text, 'latin1');
  }

  bigNumber(n: bigint | string): this {
    return this.line(40, n.toString(), 'latin1');
  }

  bulkError(text: Buffer | string): this {
    return this.blob(33, text, 'utf8');
  }

  /** "=len\r\nfmt:text\r\n"; format is three chars. */
  verbatim(text: Buffer | string, format = 'txt'): this {
    const body = typeof text === 'string' ? Buffer.from(text) : text;
    this.header(61, body.length + 4);
    this.reserve(body.length + 6);
    this.pos += this.buf.write(format.slice(0, 3).padEnd(3, ' '), this.pos, 'latin1');
    this.buf[this.pos++] = 58;
    this.pos += body.copy(this.buf, this.pos);
    this.buf[this.pos++] = CR;
    this.buf[this.pos++] = LF;
    return this;
  }

  /** Copy already encoded bytes (a forwarded frame). */
  raw(src: Buffer, start = 0, end = src.length): this {
    const n = end - start;
    this.reserve(n);
    if (n <= SMALL_COPY) {
      // A forwarded command is usually a few dozen bytes: Buffer.copy of a part makes a temporary view each time.
      const buf = this.buf;
      let p = this.pos;
      for (let i = start; i < end; i++) buf[p++] = src[i]!;
      this.pos = p;
    } else this.pos += src.copy(this.buf, this.pos, start, end);
    return this;
  }

  /** A command as a multibulk of bulk strings. */
  command(args: ReadonlyArray<string | Buffer>): this {
    this.header(42, args.length);
    for (const a of args) this.blob(36, a, 'utf8');
    return this;
  }

  /**
   * Encode a parsed value. With proto 2, RESP3-only types are downgraded as
   * toResp2() does (without building the intermediate value); with proto 3,
   * attributes are written before their value.
   */
  value(v: RespValue, proto: RespProtocolVersion = 3, nullAs: 'bulk' | 'array' = 'bulk'): this {
    if (proto === 3 && v.attributes) this.pairs(124, v.attributes, proto);
    switch (v.type) {
      case 'simple':
        return this.line(43, v.value, 'latin1');
      case 'error':
        return this.line(45, v.value, 'latin1');
      case 'integer':
        return this.integer(v.value);
      case 'bulk':
        return this.blob(36, v.value, 'latin1');
      case 'null':
        if (proto === 3) return this.null();
        return (v.kind === 'null' ? nullAs : v.kind) === 'array' ? this.nullArray() : this.nullBulk();
      case 'boolean':
        return proto === 3 ? this.boolean(v.value) : this.header(58, v.value ? 1 : 0);
      case 'double':
        return proto === 3 ? this.line(44, v.text, 'latin1') : this.blob(36, v.text, 'latin1');
      case 'bignum':
        return proto === 3 ? this.bigNumber(v.value) : this.blob(36, v.value.toString(), 'latin1');
      case 'bulk-error':
        return proto === 3 ? this.blob(33, v.value, 'latin1') : this.line(45, v.value.toString('latin1').replace(/[\r\n]/g, ' '), 'latin1');
      case 'verbatim':
        return proto === 3 ? this.verbatim(v.value, v.format) : this.blob(36, v.value, 'latin1');
      case 'array':
        return this.items(42, v.value, proto);
      case 'set':
        return this.items(proto === 3 ? 126 : 42, v.value, proto);
      case 'push':
        return this.items(proto === 3 ? 62 : 42, v.value, proto);
      case 'map':
        if (proto === 3) return this.pairs(37, v.value, proto);
        this.header(42, v.value.length * 2);
        for (const [k, x] of v.value) this.value(k, proto).value(x, proto);
        return this;
    }
  }

  private items(type: number, items: RespValue[], proto: RespProtocolVersion): this {
    this.header(type, items.length);
    for (const x of items) this.value(x, proto);
    return this;
  }

  private pairs(type: number, pairs: RespPairs, proto: RespProtocolVersion): this {
    this.header(type, pairs.length);
    for (const [k, x] of pairs) this.value(k, proto).value(x, proto);
    return this;
  }
}

/** Write n (a safe integer) in decimal at p; returns the position after it. */
function writeDecimal(b: Buffer, p: number, n: number): number {
  if (n < 0) {
    b[p++] = 45;
    n = -n;
  }
  if (n < 10) {
    b[p++] = 48 + n;
    return p;
  }
  let digits = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
  let q = p + digits;
  const endPos = q;
  while (n >= 10) {
    const d = n % 10;
    n = (n - d) / 10;
    b[--q] = 48 + d;
  }
  b[--q] = 48 + n;
  return endPos;
}

const NULL_BULK = Buffer.from('$-1\r\n');
const NULL_ARRAY = Buffer.from('*-1\r\n');
const NULL3 = Buffer.from('_\r\n');
const TRUE3 = Buffer.from('#t\r\n');
const FALSE3 = Buffer.from('#f\r\n');

/** Frequent replies, encoded once. Share them; never write into them. */
export const RESP_OK = Buffer.from('+OK\r\n');
export const RESP_PONG = Buffer.from('+PONG\r\n');
export const RESP_QUEUED = Buffer.from('+QUEUED\r\n');
export const RESP_NULL_BULK = NULL_BULK;
export const RESP_NULL_ARRAY = NULL_ARRAY;
export const RESP3_NULL = NULL3;
export const RESP_EMPTY_ARRAY = Buffer.from('*0\r\n');
export const RESP_ZERO = Buffer.from(':0\r\n');
export const RESP_ONE = Buffer.from(':1\r\n');

/** Encode one value into a new Buffer. */
export function encodeValue(v: RespValue, proto: RespProtocolVersion = 3, nullAs: 'bulk' | 'array' = 'bulk'): Buffer {
  return new RespWriter(256).value(v, proto, nullAs).take();
}

/** Encode a command as a RESP multibulk into a new Buffer. */
export function encodeCommand(args: ReadonlyArray<string | Buffer>): Buffer {
  return new RespWriter(256).command(args).take();
}

/** "-<text>\r\n" into a new Buffer (text includes the prefix, e.g. "ERR ..."). */
export function encodeError(text: string): Buffer {
  return new RespWriter(64).error(text).take();
}
