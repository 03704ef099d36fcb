import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMethodCall, decodeMethodResponse, parseDateTime, peekMethodName, XmlRpcDecodeError } from '../../src/protocols/xmlrpc/decode';
import { encodeFault, encodeMethodCall, encodeMethodResponse, encodeValue, formatDateTime } from '../../src/protocols/xmlrpc/encode';
import type { RpcValue } from '../../src/translate/rpc-upstream';
import { faultOf } from '../../src/protocols/xmlrpc/faults';
import { ErrorCode, ProxyError, type ErrorCodeValue } from '../../src/errors';

const call = (values: string) => `<?xml version="1.0"?>\n<methodCall>\n  <methodName>a.b</methodName>\n  <params>${values}</params>\n</methodCall>`;
const param = (v: string) => `<param><value>${v}</value></param>`;
const one = (v: string): RpcValue => decodeMethodCall(call(param(v))).params[0]!;

test('decodes every XML-RPC type', () => {
  assert.equal(one('<int>42</int>'), 42);
  assert.equal(one('<i4> -7 </i4>'), -7);
  assert.equal(one('<i8>9223372036854775807</i8>'), 9223372036854775807n);
  assert.equal(one('<i8>5</i8>'), 5n);
  assert.equal(one('<boolean>1</boolean>'), true);
  assert.equal(one('<boolean>0</boolean>'), false);
  assert.equal(one('<string>  a &amp; b &lt;c&gt; &#65;&#x42; &quot;&apos; </string>'), '  a & b <c> AB "\' ');
  assert.equal(one('untyped  text'), 'untyped  text');
  assert.equal(one(''), '');
  assert.equal(one('<string/>'), '');
  assert.equal(one('<string><![CDATA[<x> &amp;]]></string>'), '<x> &amp;');
  assert.equal(one('<double>-3.25</double>'), -3.25);
  assert.deepEqual(one('<dateTime.iso8601>20240501T12:30:45</dateTime.iso8601>'), new Date(Date.UTC(2024, 4, 1, 12, 30, 45)));
  assert.deepEqual(one('<base64>AAH/</base64>'), Buffer.from([0, 1, 255]));
  assert.deepEqual(one('<base64>\n  AAH/\n</base64>'), Buffer.from([0, 1, 255]));
  assert.equal(one('<nil/>'), null);
  assert.equal(one('<ex:nil xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions"/>'), null);
  assert.deepEqual(one('<struct>\n<member><name>x</name><value><int>1</int></value></member>\n<member><name>y</name><value>t</value></member></struct>'), { x: 1, y: 't' });
  assert.deepEqual(one('<array><data>\n<value><int>1</int></value>\n<value><array><data/></array></value></data></array>'), [1, []]);
  assert.deepEqual(one('<struct/>'), {});
});

