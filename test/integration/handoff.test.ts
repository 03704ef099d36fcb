/**
 * Zero-downtime restart (SIGUSR2, src/handoff): a Portway CLI process in
 * front of a real redis-server hands its listening and admin sockets to a
 * successor while redis-benchmark runs, persistent connections and one new
 * connection per request (-k 0). Nothing is refused, redis-benchmark sees no
 * error, the old process drains and exits 0, the new one serves; a BLPOP in
 * flight on the old process is answered.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { runCli, waitReady, tempDir, type Child } from '../helpers/portway';
import { freePort, http, waitFor } from '../helpers/net';
import { startRedis, redisPing, type RedisServer } from '../helpers/redis';
import { ensureDebianBinary } from '../helpers/process';

interface Running {
  old: Child;
  port: number;
  admin: string;
}

async function runRedisProxy(t: TestContext, redis: RedisServer): Promise<Running> {
  const adminPort = await freePort();
  const port = await freePort();
  const file = join(tempDir(), 'p.yaml');
  writeFileSync(
    file,
    `admin: { address: 127.0.0.1:${adminPort} }\ndrain_timeout: 40s\nlisteners:\n  - { name: r, address: 127.0.0.1:${port}, protocol: redis, routes: [{ cluster: r }] }\nclusters:\n  - { name: r, endpoints: ["${redis.address}"] }\n`,
  );
  const old = runCli(['run', '-c', file]);
  t.after(() => old.proc.kill('SIGKILL'));
  const admin = `http://127.0.0.1:${adminPort}`;
  await waitReady(admin, 20000);
  return { old, port, admin };
}

/** The successor's pid, from the old process's log line once the handoff completed. */
async function successorPid(t: TestContext, c: Child): Promise<number> {
  const line = await waitFor(() => c.stdout().split('\n').find((l) => l.includes('handoff complete')), 30000, 'handoff complete');
  const pid = (JSON.parse(line!) as { successor_pid: number }).successor_pid;
  t.after(async () => {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    await waitFor(() => !alive(pid), 20000, `successor ${pid} to exit`).catch(() => process.kill(pid, 'SIGKILL'));
  });
  return pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function benchmark(args: string[]): { done: Promise<{ code: number | null; out: string }>; running: () => boolean } {
  const p = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let finished = false;
  p.stdout.on('data', (c: Buffer) => (out += c.toString()));
  p.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const done = new Promise<{ code: number | null; out: string }>((r) =>
    p.on('close', (code) => {
      finished = true;
      r({ code, out });
    }),
  );
  return { done, running: () => !finished };
}

/** The request count with which redis-benchmark `args` runs about `ms` per test here, from a probe run of `probe` requests. */
async function sized(args: string[], probe: number, ms: number): Promise<number> {
  const started = Date.now();
  const r = await benchmark([...args, '-n', String(probe)]).done;
  assert.equal(r.code, 0, r.out);
  const tests = args[args.indexOf('-t') + 1]!.split(',').length;
  const perTestMs = Math.max(1, (Date.now() - started) / tests);
  return Math.min(2_000_000, Math.max(probe, Math.round((probe * ms) / perTestMs)));
}

/** Sends one RESP command on a socket and resolves with the first complete reply text (simple enough for these replies). */
function command(s: import('node:net').Socket, ...args: string[]): Promise<string> {
  return new Promise((resolve) => {
    let acc = '';
    const onData = (c: Buffer) => {
      acc += c.toString();
      // BLPOP's reply: *2 $len key $len value: five CRLF-terminated lines.
      if (acc.startsWith('*2') ? acc.split('\r\n').length > 5 : acc.endsWith('\r\n')) {
        s.removeListener('data', onData);
        resolve(acc);
      }
    };
    s.on('data', onData);
    s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

describe('zero-downtime restart (SIGUSR2)', () => {
  test('a restart under redis-benchmark load refuses nothing and loses no request; the old process exits 0', async (t) => {
    ensureDebianBinary('redis-benchmark', 'redis-tools');
    const redis = await startRedis();
    t.after(() => redis.close());
    const { old, port, admin } = await runRedisProxy(t, redis);
    const oldPid = old.proc.pid!;

    // Sized by a short probe on this machine so that each run lasts several seconds, long enough to span the restart.
    const persistentArgs = ['-p', String(port), '-c', '20', '-P', '1', '-t', 'set,get', '-q'];
    const reconnectingArgs = ['-p', String(port), '-c', '10', '-k', '0', '-t', 'set', '-q'];
    const nPersistent = await sized(persistentArgs, 5000, 4000);
    const nReconnecting = await sized(reconnectingArgs, 500, 8000);
    const accepted = async (): Promise<number> => JSON.parse((await http('GET', `${admin}/listeners`)).body).listeners.r.cx_total;
    const before = await accepted();
    const persistent = benchmark([...persistentArgs, '-n', String(nPersistent)]);
    // One new connection per request: connections are opened all through the switch.
    const reconnecting = benchmark([...reconnectingArgs, '-n', String(nReconnecting)]);
    // Restart once both have sent requests through the old process.
    await waitFor(async () => (await accepted()) > before + 25, 20000, 'benchmark connections');
    old.proc.kill('SIGUSR2');
    const newPid = await successorPid(t, old);
    assert.notEqual(newPid, oldPid);
    assert.ok(persistent.running() && reconnecting.running(), 'the restart happened while both benchmarks ran');

    const [a, b] = await Promise.all([persistent.done, reconnecting.done]);
    for (const r of [a, b]) {
      assert.equal(r.code, 0, r.out);
      assert.doesNotMatch(r.out, /error|refused|reset/i);
    }
    assert.match(a.out, /GET: [\d.]+ requests per second/);
    assert.match(b.out, /SET: [\d.]+ requests per second/);

    // Its benchmark connections closed, the old process has nothing left to drain.
    assert.equal(await old.exited, 0, old.stderr());
    assert.ok(alive(newPid));
    assert.equal(await redisPing(port), true);
    const ready = await http('GET', `${admin}/ready`);
    assert.equal(ready.status, 200);
    // The new process counts the connections it accepted from zero: the admin socket is now the successor's.
    const stats = JSON.parse((await http('GET', `${admin}/listeners`)).body).listeners.r;
    assert.ok(stats.cx_total < nReconnecting + 40, `counts of the new process: ${JSON.stringify(stats)}`);
    assert.match(old.stdout(), /"pid":\d+.*handoff: took over the listening sockets/);
  });

  test('a BLPOP in flight on the old process is answered after the successor took over', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.close());
    const { old, port } = await runRedisProxy(t, redis);
    const blocked = connect({ port, host: '127.0.0.1' });
    t.after(() => blocked.destroy());
    await new Promise<void>((r) => blocked.once('connect', () => r()));
    assert.equal(await command(blocked, 'PING'), '+PONG\r\n');
    const reply = command(blocked, 'BLPOP', 'handoff:q', '0');

    old.proc.kill('SIGUSR2');
    await successorPid(t, old);
    // The old process is draining (the BLPOP holds its connection open) and no longer accepts: this connection is the successor's.
    const pusher = connect({ port, host: '127.0.0.1' });
    t.after(() => pusher.destroy());
    await new Promise<void>((r) => pusher.once('connect', () => r()));
    assert.equal(await command(pusher, 'LPUSH', 'handoff:q', 'delivered'), ':1\r\n');
    pusher.destroy();

    assert.equal(await reply, '*2\r\n$9\r\nhandoff:q\r\n$9\r\ndelivered\r\n');
    blocked.destroy();
    assert.equal(await old.exited, 0, old.stderr());
  });
});
