import { createServer, type Server, type Socket } from 'node:net';
import type { ListenerConfig } from './config/types';
import type { ConnectionHandler } from './protocols/protocol';
import type { Counter, MetricsRegistry } from './metrics';
import type { Logger } from './logger';
import { ErrorCode } from './errors';
import type { DestinationEntry, OriginalDstTracker } from './sidecar/destinations';

/** Per-listener counters; the same objects across reloads (resolved by name). */
export class ListenerStats {
  readonly cxTotal: Counter;
  readonly bytesIn: Counter;
  readonly bytesOut: Counter;
  cxActive = 0;
  private readonly errors = new Map<string, Counter>();

  constructor(
    private readonly name: string,
    private readonly metrics: MetricsRegistry,
  ) {
    const l = { listener: name };
    this.cxTotal = metrics.counter('portway_downstream_cx_total', 'Client connections accepted.', l);
    this.bytesIn = metrics.counter('portway_downstream_rx_bytes_total', 'Bytes received from clients (counted when a connection closes).', l);
    this.bytesOut = metrics.counter('portway_downstream_tx_bytes_total', 'Bytes sent to clients (counted when a connection closes).', l);
    metrics.gauge('portway_downstream_cx_active', 'Client connections open.', l, () => this.cxActive);
  }

  /** Counts a failed request or connection by its error code. */
  countError(code: string): void {
    let c = this.errors.get(code);
    if (!c) {
      c = this.metrics.counter('portway_downstream_errors_total', 'Requests or connections that ended in an error, by code.', { listener: this.name, code });
      this.errors.set(code, c);
    }
    c.inc();
  }

  toJSON(): Record<string, unknown> {
    return {
      cx_active: this.cxActive,
      cx_total: this.cxTotal.value,
      rx_bytes: this.bytesIn.value,
      tx_bytes: this.bytesOut.value,
      errors: Object.fromEntries([...this.errors].map(([k, v]) => [k, v.value])),
    };
  }
}

export class ListenerBindError extends Error {
  constructor(
    readonly listener: string,
    readonly address: string,
    readonly code: string,
  ) {
    super(`listener '${listener}' cannot bind ${address}: ${code === 'EADDRINUSE' ? 'address already in use' : code === 'EACCES' ? 'permission denied' : code}`);
    this.name = 'ListenerBindError';
  }
}

/**
 * A bound socket and the connections it accepted. The handler (protocol
 * session factory of the current generation) can be swapped on reload without
 * closing the socket; connections keep the handler they were accepted with.
 */
export class ListenerRuntime {
  readonly server: Server;
  readonly connections = new Set<Socket>();
  private accepting = true;
  /** Sidecar mode (original_dst: true): reads and keeps each connection's original destination; set by the proxy. */
  originalDst: OriginalDstTracker | null = null;

  constructor(
    public config: ListenerConfig,
    public handler: ConnectionHandler,
    public stats: ListenerStats,
    private readonly log: Logger,
  ) {
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (sock) => this.onConnection(sock));
  }

  private onConnection(accepted: Socket): void {
    const stats = this.stats;
    const max = this.config.maxConnections;
    if (max > 0 && this.connections.size >= max) {
      stats.countError('PW_ERR_OVERFLOW');
      accepted.destroy();
      return;
    }
    const od = this.originalDst;
    let dst: DestinationEntry | null = null;
    if (od !== null) {
      const r = od.accept(accepted);
      if (r === false) {
        stats.countError(ErrorCode.OriginalDstLoop);
        accepted.destroy();
        return;
      }
      dst = r;
    }
    let sock: Socket;
    try {
      // A handler may replace the socket object (the TCP pump re-wraps it to read into its own buffers).
      sock = this.handler.handle(accepted) ?? accepted;
    } catch (err) {
      this.log.error({ err }, 'connection handler threw');
      accepted.destroy();
      if (dst !== null) od!.release(dst);
      return;
    }
    this.connections.add(sock);
    stats.cxTotal.inc();
    stats.cxActive++;
    sock.once('close', () => {
      this.connections.delete(sock);
      stats.cxActive--;
      if (dst !== null) od!.release(dst);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new ListenerBindError(this.config.name, this.config.address, err.code ?? err.message));
      };
      this.server.once('error', onError);
      this.server.listen({ host: this.config.host, port: this.config.port, backlog: 2048 }, () => {
        this.server.removeListener('error', onError);
        this.server.on('error', (err) => this.log.error({ err }, 'listener error'));
        resolve();
      });
    });
  }

  /** The port actually bound (differs from config when it says 0). */
  get port(): number {
    const a = this.server.address();
    return a && typeof a === 'object' ? a.port : this.config.port;
  }

  update(config: ListenerConfig, handler: ConnectionHandler, stats: ListenerStats): void {
    this.config = config;
    this.handler = handler;
    this.stats = stats;
  }

  /** Stops accepting; open connections are left alone. */
  stopAccepting(): void {
    if (!this.accepting) return;
    this.accepting = false;
    this.server.close();
  }

  /** Waits for open connections to end, closing the rest after timeoutMs. */
  async drain(timeoutMs: number): Promise<void> {
    this.stopAccepting();
    if (this.connections.size === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        if (this.connections.size > 0) this.log.warn({ open: this.connections.size }, 'drain timeout: closing remaining connections');
        for (const s of this.connections) s.destroy();
        resolve();
      }, timeoutMs);
      timer.unref();
      const check = () => {
        if (this.connections.size === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
      for (const s of this.connections) s.once('close', () => setImmediate(check));
    });
  }
}
