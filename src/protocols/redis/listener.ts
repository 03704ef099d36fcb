/**
 * What every session of one Redis listener shares for one config
 * generation: options, routing tables, shared upstream links, counters.
 */
import type { Socket } from 'node:net';
import type { Exchange } from '../../exchange';
import { ErrorCode, type ProxyError } from '../../errors';
import type { FilterChain, Invoke } from '../../filter';
import type { Cluster } from '../../routing/cluster';
import type { Counter, Histogram, MetricsRegistry } from '../../metrics';
import type { Logger } from '../../logger';
import type { ListenerStats } from '../../listener';
import type { ConnectionHandler, ProtocolBuildContext } from '../protocol';
import type { RespCommand } from './codec';
import { allCommands, commandInfo } from './commands';
import { SharedLinks, type RedisLink } from './upstream';
import { UserTable, type UserConfig } from './acl';
import { MirrorTarget, type MirrorOptions } from './mirror';
import { encodeCommand } from './resp-writer';
import { RedisSession } from './session';
import { adoptForSharedReads } from '../../util/shared-read';

export interface RedisOptions {
  maxBulkLength: number;
  connectionsPerEndpoint: number;
  prefixRoutes: { prefix: Buffer; cluster: string }[];
  catchAllCluster: string | null;
  /** FLUSHALL/FLUSHDB over a sharded cluster are broadcast when true. */
  allowFlush: boolean;
  /** Client users; null: no AUTH required (today's behaviour). */
  users: UserConfig[] | null;
  /** Per cluster name: what Portway's own connections send first. */
  upstreams: Map<string, UpstreamAuth>;
  readReplicas: { primary: string; replicas: string; policy: ReplicaPolicy }[];
  mirror: MirrorOptions[];
}

export interface UpstreamAuth {
  username: string | null;
  password: string | null;
  db: number;
}

export type ReplicaPolicy = 'primary' | 'prefer-replica' | 'replica';

/** Where the read-only commands routed to a primary cluster go. */
export interface ReadReplicas {
  replicas: Cluster;
  policy: ReplicaPolicy;
}

export interface CommandStats {
  count: Counter;
  errors: Counter;
  latency: Histogram;
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
  private readonly perCommand = new Map<string, CommandStats>();
  private readonly metrics: MetricsRegistry;
  /** Longest first. */
  private readonly prefixes: PrefixRoute[];
  private readonly catchAll: Target | null;
  /** When routing cannot depend on the request (one catch-all route, no other filters): that target. */
  private readonly constant: Target | null;
  /** Client users, or null when clients need not authenticate. */
  readonly users: UserTable | null;
  /** Read replicas by primary cluster; null when none are configured. */
  readonly replicasOf: Map<Cluster, ReadReplicas> | null;
  /** Shadow clusters; null when nothing is mirrored. */
  readonly mirrors: MirrorTarget[] | null;
  readonly authFailures: Counter;
  /** Handshake frames (AUTH, SELECT) per cluster with upstream credentials, and the configured db. */
  private readonly setup = new Map<Cluster, { auth: Buffer | null; db: number }>();
  /** When a refused handshake was last logged, per cluster (one warning per 10 s). */
  private readonly setupLogged = new Map<Cluster, number>();

