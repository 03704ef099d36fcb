/**
 * RESP codec: requests and replies decoded from real redis-server 7.0.15 /
 * redis-cli / redis-benchmark captures and hand-built RESP, pushed whole,
 * split at every byte boundary, byte by byte and in random chunkings; the
 * request error texts are the ones the real server sent over a raw socket.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RespCommand,
  RespProtocolError,
  RespReplyDecoder,
  RespRequestDecoder,
  RespType,
  RespWriter,
  encodeCommand,
  encodeValue,
  parseReplies,
  parseReply,
  readAggregateHeader,
  toResp2,
  toResp3,
  type RequestDecoderOptions,
  type Resp3Shape,
  type RespValue,
  type ToResp2Options,
} from '../../src/protocols/redis/codec';

/** redis-cli 7.0.15 requests (captured through a tap). */
const CLI_REQUESTS = "*3\r\n$3\r\nset\r\n$3\r\na b\r\n$4\r\nx\\ny\r\n" + "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*2\r\n$7\r\nhgetall\r\n$1\r\nh\r\n";
/** redis-benchmark 7.0.15 -P 4: the first pipelined batch of the GET, SET, LPUSH and MSET tests. */
const BENCH_REQUESTS = "*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n" +
  "*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n" +
  "*3\r\n$5\r\nLPUSH\r\n$6\r\nmylist\r\n$10\r\nVXKeHogKgJ\r\n*3\r\n$5\r\nLPUSH\r\n$6\r\nmylist\r\n$10\r\nVXKeHogKgJ\r\n*3\r\n$5\r\nLPUSH\r\n$6\r\nmylist\r\n$10\r\nVXKeHogKgJ\r\n*3\r\n$5\r\nLPUSH\r\n$6\r\nmylist\r\n$10\r\nVXKeHogKgJ\r\n" +
  "*21\r\n$4\r\nMSET\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n*21\r\n$4\r\nMSET\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n*21\r\n$4\r\nMSET\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n*21\r\n$4\r\nMSET\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n$16\r\nkey:__rand_int__\r\n$10\r\nVXKeHogKgJ\r\n";
