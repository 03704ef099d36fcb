/**
 * Upstream Redis connections. A RedisLink is one TCP connection with a FIFO
 * of requests waiting for replies: Redis answers in order, so the n-th reply
 * belongs to the n-th request. Many client sessions share one link
 * (multiplexing, as twemproxy does); writes from all of them are coalesced and
 * flushed once per event-loop turn, which is what makes pipeline-1 traffic
 * cheap. A pinned link (MULTI, blocking commands, pub/sub, SELECT) serves one
 * session only and may deliver push messages that answer no request.
 */
import type { Socket } from 'node:net';
import { ErrorCode, ProxyError } from '../../errors';
import type { Cluster } from '../../routing/cluster';
import type { Endpoint } from '../../routing/endpoint';
import { connectEndpoint } from '../../routing/connect';
import { RespReplyDecoder, RespType, type RespProtocolError } from './codec';
import { RespWriter } from './resp-writer';

/** Whoever waits for one reply. Implemented by the session's request slots (no closure per request). */
export interface ReplySink {
  onReply(buf: Buffer, start: number, end: number, type: number): void;
  onError(err: ProxyError): void;
}

/** A FIFO that does not shift arrays: a ring of slots growing by doubling. */
class SinkQueue {
  private items: (ReplySink | undefined)[] = new Array(64);
  private head = 0;
  length = 0;

  push(s: ReplySink): void {
    if (this.length === this.items.length) {
      const bigger = new Array<ReplySink | undefined>(this.items.length * 2);
      for (let i = 0; i < this.length; i++) bigger[i] = this.items[(this.head + i) % this.items.length];
      this.items = bigger;
      this.head = 0;
    }
    this.items[(this.head + this.length) % this.items.length] = s;
    this.length++;
  }

  shift(): ReplySink | undefined {
    if (this.length === 0) return undefined;
    const s = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.length--;
    return s;
  }
}

export interface LinkOptions {
  connectTimeoutMs: number;
  /** Commands sent once connected, before any request (AUTH, SELECT); their replies are checked, not forwarded. */
  handshake?: Buffer[];
  /** Called with push frames (pub/sub messages) on a pinned link. */
  onPush?: (buf: Buffer, start: number, end: number) => void;
  /** Called once when the link can no longer be used. */
  onClose?: (link: RedisLink) => void;
  /** Called when the server refuses a handshake command (wrong AUTH ...), with its error text. */
  onSetupError?: (link: RedisLink, text: string) => void;
}

/** Links written to in this event-loop turn; each is listed once (its `queued` flag), so no hashing per request. */
let pendingFlush: Array<RedisLink | null> = [];
let pendingN = 0;
/** The other list: the two are used in turn and filled by index, so no array is allocated per turn. */
let flushSpare: Array<RedisLink | null> = [];
let flushScheduled = false;

/** One flush for every link written to in this event-loop turn. */
function flushAll(): void {
  flushScheduled = false;
  const list = pendingFlush;
  const n = pendingN;
  pendingFlush = flushSpare;
  pendingN = 0;
  flushSpare = list;
  for (let i = 0; i < n; i++) {
    const l = list[i]!;
    list[i] = null;
    l.queued = false;
    l.flush();
  }
}

export class RedisLink {
  private socket: Socket | null = null;
  private readonly waiting = new SinkQueue();
  private readonly out = new RespWriter(64 * 1024);
  private readonly decoder: RespReplyDecoder;
  private connected = false;
  private dead = false;
  /** Listed in pendingFlush for this turn. */
  queued = false;
  /** Handshake replies still to swallow. */
  private handshakeLeft: number;
  /** Requests written and not answered yet (for least-loaded choices and barriers). */
  get inflight(): number {
    return this.waiting.length;
  }

  constructor(
    readonly endpoint: Endpoint,
    readonly cluster: Cluster,
    private readonly opts: LinkOptions,
  ) {
    const hs = opts.handshake ?? [];
    this.handshakeLeft = hs.length;
    for (const c of hs) this.out.raw(c);
    this.decoder = new RespReplyDecoder({
      onReply: (buf, start, end, type) => this.onReply(buf, start, end, type),
      onError: (err: RespProtocolError) => this.fail(new ProxyError(ErrorCode.UpstreamReset, `upstream ${endpoint.address} sent an invalid reply: ${err.message}`, { source: 'upstream' })),
    });
    endpoint.cxActive++;
    cluster.cxActive++;
    connectEndpoint(endpoint, opts.connectTimeoutMs).then(
      (sock) => this.onConnect(sock),
      (err: ProxyError) => {
        cluster.reportConnectFailure(endpoint);
        this.fail(err);
      },
    );
  }

