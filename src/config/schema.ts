/**
 * The configuration schema. Written with TypeBox so the same definition gives
 * the TypeScript types, the ajv validator and config/portway.schema.json.
 * Every field is documented where it is declared (the description ends up in
 * the JSON Schema, so editors show it).
 */
import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { DURATION_PATTERN } from '../util/duration';
import { HASH_NAMES } from '../routing/hashing';
import { DISTRIBUTION_NAMES } from '../routing/ketama';

/** An integer number of milliseconds, or a string like "250ms", "5s", "2m", "1h". */
export function Duration(description: string, def?: string): TUnsafe<string | number> {
  return Type.Unsafe<string | number>({
    type: ['integer', 'string'],
    minimum: 0,
    pattern: DURATION_PATTERN,
    description,
    'x-hint': 'must be a duration such as "250ms", "5s", "1m", "1h" or a number of milliseconds',
    ...(def !== undefined ? { default: def } : {}),
  });
}

export const Name = (description: string) =>
  Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$', maxLength: 128, description, 'x-hint': 'must be a name of letters, digits, "_", "." or "-"' });

export const AddressString = (description: string) =>
  Type.String({ minLength: 1, description: `${description} Written host:port, or [ipv6]:port.` });

export const StringMatch = Type.Object(
  {
    exact: Type.Optional(Type.String({ description: 'The value equals this string.' })),
    prefix: Type.Optional(Type.String({ description: 'The value starts with this string.' })),
    suffix: Type.Optional(Type.String({ description: 'The value ends with this string.' })),
    regex: Type.Optional(Type.String({ description: 'The value matches this regular expression (JavaScript syntax, anchored only if you anchor it).' })),
    present: Type.Optional(Type.Boolean({ description: 'true: the attribute is present; false: it is absent.' })),
    invert: Type.Optional(Type.Boolean({ description: 'Negate the result.' })),
  },
  { additionalProperties: false, description: 'Exactly one of exact, prefix, suffix, regex or present.' },
);

export const RouteSchema = Type.Object(
  {
    name: Type.Optional(Name('Route name, shown in logs and metrics. Defaults to route-<index>.')),
    match: Type.Optional(
      Type.Object(
        {
          source_cidr: Type.Optional(Type.Array(Type.String(), { description: 'The client address is inside one of these CIDRs.' })),
          attributes: Type.Optional(
            Type.Record(Type.String(), StringMatch, {
              description: "Request attributes the protocol exposes (e.g. redis 'key', 'command'; bolt 'service'). All must match.",
            }),
          ),
        },
        { additionalProperties: false, description: 'All given conditions must hold. An empty or missing match matches everything.' },
      ),
    ),
    cluster: Type.Optional(Name('Send matching requests to this cluster.')),
    weighted_clusters: Type.Optional(
      Type.Array(
        Type.Object(
          {
            cluster: Name('Cluster name.'),
            weight: Type.Integer({ minimum: 1, description: 'Relative weight.' }),
          },
          { additionalProperties: false },
        ),
        { minItems: 1, description: 'Split matching requests across clusters by weight.' },
      ),
    ),
  },
  { additionalProperties: false, description: 'The first route whose match holds wins. Give exactly one of cluster or weighted_clusters.' },
);

export const FilterEntrySchema = Type.Object(
  {
    type: Type.String({ description: 'The filter type (access_log, router, ...). The other keys are that filter\'s own config.' }),
    name: Type.Optional(Name('Instance name, for logs and metrics. Defaults to the type.')),
  },
  { additionalProperties: true },
);

