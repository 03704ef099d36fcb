/**
 * XML-RPC benchmark: calls/s and latency (p50/p99) of the same echo call on
 * four paths, measured in one run on loopback:
 *
 *   xmlrpc-direct        generator -> npm xmlrpc server                      (baseline of passthrough)
 *   xmlrpc-passthrough   generator -> Portway (xmlrpc) -> npm xmlrpc server
 *   json-direct          generator -> node:http JSON service (JSON POST)     (baseline of translation)
 *   xmlrpc-to-json       generator -> Portway (xmlrpc, http_json) -> the JSON service
 *
 * Processes: this one is the load generator (undici, N keep-alive
 * connections, one call in flight on each, like N xmlrpc clients); the
 * upstreams are this same file started with --upstream; Portway is its own
 * process. The call: echo of a struct {id, name, amount, when, tags}.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Pool } from 'undici';
import * as xmlrpc from 'xmlrpc';
import { benchMain, Children, fmt, freePort, machineLine, parseBenchArgs, percentile, PORTWAY_CLI, processCpuSeconds, ratio, runAsMain, say, sleep, table, waitForHttp200, waitForPort } from './lib';

const HELP = `bench/xmlrpc: XML-RPC passthrough and XML-RPC -> JSON translation through Portway, beside direct calls.

  node dist/bench/xmlrpc.js [--connections N] [--seconds S] [--paths P,..] [--portway CLI] [--quick] [--json FILE]

  --connections N   concurrent keep-alive connections of the generator (default 32)
  --seconds S       measured seconds per path (default 10; --quick: 2)
  --paths P,..      the paths to run (default all: xmlrpc-direct,xmlrpc-passthrough,json-direct,xmlrpc-to-json)
  --portway CLI     the Portway cli.js to run (default: the one of this build; to compare two builds)

The 'pw cpu us' column is the CPU time (user + system, from /proc) the
Portway process used per call while the path was measured: on a shared
machine it moves much less than calls/s does.
`;

const PATHS = ['xmlrpc-direct', 'xmlrpc-passthrough', 'json-direct', 'xmlrpc-to-json'] as const;
type PathName = (typeof PATHS)[number];

interface PathResult {
  calls: number;
  errors: number;
  callsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU µs of the Portway process per call over the measured seconds (NaN on the direct paths). */
  portwayCpuUsPerCall: number;
  error?: string;
}

interface Result {
  machine: string;
  connections: number;
  seconds: number;
  paths: Partial<Record<PathName, PathResult>>;
}

interface Opts {
  connections: number;
  seconds: number;
  json: string | null;
  paths: PathName[];
  portway: string;
}

const PAYLOAD = { id: 12345, name: 'invoice <42> & co', amount: 1250.75, when: new Date(Date.UTC(2024, 4, 1, 12, 0, 0)), tags: ['a', 'b', 'c'] };

/** The document the npm xmlrpc client sends for this call. */
function xmlCall(method: string): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const serializer = require('xmlrpc/lib/serializer') as { serializeMethodCall(m: string, p: unknown[]): string };
  return serializer.serializeMethodCall(method, [PAYLOAD]);
}

/** Runs the upstreams (npm xmlrpc server, JSON service) in this process until killed. */
async function upstream(xmlPort: number, jsonPort: number): Promise<void> {
  const server = xmlrpc.createServer({ host: '127.0.0.1', port: xmlPort });
  server.on('bench.echo', (_err: unknown, params: unknown[], cb: (e: unknown, v: unknown) => void) => cb(null, params[0]));
  const json = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const args = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown[];
      const text = JSON.stringify(args[0]);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  json.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => json.listen(jsonPort, '127.0.0.1', r));
  process.stdout.write('upstreams ready\n');
}

/** N workers, each one call at a time over its own keep-alive connection, for `seconds` after a warm-up. */
async function load(origin: string, path: string, body: string, contentType: string, check: (text: string) => boolean, connections: number, seconds: number, proxyPid: number | null): Promise<PathResult> {
  const pool = new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const lat: number[] = [];
  let errors = 0;
  let measuring = false;
  let stop = false;
  const headers = { 'content-type': contentType };
  const worker = async () => {
    while (!stop) {
      const t0 = performance.now();
      try {
        const r = await pool.request({ path, method: 'POST', headers, body });
        const text = await r.body.text();
        if (r.statusCode !== 200 || !check(text)) errors++;
      } catch {
        errors++;
      }
      if (measuring) lat.push(performance.now() - t0);
    }
  };
  const workers = Array.from({ length: connections }, worker);
  await sleep(Math.min(1000, seconds * 250));
  measuring = true;
  const cpu0 = proxyPid !== null ? processCpuSeconds(proxyPid) : NaN;
  const start = performance.now();
  await sleep(seconds * 1000);
  measuring = false;
  const elapsed = (performance.now() - start) / 1000;
  const cpu = proxyPid !== null ? processCpuSeconds(proxyPid) - cpu0 : NaN;
  const calls = lat.length;
  stop = true;
  await Promise.all(workers);
  await pool.close();
  lat.sort((a, b) => a - b);
  return { calls, errors, callsPerSec: calls / elapsed, p50Ms: percentile(lat, 0.5), p99Ms: percentile(lat, 0.99), portwayCpuUsPerCall: calls > 0 ? (cpu * 1e6) / calls : NaN };
}

