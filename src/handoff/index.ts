/**
 * Zero-downtime restart (SIGUSR2). The running process (the "old" one)
 * spawns its successor itself, with the same node flags, script and
 * arguments, and an IPC channel; over that channel, a Unix socketpair, Node
 * passes each listening socket's file descriptor (SCM_RIGHTS), then the admin
 * socket's. The successor loads the config file anew, listens on the
 * inherited sockets (a listener whose name and configured address are
 * unchanged; anything else binds as usual), and says it is ready. Only then
 * does the old process stop accepting and drain its open connections (up to
 * drain_timeout) and exit 0. The listening sockets are never closed during the
 * switch, so no connection is refused: until the old process closes its
 * copies, both processes accept from the same queue.
 *
 * When the successor fails (bad config, a bind error, no answer within
 * HANDOFF_TIMEOUT_MS), it exits and the old process keeps serving.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Server, Socket } from 'node:net';
import type { Logger } from '../logger';

/** Set in the successor's environment: "this process takes over from its parent". */
export const HANDOFF_ENV = 'PORTWAY_HANDOFF';
export const HANDOFF_TIMEOUT_MS = 30_000;

/** One listening socket handed over: the listener's name and the address it was configured with. */
export interface InheritedListener {
  name: string;
  host: string;
  port: number;
  server: Server;
  /** Connections the inherited socket accepted before its listener took it. */
  early: Socket[];
}

/** What a successor received from its predecessor. */
export interface InheritedSockets {
  listeners: Map<string, InheritedListener>;
  admin: { host: string; port: number; server: Server; early: Socket[] } | null;
}

/** The sockets the running proxy hands over. */
export interface HandoffSource {
  listeners: { name: string; host: string; port: number; server: Server }[];
  admin: { host: string; port: number; server: Server } | null;
}

type Msg =
  | { t: 'portway:hello'; pid: number }
  | { t: 'portway:listener'; name: string; host: string; port: number }
  | { t: 'portway:admin'; host: string; port: number }
  | { t: 'portway:end' }
  | { t: 'portway:ready'; pid: number }
  | { t: 'portway:failed'; error: string };

/** True in a process started by a predecessor to take over its sockets. */
export function isSuccessor(): boolean {
  return process.env[HANDOFF_ENV] === '1' && typeof process.send === 'function';
}

/**
 * Successor side: asks the parent for its sockets and collects them until the
 * parent says it sent all. Each inherited server queues what it accepts until
 * its listener takes it over (adoptInherited).
 */
export function receiveSockets(timeoutMs = HANDOFF_TIMEOUT_MS): Promise<InheritedSockets> {
  return new Promise((resolve, reject) => {
    const got: InheritedSockets = { listeners: new Map(), admin: null };
    const timer = setTimeout(() => finish(new Error(`no sockets from the parent process within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (m: Msg, handle: unknown) => {
      if (m === null || typeof m !== 'object') return;
      if (m.t === 'portway:listener' && isServer(handle)) {
        const early: Socket[] = [];
        handle.on('connection', (s: Socket) => early.push(s));
        got.listeners.set(m.name, { name: m.name, host: m.host, port: m.port, server: handle, early });
      } else if (m.t === 'portway:admin' && isServer(handle)) {
        const early: Socket[] = [];
        handle.on('connection', (s: Socket) => early.push(s));
        got.admin = { host: m.host, port: m.port, server: handle, early };
      } else if (m.t === 'portway:end') {
        finish(null);
      }
    };
    const onDisconnect = () => finish(new Error('the parent process went away during the handoff'));
    const finish = (err: Error | null) => {
      clearTimeout(timer);
      process.removeListener('message', onMessage);
      process.removeListener('disconnect', onDisconnect);
      if (err) reject(err);
      else resolve(got);
    };
    process.on('message', onMessage);
    process.on('disconnect', onDisconnect);
    process.send!({ t: 'portway:hello', pid: process.pid } satisfies Msg);
  });
}

function isServer(h: unknown): h is Server {
  return h !== null && typeof h === 'object' && typeof (h as Server).listen === 'function' && typeof (h as Server).address === 'function';
}

/**
 * Makes `server` listen on an inherited socket and hands it the connections
 * that socket accepted meanwhile. Resolves once it listens.
 */
export function adoptInherited(server: Server, inherited: InheritedListener | { server: Server; early?: Socket[] }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(inherited.server, () => {
      server.removeListener('error', reject);
      for (const s of inherited.early ?? []) server.emit('connection', s);
      if (inherited.early) inherited.early.length = 0;
      resolve();
    });
  });
}

/** Successor side: tells the parent it serves (it will stop accepting and drain) and drops the channel. */
export function announceReady(): void {
  process.send?.({ t: 'portway:ready', pid: process.pid } satisfies Msg, () => process.disconnect?.());
}

/** Successor side: tells the parent the takeover failed (it keeps serving). */
export function announceFailed(error: string): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send({ t: 'portway:failed', error } satisfies Msg, () => resolve());
  });
}

/**
 * Old side: starts the successor and hands it `source()`'s sockets. Resolves
 * with the successor's pid once it serves; rejects (the successor stopped)
 * when it fails, exits or does not answer in time.
 */
export function startSuccessor(source: () => HandoffSource, log: Logger, timeoutMs = HANDOFF_TIMEOUT_MS): Promise<number> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, [HANDOFF_ENV]: '1' },
      // Its own process group: a signal meant for the old process group (a terminal's Ctrl-C while the old one drains) does not reach it.
      detached: true,
    });
    log.info({ successor_pid: child.pid }, 'handoff: successor started');
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`successor did not become ready within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.removeAllListeners('message');
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      reject(err);
    };
    child.on('error', fail);
    child.on('exit', (code, signal) => fail(new Error(`successor exited (${signal ?? `code ${code}`}) before it was ready`)));
    child.on('message', (m: Msg) => {
      if (m === null || typeof m !== 'object') return;
      if (m.t === 'portway:hello') {
        const s = source();
        for (const l of s.listeners) child.send({ t: 'portway:listener', name: l.name, host: l.host, port: l.port } satisfies Msg, l.server);
        if (s.admin) child.send({ t: 'portway:admin', host: s.admin.host, port: s.admin.port } satisfies Msg, s.admin.server);
        child.send({ t: 'portway:end' } satisfies Msg);
      } else if (m.t === 'portway:failed') {
        fail(new Error(`successor failed: ${m.error}`));
      } else if (m.t === 'portway:ready') {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.removeAllListeners('exit');
        child.removeAllListeners('message');
        if (child.connected) child.disconnect();
        child.unref();
        resolve(m.pid);
      }
    });
  });
}
