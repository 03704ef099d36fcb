/**
 * A real ZooKeeper server for integration tests: Debian's `zookeeper` package
 * (the jar, run standalone by our own java command so no service, log
 * directory or admin server of the package is involved), on a free loopback
 * port with a temp data dir. stop()/start() keep the port and the data, so a
 * test can take the registry away and bring it back.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as zookeeper from 'node-zookeeper-client';
import { freePort } from './net';
import { tempDir } from './portway';
import { ensureDebianBinary, ensureDebianPackage, startProcess, ServerProcess } from './process';

/** Still exported from here for existing importers. */
export { ensureDebianPackage };

const ZK_JAR = '/usr/share/java/zookeeper.jar';

/** Sends a four-letter-word command and returns the answer ('' when nothing answers). */
export function fourLetter(port: number, cmd: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let out = '';
    s.setTimeout(1000, () => s.destroy());
    s.on('connect', () => s.write(cmd));
    s.on('data', (c: Buffer) => (out += c.toString()));
    s.on('error', () => {});
    s.on('close', () => resolve(out));
  });
}

export interface ZooKeeperServer {
  port: number;
  /** The connect string, 127.0.0.1:port. */
  servers: string;
  dataDir: string;
  running(): boolean;
  /** Kills the server (SIGKILL: as abrupt as a crash or a partition). Data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes its files. */
  close(): Promise<void>;
}

export async function startZooKeeper(): Promise<ZooKeeperServer> {
  ensureDebianPackage('zookeeper', () => existsSync(ZK_JAR));
  const java = ensureDebianBinary('java', 'default-jre-headless');
  const dir = tempDir('portway-zk-');
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  const port = await freePort();
  const cfg = join(dir, 'zoo.cfg');
  // tickTime 500 ms allows sessions from 1 s to 10 s, so tests can see expiry quickly.
  writeFileSync(
    cfg,
    [
      'tickTime=500',
      `dataDir=${dataDir}`,
      `clientPort=${port}`,
      'clientPortAddress=127.0.0.1',
      'maxClientCnxns=0',
      'admin.enableServer=false',
      '4lw.commands.whitelist=ruok,srvr,mntr,cons',
      'snapshot.trust.empty=true',
      '',
    ].join('\n'),
  );
  const server = new ServerProcess(
    () =>
      startProcess(
        java,
        [
          '-Xmx128m',
          '-XX:+UseSerialGC',
          '-XX:TieredStopAtLevel=1',
          '-Djava.net.preferIPv4Stack=true',
          '-Dzookeeper.admin.enableServer=false',
          '-cp',
          ZK_JAR,
          'org.apache.zookeeper.server.ZooKeeperServerMain',
          cfg,
        ],
        {
          name: `ZooKeeper on 127.0.0.1:${port}`,
          logFile: join(dir, 'server.log'),
          ready: async () => (await fourLetter(port, 'ruok')) === 'imok' && (await fourLetter(port, 'srvr')).includes('Mode: standalone'),
        },
      ),
    dir,
  );

  await server.start();
  return {
    port,
    servers: `127.0.0.1:${port}`,
    dataDir,
    running: () => server.running(),
    start: () => server.start(),
    stop: () => server.stop(),
    close: () => server.close(),
  };
}

/**
 * A small promise-based ZooKeeper client for tests to write the tree as
 * registries do. Every call fails after 10 s instead of waiting forever (the
 * library queues requests while disconnected), and a session the server
 * expired (a slow machine) is replaced by a new one, as registries do.
 */
export class ZkTestClient {
  private client!: zookeeper.Client;
  private closed = false;

  private constructor(
    private readonly servers: string,
    private readonly sessionTimeoutMs: number,
  ) {}

  /** The default session is the longest the test server grants (10 s), so a loaded machine does not lose it. */
  static async connect(servers: string, sessionTimeoutMs = 10_000): Promise<ZkTestClient> {
    const c = new ZkTestClient(servers, sessionTimeoutMs);
    await c.open();
    return c;
  }

