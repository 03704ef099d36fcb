/**
 * The Redis (RESP) protocol: an L7 listener that unmodified Redis clients use
 * as if it were a Redis server.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ProtocolModule } from '../protocol';
import type { ConfigIssue } from '../../config/validate';
import { RedisProxyListener, type RedisExtraOptions } from './listener-extras';
import type { RedisOptions } from './listener';
import { parseDuration } from '../../util/duration';
import { Duration } from '../../config/schema';
import { KeyRewriter } from './prefix';
import { REDIS_MAX_BULK_LENGTH } from './codec';
import { ruleProblem, sha256 } from './acl';

const RedisOptionsSchema = Type.Object(
  {
    prefix_routes: Type.Optional(
      Type.Array(
        Type.Object(
          {
            prefix: Type.String({ minLength: 1, description: 'Key prefix (bytes, case-sensitive).' }),
            cluster: Type.String({ description: 'Cluster serving keys with this prefix.' }),
            strip: Type.Optional(Type.Boolean({ default: false, description: 'Remove the matched prefix from every key of the command before sending it (replies that name keys are mapped back).' })),
            add: Type.Optional(Type.String({ minLength: 1, description: 'Put this prefix in front of every key of the command (after strip); replies that name keys are mapped back.' })),
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
    users: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.Optional(Type.String({ minLength: 1, default: 'default', description: 'User name (AUTH <password> means the user "default").' })),
            password: Type.Optional(Type.String({ minLength: 1, description: 'Password in clear (redacted by /config).' })),
            password_sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'Or: the hex sha256 of the password.' })),
            commands: Type.Optional(
              Type.Array(Type.String({ minLength: 1 }), { default: ['+@all'], description: 'ACL command rules in order: +@category, -@category, +command, -command, +command|sub, allcommands, nocommands.' }),
            ),
          },
          { additionalProperties: false },
        ),
        { minItems: 1, description: 'When set, clients must AUTH (or HELLO ... AUTH) before any other command; each user may run the commands its rules allow.' },
      ),
    ),
    upstreams: Type.Optional(
      Type.Record(
        Type.String(),
        Type.Object(
          {
            username: Type.Optional(Type.String({ minLength: 1, description: 'AUTH username (Redis 6+ ACL user).' })),
            password: Type.Optional(Type.String({ minLength: 1, description: 'AUTH password sent on every new connection.' })),
            db: Type.Optional(Type.Integer({ minimum: 0, maximum: 15, description: 'Database selected on every new connection (a client SELECT 0 means this one).' })),
          },
          { additionalProperties: false },
        ),
        { description: 'Per cluster name: credentials and database for the connections Portway opens to its endpoints.' },
      ),
    ),
    read_replicas: Type.Optional(
      Type.Array(
        Type.Object(
          {
            primary: Type.String({ description: 'Cluster that writes (and, per policy, reads) go to.' }),
            replicas: Type.String({ description: 'Cluster of read replicas of the primary.' }),
            policy: Type.Optional(
              Type.Union([Type.Literal('primary'), Type.Literal('prefer-replica'), Type.Literal('replica')], {
                default: 'prefer-replica',
                description: 'Where read-only commands go: primary, prefer-replica (a replica when one is usable, else the primary) or replica.',
              }),
            ),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    redis_cluster: Type.Optional(
      Type.Array(
        Type.Object(
          {
            cluster: Type.String({ description: 'A cluster whose endpoints are seed nodes of a Redis Cluster: Portway learns the slot map from them (CLUSTER SLOTS) and sends each key to the master of its slot.' }),
            refresh_interval: Type.Optional(Duration('How often the slot map is loaded again (0: only after MOVED and broken links).', '30s')),
            max_redirects: Type.Optional(Type.Integer({ minimum: 0, maximum: 16, default: 5, description: 'MOVED / ASK redirections one request may follow before its last reply is passed to the client.' })),
          },
          { additionalProperties: false },
        ),
        { description: 'Clusters that are Redis Clusters (cluster-enabled servers), not single servers or key-hash sharded pools.' },
      ),
    ),
    mirror: Type.Optional(
      Type.Array(
        Type.Object(
          {
            cluster: Type.String({ description: 'Shadow cluster receiving copies; its replies are discarded.' }),
            sample: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 1, description: 'Fraction of eligible requests copied.' })),
            commands: Type.Optional(Type.Union([Type.Literal('writes'), Type.Literal('all')], { default: 'writes', description: 'writes: only commands flagged write; all: every forwarded command.' })),
          },
          { additionalProperties: false },
        ),
      ),
    ),
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
    const names = new Set<string>();
    (o.users ?? []).forEach((u, i) => {
      const name = u.name ?? 'default';
      if (names.has(name)) issues.push({ path: `users[${i}].name`, message: `duplicate user '${name}'` });
      names.add(name);
      if ((u.password === undefined) === (u.password_sha256 === undefined)) issues.push({ path: `users[${i}]`, message: 'give exactly one of password and password_sha256' });
      (u.commands ?? []).forEach((r, j) => {
        const p = ruleProblem(r);
        if (p !== null) issues.push({ path: `users[${i}].commands[${j}]`, message: p });
      });
    });
    for (const [name, u] of Object.entries(o.upstreams ?? {})) {
      if (!ctx.clusters.has(name)) issues.push({ path: `upstreams.${name}`, message: `unknown cluster '${name}'` });
      if (u.username !== undefined && u.password === undefined) issues.push({ path: `upstreams.${name}.username`, message: 'a username needs a password' });
    }
    const primaries = new Set<string>();
    (o.read_replicas ?? []).forEach((r, i) => {
      if (!ctx.clusters.has(r.primary)) issues.push({ path: `read_replicas[${i}].primary`, message: `unknown cluster '${r.primary}'` });
      if (!ctx.clusters.has(r.replicas)) issues.push({ path: `read_replicas[${i}].replicas`, message: `unknown cluster '${r.replicas}'` });
      if (r.primary === r.replicas) issues.push({ path: `read_replicas[${i}].replicas`, message: 'replicas must be another cluster than the primary' });
      if (primaries.has(r.primary)) issues.push({ path: `read_replicas[${i}].primary`, message: `cluster '${r.primary}' already has read replicas` });
      primaries.add(r.primary);
    });
    (o.mirror ?? []).forEach((m, i) => {
      if (!ctx.clusters.has(m.cluster)) issues.push({ path: `mirror[${i}].cluster`, message: `unknown cluster '${m.cluster}'` });
    });
    const rcNames = new Set<string>();
    (o.redis_cluster ?? []).forEach((r, i) => {
      if (!ctx.clusters.has(r.cluster)) issues.push({ path: `redis_cluster[${i}].cluster`, message: `unknown cluster '${r.cluster}'` });
      if (rcNames.has(r.cluster)) issues.push({ path: `redis_cluster[${i}].cluster`, message: `cluster '${r.cluster}' is listed twice` });
      rcNames.add(r.cluster);
      if ((o.upstreams?.[r.cluster]?.db ?? 0) !== 0) issues.push({ path: `upstreams.${r.cluster}.db`, message: 'a Redis Cluster has only database 0' });
      if ((o.read_replicas ?? []).some((rr) => rr.primary === r.cluster || rr.replicas === r.cluster)) {
        issues.push({ path: `redis_cluster[${i}].cluster`, message: 'read_replicas cannot name a Redis Cluster (its replicas are not used)' });
      }
    });
    return issues;
  },
  create(ctx) {
    const o = ctx.listener.options as RawRedisOptions;
    const routes = o.prefix_routes ?? [];
    const extra: RedisExtraOptions = {
      redisCluster: (o.redis_cluster ?? []).map((r) => ({ cluster: r.cluster, refreshIntervalMs: parseDuration(r.refresh_interval ?? '30s'), maxRedirects: r.max_redirects ?? 5 })),
      keyRewriter: routes.some((r) => r.strip === true || r.add !== undefined)
        ? (clusters) => new KeyRewriter(routes.map((r) => ({ prefix: Buffer.from(r.prefix), cluster: clusters.get(r.cluster)!, strip: r.strip ?? false, add: Buffer.from(r.add ?? '') })))
        : null,
    };
    const options: RedisOptions = {
      maxBulkLength: o.max_bulk_length ?? REDIS_MAX_BULK_LENGTH,
      connectionsPerEndpoint: o.connections_per_endpoint ?? 1,
      prefixRoutes: (o.prefix_routes ?? []).map((r) => ({ prefix: Buffer.from(r.prefix), cluster: r.cluster })),
      catchAllCluster: o.catch_all_cluster ?? null,
      allowFlush: o.allow_flush ?? true,
      users:
        o.users === undefined
          ? null
          : o.users.map((u) => ({
              name: u.name ?? 'default',
              passwordSha256: u.password !== undefined ? sha256(u.password) : Buffer.from(u.password_sha256!, 'hex'),
              commands: u.commands ?? ['+@all'],
            })),
      upstreams: new Map(Object.entries(o.upstreams ?? {}).map(([k, u]) => [k, { username: u.username ?? null, password: u.password ?? null, db: u.db ?? 0 }])),
      readReplicas: (o.read_replicas ?? []).map((r) => ({ primary: r.primary, replicas: r.replicas, policy: r.policy ?? 'prefer-replica' })),
      mirror: (o.mirror ?? []).map((m) => ({ cluster: m.cluster, sample: m.sample ?? 1, writesOnly: (m.commands ?? 'writes') === 'writes' })),
    };
    return new RedisProxyListener(ctx, options, extra);
  },
};
