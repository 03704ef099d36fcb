/**
 * RESP3 fidelity, differential: the same corpus of commands runs on a raw
 * socket that said HELLO 3 to a redis-server directly, and through Portway
 * (whose upstream links speak RESP2) to a second, identical redis-server.
 * Every reply is decoded into a typed tree (map, set, double, verbatim,
 * null, push ...) and the trees must be equal; only values that vary per
 * server or connection (ids, ports, times, memory figures) are masked.
 *
 * The corpus covers every reply-shape family of Redis 7.0: strings, hashes
 * (maps), sets, sorted sets (doubles, score pairs), geo (coordinates as
 * doubles), streams (XREAD maps, XINFO maps), server introspection (CONFIG
 * GET, COMMAND INFO / DOCS, MEMORY STATS, LATENCY, FUNCTION LIST, ACL),
 * verbatim strings (INFO, MEMORY DOCTOR, LATENCY DOCTOR), nulls at every
 * depth, transactions (EXEC elements converted as their commands), blocking
 * commands, scripts and pub/sub pushes.
 *
 * Also: the conversion table alone (a direct RESP2 reply converted by
 * resp3-convert.ts equals the direct RESP3 reply) for the commands Portway
 * answers itself or does not forward; ioredis 6 (HELLO 3 by default) through
 * Portway and directly; the memory component answering RESP2 and RESP3
 * clients as redis-server does.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import Redis from 'ioredis';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { startRedisCluster, type RedisClusterHandle } from '../helpers/redis-cluster';
import { RespReplyDecoder, RespType } from '../../src/protocols/redis/reply-decoder';
import { encodeCommand, RespWriter } from '../../src/protocols/redis/resp-writer';
import { parseReply, type RespValue } from '../../src/protocols/redis/resp-value';
import { RespCommand } from '../../src/protocols/redis/request-decoder';
import { resp3Conversion, resp3Reply, Resp3Transaction } from '../../src/protocols/redis/resp3-convert';

/** One connection: replies in request order, pushes (">") apart. */
class Conn {
  private readonly waiting: Array<(reply: Buffer) => void> = [];
  private readonly pushes: Buffer[] = [];
  private pushWaiter: ((b: Buffer) => void) | null = null;
  private failure: Error | null = null;

  private constructor(private readonly socket: Socket) {
    const decoder = new RespReplyDecoder({
      onReply: (buf, start, end, type) => {
        const frame = Buffer.from(buf.subarray(start, end));
        if (type === RespType.Push) {
          if (this.pushWaiter !== null) {
            const w = this.pushWaiter;
            this.pushWaiter = null;
            w(frame);
          } else this.pushes.push(frame);
          return;
        }
        const w = this.waiting.shift();
        if (w) w(frame);
      },
      onError: (err) => socket.destroy(err),
    });
    socket.on('data', (c: Buffer) => decoder.push(c));
    socket.on('error', (e) => (this.failure = e));
  }

  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.removeListener('error', reject);
        resolve(new Conn(s));
      });
      s.once('error', reject);
    });
  }

  send(args: ReadonlyArray<string | Buffer>): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply to ${args.join(' ')}`)), 5000);
      this.waiting.push((b) => {
        clearTimeout(t);
        resolve(b);
      });
      this.socket.write(encodeCommand(args));
    });
  }

  /** A command answered only by pushes (SUBSCRIBE in RESP3). */
  sendOnly(args: ReadonlyArray<string | Buffer>): void {
    this.socket.write(encodeCommand(args));
  }

  nextPush(): Promise<Buffer> {
    const p = this.pushes.shift();
    if (p !== undefined) return Promise.resolve(p);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no push message')), 5000);
      this.pushWaiter = (b) => {
        clearTimeout(t);
        resolve(b);
      };
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

// --- typed trees ------------------------------------------------------------------

type Tree = string | number | null | Tree[] | { [k: string]: Tree };
const MASK = '<masked>';

/** A reply as a comparable tree: every node says its RESP type. */
function tree(v: RespValue): Tree {
  switch (v.type) {
    case 'simple':
      return `+${v.value}`;
    case 'error':
      return `-${v.value}`;
    case 'integer':
      return `:${String(v.value)}`;
    case 'bulk':
      return `$${v.value.toString('latin1')}`;
    case 'null':
      return `null:${v.kind}`;
    case 'boolean':
      return `#${v.value ? 't' : 'f'}`;
    case 'double':
      return `,${v.text}`;
    case 'bignum':
      return `(${v.value}`;
    case 'bulk-error':
      return `!${v.value.toString('latin1')}`;
    case 'verbatim':
      return `=${v.format}:${v.value.toString('latin1')}`;
    case 'array':
      return ['*', ...v.value.map(tree)];
    case 'set':
      // Unordered: two servers (different hash seeds) list the same set in different orders.
      return ['~', ...v.value.map((x) => JSON.stringify(tree(x))).sort().map((x) => JSON.parse(x) as Tree)];
    case 'push':
      return ['>', ...v.value.map(tree)];
    case 'map':
      return ['%', ...v.value.map(([k, x]) => [tree(k), tree(x)] as Tree)];
  }
}

/** Keeps the type letter of a leaf, drops its value. */
function maskLeaf(t: Tree): Tree {
  if (typeof t === 'string') return `${t.startsWith('=') ? t.slice(0, 5) : t[0]}${MASK}`;
  if (Array.isArray(t)) return [t[0] as Tree, MASK];
  return MASK;
}

/** Masks every leaf, keeping the structure (MEMORY STATS). */
function maskAll(t: Tree): Tree {
  if (Array.isArray(t)) {
    if (t[0] === '%') return ['%', ...t.slice(1).map((p) => [(p as Tree[])[0]!, maskAll((p as Tree[])[1]!)] as Tree)];
    return [t[0]!, ...t.slice(1).map(maskAll)];
  }
  return maskLeaf(t);
}

/** Masks the values of map entries (at any depth) whose key is in `keys`. */
function maskKeys(keys: string[]): (t: Tree) => Tree {
  const set = new Set(keys.map((k) => `$${k}`));
  const walk = (t: Tree): Tree => {
    if (!Array.isArray(t)) return t;
    if (t[0] === '%') {
      return ['%', ...t.slice(1).map((p) => {
        const [k, x] = p as [Tree, Tree];
        return [k, typeof k === 'string' && set.has(k) ? maskLeaf(x) : walk(x)] as Tree;
      })];
    }
    // RESP2-looking flat arrays of name/value (CLIENT ... not used) stay as they are.
    return [t[0]!, ...t.slice(1).map(walk)];
  };
  return walk;
}

/** Masks array elements at these positions (element 0 is the type letter, so index i is at i + 1). */
function maskAt(...idx: number[]): (t: Tree) => Tree {
  return (t) => (Array.isArray(t) ? t.map((x, i) => (idx.includes(i - 1) ? maskLeaf(x) : x)) : t);
}

