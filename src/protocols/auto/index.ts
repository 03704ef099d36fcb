/**
 * protocol: auto — one port for every protocol (the port iptables redirects
 * a pod's traffic to). Each accepted connection is held unread while its
 * first bytes are peeked (peek.ts) and classified (detect.ts); then the
 * untouched socket goes to the handler of that protocol, built once per
 * generation from the same build context with the options given under the
 * protocol's name:
 *
 *   options:
 *     detect_timeout: 5s
 *     redis: {}        # enables RESP; its own options inside
 *     http: {}         # enables HTTP/1.x
 *     kafka: {...}     # enables Kafka (needs a route to a log component)
 *     bolt: {...}      # enables SOFA Bolt
 *     tls: {}          # enables TLS ClientHello: passed through as L4 TCP
 *     fallback: close  # bytes no enabled protocol starts with: close, or tcp (L4 passthrough)
 *
 * Routes are shared. A route may match the attribute `protocol` (redis,
 * kafka, bolt, http, tls, tcp); each protocol's handler sees only the routes
 * whose `protocol` match admits it (with that condition removed), so a
 * protocol's own route compilation (Redis prefixes, Kafka topics) is not
 * confused by the others' routes.
 *
 * Bad input, each counted in portway_protocol_detect_total{result} and as a
 * listener error PW_ERR_PROTOCOL_UNKNOWN (timeout, unknown): a client that
 * sends nothing within detect_timeout is closed (result=timeout); bytes that
 * match no enabled protocol are closed, or passed through as TCP with
 * fallback: tcp (result=tcp); a client that leaves before saying
 * anything is counted as result=closed.
 */
import type { Socket } from 'node:net';
import { Type, type Static } from '@sinclair/typebox';
import { Duration } from '../../config/schema';
import type { RouteConfig } from '../../config/types';
import { validateAgainst, type ConfigIssue } from '../../config/validate';
import type { RawListener } from '../../config/schema';
import { ErrorCode } from '../../errors';
import { FilterChain, type PhaseFilter } from '../../filter';
import type { Counter } from '../../metrics';
import { parseDuration } from '../../util/duration';
import { compileStringMatch } from '../../routing/string-match';
import type { ConnectionHandler, ProtocolBuildContext, ProtocolModule } from '../protocol';
import { tcpProtocol } from '../tcp';
import { redisProtocol } from '../redis';
import { kafkaProtocol } from '../kafka';
import { boltProtocol } from '../bolt';
import { httpProtocol } from '../http';
import { detect, MAX_LINE, type Detected } from './detect';
import { holdReading, peek, peekSupported, releaseReading, PEEK_MAX_INTERVAL_MS } from './peek';

/** The L7 protocols auto can hand a connection to, by the option key that enables them. */
const L7: Record<'redis' | 'kafka' | 'bolt' | 'http', ProtocolModule> = { redis: redisProtocol, kafka: kafkaProtocol, bolt: boltProtocol, http: httpProtocol };
type L7Name = keyof typeof L7;
const L7_NAMES = Object.keys(L7) as L7Name[];

const SubOptions = (what: string) => Type.Object({}, { additionalProperties: true, description: `Enables ${what}; the object holds that protocol's own listener options.` });

const AutoOptions = Type.Object(
  {
    detect_timeout: Type.Optional(Duration('Close a client that has not sent enough bytes to tell its protocol within this long (counted as result=timeout).', '5s')),
    fallback: Type.Optional(
      Type.Union([Type.Literal('close'), Type.Literal('tcp')], {
        default: 'close',
        description: 'Bytes no enabled protocol starts with: close the connection, or pass it through as L4 TCP along the routes (attribute protocol = tcp).',
      }),
    ),
    redis: Type.Optional(SubOptions('Redis RESP (arrays and inline commands)')),
    kafka: Type.Optional(SubOptions('Kafka')),
    bolt: Type.Optional(SubOptions('SOFA Bolt v1/v2')),
    http: Type.Optional(SubOptions('HTTP/1.x')),
    tls: Type.Optional(Type.Object({}, { additionalProperties: false, description: 'Enables TLS ClientHello detection: such connections pass through as L4 TCP along the routes (attribute protocol = tls).' })),
  },
  { additionalProperties: false },
);
type AutoOptions = Static<typeof AutoOptions>;

/** The routes one protocol sees: those whose `protocol` match admits it, without that condition. */
function routesFor<R extends { attributes: Record<string, unknown> }>(routes: readonly R[], proto: string, strip: (r: R) => R): R[] {
  const out: R[] = [];
  for (const r of routes) {
    const m = r.attributes['protocol'];
    if (m === undefined) out.push(r);
    else if (compileStringMatch(m as never)(proto)) out.push(strip(r));
  }
  return out;
}

