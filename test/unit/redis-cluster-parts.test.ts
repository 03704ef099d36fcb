import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseRedirect } from '../../src/protocols/redis/cluster-topology';
import { mergeInfo } from '../../src/protocols/redis/info';
import { KeyRewriter, mapReplyKeys, type RewriteRoute } from '../../src/protocols/redis/prefix';
import { RespCommand } from '../../src/protocols/redis/codec';
import type { Cluster } from '../../src/routing/cluster';

const bulk = (s: string) => Buffer.from(`$${Buffer.byteLength(s)}\r\n${s}\r\n`);
const info = (lines: string[]) => bulk(lines.join('\r\n') + '\r\n');
const text = (reply: Buffer) => reply.toString().replace(/^\$\d+\r\n/, '').slice(0, -2);

describe('parseRedirect', () => {
  test('MOVED and ASK with IPv4, IPv6 and host names', () => {
    assert.deepEqual(parseRedirect('MOVED 3999 127.0.0.1:6381'), { moved: true, slot: 3999, host: '127.0.0.1', port: 6381 });
    assert.deepEqual(parseRedirect('ASK 0 [::1]:7000'), { moved: false, slot: 0, host: '::1', port: 7000 });
    assert.deepEqual(parseRedirect('ASK 16383 redis-3.example:7000'), { moved: false, slot: 16383, host: 'redis-3.example', port: 7000 });
  });
  test('anything else is not a redirection', () => {
    for (const t of ['ERR wrong', 'MOVED', 'MOVED 16384 1.2.3.4:1', 'MOVED x 1.2.3.4:1', 'ASK 1 nohost', 'ASK 1 :7000', 'MOVED 1 h:0', 'TRYAGAIN Multiple keys']) {
      assert.equal(parseRedirect(t), null, t);
    }
  });
});

