/**
 * Filter chain cost on the Redis path: the same redis-benchmark load through
 * Portway with 0, 3 and 6 filters, beside the bare path (redis-server
 * directly), in one run.
 *
 *   0 filters: the router only (the listener's single catch-all route)
 *   3 filters: access_log (only_errors), rate_limit (local, far above the load), fault (0 %)
 *   6 filters: the 3 above + timeout (5 s), retry (connect failures), circuit_breaker
 *
 * Goal (issue): a 6-filter chain costs at most 10 % of the 0-filter throughput.
 *
 * The machine is usually shared, so requests/s alone drift with other
 * processes' load: the three Portway processes run side by side, each round
 * measures every load on every path back to back, the figures are medians of
 * the rounds, and beside requests/s the table shows the proxy's CPU time per
 * request (from /proc), whose ratio is the chain's cost per request.
 * Usage: node dist/bench/chain.js [--quick] [--json FILE]
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Children, freePort, waitForHttp200, waitForPort, requireDebianTool, table, ratio, fmt, machineLine, PORTWAY_CLI, PORTWAY_NODE_FLAGS, processCpuSeconds } from './lib';

const HOST = '127.0.0.1';

const FILTERS: Record<string, string> = {
  '0': '',
  '3': `
      - { type: access_log, only_errors: true }
      - { type: rate_limit, rate: 100000000, per: 1s, key: listener }
      - { type: fault, abort: { percentage: 0 } }`,
  '6': `
      - { type: access_log, only_errors: true }
      - { type: rate_limit, rate: 100000000, per: 1s, key: listener }
      - { type: fault, abort: { percentage: 0 } }
      - { type: timeout, timeout: 5s }
      - { type: retry, max_retries: 1, retry_on: [connect-failure] }
      - { type: circuit_breaker, consecutive_failures: 50 }`,
};

function config(admin: number, port: number, upstream: number, filters: string): string {
  return `admin: { address: ${HOST}:${admin} }
log: { level: warn }
drain_timeout: 1s
listeners:
  - name: bench
    address: ${HOST}:${port}
    protocol: redis
    filters:${filters}
      - { type: router }
    routes: [{ cluster: redis }]
clusters:
  - name: redis
    endpoints: ["${HOST}:${upstream}"]
`;
}

interface Row {
  path: string;
  pipeline: number;
  test: string;
  rps: number;
  p50: number;
  p99: number;
  /** Proxy CPU time per request, in microseconds (NaN for the direct path). */
  cpuUsPerReq: number;
}

