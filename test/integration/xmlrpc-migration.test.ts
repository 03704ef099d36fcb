/**
 * The migration story of config/examples/xmlrpc-migration.yaml, run for
 * real: one npm xmlrpc client, never touched, calls the same methods while
 * the config moves billing.* from the old XML-RPC server to a JSON service,
 * then billing.invoice.* to gRPC (config/examples/billing.proto), then back.
 */
process.env.TZ = 'UTC';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as xmlrpc from 'xmlrpc';
import { parse, stringify } from 'yaml';
import { startPortway, type InProcess, REPO } from '../helpers/portway';
import { sleep } from '../helpers/net';

const EXAMPLE = resolve(REPO, 'config/examples/xmlrpc-migration.yaml');
const PROTO = resolve(REPO, 'config/examples/billing.proto');

let legacy: xmlrpc.Server;
let legacyPort: number;
let json: Server;
let jsonPort: number;
let grpcServer: grpc.Server;
let grpcPort: number;
let pw: InProcess;
let client: xmlrpc.Client;
const issued = new Date(Date.UTC(2024, 2, 1, 9, 0, 0));

/** The example with this test's addresses; `step` keeps the method rules of that step (1: none, 2: billing., 3: all). */
function config(step: 1 | 2 | 3): string {
  const c = parse(readFileSync(EXAMPLE, 'utf8'));
  c.admin.address = '127.0.0.1:0';
  const l = c.listeners[0];
  l.address = '127.0.0.1:0';
  l.options.methods = step === 1 ? [] : step === 2 ? l.options.methods.filter((r: { prefix: string }) => r.prefix === 'billing.') : l.options.methods;
  l.options.upstreams['invoices-grpc'].proto = PROTO;
  const ports: Record<string, number> = { 'billing-legacy': legacyPort, 'billing-api': jsonPort, 'invoices-grpc': grpcPort };
  for (const cl of c.clusters) cl.endpoints = [`127.0.0.1:${ports[cl.name]}`];
  return stringify(c);
}

before(async () => {
  legacy = await new Promise<xmlrpc.Server>((r) => {
    const s = xmlrpc.createServer({ host: '127.0.0.1', port: 0 }, () => r(s));
  });
  legacyPort = ((legacy as unknown as { httpServer: Server }).httpServer.address() as AddressInfo).port;
  legacy.on('billing.charge', (_e: unknown, p: any[], cb: (e: unknown, v: unknown) => void) => cb(null, `legacy-receipt-${p[0]}-${p[1]}`));
  legacy.on('billing.invoice.get', (_e: unknown, p: any[], cb: (e: unknown, v: unknown) => void) => cb(null, { id: p[0], source: 'legacy' }));
  legacy.on('users.get', (_e: unknown, p: any[], cb: (e: unknown, v: unknown) => void) => cb(null, { name: p[0], source: 'legacy' }));

  json = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const args = JSON.parse(body) as any[];
      const reply = req.url === '/v1/billing/charge' ? `json-receipt-${args[0]}-${args[1]}` : req.url === '/v1/billing.invoice/get' ? { id: args[0], source: 'json' } : null;
      res.writeHead(reply === null ? 404 : 200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
    });
  });
  await new Promise<void>((r) => json.listen(0, '127.0.0.1', r));
  jsonPort = (json.address() as AddressInfo).port;

  const pd = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, bytes: Buffer, defaults: true });
  const svc = (grpc.loadPackageDefinition(pd) as any).billing.v1.Invoices.service as grpc.ServiceDefinition;
  const invoice = (id: string) => ({ id, account: `acct-${id}`, issued: { seconds: String(issued.getTime() / 1000), nanos: 0 }, lines: [{ description: 'hosting', amount_cents: '1250' }], paid: true, pdf: Buffer.from('%PDF') });
  grpcServer = new grpc.Server();
  grpcServer.addService(svc, {
    Get: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => cb(null, invoice(call.request.id)),
    List: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => cb(null, { invoices: Array.from({ length: call.request.limit }, (_, i) => invoice(String(i + 1))) }),
  });
  grpcPort = await new Promise<number>((r, j) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? j(e) : r(p))));

  pw = await startPortway(config(1));
  client = xmlrpc.createClient({ host: '127.0.0.1', port: pw.port('billing-xmlrpc'), path: '/RPC2' });
});

after(async () => {
  await pw?.stop();
  await new Promise<void>((r) => (legacy as unknown as { httpServer: Server }).httpServer.close(() => r()));
  await new Promise<void>((r) => json.close(() => r()));
  grpcServer.forceShutdown();
});

function call(method: string, params: unknown[]): Promise<any> {
  return new Promise((r, j) => client.methodCall(method, params, (e: any, v: any) => (e ? j(e) : r(v))));
}

async function moveTo(step: 1 | 2 | 3): Promise<void> {
  const r = await pw.proxy.reload(config(step));
  assert.equal(r.ok, true, JSON.stringify(r));
  await sleep(50); // the old generation closed its idle keep-alive connections: let the client see it
}

test('step 1: passthrough, every method on the old XML-RPC server', async () => {
  assert.equal(await call('billing.charge', ['acct-1', 1250]), 'legacy-receipt-acct-1-1250');
  assert.deepEqual(await call('billing.invoice.get', [42]), { id: 42, source: 'legacy' });
  assert.deepEqual(await call('users.get', ['ann']), { name: 'ann', source: 'legacy' });
});

test('step 2: billing.* moves to the JSON service; the rest stays', async () => {
  await moveTo(2);
  assert.equal(await call('billing.charge', ['acct-1', 1250]), 'json-receipt-acct-1-1250');
  assert.deepEqual(await call('billing.invoice.get', [42]), { id: 42, source: 'json' });
  assert.deepEqual(await call('users.get', ['ann']), { name: 'ann', source: 'legacy' });
});

test('step 3: billing.invoice.* moves to gRPC (longest prefix wins)', async () => {
  await moveTo(3);
  const inv = await call('billing.invoice.get', [42]);
  // int64 arrives as <i8> (the npm client reads it as a string), Timestamp as dateTime, bytes as base64.
  assert.deepEqual(inv, { id: '42', account: 'acct-42', issued, lines: [{ description: 'hosting', amount_cents: '1250' }], paid: true, pdf: Buffer.from('%PDF') });
  const list = await call('billing.invoice.list', ['acct-42', 2]);
  assert.deepEqual(
    list.map((i: { id: string }) => i.id),
    ['1', '2'],
  );
  assert.equal(await call('billing.charge', ['acct-1', 1250]), 'json-receipt-acct-1-1250');
  assert.deepEqual(await call('users.get', ['ann']), { name: 'ann', source: 'legacy' });
  const methods: string[] = await call('system.listMethods', []);
  for (const m of ['billing.charge', 'billing.invoice.get', 'billing.invoice.list']) assert.ok(methods.includes(m), m);
});

test('rolling back is deleting the rules', async () => {
  await moveTo(1);
  assert.equal(await call('billing.charge', ['acct-1', 1250]), 'legacy-receipt-acct-1-1250');
  assert.deepEqual(await call('billing.invoice.get', [42]), { id: 42, source: 'legacy' });
});
