/** The xmlrpc listener's options: schema errors and semantic checks come back with their paths. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load';
import { ConfigError } from '../../src/config/validate';
import { builtins } from '../../src/builtins';
import { normalizeOptions } from '../../src/protocols/xmlrpc/options';
import { ECHO_PROTO } from '../fixtures/xmlrpc/peers';

const reg = builtins().registries;

function issues(options: string): { path: string; message: string }[] {
  const text = `listeners:\n  - name: x\n    address: 127.0.0.1:0\n    protocol: xmlrpc\n    options:\n${options}\nclusters:\n  - { name: a, endpoints: ["127.0.0.1:1"] }\n`;
  try {
    loadConfigText(text, reg);
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
}

test('a valid gateway config loads', () => {
  assert.deepEqual(
    issues(`      methods: [{ prefix: "billing.*", cluster: a }]\n      default_cluster: a\n      upstreams:\n        a: { type: grpc, proto: ${ECHO_PROTO}, services: { echo: portway.test.Echo } }`),
    [],
  );
});

test('unknown clusters, bad prefixes, unknown upstream keys and .proto problems are reported at their paths', () => {
  const got = issues(
    `      methods: [{ prefix: "a*b", cluster: nope }]\n      default_cluster: gone\n      upstreams:\n        a: { type: grpc, proto: ${ECHO_PROTO}, services: { echo: portway.test.Nope } }\n        b: { type: http_json }`,
  );
  const paths = got.map((i) => `${i.path}: ${i.message}`).join('\n');
  assert.match(paths, /listeners\[0\]\.options\.methods\[0\]\.cluster: unknown cluster 'nope'/);
  assert.match(paths, /listeners\[0\]\.options\.methods\[0\]\.prefix: '\*' is only allowed at the end/);
  assert.match(paths, /listeners\[0\]\.options\.default_cluster: unknown cluster 'gone'/);
  assert.match(paths, /listeners\[0\]\.options\.upstreams\.a: services\.echo: no gRPC service 'portway\.test\.Nope'/);
  assert.match(paths, /listeners\[0\]\.options\.upstreams\.b: unknown cluster 'b'/);
  assert.ok(issues('      upstreams:\n        a: { type: soap }').length > 0);
  assert.ok(issues('      max_body_bytes: 10').some((i) => i.path.endsWith('max_body_bytes')));
});

test('normalized options: longest prefix first, trailing * dropped, idempotent globs', () => {
  const o = normalizeOptions({ methods: [{ prefix: 'a.', cluster: 'x' }, { prefix: 'a.b.*', cluster: 'y' }], idempotent: ['*.get*', 'system.listMethods'] });
  assert.deepEqual(o.methodRules, [{ prefix: 'a.b.', cluster: 'y' }, { prefix: 'a.', cluster: 'x' }]);
  assert.ok(o.idempotent!.test('users.getName'));
  assert.ok(o.idempotent!.test('system.listMethods'));
  assert.ok(!o.idempotent!.test('system.multicall'));
  assert.ok(!o.idempotent!.test('users.set'));
  assert.equal(o.timeoutMs, 30_000);
  assert.equal(o.maxBodyBytes, 1 << 20);
});
