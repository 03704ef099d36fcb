/**
 * Token bucket arithmetic and the in-process store of buckets.
 *
 * A bucket holds up to `burst` tokens and gains `rate` tokens per `per`; a
 * request takes one token or is refused. Nothing runs between requests: a
 * bucket is refilled lazily, from the time elapsed since it was last looked
 * at, when the next request comes. Time is passed in (milliseconds on the
 * performance.now() clock) so the arithmetic has no hidden clock and the
 * tests can walk it step by step.
 */

/**
 * Float slack when comparing a refilled bucket with one token: 0.1 + 0.2
 * style rounding must not turn "a token is available exactly now" into a
 * refusal with retryAfterMs 0 or 1.
 */
const EPSILON = 1e-9;

export class TokenBucket {
  constructor(
    public tokens: number,
    /** When `tokens` was last brought up to date. */
    public last: number,
  ) {}
}

/** The rate and size shared by every bucket of one filter. */
export class BucketPolicy {
  /** Tokens gained per millisecond. */
  readonly ratePerMs: number;

  constructor(
    rate: number,
    perMs: number,
    readonly burst: number,
  ) {
    this.ratePerMs = rate / perMs;
  }

  /** A full bucket, as a client that was never seen has. */
  fresh(now: number): TokenBucket {
    return new TokenBucket(this.burst, now);
  }

  /**
   * Takes one token. Returns 0 when it was taken, otherwise how many
   * milliseconds from `now` until one will be there (at least 1).
   */
  take(b: TokenBucket, now: number): number {
    let tokens = b.tokens;
    // A clock that reads earlier than last time (it should not, but a caller might pass one) adds nothing.
    if (now > b.last) {
      tokens += (now - b.last) * this.ratePerMs;
      if (tokens > this.burst) tokens = this.burst;
      b.last = now;
    }
    if (tokens + EPSILON >= 1) {
      b.tokens = tokens - 1;
      return 0;
    }
    b.tokens = tokens;
    const wait = Math.ceil((1 - tokens - EPSILON) / this.ratePerMs);
    return wait < 1 ? 1 : wait;
  }

  /**
   * How long an untouched bucket takes to fill up from empty. After that it
   * is the same as a fresh one, so a shared store may forget it (the Redis
   * TTL).
   */
  fillTimeMs(): number {
    return Math.ceil(this.burst / this.ratePerMs);
  }
}

/**
 * The buckets of one local-mode filter, keyed by whatever the filter limits
 * on (client address, route, attribute value). `undefined` is the key of the
 * one shared bucket: the whole listener, or the requests that lack the key.
 *
 * At most `maxKeys` keyed buckets are kept, least recently used first out, so
 * many distinct clients cannot grow memory without bound. Forgetting a bucket
 * only ever errs towards allowing: its owner comes back to a full bucket.
 */
export class LocalBuckets {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly shared: TokenBucket;
  /*
   * The bucket used last. A sidecar usually serves one application, so the
   * same key comes again and again; the most recently used entry is already
   * last in LRU order, which makes the Map reorder needless.
   */
  private lastKey: string | undefined = undefined;
  private lastBucket: TokenBucket | null = null;

  constructor(
    private readonly policy: BucketPolicy,
    private readonly maxKeys: number,
    now: number,
    /** Called once per bucket dropped to make room (a metric). */
    private readonly onEvict: () => void = () => {},
  ) {
    this.shared = policy.fresh(now);
  }

  /** Takes a token from `key`'s bucket: 0 when allowed, else ms until a token is there. */
  take(key: string | undefined, now: number): number {
    if (key === undefined) return this.policy.take(this.shared, now);
    if (key === this.lastKey && this.lastBucket !== null) return this.policy.take(this.lastBucket, now);
    const buckets = this.buckets;
    let b = buckets.get(key);
    if (b === undefined) {
      if (buckets.size >= this.maxKeys) {
        // Map iteration order is insertion order, and every use re-inserts: the first key is the least recently used.
        const oldest = buckets.keys().next().value as string;
        buckets.delete(oldest);
        this.onEvict();
      }
      b = this.policy.fresh(now);
    } else {
      buckets.delete(key);
    }
    buckets.set(key, b);
    this.lastKey = key;
    this.lastBucket = b;
    return this.policy.take(b, now);
  }

  /** Keyed buckets held now (the shared one not counted). */
  get size(): number {
    return this.buckets.size;
  }

  has(key: string): boolean {
    return this.buckets.has(key);
  }

  /** Forgets every keyed bucket (the filter's generation was retired). */
  clear(): void {
    this.buckets.clear();
    this.lastKey = undefined;
    this.lastBucket = null;
  }
}
