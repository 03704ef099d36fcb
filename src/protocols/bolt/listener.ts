/**
 * What every session of one Bolt listener shares for one config generation:
 * options, upstream pools, translating upstreams, the composed policies, the
 * one mapping from ProxyError to a Bolt response, counters.
 *
 * A call reaches its cluster one of three ways:
 *  - Bolt provider, no around-policy in the chain: the request frame is
 *    copied onto a pooled link under a link-local id; the call object itself
 *    waits for the reply (no promise, no closure) and sits on the shared
 *    timer wheel until its deadline.
 *  - Bolt provider under policies (retry, circuit breaker, timeout): each try
 *    is an Attempt (a promise) on the same pools.
 *  - a translated cluster (http or grpc in `translate`): the SofaRequest
 *    payload is decoded (both Hessian dialects), sent through an RpcUpstream,
 *    and the result or fault encoded back as a SofaResponse in the caller's dialect.
 */
import { adoptForSharedReads } from '../../util/shared-read';
import type { Socket } from 'node:net';
import { Exchange, type AttributeSource } from '../../exchange';
import { ErrorCode, ProxyError, toProxyError } from '../../errors';
import type { Dispatch, FilterChain, ResultHandler } from '../../filter';
import type { Cluster } from '../../routing/cluster';
import type { Endpoint } from '../../routing/endpoint';
import type { Counter, Histogram, MetricsRegistry } from '../../metrics';
import type { Logger } from '../../logger';
import type { ListenerStats } from '../../listener';
import type { ConnectionHandler, ProtocolBuildContext } from '../protocol';
import { RpcFault, type RpcCall, type RpcUpstream, type RpcValue } from '../../translate/rpc-upstream';
import { sharedTimerWheel, TimerTask } from '../../util/timer-wheel';
import { turnNow } from '../../util/turn-clock';
import { BoltCmd, BoltFrame, CODEC_HESSIAN2, METHOD_KEY, SOFA_RESPONSE_CLASS, encodeResponse, type ReplyShape } from './codec';
import { BoltStatus, boltStatusOf } from './status';
import { decodeSofaRequest, detectDialect, encodeServerException, encodeSofaFault, encodeSofaResult, readMethodName, type HessianDialect } from './hessian';
import { BoltPool, type BoltLink, type BoltReplySink } from './upstream';
import { BoltSession } from './session';

export interface BoltOptions {
  maxFrame: number;
  perEndpoint: number;
  defaultTimeoutMs: number;
  heartbeatMs: number;
  /** TCP_QUICKACK after each read from a provider (see the quick_ack option). */
  quickAck: boolean;
  /** "Interface#method" and "Interface#*" entries; null when no method is idempotent. */
  idempotent: ReadonlySet<string> | null;
  /** How payloads are read when decoding: detected from the first byte, or fixed. */
  hessian: 'auto' | HessianDialect;
  /** Read the method of every call up front (otherwise only when a route, filter or idempotent_methods asks). */
  needMethod: boolean;
  /** Translated clusters: cluster name -> a factory of its RpcUpstream, and its dialect override. */
  translate: Map<string, { create: (cluster: Cluster) => RpcUpstream; hessian: 'auto' | HessianDialect }>;
}

/** The exchange of a Bolt call: carries its BoltCall to the terminal of the policy path. */
export class BoltExchange extends Exchange {
  call: BoltCall | null = null;
  /** The call whose method is still to be read (null once it was). */
  call0: BoltCall | null = null;
}

/** What a policy-path try yields: the provider's reply frame, or a complete response already addressed to the client. */
export type BoltReply = BoltFrame | Buffer;

/**
 * One client request from decode to reply. Also the reply sink and the
 * deadline task of the direct path, so a call costs one object.
 */
