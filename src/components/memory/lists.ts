/**
 * List commands (redis' t_list.c), without the blocking variants. A list is
 * deleted with its last element. Index arguments are parsed before or after
 * the key lookup exactly where redis does, since that decides which error a
 * client sees.
 */
import type { RespCommand } from '../../protocols/redis/request-decoder';
import type { RespWriter } from '../../protocols/redis/resp-writer';
import { E, R, argI64, copyArg, integer, key, nullArray, nullBulk, type CommandSpec, type Exec } from './exec';
import { ListValue } from './values';

const INT64_MIN = -(2n ** 63n);

/** The list at argument i: a ListValue, undefined when absent, null after writing WRONGTYPE. */
function readList(x: Exec, c: RespCommand, i: number, out: RespWriter): ListValue | undefined | null {
  const v = x.db.get(key(c, i));
  if (v === undefined || v instanceof ListValue) return v;
  out.raw(E.WRONGTYPE);
  return null;
}

function pushGeneric(x: Exec, c: RespCommand, out: RespWriter, front: boolean, onlyIfExists: boolean): void {
  const k = key(c, 1);
  let l = x.db.get(k);
  if (l === undefined) {
    if (onlyIfExists) return void out.raw(R.ZERO);
    l = new ListValue(c.argc - 2);
    x.db.add(k, l);
  } else if (!(l instanceof ListValue)) {
    return void out.raw(E.WRONGTYPE);
  }
  for (let j = 2; j < c.argc; j++) {
    if (front) l.pushFront(copyArg(c, j));
    else l.pushBack(copyArg(c, j));
  }
  integer(out, l.length);
}

const lpush = (x: Exec, c: RespCommand, out: RespWriter) => pushGeneric(x, c, out, true, false);
const rpush = (x: Exec, c: RespCommand, out: RespWriter) => pushGeneric(x, c, out, false, false);
const lpushx = (x: Exec, c: RespCommand, out: RespWriter) => pushGeneric(x, c, out, true, true);
const rpushx = (x: Exec, c: RespCommand, out: RespWriter) => pushGeneric(x, c, out, false, true);

function popGeneric(x: Exec, c: RespCommand, out: RespWriter, front: boolean, name: string): void {
  if (c.argc > 3) return void out.error(`ERR wrong number of arguments for '${name}' command`);
  const hasCount = c.argc === 3;
  let count = 0;
  if (hasCount) {
    const n = c.argInteger(2);
    if (n === undefined || n < 0) return void out.raw(E.MUST_BE_POSITIVE);
    count = n;
  }
  const k = key(c, 1);
  const l = readList(x, c, 1, out);
  if (l === null) return;
  if (l === undefined) return hasCount ? nullArray(x, out) : nullBulk(x, out);
  if (hasCount && count === 0) return void out.raw(R.EMPTY_ARRAY);
  if (!hasCount) {
    out.bulk((front ? l.popFront() : l.popBack()) as Buffer);
  } else {
    const n = Math.min(count, l.length);
    out.arrayHeader(n);
    for (let i = 0; i < n; i++) out.bulk((front ? l.popFront() : l.popBack()) as Buffer);
  }
  if (l.length === 0) x.db.delete(k);
}

const lpop = (x: Exec, c: RespCommand, out: RespWriter) => popGeneric(x, c, out, true, 'lpop');
const rpop = (x: Exec, c: RespCommand, out: RespWriter) => popGeneric(x, c, out, false, 'rpop');

function llen(x: Exec, c: RespCommand, out: RespWriter): void {
  const l = readList(x, c, 1, out);
  if (l === null) return;
  integer(out, l === undefined ? 0 : l.length);
}

function lrange(x: Exec, c: RespCommand, out: RespWriter): void {
  let start = c.argInteger(2);
  let end = c.argInteger(3);
  if (start === undefined || end === undefined) return void out.raw(E.NOT_INTEGER);
  const l = readList(x, c, 1, out);
  if (l === null) return;
  if (l === undefined) return void out.raw(R.EMPTY_ARRAY);
  const len = l.length;
  if (start < 0) start = len + start;
  if (end < 0) end = len + end;
  if (start < 0) start = 0;
  if (start > end || start >= len) return void out.raw(R.EMPTY_ARRAY);
  if (end >= len) end = len - 1;
  out.arrayHeader(end - start + 1);
  for (let i = start; i <= end; i++) out.bulk(l.at(i));
}

