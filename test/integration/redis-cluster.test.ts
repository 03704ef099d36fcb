import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedisCluster, type RedisClusterHandle } from '../helpers/redis-cluster';
import { http, waitFor } from '../helpers/net';
import { startRedis, type RedisServer } from '../helpers/redis';
import { keySlot } from '../../src/routing/redis-slot';

/** portway_redis_cluster_events_total{kind} from /metrics. */
async function events(pw: InProcess, kind: string): Promise<number> {
  const body = (await http('GET', `${pw.admin}/metrics`)).body;
  const m = new RegExp(`portway_redis_cluster_events_total\\{[^}]*kind="${kind}"[^}]*\\} (\\d+)`).exec(body);
  return m ? Number(m[1]) : 0;
}

describe('Redis Cluster upstream (three masters made by redis-cli --cluster create)', () => {
  let rc: RedisClusterHandle;
  let single: RedisServer;
  let pw: InProcess;
  let r: Redis;
  const direct: Redis[] = [];

  before(async () => {
    rc = await startRedisCluster();
    single = await startRedis();
    for (let i = 0; i < 3; i++) direct.push(rc.client(i));
    // One seed is enough: the other masters come from the slot map. A long refresh interval keeps
    // the map stale during the migration test, so that MOVED has to be followed.
    pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: rc }]
    options:
      redis_cluster: [{ cluster: rc, refresh_interval: 10m }]
  - name: guarded
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: timeout, timeout: 2s }
    routes: [{ cluster: rc }]
    options:
      redis_cluster: [{ cluster: rc }]
  - name: mirrored
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: single }]
    options:
      redis_cluster: [{ cluster: rc }]
      mirror: [{ cluster: rc }]
clusters:
  - { name: rc, endpoints: ["${rc.nodes[0]!.address}"], connect_timeout: 1s }
  - { name: single, endpoints: ["${single.address}"] }
