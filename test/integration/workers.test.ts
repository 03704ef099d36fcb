/**
 * Multi-core mode (workers: 2, src/workers): the CLI primary forks two
 * workers; connections to a Redis listener are spread over both (round
 * robin); the primary's admin API merges their metrics, reloads both, and
 * forks a worker again when one dies.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, waitReady, tempDir } from '../helpers/portway';
import { freePort, http, waitFor } from '../helpers/net';
import { startRedis, redisPing } from '../helpers/redis';

interface WorkerInfo {
  worker: number;
  pid: number;
  ready: boolean;
  restarts: number;
  listeners: Record<string, { cx_total: number }>;
}

describe('workers: 2', () => {
  test('connections are served by both workers; /metrics merged; reload reaches both; a dead worker is restarted', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.close());
    const adminPort = await freePort();
    const port = await freePort();
    const port2 = await freePort();
    const file = join(tempDir(), 'p.yaml');
    const config = (extra: string) =>
      `workers: 2\nadmin: { address: 127.0.0.1:${adminPort} }\ndrain_timeout: 2s\nlisteners:\n  - { name: r, address: 127.0.0.1:${port}, protocol: redis, routes: [{ cluster: r }] }\n${extra}clusters:\n  - { name: r, endpoints: ["${redis.address}"] }\n`;
    writeFileSync(file, config(''));
    const c = runCli(['run', '-c', file]);
    t.after(() => c.proc.kill('SIGKILL'));
    const admin = `http://127.0.0.1:${adminPort}`;
    await waitReady(admin, 30000);
    const workers = async (): Promise<WorkerInfo[]> => JSON.parse((await http('GET', `${admin}/workers`)).body).workers;

    for (let i = 0; i < 40; i++) assert.equal(await redisPing(port), true);
    let w = await workers();
    assert.equal(w.length, 2);
    assert.notEqual(w[0]!.pid, w[1]!.pid);
    const counts = w.map((x) => x.listeners.r!.cx_total);
    assert.ok(counts.every((n) => n > 0), `per-worker connections: ${counts.join(', ')}`);
    assert.equal(counts[0]! + counts[1]!, 40);

    const metrics = (await http('GET', `${admin}/metrics`)).body;
    assert.match(metrics, /^portway_downstream_cx_total\{listener="r"\} 40$/m);
    assert.match(metrics, /^portway_workers 2$/m);
    assert.match(metrics, /^portway_config_generation 1$/m);
    assert.equal(metrics.match(/^# TYPE portway_downstream_cx_total counter$/gm)?.length, 1);

    // Reload (from the changed file) reaches both workers: a second listener appears in each.
    writeFileSync(file, config(`  - { name: r2, address: 127.0.0.1:${port2}, protocol: redis, routes: [{ cluster: r }] }\n`));
    const reload = await http('POST', `${admin}/reload`);
    assert.equal(reload.status, 200, reload.body);
    const rr = JSON.parse(reload.body) as { ok: boolean; workers: { ok: boolean; generation: number }[] };
    assert.deepEqual(
      rr.workers.map((x) => [x.ok, x.generation]),
      [
        [true, 2],
        [true, 2],
      ],
    );
    for (let i = 0; i < 10; i++) assert.equal(await redisPing(port2), true);
    w = await workers();
    assert.ok(w.every((x) => x.listeners.r2!.cx_total > 0), JSON.stringify(w.map((x) => x.listeners.r2)));
    assert.match((await http('GET', `${admin}/metrics`)).body, /^portway_config_generation 2$/m);

    // A bad reload is rejected by every worker; the running config stays.
    const bad = await http('POST', `${admin}/reload`, 'listeners: 3\n');
    assert.equal(bad.status, 400);

    // SIGHUP to the primary reloads every worker: the lowest generation any worker runs becomes 3.
    c.proc.kill('SIGHUP');
    await waitFor(async () => /^portway_config_generation 3$/m.test((await http('GET', `${admin}/metrics`)).body), 20000, 'generation 3 on both workers');

    // SIGKILL one worker: the primary forks another in its slot, which serves the current config file.
    const victim = w[0]!.pid;
    process.kill(victim, 'SIGKILL');
    await waitFor(async () => {
      const now = await workers();
      return now[0]!.pid !== victim && now[0]!.ready && now[0]!.restarts === 1;
    }, 30000, 'worker 0 restarted');
    await waitReady(admin, 30000);
    assert.match((await http('GET', `${admin}/metrics`)).body, /^portway_worker_restarts_total 1$/m);
    for (let i = 0; i < 20; i++) assert.equal(await redisPing(port2), true);

    c.proc.kill('SIGTERM');
    assert.equal(await c.exited, 0, c.stderr());
  });
});
