/**
 * The XML-RPC gateway of one listener and config generation: takes an HTTP
 * request, routes each call by its method name, runs the filter chain, calls
 * the upstream (XML-RPC passthrough, JSON over HTTP or gRPC) and writes a
 * methodResponse or a fault. Also serves system.listMethods,
 * system.methodHelp and system.multicall itself.
 *
 * Faults travel with HTTP 200, as XML-RPC clients expect; only requests that
 * are not XML-RPC calls at the HTTP level get an HTTP status (405 for a
 * method other than POST, 413 for a body over max_body_bytes).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Exchange } from '../../exchange';
import { ErrorCode, ProxyError, toProxyError } from '../../errors';
import { FilterChain, type Invoke, type Verdict } from '../../filter';
import type { Counter, Histogram, MetricsRegistry } from '../../metrics';
import type { Logger } from '../../logger';
import type { ListenerStats } from '../../listener';
import type { Cluster } from '../../routing/cluster';
import type { ProtocolBuildContext } from '../protocol';
import { GrpcUpstream } from '../../translate/grpc';
import { HttpJsonUpstream } from '../../translate/http-json';
import { RpcFault, type RpcUpstream, type RpcValue } from '../../translate/rpc-upstream';
import { checkWellFormed, decodeMethodCall, peekMethodName, XmlRpcDecodeError, type MethodCall } from './decode';
import { encodeFault, encodeMethodResponse } from './encode';
import { FaultCode, faultOf, type Fault } from './faults';
import type { UpstreamSpec, XmlRpcOptions } from './options';
import { XmlRpcUpstream } from './passthrough';

/** What a call produced: a value, an application fault, or (passthrough) the server's reply document as is. */
export type CallReply = { kind: 'value'; value: RpcValue } | { kind: 'fault'; fault: Fault } | { kind: 'raw'; body: Buffer };

interface Binding {
  cluster: Cluster;
  upstream: RpcUpstream;
  /** Set for XML-RPC passthrough upstreams. */
  passthrough: XmlRpcUpstream | null;
  http: HttpJsonUpstream | null;
  grpc: GrpcUpstream | null;
  methods: string[];
  calls: { ok: Counter; fault: Counter; error: Counter };
  latency: Histogram;
}

/** The call an exchange carries to the terminal of the composed around-policies. */
interface CallJob {
  name: string;
  service: string;
  method: string;
  params: RpcValue[];
  /** The client's document, for passthrough; null when Portway encodes the call itself. */
  raw: string | null;
  path: string;
}

type GatewayExchange = Exchange & { job: CallJob };

const SYSTEM_METHODS = ['system.listMethods', 'system.methodHelp', 'system.multicall'];
const TEXT_XML = 'text/xml; charset=utf-8';

export interface XmlRpcGatewayContext {
  listenerName: string;
  chain: FilterChain;
  /** Names of the chain's router filter instances (skipped when method rules route). */
  routerNames: ReadonlySet<string>;
  hasListenerRoutes: boolean;
  clusters: ReadonlyMap<string, Cluster>;
  metrics: MetricsRegistry;
  logger: Logger;
  stats: ListenerStats;
}

export function gatewayContext(ctx: ProtocolBuildContext): XmlRpcGatewayContext {
  const routerNames = new Set(ctx.listener.filters.filter((f) => f.type === 'router').map((f) => f.name));
  routerNames.add('router');
  return {
    listenerName: ctx.listener.name,
    chain: ctx.chain,
    routerNames,
    hasListenerRoutes: ctx.listener.routes.length > 0,
    clusters: ctx.clusters,
    metrics: ctx.metrics,
    logger: ctx.logger,
    stats: ctx.stats,
  };
}

export class XmlRpcGateway {
  private readonly name: string;
  private readonly log: Logger;
  private readonly stats: ListenerStats;
  private readonly bindings = new Map<Cluster, Binding>();
  /** Method rules, longest prefix first, resolved to clusters. */
  private readonly rules: { prefix: string; cluster: Cluster }[];
  private readonly defaultCluster: Cluster | null;
  /** The chain without its router: used when method rules chose the cluster. */
  private readonly ruleChain: FilterChain;
  private readonly invokeRule: Invoke<CallReply>;
  private readonly invokeRouted: Invoke<CallReply>;
  private readonly tooLarge: Counter;
  private readonly badRequests: Counter;
  private retired = false;

