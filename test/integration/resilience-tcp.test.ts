/**
 * retry and circuit_breaker on real TCP listeners. For L4 the upstream call
 * is the connect, so these are connect retries, connect failures opening
 * the breaker, and a limit on upstream connections. Endpoints that refuse
 * are loopback ports nothing listens on (ECONNREFUSED at once), held by a
 * server until the proxy is up so that the proxy's own port-0 binds cannot
 * be given them; round robin on a fresh cluster tries the endpoints in
 * config order, which makes "the dead one first" deterministic.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { startPortway, type InProcess } from '../helpers/portway';
import { echoServer, http, tcpServer, waitFor, type TestServer } from '../helpers/net';

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Connects, sends `data`, resolves with what came back once `data.length` bytes arrived or the proxy closed. Bounded. */
function exchange(port: number, data: string): Promise<string> {
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
      if (back.length >= data.length) s.destroy();
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(guard);
      resolve(back);
    });
  });
}

/** An echo server on a given port (the port a dead endpoint used). */
function echoOn(port: number): Promise<{ server: Server; close(): Promise<void> }> {
  const conns = new Set<Socket>();
  const server = createServer((s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () =>
      resolve({
        server,
        close: () =>
          new Promise<void>((r) => {
            for (const c of conns) c.destroy();
            server.close(() => r());
          }),
      }),
    );
  });
}

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
  const c = body.clusters.find((x: { name: string }) => x.name === cluster);
  assert.ok(c, `cluster ${cluster} in /clusters`);
  return c.circuit_breaker;
}

