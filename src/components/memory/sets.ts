/**
 * Set commands (redis' t_set.c). A set is deleted with its last member.
 * SMEMBERS, SINTER, SUNION, SDIFF and SPOP with a count answer a RESP3 set;
 * SRANDMEMBER with a count answers an array (it may repeat members).
 */
import type { RespCommand } from '../../protocols/redis/request-decoder';
import type { RespWriter } from '../../protocols/redis/resp-writer';
import { E, R, argI64, bulkLatin1, emptySet, integer, key, nullBulk, setHeader, type CommandSpec, type Exec } from './exec';
import { globMatch } from './glob';
import { pickDistinct } from './random';
import { parseCursor, parseScanOptions, scanCount, scanDense, scanPattern, writeCursor } from './scan';
import { SetValue } from './values';

/** The set at argument i: a SetValue, undefined when absent, null after writing WRONGTYPE. */
function readSet(x: Exec, c: RespCommand, i: number, out: RespWriter): SetValue | undefined | null {
  const v = x.db.get(key(c, i));
  if (v === undefined || v instanceof SetValue) return v;
  out.raw(E.WRONGTYPE);
  return null;
}

function sadd(x: Exec, c: RespCommand, out: RespWriter): void {
  const k = key(c, 1);
  let s = x.db.get(k);
  if (s === undefined) {
    s = new SetValue();
    x.db.add(k, s);
  } else if (!(s instanceof SetValue)) {
    return void out.raw(E.WRONGTYPE);
  }
  let added = 0;
  for (let j = 2; j < c.argc; j++) if (s.add(key(c, j))) added++;
  integer(out, added);
}

function srem(x: Exec, c: RespCommand, out: RespWriter): void {
  const k = key(c, 1);
  const s = readSet(x, c, 1, out);
  if (s === null) return;
  if (s === undefined) return void out.raw(R.ZERO);
  let n = 0;
  for (let j = 2; j < c.argc; j++) {
    if (s.delete(key(c, j))) n++;
    if (s.size === 0) break;
  }
  if (s.size === 0) x.db.delete(k);
  integer(out, n);
}

function writeMembers(x: Exec, out: RespWriter, members: readonly string[]): void {
  setHeader(x, out, members.length);
  for (const m of members) bulkLatin1(out, m);
}

function smembers(x: Exec, c: RespCommand, out: RespWriter): void {
  const s = readSet(x, c, 1, out);
  if (s === null) return;
  if (s === undefined) return emptySet(x, out);
  writeMembers(x, out, s.members);
}

function sismember(x: Exec, c: RespCommand, out: RespWriter): void {
  const s = readSet(x, c, 1, out);
  if (s === null) return;
  out.raw(s !== undefined && s.has(key(c, 2)) ? R.ONE : R.ZERO);
}

function smismember(x: Exec, c: RespCommand, out: RespWriter): void {
  const s = readSet(x, c, 1, out);
  if (s === null) return;
  out.arrayHeader(c.argc - 2);
  for (let j = 2; j < c.argc; j++) out.raw(s !== undefined && s.has(key(c, j)) ? R.ONE : R.ZERO);
}

function scard(x: Exec, c: RespCommand, out: RespWriter): void {
  const s = readSet(x, c, 1, out);
  if (s === null) return;
  integer(out, s === undefined ? 0 : s.size);
}

function spop(x: Exec, c: RespCommand, out: RespWriter): void {
  if (c.argc > 3) return void out.raw(E.SYNTAX);
  const k = key(c, 1);
  if (c.argc === 2) {
    const s = readSet(x, c, 1, out);
    if (s === null) return;
    if (s === undefined) return nullBulk(x, out);
    const slot = Math.floor(Math.random() * s.size);
    bulkLatin1(out, s.members[slot]);
    s.removeAt(slot);
    if (s.size === 0) x.db.delete(k);
    return;
  }
  const n = c.argInteger(2);
  if (n === undefined || n < 0) return void out.raw(E.MUST_BE_POSITIVE);
  const s = readSet(x, c, 1, out);
  if (s === null) return;
  if (s === undefined || n === 0) return emptySet(x, out);
  if (n >= s.size) {
    writeMembers(x, out, s.members);
    x.db.delete(k);
    return;
  }
  const picked = pickDistinct(s.size, n).map((slot) => s.members[slot]);
  writeMembers(x, out, picked);
  for (const m of picked) s.delete(m);
}

