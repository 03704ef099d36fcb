/**
 * circuit_breaker: the state machine and its window on an injected clock,
 * then the per-cluster breaker (limits, pending queue, deadline, metrics,
 * /clusters report, sharing between filters) around fake upstream calls on
 * a manual timer wheel, and config validation.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load';
import { Exchange } from '../../src/exchange';
import { ErrorCode, ProxyError, type ErrorCodeValue } from '../../src/errors';
import { MetricsRegistry } from '../../src/metrics';
import { createLogger } from '../../src/logger';
import type { AroundPolicy, Invoke, ResultHandler } from '../../src/filter';
import { raceDispatch } from '../../filters/timeout/deadline';
import { Cluster } from '../../src/routing/cluster';
import { TimerWheel } from '../../src/util/timer-wheel';
import { BreakerMachine, CLOSED, FAILURE, HALF_OPEN, NEUTRAL, OPEN, OutcomeWindow, REJECTED, SUCCESS, type BreakerSettings } from '../../filters/circuit_breaker/breaker';
import { ClusterBreaker, isUpstreamFailure, type CircuitBreakerSettings } from '../../filters/circuit_breaker/cluster-breaker';
import { resilienceOf } from '../../filters/circuit_breaker/state';
import { circuitBreakerFilter } from '../../filters/circuit_breaker';
import { reg, filterConfig as yamlConfig, buildFilter, issuesOf, hasIssue, rejectionOf as rejection } from '../helpers/filters';

const silent = createLogger('silent');

function settings(over: Partial<CircuitBreakerSettings> = {}): CircuitBreakerSettings {
  return {
    consecutiveFailures: 3,
    errorRate: 0,
    windowMs: 10_000,
    minRequests: 10,
    openDurationMs: 1000,
    maxOpenDurationMs: 1000,
    halfOpenProbes: 1,
    maxConnections: Infinity,
    maxRequests: Infinity,
    maxPendingRequests: 0,
    maxRetries: Infinity,
    ...over,
  };
}

function clockAt(t = 0) {
  const c = { now: t, fn: () => c.now };
  return c;
}

function machine(over: Partial<BreakerSettings> = {}, t = 0) {
  const clock = clockAt(t);
  const m = new BreakerMachine(settings(over), clock.fn);
  const fail = () => m.release(m.acquire(), FAILURE);
  const ok = () => m.release(m.acquire(), SUCCESS);
  return { m, clock, fail, ok };
}

const upstreamErr = (code: ErrorCodeValue = ErrorCode.UpstreamConnect) => new ProxyError(code, 'down', { source: 'upstream', retryable: true });

/** A real Cluster from config (static IP endpoints: nothing runs in the background). */
function realCluster(metrics = new MetricsRegistry(), name = 'c'): Cluster {
  const cfg = loadConfigText(yamlConfig('{ type: router }').replace('name: c,', `name: ${name},`).replace('cluster: c', `cluster: ${name}`), reg);
  return new Cluster(cfg.clusters[0]!, metrics, silent);
}

function ex(cluster: Cluster | null, idempotent = true): Exchange {
  const e = new Exchange('l1', 'redis', '10.0.0.1', 40000, 'GET');
  e.idempotent = idempotent;
  e.cluster = cluster;
  return e;
}

function breakerSetup(over: Partial<CircuitBreakerSettings> = {}) {
  const metrics = new MetricsRegistry();
  const cluster = realCluster(metrics);
  const clock = clockAt(1000);
  const wheel = new TimerWheel({ clock: clock.fn, autoTick: false });
  const s = settings(over);
  const b = new ClusterBreaker(cluster, resilienceOf(cluster), s, metrics, silent, clock.fn, wheel);
  b.use(s, 1);
  return { b, cluster, clock, wheel, metrics, s };
}

/** A call per request that settles when the test says. */
function pending<R>() {
  const calls: { resolve: (v: R) => void; reject: (e: unknown) => void }[] = [];
  const next: Invoke<R> = () =>
    new Promise<R>((resolve, reject) => {
      calls.push({ resolve, reject });
    });
  return { next, calls };
}

const fails: Invoke<string> = () => Promise.reject(upstreamErr());
const succeeds: Invoke<string> = () => Promise.resolve('+OK');

