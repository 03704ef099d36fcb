/**
 * The hand-written HTTP/1.1 fast paths (fast-client.ts, fast-upstream.ts)
 * against peers written with node:net, so the framing on both sides is
 * exactly what the test writes: split heads, chunked bodies with extensions
 * and trailers, until-close bodies, bodiless statuses with Content-Length,
 * 1xx, bad and stalled upstream heads, upstream keep-alive closes, a large
 * body to a slow client; and on the client side pipelining that hands the
 * connection to node:http, malformed heads, header-name case, absolute-form
 * targets and a missing Host. Every case runs with fast_path true and false;
 * where the behaviour must be identical the two runs are compared.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, Socket, type AddressInfo, type Server } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { startPortway, type InProcess } from '../helpers/portway';

setFlagsFromString('--expose-gc');
/** A full garbage collection, so array buffer figures show what is still referenced. */
const gc = runInNewContext('gc') as () => void;

interface UpReq {
  method: string;
  url: string;
  /** Lowercased names; repeated fields joined with ", ". */
  headers: Record<string, string>;
  body: string;
}

type UpHandler = (sock: Socket, req: UpReq) => void;

interface RawUpstream {
  port: number;
  /** Connections accepted so far. */
  connections: number;
  seen: UpReq[];
  close(): Promise<void>;
}

/** An upstream over node:net: parses request heads (and Content-Length bodies) and lets `handle` write raw bytes. */
async function rawUpstream(handle: UpHandler): Promise<RawUpstream> {
  const socks = new Set<Socket>();
  const u = { connections: 0, seen: [] as UpReq[] } as unknown as RawUpstream;
  const server: Server = createServer((sock) => {
    u.connections++;
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let upgraded = false;
    sock.on('data', (d: Buffer) => {
      if (upgraded) {
        sock.write(Buffer.concat([Buffer.from('echo:'), d]));
        return;
      }
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = buf.toString('latin1', 0, end).split('\r\n');
        const [method, url] = lines[0]!.split(' ');
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':');
          const n = l.slice(0, c).toLowerCase();
          const v = l.slice(c + 1).trim();
          headers[n] = headers[n] === undefined ? v : `${headers[n]}, ${v}`;
        }
        const len = Number(headers['content-length'] ?? 0);
        if (buf.length < end + 4 + len) return;
        const body = buf.toString('latin1', end + 4, end + 4 + len);
        buf = buf.subarray(end + 4 + len);
        const req = { method: method!, url: url!, headers, body };
        u.seen.push(req);
        if (headers.upgrade !== undefined) upgraded = true;
        handle(sock, req);
        if (upgraded) return;
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.port = (server.address() as AddressInfo).port;
  u.close = () =>
    new Promise<void>((r) => {
      for (const s of socks) s.destroy();
      server.close(() => r());
    });
  return u;
}

interface Resp {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Parses the responses in `buf` for requests with `methods` (in order); 1xx
 * heads other than 101 are skipped. `closed`: the connection ended, so a body
 * without framing ends here. Returns the complete responses.
 */
function parseResponses(buf: Buffer, methods: string[], closed: boolean): Resp[] {
  const out: Resp[] = [];
  let off = 0;
  let i = 0;
  while (i < methods.length && off < buf.length) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const lines = buf.toString('latin1', off, end).split('\r\n');
    const status = Number(lines[0]!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      const n = l.slice(0, c).toLowerCase();
      const v = l.slice(c + 1).trim();
      headers[n] = headers[n] === undefined ? v : `${headers[n]}, ${v}`;
    }
    let p = end + 4;
    if (status >= 100 && status < 200 && status !== 101) {
      off = p;
      continue;
    }
    let body = '';
    if (methods[i] === 'HEAD' || status === 204 || status === 304 || status === 101) {
      // no body
    } else if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) {
      let ok = false;
      for (;;) {
        const le = buf.indexOf('\r\n', p);
        if (le < 0) break;
        const n = parseInt(buf.toString('latin1', p, le).split(';')[0]!, 16);
        p = le + 2;
        if (n === 0) {
          const te = buf.indexOf('\r\n\r\n', p - 2);
          if (te < 0) break;
          p = te + 4;
          ok = true;
          break;
        }
        if (buf.length < p + n + 2) break;
        body += buf.toString('latin1', p, p + n);
        p += n + 2;
      }
      if (!ok) break;
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (buf.length < p + n) break;
      body = buf.toString('latin1', p, p + n);
      p += n;
    } else {
      if (!closed) break;
      body = buf.toString('latin1', p);
      p = buf.length;
    }
    out.push({ status, headers, body });
    off = p;
    i++;
    if (status === 101) break;
  }
  return out;
}

interface Exchange {
  responses: Resp[];
  /** The proxy closed the connection (before the guard time). */
  closed: boolean;
  raw: Buffer;
}

/**
 * Writes `parts` (each after the previous one was flushed and a turn passed) on one connection and
 * reads until `methods.length` responses arrived (then closes) or the proxy closed it.
 */
function exchange(port: number, parts: string[], methods: string[], opts: { waitClose?: boolean; guardMs?: number } = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let got = Buffer.alloc(0);
    let closed = false;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(guard);
      s.destroy();
      resolve({ responses: parseResponses(got, methods, closed), closed, raw: got });
    };
    const guard = setTimeout(finish, opts.guardMs ?? 4000);
    s.on('connect', async () => {
      for (const p of parts) {
        await new Promise<void>((r) => s.write(p, 'latin1', () => r()));
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    s.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (!opts.waitClose && parseResponses(got, methods, false).length >= methods.length) finish();
    });
    s.on('error', () => {});
    s.on('close', () => {
      closed = true;
      finish();
    });
  });
}

