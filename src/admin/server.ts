import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Proxy } from '../proxy';
import type { Logger } from '../logger';
import { LOG_LEVELS, setLogLevel } from '../logger';
import { formatHostPort } from '../util/address';
import { VERSION } from '../version';

const SECRET_KEY = /pass(word)?|secret|token|credential|api[_-]?key|private[_-]?key/i;

/** Replaces the value of every key that looks like a secret. */
export function redact(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(redact);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
      out[k] = SECRET_KEY.test(k) && (typeof val === 'string' || typeof val === 'number') ? '[redacted]' : redact(val);
    }
    return out;
  }
  return v;
}

const MAX_BODY = 1 << 20;

/**
 * The admin HTTP API: readiness, liveness, Prometheus metrics, the effective
 * config (secrets redacted), clusters with endpoint health, reload and log level.
 */
export class AdminServer {
  private readonly server: Server;

  constructor(
    private readonly proxy: Proxy,
    private readonly log: Logger,
  ) {
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err: Error) => {
        this.log.error({ err }, 'admin request failed');
        if (!res.headersSent) send(res, 500, { error: 'internal error' });
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
      this.server.listen({ host, port }, () => resolve());
    });
  }

  /** The listening server (its socket is handed to a successor on a zero-downtime restart). */
  get netServer(): import('node:net').Server {
    return this.server;
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
    const key = `${req.method} ${url.pathname}`;
    const p = this.proxy;
    switch (key) {
      case 'GET /':
        return send(res, 200, {
          portway: VERSION,
          endpoints: ['GET /ready', 'GET /healthz', 'GET /metrics', 'GET /config', 'GET /clusters', 'GET /listeners', 'POST /reload', 'GET /logging', 'POST /logging?level=LEVEL'],
        });
      case 'GET /healthz':
        return send(res, 200, { status: 'ok' });
      case 'GET /ready':
        return p.isDraining() ? send(res, 503, { status: 'draining' }) : send(res, 200, { status: 'ready', generation: p.generation });
      case 'GET /metrics':
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(p.metrics.render());
        return;
      case 'GET /config':
        return send(res, 200, { generation: p.generation, source: p.config.sourcePath ?? null, last_reload: p.lastReload, config: redact(p.config.raw) });
      case 'GET /clusters':
        return send(res, 200, { generation: p.generation, clusters: p.clusters.all().map((c) => c.toJSON()) });
      case 'GET /listeners':
        return send(res, 200, { generation: p.generation, listeners: p.listenerStats() });
      case 'POST /reload': {
        const body = await readBody(req);
        const r = await p.reload(body.length > 0 ? body : undefined);
        return send(res, r.ok ? 200 : 400, r);
      }
      case 'GET /logging':
        return send(res, 200, { level: p.log.level });
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
        if (level === null || !LOG_LEVELS.includes(level as never)) {
          return send(res, 400, { error: `level must be one of: ${LOG_LEVELS.join(', ')}` });
        }
        const before = p.log.level;
        setLogLevel(p.log, level);
        this.log.warn({ from: before, to: level }, 'log level changed');
        return send(res, 200, { level });
      }
      default: {
        const known = ['/', '/healthz', '/ready', '/metrics', '/config', '/clusters', '/listeners', '/reload', '/logging'];
        if (known.includes(url.pathname)) return send(res, 405, { error: `${req.method} not allowed on ${url.pathname}` });
        return send(res, 404, { error: `no admin endpoint ${url.pathname}` });
      }
    }
  }
}

/** Writes a JSON admin reply (also used by the workers' primary admin). */
export function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads an admin request body, at most 1 MiB. */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('admin request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
