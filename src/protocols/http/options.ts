/**
 * Options of the http protocol (listener `options:`), as a TypeBox schema
 * with every field documented where it is declared, and their normalized
 * form the listener is built from.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Duration, Name, StringMatch, type RawStringMatch } from '../../config/schema';
import { parseDuration } from '../../util/duration';

/** RFC 9110 token characters: what a method or a header name may be made of. */
export const TOKEN_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

export const HttpRouteSchema = Type.Object(
  {
    name: Type.Optional(Name('Route name, shown in logs, metrics and the rate limit key `route`. Defaults to http-route-<index>.')),
    host: Type.Optional(
      Type.String({
        pattern: '^(\\*\\.)?[A-Za-z0-9_.:\\[\\]-]+$',
        description: 'The Host header without its port, case-insensitive: an exact name ("api.example.com") or a wildcard for any subdomain ("*.example.com"). Not set: any host.',
        'x-hint': 'must be a host name, or *. followed by a domain',
      }),
    ),
    path_prefix: Type.Optional(Type.String({ pattern: '^/', description: 'The request path (before "?") starts with this string (case-sensitive, no decoding).' })),
    path: Type.Optional(Type.String({ pattern: '^/', description: 'The request path (before "?") is exactly this string.' })),
    methods: Type.Optional(
      Type.Array(Type.String({ pattern: TOKEN_PATTERN }), { minItems: 1, uniqueItems: true, description: 'The request method is one of these (case-sensitive, as HTTP methods are: GET, POST ...).' }),
    ),
    headers: Type.Optional(
      Type.Record(Type.String({ pattern: TOKEN_PATTERN }), StringMatch, {
        description: 'Request headers that must match (names case-insensitive; several fields of one name are joined with ", "). present: false matches a missing header.',
      }),
    ),
    cluster: Type.Optional(Name('Send matching requests to this cluster.')),
    weighted_clusters: Type.Optional(
      Type.Array(
        Type.Object({ cluster: Name('Cluster name.'), weight: Type.Integer({ minimum: 1, description: 'Relative weight.' }) }, { additionalProperties: false }),
        { minItems: 1, description: 'Split matching requests across clusters by weight (canary).' },
      ),
    ),
    handler: Type.Optional(
      Type.String({ minLength: 1, description: 'Serve matching requests with a handler another module registered under this name (e.g. xmlrpc) instead of proxying them.' }),
    ),
    handler_options: Type.Optional(Type.Object({}, { additionalProperties: true, description: "The handler's own options, checked by the handler." })),
    prefix_rewrite: Type.Optional(Type.String({ description: 'With path_prefix: the matched prefix is replaced by this string in the path sent upstream.' })),
    host_rewrite: Type.Optional(Type.String({ minLength: 1, description: 'The Host header sent upstream (default: the client\'s, or the endpoint address when preserve_host is false).' })),
  },
  {
    additionalProperties: false,
    description: 'An HTTP route. Give exactly one of cluster, weighted_clusters or handler. All conditions given must hold.',
  },
);

export const HttpOptionsSchema = Type.Object(
  {
    routes: Type.Optional(
      Type.Array(HttpRouteSchema, {
        description:
          'HTTP routes by host, path, method and headers. The most specific route that matches wins: an exact host before a wildcard host (longer suffix first) before no host; then an exact path before a longer path_prefix before a shorter one before no path; then the order written. When set, the listener-level `routes` must be empty.',
      }),
    ),
    max_header_size: Type.Optional(
      Type.Integer({ minimum: 1024, maximum: 1048576, default: 16384, description: 'Largest request head (request line and headers) in bytes; larger ones get 431.' }),
    ),
    max_body_size: Type.Optional(
      Type.Integer({ minimum: 0, default: 0, description: 'Largest request body in bytes; larger ones get 413 (by Content-Length before anything is sent upstream, or when a chunked body passes it). 0: no limit.' }),
    ),
    headers_timeout: Type.Optional(Duration('A client must send a whole request head within this time after it starts, else 408.', '60s')),
    request_timeout: Type.Optional(Duration('A client must send a whole request (head and body) within this time, else 408. 0 disables (long uploads).', '300s')),
    keep_alive_timeout: Type.Optional(Duration('Close an idle client keep-alive connection after this long.', '5s')),
    max_requests_per_connection: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'Close a client connection after this many requests (0: no limit).' })),
    preserve_host: Type.Optional(
      Type.Boolean({ default: true, description: "Send the client's Host header upstream (true), or the endpoint address (false). A route's host_rewrite wins over both." }),
    ),
    x_forwarded: Type.Optional(
      Type.Boolean({
        default: true,
        description: 'Add X-Forwarded-For (the client address appended to what the client sent), X-Forwarded-Proto and X-Forwarded-Host (replacing what the client sent, unless trust_forwarded).',
      }),
    ),
    trust_forwarded: Type.Optional(
      Type.Boolean({ default: false, description: 'Keep X-Forwarded-Proto and X-Forwarded-Host the client sent (Portway runs behind another proxy).' }),
    ),
    via: Type.Optional(
      Type.String({
        pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z:-]*$",
        default: 'portway',
        description: 'The pseudonym in the Via header added to requests and responses ("1.1 portway"). Empty: no Via.',
      }),
    ),
    fast_path: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          'Read plain bodyless HTTP/1.1 requests (GET, HEAD, DELETE, OPTIONS) and write their responses without node:http, and send bodyless requests upstream with a small built-in client instead of undici; anything else on a connection hands it to node:http. Not used on listeners with handler routes. false: node:http and undici for everything.',
      }),
    ),
    websocket: Type.Optional(Type.Boolean({ default: true, description: 'Pass Upgrade requests (WebSocket) through to the upstream and splice the two connections after its 101.' })),
    upstream: Type.Optional(
      Type.Object(
        {
          pipelining: Type.Optional(Type.Integer({ minimum: 1, maximum: 128, default: 1, description: 'Requests in flight on one upstream keep-alive connection (1: no pipelining).' })),
          headers_timeout: Type.Optional(Duration('Fail a request (502) whose upstream sent no response head this long after the request was written. 0 disables; a timeout filter usually decides earlier.', '300s')),
          body_timeout: Type.Optional(Duration('Abort a response whose upstream sent no body bytes for this long. 0 disables.', '300s')),
          max_response_header_size: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1048576, default: 16384, description: 'Largest response head accepted from an upstream.' })),
        },
        { additionalProperties: false, description: 'Upstream connections (one undici pool per endpoint; sizes and idle time come from the cluster limits).' },
      ),
    ),
    error_format: Type.Optional(
      Type.Union([Type.Literal('json'), Type.Literal('text')], {
        default: 'json',
        description: 'Body of the responses Portway makes itself (errors): json {"error": code, "message": ...} or text/plain. The code is also in the x-portway-error header.',
      }),
    ),
  },
  { additionalProperties: false },
);