/** [command, reply bytes] from redis-server 7.0.15, RESP2 then the same under HELLO 3. */
const RESP2_REPLIES: Array<[string, string]> = [
  ["FLUSHALL", "+OK\r\n"],
  ["SET a 1", "+OK\r\n"],
  ["GET a", "$1\r\n1\r\n"],
  ["GET missing", "$-1\r\n"],
  ["INCR n", ":1\r\n"],
  ["RPUSH l a b c", ":3\r\n"],
  ["LRANGE l 0 -1", "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"],
  ["HSET h f1 v1 f2 v2", ":2\r\n"],
  ["HGETALL h", "*4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n"],
  ["SADD s x", ":1\r\n"],
  ["SMEMBERS s", "*1\r\n$1\r\nx\r\n"],
  ["ZADD z 1.5 m1 2 m2", ":2\r\n"],
  ["ZRANGE z 0 -1 WITHSCORES", "*4\r\n$2\r\nm1\r\n$3\r\n1.5\r\n$2\r\nm2\r\n$1\r\n2\r\n"],
  ["ZSCORE z m1", "$3\r\n1.5\r\n"],
  ["ZSCORE z nope", "$-1\r\n"],
  ["XADD st 1-1 f v", "$3\r\n1-1\r\n"],
  ["XADD st 2-1 g w h x", "$3\r\n2-1\r\n"],
  ["XRANGE st - +", "*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$3\r\n2-1\r\n*4\r\n$1\r\ng\r\n$1\r\nw\r\n$1\r\nh\r\n$1\r\nx\r\n"],
  ["BLPOP empty 0.01", "*-1\r\n"],
  ["MGET a missing n", "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n1\r\n"],
  ["EXISTS a missing", ":1\r\n"],
  ["CONFIG GET maxmemory", "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"],
  ["NOSUCH x", "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"],
  ["GET", "-ERR wrong number of arguments for 'get' command\r\n"],
  ["LPOP h", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"],
  ["OBJECT ENCODING l", "$9\r\nquicklist\r\n"],
  ["COMMAND INFO get", "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"],
  ["MULTI", "+OK\r\n"],
  ["INCR n", "+QUEUED\r\n"],
  ["GET a", "+QUEUED\r\n"],
  ["EXEC", "*2\r\n:2\r\n$1\r\n1\r\n"],
  ["DEBUG PROTOCOL bignum", "$37\r\n1234567999999999999999999999999999999\r\n"],
  ["DEBUG PROTOCOL verbatim", "$25\r\nThis is a verbatim\nstring\r\n"],
  ["DEBUG PROTOCOL true", ":1\r\n"],
  ["DEBUG PROTOCOL double", "$5\r\n3.141\r\n"],
  ["DEBUG PROTOCOL map", "*6\r\n:0\r\n:0\r\n:1\r\n:1\r\n:2\r\n:0\r\n"],
  ["DEBUG PROTOCOL set", "*3\r\n:0\r\n:1\r\n:2\r\n"],
  ["DEBUG PROTOCOL null", "$-1\r\n"],
  ["DEBUG PROTOCOL attrib", "$39\r\nSome real reply following the attribute\r\n"],
  ["SCAN 0", "*2\r\n$1\r\n0\r\n*7\r\n$1\r\nz\r\n$1\r\nn\r\n$2\r\nst\r\n$1\r\ns\r\n$1\r\na\r\n$1\r\nl\r\n$1\r\nh\r\n"],
  ["EVAL return {1,2,{3,\"x\"}} 0", "*3\r\n:1\r\n:2\r\n*2\r\n:3\r\n$1\r\nx\r\n"],
  ["GEOADD g 13.361389 38.115556 Palermo", ":1\r\n"],
  ["GEOPOS g Palermo nowhere", "*2\r\n*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n*-1\r\n"],
  ["HRANDFIELD h -1 WITHVALUES", "*2\r\n$2\r\nf2\r\n$2\r\nv2\r\n"],
  ["LPOS l zz", "$-1\r\n"],
];
const RESP3_REPLIES: Array<[string, string]> = [
  ["HELLO 3", "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"],
  ["FLUSHALL", "+OK\r\n"],
  ["SET a 1", "+OK\r\n"],
  ["GET a", "$1\r\n1\r\n"],
  ["GET missing", "_\r\n"],
  ["INCR n", ":1\r\n"],
  ["RPUSH l a b c", ":3\r\n"],
  ["LRANGE l 0 -1", "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"],
  ["HSET h f1 v1 f2 v2", ":2\r\n"],
  ["HGETALL h", "%2\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n"],
  ["SADD s x", ":1\r\n"],
  ["SMEMBERS s", "~1\r\n$1\r\nx\r\n"],
  ["ZADD z 1.5 m1 2 m2", ":2\r\n"],
  ["ZRANGE z 0 -1 WITHSCORES", "*2\r\n*2\r\n$2\r\nm1\r\n,1.5\r\n*2\r\n$2\r\nm2\r\n,2\r\n"],
  ["ZSCORE z m1", ",1.5\r\n"],
  ["ZSCORE z nope", "_\r\n"],
  ["XADD st 1-1 f v", "$3\r\n1-1\r\n"],
  ["XADD st 2-1 g w h x", "$3\r\n2-1\r\n"],
  ["XRANGE st - +", "*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$3\r\n2-1\r\n*4\r\n$1\r\ng\r\n$1\r\nw\r\n$1\r\nh\r\n$1\r\nx\r\n"],
  ["BLPOP empty 0.01", "_\r\n"],
  ["MGET a missing n", "*3\r\n$1\r\n1\r\n_\r\n$1\r\n1\r\n"],
  ["EXISTS a missing", ":1\r\n"],
  ["CONFIG GET maxmemory", "%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"],
  ["NOSUCH x", "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"],
  ["GET", "-ERR wrong number of arguments for 'get' command\r\n"],
  ["LPOP h", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"],
  ["OBJECT ENCODING l", "$9\r\nquicklist\r\n"],
  ["COMMAND INFO get", "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n~0\r\n"],
  ["MULTI", "+OK\r\n"],
  ["INCR n", "+QUEUED\r\n"],
  ["GET a", "+QUEUED\r\n"],
  ["EXEC", "*2\r\n:2\r\n$1\r\n1\r\n"],
  ["DEBUG PROTOCOL bignum", "(1234567999999999999999999999999999999\r\n"],
  ["DEBUG PROTOCOL verbatim", "=29\r\ntxt:This is a verbatim\nstring\r\n"],
  ["DEBUG PROTOCOL true", "#t\r\n"],
  ["DEBUG PROTOCOL double", ",3.141\r\n"],
  ["DEBUG PROTOCOL map", "%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n"],
  ["DEBUG PROTOCOL set", "~3\r\n:0\r\n:1\r\n:2\r\n"],
  ["DEBUG PROTOCOL null", "_\r\n"],
  ["DEBUG PROTOCOL attrib", "|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n$39\r\nSome real reply following the attribute\r\n"],
  ["SCAN 0", "*2\r\n$1\r\n0\r\n*7\r\n$1\r\nz\r\n$1\r\nn\r\n$2\r\nst\r\n$1\r\ns\r\n$1\r\na\r\n$1\r\nl\r\n$1\r\nh\r\n"],
  ["EVAL return {1,2,{3,\"x\"}} 0", "*3\r\n:1\r\n:2\r\n*2\r\n:3\r\n$1\r\nx\r\n"],
  ["GEOADD g 13.361389 38.115556 Palermo", ":1\r\n"],
  ["GEOPOS g Palermo nowhere", "*2\r\n*2\r\n,13.36138933897018433\r\n,38.11555639549629859\r\n_\r\n"],
  ["HRANDFIELD h -1 WITHVALUES", "*1\r\n*2\r\n$2\r\nf2\r\n$2\r\nv2\r\n"],
  ["LPOS l zz", "_\r\n"],
  ["DEBUG PROTOCOL push", ">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n$40\r\nSome real reply following the push reply\r\n"],
];

// --- helpers ------------------------------------------------------------------

const L = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Deterministic PRNG (LCG) so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Cut points: whole, every 2-way split, byte by byte, and random chunkings. */
function* chunkings(len: number, opts: { random?: number; maxChunk?: number; everySplit?: boolean; seed?: number } = {}): Generator<number[]> {
  yield [];
  if (opts.everySplit !== false) for (let i = 1; i < len; i++) yield [i];
  if (opts.everySplit !== false) yield Array.from({ length: Math.max(0, len - 1) }, (_, i) => i + 1);
  const r = rng(opts.seed ?? 7);
  const rounds = opts.random ?? 50;
  const max = opts.maxChunk ?? 23;
  for (let k = 0; k < rounds; k++) {
    const cuts: number[] = [];
    let p = 0;
    for (;;) {
      p += 1 + Math.floor(r() * max);
      if (p >= len) break;
      cuts.push(p);
    }
    yield cuts;
  }
}

/** Push buf in fresh chunk copies cut at `cuts`. */
function pushCut(push: (b: Buffer) => void, buf: Buffer, cuts: number[]): void {
  let prev = 0;
  for (const c of cuts) {
    push(Buffer.from(buf.subarray(prev, c)));
    prev = c;
  }
  push(Buffer.from(buf.subarray(prev)));
}

interface DecodedRequest {
  args: string[];
  raw: string;
  inline: boolean;
  name: string;
}

interface RequestRun {
  cmds: DecodedRequest[];
  error: RespProtocolError | null;
  decoder: RespRequestDecoder;
  objects: RespCommand[];
}

function decodeRequests(buf: Buffer, cuts: number[] = [], opts?: RequestDecoderOptions): RequestRun {
  const run: RequestRun = { cmds: [], error: null, decoder: undefined as unknown as RespRequestDecoder, objects: [] };
  const d = new RespRequestDecoder(
    {
      onCommand(cmd) {
        run.objects.push(cmd);
        run.cmds.push({ args: cmd.args().map((a) => a.toString('latin1')), raw: cmd.raw.toString('latin1'), inline: cmd.inline, name: cmd.name });
      },
      onError(err) {
        assert.equal(run.error, null, 'one error at most');
        run.error = err;
      },
    },
    opts,
  );
  run.decoder = d;
  pushCut((b) => d.push(b), buf, cuts);
  return run;
}

/** Read the error again after an assertion narrowed it to null. */
function errorOf(r: { error: RespProtocolError | null }): RespProtocolError | null {
  return r.error;
}

interface DecodedReply {
  raw: string;
  type: string;
}

function decodeReplies(buf: Buffer, cuts: number[] = []): { replies: DecodedReply[]; error: RespProtocolError | null; views: Array<{ buf: Buffer; start: number; end: number }> } {
  const out = { replies: [] as DecodedReply[], error: null as RespProtocolError | null, views: [] as Array<{ buf: Buffer; start: number; end: number }> };
  const d = new RespReplyDecoder({
    onReply(b, start, end, type) {
      out.views.push({ buf: b, start, end });
      out.replies.push({ raw: b.toString('latin1', start, end), type: String.fromCharCode(type) });
    },
    onError(err) {
      out.error = err;
    },
  });
  pushCut((b) => d.push(b), buf, cuts);
  return out;
}

/** The frames of a reply stream, cut at the reply boundaries we know (one reply per command, push frames extra). */
function splitKnownReplies(fixtures: Array<[string, string]>): DecodedReply[] {
  const out: DecodedReply[] = [];
  for (const [cmd, rep] of fixtures) {
    if (cmd === 'DEBUG PROTOCOL push') {
      const push = rep.slice(0, rep.indexOf('$40'));
      out.push({ raw: push, type: '>' }, { raw: rep.slice(push.length), type: '$' });
    } else {
      out.push({ raw: rep, type: rep[0] === '|' ? '$' : rep[0] });
    }
  }
  return out;
}

// --- requests -------------------------------------------------------------------

describe('RespRequestDecoder: real captures', () => {
  test('redis-cli and redis-benchmark requests decode identically for every chunking', () => {
    const buf = L(CLI_REQUESTS + BENCH_REQUESTS);
    const whole = decodeRequests(buf);
    assert.equal(whole.error, null);
    assert.deepEqual(whole.cmds.slice(0, 3).map((c) => c.args), [
      ['set', 'a b', 'x\\ny'],
      ['HELLO', '3'],
      ['hgetall', 'h'],
    ]);
    assert.equal(whole.cmds.length, 3 + 16);
    assert.deepEqual(whole.cmds[3].args, ['SET', 'key:__rand_int__', 'VXKeHogKgJ']);
    assert.equal(whole.cmds[18].args.length, 21);
    assert.equal(whole.cmds.map((c) => c.raw).join(''), buf.toString('latin1'), 'raw frames tile the stream');
    assert.deepEqual(
      whole.cmds.map((c) => c.name),
      ['SET', 'HELLO', 'HGETALL', ...Array<string>(4).fill('SET'), ...Array<string>(4).fill('GET'), ...Array<string>(4).fill('LPUSH'), ...Array<string>(4).fill('MSET')],
    );
    for (const cuts of chunkings(buf.length)) {
      const r = decodeRequests(buf, cuts);
      assert.equal(r.error, null);
      assert.deepEqual(r.cmds, whole.cmds, `cuts ${cuts.join(',')}`);
    }
  });

  test('frames inside one chunk are views of it; a straddling frame is copied once, alone', () => {
    const frames = BENCH_REQUESTS.repeat(20);
    const buf = L(frames);
    const whole = decodeRequests(buf);
    const direct: RespCommand[] = [];
    new RespRequestDecoder({ onCommand: (c) => direct.push(c), onError: assert.fail }).push(buf);
    assert.equal(direct.length, whole.objects.length);
    for (const c of direct) assert.equal(c.buffer, buf, 'a view of the pushed chunk');
    // Cut in the middle of the 5th frame: only that frame's head is kept.
    const r = decodeRequests(buf, [whole.objects[4].start + 7]);
    assert.equal(r.cmds.length, whole.cmds.length);
    const straddler = r.objects[4];
    assert.equal(straddler.start, 0);
    assert.equal(straddler.raw.toString('latin1'), whole.cmds[4].raw);
    const d = new RespRequestDecoder({ onCommand() {}, onError: assert.fail });
    d.push(buf.subarray(0, whole.objects[4].start + 7));
    assert.equal(d.pendingBytes, 7);
    d.push(buf.subarray(whole.objects[4].start + 7));
    assert.equal(d.pendingBytes, 0);
  });
});

describe('RespRequestDecoder: multibulk', () => {
  const big = Buffer.alloc(300 * 1024, 'v');
  big.write('\r\n*1\r\n$4\r\n\0', 1000, 'latin1'); // framing bytes inside a payload mean nothing
  const mixed = Buffer.concat([
    encodeCommand(['SET', 'k', 'binary\r\n\0\xff']),
    L('*0\r\n*-1\r\n'),
    encodeCommand(['get', '']),
    encodeCommand(['SET', 'big', big]),
    L('PING\r\n\r\n  \r\nECHO "x y"\n'),
    encodeCommand(['DEL', 'a', 'b', 'c']),
  ]);

  test('mixed stream: every chunking gives the same commands and raw frames', () => {
    const whole = decodeRequests(mixed);
    assert.equal(whole.error, null);
    assert.deepEqual(
      whole.cmds.map((c) => [c.name, c.args.length, c.inline]),
      [
        ['SET', 3, false],
        ['GET', 2, false],
        ['SET', 3, false],
        ['PING', 1, true],
        ['ECHO', 2, true],
        ['DEL', 4, false],
      ],
    );
    assert.equal(whole.cmds[0].args[2], Buffer.from('binary\r\n\0\xff').toString('latin1'));
    assert.equal(whole.cmds[1].args[1], '');
    assert.ok(L(whole.cmds[2].args[2]).equals(big));
    assert.equal(whole.cmds[3].raw, '*1\r\n$4\r\nPING\r\n', 'inline re-encoded as RESP');
    assert.equal(whole.cmds[4].raw, '*2\r\n$4\r\nECHO\r\n$3\r\nx y\r\n');
    // Random chunkings with small and large chunks (the 300 KB value spans many).
    for (const cuts of chunkings(mixed.length, { everySplit: false, random: 30, maxChunk: 9000, seed: 3 })) {
      assert.deepEqual(decodeRequests(mixed, cuts).cmds, whole.cmds);
    }
    for (const cuts of chunkings(mixed.length, { everySplit: false, random: 3, maxChunk: 40, seed: 5 })) {
      assert.deepEqual(decodeRequests(mixed, cuts).cmds, whole.cmds);
    }
  });

  test('every 2-way split of a small mixed stream', () => {
    const small = Buffer.concat([encodeCommand(['SET', 'k', 'binary\r\n\0\xff']), L('*0\r\n*-1\r\n'), encodeCommand(['get', '']), L('PING\r\n'), encodeCommand(['MGET', 'a', 'bb', 'ccc'])]);
    const whole = decodeRequests(small);
    assert.equal(whole.cmds.length, 4);
    for (const cuts of chunkings(small.length)) assert.deepEqual(decodeRequests(small, cuts).cmds, whole.cmds);
  });

  test('a frame arriving one byte at a time never keeps more than the frame', () => {
    const frame = encodeCommand(['SET', 'key', 'x'.repeat(5000)]);
    const d = new RespRequestDecoder({ onCommand() {}, onError: assert.fail });
    let max = 0;
    for (let i = 0; i < frame.length; i++) {
      d.push(frame.subarray(i, i + 1));
      max = Math.max(max, d.pendingBytes);
    }
    assert.equal(max, frame.length - 1);
    assert.equal(d.pendingBytes, 0);
  });

  test('an announced 512 MB argument reserves memory by what arrives, not by what is announced', () => {
    const d = new RespRequestDecoder({ onCommand: () => assert.fail('no command'), onError: assert.fail });
    d.push(L('*2\r\n$3\r\nSET\r\n$536870912\r\nabc'));
    assert.equal(d.pendingBytes, 28);
    assert.ok(d.heldBytes <= 2 * 1024 * 1024, `holds ${d.heldBytes} bytes`);
    for (let i = 0; i < 10; i++) d.push(Buffer.alloc(1024 * 1024, 'v'));
    assert.ok(d.heldBytes <= 2 * (d.pendingBytes + 1024 * 1024), `holds ${d.heldBytes} bytes for ${d.pendingBytes}`);
  });

  test('redis leniency: the byte after a header CR and the two bytes after a payload are not checked', () => {
    // Real server: "*1\r\n$4\r\nPINGxxPING\r\n" answers +PONG twice; "*1\rX$4\r\nPING\r\n" answers +PONG.
    const r = decodeRequests(L('*1\r\n$4\r\nPINGxxPING\r\n*1\rX$4\rXPING\r\n'));
    assert.equal(r.error, null);
    assert.deepEqual(r.cmds.map((c) => [c.args, c.inline]), [
      [['PING'], false],
      [['PING'], true],
      [['PING'], false],
    ]);
    assert.equal(r.cmds[0].raw, '*1\r\n$4\r\nPINGxx', 'forwarded as received: the upstream skips the same bytes');
  });

  test('strictCrlf rejects what redis would skip', () => {
    for (const s of ['*1\r\n$4\r\nPINGxx', '*1\rX$4\r\nPING\r\n', '*1\r\n$4\rXPING\r\n', '*1\r\n$4\r\nPING\rx']) {
      for (const cuts of chunkings(s.length, { random: 5 })) {
        const r = decodeRequests(L(s), cuts, { strictCrlf: true });
        assert.equal(r.error?.kind, 'expected-crlf', s);
        assert.equal(r.cmds.length, 0);
      }
    }
    assert.equal(decodeRequests(L('*1\r\n$4\r\nPING\r\n'), [], { strictCrlf: true }).cmds.length, 1);
  });
});

describe('RespRequestDecoder: inline commands (sdssplitargs rules)', () => {
  // Expected values are what redis-server 7.0.15 echoed back (ECHO) or answered.
  const cases: Array<[string, string[]]> = [
    ['PING\r\n', ['PING']],
    ['PING\n', ['PING']],
    ['ping\r\n', ['ping']],
    ['\n\n\nPING\r\n', ['PING']],
    ['ECHO "a b"\r\n', ['ECHO', 'a b']],
    ['ECHO "a\\x41\\n\\t\\\\\\""\r\n', ['ECHO', 'aA\n\t\\"']],
    ["ECHO 'a b'\r\n", ['ECHO', 'a b']],
    ["ECHO 'a\\'b'\r\n", ['ECHO', "a'b"]],
    ["ECHO 'a\\nb'\r\n", ['ECHO', 'a\\nb']],
    ['ECHO "\\xzz"\r\n', ['ECHO', 'xzz']],
    ['ECHO "\\x4"\r\n', ['ECHO', 'x4']],
    ['ECHO "\\X41"\r\n', ['ECHO', 'X41']],
    ['ECHO "\\xfF"\r\n', ['ECHO', '\xff']],
    ['ECHO a"b"\r\n', ['ECHO', 'ab']],
    ['ECHO ""\r\n', ['ECHO', '']],
    ['ECHO \t x \t\r\n', ['ECHO', 'x']],
    ['ECHO a\rb\r\n', ['ECHO', 'a', 'b']],
    ['ECHO "a" "b"\r\n', ['ECHO', 'a', 'b']],
    ['ECHO "a"\x0bb\r\n', ['ECHO', 'a', 'b']],
    ['ECHO a\x0bb\r\n', ['ECHO', 'a\x0bb']],
    ['ECHO "\\q"\r\n', ['ECHO', 'q']],
    ['ECHO "\\r\\b\\a"\r\n', ['ECHO', '\r\b\x07']],
    ['ECHO \xff\r\n', ['ECHO', '\xff']],
    ['SET k "multi word value"\r\n', ['SET', 'k', 'multi word value']],
    ['PING\r\r\n', ['PING']],
  ];
  for (const [line, args] of cases) {
    test(JSON.stringify(line), () => {
      for (const cuts of chunkings(line.length)) {
        const r = decodeRequests(L(line), cuts);
        assert.equal(r.error, null);
        assert.deepEqual(r.cmds.map((c) => c.args), [args]);
        assert.equal(r.cmds[0].inline, true);
        assert.equal(r.cmds[0].raw, encodeCommand(args.map(L)).toString('latin1'));
      }
    });
  }

  test('blank lines are no command', () => {
    const r = decodeRequests(L('\r\n   \r\n\n\t\n'));
    assert.equal(r.error, null);
    assert.equal(r.cmds.length, 0);
    assert.equal(r.decoder.pendingBytes, 0);
  });

  for (const line of ['ECHO "abc\r\n', 'ECHO "abc"d\r\n', "ECHO 'ab'c\r\n", 'ECHO "a""b"\r\n', 'ECHO "a\\"\r\n', "ECHO 'x\r\n"]) {
    test(`unbalanced quotes: ${JSON.stringify(line)}`, () => {
      for (const cuts of chunkings(line.length)) {
        const r = decodeRequests(L('PING\r\n' + line + 'PING\r\n'), cuts.map((c) => c + 6));
        assert.equal(r.cmds.length, 1, 'the command before the error is emitted, none after');
        assert.equal(r.error?.message, 'Protocol error: unbalanced quotes in request');
        assert.equal(r.error?.toReply().toString('latin1'), '-ERR Protocol error: unbalanced quotes in request\r\n');
      }
    });
  }
});

describe('RespRequestDecoder: protocol errors (texts from redis-server 7.0.15)', () => {
  const errors: Array<[string, string]> = [
    ['*x\r\n', 'Protocol error: invalid multibulk length'],
    ['*01\r\n$4\r\nPING\r\n', 'Protocol error: invalid multibulk length'],
    ['*+1\r\n$4\r\nPING\r\n', 'Protocol error: invalid multibulk length'],
    ['*-0\r\n', 'Protocol error: invalid multibulk length'],
    ['*1 \r\n', 'Protocol error: invalid multibulk length'],
    ['* 1\r\n', 'Protocol error: invalid multibulk length'],
    ['*\r\n', 'Protocol error: invalid multibulk length'],
    ['*2147483648\r\n', 'Protocol error: invalid multibulk length'],
    ['*-9223372036854775809\r\n', 'Protocol error: invalid multibulk length'],
    ['*1\r\nx4\r\nPING\r\n', "Protocol error: expected '$', got 'x'"],
    ['*1\r\n\r4\r\n', "Protocol error: expected '$', got ' '"],
    ['*1\r\n@\r\n', "Protocol error: expected '$', got '@'"],
    ['*1\r\n\x01\r\n', "Protocol error: expected '$', got '\x01'"],
    ['*2\r\n$3\r\nGET\r\n*1\r\n', "Protocol error: expected '$', got '*'"],
    ['*1\r\n$-1\r\n', 'Protocol error: invalid bulk length'],
    ['*1\r\n$04\r\nPING\r\n', 'Protocol error: invalid bulk length'],
    ['*1\r\n$\r\n', 'Protocol error: invalid bulk length'],
    ['*1\r\n$536870913\r\n', 'Protocol error: invalid bulk length'],
    ['*1\r\n$99999999999999999999\r\n', 'Protocol error: invalid bulk length'],
  ];
  for (const [input, message] of errors) {
    test(JSON.stringify(input), () => {
      const buf = L('*1\r\n$4\r\nPING\r\n' + input);
      for (const cuts of chunkings(buf.length)) {
        const r = decodeRequests(buf, cuts);
        assert.deepEqual(r.cmds.map((c) => c.args), [['PING']]);
        assert.ok(r.error instanceof RespProtocolError);
        assert.equal(r.error.message, message);
        assert.equal(r.error.code, 'PW_ERR_PROTOCOL');
        assert.equal(r.error.source, 'downstream');
        assert.equal(r.error.toReply().toString('latin1'), `-ERR ${message}\r\n`);
        assert.equal(r.decoder.failed, true);
      }
    });
  }

  test('after an error the decoder ignores input', () => {
    const r = decodeRequests(L('*x\r\n'));
    r.decoder.push(L('*1\r\n$4\r\nPING\r\n'));
    assert.equal(r.cmds.length, 0);
  });

  test('accepted limits: INT_MAX arguments and 512 MB arguments wait for data, no error', () => {
    for (const s of ['*2147483647\r\n', '*1\r\n$536870912\r\n', '*10\r\n$4\r\nPING\r\n', '*-9223372036854775808\r\n']) {
      const r = decodeRequests(L(s));
      assert.equal(r.error, null, s);
      assert.equal(r.cmds.length, 0);
    }
  });

  test('"*0" and "*-1" are consumed silently', () => {
    const r = decodeRequests(L('*-1\r\nPING\r\n*0\r\nPING\r\n'));
    assert.deepEqual(r.cmds.map((c) => c.args), [['PING'], ['PING']]);
  });

  test('too big inline request / mbulk count string / bulk count string: over 64 KB without terminator', () => {
    const cases: Array<[Buffer, string]> = [
      [L('PING ' + 'A'.repeat(70000)), 'Protocol error: too big inline request'],
      [L('*1' + '1'.repeat(70000)), 'Protocol error: too big mbulk count string'],
      [L('*1\r\n$' + '1'.repeat(70000)), 'Protocol error: too big bulk count string'],
    ];
    for (const [buf, message] of cases) {
      for (const cuts of chunkings(buf.length, { everySplit: false, random: 5, maxChunk: 20000 })) {
        const r = decodeRequests(buf, cuts);
        assert.equal(r.error?.message, message);
      }
    }
    // Exactly at the limit is still waiting; one byte more fails.
    const at = decodeRequests(L('A'.repeat(65536)));
    assert.equal(at.error, null);
    at.decoder.push(L('A'));
    assert.equal(errorOf(at)?.message, 'Protocol error: too big inline request');
    const r = decodeRequests(L('A'.repeat(65537)));
    assert.equal(r.error?.message, 'Protocol error: too big inline request');
    // A long line that does end is fine (the real server echoed 66000 bytes).
    const ok = decodeRequests(L('ECHO ' + 'b'.repeat(66000) + '\r\n'));
    assert.equal(ok.error, null);
    assert.equal(ok.cmds[0].args[1].length, 66000);
  });

  test('a NUL before the terminator stalls like strchr() in redis, then fails at 64 KB', () => {
    // Real server: "PING\0\r\n", "*1\0\r\n..." and "*1\r\n$4\0\r\n..." get no answer.
    const cases: Array<[string, string]> = [
      ['PING\0\r\n', 'Protocol error: too big inline request'],
      ['ECHO "a\0b"\r\n', 'Protocol error: too big inline request'],
      ['*1\0\r\n$4\r\nPING\r\n', 'Protocol error: too big mbulk count string'],
      ['*1\r\n$4\0\r\nPING\r\n', 'Protocol error: too big bulk count string'],
    ];
    for (const [s, message] of cases) {
      for (const cuts of chunkings(s.length, { random: 5 })) {
        const r = decodeRequests(L(s), cuts);
        assert.equal(r.error, null, s);
        assert.equal(r.cmds.length, 0);
        for (let i = 0; i < 6; i++) r.decoder.push(Buffer.alloc(10000, 'z'));
        assert.equal(r.error, null);
        r.decoder.push(Buffer.alloc(10000, 'z'));
        assert.equal(errorOf(r)?.message, message, s);
      }
    }
    // A NUL inside a payload is data.
    assert.deepEqual(decodeRequests(L('*1\r\n$4\r\nPI\0G\r\n')).cmds[0].args, ['PI\0G']);
  });

  test('unauthenticated clients: at most 10 arguments of 16384 bytes', () => {
    const opts = { unauthenticated: true };
    assert.equal(decodeRequests(L('*11\r\n'), [], opts).error?.message, 'Protocol error: unauthenticated multibulk length');
    assert.equal(decodeRequests(L('*10\r\n'), [], opts).error, null);
    assert.equal(decodeRequests(L('*2\r\n$4\r\nAUTH\r\n$16385\r\n'), [], opts).error?.message, 'Protocol error: unauthenticated bulk length');
    assert.equal(decodeRequests(L('*2\r\n$4\r\nAUTH\r\n$16384\r\n'), [], opts).error, null);
    const r = decodeRequests(L('*2\r\n$4\r\nAUTH\r\n$3\r\npwd\r\n'), [], opts);
    r.decoder.unauthenticated = false;
    r.decoder.push(L('*11\r\n'));
    assert.equal(r.error, null);
  });

  test('configurable limits keep redis texts', () => {
    assert.equal(decodeRequests(L('*6\r\n'), [], { maxMultibulkLength: 5 }).error?.message, 'Protocol error: invalid multibulk length');
    assert.equal(decodeRequests(L('*1\r\n$11\r\n'), [], { maxBulkLength: 10 }).error?.message, 'Protocol error: invalid bulk length');
    assert.equal(decodeRequests(L('PING ' + 'x'.repeat(200)), [], { maxInlineLength: 100 }).error?.message, 'Protocol error: too big inline request');
  });

  test('maxFrameBytes (client-query-buffer-limit): closed without a reply', () => {
    const frame = encodeCommand(['SET', 'k', 'v'.repeat(5000)]);
    const r = decodeRequests(frame, [100, 2000, 4000], { maxFrameBytes: 3000 });
    assert.equal(r.error?.kind, 'query-buffer-limit');
    assert.equal(r.error?.hasReply, false);
    assert.equal(decodeRequests(frame, [100, 2000, 4000], { maxFrameBytes: 6000 }).error, null);
  });
});

describe('RespCommand', () => {
  test('name is ASCII-uppercased and interned; argument helpers', () => {
    const r = decodeRequests(L('*4\r\n$5\r\nxReAd\r\n$7\r\nstreams\r\n$2\r\n42\r\n$2\r\n\xff\xe9\r\n'));
    const cmd = r.objects[0];
    assert.equal(cmd.name, 'XREAD');
    assert.equal(cmd.name, cmd.name);
    assert.equal(decodeRequests(L('*1\r\n$5\r\nxread\r\n')).objects[0].name, 'XREAD');
    assert.equal(cmd.argEquals(1, 'STREAMS'), true);
    assert.equal(cmd.argEquals(1, 'STREAM'), false);
    assert.equal(cmd.argEquals(2, 'STREAMS'), false);
    assert.equal(cmd.argInteger(2), 42);
    assert.equal(cmd.argInteger(1), undefined);
    assert.equal(cmd.argUpper(3), '\xff\xe9', 'bytes over 0x7f are not case-folded');
    assert.equal(cmd.argUpper(1), 'STREAMS');
    assert.equal(cmd.argLength(1), 7);
    assert.equal(cmd.argString(1), 'streams');
    const target = Buffer.alloc(cmd.rawLength + 4);
    assert.equal(cmd.copyRawTo(target, 2), cmd.rawLength);
    assert.ok(target.subarray(2, 2 + cmd.rawLength).equals(cmd.raw));
    const built = RespCommand.from(['get', Buffer.from('k')]);
    assert.equal(built.name, 'GET');
    assert.equal(built.raw.toString(), '*2\r\n$3\r\nget\r\n$1\r\nk\r\n');
    assert.equal(decodeRequests(L('*1\r\n$' + '60\r\n' + 'a'.repeat(60) + '\r\n')).objects[0].name, 'A'.repeat(60));
  });

  test('argInteger follows string2ll', () => {
    const cmd = RespCommand.from(['X', '0', '-1', '01', '+1', ' 1', '', '9223372036854775807', '9223372036854775808', '-9223372036854775808', '-0']);
    assert.deepEqual(
      Array.from({ length: cmd.argc - 1 }, (_, i) => cmd.argInteger(i + 1)),
      [0, -1, undefined, undefined, undefined, undefined, 9223372036854775807, undefined, -9223372036854775808, undefined],
    );
  });
});

// --- replies --------------------------------------------------------------------

describe('RespReplyDecoder: real replies', () => {
  for (const [label, fixtures] of [
    ['RESP2', RESP2_REPLIES],
    ['RESP3', RESP3_REPLIES],
  ] as const) {
    test(`${label} session frames identically for every chunking`, () => {
      const expected = splitKnownReplies(fixtures);
      const buf = L(fixtures.map(([, r]) => r).join(''));
      const whole = decodeReplies(buf);
      assert.equal(whole.error, null);
      assert.deepEqual(whole.replies, expected);
      let views = 0;
      new RespReplyDecoder({
        onReply: (b) => {
          assert.equal(b, buf, 'a view of the pushed chunk');
          views++;
        },
        onError: assert.fail,
      }).push(buf);
      assert.equal(views, expected.length);
      for (const cuts of chunkings(buf.length, { random: 100 })) {
        const r = decodeReplies(buf, cuts);
        assert.equal(r.error, null);
        assert.deepEqual(r.replies, expected);
      }
    });
  }

  test('types: attribute frames carry the annotated value type; push is out of band', () => {
    const r = decodeReplies(L(RESP3_REPLIES.map(([, x]) => x).join('')));
    assert.deepEqual(r.replies.slice(0, 5).map((x) => x.type), ['%', '+', '+', '$', '_'], 'HELLO, FLUSHALL, SET, GET, GET missing');
    const attrib = RESP3_REPLIES.find(([c]) => c === 'DEBUG PROTOCOL attrib');
    assert.ok(attrib);
    assert.deepEqual(decodeReplies(L(attrib[1])).replies, [{ raw: attrib[1], type: '$' }]);
    const push = RESP3_REPLIES.find(([c]) => c === 'DEBUG PROTOCOL push');
    assert.ok(push);
    assert.deepEqual(decodeReplies(L(push[1])).replies.map((x) => x.type), ['>', '$']);
  });
});

describe('RespReplyDecoder: hand-built RESP3', () => {
  const cases: Array<[string, string, string]> = [
    ['null', '_\r\n', '_'],
    ['booleans', '#t\r\n', '#'],
    ['double inf', ',-inf\r\n', ','],
    ['big number', '(3492890328409238509324850943850943825024385\r\n', '('],
    ['bulk error', '!21\r\nSYNTAX invalid syntax\r\n', '!'],
    ['verbatim', '=15\r\ntxt:Some string\r\n', '='],
    ['empty aggregates', '*0\r\n', '*'],
    ['empty map', '%0\r\n', '%'],
    ['null array', '*-1\r\n', '*'],
    ['null bulk', '$-1\r\n', '$'],
    ['nested', '*3\r\n%1\r\n+k\r\n~2\r\n:1\r\n*2\r\n$0\r\n\r\n_\r\n>1\r\n+p\r\n,1.5\r\n', '*'],
    ['streamed string', '$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n', '$'],
    ['streamed array', '*?\r\n:1\r\n*?\r\n+a\r\n.\r\n$1\r\nx\r\n.\r\n', '*'],
    ['streamed map', '%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n', '%'],
    ['attribute inside an array', '*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n:2\r\n', '*'],
    ['attribute before attribute', '|1\r\n+a\r\n:1\r\n|0\r\n#f\r\n', '#'],
    ['binary bulk', '$6\r\n\r\n\0\xff\r\n\r\n', '$'],
  ];
  for (const [label, raw, type] of cases) {
    test(label, () => {
      const buf = L(raw + '+OK\r\n');
      for (const cuts of chunkings(buf.length)) {
        const r = decodeReplies(buf, cuts);
        assert.equal(r.error, null);
        assert.deepEqual(r.replies, [
          { raw, type },
          { raw: '+OK\r\n', type: '+' },
        ]);
      }
    });
  }

  test('big bulk strings and big arrays across random chunkings', () => {
    const value = Buffer.alloc(2 * 1024 * 1024 + 3, 'q');
    value.write('\r\n$3\r\n', 5, 'latin1');
    const w = new RespWriter();
    w.bulk(value).arrayHeader(20000);
    for (let i = 0; i < 20000; i++) w.bulk(`member:${i}`);
    w.simpleString('OK');
    const buf = Buffer.from(w.take());
    for (const cuts of chunkings(buf.length, { everySplit: false, random: 8, maxChunk: 70000, seed: 11 })) {
      const r = decodeReplies(buf, cuts);
      assert.equal(r.error, null);
      assert.equal(r.replies.length, 3);
      assert.ok(L(r.replies[0].raw).equals(encodeValue({ type: 'bulk', value })));
      assert.equal(r.replies[1].type, '*');
      assert.equal(parseReply(L(r.replies[1].raw)).type, 'array');
    }
  });

  const bad: Array<[string, string]> = [
    ['@\r\n', "Protocol error: invalid reply type byte '@'"],
    ['$3\r\nabcd\r\n', 'Protocol error: expected CRLF after bulk data'],
    ['$x\r\n', 'Protocol error: invalid bulk length'],
    ['*-2\r\n', 'Protocol error: invalid multibulk length'],
    ['+OK\rX', 'Protocol error: expected CRLF'],
    ['.\r\n', "Protocol error: unexpected '.'"],
    ['$?\r\n:1\r\n', 'Protocol error: invalid streamed string chunk'],
    [':12a\r\n', "Protocol error: invalid ':' reply"],
    ['*1\r\n:\r\n', "Protocol error: invalid ':' reply"],
    ['#x\r\n', "Protocol error: invalid '#' reply"],
    ['_x\r\n', "Protocol error: invalid '_' reply"],
    [',1.\r\n', "Protocol error: invalid ',' reply"],
    ['(12.5\r\n', "Protocol error: invalid '(' reply"],
  ];
  for (const [raw, message] of bad) {
    test(`error: ${JSON.stringify(raw)}`, () => {
      for (const cuts of chunkings(raw.length)) {
        const r = decodeReplies(L(raw), cuts);
        assert.equal(r.error?.message, message);
        assert.equal(r.error?.source, 'upstream');
      }
    });
  }
});

// --- values, encoding, conversions ---------------------------------------------------

/** Replies of a fixture list, labelled by command (a push frame is split off its reply). */
function fixtureFrames(fixtures: Array<[string, string]>): Array<[string, Buffer]> {
  return fixtures.flatMap(([cmd, rep]) => splitKnownReplies([[cmd, rep]]).map((r): [string, Buffer] => [cmd, L(r.raw)]));
}

describe('parseReply and the encoder', () => {
  test('values of real replies', () => {
    const get = (fx: Array<[string, string]>, c: string): Buffer => L((fx.find(([k]) => k === c) as [string, string])[1]);
    assert.deepEqual(parseReply(get(RESP2_REPLIES, 'GET a')), { type: 'bulk', value: L('1') });
    assert.deepEqual(parseReply(get(RESP2_REPLIES, 'GET missing')), { type: 'null', kind: 'bulk' });
    assert.deepEqual(parseReply(get(RESP2_REPLIES, 'BLPOP empty 0.01')), { type: 'null', kind: 'array' });
    assert.deepEqual(parseReply(get(RESP2_REPLIES, 'NOSUCH x')), { type: 'error', value: "ERR unknown command 'NOSUCH', with args beginning with: 'x' " });
    assert.deepEqual(parseReply(get(RESP3_REPLIES, 'HGETALL h')), {
      type: 'map',
      value: [
        [{ type: 'bulk', value: L('f1') }, { type: 'bulk', value: L('v1') }],
        [{ type: 'bulk', value: L('f2') }, { type: 'bulk', value: L('v2') }],
      ],
    });
    assert.deepEqual(parseReply(get(RESP3_REPLIES, 'ZSCORE z m1')), { type: 'double', value: 1.5, text: '1.5' });
    assert.deepEqual(parseReply(get(RESP3_REPLIES, 'DEBUG PROTOCOL bignum')), { type: 'bignum', value: 1234567999999999999999999999999999999n });
    assert.deepEqual(parseReply(get(RESP3_REPLIES, 'DEBUG PROTOCOL verbatim')), { type: 'verbatim', format: 'txt', value: L('This is a verbatim\nstring') });
    const attrib = parseReply(get(RESP3_REPLIES, 'DEBUG PROTOCOL attrib'));
    assert.equal(attrib.type, 'bulk');
    assert.deepEqual(attrib.attributes, [
      [{ type: 'bulk', value: L('key-popularity') }, { type: 'array', value: [{ type: 'bulk', value: L('key:123') }, { type: 'integer', value: 90 }] }],
    ]);
    assert.deepEqual(parseReply(L(':9223372036854775807\r\n')), { type: 'integer', value: 9223372036854775807n });
    assert.deepEqual(parseReply(L(',inf\r\n')), { type: 'double', value: Infinity, text: 'inf' });
    assert.deepEqual(parseReply(L(',-1.5e-3\r\n')), { type: 'double', value: -0.0015, text: '-1.5e-3' });
    assert.deepEqual(parseReply(L(':+5\r\n')), { type: 'integer', value: 5 }, 'the RESP3 spec allows a + sign');
    assert.deepEqual(parseReply(L('$?\r\n;2\r\nab\r\n;1\r\nc\r\n;0\r\n')), { type: 'bulk', value: L('abc') });
    assert.deepEqual(parseReply(L('%?\r\n+a\r\n:1\r\n.\r\n')), { type: 'map', value: [[{ type: 'simple', value: 'a' }, { type: 'integer', value: 1 }]] });
    assert.throws(() => parseReply(L('$5\r\nab\r\n')), RespProtocolError);
    assert.throws(() => parseReply(L('*2\r\n:1\r\n')), RespProtocolError);
  });

  test('round trip: encode(parse(x)) === x for every captured reply', () => {
    for (const [cmd, frame] of fixtureFrames(RESP2_REPLIES)) assert.ok(encodeValue(parseReply(frame), 2).equals(frame), cmd);
    for (const [cmd, frame] of fixtureFrames(RESP3_REPLIES)) assert.ok(encodeValue(parseReply(frame), 3).equals(frame), cmd);
    const all = L(RESP3_REPLIES.map(([, r]) => r).join(''));
    assert.equal(parseReplies(all).length, RESP3_REPLIES.length + 1);
  });

  test('writer: every encoder against literal RESP', () => {
    const w = new RespWriter(16); // tiny slabs: every value crosses slab boundaries
    w.simpleString('OK').error('ERR bad\r\nthing').integer(0).integer(-42).integer(1234567890123).integer(2n ** 70n);
    w.bulk('héllo').bulk(Buffer.from([0, 13, 10])).bulk(null).nullArray().null().arrayHeader(2).bulk('a').integer(1);
    w.arrayHeader(-1).mapHeader(1).simpleString('k').boolean(true).setHeader(0).pushHeader(1).boolean(false);
    w.attributeHeader(0).double(1.5).double(-Infinity).double(NaN).bigNumber(-12345678901234567890n).bulkError('SYNTAX x');
    w.verbatim('hi', 'mkd').command(['SET', 'k', Buffer.from('v')]);
    w.raw(L('+RAW\r\n'), 0, 6);
    assert.equal(
      w.take().toString('latin1'),
      '+OK\r\n-ERR bad  thing\r\n:0\r\n:-42\r\n:1234567890123\r\n:1180591620717411303424\r\n' +
        '$6\r\nh\xc3\xa9llo\r\n$3\r\n\0\r\n\r\n$-1\r\n*-1\r\n_\r\n*2\r\n$1\r\na\r\n:1\r\n' +
        '*-1\r\n%1\r\n+k\r\n#t\r\n~0\r\n>1\r\n#f\r\n' +
        '|0\r\n,1.5\r\n,-inf\r\n,nan\r\n(-12345678901234567890\r\n!8\r\nSYNTAX x\r\n' +
        '=6\r\nmkd:hi\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n+RAW\r\n',
    );
    assert.equal(w.length, 0);
  });

  test('writer: views handed out stay intact while later writes go on', () => {
    const w = new RespWriter(64);
    const views: Array<[Buffer, string]> = [];
    for (let i = 0; i < 500; i++) {
      w.bulk(`value-${i}`.repeat(1 + (i % 7)));
      if (i % 3 === 0) {
        const v = w.take();
        views.push([v, v.toString('latin1')]);
      }
    }
    for (const [v, s] of views) assert.equal(v.toString('latin1'), s);
    w.integer(7);
    w.discard();
    assert.equal(w.length, 0);
  });

  test('integers near and past 2^53 and negative zero', () => {
    for (const n of [0, 9, 10, 99, 100, -1, -10, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]) {
      assert.deepEqual(parseReply(encodeValue({ type: 'integer', value: n })), { type: 'integer', value: n });
    }
  });
});

describe('RESP3 <-> RESP2', () => {
  // How redis-server itself answers the same command in RESP2, where the
  // generic rules need the command's context.
  const resp2Opts: Record<string, ToResp2Options> = {
    'BLPOP empty 0.01': { nullAs: 'array' },
    'GEOPOS g Palermo nowhere': { nestedNullAs: 'array' },
    'ZRANGE z 0 -1 WITHSCORES': { flattenPairs: true },
    'HRANDFIELD h -1 WITHVALUES': { flattenPairs: true },
  };

  test('toResp2 of every RESP3 capture equals the RESP2 capture of the same command', () => {
    // Both sessions ran the same commands; RESP3 had HELLO 3 first and one push more.
    const r3 = RESP3_REPLIES.slice(1);
    const r2 = RESP2_REPLIES;
    let compared = 0;
    for (let i = 0, j = 0; i < r3.length && j < r2.length; i++, j++) {
      const [cmd, rep3] = r3[i];
      if (cmd === 'DEBUG PROTOCOL push') {
        j--;
        continue;
      }
      assert.equal(r2[j][0], cmd);
      const v = toResp2(parseReply(L(rep3)), resp2Opts[cmd]);
      assert.equal(encodeValue(v, 2).toString('latin1'), r2[j][1], cmd);
      // The writer downgrades on the fly to the same bytes (context-free cases).
      if (resp2Opts[cmd] === undefined) assert.equal(encodeValue(parseReply(L(rep3)), 2).toString('latin1'), r2[j][1], cmd);
      compared++;
    }
    assert.equal(compared, RESP2_REPLIES.length);
  });

  test('downgrade rules on built values', () => {
    const v: RespValue = {
      type: 'map',
      attributes: [[{ type: 'simple', value: 'a' }, { type: 'null', kind: 'null' }]],
      value: [
        [{ type: 'simple', value: 'set' }, { type: 'set', value: [{ type: 'boolean', value: true }, { type: 'boolean', value: false }] }],
        [{ type: 'simple', value: 'push' }, { type: 'push', value: [{ type: 'bignum', value: 12n }, { type: 'double', value: 2.5, text: '2.5' }] }],
        [{ type: 'simple', value: 'err' }, { type: 'bulk-error', value: L('ERR a\r\nb') }],
        [{ type: 'simple', value: 'null' }, { type: 'null', kind: 'null' }],
      ],
    };
    const expected = '*8\r\n+set\r\n*2\r\n:1\r\n:0\r\n+push\r\n*2\r\n$2\r\n12\r\n$3\r\n2.5\r\n+err\r\n-ERR a  b\r\n+null\r\n$-1\r\n';
    assert.equal(encodeValue(toResp2(v), 2).toString('latin1'), expected);
    assert.equal(encodeValue(v, 2).toString('latin1'), expected);
    assert.equal(encodeValue({ type: 'null', kind: 'null' }, 2, 'array').toString(), '*-1\r\n');
    assert.equal(toResp2(v).attributes, undefined);
  });

  test('toResp3 with command shapes reproduces the RESP3 captures', () => {
    const shapes: Array<[string, Resp3Shape]> = [
      ['HGETALL h', { map: 'plain' }],
      ['SMEMBERS s', 'set'],
      ['ZSCORE z m1', 'double'],
      ['ZSCORE z nope', 'double'],
      ['ZRANGE z 0 -1 WITHSCORES', { pairs: ['plain', 'double'] }],
      ['HRANDFIELD h -1 WITHVALUES', { pairs: ['plain', 'plain'] }],
      ['GEOPOS g Palermo nowhere', { array: { array: 'double' } }],
      ['CONFIG GET maxmemory', { map: 'plain' }],
      ['BLPOP empty 0.01', 'plain'],
      ['MGET a missing n', 'plain'],
      ['LRANGE l 0 -1', 'plain'],
      ['EXISTS a missing', 'plain'],
      ['DEBUG PROTOCOL true', 'boolean'],
      ['DEBUG PROTOCOL verbatim', 'verbatim'],
      ['DEBUG PROTOCOL map', { map: 'boolean' }],
    ];
    for (const [cmd, shape] of shapes) {
      const r2 = RESP2_REPLIES.find(([c]) => c === cmd);
      const r3 = RESP3_REPLIES.find(([c]) => c === cmd);
      assert.ok(r2 && r3, cmd);
      assert.equal(encodeValue(toResp3(parseReply(L(r2[1])), shape), 3).toString('latin1'), r3[1], cmd);
    }
    assert.throws(() => toResp3({ type: 'array', value: [{ type: 'integer', value: 1 }] }, { map: 'plain' }), RespProtocolError);
  });

  test('readAggregateHeader: merge KEYS replies at the byte level', () => {
    const a = L('*2\r\n$1\r\na\r\n$1\r\nb\r\n');
    const b = L('*1\r\n$1\r\nc\r\n');
    const ha = readAggregateHeader(a);
    const hb = readAggregateHeader(b);
    assert.deepEqual(ha, { type: RespType.Array, count: 2, bodyStart: 4 });
    assert.ok(ha && hb);
    const merged = new RespWriter().arrayHeader(ha.count + hb.count).raw(a, ha.bodyStart).raw(b, hb.bodyStart).take();
    assert.deepEqual(parseReply(merged), { type: 'array', value: ['a', 'b', 'c'].map((x) => ({ type: 'bulk', value: L(x) })) });
    assert.deepEqual(readAggregateHeader(L('%2\r\n')), { type: RespType.Map, count: 4, bodyStart: 4 });
    assert.equal(readAggregateHeader(L('+OK\r\n')), null);
  });
});

describe('differential fuzz: one chunk (fast paths) vs byte by byte (state machine) vs random chunks', () => {
  const r = rng(2024);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

  test('requests: same commands, error and pending bytes', () => {
    const toks = ['*', '$', '1', '2', '0', '-', '4', '\r', '\n', '\r\n', ' ', '"', "'", '\\', 'x', 'q', '\0', 'PING', '*1\r\n$4\r\nPING\r\n', '*2\r\n$3\r\nGET\r\n$1\r\nk\r\n', 'PING\r\n', 'ECHO "q z"\r\n', '*0\r\n', '$3\r\n', '$0\r\n\r\n'];
    for (let n = 0; n < 3000; n++) {
      let s = '';
      for (let k = 1 + Math.floor(r() * 16); k > 0; k--) s += pick(toks);
      const buf = L(s);
      for (const strictCrlf of [false, true]) {
        const whole = decodeRequests(buf, [], { strictCrlf });
        const bytes = decodeRequests(buf, Array.from({ length: buf.length - 1 }, (_, i) => i + 1), { strictCrlf });
        const cuts = [...chunkings(buf.length, { everySplit: false, random: 1, maxChunk: 6, seed: n })][1];
        const random = decodeRequests(buf, cuts, { strictCrlf });
        for (const other of [bytes, random]) {
          assert.deepEqual(other.cmds, whole.cmds, JSON.stringify(s));
          assert.equal(other.error?.message, whole.error?.message, JSON.stringify(s));
          assert.equal(other.decoder.pendingBytes, whole.decoder.pendingBytes, JSON.stringify(s));
        }
      }
    }
  });

  test('replies: same frames and errors', () => {
    const toks = ['+', '-', ':', '$', '*', '%', '~', '|', '>', '_', '#', ',', '(', '!', '=', '?', ';', '.', '0', '1', '2', '-1', 'a', 't', '\r\n', '\r', '+OK\r\n', '$1\r\nx\r\n', '*2\r\n', '*1\r\n', '%1\r\n'];
    for (let n = 0; n < 3000; n++) {
      let s = '';
      for (let k = 1 + Math.floor(r() * 14); k > 0; k--) s += pick(toks);
      const buf = L(s);
      const whole = decodeReplies(buf);
      const bytes = decodeReplies(buf, Array.from({ length: buf.length - 1 }, (_, i) => i + 1));
      assert.deepEqual(bytes.replies, whole.replies, JSON.stringify(s));
      assert.equal(bytes.error?.message, whole.error?.message, JSON.stringify(s));
      // Every complete frame parses to a value and re-encodes to itself (streamed forms aside).
      for (const rep of whole.replies) {
        if (rep.raw.includes('?')) continue;
        const frame = L(rep.raw);
        assert.ok(encodeValue(parseReply(frame), 3).equals(frame), JSON.stringify(rep.raw));
      }
    }
  });
});
