/**
 * Uppercased command names without allocating per request: names are
 * hashed case-insensitively over the raw bytes and interned in a small
 * open-addressing table, so "get", "GET" and "Get" all return the same
 * string object. Only ASCII a-z are folded (redis compares names with
 * strcasecmp in the C locale; String#toUpperCase would also change bytes
 * over 0x7f). Unknown names fill the table up to a bound, then are built on
 * every call, so hostile clients cannot grow it.
 */

const SLOTS = 2048;
const MASK = SLOTS - 1;
const MAX_ENTRIES = 1024;
const MAX_INTERNED_LENGTH = 40;

const keys: Array<Buffer | undefined> = new Array<Buffer | undefined>(SLOTS).fill(undefined);
const names: string[] = new Array<string>(SLOTS).fill('');
let entries = 0;
const scratch = Buffer.allocUnsafe(MAX_INTERNED_LENGTH);

/** ASCII-uppercase b[s, e) as a latin1 string (one char per byte). */
export function upperAscii(b: Buffer, s: number, e: number): string {
  const n = e - s;
  const out = n <= MAX_INTERNED_LENGTH ? scratch : Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) {
    const c = b[s + i];
    out[i] = c >= 97 && c <= 122 ? c - 32 : c;
  }
  return out.toString('latin1', 0, n);
}

/** The interned ASCII-uppercase form of the name in b[s, e). */
export function commandName(b: Buffer, s: number, e: number): string {
  const n = e - s;
  if (n > MAX_INTERNED_LENGTH || n === 0) return upperAscii(b, s, e);
  let h = 0x811c9dc5;
  for (let i = s; i < e; i++) {
    let c = b[i];
    if (c >= 97 && c <= 122) c -= 32;
    h = Math.imul(h ^ c, 0x01000193);
  }
  let slot = (h ^ (h >>> 15)) & MASK;
  for (;;) {
    const k = keys[slot];
    if (k === undefined) break;
    if (k.length === n && sameFolded(k, b, s, n)) return names[slot];
    slot = (slot + 1) & MASK;
  }
  const name = upperAscii(b, s, e);
  if (entries < MAX_ENTRIES) {
    keys[slot] = Buffer.from(name, 'latin1');
    names[slot] = name;
    entries++;
  }
  return name;
}

/** `upper` holds uppercase bytes; b[s, s+n) is compared ASCII-case-insensitively. */
function sameFolded(upper: Buffer, b: Buffer, s: number, n: number): boolean {
  for (let i = 0; i < n; i++) {
    let c = b[s + i];
    if (c >= 97 && c <= 122) c -= 32;
    if (c !== upper[i]) return false;
  }
  return true;
}

/** Pre-intern known names (e.g. the command table) so first use costs nothing. */
export function internCommandNames(list: Iterable<string>): void {
  for (const name of list) {
    const b = Buffer.from(name, 'latin1');
    commandName(b, 0, b.length);
  }
}
