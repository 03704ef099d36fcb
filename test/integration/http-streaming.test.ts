/**
 * Streaming through the HTTP proxy: 50 MB request and response bodies pass
 * without being buffered (a slow side holds the other back: backpressure
 * reaches the far end, and memory stays bounded), and WebSocket upgrades are
 * spliced end to end (a minimal RFC 6455 echo server written here, undici's
 * WebSocket as the client).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocket } from 'undici';
import { startPortway } from '../helpers/portway';
import { sleep, waitFor } from '../helpers/net';

const MB = 1024 * 1024;
const TOTAL = 50 * MB;
const CHUNK = 64 * 1024;

/** One reusable chunk: the sender never allocates the body. */
const pattern = Buffer.alloc(CHUNK, 'abcdefghijklmnopqrstuvwxyz0123456789');

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
}

// A gc() for this test file only, so live memory can be told from garbage not collected yet.
setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void;

/**
 * Live memory (JS heap + Buffers) after full collections. Buffer memory is
 * released by a background sweeper, so collect, let it run, collect again.
 */
async function liveBytes(): Promise<number> {
  gc();
  await new Promise((r) => setTimeout(r, 50));
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Samples RSS every 20 ms; returns the peak growth over the start when stopped. */
function rssWatch(): () => number {
  const start = process.memoryUsage().rss;
  let peak = start;
  const t = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  return () => {
    clearInterval(t);
    return Math.max(peak, process.memoryUsage().rss) - start;
  };
}

/** Writes TOTAL bytes of the pattern to w, waiting for drain; `sent` reports progress. */
function pump(w: NodeJS.WritableStream, sent: { n: number }, done: () => void): void {
  const step = () => {
    while (sent.n < TOTAL) {
      sent.n += CHUNK;
      if (!w.write(pattern)) {
        w.once('drain', step);
        return;
      }
    }
    w.end();
    done();
  };
  step();
}

const PAUSE_AT = 5 * MB;
const PAUSE_MS = 1500;
/** What may sit in socket buffers and stream queues while one side is paused (kernel buffers on loopback are a few MB). */
const IN_FLIGHT_BOUND = 20 * MB;
/** Garbage between collections counts in RSS: a loose bound (buffering the whole body would pass it), the tight one is on live memory. */
const RSS_BOUND = 96 * MB;
/** Live memory while one side is paused: only stream and socket buffers, never the body. */
const LIVE_BOUND = 16 * MB;

describe('http streaming', () => {
  test('a 50 MB upload streams through; a paused upstream holds the client back', async (t) => {
    let received = 0;
    let liveAtPause = 0;
    let sentAtPause = 0;
    let sentAtResume = 0;
    const sent = { n: 0 };
    const upstream = createServer((req, res) => {
      const h = createHash('sha256');
      let paused = false;
      req.on('data', (c: Buffer) => {
        received += c.length;
        h.update(c);
        if (!paused && received >= PAUSE_AT) {
          paused = true;
          req.pause();
          sentAtPause = sent.n;
          setTimeout(() => {
            sentAtResume = sent.n;
            void liveBytes().then((b) => {
              liveAtPause = b - liveBase;
              req.resume();
            });
          }, PAUSE_MS);
        }
      });
      req.on('end', () => res.end(JSON.stringify({ received, sha: h.digest('hex') })));
    });
    const upPort = await listen(upstream);
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    routes: [{ cluster: up }]
clusters:
  - { name: up, endpoints: ["127.0.0.1:${upPort}"] }
`);
    const expected = createHash('sha256');
    for (let i = 0; i < TOTAL / CHUNK; i++) expected.update(pattern);
    const liveBase = await liveBytes();
    const stop = rssWatch();
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port: pw.port('web'), method: 'PUT', path: '/upload', headers: { 'content-length': String(TOTAL) }, agent: false },
          (res) => {
            let b = '';
            res.on('data', (c: Buffer) => (b += c.toString()));
            res.on('end', () => resolve(b));
          },
        );
        req.on('error', reject);
        pump(req, sent, () => {});
      });
      const growth = stop();
      const r = JSON.parse(body) as { received: number; sha: string };
      assert.equal(r.received, TOTAL);
      assert.equal(r.sha, expected.digest('hex'));
      t.diagnostic(`sent while paused: ${((sentAtResume - sentAtPause) / MB).toFixed(1)} MB; live memory at the pause +${(liveAtPause / MB).toFixed(1)} MB; peak RSS growth ${(growth / MB).toFixed(1)} MB`);
      assert.ok(liveAtPause < LIVE_BOUND, `live memory grew by ${(liveAtPause / MB).toFixed(1)} MB while paused`);
      assert.ok(sentAtResume - sentAtPause < IN_FLIGHT_BOUND, `the client went on sending ${((sentAtResume - sentAtPause) / MB).toFixed(1)} MB while the upstream was paused`);
      assert.ok(growth < RSS_BOUND, `RSS grew by ${(growth / MB).toFixed(1)} MB`);
    } finally {
      stop();
      await pw.stop();
      await closeServer(upstream);
    }
  });

  test('a 50 MB download streams through; a paused client holds the upstream back', async (t) => {
    const sent = { n: 0 };
    const upstream = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }); // chunked: no length known in advance
      pump(res, sent, () => {});
    });
    const upPort = await listen(upstream);
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    routes: [{ cluster: up }]
clusters:
  - { name: up, endpoints: ["127.0.0.1:${upPort}"] }
`);
    let liveAtPause = 0;
    const liveBase = await liveBytes();
    const stop = rssWatch();
    let sentAtPause = 0;
    let sentAtResume = 0;
    try {
      const got = await new Promise<{ n: number; sha: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: pw.port('web'), path: '/download', agent: false }, (res) => {
          const h = createHash('sha256');
          let n = 0;
          let paused = false;
          res.on('data', (c: Buffer) => {
            n += c.length;
            h.update(c);
            if (!paused && n >= PAUSE_AT) {
              paused = true;
              res.pause();
              sentAtPause = sent.n;
              setTimeout(() => {
                sentAtResume = sent.n;
                void liveBytes().then((b) => {
                  liveAtPause = b - liveBase;
                  res.resume();
                });
              }, PAUSE_MS);
            }
          });
          res.on('end', () => resolve({ n, sha: h.digest('hex') }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      const growth = stop();
      const expected = createHash('sha256');
      for (let i = 0; i < TOTAL / CHUNK; i++) expected.update(pattern);
      assert.equal(got.n, TOTAL);
      assert.equal(got.sha, expected.digest('hex'));
      t.diagnostic(`sent while paused: ${((sentAtResume - sentAtPause) / MB).toFixed(1)} MB; live memory at the pause +${(liveAtPause / MB).toFixed(1)} MB; peak RSS growth ${(growth / MB).toFixed(1)} MB`);
      assert.ok(liveAtPause < LIVE_BOUND, `live memory grew by ${(liveAtPause / MB).toFixed(1)} MB while paused`);
      assert.ok(sentAtResume - sentAtPause < IN_FLIGHT_BOUND, `the upstream went on sending ${((sentAtResume - sentAtPause) / MB).toFixed(1)} MB while the client was paused`);
      assert.ok(growth < RSS_BOUND, `RSS grew by ${(growth / MB).toFixed(1)} MB`);
    } finally {
      stop();
      await pw.stop();
      await closeServer(upstream);
    }
  });

  test('a client that goes away mid-download aborts the upstream response', async () => {
    let upstreamClosed = false;
    const upstream = createServer((_req, res) => {
      res.on('close', () => (upstreamClosed = !res.writableFinished));
      pump(res, { n: 0 }, () => {});
    });
    const upPort = await listen(upstream);
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    routes: [{ cluster: up }]
clusters:
  - { name: up, endpoints: ["127.0.0.1:${upPort}"] }
`);
    try {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: pw.port('web'), path: '/d', agent: false }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
            if (n > MB) {
              req.destroy();
              resolve();
            }
          });
        });
        req.on('error', () => {});
        req.on('close', () => resolve());
        req.on('error', reject);
        req.end();
      });
      await waitFor(() => upstreamClosed, 5000, 'the upstream response to be aborted');
    } finally {
      await pw.stop();
      await closeServer(upstream);
    }
  });
});

/** A minimal RFC 6455 server side: handshake, then every data frame echoed back unmasked; close answered. */
function wsEchoServer(): Server {
  const server = createServer((_req, res) => res.end('not a websocket request'));
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || req.headers['upgrade']?.toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      return;
    }
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nX-Seen-Via: ${req.headers['via'] ?? ''}\r\n\r\n`);
    let buf = head;
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        if (buf.length < 2) return;
        const opcode = buf[0]! & 0x0f;
        const masked = (buf[1]! & 0x80) !== 0;
        let len = buf[1]! & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        const maskOff = off;
        if (masked) off += 4;
        if (buf.length < off + len) return;
        const payload = Buffer.from(buf.subarray(off, off + len));
        if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= buf[maskOff + (i & 3)]!;
        buf = buf.subarray(off + len);
        let hdr: Buffer;
        if (payload.length < 126) hdr = Buffer.from([0x80 | opcode, payload.length]);
        else if (payload.length < 65536) {
          hdr = Buffer.alloc(4);
          hdr[0] = 0x80 | opcode;
          hdr[1] = 126;
          hdr.writeUInt16BE(payload.length, 2);
        } else {
          hdr = Buffer.alloc(10);
          hdr[0] = 0x80 | opcode;
          hdr[1] = 127;
          hdr.writeBigUInt64BE(BigInt(payload.length), 2);
        }
        socket.write(Buffer.concat([hdr, payload]));
        if (opcode === 8) {
          socket.end();
          return;
        }
      }
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
  });
  return server;
}

describe('http websocket', () => {
  test('an upgrade is passed through and frames echo both ways', async () => {
    const upstream = wsEchoServer();
    const upPort = await listen(upstream);
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    options:
      routes: [{ path_prefix: /ws, cluster: up }]
clusters:
  - { name: up, endpoints: ["127.0.0.1:${upPort}"] }
`);
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${pw.port('web')}/ws`);
      ws.binaryType = 'arraybuffer';
      const messages: (string | Buffer)[] = [];
      ws.addEventListener('message', (ev) => messages.push(typeof ev.data === 'string' ? ev.data : Buffer.from(ev.data as ArrayBuffer)));
      await new Promise<void>((resolve, reject) => {
        ws.addEventListener('open', () => resolve());
        ws.addEventListener('error', () => reject(new Error('websocket error')));
      });
      ws.send('hello through portway');
      const big = Buffer.alloc(200_000, 7);
      ws.send(big);
      await waitFor(() => messages.length === 2, 5000, 'two echoes');
      assert.equal(messages[0], 'hello through portway');
      assert.ok(Buffer.isBuffer(messages[1]) && (messages[1] as Buffer).equals(big));
      const closed = new Promise<number>((r) => ws.addEventListener('close', (ev) => r(ev.code)));
      ws.close(1000, 'bye');
      assert.equal(await closed, 1000);
      const metrics = await fetch(`${pw.admin}/metrics`).then((r) => r.text());
      assert.match(metrics, /portway_http_upgrades_total\{listener="web"\} 1/);
    } finally {
      await pw.stop();
      await closeServer(upstream);
    }
  });

  test('an upgrade the upstream refuses comes back as a plain response', async () => {
    const upstream = createServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end('no websockets here');
    });
    const upPort = await listen(upstream);
    const pw = await startPortway(`
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    routes: [{ cluster: up }]
clusters:
  - { name: up, endpoints: ["127.0.0.1:${upPort}"] }
`);
    try {
      const { connect } = await import('node:net');
      const out = await new Promise<string>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: pw.port('web') });
        let got = '';
        s.on('connect', () =>
          s.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'),
        );
        s.on('data', (c: Buffer) => (got += c.toString()));
        s.on('error', () => {});
        s.on('close', () => resolve(got));
        setTimeout(() => s.destroy(), 3000);
      });
      assert.match(out, /^HTTP\/1\.1 403 /);
      assert.match(out, /no websockets here$/);
      await sleep(10);
    } finally {
      await pw.stop();
      await closeServer(upstream);
    }
  });
});
