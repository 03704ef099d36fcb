/**
 * RESP values as JS objects, for the few replies a proxy must look into
 * (DBSIZE sums, KEYS / SCAN merges, INFO) and for RESP2 <-> RESP3
 * conversion. The hot path never builds these: it forwards raw frames.
 *
 * Text that arrives on the wire (simple strings, errors, verbatim formats)
 * is kept as latin1 strings, one char per byte, so re-encoding a parsed
 * value gives back the same bytes.
 */
import { parseRespInteger } from './frame-decoder';
import { RespProtocolError } from './protocol-error';
import { RespType, validScalar } from './reply-decoder';

export type RespPairs = Array<[RespValue, RespValue]>;

interface Annotated {
  /** RESP3 attribute ("|") that preceded the value. */
  attributes?: RespPairs;
}

export interface RespSimpleString extends Annotated { type: 'simple'; value: string }
/** The whole error line without "-", e.g. "ERR unknown command". */
export interface RespError extends Annotated { type: 'error'; value: string }
/** bigint only outside the safe integer range. */
export interface RespInteger extends Annotated { type: 'integer'; value: number | bigint }
export interface RespBulkString extends Annotated { type: 'bulk'; value: Buffer }
/**
 * RESP2 "$-1" (kind 'bulk'), RESP2 "*-1" (kind 'array') or RESP3 "_"
 * (kind 'null'); the kind lets a RESP2 value be re-encoded unchanged.
 */
export interface RespNull extends Annotated { type: 'null'; kind: 'bulk' | 'array' | 'null' }
export interface RespArray extends Annotated { type: 'array'; value: RespValue[] }
export interface RespBoolean extends Annotated { type: 'boolean'; value: boolean }
/** `text` is the wire form ("3.14", "inf", "-inf", "nan"); RESP2 sends it as a bulk string. */
export interface RespDouble extends Annotated { type: 'double'; value: number; text: string }
export interface RespBigNumber extends Annotated { type: 'bignum'; value: bigint }
export interface RespBulkError extends Annotated { type: 'bulk-error'; value: Buffer }
/** `format` is three chars, e.g. "txt" or "mkd". */
export interface RespVerbatim extends Annotated { type: 'verbatim'; format: string; value: Buffer }
export interface RespMap extends Annotated { type: 'map'; value: RespPairs }
export interface RespSet extends Annotated { type: 'set'; value: RespValue[] }
export interface RespPush extends Annotated { type: 'push'; value: RespValue[] }

export type RespValue =
  | RespSimpleString
  | RespError
  | RespInteger
  | RespBulkString
  | RespNull
  | RespArray
  | RespBoolean
  | RespDouble
  | RespBigNumber
  | RespBulkError
  | RespVerbatim
  | RespMap
  | RespSet
  | RespPush;

/** Nesting deeper than this is refused (the parser recurses). */
const MAX_DEPTH = 1000;

/**
 * Parse one complete reply starting at buf[start]. Use it on frames from
 * RespReplyDecoder; it throws RespProtocolError on malformed or truncated
 * input.
 */
export function parseReply(buf: Buffer, start = 0, end = buf.length): RespValue {
  const cursor = { p: start };
  return readValue(buf, cursor, end, 0);
}

/** Parse every reply in buf (tests, captures). */
export function parseReplies(buf: Buffer, start = 0, end = buf.length): RespValue[] {
  const cursor = { p: start };
  const out: RespValue[] = [];
  while (cursor.p < end) out.push(readValue(buf, cursor, end, 0));
  return out;
}

interface Cursor {
  p: number;
}

function bad(message: string): RespProtocolError {
  return new RespProtocolError('reply-unexpected', `Protocol error: ${message}`, 'upstream');
}

/** Position of the CR ending the line at c.p. */
function lineEnd(b: Buffer, c: Cursor, end: number): number {
  const cr = b.indexOf(13, c.p);
  if (cr < 0 || cr + 1 >= end) throw bad('truncated reply');
  if (b[cr + 1] !== 10) throw bad('expected CRLF');
  return cr;
}

function readLength(b: Buffer, s: number, e: number): number {
  const n = parseRespInteger(b, s, e);
  if (Number.isNaN(n)) throw bad('invalid length');
  return n;
}

function readBlob(b: Buffer, c: Cursor, end: number, n: number): Buffer {
  const s = c.p;
  if (n < 0 || s + n + 2 > end) throw bad('truncated bulk');
  if (b[s + n] !== 13 || b[s + n + 1] !== 10) throw bad('expected CRLF after bulk data');
  c.p = s + n + 2;
  return b.subarray(s, s + n);
}

