/**
 * The filter chain runner, and the two built-in filters (router, access_log)
 * driven through the FilterFactory contract.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FilterChain, FilterRegistry, aroundPolicy, dispatchOf, invokeOf, rejectionInfo, type AroundPolicy, type Dispatch, type Filter, type FilterBuildContext, type LocalReply, type PhaseFilter, type Verdict } from '../../src/filter';
import { Exchange } from '../../src/exchange';
import { ErrorCode, ProxyError, type ErrorCodeValue } from '../../src/errors';
import { MetricsRegistry } from '../../src/metrics';
import { createLogger } from '../../src/logger';
import type { Cluster } from '../../src/routing/cluster';
import type { Endpoint } from '../../src/routing/endpoint';
import type { ListenerConfig, RouteConfig } from '../../src/config/types';
import { routerFilter, compileStringMatch } from '../../filters/router';
import { accessLogFilter } from '../../filters/access_log';

function exchange(client = '10.1.2.3', attrs: Record<string, string> = {}): Exchange {
  const ex = new Exchange('l1', 'tcp', client, 40000);
  Object.assign(ex.attrs, attrs);
  return ex;
}

function phase(name: string, log: string[], onRequest?: (ex: Exchange) => Verdict | Promise<Verdict>): PhaseFilter {
  return {
    kind: 'phase',
    name,
    onRequest(ex) {
      log.push(name);
      return onRequest?.(ex);
    },
  };
}

function reply(code: ErrorCodeValue = ErrorCode.RateLimited): LocalReply {
  return { error: new ProxyError(code, 'no', { source: 'downstream' }) };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('FilterChain.runRequest', () => {
  test('phase filters run in order', () => {
    const log: string[] = [];
    const chain = new FilterChain([phase('a', log), phase('b', log), phase('c', log)]);
    chain.runRequest(exchange());
    assert.deepEqual(log, ['a', 'b', 'c']);
  });

  test('a synchronous chain returns synchronously, not a promise', () => {
    const log: string[] = [];
    const chain = new FilterChain([phase('a', log), phase('b', log)]);
    const r = chain.runRequest(exchange());
    assert.equal(r, undefined);
    assert.deepEqual(log, ['a', 'b']);
  });

  test('an empty chain continues', () => {
    assert.equal(new FilterChain([]).runRequest(exchange()), undefined);
  });

  test('filters without onRequest and around-policies are not run as phases', () => {
    const log: string[] = [];
    const observer: PhaseFilter = { kind: 'phase', name: 'observer', onComplete: () => log.push('complete') };
    const around: AroundPolicy = {
      kind: 'around',
      name: 'around',
      wrap: (next) => {
        log.push('wrap');
        return next;
      },
    };
    const chain = new FilterChain([observer, phase('a', log), around, phase('b', log)]);
    assert.equal(chain.runRequest(exchange()), undefined);
    assert.deepEqual(log, ['a', 'b']);
  });

  test('an async filter in the middle: the rest run after it settles', async () => {
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const chain = new FilterChain([
      phase('a', log),
      phase('b', log, () => gate.then(() => void log.push('b settled'))),
      phase('c', log),
      phase('d', log),
    ]);
    const r = chain.runRequest(exchange());
    assert.ok(r instanceof Promise, 'returns a promise once a filter does');
    assert.deepEqual(log, ['a', 'b']);
    await tick();
    assert.deepEqual(log, ['a', 'b'], 'c waits for b');
    release();
    assert.equal(await r, undefined);
    assert.deepEqual(log, ['a', 'b', 'b settled', 'c', 'd']);
  });

  test('a filter after an async one may be async too', async () => {
    const log: string[] = [];
    const chain = new FilterChain([
      phase('a', log, async () => undefined),
      phase('b', log, async () => {
        await tick();
        log.push('b settled');
        return undefined;
      }),
      phase('c', log),
    ]);
    assert.equal(await chain.runRequest(exchange()), undefined);
    assert.deepEqual(log, ['a', 'b', 'b settled', 'c']);
  });

  test('a LocalReply stops the chain and is returned synchronously', () => {
    const log: string[] = [];
    const stop = reply();
    const chain = new FilterChain([phase('a', log), phase('b', log, () => stop), phase('c', log)]);
    const r = chain.runRequest(exchange());
    assert.equal(r, stop);
    assert.deepEqual(log, ['a', 'b']);
  });

  test('an async LocalReply stops the chain too', async () => {
    const log: string[] = [];
    const stop = reply(ErrorCode.Forbidden);
    const chain = new FilterChain([phase('a', log, async () => stop), phase('b', log)]);
    assert.equal(await chain.runRequest(exchange()), stop);
    assert.deepEqual(log, ['a']);
  });

  test('a rejected async filter rejects the verdict and stops the chain', async () => {
    const log: string[] = [];
    const chain = new FilterChain([phase('a', log, () => Promise.reject(new Error('boom'))), phase('b', log)]);
    await assert.rejects(async () => chain.runRequest(exchange()), /boom/);
    assert.deepEqual(log, ['a']);
  });

  test('the chain can be run again for the next exchange', async () => {
    const log: string[] = [];
    let n = 0;
    const chain = new FilterChain([phase('a', log, () => (n++ % 2 === 0 ? Promise.resolve(undefined) : undefined)), phase('b', log)]);
    assert.equal(await chain.runRequest(exchange()), undefined);
    assert.equal(chain.runRequest(exchange()), undefined);
    assert.deepEqual(log, ['a', 'b', 'a', 'b']);
  });
});

describe('FilterChain.compose', () => {
  function around(name: string, log: string[]): AroundPolicy {
    return {
      kind: 'around',
      name,
      wrap(next) {
        return async (ex) => {
          log.push(`${name} in`);
          const r = await next(ex);
          log.push(`${name} out`);
          return r;
        };
      },
    };
  }

  test('the first configured around-policy is the outermost', async () => {
    const log: string[] = [];
    const chain = new FilterChain([around('retry', log), phase('p', log), around('timeout', log)]);
    assert.equal(chain.direct, false);
    const call = chain.compose(async () => {
      log.push('upstream');
      return 42;
    });
    assert.equal(await call(exchange()), 42);
    assert.deepEqual(log, ['retry in', 'timeout in', 'upstream', 'timeout out', 'retry out']);
  });

  test('a policy may call the upstream more than once (retry)', async () => {
    let calls = 0;
    const retry: AroundPolicy = {
      kind: 'around',
      name: 'retry',
      wrap: (next) => async (ex) => {
        try {
          return await next(ex);
        } catch {
          return next(ex);
        }
      },
    };
    const call = new FilterChain([retry]).compose(async () => {
      if (calls++ === 0) throw new Error('first fails');
      return 'ok';
    });
    assert.equal(await call(exchange()), 'ok');
    assert.equal(calls, 2);
  });

  test('wrappers are built once, at compose time, not per call', async () => {
    let wraps = 0;
    const p: AroundPolicy = {
      kind: 'around',
      name: 'p',
      wrap: (next) => {
        wraps++;
        return next;
      },
    };
    const call = new FilterChain([p]).compose(async () => 1);
    await call(exchange());
    await call(exchange());
    assert.equal(wraps, 1);
  });

  test('without around-policies the chain is direct and compose returns the terminal', () => {
    const chain = new FilterChain([phase('a', [])]);
    assert.equal(chain.direct, true);
    const terminal = async () => 1;
    assert.equal(chain.compose(terminal), terminal);
  });
});

describe('FilterChain.complete', () => {
  test('calls every onComplete once, in order, phases and around-policies alike', () => {
    const log: string[] = [];
    const filters: Filter[] = [
      { kind: 'phase', name: 'a', onComplete: () => log.push('a') },
      { kind: 'phase', name: 'no-hook', onRequest: () => undefined },
      { kind: 'around', name: 'b', wrap: (n) => n, onComplete: () => log.push('b') },
      { kind: 'phase', name: 'c', onComplete: () => log.push('c') },
    ];
    new FilterChain(filters).complete(exchange());
    assert.deepEqual(log, ['a', 'b', 'c']);
  });

  test('a throwing hook does not stop the others and does not escape', () => {
    const log: string[] = [];
    const seen: Exchange[] = [];
    const ex = exchange();
    const chain = new FilterChain([
      {
        kind: 'phase',
        name: 'a',
        onComplete: (e) => {
          seen.push(e);
          log.push('a');
        },
      },
      {
        kind: 'phase',
        name: 'bad',
        onComplete: () => {
          log.push('bad');
          throw new Error('observer bug');
        },
      },
      { kind: 'phase', name: 'c', onComplete: () => log.push('c') },
    ]);
    assert.doesNotThrow(() => chain.complete(ex));
    assert.deepEqual(log, ['a', 'bad', 'c']);
    assert.equal(seen[0], ex);
  });

  test('a hook marked completesOnErrorOnly runs for a failed exchange only; the others keep their order', () => {
    const log: string[] = [];
    const chain = new FilterChain([
      { kind: 'phase', name: 'a', onComplete: () => log.push('a') },
      { kind: 'phase', name: 'errors', completesOnErrorOnly: true, onComplete: () => log.push('errors') },
      { kind: 'phase', name: 'c', onComplete: () => log.push('c') },
    ]);
    chain.complete(exchange());
    assert.deepEqual(log, ['a', 'c']);
    log.length = 0;
    const failed = exchange();
    failed.error = new ProxyError(ErrorCode.Timeout, 'late', { source: 'upstream' });
    chain.complete(failed);
    assert.deepEqual(log, ['a', 'errors', 'c']);
  });
});

describe('FilterChain: a constant route', () => {
  const only = { name: 'only' } as Cluster;
  const constant = (log: string[]): PhaseFilter => ({
    kind: 'phase',
    name: 'router',
    constantRoute: { route: 'r0', cluster: only },
    onRequest(ex) {
      log.push('router');
      ex.route = 'r0';
      ex.cluster = only;
      return undefined;
    },
  });

  test('as the last phase it is applied without calling the filter, after the others ran', () => {
    const log: string[] = [];
    let seenBefore: Cluster | null | undefined;
    const chain = new FilterChain([
      phase('a', log, (ex) => {
        seenBefore = ex.cluster;
        return undefined;
      }),
      constant(log),
    ]);
    const ex = exchange();
    assert.equal(chain.runRequest(ex), undefined);
    assert.deepEqual(log, ['a']);
    assert.equal(seenBefore, null, 'a filter before the router sees no cluster yet');
    assert.equal(ex.cluster, only);
    assert.equal(ex.route, 'r0');
  });

  test('after an async phase, and not when an earlier filter answers', async () => {
    const log: string[] = [];
    const chain = new FilterChain([phase('a', log, () => tick().then(() => undefined)), constant(log)]);
    const ex = exchange();
    assert.equal(await chain.runRequest(ex), undefined);
    assert.equal(ex.cluster, only);
    const refused = exchange();
    const v = new FilterChain([phase('deny', log, () => reply()), constant(log)]).runRequest(refused);
    assert.equal((v as LocalReply).error.code, ErrorCode.RateLimited);
    assert.equal(refused.cluster, null);
    assert.deepEqual(log, ['a', 'deny']);
  });

  test('not last: it runs as a phase filter like any other', () => {
    const log: string[] = [];
    const chain = new FilterChain([constant(log), phase('b', log)]);
    const ex = exchange();
    chain.runRequest(ex);
    assert.deepEqual(log, ['router', 'b']);
    assert.equal(ex.cluster, only);
  });

  test('the router declares one only for a single unconditional route to one cluster', () => {
    assert.deepEqual(
      { route: router({ to: 'b' }).constantRoute?.route, cluster: router({ to: 'b' }).constantRoute?.cluster.name },
      { route: 'route-0', cluster: 'b' },
    );
    assert.equal(router({ attributes: { key: { prefix: 'u:' } }, to: 'a' }).constantRoute, undefined);
    assert.equal(router({ to: 'a' }, { to: 'b' }).constantRoute, undefined);
    assert.equal(router().constantRoute, undefined);
  });
});

describe('FilterRegistry', () => {
  test('registers factories by type and refuses a type twice', () => {
    const r = new FilterRegistry().register(routerFilter).register(accessLogFilter);
    assert.deepEqual(r.types().sort(), ['access_log', 'router']);
    assert.equal(r.get('router'), routerFilter);
    assert.equal(r.get('nope'), undefined);
    assert.throws(() => r.register(routerFilter), /registered twice/);
  });
});

// ---------------------------------------------------------------------------
// router

/** A stand-in for Cluster: the router only stores and returns it. */
function fakeCluster(name: string): Cluster {
  return { name } as unknown as Cluster;
}

