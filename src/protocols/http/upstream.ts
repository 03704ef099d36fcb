/**
 * Upstream side of the HTTP proxy: one undici Pool per endpoint (keep-alive,
 * optional pipelining), chosen per request by the cluster's balancer, and the
 * per-request undici handler (UpstreamCall).
 *
 * Connections are opened by our own connector so the cluster's rules hold:
 * connect_timeout, limits.max_connections over the cluster (refused with
 * PW_ERR_OVERFLOW), passive health (connect failures eject), and the
 * per-endpoint counters /clusters shows. limits.max_connections_per_endpoint
 * is the pool size; limits.max_pending_requests bounds, per endpoint, the
 * requests beyond what its connections carry at once (refused with
 * PW_ERR_OVERFLOW); pool_idle_timeout closes idle keep-alive connections
 * (an upstream's own Keep-Alive: timeout=N is respected when shorter).
 *
 * UpstreamCall uses undici's dispatch handler callbacks directly (no
 * promise, no parsed header object): the head goes to the chain's
 * ResultHandler (the timeout, retry and breaker policies, then the
 * session), body chunks go straight to the session's sink with
 * backpressure (the sink says "full", the upstream parser pauses until it
 * drains). A call settles its ResultHandler exactly once: onResult at the
 * response head (or the 101 of an upgrade), onFailure on an error before it.
 * A connect failure that sent nothing moves the call to another endpoint,
 * up to the cluster's max_connect_attempts, before it fails.
 *
 * Requests without a body and without an upgrade (the common case) go
 * through FastPool (fast-upstream.ts), a small hand-written HTTP/1.1 client
 * that calls the same handler callbacks; the rest go through undici. Each
 * has its own connections to an endpoint (each up to
 * max_connections_per_endpoint); limits.max_connections still bounds their sum.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type buildConnector from 'undici/types/connector';
import type { Exchange } from '../../exchange';
import type { ResultHandler } from '../../filter';
import { ErrorCode, ProxyError } from '../../errors';
import type { Cluster } from '../../routing/cluster';
import type { Endpoint } from '../../routing/endpoint';
import { connectEndpoint } from '../../routing/connect';
import type { Logger } from '../../logger';
import { FastPool } from './fast-upstream';

export interface UpstreamSettings {
  pipelining: number;
  /** Bodyless requests through FastPool (fast_path). */
  fast: boolean;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  maxResponseHeaderSize: number;
}

/** Where a response body goes once the session took the head. */
export interface ResponseSink {
  /** false: full; the call pauses until resumeBody() is called. */
  write(chunk: Buffer): boolean;
  end(): void;
  /** The upstream failed after the head was taken: the client cannot be told but by a broken connection. */
  fail(err: ProxyError): void;
}

/** What a call needs from its exchange. */
export interface CallExchange extends Exchange {
  /** The request has a body (Content-Length > 0 or chunked). */
  readonly hasBody: boolean;
  /** Set once a try began writing the request (its body may be partly consumed). */
  bodySent: boolean;
  /** Endpoints tried for this request, made on the second try. */
  tried: Set<Endpoint> | null;
}

const QUEUED = 0;
const SENT = 1;
const HEAD = 2;
const DONE = 3;

function errCode(err: unknown): string {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : '';
}

/** An undici (or socket) error as a ProxyError; `sent` says whether the request had started to go out. */
export function upstreamError(err: unknown, sent: boolean, ep: Endpoint, idempotent: boolean): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = errCode(err);
  const msg = (err as Error | null)?.message ?? String(err);
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new ProxyError(ErrorCode.Timeout, `upstream ${ep.address} sent no response head in time`, { source: 'upstream', retryable: idempotent, cause: err });
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_NOT_SUPPORTED':
      return new ProxyError(ErrorCode.Protocol, `request cannot be forwarded: ${msg}`, { source: 'downstream', cause: err });
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return new ProxyError(ErrorCode.UpstreamConnect, `upstream pool for ${ep.address} is closed`, { source: 'upstream', retryable: !sent, cause: err });
    default:
      if (!sent) return new ProxyError(ErrorCode.UpstreamConnect, `upstream ${ep.address}: ${code || msg}`, { source: 'upstream', retryable: true, cause: err });
      return new ProxyError(ErrorCode.UpstreamReset, `upstream ${ep.address} failed: ${code || msg}`, { source: 'upstream', cause: err });
  }
}

