/**
 * Helpers shared by the benchmarks: child processes that are always cleaned
 * up, readiness probes, CPU accounting from /proc, percentiles, a plain
 * text table, the report tables and the command line the benchmarks share.
 * No benchmark logic lives here.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer, type AddressInfo } from 'node:net';
import { availableParallelism, cpus } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** The repository root (this file runs from dist/bench/). */
export const REPO = resolve(__dirname, '../..');
export const PORTWAY_CLI = resolve(__dirname, '../src/cli.js');
/**
 * The node flags bin/portway (and so `npm start`) launches Portway with, so a
 * bench measures what users run. PORTWAY_NODE_FLAGS overrides, as for bin/portway.
 */
export const PORTWAY_NODE_FLAGS: string[] = (process.env['PORTWAY_NODE_FLAGS'] ?? '--min-semi-space-size=16').split(/\s+/).filter(Boolean);

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A port that was free a moment ago, for children that need it in a config file. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolvePort(port));
    });
  });
}

export class Child {
  private out = '';
  private readonly lineWaiters: Array<{ re: RegExp; done: (m: RegExpMatchArray) => void }> = [];
  readonly exited: Promise<number | null>;
  /** undefined while running; null when killed by a signal or never started. */
  exitCode: number | null | undefined = undefined;

