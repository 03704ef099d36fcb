import type { ProxyError } from './errors';
import type { Cluster } from './routing/cluster';
import type { Endpoint } from './routing/endpoint';
import { turnNow } from './util/turn-clock';
import type { TimerTask, TimerWheel } from './util/timer-wheel';

/**
 * The timer that fails an exchange when its deadline passes (a timeout
 * filter's race, a retry's per-try race), while that race runs. An inner
 * policy that must act at the same instant (a circuit breaker counting an
 * unanswered call as a failure) attaches its task here instead of putting a
 * second entry on the wheel: attached tasks fire, the last attached first,
 * just before the watch fails the exchange.
 */
export interface DeadlineWatch {
  /** The deadline it fires at (performance.now() clock). */
  readonly at: number;
  readonly wheel: TimerWheel;
  /** True once it fired or its call ended: attach nothing any more. */
  readonly settled: boolean;
  attach(task: TimerTask): void;
}

/**
 * Computes request attributes on demand, so a protocol does not pay for
 * attributes no route or filter reads (the Redis key as a string, a Kafka
 * topic name). One object per protocol (or per listener), not per request:
 * it reads what it needs from the exchange (usually a protocol subclass of
 * Exchange that keeps the decoded request).
 */
export interface AttributeSource {
  attribute(ex: Exchange, name: string): string | undefined;
}

/**
 * The protocol-neutral view of one request (for L4, one connection) as it
 * passes through the filter chain. A protocol session fills in what routing
 * needs (attributes such as the Redis key or the Bolt service) and never
 * copies the raw frame into it.
 *
 * Kept light: everything a request may not need (attrs, info, filterState)
 * is made on first use, and a protocol may subclass it to carry its own
 * per-request fields (so policies and terminals need no extra object).
 */
export class Exchange {
  private attrRecord: Record<string, string | undefined> | null = null;
  /** Lazy attributes (see AttributeSource); read through attr(). */
  attributeSource: AttributeSource | null = null;
  /** Chosen by the router. */
  cluster: Cluster | null = null;
  route: string | null = null;
  /** The endpoint that served it (for a request in flight: the one of the current try), when one did. */
  endpoint: Endpoint | null = null;
  /** The cluster `endpoint` belongs to, when a terminal sent elsewhere than `cluster` (read replicas, key routes); null: `cluster`. */
  endpointCluster: Cluster | null = null;
  /** Absolute deadline on the performance.now() clock; 0 means none. */
  deadline = 0;
  /** The race that fails the exchange at `deadline`, while one is running (see DeadlineWatch); null: none. */
  deadlineWatch: DeadlineWatch | null = null;
  /**
   * True when sending the request again cannot change anything the first try
   * did (a read, or nothing was sent yet). Set by the protocol session; retry
   * policies only retry such requests.
   */
  idempotent = false;
  /** Upstream attempts made so far (0 before the first). */
  attempts = 0;
  /** Set when the exchange failed or was answered locally. */
  error: ProxyError | null = null;
  private infoRecord: Record<string, string | number | boolean | undefined> | null = null;
  /** Size of the reply sent to the client, when the protocol counts it (-1: not counted). A field, not an info entry: info would be made per request just for it. */
  replyBytes = -1;
  /** The try (attempts) a timeout was last reported for, so nested deadlines count once per try. */
  private timeoutReported = -1;
  private stateSlots: unknown[] | null = null;
  /** performance.now() when the exchange began (as of the event-loop turn that read the request: see turn-clock.ts). */
  readonly startedAt = turnNow();

  /**
   * Request attributes set eagerly by the protocol (key, command, service, method, path, topic ...).
   * Made on first use. Filters read attributes with attr(), which also sees lazy ones.
   */
  get attrs(): Record<string, string | undefined> {
    return (this.attrRecord ??= Object.create(null) as Record<string, string | undefined>);
  }

  /** An attribute: set in attrs, else computed by the protocol's attributeSource; undefined when the request has none. */
  attr(name: string): string | undefined {
    const r = this.attrRecord;
    if (r !== null) {
      const v = r[name];
      if (v !== undefined) return v;
    }
    return this.attributeSource !== null ? this.attributeSource.attribute(this, name) : undefined;
  }

  /**
   * The current try got no answer before a deadline: counts as an error of
   * its endpoint for outlier detection (once per try, however many nested
   * deadlines fire). Nothing when no endpoint was chosen yet (an L4 connect:
   * that is passive health's business).
   */
  reportTimeout(): void {
    const ep = this.endpoint;
    if (ep === null || this.timeoutReported === this.attempts) return;
    const c = this.endpointCluster ?? this.cluster;
    if (c === null) return;
    this.timeoutReported = this.attempts;
    ep.rqError.inc();
    c.reportResult(ep, false);
  }

  /**
   * Protocol counters shown in the access log (bytes, status ...). Made on first use: most requests never need it.
   * A plain object, not a null-prototype one: its keys are fixed names chosen by protocol code, and V8 keeps a
   * plain object's few properties in fast mode (a null-prototype object starts as a slow dictionary).
   */
  get info(): Record<string, string | number | boolean | undefined> {
    return (this.infoRecord ??= {});
  }

  /** Per-filter state, indexed by the filter's slot in the chain. Made on first use. */
  get filterState(): unknown[] {
    return (this.stateSlots ??= []);
  }

  /** Wall-clock start in ms since the epoch (derived, so no second clock read per request). */
  get startedWall(): number {
    return Math.round(performance.timeOrigin + this.startedAt);
  }

  constructor(
    readonly listener: string,
    readonly protocol: string,
    readonly clientAddress: string,
    readonly clientPort: number,
    /** A short request name for logs (e.g. the Redis command); '' for L4. */
    readonly operation: string = '',
  ) {}
}