  private open(): Promise<void> {
    const client = zookeeper.createClient(this.servers, { sessionTimeout: this.sessionTimeoutMs, spinDelay: 200 });
    this.client = client;
    client.once('expired', () => {
      if (this.closed || client !== this.client) return;
      client.close();
      void this.open().catch(() => {});
    });
    const connected = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`test client could not connect to ZooKeeper at ${this.servers}`)), 10_000);
      client.once('connected', () => {
        clearTimeout(t);
        resolve();
      });
    });
    client.connect();
    return connected;
  }

  /**
   * Runs one operation once the client is connected. After a ZooKeeper restart the old client reconnects,
   * learns that its session expired and is replaced (open()); an operation handed to it before that would
   * never be answered, so operations wait, within their 10 s, for a connected client.
   */
  private call<T>(what: string, fn: (client: zookeeper.Client, cb: (err: Error | zookeeper.Exception | null, v: T) => void) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      let done = false;
      const t = setTimeout(() => {
        done = true;
        reject(new Error(`ZooKeeper test client: no answer to ${what} within 10 s`));
      }, 10_000);
      const issue = () => {
        if (done) return;
        const client = this.client;
        if (client.getState() !== zookeeper.State.SYNC_CONNECTED) {
          setTimeout(issue, 50);
          return;
        }
        fn(client, (err, v) => {
          if (done) return;
          done = true;
          clearTimeout(t);
          if (err) reject(err);
          else resolve(v);
        });
      };
      issue();
    });
  }

  mkdirp(path: string): Promise<string> {
    return this.call(`mkdirp ${path}`, (c, cb) => c.mkdirp(path, cb));
  }

  /** Creates a node (parents first); ephemeral by default, as providers register. */
  async create(path: string, opts: { ephemeral?: boolean; data?: Buffer } = {}): Promise<void> {
    await this.mkdirp(path.slice(0, path.lastIndexOf('/')));
    const mode = opts.ephemeral === false ? zookeeper.CreateMode.PERSISTENT : zookeeper.CreateMode.EPHEMERAL;
    await this.call<string>(`create ${path}`, (c, cb) => c.create(path, opts.data ?? Buffer.alloc(0), mode, cb));
  }

  remove(path: string): Promise<void> {
    return this.call<void>(`remove ${path}`, (c, cb) => c.remove(path, (err) => cb(err, undefined)));
  }

  children(path: string): Promise<string[]> {
    return this.call<string[]>(`getChildren ${path}`, (c, cb) => c.getChildren(path, (err, ch) => cb(err, ch)));
  }

  /** Closes the session (its ephemeral nodes go away) and waits for the socket to close. */
  close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    return new Promise((resolve) => {
      const t = setTimeout(resolve, 2000);
      client.once('disconnected', () => {
        clearTimeout(t);
        resolve();
      });
      client.close();
    });
  }
}

export type RelayMode = 'pass' | 'refuse' | 'blackhole' | 'mute';

/**
 * A TCP relay in front of a server, to cut one client off while the server
 * keeps running for everyone else. pass: forward both ways; refuse: drop
 * every connection at once, and new ones as they come (a partition);
 * blackhole: keep connections open but forward nothing (a peer that stopped
 * answering); mute: forward what the client sends but none of the answers
 * (the server keeps the client's session alive, the client hears nothing).
 * Going back to pass from blackhole or mute drops the held connections.
 */
export class TcpRelay {
  mode: RelayMode = 'pass';
  /** Connections accepted, in any mode. */
  accepted = 0;
  port = 0;
  private readonly server: Server;
  private readonly pairs = new Set<[Socket, Socket]>();

  private constructor(private readonly target: number) {
    this.server = createServer((down) => this.onConnection(down));
  }

  static async start(targetPort: number): Promise<TcpRelay> {
    const r = new TcpRelay(targetPort);
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    r.port = (r.server.address() as AddressInfo).port;
    return r;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Connections relayed now. */
  get open(): number {
    return this.pairs.size;
  }

  private onConnection(down: Socket): void {
    this.accepted++;
    down.on('error', () => {});
    if (this.mode === 'refuse') {
      down.destroy();
      return;
    }
    const up = connect({ port: this.target, host: '127.0.0.1' });
    up.on('error', () => {});
    const pair: [Socket, Socket] = [down, up];
    this.pairs.add(pair);
    down.on('data', (d: Buffer) => (this.mode === 'pass' || this.mode === 'mute') && up.write(d));
    up.on('data', (d: Buffer) => this.mode === 'pass' && down.write(d));
    const end = () => {
      this.pairs.delete(pair);
      down.destroy();
      up.destroy();
    };
    down.on('close', end);
    up.on('close', end);
  }

  setMode(mode: RelayMode): void {
    const from = this.mode;
    this.mode = mode;
    if (mode === 'refuse' || ((from === 'blackhole' || from === 'mute') && mode === 'pass')) {
      for (const [d, u] of this.pairs) {
        d.destroy();
        u.destroy();
      }
      this.pairs.clear();
    }
  }

  close(): Promise<void> {
    this.setMode('refuse');
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
