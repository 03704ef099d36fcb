import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { ClusterConfig, EndpointConfig } from '../config/types';
import { formatHostPort } from '../util/address';
import type { DiscoveryRegistry, DiscoverySource } from './discovery/source';
import type { Component, ComponentRegistry } from '../components/component';

/** Where a cluster finds the factories its config names. */
export interface ClusterRegistries {
  discovery?: DiscoveryRegistry;
  components?: ComponentRegistry;
  /** Active health check probes by type; defaults to defaultHealthProbes() (tcp, plus what the composition root installed). */
  healthProbes?: HealthProbeRegistry;
}
import type { MetricsRegistry, Counter } from '../metrics';
import type { Logger } from '../logger';
import { Endpoint, EJECT_REASONS } from './endpoint';
import { createBalancer, type LoadBalancer } from './balancers';
import { createShardPicker, type ShardPicker } from './ketama';
import { OutlierDetector, type Ejection } from './health/outlier';
import { ActiveHealthChecker } from './health/active';
import { defaultHealthProbes, type HealthProbeRegistry } from './health/probe';

/**
 * A named set of endpoints with a balancer, health and limits. Health has
 * three inputs: passive (connect failures), outlier detection (request
 * outcomes the protocols report through reportResult) and active checks (a
 * background probe, health/active.ts). Ejected and unhealthy endpoints are
 * left out of the available list the balancer picks from.
 * Requests read `endpoints` (an immutable snapshot); DNS refresh and health
 * changes replace the snapshot in the background.
 */
export class Cluster {
  readonly name: string;
  /** Every endpoint, healthy or not. Replaced as a whole, never mutated. */
  endpoints: readonly Endpoint[] = [];
  private available: readonly Endpoint[] = [];
  /** performance.now() when the next ejection ends; the available list is rebuilt then. */
  private nextExpiry = Infinity;
  private readonly lb: LoadBalancer;
  private dnsTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** What endpoints come from: the static list, or the discovery source's last report. */
  private targets: readonly EndpointConfig[];
  private readonly source: DiscoverySource | null = null;
  private shardPicker: ShardPicker | null = null;
  private shardEndpoints: (Endpoint | null)[] = [];
  /**
   * State other parts keep about this cluster (a circuit breaker, outlier
   * detection), shown in GET /clusters under its key. Keyed by owner name.
   */
  readonly reports = new Map<string, () => unknown>();
  /** Set when the cluster is served in process (component: in config) rather than by endpoints. */
  readonly component: Component | null = null;
  private resolving: Promise<void> | null = null;
  private resolveAgain = false;
  /** The last DNS problem, shown in /clusters; null when the last resolution worked. */
  dnsError: string | null = null;
  lastResolvedAt = 0;
  /** Upstream connections open, over all endpoints (limit: limits.max_connections). */
  cxActive = 0;
  readonly cxOverflow: Counter;
  readonly noHealthy: Counter;
  /** Resolves once the first endpoint list is known (for discovery: or initial_timeout passed). */
  readonly ready: Promise<void>;
  /** Passive and outlier ejection decisions. */
  private readonly detector: OutlierDetector;
  /** Background probes (health_check.active); null when not configured. */
  private readonly checker: ActiveHealthChecker | null = null;