  /** keepChars: how much of the output to keep (the tail); enough to explain a crash by default. */
  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    private readonly keepChars = 8192,
  ) {
    const take = (b: Buffer) => {
      this.out = (this.out + b.toString('utf8')).slice(-this.keepChars);
      for (let i = this.lineWaiters.length - 1; i >= 0; i--) {
        const w = this.lineWaiters[i]!;
        const m = this.out.match(w.re);
        if (m) {
          this.lineWaiters.splice(i, 1);
          w.done(m);
        }
      }
    };
    proc.stdout?.on('data', take);
    proc.stderr?.on('data', take);
    this.exited = new Promise((r) => {
      const done = (code: number | null) => {
        if (this.exitCode !== undefined) return;
        this.exitCode = code;
        r(code);
      };
      proc.once('exit', (code) => done(code));
      // A failed spawn (ENOENT) may never emit 'exit'; waiters must not hang on it.
      proc.once('error', (err) => {
        this.out += `\n[${err.message}]`;
        done(null);
      });
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  output(): string {
    return this.out;
  }

  /** Resolves with the first match of re in the child's output; rejects when the child exits first or on timeout. */
  waitForOutput(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const m = this.out.match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolveMatch, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no ${re} within ${timeoutMs} ms; output:\n${this.out}`)), timeoutMs);
      const w = {
        re,
        done: (match: RegExpMatchArray) => {
          clearTimeout(timer);
          resolveMatch(match);
        },
      };
      this.lineWaiters.push(w);
      void this.exited.then((code) => {
        clearTimeout(timer);
        const i = this.lineWaiters.indexOf(w);
        if (i >= 0) {
          this.lineWaiters.splice(i, 1);
          reject(new Error(`${this.name} exited (${code}) before printing ${re}; output:\n${this.out}`));
        }
      });
    });
  }

  /** SIGTERM, then SIGKILL after graceMs. Resolves when the process is gone. */
  async stop(graceMs = 2000): Promise<void> {
    if (!this.alive) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (this.alive) this.proc.kill('SIGKILL');
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * Every child a benchmark starts goes through here, so one call (or a signal,
 * or process exit) ends them all.
 */
export class Children {
  private readonly all = new Set<Child>();
  private hooked = false;

  spawn(name: string, cmd: string, args: string[], opts: SpawnOptions & { keepChars?: number } = {}): Child {
    this.hook();
    const { keepChars, ...spawnOpts } = opts;
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts });
    const child = new Child(name, proc, keepChars);
    this.all.add(child);
    void child.exited.then(() => this.all.delete(child));
    return child;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.all].map((c) => c.stop()));
  }

  private hook(): void {
    if (this.hooked) return;
    this.hooked = true;
    // Last resort: a child must never outlive the benchmark, even on an uncaught exception.
    process.once('exit', () => {
      for (const c of this.all) if (c.alive) c.proc.kill('SIGKILL');
    });
    const onSignal = (sig: NodeJS.Signals) => {
      process.stderr.write(`\nbench: ${sig}, stopping children\n`);
      void this.stopAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }
}

/** Polls until a TCP connect to 127.0.0.1:port succeeds. */
export async function waitForPort(port: number, timeoutMs: number, child?: Child): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (child && !child.alive) throw new Error(`${child.name} exited (${child.exitCode}) before listening on ${port}; output:\n${child.output()}`);
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms${child ? `; ${child.name} output:\n${child.output()}` : ''}`);
    await sleep(50);
  }
}

export function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolveRes, reject) => {
    const req = request(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolveRes({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Polls GET url until it answers 200. */
export async function waitForHttp200(url: string, timeoutMs: number, child?: Child): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const r = await httpGet(url, 1000);
      if (r.status === 200) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (child && !child.alive) throw new Error(`${child.name} exited (${child.exitCode}) before ${url} was ready; output:\n${child.output()}`);
    if (Date.now() > deadline) throw new Error(`${url} not ready after ${timeoutMs} ms (${last})${child ? `; ${child.name} output:\n${child.output()}` : ''}`);
    await sleep(50);
  }
}

/** Finds an executable on PATH or at one of the given paths. */
export function findExecutable(name: string, candidates: string[] = []): string | null {
  for (const c of candidates) if (existsSync(c)) return c;
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : null;
}

/**
 * Returns the path of a Debian-packaged tool, installing the package with
 * apt-get when it is missing and we are root; otherwise throws naming the package.
 */
export function requireDebianTool(name: string, pkg: string, candidates: string[]): string {
  const found = findExecutable(name, candidates);
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new Error(`${name} is not installed; install the Debian package '${pkg}' (apt-get install -y ${pkg}) and run again`);
  }
  process.stderr.write(`bench: ${name} not found, running apt-get install -y ${pkg}\n`);
  let r = spawnSync('apt-get', ['install', '-y', pkg], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) {
    // A fresh container often has no package lists yet.
    spawnSync('apt-get', ['update'], { stdio: 'inherit' });
    r = spawnSync('apt-get', ['install', '-y', pkg], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  const after = findExecutable(name, candidates);
  if (r.status !== 0 || !after) throw new Error(`could not install the Debian package '${pkg}' (apt-get exit ${r.status}); install it and run again`);
  return after;
}

let clkTck = 0;
function ticksPerSecond(): number {
  if (clkTck === 0) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    clkTck = Number.parseInt(r.stdout, 10) || 100;
  }
  return clkTck;
}

/** User+system CPU seconds a process (all its threads) has used, from /proc; NaN when unavailable. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields after its closing parenthesis are fixed.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / ticksPerSecond();
  } catch {
    return NaN;
  }
}

/** Busy and total jiffies of the whole machine (all cores), from /proc/stat; busy excludes idle and iowait. */
function machineJiffies(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    // cpu user nice system idle iowait irq softirq steal guest guest_nice; guest time is already inside user.
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - f[3]! - f[4]!, total };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

/**
 * Measures CPU% (100 = one core) of some processes over an interval, and of
 * the whole machine: on loopback much of the TCP work is kernel time that no
 * process is charged for, so the machine total shows real saturation.
 */
export class CpuMeter {
  private readonly start: number[];
  private readonly machineStart = machineJiffies();
  private readonly t0 = performance.now();

  constructor(private readonly pids: number[]) {
    this.start = pids.map(processCpuSeconds);
  }

  /** One CPU% per pid, in the order given, then the machine's (up to 100 x cores). */
  stop(): number[] {
    const secs = (performance.now() - this.t0) / 1000;
    const m = machineJiffies();
    const machine = (100 * availableParallelism() * (m.busy - this.machineStart.busy)) / (m.total - this.machineStart.total);
    return [...this.pids.map((pid, i) => (100 * (processCpuSeconds(pid) - this.start[i]!)) / secs), machine];
  }
}

/** The value at quantile q (0..1) of values sorted ascending; nearest-rank. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export function machineLine(): string {
  const model = cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
  return `Node ${process.version}, ${availableParallelism()} cores (${model}), ${process.platform} ${process.arch}`;
}

/** Formats a number with about `digits` significant figures, whole numbers above that; NaN (not measured) prints as '-'. */
export function fmt(n: number, digits = 3): string {
  if (!Number.isFinite(n)) return '-';
  if (Math.abs(n) >= 10 ** (digits - 1)) return Math.round(n).toString();
  return String(Number(n.toPrecision(digits)));
}

export function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}x` : '-';
}

/** A left-aligned first column and right-aligned others. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

// ------------------------------------------------------------------ reports

/** CPU% (100 = one core) of the load generator, the upstream server and the proxy (NaN when not in the path). */
export interface CpuShare {
  generator: number;
  upstream: number;
  proxy: number;
  /** The whole machine, kernel time included (up to 100 x cores). */
  machine: number;
}

/** CPU% of the machine not charged to the benchmark's processes above which a measurement is flagged. */
export const OTHER_LOAD_WARN_PCT = 30;

/**
 * Rows of a comparison table: per metric its value on every column (path),
 * then Portway's value as a ratio of each base. A metric measured nowhere is
 * left out.
 */
export function comparisonRows<P>(
  metrics: Array<[string, (p: P) => number | undefined]>,
  cols: P[],
  portway: P | undefined,
  ratioCols: Array<[string, P | undefined]>,
): string[][] {
  const rows: string[][] = [];
  for (const [name, get] of metrics) {
    const vals = cols.map((c) => get(c) ?? NaN);
    if (vals.every((v) => !Number.isFinite(v))) continue;
    const pv = portway ? (get(portway) ?? NaN) : NaN;
    rows.push([name, ...vals.map((v) => fmt(v)), ...ratioCols.map(([, base]) => ratio(pv, base ? (get(base) ?? NaN) : NaN))]);
  }
  return rows;
}

/** A measurement (a row label and where to find it in a path's results) that carries CPU shares. */
export type CpuMeasurement<P> = [string, (p: P) => { cpu: CpuShare } | undefined];

/** Rows of the CPU table: "generator / upstream / proxy / machine" per column, '-' where not measured; rows measured nowhere are left out. */
export function cpuRows<P>(measurements: Array<CpuMeasurement<P>>, cols: P[]): string[][] {
  const rows: string[][] = [];
  for (const [name, get] of measurements) {
    const cells = cols.map((c) => {
      const m = get(c);
      return m ? `${fmt(m.cpu.generator, 2)} / ${fmt(m.cpu.upstream, 2)} / ${fmt(m.cpu.proxy, 2)} / ${fmt(m.cpu.machine, 2)}` : '-';
    });
    if (cells.every((c) => c === '-')) continue;
    rows.push([name, ...cells]);
  }
  return rows;
}

/**
 * The warning about measurements during which the machine used more than
 * OTHER_LOAD_WARN_PCT of CPU beyond `ours` (the benchmark's processes), or
 * null when there were none.
 */
export function otherLoadWarning<P>(measurements: Array<CpuMeasurement<P>>, cols: P[], label: (p: P) => string, ours: (cpu: CpuShare) => number): string | null {
  const disturbed: string[] = [];
  for (const [name, get] of measurements) {
    for (const c of cols) {
      const m = get(c);
      if (!m) continue;
      const other = m.cpu.machine - ours(m.cpu);
      if (other > OTHER_LOAD_WARN_PCT) disturbed.push(`${label(c)} ${name} (+${Math.round(other)} %)`);
    }
  }
  if (!disturbed.length) return null;
  return `CPU used outside the benchmark's processes (other load on the machine?) during: ${disturbed.join(', ')}; treat those figures with care.`;
}

