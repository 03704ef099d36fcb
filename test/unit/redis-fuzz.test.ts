/**
 * Fuzzing the RESP codec and a live Redis listener with random and mutated
 * frames. Seeded and reproducible: the seed is printed on failure and can be
 * fixed with REDIS_FUZZ_SEED=<n> (REDIS_FUZZ_ROUNDS scales the counts).
 *
 * Properties checked for every input, whatever its chunking:
 *   - no exception escapes the decoder; the outcome is zero or more frames,
 *     then possibly one clean protocol error, after which nothing is emitted;
 *   - every frame lies inside its buffer; every reply frame parses (or, past
 *     the nesting limit, fails with a protocol error, never a RangeError);
 *   - the bytes held for an incomplete frame stay bounded by what arrived,
 *     not by lengths announced (512 MB bulk headers reserve little);
 *   - against a real redis-server behind Portway: every answer is valid RESP,
 *     a protocol error is the last thing sent before the close, no
 *     connection hangs after the client half-closes, and other clients keep
 *     being served throughout.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mulberry32 } from '../helpers/random';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';
import {
  RespCommand,
  RespProtocolError,
  RespReplyDecoder,
  RespRequestDecoder,
  encodeCommand,
  parseReply,
  type RequestDecoderOptions,
  type ReplyDecoderOptions,
} from '../../src/protocols/redis/codec';

const SEED = process.env['REDIS_FUZZ_SEED'] !== undefined ? Number(process.env['REDIS_FUZZ_SEED']) : Math.floor(Math.random() * 2 ** 31);
const ROUNDS = Number(process.env['REDIS_FUZZ_ROUNDS'] ?? 1);

/** Runs a property with the seed in any failure's message. */
function seeded(name: string, body: (r: () => number) => void | Promise<void>): void {
  test(name, async () => {
    const seed = SEED ^ hashName(name);
    try {
      await body(mulberry32(seed));
    } catch (e) {
      const err = e as Error;
      err.message = `[REDIS_FUZZ_SEED=${SEED} (case seed ${seed})] ${err.message}`;
      throw err;
    }
  });
}

