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
 *   mirror). The wrappers are composed once per chain, at build time. A
 *   policy has two forms: `wrap` (promises, the simple one) and `intercept`
 *   (callbacks: a Dispatch and a ResultHandler, undici's dispatch/handler
 *   shape). The chain prefers `intercept`, so a request through policies that
 *   need not wait costs no promise and no closure; the built-in policies have
 *   both. A protocol asks for the form it likes: compose() (promise) or
 *   dispatcher() (callback); either works with either kind of policy.
 * Both may have onComplete, called once when the exchange ends (access log, stats),
 * and close, called once when the filter's config generation is retired.
 *
 * The protocol adapter (what a protocol module does for the chain):
 * - attributes: the names its requests expose to routes and filters
 *   (ProtocolModule.attributes), set on the Exchange either eagerly
 *   (ex.attrs[name] = value) or lazily through an AttributeSource
 *   (ex.attributeSource, computed only when a filter asks ex.attr(name)).
 *   Conventions: redis `command`, `key` (first key); kafka `topic`,
 *   `client_id`, `api`; bolt `service`, `method`; http `path`, `method`,
 *   `host`; tcp `destination`. rate_limit keys on them with
 *   `key: attribute:<name>`, routes and `match` blocks test them.
 * - rejections: a LocalReply or a failed call carries a ProxyError. The
 *   protocol maps it to its wire error in exactly one function: RateLimited
 *   (with retryAfterMs: RESP `-ERR rate limit exceeded, retry in N ms`,
 *   Kafka THROTTLING_QUOTA_EXCEEDED with throttle_time_ms, Bolt
 *   SERVER_THREADPOOL_BUSY, HTTP 429 + Retry-After), CircuitOpen / Overflow
 *   (RESP -ERR, Kafka a retriable error, Bolt server busy, HTTP 503 +
 *   Retry-After when retryAfterMs is set), Timeout (RESP -ERR, Kafka
 *   REQUEST_TIMED_OUT, Bolt TIMEOUT, HTTP 504), NoRoute (HTTP 404 / 502 ...).
 *   rejectionInfo() gives the parts a mapper usually needs.
 * - idempotency: set ex.idempotent for requests safe to send twice (reads);
 *   retry re-sends only those after a reset or a timeout.
 * - the upstream call: build the terminal (Invoke or Dispatch) once per
 *   generation and compose it once; a terminal sets ex.endpoint (and
 *   ex.endpointCluster when it differs from ex.cluster) for each try, so a
 *   timeout counts against that endpoint's outlier detection.
 */
import type { TSchema } from '@sinclair/typebox';
import type { Exchange } from './exchange';
import { ErrorCode, ProxyError, toProxyError } from './errors';
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

/**
 * Receives the outcome of one upstream call in callback form. Exactly one of
 * the two is called, once (possibly synchronously, inside the dispatch).
 * Usually a per-request object the caller has anyway (no closure).
 */
export interface ResultHandler<R> {
  onResult(ex: Exchange, value: R): void;
  onFailure(ex: Exchange, err: ProxyError): void;
}

/** The upstream call of one exchange in callback form. Never throws: failures go to h.onFailure. */
export type Dispatch<R> = (ex: Exchange, h: ResultHandler<R>) => void;

export interface PhaseFilter {
  readonly kind: 'phase';
  readonly name: string;
  onRequest?(ex: Exchange): Verdict | Promise<Verdict>;
  onComplete?(ex: Exchange): void;
  /** onComplete does nothing for an exchange that ended without an error: the chain skips it then. */
  readonly completesOnErrorOnly?: boolean;
  /**
   * onRequest always does exactly this and nothing else: sets ex.route and
   * ex.cluster to these and continues (a router with one unconditional
   * route). When it is the last phase filter the chain applies it without
   * calling it.
   */
  readonly constantRoute?: { readonly route: string; readonly cluster: Cluster };
  /** The config generation this filter was built for is retired: release timers, connections, buckets. Called once. */
  close?(): void;
}

