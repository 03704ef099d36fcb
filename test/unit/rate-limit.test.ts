/**
 * rate_limit: the token bucket arithmetic on an explicit clock, the buckets
 * store (keys, max_keys eviction), the filter built from a real config
 * (keys, match, the rejection, the synchronous local path, metrics), config
 * validation, and the Redis store's behaviour when Redis is not there.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { loadConfigText } from '../../src/config/load';
import { Exchange } from '../../src/exchange';
import { ErrorCode, ProxyError } from '../../src/errors';
import { MetricsRegistry } from '../../src/metrics';
import { createLogger } from '../../src/logger';
import type { LocalReply, PhaseFilter, Verdict } from '../../src/filter';
import { rateLimitFilter } from '../../filters/rate_limit';
import { BucketPolicy, LocalBuckets, TokenBucket } from '../../filters/rate_limit/token-bucket';
import { RedisLimiter, RECONNECT_BACKOFF_MS } from '../../filters/rate_limit/redis-limiter';
import { freePort } from '../helpers/net';
import { reg, buildFilter, issuesOf, hasIssue, metric } from '../helpers/filters';

/** A tcp listener whose filter chain is the given YAML flow sequence items, one per line. */
function config(...filters: string[]): string {
  return [
    'listeners:',
    '  - name: l1',
    '    address: 127.0.0.1:7000',
    '    protocol: tcp',
    '    filters:',
    ...filters.map((f) => `      - ${f}`),
    '    routes: [{ name: r1, cluster: c }]',
    'clusters:',
    '  - { name: c, endpoints: ["127.0.0.1:6379"] }',
    '',
  ].join('\n');
}

/** Builds the last filter of the chain the way the proxy does. */
function build(filterYaml: string | string[], metrics = new MetricsRegistry()): { f: PhaseFilter; metrics: MetricsRegistry } {
  const chain = typeof filterYaml === 'string' ? [filterYaml] : filterYaml;
  const f = buildFilter<PhaseFilter>(rateLimitFilter, config(...chain), { metrics, slot: chain.length - 1 });
  return { f, metrics };
}

function ex(client = '10.0.0.1', attrs: Record<string, string> = {}, route: string | null = null): Exchange {
  const e = new Exchange('l1', 'tcp', client, 40000);
  Object.assign(e.attrs, attrs);
  e.route = route;
  return e;
}

/** Runs onRequest, insisting that it answered synchronously. */
function syncRun(f: PhaseFilter, e: Exchange): Verdict {
  const v = f.onRequest!(e);
  assert.ok(!(v instanceof Promise), 'local mode answers without a promise');
  return v as Verdict;
}

