import type { ProxyError } from './errors';
import type { Cluster } from './routing/cluster';
import type { Endpoint } from './routing/endpoint';

/**
 * The protocol-neutral view of one request (for L4, one connection) as it
 * passes through the filter chain. A protocol session fills in what routing
 * needs (attributes such as the Redis key or the Bolt service) and never
 * copies the raw frame into it.
 */
export class Exchange {
  /** Request attributes filters match on (key, command, service, method, path, topic ...). */
  readonly attrs: Record<string, string | undefined> = Object.create(null);
  /** Chosen by the router. */
  cluster: Cluster | null = null;
  route: string | null = null;
  /** The endpoint that served it, when one did. */
  endpoint: Endpoint | null = null;
  /** Absolute deadline on the performance.now() clock; 0 means none. */
  deadline = 0;
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
  private stateSlots: unknown[] | null = null;
  /** performance.now() when the exchange began. */
  readonly startedAt = performance.now();

  /** Protocol counters shown in the access log (bytes, status ...). Made on first use: most requests never need it. */
  get info(): Record<string, string | number | boolean | undefined> {
    return (this.infoRecord ??= Object.create(null) as Record<string, string | number | boolean | undefined>);
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