function stripRoute(r: RouteConfig): RouteConfig {
  const { protocol: _p, ...attributes } = r.attributes;
  return { ...r, attributes };
}

type RawRoute = NonNullable<RawListener['routes']>[number];
function rawRoutesFor(l: RawListener, proto: string): RawRoute[] {
  const wrapped = (l.routes ?? []).map((r) => ({ r, attributes: (r.match?.attributes ?? {}) as Record<string, unknown> }));
  return routesFor(wrapped, proto, (w) => {
    const { protocol: _p, ...attributes } = w.attributes;
    return { r: { ...w.r, match: { ...w.r.match, attributes: attributes as never } }, attributes };
  }).map((w) => w.r);
}

function check(o: AutoOptions, ctx: { listener: RawListener; clusters: ReadonlySet<string> }): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (!peekSupported()) issues.push({ path: '', message: 'protocol detection needs Linux and koffi (recv with MSG_PEEK)' });
  const enabled = L7_NAMES.filter((n) => o[n] !== undefined);
  if (enabled.length === 0 && o.tls === undefined && o.fallback !== 'tcp') issues.push({ path: '', message: 'enable at least one of redis, kafka, bolt, http, tls (or fallback: tcp)' });
  if (parseDuration(o.detect_timeout ?? '5s') <= 0) issues.push({ path: 'detect_timeout', message: 'must be more than 0' });
  for (const n of enabled) {
    const m = L7[n];
    const sub = o[n] as Record<string, unknown>;
    const own = validateAgainst(m.optionsSchema, sub, n);
    issues.push(...own);
    if (own.length === 0 && m.check) {
      const listener = { ...ctx.listener, protocol: n, options: sub, routes: rawRoutesFor(ctx.listener, n) } as RawListener;
      for (const i of m.check(sub, { listener, clusters: ctx.clusters })) issues.push({ path: i.path ? `${n}.${i.path}` : n, message: i.message });
    }
  }
  return issues;
}

type Result = Detected | 'tcp' | 'timeout' | 'unknown' | 'closed';
const RESULTS: Result[] = ['redis', 'kafka', 'bolt', 'http', 'tls', 'tcp', 'timeout', 'unknown', 'closed'];

class AutoHandler implements ConnectionHandler {
  private readonly handlers = new Map<Detected | 'tcp', ConnectionHandler>();
  private readonly counters: Record<Result, Counter>;
  private readonly timeoutMs: number;
  private readonly fallbackTcp: boolean;
  private readonly pending = new Set<Pending>();
  /** The detected name while a handler runs synchronously: the L4 handler routes inside handle(), so its exchange sees it. */
  private current: string | null = null;
  private lastWarn = 0;

  constructor(private readonly ctx: ProtocolBuildContext) {
    const o = ctx.listener.options as AutoOptions;
    this.timeoutMs = parseDuration(o.detect_timeout ?? '5s');
    this.fallbackTcp = o.fallback === 'tcp';
    const usesProtocolAttr = ctx.listener.routes.some((r) => 'protocol' in r.attributes);
    // Exchanges get attribute `protocol` only when a route asks for it: an extra filter costs the Redis fast path.
    const chain = usesProtocolAttr ? new FilterChain([this.protocolAttribute(), ...ctx.chain.filters]) : ctx.chain;
    const sub = (proto: string, options: Record<string, unknown>): ProtocolBuildContext => ({
      ...ctx,
      chain,
      listener: { ...ctx.listener, protocol: proto, options, routes: routesFor(ctx.listener.routes, proto, stripRoute) },
      logger: ctx.logger.child({ protocol: proto }),
    });
    for (const n of L7_NAMES) {
      const opts = o[n];
      if (opts !== undefined) this.handlers.set(n, L7[n].create(sub(n, opts as Record<string, unknown>)));
    }
    if (o.tls !== undefined) this.handlers.set('tls', tcpProtocol.create(sub('tls', {})));
    if (this.fallbackTcp) this.handlers.set('tcp', tcpProtocol.create(sub('tcp', {})));
    const labels = (result: Result) => ({ listener: ctx.listener.name, result });
    this.counters = Object.fromEntries(
      RESULTS.map((r) => [
        r,
        ctx.metrics.counter(
          'portway_protocol_detect_total',
          'Connections of protocol: auto listeners by detection result: the protocol, tcp (fallback passthrough), timeout (nothing within detect_timeout), unknown (closed: no enabled protocol matched), closed (the client left first).',
          labels(r),
        ),
      ]),
    ) as Record<Result, Counter>;
  }

  private protocolAttribute(): PhaseFilter {
    return {
      kind: 'phase',
      name: 'protocol_attribute',
      onRequest: (ex) => {
        ex.attrs['protocol'] = this.current ?? ex.protocol;
        return undefined;
      },
    };
  }