/** The pools of one listener generation, by endpoint. */
export class HttpUpstreams {
  private readonly pools = new Map<Endpoint, Pool>();
  private readonly fastPools = new Map<Endpoint, FastPool>();
  /** Socket -> its connection-slot release, so an upgraded socket still gives its slot back. */
  private readonly releases = new WeakMap<Socket, () => void>();
  private closed = false;

  constructor(
    private readonly s: UpstreamSettings,
    private readonly log: Logger,
  ) {}

  /** Dispatches a call to its current endpoint; failures arrive through the call's onError. */
  send(call: UpstreamCall): void {
    const ep = call.ep;
    const limits = call.cluster.config.limits;
    if (ep.rqActive >= limits.maxConnectionsPerEndpoint * this.s.pipelining + limits.maxPendingRequests) {
      call.cluster.cxOverflow.inc();
      call.refuse(
        new ProxyError(ErrorCode.Overflow, `cluster '${call.cluster.name}': endpoint ${ep.address} has ${ep.rqActive} requests in flight (max_pending_requests reached)`, {
          source: 'internal',
        }),
      );
      return;
    }
    if (this.closed) {
      call.refuse(new ProxyError(ErrorCode.Draining, 'listener generation retired', { source: 'internal', retryable: true }));
      return;
    }
    ep.rqActive++;
    ep.rqTotal.inc();
    call.counted = true;
    const opts = call.opts;
    if (this.s.fast && opts.body == null && opts.upgrade == null && this.s.pipelining === 1) this.fastPool(call.cluster, ep).dispatch(opts, call);
    else this.pool(call.cluster, ep).dispatch(opts, call);
  }

  private fastPool(cluster: Cluster, ep: Endpoint): FastPool {
    let p = this.fastPools.get(ep);
    if (p === undefined) {
      this.sweep(cluster);
      const limits = cluster.config.limits;
      const address = ep.address.endsWith(':80') ? ep.address.slice(0, -3) : ep.address;
      p = new FastPool(
        {
          connections: limits.maxConnectionsPerEndpoint,
          idleTimeoutMs: limits.poolIdleTimeoutMs,
          headersTimeoutMs: this.s.headersTimeoutMs,
          bodyTimeoutMs: this.s.bodyTimeoutMs,
          maxHeaderSize: this.s.maxResponseHeaderSize,
          hostLine: `host: ${address}\r\n`,
          onHandlerError: (err) => this.log.error({ err: (err as Error | null)?.message ?? String(err) }, 'http upstream call failed while handling an error'),
        },
        this.connector(cluster, ep),
      );
      this.fastPools.set(ep, p);
    }
    return p;
  }

  private pool(cluster: Cluster, ep: Endpoint): Pool {
    let p = this.pools.get(ep);
    if (p === undefined) {
      this.sweep(cluster);
      const limits = cluster.config.limits;
      p = new Pool(`http://${ep.address}`, {
        connections: limits.maxConnectionsPerEndpoint,
        pipelining: this.s.pipelining,
        keepAliveTimeout: limits.poolIdleTimeoutMs,
        keepAliveMaxTimeout: limits.poolIdleTimeoutMs,
        headersTimeout: this.s.headersTimeoutMs,
        bodyTimeout: this.s.bodyTimeoutMs,
        maxHeaderSize: this.s.maxResponseHeaderSize,
        strictContentLength: true,
        connect: this.connector(cluster, ep),
      });
      // A pool emits connectionError for failed connects; those reach requests through onError. Nothing to log per event.
      p.on('connectionError', () => {});
      this.pools.set(ep, p);
    }
    return p;
  }