describe('token bucket arithmetic', () => {
  test('a full bucket lets burst requests through at once, then refuses', () => {
    const p = new BucketPolicy(10, 1000, 5);
    const b = p.fresh(0);
    for (let i = 0; i < 5; i++) assert.equal(p.take(b, 0), 0, `request ${i}`);
    assert.equal(p.take(b, 0), 100, 'the next token comes after 1/rate = 100 ms');
  });

  test('after the burst, the steady rate holds: one request per 1/rate', () => {
    const p = new BucketPolicy(10, 1000, 5);
    const b = p.fresh(0);
    for (let i = 0; i < 5; i++) p.take(b, 0);
    // Try every millisecond for 10 s: exactly rate * 10 s more get through, each 100 ms apart.
    const passed: number[] = [];
    for (let t = 1; t <= 10_000; t++) if (p.take(b, t) === 0) passed.push(t);
    assert.equal(passed.length, 100);
    assert.deepEqual(passed.slice(0, 3), [100, 200, 300]);
  });

  test('refill never exceeds burst, however long the bucket was idle', () => {
    const p = new BucketPolicy(10, 1000, 3);
    const b = p.fresh(0);
    for (let i = 0; i < 3; i++) p.take(b, 0);
    const later = 3_600_000;
    let n = 0;
    while (p.take(b, later) === 0) n++;
    assert.equal(n, 3);
  });

  test('partial refill: tokens accumulate between requests', () => {
    const p = new BucketPolicy(4, 1000, 4); // a token every 250 ms
    const b = p.fresh(0);
    for (let i = 0; i < 4; i++) p.take(b, 0);
    assert.equal(p.take(b, 600), 0, 'two tokens came by 600 ms');
    assert.equal(p.take(b, 600), 0);
    assert.equal(p.take(b, 600), 150, 'the third is due at 750 ms');
  });

  test('retryAfterMs is exact: refused one millisecond before it, allowed at it', () => {
    const cases: [number, number, number][] = [
      [10, 1000, 5],
      [3, 1000, 3],
      [1, 60_000, 1],
      [0.5, 1000, 1],
      [7, 1000, 2],
      [1000, 1000, 1000],
    ];
    for (const [rate, per, burst] of cases) {
      const p = new BucketPolicy(rate, per, burst);
      let t = 0;
      const b = p.fresh(t);
      for (let round = 0; round < 20; round++) {
        while (p.take(b, t) === 0);
        const wait = p.take(b, t);
        assert.ok(wait >= 1);
        if (wait > 1) {
          const probe = new TokenBucket(b.tokens, b.last);
          assert.ok(p.take(probe, t + wait - 1) > 0, `rate ${rate}/${per}: refused at ${wait - 1} ms`);
        }
        assert.equal(p.take(b, t + wait), 0, `rate ${rate}/${per}: allowed after ${wait} ms`);
        t += wait + (round % 3) * 7;
      }
    }
  });

  test('retryAfterMs for a slow rate is the full period', () => {
    const p = new BucketPolicy(1, 3_600_000, 1);
    const b = p.fresh(0);
    assert.equal(p.take(b, 0), 0);
    assert.equal(p.take(b, 0), 3_600_000);
    assert.equal(p.take(b, 1_800_000), 1_800_000);
  });

  test('a clock that goes backwards adds no tokens', () => {
    const p = new BucketPolicy(10, 1000, 1);
    const b = p.fresh(1000);
    assert.equal(p.take(b, 1000), 0);
    assert.ok(p.take(b, 500) > 0);
    assert.equal(p.take(b, 1100), 0);
  });
});

describe('LocalBuckets', () => {
  test('each key has its own bucket; undefined is one shared bucket', () => {
    const s = new LocalBuckets(new BucketPolicy(1, 1000, 1), 100, 0);
    assert.equal(s.take('a', 0), 0);
    assert.ok(s.take('a', 0) > 0);
    assert.equal(s.take('b', 0), 0, 'b is not drained by a');
    assert.equal(s.take(undefined, 0), 0);
    assert.ok(s.take(undefined, 0) > 0, 'the shared bucket is one bucket');
    assert.equal(s.size, 2, 'the shared bucket is not a keyed entry');
  });

  test('max_keys: the least recently used bucket is dropped, and counted', () => {
    let evicted = 0;
    const s = new LocalBuckets(new BucketPolicy(1, 3_600_000, 1), 2, 0, () => evicted++);
    s.take('a', 0);
    s.take('b', 0);
    s.take('a', 1); // a is now the most recent
    s.take('c', 2); // full: b goes
    assert.equal(evicted, 1);
    assert.equal(s.size, 2);
    assert.ok(s.has('a') && s.has('c') && !s.has('b'));
    assert.ok(s.take('a', 3) > 0, 'a kept its (empty) bucket');
    assert.equal(s.take('b', 3), 0, 'b starts again with a full bucket');
  });

  test('memory stays bounded under many distinct clients', () => {
    let evicted = 0;
    const s = new LocalBuckets(new BucketPolicy(5, 1000, 5), 100, 0, () => evicted++);
    for (let i = 0; i < 20_000; i++) s.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, i);
    assert.equal(s.size, 100);
    assert.equal(evicted, 20_000 - 100);
  });

  test('the repeated-key shortcut still keeps LRU order right', () => {
    const s = new LocalBuckets(new BucketPolicy(1, 3_600_000, 1), 2, 0);
    s.take('a', 0);
    s.take('b', 0);
    s.take('b', 0);
    s.take('a', 0);
    s.take('a', 0);
    s.take('c', 0); // b is least recent
    assert.ok(s.has('a') && s.has('c') && !s.has('b'));
  });
});

