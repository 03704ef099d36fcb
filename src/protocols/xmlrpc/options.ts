/** The options of an `xmlrpc` listener (listeners[].options), and their normal form. */
import { Type, type Static } from '@sinclair/typebox';
import { Duration } from '../../config/schema';
import type { ConfigIssue } from '../../config/validate';
import { parseDuration } from '../../util/duration';
import { GrpcUpstream, type GrpcMethodMapping, type GrpcUpstreamOptions } from '../../translate/grpc';
import { staticEndpoints } from '../../translate/endpoints';
import type { HttpJsonOptions } from '../../translate/http-json';

const PoolSchema = {
  connections: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: "Keep-alive HTTP connections per endpoint (default: the cluster's limits.max_connections_per_endpoint)." })),
  keep_alive_timeout: Type.Optional(Duration('Idle keep-alive connections to the upstream close after this long (default 30s).')),
};

const XmlRpcUpstreamSchema = Type.Object(
  {
    type: Type.Literal('xmlrpc'),
    path: Type.Optional(Type.String({ pattern: '^/', description: 'Request path on the XML-RPC server. Not set: the path the client used.' })),
    ...PoolSchema,
  },
  { additionalProperties: false, description: 'Passthrough: calls go to an XML-RPC server as the client sent them.' },
);

const HttpJsonUpstreamSchema = Type.Object(
  {
    type: Type.Literal('http_json'),
    base_path: Type.Optional(Type.String({ description: "Path prefix: a call service.method is POSTed to {base_path}/{service}/{method} (service = the method name up to its last dot)." })),
    args: Type.Optional(
      Type.Union([Type.Literal('array'), Type.Literal('object')], { description: "Request body: 'array' = the JSON array of the parameters; 'object' = a single struct parameter is sent as the JSON object itself." }),
    ),
    paths: Type.Optional(Type.Record(Type.String(), Type.String({ pattern: '^/' }), { description: 'Per XML-RPC method name: the path to POST to instead of {base_path}/{service}/{method}.' })),
    bytes: Type.Optional(Type.Union([Type.Literal('tagged'), Type.Literal('base64')], { description: 'base64 values in JSON: tagged = {"$base64": "..."} (both ways), base64 = a bare base64 string (requests only).' })),
    revive_dates: Type.Optional(Type.Boolean({ description: 'Strings of a JSON reply in ISO 8601 date-time form with a zone become dateTime.iso8601.' })),
    headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Extra HTTP headers sent with every call.' })),
    methods: Type.Optional(Type.Array(Type.String(), { description: 'Method names this service has (for system.listMethods).' })),
    ...PoolSchema,
  },
  { additionalProperties: false, description: 'Translation to JSON over HTTP.' },
);

const GrpcMethodSchema = Type.Object(
  {
    rpc: Type.String({ pattern: '^[A-Za-z0-9_.]+/[A-Za-z0-9_]+$', description: 'The gRPC method: package.Service/Method.' }),
    args: Type.Optional(
      Type.Union([Type.Literal('auto'), Type.Literal('message'), Type.Array(Type.String(), { minItems: 1 })], {
        description: "How parameters make the request: auto (one struct = the whole message, else positional in field order), message (one struct = the whole message), or the field names the positional parameters fill.",
      }),
    ),
    result_field: Type.Optional(Type.String({ description: 'Return this field of the reply instead of the whole reply message.' })),
  },
  { additionalProperties: false },
);

const GrpcUpstreamSchema = Type.Object(
  {
    type: Type.Literal('grpc'),
    proto: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })], { description: '.proto file(s), relative to the working directory or include_dirs.' }),
    include_dirs: Type.Optional(Type.Array(Type.String(), { description: 'Directories searched for the .proto files and their imports.' })),
    longs: Type.Optional(Type.Union([Type.Literal('string'), Type.Literal('number')], { description: 'int64 fields of replies: string = exact (sent to clients as <i8>), number = a double (precision lost beyond 2^53).' })),
    services: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'XML-RPC method prefix (before the last dot) -> gRPC package.Service; the method is found by name, case-insensitively.' })),
    methods: Type.Optional(Type.Record(Type.String(), GrpcMethodSchema, { description: 'Per XML-RPC method name: the gRPC method and how arguments and result map.' })),
    max_message_bytes: Type.Optional(Type.Integer({ minimum: 1024, description: 'Largest gRPC message either way.' })),
  },
  { additionalProperties: false, description: 'Translation to gRPC (unary methods).' },
);

