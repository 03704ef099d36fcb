/**
 * The global rate limit shared by two Portway processes (the CLI, spawned as
 * users run it) through one real redis-server started by the test. Clients
 * drive both processes well above the limit for a few seconds; what the two
 * admit together must stay within 10% of what the configured rate allows
 * over that time (the bucket's burst plus rate x elapsed). Then Redis is
 * stopped: a listener with on_redis_error allow keeps answering (fail open),
 * one with deny refuses with PW_ERR_RATE_LIMITED (fail closed).
 *
 * Also here: the filter close hook. A reload retires the generation; once
 * its last connection has ended, the old global limiter's Redis connection
 * is closed (seen from Redis' CLIENT LIST).
 *
 * The listeners are Redis listeners served by the in-process memory
 * component, so no upstream is needed: every admitted GET gets a reply from
 * it, every refused one the RESP rendering of PW_ERR_RATE_LIMITED.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, http, waitFor } from '../helpers/net';
import { runCli, startPortway, tempDir, waitReady, type Child } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';

const RATE = 200; // requests per second, shared by both processes
const BURST = 20;
const DRIVE_MS = 3000;

function config(admin: number, open: number, closed: number, redis: string): string {
  const limit = (onError: string, prefix: string) =>
    `{ type: rate_limit, mode: global, rate: ${RATE}, per: 1s, burst: ${BURST}, key: listener, on_redis_error: ${onError}, redis: { address: "${redis}", timeout: 200ms, prefix: "${prefix}" } }`;
  return `admin: { address: 127.0.0.1:${admin} }
log: { level: warn }
drain_timeout: 1s
listeners:
  - name: open
    address: 127.0.0.1:${open}
    protocol: redis
    filters:
      - ${limit('allow', 'pwtest:open:')}
    routes: [{ cluster: mem }]
  - name: closed
    address: 127.0.0.1:${closed}
    protocol: redis
    filters:
      - ${limit('deny', 'pwtest:closed:')}
    routes: [{ cluster: mem }]
clusters:
  - name: mem
    component: { type: memory }
`;
}

/** Keeps `window` GETs in flight on one connection until stopped; counts admitted and limited replies (one line each). */
class Driver {
  admitted = 0;
  limited = 0;
  other = 0;
  private buf = '';
  private stopped = false;
  private inflight = 0;
  private readonly socket: Socket;
  readonly done: Promise<void>;

  constructor(port: number, private readonly window = 16) {
    this.socket = connect({ port, host: '127.0.0.1' });
    this.socket.setNoDelay(true);
    this.socket.on('error', () => {});
    this.done = new Promise((resolve) => {
      this.socket.on('connect', () => this.fill());
      this.socket.on('data', (c: Buffer) => {
        this.buf += c.toString('latin1');
        for (let eol = this.buf.indexOf('\r\n'); eol >= 0; eol = this.buf.indexOf('\r\n')) {
          const line = this.buf.slice(0, eol);
          this.buf = this.buf.slice(eol + 2);
          this.inflight--;
          // The memory store answers GET of a missing key with a null bulk string.
          if (line === '$-1') this.admitted++;
          else if (line.includes('PW_ERR_RATE_LIMITED')) this.limited++;
          else this.other++;
        }
        if (this.stopped) {
          if (this.inflight === 0) {
            this.socket.destroy();
            resolve();
          }
        } else this.fill();
      });
      this.socket.on('close', () => resolve());
    });
  }

  private fill(): void {
    let out = '';
    while (this.inflight < this.window) {
      out += '*2\r\n$3\r\nGET\r\n$6\r\nrl:key\r\n';
      this.inflight++;
    }
    if (out) this.socket.write(out);
  }

  /** Stops sending; resolves once every reply is in. */
  stop(): Promise<void> {
    this.stopped = true;
    if (this.inflight === 0) this.socket.destroy();
    return this.done;
  }
}

/** One command on a fresh connection; resolves with the first reply line. Bounded. */
function once(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let buf = '';
    const guard = setTimeout(() => {
      s.destroy();
      reject(new Error(`no reply to ${args.join(' ')} within 5 s`));
    }, 5000);
    s.on('connect', () => s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      const eol = buf.indexOf('\r\n');
      if (eol >= 0) {
        clearTimeout(guard);
        s.destroy();
        resolve(buf.slice(0, eol));
      }
    });
    s.on('error', (e) => {
      clearTimeout(guard);
      reject(e);
    });
  });
}

/** Redis' CLIENT LIST lines whose name is the rate limiter's. */
async function limiterConnections(redisPort: number): Promise<number> {
  const s = connect({ port: redisPort, host: '127.0.0.1' });
  s.on('error', () => {});
  const text = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const guard = setTimeout(() => reject(new Error('no CLIENT LIST reply')), 5000);
    s.on('connect', () => s.write('*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n'));
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const len = Number(buf.slice(1, eol));
      if (buf.length >= eol + 2 + len) {
        clearTimeout(guard);
        resolve(buf.slice(eol + 2, eol + 2 + len));
      }
    });
  });
  s.destroy();
  return text.split('\n').filter((l) => l.includes(' name=portway-rate-limit ')).length;
}

