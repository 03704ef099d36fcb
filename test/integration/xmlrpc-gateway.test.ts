/**
 * The XML-RPC gateway with real peers: the npm xmlrpc client and server
 * (passthrough), a node:http JSON service (http_json), a grpc-js server
 * (grpc), Python's xmlrpc.client as a second client; every XML-RPC type
 * round-trips through each kind of upstream.
 */
process.env.TZ = 'UTC'; // the npm xmlrpc client reads and writes dateTime in local time
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as xmlrpc from 'xmlrpc';
import { request } from 'undici';
import { startPortway, type InProcess } from '../helpers/portway';
import { freePort } from '../helpers/net';
import { ECHO_PROTO, startGrpcEcho, startJsonService, startXmlRpcServer, type Peer } from '../fixtures/xmlrpc/peers';
import { decodeMethodResponse, type MethodResponse } from '../../src/protocols/xmlrpc/decode';
import { encodeMethodCall } from '../../src/protocols/xmlrpc/encode';

let legacy: Peer;
let json: Peer;
let grpcPeer: Peer;
let pw: InProcess;
let port: number;
let client: xmlrpc.Client;

before(async () => {
  [legacy, json, grpcPeer] = await Promise.all([startXmlRpcServer(), startJsonService(), startGrpcEcho()]);
  const deadPort = await freePort();
  pw = await startPortway(`
listeners:
  - name: xr
    address: 127.0.0.1:0
    protocol: xmlrpc
    filters:
      - { type: rate_limit, rate: 0.001, burst: 1, match: { attributes: { method: { exact: legacy.limited } } } }
      - { type: timeout, timeout: 1500ms }
      - { type: retry, max_retries: 2 }
      - { type: circuit_breaker, clusters: [dead], consecutive_failures: 2, open_duration: 30s }
    options:
      max_body_bytes: 65536
      methods:
        - { prefix: "billing.*", cluster: json }
        - { prefix: "echo.", cluster: grpc }
        - { prefix: "portway.test.Echo.", cluster: grpc }
        - { prefix: "dead.", cluster: dead }
      default_cluster: legacy
      idempotent: ["system.*", "billing.flaky", "legacy.echo"]
      help: { legacy.echo: "Returns its argument." }
      upstreams:
        json: { type: http_json, base_path: /api, methods: [billing.echo, billing.add] }
        grpc:
          type: grpc
          proto: ${ECHO_PROTO}
          services: { echo: portway.test.Echo }
          methods:
            echo.add: { rpc: portway.test.Echo/Add, args: [a, b], result_field: sum }
clusters:
  - { name: legacy, endpoints: ["127.0.0.1:${legacy.port}"] }
  - { name: json, endpoints: ["127.0.0.1:${json.port}"] }
  - { name: grpc, endpoints: ["127.0.0.1:${grpcPeer.port}"] }
  - { name: dead, endpoints: ["127.0.0.1:${deadPort}"] }
`);
  port = pw.port('xr');
  client = xmlrpc.createClient({ host: '127.0.0.1', port, path: '/RPC2' });
});

after(async () => {
  await pw?.stop();
  await Promise.all([legacy?.close(), json?.close(), grpcPeer?.close()]);
});

function call(method: string, params: unknown[]): Promise<any> {
  return new Promise((resolve, reject) => client.methodCall(method, params, (err: any, v: any) => (err ? reject(err) : resolve(v))));
}

async function fault(method: string, params: unknown[]): Promise<{ faultCode: number; faultString: string }> {
  try {
    const v = await call(method, params);
    assert.fail(`expected a fault, got ${JSON.stringify(v)}`);
  } catch (e: any) {
    assert.equal(typeof e.faultCode, 'number', `a fault, not ${e?.message}`);
    return { faultCode: e.faultCode, faultString: e.faultString };
  }
}

async function raw(body: string | Buffer, opts: { method?: 'POST' | 'GET' } = {}): Promise<{ status: number; text: string }> {
  const r = await request(`http://127.0.0.1:${port}/RPC2`, { method: opts.method ?? 'POST', headers: { 'content-type': 'text/xml' }, ...(opts.method === 'GET' ? {} : { body }) });
  return { status: r.statusCode, text: await r.body.text() };
}

async function rawCall(method: string, params: unknown[]): Promise<MethodResponse> {
  const r = await raw(encodeMethodCall(method, params as never));
  assert.equal(r.status, 200);
  return decodeMethodResponse(r.text);
}

const when = new Date(Date.UTC(2024, 4, 1, 12, 30, 45));
/** Every XML-RPC type the npm client can write. */
const everyType = { i: 7, neg: -2147483648, b: true, f: false, s: 'a < b & c > "d"\n ünï', d: 3.25, t: when, bin: Buffer.from([0, 1, 2, 250, 255]), st: { x: 1, y: 'z' }, arr: [1, 'two', [3]], n: null, empty: '' };

