import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { waitFor } from '../helpers/net';

/**
 * sharding.auto_eject: a shard ejected by health checks leaves the hash ring
 * (its keys go to the other shards) until it is back; off, its keys fail
 * while it is down and never move.
 */
for (const autoEject of [true, false]) {
  describe(`Redis sharded pool with auto_eject ${autoEject ? 'on' : 'off'}`, () => {
    const servers: RedisServer[] = [];
    const direct: Redis[] = [];
    let pw: InProcess;
    let r: Redis;
    /** Which server holds each key while all are up. */
    const home = new Map<string, number>();

    before(async () => {
      for (let i = 0; i < 3; i++) servers.push(await startRedis());
      for (const s of servers) direct.push(new Redis({ port: s.port, host: '127.0.0.1' }).on('error', () => {}));
      pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: shards }]
clusters:
  - name: shards
    sharding: { hash: murmur, distribution: ketama, auto_eject: ${autoEject} }
    connect_timeout: 1s
    health_check: { passive: { consecutive_failures: 1, ejection_time: 1s } }
    endpoints:
${servers.map((s) => `      - "${s.address}"`).join('\n')}
`);
      r = new Redis({ port: pw.port('redis'), host: '127.0.0.1', maxRetriesPerRequest: 0 });
      for (let i = 0; i < 200; i++) await r.set(`k:${i}`, 'v');
      for (let i = 0; i < 200; i++) {
        const held = await Promise.all(direct.map((d) => d.exists(`k:${i}`)));
        home.set(`k:${i}`, held.indexOf(1));
      }
    });
    after(async () => {
      r.disconnect();
      for (const d of direct) d.disconnect();
      await pw.stop();
      for (const s of servers) await s.close();
    });

    test('keys are spread over the three shards', () => {
      const used = new Set(home.values());
      assert.ok(used.size >= 2 && !used.has(-1), `homes: ${[...used]}`);
    });

    test(autoEject ? 'a dead shard leaves the ring: its keys are served by the others, and come back with it' : 'a dead shard keeps its keys: they fail while it is down', async () => {
      // The shard holding the fewest keys (but some), so that the others keep most of the keyspace.
      const counts = [0, 1, 2].map((i) => [...home.values()].filter((h) => h === i).length);
      const victim = counts.indexOf(Math.min(...counts.filter((c) => c > 0)));
      const victimKeys = [...home].filter(([, h]) => h === victim).map(([k]) => k);
      const otherKeys = [...home].filter(([, h]) => h !== victim).map(([k]) => k);
      await servers[victim]!.stop();
      if (autoEject) {
        // The first request after the crash finds the shard dead (and ejects it); later ones go elsewhere.
        await waitFor(async () => (await r.set(victimKeys[0]!, 'moved').then(() => true, () => false)), 5000, 'a key of the dead shard is writable again');
        for (const k of victimKeys) assert.equal(await r.set(k, 'moved'), 'OK');
        for (const k of victimKeys) assert.equal(await r.get(k), 'moved');
        for (const k of otherKeys) assert.equal(await r.get(k), 'v', 'keys of live shards do not move');
        // The shard comes back (empty): once its ejection ends, its keys go to it again.
        await servers[victim]!.start();
        const d = new Redis({ port: servers[victim]!.port, host: '127.0.0.1' });
        await waitFor(async () => {
          await r.set(victimKeys[0]!, 'home').catch(() => {});
          return (await d.get(victimKeys[0]!).catch(() => null)) === 'home';
        }, 10000, 'the returned shard owns its keys again');
        d.disconnect();
      } else {
        for (let attempt = 0; attempt < 3; attempt++) {
          await assert.rejects(r.set(victimKeys[0]!, 'x'), /ERR/);
        }
        await assert.rejects(r.get(victimKeys[victimKeys.length - 1]!), /ERR/);
        for (const k of otherKeys) assert.equal(await r.get(k), 'v');
        // A new client still connects: its ready check (INFO) is answered by the live shards.
        const late = new Redis({ port: pw.port('redis'), host: '127.0.0.1', maxRetriesPerRequest: 0 });
        try {
          assert.match(await late.info('keyspace'), /^# Keyspace/);
          assert.match(await late.info('server'), /proxy_shards_failed:1\r\n/);
        } finally {
          late.disconnect();
        }
        await servers[victim]!.start();
        await waitFor(async () => (await r.set(victimKeys[0]!, 'back').then(() => true, () => false)), 10000, 'the shard serves again');
        const d = new Redis({ port: servers[victim]!.port, host: '127.0.0.1' });
        assert.equal(await d.get(victimKeys[0]!), 'back', 'the key stayed on its shard');
        d.disconnect();
      }
    });
  });
}
