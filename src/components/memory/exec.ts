/**
 * What every command handler shares: the execution state of the command
 * being run (one object per component, updated in place, so running a
 * command allocates nothing for its context), redis' error replies encoded
 * once, and reply helpers that pick the RESP2 or RESP3 form.
 */
import type { RespCommand } from '../../protocols/redis/request-decoder';
import type { RespWriter } from '../../protocols/redis/resp-writer';
import { parseRespInteger } from '../../protocols/redis/frame-decoder';
import type { Database } from './database';
import type { MemoryStore } from './store';

export class Exec {
  /** The database the command runs in. */
  db!: Database;
  /** The client's protocol. */
  resp: 2 | 3 = 2;
  constructor(readonly store: MemoryStore) {}
}

export type Handler = (x: Exec, c: RespCommand, out: RespWriter) => void;

/** Which arguments may name keys a command creates; the max_keys check counts the absent ones. */
export type Creates = 'none' | 'first' | 'second' | 'pairs';

export interface CommandSpec {
  readonly run: Handler;
  readonly creates: Creates;
}

const line = (s: string): Buffer => Buffer.from(s + '\r\n', 'latin1');

/** Errors worded exactly as redis 7.0 words them. */
export const E = {
  WRONGTYPE: line('-WRONGTYPE Operation against a key holding the wrong kind of value'),
  NOT_INTEGER: line('-ERR value is not an integer or out of range'),
  NOT_FLOAT: line('-ERR value is not a valid float'),
  SYNTAX: line('-ERR syntax error'),
  NO_SUCH_KEY: line('-ERR no such key'),
  OVERFLOW: line('-ERR increment or decrement would overflow'),
  NAN_OR_INF: line('-ERR increment would produce NaN or Infinity'),
  MUST_BE_POSITIVE: line('-ERR value is out of range, must be positive'),
  INDEX_OUT_OF_RANGE: line('-ERR index out of range'),
  INVALID_CURSOR: line('-ERR invalid cursor'),
  STRING_TOO_LONG: line('-ERR string exceeds maximum allowed size (proto-max-bulk-len)'),
} as const;

/** Replies used often enough to keep encoded. */
export const R = {
  OK: line('+OK'),
  PONG: line('+PONG'),
  ZERO: line(':0'),
  ONE: line(':1'),
  MINUS_ONE: line(':-1'),
  MINUS_TWO: line(':-2'),
  EMPTY_ARRAY: line('*0'),
  EMPTY_SET3: line('~0'),
  EMPTY_BULK: line('$0\r\n'),
  NULL_BULK: line('$-1'),
  NULL_ARRAY: line('*-1'),
  NULL3: line('_'),
  EMPTY_SCAN: line('*2\r\n$1\r\n0\r\n*0'),
  TYPE: {
    string: line('+string'),
    list: line('+list'),
    set: line('+set'),
    hash: line('+hash'),
    none: line('+none'),
  },
} as const;

/** redis' proto-max-bulk-len: the largest string APPEND and SETRANGE may build. */
export const MAX_STRING_LENGTH = 512 * 1024 * 1024;

export function nullBulk(x: Exec, out: RespWriter): void {
  out.raw(x.resp === 3 ? R.NULL3 : R.NULL_BULK);
}

export function nullArray(x: Exec, out: RespWriter): void {
  out.raw(x.resp === 3 ? R.NULL3 : R.NULL_ARRAY);
}

export function emptySet(x: Exec, out: RespWriter): void {
  out.raw(x.resp === 3 ? R.EMPTY_SET3 : R.EMPTY_ARRAY);
}

/** A set reply's header: "~" in RESP3, "*" in RESP2. */
export function setHeader(x: Exec, out: RespWriter, n: number): void {
  if (x.resp === 3) out.setHeader(n);
  else out.arrayHeader(n);
}

/** A map reply's header: "%" n in RESP3, a flat "*" 2n in RESP2. */
export function mapHeader(x: Exec, out: RespWriter, n: number): void {
  if (x.resp === 3) out.mapHeader(n);
  else out.arrayHeader(2 * n);
}

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * A latin1 string (a key, field or member) as a bulk string. RespWriter
 * encodes strings as UTF-8, which equals latin1 only for ASCII; other
 * strings go through a Buffer.
 */
export function bulkLatin1(out: RespWriter, s: string): void {
  out.bulk(NON_ASCII.test(s) ? Buffer.from(s, 'latin1') : s);
}

export function integer(out: RespWriter, n: number | bigint): void {
  if (n === 0) out.raw(R.ZERO);
  else if (n === 1) out.raw(R.ONE);
  else out.integer(n);
}

/** Argument i as a map key: one char per byte. */
export function key(c: RespCommand, i: number): string {
  return c.argString(i, 'latin1');
}

/** A copy of argument i that the store may keep (arguments are views of the socket's buffer). */
export function copyArg(c: RespCommand, i: number): Buffer {
  const n = c.argLength(i);
  const b = Buffer.allocUnsafe(n);
  c.buffer.copy(b, 0, c.argStart(i), c.argEnd(i));
  return b;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * string2ll(): a 64-bit integer as a number while it is exact, a bigint
 * beyond 2^53, or undefined when it is not an integer in redis' grammar.
 */
export function parseI64(b: Buffer, s: number, e: number): number | bigint | undefined {
  const v = parseRespInteger(b, s, e);
  if (Number.isNaN(v)) return undefined;
  if (Number.isSafeInteger(v)) return v;
  return BigInt(b.toString('latin1', s, e));
}

export function argI64(c: RespCommand, i: number): number | bigint | undefined {
  return parseI64(c.buffer, c.argStart(i), c.argEnd(i));
}

/** a + b as int64, or null when redis says "increment or decrement would overflow". */
export function addI64(a: number | bigint, b: number | bigint): number | bigint | null {
  if (typeof a === 'number' && typeof b === 'number') {
    const r = a + b;
    if (Number.isSafeInteger(r)) return r;
  }
  const r = BigInt(a) + BigInt(b);
  if (r < INT64_MIN || r > INT64_MAX) return null;
  const n = Number(r);
  return Number.isSafeInteger(n) ? n : r;
}

/** The decimal text of n as a Buffer the store may keep, reusing `old` when it has the same length. */
export function integerBuffer(n: number | bigint, old: Buffer | undefined): Buffer {
  const text = typeof n === 'number' ? String(n) : n.toString();
  if (old !== undefined && old.length === text.length) {
    old.write(text, 0, 'latin1');
    return old;
  }
  return Buffer.from(text, 'latin1');
}
