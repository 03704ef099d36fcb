/**
 * The filter chain on the HTTP listener: rate limit (429 + Retry-After),
 * circuit breaker (503), timeout (504, the upstream request abandoned),
 * retries of idempotent requests only (and never of a body already sent),
 * connect failover to another endpoint, and active HTTP health checks.
 * Upstreams are node:http servers that answer, hang or reset on command.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startPortway } from '../helpers/portway';
import { http as adminGet, waitFor } from '../helpers/net';

interface Upstream {
  port: number;
  /** Requests seen, by method and url ("GET /x"). */
  seen: string[];
  /** Requests whose client went away before they were answered. */
  aborted: number;
  close(): Promise<void>;
}

async function upstream(handler: (req: IncomingMessage, res: ServerResponse, u: Upstream) => void): Promise<Upstream> {
  const u = { seen: [] as string[], aborted: 0 } as Upstream;
  const server: Server = createServer((req, res) => {
    u.seen.push(`${req.method} ${req.url}`);
    res.on('close', () => {
      if (!res.writableFinished) u.aborted++;
    });
    handler(req, res, u);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.port = (server.address() as AddressInfo).port;
  u.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return u;
}

const ok = (req: IncomingMessage, res: ServerResponse) => {
  req.resume();
  req.on('end', () => res.end(`ok ${req.url}`));
};

function send(port: number, method: string, path: string, body?: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('http resilience', () => {
  test('rate limit: 429 with Retry-After and the error code; other keys unaffected', async () => {
    const up = await upstream(ok);
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    filters:
      - { type: rate_limit, rate: 1, per: 1m, burst: 2, key: "attribute:path" }
    routes: [{ cluster: up }]
clusters:
  - { name: up, endpoints: ["127.0.0.1:${up.port}"] }
`);
    try {
      const port = pw.port('web');
      assert.equal((await send(port, 'GET', '/a')).status, 200);
      assert.equal((await send(port, 'GET', '/a')).status, 200);
      const r = await send(port, 'GET', '/a');
      assert.equal(r.status, 429);
      assert.equal(r.headers['x-portway-error'], 'PW_ERR_RATE_LIMITED');
      const after = Number(r.headers['retry-after']);
      assert.ok(Number.isInteger(after) && after >= 1 && after <= 60, `retry-after ${r.headers['retry-after']}`);
      assert.equal(JSON.parse(r.body).error, 'PW_ERR_RATE_LIMITED');
      assert.equal((await send(port, 'GET', '/b')).status, 200, 'another path has its own bucket');
      assert.deepEqual(up.seen, ['GET /a', 'GET /a', 'GET /b']);
    } finally {
      await pw.stop();
      await up.close();
    }
  });

  test('circuit breaker: upstream resets open it, then requests get 503 without reaching the upstream', async () => {
    const up = await upstream((req) => req.socket.destroy());
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    filters:
      - { type: circuit_breaker, consecutive_failures: 2, open_duration: 1m }
    routes: [{ cluster: up }]
clusters:
  - { name: up, endpoints: ["127.0.0.1:${up.port}"] }
`);
    try {
      const port = pw.port('web');
      const a = await send(port, 'POST', '/1', 'x');
      const b = await send(port, 'POST', '/2', 'x');
      assert.deepEqual([a.status, b.status], [502, 502]);
      assert.equal(a.headers['x-portway-error'], 'PW_ERR_UPSTREAM_RESET');
      const c = await send(port, 'POST', '/3', 'x');
      assert.equal(c.status, 503);
      assert.equal(c.headers['x-portway-error'], 'PW_ERR_CIRCUIT_OPEN');
      assert.deepEqual(up.seen, ['POST /1', 'POST /2']);
    } finally {
      await pw.stop();
      await up.close();
    }
  });

  test('timeout: 504, the upstream request is abandoned, the listener keeps serving', async () => {
    const up = await upstream((req, res) => {
      if (req.url === '/slow') return; // never answers
      ok(req, res);
    });
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    filters:
      - { type: timeout, timeout: 200ms }
    routes: [{ cluster: up }]
clusters:
  - { name: up, endpoints: ["127.0.0.1:${up.port}"] }
`);
    try {
      const port = pw.port('web');
      const r = await send(port, 'GET', '/slow');
      assert.equal(r.status, 504);
      assert.equal(r.headers['x-portway-error'], 'PW_ERR_TIMEOUT');
      await waitFor(() => up.aborted === 1, 5000, 'the upstream request to be aborted');
      assert.equal((await send(port, 'GET', '/fast')).body, 'ok /fast');
    } finally {
      await pw.stop();
      await up.close();
    }
  });

  test('retries: idempotent methods are sent again after a reset, POST and sent bodies are not', async () => {
    // Each url fails (connection reset after the request arrived) the first time it is seen.
    const up = await upstream((req, res, u) => {
      if (u.seen.filter((s) => s === `${req.method} ${req.url}`).length === 1) {
        req.socket.destroy();
        return;
      }
      ok(req, res);
    });
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    filters:
      - { type: retry, max_retries: 2, backoff: { base: 1ms, max: 5ms } }
    routes: [{ cluster: up }]
clusters:
  - { name: up, endpoints: ["127.0.0.1:${up.port}"] }
`);
    try {
      const port = pw.port('web');
      for (const m of ['GET', 'HEAD', 'OPTIONS', 'DELETE', 'PUT']) {
        const r = await send(port, m, `/${m.toLowerCase()}`);
        assert.equal(r.status, 200, `${m} retried`);
      }
      const post = await send(port, 'POST', '/post', 'x');
      assert.equal(post.status, 502, 'POST is not retried');
      assert.equal(post.headers['x-portway-error'], 'PW_ERR_UPSTREAM_RESET');
      const put = await send(port, 'PUT', '/put-body', 'payload');
      assert.equal(put.status, 502, 'a PUT whose body was sent is not retried');
      const count = (s: string) => up.seen.filter((x) => x === s).length;
      assert.equal(count('GET /get'), 2);
      assert.equal(count('PUT /put'), 2);
      assert.equal(count('POST /post'), 1);
      assert.equal(count('PUT /put-body'), 1);
    } finally {
      await pw.stop();
      await up.close();
    }
  });

  test('retries: a per-try timeout of an idempotent request moves on to another try', async () => {
    let n = 0;
    const up = await upstream((req, res) => {
      if (++n === 1) return; // the first try hangs
      ok(req, res);
    });
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    filters:
      - { type: timeout, timeout: 5s }
      - { type: retry, max_retries: 1, per_try_timeout: 150ms, backoff: { base: 1ms, max: 2ms } }
    routes: [{ cluster: up }]
clusters:
  - { name: up, endpoints: ["127.0.0.1:${up.port}"] }
`);
    try {
      const port = pw.port('web');
      const r = await send(port, 'GET', '/t');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'ok /t');
      await waitFor(() => up.aborted === 1, 5000, 'the abandoned try to be aborted');
    } finally {
      await pw.stop();
      await up.close();
    }
  });

  test('a refused connect moves to another endpoint, whatever the method', async () => {
    const dead = await upstream(ok);
    const deadPort = dead.port;
    await dead.close();
    const up = await upstream(ok);
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    routes: [{ cluster: two }]
clusters:
  - name: two
    endpoints: ["127.0.0.1:${deadPort}", "127.0.0.1:${up.port}"]
    health_check: { passive: { consecutive_failures: 100 } }
`);
    try {
      const port = pw.port('web');
      for (let i = 0; i < 4; i++) {
        const r = await send(port, 'POST', `/p${i}`, 'body');
        assert.equal(r.status, 200, `request ${i}`);
      }
      assert.equal(up.seen.length, 4);
    } finally {
      await pw.stop();
      await up.close();
    }
  });

  test('active http health check: an endpoint answering the wrong status is skipped', async () => {
    const good = await upstream((req, res) => (req.url === '/healthz' ? res.end('fine') : ok(req, res)));
    const bad = await upstream((req, res) => {
      if (req.url === '/healthz') {
        res.statusCode = 503;
        res.end('sick');
      } else ok(req, res);
    });
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    routes: [{ cluster: pair }]
clusters:
  - name: pair
    endpoints: ["127.0.0.1:${bad.port}", "127.0.0.1:${good.port}"]
    health_check:
      active: { type: http, path: /healthz, expected_statuses: ["200-299"], interval: 50ms, timeout: 1s, unhealthy_threshold: 1, healthy_threshold: 1 }
`);
    try {
      const port = pw.port('web');
      await waitFor(
        async () => {
          const cl = (await adminGet('GET', `${pw.admin}/clusters`)).json();
          const list = (Array.isArray(cl) ? cl : (cl.clusters ?? [])) as { name: string; endpoints: { address: string; health: string }[] }[];
          return list.find((c) => c.name === 'pair')?.endpoints.find((e) => e.address === `127.0.0.1:${bad.port}`)?.health === 'unhealthy';
        },
        5000,
        'the bad endpoint to turn unhealthy',
      );
      const before = bad.seen.filter((s) => !s.endsWith('/healthz')).length;
      for (let i = 0; i < 6; i++) assert.equal((await send(port, 'GET', `/r${i}`)).status, 200);
      assert.equal(bad.seen.filter((s) => !s.endsWith('/healthz')).length, before, 'no request went to the unhealthy endpoint');
      assert.ok(good.seen.includes('GET /healthz'), 'the probe sent GET /healthz');
    } finally {
      await pw.stop();
      await good.close();
      await bad.close();
    }
  });
});
