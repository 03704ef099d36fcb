import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsRegistry } from '../../src/metrics';
import { mergeExpositions } from '../../src/workers/merge-metrics';
import { availableParallelism } from 'node:os';
import { loadConfigText } from '../../src/config/load';
import { reg, issuesOf } from '../helpers/filters';

function worker(cx: number, active: number, latencies: number[], generation: number, started: number): string {
  const m = new MetricsRegistry();
  m.counter('portway_downstream_cx_total', 'Client connections accepted.', { listener: 'r' }).inc(cx);
  m.gauge('portway_downstream_cx_active', 'Client connections open.', { listener: 'r' }).set(active);
  const h = m.histogram('portway_request_seconds', 'Latency.', { listener: 'r x' }, [0.1, 1]);
  for (const l of latencies) h.observe(l);
  m.gauge('portway_config_generation', 'The running config generation.', undefined, () => generation);
  m.gauge('process_start_time_seconds', 'Start time.', undefined, () => started);
  m.gauge('portway_build_info', 'Portway version.', { version: '1.0.0' }, () => 1);
  return m.render();
}

test('series of every worker are summed; generation and start time are not; HELP/TYPE once', () => {
  const merged = mergeExpositions([worker(3, 1, [0.05, 0.5], 2, 1000), worker(4, 2, [2], 1, 900)]);
  assert.match(merged, /^portway_downstream_cx_total\{listener="r"\} 7$/m);
  assert.match(merged, /^portway_downstream_cx_active\{listener="r"\} 3$/m);
  assert.match(merged, /^portway_request_seconds_bucket\{listener="r x",le="0.1"\} 1$/m);
  assert.match(merged, /^portway_request_seconds_bucket\{listener="r x",le="1"\} 2$/m);
  assert.match(merged, /^portway_request_seconds_bucket\{listener="r x",le="\+Inf"\} 3$/m);
  assert.match(merged, /^portway_request_seconds_sum\{listener="r x"\} 2.55$/m);
  assert.match(merged, /^portway_request_seconds_count\{listener="r x"\} 3$/m);
  assert.match(merged, /^portway_config_generation 1$/m);
  assert.match(merged, /^process_start_time_seconds 900$/m);
  assert.match(merged, /^portway_build_info\{version="1.0.0"\} 1$/m);
  assert.equal(merged.match(/^# TYPE portway_request_seconds histogram$/gm)?.length, 1);
  assert.equal(merged.match(/^# HELP portway_downstream_cx_total /gm)?.length, 1);
  // The histogram's lines stay under its one HELP/TYPE header.
  const lines = merged.split('\n');
  const type = lines.indexOf('# TYPE portway_request_seconds histogram');
  assert.match(lines[type + 1]!, /^portway_request_seconds_bucket/);
});

test('a series only one worker has is kept as is', () => {
  const a = new MetricsRegistry();
  a.counter('portway_x_total', 'X.', { code: 'A' }).inc(2);
  const b = new MetricsRegistry();
  b.counter('portway_x_total', 'X.', { code: 'B' }).inc(5);
  const merged = mergeExpositions([a.render(), b.render()]);
  assert.match(merged, /^portway_x_total\{code="A"\} 2$/m);
  assert.match(merged, /^portway_x_total\{code="B"\} 5$/m);
});

test('workers: a positive integer or auto (one per core); 1 when absent; anything else rejected with its path', () => {
  assert.equal(loadConfigText('listeners: []\n', reg).workers, 1);
  assert.equal(loadConfigText('workers: 3\n', reg).workers, 3);
  assert.equal(loadConfigText('workers: auto\n', reg).workers, availableParallelism());
  for (const bad of ['0', '-1', '1.5', 'many']) {
    const issues = issuesOf(`workers: ${bad}\n`);
    assert.ok(issues.some((i) => i.path === 'workers'), `workers: ${bad} → ${JSON.stringify(issues)}`);
  }
});
