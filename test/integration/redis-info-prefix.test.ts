import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { RawRedisClient } from '../helpers/redis-server';

/** INFO text -> { section: { field: value } }. */
function parseInfo(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let cur: Record<string, string> | null = null;
  for (const line of text.split('\r\n')) {
    if (line.startsWith('# ')) out[line.slice(2)] = cur = {};
    else if (line.includes(':') && cur) cur[line.slice(0, line.indexOf(':'))] = line.slice(line.indexOf(':') + 1);
  }
  return out;
}

describe('INFO over a sharded pool', () => {
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
    sharding: { hash: murmur }
    endpoints: [${servers.map((s) => `"${s.address}"`).join(', ')}]
`);
    r = new Redis({ port: pw.port('redis'), host: '127.0.0.1' });
  });
  after(async () => {
    r.disconnect();
    for (const d of direct) d.disconnect();
    await pw.stop();
    for (const s of servers) await s.close();
  });

  test('sections are merged: keyspace summed per db, counters summed, the server section is Portway', async () => {
    for (let i = 0; i < 90; i++) {
      if (i % 3 === 0) await r.set(`i:${i}`, 'x', 'EX', 1000);
      else await r.set(`i:${i}`, 'x');
    }
    const info = parseInfo(await r.info());
    const shards = await Promise.all(direct.map(async (d) => parseInfo(await d.info())));
    // keys=90, expires=30, avg_ttl weighted by each shard's expiring keys.
    assert.match(info['Keyspace']!['db0']!, /^keys=90,expires=30,avg_ttl=\d+$/);
    assert.equal(info['Server']!['redis_mode'], 'standalone');
    assert.equal(info['Server']!['process_id'], String(process.pid));
    assert.equal(info['Server']!['tcp_port'], String(pw.port('redis')));
    assert.equal(info['Server']!['proxy_shards'], '3');
    assert.equal(info['Server']!['redis_version'], shards[0]!['Server']!['redis_version']);
    const sum = (sec: string, f: string) => shards.reduce((a, s) => a + Number(s[sec]![f]), 0);
    // Counters are summed (each shard's own counter moved a little since: compare with a floor).
    assert.ok(Number(info['Stats']!['total_commands_processed']) >= sum('Stats', 'total_commands_processed') - 10);
    assert.ok(Number(info['Stats']!['total_connections_received']) >= 3);
    assert.equal(info['Memory']!['maxmemory'], String(sum('Memory', 'maxmemory')));
    assert.match(info['Memory']!['used_memory_human']!, /^[\d.]+[BKMG]$/);
    assert.equal(info['Cluster']!['cluster_enabled'], '0');
    assert.equal(info['Replication']!['role'], 'master');
  });

  test('INFO <section> asks only for that section', async () => {
    const text = await r.info('keyspace');
    assert.deepEqual(Object.keys(parseInfo(text)), ['Keyspace']);
    assert.match(text, /^# Keyspace\r\ndb0:keys=90,/);
  });
});

describe('prefix routes with strip and add', () => {
  let a: RedisServer;
  let b: RedisServer;
  let da: Redis;
  let db: Redis;
  let pw: InProcess;
  let r: Redis;

  before(async () => {
    a = await startRedis();
    b = await startRedis();
    da = new Redis({ port: a.port, host: '127.0.0.1' });
    db = new Redis({ port: b.port, host: '127.0.0.1' });
    pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    options:
      prefix_routes:
        - { prefix: "app1:", cluster: a, strip: true, add: "t1:" }
        - { prefix: "app2:", cluster: b, add: "x:" }
        - { prefix: "plain:", cluster: b }
      catch_all_cluster: a
clusters:
  - { name: a, endpoints: ["${a.address}"] }
  - { name: b, endpoints: ["${b.address}"] }
`);
    r = new Redis({ port: pw.port('redis'), host: '127.0.0.1' });
  });
  after(async () => {
    r.disconnect();
    da.disconnect();
    db.disconnect();
    await pw.stop();
    await a.close();
    await b.close();
  });

  test('keys are rewritten on the way up: strip then add, add alone, or untouched', async () => {
    await r.set('app1:user:7', 'u7');
    await r.set('app2:k', 'w');
    await r.set('plain:p', 'p');
    assert.equal(await da.get('t1:user:7'), 'u7');
    assert.equal(await db.get('x:app2:k'), 'w');
    assert.equal(await db.get('plain:p'), 'p');
    assert.equal(await r.get('app1:user:7'), 'u7');
    assert.equal(await r.get('app2:k'), 'w');
    assert.equal(await da.exists('app1:user:7'), 0);
  });

  test('multi-key commands: every key by its own route, split over clusters and merged in order', async () => {
    assert.equal(await r.mset('app1:a', '1', 'app2:b', '2', 'plain:c', '3'), 'OK');
    assert.deepEqual(await r.mget('app2:b', 'app1:a', 'plain:c', 'app1:none'), ['2', '1', '3', null]);
    assert.equal(await da.get('t1:a'), '1');
    assert.equal(await db.get('x:app2:b'), '2');
    assert.equal(await r.del('app1:a', 'app2:b'), 2);
    assert.equal(await da.exists('t1:a'), 0);
  });

  test('replies that name keys are mapped back: KEYS, SCAN MATCH, RANDOMKEY, BLPOP, XREAD', async () => {
    await r.set('app1:b', '1');
    assert.deepEqual((await r.keys('app1:*')).sort(), ['app1:b', 'app1:user:7']);
    assert.deepEqual((await r.keys('app2:*')).sort(), ['app2:k']);
    const seen: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await r.scan(cursor, 'MATCH', 'app1:*', 'COUNT', 10);
      seen.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    assert.deepEqual(seen.sort(), ['app1:b', 'app1:user:7']);
    // KEYS without a routed prefix goes to the catch-all (a), whose one rewriting route maps keys back.
    assert.deepEqual((await r.keys('*')).sort(), ['app1:b', 'app1:user:7']);
    assert.match((await r.randomkey())!, /^app1:/);
    await r.rpush('app1:q', 'job');
    assert.deepEqual(await r.blpop('app1:q', 1), ['app1:q', 'job']);
    assert.equal(await da.exists('t1:q'), 0, 'popped upstream under the rewritten name');
    const id = await r.xadd('app2:s', '*', 'f', 'v');
    // XREAD names its streams (a RESP2 client here: ioredis speaks RESP3, where redis answers a map).
    const raw = await RawRedisClient.connect(pw.port('redis'));
    try {
      const reply = (await raw.send(['XREAD', 'STREAMS', 'app2:s', '0'])).toString();
      assert.equal(reply, `*1\r\n*2\r\n$6\r\napp2:s\r\n*1\r\n*2\r\n$${id!.length}\r\n${id}\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n`);
    } finally {
      raw.close();
    }
    assert.equal(await db.xlen('x:app2:s'), 1);
  });

  test('a RESP3 client gets its own key names too', async () => {
    const c = await RawRedisClient.connect(pw.port('redis'));
    try {
      assert.equal((await c.send(['HELLO', '3']))[0], '%'.charCodeAt(0));
      await c.send(['RPUSH', 'app1:q3', 'j']);
      assert.equal((await c.send(['BLPOP', 'app1:q3', '1'])).toString(), '*2\r\n$7\r\napp1:q3\r\n$1\r\nj\r\n');
      assert.match((await c.send(['RANDOMKEY'])).toString(), /^\$\d+\r\napp1:/);
    } finally {
      c.close();
    }
  });
});
