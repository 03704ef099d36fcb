import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import Redis from 'ioredis';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { http, sleep, waitFor } from '../helpers/net';

/** Raw RESP exchange: send bytes, collect until `until` matches or the peer closes. */
function raw(port: number, data: string | Buffer, until: (s: string) => boolean): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ text, closed });
    };
    s.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (until(text)) finish(false);
    });
    s.on('close', () => finish(true));
    s.on('error', reject);
    s.write(data);
  });
}

function cli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('redis-cli', args);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', (e) => reject(new Error(`redis-cli is needed (Debian package redis-tools): ${e.message}`)));
    p.on('exit', () => resolve(out.trim()));
  });
}

function client(port: number, opts: Record<string, unknown> = {}): Redis {
  return new Redis({ port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 1, enableOfflineQueue: true, ...opts });
}

describe('Redis proxy against a real redis-server', () => {
  let redis: RedisServer;
  let pw: InProcess;
  let port: number;
  const clients: Redis[] = [];
  const c = (opts?: Record<string, unknown>) => {
    const r = client(port, opts);
    clients.push(r);
    return r;
  };

  before(async () => {
    redis = await startRedis();
    pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: r }]
clusters:
  - { name: r, endpoints: ["${redis.address}"], connect_timeout: 1s }
`);
    port = pw.port('redis');
  });
  after(async () => {
    for (const r of clients) r.disconnect();
    await pw.stop();
    await redis.stop();
  });

  test('ioredis: strings, hashes, lists, sets, binary and large values', async () => {
    const r = c();
    assert.equal(await r.set('s:1', 'v1'), 'OK');
    assert.equal(await r.get('s:1'), 'v1');
    assert.equal(await r.get('s:missing'), null);
    await r.hset('h:1', { a: '1', b: '2' });
    assert.deepEqual(await r.hgetall('h:1'), { a: '1', b: '2' });
    await r.rpush('l:1', 'x', 'y', 'z');
    assert.deepEqual(await r.lrange('l:1', 0, -1), ['x', 'y', 'z']);
    await r.sadd('set:1', 'a', 'b');
    assert.deepEqual((await r.smembers('set:1')).sort(), ['a', 'b']);
    const bin = Buffer.from([0, 1, 2, 13, 10, 255, 254, 36, 42]);
    await r.set(Buffer.from([0xff, 0x00, 0x0d, 0x0a]), bin);
    assert.deepEqual(await r.getBuffer(Buffer.from([0xff, 0x00, 0x0d, 0x0a])), bin);
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 'q');
    await r.set('big', big);
    assert.equal((await r.getBuffer('big'))!.length, big.length);
    assert.equal(await r.incr('n'), 1);
    assert.deepEqual(await r.mget('s:1', 'nope', 'n'), ['v1', null, '1']);
  });

  test('a deep pipeline comes back complete and in order', async () => {
    const r = c();
    const p = r.pipeline();
    for (let i = 0; i < 5000; i++) p.set(`p:${i}`, String(i));
    for (let i = 0; i < 5000; i++) p.get(`p:${i}`);
    const res = await p.exec();
    assert.equal(res!.length, 10000);
    for (let i = 0; i < 5000; i++) assert.deepEqual(res![5000 + i], [null, String(i)]);
  });

  test('many clients share the upstream link and each gets its own replies', async () => {
    const rs = Array.from({ length: 40 }, () => c());
    await Promise.all(
      rs.map(async (r, i) => {
        for (let j = 0; j < 50; j++) {
          await r.set(`mc:${i}:${j}`, `${i}-${j}`);
          assert.equal(await r.get(`mc:${i}:${j}`), `${i}-${j}`);
        }
      }),
    );
  });

  test('MULTI/EXEC and WATCH behave as on the server', async () => {
    const r = c();
    const res = await r.multi().set('tx:a', '1').incr('tx:a').get('tx:a').exec();
    assert.deepEqual(res, [
      [null, 'OK'],
      [null, 2],
      [null, '2'],
    ]);
    const other = c();
    await r.watch('tx:w');
    await other.set('tx:w', 'changed');
    const aborted = await r.multi().set('tx:w', 'mine').exec();
    assert.equal(aborted, null, 'EXEC aborts: the watched key changed');
    assert.equal(await r.get('tx:w'), 'changed');
    // After the transaction the session is back on shared links and still consistent.
    await r.set('tx:after', 'x');
    assert.equal(await r.get('tx:after'), 'x');
  });

  test('a blocked BLPOP does not hold up other clients; it returns when another client pushes', async () => {
    const blocker = c();
    const other = c();
    const popped = blocker.blpop('bl:q', 5);
    await sleep(100);
    for (let i = 0; i < 20; i++) assert.equal(await other.set(`bl:${i}`, 'v'), 'OK');
    await other.rpush('bl:q', 'job');
    assert.deepEqual(await popped, ['bl:q', 'job']);
    assert.equal(await blocker.get('bl:0'), 'v', 'the blocking client continues normally');
  });

  test('pub/sub: SUBSCRIBE through Portway receives PUBLISHed messages', async () => {
    const sub = c();
    const pub = c();
    const got: string[] = [];
    sub.on('message', (ch: string, msg: string) => got.push(`${ch}:${msg}`));
    await sub.subscribe('news', 'sport');
    assert.equal(await pub.publish('news', 'hello'), 1);
    await pub.publish('sport', 'goal');
    await waitFor(() => got.length === 2, 3000, 'two messages');
    assert.deepEqual(got, ['news:hello', 'sport:goal']);
    await sub.unsubscribe('news', 'sport');
    assert.equal(await sub.set('after:sub', '1'), 'OK', 'back to normal commands after unsubscribing');
  });

  test('SELECT is per session', async () => {
    const a = c();
    const b = c();
    await a.select(3);
    await a.set('db:k', 'three');
    assert.equal(await a.get('db:k'), 'three');
    assert.equal(await b.get('db:k'), null, 'another session stays on db 0');
  });

  test('CLIENT SETNAME/GETNAME/ID and PING are answered by Portway', async () => {
    const r = c();
    await r.client('SETNAME', 'app-1');
    assert.equal(await r.client('GETNAME'), 'app-1');
    assert.equal(typeof (await r.client('ID')), 'number');
    assert.equal(await r.ping(), 'PONG');
    assert.equal(await r.ping('hi'), 'hi');
  });

  test('HELLO 3: RESP3 replies (maps, nulls) although the upstream speaks RESP2', async () => {
    const r = c();
    await r.hset('h3', { f: 'v' });
    const res = await raw(port, '*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*2\r\n$7\r\nHGETALL\r\n$2\r\nh3\r\n*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n*3\r\n$4\r\nMGET\r\n$2\r\nh9\r\n$2\r\nh8\r\n', (t) => t.endsWith('*2\r\n_\r\n_\r\n'));
    assert.match(res.text, /^%7\r\n/, 'HELLO 3 answers with a map');
    assert.ok(res.text.includes('%1\r\n$1\r\nf\r\n$1\r\nv\r\n'), 'HGETALL is a map');
    assert.ok(res.text.includes('_\r\n*2\r\n_\r\n_\r\n'), 'nulls are RESP3 nulls, nested ones too');
  });

  test('protocol errors: -ERR as redis words it, then the connection closes', async () => {
    const res = await raw(port, '*abc\r\n', () => false);
    assert.equal(res.text, '-ERR Protocol error: invalid multibulk length\r\n');
    assert.equal(res.closed, true);
    const res2 = await raw(port, '*1\r\nx\r\n', () => false);
    assert.equal(res2.text, "-ERR Protocol error: expected '$', got 'x'\r\n");
    const ok = c();
    assert.equal(await ok.ping(), 'PONG', 'other connections are unaffected');
  });

  test("unknown commands and wrong arity get the server's errors", async () => {
    const r = c();
    await assert.rejects(r.call('NOSUCH', 'a'), /ERR unknown command 'NOSUCH', with args beginning with: 'a'/);
    await assert.rejects(r.call('GET'), /ERR wrong number of arguments for 'get' command/);
  });

  test('inline commands (as typed into telnet)', async () => {
    const res = await raw(port, 'SET inline "hello world"\r\nGET inline\r\n', (t) => t.includes('$11'));
    assert.equal(res.text, '+OK\r\n$11\r\nhello world\r\n');
  });

  test('redis-cli works unmodified', async () => {
    // Portway runs in this process: the CLI must run asynchronously (spawnSync would block our event loop).
    assert.equal(await cli(['-p', String(port), 'SET', 'cli:k', 'from cli']), 'OK');
    assert.equal(await cli(['-p', String(port), 'GET', 'cli:k']), 'from cli');
    assert.equal(await cli(['-p', String(port), '-3', 'HELLO', '3']).then((t) => /proto\s*\n?.*3/.test(t) || t.includes('proto')), true);
  });

  test('redis-benchmark with pipelining reports no errors', async () => {
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const p = spawn('redis-benchmark', ['-p', String(port), '-t', 'set,get,incr,lpush,rpop,sadd,hset,mset', '-n', '20000', '-c', '20', '-P', '16', '-q']);
      let text = '';
      p.stdout.on('data', (d: Buffer) => (text += d.toString()));
      p.stderr.on('data', (d: Buffer) => (text += d.toString()));
      p.on('exit', (code) => resolve({ code, text }));
    });
    assert.equal(out.code, 0, out.text);
    assert.doesNotMatch(out.text, /error/i);
    assert.match(out.text, /MSET \(10 keys\): [0-9.]+ requests per second/);
  });

  test('backpressure: a client that pipelines without reading replies stops being read', async () => {
    const s = connect(port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.pause(); // never reads replies
    // Small replies (missing keys), so the proxy's work per command stays tiny and only backpressure can stop it.
    const cmd = Buffer.from('*2\r\n$3\r\nGET\r\n$4\r\nnone\r\n'.repeat(1000));
    const r = c();
    let sent = 0;
    let blocked = false;
    while (sent < 4_000_000) {
      sent += 1000;
      if (!s.write(cmd)) {
        const drained = await Promise.race([new Promise<boolean>((res) => s.once('drain', () => res(true))), sleep(1000).then(() => false)]);
        if (!drained) {
          blocked = true;
          break;
        }
      }
    }
    assert.ok(blocked, 'writes to Portway block once it stops reading');
    // Pending requests are bounded (16384) and unread replies only fill the kernel's socket buffers
    // (about a million 5-byte replies on loopback); without backpressure the proxy reads all 4M.
    assert.ok(sent < 3_000_000, `stopped after ${sent} commands`);
    assert.equal(await r.ping(), 'PONG', 'other clients are served meanwhile');
    s.destroy();
  });

  test('per-command stats at /metrics: count, errors, latency histogram', async () => {
    const r = c();
    for (let i = 0; i < 7; i++) await r.set(`stat:${i}`, 'v');
    await assert.rejects(r.incr('stat:0'), /not an integer/);
    await assert.rejects(r.call('NOSUCHCMD'), /unknown command/);
    const m = (await http('GET', `${pw.admin}/metrics`)).body;
    const val = (line: string) => Number(m.split('\n').find((l) => l.startsWith(line))?.split(' ').pop() ?? NaN);
    assert.ok(val('portway_redis_command_total{command="set",listener="redis"}') >= 7);
    assert.ok(val('portway_redis_command_errors_total{command="incr",listener="redis"}') >= 1);
    assert.ok(val('portway_redis_command_errors_total{command="unknown",listener="redis"}') >= 1, 'unknown names share one series');
    assert.ok(val('portway_redis_command_duration_seconds_count{command="set",listener="redis"}') >= 7);
    assert.match(m, /portway_redis_command_duration_seconds_bucket\{command="set",listener="redis",le="\+Inf"\} [0-9]+/);
  });

  test('upstream down: commands fail at once with a clear -ERR; service resumes when it is back', async () => {
    const r = c({ maxRetriesPerRequest: 0, enableOfflineQueue: false });
    await new Promise((resolve) => r.once('ready', resolve));
    assert.equal(await r.set('down:k', '1'), 'OK');
    await redis.stop();
    await assert.rejects(r.get('down:k'), /ERR .*(PW_ERR_UPSTREAM_RESET|PW_ERR_UPSTREAM_CONNECT|PW_ERR_NO_HEALTHY_UPSTREAM)/);
    await assert.rejects(r.get('down:k'), /ERR /);
    await redis.start();
    await waitFor(async () => {
      try {
        return (await r.set('down:k', '2')) === 'OK';
      } catch {
        return false;
      }
    }, 10000, 'recovery');
    assert.equal(await r.get('down:k'), '2');
    const m = (await http('GET', `${pw.admin}/metrics`)).body;
    assert.match(m, /portway_redis_commands_total\{listener="redis"\} [1-9]/);
  });
});

describe('Redis key-prefix routes over two servers', () => {
  test('keys go by longest prefix; MGET/MSET/DEL across servers are split and merged in order', async () => {
    const a = await startRedis();
    const b = await startRedis();
    const pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    options:
      prefix_routes:
        - { prefix: "user:", cluster: a }
        - { prefix: "user:vip:", cluster: b }
      catch_all_cluster: b
clusters:
  - { name: a, endpoints: ["${a.address}"] }
  - { name: b, endpoints: ["${b.address}"] }
`);
    const r = client(pw.port('redis'));
    const da = client(a.port);
    const db = client(b.port);
    try {
      await r.set('user:1', 'u1');
      await r.set('user:vip:1', 'v1');
      await r.set('other', 'o');
      assert.equal(await da.get('user:1'), 'u1');
      assert.equal(await db.get('user:vip:1'), 'v1', 'longest prefix wins');
      assert.equal(await db.get('other'), 'o', 'catch-all');
      assert.equal(await da.get('other'), null);
      assert.equal(await r.mset('user:2', 'u2', 'x:2', 'x2', 'user:vip:2', 'v2'), 'OK');
      assert.equal(await da.get('user:2'), 'u2');
      assert.equal(await db.get('x:2'), 'x2');
      assert.deepEqual(await r.mget('user:1', 'other', 'user:vip:1', 'nope', 'user:2'), ['u1', 'o', 'v1', null, 'u2']);
      assert.equal(await r.del('user:1', 'other', 'user:vip:1', 'nope'), 3);
      assert.equal(await r.exists('user:2', 'x:2', 'user:1'), 2);
      await assert.rejects(r.rename('user:2', 'x:9'), /CROSSSLOT/);
    } finally {
      r.disconnect();
      da.disconnect();
      db.disconnect();
      await pw.stop();
      await a.stop();
      await b.stop();
    }
  });
});

