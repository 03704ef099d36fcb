/**
 * The XML-RPC gateway as a route handler of an HTTP listener: a route
 * `{ path_prefix: /RPC2, handler: xmlrpc, handler_options: {...} }` serves
 * XML-RPC on that path of the HTTP port (handler_options are the options of
 * an `xmlrpc` listener).
 *
 * The HTTP listener has already run its phase filters (rate limit, fault,
 * access log) for the HTTP request, so each call runs only the listener's
 * around-policies (timeout, retry, circuit breaker). Calls are routed by the
 * method rules and default_cluster (one of the two is required here: the
 * HTTP routes match HTTP attributes, not method names).
 */
import { FilterChain } from '../../filter';
import type { HttpHandlerFactory, HttpRouteHandler } from '../http/handlers';
import { XmlRpcGateway } from './gateway';
import { checkOptions, loadProblem, normalizeOptions, XmlRpcOptionsSchema } from './options';

export const xmlrpcHttpHandler: HttpHandlerFactory = {
  name: 'xmlrpc',
  description: 'XML-RPC gateway on this path: calls routed by method name to XML-RPC servers, JSON over HTTP or gRPC.',
  optionsSchema: XmlRpcOptionsSchema,
  check(options, ctx) {
    const issues = checkOptions(options, ctx.clusters, loadProblem);
    if (options['default_cluster'] === undefined && ((options['methods'] as unknown[] | undefined) ?? []).length === 0) {
      issues.push({ path: 'default_cluster', message: 'give default_cluster or methods: on an HTTP route, XML-RPC calls are routed by method name only' });
    }
    return issues;
  },
  create(options, ctx): HttpRouteHandler {
    const b = ctx.build;
    const gw = new XmlRpcGateway(
      {
        listenerName: b.listener.name,
        chain: new FilterChain(b.chain.filters.filter((f) => f.kind === 'around')),
        routerNames: new Set(),
        hasListenerRoutes: false,
        clusters: ctx.clusters,
        metrics: ctx.metrics,
        logger: ctx.logger,
        stats: b.stats,
      },
      normalizeOptions(options),
    );
    const handler = ((req, res) => gw.handle(req, res)) as HttpRouteHandler;
    handler.retire = () => gw.retire(0);
    return handler;
  },
};
