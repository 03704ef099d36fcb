/**
 * Read replicas: a real primary and a real replica (REPLICAOF). Read-only
 * commands go where the policy says, writes always to the primary; which
 * server ran what is read from each server's INFO commandstats.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { waitFor } from '../helpers/net';

/** calls=N of one command in INFO commandstats (0 when it never ran). */
async function calls(r: Redis, command: string): Promise<number> {
  const info = await r.info('commandstats');
  const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info);
  return m ? Number(m[1]) : 0;
}

describe('Redis read replicas', () => {
  let primary: RedisServer;
  let replica: RedisServer;
  let p: Redis;
  let rp: Redis;
  let pw: InProcess;
  const clients: Redis[] = [];
  const c = (listener: string) => {
    const r = new Redis({ port: pw.port(listener), host: '127.0.0.1', maxRetriesPerRequest: 0, enableReadyCheck: false });
    r.on('error', () => {});
    clients.push(r);
    return r;
  };
  const resetStats = async () => {
    await p.config('RESETSTAT');
    await rp.config('RESETSTAT');
  };
  /** Waits (bounded) until the replica has a key's value. */
  const replicated = (key: string, value: string) => waitFor(async () => (await rp.get(key)) === value, 5000, `replica has ${key}`);

  before(async () => {
    primary = await startRedis();
    replica = await startRedis();
    p = new Redis({ port: primary.port, host: '127.0.0.1' });
    rp = new Redis({ port: replica.port, host: '127.0.0.1' });
    rp.on('error', () => {});
    await rp.replicaof('127.0.0.1', primary.port);
    await waitFor(async () => /master_link_status:up/.test(await rp.info('replication')), 10000, 'replication link up');
    const listener = (name: string, policy: string) => `
  - name: ${name}
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: main }]
    options:
      read_replicas: [{ primary: main, replicas: replicas, policy: ${policy} }]`;
    pw = await startPortway(`
listeners:${listener('rr', 'replica')}${listener('pref', 'prefer-replica')}${listener('prim', 'primary')}
clusters:
  - { name: main, endpoints: ["${primary.address}"], connect_timeout: 1s }
  - { name: replicas, endpoints: ["${replica.address}"], connect_timeout: 300ms }
`);
  });
  after(async () => {
    for (const r of clients) r.disconnect();
    p?.disconnect();
    rp?.disconnect();
    await pw?.stop();
    await replica?.stop();
    await primary?.stop();
  });

  test('policy replica: writes on the primary, reads on the replica', async () => {
    const r = c('rr');
    await resetStats();
    for (let i = 0; i < 10; i++) assert.equal(await r.set(`rr:${i}`, `v${i}`), 'OK');
    assert.equal(await calls(p, 'set'), 10);
    await replicated('rr:9', 'v9');
    await resetStats();
    for (let i = 0; i < 10; i++) assert.equal(await r.get(`rr:${i}`), `v${i}`);
    assert.deepEqual(await r.mget('rr:0', 'rr:1'), ['v0', 'v1']);
    assert.equal(await calls(p, 'get'), 0);
    assert.equal(await calls(rp, 'get'), 10);
    assert.equal(await calls(rp, 'mget'), 1);
    // A transaction runs where the writes go, reads included.
    const tx = await r.multi().get('rr:0').incr('rr:n').exec();
    assert.deepEqual(tx, [[null, 'v0'], [null, 1]]);
    assert.equal(await calls(p, 'get'), 1);
  });

  test('policy primary: everything on the primary', async () => {
    const r = c('prim');
    await resetStats();
    await r.set('pr:1', 'a');
    assert.equal(await r.get('pr:1'), 'a');
    assert.equal(await calls(p, 'get'), 1);
    assert.equal(await calls(rp, 'get'), 0);
  });

  test('prefer-replica: the replica while it is up, the primary once it is gone', async () => {
    const r = c('pref');
    await r.set('pf:1', 'x');
    await replicated('pf:1', 'x');
    await resetStats();
    assert.equal(await r.get('pf:1'), 'x');
    assert.equal(await calls(rp, 'get'), 1);
    assert.equal(await calls(p, 'get'), 0);
    await replica.stop();
    // The first reads may fail while the dead replica is detected; then they go to the primary.
    await waitFor(async () => {
      try {
        return (await r.get('pf:1')) === 'x';
      } catch {
        return false;
      }
    }, 5000, 'reads served by the primary');
    assert.ok((await calls(p, 'get')) >= 1);
    assert.equal(await r.set('pf:2', 'y'), 'OK');
  });
});
