/**
 * The HTTP/1.1 proxy of one listener and config generation.
 *
 * Client side: node:http parses requests (keep-alive, pipelining with
 * responses in request order, chunked bodies, 100-continue, request and
 * header timeouts, header size limit) on sockets the listener accepted and
 * hands over; parse errors get a 4xx from the one error mapper and the
 * connection is closed, the process goes on.
 *
 * One request: scan the raw headers once (headers.ts), route (the listener's
 * HTTP route table, or the generic routes through the router filter with
 * attributes host, path, method), run the phase filters, then either hand
 * the request to a registered route handler (handlers.ts) or call the
 * upstream through the around-policies in callback form (no promise per
 * request): UpstreamCall dispatches to an undici pool of the chosen
 * endpoint, streaming the request body from the client socket (undici
 * pauses it when the upstream is slow) and the response body back through
 * res.write (the upstream parser pauses while the client is slow).
 *
 * Upgrade requests (WebSocket) go the same way with undici's `upgrade`; after
 * the upstream's 101 the two sockets are spliced (websocket.ts).
 *
 * With fast_path (the default, unless the listener has handler routes) a
 * connection starts on fast-client.ts, which reads plain bodyless requests
 * itself and gives FastRequest/FastResponse (the members of IncomingMessage
 * and ServerResponse used here) to the same code; the first request it does
 * not take hands the connection to node:http for good. Bodyless requests go
 * upstream through FastPool (fast-upstream.ts) instead of undici.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import type { Dispatcher } from 'undici';
import { Exchange, type AttributeSource } from '../../exchange';
import { ErrorCode, ProxyError, toProxyError } from '../../errors';
import { FilterChain, type Dispatch, type ResultHandler, type Verdict } from '../../filter';
import type { Cluster } from '../../routing/cluster';
import type { Endpoint } from '../../routing/endpoint';
import type { Counter, Histogram } from '../../metrics';
import type { Logger } from '../../logger';
import type { ListenerStats } from '../../listener';
import type { ConnectionHandler, ProtocolBuildContext } from '../protocol';
import type { HttpOptions } from './options';
import { HttpRouteTable, hostOnly, type CompiledRoute } from './routes';
import type { HttpHandlerRegistry, HttpHandlerContext, HttpRouteHandler } from './handlers';
import { scanRequestHeaders, responseHeaders, type ForwardSettings, type RequestHead } from './headers';
import { HttpClientError, statusOf, writeErrorResponse, writeErrorToSocket } from './error-response';
import { HttpUpstreams, UpstreamCall, type CallExchange, type ResponseSink } from './upstream';
import { spliceUpgrade, writeRawHead } from './websocket';
import { clientIp, FastClientConnection, type FastClientHost, type FastRequest, type FastResponse } from './fast-client';

/** Methods retried after a reset or timeout (when the body was not sent yet, or there is none). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

const kExchange = Symbol('portway.http.exchange');

type WithExchange = { [kExchange]?: HttpExchange };

const CLIENT_GONE = new ProxyError(ErrorCode.DownstreamClosed, 'client closed the connection', { source: 'downstream' });
const RETRIED = new ProxyError(ErrorCode.Timeout, 'try abandoned for a retry', { source: 'upstream' });

/** One request: the exchange the chain sees, the call's owner, and the response sink. */
export class HttpExchange extends Exchange implements CallExchange, ResultHandler<UpstreamCall>, ResponseSink {
  hasBody = false;
  bodySent = false;
  tried: Set<Endpoint> | null = null;
  /** The request path (before "?"), as routed. */
  path = '';
  /** The request target sent upstream (path and query, possibly rewritten). */
  target = '';
  head: RequestHead | null = null;
  httpRoute: CompiledRoute | null = null;
  opts: Dispatcher.DispatchOptions | null = null;
  /** The current (last started) upstream try. */
  call: UpstreamCall | null = null;
  /** The response was committed (head taken from an upstream, or an error written). */
  responded = false;
  /** Finished: completion hooks ran. */
  done = false;
  /** Waiting for the client to drain (a 'drain' listener is installed once). */
  drainHooked = false;
  /** For upgrade requests (no node:http response): the status sent, 0 until then. */
  upgradeStatus = 0;
  /** Authority from an absolute-form request target, which wins over Host. */
  authority: string | null = null;