  constructor(
    private readonly ctx: XmlRpcGatewayContext,
    readonly options: XmlRpcOptions,
  ) {
    this.name = ctx.listenerName;
    this.log = ctx.logger;
    this.stats = ctx.stats;
    const byName = (n: string): Cluster => {
      const c = ctx.clusters.get(n);
      if (c === undefined) throw new Error(`listener '${this.name}': unknown cluster '${n}'`);
      return c;
    };
    this.rules = options.methodRules.map((r) => ({ prefix: r.prefix, cluster: byName(r.cluster) }));
    this.defaultCluster = options.defaultCluster !== null ? byName(options.defaultCluster) : null;
    // Build every configured upstream now: a .proto that does not load fails the config generation, not a request.
    for (const name of options.upstreams.keys()) this.binding(byName(name));
    for (const r of this.rules) this.binding(r.cluster);
    if (this.defaultCluster !== null) this.binding(this.defaultCluster);
    this.ruleChain = new FilterChain(ctx.chain.filters.filter((f) => !(f.kind === 'phase' && ctx.routerNames.has(f.name))));
    const terminal: Invoke<CallReply> = (ex) => this.terminal(ex as GatewayExchange);
    this.invokeRule = this.ruleChain.compose(terminal);
    this.invokeRouted = ctx.chain.compose(terminal);
    this.tooLarge = ctx.metrics.counter('portway_xmlrpc_bad_requests_total', 'XML-RPC requests refused before routing, by reason.', { listener: this.name, reason: 'too_large' });
    this.badRequests = ctx.metrics.counter('portway_xmlrpc_bad_requests_total', 'XML-RPC requests refused before routing, by reason.', { listener: this.name, reason: 'malformed' });
  }

  private binding(cluster: Cluster): Binding {
    let b = this.bindings.get(cluster);
    if (b !== undefined) return b;
    const spec: UpstreamSpec = this.options.upstreams.get(cluster.name) ?? { type: 'xmlrpc', pool: {} };
    const labels = { listener: this.name, cluster: cluster.name, kind: spec.type };
    const counter = (result: string) =>
      this.ctx.metrics.counter('portway_xmlrpc_calls_total', 'XML-RPC calls answered, by upstream cluster and result (ok, fault = an application fault, error = a Portway or transport fault).', { ...labels, result });
    const base = {
      cluster,
      passthrough: null,
      http: null,
      grpc: null,
      methods: [] as string[],
      calls: { ok: counter('ok'), fault: counter('fault'), error: counter('error') },
      latency: this.ctx.metrics.histogram('portway_xmlrpc_call_duration_seconds', 'Time from a call decoded to its reply ready, by upstream cluster.', labels),
    };
    const pool = { connectTimeoutMs: cluster.config.connectTimeoutMs, connections: cluster.config.limits.maxConnectionsPerEndpoint };
    switch (spec.type) {
      case 'xmlrpc': {
        const up = new XmlRpcUpstream(cluster, { ...(spec.path !== undefined ? { path: spec.path } : {}), pool: { ...pool, ...spec.pool } });
        b = { ...base, upstream: up, passthrough: up };
        break;
      }
      case 'http_json': {
        const up = new HttpJsonUpstream(cluster, { ...spec.options, pool: { ...pool, ...spec.options.pool } });
        b = { ...base, upstream: up, http: up, methods: [...spec.methods, ...up.knownMethods()] };
        break;
      }
      case 'grpc': {
        const up = new GrpcUpstream(cluster, spec.options);
        b = { ...base, upstream: up, grpc: up, methods: up.knownMethods() };
        break;
      }
    }
    this.bindings.set(cluster, b);
    return b;
  }

  /** The cluster method rules give a method, or null (then the listener routes decide). */
  private ruleTarget(name: string): Cluster | null {
    for (const r of this.rules) if (name.startsWith(r.prefix)) return r.cluster;
    return this.defaultCluster;
  }

  // ---- HTTP ---------------------------------------------------------------