  constructor(
    ctx: ProtocolBuildContext,
    readonly options: RedisOptions,
  ) {
    this.name = ctx.listener.name;
    this.chain = ctx.chain;
    this.invokeComposed = ctx.chain.compose<Buffer>((ex) => (ex as PolicyExchange).send(ex));
    this.log = ctx.logger;
    this.idleTimeoutMs = ctx.listener.idleTimeoutMs;
    this.metrics = ctx.metrics;
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
    this.users = options.users !== null ? new UserTable(options.users) : null;
    this.authFailures = ctx.metrics.counter('portway_redis_auth_failures_total', 'Redis AUTH / HELLO AUTH attempts refused.', { listener: this.name });
    for (const [name, u] of options.upstreams) {
      let auth: Buffer | null = null;
      if (u.password !== null) auth = encodeCommand(u.username !== null ? ['AUTH', u.username, u.password] : ['AUTH', u.password]);
      this.setup.set(byName(name), { auth, db: u.db });
    }
    this.replicasOf =
      options.readReplicas.length > 0 ? new Map(options.readReplicas.map((r) => [byName(r.primary), { replicas: byName(r.replicas), policy: r.policy }])) : null;
    this.mirrors =
      options.mirror.length > 0
        ? options.mirror.map((m) => {
            const labels = { listener: this.name, cluster: m.cluster };
            return new MirrorTarget(
              byName(m.cluster),
              m.sample,
              m.writesOnly,
              ctx.metrics.counter('portway_redis_mirrored_total', 'Requests copied to a shadow cluster.', labels),
              ctx.metrics.counter('portway_redis_mirror_failures_total', 'Copies to a shadow cluster that failed (error reply, connection error, no endpoint).', labels),
            );
          })
        : null;
  }

  /**
   * The commands a new connection to the cluster sends first: AUTH with the
   * configured credentials, then SELECT of `db` (the session's database, or
   * the configured one when the session's is 0).
   */
  handshake(cluster: Cluster, db = 0): Buffer[] {
    const s = this.setup.get(cluster);
    const out: Buffer[] = [];
    if (s !== undefined && s.auth !== null) out.push(s.auth);
    const n = db !== 0 ? db : (s?.db ?? 0);
    if (n !== 0) out.push(encodeCommand(['SELECT', String(n)]));
    return out;
  }

  /** The database configured for the cluster's connections (0 when none). */
  baseDb(cluster: Cluster): number {
    return this.setup.get(cluster)?.db ?? 0;
  }

  /** Logs a refused handshake without its credentials, at most once per 10 s per cluster. */
  readonly onSetupError = (link: RedisLink, text: string): void => {
    const now = performance.now();
    const last = this.setupLogged.get(link.cluster);
    if (last !== undefined && now - last < 10_000) return;
    this.setupLogged.set(link.cluster, now);
    this.log.warn({ cluster: link.cluster.name, endpoint: link.endpoint.address, reply: text.slice(0, 200) }, 'upstream refused the connection setup (AUTH/SELECT)');
  };

  handle(accepted: Socket): Socket {
    // Client reads into one shared buffer, past the stream machinery (util/shared-read.ts).
    return adoptForSharedReads(accepted, (socket) => new RedisSession(socket, this));
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

  /**
   * Counters and a latency histogram per command name, made on first use.
   * Names outside the command table share one series, so clients cannot grow the label set.
   */
  commandStats(name: string): CommandStats {
    let st = this.perCommand.get(name);
    if (st === undefined) {
      const label = commandInfo(name) !== undefined ? name.toLowerCase() : 'unknown';
      const labels = { listener: this.name, command: label };
      st = {
        count: this.metrics.counter('portway_redis_command_total', 'Redis commands answered, per command.', labels),
        errors: this.metrics.counter('portway_redis_command_errors_total', 'Redis commands answered with an error reply, per command.', labels),
        latency: this.metrics.histogram('portway_redis_command_duration_seconds', 'Time from a command read to its reply ready, per command.', labels),
      };
      if (this.perCommand.size < 1024) this.perCommand.set(name, st);
    }
    return st;
  }

  links(cluster: Cluster): SharedLinks {
    let l = this.shared.get(cluster);
    if (l === undefined) {
      const handshake = this.handshake(cluster);
      l = new SharedLinks(cluster, this.options.connectionsPerEndpoint, {
        connectTimeoutMs: cluster.config.connectTimeoutMs,
        ...(handshake.length > 0 ? { handshake, onSetupError: this.onSetupError } : {}),
      });
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