/** Sorts the elements of an aggregate (orders that depend on the server's hash seed). */
function sorted(t: Tree): Tree {
  if (!Array.isArray(t)) return t;
  return [t[0]!, ...t.slice(1).map((x) => JSON.stringify(x)).sort().map((s) => JSON.parse(s) as Tree)];
}

/**
 * Sorts map entries and lists of aggregates at any depth: COMMAND INFO / DOCS
 * list subcommands in the server's hash order. Types are still compared.
 */
function sortDeep(t: Tree): Tree {
  if (!Array.isArray(t)) return t;
  if (t[0] === '%') return sorted(['%', ...t.slice(1).map((p) => [(p as Tree[])[0]!, sortDeep((p as Tree[])[1]!)] as Tree)]);
  const items = t.slice(1).map(sortDeep);
  return items.length > 0 && items.every(Array.isArray) ? sorted([t[0]!, ...items]) : [t[0]!, ...items];
}

/** Masks verbatim / bulk text that differs per server (INFO, doctors). */
const maskText = (t: Tree): Tree => maskLeaf(t);
/** INFO-like text: keep the type, the format and the section headers, drop the values. */
const infoShape = (t: Tree): Tree => {
  if (typeof t !== 'string') return t;
  const body = t.startsWith('=') ? t.slice(5) : t.slice(1);
  const heads = body.split('\r\n').filter((l) => l.startsWith('#')).join('|');
  return `${t.startsWith('=') ? t.slice(0, 5) : t[0]}${heads}`;
};

// --- the corpus ---------------------------------------------------------------------

type Step =
  | { args: string[]; norm?: (t: Tree) => Tree }
  /** Runs on a second connection to the same server (or Portway listener), e.g. PUBLISH. */
  | { other: string[] }
  /** Sent without a reply (RESP3 SUBSCRIBE); then `pushes` push messages are read. */
  | { only: string[]; pushes: number };

const LIB = "#!lua name=difflib\nredis.register_function{function_name='dfn', callback=function(keys, args) return {1, 'two', 3} end, flags={'no-writes'}}";

