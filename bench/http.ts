/**
 * HTTP benchmark: wrk (Debian `wrk`, C) against an origin directly, through
 * HAProxy in http mode (one thread: Portway is one event loop) and through
 * Portway's http listener, all in one run on loopback: requests/s, p50, p99
 * and the ratio Portway / HAProxy (the goal: 0.6x or better).
 *
 * The origin must not be the bottleneck, so by default it is HAProxy itself
 * answering every request with `http-request return` (C, one thread, a fixed
 * 200 with a small body); `--origin node` uses a node:http server (this file
 * with --origin) for comparison. Both proxies keep connections to the origin
 * alive and add X-Forwarded-For and Via, so they do comparable work per
 * request. Each proxy is its own process, started for its path and stopped
 * after it; wrk runs one thread with --connections keep-alive connections.
 * --baseline-cli runs another Portway build the same way (path `baseline`),
 * so a change is measured against what it replaced in the same run.
 */
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  benchMain,
  Children,
  comparisonRows,
  CpuMeter,
  cpuRows,
  freePort,
  httpGet,
  machineLine,
  otherLoadWarning,
  parseBenchArgs,
  PORTWAY_CLI, PORTWAY_NODE_FLAGS,
  REPO,
  requireDebianTool,
  runAsMain,
  say,
  startWithRetries,
  stopOnError,
  table,
  waitForHttp200,
  waitForPort,
  type Child,
  type CpuMeasurement,
  type CpuShare,
} from './lib';

const HOST = '127.0.0.1';
const BODY = 'hello from the origin\n';

export type PathName = 'direct' | 'haproxy' | 'portway' | 'baseline';
const ALL_PATHS: PathName[] = ['direct', 'haproxy', 'portway', 'baseline'];

export interface Options {
  seconds: number;
  warmupSeconds: number;
  connections: number;
  origin: 'haproxy' | 'node';
  paths: PathName[];
  json: string | null;
  /** --baseline-cli: another build's dist/src/cli.js, run as path `baseline` (before/after in one run). */
  baselineCli: string | null;
}

export interface WrkResult {
  requestsPerSec: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx/3xx responses plus socket errors wrk counted. */
  errors: number;
  errorText: string | null;
  cpu: CpuShare;
}

export interface PathResult {
  label: string;
  run?: WrkResult;
  notes: Record<string, unknown>;
  error?: string;
}

export interface HttpBenchResult {
  machine: string;
  startedAt: string;
  options: Options;
  paths: Partial<Record<PathName, PathResult>>;
}

// ------------------------------------------------------------------ origin

