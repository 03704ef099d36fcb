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
 * Usage: node dist/bench/chain.js [--quick] [--json FILE]
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Children, freePort, waitForHttp200, waitForPort, requireDebianTool, table, ratio, fmt, machineLine, PORTWAY_CLI, CpuMeter } from './lib';

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
  proxyCpu: number;
}

async function bench(children: Children, bin: string, port: number, test: string, pipeline: number, n: number, proxyPid: number | null): Promise<Omit<Row, 'path'>> {
  const meter = proxyPid !== null ? new CpuMeter([proxyPid]) : null;
  const c = children.spawn('redis-benchmark', bin, ['-h', HOST, '-p', String(port), '-c', '50', '-n', String(n), '-P', String(pipeline), '-t', test, '--csv'], { keepChars: 1 << 16 });
  const code = await c.exited;
  const cpu = meter ? meter.stop()[0]! : NaN;
  const line = c
    .output()
    .split('\n')
    .find((l) => l.startsWith(`"${test.toUpperCase()}"`));
  if (code !== 0 || !line) throw new Error(`redis-benchmark failed (${code}): ${c.output().slice(-500)}`);
  const f = line.split(',').map((x) => x.replace(/"/g, ''));
  return { pipeline, test: test.toUpperCase(), rps: Number(f[1]), p50: Number(f[4]), p99: Number(f[6]), proxyCpu: cpu };
}

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
  try {
    const upstream = await freePort();
    const redis = children.spawn('redis-server', redisServer, ['--port', String(upstream), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', tmp]);
    await waitForPort(upstream, 10_000, redis);
    const loads: [string, number, number][] = [
      ['get', 1, quick ? 50_000 : 300_000],
      ['set', 1, quick ? 50_000 : 300_000],
      ['get', 16, quick ? 300_000 : 2_000_000],
      ['set', 16, quick ? 300_000 : 2_000_000],
    ];
    for (const [test, p, n] of loads) rows.push({ path: 'direct', ...(await bench(children, benchBin, upstream, test, p, n, null)) });
    for (const k of ['0', '3', '6']) {
      const admin = await freePort();
      const port = await freePort();
      const file = join(tmp, `portway-${k}.yaml`);
      writeFileSync(file, config(admin, port, upstream, FILTERS[k]!));
      const pw = children.spawn(`portway(${k})`, process.execPath, [PORTWAY_CLI, 'run', '-c', file]);
      await waitForHttp200(`http://${HOST}:${admin}/ready`, 10_000, pw);
      process.stderr.write(`bench: portway with ${k} filters\n`);
      await bench(children, benchBin, port, 'get', 1, 20_000, pw.pid); // warm-up, not counted
      for (const [test, p, n] of loads) rows.push({ path: `portway(${k})`, ...(await bench(children, benchBin, port, test, p, n, pw.pid)) });
      await pw.stop();
    }
  } finally {
    await children.stopAll();
  }
  const paths = ['direct', 'portway(0)', 'portway(3)', 'portway(6)'];
  const keys = [...new Set(rows.map((r) => `${r.test} -P ${r.pipeline}`))];
  const get = (path: string, key: string) => rows.find((r) => r.path === path && `${r.test} -P ${r.pipeline}` === key)!;
  const out: string[][] = [];
  for (const key of keys) {
    out.push([`${key} requests/s`, ...paths.map((p) => fmt(get(p, key).rps, 0)), ratio(get('portway(3)', key).rps, get('portway(0)', key).rps), ratio(get('portway(6)', key).rps, get('portway(0)', key).rps)]);
    out.push([`  p99 ms`, ...paths.map((p) => fmt(get(p, key).p99)), '', '']);
    out.push([`  proxy CPU %`, ...paths.map((p) => (Number.isNaN(get(p, key).proxyCpu) ? '-' : fmt(get(p, key).proxyCpu, 0))), '', '']);
  }
  console.log(table(['Redis chain cost (redis-benchmark -c 50)', ...paths, '3 filters / 0', '6 filters / 0'], out));
  const verdicts = keys.map((k) => {
    const r = get('portway(6)', k).rps / get('portway(0)', k).rps;
    return `${k}: 6 filters keep ${(r * 100).toFixed(0)}% (${r >= 0.9 ? 'met' : 'NOT met'})`;
  });
  console.log(`\nGoal (issue): a 6-filter chain costs at most 10% of throughput. ${verdicts.join('; ')}`);
  console.log(machineLine());
  if (jsonFile) writeFileSync(jsonFile, JSON.stringify({ rows }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