export class BoltCall extends TimerTask implements BoltReplySink, ResultHandler<BoltReply> {
  ex: BoltExchange | null = null;
  deadline = 0;
  done = false;
  link: BoltLink | null = null;
  upstreamId = 0;
  endpoint: Endpoint | null = null;
  readonly t0 = turnNow();

  constructor(
    readonly session: BoltSession,
    /** The request frame (a view of the bytes it arrived in). */
    readonly frame: BoltFrame,
  ) {
    super();
  }

  get oneway(): boolean {
    return this.frame.type === 2;
  }

  get shape(): ReplyShape {
    const f = this.frame;
    return { proto: f.proto, ver1: f.ver1, switches: f.switches, codec: f.codec };
  }

  onReply(f: BoltFrame): void {
    if (this.done) return;
    this.session.listener.finish(this, f, null);
  }

  onError(err: ProxyError): void {
    if (this.done) return;
    this.session.listener.finish(this, null, err);
  }

  onTimer(): void {
    if (this.done) return;
    const l = this.link;
    if (l !== null) {
      l.forget(this.upstreamId);
      if (this.ex !== null) this.ex.reportTimeout();
      else {
        l.endpoint.rqError.inc();
        l.cluster.reportResult(l.endpoint, false);
      }
    }
    this.session.listener.finish(this, null, timeoutError(this));
  }

  /** The policy path's outcome (ResultHandler). */
  onResult(_ex: Exchange, r: BoltReply): void {
    this.session.listener.finish(this, r, null);
  }

  onFailure(_ex: Exchange, err: ProxyError): void {
    this.session.listener.finish(this, null, err);
  }
}

function timeoutError(call: BoltCall): ProxyError {
  const ms = Math.round(performance.now() - call.t0);
  return new ProxyError(ErrorCode.Timeout, `no answer from the provider within ${ms} ms (the call's timeout)`, { source: 'upstream', retryable: call.ex?.idempotent ?? false });
}

/** One try on the policy path: the provider's reply sink and the try's deadline task. */
class Attempt extends TimerTask implements BoltReplySink {
  settled = false;
  link: BoltLink | null = null;
  id = 0;
  constructor(
    private readonly ex: BoltExchange,
    private readonly ep: Endpoint,
    private readonly h: ResultHandler<BoltReply>,
  ) {
    super();
  }
  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    sharedTimerWheel.cancel(this);
    this.ep.rqActive--;
    return true;
  }
  onReply(f: BoltFrame): void {
    if (this.settle()) this.h.onResult(this.ex, f);
  }
  onError(err: ProxyError): void {
    if (this.settle()) this.h.onFailure(this.ex, err);
  }
  onTimer(): void {
    if (!this.settle()) return;
    if (this.link !== null) this.link.forget(this.id);
    this.ex.reportTimeout();
    this.h.onFailure(this.ex, timeoutError(this.ex.call!));
  }
}

export class BoltListener implements ConnectionHandler, AttributeSource {
  readonly name: string;
  readonly chain: FilterChain;
  readonly log: Logger;
  readonly idleTimeoutMs: number;
  readonly stats: ListenerStats;
  readonly requests: Counter;
  readonly latency: Histogram;
  private readonly byStatus = new Map<number, Counter>();
  private readonly metrics: MetricsRegistry;
  private readonly pools = new Map<Cluster, BoltPool>();
  private readonly translators = new Map<Cluster, { up: RpcUpstream; hessian: 'auto' | HessianDialect }>();
  /** The one cluster when routing cannot depend on the request (one catch-all route, only the router filter). */
  readonly constant: Cluster | null;
  /**
   * When only the router runs and routes look at nothing but `service` (no
   * source CIDR, one cluster each), the route a service takes never changes
   * for this generation: the Bolt cluster it chose is kept here, and later
   * calls to that service skip the Exchange and the chain. Null otherwise.
   */
  private readonly byService: Map<string, Cluster> | null;
  /** The around-policies folded around the terminal, callback form (no promise per call). */
  private readonly dispatchComposed: Dispatch<BoltReply>;
  /** When a bad frame was last logged (at most one warning a second; the rest are counted). */
  private badLoggedAt = Number.NEGATIVE_INFINITY;
  private badSuppressed = 0;
  private readonly errorCache = new Map<string, Buffer>();
  /** Client connections open on this generation, and whether a newer one replaced it. */
  private sessions = 0;
  private retired = false;

