/**
 * TCP benchmark: bulk throughput and new-connection rate through Portway,
 * through HAProxy in tcp mode (one thread, the matched comparison, and its
 * default thread count) and directly, all measured in one run on loopback.
 *
 * Processes: this one is the load generator; the upstream server is this same
 * file started with --upstream; each proxy is its own process, started for
 * its path and stopped after it. iperf3, when installed, is a second bulk
 * generator written in C, so a slow Node generator cannot hide a proxy's cost.
 *
 * Upstream wire protocol (first byte of a connection picks the mode):
 *   'U' then any bytes, then FIN  -> upstream answers the byte count it read
 *                                    (u64 BE, the 'U' included) and FINs
 *   'D'                           -> upstream streams bytes until the client's
 *                                    FIN, then FINs
 *   'E' + 63 bytes                -> upstream echoes the 64 bytes and FINs first,
 *                                    so TIME_WAIT lands on server-side sockets
 *                                    and the generator's ephemeral ports are
 *                                    free again at once
 */
import { connect, createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  benchMain,
  Children,
  comparisonRows,
  CpuMeter,
  cpuRows,
  findExecutable,
  freePort,
  httpGet,
  machineLine,
  otherLoadWarning,
  parseBenchArgs,
  percentile,
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
const CHUNK_SIZE = 64 * 1024;
const ECHO_SIZE = 64;
const MODE_UPLOAD = 0x55; // 'U'
const MODE_DOWNLOAD = 0x44; // 'D'
const MODE_ECHO = 0x45; // 'E'
const MiB = 1024 * 1024;
/** Machine CPU% beyond our own processes' above which a phase is flagged as disturbed; a quiet run stays under ~10. */

// ---------------------------------------------------------------- upstream

/** The upstream process: sink, source and echo on one port (see the header). */
function serveUpstream(): void {
  const chunk = Buffer.alloc(CHUNK_SIZE, 0x61);
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    let mode = 0;
    let count = 0;
    let stopped = false;
    s.on('error', () => s.destroy());
    const pump = () => {
      while (!stopped) if (!s.write(chunk)) return;
    };
    s.on('data', (d: Buffer) => {
      if (mode === 0) {
        mode = d[0]!;
        if (mode === MODE_DOWNLOAD) {
          s.on('drain', pump);
          pump();
        } else if (mode !== MODE_UPLOAD && mode !== MODE_ECHO) {
          s.destroy();
          return;
        }
      }
      if (mode === MODE_UPLOAD) count += d.length;
      else if (mode === MODE_ECHO && count < ECHO_SIZE) {
        const take = Math.min(d.length, ECHO_SIZE - count);
        count += take;
        if (count >= ECHO_SIZE) s.end(take === d.length ? d : d.subarray(0, take));
        else s.write(d);
      }
    });
    s.on('end', () => {
      if (mode === MODE_UPLOAD) {
        const b = Buffer.alloc(8);
        b.writeBigUInt64BE(BigInt(count));
        s.end(b);
      } else {
        stopped = true;
        s.end();
      }
    });
  });
  server.listen({ host: HOST, port: 0, backlog: 4096 }, () => {
    const a = server.address();
    process.stdout.write(`upstream listening ${typeof a === 'object' && a ? a.port : 0}\n`);
  });
  // The parent's death closes our stdin pipe; never outlive it.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}

// --------------------------------------------------------------- generator

const sendChunk = Buffer.alloc(CHUNK_SIZE, 0x62);
// Bytes are counted, never looked at, so every download connection reads into this one buffer.
const recvBuffer = Buffer.alloc(CHUNK_SIZE);
const MODE_U = Buffer.from([MODE_UPLOAD]);
const MODE_D = Buffer.from([MODE_DOWNLOAD]);
const ECHO_MSG = Buffer.alloc(ECHO_SIZE, 0x65);
ECHO_MSG[0] = MODE_ECHO;

interface StreamEnd {
  bytes: number;
  endAt: number;
}

