/**
 * INCRBYFLOAT and HINCRBYFLOAT as redis-server computes them on x86-64:
 * both operands parsed by strtold() into an 80-bit x87 long double (64-bit
 * mantissa), added there, and printed with "%.17Lf" minus trailing zeros.
 * Doing the same in binary64 gives visibly different strings (0.1 added
 * three times is "0.3" in redis, 0.30000000000000004 in doubles), so the
 * extended format is emulated exactly with BigInt. These commands are rare
 * enough that BigInt's cost does not matter.
 *
 * strtold grammar accepted (string2ld): [+-] then digits [. digits]
 * [e [+-] digits], or 0x hexdigits [. hexdigits] [p [+-] digits], or
 * inf / infinity; no leading blank, nothing after (a NUL included: redis
 * checks strtold consumed the whole length); nan, overflow and
 * underflow to zero are refused. Length must be below 5120 bytes
 * (MAX_LONG_DOUBLE_CHARS).
 */

/** A finite extended value: (-1)^neg * mant * 2^exp with mant < 2^64. */
export interface LongDouble {
  neg: boolean;
  mant: bigint;
  exp: number;
}

export const LD_INFINITY = 'inf';
export type LongDoubleParse = LongDouble | typeof LD_INFINITY | null;

const MANT_BITS = 64;
/** Exponent of the smallest subnormal (2^-16445) and the largest finite binade. */
const EXP_MIN = -16382 - 63;
const EXP_MAX_TOP = 16383;
const MAX_LONG_DOUBLE_CHARS = 5 * 1024;

function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

/**
 * Round the exact value m * 2^e (plus a sticky "something below" bit) to
 * the extended format, ties to even. Returns null on overflow (infinity).
 */