function hashName(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

// ------------------------------------------------------------------ generators

type Rng = () => number;
const int = (r: Rng, n: number) => Math.floor(r() * n);
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[int(r, xs.length)]!;

function randomBytes(r: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(r, 256);
  return b;
}

/** Bytes that RESP gives meaning to, so random input reaches deeper states than uniform noise. */
const RESP_BYTES = Buffer.from('*$+-:_#,(!=%~|>?;.0123456789\r\n\r\n \t"\'\\x\0');

function respishBytes(r: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = r() < 0.7 ? RESP_BYTES[int(r, RESP_BYTES.length)]! : int(r, 256);
  return b;
}

/** Commands whose single-bit or length mutations cannot turn into anything that harms the shared redis-server. */
const SAFE_COMMANDS = ['GET', 'SET', 'PING', 'ECHO', 'MGET', 'DEL', 'INCR', 'HSET', 'HGET', 'LPUSH', 'LRANGE', 'EXISTS', 'APPEND', 'STRLEN', 'SADD', 'SCARD'];

function randomArg(r: Rng): Buffer {
  switch (int(r, 4)) {
    case 0:
      return Buffer.from(`k${int(r, 50)}`);
    case 1:
      return Buffer.from(String(int(r, 100000) - 50));
    case 2:
      return randomBytes(r, int(r, 40));
    default:
      return Buffer.alloc(int(r, 3000), 'v');
  }
}

function validRequest(r: Rng): Buffer {
  const name = pick(r, SAFE_COMMANDS);
  const args: Buffer[] = [Buffer.from(r() < 0.5 ? name : name.toLowerCase())];
  for (let k = int(r, 5); k > 0; k--) args.push(randomArg(r));
  if (r() < 0.15) {
    // Inline form, as typed into telnet (printable arguments only).
    return Buffer.from(`${args.map((a) => (a.every((c) => c > 32 && c < 127 && c !== 34 && c !== 39) ? a.toString('latin1') : '"x"')).join(' ')}\r\n`, 'latin1');
  }
  return encodeCommand(args);
}

/** A random RESP2/RESP3 value, as bytes. */
function validReply(r: Rng, depth = 0): string {
  const kind = depth > 4 ? int(r, 9) : int(r, 15);
  const text = () => randomBytes(r, int(r, 20)).toString('latin1').replace(/[\r\n]/g, 'x');
  const blob = () => {
    const s = randomBytes(r, int(r, 60)).toString('latin1');
    return `${s.length}\r\n${s}\r\n`;
  };
  const items = (n: number) => Array.from({ length: n }, () => validReply(r, depth + 1)).join('');
  switch (kind) {
    case 0:
      return `+${text()}\r\n`;
    case 1:
      return `-ERR ${text()}\r\n`;
    case 2:
      return `:${int(r, 2 ** 31) - 2 ** 30}\r\n`;
    case 3:
      return `$${blob()}`;
    case 4:
      return '$-1\r\n';
    case 5:
      return '_\r\n';
    case 6:
      return `#${r() < 0.5 ? 't' : 'f'}\r\n`;
    case 7:
      return `,${pick(r, ['1.5', '-0.25', 'inf', '-inf', 'nan', '3e10', '7'])}\r\n`;
    case 8:
      return `(${int(r, 1e9)}${int(r, 1e9)}\r\n`;
    case 9: {
      const n = int(r, 5);
      return `*${n}\r\n${items(n)}`;
    }
    case 10: {
      const n = int(r, 3);
      return `%${n}\r\n${items(2 * n)}`;
    }
    case 11: {
      const n = int(r, 4);
      return `~${n}\r\n${items(n)}`;
    }
    case 12:
      return `|1\r\n+key\r\n${validReply(r, depth + 1)}${validReply(r, depth + 1)}`;
    case 13:
      return `*?\r\n${items(int(r, 3))}.\r\n`;
    default:
      return `=${'txt:abc'.length}\r\ntxt:abc\r\n`;
  }
}

/** One mutation of a valid frame: the ways real streams go wrong. */
function mutate(r: Rng, b: Buffer): Buffer {
  const out = Buffer.from(b);
  switch (int(r, 8)) {
    case 0: {
      // bit flips
      for (let k = 1 + int(r, 3); k > 0 && out.length > 0; k--) out[int(r, out.length)]! ^= 1 << int(r, 8);
      return out;
    }
    case 1:
      // truncation
      return out.subarray(0, int(r, out.length + 1));
    case 2: {
      // inserted noise
      const at = int(r, out.length + 1);
      return Buffer.concat([out.subarray(0, at), respishBytes(r, 1 + int(r, 8)), out.subarray(at)]);
    }
    case 3: {
      // a deleted range
      const at = int(r, out.length + 1);
      return Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + int(r, 6)))]);
    }
    case 4: {
      // a length that lies: rewrite one number after a type byte
      const s = out.toString('latin1');
      const heads = [...s.matchAll(/[*$%~|>!=;](-?\d+)\r/g)];
      if (heads.length === 0) return out;
      const m = pick(r, heads);
      const lie = pick(r, ['0', '-1', '-2', '1', String(Number(m[1]) + 1), String(Math.max(0, Number(m[1]) - 1)), '536870913', '99999999999999999999', '2147483648', '00', '+1', '1x']);
      const at = m.index! + 1;
      return Buffer.concat([out.subarray(0, at), Buffer.from(lie), out.subarray(at + m[1]!.length)]);
    }
    case 5:
      // a frame spliced into another
      return Buffer.concat([out.subarray(0, int(r, out.length + 1)), out.subarray(int(r, out.length + 1))]);
    case 6:
      // CRLF damage
      return Buffer.from(out.toString('latin1').replace(/\r\n/, pick(r, ['\n', '\r', '\r\r', '', '\n\r'])), 'latin1');
    default:
      return out;
  }
}

