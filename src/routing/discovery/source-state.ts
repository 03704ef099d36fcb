/**
 * The bookkeeping every discovery source shares: the status shown in
 * GET /clusters, change detection (the cluster hears about a list only when
 * it differs from the last one), and logging that does not repeat itself
 * while a registry stays down.
 */
import type { EndpointConfig } from '../../config/types';
import type { Logger } from '../../logger';
import type { DiscoveryStatus } from './source';

export class SourceState {
  private state: DiscoveryStatus['state'] = 'starting';
  private lastUpdate: string | null = null;
  private error: string | null = null;
  /** Canonical JSON of the last list handed to the cluster; null before the first. */
  private lastKey: string | null = null;
  private current: readonly EndpointConfig[] = [];
  private lastWarned: string | null = null;
  private update: ((endpoints: EndpointConfig[]) => void) | null = null;

  constructor(
    private readonly type: string,
    private readonly log: Logger,
  ) {}

  bind(update: (endpoints: EndpointConfig[]) => void): void {
    this.update = update;
  }

  get endpoints(): readonly EndpointConfig[] {
    return this.current;
  }

  get hasList(): boolean {
    return this.lastKey !== null;
  }

  /**
   * A successful look at the registry. Hands the list to the cluster when it
   * differs from the last one (always the first time, even when empty, so the
   * cluster stops waiting).
   */
  publish(endpoints: readonly EndpointConfig[]): void {
    const sorted = canonical(endpoints);
    const key = JSON.stringify(sorted);
    this.ok();
    if (key === this.lastKey) return;
    const before = new Map(this.current.map((e) => [e.address, JSON.stringify(e)]));
    const after = new Set(sorted.map((e) => e.address));
    const added = sorted.filter((e) => !before.has(e.address)).map((e) => e.address);
    const removed = [...before.keys()].filter((a) => !after.has(a));
    // Same address, other weight or metadata.
    const changed = sorted.filter((e) => before.has(e.address) && before.get(e.address) !== JSON.stringify(e)).map((e) => e.address);
    this.log.info({ endpoints: sorted.length, added, removed, changed }, this.lastKey === null ? 'discovered endpoints' : 'discovered endpoints changed');
    this.lastKey = key;
    this.current = sorted;
    const update = this.update;
    if (update === null) return;
    try {
      update(sorted.map((e) => ({ ...e, metadata: e.metadata ? { ...e.metadata } : undefined })));
    } catch (err) {
      // The cluster's callback should not throw; if it does, the source must keep running.
      this.log.warn({ error: describeError(err) }, 'cluster rejected a discovery update');
    }
  }

  /** The registry answered (for example a watch resumed) with nothing new to report. */
  ok(): void {
    if (this.state === 'stale') this.log.info({ previous_error: this.error }, 'discovery source reachable again');
    this.state = 'ok';
    this.error = null;
    this.lastWarned = null;
    this.lastUpdate = new Date().toISOString();
  }

  /**
   * A failed look at the registry: the last list stays in use. A source that
   * never had an answer stays 'starting' (with the error); one that had goes
   * 'stale'. The same message is logged at warn once, then at debug.
   */
  fail(err: unknown, context: string): void {
    const message = `${context}: ${describeError(err)}`;
    this.error = message;
    if (this.state === 'ok') this.state = 'stale';
    if (message !== this.lastWarned) {
      this.lastWarned = message;
      this.log.warn({ error: message, endpoints_kept: this.current.length }, 'discovery failed; keeping the last known endpoints');
    } else {
      this.log.debug({ error: message }, 'discovery still failing');
    }
  }

  status(detail?: Record<string, unknown>): DiscoveryStatus {
    return { type: this.type, state: this.state, last_update: this.lastUpdate, error: this.error, ...(detail ? { detail } : {}) };
  }
}

/** Sorted by address, metadata keys sorted, so equal lists give equal JSON. */
function canonical(endpoints: readonly EndpointConfig[]): EndpointConfig[] {
  return [...endpoints]
    .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
    .map((e) => {
      const out: EndpointConfig = { address: e.address, host: e.host, port: e.port, weight: e.weight };
      if (e.metadata && Object.keys(e.metadata).length > 0) {
        out.metadata = Object.fromEntries(Object.keys(e.metadata).sort().map((k) => [k, e.metadata![k]!]));
      }
      return out;
    });
}

/** One line, with the error code when there is one (ECONNREFUSED, NO_NODE, grpc status ...). */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const msg = err.message.split('\n')[0] ?? '';
    if (typeof code === 'string' && code && !msg.includes(code)) return `${code}: ${msg}`;
    return msg || err.name;
  }
  if (err && typeof err === 'object' && typeof (err as { toString?: unknown }).toString === 'function') return String(err);
  return String(err);
}

/** Runs a callback from a library event so that nothing it throws escapes into the library (or the process). */
export function guarded(log: Logger, what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    log.warn({ error: describeError(err) }, `discovery: unexpected error in ${what}`);
  }
}
