/**
 * The HTTP/1.1 proxy against real node:http upstreams: routing by host,
 * path, method and header (and the generic routes), forwarded headers and
 * hop-by-hop removal both ways, keep-alive reuse on both sides, client
 * pipelining, local errors (no route, bad input) and the route handler hook.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, Agent, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { startPortway, type InProcess } from '../helpers/portway';
import { builtins } from '../../src/builtins';
import { loadConfigText } from '../../src/config/load';
import { createLogger } from '../../src/logger';
import { Proxy } from '../../src/proxy';
import { ProtocolRegistry } from '../../src/protocols/protocol';
import { createHttpProtocol, HttpHandlerRegistry } from '../../src/protocols/http';
import { ErrorCode, ProxyError } from '../../src/errors';

interface Upstream {
  server: Server;
  port: number;
  /** TCP connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

/** A node:http upstream answering JSON {name, method, url, headers}; `extra` adds response headers. */
async function upstream(name: string, extra: Record<string, string> = {}): Promise<Upstream> {
  const u = { connections: 0 } as Upstream;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({ name, method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(200, { 'content-type': 'application/json', ...extra });
      res.end(body);
    });
  });
  server.on('connection', () => u.connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.server = server;
  u.port = (server.address() as AddressInfo).port;
  u.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return u;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json(): { name: string; method: string; url: string; headers: Record<string, string>; body: string };
}

function send(port: number, opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string; agent?: Agent }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: opts.headers ?? {}, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Writes raw bytes on a fresh connection and collects everything until the server closes it (bounded). */
function raw(port: number, data: string, waitMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let got = '';
    const guard = setTimeout(() => s.destroy(), waitMs);
    s.on('connect', () => s.write(data));
    s.on('data', (c: Buffer) => (got += c.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(guard);
      resolve(got);
    });
  });
}

describe('http proxy: routing', () => {
  let ups: Record<string, Upstream>;
  let pw: InProcess;
  let port: number;
  let generic: number;

  before(async () => {
    ups = {};
    for (const n of ['exact', 'wild', 'api', 'apiv2', 'login', 'canary', 'root', 'posts']) ups[n] = await upstream(n);
    const cl = Object.entries(ups)
      .map(([n, u]) => `  - { name: ${n}, endpoints: ["127.0.0.1:${u.port}"] }`)
      .join('\n');
    pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    options:
      routes:
        - { name: root, cluster: root }
        - { name: api, path_prefix: /api/, cluster: api }
        - { name: apiv2, path_prefix: /api/v2/, cluster: apiv2 }
        - { name: login, path: /login, cluster: login }
        - { name: posts, path_prefix: /api/, methods: [POST, PUT], cluster: posts }
        - { name: canary, path_prefix: /api/, headers: { x-canary: { exact: "1" } }, cluster: canary }
        - { name: wild, host: "*.example.com", cluster: wild }
        - { name: exact, host: www.example.com, cluster: exact }
  - name: generic
    address: 127.0.0.1:0
    protocol: http
    routes:
      - { match: { attributes: { method: { exact: POST } } }, cluster: posts }
      - { match: { attributes: { path: { prefix: /api/ } } }, cluster: api }
      - { match: { attributes: { host: { suffix: .example.com } } }, cluster: wild }
      - { cluster: root }
clusters:
${cl}
`);
    port = pw.port('web');
    generic = pw.port('generic');
  });

  after(async () => {
    await pw.stop();
    for (const u of Object.values(ups)) await u.close();
  });

  const via = async (p: number, path: string, method = 'GET', headers: Record<string, string> = {}) => (await send(p, { method, path, headers })).json().name;

  test('the most specific host wins, then the longest path', async () => {
    assert.equal(await via(port, '/', 'GET', { host: 'www.example.com' }), 'exact');
    assert.equal(await via(port, '/api/v2/x', 'GET', { host: 'WWW.Example.com:8080' }), 'exact', 'host is case-insensitive, port ignored; host beats path');
    assert.equal(await via(port, '/', 'GET', { host: 'a.example.com' }), 'wild');
    assert.equal(await via(port, '/', 'GET', { host: 'example.com' }), 'root', 'a wildcard needs a subdomain');
    assert.equal(await via(port, '/api/v2/users', 'GET', { host: 'other' }), 'apiv2', 'longer prefix first');
    assert.equal(await via(port, '/api/users'), 'api');
    assert.equal(await via(port, '/login'), 'login', 'exact path');
    assert.equal(await via(port, '/login/x'), 'root', 'exact path does not match longer paths');
    assert.equal(await via(port, '/apix'), 'root');
  });

  test('methods and headers pick among equally specific routes, first written first', async () => {
    assert.equal(await via(port, '/api/x', 'POST'), 'api', 'api is written before posts and matches any method');
    assert.equal(await via(port, '/api/x', 'GET', { 'x-canary': '1' }), 'api', 'api is written before canary');
    const r = await send(port, { path: '/api/v2/x', method: 'DELETE', headers: { 'x-canary': '1' } });
    assert.equal(r.json().name, 'apiv2');
  });

  test('generic listener routes match the host, path and method attributes', async () => {
    assert.equal(await via(generic, '/x', 'POST'), 'posts');
    assert.equal(await via(generic, '/api/x'), 'api');
    assert.equal(await via(generic, '/', 'GET', { host: 'b.example.com' }), 'wild');
    assert.equal(await via(generic, '/'), 'root');
  });
});

describe('http proxy: routing details', () => {
  test('order written decides among equal routes; headers and methods select; no match is a 404', async () => {
    const a = await upstream('a');
    const b = await upstream('b');
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    options:
      routes:
        - { path_prefix: /x, methods: [GET], headers: { x-tenant: { regex: "^blue" } }, cluster: b }
        - { path_prefix: /x, methods: [GET], cluster: a }
        - { path_prefix: /y, headers: { x-beta: { present: false } }, cluster: a }
clusters:
  - { name: a, endpoints: ["127.0.0.1:${a.port}"] }
  - { name: b, endpoints: ["127.0.0.1:${b.port}"] }
`);
    try {
      const port = pw.port('web');
      assert.equal((await send(port, { path: '/x', headers: { 'x-tenant': 'blue-1' } })).json().name, 'b');
      assert.equal((await send(port, { path: '/x', headers: { 'x-tenant': 'red' } })).json().name, 'a');
      assert.equal((await send(port, { path: '/y' })).json().name, 'a');
      const miss = await send(port, { path: '/y', headers: { 'x-beta': '1' } });
      assert.equal(miss.status, 404);
      assert.equal(miss.headers['x-portway-error'], 'PW_ERR_NO_ROUTE');
      assert.equal(JSON.parse(miss.body).error, 'PW_ERR_NO_ROUTE');
      const post = await send(port, { path: '/x', method: 'POST', body: 'z' });
      assert.equal(post.status, 404);
    } finally {
      await pw.stop();
      await a.close();
      await b.close();
    }
  });
});