describe('rate_limit filter (local mode)', () => {
  test('onRequest answers synchronously, allowing burst then rejecting with PW_ERR_RATE_LIMITED', () => {
    const { f } = build('{ type: rate_limit, rate: 2, per: 1h, burst: 3 }');
    for (let i = 0; i < 3; i++) assert.equal(syncRun(f, ex()), undefined);
    const v = syncRun(f, ex()) as LocalReply;
    assert.ok(v && v.error instanceof ProxyError);
    assert.equal(v.error.code, ErrorCode.RateLimited);
    assert.equal(v.error.source, 'downstream');
    // Empty bucket, 2 tokens an hour: the next one in 30 minutes, give or take the time the test took.
    assert.ok(v.error.retryAfterMs! > 1_790_000 && v.error.retryAfterMs! <= 1_800_000, `retryAfterMs ${v.error.retryAfterMs}`);
  });

  test('burst defaults to rate rounded up', () => {
    const { f } = build('{ type: rate_limit, rate: 2.5, per: 1h }');
    let n = 0;
    while (syncRun(f, ex()) === undefined) n++;
    assert.equal(n, 3);
  });

  test('key listener: every client shares one bucket', () => {
    const { f } = build('{ type: rate_limit, rate: 1, per: 1h, key: listener }');
    assert.equal(syncRun(f, ex('10.0.0.1')), undefined);
    assert.notEqual(syncRun(f, ex('10.0.0.2')), undefined);
  });

  test('key client: each client address has its own bucket', () => {
    const { f } = build('{ type: rate_limit, rate: 1, per: 1h, key: client }');
    assert.equal(syncRun(f, ex('10.0.0.1')), undefined);
    assert.notEqual(syncRun(f, ex('10.0.0.1')), undefined);
    assert.equal(syncRun(f, ex('10.0.0.2')), undefined);
  });

  test('key attribute:<name>: a bucket per value; requests without it share the "(none)" bucket', () => {
    const { f } = build('{ type: rate_limit, rate: 1, per: 1h, key: "attribute:command" }');
    assert.equal(syncRun(f, ex('c', { command: 'GET' })), undefined);
    assert.notEqual(syncRun(f, ex('c', { command: 'GET' })), undefined);
    assert.equal(syncRun(f, ex('c', { command: 'SET' })), undefined);
    assert.equal(syncRun(f, ex('c', {})), undefined, 'the first request without the attribute');
    assert.notEqual(syncRun(f, ex('d', {})), undefined, 'a second one, from another client, finds the shared bucket empty');
    assert.equal(syncRun(f, ex('c', { command: '(none)' })), undefined, 'a value named "(none)" has its own bucket, not the keyless one');
    assert.equal(syncRun(f, ex('c', { other: 'x', command: 'DEL' })), undefined);
  });

  test('key attribute with match present: true exempts requests without the attribute', () => {
    const { f } = build('{ type: rate_limit, rate: 1, per: 1h, key: "attribute:topic", match: { attributes: { topic: { present: true } } } }');
    for (let i = 0; i < 5; i++) assert.equal(syncRun(f, ex('c', {})), undefined);
    assert.equal(syncRun(f, ex('c', { topic: 't' })), undefined);
    assert.notEqual(syncRun(f, ex('c', { topic: 't' })), undefined);
  });

  test('key route: a bucket per route chosen earlier; no route shares one bucket', () => {
    const { f } = build(['{ type: router }', '{ type: rate_limit, rate: 1, per: 1h, key: route }']);
    assert.equal(syncRun(f, ex('c', {}, 'r1')), undefined);
    assert.notEqual(syncRun(f, ex('c', {}, 'r1')), undefined);
    assert.equal(syncRun(f, ex('c', {}, 'r2')), undefined);
    assert.equal(syncRun(f, ex('c', {}, null)), undefined);
    assert.notEqual(syncRun(f, ex('c', {}, null)), undefined);
  });

  test('match: only matching requests are counted against the bucket', () => {
    const { f } = build('{ type: rate_limit, rate: 1, per: 1h, match: { attributes: { command: { prefix: "GET" } }, source_cidr: ["10.0.0.0/8"] } }');
    for (let i = 0; i < 5; i++) assert.equal(syncRun(f, ex('10.0.0.1', { command: 'SET' })), undefined, 'unmatched attribute');
    for (let i = 0; i < 5; i++) assert.equal(syncRun(f, ex('192.168.0.1', { command: 'GET' })), undefined, 'unmatched address');
    assert.equal(syncRun(f, ex('10.0.0.1', { command: 'GETRANGE' })), undefined);
    assert.notEqual(syncRun(f, ex('10.0.0.2', { command: 'GET' })), undefined);
  });

  test('max_keys bounds the buckets of a client key, and evictions are counted', () => {
    const { f, metrics } = build('{ type: rate_limit, rate: 1, per: 1h, key: client, max_keys: 3 }');
    for (let i = 0; i < 10; i++) assert.equal(syncRun(f, ex(`10.0.0.${i}`)), undefined);
    assert.equal(metric(metrics, 'portway_rate_limit_evicted_total', 'filter="rate_limit",listener="l1"'), 7);
    assert.notEqual(syncRun(f, ex('10.0.0.9')), undefined, 'a recent client still has its bucket');
    assert.equal(syncRun(f, ex('10.0.0.0')), undefined, 'an evicted one starts full again');
  });

  test('allowed and limited are counted per listener and filter name, with no per-client label', () => {
    const metrics = new MetricsRegistry();
    const { f } = build('{ type: rate_limit, name: rl-client, rate: 2, per: 1h, key: client }', metrics);
    for (let i = 0; i < 5; i++) syncRun(f, ex('10.0.0.1'));
    for (let i = 0; i < 5; i++) syncRun(f, ex('10.0.0.2'));
    assert.equal(metric(metrics, 'portway_rate_limit_allowed_total', 'filter="rl-client",listener="l1"'), 4);
    assert.equal(metric(metrics, 'portway_rate_limit_limited_total', 'filter="rl-client",listener="l1"'), 6);
    assert.doesNotMatch(metrics.render(), /10\.0\.0\./, 'no client address in any series');
  });
});