const UpstreamUnion = Type.Union([XmlRpcUpstreamSchema, HttpJsonUpstreamSchema, GrpcUpstreamSchema]);

/** The union, written as if/then on `type` so that a problem is reported against the chosen kind only. */
const UpstreamSchema = Type.Unsafe<Static<typeof UpstreamUnion>>({
  type: 'object',
  required: ['type'],
  properties: { type: { enum: ['xmlrpc', 'http_json', 'grpc'], description: 'How calls to this cluster are made: xmlrpc (passthrough), http_json or grpc.' } },
  allOf: [XmlRpcUpstreamSchema, HttpJsonUpstreamSchema, GrpcUpstreamSchema].map((s) => ({
    if: { type: 'object', properties: { type: { const: (s.properties.type as { const: string }).const } } },
    then: s,
  })),
});

export const XmlRpcOptionsSchema = Type.Object(
  {
    methods: Type.Optional(
      Type.Array(
        Type.Object(
          {
            prefix: Type.String({ description: "Method name prefix, e.g. 'billing.' (a trailing '*' is allowed: 'billing.*'). The longest matching prefix wins." }),
            cluster: Type.String({ description: 'Cluster serving these methods; how it is spoken to is in upstreams.<cluster> (default: XML-RPC passthrough).' }),
          },
          { additionalProperties: false },
        ),
        { description: 'Routing by method name. With these rules, the routes/router filter are not used; methods matching no rule go to default_cluster.' },
      ),
    ),
    default_cluster: Type.Optional(Type.String({ description: 'Cluster for methods no rule matches. Without it (and without methods rules) the listener routes decide (attributes: method, service).' })),
    upstreams: Type.Optional(Type.Record(Type.String(), UpstreamSchema, { description: 'Per cluster name: how calls are made (type xmlrpc, http_json or grpc). Clusters not listed are XML-RPC servers (passthrough).' })),
    idempotent: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { default: ['system.*'], description: "Method names (globs with '*') that are safe to send twice: only these are retried after a reset or a timeout." }),
    ),
    help: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'system.methodHelp text per method name.' })),
    known_methods: Type.Optional(Type.Array(Type.String(), { description: 'Extra method names system.listMethods reports.' })),
    max_body_bytes: Type.Optional(Type.Integer({ minimum: 256, default: 1048576, description: 'Largest request body; larger requests get HTTP 413.' })),
    timeout: Type.Optional(Duration('Deadline of an upstream call when no timeout filter set one.', '30s')),
  },
  { additionalProperties: false },
);

export type RawXmlRpcOptions = Static<typeof XmlRpcOptionsSchema>;
type RawUpstream = Static<typeof UpstreamSchema>;

export type UpstreamSpec =
  | { type: 'xmlrpc'; path?: string; pool: PoolSpec }
  | { type: 'http_json'; options: HttpJsonOptions; methods: string[] }
  | { type: 'grpc'; options: GrpcUpstreamOptions };

interface PoolSpec {
  connections?: number;
  keepAliveTimeoutMs?: number;
}

export interface XmlRpcOptions {
  /** Longest prefix first. */
  methodRules: { prefix: string; cluster: string }[];
  defaultCluster: string | null;
  upstreams: Map<string, UpstreamSpec>;
  idempotent: RegExp | null;
  help: Map<string, string>;
  knownMethods: string[];
  maxBodyBytes: number;
  timeoutMs: number;
}

