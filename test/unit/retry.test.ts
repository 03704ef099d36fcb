/**
 * retry: backoff bounds, budget math, which failures are retried, and the
 * retry loop around fake upstream calls (shared counts per cluster, the
 * breaker's max_retries, per-try timeouts, the request deadline).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load';
import { Exchange } from '../../src/exchange';
import { ErrorCode, ProxyError, type ErrorCodeValue } from '../../src/errors';
import { Counter, MetricsRegistry } from '../../src/metrics';
import type { AroundPolicy, Invoke } from '../../src/filter';
import type { Cluster } from '../../src/routing/cluster';
import { fullJitterBackoff } from '../../filters/retry/backoff';
import { retryBudget, retryFits } from '../../filters/retry/budget';
import { CONNECT_FAILURE, RESET, TIMEOUT, failureClass, mayRetry, retryMask } from '../../filters/retry/retry-on';
import { RetryRunner, retryFilter, retrySettings, type RetrySettings } from '../../filters/retry';
import { resilienceOf } from '../../filters/circuit_breaker/state';
import { TimerWheel } from '../../src/util/timer-wheel';
import { reg, filterConfig as config, buildFilter, issuesOf, hasIssue, bounded, rejection } from '../helpers/filters';

const err = (code: ErrorCodeValue, opts: { source?: 'upstream' | 'internal' | 'downstream'; retryable?: boolean } = {}) =>
  new ProxyError(code, code, { source: opts.source ?? 'upstream', retryable: opts.retryable ?? false });

const CONNECT = () => err(ErrorCode.UpstreamConnect, { retryable: true });
const RESET_ERR = () => err(ErrorCode.UpstreamReset);

/** A stand-in cluster: the shared retry state is keyed by object identity only. */
function fakeCluster(): Cluster {
  return { name: 'c' } as Cluster;
}

function ex(idempotent: boolean, cluster: Cluster | null = fakeCluster()): Exchange {
  const e = new Exchange('l1', 'redis', '10.0.0.1', 40000, idempotent ? 'GET' : 'INCR');
  e.idempotent = idempotent;
  e.cluster = cluster;
  return e;
}

function counters() {
  return { retries: new Counter(), budgetExhausted: new Counter(), overflow: new Counter(), recovered: new Counter() };
}

function runner(over: Partial<RetrySettings> = {}, c = counters()) {
  const s: RetrySettings = { ...retrySettings({}), backoffBaseMs: 0, backoffMaxMs: 0, ...over };
  return { r: new RetryRunner(s, c), c };
}

/** An upstream call scripted per try: an error to throw, or a value. */
function script<R>(outcomes: (ProxyError | R | 'hang')[]) {
  let i = 0;
  const deadlines: number[] = [];
  const next: Invoke<R> = (e) => {
    deadlines.push(e.deadline);
    const o = outcomes[Math.min(i++, outcomes.length - 1)];
    if (o === 'hang') return new Promise<R>(() => {});
    return o instanceof ProxyError ? Promise.reject(o) : Promise.resolve(o as R);
  };
  return { next, calls: () => i, deadlines };
}

describe('full-jitter backoff', () => {
  test('the range doubles per retry from base and stops at max', () => {
    const top = (n: number) => fullJitterBackoff(n, 25, 250, () => 1);
    assert.deepEqual([1, 2, 3, 4, 5, 6, 10, 100, 5000].map(top), [25, 50, 100, 200, 250, 250, 250, 250, 250]);
  });

  test('draws stay in [0, ceiling) and spread over it', () => {
    for (const n of [1, 2, 3, 4, 8]) {
      const ceiling = Math.min(250, 25 * 2 ** (n - 1));
      let min = Infinity;
      let max = -Infinity;
      for (let i = 0; i < 2000; i++) {
        const d = fullJitterBackoff(n, 25, 250);
        assert.ok(d >= 0 && d < ceiling, `retry ${n}: ${d} outside [0, ${ceiling})`);
        min = Math.min(min, d);
        max = Math.max(max, d);
      }
      // With 2000 uniform draws both ends of the range are reached closely (failure odds ~ 1e-40).
      assert.ok(min < ceiling * 0.05 && max > ceiling * 0.95, `retry ${n}: draws in [${min}, ${max}] do not spread`);
    }
  });

  test('random 0 gives 0; no retry or no base gives 0', () => {
    assert.equal(fullJitterBackoff(3, 25, 250, () => 0), 0);
    assert.equal(fullJitterBackoff(0, 25, 250, () => 0.5), 0);
    assert.equal(fullJitterBackoff(2, 0, 250, () => 0.5), 0);
  });
});

