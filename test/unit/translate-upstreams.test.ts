/** The translation upstreams on their own (JSON mapping, JSON over HTTP, gRPC), against real loopback servers. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, ProxyError } from '../../src/errors';
import { staticEndpoints } from '../../src/translate/endpoints';
import { HttpJsonUpstream } from '../../src/translate/http-json';
import { GrpcUpstream } from '../../src/translate/grpc';
import { parseRpcValue, stringifyRpcValue } from '../../src/translate/json-values';
import { RpcFault, type RpcValue } from '../../src/translate/rpc-upstream';
import { freePort } from '../helpers/net';
import { ECHO_PROTO, startGrpcEcho, type Peer } from '../fixtures/xmlrpc/peers';

test('JSON mapping: bigint, Buffer, Date both ways', () => {
  const v: RpcValue = { big: 2n ** 40n, huge: 2n ** 64n, bin: Buffer.from([1, 2]), t: new Date(Date.UTC(2024, 0, 1)), n: null, a: [1.5, 'x'] };
  const text = stringifyRpcValue(v);
  assert.equal(text, '{"big":1099511627776,"huge":"18446744073709551616","bin":{"$base64":"AQI="},"t":"2024-01-01T00:00:00.000Z","n":null,"a":[1.5,"x"]}');
  assert.deepEqual(parseRpcValue(text), { ...v, big: 2 ** 40, huge: '18446744073709551616' });
  assert.equal(stringifyRpcValue(Buffer.from([1, 2]), { bytes: 'base64', reviveDates: true }), '"AQI="');
  assert.equal(parseRpcValue('"2024-01-01T00:00:00Z"', { bytes: 'tagged', reviveDates: false }), '2024-01-01T00:00:00Z');
  assert.equal(parseRpcValue('"2024-01-01 not a date"'), '2024-01-01 not a date');
  assert.deepEqual(parseRpcValue('{"$base64":"AQI=","other":1}'), { $base64: 'AQI=', other: 1 });
});

let http: Server;
let httpPort: number;
const seen: { path: string; body: string; headers: Record<string, unknown> }[] = [];

before(async () => {
  http = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ path: req.url ?? '', body, headers: req.headers });
      if (req.url === '/svc/slow') return void setTimeout(() => res.end('1'), 2000);
      if (req.url === '/svc/fault') return void res.writeHead(409, { 'content-type': 'application/json' }).end('{"faultCode":-1,"faultString":"conflict"}');
      if (req.url === '/svc/teapot') return void res.writeHead(418).end('I am a teapot, see /etc/secret');
      if (req.url === '/svc/notjson') return void res.end('<html>');
      if (req.url === '/svc/empty') return void res.writeHead(204).end();
      res.setHeader('content-type', 'application/json');
      res.end(body);
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  httpPort = (http.address() as AddressInfo).port;
});

after(() => new Promise<void>((r) => http.close(() => r())));

test('HttpJsonUpstream: paths, array and object bodies, headers', async () => {
  const up = new HttpJsonUpstream(staticEndpoints([`127.0.0.1:${httpPort}`]), { basePath: '/base/', args: 'object', paths: { 'svc.mapped': '/svc/echo' }, headers: { 'x-api': 'k' } });
  try {
    assert.deepEqual(await up.call({ service: 'svc', method: 'echo', args: [{ a: 1 }] }), { a: 1 });
    assert.equal(seen.at(-1)!.path, '/base/svc/echo');
    assert.deepEqual(await up.call({ service: 'svc', method: 'echo', args: [1, 'x'] }), [1, 'x']);
    assert.deepEqual(await up.call({ service: 'svc', method: 'mapped', args: [{ b: Buffer.from('hi') }], headers: { 'x-trace': 't1' } }), { b: Buffer.from('hi') });
    assert.equal(seen.at(-1)!.path, '/svc/echo');
    assert.equal(seen.at(-1)!.headers['x-api'], 'k');
    assert.equal(seen.at(-1)!.headers['x-trace'], 't1');
    assert.equal(up.pathOf('a.b', 'c d'), '/base/a.b/c%20d');
  } finally {
    await up.close();
  }
});

test('HttpJsonUpstream: faults, bad replies, 204, connect failures and deadlines', async () => {
  const up = new HttpJsonUpstream(staticEndpoints([`127.0.0.1:${httpPort}`]));
  try {
    await assert.rejects(up.call({ service: 'svc', method: 'fault', args: [] }), (e) => e instanceof RpcFault && e.faultCode === -1 && e.faultString === 'conflict');
    await assert.rejects(up.call({ service: 'svc', method: 'teapot', args: [] }), (e) => e instanceof RpcFault && e.faultCode === 418 && !e.faultString.includes('secret'));
    await assert.rejects(up.call({ service: 'svc', method: 'notjson', args: [] }), (e) => e instanceof ProxyError && e.code === ErrorCode.Protocol);
    assert.equal(await up.call({ service: 'svc', method: 'empty', args: [] }), null);
    await assert.rejects(up.call({ service: 'svc', method: 'slow', args: [], deadline: Date.now() + 100 }), (e) => e instanceof ProxyError && e.code === ErrorCode.Timeout);
    await assert.rejects(up.call({ service: 'svc', method: 'x', args: [], deadline: Date.now() - 1 }), (e) => e instanceof ProxyError && e.code === ErrorCode.Timeout);
  } finally {
    await up.close();
  }
  const dead = new HttpJsonUpstream(staticEndpoints([`127.0.0.1:${await freePort()}`]));
  try {
    await assert.rejects(dead.call({ service: 's', method: 'm', args: [] }), (e) => e instanceof ProxyError && e.code === ErrorCode.UpstreamConnect && e.retryable && e.source === 'upstream');
  } finally {
    await dead.close();
  }
});

let grpcPeer: Peer;
before(async () => {
  grpcPeer = await startGrpcEcho();
});
after(() => grpcPeer.close());

test('GrpcUpstream: mapping of values, positional and whole-message arguments, result_field', async () => {
  const up = new GrpcUpstream(staticEndpoints([`127.0.0.1:${grpcPeer.port}`]), {
    protoFiles: [ECHO_PROTO],
    services: { echo: 'portway.test.Echo' },
    methods: { 'calc.add': { rpc: 'portway.test.Echo/Add', args: ['b', 'a'], resultField: 'sum' } },
  });
  try {
    const t = new Date(Date.UTC(2024, 1, 2, 3, 4, 5, 678));
    const back = (await up.call({ service: 'echo', method: 'echoall', args: [{ i: 1, big: 2n ** 63n - 1n, t, bin: Buffer.from([9]), labels: { a: 'b' }, color: 1, items: [{ name: 'n' }] }] })) as Record<string, RpcValue>;
    assert.equal(back['i'], 1);
    assert.equal(back['big'], 2n ** 63n - 1n);
    assert.deepEqual(back['t'], t);
    assert.deepEqual(back['bin'], Buffer.from([9]));
    assert.deepEqual(back['labels'], { a: 'b' });
    assert.equal(back['color'], 'RED');
    assert.deepEqual(back['items'], [{ name: 'n', n: 0 }]);
    assert.equal(back['st'], null);
    assert.equal(back['nothing'], null);
    assert.equal(back['s'], '');
    assert.equal(await up.call({ service: 'calc', method: 'add', args: [2, 40] }), 42n);
    assert.deepEqual(await up.call({ service: 'portway.test.Echo', method: 'Add', args: [1, 2] }), { sum: 3n });
    assert.ok(up.knownMethods().includes('echo.EchoAll'));
    assert.match(up.describe('calc', 'add') ?? '', /Echo\/Add: arguments \(b, a\)/);
  } finally {
    await up.close();
  }
});

test('GrpcUpstream: statuses, bad arguments, deadlines, unreachable servers, bad config', async () => {
  const up = new GrpcUpstream(staticEndpoints([`127.0.0.1:${grpcPeer.port}`]), { protoFiles: [ECHO_PROTO], services: { echo: 'portway.test.Echo' }, longs: 'number' });
  try {
    await assert.rejects(up.call({ service: 'echo', method: 'Fail', args: [{ code: 9, details: 'precondition' }] }), (e) => e instanceof RpcFault && e.faultCode === 9 && e.faultString === 'precondition' && e.detail?.['grpcStatus'] === 'FAILED_PRECONDITION');
    await assert.rejects(up.call({ service: 'echo', method: 'Add', args: ['x'] }), (e) => e instanceof RpcFault && e.faultCode === 3 && /expected an integer/.test(e.faultString));
    await assert.rejects(up.call({ service: 'echo', method: 'Add', args: [1, 2, 3] }), (e) => e instanceof RpcFault && e.faultCode === 3);
    await assert.rejects(up.call({ service: 'echo', method: 'Nope', args: [] }), (e) => e instanceof RpcFault && e.faultCode === 12);
    await assert.rejects(up.call({ service: 'echo', method: 'Sleep', args: [2000], deadline: Date.now() + 150 }), (e) => e instanceof ProxyError && e.code === ErrorCode.Timeout);
    assert.deepEqual(await up.call({ service: 'echo', method: 'Add', args: [1, 2] }), { sum: 3 });
  } finally {
    await up.close();
  }
  const dead = new GrpcUpstream(staticEndpoints([`127.0.0.1:${await freePort()}`]), { protoFiles: [ECHO_PROTO], services: { echo: 'portway.test.Echo' } });
  try {
    await assert.rejects(dead.call({ service: 'echo', method: 'Add', args: [1, 2], deadline: Date.now() + 3000 }), (e) => e instanceof ProxyError && e.code === ErrorCode.UpstreamConnect && e.retryable);
  } finally {
    await dead.close();
  }
  assert.throws(() => new GrpcUpstream(staticEndpoints(['127.0.0.1:1']), { protoFiles: [ECHO_PROTO], methods: { x: { rpc: 'portway.test.Echo/Nope' } } }), /no gRPC method/);
  assert.throws(() => new GrpcUpstream(staticEndpoints(['127.0.0.1:1']), { protoFiles: [ECHO_PROTO], methods: { x: { rpc: 'portway.test.Echo/Add', resultField: 'nope' } } }), /no field 'nope'/);
  assert.throws(() => new GrpcUpstream(staticEndpoints(['127.0.0.1:1']), { protoFiles: [ECHO_PROTO], services: { x: 'portway.test.Nope' } }), /no gRPC service/);
  assert.throws(() => new GrpcUpstream(staticEndpoints(['127.0.0.1:1']), { protoFiles: ['/nonexistent.proto'] }));
});
