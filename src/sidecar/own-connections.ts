/**
 * Portway's own upstream connections, by local port, so that an original_dst
 * listener recognises a connection that Portway itself opened and iptables
 * redirected back to it (a loop: the owner uid/gid exclusion is missing or
 * wrong). Such a connection's original destination is a real remote
 * address, so only its source tells it apart. Tracking is on only while a
 * listener has original_dst: true.
 *
 * The local port is read on the tick after connect() was called: Node issues
 * the connect(2) for an IP address on the next tick, so the port is bound
 * before any accept of the same process can run.
 */
import type { Socket } from 'node:net';
import { plainIp } from './original-dst';

let enabled = false;
const byPort = new Map<number, string>();

export function trackOwnConnections(on: boolean): void {
  enabled = on;
  if (!on) byPort.clear();
}

export function ownConnectionsTracked(): boolean {
  return enabled;
}

/** Registers an upstream socket that was just asked to connect (no-op unless tracking is on). */
export function trackOutbound(sock: Socket): void {
  if (!enabled) return;
  process.nextTick(() => {
    const port = sock.localPort;
    const addr = sock.localAddress;
    if (port === undefined || addr === undefined || sock.destroyed) return;
    const ip = plainIp(addr);
    byPort.set(port, ip);
    sock.once('close', () => {
      if (byPort.get(port) === ip) byPort.delete(port);
    });
  });
}

/** True when the accepted socket's peer is one of Portway's own upstream sockets. */
export function isOwnOutbound(accepted: Socket): boolean {
  if (!enabled || byPort.size === 0) return false;
  const port = accepted.remotePort;
  const ip = byPort.get(port ?? -1);
  return ip !== undefined && ip === plainIp(accepted.remoteAddress ?? '');
}
