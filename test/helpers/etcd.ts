/**
 * A real etcd (Debian `etcd-server`, v3.4) for integration tests: one member
 * on free loopback ports with a temp data dir; stop()/start() keep the ports
 * and the data so a test can take the registry away and bring it back.
 *
 * Tests write keys through etcd's v3 JSON gateway (plain HTTP, base64 keys
 * and values), not through the etcd3 npm client that the source under test
 * uses: the writer and the reader are different implementations.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, sleep } from './net';
import { tempDir } from './portway';
import { ensureDebianPackage } from './zookeeper';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export interface EtcdServer {
  url: string;
  port: number;
  running(): boolean;
  /** Kills etcd (SIGKILL). Data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same ports and data. */
  start(): Promise<void>;
  close(): Promise<void>;
  put(key: string, value: string): Promise<string>;
  del(key: string): Promise<void>;
  /** Compacts history up to the current revision (watchers from older revisions are cancelled). */
  compact(): Promise<void>;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

export async function startEtcd(): Promise<EtcdServer> {
  ensureDebianPackage('etcd-server', () => spawnSync('sh', ['-c', 'command -v etcd']).status === 0);
  const dir = tempDir('portway-etcd-');
  const clientPort = await freePort();
  const peerPort = await freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let proc: ChildProcess | null = null;

  const api = async (path: string, body: unknown): Promise<any> => {
    const res = await fetch(`${url}/v3/${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const text = await res.text();
    if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status} ${text}`);
    return JSON.parse(text);
  };

  const start = async (): Promise<void> => {
    if (proc) return;
    const log = openSync(join(dir, 'etcd.log'), 'a');
    const p = spawn(
      'etcd',
      [
        '--name', 'test',
        '--data-dir', join(dir, 'data'),
        '--listen-client-urls', url,
        '--advertise-client-urls', url,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `test=${peer}`,
        '--initial-cluster-state', 'new',
        '--logger', 'zap',
        '--log-level', 'warn',
      ],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
    proc = p;
    live.add(p);
    let exited = false;
    p.on('exit', () => {
      exited = true;
      live.delete(p);
      if (proc === p) proc = null;
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exited) throw new Error(`etcd exited during startup; see ${join(dir, 'etcd.log')}`);
      try {
        const res = await fetch(`${url}/health`);
        if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`etcd did not become healthy on ${url} within 30 s; see ${join(dir, 'etcd.log')}`);
      await sleep(100);
    }
  };

  const stop = async (): Promise<void> => {
    const p = proc;
    if (!p) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await gone;
    proc = null;
  };

  await start();
  return {
    url,
    port: clientPort,
    running: () => proc !== null,
    start,
    stop,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    put: async (key, value) => {
      const r = await api('kv/put', { key: b64(key), value: b64(value) });
      return String(r.header.revision);
    },
    del: async (key) => {
      await api('kv/deleterange', { key: b64(key) });
    },
    compact: async () => {
      const r = await api('kv/range', { key: b64('\0'), limit: 1 });
      await api('kv/compaction', { revision: String(r.header.revision), physical: true });
    },
  };
}