function globToRegExp(globs: readonly string[]): RegExp | null {
  if (globs.length === 0) return null;
  const parts = globs.map((g) => g.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*'));
  return new RegExp(`^(?:${parts.join('|')})$`);
}

function poolOf(u: { connections?: number; keep_alive_timeout?: string | number }): PoolSpec {
  return {
    ...(u.connections !== undefined ? { connections: u.connections } : {}),
    ...(u.keep_alive_timeout !== undefined ? { keepAliveTimeoutMs: parseDuration(u.keep_alive_timeout) } : {}),
  };
}

function upstreamSpec(u: RawUpstream): UpstreamSpec {
  switch (u.type) {
    case 'xmlrpc':
      return { type: 'xmlrpc', ...(u.path !== undefined ? { path: u.path } : {}), pool: poolOf(u) };
    case 'http_json':
      return {
        type: 'http_json',
        methods: u.methods ?? [],
        options: {
          basePath: u.base_path ?? '',
          args: u.args ?? 'array',
          paths: u.paths ?? {},
          bytes: u.bytes ?? 'tagged',
          reviveDates: u.revive_dates ?? true,
          headers: u.headers ?? {},
          pool: poolOf(u),
        },
      };
    case 'grpc': {
      const methods: Record<string, GrpcMethodMapping> = {};
      for (const [k, m] of Object.entries(u.methods ?? {})) {
        methods[k] = { rpc: m.rpc, args: m.args ?? 'auto', ...(m.result_field !== undefined ? { resultField: m.result_field } : {}) };
      }
      return {
        type: 'grpc',
        options: {
          protoFiles: typeof u.proto === 'string' ? [u.proto] : u.proto,
          includeDirs: u.include_dirs ?? [],
          longs: u.longs ?? 'string',
          services: u.services ?? {},
          methods,
          maxMessageBytes: u.max_message_bytes ?? 16 << 20,
        },
      };
    }
  }
}

export function normalizeOptions(raw: Record<string, unknown>): XmlRpcOptions {
  const o = raw as RawXmlRpcOptions;
  return {
    methodRules: (o.methods ?? []).map((r) => ({ prefix: r.prefix.replace(/\*$/, ''), cluster: r.cluster })).sort((a, b) => b.prefix.length - a.prefix.length),
    defaultCluster: o.default_cluster ?? null,
    upstreams: new Map(Object.entries(o.upstreams ?? {}).map(([k, u]) => [k, upstreamSpec(u)])),
    idempotent: globToRegExp(o.idempotent ?? ['system.*']),
    help: new Map(Object.entries(o.help ?? {})),
    knownMethods: o.known_methods ?? [],
    maxBodyBytes: o.max_body_bytes ?? 1 << 20,
    timeoutMs: parseDuration(o.timeout ?? '30s'),
  };
}

/** Semantic checks (unknown clusters, .proto files that do not load) with paths relative to options. */
export function checkOptions(raw: Record<string, unknown>, clusters: ReadonlySet<string>, loadGrpc: (spec: GrpcUpstreamOptions) => string | null): ConfigIssue[] {
  const o = raw as RawXmlRpcOptions;
  const issues: ConfigIssue[] = [];
  (o.methods ?? []).forEach((r, i) => {
    if (!clusters.has(r.cluster)) issues.push({ path: `methods[${i}].cluster`, message: `unknown cluster '${r.cluster}'` });
    if (r.prefix.slice(0, -1).includes('*')) issues.push({ path: `methods[${i}].prefix`, message: "'*' is only allowed at the end" });
  });
  if (o.default_cluster !== undefined && !clusters.has(o.default_cluster)) issues.push({ path: 'default_cluster', message: `unknown cluster '${o.default_cluster}'` });
  for (const [name, u] of Object.entries(o.upstreams ?? {})) {
    if (!clusters.has(name)) issues.push({ path: `upstreams.${name}`, message: `unknown cluster '${name}'` });
    if (u.type === 'grpc') {
      const problem = loadGrpc((upstreamSpec(u) as { options: GrpcUpstreamOptions }).options);
      if (problem !== null) issues.push({ path: `upstreams.${name}`, message: problem });
    }
  }
  return issues;
}

/** Why a grpc upstream's .proto and mappings do not load, or null (nothing connects: clients are made on first call). */
export function loadProblem(spec: GrpcUpstreamOptions): string | null {
  try {
    void new GrpcUpstream(staticEndpoints(['127.0.0.1:1']), spec).close();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
