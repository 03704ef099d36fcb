/**
 * SOFA Bolt benchmark: the same sofa-rpc-node load (echo of a short string)
 * sent directly to a sofa-rpc-node server, through Portway's bolt listener
 * (Bolt to Bolt), and through Portway translating to a JSON-over-HTTP
 * service (Bolt to HTTP), all in one run on loopback.
 *
 * Processes: the load generator is a sofa-rpc-node RpcClient in a child
 * process (test/helpers/sofa.ts: `--concurrency` calls in flight over its
 * one connection, per-call latency measured there); the Bolt provider is a
 * sofa-rpc-node RpcServer in another child; the HTTP service (node:http,
 * answering the JSON array's first element) runs in this process, which
 * otherwise only orchestrates; Portway is `node dist/src/cli.js run` in its
 * own process, log level warn, no filters but the router.
 *
 * Each path: a short unmeasured warm-up, then `--seconds` of load. Figures:
 * calls/s (completed calls / elapsed), p50 and p99 latency as the client
 * saw it, errors, and CPU% of generator / upstream / proxy / machine.
 *
 * That closed loop saturates the machine (the provider alone takes a core),
 * so its latency is mostly queueing: by Little's law, 32 calls in flight at
 * N calls/s wait 32/N s on average, and any throughput the proxy's CPU takes
 * from the provider shows up as added latency. The added latency of the hop
 * itself is measured the way load testers measure latency, below
 * saturation: then each path gets an open-loop run (`--rate` calls/s sent on
 * schedule whether or not earlier calls were answered) and its p50, p99 and
 * p99.9.
 *
 * Both loops are noisy on a small shared machine (the generator, the
 * provider and the proxy are all Node processes with their own GC pauses),
 * so the paths are measured in `--rounds` interleaved rounds (each round
 * runs every path back to back) and the tables show per-path medians over
 * the rounds, then each round's ratios so the spread is visible.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  benchMain,
  Children,
  CpuMeter,
  fmt,
  freePort,
  machineLine,
  parseBenchArgs,
  percentile,
  PORTWAY_CLI, PORTWAY_NODE_FLAGS,
  REPO,
  ratio,
  runAsMain,
  say,
  table,
  waitForPort,
  type CpuShare,
} from './lib';
import { startSofaClient, startSofaServer, type SofaServer } from '../test/helpers/sofa';

type PathName = 'direct' | 'portway' | 'portway-http';
const PATHS: PathName[] = ['direct', 'portway', 'portway-http'];

interface PathResult {
  callsPerSec?: number;
  p50Ms?: number;
  p99Ms?: number;
  calls?: number;
  errors?: number;
  firstError?: string;
  cpu?: CpuShare;
  /** The open-loop run at a fixed rate (--rate), after the saturated one. */
  fixed?: { rate: number; calls: number; errors: number; late: number; p50Ms: number; p99Ms: number; p999Ms: number; cpu: CpuShare; firstError?: string };
  error?: string;
  /** Each round's result (the fields above are their medians, counts their sums). */
  rounds?: PathResult[];
}

interface Options {
  seconds: number;
  /** Interleaved rounds; figures are medians over them. */
  rounds: number;
  concurrency: number;
  /** Calls/s of the open-loop run (0: none). */
  rate: number;
  /** The bolt listener's quick_ack option. */
  quickAck: boolean;
  json: string | null;
  paths: PathName[];
}

interface Result {
  machine: string;
  options: Options;
  paths: Partial<Record<PathName, PathResult>>;
}

const HELP = `bench/bolt: sofa-rpc-node client -> server directly, through Portway (Bolt to Bolt), and Bolt -> HTTP/JSON translation.

  node dist/bench/bolt.js [--quick] [--seconds N] [--concurrency N] [--paths direct,portway,portway-http] [--json FILE]

  --quick          1.5 s per path, one round (a smoke test, not figures to quote)
  --seconds N      measured seconds per path (default 5)
  --rounds N       interleaved rounds, each running every path; tables show medians (default 3)
  --concurrency N  calls in flight from the client (default 32)
  --no-quick-ack   run Portway with the bolt option quick_ack: false (default: its default, true)
  --rate N         then an open-loop run on each path: N calls/s sent on schedule whatever the
                   answers do, for the added latency of the hop below saturation (default 2000; 0: skip)
`;

