/**
 * The Redis listener with what some configs add: Redis Cluster upstreams
 * (a slot map per cluster named in options.redis_cluster) and key prefix
 * rewriting (prefix_routes[].strip / add). Sessions read these fields once,
 * at connect, so a listener without them pays nothing per request.
 */
import type { Cluster } from '../../routing/cluster';
import type { ProtocolBuildContext } from '../protocol';
import { RedisListener, type RedisOptions } from './listener';
import { ClusterTopology, type RedisClusterOptions } from './cluster-topology';
import type { KeyRewriter } from './prefix';

export interface RedisExtraOptions {
  redisCluster: RedisClusterOptions[];
  /** Built by index.ts when a prefix route strips or adds; null otherwise. */
  keyRewriter: ((clusters: ReadonlyMap<string, Cluster>) => KeyRewriter) | null;
}

export class RedisProxyListener extends RedisListener {
  /** Slot maps by cluster, for clusters served by a Redis Cluster; null when there is none. */
  readonly topologies: Map<Cluster, ClusterTopology> | null;
  readonly keyRewriter: KeyRewriter | null;

  constructor(ctx: ProtocolBuildContext, options: RedisOptions, extra: RedisExtraOptions) {
    super(ctx, options);
    this.keyRewriter = extra.keyRewriter !== null ? extra.keyRewriter(ctx.clusters) : null;
    if (extra.redisCluster.length === 0) {
      this.topologies = null;
      return;
    }
    this.topologies = new Map();
    for (const rc of extra.redisCluster) {
      const cluster = ctx.clusters.get(rc.cluster);
      if (cluster === undefined) throw new Error(`listener '${this.name}': unknown cluster '${rc.cluster}'`);
      if (cluster.sharded || cluster.component !== null) {
        throw new Error(`listener '${this.name}': options.redis_cluster: cluster '${cluster.name}' must list seed nodes (endpoints or discovery), without sharding or component`);
      }
      const topo = new ClusterTopology(cluster, rc, this.links(cluster), ctx.metrics, this.log.child({ redis_cluster: cluster.name }), this.name);
      this.topologies.set(cluster, topo);
      void topo.start();
    }
  }

  override retire(): void {
    if (this.topologies !== null) for (const t of this.topologies.values()) t.close();
    super.retire();
  }
}