/** A simple GET on a fresh connection. */
async function get(port: number, path: string, method = 'GET', extra = ''): Promise<Resp> {
  const ex = await exchange(port, [`${method} ${path} HTTP/1.1\r\nHost: t.example\r\n${extra}\r\n`], [method]);
  assert.equal(ex.responses.length, 1, `one response to ${method} ${path}: ${ex.raw.toString('latin1').slice(0, 300)}`);
  return ex.responses[0]!;
}

/** What is compared between the two settings. */
function shape(r: Resp, names: string[] = []): Record<string, unknown> {
  const h: Record<string, string | undefined> = {};
  for (const n of names) h[n] = r.headers[n];
  return { status: r.status, body: r.body, headers: h, error: r.headers['x-portway-error'] };
}

const BIG = 5 * 1024 * 1024;
const bigBody = Buffer.alloc(BIG, 'abcdefghijklmnopqrstuvwxyz0123456789');

/** Upstream behaviour by path. */
const behaviours: UpHandler = (sock, req) => {
  const p = req.url.split('?')[0];
  const send = (s: string): boolean => sock.write(s, 'latin1');
  switch (p) {
    case '/split': {
      const whole = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Split: yes\r\nContent-Length: 5\r\n\r\nhello';
      // The head in several writes, a few bytes each, apart in time.
      const pieces = [whole.slice(0, 3), whole.slice(3, 11), whole.slice(11, 30), whole.slice(30, 60), whole.slice(60, whole.length - 3), whole.slice(whole.length - 3)];
      let k = 0;
      const next = (): void => {
        if (sock.destroyed) return;
        send(pieces[k++]!);
        if (k < pieces.length) setTimeout(next, 15);
      };
      next();
      return;
    }
    case '/chunked':
      send('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n');
      send('5;name=value;flag\r\nhello\r\n');
      setTimeout(() => {
        send('1\r\n \r\n6;ext="q"\r\nworld!\r\n0;last=1\r\nX-Sum: 42\r\nX-Other: y\r\n\r\n');
      }, 10);
      return;
    case '/chunked-split': {
      const whole = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nA;e=1\r\n0123456789\r\n0\r\n\r\n';
      let k = 0;
      const next = (): void => {
        if (sock.destroyed) return;
        send(whole.slice(k, k + 7));
        k += 7;
        if (k < whole.length) setTimeout(next, 3);
      };
      next();
      return;
    }
    case '/until-close':
      send('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part;');
      setTimeout(() => sock.end('second part'), 20);
      return;
    case '/nobody':
      // HEAD, 204 and 304 with a Content-Length but no body; the connection stays usable.
      if (req.method === 'HEAD') send('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Kind: head\r\n\r\n');
      else if (req.headers['x-want'] === '204') send('HTTP/1.1 204 No Content\r\nContent-Length: 100\r\nX-Kind: 204\r\n\r\n');
      else send('HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: "v1"\r\nX-Kind: 304\r\n\r\n');
      return;
    case '/processing':
      send('HTTP/1.1 102 Processing\r\nX-Info: 1\r\n\r\n');
      setTimeout(() => send('HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Final: yes\r\n\r\ndone'), 10);
      return;
    case '/continue':
      send('HTTP/1.1 100 Continue\r\n\r\n');
      setTimeout(() => send('HTTP/1.1 102 Processing\r\nX-Info: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Final: yes\r\n\r\ndone'), 10);
      return;
    case '/bad-header':
      send('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nThis is not a header\r\n\r\nok');
      return;
    case '/bad-name':
      send('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nBad Name: x\r\n\r\nok');
      return;
    case '/bad-value':
      send('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Ctl: a\x01b\r\n\r\nok');
      return;
    case '/folded':
      send('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Fold: a\r\n  b\r\n\r\nok');
      return;
    case '/bad-chunk':
      send('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n');
      return;
    case '/cl-te':
      send('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
      return;
    case '/conn-close':
      send('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nclose');
      return;
    case '/http10':
      send('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold style');
      sock.end();
      return;
    case '/bad-status':
      send('HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok');
      return;
    case '/stall':
      send('HTTP/1.1 200 OK\r\nContent-Le'); // and nothing more
      return;
    case '/ka-close':
      // A keep-alive response, then the upstream closes the idle connection.
      send('HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: keep-alive\r\n\r\nka-close');
      setTimeout(() => sock.end(), 30);
      return;
    case '/big': {
      send(`HTTP/1.1 200 OK\r\nContent-Length: ${BIG}\r\n\r\n`);
      let off = 0;
      const pump = (): void => {
        while (off < BIG && !sock.destroyed) {
          const n = Math.min(65536, BIG - off);
          const ok = sock.write(bigBody.subarray(off, off + n));
          off += n;
          bigProgress.written = off;
          if (!ok) {
            sock.once('drain', pump);
            return;
          }
        }
      };
      pump();
      return;
    }
    case '/ws':
      send('HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n');
      return;
    default: {
      const body = JSON.stringify({ method: req.method, url: req.url, body: req.body, headers: req.headers });
      send(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`);
    }
  }
};

const bigProgress = { written: 0 };

/** Results by case name, per setting; compared at the end. */
const results: Record<'fast' | 'slow', Record<string, unknown>> = { fast: {}, slow: {} };

for (const fast of [true, false]) {
  const key = fast ? 'fast' : 'slow';
  describe(`http fast path: fast_path ${fast}`, () => {
    let up: RawUpstream;
    let pw: InProcess;
    let port: number;

    before(async () => {
      up = await rawUpstream(behaviours);
      pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    options:
      fast_path: ${fast}
      via: ""
      keep_alive_timeout: 1s
      upstream: { headers_timeout: 400ms }
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

    test('a response head split over several writes', async () => {
      const r = await get(port, '/split');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'hello');
      assert.equal(r.headers['x-split'], 'yes');
      results[key].split = shape(r, ['x-split', 'content-type']);
    });

    test('chunked with extensions and trailers; chunk lines split across reads', async () => {
      const r = await get(port, '/chunked');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'hello world!');
      const r2 = await get(port, '/chunked-split');
      assert.equal(r2.body, 'abcd0123456789');
      // The upstream connection is reused after a chunked body with trailers.
      const before = up.connections;
      const r3 = await get(port, '/echo');
      assert.equal(r3.status, 200);
      assert.equal(up.connections, before, 'the keep-alive connection is reused');
      results[key].chunked = [shape(r), shape(r2)];
    });

    test('an until-close body is passed whole', async () => {
      const r = await get(port, '/until-close');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'first part;second part');
      assert.equal((await get(port, '/echo')).status, 200, 'a new upstream connection serves the next request');
      results[key].untilClose = shape(r);
    });

    test('HEAD, 204 and 304 with a Content-Length have no body; the upstream connection stays usable', async () => {
      const before = up.connections;
      const h = await get(port, '/nobody', 'HEAD');
      assert.equal(h.status, 200);
      assert.equal(h.headers['x-kind'], 'head');
      assert.equal(h.headers['content-length'], '100');
      // undici (fast_path false) fails a 204 or 304 that has a Content-Length and no body
      // (UND_ERR_RES_CONTENT_LENGTH_MISMATCH); the fast path takes them as bodiless, as RFC 9112 says.
      if (!fast) {
        results[key].nobody = shape(h, ['x-kind', 'content-length']);
        assert.equal((await get(port, '/echo')).status, 200);
        return;
      }
      const n = await get(port, '/nobody', 'GET', 'x-want: 204\r\n');
      assert.equal(n.status, 204);
      assert.equal(n.body, '');
      const m = await get(port, '/nobody', 'GET', 'if-none-match: "v1"\r\n');
      assert.equal(m.status, 304);
      assert.equal(m.headers.etag, '"v1"');
      // Had the proxy waited for 100 body bytes, this answer would be eaten as one.
      const e = await get(port, '/echo?after-nobody');
      assert.equal(e.status, 200);
      assert.equal(JSON.parse(e.body).url, '/echo?after-nobody');
      assert.ok(up.connections <= before + 1, `upstream connections reused (${up.connections - before} new)`);
      // Pipelined on one client connection as well: HEAD then GET.
      const ex = await exchange(port, ['HEAD /nobody HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?p HTTP/1.1\r\nHost: a\r\n\r\n'], ['HEAD', 'GET']);
      assert.equal(ex.responses.length, 2);
      assert.equal(JSON.parse(ex.responses[1]!.body).url, '/echo?p');
      results[key].nobody = shape(h, ['x-kind', 'content-length']);
    });

    test('1xx heads are skipped: 102 then 200; 100 then 102 then 200', async () => {
      const ex = await exchange(port, ['GET /processing HTTP/1.1\r\nHost: a\r\n\r\n'], ['GET']);
      const r = ex.responses[0]!;
      assert.equal(r.status, 200);
      assert.equal(r.body, 'done');
      assert.equal(r.headers['x-final'], 'yes');
      assert.doesNotMatch(ex.raw.toString('latin1'), /HTTP\/1\.1 10[02]/, 'no 1xx passed to the client');
      results[key].processing = shape(r, ['x-final']);
      // undici (fast_path false) fails a 100 to a request without Expect ("bad response", a 502).
      if (!fast) return;
      const c = await exchange(port, ['GET /continue HTTP/1.1\r\nHost: a\r\n\r\n'], ['GET']);
      assert.equal(c.responses[0]!.status, 200);
      assert.equal(c.responses[0]!.body, 'done');
      assert.doesNotMatch(c.raw.toString('latin1'), /HTTP\/1\.1 10[02]/);
    });

    test('a bad upstream header line or status is a 502; the listener keeps serving', async () => {
      const r = await get(port, '/bad-header');
      assert.equal(r.status, 502);
      const s = await get(port, '/bad-status');
      assert.equal(s.status, 502);
      assert.equal((await get(port, '/echo')).status, 200);
      const more: Record<string, number> = {};
      for (const p of ['/bad-name', '/bad-value', '/folded', '/bad-chunk']) {
        const ex = await exchange(port, [`GET ${p} HTTP/1.1\r\nHost: a\r\n\r\n`], ['GET'], { waitClose: false, guardMs: 2000 });
        // A 502 when nothing was sent yet; a cut connection when the head was already out (bad chunk).
        more[p] = ex.responses[0]?.status ?? (ex.closed ? -1 : 0);
        assert.ok(more[p] === 502 || (p === '/bad-chunk' && more[p] === -1), `${p}: ${ex.raw.toString('latin1').slice(0, 200)}`);
        assert.equal((await get(port, '/echo')).status, 200, `the listener keeps serving after ${p}`);
      }
      results[key].badMore = more;
      results[key].bad = [r.status, r.headers['x-portway-error'], s.status, s.headers['x-portway-error']];
    });

    test('Content-Length with chunked, Connection: close, HTTP/1.0 until-close upstream answers', async () => {
      const a = await exchange(port, ['GET /cl-te HTTP/1.1\r\nHost: a\r\n\r\n'], ['GET'], { guardMs: 2000 });
      const b = await get(port, '/conn-close');
      assert.equal(b.body, 'close');
      const c = await get(port, '/http10');
      assert.equal(c.body, 'old style');
      const e = await get(port, '/echo?after');
      assert.equal(JSON.parse(e.body).url, '/echo?after');
      results[key].framing = [a.responses[0]?.status ?? (a.closed ? -1 : 0), shape(b), shape(c)];
    });

    test('a stalled upstream head is a 504 after upstream.headers_timeout', async () => {
      const r = await get(port, '/stall');
      assert.equal(r.status, 504);
      assert.equal(r.headers['x-portway-error'], 'PW_ERR_TIMEOUT');
      assert.equal((await get(port, '/echo')).status, 200);
      results[key].stall = shape(r, []).status;
    });

    test('an upstream closing an idle keep-alive connection: the next request still succeeds', async () => {
      for (let i = 0; i < 3; i++) {
        const closed = new Promise<void>((resolve) => {
          const before = up.connections;
          const check = setInterval(() => {
            if (up.connections > before) clearInterval(check);
          }, 5);
          setTimeout(() => {
            clearInterval(check);
            resolve();
          }, 150); // the upstream ends its side 30 ms after answering; the proxy sees the FIN well before this
        });
        const r = await get(port, '/ka-close');
        assert.equal(r.body, 'ka-close');
        await closed;
        const e = await get(port, `/echo?after-close-${i}`);
        assert.equal(e.status, 200, `request ${i} after the upstream closed`);
        assert.equal(JSON.parse(e.body).url, `/echo?after-close-${i}`);
      }
      results[key].kaClose = 'ok';
    });

    test('a 5 MB body to a slow client arrives whole; the proxy does not buffer it', async () => {
      bigProgress.written = 0;
      const s = connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      await new Promise<void>((r) => s.on('connect', () => r()));
      gc();
      const baseline = process.memoryUsage().arrayBuffers;
      let got = 0;
      let head = '';
      let headDone = false;
      let resumeReading: (() => void) | null = null;
      const headSeen = new Promise<void>((r) => (resumeReading = r));
      const done = new Promise<void>((resolve) => {
        s.on('data', (c: Buffer) => {
          if (!headDone) {
            head += c.toString('latin1');
            const e = head.indexOf('\r\n\r\n');
            if (e < 0) return;
            headDone = true;
            got += Buffer.byteLength(head, 'latin1') - e - 4;
            // Stop reading until the test has looked at the upstream.
            s.pause();
            resumeReading!();
          } else got += c.length;
          if (got >= BIG) resolve();
        });
        s.on('close', () => resolve());
      });
      s.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n');
      await headSeen;
      // The client reads nothing: the upstream's writes must stop short of the body (the proxy reads only as fast as the client).
      let last = -1;
      while (bigProgress.written !== last) {
        last = bigProgress.written;
        await new Promise((r) => setTimeout(r, 200));
      }
      const stalledAt = bigProgress.written;
      gc();
      const held = process.memoryUsage().arrayBuffers - baseline;
      // Bytes queued in user space on every socket of this process (upstream, proxy both sides, client).
      let queued = 0;
      // The proxy's connection to the upstream: paused (it stopped reading because the client's side is full).
      let upstreamSidePaused = false;
      for (const h of (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles()) {
        if (!(h instanceof Socket)) continue;
        queued += h.writableLength + h.readableLength;
        if (h.remotePort === up.port && h.readableLength > 0 && h.isPaused()) upstreamSidePaused = true;
      }
      // Then a slow reader: a pause now and then.
      s.on('data', () => {
        s.pause();
        setTimeout(() => s.resume(), 1);
      });
      s.resume();
      await done;
      s.destroy();
      assert.match(head, /^HTTP\/1\.1 200 /);
      assert.equal(got, BIG, 'the whole body');
      // (Loopback socket buffers may take the whole 5 MB, so how far the upstream got is not asserted: stalledAt.)
      void stalledAt;
      // While the client reads nothing, the sockets' queues hold a fraction of the body (the kernel's buffers take the rest),
      // and this process's array buffers (after a full collection) did not take the body in.
      assert.ok(upstreamSidePaused, 'the proxy stopped reading the upstream');
      assert.ok(queued < 1024 * 1024, `socket queues held ${queued} bytes while stalled`);
      assert.ok(held < BIG, `array buffers grew by ${held} bytes while stalled`);
      results[key].big = got;
    });

    test('pipelined requests: a POST with a body forces the hand-over; all answers in order and intact', async () => {
      const reqs =
        'GET /echo?1 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'GET /echo?2 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'POST /echo?3 HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world' +
        'GET /echo?4 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'DELETE /echo?5 HTTP/1.1\r\nHost: a\r\n\r\n';
      const methods = ['GET', 'GET', 'POST', 'GET', 'DELETE'];
      const all = await exchange(port, [reqs], methods);
      const check = (ex: Exchange, label: string): void => {
        assert.equal(ex.responses.length, 5, `${label}: ${ex.raw.toString('latin1').slice(0, 400)}`);
        ex.responses.forEach((r, i) => {
          assert.equal(r.status, 200, `${label} #${i + 1}`);
          const j = JSON.parse(r.body) as UpReq;
          assert.equal(j.url, `/echo?${i + 1}`, `${label}: in order`);
          assert.equal(j.method, methods[i]);
        });
        assert.equal((JSON.parse(ex.responses[2]!.body) as UpReq).body, 'hello world');
      };
      check(all, 'one write');
      // The same requests written in pieces that split heads and the body.
      const pieces: string[] = [];
      for (let i = 0; i < reqs.length; i += 23) pieces.push(reqs.slice(i, i + 23));
      check(await exchange(port, pieces, methods), 'pieces');
      // Fast requests answered first, then the POST arrives later on the same connection.
      check(await exchange(port, [reqs.slice(0, reqs.indexOf('POST')), reqs.slice(reqs.indexOf('POST'))], methods), 'two writes');
      results[key].pipelined = all.responses.map((r) => shape(r));
    });

    test('pipelined GET then an Upgrade: the GET is answered, then the 101 and the upgraded stream', async () => {
      const s = connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      let got = '';
      const seen = (re: RegExp): Promise<void> =>
        new Promise((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}: ${JSON.stringify(got)}`)), 4000);
          const check = (): void => {
            if (re.test(got)) {
              clearTimeout(t);
              s.removeListener('data', onData);
              resolve();
            }
          };
          const onData = (c: Buffer): void => {
            got += c.toString('latin1');
            check();
          };
          s.on('data', onData);
          check();
        });
      await new Promise<void>((r) => s.on('connect', () => r()));
      s.write('GET /echo?before-ws HTTP/1.1\r\nHost: a\r\n\r\nGET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n');
      await seen(/HTTP\/1\.1 101 [^]*\r\n\r\n/);
      s.write('ping');
      await seen(/echo:ping/);
      s.destroy();
      const first = got.indexOf('HTTP/1.1 200');
      const second = got.indexOf('HTTP/1.1 101');
      assert.ok(first >= 0 && first < second, 'the GET answer first');
      assert.match(got, /before-ws/);
      results[key].upgrade = 'ok';
    });

    test('malformed request heads get 400 and the connection closes', async () => {
      const bad = [
        'GET / HTTP/1.1\r\nHost: a\r\nBad Header: y\r\n\r\n',
        'GET / HTTP/1.1\r\nHost: a\r\n: empty-name\r\n\r\n',
        'GET / HTTP/1.1\r\nHost: a\r\nX-Ctl: a\x01b\r\n\r\n',
        'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n',
        'GARBAGE\r\n\r\n',
        'GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n',
        'GET / HTTP/1.1\r\nHost: a\r\n folded: x\r\n\r\n',
      ];
      const out: unknown[] = [];
      for (const b of bad) {
        const ex = await exchange(port, [b], ['GET'], { waitClose: true });
        assert.equal(ex.responses[0]?.status, 400, `${JSON.stringify(b)} → ${ex.raw.toString('latin1').slice(0, 100)}`);
        assert.ok(ex.closed, `${JSON.stringify(b)}: connection closed`);
        out.push(ex.responses[0]!.status);
      }
      // A malformed request after a good one on the same connection: 200, then 400 and close.
      const ex = await exchange(port, ['GET /echo?ok HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nBad Header: y\r\n\r\n'], ['GET', 'GET'], { waitClose: true });
      // node:http (fast_path false) answers the parse error at once and closes, dropping the 200 in flight;
      // the fast path answers the first request, then hands the bad one to node:http.
      if (fast)
        assert.deepEqual(
          ex.responses.map((r) => r.status),
          [200, 400],
        );
      assert.ok(ex.closed);
      assert.equal((await get(port, '/echo')).status, 200, 'the listener keeps serving');
      results[key].malformed = out;
    });

    test('header names in any case; repeated headers', async () => {
      const ex = await exchange(
        port,
        ['GET /echo?case HTTP/1.1\r\nHOST: Case.Example\r\nX-UPPER: A\r\nx-lower: b\r\nX-Mixed-Case: c\r\nx-rep: 1\r\nX-REP: 2\r\nCONNECTION: keep-alive\r\n\r\n'],
        ['GET'],
      );
      const r = ex.responses[0]!;
      assert.equal(r.status, 200);
      const h = (JSON.parse(r.body) as UpReq).headers;
      assert.equal(h.host, 'Case.Example');
      assert.equal(h['x-upper'], 'A');
      assert.equal(h['x-lower'], 'b');
      assert.equal(h['x-mixed-case'], 'c');
      assert.equal(h['x-rep'], '1, 2');
      results[key].headerCase = { host: h.host, upper: h['x-upper'], lower: h['x-lower'], mixed: h['x-mixed-case'], rep: h['x-rep'], xff: h['x-forwarded-for'], xfh: h['x-forwarded-host'], conn: h.connection };
    });

    test('absolute-form targets', async () => {
      const ex = await exchange(port, ['GET http://abs.example/echo?abs=1 HTTP/1.1\r\nHost: abs.example\r\n\r\n'], ['GET']);
      const r = ex.responses[0]!;
      assert.equal(r.status, 200);
      const j = JSON.parse(r.body) as UpReq;
      results[key].absolute = { status: r.status, url: j.url, host: j.headers.host };
    });

    test('requests the fast path leaves to node:http: lowercase method, HTTP/1.0, obs-text, Expect, idle keep-alive close', async () => {
      const out: unknown[] = [];
      for (const r of [
        'get /echo HTTP/1.1\r\nHost: a\r\n\r\n',
        'GET /echo?v10 HTTP/1.0\r\nHost: a\r\n\r\n',
        'GET /echo?obs HTTP/1.1\r\nHost: a\r\nX-Obs: caf\xe9\r\n\r\n',
        'GET /echo?exp HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n',
        'PATCH /echo?patch HTTP/1.1\r\nHost: a\r\n\r\n',
      ]) {
        const ex = await exchange(port, [r], ['GET'], { guardMs: 2000 });
        const resp = ex.responses[0];
        out.push(resp === undefined ? null : { status: resp.status, url: resp.body.startsWith('{') ? (JSON.parse(resp.body) as UpReq).url : null });
      }
      assert.equal((out[1] as { status: number }).status, 200);
      assert.equal((out[2] as { status: number }).status, 200);
      results[key].leftToNode = out;
      // An idle keep-alive connection is closed after keep_alive_timeout.
      const idle = await exchange(port, ['GET /echo HTTP/1.1\r\nHost: a\r\n\r\n'], ['GET'], { waitClose: true, guardMs: 5000 });
      assert.equal(idle.responses[0]?.status, 200);
      assert.ok(idle.closed, 'closed when idle');
    });

    test('a client that half-closes after its requests gets every answer, then the close', async () => {
      const out = await new Promise<{ got: Buffer; closed: boolean }>((resolve) => {
        const c = connect({ port, host: '127.0.0.1' });
        let got = Buffer.alloc(0);
        const guard = setTimeout(() => c.destroy(), 3000);
        c.on('connect', () => c.end('GET /echo?h1 HTTP/1.1\r\nHost: a\r\n\r\nGET /split HTTP/1.1\r\nHost: a\r\n\r\n'));
        c.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
        c.on('error', () => {});
        c.on('close', () => {
          clearTimeout(guard);
          resolve({ got, closed: true });
        });
      });
      const rs = parseResponses(out.got, ['GET', 'GET'], true);
      // node:http (fast_path false; httpAllowHalfOpen off) aborts the requests in flight when the client half-closes and closes at once.
      if (!fast) return;
      assert.equal(rs.length, 2, out.got.toString('latin1').slice(0, 300));
      assert.equal((JSON.parse(rs[0]!.body) as UpReq).url, '/echo?h1');
      assert.equal(rs[1]!.body, 'hello');
      results[key].halfClose = rs.map((r) => r.status);
    });

    test('a missing Host is a 400', async () => {
      const ex = await exchange(port, ['GET /echo HTTP/1.1\r\nX-A: 1\r\n\r\n'], ['GET'], { waitClose: true });
      assert.equal(ex.responses[0]?.status, 400);
      assert.ok(ex.closed);
      const two = await exchange(port, ['GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'], ['GET']);
      // Two Host fields: not taken by the fast path; node:http (either setting) decides.
      results[key].noHost = [ex.responses[0]!.status, two.responses[0]!.status];
    });

    test('requests the fast path takes and their answers: methods, Content-Length: 0, response framing', async () => {
      const ex = await exchange(
        port,
        [
          'GET /echo?m=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n' +
            'OPTIONS /echo?m=2 HTTP/1.1\r\nHost: a\r\n\r\n' +
            'DELETE /echo?m=3 HTTP/1.1\r\nHost: a\r\n\r\n' +
            'HEAD /echo?m=4 HTTP/1.1\r\nHost: a\r\n\r\n' +
            'GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n' +
            'GET /until-close HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
        ],
        ['GET', 'OPTIONS', 'DELETE', 'HEAD', 'GET', 'GET'],
        { waitClose: true },
      );
      assert.equal(ex.responses.length, 6, ex.raw.toString('latin1').slice(0, 600));
      assert.ok(ex.closed, 'Connection: close is honoured');
      const urls = ex.responses.slice(0, 3).map((r) => (JSON.parse(r.body) as UpReq).url);
      assert.deepEqual(urls, ['/echo?m=1', '/echo?m=2', '/echo?m=3']);
      assert.equal(ex.responses[3]!.body, '');
      assert.ok(Number(ex.responses[3]!.headers['content-length']) > 0);
      assert.equal(ex.responses[4]!.body, 'hello world!');
      assert.equal(ex.responses[5]!.body, 'first part;second part');
      assert.equal(ex.responses[5]!.headers.connection, 'close');
      results[key].methods = ex.responses.map((r) => {
        if (!r.body.startsWith('{')) return { status: r.status, body: r.body };
        const j = JSON.parse(r.body) as UpReq;
        return { status: r.status, method: j.method, url: j.url, headers: Object.fromEntries(Object.entries(j.headers).sort()) };
      });
    });
  });
}

describe('http fast path: fast_path true and false answer alike', () => {
  test('the same responses (status, body, relevant headers)', () => {
    for (const k of Object.keys(results.slow)) {
      assert.ok(k in results.fast, `${k} ran with fast_path true`);
      assert.deepEqual(results.fast[k], results.slow[k], k);
    }
    assert.ok(Object.keys(results.slow).length >= 10);
  });
});