function lindex(x: Exec, c: RespCommand, out: RespWriter): void {
  const l = readList(x, c, 1, out);
  if (l === null) return;
  if (l === undefined) return nullBulk(x, out);
  let i = c.argInteger(2);
  if (i === undefined) return void out.raw(E.NOT_INTEGER);
  if (i < 0) i = l.length + i;
  if (i < 0 || i >= l.length) return nullBulk(x, out);
  out.bulk(l.at(i));
}

function lset(x: Exec, c: RespCommand, out: RespWriter): void {
  const l = readList(x, c, 1, out);
  if (l === null) return;
  if (l === undefined) return void out.raw(E.NO_SUCH_KEY);
  let i = c.argInteger(2);
  if (i === undefined) return void out.raw(E.NOT_INTEGER);
  if (i < 0) i = l.length + i;
  if (i < 0 || i >= l.length) return void out.raw(E.INDEX_OUT_OF_RANGE);
  l.setAt(i, copyArg(c, 3));
  out.raw(R.OK);
}

function lrem(x: Exec, c: RespCommand, out: RespWriter): void {
  const toRemove = c.argInteger(2);
  if (toRemove === undefined) return void out.raw(E.NOT_INTEGER);
  const k = key(c, 1);
  const l = readList(x, c, 1, out);
  if (l === null) return;
  if (l === undefined) return void out.raw(R.ZERO);
  const el = c.arg(3);
  const items = l.toArray();
  const keep = new Array<boolean>(items.length).fill(true);
  const limit = toRemove === 0 ? Infinity : Math.abs(toRemove);
  let removed = 0;
  if (toRemove >= 0) {
    for (let i = 0; i < items.length && removed < limit; i++) {
      if (items[i].equals(el)) {
        keep[i] = false;
        removed++;
      }
    }
  } else {
    for (let i = items.length - 1; i >= 0 && removed < limit; i--) {
      if (items[i].equals(el)) {
        keep[i] = false;
        removed++;
      }
    }
  }
  if (removed > 0) {
    l.replace(items.filter((_, i) => keep[i]));
    if (l.length === 0) x.db.delete(k);
  }
  integer(out, removed);
}

function ltrim(x: Exec, c: RespCommand, out: RespWriter): void {
  let start = c.argInteger(2);
  let end = c.argInteger(3);
  if (start === undefined || end === undefined) return void out.raw(E.NOT_INTEGER);
  const k = key(c, 1);
  const l = readList(x, c, 1, out);
  if (l === null) return;
  if (l === undefined) return void out.raw(R.OK);
  const len = l.length;
  if (start < 0) start = len + start;
  if (end < 0) end = len + end;
  if (start < 0) start = 0;
  let left: number;
  let right: number;
  if (start > end || start >= len) {
    left = len;
    right = 0;
  } else {
    if (end >= len) end = len - 1;
    left = start;
    right = len - end - 1;
  }
  for (let i = 0; i < left; i++) l.popFront();
  for (let i = 0; i < right; i++) l.popBack();
  if (l.length === 0) x.db.delete(k);
  out.raw(R.OK);
}

function linsert(x: Exec, c: RespCommand, out: RespWriter): void {
  let after: boolean;
  if (c.argEquals(2, 'AFTER')) after = true;
  else if (c.argEquals(2, 'BEFORE')) after = false;
  else return void out.raw(E.SYNTAX);
  const l = readList(x, c, 1, out);
  if (l === null) return;
  if (l === undefined) return void out.raw(R.ZERO);
  const pivot = c.arg(3);
  const n = l.length;
  let at = -1;
  for (let i = 0; i < n; i++) {
    if (l.at(i).equals(pivot)) {
      at = i;
      break;
    }
  }
  if (at < 0) return void out.raw(R.MINUS_ONE);
  const v = copyArg(c, 4);
  const pos = after ? at + 1 : at;
  if (pos === 0) l.pushFront(v);
  else if (pos === n) l.pushBack(v);
  else {
    const items = l.toArray();
    items.splice(pos, 0, v);
    l.replace(items);
  }
  integer(out, l.length);
}

