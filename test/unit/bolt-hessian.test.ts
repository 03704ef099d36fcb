/**
 * SofaRequest / SofaResponse payloads in both Hessian dialects: requests
 * written by sofa-bolt-node itself (setHessianVersion '3.0' and '4.0') are
 * decoded into RpcValues, and the responses Portway encodes are read back by
 * sofa-bolt-node's decoder, as a sofa-rpc-node client reads them.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BoltFrame, SOFA_RESPONSE_CLASS, encodeResponse } from '../../src/protocols/bolt/codec';
import {
  decodeSofaRequest,
  decodeSofaResponse,
  detectDialect,
  encodeServerException,
  encodeSofaFault,
  encodeSofaResult,
  fromHessian,
  readMethodName,
  toHessian,
  type HessianDialect,
} from '../../src/protocols/bolt/hessian';
import type { RpcValue } from '../../src/translate/rpc-upstream';

/* eslint-disable @typescript-eslint/no-require-imports */
const bolt = require('sofa-bolt-node') as { setHessianVersion(v: string): void };
const protocol = require('sofa-bolt-node/lib/protocol') as {
  requestEncode(id: number, req: unknown, options: unknown): Buffer;
  decode(buf: Buffer, options?: unknown): { data: { error: Error | null; appResponse: unknown } };
};
const hessianDraft = require('hessian.js-1') as { DecoderV2: new (b: Buffer) => { read(t?: boolean): unknown } };
/* eslint-enable @typescript-eslint/no-require-imports */

after(() => bolt.setHessianVersion('3.0'));

const V1 = { proto: 1, ver1: 1, switches: 0, codec: 1 };

function sofaRequest(dialect: HessianDialect, methodName: string, args: unknown[]): Buffer {
  bolt.setHessianVersion(dialect);
  const buf = Buffer.from(
    protocol.requestEncode(3, { serverSignature: 'com.example.EchoService:1.0', methodName, args, timeout: 3000 }, { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1 }),
  );
  return new BoltFrame(buf, 0, buf.length).content();
}

/** What a sofa-rpc-node client makes of a response payload, in the given dialect. */
function clientReads(dialect: HessianDialect, status: number, content: Buffer): { error: Error | null; appResponse: unknown } {
  bolt.setHessianVersion(dialect);
  return protocol.decode(encodeResponse(V1, 9, status, 2, SOFA_RESPONSE_CLASS, null, content), {}).data;
}

const ARGS = [
  'hi',
  5,
  { $class: 'long', $: '9007199254740993' },
  { $class: 'long', $: 7 },
  2.5,
  true,
  null,
  new Date(1700000000000),
  Buffer.from('abc'),
  [1, 'x'],
  { a: 1, b: [2] },
  { $class: 'com.example.Pojo', $: { name: { $class: 'java.lang.String', $: 'n' }, n: { $class: 'int', $: 3 } } },
  { $class: 'java.util.List', $: [{ $class: 'int', $: 1 }] },
  { $class: 'java.util.Map', $: { k: 'v' } },
];

const EXPECTED: RpcValue[] = [
  'hi',
  5,
  9007199254740993n,
  7,
  2.5,
  true,
  null,
  new Date(1700000000000),
  Buffer.from('abc'),
  [1, 'x'],
  { a: 1, b: [2] },
  { $class: 'com.example.Pojo', name: 'n', n: 3 },
  [1],
  { k: 'v' },
];

for (const dialect of ['3.0', '4.0'] as const) {
  describe(`hessian ${dialect}`, () => {
    test('the dialect is told by the first payload byte', () => {
      assert.equal(detectDialect(sofaRequest(dialect, 'echo', ['x'])), dialect);
    });

    test('a SofaRequest decodes to method, signatures and RpcValue arguments', () => {
      const r = decodeSofaRequest(sofaRequest(dialect, 'echo', ARGS), dialect);
      assert.equal(r.methodName, 'echo');
      assert.equal(r.targetServiceUniqueName, 'com.example.EchoService:1.0');
      assert.equal(r.methodArgSigs[2], 'long');
      assert.equal(r.methodArgSigs[11], 'com.example.Pojo');
      assert.deepEqual(r.args, EXPECTED);
      assert.equal(readMethodName(sofaRequest(dialect, 'add', [1, 2]), dialect), 'add');
    });

    test('results encode as a SofaResponse the client reads back', () => {
      const value: RpcValue = { s: 'x', i: 5, l: 2 ** 40, dbl: 2.5, b: true, n: null, d: new Date(0), bytes: Buffer.from('ab'), list: [1, 'a'], m: { k: 1 } };
      const got = clientReads(dialect, 0, encodeSofaResult(dialect, value));
      assert.equal(got.error, null);
      assert.deepEqual(got.appResponse, value);
      // Typed objects keep their class on the wire; our own reader gives it back under $class.
      const pojo = { $class: 'com.example.Pojo', name: 'n', n: 3 };
      assert.deepEqual(decodeSofaResponse(encodeSofaResult(dialect, pojo), dialect).appResponse, pojo);
      assert.deepEqual(clientReads(dialect, 0, encodeSofaResult(dialect, 'plain')).appResponse, 'plain');
      assert.equal(clientReads(dialect, 0, encodeSofaResult(dialect, null)).appResponse, null);
    });

    test('longs beyond 2^53 stay exact through our reader', () => {
      assert.deepEqual(decodeSofaResponse(encodeSofaResult(dialect, 2n ** 62n), dialect).appResponse, dialect === '3.0' ? 2n ** 62n : '4611686018427387904');
    });

    test('a fault is a SofaResponse with isError: the client throws errorMsg as it is', () => {
      const got = clientReads(dialect, 0, encodeSofaFault(dialect, 'no such account'));
      assert.equal(got.error?.message, 'no such account');
    });

    test('with a non-zero status the body is an RpcServerException the client shows', () => {
      const got = clientReads(dialect, 7, encodeServerException(dialect, '[PW_ERR_TIMEOUT] slow'));
      assert.equal(got.error?.message, 'com.alipay.remoting.rpc.exception.RpcServerException: [PW_ERR_TIMEOUT] slow');
    });
  });
}

describe('RpcValue -> Hessian types', () => {
  test('int, long, double, typed objects and maps are written as documented (read back with types)', () => {
    const content = encodeSofaResult('3.0', { i: 5, l: 2 ** 40, big: 2n ** 62n, d: 2.5, o: { $class: 'x.Y', a: 1 }, m: { k: 'v' } });
    // The untyped map comes back bare; its values keep their wire types.
    const raw = new hessianDraft.DecoderV2(content).read(true) as { $: { appResponse: Record<string, unknown> } };
    const r = raw.$.appResponse;
    assert.equal(r.i, 5);
    assert.deepEqual(r.l, { $class: 'long', $: 2 ** 40 });
    assert.deepEqual(r.big, { $class: 'long', $: '4611686018427387904' });
    assert.deepEqual(r.d, { $class: 'double', $: 2.5 });
    assert.equal((r.o as { $class: string }).$class, 'x.Y');
  });

  test('toHessian and fromHessian are inverse on plain values', () => {
    const v: RpcValue = { a: [1, 'two', null, true], b: { c: 2.5 } };
    assert.deepEqual(fromHessian(toHessian(v)), v);
  });
});