describe('retry budget', () => {
  test('budget_percent of active requests, at least min_retry_concurrency', () => {
    assert.equal(retryBudget(0, 20, 3), 3);
    assert.equal(retryBudget(10, 20, 3), 3);
    assert.equal(retryBudget(15, 20, 3), 3);
    assert.equal(retryBudget(20, 20, 3), 4);
    assert.equal(retryBudget(100, 20, 3), 20);
    assert.equal(retryBudget(99, 20, 3), 19, 'rounds down');
    assert.equal(retryBudget(1000, 0, 0), 0);
    assert.equal(retryBudget(7, 100, 0), 7);
  });

  test('a retry fits while retries in flight are under the budget', () => {
    assert.equal(retryFits(100, 19, 20, 3), true);
    assert.equal(retryFits(100, 20, 20, 3), false);
    assert.equal(retryFits(1, 2, 20, 3), true);
    assert.equal(retryFits(1, 3, 20, 3), false);
    assert.equal(retryFits(50, 0, 0, 0), false);
  });
});

describe('retry_on', () => {
  test('failure classes by code, source and retryable', () => {
    assert.equal(failureClass(CONNECT()), CONNECT_FAILURE);
    assert.equal(failureClass(err(ErrorCode.ConnectTimeout, { retryable: true })), CONNECT_FAILURE);
    assert.equal(failureClass(err(ErrorCode.NoHealthyUpstream, { retryable: true })), CONNECT_FAILURE);
    assert.equal(failureClass(err(ErrorCode.UpstreamReset, { retryable: true })), CONNECT_FAILURE, 'a send on a link already down reached nothing');
    assert.equal(failureClass(RESET_ERR()), RESET);
    assert.equal(failureClass(err(ErrorCode.Timeout, { retryable: true })), TIMEOUT);
    assert.equal(failureClass(err(ErrorCode.Timeout)), TIMEOUT);
    assert.equal(failureClass(err(ErrorCode.CircuitOpen)), 0);
    assert.equal(failureClass(err(ErrorCode.Overflow, { source: 'internal' })), 0);
    assert.equal(failureClass(err(ErrorCode.DownstreamClosed, { source: 'downstream' })), 0);
    assert.equal(failureClass(err(ErrorCode.Internal, { source: 'internal', retryable: true })), 0, 'only upstream failures');
  });

  test('reset and timeout only for idempotent requests; connect failures for any', () => {
    const all = retryMask(['connect-failure', 'reset', 'timeout']);
    assert.equal(mayRetry(CONNECT(), false, all), true);
    assert.equal(mayRetry(RESET_ERR(), true, all), true);
    assert.equal(mayRetry(RESET_ERR(), false, all), false);
    assert.equal(mayRetry(err(ErrorCode.Timeout, { retryable: true }), true, all), true);
    assert.equal(mayRetry(err(ErrorCode.Timeout), false, all), false);
    const onlyReset = retryMask(['reset']);
    assert.equal(mayRetry(CONNECT(), false, onlyReset), false);
    assert.equal(mayRetry(RESET_ERR(), true, onlyReset), true);
  });
});