function srandmember(x: Exec, c: RespCommand, out: RespWriter): void {
  if (c.argc > 3) return void out.raw(E.SYNTAX);
  if (c.argc === 2) {
    const s = readSet(x, c, 1, out);
    if (s === null) return;
    if (s === undefined) return nullBulk(x, out);
    return bulkLatin1(out, s.members[Math.floor(Math.random() * s.size)]);
  }
  const l = argI64(c, 2);
  if (l === undefined) return void out.raw(E.NOT_INTEGER);
  if (typeof l === 'bigint' && l === -(2n ** 63n)) {
    return void out.error('ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807');
  }
  const s = readSet(x, c, 1, out);
  if (s === null) return;
  const count = Number(l);
  if (s === undefined || count === 0) return void out.raw(R.EMPTY_ARRAY);
  if (count < 0) {
    const n = -count;
    out.arrayHeader(n);
    for (let i = 0; i < n; i++) bulkLatin1(out, s.members[Math.floor(Math.random() * s.size)]);
    return;
  }
  const slots = pickDistinct(s.size, count);
  out.arrayHeader(slots.length);
  for (const slot of slots) bulkLatin1(out, s.members[slot]);
}

/**
 * The sets named from argument `from` on, null for an absent key; every
 * key is type-checked first, as redis does. Returns null after writing
 * WRONGTYPE.
 */
function gatherSets(x: Exec, c: RespCommand, from: number, to: number, out: RespWriter): Array<SetValue | null> | null {
  const sets: Array<SetValue | null> = [];
  for (let j = from; j < to; j++) {
    const s = readSet(x, c, j, out);
    if (s === null) return null;
    sets.push(s ?? null);
  }
  return sets;
}

function intersect(sets: Array<SetValue | null>): string[] {
  if (sets.some((s) => s === null)) return [];
  const live = (sets as SetValue[]).slice().sort((a, b) => a.size - b.size);
  const [first, ...rest] = live;
  const out: string[] = [];
  for (const m of first.members) if (rest.every((s) => s.has(m))) out.push(m);
  return out;
}

function union(sets: Array<SetValue | null>): string[] {
  const seen = new Set<string>();
  for (const s of sets) if (s !== null) for (const m of s.members) seen.add(m);
  return [...seen];
}

function difference(sets: Array<SetValue | null>): string[] {
  const first = sets[0];
  if (first === null) return [];
  const out: string[] = [];
  for (const m of first.members) {
    let keep = true;
    for (let j = 1; j < sets.length && keep; j++) {
      const s = sets[j];
      if (s !== null && s.has(m)) keep = false;
    }
    if (keep) out.push(m);
  }
  return out;
}

type SetOp = (sets: Array<SetValue | null>) => string[];

function setOp(x: Exec, c: RespCommand, out: RespWriter, op: SetOp): void {
  const sets = gatherSets(x, c, 1, c.argc, out);
  if (sets === null) return;
  writeMembers(x, out, op(sets));
}

/** SINTERSTORE, SUNIONSTORE, SDIFFSTORE: the result replaces the destination (and its TTL); empty deletes it. */
function setOpStore(x: Exec, c: RespCommand, out: RespWriter, op: SetOp): void {
  const sets = gatherSets(x, c, 2, c.argc, out);
  if (sets === null) return;
  const result = op(sets);
  const dk = key(c, 1);
  if (result.length === 0) {
    x.db.delete(dk);
    return void out.raw(R.ZERO);
  }
  const s = new SetValue();
  for (const m of result) s.add(m);
  x.db.set(dk, s);
  integer(out, s.size);
}

const sinter = (x: Exec, c: RespCommand, out: RespWriter) => setOp(x, c, out, intersect);
const sunion = (x: Exec, c: RespCommand, out: RespWriter) => setOp(x, c, out, union);
const sdiff = (x: Exec, c: RespCommand, out: RespWriter) => setOp(x, c, out, difference);
const sinterstore = (x: Exec, c: RespCommand, out: RespWriter) => setOpStore(x, c, out, intersect);
const sunionstore = (x: Exec, c: RespCommand, out: RespWriter) => setOpStore(x, c, out, union);
const sdiffstore = (x: Exec, c: RespCommand, out: RespWriter) => setOpStore(x, c, out, difference);

