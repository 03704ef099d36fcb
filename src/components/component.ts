/**
 * Components: upstreams that live inside Portway instead of behind a socket,
 * chosen per cluster by `component: {type, ...}` in config. Each has a
 * capability; a protocol session serves a request with the component when the
 * routed cluster has one of the capability it speaks (a Redis listener uses a
 * 'redis' component, the Kafka listener a 'log' component).
 */
import type { TSchema } from '@sinclair/typebox';
import type { ConfigIssue } from '../config/validate';
import type { Logger } from '../logger';
import type { MetricsRegistry } from '../metrics';

export type Capability = 'redis' | 'log';

export interface ComponentHealth {
  ok: boolean;
  detail?: Record<string, unknown>;
}

export interface Component {
  readonly type: string;
  readonly capability: Capability;
  health(): ComponentHealth;
  /** Releases timers and memory; the component is not used afterwards. */
  close(): Promise<void> | void;
}

export interface ComponentBuildContext {
  cluster: string;
  logger: Logger;
  metrics: MetricsRegistry;
}

export interface ComponentFactory<C = Record<string, unknown>, K extends Component = Component> {
  readonly type: string;
  readonly capability: Capability;
  readonly description: string;
  /** JSON Schema of the component's own keys (everything in `component` but `type`). */
  readonly schema: TSchema;
  check?(config: C): ConfigIssue[];
  create(config: C, ctx: ComponentBuildContext): K;
}

export class ComponentRegistry {
  private readonly factories = new Map<string, ComponentFactory<any, any>>();

  register(f: ComponentFactory<any, any>): this {
    if (this.factories.has(f.type)) throw new Error(`component type '${f.type}' registered twice`);
    this.factories.set(f.type, f);
    return this;
  }

  get(type: string): ComponentFactory<any, any> | undefined {
    return this.factories.get(type);
  }

  specs(): Map<string, ComponentFactory<any, any>> {
    return new Map(this.factories);
  }
}
