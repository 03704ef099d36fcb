/**
 * What every session of one Redis listener shares for one config
 * generation: options, routing tables, shared upstream links, counters.
 */
import type { Socket } from 'node:net';
import type { Exchange } from '../../exchange';
import { ErrorCode, type ProxyError } from '../../errors';
import type { FilterChain, Invoke } from '../../filter';
import type { Cluster } from '../../routing/cluster';
import type { Counter } from '../../metrics';
import type { Logger } from '../../logger';
import type { ListenerStats } from '../../listener';
import type { ConnectionHandler, ProtocolBuildContext } from '../protocol';
import type { RespCommand } from './codec';
import { allCommands } from './commands';
import { SharedLinks } from './upstream';
import { RedisSession } from './session';

export interface RedisOptions {
  maxBulkLength: number;
  connectionsPerEndpoint: number;
  prefixRoutes: { prefix: Buffer; cluster: string }[];
  catchAllCluster: string | null;
  /** FLUSHALL/FLUSHDB over a sharded cluster are broadcast when true. */
  allowFlush: boolean;
}

export interface Target {
  cluster: Cluster;
  /** The exchange the filter chain ran on, when it did (completed once the request is sent). */
  ex?: Exchange;
}

/** An exchange on the policy path carries its own upstream call. */
type PolicyExchange = Exchange & { send: (ex: Exchange) => Promise<Buffer> };

interface PrefixRoute {
  prefix: Buffer;
  target: Target;
}

export class RedisListener implements ConnectionHandler {
  readonly name: string;
  readonly chain: FilterChain;
  readonly log: Logger;
  readonly idleTimeoutMs: number;
  readonly stats: ListenerStats & { commands: Counter };
  readonly commandCount: number;
  private readonly shared = new Map<Cluster, SharedLinks>();
  /** Longest first. */
  private readonly prefixes: PrefixRoute[];
  private readonly catchAll: Target | null;
  /** When routing cannot depend on the request (one catch-all route, no other filters): that target. */
  private readonly constant: Target | null;

  constructor(
    ctx: ProtocolBuildContext,
    readonly options: RedisOptions,
  ) {
    this.name = ctx.listener.name;
    this.chain = ctx.chain;
    this.invokeComposed = ctx.chain.compose<Buffer>((ex) => (ex as PolicyExchange).send(ex));
    this.log = ctx.logger;
    this.idleTimeoutMs = ctx.listener.idleTimeoutMs;
    const commands = ctx.metrics.counter('portway_redis_commands_total', 'Redis commands received.', { listener: this.name });
    this.stats = Object.assign(ctx.stats, { commands });
    this.commandCount = [...allCommands()].filter((c) => !c.name.includes('|')).length;
    const byName = (n: string): Cluster => {
      const c = ctx.clusters.get(n);
      if (!c) throw new Error(`listener '${this.name}': unknown cluster '${n}'`);
      return c;
    };
    this.prefixes = options.prefixRoutes
      .map((r) => ({ prefix: r.prefix, target: { cluster: byName(r.cluster) } }))
      .sort((a, b) => b.prefix.length - a.prefix.length);
    this.catchAll = options.catchAllCluster !== null ? { cluster: byName(options.catchAllCluster) } : null;
    const routes = ctx.listener.routes;
    const onlyRouter = ctx.chain.filters.every((f) => f.name === 'router' && f.kind === 'phase') && ctx.chain.direct;
    const simple = routes.length === 1 && routes[0]!.sourceCidr.length === 0 && Object.keys(routes[0]!.attributes).length === 0 && routes[0]!.clusters.length === 1;
    this.constant = this.prefixes.length === 0 && onlyRouter && simple ? { cluster: byName(routes[0]!.clusters[0]!.cluster) } : null;
  }

  handle(socket: Socket): void {
    socket.setNoDelay(true);
    new RedisSession(socket, this);
  }

  /**
   * The target when it does not need the filter chain: prefix routes (longest
   * prefix of the first key), or a listener whose only route is a catch-all.
   */
  fixedTarget(cmd: RespCommand, keys: number[]): Target | null {
    if (this.constant !== null) return this.constant;
    if (this.prefixes.length === 0) return null;
    return keys.length > 0 ? this.keyTarget(cmd, keys[0]!) : this.catchAll;
  }

  /** True when different keys of one command may go to different clusters. */
  get routesByKey(): boolean {
    return this.prefixes.length > 0;
  }

  /** The prefix route of key argument k (or the catch-all). */
  keyTarget(cmd: RespCommand, k: number): Target | null {
    const b = cmd.buffer;
    const s = cmd.argStart(k);
    const len = cmd.argEnd(k) - s;
    for (const p of this.prefixes) {
      const pl = p.prefix.length;
      if (pl <= len && b.compare(p.prefix, 0, pl, s, s + pl) === 0) return p.target;
    }
    return this.catchAll;
  }

  /** Where keyless, connection-level commands (SELECT) go. */
  defaultTarget(): Target | null {
    return this.constant ?? this.catchAll;
  }

  /**
   * Runs one request through the around-policies, composed once per
   * generation; `send` is the request's own upstream call.
   */
  invoke(ex: Exchange, send: (ex: Exchange) => Promise<Buffer>): Promise<Buffer> {
    (ex as PolicyExchange).send = send;
    return this.invokeComposed(ex);
  }

  private readonly invokeComposed: Invoke<Buffer>;

  links(cluster: Cluster): SharedLinks {
    let l = this.shared.get(cluster);
    if (l === undefined) {
      l = new SharedLinks(cluster, this.options.connectionsPerEndpoint, { connectTimeoutMs: cluster.config.connectTimeoutMs });
      this.shared.set(cluster, l);
    }
    return l;
  }

  /** The one mapping from a ProxyError to a RESP error line. */
  errorReply(err: ProxyError): Buffer {
    let text: string;
    switch (err.code) {
      case ErrorCode.RateLimited:
        text = `ERR rate limit exceeded${err.retryAfterMs !== undefined ? `, retry in ${Math.ceil(err.retryAfterMs)} ms` : ''}`;
        break;
      case ErrorCode.NoRoute:
        text = `ERR no route for this command on listener '${this.name}'`;
        break;
      case ErrorCode.Timeout:
        text = `ERR upstream timed out (${err.message})`;
        break;
      case ErrorCode.CircuitOpen:
      case ErrorCode.Overflow:
        text = `ERR upstream overloaded: ${err.message}`;
        break;
      case ErrorCode.FaultAbort:
        text = `ERR ${err.message}`;
        break;
      default:
        text = `ERR ${err.message}`;
    }
    return Buffer.from(`-${text.replace(/[\r\n]+/g, ' ')} (${err.code})\r\n`);
  }

  retire(): void {
    // Shared links finish what is in flight, then close; sessions already open make new ones if they need them.
    for (const l of this.shared.values()) l.close();
    this.shared.clear();
  }
}
