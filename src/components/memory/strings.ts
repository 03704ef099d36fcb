/**
 * String commands. Semantics and the order of checks follow redis 7.0's
 * t_string.c (which error wins when several apply), verified against the
 * real server by the differential test.
 */
import type { RespCommand } from '../../protocols/redis/request-decoder';
import type { RespWriter } from '../../protocols/redis/resp-writer';
import {
  E,
  R,
  MAX_STRING_LENGTH,
  addI64,
  argI64,
  copyArg,
  integer,
  integerBuffer,
  key,
  nullBulk,
  parseI64,
  type CommandSpec,
  type Exec,
} from './exec';
import { addLongDouble, formatLongDouble, parseLongDouble, LD_INFINITY } from './long-double';

// Option flags of SET and GETEX (parseExtendedStringArgumentsOrReply).
const NX = 1;
const XX = 2;
const GET = 4;
const KEEPTTL = 8;
const EX = 16;
const PX = 32;
const EXAT = 64;
const PXAT = 128;
const PERSIST = 256;

/** Results of parseOptions(), kept in module scope so parsing allocates nothing. */
let optFlags = 0;
let optExpireArg = -1;

/**
 * SET's options from argument `from` on (GETEX's when !isSet). redis accepts
 * a repeated option (the last value wins) but not a conflicting one.
 */
function parseOptions(c: RespCommand, from: number, isSet: boolean, out: RespWriter): boolean {
  let f = 0;
  let exp = -1;
  for (let j = from; j < c.argc; j++) {
    const more = j < c.argc - 1;
    if (isSet && !(f & XX) && c.argEquals(j, 'NX')) f |= NX;
    else if (isSet && !(f & NX) && c.argEquals(j, 'XX')) f |= XX;
    else if (isSet && c.argEquals(j, 'GET')) f |= GET;
    else if (isSet && !(f & (PERSIST | EX | EXAT | PX | PXAT)) && c.argEquals(j, 'KEEPTTL')) f |= KEEPTTL;
    else if (!isSet && !(f & (EX | EXAT | PX | PXAT | KEEPTTL)) && c.argEquals(j, 'PERSIST')) f |= PERSIST;
    else if (more && !(f & (KEEPTTL | PERSIST | EXAT | PX | PXAT)) && c.argEquals(j, 'EX')) {
      f |= EX;
      exp = ++j;
    } else if (more && !(f & (KEEPTTL | PERSIST | EX | EXAT | PXAT)) && c.argEquals(j, 'PX')) {
      f |= PX;
      exp = ++j;
    } else if (more && !(f & (KEEPTTL | PERSIST | EX | PX | PXAT)) && c.argEquals(j, 'EXAT')) {
      f |= EXAT;
      exp = ++j;
    } else if (more && !(f & (KEEPTTL | PERSIST | EX | EXAT | PX)) && c.argEquals(j, 'PXAT')) {
      f |= PXAT;
      exp = ++j;
    } else {
      out.raw(E.SYNTAX);
      return false;
    }
  }
  optFlags = f;
  optExpireArg = exp;
  return true;
}

const INT64_MAX = 2n ** 63n - 1n;

/**
 * The absolute expiry in ms that argument i asks for (getExpireMillisecondsOrReply),
 * or -1 after writing the error. Values must be positive; overflowing
 * int64 is an "invalid expire time".
 */
export function expireArg(c: RespCommand, i: number, seconds: boolean, relative: boolean, name: string, out: RespWriter): number {
  const v = argI64(c, i);
  if (v === undefined) {
    out.raw(E.NOT_INTEGER);
    return -1;
  }
  if (typeof v === 'number') {
    if (v <= 0) {
      out.error(`ERR invalid expire time in '${name}' command`);
      return -1;
    }
    let ms = seconds ? v * 1000 : v;
    if (relative) ms += Date.now();
    if (Number.isSafeInteger(ms)) return ms;
  }
  // Near the int64 limits: check exactly as redis' signed arithmetic would.
  let b = BigInt(v);
  if (b <= 0n || (seconds && b > INT64_MAX / 1000n)) {
    out.error(`ERR invalid expire time in '${name}' command`);
    return -1;
  }
  if (seconds) b *= 1000n;
  if (relative) b += BigInt(Date.now());
  if (b > INT64_MAX) {
    out.error(`ERR invalid expire time in '${name}' command`);
    return -1;
  }
  // Beyond 2^53 ms (year 287396) the expiry is kept at double precision.
  return Number(b);
}

