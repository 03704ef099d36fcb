/**
 * Bolt providers from the SOFARPC ZooKeeper registry: sofa-rpc-node servers
 * (child processes) register themselves in a ZooKeeper started here, Portway
 * watches /sofa-rpc/<service>/providers, and sofa-rpc-node clients call
 * Portway (serverHost) or, for comparison, find the providers themselves
 * through the same registry.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPortway, type InProcess } from '../helpers/portway';
import { endpointsAre } from '../helpers/discovery';
import { startZooKeeper, type ZooKeeperServer } from '../helpers/zookeeper';
import { SOFA_SERVICE, startSofaClient, startSofaServer, type SofaClient, type SofaServer } from '../helpers/sofa';

describe('bolt: providers from the SOFARPC ZooKeeper registry', { timeout: 120_000 }, () => {
  let zk: ZooKeeperServer;
  let p1: SofaServer;
  let p2: SofaServer;
  let pw: InProcess;
  let client: SofaClient;

  before(async () => {
    zk = await startZooKeeper();
    [p1, p2] = await Promise.all([startSofaServer({ name: 'zk1', zookeeper: zk.servers }), startSofaServer({ name: 'zk2', zookeeper: zk.servers })]);
    pw = await startPortway(`
listeners:
  - name: bolt
    address: 127.0.0.1:0
    protocol: bolt
    filters:
      - { type: router }
      - { type: retry, max_retries: 2, backoff: { base: 1ms, max: 5ms } }
    routes: [{ cluster: echo }]
clusters:
  - name: echo
    lb: round_robin
    discovery: { type: zookeeper, servers: "${zk.servers}", service: ${SOFA_SERVICE}, layout: sofarpc, session_timeout: 4s }
`);
    await endpointsAre(pw, [p1.address, p2.address], { cluster: 'echo', ms: 15_000 });
    client = await startSofaClient({ serverHost: `127.0.0.1:${pw.port('bolt')}` });
  });

  after(async () => {
    await client?.kill();
    await pw?.stop();
    await Promise.all([p1?.kill(), p2?.kill()]);
    await zk?.close();
  });

  test('calls through Portway reach every registered provider', async () => {
    const names = new Set<unknown>();
    for (let i = 0; i < 6; i++) {
      const r = await client.invoke('whoami', []);
      assert.ok(r.ok, JSON.stringify(r));
      names.add(r.value);
    }
    assert.deepEqual([...names].sort(), ['zk1', 'zk2']);
  });

  test('a sofa-rpc-node client subscribing to the same registry sees the same providers', async () => {
    const direct = await startSofaClient({ zookeeper: zk.servers });
    try {
      const r = await direct.invoke('echo', ['via registry']);
      assert.equal(r.value, 'via registry');
    } finally {
      await direct.kill();
    }
  });

  test('a provider that registers later is used; one that dies is dropped, and calls keep working meanwhile', async () => {
    const p3 = await startSofaServer({ name: 'zk3', zookeeper: zk.servers });
    try {
      await endpointsAre(pw, [p1.address, p2.address, p3.address], { cluster: 'echo', ms: 15_000 });
      const names = new Set<unknown>();
      for (let i = 0; i < 9; i++) names.add((await client.invoke('whoami', [])).value);
      assert.ok(names.has('zk3'), [...names].join(','));
    } finally {
      await p3.kill();
    }
    // Its ephemeral node stays until its session expires; calls that find it refused are retried elsewhere.
    for (let i = 0; i < 6; i++) {
      const r = await client.invoke('echo', [i]);
      assert.equal(r.value, i, JSON.stringify(r));
    }
    await endpointsAre(pw, [p1.address, p2.address], { cluster: 'echo', ms: 30_000 });
  });
});
