/**
 * One client connection of the Redis listener.
 *
 * Requests are decoded as they arrive; each gets a Slot in the session's
 * FIFO, so replies go back in request order whichever upstream answers first.
 * A request is served locally (PING, HELLO, CLIENT SETNAME ...), by an
 * in-process component (memory), or sent to an upstream link: the shared
 * multiplexed link of its endpoint, or the session's own dedicated link while
 * it needs connection state on the server (MULTI, WATCH, SELECT, blocking
 * commands, pub/sub). Switching between shared and dedicated waits until the
 * requests in flight on the other side are answered, so a client's commands
 * run on the server in the order it sent them.
 * Commands whose keys live on different shards are split (MGET, MSET, DEL,
 * UNLINK, EXISTS, TOUCH) and their replies merged; other cross-shard commands
 * are refused with -CROSSSLOT.
 */
import type { Socket } from 'node:net';
import { Exchange, type AttributeSource } from '../../exchange';
import { ErrorCode, ProxyError, toProxyError } from '../../errors';
import type { Dispatch, ResultHandler, Verdict } from '../../filter';
import type { Cluster } from '../../routing/cluster';
import type { Endpoint } from '../../routing/endpoint';
import { isRedisComponent, type RedisComponent } from '../../components/redis-component';
import { RespCommand, RespRequestDecoder, RespType, type RespProtocolError } from './codec';
import { RespWriter, RESP_OK, RESP_PONG, type RespProtocolVersion } from './resp-writer';
import { commandInfo, extractKeys, resolveCommand } from './commands';
import type { AclUser } from './acl';
import { parseReply, readAggregateHeader } from './resp-value';
import { resp3Conversion, resp3Reply, Resp3Transaction, type Resp3Conv } from './resp3-convert';
import { RedisLink, type ReplySink } from './upstream';
import type { CommandStats, RedisListener, Target } from './listener';
import type { RedisProxyListener } from './listener-extras';
import { ASKING, IGNORE, parseRedirect, type ClusterTopology } from './cluster-topology';
import { keySlot } from '../../routing/redis-slot';
import { mergeInfo } from './info';
import { KeyRewriter, mapReplyKeys } from './prefix';
import { directFd, directWrite } from '../../util/direct-write';
import { idleSweeper, markingReader, type IdleSweeper } from '../../util/idle-sweep';
import { turnNow } from '../../util/turn-clock';

const CROSSSLOT = Buffer.from("-CROSSSLOT Keys in request don't hash to the same slot\r\n");
const NULL_BULK2 = Buffer.from('$-1\r\n');
const NULL3 = Buffer.from('_\r\n');

let nextSessionId = 1;
/** Encoding scratch for every session; views it hands out are never overwritten (resp-writer.ts). */
const SESSION_WRITER = new RespWriter(64 * 1024);

/**
 * Sessions with replies to write: one setImmediate per event-loop turn for
 * all of them. Two lists used in turn, filled by index: no array is
 * allocated per turn.
 */
let toFlush: Array<RedisSession | null> = [];
let toFlushN = 0;
let flushSpare: Array<RedisSession | null> = [];
let flushQueued = false;
function flushSessions(): void {
  flushQueued = false;
  const list = toFlush;
  const n = toFlushN;
  toFlush = flushSpare;
  toFlushN = 0;
  flushSpare = list;
  for (let i = 0; i < n; i++) {
    const s = list[i]!;
    list[i] = null;
    s.flush();
  }
}

interface Place {
  cluster: Cluster;
  /** null when a component serves the cluster. */
  endpoint: Endpoint | null;
}

/** A place in the reply order. Filled once; written when everything before it is written. */
export class Slot implements ReplySink {
  next: Slot | null = null;
  data: Buffer | null = null;
  /** Where it was sent: 0 nowhere (local), 1 a shared link, 2 the dedicated link. */
  side: 0 | 1 | 2 = 0;
  /** The exchange the filter chain saw, completed (access log, stats) when the reply is in. */
  ex: Exchange | null = null;
  /** Per-command counters and latency, taken when the reply is in; null for pushes. */
  stats: CommandStats | null = null;
  t0 = 0;
  /** Prefix routes that strip or add: maps the key names in the reply back to the client's (rare commands only). */
  unmap: ((data: Buffer) => Buffer) | null = null;
  /** RESP3 clients: how the RESP2 reply converts (resp3-convert.ts); null when only nulls can differ. */
  conv: Resp3Conv | null = null;
  /** Called with the raw reply instead of storing it (split requests merge their parts). */
  constructor(
    readonly session: RedisSession,
    readonly command: string,
  ) {}

  onReply(buf: Buffer, start: number, end: number, type: number): void {
    this.session.inflightDone(this);
    this.session.fill(this, this.session.adaptReply(this.conv, buf, start, end, type));
  }

  onError(err: ProxyError): void {
    this.session.inflightDone(this);
    this.session.fill(this, this.session.errorReply(err));
  }
}

/** One part of a split request; the parent slot is filled when every part is in. */
class PartSink implements ReplySink {
  reply: Buffer | null = null;
  constructor(
    private readonly merge: SplitMerge,
    readonly keyIndexes: number[],
  ) {}
  onReply(buf: Buffer, start: number, end: number): void {
    this.reply = buf.subarray(start, end);
    this.merge.partDone();
  }
  onError(err: ProxyError): void {
    this.reply = this.merge.session.errorReply(err);
    this.merge.partDone();
  }
}

/**
 * How the replies of a request split over shards become one:
 * mget: values back in key order; sum: integers added (DEL, EXISTS, DBSIZE);
 * ok: +OK when all succeeded (MSET, FLUSHALL); concat: arrays joined (KEYS);
 * first: the first non-null reply (SCRIPT LOAD, RANDOMKEY); and: element-wise AND of 0/1 arrays (SCRIPT EXISTS);
 * info: INFO sections merged (info.ts).
 */
type MergeKind = 'mget' | 'sum' | 'ok' | 'concat' | 'first' | 'and' | 'info';

class SplitMerge {
  parts: PartSink[] = [];
  private left = 0;
  constructor(
    readonly session: RedisSession,
    private readonly slot: Slot,
    private readonly kind: MergeKind,
    private readonly keyCount: number,
  ) {}

  add(keyIndexes: number[]): PartSink {
    const p = new PartSink(this, keyIndexes);
    this.parts.push(p);
    this.left++;
    return p;
  }

  partDone(): void {
    if (--this.left > 0) return;
    this.session.inflightDone(this.slot);
    const m = this.merged();
    // Merged from RESP2 parts: a RESP3 client gets it converted like a single reply (INFO verbatim, RANDOMKEY null ...).
    this.session.fill(this.slot, this.session.adaptReply(this.slot.conv, m, 0, m.length, m[0]!));
  }

  private merged(): Buffer {
    // INFO answers with what the live shards say (a client's ready check must not fail for one shard).
    if (this.kind === 'info') return this.session.mergedInfo(this.parts.map((p) => p.reply!));
    for (const p of this.parts) if (p.reply![0] === RespType.Error) return p.reply!;
    if (this.kind === 'ok') return RESP_OK;
    if (this.kind === 'first') {
      for (const p of this.parts) if (!isNullReply(p.reply!)) return p.reply!;
      return this.parts[0]!.reply!;
    }
    if (this.kind === 'concat') {
      let n = 0;
      const bodies: Buffer[] = [];
      for (const p of this.parts) {
        const h = readAggregateHeader(p.reply!);
        if (h === null || h.count < 0) continue;
        n += h.count;
        bodies.push(p.reply!.subarray(h.bodyStart));
      }
      return Buffer.concat([Buffer.from(`*${n}\r\n`), ...bodies]);
    }
    if (this.kind === 'and') {
      let acc: boolean[] | null = null;
      for (const p of this.parts) {
        const v = parseReply(p.reply!);
        if (v.type !== 'array') return p.reply!;
        const bits = v.value.map((e) => e.type === 'integer' && Number(e.value) === 1);
        acc = acc === null ? bits : acc.map((b, i) => b && (bits[i] ?? false));
      }
      return Buffer.from(`*${acc!.length}\r\n${acc!.map((b) => (b ? ':1\r\n' : ':0\r\n')).join('')}`);
    }
    if (this.kind === 'sum') {
      let n = 0;
      for (const p of this.parts) n += Number(p.reply!.toString('latin1', 1, p.reply!.length - 2));
      return Buffer.from(`:${n}\r\n`);
    }
    // MGET: put every part's elements back at their keys' positions.
    const values: Buffer[] = new Array(this.keyCount);
    for (const p of this.parts) {
      const v = parseReply(p.reply!);
      if (v.type !== 'array' || v.value.length !== p.keyIndexes.length) return this.session.errorReply(new ProxyError(ErrorCode.UpstreamReset, 'unexpected MGET reply from a shard', { source: 'upstream' }));
      v.value.forEach((e, i) => {
        values[p.keyIndexes[i]! - 1] = e.type === 'bulk' ? Buffer.from(`$${e.value.length}\r\n${e.value.toString('latin1')}\r\n`, 'latin1') : this.session.nullBulk();
      });
    }
    return Buffer.concat([Buffer.from(`*${this.keyCount}\r\n`), ...values]);
  }
}

/** Redis Cluster, dedicated link: the reply of a pinned command, MOVED and ASK followed (RedisSession.repin). */
class PinnedRedirect implements ReplySink {
  constructor(
    readonly session: RedisSession,
    readonly topo: ClusterTopology,
    readonly cmd: RespCommand,
    readonly slot: Slot,
    readonly redirects: number,
  ) {}

