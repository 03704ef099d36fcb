/**
 * The original_dst cluster: each request (L4: each connection) goes to the
 * address its client was connecting to before iptables redirected it to
 * Portway. After the router picked such a cluster, the original_dst_cluster
 * phase filter (last in the chain of an original_dst listener) replaces it
 * with a derived cluster whose one static endpoint is that address. The
 * derived cluster is an ordinary Cluster, so every protocol works unchanged:
 * L4 passthrough, and L7 protocols with their pooling and multiplexing per
 * destination (all Redis clients talking to 10.0.0.5:6379 share its upstream
 * links). Derived clusters are kept per destination, at most MAX_DERIVED per
 * original_dst cluster (the least recently used idle one goes first, with its
 * metric series).
 */
import type { Exchange } from '../exchange';
import { ErrorCode, ProxyError } from '../errors';
import type { LocalReply, PhaseFilter, Verdict } from '../filter';
import { Cluster } from '../routing/cluster';
import type { MetricsRegistry } from '../metrics';
import type { Logger } from '../logger';

const MAX_DERIVED = 256;

interface Derived {
  cluster: Cluster;
  ready: boolean;
  whenReady: Promise<void>;
}

const byParent = new WeakMap<Cluster, Map<string, Derived>>();

const CLUSTER_SERIES = ['portway_cluster_cx_overflow_total', 'portway_cluster_no_healthy_total', 'portway_cluster_cx_active', 'portway_cluster_endpoints', 'portway_cluster_endpoints_healthy'];
const ENDPOINT_SERIES = ['portway_upstream_cx_total', 'portway_upstream_cx_connect_fail_total', 'portway_upstream_rq_total', 'portway_upstream_rq_error_total', 'portway_upstream_health'];

function derive(parent: Cluster, text: string, ip: string, port: number, metrics: MetricsRegistry, log: Logger): Derived {
  let m = byParent.get(parent);
  if (m === undefined) {
    m = new Map();
    byParent.set(parent, m);
  }
  const hit = m.get(text);
  if (hit !== undefined) {
    // Most recently used last (Map keeps insertion order).
    m.delete(text);
    m.set(text, hit);
    return hit;
  }
  if (m.size >= MAX_DERIVED) evict(m, metrics);
  const name = `${parent.name}/${text}`;
  const cluster = new Cluster(
    {
      ...parent.config,
      name,
      originalDst: false,
      endpoints: [{ address: text, host: ip, port, weight: 1 }],
      discovery: null,
      component: null,
      sharding: null,
      active: null,
    },
    metrics,
    log.child({ cluster: name }),
  );
  const d: Derived = { cluster, ready: false, whenReady: cluster.ready };
  void cluster.ready.then(() => (d.ready = true));
  m.set(text, d);
  return d;
}

function evict(m: Map<string, Derived>, metrics: MetricsRegistry): void {
  for (const [k, d] of m) {
    if (m.size < MAX_DERIVED) return;
    if (d.cluster.cxActive > 0) continue;
    m.delete(k);
    d.cluster.close();
    const c = d.cluster.name;
    for (const n of CLUSTER_SERIES) metrics.remove(n, { cluster: c });
    for (const e of d.cluster.endpoints) for (const n of ENDPOINT_SERIES) metrics.remove(n, { cluster: c, endpoint: e.address });
  }
}

/** The clusters derived so far from an original_dst cluster (one per destination). */
export function derivedClusters(parent: Cluster): Cluster[] {
  return [...(byParent.get(parent)?.values() ?? [])].map((d) => d.cluster);
}

/**
 * The phase filter an original_dst listener puts last in its chain: when the
 * router chose an original_dst cluster, send the exchange to the cluster of
 * its original destination. A connection without one (a direct connection
 * served with original_dst_direct: serve) is refused with PW_ERR_NO_ROUTE.
 */
export function originalDstClusterFilter(metrics: MetricsRegistry, log: Logger): PhaseFilter {
  const noDst: LocalReply = {
    error: new ProxyError(ErrorCode.NoRoute, 'the route leads to an original_dst cluster and this connection has no original destination (it was not redirected)', { source: 'downstream' }),
  };
  return {
    kind: 'phase',
    name: 'original_dst_cluster',
    onRequest(ex: Exchange): Verdict | Promise<Verdict> {
      const c = ex.cluster;
      if (c === null || c.config.originalDst !== true) return undefined;
      const ip = ex.attrs['original_dst_ip'];
      const port = ex.attrs['original_dst_port'];
      if (ip === undefined || port === undefined) return noDst;
      const d = derive(c, (ex.info['original_dst'] as string | undefined) ?? `${ip}:${port}`, ip, Number(port), metrics, log);
      ex.cluster = d.cluster;
      // Only the first request to a new destination waits (the endpoint list is built asynchronously).
      return d.ready ? undefined : d.whenReady.then(() => undefined);
    },
  };
}
