/**
 * fast-client.ts parseHead: which request heads the client fast path takes
 * (everything else goes to node:http), and the fields it reads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHead } from '../../src/protocols/http/fast-client';

/** parseHead on a head written with "\n" for CRLF (without the final empty line). */
const parse = (h: string): ReturnType<typeof parseHead> => parseHead(h.replace(/\n/g, '\r\n'));

test('plain bodyless requests are taken, with names and values as sent (trimmed)', () => {
  for (const m of ['GET', 'HEAD', 'DELETE', 'OPTIONS']) {
    const p = parse(`${m} /a?b=c HTTP/1.1\nHost: x\nX-Case:  Value \t\nx-empty:`);
    assert.ok(p !== null, m);
    assert.equal(p.method, m);
    assert.equal(p.url, '/a?b=c');
    assert.deepEqual(p.raw, ['Host', 'x', 'X-Case', 'Value', 'x-empty', '']);
  }
  assert.ok(parse('GET / HTTP/1.1\nHOST: x\nContent-Length: 0\nConnection: Keep-Alive') !== null, 'case-insensitive names, Content-Length 0, keep-alive');
});

test('everything else is left to node:http', () => {
  const refused = [
    'POST / HTTP/1.1\nHost: x',
    'PUT / HTTP/1.1\nHost: x',
    'get / HTTP/1.1\nHost: x',
    'GET / HTTP/1.0\nHost: x',
    'GET http://x/ HTTP/1.1\nHost: x',
    'GET * HTTP/1.1\nHost: x',
    'GET /a b HTTP/1.1\nHost: x',
    'GET / HTTP/1.1',
    'GET / HTTP/1.1\nX-A: 1',
    'GET / HTTP/1.1\nHost: x\nHost: y',
    'GET / HTTP/1.1\nHost: x\nContent-Length: 1',
    'GET / HTTP/1.1\nHost: x\nContent-Length: 0\nContent-Length: 0',
    'GET / HTTP/1.1\nHost: x\nContent-Length: 00',
    'GET / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked',
    'GET / HTTP/1.1\nHost: x\nExpect: 100-continue',
    'GET / HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade',
    'GET / HTTP/1.1\nHost: x\nConnection: close',
    'GET / HTTP/1.1\nHost: x\nConnection: keep-alive, x-hop',
    'GET / HTTP/1.1\nHost: x\nBad Name: 1',
    'GET / HTTP/1.1\nHost: x\n: 1',
    'GET / HTTP/1.1\nHost: x\n folded',
    'GET / HTTP/1.1\nHost: x\nX-Ctl: a\x01b',
    'GET / HTTP/1.1\nHost: x\nX-Obs: caf\xe9',
    'GET / HTTP/1.1\nHost: x\nX-NoColon',
    'GET /\x7f HTTP/1.1\nHost: x',
    'GET  / HTTP/1.1\nHost: x',
  ];
  for (const h of refused) assert.equal(parse(h), null, JSON.stringify(h));
});
