/**
 * Circuit breaker, outlier ejection and the retry budget against failing
 * upstreams, on the Redis path and the TCP path. Three ways to fail:
 *
 * - refuses: a loopback port nothing listens on (held by a server until the
 *   proxy is up, so the proxy's own port-0 binds cannot take it); "coming
 *   back" is a server started on that port;
 * - stalls: a server that accepts and reads but never answers (Redis: every
 *   request runs into the timeout filter; L4: the connect succeeds, which is
 *   all an L4 call is, so nothing counts against it);
 * - answers errors: a tiny RESP server answering every command with -ERR
 *   (an application error: passed to the client, never a failure); for L4,
 *   which has no error replies, a server that resets every connection once
 *   its first bytes arrive.
 *
 * Assertions are on states, counters and replies; waits are bounded polls.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { startPortway, type InProcess } from '../helpers/portway';
import { http, tcpServer, waitFor } from '../helpers/net';
import { startRedis } from '../helpers/redis';

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function metrics(pw: InProcess): Promise<string> {
  return (await http('GET', `${pw.admin}/metrics`)).body;
}

async function clusterOf(pw: InProcess, name: string): Promise<Record<string, any>> {
  const body = (await http('GET', `${pw.admin}/clusters`)).json();
  return body.clusters.find((x: { name: string }) => x.name === name);
}

async function endpointOf(pw: InProcess, cluster: string, address: string): Promise<Record<string, any>> {
  return (await clusterOf(pw, cluster)).endpoints.find((e: { address: string }) => e.address === address);
}

/** A port that refuses connections until something is started on it. */
async function deadPort(): Promise<{ port: number; address: string; release(): Promise<void> }> {
  const holder = await tcpServer((s) => s.destroy());
  return { port: holder.port, address: `127.0.0.1:${holder.port}`, release: () => holder.close() };
}

type Mode = 'ok' | 'error' | 'stall';

/**
 * A tiny RESP server: counts complete commands (arrays of bulk strings) and
 * answers each with +OK (mode ok), -ERR injected failure (mode error), or
 * nothing (mode stall). The mode may change while it runs.
 */
