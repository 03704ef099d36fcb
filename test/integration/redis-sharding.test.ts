import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';

describe('Redis sharded cluster (ketama over three real servers)', () => {
  const servers: RedisServer[] = [];
  const direct: Redis[] = [];
  let pw: InProcess;
  let r: Redis;

  before(async () => {
    for (let i = 0; i < 3; i++) servers.push(await startRedis());
    for (const s of servers) direct.push(new Redis({ port: s.port, host: '127.0.0.1' }));
    pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: shards }]
clusters:
  - name: shards
    sharding: { hash: murmur, distribution: ketama, hash_tag: "{}" }
    endpoints:
${servers.map((s, i) => `      - { address: "${s.address}", weight: ${i + 1} }`).join('\n')}
`);
    r = new Redis({ port: pw.port('redis'), host: '127.0.0.1' });
  });
  after(async () => {
    r.disconnect();
    for (const d of direct) d.disconnect();
    await pw.stop();
    for (const s of servers) await s.stop();
  });

  test('every key lives on exactly one server, and all servers get some', async () => {
    for (let i = 0; i < 300; i++) await r.set(`k:${i}`, String(i));
    const counts = await Promise.all(direct.map((d) => d.dbsize()));
    assert.equal(counts.reduce((a, b) => a + b, 0), 300);
    // Which server a key lands on depends on the ports (part of each shard's name); with 300 keys
    // over three servers, at least two of them get keys whatever the ports.
    assert.ok(counts.filter((c) => c > 0).length >= 2, `spread: ${counts.join(',')}`);
    for (let i = 0; i < 300; i += 37) {
      const holders = (await Promise.all(direct.map((d) => d.exists(`k:${i}`)))).filter((x) => x === 1);
      assert.equal(holders.length, 1);
    }
    assert.equal(await r.dbsize(), 300, 'DBSIZE is the sum over shards');
  });

  test('MGET, MSET, DEL, EXISTS across shards are split and merged in order', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `m:${i}`);
    assert.equal(await r.mset(...keys.flatMap((k) => [k, `v-${k}`])), 'OK');
    const vals = await r.mget(...keys, 'm:none');
    assert.deepEqual(vals, [...keys.map((k) => `v-${k}`), null]);
    assert.equal(await r.exists(...keys.slice(0, 10), 'm:none'), 10);
    assert.equal(await r.del(...keys.slice(0, 5)), 5);
    assert.equal(await r.exists(...keys), 15);
  });

  test('KEYS merges, SCAN iterates every shard exactly once', async () => {
    const all = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await r.scan(cursor, 'MATCH', 'k:*', 'COUNT', 50);
      for (const k of batch) {
        assert.ok(!all.has(k), `no duplicates (${k})`);
        all.add(k);
      }
      cursor = next;
    } while (cursor !== '0');
    assert.equal(all.size, 300);
    assert.equal((await r.keys('k:*')).length, 300);
  });

  test('hash tags keep related keys on one shard; multi-key commands then work', async () => {
    await r.sadd('{user:7}:a', 'x', 'y');
    await r.sadd('{user:7}:b', 'y', 'z');
    assert.deepEqual(await r.sinter('{user:7}:a', '{user:7}:b'), ['y']);
    assert.equal(await r.rename('{user:7}:a', '{user:7}:c'), 'OK');
    const where = await Promise.all(direct.map((d) => d.exists('{user:7}:b', '{user:7}:c')));
    assert.ok(where.includes(2), 'both keys on the same server');
  });

  test('cross-shard commands that cannot be split answer -CROSSSLOT; connection state is refused clearly', async () => {
    // Find two keys on different shards.
    let a = 'x:0';
    let b = '';
    const owner = async (k: string) => (await Promise.all(direct.map((d) => d.exists(k)))).indexOf(1);
    await r.set(a, '1');
    for (let i = 1; i < 100 && !b; i++) {
      await r.set(`x:${i}`, '1');
      if ((await owner(`x:${i}`)) !== (await owner(a))) b = `x:${i}`;
    }
    await assert.rejects(r.sunion(a, b), /CROSSSLOT Keys in request don't hash to the same slot/);
    await assert.rejects(r.rename(a, b), /CROSSSLOT/);
    await assert.rejects(r.select(1), /SELECT is not allowed: cluster 'shards' is sharded/);
    await assert.rejects(r.multi().set('a', '1').exec(), /sharded/);
  });

  test('FLUSHALL is broadcast to every shard', async () => {
    assert.equal(await r.flushall(), 'OK');
    const counts = await Promise.all(direct.map((d) => d.dbsize()));
    assert.deepEqual(counts, [0, 0, 0]);
  });
});

describe('Redis sharding: FLUSHALL can be disabled', () => {
  test('allow_flush: false refuses FLUSHALL on a sharded cluster', async () => {
    const a = await startRedis();
    const b = await startRedis();
    const pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    options: { allow_flush: false }
    routes: [{ cluster: s }]
clusters:
  - name: s
    sharding: {}
    endpoints: ["${a.address}", "${b.address}"]
`);
    const r = new Redis({ port: pw.port('redis'), host: '127.0.0.1' });
    try {
      await r.set('keep', '1');
      await assert.rejects(r.flushall(), /FLUSHALL is disabled/);
      assert.equal(await r.get('keep'), '1');
    } finally {
      r.disconnect();
      await pw.stop();
      await a.stop();
      await b.stop();
    }
  });
});
