/**
 * etcd: endpoints stored under a key prefix in etcd v3, one key per endpoint.
 *
 *   <prefix><anything>  =  {"address":"10.0.0.1:8080","weight":2,"metadata":{"zone":"a"}}
 *                       or {"host":"10.0.0.1","port":8080}   or the plain string 10.0.0.1:8080
 *
 * A range read of the prefix gives the list and a revision; a watch from the
 * next revision applies puts and deletes as they happen. Any break in the
 * watch (lost connection, compaction, cancel) drops it and starts over with
 * a fresh read after a backoff, rather than trusting a resumed stream to
 * have replayed everything: a read of one service's keys is cheap, and the
 * list can then never drift from etcd. While etcd is unreachable the last
 * list stays (stale).
 *
 * Client: npm etcd3 (on @grpc/grpc-js). Its own retry, circuit breaker and
 * watch reconnection are turned off in favour of the loop here, which keeps
 * status() honest and makes stop() final.
 */
import { Type, type Static } from '@sinclair/typebox';
import { noop } from 'cockatiel';
import { Etcd3, type IKeyValue, type IWatchResponse, type Watcher } from 'etcd3';
import type { ConfigIssue } from '../../config/validate';
import type { EndpointConfig } from '../../config/types';
import type { Logger } from '../../logger';
import type { DiscoveryFactory, DiscoverySource, DiscoveryStatus } from './source';
import { SourceState, describeError, guarded } from './source-state';
import { endpointFromEntry } from './endpoint-entry';

const EtcdConfig = Type.Object(
  {
    endpoints: Type.Array(Type.String({ pattern: '^https?://[^/@]+/?$', 'x-hint': 'must be an etcd URL such as http://127.0.0.1:2379 (no credentials in it)' }), {
      minItems: 1,
      description: 'etcd client URLs, e.g. [http://10.0.0.1:2379, http://10.0.0.2:2379].',
    }),
    prefix: Type.String({ minLength: 1, description: 'Every key under this prefix is one endpoint, e.g. /services/cache/.' }),
  },
  { additionalProperties: false },
);
type EtcdConfig = Static<typeof EtcdConfig>;

/** No unary call may hang on a peer that stopped answering. */
const REQUEST_TIMEOUT_MS = 10_000;
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5_000;

/** One value -> an endpoint, or why it is not one. Unknown keys in an object are ignored (other tools may add theirs). */
export function endpointFromEtcdValue(value: string): EndpointConfig | string {
  const text = value.trim();
  if (text.startsWith('{') || text.startsWith('"')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      return `invalid JSON: ${(err as Error).message}`;
    }
    return endpointFromEntry(parsed, false);
  }
  return endpointFromEntry(text, false);
}

/** grpc-js messages end with an empty "Resolution note: "; drop it. */
function grpcError(err: unknown): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  return new Error(describeError(e).replace(/\.?\s*Resolution note:\s*$/, ''));
}

class EtcdSource implements DiscoverySource {
  private readonly state: SourceState;
  private client: Etcd3 | null = null;
  private watcher: Watcher | null = null;
  /** key -> endpoint, for the keys whose value is an endpoint. */
  private readonly entries = new Map<string, EndpointConfig>();
  /** key -> why its value is not an endpoint. */
  private readonly rejected = new Map<string, string>();
  private readonly warned = new Set<string>();
  private revision: string | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoffMs = BACKOFF_MIN_MS;
  private stopped = false;
  private syncs = 0;

  constructor(
    private readonly config: EtcdConfig,
    private readonly log: Logger,
  ) {
    this.state = new SourceState('etcd', log);
  }