async function respServer(mode: Mode, port = 0): Promise<{ address: string; port: number; mode: Mode; commands: number; close(): Promise<void> }> {
  const conns = new Set<Socket>();
  const state = {
    address: '',
    port: 0,
    mode,
    commands: 0,
    close: () =>
      new Promise<void>((r) => {
        for (const c of conns) c.destroy();
        server.close(() => r());
      }),
  };
  const server: Server = createServer((s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      for (;;) {
        const n = commandLength(buf);
        if (n < 0) break;
        buf = buf.slice(n);
        state.commands++;
        if (state.mode === 'ok') s.write('+OK\r\n');
        else if (state.mode === 'error') s.write('-ERR injected failure\r\n');
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  state.port = (server.address() as AddressInfo).port;
  state.address = `127.0.0.1:${state.port}`;
  return state;
}

/** Length of the first complete RESP command (*N then N bulk strings) in s, or -1. */
function commandLength(s: string): number {
  let eol = s.indexOf('\r\n');
  if (eol < 0 || s[0] !== '*') return -1;
  const n = Number(s.slice(1, eol));
  let pos = eol + 2;
  for (let i = 0; i < n; i++) {
    eol = s.indexOf('\r\n', pos);
    if (eol < 0) return -1;
    const len = Number(s.slice(pos + 1, eol));
    pos = eol + 2 + len + 2;
    if (pos > s.length) return -1;
  }
  return pos;
}

/** Raw RESP client: each send resolves with one reply line (every reply in these tests is one line). Bounded. */
class Client {
  private buf = '';
  private readonly waiting: { resolve: (s: string) => void; reject: (e: Error) => void }[] = [];
  readonly socket: Socket;

  constructor(port: number) {
    this.socket = connect({ port, host: '127.0.0.1' });
    this.socket.on('data', (c: Buffer) => {
      this.buf += c.toString('latin1');
      for (let eol = this.buf.indexOf('\r\n'); eol >= 0 && this.waiting.length > 0; eol = this.buf.indexOf('\r\n')) {
        const line = this.buf.slice(0, eol);
        this.buf = this.buf.slice(eol + 2);
        this.waiting.shift()!.resolve(line);
      }
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      for (const w of this.waiting.splice(0)) w.reject(new Error('connection closed'));
    });
  }

  /** Sends the commands in one write; resolves with their replies in order. */
  pipeline(cmds: string[][]): Promise<string[]> {
    const frames = cmds.map((args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`).join('');
    const replies = cmds.map(
      () =>
        new Promise<string>((resolve, reject) => {
          this.waiting.push({ resolve, reject });
        }),
    );
    this.socket.write(frames);
    let timer!: NodeJS.Timeout;
    const guard = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no reply to ${cmds.length} commands within 5 s`)), 5000);
    });
    return Promise.race([Promise.all(replies), guard]).finally(() => clearTimeout(timer));
  }

  async send(...args: string[]): Promise<string> {
    return (await this.pipeline([args]))[0]!;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** L4: connects, sends data, resolves with what came back before the connection closed or `want` bytes arrived. Bounded. */
function tcpExchange(port: number, data: string, want = data.length): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let back = '';
    const guard = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer or close within 5 s (got '${back}')`));
    }, 5000);
    s.on('connect', () => s.write(data));
    s.on('data', (c: Buffer) => {
      back += c.toString();
      if (back.length >= want) s.destroy();
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(guard);
      resolve(back);
    });
  });
}

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('Redis path', () => {
  test('refuses: the breaker opens, stays open while the half-open probe fails, closes once the endpoint is back', async () => {
    const dead = await deadPort();
    const pw = await startPortway(`
listeners:
  - name: r
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: circuit_breaker, consecutive_failures: 2, open_duration: 200ms }
    routes: [{ cluster: c }]
clusters:
  - { name: c, endpoints: ["${dead.address}"] }
`);
    cleanups.push(() => pw.stop());
    await dead.release();
    const c = new Client(pw.port('r'));
    cleanups.push(() => c.close());
    assert.match(await c.send('GET', 'k'), /^-ERR .*\(PW_ERR_UPSTREAM_CONNECT\)$/);
    assert.match(await c.send('GET', 'k'), /\(PW_ERR_UPSTREAM_CONNECT\)$/);
    assert.match(await c.send('GET', 'k'), /^-ERR upstream overloaded: .*\(PW_ERR_CIRCUIT_OPEN\)$/);
    assert.equal((await clusterOf(pw, 'c')).circuit_breaker.state, 'open');
    // Half-open: the probe is let through, fails again (still refused), and the breaker opens again.
    await waitFor(async () => (await clusterOf(pw, 'c')).circuit_breaker.state === 'half-open', 5000, 'half-open');
    assert.match(await c.send('GET', 'k'), /\(PW_ERR_UPSTREAM_CONNECT\)$/);
    const b = (await clusterOf(pw, 'c')).circuit_breaker;
    assert.equal(b.state, 'open');
    assert.equal(b.opened, 2);
    // The endpoint comes back: the next probe succeeds and the breaker closes.
    const back = await respServer('ok', dead.port);
    cleanups.push(() => back.close());
    await waitFor(async () => (await clusterOf(pw, 'c')).circuit_breaker.state === 'half-open', 5000, 'half-open again');
    await waitFor(async () => (await c.send('GET', 'k')) === '+OK', 5000, 'a probe answered');
    assert.equal((await clusterOf(pw, 'c')).circuit_breaker.state, 'closed');
    assert.ok(metric(await metrics(pw), 'portway_circuit_rejected_total', 'cluster="c",reason="open"') >= 1);
  });

  test('refuses: the retry budget caps the retries of 20 requests failing at once to 20%', async () => {
    const dead = await deadPort();
    const pw = await startPortway(`
listeners:
  - name: rb
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: retry, max_retries: 1, budget_percent: 20, min_retry_concurrency: 0, backoff: { base: 100ms, max: 100ms }, retry_on: [connect-failure] }
    routes: [{ cluster: c }]
clusters:
  - { name: c, endpoints: ["${dead.address}"] }