  constructor(
    ctx: ProtocolBuildContext,
    readonly options: BoltOptions,
  ) {
    this.name = ctx.listener.name;
    this.chain = ctx.chain;
    this.log = ctx.logger;
    this.metrics = ctx.metrics;
    this.idleTimeoutMs = ctx.listener.idleTimeoutMs;
    this.stats = ctx.stats;
    this.requests = ctx.metrics.counter('portway_bolt_requests_total', 'Bolt requests received (heartbeats not counted).', { listener: this.name });
    this.latency = ctx.metrics.histogram('portway_bolt_request_duration_seconds', 'Time from a Bolt request read to its response ready.', { listener: this.name });
    this.dispatchComposed = ctx.chain.dispatcher<BoltReply>(this.terminal);
    const routes = ctx.listener.routes;
    const onlyRouter = ctx.chain.filters.every((f) => f.name === 'router' && f.kind === 'phase') && ctx.chain.direct;
    const simple = routes.length === 1 && routes[0]!.sourceCidr.length === 0 && Object.keys(routes[0]!.attributes).length === 0 && routes[0]!.clusters.length === 1;
    this.constant = onlyRouter && simple ? (ctx.clusters.get(routes[0]!.clusters[0]!.cluster) ?? null) : null;
    const serviceOnly = routes.every((r) => r.sourceCidr.length === 0 && r.clusters.length === 1 && Object.keys(r.attributes).every((k) => k === 'service'));
    this.byService = this.constant === null && onlyRouter && serviceOnly && !options.needMethod && options.idempotent === null ? new Map() : null;
    for (const [name, t] of options.translate) {
      const c = ctx.clusters.get(name);
      if (c === undefined) throw new Error(`listener '${this.name}': translate names unknown cluster '${name}'`);
      this.translators.set(c, { up: t.create(c), hessian: t.hessian });
    }
  }

  handle(accepted: Socket): Socket {
    // Client reads into one shared buffer, past the stream machinery (util/shared-read.ts).
    return adoptForSharedReads(accepted, (socket) => {
      this.sessions++;
      socket.once('close', () => {
        if (--this.sessions === 0 && this.retired) this.closeUpstreams();
      });
      new BoltSession(socket, this);
    });
  }

  pool(cluster: Cluster): BoltPool {
    let p = this.pools.get(cluster);
    if (p === undefined) {
      p = new BoltPool(
        cluster,
        { perEndpoint: this.options.perEndpoint, connectTimeoutMs: cluster.config.connectTimeoutMs, maxFrame: this.options.maxFrame, heartbeatMs: this.options.heartbeatMs, quickAck: this.options.quickAck },
        this.log,
      );
      this.pools.set(cluster, p);
    }
    return p;
  }

  /** A bad frame from a client: logged (rate-limited), counted. */
  logBadFrame(client: string, reason: string): void {
    this.stats.countError(ErrorCode.Protocol);
    const now = performance.now();
    if (now - this.badLoggedAt < 1000) {
      this.badSuppressed++;
      return;
    }
    this.badLoggedAt = now;
    const suppressed = this.badSuppressed;
    this.badSuppressed = 0;
    this.log.warn({ client, reason, ...(suppressed > 0 ? { suppressed } : {}) }, 'closing a Bolt client connection: invalid frame');
  }

  // --- requests ------------------------------------------------------------

