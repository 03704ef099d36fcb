/**
 * Key hash functions, bit-for-bit as twemproxy (nutcracker 0.5.0) computes
 * them, so that a key sharded by Portway lands where twemproxy put it.
 *
 * Every function hashes key[start, end) of a byte array in place (the key can
 * stay inside the request buffer) and returns an unsigned 32-bit integer.
 * Arithmetic is 32-bit: Math.imul for products, `| 0` to wrap. Nothing is
 * allocated per call. The hot path (hashFunctionInt32) gets the same 32 bits
 * as a signed int32: V8 boxes a returned number above 2^31 - 1 as a heap
 * number when the call is not inlined, i.e. an allocation per key.
 *
 * Where twemproxy differs from the textbook algorithm, it is on purpose here:
 *
 * - twemproxy reads the key through `const char *`, and several functions
 *   widen a byte with `(uint32_t)key[i]`. On x86 and x86-64 `char` is signed,
 *   so a byte >= 0x80 enters the hash sign-extended (0x80 -> 0xFFFFFF80).
 *   That affects one_at_a_time, fnv1_32, fnv1a_32, fnv1_64, fnv1a_64 and the
 *   3-byte tail of hsieh. On arm64, ppc and s390x `char` is unsigned and
 *   twemproxy built there hashes such keys differently: `CharSignedness`
 *   selects which build to match ('signed', the x86 one, by default).
 * - fnv1_64 and fnv1a_64 return the low 32 bits of the 64-bit hash. Since
 *   the low 32 bits of a product depend only on the low 32 bits of its
 *   factors, that is 32-bit FNV with the 64-bit constants truncated
 *   (offset basis 0x84222325, prime 0x1b3); fnv1a_64 is even written that
 *   way in twemproxy.
 * - crc16 is CRC16/XMODEM, but twemproxy keeps it in a 32-bit variable and
 *   never masks it: the bits shifted out above bit 15 stay, and the returned
 *   value (used as is by ketama and modula) is up to 32 bits wide. Its low 16
 *   bits are the real CRC.
 * - crc32 is libmemcached's: ((~crc32) >> 16) & 0x7fff, i.e. 15 bits.
 *   crc32a is the standard CRC-32 (IEEE, reflected, check 0xCBF43926).
 * - md5 is the first four digest bytes read little-endian.
 * - hsieh is SuperFastHash with an initial hash of 0 (the original starts
 *   from the length).
 * - murmur is MurmurHash2 with seed 0xdeadbeef * length.
 * - jenkins is Bob Jenkins' lookup3 hashlittle() with initval 13.
 */

import { CRC16_XMODEM_TABLE } from './redis-slot';

/** A hash over key[start, end): a 32-bit integer (unsigned, or for hashFunctionInt32 the same bits as int32). */
export type KeyHash = (key: Uint8Array, start: number, end: number) => number;

export type HashName =
  | 'one_at_a_time'
  | 'md5'
  | 'crc16'
  | 'crc32'
  | 'crc32a'
  | 'fnv1_64'
  | 'fnv1a_64'
  | 'fnv1_32'
  | 'fnv1a_32'
  | 'hsieh'
  | 'murmur'
  | 'jenkins';

/** twemproxy's hash names, in its own order. */
export const HASH_NAMES: readonly HashName[] = Object.freeze([
  'one_at_a_time',
  'md5',
  'crc16',
  'crc32',
  'crc32a',
  'fnv1_64',
  'fnv1a_64',
  'fnv1_32',
  'fnv1a_32',
  'hsieh',
  'murmur',
  'jenkins',
]);

/** Whether the twemproxy build to match widened `char` as signed (x86, x86-64: the default) or unsigned (arm64, ppc, s390x). */
export type CharSignedness = 'signed' | 'unsigned';

/*
 * Widening a byte b as C would: `b | (sx & -(b >> 7))` where sx is
 * 0xFFFFFF00 for signed char and 0 for unsigned. Kept as a parameter of the
 * core functions so both variants share one body.
 */
const SX_SIGNED = 0xffffff00 | 0;
const SX_UNSIGNED = 0;

// ---------------------------------------------------------------- one_at_a_time

/** Jenkins' one-at-a-time hash. */
function oneAtATimeCore(key: Uint8Array, start: number, end: number, sx: number): number {
  let h = 0;
  for (let i = start; i < end; i++) {
    const b = key[i]!;
    h = (h + (b | (sx & -(b >> 7)))) | 0;
    h = (h + (h << 10)) | 0;
    h ^= h >>> 6;
  }
  h = (h + (h << 3)) | 0;
  h ^= h >>> 11;
  h = (h + (h << 15)) | 0;
  return h;
}

