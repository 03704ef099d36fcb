/**
 * Bolt to Bolt through Portway with real peers: sofa-rpc-node clients (child
 * processes, both Hessian settings, Bolt v1 and v2 with CRC) calling
 * sofa-rpc-node providers (child processes) through the bolt listener; raw
 * frames for what the client library cannot send (one-way calls, heartbeats,
 * timeouts shorter than the provider's work).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPortway, type InProcess } from '../helpers/portway';
import { cluster } from '../helpers/discovery';
import { RawBolt, startSofaClient, startSofaServer, sofaRequestFrame, type SofaClient, type SofaServer } from '../helpers/sofa';
import { heartbeatRequest } from '../../src/protocols/bolt/codec';

describe('bolt proxy: sofa-rpc-node through Portway', { timeout: 90_000 }, () => {
  let a: SofaServer;
  let b: SofaServer;
  let pw: InProcess;
  let port: number;
  let client: SofaClient;

  before(async () => {
    [a, b] = await Promise.all([startSofaServer({ name: 'a' }), startSofaServer({ name: 'b' })]);
    pw = await startPortway(`
listeners:
  - name: bolt
    address: 127.0.0.1:0
    protocol: bolt
    options: { connections_per_endpoint: 2 }
    routes:
      - { name: echo, match: { attributes: { service: { exact: "com.example.EchoService:1.0" } } }, cluster: echo }
clusters:
  - name: echo
    lb: round_robin
    endpoints: [${a.address}, ${b.address}]
`);
    port = pw.port('bolt');
    client = await startSofaClient({ serverHost: `127.0.0.1:${port}` });
  });

  after(async () => {
    await client?.kill();
    await pw?.stop();
    await Promise.all([a?.kill(), b?.kill()]);
  });

  test('calls come back with their results, from both providers', async () => {
    assert.deepEqual(await client.invoke('echo', ['hi']).then((r) => r.value), 'hi');
    assert.equal((await client.invoke('add', [40, 2])).value, 42);
    const names = new Set<unknown>();
    for (let i = 0; i < 6; i++) names.add((await client.invoke('whoami', [])).value);
    assert.deepEqual([...names].sort(), ['a', 'b']);
    const big = { list: [1, 'two', null], nested: { k: 'v' } };
    assert.deepEqual((await client.invoke('echo', [big])).value, big);
  });

  test("a provider's error reaches the client as the provider wrote it", async () => {
    const r = await client.invoke('fail', ['boom']);
    assert.equal(r.ok, false);
    assert.equal(r.error?.message, 'com.alipay.remoting.rpc.exception.RpcServerException: Error: boom');
  });

  test('an unknown service gets NO_PROCESSOR with the reason', async () => {
    const r = await client.invoke('echo', ['x'], { service: 'com.example.Nope' });
    assert.equal(r.ok, false);
    assert.match(r.error!.message, /PW_ERR_NO_ROUTE/);
    const raw = await RawBolt.connect(port);
    const rep = await raw.call(5, 'echo', ['x'], { service: 'com.example.Nope:1.0' });
    assert.equal(rep.status, 0x06);
    raw.close();
  });

  test('many clients share a few provider connections; ids are remapped, replies reach the right caller', async () => {
    const clients = await Promise.all([0, 1, 2].map(() => startSofaClient({ serverHost: `127.0.0.1:${port}` })));
    try {
      // Each client process numbers its requests from 1: the same ids arrive from every client.
      const results = await Promise.all(clients.map((c, i) => Promise.all(Array.from({ length: 30 }, (_, j) => c.invoke('echo', [`c${i}-${j}`])))));
      results.forEach((rs, i) => rs.forEach((r, j) => assert.equal(r.value, `c${i}-${j}`)));
      const loads = await Promise.all(clients.map((c) => c.load('echo', ['x'], 300, 10)));
      for (const l of loads) assert.equal(l.errors, 0, l.firstError);
      const echo = (await cluster(pw, 'echo')) as { cx_active: number };
      assert.ok(echo.cx_active <= 4, `at most 2 connections per provider, saw ${echo.cx_active}`);
    } finally {
      await Promise.all(clients.map((c) => c.kill()));
    }
  });

  test('heartbeats are answered by Portway, one-way calls reach the provider without a reply', async () => {
    const raw = await RawBolt.connect(port);
    raw.write(heartbeatRequest(77));
    const ack = await raw.reply(77);
    assert.equal(ack.cmd, 0);
    assert.equal(ack.status, 0);
    // One-way to whichever provider: record on both, read both back.
    raw.write(sofaRequestFrame(78, 'record', ['one-way'], { oneway: true }));
    raw.write(sofaRequestFrame(79, 'record', ['one-way'], { oneway: true }));
    const seen: unknown[] = [];
    const deadline = Date.now() + 5000;
    while (seen.length < 2 && Date.now() < deadline) {
      seen.length = 0;
      for (let i = 0; i < 2; i++) seen.push(...((await client.invoke('recorded', [])).value as unknown[]));
    }
    assert.deepEqual(seen, ['one-way', 'one-way']);
    await assert.rejects(raw.reply(78, 300), /no reply/);
    raw.close();
  });

  test("the frame's timeout is honoured: a slow provider call gets a TIMEOUT response, not a hang", async () => {
    const raw = await RawBolt.connect(port);
    const t0 = performance.now();
    const rep = await raw.call(90, 'slow', [2000, 'late'], { timeoutMs: 300 });
    const took = performance.now() - t0;
    assert.equal(rep.status, 0x07);
    assert.match(rep.error!, /PW_ERR_TIMEOUT/);
    assert.ok(took < 1500, `answered after ${Math.round(took)} ms`);
    // The same connection keeps working, and the late reply is dropped.
    assert.equal((await raw.call(91, 'echo', ['next'])).value, 'next');
    raw.close();
  });

  test('routes by method: the method is read from the payload when a route asks for it', async () => {
    const p = await startPortway(`
listeners:
  - name: m
    address: 127.0.0.1:0
    protocol: bolt
    routes:
      - { match: { attributes: { method: { exact: whoami } } }, cluster: onlyB }
      - { cluster: onlyA }
clusters:
  - { name: onlyA, endpoints: [${a.address}] }
  - { name: onlyB, endpoints: [${b.address}] }
`);
    // (Hessian 4.0 payloads are read the same way: unit tests; these providers speak 3.0 only.)
    const c = await startSofaClient({ serverHost: `127.0.0.1:${p.port('m')}` });
    try {
      assert.equal((await c.invoke('whoami', [])).value, 'b');
      // crash() on a provider that is not crashy answers its name: every other method goes to A.
      assert.equal((await c.invoke('crash', [])).value, 'a');
      assert.equal((await c.invoke('whoami', [])).value, 'b');
    } finally {
      await c.kill();
      await p.stop();
    }
  });

  test('routes by service: each service keeps going where its route sends it, call after call', async () => {
    // The listener remembers the cluster a service was routed to; interleaved
    // services must not take each other's cluster.
    const p = await startPortway(`
listeners:
  - name: s
    address: 127.0.0.1:0
    protocol: bolt
    routes:
      - { match: { attributes: { service: { prefix: "com.example.Other" } } }, cluster: nowhere }
      - { cluster: onlyA }
clusters:
  - { name: onlyA, endpoints: [${a.address}] }
  - { name: nowhere, endpoints: [127.0.0.1:1] }
`);
    const c = await startSofaClient({ serverHost: `127.0.0.1:${p.port('s')}` });
    try {
      for (let i = 0; i < 3; i++) {
        assert.equal((await c.invoke('whoami', [])).value, 'a');
        const other = await c.invoke('whoami', [], { service: 'com.example.OtherService' });
        assert.equal(other.ok, false);
      }
    } finally {
      await c.kill();
      await p.stop();
    }
  });

  test('a reload: connections opened before keep working, new ones follow the new routes', async () => {
    const yaml = (cluster: string) => `
listeners:
  - { name: r, address: 127.0.0.1:0, protocol: bolt, routes: [{ cluster: ${cluster} }] }
clusters:
  - { name: onlyA, endpoints: [${a.address}] }
  - { name: onlyB, endpoints: [${b.address}] }
`;
    const p = await startPortway(yaml('onlyA'));
    const old = await RawBolt.connect(p.port('r'));
    try {
      assert.equal((await old.call(1, 'whoami', [])).value, 'a');
      const r = await p.proxy.reload(`admin: { address: 127.0.0.1:0 }\n${yaml('onlyB')}`);
      assert.equal((r as { ok: boolean }).ok, true, JSON.stringify(r));
      // The old connection keeps its generation (and its provider links); a new one gets the new route.
      assert.equal((await old.call(2, 'whoami', [])).value, 'a');
      const fresh = await RawBolt.connect(p.port('r'));
      assert.equal((await fresh.call(3, 'whoami', [])).value, 'b');
      fresh.close();
    } finally {
      old.close();
      await p.stop();
    }
  });

  test('Hessian 4.0 clients and servers, and Bolt v2 with CRC, pass through unchanged', async () => {
    const s4 = await startSofaServer({ name: 'h4', hessian: '4.0' });
    const p2 = await startPortway(`
listeners:
  - { name: b4, address: 127.0.0.1:0, protocol: bolt, routes: [{ cluster: h4 }] }
clusters:
  - { name: h4, endpoints: [${s4.address}] }
`);
    const c4 = await startSofaClient({ serverHost: `127.0.0.1:${p2.port('b4')}`, hessian: '4.0' });
    const cv2 = await startSofaClient({ serverHost: `127.0.0.1:${port}`, boltV2: { crc: true } });
    try {
      const v = { when: new Date(1700000000000), bytes: Buffer.from('abc'), n: 3 };
      assert.deepEqual((await c4.invoke('echo', [v])).value, v);
      assert.equal((await c4.invoke('fail', ['h4 boom'])).error?.message, 'com.alipay.remoting.rpc.exception.RpcServerException: Error: h4 boom');
      assert.equal((await cv2.invoke('echo', ['over v2'])).value, 'over v2');
      const raw = await RawBolt.connect(port);
      const rep = await raw.call(3, 'echo', ['crc'], { v2: { crc: true } });
      assert.equal(rep.value, 'crc');
      assert.equal(rep.bytes[0], 2, 'answered in v2');
      const plain = await raw.call(4, 'echo', ['v2 without CRC'], { v2: { crc: false } });
      assert.equal(plain.value, 'v2 without CRC');
      assert.deepEqual([plain.bytes[0], plain.bytes[1], plain.bytes[11]], [2, 1, 0], 'v2, version 1, no CRC switch');
      raw.close();
    } finally {
      await Promise.all([c4.kill(), cv2.kill()]);
      await p2.stop();
      await s4.kill();
    }
  });
});
