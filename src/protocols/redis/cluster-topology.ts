/**
 * Redis Cluster as an upstream: the slot map learned from the cluster and the
 * requests that follow its redirections.
 *
 * The configured endpoints of the cluster are seed nodes. CLUSTER SLOTS,
 * asked of a known master (else a seed), answers
 *
 *   *<ranges>  each  *<3+n>  :<first slot> :<last slot>
 *                            *<master: host, port, node id, ...>  [*<replica> ...]
 *
 * (an empty host means "the address you asked"). Every slot maps to its
 * master; a key goes to the master of CRC16(key) mod 16384 (redis-slot.ts),
 * over the listener's shared, multiplexed link to that node.
 *
 * Redirections are followed where the reply arrives, without the client
 * seeing them:
 *   -MOVED <slot> <host:port>  the slot has a new owner: the map entry is
 *       updated at once, a full refresh is scheduled, the request is sent
 *       to the new owner;
 *   -ASK <slot> <host:port>    the slot is being migrated and this key is
 *       already at the target: ASKING then the request, back to back on the
 *       same link (nothing can come between them: one synchronous write
 *       queue per link), the map is not changed;
 *   -TRYAGAIN                  a multi-key request during a migration: sent
 *       again after a short pause.
 * Each request follows at most max_redirects redirections. A broken link
 * and a periodic timer also refresh the map.
 */
import type { Cluster } from '../../routing/cluster';
import { Endpoint } from '../../routing/endpoint';
import { CLUSTER_SLOTS } from '../../routing/redis-slot';
import { ErrorCode, ProxyError } from '../../errors';
import type { MetricsRegistry, Counter } from '../../metrics';
import type { Logger } from '../../logger';
import { formatHostPort } from '../../util/address';
import { RespType } from './codec';
import { parseReply, type RespValue } from './resp-value';
import { encodeCommand } from './resp-writer';
import type { RedisLink, ReplySink, SharedLinks } from './upstream';

export interface RedisClusterOptions {
  /** Name of the cluster whose endpoints are seed nodes. */
  cluster: string;
  /** Periodic slot map refresh; 0 turns it off (MOVED and link errors still refresh). */
  refreshIntervalMs: number;
  /** Redirections (MOVED, ASK, TRYAGAIN) one request may follow. */
  maxRedirects: number;
}

const CLUSTER_SLOTS_CMD = encodeCommand(['CLUSTER', 'SLOTS']);
const ASKING = encodeCommand(['ASKING']);
/** The smallest gap between two refreshes that a redirection or an error asks for. */
const MIN_REFRESH_GAP_MS = 100;
/** TRYAGAIN: pause before sending again, and how many times (about a second in all). */
const TRYAGAIN_DELAY_MS = 20;
const TRYAGAIN_MAX = 50;

/** Swallows a reply nobody waits for (ASKING's +OK). */
export const IGNORE: ReplySink = { onReply() {}, onError() {} };
export { ASKING };

export interface Redirect {
  /** MOVED (the slot has a new owner) rather than ASK (this request only). */
  moved: boolean;
  slot: number;
  host: string;
  port: number;
}

/** "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (an error reply's text, without '-'); null for anything else. */
export function parseRedirect(text: string): Redirect | null {
  const moved = text.startsWith('MOVED ');
  if (!moved && !text.startsWith('ASK ')) return null;
  const parts = text.split(' ');
  if (parts.length < 3) return null;
  const slot = Number(parts[1]);
  const addr = parts[2]!;
  const colon = addr.lastIndexOf(':');
  const port = Number(addr.slice(colon + 1));
  let host = addr.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (colon <= 0 || !Number.isInteger(slot) || slot < 0 || slot >= CLUSTER_SLOTS || !Number.isInteger(port) || port <= 0 || port > 65535) return null;
  return { moved, slot, host, port };
}

