import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket, type Server, type AddressInfo } from 'node:net';
import { directFd, directWrite, directWriteAvailable, quickAck } from '../../src/util/direct-write';

/** A connected pair on loopback: [client side, server side]. */
async function pair(): Promise<{ a: Socket; b: Socket; server: Server }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const a = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r) => a.once('connect', () => r()));
  return { a, b: await accepted, server };
}

function collect(s: Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let n = 0;
    s.on('data', (c: Buffer) => {
      parts.push(c);
      n += c.length;
      if (n >= bytes) resolve(Buffer.concat(parts));
    });
  });
}

describe('direct writes (send(2) past the stream machinery)', () => {
  test('is available on Linux with koffi, and a TCP socket has a descriptor', async () => {
    assert.equal(directWriteAvailable(), process.platform === 'linux');
    const { a, b, server } = await pair();
    try {
      assert.ok(directFd(a) >= 0, 'a connected TCP socket has an fd');
    } finally {
      a.destroy();
      b.destroy();
      server.close();
    }
  });

  test('small writes arrive whole and in order, mixed with socket.write', async () => {
    const { a, b, server } = await pair();
    try {
      const fd = directFd(a);
      let expected = '';
      for (let i = 0; i < 500; i++) {
        const msg = `+reply ${i}\r\n`;
        expected += msg;
        if (i % 7 === 0) a.write(msg);
        else directWrite(a, fd, Buffer.from(msg));
      }
      const got = await collect(b, expected.length);
      assert.equal(got.toString(), expected);
    } finally {
      a.destroy();
      b.destroy();
      server.close();
    }
  });

  test('a reader that does not read: what send() cannot take is queued behind it, order kept, drain signalled', async () => {
    const { a, b, server } = await pair();
    try {
      b.pause();
      const fd = directFd(a);
      // 64 chunks of 256 KiB, each filled with its index: far more than the socket buffers hold.
      const chunks = Array.from({ length: 64 }, (_, i) => Buffer.alloc(256 * 1024, i));
      let refused = 0;
      for (const c of chunks) if (!directWrite(a, fd, c)) refused++;
      assert.ok(refused > 0, 'the stream asked the writer to wait');
      assert.ok(a.writableLength > 0, 'the rest is queued in the stream');
      const drained = new Promise<void>((r) => a.once('drain', () => r()));
      const total = chunks.length * 256 * 1024;
      const all = collect(b, total);
      b.resume();
      const got = await all;
      await drained;
      assert.equal(got.length, total);
      for (let i = 0; i < chunks.length; i++) assert.equal(got[i * 256 * 1024], i, `chunk ${i} in place`);
      assert.ok(got.equals(Buffer.concat(chunks)));
    } finally {
      a.destroy();
      b.destroy();
      server.close();
    }
  });

  test('a peer that reset the connection: the error comes through the socket, no signal kills the process', async () => {
    const { a, b, server } = await pair();
    try {
      const fd = directFd(a);
      const errored = new Promise<Error>((r) => a.once('error', r));
      b.resetAndDestroy();
      await new Promise((r) => setTimeout(r, 50));
      // The first send may still be taken by the kernel; later ones fail with EPIPE/ECONNRESET and go to socket.write.
      for (let i = 0; i < 20 && !a.destroyed; i++) {
        directWrite(a, fd, Buffer.from('+x\r\n'));
        await new Promise((r) => setTimeout(r, 5));
      }
      const err = (await errored) as NodeJS.ErrnoException;
      assert.match(String(err.code), /EPIPE|ECONNRESET/);
    } finally {
      a.destroy();
      b.destroy();
      server.close();
    }
  });

  test('after end(), writes go to socket.write (which refuses them as usual)', async () => {
    const { a, b, server } = await pair();
    try {
      const fd = directFd(a);
      a.end();
      const err = await new Promise<Error>((resolve) => {
        a.once('error', resolve);
        directWrite(a, fd, Buffer.from('+late\r\n'));
      });
      assert.match(err.message, /write after end/);
    } finally {
      a.destroy();
      b.destroy();
      server.close();
    }
  });
});

describe('quickAck (TCP_QUICKACK after a read)', () => {
  test('sets TCP_QUICKACK on the socket', async () => {
    const { a, b, server } = await pair();
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const koffi = require('koffi') as { load(p: string): { func(sig: string): (...a: unknown[]) => number } };
      const getsockopt = koffi.load('libc.so.6').func('int getsockopt(int fd, int level, int name, _Out_ int32_t *value, _Inout_ uint32_t *len)');
      const fd = directFd(a);
      const value = new Int32Array(1);
      const len = new Uint32Array([4]);
      quickAck(fd);
      assert.equal(getsockopt(fd, 6, 12, value, len), 0);
      assert.equal(value[0], 1);
      // A bad descriptor is ignored (no throw).
      quickAck(-1);
    } finally {
      a.destroy();
      b.destroy();
      server.close();
    }
  });
});
