/**
 * libc functions through koffi, for the few socket calls Node does not
 * offer (getsockopt SO_ORIGINAL_DST, recv MSG_PEEK, send past the stream
 * machinery, setsockopt TCP_QUICKACK). libc is loaded once per process;
 * every function is bound once by its caller and cached there.
 */
import type { Socket } from 'node:net';

interface Koffi {
  load(path: string): { func(sig: string): unknown };
  errno(): number;
}

let koffi: Koffi | null | undefined;
let lib: { func(sig: string): unknown } | null = null;

function load(): boolean {
  if (koffi === undefined) {
    koffi = null;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const k = require('koffi') as Koffi;
      lib = k.load('libc.so.6');
      koffi = k;
    } catch {
      koffi = null;
    }
  }
  return koffi !== null;
}

/** Binds a libc function by its C signature (koffi syntax); null when koffi or libc cannot be loaded, or the binding fails. */
export function libcFunction<F>(signature: string): F | null {
  if (!load()) return null;
  try {
    return lib!.func(signature) as F;
  } catch {
    return null;
  }
}

/** errno of the last libc call made through koffi on this thread. */
export function libcErrno(): number {
  return koffi ? koffi.errno() : 0;
}

/** The OS descriptor of a socket (from its libuv handle), or -1 when it has none. */
export function socketFd(sock: Socket): number {
  const h = (sock as unknown as { _handle?: { fd?: number } | null })._handle;
  return h && typeof h.fd === 'number' && h.fd >= 0 ? h.fd : -1;
}