test('a struct member named __proto__ is data, not a prototype', () => {
  const v = one('<struct><member><name>__proto__</name><value><struct><member><name>polluted</name><value>yes</value></member></struct></value></member></struct>') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.deepEqual(Object.keys(v), ['__proto__']);
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('dateTime forms: compact, dashed, fraction, zone', () => {
  assert.equal(parseDateTime('20240501T12:30:45').toISOString(), '2024-05-01T12:30:45.000Z');
  assert.equal(parseDateTime('2024-05-01T12:30:45Z').toISOString(), '2024-05-01T12:30:45.000Z');
  assert.equal(parseDateTime('2024-05-01T12:30:45.250+02:00').toISOString(), '2024-05-01T10:30:45.250Z');
  assert.equal(parseDateTime('20240501T123045').toISOString(), '2024-05-01T12:30:45.000Z');
});

test('refuses DOCTYPE, entity declarations, undefined entities, malformed XML, and non-XML-RPC documents', () => {
  const bad = (text: string, parse: boolean) =>
    assert.throws(
      () => decodeMethodCall(text),
      (e: unknown) => e instanceof XmlRpcDecodeError && e.parse === parse,
      text.slice(0, 60),
    );
  bad('<!DOCTYPE x [<!ENTITY a "b">]><methodCall><methodName>a</methodName></methodCall>', true);
  bad('<!doctype x SYSTEM "http://example/x.dtd"><methodCall><methodName>a</methodName></methodCall>', true);
  bad(call(param('<string>&xxe;</string>')), true);
  bad(call(param('<string>a & b</string>')), true);
  bad(call(param('<string>&#0;</string>')), true);
  bad('<methodCall><methodName>a</methodName>', true);
  bad('<methodCall><methodName>a</methodName></methodCall><extra/>', false);
  bad('', true);
  bad('<methodResponse/>', false);
  bad('<methodCall><params/></methodCall>', false);
  bad('<methodCall><methodName>a b</methodName></methodCall>', false);
  bad(call(param('<int>1.5</int>')), false);
  bad(call(param('<i8>9223372036854775808</i8>')), false);
  bad(call(param('<boolean>2</boolean>')), false);
  bad(call(param('<double>abc</double>')), false);
  bad(call(param('<dateTime.iso8601>yesterday</dateTime.iso8601>')), false);
  bad(call(param('<base64>***</base64>')), false);
  bad(call(param('<float>1</float>')), false);
  bad(call(param('<int>1</int><int>2</int>')), false);
  bad(call(param('<struct><member><value>1</value></member></struct>')), false);
  bad(call(param('<array><value>1</value></array>')), false);
  bad(call(param('<int>1</int>') + '<param></param>'), false);
  const deep = '<array><data><value>'.repeat(70) + '1' + '</value></data></array>'.repeat(70);
  assert.throws(() => decodeMethodCall(call(param(deep))), XmlRpcDecodeError);
});

test('encodes canonical XML-RPC and decodes its own output back to the same values', () => {
  assert.equal(encodeValue(1), '<value><int>1</int></value>');
  assert.equal(encodeValue(2147483648), '<value><i8>2147483648</i8></value>');
  assert.equal(encodeValue(-5n), '<value><i8>-5</i8></value>');
  assert.equal(encodeValue(0.5), '<value><double>0.5</double></value>');
  assert.equal(encodeValue(1e-7), '<value><double>0.0000001</double></value>');
  assert.equal(encodeValue(-1.25e-8), '<value><double>-0.0000000125</double></value>');
  assert.equal(encodeValue(1.5e300).length, '<value><double></double></value>'.length + 301);
  for (const d of [1e-7, -1.25e-8, 1.5e21 + 0.5, 123.456e-20]) assert.equal(decodeMethodResponse(encodeMethodResponse(d)).ok && (decodeMethodResponse(encodeMethodResponse(d)) as { value: number }).value, d);
  assert.equal(encodeValue('a<&>\r'), '<value><string>a&lt;&amp;&gt;&#13;</string></value>');
  assert.equal(encodeValue(null), '<value><nil/></value>');
  assert.equal(formatDateTime(new Date(Date.UTC(2024, 0, 2, 3, 4, 5))), '20240102T03:04:05');
  const v: RpcValue = {
    i: 1,
    big: 2n ** 62n,
    t: true,
    f: false,
    s: ' sp\nace <x> & ',
    d: -0.125,
    date: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)),
    bin: Buffer.from([1, 2, 3]),
    arr: [1, 'a', [null]],
    st: { 'k y': {} },
    n: null,
  };
  assert.deepEqual(decodeMethodCall(encodeMethodCall('x.y', [v, 'two'])), { methodName: 'x.y', params: [v, 'two'] });
  assert.deepEqual(decodeMethodResponse(encodeMethodResponse(v)), { ok: true, value: v });
  assert.deepEqual(decodeMethodResponse(encodeFault(-32601, 'no <such> method')), { ok: false, faultCode: -32601, faultString: 'no <such> method' });
});

test('peekMethodName finds the method of plain documents only', () => {
  assert.equal(peekMethodName('<?xml version="1.0"?>\n<methodCall>\n<methodName>billing.charge</methodName><params/></methodCall>'), 'billing.charge');
  assert.equal(peekMethodName("<?xml version='1.0'?>\n<methodCall>\n<methodName>a</methodName>\n</methodCall>\n"), 'a');
  assert.equal(peekMethodName('<!DOCTYPE x><methodCall><methodName>a</methodName></methodCall>'), null);
  assert.equal(peekMethodName('<methodCall><methodName>a&amp;b</methodName></methodCall>'), null);
  assert.equal(peekMethodName('<methodCall><!-- c --><methodName>a</methodName></methodCall>'), null);
});

test('one mapping from ProxyError to fault codes; internal errors say nothing about the inside', () => {
  const f = (code: ErrorCodeValue, source: 'downstream' | 'upstream' | 'internal' = 'upstream', extra: { retryAfterMs?: number } = {}) => faultOf(new ProxyError(code, 'detail\nline', { source, ...extra }));
  assert.deepEqual(f(ErrorCode.RateLimited, 'downstream', { retryAfterMs: 12.2 }), { faultCode: -32302, faultString: 'rate limit exceeded, retry in 13 ms (PW_ERR_RATE_LIMITED)' });
  assert.equal(f(ErrorCode.NoRoute, 'downstream').faultCode, -32601);
  assert.equal(f(ErrorCode.Protocol, 'downstream').faultCode, -32600);
  assert.equal(f(ErrorCode.Protocol, 'upstream').faultCode, -32300);
  assert.equal(f(ErrorCode.UpstreamConnect).faultCode, -32300);
  assert.equal(f(ErrorCode.Timeout).faultCode, -32301);
  assert.equal(f(ErrorCode.CircuitOpen).faultCode, -32303);
  assert.equal(f(ErrorCode.Overflow).faultCode, -32303);
  assert.equal(f(ErrorCode.FaultAbort).faultCode, -32304);
  assert.equal(f(ErrorCode.Forbidden).faultCode, -32305);
  assert.equal(f(ErrorCode.Timeout).faultString, 'detail line (PW_ERR_TIMEOUT)');
  assert.deepEqual(f(ErrorCode.Internal, 'internal'), { faultCode: -32603, faultString: 'internal error (PW_ERR_INTERNAL)' });
});
