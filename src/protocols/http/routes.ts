/**
 * The HTTP route table of one listener and generation: compiled once, then
 * one scan per request over routes pre-sorted by specificity, so "the most
 * specific route wins" costs no more than "first match wins":
 *
 *   1. host: exact name, then wildcards "*.suffix" (longer suffix first), then no host;
 *   2. path: exact `path`, then `path_prefix` (longer first), then none;
 *   3. the order written.
 *
 * methods and headers do not change the order: among routes equally
 * specific by host and path, the first written whose methods and headers
 * match wins. Paths are compared as sent (before "?", no percent-decoding,
 * no dot-segment removal).
 */
import type { IncomingMessage } from 'node:http';
import { compileStringMatch } from '../../routing/string-match';
import type { Cluster } from '../../routing/cluster';
import type { HttpRouteConfig } from './options';
import type { HttpRouteHandler } from './handlers';

export interface CompiledRoute {
  readonly name: string;
  /** The cluster for this request (weighted pick), or null for a handler route without one. */
  pick(): Cluster | null;
  readonly handler: HttpRouteHandler | null;
  /** Characters of the path replaced by prefixRewrite (the path_prefix length). */
  readonly prefixLength: number;
  readonly prefixRewrite: string | null;
  readonly hostRewrite: string | null;
}

interface Entry {
  route: CompiledRoute;
  test: (host: string, path: string, method: string, req: IncomingMessage) => boolean;
  hostRank: number;
  hostLength: number;
  pathRank: number;
  pathLength: number;
  index: number;
}


/** A header's value as node:http presents it (several fields joined with ", "), or undefined. */
function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * The host part of a Host header value, lowercased, without the port
 * ("Example.COM:8080" -> "example.com", "[::1]:80" -> "[::1]").
 */
export function hostOnly(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 0x5b /* [ */) {
    const close = host.indexOf(']');
    if (close > 0) end = close + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) end = colon;
  }
  const h = end === host.length ? host : host.slice(0, end);
  // Most clients send lowercase already: skip the copy then.
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return h.toLowerCase();
  }
  return h;
}

function makePicker(r: HttpRouteConfig, clusters: ReadonlyMap<string, Cluster>): () => Cluster | null {
  const targets = r.clusters.map((w) => {
    const c = clusters.get(w.cluster);
    if (c === undefined) throw new Error(`http route '${r.name}': unknown cluster '${w.cluster}'`);
    return { c, w: w.weight };
  });
  if (targets.length === 0) return () => null;
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

function compileTest(r: HttpRouteConfig): Entry['test'] {
  const tests: Entry['test'][] = [];
  if (r.host !== null) {
    const h = r.host;
    if (h.startsWith('*.')) {
      const suffix = h.slice(1); // ".example.com"
      tests.push((host) => host.length > suffix.length && host.endsWith(suffix));
    } else tests.push((host) => host === h);
  }
  if (r.path !== null) {
    const p = r.path;
    tests.push((_h, path) => path === p);
  } else if (r.pathPrefix !== null) {
    const p = r.pathPrefix;
    tests.push((_h, path) => path.startsWith(p));
  }
  if (r.methods !== null) {
    const ms = r.methods;
    if (ms.length === 1) {
      const m = ms[0]!;
      tests.push((_h, _p, method) => method === m);
    } else tests.push((_h, _p, method) => ms.includes(method));
  }
  for (const { name, match } of r.headers) {
    const t = compileStringMatch(match);
    tests.push((_h, _p, _m, req) => t(headerValue(req, name)));
  }
  if (tests.length === 0) return () => true;
  if (tests.length === 1) return tests[0]!;
  return (host, path, method, req) => {
    for (let i = 0; i < tests.length; i++) if (!tests[i]!(host, path, method, req)) return false;
    return true;
  };
}

export class HttpRouteTable {
  private readonly entries: readonly Entry[];
  /** False when no route looks at the host: the Host header is then not parsed for routing. */
  readonly needsHost: boolean;

  constructor(routes: readonly HttpRouteConfig[], clusters: ReadonlyMap<string, Cluster>, handlerFor: (r: HttpRouteConfig) => HttpRouteHandler | null) {
    const entries: Entry[] = routes.map((r, index) => {
      const wildcard = r.host !== null && r.host.startsWith('*.');
      return {
        route: {
          name: r.name,
          pick: makePicker(r, clusters),
          handler: handlerFor(r),
          prefixLength: r.pathPrefix !== null ? r.pathPrefix.length : 0,
          prefixRewrite: r.pathPrefix !== null ? r.prefixRewrite : null,
          hostRewrite: r.hostRewrite,
        },
        test: compileTest(r),
        hostRank: r.host === null ? 0 : wildcard ? 1 : 2,
        hostLength: r.host?.length ?? 0,
        pathRank: r.path !== null ? 2 : r.pathPrefix !== null ? 1 : 0,
        pathLength: r.path?.length ?? r.pathPrefix?.length ?? 0,
        index,
      };
    });
    entries.sort(
      (a, b) => b.hostRank - a.hostRank || b.hostLength - a.hostLength || b.pathRank - a.pathRank || b.pathLength - a.pathLength || a.index - b.index,
    );
    this.entries = entries;
    this.needsHost = routes.some((r) => r.host !== null);
  }

  /** The winning route, or null. `host` is hostOnly() of the Host header ('' when none or not needed). */
  match(host: string, path: string, method: string, req: IncomingMessage): CompiledRoute | null {
    const es = this.entries;
    for (let i = 0; i < es.length; i++) {
      const e = es[i]!;
      if (e.test(host, path, method, req)) return e.route;
    }
    return null;
  }

  /** Route names in the order they are tried (for tests and /config views). */
  order(): string[] {
    return this.entries.map((e) => e.route.name);
  }
}