export const ListenerSchema = Type.Object(
  {
    name: Name('Unique listener name.'),
    address: AddressString('Where to listen.'),
    protocol: Type.String({ description: 'The wire protocol spoken by clients on this listener (tcp, ...).' }),
    filters: Type.Optional(
      Type.Array(FilterEntrySchema, {
        description: 'The filter chain, run in order for every request. A router is appended when the chain has none.',
      }),
    ),
    routes: Type.Optional(Type.Array(RouteSchema, { description: 'Routes used by the router filter, tried in order.' })),
    idle_timeout: Type.Optional(Duration('Close a client connection with no traffic in either direction for this long. 0 disables.', '1h')),
    max_connections: Type.Optional(Type.Integer({ minimum: 1, description: 'Refuse client connections beyond this many open at once.' })),
    options: Type.Optional(Type.Object({}, { additionalProperties: true, description: "Protocol-specific options, validated by the protocol's own schema." })),
    original_dst: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Sidecar mode: read each connection\'s original destination (SO_ORIGINAL_DST, as set by an iptables REDIRECT). Routes match it as attributes original_dst_ip and original_dst_port, an original_dst cluster connects to it, and the access log shows it.',
      }),
    ),
    original_dst_direct: Type.Optional(
      Type.Union([Type.Literal('refuse'), Type.Literal('serve')], {
        default: 'refuse',
        description:
          'With original_dst: what to do with a connection whose original destination is this listener (a client that dialled Portway directly, or a redirect loop). refuse closes it (counted in portway_original_dst_total); serve routes it without original_dst attributes.',
      }),
    ),
  },
  { additionalProperties: false },
);

export const EndpointSchema = Type.Unsafe<string | { address: string; weight?: number; name?: string }>({
  type: ['string', 'object'],
  description: 'host:port, or {address, weight}. A host name is resolved through DNS (every A/AAAA record becomes an endpoint) and refreshed every dns_refresh.',
  properties: {
    address: { type: 'string', minLength: 1, description: 'host:port' },
    weight: { type: 'integer', minimum: 1, maximum: 1000, description: 'Relative weight for the weighted balancer and for sharding (default 1).' },
    name: { type: 'string', minLength: 1, description: "Shard name for sharding (twemproxy's server alias); default host:port as written." },
  },
  required: ['address'],
  additionalProperties: false,
});

