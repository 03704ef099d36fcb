/**
 * Upstream Bolt connections. Bolt carries a request id in every frame and a
 * provider may answer in any order, so one connection serves many clients at
 * once: each request goes out under an id of the link's own (clients pick
 * theirs independently, sofa-rpc-node from one per-process counter, so they
 * collide), and the reply is matched back through the link's id map.
 *
 * A few links per endpoint (`perEndpoint`), chosen round robin; writes of one
 * event-loop turn go out in one batch (one send(2) when nothing is queued). Idle links get a heartbeat
 * (cmdcode 0) every `heartbeatMs`; a link whose heartbeat is not answered
 * within the next period is closed. A link that fails fails every call
 * waiting on it; a call that times out leaves its id behind so a late reply
 * is dropped.
 */
import type { Socket } from 'node:net';
import { ErrorCode, ProxyError } from '../../errors';
import type { Cluster } from '../../routing/cluster';
import type { Endpoint } from '../../routing/endpoint';
import { connectEndpoint } from '../../routing/connect';
import type { Logger } from '../../logger';
import { SharedBufferReader } from '../../util/shared-read';
import { directFd, directWriteBatch, quickAck } from '../../util/direct-write';
import { turnNow } from '../../util/turn-clock';
import { BoltCmd, BoltDecoder, BoltType, copyWithId, heartbeatAck, heartbeatRequest, shapeOf, type BoltCodecError, type BoltFrame } from './codec';

/** Whoever waits for one reply. Implemented by per-request objects (no closure per request). */
export interface BoltReplySink {
  onReply(frame: BoltFrame): void;
  onError(err: ProxyError): void;
}

const MAX_ID = 0x7fffffff;

const toFlush = new Set<BoltLink>();
let flushQueued = false;
function flushLinks(): void {
  flushQueued = false;
  for (const l of toFlush) l.flush();
  toFlush.clear();
}

export class BoltLink {
  private socket: Socket | null = null;
  private readonly decoder: BoltDecoder;
  private readonly pending = new Map<number, BoltReplySink>();
  private out: Buffer[] = [];
  /** Reads into the shared buffer (util/shared-read.ts); writes with one send(2) when nothing is queued (fd, util/direct-write.ts). */
  private readonly reader = new SharedBufferReader();
  private fd = -1;
  private nextId = 1;
  private connected = false;
  dead = false;
  /** performance.now() of the last byte read or written. */
  lastActive = performance.now();
  /** Id of the unanswered heartbeat (0: none) and when it went out. */
  private hbId = 0;
  private hbAt = 0;

  constructor(
    readonly endpoint: Endpoint,
    readonly cluster: Cluster,
    connectTimeoutMs: number,
    maxFrame: number,
    private readonly log: Logger,
    private readonly quickAck: boolean,
    private readonly onClose: (link: BoltLink) => void,
  ) {
    this.decoder = new BoltDecoder({ onFrame: (f) => this.onFrame(f), onError: (e) => this.onBadFrame(e) }, maxFrame);
    endpoint.cxActive++;
    cluster.cxActive++;
    connectEndpoint(endpoint, connectTimeoutMs, this.reader.onread).then(
      (s) => this.onConnect(s),
      (err: ProxyError) => {
        cluster.reportConnectFailure(endpoint);
        this.fail(err);
      },
    );
  }

  get inflight(): number {
    return this.pending.size;
  }

