/**
 * Keyspace commands (redis' db.c and expire.c): DEL, EXISTS, TYPE, the
 * EXPIRE family and TTLs, KEYS, SCAN, RENAME, RANDOMKEY, DBSIZE, FLUSHDB,
 * FLUSHALL, TOUCH; plus PING and ECHO.
 */
import type { RespCommand } from '../../protocols/redis/request-decoder';
import type { RespWriter } from '../../protocols/redis/resp-writer';
import type { Database } from './database';
import { E, R, argI64, bulkLatin1, integer, key, nullBulk, type CommandSpec, type Exec } from './exec';
import { globMatch } from './glob';
import { parseCursor, parseScanOptions, scanCount, scanPattern, scanType, writeCursor } from './scan';
import { typeName } from './values';

function del(x: Exec, c: RespCommand, out: RespWriter): void {
  let n = 0;
  for (let j = 1; j < c.argc; j++) if (x.db.delete(key(c, j))) n++;
  integer(out, n);
}

/** EXISTS and TOUCH: a key named twice counts twice. */
function exists(x: Exec, c: RespCommand, out: RespWriter): void {
  let n = 0;
  for (let j = 1; j < c.argc; j++) if (x.db.find(key(c, j)) >= 0) n++;
  integer(out, n);
}

function type(x: Exec, c: RespCommand, out: RespWriter): void {
  const v = x.db.get(key(c, 1));
  out.raw(v === undefined ? R.TYPE.none : R.TYPE[typeName(v)]);
}

/** An error whose text embeds a client's bytes, sent raw as redis sends them (CR/LF made blanks). */
function errorWithArg(out: RespWriter, before: string, c: RespCommand, i: number): void {
  const arg = c.arg(i);
  const nul = arg.indexOf(0);
  const text = Buffer.concat([Buffer.from('-' + before, 'latin1'), nul >= 0 ? arg.subarray(0, nul) : arg]);
  let end = text.length;
  while (end > 1 && (text[end - 1] === 13 || text[end - 1] === 10)) end--;
  const line = Buffer.allocUnsafe(end + 2);
  text.copy(line, 0, 0, end);
  for (let k = 0; k < end; k++) if (line[k] === 13 || line[k] === 10) line[k] = 32;
  line[end] = 13;
  line[end + 1] = 10;
  out.raw(line);
}

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);
const EXP_NX = 1;
const EXP_XX = 2;
const EXP_GT = 4;
const EXP_LT = 8;

/** expireGenericCommand(): EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX | XX | GT | LT. */
function expireGeneric(x: Exec, c: RespCommand, out: RespWriter, relative: boolean, seconds: boolean, name: string): void {
  let flags = 0;
  for (let j = 3; j < c.argc; j++) {
    if (c.argEquals(j, 'NX')) flags |= EXP_NX;
    else if (c.argEquals(j, 'XX')) flags |= EXP_XX;
    else if (c.argEquals(j, 'GT')) flags |= EXP_GT;
    else if (c.argEquals(j, 'LT')) flags |= EXP_LT;
    else return errorWithArg(out, 'ERR Unsupported option ', c, j);
  }
  if (flags & EXP_NX && flags & (EXP_XX | EXP_GT | EXP_LT)) {
    return void out.error('ERR NX and XX, GT or LT options at the same time are not compatible');
  }
  if (flags & EXP_GT && flags & EXP_LT) return void out.error('ERR GT and LT options at the same time are not compatible');
  const v = argI64(c, 2);
  if (v === undefined) return void out.raw(E.NOT_INTEGER);
  const now = Date.now();
  let when: number;
  const fast = typeof v === 'number' ? (seconds ? v * 1000 : v) + (relative ? now : 0) : NaN;
  if (Number.isSafeInteger(fast)) {
    when = fast;
  } else {
    // Overflow checks of redis' signed 64-bit arithmetic.
    let b = BigInt(v);
    if (seconds) {
      if (b > INT64_MAX / 1000n || b < INT64_MIN / 1000n) return void out.error(`ERR invalid expire time in '${name}' command`);
      b *= 1000n;
    }
    const base = relative ? BigInt(now) : 0n;
    if (b > INT64_MAX - base) return void out.error(`ERR invalid expire time in '${name}' command`);
    when = Number(b + base);
  }
  const db = x.db;
  const i = db.find(key(c, 1));
  if (i < 0) return void out.raw(R.ZERO);
  if (flags !== 0) {
    const cur = db.expireAt(i);
    if (flags & EXP_NX && cur !== 0) return void out.raw(R.ZERO);
    if (flags & EXP_XX && cur === 0) return void out.raw(R.ZERO);
    // No expiry counts as infinite: never less than anything, never exceeded.
    if (flags & EXP_GT && (cur === 0 || when <= cur)) return void out.raw(R.ZERO);
    if (flags & EXP_LT && cur !== 0 && when >= cur) return void out.raw(R.ZERO);
  }
  if (when <= now) db.removeAt(i);
  else db.setExpireAt(i, when);
  out.raw(R.ONE);
}