const CLUSTERS: ReadonlyMap<string, Cluster> = new Map(['a', 'b', 'c'].map((n) => [n, fakeCluster(n)]));

function route(r: Partial<RouteConfig> & { to?: string }, i = 0): RouteConfig {
  return {
    name: r.name ?? `route-${i}`,
    sourceCidr: r.sourceCidr ?? [],
    attributes: r.attributes ?? {},
    clusters: r.clusters ?? [{ cluster: r.to ?? 'a', weight: 1 }],
  };
}

function listenerConfig(routes: RouteConfig[]): ListenerConfig {
  return {
    name: 'l1',
    address: '127.0.0.1:7000',
    host: '127.0.0.1',
    port: 7000,
    protocol: 'tcp',
    filters: [],
    routes,
    idleTimeoutMs: 0,
    maxConnections: 0,
    options: {},
    fingerprint: '',
  };
}

const silent = createLogger('silent', { write() {} });

function buildCtx(listener: ListenerConfig, logger = silent): FilterBuildContext {
  return { listener, clusters: CLUSTERS, metrics: new MetricsRegistry(), logger, slot: 0, name: 'router' };
}

function router(...routes: (Partial<RouteConfig> & { to?: string })[]): PhaseFilter {
  const f = routerFilter.create({}, buildCtx(listenerConfig(routes.map((r, i) => route(r, i)))));
  assert.equal(f.kind, 'phase');
  return f as PhaseFilter;
}

