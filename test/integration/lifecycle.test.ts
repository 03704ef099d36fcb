import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Kafka, logLevel } from 'kafkajs';
import { join } from 'node:path';
import { runCli, waitReady, tempDir, REPO, type Child } from '../helpers/portway';
import { echoServer, dial, roundTrip, untilClosed, freePort, http, waitFor, tcpServer, type TestServer } from '../helpers/net';

/** Runs the CLI on a config of one TCP listener in front of `echo`, killed when the test ends; resolves once /ready answers. */
async function runEchoProxy(t: TestContext, echo: TestServer, drainTimeout: string): Promise<{ c: Child; port: number }> {
  const admin = await freePort();
  const port = await freePort();
  const file = join(tempDir(), 'p.yaml');
  writeFileSync(
    file,
    `admin: { address: 127.0.0.1:${admin} }\ndrain_timeout: ${drainTimeout}\nlisteners:\n  - { name: e, address: 127.0.0.1:${port}, protocol: tcp, routes: [{ cluster: e }] }\nclusters:\n  - { name: e, endpoints: ["${echo.address}"] }\n`,
  );
  const c = runCli(['run', '-c', file]);
  t.after(() => c.proc.kill('SIGKILL'));
  await waitReady(`http://127.0.0.1:${admin}`);
  return { c, port };
}

