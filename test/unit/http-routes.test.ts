/**
 * The HTTP protocol's pure parts: route specificity order, header rewriting
 * both ways, the error mapper, health-check status ranges and option checks.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { HttpRouteTable, hostOnly } from '../../src/protocols/http/routes';
import { normalizeRoute, type RawHttpRoute } from '../../src/protocols/http/options';
import { scanRequestHeaders, responseHeaders } from '../../src/protocols/http/headers';
import { renderError, statusOf, HttpClientError } from '../../src/protocols/http/error-response';
import { parseStatusRanges } from '../../src/protocols/http/health-probe';
import { ErrorCode, ProxyError } from '../../src/errors';
import type { Cluster } from '../../src/routing/cluster';
import { builtins } from '../../src/builtins';
import { loadConfigText } from '../../src/config/load';

function table(routes: RawHttpRoute[]): HttpRouteTable {
  const clusters = new Map<string, Cluster>();
  for (const r of routes) if (r.cluster !== undefined) clusters.set(r.cluster, { name: r.cluster } as Cluster);
  return new HttpRouteTable(
    routes.map((r, i) => normalizeRoute(r, i)),
    clusters,
    () => null,
  );
}

const noHeaders = { headers: {} } as IncomingMessage;
const withHeaders = (h: Record<string, string>) => ({ headers: h }) as unknown as IncomingMessage;

describe('http route table', () => {
  test('sorted by host, then path specificity, then order written', () => {
    const t = table([
      { name: 'any', cluster: 'c' },
      { name: 'short', path_prefix: '/a', cluster: 'c' },
      { name: 'long', path_prefix: '/a/b', cluster: 'c' },
      { name: 'exactpath', path: '/a/b', cluster: 'c' },
      { name: 'wild', host: '*.x.com', cluster: 'c' },
      { name: 'wilder', host: '*.b.x.com', cluster: 'c' },
      { name: 'host', host: 'a.x.com', cluster: 'c' },
      { name: 'short2', path_prefix: '/a', cluster: 'c' },
    ]);
    assert.deepEqual(t.order(), ['host', 'wilder', 'wild', 'exactpath', 'long', 'short', 'short2', 'any']);
    assert.equal(t.match('a.x.com', '/a/b', 'GET', noHeaders)?.name, 'host');
    assert.equal(t.match('c.b.x.com', '/', 'GET', noHeaders)?.name, 'wilder');
    assert.equal(t.match('x.com', '/a/b', 'GET', noHeaders)?.name, 'exactpath');
    assert.equal(t.match('', '/a/b/c', 'GET', noHeaders)?.name, 'long');
    assert.equal(t.match('', '/ab', 'GET', noHeaders)?.name, 'short');
    assert.equal(t.match('', '/z', 'GET', noHeaders)?.name, 'any');
  });

  test('methods and headers filter without changing the order; no match is null', () => {
    const t = table([
      { name: 'get', path_prefix: '/', methods: ['GET', 'HEAD'], cluster: 'c' },
      { name: 'beta', path_prefix: '/', headers: { 'X-Beta': { exact: 'on' } }, cluster: 'c' },
      { name: 'nobeta', path_prefix: '/', headers: { 'x-beta': { present: false }, 'x-k': { regex: '^[0-9]+$', invert: true } }, cluster: 'c' },
    ]);
    assert.equal(t.match('', '/', 'HEAD', noHeaders)?.name, 'get');
    assert.equal(t.match('', '/', 'POST', withHeaders({ 'x-beta': 'on' }))?.name, 'beta');
    assert.equal(t.match('', '/', 'POST', noHeaders)?.name, 'nobeta');
    assert.equal(t.match('', '/', 'POST', withHeaders({ 'x-k': '12' })), null);
    assert.equal(t.match('', '/', 'POST', withHeaders({ 'x-beta': 'off' })), null);
  });

  test('hostOnly lowercases and drops the port (IPv6 literals too)', () => {
    assert.equal(hostOnly('Example.COM:8080'), 'example.com');
    assert.equal(hostOnly('example.com'), 'example.com');
    assert.equal(hostOnly('[::1]:80'), '[::1]');
    assert.equal(hostOnly('[::1]'), '[::1]');
  });
});

describe('http headers', () => {
  const fwd = { xForwarded: true, trustForwarded: false, via: '1.1 portway' };

  test('request: hop-by-hop and Connection-named fields removed, forwarding fields added, framing facts read', () => {
    const h = scanRequestHeaders(
      ['Host', 'a.b:81', 'Connection', 'keep-alive, X-Private', 'X-Private', 'p', 'Keep-Alive', 'timeout=5', 'TE', 'trailers', 'Expect', '100-continue', 'Transfer-Encoding', 'chunked', 'X-Forwarded-For', '1.1.1.1', 'x-forwarded-for', '2.2.2.2', 'X-Forwarded-Proto', 'https', 'Via', '1.0 edge', 'Accept', '*/*', 'Upgrade', 'websocket'],
      '10.0.0.9',
      'http',
      fwd,
    );
    assert.equal(h.host, 'a.b:81');
    assert.equal(h.chunked, true);
    assert.equal(h.contentLength, -1);
    assert.equal(h.upgrade, 'websocket');
    assert.deepEqual(h.headers, ['Accept', '*/*', 'x-forwarded-for', '1.1.1.1, 2.2.2.2, 10.0.0.9', 'x-forwarded-proto', 'http', 'x-forwarded-host', 'a.b:81', 'via', '1.0 edge, 1.1 portway']);
  });

  test('request: trust_forwarded keeps the client forwarding fields; x_forwarded off and via off pass them untouched', () => {
    const trusted = scanRequestHeaders(['X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'pub.example', 'Host', 'in', 'Content-Length', '3'], '1.2.3.4', 'http', { ...fwd, trustForwarded: true });
    assert.deepEqual(trusted.headers, ['Content-Length', '3', 'x-forwarded-for', '1.2.3.4', 'x-forwarded-proto', 'https', 'x-forwarded-host', 'pub.example', 'via', '1.1 portway']);
    assert.equal(trusted.contentLength, 3);
    const off = scanRequestHeaders(['X-Forwarded-For', 'a', 'Via', 'v'], '1.2.3.4', 'http', { xForwarded: false, trustForwarded: false, via: null });
    assert.deepEqual(off.headers, ['X-Forwarded-For', 'a', 'Via', 'v']);
  });

  test('response: hop-by-hop removed, Via appended; a 101 keeps Connection and Upgrade', () => {
    const raw = ['Content-Length', '2', 'Connection', 'close, X-Up', 'X-Up', 'u', 'Transfer-Encoding', 'chunked', 'Keep-Alive', 'timeout=5', 'Via', '1.1 app', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'].map((s) =>
      Buffer.from(s, 'latin1'),
    );
    assert.deepEqual(responseHeaders(raw, '1.1 portway'), ['Content-Length', '2', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'via', '1.1 app, 1.1 portway']);
    assert.deepEqual(responseHeaders(['Upgrade', 'websocket', 'Connection', 'Upgrade', 'Sec-WebSocket-Accept', 'x'], null, true), ['Upgrade', 'websocket', 'Connection', 'Upgrade', 'Sec-WebSocket-Accept', 'x']);
  });
});