/** Runs the router; returns the chosen cluster name, or the error code of its local reply. */
function routeOf(f: PhaseFilter, ex: Exchange): string {
  const v = f.onRequest!(ex);
  assert.ok(!(v instanceof Promise), 'the router is synchronous');
  if (v !== undefined) return v.error.code;
  assert.ok(ex.cluster !== null, 'no verdict but no cluster either');
  return ex.cluster.name;
}

describe('router', () => {
  test('a route without match takes everything', () => {
    const f = router({ to: 'b' });
    const ex = exchange();
    assert.equal(routeOf(f, ex), 'b');
    assert.equal(ex.route, 'route-0');
  });

  test('the first matching route wins', () => {
    const f = router(
      { name: 'users', attributes: { key: { prefix: 'user:' } }, to: 'a' },
      { name: 'user-sessions', attributes: { key: { prefix: 'user:s' } }, to: 'b' },
      { name: 'default', to: 'c' },
    );
    const ex = exchange('10.0.0.1', { key: 'user:session:1' });
    assert.equal(routeOf(f, ex), 'a');
    assert.equal(ex.route, 'users');
    const other = exchange('10.0.0.1', { key: 'order:1' });
    assert.equal(routeOf(f, other), 'c');
    assert.equal(other.route, 'default');
  });

  test('no matching route: a local reply with PW_ERR_NO_ROUTE, no cluster chosen', () => {
    const f = router({ attributes: { key: { exact: 'x' } }, to: 'a' });
    const ex = exchange('10.0.0.1', { key: 'y' });
    const v = f.onRequest!(ex) as Verdict;
    assert.ok(v !== undefined);
    assert.equal(v.error.code, ErrorCode.NoRoute);
    assert.equal(v.error.code, 'PW_ERR_NO_ROUTE');
    assert.equal(v.error.source, 'downstream');
    assert.match(v.error.message, /l1/);
    assert.equal(ex.cluster, null);
  });

  test('a listener without routes routes nothing', () => {
    assert.equal(routeOf(router(), exchange()), 'PW_ERR_NO_ROUTE');
  });

  test('source_cidr with IPv4', () => {
    const f = router({ sourceCidr: ['10.0.0.0/8', '192.168.1.0/24'], to: 'a' }, { to: 'b' });
    assert.equal(routeOf(f, exchange('10.200.3.4')), 'a');
    assert.equal(routeOf(f, exchange('192.168.1.77')), 'a');
    assert.equal(routeOf(f, exchange('192.168.2.77')), 'b');
    assert.equal(routeOf(f, exchange('11.0.0.1')), 'b');
  });

  test('source_cidr with IPv6', () => {
    const f = router({ sourceCidr: ['2001:db8::/32'], to: 'a' }, { sourceCidr: ['::1/128'], to: 'c' }, { to: 'b' });
    assert.equal(routeOf(f, exchange('2001:db8:1:2::3')), 'a');
    assert.equal(routeOf(f, exchange('2001:db9::1')), 'b');
    assert.equal(routeOf(f, exchange('::1')), 'c');
    assert.equal(routeOf(f, exchange('10.0.0.1')), 'b', 'an IPv4 client is not in an IPv6 CIDR');
  });

  test('source_cidr: an IPv4-mapped IPv6 client matches an IPv4 CIDR', () => {
    const f = router({ sourceCidr: ['127.0.0.0/8'], to: 'a' }, { to: 'b' });
    assert.equal(routeOf(f, exchange('::ffff:127.0.0.1')), 'a');
    assert.equal(routeOf(f, exchange('::ffff:10.0.0.1')), 'b');
    assert.equal(routeOf(f, exchange('127.0.0.1')), 'a');
  });

  test('source_cidr and attributes must all hold', () => {
    const f = router({ sourceCidr: ['10.0.0.0/8'], attributes: { command: { exact: 'GET' }, key: { prefix: 'k' } }, to: 'a' }, { to: 'b' });
    assert.equal(routeOf(f, exchange('10.0.0.1', { command: 'GET', key: 'k1' })), 'a');
    assert.equal(routeOf(f, exchange('11.0.0.1', { command: 'GET', key: 'k1' })), 'b');
    assert.equal(routeOf(f, exchange('10.0.0.1', { command: 'SET', key: 'k1' })), 'b');
    assert.equal(routeOf(f, exchange('10.0.0.1', { command: 'GET', key: 'x1' })), 'b');
  });

  describe('attribute matchers', () => {
    const cases: [string, RouteConfig['attributes'][string], (string | undefined)[], (string | undefined)[]][] = [
      ['exact', { exact: 'GET' }, ['GET'], ['get', 'GETX', '', undefined]],
      ['exact empty string', { exact: '' }, [''], ['a', undefined]],
      ['prefix', { prefix: 'user:' }, ['user:', 'user:1'], ['users:1', 'xuser:1', undefined]],
      ['suffix', { suffix: '.v1' }, ['svc.v1', '.v1'], ['svc.v2', 'svc.v1x', undefined]],
      ['regex (unanchored unless anchored)', { regex: '[0-9]{3}' }, ['a123b', '999'], ['12a', undefined]],
      ['anchored regex', { regex: '^ab+c$' }, ['abbbc', 'abc'], ['xabc', 'abcx', undefined]],
      ['present', { present: true }, ['', 'x'], [undefined]],
      ['present: false', { present: false }, [undefined], ['', 'x']],
      ['inverted exact', { exact: 'GET', invert: true }, ['SET', undefined], ['GET']],
      ['inverted prefix', { prefix: 'tmp:', invert: true }, ['user:1', undefined], ['tmp:1']],
      ['inverted present', { present: true, invert: true }, [undefined], ['x']],
      ['invert: false changes nothing', { suffix: 'z', invert: false }, ['az'], ['za', undefined]],
    ];
    for (const [label, m, yes, no] of cases) {
      test(label, () => {
        const f = router({ attributes: { key: m }, to: 'a' }, { to: 'b' });
        for (const v of yes) {
          const attrs: Record<string, string> = v === undefined ? {} : { key: v };
          assert.equal(routeOf(f, exchange('10.0.0.1', attrs)), 'a', `${JSON.stringify(v)} should match ${JSON.stringify(m)}`);
          assert.equal(compileStringMatch(m)(v), true);
        }
        for (const v of no) {
          const attrs: Record<string, string> = v === undefined ? {} : { key: v };
          assert.equal(routeOf(f, exchange('10.0.0.1', attrs)), 'b', `${JSON.stringify(v)} should not match ${JSON.stringify(m)}`);
          assert.equal(compileStringMatch(m)(v), false);
        }
      });
    }
  });

  test('a regex gives the same answer on every request', () => {
    const f = router({ attributes: { key: { regex: 'abc' } }, to: 'a' }, { to: 'b' });
    for (let i = 0; i < 4; i++) assert.equal(routeOf(f, exchange('10.0.0.1', { key: 'xxabcxx' })), 'a');
  });

  test('weighted clusters split roughly by weight', () => {
    const f = router({
      clusters: [
        { cluster: 'a', weight: 3 },
        { cluster: 'b', weight: 1 },
      ],
    });
    const n = 8000;
    const c: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < n; i++) c[routeOf(f, exchange())]!++;
    // Expected 6000:2000; the standard deviation is about 39.
    assert.ok(c['a']! > 5700 && c['a']! < 6300, JSON.stringify(c));
    assert.ok(c['b']! > 1700 && c['b']! < 2300, JSON.stringify(c));
    assert.equal(c['c'], 0);
  });

  test('three weighted clusters all receive traffic', () => {
    const f = router({
      clusters: [
        { cluster: 'a', weight: 1 },
        { cluster: 'b', weight: 1 },
        { cluster: 'c', weight: 2 },
      ],
    });
    const c: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 4000; i++) c[routeOf(f, exchange())]!++;
    assert.ok(c['a']! > 800 && c['a']! < 1200, JSON.stringify(c));
    assert.ok(c['b']! > 800 && c['b']! < 1200, JSON.stringify(c));
    assert.ok(c['c']! > 1800 && c['c']! < 2200, JSON.stringify(c));
  });

  test('a route naming a cluster that does not exist fails at build time', () => {
    assert.throws(() => router({ to: 'missing' }), /unknown cluster 'missing'/);
  });

  test('a router in a chain stops it with no route, and lets it go on with one', () => {
    const log: string[] = [];
    const chain = new FilterChain([router({ sourceCidr: ['10.0.0.0/8'], to: 'a' }), phase('after', log)]);
    const miss = chain.runRequest(exchange('11.0.0.1'));
    assert.equal((miss as LocalReply).error.code, 'PW_ERR_NO_ROUTE');
    assert.deepEqual(log, []);
    const ex = exchange('10.0.0.1');
    assert.equal(chain.runRequest(ex), undefined);
    assert.equal(ex.cluster?.name, 'a');
    assert.deepEqual(log, ['after']);
  });
});