export class ClusterTopology {
  /** Index into `masters` of each slot's owner; -1 while unknown. */
  private readonly owner = new Int32Array(CLUSTER_SLOTS).fill(-1);
  /** The masters owning at least one slot, in the order the cluster listed them. */
  masters: Endpoint[] = [];
  /** Every node seen (seeds, masters, redirect targets), by address; Endpoint objects are kept so links stay. */
  private readonly nodes = new Map<string, Endpoint>();
  /** True once a slot map was loaded. */
  known = false;
  lastError: string | null = null;
  private refreshing: Promise<void> | null = null;
  private lastRefreshAt = 0;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private rr = 0;
  readonly redirects: { moved: Counter; ask: Counter; tryagain: Counter; refreshes: Counter };

  constructor(
    readonly cluster: Cluster,
    readonly options: RedisClusterOptions,
    private readonly links: SharedLinks,
    private readonly metrics: MetricsRegistry,
    private readonly log: Logger,
    listener: string,
  ) {
    const labels = (kind: string) => ({ listener, cluster: cluster.name, kind });
    const help = 'Redis Cluster redirections followed (moved, ask, tryagain) and slot map refreshes (refresh).';
    this.redirects = {
      moved: metrics.counter('portway_redis_cluster_events_total', help, labels('moved')),
      ask: metrics.counter('portway_redis_cluster_events_total', help, labels('ask')),
      tryagain: metrics.counter('portway_redis_cluster_events_total', help, labels('tryagain')),
      refreshes: metrics.counter('portway_redis_cluster_events_total', help, labels('refresh')),
    };
    this.reportKey = `redis_cluster:${listener}`;
    cluster.reports.set(this.reportKey, this.report);
    if (options.refreshIntervalMs > 0) {
      this.timer = setInterval(() => void this.refresh(true), options.refreshIntervalMs);
      this.timer.unref();
    }
  }

  /** What GET /clusters shows under redis_cluster:<listener>. */
  private readonly report = (): unknown => ({
    known: this.known,
    masters: this.masters.map((m) => m.address),
    unowned_slots: this.owner.reduce((n, o) => (o < 0 ? n + 1 : n), 0),
    last_error: this.lastError,
  });
  private readonly reportKey: string;

  /** Loads the slot map (first call) or resolves once the current attempt is over. */
  start(): Promise<void> {
    return this.cluster.ready.then(() => this.refresh(true));
  }

  /** The master of a slot; a seed or any master while the slot's owner is unknown (its MOVED will tell). */
  masterOf(slot: number): Endpoint | null {
    const i = this.owner[slot]!;
    return i >= 0 ? this.masters[i]! : this.anyNode();
  }

  /** Some master (round robin), else a usable seed; for keyless commands. */
  anyNode(): Endpoint | null {
    const m = this.masters;
    if (m.length > 0) return m[this.rr++ % m.length]!;
    const seeds = this.cluster.usable();
    return seeds.length > 0 ? this.node(seeds[this.rr++ % seeds.length]!) : null;
  }

  /** Resolves when a slot map is known, or the attempt to learn one failed. */
  whenKnown(): Promise<void> {
    if (this.known) return Promise.resolve();
    return this.refreshing ?? this.refresh(false);
  }

  /**
   * Sends one request to the owner of `slot` (-1: any master), following
   * redirections; the final reply or error goes to `sink`.
   */
  send(sessionId: number, frame: Buffer, start: number, end: number, slot: number, sink: ReplySink): void {
    const ep = slot >= 0 ? this.masterOf(slot) : this.anyNode();
    if (ep === null) {
      sink.onError(new ProxyError(ErrorCode.NoHealthyUpstream, `Redis Cluster '${this.cluster.name}' has no known node`, { source: 'upstream', retryable: true }));
      return;
    }
    new ClusterRequest(this, sessionId, frame, start, end, slot, sink).sendTo(ep, false);
  }

  /** The link a request to `ep` takes. */
  linkTo(ep: Endpoint, sessionId: number): RedisLink {
    return this.links.get(ep, sessionId);
  }

