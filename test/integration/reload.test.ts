import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPortway, tempDir } from '../helpers/portway';
import { echoServer, tcpServer, roundTrip, dial, untilClosed, http, waitFor, freePort, sleep } from '../helpers/net';

function config(admin: string, listeners: string, clusters: string): string {
  return `admin: { address: ${admin} }\nlisteners:\n${listeners}\nclusters:\n${clusters}\n`;
}

describe('config reload', () => {
  test('reload under traffic drops no connection, and new connections follow the new routes', async () => {
    const a = await tcpServer((s) => s.on('data', (d: Buffer) => s.write(Buffer.concat([Buffer.from('A:'), d]))));
    const b = await tcpServer((s) => s.on('data', (d: Buffer) => s.write(Buffer.concat([Buffer.from('B:'), d]))));
    const port = await freePort();
    const listener = (cluster: string, idle: string) => `  - { name: main, address: 127.0.0.1:${port}, protocol: tcp, idle_timeout: ${idle}, routes: [{ cluster: ${cluster} }] }`;
    const clusters = `  - { name: a, endpoints: ["${a.address}"] }\n  - { name: b, endpoints: ["${b.address}"] }`;
    const dir = tempDir();
    const file = join(dir, 'portway.yaml');
    const pw = await startPortway(config('127.0.0.1:0', listener('a', '1h'), clusters), { file });
    try {
      // A long-lived connection opened before any reload.
      const long = await dial(port);
      long.setEncoding('utf8');
      const ask = (s: typeof long, msg: string) =>
        new Promise<string>((resolve) => {
          s.once('data', (d: string) => resolve(d));
          s.write(msg);
        });
      assert.equal(await ask(long, 'hi'), 'A:hi');

      // Short connections in a loop while we reload ten times.
      let ok = 0;
      let failed = 0;
      let stop = false;
      const workers = Array.from({ length: 8 }, async () => {
        while (!stop) {
          try {
            const r = (await roundTrip(port, 'x')).toString();
            if (r === 'A:x' || r === 'B:x') ok++;
            else failed++;
          } catch {
            failed++;
          }
        }
      });
      for (let i = 0; i < 10; i++) {
        const target = i % 2 === 0 ? 'b' : 'a';
        const idle = i % 2 === 0 ? '59m' : '1h';
        writeFileSync(file, config('127.0.0.1:0', listener(target, idle), clusters));
        const r = await http('POST', `${pw.admin}/reload`);
        assert.equal(r.status, 200, r.body);
        await sleep(30);
      }
      stop = true;
      await Promise.all(workers);
      assert.equal(failed, 0, `${failed} connections failed during reloads (${ok} ok)`);
      assert.ok(ok > 20, `enough traffic ran during the reloads (${ok})`);
      assert.equal(pw.proxy.generation, 11);
      // The old connection still works and still goes where it went.
      assert.equal(await ask(long, 'still'), 'A:still');
      // The last config (i = 9) routes to a.
      assert.equal((await roundTrip(port, 'new')).toString(), 'A:new');
      long.destroy();
    } finally {
      await pw.stop();
      await a.close();
      await b.close();
    }
  });

  test('a bad config is rejected with its reasons and the running one stays', async () => {
    const echo = await echoServer();
    const dir = tempDir();
    const file = join(dir, 'portway.yaml');
    const good = `listeners:\n  - { name: e, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: e }] }\nclusters:\n  - { name: e, endpoints: ["${echo.address}"] }\n`;
    const pw = await startPortway(good, { file });
    try {
      const port = pw.port('e');
      writeFileSync(file, `admin: { address: 127.0.0.1:0 }\nlisteners:\n  - { name: e, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: nope }] }\nclusters: []\n`);
      const r = await http('POST', `${pw.admin}/reload`);
      assert.equal(r.status, 400);
      const body = r.json();
      assert.equal(body.ok, false);
      assert.deepEqual(body.issues, [{ path: 'listeners[0].routes[0].cluster', message: "unknown cluster 'nope'" }]);
      assert.equal(body.generation, 1);
      assert.equal((await roundTrip(port, 'still here')).toString(), 'still here');
      const cfg = (await http('GET', `${pw.admin}/config`)).json();
      assert.equal(cfg.generation, 1);
      assert.equal(cfg.last_reload.ok, false);
      assert.equal(cfg.config.clusters[0].name, 'e');
      const m = (await http('GET', `${pw.admin}/metrics`)).body;
      assert.match(m, /portway_config_reload_total\{result="error"\} 1/);
    } finally {
      await pw.stop();
      await echo.close();
    }
  });

  test('a reload whose new listener cannot bind is rejected whole; nothing changes', async () => {
    const echo = await echoServer();
    const busy = await tcpServer(() => {});
    const dir = tempDir();
    const file = join(dir, 'portway.yaml');
    const base = `listeners:\n  - { name: e, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: e }] }\nclusters:\n  - { name: e, endpoints: ["${echo.address}"] }\n`;
    const pw = await startPortway(base, { file });
    try {
      const extra = `admin: { address: 127.0.0.1:0 }\nlisteners:\n  - { name: e, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: e2 }] }\n  - { name: taken, address: ${busy.address}, protocol: tcp, routes: [{ cluster: e2 }] }\nclusters:\n  - { name: e2, endpoints: ["${echo.address}"] }\n`;
      const r = await http('POST', `${pw.admin}/reload`, extra);
      assert.equal(r.status, 400);
      assert.match(r.json().error, /listener 'taken' cannot bind 127\.0\.0\.1:\d+: address already in use/);
      assert.equal(pw.proxy.generation, 1);
      assert.deepEqual(pw.proxy.clusters.all().map((c) => c.name), ['e']);
      assert.equal((await roundTrip(pw.port('e'), 'ok')).toString(), 'ok');
    } finally {
      await pw.stop();
      await echo.close();
      await busy.close();
    }
  });

  test('listeners added and removed: the removed one stops accepting, its open connection finishes', async () => {
    const echo = await echoServer();
    const p1 = await freePort();
    const p2 = await freePort();
    const cl = `  - { name: e, endpoints: ["${echo.address}"] }`;
    const pw = await startPortway(config('127.0.0.1:0', `  - { name: one, address: 127.0.0.1:${p1}, protocol: tcp, routes: [{ cluster: e }] }`, cl));
    try {
      const open = await dial(p1);
      open.write('before');
      await new Promise((r) => open.once('data', r));
      const r = await http(
        'POST',
        `${pw.admin}/reload`,
        config('127.0.0.1:0', `  - { name: two, address: 127.0.0.1:${p2}, protocol: tcp, routes: [{ cluster: e }] }`, cl),
      );
      assert.equal(r.status, 200, r.body);
      assert.equal((await roundTrip(p2, 'two')).toString(), 'two');
      await assert.rejects(dial(p1), /ECONNREFUSED/);
      open.write('after');
      const d = await new Promise<Buffer>((res) => open.once('data', res));
      assert.equal(d.toString(), 'after', 'the connection accepted by the removed listener still works');
      open.end();
      await untilClosed(open);
    } finally {
      await pw.stop();
      await echo.close();
    }
  });

  test('file watch: saving the file reloads it', async () => {
    const echo = await echoServer();
    const dir = tempDir();
    const file = join(dir, 'portway.yaml');
    const body = (idle: string) =>
      `admin: { address: 127.0.0.1:0 }\nreload: { watch: true, debounce: 50ms }\nlisteners:\n  - { name: e, address: 127.0.0.1:0, protocol: tcp, idle_timeout: ${idle}, routes: [{ cluster: e }] }\nclusters:\n  - { name: e, endpoints: ["${echo.address}"] }\n`;
    const pw = await startPortway(body('1h'), { file });
    try {
      writeFileSync(file, body('2h'));
      await waitFor(() => pw.proxy.generation === 2, 5000, 'reload after file change');
      assert.equal(pw.proxy.config.listeners[0]!.idleTimeoutMs, 2 * 3_600_000);
      writeFileSync(file, 'listeners: [oops');
      await waitFor(() => pw.proxy.lastReload?.ok === false, 5000, 'rejected reload');
      assert.equal(pw.proxy.generation, 2);
    } finally {
      await pw.stop();
      await echo.close();
    }
  });
});

describe('config reload: renaming', () => {
  test('a listener renamed at the same address keeps its socket and its open connections', async () => {
    const echo = await echoServer();
    const port = await freePort();
    const cl = `  - { name: e, endpoints: ["${echo.address}"] }`;
    const pw = await startPortway(config('127.0.0.1:0', `  - { name: old-name, address: 127.0.0.1:${port}, protocol: tcp, routes: [{ cluster: e }] }`, cl));
    try {
      const open = await dial(port);
      const r = await http('POST', `${pw.admin}/reload`, config('127.0.0.1:0', `  - { name: new-name, address: 127.0.0.1:${port}, protocol: tcp, routes: [{ cluster: e }] }`, cl));
      assert.equal(r.status, 200, r.body);
      assert.equal(pw.port('new-name'), port);
      assert.equal((await roundTrip(port, 'renamed')).toString(), 'renamed');
      open.write('open');
      assert.equal((await new Promise<Buffer>((res) => open.once('data', res))).toString(), 'open');
      open.destroy();
    } finally {
      await pw.stop();
      await echo.close();
    }
  });
});
