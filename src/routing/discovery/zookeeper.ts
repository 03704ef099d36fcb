/**
 * zookeeper: providers registered in ZooKeeper the way SOFARPC and Dubbo
 * register them: one child node per provider, named by its URL-encoded URL.
 *
 *   sofarpc  /sofa-rpc/<service>/providers/bolt%3A%2F%2F10.0.0.1%3A12200%3F...weight%3D100...
 *   dubbo    /dubbo/<service>/providers/dubbo%3A%2F%2F10.0.0.1%3A20880%2F<service>%3F...
 *
 * (sofa-rpc-node's ZookeeperRegistry writes bolt://host:port?startTime=..&
 * pid=..&weight=100&...&interface=..&version=..&group=.. with empty data, as
 * an ephemeral node; Java SOFARPC and Dubbo write the same shape.) Each child
 * becomes an endpoint host:port with the URL's `weight` (default 100, as in
 * both frameworks) and its query parameters as metadata. Providers with
 * enabled=false, or a category other than providers, are left out.
 *
 * Watch-based: a children watch on the providers node, re-armed on every
 * change and after every reconnect; a missing providers node is an empty list
 * and an existence watch waits for it. A lost connection keeps the last list
 * (stale) while the client reconnects; an expired session is replaced by a new
 * one. A watch event is read after a short settle delay (see onWatch).
 *
 * Client: npm node-zookeeper-client (pure JS). Two of its known gaps are
 * covered here: close() while disconnected makes it reconnect forever (its
 * issue #60), and it never notices a server that stops answering without
 * closing the connection (issue #13); here, two thirds of the session timeout
 * without an answer drop the connection, as the Java client does.
 */
import type { Socket } from 'node:net';
import { Type, type Static } from '@sinclair/typebox';
import * as zookeeper from 'node-zookeeper-client';
import { Duration } from '../../config/schema';
import type { ConfigIssue } from '../../config/validate';
import type { EndpointConfig } from '../../config/types';
import type { Logger } from '../../logger';
import { parseDuration } from '../../util/duration';
import { parseHostPort } from '../../util/address';
import type { DiscoveryFactory, DiscoverySource, DiscoveryStatus } from './source';
import { SourceState, guarded } from './source-state';
import { clampWeight, makeEndpoint } from './endpoint-entry';

const Layout = Type.Union([Type.Literal('sofarpc'), Type.Literal('dubbo')], {
  description: 'Where and how providers register: sofarpc (/sofa-rpc/<service>/providers) or dubbo (/dubbo/<service>/providers).',
});

const ZooKeeperConfig = Type.Object(
  {
    servers: Type.String({ minLength: 1, description: 'ZooKeeper connect string: host:port[,host:port...], optionally followed by a /chroot.' }),
    service: Type.String({ minLength: 1, pattern: '^[^/]+$', description: 'The service (interface) name, e.g. com.example.EchoService.', 'x-hint': 'must be a service name without "/"' }),
    layout: Layout,
    root: Type.Optional(Type.String({ pattern: '^/', description: 'The registry root; default /sofa-rpc (sofarpc) or /dubbo (dubbo).', 'x-hint': 'must be an absolute path such as /sofa-rpc' })),
    session_timeout: Type.Optional(Duration('ZooKeeper session timeout (the server may narrow it to its own limits).', '15s')),
    match: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description: 'Only providers whose URL parameters have these values, e.g. {version: "1.0", group: "SOFA"}.',
      }),
    ),
  },
  { additionalProperties: false },
);
type ZooKeeperConfig = Static<typeof ZooKeeperConfig>;

export type ZkLayout = 'sofarpc' | 'dubbo';

/** How long a watch event waits before the providers are read (see onWatch). */
const WATCH_SETTLE_MS = 100;

/** /sofa-rpc/<service>/providers or /dubbo/<service>/providers (root overridable). */
export function providersPath(layout: ZkLayout, service: string, root?: string): string {
  let r = root ?? (layout === 'sofarpc' ? '/sofa-rpc' : '/dubbo');
  while (r.length > 1 && r.endsWith('/')) r = r.slice(0, -1);
  return `${r === '/' ? '' : r}/${service}/providers`;
}

/**
 * One provider node name -> an endpoint; null when the provider asks not to
 * be used (enabled=false, another category, or `match` fails); a string says
 * why the name is not a provider URL.
 */
