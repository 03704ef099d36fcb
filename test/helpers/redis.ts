/**
 * A real redis-server for integration tests, on a free loopback port, with
 * persistence off and its files in a temp dir. When the binary is missing it
 * is installed from Debian (package redis-server) if we are root; otherwise
 * the test fails naming the package. Tests never skip.
 *
 * stop() kills the server (SIGKILL, as abrupt as a crash); start() brings it
 * back on the same port, empty. pause()/resume() freeze it with
 * SIGSTOP/SIGCONT: connections stay open and nothing answers, which is how a
 * hung Redis looks to a client.
 */
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from './net';
import { tempDir } from './portway';
import { ensureDebianBinary, startProcess, ServerProcess } from './process';

/** The redis-server binary, installing the Debian package as root when it is missing. */
export function ensureRedisServer(): string {
  return ensureDebianBinary('redis-server', 'redis-server');
}

/** True when something on the port answers PING with +PONG. */
export function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let out = '';
    s.setTimeout(1000, () => s.destroy());
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\r\n')) s.destroy();
    });
    s.on('error', () => {});
    s.on('close', () => resolve(out.startsWith('+PONG')));
  });
}

export interface RedisServer {
  port: number;
  /** 127.0.0.1:port */
  address: string;
  running(): boolean;
  /** Kills the server (SIGKILL) and waits for it to be gone. Its data is lost (persistence is off). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open, nothing answers. */
  pause(): void;
  /** Thaws a paused server (SIGCONT). */
  resume(): void;
  /** Stops it and removes its temp dir. */
  close(): Promise<void>;
}

export async function startRedis(): Promise<RedisServer> {
  const bin = ensureRedisServer();
  const dir = tempDir('portway-redis-');
  let port = await freePort();
  const server = new ServerProcess(
    () =>
      startProcess(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'], {
        name: `redis-server on port ${port}`,
        ready: () => redisPing(port),
        timeoutMs: 5000,
        pollMs: 20,
      }),
    dir,
  );

  // The free port may be taken between the probe and the bind: try a few.
  for (let attempt = 1; ; attempt++) {
    try {
      await server.start();
      break;
    } catch (e) {
      if (attempt === 3) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`redis-server did not start: ${(e as Error).message}`);
      }
      port = await freePort();
    }
  }

  return {
    get port() {
      return port;
    },
    get address() {
      return `127.0.0.1:${port}`;
    },
    running: () => server.running(),
    stop: () => server.stop(),
    start: () => server.start(),
    pause: () => server.signal('SIGSTOP'),
    resume: () => server.signal('SIGCONT'),
    close: () => server.close(),
  };
}
