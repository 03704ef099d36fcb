/**
 * Bolt calls translated: sofa-rpc-node clients (child processes, Hessian
 * '3.0' and '4.0') call Portway; routes send com.example.EchoService to a
 * JSON-over-HTTP service (node:http) and com.example.CalcService to a
 * grpc-js server, both started here.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { startPortway, tempDir, type InProcess } from '../helpers/portway';
import { freePort } from '../helpers/net';
import { startSofaClient, type SofaClient } from '../helpers/sofa';

const PROTO = `
syntax = "proto3";
package demo;
service Calc {
  rpc Add (AddRequest) returns (AddReply);
  rpc Echo (EchoMsg) returns (EchoMsg);
  rpc Missing (EchoMsg) returns (EchoMsg);
}
message AddRequest { int64 a = 1; int32 b = 2; }
message AddReply { int64 sum = 1; }
message EchoMsg { string text = 1; bytes data = 2; }
`;

describe('bolt translation to HTTP/JSON and gRPC', { timeout: 90_000 }, () => {
  let httpServer: Server;
  let httpPort: number;
  const bodies: unknown[] = [];
  let grpcServer: grpc.Server;
  let grpcPort: number;
  let pw: InProcess;
  let c3: SofaClient;
  let c4: SofaClient;

  before(async () => {
    httpServer = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const args = JSON.parse(Buffer.concat(chunks).toString()) as unknown[];
        bodies.push({ path: req.url, args });
        const reply = (status: number, v: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(v));
        };
        switch (req.url) {
          case '/com.example.EchoService/echo':
            return reply(200, args[0]);
          case '/com.example.EchoService/add':
            return reply(200, (args[0] as number) + (args[1] as number));
          case '/com.example.EchoService/fail':
            return reply(500, { faultCode: 42, faultString: 'no such account' });
          case '/com.example.EchoService/typed':
            return reply(200, { $class: 'com.example.Result', ok: true, when: '2024-05-01T12:00:00.000Z', raw: { $base64: Buffer.from('xyz').toString('base64') } });
          default:
            return reply(404, { faultCode: 404, faultString: `no ${req.url}` });
        }
      });
    });
    await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
    httpPort = (httpServer.address() as AddressInfo).port;

    const dir = tempDir('portway-bolt-grpc-');
    const protoFile = join(dir, 'calc.proto');
    writeFileSync(protoFile, PROTO);
    const def = grpc.loadPackageDefinition(protoLoader.loadSync(protoFile, { keepCase: true, longs: String, defaults: true })) as unknown as {
      demo: { Calc: { service: grpc.ServiceDefinition } };
    };
    grpcServer = new grpc.Server();
    grpcServer.addService(def.demo.Calc.service, {
      Add: (call: grpc.ServerUnaryCall<{ a: string; b: number }, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { sum: String(BigInt(call.request.a) + BigInt(call.request.b)) }),
      Echo: (call: grpc.ServerUnaryCall<{ text: string; data: Buffer }, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { text: call.request.text.toUpperCase(), data: call.request.data }),
      Missing: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.NOT_FOUND, details: 'nothing here' }),
    });
    grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const deadPort = await freePort();

    pw = await startPortway(`
listeners:
  - name: bolt
    address: 127.0.0.1:0
    protocol: bolt
    options:
      translate:
        json: { type: http }
        calc:
          type: grpc
          proto_files: ["${protoFile}"]
          services: { com.example.CalcService: demo.Calc }
          methods:
            com.example.CalcService.add: { rpc: demo.Calc/Add, args: [a, b], result_field: sum }
        down: { type: http }
    routes:
      - { match: { attributes: { service: { prefix: "com.example.EchoService:" } } }, cluster: json }
      - { match: { attributes: { service: { prefix: "com.example.CalcService:" } } }, cluster: calc }
      - { cluster: down }
clusters:
  - { name: json, endpoints: [127.0.0.1:${httpPort}] }
  - { name: calc, endpoints: [127.0.0.1:${grpcPort}] }
  - { name: down, connect_timeout: 1s, endpoints: [127.0.0.1:${deadPort}] }
`);
    const target = `127.0.0.1:${pw.port('bolt')}`;
    [c3, c4] = await Promise.all([startSofaClient({ serverHost: target }), startSofaClient({ serverHost: target, hessian: '4.0' })]);
  });

  after(async () => {
    await Promise.all([c3?.kill(), c4?.kill()]);
    await pw?.stop();
    await new Promise<void>((r) => httpServer?.close(() => r()));
    grpcServer?.forceShutdown();
  });

  for (const which of ['3.0', '4.0'] as const) {
    const client = () => (which === '3.0' ? c3 : c4);

    test(`Hessian ${which} -> HTTP/JSON: results, arguments and types`, async () => {
      assert.equal((await client().invoke('echo', ['hi'])).value, 'hi');
      assert.equal((await client().invoke('add', [40, 2])).value, 42);
      bodies.length = 0;
      const arg = { name: 'n', when: new Date(1700000000000), raw: Buffer.from('ab'), list: [1, 'x'] };
      const back = await client().invoke('echo', [arg]);
      assert.deepEqual(bodies[0], { path: '/com.example.EchoService/echo', args: [{ name: 'n', when: '2023-11-14T22:13:20.000Z', raw: { $base64: 'YWI=' }, list: [1, 'x'] }] });
      assert.deepEqual(back.value, arg, 'dates and bytes come back typed');
      bodies.length = 0;
      await client().invoke('echo', [{ $class: 'com.example.Pojo', $: { name: { $class: 'java.lang.String', $: 'p' } } }]);
      assert.deepEqual((bodies[0] as { args: unknown[] }).args, [{ $class: 'com.example.Pojo', name: 'p' }], "a typed object's class travels under $class");
      const typed = await client().invoke('typed', []);
      assert.deepEqual(typed.value, { ok: true, when: new Date('2024-05-01T12:00:00.000Z'), raw: Buffer.from('xyz') });
    });

    test(`Hessian ${which} -> HTTP/JSON: a fault is the client's error message`, async () => {
      const r = await client().invoke('fail', []);
      assert.equal(r.ok, false);
      assert.equal(r.error?.message, 'no such account');
    });

    test(`Hessian ${which} -> gRPC: positional arguments, a result field, a whole message, a status`, async () => {
      assert.equal((await client().invoke('add', [40, 2], { service: 'com.example.CalcService' })).value, 42);
      const echoed = await client().invoke('echo', [{ text: 'abc', data: Buffer.from([1, 2, 3]) }], { service: 'com.example.CalcService' });
      assert.deepEqual(echoed.value, { text: 'ABC', data: Buffer.from([1, 2, 3]) });
      const missing = await client().invoke('missing', [{ text: 'x' }], { service: 'com.example.CalcService' });
      assert.equal(missing.ok, false);
      assert.equal(missing.error?.message, 'nothing here');
    });
  }

  test('an HTTP upstream that cannot be reached is a communication error, not a hang', async () => {
    const r = await c3.invoke('echo', ['x'], { service: 'com.example.Elsewhere', timeoutMs: 5000 });
    assert.equal(r.ok, false);
    assert.match(r.error!.message, /PW_ERR_UPSTREAM_CONNECT|PW_ERR_NO_HEALTHY_UPSTREAM|PW_ERR_CONNECT_TIMEOUT/);
  });
});
