/**
 * The global-mode bucket store: token buckets kept in Redis so that every
 * Portway instance pointing at the same Redis (and key prefix) draws from the
 * same buckets.
 *
 * One decision is one EVALSHA of TAKE_SCRIPT (ioredis defineCommand sends
 * EVAL the first time on a connection and again after NOSCRIPT, e.g. after
 * SCRIPT FLUSH or a Redis restart). The script reads, refills, takes and
 * writes the bucket atomically, with Redis' own clock, so instances with
 * skewed clocks still agree.
 *
 * A decision never waits longer than `timeoutMs`, whether for the connection
 * or for the reply; then it reports an error and the filter follows
 * on_redis_error. The deadlines are kept by one timer per store, not one per
 * decision: every decision of a store has the same timeout, so deadlines come
 * due in the order the decisions started and a FIFO is enough.
 *
 * The connection is ours to manage, not ioredis': no automatic reconnect
 * (its retry timer would keep the process alive and retry forever with no
 * traffic), no offline queue (commands queued during an outage would run
 * after it and take tokens for requests long decided). Instead a decision that
 * finds the connection down starts a new connect, at most once per
 * RECONNECT_BACKOFF_MS; decisions in between fail at once rather than waiting.
 */
import Redis from 'ioredis';
import type { Logger } from '../../src/logger';
import type { BucketPolicy } from './token-bucket';

/**
 * KEYS[1]: the bucket, a hash {tokens, ts} (ts in ms on Redis' clock).
 * ARGV: tokens per ms, burst, TTL in ms.
 * Returns {1, 0} when a token was taken, {0, ms until one is there} when not.
 * A refused request writes nothing: refilling from the stored ts next time
 * gives the same result. The TTL is the time to fill up from empty; a key that
 * expired is a full bucket, which is what a missing key means anyway.
 */
const TAKE_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(s[1])
local ts = tonumber(s[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
elseif now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
if tokens + 1e-9 >= 1 then
  redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'ts', ts)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1, 0}
