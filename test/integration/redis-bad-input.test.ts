/**
 * Bad input on the Redis listener, case by case (the fuzz test in
 * test/unit/redis-fuzz.test.ts covers the random space): each gets redis'
 * own error text (or silence where redis is silent), the connection closes
 * where redis closes it, memory stays bounded, and the listener and its
 * shared upstream link keep serving everyone else. Also an upstream that
 * answers garbage: its clients get an -ERR naming it, nobody hangs.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { tcpServer, type TestServer } from '../helpers/net';

interface Result {
  text: string;
  closed: boolean;
}

/** Writes the pieces (ms apart), optionally half-closes, and collects what comes back until close or the deadline. */
function talk(port: number, pieces: Array<string | Buffer>, opts: { end?: boolean; waitMs?: number; gapMs?: number } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let text = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ text, closed });
    };
    const timer = setTimeout(() => finish(false), opts.waitMs ?? 5000);
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.on('close', () => finish(true));
    s.on('error', (e) => (done ? undefined : reject(e)));
    s.on('connect', async () => {
      for (const p of pieces) {
        s.write(p);
        if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
      }
      if (opts.end) s.end();
    });
  });
}

/** A client that stays connected and checks the listener still serves: SET then GET on its own connection. */
async function stillServes(port: number, tag: string): Promise<void> {
  const r = await talk(port, [`*3\r\n$3\r\nSET\r\n$5\r\nalive\r\n$${tag.length}\r\n${tag}\r\n*2\r\n$3\r\nGET\r\n$5\r\nalive\r\n`], { end: true });
  assert.equal(r.text, `+OK\r\n$${tag.length}\r\n${tag}\r\n`);
}

describe('Redis listener: bad input from clients', () => {
  let redis: RedisServer;
  let pw: InProcess;
  let port: number;
  let keeper: Socket;

  before(async () => {
    redis = await startRedis();
    pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: r }]
    options: { max_bulk_length: 65536 }
  - name: lax
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: r }]
clusters:
  - { name: r, endpoints: ["${redis.address}"], connect_timeout: 1s }