describe('rate_limit config validation', () => {
  test('rate, per and key are checked with their paths', () => {
    const issues = issuesOf(config('{ type: rate_limit, rate: -1, per: soon, key: nonsense }'));
    hasIssue(issues, 'listeners[0].filters[0].rate', /must be > 0/);
    hasIssue(issues, 'listeners[0].filters[0].per', /must be a duration/);
    hasIssue(issues, 'listeners[0].filters[0].key', /must be listener, route, client or attribute:<name>/);
  });

  test('rate is required; burst and max_keys are positive integers; unknown keys are named', () => {
    const issues = issuesOf(config('{ type: rate_limit, burst: 0, max_keys: 1.5, bucket: 3 }'));
    hasIssue(issues, 'listeners[0].filters[0].rate', /is required/);
    hasIssue(issues, 'listeners[0].filters[0].burst', />= 1/);
    hasIssue(issues, 'listeners[0].filters[0].max_keys', /must be integer/);
    hasIssue(issues, 'listeners[0].filters[0].bucket', /unknown property \(expected one of: .*rate.*burst.*\)/);
  });

  test('mode and on_redis_error take their listed values', () => {
    const issues = issuesOf(config('{ type: rate_limit, rate: 1, mode: cluster, on_redis_error: maybe }'));
    hasIssue(issues, 'listeners[0].filters[0].mode', /must be one of: local, global/);
    hasIssue(issues, 'listeners[0].filters[0].on_redis_error', /must be one of: allow, deny/);
  });

  test('per must be more than zero', () => {
    hasIssue(issuesOf(config('{ type: rate_limit, rate: 1, per: 0 }')), 'listeners[0].filters[0].per', /greater than 0/);
  });

  test('global mode needs redis, with a valid address; local mode refuses a redis block', () => {
    hasIssue(issuesOf(config('{ type: rate_limit, rate: 1, mode: global }')), 'listeners[0].filters[0].redis', /required when mode is global/);
    hasIssue(issuesOf(config('{ type: rate_limit, rate: 1, mode: global, redis: { address: "nohost" } }')), 'listeners[0].filters[0].redis.address', /host:port/);
    hasIssue(issuesOf(config('{ type: rate_limit, rate: 1, mode: global, redis: { address: "127.0.0.1:6379", timeout: 0 } }')), 'listeners[0].filters[0].redis.timeout', /greater than 0/);
    hasIssue(issuesOf(config('{ type: rate_limit, rate: 1, redis: { address: "127.0.0.1:6379" } }')), 'listeners[0].filters[0].redis', /only used when mode is global/);
    hasIssue(issuesOf(config('{ type: rate_limit, rate: 1, mode: global, redis: { address: "127.0.0.1:6379", db: -1, tls: true } }')), 'listeners[0].filters[0].redis.tls', /unknown property/);
  });

  test('key route needs a router before the rate limit', () => {
    hasIssue(issuesOf(config('{ type: rate_limit, rate: 1, key: route }')), 'listeners[0].filters[0].key', /router filter earlier/);
    hasIssue(issuesOf(config('{ type: rate_limit, rate: 1, key: route }', '{ type: router }')), 'listeners[0].filters[0].key', /router filter earlier/);
    loadConfigText(config('{ type: router }', '{ type: rate_limit, rate: 1, key: route }'), reg);
  });

  test('match: exactly one test per attribute, valid regex and CIDRs', () => {
    const issues = issuesOf(config('{ type: rate_limit, rate: 1, match: { attributes: { a: { prefix: x, exact: y }, b: { regex: "(" } }, source_cidr: ["10.0.0.0/33"] } }'));
    hasIssue(issues, 'listeners[0].filters[0].match.attributes.a', /exactly one of/);
    hasIssue(issues, 'listeners[0].filters[0].match.attributes.b.regex', /invalid regular expression/);
    hasIssue(issues, 'listeners[0].filters[0].match.source_cidr[0]', /prefix length/);
  });

  test('a valid config gets its defaults filled in', () => {
    const cfg = loadConfigText(config('{ type: rate_limit, rate: 100, mode: global, redis: { address: "127.0.0.1:6379" } }'), reg);
    const c = cfg.listeners[0]!.filters[0]!.config;
    assert.equal(c['per'], '1s');
    assert.equal(c['key'], 'listener');
    assert.equal(c['on_redis_error'], 'allow');
    assert.deepEqual(c['redis'], { address: '127.0.0.1:6379', db: 0, timeout: '100ms' });
  });
});

