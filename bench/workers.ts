/**
 * Workers and protocol detection benchmark, one run: redis-benchmark
 * (-P 16, SET and GET) through Portway's Redis listener in one process
 * (the baseline), with `workers: 2`, and through a `protocol: auto` listener
 * (one process) when that protocol is registered. Same redis-server upstream,
 * same load, one path after the other on loopback.
 *
 * The load generator is one redis-benchmark process (C, one thread); on a
 * machine with few cores it competes with the workers for CPU, so the
 * workers' figure is a lower bound there. Reported: requests/s per test and
 * the ratio to the one-process baseline.
 *
 *   node dist/bench/workers.js [--quick] [--requests N] [--clients N] [--json FILE]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtins } from '../src/builtins';
import { fmt, freePort, httpGet, machineLine, parseBenchArgs, PORTWAY_CLI, PORTWAY_NODE_FLAGS, ratio, requireDebianTool, runAsMain, say, sleep, table } from './lib';

const HELP = `bench/workers: Redis -P 16 throughput with workers: 2 against 1, and protocol: auto against protocol: redis

  --requests N   requests per redis-benchmark test (default 400000; --quick 60000)
  --clients N    redis-benchmark connections (default 50)
  --quick        a short run
  --json FILE    also write the results as JSON
`;

type PathName = 'one process' | 'workers: 2' | 'protocol: auto';
interface PathResult {
  rps: Record<string, number>;
  error?: string;
}
interface Result {
  machine: string;
  requests: number;
  clients: number;
  pipeline: number;
  paths: Partial<Record<PathName, PathResult>>;
}

const PIPELINE = 16;
const TESTS = ['SET', 'GET'];

function waitExit(p: ChildProcess): Promise<void> {
  return new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r())));
}

async function waitReady(admin: string, proc: ChildProcess, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (proc.exitCode !== null) throw new Error(`portway exited with code ${proc.exitCode}`);
    const r = await httpGet(`${admin}/ready`).catch(() => null);
    if (r?.status === 200) return;
    await sleep(100);
  }
  throw new Error(`portway not ready within ${timeoutMs} ms`);
}

/** redis-benchmark --csv: "test","rps",... per line; the first line is the header. */
function runRedisBenchmark(bin: string, port: number, requests: number, clients: number): Record<string, number> {
  const r = spawnSync(bin, ['-h', '127.0.0.1', '-p', String(port), '-n', String(requests), '-c', String(clients), '-P', String(PIPELINE), '-t', TESTS.join(',').toLowerCase(), '--csv'], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (r.status !== 0) throw new Error(`redis-benchmark exited ${r.status}: ${(r.stderr || r.stdout).slice(-300)}`);
  const out: Record<string, number> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^"([A-Z]+)","([\d.]+)"/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

async function runPath(name: PathName, yaml: string, adminPort: number, port: number, bench: string, requests: number, clients: number, dir: string): Promise<PathResult> {
  const file = join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
  writeFileSync(file, yaml);
  const proc = spawn(process.execPath, [...PORTWAY_NODE_FLAGS, PORTWAY_CLI, 'run', '-c', file, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
  try {
    await waitReady(`http://127.0.0.1:${adminPort}`, proc, 30_000);
    // Warm-up, unmeasured.
    runRedisBenchmark(bench, port, Math.min(requests, 20_000), clients);
    say(`bench: ${name}`);
    return { rps: runRedisBenchmark(bench, port, requests, clients) };
  } catch (e) {
    return { rps: {}, error: `${(e as Error).message} ${stderr}`.trim() };
  } finally {
    proc.kill('SIGTERM');
    await waitExit(proc);
  }
}

async function run(opts: { requests: number; clients: number; json: string | null }): Promise<Result> {
  const bench = requireDebianTool('redis-benchmark', 'redis-tools', ['/usr/bin/redis-benchmark']);
  const server = requireDebianTool('redis-server', 'redis-server', ['/usr/bin/redis-server']);
  const dir = mkdtempSync(join(tmpdir(), 'portway-bench-workers-'));
  const redisPort = await freePort();
  const redis = spawn(server, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const result: Result = { machine: machineLine(), requests: opts.requests, clients: opts.clients, pipeline: PIPELINE, paths: {} };
  try {
    await sleep(300);
    const config = async (workers: number, protocol: 'redis' | 'auto') => {
      const admin = await freePort();
      const port = await freePort();
      const options = protocol === 'auto' ? '\n    options: { redis: {} }' : '';
      const yaml = `workers: ${workers}\nadmin: { address: 127.0.0.1:${admin} }\ndrain_timeout: 1s\nlisteners:\n  - name: r\n    address: 127.0.0.1:${port}\n    protocol: ${protocol}${options}\n    routes: [{ cluster: r }]\nclusters:\n  - { name: r, endpoints: ["127.0.0.1:${redisPort}"] }\n`;
      return { yaml, admin, port };
    };
    const paths: Array<[PathName, number, 'redis' | 'auto']> = [
      ['one process', 1, 'redis'],
      ['workers: 2', 2, 'redis'],
    ];
    if (builtins().protocols.get('auto')) paths.push(['protocol: auto', 1, 'auto']);
    for (const [name, workers, protocol] of paths) {
      const c = await config(workers, protocol);
      result.paths[name] = await runPath(name, c.yaml, c.admin, c.port, bench, opts.requests, opts.clients, dir);
    }
  } finally {
    redis.kill('SIGKILL');
    await waitExit(redis);
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

function report(r: Result): string {
  const base = r.paths['one process'];
  const rows: string[][] = [];
  for (const [name, p] of Object.entries(r.paths) as Array<[PathName, PathResult]>) {
    if (p.error) {
      rows.push([name, ...TESTS.flatMap(() => ['failed', '-'])]);
      continue;
    }
    rows.push([name, ...TESTS.flatMap((t) => [fmt(p.rps[t] ?? NaN), name === 'one process' ? '1.00x' : ratio(p.rps[t] ?? NaN, base?.rps[t] ?? NaN)])]);
  }
  const errors = Object.entries(r.paths)
    .filter(([, p]) => p?.error)
    .map(([n, p]) => `  ${n}: ${p!.error}`);
  return [
    `Portway workers / protocol detection: redis-benchmark -P ${r.pipeline} -c ${r.clients} -n ${r.requests}, requests/s (ratio to one process, protocol: redis)`,
    r.machine,
    '',
    table(['path', ...TESTS.flatMap((t) => [t, 'ratio'])], rows),
    ...(errors.length ? ['', 'failed:', ...errors] : []),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseBenchArgs(argv, { requests: { type: 'string' }, clients: { type: 'string' } }, HELP);
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (!parsed) return 0;
  const v = parsed.values as { requests?: string; clients?: string; json?: string };
  const requests = Number(v.requests ?? (parsed.quick ? 60_000 : 400_000));
  const clients = Number(v.clients ?? 50);
  if (!Number.isInteger(requests) || requests <= 0 || !Number.isInteger(clients) || clients <= 0) {
    process.stderr.write(`bench: --requests and --clients must be positive integers\n\n${HELP}`);
    return 2;
  }
  const result = await run({ requests, clients, json: v.json ?? null });
  process.stdout.write(report(result) + '\n');
  if (v.json) writeFileSync(v.json, JSON.stringify(result, null, 2) + '\n');
  return Object.values(result.paths).some((p) => p?.error) ? 1 : 0;
}

if (require.main === module) runAsMain(main);