function lpos(x: Exec, c: RespCommand, out: RespWriter): void {
  let rank = 1;
  let count = -1;
  let maxlen = 0;
  for (let j = 3; j < c.argc; j++) {
    const more = j < c.argc - 1;
    if (more && c.argEquals(j, 'RANK')) {
      const r = argI64(c, ++j);
      if (r === undefined) return void out.raw(E.NOT_INTEGER);
      if (r === 0) {
        return void out.error(
          "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
        );
      }
      // redis negates LLONG_MIN in C, which leaves it negative: in effect
      // the first match from the tail.
      rank = r === INT64_MIN ? -1 : Number(r);
    } else if (more && c.argEquals(j, 'COUNT')) {
      const n = c.argInteger(++j);
      if (n === undefined || n < 0) return void out.error("ERR COUNT can't be negative");
      count = n;
    } else if (more && c.argEquals(j, 'MAXLEN')) {
      const n = c.argInteger(++j);
      if (n === undefined || n < 0) return void out.error("ERR MAXLEN can't be negative");
      maxlen = n;
    } else {
      return void out.raw(E.SYNTAX);
    }
  }
  const fromTail = rank < 0;
  if (fromTail) rank = -rank;
  const l = readList(x, c, 1, out);
  if (l === null) return;
  if (l === undefined) {
    if (count !== -1) return void out.raw(R.EMPTY_ARRAY);
    return nullBulk(x, out);
  }
  const el = c.arg(2);
  const len = l.length;
  const found: number[] = [];
  let matches = 0;
  for (let n = 0; n < len && (maxlen === 0 || n < maxlen); n++) {
    const i = fromTail ? len - 1 - n : n;
    if (!l.at(i).equals(el)) continue;
    matches++;
    if (matches < rank) continue;
    found.push(i);
    if (count === -1 || (count !== 0 && found.length >= count)) break;
  }
  if (count === -1) {
    if (found.length === 0) return nullBulk(x, out);
    return integer(out, found[0]);
  }
  out.arrayHeader(found.length);
  for (const i of found) integer(out, i);
}

/** LMOVE and RPOPLPUSH: source and destination may be the same list (a rotation). */
function moveGeneric(x: Exec, c: RespCommand, out: RespWriter, fromLeft: boolean, toLeft: boolean): void {
  const src = key(c, 1);
  const l = readList(x, c, 1, out);
  if (l === null) return;
  if (l === undefined) return nullBulk(x, out);
  const dk = key(c, 2);
  let d = x.db.get(dk);
  if (d !== undefined && !(d instanceof ListValue)) return void out.raw(E.WRONGTYPE);
  const v = (fromLeft ? l.popFront() : l.popBack()) as Buffer;
  if (d === undefined) {
    d = new ListValue();
    x.db.add(dk, d);
  }
  if (toLeft) d.pushFront(v);
  else d.pushBack(v);
  if (l.length === 0) x.db.delete(src);
  out.bulk(v);
}

function lmove(x: Exec, c: RespCommand, out: RespWriter): void {
  const from = direction(c, 3);
  const to = direction(c, 4);
  if (from === null || to === null) return void out.raw(E.SYNTAX);
  moveGeneric(x, c, out, from, to);
}

/** LEFT -> true, RIGHT -> false, else null. */
function direction(c: RespCommand, i: number): boolean | null {
  if (c.argEquals(i, 'LEFT')) return true;
  if (c.argEquals(i, 'RIGHT')) return false;
  return null;
}

const rpoplpush = (x: Exec, c: RespCommand, out: RespWriter) => moveGeneric(x, c, out, false, true);

export const listCommands: ReadonlyArray<[string, CommandSpec]> = [
  ['LPUSH', { run: lpush, creates: 'first' }],
  ['RPUSH', { run: rpush, creates: 'first' }],
  ['LPUSHX', { run: lpushx, creates: 'none' }],
  ['RPUSHX', { run: rpushx, creates: 'none' }],
  ['LPOP', { run: lpop, creates: 'none' }],
  ['RPOP', { run: rpop, creates: 'none' }],
  ['LLEN', { run: llen, creates: 'none' }],
  ['LRANGE', { run: lrange, creates: 'none' }],
  ['LINDEX', { run: lindex, creates: 'none' }],
  ['LSET', { run: lset, creates: 'none' }],
  ['LREM', { run: lrem, creates: 'none' }],
  ['LTRIM', { run: ltrim, creates: 'none' }],
  ['LINSERT', { run: linsert, creates: 'none' }],
  ['LPOS', { run: lpos, creates: 'none' }],
  ['LMOVE', { run: lmove, creates: 'second' }],
  ['RPOPLPUSH', { run: rpoplpush, creates: 'second' }],
];
