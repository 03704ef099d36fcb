import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { echoServer, freePort } from '../helpers/net';
import { Cluster } from '../../src/routing/cluster';
import { ConnectionPool } from '../../src/routing/pool';
import { MetricsRegistry } from '../../src/metrics';
import { createLogger } from '../../src/logger';
import { builtins } from '../../src/builtins';
import { loadConfigText } from '../../src/config/load';

async function cluster(endpoints: string[], limits: string): Promise<Cluster> {
  const cfg = loadConfigText(`clusters:\n  - name: p\n    endpoints: ${JSON.stringify(endpoints)}\n    limits: ${limits}\n`, builtins().registries);
  const c = new Cluster(cfg.clusters[0]!, new MetricsRegistry(), createLogger('silent'));
  await c.ready;
  return c;
}

describe('ConnectionPool (real sockets)', () => {
  test('a released connection is reused', async () => {
    const echo = await echoServer();
    const c = await cluster([echo.address], '{ max_connections_per_endpoint: 4 }');
    const pool = new ConnectionPool(c);
    const a = await pool.acquire();
    pool.release(a, true);
    assert.equal(pool.idleCount, 1);
    const b = await pool.acquire();
    assert.equal(b.socket, a.socket);
    assert.equal(c.endpoints[0]!.cxTotal.value, 1);
    pool.release(b, false);
    pool.close();
    await echo.close();
  });

  test('at the per-endpoint limit requests wait, and get a released connection', async () => {
    const echo = await echoServer();
    const c = await cluster([echo.address], '{ max_connections_per_endpoint: 1 }');
    const pool = new ConnectionPool(c);
    const a = await pool.acquire();
    const waiting = pool.acquire();
    assert.equal(pool.pendingCount, 1);
    pool.release(a, true);
    const b = await waiting;
    assert.equal(b.socket, a.socket);
    pool.close();
    await echo.close();
  });

  test('beyond max_pending_requests: PW_ERR_OVERFLOW at once', async () => {
    const echo = await echoServer();
    const c = await cluster([echo.address], '{ max_connections_per_endpoint: 1, max_pending_requests: 1 }');
    const pool = new ConnectionPool(c);
    await pool.acquire();
    const waiter = pool.acquire();
    await assert.rejects(pool.acquire(), { code: 'PW_ERR_OVERFLOW' });
    pool.close();
    await assert.rejects(waiter, { code: 'PW_ERR_DRAINING' });
    await echo.close();
  });

  test('a waiter whose deadline passes gets PW_ERR_TIMEOUT', async () => {
    const echo = await echoServer();
    const c = await cluster([echo.address], '{ max_connections_per_endpoint: 1 }');
    const pool = new ConnectionPool(c);
    await pool.acquire();
    await assert.rejects(pool.acquire(performance.now() + 50), { code: 'PW_ERR_TIMEOUT' });
    assert.equal(pool.pendingCount, 0);
    pool.close();
    await echo.close();
  });

  test('a connection closed instead of reused frees its slot for a waiter', async () => {
    const echo = await echoServer();
    const c = await cluster([echo.address], '{ max_connections_per_endpoint: 1 }');
    const pool = new ConnectionPool(c);
    const a = await pool.acquire();
    const waiting = pool.acquire();
    pool.release(a, false);
    const b = await waiting;
    assert.notEqual(b.socket, a.socket);
    pool.close();
    await echo.close();
  });

  test('connect failures fail over and surface as PW_ERR_UPSTREAM_CONNECT when all fail', async () => {
    const dead = await freePort();
    const echo = await echoServer();
    const c = await cluster([`127.0.0.1:${dead}`, echo.address], '{}');
    const pool = new ConnectionPool(c);
    const a = await pool.acquire();
    assert.equal(a.endpoint.address, echo.address);
    pool.close();
    const c2 = await cluster([`127.0.0.1:${dead}`], '{}');
    await assert.rejects(new ConnectionPool(c2).acquire(), { code: 'PW_ERR_UPSTREAM_CONNECT' });
    await echo.close();
  });
});

describe('DNS endpoints', () => {
  test('a host name resolves to every address it has, and the proxy can use them', async () => {
    const echo = await echoServer();
    const c = await cluster([`localhost:${echo.port}`], '{}');
    const addrs = c.endpoints.map((e) => e.address);
    assert.ok(addrs.includes(`127.0.0.1:${echo.port}`), addrs.join(','));
    assert.ok(c.endpoints.every((e) => e.configured === `localhost:${echo.port}`));
    assert.equal(c.dnsError, null);
    const pool = new ConnectionPool(c);
    const conn = await pool.acquire();
    assert.ok(conn.socket.remotePort === echo.port);
    pool.close();
    c.close();
    await echo.close();
  });

  test('a name that does not resolve is reported, not fatal', async () => {
    const c = await cluster(['no-such-host.invalid:6379'], '{}');
    assert.equal(c.endpoints.length, 0);
    assert.match(c.dnsError ?? '', /no-such-host\.invalid: (ENOTFOUND|EAI_AGAIN)/);
    assert.equal(c.pick(), null);
    c.close();
  });
});
