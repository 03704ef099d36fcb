import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { type InProcess } from '../helpers/portway';
import { waitFor, sleep, type TestServer } from '../helpers/net';
import { namedEchoes, reached, cluster, endpointsAre, startDiscovered, loadDiscoveryConfig } from '../helpers/discovery';
import { startEtcd, type EtcdServer } from '../helpers/etcd';
import { TcpRelay } from '../helpers/zookeeper';
import { createLogger } from '../../src/logger';
import type { EndpointConfig } from '../../src/config/types';
import { endpointFromEtcdValue, etcdDiscovery } from '../../src/routing/discovery/etcd';

const PREFIX = '/services/echo/';

describe('etcd discovery', { timeout: 120_000 }, () => {
  let etcd: EtcdServer;
  let a: TestServer, b: TestServer, c: TestServer;
  let pw: InProcess;

  before(async () => {
    etcd = await startEtcd();
    [a, b, c] = await namedEchoes();
    await etcd.put(`${PREFIX}a`, JSON.stringify({ address: a.address, weight: 2, metadata: { zone: 'z1', version: 3 } }));
    // Outside the prefix: not ours.
    await etcd.put('/services/echoes/x', c.address);
    pw = await startDiscovered(`{ type: etcd, endpoints: ["${etcd.url}"], prefix: ${PREFIX} }`);
  });
  after(async () => {
    await pw?.stop();
    await Promise.all([a?.close(), b?.close(), c?.close()]);
    await etcd?.close();
  });

  test('the keys under the prefix are the initial list', async () => {
    const cl = await cluster(pw);
    assert.equal(cl.discovery.type, 'etcd');
    assert.equal(cl.discovery.state, 'ok');
    assert.equal(cl.discovery.detail.prefix, PREFIX);
    assert.deepEqual(cl.discovery.detail.endpoints_url, [etcd.url]);
    assert.match(cl.discovery.detail.revision, /^[0-9]+$/);
    assert.equal(cl.endpoints.length, 1);
    assert.equal(cl.endpoints[0].address, a.address);
    assert.equal(cl.endpoints[0].weight, 2);
    assert.deepEqual(cl.endpoints[0].metadata, { version: '3', zone: 'z1' });
    assert.deepEqual(await reached(pw.port('main'), 3), ['a']);
  });

  test('keys put and deleted while watching are followed; a bad value is reported and ignored', async () => {
    await etcd.put(`${PREFIX}b`, b.address);
    await etcd.put(`${PREFIX}c`, JSON.stringify({ host: '127.0.0.1', port: c.port }));
    await etcd.put(`${PREFIX}junk`, '{"address": 42}');
    let cl = await endpointsAre(pw, [a.address, b.address, c.address], { ms: 10_000 });
    await waitFor(async () => (await cluster(pw)).discovery.detail.rejected?.[`${PREFIX}junk`], 5000, 'the bad key reported');
    cl = await cluster(pw);
    assert.match(cl.discovery.detail.rejected[`${PREFIX}junk`], /address must be/);
    assert.equal(cl.discovery.state, 'ok');
    assert.deepEqual(await reached(pw.port('main'), 6), ['a', 'b', 'c']);

    await etcd.del(`${PREFIX}a`);
    await etcd.put(`${PREFIX}b`, JSON.stringify({ address: b.address, weight: 5 }));
    cl = await endpointsAre(pw, [b.address, c.address], { ms: 10_000 });
    await waitFor(async () => (await cluster(pw)).endpoints.find((e: { address: string }) => e.address === b.address).weight === 5, 5000, 'b reweighted');
    assert.deepEqual(await reached(pw.port('main'), 4), ['b', 'c']);
    await etcd.del(`${PREFIX}junk`);
    await waitFor(async () => (await cluster(pw)).discovery.detail.rejected === undefined, 5000, 'the bad key gone');
  });

  test('etcd down: the last list stays (stale in /clusters) and traffic flows; back up: updates resume', async () => {
    await etcd.stop();
    const stale = await waitFor(async () => {
      const x = await cluster(pw);
      return x.discovery.state === 'stale' ? x : null;
    }, 10_000, 'stale');
    assert.match(stale.discovery.error, /^etcd (watch|read) of \/services\/echo\/: /);
    assert.deepEqual(stale.endpoints.map((e: { address: string }) => e.address).sort(), [b.address, c.address].sort());
    assert.deepEqual(await reached(pw.port('main'), 4), ['b', 'c']);
    await sleep(1500); // a few failed reconnects

    await etcd.start();
    await waitFor(async () => (await cluster(pw)).discovery.state === 'ok', 15_000, 'ok again');
    await etcd.put(`${PREFIX}a`, a.address);
    await etcd.del(`${PREFIX}c`);
    const cl = await endpointsAre(pw, [a.address, b.address], { ms: 10_000 });
    assert.equal(cl.discovery.error, null);
    assert.deepEqual(await reached(pw.port('main'), 4), ['a', 'b']);
  });

  /** Runs the source on its own (no proxy), through a relay that can cut it off from etcd. */
  function directSource(url: string): { source: ReturnType<typeof etcdDiscovery.create>; lists: EndpointConfig[][] } {
    const lists: EndpointConfig[][] = [];
    const source = etcdDiscovery.create({ endpoints: [url], prefix: PREFIX }, { cluster: 'direct', logger: createLogger(process.env.PORTWAY_TEST_LOG ?? 'silent') });
    source.start((eps) => lists.push(eps));
    return { source, lists };
  }

  test('changes made while this client was cut off are all there once it is back', async () => {
    const relay = await TcpRelay.start(etcd.port);
    const { source, lists } = directSource(`http://${relay.address}`);
    try {
      await waitFor(() => lists.length > 0 && source.status().state === 'ok', 10_000, 'first list');
      assert.deepEqual(lists.at(-1)!.map((e) => e.address).sort(), [a.address, b.address].sort());
      relay.setMode('refuse');
      await waitFor(() => source.status().state === 'stale', 10_000, 'stale');
      // Meanwhile others change the registry, several times over the same keys.
      await etcd.put(`${PREFIX}c`, c.address);
      await etcd.del(`${PREFIX}a`);
      await etcd.put(`${PREFIX}b`, JSON.stringify({ address: b.address, weight: 9 }));
      await etcd.put(`${PREFIX}a`, JSON.stringify({ address: a.address, weight: 4 }));
      await etcd.del(`${PREFIX}b`);
      relay.setMode('pass');
      await waitFor(() => source.status().state === 'ok', 15_000, 'ok again');
      await waitFor(() => lists.at(-1)!.map((e) => `${e.address}/${e.weight}`).sort().join(',') === [`${a.address}/4`, `${c.address}/1`].sort().join(','), 5000, 'the registry as it is now');
      // And the watch works after the resync.
      await etcd.put(`${PREFIX}b`, b.address);
      await waitFor(() => lists.at(-1)!.length === 3, 5000, 'b again');
    } finally {
      await source.stop();
      await relay.close();
    }
  });

  test('stop() while etcd is unreachable ends all retrying', async () => {
    const relay = await TcpRelay.start(etcd.port);
    const { source } = directSource(`http://${relay.address}`);
    try {
      await waitFor(() => source.status().state === 'ok', 10_000, 'connected');
      relay.setMode('refuse');
      await waitFor(() => source.status().state === 'stale', 10_000, 'stale');
      const attempts = relay.accepted;
      await waitFor(() => relay.accepted >= attempts + 2, 10_000, 'the client retrying');
      await source.stop();
      relay.setMode('pass');
      await sleep(300);
      const after = relay.accepted;
      await sleep(2500);
      assert.equal(relay.accepted, after, 'no connection attempt after stop()');
      // A connect grpc-js had in flight when stop() closed the channel may be torn down a little later (seen once
      // under the full suite's load, still open 2.8 s after stop()); it must close, however long that takes here.
      await waitFor(() => relay.open === 0, 15_000, 'no connection left open after stop()');
    } finally {
      await relay.close();
    }
  });

  test('value formats and config validation', () => {
    assert.deepEqual(endpointFromEtcdValue(' 10.0.0.1:80 '), { address: '10.0.0.1:80', host: '10.0.0.1', port: 80, weight: 1 });
    assert.deepEqual(endpointFromEtcdValue('"h.example:81"'), { address: 'h.example:81', host: 'h.example', port: 81, weight: 1 });
    assert.deepEqual(endpointFromEtcdValue('{"address":"[::1]:82","weight":3,"metadata":{"a":"b"},"lease":"x"}'), {
      address: '[::1]:82',
      host: '::1',
      port: 82,
      weight: 3,
      metadata: { a: 'b' },
    });
    assert.match(String(endpointFromEtcdValue('{"address":')), /invalid JSON/);
    assert.match(String(endpointFromEtcdValue('{"address":"h:1","weight":-1}')), /weight/);
    assert.match(String(endpointFromEtcdValue('no-port')), /host:port/);

    const load = (extra: string) => loadDiscoveryConfig('etcd', extra);
    assert.throws(() => load('endpoints: [], prefix: /x/'), /discovery\.endpoints: must NOT have fewer than 1 items/);
    assert.throws(() => load('endpoints: ["127.0.0.1:2379"], prefix: /x/'), /discovery\.endpoints\[0\]: must be an etcd URL/);
    assert.throws(() => load('endpoints: ["http://u:secret@127.0.0.1:2379"], prefix: /x/'), /no credentials in it/);
    assert.throws(() => load('endpoints: ["http://127.0.0.1:99999"], prefix: /x/'), /discovery\.endpoints\[0\]: 'http:\/\/127\.0\.0\.1:99999' is not a valid URL/);
    assert.throws(() => load('endpoints: ["http://127.0.0.1:2379"]'), /discovery\.prefix: is required/);
    const ok = load('endpoints: ["http://127.0.0.1:2379", "https://etcd.example:2379"], prefix: /x/');
    assert.deepEqual(ok.clusters[0]!.discovery!.config, { endpoints: ['http://127.0.0.1:2379', 'https://etcd.example:2379'], prefix: '/x/' });
  });
});