function withTimeout<T>(what: string, ms: number, run: (done: (v: T) => void, fail: (e: Error) => void, onTimeout: (f: () => void) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let cleanup = () => {};
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what}: no result after ${ms} ms`));
    }, ms);
    run(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
      (f) => (cleanup = f),
    );
  });
}

/** Streams 64 KiB writes until the deadline, half-closes, and waits for the sink's byte count. */
function uploadOne(port: number, deadline: number, hardMs: number): Promise<StreamEnd> {
  return withTimeout<StreamEnd>('upload', hardMs, (done, fail, onTimeout) => {
    const s = connect({ host: HOST, port, allowHalfOpen: true, noDelay: true });
    onTimeout(() => s.destroy());
    let ended = false;
    let reply = Buffer.alloc(0);
    const pump = () => {
      // One clock read per 64 KiB write is noise next to the write itself.
      while (performance.now() < deadline) if (!s.write(sendChunk)) return;
      if (!ended) {
        ended = true;
        s.end();
      }
    };
    s.once('connect', () => {
      s.write(MODE_U);
      pump();
    });
    s.on('drain', pump);
    s.on('data', (d: Buffer) => (reply = Buffer.concat([reply, d])));
    s.on('end', () => {
      const endAt = performance.now();
      s.destroy();
      if (reply.length !== 8) fail(new Error(`upload: sink answered ${reply.length} bytes instead of a u64 count`));
      else done({ bytes: Number(reply.readBigUInt64BE()), endAt });
    });
    s.on('error', (e) => fail(new Error(`upload: ${e.message}`)));
  });
}

/** Asks for a stream, counts it until the deadline, half-closes, and counts the rest until the source's FIN. */
function downloadOne(port: number, deadline: number, hardMs: number): Promise<StreamEnd> {
  return withTimeout<StreamEnd>('download', hardMs, (done, fail, onTimeout) => {
    let bytes = 0;
    const s = connect({
      host: HOST,
      port,
      allowHalfOpen: true,
      noDelay: true,
      onread: {
        buffer: recvBuffer,
        callback: (n: number) => {
          bytes += n;
          return true;
        },
      },
    });
    let stopTimer: NodeJS.Timeout | null = null;
    onTimeout(() => {
      if (stopTimer) clearTimeout(stopTimer);
      s.destroy();
    });
    s.once('connect', () => {
      s.write(MODE_D);
      stopTimer = setTimeout(() => s.end(), Math.max(0, deadline - performance.now()));
    });
    s.on('end', () => {
      const endAt = performance.now();
      s.destroy();
      done({ bytes, endAt });
    });
    s.on('error', (e) => {
      if (stopTimer) clearTimeout(stopTimer);
      fail(new Error(`download: ${e.message}`));
    });
  });
}

/** CPU% of the load generator, the upstream server and the proxy (NaN for direct). */
export type { CpuShare };

export interface BulkResult {
  mibPerSec: number;
  bytes: number;
  seconds: number;
  streams: number;
  cpu: CpuShare;
}

async function bulk(kind: 'upload' | 'download', port: number, streams: number, seconds: number, pids: Pids): Promise<BulkResult> {
  const cpu = new CpuMeter(pids.list());
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const hardMs = seconds * 1000 + 30_000;
  const one = kind === 'upload' ? uploadOne : downloadOne;
  const ends = await Promise.all(Array.from({ length: streams }, () => one(port, deadline, hardMs)));
  const elapsed = (Math.max(...ends.map((e) => e.endAt)) - t0) / 1000;
  const bytes = ends.reduce((n, e) => n + e.bytes, 0);
  return { mibPerSec: bytes / MiB / elapsed, bytes, seconds: elapsed, streams, cpu: pids.share(cpu.stop()) };
}

export interface RateResult {
  connPerSec: number;
  connections: number;
  errors: number;
  firstError: string | null;
  seconds: number;
  concurrency: number;
  p50Ms: number;
  p99Ms: number;
  cpu: CpuShare;
}

/**
 * C loops of connect, send 64 bytes, read the 64-byte echo, see the server's
 * FIN, close. Latency is connect() to the last echoed byte. Bounded by time
 * and by maxConnections, which keeps us clear of ephemeral port exhaustion.
 */
async function connectionRate(port: number, concurrency: number, seconds: number, maxConnections: number, pids: Pids): Promise<RateResult> {
  const latencies = new Float64Array(maxConnections);
  let completed = 0;
  let started = 0;
  let errors = 0;
  let firstError: string | null = null;
  const cpu = new CpuMeter(pids.list());
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;

  const once = () =>
    new Promise<void>((resolve) => {
      const begin = performance.now();
      const s = connect({ host: HOST, port, noDelay: true });
      let got = 0;
      let failed = false;
      s.setTimeout(10_000, () => s.destroy(new Error('no echo within 10 s')));
      s.once('connect', () => s.write(ECHO_MSG));
      s.on('data', (d: Buffer) => {
        const before = got;
        got += d.length;
        if (before < ECHO_SIZE && got >= ECHO_SIZE) latencies[completed++] = performance.now() - begin;
      });
      s.on('error', (e: NodeJS.ErrnoException) => {
        failed = true;
        errors++;
        firstError ??= e.code ?? e.message;
      });
      // Waiting for 'close' (after the server's FIN) keeps the concurrency honest: a slot is free only when its socket is gone.
      s.on('close', () => {
        if (!failed && got < ECHO_SIZE) {
          errors++;
          firstError ??= `closed after ${got} of ${ECHO_SIZE} echoed bytes`;
        }
        resolve();
      });
    });

  const worker = async () => {
    while (performance.now() < deadline && started < maxConnections && errors < 1000) {
      started++;
      await once();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  const cpuPct = pids.share(cpu.stop());
  const sorted = latencies.subarray(0, completed).sort();
  return {
    connPerSec: completed / elapsed,
    connections: completed,
    errors,
    firstError,
    seconds: elapsed,
    concurrency,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    cpu: cpuPct,
  };
}

/** The processes whose CPU is reported, in a fixed order. */
class Pids {
  constructor(
    readonly generator: number,
    readonly upstream: number,
    readonly proxy: number | null,
  ) {}
  list(): number[] {
    return this.proxy === null ? [this.generator, this.upstream] : [this.generator, this.upstream, this.proxy];
  }
  share(pct: number[]): CpuShare {
    return { generator: pct[0]!, upstream: pct[1]!, proxy: this.proxy === null ? NaN : pct[2]!, machine: pct[pct.length - 1]! };
  }
}

// ------------------------------------------------------------------ iperf3

async function iperf(children: Children, bin: string, port: number, streams: number, seconds: number, reverse: boolean, serverPid: number, proxyPid: number | null): Promise<BulkResult> {
  const args = ['-c', HOST, '-p', String(port), '-P', String(streams), '-t', String(seconds), '-l', '64K', '-i', '0', '-J'];
  if (reverse) args.push('-R');
  const child = children.spawn('iperf3 client', bin, args, { keepChars: 4 * MiB });
  // The client's pid is known only now, so its CPU is read over its whole life (a few ms of setup included).
  const pids = new Pids(child.pid, serverPid, proxyPid);
  const cpu = new CpuMeter(pids.list());
  const hard = setTimeout(() => child.proc.kill('SIGKILL'), seconds * 1000 + 20_000);
  // /proc/<pid> vanishes at exit, so sample the client just before it ends: poll until its run time is over.
  let last = [NaN, NaN, NaN, NaN];
  const sampler = setInterval(() => (last = cpu.stop()), 200);
  const code = await child.exited;
  clearInterval(sampler);
  clearTimeout(hard);
  let report: { error?: string; end?: { sum_received?: { bytes: number; seconds: number } } };
  try {
    report = JSON.parse(child.output()) as typeof report;
  } catch {
    throw new Error(`iperf3 exited ${code} without a JSON report: ${child.output().slice(-500)}`);
  }
  if (report.error || !report.end?.sum_received) throw new Error(`iperf3: ${report.error ?? 'no sum_received in the report'}`);
  const { bytes, seconds: secs } = report.end.sum_received;
  return { mibPerSec: bytes / MiB / secs, bytes, seconds: secs, streams, cpu: pids.share(last) };
}

// ----------------------------------------------------------------- proxies

export type PathName = 'direct' | 'haproxy-1t' | 'haproxy-nt' | 'portway';
const ALL_PATHS: PathName[] = ['direct', 'haproxy-1t', 'haproxy-nt', 'portway'];

interface RunningPath {
  label: string;
  port: number;
  iperfPort: number | null;
  proxy: Child | null;
  /** Facts worth keeping (thread count, listener stats), filled after the run. */
  notes: Record<string, unknown>;
  finish(): Promise<void>;
}

function haproxyConfig(port: number, upstream: number, iperfPorts: [number, number] | null, threads: number | null, sock: string): string {
  // No 'log' line anywhere: HAProxy logs nothing then, as Portway logs nothing at warn with no access_log.
  // Timeouts mirror Portway's defaults (connect 5s, idle 1h).
  return `global
    ${threads === null ? '# nbthread left to HAProxy: one thread per CPU it may run on' : `nbthread ${threads}`}
    stats socket ${sock} mode 600 level user

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend bench
    bind ${HOST}:${port}
    default_backend sink

backend sink
    server upstream ${HOST}:${upstream}
${
  iperfPorts
    ? `
frontend iperf
    bind ${HOST}:${iperfPorts[0]}
    default_backend iperf

backend iperf
    server iperf ${HOST}:${iperfPorts[1]}
`
    : ''
}`;
}

function portwayConfig(admin: number, port: number, upstream: number, iperfPorts: [number, number] | null): string {
  return `admin: { address: ${HOST}:${admin} }
log: { level: warn }
drain_timeout: 1s
listeners:
  - name: bench
    address: ${HOST}:${port}
    protocol: tcp
    routes: [{ cluster: sink }]
${iperfPorts ? `  - name: iperf\n    address: ${HOST}:${iperfPorts[0]}\n    protocol: tcp\n    routes: [{ cluster: iperf }]\n` : ''}clusters:
  - name: sink
    endpoints: ["${HOST}:${upstream}"]
${iperfPorts ? `  - name: iperf\n    endpoints: ["${HOST}:${iperfPorts[1]}"]\n` : ''}`;
}

/** One command on HAProxy's stats socket; '' when it cannot be asked. */
function haproxyCommand(sock: string, command: string): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const s = connect(sock);
    s.setTimeout(2000, () => s.destroy());
    s.on('connect', () => s.write(command + '\n'));
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('close', () => resolve(text));
    s.on('error', () => resolve(''));
  });
}

/** Per backend, the abort and error counters that are non-zero (the counterpart of Portway's listener errors). */
async function haproxyBackendErrors(sock: string): Promise<Record<string, Record<string, number>>> {
  const lines = (await haproxyCommand(sock, 'show stat')).trim().split('\n');
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const out: Record<string, Record<string, number>> = {};
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    if (f[header.indexOf('svname')] !== 'BACKEND') continue;
    const errs: Record<string, number> = {};
    for (const k of ['econ', 'eresp', 'cli_abrt', 'srv_abrt']) {
      const v = Number(f[header.indexOf(k)]);
      if (v > 0) errs[k] = v;
    }
    if (Object.keys(errs).length) out[f[0]!] = errs;
  }
  return out;
}

async function startPath(path: PathName, ctx: { children: Children; tmp: string; upstreamPort: number; iperfServerPort: number | null; haproxyBin: string | null }): Promise<RunningPath> {
  const { children, tmp, upstreamPort, iperfServerPort } = ctx;
  if (path === 'direct') {
    return { label: 'direct', port: upstreamPort, iperfPort: iperfServerPort, proxy: null, notes: {}, finish: async () => {} };
  }
  const port = await freePort();
  const iperfPorts: [number, number] | null = iperfServerPort === null ? null : [await freePort(), iperfServerPort];
  if (path === 'portway') {
    const admin = await freePort();
    const file = join(tmp, 'portway.yaml');
    writeFileSync(file, portwayConfig(admin, port, upstreamPort, iperfPorts));
    const proxy = children.spawn('portway', process.execPath, [...PORTWAY_NODE_FLAGS, PORTWAY_CLI, 'run', '-c', file], { cwd: REPO });
    await stopOnError(proxy, waitForHttp200(`http://${HOST}:${admin}/ready`, 15_000, proxy));
    const notes: Record<string, unknown> = {};
    return {
      label: 'portway',
      port,
      iperfPort: iperfPorts?.[0] ?? null,
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
  const threads = path === 'haproxy-1t' ? 1 : null;
  const sock = join(tmp, `${path}.sock`);
  const file = join(tmp, `${path}.cfg`);
  writeFileSync(file, haproxyConfig(port, upstreamPort, iperfPorts, threads, sock));
  const proxy = children.spawn(path, ctx.haproxyBin!, ['-db', '-f', file]);
  await stopOnError(
    proxy,
    (async () => {
      await waitForPort(port, 15_000, proxy);
      if (iperfPorts) await waitForPort(iperfPorts[0], 15_000, proxy);
    })(),
  );
  const nbthread = Number(/^Nbthread:\s*(\d+)/m.exec(await haproxyCommand(sock, 'show info'))?.[1] ?? NaN);
  const notes: Record<string, unknown> = { nbthread, nbthread_configured: threads ?? 'default' };
  return {
    label: `haproxy(${Number.isNaN(nbthread) ? (threads ?? '?') : nbthread}t)`,
    port,
    iperfPort: iperfPorts?.[0] ?? null,
    proxy,
    notes,
    finish: async () => {
      notes['backend_errors'] = await haproxyBackendErrors(sock);
      await proxy.stop();
    },
  };
}

// --------------------------------------------------------------------- run

export interface Options {
  bulkSeconds: number;
  rateSeconds: number;
  iperfSeconds: number;
  streams: number;
  concurrency: number;
  maxConnections: number;
  iperf: boolean;
  paths: PathName[];
  json: string | null;
}

export interface PathResult {
  label: string;
  upload?: BulkResult;
  download?: BulkResult;
  iperfUpload?: BulkResult;
  iperfDownload?: BulkResult;
  rate?: RateResult;
  notes: Record<string, unknown>;
  error?: string;
}

export interface TcpBenchResult {
  machine: string;
  startedAt: string;
  options: Options;
  paths: Partial<Record<PathName, PathResult>>;
}

const HELP = `node dist/bench/tcp.js [options]   (or: npm run bench)

  --quick               short phases (about 25 s in all instead of about 75 s)
  --bulk-seconds N      length of each bulk phase (default 3; env BENCH_BULK_SECONDS)
  --rate-seconds N      length of each new-connection phase (default 5; env BENCH_RATE_SECONDS)
  --streams N           parallel bulk connections (default 4)
  --concurrency N       parallel connect/echo/close loops (default 50)
  --no-iperf            skip the iperf3 runs even when iperf3 is installed
  --paths LIST          comma-separated subset of ${ALL_PATHS.join(',')}
  --json FILE           also write the results as JSON
`;

function parseOptions(argv: string[]): Options | null {
  const parsed = parseBenchArgs(
    argv,
    {
      'bulk-seconds': { type: 'string' },
      'rate-seconds': { type: 'string' },
      streams: { type: 'string' },
      concurrency: { type: 'string' },
      'no-iperf': { type: 'boolean' },
      paths: { type: 'string' },
    },
    HELP,
  );
  if (!parsed) return null;
  const { values, quick } = parsed;
  const num = (flag: string | undefined, env: string, dflt: number, min: number): number => {
    const raw = flag ?? process.env[env];
    if (raw === undefined || raw === '') return dflt;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min) throw new Error(`${env.toLowerCase()}: expected a number >= ${min}, got '${raw}'`);
    return n;
  };
  const paths = (values.paths ?? ALL_PATHS.join(',')).split(',').map((p) => p.trim()) as PathName[];
  for (const p of paths) if (!ALL_PATHS.includes(p)) throw new Error(`--paths: unknown path '${p}' (known: ${ALL_PATHS.join(', ')})`);
  const bulkSeconds = num(values['bulk-seconds'], 'BENCH_BULK_SECONDS', quick ? 1 : 3, 0.2);
  return {
    bulkSeconds,
    rateSeconds: num(values['rate-seconds'], 'BENCH_RATE_SECONDS', quick ? 1.5 : 5, 0.2),
    // iperf3 3.12 takes whole seconds.
    iperfSeconds: Math.max(1, Math.round(bulkSeconds)),
    streams: Math.floor(num(values.streams, 'BENCH_STREAMS', 4, 1)),
    concurrency: Math.floor(num(values.concurrency, 'BENCH_CONCURRENCY', 50, 1)),
    // Far below the ~28k ephemeral ports; TIME_WAIT stays on server sockets anyway (see the header).
    maxConnections: 200_000,
    iperf: values['no-iperf'] !== true && process.env['BENCH_NO_IPERF'] !== '1',
    paths,
    json: values.json ?? null,
  };
}