  constructor(
    readonly l: HttpListener,
    readonly req: IncomingMessage,
    /** null for upgrade requests: the answer goes on `socket`. */
    readonly res: ServerResponse | null,
    readonly socket: Socket,
    /** Bytes the client sent after an upgrade request's head. */
    readonly upgradeHead: Buffer | null,
    clientAddress: string,
  ) {
    super(l.name, 'http', clientAddress, req.socket.remotePort ?? 0, req.method ?? '');
  }

  onResult(_ex: Exchange, call: UpstreamCall): void {
    this.l.respond(this, call);
  }

  onFailure(_ex: Exchange, err: ProxyError): void {
    this.l.fail(this, err);
  }

  write(chunk: Buffer): boolean {
    const res = this.res!;
    if (res.write(chunk)) return true;
    if (!this.drainHooked) {
      this.drainHooked = true;
      res.on('drain', onResponseDrain);
    }
    return false;
  }

  end(): void {
    this.res!.end();
  }

  fail(err: ProxyError): void {
    // The head is out: all the client can learn is a broken response.
    if (this.error === null) {
      this.error = err;
      this.l.stats.countError(err.code);
    }
    this.res!.destroy();
  }
}

function onResponseDrain(this: ServerResponse & WithExchange): void {
  this[kExchange]?.call?.resumeBody();
}

function onResponseClose(this: ServerResponse & WithExchange): void {
  const hx = this[kExchange];
  if (hx !== undefined) hx.l.finish(hx);
}

/** Counts a chunked request body and fails it once it passes the limit (413). */
class BodyLimit extends Transform {
  private seen = 0;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) cb(new HttpClientError(413, `request body larger than ${this.max} bytes`));
    else cb(null, chunk);
  }
}

/** Lazy attributes for generic routes and filters: host, path, method. */
const HTTP_ATTRIBUTES: AttributeSource = {
  attribute(ex, name) {
    const hx = ex as HttpExchange;
    switch (name) {
      case 'method':
        return hx.req.method;
      case 'path':
        return hx.path;
      case 'host': {
        const h = hx.authority ?? hx.head?.host ?? '';
        return h === '' ? undefined : hostOnly(h);
      }
      default:
        return undefined;
    }
  },
};

/**
 * The chain this listener runs. With its own HTTP route table the generic
 * router (always present in the built chain) is left out: routing is done
 * before the chain runs, so filters see ex.route and ex.cluster as usual.
 */
function chainFor(ctx: ProtocolBuildContext, ownRoutes: boolean): FilterChain {
  if (!ownRoutes) return ctx.chain;
  const specs = ctx.listener.filters;
  const at = specs.findIndex((f) => f.type === 'router');
  const idx = at >= 0 ? at : specs.length;
  const filters = ctx.chain.filters;
  if (filters.length !== specs.length + (at >= 0 ? 0 : 1)) throw new Error(`listener '${ctx.listener.name}': unexpected filter chain layout`);
  return new FilterChain(filters.filter((_, i) => i !== idx));
}

export class HttpListener implements ConnectionHandler {
  readonly name: string;
  readonly stats: ListenerStats;
  readonly log: Logger;
  private readonly server: Server;
  private readonly chain: FilterChain;
  private readonly dispatch: Dispatch<UpstreamCall>;
  private readonly routes: HttpRouteTable | null;
  private readonly upstreams: HttpUpstreams;
  private readonly fwd: ForwardSettings;
  private readonly idleTimeoutMs: number;
  private readonly byClass: Counter[];
  private readonly duration: Histogram;
  private readonly upgrades: Counter;
  private open = 0;
  private retired = false;
  /** Route handlers built for this generation (retired with it). */
  private readonly handlers: HttpRouteHandler[] = [];
  /** Filters that may read ex.attrs directly (generic routes, rate_limit, fault): then host, path and method are set eagerly. */
  private readonly eagerAttrs: boolean;
  /** Some filter has onComplete (access_log ...): only then is the per-request info record filled. */
  private readonly observed: boolean;
  /** Connections on the fast path (null: fast path off), and the sweep closing idle ones. */
  private readonly fastClients: Set<FastClientConnection> | null;
  private fastSweep: NodeJS.Timeout | null = null;
  private readonly fastClock = { now: performance.now(), lagMs: 0 };