describe('RedisLimiter without a working Redis', () => {
  const policy = new BucketPolicy(10, 1000, 10);

  test('a refused connection is an error answer, and later decisions in the backoff window fail at once', async () => {
    const port = await freePort();
    const l = new RedisLimiter({ host: '127.0.0.1', port, db: 0, timeoutMs: 1000, policy, logger: createLogger('silent') });
    try {
      const first = await l.take('k');
      assert.equal(first.ok, false);
      // Still inside the backoff window (it is a second long): no new connect, the status stays 'end'.
      const before = l.status;
      const second = await l.take('k');
      assert.equal(second.ok, false);
      assert.match((second as { reason: string }).reason, /unavailable/);
      assert.equal(before, 'end');
      assert.equal(l.status, 'end', 'no connect attempt inside the backoff window');
      assert.ok(RECONNECT_BACKOFF_MS > 0);
    } finally {
      l.close();
    }
  });

  test('a server that accepts but never answers: the decision ends at the timeout with an error', async () => {
    const held: Socket[] = [];
    const silent: Server = createServer((s) => held.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    const l = new RedisLimiter({ host: '127.0.0.1', port, db: 0, timeoutMs: 150, policy, logger: createLogger('silent') });
    try {
      const started = performance.now();
      const answers = await Promise.all([l.take('a'), l.take('b'), l.take('c')]);
      for (const a of answers) assert.equal(a.ok, false);
      assert.match((answers[0] as { reason: string }).reason, /within 150 ms/);
      // Not a speed check: only that it did wait for the timeout before giving up.
      assert.ok(performance.now() - started >= 149);
    } finally {
      l.close();
      for (const s of held) s.destroy();
      silent.close();
    }
  });

  test('a closed limiter answers with an error and does not connect', async () => {
    const port = await freePort();
    const l = new RedisLimiter({ host: '127.0.0.1', port, db: 0, timeoutMs: 100, policy, logger: createLogger('silent') });
    l.close();
    const a = await l.take('k');
    assert.equal(a.ok, false);
  });
});