export function parseProviderNode(name: string, match?: Readonly<Record<string, string>>): EndpointConfig | null | string {
  let text: string;
  try {
    // Java's URLEncoder writes spaces as '+', and encodes a real '+' as %2B.
    text = decodeURIComponent(name.replace(/\+/g, '%20'));
  } catch {
    return 'not URL-encoded';
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'not a provider URL';
  }
  const scheme = url.protocol.replace(/:$/, '');
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (!host) return 'provider URL has no host';
  if (!/^[0-9]{1,5}$/.test(url.port) || Number(url.port) === 0 || Number(url.port) > 65535) return 'provider URL has no usable port';
  const metadata: Record<string, string> = {};
  for (const [k, v] of url.searchParams) if (v !== '') metadata[k] = v;
  if (metadata.protocol === undefined) metadata.protocol = scheme;
  const path = url.pathname.replace(/^\/+/, '');
  if (path && metadata.path === undefined) metadata.path = path;
  if (metadata.enabled === 'false') return null;
  if (metadata.category !== undefined && metadata.category !== 'providers') return null;
  if (match) for (const [k, v] of Object.entries(match)) if (metadata[k] !== v) return null;
  const w = metadata.weight !== undefined ? Number(metadata.weight) : 100;
  const hp = parseHostPort(`${host.includes(':') ? `[${host}]` : host}:${url.port}`);
  if (typeof hp === 'string') return hp;
  return makeEndpoint(hp.host, hp.port, clampWeight(Number.isNaN(w) ? 100 : w), metadata);
}

/** The parts of node-zookeeper-client's internals that the workarounds touch. */
interface ZkConnectionManager {
  connect: () => void;
  onSocketConnected: () => void;
  socket?: Socket;
  connectTimeoutHandler?: NodeJS.Timeout | null;
}
interface ZkInternals {
  connectionManager?: ZkConnectionManager;
}

function isConnected(state: zookeeper.State): boolean {
  return state === zookeeper.State.SYNC_CONNECTED || state === zookeeper.State.CONNECTED_READ_ONLY;
}

/**
 * Closes a client for good and resolves when its socket is gone (at most 1 s).
 * Needed because close() while the connection is down leaves the library
 * retrying forever: its connect() becomes a no-op on this instance, and a
 * connection attempt already waiting out the spin delay is closed as soon
 * as it connects (at most one more attempt, within a second).
 */
export function closeZkClient(client: zookeeper.Client): Promise<void> {
  const cm = (client as unknown as ZkInternals).connectionManager;
  if (cm) {
    cm.connect = () => {};
    cm.onSocketConnected = function (this: ZkConnectionManager) {
      if (this.connectTimeoutHandler) clearTimeout(this.connectTimeoutHandler);
      this.socket?.destroy();
    };
  }
  const wasConnected = isConnected(client.getState());
  try {
    client.close();
  } catch {
    // Closing a client in a state the library does not expect must not stop us from dropping its socket.
  }
  const sock = cm?.socket;
  if (!sock || sock.destroyed) return Promise.resolve();
  if (!wasConnected) {
    sock.destroy();
    return Promise.resolve();
  }
  // Connected: let the close-session request reach the server so ephemeral state goes now, not at session expiry.
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      sock.destroy();
      resolve();
    }, 1000);
    sock.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

class ZooKeeperSource implements DiscoverySource {
  private readonly state: SourceState;
  private readonly path: string;
  private readonly sessionTimeoutMs: number;
  private client: zookeeper.Client | null = null;
  private connected = false;
  private stopped = false;
  private listing = false;
  private listAgain = false;
  private probeTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  /** When the current connection last answered (or was made), and when the last probe went out. */
  private lastHeard = 0;
  private lastProbe = 0;
  private disconnectedSince = Date.now();
  /** Why the probe dropped the connection, reported instead of a bare "connection lost". */
  private dropReason: string | null = null;
  /** Sessions opened so far (a reconnect within a session does not count), and the current one. */
  private sessions = 0;
  private sessionId: string | null = null;
  private rejected: Record<string, string> = {};
  private closing: Promise<void>[] = [];
  private watchTimer: NodeJS.Timeout | null = null;
  /**
   * One function for every watch, so the client keeps one watcher per path
   * however often we re-arm it. The read waits a moment: sofa-rpc-node
   * re-registers a provider by deleting its node and creating it again, and
   * reading between the two would drop a healthy provider for an instant.
   */
  private readonly onWatch = (): void => {
    if (this.watchTimer || this.stopped) return;
    this.watchTimer = setTimeout(() => {
      this.watchTimer = null;
      guarded(this.log, 'zookeeper watch', () => this.list());
    }, WATCH_SETTLE_MS);
    this.watchTimer.unref();
  };