`);
    cleanups.push(() => pw.stop());
    await dead.release();
    const c = new Client(pw.port('rb'));
    cleanups.push(() => c.close());
    // One write: the 20 requests wait together for the connect, which fails for all of them in one go.
    const replies = await c.pipeline(Array.from({ length: 20 }, (_, i) => ['GET', `k${i}`]));
    for (const r of replies) assert.match(r, /\(PW_ERR_UPSTREAM_CONNECT\)$/);
    const m = await metrics(pw);
    assert.equal(metric(m, 'portway_retry_total', 'filter="retry",listener="rb"'), 4, '20% of 20 requests in flight');
    assert.equal(metric(m, 'portway_retry_budget_exhausted_total', 'filter="retry",listener="rb"'), 16);
  });

  test('stalls: timeouts open the breaker and count against the endpoint (outlier ejection); it returns after the ejection time', async () => {
    const staller = await respServer('stall');
    const ok = await respServer('ok');
    cleanups.push(() => staller.close(), () => ok.close());
    const pw = await startPortway(`
listeners:
  - name: rs
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: timeout, timeout: 100ms }
    routes: [{ cluster: c }]
  - name: rsb
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: timeout, timeout: 100ms }
      - { type: circuit_breaker, consecutive_failures: 2, open_duration: 1h }
    routes: [{ cluster: only-staller }]
clusters:
  - name: c
    lb: round_robin
    endpoints: ["${staller.address}", "${ok.address}"]
    health_check:
      outlier: { consecutive_errors: 2, base_ejection_time: 300ms, max_ejection_percent: 50, interval: 1h }
  - { name: only-staller, endpoints: ["${staller.address}"] }
`);
    cleanups.push(() => pw.stop());
    // Outlier detection: round robin starts at the first endpoint, so this session sticks to the staller.
    const c = new Client(pw.port('rs'));
    cleanups.push(() => c.close());
    assert.match(await c.send('GET', 'k'), /\(PW_ERR_TIMEOUT\)$/);
    assert.match(await c.send('GET', 'k'), /\(PW_ERR_TIMEOUT\)$/);
    const ejected = await endpointOf(pw, 'c', staller.address);
    assert.equal(ejected.health, 'ejected');
    assert.equal(ejected.reason, 'consecutive_errors');
    assert.ok(ejected.rq_error >= 2);
    // The session leaves the ejected endpoint: the next request is answered by the other one.
    assert.equal(await c.send('GET', 'k'), '+OK');
    await waitFor(async () => (await endpointOf(pw, 'c', staller.address)).health === 'healthy', 5000, 'the staller back in rotation');
    assert.equal(metric(await metrics(pw), 'portway_upstream_ejections_total', `cluster="c",endpoint="${staller.address}",reason="consecutive_errors"`), 1);

    // Circuit breaker: two timeouts in a row open it; then requests are refused without waiting.
    const d = new Client(pw.port('rsb'));
    cleanups.push(() => d.close());
    assert.match(await d.send('GET', 'k'), /\(PW_ERR_TIMEOUT\)$/);
    assert.match(await d.send('GET', 'k'), /\(PW_ERR_TIMEOUT\)$/);
    assert.match(await d.send('GET', 'k'), /\(PW_ERR_CIRCUIT_OPEN\)$/);
    assert.equal((await clusterOf(pw, 'only-staller')).circuit_breaker.state, 'open');
  });

  test('answers errors: -ERR replies reach the client unchanged and are no failure (breaker closed, no ejection, no retry)', async () => {
    const erring = await respServer('error');
    cleanups.push(() => erring.close());
    const pw = await startPortway(`
listeners:
  - name: re
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: retry, max_retries: 2, retry_on: [connect-failure, reset, timeout] }
      - { type: circuit_breaker, consecutive_failures: 1 }
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["${erring.address}"]
    health_check:
      outlier: { consecutive_errors: 1, base_ejection_time: 1h, max_ejection_time: 1h, interval: 1h }
`);
    cleanups.push(() => pw.stop());
    const c = new Client(pw.port('re'));
    cleanups.push(() => c.close());
    const replies = await c.pipeline(Array.from({ length: 5 }, () => ['GET', 'k']));
    assert.deepEqual(replies, Array(5).fill('-ERR injected failure'));
    assert.equal(erring.commands, 5, 'each request sent once');
    const cl = await clusterOf(pw, 'c');
    assert.equal(cl.circuit_breaker.state, 'closed');
    assert.equal(cl.circuit_breaker.consecutive_failures, 0);
    assert.equal(cl.endpoints[0].health, 'healthy');
    assert.equal(metric(await metrics(pw), 'portway_retry_total', 'filter="retry",listener="re"'), 0);
  });
});

describe('Redis path: split, broadcast and prefix-routed requests take the policies too', () => {
  test('a stalled shard: MGET parts, DBSIZE broadcast and a prefix-routed GET end in PW_ERR_TIMEOUT instead of hanging', async () => {
    const redis = await startRedis();
    const staller = await respServer('stall');
    cleanups.push(() => redis.close(), () => staller.close());
    const pw = await startPortway(`
