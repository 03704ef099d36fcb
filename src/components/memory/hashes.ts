/**
 * Hash commands (redis' t_hash.c). A hash is deleted with its last field.
 * HGETALL is a map in RESP3; HRANDFIELD ... WITHVALUES gives [field, value]
 * pairs in RESP3 and a flat array in RESP2, as redis 7.0 does.
 */
import type { RespCommand } from '../../protocols/redis/request-decoder';
import type { RespWriter } from '../../protocols/redis/resp-writer';
import {
  E,
  R,
  addI64,
  argI64,
  bulkLatin1,
  copyArg,
  integer,
  integerBuffer,
  key,
  mapHeader,
  nullBulk,
  parseI64,
  type CommandSpec,
  type Exec,
} from './exec';
import { globMatch } from './glob';
import { addLongDouble, formatLongDouble, parseLongDouble, LD_INFINITY } from './long-double';
import { pickDistinct } from './random';
import { parseCursor, parseScanOptions, scanCount, scanDense, scanPattern, writeCursor } from './scan';
import { HashValue } from './values';

/** The hash at key i: a HashValue, undefined when absent, null after writing WRONGTYPE. */
function readHash(x: Exec, c: RespCommand, i: number, out: RespWriter): HashValue | undefined | null {
  const v = x.db.get(key(c, i));
  if (v === undefined || v instanceof HashValue) return v;
  out.raw(E.WRONGTYPE);
  return null;
}

/** The hash at key 1, created when absent; null after writing WRONGTYPE. */
function writeHash(x: Exec, c: RespCommand, out: RespWriter): HashValue | null {
  const k = key(c, 1);
  const v = x.db.get(k);
  if (v instanceof HashValue) return v;
  if (v !== undefined) {
    out.raw(E.WRONGTYPE);
    return null;
  }
  const h = new HashValue();
  x.db.add(k, h);
  return h;
}

function hsetGeneric(x: Exec, c: RespCommand, out: RespWriter, name: string): HashValue | null {
  if (c.argc % 2 === 1) {
    out.error(`ERR wrong number of arguments for '${name}' command`);
    return null;
  }
  return writeHash(x, c, out);
}

function hset(x: Exec, c: RespCommand, out: RespWriter): void {
  const h = hsetGeneric(x, c, out, 'hset');
  if (h === null) return;
  let added = 0;
  for (let j = 2; j < c.argc; j += 2) if (h.set(key(c, j), copyArg(c, j + 1))) added++;
  integer(out, added);
}

function hmset(x: Exec, c: RespCommand, out: RespWriter): void {
  const h = hsetGeneric(x, c, out, 'hmset');
  if (h === null) return;
  for (let j = 2; j < c.argc; j += 2) h.set(key(c, j), copyArg(c, j + 1));
  out.raw(R.OK);
}

function hsetnx(x: Exec, c: RespCommand, out: RespWriter): void {
  const h = writeHash(x, c, out);
  if (h === null) return;
  const f = key(c, 2);
  if (h.has(f)) return void out.raw(R.ZERO);
  h.set(f, copyArg(c, 3));
  out.raw(R.ONE);
}

function hget(x: Exec, c: RespCommand, out: RespWriter): void {
  const h = readHash(x, c, 1, out);
  if (h === null) return;
  const v = h?.get(key(c, 2));
  if (v === undefined) return nullBulk(x, out);
  out.bulk(v);
}

function hmget(x: Exec, c: RespCommand, out: RespWriter): void {
  const h = readHash(x, c, 1, out);
  if (h === null) return;
  out.arrayHeader(c.argc - 2);
  for (let j = 2; j < c.argc; j++) {
    const v = h?.get(key(c, j));
    if (v === undefined) nullBulk(x, out);
    else out.bulk(v);
  }
}

