/**
 * rate_limit: a token bucket per listener, route, client address or request
 * attribute. A request that finds its bucket empty is answered locally with
 * PW_ERR_RATE_LIMITED and retryAfterMs = when the bucket will next hold a
 * token; each protocol renders that as its own wire error.
 *
 * mode local keeps the buckets in this process: the decision is synchronous
 * (no promise, no timer) and refills are computed from performance.now().
 * mode global keeps them in Redis, shared by every Portway instance using the
 * same Redis and key prefix (see redis-limiter.ts); a decision then waits for
 * Redis at most redis.timeout, and on_redis_error says what happens when Redis
 * cannot answer.
 *
 * Reload: every config generation builds its own filter, so a reload starts
 * new connections on fresh local buckets (full ones), while connections open
 * before it keep the old generation's buckets until they close; then the old
 * filter is closed (its buckets dropped, the global store's Redis connection
 * released). Global buckets live in Redis and carry over a reload unless the
 * key prefix, the key kind or the filter name changed.
 *
 * Requests lacking the key (no route chosen yet, or no such attribute) all
 * share one bucket, the "(none)" bucket: the limit still covers every request
 * that `match` selects. To exempt them instead, add
 * `match: { attributes: { <name>: { present: true } } }`.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FilterFactory, LocalReply, PhaseFilter, Verdict } from '../../src/filter';
import type { Exchange } from '../../src/exchange';
import type { ConfigIssue } from '../../src/config/validate';
import { AddressString, Duration } from '../../src/config/schema';
import { ErrorCode, ProxyError } from '../../src/errors';
import { parseDuration } from '../../src/util/duration';
import { parseHostPort } from '../../src/util/address';
import { turnNow } from '../../src/util/turn-clock';
import { RequestMatchSchema, checkRequestMatch, compileRequestMatch } from './request-match';
import { BucketPolicy, LocalBuckets } from './token-bucket';
import { RedisLimiter, type RedisAnswer } from './redis-limiter';

const KEY_PATTERN = '^(listener|route|client|attribute:.+)$';

const RateLimitConfig = Type.Object(
  {
    rate: Type.Number({ exclusiveMinimum: 0, description: 'Tokens added to a bucket per `per`: the steady rate allowed. May be fractional.' }),
    per: Type.Optional(Duration('The period `rate` is counted over.', '1s')),
    burst: Type.Optional(
      Type.Integer({ minimum: 1, description: 'Bucket size: how many requests may pass at once after a quiet spell. Defaults to rate rounded up (at least 1).' }),
    ),
    key: Type.Optional(
      Type.String({
        pattern: KEY_PATTERN,
        default: 'listener',
        description:
          'What a bucket belongs to: listener (one bucket), route (needs a router earlier in the chain), client (the client address), or attribute:<name> (a request attribute such as a Redis command, a Kafka topic, a Bolt service). Requests without it share one "(none)" bucket.',
        'x-hint': 'must be listener, route, client or attribute:<name>',
      }),
    ),
    match: Type.Optional(RequestMatchSchema),
    max_keys: Type.Optional(
      Type.Integer({
        minimum: 1,
        default: 10000,
        description: 'mode local: keep at most this many buckets; the least recently used is dropped first (its owner then starts again with a full bucket).',
      }),
    ),
    mode: Type.Optional(
      Type.Union([Type.Literal('local'), Type.Literal('global')], {
        default: 'local',
        description: 'local: buckets in this process. global: buckets in Redis, shared by every Portway instance using the same Redis and prefix.',
      }),
    ),
    redis: Type.Optional(
      Type.Object(
        {
          address: AddressString('The Redis server holding the buckets.'),
          username: Type.Optional(Type.String({ description: 'ACL user name (Redis 6+).' })),
          password: Type.Optional(Type.String({ description: 'AUTH password.' })),
          db: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'Database number.' })),
          timeout: Type.Optional(Duration('The longest a decision waits for Redis (connecting included) before on_redis_error applies.', '100ms')),
          prefix: Type.Optional(
            Type.String({ minLength: 1, description: 'Prefix of every bucket key. Default "portway:rl:<listener>:<filter name>:". Instances share buckets when they use the same prefix.' }),
          ),
        },
        { additionalProperties: false, description: 'mode global: where the buckets are kept. Required in that mode.' },
      ),
    ),
    on_redis_error: Type.Optional(
      Type.Union([Type.Literal('allow'), Type.Literal('deny')], {
        default: 'allow',
        description: 'mode global, when Redis cannot answer in time: allow the request (fail open) or reject it with PW_ERR_RATE_LIMITED (fail closed).',
      }),
    ),
  },
  { additionalProperties: false },
);

type RateLimitConfig = Static<typeof RateLimitConfig>;

type KeyOf = (ex: Exchange) => string | undefined;

interface KeySpec {
  of: KeyOf;
  /** Part of the Redis key naming the kind of key, so a change of `key` never reuses old buckets. */
  tag: string;
}

function compileKey(key: string): KeySpec {
  if (key === 'listener') return { of: () => undefined, tag: 'listener' };
  if (key === 'route') return { of: (ex) => ex.route ?? undefined, tag: 'route' };
  if (key === 'client') return { of: (ex) => ex.clientAddress, tag: 'client' };
  const name = key.slice('attribute:'.length);
  return { of: (ex) => ex.attr(name), tag: `attr:${name}` };
}

