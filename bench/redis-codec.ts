/**
 * RESP codec micro-benchmark: decodes large pipelined buffers cut into
 * 64 KB chunks (the size of a socket read) and reports commands/s and MB/s.
 *
 * Baseline, measured in the same run: a bare scan that only counts CRLF
 * with Buffer#indexOf over the same chunks, i.e. the speed of touching
 * every line once and nothing else. Ratio = codec / baseline (1.0 would
 * mean decoding costs no more than finding the line ends).
 *
 *   node dist/bench/redis-codec.js [--seconds 1]
 */
import { RespCommand, RespReplyDecoder, RespRequestDecoder, RespWriter, parseReply } from '../src/protocols/redis/codec';
import { extractKeys, firstKeyIndex } from '../src/protocols/redis/commands';

const CHUNK = 64 * 1024;
const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 1;

function cut(buf: Buffer, size = CHUNK): Buffer[] {
  const out: Buffer[] = [];
  // Fresh buffers, as sockets deliver them.
  for (let i = 0; i < buf.length; i += size) out.push(Buffer.from(buf.subarray(i, i + size)));
  return out;
}

interface Result {
  items: number;
  bytes: number;
  seconds: number;
}

/** Run `pass` (one decode of the whole input) until SECONDS elapsed; best pass wins. */
function measure(bytes: number, pass: () => number): Result {
  for (let i = 0; i < 3; i++) pass(); // warm up
  let best = Infinity;
  let items = 0;
  const until = performance.now() + SECONDS * 1000;
  do {
    const t0 = performance.now();
    items = pass();
    const dt = performance.now() - t0;
    if (dt < best) best = dt;
  } while (performance.now() < until);
  return { items, bytes, seconds: best / 1000 };
}

/** Count CRLF-ended lines: the floor any line-oriented decoder has to pay. */
function baselineScan(chunks: Buffer[]): number {
  let lines = 0;
  for (const c of chunks) {
    let p = c.indexOf(13);
    while (p >= 0) {
      lines++;
      p = c.indexOf(13, p + 2);
    }
  }
  return lines;
}

function report(name: string, r: Result, base: Result, unit: string): void {
  const perSec = r.items / r.seconds;
  const mbps = r.bytes / r.seconds / 1e6;
  const baseMbps = base.bytes / base.seconds / 1e6;
  console.log(
    `${name.padEnd(44)} ${(perSec / 1e6).toFixed(2).padStart(6)} M ${unit}/s ${mbps.toFixed(0).padStart(5)} MB/s` +
      `   baseline scan ${baseMbps.toFixed(0).padStart(5)} MB/s   ratio ${(mbps / baseMbps).toFixed(2)}`,
  );
}

function requestsInput(n: number, valueSize: number): Buffer {
  const w = new RespWriter(1024 * 1024);
  const parts: Buffer[] = [];
  const value = Buffer.alloc(valueSize, 'x');
  for (let i = 0; i < n; i++) {
    const key = `key:${String(i % 100000).padStart(12, '0')}`;
    if (i % 2 === 0) w.command(['GET', key]);
    else w.command(['SET', key, value]);
    if (w.length > 1024 * 1024) parts.push(w.take());
  }
  parts.push(w.take());
  return Buffer.concat(parts);
}

function repliesInput(n: number, valueSize: number): Buffer {
  const w = new RespWriter(1024 * 1024);
  const parts: Buffer[] = [];
  const value = Buffer.alloc(valueSize, 'y');
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) w.bulk(value);
    else w.simpleString('OK');
    if (w.length > 1024 * 1024) parts.push(w.take());
  }
  parts.push(w.take());
  return Buffer.concat(parts);
}

function arraysInput(n: number, elements: number): Buffer {
  const w = new RespWriter(1024 * 1024);
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    w.arrayHeader(elements);
    for (let j = 0; j < elements; j++) w.bulk(`element-${j}`);
    if (w.length > 1024 * 1024) parts.push(w.take());
  }
  parts.push(w.take());
  return Buffer.concat(parts);
}

