/**
 * The Redis (RESP) protocol: an L7 listener that unmodified Redis clients use
 * as if it were a Redis server.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ProtocolModule } from '../protocol';
import type { ConfigIssue } from '../../config/validate';
import { RedisListener } from './listener';
import { REDIS_MAX_BULK_LENGTH } from './codec';

const RedisOptionsSchema = Type.Object(
  {
    prefix_routes: Type.Optional(
      Type.Array(
        Type.Object(
          {
            prefix: Type.String({ minLength: 1, description: 'Key prefix (bytes, case-sensitive).' }),
            cluster: Type.String({ description: 'Cluster serving keys with this prefix.' }),
          },
          { additionalProperties: false },
        ),
        { description: 'Route by the first key of each command; the longest matching prefix wins. Commands without keys, and keys matching no prefix, go to catch_all_cluster.' },
      ),
    ),
    catch_all_cluster: Type.Optional(Type.String({ description: 'With prefix_routes: the cluster for everything no prefix matches.' })),
    connections_per_endpoint: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'Shared (multiplexed) upstream connections per endpoint. One is usually fastest: writes from all clients coalesce into it.' }),
    ),
    allow_flush: Type.Optional(Type.Boolean({ default: true, description: 'false: refuse FLUSHALL and FLUSHDB where they would be broadcast to every shard.' })),
    max_bulk_length: Type.Optional(Type.Integer({ minimum: 1, maximum: REDIS_MAX_BULK_LENGTH, description: 'Largest argument accepted from clients (proto-max-bulk-len).' })),
  },
  { additionalProperties: false },
);

type RawRedisOptions = Static<typeof RedisOptionsSchema>;

export const redisProtocol: ProtocolModule = {
  name: 'redis',
  description: 'Redis RESP2/RESP3: multiplexed upstreams, key-prefix routing, sharding, in-process components.',
  optionsSchema: RedisOptionsSchema,
  attributes: ['command', 'key'],
  check(options, ctx): ConfigIssue[] {
    const o = options as RawRedisOptions;
    const issues: ConfigIssue[] = [];
    (o.prefix_routes ?? []).forEach((r, i) => {
      if (!ctx.clusters.has(r.cluster)) issues.push({ path: `prefix_routes[${i}].cluster`, message: `unknown cluster '${r.cluster}'` });
    });
    if (o.catch_all_cluster !== undefined && !ctx.clusters.has(o.catch_all_cluster)) {
      issues.push({ path: 'catch_all_cluster', message: `unknown cluster '${o.catch_all_cluster}'` });
    }
    if (o.catch_all_cluster !== undefined && (o.prefix_routes ?? []).length === 0) {
      issues.push({ path: 'catch_all_cluster', message: 'catch_all_cluster only applies with prefix_routes (use routes otherwise)' });
    }
    return issues;
  },
  create(ctx) {
    const o = ctx.listener.options as RawRedisOptions;
    return new RedisListener(ctx, {
      maxBulkLength: o.max_bulk_length ?? REDIS_MAX_BULK_LENGTH,
      connectionsPerEndpoint: o.connections_per_endpoint ?? 1,
      prefixRoutes: (o.prefix_routes ?? []).map((r) => ({ prefix: Buffer.from(r.prefix), cluster: r.cluster })),
      catchAllCluster: o.catch_all_cluster ?? null,
      allowFlush: o.allow_flush ?? true,
    });
  },
};
