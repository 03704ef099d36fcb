/**
 * The destination a connection had before iptables REDIRECT (or DNAT)
 * rewrote it to Portway: getsockopt(SO_ORIGINAL_DST). Node has no API for
 * it, so libc's getsockopt is called through koffi on the socket's fd.
 *
 *   IPv4: getsockopt(fd, SOL_IP = 0, SO_ORIGINAL_DST = 80, struct sockaddr_in *, 16)
 *   IPv6: getsockopt(fd, SOL_IPV6 = 41, IP6T_SO_ORIGINAL_DST = 80, struct sockaddr_in6 *, 28)
 *
 *   sockaddr_in:  u16 family (host order) | u16 port (network order) | 4 bytes address | 8 bytes zero
 *   sockaddr_in6: u16 family | u16 port (network order) | u32 flowinfo | 16 bytes address | u32 scope id
 *
 * The kernel answers from the conntrack entry. A connection that was not
 * NATed reports its own local address (so the caller compares with that to
 * detect direct connections and loops); with no conntrack entry at all (the
 * nat table was never used) the call fails with ENOENT.
 */
import type { Socket } from 'node:net';
import { libcErrno, libcFunction, socketFd } from '../util/libc';

const SOL_IP = 0;
const SOL_IPV6 = 41;
const SO_ORIGINAL_DST = 80;
const AF_INET = 2;
const AF_INET6 = 10;

export interface OriginalDst {
  ip: string;
  port: number;
  family: 4 | 6;
}

type GetSockOpt = (fd: number, level: number, name: number, val: Buffer, len: number[]) => number;

interface Libc {
  getsockopt: GetSockOpt;
  errno: () => number;
}

let libc: Libc | null | undefined;

/** Binds getsockopt once; null when that is impossible (no koffi binary for this platform). */
function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  const getsockopt = libcFunction<GetSockOpt>('int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)');
  libc = getsockopt === null ? null : { getsockopt, errno: libcErrno };
  return libc;
}

/** True when SO_ORIGINAL_DST can be read on this platform (Linux with koffi's libc binding). */
export function originalDstSupported(): boolean {
  return process.platform === 'linux' && loadLibc() !== null;
}

export class OriginalDstError extends Error {
  constructor(
    message: string,
    /** errno name when the syscall failed (ENOENT: no conntrack entry). */
    readonly errno: string,
  ) {
    super(message);
    this.name = 'OriginalDstError';
  }
}

const ERRNO_NAMES: Record<number, string> = { 2: 'ENOENT', 9: 'EBADF', 22: 'EINVAL', 88: 'ENOTSOCK', 92: 'ENOPROTOOPT' };

const buf = Buffer.alloc(28);
const lenBox = [0];

/** Decodes a sockaddr_in / sockaddr_in6 (as the kernel wrote it, little-endian host). */
export function decodeSockaddr(b: Buffer): OriginalDst | null {
  const family = b.readUInt16LE(0);
  const port = b.readUInt16BE(2);
  if (family === AF_INET) return { ip: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port, family: 4 };
  if (family === AF_INET6) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(8 + i * 2).toString(16));
    return { ip: compressIpv6(groups), port, family: 6 };
  }
  return null;
}

/** RFC 5952 text form: the longest run (2 or more) of zero groups becomes "::"; IPv4-mapped stays dotted. */
function compressIpv6(g: string[]): string {
  if (g.slice(0, 5).every((x) => x === '0') && g[5] === 'ffff') {
    const a = parseInt(g[6]!, 16);
    const b = parseInt(g[7]!, 16);
    return `::ffff:${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return g.join(':');
  return `${g.slice(0, bestStart).join(':')}::${g.slice(bestStart + bestLen).join(':')}`;
}

/**
 * The original destination of an accepted connection. Throws OriginalDstError
 * when the kernel has none (ENOENT) or the socket has no fd.
 */
export function getOriginalDst(sock: Socket): OriginalDst {
  const lib = loadLibc();
  if (lib === null) throw new OriginalDstError('SO_ORIGINAL_DST is not available (koffi could not load libc)', 'ENOSYS');
  const fd = socketFd(sock);
  if (fd < 0) throw new OriginalDstError('the socket has no file descriptor', 'EBADF');
  // The family of the accepted socket decides the level: an IPv6 listener gets IPv6 (possibly v4-mapped) peers.
  const v6 = sock.remoteFamily === 'IPv6' && !(sock.localAddress ?? '').startsWith('::ffff:');
  buf.fill(0);
  lenBox[0] = v6 ? 28 : 16;
  const r = lib.getsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, SO_ORIGINAL_DST, buf, lenBox);
  if (r !== 0) {
    const e = lib.errno();
    const name = ERRNO_NAMES[e] ?? `errno ${e}`;
    throw new OriginalDstError(`getsockopt(SO_ORIGINAL_DST) failed: ${name}`, name);
  }
  const d = decodeSockaddr(buf);
  if (d === null) throw new OriginalDstError(`getsockopt(SO_ORIGINAL_DST) returned address family ${buf.readUInt16LE(0)}`, 'EAFNOSUPPORT');
  return d;
}

/** Strips the IPv4-mapped prefix so '::ffff:10.0.0.1' and '10.0.0.1' compare equal. */
export function plainIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/** True when `dst` is the socket's own local address: a direct connection to Portway, or a redirect loop. */
export function isOwnAddress(dst: OriginalDst, sock: Socket): boolean {
  return dst.port === sock.localPort && plainIp(dst.ip) === plainIp(sock.localAddress ?? '');
}
