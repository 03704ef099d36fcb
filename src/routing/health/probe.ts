/**
 * Active health check probes, keyed by the `type` written in
 * health_check.active. The checker owns timing (interval, jitter, thresholds);
 * a probe only answers "is this endpoint serving right now?" within a timeout.
 *
 * Each protocol registers its own probe beside its code, and the composition
 * root (src/builtins.ts, builtinHealthProbes) puts them in the registry:
 * - tcp (here): connect and close.
 * - redis (protocols/redis/health-probe.ts): PING, expects +PONG.
 * - later: kafka sends ApiVersions v0 and expects a response with the same
 *   correlation id and error code 0; bolt sends a heartbeat request (cmdcode
 *   0) and expects a heartbeat response; http sends `GET <path>` and expects
 *   a status in an allowed range. Such a probe adds its own keys (http: path,
 *   host, expected_statuses) to the health_check.active schema and reads
 *   them from the config passed to check().
 */
import { connect, type Socket } from 'node:net';
import type { ActiveHealthConfig } from '../../config/types';

/** What a probe needs to know about the endpoint it checks. */
export interface ProbeTarget {
  host: string;
  port: number;
  /** host:port, for messages. */
  address: string;
}

export interface HealthProbe {
  readonly type: string;
  readonly description: string;
  /** Resolves when the endpoint is healthy; rejects (with a short reason) otherwise. Must settle within timeoutMs and leave no socket open. */
  check(target: ProbeTarget, timeoutMs: number, config?: ActiveHealthConfig): Promise<void>;
}

export class HealthProbeRegistry {
  private readonly probes = new Map<string, HealthProbe>();

  register(p: HealthProbe): this {
    if (this.probes.has(p.type)) throw new Error(`health check type '${p.type}' registered twice`);
    this.probes.set(p.type, p);
    return this;
  }

  get(type: string): HealthProbe | undefined {
    return this.probes.get(type);
  }

  /** For the config validator: the known types. */
  specs(): Map<string, HealthProbe> {
    return new Map(this.probes);
  }
}

/**
 * Connects to the target and runs `talk` on the socket; fails on connect
 * error, socket error, or when nothing settled within timeoutMs. The socket
 * is always destroyed. Protocol probes build on this.
 */
export function probeConnection(target: ProbeTarget, timeoutMs: number, talk: (sock: Socket, done: (err: Error | null) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: target.host, port: target.port, noDelay: true });
    let settled = false;
    const done = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    sock.on('error', (err: NodeJS.ErrnoException) => done(new Error(err.code ?? err.message)));
    sock.on('close', () => done(new Error('connection closed')));
    sock.once('connect', () => talk(sock, done));
  });
}

/** tcp: the endpoint accepts a connection. */
export const tcpHealthProbe: HealthProbe = {
  type: 'tcp',
  description: 'Connects and closes.',
  check: (target, timeoutMs) => probeConnection(target, timeoutMs, (_sock, done) => done(null)),
};

let defaults: HealthProbeRegistry | null = null;

/**
 * The registry clusters use when their builder passes none (a Cluster made
 * directly, as in tests): tcp only. Proxy passes builtins' full registry.
 */
export function defaultHealthProbes(): HealthProbeRegistry {
  if (defaults === null) defaults = new HealthProbeRegistry().register(tcpHealthProbe);
  return defaults;
}
