/**
 * What every session of one Kafka listener shares for one config
 * generation: options, where each topic lives (cluster, log component, the
 * name the log stores it under), the group coordinator, counters.
 *
 * Where a topic lives: the longest matching `topic_routes` prefix, else the
 * listener's routes (their `topic` attribute), the same answer for Metadata,
 * admin requests and the data path. A topic route may rename: the matched
 * prefix is replaced by `store_prefix` in the name the log keeps, and back
 * again in everything the client sees.
 */
import type { Socket } from 'node:net';
import { Exchange } from '../../exchange';
import type { FilterChain, Invoke } from '../../filter';
import type { Cluster } from '../../routing/cluster';
import type { Counter } from '../../metrics';
import type { Logger } from '../../logger';
import type { ListenerStats } from '../../listener';
import type { RawStringMatch } from '../../config/schema';
import type { ConnectionHandler, ProtocolBuildContext } from '../protocol';
import { isLogComponent, type LogComponent } from '../../components/log-component';
import { GroupCoordinator, type CoordinatorOptions } from './coordinator';
import { SUPPORTED } from './api-keys';
import { KafkaSession } from './session';

export interface KafkaOptions {
  advertisedHost: string | null;
  advertisedPort: number | null;
  nodeId: number;
  clusterId: string;
  maxFrameSize: number;
  autoCreateTopics: boolean;
  defaultPartitions: number;
  topics: { name: string; partitions: number }[];
  topicRoutes: { prefix: string; cluster: string; storePrefix: string | null }[];
  group: CoordinatorOptions;
}

/** Where one topic (as the client names it) is kept. */
export interface TopicPlace {
  cluster: Cluster;
  log: LogComponent;
  /** The name inside the log. */
  stored: string;
}

interface CompiledTopicRoute {
  prefix: string;
  storePrefix: string;
  cluster: Cluster;
}

interface CompiledRoute {
  test: ((topic: string) => boolean) | null;
  cluster: Cluster;
}

/** A policy exchange carries its own component call. */
type PolicyExchange = Exchange & { run: () => Promise<unknown> };

function compileMatch(m: RawStringMatch): (v: string) => boolean {
  let f: (v: string) => boolean;
  if (m.exact !== undefined) {
    const s = m.exact;
    f = (v) => v === s;
  } else if (m.prefix !== undefined) {
    const s = m.prefix;
    f = (v) => v.startsWith(s);
  } else if (m.suffix !== undefined) {
    const s = m.suffix;
    f = (v) => v.endsWith(s);
  } else if (m.regex !== undefined) {
    const re = new RegExp(m.regex);
    f = (v) => re.test(v);
  } else {
    const want = m.present !== false;
    f = () => want;
  }
  if (m.invert) {
    const inner = f;
    return (v) => !inner(v);
  }
  return f;
}

/** Coordinators outlive config generations: a reload must not forget the groups. Keyed by listener name. */
const coordinators = new Map<string, { c: GroupCoordinator; users: number }>();

export class KafkaListener implements ConnectionHandler {
  readonly name: string;
  readonly chain: FilterChain;
  readonly log: Logger;
  readonly idleTimeoutMs: number;
  readonly stats: ListenerStats;
  readonly coordinator: GroupCoordinator;
  /** True when the chain is just the router: the data path needs no Exchange. */
  readonly plain: boolean;
  readonly requests: Counter[] = [];
  readonly unsupported: Counter;
  readonly producedRecords: Counter;
  readonly producedBytes: Counter;
  readonly fetchedBytes: Counter;
  readonly corrupt: Counter;
  private readonly topicRoutes: CompiledTopicRoute[];
  private readonly routes: CompiledRoute[] = [];
  private readonly places = new Map<string, TopicPlace | null>();
  private readonly invokeComposed: Invoke<unknown>;
  private nextProducerId = BigInt(Date.now()) * 1000n;
  private retired = false;
  /** Resolves once the configured topics exist. */
  readonly ready: Promise<void>;
  isReady = false;

