import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { type InProcess } from '../helpers/portway';
import { waitFor, type TestServer } from '../helpers/net';
import { namedEchoes, reached, cluster, endpointsAre, startDiscovered, loadDiscoveryConfig } from '../helpers/discovery';
import { startSrvDns, type SrvDnsServer } from '../helpers/dns';
import { srvToEndpoints } from '../../src/routing/discovery/dns-srv';

const NAME = '_echo._tcp.portway.test';

describe('dns_srv discovery', { timeout: 120_000 }, () => {
  let dns: SrvDnsServer;
  let a: TestServer, b: TestServer, c: TestServer;
  let pw: InProcess;

  before(async () => {
    [a, b, c] = await namedEchoes();
    dns = await startSrvDns();
    // Targets are host names the cluster resolves itself: "localhost" through the system resolver.
    dns.set(NAME, [{ priority: 10, weight: 5, port: a.port, target: 'localhost' }]);
    pw = await startDiscovered(`{ type: dns_srv, name: ${NAME}, resolver: "${dns.address}", refresh: 150ms, timeout: 300ms }`, { lb: 'weighted' });
  });
  after(async () => {
    await pw.stop();
    await dns.stop();
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  test('the initial SRV answer becomes the endpoint list; targets stay host names', async () => {
    const cl = await cluster(pw);
    assert.equal(cl.discovery.type, 'dns_srv');
    assert.equal(cl.discovery.state, 'ok');
    assert.equal(cl.discovery.detail.resolver[0], dns.address);
    assert.equal(cl.endpoints.length, 1);
    const ep = cl.endpoints[0];
    assert.equal(ep.address, a.address);
    assert.equal(ep.configured, `localhost:${a.port}`);
    assert.equal(ep.weight, 5);
    assert.deepEqual(ep.metadata, { priority: '10', srv_weight: '5' });
    assert.deepEqual(await reached(pw.port('main'), 3), ['a']);
  });

  test('a refresh that changes the set: records added, then removed', async () => {
    dns.set(NAME, [
      { priority: 10, weight: 5, port: a.port, target: 'localhost' },
      { priority: 10, weight: 0, port: b.port, target: '127.0.0.1' },
      // A higher priority value is a backup: not used while the lowest one has records.
      { priority: 20, weight: 1, port: c.port, target: 'localhost' },
    ]);
    let cl = await endpointsAre(pw, [a.address, b.address]);
    assert.equal(cl.endpoints.find((e: { address: string }) => e.address === b.address).weight, 1, 'SRV weight 0 counts as 1');
    assert.deepEqual(await reached(pw.port('main'), 12), ['a', 'b']);

    dns.set(NAME, [
      { priority: 10, weight: 1, port: b.port, target: '127.0.0.1' },
      { priority: 10, weight: 1, port: c.port, target: 'localhost' },
    ]);
    cl = await endpointsAre(pw, [b.address, c.address]);
    assert.deepEqual(await reached(pw.port('main'), 4), ['b', 'c']);
  });

  test('the DNS server going away keeps the last list (stale in /clusters); its return resumes updates', async () => {
    await dns.stop();
    const stale = await waitFor(async () => {
      const x = await cluster(pw);
      return x.discovery.state === 'stale' ? x : null;
    }, 5000, 'stale');
    assert.match(stale.discovery.error, /SRV lookup of _echo\._tcp\.portway\.test: /);
    assert.deepEqual(await reached(pw.port('main'), 4), ['b', 'c']);

    dns.set(NAME, [{ priority: 1, weight: 1, port: a.port, target: 'localhost' }]);
    await dns.start();
    const cl = await endpointsAre(pw, [a.address]);
    await waitFor(async () => (await cluster(pw)).discovery.state === 'ok', 5000, 'ok again');
    assert.equal((await cluster(pw)).discovery.error, null);
    assert.ok(cl.discovery.last_update);
    assert.deepEqual(await reached(pw.port('main'), 2), ['a']);
  });

  test('an authoritative "no such name" is an empty list, not an error', async () => {
    dns.delete(NAME);
    const cl = await endpointsAre(pw, []);
    assert.equal(cl.discovery.state, 'ok');
    dns.set(NAME, [{ port: c.port, target: 'localhost' }]);
    await endpointsAre(pw, [c.address]);
    assert.deepEqual(await reached(pw.port('main'), 2), ['c']);
  });

  test('no answer at startup: the cluster starts empty after initial_timeout, status says starting and why', async () => {
    const down = await startSrvDns();
    await down.stop(); // a port nothing listens on
    const p = await startDiscovered(`{ type: dns_srv, name: ${NAME}, resolver: "${down.address}", refresh: 100ms, timeout: 100ms, initial_timeout: 300ms }`);
    try {
      const cl = await cluster(p);
      assert.equal(cl.discovery.state, 'starting');
      assert.match(cl.discovery.error, /ECONNREFUSED/);
      assert.equal(cl.discovery.last_update, null);
      assert.deepEqual(cl.endpoints, []);
      // The first answer fills the cluster.
      down.set(NAME, [{ port: a.port, target: 'localhost' }]);
      await down.start();
      await endpointsAre(p, [a.address]);
      assert.deepEqual(await reached(p.port('main'), 1), ['a']);
    } finally {
      await p.stop();
      await down.stop();
    }
  });

  test('record mapping and config validation', () => {
    assert.deepEqual(
      srvToEndpoints(
        [
          { name: 'x.example.', port: 80, priority: 0, weight: 60000 },
          { name: 'x.example', port: 80, priority: 0, weight: 3 },
          { name: '.', port: 0, priority: 0, weight: 1 },
          { name: 'y.example', port: 81, priority: 1, weight: 1 },
        ],
        'all',
      ).map((e) => `${e.address}/${e.weight}`),
      ['x.example:80/60000', 'y.example:81/1'],
    );
    const load = (extra: string) => loadDiscoveryConfig('dns_srv', extra);
    assert.throws(() => load('name: _x._tcp.example, resolver: "dns.example:53"'), /clusters\[0\]\.discovery\.resolver: 'dns\.example:53' is not an IP address/);
    assert.throws(() => load('name: _x._tcp.example, refresh: 10ms'), /discovery\.refresh: must be at least 100ms/);
    assert.throws(() => load('resolver: 127.0.0.1'), /discovery\.name: is required/);
    assert.throws(() => load('name: x, priorities: first'), /discovery\.priorities: must be one of: lowest, all/);
    const ok = load('name: _x._tcp.example, resolver: ["127.0.0.1:5353", "[::1]:53"]');
    assert.deepEqual(ok.clusters[0]!.discovery!.config, {
      name: '_x._tcp.example',
      resolver: ['127.0.0.1:5353', '[::1]:53'],
      refresh: '30s',
      timeout: '5s',
      priorities: 'lowest',
    });
  });
});