listeners:
  - name: sh
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: timeout, timeout: 150ms }
    routes: [{ cluster: shards }]
  - name: px
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: timeout, timeout: 150ms }
      - { type: circuit_breaker, consecutive_failures: 2, open_duration: 1h }
    options:
      prefix_routes: [{ prefix: "slow:", cluster: slow }]
      catch_all_cluster: fast
    routes: [{ cluster: fast }]
clusters:
  - name: shards
    sharding: { hash: fnv1a_64, distribution: modula }
    endpoints: ["${redis.address}", "${staller.address}"]
  - { name: slow, endpoints: ["${staller.address}"] }
  - { name: fast, endpoints: ["${redis.address}"] }
`);
    cleanups.push(() => pw.stop());
    const c = new Client(pw.port('sh'));
    cleanups.push(() => c.close());
    const keys = Array.from({ length: 16 }, (_, i) => `k${i}`);
    // modula over two shards: hash % 2, and the hashes of k0..k15 differ in their last bit, so both shards get keys
    // whatever the ports (a ketama ring depends on the servers' names, i.e. the ports): the staller's part times out.
    assert.match(await c.send('MGET', ...keys), /^-ERR upstream timed out .*\(PW_ERR_TIMEOUT\)$/);
    assert.match(await c.send('DBSIZE'), /\(PW_ERR_TIMEOUT\)$/);
    const m = await metrics(pw);
    assert.ok(metric(m, 'portway_timeout_total', 'filter="timeout",listener="sh"') >= 2, 'each stalled part timed out on its own');

    const d = new Client(pw.port('px'));
    cleanups.push(() => d.close());
    assert.equal(await d.send('SET', 'fast:k', 'v'), '+OK', 'the catch-all cluster answers');
    assert.match(await d.send('GET', 'slow:k'), /\(PW_ERR_TIMEOUT\)$/);
    assert.match(await d.send('GET', 'slow:k'), /\(PW_ERR_TIMEOUT\)$/);
    assert.match(await d.send('GET', 'slow:k'), /\(PW_ERR_CIRCUIT_OPEN\)$/, 'the breaker guards the prefix-routed cluster');
    assert.equal((await clusterOf(pw, 'slow')).circuit_breaker.state, 'open');
  });
});

describe('TCP path', () => {
  test('refuses: the breaker opens after connect failures, refuses at once, and closes once the endpoint is back', async () => {
    const dead = await deadPort();
    const pw = await startPortway(`
listeners:
  - name: t
    address: 127.0.0.1:0
    protocol: tcp
    filters:
      - { type: circuit_breaker, consecutive_failures: 2, open_duration: 200ms }
    routes: [{ cluster: c }]
clusters:
  - { name: c, endpoints: ["${dead.address}"] }
`);
    cleanups.push(() => pw.stop());
    await dead.release();
    assert.equal(await tcpExchange(pw.port('t'), 'x'), '');
    assert.equal(await tcpExchange(pw.port('t'), 'x'), '');
    assert.equal((await clusterOf(pw, 'c')).circuit_breaker.state, 'open');
    assert.equal(await tcpExchange(pw.port('t'), 'x'), '');
    const m = await metrics(pw);
    assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_CIRCUIT_OPEN",listener="t"'), 1);
    assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_UPSTREAM_CONNECT",listener="t"'), 2);
    // Bring the endpoint back on its own port.
    const back = createServer((s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => back.listen(dead.port, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => back.close(() => r())));
    await waitFor(async () => (await clusterOf(pw, 'c')).circuit_breaker.state === 'half-open', 5000, 'half-open');
    assert.equal(await tcpExchange(pw.port('t'), 'hello'), 'hello');
    assert.equal((await clusterOf(pw, 'c')).circuit_breaker.state, 'closed');
  });

  test('refuses: with no retry budget left, connect failures are not retried and the refusals are counted', async () => {
    const dead = await deadPort();
    const pw = await startPortway(`
listeners:
  - name: tb
    address: 127.0.0.1:0
    protocol: tcp
    filters:
      - { type: retry, max_retries: 3, budget_percent: 0, min_retry_concurrency: 0 }
    routes: [{ cluster: c }]