describe('mergeInfo', () => {
  const ctx = { listener: 'redis', port: 6380 };
  test('keyspace per db, counters, largest flags, averaged ratios, recomputed human sizes', () => {
    const a = info(['# Server', 'redis_version:7.0.15', 'process_id:11', '', '# Memory', 'used_memory:1048576', 'used_memory_human:1.00M', 'mem_fragmentation_ratio:1.20', '', '# Persistence', 'loading:0', 'rdb_last_save_time:100', '', '# Stats', 'total_commands_processed:10', 'instantaneous_ops_per_sec:5', '', '# Commandstats', 'cmdstat_get:calls=2,usec=10,usec_per_call=5.00,rejected_calls=0,failed_calls=0', '', '# Keyspace', 'db0:keys=10,expires=2,avg_ttl=1000']);
    const b = info(['# Server', 'redis_version:7.0.15', 'process_id:12', '', '# Memory', 'used_memory:1048576', 'used_memory_human:1.00M', 'mem_fragmentation_ratio:1.40', '', '# Persistence', 'loading:1', 'rdb_last_save_time:300', '', '# Stats', 'total_commands_processed:5', 'instantaneous_ops_per_sec:7', '', '# Commandstats', 'cmdstat_get:calls=8,usec=10,usec_per_call=1.25,rejected_calls=1,failed_calls=0', '', '# Keyspace', 'db0:keys=5,expires=6,avg_ttl=3000', 'db3:keys=1,expires=0,avg_ttl=0']);
    const out = text(mergeInfo([a, b], ctx));
    assert.match(out, /^# Server\r\nredis_version:7\.0\.15\r\nredis_mode:standalone\r\n/);
    assert.match(out, new RegExp(`\\r\\nprocess_id:${process.pid}\\r\\n`));
    assert.match(out, /\r\ntcp_port:6380\r\n/);
    assert.match(out, /\r\nproxy_shards:2\r\nproxy_shards_failed:0\r\n/);
    assert.match(out, /\r\nused_memory:2097152\r\nused_memory_human:2\.00M\r\nmem_fragmentation_ratio:1\.30\r\n/);
    assert.match(out, /\r\nloading:1\r\nrdb_last_save_time:300\r\n/);
    assert.match(out, /\r\ntotal_commands_processed:15\r\ninstantaneous_ops_per_sec:12\r\n/);
    assert.match(out, /\r\ncmdstat_get:calls=10,usec=20,usec_per_call=2\.00,rejected_calls=1,failed_calls=0\r\n/);
    // avg_ttl weighted by expiring keys: (2*1000 + 6*3000) / 8 = 2500.
    assert.match(out, /\r\n# Keyspace\r\ndb0:keys=15,expires=8,avg_ttl=2500\r\ndb3:keys=1,expires=0,avg_ttl=0\r\n$/);
  });
  test('a failed shard is left out and counted; all failed: the error', () => {
    const ok = info(['# Keyspace', 'db0:keys=1,expires=0,avg_ttl=0']);
    const err = Buffer.from('-ERR upstream 1.2.3.4:6379 is not connected (PW_ERR_UPSTREAM_RESET)\r\n');
    assert.match(text(mergeInfo([err, ok], ctx)), /^# Keyspace\r\ndb0:keys=1,/);
    assert.match(text(mergeInfo([ok, err, info(['# Server', 'redis_version:7.0.15'])], ctx)), /proxy_shards_failed:1\r\n/);
    assert.equal(mergeInfo([err, err], ctx), err);
  });
});

describe('KeyRewriter', () => {
  const a = { name: 'a' } as Cluster;
  const b = { name: 'b' } as Cluster;
  const routes: RewriteRoute[] = [
    { prefix: Buffer.from('app1:'), cluster: a, strip: true, add: Buffer.from('t1:') },
    { prefix: Buffer.from('app1:raw:'), cluster: b, strip: false, add: Buffer.alloc(0) },
    { prefix: Buffer.from('app2:'), cluster: b, strip: false, add: Buffer.from('x:') },
  ];
  const kr = new KeyRewriter(routes);

  test('each key by the longest prefix it matches; untouched keys stay', () => {
    const cmd = RespCommand.from(['MSET', 'app1:u', '1', 'app1:raw:v', '2', 'app2:w', '3', 'other', '4']);
    const rw = kr.rewrite(cmd, [1, 3, 5, 7])!;
    assert.deepEqual(rw.cmd.args().map(String), ['MSET', 't1:u', '1', 'app1:raw:v', '2', 'x:app2:w', '3', 'other', '4']);
    assert.equal(rw.clusters.get(1), a);
    assert.equal(rw.clusters.get(3), b);
    assert.equal(rw.back.get('t1:u')!.toString(), 'app1:u');
    assert.equal(kr.rewrite(RespCommand.from(['GET', 'app1:raw:z']), [1]), null);
  });

  test('back() restores the client key; keys without the added prefix are left alone', () => {
    assert.equal(KeyRewriter.back(routes[0]!, Buffer.from('t1:u')).toString(), 'app1:u');
    assert.equal(KeyRewriter.back(routes[0]!, Buffer.from('zz')).toString(), 'zz');
    assert.equal(KeyRewriter.back(routes[2]!, Buffer.from('x:app2:w')).toString(), 'app2:w');
  });

  test('patterns: a literal route prefix is rewritten; KEYS and SCAN MATCH', () => {
    const k = kr.rewritePattern(RespCommand.from(['KEYS', 'app1:*']))!;
    assert.deepEqual(k.cmd.args().map(String), ['KEYS', 't1:*']);
    assert.equal(k.route, routes[0]);
    const s = kr.rewritePattern(RespCommand.from(['SCAN', '0', 'COUNT', '10', 'MATCH', 'app2:x*']))!;
    assert.deepEqual(s.cmd.args().map(String), ['SCAN', '0', 'COUNT', '10', 'MATCH', 'x:app2:x*']);
    assert.equal(kr.rewritePattern(RespCommand.from(['KEYS', 'app*'])), null);
    assert.equal(kr.clusterRoute(a), routes[0]);
    assert.equal(kr.clusterRoute(b), routes[2]);
  });

  test('mapReplyKeys: KEYS, SCAN, BLPOP, XREAD (RESP2 and RESP3 map)', () => {
    const back = (k: Buffer) => Buffer.from(`c:${k}`);
    assert.equal(mapReplyKeys('KEYS', Buffer.from('*2\r\n$1\r\na\r\n$1\r\nb\r\n'), 2, back).toString(), '*2\r\n$3\r\nc:a\r\n$3\r\nc:b\r\n');
    assert.equal(mapReplyKeys('SCAN', Buffer.from('*2\r\n$2\r\n17\r\n*1\r\n$1\r\na\r\n'), 2, back).toString(), '*2\r\n$2\r\n17\r\n*1\r\n$3\r\nc:a\r\n');
    assert.equal(mapReplyKeys('BLPOP', Buffer.from('*2\r\n$1\r\nq\r\n$1\r\nv\r\n'), 2, back).toString(), '*2\r\n$3\r\nc:q\r\n$1\r\nv\r\n');
    assert.equal(mapReplyKeys('BLPOP', Buffer.from('*-1\r\n'), 2, back).toString(), '*-1\r\n');
    assert.equal(mapReplyKeys('XREAD', Buffer.from('%1\r\n$1\r\ns\r\n*0\r\n'), 3, back).toString(), '%1\r\n$3\r\nc:s\r\n*0\r\n');
    assert.equal(mapReplyKeys('RANDOMKEY', Buffer.from('-ERR x\r\n'), 2, back).toString(), '-ERR x\r\n');
  });
});
