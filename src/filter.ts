/**
 * The filter contract and the chain runner. No concrete filter lives here:
 * filters register a factory keyed by their config `type`.
 *
 * Two kinds of filter:
 * - a phase filter sees each request before it goes upstream. onRequest
 *   returns undefined to continue, or a LocalReply to answer the client
 *   without calling upstream (a rate limit, an injected fault, no route). It
 *   returns a promise only when it has to wait; the runner awaits nothing
 *   otherwise, so a synchronous chain allocates nothing.
 * - an around-policy wraps the upstream call (retry, timeout, circuit breaker,
 *   mirror). The wrappers are composed once per chain, at build time.
 * Both may have onComplete, called once when the exchange ends (access log, stats).
 */
import type { TSchema } from '@sinclair/typebox';
import type { Exchange } from './exchange';
import type { ProxyError } from './errors';
import type { ConfigIssue } from './config/validate';
import type { ListenerConfig } from './config/types';
import type { RawListener } from './config/schema';
import type { Cluster } from './routing/cluster';
import type { MetricsRegistry } from './metrics';
import type { Logger } from './logger';

/** Answer the client locally with the protocol's rendering of this error. */
export interface LocalReply {
  error: ProxyError;
}

export type Verdict = LocalReply | undefined;

/** The upstream call of one exchange. R is the protocol's reply type. */
export type Invoke<R> = (ex: Exchange) => Promise<R>;

export interface PhaseFilter {
  readonly kind: 'phase';
  readonly name: string;
  onRequest?(ex: Exchange): Verdict | Promise<Verdict>;
  onComplete?(ex: Exchange): void;
}

export interface AroundPolicy {
  readonly kind: 'around';
  readonly name: string;
  wrap<R>(next: Invoke<R>): Invoke<R>;
  onComplete?(ex: Exchange): void;
}

export type Filter = PhaseFilter | AroundPolicy;

export interface FilterBuildContext {
  listener: ListenerConfig;
  /** The clusters of this config generation. */
  clusters: ReadonlyMap<string, Cluster>;
  metrics: MetricsRegistry;
  logger: Logger;
  /** This filter's index in the chain; use it for ex.filterState. */
  slot: number;
  /** The instance name from config. */
  name: string;
}

export interface FilterFactory<C = Record<string, unknown>> {
  readonly type: string;
  readonly description: string;
  /** JSON Schema of the filter's own config keys (everything but `type` and `name`). */
  readonly schema: TSchema;
  /** Semantic checks the schema cannot express. Paths are relative to the filter entry. */
  check?(config: C, ctx: { listener: RawListener; clusters: ReadonlySet<string> }): ConfigIssue[];
  /** Built once per config generation and listener. */
  create(config: C, ctx: FilterBuildContext): Filter;
}

export class FilterRegistry {
  private readonly factories = new Map<string, FilterFactory<any>>();

  register(f: FilterFactory<any>): this {
    if (this.factories.has(f.type)) throw new Error(`filter type '${f.type}' registered twice`);
    this.factories.set(f.type, f);
    return this;
  }

  get(type: string): FilterFactory<any> | undefined {
    return this.factories.get(type);
  }

  /** As the config validator wants it. */
  specs(): Map<string, FilterFactory<any>> {
    return new Map(this.factories);
  }

  types(): string[] {
    return [...this.factories.keys()];
  }
}

function isThenable<T>(v: unknown): v is PromiseLike<T> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * A compiled chain: the phase filters in order, the around-policies folded
 * around a terminal call, the completion hooks. Built once per generation.
 */
export class FilterChain {
  readonly filters: readonly Filter[];
  private readonly phases: readonly PhaseFilter[];
  private readonly arounds: readonly AroundPolicy[];
  private readonly completes: readonly Filter[];
  /** True when no around-policy exists: a session may call its terminal directly. */
  readonly direct: boolean;

  constructor(filters: Filter[]) {
    this.filters = filters;
    this.phases = filters.filter((f): f is PhaseFilter => f.kind === 'phase' && typeof f.onRequest === 'function');
    this.arounds = filters.filter((f): f is AroundPolicy => f.kind === 'around');
    this.completes = filters.filter((f) => typeof f.onComplete === 'function');
    this.direct = this.arounds.length === 0;
  }

  /**
   * Runs the phase filters in order. Returns synchronously unless a filter
   * returned a promise; from that filter on, the rest run after it settles.
   */
  runRequest(ex: Exchange): Verdict | Promise<Verdict> {
    return this.runFrom(ex, 0);
  }

  private runFrom(ex: Exchange, start: number): Verdict | Promise<Verdict> {
    const phases = this.phases;
    for (let i = start; i < phases.length; i++) {
      const r = phases[i]!.onRequest!(ex);
      if (r === undefined) continue;
      if (isThenable<Verdict>(r)) {
        return Promise.resolve(r).then((v) => (v === undefined ? this.runFrom(ex, i + 1) : v));
      }
      return r;
    }
    return undefined;
  }

  /** Folds the around-policies (first in config = outermost) around the terminal call. */
  compose<R>(terminal: Invoke<R>): Invoke<R> {
    let call = terminal;
    for (let i = this.arounds.length - 1; i >= 0; i--) call = this.arounds[i]!.wrap(call);
    return call;
  }

  /** Called exactly once per exchange, whatever its outcome. A throwing hook never breaks the others. */
  complete(ex: Exchange): void {
    const c = this.completes;
    for (let i = 0; i < c.length; i++) {
      try {
        c[i]!.onComplete!(ex);
      } catch {
        // An observer must not break the data path.
      }
    }
  }
}
