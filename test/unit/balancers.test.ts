/**
 * Load balancers: which endpoint each pick returns, how `exclude` (endpoints
 * already tried for this request) is honoured, and null when nothing is left.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint } from '../../src/routing/endpoint';
import { MetricsRegistry } from '../../src/metrics';
import { RoundRobin, RandomLb, LeastRequest, WeightedRoundRobin, createBalancer, type LoadBalancer } from '../../src/routing/balancers';
import { mulberry32 as seeded } from '../helpers/random';

function endpoints(...weights: number[]): Endpoint[] {
  const metrics = new MetricsRegistry();
  return weights.map((w, i) => new Endpoint('c', '10.0.0.' + (i + 1), 6379, w, `10.0.0.${i + 1}:6379`, metrics));
}

function pickMany(lb: LoadBalancer, hosts: readonly Endpoint[], n: number, exclude: ReadonlySet<Endpoint> | null = null): Endpoint[] {
  const out: Endpoint[] = [];
  for (let i = 0; i < n; i++) {
    const e = lb.pick(hosts, exclude);
    assert.ok(e !== null, `pick ${i} returned null`);
    out.push(e);
  }
  return out;
}

function counts(picks: Endpoint[], hosts: readonly Endpoint[]): number[] {
  return hosts.map((h) => picks.filter((p) => p === h).length);
}

/** A deterministic rand() cycling through the given values. */
function seq(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

const ALL: [string, () => LoadBalancer][] = [
  ['round_robin', () => new RoundRobin()],
  ['random', () => new RandomLb()],
  ['least_request', () => new LeastRequest()],
  ['weighted', () => new WeightedRoundRobin()],
];

describe('every balancer', () => {
  for (const [name, make] of ALL) {
    test(`${name}: null when every endpoint is excluded`, () => {
      const hosts = endpoints(1, 2, 3);
      const lb = make();
      for (let i = 0; i < 5; i++) assert.equal(lb.pick(hosts, new Set(hosts)), null);
    });

    test(`${name}: null for an empty list`, () => {
      assert.equal(make().pick([], null), null);
      assert.equal(make().pick([], new Set()), null);
    });

    test(`${name}: never returns an excluded endpoint`, () => {
      const hosts = endpoints(1, 1, 1, 1);
      const exclude = new Set([hosts[0]!, hosts[2]!]);
      const lb = make();
      for (const e of pickMany(lb, hosts, 200, exclude)) assert.ok(!exclude.has(e), `picked excluded ${e.address}`);
    });

    test(`${name}: the only endpoint left is returned`, () => {
      const hosts = endpoints(1, 5, 1);
      const lb = make();
      for (const e of pickMany(lb, hosts, 20, new Set([hosts[0]!, hosts[1]!]))) assert.equal(e, hosts[2]);
    });
  }

  test('createBalancer maps each policy to its balancer', () => {
    assert.ok(createBalancer('round_robin') instanceof RoundRobin);
    assert.ok(createBalancer('random') instanceof RandomLb);
    assert.ok(createBalancer('least_request') instanceof LeastRequest);
    assert.ok(createBalancer('weighted') instanceof WeightedRoundRobin);
  });
});

describe('round_robin', () => {
  test('takes each endpoint in turn', () => {
    const hosts = endpoints(1, 1, 1);
    const picks = pickMany(new RoundRobin(), hosts, 9);
    assert.deepEqual(picks, [...hosts, ...hosts, ...hosts]);
  });

  test('cycles evenly and ignores weights', () => {
    const hosts = endpoints(10, 1, 1, 1);
    assert.deepEqual(counts(pickMany(new RoundRobin(), hosts, 400), hosts), [100, 100, 100, 100]);
  });

  test('skips excluded endpoints and alternates between the rest', () => {
    const hosts = endpoints(1, 1, 1);
    const picks = pickMany(new RoundRobin(), hosts, 6, new Set([hosts[1]!]));
    assert.deepEqual(picks, [hosts[0], hosts[2], hosts[0], hosts[2], hosts[0], hosts[2]]);
  });

  test('adapts when the endpoint list shrinks', () => {
    const hosts = endpoints(1, 1, 1);
    const lb = new RoundRobin();
    pickMany(lb, hosts, 2);
    const two = hosts.slice(0, 2);
    assert.deepEqual(counts(pickMany(lb, two, 10), two), [5, 5]);
  });
});

describe('random', () => {
  test('covers every endpoint', () => {
    const hosts = endpoints(1, 1, 1, 1, 1);
    const c = counts(pickMany(new RandomLb(seeded(1)), hosts, 1000), hosts);
    for (const n of c) assert.ok(n > 100 && n < 300, `uneven: ${c.join(',')}`);
  });

  test('covers every endpoint with Math.random', () => {
    const hosts = endpoints(1, 1, 1);
    const c = counts(pickMany(new RandomLb(), hosts, 600), hosts);
    for (const n of c) assert.ok(n > 0, `never picked: ${c.join(',')}`);
  });

  test('an excluded draw moves on to the next endpoint', () => {
    const hosts = endpoints(1, 1, 1);
    // rand 0 draws hosts[0]; excluded, so the next one.
    assert.equal(new RandomLb(seq(0)).pick(hosts, new Set([hosts[0]!])), hosts[1]);
    // rand 0.99 draws hosts[2]; excluded, wraps to hosts[0].
    assert.equal(new RandomLb(seq(0.99)).pick(hosts, new Set([hosts[2]!])), hosts[0]);
  });

  test('covers the remaining endpoints when some are excluded', () => {
    const hosts = endpoints(1, 1, 1, 1);
    const c = counts(pickMany(new RandomLb(seeded(7)), hosts, 400, new Set([hosts[1]!])), hosts);
    assert.equal(c[1], 0);
    for (const i of [0, 2, 3]) assert.ok(c[i]! > 0, `never picked ${i}: ${c.join(',')}`);
  });
});

describe('least_request', () => {
  test('of two endpoints, always the one with fewer active requests', () => {
    const hosts = endpoints(1, 1);
    hosts[0]!.rqActive = 5;
    hosts[1]!.rqActive = 1;
    const lb = new LeastRequest(seeded(3));
    assert.deepEqual(counts(pickMany(lb, hosts, 100), hosts), [0, 100]);
    hosts[0]!.rqActive = 0;
    assert.deepEqual(counts(pickMany(lb, hosts, 100), hosts), [100, 0]);
  });

  test('never picks the busiest of several endpoints, and favours the idlest', () => {
    const hosts = endpoints(1, 1, 1, 1);
    hosts.forEach((h, i) => (h.rqActive = i * 10)); // 0, 10, 20, 30
    const c = counts(pickMany(new LeastRequest(seeded(11)), hosts, 1200), hosts);
    assert.equal(c[3], 0, `busiest picked: ${c.join(',')}`);
    // The idlest wins every pair it is in: half of all picks.
    assert.ok(c[0]! > 500, `idlest not favoured: ${c.join(',')}`);
    assert.ok(c[0]! > c[1]! && c[1]! > c[2]!, `not ordered by load: ${c.join(',')}`);
  });

  test('accounts for weight: active requests per unit of weight', () => {
    const hosts = endpoints(4, 1);
    hosts[0]!.rqActive = 4; // 1 per unit of weight
    hosts[1]!.rqActive = 2; // 2 per unit of weight
    assert.deepEqual(counts(pickMany(new LeastRequest(seeded(5)), hosts, 50), hosts), [50, 0]);
    hosts[0]!.rqActive = 12; // 3 per unit of weight
    assert.deepEqual(counts(pickMany(new LeastRequest(seeded(5)), hosts, 50), hosts), [0, 50]);
  });

  test('an excluded idle endpoint is not picked; the less busy of the rest is', () => {
    const hosts = endpoints(1, 1, 1);
    hosts[0]!.rqActive = 0;
    hosts[1]!.rqActive = 9;
    hosts[2]!.rqActive = 3;
    const picks = pickMany(new LeastRequest(seeded(9)), hosts, 50, new Set([hosts[0]!]));
    assert.deepEqual(counts(picks, hosts), [0, 0, 50]);
  });

  test('with equal load, both candidates of a draw get picked over time', () => {
    const hosts = endpoints(1, 1, 1);
    const c = counts(pickMany(new LeastRequest(seeded(2)), hosts, 300), hosts);
    for (const n of c) assert.ok(n > 0, `never picked: ${c.join(',')}`);
  });
});

describe('weighted (smooth weighted round robin)', () => {
  test('weights 5,1,1 give exactly 5:1:1 over 7 picks', () => {
    const hosts = endpoints(5, 1, 1);
    assert.deepEqual(counts(pickMany(new WeightedRoundRobin(), hosts, 7), hosts), [5, 1, 1]);
  });

  test('exact proportions over many rounds', () => {
    const hosts = endpoints(5, 1, 1);
    assert.deepEqual(counts(pickMany(new WeightedRoundRobin(), hosts, 700), hosts), [500, 100, 100]);
    const other = endpoints(3, 2);
    assert.deepEqual(counts(pickMany(new WeightedRoundRobin(), other, 500), other), [300, 200]);
  });

  test('interleaves instead of sending a burst to the heavy endpoint', () => {
    const hosts = endpoints(5, 1, 1);
    const [a, b, c] = hosts;
    const picks = pickMany(new WeightedRoundRobin(), hosts, 7);
    assert.deepEqual(picks, [a, a, b, a, c, a, a]);
    let run = 0;
    let longest = 0;
    for (let i = 0; i < picks.length; i++) {
      run = i > 0 && picks[i] === picks[i - 1] ? run + 1 : 1;
      longest = Math.max(longest, run);
    }
    assert.ok(longest <= 2, `a run of ${longest} picks of one endpoint`);
  });

  test('equal weights behave like round robin', () => {
    const hosts = endpoints(2, 2, 2);
    assert.deepEqual(pickMany(new WeightedRoundRobin(), hosts, 6), [...hosts, ...hosts]);
  });

  test('an excluded endpoint is skipped and the rest keep their ratio', () => {
    const hosts = endpoints(5, 2, 1);
    const picks = pickMany(new WeightedRoundRobin(), hosts, 30, new Set([hosts[0]!]));
    assert.deepEqual(counts(picks, hosts), [0, 20, 10]);
  });
});