  get usable(): boolean {
    return !this.dead;
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
    sock.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    sock.on('error', (err: NodeJS.ErrnoException) =>
      this.fail(new ProxyError(ErrorCode.UpstreamReset, `upstream ${this.endpoint.address}: ${err.code ?? err.message}`, { source: 'upstream', cause: err })),
    );
    // The server closing its side ends the link: nothing more will be answered.
    sock.on('end', () => this.fail(new ProxyError(ErrorCode.UpstreamReset, `upstream ${this.endpoint.address} closed the connection`, { source: 'upstream' })));
    sock.on('close', () => this.fail(new ProxyError(ErrorCode.UpstreamReset, `upstream ${this.endpoint.address} closed the connection`, { source: 'upstream' })));
    if (this.out.length > 0) this.schedule();
  }

  /** Queues a request frame (copied) and the sink its reply goes to. */
  send(frame: Buffer, start: number, end: number, sink: ReplySink): void {
    if (this.dead) {
      sink.onError(new ProxyError(ErrorCode.UpstreamReset, `upstream ${this.endpoint.address} is not connected`, { source: 'upstream', retryable: true }));
      return;
    }
    this.out.raw(frame, start, end);
    this.waiting.push(sink);
    this.endpoint.rqTotal.value++;
    if (this.connected) this.schedule();
  }

  /** Queues a frame whose answers (if any) arrive as pushes: subscribed mode. */
  sendUnanswered(frame: Buffer, start: number, end: number): void {
    if (this.dead) return;
    this.out.raw(frame, start, end);
    if (this.connected) this.schedule();
  }

  private schedule(): void {
    if (this.queued) return;
    this.queued = true;
    pendingFlush[pendingN++] = this;
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }

  flush(): void {
    if (this.dead || !this.connected || this.out.length === 0) return;
    this.socket!.write(this.out.take());
  }

  private onReply(buf: Buffer, start: number, end: number, type: number): void {
    if (this.handshakeLeft > 0) {
      this.handshakeLeft--;
      if (type === RespType.Error || type === RespType.BulkError) {
        const text = buf.toString('latin1', start + 1, end - 2);
        this.opts.onSetupError?.(this, text);
        this.fail(new ProxyError(ErrorCode.UpstreamConnect, `upstream ${this.endpoint.address} refused the connection setup: ${text}`, { source: 'upstream' }));
      }
      return;
    }
    if (type === RespType.Push && this.opts.onPush) {
      this.opts.onPush(buf, start, end);
      return;
    }
    const sink = this.waiting.shift();
    if (sink === undefined) {
      // A reply nobody asked for (pub/sub message in RESP2 on a pinned link).
      if (this.opts.onPush) this.opts.onPush(buf, start, end);
      return;
    }
    this.cluster.reportResult(this.endpoint, true);
    sink.onReply(buf, start, end, type);
  }

  /** Fails every waiting request and closes. The link is not used again. */
  fail(err: ProxyError): void {
    if (this.dead) return;
    this.dead = true;
    // A dead link may stay listed until the turn's flush, which does nothing for it.
    this.decoder.destroy();
    this.endpoint.cxActive--;
    this.cluster.cxActive--;
    if (this.waiting.length > 0) {
      this.endpoint.rqError.value += this.waiting.length;
      // A link that broke under requests counts once for outlier detection (a failed connect is passive health's business).
      if (this.connected && err.code !== ErrorCode.Draining) this.cluster.reportResult(this.endpoint, false);
    }
    for (let s = this.waiting.shift(); s !== undefined; s = this.waiting.shift()) s.onError(err);
    this.socket?.destroy();
    this.opts.onClose?.(this);
  }

  /** Closes after the replies already asked for have arrived. */
  close(): void {
    if (this.dead) return;
    if (this.waiting.length === 0 || !this.socket) {
      this.fail(new ProxyError(ErrorCode.Draining, 'link closed', { source: 'internal' }));
      return;
    }
    this.flush();
    this.socket.end();
  }
}

/**
 * The shared links of one cluster: `perEndpoint` links to each endpoint.
 * A session always uses the same link for a given endpoint (chosen by its id),
 * so its requests to one server stay in order.
 */
export class SharedLinks {
  private readonly links = new Map<Endpoint, (RedisLink | null)[]>();
  private closed = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly perEndpoint: number,
    private readonly linkOptions: Omit<LinkOptions, 'onClose' | 'onPush'>,
  ) {}

  get(ep: Endpoint, sessionId: number): RedisLink {
    let slots = this.links.get(ep);
    if (slots === undefined) {
      slots = new Array<RedisLink | null>(this.perEndpoint).fill(null);
      this.links.set(ep, slots);
    }
    const i = sessionId % this.perEndpoint;
    let l = slots[i]!;
    if (l === null || !l.usable) {
      l = new RedisLink(ep, this.cluster, {
        ...this.linkOptions,
        onClose: (dead) => {
          if (slots![i] === dead) slots![i] = null;
        },
      });
      if (!this.closed) slots[i] = l;
    }
    return l;
  }

  /** Closes every link once its in-flight replies are in. */
  close(): void {
    this.closed = true;
    for (const slots of this.links.values()) for (const l of slots) l?.close();
    this.links.clear();
  }
}