export interface AroundPolicy {
  readonly kind: 'around';
  readonly name: string;
  /** Promise form. */
  wrap<R>(next: Invoke<R>): Invoke<R>;
  /** Callback form; when present the chain uses it instead of wrap. */
  intercept?<R>(next: Dispatch<R>): Dispatch<R>;
  onComplete?(ex: Exchange): void;
  /** onComplete does nothing for an exchange that ended without an error: the chain skips it then. */
  readonly completesOnErrorOnly?: boolean;
  /** The config generation this filter was built for is retired. Called once. */
  close?(): void;
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

/** A promise-form call seen as a callback-form one. */
export function dispatchOf<R>(invoke: Invoke<R>): Dispatch<R> {
  return (ex, h) => {
    let p: Promise<R>;
    try {
      p = invoke(ex);
    } catch (e) {
      h.onFailure(ex, toProxyError(e));
      return;
    }
    p.then(
      (v) => h.onResult(ex, v),
      (e) => h.onFailure(ex, toProxyError(e)),
    );
  };
}

/** A callback-form call seen as a promise-form one. */
export function invokeOf<R>(dispatch: Dispatch<R>): Invoke<R> {
  return (ex) =>
    new Promise<R>((resolve, reject) => {
      dispatch(ex, { onResult: (_e, v) => resolve(v), onFailure: (_e, err) => reject(err) });
    });
}

/**
 * Makes an around-policy from its callback form; wrap is derived (for
 * callers that compose promises). Use it for new policies.
 */
export function aroundPolicy(
  name: string,
  intercept: <R>(next: Dispatch<R>) => Dispatch<R>,
  hooks: { onComplete?(ex: Exchange): void; close?(): void } = {},
): AroundPolicy {
  return {
    kind: 'around',
    name,
    intercept,
    wrap: <R>(next: Invoke<R>): Invoke<R> => invokeOf(intercept(dispatchOf(next))),
    ...hooks,
  };
}

/** What a protocol's error mapper usually needs from a rejection. */
export interface RejectionInfo {
  /** rate limited: the client should slow down (HTTP 429, Kafka THROTTLING_QUOTA_EXCEEDED, Bolt server busy). */
  throttled: boolean;
  /** refused to protect an upstream (circuit open, overflow): HTTP 503, Bolt server busy. */
  overloaded: boolean;
  /** the deadline passed: HTTP 504, Kafka REQUEST_TIMED_OUT, Bolt TIMEOUT. */
  timedOut: boolean;
  /** when the client may try again, in whole ms (Retry-After rounds up to seconds, throttle_time_ms as is); undefined: no hint. */
  retryAfterMs: number | undefined;
}

export function rejectionInfo(err: ProxyError): RejectionInfo {
  return {
    throttled: err.code === ErrorCode.RateLimited,
    overloaded: err.code === ErrorCode.CircuitOpen || err.code === ErrorCode.Overflow,
    timedOut: err.code === ErrorCode.Timeout,
    retryAfterMs: err.retryAfterMs !== undefined ? Math.max(0, Math.ceil(err.retryAfterMs)) : undefined,
  };
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
  /** The completion hooks that also run for an exchange without an error. */
  private readonly successCompletes: readonly Filter[];
  /** The last phase filter's constant route, applied without calling it (see PhaseFilter.constantRoute); null: none. */
  private readonly tailRoute: { readonly route: string; readonly cluster: Cluster } | null;
  /** True when no around-policy exists: a session may call its terminal directly. */
  readonly direct: boolean;

  constructor(filters: Filter[]) {
    this.filters = filters;
    const phases = filters.filter((f): f is PhaseFilter => f.kind === 'phase' && typeof f.onRequest === 'function');
    const last = phases[phases.length - 1];
    this.tailRoute = last?.constantRoute ?? null;
    if (this.tailRoute !== null) phases.pop();
    this.phases = phases;
    this.arounds = filters.filter((f): f is AroundPolicy => f.kind === 'around');
    this.completes = filters.filter((f) => typeof f.onComplete === 'function');
    this.successCompletes = this.completes.filter((f) => f.completesOnErrorOnly !== true);
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
    const t = this.tailRoute;
    if (t !== null) {
      ex.route = t.route;
      ex.cluster = t.cluster;
    }
    return undefined;
  }

  /** Folds the around-policies (first in config = outermost) around the terminal call; promise form. */
  compose<R>(terminal: Invoke<R>): Invoke<R> {
    if (this.arounds.length === 0) return terminal;
    const f = this.fold<R>({ invoke: terminal, dispatch: null });
    return f.invoke ?? invokeOf(f.dispatch!);
  }

  /**
   * The same fold in callback form: policies with `intercept` cost no
   * promise. Cached per terminal (a protocol passes one function per
   * generation), so a session may ask for it again without folding again.
   */
  dispatcher<R>(terminal: Dispatch<R>): Dispatch<R> {
    if (this.arounds.length === 0) return terminal;
    const cached = this.dispatchers.get(terminal);
    if (cached !== undefined) return cached as Dispatch<R>;
    const f = this.fold<R>({ invoke: null, dispatch: terminal });
    const d = f.dispatch ?? dispatchOf(f.invoke!);
    this.dispatchers.set(terminal, d);
    return d;
  }

  private readonly dispatchers = new WeakMap<Dispatch<any>, Dispatch<any>>();

  /** Wraps innermost first, converting between the two forms only where a policy has just the other one. */
  private fold<R>(call: { invoke: Invoke<R> | null; dispatch: Dispatch<R> | null }): { invoke: Invoke<R> | null; dispatch: Dispatch<R> | null } {
    let { invoke, dispatch } = call;
    for (let i = this.arounds.length - 1; i >= 0; i--) {
      const p = this.arounds[i]!;
      if (p.intercept !== undefined) {
        dispatch = p.intercept(dispatch ?? dispatchOf(invoke!));
        invoke = null;
      } else {
        invoke = p.wrap(invoke ?? invokeOf(dispatch!));
        dispatch = null;
      }
    }
    return { invoke, dispatch };
  }

  /**
   * The generation this chain belongs to is retired and its last exchange
   * ended: every filter's close() runs once (a throwing one never stops the others).
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.filters) {
      try {
        f.close?.();
      } catch {
        // Releasing one filter's resources must not keep the others'.
      }
    }
  }

  private closed = false;

  /**
   * Called exactly once per exchange, whatever its outcome: every hook in
   * order (one marked completesOnErrorOnly only when ex.error is set). A
   * throwing hook never breaks the others.
   */
  complete(ex: Exchange): void {
    const c = ex.error === null ? this.successCompletes : this.completes;
    for (let i = 0; i < c.length; i++) {
      try {
        c[i]!.onComplete!(ex);
      } catch {
        // An observer must not break the data path.
      }
    }
  }
}
