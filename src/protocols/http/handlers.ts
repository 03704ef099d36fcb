/**
 * Route handlers: how another module serves some routes of an HTTP listener
 * itself instead of having them proxied (the XML-RPC gateway at /RPC2).
 *
 * A module registers an HttpHandlerFactory under a name; a route written
 * `{ path_prefix: /RPC2, handler: xmlrpc, handler_options: {...} }` then
 * delegates to it. The factory's create() runs once per config generation
 * and route (compile the options there); the function it returns is called
 * for each request, after routing and the listener's phase filters (rate
 * limit, fault ...) let the request through, with the plain node:http
 * request and response. The handler owns the response from then on: it must
 * end it (or destroy it), and may use ctx.reject to answer with the
 * listener's own error rendering. The access log and stats see the exchange
 * when the response closes (status from res.statusCode). A handler with a
 * `retire` property is retired with the listener generation. Around-policies
 * (timeout, retry, circuit breaker) are not applied to handlers: a handler
 * that calls upstreams applies its own.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Exchange } from '../../exchange';
import type { ProxyError } from '../../errors';
import type { ConfigIssue } from '../../config/validate';
import type { Cluster } from '../../routing/cluster';
import type { Logger } from '../../logger';
import type { MetricsRegistry } from '../../metrics';
import type { TSchema } from '@sinclair/typebox';
import type { ProtocolBuildContext } from '../protocol';

/** What a handler gets with each request. */
export interface HttpHandlerContext {
  /** The exchange of this request (attributes, route name, deadline, info for the access log). */
  readonly exchange: Exchange;
  /** The route's cluster when it names one (cluster or weighted_clusters beside handler), else null. */
  readonly cluster: Cluster | null;
  /** Answers with the listener's error rendering (status, x-portway-error, small body) and ends the response. */
  reject(err: ProxyError): void;
}

/** The per-request function; `retire`, when present, runs once the generation is replaced and its last connection closed. */
export type HttpRouteHandler = ((req: IncomingMessage, res: ServerResponse, ctx: HttpHandlerContext) => void) & { retire?(): void };

export interface HttpHandlerBuildContext {
  listener: string;
  route: string;
  /** The HTTP listener's own build context (listener config, chain, stats), for handlers built on protocol code. */
  build: ProtocolBuildContext;
  /** The clusters of this config generation. */
  clusters: ReadonlyMap<string, Cluster>;
  logger: Logger;
  metrics: MetricsRegistry;
}

export interface HttpHandlerFactory {
  /** The name routes use in `handler:`. */
  readonly name: string;
  readonly description: string;
  /** JSON Schema of handler_options, checked (defaults filled in) before check(). */
  readonly optionsSchema?: TSchema;
  /** Semantic checks of a route's handler_options. Paths are relative to handler_options. */
  check?(options: Record<string, unknown>, ctx: { clusters: ReadonlySet<string> }): ConfigIssue[];
  /** Once per config generation and route. */
  create(options: Record<string, unknown>, ctx: HttpHandlerBuildContext): HttpRouteHandler;
}

export class HttpHandlerRegistry {
  private readonly factories = new Map<string, HttpHandlerFactory>();

  register(f: HttpHandlerFactory): this {
    if (this.factories.has(f.name)) throw new Error(`http route handler '${f.name}' registered twice`);
    this.factories.set(f.name, f);
    return this;
  }

  get(name: string): HttpHandlerFactory | undefined {
    return this.factories.get(name);
  }

  names(): string[] {
    return [...this.factories.keys()];
  }
}
