/**
 * Looking at a connection's first bytes without consuming them:
 * recv(MSG_PEEK | MSG_DONTWAIT) through koffi on the socket's fd, while
 * Node's reading of the handle is stopped. The bytes stay in the kernel, so
 * the chosen protocol gets an untouched socket and keeps its own fast path
 * (the Redis and TCP handlers take over the handle to read into their own
 * buffers; node:http consumes the handle directly). Node does not tell when
 * a socket becomes readable without reading it, so detection polls, starting
 * at once and backing off to PEEK_MAX_INTERVAL_MS.
 */
import type { Socket } from 'node:net';
import { libcErrno, libcFunction, socketFd } from '../../util/libc';

const MSG_PEEK = 0x2;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const EINTR = 4;
export const PEEK_MAX_INTERVAL_MS = 20;

type Recv = (fd: number, buf: Buffer, len: number, flags: number) => number;
let lib: { recv: Recv; errno: () => number } | null | undefined;

function load(): { recv: Recv; errno: () => number } | null {
  if (lib !== undefined) return lib;
  const recv = libcFunction<Recv>('long recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)');
  lib = recv === null ? null : { recv, errno: libcErrno };
  return lib;
}

export function peekSupported(): boolean {
  return process.platform === 'linux' && load() !== null;
}

interface StreamHandle {
  readStart(): number;
  readStop(): number;
  reading?: boolean;
}

function handleOf(sock: Socket): StreamHandle | null {
  const h = (sock as unknown as { _handle?: StreamHandle | null })._handle;
  return h && typeof h.readStart === 'function' && typeof h.readStop === 'function' ? h : null;
}

/** Stops Node reading the socket (right after accept, before any byte was read); false when it cannot. */
export function holdReading(sock: Socket): boolean {
  const h = handleOf(sock);
  if (h === null || sock.readableLength > 0) return false;
  h.readStop();
  h.reading = false;
  return true;
}

/** Puts the socket back as accepted: the handle reading, the stream waiting for it. */
export function releaseReading(sock: Socket): void {
  const h = handleOf(sock);
  if (h === null) return;
  h.reading = true;
  h.readStart();
}

/** Peeks up to buf.length bytes: the count (0: the client closed), -1 nothing yet, or -2 an error (reset). */
export function peek(sock: Socket, buf: Buffer): number {
  const l = load();
  const fd = socketFd(sock);
  if (l === null || fd < 0) return -2;
  for (;;) {
    const r = l.recv(fd, buf, buf.length, MSG_PEEK | MSG_DONTWAIT);
    if (r >= 0) return r;
    const e = l.errno();
    if (e === EINTR) continue;
    return e === EAGAIN ? -1 : -2;
  }
}