describe('BreakerMachine', () => {
  test('closed -> open after consecutive_failures in a row; a success resets the count', () => {
    const { m, fail, ok } = machine({ consecutiveFailures: 3 });
    fail();
    fail();
    ok();
    fail();
    fail();
    assert.equal(m.state, CLOSED);
    assert.equal(m.consecutive, 2);
    fail();
    assert.equal(m.state, OPEN);
    assert.equal(m.opened, 1);
  });

  test('open rejects, with the time left open', () => {
    const { m, clock, fail } = machine({ consecutiveFailures: 1, openDurationMs: 1000 }, 5000);
    fail();
    assert.equal(m.acquire(), REJECTED);
    clock.now = 5400;
    assert.equal(m.retryAfterMs(), 600);
    assert.equal(m.acquire(), REJECTED);
  });

  test('open -> half-open when the open duration has passed (on the next look, no timer)', () => {
    const { m, clock, fail } = machine({ consecutiveFailures: 1, openDurationMs: 1000 });
    fail();
    clock.now = 999;
    assert.equal(m.refresh(), OPEN);
    clock.now = 1000;
    assert.equal(m.refresh(), HALF_OPEN);
  });

  test('half-open admits half_open_probes requests; all succeed -> closed', () => {
    const { m, clock, fail } = machine({ consecutiveFailures: 1, halfOpenProbes: 2 });
    fail();
    clock.now = 1000;
    const a = m.acquire();
    const b = m.acquire();
    assert.ok(a >= 0 && b >= 0);
    assert.equal(m.acquire(), REJECTED, 'a third request waits for the probes');
    m.release(a, SUCCESS);
    assert.equal(m.state, HALF_OPEN);
    m.release(b, SUCCESS);
    assert.equal(m.state, CLOSED);
    assert.equal(m.consecutive, 0);
  });

  test('a failed probe opens again, for twice as long, up to max_open_duration; closing resets it', () => {
    const { m, clock, fail } = machine({ consecutiveFailures: 1, openDurationMs: 100, maxOpenDurationMs: 350 });
    fail();
    assert.equal(m.openMs, 100);
    const expected = [200, 350, 350];
    for (const want of expected) {
      clock.now = m.openUntil;
      m.release(m.acquire(), FAILURE);
      assert.equal(m.state, OPEN);
      assert.equal(m.openMs, want);
      assert.equal(m.openUntil, clock.now + want);
    }
    clock.now = m.openUntil;
    m.release(m.acquire(), SUCCESS);
    assert.equal(m.state, CLOSED);
    fail();
    assert.equal(m.openMs, 100, 'a new opening after closing starts from open_duration');
  });

  test('fixed open duration by default (max_open_duration = open_duration)', () => {
    const { m, clock, fail } = machine({ consecutiveFailures: 1, openDurationMs: 100, maxOpenDurationMs: 100 });
    fail();
    clock.now = m.openUntil;
    m.release(m.acquire(), FAILURE);
    assert.equal(m.openMs, 100);
  });

  test('a neutral probe gives its place back', () => {
    const { m, clock, fail } = machine({ consecutiveFailures: 1, halfOpenProbes: 1 });
    fail();
    clock.now = 1000;
    const a = m.acquire();
    assert.equal(m.acquire(), REJECTED);
    m.release(a, NEUTRAL);
    assert.equal(m.state, HALF_OPEN);
    const b = m.acquire();
    assert.ok(b >= 0);
    m.release(b, SUCCESS);
    assert.equal(m.state, CLOSED);
  });

  test('neutral outcomes do not count while closed', () => {
    const { m } = machine({ consecutiveFailures: 2 });
    for (let i = 0; i < 10; i++) m.release(m.acquire(), NEUTRAL);
    assert.equal(m.state, CLOSED);
    assert.equal(m.consecutive, 0);
  });

  test('a straggler from an earlier state changes nothing', () => {
    const { m, clock, fail } = machine({ consecutiveFailures: 1, halfOpenProbes: 1 });
    const slow = m.acquire(); // admitted while closed
    fail(); // opens
    clock.now = 1000;
    const probe = m.acquire(); // half-open
    m.release(slow, FAILURE);
    assert.equal(m.state, HALF_OPEN, 'the old failure does not reopen');
    m.release(probe, SUCCESS);
    assert.equal(m.state, CLOSED);
    m.release(slow, SUCCESS);
    m.release(probe, FAILURE);
    assert.equal(m.state, CLOSED, 'nor do late outcomes of the probe epoch');
  });

  test('error rate: opens once the window holds min_requests and the failure share reaches error_rate', () => {
    const { m, fail, ok } = machine({ consecutiveFailures: 0, errorRate: 0.5, minRequests: 10 });
    for (let i = 0; i < 4; i++) {
      ok();
      fail();
    }
    assert.equal(m.state, CLOSED, '8 requests: below min_requests');
    ok();
    assert.equal(m.state, CLOSED);
    fail();
    assert.equal(m.state, OPEN, '5 failures of 10');
  });

  test('error rate: below the rate stays closed', () => {
    const { m, fail, ok } = machine({ consecutiveFailures: 0, errorRate: 0.5, minRequests: 10 });
    for (let i = 0; i < 30; i++) {
      ok();
      ok();
      fail();
    }
    assert.equal(m.state, CLOSED);
  });

  test('error rate: failures older than the window no longer count', () => {
    const { m, clock, fail, ok } = machine({ consecutiveFailures: 0, errorRate: 0.5, minRequests: 4, windowMs: 1000 });
    fail();
    fail();
    fail();
    clock.now = 1500;
    ok();
    ok();
    ok();
    assert.equal(m.windowCounts().failures, 0);
    fail();
    assert.equal(m.state, CLOSED, '1 failure of 4 within the window');
  });

  test('new settings keep the state', () => {
    const { m, fail } = machine({ consecutiveFailures: 3 });
    fail();
    fail();
    m.setSettings(settings({ consecutiveFailures: 3, openDurationMs: 50, maxOpenDurationMs: 50 }));
    fail();
    assert.equal(m.state, OPEN);
    assert.equal(m.openMs, 50);
  });
});