  constructor(
    private readonly config: ZooKeeperConfig,
    private readonly log: Logger,
  ) {
    this.state = new SourceState('zookeeper', log);
    this.path = providersPath(config.layout, config.service, config.root);
    this.sessionTimeoutMs = parseDuration(config.session_timeout ?? '15s');
  }

  start(update: (endpoints: EndpointConfig[]) => void): void {
    this.state.bind(update);
    this.connect();
    const every = Math.max(200, Math.floor(this.sessionTimeoutMs / 6));
    this.probeTimer = setInterval(() => guarded(this.log, 'zookeeper probe', () => this.probe()), every);
    this.probeTimer.unref();
  }

  private connect(): void {
    if (this.stopped) return;
    const client = zookeeper.createClient(this.config.servers, { sessionTimeout: this.sessionTimeoutMs, spinDelay: 1000, retries: 0 });
    this.client = client;
    this.connected = false;
    // A read still pending on the previous client may never be answered.
    this.listing = false;
    this.listAgain = false;
    this.disconnectedSince = Date.now();
    client.on('state', (s: zookeeper.State) => {
      if (client !== this.client || this.stopped) return;
      guarded(this.log, 'zookeeper state change', () => this.onState(client, s));
    });
    client.connect();
  }

  private onState(client: zookeeper.Client, s: zookeeper.State): void {
    if (isConnected(s)) {
      this.connected = true;
      this.lastHeard = Date.now();
      this.lastProbe = 0;
      const id = client.getSessionId().toString('hex');
      if (id !== this.sessionId) {
        this.sessionId = id;
        this.sessions++;
      }
      this.log.debug({ servers: this.config.servers, session: id }, 'connected to ZooKeeper');
      // A reconnect within the session keeps our watch server-side, but changes made while we were away must be read now.
      this.list();
    } else if (s === zookeeper.State.DISCONNECTED) {
      this.connected = false;
      this.disconnectedSince = Date.now();
      this.state.fail(new Error(`${this.dropReason ?? 'connection lost'}; reconnecting`), `ZooKeeper ${this.config.servers}`);
      this.dropReason = null;
    } else if (s === zookeeper.State.EXPIRED || s === zookeeper.State.AUTH_FAILED) {
      this.connected = false;
      this.state.fail(new Error(s === zookeeper.State.EXPIRED ? 'session expired; opening a new session' : 'authentication failed'), `ZooKeeper ${this.config.servers}`);
      // The library gives up on a client after either; a new client starts a new session (and new watches).
      this.replaceClient(s === zookeeper.State.EXPIRED ? 0 : this.sessionTimeoutMs);
    }
  }

