/**
 * Redis benchmark: the same redis-benchmark load sent directly to a
 * redis-server, through twemproxy (Debian nutcracker) and through Portway's
 * Redis listener, all measured in one run on loopback; optionally Portway
 * serving the same load from its in-process memory component.
 *
 * Processes: this one only orchestrates and samples CPU; the load generator
 * is redis-benchmark (C, one thread), started once per test; the upstream is
 * a redis-server started here on a free port (never the one on 6379); each
 * proxy is its own process, started for its path and stopped after it.
 *
 * Each test is redis-benchmark -c CLIENTS -t TEST -P PIPELINE: first a short
 * unmeasured probe (warm-up, and its requests/s sizes -n), then the measured
 * run with -n chosen so that it lasts about --seconds.
 */
import { connect } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
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
  PORTWAY_CLI,
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
/** Machine CPU% beyond our own processes' above which a phase is flagged as disturbed (as in bench/tcp). */
/** The measured run's -n is never above this, whatever the probe said. */
const MAX_REQUESTS = 50_000_000;

// ------------------------------------------------------------------- tests

export type TestName = 'set-p1' | 'get-p1' | 'set-pN' | 'get-pN' | 'mset-p1';
const ALL_TESTS: TestName[] = ['set-p1', 'get-p1', 'set-pN', 'get-pN', 'mset-p1'];

interface TestSpec {
  /** redis-benchmark -t */
  test: 'set' | 'get' | 'mset';
  pipeline: number;
  /** -n of the unmeasured probe. */
  probeRequests: number;
}

function testSpec(name: TestName, pipeline: number): TestSpec {
  switch (name) {
    case 'set-p1':
      return { test: 'set', pipeline: 1, probeRequests: 20_000 };
    case 'get-p1':
      return { test: 'get', pipeline: 1, probeRequests: 20_000 };
    case 'set-pN':
      return { test: 'set', pipeline, probeRequests: 200_000 };
    case 'get-pN':
      return { test: 'get', pipeline, probeRequests: 200_000 };
    case 'mset-p1':
      return { test: 'mset', pipeline: 1, probeRequests: 20_000 };
  }
}

/** CPU% of redis-benchmark (generator), redis-server (upstream) and the proxy. */
export type { CpuShare };

export interface TestResult {
  /** redis-benchmark's name of the test, e.g. "MSET (10 keys)". */
  test: string;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  pipeline: number;
  cpu: CpuShare;
  /** Lines redis-benchmark printed besides its CSV and the CONFIG warning (redis-benchmark 7 stops at the first error reply). */
  messages: string[];
}

// ---------------------------------------------------------- redis-benchmark

/** The CONFIG GET redis-benchmark sends first; twemproxy does not support CONFIG, so it warns there. */
const CONFIG_WARNING = /^WARNING: Could not fetch server CONFIG$/;

interface BenchRun {
  bin: string;
  port: number;
  clients: number;
  spec: TestSpec;
  requests: number;
  /** Processes whose CPU is reported besides redis-benchmark's (null: not in this path). */
  upstreamPid: number | null;
  proxyPid: number | null;
}

