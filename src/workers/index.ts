/**
 * Multi-core mode (`workers: N`, N > 1): the primary process forks N workers
 * with node:cluster. Each worker loads the same config file and runs the
 * whole proxy except the admin server; its listeners bind through the
 * cluster's shared sockets, and the primary hands accepted connections to the
 * workers round robin (SO_REUSEPORT is not honoured by Node 20). The primary
 * serves the admin API (src/workers/primary-admin.ts): metrics merged from
 * every worker, readiness of all of them, reload sent to each. A worker that
 * dies is forked again after RESTART_DELAY_MS.
 *
 * Primary and workers talk over the cluster IPC channel with small request /
 * reply messages ({t: 'pw:req', id, op, arg} → {t: 'pw:res', id, ok, result}).
 */
import cluster, { type Worker } from 'node:cluster';
import type { Config } from '../config/types';
import type { Logger } from '../logger';
import { setLogLevel } from '../logger';
import { MetricsRegistry } from '../metrics';
import type { Proxy } from '../proxy';
import { redact } from '../admin/server';
import { PrimaryAdmin } from './primary-admin';

export const RESTART_DELAY_MS = 500;
/** A worker that fails to start again is retried with the delay doubled, up to this. */
const MAX_RESTART_DELAY_MS = 30_000;
const REQUEST_TIMEOUT_MS = 10_000;

export type WorkerOp = 'metrics' | 'reload' | 'ready' | 'listeners' | 'config' | 'clusters' | 'logging' | 'shutdown';

interface WorkerRequest {
  t: 'pw:req';
  id: number;
  op: WorkerOp;
  arg?: unknown;
}
interface WorkerReply {
  t: 'pw:res';
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}
type WorkerNotice = { t: 'pw:ready' } | { t: 'pw:failed'; error: string };

/** One worker slot: the process in it changes when a worker is restarted. */
export interface WorkerSlot {
  index: number;
  worker: Worker | null;
  ready: boolean;
  restarts: number;
}

/**
 * The primary: forks the workers, keeps them running, serves admin. Resolves
 * to the exit code once it has stopped (SIGTERM/SIGINT: each worker drains,
 * then the primary exits).
 */
export class WorkerPool {
  readonly slots: WorkerSlot[] = [];
  readonly metrics = new MetricsRegistry();
  private stopping = false;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly restartsTotal;

  constructor(
    readonly count: number,
    readonly log: Logger,
  ) {
    this.restartsTotal = this.metrics.counter('portway_worker_restarts_total', 'Workers forked again after one died.');
    this.metrics.gauge('portway_workers', 'Worker processes configured.', undefined, () => this.count);
    this.metrics.gauge('portway_workers_ready', 'Worker processes running and ready.', undefined, () => this.slots.filter((s) => s.ready).length);
    for (let i = 0; i < count; i++) this.slots.push({ index: i, worker: null, ready: false, restarts: 0 });
  }

  /** Forks every worker; resolves when all are ready, rejects when one fails to start. */
  start(): Promise<void> {
    return Promise.all(this.slots.map((s) => this.fork(s))).then(() => undefined);
  }

  private fork(slot: WorkerSlot): Promise<void> {
    return new Promise((resolve, reject) => {
      const w = cluster.fork({ PORTWAY_WORKER_INDEX: String(slot.index) });
      slot.worker = w;
      slot.ready = false;
      w.on('message', (m: WorkerReply | WorkerNotice) => {
        if (m === null || typeof m !== 'object') return;
        if (m.t === 'pw:ready') {
          slot.ready = true;
          this.log.info({ worker: slot.index, pid: w.process.pid }, 'worker ready');
          resolve();
        } else if (m.t === 'pw:failed') {
          reject(new Error(`worker ${slot.index}: ${m.error}`));
        } else if (m.t === 'pw:res') {
          const p = this.pending.get(m.id);
          if (!p) return;
          this.pending.delete(m.id);
          clearTimeout(p.timer);
          if (m.ok) p.resolve(m.result);
          else p.reject(new Error(m.error ?? 'worker error'));
        }
      });
      w.on('exit', (code, signal) => {
        const wasReady = slot.ready;
        slot.ready = false;
        if (slot.worker === w) slot.worker = null;
        reject(new Error(`worker ${slot.index} exited (${signal ?? `code ${code}`}) before it was ready`));
        if (this.stopping || !wasReady) return;
        this.log.error({ worker: slot.index, pid: w.process.pid, code, signal }, 'worker died; restarting it');
        this.restart(slot, RESTART_DELAY_MS);
      });
    });
  }

  private restart(slot: WorkerSlot, delayMs: number): void {
    setTimeout(() => {
      if (this.stopping) return;
      slot.restarts++;
      this.restartsTotal.inc();
      this.fork(slot).catch((e: Error) => {
        const next = Math.min(delayMs * 2, MAX_RESTART_DELAY_MS);
        this.log.error({ worker: slot.index, error: e.message, retry_in_ms: next }, 'worker restart failed');
        this.restart(slot, next);
      });
    }, delayMs).unref();
  }