  private onConnect(sock: Socket): void {
    if (this.dead) {
      sock.destroy();
      return;
    }
    this.socket = sock;
    this.connected = true;
    this.endpoint.cxTotal.inc();
    this.cluster.reportConnectSuccess(this.endpoint);
    sock.on('data', (chunk: Buffer) => {
      this.lastActive = turnNow();
      // Acknowledge now: a provider with Nagle on holds its next small reply until this read is acknowledged.
      if (this.quickAck) quickAck(this.fd);
      this.decoder.push(chunk);
    });
    this.reader.socket = sock;
    this.reader.bindSink();
    this.fd = directFd(sock);
    sock.on('error', (err: NodeJS.ErrnoException) =>
      this.fail(new ProxyError(ErrorCode.UpstreamReset, `provider ${this.endpoint.address}: ${err.code ?? err.message}`, { source: 'upstream', cause: err })),
    );
    sock.on('end', () => this.fail(new ProxyError(ErrorCode.UpstreamReset, `provider ${this.endpoint.address} closed the connection`, { source: 'upstream' })));
    sock.on('close', () => this.fail(new ProxyError(ErrorCode.UpstreamReset, `provider ${this.endpoint.address} closed the connection`, { source: 'upstream' })));
    if (this.out.length > 0) this.schedule();
  }

  private takeId(): number {
    let id = this.nextId;
    while (this.pending.has(id) || id === this.hbId) id = id >= MAX_ID ? 1 : id + 1;
    this.nextId = id >= MAX_ID ? 1 : id + 1;
    return id;
  }

  /**
   * Queues a copy of a request frame under a fresh id; sink null for one-way
   * calls (nothing will answer). Returns the id (to cancel a timed-out call), 0 when the link is down.
   */
  send(frame: BoltFrame, sink: BoltReplySink | null): number {
    if (this.dead) {
      sink?.onError(new ProxyError(ErrorCode.UpstreamConnect, `provider ${this.endpoint.address} is not connected`, { source: 'upstream', retryable: true }));
      return 0;
    }
    const id = this.takeId();
    this.out.push(copyWithId(frame, id));
    if (sink !== null) this.pending.set(id, sink);
    this.endpoint.rqTotal.value++;
    if (this.connected) this.schedule();
    return id;
  }

  /** Forgets a call (timed out or abandoned): its reply, if it ever comes, is dropped. */
  forget(id: number): void {
    this.pending.delete(id);
  }

  private schedule(): void {
    toFlush.add(this);
    if (!flushQueued) {
      flushQueued = true;
      setImmediate(flushLinks);
    }
  }

  flush(): void {
    const out = this.out;
    if (this.dead || !this.connected || out.length === 0) return;
    this.out = [];
    this.lastActive = turnNow();
    directWriteBatch(this.socket!, this.fd, out);
  }

  private onFrame(f: BoltFrame): void {
    if (f.type !== BoltType.Response) {
      // A provider's own heartbeat: answer it; anything else from a provider is not ours to serve.
      if (f.cmd === BoltCmd.Heartbeat && this.socket !== null) this.socket.write(heartbeatAck(shapeOf(f), f.requestId));
      return;
    }
    const id = f.requestId;
    if (f.cmd === BoltCmd.Heartbeat) {
      if (id === this.hbId) this.hbId = 0;
      return;
    }
    const sink = this.pending.get(id);
    if (sink === undefined) return; // timed out or one-way: nobody waits
    this.pending.delete(id);
    this.cluster.reportResult(this.endpoint, true);
    sink.onReply(f);
  }

  private onBadFrame(e: BoltCodecError): void {
    this.log.warn({ endpoint: this.endpoint.address, reason: e.message }, 'provider sent bytes that are not Bolt; closing the connection');
    this.fail(new ProxyError(ErrorCode.UpstreamReset, `provider ${this.endpoint.address} sent an invalid frame: ${e.message}`, { source: 'upstream' }));
  }

  /**
   * Called by the pool's timer: a heartbeat after `idleMs` without traffic;
   * the link is closed when the previous heartbeat is still unanswered.
   */
  keepAlive(now: number, idleMs: number): void {
    if (this.dead || !this.connected) return;
    if (this.hbId !== 0) {
      if (now - this.hbAt >= idleMs) {
        this.fail(new ProxyError(ErrorCode.UpstreamReset, `provider ${this.endpoint.address} did not answer a heartbeat within ${Math.round(now - this.hbAt)} ms`, { source: 'upstream' }));
      }
      return;
    }
    if (now - this.lastActive < idleMs) return;
    this.hbId = this.takeId();
    this.hbAt = now;
    this.out.push(heartbeatRequest(this.hbId));
    this.schedule();
  }

