import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { startPortway, type InProcess } from '../helpers/portway';
import { echoServer, tcpServer, roundTrip, dial, untilClosed, sha256, randomBytes, http, waitFor, freePort, type TestServer } from '../helpers/net';

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('L4 TCP proxy', () => {
  let echo: TestServer;
  let pw: InProcess;

  before(async () => {
    echo = await echoServer();
    pw = await startPortway(`
listeners:
  - name: echo
    address: 127.0.0.1:0
    protocol: tcp
    routes: [{ cluster: echo }]
clusters:
  - name: echo
    endpoints: ["${echo.address}"]
`);
  });
  after(async () => {
    await pw.stop();
    await echo.close();
  });

  test('32 MiB of random bytes come back intact', async () => {
    const data = randomBytes(32 * 1024 * 1024);
    const back = await roundTrip(pw.port('echo'), data);
    assert.equal(back.length, data.length);
    assert.equal(sha256(back), sha256(data));
  });

  test('a large download from the upstream arrives intact', async () => {
    const blob = randomBytes(48 * 1024 * 1024);
    const source = await tcpServer((s) => s.end(blob));
    const p = await startPortway(`
listeners:
  - { name: dl, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: src }] }
clusters:
  - { name: src, endpoints: ["${source.address}"] }
`);
    try {
      const s = await dial(p.port('dl'));
      const r = await untilClosed(s);
      assert.equal(r.error, null);
      assert.equal(sha256(r.data), sha256(blob));
    } finally {
      await p.stop();
      await source.close();
    }
  });

  test('half-close: the client FIN reaches the upstream, which can still answer', async () => {
    // The upstream answers only after it sees the end of the request.
    const upstream = await tcpServer(
      (s) => {
        const chunks: Buffer[] = [];
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('end', () => s.end(`got ${Buffer.concat(chunks).length} bytes then FIN`));
      },
      { allowHalfOpen: true },
    );
    const p = await startPortway(`
listeners:
  - { name: hc, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: up }] }
clusters:
  - { name: up, endpoints: ["${upstream.address}"] }
`);
    try {
      const back = await roundTrip(p.port('hc'), Buffer.alloc(100_000, 7));
      assert.equal(back.toString(), 'got 100000 bytes then FIN');
    } finally {
      await p.stop();
      await upstream.close();
    }
  });

  test('300 concurrent connections each get their own bytes back', async () => {
    const port = pw.port('echo');
    const results = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const data = randomBytes(16 * 1024 + i);
        const back = await roundTrip(port, data);
        return sha256(back) === sha256(data);
      }),
    );
    assert.equal(results.filter(Boolean).length, 300);
  });

  test('backpressure: a slow upstream makes the proxy stop reading from the client', async () => {
    const stalled: Socket[] = [];
    const slow = await tcpServer((s) => {
      s.pause(); // never reads
      stalled.push(s);
    });
    const p = await startPortway(`
listeners:
  - { name: bp, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: slow }] }
clusters:
  - { name: slow, endpoints: ["${slow.address}"] }
`);
    try {
      const s = await dial(p.port('bp'));
      s.on('error', () => {});
      const chunk = Buffer.alloc(1024 * 1024);
      const limit = 256 * 1024 * 1024;
      let written = 0;
      let blocked = false;
      // Write, waiting for 'drain' whenever asked. Kernel buffers absorb a few MiB; after that a
      // proxy with backpressure stops reading and 'drain' never comes. A proxy without it would
      // keep pulling the client's bytes into its own memory all the way to the limit.
      while (written < limit) {
        written += chunk.length;
        if (!s.write(chunk)) {
          const drained = await Promise.race([new Promise<boolean>((r) => s.once('drain', () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), 500))]);
          if (!drained) {
            blocked = true;
            break;
          }
        }
      }
      assert.ok(blocked, 'client writes stay blocked while the upstream reads nothing');
      assert.ok(written < 64 * 1024 * 1024, `backpressure reached the client after ${written} bytes`);
      // Now let the upstream read: everything flows.
      const got = new Promise<number>((resolve) => {
        let n = 0;
        stalled[0]!.on('data', (c: Buffer) => {
          n += c.length;
          if (n >= written) resolve(n);
        });
      });
      stalled[0]!.resume();
      assert.equal(await got, written);
      s.destroy();
    } finally {
      await p.stop();
      await slow.close();
    }
  });

  test('failover: a refused endpoint is skipped and ejected; every connection succeeds', async () => {
    const dead = await freePort();
    const p = await startPortway(`
listeners:
  - { name: fo, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: mixed }] }
clusters:
  - name: mixed
    endpoints: ["127.0.0.1:${dead}", "${echo.address}"]
    health_check: { passive: { consecutive_failures: 1, ejection_time: 1m } }
`);
    try {
      for (let i = 0; i < 6; i++) {
        const back = await roundTrip(p.port('fo'), `ping ${i}`);
        assert.equal(back.toString(), `ping ${i}`);
      }
      const clusters = (await http('GET', `${p.admin}/clusters`)).json();
      const eps = clusters.clusters[0].endpoints;
      const deadEp = eps.find((e: any) => e.address === `127.0.0.1:${dead}`);
      assert.equal(deadEp.health, 'ejected');
      assert.equal(deadEp.cx_connect_fail, 1, 'ejected after one failure, then skipped');
    } finally {
      await p.stop();
    }
  });

  test('connect timeout: an endpoint that never completes the handshake is abandoned for another', async (t) => {
    // A listening socket whose accept queue is full and never accepted: the kernel drops further SYNs.
    const py = spawn('python3', ['-c', `
import socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
print(s.getsockname()[1], flush=True)
held = []
for _ in range(8):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(('127.0.0.1', s.getsockname()[1]))
    except BlockingIOError: pass
    held.append(c)
time.sleep(60)
`]);
    t.after(() => py.kill('SIGKILL'));
    const port = await new Promise<number>((resolve, reject) => {
      py.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      py.once('error', (e) => reject(new Error(`python3 is needed for this test (Debian package python3): ${e.message}`)));
    });
    await new Promise((r) => setTimeout(r, 300));
    const p = await startPortway(`
listeners:
  - { name: ct, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: c }] }
clusters:
  - name: c
    lb: round_robin
    connect_timeout: 300ms
    endpoints: ["127.0.0.1:${port}", "${echo.address}"]
`);
    try {
      for (let i = 0; i < 3; i++) assert.equal((await roundTrip(p.port('ct'), `x${i}`)).toString(), `x${i}`);
      const m = (await http('GET', `${p.admin}/metrics`)).body;
      assert.ok(metric(m, 'portway_upstream_cx_connect_fail_total', `cluster="c",endpoint="127.0.0.1:${port}"`) >= 1);
    } finally {
      await p.stop();
    }
  });

  test('every endpoint refusing: the client is closed (not left hanging) and it is counted', async () => {
    const dead1 = await freePort();
    const dead2 = await freePort();
    const p = await startPortway(`
listeners:
  - { name: down, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: down }] }
clusters:
  - { name: down, endpoints: ["127.0.0.1:${dead1}", "127.0.0.1:${dead2}"] }
`);
    try {
      for (let i = 0; i < 3; i++) {
        const s = await dial(p.port('down'));
        const r = await untilClosed(s);
        assert.equal(r.data.length, 0);
      }
      const m = (await http('GET', `${p.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_UPSTREAM_CONNECT",listener="down"'), 3);
    } finally {
      await p.stop();
    }
  });

  test('no matching route: closed and counted as PW_ERR_NO_ROUTE', async () => {
    const p = await startPortway(`
listeners:
  - name: nr
    address: 127.0.0.1:0
    protocol: tcp
    routes: [{ match: { source_cidr: ["10.0.0.0/8"] }, cluster: e }]
clusters:
  - { name: e, endpoints: ["${echo.address}"] }
`);
    try {
      const r = await untilClosed(await dial(p.port('nr')));
      assert.equal(r.data.length, 0);
      const m = (await http('GET', `${p.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_NO_ROUTE",listener="nr"'), 1);
    } finally {
      await p.stop();
    }
  });

  test('idle timeout closes a silent connection; traffic keeps it open', async () => {
    const p = await startPortway(`
listeners:
  - { name: idle, address: 127.0.0.1:0, protocol: tcp, idle_timeout: 400ms, routes: [{ cluster: e }] }
clusters:
  - { name: e, endpoints: ["${echo.address}"] }
`);
    try {
      const s = await dial(p.port('idle'));
      const closed = untilClosed(s);
      // Talk for a while at intervals shorter than the idle timeout.
      for (let i = 0; i < 5; i++) {
        s.write('tick');
        await new Promise((r) => setTimeout(r, 150));
      }
      assert.equal(s.destroyed, false, 'active connection stays open');
      const r = await closed;
      assert.equal(r.data.toString(), 'tick'.repeat(5));
      const m = (await http('GET', `${p.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_IDLE_TIMEOUT",listener="idle"'), 1);
    } finally {
      await p.stop();
    }
  });

  test('cluster connection limit: the connection over the limit is refused and counted', async () => {
    const p = await startPortway(`
listeners:
  - { name: lim, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: e }] }
clusters:
  - { name: e, endpoints: ["${echo.address}"], limits: { max_connections: 1 } }
`);
    try {
      const first = await dial(p.port('lim'));
      first.write('a');
      await new Promise((r) => first.once('data', r));
      const second = await untilClosed(await dial(p.port('lim')));
      assert.equal(second.data.length, 0);
      first.write('b');
      const more = await new Promise<Buffer>((r) => first.once('data', r));
      assert.equal(more.toString(), 'b', 'the first connection is unaffected');
      first.destroy();
      const m = (await http('GET', `${p.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_cluster_cx_overflow_total', 'cluster="e"'), 1);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_OVERFLOW",listener="lim"'), 1);
    } finally {
      await p.stop();
    }
  });

  test('listener max_connections: connections over the limit are closed and counted', async () => {
    const p = await startPortway(`
listeners:
  - { name: mx, address: 127.0.0.1:0, protocol: tcp, max_connections: 2, routes: [{ cluster: e }] }
clusters:
  - { name: e, endpoints: ["${echo.address}"] }
`);
    try {
      const a = await dial(p.port('mx'));
      const b = await dial(p.port('mx'));
      a.write('a');
      b.write('b');
      await Promise.all([new Promise((r) => a.once('data', r)), new Promise((r) => b.once('data', r))]);
      const third = await untilClosed(await dial(p.port('mx')));
      assert.equal(third.data.length, 0);
      a.destroy();
      b.destroy();
      const m = (await http('GET', `${p.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_OVERFLOW",listener="mx"'), 1);
      await waitFor(async () => metric((await http('GET', `${p.admin}/metrics`)).body, 'portway_downstream_cx_active', 'listener="mx"') === 0, 3000, 'slots freed');
      assert.equal((await roundTrip(p.port('mx'), 'again')).toString(), 'again');
    } finally {
      await p.stop();
    }
  });

  test('a client that resets mid-transfer is an ordinary abort: the upstream is closed, nothing counted as internal', async () => {
    const upstreamClosed: Promise<void>[] = [];
    const sink = await tcpServer((s) => {
      upstreamClosed.push(new Promise((r) => s.on('close', () => r())));
      s.resume();
    });
    const p = await startPortway(`
listeners:
  - { name: rst, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: s }] }
clusters:
  - { name: s, endpoints: ["${sink.address}"] }
`);
    try {
      const c = await dial(p.port('rst'));
      c.write(Buffer.alloc(1 << 20));
      await waitFor(() => upstreamClosed.length === 1, 3000, 'upstream connection');
      c.resetAndDestroy();
      await upstreamClosed[0];
      const m = (await http('GET', `${p.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_INTERNAL",listener="rst"'), 0);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_DOWNSTREAM_CLOSED",listener="rst"'), 1);
    } finally {
      await p.stop();
      await sink.close();
    }
  });

  test('routes can match the destination the client connected to', async () => {
    const other = await tcpServer((s) => s.end('other'));
    const p = await startPortway(`
listeners:
  - name: dst
    address: 127.0.0.1:0
    protocol: tcp
    routes:
      - { match: { attributes: { destination: { prefix: "127.0.0.1:", invert: true } } }, cluster: other }
      - { match: { attributes: { destination: { regex: "^127\\\\.0\\\\.0\\\\.1:[0-9]+$" } } }, cluster: echo }
clusters:
  - { name: echo, endpoints: ["${echo.address}"] }
  - { name: other, endpoints: ["${other.address}"] }
`);
    try {
      assert.equal((await roundTrip(p.port('dst'), 'mine')).toString(), 'mine');
    } finally {
      await p.stop();
      await other.close();
    }
  });

  test('weighted routes and balancers spread connections over real endpoints', async () => {
    const counts = new Map<string, number>();
    const servers = await Promise.all(
      ['a', 'b', 'c'].map((n) =>
        tcpServer((s) => {
          counts.set(n, (counts.get(n) ?? 0) + 1);
          s.end(n);
        }),
      ),
    );
    const p = await startPortway(`
listeners:
  - { name: w, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: ab }] }
clusters:
  - name: ab
    lb: weighted
    endpoints:
      - { address: "${servers[0]!.address}", weight: 3 }
      - { address: "${servers[1]!.address}", weight: 1 }
`);
    try {
      for (let i = 0; i < 40; i++) await roundTrip(p.port('w'), '');
      assert.equal(counts.get('a'), 30);
      assert.equal(counts.get('b'), 10);
      assert.equal(counts.get('c'), undefined);
    } finally {
      await p.stop();
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  test('bytes and connection counters are exported', async () => {
    await roundTrip(pw.port('echo'), Buffer.alloc(1000, 1));
    const m = (await http('GET', `${pw.admin}/metrics`)).body;
    assert.ok(metric(m, 'portway_downstream_cx_total', 'listener="echo"') >= 1);
    assert.ok(metric(m, 'portway_downstream_rx_bytes_total', 'listener="echo"') >= 1000);
    assert.ok(metric(m, 'portway_downstream_tx_bytes_total', 'listener="echo"') >= 1000);
    assert.ok(metric(m, 'portway_upstream_cx_total', `cluster="echo",endpoint="${echo.address}"`) >= 1);
    await waitFor(async () => metric((await http('GET', `${pw.admin}/metrics`)).body, 'portway_downstream_cx_active', 'listener="echo"') === 0, 3000, 'cx_active back to 0');
  });
});

void connect;
