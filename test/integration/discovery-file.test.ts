import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, rmSync, symlinkSync, mkdirSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, type InProcess } from '../helpers/portway';
import { waitFor, type TestServer } from '../helpers/net';
import { namedEchoes, reached, cluster, endpointsAre, startDiscovered, loadDiscoveryConfig } from '../helpers/discovery';
import { parseEndpointFile } from '../../src/routing/discovery/file';

/** Writes a file the way config managers do: a temp file renamed over the old one. */
function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

describe('file discovery', { timeout: 120_000 }, () => {
  const dir = tempDir('portway-file-disc-');
  const file = join(dir, 'endpoints.yaml');
  let a: TestServer, b: TestServer, c: TestServer;
  let pw: InProcess;

  before(async () => {
    [a, b, c] = await namedEchoes();
    writeFileSync(file, `- ${a.address}\n`);
    pw = await startDiscovered(`{ type: file, path: ${file}, debounce: 30ms, poll: 200ms }`);
  });
  after(async () => {
    await pw.stop();
    await Promise.all([a.close(), b.close(), c.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('the initial list is used before the proxy accepts traffic', async () => {
    // startPortway resolves after the cluster is ready: no waiting here.
    const cl = await cluster(pw);
    assert.deepEqual(cl.endpoints.map((e: { address: string }) => e.address), [a.address]);
    assert.equal(cl.discovery.type, 'file');
    assert.equal(cl.discovery.state, 'ok');
    assert.equal(cl.discovery.detail.path, file);
    assert.equal(cl.discovery.detail.watching, true);
    assert.deepEqual(await reached(pw.port('main'), 3), ['a']);
  });

  test('endpoints added and removed in the file reach the cluster', async () => {
    writeAtomic(file, `endpoints:\n  - ${a.address}\n  - { address: "${b.address}", weight: 3, metadata: { zone: z1, canary: true } }\n`);
    const cl = await endpointsAre(pw, [a.address, b.address]);
    const eb = cl.endpoints.find((e: { address: string }) => e.address === b.address);
    assert.equal(eb.weight, 3);
    assert.deepEqual(eb.metadata, { canary: 'true', zone: 'z1' });
    assert.deepEqual(await reached(pw.port('main'), 4), ['a', 'b']);

    // Written in place (truncate + write), JSON this time.
    writeFileSync(file, JSON.stringify([b.address]));
    await endpointsAre(pw, [b.address]);
    assert.deepEqual(await reached(pw.port('main'), 3), ['b']);
  });

  test('a bad file keeps the last good list and says why in /clusters', async () => {
    writeFileSync(file, `- ${a.address}\n- [unclosed\n`);
    let cl = await waitFor(async () => {
      const x = await cluster(pw);
      return x.discovery.state === 'stale' ? x : null;
    }, 5000, 'stale after a syntax error');
    assert.match(cl.discovery.error, /line \d+, column \d+/);
    assert.deepEqual(cl.endpoints.map((e: { address: string }) => e.address), [b.address]);
    assert.deepEqual(await reached(pw.port('main'), 2), ['b']);

    writeFileSync(file, `- ${a.address}\n- { address: "${c.address}", wieght: 2 }\n- 127.0.0.1:0\n`);
    cl = await waitFor(async () => {
      const x = await cluster(pw);
      return /wieght/.test(x.discovery.error ?? '') ? x : null;
    }, 5000, 'the bad entries reported');
    assert.match(cl.discovery.error, /\[1\]: unknown key 'wieght'/);
    assert.match(cl.discovery.error, /\[2\]: port 0/);
    assert.equal(cl.discovery.state, 'stale');
    assert.deepEqual(await reached(pw.port('main'), 2), ['b']);

    unlinkSync(file);
    cl = await waitFor(async () => {
      const x = await cluster(pw);
      return /no such file/.test(x.discovery.error ?? '') ? x : null;
    }, 5000, 'the missing file reported');
    assert.deepEqual(await reached(pw.port('main'), 2), ['b']);
  });

  test('a good file again resumes updates', async () => {
    writeAtomic(file, `endpoints: [${a.address}, ${c.address}]\n`);
    const cl = await endpointsAre(pw, [a.address, c.address]);
    assert.equal(cl.discovery.state, 'ok');
    assert.equal(cl.discovery.error, null);
    assert.deepEqual(await reached(pw.port('main'), 4), ['a', 'c']);
  });

  test('a symlink swap, as Kubernetes updates a mounted ConfigMap, is noticed', async () => {
    // dir/cm/..data -> ..v1 ; dir/cm/endpoints.yaml -> ..data/endpoints.yaml
    const cm = join(dir, 'cm');
    mkdirSync(join(cm, '..v1'), { recursive: true });
    mkdirSync(join(cm, '..v2'), { recursive: true });
    writeFileSync(join(cm, '..v1', 'endpoints.yaml'), `- ${a.address}\n`);
    writeFileSync(join(cm, '..v2', 'endpoints.yaml'), `- ${c.address}\n`);
    symlinkSync('..v1', join(cm, '..data'));
    symlinkSync('..data/endpoints.yaml', join(cm, 'endpoints.yaml'));
    const p = await startDiscovered(`{ type: file, path: ${join(cm, 'endpoints.yaml')}, debounce: 30ms, poll: 0 }`);
    try {
      assert.deepEqual(await reached(p.port('main'), 2), ['a']);
      symlinkSync('..v2', join(cm, '..data_tmp'));
      renameSync(join(cm, '..data_tmp'), join(cm, '..data'));
      await endpointsAre(p, [c.address]);
      assert.deepEqual(await reached(p.port('main'), 2), ['c']);
    } finally {
      await p.stop();
    }
  });

  test('the file formats, and config validation of the source', () => {
    assert.deepEqual(parseEndpointFile('[]'), []);
    assert.match(String(parseEndpointFile('')), /empty/);
    assert.match(String(parseEndpointFile('{endpoints: [a:1], extra: 1}')), /unknown top-level key 'extra'/);
    assert.match(String(parseEndpointFile('- { address: "h:1", weight: 0 }')), /weight must be a positive integer/);
    assert.deepEqual(parseEndpointFile('- { host: "::1", port: 80, metadata: { v: 2 } }'), [
      { address: '[::1]:80', host: '::1', port: 80, weight: 1, metadata: { v: '2' } },
    ]);
    const bad = (extra: string) =>
      assert.throws(
        () => loadDiscoveryConfig('file', extra),
        (err: Error) => {
          assert.match(err.message, /clusters\[0\]\.discovery/);
          return true;
        },
      );
    bad('pathh: /x');
    bad('path: /x, poll: 5ms');
    bad('path: /x, debounce: soon');
    const ok = loadDiscoveryConfig('file', 'path: /x');
    assert.deepEqual(ok.clusters[0]!.discovery!.config, { path: '/x', debounce: '100ms', poll: '5s' });
  });
});
