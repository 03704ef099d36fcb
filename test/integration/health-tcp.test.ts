/**
 * Endpoint health on the L4 path, with real sockets: outlier detection ejects
 * an endpoint that accepts and then resets every connection; active
 * tcp checks mark a stopped endpoint unhealthy (the balancer then skips it
 * without trying) and healthy again once it listens again.
 */
import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { startPortway } from '../helpers/portway';
import { echoServer, tcpServer, dial, untilClosed, http, waitFor, type TestServer } from '../helpers/net';

/** One connection through Portway: sends `data`, half-closes, returns what came back (empty when the upstream failed). */
async function exchange(port: number, data: string): Promise<string> {
  const s = await dial(port);
  const done = untilClosed(s);
  s.end(data);
  return (await done).data.toString();
}

async function endpointsOf(admin: string): Promise<any[]> {
  return (await http('GET', `${admin}/clusters`)).json().clusters[0].endpoints;
}

function metric(text: string, name: string, labels: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : null;
}

/** A plain echo server on a given port (to bring an endpoint back where it was). */
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

describe('endpoint health (tcp)', () => {
  let echo: TestServer;
  before(async () => {
    echo = await echoServer();
  });
  after(async () => {
    await echo.close();
  });

  test('outlier detection: an endpoint resetting every connection is ejected; traffic goes to the healthy one', async () => {
    let resets = 0;
    // Reset once the request arrives: Portway's connect has then surely completed, so this is a
    // request failure, not a connect failure (a reset racing the handshake is passive health's case).
    const resetter = await tcpServer((s) => {
      resets++;
      s.once('data', () => s.resetAndDestroy());
    });
    const pw = await startPortway(`
listeners:
  - { name: l, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: c }] }
clusters:
  - name: c
    endpoints: ["${resetter.address}", "${echo.address}"]
    health_check:
      outlier: { consecutive_errors: 3, base_ejection_time: 1m, interval: 1m }
`);
    try {
      const port = pw.port('l');
      await waitFor(
        async () => {
          await exchange(port, 'x');
          return (await endpointsOf(pw.admin)).find((e) => e.address === resetter.address).health === 'ejected';
        },
        10_000,
        'the resetting endpoint ejected',
      );
      const bad = (await endpointsOf(pw.admin)).find((e) => e.address === resetter.address);
      assert.equal(bad.reason, 'consecutive_errors');
      assert.equal(bad.ejections, 1);
      assert.ok(bad.rq_error >= 3, `rq_error ${bad.rq_error}`);
      assert.equal(bad.cx_connect_fail, 0, 'connects succeeded: not a passive ejection');
      const before = resets;
      for (let i = 0; i < 10; i++) assert.equal(await exchange(port, `ping ${i}`), `ping ${i}`);
      assert.equal(resets, before, 'the ejected endpoint got no more connections');
      const m = (await http('GET', `${pw.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_upstream_ejections_total', `cluster="c",endpoint="${resetter.address}",reason="consecutive_errors"`), 1);
      assert.equal(metric(m, 'portway_upstream_health', `cluster="c",endpoint="${resetter.address}"`), 0);
      assert.equal(metric(m, 'portway_upstream_health', `cluster="c",endpoint="${echo.address}"`), 1);
    } finally {
      await pw.stop();
      await resetter.close();
    }
  });

  test('without outlier detection the resetting endpoint stays in rotation (the errors are only counted)', async () => {
    const resetter = await tcpServer((s) => s.once('data', () => s.resetAndDestroy()));
    const pw = await startPortway(`
listeners:
  - { name: l, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: c }] }
clusters:
  - { name: c, endpoints: ["${resetter.address}", "${echo.address}"] }
`);
    try {
      for (let i = 0; i < 8; i++) await exchange(pw.port('l'), 'x');
      const bad = (await endpointsOf(pw.admin)).find((e) => e.address === resetter.address);
      assert.equal(bad.health, 'healthy');
      assert.ok(bad.rq_error >= 3);
    } finally {
      await pw.stop();
      await resetter.close();
    }
  });

  test('active tcp checks: a stopped endpoint turns unhealthy and is skipped; healthy again once restarted', async () => {
    const a = await echoServer();
    const aPort = a.port;
    const pw = await startPortway(`
listeners:
  - { name: l, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: c }] }
clusters:
  - name: c
    endpoints: ["${a.address}", "${echo.address}"]
    health_check:
      active: { type: tcp, interval: 100ms, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 2 }
`);
    let back: { server: Server; close(): Promise<void> } | null = null;
    try {
      const port = pw.port('l');
      await waitFor(async () => (await endpointsOf(pw.admin)).every((e) => e.active_check?.ok_streak >= 1), 5000, 'first probes');
      await a.close();
      await waitFor(async () => (await endpointsOf(pw.admin)).find((e) => e.address === a.address).health === 'unhealthy', 5000, 'endpoint a unhealthy');
      const down = (await endpointsOf(pw.admin)).find((e) => e.address === a.address);
      assert.match(down.reason, /active health check failed: ECONNREFUSED/);
      for (let i = 0; i < 6; i++) assert.equal(await exchange(port, `p${i}`), `p${i}`);
      const after = (await endpointsOf(pw.admin)).find((e) => e.address === a.address);
      assert.equal(after.cx_connect_fail, 0, 'the balancer never tried the unhealthy endpoint');
      let m = (await http('GET', `${pw.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_upstream_health', `cluster="c",endpoint="${a.address}"`), 0);
      assert.ok((metric(m, 'portway_upstream_health_check_total', `cluster="c",endpoint="${a.address}",result="failure"`) ?? 0) >= 2);

      back = await echoOn(aPort);
      await waitFor(async () => (await endpointsOf(pw.admin)).find((e) => e.address === a.address).health === 'healthy', 5000, 'endpoint a healthy again');
      m = (await http('GET', `${pw.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_upstream_health', `cluster="c",endpoint="${a.address}"`), 1);
      // Both endpoints serve again: round robin reaches a.
      let reachedA = false;
      back.server.once('connection', () => (reachedA = true));
      for (let i = 0; i < 4; i++) assert.equal(await exchange(port, `q${i}`), `q${i}`);
      assert.ok(reachedA, 'traffic reaches the recovered endpoint');
    } finally {
      await pw.stop();
      await back?.close();
    }
  });

  test('the checker stops with the cluster: no probes after shutdown', async () => {
    let probes = 0;
    const counted = await tcpServer((s) => {
      probes++;
      s.destroy();
    });
    const pw = await startPortway(`
clusters:
  - name: c
    endpoints: ["${counted.address}"]
    health_check: { active: { type: tcp, interval: 50ms, jitter: 0 } }
`);
    await waitFor(() => probes >= 2, 5000, 'probes');
    await pw.stop();
    const n = probes;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(probes <= n + 1, `probes after stop: ${probes - n}`);
    await counted.close();
  });
});
