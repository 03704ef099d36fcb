import { connect, type OnReadOpts, type Socket } from 'node:net';
import { ErrorCode, ProxyError } from '../errors';
import type { Cluster } from './cluster';
import type { Endpoint } from './endpoint';
import { ownConnectionsTracked, trackOutbound } from '../sidecar/own-connections';

/** Opens one TCP connection to an endpoint, failing with a ProxyError after timeoutMs. `onread` makes it read into caller-owned buffers. */
export function connectEndpoint(ep: Endpoint, timeoutMs: number, onread?: OnReadOpts): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: ep.host, port: ep.port, allowHalfOpen: true, noDelay: true, ...(onread ? { onread } : {}) });
    // Sidecar mode: remember our own outbound sockets so a redirect loop back into Portway is recognised.
    if (ownConnectionsTracked()) trackOutbound(sock);
    let timer: NodeJS.Timeout | null = null;
    const fail = (err: ProxyError) => {
      if (timer) clearTimeout(timer);
      sock.removeListener('connect', onConnect);
      sock.destroy();
      reject(err);
    };
    const onError = (err: NodeJS.ErrnoException) => {
      fail(new ProxyError(ErrorCode.UpstreamConnect, `connect to ${ep.address} failed: ${err.code ?? err.message}`, { source: 'upstream', retryable: true, cause: err }));
    };
    const onConnect = () => {
      if (timer) clearTimeout(timer);
      sock.removeListener('error', onError);
      resolve(sock);
    };
    sock.once('error', onError);
    sock.once('connect', onConnect);
    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        fail(new ProxyError(ErrorCode.ConnectTimeout, `connect to ${ep.address} timed out after ${timeoutMs} ms`, { source: 'upstream', retryable: true }));
      }, timeoutMs);
    }
  });
}

export interface UpstreamConnection {
  socket: Socket;
  endpoint: Endpoint;
  /** Give the connection slot back to the cluster; call once, when the socket closes. */
  release(): void;
}

/**
 * Connects to the cluster: picks an endpoint with the balancer, and on a failed
 * or slow connect reports it (passive health) and tries another endpoint, up
 * to max_connect_attempts. Enforces the cluster's connection limit.
 * `deadline` (performance.now() clock, 0 = none) caps the total time spent.
 */
export async function connectCluster(cluster: Cluster, deadline = 0, onread?: OnReadOpts): Promise<UpstreamConnection> {
  const cfg = cluster.config;
  // An original_dst cluster has no endpoints: the original_dst_cluster filter replaces it per destination (src/sidecar).
  if (cfg.originalDst === true) {
    throw new ProxyError(ErrorCode.NoRoute, `cluster '${cluster.name}' forwards to original destinations: it serves only listeners with original_dst: true`, { source: 'internal' });
  }
  const tried = new Set<Endpoint>();
  let lastErr: ProxyError | null = null;
  const attempts = Math.max(1, Math.min(cfg.maxConnectAttempts, cluster.endpoints.length));
  for (let attempt = 0; attempt < attempts; attempt++) {
    const ep = cluster.pick(tried);
    if (ep === null) break;
    if (cluster.cxActive >= cfg.limits.maxConnections) {
      cluster.cxOverflow.inc();
      throw new ProxyError(ErrorCode.Overflow, `cluster '${cluster.name}' is at its connection limit (${cfg.limits.maxConnections})`, { source: 'internal' });
    }
    let timeout = cfg.connectTimeoutMs;
    if (deadline > 0) {
      const left = Math.floor(deadline - performance.now());
      if (left <= 0) break;
      if (timeout <= 0 || left < timeout) timeout = left;
    }
    tried.add(ep);
    cluster.cxActive++;
    ep.cxActive++;
    try {
      const socket = await connectEndpoint(ep, timeout, onread);
      ep.cxTotal.inc();
      cluster.reportConnectSuccess(ep);
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
      cluster.reportConnectFailure(ep);
      lastErr = err as ProxyError;
    }
  }
  if (lastErr) throw lastErr;
  throw new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${cluster.name}' has no usable endpoint`, { source: 'upstream', retryable: true });
}
