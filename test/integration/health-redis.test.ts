/**
 * Active Redis health checks against real redis-servers: a server frozen with
 * SIGSTOP (connections accepted, nothing answered) fails its PING probes by
 * timeout and turns unhealthy; requests through Portway to the non-sharded
 * two-endpoint cluster then go to the other server; after SIGCONT it turns
 * healthy again.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { http, waitFor } from '../helpers/net';

async function endpoint(pw: InProcess, address: string): Promise<any> {
  return (await http('GET', `${pw.admin}/clusters`)).json().clusters.find((c: any) => c.name === 'r').endpoints.find((e: any) => e.address === address);
}

function client(port: number): Redis {
  return new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, enableOfflineQueue: true, commandTimeout: 3000 });
}

describe('active health checks (redis)', () => {
  let r1: RedisServer;
  let r2: RedisServer;
  let pw: InProcess;
  const clients: Redis[] = [];

  before(async () => {
    r1 = await startRedis();
    r2 = await startRedis();
    pw = await startPortway(`
listeners:
  - { name: redis, address: 127.0.0.1:0, protocol: redis, routes: [{ cluster: r }] }
clusters:
  - name: r
    endpoints: ["${r1.address}", "${r2.address}"]
    connect_timeout: 1s
    health_check:
      active: { type: redis, interval: 100ms, timeout: 300ms, unhealthy_threshold: 2, healthy_threshold: 2 }
`);
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    r1.resume();
    await pw.stop();
    await r1.stop();
    await r2.stop();
  });

  test('a paused server turns unhealthy by probe timeout; requests go to the other endpoint; healthy again after resume', async () => {
    await waitFor(async () => (await endpoint(pw, r1.address)).active_check?.ok_streak >= 1 && (await endpoint(pw, r2.address)).active_check?.ok_streak >= 1, 5000, 'first PINGs answered');
    r1.pause();
    await waitFor(async () => (await endpoint(pw, r1.address)).health === 'unhealthy', 5000, 'paused server unhealthy');
    const down = await endpoint(pw, r1.address);
    assert.match(down.reason, /active health check failed: timed out after 300 ms/);
    assert.equal((await endpoint(pw, r2.address)).health, 'healthy');

    // New sessions pick the healthy server; every write lands on r2.
    const direct2 = client(r2.port);
    clients.push(direct2);
    for (let i = 0; i < 5; i++) {
      const c = client(pw.port('redis'));
      clients.push(c);
      assert.equal(await c.set(`hc:${i}`, `v${i}`), 'OK');
      assert.equal(await c.get(`hc:${i}`), `v${i}`);
      assert.equal(await direct2.get(`hc:${i}`), `v${i}`, 'written to the healthy server');
    }
    const m = (await http('GET', `${pw.admin}/metrics`)).body;
    assert.match(m, new RegExp(`portway_upstream_health\\{cluster="r",endpoint="${r1.address}"\\} 0`));
    assert.match(m, new RegExp(`portway_upstream_health_check_total\\{cluster="r",endpoint="${r1.address}",result="failure"\\} [1-9]`));

    r1.resume();
    await waitFor(async () => (await endpoint(pw, r1.address)).health === 'healthy', 5000, 'resumed server healthy again');
  });

  test('outlier detection: a link that breaks under a request counts as an error and ejects the endpoint', async () => {
    const p2 = await startPortway(`
listeners:
  - { name: redis, address: 127.0.0.1:0, protocol: redis, routes: [{ cluster: r }] }
clusters:
  - name: r
    endpoints: ["${r1.address}", "${r2.address}"]
    connect_timeout: 1s
    health_check:
      outlier: { consecutive_errors: 1, base_ejection_time: 1m }
`);
    try {
      const c = client(p2.port('redis'));
      clients.push(c);
      // The first pick of a fresh cluster is its first endpoint (round robin).
      assert.equal(await c.set('o:k', '1'), 'OK');
      const ep1 = await endpoint(p2, r1.address);
      assert.ok(ep1.rq_total >= 1, 'the session uses r1');
      // An error reply from the server is the application's business, not an endpoint failure.
      await assert.rejects(c.incr('o:k').then(() => c.set('o:s', 'abc')).then(() => c.incr('o:s')), /ERR value is not an integer/);
      assert.equal((await endpoint(p2, r1.address)).rq_total, ep1.rq_total + 3, 'answered by r1');
      assert.equal((await endpoint(p2, r1.address)).health, 'healthy', '-ERR does not eject');
      const blocked = c.blpop('o:nothing', 10).then(
        () => null,
        (e: Error) => e,
      );
      await waitFor(async () => (await endpoint(p2, r1.address)).cx_active >= 2, 5000, 'BLPOP on its own link');
      await r1.stop();
      const err = await blocked;
      assert.match(String(err), /ERR /, 'the blocked request fails');
      await waitFor(async () => (await endpoint(p2, r1.address)).health === 'ejected', 5000, 'r1 ejected');
      assert.equal((await endpoint(p2, r1.address)).reason, 'consecutive_errors');
      assert.equal((await endpoint(p2, r2.address)).health, 'healthy');
    } finally {
      await p2.stop();
      await r1.start();
    }
  });
});