function parse(argv: string[]): Options | null {
  const p = parseBenchArgs(argv, { seconds: { type: 'string' }, rounds: { type: 'string' }, concurrency: { type: 'string' }, rate: { type: 'string' }, paths: { type: 'string' }, 'no-quick-ack': { type: 'boolean' } }, HELP);
  if (p === null) return null;
  const v = p.values as { seconds?: string; rounds?: string; concurrency?: string; rate?: string; paths?: string; json?: string; 'no-quick-ack'?: boolean };
  const paths = (v.paths ?? PATHS.join(',')).split(',').map((s) => s.trim()) as PathName[];
  for (const x of paths) if (!PATHS.includes(x)) throw new Error(`unknown path '${x}' (expected ${PATHS.join(', ')})`);
  const rounds = v.rounds !== undefined ? Number(v.rounds) : p.quick ? 1 : 3;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds: expected a whole number >= 1, got '${v.rounds}'`);
  return {
    seconds: v.seconds !== undefined ? Number(v.seconds) : p.quick ? 1.5 : 5,
    rounds,
    concurrency: v.concurrency !== undefined ? Number(v.concurrency) : 32,
    rate: v.rate !== undefined ? Number(v.rate) : 2000,
    quickAck: v['no-quick-ack'] !== true,
    json: v.json ?? null,
    paths,
  };
}

async function startPortwayProcess(children: Children, dir: string, provider: SofaServer, httpPort: number, quickAck: boolean): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const file = join(dir, 'portway.yaml');
  writeFileSync(
    file,
    `admin: { enabled: false }
log: { level: warn }
listeners:
  - name: bolt
    address: 127.0.0.1:${port}
    protocol: bolt
    options:
      quick_ack: ${quickAck}
      translate:
        http: { type: http }
    routes:
      - { match: { attributes: { service: { prefix: "com.example.HttpEcho" } } }, cluster: http }
      - { cluster: bolt }
clusters:
  - { name: bolt, endpoints: [${provider.address}] }
  - { name: http, endpoints: [127.0.0.1:${httpPort}] }
`,
  );
  const child = children.spawn('portway', process.execPath, [...PORTWAY_NODE_FLAGS, PORTWAY_CLI, 'run', '-c', file], { cwd: REPO });
  await waitForPort(port, 15_000, child);
  return { port, pid: child.pid, stop: () => child.stop() };
}

function httpEcho(): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const args = JSON.parse(Buffer.concat(chunks).toString()) as unknown[];
      const body = JSON.stringify(args[0] ?? null);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

async function measure(target: string, service: string | undefined, o: Options, pids: number[]): Promise<PathResult> {
  const client = await startSofaClient({ serverHost: target });
  try {
    const args = ['hello portway'];
    // Warm-up: connections, JIT, pools.
    const warm = await client.load('echo', args, 1_000_000, o.concurrency, { durationMs: Math.min(1000, o.seconds * 400), ...(service ? { service } : {}) });
    if (warm.calls === 0) return { error: `no call succeeded in the warm-up: ${warm.firstError ?? 'unknown'}` };
    const meter = new CpuMeter([client.pid, ...pids]);
    const r = await client.load('echo', args, 100_000_000, o.concurrency, { durationMs: o.seconds * 1000, ...(service ? { service } : {}) });
    const cpu = meter.stop();
    const lat = Float64Array.from(r.latencies).sort();
    let fixed: PathResult['fixed'];
    if (o.rate > 0) {
      const fm = new CpuMeter([client.pid, ...pids]);
      const f = await client.rateLoad('echo', args, o.rate, o.seconds * 1000, service ? { service } : {});
      const fc = fm.stop();
      const fl = Float64Array.from(f.latencies).sort();
      fixed = {
        rate: o.rate,
        calls: f.calls,
        errors: f.errors,
        late: f.late,
        p50Ms: percentile(fl, 0.5),
        p99Ms: percentile(fl, 0.99),
        p999Ms: percentile(fl, 0.999),
        cpu: { generator: fc[0]!, upstream: pids.length > 0 ? fc[1]! : NaN, proxy: pids.length > 1 ? fc[2]! : NaN, machine: fc[fc.length - 1]! },
        ...(f.firstError ? { firstError: f.firstError } : {}),
      };
    }
    return {
      ...(fixed ? { fixed } : {}),
      callsPerSec: (r.calls / r.elapsedMs) * 1000,
      p50Ms: percentile(lat, 0.5),
      p99Ms: percentile(lat, 0.99),
      calls: r.calls,
      errors: r.errors,
      ...(r.firstError ? { firstError: r.firstError } : {}),
      cpu: { generator: cpu[0]!, upstream: pids.length > 0 ? cpu[1]! : NaN, proxy: pids.length > 1 ? cpu[2]! : NaN, machine: cpu[cpu.length - 1]! },
    };
  } finally {
    await client.kill();
  }
}

async function run(o: Options): Promise<Result> {
  const children = new Children();
  const dir = mkdtempSync(join(tmpdir(), 'portway-bench-bolt-'));
  const result: Result = { machine: machineLine(), options: o, paths: {} };
  say(`bench/bolt: ${result.machine}; ${o.seconds} s per path, ${o.concurrency} calls in flight`);
  const provider = await startSofaServer({ name: 'bench' });
  const http = await httpEcho();
  const httpPort = (http.address() as AddressInfo).port;
  let pw: Awaited<ReturnType<typeof startPortwayProcess>> | null = null;
  const rounds = new Map<PathName, PathResult[]>(o.paths.map((p) => [p, []]));
  try {
    pw = await startPortwayProcess(children, dir, provider, httpPort, o.quickAck);
    for (let round = 1; round <= o.rounds; round++) {
      for (const path of o.paths) {
        say(`bench/bolt: round ${round}/${o.rounds}: ${path} ...`);
        let r: PathResult;
        try {
          if (path === 'direct') r = await measure(provider.address, undefined, o, [provider.pid]);
          else if (path === 'portway') r = await measure(`127.0.0.1:${pw.port}`, undefined, o, [provider.pid, pw.pid]);
          else r = await measure(`127.0.0.1:${pw.port}`, 'com.example.HttpEcho', o, [process.pid, pw.pid]);
        } catch (e) {
          r = { error: (e as Error).message };
        }
        rounds.get(path)!.push(r);
      }
    }
    for (const [path, rs] of rounds) result.paths[path] = combine(rs);
  } finally {
    await pw?.stop();
    await provider.kill();
    await new Promise<void>((r) => http.close(() => r()));
    await children.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One path's rounds as one result: medians of rates and latencies, sums of counts; a failed round fails the path. */
function combine(rs: PathResult[]): PathResult {
  const failed = rs.find((r) => r.error !== undefined);
  if (failed) return { error: failed.error!, rounds: rs };
  const med = (f: (r: PathResult) => number | undefined) => median(rs.map((r) => f(r) ?? NaN));
  const sum = (f: (r: PathResult) => number | undefined) => rs.reduce((a, r) => a + (f(r) ?? 0), 0);
  const cpu = (f: (r: PathResult) => CpuShare | undefined): CpuShare => ({
    generator: med((r) => f(r)?.generator),
    upstream: med((r) => f(r)?.upstream),
    proxy: med((r) => f(r)?.proxy),
    machine: med((r) => f(r)?.machine),
  });
  const firstError = rs.find((r) => r.firstError)?.firstError;
  const fixedFirstError = rs.find((r) => r.fixed?.firstError)?.fixed?.firstError;
  const out: PathResult = {
    callsPerSec: med((r) => r.callsPerSec),
    p50Ms: med((r) => r.p50Ms),
    p99Ms: med((r) => r.p99Ms),
    calls: sum((r) => r.calls),
    errors: sum((r) => r.errors),
    cpu: cpu((r) => r.cpu),
    rounds: rs,
    ...(firstError ? { firstError } : {}),
  };
  if (rs.every((r) => r.fixed !== undefined)) {
    out.fixed = {
      rate: rs[0]!.fixed!.rate,
      calls: sum((r) => r.fixed!.calls),
      errors: sum((r) => r.fixed!.errors),
      late: sum((r) => r.fixed!.late),
      p50Ms: med((r) => r.fixed!.p50Ms),
      p99Ms: med((r) => r.fixed!.p99Ms),
      p999Ms: med((r) => r.fixed!.p999Ms),
      cpu: cpu((r) => r.fixed!.cpu),
      ...(fixedFirstError ? { firstError: fixedFirstError } : {}),
    };
  }
  return out;
}

function report(r: Result): string {
  const cols = r.options.paths;
  const get = (p: PathName) => r.paths[p];
  const d = get('direct');
  const rows: string[][] = [
    ['calls/s', ...cols.map((p) => fmt(get(p)?.callsPerSec ?? NaN))],
    ['p50 ms', ...cols.map((p) => fmt(get(p)?.p50Ms ?? NaN))],
    ['p99 ms', ...cols.map((p) => fmt(get(p)?.p99Ms ?? NaN))],
    ['errors', ...cols.map((p) => String(get(p)?.errors ?? '-'))],
    ['throughput vs direct', ...cols.map((p) => ratio(get(p)?.callsPerSec ?? NaN, d?.callsPerSec ?? NaN))],
    ['p99 added ms', ...cols.map((p) => (d?.p99Ms !== undefined && get(p)?.p99Ms !== undefined ? fmt(get(p)!.p99Ms! - d.p99Ms) : '-'))],
    ['CPU% gen/up/proxy/machine', ...cols.map((p) => {
      const c = get(p)?.cpu;
      return c ? `${fmt(c.generator, 2)}/${fmt(c.upstream, 2)}/${fmt(c.proxy, 2)}/${fmt(c.machine, 2)}` : '-';
    })],
  ];
  const lines = [
    `bench/bolt: ${r.machine}`,
    `sofa-rpc-node echo, ${r.options.concurrency} calls in flight, ${r.options.seconds} s per path, Portway quick_ack ${r.options.quickAck} (goal: portway >= 0.8x direct calls/s, <= 1 ms added at p99)`,
    `Medians of ${r.options.rounds} interleaved round${r.options.rounds === 1 ? '' : 's'} (each round runs every path back to back); counts are totals.`,
    '',
    table(['', ...cols], rows),
  ];
  for (const p of cols) {
    const x = get(p);
    if (x?.error) lines.push(`${p}: FAILED: ${x.error}`);
    else if (x?.firstError) lines.push(`${p}: first error: ${x.firstError}`);
  }
  const perRound = (label: string, f: (x: PathResult, d: PathResult) => string): void => {
    const dr = d?.rounds ?? [];
    for (const p of cols) {
      if (p === 'direct') continue;
      const xr = get(p)?.rounds ?? [];
      if (xr.length < 2 || dr.length !== xr.length) continue;
      lines.push(`  ${p} ${label}, round by round: ${xr.map((x, i) => (x.error || dr[i]!.error ? 'failed' : f(x, dr[i]!))).join('  ')}`);
    }
  };
  perRound('throughput vs direct', (x, dd) => ratio(x.callsPerSec ?? NaN, dd.callsPerSec ?? NaN));
  perRound('p99 added ms', (x, dd) => fmt((x.p99Ms ?? NaN) - (dd.p99Ms ?? NaN)));
  if (r.options.rate > 0) {
    const f = (p: PathName) => get(p)?.fixed;
    const df = f('direct');
    const cpuOf = (c: CpuShare | undefined) => (c ? `${fmt(c.generator, 2)}/${fmt(c.upstream, 2)}/${fmt(c.proxy, 2)}/${fmt(c.machine, 2)}` : '-');
    lines.push(
      '',
      `Open loop: ${r.options.rate} calls/s sent on schedule for ${r.options.seconds} s, latency from each call's send (the hop's added latency below saturation)`,
      '',
      table(['', ...cols], [
        ['calls answered', ...cols.map((p) => String(f(p)?.calls ?? '-'))],
        ['errors', ...cols.map((p) => String(f(p)?.errors ?? '-'))],
        ['sent > 1 ms late', ...cols.map((p) => String(f(p)?.late ?? '-'))],
        ['p50 ms', ...cols.map((p) => fmt(f(p)?.p50Ms ?? NaN))],
        ['p99 ms', ...cols.map((p) => fmt(f(p)?.p99Ms ?? NaN))],
        ['p99.9 ms', ...cols.map((p) => fmt(f(p)?.p999Ms ?? NaN))],
        ['p50 added ms', ...cols.map((p) => (df && f(p) ? fmt(f(p)!.p50Ms - df.p50Ms) : '-'))],
        ['p99 added ms', ...cols.map((p) => (df && f(p) ? fmt(f(p)!.p99Ms - df.p99Ms) : '-'))],
        ['CPU% gen/up/proxy/machine', ...cols.map((p) => cpuOf(f(p)?.cpu))],
      ]),
    );
    perRound('open-loop p99 added ms', (x, dd) => (x.fixed && dd.fixed ? fmt(x.fixed.p99Ms - dd.fixed.p99Ms) : '-'));
  }
  lines.push('', 'portway-http: the HTTP service runs in the benchmark process; its CPU is the "up" figure.');
  return lines.join('\n');
}

export function main(argv: string[]): Promise<number> {
  return benchMain(argv, { help: HELP, parse, run, report });
}

if (require.main === module) runAsMain(main);