  /** Serves one HTTP request (also the hook an HTTP listener mounts on a path). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.retired) res.setHeader('connection', 'close');
    if (req.method !== 'POST') {
      req.resume();
      this.plain(res, 405, 'XML-RPC calls are POST requests\n', { allow: 'POST' });
      return;
    }
    const max = this.options.maxBodyBytes;
    const declared = Number(req.headers['content-length'] ?? -1);
    if (declared > max) {
      this.refuseTooLarge(req, res);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (c: Buffer) => {
      if (refused) return;
      size += c.length;
      if (size > max) {
        refused = true;
        chunks.length = 0;
        this.refuseTooLarge(req, res);
        return;
      }
      chunks.push(c);
    });
    req.on('error', () => {
      // The client went away mid-body: nothing to answer.
      refused = true;
    });
    req.on('end', () => {
      if (refused) return;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      this.serve(body.toString('utf8'), req, res).catch((e: unknown) => {
        // A bug, not a client error: log it, answer a fault without details.
        this.log.error({ err: e }, 'xmlrpc request failed unexpectedly');
        this.send(res, encodeFault(FaultCode.Internal, `internal error (${ErrorCode.Internal})`));
      });
    });
  }

  private refuseTooLarge(req: IncomingMessage, res: ServerResponse): void {
    this.tooLarge.inc();
    this.stats.countError(ErrorCode.Protocol);
    // The rest of the body is not read: the connection closes after the answer.
    req.pause();
    this.plain(res, 413, `request body over ${this.options.maxBodyBytes} bytes\n`, { connection: 'close' });
  }

  private plain(res: ServerResponse, status: number, text: string, headers: Record<string, string>): void {
    if (res.headersSent) return;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  private send(res: ServerResponse, body: string | Buffer): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(200, { 'content-type': TEXT_XML, 'content-length': typeof body === 'string' ? Buffer.byteLength(body) : body.length });
    res.end(body);
  }

  private async serve(text: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const client = { address: req.socket.remoteAddress ?? '', port: req.socket.remotePort ?? 0 };
    const path = req.url ?? '/';
    // Passthrough needs only the method name: peek it, forward the document untouched.
    const peeked = peekMethodName(text);
    if (peeked !== null && !peeked.startsWith('system.')) {
      const target = this.ruleTarget(peeked);
      if (target !== null && this.binding(target).passthrough !== null) {
        try {
          checkWellFormed(text);
        } catch (e) {
          if (!(e instanceof XmlRpcDecodeError)) throw e;
          this.refuseMalformed(res, e);
          return;
        }
        const r = await this.dispatch(newJob(peeked, [], text, path), client);
        this.send(res, render(r));
        return;
      }
    }
    let call: MethodCall;
    try {
      call = decodeMethodCall(text);
    } catch (e) {
      if (!(e instanceof XmlRpcDecodeError)) throw e;
      this.refuseMalformed(res, e);
      return;
    }
    const r = call.methodName.startsWith('system.')
      ? await this.system(call, client, path)
      : await this.dispatch(newJob(call.methodName, call.params, text, path), client);
    this.send(res, render(r));
  }

  private refuseMalformed(res: ServerResponse, e: XmlRpcDecodeError): void {
    this.badRequests.inc();
    this.stats.countError(ErrorCode.Protocol);
    this.send(res, encodeFault(e.parse ? FaultCode.Parse : FaultCode.InvalidRequest, `${e.message} (${ErrorCode.Protocol})`));
  }

  // ---- one call -------------------------------------------------------------

  /** Routes one call, runs the filter chain and the upstream. Never rejects: failures become faults. */
  async dispatch(job: CallJob, client: { address: string; port: number }): Promise<CallReply> {
    const ex = new Exchange(this.name, 'xmlrpc', client.address, client.port, job.name) as GatewayExchange;
    ex.job = job;
    ex.attrs['method'] = job.name;
    ex.attrs['service'] = job.service;
    const idem = this.options.idempotent;
    ex.idempotent = idem !== null && idem.test(job.name);
    const target = this.ruleTarget(job.name);
    const chain = target !== null ? this.ruleChain : this.ctx.chain;
    if (target !== null) ex.cluster = target;
    else if (!this.ctx.hasListenerRoutes) return this.failed(ex, chain, new ProxyError(ErrorCode.NoRoute, `no route for method '${job.name}'`, { source: 'downstream' }));
    const started = performance.now();
    try {
      let v: Verdict | Promise<Verdict> = chain.runRequest(ex);
      if (v !== undefined && typeof (v as Promise<Verdict>).then === 'function') v = await v;
      if (v !== undefined) return this.failed(ex, chain, (v as { error: ProxyError }).error);
      if (ex.cluster === null) return this.failed(ex, chain, new ProxyError(ErrorCode.NoRoute, `no route for method '${job.name}'`, { source: 'downstream' }));
      const b = this.binding(ex.cluster);
      const r = await (target !== null ? this.invokeRule : this.invokeRouted)(ex);
      b.latency.observe((performance.now() - started) / 1000);
      if (r.kind === 'fault') {
        b.calls.fault.inc();
        ex.info['fault'] = r.fault.faultCode;
      } else b.calls.ok.inc();
      chain.complete(ex);
      return r;
    } catch (e) {
      const err = toProxyError(e);
      if (err.code === ErrorCode.Internal) this.log.error({ err: e, method: job.name }, 'xmlrpc call failed unexpectedly');
      if (ex.cluster !== null) {
        const b = this.bindings.get(ex.cluster);
        b?.calls.error.inc();
        b?.latency.observe((performance.now() - started) / 1000);
      }
      return this.failed(ex, chain, err);
    }
  }

