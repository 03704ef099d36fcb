/**
 * The SOFA Bolt protocol: an L7 listener that unmodified SOFARPC clients
 * (sofa-rpc-node, Java SOFARPC over Bolt) call as if it were their provider.
 * Routes match on `service` (the Bolt header, e.g. com.example.EchoService:1.0)
 * and `method`; clusters are Bolt providers (static or discovered, e.g. the
 * SOFARPC ZooKeeper registry), or HTTP/JSON and gRPC services reached through
 * translation (`translate`).
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ProtocolModule } from '../protocol';
import type { ConfigIssue } from '../../config/validate';
import { Duration } from '../../config/schema';
import { parseDuration } from '../../util/duration';
import type { Cluster } from '../../routing/cluster';
import type { RpcUpstream } from '../../translate/rpc-upstream';
import { HttpJsonUpstream } from '../../translate/http-json';
import { GrpcUpstream, type GrpcMethodMapping } from '../../translate/grpc';
import { DEFAULT_MAX_FRAME } from './codec';
import { BoltListener, type BoltOptions } from './listener';
import type { HessianDialect } from './hessian';

const Dialect = Type.Union([Type.Literal('auto'), Type.Literal('3.0'), Type.Literal('4.0')], {
  description:
    "Hessian dialect of SofaRequest payloads: auto (from the payload's first byte), 3.0 (sofa-rpc-node's default, the early Hessian 2 draft of npm hessian.js-1) or 4.0 (final Hessian 2.0).",
});

const Translate = Type.Object(
  {
    type: Type.Union([Type.Literal('http'), Type.Literal('grpc')], { description: 'http: JSON over HTTP (POST {base_path}/{interface}/{method}, body = JSON array of the arguments). grpc: unary gRPC calls described by a .proto.' }),
    hessian: Type.Optional(Dialect),
    // http
    base_path: Type.Optional(Type.String({ description: 'http: prefix of every path, e.g. /api.' })),
    args: Type.Optional(Type.Union([Type.Literal('array'), Type.Literal('object')], { description: 'http: array (default) sends the JSON array of arguments; object sends a single struct argument as the object itself.' })),
    paths: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'http: per "<interface>.<method>", the path to POST to instead of the default.' })),
    bytes: Type.Optional(Type.Union([Type.Literal('tagged'), Type.Literal('base64')], { description: 'http: byte arrays as {"$base64": "..."} (tagged, default) or bare base64 strings.' })),
    revive_dates: Type.Optional(Type.Boolean({ description: 'http: ISO 8601 date-time strings in replies become dates (default true).' })),
    headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'http: extra request headers.' })),
    connections: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'http: keep-alive connections per endpoint (default 16).' })),
    // grpc
    proto_files: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'grpc: .proto files (relative to include_dirs or the working directory).' })),
    include_dirs: Type.Optional(Type.Array(Type.String(), { description: 'grpc: directories imports are resolved in.' })),
    services: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'grpc: per Bolt interface (e.g. com.example.EchoService), the gRPC "package.Service" whose methods it reaches by name (case-insensitive).' })),
    methods: Type.Optional(
      Type.Record(
        Type.String(),
        Type.Object(
          {
            rpc: Type.String({ pattern: '^[^/]+/[^/]+$', description: '"package.Service/Method".', 'x-hint': 'must be "package.Service/Method"' }),
            args: Type.Optional(
              Type.Union([Type.Literal('auto'), Type.Literal('message'), Type.Array(Type.String())], {
                description: 'How the arguments make the request message: auto, message (the one struct argument is the message), or field names for positional arguments.',
              }),
            ),
            result_field: Type.Optional(Type.String({ description: 'Return this field of the reply instead of the whole message.' })),
          },
          { additionalProperties: false },
        ),
        { description: 'grpc: per "<interface>.<method>", the gRPC method and message mapping.' },
      ),
    ),
    longs: Type.Optional(Type.Union([Type.Literal('string'), Type.Literal('number')], { description: 'grpc: 64-bit integers in replies as exact longs (string, default) or numbers.' })),
  },
  { additionalProperties: false },
);

const BoltOptionsSchema = Type.Object(
  {
    max_frame_size: Type.Optional(
      Type.Integer({ minimum: 1024, maximum: 1 << 30, default: DEFAULT_MAX_FRAME, description: 'Largest frame (class + header + content bytes) accepted from clients and providers; a larger one closes the connection.' }),
    ),
    connections_per_endpoint: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 64, default: 2, description: 'Shared (multiplexed) connections to each provider; every client connection shares them.' }),
    ),
    default_timeout: Type.Optional(Duration('Deadline of a call whose frame carries no timeout (0).', '3s')),
    upstream_heartbeat: Type.Optional(Duration('Send a heartbeat on a provider connection idle this long; close it when the heartbeat is not answered within as long again. 0 disables.', '15s')),
    quick_ack: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          "Acknowledge each read from a provider at once (TCP_QUICKACK after every read, Linux). sofa-rpc-node servers write with Nagle's algorithm on, so a small reply waits for the ACK of the previous one; a delayed ACK then adds milliseconds to the tail. Costs one setsockopt per read; false: leave ACKs to the kernel.",
      }),
    ),
    idempotent_methods: Type.Optional(
      Type.Array(Type.String({ pattern: '^[^#]+#[^#]+$', 'x-hint': 'must be "<interface>#<method>" (or "<interface>#*")' }), {
        description: 'Calls a retry filter may send again after a reset or a timeout: "<interface>#<method>", "<interface>:<version>#<method>" or "<interface>#*". Other calls are retried only when they never reached a provider.',
      }),
    ),
    decode_method: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Read the `method` of every call up front (from the sofa_head_method_name header, else the payload). Without it the method is read only when something asks for it: a route or rate limit on `method`, idempotent_methods.',
      }),
    ),
    hessian: Type.Optional(Dialect),
    translate: Type.Optional(Type.Record(Type.String(), Translate, { description: 'Per cluster name: reach it by translating calls (http or grpc) instead of forwarding Bolt frames.' })),
  },
  { additionalProperties: false },
);

type RawBoltOptions = Static<typeof BoltOptionsSchema>;
type RawTranslate = Static<typeof Translate>;

const HTTP_KEYS = ['base_path', 'args', 'paths', 'bytes', 'revive_dates', 'headers', 'connections'] as const;
const GRPC_KEYS = ['proto_files', 'include_dirs', 'services', 'methods', 'longs'] as const;

function translator(t: RawTranslate): (cluster: Cluster) => RpcUpstream {
  if (t.type === 'http') {
    return (cluster) =>
      new HttpJsonUpstream(cluster, {
        ...(t.base_path !== undefined ? { basePath: t.base_path } : {}),
        ...(t.args !== undefined ? { args: t.args } : {}),
        ...(t.paths !== undefined ? { paths: t.paths } : {}),
        ...(t.bytes !== undefined ? { bytes: t.bytes } : {}),
        ...(t.revive_dates !== undefined ? { reviveDates: t.revive_dates } : {}),
        ...(t.headers !== undefined ? { headers: t.headers } : {}),
        pool: { connectTimeoutMs: cluster.config.connectTimeoutMs, ...(t.connections !== undefined ? { connections: t.connections } : {}) },
      });
  }
  const methods: Record<string, GrpcMethodMapping> = {};
  for (const [k, m] of Object.entries(t.methods ?? {})) {
    methods[k] = { rpc: m.rpc, ...(m.args !== undefined ? { args: m.args } : {}), ...(m.result_field !== undefined ? { resultField: m.result_field } : {}) };
  }
  return (cluster) =>
    new GrpcUpstream(cluster, {
      protoFiles: t.proto_files ?? [],
      ...(t.include_dirs !== undefined ? { includeDirs: t.include_dirs } : {}),
      ...(t.longs !== undefined ? { longs: t.longs } : {}),
      methods,
      ...(t.services !== undefined ? { services: t.services } : {}),
    });
}

export const boltProtocol: ProtocolModule = {
  name: 'bolt',
  description: 'SOFA Bolt v1/v2 RPC: multiplexed provider connections with request-id remapping, routing by service and method, translation to HTTP/JSON and gRPC.',
  optionsSchema: BoltOptionsSchema,
  attributes: ['service', 'method'],
  check(options, ctx): ConfigIssue[] {
    const o = options as RawBoltOptions;
    const issues: ConfigIssue[] = [];
    if (o.default_timeout !== undefined && parseDuration(o.default_timeout) <= 0) issues.push({ path: 'default_timeout', message: 'must be greater than 0' });
    for (const [name, t] of Object.entries(o.translate ?? {})) {
      const p = `translate.${name}`;
      if (!ctx.clusters.has(name)) issues.push({ path: p, message: `unknown cluster '${name}'` });
      const wrong = t.type === 'http' ? GRPC_KEYS : HTTP_KEYS;
      for (const k of wrong) if ((t as Record<string, unknown>)[k] !== undefined) issues.push({ path: `${p}.${k}`, message: `only applies to type ${t.type === 'http' ? 'grpc' : 'http'}` });
      if (t.type === 'grpc' && (t.proto_files === undefined || t.proto_files.length === 0)) issues.push({ path: `${p}.proto_files`, message: 'is required for type grpc' });
      if (t.type === 'grpc' && t.methods === undefined && t.services === undefined) issues.push({ path: p, message: 'give methods or services: which gRPC method each Bolt method reaches' });
    }
    return issues;
  },
  create(ctx) {
    const o = ctx.listener.options as RawBoltOptions;
    const idem = o.idempotent_methods ?? [];
    const options: BoltOptions = {
      maxFrame: o.max_frame_size ?? DEFAULT_MAX_FRAME,
      perEndpoint: o.connections_per_endpoint ?? 2,
      defaultTimeoutMs: parseDuration(o.default_timeout ?? '3s'),
      heartbeatMs: parseDuration(o.upstream_heartbeat ?? '15s'),
      quickAck: o.quick_ack ?? true,
      idempotent: idem.length > 0 ? new Set(idem) : null,
      hessian: (o.hessian ?? 'auto') as 'auto' | HessianDialect,
      needMethod: o.decode_method ?? false,
      translate: new Map(Object.entries(o.translate ?? {}).map(([k, t]) => [k, { create: translator(t), hessian: (t.hessian ?? o.hessian ?? 'auto') as 'auto' | HessianDialect }])),
    };
    return new BoltListener(ctx, options);
  },
};