function deepNesting(r: Rng, maxDepth = 200_000): Buffer {
  const depth = 1000 + int(r, maxDepth);
  const open = pick(r, ['*1\r\n', '%1\r\n+k\r\n', '~1\r\n', '>1\r\n', '|1\r\n+a\r\n+b\r\n']);
  return Buffer.concat([Buffer.from(open.repeat(depth)), Buffer.from(':1\r\n')]);
}

function hugeBulk(r: Rng): Buffer {
  const n = pick(r, [513 * 1024 * 1024, 2 ** 31, 2 ** 53, 1024 * 1024 + 1, 512 * 1024 * 1024]);
  return Buffer.from(`${pick(r, ['*2\r\n$3\r\nGET\r\n', '*1\r\n', ''])}$${n}\r\n${'x'.repeat(int(r, 100))}`);
}

/** Cut points for a buffer: whole, byte by byte, or random chunks. */
function chunks(r: Rng, b: Buffer): Buffer[] {
  const mode = int(r, 3);
  if (mode === 0 || b.length < 2) return [b];
  const out: Buffer[] = [];
  if (mode === 1 && b.length < 4096) {
    for (let i = 0; i < b.length; i++) out.push(b.subarray(i, i + 1));
    return out;
  }
  for (let p = 0; p < b.length; ) {
    const n = 1 + int(r, Math.min(b.length - p, 1 + int(r, 2) * 4096 + int(r, 64)));
    out.push(b.subarray(p, p + n));
    p += n;
  }
  return out;
}

// ------------------------------------------------------------------ decoders

const MAX_RESERVE = 1024 * 1024;

interface Outcome {
  frames: Buffer[];
  errors: RespProtocolError[];
}

function assertBounded(held: number, fed: number, what: string): void {
  // A partial frame costs at most about twice what arrived (growth by doubling) plus one bounded reserve.
  assert.ok(held <= 2 * fed + MAX_RESERVE + 4096, `${what}: ${held} bytes held after ${fed} bytes fed`);
}

function runRequests(r: Rng, input: Buffer, opts: RequestDecoderOptions): Outcome {
  const out: Outcome = { frames: [], errors: [] };
  const d = new RespRequestDecoder(
    {
      onCommand: (cmd: RespCommand) => {
        assert.equal(out.errors.length, 0, 'a command after a protocol error');
        assert.ok(cmd.argc >= 1, 'a command without arguments');
        for (let i = 0; i < cmd.argc; i++) {
          assert.ok(cmd.argStart(i) >= cmd.start && cmd.argEnd(i) <= cmd.end && cmd.argStart(i) <= cmd.argEnd(i), 'an argument outside its frame');
          if (!cmd.inline) assert.ok(cmd.argLength(i) <= (opts.maxBulkLength ?? 512 * 1024 * 1024), 'an argument over maxBulkLength');
        }
        assert.ok(cmd.end <= cmd.buffer.length);
        out.frames.push(Buffer.from(cmd.raw));
      },
      onError: (err) => {
        assert.equal(out.errors.length, 0, 'two protocol errors');
        assert.ok(err instanceof RespProtocolError);
        if (err.hasReply) assert.match(err.toReply().toString('latin1'), /^-ERR Protocol error: [^\r\n]*\r\n$/);
        out.errors.push(err);
      },
    },
    opts,
  );
  let fed = 0;
  for (const c of chunks(r, input)) {
    d.push(c);
    fed += c.length;
    assertBounded(d.heldBytes, fed, 'request decoder');
  }
  return out;
}