function decodeRequests(chunks: Buffer[], route: boolean): number {
  let n = 0;
  const d = new RespRequestDecoder({
    onCommand: route
      ? (cmd: RespCommand) => {
          if (cmd.name.length > 0 && firstKeyIndex(cmd) > 0) n++;
        }
      : () => {
          n++;
        },
    onError: (err) => {
      throw err;
    },
  });
  for (const c of chunks) d.push(c);
  return n;
}

function decodeRequestsAllKeys(chunks: Buffer[]): number {
  let n = 0;
  const keys: number[] = [];
  const d = new RespRequestDecoder({
    onCommand: (cmd) => {
      n += extractKeys(cmd, keys).length;
    },
    onError: (err) => {
      throw err;
    },
  });
  for (const c of chunks) d.push(c);
  return n;
}

function decodeReplies(chunks: Buffer[]): number {
  let n = 0;
  const d = new RespReplyDecoder({
    onReply: () => {
      n++;
    },
    onError: (err) => {
      throw err;
    },
  });
  for (const c of chunks) d.push(c);
  return n;
}

function main(): void {
  console.log(`node ${process.version}, ${CHUNK / 1024} KB chunks, best pass of ${SECONDS}s per line\n`);

  const req = requestsInput(1_000_000, 32);
  const reqChunks = cut(req);
  const reqBase = measure(req.length, () => baselineScan(reqChunks));
  console.log(`requests: 1M pipelined GET/SET (16 B keys, 32 B values), ${(req.length / 1e6).toFixed(1)} MB`);
  report('  decode', measure(req.length, () => decodeRequests(reqChunks, false)), reqBase, 'cmds');
  report('  decode + name + firstKeyIndex', measure(req.length, () => decodeRequests(reqChunks, true)), reqBase, 'cmds');
  report('  decode + extractKeys (array reused)', measure(req.length, () => decodeRequestsAllKeys(reqChunks)), reqBase, 'cmds');

  const small = cut(req, 1460);
  const smallBase = measure(req.length, () => baselineScan(small));
  report('  decode, 1460 B chunks (one TCP segment)', measure(req.length, () => decodeRequests(small, false)), smallBase, 'cmds');

  const rep = repliesInput(1_000_000, 32);
  const repChunks = cut(rep);
  const repBase = measure(rep.length, () => baselineScan(repChunks));
  console.log(`\nreplies: 1M pipelined $32 bulk / +OK, ${(rep.length / 1e6).toFixed(1)} MB`);
  report('  frame', measure(rep.length, () => decodeReplies(repChunks)), repBase, 'replies');

  const arr = arraysInput(20_000, 100);
  const arrChunks = cut(arr);
  const arrBase = measure(arr.length, () => baselineScan(arrChunks));
  console.log(`\nreplies: 20k arrays of 100 bulk strings (LRANGE-like), ${(arr.length / 1e6).toFixed(1)} MB`);
  report('  frame', measure(arr.length, () => decodeReplies(arrChunks)), arrBase, 'replies');
  const oneArray = arr.subarray(0, arr.length / 20_000);
  report(
    '  full parse to values (parseReply)',
    measure(arr.length, () => {
      let n = 0;
      for (let i = 0; i < 20_000; i++) n += parseReply(oneArray).type === 'array' ? 1 : 0;
      return n;
    }),
    arrBase,
    'replies',
  );

  const big = repliesInput(200, 512 * 1024);
  const bigChunks = cut(big);
  const bigBase = measure(big.length, () => baselineScan(bigChunks));
  console.log(`\nreplies: 100 x 512 KB bulk strings, ${(big.length / 1e6).toFixed(1)} MB (copied once each: they straddle chunks)`);
  report('  frame', measure(big.length, () => decodeReplies(bigChunks)), bigBase, 'replies');
}

main();
