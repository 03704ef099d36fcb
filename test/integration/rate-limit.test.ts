/**
 * rate_limit through real TCP listeners: for L4 a request is a connection,
 * so an empty bucket closes the connection and counts PW_ERR_RATE_LIMITED.
 * Global mode runs against a real redis-server (test/helpers/redis.ts) with
 * two Portway instances sharing one limit, then with Redis killed and frozen.
 *
 * Every limit here is rate N per 1h: refill during a test is negligible, so
 * the counts are exact.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import Redis from 'ioredis';
import { startPortway, type InProcess } from '../helpers/portway';
import { tcpServer, http, waitFor, type TestServer } from '../helpers/net';
import { startRedis, type RedisServer } from '../helpers/redis';

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function metrics(p: InProcess): Promise<string> {
  return (await http('GET', `${p.admin}/metrics`)).body;
}

/**
 * Opens a connection and says "ping". True when the echo came back (the
 * connection was let through), false when the proxy closed it without a byte.
 */
function attempt(port: number, localAddress?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    let got = '';
    s.on('connect', () => s.write('ping'));
    s.on('data', (c: Buffer) => {
      got += c.toString();
      if (got === 'ping') s.destroy();
    });
    s.on('error', () => {});
    s.on('close', () => resolve(got === 'ping'));
  });
}

describe('rate_limit, local mode, on a TCP listener', () => {
  let echo: TestServer;
  let upstreamConnections = 0;
  let pw: InProcess;

  before(async () => {
    echo = await tcpServer((s) => {
      upstreamConnections++;
      s.pipe(s);
    });
    pw = await startPortway(`
listeners:
  - name: rl
    address: 127.0.0.1:0
    protocol: tcp
    filters:
      - { type: rate_limit, name: per-client, rate: 3, per: 1h, key: client }
    routes: [{ cluster: echo }]
clusters:
  - { name: echo, endpoints: ["${echo.address}"] }
`);
  });
  after(async () => {
    await pw.stop();
    await echo.close();
  });

  test('burst connections from a client pass; the rest are closed and counted as PW_ERR_RATE_LIMITED', async () => {
    const results: boolean[] = [];
    for (let i = 0; i < 7; i++) results.push(await attempt(pw.port('rl')));
    assert.deepEqual(results, [true, true, true, false, false, false, false]);
    assert.equal(upstreamConnections, 3, 'rejected connections never reach the upstream');
    const m = await metrics(pw);
    assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_RATE_LIMITED",listener="rl"'), 4);
    assert.equal(metric(m, 'portway_rate_limit_allowed_total', 'filter="per-client",listener="rl"'), 3);
    assert.equal(metric(m, 'portway_rate_limit_limited_total', 'filter="per-client",listener="rl"'), 4);
  });

  test('another client address has its own bucket', async () => {
    // 127.0.0.2 is another loopback address on Linux: a second client without a second machine.
    const results: boolean[] = [];
    for (let i = 0; i < 4; i++) results.push(await attempt(pw.port('rl'), '127.0.0.2'));
    assert.deepEqual(results, [true, true, true, false]);
    assert.equal(await attempt(pw.port('rl')), false, 'the first client is still limited');
  });
});