  private failed(ex: Exchange, chain: FilterChain, err: ProxyError): CallReply {
    ex.error = err;
    this.stats.countError(err.code);
    chain.complete(ex);
    const f = faultOf(err);
    ex.info['fault'] = f.faultCode;
    return { kind: 'fault', fault: f };
  }

  /** The upstream call, run inside the around-policies (retry may call it again). */
  private async terminal(ex: GatewayExchange): Promise<CallReply> {
    const job = ex.job;
    const b = this.binding(ex.cluster!);
    const deadline = this.wallDeadline(ex);
    try {
      if (b.passthrough !== null && job.raw !== null) {
        const r = await b.passthrough.forward(job.raw, job.path, deadline);
        return r.ok ? { kind: 'raw', body: r.body } : { kind: 'fault', fault: { faultCode: r.fault.faultCode, faultString: r.fault.faultString } };
      }
      const value =
        b.passthrough !== null
          ? await b.passthrough.call({ service: job.service, method: job.method, args: job.params, deadline }, job.path)
          : await b.upstream.call({ service: job.service, method: job.method, args: job.params, deadline });
      return { kind: 'value', value };
    } catch (e) {
      // An application fault is an answer, not a failure of the upstream: breakers and retries leave it alone.
      if (e instanceof RpcFault) return { kind: 'fault', fault: { faultCode: e.faultCode | 0, faultString: e.faultString } };
      throw e;
    }
  }

  /** The exchange deadline (performance.now() clock) on the wall clock; the listener's timeout when none is set. */
  private wallDeadline(ex: Exchange): number {
    const now = performance.now();
    const d = ex.deadline !== 0 ? ex.deadline : now + this.options.timeoutMs;
    return Date.now() + (d - now);
  }

  // ---- system.* --------------------------------------------------------------

  private async system(call: MethodCall, client: { address: string; port: number }, path: string): Promise<CallReply> {
    switch (call.methodName) {
      case 'system.listMethods':
        return { kind: 'value', value: await this.listMethods(path) };
      case 'system.methodHelp': {
        const name = call.params[0];
        if (typeof name !== 'string') return invalidParams('system.methodHelp takes one string: a method name');
        return { kind: 'value', value: await this.methodHelp(name, path) };
      }
      case 'system.multicall': {
        const calls = call.params[0];
        if (!Array.isArray(calls) || call.params.length !== 1) return invalidParams('system.multicall takes one array of {methodName, params} structs');
        const out: RpcValue[] = [];
        // One after the other, in order: later calls may depend on earlier ones.
        for (const c of calls) out.push(await this.multicallOne(c, client, path));
        return { kind: 'value', value: out };
      }
      default: {
        // Other system.* methods belong to the upstream (system.methodSignature, system.getCapabilities ...).
        return this.dispatch(newJob(call.methodName, call.params, null, path), client);
      }
    }
  }