describe('http proxy: headers and connections', () => {
  let up: Upstream;
  let pw: InProcess;
  let port: number;

  before(async () => {
    up = await upstream('up', { connection: 'x-up-secret', 'x-up-secret': 'hidden', 'keep-alive': 'timeout=5' });
    pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    options:
      routes:
        - { path_prefix: /v1/, prefix_rewrite: /, cluster: up }
        - { path_prefix: /, cluster: up }
clusters:
  - name: up
    endpoints: ["127.0.0.1:${up.port}"]
    limits: { max_connections_per_endpoint: 4 }
`);
    port = pw.port('web');
  });

  after(async () => {
    await pw.stop();
    await up.close();
  });

  test('X-Forwarded-* and Via are added; hop-by-hop headers go no further, either way', async () => {
    const r = await send(port, {
      path: '/a?b=1',
      headers: {
        host: 'svc.internal:81',
        'x-forwarded-for': '10.1.2.3',
        'x-forwarded-proto': 'https',
        via: '1.0 edge',
        connection: 'keep-alive, x-secret',
        'x-secret': 'no',
        te: 'trailers',
        'x-keep': 'yes',
      },
    });
    assert.equal(r.status, 200);
    const h = r.json().headers;
    assert.equal(h['x-forwarded-for'], '10.1.2.3, 127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http', 'replaced unless trust_forwarded');
    assert.equal(h['x-forwarded-host'], 'svc.internal:81');
    assert.equal(h['host'], 'svc.internal:81', 'Host preserved');
    assert.equal(h['via'], '1.0 edge, 1.1 portway');
    assert.equal(h['x-secret'], undefined, 'a field named by Connection is removed');
    assert.equal(h['te'], undefined);
    assert.equal(h['x-keep'], 'yes');
    assert.equal(r.json().url, '/a?b=1');
    assert.equal(r.headers['via'], '1.1 portway');
    assert.equal(r.headers['x-up-secret'], undefined, "a field named by the upstream's Connection is removed");
    assert.equal(r.headers['content-type'], 'application/json');
  });

  test('prefix_rewrite replaces the matched prefix, keeping the query', async () => {
    assert.equal((await send(port, { path: '/v1/users?id=7' })).json().url, '/users?id=7');
  });

  test('keep-alive: one client connection and one upstream connection carry many requests', async () => {
    const before = up.connections;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let clientSockets = 0;
    try {
      for (let i = 0; i < 20; i++) {
        const r = await send(port, { path: `/k${i}`, agent });
        assert.equal(r.status, 200);
        assert.equal(r.json().url, `/k${i}`);
      }
      clientSockets = Object.values(agent.freeSockets).reduce((n, l) => n + (l?.length ?? 0), 0);
    } finally {
      agent.destroy();
    }
    assert.equal(clientSockets, 1);
    assert.ok(up.connections - before <= 1, `the upstream connection was reused (${up.connections - before} new)`);
  });

  test('pipelined requests are answered in order on one connection', async () => {
    const reqs = ['/p1', '/p2', '/p3'].map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join('') + 'GET /p4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const out = await raw(port, reqs);
    const urls = [...out.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(urls, ['/p1', '/p2', '/p3', '/p4']);
    assert.equal(out.match(/HTTP\/1\.1 200/g)?.length, 4);
  });

  test('request bodies arrive intact (content-length and chunked)', async () => {
    const r1 = await send(port, { method: 'POST', path: '/b', body: 'hello', headers: { 'content-length': '5' } });
    assert.equal(r1.json().body, 'hello');
    const out = await raw(port, 'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
    assert.match(out, /"body":"abcde"/);
  });
});

describe('http proxy: bad input', () => {
  let up: Upstream;
  let pw: InProcess;
  let port: number;

  before(async () => {
    up = await upstream('up');
    pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    options:
      max_body_size: 1000
      max_header_size: 2048
      routes: [{ cluster: up }]
clusters:
  - { name: up, endpoints: ["127.0.0.1:${up.port}"] }
`);
    port = pw.port('web');
  });

  after(async () => {
    await pw.stop();
    await up.close();
  });

  const healthy = async () => assert.equal((await send(port, { path: '/ok' })).status, 200);

  test('a malformed request line gets 400 and the connection closes', async () => {
    const out = await raw(port, 'GARBAGE\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.match(out, /x-portway-error: PW_ERR_PROTOCOL/);
    assert.doesNotMatch(out, /at [A-Za-z]+ \(/, 'no stack trace');
    await healthy();
  });

  test('a malformed header gets 400', async () => {
    const out = await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 400 /);
    const out2 = await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc');
    assert.match(out2, /^HTTP\/1\.1 400 /);
    await healthy();
  });

  test('a missing Host on HTTP/1.1 gets 400', async () => {
    const out = await raw(port, 'GET / HTTP/1.1\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 400 /);
    await healthy();
  });

  test('a head over max_header_size gets 431', async () => {
    const out = await raw(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(4000)}\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 431 /);
    await healthy();
  });

  test('a body over max_body_size gets 413 (content-length and chunked); nothing reaches the upstream', async () => {
    const big = 'x'.repeat(2000);
    const r = await send(port, { method: 'POST', path: '/big', body: big, headers: { 'content-length': String(big.length) } });
    assert.equal(r.status, 413);
    assert.equal(r.headers['x-portway-error'], 'PW_ERR_PROTOCOL');
    assert.equal(r.headers['connection'], 'close');
    const chunk = 'y'.repeat(600);
    const out = await raw(port, `POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 413 /);
    await healthy();
  });

  test('OPTIONS * gets 501 (not forwarded)', async () => {
    const out = await raw(port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 501 /);
    await healthy();
  });

  test('CONNECT gets 405', async () => {
    const out = await raw(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 405 /);
    await healthy();
  });

  test('an unreachable upstream is a 502 with the error code', async () => {
    const dead = await upstream('dead');
    const deadPort = dead.port;
    await dead.close();
    const pw2 = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    options: { routes: [{ cluster: dead }], error_format: text }
clusters:
  - { name: dead, endpoints: ["127.0.0.1:${deadPort}"] }
`);
    try {
      const r = await send(pw2.port('web'), { path: '/' });
      assert.equal(r.status, 502);
      assert.equal(r.headers['x-portway-error'], 'PW_ERR_UPSTREAM_CONNECT');
      assert.match(r.body, /^502 Bad Gateway: .*\(PW_ERR_UPSTREAM_CONNECT\)\n$/);
    } finally {
      await pw2.stop();
    }
  });
});

