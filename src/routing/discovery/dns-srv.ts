/**
 * dns_srv: endpoints from a DNS SRV record set (RFC 2782), looked up again
 * every `refresh`.
 *
 *   _service._proto.name. TTL IN SRV priority weight port target.
 *
 * Each record becomes an endpoint target:port; the target stays a host name
 * (the cluster resolves it to A/AAAA and refreshes that itself). The cluster
 * has no notion of priority, so by default only the records of the lowest
 * priority value are used, as RFC 2782 asks clients to do while those are up.
 * An authoritative "no such name" / "no SRV records" is an empty list; any
 * other failure (timeout, SERVFAIL, refused) keeps the last list.
 */
import { Resolver } from 'node:dns/promises';
import type { SrvRecord } from 'node:dns';
import { Type, type Static } from '@sinclair/typebox';
import { Duration } from '../../config/schema';
import type { ConfigIssue } from '../../config/validate';
import { parseDuration } from '../../util/duration';
import type { DiscoveryFactory, DiscoverySource, DiscoveryStatus } from './source';
import type { EndpointConfig } from '../../config/types';
import { SourceState } from './source-state';
import type { Logger } from '../../logger';
import { clampWeight, makeEndpoint } from './endpoint-entry';

const DnsSrvConfig = Type.Object(
  {
    name: Type.String({ minLength: 1, description: 'The SRV name to look up, e.g. _redis._tcp.cache.example.com.' }),
    refresh: Type.Optional(Duration('How often the SRV records are looked up again.', '30s')),
    resolver: Type.Optional(
      Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], {
        description: 'DNS server(s) to ask, as host:port (or a list of them), instead of the system resolvers.',
      }),
    ),
    timeout: Type.Optional(Duration('How long one query waits for an answer before it is tried again (twice per server).', '5s')),
    priorities: Type.Optional(
      Type.Union([Type.Literal('lowest'), Type.Literal('all')], {
        description: 'lowest: use only the records with the lowest priority value (RFC 2782); all: use every record.',
        default: 'lowest',
      }),
    ),
  },
  { additionalProperties: false },
);
type DnsSrvConfig = Static<typeof DnsSrvConfig>;

const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA']);

/** Records -> endpoints: one per target:port (the heaviest weight wins), SRV weight 0 counts as 1. */
export function srvToEndpoints(records: readonly SrvRecord[], priorities: 'lowest' | 'all'): EndpointConfig[] {
  let use = records;
  if (priorities === 'lowest' && records.length > 0) {
    const min = Math.min(...records.map((r) => r.priority));
    use = records.filter((r) => r.priority === min);
  }
  const byAddress = new Map<string, EndpointConfig>();
  for (const r of use) {
    // A target written as an absolute name may come back with its trailing dot.
    const host = r.name.endsWith('.') ? r.name.slice(0, -1) : r.name;
    if (host === '' || r.port === 0) continue; // "." means "service not available here" (RFC 2782)
    const ep = makeEndpoint(host, r.port, clampWeight(r.weight), { priority: String(r.priority), srv_weight: String(r.weight) });
    const seen = byAddress.get(ep.address);
    if (!seen || seen.weight < ep.weight) byAddress.set(ep.address, ep);
  }
  return [...byAddress.values()];
}

class DnsSrvSource implements DiscoverySource {
  private readonly state: SourceState;
  private readonly resolver: Resolver;
  private readonly refreshMs: number;
  private readonly servers: string[];
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private records = 0;

  constructor(
    private readonly config: DnsSrvConfig,
    log: Logger,
  ) {
    this.state = new SourceState('dns_srv', log);
    this.refreshMs = parseDuration(config.refresh ?? '30s');
    this.resolver = new Resolver({ timeout: parseDuration(config.timeout ?? '5s'), tries: 2 });
    this.servers = config.resolver === undefined ? [] : Array.isArray(config.resolver) ? config.resolver : [config.resolver];
    if (this.servers.length) this.resolver.setServers(this.servers);
  }

  start(update: (endpoints: EndpointConfig[]) => void): void {
    this.state.bind(update);
    void this.lookup();
  }

  private async lookup(): Promise<void> {
    try {
      const records = await this.resolver.resolveSrv(this.config.name);
      if (this.stopped) return;
      this.records = records.length;
      this.state.publish(srvToEndpoints(records, this.config.priorities ?? 'lowest'));
    } catch (err) {
      if (this.stopped) return;
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (NO_RECORDS.has(code)) {
        this.records = 0;
        this.state.publish([]);
      } else {
        this.state.fail(err, `SRV lookup of ${this.config.name}`);
      }
    } finally {
      if (!this.stopped) {
        this.timer = setTimeout(() => {
          this.timer = null;
          void this.lookup().catch(() => {});
        }, this.refreshMs);
        this.timer.unref();
      }
    }
  }

  status(): DiscoveryStatus {
    return this.state.status({
      name: this.config.name,
      resolver: this.servers.length ? this.servers : 'system',
      refresh_ms: this.refreshMs,
      records: this.records,
      endpoints: this.state.endpoints.length,
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // Ends a query in flight now instead of after its timeout.
    this.resolver.cancel();
  }
}

export const dnsSrvDiscovery: DiscoveryFactory<DnsSrvConfig> = {
  type: 'dns_srv',
  description: 'Endpoints from a DNS SRV record set, looked up again every refresh.',
  schema: DnsSrvConfig,
  check(config): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    if (parseDuration(config.refresh ?? '30s') < 100) issues.push({ path: 'refresh', message: 'must be at least 100ms' });
    if (parseDuration(config.timeout ?? '5s') < 1) issues.push({ path: 'timeout', message: 'must be more than 0' });
    const servers = config.resolver === undefined ? [] : Array.isArray(config.resolver) ? config.resolver : [config.resolver];
    servers.forEach((s, i) => {
      // setServers takes IP addresses only (a name would need DNS to find DNS), with an optional port.
      try {
        new Resolver().setServers([s]);
      } catch {
        issues.push({ path: Array.isArray(config.resolver) ? `resolver[${i}]` : 'resolver', message: `'${s}' is not an IP address with an optional port (e.g. 127.0.0.1:5353 or [::1]:53)` });
      }
    });
    return issues;
  },
  create(config, ctx): DiscoverySource {
    return new DnsSrvSource(config, ctx.logger);
  },
};