function hdel(x: Exec, c: RespCommand, out: RespWriter): void {
  const k = key(c, 1);
  const h = readHash(x, c, 1, out);
  if (h === null) return;
  if (h === undefined) return void out.raw(R.ZERO);
  let n = 0;
  for (let j = 2; j < c.argc; j++) {
    if (h.delete(key(c, j))) n++;
    if (h.size === 0) break;
  }
  if (h.size === 0) x.db.delete(k);
  integer(out, n);
}

function hexists(x: Exec, c: RespCommand, out: RespWriter): void {
  const h = readHash(x, c, 1, out);
  if (h === null) return;
  out.raw(h !== undefined && h.has(key(c, 2)) ? R.ONE : R.ZERO);
}

function hlen(x: Exec, c: RespCommand, out: RespWriter): void {
  const h = readHash(x, c, 1, out);
  if (h === null) return;
  integer(out, h === undefined ? 0 : h.size);
}

function hstrlen(x: Exec, c: RespCommand, out: RespWriter): void {
  const h = readHash(x, c, 1, out);
  if (h === null) return;
  integer(out, h?.get(key(c, 2))?.length ?? 0);
}

function hkeys(x: Exec, c: RespCommand, out: RespWriter): void {
  const h = readHash(x, c, 1, out);
  if (h === null) return;
  if (h === undefined) return void out.raw(R.EMPTY_ARRAY);
  out.arrayHeader(h.size);
  for (const f of h.members) bulkLatin1(out, f);
}

function hvals(x: Exec, c: RespCommand, out: RespWriter): void {
  const h = readHash(x, c, 1, out);
  if (h === null) return;
  if (h === undefined) return void out.raw(R.EMPTY_ARRAY);
  out.arrayHeader(h.size);
  for (const v of h.values) out.bulk(v);
}

function hgetall(x: Exec, c: RespCommand, out: RespWriter): void {
  const h = readHash(x, c, 1, out);
  if (h === null) return;
  const n = h === undefined ? 0 : h.size;
  mapHeader(x, out, n);
  for (let i = 0; i < n; i++) {
    bulkLatin1(out, h!.members[i]);
    out.bulk(h!.values[i]);
  }
}

function hincrby(x: Exec, c: RespCommand, out: RespWriter): void {
  const by = argI64(c, 3);
  if (by === undefined) return void out.raw(E.NOT_INTEGER);
  const h = writeHash(x, c, out);
  if (h === null) return;
  const f = key(c, 2);
  const old = h.get(f);
  let cur: number | bigint = 0;
  if (old !== undefined) {
    const n = parseI64(old, 0, old.length);
    if (n === undefined) return void out.error('ERR hash value is not an integer');
    cur = n;
  }
  const r = addI64(cur, by);
  if (r === null) return void out.raw(E.OVERFLOW);
  h.set(f, integerBuffer(r, old));
  integer(out, r);
}

const ZERO = parseLongDouble(Buffer.from('0'));

function hincrbyfloat(x: Exec, c: RespCommand, out: RespWriter): void {
  const by = parseLongDouble(c.buffer, c.argStart(3), c.argEnd(3));
  if (by === null) return void out.raw(E.NOT_FLOAT);
  if (by === LD_INFINITY) return void out.error('ERR value is NaN or Infinity');
  const h = writeHash(x, c, out);
  if (h === null) return;
  const f = key(c, 2);
  const old = h.get(f);
  let cur = ZERO;
  if (old !== undefined) {
    cur = parseLongDouble(old);
    if (cur === null) return void out.error('ERR hash value is not a float');
  }
  // A field holding "inf" parses; the sum is then infinite.
  if (cur === null || cur === LD_INFINITY) return void out.raw(E.NAN_OR_INF);
  const sum = addLongDouble(cur, by);
  if (sum === null) return void out.raw(E.NAN_OR_INF);
  const b = Buffer.from(formatLongDouble(sum), 'latin1');
  h.set(f, b);
  out.bulk(b);
}

