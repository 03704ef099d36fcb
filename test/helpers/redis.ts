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
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort, sleep } from './net';
import { tempDir } from './portway';

const PACKAGE = 'redis-server';

function redisServerPath(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const p = r.status === 0 ? r.stdout.trim() : '';
  if (p) return p;
  return existsSync('/usr/bin/redis-server') ? '/usr/bin/redis-server' : null;
}

/** The redis-server binary, installing the Debian package as root when it is missing. */
export function ensureRedisServer(): string {
  const found = redisServerPath();
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new Error(`redis-server is required by this test: install the Debian package '${PACKAGE}' (apt-get install -y ${PACKAGE})`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '-q', PACKAGE], { env, encoding: 'utf8', timeout: 600_000 });
  let r = install();
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-q'], { env, encoding: 'utf8', timeout: 600_000 });
    r = install();
  }
  const after = redisServerPath();
  if (!after) throw new Error(`could not install the Debian package '${PACKAGE}' (apt-get exit ${r.status}): ${(r.stderr ?? '').slice(-500)}`);
  return after;
}

/** Servers started here, killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

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
}

export async function startRedis(): Promise<RedisServer> {
  const bin = ensureRedisServer();
  const dir = tempDir('portway-redis-');
  let port = await freePort();
  let proc: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';

  const spawnOnce = async (): Promise<boolean> => {
    const p = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    p.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    let gone = false;
    exited = new Promise<void>((r) => p.once('exit', () => ((gone = true), live.delete(p), r())));
    live.add(p);
    proc = p;
    for (let i = 0; i < 250 && !gone; i++) {
      if (await redisPing(port)) return true;
      await sleep(20);
    }
    if (!gone) p.kill('SIGKILL');
    await exited;
    proc = null;
    return false;
  };

  const start = async (): Promise<void> => {
    if (proc) return;
    if (await spawnOnce()) return;
    throw new Error(`redis-server did not start on port ${port}: ${stderr.slice(-500)}`);
  };

  // The free port may be taken between the probe and the bind: try a few.
  let ok = false;
  for (let attempt = 0; attempt < 3 && !ok; attempt++) {
    if (attempt > 0) port = await freePort();
    ok = await spawnOnce();
  }
  if (!ok) throw new Error(`redis-server did not start: ${stderr.slice(-500)}`);

  return {
    get port() {
      return port;
    },
    get address() {
      return `127.0.0.1:${port}`;
    },
    running: () => proc !== null,
    stop: async () => {
      const p = proc;
      if (!p) return;
      p.kill('SIGCONT'); // a paused process still dies on SIGKILL, but be explicit
      p.kill('SIGKILL');
      await exited;
      proc = null;
    },
    start,
    pause: () => {
      (proc as ChildProcess | null)?.kill('SIGSTOP');
    },
    resume: () => {
      (proc as ChildProcess | null)?.kill('SIGCONT');
    },
  };
}
