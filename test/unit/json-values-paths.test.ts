/**
 * json-values.ts takes shortcuts: JSON.stringify without a replacer when a
 * value holds no bigint and no bytes, and a walk after JSON.parse instead of
 * a reviver. These tests hold the shortcuts to the answers of the slow forms.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRpcValue, stringifyRpcValue } from '../../src/translate/json-values';
import type { RpcValue } from '../../src/translate/rpc-upstream';

test('stringify: the same text with or without bigints and bytes deep inside', () => {
  const when = new Date(Date.UTC(2024, 4, 1, 12, 0, 0));
  const plain: RpcValue = { a: [1, 'x', null, { when, n: -0.5 }], b: true, nan: NaN };
  assert.equal(stringifyRpcValue(plain), JSON.stringify(plain));
  assert.equal(stringifyRpcValue({ a: [{ deep: [2n ** 70n] }] }), '{"a":[{"deep":["1180591620717411303424"]}]}');
  assert.equal(stringifyRpcValue({ a: [{ deep: [5n] }], when }), '{"a":[{"deep":[5]}],"when":"2024-05-01T12:00:00.000Z"}');
  assert.equal(stringifyRpcValue([[{ b: Buffer.from([1, 2]) }]]), '[[{"b":{"$base64":"AQI="}}]]');
  assert.equal(stringifyRpcValue([[{ b: Buffer.from([1, 2]) }]], { bytes: 'base64', reviveDates: true }), '[[{"b":"AQI="}]]');
  assert.equal(stringifyRpcValue(undefined as unknown as RpcValue), 'null');
});

test('parse: dates and tagged bytes revived at any depth, bottom-up, __proto__ kept as data', () => {
  const v = parseRpcValue('{"a":[{"$base64":"AQI="},"2024-05-01T12:00:00Z",{"x":{"$base64":"AQI="},"y":"2024-05-01T12:00:00.250+02:00"}],"n":1}') as Record<string, unknown>;
  assert.deepEqual(v, { a: [Buffer.from([1, 2]), new Date(Date.UTC(2024, 4, 1, 12)), { x: Buffer.from([1, 2]), y: new Date(Date.UTC(2024, 4, 1, 10, 0, 0, 250)) }], n: 1 });
  const p = parseRpcValue('{"__proto__":{"$base64":"AQI="},"k":"2024-05-01T12:00:00Z"}') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(p), Object.prototype);
  assert.deepEqual(Object.keys(p), ['__proto__', 'k']);
  assert.ok(Buffer.isBuffer(Object.getOwnPropertyDescriptor(p, '__proto__')!.value));
  assert.deepEqual(parseRpcValue('[{"$base64":"AQI=","other":1},"2024-05-01T12:00:00Z"]', { bytes: 'tagged', reviveDates: false }), [{ $base64: 'AQI=', other: 1 }, '2024-05-01T12:00:00Z']);
  assert.deepEqual(parseRpcValue('{"$base64":"AQI="}'), Buffer.from([1, 2]));
});