export type RawHttpOptions = Static<typeof HttpOptionsSchema>;
export type RawHttpRoute = Static<typeof HttpRouteSchema>;

export interface HttpRouteConfig {
  name: string;
  /** Lowercased; a leading "*." means any subdomain. */
  host: string | null;
  path: string | null;
  pathPrefix: string | null;
  methods: readonly string[] | null;
  /** Lowercased header names. */
  headers: readonly { name: string; match: RawStringMatch }[];
  clusters: readonly { cluster: string; weight: number }[];
  handler: string | null;
  handlerOptions: Record<string, unknown>;
  prefixRewrite: string | null;
  hostRewrite: string | null;
}

export interface HttpOptions {
  routes: HttpRouteConfig[] | null;
  maxHeaderSize: number;
  maxBodySize: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxRequestsPerConnection: number;
  preserveHost: boolean;
  xForwarded: boolean;
  trustForwarded: boolean;
  /** The whole Via element ("1.1 portway"), or null for none. */
  via: string | null;
  websocket: boolean;
  fastPath: boolean;
  upstreamPipelining: number;
  upstreamHeadersTimeoutMs: number;
  upstreamBodyTimeoutMs: number;
  maxResponseHeaderSize: number;
  errorFormat: 'json' | 'text';
}

export function normalizeRoute(r: RawHttpRoute, i: number): HttpRouteConfig {
  return {
    name: r.name ?? `http-route-${i}`,
    host: r.host !== undefined ? r.host.toLowerCase() : null,
    path: r.path ?? null,
    pathPrefix: r.path_prefix ?? null,
    methods: r.methods ?? null,
    headers: Object.entries(r.headers ?? {}).map(([name, match]) => ({ name: name.toLowerCase(), match })),
    clusters: r.cluster !== undefined ? [{ cluster: r.cluster, weight: 1 }] : (r.weighted_clusters ?? []),
    handler: r.handler ?? null,
    handlerOptions: (r.handler_options ?? {}) as Record<string, unknown>,
    prefixRewrite: r.prefix_rewrite ?? null,
    hostRewrite: r.host_rewrite ?? null,
  };
}

export function normalizeOptions(o: RawHttpOptions): HttpOptions {
  const via = o.via ?? 'portway';
  return {
    routes: o.routes !== undefined ? o.routes.map(normalizeRoute) : null,
    maxHeaderSize: o.max_header_size ?? 16384,
    maxBodySize: o.max_body_size ?? 0,
    headersTimeoutMs: parseDuration(o.headers_timeout ?? '60s'),
    requestTimeoutMs: parseDuration(o.request_timeout ?? '300s'),
    keepAliveTimeoutMs: parseDuration(o.keep_alive_timeout ?? '5s'),
    maxRequestsPerConnection: o.max_requests_per_connection ?? 0,
    preserveHost: o.preserve_host ?? true,
    xForwarded: o.x_forwarded ?? true,
    trustForwarded: o.trust_forwarded ?? false,
    via: via === '' ? null : `1.1 ${via}`,
    websocket: o.websocket ?? true,
    fastPath: o.fast_path ?? true,
    upstreamPipelining: o.upstream?.pipelining ?? 1,
    upstreamHeadersTimeoutMs: parseDuration(o.upstream?.headers_timeout ?? '300s'),
    upstreamBodyTimeoutMs: parseDuration(o.upstream?.body_timeout ?? '300s'),
    maxResponseHeaderSize: o.upstream?.max_response_header_size ?? 16384,
    errorFormat: o.error_format ?? 'json',
  };
}