const expire = (x: Exec, c: RespCommand, out: RespWriter) => expireGeneric(x, c, out, true, true, 'expire');
const pexpire = (x: Exec, c: RespCommand, out: RespWriter) => expireGeneric(x, c, out, true, false, 'pexpire');
const expireat = (x: Exec, c: RespCommand, out: RespWriter) => expireGeneric(x, c, out, false, true, 'expireat');
const pexpireat = (x: Exec, c: RespCommand, out: RespWriter) => expireGeneric(x, c, out, false, false, 'pexpireat');

/** TTL (seconds, rounded to nearest) and PTTL: -2 no key, -1 no expiry. */
function ttlGeneric(x: Exec, c: RespCommand, out: RespWriter, ms: boolean): void {
  const db = x.db;
  const i = db.find(key(c, 1));
  if (i < 0) return void out.raw(R.MINUS_TWO);
  const at = db.expireAt(i);
  if (at === 0) return void out.raw(R.MINUS_ONE);
  const left = Math.max(0, at - Date.now());
  integer(out, ms ? left : Math.floor((left + 500) / 1000));
}

const ttl = (x: Exec, c: RespCommand, out: RespWriter) => ttlGeneric(x, c, out, false);
const pttl = (x: Exec, c: RespCommand, out: RespWriter) => ttlGeneric(x, c, out, true);

/** EXPIRETIME, PEXPIRETIME: the absolute expiry. */
function expiretimeGeneric(x: Exec, c: RespCommand, out: RespWriter, ms: boolean): void {
  const db = x.db;
  const i = db.find(key(c, 1));
  if (i < 0) return void out.raw(R.MINUS_TWO);
  const at = db.expireAt(i);
  if (at === 0) return void out.raw(R.MINUS_ONE);
  integer(out, ms ? at : Math.floor(at / 1000));
}

const expiretime = (x: Exec, c: RespCommand, out: RespWriter) => expiretimeGeneric(x, c, out, false);
const pexpiretime = (x: Exec, c: RespCommand, out: RespWriter) => expiretimeGeneric(x, c, out, true);

function persist(x: Exec, c: RespCommand, out: RespWriter): void {
  const db = x.db;
  const i = db.find(key(c, 1));
  out.raw(i >= 0 && db.persistAt(i) ? R.ONE : R.ZERO);
}

function keys(x: Exec, c: RespCommand, out: RespWriter): void {
  const pattern = c.argString(1, 'latin1');
  const all = pattern === '*';
  const found: string[] = [];
  x.db.scan(0, Infinity, (db, slot) => {
    const k = db.keyAt(slot);
    if (all || globMatch(pattern, k)) found.push(k);
  });
  out.arrayHeader(found.length);
  for (const k of found) bulkLatin1(out, k);
}

function scan(x: Exec, c: RespCommand, out: RespWriter): void {
  const cursor = parseCursor(c, 1, out);
  if (cursor < 0) return;
  if (!parseScanOptions(c, 2, true, out)) return;
  const pattern = scanPattern;
  const want = scanType;
  const found: string[] = [];
  const next = x.db.scan(cursor, scanCount, (db: Database, slot: number) => {
    const k = db.keyAt(slot);
    if (pattern !== null && !globMatch(pattern, k)) return;
    if (want !== null && typeName(db.valueAt(slot)) !== want) return;
    found.push(k);
  });
  writeCursor(out, next);
  out.arrayHeader(found.length);
  for (const k of found) bulkLatin1(out, k);
}