  dialectOf(frame: BoltFrame, setting: 'auto' | HessianDialect = this.options.hessian): HessianDialect | null {
    if (setting !== 'auto') return setting;
    return detectDialect(frame.buf.subarray(frame.contentStart, frame.contentEnd));
  }

  /** The method of a call: the sofa_head_method_name header, else read from the Hessian payload. */
  methodOf(frame: BoltFrame): string | undefined {
    const h = frame.header(METHOD_KEY);
    if (typeof h === 'string' && h.length > 0) return h;
    if (frame.codec !== CODEC_HESSIAN2) return undefined;
    const d = this.dialectOf(frame);
    if (d === null) return undefined;
    try {
      return readMethodName(frame.content(), d);
    } catch {
      return undefined;
    }
  }

  /** Lazy attributes: `method` (read from the frame on first use, then kept in attrs). */
  attribute(ex: Exchange, name: string): string | undefined {
    if (name !== 'method') return undefined;
    const call = (ex as BoltExchange).call0;
    if (call === null) return undefined;
    const m = this.methodOf(call.frame);
    ex.attrs['method'] = m;
    (ex as BoltExchange).call0 = null; // computed once, found or not
    return m;
  }

  isIdempotent(service: string | undefined, method: string | undefined): boolean {
    const t = this.options.idempotent;
    if (t === null || service === undefined || method === undefined) return false;
    const colon = service.indexOf(':');
    const iface = colon >= 0 ? service.slice(0, colon) : service;
    return t.has(`${iface}#${method}`) || t.has(`${service}#${method}`) || t.has(`${iface}#*`);
  }

