/**
 * Socket reads without the stream machinery, into one buffer shared by every
 * socket that uses it.
 *
 * Node's default read path allocates a 64 KiB buffer per read, shrinks it to
 * what was read and pushes it through Readable (state checks, 'data' emit
 * with an arguments array); on a proxy hop that reads one small frame per
 * call that is a large share of the JS cost. With `onread` Node reads into a
 * buffer we give it: reads are delivered one at a time on the event loop,
 * so one buffer serves every socket, and an idle connection holds no read
 * buffer at all. Each read is copied out into a buffer of its own before it
 * is delivered (small ones come from Node's shared pool), so a decoder may
 * keep views of a chunk as long as it likes, exactly as with 'data' events.
 *
 * Accepted sockets cannot be given `onread` by net.Server: adoptForSharedReads
 * re-wraps the accepted handle (tcp/pump.ts adoptWithUserBuffer). Outgoing
 * sockets take `sharedReads().onread` at connect (routing/connect.ts).
 */
import type { OnReadOpts, Socket } from 'node:net';
import { adoptWithUserBuffer } from '../protocols/tcp/pump';

const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
/** Reads up to this size are copied byte by byte: Buffer.copy of a part makes a temporary view each time. */
const SMALL_READ = 128;

/**
 * One socket's reads: `onread` for Node, delivering each read to the
 * socket's one 'data' listener directly (or as a 'data' event when it has
 * several, or none yet).
 */
export class SharedBufferReader {
  socket: Socket | null = null;
  /** The socket's one 'data' listener, called directly (emit() would allocate its arguments array per read). */
  sink: ((chunk: Buffer) => void) | null = null;
  readonly onread: OnReadOpts = { buffer: READ_BUFFER, callback: (n: number) => this.data(n) };

  private data(n: number): boolean {
    const chunk = Buffer.allocUnsafe(n);
    if (n <= SMALL_READ) for (let i = 0; i < n; i++) chunk[i] = READ_BUFFER[i]!;
    else READ_BUFFER.copy(chunk, 0, 0, n);
    const sink = this.sink;
    if (sink !== null) sink.call(this.socket, chunk);
    else this.socket!.emit('data', chunk);
    return true;
  }

  /** Call once the socket's 'data' listener is attached: with exactly one, reads go to it without emit(). */
  bindSink(): void {
    const s = this.socket!;
    this.sink = s.listenerCount('data') === 1 ? (s.listeners('data')[0] as (chunk: Buffer) => void) : null;
  }
}

/**
 * Serves an accepted socket with shared-buffer reads: `attach` gets the
 * socket to use (the re-wrapped one, or the accepted one when it cannot be
 * re-wrapped) and sets up its listeners; the socket is then read. Returns
 * that socket (the listener tracks it instead of the accepted one).
 */
export function adoptForSharedReads(accepted: Socket, attach: (socket: Socket) => void): Socket {
  const reader = new SharedBufferReader();
  const adopted = adoptWithUserBuffer(accepted, reader.onread);
  const socket = adopted ?? accepted;
  // The re-wrapped socket starts paused; TCP_NODELAY stays set on the OS socket (the listener sets it at accept).
  socket.setNoDelay(true);
  reader.socket = socket;
  attach(socket);
  if (adopted !== null) {
    reader.bindSink();
    socket.resume();
  }
  return socket;
}