/** RENAME and RENAMENX: the value moves with its expiry; the source must exist even when both names are equal. */
function renameGeneric(x: Exec, c: RespCommand, out: RespWriter, nx: boolean): void {
  const db = x.db;
  const src = key(c, 1);
  const dst = key(c, 2);
  const i = db.find(src);
  if (i < 0) return void out.raw(E.NO_SUCH_KEY);
  if (src === dst) return void out.raw(nx ? R.ZERO : R.OK);
  const v = db.valueAt(i);
  const at = db.expireAt(i);
  const j = db.find(dst);
  if (j >= 0) {
    if (nx) return void out.raw(R.ZERO);
    db.removeAt(j);
  }
  // Removing dst may have moved src to another slot: delete by name.
  db.delete(src);
  const k = db.add(dst, v);
  if (at !== 0) db.setExpireAt(k, at);
  out.raw(nx ? R.ONE : R.OK);
}

const rename = (x: Exec, c: RespCommand, out: RespWriter) => renameGeneric(x, c, out, false);
const renamenx = (x: Exec, c: RespCommand, out: RespWriter) => renameGeneric(x, c, out, true);

function randomkey(x: Exec, _c: RespCommand, out: RespWriter): void {
  const slot = x.db.randomSlot();
  if (slot < 0) return nullBulk(x, out);
  bulkLatin1(out, x.db.keyAt(slot));
}

function dbsize(x: Exec, _c: RespCommand, out: RespWriter): void {
  integer(out, x.db.size);
}

/** FLUSHDB / FLUSHALL [SYNC|ASYNC]: both modes free at once here. */
function flushMode(c: RespCommand, out: RespWriter): boolean {
  if (c.argc > 2 || (c.argc === 2 && !c.argEquals(1, 'SYNC') && !c.argEquals(1, 'ASYNC'))) {
    out.raw(E.SYNTAX);
    return false;
  }
  return true;
}

function flushdb(x: Exec, c: RespCommand, out: RespWriter): void {
  if (!flushMode(c, out)) return;
  x.db.clear();
  out.raw(R.OK);
}

function flushall(x: Exec, c: RespCommand, out: RespWriter): void {
  if (!flushMode(c, out)) return;
  x.store.flushAll();
  out.raw(R.OK);
}

function ping(_x: Exec, c: RespCommand, out: RespWriter): void {
  if (c.argc > 2) return void out.error("ERR wrong number of arguments for 'ping' command");
  if (c.argc === 1) out.raw(R.PONG);
  else out.bulk(c.arg(1));
}

function echo(_x: Exec, c: RespCommand, out: RespWriter): void {
  out.bulk(c.arg(1));
}

export const keyCommands: ReadonlyArray<[string, CommandSpec]> = [
  ['DEL', { run: del, creates: 'none' }],
  ['UNLINK', { run: del, creates: 'none' }],
  ['EXISTS', { run: exists, creates: 'none' }],
  ['TOUCH', { run: exists, creates: 'none' }],
  ['TYPE', { run: type, creates: 'none' }],
  ['EXPIRE', { run: expire, creates: 'none' }],
  ['PEXPIRE', { run: pexpire, creates: 'none' }],
  ['EXPIREAT', { run: expireat, creates: 'none' }],
  ['PEXPIREAT', { run: pexpireat, creates: 'none' }],
  ['TTL', { run: ttl, creates: 'none' }],
  ['PTTL', { run: pttl, creates: 'none' }],
  ['EXPIRETIME', { run: expiretime, creates: 'none' }],
  ['PEXPIRETIME', { run: pexpiretime, creates: 'none' }],
  ['PERSIST', { run: persist, creates: 'none' }],
  ['KEYS', { run: keys, creates: 'none' }],
  ['SCAN', { run: scan, creates: 'none' }],
  ['RENAME', { run: rename, creates: 'none' }],
  ['RENAMENX', { run: renamenx, creates: 'none' }],
  ['RANDOMKEY', { run: randomkey, creates: 'none' }],
  ['DBSIZE', { run: dbsize, creates: 'none' }],
  ['FLUSHDB', { run: flushdb, creates: 'none' }],
  ['FLUSHALL', { run: flushall, creates: 'none' }],
  ['PING', { run: ping, creates: 'none' }],
  ['ECHO', { run: echo, creates: 'none' }],
];