describe('global rate limit shared by two Portway processes', () => {
  let redis: RedisServer;
  const procs: { child: Child; admin: string; open: number; closed: number }[] = [];

  before(async () => {
    redis = await startRedis();
    const dir = tempDir('portway-rl2-');
    for (let i = 0; i < 2; i++) {
      const [admin, open, closed] = [await freePort(), await freePort(), await freePort()];
      const file = join(dir, `p${i}.yaml`);
      writeFileSync(file, config(admin, open, closed, redis.address));
      const child = runCli(['run', '-c', file]);
      procs.push({ child, admin: `http://127.0.0.1:${admin}`, open, closed });
    }
    for (const p of procs) {
      try {
        await waitReady(p.admin, 15_000);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${p.child.stderr()}${p.child.stdout()}`);
      }
    }
  });

  after(async () => {
    for (const p of procs) p.child.proc.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.child.exited));
    await redis.close();
  });

  test(`clients driving both processes above the limit get ${RATE}/s in total, within 10%`, async (t) => {
    const drivers = procs.flatMap((p) => [new Driver(p.open), new Driver(p.open)]);
    const start = performance.now();
    await new Promise((r) => setTimeout(r, DRIVE_MS));
    await Promise.all(drivers.map((d) => d.stop()));
    const elapsed = (performance.now() - start) / 1000;
    const admitted = drivers.reduce((n, d) => n + d.admitted, 0);
    const limited = drivers.reduce((n, d) => n + d.limited, 0);
    const other = drivers.reduce((n, d) => n + d.other, 0);
    const allowed = BURST + RATE * elapsed;
    assert.equal(other, 0, 'every reply is an answer or a rate limit rejection');
    assert.ok(limited > admitted, `the load was above the limit (${admitted} admitted, ${limited} limited)`);
    for (let i = 0; i < 2; i++) {
      const mine = drivers[2 * i]!.admitted + drivers[2 * i + 1]!.admitted;
      assert.ok(mine > 0, `process ${i} admitted some requests`);
    }
    const ratio = admitted / allowed;
    t.diagnostic(`admitted ${admitted}, limited ${limited} in ${elapsed.toFixed(2)} s; allowed ${allowed.toFixed(0)}; ratio ${ratio.toFixed(3)}`);
    assert.ok(ratio >= 0.9 && ratio <= 1.1, `admitted ${admitted} in ${elapsed.toFixed(2)} s; the limit allows ${allowed.toFixed(0)} (ratio ${ratio.toFixed(3)})`);
  });

  test('Redis stopped: on_redis_error allow keeps answering, deny refuses with PW_ERR_RATE_LIMITED', async () => {
    await redis.stop();
    try {
      for (const p of procs) {
        assert.equal(await once(p.open, ['GET', 'rl:key']), '$-1', 'fail open: the request is served');
        assert.match(await once(p.closed, ['GET', 'rl:key']), /^-ERR rate limit exceeded.*\(PW_ERR_RATE_LIMITED\)$/, 'fail closed');
        const m = (await http('GET', `${p.admin}/metrics`)).body;
        assert.match(m, /portway_rate_limit_redis_errors_total\{filter="rate_limit",listener="open",outcome="allowed"\} [1-9]/);
        assert.match(m, /portway_rate_limit_redis_errors_total\{filter="rate_limit",listener="closed",outcome="denied"\} [1-9]/);
      }
    } finally {
      await redis.start();
    }
  });
});

describe('filter close hook', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.close();
  });

  test("a reload closes the old generation's global limiter once its last connection ended", async () => {
    const yaml = (rate: number) => `
listeners:
  - name: l
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: rate_limit, mode: global, rate: ${rate}, key: listener, redis: { address: "${redis.address}" } }
    routes: [{ cluster: mem }]
clusters:
  - { name: mem, component: { type: memory } }
`;
    const pw = await startPortway(yaml(1000));
    try {
      await waitFor(async () => (await limiterConnections(redis.port)) === 1, 5000, 'the limiter connected');
      // A connection of the first generation stays open across the reload.
      const held = connect({ port: pw.port('l'), host: '127.0.0.1' });
      held.on('error', () => {});
      await new Promise<void>((r) => held.once('connect', () => r()));
      const reload = await pw.proxy.reload(yaml(2000));
      assert.equal(reload.ok, true);
      await waitFor(async () => (await limiterConnections(redis.port)) === 2, 5000, 'both generations connected');
      assert.equal(await once(pw.port('l'), ['GET', 'k']), '$-1');
      // Still 2: the old generation serves `held`.
      assert.equal(await limiterConnections(redis.port), 2);
      held.destroy();
      await waitFor(async () => (await limiterConnections(redis.port)) === 1, 5000, "the old generation's limiter closed");
    } finally {
      await pw.stop();
    }
    await waitFor(async () => (await limiterConnections(redis.port)) === 0, 5000, 'shutdown closed the last limiter');
  });
});