  private async multicallOne(c: RpcValue, client: { address: string; port: number }, path: string): Promise<RpcValue> {
    const fault = (f: Fault): RpcValue => ({ faultCode: f.faultCode, faultString: f.faultString });
    if (c === null || typeof c !== 'object' || Array.isArray(c) || Buffer.isBuffer(c) || c instanceof Date) {
      return fault({ faultCode: FaultCode.InvalidParams, faultString: 'each multicall entry must be a struct {methodName, params}' });
    }
    const name = c['methodName'];
    const params = c['params'] ?? [];
    if (typeof name !== 'string' || !Array.isArray(params)) return fault({ faultCode: FaultCode.InvalidParams, faultString: 'each multicall entry needs methodName (string) and params (array)' });
    if (name === 'system.multicall') return fault({ faultCode: FaultCode.InvalidRequest, faultString: 'system.multicall cannot be nested' });
    const r = name.startsWith('system.') ? await this.system({ methodName: name, params }, client, path) : await this.dispatch(newJob(name, params, null, path), client);
    if (r.kind === 'value') return [r.value];
    if (r.kind === 'fault') return fault(r.fault);
    return fault({ faultCode: FaultCode.Internal, faultString: 'unexpected raw reply' });
  }

  private async listMethods(path: string): Promise<string[]> {
    const names = new Set<string>([...SYSTEM_METHODS, ...this.options.knownMethods, ...this.options.help.keys()]);
    const asks: Promise<void>[] = [];
    for (const b of this.bindings.values()) {
      for (const m of b.methods) names.add(m);
      if (b.passthrough !== null) {
        const up = b.passthrough;
        asks.push(
          up
            .call({ service: 'system', method: 'listMethods', args: [], deadline: Date.now() + Math.min(this.options.timeoutMs, 5000) }, path)
            .then((v) => {
              if (Array.isArray(v)) for (const m of v) if (typeof m === 'string' && this.servedHere(m, b.cluster)) names.add(m);
            })
            // A server without system.listMethods (the npm xmlrpc one answers 404) lists nothing.
            .catch(() => undefined),
        );
      }
    }
    await Promise.all(asks);
    return [...names].sort();
  }

  /** True when calls to method m would reach cluster c (so its server's list is the truth for m). */
  private servedHere(m: string, c: Cluster): boolean {
    if (m.startsWith('system.')) return false;
    const t = this.ruleTarget(m);
    return t === null || t === c;
  }

  private async methodHelp(name: string, path: string): Promise<string> {
    const configured = this.options.help.get(name);
    if (configured !== undefined) return configured;
    if (name === 'system.listMethods') return 'Lists the methods this endpoint serves.';
    if (name === 'system.methodHelp') return 'Returns the help text of a method.';
    if (name === 'system.multicall') return 'Runs an array of {methodName, params} calls; returns [result] or a fault struct for each.';
    const target = this.ruleTarget(name);
    if (target === null) return '';
    const b = this.binding(target);
    const { service, method } = split(name);
    if (b.grpc !== null) return b.grpc.describe(service, method) ?? '';
    if (b.http !== null) return `JSON over HTTP: POST ${b.http.pathOf(service, method)} (cluster ${target.name})`;
    try {
      const v = await b.passthrough!.call({ service: 'system', method: 'methodHelp', args: [name], deadline: Date.now() + Math.min(this.options.timeoutMs, 5000) }, path);
      return typeof v === 'string' ? v : '';
    } catch {
      return '';
    }
  }

  /** No new work after a reload; upstream connections close once calls in flight are done. */
  retire(graceMs = 30_000): void {
    if (this.retired) return;
    this.retired = true;
    const t = setTimeout(() => void this.close(), graceMs);
    t.unref();
  }

  async close(): Promise<void> {
    const all = [...this.bindings.values()];
    this.bindings.clear();
    await Promise.all(all.map((b) => b.upstream.close().catch(() => undefined)));
  }
}

/** A CallJob (one object of one shape: no spread of split()'s result). */
function newJob(name: string, params: RpcValue[], raw: string | null, path: string): CallJob {
  const i = name.lastIndexOf('.');
  return i < 0 ? { name, service: '', method: name, params, raw, path } : { name, service: name.slice(0, i), method: name.slice(i + 1), params, raw, path };
}

function split(name: string): { service: string; method: string } {
  const i = name.lastIndexOf('.');
  return i < 0 ? { service: '', method: name } : { service: name.slice(0, i), method: name.slice(i + 1) };
}

function invalidParams(text: string): CallReply {
  return { kind: 'fault', fault: { faultCode: FaultCode.InvalidParams, faultString: text } };
}

function render(r: CallReply): string | Buffer {
  switch (r.kind) {
    case 'raw':
      return r.body;
    case 'value':
      return encodeMethodResponse(r.value);
    case 'fault':
      return encodeFault(r.fault.faultCode, r.fault.faultString);
  }
}