describe('Redis listener idle_timeout', () => {
  test('a silent client is closed after the timeout; an active one and a subscriber are not', async () => {
    const redis = await startRedis();
    const pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    idle_timeout: 400ms
    routes: [{ cluster: r }]
clusters:
  - { name: r, endpoints: ["${redis.address}"] }
`);
    const port = pw.port('redis');
    const silent = connect(port, '127.0.0.1');
    const active = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null });
    const sub = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null });
    try {
      let silentClosedAt = 0;
      const opened = Date.now();
      silent.on('close', () => (silentClosedAt = Date.now()));
      silent.on('error', () => {});
      await sub.subscribe('news');
      let activeClosed = false;
      let subClosed = false;
      active.on('end', () => (activeClosed = true));
      sub.on('end', () => (subClosed = true));
      // The active client sends a command every 100 ms for 1.5 s (well past the timeout).
      for (let i = 0; i < 15; i++) {
        assert.equal(await active.set('idle:k', String(i)), 'OK');
        await sleep(100);
      }
      await waitFor(() => silentClosedAt > 0, 3000, 'the silent client closed');
      assert.ok(silentClosedAt - opened >= 400, `closed after ${silentClosedAt - opened} ms, not before the 400 ms timeout`);
      assert.equal(activeClosed, false, 'the active client stays');
      assert.equal(subClosed, false, 'a subscriber waiting for messages is not idle');
      assert.equal(await active.get('idle:k'), '14');
      const m = (await http('GET', `${pw.admin}/metrics`)).body;
      assert.match(m, /portway_downstream_errors_total\{code="PW_ERR_IDLE_TIMEOUT",listener="redis"\} 1\b/);
    } finally {
      silent.destroy();
      active.disconnect();
      sub.disconnect();
      await pw.stop();
      await redis.stop();
    }
  });
});