export const ClusterSchema = Type.Object(
  {
    name: Name('Unique cluster name.'),
    original_dst: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Sidecar mode: connect each client connection to its original destination (from a listener with original_dst: true) instead of to configured endpoints. L4 (tcp, and auto listeners passing TLS or unknown bytes through). Give no endpoints, discovery, component or sharding.',
      }),
    ),
    endpoints: Type.Optional(Type.Array(EndpointSchema, { description: 'Static upstream endpoints. Give endpoints or discovery.' })),
    discovery: Type.Optional(
      Type.Object(
        {
          type: Type.String({ description: 'The discovery source (dns_srv, file, zookeeper, etcd ...). The other keys are its own config.' }),
          initial_timeout: Type.Optional(Duration('How long startup and reload wait for the first answer before going on with no endpoints.', '5s')),
        },
        { additionalProperties: true, description: 'Where endpoints come from when they are not static. Give endpoints or discovery.' },
      ),
    ),
    component: Type.Optional(
      Type.Object(
        { type: Type.String({ description: 'The in-process component serving this cluster (memory, ...). The other keys are its own config.' }) },
        { additionalProperties: true, description: 'An upstream that runs inside Portway. Give endpoints, discovery or component.' },
      ),
    ),
    sharding: Type.Optional(
      Type.Object(
        {
          hash: Type.Optional(
            Type.Union(HASH_NAMES.map((h) => Type.Literal(h)), { default: 'fnv1a_64', description: 'Key hash function (the names and results of twemproxy).' }),
          ),
          distribution: Type.Optional(
            Type.Union(DISTRIBUTION_NAMES.map((d) => Type.Literal(d)), { default: 'ketama', description: 'How hashes map to endpoints: ketama (consistent), modula, random.' }),
          ),
          hash_tag: Type.Optional(Type.String({ minLength: 2, maxLength: 2, description: 'Two characters, e.g. "{}": only the part of a key between them is hashed, so related keys share a shard.' })),
          auto_eject: Type.Optional(
            Type.Boolean({
              default: false,
              description:
                "Leave a shard that health checks or outlier detection eject out of the hash ring until it is back (twemproxy's auto_eject_hosts). Off by default: its keys move to other shards meanwhile.",
            }),
          ),
        },
        {
          additionalProperties: false,
          description: 'Each key belongs to exactly one endpoint, picked by hashing it (twemproxy-compatible: the same keys land on the same servers). The balancer is not used.',
        },
      ),
    ),
    lb: Type.Optional(
      Type.Union([Type.Literal('round_robin'), Type.Literal('random'), Type.Literal('least_request'), Type.Literal('weighted')], {
        description: 'Load balancer: round_robin, random, least_request (power of two choices), weighted (smooth weighted round robin).',
        default: 'round_robin',
      }),
    ),
    connect_timeout: Type.Optional(Duration('Give up on a TCP connect after this long and try another endpoint.', '5s')),
    max_connect_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 16, description: 'Endpoints tried before a connect failure is final.', default: 3 })),
    dns_refresh: Type.Optional(Duration('How often host names among the endpoints are resolved again.', '30s')),
    health_check: Type.Optional(
      Type.Object(
        {
          passive: Type.Optional(
            Type.Object(
              {
                consecutive_failures: Type.Optional(Type.Integer({ minimum: 1, description: 'Connect failures in a row that eject an endpoint.', default: 1 })),
                ejection_time: Type.Optional(Duration('How long an ejected endpoint is skipped.', '5s')),
              },
              { additionalProperties: false, description: 'Connect failures: an endpoint that refuses or times out connections is skipped for a while.' },
            ),
          ),
          outlier: Type.Optional(
            Type.Object(
              {
                consecutive_errors: Type.Optional(
                  Type.Integer({ minimum: 1, default: 5, description: 'Request errors in a row (L4: connections reset by the upstream; Redis: link resets and timeouts, not -ERR replies) that eject an endpoint.' }),
                ),
                error_rate: Type.Optional(
                  Type.Object(
                    {
                      min_requests: Type.Optional(Type.Integer({ minimum: 1, default: 20, description: 'Requests an endpoint (and each peer it is compared with) needs in one interval to be judged.' })),
                      threshold_percent: Type.Optional(
                        Type.Number({
                          exclusiveMinimum: 0,
                          maximum: 100,
                          default: 30,
                          description: 'Eject an endpoint whose error rate over the last interval is this many percentage points above the mean error rate of its peers (e.g. 30: peers at 2%, the endpoint at 33% or more).',
                        }),
                      ),
                    },
                    { additionalProperties: false, description: 'Error rate compared with the peers, evaluated every interval. Omit to judge by consecutive errors only.' },
                  ),
                ),
                interval: Type.Optional(Duration('The window over which error rates are counted, and the time a healthy endpoint needs to lower its ejection multiplier by one.', '10s')),
                base_ejection_time: Type.Optional(Duration('An ejection lasts this long times the number of times the endpoint was ejected recently, up to max_ejection_time.', '30s')),
                max_ejection_time: Type.Optional(Duration('The longest an ejection lasts.', '300s')),
                max_ejection_percent: Type.Optional(
                  Type.Integer({ minimum: 0, maximum: 100, default: 10, description: 'At most this percentage of the endpoints is ejected by outlier detection at once; with 2 or more endpoints one may always be ejected.' }),
                ),
              },
              { additionalProperties: false, description: 'Outlier detection from request outcomes reported by the protocols.' },
            ),
          ),
          active: Type.Optional(
            Type.Object(
              {
                type: Type.String({ description: 'The probe: tcp (connect and close), redis (PING, expects +PONG), http (GET path, expects a status in expected_statuses); other protocols register their own.' }),
                interval: Type.Optional(Duration('Time between two probe rounds.', '10s')),
                jitter: Type.Optional(
                  Type.Unsafe<number | string>({
                    type: ['number', 'string'],
                    minimum: 0,
                    maximum: 100,
                    pattern: '^[0-9]+(\\.[0-9]+)?%$',
                    default: '10%',
                    description: 'Each interval is randomly lengthened or shortened by up to this share of it: "10%" or 10.',
                    'x-hint': 'must be a percentage such as "10%" or a number from 0 to 100',
                  }),
                ),
                timeout: Type.Optional(Duration('A probe that has not succeeded after this long fails.', '2s')),
                healthy_threshold: Type.Optional(Type.Integer({ minimum: 1, default: 2, description: 'Successful probes in a row that make an unhealthy endpoint healthy again.' })),
                unhealthy_threshold: Type.Optional(Type.Integer({ minimum: 1, default: 3, description: 'Failed probes in a row that make an endpoint unhealthy (skipped by the balancer).' })),
                path: Type.Optional(Type.String({ pattern: '^/[^\\s]*$', description: 'http probe: the path requested with GET (default /).' })),
                host: Type.Optional(Type.String({ pattern: '^[^\\s]+$', description: 'http probe: the Host header sent (default the endpoint address).' })),
                expected_statuses: Type.Optional(
                  Type.Array(Type.Union([Type.Integer({ minimum: 100, maximum: 599 }), Type.String({ pattern: '^[1-5][0-9]{2}(-[1-5][0-9]{2})?$' })]), {
                    minItems: 1,
                    description: 'http probe: statuses that count as healthy, each a number or a range "200-299" (default ["200-399"]).',
                  }),
                ),
              },
              { additionalProperties: false, description: 'Active health checks: a background probe of every endpoint.' },
            ),
          ),
        },
        { additionalProperties: false, description: 'How endpoint health is judged.' },
      ),
    ),
    limits: Type.Optional(
      Type.Object(
        {
          max_connections: Type.Optional(Type.Integer({ minimum: 1, description: 'Upstream connections open at once, over all endpoints.', default: 10000 })),
          max_pending_requests: Type.Optional(Type.Integer({ minimum: 0, description: 'Requests waiting for an upstream connection.', default: 1024 })),
          max_connections_per_endpoint: Type.Optional(Type.Integer({ minimum: 1, description: 'Pooled connections to one endpoint (L7 protocols).', default: 16 })),
          pool_idle_timeout: Type.Optional(Duration('Close a pooled upstream connection idle for this long.', '60s')),
        },
        { additionalProperties: false, description: 'Connection pool limits.' },
      ),
    ),
  },
  { additionalProperties: false },
);