function check(c: RateLimitConfig, ctx: { listener: { filters?: { type: string; key?: unknown }[] } }): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const perMs = parseDuration(c.per ?? '1s');
  if (perMs <= 0) issues.push({ path: 'per', message: 'must be greater than 0' });
  const mode = c.mode ?? 'local';
  if (mode === 'global' && c.redis === undefined) issues.push({ path: 'redis', message: 'is required when mode is global' });
  if (mode === 'local' && c.redis !== undefined) issues.push({ path: 'redis', message: 'is only used when mode is global (set mode: global to share the limit through Redis)' });
  if (c.redis !== undefined) {
    const hp = parseHostPort(c.redis.address);
    if (typeof hp === 'string') issues.push({ path: 'redis.address', message: hp });
    else if (hp.port === 0) issues.push({ path: 'redis.address', message: 'port 0 is not a valid Redis port' });
    if (c.redis.timeout !== undefined && parseDuration(c.redis.timeout) <= 0) issues.push({ path: 'redis.timeout', message: 'must be greater than 0' });
  }
  if (c.key === 'route') {
    // The route is chosen by the router. The check cannot tell which entry it is checking, so it asks that
    // no route-keyed rate_limit comes before the first router.
    const filters = ctx.listener.filters ?? [];
    const router = filters.findIndex((f) => f.type === 'router');
    const early = filters.findIndex((f) => f.type === 'rate_limit' && f.key === 'route');
    if (router < 0 || (early >= 0 && early < router)) {
      issues.push({ path: 'key', message: 'key route needs a router filter earlier in the chain (the router chooses the route)' });
    }
  }
  issues.push(...checkRequestMatch(c.match));
  return issues;
}

export const rateLimitFilter: FilterFactory<RateLimitConfig> = {
  type: 'rate_limit',
  description: 'Token bucket rate limit per listener, route, client or request attribute; in process or shared through Redis.',
  schema: RateLimitConfig,
  check: (c, ctx) => check(c, ctx),
  create(config, ctx): PhaseFilter {
    const perMs = parseDuration(config.per ?? '1s');
    const burst = config.burst ?? Math.max(1, Math.ceil(config.rate));
    const policy = new BucketPolicy(config.rate, perMs, burst);
    const key = compileKey(config.key ?? 'listener');
    const match = compileRequestMatch(config.match);
    const labels = { listener: ctx.listener.name, filter: ctx.name };
    // Labelled by listener and filter only: a label per client or key would make series without bound.
    const allowed = ctx.metrics.counter('portway_rate_limit_allowed_total', 'Requests a rate limit bucket let through.', labels);
    const limited = ctx.metrics.counter('portway_rate_limit_limited_total', 'Requests rejected because their rate limit bucket was empty.', labels);
    const message = `rate limit of listener '${ctx.listener.name}' exceeded`;
    const reject = (retryAfterMs: number): LocalReply => ({
      error: new ProxyError(ErrorCode.RateLimited, message, { source: 'downstream', retryAfterMs }),
    });

    if ((config.mode ?? 'local') === 'local') {
      const evicted = ctx.metrics.counter('portway_rate_limit_evicted_total', 'Rate limit buckets dropped to stay within max_keys.', labels);
      const buckets = new LocalBuckets(policy, config.max_keys ?? 10000, performance.now(), () => evicted.inc());
      return {
        kind: 'phase',
        name: ctx.name,
        close() {
          buckets.clear();
        },
        onRequest(ex): Verdict {
          if (match !== null && !match(ex)) return undefined;
          const wait = buckets.take(key.of(ex), turnNow());
          if (wait === 0) {
            allowed.inc();
            return undefined;
          }
          limited.inc();
          return reject(wait);
        },
      };
    }

    const rc = config.redis!;
    const hp = parseHostPort(rc.address) as { host: string; port: number };
    const prefix = rc.prefix ?? `portway:rl:${ctx.listener.name}:${ctx.name}:`;
    const base = prefix + key.tag;
    const failOpen = (config.on_redis_error ?? 'allow') === 'allow';
    const errorHelp = 'Rate limit decisions Redis could not answer in time, by what on_redis_error made of them.';
    const errAllowed = ctx.metrics.counter('portway_rate_limit_redis_errors_total', errorHelp, { ...labels, outcome: 'allowed' });
    const errDenied = ctx.metrics.counter('portway_rate_limit_redis_errors_total', errorHelp, { ...labels, outcome: 'denied' });
    const limiter = new RedisLimiter({
      host: hp.host,
      port: hp.port,
      ...(rc.username !== undefined ? { username: rc.username } : {}),
      ...(rc.password !== undefined ? { password: rc.password } : {}),
      db: rc.db ?? 0,
      timeoutMs: parseDuration(rc.timeout ?? '100ms'),
      policy,
      logger: ctx.logger.child({ filter: ctx.name }),
    });
    const decide = (a: RedisAnswer): Verdict => {
      if (a.ok) {
        if (a.retryAfterMs === 0) {
          allowed.inc();
          return undefined;
        }
        limited.inc();
        return reject(a.retryAfterMs);
      }
      if (failOpen) {
        errAllowed.inc();
        return undefined;
      }
      errDenied.inc();
      // Not the client's doing: the limiter could not decide. No retry hint, as no token time is known.
      return { error: new ProxyError(ErrorCode.RateLimited, `rate limit of listener '${ctx.listener.name}' unavailable (${a.reason})`, { source: 'internal' }) };
    };
    return {
      kind: 'phase',
      name: ctx.name,
      close() {
        limiter.close();
      },
      onRequest(ex) {
        if (match !== null && !match(ex)) return undefined;
        const v = key.of(ex);
        return limiter.take(v === undefined ? base : `${base}:${v}`).then(decide);
      },
    };
  },
};
