import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Config } from '../config/types';
import type { Logger } from '../logger';
import { LOG_LEVELS } from '../logger';
import { formatHostPort } from '../util/address';
import { VERSION } from '../version';
import type { WorkerPool } from './index';
import { mergeExpositions } from './merge-metrics';
import { readBody, send } from '../admin/server';


/**
 * The admin API of a primary process in multi-core mode: the same endpoints as
 * a single process, answered from the workers over IPC. /metrics sums every
 * worker's series (plus the primary's own portway_workers* series); /ready is
 * 200 only when every worker is ready; POST /reload and POST /logging reach
 * every worker; /config and /clusters come from worker 0 (all run the same
 * config); /listeners and /workers show each worker.
 */
export class PrimaryAdmin {
  private readonly server: Server;

  constructor(
    private readonly pool: WorkerPool,
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err: Error) => {
        this.log.error({ err }, 'admin request failed');
        if (!res.headersSent) send(res, 500, { error: err.message });
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 5000;
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(`admin server cannot bind ${formatHostPort(host, port)}: ${err.code === 'EADDRINUSE' ? 'address already in use' : (err.code ?? err.message)}`)),
      );
      // exclusive: the primary binds it itself (not a socket shared with workers).
      this.server.listen({ host, port, exclusive: true }, () => resolve());
    });
  }

  address(): string {
    const a = this.server.address();
    return a && typeof a === 'object' ? formatHostPort(a.address, a.port) : '';
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const pool = this.pool;
    switch (`${req.method} ${url.pathname}`) {
      case 'GET /':
        return send(res, 200, {
          portway: VERSION,
          workers: pool.count,
          endpoints: ['GET /ready', 'GET /healthz', 'GET /metrics', 'GET /workers', 'GET /config', 'GET /clusters', 'GET /listeners', 'POST /reload', 'GET /logging', 'POST /logging?level=LEVEL'],
        });
      case 'GET /healthz':
        return send(res, 200, { status: 'ok' });
      case 'GET /ready': {
        const r = await pool.askAll('ready');
        const notReady = r.filter((x) => !x.ok || x.result !== true).map((x) => x.worker);
        return notReady.length === 0 ? send(res, 200, { status: 'ready', workers: r.length }) : send(res, 503, { status: 'not ready', workers_not_ready: notReady });
      }
      case 'GET /metrics': {
        const r = await pool.askAll('metrics');
        const texts = r.filter((x) => x.ok).map((x) => String(x.result));
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(mergeExpositions(texts) + pool.metrics.render());
        return;
      }
      case 'GET /workers':
      case 'GET /listeners': {
        const r = await pool.askAll('listeners');
        return send(res, 200, {
          workers: r.map((x) => ({
            worker: x.worker,
            pid: x.pid ?? null,
            ready: pool.slots[x.worker]!.ready,
            restarts: pool.slots[x.worker]!.restarts,
            ...(x.ok ? { listeners: x.result } : { error: x.error }),
          })),
        });
      }
      case 'GET /config':
      case 'GET /clusters': {
        const op = url.pathname === '/config' ? 'config' : 'clusters';
        const r = await pool.ask(pool.slots[0]!, op);
        return send(res, 200, op === 'config' ? { workers: pool.count, ...(r as object) } : { clusters: r });
      }
      case 'POST /reload': {
        const body = await readBody(req);
        const r = await pool.askAll('reload', body.length > 0 ? body : undefined);
        const ok = r.every((x) => x.ok && (x.result as { ok?: boolean }).ok === true);
        return send(res, ok ? 200 : 400, { ok, workers: r.map((x) => ({ worker: x.worker, pid: x.pid ?? null, ...(x.ok ? (x.result as object) : { ok: false, error: x.error }) })) });
      }
      case 'GET /logging':
        return send(res, 200, { level: await pool.ask(pool.slots[0]!, 'logging') });
      case 'POST /logging': {
        let level = url.searchParams.get('level');
        if (level === null) {
          const body = await readBody(req);
          try {
            level = (JSON.parse(body) as { level?: string }).level ?? null;
          } catch {
            level = body.trim() || null;
          }
        }
        if (level === null || !LOG_LEVELS.includes(level as never)) return send(res, 400, { error: `level must be one of: ${LOG_LEVELS.join(', ')}` });
        await pool.askAll('logging', level);
        this.log.warn({ to: level }, 'log level changed on every worker');
        return send(res, 200, { level });
      }
      default: {
        const known = ['/', '/healthz', '/ready', '/metrics', '/workers', '/config', '/clusters', '/listeners', '/reload', '/logging'];
        if (known.includes(url.pathname)) return send(res, 405, { error: `${req.method} not allowed on ${url.pathname}` });
        return send(res, 404, { error: `no admin endpoint ${url.pathname}`, admin_of: this.config.admin.address });
      }
    }
  }
}