// ------------------------------------------------------------------ command line

export const say = (s: string) => process.stderr.write(s + '\n');

type FlagsConfig = NonNullable<ParseArgsConfig['options']>;
/** The parsed values of a benchmark's own flags and the common ones. */
type BenchFlags<O extends FlagsConfig> = ReturnType<typeof parseArgs<{ args: string[]; options: O & typeof COMMON_FLAGS }>>['values'];

/** The flags every benchmark takes besides its own. */
const COMMON_FLAGS = {
  quick: { type: 'boolean' },
  json: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * Parses a benchmark's own flags and the common ones (--quick, also
 * BENCH_QUICK=1; --json FILE; --help, which prints `help` and answers null).
 */
export function parseBenchArgs<O extends FlagsConfig>(argv: string[], options: O, help: string): { values: BenchFlags<O>; quick: boolean } | null {
  const { values } = parseArgs({ args: argv, options: { ...options, ...COMMON_FLAGS } });
  const common = values as { quick?: boolean; help?: boolean };
  if (common.help) {
    process.stdout.write(help);
    return null;
  }
  return { values: values as BenchFlags<O>, quick: common.quick === true || process.env['BENCH_QUICK'] === '1' };
}

/** Starts a path, trying again (up to 3 times in all) when it fails to start. */
export async function startWithRetries<T>(path: string, start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (e) {
      // The ports were free when picked, but anything else on the machine may take one before the proxy binds it.
      if (attempt === 3) throw e;
      say(`bench: ${path} did not start (${(e as Error).message.split('\n')[0]}); retrying`);
    }
  }
}

/** A proxy that failed to become ready is stopped before the error goes on. */
export async function stopOnError<T>(child: Child, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    await child.stop();
    throw e;
  }
}

/**
 * A benchmark's command line: parses the options (2 on bad ones, 0 after
 * --help), runs, prints the report, writes the JSON result when asked; 1 when
 * a path failed.
 */
export async function benchMain<O extends { json: string | null }, R extends { paths: Partial<Record<string, { error?: string }>> }>(
  argv: string[],
  bench: { help: string; parse: (argv: string[]) => O | null; run: (opts: O) => Promise<R>; report: (r: R) => string },
): Promise<number> {
  let opts: O | null;
  try {
    opts = bench.parse(argv);
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n\n${bench.help}`);
    return 2;
  }
  if (!opts) return 0;
  const result = await bench.run(opts);
  process.stdout.write(bench.report(result) + '\n');
  if (opts.json) {
    writeFileSync(opts.json, JSON.stringify(result, null, 2) + '\n');
    say(`bench: results written to ${opts.json}`);
  }
  return Object.values(result.paths).some((p) => p?.error) ? 1 : 0;
}

/** Runs a benchmark's main as the process: exits with its code (a negative one keeps the process running), 1 on a crash. */
export function runAsMain(main: (argv: string[]) => Promise<number>): void {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code >= 0) process.exit(code);
    },
    (e: Error) => {
      process.stderr.write(`bench: ${e.stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
