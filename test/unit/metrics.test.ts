/**
 * The metrics registry and its Prometheus text exposition (format 0.0.4):
 * https://prometheus.io/docs/instrumenting/exposition_formats/
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsRegistry, Histogram, LATENCY_BUCKETS_SECONDS } from '../../src/metrics';

function lines(m: MetricsRegistry): string[] {
  const text = m.render();
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  return text.split('\n').slice(0, -1);
}

/** The sample lines (not comments) of one metric family. */
function samples(m: MetricsRegistry, name: string): string[] {
  return lines(m).filter((l) => !l.startsWith('#') && (l.startsWith(name + '{') || l.startsWith(name + ' ') || l.startsWith(name + '_')));
}

describe('render', () => {
  test('a counter without labels: HELP, TYPE, value', () => {
    const m = new MetricsRegistry();
    const c = m.counter('portway_requests_total', 'Requests seen.');
    c.inc();
    c.inc(4);
    assert.deepEqual(lines(m), ['# HELP portway_requests_total Requests seen.', '# TYPE portway_requests_total counter', 'portway_requests_total 5']);
  });

  test('a gauge with labels', () => {
    const m = new MetricsRegistry();
    const g = m.gauge('portway_cx_active', 'Open connections.', { listener: 'redis', proto: 'resp' });
    g.inc(3);
    g.dec();
    assert.deepEqual(lines(m), [
      '# HELP portway_cx_active Open connections.',
      '# TYPE portway_cx_active gauge',
      'portway_cx_active{listener="redis",proto="resp"} 2',
    ]);
    g.set(-7.5);
    assert.deepEqual(samples(m, 'portway_cx_active'), ['portway_cx_active{listener="redis",proto="resp"} -7.5']);
  });

  test('a callback gauge is read at render time', () => {
    const m = new MetricsRegistry();
    let v = 1;
    m.gauge('portway_endpoints', 'Endpoints.', { cluster: 'c' }, () => v);
    assert.deepEqual(samples(m, 'portway_endpoints'), ['portway_endpoints{cluster="c"} 1']);
    v = 9;
    assert.deepEqual(samples(m, 'portway_endpoints'), ['portway_endpoints{cluster="c"} 9']);
  });

  test('a callback gauge replaces an earlier one with the same labels', () => {
    const m = new MetricsRegistry();
    m.gauge('portway_endpoints', 'Endpoints.', { cluster: 'c' }, () => 1);
    m.gauge('portway_endpoints', 'Endpoints.', { cluster: 'c' }, () => 2);
    assert.deepEqual(samples(m, 'portway_endpoints'), ['portway_endpoints{cluster="c"} 2']);
  });

  test('one HELP and TYPE per family, every series under it', () => {
    const m = new MetricsRegistry();
    m.counter('portway_rq_total', 'Requests.', { cluster: 'a' }).inc(1);
    m.counter('portway_rq_total', 'Requests.', { cluster: 'b' }).inc(2);
    m.counter('portway_other_total', 'Other.').inc(3);
    const out = lines(m);
    assert.equal(out.filter((l) => l === '# TYPE portway_rq_total counter').length, 1);
    assert.equal(out.filter((l) => l.startsWith('# HELP portway_rq_total ')).length, 1);
    const i = out.indexOf('# TYPE portway_rq_total counter');
    assert.deepEqual(out.slice(i + 1, i + 3), ['portway_rq_total{cluster="a"} 1', 'portway_rq_total{cluster="b"} 2']);
    assert.ok(out.includes('portway_other_total 3'));
  });

  test('label values are escaped: backslash, double quote, newline', () => {
    const m = new MetricsRegistry();
    m.counter('portway_x_total', 'X.', { path: 'C:\\dir "quoted"\nnext' }).inc();
    assert.deepEqual(samples(m, 'portway_x_total'), ['portway_x_total{path="C:\\\\dir \\"quoted\\"\\nnext"} 1']);
  });

  test('special values: +Inf, -Inf, NaN', () => {
    const m = new MetricsRegistry();
    m.gauge('g_pos', 'p').set(Infinity);
    m.gauge('g_neg', 'n').set(-Infinity);
    m.gauge('g_nan', 'x').set(NaN);
    const out = lines(m);
    assert.ok(out.includes('g_pos +Inf'));
    assert.ok(out.includes('g_neg -Inf'));
    assert.ok(out.includes('g_nan NaN'));
  });

  test('an empty registry renders an empty exposition', () => {
    assert.equal(new MetricsRegistry().render().trim(), '');
  });
});