`);
    r = new Redis({ port: pw.port('redis'), host: '127.0.0.1' });
  });
  after(async () => {
    r?.disconnect();
    await pw?.stop();
    await rc?.stop();
    await single?.close();
  });

  test('keys over all slots land on their masters; DBSIZE is the sum', async () => {
    const n = 600;
    const p = r.pipeline();
    for (let i = 0; i < n; i++) p.set(`k:${i}`, String(i));
    const res = await p.exec();
    assert.ok(res!.every(([e, v]) => e === null && v === 'OK'));
    const counts = await Promise.all(direct.map((d) => d.dbsize()));
    assert.ok(counts.every((c) => c > 0), `every master holds keys: ${counts.join(',')}`);
    assert.equal(counts.reduce((a, b) => a + b, 0), n);
    assert.equal(await r.dbsize(), n);
    for (let i = 0; i < n; i += 7) assert.equal(await r.get(`k:${i}`), String(i));
  });

  test('MGET, MSET, DEL, EXISTS across nodes are split by slot and merged in order', async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `m:${i}`);
    assert.equal(await r.mset(...keys.flatMap((k) => [k, `v-${k}`])), 'OK');
    assert.deepEqual(await r.mget(...keys, 'm:none'), [...keys.map((k) => `v-${k}`), null]);
    assert.equal(await r.exists(...keys.slice(0, 10), 'm:none'), 10);
    assert.equal(await r.del(...keys.slice(0, 5)), 5);
    assert.equal(await r.exists(...keys), 35);
    assert.equal(await r.unlink('m:5', 'm:6', 'm:none'), 2);
  });

  test('cross-slot commands get CROSSSLOT; hash tags keep keys together', async () => {
    assert.notEqual(keySlot(Buffer.from('a')), keySlot(Buffer.from('b')));
    await assert.rejects(r.sinter('a', 'b'), /^ReplyError: CROSSSLOT Keys in request don't hash to the same slot/);
    await assert.rejects(r.rename('a', 'b'), /CROSSSLOT/);
    await r.sadd('{user:1}:x', 'p', 'q');
    await r.sadd('{user:1}:y', 'q', 'r');
    assert.deepEqual(await r.sinter('{user:1}:x', '{user:1}:y'), ['q']);
    assert.equal(await r.msetnx('{t}a', '1', '{t}b', '2'), 1);
  });

  test('SCAN visits every key of every master once; KEYS merges', async () => {
    const seen = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await r.scan(cursor, 'MATCH', 'k:*', 'COUNT', 100);
      for (const k of batch) {
        assert.ok(!seen.has(k), `no duplicate ${k}`);
        seen.add(k);
      }
      cursor = next;
    } while (cursor !== '0');
    assert.equal(seen.size, 600);
    assert.equal((await r.keys('k:*')).length, 600);
    assert.ok((await r.randomkey()) !== null);
  });

  test('MULTI/EXEC and WATCH run on the node of the first key', async () => {
    const res = await r.multi().set('{acct}:a', '10').incrby('{acct}:a', 5).get('{acct}:a').exec();
    assert.deepEqual(res, [
      [null, 'OK'],
      [null, 15],
      [null, '15'],
    ]);
    // A transaction whose keys live on two nodes is refused, as one node would refuse it.
    const other = ['x', 'y', 'z', 'w', 'v'].find((k) => rc.nodes.length > 1 && keySlot(Buffer.from(k)) !== keySlot(Buffer.from('{acct}:a')))!;
    const m = r.multi().set('{acct}:a', '1').set(other, '1');
    await assert.rejects(m.exec(), /EXECABORT|CROSSSLOT/);
    assert.equal(await r.get('{acct}:a'), '15');
    // WATCH: a change by another client aborts the transaction (EXEC answers null).
    await r.watch('{acct}:a');
    await new Redis({ port: pw.port('redis'), host: '127.0.0.1' }).pipeline().set('{acct}:a', '99').quit().exec();
    assert.equal(await r.multi().incr('{acct}:a').exec(), null);
    await r.watch('{acct}:a');
    assert.deepEqual(await r.multi().incr('{acct}:a').exec(), [[null, 100]]);
    // Blocking commands pin to the key's node too.
    await r.rpush('{q}:list', 'job');
    assert.deepEqual(await r.blpop('{q}:list', 1), ['{q}:list', 'job']);
    assert.equal(await r.get('k:1'), '1', 'shared links still serve after the pinned commands');
  });

  test('the around-policy path (a timeout filter) routes by slot too', async () => {
    const g = new Redis({ port: pw.port('guarded'), host: '127.0.0.1' });
    try {
      for (let i = 0; i < 50; i++) assert.equal(await g.get(`k:${i}`), String(i));
      assert.equal(await g.set('guarded:x', 'y'), 'OK');
      assert.deepEqual(await g.mget('k:1', 'k:2', 'guarded:x'), ['1', '2', 'y']);
    } finally {
      g.disconnect();
    }
  });

  test('a Redis Cluster as a mirror shadow gets each write on its slot owner', async () => {
    const m = new Redis({ port: pw.port('mirrored'), host: '127.0.0.1' });
    try {
      for (let i = 0; i < 30; i++) assert.equal(await m.set(`mirror:${i}`, String(i)), 'OK');
      const keys = Array.from({ length: 30 }, (_, i) => `mirror:${i}`);
      const want = JSON.stringify(keys.map((_, i) => String(i)));
      // Copies are fire and forget: wait until every one has landed.
      await waitFor(async () => JSON.stringify(await r.mget(...keys)) === want, 5000, 'every copy on the cluster');
    } finally {
      m.disconnect();
    }
  });

  test('INFO is merged over the masters', async () => {
    const info = await r.info();
    const keys = Number(/\r\ndb0:keys=(\d+),/.exec(info)![1]);
    assert.equal(keys, await r.dbsize());
    assert.match(info, /\r\ncluster_enabled:0\r\n/);
    assert.match(info, /\r\nproxy_shards:3\r\n/);
    assert.match(info, /\r\nredis_mode:standalone\r\n/);
  });

  test('pub/sub: SUBSCRIBE, and SSUBSCRIBE on the node of its shard channel, through Portway', async () => {
    const sub = new Redis({ port: pw.port('redis'), host: '127.0.0.1' });
    const ssub = new Redis({ port: pw.port('redis'), host: '127.0.0.1' });
    try {
      const got: string[] = [];
      const all = new Promise<void>((resolve) => {
        const note = (what: string) => {
          got.push(what);
          if (got.length === 2) resolve();
        };
        sub.on('message', (ch: string, msg: string) => note(`${ch}=${msg}`));
        ssub.on('smessage', (ch: string, msg: string) => note(`${ch}=${msg}`));
      });
      await sub.subscribe('news');
      await ssub.ssubscribe('{shard}:news');
      // PUBLISH counts the receivers on the node it ran on; the cluster bus carries it to the others.
      await r.publish('news', 'hello');
      assert.equal(await r.spublish('{shard}:news', 'sharded'), 1);
      await all;
      assert.deepEqual(got.sort(), ['news=hello', '{shard}:news=sharded']);
    } finally {
      sub.disconnect();
      ssub.disconnect();
    }
  });

  test('SCRIPT LOAD reaches every master: EVALSHA works on any slot', async () => {
    const sha = (await r.script('LOAD', "return redis.call('GET', KEYS[1])")) as string;
    for (const k of ['k:1', 'k:2', 'k:3', 'k:4', 'k:5']) assert.equal(await r.evalsha(sha, 1, k), k.slice(2));
    assert.deepEqual(await r.script('EXISTS', sha, '0'.repeat(40)), [1, 0]);
  });

  test('redis-cli through Portway', async () => {
    const port = String(pw.port('redis'));
    assert.equal((await rc.cli(['-p', port, 'SET', 'cli:key', 'hello'])).trim(), 'OK');
    assert.equal((await rc.cli(['-p', port, 'GET', 'cli:key'])).trim(), 'hello');
    assert.equal((await rc.cli(['-p', port, 'MGET', 'cli:key', 'k:1', 'k:2'])).trim().split('\n').join(','), 'hello,1,2');
    assert.equal(Number((await rc.cli(['-p', port, 'DBSIZE'])).trim()), await r.dbsize());
  });

  test('a slot migrated while clients run: ASK then MOVED are followed, no client sees an error', async () => {
    const slot = keySlot(Buffer.from('mig'));
    const ids = await Promise.all(direct.map(async (d) => String(await d.call('CLUSTER', 'MYID'))));
    const slots = (await direct[0]!.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
    const ownerId = slots.find(([lo, hi]) => slot >= lo && slot <= hi)![2][2];
    const src = ids.indexOf(ownerId);
    const dst = (src + 1) % 3;
    const keys = Array.from({ length: 50 }, (_, i) => `{mig}:${i}`);
    await r.mset(...keys.flatMap((k) => [k, '0']), '{mig}:probe:a', 'A', '{mig}:probe:b', 'B');

    const askBefore = await events(pw, 'ask');
    const movedBefore = await events(pw, 'moved');
    // Clients hammer the slot while it moves: INCR on every key, MGET across them, new keys.
    const errors: string[] = [];
    const expected = new Map<string, number>(keys.map((k) => [k, 0]));
    let running = true;
    const workers = Array.from({ length: 3 }, async (_, w) => {
      const c = new Redis({ port: pw.port('redis'), host: '127.0.0.1' });
      let round = 0;
      try {
        while (running) {
          const k = keys[(round * 3 + w) % keys.length]!;
          try {
            await c.incr(k);
            expected.set(k, expected.get(k)! + 1);
            await c.mget(keys[0]!, keys[1]!, k);
            await c.set(`{mig}:new:${w}:${round}`, 'x');
          } catch (e) {
            errors.push((e as Error).message);
          }
          round++;
        }
      } finally {
        c.disconnect();
      }
    });

    const [s, d] = [direct[src]!, direct[dst]!];
    const dstPort = rc.nodes[dst]!.port;
    await d.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', ids[src]!);
    await s.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', ids[dst]!);
    for (;;) {
      const batch = (await s.call('CLUSTER', 'GETKEYSINSLOT', slot, 5)) as string[];
      if (batch.length === 0) break;
      await s.call('MIGRATE', '127.0.0.1', dstPort, '', 0, 5000, 'KEYS', ...batch);
      await new Promise((res) => setTimeout(res, 20));
    }
    // Every key has moved, the slot is still MIGRATING: the old owner answers ASK.
    assert.equal(await r.get('{mig}:probe:a'), 'A');
    assert.ok((await events(pw, 'ask')) > askBefore, 'ASK was followed');
    for (const n of [d, s, direct[3 - src - dst]!]) await n.call('CLUSTER', 'SETSLOT', slot, 'NODE', ids[dst]!);
    // The slot map in Portway is stale: the old owner answers MOVED.
    assert.equal(await r.get('{mig}:probe:b'), 'B');
    assert.ok((await events(pw, 'moved')) > movedBefore, 'MOVED was followed');
    await new Promise((res) => setTimeout(res, 100));
    running = false;
    await Promise.all(workers);
    assert.deepEqual(errors, []);
    for (const k of keys) assert.equal(await r.get(k), String(expected.get(k)), k);
    assert.ok(Number(await d.call('CLUSTER', 'COUNTKEYSINSLOT', slot)) >= keys.length, 'the keys are on the new owner');

    // An empty slot handed to another node: the first command on it is a blocking one, on the
    // session's own connection; its MOVED is followed there too.
    const slot2 = keySlot(Buffer.from('blk'));
    const owner2 = ids.indexOf(((await direct[0]!.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][]).find(([lo, hi]) => slot2 >= lo && slot2 <= hi)![2][2]);
    const to2 = (owner2 + 1) % 3;
    assert.equal(Number(await direct[owner2]!.call('CLUSTER', 'COUNTKEYSINSLOT', slot2)), 0);
    for (const n of [to2, owner2, 3 - to2 - owner2]) await direct[n]!.call('CLUSTER', 'SETSLOT', slot2, 'NODE', ids[to2]!);
    await direct[to2]!.rpush('{blk}:jobs', 'j1');
    const movedBefore2 = await events(pw, 'moved');
    assert.deepEqual(await r.blpop('{blk}:jobs', 1), ['{blk}:jobs', 'j1']);
    assert.ok((await events(pw, 'moved')) > movedBefore2, 'MOVED was followed on the pinned connection');
  });

  test('FLUSHALL goes to every master', async () => {
    assert.ok((await r.dbsize()) > 0);
    assert.equal(await r.flushall(), 'OK');
    assert.equal(await r.dbsize(), 0);
    assert.deepEqual(await Promise.all(direct.map((d) => d.dbsize())), [0, 0, 0]);
  });
});