/** Runs redis-benchmark once and parses its CSV; CPU is sampled over its life (as bench/tcp does for iperf3). */
async function redisBenchmark(children: Children, r: BenchRun): Promise<TestResult> {
  const args = ['-h', HOST, '-p', String(r.port), '-c', String(r.clients), '-n', String(r.requests), '-P', String(r.spec.pipeline), '-t', r.spec.test, '--csv'];
  const child = children.spawn('redis-benchmark', r.bin, args, { keepChars: 1 << 20 });
  const cpu = new CpuMeter([child.pid, r.upstreamPid ?? -1, r.proxyPid ?? -1]);
  // /proc/<pid> vanishes at exit, so keep the last sample taken while redis-benchmark was still there.
  let last = [NaN, NaN, NaN, NaN];
  const sampler = setInterval(() => {
    const s = cpu.stop();
    if (Number.isFinite(s[0])) last = s;
  }, 200);
  // Generous: a proxy that stalls must not hang the benchmark.
  const hard = setTimeout(() => child.proc.kill('SIGKILL'), 60_000 + r.requests / 20);
  const code = await child.exited;
  clearInterval(sampler);
  clearTimeout(hard);
  const lines = child
    .output()
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const header = lines.find((l) => l.startsWith('"test"'));
  const row = lines.find((l) => l.startsWith('"') && !l.startsWith('"test"'));
  const messages = lines.filter((l) => !l.startsWith('"') && !CONFIG_WARNING.test(l));
  if (code !== 0 || !header || !row) {
    throw new Error(`redis-benchmark ${args.join(' ')} exited ${code} without a result: ${child.output().slice(-1000)}`);
  }
  const cols = header.split(',').map((c) => c.replace(/"/g, ''));
  const vals = row.split('","').map((c) => c.replace(/"/g, ''));
  const col = (name: string) => Number(vals[cols.indexOf(name)]);
  return {
    test: vals[0]!,
    rps: col('rps'),
    p50Ms: col('p50_latency_ms'),
    p99Ms: col('p99_latency_ms'),
    requests: r.requests,
    pipeline: r.spec.pipeline,
    cpu: { generator: last[0]!, upstream: last[1]!, proxy: last[2]!, machine: last[3]! },
    messages,
  };
}

// ----------------------------------------------------------------- proxies

export type PathName = 'direct' | 'twemproxy' | 'portway' | 'portway-memory';
const ALL_PATHS: PathName[] = ['direct', 'twemproxy', 'portway', 'portway-memory'];

interface RunningPath {
  label: string;
  port: number;
  proxy: Child | null;
  /** false: the load never reaches redis-server (the memory component). */
  usesUpstream: boolean;
  /** Facts worth keeping (settings, error counters, connections left open), filled after the run. */
  notes: Record<string, unknown>;
  /** redis-benchmark runs against this path so far. */
  runs: number;
  finish(): Promise<void>;
}

/** The settings twemproxy uses because the pool does not give them (nutcracker 0.5.0's defaults), for the notes. */
const TWEMPROXY_DEFAULTS = 'hash fnv1a_64, distribution ketama, server_connections 1, timeout none, backlog 512, preconnect false, auto_eject_hosts false, client_connections 0 (no limit), mbuf 16 KiB';

function twemproxyConfig(port: number, upstream: number): string {
  // Only what the issue asks for; everything else is nutcracker's default (TWEMPROXY_DEFAULTS).
  return `bench:
  listen: ${HOST}:${port}
  redis: true
  servers:
    - ${HOST}:${upstream}:1
`;
}

function portwayConfig(admin: number, port: number, upstream: number | null): string {
  // connections_per_endpoint is left at its default, 1: every client multiplexed over one link, like twemproxy.
  return `admin: { address: ${HOST}:${admin} }
log: { level: warn }
drain_timeout: 1s
listeners:
  - name: bench
    address: ${HOST}:${port}
    protocol: redis
    routes: [{ cluster: redis }]
clusters:
${upstream === null ? '  - name: redis\n    component: { type: memory }\n' : `  - name: redis\n    endpoints: ["${HOST}:${upstream}"]\n`}`;
}

/** One request to nutcracker's stats port (it answers a JSON document and closes); null when it cannot be read. */
function twemproxyStats(port: number): Promise<Record<string, unknown> | null> {
  return new Promise((resolve) => {
    let text = '';
    const s = connect({ host: HOST, port });
    s.setTimeout(2000, () => s.destroy());
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('close', () => {
      try {
        resolve(JSON.parse(text) as Record<string, unknown>);
      } catch {
        resolve(null);
      }
    });
    s.on('error', () => resolve(null));
  });
}

/**
 * The non-zero error counters of nutcracker's pool and its server, and the client connections it still holds.
 * Every redis-benchmark run starts with CONFIG GET, which twemproxy rejects by closing that connection: one
 * client_err per run is expected and is not reported as an error.
 */
function twemproxyNotes(stats: Record<string, unknown> | null, runs: number, notes: Record<string, unknown>): void {
  const pool = stats?.['bench'] as Record<string, unknown> | undefined;
  if (!pool) {
    notes['stats_error'] = 'stats port did not answer';
    return;
  }
  const errors: Record<string, number> = {};
  for (const k of ['client_err', 'forward_error', 'server_ejects']) if (Number(pool[k]) > 0) errors[k] = Number(pool[k]);
  for (const v of Object.values(pool)) {
    if (typeof v !== 'object' || v === null) continue;
    const server = v as Record<string, unknown>;
    for (const k of ['server_err', 'server_timedout']) if (Number(server[k]) > 0) errors[k] = (errors[k] ?? 0) + Number(server[k]);
  }
  notes['client_err_expected'] = runs;
  if (errors['client_err'] !== undefined && errors['client_err'] <= runs) delete errors['client_err'];
  notes['errors'] = errors;
  notes['client_connections_left'] = Number(pool['client_connections']);
}

/** Portway's listener counters and the upstream error counters from /metrics. */
async function portwayNotes(admin: number, notes: Record<string, unknown>): Promise<void> {
  try {
    const l = JSON.parse((await httpGet(`http://${HOST}:${admin}/listeners`)).body) as { listeners?: Record<string, { cx_active?: number; cx_total?: number; errors?: Record<string, number> }> };
    const bench = l.listeners?.['bench'];
    notes['errors'] = { ...(bench?.errors ?? {}) };
    notes['client_connections_left'] = bench?.cx_active;
    notes['client_connections_total'] = bench?.cx_total;
    const metrics = (await httpGet(`http://${HOST}:${admin}/metrics`)).body;
    for (const name of ['portway_upstream_rq_error_total', 'portway_upstream_cx_connect_fail_total']) {
      let sum = 0;
      for (const m of metrics.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))) sum += Number(m[1]);
      if (sum > 0) (notes['errors'] as Record<string, number>)[name] = sum;
    }
  } catch (e) {
    notes['stats_error'] = (e as Error).message;
  }
}

interface PathContext {
  children: Children;
  tmp: string;
  upstreamPort: number;
  nutcrackerBin: string | null;
  /** --cpu-prof DIR: Portway runs with node --cpu-prof into this directory. */
  cpuProfDir: string | null;
}

async function startPath(path: PathName, ctx: PathContext): Promise<RunningPath> {
  const { children, tmp, upstreamPort } = ctx;
  if (path === 'direct') {
    return { label: 'direct', port: upstreamPort, proxy: null, usesUpstream: true, notes: {}, runs: 0, finish: async () => {} };
  }
  const port = await freePort();
  if (path === 'twemproxy') {
    const stats = await freePort();
    const file = join(tmp, 'nutcracker.yml');
    writeFileSync(file, twemproxyConfig(port, upstreamPort));
    // Stats on loopback and a free port (its default is 0.0.0.0:22222), aggregated every second so the
    // error counters are current when read after the run; its log goes to the temporary directory.
    const proxy = children.spawn('nutcracker', ctx.nutcrackerBin!, ['-c', file, '-s', String(stats), '-a', HOST, '-i', '1000', '-o', join(tmp, 'nutcracker.log')]);
    await stopOnError(proxy, waitForPort(port, 15_000, proxy));
    const notes: Record<string, unknown> = { config: twemproxyConfig(port, upstreamPort), defaults: TWEMPROXY_DEFAULTS };
    const running: RunningPath = {
      label: 'twemproxy',
      port,
      proxy,
      usesUpstream: true,
      notes,
      runs: 0,
      finish: async () => {
        // Let a stats interval pass so the last test's counters are in.
        await new Promise((r) => setTimeout(r, 1100));
        twemproxyNotes(await twemproxyStats(stats), running.runs, notes);
        await proxy.stop();
      },
    };
    return running;
  }
  const memory = path === 'portway-memory';
  const admin = await freePort();
  const file = join(tmp, `${path}.yaml`);
  writeFileSync(file, portwayConfig(admin, port, memory ? null : upstreamPort));
  const nodeArgs = ctx.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', ctx.cpuProfDir, '--cpu-prof-name', `${path}-${Date.now()}.cpuprofile`] : [];
  const proxy = children.spawn(path, process.execPath, [...nodeArgs, PORTWAY_CLI, 'run', '-c', file], { cwd: REPO });
  await stopOnError(proxy, waitForHttp200(`http://${HOST}:${admin}/ready`, 15_000, proxy));
  const notes: Record<string, unknown> = {};
  return {
    label: memory ? 'portway(memory)' : 'portway',
    port,
    proxy,
    usesUpstream: !memory,
    notes,
    runs: 0,
    finish: async () => {
      // Every redis-benchmark has exited by now; give the proxy a moment to see its clients' FINs.
      await new Promise((r) => setTimeout(r, 300));
      await portwayNotes(admin, notes);
      // Writing a CPU profile takes a few seconds on exit.
      await proxy.stop(ctx.cpuProfDir ? 30_000 : 5_000);
      if (proxy.exitCode !== 0) notes['exit'] = `exit code ${proxy.exitCode}; output: ${proxy.output().slice(-2000)}`;
    },
  };
}

/**
 * Whether this build of Portway knows the memory component: `portway validate`
 * on the config it would run. Returns null when it does, else why not.
 */
function memoryComponentMissing(tmp: string): string | null {
  const file = join(tmp, 'memory-check.yaml');
  writeFileSync(file, portwayConfig(1, 2, null));
  const r = spawnSync(process.execPath, [PORTWAY_CLI, 'validate', '-c', file], { encoding: 'utf8', cwd: REPO, timeout: 30_000 });
  if (r.status === 0) return null;
  const text = `${r.stdout}${r.stderr}`.trim();
  if (/unknown component type 'memory'/.test(text)) return `the memory component is not registered in src/builtins.ts (portway validate: ${text.split('\n').find((l) => l.includes("'memory'"))?.trim()})`;
  throw new Error(`portway validate rejected the memory-component config (exit ${r.status}): ${text.slice(-1000)}`);
}

// --------------------------------------------------------------------- run

export interface Options {
  seconds: number;
  clients: number;
  pipeline: number;
  tests: TestName[];
  paths: PathName[];
  cpuProfDir: string | null;
  json: string | null;
}

export interface PathResult {
  label: string;
  tests: Partial<Record<TestName, TestResult>>;
  notes: Record<string, unknown>;
  error?: string;
  /** Why the path was not run (not a failure). */
  skipped?: string;
}

export interface RedisBenchResult {
  machine: string;
  startedAt: string;
  options: Options;
  versions: Record<string, string>;
  paths: Partial<Record<PathName, PathResult>>;
}

const HELP = `node dist/bench/redis.js [options]   (or: npm run bench)

  --quick               1 s per test instead of 3 (about 30 s in all instead of about 70 s)
  --seconds N           target length of each measured redis-benchmark run (default 3; env BENCH_SECONDS)
  --clients N           redis-benchmark -c (default 50)
  --pipeline N          the pipelined rows' -P (default 16)
  --tests LIST          comma-separated subset of ${ALL_TESTS.join(',')} (pN = --pipeline)
  --paths LIST          comma-separated subset of ${ALL_PATHS.join(',')}
  --cpu-prof DIR        run Portway under node --cpu-prof, profiles written to DIR
  --json FILE           also write the results as JSON
`;

function parseOptions(argv: string[]): Options | null {
  const parsed = parseBenchArgs(
    argv,
    {
      seconds: { type: 'string' },
      clients: { type: 'string' },
      pipeline: { type: 'string' },
      tests: { type: 'string' },
      paths: { type: 'string' },
      'cpu-prof': { type: 'string' },
    },
    HELP,
  );
  if (!parsed) return null;
  const { values, quick } = parsed;
  const num = (flag: string | undefined, name: string, env: string | null, dflt: number, min: number): number => {
    const raw = flag ?? (env ? process.env[env] : undefined);
    if (raw === undefined || raw === '') return dflt;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name}: expected a number >= ${min}, got '${raw}'`);
    return n;
  };
  const list = <T extends string>(raw: string | undefined, all: T[], flag: string): T[] => {
    const items = (raw ?? all.join(',')).split(',').map((p) => p.trim()) as T[];
    for (const p of items) if (!all.includes(p)) throw new Error(`--${flag}: unknown '${p}' (known: ${all.join(', ')})`);
    return items;
  };
  return {
    seconds: num(values.seconds, 'seconds', 'BENCH_SECONDS', quick ? 1 : 3, 0.2),
    clients: Math.floor(num(values.clients, 'clients', null, 50, 1)),
    pipeline: Math.floor(num(values.pipeline, 'pipeline', null, 16, 2)),
    tests: list(values.tests, ALL_TESTS, 'tests'),
    paths: list(values.paths, ALL_PATHS, 'paths'),
    cpuProfDir: values['cpu-prof'] ?? null,
    json: values.json ?? null,
  };
}

function version(bin: string, args: string[]): string {
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.split('\n')[0]!.trim();
}

async function runPath(path: PathName, opts: Options, ctx: PathContext & { benchBin: string; upstream: Child }): Promise<PathResult> {
  const running = await startWithRetries(path, () => startPath(path, ctx));
  const result: PathResult = { label: running.label, tests: {}, notes: running.notes };
  try {
    for (const name of opts.tests) {
      const spec = testSpec(name, opts.pipeline);
      const run = (requests: number) => {
        running.runs++;
        return redisBenchmark(ctx.children, {
          bin: ctx.benchBin,
          port: running.port,
          clients: opts.clients,
          spec,
          requests,
          upstreamPid: running.usesUpstream ? ctx.upstream.pid : null,
          proxyPid: running.proxy?.pid ?? null,
        });
      };
      // The probe warms the path up (JIT, buffers, the proxy's upstream link) and sizes the measured run.
      const probe = await run(spec.probeRequests);
      const requests = Math.min(MAX_REQUESTS, Math.max(spec.probeRequests, Math.round((probe.rps * opts.seconds) / 1000) * 1000));
      say(`  ${running.label}: ${probe.test} -P ${spec.pipeline} -n ${requests}`);
      const measured = await run(requests);
      measured.messages.unshift(...probe.messages.map((m) => `(probe) ${m}`));
      result.tests[name] = measured;
      if (running.proxy && !running.proxy.alive) throw new Error(`${running.label} died during the run (exit ${running.proxy.exitCode}); output:\n${running.proxy.output()}`);
    }
  } finally {
    await running.finish();
  }
  return result;
}

export async function runRedisBench(opts: Options): Promise<RedisBenchResult> {
  const children = new Children();
  const tmp = mkdtempSync(join(tmpdir(), 'portway-bench-'));
  // SIGINT ends the process from inside Children (after stopping every child); the directory goes then too.
  const cleanup = () => rmSync(tmp, { recursive: true, force: true });
  process.once('exit', cleanup);
  const out: RedisBenchResult = { machine: machineLine(), startedAt: new Date().toISOString(), options: opts, versions: {}, paths: {} };
  try {
    const serverBin = requireDebianTool('redis-server', 'redis-server', ['/usr/bin/redis-server']);
    const benchBin = requireDebianTool('redis-benchmark', 'redis-tools', ['/usr/bin/redis-benchmark']);
    const nutcrackerBin = opts.paths.includes('twemproxy') ? requireDebianTool('nutcracker', 'nutcracker', ['/usr/sbin/nutcracker']) : null;
    out.versions['redis-server'] = version(serverBin, ['--version']);
    out.versions['redis-benchmark'] = version(benchBin, ['--version']);
    if (nutcrackerBin) out.versions['nutcracker'] = version(nutcrackerBin, ['--version']);

    let upstream: Child | undefined;
    let upstreamPort = 0;
    for (let attempt = 1; !upstream; attempt++) {
      upstreamPort = await freePort();
      const child = children.spawn('redis-server', serverBin, ['--port', String(upstreamPort), '--bind', HOST, '--save', '', '--appendonly', 'no']);
      try {
        await waitForPort(upstreamPort, 10_000, child);
        upstream = child;
      } catch (e) {
        await child.stop();
        if (attempt === 3) throw e;
      }
    }
    const ctx = { children, tmp, upstreamPort, nutcrackerBin, cpuProfDir: opts.cpuProfDir, benchBin, upstream };
    for (const path of opts.paths) {
      if (path === 'portway-memory') {
        const missing = memoryComponentMissing(tmp);
        if (missing) {
          out.paths[path] = { label: 'portway(memory)', tests: {}, notes: {}, skipped: missing };
          say(`bench: ${path} skipped: ${missing}`);
          continue;
        }
      }
      say(`bench: ${path}`);
      try {
        out.paths[path] = await runPath(path, opts, ctx);
      } catch (e) {
        // One broken path must not hide the others' figures.
        out.paths[path] = { label: path, tests: {}, notes: {}, error: (e as Error).message };
        say(`bench: ${path} failed: ${(e as Error).message}`);
      }
      if (!upstream.alive) throw new Error(`redis-server died (exit ${upstream.exitCode}); output:\n${upstream.output()}`);
    }
  } finally {
    await children.stopAll();
    cleanup();
    process.removeListener('exit', cleanup);
  }
  return out;
}

// ------------------------------------------------------------------ report

function testLabel(name: TestName, r: RedisBenchResult): string {
  const p = name.endsWith('-p1') ? 1 : r.options.pipeline;
  const cmd = name.startsWith('mset') ? 'MSET (10 keys)' : name.split('-')[0]!.toUpperCase();
  return `${cmd} -P ${p}`;
}

export function report(r: RedisBenchResult): string {
  const cols = ALL_PATHS.filter((p) => r.paths[p] !== undefined && !r.paths[p]!.skipped);
  const paths = cols.map((c) => r.paths[c]!);
  const label = (p: PathName) => r.paths[p]!.label;
  const pw = r.paths.portway;
  const tw = r.paths.twemproxy;
  const dir = r.paths.direct;
  const ratioCols: Array<[string, PathResult]> = [];
  if (pw && tw) ratioCols.push(['portway/twemproxy', tw]);
  if (pw && dir) ratioCols.push(['portway/direct', dir]);

  const cores = availableParallelism();
  const header = [`Redis benchmark (Node ${process.version}, ${cores} cores)`, ...cols.map(label), ...ratioCols.map(([n]) => n)];
  const rows: string[][] = [];
  for (const t of r.options.tests) {
    const metrics: Array<[string, (p: PathResult) => number | undefined]> = [
      [`${testLabel(t, r)} requests/s`, (p) => p.tests[t]?.rps],
      ['  p50 ms', (p) => p.tests[t]?.p50Ms],
    ];
    rows.push(...comparisonRows(metrics, paths, pw, ratioCols));
  }
  const lines = [table(header, rows)];

  const cpuMetrics = r.options.tests.map((t): CpuMeasurement<PathResult> => [testLabel(t, r), (p) => p.tests[t]]);
  const cpu = cpuRows(cpuMetrics, paths);
  if (cpu.length) {
    lines.push('', table([`CPU % (100 = one core): redis-benchmark / redis-server / proxy / machine (of ${cores * 100})`, ...cols.map(label)], cpu));
  }
  // Nearly all loopback work (softirq included) is charged to our processes, so a large remainder is someone else's load.
  const warning = otherLoadWarning(cpuMetrics, paths, (p) => p.label, (c) => [c.generator, c.upstream, c.proxy].filter(Number.isFinite).reduce((a, b) => a + b, 0));
  if (warning) lines.push(warning);

  const goalText = "Portway at or above twemproxy's throughput at pipeline 1 and above it at pipeline 16";
  if (pw && tw) {
    const part = (t: TestName, strict: boolean) => {
      const a = pw.tests[t]?.rps;
      const b = tw.tests[t]?.rps;
      if (a === undefined || b === undefined) return null;
      return { text: `${testLabel(t, r)} ${(a / b).toFixed(2)}x`, ok: strict ? a > b : a >= b };
    };
    const p1 = [part('set-p1', false), part('get-p1', false)].filter((x) => x !== null);
    const pN = r.options.pipeline === 16 ? [part('set-pN', true), part('get-pN', true)].filter((x) => x !== null) : [];
    const verdict = (xs: Array<{ ok: boolean }>) => (xs.every((x) => x.ok) ? 'met' : 'NOT met');
    const parts: string[] = [];
    if (p1.length) parts.push(`pipeline 1: ${p1.map((x) => x.text).join(', ')}: ${verdict(p1)}`);
    if (pN.length) parts.push(`pipeline 16: ${pN.map((x) => x.text).join(', ')}: ${verdict(pN)}`);
    if (parts.length) {
      const all = p1.length === 2 && pN.length === 2 && [...p1, ...pN].every((x) => x.ok);
      lines.push('', `Goal (issue): ${goalText}.`, `  ${parts.join('; ')}. Overall: ${all ? 'met' : 'NOT met'}${p1.length === 2 && pN.length === 2 ? '' : ' (not every row of the goal was measured)'}.`);
    }
  } else {
    lines.push('', `Goal (issue): ${goalText}: not checked (needs the portway and twemproxy paths).`);
  }

  for (const c of ALL_PATHS) {
    const p = r.paths[c];
    if (!p) continue;
    if (p.skipped) lines.push('', `${p.label} skipped: ${p.skipped}`);
    if (p.error) lines.push('', `${p.label} FAILED: ${p.error}`);
    for (const [t, m] of Object.entries(p.tests)) {
      if (m.messages.length) lines.push(`${p.label} ${testLabel(t as TestName, r)}: redis-benchmark printed: ${m.messages.slice(0, 5).join(' | ')}${m.messages.length > 5 ? ` (+${m.messages.length - 5} more)` : ''}`);
    }
    const errors = p.notes['errors'] as Record<string, number> | undefined;
    if (errors && Object.keys(errors).length) lines.push(`${p.label} counted errors: ${JSON.stringify(errors)}`);
    if (p.notes['stats_error']) lines.push(`${p.label}: counters not read (${String(p.notes['stats_error'])})`);
    const left = p.notes['client_connections_left'];
    if (typeof left === 'number' && left > 0) {
      lines.push(`${p.label}: ${left} client connections still open after every redis-benchmark had exited (should be 0)`);
    }
    if (p.notes['exit']) lines.push(`${p.label}: ${String(p.notes['exit'])}`);
  }
  lines.push(
    '',
    `${r.machine}; ${Object.values(r.versions).join('; ')}.`,
    `redis-benchmark -c ${r.options.clients}, default 3-byte values and one key (no -r), -n sized for about ${r.options.seconds} s per run after an unmeasured probe.`,
    `twemproxy: one pool (redis: true, the one server), nutcracker defaults otherwise: ${TWEMPROXY_DEFAULTS}. portway: one redis listener, one cluster, connections_per_endpoint 1 (its default), log level warn, no access_log.`,
    'All processes share the machine\'s cores; p50 ratios above 1 mean Portway is slower.',
  );
  return lines.join('\n');
}

export function main(argv: string[]): Promise<number> {
  return benchMain(argv, { help: HELP, parse: parseOptions, run: runRedisBench, report });
}

if (require.main === module) runAsMain(main);
