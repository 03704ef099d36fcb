/**
 * The HTTP/1.1 protocol: a reverse proxy listener (node:http downstream,
 * undici pools upstream) with HTTP routes, the listener's filter chain,
 * WebSocket pass-through, and route handlers other modules register (the
 * XML-RPC gateway mounts itself this way).
 *
 * Routing, two ways:
 * - options.routes (HTTP routes: host, path / path_prefix, methods,
 *   headers; the most specific match wins, see routes.ts), or
 * - the listener's generic `routes` through the router filter, matching the
 *   attributes host, path and method (first match wins).
 */
import { validateAgainst, type ConfigIssue } from '../../config/validate';
import type { RawStringMatch } from '../../config/schema';
import { parseDuration } from '../../util/duration';
import type { ProtocolModule } from '../protocol';
import { HttpHandlerRegistry } from './handlers';
import { HttpListener } from './listener';
import { HttpOptionsSchema, normalizeOptions, type RawHttpOptions } from './options';

export { HttpHandlerRegistry } from './handlers';
export type { HttpHandlerFactory, HttpRouteHandler, HttpHandlerContext, HttpHandlerBuildContext } from './handlers';
export { httpHealthProbe } from './health-probe';

function checkStringMatch(m: RawStringMatch, path: string, issues: ConfigIssue[]): void {
  const given = (['exact', 'prefix', 'suffix', 'regex', 'present'] as const).filter((k) => m[k] !== undefined);
  if (given.length !== 1) issues.push({ path, message: 'give exactly one of exact, prefix, suffix, regex or present' });
  if (m.regex !== undefined) {
    try {
      new RegExp(m.regex);
    } catch (err) {
      issues.push({ path: `${path}.regex`, message: `invalid regular expression: ${(err as Error).message}` });
    }
  }
}

function check(o: RawHttpOptions, ctx: { listener: { routes?: unknown[] }; clusters: ReadonlySet<string> }, handlers: HttpHandlerRegistry): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (o.routes !== undefined && (ctx.listener.routes ?? []).length > 0) {
    issues.push({ path: 'routes', message: "give HTTP routes here or the listener's routes, not both" });
  }
  const names = new Set<string>();
  (o.routes ?? []).forEach((r, i) => {
    const p = `routes[${i}]`;
    const name = r.name ?? `http-route-${i}`;
    if (names.has(name)) issues.push({ path: `${p}.name`, message: `duplicate route name '${name}'` });
    names.add(name);
    if (r.cluster !== undefined && r.weighted_clusters !== undefined) issues.push({ path: p, message: 'give cluster or weighted_clusters, not both' });
    if (r.cluster === undefined && r.weighted_clusters === undefined && r.handler === undefined) {
      issues.push({ path: p, message: 'give one of cluster, weighted_clusters or handler' });
    }
    if (r.cluster !== undefined && !ctx.clusters.has(r.cluster)) issues.push({ path: `${p}.cluster`, message: `unknown cluster '${r.cluster}'` });
    (r.weighted_clusters ?? []).forEach((w, k) => {
      if (!ctx.clusters.has(w.cluster)) issues.push({ path: `${p}.weighted_clusters[${k}].cluster`, message: `unknown cluster '${w.cluster}'` });
    });
    if (r.path !== undefined && r.path_prefix !== undefined) issues.push({ path: p, message: 'give path or path_prefix, not both' });
    if (r.prefix_rewrite !== undefined && r.path_prefix === undefined) issues.push({ path: `${p}.prefix_rewrite`, message: 'prefix_rewrite needs path_prefix' });
    for (const [h, m] of Object.entries(r.headers ?? {})) checkStringMatch(m, `${p}.headers.${h}`, issues);
    if (r.handler !== undefined) {
      const f = handlers.get(r.handler);
      if (f === undefined) {
        issues.push({ path: `${p}.handler`, message: `unknown handler '${r.handler}' (known: ${handlers.names().join(', ') || 'none'})` });
      } else {
        const ho = (r.handler_options ??= {}) as Record<string, unknown>;
        const schemaIssues = f.optionsSchema !== undefined ? validateAgainst(f.optionsSchema, ho, '') : [];
        const own = schemaIssues.length === 0 && f.check ? f.check(ho, { clusters: ctx.clusters }) : [];
        for (const iss of [...schemaIssues, ...own]) {
          issues.push({ path: iss.path ? `${p}.handler_options.${iss.path}` : `${p}.handler_options`, message: iss.message });
        }
      }
    } else if (r.handler_options !== undefined) issues.push({ path: `${p}.handler_options`, message: 'handler_options needs handler' });
  });
  const headersMs = parseDuration(o.headers_timeout ?? '60s');
  const requestMs = parseDuration(o.request_timeout ?? '300s');
  if (requestMs > 0 && headersMs > requestMs) issues.push({ path: 'headers_timeout', message: `must not be longer than request_timeout (${requestMs} ms)` });
  return issues;
}

/**
 * The protocol module, with the route handlers it knows. The composition
 * root passes a registry holding the handlers other modules contribute:
 * `createHttpProtocol(new HttpHandlerRegistry().register(xmlrpcHandler))`.
 */
export function createHttpProtocol(handlers: HttpHandlerRegistry = new HttpHandlerRegistry()): ProtocolModule {
  return {
    name: 'http',
    description: 'HTTP/1.1 reverse proxy: routes by host, path, method and headers; undici keep-alive pools; streaming bodies; WebSocket pass-through.',
    optionsSchema: HttpOptionsSchema,
    attributes: ['host', 'path', 'method'],
    check: (options, ctx) => check(options as RawHttpOptions, ctx, handlers),
    create: (ctx) => new HttpListener(ctx, normalizeOptions(ctx.listener.options as RawHttpOptions), handlers),
  };
}

export const httpProtocol: ProtocolModule = createHttpProtocol();