describe('histograms', () => {
  test('buckets are cumulative, end with +Inf, then _sum and _count', () => {
    const m = new MetricsRegistry();
    const h = m.histogram('portway_rq_seconds', 'Latency.', { cluster: 'c' }, [0.25, 0.5, 1]);
    for (const v of [0.125, 0.25, 0.375, 0.75, 0.875, 3]) h.observe(v);
    assert.deepEqual(lines(m), [
      '# HELP portway_rq_seconds Latency.',
      '# TYPE portway_rq_seconds histogram',
      'portway_rq_seconds_bucket{cluster="c",le="0.25"} 2',
      'portway_rq_seconds_bucket{cluster="c",le="0.5"} 3',
      'portway_rq_seconds_bucket{cluster="c",le="1"} 5',
      'portway_rq_seconds_bucket{cluster="c",le="+Inf"} 6',
      'portway_rq_seconds_sum{cluster="c"} 5.375',
      'portway_rq_seconds_count{cluster="c"} 6',
    ]);
  });

  test('a histogram without labels', () => {
    const m = new MetricsRegistry();
    const h = m.histogram('h', 'H.', undefined, [1, 2]);
    h.observe(2);
    h.observe(1.5);
    assert.deepEqual(samples(m, 'h'), ['h_bucket{le="1"} 0', 'h_bucket{le="2"} 2', 'h_bucket{le="+Inf"} 2', 'h_sum 3.5', 'h_count 2']);
  });

  test('an empty histogram renders zeros', () => {
    const m = new MetricsRegistry();
    m.histogram('h', 'H.', undefined, [1]);
    assert.deepEqual(samples(m, 'h'), ['h_bucket{le="1"} 0', 'h_bucket{le="+Inf"} 0', 'h_sum 0', 'h_count 0']);
  });

  test('a value equal to a bound falls in that bucket (le is inclusive)', () => {
    const h = new Histogram([1, 2]);
    h.observe(1);
    assert.deepEqual(h.counts, [1, 0]);
  });

  test('the default bounds are the latency buckets, ascending', () => {
    const m = new MetricsRegistry();
    const h = m.histogram('h', 'H.');
    assert.deepEqual(h.bounds, LATENCY_BUCKETS_SECONDS);
    for (let i = 1; i < h.bounds.length; i++) assert.ok(h.bounds[i]! > h.bounds[i - 1]!);
    h.observe(0.003);
    const buckets = samples(m, 'h').filter((l) => l.startsWith('h_bucket'));
    assert.equal(buckets.length, LATENCY_BUCKETS_SECONDS.length + 1);
    assert.ok(buckets.includes('h_bucket{le="0.0025"} 0'));
    assert.ok(buckets.includes('h_bucket{le="0.005"} 1'));
    assert.ok(buckets.includes('h_bucket{le="+Inf"} 1'));
  });
});

describe('series identity', () => {
  test('the same name and labels give the same Counter', () => {
    const m = new MetricsRegistry();
    const a = m.counter('portway_rq_total', 'Requests.', { cluster: 'c', endpoint: '1.2.3.4:5' });
    const b = m.counter('portway_rq_total', 'Requests.', { cluster: 'c', endpoint: '1.2.3.4:5' });
    assert.equal(a, b);
    a.inc();
    b.inc();
    assert.deepEqual(samples(m, 'portway_rq_total'), ['portway_rq_total{cluster="c",endpoint="1.2.3.4:5"} 2']);
  });

  test('different labels give different Counters', () => {
    const m = new MetricsRegistry();
    assert.notEqual(m.counter('x_total', 'X.', { cluster: 'a' }), m.counter('x_total', 'X.', { cluster: 'b' }));
    assert.notEqual(m.counter('x_total', 'X.'), m.counter('x_total', 'X.', { cluster: 'a' }));
  });

  test('the same labels in another key order are the same series', () => {
    const m = new MetricsRegistry();
    const a = m.counter('portway_rq_total', 'Requests.', { cluster: 'c', endpoint: 'e' });
    const b = m.counter('portway_rq_total', 'Requests.', { endpoint: 'e', cluster: 'c' });
    a.inc();
    b.inc();
    // A label set is unordered: one series, rendered once, never twice.
    assert.deepEqual(samples(m, 'portway_rq_total'), ['portway_rq_total{cluster="c",endpoint="e"} 2']);
    assert.equal(a, b);
  });

  test('the same name and labels give the same Histogram and Gauge', () => {
    const m = new MetricsRegistry();
    assert.equal(m.histogram('h', 'H.', { l: '1' }), m.histogram('h', 'H.', { l: '1' }));
    assert.equal(m.gauge('g', 'G.', { l: '1' }), m.gauge('g', 'G.', { l: '1' }));
  });

  test('a name registered as one kind cannot be requested as another', () => {
    const m = new MetricsRegistry();
    m.counter('portway_x', 'X.');
    assert.throws(() => m.gauge('portway_x', 'X.'), /registered as counter/);
    assert.throws(() => m.histogram('portway_x', 'X.'), /registered as counter/);
  });
});

describe('remove', () => {
  test('drops one series and keeps the others', () => {
    const m = new MetricsRegistry();
    m.counter('portway_rq_total', 'Requests.', { endpoint: 'a' }).inc();
    m.counter('portway_rq_total', 'Requests.', { endpoint: 'b' }).inc(2);
    m.remove('portway_rq_total', { endpoint: 'a' });
    assert.deepEqual(samples(m, 'portway_rq_total'), ['portway_rq_total{endpoint="b"} 2']);
  });

  test('a family with no series left is not rendered at all', () => {
    const m = new MetricsRegistry();
    m.counter('portway_rq_total', 'Requests.', { endpoint: 'a' }).inc();
    m.remove('portway_rq_total', { endpoint: 'a' });
    assert.ok(!m.render().includes('portway_rq_total'));
  });

  test('a removed series starts again from zero when requested again', () => {
    const m = new MetricsRegistry();
    const old = m.counter('c_total', 'C.', { endpoint: 'a' });
    old.inc(5);
    m.remove('c_total', { endpoint: 'a' });
    const fresh = m.counter('c_total', 'C.', { endpoint: 'a' });
    assert.notEqual(fresh, old);
    assert.deepEqual(samples(m, 'c_total'), ['c_total{endpoint="a"} 0']);
  });

  test('removing a series that does not exist is harmless', () => {
    const m = new MetricsRegistry();
    m.counter('c_total', 'C.').inc();
    m.remove('nope_total');
    m.remove('c_total', { endpoint: 'zz' });
    assert.deepEqual(samples(m, 'c_total'), ['c_total 1']);
  });
});
