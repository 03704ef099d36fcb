import type { RawConfig, RawStringMatch } from './schema';
import type { HashName } from '../routing/hashing';
import type { DistributionName } from '../routing/ketama';

/** The normalized, validated configuration: durations in ms, addresses parsed, defaults filled in. */
export interface Config {
  admin: { enabled: boolean; address: string; host: string; port: number };
  logLevel: string;
  reload: { watch: boolean; debounceMs: number };
  drainTimeoutMs: number;
  /** Worker processes (1: none, the process serves itself); `auto` resolved to the CPU count. */
  workers: number;
  listeners: ListenerConfig[];
  clusters: ClusterConfig[];
  /** The file this came from, when it came from a file. */
  sourcePath?: string;
  /** The config as written (after defaults), for GET /config. */
  raw: RawConfig;
}

export interface FilterConfig {
  type: string;
  name: string;
  /** The filter's own config: the entry without `type` and `name`. */
  config: Record<string, unknown>;
}

export interface RouteConfig {
  name: string;
  sourceCidr: string[];
  attributes: Record<string, RawStringMatch>;
  clusters: { cluster: string; weight: number }[];
}

export interface ListenerConfig {
  name: string;
  address: string;
  host: string;
  port: number;
  protocol: string;
  filters: FilterConfig[];
  routes: RouteConfig[];
  idleTimeoutMs: number;
  maxConnections: number;
  options: Record<string, unknown>;
  /** Sidecar mode: record each connection's original destination (SO_ORIGINAL_DST); null or absent when off. */
  originalDst?: { direct: 'refuse' | 'serve' } | null;
  /** Stable JSON of the listener as written, to tell whether a reload changed it. */
  fingerprint: string;
}

export interface EndpointConfig {
  /** As written (host:port); host may be a name to resolve. */
  address: string;
  host: string;
  port: number;
  weight: number;
  /** Labels a discovery source attached (version, zone, protocol ...). */
  metadata?: Record<string, string>;
  /** Shard name (twemproxy alias); defaults to `address`. */
  name?: string;
}

export interface DiscoveryConfig {
  type: string;
  initialTimeoutMs: number;
  /** The source's own keys (everything but type and initial_timeout). */
  config: Record<string, unknown>;
}

export type LbPolicy = 'round_robin' | 'random' | 'least_request' | 'weighted';

export interface ClusterConfig {
  name: string;
  /** Sidecar mode: connect to each connection's original destination; no endpoints. */
  originalDst?: boolean;
  /** Static endpoints; empty when discovery is set. */
  endpoints: EndpointConfig[];
  discovery: DiscoveryConfig | null;
  /** An in-process component instead of endpoints. */
  component: { type: string; config: Record<string, unknown> } | null;
  /** Key-hash sharding; null when the cluster is not sharded. */
  sharding: { hash: HashName; distribution: DistributionName; hashTag: string | null; autoEject?: boolean } | null;
  lb: LbPolicy;
  connectTimeoutMs: number;
  maxConnectAttempts: number;
  dnsRefreshMs: number;
  passive: { consecutiveFailures: number; ejectionTimeMs: number };
  /** Outlier detection (health_check.outlier); null when not configured. */
  outlier: OutlierConfig | null;
  /** Active health checks (health_check.active); null when not configured. */
  active: ActiveHealthConfig | null;
  limits: { maxConnections: number; maxPendingRequests: number; maxConnectionsPerEndpoint: number; poolIdleTimeoutMs: number };
  fingerprint: string;
}

export interface OutlierConfig {
  consecutiveErrors: number;
  /** null: consecutive errors only. */
  errorRate: { minRequests: number; thresholdPercent: number } | null;
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionTimeMs: number;
  maxEjectionPercent: number;
}

export interface ActiveHealthConfig {
  /** The probe type, looked up in the health probe registry. */
  type: string;
  intervalMs: number;
  /** 0..1: share of the interval added or removed at random. */
  jitter: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  /** http probe: the path requested (default /). */
  path?: string;
  /** http probe: the Host header (default the endpoint address). */
  host?: string;
  /** http probe: healthy status ranges [lo, hi] (default 200-399). */
  expectedStatuses?: readonly (readonly [number, number])[];
}