  private replaceClient(delayMs: number): void {
    const old = this.client;
    this.client = null;
    this.connected = false;
    if (old) this.track(closeZkClient(old));
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delayMs);
    this.reconnectTimer.unref();
  }

  private track(p: Promise<void>): void {
    this.closing.push(p);
    void p.finally(() => (this.closing = this.closing.filter((q) => q !== p)));
  }

  /**
   * node-zookeeper-client has no read timeout: a server that stops answering
   * without closing the TCP connection looks connected forever. As the Java
   * client does, the connection is given up when nothing was heard for two
   * thirds of the session timeout: a cheap request goes out every third, and
   * the tick (every sixth) drops the socket once the last answer is too old,
   * which makes the client reconnect (possibly to another server).
   */
  private probe(): void {
    const client = this.client;
    if (!client) return;
    const now = Date.now();
    if (!this.connected) {
      if (now - this.disconnectedSince > this.sessionTimeoutMs && this.state.status().error === null) {
        this.state.fail(new Error(`cannot connect (tried for ${Math.round((now - this.disconnectedSince) / 1000)} s)`), `ZooKeeper ${this.config.servers}`);
      }
      return;
    }
    const silent = now - this.lastHeard;
    if (silent > (this.sessionTimeoutMs * 2) / 3) {
      this.dropReason = `no answer for ${silent} ms`;
      this.lastHeard = now; // one drop per silence; the reconnect starts the clock again
      (client as unknown as ZkInternals).connectionManager?.socket?.destroy();
      return;
    }
    // Every other tick, so a third of the session timeout apart (a timer never fires early).
    if (now - this.lastProbe < this.sessionTimeoutMs / 4) return;
    this.lastProbe = now;
    client.exists('/', (err) => {
      if (!err && client === this.client) this.lastHeard = Date.now();
    });
  }

  /** Reads the providers and re-arms the children watch; one read at a time. */
  private list(): void {
    const client = this.client;
    if (this.stopped || !client || !this.connected) return;
    if (this.listing) {
      this.listAgain = true;
      return;
    }
    this.listing = true;
    const done = (): void => {
      // A late answer to a client we have replaced says nothing about the current one's read.
      if (client !== this.client) return;
      this.listing = false;
      if (this.listAgain) {
        this.listAgain = false;
        this.list();
      }
    };
    client.getChildren(this.path, this.onWatch, (err, children) => {
      const current = !this.stopped && client === this.client;
      if (current && !err) guarded(this.log, 'zookeeper list', () => this.publish(children));
      else if (current && err instanceof zookeeper.Exception && err.getCode() === zookeeper.Exception.NO_NODE) {
        // No providers node (yet): an empty list. The existence watch fires when it appears.
        client.exists(this.path, this.onWatch, (err2, stat) => {
          if (!this.stopped && client === this.client) {
            if (err2) this.state.fail(err2, `ZooKeeper exists ${this.path}`);
            else if (stat) this.listAgain = true; // created meanwhile: read it
            else guarded(this.log, 'zookeeper list', () => this.publish([]));
          }
          done();
        });
        return;
      } else if (current) {
        // Connection loss and the like: the reconnect lists again.
        this.state.fail(err, `ZooKeeper list ${this.path}`);
      }
      done();
    });
  }

  private publish(children: readonly string[]): void {
    const rejected: Record<string, string> = {};
    const byAddress = new Map<string, EndpointConfig>();
    for (const child of children) {
      const r = parseProviderNode(child, this.config.match);
      if (typeof r === 'string') rejected[child.slice(0, 200)] = r;
      else if (r !== null) {
        // The same address registered twice (a restart before the old session expired): keep the newest registration.
        const prev = byAddress.get(r.address);
        if (!prev || Number(r.metadata?.startTime ?? 0) >= Number(prev.metadata?.startTime ?? 0)) byAddress.set(r.address, r);
      }
    }
    const newRejects = Object.keys(rejected).filter((k) => !(k in this.rejected));
    if (newRejects.length) this.log.warn({ nodes: newRejects.slice(0, 5), reason: rejected[newRejects[0]!] }, 'ignoring provider nodes that are not provider URLs');
    this.rejected = rejected;
    this.state.publish([...byAddress.values()]);
  }

  status(): DiscoveryStatus {
    return this.state.status({
      servers: this.config.servers,
      path: this.path,
      layout: this.config.layout,
      connected: this.connected,
      session: this.connected ? this.sessionId : null,
      sessions: this.sessions,
      endpoints: this.state.endpoints.length,
      ...(Object.keys(this.rejected).length ? { rejected: this.rejected } : {}),
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.watchTimer) clearTimeout(this.watchTimer);
    this.probeTimer = null;
    this.reconnectTimer = null;
    this.watchTimer = null;
    const client = this.client;
    this.client = null;
    this.connected = false;
    if (client) this.track(closeZkClient(client));
    await Promise.all(this.closing);
  }
}

export const zookeeperDiscovery: DiscoveryFactory<ZooKeeperConfig> = {
  type: 'zookeeper',
  description: 'Providers registered in ZooKeeper by SOFARPC or Dubbo, watched.',
  schema: ZooKeeperConfig,
  check(config): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    const slash = config.servers.indexOf('/');
    const hosts = slash >= 0 ? config.servers.slice(0, slash) : config.servers;
    for (const h of hosts.split(',')) {
      // The port may be left out (2181).
      const hp = h.includes(':') ? parseHostPort(h.trim()) : parseHostPort(`${h.trim()}:2181`);
      if (typeof hp === 'string') issues.push({ path: 'servers', message: hp });
    }
    if (parseDuration(config.session_timeout ?? '15s') < 1000) issues.push({ path: 'session_timeout', message: 'must be at least 1s' });
    return issues;
  },
  create(config, ctx): DiscoverySource {
    return new ZooKeeperSource(config, ctx.logger);
  },
};

