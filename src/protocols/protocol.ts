import type { Socket } from 'node:net';
import type { ListenerConfig } from '../config/types';
import type { ProtocolSpec } from '../config/validate';
import type { FilterChain } from '../filter';
import type { Cluster } from '../routing/cluster';
import type { MetricsRegistry } from '../metrics';
import type { Logger } from '../logger';
import type { ListenerStats } from '../listener';

export interface ProtocolBuildContext {
  listener: ListenerConfig;
  chain: FilterChain;
  /** The clusters of this config generation. */
  clusters: ReadonlyMap<string, Cluster>;
  metrics: MetricsRegistry;
  logger: Logger;
  stats: ListenerStats;
}

/**
 * Serves the accepted connections of one listener for one config generation.
 * A reload builds a new handler; connections keep the handler they started with.
 */
export interface ConnectionHandler {
  /** Serves an accepted connection. May return a replacement Socket for the same connection, which the listener then tracks. */
  handle(socket: Socket): Socket | void;
  /** The generation was replaced: stop background work. Open connections finish on their own. */
  retire?(): void;
}

/** A wire protocol: its config options, the attributes routes can match, and its session factory. */
export interface ProtocolModule extends ProtocolSpec {
  readonly description: string;
  create(ctx: ProtocolBuildContext): ConnectionHandler;
}

export class ProtocolRegistry {
  private readonly modules = new Map<string, ProtocolModule>();

  register(m: ProtocolModule): this {
    if (this.modules.has(m.name)) throw new Error(`protocol '${m.name}' registered twice`);
    this.modules.set(m.name, m);
    return this;
  }

  get(name: string): ProtocolModule | undefined {
    return this.modules.get(name);
  }

  specs(): Map<string, ProtocolModule> {
    return new Map(this.modules);
  }
}
