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
import { Exchange } from '../../exchange';
import { ErrorCode, ProxyError, toProxyError } from '../../errors';
import type { Verdict } from '../../filter';
import type { Cluster } from '../../routing/cluster';
import type { Endpoint } from '../../routing/endpoint';
import { isRedisComponent, type RedisComponent } from '../../components/redis-component';
import { RespCommand, RespRequestDecoder, RespType, type RespProtocolError } from './codec';
import { RespWriter, RESP_OK, RESP_PONG, type RespProtocolVersion } from './resp-writer';
import { commandInfo, extractKeys, resolveCommand } from './commands';
import type { AclUser } from './acl';
import { parseReply, readAggregateHeader, toResp3, type Resp3Shape } from './resp-value';
import { RedisLink, type ReplySink } from './upstream';
import type { CommandStats, RedisListener, Target } from './listener';

const CROSSSLOT = Buffer.from("-CROSSSLOT Keys in request don't hash to the same slot\r\n");
const NULL_BULK2 = Buffer.from('$-1\r\n');
const NULL3 = Buffer.from('_\r\n');
const NULL_IN_ARRAY = Buffer.from('$-1\r\n');
const NULL_ARRAY_IN_ARRAY = Buffer.from('*-1\r\n');

/** RESP3 shapes of RESP2 replies that change type (maps, sets, doubles, booleans); everything else passes as is. */
const RESP3_SHAPES = new Map<string, Resp3Shape>([
  ['HGETALL', { map: 'plain' }],
  ['CONFIG', { map: 'plain' }],
  ['SMEMBERS', 'set'],
  ['SINTER', 'set'],
  ['SUNION', 'set'],
  ['SDIFF', 'set'],
  ['ZSCORE', 'double'],
  ['ZINCRBY', 'double'],
  ['ZMSCORE', { array: 'double' }],
  ['SMISMEMBER', { array: 'plain' }],
  ['SCRIPT', { array: 'boolean' }],
]);

let nextSessionId = 1;

