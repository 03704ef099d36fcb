/**
 * timeout: built from real configs, wrapped around fake upstream calls on
 * the shared wheel. Waits are bounded by a guard; no test asserts speed,
 * only that a timeout never fires before its deadline.
 */
import { turnNow } from '../../src/util/turn-clock';
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load';
import { Exchange } from '../../src/exchange';
import { ErrorCode, ProxyError } from '../../src/errors';
import { MetricsRegistry } from '../../src/metrics';
import type { AroundPolicy, Invoke } from '../../src/filter';
import { sharedTimerWheel } from '../../src/util/timer-wheel';
import { timeoutFilter } from '../../filters/timeout';
import { reg, filterConfig as config, buildFilter, issuesOf, bounded, rejection } from '../helpers/filters';
import { raceDeadline, discardLate } from '../../filters/timeout/deadline';

function build(filterYaml: string, metrics = new MetricsRegistry()): AroundPolicy {
  return buildFilter<AroundPolicy>(timeoutFilter, config(filterYaml), { metrics });
}

function ex(idempotent = false): Exchange {
  const e = new Exchange('l1', 'redis', '10.0.0.1', 40000, 'GET');
  e.idempotent = idempotent;
  return e;
}

/** A call that settles only when the test says so. */
function manualCall<R>() {
  let resolve!: (v: R) => void;
  let reject!: (e: unknown) => void;
  let calls = 0;
  const promise = new Promise<R>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const next: Invoke<R> = () => {
    calls++;
    return promise;
  };
  return { next, resolve, reject, calls: () => calls };
}

describe('timeout filter', () => {
  test('an upstream that never answers fails with PW_ERR_TIMEOUT, not before the deadline', async () => {
    const metrics = new MetricsRegistry();
    const f = build('{ type: timeout, timeout: 40ms }', metrics);
    const call = manualCall<string>();
    const e = ex(true);
    const start = performance.now();
    const err = await rejection(f.wrap(call.next)(e));
    const took = performance.now() - start;
    assert.equal(err.code, ErrorCode.Timeout);
    assert.equal(err.source, 'upstream');
    assert.equal(err.retryable, true, 'an idempotent request may be retried');
    assert.ok(took >= 39, `fired after ${took} ms`);
    assert.ok(e.deadline > start && e.deadline <= start + 41);
    assert.match(metrics.render(), /portway_timeout_total\{filter="timeout",listener="l1"\} 1/);
    // The late answer is ignored.
    call.resolve('late');
  });

  test('a non-idempotent request times out as not retryable', async () => {
    const f = build('{ type: timeout, timeout: 20ms }');
    const err = await rejection(f.wrap(manualCall<string>().next)(ex(false)));
    assert.equal(err.code, ErrorCode.Timeout);
    assert.equal(err.retryable, false);
  });

  test('an answer before the deadline passes through, and its wheel entry is gone', async () => {
    const f = build('{ type: timeout, timeout: 10s }');
    const before = sharedTimerWheel.pending;
    const call = manualCall<string>();
    const p = f.wrap(call.next)(ex());
    assert.equal(sharedTimerWheel.pending, before + 1);
    call.resolve('ok');
    assert.equal(await bounded(p), 'ok');
    assert.equal(sharedTimerWheel.pending, before);
  });

  test('an upstream failure before the deadline passes through unchanged', async () => {
    const f = build('{ type: timeout, timeout: 10s }');
    const call = manualCall<string>();
    const p = f.wrap(call.next)(ex());
    const boom = new ProxyError(ErrorCode.UpstreamReset, 'reset', { source: 'upstream' });
    call.reject(boom);
    assert.equal(await rejection(p), boom);
  });

  test('sets the deadline when none, shortens a later one, keeps an earlier one', () => {
    const f = build('{ type: timeout, timeout: 1s }');
    const seen: number[] = [];
    const inv = f.wrap<string>((e) => {
      seen.push(e.deadline);
      return Promise.resolve('x');
    });
    // Deadlines count from the event-loop turn that read the request (turn-clock.ts).
    const now = turnNow();
    const a = ex();
    void inv(a);
    assert.equal(a.deadline, now + 1000);
    const b = ex();
    b.deadline = now + 60_000;
    void inv(b);
    assert.ok(b.deadline < now + 1100, 'a later deadline is shortened');
    const c = ex();
    c.deadline = now + 500;
    void inv(c);
    assert.equal(c.deadline, now + 500, 'an earlier deadline stays');
    assert.deepEqual(seen, [a.deadline, b.deadline, c.deadline], 'the upstream call sees the deadline');
  });

  test('an earlier deadline already past: fails at once without calling upstream', async () => {
    const f = build('{ type: timeout, timeout: 1s }');
    const call = manualCall<string>();
    const e = ex();
    e.deadline = turnNow() - 1;
    const err = await rejection(f.wrap(call.next)(e));
    assert.equal(err.code, ErrorCode.Timeout);
    assert.equal(call.calls(), 0);
  });

  test('a synchronous throw from the upstream call becomes a rejection', async () => {
    const f = build('{ type: timeout, timeout: 1s }');
    const err = await rejection(
      f.wrap<string>(() => {
        throw new ProxyError(ErrorCode.Internal, 'sync');
      })(ex()),
    );
    assert.equal(err.message, 'sync');
  });

  test('an upstream connection arriving after the timeout is closed and its slot released', async () => {
    const f = build('{ type: timeout, timeout: 20ms }');
    const call = manualCall<{ socket: { destroy(): void }; release(): void }>();
    await rejection(f.wrap(call.next)(ex()));
    let destroyed = 0;
    let released = 0;
    call.resolve({ socket: { destroy: () => destroyed++ }, release: () => released++ });
    await new Promise((r) => setImmediate(r));
    assert.equal(destroyed, 1);
    assert.equal(released, 1);
  });

  test('raceDeadline with no deadline returns the call itself', () => {
    const p = Promise.resolve(1);
    assert.equal(
      raceDeadline(p, 0, ex(), () => new ProxyError(ErrorCode.Timeout, 'x')),
      p,
    );
  });

  test('discardLate leaves plain values alone', () => {
    discardLate(null);
    discardLate(Buffer.from('+OK\r\n'));
    discardLate({ release: 1, socket: {} });
  });
});

describe('timeout config', () => {
  test('timeout is required', () => {
    const issues = issuesOf(config('{ type: timeout }'));
    assert.ok(issues.some((i) => i.path === 'listeners[0].filters[0].timeout' && /required/.test(i.message)), JSON.stringify(issues));
  });

  test('timeout must be greater than 0', () => {
    const issues = issuesOf(config('{ type: timeout, timeout: 0 }'));
    assert.ok(issues.some((i) => i.path === 'listeners[0].filters[0].timeout' && /greater than 0/.test(i.message)), JSON.stringify(issues));
  });

  test('unknown keys are refused', () => {
    const issues = issuesOf(config('{ type: timeout, timeout: 1s, per_try: 1s }'));
    assert.ok(issues.some((i) => /per_try/.test(i.message) || /per_try/.test(i.path)), JSON.stringify(issues));
  });

  test('durations as strings or milliseconds', () => {
    for (const v of ['250ms', '2s', '1500']) {
      const cfg = loadConfigText(config(`{ type: timeout, timeout: ${v} }`), reg);
      assert.ok(cfg.listeners[0]!.filters[0]!.config['timeout'] !== undefined);
    }
  });
});
