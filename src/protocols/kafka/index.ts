/**
 * The Kafka protocol: a listener that unmodified Kafka clients (kafkajs,
 * librdkafka) use as their bootstrap broker. Portway is the broker facade:
 * it answers the protocol itself, advertises itself as the only broker and
 * group coordinator, and keeps records in the log component of the cluster
 * each topic routes to.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ProtocolModule } from '../protocol';
import type { ConfigIssue } from '../../config/validate';
import { Duration } from '../../config/schema';
import { parseDuration } from '../../util/duration';
import { KafkaListener } from './listener';

const DEFAULT_MAX_FRAME = 100 * 1024 * 1024;

const KafkaOptionsSchema = Type.Object(
  {
    advertised_host: Type.Optional(Type.String({ minLength: 1, description: 'Host clients are told to connect to (Metadata, FindCoordinator). Default: the local address each client connected to.' })),
    advertised_port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Port clients are told to connect to. Default: the port each client connected to.' })),
    node_id: Type.Optional(Type.Integer({ minimum: 0, default: 1, description: 'Broker id of the one broker Portway presents.' })),
    cluster_id: Type.Optional(Type.String({ minLength: 1, default: 'portway', description: 'Cluster id in Metadata responses.' })),
    max_frame_size: Type.Optional(
      Type.Integer({ minimum: 1024, maximum: 0x7fffffff, default: DEFAULT_MAX_FRAME, description: 'Largest request accepted (bytes); a bigger size prefix closes the connection (logged).' }),
    ),
    auto_create_topics: Type.Optional(Type.Boolean({ default: true, description: 'Create a topic when Metadata asks for one that does not exist (when the client allows it).' })),
    default_partitions: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 1, description: 'Partitions of auto-created topics and of CreateTopics asking for the default (-1).' })),
    topics: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 249, pattern: '^[A-Za-z0-9._-]+$', description: 'Topic name as clients see it.' }),
            partitions: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 1, description: 'Partition count when it is created.' })),
          },
          { additionalProperties: false },
        ),
        { description: 'Topics created at start (through their route) when missing.' },
      ),
    ),
    topic_routes: Type.Optional(
      Type.Array(
        Type.Object(
          {
            prefix: Type.String({ description: 'Topic name prefix as clients see it ("" matches every topic).' }),
            cluster: Type.String({ description: 'Cluster (with a log component) keeping these topics.' }),
            store_prefix: Type.Optional(
              Type.String({ description: 'Rename: the log keeps the topic with the matched prefix replaced by this (prefix "orders", store_prefix "tenant-a.orders": orders -> tenant-a.orders).' }),
            ),
          },
          { additionalProperties: false },
        ),
        { description: 'Where topics live, longest prefix first; topics no prefix matches follow the listener routes (attribute `topic`).' },
      ),
    ),
    group: Type.Optional(
      Type.Object(
        {
          initial_rebalance_delay: Type.Optional(Duration('After the first member joins an empty group, wait this long for others before the first generation.', '500ms')),
          min_session_timeout: Type.Optional(Duration('Smallest session timeout a member may ask for.', '1s')),
          max_session_timeout: Type.Optional(Duration('Largest session timeout a member may ask for.', '30m')),
        },
        { additionalProperties: false, description: 'Consumer group coordinator settings.' },
      ),
    ),
  },
  { additionalProperties: false },
);

type RawKafkaOptions = Static<typeof KafkaOptionsSchema>;

export const kafkaProtocol: ProtocolModule = {
  name: 'kafka',
  description: 'Kafka broker facade: produce, fetch, consumer groups and admin on log components (kafkajs, librdkafka).',
  optionsSchema: KafkaOptionsSchema,
  attributes: ['topic', 'client_id', 'api'],
  check(options, ctx): ConfigIssue[] {
    const o = options as RawKafkaOptions;
    const issues: ConfigIssue[] = [];
    (o.topic_routes ?? []).forEach((r, i) => {
      if (!ctx.clusters.has(r.cluster)) issues.push({ path: `topic_routes[${i}].cluster`, message: `unknown cluster '${r.cluster}'` });
    });
    const seen = new Set<string>();
    (o.topic_routes ?? []).forEach((r, i) => {
      if (seen.has(r.prefix)) issues.push({ path: `topic_routes[${i}].prefix`, message: `duplicate prefix '${r.prefix}'` });
      seen.add(r.prefix);
    });
    const g = o.group ?? {};
    if (parseDuration(g.min_session_timeout ?? '1s') > parseDuration(g.max_session_timeout ?? '30m')) {
      issues.push({ path: 'group.min_session_timeout', message: 'must not exceed max_session_timeout' });
    }
    return issues;
  },
  create(ctx) {
    const o = ctx.listener.options as RawKafkaOptions;
    const g = o.group ?? {};
    return new KafkaListener(ctx, {
      advertisedHost: o.advertised_host ?? null,
      advertisedPort: o.advertised_port ?? null,
      nodeId: o.node_id ?? 1,
      clusterId: o.cluster_id ?? 'portway',
      maxFrameSize: o.max_frame_size ?? DEFAULT_MAX_FRAME,
      autoCreateTopics: o.auto_create_topics ?? true,
      defaultPartitions: o.default_partitions ?? 1,
      topics: (o.topics ?? []).map((t) => ({ name: t.name, partitions: t.partitions ?? 1 })),
      topicRoutes: (o.topic_routes ?? []).map((r) => ({ prefix: r.prefix, cluster: r.cluster, storePrefix: r.store_prefix ?? null })),
      group: {
        initialRebalanceDelayMs: parseDuration(g.initial_rebalance_delay ?? '500ms'),
        minSessionTimeoutMs: parseDuration(g.min_session_timeout ?? '1s'),
        maxSessionTimeoutMs: parseDuration(g.max_session_timeout ?? '30m'),
        tickMs: 100,
      },
    });
  },
};
