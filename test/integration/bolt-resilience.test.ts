/**
 * Bolt failure handling with real sofa-rpc-node peers: a provider that dies
 * mid-call, retries only for methods configured idempotent, a rate limit by
 * service (server busy), and a circuit breaker that fails fast.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPortway, type InProcess } from '../helpers/portway';
import { RawBolt, startSofaClient, startSofaServer, type SofaServer } from '../helpers/sofa';
import { freePort } from '../helpers/net';

describe('bolt resilience', { timeout: 90_000 }, () => {
  let lone: SofaServer;
  let crashyA: SofaServer;
  let crashyB: SofaServer;
  let normal: SofaServer;
  let spare: SofaServer;
  let pw: InProcess;
  let deadPort: number;

  before(async () => {
    [lone, crashyA, crashyB, normal, spare] = await Promise.all([
      startSofaServer({ name: 'lone', crashy: true }),
      startSofaServer({ name: 'crashyA', crashy: true }),
      startSofaServer({ name: 'crashyB', crashy: true }),
      startSofaServer({ name: 'normal' }),
      startSofaServer({ name: 'spare' }),
    ]);
    deadPort = await freePort();
    pw = await startPortway(`
listeners:
  - name: plain
    address: 127.0.0.1:0
    protocol: bolt
    routes: [{ cluster: lone }]
  - name: retrying
    address: 127.0.0.1:0
    protocol: bolt
    options: { idempotent_methods: ["com.example.EchoService#crash"] }
    filters:
      - { type: router }
      - { type: retry, max_retries: 2, backoff: { base: 1ms, max: 2ms } }
    routes: [{ cluster: pairA }]
  - name: noretry
    address: 127.0.0.1:0
    protocol: bolt
    options: { idempotent_methods: ["com.example.EchoService#crash"] }
    filters:
      - { type: router }
      - { type: retry, max_retries: 2, backoff: { base: 1ms, max: 2ms } }
    routes: [{ cluster: pairB }]
  - name: limited
    address: 127.0.0.1:0
    protocol: bolt
    filters:
      - { type: rate_limit, rate: 1, per: 1h, burst: 2, key: "attribute:service" }
      - { type: router }
    routes: [{ cluster: spare }]
  - name: breaker
    address: 127.0.0.1:0
    protocol: bolt
    filters:
      - { type: router }
      - { type: circuit_breaker, consecutive_failures: 2, open_duration: 30s }
    routes: [{ cluster: dead }]
clusters:
  - { name: lone, endpoints: [${lone.address}] }
  # Round robin starts at the first endpoint: a fresh cluster's first call goes to the crashy provider.
  - { name: pairA, lb: round_robin, endpoints: [${crashyA.address}, ${normal.address}] }
  - { name: pairB, lb: round_robin, endpoints: [${crashyB.address}, ${normal.address}] }
  - { name: spare, endpoints: [${spare.address}] }
  - { name: dead, connect_timeout: 1s, endpoints: [127.0.0.1:${deadPort}] }
`);
  });

  after(async () => {
    await pw?.stop();
    await Promise.all([lone, crashyA, crashyB, normal, spare].map((s) => s?.kill()));
  });

  test('a provider that dies mid-call: the client gets an error response at once, no hang', async () => {
    const c = await startSofaClient({ serverHost: `127.0.0.1:${pw.port('plain')}` });
    try {
      const r = await c.invoke('crashNoRetry', [], { timeoutMs: 10_000 });
      assert.equal(r.ok, false);
      assert.match(r.error!.message, /PW_ERR_UPSTREAM_RESET/);
      assert.ok(r.ms < 5000, `answered after ${Math.round(r.ms)} ms`);
      // With no provider left, calls fail fast with a communication error.
      const again = await c.invoke('echo', ['x'], { timeoutMs: 10_000 });
      assert.equal(again.ok, false);
      assert.match(again.error!.message, /PW_ERR_(UPSTREAM_CONNECT|NO_HEALTHY_UPSTREAM)/);
    } finally {
      await c.kill();
    }
    const raw = await RawBolt.connect(pw.port('plain'));
    const rep = await raw.call(1, 'echo', ['x']);
    assert.equal(rep.status, 0x05, 'ERROR_COMM');
    raw.close();
  });

  test('retries: an idempotent method is sent again to another provider after a reset; any other is not', async () => {
    const c = await startSofaClient({ serverHost: `127.0.0.1:${pw.port('retrying')}` });
    try {
      // The first call of pairA goes to crashyA, which dies holding it; the retry goes to the normal provider.
      const r = await c.invoke('crash', [], { timeoutMs: 10_000 });
      assert.equal(r.value, 'normal', JSON.stringify(r));
    } finally {
      await c.kill();
    }
    const c2 = await startSofaClient({ serverHost: `127.0.0.1:${pw.port('noretry')}` });
    try {
      const r = await c2.invoke('crashNoRetry', [], { timeoutMs: 10_000 });
      assert.equal(r.ok, false, 'not idempotent: the reset is returned, not retried');
      assert.match(r.error!.message, /PW_ERR_UPSTREAM_RESET/);
      // A call that never reached a provider (connect refused) is retried whatever the method.
      for (let i = 0; i < 3; i++) assert.equal((await c2.invoke('crashNoRetry', [], { timeoutMs: 10_000 })).value, 'normal');
    } finally {
      await c2.kill();
    }
  });

  test('a rate limit by service answers SERVER_THREADPOOL_BUSY', async () => {
    const raw = await RawBolt.connect(pw.port('limited'));
    const replies = [];
    for (let i = 1; i <= 4; i++) replies.push(await raw.call(i, 'echo', [`r${i}`]));
    assert.deepEqual(
      replies.map((r) => r.status),
      [0, 0, 4, 4],
    );
    assert.match(replies[2]!.error!, /PW_ERR_RATE_LIMITED/);
    // Another service has its own bucket: not busy (the provider itself refuses the unknown service).
    const other = await raw.call(9, 'echo', ['x'], { service: 'com.example.Other:1.0' });
    assert.notEqual(other.status, 4);
    assert.match(other.error!, /not found service/);
    raw.close();
  });

  test('a circuit breaker opens after consecutive failures and fails fast', async () => {
    const raw = await RawBolt.connect(pw.port('breaker'));
    const statuses: number[] = [];
    const errors: string[] = [];
    for (let i = 1; i <= 4; i++) {
      const r = await raw.call(i, 'echo', ['x']);
      statuses.push(r.status);
      errors.push(r.error ?? '');
    }
    assert.deepEqual(statuses.slice(0, 2), [0x05, 0x05]);
    assert.deepEqual(statuses.slice(2), [0x04, 0x04]);
    assert.match(errors[3]!, /PW_ERR_CIRCUIT_OPEN/);
    raw.close();
  });
});