const CORPUS: Step[] = [
  { args: ['HELLO', '3'], norm: maskKeys(['id']) },
  { args: ['PING'] },
  { args: ['ECHO', 'hi'] },
  // strings
  { args: ['SET', 'str', 'v1'] },
  { args: ['GET', 'str'] },
  { args: ['GET', 'missing'] },
  { args: ['MGET', 'str', 'missing', 'str'] },
  { args: ['SET', 'str', 'v2', 'GET'] },
  { args: ['GETDEL', 'missing'] },
  { args: ['INCRBYFLOAT', 'fl', '1.5'] },
  { args: ['INCRBYFLOAT', 'fl', '2e3'] },
  { args: ['INCR', 'str'] },
  { args: ['SET', 'a1', 'ohmytext'] },
  { args: ['SET', 'a2', 'mynewtext'] },
  { args: ['LCS', 'a1', 'a2'] },
  { args: ['LCS', 'a1', 'a2', 'LEN'] },
  { args: ['LCS', 'a1', 'a2', 'IDX'] },
  { args: ['LCS', 'a1', 'a2', 'IDX', 'MINMATCHLEN', '2', 'WITHMATCHLEN'] },
  { args: ['BITFIELD', 'bf', 'SET', 'u8', '0', '255', 'GET', 'u8', '0'] },
  { args: ['BITFIELD', 'bf', 'OVERFLOW', 'FAIL', 'INCRBY', 'u8', '0', '10'] },
  { args: ['BITFIELD_RO', 'bf', 'GET', 'u4', '0'] },
  { args: ['OBJECT', 'ENCODING', 'str'] },
  { args: ['OBJECT', 'ENCODING', 'missing'] },
  { args: ['OBJECT', 'REFCOUNT', 'str'] },
  { args: ['OBJECT', 'FREQ', 'str'] },
  { args: ['TYPE', 'str'] },
  // hashes
  { args: ['HSET', 'h', 'f1', 'v1', 'f2', 'v2'] },
  { args: ['HGETALL', 'h'] },
  { args: ['HGETALL', 'missing'] },
  { args: ['HMGET', 'h', 'f1', 'nope'] },
  { args: ['HGET', 'h', 'nope'] },
  { args: ['HKEYS', 'h'] },
  { args: ['HINCRBYFLOAT', 'h', 'n', '0.25'] },
  { args: ['HSET', 'h1', 'only', 'val'] },
  { args: ['HRANDFIELD', 'h1'] },
  { args: ['HRANDFIELD', 'h1', '-2', 'WITHVALUES'] },
  { args: ['HRANDFIELD', 'h1', '1'] },
  { args: ['HRANDFIELD', 'missing', '1', 'WITHVALUES'] },
  { args: ['HSCAN', 'h', '0'] },
  { args: ['HGETALL', 'str'] },
  // lists
  { args: ['RPUSH', 'l', 'a', 'b', 'c', 'b'] },
  { args: ['LRANGE', 'l', '0', '-1'] },
  { args: ['LPOS', 'l', 'b'] },
  { args: ['LPOS', 'l', 'b', 'COUNT', '0'] },
  { args: ['LPOS', 'l', 'zz'] },
  { args: ['LPOS', 'l', 'zz', 'COUNT', '0'] },
  { args: ['LINDEX', 'l', '99'] },
  { args: ['LPOP', 'missing', '2'] },
  { args: ['LMPOP', '1', 'missing', 'LEFT'] },
  { args: ['LMPOP', '2', 'missing', 'l', 'RIGHT', 'COUNT', '2'] },
  { args: ['BLPOP', 'missing', '0.01'] },
  { args: ['BLMPOP', '0.01', '1', 'l', 'LEFT'] },
  { args: ['SORT', 'l', 'ALPHA', 'GET', 'nokey_*'] },
  // sets
  { args: ['SADD', 's', 'a', 'b', 'c'] },
  { args: ['SADD', 's2', 'b', 'c', 'd'] },
  { args: ['SMEMBERS', 's'] },
  { args: ['SMEMBERS', 'missing'] },
  { args: ['SINTER', 's', 's2'] },
  { args: ['SUNION', 's', 's2'] },
  { args: ['SDIFF', 's', 's2'] },
  { args: ['SINTERCARD', '2', 's', 's2'] },
  { args: ['SMISMEMBER', 's', 'a', 'z'] },
  { args: ['SISMEMBER', 's', 'a'] },
  { args: ['SADD', 's1', 'x'] },
  { args: ['SRANDMEMBER', 's1'] },
  { args: ['SRANDMEMBER', 's1', '2'] },
  { args: ['SRANDMEMBER', 's1', '-2'] },
  { args: ['SPOP', 's1', '1'] },
  { args: ['SPOP', 'missing', '2'] },
  { args: ['SPOP', 'missing'] },
  { args: ['SSCAN', 's', '0'], norm: (t) => (Array.isArray(t) ? [t[0]!, t[1]!, sorted(t[2]!)] : t) },
  // sorted sets
  { args: ['ZADD', 'z', '1', 'a', '2.5', 'b', '3', 'c'] },
  { args: ['ZADD', 'z2', '1', 'b', '5', 'd'] },
  { args: ['ZADD', 'zinf', '+inf', 'top', '-inf', 'bottom'] },
  { args: ['ZSCORE', 'z', 'b'] },
  { args: ['ZSCORE', 'z', 'nope'] },
  { args: ['ZSCORE', 'zinf', 'top'] },
  { args: ['ZMSCORE', 'z', 'a', 'nope', 'c'] },
  { args: ['ZINCRBY', 'z', '0.5', 'a'] },
  { args: ['ZADD', 'z', 'INCR', '1', 'a'] },
  { args: ['ZADD', 'z', 'XX', 'INCR', '1', 'nope'] },
  { args: ['ZADD', 'z', 'NX', 'INCR', '1', 'a'] },
  { args: ['ZRANGE', 'z', '0', '-1'] },
  { args: ['ZRANGE', 'z', '0', '-1', 'WITHSCORES'] },
  { args: ['ZRANGE', 'z', '(1', '+inf', 'BYSCORE', 'LIMIT', '0', '2', 'WITHSCORES'] },
  { args: ['ZRANGE', 'z', '0', '-1', 'REV', 'withscores'] },
  { args: ['ZRANGEBYSCORE', 'z', '-inf', '+inf', 'WITHSCORES'] },
  { args: ['ZREVRANGE', 'z', '0', '1', 'WITHSCORES'] },
  { args: ['ZREVRANGEBYSCORE', 'z', '+inf', '-inf', 'WITHSCORES', 'LIMIT', '0', '1'] },
  { args: ['ZRANGE', 'zinf', '0', '-1', 'WITHSCORES'] },
  { args: ['ZUNION', '2', 'z', 'z2', 'WITHSCORES'] },
  { args: ['ZINTER', '2', 'z', 'z2', 'WITHSCORES'] },
  { args: ['ZDIFF', '2', 'z', 'z2', 'WITHSCORES'] },
  { args: ['ZUNION', '2', 'z', 'z2'] },
  // Keys and members named like options.
  { args: ['ZADD', 'withscores', '4', 'withscores'] },
  { args: ['ZUNION', '2', 'withscores', 'z2'] },
  { args: ['ZRANGE', 'withscores', '0', '-1'] },
  { args: ['GEOADD', 'g', '13.5', '38.1', 'withcoord'] },
  { args: ['GEOSEARCH', 'g', 'FROMMEMBER', 'withcoord', 'BYRADIUS', '10', 'km', 'ASC'] },
  { args: ['GEORADIUSBYMEMBER', 'g', 'withcoord', '10', 'km', 'ASC'] },
  { args: ['ZREM', 'g', 'withcoord'] },
  { args: ['ZRANK', 'z', 'nope'] },
  { args: ['ZADD', 'z1', '7', 'solo'] },
  { args: ['ZRANDMEMBER', 'z1'] },
  { args: ['ZRANDMEMBER', 'z1', '-3', 'WITHSCORES'] },
  { args: ['ZRANDMEMBER', 'missing', '2', 'WITHSCORES'] },
  { args: ['ZSCAN', 'z', '0'] },
  { args: ['ZPOPMIN', 'z'] },
  { args: ['ZPOPMIN', 'z', '1'] },
  { args: ['ZPOPMAX', 'z', '5'] },
  { args: ['ZPOPMIN', 'missing'] },
  { args: ['ZPOPMAX', 'missing', '2'] },
  { args: ['ZMPOP', '1', 'z2', 'MIN'] },
  { args: ['ZMPOP', '1', 'missing', 'MAX', 'COUNT', '3'] },
  { args: ['BZPOPMIN', 'z2', '0.01'] },
  { args: ['BZPOPMAX', 'missing', '0.01'] },
  { args: ['ZADD', 'z3', '1', 'p', '2', 'q'] },
  { args: ['BZMPOP', '0.01', '1', 'z3', 'MAX', 'COUNT', '2'] },
  // geo
  { args: ['GEOADD', 'g', '13.361389', '38.115556', 'Palermo', '15.087269', '37.502669', 'Catania'] },
  { args: ['GEOPOS', 'g', 'Palermo', 'nope', 'Catania'] },
  { args: ['GEODIST', 'g', 'Palermo', 'Catania', 'km'] },
  { args: ['GEODIST', 'g', 'Palermo', 'nope'] },
  { args: ['GEOHASH', 'g', 'Palermo', 'nope'] },
  { args: ['GEOSEARCH', 'g', 'FROMLONLAT', '15', '37', 'BYRADIUS', '200', 'km', 'ASC', 'WITHCOORD', 'WITHDIST', 'WITHHASH'] },
  { args: ['GEOSEARCH', 'g', 'FROMMEMBER', 'Palermo', 'BYBOX', '400', '400', 'km', 'ASC', 'WITHCOORD'] },
  { args: ['GEOSEARCH', 'g', 'FROMLONLAT', '15', '37', 'BYRADIUS', '200', 'km', 'ASC', 'WITHDIST'] },
  { args: ['GEOSEARCH', 'g', 'FROMLONLAT', '15', '37', 'BYRADIUS', '200', 'km', 'ASC'] },
  { args: ['GEORADIUS', 'g', '15', '37', '200', 'km', 'WITHCOORD', 'ASC'] },
  { args: ['GEORADIUS_RO', 'g', '15', '37', '200', 'km', 'WITHDIST', 'WITHCOORD', 'ASC'] },
  { args: ['GEORADIUSBYMEMBER', 'g', 'Palermo', '200', 'km', 'WITHCOORD', 'ASC'] },
  { args: ['GEORADIUSBYMEMBER_RO', 'g', 'Palermo', '200', 'km', 'WITHHASH', 'ASC'] },
  // streams
  { args: ['XADD', 'st', '1-1', 'a', '1'] },
  { args: ['XADD', 'st', '1-2', 'b', '2', 'c', '3'] },
  { args: ['XADD', 'missing', 'NOMKSTREAM', '*', 'a', '1'] },
  { args: ['XRANGE', 'st', '-', '+'] },
  { args: ['XREVRANGE', 'st', '+', '-', 'COUNT', '1'] },
  { args: ['XLEN', 'st'] },
  { args: ['XREAD', 'STREAMS', 'st', '0'] },
  { args: ['XREAD', 'COUNT', '1', 'STREAMS', 'st', 'missing', '0', '0'] },
  { args: ['XREAD', 'STREAMS', 'st', '1-2'] },
  { args: ['XREAD', 'BLOCK', '10', 'STREAMS', 'st', '$'] },
  { args: ['XREAD', 'BLOCK', '10', 'STREAMS', 'st', '0'] },
  { args: ['XGROUP', 'CREATE', 'st', 'grp', '0'] },
  { args: ['XREADGROUP', 'GROUP', 'grp', 'alice', 'COUNT', '1', 'STREAMS', 'st', '>'] },
  { args: ['XREADGROUP', 'GROUP', 'grp', 'alice', 'STREAMS', 'st', '0'] },
  { args: ['XREADGROUP', 'GROUP', 'grp', 'bob', 'BLOCK', '10', 'STREAMS', 'st', '>'] },
  { args: ['XREADGROUP', 'GROUP', 'grp', 'bob', 'BLOCK', '10', 'STREAMS', 'st', '>'] },
  { args: ['XPENDING', 'st', 'grp'] },
  { args: ['XPENDING', 'st', 'grp', '-', '+', '10'], norm: (t) => (Array.isArray(t) ? [t[0]!, ...t.slice(1).map(maskAt(2))] : t) },
  { args: ['XCLAIM', 'st', 'grp', 'carol', '0', '1-1', 'JUSTID'] },
  { args: ['XAUTOCLAIM', 'st', 'grp', 'dave', '0', '0-0'] },
  { args: ['XDEL', 'st', '1-1'] },
  { args: ['XREADGROUP', 'GROUP', 'grp', 'dave', 'STREAMS', 'st', '0'] },
  { args: ['XAUTOCLAIM', 'st', 'grp', 'erin', '0', '0-0'] },
  { args: ['XINFO', 'STREAM', 'st'] },
  { args: ['XINFO', 'STREAM', 'st', 'FULL'], norm: maskKeys(['seen-time', 'pending']) },
  { args: ['XINFO', 'GROUPS', 'st'] },
  { args: ['XINFO', 'CONSUMERS', 'st', 'grp'], norm: maskKeys(['idle']) },
  { args: ['XINFO', 'STREAM', 'missing'] },
  { args: ['XADD', 'st2', '5-1', 'k', 'v'] },
  { args: ['XINFO', 'STREAM', 'st2', 'FULL'] },
  { args: ['XTRIM', 'st2', 'MAXLEN', '0'] },
  { args: ['XINFO', 'STREAM', 'st2'] },
  // keys and scans
  { args: ['EXISTS', 'str', 'h', 'missing'] },
  { args: ['TTL', 'str'] },
  { args: ['SCAN', '0', 'COUNT', '1000'], norm: (t) => (Array.isArray(t) ? [t[0]!, t[1]!, sorted(t[2]!)] : t) },
  { args: ['SCAN', '0', 'COUNT', '1000', 'TYPE', 'zset'], norm: (t) => (Array.isArray(t) ? [t[0]!, t[1]!, sorted(t[2]!)] : t) },
  { args: ['KEYS', 'z*'], norm: sorted },
  { args: ['DBSIZE'] },
  // transactions
  { args: ['MULTI'] },
  { args: ['HGETALL', 'h'] },
  { args: ['ZSCORE', 'zinf', 'top'] },
  { args: ['SMEMBERS', 's'] },
  { args: ['GET', 'missing'] },
  { args: ['ZRANGE', 'zinf', '0', '-1', 'WITHSCORES'] },
  { args: ['INCR', 'h'] },
  { args: ['CONFIG', 'GET', 'maxmemory'] },
  { args: ['EXEC'] },
  { args: ['WATCH', 'h'] },
  { other: ['HSET', 'h', 'f3', 'v3'] },
  { args: ['MULTI'] },
  { args: ['HGETALL', 'h'] },
  { args: ['EXEC'] },
  { args: ['MULTI'] },
  { args: ['SMEMBERS', 's'] },
  { args: ['DISCARD'] },
  { args: ['MULTI'] },
  { args: ['MULTI'] },
  { args: ['PING'] },
  { args: ['ZRANGE', 'zinf', '0', '-1', 'WITHSCORES'] },
  { args: ['ECHO', 'e'] },
  { args: ['HGETALL', 'h'] },
  { args: ['EXEC'] },
  { args: ['MULTI'] },
  { args: ['HGETALL', 'h'] },
  { args: ['NOSUCHCOMMAND'] },
  { args: ['EXEC'] },
  { args: ['HGETALL', 'h'] },
  { args: ['SMEMBERS', 's'] },
  // scripts and functions
  { args: ['EVAL', 'return {1, "two", false, true}', '0'] },
  { args: ['EVAL', 'return nil', '0'] },
  { args: ['EVAL', 'return false', '0'] },
  { args: ['EVAL', 'return true', '0'] },
  { args: ['EVAL', 'return 3.99', '0'] },
  { args: ['EVAL', "return redis.call('HGETALL', KEYS[1])", '1', 'h'] },
  { args: ['EVAL', "return redis.call('ZSCORE', KEYS[1], 'top')", '1', 'zinf'] },
  { args: ['EVAL', "return {err='my error'}", '0'] },
  { args: ['EVAL', "return {ok='fine'}", '0'] },
  { args: ['SCRIPT', 'LOAD', 'return 1'] },
  { args: ['SCRIPT', 'EXISTS', 'e0e1f9fabfc9d4800c877a703b823ac0578ff8db', '0000000000000000000000000000000000000000'] },
  { args: ['FUNCTION', 'LOAD', LIB] },
  { args: ['FUNCTION', 'LIST'] },
  { args: ['FUNCTION', 'LIST', 'WITHCODE', 'LIBRARYNAME', 'diff'] },
  { args: ['FUNCTION', 'STATS'] },
  { args: ['FCALL_RO', 'dfn', '0'] },
  // server introspection
  { args: ['CONFIG', 'GET', 'maxmemory*'], norm: sorted },
  { args: ['CONFIG', 'GET', 'appendonly'] },
  { args: ['CONFIG', 'GET', 'port'], norm: maskKeys(['port']) },
  { args: ['CONFIG', 'GET', 'no-such-option'] },
  { args: ['CONFIG', 'SET', 'maxmemory', '0'] },
  { args: ['COMMAND', 'COUNT'] },
  { args: ['COMMAND', 'INFO', 'GET', 'XREAD', 'nosuchcommand', 'CONFIG'], norm: sortDeep },
  { args: ['COMMAND', 'DOCS', 'ZADD', 'XREAD', 'CLIENT'], norm: sortDeep },
  { args: ['COMMAND', 'DOCS', 'nosuchcommand'] },
  { args: ['COMMAND', 'GETKEYSANDFLAGS', 'LMOVE', 'a', 'b', 'LEFT', 'RIGHT'] },
  { args: ['COMMAND', 'GETKEYS', 'MSET', 'a', '1', 'b', '2'] },
  { args: ['COMMAND', 'LIST', 'FILTERBY', 'PATTERN', 'xa*'], norm: sorted },
  { args: ['INFO', 'keyspace'] },
  { args: ['INFO', 'server'], norm: infoShape },
  { args: ['INFO'], norm: infoShape },
  { args: ['MEMORY', 'STATS'], norm: maskAll },
  { args: ['MEMORY', 'USAGE', 'str'] },
  { args: ['MEMORY', 'DOCTOR'], norm: maskText },
  { args: ['MEMORY', 'MALLOC-STATS'], norm: maskText },
  { args: ['LATENCY', 'DOCTOR'] },
  { args: ['LATENCY', 'LATEST'] },
  { args: ['LATENCY', 'HISTOGRAM', 'zscore', 'hgetall'], norm: maskKeys(['calls', 'histogram_usec']) },
  { args: ['ACL', 'WHOAMI'] },
  { args: ['ACL', 'GETUSER', 'default'] },
  { args: ['ACL', 'GETUSER', 'nobody'] },
  { args: ['ACL', 'SETUSER', 'eve', 'on', '>pw', '~k*', '+get', '(', '+set', '~x*', ')'] },
  { args: ['ACL', 'GETUSER', 'eve'] },
  { args: ['ACL', 'LOG'] },
  { args: ['ACL', 'DRYRUN', 'eve', 'SET', 'k', 'v'] },
  { args: ['LOLWUT', 'VERSION', '5', '1', '1', '1'], norm: maskText },
  { args: ['ROLE'] },
  { args: ['WAIT', '0', '0'] },
  { args: ['TIME'], norm: maskAll },
  { args: ['OBJECT', 'HELP'] },
  { args: ['XINFO', 'HELP'] },
  { args: ['PUBSUB', 'NUMSUB', 'chan'] },
  { args: ['PUBSUB', 'CHANNELS'] },
  { args: ['MODULE', 'LIST'] },
  { args: ['SLOWLOG', 'GET', '0'] },
  // errors
  { args: ['LPUSH', 'h', 'x'] },
  { args: ['ZADD', 'z', 'nan', 'x'] },
  { args: ['XADD', 'st', '0-0', 'a', 'b'] },
  { args: ['NOSUCHCOMMAND', 'x'] },
  { args: ['GET'] },
  // pub/sub last: pushes
  { only: ['SUBSCRIBE', 'chan', 'chan2'], pushes: 2 },
  { other: ['PUBLISH', 'chan', 'hello'] },
  { only: [], pushes: 1 },
  { only: ['PSUBSCRIBE', 'ch*'], pushes: 1 },
  { other: ['PUBLISH', 'chan2', 'two'] },
  { only: [], pushes: 2 },
  // RESP3: a subscribed client may run any command, PING answers +PONG (not a push).
  { args: ['PING'] },
  { args: ['PING', 'x'] },
  { args: ['GET', 'str'] },
  { args: ['HGETALL', 'h'] },
  { args: ['ZSCORE', 'zinf', 'top'] },
  { args: ['GET', 'missing'] },
  { only: ['UNSUBSCRIBE', 'chan'], pushes: 1 },
  { only: ['PUNSUBSCRIBE'], pushes: 1 },
  { only: ['UNSUBSCRIBE'], pushes: 1 },
  { args: ['GET', 'str'] },
];