test('passthrough: npm client -> Portway -> npm server, every type', async () => {
  assert.deepEqual(await call('legacy.echo', [everyType]), everyType);
  assert.equal(await call('legacy.add', [2, 3]), 5);
});

test('passthrough: an upstream fault passes through; an unknown method (HTTP 404 from the npm server) becomes fault -32601', async () => {
  assert.deepEqual(await fault('legacy.fault', []), { faultCode: 7, faultString: 'seven' });
  const f = await fault('legacy.nope', []);
  assert.equal(f.faultCode, -32601);
});

test('http_json: every type round-trips through JSON', async () => {
  assert.deepEqual(await call('billing.echo', [everyType]), everyType);
  assert.equal(await call('billing.add', [40, 2]), 42);
  // i8 (beyond 32 bits, within 2^53) comes back as i8.
  const r = await rawCall('billing.echo', [2n ** 40n]);
  assert.deepEqual(r, { ok: true, value: 2n ** 40n });
});

test('http_json: a JSON fault body keeps its code; any other error status is a fault without the body (no stack trace)', async () => {
  assert.deepEqual(await fault('billing.fail', []), { faultCode: 42, faultString: 'card declined' });
  const boom = await fault('billing.boom', []);
  assert.equal(boom.faultCode, 500);
  assert.doesNotMatch(boom.faultString, /at |index\.js|boom/);
  assert.equal((await fault('billing.missing', [])).faultCode, 404);
});

test('grpc: one struct is the whole message, every type round-trips', async () => {
  const msg = {
    i: 7,
    b: true,
    s: 'a < b & c',
    d: 3.25,
    t: when,
    bin: Buffer.from('bytes!'),
    st: { name: 'inner', n: 3 },
    arr: [1, 2, 3],
    nothing: null,
    big: 5,
    items: [{ name: 'a', n: 1 }],
    labels: { k: 'v' },
    color: 'GREEN',
  };
  const back = await call('echo.EchoAll', [msg]);
  // int64 comes back as <i8>, which the npm client reads as a string.
  assert.deepEqual(back, { ...msg, big: '5' });
  // Through raw XML: i8 beyond 2^53 stays exact both ways.
  const r = await rawCall('echo.echoAll', [{ big: 2n ** 62n + 1n }]);
  assert.equal(r.ok, true);
  assert.equal((r as { value: any }).value.big, 2n ** 62n + 1n);
});

test('grpc: positional arguments, result_field, status -> fault, unknown fields -> INVALID_ARGUMENT', async () => {
  assert.equal(await call('echo.add', [2, 3]), '5');
  // Without config, the service name itself: positional args in declaration order, the reply message as a struct.
  assert.deepEqual(await call('portway.test.Echo.Add', [4, 5]), { sum: '9' });
  assert.deepEqual(await fault('echo.Fail', [{ code: 5, details: 'no such account' }]), { faultCode: 5, faultString: 'no such account' });
  const bad = await fault('echo.EchoAll', [{ nope: 1 }]);
  assert.equal(bad.faultCode, 3);
  assert.match(bad.faultString, /unknown field 'nope'/);
  assert.equal((await fault('echo.Missing', [])).faultCode, 12);
});

test('system.listMethods, system.methodHelp, system.multicall', async () => {
  const list: string[] = await call('system.listMethods', []);
  for (const m of ['system.multicall', 'billing.echo', 'billing.add', 'echo.add', 'echo.EchoAll', 'echo.Add', 'legacy.echo']) assert.ok(list.includes(m), `${m} in ${list.join(',')}`);
  assert.equal(await call('system.methodHelp', ['legacy.echo']), 'Returns its argument.');
  assert.match(await call('system.methodHelp', ['echo.add']), /portway\.test\.Echo\/Add/);
  assert.match(await call('system.methodHelp', ['billing.add']), /POST \/api\/billing\/add/);
  const results = await call('system.multicall', [
    [
      { methodName: 'legacy.add', params: [1, 2] },
      { methodName: 'billing.add', params: [3, 4] },
      { methodName: 'echo.add', params: [5, 6] },
      { methodName: 'billing.fail', params: [] },
      { methodName: 'legacy.nope', params: [] },
      { methodName: 'system.multicall', params: [[]] },
      { nonsense: true },
    ],
  ]);
  assert.deepEqual(results.slice(0, 3), [[3], [7], ['11']]);
  assert.deepEqual(results[3], { faultCode: 42, faultString: 'card declined' });
  assert.equal(results[4].faultCode, -32601);
  assert.equal(results[5].faultCode, -32600);
  assert.equal(results[6].faultCode, -32602);
});