/** SINTERCARD numkeys key [key ...] [LIMIT limit] */
function sintercard(x: Exec, c: RespCommand, out: RespWriter): void {
  const numkeys = c.argInteger(1);
  if (numkeys === undefined || numkeys <= 0) return void out.error('ERR numkeys should be greater than 0');
  if (numkeys > c.argc - 2) return void out.error("ERR Number of keys can't be greater than number of args");
  let limit = 0;
  for (let j = 2 + numkeys; j < c.argc; j++) {
    if (j < c.argc - 1 && c.argEquals(j, 'LIMIT')) {
      const n = c.argInteger(++j);
      if (n === undefined || n < 0) return void out.error("ERR LIMIT can't be negative");
      limit = n;
    } else {
      return void out.raw(E.SYNTAX);
    }
  }
  const sets = gatherSets(x, c, 2, 2 + numkeys, out);
  if (sets === null) return;
  let n = intersect(sets).length;
  if (limit !== 0 && n > limit) n = limit;
  integer(out, n);
}

function smove(x: Exec, c: RespCommand, out: RespWriter): void {
  const sk = key(c, 1);
  const dk = key(c, 2);
  const src = x.db.get(sk);
  const dst = x.db.get(dk);
  if (src === undefined) return void out.raw(R.ZERO);
  if (!(src instanceof SetValue) || (dst !== undefined && !(dst instanceof SetValue))) return void out.raw(E.WRONGTYPE);
  const m = key(c, 3);
  if (src === dst) return void out.raw(src.has(m) ? R.ONE : R.ZERO);
  if (!src.delete(m)) return void out.raw(R.ZERO);
  if (src.size === 0) x.db.delete(sk);
  let d = dst;
  if (d === undefined) {
    d = new SetValue();
    x.db.add(dk, d);
  }
  d.add(m);
  out.raw(R.ONE);
}

function sscan(x: Exec, c: RespCommand, out: RespWriter): void {
  const cursor = parseCursor(c, 2, out);
  if (cursor < 0) return;
  const s = readSet(x, c, 1, out);
  if (s === null) return;
  if (s === undefined) return void out.raw(R.EMPTY_SCAN);
  if (!parseScanOptions(c, 3, false, out)) return;
  const pattern = scanPattern;
  const found: string[] = [];
  const next = scanDense(s, cursor, scanCount, (slot) => {
    const m = s.members[slot];
    if (pattern === null || globMatch(pattern, m)) found.push(m);
  });
  writeCursor(out, next);
  out.arrayHeader(found.length);
  for (const m of found) bulkLatin1(out, m);
}

export const setCommands: ReadonlyArray<[string, CommandSpec]> = [
  ['SADD', { run: sadd, creates: 'first' }],
  ['SREM', { run: srem, creates: 'none' }],
  ['SMEMBERS', { run: smembers, creates: 'none' }],
  ['SISMEMBER', { run: sismember, creates: 'none' }],
  ['SMISMEMBER', { run: smismember, creates: 'none' }],
  ['SCARD', { run: scard, creates: 'none' }],
  ['SPOP', { run: spop, creates: 'none' }],
  ['SRANDMEMBER', { run: srandmember, creates: 'none' }],
  ['SINTER', { run: sinter, creates: 'none' }],
  ['SUNION', { run: sunion, creates: 'none' }],
  ['SDIFF', { run: sdiff, creates: 'none' }],
  ['SINTERSTORE', { run: sinterstore, creates: 'first' }],
  ['SUNIONSTORE', { run: sunionstore, creates: 'first' }],
  ['SDIFFSTORE', { run: sdiffstore, creates: 'first' }],
  ['SINTERCARD', { run: sintercard, creates: 'none' }],
  ['SMOVE', { run: smove, creates: 'second' }],
  ['SSCAN', { run: sscan, creates: 'none' }],
];