function hscan(x: Exec, c: RespCommand, out: RespWriter): void {
  const cursor = parseCursor(c, 2, out);
  if (cursor < 0) return;
  const h = readHash(x, c, 1, out);
  if (h === null) return;
  if (h === undefined) return void out.raw(R.EMPTY_SCAN);
  if (!parseScanOptions(c, 3, false, out)) return;
  const pattern = scanPattern;
  const found: number[] = [];
  const next = scanDense(h, cursor, scanCount, (slot) => {
    if (pattern === null || globMatch(pattern, h.members[slot])) found.push(slot);
  });
  writeCursor(out, next);
  out.arrayHeader(found.length * 2);
  for (const slot of found) {
    bulkLatin1(out, h.members[slot]);
    out.bulk(h.values[slot]);
  }
}

function hrandfield(x: Exec, c: RespCommand, out: RespWriter): void {
  if (c.argc === 2) {
    const h = readHash(x, c, 1, out);
    if (h === null) return;
    if (h === undefined) return nullBulk(x, out);
    return bulkLatin1(out, h.members[Math.floor(Math.random() * h.size)]);
  }
  const l = argI64(c, 2);
  if (l === undefined) return void out.raw(E.NOT_INTEGER);
  if (typeof l === 'bigint' && l === -(2n ** 63n)) {
    return void out.error('ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807');
  }
  let withValues = false;
  if (c.argc > 4 || (c.argc === 4 && !c.argEquals(3, 'WITHVALUES'))) return void out.raw(E.SYNTAX);
  if (c.argc === 4) {
    withValues = true;
    // redis refuses counts whose doubled reply length would overflow a long.
    if (typeof l === 'bigint' && (l <= -(2n ** 62n) || l >= 2n ** 62n)) return void out.error('ERR value is out of range');
  }
  const h = readHash(x, c, 1, out);
  if (h === null) return;
  if (h === undefined) return void out.raw(R.EMPTY_ARRAY);
  const count = Number(l);
  if (count === 0) return void out.raw(R.EMPTY_ARRAY);
  const pairs = withValues && x.resp === 3;
  const writeSlot = (slot: number): void => {
    if (pairs) out.arrayHeader(2);
    bulkLatin1(out, h.members[slot]);
    if (withValues) out.bulk(h.values[slot]);
  };
  if (count < 0) {
    // Negative: |count| independent draws, repeats allowed.
    const n = -count;
    out.arrayHeader(withValues && !pairs ? n * 2 : n);
    for (let i = 0; i < n; i++) writeSlot(Math.floor(Math.random() * h.size));
    return;
  }
  const slots = pickDistinct(h.size, count);
  out.arrayHeader(withValues && !pairs ? slots.length * 2 : slots.length);
  for (const slot of slots) writeSlot(slot);
}

export const hashCommands: ReadonlyArray<[string, CommandSpec]> = [
  ['HSET', { run: hset, creates: 'first' }],
  ['HMSET', { run: hmset, creates: 'first' }],
  ['HSETNX', { run: hsetnx, creates: 'first' }],
  ['HGET', { run: hget, creates: 'none' }],
  ['HMGET', { run: hmget, creates: 'none' }],
  ['HDEL', { run: hdel, creates: 'none' }],
  ['HEXISTS', { run: hexists, creates: 'none' }],
  ['HLEN', { run: hlen, creates: 'none' }],
  ['HSTRLEN', { run: hstrlen, creates: 'none' }],
  ['HKEYS', { run: hkeys, creates: 'none' }],
  ['HVALS', { run: hvals, creates: 'none' }],
  ['HGETALL', { run: hgetall, creates: 'none' }],
  ['HINCRBY', { run: hincrby, creates: 'first' }],
  ['HINCRBYFLOAT', { run: hincrbyfloat, creates: 'first' }],
  ['HSCAN', { run: hscan, creates: 'none' }],
  ['HRANDFIELD', { run: hrandfield, creates: 'none' }],
];