describe('OutcomeWindow', () => {
  test('slides in tenths of the window', () => {
    const w = new OutcomeWindow(1000);
    w.record(0, true);
    w.record(50, false);
    w.record(450, true);
    assert.equal(w.total(999), 3);
    assert.equal(w.failures(999), 2);
    assert.equal(w.total(1050), 1, 'the first bucket [0, 100) has left the window');
    assert.equal(w.failures(1050), 1);
    assert.equal(w.total(1500), 0);
    w.record(1500, false);
    assert.equal(w.total(1500), 1);
    w.reset();
    assert.equal(w.total(1500), 0);
  });
});

describe('ClusterBreaker', () => {
  test('consecutive upstream failures open it; then it fails fast with PW_ERR_CIRCUIT_OPEN', async () => {
    const { b, clock, metrics } = breakerSetup({ consecutiveFailures: 3, openDurationMs: 2000, maxOpenDurationMs: 2000 });
    for (let i = 0; i < 3; i++) assert.equal((await rejection(b.run(ex(null), fails))).code, ErrorCode.UpstreamConnect);
    let called = 0;
    clock.now += 500;
    const e = await rejection(
      b.run(ex(null), () => {
        called++;
        return Promise.resolve('x');
      }),
    );
    assert.equal(e.code, ErrorCode.CircuitOpen);
    assert.equal(e.retryAfterMs, 1500);
    assert.equal(called, 0);
    const text = metrics.render();
    assert.match(text, /portway_circuit_state\{cluster="c"\} 1/);
    assert.match(text, /portway_circuit_rejected_total\{cluster="c",reason="open"\} 1/);
    assert.match(text, /portway_circuit_opened_total\{cluster="c"\} 1/);
  });

  test('half-open after open_duration, closed after a successful probe; shown in the report', async () => {
    const { b, cluster, clock, metrics } = breakerSetup({ consecutiveFailures: 1, openDurationMs: 1000, maxOpenDurationMs: 1000 });
    await rejection(b.run(ex(null), fails));
    assert.equal((cluster.toJSON()['circuit_breaker'] as { state: string }).state, 'open');
    clock.now += 1000;
    assert.equal((cluster.toJSON()['circuit_breaker'] as { state: string }).state, 'half-open');
    assert.match(metrics.render(), /portway_circuit_state\{cluster="c"\} 2/);
    assert.equal(await b.run(ex(null), succeeds), '+OK');
    const r = cluster.toJSON()['circuit_breaker'] as Record<string, unknown>;
    assert.equal(r['state'], 'closed');
    assert.equal(r['opened'], 1);
    assert.match(metrics.render(), /portway_circuit_state\{cluster="c"\} 0/);
  });

  test('a resolved reply is a success (a Redis -ERR is not a transport failure)', async () => {
    const { b } = breakerSetup({ consecutiveFailures: 2 });
    await rejection(b.run(ex(null), fails));
    await b.run(ex(null), () => Promise.resolve(Buffer.from('-ERR wrong type\r\n')));
    await rejection(b.run(ex(null), fails));
    assert.equal(b.machine.state, CLOSED);
  });

  test('errors not from the upstream are neutral', async () => {
    const { b } = breakerSetup({ consecutiveFailures: 1 });
    for (const e of [
      new ProxyError(ErrorCode.Overflow, 'pool full', { source: 'internal' }),
      new ProxyError(ErrorCode.DownstreamClosed, 'gone', { source: 'downstream' }),
      new ProxyError(ErrorCode.CircuitOpen, 'inner breaker', { source: 'upstream' }),
      new Error('bug'),
    ]) {
      await b.run(ex(null), () => Promise.reject(e)).catch(() => {});
    }
    assert.equal(b.machine.state, CLOSED);
    assert.equal(isUpstreamFailure(upstreamErr(ErrorCode.UpstreamReset)), true);
    assert.equal(isUpstreamFailure(new ProxyError(ErrorCode.Timeout, 't', { source: 'upstream' })), true);
  });

  test('a call unanswered at the exchange deadline fails with PW_ERR_TIMEOUT and counts as a failure', async () => {
    const { b, clock, wheel } = breakerSetup({ consecutiveFailures: 1 });
    const p = pending<string>();
    const e = ex(null);
    e.deadline = clock.now + 200;
    const out = b.run(e, p.next);
    clock.now += 200;
    wheel.tick();
    const err = await rejection(out);
    assert.equal(err.code, ErrorCode.Timeout);
    assert.equal(b.machine.state, OPEN);
    assert.equal(b.active, 0, 'the slot is freed at the deadline');
    p.calls[0]!.resolve('late'); // ignored
  });

  test('under an outer race with the same deadline the breaker takes no timer of its own, and still counts the failure when it fires', () => {
    const { b, clock, wheel } = breakerSetup({ consecutiveFailures: 1 });
    const e = ex(null);
    e.deadline = clock.now + 200;
    let outcome = '';
    let inner: ResultHandler<string> | null = null;
    const expired = () => new ProxyError(ErrorCode.Timeout, 'outer deadline', { source: 'upstream' });
    raceDispatch<string>(
      (x, h) => b.dispatch(x, (_x, h2) => (inner = h2), h),
      e,
      { onResult: (_x, v) => (outcome = `ok ${v}`), onFailure: (_x, err) => (outcome = `${err.code} ${err.message}`) },
      e.deadline,
      expired,
      wheel,
    );
    assert.equal(wheel.pending, 1, 'one wheel entry for the request');
    assert.equal(e.deadlineWatch, null, 'the watch is only shown while the inner call starts');
    clock.now += 200;
    wheel.tick();
    assert.equal(outcome, `${ErrorCode.Timeout} outer deadline`, "the outer race's failure reaches the client");
    assert.equal(b.machine.state, OPEN, 'the breaker counted the failure');
    assert.equal(b.active, 0);
    inner!.onResult(e, 'late'); // ignored
    assert.equal(outcome, `${ErrorCode.Timeout} outer deadline`);
    // A reply in time: nothing left on the wheel, the breaker counts a success.
    const { b: b2, clock: c2, wheel: w2 } = breakerSetup({ consecutiveFailures: 1 });
    const e2 = ex(null);
    e2.deadline = c2.now + 200;
    raceDispatch<string>((x, h) => b2.dispatch(x, (x2, h2) => h2.onResult(x2, '+OK'), h), e2, { onResult: (_x, v) => (outcome = v), onFailure: () => {} }, e2.deadline, expired, w2);
    assert.equal(outcome, '+OK');
    assert.equal(w2.pending, 0);
    assert.equal(b2.active, 0);
    assert.equal(b2.machine.state, CLOSED);
  });

  test('max_connections: refused with PW_ERR_OVERFLOW while the cluster is at the limit', async () => {
    const { b, cluster, metrics } = breakerSetup({ maxConnections: 2 });
    cluster.cxActive = 2;
    const e = await rejection(b.run(ex(null), succeeds));
    assert.equal(e.code, ErrorCode.Overflow);
    assert.match(e.message, /max_connections 2/);
    cluster.cxActive = 1;
    assert.equal(await b.run(ex(null), succeeds), '+OK');
    assert.match(metrics.render(), /portway_circuit_rejected_total\{cluster="c",reason="max_connections"\} 1/);
    assert.equal(b.machine.state, CLOSED, 'a limit is not a failure');
  });

  test('max_requests without a queue: refused at once', async () => {
    const { b, metrics } = breakerSetup({ maxRequests: 2 });
    const p = pending<string>();
    const a = b.run(ex(null), p.next);
    const c = b.run(ex(null), p.next);
    const e = await rejection(b.run(ex(null), p.next));
    assert.equal(e.code, ErrorCode.Overflow);
    assert.match(metrics.render(), /portway_circuit_rejected_total\{cluster="c",reason="max_requests"\} 1/);
    p.calls[0]!.resolve('1');
    assert.equal(await a, '1');
    assert.equal(b.active, 1);
    p.calls[1]!.resolve('2');
    await c;
  });

  test('max_pending_requests: waiters start in order as places free; beyond the queue: refused', async () => {
    const { b, metrics } = breakerSetup({ maxRequests: 1, maxPendingRequests: 2 });
    const p = pending<string>();
    const first = b.run(ex(null), p.next);
    const w1 = b.run(ex(null), p.next);
    const w2 = b.run(ex(null), p.next);
    const e = await rejection(b.run(ex(null), p.next));
    assert.equal(e.code, ErrorCode.Overflow);
    assert.match(metrics.render(), /portway_circuit_rejected_total\{cluster="c",reason="max_pending_requests"\} 1/);
    assert.equal(p.calls.length, 1);
    assert.equal((b.report() as { rq_pending: number }).rq_pending, 2);
    p.calls[0]!.resolve('a');
    assert.equal(await first, 'a');
    assert.equal(p.calls.length, 2, 'the first waiter started');
    p.calls[1]!.resolve('b');
    assert.equal(await w1, 'b');
    p.calls[2]!.resolve('c');
    assert.equal(await w2, 'c');
    assert.equal(b.active, 0);
  });

  test('a waiter whose deadline passes leaves the queue with PW_ERR_TIMEOUT', async () => {
    const { b, clock, wheel } = breakerSetup({ maxRequests: 1, maxPendingRequests: 5 });
    const p = pending<string>();
    const first = b.run(ex(null), p.next);
    const e = ex(null);
    e.deadline = clock.now + 100;
    const waiter = b.run(e, p.next);
    clock.now += 100;
    wheel.tick();
    assert.equal((await rejection(waiter)).code, ErrorCode.Timeout);
    assert.equal((b.report() as { rq_pending: number }).rq_pending, 0);
    p.calls[0]!.resolve('a');
    await first;
    assert.equal(p.calls.length, 1, 'the expired waiter never started');
  });

  test('a waiter admitted after the breaker opened gets PW_ERR_CIRCUIT_OPEN', async () => {
    const { b } = breakerSetup({ maxRequests: 1, maxPendingRequests: 1, consecutiveFailures: 1 });
    const p = pending<string>();
    const first = b.run(ex(null), p.next);
    const waiter = b.run(ex(null), p.next);
    p.calls[0]!.reject(upstreamErr());
    await rejection(first);
    assert.equal((await rejection(waiter)).code, ErrorCode.CircuitOpen);
    assert.equal(p.calls.length, 1);
  });

  test('half-open with its probe taken: refused without retryAfterMs', async () => {
    const { b, clock } = breakerSetup({ consecutiveFailures: 1, openDurationMs: 100, maxOpenDurationMs: 100 });
    await rejection(b.run(ex(null), fails));
    clock.now += 100;
    const p = pending<string>();
    const probe = b.run(ex(null), p.next);
    const e = await rejection(b.run(ex(null), succeeds));
    assert.equal(e.code, ErrorCode.CircuitOpen);
    assert.equal(e.retryAfterMs, undefined);
    p.calls[0]!.resolve('ok');
    await probe;
    assert.equal(b.machine.state, CLOSED);
  });

  test('use(): newer settings win, older ones do not come back', () => {
    const { b } = breakerSetup();
    const shared = resilienceOf(b.cluster);
    b.use(settings({ maxRetries: 5 }), 10);
    assert.equal(shared.maxRetries, 5);
    b.use(settings({ maxRetries: 1 }), 9);
    assert.equal(shared.maxRetries, 5);
    b.use(settings({ maxRetries: 2 }), 11);
    assert.equal(shared.maxRetries, 2);
  });
});