describe('http error mapper', () => {
  test('statuses by code', () => {
    const s = (code: (typeof ErrorCode)[keyof typeof ErrorCode]) => statusOf(new ProxyError(code, 'x'));
    assert.equal(s(ErrorCode.RateLimited), 429);
    assert.equal(s(ErrorCode.CircuitOpen), 503);
    assert.equal(s(ErrorCode.Overflow), 503);
    assert.equal(s(ErrorCode.NoHealthyUpstream), 503);
    assert.equal(s(ErrorCode.UpstreamConnect), 502);
    assert.equal(s(ErrorCode.UpstreamReset), 502);
    assert.equal(s(ErrorCode.Timeout), 504);
    assert.equal(s(ErrorCode.ConnectTimeout), 504);
    assert.equal(s(ErrorCode.NoRoute), 404);
    assert.equal(s(ErrorCode.Protocol), 400);
    assert.equal(s(ErrorCode.Internal), 500);
    assert.equal(statusOf(new HttpClientError(413, 'big')), 413);
  });

  test('body and headers: code header, Retry-After rounded up to whole seconds, no stack, no cause', () => {
    const cause = new Error('secret internal detail');
    const r = renderError(new ProxyError(ErrorCode.RateLimited, 'rate limit exceeded\nsecond line', { retryAfterMs: 1200, cause }), 'json');
    assert.equal(r.status, 429);
    const h = Object.fromEntries(Array.from({ length: r.headers.length / 2 }, (_, i) => [r.headers[2 * i], r.headers[2 * i + 1]]));
    assert.equal(h['x-portway-error'], 'PW_ERR_RATE_LIMITED');
    assert.equal(h['retry-after'], '2');
    assert.equal(h['content-length'], String(r.body.length));
    assert.deepEqual(JSON.parse(r.body.toString()), { error: 'PW_ERR_RATE_LIMITED', message: 'rate limit exceeded second line' });
    assert.doesNotMatch(r.body.toString(), /secret|at /);
    const t = renderError(new ProxyError(ErrorCode.Timeout, 'no answer within 5 ms'), 'text');
    assert.equal(t.body.toString(), '504 Gateway Timeout: no answer within 5 ms (PW_ERR_TIMEOUT)\n');
    assert.equal(t.headers.includes('retry-after'), false);
  });
});