  /** The Endpoint for host:port, made on first sight. Seeds keep their own Endpoint objects. */
  node(epOrAddress: Endpoint | string, port?: number): Endpoint {
    if (typeof epOrAddress !== 'string') {
      const known = this.nodes.get(epOrAddress.address);
      if (known !== undefined) return known;
      this.nodes.set(epOrAddress.address, epOrAddress);
      return epOrAddress;
    }
    const address = formatHostPort(epOrAddress, port!);
    let ep = this.nodes.get(address);
    if (ep === undefined) {
      ep = this.cluster.endpoints.find((e) => e.address === address) ?? new Endpoint(this.cluster.name, epOrAddress, port!, 1, address, this.metrics);
      this.nodes.set(address, ep);
    }
    return ep;
  }

  /** MOVED: the slot's owner is `address` from now on; a full refresh follows soon. */
  moved(slot: number, target: Endpoint): void {
    this.redirects.moved.inc();
    let i = this.masters.indexOf(target);
    if (i < 0) {
      this.masters = [...this.masters, target];
      i = this.masters.length - 1;
    }
    this.owner[slot] = i;
    void this.refresh(false);
  }

  /** Notes a MOVED (the slot map changes) or an ASK (counted); returns the node to go to. */
  redirected(r: Redirect): Endpoint {
    const ep = this.node(r.host, r.port);
    if (r.moved) this.moved(r.slot, ep);
    else this.redirects.ask.inc();
    return ep;
  }

  /** A link to a node broke: the topology may have changed (failover). */
  linkFailed(): void {
    void this.refresh(false);
  }

  /**
   * Asks CLUSTER SLOTS of the known masters, then the seeds, until one
   * answers. One refresh at a time; asked for during one, another follows.
   * Unless forced, refreshes are at least MIN_REFRESH_GAP_MS apart.
   */
  refresh(force: boolean): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.refreshing !== null) {
      this.again = true;
      return this.refreshing;
    }
    const now = performance.now();
    if (!force && this.known && now - this.lastRefreshAt < MIN_REFRESH_GAP_MS) {
      if (!this.again) {
        this.again = true;
        setTimeout(() => {
          this.again = false;
          void this.refresh(false);
        }, MIN_REFRESH_GAP_MS).unref();
      }
      return Promise.resolve();
    }
    this.again = false;
    this.refreshing = this.refreshOnce().finally(() => {
      this.refreshing = null;
      this.lastRefreshAt = performance.now();
      if (this.again && !this.closed) {
        this.again = false;
        void this.refresh(false);
      }
    });
    return this.refreshing;
  }

  private async refreshOnce(): Promise<void> {
    this.redirects.refreshes.inc();
    const candidates: Endpoint[] = [...this.masters];
    for (const s of this.cluster.endpoints) {
      const n = this.node(s);
      if (!candidates.includes(n)) candidates.push(n);
    }
    const errors: string[] = [];
    for (const ep of candidates) {
      if (this.closed) return;
      try {
        const reply = await this.ask(ep);
        this.apply(reply, ep);
        this.lastError = null;
        return;
      } catch (e) {
        errors.push(`${ep.address}: ${(e as Error).message}`);
      }
    }
    this.lastError = errors.length > 0 ? errors.join('; ') : 'no seed node';
    this.log.warn({ cluster: this.cluster.name, errors: this.lastError }, 'could not load the Redis Cluster slot map');
  }

  private ask(ep: Endpoint): Promise<RespValue> {
    return new Promise((resolve, reject) => {
      // The multiplexed link with id 0: the same connections requests use, no extra ones.
      this.links.get(ep, 0).send(CLUSTER_SLOTS_CMD, 0, CLUSTER_SLOTS_CMD.length, {
        onReply: (buf, start, end) => {
          try {
            resolve(parseReply(buf, start, end));
          } catch (e) {
            reject(e as Error);
          }
        },
        onError: (err) => reject(err),
      });
    });
  }

  /** Replaces the slot map with a CLUSTER SLOTS reply asked of `from`. */
  private apply(v: RespValue, from: Endpoint): void {
    if (v.type === 'error') throw new Error(v.value);
    if (v.type !== 'array') throw new Error(`unexpected CLUSTER SLOTS reply (${v.type})`);
    const masters: Endpoint[] = [];
    const owner = new Int32Array(CLUSTER_SLOTS).fill(-1);
    for (const range of v.value) {
      if (range.type !== 'array' || range.value.length < 3) continue;
      const [lo, hi, m] = range.value;
      if (lo?.type !== 'integer' || hi?.type !== 'integer' || m?.type !== 'array' || m.value.length < 2) continue;
      const h = m.value[0]!;
      const p = m.value[1]!;
      if (p.type !== 'integer') continue;
      let host = h.type === 'bulk' ? h.value.toString('latin1') : '';
      if (host === '' || host === '?') host = from.host;
      const ep = this.node(host, Number(p.value));
      let i = masters.indexOf(ep);
      if (i < 0) i = masters.push(ep) - 1;
      for (let s = Number(lo.value); s <= Number(hi.value) && s < CLUSTER_SLOTS; s++) owner[s] = i;
    }
    if (masters.length === 0) throw new Error('CLUSTER SLOTS listed no master (is the cluster created?)');
    const changed = !this.known || masters.length !== this.masters.length || masters.some((m, i) => m !== this.masters[i]) || owner.some((o, s) => o !== this.owner[s]);
    this.masters = masters;
    this.owner.set(owner);
    if (changed) this.log.info({ cluster: this.cluster.name, masters: masters.map((e) => e.address), first: !this.known }, 'Redis Cluster slot map loaded');
    this.known = true;
  }

  close(): void {
    this.closed = true;
    if (this.cluster.reports.get(this.reportKey) === this.report) this.cluster.reports.delete(this.reportKey);
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}

