import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Writable } from 'node:stream';
import { startPortway, type InProcess } from '../helpers/portway';
import { echoServer, roundTrip, http, type TestServer } from '../helpers/net';
import { redact } from '../../src/admin/server';
import { builtins } from '../../src/builtins';
import { loadConfigText } from '../../src/config/load';
import { createLogger } from '../../src/logger';
import { Proxy } from '../../src/proxy';

describe('admin API', () => {
  let echo: TestServer;
  let pw: InProcess;
  before(async () => {
    echo = await echoServer();
    pw = await startPortway(`
listeners:
  - name: e
    address: 127.0.0.1:0
    protocol: tcp
    filters: [{ type: access_log }, { type: router }]
    routes: [{ cluster: e }]
clusters:
  - { name: e, endpoints: ["${echo.address}"] }
`);
  });
  after(async () => {
    await pw.stop();
    await echo.close();
  });

  test('GET /ready and /healthz', async () => {
    const r = await http('GET', `${pw.admin}/ready`);
    assert.equal(r.status, 200);
    assert.equal(r.json().status, 'ready');
    assert.equal((await http('GET', `${pw.admin}/healthz`)).status, 200);
  });

  test('GET /metrics is Prometheus text with listener, cluster and process metrics', async () => {
    await roundTrip(pw.port('e'), 'x');
    const r = await http('GET', `${pw.admin}/metrics`);
    assert.equal(r.status, 200);
    for (const name of ['portway_downstream_cx_total', 'portway_upstream_cx_total', 'portway_cluster_endpoints_healthy', 'portway_config_generation', 'process_resident_memory_bytes']) {
      assert.match(r.body, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
    assert.match(r.body, /^portway_downstream_cx_total\{listener="e"\} [1-9]/m);
    // The event-loop delay of the current window: the loop has run, so the monitor has samples (a number, never NaN).
    for (const q of ['p50', 'p99', 'max', 'mean']) assert.match(r.body, new RegExp(`^nodejs_eventloop_lag_${q}_seconds \\d+(\\.\\d+)?(e-?\\d+)?$`, 'm'), q);
  });

  test('GET /clusters shows endpoints with health and counters', async () => {
    const c = (await http('GET', `${pw.admin}/clusters`)).json();
    const ep = c.clusters[0].endpoints[0];
    assert.equal(ep.address, echo.address);
    assert.equal(ep.health, 'healthy');
    assert.ok(ep.cx_total >= 1);
  });

  test('GET /config returns the effective config with defaults', async () => {
    const c = (await http('GET', `${pw.admin}/config`)).json();
    assert.equal(c.generation, 1);
    assert.equal(c.config.listeners[0].name, 'e');
  });

  test('secrets are redacted in /config', () => {
    const out = redact({ a: { password: 'hunter2', user: 'bob', nested: [{ api_key: 'k', token: 'abc' }] }, secret: 3 }) as any;
    assert.deepEqual(out, { a: { password: '[redacted]', user: 'bob', nested: [{ api_key: '[redacted]', token: '[redacted]' }] }, secret: '[redacted]' });
  });

  test('GET|POST /logging changes the level of loggers made earlier too', async () => {
    assert.equal((await http('GET', `${pw.admin}/logging`)).json().level, 'silent');
    assert.equal((await http('POST', `${pw.admin}/logging?level=debug`)).json().level, 'debug');
    assert.equal((await http('GET', `${pw.admin}/logging`)).json().level, 'debug');
    assert.equal((await http('POST', `${pw.admin}/logging`, JSON.stringify({ level: 'nope' }))).status, 400);
    assert.equal((await http('POST', `${pw.admin}/logging`, JSON.stringify({ level: 'silent' }))).status, 200);
  });

  test('unknown path 404, wrong method 405', async () => {
    assert.equal((await http('GET', `${pw.admin}/nope`)).status, 404);
    assert.equal((await http('DELETE', `${pw.admin}/metrics`)).status, 405);
  });

  test('the access log writes one structured line per connection, and a level change reaches listener loggers', async () => {
    const lines: any[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
        cb();
      },
    });
    const log = createLogger('warn', sink as unknown as pino.DestinationStream);
    const cfg = loadConfigText(
      `admin: { address: 127.0.0.1:0 }\nlisteners:\n  - { name: logged, address: 127.0.0.1:0, protocol: tcp, filters: [{ type: access_log }], routes: [{ cluster: e }] }\nclusters:\n  - { name: e, endpoints: ["${echo.address}"] }\n`,
      builtins().registries,
    );
    const proxy = await Proxy.start(cfg, log);
    try {
      await roundTrip(proxy.listenerPort('logged')!, 'quiet');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(lines.filter((l) => l.log === 'access').length, 0, 'info access lines are below warn');
      await http('POST', `http://${proxy.adminAddress()}/logging?level=info`);
      await roundTrip(proxy.listenerPort('logged')!, 'hello');
      await new Promise((r) => setTimeout(r, 50));
      const access = lines.filter((l) => l.log === 'access');
      assert.equal(access.length, 1);
      assert.equal(access[0].listener, 'logged');
      assert.equal(access[0].upstream, echo.address);
      assert.equal(access[0].bytes_in, 5);
      assert.equal(access[0].bytes_out, 5);
      assert.equal(typeof access[0].duration_ms, 'number');
    } finally {
      await proxy.shutdown(100);
    }
  });
});