describe('RetryRunner', () => {
  test('a connect failure is retried and the retry succeeds', async () => {
    const { r, c } = runner({ maxRetries: 2 });
    const s = script<string>([CONNECT(), 'ok']);
    assert.equal(await bounded(r.run(ex(false), s.next)), 'ok');
    assert.equal(s.calls(), 2);
    assert.equal(c.retries.value, 1);
    assert.equal(c.recovered.value, 1);
  });

  test('a reset is retried for an idempotent request only', async () => {
    const a = runner({ maxRetries: 2 });
    const get = script<string>([RESET_ERR(), 'v']);
    assert.equal(await bounded(a.r.run(ex(true), get.next)), 'v');
    assert.equal(get.calls(), 2);

    const b = runner({ maxRetries: 2 });
    const incr = script<string>([RESET_ERR(), ':1']);
    const e = await rejection(b.r.run(ex(false), incr.next));
    assert.equal(e.code, ErrorCode.UpstreamReset);
    assert.equal(incr.calls(), 1, 'a non-idempotent request is sent once');
    assert.equal(b.c.retries.value, 0);
  });

  test('max_retries bounds the tries; the last failure is returned', async () => {
    const { r, c } = runner({ maxRetries: 3 });
    const last = CONNECT();
    const s = script<string>([CONNECT(), CONNECT(), CONNECT(), last]);
    assert.equal(await rejection(r.run(ex(true), s.next)), last);
    assert.equal(s.calls(), 4);
    assert.equal(c.retries.value, 3);
    assert.equal(c.recovered.value, 0);
  });

  test('failures outside retry_on are not retried', async () => {
    const { r } = runner({ maxRetries: 3, retryOn: ['reset'] });
    const s = script<string>([CONNECT(), 'ok']);
    assert.equal((await rejection(r.run(ex(true), s.next))).code, ErrorCode.UpstreamConnect);
    assert.equal(s.calls(), 1);
  });

  test('an open circuit and an overflow are never retried', async () => {
    for (const e of [err(ErrorCode.CircuitOpen), err(ErrorCode.Overflow, { source: 'internal' })]) {
      const { r } = runner({ maxRetries: 3 });
      const s = script<string>([e, 'ok']);
      assert.equal(await rejection(r.run(ex(true), s.next)), e);
      assert.equal(s.calls(), 1);
    }
  });

  test('per_try_timeout: a hung try is abandoned and an idempotent request retried', async () => {
    const { r, c } = runner({ maxRetries: 1, perTryTimeoutMs: 30 });
    const s = script<string>(['hang', 'second']);
    const e = ex(true);
    assert.equal(await bounded(r.run(e, s.next)), 'second');
    assert.equal(c.retries.value, 1);
    assert.equal(e.deadline, 0, 'the exchange deadline is restored after each try');
    assert.ok(s.deadlines[0]! > 0, 'the try saw its own deadline');
  });

  test('per_try_timeout: a non-idempotent request is not retried after a timeout', async () => {
    const { r } = runner({ maxRetries: 1, perTryTimeoutMs: 20 });
    const s = script<string>(['hang', 'second']);
    const e = await rejection(r.run(ex(false), s.next));
    assert.equal(e.code, ErrorCode.Timeout);
    assert.equal(e.retryable, false);
    assert.equal(s.calls(), 1);
  });

  test('the try deadline never extends the request deadline', async () => {
    const { r } = runner({ maxRetries: 0, perTryTimeoutMs: 60_000 });
    const s = script<string>(['ok']);
    const e = ex(true);
    e.deadline = performance.now() + 1000;
    await bounded(r.run(e, s.next));
    assert.equal(s.deadlines[0], e.deadline);
  });

  test('no retry starts once the request deadline would pass during the backoff', async () => {
    const c = counters();
    const s: RetrySettings = { ...retrySettings({}), maxRetries: 3, backoffBaseMs: 10_000, backoffMaxMs: 10_000 };
    // random 0.5: the backoff is 5 s, the request has 50 ms left.
    const r = new RetryRunner(s, c, () => 0.5);
    const calls = script<string>([CONNECT(), 'ok']);
    const e = ex(true);
    e.deadline = performance.now() + 50;
    assert.equal((await rejection(r.run(e, calls.next))).code, ErrorCode.UpstreamConnect);
    assert.equal(calls.calls(), 1);
    assert.equal(c.retries.value, 0);
    // A deadline already past: no retry even without backoff.
    const late = ex(true);
    late.deadline = performance.now() - 1;
    const s2 = script<string>([CONNECT(), 'ok']);
    assert.equal((await rejection(runner({ maxRetries: 3 }).r.run(late, s2.next))).code, ErrorCode.UpstreamConnect);
    assert.equal(s2.calls(), 1);
    // With time enough the same backoff is waited out (random 0.01: 100 ms of 10 s left).
    const r3 = new RetryRunner(s, counters(), () => 0.01);
    const s3 = script<string>([CONNECT(), 'ok']);
    const e3 = ex(true);
    e3.deadline = performance.now() + 10_000;
    assert.equal(await bounded(r3.run(e3, s3.next)), 'ok');
  });

  test('backoff waits on the wheel between tries', async () => {
    let now = 1000;
    const wheel = new TimerWheel({ clock: () => now, autoTick: false });
    const s: RetrySettings = { ...retrySettings({}), maxRetries: 1, backoffBaseMs: 40, backoffMaxMs: 40 };
    // random 0.5 of [0, 40): a 20 ms wait.
    const r = new RetryRunner(s, counters(), () => 0.5, wheel);
    const calls = script<string>([CONNECT(), 'ok']);
    const out = r.run(ex(true), calls.next);
    const flush = () => new Promise<void>((res) => setImmediate(res));
    await flush();
    assert.equal(calls.calls(), 1);
    assert.equal(wheel.pending, 1, 'the backoff sleeps on the wheel');
    now += 15;
    wheel.tick();
    await flush();
    assert.equal(calls.calls(), 1, 'not before the backoff has passed');
    now += 15;
    wheel.tick();
    await flush();
    assert.equal(calls.calls(), 2);
    assert.equal(await bounded(out), 'ok');
  });

  test('budget: with no room no retry is made, and it is counted', async () => {
    const { r, c } = runner({ maxRetries: 2, budgetPercent: 0, minRetryConcurrency: 0 });
    const s = script<string>([CONNECT(), 'ok']);
    assert.equal((await rejection(r.run(ex(true), s.next))).code, ErrorCode.UpstreamConnect);
    assert.equal(s.calls(), 1);
    assert.equal(c.budgetExhausted.value, 1);
    assert.equal(c.retries.value, 0);
  });

  test('budget: retries in flight count across requests of the same cluster', async () => {
    const cluster = fakeCluster();
    const { r, c } = runner({ maxRetries: 1, budgetPercent: 0, minRetryConcurrency: 1 });
    // The first request's retry hangs, holding the only retry place.
    const first = script<string>([CONNECT(), 'hang']);
    void r.run(ex(true, cluster), first.next);
    await new Promise((res) => setImmediate(res));
    assert.equal(resilienceOf(cluster).retries, 1);
    assert.equal(resilienceOf(cluster).requests, 1);
    const second = script<string>([CONNECT(), 'ok']);
    assert.equal((await rejection(r.run(ex(true, cluster), second.next))).code, ErrorCode.UpstreamConnect);
    assert.equal(c.budgetExhausted.value, 1);
    // Another cluster has its own budget.
    const other = script<string>([CONNECT(), 'ok']);
    assert.equal(await bounded(r.run(ex(true, fakeCluster()), other.next)), 'ok');
  });

  test("the circuit breaker's max_retries stops a retry and is told", async () => {
    const cluster = fakeCluster();
    const shared = resilienceOf(cluster);
    shared.maxRetries = 0;
    let told = 0;
    shared.onRetryOverflow = () => told++;
    const { r, c } = runner({ maxRetries: 2 });
    const s = script<string>([CONNECT(), 'ok']);
    assert.equal((await rejection(r.run(ex(false, cluster), s.next))).code, ErrorCode.UpstreamConnect);
    assert.equal(c.overflow.value, 1);
    assert.equal(told, 1);
  });

  test('shared counts return to zero whatever the outcome', async () => {
    const cluster = fakeCluster();
    const { r } = runner({ maxRetries: 2 });
    await bounded(r.run(ex(true, cluster), script<string>([CONNECT(), 'ok']).next));
    await rejection(r.run(ex(true, cluster), script<string>([CONNECT(), CONNECT(), RESET_ERR()]).next));
    await rejection(r.run(ex(false, cluster), script<string>([RESET_ERR()]).next));
    const shared = resilienceOf(cluster);
    assert.equal(shared.requests, 0);
    assert.equal(shared.retries, 0);
  });

  test('an exchange without a cluster is still retried (no budget to consult)', async () => {
    const { r } = runner({ maxRetries: 1 });
    const s = script<string>([CONNECT(), 'ok']);
    assert.equal(await bounded(r.run(ex(true, null), s.next)), 'ok');
  });
});