function round(neg: boolean, m: bigint, e: number, sticky: boolean): LongDouble | null {
  if (m === 0n) return { neg, mant: 0n, exp: 0 };
  let shift = bitLength(m) - MANT_BITS;
  if (e + shift < EXP_MIN) shift = EXP_MIN - e;
  if (shift > 0) {
    const half = 1n << BigInt(shift - 1);
    const mask = (1n << BigInt(shift)) - 1n;
    const rest = m & mask;
    m >>= BigInt(shift);
    e += shift;
    if (rest > half || (rest === half && (sticky || (m & 1n) === 1n))) m += 1n;
    if (bitLength(m) > MANT_BITS) {
      m >>= 1n;
      e += 1;
    }
  } else if (shift < 0 && m !== 0n) {
    // Normalise small mantissas up, without going below the subnormal floor.
    let up = -shift;
    if (e - up < EXP_MIN) up = Math.max(0, e - EXP_MIN);
    m <<= BigInt(up);
    e -= up;
  }
  if (m !== 0n && e + bitLength(m) - 1 > EXP_MAX_TOP) return null;
  return { neg, mant: m, exp: m === 0n ? 0 : e };
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/** Case-insensitive match of an ASCII lowercase word at b[p]. */
function word(b: Buffer, p: number, end: number, w: string): boolean {
  if (end - p < w.length) return false;
  for (let i = 0; i < w.length; i++) if ((b[p + i] | 0x20) !== w.charCodeAt(i)) return false;
  return true;
}

/** string2ld(): the value, LD_INFINITY, or null when redis answers "not a valid float". */
export function parseLongDouble(b: Buffer, s = 0, e = b.length): LongDoubleParse {
  const len = e - s;
  if (len === 0 || len >= MAX_LONG_DOUBLE_CHARS) return null;
  const end = e;
  let p = s;
  if (p >= end || isSpace(b[p])) return null;
  let neg = false;
  if (b[p] === 43 || b[p] === 45) {
    neg = b[p] === 45;
    p++;
  }
  if (word(b, p, end, 'infinity')) return p + 8 === end ? LD_INFINITY : null;
  if (word(b, p, end, 'inf')) return p + 3 === end ? LD_INFINITY : null;
  if (word(b, p, end, 'nan')) return null;
  if (b[p] === 48 && (b[p + 1] | 0x20) === 120 && p + 2 < end && (hexVal(b[p + 2]) >= 0 || (b[p + 2] === 46 && p + 3 < end && hexVal(b[p + 3]) >= 0))) {
    return parseHex(b, p + 2, end, neg);
  }
  let digits = '';
  let fracDigits = 0;
  let any = false;
  while (p < end && isDigit(b[p])) {
    digits += String.fromCharCode(b[p++]);
    any = true;
  }
  if (p < end && b[p] === 46) {
    p++;
    while (p < end && isDigit(b[p])) {
      digits += String.fromCharCode(b[p++]);
      fracDigits++;
      any = true;
    }
  }
  if (!any) return null;
  let exp10 = 0;
  if (p < end && (b[p] | 0x20) === 101) {
    let q = p + 1;
    let eneg = false;
    if (q < end && (b[q] === 43 || b[q] === 45)) {
      eneg = b[q] === 45;
      q++;
    }
    if (q < end && isDigit(b[q])) {
      let x = 0;
      while (q < end && isDigit(b[q])) {
        // Saturate: anything this large over- or underflows anyway.
        if (x < 1e9) x = x * 10 + (b[q] - 48);
        q++;
      }
      exp10 = eneg ? -x : x;
      p = q;
    }
  }
  if (p !== end) return null;
  return fromDecimal(neg, BigInt(digits), exp10 - fracDigits, digits.replace(/^0+/, '').length);
}

/** D * 10^x rounded to extended precision; null for overflow or underflow to zero (ERANGE). */
function fromDecimal(neg: boolean, d: bigint, x: number, sigDigits: number): LongDoubleParse {
  if (d === 0n) return { neg, mant: 0n, exp: 0 };
  // Magnitude is below 10^(sigDigits + x): far outside the range either way.
  if (sigDigits + x > 4940) return null;
  if (sigDigits + x < -4960) return null;
  let r: LongDouble | null;
  if (x >= 0) {
    r = round(neg, d * 10n ** BigInt(x), 0, false);
  } else {
    const den = 10n ** BigInt(-x);
    const k = Math.max(0, MANT_BITS + 2 + bitLength(den) - bitLength(d));
    const num = d << BigInt(k);
    const q = num / den;
    r = round(neg, q, -k, num % den !== 0n);
  }
  if (r === null) return null;
  if (r.mant === 0n) return null;
  return r;
}

function parseHex(b: Buffer, p: number, end: number, neg: boolean): LongDoubleParse {
  let m = 0n;
  let scale = 0;
  while (p < end && hexVal(b[p]) >= 0) m = (m << 4n) | BigInt(hexVal(b[p++]));
  if (p < end && b[p] === 46) {
    p++;
    while (p < end && hexVal(b[p]) >= 0) {
      m = (m << 4n) | BigInt(hexVal(b[p++]));
      scale -= 4;
    }
  }
  if (p < end && (b[p] | 0x20) === 112) {
    let q = p + 1;
    let eneg = false;
    if (q < end && (b[q] === 43 || b[q] === 45)) {
      eneg = b[q] === 45;
      q++;
    }
    if (q < end && isDigit(b[q])) {
      let x = 0;
      while (q < end && isDigit(b[q])) {
        if (x < 1e9) x = x * 10 + (b[q] - 48);
        q++;
      }
      scale += eneg ? -x : x;
      p = q;
    }
  }
  if (p !== end) return null;
  if (m === 0n) return { neg, mant: 0n, exp: 0 };
  if (scale + bitLength(m) > 20000) return null;
  if (scale + bitLength(m) < -20000) return null;
  const r = round(neg, m, scale, false);
  if (r === null || r.mant === 0n) return null;
  return r;
}

/** a + b in extended precision; null when the sum overflows. */
export function addLongDouble(a: LongDouble, b: LongDouble): LongDouble | null {
  if (a.mant === 0n && b.mant === 0n) return { neg: a.neg && b.neg, mant: 0n, exp: 0 };
  if (a.mant === 0n) return b;
  if (b.mant === 0n) return a;
  const e = Math.min(a.exp, b.exp);
  const va = (a.neg ? -a.mant : a.mant) << BigInt(a.exp - e);
  const vb = (b.neg ? -b.mant : b.mant) << BigInt(b.exp - e);
  const sum = va + vb;
  // An exact zero sum is +0 in round-to-nearest.
  if (sum === 0n) return { neg: false, mant: 0n, exp: 0 };
  return round(sum < 0n, sum < 0n ? -sum : sum, e, false);
}

/** printf("%.17Lf") with trailing zeros (and a bare '.') removed, "-0" printed as "0": ld2string(LD_STR_HUMAN). */
export function formatLongDouble(v: LongDouble): string {
  const scale = 10n ** 17n;
  let n: bigint;
  if (v.exp >= 0) {
    n = (v.mant << BigInt(v.exp)) * scale;
  } else {
    const num = v.mant * scale;
    const sh = BigInt(-v.exp);
    n = num >> sh;
    const rest = num & ((1n << sh) - 1n);
    const half = 1n << (sh - 1n);
    if (rest > half || (rest === half && (n & 1n) === 1n)) n += 1n;
  }
  const all = n.toString().padStart(18, '0');
  const intPart = all.slice(0, all.length - 17);
  const frac = all.slice(all.length - 17).replace(/0+$/, '');
  let text = frac.length > 0 ? `${intPart}.${frac}` : intPart;
  if (v.neg && text !== '0') text = '-' + text;
  return text;
}