function runReplies(r: Rng, input: Buffer, opts: ReplyDecoderOptions): Outcome {
  const out: Outcome = { frames: [], errors: [] };
  const d = new RespReplyDecoder(
    {
      onReply: (buf, start, end) => {
        assert.equal(out.errors.length, 0, 'a reply after a protocol error');
        assert.ok(start >= 0 && start < end && end <= buf.length, 'a reply outside its buffer');
        const frame = Buffer.from(buf.subarray(start, end));
        try {
          parseReply(frame);
        } catch (e) {
          // The full parse may refuse what framing let through (the nesting limit, a verbatim string without its
          // format prefix), but only with a protocol error: never a RangeError from recursion or a TypeError.
          assert.ok(e instanceof RespProtocolError, `a framed reply that does not parse cleanly: ${(e as Error).message}`);
        }
        out.frames.push(frame);
      },
      onError: (err) => {
        assert.equal(out.errors.length, 0, 'two protocol errors');
        assert.ok(err instanceof RespProtocolError);
        out.errors.push(err);
      },
    },
    opts,
  );
  let fed = 0;
  for (const c of chunks(r, input)) {
    d.push(c);
    fed += c.length;
    assertBounded(d.heldBytes, fed, 'reply decoder');
  }
  return out;
}

function sameOutcome(a: Outcome, b: Outcome, input: Buffer): void {
  const show = input.length < 300 ? JSON.stringify(input.toString('latin1')) : `${input.length} bytes`;
  assert.deepEqual(
    b.frames.map((f) => f.toString('latin1')),
    a.frames.map((f) => f.toString('latin1')),
    `frames differ by chunking for ${show}`,
  );
  assert.equal(b.errors[0]?.message, a.errors[0]?.message, `errors differ by chunking for ${show}`);
}

describe(`RESP fuzz: decoders (seed ${SEED})`, () => {
  const n = (k: number) => Math.round(k * ROUNDS);

  seeded('request decoder: random bytes', (r) => {
    for (let i = 0; i < n(2000); i++) {
      const input = r() < 0.5 ? randomBytes(r, int(r, 300)) : respishBytes(r, int(r, 300));
      const opts = { maxBulkLength: 1024 * 1024, strictCrlf: r() < 0.3, unauthenticated: r() < 0.2 };
      sameOutcome(runRequests(r, input, opts), runRequests(r, input, opts), input);
    }
  });

  seeded('request decoder: mutated valid frames', (r) => {
    for (let i = 0; i < n(3000); i++) {
      let input: Buffer = validRequest(r);
      for (let k = int(r, 3); k >= 0; k--) input = mutate(r, input);
      if (r() < 0.3) input = Buffer.concat([validRequest(r), input, validRequest(r)]);
      const opts = { maxBulkLength: 1024 * 1024, strictCrlf: r() < 0.3 };
      sameOutcome(runRequests(r, input, opts), runRequests(r, input, opts), input);
    }
  });

  seeded('request decoder: valid frames decode to themselves for every chunking', (r) => {
    for (let i = 0; i < n(500); i++) {
      const frames = Array.from({ length: 1 + int(r, 6) }, () => validRequest(r));
      const input = Buffer.concat(frames);
      const o = runRequests(r, input, {});
      assert.equal(o.errors.length, 0, o.errors[0]?.message);
      assert.equal(o.frames.length, frames.length);
      frames.forEach((f, k) => {
        if (f[0] === 42) assert.ok(o.frames[k]!.equals(f), 'a multibulk frame changed');
      });
    }
  });

  seeded('request decoder: deep nesting and huge bulk lengths fail cleanly, memory bounded', (r) => {
    for (let i = 0; i < n(20); i++) {
      const nested = runRequests(r, Buffer.from(`${'*1\r\n'.repeat(1000 + int(r, 200_000))}:1\r\n`), {});
      assert.equal(nested.errors.length, 1, 'nested multibulks are not requests');
      assert.equal(nested.errors[0]!.message, "Protocol error: expected '$', got '*'");
      // Other aggregate openers are inline lines to a server: each is a (unknown) command, never a nesting.
      const other = runRequests(r, deepNesting(r, 10_000), {});
      assert.ok(other.errors.length <= 1);
      const huge = hugeBulk(r);
      const o = runRequests(r, huge, { maxBulkLength: 1024 * 1024 });
      const announced = Number(/\$(\d+)\r\n(?!.*\$\d+\r\n)/s.exec(huge.toString('latin1'))![1]);
      if (huge[0] === 42 && announced > 1024 * 1024) {
        assert.equal(o.errors.length, 1);
        assert.equal(o.errors[0]!.message, 'Protocol error: invalid bulk length');
      }
      // Within the default limit a 512 MB announcement only waits for data; it reserves at most MAX_RESERVE.
      const lax = runRequests(r, Buffer.from(`*1\r\n$${512 * 1024 * 1024}\r\n${'x'.repeat(int(r, 5000))}`), {});
      assert.equal(lax.errors.length, 0);
    }
  });

  seeded('reply decoder: random bytes', (r) => {
    for (let i = 0; i < n(2000); i++) {
      const input = r() < 0.3 ? randomBytes(r, int(r, 300)) : respishBytes(r, int(r, 300));
      const opts = { maxBulkLength: 1024 * 1024, maxLineLength: 1024 };
      sameOutcome(runReplies(r, input, opts), runReplies(r, input, opts), input);
    }
  });

  seeded('reply decoder: mutated valid replies', (r) => {
    for (let i = 0; i < n(3000); i++) {
      let input: Buffer = Buffer.from(validReply(r), 'latin1');
      for (let k = int(r, 3); k >= 0; k--) input = mutate(r, input);
      if (r() < 0.3) input = Buffer.concat([Buffer.from(validReply(r), 'latin1'), input]);
      const opts = { maxBulkLength: 1024 * 1024 };
      sameOutcome(runReplies(r, input, opts), runReplies(r, input, opts), input);
    }
  });

  seeded('reply decoder: valid replies frame exactly, for every chunking', (r) => {
    for (let i = 0; i < n(500); i++) {
      const replies = Array.from({ length: 1 + int(r, 6) }, () => Buffer.from(validReply(r), 'latin1'));
      const o = runReplies(r, Buffer.concat(replies), {});
      assert.equal(o.errors.length, 0, o.errors[0]?.message);
      assert.deepEqual(
        o.frames.map((f) => f.toString('latin1')),
        replies.map((f) => f.toString('latin1')),
      );
    }
  });

  seeded('reply decoder: deep nesting frames without recursion; huge lengths are refused or wait', (r) => {
    for (let i = 0; i < n(20); i++) {
      const o = runReplies(r, deepNesting(r), {});
      assert.equal(o.errors.length, 0);
      assert.equal(o.frames.length, 1);
      const huge = runReplies(r, Buffer.from(`$${2 ** 40}\r\n${'x'.repeat(int(r, 5000))}`), { maxBulkLength: 1024 * 1024 });
      assert.equal(huge.errors.length, 1);
      assert.equal(huge.errors[0]!.kind, 'reply-invalid-length');
    }
  });
});