  constructor(
    ctx: ProtocolBuildContext,
    readonly o: HttpOptions,
    handlers: HttpHandlerRegistry,
  ) {
    this.name = ctx.listener.name;
    this.stats = ctx.stats;
    this.log = ctx.logger;
    this.idleTimeoutMs = ctx.listener.idleTimeoutMs;
    this.fwd = { xForwarded: o.xForwarded, trustForwarded: o.trustForwarded, via: o.via };
    this.routes =
      o.routes !== null
        ? new HttpRouteTable(o.routes, ctx.clusters, (r) => {
            if (r.handler === null) return null;
            const f = handlers.get(r.handler);
            if (f === undefined) throw new Error(`listener '${this.name}': route '${r.name}': unknown handler '${r.handler}'`);
            const h = f.create(r.handlerOptions, { listener: this.name, route: r.name, build: ctx, clusters: ctx.clusters, logger: ctx.logger.child({ route: r.name }), metrics: ctx.metrics });
            this.handlers.push(h);
            return h;
          })
        : null;
    this.chain = chainFor(ctx, this.routes !== null);
    this.upstreams = new HttpUpstreams(
      { pipelining: o.upstreamPipelining, fast: o.fastPath, headersTimeoutMs: o.upstreamHeadersTimeoutMs, bodyTimeoutMs: o.upstreamBodyTimeoutMs, maxResponseHeaderSize: o.maxResponseHeaderSize },
      ctx.logger,
    );
    this.dispatch = this.chain.dispatcher(this.terminal);
    this.observed = this.chain.filters.some((f) => typeof f.onComplete === 'function');
    this.eagerAttrs = this.routes === null || this.chain.filters.some((f) => f.kind === 'phase' && typeof f.onRequest === 'function');
    const m = ctx.metrics;
    this.byClass = [1, 2, 3, 4, 5].map((c) => m.counter('portway_http_responses_total', 'HTTP responses sent to clients, by status class.', { listener: this.name, code: `${c}xx` }));
    this.duration = m.histogram('portway_http_request_duration_seconds', 'Time from a request head read to its response finished.', { listener: this.name });
    this.upgrades = m.counter('portway_http_upgrades_total', 'Upgraded (WebSocket) connections spliced to an upstream.', { listener: this.name });

    this.server = createServer({
      maxHeaderSize: o.maxHeaderSize,
      headersTimeout: o.headersTimeoutMs,
      requestTimeout: o.requestTimeoutMs,
      keepAliveTimeout: o.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(Math.min(o.headersTimeoutMs || 30_000, o.requestTimeoutMs || 30_000) / 4))),
    });
    if (o.maxRequestsPerConnection > 0) this.server.maxRequestsPerSocket = o.maxRequestsPerConnection;
    this.server.on('request', this.onRequest);
    if (o.websocket) this.server.on('upgrade', this.onUpgrade);
    this.server.on('connect', this.onConnectMethod);
    this.server.on('clientError', this.onClientError);
    // The listener owns the socket; this starts node:http's request/headers timeout checks without binding a port.
    this.server.emit('listening');
    this.fastClients = o.fastPath && this.handlers.length === 0 ? new Set() : null;
  }

  handle(socket: Socket): void {
    this.open++;
    socket.once('close', this.onSocketClose);
    const fast = this.fastClients;
    if (fast === null) {
      this.server.emit('connection', socket);
      return;
    }
    const clock = this.fastClock;
    if (this.fastSweep === null && this.o.keepAliveTimeoutMs > 0) {
      clock.lagMs = Math.max(50, Math.min(1000, Math.floor(this.o.keepAliveTimeoutMs / 10)));
      clock.now = performance.now();
      this.fastSweep = setInterval(() => {
        const now = performance.now();
        clock.now = now;
        for (const c of fast) c.sweep(now);
      }, clock.lagMs);
      this.fastSweep.unref();
    }
    const settings = { maxHeaderSize: this.o.maxHeaderSize, keepAliveTimeoutMs: this.o.keepAliveTimeoutMs, maxRequests: this.o.maxRequestsPerConnection, clock };
    new FastClientConnection(this.fastHost, socket, settings, fast);
  }

  private readonly fastHost: FastClientHost = {
    fastRequest: (req: FastRequest, res: FastResponse): boolean => {
      // The two stand in for node:http's objects: they have every member this file and error-response.ts use.
      const r = req as unknown as IncomingMessage;
      const s = res as unknown as ServerResponse;
      const hx = new HttpExchange(this, r, s, req.socket, null, req.clientIp);
      (s as WithExchange)[kExchange] = hx;
      res.on('close', onResponseClose as unknown as (this: FastResponse) => void);
      if (this.retired) res.shouldKeepAlive = false;
      this.begin(hx);
      return true;
    },
    handover: (socket: Socket): void => {
      this.server.emit('connection', socket);
    },
  };

  private readonly onSocketClose = (): void => {
    if (--this.open === 0 && this.retired) this.shutdownServer();
  };

  retire(): void {
    if (this.retired) return;
    this.retired = true;
    // Keep-alive connections of this generation answer what they get with Connection: close; idle ones close
    // after keep_alive_timeout (closing them now would race with clients reusing them at this moment).
    if (this.open === 0) this.shutdownServer();
  }

  private shutdownServer(): void {
    if (this.fastSweep !== null) {
      clearInterval(this.fastSweep);
      this.fastSweep = null;
    }
    this.server.close(() => {});
    this.upstreams.close();
    for (const h of this.handlers) {
      try {
        h.retire?.();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'route handler did not retire cleanly');
      }
    }
  }

  // Client side.

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const hx = new HttpExchange(this, req, res, req.socket, null, clientIp(req.socket));
    (res as WithExchange)[kExchange] = hx;
    res.on('close', onResponseClose);
    if (this.retired) res.shouldKeepAlive = false;
    this.begin(hx);
  };

  private readonly onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    const hx = new HttpExchange(this, req, null, socket, head, clientIp(socket));
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.finish(hx));
    this.begin(hx);
  };

  private readonly onConnectMethod = (_req: IncomingMessage, socket: Socket): void => {
    this.stats.countError(ErrorCode.Protocol);
    writeErrorToSocket(socket, new HttpClientError(405, 'CONNECT is not supported'), this.o.errorFormat);
  };

  private readonly onClientError = (err: NodeJS.ErrnoException, socket: Socket): void => {
    const code = err.code ?? '';
    if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
      socket.destroy();
      return;
    }
    let pe: ProxyError;
    if (code === 'HPE_HEADER_OVERFLOW') pe = new HttpClientError(431, 'request head too large');
    else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') pe = new ProxyError(ErrorCode.IdleTimeout, 'request not received in time', { source: 'downstream' });
    else if (code === 'HPE_UNEXPECTED_CONTENT_LENGTH' || code === 'HPE_INVALID_TRANSFER_ENCODING') pe = new HttpClientError(400, 'invalid message framing');
    else pe = new HttpClientError(400, `malformed request (${code || 'parse error'})`);
    this.stats.countError(pe.code);
    this.byClass[3]!.inc();
    // Bytes of a response may be queued for this socket (pipelining): then only closing is safe.
    if ((socket as Socket & { _httpMessage?: unknown })._httpMessage) {
      socket.destroy();
      return;
    }
    writeErrorToSocket(socket, pe, this.o.errorFormat);
  };

  /** Parses what routing needs, routes, runs the phase filters. */
  private begin(hx: HttpExchange): void {
    const req = hx.req;
    const url = req.url ?? '';
    let target: string;
    if (url.charCodeAt(0) === 0x2f /* / */) target = url;
    else if (/^https?:\/\//i.test(url)) {
      // absolute-form (RFC 9112 3.2.2): its authority replaces Host.
      const start = url.indexOf('//') + 2;
      const slash = url.indexOf('/', start);
      const qm = url.indexOf('?', start);
      const end = slash >= 0 ? (qm >= 0 ? Math.min(slash, qm) : slash) : qm >= 0 ? qm : url.length;
      hx.authority = url.slice(start, end);
      target = slash >= 0 && (qm < 0 || slash < qm) ? url.slice(slash) : `/${url.slice(end)}`;
    } else if (url === '*' && req.method === 'OPTIONS') {
      // asterisk-form asks about the server itself; the upstream client (undici) cannot send it.
      this.fail(hx, new HttpClientError(501, 'OPTIONS * is not forwarded'));
      return;
    } else {
      this.fail(hx, new HttpClientError(400, 'invalid request target'));
      return;
    }
    const q = target.indexOf('?');
    hx.path = q < 0 ? target : target.slice(0, q);
    hx.target = target;
    const head = scanRequestHeaders(req.rawHeaders, hx.clientAddress, 'http', this.fwd);
    hx.head = head;
    hx.hasBody = head.chunked || head.contentLength > 0;
    hx.idempotent = IDEMPOTENT.has(req.method ?? '');
    hx.attributeSource = HTTP_ATTRIBUTES;
    if (this.eagerAttrs) {
      const a = hx.attrs;
      a['method'] = req.method;
      a['path'] = hx.path;
      a['host'] = HTTP_ATTRIBUTES.attribute(hx, 'host');
    }
    const max = this.o.maxBodySize;
    if (max > 0 && head.contentLength > max) {
      this.fail(hx, new HttpClientError(413, `request body of ${head.contentLength} bytes is larger than ${max}`));
      return;
    }
    if (this.routes !== null) {
      const hostHeader = hx.authority ?? head.host;
      const r = this.routes.match(this.routes.needsHost && hostHeader !== '' ? hostOnly(hostHeader) : '', hx.path, req.method ?? '', req);
      if (r === null) {
        this.fail(hx, new ProxyError(ErrorCode.NoRoute, `no route of listener '${this.name}' matches`, { source: 'downstream' }));
        return;
      }
      hx.httpRoute = r;
      hx.route = r.name;
      hx.cluster = r.pick();
    }
    let v: Verdict | Promise<Verdict>;
    try {
      v = this.chain.runRequest(hx);
    } catch (err) {
      this.fail(hx, toProxyError(err));
      return;
    }
    if (v instanceof Promise) {
      v.then(
        (verdict) => this.proceed(hx, verdict),
        (err) => this.fail(hx, toProxyError(err)),
      );
    } else this.proceed(hx, v);
  }

  /** After the phase filters: a local reply, a route handler, or the upstream call. */
  private proceed(hx: HttpExchange, v: Verdict): void {
    if (hx.done) return;
    if (v !== undefined) {
      this.fail(hx, v.error);
      return;
    }
    const route = hx.httpRoute;
    if (route !== null && route.handler !== null) {
      this.runHandler(hx, route);
      return;
    }
    if (hx.cluster === null) {
      this.fail(hx, new ProxyError(ErrorCode.NoRoute, 'no cluster chosen', { source: 'downstream' }));
      return;
    }
    hx.opts = this.requestOptions(hx);
    this.dispatch(hx, hx);
  }

  private runHandler(hx: HttpExchange, route: CompiledRoute): void {
    if (hx.res === null) {
      this.fail(hx, new HttpClientError(400, `route '${route.name}' does not accept upgrade requests`));
      return;
    }
    hx.responded = true;
    const ctx: HttpHandlerContext = { exchange: hx, cluster: hx.cluster, reject: (err) => this.fail(hx, err, true) };
    try {
      route.handler!(hx.req, hx.res, ctx);
    } catch (err) {
      this.fail(hx, toProxyError(err), true);
    }
  }

  /** The undici request of this exchange: target, method, forwarded headers, the body stream. */
  private requestOptions(hx: HttpExchange): Dispatcher.DispatchOptions {
    const head = hx.head!;
    const route = hx.httpRoute;
    let path = hx.target;
    if (route !== null && route.prefixRewrite !== null) {
      const rest = path.slice(route.prefixLength);
      path = route.prefixRewrite + rest;
      if (path === '' || path.charCodeAt(0) === 0x3f /* ? */) path = `/${path}`;
    }
    const headers = head.headers;
    const host = route?.hostRewrite ?? (this.o.preserveHost ? (hx.authority ?? head.host) : '');
    if (host !== '') headers.push('host', host);
    let body: Dispatcher.DispatchOptions['body'] = null;
    if (hx.hasBody) {
      const max = this.o.maxBodySize;
      body = head.chunked && max > 0 ? hx.req.pipe(new BodyLimit(max)) : hx.req;
    }
    const opts: Dispatcher.DispatchOptions = { path, method: hx.req.method as Dispatcher.HttpMethod, headers, body };
    if (hx.res === null && head.upgrade !== null) opts.upgrade = head.upgrade;
    return opts;
  }

  /** The terminal of the chain: one try at one endpoint of ex.cluster. */
  private readonly terminal: Dispatch<UpstreamCall> = (ex, h) => {
    const hx = ex as HttpExchange;
    const prev = hx.call;
    if (prev !== null && !prev.finished) prev.abort(RETRIED);
    if (hx.done) {
      h.onFailure(hx, CLIENT_GONE);
      return;
    }
    if (hx.bodySent) {
      h.onFailure(hx, new ProxyError(ErrorCode.UpstreamReset, 'the request body was already sent once; it cannot be sent again', { source: 'upstream' }));
      return;
    }
    const cluster = hx.cluster as Cluster;
    let ep: Endpoint | null;
    if (hx.attempts === 0) ep = cluster.pick(null);
    else {
      const tried = (hx.tried ??= new Set());
      if (hx.endpoint !== null) tried.add(hx.endpoint);
      // Every endpoint tried already: the retry goes to any of them again.
      ep = cluster.pick(tried) ?? cluster.pick(null);
    }
    if (ep === null) {
      h.onFailure(hx, new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${cluster.name}' has no usable endpoint`, { source: 'upstream', retryable: true }));
      return;
    }
    hx.attempts++;
    hx.endpoint = ep;
    const call = new UpstreamCall(hx, h, ep, cluster, hx.opts!, this.upstreams);
    hx.call = call;
    this.upstreams.send(call);
  };

  /** The chain let a response head through: send it to the client and stream the body. */
  respond(hx: HttpExchange, call: UpstreamCall): void {
    if (hx.done || hx.responded) {
      call.abort(CLIENT_GONE);
      return;
    }
    if (hx.call !== call && hx.call !== null) hx.call.abort(RETRIED);
    hx.call = call;
    hx.responded = true;
    hx.upgradeStatus = call.status;
    if (call.upgraded !== null) {
      this.upgrades.inc();
      spliceUpgrade(hx.socket, hx.upgradeHead, call.upgraded, responseHeaders(call.rawHeaders, this.o.via, true), call.statusText, this.idleTimeoutMs);
      return;
    }
    const headers = responseHeaders(call.rawHeaders, this.o.via);
    const res = hx.res;
    if (res === null) {
      // An upgrade request the upstream answered without switching: a plain response, then close.
      writeRawHead(hx.socket, call.status, call.statusText, headers);
      call.attach(new RawSocketSink(hx.socket, call));
      return;
    }
    try {
      res.writeHead(call.status, call.statusText, headers);
    } catch (err) {
      hx.responded = false;
      call.abort(CLIENT_GONE);
      this.fail(hx, new ProxyError(ErrorCode.UpstreamReset, `upstream response cannot be forwarded: ${(err as Error).message}`, { source: 'upstream' }));
      return;
    }
    call.attach(hx);
  }

  /** Answers with the error (or breaks the connection when the head is out). */
  fail(hx: HttpExchange, err: ProxyError, handlerOwned = false): void {
    if (hx.done) return;
    const call = hx.call;
    if (call !== null && !call.finished) call.abort(err);
    if (hx.error === null) {
      hx.error = err;
      this.stats.countError(err.code);
    }
    if (hx.responded && !handlerOwned) {
      hx.res?.destroy();
      if (hx.res === null) hx.socket.destroy();
      return;
    }
    hx.responded = true;
    const res = hx.res;
    if (res === null) {
      hx.upgradeStatus = statusOf(err);
      writeErrorToSocket(hx.socket, err, this.o.errorFormat);
      return;
    }
    // An unread body: close rather than read (and drop) it all.
    const close = err instanceof HttpClientError || (hx.hasBody && !hx.req.complete);
    if (!writeErrorResponse(res, err, this.o.errorFormat, close)) res.destroy();
  }

  /** The response closed (finished or broken): count it and run the completion hooks, once. */
  finish(hx: HttpExchange): void {
    if (hx.done) return;
    hx.done = true;
    const res = hx.res;
    let status: number;
    if (res !== null) {
      status = res.statusCode;
      if (!res.writableFinished) {
        if (hx.error === null) {
          hx.error = CLIENT_GONE;
          this.stats.countError(CLIENT_GONE.code);
        }
        const call = hx.call;
        if (call !== null && !call.finished) call.abort(CLIENT_GONE);
      }
    } else {
      status = hx.upgradeStatus;
      const call = hx.call;
      if (call !== null && !call.finished) call.abort(CLIENT_GONE);
    }
    if (status >= 100 && status < 600) this.byClass[Math.floor(status / 100) - 1]!.inc();
    this.duration.observe((performance.now() - hx.startedAt) / 1000);
    if (!this.observed) return;
    const info = hx.info;
    info['status'] = status;
    info['path'] = hx.path.length > 256 ? hx.path.slice(0, 256) : hx.path;
    info['bytes_out'] = hx.call?.bytes ?? 0;
    this.chain.complete(hx);
  }
}

/** A response body written straight to a socket (close-delimited), for upgrade requests not switched. */
class RawSocketSink implements ResponseSink {
  private hooked = false;
  constructor(
    private readonly socket: Socket,
    private readonly call: UpstreamCall,
  ) {}
  write(chunk: Buffer): boolean {
    if (this.socket.write(chunk)) return true;
    if (!this.hooked) {
      this.hooked = true;
      this.socket.on('drain', () => this.call.resumeBody());
    }
    return false;
  }
  end(): void {
    this.socket.end();
  }
  fail(): void {
    this.socket.destroy();
  }
}
