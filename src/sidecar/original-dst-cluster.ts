/**
 * The original_dst cluster: its endpoint is, per connection, the address the
 * client was connecting to before iptables redirected it to Portway (TCP
 * passthrough for ports no rule claims). Endpoints are made on first use and
 * kept (with their counters) while used; idle ones beyond MAX_KEPT are
 * dropped, so a sidecar talking to many destinations keeps bounded state.
 */
import type { OnReadOpts } from 'node:net';
import type { Exchange } from '../exchange';
import { ErrorCode, ProxyError } from '../errors';
import type { Cluster } from '../routing/cluster';
import { connectEndpoint, type UpstreamConnection } from '../routing/connect';
import { Endpoint } from '../routing/endpoint';
import type { MetricsRegistry } from '../metrics';

const MAX_KEPT = 512;

const byCluster = new WeakMap<Cluster, Map<string, Endpoint>>();

const ENDPOINT_SERIES = ['portway_upstream_cx_total', 'portway_upstream_cx_connect_fail_total', 'portway_upstream_rq_total', 'portway_upstream_rq_error_total', 'portway_upstream_health'];

function endpointFor(cluster: Cluster, metrics: MetricsRegistry, ip: string, port: number, text: string): Endpoint {
  let m = byCluster.get(cluster);
  if (m === undefined) {
    m = new Map();
    byCluster.set(cluster, m);
  }
  let ep = m.get(text);
  if (ep !== undefined) {
    // Most recently used last: Map keeps insertion order.
    m.delete(text);
    m.set(text, ep);
    return ep;
  }
  if (m.size >= MAX_KEPT) {
    for (const [k, old] of m) {
      if (m.size < MAX_KEPT) break;
      if (old.cxActive > 0) continue;
      m.delete(k);
      for (const n of ENDPOINT_SERIES) metrics.remove(n, { cluster: cluster.name, endpoint: old.address });
    }
  }
  ep = new Endpoint(cluster.name, ip, port, 1, 'original_dst', metrics);
  m.set(text, ep);
  return ep;
}

/** The endpoints an original_dst cluster made so far (for /clusters). */
export function originalDstEndpoints(cluster: Cluster): Endpoint[] {
  return [...(byCluster.get(cluster)?.values() ?? [])];
}

/**
 * Connects to the exchange's original destination (attributes set by the
 * original_dst listener). One attempt: there is no other endpoint to fail
 * over to. Fails with PW_ERR_NO_ROUTE when the connection has no original
 * destination (a direct connection served by original_dst_direct: serve).
 */
export async function connectOriginalDst(cluster: Cluster, metrics: MetricsRegistry, ex: Exchange | undefined, deadline: number, onread?: OnReadOpts): Promise<UpstreamConnection> {
  const ip = ex?.attrs['original_dst_ip'];
  const portText = ex?.attrs['original_dst_port'];
  if (ip === undefined || portText === undefined) {
    throw new ProxyError(ErrorCode.NoRoute, `cluster '${cluster.name}' forwards to the original destination, and this connection has none (not redirected, or the listener does not set original_dst)`, {
      source: 'downstream',
    });
  }
  const port = Number(portText);
  const ep = endpointFor(cluster, metrics, ip, port, (ex!.info['original_dst'] as string | undefined) ?? `${ip}:${port}`);
  const cfg = cluster.config;
  if (cluster.cxActive >= cfg.limits.maxConnections) {
    cluster.cxOverflow.inc();
    throw new ProxyError(ErrorCode.Overflow, `cluster '${cluster.name}' is at its connection limit (${cfg.limits.maxConnections})`, { source: 'internal' });
  }
  let timeout = cfg.connectTimeoutMs;
  if (deadline > 0) {
    const left = Math.floor(deadline - performance.now());
    if (left <= 0) throw new ProxyError(ErrorCode.Timeout, 'deadline passed before connecting', { source: 'internal' });
    if (timeout <= 0 || left < timeout) timeout = left;
  }
  cluster.cxActive++;
  ep.cxActive++;
  try {
    const socket = await connectEndpoint(ep, timeout, onread);
    ep.cxTotal.inc();
    let released = false;
    return {
      socket,
      endpoint: ep,
      release: () => {
        if (released) return;
        released = true;
        cluster.cxActive--;
        ep.cxActive--;
      },
    };
  } catch (err) {
    cluster.cxActive--;
    ep.cxActive--;
    ep.cxConnectFail.inc();
    throw err;
  }
}