// ------------------------------------------------------------------ live listener

/** Sends input in pieces, half-closes, and collects everything until the server closes (or a deadline). */
function exchange(port: number, pieces: Buffer[], deadlineMs: number): Promise<{ data: Buffer; closed: boolean; error: string | null }> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    const got: Buffer[] = [];
    let error: string | null = null;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ data: Buffer.concat(got), closed: false, error });
    }, deadlineMs);
    s.on('data', (c: Buffer) => got.push(c));
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(got), closed: true, error });
    });
    s.on('connect', () => {
      for (const p of pieces) s.write(p);
      s.end();
    });
  });
}

/** Frames a reply stream; returns the replies, or throws when it is not valid RESP. */
function replies(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let err: Error | null = null;
  const d = new RespReplyDecoder({ onReply: (b, s, e) => out.push(Buffer.from(b.subarray(s, e))), onError: (e) => (err = e) });
  d.push(data);
  if (err) throw new Error(`${(err as Error).message} in what Portway sent: ${JSON.stringify(data.subarray(0, 600).toString('latin1'))}`);
  assert.equal(d.pendingBytes, 0, `a reply cut short: ${JSON.stringify(data.subarray(-200).toString('latin1'))}`);
  return out;
}

describe(`RESP fuzz: a live Redis listener (seed ${SEED})`, () => {
  let redis: RedisServer;
  let pw: InProcess;
  let port: number;

  before(async () => {
    redis = await startRedis();
    pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: r }]
    options: { max_bulk_length: 1048576 }
clusters:
  - { name: r, endpoints: ["${redis.address}"], connect_timeout: 1s }
`);
    port = pw.port('redis');
  });
  after(async () => {
    await pw.stop();
    await redis.close();
  });

  seeded('random and mutated frames: valid RESP back, a protocol error last, no hang, others served', async (r) => {
    const baseline = process.memoryUsage().arrayBuffers;
    const cases = Math.round(150 * ROUNDS);
    for (let i = 0; i < cases; i += 10) {
      const batch: Array<Promise<void>> = [];
      for (let j = i; j < Math.min(cases, i + 10); j++) {
        let input: Buffer;
        const kind = int(r, 10);
        if (kind === 0) input = randomBytes(r, int(r, 200));
        else if (kind === 1) input = respishBytes(r, int(r, 200));
        else if (kind === 2) input = hugeBulk(r);
        else if (kind === 3) input = Buffer.concat([validRequest(r), Buffer.from('*1\r\n'.repeat(1000 + int(r, 5000)))]);
        else {
          input = validRequest(r);
          for (let k = int(r, 3); k >= 0; k--) input = mutate(r, input);
          input = Buffer.concat([validRequest(r), input, r() < 0.5 ? validRequest(r) : Buffer.alloc(0)]);
        }
        const pieces = chunks(r, input);
        batch.push(
          exchange(port, pieces, 10_000).then((res) => {
            const show = input.length < 300 ? JSON.stringify(input.toString('latin1')) : `${input.length} bytes`;
            assert.ok(res.closed, `no close within 10 s after the client half-closed; sent ${show}`);
            let rs: Buffer[];
            try {
              rs = replies(res.data);
            } catch (e) {
              throw new Error(`${(e as Error).message}; sent ${show}`);
            }
            const k = rs.findIndex((x) => x.toString('latin1').startsWith('-ERR Protocol error'));
            if (k >= 0) assert.equal(k, rs.length - 1, `a reply after the protocol error; sent ${show}`);
          }),
        );
      }
      await Promise.all(batch);
      // Another client is served between batches.
      const ok = await exchange(port, [Buffer.concat([encodeCommand(['SET', 'fuzz:alive', String(i)]), encodeCommand(['GET', 'fuzz:alive'])])], 5000);
      assert.equal(ok.data.toString(), `+OK\r\n$${String(i).length}\r\n${i}\r\n`);
    }
    // Nothing is kept per finished connection: external memory returns near where it started.
    await new Promise((res) => setTimeout(res, 100));
    (globalThis as { gc?: () => void }).gc?.();
    const grown = process.memoryUsage().arrayBuffers - baseline;
    assert.ok(grown < 64 * 1024 * 1024, `array buffers grew by ${grown} bytes`);
  });

  seeded('half-written frames, then a disconnect: nothing answered, nothing kept', async (r) => {
    const before = pw.proxy.listenerPort('redis');
    assert.equal(before, port);
    for (let i = 0; i < 30; i++) {
      const whole = validRequest(r);
      if (whole[0] !== 42) continue;
      const cut = whole.subarray(0, 1 + int(r, whole.length - 2));
      const res = await exchange(port, [cut], 5000);
      assert.ok(res.closed, 'the connection closed');
      assert.equal(res.data.length, 0, `nothing is answered for a partial frame: ${JSON.stringify(res.data.toString('latin1'))}`);
    }
    const res = await exchange(port, [encodeCommand(['PING'])], 5000);
    assert.equal(res.data.toString(), '+PONG\r\n');
  });

  seeded('a 512 MB announcement over the configured max_bulk_length is refused at once', async () => {
    const res = await exchange(port, [Buffer.from(`*2\r\n$3\r\nSET\r\n$${512 * 1024 * 1024}\r\n`)], 5000);
    assert.equal(res.data.toString(), '-ERR Protocol error: invalid bulk length\r\n');
    assert.ok(res.closed);
  });
});