  constructor(
    ctx: ProtocolBuildContext,
    readonly options: KafkaOptions,
  ) {
    this.name = ctx.listener.name;
    this.chain = ctx.chain;
    this.log = ctx.logger;
    this.idleTimeoutMs = ctx.listener.idleTimeoutMs;
    this.stats = ctx.stats;
    this.plain = ctx.chain.filters.every((f) => f.name === 'router' && f.kind === 'phase') && ctx.chain.direct;
    this.invokeComposed = ctx.chain.compose<unknown>((ex) => (ex as PolicyExchange).run());
    const byName = (n: string): Cluster => {
      const c = ctx.clusters.get(n);
      if (!c) throw new Error(`listener '${this.name}': unknown cluster '${n}'`);
      return c;
    };
    this.topicRoutes = options.topicRoutes
      .map((r) => ({ prefix: r.prefix, storePrefix: r.storePrefix ?? r.prefix, cluster: byName(r.cluster) }))
      .sort((a, b) => b.prefix.length - a.prefix.length);
    for (const r of ctx.listener.routes) {
      const attrs = Object.entries(r.attributes);
      // Routes on attributes other than the topic cannot place a topic for Metadata: they only apply to the data path's router.
      if (attrs.some(([k]) => k !== 'topic')) continue;
      const tests = attrs.map(([, m]) => compileMatch(m));
      this.routes.push({ test: tests.length === 0 ? null : (t) => tests.every((f) => f(t)), cluster: byName(r.clusters[0]!.cluster) });
    }
    const m = ctx.metrics;
    for (const a of SUPPORTED) this.requests[a.key] = m.counter('portway_kafka_requests_total', 'Kafka requests received, by API.', { listener: this.name, api: a.name });
    this.unsupported = m.counter('portway_kafka_requests_total', 'Kafka requests received, by API.', { listener: this.name, api: 'unsupported' });
    this.producedRecords = m.counter('portway_kafka_produced_records_total', 'Records appended to logs.', { listener: this.name });
    this.producedBytes = m.counter('portway_kafka_produced_bytes_total', 'Record batch bytes appended to logs.', { listener: this.name });
    this.fetchedBytes = m.counter('portway_kafka_fetched_bytes_total', 'Record batch bytes returned to fetchers.', { listener: this.name });
    this.corrupt = m.counter('portway_kafka_corrupt_batches_total', 'Produced record batches refused (CRC, framing, compression).', { listener: this.name });
    let shared = coordinators.get(this.name);
    if (shared === undefined) {
      shared = { c: new GroupCoordinator(options.group, this.log), users: 0 };
      coordinators.set(this.name, shared);
    } else shared.c.configure(options.group);
    shared.users++;
    this.coordinator = shared.c;
    this.ready = this.createConfiguredTopics().then(() => {
      this.isReady = true;
    });
  }

  private async createConfiguredTopics(): Promise<void> {
    for (const t of this.options.topics) {
      const p = this.place(t.name);
      if (p === null) {
        this.log.warn({ topic: t.name }, 'configured topic has no route to a log component; not created');
        continue;
      }
      if (p.log.topic(p.stored) !== undefined) continue;
      try {
        await p.log.createTopic(p.stored, t.partitions);
      } catch (e) {
        this.log.warn({ topic: t.name, err: (e as Error).message }, 'configured topic could not be created');
      }
    }
  }

  handle(socket: Socket): void {
    socket.setNoDelay(true);
    new KafkaSession(socket, this);
  }

  /** The cluster, log and stored name of a topic as the client names it; null when no route leads to a log component. */
  place(topic: string): TopicPlace | null {
    const hit = this.places.get(topic);
    if (hit !== undefined) return hit;
    const p = this.resolve(topic);
    if (this.places.size >= 10_000) this.places.clear();
    this.places.set(topic, p);
    return p;
  }

  private resolve(topic: string): TopicPlace | null {
    for (const r of this.topicRoutes) {
      if (topic.startsWith(r.prefix)) return this.at(r.cluster, r.storePrefix + topic.slice(r.prefix.length));
    }
    for (const r of this.routes) if (r.test === null || r.test(topic)) return this.at(r.cluster, topic);
    return null;
  }

  private at(cluster: Cluster, stored: string): TopicPlace | null {
    const log = cluster.component;
    if (!isLogComponent(log ?? undefined)) return null;
    return { cluster, log: log as LogComponent, stored };
  }

  /** The client's name of a topic stored in `log`, or null when no client name leads there. */
  appName(log: LogComponent, stored: string): string | null {
    const candidates: string[] = [stored];
    for (const r of this.topicRoutes) {
      if (stored.startsWith(r.storePrefix)) candidates.push(r.prefix + stored.slice(r.storePrefix.length));
    }
    for (const c of candidates) {
      const p = this.place(c);
      if (p !== null && p.log === log && p.stored === stored) return c;
    }
    return null;
  }

  /** Every log component a topic of this listener may live in. */
  logs(): LogComponent[] {
    const out = new Set<LogComponent>();
    for (const r of this.topicRoutes) if (isLogComponent(r.cluster.component ?? undefined)) out.add(r.cluster.component as LogComponent);
    for (const r of this.routes) if (isLogComponent(r.cluster.component ?? undefined)) out.add(r.cluster.component as LogComponent);
    return [...out];
  }

  /** An exchange for the filter chain: one per topic of a produce or fetch request. */
  exchange(socket: Socket, api: string, topic: string, clientId: string): Exchange {
    const ex = new Exchange(this.name, 'kafka', socket.remoteAddress ?? '', socket.remotePort ?? 0, api);
    ex.attrs['topic'] = topic;
    ex.attrs['client_id'] = clientId;
    ex.attrs['api'] = api;
    ex.idempotent = api === 'fetch';
    return ex;
  }

  /** Runs a component call through the around-policies (timeout, retry, circuit breaker). */
  invoke<T>(ex: Exchange, run: () => Promise<T>): Promise<T> {
    (ex as PolicyExchange).run = run;
    return this.invokeComposed(ex) as Promise<T>;
  }

  newProducerId(): bigint {
    return this.nextProducerId++;
  }

  retire(): void {
    if (this.retired) return;
    this.retired = true;
    const shared = coordinators.get(this.name);
    if (shared !== undefined && shared.c === this.coordinator && --shared.users === 0) {
      shared.c.close();
      coordinators.delete(this.name);
    }
  }
}