async function runPath(path: PathName, opts: Options, ctx: Parameters<typeof startPath>[1] & { upstream: Child; iperfServer: Child | null; iperfBin: string | null }): Promise<PathResult> {
  const running = await startWithRetries(path, () => startPath(path, ctx));
  const result: PathResult = { label: running.label, notes: running.notes };
  try {
    const pids = new Pids(process.pid, ctx.upstream.pid, running.proxy?.pid ?? null);
    // A short unmeasured pass of each kind, so every path is measured warm (JIT, socket buffers, HAProxy pools).
    await bulk('upload', running.port, opts.streams, 0.3, pids);
    await bulk('download', running.port, opts.streams, 0.3, pids);
    await connectionRate(running.port, opts.concurrency, 0.3, opts.maxConnections, pids);
    say(`  ${running.label}: upload`);
    result.upload = await bulk('upload', running.port, opts.streams, opts.bulkSeconds, pids);
    say(`  ${running.label}: download`);
    result.download = await bulk('download', running.port, opts.streams, opts.bulkSeconds, pids);
    say(`  ${running.label}: new connections`);
    result.rate = await connectionRate(running.port, opts.concurrency, opts.rateSeconds, opts.maxConnections, pids);
    if (ctx.iperfBin && ctx.iperfServer && running.iperfPort !== null) {
      say(`  ${running.label}: iperf3`);
      const proxyPid = running.proxy?.pid ?? null;
      result.iperfUpload = await iperf(ctx.children, ctx.iperfBin, running.iperfPort, opts.streams, opts.iperfSeconds, false, ctx.iperfServer.pid, proxyPid);
      result.iperfDownload = await iperf(ctx.children, ctx.iperfBin, running.iperfPort, opts.streams, opts.iperfSeconds, true, ctx.iperfServer.pid, proxyPid);
    }
    if (running.proxy && !running.proxy.alive) throw new Error(`${running.label} died during the run (exit ${running.proxy.exitCode}); output:\n${running.proxy.output()}`);
  } finally {
    await running.finish();
  }
  return result;
}

