/**
 * The L4 byte mover, written by hand because it is the hot path.
 *
 * stream.pipe() gets a freshly allocated buffer from Node for every read
 * (64 KiB, then trimmed), so a bulk transfer spends its time in malloc, page
 * faults and GC. A Pump reads with Node's `onread` option into a buffer it
 * owns and reuses it whenever the write to the other side completed at once
 * (writableLength back to 0: the kernel has the bytes). Only when the write
 * had to queue does the chunk keep the buffer and the next read get a new one.
 * Buffers start at 16 KiB and double up to 128 KiB while reads fill them, so
 * idle connections stay small and bulk ones make few syscalls.
 * Returning false from the read callback stops reading (backpressure) until
 * the destination drains.
 */
import { Socket, type OnReadOpts } from 'node:net';

const INITIAL = 16 * 1024;
const MAX = 128 * 1024;

export class Pump {
  private buf: Buffer = Buffer.allocUnsafe(INITIAL);
  src: Socket | null = null;
  dst: Socket | null = null;
  readonly onread: OnReadOpts;
  private readonly onDrain = (): void => {
    this.src?.resume();
  };

  constructor() {
    this.onread = { buffer: () => this.buf, callback: (n: number, b: Uint8Array) => this.data(n, b as Buffer) };
  }

  private data(n: number, b: Buffer): boolean {
    const dst = this.dst!;
    const full = n === b.length;
    const ok = dst.write(full ? b : b.subarray(0, n));
    if (dst.writableLength !== 0 || (full && b.length < MAX)) {
      // The buffer is still referenced by a queued write, or reads fill it: take a new one.
      this.buf = Buffer.allocUnsafe(full && b.length < MAX ? b.length * 2 : b.length);
    }
    if (!ok) {
      dst.once('drain', this.onDrain);
      return false;
    }
    return true;
  }
}

/**
 * Re-wraps an accepted socket so that it reads through `onread` (net.Server
 * offers no way to pass onread for accepted sockets). The new Socket takes the
 * same OS handle, starts paused, and the original wrapper is discarded.
 * Returns null when the socket does not have the expected shape; callers then
 * fall back to stream reads.
 */
export function adoptWithUserBuffer(sock: Socket, onread: OnReadOpts): Socket | null {
  const internal = sock as unknown as { _handle: { readStart?: unknown; readStop?: unknown } | null };
  const handle = internal._handle;
  if (!handle || typeof handle.readStart !== 'function' || typeof handle.readStop !== 'function' || sock.readableLength > 0) return null;
  handle.readStop?.call(handle);
  internal._handle = null;
  sock.destroy();
  const adopted = new Socket({ handle, allowHalfOpen: true, pauseOnCreate: true, onread } as unknown as ConstructorParameters<typeof Socket>[0]);
  // TCP_NODELAY is a property of the OS socket: the listener already set it at accept.
  return adopted;
}