  start(update: (endpoints: EndpointConfig[]) => void): void {
    this.state.bind(update);
    this.client = new Etcd3({
      hosts: this.config.endpoints,
      faultHandling: { host: () => noop, global: noop },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + REQUEST_TIMEOUT_MS }),
      grpcOptions: {
        // Notice a dead peer under an open watch stream (etcd allows pings every 5 s or slower).
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.initial_reconnect_backoff_ms': BACKOFF_MIN_MS,
        'grpc.max_reconnect_backoff_ms': BACKOFF_MAX_MS,
      },
    });
    void this.sync();
  }

  /** Reads the whole prefix, publishes it, and watches from the next revision. */
  private async sync(): Promise<void> {
    const client = this.client;
    if (this.stopped || !client) return;
    this.syncs++;
    try {
      const res = await client.getAll().prefix(this.config.prefix).exec();
      if (this.stopped || client !== this.client) return;
      this.entries.clear();
      this.rejected.clear();
      for (const kv of res.kvs) this.apply('Put', kv);
      this.revision = res.header.revision;
      this.publish();
      this.watch(client, (BigInt(res.header.revision) + 1n).toString());
    } catch (err) {
      if (this.stopped) return;
      this.state.fail(grpcError(err), `etcd read of ${this.config.prefix}`);
      this.retryLater();
    }
  }

  private watch(client: Etcd3, fromRevision: string): void {
    const w = client.watch().prefix(this.config.prefix).startRevision(fromRevision).watcher();
    this.watcher = w;
    w.on('connected', () => {
      if (w !== this.watcher || this.stopped) return;
      this.state.ok();
      // Only a watch that took holds resets the backoff: a read that works beside a watch that keeps failing must not spin.
      this.backoffMs = BACKOFF_MIN_MS;
    });
    w.on('data', (res: IWatchResponse) => {
      if (w !== this.watcher || this.stopped) return;
      guarded(this.log, 'etcd watch event', () => {
        for (const ev of res.events) this.apply(ev.type, ev.kv);
        this.revision = res.header.revision;
        if (res.events.length) this.publish();
      });
    });
    // 'disconnected': the stream broke; the library would resume it, we start over instead. 'error': etcd
    // cancelled the watch (the revision was compacted away, say); the library has already dropped it.
    const broken = (err: unknown, detach: boolean): void => {
      // Detach even a watcher we no longer use: one left attached makes the library reconnect on its own, even after close().
      if (detach) void w.cancel().catch(() => {});
      if (w !== this.watcher || this.stopped) return;
      this.watcher = null;
      this.state.fail(grpcError(err), `etcd watch of ${this.config.prefix}`);
      this.retryLater();
    };
    w.on('disconnected', (err: unknown) => broken(err, true));
    w.on('error', (err: unknown) => broken(err, false));
  }

  private apply(type: 'Put' | 'Delete', kv: IKeyValue): void {
    const key = kv.key.toString('utf8');
    if (type === 'Delete') {
      this.entries.delete(key);
      this.rejected.delete(key);
      return;
    }
    const ep = endpointFromEtcdValue(kv.value.toString('utf8'));
    if (typeof ep === 'string') {
      this.entries.delete(key);
      // Once per key and reason, however often a resync reads it again.
      if (!this.warned.has(`${key}\0${ep}`)) {
        this.warned.add(`${key}\0${ep}`);
        this.log.warn({ key, reason: ep }, 'ignoring an etcd key whose value is not an endpoint');
      }
      this.rejected.set(key, ep);
    } else {
      this.rejected.delete(key);
      this.entries.set(key, ep);
    }
  }

  private publish(): void {
    // Two keys may name the same address (a re-registration under a new lease): one endpoint, the heavier weight.
    const byAddress = new Map<string, EndpointConfig>();
    for (const ep of this.entries.values()) {
      const seen = byAddress.get(ep.address);
      if (!seen || seen.weight < ep.weight) byAddress.set(ep.address, ep);
    }
    this.state.publish([...byAddress.values()]);
  }

  private retryLater(): void {
    if (this.stopped || this.retryTimer) return;
    // Between half and all of the current step, so many proxies do not come back to etcd in step.
    const delay = Math.round(this.backoffMs / 2 + Math.random() * (this.backoffMs / 2));
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.sync();
    }, delay);
    this.retryTimer.unref();
  }

  status(): DiscoveryStatus {
    return this.state.status({
      endpoints_url: this.config.endpoints,
      prefix: this.config.prefix,
      revision: this.revision,
      watching: this.watcher !== null && this.state.status().state === 'ok',
      keys: this.entries.size + this.rejected.size,
      endpoints: this.state.endpoints.length,
      syncs: this.syncs,
      ...(this.rejected.size ? { rejected: Object.fromEntries(this.rejected) } : {}),
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const w = this.watcher;
    this.watcher = null;
    if (w) {
      // Cancelling a live watch waits for etcd's answer; do not wait long for a peer that may be gone.
      let t: NodeJS.Timeout | undefined;
      await Promise.race([w.cancel().catch(() => {}), new Promise<void>((r) => (t = setTimeout(r, 1000)))]);
      clearTimeout(t);
    }
    try {
      this.client?.close();
    } catch (err) {
      this.log.debug({ error: describeError(err) }, 'closing the etcd client');
    }
    this.client = null;
  }
}

export const etcdDiscovery: DiscoveryFactory<EtcdConfig> = {
  type: 'etcd',
  description: 'Endpoints stored under a key prefix in etcd v3, watched.',
  schema: EtcdConfig,
  check(config): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    config.endpoints.forEach((u, i) => {
      try {
        new URL(u);
      } catch {
        issues.push({ path: `endpoints[${i}]`, message: `'${u}' is not a valid URL` });
      }
    });
    return issues;
  },
  create(config, ctx): DiscoverySource {
    return new EtcdSource(config, ctx.logger);
  },
};
