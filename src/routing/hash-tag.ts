/**
 * Hash tags: hash only part of a key so that related keys land on the same
 * server ("user:{42}:name" and "user:{42}:email" both hash "42").
 *
 * The rule (twemproxy's `hash_tag: "XY"`, and Redis Cluster's with "{}"):
 * find the first X in the key; find the first Y after it; if both exist and
 * at least one byte lies between them, hash those bytes; otherwise hash the
 * whole key. An empty tag ("a{}b") or an unclosed one ("a{b") falls back to
 * the whole key, and only the first X counts ("a{}{b}" hashes the whole key).
 * X and Y may be the same byte ("$$": "a$b$c" hashes "b").
 */

export class HashTagError extends Error {
  readonly code = 'PW_ERR_HASH_TAG';
  constructor(message: string) {
    super(message);
    this.name = 'HashTagError';
  }
}

/**
 * A compiled hash tag. `apply()` leaves the range to hash in `start`/`end`
 * (fields, not a returned object, so the per-key path allocates nothing); the
 * owner reads them before the next call.
 */
export class HashTag {
  /** The opening and closing bytes. */
  readonly open: number;
  readonly close: number;
  /** Result of the last apply(): the bytes to hash are key[start, end). */
  start = 0;
  end = 0;

  /** tag: exactly two bytes in UTF-8, as twemproxy requires ("is not a valid hash tag string with two characters"). */
  constructor(tag: string) {
    const b = Buffer.from(tag, 'utf8');
    if (b.length !== 2) throw new HashTagError(`hash tag must be exactly two single-byte characters, got ${JSON.stringify(tag)}`);
    this.open = b[0]!;
    this.close = b[1]!;
  }

  apply(key: Uint8Array, start: number, end: number): void {
    this.start = start;
    this.end = end;
    // Bounded loops rather than indexOf: the key may sit inside a large request buffer.
    let o = start;
    while (o < end && key[o] !== this.open) o++;
    if (o >= end) return;
    let c = o + 1;
    while (c < end && key[c] !== this.close) c++;
    if (c >= end || c === o + 1) return;
    this.start = o + 1;
    this.end = c;
  }
}