end
local wait = math.ceil((1 - tokens - 1e-9) / rate)
if wait < 1 then wait = 1 end
return {0, wait}
`;

/** After a failed connect or a lost connection, decisions fail fast for this long before the next connect. */
export const RECONNECT_BACKOFF_MS = 1000;
/**
 * Close a connection no decision used for this long (it reconnects on the
 * next decision). A retired generation's connection is closed by the
 * filter's close() once the generation's last connection ended.
 */
const IDLE_CLOSE_MS = 60_000;
/** Decisions sent and not yet answered (including those given up on). Beyond this Redis is treated as unavailable, so a hung Redis cannot grow memory. */
const MAX_IN_FLIGHT = 10_000;

export type RedisAnswer = { ok: true; retryAfterMs: number } | { ok: false; reason: string };

const ALLOWED: RedisAnswer = { ok: true, retryAfterMs: 0 };

interface Pending {
  key: string;
  deadline: number;
  settled: boolean;
  resolve(a: RedisAnswer): void;
}

interface TakeCommand {
  portwayTakeToken(key: string, ratePerMs: string, burst: number, ttlMs: number): Promise<[number, number]>;
}

export interface RedisLimiterOptions {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db: number;
  timeoutMs: number;
  policy: BucketPolicy;
  logger: Logger;
}

export class RedisLimiter {
  private readonly client: Redis & TakeCommand;
  private readonly timeoutMs: number;
  private readonly rateArg: string;
  private readonly burst: number;
  private readonly ttlMs: number;
  private readonly log: Logger;
  /** Decisions waiting for the connection to become ready. */
  private waiting: Pending[] = [];
  /** Every unsettled decision, oldest first (= earliest deadline first). */
  private readonly byDeadline: Pending[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  /** No connect attempt before this (performance.now() ms). */
  private retryAt = 0;
  private lastUse = 0;
  private inFlight = 0;
  private lastError = 'not connected';
  /** For logging the change of state once, not per decision. */
  private down = false;
  private closing = false;
  private closed = false;

  constructor(o: RedisLimiterOptions) {
    this.timeoutMs = o.timeoutMs;
    this.burst = o.policy.burst;
    // Full precision: a small rate (1 per hour) must not round to 0 on the way.
    this.rateArg = String(o.policy.ratePerMs);
    // One second of slack over the fill time, so the key outlives any refill arithmetic near the edge.
    this.ttlMs = o.policy.fillTimeMs() + 1000;
    this.log = o.logger;
    this.client = new Redis({
      host: o.host,
      port: o.port,
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
      db: o.db,
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      reconnectOnError: null,
      autoResubscribe: false,
      // Long enough for a connection to come up even when the first decisions gave up on it.
      connectTimeout: Math.max(o.timeoutMs, 2000),
      // RESP2 works with every Redis that has EVALSHA; nothing here needs RESP3.
      protocol: 2,
      connectionName: 'portway-rate-limit',
    }) as Redis & TakeCommand;
    this.client.defineCommand('portwayTakeToken', { numberOfKeys: 1, lua: TAKE_SCRIPT });
    this.client.on('connect', () => {
      // A rate limit connection must not keep the process alive on its own (listeners do that).
      this.client.stream?.unref?.();
    });
    this.client.on('ready', () => this.onReady());
    this.client.on('end', () => this.onEnd());
    this.client.on('error', (err: Error) => {
      this.lastError = err.message;
      this.log.debug({ err: err.message }, 'rate limit redis connection error');
    });
    // Connect now, so the first requests find the connection ready.
    this.connect(performance.now());
  }

  /** The connection state as ioredis reports it (for tests and logs). */
  get status(): string {
    return this.client.status;
  }

  /** Takes a token from the bucket at `key` (the full Redis key). Never rejects. */
  take(key: string): Promise<RedisAnswer> {
    const now = performance.now();
    this.lastUse = now;
    if (this.closed) return Promise.resolve({ ok: false, reason: 'limiter closed' });
    if (this.inFlight >= MAX_IN_FLIGHT) return Promise.resolve({ ok: false, reason: `more than ${MAX_IN_FLIGHT} decisions waiting for redis` });
    const status = this.client.status;
    if (status === 'wait' || status === 'end' || status === 'close') {
      if (now < this.retryAt) return Promise.resolve({ ok: false, reason: `redis unavailable: ${this.lastError}` });
      this.connect(now);
    }
    return new Promise<RedisAnswer>((resolve) => {
      const p: Pending = { key, deadline: now + this.timeoutMs, settled: false, resolve };
      this.track(p);
      if (this.client.status === 'ready') this.send(p);
      else this.waiting.push(p);
    });
  }

  /** Closes the connection; later decisions fail. Called by the filter's close() when its generation is retired. */
  close(): void {
    this.closed = true;
    this.closing = true;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.client.disconnect();
  }

  private connect(now: number): void {
    // One attempt per backoff window, whatever its outcome: a dead Redis costs one refused connect per second, not one per request.
    this.retryAt = now + RECONNECT_BACKOFF_MS;
    this.client.connect().catch(() => {
      // Reported through 'error' and 'end'.
    });
  }

  private send(p: Pending): void {
    this.inFlight++;
    this.client.portwayTakeToken(p.key, this.rateArg, this.burst, this.ttlMs).then(
      (r) => {
        this.inFlight--;
        const allowed = Number(r[0]) === 1;
        this.settle(p, allowed ? ALLOWED : { ok: true, retryAfterMs: Math.max(1, Number(r[1])) });
      },
      (err: Error) => {
        this.inFlight--;
        this.settle(p, { ok: false, reason: `redis: ${err.message}` });
      },
    );
  }

  private settle(p: Pending, a: RedisAnswer): void {
    if (p.settled) return;
    p.settled = true;
    p.resolve(a);
  }

  private track(p: Pending): void {
    this.byDeadline.push(p);
    if (this.timer === null) this.timer = setTimeout(this.expire, this.timeoutMs);
  }

  /** Gives up on every decision whose deadline passed, then re-arms for the next one. */
  private readonly expire = (): void => {
    this.timer = null;
    // A timer counts from the loop's cached clock and can fire early; what is not due yet waits for the re-armed
    // timer. The millisecond of slack spares a re-arm for a deadline a hair away.
    const now = performance.now() + 1;
    const q = this.byDeadline;
    while (this.head < q.length) {
      const p = q[this.head]!;
      if (!p.settled) {
        if (p.deadline > now) break;
        this.settle(p, { ok: false, reason: `no answer from redis within ${this.timeoutMs} ms` });
      }
      q[this.head++] = undefined as unknown as Pending;
    }
    if (this.head === q.length) {
      q.length = 0;
      this.head = 0;
    } else {
      if (this.head > 1024 && this.head * 2 > q.length) {
        q.splice(0, this.head);
        this.head = 0;
      }
      this.timer = setTimeout(this.expire, Math.max(1, q[this.head]!.deadline - now + 1));
    }
    if (this.waiting.length > 0) this.waiting = this.waiting.filter((p) => !p.settled);
  };

  private onReady(): void {
    if (this.down) this.log.info('rate limit redis connection ready again');
    this.down = false;
    const w = this.waiting;
    this.waiting = [];
    for (const p of w) if (!p.settled) this.send(p);
    this.armIdle(IDLE_CLOSE_MS);
  }

  private onEnd(): void {
    // ioredis emits 'end' a tick after the status changed: a decision in between may already have started the next
    // connect, and the decisions waiting now wait for that one.
    const s = this.client.status;
    if (s !== 'end' && s !== 'close') {
      this.closing = false;
      return;
    }
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const w = this.waiting;
    this.waiting = [];
    for (const p of w) this.settle(p, { ok: false, reason: `redis unavailable: ${this.lastError}` });
    if (this.closing) {
      this.closing = false;
      return;
    }
    if (!this.down) this.log.warn({ err: this.lastError }, 'rate limit redis unavailable: decisions follow on_redis_error until it is back');
    this.down = true;
  }

  private armIdle(ms: number): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      const idle = performance.now() - this.lastUse;
      if (idle >= IDLE_CLOSE_MS) {
        this.closing = true;
        // The next decision reconnects at once: an idle close is not a failure.
        this.retryAt = 0;
        this.client.disconnect();
      } else this.armIdle(IDLE_CLOSE_MS - idle);
    }, ms);
    this.idleTimer.unref();
  }
}