  /** Sends a call to its cluster (chosen by the chain, or the constant one). */
  dispatch(call: BoltCall, cluster: Cluster): void {
    const tr = this.translators.get(cluster);
    if (this.chain.direct || call.oneway) {
      if (tr !== undefined) {
        if (!call.oneway) sharedTimerWheel.schedule(call, call.deadline);
        this.translate(call, tr.up, tr.hessian).then(
          (buf) => this.finish(call, buf, null),
          (e: unknown) => this.finish(call, null, toProxyError(e)),
        );
        return;
      }
      const ep = cluster.pick();
      if (ep === null) return this.finish(call, null, new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${cluster.name}' has no usable provider`, { source: 'upstream', retryable: true }));
      if (call.ex !== null) call.ex.endpoint = ep;
      const link = this.pool(cluster).link(ep);
      if (call.oneway) {
        link.send(call.frame, null);
        this.finish(call, null, null);
        return;
      }
      call.link = link;
      call.endpoint = ep;
      ep.rqActive++;
      call.upstreamId = link.send(call.frame, call);
      if (!call.done) sharedTimerWheel.schedule(call, call.deadline);
      return;
    }
    const ex = call.ex!;
    ex.call = call;
    this.dispatchComposed(ex, call);
  }

  /** The end of the chain on the policy path: one try. Never throws; the outcome goes to h. */
  private readonly terminal: Dispatch<BoltReply> = (e, h) => {
    const ex = e as BoltExchange;
    const call = ex.call!;
    const cluster = ex.cluster;
    if (cluster === null) return h.onFailure(ex, new ProxyError(ErrorCode.NoRoute, 'no cluster chosen', { source: 'internal' }));
    ex.attempts++;
    const tr = this.translators.get(cluster);
    if (tr !== undefined) {
      this.translate(call, tr.up, tr.hessian).then(
        (buf) => h.onResult(ex, buf),
        (err: unknown) => h.onFailure(ex, toProxyError(err)),
      );
      return;
    }
    const ep = cluster.pick();
    if (ep === null) return h.onFailure(ex, new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${cluster.name}' has no usable provider`, { source: 'upstream', retryable: true }));
    ex.endpoint = ep;
    ep.rqActive++;
    const a = new Attempt(ex, ep, h);
    const link = this.pool(cluster).link(ep);
    a.link = link;
    a.id = link.send(call.frame, a);
    if (!a.settled) sharedTimerWheel.schedule(a, ex.deadline > 0 ? ex.deadline : call.deadline);
  };

  /** A call to a translated cluster: decode, call, encode. Resolves with the complete response frame. */
  private async translate(call: BoltCall, up: RpcUpstream, setting: 'auto' | HessianDialect): Promise<Buffer> {
    const f = call.frame;
    if (f.codec !== CODEC_HESSIAN2) throw new ProxyError(ErrorCode.Protocol, `codec ${f.codec} cannot be translated (only hessian2)`, { source: 'downstream' });
    const dialect = this.dialectOf(f, setting);
    if (dialect === null) throw new ProxyError(ErrorCode.Protocol, 'the payload is not a SofaRequest in a known Hessian dialect', { source: 'downstream' });
    let rpc: RpcCall;
    try {
      const req = decodeSofaRequest(f.content(), dialect);
      const service = (call.ex?.attrs.service ?? req.targetServiceUniqueName ?? '').split(':')[0]!;
      const left = call.deadline - performance.now();
      rpc = { service, method: req.methodName, args: req.args, deadline: Date.now() + Math.max(0, left) };
    } catch (e) {
      throw new ProxyError(ErrorCode.Protocol, `cannot decode the SofaRequest: ${(e as Error).message}`, { source: 'downstream', cause: e });
    }
    if (call.ex !== null && call.ex.attrs.method === undefined) call.ex.attrs.method = rpc.method;
    let content: Buffer;
    try {
      const value: RpcValue = await up.call(rpc);
      content = encodeSofaResult(dialect, value);
    } catch (e) {
      if (!(e instanceof RpcFault)) throw e;
      content = encodeSofaFault(dialect, e.faultString);
    }
    return encodeResponse(call.shape, f.requestId, BoltStatus.SUCCESS, BoltCmd.Response, SOFA_RESPONSE_CLASS, null, content);
  }

  /**
   * Ends a call exactly once: writes the reply (a provider frame under the
   * client's id, a built response, or the error mapped to a Bolt response),
   * counts it and completes its exchange. reply null and err null: a one-way call, nothing to write.
   */
  finish(call: BoltCall, reply: BoltReply | null, err: ProxyError | null): void {
    if (call.done) return;
    call.done = true;
    sharedTimerWheel.cancel(call);
    if (call.endpoint !== null && call.link !== null) call.endpoint.rqActive--;
    let status: number = BoltStatus.SUCCESS;
    let out: Buffer | null = null;
    if (err !== null) {
      status = boltStatusOf(err);
      if (!call.oneway) out = this.errorResponse(call, err);
      this.stats.countError(err.code);
      if (call.ex !== null) call.ex.error = err;
    } else if (reply instanceof BoltFrame) {
      status = reply.status;
      out = call.session.reframe(reply, call.frame.requestId);
    } else if (reply !== null) {
      out = reply;
    }
    this.latency.observe((performance.now() - call.t0) / 1000);
    this.statusCounter(status).value++;
    const ex = call.ex;
    if (ex !== null) {
      ex.info['status'] = status;
      this.chain.complete(ex);
    }
    call.session.callDone(call.oneway ? null : out);
  }

  private statusCounter(status: number): Counter {
    let c = this.byStatus.get(status);
    if (c === undefined) {
      c = this.metrics.counter('portway_bolt_responses_total', 'Bolt responses sent, by status (0 success, 4 busy, 7 timeout ...).', { listener: this.name, status: String(status) });
      if (this.byStatus.size < 64) this.byStatus.set(status, c);
    }
    return c;
  }

  /**
   * The one mapping from a ProxyError to the wire: the Bolt status of
   * boltStatusOf, with an RpcServerException whose detailMessage is
   * "[PW_ERR_...] message" in the caller's Hessian dialect (sofa-rpc-node
   * clients throw it as their error message; Java clients map the status).
   */
  errorResponse(call: BoltCall, err: ProxyError): Buffer {
    const f = call.frame;
    const status = boltStatusOf(err);
    const text = `[${err.code}] ${err.message}`;
    if (f.codec !== CODEC_HESSIAN2) return encodeResponse(call.shape, f.requestId, status, BoltCmd.Response, SOFA_RESPONSE_CLASS, null, null);
    const dialect = this.dialectOf(f) ?? '3.0';
    const key = `${dialect}\u0000${text}`;
    let content = this.errorCache.get(key);
    if (content === undefined) {
      content = encodeServerException(dialect, text);
      if (this.errorCache.size >= 256) this.errorCache.clear();
      this.errorCache.set(key, content);
    }
    return encodeResponse(call.shape, f.requestId, status, BoltCmd.Response, SOFA_RESPONSE_CLASS, null, content);
  }

  /** Starts the filter chain for a call; returns nothing, the call finishes on its own. */
  begin(call: BoltCall, clientAddress: string, clientPort: number): void {
    this.requests.value++;
    const f = call.frame;
    const timeout = f.timeout > 0 ? f.timeout : this.options.defaultTimeoutMs;
    call.deadline = call.t0 + timeout;
    if (this.constant !== null && !this.options.needMethod) {
      this.dispatch(call, this.constant);
      return;
    }
    const service = f.header(SERVICE) ?? undefined;
    const known = this.byService !== null && service !== undefined ? this.byService.get(service) : undefined;
    if (known !== undefined) {
      this.dispatch(call, known);
      return;
    }
    const ex = new BoltExchange(this.name, 'bolt', clientAddress, clientPort, service ?? '');
    call.ex = ex;
    ex.call0 = call;
    ex.attrs['service'] = service;
    // `method` is computed when something reads it (a route, a rate limit key, idempotency), once.
    ex.attributeSource = this;
    if (this.options.needMethod) ex.attr('method');
    ex.deadline = call.deadline;
    if (this.options.idempotent !== null) ex.idempotent = this.isIdempotent(service, ex.attr('method'));
    if (this.constant !== null) {
      ex.cluster = this.constant;
      this.dispatch(call, this.constant);
      return;
    }
    const v = this.chain.runRequest(ex);
    if (v === undefined) this.routed(call);
    else if ('then' in v) {
      v.then(
        (r) => (r === undefined ? this.routed(call) : this.finish(call, null, r.error)),
        (e: unknown) => this.finish(call, null, toProxyError(e)),
      );
    } else this.finish(call, null, v.error);
  }

  private routed(call: BoltCall): void {
    const c = call.ex!.cluster;
    if (c === null) {
      this.finish(call, null, new ProxyError(ErrorCode.NoRoute, `no route of listener '${this.name}' matches service '${call.ex!.attrs['service'] ?? ''}'`, { source: 'downstream' }));
      return;
    }
    // Remember where this service goes (Bolt clusters only: a translated call reads the exchange's service).
    const bs = this.byService;
    const service = call.ex!.attrs['service'];
    if (bs !== null && service !== undefined && !this.translators.has(c)) {
      if (bs.size >= 4096) bs.clear();
      bs.set(service, c);
    }
    this.dispatch(call, c);
  }

  /**
   * The generation was replaced. Connections accepted under it keep being
   * served (by this listener's pools and translators); once the last one
   * closes, the provider links finish what they carry and close.
   */
  retire(): void {
    this.retired = true;
    if (this.sessions === 0) this.closeUpstreams();
  }

  private closeUpstreams(): void {
    for (const p of this.pools.values()) p.close();
    this.pools.clear();
    for (const t of this.translators.values()) {
      t.up.close().catch((e: Error) => this.log.warn({ error: e.message }, 'translating upstream did not close cleanly'));
    }
    this.translators.clear();
  }
}

const SERVICE = Buffer.from('service', 'latin1');
