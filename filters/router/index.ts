/**
 * router: picks the cluster for each request from the listener's routes.
 * The first route whose match holds wins; a route names one cluster or
 * splits by weight. No match answers locally with PW_ERR_NO_ROUTE.
 * Routes are compiled once per config generation into closures.
 */
import { Type } from '@sinclair/typebox';
import type { FilterFactory, LocalReply, PhaseFilter } from '../../src/filter';
import type { Exchange } from '../../src/exchange';
import type { RouteConfig } from '../../src/config/types';
import type { Cluster } from '../../src/routing/cluster';
import { ErrorCode, ProxyError } from '../../src/errors';
import { Cidr } from '../../src/util/address';
import { compileStringMatch } from '../../src/routing/string-match';

const RouterConfig = Type.Object({}, { additionalProperties: false, description: "The router has no options: it reads the listener's routes." });

type Predicate = (ex: Exchange) => boolean;

export { compileStringMatch };

function compilePredicate(r: RouteConfig): Predicate | null {
  const preds: Predicate[] = [];
  if (r.sourceCidr.length > 0) {
    const cidrs = r.sourceCidr.map((c) => new Cidr(c));
    preds.push((ex) => cidrs.some((c) => c.contains(ex.clientAddress)));
  }
  for (const [attr, m] of Object.entries(r.attributes)) {
    const test = compileStringMatch(m);
    preds.push((ex) => test(ex.attr(attr)));
  }
  if (preds.length === 0) return null;
  if (preds.length === 1) return preds[0]!;
  return (ex) => preds.every((p) => p(ex));
}

function compilePicker(r: RouteConfig, clusters: ReadonlyMap<string, Cluster>): () => Cluster {
  const targets = r.clusters.map((w) => {
    const c = clusters.get(w.cluster);
    if (!c) throw new Error(`route '${r.name}': unknown cluster '${w.cluster}'`);
    return { c, w: w.weight };
  });
  if (targets.length === 1) {
    const only = targets[0]!.c;
    return () => only;
  }
  const total = targets.reduce((a, t) => a + t.w, 0);
  return () => {
    let x = Math.random() * total;
    for (const t of targets) {
      x -= t.w;
      if (x < 0) return t.c;
    }
    return targets[targets.length - 1]!.c;
  };
}

export const routerFilter: FilterFactory<Record<string, never>> = {
  type: 'router',
  description: "Chooses the upstream cluster from the listener's routes.",
  schema: RouterConfig,
  create(_config, ctx): PhaseFilter {
    const routes = ctx.listener.routes.map((r) => ({ name: r.name, test: compilePredicate(r), pick: compilePicker(r, ctx.clusters) }));
    const noRoute: LocalReply = {
      error: new ProxyError(ErrorCode.NoRoute, `no route of listener '${ctx.listener.name}' matches`, { source: 'downstream' }),
    };
    // One unconditional route to one cluster: the chain may apply it without calling onRequest.
    const only = routes.length === 1 && routes[0]!.test === null && ctx.listener.routes[0]!.clusters.length === 1 ? routes[0]! : null;
    const constantRoute = only !== null ? { route: only.name, cluster: only.pick() } : undefined;
    return {
      kind: 'phase',
      name: ctx.name,
      ...(constantRoute !== undefined ? { constantRoute } : {}),
      onRequest(ex) {
        for (let i = 0; i < routes.length; i++) {
          const r = routes[i]!;
          if (r.test === null || r.test(ex)) {
            ex.route = r.name;
            ex.cluster = r.pick();
            return undefined;
          }
        }
        return noRoute;
      },
    };
  },
};