test('filters: rate limit -> fault -32302 with HTTP 200; timeout -> -32301; retries only for idempotent methods', async () => {
  assert.equal(await call('legacy.limited', []), 'ok');
  const r = await raw(encodeMethodCall('legacy.limited', []));
  assert.equal(r.status, 200);
  const f = decodeMethodResponse(r.text);
  assert.equal(f.ok, false);
  assert.equal((f as { faultCode: number }).faultCode, -32302);
  const slow = await fault('billing.slow', [4000]);
  assert.equal(slow.faultCode, -32301);
  assert.match(slow.faultString, /PW_ERR_TIMEOUT/);
  // flaky resets the first try: retried (idempotent), answered by the second.
  assert.equal(await call('billing.flaky', []), 2);
  const w = await fault('billing.flakyWrite', []);
  assert.equal(w.faultCode, -32300);
  assert.equal(json.hits.get('/api/billing/flakyWrite'), 1);
  // An upstream that refuses connections: transport faults, then the breaker opens and fails fast.
  const codes: number[] = [];
  let last = { faultCode: 0, faultString: '' };
  for (let i = 0; i < 3; i++) {
    last = await fault('dead.call', []);
    codes.push(last.faultCode);
  }
  assert.ok(codes.every((c) => c === -32300 || c === -32303), codes.join(','));
  assert.equal(last.faultCode, -32303);
  assert.match(last.faultString, /PW_ERR_CIRCUIT_OPEN/);
});

test('bad input: malformed XML, billion laughs, external entities, oversize bodies, GET; the listener keeps serving', async () => {
  const parse = async (body: string) => {
    const r = await raw(body);
    assert.equal(r.status, 200);
    const f = decodeMethodResponse(r.text);
    assert.equal(f.ok, false);
    return f as { faultCode: number; faultString: string };
  };
  assert.equal((await parse('<methodCall><methodName>a.b</methodName><params>')).faultCode, -32700);
  assert.equal((await parse('not xml at all')).faultCode, -32700);
  assert.equal((await parse('<methodCall><params/></methodCall>')).faultCode, -32600);
  // Translated calls are decoded fully; passthrough forwards well-formed documents as they are.
  assert.equal((await parse('<methodCall><methodName>billing.echo</methodName><params><param><value><int>x</int></value></param></params></methodCall>')).faultCode, -32600);
  assert.equal((await parse('<methodCall><methodName>billing.echo</methodName><params><param><value><struct><member><name>a</name></member></struct></value></param></params></methodCall>')).faultCode, -32600);
  const laughs =
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">' +
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>' +
    '<methodCall><methodName>legacy.echo</methodName><params><param><value><string>&lol9;</string></value></param></params></methodCall>';
  const bl = await parse(laughs);
  assert.equal(bl.faultCode, -32700);
  assert.match(bl.faultString, /DOCTYPE/);
  const xxe = '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><methodCall><methodName>billing.echo</methodName><params><param><value>&xxe;</value></param></params></methodCall>';
  const x = await parse(xxe);
  assert.equal(x.faultCode, -32700);
  assert.doesNotMatch(x.faultString, /root:/);
  assert.equal((await parse('<methodCall><methodName>billing.echo</methodName><params><param><value>&xxe;</value></param></params></methodCall>')).faultCode, -32700);
  const big = encodeMethodCall('legacy.echo', ['x'.repeat(70_000)]);
  assert.equal((await raw(big)).status, 413);
  assert.equal((await raw('', { method: 'GET' })).status, 405);
  // Still healthy, and the entities were never sent anywhere.
  assert.equal(await call('legacy.add', [1, 1]), 2);
  assert.equal(await call('billing.add', [1, 1]), 2);
});

function python(script: string): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('python3', ['-c', script], { timeout: 20_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout.trim()))),
  );
}

test("Python's xmlrpc.client as a second, independent client", async () => {
  const out = await python(`
import xmlrpc.client, datetime, json
p = xmlrpc.client.ServerProxy("http://127.0.0.1:${port}/RPC2", allow_none=True, use_builtin_types=True)
v = {"i": 1, "s": "x<y", "d": 2.5, "b": True, "n": None, "bin": b"\\x00\\xff", "t": datetime.datetime(2024, 5, 1, 12, 30, 45), "a": [1, "2"]}
res = {}
for m in ["legacy.echo", "billing.echo"]:
    res[m] = p.__getattr__(m)(v) == v
res["add"] = p.billing.add(20, 22)
res["grpc"] = p.echo.add(2, 40)
try:
    p.billing.fail()
except xmlrpc.client.Fault as f:
    res["fault"] = [f.faultCode, f.faultString]
mc = xmlrpc.client.MultiCall(p)
mc.legacy.add(1, 2)
mc.echo.add(3, 4)
res["multi"] = list(mc())
res["list"] = "billing.add" in p.system.listMethods()
print(json.dumps(res))
`);
  assert.deepEqual(JSON.parse(out), {
    'legacy.echo': true,
    'billing.echo': true,
    add: 42,
    grpc: 42,
    fault: [42, 'card declined'],
    multi: [3, 7],
    list: true,
  });
});