  handle(socket: Socket): void {
    if (!holdReading(socket)) {
      this.finish(socket, 'unknown', 'the accepted socket has no readable handle');
      return;
    }
    const p = new Pending(socket, this, performance.now() + this.timeoutMs);
    this.pending.add(p);
    // Never decide inside handle(): the listener registers its close listeners on this socket when handle()
    // returns, and a handler that re-wraps the socket needs them moved (see adopted()).
    setImmediate(p.poll);
  }

  /** Detection ended for p: hand the socket on, or close it. */
  decide(p: Pending, result: Detected | 'timeout' | 'closed' | null): void {
    this.pending.delete(p);
    const sock = p.socket;
    sock.removeListener('error', p.onError);
    if (result === 'timeout' || result === 'closed') {
      this.finish(sock, result, result === 'timeout' ? `nothing recognisable within ${this.timeoutMs} ms` : 'client closed before detection');
      return;
    }
    let name: Detected | 'tcp' | null = result !== null && this.handlers.has(result) ? result : null;
    if (name === null) {
      if (!this.fallbackTcp) {
        this.finish(sock, 'unknown', result === null ? 'bytes match no known protocol' : `protocol ${result} is not enabled on this listener`);
        return;
      }
      name = 'tcp';
    }
    this.counters[name].inc();
    releaseReading(sock);
    const h = this.handlers.get(name)!;
    this.current = name;
    let replaced: Socket | void;
    try {
      replaced = h.handle(sock);
    } catch (err) {
      this.ctx.logger.error({ err, protocol: name }, 'connection handler threw');
      sock.destroy();
      return;
    } finally {
      this.current = null;
    }
    if (replaced && replaced !== sock) this.adopted(sock, replaced);
  }

  /**
   * The handler re-wrapped the socket (the Redis and TCP handlers take over
   * its OS handle). The listener and generation tracked the first wrapper:
   * move their close listeners to the new one, and let destroying the old
   * object (listener drain) destroy the new one.
   */
  private adopted(old: Socket, now: Socket): void {
    const closers = old.rawListeners('close') as ((...a: unknown[]) => void)[];
    old.removeAllListeners('close');
    for (const f of closers) now.once('close', f);
    (old as { destroy: Socket['destroy'] }).destroy = ((err?: Error) => now.destroy(err)) as Socket['destroy'];
  }

  private finish(sock: Socket, result: 'timeout' | 'unknown' | 'closed', why: string): void {
    this.counters[result].inc();
    if (result !== 'closed') {
      this.ctx.stats.countError(ErrorCode.ProtocolUnknown);
      const now = Date.now();
      if (now - this.lastWarn >= 1000) {
        this.lastWarn = now;
        this.ctx.logger.warn({ client: `${sock.remoteAddress}:${sock.remotePort}`, result, reason: why }, 'protocol detection failed: connection closed');
      }
    }
    sock.destroy();
  }

  retire(): void {
    for (const h of this.handlers.values()) h.retire?.();
  }
}

const PEEK_BUF = Buffer.allocUnsafe(MAX_LINE);

/** One connection being detected. */
class Pending {
  private interval = 0;
  readonly onError = (): void => {};

  constructor(
    readonly socket: Socket,
    private readonly owner: AutoHandler,
    private readonly deadline: number,
  ) {
    socket.on('error', this.onError);
  }

  poll = (): void => {
    if (this.socket.destroyed) {
      this.owner.decide(this, 'closed');
      return;
    }
    const n = peek(this.socket, PEEK_BUF);
    if (n === 0 || n === -2) {
      this.owner.decide(this, 'closed');
      return;
    }
    if (n > 0) {
      const d = detect(PEEK_BUF, n);
      if (d !== 'more') {
        this.owner.decide(this, d);
        return;
      }
    }
    const left = this.deadline - performance.now();
    if (left <= 0) {
      this.owner.decide(this, 'timeout');
      return;
    }
    // Back off: most clients speak within a millisecond of connecting.
    this.interval = this.interval === 0 ? 1 : Math.min(this.interval * 2, PEEK_MAX_INTERVAL_MS);
    setTimeout(this.poll, Math.min(this.interval, Math.max(1, Math.ceil(left))));
  };
}

export const autoProtocol: ProtocolModule = {
  name: 'auto',
  description: 'Protocol detection: one port serving Redis, Kafka, Bolt, HTTP/1.x and TLS passthrough, chosen by the first bytes of each connection.',
  optionsSchema: AutoOptions,
  attributes: [...new Set(['protocol', ...tcpProtocol.attributes, ...L7_NAMES.flatMap((n) => L7[n].attributes)])],
  check: (options, ctx) => check(options as AutoOptions, ctx),
  create: (ctx) => new AutoHandler(ctx),
};
