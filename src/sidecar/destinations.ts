/**
 * Original destinations of a listener's open connections (sidecar mode).
 *
 * The listener reads SO_ORIGINAL_DST once per accepted connection and keeps it
 * here, keyed by the client's address and port (unique among the open
 * connections of one listener: conntrack remaps a clashing source port). The
 * original_dst phase filter, placed first in the chain, copies it onto every
 * exchange of that connection (attributes original_dst_ip, original_dst_port;
 * info original_dst for the access log). Protocols need not know about it.
 *
 * A connection whose original destination is the listener itself (a client
 * that dialled Portway directly, or traffic redirected back into Portway: a
 * loop) is refused by default and counted.
 */
import type { Socket } from 'node:net';
import type { Counter, MetricsRegistry } from '../metrics';
import type { Logger } from '../logger';
import { isOwnOutbound, trackOwnConnections } from './own-connections';
import { getOriginalDst, isOwnAddress, OriginalDstError, plainIp, type OriginalDst } from './original-dst';

export const ORIGINAL_DST_ATTRIBUTES = ['original_dst_ip', 'original_dst_port'] as const;

/** What a listener does with a connection that was not redirected (its original destination is the listener). */
export type DirectPolicy = 'refuse' | 'serve';

/** One open redirected connection. */
export interface DestinationEntry {
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly ip: string;
  readonly port: number;
  /** "ip:port" ("[ip]:port" for IPv6), for logs. */
  readonly text: string;
  readonly portText: string;
  next: DestinationEntry | null;
}

type Outcome = 'redirected' | 'direct_refused' | 'direct_served' | 'unknown_refused' | 'loop_refused';

export class OriginalDstTracker {
  /** Client port -> entries (a short chain when two clients share a port). */
  private readonly byPort = new Map<number, DestinationEntry>();
  private readonly counters: Record<Outcome, Counter>;
  private lastWarn = 0;
  private suppressed = 0;
  direct: DirectPolicy = 'refuse';
  private log: Logger;

  constructor(
    readonly listener: string,
    metrics: MetricsRegistry,
    log: Logger,
  ) {
    this.log = log;
    const c = (result: Outcome) =>
      metrics.counter(
        'portway_original_dst_total',
        'Accepted connections of original_dst listeners, by outcome: redirected (a REDIRECTed connection), direct_refused (its original destination is the listener: a direct connection or a loop), direct_served (the same, served because original_dst_direct is serve), unknown_refused (the kernel knows no original destination), loop_refused (Portway\'s own upstream connection redirected back to it).',
        { listener, result },
      );
    trackOwnConnections(true);
    this.counters = { redirected: c('redirected'), direct_refused: c('direct_refused'), direct_served: c('direct_served'), unknown_refused: c('unknown_refused'), loop_refused: c('loop_refused') };
    metrics.gauge('portway_original_dst_tracked', 'Open redirected connections whose original destination is kept.', { listener }, () => this.size);
  }

  size = 0;

  configure(direct: DirectPolicy, log: Logger): void {
    this.direct = direct;
    this.log = log;
  }

  /**
   * Reads the original destination of an accepted socket. Returns the entry
   * to release when the connection closes, null for a direct connection that
   * is served, or false when the connection must be refused (the caller
   * destroys it; it is already counted and logged).
   */
  accept(sock: Socket): DestinationEntry | null | false {
    if (isOwnOutbound(sock)) {
      this.counters.loop_refused.inc();
      this.warn({ client: `${sock.remoteAddress}:${sock.remotePort}` }, "redirect loop: Portway's own upstream connection was redirected back to it (exclude Portway's uid/gid from interception); refused");
      return false;
    }
    let dst: OriginalDst;
    try {
      dst = getOriginalDst(sock);
    } catch (err) {
      // ENOENT: no conntrack entry, so nothing redirected it: a direct connection.
      const direct = err instanceof OriginalDstError && err.errno === 'ENOENT';
      if (direct) return this.onDirect(sock, null);
      this.counters.unknown_refused.inc();
      this.warn({ client: `${sock.remoteAddress}:${sock.remotePort}`, reason: (err as Error).message }, 'original destination unknown: connection refused');
      return false;
    }
    if (isOwnAddress(dst, sock)) return this.onDirect(sock, dst);
    this.counters.redirected.inc();
    const ip = plainIp(dst.ip);
    const e: DestinationEntry = {
      clientAddress: sock.remoteAddress ?? '',
      clientPort: sock.remotePort ?? 0,
      ip,
      port: dst.port,
      text: ip.includes(':') ? `[${ip}]:${dst.port}` : `${ip}:${dst.port}`,
      portText: String(dst.port),
      next: null,
    };
    e.next = this.byPort.get(e.clientPort) ?? null;
    this.byPort.set(e.clientPort, e);
    this.size++;
    return e;
  }

  private onDirect(sock: Socket, dst: OriginalDst | null): null | false {
    if (this.direct === 'serve') {
      this.counters.direct_served.inc();
      return null;
    }
    this.counters.direct_refused.inc();
    this.warn(
      { client: `${sock.remoteAddress}:${sock.remotePort}`, original_dst: dst ? `${dst.ip}:${dst.port}` : undefined },
      'connection not redirected (a direct connection to the listener, or a redirect loop): refused',
    );
    return false;
  }

  /** At most one line a second, so a loop cannot flood the log. */
  private warn(obj: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if (now - this.lastWarn < 1000) {
      this.suppressed++;
      return;
    }
    this.lastWarn = now;
    this.log.warn(this.suppressed > 0 ? { ...obj, suppressed: this.suppressed } : obj, msg);
    this.suppressed = 0;
  }

  release(e: DestinationEntry): void {
    let cur: DestinationEntry | null = this.byPort.get(e.clientPort) ?? null;
    let prev: DestinationEntry | null = null;
    while (cur !== null) {
      if (cur === e) {
        if (prev === null) {
          if (e.next === null) this.byPort.delete(e.clientPort);
          else this.byPort.set(e.clientPort, e.next);
        } else prev.next = e.next;
        this.size--;
        return;
      }
      prev = cur;
      cur = cur.next;
    }
  }

  /** The original destination of the open connection from clientAddress:clientPort, or null. */
  lookup(clientAddress: string, clientPort: number): DestinationEntry | null {
    let e = this.byPort.get(clientPort) ?? null;
    while (e !== null) {
      if (e.clientAddress === clientAddress) return e;
      e = e.next;
    }
    return null;
  }
}
