/**
 * A real Redis Cluster of three masters (no replicas) for integration tests:
 * three `redis-server --cluster-enabled yes` on free loopback ports (each
 * also needs port + 10000 free, for the cluster bus), joined with
 * `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`, ready
 * once every node reports cluster_state:ok. Everything is spawned
 * asynchronously (Portway runs in this process), and stop() kills the
 * servers and removes their temp dir.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import Redis from 'ioredis';
import { freePort, sleep } from './net';
import { tempDir } from './portway';
import { ensureRedisServer, redisPing } from './redis';
import { ensureDebianBinary, startProcess, type StartedProcess } from './process';

export interface RedisClusterNode {
  port: number;
  address: string;
}

export interface RedisClusterHandle {
  nodes: RedisClusterNode[];
  /** A plain (non-cluster) client to one node. */
  client(i: number): Redis;
  /** Runs redis-cli with these arguments; resolves with its stdout (rejects on a non-zero exit). */
  cli(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A free port p below 55536 whose bus port p + 10000 is free too. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const p = await freePort();
    if (p >= 55536 || taken.has(p) || taken.has(p + 10000)) continue;
    if (await portFree(p + 10000)) return p;
  }
  for (let p = 20000 + Math.floor(Math.random() * 20000); ; p++) {
    if (!taken.has(p) && (await portFree(p)) && (await portFree(p + 10000))) return p;
  }
}

/** Runs a command asynchronously; resolves with stdout. */
export function run(bin: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    p.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${bin} ${args.join(' ')} exited ${code}: ${(err || out).slice(-800)}`));
    });
  });
}

export async function startRedisCluster(): Promise<RedisClusterHandle> {
  const server = ensureRedisServer();
  const cliBin = ensureDebianBinary('redis-cli', 'redis-tools');
  const dir = tempDir('portway-rcluster-');
  const procs: StartedProcess[] = [];
  const clients: Redis[] = [];
  const taken = new Set<number>();
  const nodes: RedisClusterNode[] = [];
  const stop = async () => {
    for (const c of clients) c.disconnect();
    for (const p of procs) await p.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 3; i++) {
      for (let attempt = 1; ; attempt++) {
        const port = await clusterPort(taken);
        try {
          const p = await startProcess(
            server,
            [
              '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
              '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '5000',
              '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning',
            ],
            { name: `redis-server (cluster) on port ${port}`, ready: () => redisPing(port), timeoutMs: 5000, pollMs: 20 },
          );
          procs.push(p);
          taken.add(port).add(port + 10000);
          nodes.push({ port, address: `127.0.0.1:${port}` });
          break;
        } catch (e) {
          if (attempt === 3) throw e;
        }
      }
    }
    await run(cliBin, ['--cluster', 'create', ...nodes.map((n) => n.address), '--cluster-replicas', '0', '--cluster-yes']);
    // Every node must agree the cluster is up (gossip takes a moment after create).
    const deadline = Date.now() + 20_000;
    for (const n of nodes) {
      for (;;) {
        const info = await run(cliBin, ['-p', String(n.port), 'cluster', 'info']).catch(() => '');
        if (/cluster_state:ok/.test(info)) break;
        if (Date.now() > deadline) throw new Error(`node ${n.address} did not reach cluster_state:ok: ${info}`);
        await sleep(100);
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    nodes,
    client: (i) => {
      const c = new Redis({ port: nodes[i]!.port, host: '127.0.0.1', lazyConnect: false });
      clients.push(c);
      return c;
    },
    cli: (args) => run(cliBin, args),
    stop,
  };
}