function readValue(b: Buffer, c: Cursor, end: number, depth: number): RespValue {
  if (depth > MAX_DEPTH) throw bad('reply nested too deeply');
  if (c.p >= end) throw bad('truncated reply');
  const t = b[c.p];
  const cr = lineEnd(b, c, end);
  const s = c.p + 1;
  c.p = cr + 2;
  const streamed = cr === s + 1 && b[s] === 63;
  switch (t) {
    case RespType.SimpleString:
      return { type: 'simple', value: b.toString('latin1', s, cr) };
    case RespType.Error:
      return { type: 'error', value: b.toString('latin1', s, cr) };
    case RespType.Integer: {
      if (!validScalar(t, b, s, cr)) throw bad('invalid integer');
      const n = Number(b.toString('latin1', s, cr));
      return { type: 'integer', value: Number.isSafeInteger(n) ? n : BigInt(b.toString('latin1', b[s] === 43 ? s + 1 : s, cr)) };
    }
    case RespType.Null:
      if (!validScalar(t, b, s, cr)) throw bad('invalid null');
      return { type: 'null', kind: 'null' };
    case RespType.Boolean:
      if (!validScalar(t, b, s, cr)) throw bad('invalid boolean');
      return { type: 'boolean', value: b[s] === 116 };
    case RespType.Double: {
      if (!validScalar(t, b, s, cr)) throw bad('invalid double');
      const text = b.toString('latin1', s, cr);
      return { type: 'double', value: parseDoubleText(text), text };
    }
    case RespType.BigNumber: {
      if (!validScalar(t, b, s, cr)) throw bad('invalid big number');
      return { type: 'bignum', value: BigInt(b.toString('latin1', b[s] === 43 ? s + 1 : s, cr)) };
    }
    case RespType.BulkString: {
      if (streamed) return { type: 'bulk', value: readStreamedBlob(b, c, end) };
      const n = readLength(b, s, cr);
      if (n === -1) return { type: 'null', kind: 'bulk' };
      return { type: 'bulk', value: readBlob(b, c, end, n) };
    }
    case RespType.BulkError:
      return { type: 'bulk-error', value: readBlob(b, c, end, readLength(b, s, cr)) };
    case RespType.VerbatimString: {
      const blob = readBlob(b, c, end, readLength(b, s, cr));
      if (blob.length < 4 || blob[3] !== 58) throw bad('invalid verbatim string');
      return { type: 'verbatim', format: blob.toString('latin1', 0, 3), value: blob.subarray(4) };
    }
    case RespType.Array:
    case RespType.Set:
    case RespType.Push: {
      let items: RespValue[];
      if (streamed) {
        items = readStreamedItems(b, c, end, depth);
      } else {
        const n = readLength(b, s, cr);
        if (n === -1 && t === RespType.Array) return { type: 'null', kind: 'array' };
        if (n < 0) throw bad('invalid multibulk length');
        items = new Array<RespValue>(n);
        for (let i = 0; i < n; i++) items[i] = readValue(b, c, end, depth + 1);
      }
      return t === RespType.Array
        ? { type: 'array', value: items }
        : t === RespType.Set
          ? { type: 'set', value: items }
          : { type: 'push', value: items };
    }
    case RespType.Map: {
      if (streamed) {
        const items = readStreamedItems(b, c, end, depth);
        if (items.length % 2 !== 0) throw bad('odd streamed map');
        return { type: 'map', value: toPairs(items) };
      }
      const n = readLength(b, s, cr);
      if (n < 0) throw bad('invalid map length');
      return { type: 'map', value: readPairs(b, c, end, n, depth) };
    }
    case RespType.Attribute: {
      const n = readLength(b, s, cr);
      if (n < 0) throw bad('invalid attribute length');
      const attributes = readPairs(b, c, end, n, depth);
      // A chain of attributes counts as nesting too, or "|1 ..." repeated would recurse without limit.
      const v = readValue(b, c, end, depth + 1);
      v.attributes = v.attributes ? attributes.concat(v.attributes) : attributes;
      return v;
    }
    default:
      throw bad(`invalid reply type byte '${String.fromCharCode(t)}'`);
  }
}

function readPairs(b: Buffer, c: Cursor, end: number, n: number, depth: number): RespPairs {
  const pairs: RespPairs = new Array<[RespValue, RespValue]>(n);
  for (let i = 0; i < n; i++) {
    const k = readValue(b, c, end, depth + 1);
    pairs[i] = [k, readValue(b, c, end, depth + 1)];
  }
  return pairs;
}

