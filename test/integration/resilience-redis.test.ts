/**
 * timeout, retry and circuit_breaker on Redis listeners against real
 * redis-servers. Single-key requests go through the around-policies
 * (RedisSession.viaPolicies): the upstream call is one send, and a Redis
 * "-ERR" reply is an answer, not a failure.
 *
 * What makes each case deterministic:
 * - a hung Redis is a SIGSTOPped one: its connections stay open, nothing answers;
 * - a connect failure is a loopback port nothing listens on (held until the
 *   proxy is up, so the proxy cannot be given it), listed first in a fresh
 *   cluster (round robin starts at the first endpoint; passive health ejects
 *   it after one failure, so the retry goes to the live one);
 * - a reset after the request was sent is a small TCP front that forwards
 *   to the real Redis but resets the connection carrying the next command
 *   when told to, and records what it saw.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { http, tcpServer, waitFor } from '../helpers/net';

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Length of the first complete RESP2 reply in s (latin1), or -1 when incomplete. */
function replyLength(s: string, at = 0): number {
  const eol = s.indexOf('\r\n', at);
  if (eol < 0) return -1;
  const t = s[at];
  if (t === '+' || t === '-' || t === ':') return eol + 2 - at;
  const n = Number(s.slice(at + 1, eol));
  if (t === '$') {
    if (n < 0) return eol + 2 - at;
    const end = eol + 2 + n + 2;
    return s.length >= end ? end - at : -1;
  }
  if (t === '*') {
    let pos = eol + 2;
    for (let i = 0; i < n; i++) {
      const l = replyLength(s, pos);
      if (l < 0) return -1;
      pos += l;
    }
    return pos - at;
  }
  throw new Error(`unexpected reply byte '${t}' in ${JSON.stringify(s.slice(at, at + 40))}`);
}

/** One client connection speaking raw RESP: each send resolves with its raw reply, in order. Bounded. */
class RespConn {
  private buf = '';
  private readonly waiting: { resolve: (s: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  readonly socket: Socket;
  private closed = false;

  constructor(port: number) {
    this.socket = connect({ port, host: '127.0.0.1' });
    this.socket.on('data', (c: Buffer) => {
      this.buf += c.toString('latin1');
      for (;;) {
        if (this.waiting.length === 0) break;
        const n = replyLength(this.buf);
        if (n < 0) break;
        const reply = this.buf.slice(0, n);
        this.buf = this.buf.slice(n);
        const w = this.waiting.shift()!;
        clearTimeout(w.timer);
        w.resolve(reply);
      }
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error('connection closed'));
      }
    });
  }

  send(...args: string[]): Promise<string> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    const frame = `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${args.join(' ')} within 5 s`)), 5000);
      this.waiting.push({ resolve, reject, timer });
      this.socket.write(frame);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

const bulk = (v: string) => `$${Buffer.byteLength(v)}\r\n${v}\r\n`;

/**
 * A port that refuses connections once the proxy is up: held by a listening
 * server until release(), so nothing bound meanwhile (the proxy's own
 * listeners and admin server on port 0) can be given it.
 */
async function deadPort(): Promise<{ port: number; release(): Promise<void> }> {
  const holder = await tcpServer((s) => s.destroy());
  return { port: holder.port, release: () => holder.close() };
}

async function metrics(pw: InProcess): Promise<string> {
  return (await http('GET', `${pw.admin}/metrics`)).body;
}

async function breakerOf(pw: InProcess, cluster: string): Promise<Record<string, any>> {
  const body = (await http('GET', `${pw.admin}/clusters`)).json();
  return body.clusters.find((x: { name: string }) => x.name === cluster).circuit_breaker;
}