  /** Closes the pools of endpoints the cluster no longer has (a DNS or discovery change). */
  private sweep(cluster: Cluster): void {
    const live = new Set(cluster.endpoints);
    for (const [ep, p] of this.pools) {
      if (ep.cluster === cluster.name && !live.has(ep)) {
        this.pools.delete(ep);
        p.close().catch(() => {});
      }
    }
    for (const [ep, p] of this.fastPools) {
      if (ep.cluster === cluster.name && !live.has(ep)) {
        this.fastPools.delete(ep);
        p.close();
      }
    }
  }

  private connector(cluster: Cluster, ep: Endpoint): buildConnector.connector {
    return (_opts, cb) => {
      const max = cluster.config.limits.maxConnections;
      if (cluster.cxActive >= max) {
        cluster.cxOverflow.inc();
        cb(new ProxyError(ErrorCode.Overflow, `cluster '${cluster.name}' is at its connection limit (${max})`, { source: 'internal' }), null);
        return;
      }
      cluster.cxActive++;
      ep.cxActive++;
      connectEndpoint(ep, cluster.config.connectTimeoutMs).then(
        (sock) => {
          ep.cxTotal.inc();
          cluster.reportConnectSuccess(ep);
          let released = false;
          const release = () => {
            if (released) return;
            released = true;
            cluster.cxActive--;
            ep.cxActive--;
          };
          sock.once('close', release);
          this.releases.set(sock, release);
          cb(null, sock);
        },
        (err: ProxyError) => {
          cluster.cxActive--;
          ep.cxActive--;
          cluster.reportConnectFailure(ep);
          cb(err, null);
        },
      );
    };
  }

  /**
   * undici hands an upgraded socket over with its own listeners removed; ours
   * (the connection slot) stays, but make sure the slot is given back on close.
   */
  adoptUpgraded(socket: Duplex): void {
    const rel = this.releases.get(socket as Socket);
    if (rel !== undefined && socket.listeners('close').indexOf(rel) < 0) socket.once('close', rel);
  }

  /** Closes every pool: idle connections at once, busy ones when their request ends. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pools.values()) {
      p.close().catch((err: Error) => this.log.debug({ err: err.message }, 'http upstream pool did not close cleanly'));
    }
    this.pools.clear();
    for (const p of this.fastPools.values()) p.close();
    this.fastPools.clear();
  }

  /** Destroys every pool and its connections (shutdown after drain). */
  destroy(): void {
    this.closed = true;
    for (const p of this.pools.values()) p.destroy().catch(() => {});
    this.pools.clear();
    for (const p of this.fastPools.values()) p.destroy();
    this.fastPools.clear();
  }
}

/** One try of one request at one endpoint (moved to another endpoint on a connect failure). */
export class UpstreamCall implements Dispatcher.DispatchHandler {
  state = QUEUED;
  /** True while ep.rqActive counts this call. */
  counted = false;
  status = 0;
  statusText = '';
  /** Buffers from undici, strings from FastPool. */
  rawHeaders: Buffer[] | string[] | null = null;
  /** The upstream socket after a 101 (upgrade requests). */
  upgraded: Duplex | null = null;
  /** Set when the session gave up on this call (its error), so late callbacks only clean up. */
  abandoned: ProxyError | null = null;
  private abortFn: ((err?: Error) => void) | null = null;
  private resumeFn: (() => void) | null = null;
  private sink: ResponseSink | null = null;
  /** Body chunks that came before a sink was attached (only when a promise-form policy delays the head). */
  private early: Buffer[] | null = null;
  private ended = false;
  private lateError: ProxyError | null = null;
  private connectTries = 1;
  /** Response body bytes received. */
  bytes = 0;

  constructor(
    readonly ex: CallExchange,
    private readonly h: ResultHandler<UpstreamCall>,
    public ep: Endpoint,
    readonly cluster: Cluster,
    readonly opts: Dispatcher.DispatchOptions,
    private readonly upstreams: HttpUpstreams,
  ) {}

  get finished(): boolean {
    return this.state === DONE;
  }