/** --origin node: a node:http server answering every request with BODY. */
function serveNodeOrigin(): void {
  const body = Buffer.from(BODY);
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen({ host: HOST, port: 0, backlog: 4096 }, () => {
    const a = server.address();
    process.stdout.write(`origin listening ${typeof a === 'object' && a ? a.port : 0}\n`);
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
  process.on('SIGTERM', () => process.exit(0));
}

function haproxyOriginConfig(port: number): string {
  return `global
    nbthread 1

defaults
    mode http
    timeout client 1h
    timeout http-keep-alive 1h

frontend origin
    bind ${HOST}:${port}
    http-request return status 200 content-type text/plain string "${BODY.trim()}"
`;
}

function haproxyProxyConfig(port: number, origin: number): string {
  // No 'log' line: HAProxy logs nothing, as Portway at log level warn without access_log.
  return `global
    nbthread 1

defaults
    mode http
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout http-keep-alive 1h
    option http-keep-alive
    http-reuse always

frontend bench
    bind ${HOST}:${port}
    option forwardfor
    http-request add-header Via "1.1 haproxy"
    http-response add-header Via "1.1 haproxy"
    default_backend origin

backend origin
    server origin ${HOST}:${origin}
`;
}

function portwayConfig(admin: number, port: number, origin: number, connections: number): string {
  return `admin: { address: ${HOST}:${admin} }
log: { level: warn }
drain_timeout: 1s
listeners:
  - name: bench
    address: ${HOST}:${port}
    protocol: http
    options:
      routes: [{ path_prefix: /, cluster: origin }]
clusters:
  - name: origin
    endpoints: ["${HOST}:${origin}"]
    limits: { max_connections_per_endpoint: ${connections} }
`;
}

// --------------------------------------------------------------------- wrk

/** "1.23ms", "850.00us", "1.02s" -> ms. */
function wrkDuration(s: string): number {
  const m = /^([0-9.]+)(us|ms|s|m)$/.exec(s.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

export function parseWrk(out: string): Omit<WrkResult, 'cpu'> {
  const rps = Number(/Requests\/sec:\s*([0-9.]+)/.exec(out)?.[1] ?? NaN);
  const requests = Number(/([0-9]+) requests in/.exec(out)?.[1] ?? NaN);
  const p50 = wrkDuration(/^\s*50%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const p99 = wrkDuration(/^\s*99%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const non2xx = Number(/Non-2xx or 3xx responses:\s*([0-9]+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)/.exec(out);
  const sockErrors = sock ? sock.slice(1).reduce((n, v) => n + Number(v), 0) : 0;
  const errorText = non2xx || sockErrors ? [non2xx ? `${non2xx} non-2xx/3xx` : '', sock && sockErrors ? sock[0] : ''].filter(Boolean).join('; ') : null;
  return { requestsPerSec: rps, requests, p50Ms: p50, p99Ms: p99, errors: non2xx + sockErrors, errorText };
}

async function wrk(children: Children, bin: string, port: number, seconds: number, connections: number, pids: { origin: number; proxy: number | null }): Promise<WrkResult> {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', `http://${HOST}:${port}/`];
  const child = children.spawn('wrk', bin, args, { keepChars: 64 * 1024 });
  const list = [child.pid, pids.origin, ...(pids.proxy !== null ? [pids.proxy] : [])];
  const cpu = new CpuMeter(list);
  // /proc/<pid> of wrk vanishes at exit: sample until then and keep the last reading.
  let last = list.map(() => NaN).concat(NaN);
  const sampler = setInterval(() => (last = cpu.stop()), 200);
  const hard = setTimeout(() => child.proc.kill('SIGKILL'), seconds * 1000 + 20_000);
  const code = await child.exited;
  clearInterval(sampler);
  clearTimeout(hard);
  const r = parseWrk(child.output());
  if (code !== 0 || !Number.isFinite(r.requestsPerSec)) throw new Error(`wrk exited ${code}: ${child.output().slice(-800)}`);
  return { ...r, cpu: { generator: last[0]!, upstream: last[1]!, proxy: pids.proxy !== null ? last[2]! : NaN, machine: last[last.length - 1]! } };
}

// ------------------------------------------------------------------ paths

interface RunningPath {
  label: string;
  port: number;
  proxy: Child | null;
  notes: Record<string, unknown>;
  finish(): Promise<void>;
}

async function startPath(
  path: PathName,
  ctx: { children: Children; tmp: string; originPort: number; haproxyBin: string; connections: number; baselineCli: string | null },
): Promise<RunningPath> {
  const { children, tmp, originPort } = ctx;
  if (path === 'direct') return { label: 'direct', port: originPort, proxy: null, notes: {}, finish: async () => {} };
  const port = await freePort();
  if (path === 'haproxy') {
    const file = join(tmp, 'haproxy.cfg');
    writeFileSync(file, haproxyProxyConfig(port, originPort));
    const proxy = children.spawn('haproxy', ctx.haproxyBin, ['-db', '-f', file]);
    await stopOnError(proxy, waitForPort(port, 15_000, proxy));
    return { label: 'haproxy(1t)', port, proxy, notes: {}, finish: () => proxy.stop() };
  }
  const admin = await freePort();
  const file = join(tmp, 'portway.yaml');
  writeFileSync(file, portwayConfig(admin, port, originPort, ctx.connections));
  const cli = path === 'baseline' ? ctx.baselineCli! : PORTWAY_CLI;
  const proxy = children.spawn(path, process.execPath, [...PORTWAY_NODE_FLAGS, cli, 'run', '-c', file], { cwd: REPO });
  await stopOnError(proxy, waitForHttp200(`http://${HOST}:${admin}/ready`, 15_000, proxy));
  const notes: Record<string, unknown> = {};
  return {
    label: path === 'baseline' ? 'portway(base)' : 'portway',
    port,
    proxy,
    notes,
    finish: async () => {
      try {
        notes['listeners'] = JSON.parse((await httpGet(`http://${HOST}:${admin}/listeners`)).body);
      } catch (e) {
        notes['listeners_error'] = (e as Error).message;
      }
      await proxy.stop();
      if (proxy.exitCode !== 0) notes['exit'] = `exit code ${proxy.exitCode}; output: ${proxy.output().slice(-2000)}`;
    },
  };
}

const HELP = `node dist/bench/http.js [options]   (or: npm run bench)

  --quick               2 s per path instead of 8 s
  --seconds N           length of each measured wrk run (default 8; env BENCH_HTTP_SECONDS)
  --connections N       wrk keep-alive connections (default 50)
  --origin KIND         haproxy (default: HAProxy's http-request return) or node (a node:http server)
  --paths LIST          comma-separated subset of ${ALL_PATHS.join(',')} (default: all but baseline)
  --baseline-cli FILE   also run another Portway build (its dist/src/cli.js) as path baseline, for before/after in one run
  --json FILE           also write the results as JSON
`;

function parseOptions(argv: string[]): Options | null {
  const parsed = parseBenchArgs(
    argv,
    { seconds: { type: 'string' }, connections: { type: 'string' }, origin: { type: 'string' }, paths: { type: 'string' }, 'baseline-cli': { type: 'string' } },
    HELP,
  );
  if (!parsed) return null;
  const { values, quick } = parsed;
  const num = (raw: string | undefined, name: string, dflt: number, min: number): number => {
    if (raw === undefined || raw === '') return dflt;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min) throw new Error(`${name}: expected a number >= ${min}, got '${raw}'`);
    return n;
  };
  const origin = values.origin ?? 'haproxy';
  if (origin !== 'haproxy' && origin !== 'node') throw new Error(`--origin: haproxy or node, got '${origin}'`);
  const baselineCli = values['baseline-cli'] ?? null;
  const dflt = baselineCli !== null ? ALL_PATHS : ALL_PATHS.filter((p) => p !== 'baseline');
  const paths = (values.paths ?? dflt.join(',')).split(',').map((p) => p.trim()) as PathName[];
  for (const p of paths) if (!ALL_PATHS.includes(p)) throw new Error(`--paths: unknown path '${p}' (known: ${ALL_PATHS.join(', ')})`);
  if (paths.includes('baseline') && baselineCli === null) throw new Error('--paths baseline needs --baseline-cli FILE');
  return {
    seconds: Math.max(1, Math.round(num(values.seconds ?? process.env['BENCH_HTTP_SECONDS'], '--seconds', quick ? 2 : 8, 1))),
    warmupSeconds: 1,
    connections: Math.floor(num(values.connections, '--connections', 50, 1)),
    origin,
    paths,
    json: values.json ?? null,
    baselineCli: baselineCli !== null ? resolve(baselineCli) : null,
  };
}

export async function runHttpBench(opts: Options): Promise<HttpBenchResult> {
  const children = new Children();
  const tmp = mkdtempSync(join(tmpdir(), 'portway-bench-http-'));
  const out: HttpBenchResult = { machine: machineLine(), startedAt: new Date().toISOString(), options: opts, paths: {} };
  try {
    const wrkBin = requireDebianTool('wrk', 'wrk', ['/usr/bin/wrk']);
    const haproxyBin = requireDebianTool('haproxy', 'haproxy', ['/usr/sbin/haproxy']);
    let origin: Child;
    let originPort: number;
    if (opts.origin === 'node') {
      origin = children.spawn('origin', process.execPath, [__filename, '--origin'], { stdio: ['pipe', 'pipe', 'pipe'] });
      originPort = Number((await origin.waitForOutput(/origin listening (\d+)/, 10_000))[1]);
    } else {
      originPort = await freePort();
      const file = join(tmp, 'origin.cfg');
      writeFileSync(file, haproxyOriginConfig(originPort));
      origin = children.spawn('origin', haproxyBin, ['-db', '-f', file]);
      await waitForPort(originPort, 15_000, origin);
    }
    for (const path of opts.paths) {
      say(`bench: ${path}`);
      try {
        const running = await startWithRetries(path, () => startPath(path, { children, tmp, originPort, haproxyBin, connections: opts.connections, baselineCli: opts.baselineCli }));
        const result: PathResult = { label: running.label, notes: running.notes };
        try {
          const pids = { origin: origin.pid, proxy: running.proxy?.pid ?? null };
          await wrk(children, wrkBin, running.port, opts.warmupSeconds, opts.connections, pids);
          result.run = await wrk(children, wrkBin, running.port, opts.seconds, opts.connections, pids);
          if (running.proxy && !running.proxy.alive) throw new Error(`${running.label} died during the run; output:\n${running.proxy.output()}`);
        } finally {
          await running.finish();
        }
        out.paths[path] = result;
      } catch (e) {
        out.paths[path] = { label: path, notes: {}, error: (e as Error).message };
        say(`bench: ${path} failed: ${(e as Error).message}`);
      }
      if (!origin.alive) throw new Error(`the origin died (exit ${origin.exitCode}); output:\n${origin.output()}`);
    }
  } finally {
    await children.stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

export function report(r: HttpBenchResult): string {
  const cols = ALL_PATHS.filter((p) => r.paths[p] !== undefined);
  const paths = cols.map((c) => r.paths[c]!);
  const pw = r.paths.portway;
  const ha = r.paths.haproxy;
  const dir = r.paths.direct;
  const base = r.paths.baseline;
  const ratioCols: Array<[string, PathResult | undefined]> = [];
  if (pw && ha) ratioCols.push([`portway/${ha.label}`, ha]);
  if (pw && dir) ratioCols.push(['portway/direct', dir]);
  if (pw && base) ratioCols.push([`portway/${base.label}`, base]);
  const metrics: Array<[string, (p: PathResult) => number | undefined]> = [
    [`requests/s (wrk, ${r.options.connections} keep-alive connections)`, (p) => p.run?.requestsPerSec],
    ['  latency p50 ms', (p) => p.run?.p50Ms],
    ['  latency p99 ms', (p) => p.run?.p99Ms],
    // CPU time the proxy spends per request: steadier than requests/s when other load shares the cores.
    ['proxy CPU us per request', (p) => (p.run && Number.isFinite(p.run.cpu.proxy) ? (p.run.cpu.proxy / 100) * 1e6 / p.run.requestsPerSec : undefined)],
  ];
  const cores = availableParallelism();
  const lines = [table([`HTTP benchmark (Node ${process.version}, ${cores} cores, origin: ${r.options.origin})`, ...paths.map((p) => p.label), ...ratioCols.map(([n]) => n)], comparisonRows(metrics, paths, pw, ratioCols))];
  const cpuM: Array<CpuMeasurement<PathResult>> = [['wrk run', (p) => p.run]];
  const cpu = cpuRows(cpuM, paths);
  if (cpu.length) lines.push('', table([`CPU % (100 = one core): wrk / origin / proxy / machine (of ${cores * 100})`, ...paths.map((p) => p.label)], cpu));
  const warning = otherLoadWarning(cpuM, paths, (p) => p.label, (c) => c.generator + c.upstream + (Number.isFinite(c.proxy) ? c.proxy : 0));
  if (warning) lines.push(warning);
  if (pw?.run && ha?.run) {
    const x = pw.run.requestsPerSec / ha.run.requestsPerSec;
    lines.push('', `Goal (issue): Portway >= 0.6x ${ha.label} requests/s: ${x.toFixed(2)}x ${x >= 0.6 ? 'met' : 'NOT met'}`);
  }
  if (base?.run && ha?.run) lines.push(`(${base.label}: ${(base.run.requestsPerSec / ha.run.requestsPerSec).toFixed(2)}x ${ha.label} in the same run)`);
  for (const p of paths) {
    if (p.error) lines.push('', `${p.label} FAILED: ${p.error}`);
    if (p.run?.errorText) lines.push(`${p.label}: wrk counted ${p.run.errorText}`);
    const ls = (p.notes['listeners'] as Record<string, { errors?: Record<string, number> }> | undefined) ?? {};
    for (const [name, l] of Object.entries(ls)) if (l.errors && Object.keys(l.errors).length) lines.push(`portway listener ${name} counted: ${JSON.stringify(l.errors)}`);
    if (p.notes['exit']) lines.push(`${p.label}: ${String(p.notes['exit'])}`);
  }
  lines.push(
    '',
    `${r.machine}. wrk -t1 -c${r.options.connections}, ${r.options.seconds} s per path after a ${r.options.warmupSeconds} s warm-up, GET / answered 200 with a ${BODY.length}-byte body. HAProxy proxy and origin run nbthread 1. All processes share the machine's cores.`,
  );
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--origin') {
    serveNodeOrigin();
    return -1;
  }
  return benchMain(argv, { help: HELP, parse: parseOptions, run: runHttpBench, report });
}

if (require.main === module) runAsMain(main);
