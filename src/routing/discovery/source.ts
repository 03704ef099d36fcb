/**
 * The contract every discovery source implements (DNS SRV, watched file,
 * ZooKeeper, etcd ...). A source runs in the background and reports the full
 * endpoint list whenever it changes; the cluster turns each report into a new
 * immutable snapshot, so requests never wait on discovery. When the registry
 * is unreachable the source reports nothing new (the cluster keeps the last
 * known endpoints) and says so in status().
 */
import type { TSchema } from '@sinclair/typebox';
import type { EndpointConfig } from '../../config/types';
import type { ConfigIssue } from '../../config/validate';
import type { Logger } from '../../logger';

export interface DiscoveryStatus {
  type: string;
  /** ok: the last look at the registry worked; stale: it failed, the last known endpoints stay in use; starting: no answer yet. */
  state: 'starting' | 'ok' | 'stale';
  /** ISO time of the last successful update, or null. */
  last_update: string | null;
  /** The last error, or null. */
  error: string | null;
  /** Source-specific details (path watched, servers, revision ...). */
  detail?: Record<string, unknown>;
}

export interface DiscoverySource {
  /** Starts watching. `update` receives the complete endpoint list each time it changes (possibly empty). */
  start(update: (endpoints: EndpointConfig[]) => void): void;
  status(): DiscoveryStatus;
  /** Stops watching and releases connections and timers. */
  stop(): Promise<void> | void;
}

export interface DiscoveryBuildContext {
  cluster: string;
  logger: Logger;
}

export interface DiscoveryFactory<C = Record<string, unknown>> {
  readonly type: string;
  readonly description: string;
  /** JSON Schema of the source's own keys (everything in `discovery` but `type`). */
  readonly schema: TSchema;
  check?(config: C): ConfigIssue[];
  create(config: C, ctx: DiscoveryBuildContext): DiscoverySource;
}

export class DiscoveryRegistry {
  private readonly factories = new Map<string, DiscoveryFactory<any>>();

  register(f: DiscoveryFactory<any>): this {
    if (this.factories.has(f.type)) throw new Error(`discovery type '${f.type}' registered twice`);
    this.factories.set(f.type, f);
    return this;
  }

  get(type: string): DiscoveryFactory<any> | undefined {
    return this.factories.get(type);
  }

  specs(): Map<string, DiscoveryFactory<any>> {
    return new Map(this.factories);
  }
}