function readStreamedItems(b: Buffer, c: Cursor, end: number, depth: number): RespValue[] {
  const items: RespValue[] = [];
  for (;;) {
    if (c.p + 3 <= end && b[c.p] === 46 && b[c.p + 1] === 13 && b[c.p + 2] === 10) {
      c.p += 3;
      return items;
    }
    items.push(readValue(b, c, end, depth + 1));
  }
}

function readStreamedBlob(b: Buffer, c: Cursor, end: number): Buffer {
  const parts: Buffer[] = [];
  for (;;) {
    if (c.p >= end || b[c.p] !== 59) throw bad('invalid streamed string chunk');
    const cr = lineEnd(b, c, end);
    const n = readLength(b, c.p + 1, cr);
    c.p = cr + 2;
    if (n === 0) return Buffer.concat(parts);
    parts.push(readBlob(b, c, end, n));
  }
}

function toPairs(items: RespValue[]): RespPairs {
  const pairs: RespPairs = [];
  for (let i = 0; i < items.length; i += 2) pairs.push([items[i], items[i + 1]]);
  return pairs;
}

function parseDoubleText(text: string): number {
  switch (text) {
    case 'inf':
    case '+inf':
      return Infinity;
    case '-inf':
      return -Infinity;
    case 'nan':
    case '-nan':
      return NaN;
  }
  const v = Number(text);
  if (text.length === 0 || Number.isNaN(v)) throw bad('invalid double');
  return v;
}

/** The RESP3 wire text of a double: shortest round-trip digits, "inf", "-inf", "nan". */
export function doubleText(d: number): string {
  if (d === Infinity) return 'inf';
  if (d === -Infinity) return '-inf';
  if (Number.isNaN(d)) return 'nan';
  return String(d);
}

// ---------------------------------------------------------------------------
// RESP3 -> RESP2, as redis-server itself downgrades (checked with DEBUG
// PROTOCOL on 7.0): map -> flat array, set and push -> array, double and big
// number -> bulk string of their text, boolean -> integer 1/0, verbatim ->
// bulk string without its "txt:" prefix, null -> "$-1" or "*-1" as the
// command calls for, attributes dropped, bulk error -> simple error.

export interface ToResp2Options {
  /** RESP2 form of a top-level RESP3 null. Default 'bulk' ("$-1"). */
  nullAs?: 'bulk' | 'array';
  /** RESP2 form of nulls inside aggregates (GEOPOS uses 'array'). Default 'bulk'. */
  nestedNullAs?: 'bulk' | 'array';
  /**
   * A top-level array of [a, b] pairs becomes one flat array, as RESP2 sends
   * ZRANGE ... WITHSCORES, ZRANDMEMBER/HRANDFIELD WITH... and ZPOPMIN/MAX with a count.
   */
  flattenPairs?: boolean;
}

export function toResp2(v: RespValue, opts: ToResp2Options = {}): RespValue {
  const nested = opts.nestedNullAs ?? 'bulk';
  if (opts.flattenPairs === true && v.type === 'array' && v.value.every((x) => x.type === 'array' && x.value.length === 2)) {
    const flat: RespValue[] = [];
    for (const pair of v.value) for (const x of (pair as RespArray).value) flat.push(downgrade(x, nested, nested));
    return { type: 'array', value: flat };
  }
  return downgrade(v, opts.nullAs ?? 'bulk', nested);
}

function downgrade(v: RespValue, nullAs: 'bulk' | 'array', nested: 'bulk' | 'array'): RespValue {
  switch (v.type) {
    case 'simple':
    case 'error':
    case 'integer':
    case 'bulk':
      return v.attributes ? stripAttributes(v) : v;
    case 'null':
      return { type: 'null', kind: v.kind === 'null' ? nullAs : v.kind };
    case 'boolean':
      return { type: 'integer', value: v.value ? 1 : 0 };
    case 'double':
      return { type: 'bulk', value: Buffer.from(v.text, 'latin1') };
    case 'bignum':
      return { type: 'bulk', value: Buffer.from(v.value.toString(), 'latin1') };
    case 'bulk-error':
      // A simple error cannot hold CR or LF.
      return { type: 'error', value: v.value.toString('latin1').replace(/[\r\n]/g, ' ') };
    case 'verbatim':
      return { type: 'bulk', value: v.value };
    case 'array':
    case 'set':
    case 'push':
      return { type: 'array', value: v.value.map((x) => downgrade(x, nested, nested)) };
    case 'map': {
      const flat: RespValue[] = [];
      for (const [k, x] of v.value) flat.push(downgrade(k, nested, nested), downgrade(x, nested, nested));
      return { type: 'array', value: flat };
    }
  }
}

