import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startPortway, type InProcess } from '../helpers/portway';
import { waitFor, sleep, type TestServer } from '../helpers/net';
import { namedEchoes, reached, cluster, endpointsAre, loadDiscoveryConfig } from '../helpers/discovery';
import { startZooKeeper, ZkTestClient, TcpRelay, type ZooKeeperServer } from '../helpers/zookeeper';
import { createLogger } from '../../src/logger';
import type { EndpointConfig } from '../../src/config/types';
import type { DiscoverySource } from '../../src/routing/discovery/source';
import { parseProviderNode, providersPath, zookeeperDiscovery } from '../../src/routing/discovery/zookeeper';

// The real SOFARPC Node.js server and its ZooKeeper registry (devDependency, no type definitions).
const sofa = require('sofa-rpc-node') as { server: { RpcServer: any }; registry: { ZookeeperRegistry: any } };

const SOFA_SERVICE = 'com.example.EchoService';
const DUBBO_SERVICE = 'org.example.DemoService';
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

/**
 * A SOFA Bolt v1 heartbeat through the proxy (22 bytes: proto 1, type 1
 * request, cmdcode 0, ver2, requestId, codec, timeout, three zero lengths);
 * the sofa-rpc-node server answers with a 20-byte heartbeat ack carrying the
 * same request id.
 */
function boltHeartbeat(port: number, id: number): Promise<Buffer> {
  const req = Buffer.alloc(22);
  req.writeUInt8(1, 0);
  req.writeUInt8(1, 1);
  req.writeUInt16BE(0, 2);
  req.writeUInt8(1, 4);
  req.writeUInt32BE(id, 5);
  req.writeUInt8(1, 9);
  req.writeUInt32BE(3000, 10);
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let got = Buffer.alloc(0);
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`no heartbeat ack (got ${got.length} bytes)`));
    }, 3000);
    s.on('connect', () => s.write(req));
    s.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.length >= 20) {
        clearTimeout(t);
        s.destroy();
        resolve(got.subarray(0, 20));
      }
    });
    s.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

async function assertHeartbeat(port: number, id: number): Promise<void> {
  const ack = await boltHeartbeat(port, id);
  assert.equal(ack[0], 1, 'bolt v1');
  assert.equal(ack[1], 0, 'a response');
  assert.equal(ack.readUInt16BE(2), 0, 'heartbeat');
  assert.equal(ack.readUInt32BE(5), id, 'same request id');
  assert.equal(ack.readUInt16BE(10), 0, 'status success');
}

interface SofaProvider {
  port: number;
  address: string;
  close(): Promise<void>;
}

/** A real sofa-rpc-node server publishing itself through its own ZooKeeper registry, as applications do. */
async function sofaProvider(servers: string): Promise<SofaProvider> {
  const registry = new sofa.registry.ZookeeperRegistry({ logger: quiet, address: servers });
  const server = new sofa.server.RpcServer({ logger: quiet, registry, port: 0, publishAddress: '127.0.0.1', appName: 'portway-test' });
  server.addService({ interfaceName: SOFA_SERVICE }, { async echo(s: string) { return s; } });
  await server.start();
  await server.publish();
  const port: number = server.publishPort;
  return {
    port,
    address: `127.0.0.1:${port}`,
    close: async () => {
      await server.close();
      await registry.close();
    },
  };
}

function dubboNode(host: string, port: number, params: Record<string, string>): string {
  const q = new URLSearchParams({ anyhost: 'true', application: 'demo-provider', interface: DUBBO_SERVICE, methods: 'sayHello', side: 'provider', ...params });
  return encodeURIComponent(`dubbo://${host}:${port}/${DUBBO_SERVICE}?${q.toString()}`);
}

