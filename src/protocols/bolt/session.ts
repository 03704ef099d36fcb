/**
 * One client connection of the Bolt listener.
 *
 * Frames are decoded as they arrive. Heartbeats are answered here; each
 * request becomes a BoltCall that finishes on its own (Bolt replies carry the
 * request id, so they go back in whatever order they complete). Replies of
 * one event-loop turn are written in one batch (one send(2) when nothing is
 * queued: util/direct-write.ts). A client with too many
 * calls in flight, or one that does not read its replies, stops being read.
 * A frame that cannot be decoded closes the connection (the reason is logged
 * by the listener); nothing else is affected.
 */
import type { Socket } from 'node:net';
import { ErrorCode } from '../../errors';
import { BoltCmd, BoltCodecError, BoltDecoder, BoltType, copyWithId, heartbeatAck, shapeOf, type BoltFrame } from './codec';
import { BoltCall, type BoltListener } from './listener';
import { directFd, directWriteBatch } from '../../util/direct-write';
import { idleSweeper, markingReader, type IdleSweeper } from '../../util/idle-sweep';

/** Calls a session may have in flight before it stops reading the client, and where it starts again. */
const MAX_INFLIGHT = 8192;
const RESUME_INFLIGHT = 4096;

let toFlush: BoltSession[] = [];
let flushQueued = false;
function flushSessions(): void {
  flushQueued = false;
  const list = toFlush;
  toFlush = [];
  for (let i = 0; i < list.length; i++) list[i]!.flush();
}

export class BoltSession {
  private readonly decoder: BoltDecoder;
  private out: Buffer[] = [];
  private flushScheduled = false;
  private inflight = 0;
  private writeBlocked = false;
  private closed = false;
  private readonly clientAddress: string;
  private readonly clientPort: number;
  /** The socket's descriptor for direct writes (util/direct-write.ts); -2: not read yet. */
  private fd = -2;
  /** Idle timeout: the sweeper, and its tick at the last read or write. */
  private readonly sweeper: IdleSweeper | null;
  idleMark = 0;

  constructor(
    private readonly socket: Socket,
    readonly listener: BoltListener,
  ) {
    this.clientAddress = socket.remoteAddress ?? '';
    this.clientPort = socket.remotePort ?? 0;
    this.decoder = new BoltDecoder({ onFrame: (f) => this.onFrame(f), onError: (e) => this.onBadFrame(e) }, listener.options.maxFrame);
    this.sweeper = listener.idleTimeoutMs > 0 ? idleSweeper(listener.idleTimeoutMs) : null;
    socket.on('data', markingReader(this.sweeper, this, (chunk) => this.decoder.push(chunk)));
    socket.on('error', () => socket.destroy());
    // The client half-closed: finish what it asked, then close.
    socket.on('end', () => {
      this.closed = true;
      if (this.inflight === 0 && !this.flushScheduled) socket.end();
    });
    socket.on('close', () => {
      this.closed = true;
      this.sweeper?.delete(this);
      this.decoder.destroy();
    });
  }

  /** Called by the idle sweeper after idle_timeout without a read or a write (util/idle-sweep.ts). */
  onIdleSweep(): void {
    if (this.inflight > 0) return;
    this.listener.stats.countError(ErrorCode.IdleTimeout);
    this.socket.destroy();
  }

  private onFrame(f: BoltFrame): void {
    if (f.type === BoltType.Response) return; // a client answering something: nothing of ours asked
    if (f.cmd === BoltCmd.Heartbeat) {
      this.write(heartbeatAck(shapeOf(f), f.requestId));
      return;
    }
    if (f.cmd !== BoltCmd.Request) {
      this.onBadFrame(new BoltCodecError(`a request frame with the response command code ${f.cmd}`));
      return;
    }
    const call = new BoltCall(this, f);
    if (f.type !== BoltType.Oneway && ++this.inflight === MAX_INFLIGHT) this.socket.pause();
    this.listener.begin(call, this.clientAddress, this.clientPort);
  }

  private onBadFrame(e: BoltCodecError): void {
    this.decoder.destroy();
    this.listener.logBadFrame(`${this.clientAddress}:${this.clientPort}`, e.message);
    this.closed = true;
    // Replies already decided go out first; then the connection closes.
    this.flush();
    this.socket.destroy();
  }

  /** A provider's reply under the client's request id. */
  reframe(reply: BoltFrame, clientId: number): Buffer {
    return copyWithId(reply, clientId);
  }

  /** A call ended; `out` is its response (null: one-way, nothing to send). */
  callDone(out: Buffer | null): void {
    if (out === null) return;
    if (--this.inflight === RESUME_INFLIGHT && !this.closed && !this.writeBlocked) this.socket.resume();
    this.write(out);
  }

  private write(b: Buffer): void {
    if (this.socket.destroyed) return;
    this.out.push(b);
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
    const s = this.socket;
    if (out.length === 0 || s.destroyed) return;
    this.out = [];
    if (this.sweeper !== null) this.idleMark = this.sweeper.tick;
    if (this.fd === -2) this.fd = directFd(s);
    const ok = directWriteBatch(s, this.fd, out);
    if (!ok && !this.writeBlocked) {
      this.writeBlocked = true;
      s.pause();
      s.once('drain', () => {
        this.writeBlocked = false;
        if (!this.closed && this.inflight < MAX_INFLIGHT) s.resume();
      });
    }
    if (this.closed && this.inflight === 0 && !s.destroyed) s.end();
  }
}