// ---------------------------------------------------------------------------
// access_log

function accessLog(config: Record<string, unknown>): { filter: PhaseFilter; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('info', { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const ctx = { ...buildCtx(listenerConfig([])), logger, name: 'access_log' };
  const filter = accessLogFilter.create(config, ctx) as PhaseFilter;
  return { filter, lines };
}

function served(): Exchange {
  const ex = exchange('10.9.8.7');
  ex.route = 'route-0';
  ex.cluster = fakeCluster('a');
  ex.endpoint = { address: '10.0.0.1:6379' } as unknown as Endpoint;
  ex.info['bytes_in'] = 12;
  return ex;
}

function failed(): Exchange {
  const ex = exchange('10.9.8.7');
  ex.error = new ProxyError(ErrorCode.NoRoute, 'no route matches', { source: 'downstream' });
  return ex;
}

describe('access_log', () => {
  test('one line per finished exchange with who, where and the counters', () => {
    const { filter, lines } = accessLog({});
    new FilterChain([filter]).complete(served());
    assert.equal(lines.length, 1);
    const l = lines[0]!;
    assert.equal(l['level'], 30);
    assert.equal(l['log'], 'access');
    assert.equal(l['protocol'], 'tcp');
    assert.equal(l['client'], '10.9.8.7:40000');
    assert.equal(l['route'], 'route-0');
    assert.equal(l['cluster'], 'a');
    assert.equal(l['upstream'], '10.0.0.1:6379');
    assert.equal(l['bytes_in'], 12);
    assert.equal(typeof l['duration_ms'], 'number');
    assert.equal(l['error'], undefined);
  });

  test('a failed exchange logs at warn with its error code and reason', () => {
    const { filter, lines } = accessLog({});
    filter.onComplete!(failed());
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!['level'], 40);
    assert.equal(lines[0]!['error'], 'PW_ERR_NO_ROUTE');
    assert.equal(lines[0]!['reason'], 'no route matches');
  });

  test('only_errors skips successful exchanges', () => {
    const { filter, lines } = accessLog({ only_errors: true });
    filter.onComplete!(served());
    assert.equal(lines.length, 0);
    filter.onComplete!(failed());
    assert.equal(lines.length, 1);
    // The chain need not call it for a success at all; through the chain the result is the same.
    assert.equal(filter.completesOnErrorOnly, true);
    assert.equal(accessLog({}).filter.completesOnErrorOnly, false);
    assert.equal(accessLog({ sample: 0 }).filter.completesOnErrorOnly, true);
    const chain = new FilterChain([filter]);
    chain.complete(served());
    chain.complete(failed());
    assert.equal(lines.length, 2);
    assert.equal(lines[0]!['error'], 'PW_ERR_NO_ROUTE');
  });

  test('sample 0 logs no success but every failure', () => {
    const { filter, lines } = accessLog({ sample: 0 });
    for (let i = 0; i < 20; i++) filter.onComplete!(served());
    assert.equal(lines.length, 0);
    filter.onComplete!(failed());
    assert.equal(lines.length, 1);
  });

  test('level sets the level of successful exchanges', () => {
    const warn = accessLog({ level: 'warn' });
    warn.filter.onComplete!(served());
    assert.equal(warn.lines[0]!['level'], 40);
    const debug = accessLog({ level: 'debug' });
    debug.filter.onComplete!(served());
    assert.equal(debug.lines.length, 0, 'debug is below the logger level (info)');
  });
});

// ---------------------------------------------------------------------------
// callback-form policies, close hook, lazy attributes

describe('FilterChain.dispatcher (callback form)', () => {
  function intercepting(name: string, log: string[]): AroundPolicy {
    return aroundPolicy(name, (next) => (ex, h) => {
      log.push(`${name} in`);
      next(ex, {
        onResult: (e, v) => {
          log.push(`${name} out`);
          h.onResult(e, v);
        },
        onFailure: (e, err) => {
          log.push(`${name} failed`);
          h.onFailure(e, err);
        },
      });
    });
  }

  test('intercepting policies run outermost first and a synchronous terminal answers synchronously (no promise)', () => {
    const log: string[] = [];
    const chain = new FilterChain([intercepting('a', log), phase('p', log), intercepting('b', log)]);
    const d = chain.dispatcher<number>((_ex, h) => {
      log.push('upstream');
      h.onResult(_ex, 7);
    });
    let got: number | undefined;
    d(exchange(), { onResult: (_e, v) => (got = v), onFailure: () => assert.fail('no failure') });
    assert.equal(got, 7, 'answered before dispatch returned');
    assert.deepEqual(log, ['a in', 'b in', 'upstream', 'b out', 'a out']);
  });

  test('composed once per terminal and cached', () => {
    let intercepts = 0;
    const p = aroundPolicy('p', (next) => {
      intercepts++;
      return next;
    });
    const chain = new FilterChain([p]);
    const terminal: Dispatch<number> = (ex, h) => h.onResult(ex, 1);
    assert.equal(chain.dispatcher(terminal), chain.dispatcher(terminal));
    assert.equal(intercepts, 1);
  });

  test('promise-only and callback policies mix, in both compose() and dispatcher()', async () => {
    const log: string[] = [];
    const promiseOnly: AroundPolicy = {
      kind: 'around',
      name: 'w',
      wrap: (next) => async (ex) => {
        log.push('w in');
        const r = await next(ex);
        log.push('w out');
        return r;
      },
    };
    const chain = new FilterChain([intercepting('a', log), promiseOnly, intercepting('b', log)]);
    assert.equal(await chain.compose(async () => 'x')(exchange()), 'x');
    assert.deepEqual(log, ['a in', 'w in', 'b in', 'b out', 'w out', 'a out']);
    log.length = 0;
    const v = await new Promise<string>((resolve, reject) =>
      chain.dispatcher<string>((ex, h) => h.onResult(ex, 'y'))(exchange(), { onResult: (_e, r) => resolve(r), onFailure: (_e, e) => reject(e) }),
    );
    assert.equal(v, 'y');
    assert.deepEqual(log, ['a in', 'w in', 'b in', 'b out', 'w out', 'a out']);
  });

  test('a failure travels out through onFailure; a throwing promise terminal becomes a ProxyError', async () => {
    const log: string[] = [];
    const chain = new FilterChain([intercepting('a', log)]);
    const err = await new Promise<ProxyError>((resolve) =>
      chain.dispatcher<number>(
        dispatchOf<number>(() => {
          throw new Error('sync boom');
        }),
      )(exchange(), { onResult: () => assert.fail('no result'), onFailure: (_e, e) => resolve(e) }),
    );
    assert.ok(err instanceof ProxyError);
    assert.match(err.message, /sync boom/);
    assert.deepEqual(log, ['a in', 'a failed']);
    await assert.rejects(invokeOf<number>((ex, h) => h.onFailure(ex, reply().error))(exchange()), /no/);
  });

  test('rejectionInfo says how to render a rejection', () => {
    const rl = rejectionInfo(new ProxyError(ErrorCode.RateLimited, 'x', { retryAfterMs: 12.2 }));
    assert.deepEqual(rl, { throttled: true, overloaded: false, timedOut: false, retryAfterMs: 13 });
    assert.equal(rejectionInfo(new ProxyError(ErrorCode.CircuitOpen, 'x')).overloaded, true);
    assert.equal(rejectionInfo(new ProxyError(ErrorCode.Timeout, 'x')).timedOut, true);
    assert.equal(rejectionInfo(new ProxyError(ErrorCode.Overflow, 'x')).retryAfterMs, undefined);
  });
});

describe('FilterChain.close', () => {
  test("calls every filter's close once, even when one throws", () => {
    const log: string[] = [];
    const chain = new FilterChain([
      { kind: 'phase', name: 'a', close: () => log.push('a') },
      {
        kind: 'phase',
        name: 'bad',
        close: () => {
          log.push('bad');
          throw new Error('close bug');
        },
      },
      { kind: 'phase', name: 'no-close' },
      aroundPolicy('c', (n) => n, { close: () => log.push('c') }),
    ]);
    chain.close();
    chain.close();
    assert.deepEqual(log, ['a', 'bad', 'c']);
  });
});

describe('Exchange attributes and timeouts', () => {
  test('attr() reads attrs first, then the lazy source; nothing is computed until asked', () => {
    let asked = 0;
    const ex = exchange();
    ex.attributeSource = {
      attribute(_e, name) {
        asked++;
        return name === 'topic' ? 'orders' : undefined;
      },
    };
    assert.equal(asked, 0);
    assert.equal(ex.attr('topic'), 'orders');
    ex.attrs['topic'] = 'set-eagerly';
    assert.equal(ex.attr('topic'), 'set-eagerly');
    assert.equal(ex.attr('nope'), undefined);
    assert.equal(asked, 2);
  });

  test('reportTimeout counts once per try against the endpoint, in its own cluster', () => {
    const results: [string, boolean][] = [];
    const mk = (name: string) => ({ name, reportResult: (ep: { address: string }, ok: boolean) => results.push([`${name}/${ep.address}`, ok]) }) as unknown as Cluster;
    const ex = exchange();
    ex.reportTimeout(); // no endpoint yet: nothing
    const ep = { address: 'e1', rqError: { inc() {} } } as unknown as Endpoint;
    ex.cluster = mk('routed');
    ex.endpointCluster = mk('replicas');
    ex.endpoint = ep;
    ex.attempts = 1;
    ex.reportTimeout();
    ex.reportTimeout();
    ex.attempts = 2;
    ex.reportTimeout();
    assert.deepEqual(results, [
      ['replicas/e1', false],
      ['replicas/e1', false],
    ]);
  });
});