async function run(o: Opts): Promise<Result> {
  const children = new Children();
  const dir = mkdtempSync(join(tmpdir(), 'portway-bench-xmlrpc-'));
  const result: Result = { machine: machineLine(), connections: o.connections, seconds: o.seconds, paths: {} };
  try {
    const [xmlPort, jsonPort, pwPort, adminPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const up = children.spawn('upstreams', process.execPath, [__filename, '--upstream', String(xmlPort), String(jsonPort)]);
    await up.waitForOutput(/upstreams ready/, 10_000);
    const cfg = join(dir, 'portway.yaml');
    writeFileSync(
      cfg,
      `admin: { address: 127.0.0.1:${adminPort} }
log: { level: warn }
listeners:
  - name: xmlrpc
    address: 127.0.0.1:${pwPort}
    protocol: xmlrpc
    options:
      methods: [{ prefix: "json.", cluster: json }]
      default_cluster: legacy
      upstreams:
        json: { type: http_json }
clusters:
  - { name: legacy, endpoints: ["127.0.0.1:${xmlPort}"], limits: { max_connections_per_endpoint: ${o.connections} } }
  - { name: json, endpoints: ["127.0.0.1:${jsonPort}"], limits: { max_connections_per_endpoint: ${o.connections} } }
`,
    );
    const pw = children.spawn('portway', process.execPath, [o.portway, 'run', '-c', cfg]);
    await waitForHttp200(`http://127.0.0.1:${adminPort}/ready`, 15_000, pw);
    await waitForPort(pwPort, 5000, pw);
    const isResponse = (t: string) => t.includes('<methodResponse>') && !t.includes('<fault>');
    const isJson = (t: string) => t.startsWith('{"id":12345');
    const plan: Record<PathName, () => Promise<PathResult>> = {
      'xmlrpc-direct': () => load(`http://127.0.0.1:${xmlPort}`, '/RPC2', xmlCall('bench.echo'), 'text/xml', isResponse, o.connections, o.seconds, null),
      'xmlrpc-passthrough': () => load(`http://127.0.0.1:${pwPort}`, '/RPC2', xmlCall('bench.echo'), 'text/xml', isResponse, o.connections, o.seconds, pw.pid),
      'json-direct': () => load(`http://127.0.0.1:${jsonPort}`, '/json.bench/echo', JSON.stringify([PAYLOAD]), 'application/json', isJson, o.connections, o.seconds, null),
      'xmlrpc-to-json': () => load(`http://127.0.0.1:${pwPort}`, '/RPC2', xmlCall('json.bench.echo'), 'text/xml', isResponse, o.connections, o.seconds, pw.pid),
    };
    for (const p of o.paths) {
      say(`bench: ${p} (${o.connections} connections, ${o.seconds} s)`);
      try {
        result.paths[p] = await plan[p]();
      } catch (e) {
        result.paths[p] = { calls: 0, errors: 0, callsPerSec: 0, p50Ms: 0, p99Ms: 0, portwayCpuUsPerCall: NaN, error: (e as Error).message };
      }
    }
  } finally {
    await children.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

function report(r: Result): string {
  const row = (p: PathName, base: PathName | null): string[] => {
    const x = r.paths[p];
    if (x === undefined) return [p, '-', '-', '-', '-', '-', '-'];
    if (x.error !== undefined) return [p, `error: ${x.error}`, '', '', '', '', ''];
    const b = base !== null ? r.paths[base] : undefined;
    const cpu = Number.isFinite(x.portwayCpuUsPerCall) ? fmt(x.portwayCpuUsPerCall) : '-';
    return [p, fmt(x.callsPerSec), fmt(x.p50Ms), fmt(x.p99Ms), cpu, String(x.errors), b !== undefined && base !== null ? `${ratio(x.callsPerSec, b.callsPerSec)} of ${base}` : 'baseline'];
  };
  return [
    `XML-RPC through Portway (${r.connections} connections, ${r.seconds} s per path)`,
    r.machine,
    table(
      ['path', 'calls/s', 'p50 ms', 'p99 ms', 'pw cpu us', 'errors', 'vs'],
      [row('xmlrpc-direct', null), row('xmlrpc-passthrough', 'xmlrpc-direct'), row('json-direct', null), row('xmlrpc-to-json', 'json-direct')],
    ),
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--upstream') {
    await upstream(Number(argv[1]), Number(argv[2]));
    return -1;
  }
  return benchMain<Opts, Result>(argv, {
    help: HELP,
    parse(a) {
      const p = parseBenchArgs(a, { connections: { type: 'string' }, seconds: { type: 'string' }, paths: { type: 'string' }, portway: { type: 'string' } }, HELP);
      if (p === null) return null;
      const connections = Number(p.values.connections ?? 32);
      const seconds = Number(p.values.seconds ?? (p.quick ? 2 : 10));
      if (!(connections >= 1) || !(seconds > 0)) throw new Error('--connections and --seconds must be positive numbers');
      const paths = (p.values.paths ?? PATHS.join(',')).split(',').map((s) => s.trim()) as PathName[];
      for (const x of paths) if (!PATHS.includes(x)) throw new Error(`unknown path '${x}' (expected ${PATHS.join(', ')})`);
      return { connections, seconds, json: p.values.json ?? null, paths, portway: p.values.portway !== undefined ? resolve(p.values.portway) : PORTWAY_CLI };
    },
    run,
    report,
  });
}

runAsMain(main);