export const ConfigSchema = Type.Object(
  {
    admin: Type.Optional(
      Type.Object(
        {
          address: Type.Optional(AddressString('Admin HTTP server address (default 127.0.0.1:9901).')),
          enabled: Type.Optional(Type.Boolean({ description: 'Serve the admin API (default true).' })),
        },
        { additionalProperties: false },
      ),
    ),
    log: Type.Optional(
      Type.Object(
        {
          level: Type.Optional(
            Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), {
              description: 'Log level.',
              default: 'info',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    reload: Type.Optional(
      Type.Object(
        {
          watch: Type.Optional(Type.Boolean({ description: 'Reload when the config file changes.', default: false })),
          debounce: Type.Optional(Duration('Wait this long after a file change before reloading.', '250ms')),
        },
        { additionalProperties: false },
      ),
    ),
    workers: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 256 }), Type.Literal('auto')], {
        description:
          'Worker processes (node:cluster). 1: one process. N > 1: the primary forks N workers, each running every listener (the primary hands out connections round robin), and serves the admin API itself with metrics summed over the workers; reload reaches every worker; a dead worker is restarted. auto: one per CPU core.',
        default: 1,
      }),
    ),
    drain_timeout: Type.Optional(Duration('On shutdown (and for removed listeners on reload), wait this long for open connections to finish.', '30s')),
    listeners: Type.Optional(Type.Array(ListenerSchema, { description: 'Where Portway accepts clients.' })),
    clusters: Type.Optional(Type.Array(ClusterSchema, { description: 'Where Portway sends requests.' })),
  },
  { additionalProperties: false, $id: 'https://portway.dev/schema/portway.json', title: 'Portway configuration' },
);

export type RawConfig = Static<typeof ConfigSchema>;
export type RawListener = Static<typeof ListenerSchema>;
export type RawCluster = Static<typeof ClusterSchema>;
export type RawRoute = Static<typeof RouteSchema>;
export type RawStringMatch = Static<typeof StringMatch>;
export type { TSchema };