describe('resilience on a TCP listener', () => {
  test('retry: a connect failure on the first endpoint becomes a success on another', async () => {
    const echo: TestServer = await echoServer();
    const hold = await deadPort();
    const dead = hold.port;
    const cluster = (name: string) => `  - { name: ${name}, endpoints: ["127.0.0.1:${dead}", "${echo.address}"], max_connect_attempts: 1 }\n`;
    const pw = await startPortway(`
listeners:
  - name: with-retry
    address: 127.0.0.1:0
    protocol: tcp
    filters:
      - { type: retry, max_retries: 2, backoff: { base: 5ms, max: 20ms } }
    routes: [{ cluster: a }]
  - name: no-retry
    address: 127.0.0.1:0
    protocol: tcp
    routes: [{ cluster: b }]
clusters:
${cluster('a')}${cluster('b')}`);
    await hold.release();
    try {
      // Without retry (and one connect attempt per connection) the first connection hits the dead endpoint and fails.
      assert.equal(await exchange(pw.port('no-retry'), 'hello'), '');
      let m = await metrics(pw);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_UPSTREAM_CONNECT",listener="no-retry"'), 1);

      // With retry, the same first connection is rescued by the retry filter.
      assert.equal(await exchange(pw.port('with-retry'), 'hello'), 'hello');
      m = await metrics(pw);
      assert.equal(metric(m, 'portway_retry_total', 'filter="retry",listener="with-retry"'), 1);
      assert.equal(metric(m, 'portway_retry_recovered_total', 'filter="retry",listener="with-retry"'), 1);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_UPSTREAM_CONNECT",listener="with-retry"'), 0);
      assert.equal(metric(m, 'portway_upstream_cx_connect_fail_total', `cluster="a",endpoint="127.0.0.1:${dead}"`), 1);
      // Later connections go straight to the live endpoint (the dead one is ejected).
      for (let i = 0; i < 3; i++) assert.equal(await exchange(pw.port('with-retry'), `again ${i}`), `again ${i}`);
    } finally {
      await pw.stop();
      await echo.close();
    }
  });

  test('circuit breaker: opens after consecutive connect failures, fails fast, half-opens, closes once the upstream is back', async () => {
    const hold = await deadPort();
    const port = hold.port;
    const pw = await startPortway(`
listeners:
  - name: cb
    address: 127.0.0.1:0
    protocol: tcp
    filters:
      - { type: circuit_breaker, consecutive_failures: 3, open_duration: 300ms }
    routes: [{ cluster: flaky }]
clusters:
  - { name: flaky, endpoints: ["127.0.0.1:${port}"], connect_timeout: 1s }
`);
    await hold.release();
    let up: { close(): Promise<void> } | null = null;
    try {
      assert.equal((await breakerOf(pw, 'flaky')).state, 'closed');
      for (let i = 0; i < 3; i++) assert.equal(await exchange(pw.port('cb'), 'x'), '');
      let m = await metrics(pw);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_UPSTREAM_CONNECT",listener="cb"'), 3);
      const open = await breakerOf(pw, 'flaky');
      assert.equal(open.state, 'open');
      assert.equal(open.consecutive_failures, 3);
      assert.ok(open.retry_in_ms > 0 && open.retry_in_ms <= 300, JSON.stringify(open));
      assert.equal(metric(m, 'portway_circuit_state', 'cluster="flaky"'), 1);

      // Open: refused without a connect attempt.
      assert.equal(await exchange(pw.port('cb'), 'x'), '');
      m = await metrics(pw);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_CIRCUIT_OPEN",listener="cb"'), 1);
      assert.equal(metric(m, 'portway_circuit_rejected_total', 'cluster="flaky",reason="open"'), 1);
      assert.equal(metric(m, 'portway_upstream_cx_connect_fail_total', `cluster="flaky",endpoint="127.0.0.1:${port}"`), 3);

      // Half-open while the upstream is still down: the probe fails and the breaker opens again.
      await waitFor(async () => (await breakerOf(pw, 'flaky')).state === 'half-open', 5000, 'half-open');
      assert.equal(await exchange(pw.port('cb'), 'x'), '');
      const reopened = await breakerOf(pw, 'flaky');
      assert.equal(reopened.state, 'open');
      assert.equal(reopened.opened, 2);

      // The upstream comes back: the next probe succeeds and the breaker closes.
      up = await echoOn(port);
      await waitFor(async () => (await breakerOf(pw, 'flaky')).state === 'half-open', 5000, 'half-open again');
      assert.equal(metric(await metrics(pw), 'portway_circuit_state', 'cluster="flaky"'), 2);
      assert.equal(await exchange(pw.port('cb'), 'back'), 'back');
      assert.equal((await breakerOf(pw, 'flaky')).state, 'closed');
      assert.equal(metric(await metrics(pw), 'portway_circuit_state', 'cluster="flaky"'), 0);
      assert.equal(await exchange(pw.port('cb'), 'still'), 'still');
    } finally {
      await pw.stop();
      await up?.close();
    }
  });

  test('circuit breaker max_connections: a connection beyond it is refused with PW_ERR_OVERFLOW', async () => {
    const echo = await echoServer();
    const pw = await startPortway(`
listeners:
  - name: limited
    address: 127.0.0.1:0
    protocol: tcp
    filters:
      - { type: circuit_breaker, max_connections: 1 }
    routes: [{ cluster: echo }]
clusters:
  - { name: echo, endpoints: ["${echo.address}"] }
`);
    try {
      // The first connection is established and kept open.
      const first = connect({ port: pw.port('limited'), host: '127.0.0.1' });
      first.on('error', () => {});
      const firstEcho = new Promise<string>((resolve) => first.once('data', (c: Buffer) => resolve(c.toString())));
      first.write('one');
      assert.equal(await firstEcho, 'one');

      assert.equal(await exchange(pw.port('limited'), 'two'), '');
      const m = await metrics(pw);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_OVERFLOW",listener="limited"'), 1);
      assert.equal(metric(m, 'portway_circuit_rejected_total', 'cluster="echo",reason="max_connections"'), 1);
      const cb = await breakerOf(pw, 'echo');
      assert.equal(cb.state, 'closed', 'a limit does not open the breaker');
      assert.equal(cb.limits.max_connections, 1);

      // Once the first connection is gone there is room again.
      first.destroy();
      await waitFor(async () => {
        const body = (await http('GET', `${pw.admin}/clusters`)).json();
        return body.clusters.find((c: { name: string }) => c.name === 'echo').cx_active === 0;
      }, 5000, 'the upstream connection to close');
      assert.equal(await exchange(pw.port('limited'), 'three'), 'three');
    } finally {
      await pw.stop();
      await echo.close();
    }
  });

  test('retry inside a circuit breaker: each try counts, and an open breaker ends the retries', async () => {
    const hold = await deadPort();
    const port = hold.port;
    const pw = await startPortway(`
listeners:
  - name: both
    address: 127.0.0.1:0
    protocol: tcp
    filters:
      - { type: retry, max_retries: 5, backoff: { base: 1ms, max: 2ms } }
      - { type: circuit_breaker, consecutive_failures: 2, open_duration: 10s }
    routes: [{ cluster: down }]
clusters:
  - { name: down, endpoints: ["127.0.0.1:${port}"] }
`);
    await hold.release();
    try {
      assert.equal(await exchange(pw.port('both'), 'x'), '');
      const m = await metrics(pw);
      // Two tries fail and open the breaker; the third try is refused by it and is not retried.
      assert.equal(metric(m, 'portway_upstream_cx_connect_fail_total', `cluster="down",endpoint="127.0.0.1:${port}"`), 2);
      assert.equal(metric(m, 'portway_retry_total', 'filter="retry",listener="both"'), 2);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_CIRCUIT_OPEN",listener="both"'), 1);
      assert.equal((await breakerOf(pw, 'down')).state, 'open');
    } finally {
      await pw.stop();
    }
  });
});
