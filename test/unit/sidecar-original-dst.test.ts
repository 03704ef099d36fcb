import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { decodeSockaddr, plainIp } from '../../src/sidecar/original-dst';
import { OriginalDstTracker } from '../../src/sidecar/destinations';
import { MetricsRegistry } from '../../src/metrics';
import { createLogger } from '../../src/logger';
import { builtins } from '../../src/builtins';
import { loadConfigText } from '../../src/config/load';
import { ConfigError } from '../../src/config/validate';

describe('SO_ORIGINAL_DST decoding', () => {
  test('sockaddr_in: family little-endian, port big-endian', () => {
    const b = Buffer.alloc(28);
    b.writeUInt16LE(2, 0);
    b.writeUInt16BE(6379, 2);
    b.set([10, 200, 0, 2], 4);
    assert.deepEqual(decodeSockaddr(b), { ip: '10.200.0.2', port: 6379, family: 4 });
  });

  test('sockaddr_in6: compressed text, v4-mapped dotted', () => {
    const b = Buffer.alloc(28);
    b.writeUInt16LE(10, 0);
    b.writeUInt16BE(9092, 2);
    Buffer.from('fd000000000000000000000000000002', 'hex').copy(b, 8);
    assert.deepEqual(decodeSockaddr(b), { ip: 'fd00::2', port: 9092, family: 6 });
    Buffer.from('00000000000000000000ffff0a000001', 'hex').copy(b, 8);
    assert.equal(decodeSockaddr(b)!.ip, '::ffff:10.0.0.1');
    Buffer.from('20010db8000000010000000000000001', 'hex').copy(b, 8);
    assert.equal(decodeSockaddr(b)!.ip, '2001:db8:0:1::1');
    b.writeUInt16LE(1, 0);
    assert.equal(decodeSockaddr(b), null);
  });

  test('plainIp strips the v4-mapped prefix only', () => {
    assert.equal(plainIp('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(plainIp('::1'), '::1');
  });
});

describe('original destination tracker', () => {
  test('lookup by client address and port, chains when ports collide, release removes exactly one', () => {
    const t = new OriginalDstTracker('l', new MetricsRegistry(), createLogger('silent'));
    const add = (addr: string, port: number, ip: string) => {
      const e = { clientAddress: addr, clientPort: port, ip, port: 80, text: `${ip}:80`, portText: '80', next: null };
      (t as unknown as { byPort: Map<number, typeof e> }).byPort.set(port, { ...e, next: (t as unknown as { byPort: Map<number, typeof e> }).byPort.get(port) ?? null } as typeof e);
      return (t as unknown as { byPort: Map<number, typeof e> }).byPort.get(port)!;
    };
    const a = add('10.0.0.1', 5000, '1.1.1.1');
    const b = add('10.0.0.2', 5000, '2.2.2.2');
    t.size = 2;
    assert.equal(t.lookup('10.0.0.1', 5000)!.ip, '1.1.1.1');
    assert.equal(t.lookup('10.0.0.2', 5000)!.ip, '2.2.2.2');
    assert.equal(t.lookup('10.0.0.3', 5000), null);
    t.release(b);
    assert.equal(t.lookup('10.0.0.2', 5000), null);
    assert.equal(t.lookup('10.0.0.1', 5000)!.ip, '1.1.1.1');
    t.release(a);
    assert.equal(t.lookup('10.0.0.1', 5000), null);
    assert.equal(t.size, 0);
  });
});

describe('original_dst config', () => {
  const reg = builtins().registries;
  test('routes may match original_dst attributes only on an original_dst listener', () => {
    const ok = loadConfigText(
      `
listeners:
  - name: out
    address: 127.0.0.1:0
    protocol: tcp
    original_dst: true
    routes:
      - { match: { attributes: { original_dst_port: { exact: "6379" } } }, cluster: passthrough }
clusters:
  - { name: passthrough, original_dst: true }
`,
      reg,
    );
    assert.deepEqual(ok.listeners[0]!.originalDst, { direct: 'refuse' });
    assert.equal(ok.clusters[0]!.originalDst, true);
    assert.throws(
      () =>
        loadConfigText(
          `
listeners:
  - name: out
    address: 127.0.0.1:0
    protocol: tcp
    routes: [{ match: { attributes: { original_dst_ip: { exact: "1.2.3.4" } } }, cluster: p }]
clusters: [{ name: p, endpoints: ["127.0.0.1:1"] }]
`,
          reg,
        ),
      (e: unknown) => e instanceof ConfigError && e.issues.some((i) => /original_dst_ip/.test(i.path)),
    );
  });

  test('an original_dst cluster takes no endpoints', () => {
    assert.throws(
      () => loadConfigText(`clusters: [{ name: p, original_dst: true, endpoints: ["127.0.0.1:1"] }]\n`, reg),
      (e: unknown) => e instanceof ConfigError && e.issues.some((i) => i.path === 'clusters[0].original_dst' && /takes no endpoints/.test(i.message)),
    );
  });
});