interface Outcome {
  step: string;
  tree: Tree;
  /** The reply's wire bytes, when nothing is masked and no set (unordered) is in it: compared byte for byte. */
  bytes?: string;
}

/** Runs the corpus on `main` (after HELLO 3 unless proto 2) with `other` for side commands; one outcome per reply or push. */
async function runCorpus(main: Conn, other: Conn, steps: Step[]): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (const s of steps) {
    if ('other' in s) {
      await other.send(s.other);
      continue;
    }
    if ('only' in s) {
      if (s.only.length > 0) main.sendOnly(s.only);
      for (let i = 0; i < s.pushes; i++) out.push({ step: `${s.only.join(' ')} (push ${i + 1})`, tree: tree(parseReply(await main.nextPush())) });
      continue;
    }
    const reply = await main.send(s.args);
    const t = tree(parseReply(reply));
    const exact = s.norm === undefined && !reply.includes('~');
    out.push({ step: s.args.join(' ').slice(0, 120), tree: s.norm ? s.norm(t) : t, bytes: exact ? reply.toString('latin1') : undefined });
  }
  return out;
}

/** Every step whose trees differ, with both trees. */
function differences(direct: Outcome[], proxied: Outcome[]): string[] {
  const diffs: string[] = [];
  for (let i = 0; i < Math.max(direct.length, proxied.length); i++) {
    const d = direct[i];
    const p = proxied[i];
    if (d === undefined || p === undefined) {
      diffs.push(`#${i}: ${d?.step ?? p?.step}: missing on one side`);
      continue;
    }
    const a = JSON.stringify(d.tree);
    const b = JSON.stringify(p.tree);
    if (a === b) {
      if (d.bytes !== undefined && p.bytes !== undefined && d.bytes !== p.bytes) diffs.push(`#${i} ${d.step}: same tree, other bytes\n  redis:   ${JSON.stringify(d.bytes).slice(0, 300)}\n  portway: ${JSON.stringify(p.bytes).slice(0, 300)}`);
      continue;
    }
    // Show where they part: long replies (COMMAND DOCS) differ deep inside.
    let at = 0;
    while (a[at] === b[at]) at++;
    const from = Math.max(0, at - 200);
    diffs.push(`#${i} ${d.step} (from char ${from})\n  redis:   ${a.slice(from, at + 200)}\n  portway: ${b.slice(from, at + 200)}`);
  }
  return diffs;
}