export async function runTcpBench(opts: Options): Promise<TcpBenchResult> {
  const children = new Children();
  const tmp = mkdtempSync(join(tmpdir(), 'portway-bench-'));
  const out: TcpBenchResult = { machine: machineLine(), startedAt: new Date().toISOString(), options: opts, paths: {} };
  try {
    const wantsHaproxy = opts.paths.some((p) => p.startsWith('haproxy'));
    const haproxyBin = wantsHaproxy ? requireDebianTool('haproxy', 'haproxy', ['/usr/sbin/haproxy']) : null;
    const iperfBin = opts.iperf ? findExecutable('iperf3', ['/usr/bin/iperf3']) : null;
    if (opts.iperf && !iperfBin) say('bench: iperf3 not installed (Debian package iperf3); skipping the iperf3 rows');

    const upstream = children.spawn('upstream', process.execPath, [__filename, '--upstream'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const upstreamPort = Number((await upstream.waitForOutput(/upstream listening (\d+)/, 10_000))[1]);
    let iperfServer: Child | null = null;
    let iperfServerPort: number | null = null;
    if (iperfBin) {
      iperfServerPort = await freePort();
      iperfServer = children.spawn('iperf3 server', iperfBin, ['-s', '-B', HOST, '-p', String(iperfServerPort)]);
      await waitForPort(iperfServerPort, 10_000, iperfServer);
    }
    const ctx = { children, tmp, upstreamPort, iperfServerPort, haproxyBin, upstream, iperfServer, iperfBin };
    for (const path of opts.paths) {
      say(`bench: ${path}`);
      try {
        out.paths[path] = await runPath(path, opts, ctx);
      } catch (e) {
        // One broken path must not hide the others' figures.
        out.paths[path] = { label: path, notes: {}, error: (e as Error).message };
        say(`bench: ${path} failed: ${(e as Error).message}`);
      }
      if (!upstream.alive) throw new Error(`the upstream server died (exit ${upstream.exitCode}); output:\n${upstream.output()}`);
    }
  } finally {
    await children.stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

// ------------------------------------------------------------------ report

export function report(r: TcpBenchResult): string {
  const cols = ALL_PATHS.filter((p) => r.paths[p] !== undefined);
  const paths = cols.map((c) => r.paths[c]!);
  const label = (p: PathName) => r.paths[p]!.label;
  const pw = r.paths.portway;
  const h1 = r.paths['haproxy-1t'];
  const hn = r.paths['haproxy-nt'];
  const dir = r.paths.direct;
  const ratioCols: Array<[string, PathResult | undefined]> = [];
  if (pw && h1) ratioCols.push([`portway/${h1.label}`, h1]);
  if (pw && hn) ratioCols.push([`portway/${hn.label}`, hn]);
  if (pw && dir) ratioCols.push(['portway/direct', dir]);

  const metrics: Array<[string, (p: PathResult) => number | undefined]> = [
    [`upload MiB/s (node, ${r.options.streams} streams)`, (p) => p.upload?.mibPerSec],
    [`download MiB/s (node, ${r.options.streams} streams)`, (p) => p.download?.mibPerSec],
    [`upload MiB/s (iperf3, ${r.options.streams} streams)`, (p) => p.iperfUpload?.mibPerSec],
    [`download MiB/s (iperf3, ${r.options.streams} streams)`, (p) => p.iperfDownload?.mibPerSec],
    [`new connections/s (c=${r.options.concurrency})`, (p) => p.rate?.connPerSec],
    ['  connect+echo p50 ms', (p) => p.rate?.p50Ms],
    ['  connect+echo p99 ms', (p) => p.rate?.p99Ms],
  ];
  const cores = availableParallelism();
  const header = [`TCP benchmark (Node ${process.version}, ${cores} cores)`, ...cols.map(label), ...ratioCols.map(([n]) => n)];
  const rows = comparisonRows(metrics, paths, pw, ratioCols);
  const lines = [table(header, rows)];

  const cpuMetrics: Array<CpuMeasurement<PathResult>> = [
    ['upload (node)', (p) => p.upload],
    ['download (node)', (p) => p.download],
    ['upload (iperf3)', (p) => p.iperfUpload],
    ['download (iperf3)', (p) => p.iperfDownload],
    ['new connections', (p) => p.rate],
  ];
  const cpu = cpuRows(cpuMetrics, paths);
  if (cpu.length) {
    lines.push('', table([`CPU % (100 = one core): generator / upstream / proxy / machine (of ${cores * 100})`, ...cols.map(label)], cpu));
  }
  // Nearly all loopback TCP work is charged to our processes, so a large remainder is someone else's load.
  const warning = otherLoadWarning(cpuMetrics, paths, (p) => p.label, (c) => c.generator + c.upstream + (Number.isFinite(c.proxy) ? c.proxy : 0));
  if (warning) lines.push(warning);

  if (pw && h1) {
    const goal = (name: string, a?: number, b?: number) => {
      if (a === undefined || b === undefined) return null;
      return `${name} ${(a / b).toFixed(2)}x ${a / b >= 0.8 ? 'met' : 'NOT met'}`;
    };
    const parts = [
      goal('upload', pw.upload?.mibPerSec, h1.upload?.mibPerSec),
      goal('download', pw.download?.mibPerSec, h1.download?.mibPerSec),
      goal('iperf3 upload', pw.iperfUpload?.mibPerSec, h1.iperfUpload?.mibPerSec),
      goal('iperf3 download', pw.iperfDownload?.mibPerSec, h1.iperfDownload?.mibPerSec),
    ].filter((x) => x !== null);
    if (parts.length) lines.push('', `Goal (issue): Portway throughput >= 0.8x ${h1.label}: ${parts.join('; ')}`);
  }

  for (const c of cols) {
    const p = r.paths[c]!;
    if (p.error) lines.push('', `${p.label} FAILED: ${p.error}`);
    if (p.rate && p.rate.errors > 0) lines.push(`${p.label}: ${p.rate.errors} connection errors in the new-connection phase (first: ${p.rate.firstError})`);
    const errs = (p.notes['listeners'] as { listeners?: Record<string, { errors?: Record<string, number> }> } | undefined)?.listeners;
    for (const [name, l] of Object.entries(errs ?? {})) {
      if (l.errors && Object.keys(l.errors).length) lines.push(`portway listener ${name} counted: ${JSON.stringify(l.errors)}`);
    }
    for (const [name, e] of Object.entries((p.notes['backend_errors'] as Record<string, Record<string, number>> | undefined) ?? {})) {
      lines.push(`${p.label} backend ${name} counted: ${JSON.stringify(e)}`);
    }
    if (p.notes['exit']) lines.push(`${p.label}: ${String(p.notes['exit'])}`);
  }
  if (lines.some((l) => / (backend|listener) iperf counted/.test(l))) {
    lines.push('(iperf3 ends its data streams with a reset when a test ends, so some iperf resets/aborts are expected on both proxies.)');
  }
  lines.push(
    '',
    `${r.machine}. MiB/s = 2^20 bytes/s of payload. Bulk: ${r.options.streams} streams for ${r.options.bulkSeconds} s each way; new connections: ${r.options.rateSeconds} s per path. All processes share the machine's cores.`,
  );
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--upstream') {
    serveUpstream();
    return -1;
  }
  return benchMain(argv, { help: HELP, parse: parseOptions, run: runTcpBench, report });
}

if (require.main === module) runAsMain(main);
