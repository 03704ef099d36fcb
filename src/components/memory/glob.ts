/**
 * Glob-style matching for KEYS and the MATCH option of SCAN, HSCAN, SSCAN,
 * following redis' stringmatchlen() (util.c) byte for byte:
 *
 *   *        any run of bytes, including none
 *   ?        any one byte
 *   [abc]    one of the bytes; [^abc] none of them; [a-z] a range (bounds
 *            may come in either order); \x inside takes x literally; an
 *            unclosed [ runs to the end of the pattern
 *   \x       x literally
 *
 * Both sides are latin1 strings (one char per byte), as the store keeps
 * keys. Range bounds compare as C `char`, which is signed on x86-64, so
 * bytes above 0x7f sort below 'A' there; we do the same.
 */

function signed(c: number): number {
  return c >= 128 ? c - 256 : c;
}

/** Set when the rest of the pattern failed at every later start: longer matches of an earlier '*' cannot help. */
let skipLonger = false;

export function globMatch(pattern: string, str: string): boolean {
  skipLonger = false;
  return match(pattern, 0, str, 0);
}

function match(pat: string, p: number, str: string, s: number): boolean {
  const pl = pat.length;
  const sl = str.length;
  // pat.charCodeAt(pl) is NaN, standing in for the C string's NUL terminator.
  while (p < pl && s < sl) {
    const pc = pat.charCodeAt(p);
    switch (pc) {
      case 42: // '*'
        while (p + 1 < pl && pat.charCodeAt(p + 1) === 42) p++;
        if (p + 1 === pl) return true;
        while (s < sl) {
          if (match(pat, p + 1, str, s)) return true;
          if (skipLonger) return false;
          s++;
        }
        skipLonger = true;
        return false;
      case 63: // '?'
        s++;
        break;
      case 91: {
        // '['
        p++;
        const not = p < pl && pat.charCodeAt(p) === 94;
        if (not) p++;
        let matched = false;
        const c = str.charCodeAt(s);
        for (;;) {
          if (p < pl && pat.charCodeAt(p) === 92 && pl - p >= 2) {
            p++;
            if (pat.charCodeAt(p) === c) matched = true;
          } else if (p < pl && pat.charCodeAt(p) === 93) {
            break;
          } else if (p >= pl) {
            p--;
            break;
          } else if (pl - p >= 3 && pat.charCodeAt(p + 1) === 45) {
            let lo = signed(pat.charCodeAt(p));
            let hi = signed(pat.charCodeAt(p + 2));
            if (lo > hi) {
              const t = lo;
              lo = hi;
              hi = t;
            }
            p += 2;
            const sc = signed(c);
            if (sc >= lo && sc <= hi) matched = true;
          } else if (pat.charCodeAt(p) === c) {
            matched = true;
          }
          p++;
        }
        if (not) matched = !matched;
        if (!matched) return false;
        s++;
        break;
      }
      default:
        // A backslash takes the next byte literally (a trailing one is itself).
        if (pc === 92 && pl - p >= 2) p++;
        if (pat.charCodeAt(p) !== str.charCodeAt(s)) return false;
        s++;
        break;
    }
    p++;
    if (s === sl) {
      while (p < pl && pat.charCodeAt(p) === 42) p++;
      break;
    }
  }
  return p === pl && s === sl;
}