describe('RESP3 through Portway (RESP2 upstream) matches redis-server 7 directly', () => {
  let direct: RedisServer;
  let behind: RedisServer;
  let pw: InProcess;
  let port: number;
  let memPort: number;
  let shardPort: number;
  let shards: RedisServer[];
  const conns: Conn[] = [];
  const open = async (p: number) => {
    const c = await Conn.open(p);
    conns.push(c);
    return c;
  };

  before(async () => {
    [direct, behind] = await Promise.all([startRedis(), startRedis()]);
    shards = await Promise.all([startRedis(), startRedis()]);
    pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: r }]
  - name: mem
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: m }]
  - name: sharded
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: sh }]
clusters:
  - { name: r, endpoints: ["${behind.address}"], connect_timeout: 1s }
  - { name: m, component: { type: memory } }
  - name: sh
    sharding: { hash: murmur, distribution: ketama }
    endpoints: [${shards.map((s) => `"${s.address}"`).join(', ')}]
`);
    shardPort = pw.port('sharded');
    port = pw.port('redis');
    memPort = pw.port('mem');
  });
  after(async () => {
    for (const c of conns) c.close();
    await pw.stop();
    await Promise.all([direct.close(), behind.close(), ...shards.map((s) => s.close())]);
  });

  test('the corpus gives the same typed reply trees', async () => {
    const d = await runCorpus(await open(direct.port), await open(direct.port), CORPUS);
    const p = await runCorpus(await open(port), await open(port), CORPUS);
    assert.equal(d.length, p.length);
    assert.deepEqual(differences(d, p), []);
    assert.ok(d.filter((o) => o.bytes !== undefined).length > 150, 'most replies compared byte for byte');
    // The corpus really exercises RESP3 types (a corpus that saw none would prove nothing).
    const seen = new Set(JSON.stringify(d.map((o) => o.tree)).match(/"[%~>]"|",[^"]|"=txt:|"null:null"/g));
    for (const kind of ['"%"', '"~"', '">"', '"=txt:', '"null:null"']) assert.ok(seen.has(kind), `corpus produced ${kind}`);
  });

  test('a RESP2 client through Portway still gets RESP2 bytes (no conversion)', async () => {
    const steps: Step[] = [
      { args: ['HSET', 'r2h', 'a', '1'] },
      { args: ['HGETALL', 'r2h'] },
      { args: ['ZADD', 'r2z', '1.5', 'm'] },
      { args: ['ZRANGE', 'r2z', '0', '-1', 'WITHSCORES'] },
      { args: ['ZSCORE', 'r2z', 'm'] },
      { args: ['XADD', 'r2s', '1-1', 'f', 'v'] },
      { args: ['XREAD', 'STREAMS', 'r2s', '0'] },
      { args: ['XREAD', 'STREAMS', 'r2s', '1-1'] },
      { args: ['MGET', 'nope', 'r2h'] },
      { args: ['INFO', 'keyspace'] },
      { args: ['CONFIG', 'GET', 'appendonly'] },
    ];
    const dc = await open(direct.port);
    const pc = await open(port);
    for (const s of steps) {
      if (!('args' in s)) continue;
      const a = await dc.send(s.args);
      const b = await pc.send(s.args);
      assert.equal(b.toString('latin1'), a.toString('latin1'), s.args.join(' '));
    }
  });

  test('conversion table alone: a direct RESP2 reply converted equals the direct RESP3 reply', async () => {
    assert.deepEqual(await tableCheck(direct.port, TABLE_ONLY), []);
  });

  test('XREAD BLOCK served when data arrives (the unblocked reply is a map too)', async () => {
    const run = async (p: number) => {
      const main = await open(p);
      const other = await open(p);
      await main.send(['HELLO', '3']);
      await main.send(['DEL', 'blk']);
      const pending = main.send(['XREAD', 'BLOCK', '5000', 'STREAMS', 'blk', '$']);
      // The XADD goes once the XREAD is blocked (CLIENT LIST would show it; a short wait for the server to take it is enough here).
      await new Promise((r) => setTimeout(r, 100));
      await other.send(['XADD', 'blk', '7-1', 'f', 'v']);
      const r = tree(parseReply(await pending));
      const z = main.send(['BZPOPMIN', 'bz', '5']);
      await new Promise((r) => setTimeout(r, 100));
      await other.send(['ZADD', 'bz', '2.5', 'm']);
      return [r, tree(parseReply(await z))];
    };
    assert.deepEqual(await run(port), await run(direct.port));
  });
  test('ioredis 6 (HELLO 3 by default) reads the same values through Portway as directly', async () => {
    const mk = (p: number) => new Redis({ port: p, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    const a = mk(direct.port);
    const b = mk(port);
    try {
      for (const r of [a, b]) {
        await r.del('io:s', 'io:h', 'io:z');
        await r.xadd('io:s', '1-1', 'f', 'v');
        await r.xadd('io:s', '1-2', 'g', 'w');
        await r.hset('io:h', { a: '1', b: '2' });
        await r.zadd('io:z', '1.5', 'x', '2', 'y');
      }
      const hello = await b.hello(3);
      assert.ok(hello !== null && typeof hello === 'object', 'HELLO 3 through Portway');
      const ops: [string, (r: Redis) => Promise<unknown>][] = [
        ['XREAD', (r) => r.xread('STREAMS', 'io:s', '0')],
        ['XREAD COUNT 1', (r) => r.xread('COUNT', 1, 'STREAMS', 'io:s', '0')],
        ['XREAD none', (r) => r.xread('STREAMS', 'io:s', '1-2')],
        ['HGETALL', (r) => r.hgetall('io:h')],
        ['ZRANGE WITHSCORES', (r) => r.zrange('io:z', '0', '-1', 'WITHSCORES')],
        ['ZSCORE', (r) => r.zscore('io:z', 'x')],
        ['CONFIG GET', (r) => (r.config as (...a: string[]) => Promise<unknown>)('GET', 'appendonly')],
        ['SMEMBERS', (r) => r.sadd('io:set', 'a').then(() => r.smembers('io:set'))],
        ['XRANGE', (r) => r.xrange('io:s', '-', '+')],
        ['MGET', (r) => r.mget('io:nope', 'io:nope2')],
      ];
      for (const [label, op] of ops) assert.deepEqual(await op(b), await op(a), label);
    } finally {
      a.disconnect();
      b.disconnect();
    }
  });

  test('ioredis 6 pub/sub over RESP3: messages arrive, and a subscribed client still runs commands', async () => {
    const run = async (p: number) => {
      const sub = new Redis({ port: p, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      const pub = new Redis({ port: p, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      try {
        await pub.set('io:sub:k', 'val');
        const got: string[] = [];
        const two = new Promise<void>((resolve) => {
          sub.on('message', (ch: string, m: string) => {
            got.push(`${ch}:${m}`);
            if (got.length === 2) resolve();
          });
        });
        const n = await sub.subscribe('io:ch1', 'io:ch2');
        await pub.publish('io:ch1', 'one');
        await pub.publish('io:ch2', 'two');
        await two;
        // RESP3 lifts RESP2's subscriber-mode restriction on the server side.
        const v = await sub.call('GET', 'io:sub:k');
        const pong = await sub.call('PING');
        await sub.unsubscribe();
        return { n, got, v, pong };
      } finally {
        sub.disconnect();
        pub.disconnect();
      }
    };
    assert.deepEqual(await run(port), await run(direct.port));
  });

  test('memory component: RESP3 and RESP2 replies match redis-server', async () => {
    const steps: Step[] = [
      { args: ['SET', 'm:s', 'v'] },
      { args: ['GET', 'm:missing'] },
      { args: ['MGET', 'm:s', 'm:missing'] },
      { args: ['INCRBYFLOAT', 'm:f', '1.5'] },
      { args: ['HSET', 'm:h', 'a', '1', 'b', '2'] },
      { args: ['HGETALL', 'm:h'] },
      { args: ['HGETALL', 'm:missing'] },
      { args: ['HMGET', 'm:h', 'a', 'zz'] },
      { args: ['HINCRBYFLOAT', 'm:h', 'c', '0.5'] },
      { args: ['HSET', 'm:h1', 'only', 'x'] },
      { args: ['HRANDFIELD', 'm:h1', '-2', 'WITHVALUES'] },
      { args: ['HRANDFIELD', 'm:missing', '2', 'WITHVALUES'] },
      { args: ['RPUSH', 'm:l', 'a', 'b', 'a'] },
      { args: ['LPOS', 'm:l', 'a', 'COUNT', '0'] },
      { args: ['LPOS', 'm:l', 'zz'] },
      { args: ['LPOP', 'm:missing', '2'] },
      { args: ['SADD', 'm:set', 'a', 'b'] },
      { args: ['SADD', 'm:set2', 'b'] },
      { args: ['SMEMBERS', 'm:set'], norm: sorted },
      { args: ['SMEMBERS', 'm:missing'] },
      { args: ['SINTER', 'm:set', 'm:set2'], norm: sorted },
      { args: ['SUNION', 'm:set2'], norm: sorted },
      { args: ['SDIFF', 'm:set', 'm:set2'], norm: sorted },
      { args: ['SMISMEMBER', 'm:set', 'a', 'z'] },
      { args: ['SPOP', 'm:set2', '1'] },
      { args: ['SPOP', 'm:missing', '2'] },
      { args: ['SADD', 'm:one', 'x'] },
      { args: ['SRANDMEMBER', 'm:one', '-2'] },
      { args: ['SINTERCARD', '1', 'm:set'] },
      { args: ['TTL', 'm:s'] },
      { args: ['EXPIRETIME', 'm:missing'] },
      { args: ['TYPE', 'm:h'] },
      { args: ['HGETALL', 'm:s'] },
    ];
    for (const proto of ['3', '2']) {
      const run = async (p: number) => {
        const c = await open(p);
        const hello = await c.send(['HELLO', proto]);
        assert.ok(hello[0] === (proto === '3' ? 0x25 : 0x2a));
        await c.send(['FLUSHALL']);
        return runCorpus(c, c, steps);
      };
      const d = await run(direct.port);
      const m = await run(memPort);
      assert.deepEqual(differences(d, m), [], `RESP${proto}`);
    }
  });

  test('sharded pool: split and merged replies (MGET, RANDOMKEY, INFO, KEYS) in RESP3 form', async () => {
    const steps: Step[] = [
      { args: ['HELLO', '3'], norm: maskKeys(['id']) },
      { args: ['FLUSHALL'] },
      { args: ['RANDOMKEY'] },
      { args: ['MSET', 'k1', 'a', 'k2', 'b', 'k3', 'c', 'k4', 'd'] },
      { args: ['MGET', 'k1', 'nope1', 'k2', 'k3', 'nope2', 'k4'] },
      { args: ['MGET', 'nope1', 'nope2', 'nope3'] },
      { args: ['EXISTS', 'k1', 'k2', 'nope'] },
      { args: ['KEYS', 'k*'], norm: sorted },
      { args: ['DBSIZE'] },
      { args: ['RANDOMKEY'], norm: maskLeaf },
      { args: ['INFO', 'keyspace'], norm: maskText },
      { args: ['INFO'], norm: maskText },
      { args: ['SCRIPT', 'EXISTS', '0000000000000000000000000000000000000000'] },
      // A sharded SCAN step returns one shard's keys at a time (redis-sharding.test.ts checks the iteration).
      { args: ['SCAN', '0', 'COUNT', '1000'], norm: (t) => (Array.isArray(t) ? [t[0]!, maskLeaf(t[1]!), maskLeaf(t[2]!)] : t) },
      { args: ['SADD', 'st', 'x', 'y'] },
      { args: ['SMEMBERS', 'st'] },
      { args: ['DEL', 'k1', 'k2', 'k3', 'nope'] },
      { args: ['FLUSHALL'] },
    ];
    const run = async (p: number) => {
      const c = await open(p);
      return runCorpus(c, c, steps);
    };
    const d = await run(direct.port);
    const p = await run(shardPort);
    assert.deepEqual(differences(d, p), []);
  });
});

/** Commands Portway answers itself or does not forward (CLIENT INFO / LIST), and a few more, checked on the table alone. */
const TABLE_ONLY: { args: string[]; norm?: (t: Tree) => Tree }[] = [
  { args: ['CLIENT', 'INFO'], norm: maskText },
  { args: ['CLIENT', 'LIST'], norm: maskText },
  { args: ['INFO', 'keyspace'] },
  { args: ['HGETALL', 'h'] },
  { args: ['COMMAND'], norm: (t) => (Array.isArray(t) ? [t[0]!, t.length] : t) },
  { args: ['COMMAND', 'INFO', 'XREADGROUP', 'SORT', 'MIGRATE', 'XINFO'], norm: sortDeep },
  { args: ['COMMAND', 'DOCS', 'SET', 'GEOSEARCH', 'XINFO'], norm: sortDeep },
  { args: ['LATENCY', 'DOCTOR'] },
  { args: ['FUNCTION', 'STATS'] },
];

/** Each command on a RESP2 and a RESP3 connection to one server: the RESP2 reply converted must equal the RESP3 one. */
async function tableCheck(p: number, cmds: { args: string[]; norm?: (t: Tree) => Tree }[]): Promise<string[]> {
  const r2 = await Conn.open(p);
  const r3 = await Conn.open(p);
  try {
    await r3.send(['HELLO', '3']);
    const w = new RespWriter(4096);
    const diffs: string[] = [];
    for (const c of cmds) {
      const a = await r2.send(c.args);
      const b = await r3.send(c.args);
      const converted = resp3Reply(resp3Conversion(RespCommand.from(c.args), new Resp3Transaction()), a, 0, a.length, a[0]!, w);
      const norm = c.norm ?? ((t: Tree) => t);
      const x = JSON.stringify(norm(tree(parseReply(converted))));
      const y = JSON.stringify(norm(tree(parseReply(b))));
      if (x !== y) diffs.push(`${c.args.join(' ')}\n  converted: ${x.slice(0, 400)}\n  redis:     ${y.slice(0, 400)}`);
    }
    return diffs;
  } finally {
    r2.close();
    r3.close();
  }
}

describe('RESP3 with a Redis Cluster (cluster-only replies; MGET over masters through Portway)', () => {
  let rc: RedisClusterHandle;
  let single: RedisServer;
  let pw: InProcess;
  before(async () => {
    [rc, single] = await Promise.all([startRedisCluster(), startRedis()]);
    pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: rc }]
    options:
      redis_cluster: [{ cluster: rc }]
clusters:
  - { name: rc, endpoints: ["${rc.nodes[0]!.address}"], connect_timeout: 1s }
`);
  });
  after(async () => {
    await pw.stop();
    await Promise.all([rc.stop(), single.close()]);
  });

  test('CLUSTER SLOTS / SHARDS / LINKS / INFO / NODES: table alone against a node', async () => {
    const diffs = await tableCheck(rc.nodes[0]!.port, [
      { args: ['CLUSTER', 'SLOTS'], norm: sortDeep },
      { args: ['CLUSTER', 'SHARDS'], norm: (t) => sortDeep(maskKeys(['replication-offset', 'health'])(t)) },
      { args: ['CLUSTER', 'LINKS'], norm: maskAll },
      { args: ['CLUSTER', 'INFO'], norm: maskText },
      { args: ['CLUSTER', 'NODES'], norm: maskText },
    ]);
    assert.deepEqual(diffs, []);
  });

  test('split and pinned replies through Portway match a single redis-server', async () => {
    const steps: Step[] = [
      { args: ['HELLO', '3'], norm: maskKeys(['id', 'mode']) },
      { args: ['MSET', '{a}1', 'x', '{b}1', 'y', '{c}1', 'z'] },
      { args: ['MGET', '{a}1', '{a}nope', '{b}1', '{c}nope', '{c}1'] },
      { args: ['HSET', '{a}h', 'f', 'v'] },
      { args: ['HGETALL', '{a}h'] },
      { args: ['ZADD', '{b}z', '1.5', 'm'] },
      { args: ['ZRANGE', '{b}z', '0', '-1', 'WITHSCORES'] },
      { args: ['XADD', '{c}s', '1-1', 'f', 'v'] },
      { args: ['XREAD', 'STREAMS', '{c}s', '0'] },
      { args: ['XREAD', 'BLOCK', '10', 'STREAMS', '{c}s', '$'] },
      { args: ['MULTI'] },
      { args: ['HGETALL', '{a}h'] },
      { args: ['GET', '{a}nope'] },
      { args: ['EXEC'] },
      { args: ['DEL', '{a}1', '{b}1', '{c}1', '{a}h', '{b}z', '{c}s'] },
    ];
    const run = async (p: number) => {
      const c = await Conn.open(p);
      try {
        return await runCorpus(c, c, steps);
      } finally {
        c.close();
      }
    };
    const d = await run(single.port);
    const p = await run(pw.port('redis'));
    assert.deepEqual(differences(d, p), []);
  });
});