describe('rate_limit, global mode, with a real Redis', () => {
  let redis: RedisServer;
  let echo: TestServer;
  let inspect: Redis;
  let prefixes = 0;
  /** A fresh key prefix per test, so tests never see each other's buckets. */
  const nextPrefix = () => `pwtest:${process.pid}:${++prefixes}:`;

  const listener = (name: string, filter: string) => `
  - name: ${name}
    address: 127.0.0.1:0
    protocol: tcp
    filters:
      - ${filter}
    routes: [{ cluster: echo }]`;

  const portway = (...listeners: string[]) =>
    startPortway(`
listeners:${listeners.join('')}
clusters:
  - { name: echo, endpoints: ["${echo.address}"] }
`);

  before(async () => {
    redis = await startRedis();
    echo = await tcpServer((s) => s.pipe(s));
    inspect = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    await inspect.connect();
  });
  after(async () => {
    inspect.disconnect();
    await echo.close();
    await redis.stop();
  });

  test('two Portway instances share one limit: burst connections pass in total', async () => {
    const prefix = nextPrefix();
    const filter = `{ type: rate_limit, rate: 4, per: 1h, key: client, mode: global, redis: { address: "${redis.address}", timeout: 2s, prefix: "${prefix}" } }`;
    const a = await portway(listener('shared', filter));
    const b = await portway(listener('shared', filter));
    try {
      const results: boolean[] = [];
      for (let i = 0; i < 5; i++) {
        results.push(await attempt(a.port('shared')));
        results.push(await attempt(b.port('shared')));
      }
      assert.equal(results.filter(Boolean).length, 4, `passed: ${results.join(',')}`);
      assert.deepEqual(results.slice(0, 4), [true, true, true, true], 'the first four, whichever instance took them');
      const [ma, mb] = await Promise.all([metrics(a), metrics(b)]);
      const lbl = 'filter="rate_limit",listener="shared"';
      assert.equal(metric(ma, 'portway_rate_limit_allowed_total', lbl) + metric(mb, 'portway_rate_limit_allowed_total', lbl), 4);
      assert.equal(metric(ma, 'portway_rate_limit_limited_total', lbl) + metric(mb, 'portway_rate_limit_limited_total', lbl), 6);
      const rl = 'code="PW_ERR_RATE_LIMITED",listener="shared"';
      assert.equal(metric(ma, 'portway_downstream_errors_total', rl), 3);
      assert.equal(metric(mb, 'portway_downstream_errors_total', rl), 3);
      for (const m of [ma, mb]) assert.doesNotMatch(m, /portway_rate_limit_redis_errors_total\{[^}]*\} [1-9]/, 'Redis answered every decision');

      // The bucket: one hash under the prefix, named by key kind and client, with a TTL of about the fill time.
      const keys = await inspect.keys(`${prefix}*`);
      assert.deepEqual(keys, [`${prefix}client:127.0.0.1`]);
      const h = await inspect.hgetall(keys[0]!);
      assert.ok(Number(h['tokens']) < 1, `tokens ${h['tokens']}`);
      assert.ok(Number(h['ts']) > 0);
      const ttl = await inspect.pttl(keys[0]!);
      assert.ok(ttl > 3_000_000 && ttl <= 3_601_000, `pttl ${ttl}`);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  test('after SCRIPT FLUSH, EVALSHA falls back to EVAL and decisions go on', async () => {
    const prefix = nextPrefix();
    const p = await portway(listener('flush', `{ type: rate_limit, rate: 10, per: 1h, mode: global, on_redis_error: deny, redis: { address: "${redis.address}", timeout: 2s, prefix: "${prefix}" } }`));
    try {
      assert.equal(await attempt(p.port('flush')), true);
      assert.equal(await attempt(p.port('flush')), true, 'the second decision on the connection uses EVALSHA');
      await inspect.script('FLUSH');
      await inspect.config('RESETSTAT');
      assert.equal(await attempt(p.port('flush')), true);
      const stats = await inspect.info('commandstats');
      // The EVALSHA after the flush failed with NOSCRIPT, and the script was sent again with EVAL.
      assert.match(stats, /cmdstat_evalsha:calls=1,.*failed_calls=1/);
      assert.match(stats, /cmdstat_eval:calls=1,/);
      const m = await metrics(p);
      assert.equal(metric(m, 'portway_rate_limit_allowed_total', 'filter="rate_limit",listener="flush"'), 3);
      assert.equal(metric(m, 'portway_rate_limit_redis_errors_total', 'filter="rate_limit",listener="flush",outcome="denied"'), 0);
      assert.equal(Math.floor(Number(await inspect.hget(`${prefix}listener`, 'tokens'))), 7, 'ten tokens, three taken (plus a sliver of refill)');
    } finally {
      await p.stop();
    }
  });

  test('Redis killed: fail-open lets connections through, fail-closed closes them; both counted; Redis back, limits again', async () => {
    const prefix = nextPrefix();
    const redisBlock = `redis: { address: "${redis.address}", timeout: 2s, prefix: "${prefix}" }`;
    const p = await portway(
      listener('open', `{ type: rate_limit, rate: 100, per: 1h, mode: global, on_redis_error: allow, ${redisBlock} }`),
      listener('closed', `{ type: rate_limit, rate: 100, per: 1h, mode: global, on_redis_error: deny, ${redisBlock} }`),
    );
    try {
      assert.equal(await attempt(p.port('open')), true);
      assert.equal(await attempt(p.port('closed')), true, 'with Redis up both let traffic through');

      await redis.stop();
      const open: boolean[] = [];
      const closed: boolean[] = [];
      for (let i = 0; i < 3; i++) {
        open.push(await attempt(p.port('open')));
        closed.push(await attempt(p.port('closed')));
      }
      assert.deepEqual(open, [true, true, true], 'fail open');
      assert.deepEqual(closed, [false, false, false], 'fail closed');
      let m = await metrics(p);
      assert.equal(metric(m, 'portway_rate_limit_redis_errors_total', 'filter="rate_limit",listener="open",outcome="allowed"'), 3);
      assert.equal(metric(m, 'portway_rate_limit_redis_errors_total', 'filter="rate_limit",listener="closed",outcome="denied"'), 3);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_RATE_LIMITED",listener="closed"'), 3);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_RATE_LIMITED",listener="open"'), 0);

      // Back on the same port (empty: persistence is off). After the reconnect backoff, decisions reach Redis again.
      await redis.start();
      await waitFor(() => attempt(p.port('closed')), 10_000, 'the fail-closed listener to let traffic through again');
      m = await metrics(p);
      assert.ok(metric(m, 'portway_rate_limit_allowed_total', 'filter="rate_limit",listener="closed"') >= 2);
    } finally {
      await p.stop();
      if (!redis.running()) await redis.start();
      inspect.disconnect();
      inspect = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      await inspect.connect();
    }
  });

  test('a frozen Redis: each decision gives up at the timeout and follows on_redis_error; no connection hangs', { timeout: 30_000 }, async () => {
    const prefix = nextPrefix();
    const redisBlock = `redis: { address: "${redis.address}", timeout: 300ms, prefix: "${prefix}" }`;
    const p = await portway(
      listener('open', `{ type: rate_limit, rate: 100, per: 1h, mode: global, on_redis_error: allow, ${redisBlock} }`),
      listener('closed', `{ type: rate_limit, rate: 100, per: 1h, mode: global, on_redis_error: deny, ${redisBlock} }`),
    );
    try {
      // Both connections up and used before Redis freezes.
      await waitFor(() => attempt(p.port('open')), 5000, 'open listener served');
      await waitFor(() => attempt(p.port('closed')), 5000, 'closed listener served');
      redis.pause();
      try {
        const [open, closed] = await Promise.all([attempt(p.port('open')), attempt(p.port('closed'))]);
        assert.equal(open, true, 'fail open after the timeout');
        assert.equal(closed, false, 'fail closed after the timeout');
      } finally {
        redis.resume();
      }
      const m = await metrics(p);
      assert.equal(metric(m, 'portway_rate_limit_redis_errors_total', 'filter="rate_limit",listener="open",outcome="allowed"'), 1);
      assert.equal(metric(m, 'portway_rate_limit_redis_errors_total', 'filter="rate_limit",listener="closed",outcome="denied"'), 1);
      // Thawed, Redis answers the fail-closed listener's decisions again.
      await waitFor(() => attempt(p.port('closed')), 5000, 'the fail-closed listener to let traffic through again');
    } finally {
      await p.stop();
    }
  });
});