describe('process lifecycle (the CLI as a subprocess)', () => {
  test('the embedded default config runs with nothing else installed: a Redis listener served in process', async (t) => {
    const admin = await freePort();
    const redisPort = await freePort();
    const dir = tempDir();
    mkdirSync(join(dir, 'config'));
    // Same file, fixed ports moved to free ones so the test never collides with a running Portway.
    const original = readFileSync(join(REPO, 'config/portway.yaml'), 'utf8');
    assert.ok(original.includes('127.0.0.1:9901') && original.includes('127.0.0.1:6380'), 'the default names admin 9901 and Redis 6380');
    const kafkaPort = await freePort();
    assert.ok(original.includes('127.0.0.1:9092'), 'the default names Kafka 9092');
    const text = original
      .replace('127.0.0.1:9901', `127.0.0.1:${admin}`)
      .replace('127.0.0.1:6380', `127.0.0.1:${redisPort}`)
      .replace('127.0.0.1:9092', `127.0.0.1:${kafkaPort}`);
    writeFileSync(join(dir, 'config/portway.yaml'), text);
    // No -c: `run` picks config/portway.yaml in the working directory, as `npm start` does.
    const c = runCli(['run'], { cwd: dir });
    t.after(() => c.proc.kill('SIGKILL'));
    await waitReady(`http://127.0.0.1:${admin}`);
    const reply = (await roundTrip(redisPort, '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n')).toString();
    assert.equal(reply, '+OK\r\n$1\r\nv\r\n');
    // Kafka: a real client produces and reads back through the embedded log in ./data/kafka.
    const kafka = new Kafka({ clientId: 'lifecycle', brokers: [`127.0.0.1:${kafkaPort}`], logLevel: logLevel.NOTHING });
    const admin2 = kafka.admin();
    await admin2.connect();
    await admin2.createTopics({ topics: [{ topic: 'greetings', numPartitions: 1 }] });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'greetings', messages: [{ value: 'hello' }] });
    const offsets = await admin2.fetchTopicOffsets('greetings');
    assert.equal(offsets[0]?.high, '1');
    await producer.disconnect();
    await admin2.disconnect();
    assert.ok(existsSync(join(dir, 'data/kafka')), 'the embedded log writes under the working directory');
    c.proc.kill('SIGTERM');
    assert.equal(await c.exited, 0, c.stderr());
  });

  test('SIGTERM: stop accepting, drain open connections, exit 0', async (t) => {
    const echo = await echoServer();
    const { c, port } = await runEchoProxy(t, echo, '20s');
    const open = await dial(port);
    open.write('one');
    await new Promise((r) => open.once('data', r));

    c.proc.kill('SIGTERM');
    await waitFor(async () => {
      try {
        await dial(port).then((s) => s.destroy());
        return false;
      } catch {
        return true;
      }
    }, 5000, 'listener to stop accepting');
    // The open connection still works while draining.
    open.write('two');
    const d = await new Promise<Buffer>((r) => open.once('data', r));
    assert.equal(d.toString(), 'two');
    let exited = false;
    void c.exited.then(() => (exited = true));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(exited, false, 'still draining while a connection is open');
    open.end();
    await untilClosed(open);
    assert.equal(await c.exited, 0, c.stderr());
    assert.match(c.stdout(), /"msg":"draining"/);
    await echo.close();
  });

  test('drain_timeout: connections still open when it passes are closed and the process exits 0', async (t) => {
    const echo = await echoServer();
    const { c, port } = await runEchoProxy(t, echo, '300ms');
    const open = await dial(port);
    const closed = untilClosed(open);
    c.proc.kill('SIGINT');
    await closed;
    assert.equal(await c.exited, 0, c.stderr());
    await echo.close();
  });

  test('SIGHUP reloads the file', async (t) => {
    const a = await tcpServer((s) => s.end('A'));
    const b = await tcpServer((s) => s.end('B'));
    const admin = await freePort();
    const port = await freePort();
    const dir = tempDir();
    const file = join(dir, 'p.yaml');
    const write = (cluster: string) =>
      writeFileSync(
        file,
        `admin: { address: 127.0.0.1:${admin} }\nlisteners:\n  - { name: e, address: 127.0.0.1:${port}, protocol: tcp, routes: [{ cluster: ${cluster} }] }\nclusters:\n  - { name: a, endpoints: ["${a.address}"] }\n  - { name: b, endpoints: ["${b.address}"] }\n`,
      );
    write('a');
    const c = runCli(['run', '-c', file]);
    t.after(() => c.proc.kill('SIGKILL'));
    await waitReady(`http://127.0.0.1:${admin}`);
    assert.equal((await roundTrip(port, '')).toString(), 'A');
    write('b');
    c.proc.kill('SIGHUP');
    await waitFor(async () => (await http('GET', `http://127.0.0.1:${admin}/ready`)).json().generation === 2, 5000, 'generation 2');
    assert.equal((await roundTrip(port, '')).toString(), 'B');
    c.proc.kill('SIGTERM');
    assert.equal(await c.exited, 0);
    await a.close();
    await b.close();
  });

  test('address in use: exit 1 with an error naming the listener', async () => {
    const busy = await tcpServer(() => {});
    const admin = await freePort();
    const dir = tempDir();
    const file = join(dir, 'p.yaml');
    writeFileSync(file, `admin: { address: 127.0.0.1:${admin} }\nlisteners:\n  - { name: redis-main, address: ${busy.address}, protocol: tcp, routes: [{ cluster: e }] }\nclusters:\n  - { name: e, endpoints: ["127.0.0.1:1"] }\n`);
    const c = runCli(['run', '-c', file]);
    assert.equal(await c.exited, 1);
    assert.match(c.stderr(), new RegExp(`listener 'redis-main' cannot bind ${busy.address.replace(/\./g, '\\.')}: address already in use`));
    await busy.close();
  });

  test('malformed config: run exits 1 and prints every error', async () => {
    const dir = tempDir();
    const file = join(dir, 'p.yaml');
    writeFileSync(file, `listeners:\n  - { name: x, address: nowhere, protocol: carrier-pigeon }\nclusters:\n  - { name: c, endpoints: [], lb: fastest }\n`);
    const c = runCli(['run', '-c', file]);
    assert.equal(await c.exited, 1);
    const err = c.stderr();
    assert.match(err, /listeners\[0\]\.address: 'nowhere' must be host:port/);
    assert.match(err, /listeners\[0\]\.protocol: unknown protocol 'carrier-pigeon'/);
    assert.match(err, /clusters\[0\]\.lb: must be one of/);
    assert.match(err, /listeners\[0\]\.routes|clusters\[0\]\.endpoints: a cluster needs at least one endpoint/);
  });
});
