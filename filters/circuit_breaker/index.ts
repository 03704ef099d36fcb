/**
 * circuit_breaker: per-cluster limits and an error breaker (Envoy's circuit
 * breakers plus a Hystrix-style breaker), around the upstream call.
 *
 * One breaker per cluster, shared by every listener and filter instance that
 * guards it (state.ts); its state shows in GET /clusters under
 * `circuit_breaker` and in /metrics (portway_circuit_state{cluster}: 0
 * closed, 1 open, 2 half-open; portway_circuit_rejected_total{cluster,
 * reason}; portway_circuit_opened_total{cluster}). When listeners configure
 * the same cluster differently, the settings of the filter built last (in
 * config order, newest generation) apply once it has served a request.
 *
 * Which cluster: the one the router chose for the exchange (ex.cluster);
 * `clusters` narrows the breaker to some of them.
 *
 * Chain order: around-policies run first-in-config outermost. Put the
 * breaker after retry (`timeout`, `retry`, `circuit_breaker`) so each try is
 * judged and counted, and a try refused by an open breaker ends the retries.
 * `max_retries` limits the retries in flight to the cluster made by retry
 * filters, wherever they sit in the chain.
 */
import { Type, type Static } from '@sinclair/typebox';
import { aroundPolicy, type AroundPolicy, type Dispatch, type FilterFactory } from '../../src/filter';
import type { ConfigIssue } from '../../src/config/validate';
import type { Cluster } from '../../src/routing/cluster';
import { Duration, Name } from '../../src/config/schema';
import { parseDuration } from '../../src/util/duration';
import { ClusterBreaker, type CircuitBreakerSettings } from './cluster-breaker';
import { resilienceOf } from './state';

const Limit = (description: string) => Type.Optional(Type.Integer({ minimum: 1, description: `${description} Unlimited when not set.` }));

const CircuitBreakerConfig = Type.Object(
  {
    clusters: Type.Optional(
      Type.Array(Name('Cluster name.'), {
        minItems: 1,
        uniqueItems: true,
        description: 'Guard only these clusters. By default every cluster this listener routes a request to.',
      }),
    ),
    max_connections: Limit(
      'Refuse a request (PW_ERR_OVERFLOW) while the cluster has this many upstream connections open, counted over every listener. Meant for protocols that open a connection per request (tcp); with a multiplexing protocol (redis) set it above the pool size.',
    ),
    max_requests: Limit('Requests in flight through the breaker at once (for tcp: connects in progress). Beyond it a request waits (max_pending_requests) or is refused with PW_ERR_OVERFLOW.'),
    max_pending_requests: Type.Optional(
      Type.Integer({
        minimum: 0,
        default: 0,
        description: 'Requests that may wait, in order and until their deadline, for a place under max_requests; more are refused with PW_ERR_OVERFLOW. 0: none wait.',
      }),
    ),
    max_retries: Limit('Retries in flight to the cluster at once (made by retry filters); a retry beyond it is not made.'),
    consecutive_failures: Type.Optional(
      Type.Integer({ minimum: 0, default: 5, description: 'Upstream failures in a row that open the breaker. 0: only error_rate opens it.' }),
    ),
    error_rate: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 1,
        description: 'Open the breaker when at least this share (0-1] of the requests in `window` failed, once the window holds min_requests. Off when not set.',
      }),
    ),
    window: Type.Optional(Duration('The sliding window error_rate is measured over (it moves in tenths).', '10s')),
    min_requests: Type.Optional(Type.Integer({ minimum: 1, default: 20, description: 'Requests the window must hold before error_rate is judged.' })),
    open_duration: Type.Optional(Duration('How long the breaker stays open before it lets probes through (half-open).', '5s')),
    max_open_duration: Type.Optional(
      Duration('Each time a probe fails the breaker opens again for twice as long, up to this. Defaults to open_duration (a fixed open duration).'),
    ),
    half_open_probes: Type.Optional(
      Type.Integer({ minimum: 1, default: 1, description: 'Requests let through while half-open; the breaker closes when all of them succeed, opens again when one fails.' }),
    ),
  },
  { additionalProperties: false },
);

type CircuitBreakerConfig = Static<typeof CircuitBreakerConfig>;

/** Build order of circuit_breaker filters: the newest filter's settings win for a shared breaker. */
let buildSeq = 0;

