import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Config, ListenerConfig } from './config/types';
import { ConfigError, type ConfigIssue } from './config/validate';
import { loadConfigFile, loadConfigText } from './config/load';
import { FilterChain, type Filter } from './filter';
import { ClusterManager } from './routing/cluster-manager';
import type { Cluster } from './routing/cluster';
import { ListenerRuntime, ListenerStats } from './listener';
import { OriginalDstTracker, type DirectPolicy } from './sidecar/destinations';
import { originalDstFilter } from './sidecar/original-dst-filter';
import { originalDstClusterFilter } from './sidecar/original-dst-cluster';
import type { Socket } from 'node:net';
import type { ConnectionHandler } from './protocols/protocol';
import { MetricsRegistry } from './metrics';
import type { Logger } from './logger';
import { builtins, type Builtins } from './builtins';
import { AdminServer } from './admin/server';
import { adoptInherited, type HandoffSource, type InheritedSockets } from './handoff';
import { VERSION } from './version';
import { LoopDelayMonitor } from './util/loop-delay';

export interface ReloadResult {
  ok: boolean;
  generation: number;
  issues?: ConfigIssue[];
  error?: string;
}

export interface ProxyStartOptions {
  /** Listening sockets handed over by a predecessor (src/handoff). */
  inherited?: InheritedSockets;
  /** false: no admin server (a worker process; the primary serves admin). */
  admin?: boolean;
}

interface BuiltListener {
  config: ListenerConfig;
  handler: ConnectionHandler;
}

/**
 * Owns the listeners, clusters and admin server, and moves them from one
 * config generation to the next. A new generation is built completely beside
 * the running one; only when everything built (and every new socket bound)
 * does one swap install it. Anything that fails leaves the running
 * generation untouched.
 */
export class Proxy {
  readonly metrics = new MetricsRegistry();
  readonly clusters: ClusterManager;
  /** Keyed by listener name. */
  private readonly listeners = new Map<string, ListenerRuntime>();
  private readonly stats = new Map<string, ListenerStats>();
  private readonly handlers = new Set<ConnectionHandler>();
  private admin: AdminServer | null = null;
  private watcher: FSWatcher | null = null;
  private reloadTimer: NodeJS.Timeout | null = null;
  private reloading: Promise<ReloadResult> | null = null;
  private draining = false;
  generation = 0;
  lastReload: { at: string; ok: boolean; issues?: ConfigIssue[]; error?: string } | null = null;
  private readonly reloadOk;
  private readonly reloadFail;
  private readonly startedAt = Date.now();