/** A TCP front for a Redis: forwards both ways; when `resetNext` is set, resets the connection carrying the next command. */
async function flakyFront(target: number): Promise<{ address: string; seen: string[]; resetNext: boolean; close(): Promise<void> }> {
  const conns = new Set<Socket>();
  const state = {
    address: '',
    seen: [] as string[],
    resetNext: false,
    close: () =>
      new Promise<void>((r) => {
        for (const c of conns) c.destroy();
        server.close(() => r());
      }),
  };
  const server: Server = createServer((client) => {
    const up = connect({ port: target, host: '127.0.0.1' });
    conns.add(client);
    conns.add(up);
    client.on('error', () => {});
    up.on('error', () => {});
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
    up.on('data', (c: Buffer) => client.write(c));
    client.on('data', (c: Buffer) => {
      // Every command of these tests is short and arrives in one chunk: record its name.
      const name = /^\*\d+\r\n\$\d+\r\n([A-Za-z]+)/.exec(c.toString('latin1'))?.[1] ?? '?';
      state.seen.push(name.toUpperCase());
      if (state.resetNext) {
        state.resetNext = false;
        client.resetAndDestroy();
        up.destroy();
        return;
      }
      up.write(c);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

describe('resilience on a Redis listener', () => {
  let redis: RedisServer;
  const conns: RespConn[] = [];
  const conn = (port: number) => {
    const c = new RespConn(port);
    conns.push(c);
    return c;
  };

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const c of conns) c.close();
    redis.resume();
    await redis.stop();
  });

  test('timeout: a hung Redis answers PW_ERR_TIMEOUT in bounded time; the connection works again after it thaws', async () => {
    const pw = await startPortway(`
listeners:
  - name: t
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: timeout, timeout: 200ms }
    routes: [{ cluster: r }]
clusters:
  - { name: r, endpoints: ["${redis.address}"] }
`);
    try {
      const c = conn(pw.port('t'));
      assert.equal(await c.send('SET', 'to:k', 'v1'), '+OK\r\n');
      redis.pause();
      let reply: string;
      const start = performance.now();
      try {
        reply = await c.send('GET', 'to:k'); // bounded by RespConn (5 s)
      } finally {
        redis.resume();
      }
      const took = performance.now() - start;
      assert.match(reply, /^-ERR .*\(PW_ERR_TIMEOUT\)\r\n$/);
      assert.ok(took >= 199, `answered after ${took} ms, before the timeout`);
      // The late answer to the abandoned GET must not be taken for the next reply.
      assert.equal(await c.send('SET', 'to:k2', 'v2'), '+OK\r\n');
      assert.equal(await c.send('GET', 'to:k'), bulk('v1'));
      assert.equal(await c.send('GET', 'to:k2'), bulk('v2'));
      const m = await metrics(pw);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_TIMEOUT",listener="t"'), 1);
      assert.equal(metric(m, 'portway_timeout_total', 'filter="timeout",listener="t"'), 1);
    } finally {
      redis.resume();
      await pw.stop();
    }
  });

  test('timeout + circuit breaker: timeouts of a hung Redis open the breaker; it closes after the Redis thaws', async () => {
    const pw = await startPortway(`
listeners:
  - name: tcb
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: timeout, timeout: 100ms }
      - { type: circuit_breaker, consecutive_failures: 2, open_duration: 300ms }
    routes: [{ cluster: r }]
clusters:
  - { name: r, endpoints: ["${redis.address}"] }
`);
    try {
      const c = conn(pw.port('tcb'));
      assert.equal(await c.send('SET', 'tcb:k', 'v'), '+OK\r\n');
      redis.pause();
      try {
        assert.match(await c.send('GET', 'tcb:k'), /PW_ERR_TIMEOUT/);
        assert.match(await c.send('GET', 'tcb:k'), /PW_ERR_TIMEOUT/);
        assert.match(await c.send('GET', 'tcb:k'), /^-ERR upstream overloaded: .*\(PW_ERR_CIRCUIT_OPEN\)\r\n$/);
        assert.equal((await breakerOf(pw, 'r')).state, 'open');
      } finally {
        redis.resume();
      }
      await waitFor(async () => (await breakerOf(pw, 'r')).state === 'half-open', 5000, 'half-open');
      assert.equal(await c.send('GET', 'tcb:k'), bulk('v'));
      assert.equal((await breakerOf(pw, 'r')).state, 'closed');
    } finally {
      redis.resume();
      await pw.stop();
    }
  });

  test('retry: a connect failure is retried for reads and writes alike (nothing was sent)', async () => {
    const hold = await deadPort();
    const dead = hold.port;
    const cl = (name: string) => `  - { name: ${name}, endpoints: ["127.0.0.1:${dead}", "${redis.address}"] }\n`;
    const pw = await startPortway(`
listeners:
  - name: plain
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: a }]
  - name: rget
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: retry, max_retries: 2, backoff: { base: 1ms, max: 5ms } }
    routes: [{ cluster: b }]
  - name: rincr
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: retry, max_retries: 2, backoff: { base: 1ms, max: 5ms } }
    routes: [{ cluster: c }]
clusters:
${cl('a')}${cl('b')}${cl('c')}`);
    await hold.release();
    try {
      const direct = conn(redis.port);
      assert.equal(await direct.send('SET', 'rt:k', 'hello'), '+OK\r\n');
      assert.equal(await direct.send('DEL', 'rt:ctr'), ':0\r\n');

      // Control: without retry the first request goes to the dead endpoint and fails.
      assert.match(await conn(pw.port('plain')).send('GET', 'rt:k'), /PW_ERR_UPSTREAM_CONNECT/);

      assert.equal(await conn(pw.port('rget')).send('GET', 'rt:k'), bulk('hello'));
      assert.equal(await conn(pw.port('rincr')).send('INCR', 'rt:ctr'), ':1\r\n');
      assert.equal(await direct.send('GET', 'rt:ctr'), bulk('1'), 'the INCR ran once');
      const m = await metrics(pw);
      assert.equal(metric(m, 'portway_retry_total', 'filter="retry",listener="rget"'), 1);
      assert.equal(metric(m, 'portway_retry_total', 'filter="retry",listener="rincr"'), 1);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_UPSTREAM_CONNECT",listener="rget"'), 0);
    } finally {
      await pw.stop();
    }
  });

  test('retry: after a reset an idempotent GET is sent again, a non-idempotent INCR is not', async () => {
    const front = await flakyFront(redis.port);
    const pw = await startPortway(`
listeners:
  - name: rr
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: retry, max_retries: 2, backoff: { base: 1ms, max: 5ms } }
    routes: [{ cluster: f }]
clusters:
  - { name: f, endpoints: ["${front.address}"] }
`);
    try {
      const direct = conn(redis.port);
      assert.equal(await direct.send('SET', 'rs:k', 'kept'), '+OK\r\n');
      assert.equal(await direct.send('DEL', 'rs:ctr'), ':0\r\n');
      const c = conn(pw.port('rr'));

      front.resetNext = true;
      assert.match(await c.send('INCR', 'rs:ctr'), /^-ERR .*\(PW_ERR_UPSTREAM_RESET\)\r\n$/);
      assert.deepEqual(front.seen, ['INCR'], 'the INCR was sent once and not again');
      assert.equal(await direct.send('GET', 'rs:ctr'), '$-1\r\n');
      let m = await metrics(pw);
      assert.equal(metric(m, 'portway_retry_total', 'filter="retry",listener="rr"'), 0);

      front.resetNext = true;
      assert.equal(await c.send('GET', 'rs:k'), bulk('kept'));
      assert.deepEqual(front.seen, ['INCR', 'GET', 'GET'], 'the GET was sent again after the reset');
      m = await metrics(pw);
      assert.equal(metric(m, 'portway_retry_total', 'filter="retry",listener="rr"'), 1);
      assert.equal(metric(m, 'portway_retry_recovered_total', 'filter="retry",listener="rr"'), 1);

      // The same connection keeps working.
      assert.equal(await c.send('INCR', 'rs:ctr'), ':1\r\n');
    } finally {
      await pw.stop();
      await front.close();
    }
  });

  test('retry: the late reply of an abandoned try is not taken as the answer of the retry', async () => {
    // a and b hold different values under one key. The first try goes to a (the first endpoint), which is
    // frozen: its per-try timeout ejects a (outlier detection, one error), so the retry goes to b, frozen too.
    // a thaws first and answers the abandoned try; then b answers the retry, within its per-try timeout.
    const a = await startRedis();
    const b = await startRedis();
    const pw = await startPortway(`
listeners:
  - name: late
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: retry, max_retries: 1, per_try_timeout: 500ms, retry_on: [timeout], backoff: { base: 1ms, max: 2ms } }
    routes: [{ cluster: ab }]
clusters:
  - name: ab
    endpoints: ["${a.address}", "${b.address}"]
    health_check: { outlier: { consecutive_errors: 1, max_ejection_percent: 50 } }
`);
    try {
      assert.equal(await conn(a.port).send('SET', 'late:k', 'from-a'), '+OK\r\n');
      assert.equal(await conn(b.port).send('SET', 'late:k', 'from-b'), '+OK\r\n');
      const c = conn(pw.port('late'));
      a.pause();
      b.pause();
      const start = performance.now();
      const reply = c.send('GET', 'late:k');
      try {
        // The first try times out at 500-520 ms and the retry is sent to b; a answers at ~700 ms, b at ~800 ms
        // (the retry's own deadline is at ~1,000 ms or later).
        await new Promise((r) => setTimeout(r, 700));
        a.resume();
        await new Promise((r) => setTimeout(r, 100));
        b.resume();
      } finally {
        a.resume();
        b.resume();
      }
      assert.equal(await reply, bulk('from-b'), "the retry's answer comes from b");
      assert.ok(performance.now() - start >= 790, 'answered only once b was thawed');
      const m = await metrics(pw);
      assert.equal(metric(m, 'portway_retry_total', 'filter="retry",listener="late"'), 1);
      assert.equal(metric(m, 'portway_retry_recovered_total', 'filter="retry",listener="late"'), 1);
      // The connection keeps its order afterwards.
      assert.equal(await c.send('GET', 'late:k'), bulk('from-b'));
    } finally {
      a.resume();
      b.resume();
      await pw.stop();
      await a.stop();
      await b.stop();
    }
  });

  test('circuit breaker: opens once a stopped Redis keeps failing, closes after it is started again', async () => {
    const own = await startRedis();
    const pw = await startPortway(`
listeners:
  - name: cb
    address: 127.0.0.1:0
    protocol: redis
    filters:
      - { type: circuit_breaker, consecutive_failures: 2, open_duration: 300ms }
    routes: [{ cluster: s }]
clusters:
  - { name: s, endpoints: ["${own.address}"], connect_timeout: 1s }
`);
    try {
      const c = conn(pw.port('cb'));
      assert.equal(await c.send('SET', 'cb:k', 'v'), '+OK\r\n');
      // A Redis error reply is an answer, not a failure.
      assert.match(await c.send('LPUSH', 'cb:k', 'x'), /^-WRONGTYPE/);
      assert.match(await c.send('LPUSH', 'cb:k', 'x'), /^-WRONGTYPE/);
      assert.equal((await breakerOf(pw, 's')).state, 'closed');

      await own.stop();
      const failures: string[] = [];
      for (let i = 0; i < 2; i++) failures.push(await c.send('GET', 'cb:k'));
      for (const f of failures) assert.match(f, /PW_ERR_UPSTREAM_(CONNECT|RESET)/);
      assert.match(await c.send('GET', 'cb:k'), /^-ERR upstream overloaded: .*\(PW_ERR_CIRCUIT_OPEN\)\r\n$/);
      const open = await breakerOf(pw, 's');
      assert.equal(open.state, 'open');
      let m = await metrics(pw);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_CIRCUIT_OPEN",listener="cb"'), 1);
      assert.equal(metric(m, 'portway_circuit_state', 'cluster="s"'), 1);

      await own.start();
      await waitFor(async () => (await breakerOf(pw, 's')).state === 'half-open', 5000, 'half-open');
      // The restarted Redis is empty: the probe's answer is a nil.
      assert.equal(await c.send('GET', 'cb:k'), '$-1\r\n');
      assert.equal((await breakerOf(pw, 's')).state, 'closed');
      m = await metrics(pw);
      assert.equal(metric(m, 'portway_circuit_state', 'cluster="s"'), 0);
      assert.equal(await c.send('SET', 'cb:k', 'again'), '+OK\r\n');
    } finally {
      await pw.stop();
      await own.stop();
    }
  });
});