/** setGenericCommand(): SET, SETNX, SETEX, PSETEX. `ok`/`abort` replace +OK / null when given. */
function setGeneric(x: Exec, c: RespCommand, out: RespWriter, f: number, valueArg: number, when: number, ok: Buffer | null, abort: Buffer | null): void {
  const db = x.db;
  const k = key(c, 1);
  let i = db.find(k);
  if (f & GET) {
    if (i >= 0) {
      const old = db.valueAt(i);
      if (!(old instanceof Buffer)) return void out.raw(E.WRONGTYPE);
      out.bulk(old);
    } else {
      nullBulk(x, out);
    }
  }
  if ((f & NX && i >= 0) || (f & XX && i < 0)) {
    if (!(f & GET)) {
      if (abort !== null) out.raw(abort);
      else nullBulk(x, out);
    }
    return;
  }
  const v = copyArg(c, valueArg);
  if (i >= 0) {
    db.setValueAt(i, v);
    if (!(f & KEEPTTL)) db.persistAt(i);
  } else {
    i = db.add(k, v);
  }
  // A time already past is kept like any other (redis does too): the key is
  // then expired on its next access, and DBSIZE counts it until then.
  if (when > 0) db.setExpireAt(i, when);
  if (!(f & GET)) out.raw(ok ?? R.OK);
}

/** Sets an absolute expiry, deleting the key at once when it is already past (as GETEX does for EXAT/PXAT in the past). */
export function expireOrDelete(x: Exec, slot: number, when: number): void {
  if (when <= Date.now()) x.db.removeAt(slot);
  else x.db.setExpireAt(slot, when);
}

function set(x: Exec, c: RespCommand, out: RespWriter): void {
  if (!parseOptions(c, 3, true, out)) return;
  const f = optFlags;
  let when = 0;
  if (optExpireArg > 0) {
    when = expireArg(c, optExpireArg, (f & (EX | EXAT)) !== 0, (f & (EX | PX)) !== 0, 'set', out);
    if (when < 0) return;
  }
  setGeneric(x, c, out, f, 2, when, null, null);
}

function setnx(x: Exec, c: RespCommand, out: RespWriter): void {
  setGeneric(x, c, out, NX, 2, 0, R.ONE, R.ZERO);
}

function setex(x: Exec, c: RespCommand, out: RespWriter): void {
  const when = expireArg(c, 2, true, true, 'setex', out);
  if (when >= 0) setGeneric(x, c, out, EX, 3, when, null, null);
}

function psetex(x: Exec, c: RespCommand, out: RespWriter): void {
  const when = expireArg(c, 2, false, true, 'psetex', out);
  if (when >= 0) setGeneric(x, c, out, PX, 3, when, null, null);
}

function get(x: Exec, c: RespCommand, out: RespWriter): void {
  const v = x.db.get(key(c, 1));
  if (v === undefined) return nullBulk(x, out);
  if (!(v instanceof Buffer)) return void out.raw(E.WRONGTYPE);
  out.bulk(v);
}

function getset(x: Exec, c: RespCommand, out: RespWriter): void {
  const db = x.db;
  const k = key(c, 1);
  const i = db.find(k);
  if (i >= 0) {
    const old = db.valueAt(i);
    if (!(old instanceof Buffer)) return void out.raw(E.WRONGTYPE);
    out.bulk(old);
    db.setValueAt(i, copyArg(c, 2));
    db.persistAt(i);
  } else {
    nullBulk(x, out);
    db.add(k, copyArg(c, 2));
  }
}

function getdel(x: Exec, c: RespCommand, out: RespWriter): void {
  const db = x.db;
  const i = db.find(key(c, 1));
  if (i < 0) return nullBulk(x, out);
  const v = db.valueAt(i);
  if (!(v instanceof Buffer)) return void out.raw(E.WRONGTYPE);
  out.bulk(v);
  db.removeAt(i);
}

function getex(x: Exec, c: RespCommand, out: RespWriter): void {
  if (!parseOptions(c, 2, false, out)) return;
  const f = optFlags;
  const db = x.db;
  const i = db.find(key(c, 1));
  if (i < 0) return nullBulk(x, out);
  const v = db.valueAt(i);
  if (!(v instanceof Buffer)) return void out.raw(E.WRONGTYPE);
  let when = 0;
  if (optExpireArg > 0) {
    when = expireArg(c, optExpireArg, (f & (EX | EXAT)) !== 0, (f & (EX | PX)) !== 0, 'getex', out);
    if (when < 0) return;
  }
  out.bulk(v);
  if (when > 0) expireOrDelete(x, i, when);
  else if (f & PERSIST) db.persistAt(i);
}

function mget(x: Exec, c: RespCommand, out: RespWriter): void {
  const db = x.db;
  out.arrayHeader(c.argc - 1);
  for (let j = 1; j < c.argc; j++) {
    const v = db.get(key(c, j));
    if (v instanceof Buffer) out.bulk(v);
    else nullBulk(x, out);
  }
}

function mset(x: Exec, c: RespCommand, out: RespWriter): void {
  if (c.argc % 2 === 0) return void out.error("ERR wrong number of arguments for 'mset' command");
  const db = x.db;
  for (let j = 1; j < c.argc; j += 2) db.set(key(c, j), copyArg(c, j + 1));
  out.raw(R.OK);
}