describe('http options', () => {
  test('expected_statuses ranges', () => {
    assert.deepEqual(parseStatusRanges([200, '204', '300-399']), [
      [200, 200],
      [204, 204],
      [300, 399],
    ]);
    assert.throws(() => parseStatusRanges(['2xx']));
  });

  test('config checks: routes both ways, unknown clusters, path with path_prefix, rewrite without prefix, bad regex, timeouts', () => {
    const reg = builtins().registries;
    assert.throws(
      () =>
        loadConfigText(
          `
listeners:
  - name: w
    address: 127.0.0.1:0
    protocol: http
    routes: [{ cluster: c }]
    options:
      headers_timeout: 10m
      routes:
        - { path: /a, path_prefix: /a, cluster: nope }
        - { prefix_rewrite: /, cluster: c, headers: { x: { regex: "(" } } }
        - { path_prefix: /z }
clusters: [{ name: c, endpoints: ["127.0.0.1:1"] }]
`,
          reg,
        ),
      (e: Error) =>
        [
          /listeners\[0\]\.options\.routes: give HTTP routes here or the listener's routes, not both/,
          /options\.routes\[0\]\.cluster: unknown cluster 'nope'/,
          /options\.routes\[0\]: give path or path_prefix, not both/,
          /options\.routes\[1\]\.prefix_rewrite: prefix_rewrite needs path_prefix/,
          /options\.routes\[1\]\.headers\.x\.regex: invalid regular expression/,
          /options\.routes\[2\]: give one of cluster, weighted_clusters or handler/,
          /options\.headers_timeout: must not be longer than request_timeout/,
        ].every((re) => re.test(e.message)),
    );
    const ok = loadConfigText(
      `
listeners: [{ name: w, address: 127.0.0.1:0, protocol: http, options: { routes: [{ host: "*.a.com", path_prefix: /, cluster: c }] } }]
clusters:
  - name: c
    endpoints: ["127.0.0.1:1"]
    health_check: { active: { type: http, path: /healthz, host: svc, expected_statuses: [200, "300-302"] } }
`,
      reg,
    );
    assert.deepEqual(ok.clusters[0]!.active?.expectedStatuses, [
      [200, 200],
      [300, 302],
    ]);
    assert.equal(ok.clusters[0]!.active?.path, '/healthz');
  });
});