async function bench(children: Children, bin: string, port: number, test: string, pipeline: number, n: number, proxyPid: number | null): Promise<Omit<Row, 'path'>> {
  const cpu0 = proxyPid !== null ? processCpuSeconds(proxyPid) : NaN;
  const c = children.spawn('redis-benchmark', bin, ['-h', HOST, '-p', String(port), '-c', '50', '-n', String(n), '-P', String(pipeline), '-t', test, '--csv'], { keepChars: 1 << 16 });
  const code = await c.exited;
  const cpu = proxyPid !== null ? processCpuSeconds(proxyPid) - cpu0 : NaN;
  const line = c
    .output()
    .split('\n')
    .find((l) => l.startsWith(`"${test.toUpperCase()}"`));
  if (code !== 0 || !line) throw new Error(`redis-benchmark failed (${code}): ${c.output().slice(-500)}`);
  const f = line.split(',').map((x) => x.replace(/"/g, ''));
  return { pipeline, test: test.toUpperCase(), rps: Number(f[1]), p50: Number(f[4]), p99: Number(f[6]), cpuUsPerReq: (cpu * 1e6) / n };
}

function median(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/**
 * The machine is shared: the three Portway processes run side by side and
 * every round measures each load on every path back to back, so a change of
 * background load hits all paths alike; figures are medians over the rounds.
 * Beside requests/s the table shows the proxy's CPU time per request, which
 * other processes' load disturbs much less: its ratio is the chain's cost.
 */
async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const jsonAt = process.argv.indexOf('--json');
  const jsonFile = jsonAt > 0 ? process.argv[jsonAt + 1] : undefined;
  const redisServer = requireDebianTool('redis-server', 'redis-server', ['/usr/bin/redis-server']);
  const benchBin = requireDebianTool('redis-benchmark', 'redis-tools', ['/usr/bin/redis-benchmark']);
  const children = new Children();
  const stop = () => void children.stopAll().then(() => process.exit(130));
  process.once('SIGINT', stop);
  const rows: Row[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'portway-chain-'));
  const rounds = quick ? 3 : 5;
  const loads: [string, number, number][] = [
    ['get', 1, quick ? 30_000 : 150_000],
    ['set', 1, quick ? 30_000 : 150_000],
    ['get', 16, quick ? 200_000 : 1_000_000],
    ['set', 16, quick ? 200_000 : 1_000_000],
  ];
  try {
    const upstream = await freePort();
    const redis = children.spawn('redis-server', redisServer, ['--port', String(upstream), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', tmp]);
    await waitForPort(upstream, 10_000, redis);
    const proxies: { path: string; port: number; pid: number }[] = [];
    for (const k of ['0', '3', '6']) {
      const admin = await freePort();
      const port = await freePort();
      const file = join(tmp, `portway-${k}.yaml`);
      writeFileSync(file, config(admin, port, upstream, FILTERS[k]!));
      const pw = children.spawn(`portway(${k})`, process.execPath, [...PORTWAY_NODE_FLAGS, PORTWAY_CLI, 'run', '-c', file]);
      await waitForHttp200(`http://${HOST}:${admin}/ready`, 30_000, pw);
      await bench(children, benchBin, port, 'get', 1, 20_000, pw.pid); // warm-up, not counted
      proxies.push({ path: `portway(${k})`, port, pid: pw.pid! });
    }
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`bench: round ${r + 1}/${rounds}\n`);
      for (const [test, p, n] of loads) {
        rows.push({ path: 'direct', ...(await bench(children, benchBin, upstream, test, p, n, null)) });
        for (const px of proxies) rows.push({ path: px.path, ...(await bench(children, benchBin, px.port, test, p, n, px.pid)) });
      }
    }
  } finally {
    await children.stopAll();
  }
  const paths = ['direct', 'portway(0)', 'portway(3)', 'portway(6)'];
  const keys = [...new Set(rows.map((r) => `${r.test} -P ${r.pipeline}`))];
  const med = (path: string, key: string, f: (r: Row) => number) => median(rows.filter((r) => r.path === path && `${r.test} -P ${r.pipeline}` === key).map(f));
  const out: string[][] = [];
  for (const key of keys) {
    const rps = (p: string) => med(p, key, (r) => r.rps);
    const us = (p: string) => med(p, key, (r) => r.cpuUsPerReq);
    out.push([`${key} requests/s`, ...paths.map((p) => fmt(rps(p), 0)), ratio(rps('portway(3)'), rps('portway(0)')), ratio(rps('portway(6)'), rps('portway(0)'))]);
    out.push([`  p99 ms`, ...paths.map((p) => fmt(med(p, key, (r) => r.p99))), '', '']);
    out.push([`  proxy CPU us/request`, ...paths.map((p) => (Number.isNaN(us(p)) ? '-' : fmt(us(p), 2))), ratio(us('portway(3)'), us('portway(0)')), ratio(us('portway(6)'), us('portway(0)'))]);
  }
  console.log(table([`Redis chain cost (redis-benchmark -c 50, median of ${rounds} interleaved rounds)`, ...paths, '3 filters / 0', '6 filters / 0'], out));
  const verdicts = keys.map((k) => {
    const r = med('portway(6)', k, (x) => x.rps) / med('portway(0)', k, (x) => x.rps);
    const c = med('portway(0)', k, (x) => x.cpuUsPerReq) / med('portway(6)', k, (x) => x.cpuUsPerReq);
    return `${k}: 6 filters keep ${(r * 100).toFixed(0)}% of requests/s, ${(c * 100).toFixed(0)}% of requests per CPU second (${r >= 0.9 ? 'met' : 'NOT met'})`;
  });
  console.log(`\nGoal (issue): a 6-filter chain costs at most 10% of throughput. ${verdicts.join('; ')}`);
  console.log(machineLine());
  if (jsonFile) writeFileSync(jsonFile, JSON.stringify({ rows }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