  constructor(
    readonly config: ClusterConfig,
    private readonly metrics: MetricsRegistry,
    private readonly log: Logger,
    registries: ClusterRegistries = {},
  ) {
    this.name = config.name;
    this.lb = createBalancer(config.lb);
    this.targets = config.endpoints;
    this.detector = new OutlierDetector(config.outlier, config.passive);
    const labels = { cluster: this.name };
    this.cxOverflow = metrics.counter('portway_cluster_cx_overflow_total', 'Upstream connections refused by the cluster connection limit.', labels);
    this.noHealthy = metrics.counter('portway_cluster_no_healthy_total', 'Requests that found no usable endpoint.', labels);
    metrics.gauge('portway_cluster_cx_active', 'Upstream connections open.', labels, () => this.cxActive);
    metrics.gauge('portway_cluster_endpoints', 'Endpoints known.', labels, () => this.endpoints.length);
    metrics.gauge('portway_cluster_endpoints_healthy', 'Endpoints not ejected.', labels, () => this.usable().length);
    if (config.component !== null) {
      const cf = registries.components?.get(config.component.type);
      if (!cf) throw new Error(`cluster '${this.name}': unknown component type '${config.component.type}'`);
      this.component = cf.create(config.component.config, { cluster: this.name, logger: log.child({ component: config.component.type }), metrics });
      this.ready = Promise.resolve();
      return;
    }
    if (config.active !== null) {
      const probe = (registries.healthProbes ?? defaultHealthProbes()).get(config.active.type);
      if (!probe) throw new Error(`cluster '${this.name}': unknown health check type '${config.active.type}'`);
      this.checker = new ActiveHealthChecker(config.active, probe, {
        endpoints: () => this.endpoints,
        changed: (ep, healthy, reason) => {
          if (healthy) this.log.info({ endpoint: ep.address }, 'endpoint healthy again (active health check)');
          else this.log.warn({ endpoint: ep.address, reason }, 'endpoint unhealthy (active health check)');
          this.rebuildAvailable(performance.now());
        },
        probed: (ep, ok) => {
          metrics.counter('portway_upstream_health_check_total', 'Active health check probes, by result.', { cluster: this.name, endpoint: ep.address, result: ok ? 'success' : 'failure' }).inc();
        },
      });
    }
    const dc = config.discovery;
    if (dc === null) {
      this.ready = this.resolve().then(() => {
        this.scheduleRefresh();
        this.startChecks();
      });
      return;
    }
    const factory = registries.discovery?.get(dc.type);
    if (!factory) throw new Error(`cluster '${this.name}': unknown discovery type '${dc.type}'`);
    this.source = factory.create(dc.config, { cluster: this.name, logger: log.child({ discovery: dc.type }) });
    let first: () => void = () => {};
    const firstUpdate = new Promise<void>((r) => (first = r));
    this.source.start((eps) => {
      if (this.closed) return;
      this.targets = eps;
      void this.resolve().then(() => {
        first();
        this.scheduleRefresh();
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => {
      timer = setTimeout(() => {
        log.warn({ after_ms: dc.initialTimeoutMs, status: this.source?.status() }, 'no answer from discovery yet; going on with no endpoints');
        r();
      }, dc.initialTimeoutMs);
      timer.unref();
    });
    this.ready = Promise.race([firstUpdate, timeout]).then(() => {
      clearTimeout(timer);
      this.startChecks();
    });
  }

  private startChecks(): void {
    if (!this.closed) this.checker?.start();
  }

  private needsDns(): boolean {
    return this.targets.some((e) => isIP(e.host) === 0);
  }

  /** Resolves targets to addresses, one run at a time; a change during a run triggers another. */
  private resolve(): Promise<void> {
    if (this.resolving) {
      this.resolveAgain = true;
      return this.resolving;
    }
    this.resolving = this.resolveOnce().finally(() => {
      this.resolving = null;
      if (this.resolveAgain && !this.closed) {
        this.resolveAgain = false;
        void this.resolve();
      }
    });
    return this.resolving;
  }

  /** Resolves host names among the targets; keeps Endpoint objects (and their stats) for addresses that stay. */
  private async resolveOnce(): Promise<void> {
    const old = new Map(this.endpoints.map((e) => [`${e.configured}|${e.address}`, e]));
    const next: Endpoint[] = [];
    const seen = new Set<string>();
    const errors: string[] = [];
    for (const ec of this.targets) {
      let ips: string[];
      if (isIP(ec.host) !== 0) ips = [ec.host];
      else {
        try {
          ips = (await lookup(ec.host, { all: true, verbatim: true })).map((a) => a.address);
        } catch (err) {
          errors.push(`${ec.host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
          // Keep what this name resolved to before: a DNS outage must not empty the cluster.
          for (const e of this.endpoints) {
            if (e.configured === ec.address && !seen.has(`${e.configured}|${e.address}`)) {
              seen.add(`${e.configured}|${e.address}`);
              next.push(e);
            }
          }
          continue;
        }
      }
      for (const ip of ips) {
        const key = `${ec.address}|${formatHostPort(ip, ec.port)}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const keep = old.get(key);
        next.push(keep && keep.weight === ec.weight ? keep : new Endpoint(this.name, ip, ec.port, ec.weight, ec.address, this.metrics, ec.metadata));
      }
    }
    if (this.closed) return;
    this.dnsError = errors.length ? errors.join('; ') : null;
    if (errors.length) this.log.warn({ errors }, 'DNS resolution failed; keeping the last known endpoints');
    this.lastResolvedAt = Date.now();
    const changed = next.length !== this.endpoints.length || next.some((e, i) => e !== this.endpoints[i]);
    if (changed) {
      for (const e of this.endpoints) if (!next.includes(e)) this.dropEndpointMetrics(e);
      this.endpoints = Object.freeze(next);
      this.rebuildAvailable(performance.now());
      this.rebuildShards();
      if (this.needsDns() || this.source) this.log.info({ endpoints: next.map((e) => e.address) }, 'cluster endpoints changed');
    }
  }

  private dropEndpointMetrics(e: Endpoint): void {
    const labels = { cluster: this.name, endpoint: e.address };
    for (const n of ['portway_upstream_cx_total', 'portway_upstream_cx_connect_fail_total', 'portway_upstream_rq_total', 'portway_upstream_rq_error_total', 'portway_upstream_health']) {
      this.metrics.remove(n, labels);
    }
    for (const reason of EJECT_REASONS) this.metrics.remove('portway_upstream_ejections_total', { ...labels, reason });
    for (const result of ['success', 'failure']) this.metrics.remove('portway_upstream_health_check_total', { ...labels, result });
  }

  private scheduleRefresh(): void {
    if (this.closed || !this.needsDns() || this.config.dnsRefreshMs <= 0) return;
    if (this.dnsTimer) clearTimeout(this.dnsTimer);
    this.dnsTimer = setTimeout(() => {
      this.dnsTimer = null;
      void this.resolve().finally(() => this.scheduleRefresh());
    }, this.config.dnsRefreshMs);
    this.dnsTimer.unref();
  }

  private rebuildAvailable(now: number): void {
    let next = Infinity;
    const ok: Endpoint[] = [];
    for (const e of this.endpoints) {
      if (e.isEjectedOnly(now)) next = Math.min(next, e.ejectedUntil);
      else if (e.activeHealthy) ok.push(e);
    }
    this.available = ok;
    this.nextExpiry = next;
    if (this.config.sharding?.autoEject === true) this.rebuildShards();
  }

  /** Endpoints neither ejected nor unhealthy. When none is left, all of them (panic mode: better to try than to refuse). */
  usable(now = performance.now()): readonly Endpoint[] {
    if (now >= this.nextExpiry) this.rebuildAvailable(now);
    return this.available.length > 0 ? this.available : this.endpoints;
  }

  /** True when each key belongs to exactly one endpoint (sharding configured). */
  get sharded(): boolean {
    return this.config.sharding !== null;
  }

  /** The endpoint owning a key (buf[start, end)), for sharded clusters; null when it has none. */
  shardOf(buf: Buffer, start: number, end: number): Endpoint | null {
    // auto_eject: an ejection that ends puts its shard back in the ring.
    if (this.nextExpiry !== Infinity && this.config.sharding!.autoEject === true) {
      const now = performance.now();
      if (now >= this.nextExpiry) this.rebuildAvailable(now);
    }
    const picker = this.shardPicker;
    if (picker === null) return null;
    const i = picker.pick(buf, start, end);
    return i < 0 ? null : (this.shardEndpoints[i] ?? null);
  }

  /** The endpoint of each shard, in shard order (null for a shard whose address did not resolve). */
  shards(): readonly (Endpoint | null)[] {
    return this.shardEndpoints;
  }

  /**
   * Rebuilt with the endpoint snapshot: shard i is the i-th configured endpoint (its first address).
   * With auto_eject, also on every health change: the ring is built over the shards that are
   * neither ejected nor unhealthy (over all of them when none is left), as twemproxy does.
   */
  private rebuildShards(): void {
    const sh = this.config.sharding;
    if (sh === null || this.targets.length === 0) return;
    const shardEndpoints = this.targets.map((t) => this.endpoints.find((e) => e.configured === t.address) ?? null);
    let live: boolean[] | undefined;
    if (sh.autoEject === true) {
      const now = performance.now();
      live = shardEndpoints.map((e) => e !== null && !e.isEjected(now));
      if (!live.some((x) => x)) live = undefined;
      const key = live === undefined ? '' : live.map((x) => (x ? '1' : '0')).join('');
      if (this.shardPicker !== null && key === this.liveKey && shardEndpoints.every((e, i) => e === this.shardEndpoints[i])) return;
      if (this.shardPicker !== null && key !== this.liveKey) {
        this.log.warn({ live: shardEndpoints.filter((_, i) => live === undefined || live[i]).map((e) => e?.address) }, 'hash ring rebuilt over the live shards (auto_eject)');
      }
      this.liveKey = key;
    }
    this.shardPicker = createShardPicker(
      { hash: sh.hash, distribution: sh.distribution, hashTag: sh.hashTag },
      // twemproxy's server name: the alias, else "host:port" as written, else the host alone for port 11211.
      this.targets.map((t) => ({ name: t.name ?? (t.port === 11211 ? t.host : t.address), weight: t.weight })),
      live,
    );
    this.shardEndpoints = shardEndpoints;
  }
  /** auto_eject: which shards the ring was last built over ("" for all). */
  private liveKey = '';

  /** Picks an endpoint for a request, skipping those already tried. */
  pick(exclude: ReadonlySet<Endpoint> | null = null): Endpoint | null {
    const ep = this.lb.pick(this.usable(), exclude);
    if (ep === null) this.noHealthy.inc();
    return ep;
  }

  /** A connect failure: after consecutive_failures in a row the endpoint is ejected (ejection_time x recent ejections). */
  reportConnectFailure(ep: Endpoint): void {
    ep.cxConnectFail.inc();
    const e = this.detector.connectFailure(ep);
    if (e !== null) this.applyEjections([e], 'endpoint ejected after connect failures');
  }

  reportConnectSuccess(ep: Endpoint): void {
    if (this.detector.connectSuccess(ep)) this.rebuildAvailable(performance.now());
  }

  /**
   * The outcome of one request (L4: one connection) at ep, for outlier
   * detection. ok=false only for failures that are the endpoint's fault: an
   * upstream reset, a broken link, a timeout; never an application error
   * reply (Redis -ERR). Costs one test when outlier detection is off.
   */
  reportResult(ep: Endpoint, ok: boolean): void {
    if (!this.detector.enabled) return;
    const ejected = this.detector.result(ep, ok, this.endpoints);
    if (ejected !== null && ejected.length > 0) this.applyEjections(ejected, 'endpoint ejected by outlier detection');
  }

  private applyEjections(list: Ejection[], msg: string): void {
    for (const e of list) this.log.warn({ endpoint: e.endpoint.address, reason: e.reason, for_ms: e.forMs, ejections: e.endpoint.ejections }, msg);
    this.rebuildAvailable(performance.now());
  }

  /** Stops background work. Open connections are not touched; their owners close them. */
  close(): Promise<void> {
    this.closed = true;
    if (this.dnsTimer) clearTimeout(this.dnsTimer);
    this.dnsTimer = null;
    this.checker?.stop();
    const done: Promise<unknown>[] = [];
    if (this.component) {
      done.push(Promise.resolve(this.component.close()).catch((err: Error) => this.log.warn({ error: err.message }, 'component did not close cleanly')));
    }
    if (this.source) {
      done.push(Promise.resolve(this.source.stop()).catch((err: Error) => this.log.warn({ error: err.message }, 'discovery source did not stop cleanly')));
    }
    return Promise.all(done).then(() => undefined);
  }

  toJSON(): Record<string, unknown> {
    const now = performance.now();
    return {
      name: this.name,
      lb: this.config.lb,
      cx_active: this.cxActive,
      cx_overflow: this.cxOverflow.value,
      no_healthy: this.noHealthy.value,
      dns: this.needsDns() ? { error: this.dnsError, last_resolved: this.lastResolvedAt ? new Date(this.lastResolvedAt).toISOString() : null } : undefined,
      discovery: this.source ? this.source.status() : undefined,
      health_check: {
        passive: { consecutive_failures: this.config.passive.consecutiveFailures, ejection_time_ms: this.config.passive.ejectionTimeMs },
        outlier: this.config.outlier !== null ? true : undefined,
        active: this.config.active !== null ? this.config.active.type : undefined,
      },
      unhealthy: this.endpoints.filter((e) => !e.activeHealthy).length,
      ejected: this.endpoints.filter((e) => e.isEjectedOnly(now)).length,
      component: this.component ? { type: this.component.type, capability: this.component.capability, ...this.component.health() } : undefined,
      ...Object.fromEntries([...this.reports].map(([k, f]) => [k, f()])),
      endpoints: this.endpoints.map((e) => e.toJSON(now)),
    };
  }
}
