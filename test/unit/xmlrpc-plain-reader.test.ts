/**
 * The XML-RPC decoder has two paths (decode.ts): a one-pass reader for
 * documents in the plain form and the general path (XMLValidator +
 * fast-xml-parser) for everything else. These tests hold them to the same
 * answers: the plain reader takes what clients usually send, and on every
 * document (generated, reformatted, mutated) decodeMethodCall /
 * decodeMethodResponse answer exactly as the general path alone does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkWellFormed,
  decodeMethodCall,
  decodeMethodCallGeneral,
  decodeMethodResponse,
  decodeMethodResponseGeneral,
  readPlainMethodCall,
  readPlainMethodResponse,
} from '../../src/protocols/xmlrpc/decode';
import { encodeFault, encodeMethodCall, encodeMethodResponse } from '../../src/protocols/xmlrpc/encode';
import type { RpcValue } from '../../src/translate/rpc-upstream';

// The npm xmlrpc client's own serializer (no typings for this path).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const serializer = require('xmlrpc/lib/serializer') as { serializeMethodCall(m: string, p: unknown[]): string; serializeMethodResponse(v: unknown): string };

/** A small deterministic generator (the same documents on every run). */
function rng(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return Math.floor((s / 0x7fffffff) * n);
  };
}

const PIECES = ['a', 'Z', ' ', '\n', '\r', '\t', '<', '>', '&', '"', "'", 'é', '\u00a0', '\ud83d\ude00', ']]>', '0', ':', '__proto__', '2024-05-01T12:00:00Z'];

function value(ri: (n: number) => number, depth: number): RpcValue {
  const str = () => Array.from({ length: ri(5) }, () => PIECES[ri(PIECES.length)]).join('');
  switch (ri(depth > 3 ? 8 : 11)) {
    case 0:
      return ri(1000) - 500;
    case 1:
      return (ri(2_000_000) - 1_000_000) / 7;
    case 2:
      return ri(2) === 1;
    case 3:
      return str();
    case 4:
      return null;
    case 5:
      return new Date(Date.UTC(2000 + ri(30), ri(12), 1 + ri(28), ri(24), ri(60), ri(60)));
    case 6:
      return Buffer.from(str());
    case 7:
      return BigInt(ri(1000)) * 10n ** 15n;
    case 8:
    case 9: {
      const o: { [k: string]: RpcValue } = {};
      for (let i = ri(4); i > 0; i--) Object.defineProperty(o, str(), { value: value(ri, depth + 1), enumerable: true, writable: true, configurable: true });
      return o;
    }
    default:
      return Array.from({ length: ri(4) }, () => value(ri, depth + 1));
  }
}

function mutate(ri: (n: number) => number, x: string): string {
  const i = ri(x.length + 1);
  const inserts = ['\r', '\r\n', 'a\rb', '<![CDATA[\r\n]]>', '<', '>', '&', '&amp;', '&#;', '&#x;', '&#65;', '&bogus;', '<!-- c -->', '<![CDATA[x]]>', '<x/>', '</value>', '<value>', '<nil/>', ' a="b"', '\ufeff', '<?pi x?>', '<!DOCTYPE x>', 'ex:'];
  switch (ri(8)) {
    case 0:
      return x.slice(0, i) + x.slice(i + 1 + ri(5));
    case 1:
      return x.slice(0, i) + inserts[ri(inserts.length)] + x.slice(i);
    case 2: {
      const j = ri(x.length);
      return x.slice(0, i) + x.slice(j, j + ri(30)) + x.slice(i);
    }
    case 3:
      return x.replace(/<\?xml[^>]*>/, ['', "<?xml version='1.0' encoding='UTF-8'?>", '<?xml version="1.0" standalone="yes" ?>', ' <?xml version="1.0"?>', '<?xml?>'][ri(5)]!);
    case 4:
      return x.replace(/></g, () => `>${['', ' ', '\r\n', '\u00a0'][ri(4)]}<`);
    case 5:
      return x.replace(/<string>([^<]*)<\/string>/, (_m, t: string) => `<string>${t.slice(0, 1)}<![CDATA[${['', ']]', 'a<b>&amp;', ' '][ri(4)]}]]>${t.slice(1)}</string>`);
    case 6:
      return x.replace(/<value>/, `<value>${['<![CDATA[x]]>', ' <![CDATA[]]>', '<![CDATA[a]]>b'][ri(3)]}`);
    default:
      return x.replace(/<(\/?)(\w+)>/, '<$1$2 >');
  }
}