  /** Refused before dispatch (limits): fails like a connect error that sent nothing. */
  refuse(err: ProxyError): void {
    this.state = DONE;
    this.h.onFailure(this.ex, err);
  }

  /** Gives up on the call: a queued request never goes out, a running one is aborted. Idempotent. */
  abort(err: ProxyError): void {
    if (this.state === DONE || this.abandoned !== null) return;
    this.abandoned = err;
    if (this.abortFn !== null) this.abortFn(err);
  }

  /** The session took the head: body chunks go to sink from now on (buffered ones first). */
  attach(sink: ResponseSink): void {
    this.sink = sink;
    const early = this.early;
    if (early !== null) {
      this.early = null;
      for (const c of early) sink.write(c);
    }
    if (this.lateError !== null) sink.fail(this.lateError);
    else if (this.ended) sink.end();
  }

  /** The sink drained: read the upstream again. */
  resumeBody(): void {
    const r = this.resumeFn;
    if (r !== null && this.state === HEAD) r();
  }

  // undici handler callbacks (the raw-header form).

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.abandoned !== null) {
      abort(this.abandoned);
      return;
    }
    this.state = SENT;
    if (this.ex.hasBody) {
      // From here the body stream is being read: sending it again is impossible.
      this.ex.bodySent = true;
      this.ex.idempotent = false;
    }
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx informational: not forwarded (101 arrives through onUpgrade)
    this.state = HEAD;
    this.status = statusCode;
    this.statusText = statusText;
    this.rawHeaders = rawHeaders;
    this.resumeFn = resume;
    if (this.abandoned !== null) return false;
    this.h.onResult(this.ex, this);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    const s = this.sink;
    if (s !== null) return s.write(chunk);
    if (this.abandoned !== null) return false;
    (this.early ??= []).push(chunk);
    return true;
  }

  onComplete(): void {
    this.state = DONE;
    this.release(true);
    if (this.sink !== null) this.sink.end();
    else this.ended = true;
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void {
    this.state = DONE;
    this.status = statusCode;
    this.rawHeaders = rawHeaders;
    this.upgraded = socket;
    this.release(true);
    this.upstreams.adoptUpgraded(socket);
    if (this.abandoned !== null) {
      socket.destroy();
      return;
    }
    this.h.onResult(this.ex, this);
  }

  onError(err: Error): void {
    const before = this.state;
    this.state = DONE;
    const sent = before !== QUEUED;
    if (this.abandoned !== null) {
      this.release(null);
      // Settle the chain's handler if it still waits (the session ignores it): policies must see every call end.
      if (before < HEAD) this.h.onFailure(this.ex, this.abandoned);
      return;
    }
    const pe = upstreamError(err, sent, this.ep, this.ex.idempotent);
    if (pe.source === 'upstream' && pe.code !== ErrorCode.Overflow && sent) {
      this.ep.rqError.inc();
      this.release(false);
    } else this.release(null);
    if (before >= HEAD) {
      if (this.sink !== null) this.sink.fail(pe);
      else this.lateError = pe;
      return;
    }
    if (!sent && pe.retryable && !this.ex.bodySent && this.connectTries < this.cluster.config.maxConnectAttempts && this.moveToAnotherEndpoint()) return;
    this.h.onFailure(this.ex, pe);
  }

  /** After a connect failure: the next endpoint not tried yet, dispatched; false when none. */
  private moveToAnotherEndpoint(): boolean {
    const tried = (this.ex.tried ??= new Set());
    tried.add(this.ep);
    const next = this.cluster.pick(tried);
    if (next === null) return false;
    tried.add(next);
    this.connectTries++;
    this.ep = next;
    this.ex.endpoint = next;
    this.state = QUEUED;
    this.abortFn = null;
    this.upstreams.send(this);
    return true;
  }

  /** Stops counting the call at its endpoint; ok=null: not the endpoint's fault either way (not reported). */
  private release(ok: boolean | null): void {
    if (!this.counted) return;
    this.counted = false;
    this.ep.rqActive--;
    if (ok !== null) this.cluster.reportResult(this.ep, ok);
  }
}