describe('retry filter from config', () => {
  function build(filterYaml: string, metrics: MetricsRegistry): AroundPolicy {
    return buildFilter<AroundPolicy>(retryFilter, config(filterYaml), { metrics });
  }

  test('retries counted in /metrics', async () => {
    const metrics = new MetricsRegistry();
    const f = build('{ type: retry, max_retries: 2, backoff: { base: 1ms, max: 1ms } }', metrics);
    const s = script<string>([CONNECT(), CONNECT(), 'ok']);
    assert.equal(await bounded(f.wrap(s.next)(ex(false))), 'ok');
    const text = metrics.render();
    assert.match(text, /portway_retry_total\{filter="retry",listener="l1"\} 2/);
    assert.match(text, /portway_retry_recovered_total\{filter="retry",listener="l1"\} 1/);
    assert.match(text, /portway_retry_budget_exhausted_total\{filter="retry",listener="l1"\} 0/);
  });

  test('defaults', () => {
    const cfg = loadConfigText(config('{ type: retry }'), reg);
    const s = retrySettings(cfg.listeners[0]!.filters[0]!.config as never);
    assert.deepEqual(s, {
      maxRetries: 1,
      perTryTimeoutMs: 0,
      backoffBaseMs: 25,
      backoffMaxMs: 250,
      retryOn: ['connect-failure', 'reset', 'timeout'],
      budgetPercent: 20,
      minRetryConcurrency: 3,
    });
  });

  test('validation', () => {
    hasIssue(issuesOf(config('{ type: retry, backoff: { base: 100ms, max: 10ms } }')), 'listeners[0].filters[0].backoff.max', /not be shorter than backoff.base/);
    hasIssue(issuesOf(config('{ type: retry, per_try_timeout: 0 }')), 'listeners[0].filters[0].per_try_timeout', /greater than 0/);
    assert.ok(issuesOf(config('{ type: retry, retry_on: [gateway-error] }')).some((i) => i.path.startsWith('listeners[0].filters[0].retry_on')));
    assert.ok(issuesOf(config('{ type: retry, budget_percent: 150 }')).some((i) => i.path === 'listeners[0].filters[0].budget_percent'));
    assert.ok(issuesOf(config('{ type: retry, max_retries: -1 }')).some((i) => i.path === 'listeners[0].filters[0].max_retries'));
  });
});