describe('resp3-convert without servers: EXEC bookkeeping and odd replies', () => {
  const w = new RespWriter(1024);
  const reply = (args: string[], tx: Resp3Transaction, wire: string): string => {
    const conv = resp3Conversion(RespCommand.from(args), tx);
    const b = Buffer.from(wire, 'latin1');
    return resp3Reply(conv, b, 0, b.length, b[0]!, w).toString('latin1');
  };

  test('EXEC converts each element as the command queued at its place; replies not +QUEUED take no place', () => {
    const tx = new Resp3Transaction();
    assert.equal(reply(['MULTI'], tx, '+OK\r\n'), '+OK\r\n');
    assert.equal(reply(['HGETALL', 'h'], tx, '+QUEUED\r\n'), '+QUEUED\r\n');
    // Answered by Portway itself inside the transaction (not queued upstream).
    assert.equal(reply(['CLIENT', 'SETNAME', 'n'], tx, '+OK\r\n'), '+OK\r\n');
    assert.equal(reply(['NOSUCH'], tx, "-ERR unknown command 'NOSUCH'\r\n"), "-ERR unknown command 'NOSUCH'\r\n");
    assert.equal(reply(['ZSCORE', 'z', 'm'], tx, '+QUEUED\r\n'), '+QUEUED\r\n');
    assert.equal(reply(['GET', 'k'], tx, '+QUEUED\r\n'), '+QUEUED\r\n');
    assert.equal(
      reply(['EXEC'], tx, '*3\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n$3\r\n1.5\r\n$-1\r\n'),
      '*3\r\n%1\r\n$1\r\na\r\n$1\r\n1\r\n,1.5\r\n_\r\n',
    );
    // The transaction is over: HGETALL converts on its own again.
    assert.equal(reply(['HGETALL', 'h'], tx, '*2\r\n$1\r\na\r\n$1\r\n1\r\n'), '%1\r\n$1\r\na\r\n$1\r\n1\r\n');
  });

  test('DISCARD and RESET end the bookkeeping; EXEC without MULTI converts nulls only', () => {
    const tx = new Resp3Transaction();
    reply(['MULTI'], tx, '+OK\r\n');
    reply(['HGETALL', 'h'], tx, '+QUEUED\r\n');
    reply(['DISCARD'], tx, '+OK\r\n');
    assert.equal(tx.queued, null);
    reply(['MULTI'], tx, '+OK\r\n');
    reply(['RESET'], tx, '+RESET\r\n');
    assert.equal(tx.queued, null);
    assert.equal(reply(['EXEC'], tx, '-ERR EXEC without MULTI\r\n'), '-ERR EXEC without MULTI\r\n');
  });

  test('a reply of an unexpected shape passes unchanged; a RESP3 reply is not converted twice', () => {
    const tx = new Resp3Transaction();
    // Odd element count cannot be a map.
    assert.equal(reply(['HGETALL', 'h'], tx, '*1\r\n$1\r\na\r\n'), '*1\r\n$1\r\na\r\n');
    assert.equal(reply(['HGETALL', 'h'], tx, '*3\r\n$1\r\na\r\n$-1\r\n$1\r\nb\r\n'), '*3\r\n$1\r\na\r\n$-1\r\n$1\r\nb\r\n');
    assert.equal(reply(['ZSCORE', 'z', 'm'], tx, '$3\r\nabc\r\n'), '$3\r\nabc\r\n');
    assert.equal(reply(['HGETALL', 'h'], tx, '%1\r\n$1\r\na\r\n$1\r\n1\r\n'), '%1\r\n$1\r\na\r\n$1\r\n1\r\n');
    assert.equal(reply(['ZSCORE', 'z', 'm'], tx, ',1.5\r\n'), ',1.5\r\n');
    // Nested nulls in a command with no table entry.
    assert.equal(reply(['MGET', 'a', 'b'], tx, '*2\r\n$-1\r\n$1\r\nx\r\n'), '*2\r\n_\r\n$1\r\nx\r\n');
    assert.equal(reply(['GET', 'a'], tx, '$-1\r\n'), '_\r\n');
  });
});