  private constructor(
    public config: Config,
    readonly log: Logger,
    readonly builtins: Builtins,
  ) {
    this.clusters = new ClusterManager(this.metrics, log, { discovery: builtins.discovery, components: builtins.components, healthProbes: builtins.healthProbes });
    this.reloadOk = this.metrics.counter('portway_config_reload_total', 'Config reloads, by result.', { result: 'ok' });
    this.reloadFail = this.metrics.counter('portway_config_reload_total', 'Config reloads, by result.', { result: 'error' });
    this.metrics.gauge('portway_config_generation', 'The running config generation.', undefined, () => this.generation);
    this.metrics.gauge('portway_build_info', 'Portway version.', { version: VERSION }, () => 1);
    this.metrics.gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch, in seconds.', undefined, () => Math.floor(this.startedAt / 1000));
    this.metrics.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', undefined, () => process.memoryUsage.rss());
    this.metrics.counterFn('process_cpu_seconds_total', 'User and system CPU time spent, in seconds.', undefined, () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    });
    this.loopDelay = new LoopDelayMonitor(this.metrics);
  }

  private readonly loopDelay: LoopDelayMonitor;

  /** Starts Portway on a validated config: clusters, listeners, admin server, file watch. */
  static async start(config: Config, log: Logger, b: Builtins = builtins(), opts: ProxyStartOptions = {}): Promise<Proxy> {
    const p = new Proxy(config, log, b);
    p.inherited = opts.inherited ?? null;
    await p.apply(config);
    if (config.admin.enabled && opts.admin !== false) {
      p.admin = new AdminServer(p, log.child({ component: 'admin' }));
      try {
        const ia = p.inherited?.admin;
        if (ia && ia.host === config.admin.host && ia.port === config.admin.port) {
          await adoptInherited(p.admin.netServer, ia);
          p.inherited!.admin = null;
        } else await p.admin.listen(config.admin.host, config.admin.port);
      } catch (err) {
        await p.shutdown(0);
        throw err;
      }
    }
    // Inherited sockets no listener took (renamed or moved in the new config) close now.
    for (const il of p.inherited?.listeners.values() ?? []) il.server.close();
    p.inherited?.admin?.server.close();
    p.inherited = null;
    p.setupWatch();
    log.info({ generation: p.generation, listeners: config.listeners.map((l) => `${l.name}@${l.address}/${l.protocol}`), admin: p.adminAddress() }, 'portway started');
    return p;
  }

  /** Sockets inherited from a predecessor (zero-downtime restart), used by the first generation only. */
  private inherited: InheritedSockets | null = null;

  /** Listens on the socket inherited for this listener when its configured address is unchanged, else binds. */
  private async bindListener(rt: ListenerRuntime): Promise<void> {
    const il = this.inherited?.listeners.get(rt.config.name);
    if (il && il.host === rt.config.host && il.port === rt.config.port) {
      this.inherited!.listeners.delete(rt.config.name);
      await adoptInherited(rt.server, il);
      rt.server.on('error', (err) => this.log.error({ err, listener: rt.config.name }, 'listener error'));
      return;
    }
    await rt.listen();
  }

  /** The listening sockets a successor takes over (zero-downtime restart). */
  handoffSource(): HandoffSource {
    return {
      listeners: [...this.listeners.values()].map((l) => ({ name: l.config.name, host: l.config.host, port: l.config.port, server: l.server })),
      admin: this.admin ? { host: this.config.admin.host, port: this.config.admin.port, server: this.admin.netServer } : null,
    };
  }

  /** Closes the admin server (its socket now served by a successor); the rest keeps running. */
  async closeAdmin(): Promise<void> {
    const a = this.admin;
    this.admin = null;
    await a?.close();
  }

  adminAddress(): string | null {
    return this.admin ? this.admin.address() : null;
  }

  listenerPort(name: string): number | undefined {
    return this.listeners.get(name)?.port;
  }

  listenerStats(): Record<string, unknown> {
    return Object.fromEntries([...this.listeners].map(([n, l]) => [n, { address: l.config.address, port: l.port, protocol: l.config.protocol, ...l.stats.toJSON() }]));
  }

  isDraining(): boolean {
    return this.draining;
  }

  private readonly originalDst = new Map<string, OriginalDstTracker>();

  /** The original destination tracker of a listener (sidecar mode): one per name, kept across reloads like its stats. */
  private originalDstFor(name: string, direct: DirectPolicy, log: Logger): OriginalDstTracker {
    let t = this.originalDst.get(name);
    if (!t) {
      t = new OriginalDstTracker(name, this.metrics, log);
      this.originalDst.set(name, t);
    }
    t.configure(direct, log);
    return t;
  }

  private statsFor(name: string): ListenerStats {
    let s = this.stats.get(name);
    if (!s) {
      s = new ListenerStats(name, this.metrics);
      this.stats.set(name, s);
    }
    return s;
  }

  private buildListener(lc: ListenerConfig, clusters: ReadonlyMap<string, Cluster>): BuiltListener {
    const logger = this.log.child({ listener: lc.name });
    const specs = [...lc.filters];
    if (!specs.some((f) => f.type === 'router')) specs.push({ type: 'router', name: 'router', config: {} });
    const filters: Filter[] = specs.map((fc, slot) => {
      const factory = this.builtins.filters.get(fc.type);
      if (!factory) throw new Error(`listener '${lc.name}': unknown filter type '${fc.type}'`);
      return factory.create(fc.config, { listener: lc, clusters, metrics: this.metrics, logger, slot, name: fc.name });
    });
    // Sidecar mode: the connection's original destination reaches every exchange before any configured filter runs.
    // The original_dst cluster filter runs after the router, to send the exchange to its destination's cluster.
    if (lc.originalDst) {
      filters.unshift(originalDstFilter(this.originalDstFor(lc.name, lc.originalDst.direct, logger)));
      filters.push(originalDstClusterFilter(this.metrics, logger));
    }
    const chain = new FilterChain(filters);
    const proto = this.builtins.protocols.get(lc.protocol);
    if (!proto) throw new Error(`listener '${lc.name}': unknown protocol '${lc.protocol}'`);
    const handler = proto.create({ listener: lc, chain, clusters, metrics: this.metrics, logger, stats: this.statsFor(lc.name) });
    return { config: lc, handler: new GenerationHandler(handler, chain, logger) };
  }

  /** Builds and installs a generation. Throws (leaving the running one as it was) when anything fails. */
  private async apply(next: Config): Promise<void> {
    const { next: clusterMap, fresh } = await this.clusters.prepare(next.clusters);
    const built: BuiltListener[] = [];
    const bound: ListenerRuntime[] = [];
    // A listener renamed without moving keeps its socket: match it by address.
    const nextNames = new Set(next.listeners.map((l) => l.name));
    const orphans = [...this.listeners.values()].filter((rt) => !nextNames.has(rt.config.name) && rt.config.port !== 0);
    const inherit = new Map<string, ListenerRuntime>();
    for (const lc of next.listeners) {
      const o = this.listeners.has(lc.name) ? undefined : orphans.find((rt) => sameAddress(rt.config, lc) && ![...inherit.values()].includes(rt));
      if (o) inherit.set(lc.name, o);
    }
    const current = (name: string) => this.listeners.get(name) ?? inherit.get(name);
    try {
      for (const lc of next.listeners) built.push(this.buildListener(lc, clusterMap));
      // Bind what is new (or moved to another address) before touching anything that runs.
      for (const b of built) {
        const cur = current(b.config.name);
        if (cur && sameAddress(cur.config, b.config)) continue;
        const rt = new ListenerRuntime(b.config, b.handler, this.statsFor(b.config.name), this.log.child({ listener: b.config.name }));
        rt.originalDst = b.config.originalDst ? (this.originalDst.get(b.config.name) ?? null) : null;
        await this.bindListener(rt);
        bound.push(rt);
      }
    } catch (err) {
      for (const rt of bound) rt.stopAccepting();
      for (const c of fresh) c.close();
      for (const b of built) b.handler.retire?.();
      throw err;
    }

    // Commit: from here on nothing can fail.
    const retiredHandlers: ConnectionHandler[] = [];
    const removed: ListenerRuntime[] = [];
    const boundByName = new Map(bound.map((rt) => [rt.config.name, rt]));
    const kept = new Map<string, ListenerRuntime>();
    for (const b of built) {
      const cur = current(b.config.name);
      const fresh = boundByName.get(b.config.name);
      if (fresh) {
        if (cur) removed.push(cur);
        kept.set(b.config.name, fresh);
      } else if (cur) {
        retiredHandlers.push(cur.handler);
        cur.update(b.config, b.handler, this.statsFor(b.config.name));
        cur.originalDst = b.config.originalDst ? (this.originalDst.get(b.config.name) ?? null) : null;
        kept.set(b.config.name, cur);
      }
      this.handlers.add(b.handler);
    }
    for (const rt of this.listeners.values()) {
      if (![...kept.values()].includes(rt) && !removed.includes(rt)) removed.push(rt);
    }
    this.listeners.clear();
    for (const [name, rt] of kept) this.listeners.set(name, rt);
    const goneClusters = this.clusters.commit(clusterMap);
    this.config = next;
    this.generation++;

    for (const h of retiredHandlers) {
      h.retire?.();
      this.handlers.delete(h);
    }
    for (const rt of removed) {
      rt.handler.retire?.();
      this.handlers.delete(rt.handler);
      void rt.drain(next.drainTimeoutMs);
    }
    // Removed clusters stop their background work; connections already open through them finish normally.
    for (const c of goneClusters) c.close();
  }

  /**
   * Validates and applies a new config (from the file it was loaded from, or
   * from text). Reloads are serialized. A bad config is rejected with its
   * reasons and the running generation stays.
   */
  reload(text?: string): Promise<ReloadResult> {
    const run = async (): Promise<ReloadResult> => {
      if (this.draining) return { ok: false, generation: this.generation, error: 'shutting down' };
      let next: Config;
      try {
        if (text !== undefined) next = loadConfigText(text, this.builtins.registries, this.config.sourcePath);
        else if (this.config.sourcePath) next = loadConfigFile(this.config.sourcePath, this.builtins.registries);
        else return { ok: false, generation: this.generation, error: 'no config file to reload from' };
        if (next.admin.address !== this.config.admin.address || next.admin.enabled !== this.config.admin.enabled) {
          this.log.warn({ running: this.config.admin.address, requested: next.admin.address }, 'admin address changes take effect on restart');
        }
        await this.apply(next);
      } catch (err) {
        this.reloadFail.inc();
        const issues = err instanceof ConfigError ? err.issues : undefined;
        const error = err instanceof ConfigError ? 'invalid configuration' : (err as Error).message;
        this.lastReload = { at: new Date().toISOString(), ok: false, error, ...(issues ? { issues } : {}) };
        this.log.error({ issues, error }, 'config reload rejected; the running config stays');
        return { ok: false, generation: this.generation, error, ...(issues ? { issues } : {}) };
      }
      this.reloadOk.inc();
      this.lastReload = { at: new Date().toISOString(), ok: true };
      this.log.info({ generation: this.generation }, 'config reloaded');
      this.setupWatch();
      return { ok: true, generation: this.generation };
    };
    const p = (this.reloading ?? Promise.resolve()).then(run, run);
    this.reloading = p;
    return p;
  }

  private setupWatch(): void {
    const path = this.config.sourcePath;
    const want = this.config.reload.watch && path !== undefined;
    if (!want) {
      this.watcher?.close();
      this.watcher = null;
      return;
    }
    if (this.watcher) return;
    // Watch the directory: editors and config-map updates replace the file rather than write it in place.
    const file = basename(path);
    this.watcher = watch(dirname(path), (_event, name) => {
      if (name !== null && name !== file && !String(name).startsWith('..')) return;
      if (this.reloadTimer) clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => {
        this.log.info({ file: path }, 'config file changed');
        void this.reload();
      }, this.config.reload.debounceMs);
    });
    this.watcher.unref();
  }

  /**
   * Stops accepting everywhere, waits up to drainMs (default drain_timeout) for
   * open connections to finish, closes the rest, and releases everything.
   */
  async shutdown(drainMs = this.config.drainTimeoutMs): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.watcher?.close();
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
    const open = [...this.listeners.values()].reduce((n, l) => n + l.connections.size, 0);
    this.log.info({ open_connections: open, drain_timeout_ms: drainMs }, 'draining');
    await Promise.all([...this.listeners.values()].map((l) => l.drain(drainMs)));
    for (const h of this.handlers) h.retire?.();
    await this.clusters.closeAll();
    await this.admin?.close();
    this.loopDelay.stop();
    this.log.info('stopped');
  }
}