/** Sessions with replies to write: one setImmediate per event-loop turn for all of them. */
let toFlush: RedisSession[] = [];
let flushQueued = false;
function flushSessions(): void {
  flushQueued = false;
  const list = toFlush;
  toFlush = [];
  for (let i = 0; i < list.length; i++) list[i]!.flush();
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
  /** Called with the raw reply instead of storing it (split requests merge their parts). */
  constructor(
    readonly session: RedisSession,
    readonly command: string,
  ) {}

  onReply(buf: Buffer, start: number, end: number, type: number): void {
    this.session.inflightDone(this);
    this.session.fill(this, this.session.adaptReply(this.command, buf, start, end, type));
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
 * first: the first non-null reply (SCRIPT LOAD, RANDOMKEY); and: element-wise AND of 0/1 arrays (SCRIPT EXISTS).
 */
type MergeKind = 'mget' | 'sum' | 'ok' | 'concat' | 'first' | 'and';

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
    this.session.fill(this.slot, this.merged());
  }

  private merged(): Buffer {
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

export class RedisSession {
  readonly id = nextSessionId++;
  private readonly decoder: RespRequestDecoder;
  private head: Slot | null = null;
  private tail: Slot | null = null;
  private out: Buffer[] = [];
  private flushScheduled = false;
  /** Requests without their reply written yet. */
  private pending = 0;
  private writeBlocked = false;
  private closing = false;
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
  private readonly writer = new RespWriter(4096);
  private readonly keyBuf: number[] = [];
  /** The authenticated user, when the listener has users. */
  private user: AclUser | null = null;
  /** A command of the open transaction was refused here: EXEC must abort it. */
  private multiDenied = false;

  constructor(
    private readonly socket: Socket,
    private readonly l: RedisListener,
  ) {
    this.decoder = new RespRequestDecoder(
      { onCommand: (cmd) => this.onCommand(cmd), onError: (err) => this.onProtocolError(err) },
      { maxBulkLength: l.options.maxBulkLength, unauthenticated: l.users !== null },
    );
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    socket.on('error', () => socket.destroy());
    // The client half-closed: answer what it sent, then close our side (the listener allows half-open sockets).
    socket.on('end', () => {
      this.closing = true;
      if (this.head === null && !this.flushScheduled) this.socket.end();
    });
    socket.on('close', () => this.onClose());
    if (l.idleTimeoutMs > 0) socket.setTimeout(l.idleTimeoutMs, () => this.onIdle());
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
    slot.data = data;
    const st = slot.stats;
    if (st !== null) {
      slot.stats = null;
      st.count.value++;
      if (data[0] === RespType.Error) st.errors.value++;
      st.latency.observe((performance.now() - slot.t0) / 1000);
    }
    const ex = slot.ex;
    if (ex !== null) {
      slot.ex = null;
      ex.info['reply_bytes'] = data.length;
      if (ex.error === null && data[0] === RespType.Error) ex.info['reply_error'] = data.toString('latin1', 1, Math.min(data.length - 2, 120));
      this.l.chain.complete(ex);
    }
    if (slot !== this.head) return;
    let s: Slot | null = slot;
    while (s !== null && s.data !== null) {
      this.out.push(s.data);
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
    this.out.push(data);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    toFlush.push(this);
    if (!flushQueued) {
      flushQueued = true;
      setImmediate(flushSessions);
    }
  }

  flush(): void {
    this.flushScheduled = false;
    const out = this.out;
    if (out.length === 0 || this.socket.destroyed) return;
    this.out = [];
    const ok = out.length === 1 ? this.socket.write(out[0]!) : this.socket.write(Buffer.concat(out));
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
  adaptReply(command: string, buf: Buffer, start: number, end: number, type: number): Buffer {
    const raw = buf.subarray(start, end);
    if (this.resp === 2) return raw;
    if (type === RespType.BulkString || type === RespType.Array) {
      if (end - start === 5 && buf[start + 1] === 45 /* - */) return NULL3; // $-1 or *-1
      let shape = RESP3_SHAPES.get(command);
      // Nulls nested in an aggregate (MGET, EXEC ...) must become "_" too: convert when any may be there.
      if (shape === undefined && type === RespType.Array && (raw.includes(NULL_IN_ARRAY) || raw.includes(NULL_ARRAY_IN_ARRAY))) shape = 'plain';
      if (shape !== undefined) {
        try {
          const w = this.writer;
          w.value(toResp3(parseReply(buf, start, end), shape), 3);
          return Buffer.from(w.take());
        } catch {
          return raw;
        }
      }
    }
    return raw;
  }

  private local(slot: Slot, data: Buffer): void {
    this.fill(slot, data);
  }

  private err(slot: Slot, text: string): void {
    this.fill(slot, Buffer.from(`-${text}\r\n`));
  }

  // --- requests --------------------------------------------------------------

  private onCommand(cmd: RespCommand): void {
    const name = cmd.name;
    this.l.stats.commands.inc();
    const slot = this.newSlot(name);
    slot.stats = this.l.commandStats(name);
    slot.t0 = performance.now();
    if (this.deferred.length > 0) {
      this.deferred.push({ cmd: copyCommand(cmd), slot, dedicated: false });
      return;
    }
    this.dispatch(cmd, slot);
  }

  private dispatch(cmd: RespCommand, slot: Slot): void {
    const name = cmd.name;
    if (this.l.users !== null && this.access(cmd, slot)) return;
    if (this.subscribed && !SUBSCRIBED_OK.has(name)) {
      this.err(slot, `ERR Can't execute '${name.toLowerCase()}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`);
      return;
    }
    switch (name) {
      case 'PING':
        if (this.subscribed || this.inMulti) break;
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
    if (info === undefined) {
      return this.err(slot, `ERR unknown command '${cmd.argString(0)}', with args beginning with: ${argsPreview(cmd)}`);
    }
    if (!info.arityOk(cmd.argc)) return this.err(slot, `ERR wrong number of arguments for '${name.toLowerCase()}' command`);

    const keys = this.keyBuf;
    keys.length = 0;
    extractKeys(cmd, keys);
    let target: Target | null;
    try {
      target = this.route(cmd, keys, slot);
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
  private route(cmd: RespCommand, keys: number[], slot: Slot): Target | null {
    const l = this.l;
    const fixed = l.fixedTarget(cmd, keys);
    if (fixed !== null) return fixed;
    const ex = new Exchange(l.name, 'redis', this.socket.remoteAddress ?? '', this.socket.remotePort ?? 0, cmd.name);
    ex.attrs['command'] = cmd.name;
    if (keys.length > 0) ex.attrs['key'] = cmd.argString(keys[0]!, 'latin1');
    ex.idempotent = commandInfo(cmd.name)?.readonly ?? false;
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
    let cluster = target.cluster;
    if (target.ex) slot.ex = target.ex;
    const name = cmd.name;
    const pinned = STATEFUL.has(name) || this.inMulti || this.watching || this.db !== 0 || this.subscribed || BLOCKING.has(name);
    if (this.l.replicasOf !== null && !pinned) cluster = this.readCluster(cluster, cmd);
    if (this.l.mirrors !== null && !pinned) this.mirror(cmd, keys);
    const comp = cluster.component;
    if (comp !== null) {
      if (!isRedisComponent(comp)) return this.err(slot, `ERR cluster '${cluster.name}' is served by a '${comp.type}' component, which does not speak Redis`);
      return this.execLocal(comp, cmd, slot);
    }
    if (pinned) return this.sendDedicated(cluster, cmd, slot);
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
      this.deferred.push({ cmd: copyCommand(cmd), slot, dedicated: false });
      return;
    }
    this.inflightShared++;
    slot.side = 1;
    this.l.links(cluster).get(ep, this.id).send(cmd.buffer, cmd.start, cmd.end, slot);
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
    if (ep === undefined || ep.isEjected(performance.now()) || !cluster.endpoints.includes(ep)) {
      ep = cluster.pick() ?? undefined;
      if (ep === undefined) return null;
      this.sticky.set(cluster, ep);
    }
    return ep;
  }

  /**
   * The path through around-policies (timeout, retry, circuit breaker): the
   * upstream call becomes a promise the policies can race, repeat or refuse.
   * Only single-target requests take it; split, broadcast and dedicated-link
   * requests do not (their replies depend on connection state or many shards).
   */
  private viaPolicies(cmd: RespCommand, slot: Slot, keys: number[], cluster: Cluster, ex: Exchange): void {
    // The decoder never reuses a chunk, so the command's views stay valid for retries without a copy.
    const held = cmd;
    const heldKeys = keys.slice();
    this.inflightShared++;
    slot.side = 1;
    this.l.invoke(ex, (e) => this.sendOnce(held, heldKeys, cluster, e)).then(
      (reply) => {
        this.inflightDone(slot);
        this.fill(slot, this.adaptReply(held.name, reply, 0, reply.length, reply[0]!));
      },
      (err) => {
        const pe = toProxyError(err);
        ex.error = pe;
        this.l.stats.countError(pe.code);
        this.inflightDone(slot);
        this.fill(slot, this.errorReply(pe));
      },
    );
  }

  /** One upstream try of a request, as a promise of its raw reply. */
  private sendOnce(cmd: RespCommand, keys: number[], cluster: Cluster, ex: Exchange): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const ep = this.endpointFor(cluster, cmd, keys);
      if (ep === null) {
        reject(new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${cluster.name}' has no usable endpoint`, { source: 'upstream', retryable: true }));
        return;
      }
      ex.endpoint = ep;
      ex.attempts++;
      this.l.links(cluster).get(ep, this.id).send(cmd.buffer, cmd.start, cmd.end, {
        onReply: (buf, start, end) => resolve(buf.subarray(start, end)),
        onError: reject,
      });
    });
  }

  /** Where one key lives: its cluster (prefix routes) and, unless a component serves it, its endpoint. */
  private placeOf(cmd: RespCommand, k: number, routed: Cluster): Place {
    const cluster = this.l.routesByKey ? (this.l.keyTarget(cmd, k)?.cluster ?? routed) : routed;
    if (cluster.component !== null) return { cluster, endpoint: null };
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
      this.l.links(cluster).get(ep!, this.id).send(frame, 0, frame.length, part);
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
    eps.forEach((ep, i) => this.l.links(cluster).get(ep, this.id).send(cmd.buffer, cmd.start, cmd.end, parts[i]!));
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
    this.l.links(cluster).get(eps[shard]!, this.id).send(frame, 0, frame.length, sink);
  }

  /** One endpoint per shard, in shard order; null when a shard has none. */
  private shardEndpoints(cluster: Cluster): Endpoint[] | null {
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
      this.deferred.push({ cmd: copyCommand(cmd), slot, dedicated: true });
      return;
    }
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
    link.send(cmd.buffer, cmd.start, cmd.end, slot);
  }

  private dedicatedLink(cluster: Cluster): RedisLink | null {
    if (this.dedicated !== null && this.dedicated.usable) return this.dedicated;
    const ep = this.stickyEndpoint(cluster);
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

  private onIdle(): void {
    if (this.subscribed || this.inflightDedicated > 0) return; // waiting for messages or a blocking command is not idleness
    this.l.stats.countError(ErrorCode.IdleTimeout);
    this.socket.destroy();
  }

  private onClose(): void {
    this.decoder.destroy();
    this.dedicated?.fail(new ProxyError(ErrorCode.DownstreamClosed, 'client closed', { source: 'downstream' }));
    this.dedicated = null;
  }
}

const EMPTY = Buffer.alloc(0);
const WRONGPASS = 'WRONGPASS invalid username-password pair or user is disabled.';
const HELLO_NOAUTH =
  'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time';
const DISCARD = Buffer.from('*1\r\n$7\r\nDISCARD\r\n');

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
