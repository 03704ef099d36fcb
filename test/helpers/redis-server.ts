/**
 * A real redis-server for differential tests: started on a free loopback
 * port with persistence off, stopped with SIGKILL. When the binary is
 * missing it is installed from Debian (package redis-server) if we run as
 * root; otherwise the test fails naming the package. Tests never skip.
 *
 * RawRedisClient speaks RESP over a plain socket and hands back each reply
 * as the exact bytes the server sent, framed with Portway's own reply
 * decoder, so tests compare wire bytes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RespReplyDecoder } from '../../src/protocols/redis/reply-decoder';
import { encodeCommand } from '../../src/protocols/redis/resp-writer';
import { freePort, sleep } from './net';

const PACKAGE = 'redis-server';

function findBinary(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const p = r.status === 0 ? r.stdout.trim() : '';
  if (p) return p;
  return existsSync('/usr/bin/redis-server') ? '/usr/bin/redis-server' : null;
}

/** The redis-server binary; installs the Debian package when root and it is missing. */
export function redisServerBinary(): string {
  const found = findBinary();
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new Error(`this test needs redis-server: install the Debian package '${PACKAGE}' (apt-get install -y ${PACKAGE})`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '-q', PACKAGE], { env, encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-q'], { env, encoding: 'utf8', timeout: 600_000 });
    r = spawnSync('apt-get', ['install', '-y', '-q', PACKAGE], { env, encoding: 'utf8', timeout: 600_000 });
  }
  const after = findBinary();
  if (!after) throw new Error(`could not install the Debian package '${PACKAGE}' (apt-get exit ${r.status}): ${(r.stderr ?? '').slice(-400)}`);
  return after;
}

export interface RedisServerProcess {
  readonly port: number;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/** Starts `redis-server --port P --bind 127.0.0.1 --save '' --appendonly no` and waits until it answers. */
export async function startRedisServer(): Promise<RedisServerProcess> {
  const bin = redisServerBinary();
  const dir = mkdtempSync(join(tmpdir(), 'portway-redis-server-'));
  let lastErr = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    // The port may be taken between the probe and the bind: retry with another.
    const port = await freePort();
    const proc = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    running.add(proc);
    let stderr = '';
    proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    let exited = false;
    const gone = new Promise<void>((r) =>
      proc.once('exit', () => {
        exited = true;
        running.delete(proc);
        r();
      }),
    );
    for (let i = 0; i < 250 && !exited; i++) {
      if (await answersPing(port)) {
        return {
          port,
          stop: async () => {
            if (!exited) proc.kill('SIGKILL');
            await gone;
            rmSync(dir, { recursive: true, force: true });
          },
        };
      }
      await sleep(20);
    }
    if (!exited) proc.kill('SIGKILL');
    await gone;
    lastErr = stderr;
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`redis-server did not start: ${lastErr.slice(-400)}`);
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let got = '';
    s.setTimeout(1000, () => s.destroy());
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (c: Buffer) => {
      got += c.toString();
      if (got.includes('\r\n')) s.destroy();
    });
    s.on('error', () => {});
    s.on('close', () => resolve(got.startsWith('+PONG')));
  });
}

/** One connection; replies come back as raw bytes, in request order. */
export class RawRedisClient {
  private readonly waiting: Array<(reply: Buffer) => void> = [];
  private failure: Error | null = null;

  private constructor(private readonly socket: Socket) {
    const decoder = new RespReplyDecoder({
      onReply: (buf, start, end) => {
        const w = this.waiting.shift();
        if (w) w(Buffer.from(buf.subarray(start, end)));
      },
      onError: (err) => socket.destroy(err),
    });
    socket.on('data', (c: Buffer) => decoder.push(c));
    socket.on('error', (e) => (this.failure = e));
  }

  static connect(port: number): Promise<RawRedisClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1' });
      s.setNoDelay(true);
      s.once('connect', () => {
        s.removeListener('error', reject);
        resolve(new RawRedisClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Sends one command; resolves with the reply's exact bytes. */
  send(args: ReadonlyArray<string | Buffer>): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.socket.write(encodeCommand(args));
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
