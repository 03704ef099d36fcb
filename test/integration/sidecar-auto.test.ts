/**
 * protocol: auto — one port, real clients: redis-cli (RESP arrays), a raw
 * inline command, curl (HTTP/1.1), kafkajs (Kafka, served by the Kafka
 * listener from a memory log), TLS ClientHello bytes passed through as L4,
 * and the bad inputs: silence (detection timeout), unknown bytes (closed, or
 * passed through with fallback: tcp).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { promisify } from 'node:util';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { echoServer, dial, roundTrip, untilClosed, http, type TestServer } from '../helpers/net';
import { ensureDebianBinary } from '../helpers/process';
import { kafkaClient } from '../helpers/kafka';

const run = promisify(execFile);

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('protocol: auto', () => {
  let redis: RedisServer;
  let web: Server;
  let webPort = 0;
  let tlsEcho: TestServer;
  let tcpEcho: TestServer;
  let pw: InProcess;
  let redisCli: string;
  let curl: string;

  before(async () => {
    redisCli = ensureDebianBinary('redis-cli', 'redis-tools');
    curl = ensureDebianBinary('curl', 'curl');
    redis = await startRedis();
    tlsEcho = await echoServer();
    tcpEcho = await echoServer();
    web = createServer((req, res) => res.end(`hello ${req.method} ${req.url}`));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    webPort = (web.address() as { port: number }).port;
    pw = await startPortway(`
listeners:
  - name: any
    address: 127.0.0.1:0
    protocol: auto
    options:
      detect_timeout: 300ms
      redis: {}
      http: {}
      kafka: { group: { initial_rebalance_delay: 100ms } }
      tls: {}
      fallback: tcp
    routes:
      - { match: { attributes: { protocol: { exact: redis } } }, cluster: redis }
      - { match: { attributes: { protocol: { exact: http } } }, cluster: web }
      - { match: { attributes: { protocol: { exact: kafka } } }, cluster: log }
      - { match: { attributes: { protocol: { exact: tls } } }, cluster: tls }
      - { match: { attributes: { protocol: { exact: tcp } } }, cluster: tcp }
  - name: strict
    address: 127.0.0.1:0
    protocol: auto
    options: { detect_timeout: 200ms, redis: {} }
    routes: [{ cluster: redis }]
clusters:
  - { name: redis, endpoints: ["${redis.address}"] }
  - { name: web, endpoints: ["127.0.0.1:${webPort}"] }
  - { name: log, component: { type: memory_log } }
  - { name: tls, endpoints: ["${tlsEcho.address}"] }
  - { name: tcp, endpoints: ["${tcpEcho.address}"] }
`);
  });

  after(async () => {
    await pw?.stop();
    await redis?.close();
    await tlsEcho?.close();
    await tcpEcho?.close();
    await new Promise<void>((r) => (web ? web.close(() => r()) : r()));
  });

  test('redis-cli (RESP arrays) is served by the Redis handler', async () => {
    const port = String(pw.port('any'));
    assert.equal((await run(redisCli, ['-p', port, 'SET', 'auto:k', 'v1'])).stdout.trim(), 'OK');
    assert.equal((await run(redisCli, ['-p', port, 'GET', 'auto:k'])).stdout.trim(), 'v1');
  });

  test('an inline command and a large pipelined first write arrive intact through the re-wrapped socket', async () => {
    const s = await dial(pw.port('any'));
    const n = 2000;
    let cmds = 'PING\r\n';
    for (let i = 0; i < n; i++) cmds += `*3\r\n$3\r\nSET\r\n$9\r\npipe:${String(i).padStart(4, '0')}\r\n$${String(i).length}\r\n${i}\r\n`;
    cmds += '*2\r\n$3\r\nGET\r\n$9\r\npipe:0999\r\n';
    s.write(cmds);
    const want = '+PONG\r\n' + '+OK\r\n'.repeat(n) + '$3\r\n999\r\n';
    let got = '';
    await new Promise<void>((resolve, reject) => {
      s.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.length >= want.length) resolve();
      });
      s.on('error', reject);
    });
    s.destroy();
    assert.equal(got, want);
  });

  test('curl (HTTP/1.1) is served by the HTTP handler', async () => {
    const r = await run(curl, ['-s', `http://127.0.0.1:${pw.port('any')}/path?q=1`]);
    assert.equal(r.stdout, 'hello GET /path?q=1');
  });

  test('kafkajs produces and reads offsets through the same port', async () => {
    const broker = `127.0.0.1:${pw.port('any')}`;
    const admin = kafkaClient(broker).admin();
    const producer = kafkaClient(broker).producer({ allowAutoTopicCreation: true });
    await admin.connect();
    await producer.connect();
    try {
      await admin.createTopics({ topics: [{ topic: 'auto-topic', numPartitions: 1 }] });
      await producer.send({ topic: 'auto-topic', messages: [{ value: 'a' }, { value: 'b' }] });
      const offsets = await admin.fetchTopicOffsets('auto-topic');
      assert.equal(offsets[0]!.high, '2');
    } finally {
      await producer.disconnect();
      await admin.disconnect();
    }
  });

  test('a TLS ClientHello is passed through as L4 to the tls route', async () => {
    const hello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05]), Buffer.from('hello')]);
    const back = await roundTrip(pw.port('any'), hello);
    assert.deepEqual(back, hello);
  });

  test('unknown bytes go to the fallback TCP route', async () => {
    const data = Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x02]);
    assert.deepEqual(await roundTrip(pw.port('any'), data), data);
  });

  test('bad input: unknown bytes without fallback and a silent client are closed and counted', async () => {
    const junk = await dial(pw.port('strict'));
    junk.write(Buffer.from([0x99, 0x01, 0x02]));
    const r1 = await untilClosed(junk);
    assert.equal(r1.data.length, 0);
    const silent = await dial(pw.port('strict'));
    const r2 = await untilClosed(silent);
    assert.equal(r2.data.length, 0);
    // Known protocol, not enabled on this listener: HTTP on the Redis-only port.
    const h = await dial(pw.port('strict'));
    h.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await untilClosed(h);
    const m = (await http('GET', `${pw.admin}/metrics`)).body;
    assert.equal(metric(m, 'portway_protocol_detect_total', 'listener="strict",result="unknown"'), 2);
    assert.equal(metric(m, 'portway_protocol_detect_total', 'listener="strict",result="timeout"'), 1);
    assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_PROTOCOL_UNKNOWN",listener="strict"'), 3);
    assert.ok(metric(m, 'portway_protocol_detect_total', 'listener="any",result="redis"') >= 3);
    assert.ok(metric(m, 'portway_protocol_detect_total', 'listener="any",result="tls"') >= 1);
  });
});