/**
 * A listener's handler for one generation, counting the connections it
 * accepted, so that the filters built for it are closed (FilterChain.close:
 * each filter's close(), e.g. the global rate limiter's Redis connection)
 * exactly once, when the generation is retired and its last connection has
 * ended: connections keep the chain they started with until they close. A
 * generation that failed to build is retired with none, so closed at once.
 */
class GenerationHandler implements ConnectionHandler {
  private open = 0;
  private retired = false;

  constructor(
    private readonly inner: ConnectionHandler,
    private readonly chain: FilterChain,
    private readonly log: Logger,
  ) {}

  handle(socket: Socket): Socket | void {
    const s = this.inner.handle(socket) ?? socket;
    this.open++;
    s.once('close', this.onClose);
    return s === socket ? undefined : s;
  }

  private readonly onClose = (): void => {
    if (--this.open === 0 && this.retired) this.closeChain();
  };

  retire(): void {
    if (this.retired) return;
    this.retired = true;
    this.inner.retire?.();
    if (this.open === 0) this.closeChain();
  }

  private closeChain(): void {
    this.log.debug({ filters: this.chain.filters.map((f) => f.name) }, 'filters of a retired generation closed');
    this.chain.close();
  }
}

function sameAddress(a: ListenerConfig, b: ListenerConfig): boolean {
  // Port 0 means "any free port": keep the socket already bound.
  return a.host === b.host && a.port === b.port;
}