  /** Asks one worker; rejects when it is gone or does not answer in time. */
  ask(slot: WorkerSlot, op: WorkerOp, arg?: unknown): Promise<unknown> {
    const w = slot.worker;
    if (!w || !w.isConnected()) return Promise.reject(new Error(`worker ${slot.index} is not running`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`worker ${slot.index} did not answer '${op}' within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      w.send({ t: 'pw:req', id, op, arg } satisfies WorkerRequest);
    });
  }

  /** Asks every running worker; each entry is the worker's answer or its error. */
  askAll(op: WorkerOp, arg?: unknown): Promise<{ worker: number; pid: number | undefined; ok: boolean; result?: unknown; error?: string }[]> {
    return Promise.all(
      this.slots.map((s) =>
        this.ask(s, op, arg).then(
          (result) => ({ worker: s.index, pid: s.worker?.process.pid, ok: true, result }),
          (e: Error) => ({ worker: s.index, pid: s.worker?.process.pid, ok: false, error: e.message }),
        ),
      ),
    );
  }

  /** Every worker drains (drain_timeout) and exits; resolves when all have. */
  async stop(): Promise<void> {
    this.stopping = true;
    const exits = this.slots
      .map((s) => s.worker)
      .filter((w): w is Worker => w !== null && !w.isDead())
      .map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))));
    for (const s of this.slots) {
      const w = s.worker;
      if (w && w.isConnected()) w.send({ t: 'pw:req', id: 0, op: 'shutdown' } satisfies WorkerRequest);
    }
    await Promise.all(exits);
  }
}

/** The primary process: forks `config.workers` workers, serves admin, handles signals. */
export async function runPrimary(config: Config, log: Logger, flush: () => Promise<void>): Promise<number> {
  const pool = new WorkerPool(config.workers, log);
  log.info({ workers: config.workers }, 'starting workers');
  const admin = config.admin.enabled ? new PrimaryAdmin(pool, config, log.child({ component: 'admin' })) : null;
  try {
    await pool.start();
    await admin?.listen(config.admin.host, config.admin.port);
  } catch (e) {
    log.fatal({ error: (e as Error).message }, 'cannot start');
    await pool.stop();
    await admin?.close();
    await flush();
    process.stderr.write(`portway: ${(e as Error).message}\n`);
    return 1;
  }
  log.info({ workers: config.workers, admin: admin?.address() ?? null }, 'portway started (workers)');
  return new Promise<number>((done) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now');
        for (const s of pool.slots) s.worker?.process.kill('SIGKILL');
        void flush().then(() => process.exit(1));
        return;
      }
      stopping = true;
      log.info({ signal }, 'shutdown requested');
      void pool
        .stop()
        .then(() => admin?.close())
        .then(() => log.info('stopped'))
        .then(flush)
        .then(() => done(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      log.info('SIGHUP: reloading every worker');
      void pool.askAll('reload').then((r) => log.info({ results: r.map((x) => ({ worker: x.worker, ok: x.ok && (x.result as { ok?: boolean }).ok })) }, 'reload sent to workers'));
    });
    process.on('SIGUSR2', () => log.warn('zero-downtime restart (SIGUSR2) is not supported with workers > 1; ignored'));
  });
}

/** True in a worker process forked by runPrimary. */
export function isWorker(): boolean {
  return cluster.isWorker && process.env.PORTWAY_WORKER_INDEX !== undefined;
}

export function workerIndex(): number {
  return Number(process.env.PORTWAY_WORKER_INDEX ?? 0);
}

/** Tells the primary this worker failed to start. */
export function announceWorkerFailed(error: string): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send({ t: 'pw:failed', error } satisfies WorkerNotice, () => resolve());
  });
}

/** Worker side: answers the primary's requests for `proxy`; `stop` drains and exits. */
export function serveWorker(proxy: Proxy, log: Logger, stop: () => void): void {
  const reply = (id: number, ok: boolean, result?: unknown, error?: string) => {
    if (process.connected) process.send!({ t: 'pw:res', id, ok, result, error } satisfies WorkerReply);
  };
  process.on('message', (m: WorkerRequest) => {
    if (m === null || typeof m !== 'object' || m.t !== 'pw:req') return;
    const run = async (): Promise<unknown> => {
      switch (m.op) {
        case 'metrics':
          return proxy.metrics.render();
        case 'ready':
          return !proxy.isDraining();
        case 'reload':
          return proxy.reload(typeof m.arg === 'string' ? m.arg : undefined);
        case 'listeners':
          return proxy.listenerStats();
        case 'config':
          return { generation: proxy.generation, source: proxy.config.sourcePath ?? null, last_reload: proxy.lastReload, config: redact(proxy.config.raw) };
        case 'clusters':
          return proxy.clusters.all().map((c) => c.toJSON());
        case 'logging':
          if (typeof m.arg === 'string') setLogLevel(proxy.log, m.arg);
          return proxy.log.level;
        case 'shutdown':
          stop();
          return true;
      }
    };
    run().then(
      (r) => reply(m.id, true, r),
      (e: Error) => reply(m.id, false, undefined, e.message),
    );
  });
  // The primary went away (killed): drain and exit rather than run unsupervised.
  process.on('disconnect', () => {
    log.warn('primary process gone; stopping');
    stop();
  });
  process.send!({ t: 'pw:ready' } satisfies WorkerNotice);
}