function settingsOf(c: CircuitBreakerConfig): CircuitBreakerSettings {
  const openMs = parseDuration(c.open_duration ?? '5s');
  return Object.freeze({
    consecutiveFailures: c.consecutive_failures ?? 5,
    errorRate: c.error_rate ?? 0,
    windowMs: parseDuration(c.window ?? '10s'),
    minRequests: c.min_requests ?? 20,
    openDurationMs: openMs,
    maxOpenDurationMs: Math.max(openMs, c.max_open_duration !== undefined ? parseDuration(c.max_open_duration) : openMs),
    halfOpenProbes: c.half_open_probes ?? 1,
    maxConnections: c.max_connections ?? Infinity,
    maxRequests: c.max_requests ?? Infinity,
    maxPendingRequests: c.max_requests !== undefined ? (c.max_pending_requests ?? 0) : 0,
    maxRetries: c.max_retries ?? Infinity,
  });
}

function check(c: CircuitBreakerConfig, ctx: { clusters: ReadonlySet<string> }): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  (c.clusters ?? []).forEach((n, i) => {
    if (!ctx.clusters.has(n)) issues.push({ path: `clusters[${i}]`, message: `unknown cluster '${n}'` });
  });
  if (c.window !== undefined && parseDuration(c.window) <= 0) issues.push({ path: 'window', message: 'must be greater than 0' });
  const openMs = parseDuration(c.open_duration ?? '5s');
  if (openMs <= 0) issues.push({ path: 'open_duration', message: 'must be greater than 0' });
  if (c.max_open_duration !== undefined && parseDuration(c.max_open_duration) < openMs) {
    issues.push({ path: 'max_open_duration', message: 'must not be shorter than open_duration' });
  }
  if (c.max_pending_requests !== undefined && c.max_pending_requests > 0 && c.max_requests === undefined) {
    issues.push({ path: 'max_pending_requests', message: 'requests only wait for a place under max_requests: set max_requests too' });
  }
  if ((c.consecutive_failures ?? 5) === 0 && c.error_rate === undefined) {
    issues.push({ path: 'consecutive_failures', message: 'with consecutive_failures 0 and no error_rate the breaker never opens: set error_rate, or a consecutive_failures above 0' });
  }
  return issues;
}

export const circuitBreakerFilter: FilterFactory<CircuitBreakerConfig> = {
  type: 'circuit_breaker',
  description: 'Per-cluster limits (connections, requests, pending, retries) and a breaker that fails fast with PW_ERR_CIRCUIT_OPEN while the cluster keeps failing.',
  schema: CircuitBreakerConfig,
  check: (c, ctx) => check(c, ctx),
  create(config, ctx): AroundPolicy {
    const settings = settingsOf(config);
    const seq = ++buildSeq;
    const only = config.clusters !== undefined ? new Set(config.clusters) : null;
    const log = ctx.logger.child({ filter: ctx.name });
    const breakerOf = (cluster: Cluster): ClusterBreaker => {
      const shared = resilienceOf(cluster);
      if (shared.breaker === null) shared.breaker = new ClusterBreaker(cluster, shared, settings, ctx.metrics, log);
      return shared.breaker;
    };
    // Known clusters get their breaker now, so /clusters and /metrics show it before the first request.
    const named = new Set<string>(config.clusters ?? ctx.listener.routes.flatMap((r) => r.clusters.map((c) => c.cluster)));
    for (const n of named) {
      const c = ctx.clusters.get(n);
      if (c !== undefined) breakerOf(c);
    }
    // The last cluster seen and its breaker: most chains send to one cluster, so most requests skip the map.
    let lastCluster: Cluster | null = null;
    let lastBreaker: ClusterBreaker | null = null;
    return aroundPolicy(
      ctx.name,
      <R>(next: Dispatch<R>): Dispatch<R> =>
        (ex, h) => {
          const cluster = ex.cluster;
          if (cluster === null || (only !== null && !only.has(cluster.name))) {
            next(ex, h);
            return;
          }
          let b: ClusterBreaker;
          if (cluster === lastCluster) b = lastBreaker!;
          else {
            b = breakerOf(cluster);
            lastCluster = cluster;
            lastBreaker = b;
          }
          b.use(settings, seq);
          b.dispatch(ex, next, h);
        },
    );
  },
};
