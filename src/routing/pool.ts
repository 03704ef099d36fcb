import type { Socket } from 'node:net';
import { ErrorCode, ProxyError } from '../errors';
import type { Cluster } from './cluster';
import type { Endpoint } from './endpoint';
import { connectCluster, type UpstreamConnection } from './connect';

/**
 * A pool of exclusive upstream connections for one cluster: a request
 * borrows a connection, uses it alone, and gives it back for reuse.
 * Limits: max_connections (cluster), max_connections_per_endpoint, and
 * max_pending_requests waiting for a connection; idle connections close after
 * pool_idle_timeout. Protocols that multiplex many requests over one
 * connection build on connectCluster directly.
 */
export class ConnectionPool {
  private readonly idle: UpstreamConnection[] = [];
  private readonly waiters: { resolve: (c: UpstreamConnection) => void; reject: (e: ProxyError) => void; timer: NodeJS.Timeout | null }[] = [];
  private closed = false;
  private connecting = 0;

  constructor(readonly cluster: Cluster) {}

  get idleCount(): number {
    return this.idle.length;
  }

  get pendingCount(): number {
    return this.waiters.length;
  }

  /** Borrows a connection; reuses an idle one when it can. deadline is on the performance.now() clock (0 = none). */
  async acquire(deadline = 0): Promise<UpstreamConnection> {
    if (this.closed) throw new ProxyError(ErrorCode.Draining, `pool for '${this.cluster.name}' is closed`, { retryable: true });
    for (let c = this.idle.pop(); c !== undefined; c = this.idle.pop()) {
      c.socket.setTimeout(0);
      if (!c.socket.destroyed && usable(c.endpoint)) return c;
      c.socket.destroy();
    }
    const limits = this.cluster.config.limits;
    if (this.cluster.cxActive + this.connecting < limits.maxConnections && this.hasEndpointRoom()) {
      this.connecting++;
      try {
        const c = await connectCluster(this.cluster, deadline);
        c.socket.once('close', c.release);
        return c;
      } finally {
        this.connecting--;
      }
    }
    if (this.waiters.length >= limits.maxPendingRequests) {
      this.cluster.cxOverflow.inc();
      throw new ProxyError(ErrorCode.Overflow, `cluster '${this.cluster.name}': ${this.waiters.length} requests already wait for a connection`, { source: 'internal' });
    }
    return new Promise((resolve, reject) => {
      const w = { resolve, reject, timer: null as NodeJS.Timeout | null };
      if (deadline > 0) {
        w.timer = setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new ProxyError(ErrorCode.Timeout, `timed out waiting for a connection to '${this.cluster.name}'`, { retryable: true }));
        }, Math.max(0, deadline - performance.now()));
      }
      this.waiters.push(w);
    });
  }

  private hasEndpointRoom(): boolean {
    const max = this.cluster.config.limits.maxConnectionsPerEndpoint;
    return this.cluster.usable().some((e) => e.cxActive < max);
  }

  /** Returns a borrowed connection. reusable=false (or a dead socket) closes it instead. */
  release(c: UpstreamConnection, reusable: boolean): void {
    if (!reusable || this.closed || c.socket.destroyed || !usable(c.endpoint)) {
      c.socket.destroy();
      this.wakeOne();
      return;
    }
    const w = this.waiters.shift();
    if (w) {
      if (w.timer) clearTimeout(w.timer);
      w.resolve(c);
      return;
    }
    const sock: Socket = c.socket;
    sock.setTimeout(this.cluster.config.limits.poolIdleTimeoutMs, () => sock.destroy());
    // Connections allow half-open: a server that closes an idle connection only sends FIN.
    sock.once('end', () => sock.destroy());
    sock.once('close', () => {
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
    });
    this.idle.push(c);
  }

  /** A connection slot was freed: let one waiter open a new connection. */
  private wakeOne(): void {
    const w = this.waiters.shift();
    if (!w) return;
    if (w.timer) clearTimeout(w.timer);
    this.connecting++;
    connectCluster(this.cluster).then(
      (c) => {
        this.connecting--;
        c.socket.once('close', c.release);
        w.resolve(c);
      },
      (e: ProxyError) => {
        this.connecting--;
        w.reject(e);
      },
    );
  }

  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.socket.destroy();
    for (const w of this.waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(new ProxyError(ErrorCode.Draining, `pool for '${this.cluster.name}' closed`, { retryable: true }));
    }
  }
}

function usable(ep: Endpoint): boolean {
  return !ep.isEjected(performance.now());
}
