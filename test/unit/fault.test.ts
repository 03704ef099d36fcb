/**
 * fault: aborts and delays built from real configs, made deterministic only
 * through the config (percentage 100 or 0), the exchange deadline, match,
 * metrics, and config validation.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load';
import { Exchange } from '../../src/exchange';
import { ErrorCode, ProxyError } from '../../src/errors';
import { MetricsRegistry } from '../../src/metrics';
import { FilterChain, type LocalReply, type PhaseFilter, type Verdict } from '../../src/filter';
import { faultFilter } from '../../filters/fault';
import { reg, filterConfig as config, buildFilter, issuesOf, hasIssue, metric } from '../helpers/filters';

function build(filterYaml: string, metrics = new MetricsRegistry()): PhaseFilter {
  return buildFilter<PhaseFilter>(faultFilter, config(filterYaml), { metrics });
}

function ex(attrs: Record<string, string> = {}, client = '10.0.0.1'): Exchange {
  const e = new Exchange('l1', 'tcp', client, 40000);
  Object.assign(e.attrs, attrs);
  return e;
}

describe('fault abort', () => {
  test('percentage 100 aborts every request synchronously with PW_ERR_FAULT_ABORT by default', () => {
    const metrics = new MetricsRegistry();
    const f = build('{ type: fault, abort: { percentage: 100 } }', metrics);
    for (let i = 0; i < 10; i++) {
      const v = f.onRequest!(ex());
      assert.ok(!(v instanceof Promise));
      const r = v as LocalReply;
      assert.ok(r.error instanceof ProxyError);
      assert.equal(r.error.code, ErrorCode.FaultAbort);
      assert.equal(r.error.source, 'upstream');
    }
    assert.equal(metric(metrics, 'portway_fault_aborted_total', 'filter="fault",listener="l1"'), 10);
  });

  test('the code and message come from the config', () => {
    const f = build('{ type: fault, abort: { code: PW_ERR_UPSTREAM_RESET, message: "injected reset" } }');
    const r = f.onRequest!(ex()) as LocalReply;
    assert.equal(r.error.code, ErrorCode.UpstreamReset);
    assert.equal(r.error.message, 'injected reset');
  });

  test('percentage 0 never aborts: the filter has no onRequest, so the chain skips it', () => {
    const f = build('{ type: fault, abort: { percentage: 0 } }');
    assert.equal(f.onRequest, undefined);
    const chain = new FilterChain([f]);
    for (let i = 0; i < 100; i++) assert.equal(chain.runRequest(ex()), undefined);
  });

  test('a fractional percentage aborts about that share (Math.random)', () => {
    const f = build('{ type: fault, abort: { percentage: 25 } }');
    let n = 0;
    for (let i = 0; i < 4000; i++) if (f.onRequest!(ex()) !== undefined) n++;
    // Expected 1000, standard deviation about 27: these bounds are 7 deviations wide.
    assert.ok(n > 800 && n < 1200, `${n} of 4000 aborted`);
  });

  test('match: only matching requests are aborted', () => {
    const f = build('{ type: fault, match: { attributes: { command: { exact: GET } } }, abort: {} }');
    assert.equal(f.onRequest!(ex({ command: 'SET' })), undefined);
    assert.equal(f.onRequest!(ex({})), undefined);
    assert.notEqual(f.onRequest!(ex({ command: 'GET' })), undefined);
  });
});

describe('fault delay', () => {
  // Delays wait on the shared timer wheel, whose interval does not keep a process alive (a proxy has its sockets).
  let keepAlive: NodeJS.Timeout;
  before(() => (keepAlive = setInterval(() => {}, 1000)));
  after(() => clearInterval(keepAlive));

  test('a delayed request returns a promise that continues after the delay', async () => {
    const metrics = new MetricsRegistry();
    const f = build('{ type: fault, delay: { duration: 60ms } }', metrics);
    const started = performance.now();
    const v = f.onRequest!(ex());
    assert.ok(v instanceof Promise, 'the delay is the async path');
    let settled = false;
    void v.then(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'still waiting after a turn of the event loop');
    assert.equal(await v, undefined);
    assert.ok(performance.now() - started >= 60, 'it continued only after the delay');
    assert.equal(metric(metrics, 'portway_fault_delayed_total', 'filter="fault",listener="l1"'), 1);
  });

  test('percentage 0 delays nothing and stays synchronous', () => {
    const f = build('{ type: fault, delay: { duration: 10s, percentage: 0 } }');
    assert.equal(f.onRequest, undefined, 'a filter that can inject nothing is skipped');
    assert.equal(new FilterChain([f]).runRequest(ex()), undefined);
    const g = build('{ type: fault, delay: { duration: 10s, percentage: 0 }, abort: { percentage: 100 } }');
    assert.equal((g.onRequest!(ex()) as LocalReply).error.code, ErrorCode.FaultAbort);
  });

  test('delay and abort together: the abort comes after the delay', async () => {
    const f = build('{ type: fault, delay: { duration: 30ms }, abort: { percentage: 100 } }');
    const started = performance.now();
    const v = f.onRequest!(ex());
    assert.ok(v instanceof Promise);
    const r = (await v) as LocalReply;
    assert.equal(r.error.code, ErrorCode.FaultAbort);
    assert.ok(performance.now() - started >= 30);
  });

  test('in a chain, later filters run only after the delay', async () => {
    const f = build('{ type: fault, delay: { duration: 30ms } }');
    const log: string[] = [];
    const after: PhaseFilter = {
      kind: 'phase',
      name: 'after',
      onRequest() {
        log.push('after');
        return undefined;
      },
    };
    const chain = new FilterChain([f, after]);
    const v = chain.runRequest(ex());
    assert.deepEqual(log, [], 'nothing after the fault ran yet');
    assert.equal(await v, undefined);
    assert.deepEqual(log, ['after']);
  });

  test('a deadline already passed fails with PW_ERR_TIMEOUT at once', () => {
    const f = build('{ type: fault, delay: { duration: 1s } }');
    const e = ex();
    e.deadline = performance.now() - 1;
    const v = f.onRequest!(e);
    assert.ok(!(v instanceof Promise));
    assert.equal((v as LocalReply).error.code, ErrorCode.Timeout);
  });

  test('a deadline before the end of the delay: waits until the deadline, then PW_ERR_TIMEOUT', async () => {
    const f = build('{ type: fault, delay: { duration: 1h } }');
    const e = ex();
    e.deadline = performance.now() + 40;
    const v = f.onRequest!(e) as Promise<Verdict>;
    assert.ok(v instanceof Promise);
    const r = (await v) as LocalReply;
    assert.equal(r.error.code, ErrorCode.Timeout);
    assert.ok(performance.now() >= e.deadline, 'it failed at the deadline, not before');
  });

  test('a deadline after the delay leaves the request alone', async () => {
    const f = build('{ type: fault, delay: { duration: 20ms } }');
    const e = ex();
    e.deadline = performance.now() + 60_000;
    assert.equal(await f.onRequest!(e), undefined);
  });
});

describe('fault config validation', () => {
  test('percentages are 0-100, durations are durations, codes are known', () => {
    const issues = issuesOf(config('{ type: fault, delay: { duration: soon, percentage: -5 }, abort: { percentage: 101, code: PW_ERR_NOPE } }'));
    hasIssue(issues, 'listeners[0].filters[0].delay.duration', /must be a duration/);
    hasIssue(issues, 'listeners[0].filters[0].delay.percentage', />= 0/);
    hasIssue(issues, 'listeners[0].filters[0].abort.percentage', /<= 100/);
    hasIssue(issues, 'listeners[0].filters[0].abort.code', /must be one of: .*PW_ERR_FAULT_ABORT/);
  });

  test('delay needs a duration; unknown keys are named', () => {
    const issues = issuesOf(config('{ type: fault, delay: { percentage: 50 }, abrot: {} }'));
    hasIssue(issues, 'listeners[0].filters[0].delay.duration', /is required/);
    hasIssue(issues, 'listeners[0].filters[0].abrot', /unknown property \(expected one of: match, delay, abort\)/);
  });

  test('a fault filter with neither delay nor abort is refused', () => {
    hasIssue(issuesOf(config('{ type: fault }')), 'listeners[0].filters[0].delay', /give delay, abort or both/);
  });

  test('match is checked like a route match', () => {
    hasIssue(issuesOf(config('{ type: fault, abort: {}, match: { attributes: { k: {} } } }')), 'listeners[0].filters[0].match.attributes.k', /exactly one of/);
  });

  test('defaults are filled in', () => {
    const cfg = loadConfigText(config('{ type: fault, delay: { duration: 5ms }, abort: {} }'), reg);
    assert.deepEqual(cfg.listeners[0]!.filters[0]!.config, { delay: { duration: '5ms', percentage: 100 }, abort: { percentage: 100, code: 'PW_ERR_FAULT_ABORT' } });
  });
});