  onReply(buf: Buffer, start: number, end: number, type: number): void {
    if (type === RespType.Error && this.redirects < this.topo.options.maxRedirects) {
      const r = parseRedirect(buf.toString('latin1', start + 1, end - 2));
      if (r !== null && this.session.repin(this, this.topo.redirected(r), !r.moved)) return;
    }
    this.slot.onReply(buf, start, end, type);
  }

  onError(err: ProxyError): void {
    this.topo.linkFailed();
    this.slot.onError(err);
  }
}

export class RedisSession {
  readonly id = nextSessionId++;
  private readonly decoder: RespRequestDecoder;
  private head: Slot | null = null;
  private tail: Slot | null = null;
  /** Replies to write this turn: out[0, outN), reused (filled by index, never truncated). */
  private out: Array<Buffer | null> = [];
  private outN = 0;
  private flushScheduled = false;
  /** Requests without their reply written yet. */
  private pending = 0;
  private writeBlocked = false;
  private closing = false;
  /** The client socket's descriptor for direct writes (util/direct-write.ts); -2: not read yet, -1: socket.write only. */
  private fd = -2;
  /** Idle timeout (util/idle-sweep.ts): the sweeper, and its tick at the last read or write. */
  private readonly sweeper: IdleSweeper | null;
  idleMark = 0;
  resp: RespProtocolVersion = 2;
  db = 0;
  name: Buffer | null = null;
  /** The session's own upstream link, when it needs server-side connection state. */
  private dedicated: RedisLink | null = null;
  /** Why the dedicated link is in use; shared links are used when none is set. */
  private inMulti = false;
  private watching = false;
  private subscribed = false;
  /** Requests in flight on shared links / on the dedicated link. */
  private inflightShared = 0;
  private inflightDedicated = 0;
  /** Commands held back until the other side's requests are answered. */
  private deferred: { cmd: RespCommand; slot: Slot; dedicated: boolean }[] = [];
  /** Non-sharded clusters: the endpoint this session sticks to. */
  private readonly sticky = new Map<Cluster, Endpoint>();
  /** Shared by all sessions (every use writes and takes synchronously): an idle connection holds no encoding buffer. */
  private readonly writer = SESSION_WRITER;
  /** RESP3 clients: converters of the commands queued since MULTI, for EXEC's reply. */
  private readonly r3tx = new Resp3Transaction();
  private readonly keyBuf: number[] = [];
  /** The authenticated user, when the listener has users. */
  private user: AclUser | null = null;
  /** A command of the open transaction was refused here: EXEC must abort it. */
  private multiDenied = false;
  /** The around-policies composed around redisTerminal (the chain caches it per generation). */
  private policyDispatch: Dispatch<number> | null = null;
  private peerAddress: string | undefined = undefined;
  private peerPort: number | undefined = undefined;
  /** Redis Cluster slot maps by cluster (null: the listener has none), read once per session. */
  private readonly rc: Map<Cluster, ClusterTopology> | null;
  /** Redis Cluster: MULTI answered here, not sent yet (it goes to the node of the first key). */
  private multiPending = false;
  /** Redis Cluster: the node the dedicated link is (to be) opened to. */
  private pinNode: Endpoint | null = null;
  /** Prefix routes that strip or add (null: none), read once per session. */
  private readonly kr: KeyRewriter | null;
  /** The last command rewritten by prefix routes, and the cluster of each of its keys' routes. */
  private rwCmd: RespCommand | null = null;
  private rwOrig: RespCommand | null = null;
  private rwClusters: Map<number, Cluster> | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly l: RedisListener,
  ) {
    this.rc = (l as Partial<RedisProxyListener>).topologies ?? null;
    this.kr = (l as Partial<RedisProxyListener>).keyRewriter ?? null;
    this.decoder = new RespRequestDecoder(
      { onCommand: (cmd) => this.onCommand(cmd), onError: (err) => this.onProtocolError(err) },
      { maxBulkLength: l.options.maxBulkLength, unauthenticated: l.users !== null },
    );
    this.sweeper = l.idleTimeoutMs > 0 ? idleSweeper(l.idleTimeoutMs) : null;
    socket.on('data', markingReader(this.sweeper, this, (chunk) => this.decoder.push(chunk)));
    socket.on('error', () => socket.destroy());
    // The client half-closed: answer what it sent, then close our side (the listener allows half-open sockets).
    socket.on('end', () => {
      this.closing = true;
      if (this.head === null && !this.flushScheduled) this.socket.end();
    });
    socket.on('close', () => this.onClose());
  }

  // --- reply ordering ------------------------------------------------------

  private newSlot(command: string): Slot {
    const s = new Slot(this, command);
    // Backpressure: a client that pipelines faster than upstreams answer stops being read.
    if (++this.pending === MAX_PENDING) this.socket.pause();
    if (this.tail === null) this.head = this.tail = s;
    else {
      this.tail.next = s;
      this.tail = s;
    }
    return s;
  }

  fill(slot: Slot, data: Buffer): void {
    const unmap = slot.unmap;
    if (unmap !== null) {
      slot.unmap = null;
      data = unmap(data);
    }
    slot.data = data;
    const st = slot.stats;
    if (st !== null) {
      slot.stats = null;
      st.count.value++;
      if (data[0] === RespType.Error) st.errors.value++;
      st.latency.observe((turnNow() - slot.t0) / 1000);
    }
    const ex = slot.ex;
    if (ex !== null) {
      slot.ex = null;
      ex.replyBytes = data.length;
      if (ex.error === null && data[0] === RespType.Error) ex.info['reply_error'] = data.toString('latin1', 1, Math.min(data.length - 2, 120));
      this.l.chain.complete(ex);
    }
    if (slot !== this.head) return;
    let s: Slot | null = slot;
    while (s !== null && s.data !== null) {
      this.out[this.outN++] = s.data;
      s = s.next;
      if (--this.pending === RESUME_PENDING && !this.closing && !this.writeBlocked) this.socket.resume();
    }
    this.head = s;
    if (s === null) this.tail = null;
    this.scheduleFlush();
  }

  /** Writes that answer no request (pub/sub messages), in order with the rest. */
  private push(data: Buffer): void {
    if (this.head !== null) {
      // Keep order: a message arriving while replies are pending goes after them.
      const s = this.newSlot('');
      this.fill(s, data);
      return;
    }
    this.out[this.outN++] = data;
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    toFlush[toFlushN++] = this;
    if (!flushQueued) {
      flushQueued = true;
      setImmediate(flushSessions);
    }
  }

  flush(): void {
    this.flushScheduled = false;
    const n = this.outN;
    if (n === 0 || this.socket.destroyed) return;
    this.outN = 0;
    const out = this.out;
    let data = out[0]!;
    out[0] = null;
    if (n > 1) {
      let len = data.length;
      for (let i = 1; i < n; i++) len += out[i]!.length;
      const joined = Buffer.allocUnsafe(len);
      let at = data.copy(joined, 0);
      for (let i = 1; i < n; i++) {
        at += out[i]!.copy(joined, at);
        out[i] = null;
      }
      data = joined;
      // A burst of pipelined replies: do not keep its long list for an idle connection.
      if (n > 64) this.out = [];
    }
    if (this.sweeper !== null) this.idleMark = this.sweeper.tick;
    if (this.fd === -2) this.fd = directFd(this.socket);
    const ok = directWrite(this.socket, this.fd, data);
    if (!ok && !this.writeBlocked) {
      // A client that does not read its replies stops being read too.
      this.writeBlocked = true;
      this.socket.pause();
      this.socket.once('drain', () => {
        this.writeBlocked = false;
        if (!this.closing && this.pending < MAX_PENDING) this.socket.resume();
      });
    }
    if (this.closing && this.head === null) this.socket.end();
  }

  // --- replies -------------------------------------------------------------

  nullBulk(): Buffer {
    return this.resp === 3 ? NULL3 : NULL_BULK2;
  }

  errorReply(err: ProxyError): Buffer {
    return this.l.errorReply(err);
  }

  /** Upstreams speak RESP2; a RESP3 client gets nulls, maps, sets and doubles in RESP3 form. */
  adaptReply(conv: Resp3Conv | null, buf: Buffer, start: number, end: number, type: number): Buffer {
    if (this.resp === 2) return buf.subarray(start, end);
    return resp3Reply(conv, buf, start, end, type, this.writer);
  }

  /** INFO over shards: one reply, sections merged (info.ts). */
  mergedInfo(replies: Buffer[]): Buffer {
    return mergeInfo(replies, { listener: this.l.name, port: this.socket.localPort ?? 0 });
  }

  private local(slot: Slot, data: Buffer): void {
    this.fill(slot, data);
  }

  private err(slot: Slot, text: string): void {
    // As redis' addReplyErrorFormat: CR and LF from client bytes (an inline "a\r\nb" argument) become spaces.
    this.fill(slot, Buffer.from(`-${CRLF_IN_TEXT.test(text) ? text.replace(CRLF_ALL, ' ') : text}\r\n`));
  }

  // --- requests --------------------------------------------------------------

  private onCommand(cmd: RespCommand): void {
    const name = cmd.name;
    this.l.stats.commands.inc();
    const slot = this.newSlot(name);
    slot.stats = this.l.commandStats(name);
    slot.t0 = turnNow();
    if (this.deferred.length > 0) {
      this.deferred.push({ cmd: copyCommand(cmd), slot, dedicated: false });
      return;
    }
    this.dispatch(cmd, slot);
  }

  private dispatch(cmd: RespCommand, slot: Slot): void {
    const name = cmd.name;
    if (this.resp === 3) slot.conv = resp3Conversion(cmd, this.r3tx);
    if (this.l.users !== null && this.access(cmd, slot)) return;
    // As redis 7: a subscribed RESP3 client may run any command; RESP2 only these.
    if (this.subscribed && this.resp === 2 && !SUBSCRIBED_OK.has(name)) {
      this.err(slot, `ERR Can't execute '${name.toLowerCase()}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`);
      return;
    }
    switch (name) {
      case 'PING':
        if ((this.subscribed && this.resp === 2) || this.inMulti) break;
        if (cmd.argc === 1) return this.local(slot, RESP_PONG);
        if (cmd.argc === 2) return this.local(slot, bulk(cmd.arg(1)));
        return this.err(slot, "ERR wrong number of arguments for 'ping' command");
      case 'QUIT':
        this.closing = true;
        this.socket.pause();
        return this.local(slot, RESP_OK);
      case 'HELLO':
        return this.hello(cmd, slot);
      case 'CLIENT':
        if (this.client(cmd, slot)) return;
        break;
      case 'SELECT':
        return this.select(cmd, slot);
      case 'AUTH':
        if (cmd.argc < 2) return this.err(slot, "ERR wrong number of arguments for 'auth' command");
        return this.err(slot, 'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?');
      case 'COMMAND':
        if (cmd.argc === 2 && cmd.argEquals(1, 'COUNT')) return this.local(slot, Buffer.from(`:${this.l.commandCount}\r\n`));
        break;
      case 'RESET':
        return this.reset(slot);
    }
    const info = commandInfo(name);
    // As redis' rejectCommand: an unknown command or a wrong arity inside MULTI dooms the transaction.
    if ((info === undefined || !info.arityOk(cmd.argc)) && this.inMulti) this.multiDenied = true;
    if (info === undefined) {
      return this.err(slot, `ERR unknown command '${cmd.argString(0)}', with args beginning with: ${argsPreview(cmd)}`);
    }
    if (!info.arityOk(cmd.argc)) return this.err(slot, `ERR wrong number of arguments for '${name.toLowerCase()}' command`);

    // extractKeys sets the length itself (clearing it here would drop the array's store every request).
    const keys = this.keyBuf;
    extractKeys(cmd, keys);
    let target: Target | null;
    try {
      target = this.route(cmd, keys, slot, info.readonly);
    } catch (e) {
      this.fill(slot, this.errorReply(toProxyError(e)));
      return;
    }
    if (target === null) return; // answered (rejected by a filter, or pending an async filter)
    this.forward(cmd, slot, keys, target);
  }

  /**
   * With users configured: AUTH, then NOAUTH before it and NOPERM for what the
   * user's rules deny, in redis' order (unknown command and arity errors come
   * first; no_auth commands such as HELLO, QUIT, RESET bypass both checks).
   * Returns true when the request was answered.
   */
  private access(cmd: RespCommand, slot: Slot): boolean {
    const info = commandInfo(cmd.name);
    if (info === undefined || !info.arityOk(cmd.argc)) return false;
    if (info.noAuth) {
      if (cmd.name !== 'AUTH') return false;
      this.auth(cmd, slot);
      return true;
    }
    const user = this.user;
    if (user === null) {
      this.refuse(cmd, slot, 'NOAUTH Authentication required.');
      return true;
    }
    const denied = user.denied(info, cmd);
    if (denied === null) return false;
    this.l.stats.countError(ErrorCode.Forbidden);
    this.refuse(cmd, slot, `NOPERM this user has no permissions to run the '${denied}' command`);
    return true;
  }

  /** As redis' rejectCommand: a refused command inside MULTI dooms the transaction; a refused EXEC discards it. */
  private refuse(cmd: RespCommand, slot: Slot, text: string): void {
    if (cmd.name === 'EXEC') {
      if (this.inMulti) this.discardUpstream();
      return this.err(slot, `EXECABORT Transaction discarded because of: ${text}`);
    }
    if (this.inMulti) this.multiDenied = true;
    this.err(slot, text);
  }

  /** Ends the transaction on the dedicated link; its reply answers nobody. */
  private discardUpstream(): void {
    this.inMulti = false;
    this.watching = false;
    this.multiDenied = false;
    const link = this.dedicated;
    if (link === null || !link.usable) return;
    this.inflightDedicated++;
    const discard = new Slot(this, 'DISCARD');
    discard.side = 2;
    link.send(DISCARD, 0, DISCARD.length, discard);
  }

  /** AUTH password | AUTH username password. */
  private auth(cmd: RespCommand, slot: Slot): void {
    if (cmd.argc > 3) return this.err(slot, 'ERR syntax error');
    const u = this.login(cmd.argc === 2 ? 'default' : cmd.arg(1), cmd.arg(cmd.argc - 1));
    if (u === null) return this.err(slot, WRONGPASS);
    this.local(slot, RESP_OK);
  }

  /** Checks credentials; on success the session runs as that user. Passwords are never logged. */
  private login(name: Buffer | string, password: Buffer): AclUser | null {
    const u = this.l.users!.authenticate(name, password);
    if (u === null) {
      this.l.authFailures.inc();
      this.l.log.debug({ client: this.socket.remoteAddress, user: name.toString().slice(0, 64) }, 'redis AUTH refused');
      return null;
    }
    this.user = u;
    this.decoder.unauthenticated = false;
    return u;
  }

  /** Chooses the cluster: prefix routes on the first key, else the filter chain's router. */
  private route(cmd: RespCommand, keys: number[], slot: Slot, readonly: boolean): Target | null {
    const l = this.l;
    const fixed = l.fixedTarget(cmd, keys);
    // Prefix routes choose the cluster without the phase filters; the around-policies still apply to them (they need an exchange).
    if (fixed !== null && (l.chain.direct || fixed.ex !== undefined)) return fixed;
    // The peer address is a getter into the socket handle: read it once per session.
    const ex = new RedisExchange(this, l.name, (this.peerAddress ??= this.socket.remoteAddress ?? ''), (this.peerPort ??= this.socket.remotePort ?? 0), cmd.name);
    ex.setRequest(cmd, keys);
    ex.idempotent = readonly;
    if (fixed !== null) {
      ex.cluster = fixed.cluster;
      return { cluster: fixed.cluster, ex };
    }
    const v: Verdict | Promise<Verdict> = l.chain.runRequest(ex);
    if (v instanceof Promise) {
      // An async filter (a delay, a global rate limit): hold this request's place and continue later.
      const held = copyCommand(cmd);
      const heldKeys = keys.slice();
      v.then(
        (verdict) => {
          if (verdict !== undefined) return this.rejected(slot, ex, verdict.error);
          if (ex.cluster === null) return this.rejected(slot, ex, new ProxyError(ErrorCode.NoRoute, 'no route', { source: 'downstream' }));
          this.forward(held, slot, heldKeys, { cluster: ex.cluster, ex });
        },
        (e) => this.rejected(slot, ex, toProxyError(e)),
      );
      return null;
    }
    if (v !== undefined) {
      this.rejected(slot, ex, v.error);
      return null;
    }
    if (ex.cluster === null) {
      this.rejected(slot, ex, new ProxyError(ErrorCode.NoRoute, 'no route', { source: 'downstream' }));
      return null;
    }
    return { cluster: ex.cluster, ex };
  }

  private rejected(slot: Slot, ex: Exchange, err: ProxyError): void {
    ex.error = err;
    this.l.stats.countError(err.code);
    slot.ex = ex;
    this.fill(slot, this.errorReply(err));
  }

  private forward(cmd: RespCommand, slot: Slot, keys: number[], target: Target): void {
    if (this.kr !== null && (keys.length > 0 || cmd.name === 'KEYS' || cmd.name === 'SCAN' || cmd.name === 'RANDOMKEY')) {
      const rw = this.rewriteKeys(this.kr, cmd, slot, keys, target);
      if (rw !== null) {
        cmd = rw.cmd;
        target = rw.target;
      }
    }
    let cluster = target.cluster;
    if (target.ex) slot.ex = target.ex;
    const name = cmd.name;
    const pinned = this.inMulti || this.watching || this.db !== 0 || (this.subscribed && this.resp === 2) || pinning(name);
    if (this.l.replicasOf !== null && !pinned) cluster = this.readCluster(cluster, cmd);
    if (this.l.mirrors !== null && !pinned) this.mirror(cmd, keys);
    const comp = cluster.component;
    if (comp !== null) {
      if (!isRedisComponent(comp)) return this.err(slot, `ERR cluster '${cluster.name}' is served by a '${comp.type}' component, which does not speak Redis`);
      return this.execLocal(comp, cmd, slot);
    }
    if (pinned) return this.sendDedicated(cluster, cmd, slot);
    if (this.rc !== null) {
      const topo = this.rc.get(cluster);
      if (topo !== undefined) return this.forwardCluster(topo, cmd, slot, keys, target);
    }
    if (keys.length === 0 && cluster.sharded) {
      if (name === 'SCAN') return this.scanShards(cmd, slot, cluster);
      const kind = broadcastKind(cmd);
      if (kind !== undefined) return this.broadcast(cmd, slot, cluster, kind);
    }
    if (keys.length > 1 && (cluster.sharded || this.l.routesByKey)) {
      const places = keys.map((k) => this.placeOf(cmd, k, cluster));
      const first = places[0]!;
      if (places.some((p) => p.cluster !== first.cluster || p.endpoint !== first.endpoint)) return this.split(cmd, slot, keys, places);
    }
    if (target.ex !== undefined && !this.l.chain.direct) return this.viaPolicies(cmd, slot, keys, cluster, target.ex);
    const ep = this.endpointFor(cluster, cmd, keys);
    if (ep === null) {
      return this.fill(slot, this.errorReply(new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${cluster.name}' has no usable endpoint`, { source: 'upstream' })));
    }
    if (target.ex) target.ex.endpoint = ep;
    if (this.inflightDedicated > 0) {
      this.deferred.push({ cmd: this.deferCopy(cmd), slot, dedicated: false });
      return;
    }
    this.inflightShared++;
    slot.side = 1;
    this.l.links(cluster).get(ep, this.id).send(cmd.buffer, cmd.start, cmd.end, slot);
  }

  /**
   * Prefix routes with strip / add (prefix.ts): the command as the upstream
   * must see it (null: unchanged), and for replies that name keys, how they
   * map back.
   */
  private rewriteKeys(kr: KeyRewriter, cmd: RespCommand, slot: Slot, keys: number[], target: Target): { cmd: RespCommand; target: Target } | null {
    const name = cmd.name;
    if (keys.length > 0) {
      const rw = kr.rewrite(cmd, keys);
      if (rw === null) return null;
      this.rwCmd = rw.cmd;
      this.rwOrig = cmd;
      this.rwClusters = rw.clusters;
      if (KeyRewriter.namesKeys(name)) {
        const back = rw.back;
        slot.unmap = (d) => mapReplyKeys(name, d, this.resp, (k) => back.get(k.toString('latin1')) ?? k);
      }
      return { cmd: rw.cmd, target };
    }
    const pr = kr.rewritePattern(cmd);
    const route = pr !== null ? pr.route : kr.clusterRoute(target.cluster);
    if (route === null) return null;
    slot.unmap = (d) => mapReplyKeys(name, d, this.resp, (k) => KeyRewriter.back(route, k));
    if (pr === null) return null;
    this.rwCmd = pr.cmd;
    this.rwOrig = cmd;
    this.rwClusters = null;
    return { cmd: pr.cmd, target: { ...target, cluster: route.cluster } };
  }

  /** A copy of a command to hold back: as the client sent it (it is routed and rewritten again when replayed). */
  private deferCopy(cmd: RespCommand): RespCommand {
    return copyCommand(this.rwCmd === cmd ? this.rwOrig! : cmd);
  }

  /** Read replicas: where a command routed to a primary cluster goes (read-only commands per policy, the rest to the primary). */
  private readCluster(primary: Cluster, cmd: RespCommand): Cluster {
    const rr = this.l.replicasOf!.get(primary);
    if (rr === undefined || rr.policy === 'primary') return primary;
    const info = resolveCommand(cmd);
    if (info === undefined || !info.readonly) return primary;
    if (rr.policy === 'replica') return rr.replicas;
    return hasUsableEndpoint(rr.replicas) ? rr.replicas : primary;
  }

  /** Copies the request to each shadow cluster whose sampling draws it; replies are dropped by the target (its own sink). */
  private mirror(cmd: RespCommand, keys: number[]): void {
    const mirrors = this.l.mirrors!;
    const info = resolveCommand(cmd);
    for (let i = 0; i < mirrors.length; i++) {
      const m = mirrors[i]!;
      if (m.writesOnly && (info === undefined || !info.write)) continue;
      if (!m.draw()) continue;
      const c = m.cluster;
      m.sent.inc();
      const comp = c.component;
      if (comp !== null) {
        const w = this.writer;
        try {
          if (!isRedisComponent(comp)) throw new Error('not a Redis component');
          comp.execute(cmd, w, this);
          const r = w.take();
          if (r[0] === RespType.Error) m.failed.inc();
        } catch {
          w.discard();
          m.failed.inc();
        }
        continue;
      }
      const topo = this.rc !== null ? this.rc.get(c) : undefined;
      if (topo !== undefined) {
        // A Redis Cluster shadow: copy what one slot holds whole, to its master (redirections followed).
        let s = -1;
        if (keys.length > 0) {
          s = keySlot(cmd.buffer, cmd.argStart(keys[0]!), cmd.argEnd(keys[0]!));
          let whole = true;
          for (let k = 1; k < keys.length && whole; k++) whole = keySlot(cmd.buffer, cmd.argStart(keys[k]!), cmd.argEnd(keys[k]!)) === s;
          if (!whole) continue;
        }
        const owner = s >= 0 ? topo.masterOf(s) : topo.anyNode();
        if (owner === null || topo.linkTo(owner, this.id).inflight >= MIRROR_MAX_INFLIGHT) {
          m.failed.inc();
          continue;
        }
        topo.send(this.id, cmd.buffer, cmd.start, cmd.end, s, m);
        continue;
      }
      let ep: Endpoint | null;
      if (c.sharded) {
        // A shadow's shards may split the keys differently: copy only what one shard holds whole.
        if (keys.length === 0) continue;
        ep = c.shardOf(cmd.buffer, cmd.argStart(keys[0]!), cmd.argEnd(keys[0]!));
        let whole = true;
        for (let k = 1; k < keys.length && whole; k++) whole = c.shardOf(cmd.buffer, cmd.argStart(keys[k]!), cmd.argEnd(keys[k]!)) === ep;
        if (!whole) continue;
      } else ep = this.stickyEndpoint(c);
      const link = ep !== null ? this.l.links(c).get(ep, this.id) : null;
      // A shadow that does not keep up loses copies rather than holding memory.
      if (link === null || link.inflight >= MIRROR_MAX_INFLIGHT) {
        m.failed.inc();
        continue;
      }
      link.send(cmd.buffer, cmd.start, cmd.end, m);
    }
  }

  private endpointFor(cluster: Cluster, cmd: RespCommand, keys: number[]): Endpoint | null {
    if (cluster.sharded) {
      if (keys.length === 0) return cluster.endpoints[0] ?? null;
      return cluster.shardOf(cmd.buffer, cmd.argStart(keys[0]!), cmd.argEnd(keys[0]!));
    }
    return this.stickyEndpoint(cluster);
  }

  /** A cluster of interchangeable servers: the session keeps to one of them while it is healthy. */
  private stickyEndpoint(cluster: Cluster): Endpoint | null {
    let ep = this.sticky.get(cluster);
    if (ep === undefined || ep.isEjectedNow() || !cluster.endpoints.includes(ep)) {
      ep = cluster.pick() ?? undefined;
      if (ep === undefined) return null;
      this.sticky.set(cluster, ep);
    }
    return ep;
  }

  /**
   * The path through the around-policies (timeout, retry, circuit breaker),
   * in callback form: the RedisExchange is the policies' final handler and
   * carries what the terminal (sendTry) needs, so a request costs no promise
   * and no closure, only the policies' own per-request objects and one sink
   * per try. Parts of split and broadcast requests and SCAN steps take the
   * same path one by one (sendVia).
   *
   * Requests of a pinned session (its dedicated link: MULTI/EXEC/WATCH,
   * blocking commands, pub/sub, SELECT n) do not, on purpose: a timeout cannot
   * abandon one request on a connection whose later replies queue behind it
   * (it would have to close the link and lose the transaction, the watched
   * keys or the subscriptions); a retry would run a command twice inside a
   * transaction or after a blocking pop took a value; and a blocking command
   * waits as long as the client asked, which no request timeout may cut. The
   * circuit breaker's verdict would be the one useful part, but refusing the
   * middle of a transaction leaves it half-queued. So pinned traffic is
   * judged only by connect failures (passive health) and link resets.
   */
  private viaPolicies(cmd: RespCommand, slot: Slot, keys: number[], cluster: Cluster, ex: Exchange): void {
    this.inflightShared++;
    slot.side = 1;
    let px: RedisExchange;
    if (ex instanceof RedisExchange && ex.session === this) px = ex;
    else {
      // An exchange made elsewhere: a part-like copy carries the try state, errors still land on ex.
      px = new RedisExchange(this, ex.listener, ex.clientAddress, ex.clientPort, ex.operation);
      px.parent = ex;
      px.cluster = ex.cluster;
      px.route = ex.route;
      px.idempotent = ex.idempotent;
    }
    // The decoder never reuses a chunk, so the command's views stay valid for retries without a copy.
    px.setRequest(cmd, keys);
    px.aim(cluster, null, this.topoSlotOf(cluster, cmd, keys), slot);
    (this.policyDispatch ??= this.l.chain.dispatcher(redisTerminal))(px, px);
  }

  /** Redis Cluster: the slot of the first key (-1 keyless, or not a Redis Cluster). */
  private topoSlotOf(cluster: Cluster, cmd: RespCommand, keys: number[]): number {
    if (this.rc === null || keys.length === 0 || !this.rc.has(cluster)) return -1;
    return keySlot(cmd.buffer, cmd.argStart(keys[0]!), cmd.argEnd(keys[0]!));
  }

  /**
   * Sends one upstream request that is part of a client's request (a part of
   * a split or broadcast, a SCAN step) and hands its reply to `sink`: through
   * the around-policies when the client's request went through the chain
   * (parent) and the chain has any, each part with its own deadline, retries
   * and breaker verdict (for the part's cluster); else straight to the link.
   * ep: the endpoint it must go to (a shard), or null to pick one per try
   * (the sticky endpoint, or the Redis Cluster owner of topoSlot).
   */
  private sendVia(parent: Exchange | null, cluster: Cluster, ep: Endpoint | null, frame: Buffer, start: number, end: number, sink: ReplySink, topoSlot = -1): void {
    if (parent === null || this.l.chain.direct) {
      if (ep === null && this.rc !== null) {
        const topo = this.rc.get(cluster);
        if (topo !== undefined) {
          topo.send(this.id, frame, start, end, topoSlot, sink);
          return;
        }
      }
      const to = ep ?? this.stickyEndpoint(cluster);
      if (to === null) sink.onError(new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${cluster.name}' has no usable endpoint`, { source: 'upstream' }));
      else this.l.links(cluster).get(to, this.id).send(frame, start, end, sink);
      return;
    }
    const px = new RedisExchange(this, parent.listener, parent.clientAddress, parent.clientPort, parent.operation);
    px.parent = parent;
    px.route = parent.route;
    px.cluster = cluster;
    px.idempotent = parent.idempotent;
    px.frame = frame;
    px.start = start;
    px.end = end;
    px.aim(cluster, ep, topoSlot, sink);
    (this.policyDispatch ??= this.l.chain.dispatcher(redisTerminal))(px, px);
  }

  /** One upstream try of a request on the policy path; called by the policies (retry: once per try). */
  sendTry(px: RedisExchange, h: ResultHandler<number>): void {
    const cluster = px.target!;
    const fixed = px.fixed;
    if (fixed === null && this.rc !== null) {
      const topo = this.rc.get(cluster);
      if (topo !== undefined) {
        px.endpoint = px.topoSlot >= 0 ? topo.masterOf(px.topoSlot) : null;
        px.endpointCluster = cluster;
        topo.send(this.id, px.frame, px.start, px.end, px.topoSlot, px.trySink(h));
        return;
      }
    }
    let ep: Endpoint | null;
    if (fixed !== null) ep = fixed;
    else if (cluster.sharded) ep = px.keyStart < 0 ? (cluster.endpoints[0] ?? null) : cluster.shardOf(px.frame, px.keyStart, px.keyEnd);
    else ep = this.stickyEndpoint(cluster);
    if (ep === null) {
      h.onFailure(px, new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${cluster.name}' has no usable endpoint`, { source: 'upstream', retryable: true }));
      return;
    }
    px.endpoint = ep;
    px.endpointCluster = cluster;
    this.l.links(cluster).get(ep, this.id).send(px.frame, px.start, px.end, px.trySink(h));
  }

  /** The client's request failed on the policy path (parts fail into their merge instead). */
  policyFailed(ex: Exchange, err: ProxyError): void {
    ex.error = err;
    this.l.stats.countError(err.code);
  }

  /** Where one key lives: its cluster (prefix routes) and, unless a component serves it, its endpoint. */
  private placeOf(cmd: RespCommand, k: number, routed: Cluster): Place {
    const rewritten = this.rwCmd === cmd && this.rwClusters !== null ? this.rwClusters.get(k) : undefined;
    const cluster = this.l.routesByKey ? (rewritten ?? this.l.keyTarget(cmd, k)?.cluster ?? routed) : routed;
    if (cluster.component !== null) return { cluster, endpoint: null };
    const topo = this.rc !== null ? this.rc.get(cluster) : undefined;
    if (topo !== undefined) return { cluster, endpoint: topo.masterOf(keySlot(cmd.buffer, cmd.argStart(k), cmd.argEnd(k))) };
    const endpoint = cluster.sharded ? cluster.shardOf(cmd.buffer, cmd.argStart(k), cmd.argEnd(k)) : this.stickyEndpoint(cluster);
    return { cluster, endpoint };
  }

  /** Sends each place its share of the keys and merges the replies in key order. */
  private split(cmd: RespCommand, slot: Slot, keys: number[], places: Place[]): void {
    const name = cmd.name;
    const kind: MergeKind | undefined = name === 'MGET' ? 'mget' : name === 'MSET' ? 'ok' : SUMMED.has(name) ? 'sum' : undefined;
    if (kind === undefined) return this.fill(slot, CROSSSLOT);
    const missing = places.find((p) => p.endpoint === null && p.cluster.component === null);
    if (missing !== undefined) {
      return this.fill(slot, this.errorReply(new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${missing.cluster.name}' has no endpoint for some keys`, { source: 'upstream' })));
    }
    const groups = new Map<Cluster, Map<Endpoint | null, number[]>>();
    keys.forEach((k, i) => {
      const p = places[i]!;
      let byEp = groups.get(p.cluster);
      if (!byEp) groups.set(p.cluster, (byEp = new Map()));
      let g = byEp.get(p.endpoint);
      if (!g) byEp.set(p.endpoint, (g = []));
      g.push(k);
    });
    const merge = new SplitMerge(this, slot, kind, keys.length);
    const step = name === 'MSET' ? 2 : 1;
    this.inflightShared++;
    slot.side = 1;
    const parts: [Cluster, Endpoint | null, PartSink, Buffer[]][] = [];
    for (const [cluster, byEp] of groups) {
      for (const [ep, ks] of byEp) {
        const args: Buffer[] = [cmd.arg(0)];
        for (const k of ks) {
          args.push(cmd.arg(k));
          if (step === 2) args.push(cmd.arg(k + 1));
        }
        parts.push([cluster, ep, merge.add(ks), args]);
      }
    }
    // Every part is registered before any can complete (a component answers synchronously).
    const w = this.writer;
    for (const [cluster, ep, part, args] of parts) {
      const comp = cluster.component;
      if (comp !== null) {
        if (!isRedisComponent(comp)) {
          part.onError(new ProxyError(ErrorCode.Internal, `cluster '${cluster.name}' is not served by a Redis component`));
          continue;
        }
        comp.execute(RespCommand.from(args), w, this);
        const r = Buffer.from(w.take());
        part.onReply(r, 0, r.length);
        continue;
      }
      w.command(args);
      const frame = w.take();
      // A shard (or Redis Cluster node) owns the keys; a cluster of interchangeable servers may pick again per try.
      this.sendVia(slot.ex, cluster, cluster.sharded || (this.rc !== null && this.rc.has(cluster)) ? ep : null, frame, 0, frame.length, part);
    }
  }

  /** A whole-keyspace command on a sharded cluster: every shard gets it, the replies are merged. */
  private broadcast(cmd: RespCommand, slot: Slot, cluster: Cluster, kind: MergeKind): void {
    if ((cmd.name === 'FLUSHALL' || cmd.name === 'FLUSHDB') && !this.l.options.allowFlush) {
      return this.err(slot, `ERR ${cmd.name} is disabled on listener '${this.l.name}' (options.allow_flush: false)`);
    }
    const eps = this.shardEndpoints(cluster);
    if (eps === null) {
      return this.fill(slot, this.errorReply(new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${cluster.name}' has a shard without an endpoint`, { source: 'upstream' })));
    }
    const merge = new SplitMerge(this, slot, kind, 0);
    this.inflightShared++;
    slot.side = 1;
    const parts = eps.map(() => merge.add([]));
    eps.forEach((ep, i) => this.sendVia(slot.ex, cluster, ep, cmd.buffer, cmd.start, cmd.end, parts[i]!));
  }

  /**
   * SCAN over shards: the cursor the client sees is shard + shards * (the shard's own cursor),
   * so one full iteration visits every shard in turn and keeps SCAN's guarantees.
   */
  private scanShards(cmd: RespCommand, slot: Slot, cluster: Cluster): void {
    const eps = this.shardEndpoints(cluster);
    if (eps === null) {
      return this.fill(slot, this.errorReply(new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${cluster.name}' has a shard without an endpoint`, { source: 'upstream' })));
    }
    let cursor: bigint;
    try {
      cursor = BigInt(cmd.argString(1, 'latin1'));
      if (cursor < 0n) throw new Error('negative');
    } catch {
      return this.err(slot, 'ERR invalid cursor');
    }
    const n = BigInt(eps.length);
    const shard = Number(cursor % n);
    const inner = cursor / n;
    const args = cmd.args();
    args[1] = Buffer.from(inner.toString());
    const w = this.writer;
    w.command(args);
    const frame = w.take();
    const sink: ReplySink = {
      onReply: (buf, start, end) => {
        this.inflightDone(slot);
        const v = parseReply(buf, start, end);
        if (v.type !== 'array' || v.value.length !== 2 || v.value[0]!.type !== 'bulk') return this.fill(slot, Buffer.from(buf.subarray(start, end)));
        const next = BigInt(v.value[0]!.value.toString('latin1'));
        let out: bigint;
        if (next !== 0n) out = next * n + BigInt(shard);
        else out = shard + 1 < eps.length ? BigInt(shard + 1) : 0n;
        const h = readAggregateHeader(buf, start)!;
        // Skip the cursor element; keep the keys array bytes as they are.
        const cur = v.value[0]!.value.length;
        const keysAt = h.bodyStart + 1 + String(cur).length + 2 + cur + 2;
        const text = out.toString();
        this.fill(slot, Buffer.concat([Buffer.from(`*2\r\n$${text.length}\r\n${text}\r\n`), buf.subarray(keysAt, end)]));
      },
      onError: (err) => {
        this.inflightDone(slot);
        this.fill(slot, this.errorReply(err));
      },
    };
    this.inflightShared++;
    slot.side = 1;
    this.sendVia(slot.ex, cluster, eps[shard]!, frame, 0, frame.length, sink);
  }

  // --- Redis Cluster ---------------------------------------------------------

  /**
   * A request to a Redis Cluster: keyless whole-keyspace commands go to every
   * master (merged as over a sharded pool), other keyless ones to any master;
   * keyed commands to the master of their slot, split by slot when their keys
   * span slots. Redirections are followed by the topology (cluster-topology.ts).
   */
  private forwardCluster(topo: ClusterTopology, cmd: RespCommand, slot: Slot, keys: number[], target: Target): void {
    const cluster = topo.cluster;
    if (keys.length === 0) {
      const kind = cmd.name === 'SCAN' ? 'scan' : broadcastKind(cmd);
      if (kind !== undefined) {
        if (!topo.known) return this.afterSlotMap(topo, cmd, slot, target);
        if (kind === 'scan') return this.scanShards(cmd, slot, cluster);
        return this.broadcast(cmd, slot, cluster, kind);
      }
    }
    let s = -1;
    // SPUBLISH goes to the node of its shard channel (a "not key" in the key specs).
    if (keys.length === 0 && cmd.argc === 3 && cmd.name === 'SPUBLISH') s = keySlot(cmd.buffer, cmd.argStart(1), cmd.argEnd(1));
    if (keys.length > 0) {
      if (keys.length > 1 && this.l.routesByKey) {
        // Prefix routes may send some keys elsewhere: the general split handles several clusters.
        const places = keys.map((k) => this.placeOf(cmd, k, cluster));
        if (places.some((p) => p.cluster !== cluster)) return this.split(cmd, slot, keys, places);
      }
      s = keySlot(cmd.buffer, cmd.argStart(keys[0]!), cmd.argEnd(keys[0]!));
      for (let i = 1; i < keys.length; i++) {
        if (keySlot(cmd.buffer, cmd.argStart(keys[i]!), cmd.argEnd(keys[i]!)) !== s) return this.splitSlots(topo, cmd, slot, keys);
      }
    }
    if (target.ex !== undefined && !this.l.chain.direct) return this.viaPolicies(cmd, slot, keys, cluster, target.ex);
    if (this.inflightDedicated > 0) {
      this.deferred.push({ cmd: this.deferCopy(cmd), slot, dedicated: false });
      return;
    }
    this.inflightShared++;
    slot.side = 1;
    topo.send(this.id, cmd.buffer, cmd.start, cmd.end, s, slot);
  }

  /** A whole-keyspace command before the slot map is known (just after start): waits for it. */
  private afterSlotMap(topo: ClusterTopology, cmd: RespCommand, slot: Slot, target: Target): void {
    const held = copyCommand(cmd);
    this.inflightShared++;
    slot.side = 1;
    void topo.whenKnown().then(() => {
      if (!topo.known) {
        this.inflightDone(slot);
        const why = `Redis Cluster '${topo.cluster.name}': slot map unknown (${topo.lastError ?? 'no answer yet'})`;
        return this.fill(slot, this.errorReply(new ProxyError(ErrorCode.NoHealthyUpstream, why, { source: 'upstream' })));
      }
      this.inflightShared--;
      slot.side = 0;
      this.forwardCluster(topo, held, slot, [], target);
      if (this.deferred.length > 0 && (this.inflightShared === 0 || this.inflightDedicated === 0)) this.replayDeferred();
    });
  }

  /** MGET, MSET, DEL, UNLINK, EXISTS, TOUCH over several slots: one request per slot, merged in key order. */
  private splitSlots(topo: ClusterTopology, cmd: RespCommand, slot: Slot, keys: number[]): void {
    const name = cmd.name;
    const kind: MergeKind | undefined = name === 'MGET' ? 'mget' : name === 'MSET' ? 'ok' : SUMMED.has(name) ? 'sum' : undefined;
    if (kind === undefined) return this.fill(slot, CROSSSLOT);
    const bySlot = new Map<number, number[]>();
    for (const k of keys) {
      const s = keySlot(cmd.buffer, cmd.argStart(k), cmd.argEnd(k));
      let g = bySlot.get(s);
      if (g === undefined) bySlot.set(s, (g = []));
      g.push(k);
    }
    const merge = new SplitMerge(this, slot, kind, keys.length);
    const step = name === 'MSET' ? 2 : 1;
    const w = this.writer;
    const parts: [number, PartSink, Buffer][] = [];
    for (const [s, ks] of bySlot) {
      const args: Buffer[] = [cmd.arg(0)];
      for (const k of ks) {
        args.push(cmd.arg(k));
        if (step === 2) args.push(cmd.arg(k + 1));
      }
      w.command(args);
      parts.push([s, merge.add(ks), w.take()]);
    }
    this.inflightShared++;
    slot.side = 1;
    for (const [s, part, frame] of parts) this.sendVia(slot.ex, topo.cluster, null, frame, 0, frame.length, part, s);
  }

  /**
   * Redis Cluster, dedicated link: it goes to the master of the command's
   * first key. While server-side state lives on it (transaction, WATCH,
   * subscriptions) keys of another node are refused with CROSSSLOT; otherwise
   * a link to another node is replaced. MULTI is answered here and sent just
   * before the transaction's first command, so the transaction runs where its
   * first key lives. Returns false when the command was answered here.
   */
  private pinClusterNode(topo: ClusterTopology, cmd: RespCommand, slot: Slot): boolean {
    const name = cmd.name;
    const keys: number[] = [];
    // Shard channels (SSUBSCRIBE, SUNSUBSCRIBE) place a subscription like keys.
    extractKeys(cmd, keys, { includeNotKeys: true });
    let node: Endpoint | null = null;
    if (keys.length > 0) {
      const s = keySlot(cmd.buffer, cmd.argStart(keys[0]!), cmd.argEnd(keys[0]!));
      for (let i = 1; i < keys.length; i++) {
        if (keySlot(cmd.buffer, cmd.argStart(keys[i]!), cmd.argEnd(keys[i]!)) !== s) {
          if (this.inMulti) this.multiDenied = true;
          this.fill(slot, CROSSSLOT);
          return false;
        }
      }
      node = topo.masterOf(s);
    }
    const link = this.dedicated !== null && this.dedicated.usable ? this.dedicated : null;
    if (link !== null && ((this.inMulti && !this.multiPending) || this.watching || this.subscribed)) {
      if (node !== null && node !== link.endpoint) {
        if (this.inMulti) this.multiDenied = true;
        this.fill(slot, CROSSSLOT);
        return false;
      }
      return true;
    }
    if (name === 'MULTI' && !this.inMulti) {
      this.inMulti = true;
      this.multiPending = true;
      this.local(slot, RESP_OK);
      return false;
    }
    if (this.multiPending && (name === 'EXEC' || name === 'DISCARD')) {
      // Nothing was queued upstream: answer as redis would for an empty transaction.
      const denied = this.multiDenied;
      this.inMulti = false;
      this.multiPending = false;
      this.multiDenied = false;
      if (name === 'DISCARD') this.local(slot, RESP_OK);
      else if (denied) this.err(slot, 'EXECABORT Transaction discarded because of previous errors.');
      else this.local(slot, EMPTY_ARRAY);
      return false;
    }
    if (node === null) node = link !== null ? link.endpoint : topo.anyNode();
    if (node === null) {
      this.fill(slot, this.errorReply(new ProxyError(ErrorCode.NoHealthyUpstream, `Redis Cluster '${topo.cluster.name}' has no known node`, { source: 'upstream' })));
      return false;
    }
    if (link !== null && link.endpoint !== node) {
      this.dedicated = null;
      link.close();
    }
    this.pinNode = node;
    if (this.multiPending) {
      this.multiPending = false;
      const l = this.dedicatedLink(topo.cluster);
      if (l === null) return true; // sendDedicated answers "no usable endpoint"
      const m = new Slot(this, 'MULTI');
      m.side = 2;
      this.inflightDedicated++;
      l.send(MULTI, 0, MULTI.length, m);
    }
    return true;
  }

  /**
   * Redis Cluster, dedicated link: after MOVED or ASK, sends the command again
   * to the node named, unless a transaction, WATCH or subscription holds the
   * link (then the client gets the redirection, as from the node itself).
   */
  repin(r: PinnedRedirect, ep: Endpoint, asking: boolean): boolean {
    if (this.inMulti || this.watching || this.subscribed || this.socket.destroyed) return false;
    const old = this.dedicated;
    if (old !== null && old.endpoint !== ep) {
      this.dedicated = null;
      old.close();
    }
    this.pinNode = ep;
    const link = this.dedicatedLink(r.topo.cluster);
    if (link === null) return false;
    if (asking) link.send(ASKING, 0, ASKING.length, IGNORE);
    link.send(r.cmd.buffer, r.cmd.start, r.cmd.end, new PinnedRedirect(this, r.topo, r.cmd, r.slot, r.redirects + 1));
    return true;
  }

  /** One endpoint per shard, in shard order; null when a shard has none. */
  private shardEndpoints(cluster: Cluster): Endpoint[] | null {
    const topo = this.rc !== null ? this.rc.get(cluster) : undefined;
    if (topo !== undefined) return topo.masters.length > 0 ? topo.masters.slice() : null;
    const eps = cluster.shards();
    return eps.some((e) => e === null) ? null : (eps as Endpoint[]);
  }

  private execLocal(comp: RedisComponent, cmd: RespCommand, slot: Slot): void {
    const name = cmd.name;
    if (STATEFUL.has(name) || BLOCKING.has(name)) {
      return this.err(slot, `ERR '${name.toLowerCase()}' is not supported by the '${comp.type}' component`);
    }
    const w = this.writer;
    try {
      comp.execute(cmd, w, this);
    } catch (e) {
      w.discard();
      return this.fill(slot, this.errorReply(toProxyError(e)));
    }
    this.fill(slot, Buffer.from(w.take()));
  }

  // --- the dedicated link ----------------------------------------------------

  private sendDedicated(cluster: Cluster, cmd: RespCommand, slot: Slot): void {
    if (cluster.sharded) {
      return this.err(slot, `ERR '${cmd.name.toLowerCase()}' needs a connection of its own, which a sharded cluster ('${cluster.name}') cannot give`);
    }
    if (this.inflightShared > 0) {
      this.deferred.push({ cmd: this.deferCopy(cmd), slot, dedicated: true });
      return;
    }
    const topo = this.rc !== null ? this.rc.get(cluster) : undefined;
    if (topo !== undefined && !this.pinClusterNode(topo, cmd, slot)) return;
    const link = this.dedicatedLink(cluster);
    if (link === null) {
      return this.fill(slot, this.errorReply(new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${cluster.name}' has no usable endpoint`, { source: 'upstream' })));
    }
    const name = cmd.name;
    if (name === 'EXEC' && this.multiDenied) {
      // As redis: a command refused inside MULTI aborts the transaction at EXEC.
      this.discardUpstream();
      return this.err(slot, 'EXECABORT Transaction discarded because of previous errors.');
    }
    if (name === 'MULTI') this.inMulti = true;
    else if (name === 'EXEC' || name === 'DISCARD') {
      this.inMulti = false;
      this.multiDenied = false;
      this.watching = false;
    } else if (name === 'WATCH') this.watching = true;
    else if (name === 'UNWATCH') this.watching = false;
    if (SUBSCRIBE.has(name) || this.subscribed) {
      // In subscribed mode every frame (confirmations, messages, PING's pong) is forwarded as it
      // comes, in order: no reply slot waits, since messages could not be told apart from replies.
      if (SUBSCRIBE.has(name)) this.subscribed = true;
      this.fill(slot, EMPTY);
      link.sendUnanswered(cmd.buffer, cmd.start, cmd.end);
      return;
    }
    this.inflightDedicated++;
    slot.side = 2;
    link.send(cmd.buffer, cmd.start, cmd.end, topo !== undefined ? new PinnedRedirect(this, topo, cmd, slot, 0) : slot);
  }

  private dedicatedLink(cluster: Cluster): RedisLink | null {
    if (this.dedicated !== null && this.dedicated.usable) {
      // A link holding server-side state is kept; a stateless one to another cluster (prefix routes) is replaced.
      if (this.dedicated.cluster === cluster || this.inMulti || this.watching || this.subscribed) return this.dedicated;
      const old = this.dedicated;
      this.dedicated = null;
      old.close();
    }
    const ep = this.pinNode !== null && this.pinNode.cluster === cluster.name ? this.pinNode : this.stickyEndpoint(cluster);
    if (ep === null) return null;
    this.dedicated = new RedisLink(ep, cluster, {
      connectTimeoutMs: cluster.config.connectTimeoutMs,
      handshake: this.l.handshake(cluster, this.db),
      onSetupError: this.l.onSetupError,
      onPush: (buf, start, end) => this.onPush(buf, start, end),
      onClose: (link) => {
        if (this.dedicated === link) {
          this.dedicated = null;
          // Server-side state (transaction, subscriptions) is gone with the connection.
          if (this.subscribed || this.inMulti) this.socket.destroy();
        }
      },
    });
    return this.dedicated;
  }

  private onPush(buf: Buffer, start: number, end: number): void {
    let frame = buf.subarray(start, end);
    // Track the subscription count: the third element of (un)subscribe confirmations.
    if (frame[0] === RespType.Array || frame[0] === RespType.Push) {
      const v = parseReply(frame);
      if (v.type === 'array' || v.type === 'push') {
        const kind = v.value[0];
        const count = v.value[2];
        if (kind && kind.type === 'bulk' && count && count.type === 'integer' && /unsubscribe$/i.test(kind.value.toString('latin1'))) {
          if (Number(count.value) === 0) this.subscribed = false;
        }
      }
      if (this.resp === 3 && frame[0] === RespType.Array) {
        frame = Buffer.from(frame);
        frame[0] = RespType.Push;
      }
    }
    this.push(frame);
  }

  inflightDone(slot: Slot): void {
    if (slot.side === 1) this.inflightShared--;
    else if (slot.side === 2) this.inflightDedicated--;
    slot.side = 0;
    if (this.deferred.length > 0 && (this.inflightShared === 0 || this.inflightDedicated === 0)) this.replayDeferred();
  }

  private replayDeferred(): void {
    const list = this.deferred;
    this.deferred = [];
    for (let i = 0; i < list.length; i++) {
      const d = list[i]!;
      if (this.deferred.length > 0) {
        this.deferred.push(d);
        continue;
      }
      this.dispatch(d.cmd, d.slot);
    }
  }

  // --- local commands --------------------------------------------------------

  private hello(cmd: RespCommand, slot: Slot): void {
    let proto = this.resp;
    if (cmd.argc >= 2) {
      const v = cmd.argInteger(1);
      if (v !== 2 && v !== 3) return this.err(slot, 'NOPROTO unsupported protocol version');
      proto = v;
    }
    let setName: Buffer | null = null;
    let authAt = 0;
    for (let i = 2; i < cmd.argc; i++) {
      if (cmd.argEquals(i, 'SETNAME') && i + 1 < cmd.argc) {
        setName = cmd.arg(++i);
      } else if (cmd.argEquals(i, 'AUTH') && i + 2 < cmd.argc) {
        authAt = i;
        i += 2;
      } else return this.err(slot, `ERR Syntax error in HELLO option '${cmd.argString(i)}'`);
    }
    if (authAt > 0) {
      if (this.l.users === null || this.login(cmd.arg(authAt + 1), cmd.arg(authAt + 2)) === null) return this.err(slot, WRONGPASS);
    }
    if (this.l.users !== null && this.user === null) return this.err(slot, HELLO_NOAUTH);
    if (setName !== null) this.name = Buffer.from(setName);
    this.resp = proto;
    const w = this.writer;
    const fields: [string, string | number][] = [
      ['server', 'redis'],
      ['version', '7.0.15'],
      ['proto', proto],
      ['id', this.id],
      ['mode', 'standalone'],
      ['role', 'master'],
    ];
    if (proto === 3) w.mapHeader(fields.length + 1);
    else w.arrayHeader((fields.length + 1) * 2);
    for (const [k, v] of fields) {
      w.bulk(k);
      if (typeof v === 'number') w.integer(v);
      else w.bulk(v);
    }
    w.bulk('modules');
    w.arrayHeader(0);
    this.fill(slot, Buffer.from(w.take()));
  }

  /** CLIENT subcommands answered by Portway; returns false for those forwarded. */
  private client(cmd: RespCommand, slot: Slot): boolean {
    if (cmd.argc < 2) {
      this.err(slot, "ERR wrong number of arguments for 'client' command");
      return true;
    }
    if (cmd.argEquals(1, 'SETNAME') && cmd.argc === 3) {
      const n = cmd.arg(2);
      if (n.includes(32) || n.includes(10)) this.err(slot, 'ERR Client names cannot contain spaces, newlines or special characters.');
      else {
        this.name = n.length === 0 ? null : Buffer.from(n);
        this.local(slot, RESP_OK);
      }
      return true;
    }
    if (cmd.argEquals(1, 'GETNAME') && cmd.argc === 2) {
      this.local(slot, this.name === null ? this.nullBulk() : bulk(this.name));
      return true;
    }
    if (cmd.argEquals(1, 'ID') && cmd.argc === 2) {
      this.local(slot, Buffer.from(`:${this.id}\r\n`));
      return true;
    }
    if (cmd.argEquals(1, 'SETINFO')) {
      this.local(slot, RESP_OK);
      return true;
    }
    this.err(slot, `ERR CLIENT ${cmd.argString(1).toUpperCase()} is not available through Portway`);
    return true;
  }

  private select(cmd: RespCommand, slot: Slot): void {
    if (cmd.argc !== 2) return this.err(slot, "ERR wrong number of arguments for 'select' command");
    const n = cmd.argInteger(1);
    if (n === undefined) return this.err(slot, 'ERR value is not an integer or out of range');
    if (n < 0 || n > 15) return this.err(slot, 'ERR DB index is out of range');
    const target = this.l.fixedTarget(cmd, []) ?? this.l.defaultTarget();
    if (target !== null && target.cluster.sharded) return this.err(slot, `ERR SELECT is not allowed: cluster '${target.cluster.name}' is sharded`);
    if (target !== null && this.rc !== null && this.rc.has(target.cluster)) return this.err(slot, 'ERR SELECT is not allowed in cluster mode');
    if (target !== null && target.cluster.component === null) {
      // The database is connection state on the server: from now on this session talks over its own link.
      if (this.dedicated !== null && this.dedicated.usable) {
        this.db = n;
        // SELECT 0 means the database configured for the cluster (upstreams.<cluster>.db).
        const base = n === 0 ? this.l.baseDb(target.cluster) : 0;
        this.sendDedicated(target.cluster, base !== 0 ? RespCommand.from(['SELECT', String(base)]) : cmd, slot);
        return;
      }
      this.db = n;
    } else this.db = n;
    this.local(slot, RESP_OK);
  }

  private reset(slot: Slot): void {
    if (this.l.users !== null) {
      // As redis: back to the default user, which has a password here, so not authenticated.
      this.user = null;
      this.decoder.unauthenticated = true;
    }
    this.multiDenied = false;
    this.resp = 2;
    this.db = 0;
    this.name = null;
    this.inMulti = false;
    this.multiPending = false;
    this.pinNode = null;
    this.watching = false;
    this.subscribed = false;
    this.dedicated?.close();
    this.dedicated = null;
    this.local(slot, Buffer.from('+RESET\r\n'));
  }

  // --- connection events -------------------------------------------------------

  private onProtocolError(err: RespProtocolError): void {
    this.l.stats.countError(ErrorCode.Protocol);
    this.l.log.debug({ client: this.socket.remoteAddress, reason: err.message }, 'protocol error from client');
    const s = this.newSlot('');
    this.closing = true;
    this.socket.pause();
    this.fill(s, err.hasReply ? err.toReply() : EMPTY);
    if (!err.hasReply) this.socket.destroy();
  }

  /** Called by the idle sweeper after idle_timeout without a read or a write. */
  onIdleSweep(): void {
    if (this.subscribed || this.inflightDedicated > 0) return; // waiting for messages or a blocking command is not idleness
    this.l.stats.countError(ErrorCode.IdleTimeout);
    this.socket.destroy();
  }

  private onClose(): void {
    this.sweeper?.delete(this);
    this.decoder.destroy();
    this.dedicated?.fail(new ProxyError(ErrorCode.DownstreamClosed, 'client closed', { source: 'downstream' }));
    this.dedicated = null;
  }
}

const EMPTY = Buffer.alloc(0);
const CRLF_IN_TEXT = /[\r\n]/;
const CRLF_ALL = /[\r\n]/g;
/**
 * The exchange of one Redis request, or of one part of a split one, and on
 * the policy path also the policies' final handler, what the terminal needs
 * for each try, and the link's reply sink of each try (so that path
 * allocates nothing else per request). The value passed through the
 * policies is the reply's RESP type; the reply itself stays where the link
 * decoded it (replyBuf, replyStart, replyEnd) until the final handler takes
 * it, synchronously.
 *
 * A try abandoned by a per-try timeout may still be answered later: its
 * reply then reaches the handler of the current try. Only idempotent
 * requests are retried after a timeout, so that answer is as good as the
 * current try's; whichever comes second is dropped by the settled handler.
 * Attributes are computed only when a route or filter reads them:
 * `command` (the upper-case name) and `key` (the first key, latin1).
 */
export class RedisExchange extends Exchange implements ResultHandler<number>, ReplySink {
  /** The cluster the tries go to (differs from `cluster` with read replicas and key routes). */
  target: Cluster | null = null;
  /** The request frame: the client's command, or a part built for one shard. */
  frame: Buffer = EMPTY;
  start = 0;
  end = 0;
  /** The first key inside frame; -1 when keyless. */
  keyStart = -1;
  keyEnd = -1;
  /** Redis Cluster slot of the first key; -1 otherwise. */
  topoSlot = -1;
  /** The endpoint every try must use (a shard); null: picked per try. */
  fixed: Endpoint | null = null;
  /** Where the reply goes: the request's Slot, or the PartSink of a split. */
  sink: ReplySink | null = null;
  /** The client request's exchange when this is a part of it (errors are merged there, not counted here). */
  parent: Exchange | null = null;
  /** The policy handler of the first try (each retry has a TrySink of its own). */
  tryHandler: ResultHandler<number> | null = null;
  replyBuf: Buffer = EMPTY;
  replyStart = 0;
  replyEnd = 0;

  constructor(
    readonly session: RedisSession,
    listener: string,
    clientAddress: string,
    clientPort: number,
    operation: string,
  ) {
    super(listener, 'redis', clientAddress, clientPort, operation);
    this.attributeSource = REDIS_ATTRIBUTES;
  }

  setRequest(cmd: RespCommand, keys: number[]): void {
    this.frame = cmd.buffer;
    this.start = cmd.start;
    this.end = cmd.end;
    if (keys.length > 0) {
      this.keyStart = cmd.argStart(keys[0]!);
      this.keyEnd = cmd.argEnd(keys[0]!);
    } else this.keyStart = this.keyEnd = -1;
  }

  aim(target: Cluster, fixed: Endpoint | null, topoSlot: number, sink: ReplySink): void {
    this.target = target;
    this.fixed = fixed;
    this.topoSlot = topoSlot;
    this.sink = sink;
  }

  /**
   * Counts a new try and gives the sink its link answers: the exchange itself
   * for the first try (no allocation on the common path), a TrySink for each
   * retry. So a late reply of an abandoned try reaches that try's own handler,
   * which drops it, and is never taken as the answer of the try after it.
   */
  trySink(h: ResultHandler<number>): ReplySink {
    if (++this.attempts === 1) {
      this.tryHandler = h;
      return this;
    }
    return new TrySink(this, h);
  }

  /** The link answered the first try. */
  onReply(buf: Buffer, start: number, end: number, type: number): void {
    this.replyBuf = buf;
    this.replyStart = start;
    this.replyEnd = end;
    this.tryHandler!.onResult(this, type);
  }

  /** The first try failed on its link. */
  onError(err: ProxyError): void {
    this.tryHandler!.onFailure(this, err);
  }

  /** The policies let the reply through. */
  onResult(_ex: Exchange, type: number): void {
    const buf = this.replyBuf;
    this.replyBuf = EMPTY;
    this.sink!.onReply(buf, this.replyStart, this.replyEnd, type);
  }

  onFailure(_ex: Exchange, err: ProxyError): void {
    if (this.sink instanceof Slot) this.session.policyFailed(this.parent ?? this, err);
    this.sink!.onError(err);
  }
}

/** Where a retry's link answers go: that try's handler (see RedisExchange.trySink). */
class TrySink implements ReplySink {
  constructor(
    private readonly px: RedisExchange,
    private readonly h: ResultHandler<number>,
  ) {}

  onReply(buf: Buffer, start: number, end: number, type: number): void {
    const px = this.px;
    px.replyBuf = buf;
    px.replyStart = start;
    px.replyEnd = end;
    this.h.onResult(px, type);
  }

  onError(err: ProxyError): void {
    this.h.onFailure(this.px, err);
  }
}

const REDIS_ATTRIBUTES: AttributeSource = {
  attribute(ex: Exchange, name: string): string | undefined {
    const rx = ex as RedisExchange;
    if (name === 'command') return rx.operation;
    if (name === 'key') return rx.keyStart >= 0 ? rx.frame.toString('latin1', rx.keyStart, rx.keyEnd) : undefined;
    return undefined;
  },
};

/** The around-policies' terminal: one try of a RedisExchange (a module function, so the chain composes it once). */
function redisTerminal(ex: Exchange, h: ResultHandler<number>): void {
  const px = ex as RedisExchange;
  px.session.sendTry(px, h);
}

const WRONGPASS = 'WRONGPASS invalid username-password pair or user is disabled.';
const HELLO_NOAUTH =
  'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time';
const DISCARD = Buffer.from('*1\r\n$7\r\nDISCARD\r\n');
const MULTI = Buffer.from('*1\r\n$5\r\nMULTI\r\n');
const EMPTY_ARRAY = Buffer.from('*0\r\n');

/** A cluster with a non-ejected endpoint (or served in process). */
function hasUsableEndpoint(c: Cluster): boolean {
  if (c.component !== null) return true;
  const eps = c.usable();
  return eps.length > 0 && !eps[0]!.isEjected(performance.now());
}
/** Requests a session may have waiting before it stops reading the client, and where it starts again. */
const MAX_PENDING = 16384;
const RESUME_PENDING = 8192;
/** Copies waiting for a shadow's replies on one link beyond which more are dropped (and counted as failed). */
const MIRROR_MAX_INFLIGHT = 10000;
const SUMMED = new Set(['DEL', 'UNLINK', 'EXISTS', 'TOUCH']);
const SUBSCRIBE = new Set(['SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE']);
const SUBSCRIBED_OK = new Set(['SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE', 'UNSUBSCRIBE', 'PUNSUBSCRIBE', 'SUNSUBSCRIBE', 'PING', 'QUIT', 'RESET']);
/** Commands that need the session's own connection on the server. */
const STATEFUL = new Set(['MULTI', 'EXEC', 'DISCARD', 'WATCH', 'UNWATCH', 'SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE', 'UNSUBSCRIBE', 'PUNSUBSCRIBE', 'SUNSUBSCRIBE', 'MONITOR']);
/** Commands that may block the connection they run on. */
const BLOCKING = new Set(['BLPOP', 'BRPOP', 'BLMOVE', 'BRPOPLPUSH', 'BLMPOP', 'BZPOPMIN', 'BZPOPMAX', 'BZMPOP', 'XREAD', 'XREADGROUP', 'WAIT', 'WAITAOF']);
/** STATEFUL and BLOCKING together: one lookup on the request path. */
const PINNING = new Set([...STATEFUL, ...BLOCKING]);
let lastPinName = '';
let lastPinning = false;

/** PINNING.has(name), remembering the last name asked (pipelines repeat one command). */
function pinning(name: string): boolean {
  if (name !== lastPinName) {
    lastPinName = name;
    lastPinning = PINNING.has(name);
  }
  return lastPinning;
}

/** Keyless commands that touch the whole keyspace, and how a sharded cluster merges their replies. */
function broadcastKind(cmd: RespCommand): MergeKind | undefined {
  switch (cmd.name) {
    case 'DBSIZE':
      return 'sum';
    case 'KEYS':
      return 'concat';
    case 'FLUSHALL':
    case 'FLUSHDB':
      return 'ok';
    case 'RANDOMKEY':
      return 'first';
    case 'INFO':
      return 'info';
    case 'SCRIPT':
      if (cmd.argc >= 2 && cmd.argEquals(1, 'LOAD')) return 'first';
      if (cmd.argc >= 2 && cmd.argEquals(1, 'FLUSH')) return 'ok';
      if (cmd.argc >= 2 && cmd.argEquals(1, 'EXISTS')) return 'and';
      return undefined;
    default:
      return undefined;
  }
}

function isNullReply(b: Buffer): boolean {
  return (b.length === 5 && b[1] === 45) || (b.length === 3 && b[0] === 95);
}

function bulk(b: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, CRLF]);
}
const CRLF = Buffer.from('\r\n');

/** A command that outlives the chunk it arrived in (deferred): copy its bytes. */
function copyCommand(cmd: RespCommand): RespCommand {
  return cmd.clone();
}

/** Redis' "with args beginning with:" list: each argument quoted, then a trailing space. */
function argsPreview(cmd: RespCommand): string {
  let s = '';
  for (let i = 1; i < cmd.argc && s.length < 128; i++) s += `'${cmd.argString(i).slice(0, 128 - s.length)}' `;
  return s;
}