describe('http proxy: route handlers', () => {
  test('a route delegates to a registered handler after the phase filters; the rest is proxied', async () => {
    const up = await upstream('up');
    const seen: string[] = [];
    const handlers = new HttpHandlerRegistry().register({
      name: 'echo',
      description: 'test handler',
      check: (o) => (typeof o['greeting'] === 'string' ? [] : [{ path: 'greeting', message: 'must be a string' }]),
      create: (o, ctx) => (req, res, hctx) => {
        seen.push(`${ctx.route}:${req.url}:${hctx.cluster?.name ?? '-'}`);
        if (req.url === '/RPC2/fail') {
          hctx.reject(new ProxyError(ErrorCode.Forbidden, 'not allowed here'));
          return;
        }
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => res.end(`${String(o['greeting'])} ${Buffer.concat(chunks).toString()}`));
      },
    });
    const b = builtins();
    const protocols = new ProtocolRegistry().register(createHttpProtocol(handlers));
    const custom = { ...b, protocols, registries: { ...b.registries, protocols: protocols.specs() } };
    const cfg = loadConfigText(
      `
admin: { enabled: false }
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    filters:
      - { type: router }
      - { type: rate_limit, rate: 2, per: 1m, burst: 2, key: route, match: { attributes: { path: { prefix: /RPC2 } } } }
    options:
      routes:
        - { name: rpc, path_prefix: /RPC2, handler: echo, handler_options: { greeting: hi }, cluster: up }
        - { name: rest, path_prefix: /, cluster: up }
clusters:
  - { name: up, endpoints: ["127.0.0.1:${up.port}"] }
`,
      custom.registries,
    );
    const proxy = await Proxy.start(cfg, createLogger('silent'), custom);
    try {
      const port = proxy.listenerPort('web')!;
      const r = await send(port, { method: 'POST', path: '/RPC2', body: 'there' });
      assert.equal(r.status, 200);
      assert.equal(r.body, 'hi there');
      const f = await send(port, { path: '/RPC2/fail' });
      assert.equal(f.status, 403);
      assert.equal(f.headers['x-portway-error'], 'PW_ERR_FORBIDDEN');
      const limited = await send(port, { path: '/RPC2' });
      assert.equal(limited.status, 429, 'the rate limit (key route) applies to handler routes');
      assert.equal((await send(port, { path: '/other' })).json().name, 'up');
      assert.deepEqual(seen, ['rpc:/RPC2:up', 'rpc:/RPC2/fail:up']);
      assert.throws(
        () =>
          loadConfigText(
            `listeners: [{ name: w, address: 127.0.0.1:0, protocol: http, options: { routes: [{ path_prefix: /, handler: echo, handler_options: { greeting: 1 } }, { path_prefix: /x, handler: nope }] } }]`,
            custom.registries,
          ),
        (e: Error) => /routes\[0\]\.handler_options\.greeting: must be a string/.test(e.message) && /routes\[1\]\.handler: unknown handler 'nope'/.test(e.message),
      );
    } finally {
      await proxy.shutdown(200);
      await up.close();
    }
  });
});

describe('http proxy: reload', () => {
  test('a kept-alive connection of the old generation gets Connection: close; new connections use the new routes', async () => {
    const a = await upstream('a');
    const b = await upstream('b');
    const cfg = (port: number) => `admin: { address: 127.0.0.1:0 }
listeners:
  - { name: web, address: 127.0.0.1:0, protocol: http, routes: [{ cluster: up }] }
clusters:
  - { name: up, endpoints: ["127.0.0.1:${port}"] }
`;
    const pw = await startPortway(cfg(a.port));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const port = pw.port('web');
      const first = await send(port, { path: '/1', agent });
      assert.equal(first.json().name, 'a');
      assert.equal(first.headers['connection'], 'keep-alive');
      const r = await pw.proxy.reload(cfg(b.port));
      assert.equal(r.ok, true);
      const old = await send(port, { path: '/2', agent });
      assert.equal(old.json().name, 'a', 'the connection keeps its generation');
      assert.equal(old.headers['connection'], 'close');
      const fresh = await send(port, { path: '/3', agent });
      assert.equal(fresh.json().name, 'b');
    } finally {
      agent.destroy();
      await pw.stop();
      await a.close();
      await b.close();
    }
  });
});