function msetnx(x: Exec, c: RespCommand, out: RespWriter): void {
  if (c.argc % 2 === 0) return void out.error("ERR wrong number of arguments for 'msetnx' command");
  const db = x.db;
  for (let j = 1; j < c.argc; j += 2) {
    if (db.find(key(c, j)) >= 0) return void out.raw(R.ZERO);
  }
  for (let j = 1; j < c.argc; j += 2) db.set(key(c, j), copyArg(c, j + 1));
  out.raw(R.ONE);
}

/** incrDecrCommand(): the key's value must itself be an int64 in string2ll's grammar. */
function incrBy(x: Exec, c: RespCommand, out: RespWriter, by: number | bigint): void {
  const db = x.db;
  const k = key(c, 1);
  const i = db.find(k);
  let old: Buffer | undefined;
  let cur: number | bigint = 0;
  if (i >= 0) {
    const v = db.valueAt(i);
    if (!(v instanceof Buffer)) return void out.raw(E.WRONGTYPE);
    const n = parseI64(v, 0, v.length);
    if (n === undefined) return void out.raw(E.NOT_INTEGER);
    old = v;
    cur = n;
  }
  const r = addI64(cur, by);
  if (r === null) return void out.raw(E.OVERFLOW);
  const b = integerBuffer(r, old);
  if (i >= 0) db.setValueAt(i, b);
  else db.add(k, b);
  integer(out, r);
}

function incr(x: Exec, c: RespCommand, out: RespWriter): void {
  incrBy(x, c, out, 1);
}

function decr(x: Exec, c: RespCommand, out: RespWriter): void {
  incrBy(x, c, out, -1);
}

function incrby(x: Exec, c: RespCommand, out: RespWriter): void {
  const by = argI64(c, 2);
  if (by === undefined) return void out.raw(E.NOT_INTEGER);
  incrBy(x, c, out, by);
}

function decrby(x: Exec, c: RespCommand, out: RespWriter): void {
  const by = argI64(c, 2);
  if (by === undefined) return void out.raw(E.NOT_INTEGER);
  // Negating LLONG_MIN overflows.
  if (typeof by === 'bigint' && by === -(2n ** 63n)) return void out.error('ERR decrement would overflow');
  incrBy(x, c, out, -by);
}

function incrbyfloat(x: Exec, c: RespCommand, out: RespWriter): void {
  const db = x.db;
  const k = key(c, 1);
  const i = db.find(k);
  let cur = parseLongDouble(ZERO_TEXT);
  if (i >= 0) {
    const v = db.valueAt(i);
    if (!(v instanceof Buffer)) return void out.raw(E.WRONGTYPE);
    cur = parseLongDouble(v);
    if (cur === null) return void out.raw(E.NOT_FLOAT);
  }
  const by = parseLongDouble(c.buffer, c.argStart(2), c.argEnd(2));
  if (by === null) return void out.raw(E.NOT_FLOAT);
  if (cur === LD_INFINITY || by === LD_INFINITY || cur === null) return void out.raw(E.NAN_OR_INF);
  const sum = addLongDouble(cur, by);
  if (sum === null) return void out.raw(E.NAN_OR_INF);
  const b = Buffer.from(formatLongDouble(sum), 'latin1');
  if (i >= 0) db.setValueAt(i, b);
  else db.add(k, b);
  out.bulk(b);
}

const ZERO_TEXT = Buffer.from('0');

/** ArrayBuffers this module allocated with spare room, so APPEND/SETRANGE may grow into them in place. */
const growable = new WeakSet<ArrayBufferLike>();

/**
 * `old` lengthened to n bytes (the first old.length bytes kept, the rest
 * undefined). Like an sds, a large string grows with room to spare so a
 * loop of APPENDs costs amortised O(1) per byte, not a full copy each.
 * Only buffers this module allocated whole are grown in place: a pooled
 * Buffer shares its memory with others.
 */
function lengthen(old: Buffer, n: number): Buffer {
  if (old.byteOffset === 0 && growable.has(old.buffer) && old.buffer.byteLength >= n) {
    return Buffer.from(old.buffer, 0, n);
  }
  if (n < 1024) {
    const b = Buffer.allocUnsafe(n);
    old.copy(b);
    return b;
  }
  // Double small strings; grow large ones by a quarter (at least 1 MB), so
  // the copies stay amortised O(1) per byte and the slack stays bounded.
  const cap = Math.min(n < 1024 * 1024 ? n * 2 : n + Math.max(1024 * 1024, n >> 2), MAX_STRING_LENGTH);
  const b = Buffer.allocUnsafeSlow(Math.max(cap, n));
  growable.add(b.buffer);
  old.copy(b);
  return b.subarray(0, n);
}

