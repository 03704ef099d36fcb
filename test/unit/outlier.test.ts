/**
 * Outlier detection math with an injected clock: ejection after consecutive
 * errors, ejection time growing with recent ejections and capped, decay of the
 * multiplier, the max_ejection_percent cap, the peer error-rate comparison,
 * and the passive connect-failure path sharing the same bookkeeping.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint } from '../../src/routing/endpoint';
import { MetricsRegistry } from '../../src/metrics';
import type { OutlierConfig } from '../../src/config/types';
import { OutlierDetector, ejectionDuration, errorRateOutliers, maxEjectable } from '../../src/routing/health/outlier';

function endpoints(n: number, metrics = new MetricsRegistry()): Endpoint[] {
  return Array.from({ length: n }, (_, i) => new Endpoint('c', `10.0.0.${i + 1}`, 7000, 1, `10.0.0.${i + 1}:7000`, metrics));
}

function setup(o: Partial<OutlierConfig> = {}, passive = { consecutiveFailures: 1, ejectionTimeMs: 5000 }) {
  const clock = { t: 1_000_000 };
  const cfg: OutlierConfig = {
    consecutiveErrors: 3,
    errorRate: null,
    intervalMs: 10_000,
    baseEjectionTimeMs: 30_000,
    maxEjectionTimeMs: 100_000,
    maxEjectionPercent: 10,
    ...o,
  };
  const d = new OutlierDetector(cfg, passive, () => clock.t);
  return { d, clock, cfg };
}

function fail(d: OutlierDetector, ep: Endpoint, eps: Endpoint[], n: number) {
  let last = null;
  for (let i = 0; i < n; i++) last = d.result(ep, false, eps);
  return last;
}

describe('outlier detection', () => {
  test('helpers: ejection duration grows linearly and is capped; max ejectable allows one of two', () => {
    assert.deepEqual([1, 2, 3, 4, 10].map((l) => ejectionDuration(l, 30_000, 100_000)), [30_000, 60_000, 90_000, 100_000, 100_000]);
    assert.equal(ejectionDuration(3, 30_000, 10_000), 30_000, 'a cap below the base means the base');
    assert.equal(maxEjectable(1, 10), 0);
    assert.equal(maxEjectable(2, 10), 1);
    assert.equal(maxEjectable(10, 10), 1);
    assert.equal(maxEjectable(30, 10), 3);
    assert.equal(maxEjectable(4, 50), 2);
  });

  test('consecutive errors eject; a success in between resets the streak', () => {
    const { d, clock } = setup();
    const eps = endpoints(2);
    const [a] = eps as [Endpoint, Endpoint];
    d.result(a, false, eps);
    d.result(a, false, eps);
    d.result(a, true, eps);
    d.result(a, false, eps);
    assert.equal(d.result(a, false, eps), null);
    assert.equal(a.isEjected(clock.t), false);
    const ej = d.result(a, false, eps);
    assert.deepEqual(ej?.map((e) => [e.endpoint, e.reason, e.forMs]), [[a, 'consecutive_errors', 30_000]]);
    assert.equal(a.isEjected(clock.t), true);
    assert.equal(a.health(clock.t), 'ejected');
    assert.equal(a.ejections, 1);
    clock.t += 30_000;
    assert.equal(a.isEjected(clock.t), false, 'back after base_ejection_time');
  });

  test('ejection time grows with each recent ejection, up to max_ejection_time', () => {
    const { d, clock } = setup({ intervalMs: 1_000_000 });
    const eps = endpoints(2);
    const a = eps[0]!;
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) {
      const ej = fail(d, a, eps, 3);
      assert.ok(ej && ej.length === 1, `ejection ${i + 1}`);
      seen.push(ej[0]!.forMs);
      clock.t = a.ejectedUntil; // comes back, fails again at once
    }
    assert.deepEqual(seen, [30_000, 60_000, 90_000, 100_000, 100_000]);
    assert.equal(a.ejections, 5);
  });

  test('the multiplier decays by one per interval spent un-ejected', () => {
    const { d, clock } = setup({ intervalMs: 10_000 });
    const eps = endpoints(2);
    const a = eps[0]!;
    fail(d, a, eps, 3);
    clock.t = a.ejectedUntil;
    fail(d, a, eps, 3);
    assert.equal(a.ejectionLevel, 2);
    clock.t = a.ejectedUntil + 15_000; // one full interval in: level 2 -> 1, then this ejection makes 2
    const ej = fail(d, a, eps, 3)!;
    assert.equal(ej[0]!.forMs, 60_000);
    clock.t = a.ejectedUntil + 100_000; // long calm: starts over
    assert.equal(fail(d, a, eps, 3)![0]!.forMs, 30_000);
  });

  test('never more than max_ejection_percent at once, but one of two may go', () => {
    const { d, clock } = setup({ maxEjectionPercent: 10 });
    const two = endpoints(2);
    assert.ok(fail(d, two[0]!, two, 3));
    assert.equal(fail(d, two[1]!, two, 3), null, 'the second of two stays in');
    assert.equal(two[1]!.isEjected(clock.t), false);

    const { d: d2, clock: c2 } = setup({ maxEjectionPercent: 50 });
    const four = endpoints(4);
    assert.ok(fail(d2, four[0]!, four, 3));
    assert.ok(fail(d2, four[1]!, four, 3));
    assert.equal(fail(d2, four[2]!, four, 3), null);
    assert.equal(four.filter((e) => e.isEjected(c2.t)).length, 2);
    // Once one comes back, there is room again.
    c2.t = four[0]!.ejectedUntil;
    assert.ok(fail(d2, four[2]!, four, 1));
  });

  test('a single-endpoint cluster is never ejected by outlier detection', () => {
    const { d, clock } = setup();
    const one = endpoints(1);
    assert.equal(fail(d, one[0]!, one, 10), null);
    assert.equal(one[0]!.isEjected(clock.t), false);
  });

  test('error rate: compared with the mean of the peers, each needing min_requests', () => {
    const eps = endpoints(4);
    const st = (i: number, ok: number, errors: number) => ({ endpoint: eps[i]!, ok, errors });
    // Peers at 0%, 10%, 5% (mean 5%); the first at 50%: 45 points over.
    assert.deepEqual(errorRateOutliers([st(0, 50, 50), st(1, 100, 0), st(2, 90, 10), st(3, 95, 5)], 20, 30), [eps[0]]);
    assert.deepEqual(errorRateOutliers([st(0, 70, 30), st(1, 100, 0), st(2, 90, 10), st(3, 95, 5)], 20, 30), [], '25 points over is not enough');
    assert.deepEqual(errorRateOutliers([st(0, 5, 5), st(1, 100, 0)], 20, 30), [], 'too few requests to judge');
    assert.deepEqual(errorRateOutliers([st(0, 50, 50)], 20, 30), [], 'no peer to compare with');
    // Everyone failing alike is not an outlier (the upstream service is down, not one endpoint).
    assert.deepEqual(errorRateOutliers([st(0, 0, 50), st(1, 0, 50), st(2, 0, 50)], 20, 30), []);
    // Worst first.
    assert.deepEqual(errorRateOutliers([st(0, 30, 70), st(1, 10, 90), st(2, 100, 0), st(3, 100, 0)], 20, 30), [eps[1], eps[0]]);
  });

  test('error rate is judged when the interval ends, then the counts restart', () => {
    const { d, clock } = setup({ consecutiveErrors: 1000, errorRate: { minRequests: 10, thresholdPercent: 30 }, maxEjectionPercent: 50 });
    const eps = endpoints(3);
    const [a, b, c] = eps as [Endpoint, Endpoint, Endpoint];
    for (let i = 0; i < 20; i++) {
      d.result(a, i % 2 === 0, eps); // 50% errors
      d.result(b, true, eps);
      d.result(c, true, eps);
    }
    assert.equal(a.isEjected(clock.t), false, 'nothing before the interval ends');
    clock.t += 10_000;
    const ej = d.result(b, true, eps)!;
    assert.deepEqual(ej.map((e) => [e.endpoint, e.reason]), [[a, 'error_rate']]);
    assert.equal(a.windowErrors + a.windowOk + b.windowOk, 0, 'counts reset');
    assert.equal(a.health(clock.t), 'ejected');
    assert.equal(a.ejectReason, 'error_rate');
  });

  test('passive connect failures share the ejection bookkeeping; a connect success clears only their ejection', () => {
    const { d, clock } = setup({}, { consecutiveFailures: 2, ejectionTimeMs: 5000 });
    const eps = endpoints(2);
    const a = eps[0]!;
    assert.equal(d.connectFailure(a), null);
    assert.equal(d.connectFailure(a)?.forMs, 5000);
    assert.equal(a.ejectReason, 'connect_failure');
    assert.equal(d.connectSuccess(a), true);
    assert.equal(a.isEjected(clock.t), false);
    // Second ejection soon after: twice as long.
    d.connectFailure(a);
    assert.equal(d.connectFailure(a)?.forMs, 10_000);
    d.connectSuccess(a);
    // An outlier ejection survives a successful connect (a reset-on-accept server connects fine).
    fail(d, a, eps, 3);
    assert.equal(a.ejectReason, 'consecutive_errors');
    assert.equal(d.connectSuccess(a), false);
    assert.equal(a.isEjected(clock.t), true);
  });

  test('without outlier config, results are ignored and passive ejection still grows', () => {
    const d = new OutlierDetector(null, { consecutiveFailures: 1, ejectionTimeMs: 1000 }, () => 5000);
    const eps = endpoints(2);
    assert.equal(d.enabled, false);
    assert.equal(fail(d, eps[0]!, eps, 100), null);
    assert.equal(eps[0]!.isEjected(5000), false);
    assert.equal(d.connectFailure(eps[0]!)?.forMs, 1000);
    d.connectSuccess(eps[0]!);
    assert.equal(d.connectFailure(eps[0]!)?.forMs, 2000);
  });

  test('ejections are counted per reason in metrics and shown with the health reason', () => {
    const metrics = new MetricsRegistry();
    const { d, clock } = setup();
    const eps = endpoints(2, metrics);
    fail(d, eps[0]!, eps, 3);
    const text = metrics.render();
    assert.match(text, /portway_upstream_ejections_total\{cluster="c",endpoint="10\.0\.0\.1:7000",reason="consecutive_errors"\} 1/);
    assert.match(text, /portway_upstream_health\{cluster="c",endpoint="10\.0\.0\.1:7000"\} 0/);
    assert.match(text, /portway_upstream_health\{cluster="c",endpoint="10\.0\.0\.2:7000"\} 1/);
    const j = eps[0]!.toJSON(clock.t);
    assert.equal(j['health'], 'ejected');
    assert.equal(j['reason'], 'consecutive_errors');
  });
});
