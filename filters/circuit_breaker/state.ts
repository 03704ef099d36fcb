/**
 * What the resilience filters share about one cluster: the circuit breaker
 * and the retry counts it limits. Keyed by the Cluster object, so every
 * listener and filter naming a cluster in a generation sees the same state,
 * and a reload keeps it exactly when it keeps the Cluster (its config did
 * not change); a rebuilt cluster starts afresh.
 */
import type { Cluster } from '../../src/routing/cluster';
import type { ClusterBreaker } from './cluster-breaker';

export class ClusterResilience {
  /** Exchanges in flight through retry filters: the base of the retry budget. */
  requests = 0;
  /** Retries in flight: decided and not settled yet (backing off or being tried). */
  retries = 0;
  /** The circuit breaker's max_retries for this cluster; Infinity without one. */
  maxRetries = Infinity;
  /** Told when a retry is refused because `retries` reached `maxRetries` (the breaker counts it). */
  onRetryOverflow: (() => void) | null = null;
  /** The cluster's circuit breaker, once a circuit_breaker filter names the cluster. */
  breaker: ClusterBreaker | null = null;
}

const byCluster = new WeakMap<Cluster, ClusterResilience>();

export function resilienceOf(cluster: Cluster): ClusterResilience {
  let s = byCluster.get(cluster);
  if (s === undefined) {
    s = new ClusterResilience();
    byCluster.set(cluster, s);
  }
  return s;
}