function stripAttributes<V extends RespValue>(v: V): V {
  const copy = { ...v };
  delete copy.attributes;
  return copy;
}

// ---------------------------------------------------------------------------
// RESP2 -> RESP3 needs to know what the command returns (a flat array may be
// a map, a bulk string a double): the caller passes the shape. Nulls always
// become RESP3 nulls.

export type Resp3Shape =
  /** Leave as is (nulls become "_"). */
  | 'plain'
  /** Integer 0/1 -> boolean. */
  | 'boolean'
  /** Bulk string holding a number -> double. */
  | 'double'
  /** Bulk string -> verbatim string with format "txt". */
  | 'verbatim'
  /** Array -> set (elements plain). */
  | 'set'
  /** Flat array k1 v1 k2 v2 -> map, keys and values converted with the given shapes. */
  | { map: Resp3Shape; keys?: Resp3Shape }
  /** Array whose elements all have the given shape. */
  | { array: Resp3Shape }
  /** Flat array a1 b1 a2 b2 -> array of [a, b] pairs (e.g. ZRANGE WITHSCORES: {pairs: ['plain', 'double']}). */
  | { pairs: [Resp3Shape, Resp3Shape] };

export function toResp3(v: RespValue, shape: Resp3Shape = 'plain'): RespValue {
  if (v.type === 'null') return { type: 'null', kind: 'null' };
  if (typeof shape === 'string') {
    switch (shape) {
      case 'boolean':
        if (v.type === 'integer') return { type: 'boolean', value: v.value !== 0 && v.value !== 0n };
        break;
      case 'double':
        if (v.type === 'bulk') {
          const text = v.value.toString('latin1');
          return { type: 'double', value: parseDoubleText(text), text };
        }
        break;
      case 'verbatim':
        if (v.type === 'bulk') return { type: 'verbatim', format: 'txt', value: v.value };
        break;
      case 'set':
        if (v.type === 'array') return { type: 'set', value: v.value.map((x) => toResp3(x)) };
        break;
      case 'plain':
        if (v.type === 'array') return { type: 'array', value: v.value.map((x) => toResp3(x)) };
        break;
    }
    return v;
  }
  if (v.type !== 'array') return v;
  if ('map' in shape) {
    if (v.value.length % 2 !== 0) throw bad('odd number of elements for a map');
    const pairs: RespPairs = [];
    for (let i = 0; i < v.value.length; i += 2) {
      pairs.push([toResp3(v.value[i], shape.keys ?? 'plain'), toResp3(v.value[i + 1], shape.map)]);
    }
    return { type: 'map', value: pairs };
  }
  if ('array' in shape) return { type: 'array', value: v.value.map((x) => toResp3(x, shape.array)) };
  if (v.value.length % 2 !== 0) throw bad('odd number of elements for pairs');
  const out: RespValue[] = [];
  for (let i = 0; i < v.value.length; i += 2) {
    out.push({ type: 'array', value: [toResp3(v.value[i], shape.pairs[0]), toResp3(v.value[i + 1], shape.pairs[1])] });
  }
  return { type: 'array', value: out };
}

// ---------------------------------------------------------------------------
// Merging aggregate replies at the byte level (KEYS, SCAN, MGET across
// shards) needs only the header.

export interface AggregateHeader {
  /** RespType byte of the aggregate. */
  type: number;
  /** Elements (pairs count twice for maps); -1 for "*-1" or streamed. */
  count: number;
  /** Offset of the first element, just after the header's CRLF. */
  bodyStart: number;
}

/** Read the header of the aggregate reply at buf[start]; null when it is not an aggregate. */
export function readAggregateHeader(buf: Buffer, start = 0): AggregateHeader | null {
  const t = buf[start];
  if (t !== RespType.Array && t !== RespType.Set && t !== RespType.Map && t !== RespType.Push) return null;
  const cr = buf.indexOf(13, start);
  if (cr < 0) return null;
  const streamed = cr === start + 2 && buf[start + 1] === 63;
  const n = streamed ? -1 : parseRespInteger(buf, start + 1, cr);
  if (Number.isNaN(n)) return null;
  return { type: t, count: t === RespType.Map && n > 0 ? 2 * n : n, bodyStart: cr + 2 };
}
