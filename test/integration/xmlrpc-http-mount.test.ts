/**
 * The XML-RPC gateway mounted on a path of an HTTP listener (route handler
 * `xmlrpc`): XML-RPC calls on /RPC2, ordinary proxying on the other paths of
 * the same port.
 */
process.env.TZ = 'UTC';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as xmlrpc from 'xmlrpc';
import { request } from 'undici';
import { startPortway, type InProcess } from '../helpers/portway';
import { startJsonService, startXmlRpcServer, type Peer } from '../fixtures/xmlrpc/peers';
import { loadConfigText } from '../../src/config/load';
import { ConfigError } from '../../src/config/validate';
import { builtins } from '../../src/builtins';

let legacy: Peer;
let json: Peer;
let pw: InProcess;
let client: xmlrpc.Client;

const yaml = () => `
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    filters:
      - { type: timeout, timeout: 2s }
    options:
      routes:
        - path_prefix: /RPC2
          handler: xmlrpc
          handler_options:
            methods: [{ prefix: "billing.", cluster: json }]
            default_cluster: legacy
            upstreams: { json: { type: http_json, base_path: /api } }
        - { path_prefix: /api/, cluster: json }
clusters:
  - { name: legacy, endpoints: ["127.0.0.1:${legacy.port}"] }
  - { name: json, endpoints: ["127.0.0.1:${json.port}"] }
`;

before(async () => {
  [legacy, json] = await Promise.all([startXmlRpcServer(), startJsonService()]);
  pw = await startPortway(yaml());
  client = xmlrpc.createClient({ host: '127.0.0.1', port: pw.port('web'), path: '/RPC2' });
});

after(async () => {
  await pw?.stop();
  await Promise.all([legacy?.close(), json?.close()]);
});

function call(method: string, params: unknown[]): Promise<any> {
  return new Promise((r, j) => client.methodCall(method, params, (e: any, v: any) => (e ? j(e) : r(v))));
}

test('XML-RPC on /RPC2 of the HTTP port: passthrough and translation; other paths proxied', async () => {
  assert.deepEqual(await call('legacy.echo', [{ a: [1, 'x'], t: new Date(Date.UTC(2024, 0, 1)) }]), { a: [1, 'x'], t: new Date(Date.UTC(2024, 0, 1)) });
  assert.equal(await call('billing.add', [40, 2]), 42);
  await assert.rejects(call('billing.fail', []), (e: any) => e.faultCode === 42);
  const r = await request(`http://127.0.0.1:${pw.port('web')}/api/billing/add`, { method: 'POST', body: '[1,2]', headers: { 'content-type': 'application/json' } });
  assert.equal(r.statusCode, 200);
  assert.equal(await r.body.text(), '3');
  const bad = await request(`http://127.0.0.1:${pw.port('web')}/RPC2`, { method: 'POST', body: '<!DOCTYPE x [<!ENTITY a "b">]><methodCall/>' });
  assert.equal(bad.statusCode, 200);
  assert.match(await bad.body.text(), /<int>-32700<\/int>/);
});

test('handler_options are checked like an xmlrpc listener\'s options', () => {
  const text = yaml().replace('default_cluster: legacy', 'default_cluster: nope').replace('methods: [{ prefix: "billing.", cluster: json }]', 'methods: []');
  assert.throws(
    () => loadConfigText(text, builtins().registries),
    (e: unknown) => e instanceof ConfigError && e.issues.some((i) => /handler_options\.default_cluster/.test(i.path) && /unknown cluster 'nope'/.test(i.message)),
  );
});