/**
 * One request on its way through the cluster: the sink its link answers,
 * which turns MOVED, ASK and TRYAGAIN into another send. Only requests to a
 * Redis Cluster make one.
 */
class ClusterRequest implements ReplySink {
  private redirects = 0;
  private retries = 0;

  constructor(
    private readonly topo: ClusterTopology,
    private readonly sessionId: number,
    private readonly frame: Buffer,
    private readonly start: number,
    private readonly end: number,
    /** The request's key slot; -1 for a keyless request. */
    private readonly slot: number,
    private readonly sink: ReplySink,
  ) {}

  sendTo(ep: Endpoint, asking: boolean): void {
    const link = this.topo.linkTo(ep, this.sessionId);
    if (asking) link.send(ASKING, 0, ASKING.length, IGNORE);
    link.send(this.frame, this.start, this.end, this);
  }

  onReply(buf: Buffer, start: number, end: number, type: number): void {
    if (type === RespType.Error) {
      const c = buf[start + 1];
      if (c === 77 /* M */ || c === 65 /* A */ || c === 84 /* T */) {
        const text = buf.toString('latin1', start + 1, end - 2);
        if (this.redirect(text)) return;
      }
    }
    this.sink.onReply(buf, start, end, type);
  }

  onError(err: ProxyError): void {
    this.topo.linkFailed();
    this.sink.onError(err);
  }

  /** Follows "MOVED slot host:port", "ASK slot host:port" or "TRYAGAIN ..."; false for any other error. */
  private redirect(text: string): boolean {
    if (text.startsWith('TRYAGAIN')) {
      if (++this.retries > TRYAGAIN_MAX) return false;
      this.topo.redirects.tryagain.inc();
      // Rare (multi-key requests while their slot migrates): one timer per such request is fine.
      setTimeout(() => {
        const ep = this.slot >= 0 ? this.topo.masterOf(this.slot) : this.topo.anyNode();
        if (ep === null) this.sink.onError(new ProxyError(ErrorCode.NoHealthyUpstream, `Redis Cluster '${this.topo.cluster.name}' has no known node`, { source: 'upstream' }));
        else this.sendTo(ep, false);
      }, TRYAGAIN_DELAY_MS);
      return true;
    }
    if (this.redirects >= this.topo.options.maxRedirects) return false;
    const r = parseRedirect(text);
    if (r === null) return false;
    this.redirects++;
    const ep = this.topo.redirected(r);
    this.sendTo(ep, !r.moved);
    return true;
  }
}
