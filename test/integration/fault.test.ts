/**
 * fault through real TCP listeners: for L4 a request is a connection, so an
 * abort closes the connection (counted under the configured code) and a
 * delay holds back the upstream connect. Percentages 100 and 0 make every
 * case deterministic.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startPortway } from '../helpers/portway';
import { tcpServer, http, type TestServer } from '../helpers/net';

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Connects, sends `data` at once, and resolves on close with what came back. */
function exchange(port: number, data: string, localAddress?: string): Promise<{ back: string; closedAt: number }> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    let back = '';
    s.on('connect', () => s.write(data));
    s.on('data', (c: Buffer) => {
      back += c.toString();
      if (back.length >= data.length) s.destroy();
    });
    s.on('error', () => {});
    s.on('close', () => resolve({ back, closedAt: performance.now() }));
  });
}

describe('fault on a TCP listener', () => {
  let echo: TestServer;
  /** performance.now() of each upstream accept. */
  let accepted: number[] = [];

  before(async () => {
    echo = await tcpServer((s) => {
      accepted.push(performance.now());
      s.pipe(s);
    });
  });
  after(async () => {
    await echo.close();
  });

  const cluster = () => `clusters:\n  - { name: echo, endpoints: ["${echo.address}"] }\n`;
  const listener = (name: string, filter: string) =>
    `listeners:\n  - name: ${name}\n    address: 127.0.0.1:0\n    protocol: tcp\n    filters:\n      - ${filter}\n    routes: [{ cluster: echo }]\n`;

  test('abort 100%: every connection is closed without reaching the upstream, counted as PW_ERR_FAULT_ABORT', async () => {
    accepted = [];
    const p = await startPortway(listener('ab', '{ type: fault, abort: { percentage: 100 } }') + cluster());
    try {
      for (let i = 0; i < 5; i++) assert.equal((await exchange(p.port('ab'), 'hello')).back, '');
      assert.equal(accepted.length, 0);
      const m = (await http('GET', `${p.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_FAULT_ABORT",listener="ab"'), 5);
      assert.equal(metric(m, 'portway_fault_aborted_total', 'filter="fault",listener="ab"'), 5);
    } finally {
      await p.stop();
    }
  });

  test('abort with a chosen code is counted under that code', async () => {
    const p = await startPortway(listener('ab2', '{ type: fault, abort: { code: PW_ERR_UPSTREAM_RESET } }') + cluster());
    try {
      assert.equal((await exchange(p.port('ab2'), 'x')).back, '');
      const m = (await http('GET', `${p.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_UPSTREAM_RESET",listener="ab2"'), 1);
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_FAULT_ABORT",listener="ab2"'), 0);
    } finally {
      await p.stop();
    }
  });

  test('abort 0% and a non-matching client: connections pass untouched', async () => {
    const p = await startPortway(
      `listeners:
  - name: zero
    address: 127.0.0.1:0
    protocol: tcp
    filters: [{ type: fault, abort: { percentage: 0 } }]
    routes: [{ cluster: echo }]
  - name: other
    address: 127.0.0.1:0
    protocol: tcp
    filters: [{ type: fault, match: { source_cidr: ["127.0.0.2/32"] }, abort: {} }]
    routes: [{ cluster: echo }]
` + cluster(),
    );
    try {
      for (let i = 0; i < 3; i++) assert.equal((await exchange(p.port('zero'), `z${i}`)).back, `z${i}`);
      assert.equal((await exchange(p.port('other'), 'from .1')).back, 'from .1', '127.0.0.1 does not match');
      assert.equal((await exchange(p.port('other'), 'from .2', '127.0.0.2')).back, '', '127.0.0.2 matches and is aborted');
      const m = (await http('GET', `${p.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_fault_aborted_total', 'filter="fault",listener="zero"'), 0);
      assert.equal(metric(m, 'portway_fault_aborted_total', 'filter="fault",listener="other"'), 1);
    } finally {
      await p.stop();
    }
  });

  test('delay: the upstream connect happens only after the delay, and bytes sent meanwhile arrive intact', async () => {
    accepted = [];
    const delayMs = 300;
    const p = await startPortway(listener('dl', `{ type: fault, delay: { duration: ${delayMs}ms } }`) + cluster());
    try {
      const started = performance.now();
      // The client talks at once; the proxy holds the bytes until the upstream exists.
      const r = await exchange(p.port('dl'), 'sent before the upstream existed');
      assert.equal(r.back, 'sent before the upstream existed');
      assert.equal(accepted.length, 1);
      assert.ok(accepted[0]! - started >= delayMs, 'the upstream saw the connection only after the delay');
      const m = (await http('GET', `${p.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_fault_delayed_total', 'filter="fault",listener="dl"'), 1);
    } finally {
      await p.stop();
    }
  });

  test('delay then abort: the connection is closed after the delay and counted', async () => {
    accepted = [];
    const delayMs = 200;
    const p = await startPortway(listener('da', `{ type: fault, delay: { duration: ${delayMs}ms }, abort: { percentage: 100 } }`) + cluster());
    try {
      const started = performance.now();
      const r = await exchange(p.port('da'), 'x');
      assert.equal(r.back, '');
      assert.ok(r.closedAt - started >= delayMs, 'closed only after the delay');
      assert.equal(accepted.length, 0);
      const m = (await http('GET', `${p.admin}/metrics`)).body;
      assert.equal(metric(m, 'portway_downstream_errors_total', 'code="PW_ERR_FAULT_ABORT",listener="da"'), 1);
      assert.equal(metric(m, 'portway_fault_delayed_total', 'filter="fault",listener="da"'), 1);
    } finally {
      await p.stop();
    }
  });
});