  /** Fails every waiting call and closes. The link is not used again. */
  fail(err: ProxyError): void {
    if (this.dead) return;
    this.dead = true;
    toFlush.delete(this);
    this.decoder.destroy();
    this.endpoint.cxActive--;
    this.cluster.cxActive--;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    this.out = [];
    if (waiting.length > 0) {
      this.endpoint.rqError.value += waiting.length;
      if (this.connected && err.code !== ErrorCode.Draining) this.cluster.reportResult(this.endpoint, false);
    }
    this.socket?.destroy();
    this.onClose(this);
    for (const s of waiting) s.onError(err);
  }

  /** Closes once the calls already sent are answered (or time out). */
  close(): void {
    if (this.dead) return;
    if (this.pending.size === 0 || this.socket === null) {
      this.fail(new ProxyError(ErrorCode.Draining, 'link closed', { source: 'internal' }));
      return;
    }
    this.flush();
    const check = setInterval(() => {
      if (this.dead || this.pending.size === 0) {
        clearInterval(check);
        this.fail(new ProxyError(ErrorCode.Draining, 'link closed', { source: 'internal' }));
      }
    }, 100);
    check.unref();
  }
}

export interface BoltPoolOptions {
  perEndpoint: number;
  connectTimeoutMs: number;
  maxFrame: number;
  /** Heartbeat idle links after this long; 0: never. */
  heartbeatMs: number;
  /** TCP_QUICKACK after each read (providers that write with Nagle's algorithm on). */
  quickAck?: boolean;
}

/** The shared links of one cluster: `perEndpoint` links to each endpoint, used round robin. */
export class BoltPool {
  private readonly links = new Map<Endpoint, (BoltLink | null)[]>();
  private readonly rr = new Map<Endpoint, number>();
  private readonly timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    readonly cluster: Cluster,
    private readonly opts: BoltPoolOptions,
    private readonly log: Logger,
  ) {
    if (opts.heartbeatMs > 0) {
      this.timer = setInterval(() => this.keepAlive(), Math.max(50, Math.floor(opts.heartbeatMs / 2)));
      this.timer.unref();
    }
  }

  link(ep: Endpoint): BoltLink {
    let slots = this.links.get(ep);
    if (slots === undefined) {
      slots = new Array<BoltLink | null>(this.opts.perEndpoint).fill(null);
      this.links.set(ep, slots);
    }
    const n = this.rr.get(ep) ?? 0;
    this.rr.set(ep, n + 1);
    const i = n % slots.length;
    let l = slots[i]!;
    if (l === null || l.dead) {
      const s = slots;
      l = new BoltLink(ep, this.cluster, this.opts.connectTimeoutMs, this.opts.maxFrame, this.log, this.opts.quickAck === true, (dead) => {
        if (s[i] === dead) s[i] = null;
      });
      if (!this.closed) slots[i] = l;
    }
    return l;
  }

  private keepAlive(): void {
    const now = performance.now();
    const current = this.cluster.endpoints;
    for (const [ep, slots] of this.links) {
      // A provider discovery no longer lists: its links finish what they carry, then close.
      if (!current.includes(ep)) {
        for (const l of slots) l?.close();
        this.links.delete(ep);
        this.rr.delete(ep);
        continue;
      }
      for (const l of slots) l?.keepAlive(now, this.opts.heartbeatMs);
    }
  }

  /** Links open now (for tests and /clusters). */
  get size(): number {
    let n = 0;
    for (const slots of this.links.values()) for (const l of slots) if (l !== null && !l.dead) n++;
    return n;
  }

  /** Closes every link once its calls are answered. */
  close(): void {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    for (const slots of this.links.values()) for (const l of slots) l?.close();
    this.links.clear();
  }
}
