/**
 * Active health checks: the threshold logic with a scripted probe, jitter
 * bounds, the tcp and redis probes against real loopback sockets, and the
 * health_check config (defaults, durations, rejected values).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint } from '../../src/routing/endpoint';
import { MetricsRegistry } from '../../src/metrics';
import type { ActiveHealthConfig } from '../../src/config/types';
import { ActiveHealthChecker } from '../../src/routing/health/active';
import { HealthProbeRegistry, tcpHealthProbe, type HealthProbe } from '../../src/routing/health/probe';
import { redisHealthProbe } from '../../src/protocols/redis/health-probe';
import { builtins, builtinHealthProbes } from '../../src/builtins';
import { loadConfigText } from '../../src/config/load';
import { ConfigError } from '../../src/config/validate';
import { tcpServer, freePort } from '../helpers/net';

const cfg = (o: Partial<ActiveHealthConfig> = {}): ActiveHealthConfig => ({
  type: 'tcp',
  intervalMs: 1000,
  jitter: 0.1,
  timeoutMs: 100,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
  ...o,
});

const nullProbe: HealthProbe = { type: 'x', description: '', check: () => new Promise(() => {}) };

function ep(): Endpoint {
  return new Endpoint('c', '127.0.0.1', 1, 1, '127.0.0.1:1', new MetricsRegistry());
}

describe('active health checker', () => {
  test('unhealthy after unhealthy_threshold failures in a row, healthy after healthy_threshold successes', () => {
    const changes: [boolean, string | null][] = [];
    const e = ep();
    const c = new ActiveHealthChecker(cfg(), nullProbe, { endpoints: () => [e], changed: (_e, h, r) => changes.push([h, r]) });
    c.record(e, false, 'ECONNREFUSED');
    c.record(e, false, 'ECONNREFUSED');
    c.record(e, true, null);
    c.record(e, false, 'ECONNREFUSED');
    c.record(e, false, 'ECONNREFUSED');
    assert.equal(e.activeHealthy, true, 'a success broke the streak');
    c.record(e, false, 'timed out after 100 ms');
    assert.equal(e.activeHealthy, false);
    assert.equal(e.health(), 'unhealthy');
    assert.match(String(e.toJSON()['reason']), /active health check failed: timed out/);
    c.record(e, true, null);
    assert.equal(e.activeHealthy, false, 'one success is not enough');
    c.record(e, true, null);
    assert.equal(e.activeHealthy, true);
    assert.deepEqual(changes, [
      [false, 'timed out after 100 ms'],
      [true, null],
    ]);
  });

  test('the interval is jittered within +/- jitter', () => {
    const mk = (r: number) => new ActiveHealthChecker(cfg({ intervalMs: 1000, jitter: 0.1 }), nullProbe, { endpoints: () => [], changed: () => {} }, () => r);
    assert.equal(mk(0).nextDelay(), 900);
    assert.equal(mk(0.5).nextDelay(), 1000);
    assert.equal(mk(0.999999).nextDelay(), 1100);
    const none = new ActiveHealthChecker(cfg({ jitter: 0 }), nullProbe, { endpoints: () => [], changed: () => {} });
    assert.equal(none.nextDelay(), 1000);
  });

  test('probes every endpoint on start and never runs two probes of one endpoint at once', async () => {
    let calls = 0;
    const pending: (() => void)[] = [];
    const probe: HealthProbe = { type: 'x', description: '', check: () => (calls++, new Promise<void>((r) => pending.push(r))) };
    const eps = [ep(), ep()];
    const c = new ActiveHealthChecker(cfg({ intervalMs: 10, jitter: 0 }), probe, { endpoints: () => eps, changed: () => {} });
    c.start();
    assert.equal(calls, 2);
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(calls, 2, 'earlier probes still running');
    for (const p of pending) p();
    await new Promise((r) => setTimeout(r, 60));
    c.stop();
    assert.ok(calls > 2);
  });
});

describe('health probes', () => {
  test('registry: built-in types, duplicates refused', () => {
    const reg = builtinHealthProbes();
    const types = [...reg.specs().keys()];
    for (const t of ['redis', 'tcp']) assert.ok(types.includes(t), `built-in probe '${t}' registered`);
    assert.throws(() => new HealthProbeRegistry().register(tcpHealthProbe).register(tcpHealthProbe), /registered twice/);
  });

  test('tcp: an accepting port passes, a closed one fails', async () => {
    const srv = await tcpServer(() => {});
    try {
      await tcpHealthProbe.check({ host: '127.0.0.1', port: srv.port, address: srv.address }, 1000);
    } finally {
      await srv.close();
    }
    const dead = await freePort();
    await assert.rejects(tcpHealthProbe.check({ host: '127.0.0.1', port: dead, address: `127.0.0.1:${dead}` }, 1000), /ECONNREFUSED/);
  });

  test('redis: +PONG passes; an error reply, silence (timeout) or a close fail', async () => {
    const answer = (reply: string | null) =>
      tcpServer((s) =>
        s.once('data', () => {
          if (reply === null) return;
          if (reply === 'close') s.destroy();
          else s.write(reply);
        }),
      );
    const cases: [string | null, RegExp | null][] = [
      ['+PONG\r\n', null],
      ['-NOAUTH Authentication required.\r\n', /PING answered "-NOAUTH/],
      [null, /timed out after 150 ms/],
      ['close', /closed/],
    ];
    for (const [reply, err] of cases) {
      const srv = await answer(reply);
      try {
        const p = redisHealthProbe.check({ host: '127.0.0.1', port: srv.port, address: srv.address }, 150);
        if (err === null) await p;
        else await assert.rejects(p, err);
      } finally {
        await srv.close();
      }
    }
  });
});

describe('health_check config', () => {
  const reg = builtins().registries;
  const doc = (hc: string) => `clusters:\n  - name: c\n    endpoints: ["127.0.0.1:1", "127.0.0.1:2"]\n    health_check: ${hc}\n`;

  test('defaults and durations', () => {
    const none = loadConfigText(doc('{}'), reg).clusters[0]!;
    assert.equal(none.outlier, null);
    assert.equal(none.active, null);
    const c = loadConfigText(doc('{outlier: {}, active: {type: tcp}}'), reg).clusters[0]!;
    assert.deepEqual(c.outlier, { consecutiveErrors: 5, errorRate: null, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 300_000, maxEjectionPercent: 10 });
    assert.deepEqual(c.active, { type: 'tcp', intervalMs: 10_000, jitter: 0.1, timeoutMs: 2000, healthyThreshold: 2, unhealthyThreshold: 3 });
    const d = loadConfigText(
      doc('{outlier: {consecutive_errors: 2, error_rate: {min_requests: 5}, interval: 1s, base_ejection_time: 2s, max_ejection_time: 1m, max_ejection_percent: 50}, active: {type: redis, interval: 100ms, jitter: 0, timeout: 50, healthy_threshold: 1, unhealthy_threshold: 1}}'),
      reg,
    ).clusters[0]!;
    assert.deepEqual(d.outlier, { consecutiveErrors: 2, errorRate: { minRequests: 5, thresholdPercent: 30 }, intervalMs: 1000, baseEjectionTimeMs: 2000, maxEjectionTimeMs: 60_000, maxEjectionPercent: 50 });
    assert.deepEqual(d.active, { type: 'redis', intervalMs: 100, jitter: 0, timeoutMs: 50, healthyThreshold: 1, unhealthyThreshold: 1 });
    assert.equal(loadConfigText(doc('{active: {type: tcp, jitter: "25%"}}'), reg).clusters[0]!.active!.jitter, 0.25);
  });

  test('bad values are reported with their path', () => {
    const issues = (hc: string) => {
      try {
        loadConfigText(doc(hc), reg);
      } catch (e) {
        if (e instanceof ConfigError) return e.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
        throw e;
      }
      return '';
    };
    assert.match(issues('{outlier: {base_ejection_time: 1m, max_ejection_time: 10s}}'), /clusters\[0\]\.health_check\.outlier\.max_ejection_time: must not be shorter/);
    assert.match(issues('{outlier: {max_ejection_percent: 150}}'), /max_ejection_percent/);
    assert.match(issues('{outlier: {consecutive_errorz: 1}}'), /outlier/);
    assert.match(issues('{active: {interval: 1s}}'), /active/);
    assert.match(issues('{active: {type: tcp, interval: 0}}'), /health_check\.active\.interval: must be more than 0/);
    assert.match(issues('{active: {type: tcp, jitter: "ten"}}'), /jitter/);
  });
});
