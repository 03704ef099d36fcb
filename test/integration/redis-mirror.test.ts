/**
 * Mirroring to a shadow cluster: two real redis-servers. Copies are sampled,
 * fire and forget; the client's replies come from the main cluster only, and
 * a dead shadow is only counted in a metric.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { freePort, http, sleep, waitFor } from '../helpers/net';

async function calls(r: Redis, command: string): Promise<number> {
  const info = await r.info('commandstats');
  const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info);
  return m ? Number(m[1]) : 0;
}

describe('Redis mirroring to a shadow cluster', () => {
  let main: RedisServer;
  let shadow: RedisServer;
  let m: Redis;
  let s: Redis;
  let pw: InProcess;
  const clients: Redis[] = [];
  const c = (listener: string) => {
    const r = new Redis({ port: pw.port(listener), host: '127.0.0.1', maxRetriesPerRequest: 0 });
    clients.push(r);
    return r;
  };

  before(async () => {
    main = await startRedis();
    shadow = await startRedis();
    m = new Redis({ port: main.port, host: '127.0.0.1' });
    s = new Redis({ port: shadow.port, host: '127.0.0.1' });
    const dead = await freePort();
    const listener = (name: string, mirror: string) => `
  - name: ${name}
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: main }]
    options:
      mirror: [${mirror}]`;
    pw = await startPortway(`
listeners:${listener('writes', '{ cluster: shadow }')}${listener('half', '{ cluster: shadow, sample: 0.5, commands: all }')}${listener('dead', '{ cluster: gone }')}
clusters:
  - { name: main, endpoints: ["${main.address}"], connect_timeout: 1s }
  - { name: shadow, endpoints: ["${shadow.address}"], connect_timeout: 1s }
  - { name: gone, endpoints: ["127.0.0.1:${dead}"], connect_timeout: 300ms }
`);
  });
  after(async () => {
    for (const r of clients) r.disconnect();
    m?.disconnect();
    s?.disconnect();
    await pw?.stop();
    await shadow?.stop();
    await main?.stop();
  });

  test('writes are copied, reads are not, replies come from the main cluster', async () => {
    await s.config('RESETSTAT');
    await s.set('only:shadow', 'shadow-value');
    const r = c('writes');
    for (let i = 0; i < 100; i++) assert.equal(await r.set(`w:${i}`, String(i)), 'OK');
    assert.equal(await r.get('only:shadow'), null, 'reads are answered by the main cluster');
    assert.equal(await r.incr('w:n'), 1);
    await waitFor(async () => (await s.get('w:n')) === '1', 5000, 'copies reach the shadow');
    assert.equal(await s.get('w:99'), '99');
    assert.equal(await calls(s, 'set'), 101);
    assert.equal(await calls(s, 'get'), 2, 'only the test\'s own GETs ran on the shadow');
    const metrics = (await http('GET', `${pw.admin}/metrics`)).body;
    assert.match(metrics, /portway_redis_mirrored_total\{cluster="shadow",listener="writes"\} 101/);
  });

  test('sample 0.5 of all commands copies about half', async () => {
    await s.config('RESETSTAT');
    const r = c('half');
    const p = r.pipeline();
    for (let i = 0; i < 1000; i++) p.get('w:1');
    const res = await p.exec();
    assert.ok(res!.every(([e, v]) => e === null && v === '1'));
    await sleep(300);
    const n = await calls(s, 'get');
    assert.ok(n > 380 && n < 620, `${n} of 1000 copied`);
  });

  test('a dead shadow is counted and does not affect the client', async () => {
    const r = c('dead');
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) assert.equal(await r.set(`d:${i}`, 'x'), 'OK');
    assert.ok(performance.now() - t0 < 3000);
    assert.equal(await m.get('d:49'), 'x');
    await waitFor(
      async () => {
        const body = (await http('GET', `${pw.admin}/metrics`)).body;
        const f = /portway_redis_mirror_failures_total\{cluster="gone",listener="dead"\} (\d+)/.exec(body);
        return f !== null && Number(f[1]) === 50;
      },
      5000,
      'every copy to the dead shadow counted as failed',
    );
  });
});
