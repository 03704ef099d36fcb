/**
 * A real etcd (Debian `etcd-server`, v3.4) for integration tests: one member
 * on free loopback ports with a temp data dir; stop()/start() keep the ports
 * and the data so a test can take the registry away and bring it back.
 *
 * Tests write keys through etcd's v3 JSON gateway (plain HTTP, base64 keys
 * and values), not through the etcd3 npm client that the source under test
 * uses: the writer and the reader are different implementations.
 */
import { join } from 'node:path';
import { freePort } from './net';
import { tempDir } from './portway';
import { ensureDebianBinary, startProcess, ServerProcess } from './process';

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
  const bin = ensureDebianBinary('etcd', 'etcd-server');
  const dir = tempDir('portway-etcd-');
  const clientPort = await freePort();
  const peerPort = await freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;

  const api = async (path: string, body: unknown): Promise<any> => {
    const res = await fetch(`${url}/v3/${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const text = await res.text();
    if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status} ${text}`);
    return JSON.parse(text);
  };

  const server = new ServerProcess(
    () =>
      startProcess(
        bin,
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
        {
          name: `etcd on ${url}`,
          logFile: join(dir, 'etcd.log'),
          ready: async () => {
            try {
              const res = await fetch(`${url}/health`);
              return res.ok && ((await res.json()) as { health?: string }).health === 'true';
            } catch {
              return false; // not listening yet
            }
          },
        },
      ),
    dir,
  );

  await server.start();
  return {
    url,
    port: clientPort,
    running: () => server.running(),
    start: () => server.start(),
    stop: () => server.stop(),
    close: () => server.close(),
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