describe('zookeeper discovery', { timeout: 120_000 }, () => {
  let zk: ZooKeeperServer;
  let writer: ZkTestClient;
  let a: TestServer, b: TestServer, c: TestServer;
  let s1: SofaProvider;
  let pw: InProcess;
  const dubboPath = providersPath('dubbo', DUBBO_SERVICE);

  before(async () => {
    zk = await startZooKeeper();
    [a, b, c] = await namedEchoes();
    writer = await ZkTestClient.connect(zk.servers);
    s1 = await sofaProvider(zk.servers);
    pw = await startPortway(`
listeners:
  - { name: sofa, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: sofa }] }
  - { name: dubbo, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: dubbo }] }
clusters:
  - name: sofa
    discovery: { type: zookeeper, servers: "${zk.servers}", service: ${SOFA_SERVICE}, layout: sofarpc, session_timeout: 4s }
  - name: dubbo
    lb: weighted
    discovery: { type: zookeeper, servers: "${zk.servers}", service: ${DUBBO_SERVICE}, layout: dubbo, session_timeout: 4s }
`);
  });
  after(async () => {
    await pw?.stop();
    await s1?.close();
    await writer?.close();
    await Promise.all([a?.close(), b?.close(), c?.close()]);
    await zk?.close();
  });

  test('sofarpc: the provider a sofa-rpc-node server registered is the initial list, and answers through the proxy', async () => {
    const cl = await cluster(pw, 'sofa');
    assert.equal(cl.discovery.state, 'ok');
    assert.equal(cl.discovery.detail.path, `/sofa-rpc/${SOFA_SERVICE}/providers`);
    assert.deepEqual(cl.endpoints.map((e: { address: string }) => e.address), [s1.address]);
    const ep = cl.endpoints[0];
    assert.equal(ep.weight, 100);
    assert.equal(ep.metadata.interface, SOFA_SERVICE);
    assert.equal(ep.metadata.version, '1.0');
    assert.equal(ep.metadata.group, 'SOFA');
    assert.equal(ep.metadata.serialization, 'hessian2');
    assert.equal(ep.metadata.protocol, 'bolt');
    await assertHeartbeat(pw.port('sofa'), 7);
  });

  test('sofarpc: a provider that starts is added, one that stops is removed', async () => {
    const s2 = await sofaProvider(zk.servers);
    try {
      await endpointsAre(pw, [s1.address, s2.address], { cluster: 'sofa', ms: 10_000 });
      for (let i = 0; i < 4; i++) await assertHeartbeat(pw.port('sofa'), 100 + i);
      const cl = await cluster(pw, 'sofa');
      for (const e of cl.endpoints) assert.ok(e.rq_total >= 1, `${e.address} carried traffic`);
    } finally {
      await s2.close();
    }
    await endpointsAre(pw, [s1.address], { cluster: 'sofa', ms: 10_000 });
    await assertHeartbeat(pw.port('sofa'), 200);
  });

  test('dubbo: no providers node is an empty list; providers added and removed are followed', async () => {
    let cl = await cluster(pw, 'dubbo');
    assert.equal(cl.discovery.state, 'ok');
    assert.deepEqual(cl.endpoints, []);

    const nodeA = `${dubboPath}/${dubboNode('127.0.0.1', a.port, { weight: '200', timestamp: String(Date.now()) })}`;
    await writer.create(nodeA);
    // Disabled, and not a provider: both ignored.
    await writer.create(`${dubboPath}/${dubboNode('127.0.0.1', c.port, { enabled: 'false' })}`);
    await writer.create(`${dubboPath}/${dubboNode('127.0.0.1', c.port, { category: 'configurators' })}`);
    cl = await endpointsAre(pw, [a.address], { cluster: 'dubbo', ms: 10_000 });
    assert.equal(cl.endpoints[0].weight, 200);
    assert.equal(cl.endpoints[0].metadata.path, DUBBO_SERVICE);
    assert.equal(cl.endpoints[0].metadata.protocol, 'dubbo');
    assert.deepEqual(await reached(pw.port('dubbo'), 3), ['a']);

    const nodeB = `${dubboPath}/${dubboNode('127.0.0.1', b.port, {})}`;
    await writer.create(nodeB);
    cl = await endpointsAre(pw, [a.address, b.address], { cluster: 'dubbo', ms: 10_000 });
    assert.equal(cl.endpoints.find((e: { address: string }) => e.address === b.address).weight, 100, 'dubbo default weight');
    assert.deepEqual(await reached(pw.port('dubbo'), 6), ['a', 'b']);

    await writer.remove(nodeA);
    await endpointsAre(pw, [b.address], { cluster: 'dubbo', ms: 10_000 });
    assert.deepEqual(await reached(pw.port('dubbo'), 3), ['b']);
  });

  test('garbage provider nodes do not remove healthy endpoints: they are ignored and reported', async () => {
    // State from the previous test: the dubbo cluster has provider b.
    await endpointsAre(pw, [b.address], { cluster: 'dubbo', ms: 10_000 });
    const junk = [
      'not-a-provider-url',
      encodeURIComponent('dubbo://'),
      encodeURIComponent('dubbo://127.0.0.1:notaport/x'),
      encodeURIComponent(`dubbo://127.0.0.1:99999/${DUBBO_SERVICE}?side=provider`),
    ];
    for (const j of junk) await writer.create(`${dubboPath}/${j}`);
    // The watch fired and the list was read again: the junk is reported, the healthy provider stays.
    const cl = await waitFor(
      async () => {
        const x = await cluster(pw, 'dubbo');
        return Object.keys(x.discovery.detail.rejected ?? {}).length >= 3 ? x : null;
      },
      10_000,
      'the junk nodes reported',
    );
    assert.deepEqual(
      cl.endpoints.map((e: { address: string }) => e.address),
      [b.address],
    );
    assert.equal(cl.discovery.state, 'ok');
    assert.deepEqual(await reached(pw.port('dubbo'), 3), ['b']);
    for (const j of junk) await writer.remove(`${dubboPath}/${j}`);
    await waitFor(async () => (await cluster(pw, 'dubbo')).discovery.detail.rejected === undefined, 10_000, 'the junk gone');
    await endpointsAre(pw, [b.address], { cluster: 'dubbo', ms: 10_000 });
  });

  test('ZooKeeper down: the last lists stay (stale in /clusters), traffic flows; back up: updates resume', async () => {
    await zk.stop();
    for (const name of ['sofa', 'dubbo']) {
      const cl = await waitFor(async () => {
        const x = await cluster(pw, name);
        return x.discovery.state === 'stale' ? x : null;
      }, 5000, `${name} stale`);
      assert.match(cl.discovery.error, /ZooKeeper 127\.0\.0\.1:\d+: connection lost/);
      assert.equal(cl.discovery.detail.connected, false);
    }
    assert.deepEqual((await cluster(pw, 'sofa')).endpoints.map((e: { address: string }) => e.address), [s1.address]);
    await assertHeartbeat(pw.port('sofa'), 300);
    assert.deepEqual(await reached(pw.port('dubbo'), 2), ['b']);

    await zk.start();
    for (const name of ['sofa', 'dubbo']) {
      await waitFor(async () => (await cluster(pw, name)).discovery.state === 'ok', 10_000, `${name} ok again`);
    }
    await writer.create(`${dubboPath}/${dubboNode('127.0.0.1', c.port, {})}`);
    await endpointsAre(pw, [b.address, c.address], { cluster: 'dubbo', ms: 10_000 });
    assert.deepEqual(await reached(pw.port('dubbo'), 4), ['b', 'c']);
    const s3 = await sofaProvider(zk.servers);
    try {
      await endpointsAre(pw, [s1.address, s3.address], { cluster: 'sofa', ms: 10_000 });
    } finally {
      await s3.close();
    }
    await endpointsAre(pw, [s1.address], { cluster: 'sofa', ms: 10_000 });
    assert.equal((await cluster(pw, 'sofa')).discovery.error, null);
  });

  /** Runs the source on its own (no proxy) to reach its ZooKeeper session. */
  function directSource(config: Record<string, unknown>): { source: DiscoverySource; lists: EndpointConfig[][] } {
    const lists: EndpointConfig[][] = [];
    const source = zookeeperDiscovery.create(config as never, { cluster: 'direct', logger: createLogger(process.env.PORTWAY_TEST_LOG ?? 'silent') });
    source.start((eps) => lists.push(eps));
    return { source, lists };
  }

  test('an expired session is replaced by a new one, and the watch is armed again', async () => {
    const relay = await TcpRelay.start(zk.port);
    const { source, lists } = directSource({ servers: relay.address, service: DUBBO_SERVICE, layout: 'dubbo', session_timeout: '2s' });
    try {
      await waitFor(() => lists.length > 0 && source.status().state === 'ok', 10_000, 'first list');
      const first = source.status().detail!.session;
      // Cut this client off longer than its session lives: the server expires the session meanwhile.
      relay.setMode('refuse');
      await waitFor(() => source.status().state === 'stale', 5000, 'stale');
      await sleep(3500);
      relay.setMode('pass');
      await waitFor(() => {
        const d = source.status().detail!;
        return d.connected && d.session !== first && d.sessions === 2 && source.status().state === 'ok';
      }, 15_000, 'a new session');
      const node = `${dubboPath}/${dubboNode('127.0.0.1', a.port, { weight: '7' })}`;
      await writer.create(node);
      await waitFor(() => lists.at(-1)!.some((e) => e.address === a.address && e.weight === 7), 5000, 'a change seen by the new session');
      await writer.remove(node);
      await waitFor(() => !lists.at(-1)!.some((e) => e.address === a.address), 5000, 'removal seen');
      assert.equal(source.status().state, 'ok');
    } finally {
      await source.stop();
      await relay.close();
    }
  });

  test('a server that stops answering without closing the connection is noticed (stale), and recovery too', async () => {
    const relay = await TcpRelay.start(zk.port);
    const { source, lists } = directSource({ servers: relay.address, service: DUBBO_SERVICE, layout: 'dubbo', session_timeout: '3s' });
    try {
      await waitFor(() => lists.length > 0 && source.status().state === 'ok', 10_000, 'first list');
      const known = lists.at(-1)!.map((e) => e.address).sort();
      // The server still hears the client (so it keeps the session and the connection), the client hears nothing.
      relay.setMode('mute');
      const t0 = Date.now();
      await waitFor(() => source.status().state === 'stale', 8000, 'stale while nothing answers');
      assert.ok(Date.now() - t0 < 3000, `noticed after ${Date.now() - t0} ms, within a session timeout`);
      assert.match(source.status().error ?? '', /no answer for \d+ ms/);
      relay.setMode('pass');
      await waitFor(() => source.status().state === 'ok', 15_000, 'ok once answers come back');
      assert.deepEqual(lists.at(-1)!.map((e) => e.address).sort(), known);
    } finally {
      await source.stop();
      await relay.close();
    }
  });

  test('stop() while ZooKeeper is unreachable ends the client for good', async () => {
    const relay = await TcpRelay.start(zk.port);
    const { source } = directSource({ servers: relay.address, service: DUBBO_SERVICE, layout: 'dubbo', session_timeout: '3s' });
    try {
      await waitFor(() => source.status().state === 'ok', 10_000, 'connected');
      relay.setMode('refuse');
      await waitFor(() => source.status().state === 'stale', 5000, 'stale');
      const attempts = relay.accepted;
      await waitFor(() => relay.accepted >= attempts + 2, 5000, 'the client retrying');
      await source.stop();
      relay.setMode('pass');
      // An attempt already waiting out the library's spin delay (up to 1 s) may still dial once, and is closed at once.
      await sleep(1200);
      const after = relay.accepted;
      // node-zookeeper-client alone would go on retrying every spin delay, even after close() (and connect for real now).
      await sleep(2500);
      assert.equal(relay.accepted, after, 'no connection attempt after stop()');
      assert.equal(relay.open, 0, 'no connection left open');
      assert.equal(source.status().detail!.connected, false);
    } finally {
      await relay.close();
    }
  });

  test('provider URLs and config validation', () => {
    const sofaUrl = encodeURIComponent('bolt://10.1.2.3:12200?startTime=1&pid=9&uniqueId=&weight=0&interface=x.Y&version=1.0&group=SOFA');
    assert.deepEqual(parseProviderNode(sofaUrl), {
      address: '10.1.2.3:12200',
      host: '10.1.2.3',
      port: 12200,
      weight: 1,
      metadata: { startTime: '1', pid: '9', weight: '0', interface: 'x.Y', version: '1.0', group: 'SOFA', protocol: 'bolt' },
    });
    // Java's URLEncoder: '+' for a space.
    const java = 'dubbo%3A%2F%2F%5B%3A%3A1%5D%3A20880%2Fa.B%3Fapplication%3Dmy+app%26weight%3D50';
    const ep = parseProviderNode(java) as EndpointConfig;
    assert.equal(ep.address, '[::1]:20880');
    assert.equal(ep.weight, 50);
    assert.equal(ep.metadata!.application, 'my app');
    assert.equal(parseProviderNode(java, { application: 'other' }), null);
    assert.equal(typeof parseProviderNode('not-a-url'), 'string');
    assert.equal(typeof parseProviderNode(encodeURIComponent('bolt://10.0.0.1?x=1')), 'string');
    assert.equal(providersPath('sofarpc', 'a.B', '/custom/'), '/custom/a.B/providers');

    const load = (extra: string) => loadDiscoveryConfig('zookeeper', extra);
    assert.throws(() => load('servers: "zk:2181", service: a.B, layout: eureka'), /discovery\.layout: must be one of: sofarpc, dubbo/);
    assert.throws(() => load('servers: "zk:99999", service: a.B, layout: dubbo'), /discovery\.servers: port 99999 is out of range/);
    assert.throws(() => load('servers: "zk", service: a/B, layout: dubbo'), /discovery\.service: must be a service name/);
    assert.throws(() => load('servers: "zk", service: a.B, layout: dubbo, session_timeout: 10ms'), /discovery\.session_timeout: must be at least 1s/);
    const ok = load('servers: "zk1:2181,zk2/chroot", service: a.B, layout: sofarpc, match: { version: "1.0" }');
    assert.deepEqual(ok.clusters[0]!.discovery!.config, { servers: 'zk1:2181,zk2/chroot', service: 'a.B', layout: 'sofarpc', session_timeout: '15s', match: { version: '1.0' } });
  });
});