function outcome(f: (t: string) => unknown, text: string): unknown {
  try {
    return { value: f(text) };
  } catch (e) {
    return { error: (e as Error).name, parse: (e as { parse?: boolean }).parse, message: (e as Error).message };
  }
}

test('the plain reader takes the documents clients send, with the general path\'s values', () => {
  const payload = { id: 12345, name: 'invoice <42> & co', amount: 1250.75, when: new Date(Date.UTC(2024, 4, 1, 12, 0, 0)), tags: ['a', 'b', 'c'], bin: Buffer.from([0, 1, 255]), none: null, yes: true };
  const docs = [serializer.serializeMethodCall('bench.echo', [payload, 'x', 7]), encodeMethodCall('a.b', [payload, 2n ** 40n]), encodeMethodCall('a.b', [])];
  for (const d of docs) {
    const plain = readPlainMethodCall(d);
    assert.ok(plain !== undefined, d.slice(0, 80));
    assert.deepEqual(plain, decodeMethodCallGeneral(d));
    assert.doesNotThrow(() => checkWellFormed(d));
  }
  for (const d of [serializer.serializeMethodResponse(payload), encodeMethodResponse(payload), encodeFault(-32601, 'no <such> method')]) {
    const plain = readPlainMethodResponse(d);
    assert.ok(plain !== undefined, d.slice(0, 80));
    assert.deepEqual(plain, decodeMethodResponseGeneral(d));
  }
  // Outside the plain form: the general path decides.
  assert.equal(readPlainMethodCall('<methodCall><!-- c --><methodName>a</methodName></methodCall>'), undefined);
  assert.equal(readPlainMethodCall('<methodCall><methodName>a</methodName></methodCall><extra/>'), undefined);
});

test('decodeMethodCall and decodeMethodResponse answer as the general path on generated and mutated documents', () => {
  const ri = rng(20240501);
  let compared = 0;
  for (let it = 0; it < 3000; it++) {
    const params = Array.from({ length: ri(3) }, () => value(ri, 0));
    let doc: string;
    switch (ri(4)) {
      case 0:
        doc = encodeMethodCall(`a.b${ri(9)}`, params);
        break;
      case 1:
        try {
          doc = serializer.serializeMethodCall('m.x', params.map((p) => (typeof p === 'bigint' ? Number(p) : p)));
        } catch {
          doc = encodeMethodCall('q', params);
        }
        break;
      case 2:
        doc = encodeMethodResponse(params[0] ?? 1);
        break;
      default:
        doc = encodeFault(ri(100), String(params[0] ?? ''));
    }
    for (let m = ri(3); m > 0; m--) doc = mutate(ri, doc);
    assert.deepEqual(outcome(decodeMethodCall, doc), outcome(decodeMethodCallGeneral, doc), doc);
    assert.deepEqual(outcome(decodeMethodResponse, doc), outcome(decodeMethodResponseGeneral, doc), doc);
    compared++;
  }
  assert.equal(compared, 3000);
});

test("'&#;' and '&#x;' are parse faults (not a crash of the decoder)", () => {
  for (const ref of ['&#;', '&#x;']) {
    const doc = `<methodCall><methodName>a</methodName><params><param><value><string>${ref}</string></value></param></params></methodCall>`;
    assert.throws(() => decodeMethodCall(doc), (e: unknown) => (e as { parse?: boolean }).parse === true);
  }
});
