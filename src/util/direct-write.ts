/**
 * Small writes to a connected TCP socket with one send(2), past Node's
 * stream machinery.
 *
 * A proxy at pipeline 1 writes one small reply per request to each client.
 * Through socket.write() each of those goes through the Writable state
 * machine, a WriteWrap object made from a C++ template, the libuv try-write
 * and an after-write callback on the next tick: measured here at 0.6-0.9 µs
 * of user CPU per write on top of the syscall, a sizeable share of what the
 * Redis path spends per request. When nothing is queued on the socket (the
 * usual case: the kernel's send buffer takes a small reply whole) the same
 * bytes can go out with one send() on the socket's descriptor.
 *
 * Why it is safe: libuv writes to a stream only from its own write queue,
 * and polls for writability only while that queue is non-empty. Node keeps
 * writableLength above zero for as long as any earlier write is still
 * queued in libuv or in the stream, so when it is zero nothing of ours is
 * waiting and a send() now keeps the byte order. Whatever send() does not
 * take (a full send buffer: EAGAIN, or a partial write) goes to
 * socket.write(), from which point writableLength is above zero and later
 * writes queue behind it as usual. Errors (EPIPE, ECONNRESET) are left to
 * socket.write() too, so the socket reports them through its usual 'error'
 * and 'close' events. MSG_NOSIGNAL: a closed peer never raises SIGPIPE.
 *
 * What it does not do: count bytes in socket.bytesWritten (nothing in
 * Portway reads it for these sockets), work for TLS sockets or without an
 * fd (the caller gets -1 from directFd and keeps socket.write), or run
 * anywhere but Linux with koffi's libc binding. PORTWAY_DIRECT_WRITE=0
 * turns it off (every write then goes through socket.write).
 */
import type { Socket } from 'node:net';
import { libcFunction, socketFd } from './libc';

const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const FLAGS = MSG_DONTWAIT | MSG_NOSIGNAL;

type Send = (fd: number, buf: Buffer, len: number, flags: number) => number;
let send: Send | null | undefined;

function load(): Send | null {
  if (send !== undefined) return send;
  send = null;
  if (process.platform !== 'linux' || process.env['PORTWAY_DIRECT_WRITE'] === '0') return send;
  send = libcFunction<Send>('long send(int fd, const uint8_t *buf, size_t len, int flags)');
  return send;
}

/** True when direct writes are available in this process. */
export function directWriteAvailable(): boolean {
  return load() !== null;
}

/**
 * The descriptor to pass to directWrite for this socket, or -1 when it must
 * keep socket.write (no direct writes here, a TLS socket, no fd). Read it
 * once the socket is connected; it does not change.
 */
export function directFd(sock: Socket): number {
  if (load() === null) return -1;
  if ((sock as { encrypted?: boolean }).encrypted === true) return -1;
  return socketFd(sock);
}

/**
 * Writes data to the socket: with one send() when nothing is queued on it,
 * else (and for whatever send() did not take) with socket.write(). Returns
 * what socket.write() would: false when the caller should wait for 'drain'.
 */
export function directWrite(sock: Socket, fd: number, data: Buffer): boolean {
  if (fd >= 0 && sock.writableLength === 0 && !sock.writableEnded && !sock.destroyed) {
    const n = send!(fd, data, data.length, FLAGS);
    if (n === data.length) return true;
    if (n > 0) return sock.write(data.subarray(n));
  }
  return sock.write(data);
}

/** Batches up to this many bytes are joined into one buffer; larger ones are handed to the stream (writev, no copy). */
const JOIN_LIMIT = 256 * 1024;

/**
 * Writes a turn's batch of buffers, in order: joined into one and written
 * as directWrite() does, or (a large batch) corked into socket.write(),
 * which sends it with one writev. Returns what socket.write() would.
 */
export function directWriteBatch(sock: Socket, fd: number, bufs: readonly Buffer[]): boolean {
  const n = bufs.length;
  if (n === 1) return directWrite(sock, fd, bufs[0]!);
  let len = 0;
  for (let i = 0; i < n; i++) len += bufs[i]!.length;
  if (len <= JOIN_LIMIT) return directWrite(sock, fd, Buffer.concat(bufs as Buffer[], len));
  sock.cork();
  let ok = true;
  for (let i = 0; i < n; i++) ok = sock.write(bufs[i]!);
  sock.uncork();
  return ok;
}

type SetSockOpt = (fd: number, level: number, name: number, value: Int32Array, len: number) => number;
let setsockopt: SetSockOpt | null | undefined;
const ONE = new Int32Array([1]);
const IPPROTO_TCP = 6;
const TCP_QUICKACK = 12;

/**
 * Asks the kernel to acknowledge what this socket received at once instead
 * of delaying the ACK (Linux leaves quick-ack mode on its own, so callers
 * set it again after each read). For upstreams that write with Nagle's
 * algorithm on: their next small reply waits for our ACK of the previous one.
 */
export function quickAck(fd: number): void {
  if (setsockopt === undefined) {
    setsockopt = load() === null ? null : libcFunction<SetSockOpt>('int setsockopt(int fd, int level, int name, const int32_t *value, uint32_t len)');
  }
  if (setsockopt !== null && fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, ONE, 4);
}
