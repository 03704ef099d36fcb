/**
 * The SCAN family's shared parts: cursor and option parsing with redis'
 * rules, and the dense-slot walk (see values.ts for why walking slots from
 * the top down keeps SCAN's guarantee without server-side cursor state).
 *
 * Reply: *2, the next cursor as a bulk string ("0" when done), then an
 * array of elements (HSCAN: field, value, field, value ...).
 */
import type { RespCommand } from '../../protocols/redis/request-decoder';
import type { RespWriter } from '../../protocols/redis/resp-writer';
import { E } from './exec';
import type { DenseSet } from './values';

/** Option results, in module scope so parsing allocates nothing. */
export let scanCount = 10;
export let scanPattern: string | null = null;
export let scanType: string | null = null;

const ULONG_MAX_TEXT = '18446744073709551615';

/**
 * The cursor argument as strtoul() reads it (parseScanCursorOrReply): an
 * optional sign, decimal digits, nothing else; an empty string is 0 and a
 * negative number wraps (any value past the top just starts from the top
 * here). Returns -1 after writing "invalid cursor".
 */
export function parseCursor(c: RespCommand, i: number, out: RespWriter): number {
  const b = c.buffer;
  const s = c.argStart(i);
  let e = c.argEnd(i);
  // strtoul reads a C string: it ends at a NUL.
  for (let k = s; k < e; k++) {
    if (b[k] === 0) {
      e = k;
      break;
    }
  }
  if (s === e) return 0;
  let p = s;
  const first = b[p];
  if (first === 32 || (first >= 9 && first <= 13)) return invalid(out);
  let neg = false;
  if (first === 43 || first === 45) {
    neg = first === 45;
    p++;
  }
  if (p === e) return invalid(out);
  let v = 0;
  const d0 = p;
  while (p < e && b[p] >= 48 && b[p] <= 57) v = v * 10 + (b[p++] - 48);
  if (p === d0 || p !== e) return invalid(out);
  const text = b.toString('latin1', d0, e).replace(/^0+(?=\d)/, '');
  if (text.length > ULONG_MAX_TEXT.length || (text.length === ULONG_MAX_TEXT.length && text > ULONG_MAX_TEXT)) return invalid(out);
  if (neg && v !== 0) return Number.MAX_SAFE_INTEGER;
  return v;
}

function invalid(out: RespWriter): number {
  out.raw(E.INVALID_CURSOR);
  return -1;
}

/** COUNT, MATCH and (for SCAN only) TYPE from argument `from` on. False after writing the error. */
export function parseScanOptions(c: RespCommand, from: number, allowType: boolean, out: RespWriter): boolean {
  scanCount = 10;
  scanPattern = null;
  scanType = null;
  for (let i = from; i < c.argc; ) {
    const more = c.argc - i >= 2;
    if (more && c.argEquals(i, 'COUNT')) {
      const n = c.argInteger(i + 1);
      if (n === undefined) {
        out.raw(E.NOT_INTEGER);
        return false;
      }
      if (n < 1) {
        out.raw(E.SYNTAX);
        return false;
      }
      scanCount = n;
      i += 2;
    } else if (more && c.argEquals(i, 'MATCH')) {
      const p = c.argString(i + 1, 'latin1');
      // "*" matches everything: skip matching.
      scanPattern = p === '*' ? null : p;
      i += 2;
    } else if (more && allowType && c.argEquals(i, 'TYPE')) {
      scanType = c.argString(i + 1, 'latin1').toLowerCase();
      i += 2;
    } else {
      out.raw(E.SYNTAX);
      return false;
    }
  }
  return true;
}

/** The encoded cursor for the reply. */
export function writeCursor(out: RespWriter, cursor: number): void {
  out.arrayHeader(2);
  out.bulk(cursor === 0 ? '0' : String(cursor));
}

/**
 * One step over a dense set or hash: up to `count` slots from `cursor`
 * down, calling `visit` with each slot.
 * Returns the next cursor.
 */
export function scanDense(set: DenseSet, cursor: number, count: number, visit: (slot: number) => void): number {
  let i = cursor === 0 ? set.size - 1 : Math.min(cursor - 1, set.size - 1);
  for (let n = 0; n < count && i >= 0; n++, i--) visit(i);
  return i < 0 ? 0 : i + 1;
}