// ---------------------------------------------------------------- FNV

const FNV32_BASIS = 0x811c9dc5 | 0;
const FNV32_PRIME = 0x01000193;
/** Low 32 bits of the 64-bit FNV offset basis 0xcbf29ce484222325 and prime 0x100000001b3. */
const FNV64_BASIS_LO = 0x84222325 | 0;
const FNV64_PRIME_LO = 0x000001b3;

/** FNV-1: multiply, then XOR the byte. */
function fnv1Core(key: Uint8Array, start: number, end: number, sx: number, basis: number, prime: number): number {
  let h = basis;
  for (let i = start; i < end; i++) {
    const b = key[i]!;
    h = Math.imul(h, prime) ^ (b | (sx & -(b >> 7)));
  }
  return h;
}

/** FNV-1a: XOR the byte, then multiply. */
function fnv1aCore(key: Uint8Array, start: number, end: number, sx: number, basis: number, prime: number): number {
  let h = basis;
  for (let i = start; i < end; i++) {
    const b = key[i]!;
    h = Math.imul(h ^ (b | (sx & -(b >> 7))), prime);
  }
  return h;
}

// ---------------------------------------------------------------- CRC

/** CRC-32 table (reflected polynomial 0xEDB88320). */
const CRC32_TABLE: Int32Array = (() => {
  const t = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

/** twemproxy crc16: CRC16/XMODEM in an unmasked 32-bit register (see the file comment). */
function crc16Core(key: Uint8Array, start: number, end: number): number {
  const t = CRC16_XMODEM_TABLE;
  let crc = 0;
  for (let i = start; i < end; i++) crc = (crc << 8) ^ t[((crc >>> 8) ^ key[i]!) & 0xff]!;
  return crc;
}

/** The standard CRC-32 (twemproxy crc32a), as int32. */
function crc32Core(key: Uint8Array, start: number, end: number): number {
  const t = CRC32_TABLE;
  let crc = -1;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ t[(crc ^ key[i]!) & 0xff]!;
  return ~crc;
}

/** twemproxy crc32 (libmemcached's): bits 16..30 of the standard CRC-32 (always a small positive number). */
export function crc32(key: Uint8Array, start: number, end: number): number {
  return (crc32Core(key, start, end) >>> 16) & 0x7fff;
}

// ---------------------------------------------------------------- MD5 (RFC 1321)

/** K[i] = floor(|sin(i + 1)| * 2^32). */
const MD5_K: Int32Array = (() => {
  const k = new Int32Array(64);
  for (let i = 0; i < 64; i++) k[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 0x100000000) | 0;
  return k;
})();
const MD5_S = new Uint8Array([7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21]);
/** Message word used by step i: i, 5i+1, 3i+5, 7i (mod 16) in rounds 1..4. */
const MD5_G: Uint8Array = (() => {
  const g = new Uint8Array(64);
  for (let i = 0; i < 64; i++) g[i] = (i < 16 ? i : i < 32 ? 5 * i + 1 : i < 48 ? 3 * i + 5 : 7 * i) & 15;
  return g;
})();

/** Scratch shared by md5 calls (synchronous, so one set is enough): message words, state, the padded tail. */
const md5W = new Int32Array(16);
const md5State = new Int32Array(4);
const md5Tail = new Uint8Array(128);

function md5Block(src: Uint8Array, off: number): void {
  const w = md5W;
  for (let j = 0; j < 16; j++, off += 4) w[j] = src[off]! | (src[off + 1]! << 8) | (src[off + 2]! << 16) | (src[off + 3]! << 24);
  let a = md5State[0]!;
  let b = md5State[1]!;
  let c = md5State[2]!;
  let d = md5State[3]!;
  for (let i = 0; i < 64; i++) {
    let f: number;
    if (i < 16) f = (b & c) | (~b & d);
    else if (i < 32) f = (d & b) | (~d & c);
    else if (i < 48) f = b ^ c ^ d;
    else f = c ^ (b | ~d);
    f = (f + a + MD5_K[i]! + w[MD5_G[i]!]!) | 0;
    const s = MD5_S[((i >> 4) << 2) | (i & 3)]!;
    a = d;
    d = c;
    c = b;
    b = (b + ((f << s) | (f >>> (32 - s)))) | 0;
  }
  md5State[0] = (md5State[0]! + a) | 0;
  md5State[1] = (md5State[1]! + b) | 0;
  md5State[2] = (md5State[2]! + c) | 0;
  md5State[3] = (md5State[3]! + d) | 0;
}

/** MD5 of key[start, end) into md5State (the digest is the four words, little-endian). */
function md5Into(key: Uint8Array, start: number, end: number): void {
  md5State[0] = 0x67452301;
  md5State[1] = 0xefcdab89 | 0;
  md5State[2] = 0x98badcfe | 0;
  md5State[3] = 0x10325476;
  const len = end - start;
  let off = start;
  for (; end - off >= 64; off += 64) md5Block(key, off);
  // Tail: the remaining bytes, 0x80, zeros, then the bit length (64-bit little-endian) in one or two blocks.
  const rest = end - off;
  const tail = md5Tail;
  tail.fill(0);
  for (let i = 0; i < rest; i++) tail[i] = key[off + i]!;
  tail[rest] = 0x80;
  const blocks = rest < 56 ? 1 : 2;
  const lo = (len << 3) >>> 0;
  const hi = Math.floor(len / 0x20000000);
  const p = blocks * 64 - 8;
  tail[p] = lo & 0xff;
  tail[p + 1] = (lo >>> 8) & 0xff;
  tail[p + 2] = (lo >>> 16) & 0xff;
  tail[p + 3] = lo >>> 24;
  tail[p + 4] = hi & 0xff;
  tail[p + 5] = (hi >>> 8) & 0xff;
  tail[p + 6] = (hi >>> 16) & 0xff;
  tail[p + 7] = hi >>> 24;
  md5Block(tail, 0);
  if (blocks === 2) md5Block(tail, 64);
}

/** twemproxy md5: digest bytes 0..3 as a little-endian integer (the first MD5 state word). */
function md5Core(key: Uint8Array, start: number, end: number): number {
  md5Into(key, start, end);
  return md5State[0]!;
}

/** The full MD5 digest of key[start, end), written to out[at, at + 16). For tests and ring building. */
export function md5Digest(key: Uint8Array, start: number, end: number, out: Uint8Array, at = 0): void {
  md5Into(key, start, end);
  for (let j = 0; j < 4; j++) {
    const v = md5State[j]!;
    out[at + 4 * j] = v & 0xff;
    out[at + 4 * j + 1] = (v >>> 8) & 0xff;
    out[at + 4 * j + 2] = (v >>> 16) & 0xff;
    out[at + 4 * j + 3] = v >>> 24;
  }
}

// ---------------------------------------------------------------- hsieh (SuperFastHash)

function hsiehCore(key: Uint8Array, start: number, end: number, sx: number): number {
  const len = end - start;
  if (len <= 0) return 0;
  let h = 0;
  let p = start;
  for (let n = len >>> 2; n > 0; n--, p += 4) {
    h = (h + (key[p]! | (key[p + 1]! << 8))) | 0;
    const tmp = ((key[p + 2]! | (key[p + 3]! << 8)) << 11) ^ h;
    h = (h << 16) ^ tmp;
    h = (h + (h >>> 11)) | 0;
  }
  switch (len & 3) {
    case 3: {
      h = (h + (key[p]! | (key[p + 1]! << 8))) | 0;
      h ^= h << 16;
      // The one place hsieh widens a byte through (signed) char.
      const b = key[p + 2]!;
      h ^= (b | (sx & -(b >> 7))) << 18;
      h = (h + (h >>> 11)) | 0;
      break;
    }
    case 2:
      h = (h + (key[p]! | (key[p + 1]! << 8))) | 0;
      h ^= h << 11;
      h = (h + (h >>> 17)) | 0;
      break;
    case 1:
      h = (h + key[p]!) | 0;
      h ^= h << 10;
      h = (h + (h >>> 1)) | 0;
      break;
  }
  // Final avalanche.
  h ^= h << 3;
  h = (h + (h >>> 5)) | 0;
  h ^= h << 4;
  h = (h + (h >>> 17)) | 0;
  h ^= h << 25;
  h = (h + (h >>> 6)) | 0;
  return h;
}

// ---------------------------------------------------------------- murmur (MurmurHash2)

/** MurmurHash2, seeded with 0xdeadbeef * length as twemproxy does; 4-byte blocks read little-endian. */
function murmurCore(key: Uint8Array, start: number, end: number): number {
  const m = 0x5bd1e995;
  const len = end - start;
  let h = Math.imul(0xdeadbeef | 0, len) ^ len;
  let p = start;
  for (; end - p >= 4; p += 4) {
    let k = key[p]! | (key[p + 1]! << 8) | (key[p + 2]! << 16) | (key[p + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  // Tail of 1..3 bytes (a fall-through switch in C).
  const rest = end - p;
  if (rest > 0) {
    if (rest === 3) h ^= key[p + 2]! << 16;
    if (rest >= 2) h ^= key[p + 1]! << 8;
    h ^= key[p]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h;
}

// ---------------------------------------------------------------- jenkins (lookup3 hashlittle)

/**
 * Bob Jenkins' lookup3 hashlittle(): a = b = c = 0xdeadbeef + length +
 * initval; each 12-byte block adds three little-endian words and mixes; the
 * last 1..12 bytes are added the same way (missing bytes count as zero)
 * followed by the final mix; an empty key returns c unmixed. As int32.
 */
function lookup3Core(key: Uint8Array, start: number, end: number, initval: number): number {
  let len = end - start;
  let a = (0xdeadbeef + len + initval) | 0;
  let b = a;
  let c = a;
  let p = start;
  while (len > 12) {
    a = (a + (key[p]! | (key[p + 1]! << 8) | (key[p + 2]! << 16) | (key[p + 3]! << 24))) | 0;
    b = (b + (key[p + 4]! | (key[p + 5]! << 8) | (key[p + 6]! << 16) | (key[p + 7]! << 24))) | 0;
    c = (c + (key[p + 8]! | (key[p + 9]! << 8) | (key[p + 10]! << 16) | (key[p + 11]! << 24))) | 0;
    // mix(a, b, c)
    a = (a - c) | 0; a ^= (c << 4) | (c >>> 28); c = (c + b) | 0;
    b = (b - a) | 0; b ^= (a << 6) | (a >>> 26); a = (a + c) | 0;
    c = (c - b) | 0; c ^= (b << 8) | (b >>> 24); b = (b + a) | 0;
    a = (a - c) | 0; a ^= (c << 16) | (c >>> 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= (a << 19) | (a >>> 13); a = (a + c) | 0;
    c = (c - b) | 0; c ^= (b << 4) | (b >>> 28); b = (b + a) | 0;
    len -= 12;
    p += 12;
  }
  if (len === 0) return c;
  // Last block: byte i of the remaining ones goes to word i >> 2, at bit 8 * (i & 3).
  let wa = 0;
  let wb = 0;
  let wc = 0;
  for (let i = 0; i < len; i++) {
    const v = key[p + i]! << ((i & 3) << 3);
    if (i < 4) wa |= v;
    else if (i < 8) wb |= v;
    else wc |= v;
  }
  a = (a + wa) | 0;
  b = (b + wb) | 0;
  c = (c + wc) | 0;
  // final(a, b, c)
  c ^= b; c = (c - ((b << 14) | (b >>> 18))) | 0;
  a ^= c; a = (a - ((c << 11) | (c >>> 21))) | 0;
  b ^= a; b = (b - ((a << 25) | (a >>> 7))) | 0;
  c ^= b; c = (c - ((b << 16) | (b >>> 16))) | 0;
  a ^= c; a = (a - ((c << 4) | (c >>> 28))) | 0;
  b ^= a; b = (b - ((a << 14) | (a >>> 18))) | 0;
  c ^= b; c = (c - ((b << 24) | (b >>> 8))) | 0;
  return c;
}

// ---------------------------------------------------------------- by name

/** The int32 cores of every hash, as twemproxy built with signed char (x86) computes them. */
const INT32_SIGNED: Readonly<Record<HashName, KeyHash>> = Object.freeze({
  one_at_a_time: (k, s, e) => oneAtATimeCore(k, s, e, SX_SIGNED),
  md5: md5Core,
  crc16: crc16Core,
  crc32,
  crc32a: crc32Core,
  fnv1_64: (k, s, e) => fnv1Core(k, s, e, SX_SIGNED, FNV64_BASIS_LO, FNV64_PRIME_LO),
  fnv1a_64: (k, s, e) => fnv1aCore(k, s, e, SX_SIGNED, FNV64_BASIS_LO, FNV64_PRIME_LO),
  fnv1_32: (k, s, e) => fnv1Core(k, s, e, SX_SIGNED, FNV32_BASIS, FNV32_PRIME),
  fnv1a_32: (k, s, e) => fnv1aCore(k, s, e, SX_SIGNED, FNV32_BASIS, FNV32_PRIME),
  hsieh: (k, s, e) => hsiehCore(k, s, e, SX_SIGNED),
  murmur: murmurCore,
  jenkins: (k, s, e) => lookup3Core(k, s, e, 13),
} satisfies Record<HashName, KeyHash>);

/** The same with unsigned char (arm64, ppc64el, s390x builds): only the byte-widening functions differ. */
const INT32_UNSIGNED: Readonly<Record<HashName, KeyHash>> = Object.freeze({
  ...INT32_SIGNED,
  one_at_a_time: (k, s, e) => oneAtATimeCore(k, s, e, SX_UNSIGNED),
  fnv1_64: (k, s, e) => fnv1Core(k, s, e, SX_UNSIGNED, FNV64_BASIS_LO, FNV64_PRIME_LO),
  fnv1a_64: (k, s, e) => fnv1aCore(k, s, e, SX_UNSIGNED, FNV64_BASIS_LO, FNV64_PRIME_LO),
  fnv1_32: (k, s, e) => fnv1Core(k, s, e, SX_UNSIGNED, FNV32_BASIS, FNV32_PRIME),
  fnv1a_32: (k, s, e) => fnv1aCore(k, s, e, SX_UNSIGNED, FNV32_BASIS, FNV32_PRIME),
  hsieh: (k, s, e) => hsiehCore(k, s, e, SX_UNSIGNED),
} satisfies Record<HashName, KeyHash>);

const unsigned = (f: KeyHash): KeyHash => (k, s, e) => f(k, s, e) >>> 0;
const UINT32_SIGNED = Object.fromEntries(HASH_NAMES.map((n) => [n, unsigned(INT32_SIGNED[n])])) as Record<HashName, KeyHash>;
const UINT32_UNSIGNED = Object.fromEntries(HASH_NAMES.map((n) => [n, unsigned(INT32_UNSIGNED[n])])) as Record<HashName, KeyHash>;

// Each twemproxy hash by its own name (x86 char signedness), unsigned 32-bit results.
export const oneAtATime: KeyHash = UINT32_SIGNED.one_at_a_time;
export const md5: KeyHash = UINT32_SIGNED.md5;
export const crc16: KeyHash = UINT32_SIGNED.crc16;
export const crc32a: KeyHash = UINT32_SIGNED.crc32a;
export const fnv1_64: KeyHash = UINT32_SIGNED.fnv1_64;
export const fnv1a_64: KeyHash = UINT32_SIGNED.fnv1a_64;
export const fnv1_32: KeyHash = UINT32_SIGNED.fnv1_32;
export const fnv1a_32: KeyHash = UINT32_SIGNED.fnv1a_32;
export const hsieh: KeyHash = UINT32_SIGNED.hsieh;
export const murmur: KeyHash = UINT32_SIGNED.murmur;
export const jenkins: KeyHash = UINT32_SIGNED.jenkins;

/** lookup3 hashlittle() with any initval (twemproxy's jenkins is initval 13); unsigned. */
export function lookup3(key: Uint8Array, start: number, end: number, initval: number): number {
  return lookup3Core(key, start, end, initval) >>> 0;
}

export function isHashName(name: string): name is HashName {
  return (HASH_NAMES as readonly string[]).includes(name);
}

function lookUp(table: Readonly<Record<HashName, KeyHash>>, name: HashName): KeyHash {
  const f = isHashName(name) ? table[name] : undefined;
  if (f === undefined) throw new RangeError(`unknown hash ${JSON.stringify(name)}; expected one of ${HASH_NAMES.join(', ')}`);
  return f;
}

/** The twemproxy hash called `name`, as a twemproxy built with that char signedness computes it; unsigned 32-bit results. */
export function hashFunction(name: HashName, chars: CharSignedness = 'signed'): KeyHash {
  return lookUp(chars === 'unsigned' ? UINT32_UNSIGNED : UINT32_SIGNED, name);
}

/** The same hash returning its 32 bits as a signed int32 (no heap number per call): for the per-key path. */
export function hashFunctionInt32(name: HashName, chars: CharSignedness = 'signed'): KeyHash {
  return lookUp(chars === 'unsigned' ? INT32_UNSIGNED : INT32_SIGNED, name);
}
