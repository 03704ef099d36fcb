import type { Endpoint } from './endpoint';
import type { LbPolicy } from '../config/types';

/**
 * A load balancer picks one endpoint from the usable ones, skipping those in
 * `exclude` (already tried for this request). Returns null when none is left.
 */
export interface LoadBalancer {
  pick(hosts: readonly Endpoint[], exclude: ReadonlySet<Endpoint> | null): Endpoint | null;
}

/** Each endpoint in turn; weights are ignored. */
export class RoundRobin implements LoadBalancer {
  private next = 0;
  pick(hosts: readonly Endpoint[], exclude: ReadonlySet<Endpoint> | null): Endpoint | null {
    const n = hosts.length;
    for (let i = 0; i < n; i++) {
      const h = hosts[this.next++ % n]!;
      if (this.next >= 0x3fffffff) this.next = 0;
      if (exclude === null || !exclude.has(h)) return h;
    }
    return null;
  }
}

/** Uniformly at random; weights are ignored. */
export class RandomLb implements LoadBalancer {
  constructor(private readonly rand: () => number = Math.random) {}
  pick(hosts: readonly Endpoint[], exclude: ReadonlySet<Endpoint> | null): Endpoint | null {
    const n = hosts.length;
    if (n === 0) return null;
    const start = Math.floor(this.rand() * n);
    for (let i = 0; i < n; i++) {
      const h = hosts[(start + i) % n]!;
      if (exclude === null || !exclude.has(h)) return h;
    }
    return null;
  }
}

/**
 * Power of two choices: two random candidates, the one with fewer active
 * requests per unit of weight wins. Near least-loaded without a scan.
 */
export class LeastRequest implements LoadBalancer {
  constructor(private readonly rand: () => number = Math.random) {}
  pick(hosts: readonly Endpoint[], exclude: ReadonlySet<Endpoint> | null): Endpoint | null {
    const candidates = exclude === null ? hosts : hosts.filter((h) => !exclude.has(h));
    const n = candidates.length;
    if (n === 0) return null;
    if (n === 1) return candidates[0]!;
    const a = candidates[Math.floor(this.rand() * n)]!;
    let b = candidates[Math.floor(this.rand() * (n - 1))]!;
    if (b === a) b = candidates[n - 1]!;
    return a.rqActive / a.weight <= b.rqActive / b.weight ? a : b;
  }
}

/**
 * Smooth weighted round robin (as in nginx): each pick adds every weight to
 * its endpoint's running score, takes the highest, and subtracts the total
 * from it. Weights 5,1,1 give a,a,b,a,c,a,a rather than a,a,a,a,a,b,c.
 */
export class WeightedRoundRobin implements LoadBalancer {
  pick(hosts: readonly Endpoint[], exclude: ReadonlySet<Endpoint> | null): Endpoint | null {
    let best: Endpoint | null = null;
    let total = 0;
    for (let i = 0; i < hosts.length; i++) {
      const h = hosts[i]!;
      if (exclude !== null && exclude.has(h)) continue;
      h.lbCurrent += h.weight;
      total += h.weight;
      if (best === null || h.lbCurrent > best.lbCurrent) best = h;
    }
    if (best !== null) best.lbCurrent -= total;
    return best;
  }
}

export function createBalancer(policy: LbPolicy): LoadBalancer {
  switch (policy) {
    case 'round_robin':
      return new RoundRobin();
    case 'random':
      return new RandomLb();
    case 'least_request':
      return new LeastRequest();
    case 'weighted':
      return new WeightedRoundRobin();
  }
}