function append(x: Exec, c: RespCommand, out: RespWriter): void {
  const db = x.db;
  const k = key(c, 1);
  const i = db.find(k);
  if (i < 0) {
    db.add(k, copyArg(c, 2));
    return integer(out, c.argLength(2));
  }
  const v = db.valueAt(i);
  if (!(v instanceof Buffer)) return void out.raw(E.WRONGTYPE);
  const add = c.argLength(2);
  if (v.length + add > MAX_STRING_LENGTH) return void out.raw(E.STRING_TOO_LONG);
  if (add === 0) return integer(out, v.length);
  const b = lengthen(v, v.length + add);
  c.buffer.copy(b, v.length, c.argStart(2), c.argEnd(2));
  db.setValueAt(i, b);
  integer(out, b.length);
}

function strlen(x: Exec, c: RespCommand, out: RespWriter): void {
  const v = x.db.get(key(c, 1));
  if (v === undefined) return void out.raw(R.ZERO);
  if (!(v instanceof Buffer)) return void out.raw(E.WRONGTYPE);
  integer(out, v.length);
}

function getrange(x: Exec, c: RespCommand, out: RespWriter): void {
  let start = c.argInteger(2);
  let end = c.argInteger(3);
  if (start === undefined || end === undefined) return void out.raw(E.NOT_INTEGER);
  const v = x.db.get(key(c, 1));
  if (v === undefined) return void out.raw(R.EMPTY_BULK);
  if (!(v instanceof Buffer)) return void out.raw(E.WRONGTYPE);
  const len = v.length;
  if (start < 0 && end < 0 && start > end) return void out.raw(R.EMPTY_BULK);
  if (start < 0) start = len + start;
  if (end < 0) end = len + end;
  if (start < 0) start = 0;
  if (end < 0) end = 0;
  if (end >= len) end = len - 1;
  if (start > end || len === 0) return void out.raw(R.EMPTY_BULK);
  out.bulk(v.subarray(start, end + 1));
}

function setrange(x: Exec, c: RespCommand, out: RespWriter): void {
  const offset = c.argInteger(2);
  if (offset === undefined) return void out.raw(E.NOT_INTEGER);
  if (offset < 0) return void out.error('ERR offset is out of range');
  const db = x.db;
  const k = key(c, 1);
  const i = db.find(k);
  const add = c.argLength(3);
  if (i < 0) {
    if (add === 0) return void out.raw(R.ZERO);
    if (offset + add > MAX_STRING_LENGTH) return void out.raw(E.STRING_TOO_LONG);
    const b = Buffer.alloc(offset + add);
    c.buffer.copy(b, offset, c.argStart(3), c.argEnd(3));
    db.add(k, b);
    return integer(out, b.length);
  }
  const v = db.valueAt(i);
  if (!(v instanceof Buffer)) return void out.raw(E.WRONGTYPE);
  if (add === 0) return integer(out, v.length);
  if (offset + add > MAX_STRING_LENGTH) return void out.raw(E.STRING_TOO_LONG);
  let b = v;
  if (offset + add > v.length) {
    const oldLen = v.length;
    b = lengthen(v, offset + add);
    if (offset > oldLen) b.fill(0, oldLen, offset);
    db.setValueAt(i, b);
  }
  c.buffer.copy(b, offset, c.argStart(3), c.argEnd(3));
  integer(out, b.length);
}

export const stringCommands: ReadonlyArray<[string, CommandSpec]> = [
  ['GET', { run: get, creates: 'none' }],
  ['SET', { run: set, creates: 'first' }],
  ['SETNX', { run: setnx, creates: 'first' }],
  ['SETEX', { run: setex, creates: 'first' }],
  ['PSETEX', { run: psetex, creates: 'first' }],
  ['GETSET', { run: getset, creates: 'first' }],
  ['GETDEL', { run: getdel, creates: 'none' }],
  ['GETEX', { run: getex, creates: 'none' }],
  ['MGET', { run: mget, creates: 'none' }],
  ['MSET', { run: mset, creates: 'pairs' }],
  ['MSETNX', { run: msetnx, creates: 'pairs' }],
  ['INCR', { run: incr, creates: 'first' }],
  ['DECR', { run: decr, creates: 'first' }],
  ['INCRBY', { run: incrby, creates: 'first' }],
  ['DECRBY', { run: decrby, creates: 'first' }],
  ['INCRBYFLOAT', { run: incrbyfloat, creates: 'first' }],
  ['APPEND', { run: append, creates: 'first' }],
  ['STRLEN', { run: strlen, creates: 'none' }],
  ['GETRANGE', { run: getrange, creates: 'none' }],
  ['SUBSTR', { run: getrange, creates: 'none' }],
  ['SETRANGE', { run: setrange, creates: 'first' }],
];