`);
    port = pw.port('redis');
    // One client stays connected through every case: its session and the shared link must survive the others.
    keeper = connect({ port, host: '127.0.0.1' });
    await new Promise((r) => keeper.once('connect', r));
  });
  after(async () => {
    keeper.destroy();
    await pw.stop();
    await redis.close();
  });

  test('a half-written frame, then a disconnect: nothing answered, the upstream link unharmed', async () => {
    for (const cut of ['*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhel', '*2\r\n$3\r\nGET', '*2\r', '$', 'PING', '*1\r\n$4\r\nPI']) {
      const r = await talk(port, [cut], { end: true });
      assert.deepEqual(r, { text: '', closed: true }, JSON.stringify(cut));
    }
    // An abrupt reset (no FIN) in the middle of a frame as well.
    const s = connect({ port, host: '127.0.0.1' });
    await new Promise((r) => s.once('connect', r));
    s.write('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc');
    s.resetAndDestroy();
    await stillServes(port, 'half');
  });

  test('the rest of a pipeline is answered before a half-close is honoured', async () => {
    const r = await talk(port, ['*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*2\r\n$3\r\nGET'], { end: true });
    assert.deepEqual(r, { text: '+PONG\r\n$2\r\nhi\r\n', closed: true });
  });

  test('a bulk over max_bulk_length: redis\' error at once, then the close; a 512 MB one on the default limit too', async () => {
    const r = await talk(port, ['*2\r\n$3\r\nGET\r\n$65537\r\n']);
    assert.deepEqual(r, { text: '-ERR Protocol error: invalid bulk length\r\n', closed: true });
    const exact = await talk(port, [`*2\r\n$4\r\nECHO\r\n$65536\r\n${'x'.repeat(65536)}\r\n`], { end: true });
    assert.equal(exact.text, `$65536\r\n${'x'.repeat(65536)}\r\n`, 'max_bulk_length itself is allowed');
    const lax = await talk(pw.port('lax'), [`*2\r\n$3\r\nGET\r\n$${512 * 1024 * 1024 + 1}\r\n`]);
    assert.deepEqual(lax, { text: '-ERR Protocol error: invalid bulk length\r\n', closed: true });
    await stillServes(port, 'bulk');
  });

  test('announced 500 MB arguments that never arrive cost memory by what was sent, not by what was announced', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const lax = pw.port('lax');
    const sockets: Socket[] = [];
    for (let i = 0; i < 20; i++) {
      const s = connect({ port: lax, host: '127.0.0.1' });
      s.on('error', () => {});
      s.write(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${500 * 1024 * 1024}\r\n${'y'.repeat(10_000)}`);
      sockets.push(s);
    }
    await new Promise((r) => setTimeout(r, 300));
    const grown = process.memoryUsage().arrayBuffers - before;
    for (const s of sockets) s.destroy();
    // Each session holds at most its bytes plus a 1 MiB reserve: far below 20 x 500 MB.
    assert.ok(grown < 64 * 1024 * 1024, `array buffers grew by ${grown} bytes for 20 clients`);
    await stillServes(pw.port('lax'), 'reserve');
  });

  test('deep nesting and garbage: redis\' protocol errors, then the close', async () => {
    const deep = await talk(port, ['*1\r\n'.repeat(100_000)]);
    assert.deepEqual(deep, { text: "-ERR Protocol error: expected '$', got '*'\r\n", closed: true });
    const count = await talk(port, ['*-x\r\n']);
    assert.deepEqual(count, { text: '-ERR Protocol error: invalid multibulk length\r\n', closed: true });
    const quotes = await talk(port, ['SET "a b\r\n']);
    assert.deepEqual(quotes, { text: '-ERR Protocol error: unbalanced quotes in request\r\n', closed: true });
    // Binary noise with line breaks is a run of inline commands to redis: each answered, the connection kept.
    const noise = await talk(port, [Buffer.from([0x81, 0xfe, 0x20, 0x41, 0x0a, 0x07, 0x0d, 0x0a])], { end: true });
    // (redis echoes the raw bytes of the name; the framing is what matters here: two error lines, no more.)
    assert.match(noise.text, /^-ERR unknown command '[^\r\n]+', with args beginning with: 'A' \r\n-ERR unknown command '\x07', with args beginning with: \r\n$/);
    // An argument with CR LF inside (inline escapes) must not break the reply framing.
    const crlf = await talk(port, ['"a\\r\\n$3" x\r\n'], { end: true });
    assert.equal(crlf.text, "-ERR unknown command 'a  $3', with args beginning with: 'x' \r\n");
    await stillServes(port, 'deep');
  });

  test('a header line without terminator over 64 KB: too big, then the close', async () => {
    const r = await talk(port, [`*${'1'.repeat(70_000)}`]);
    assert.deepEqual(r, { text: '-ERR Protocol error: too big mbulk count string\r\n', closed: true });
    const inline = await talk(port, ['x'.repeat(70_000)]);
    assert.deepEqual(inline, { text: '-ERR Protocol error: too big inline request\r\n', closed: true });
  });

  test('the connection that stayed open through all of it is served', async () => {
    const got = new Promise<string>((resolve) => {
      let text = '';
      keeper.on('data', (c: Buffer) => {
        text += c.toString();
        if (text.endsWith('\r\n')) resolve(text);
      });
    });
    keeper.write('*1\r\n$4\r\nPING\r\n');
    assert.equal(await got, '+PONG\r\n');
  });
});

describe('Redis listener: an upstream that answers garbage', () => {
  let bad: TestServer;
  let pw: InProcess;

  before(async () => {
    // Answers every read with bytes that are not RESP.
    bad = await tcpServer((s) => s.on('data', () => s.write('?what\r\n')));
    pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: bad }]
clusters:
  - { name: bad, endpoints: ["${bad.address}"], connect_timeout: 1s }
`);
  });
  after(async () => {
    await pw.stop();
    await bad.close();
  });

  test('clients get an -ERR naming the invalid reply, and are still answered afterwards', async () => {
    const port = pw.port('redis');
    for (let i = 0; i < 3; i++) {
      const r = await talk(port, ['*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n'], { end: true });
      assert.match(r.text, /^-ERR upstream 127\.0\.0\.1:\d+ sent an invalid reply: Protocol error: invalid reply type byte '\?' \(PW_ERR_[A-Z_]+\)\r\n\+PONG\r\n$/);
      assert.equal(r.closed, true);
    }
  });
});
