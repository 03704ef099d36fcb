import type { ClusterConfig } from '../config/types';
import type { MetricsRegistry } from '../metrics';
import type { Logger } from '../logger';
import { Cluster } from './cluster';
import type { ClusterRegistries } from './cluster';

/**
 * Owns the clusters across config generations. A reload reuses a cluster
 * whose config did not change (keeping its endpoints, health and pools) and
 * builds new ones beside the old; replaced clusters are closed by the caller
 * once the old generation is retired.
 */
export class ClusterManager {
  private clusters = new Map<string, Cluster>();

  constructor(
    private readonly metrics: MetricsRegistry,
    private readonly log: Logger,
    private readonly registries: ClusterRegistries = {},
  ) {}

  get(name: string): Cluster | undefined {
    return this.clusters.get(name);
  }

  all(): Cluster[] {
    return [...this.clusters.values()];
  }

  /**
   * Prepares the clusters of a new generation without touching the running
   * ones. Returns the new map and a commit function that installs it and
   * returns the clusters that went away.
   */
  async prepare(configs: readonly ClusterConfig[]): Promise<{ next: Map<string, Cluster>; fresh: Cluster[] }> {
    const next = new Map<string, Cluster>();
    const fresh: Cluster[] = [];
    for (const c of configs) {
      const cur = this.clusters.get(c.name);
      if (cur && cur.config.fingerprint === c.fingerprint) next.set(c.name, cur);
      else {
        const cl = new Cluster(c, this.metrics, this.log.child({ cluster: c.name }), this.registries);
        next.set(c.name, cl);
        fresh.push(cl);
      }
    }
    await Promise.all(fresh.map((c) => c.ready));
    return { next, fresh };
  }

  /** Installs a prepared map; returns the clusters no longer used, for the caller to close when drained. */
  commit(next: Map<string, Cluster>): Cluster[] {
    const gone = [...this.clusters.values()].filter((c) => next.get(c.name) !== c);
    this.clusters = next;
    return gone;
  }

  /** Stops every cluster; resolves when their components (log files, stores) have closed. */
  closeAll(): Promise<void> {
    return Promise.all([...this.clusters.values()].map((c) => c.close())).then(() => undefined);
  }
}