clusters:
  - { name: c, endpoints: ["${dead.address}"], max_connect_attempts: 1 }
`);
    cleanups.push(() => pw.stop());
    await dead.release();
    for (let i = 0; i < 3; i++) assert.equal(await tcpExchange(pw.port('tb'), 'x'), '');
    const m = await metrics(pw);
    assert.equal(metric(m, 'portway_retry_total', 'filter="retry",listener="tb"'), 0);
    assert.equal(metric(m, 'portway_retry_budget_exhausted_total', 'filter="retry",listener="tb"'), 3);
    assert.equal(metric(m, 'portway_upstream_cx_connect_fail_total', `cluster="c",endpoint="${dead.address}"`), 3, 'one connect per connection');
  });

  test('answers errors (resets every connection): outlier detection ejects it, traffic goes to the other, it returns after the ejection time', async () => {
    // Reset once the request arrives: the proxy's connect has surely completed, so this is a request failure.
    const resetter = await tcpServer((s) => s.once('data', () => s.resetAndDestroy()));
    const echo = await tcpServer((s) => s.pipe(s));
    cleanups.push(() => resetter.close(), () => echo.close());
    const resetAddr = `127.0.0.1:${resetter.port}`;
    const pw = await startPortway(`
listeners:
  - name: te
    address: 127.0.0.1:0
    protocol: tcp
    routes: [{ cluster: c }]
clusters:
  - name: c
    lb: round_robin
    endpoints: ["${resetAddr}", "127.0.0.1:${echo.port}"]
    health_check:
      outlier: { consecutive_errors: 2, base_ejection_time: 300ms, max_ejection_percent: 50, interval: 1h }
`);
    cleanups.push(() => pw.stop());
    // Round robin: connections alternate, the resetter first; two resets eject it.
    const got: string[] = [];
    for (let i = 0; i < 4; i++) got.push(await tcpExchange(pw.port('te'), 'ping'));
    assert.deepEqual(got.sort(), ['', '', 'ping', 'ping']);
    await waitFor(async () => (await endpointOf(pw, 'c', resetAddr)).reason === 'consecutive_errors', 5000, 'resetter ejected');
    for (let i = 0; i < 3; i++) assert.equal(await tcpExchange(pw.port('te'), 'ping'), 'ping', 'only the healthy endpoint serves while the resetter is out');
    await waitFor(async () => (await endpointOf(pw, 'c', resetAddr)).health === 'healthy', 5000, 'the resetter back in rotation');
  });

  test('stalls (accepts, never answers): for L4 the call is the connect, so the breaker counts successes and nothing is ejected', async () => {
    const staller = await tcpServer((s) => s.on('error', () => {}));
    cleanups.push(() => staller.close());
    const addr = `127.0.0.1:${staller.port}`;
    const pw = await startPortway(`
listeners:
  - name: ts
    address: 127.0.0.1:0
    protocol: tcp
    filters:
      - { type: timeout, timeout: 100ms }
      - { type: circuit_breaker, consecutive_failures: 1 }
    routes: [{ cluster: c }]
clusters:
  - name: c
    endpoints: ["${addr}"]
    health_check:
      outlier: { consecutive_errors: 1, base_ejection_time: 1h, max_ejection_time: 1h, interval: 1h }
`);
    cleanups.push(() => pw.stop());
    for (let i = 0; i < 2; i++) {
      // Nothing comes back; the client gives up after a short while (not an assertion on time).
      const s = connect({ port: pw.port('ts'), host: '127.0.0.1' });
      s.on('error', () => {});
      await new Promise<void>((r) => s.once('connect', () => r()));
      await waitFor(async () => (await clusterOf(pw, 'c')).endpoints[0].rq_active === 1, 5000, 'connection spliced');
      s.destroy();
      await waitFor(async () => (await clusterOf(pw, 'c')).endpoints[0].rq_active === 0, 5000, 'connection closed');
    }
    const cl = await clusterOf(pw, 'c');
    assert.equal(cl.circuit_breaker.state, 'closed');
    assert.equal(cl.circuit_breaker.window.failures, 0);
    assert.equal(cl.endpoints[0].health, 'healthy');
    assert.equal(metric(await metrics(pw), 'portway_timeout_total', 'filter="timeout",listener="ts"'), 0);
  });
});
