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
  /** Protocol counters shown in the access log (bytes, status ...). */
  readonly info: Record<string, string | number | boolean | undefined> = Object.create(null);
  /** Per-filter state, indexed by the filter's slot in the chain. */
  readonly filterState: unknown[] = [];
  readonly startedAt = performance.now();
  readonly startedWall = Date.now();

  constructor(
    readonly listener: string,
    readonly protocol: string,
    readonly clientAddress: string,
    readonly clientPort: number,
    /** A short request name for logs (e.g. the Redis command); '' for L4. */
    readonly operation: string = '',
  ) {}
}