describe('circuit_breaker filter', () => {
  function build(filterYaml: string, clusters: Map<string, Cluster>, metrics: MetricsRegistry, listener = 'l1'): AroundPolicy {
    return buildFilter<AroundPolicy>(circuitBreakerFilter, yamlConfig(filterYaml).replace('name: l1', `name: ${listener}`), { clusters, metrics });
  }

  test('one breaker per cluster, shared by the filters of every listener naming it', async () => {
    const metrics = new MetricsRegistry();
    const c = realCluster(metrics);
    const clusters = new Map([['c', c]]);
    const f1 = build('{ type: circuit_breaker, consecutive_failures: 2 }', clusters, metrics, 'l1');
    const f2 = build('{ type: circuit_breaker, consecutive_failures: 2 }', clusters, metrics, 'l2');
    assert.equal((c.toJSON()['circuit_breaker'] as { state: string }).state, 'closed', 'shown before the first request');
    await rejection(f1.wrap(fails)(ex(c)));
    await rejection(f2.wrap(fails)(ex(c)));
    assert.equal((await rejection(f1.wrap(succeeds)(ex(c)))).code, ErrorCode.CircuitOpen);
    assert.equal((await rejection(f2.wrap(succeeds)(ex(c)))).code, ErrorCode.CircuitOpen);
  });

  test('clusters: only the named ones are guarded', async () => {
    const metrics = new MetricsRegistry();
    const c = realCluster(metrics);
    const d = realCluster(metrics, 'd');
    const f = build('{ type: circuit_breaker, clusters: [c], consecutive_failures: 1 }', new Map([['c', c], ['d', d]]), metrics);
    for (let i = 0; i < 3; i++) await rejection(f.wrap(fails)(ex(d)));
    assert.equal(await f.wrap(succeeds)(ex(d)), '+OK');
    assert.equal(resilienceOf(d).breaker, null);
    await rejection(f.wrap(fails)(ex(c)));
    assert.equal((await rejection(f.wrap(succeeds)(ex(c)))).code, ErrorCode.CircuitOpen);
  });

  test('an exchange without a cluster passes through', async () => {
    const metrics = new MetricsRegistry();
    const f = build('{ type: circuit_breaker }', new Map(), metrics);
    assert.equal(await f.wrap(succeeds)(ex(null)), '+OK');
  });

  test('max_retries reaches the shared state the retry filter reads (on first use)', async () => {
    const metrics = new MetricsRegistry();
    const c = realCluster(metrics);
    const f = build('{ type: circuit_breaker, max_retries: 4 }', new Map([['c', c]]), metrics);
    assert.equal(resilienceOf(c).maxRetries, Infinity, 'building alone changes nothing');
    await f.wrap(succeeds)(ex(c));
    assert.equal(resilienceOf(c).maxRetries, 4);
  });

  test('validation', () => {
    hasIssue(issuesOf(yamlConfig('{ type: circuit_breaker, clusters: [nope] }')), 'listeners[0].filters[0].clusters[0]', /unknown cluster 'nope'/);
    hasIssue(issuesOf(yamlConfig('{ type: circuit_breaker, open_duration: 10s, max_open_duration: 1s }')), 'listeners[0].filters[0].max_open_duration', /not be shorter/);
    hasIssue(issuesOf(yamlConfig('{ type: circuit_breaker, max_pending_requests: 10 }')), 'listeners[0].filters[0].max_pending_requests', /set max_requests/);
    hasIssue(issuesOf(yamlConfig('{ type: circuit_breaker, consecutive_failures: 0 }')), 'listeners[0].filters[0].consecutive_failures', /never opens/);
    hasIssue(issuesOf(yamlConfig('{ type: circuit_breaker, open_duration: 0 }')), 'listeners[0].filters[0].open_duration', /greater than 0/);
    assert.ok(issuesOf(yamlConfig('{ type: circuit_breaker, error_rate: 1.5 }')).some((i) => i.path === 'listeners[0].filters[0].error_rate'));
    assert.ok(issuesOf(yamlConfig('{ type: circuit_breaker, max_requests: 0 }')).some((i) => i.path === 'listeners[0].filters[0].max_requests'));
    // A valid full config.
    loadConfigText(
      yamlConfig(
        '{ type: circuit_breaker, clusters: [c], max_connections: 100, max_requests: 50, max_pending_requests: 10, max_retries: 3, consecutive_failures: 5, error_rate: 0.5, window: 10s, min_requests: 20, open_duration: 1s, max_open_duration: 30s, half_open_probes: 2 }',
      ),
      reg,
    );
  });
});

