/**
 * undici Pools, one per endpoint of a cluster (keep-alive, shared by every
 * call), and the one mapping from undici/socket failures to ProxyError used
 * by the HTTP-based upstreams (JSON over HTTP, XML-RPC passthrough).
 */
import { Pool, util as undiciUtil, type Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { ErrorCode, ProxyError } from '../errors';
import type { EndpointPicker, RpcEndpoint } from './endpoints';

export interface HttpPoolOptions {
  /** Connections per endpoint (keep-alive, one request at a time each). */
  connections: number;
  connectTimeoutMs: number;
  /** Idle keep-alive connections close after this long. */
  keepAliveTimeoutMs: number;
  /** A reply body larger than this fails the call (PW_ERR_PROTOCOL). */
  maxResponseBytes: number;
}

export const DEFAULT_HTTP_POOL: HttpPoolOptions = { connections: 16, connectTimeoutMs: 2000, keepAliveTimeoutMs: 30_000, maxResponseBytes: 16 << 20 };

export interface HttpReply<E> {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  endpoint: E;
}

/** Calls that never get a deadline from their caller are abandoned after this long, so nothing waits forever. */
const FALLBACK_TIMEOUT_MS = 300_000;

export class HttpPools<E extends RpcEndpoint = RpcEndpoint> {
  private readonly pools = new Map<string, Pool>();
  private closed = false;

  constructor(
    private readonly picker: EndpointPicker<E>,
    private readonly opts: HttpPoolOptions = DEFAULT_HTTP_POOL,
  ) {}

  private poolFor(ep: E): Pool {
    let p = this.pools.get(ep.address);
    if (p === undefined) {
      p = new Pool(`http://${ep.address}`, {
        connections: this.opts.connections,
        pipelining: 1,
        keepAliveTimeout: this.opts.keepAliveTimeoutMs,
        connect: { timeout: this.opts.connectTimeoutMs },
        maxResponseSize: this.opts.maxResponseBytes,
      });
      // Passive health: the cluster learns of connects that fail or succeed.
      p.on('connectionError', () => this.picker.reportConnectFailure?.(ep));
      p.on('connect', () => this.picker.reportConnectSuccess?.(ep));
      this.pools.set(ep.address, p);
    }
    return p;
  }

  /** POSTs body to path on an endpoint the picker chooses. deadline: Date.now() ms. */
  async post(path: string, headers: Record<string, string>, body: string | Buffer, deadline: number | undefined): Promise<HttpReply<E>> {
    if (this.closed) throw new ProxyError(ErrorCode.Draining, 'upstream is closed', { source: 'internal', retryable: true });
    const ep = this.picker.pick(null);
    if (ep === null) throw new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${this.picker.name}' has no usable endpoint`, { source: 'upstream', retryable: true });
    const left = deadline === undefined ? FALLBACK_TIMEOUT_MS : deadline - Date.now();
    if (left <= 0) throw new ProxyError(ErrorCode.Timeout, 'deadline passed before the call was sent', { source: 'upstream', retryable: true });
    ep.rqTotal?.inc();
    if (ep.rqActive !== undefined) ep.rqActive++;
    try {
      const pool = this.poolFor(ep);
      const r = await new Promise<Collector<E>>((resolve, reject) => {
        pool.dispatch({ path, method: 'POST', headers, body, headersTimeout: left, bodyTimeout: left }, new Collector(ep, resolve, reject));
      });
      this.picker.reportResult?.(ep, true);
      return r;
    } catch (e) {
      const err = httpFailure(e, ep.address);
      if (err.source === 'upstream' && err.code !== ErrorCode.Protocol) {
        ep.rqError?.inc();
        this.picker.reportResult?.(ep, false);
      }
      throw err;
    } finally {
      if (ep.rqActive !== undefined) ep.rqActive--;
    }
  }

  /** Waits for calls in flight, then closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.close().catch(() => p.destroy())));
  }
}

/**
 * Collects one reply: the status, the raw headers (parsed only if asked for)
 * and the body chunks, joined once at the end. A dispatch handler in the
 * interface undici's client calls directly: no response stream, no
 * per-chunk promise, no wrapper (request() + body.arrayBuffer() cost several
 * times more per call).
 */
class Collector<E> implements Dispatcher.DispatchHandler, HttpReply<E> {
  status = 0;
  body: Buffer = EMPTY;
  private rawHeaders: Buffer[] | null = null;
  private parsed: IncomingHttpHeaders | null = null;
  private chunks: Buffer[] | null = null;
  private size = 0;

  constructor(
    readonly endpoint: E,
    private readonly resolve: (r: Collector<E>) => void,
    private readonly reject: (e: unknown) => void,
  ) {}

  get headers(): IncomingHttpHeaders {
    if (this.parsed === null) this.parsed = undiciUtil.parseHeaders(this.rawHeaders ?? []) as IncomingHttpHeaders;
    return this.parsed;
  }

  onConnect(): void {
    // Sent again after a retry inside undici: start over.
    this.status = 0;
    this.rawHeaders = null;
    this.chunks = null;
    this.size = 0;
  }

  onHeaders(statusCode: number, headers: Buffer[]): boolean {
    // 1xx informational replies are not the answer.
    if (statusCode < 200) return true;
    this.status = statusCode;
    this.rawHeaders = headers;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.chunks === null) this.chunks = [chunk];
    else this.chunks.push(chunk);
    this.size += chunk.length;
    return true;
  }

  onComplete(): void {
    const c = this.chunks;
    this.body = c === null ? EMPTY : c.length === 1 ? c[0]! : Buffer.concat(c, this.size);
    this.chunks = null;
    this.resolve(this);
  }

  onError(err: Error): void {
    this.chunks = null;
    this.reject(err);
  }
}

const EMPTY = Buffer.alloc(0);

/** The one mapping from an undici or socket failure to ProxyError. */
export function httpFailure(e: unknown, address: string): ProxyError {
  if (e instanceof ProxyError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = typeof err?.code === 'string' ? err.code : '';
  switch (code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EADDRNOTAVAIL':
      return new ProxyError(ErrorCode.UpstreamConnect, `cannot connect to ${address}: ${code}`, { source: 'upstream', retryable: true, cause: e });
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new ProxyError(ErrorCode.ConnectTimeout, `connecting to ${address} timed out`, { source: 'upstream', retryable: true, cause: e });
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new ProxyError(ErrorCode.Timeout, `${address} did not answer before the deadline`, { source: 'upstream', cause: e });
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
      return new ProxyError(ErrorCode.Protocol, `reply from ${address} exceeds the size limit`, { source: 'upstream', cause: e });
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return new ProxyError(ErrorCode.Draining, 'upstream pool is closing', { source: 'internal', retryable: true, cause: e });
    default:
      return new ProxyError(ErrorCode.UpstreamReset, `connection to ${address} failed: ${code || (err?.message ?? String(e))}`, { source: 'upstream', cause: e });
  }
}
