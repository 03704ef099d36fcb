/**
 * The memory component, differentially: every sequence runs against the
 * component and against a real redis-server 7.0, in RESP2 and after
 * HELLO 3, and the replies are compared byte for byte. Unordered replies
 * (SMEMBERS, KEYS, HGETALL ...) are compared as sorted collections; random
 * ones (SRANDMEMBER, RANDOMKEY ...) by shape and membership, or made
 * deterministic (one-member sets, counts past the size). Timing is only
 * ever used to let keys expire.
 *
 * Then what has no redis counterpart: the unknown-command error, max_keys,
 * the sweep, health, config validation, and SCAN's guarantee under
 * concurrent writes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RespCommand } from '../../src/protocols/redis/request-decoder';
import { RespWriter } from '../../src/protocols/redis/resp-writer';
import { parseReply, type RespValue } from '../../src/protocols/redis/resp-value';
import { MemoryComponent, memoryCommandNames } from '../../src/components/memory';
import { builtins } from '../../src/builtins';
import { loadConfigText } from '../../src/config/load';
import { ConfigError, type ConfigIssue } from '../../src/config/validate';
import { RawRedisClient, startRedisServer, type RedisServerProcess } from '../helpers/redis-server';
import { sleep } from '../helpers/net';
import { mulberry32 as prng } from '../helpers/random';

type Arg = string | Buffer | number;
type Proto = 2 | 3;

let server: RedisServerProcess;
const clients = new Map<Proto, RawRedisClient>();
/** The component under test; the sweep is off so that differential runs see only lazy expiry, like redis between its cycles. */
let comp: MemoryComponent;
const writer = new RespWriter();

const show = (b: Buffer): string => JSON.stringify(b.toString('latin1'));
const norm = (args: Arg[]): Array<string | Buffer> => args.map((a) => (typeof a === 'number' ? String(a) : a));
const label = (args: Arg[]): string =>
  norm(args)
    .map((a) => (typeof a === 'string' ? a : `<${a.length} bytes>`))
    .join(' ')
    .slice(0, 120);

function execute(c: MemoryComponent, args: Arg[], resp: Proto = 2, db = 0): Buffer {
  c.execute(RespCommand.from(norm(args)), writer, { resp, db });
  return Buffer.from(writer.take());
}

/** A canonical text of a value with every aggregate's elements sorted (map pairs as units). */
function canonical(v: RespValue, depth = 0): string {
  const enc = (x: RespValue): string => canonical(x, depth + 1);
  switch (v.type) {
    case 'array':
    case 'set':
    case 'push':
      return `${v.type}[${v.value.map(enc).sort().join(',')}]`;
    case 'map':
      return `map{${v.value.map(([k, x]) => `${enc(k)}=>${enc(x)}`).sort().join(',')}}`;
    case 'bulk':
    case 'bulk-error':
    case 'verbatim':
      return `${v.type}:${v.value.toString('latin1')}`;
    case 'null':
      return `null:${v.kind}`;
    case 'double':
      return `double:${v.text}`;
    default:
      return `${v.type}:${String(v.value)}`;
  }
}

/** A SCAN-family reply: the next cursor and the elements as latin1 strings. */
function scanReply(b: Buffer): { cursor: string; items: string[] } {
  const v = parseReply(b);
  assert.equal(v.type, 'array', show(b));
  const [c, items] = v.value;
  assert.ok(c.type === 'bulk' && items.type === 'array', show(b));
  return { cursor: c.value.toString(), items: items.value.map((x) => (x as { value: Buffer }).value.toString('latin1')) };
}

/**
 * Runs sequences on both sides over one protocol; the component and the
 * server are emptied first. TTL rounds to the nearest second, so it is
 * compared exactly only for relative expiries read soon after they are set;
 * absolute ones (EXAT, EXPIREAT) are checked with EXPIRETIME, which is
 * exact, and TTLs read after a sleep with a tolerance.
 */
class Differ {
  db = 0;
  constructor(
    readonly resp: Proto,
    readonly client: RawRedisClient,
  ) {}

  async reset(): Promise<void> {
    await this.client.send(['SELECT', '0']);
    await this.client.send(['FLUSHALL']);
    execute(comp, ['FLUSHALL']);
    this.db = 0;
  }

  async select(db: number): Promise<void> {
    assert.equal((await this.client.send(['SELECT', String(db)])).toString(), '+OK\r\n');
    this.db = db;
  }

  mine(args: Arg[]): Buffer {
    return execute(comp, args, this.resp, this.db);
  }

  async both(args: Arg[]): Promise<{ real: Buffer; mine: Buffer }> {
    const real = await this.client.send(norm(args));
    return { real, mine: this.mine(args) };
  }

  /** Byte-identical replies. */
  async same(...args: Arg[]): Promise<Buffer> {
    const { real, mine } = await this.both(args);
    assert.equal(show(mine), show(real), `${label(args)} (RESP${this.resp})`);
    return mine;
  }

  /** Several commands, each byte-identical. */
  async all(cmds: Arg[][]): Promise<void> {
    for (const c of cmds) await this.same(...c);
  }

  /** Equal once the elements of each aggregate are sorted. */
  async unordered(...args: Arg[]): Promise<RespValue> {
    const { real, mine } = await this.both(args);
    const r = parseReply(real);
    const m = parseReply(mine);
    assert.equal(canonical(m), canonical(r), `${label(args)} (RESP${this.resp}): ${show(mine)} vs ${show(real)}`);
    return m;
  }

  /** Integer replies within `tolerance` (TTLs read a moment apart). */
  async approx(tolerance: number, ...args: Arg[]): Promise<void> {
    const { real, mine } = await this.both(args);
    const r = parseReply(real);
    const m = parseReply(mine);
    assert.equal(m.type, 'integer', `${label(args)}: ${show(mine)}`);
    assert.equal(r.type, 'integer', `${label(args)}: ${show(real)}`);
    const d = Math.abs(Number(m.value) - Number(r.value));
    assert.ok(d <= tolerance, `${label(args)} (RESP${this.resp}): ${show(mine)} vs ${show(real)}`);
  }

  /** Same reply type and aggregate length; returns the component's value (random replies). */
  async shape(...args: Arg[]): Promise<RespValue> {
    const { real, mine } = await this.both(args);
    const r = parseReply(real);
    const m = parseReply(mine);
    assert.equal(m.type, r.type, `${label(args)} (RESP${this.resp}): ${show(mine)} vs ${show(real)}`);
    if ('value' in m && Array.isArray(m.value) && 'value' in r && Array.isArray(r.value)) {
      assert.equal(m.value.length, r.value.length, `${label(args)} (RESP${this.resp}): ${show(mine)} vs ${show(real)}`);
    }
    return m;
  }

  /** Walks SCAN-like cursors to the end on both sides; the deduplicated element lists must match. */
  async scanAll(build: (cursor: string) => Arg[], pairs = false): Promise<string[]> {
    const walk = async (send: (a: Arg[]) => Promise<Buffer>): Promise<string[]> => {
      const seen = new Set<string>();
      let cursor = '0';
      for (let steps = 0; ; steps++) {
        assert.ok(steps < 100_000, 'scan does not end');
        const r = scanReply(await send(build(cursor)));
        const list = r.items;
        if (pairs) for (let i = 0; i < list.length; i += 2) seen.add(`${list[i]}=${list[i + 1]}`);
        else for (const x of list) seen.add(x);
        cursor = r.cursor;
        if (cursor === '0') break;
      }
      return [...seen].sort();
    };
    const real = await walk((a) => this.client.send(norm(a)));
    const mine = await walk(async (a) => this.mine(a));
    assert.deepEqual(mine, real, `full iteration of ${label(build('0'))}`);
    return mine;
  }
}

/** One test per protocol running `script` from an empty store on both sides. */
function differential(name: string, script: (d: Differ) => Promise<void>): void {
  for (const resp of [2, 3] as const) {
    test(`${name} (RESP${resp})`, async () => {
      const d = new Differ(resp, clients.get(resp)!);
      await d.reset();
      await script(d);
    });
  }
}

before(async () => {
  server = await startRedisServer();
  clients.set(2, await RawRedisClient.connect(server.port));
  const c3 = await RawRedisClient.connect(server.port);
  const hello = await c3.send(['HELLO', '3']);
  assert.equal(hello[0], 0x25, 'HELLO 3 answers a map');
  clients.set(3, c3);
  comp = new MemoryComponent({ sweepIntervalMs: 0 });
});

after(async () => {
  for (const c of clients.values()) c.close();
  comp?.close();
  await server?.stop();
});

const WRONG = (d: Differ, cmds: Arg[][]) => d.all(cmds);

describe('strings, differential', () => {
  differential('SET options, GET, SETNX, SETEX, PSETEX, GETSET, GETDEL', async (d) => {
    const exat = Math.floor(Date.now() / 1000) + 100;
    const pxat = Date.now() + 100_000;
    await d.all([
      ['SET', 'k', 'v'],
      ['GET', 'k'],
      ['GET', 'missing'],
      ['SET', 'k', 'v2', 'XX'],
      ['GET', 'k'],
      ['SET', 'k2', 'v', 'NX'],
      ['SET', 'k2', 'x', 'nx'],
      ['GET', 'k2'],
      ['SET', 'k3', 'v', 'XX'],
      ['GET', 'k3'],
      ['SET', 'k', 'v3', 'GET'],
      ['SET', 'nk', 'v', 'GET'],
      ['SET', 'k', 'v4', 'NX', 'GET'],
      ['SET', 'k5', 'v', 'XX', 'GET'],
      ['SET', 'k', 'v5', 'XX', 'GET'],
      ['GET', 'k'],
      ['SET', 'k', 'v', 'EX', 100],
      ['TTL', 'k'],
      ['SET', 'k', 'w', 'KEEPTTL'],
      ['TTL', 'k'],
      ['GET', 'k'],
      ['SET', 'k', 'w'],
      ['TTL', 'k'],
      ['SET', 'k', 'v', 'EXAT', exat],
      ['EXPIRETIME', 'k'],
      ['SET', 'k', 'v', 'PXAT', pxat],
      ['PEXPIRETIME', 'k'],
      ['SET', 'k', 'v', 'ex', 10, 'ex', 200],
      ['TTL', 'k'],
      ['SET', 'k', 'v', 'nx', 'nx'],
      ['SET', 'k', 'v', 'get', 'get'],
      ['SET', 'k', 'v', 'EXAT', 1],
      ['DBSIZE'],
      ['GET', 'k'],
      ['EXISTS', 'k'],
      // Errors, in redis' order of checks.
      ['SET', 'k', 'v', 'EX', 0],
      ['SET', 'k', 'v', 'EX', -1],
      ['SET', 'k', 'v', 'PX', 0],
      ['SET', 'k', 'v', 'EX', 'abc'],
      ['SET', 'k', 'v', 'EX', '1.5'],
      ['SET', 'k', 'v', 'EX', '9223372036854775807'],
      ['SET', 'k', 'v', 'PX', '9223372036854775807'],
      ['SET', 'k', 'v', 'EXAT', '9223372036854775807'],
      ['SET', 'k', 'v', 'EX', '99999999999999999999'],
      ['SET', 'k', 'v', 'NX', 'XX'],
      ['SET', 'k', 'v', 'XX', 'NX'],
      ['SET', 'k', 'v', 'EX', 10, 'PX', 10],
      ['SET', 'k', 'v', 'KEEPTTL', 'EX', 10],
      ['SET', 'k', 'v', 'EX', 10, 'KEEPTTL'],
      ['SET', 'k', 'v', 'PERSIST'],
      ['SET', 'k', 'v', 'FOO'],
      ['SET', 'k', 'v', 'EX'],
      ['SET', 'k', 'v', 'EX', 'abc', 'FOO'],
      ['SET', 'k'],
      ['SET'],
      ['SETNX', 'sn', 'a'],
      ['SETNX', 'sn', 'b'],
      ['GET', 'sn'],
      ['SETNX', 'sn'],
      ['SETEX', 'se', 100, 'v'],
      ['TTL', 'se'],
      ['GET', 'se'],
      ['SETEX', 'se', 0, 'v'],
      ['SETEX', 'se', -5, 'v'],
      ['SETEX', 'se', 'abc', 'v'],
      ['SETEX', 'se', 10],
      ['PSETEX', 'pe', 100000, 'v'],
      ['TTL', 'pe'],
      ['PSETEX', 'pe', 0, 'v'],
      ['PSETEX', 'pe', 'x', 'v'],
      ['GETSET', 'k', 'new'],
      ['GETSET', 'gs', 'first'],
      ['GET', 'gs'],
      ['SETEX', 'gs', 100, 'x'],
      ['GETSET', 'gs', 'y'],
      ['TTL', 'gs'],
      ['GETDEL', 'gs'],
      ['GETDEL', 'gs'],
      ['EXISTS', 'gs'],
    ]);
    await d.same('RPUSH', 'list', 'a');
    await WRONG(d, [
      ['GET', 'list'],
      ['SET', 'list', 'v', 'GET'],
      ['LLEN', 'list'],
      ['GETSET', 'list', 'v'],
      ['GETDEL', 'list'],
      ['SET', 'list', 'v'],
      ['GET', 'list'],
    ]);
    await d.approx(50, 'PTTL', 'pe');
  });

  differential('GETEX, MGET, MSET, MSETNX', async (d) => {
    await d.all([
      ['SET', 'k', 'v'],
      ['GETEX', 'k'],
      ['GETEX', 'k', 'EX', 100],
      ['TTL', 'k'],
      ['GETEX', 'k', 'PERSIST'],
      ['TTL', 'k'],
      ['GETEX', 'k', 'PX', 100000],
      ['TTL', 'k'],
      ['GETEX', 'k', 'EXAT', Math.floor(Date.now() / 1000) + 500],
      ['EXPIRETIME', 'k'],
      ['GETEX', 'k', 'EXAT', 1],
      ['GET', 'k'],
      ['GETEX', 'missing'],
      ['GETEX', 'missing', 'EX', 'abc'],
      ['SET', 'k', 'v'],
      ['GETEX', 'k', 'EX', 'abc'],
      ['GETEX', 'k', 'EX', 0],
      ['GETEX', 'k', 'PERSIST', 'EX', 10],
      ['GETEX', 'k', 'EX', 10, 'PERSIST'],
      ['GETEX', 'k', 'KEEPTTL'],
      ['GETEX', 'k', 'NX'],
      ['GETEX', 'k', 'FOO'],
      ['GETEX', 'k', 'EX'],
      ['MSET', 'a', '1', 'b', '2', 'c', '3'],
      ['MGET', 'a', 'b', 'nope', 'c'],
      ['MSET', 'a', 'x', 'a', 'y'],
      ['GET', 'a'],
      ['MSET', 'a'],
      ['MSET', 'a', '1', 'b'],
      ['MSET'],
      ['MSETNX', 'd', '4', 'e', '5'],
      ['MSETNX', 'e', '6', 'f', '7'],
      ['MGET', 'd', 'e', 'f'],
      ['MSETNX', 'g'],
      ['MSETNX', 'g', '1', 'h'],
      ['SETEX', 'a', 100, 'ttl'],
      ['MSET', 'a', 'plain'],
      ['TTL', 'a'],
      ['SADD', 'set', 'm'],
      ['MGET', 'a', 'set', 'b'],
      ['GETEX', 'set'],
      ['MSETNX', 'set', 'x', 'zz', 'y'],
      ['MGET'],
    ]);
  });

  differential('INCR family: values, overflow, grammar', async (d) => {
    await d.all([
      ['INCR', 'n'],
      ['INCR', 'n'],
      ['INCRBY', 'n', 10],
      ['INCRBY', 'n', -5],
      ['DECR', 'n'],
      ['DECRBY', 'n', 3],
      ['DECRBY', 'n', -3],
      ['GET', 'n'],
      ['INCRBY', 'n', 'abc'],
      ['INCRBY', 'n', '1.5'],
      ['INCRBY', 'n', '+1'],
      ['INCRBY', 'n', ' 1'],
      ['INCRBY', 'n', '01'],
      ['INCRBY', 'n', ''],
      ['SET', 'n', '9223372036854775806'],
      ['INCR', 'n'],
      ['INCR', 'n'],
      ['GET', 'n'],
      ['SET', 'n', '-9223372036854775807'],
      ['DECR', 'n'],
      ['DECR', 'n'],
      ['DECRBY', 'n', '-9223372036854775808'],
      ['INCRBY', 'n', '9223372036854775807'],
      ['INCRBY', 'n', '9223372036854775807'],
      ['INCRBY', 'n', '9223372036854775808'],
      ['DECRBY', 'm', '9223372036854775807'],
      ['DECRBY', 'm', '1'],
      ['DECRBY', 'm', '1'],
      ['INCRBY', 'big', '9007199254740993'],
      ['INCRBY', 'big', '9007199254740993'],
      ['GET', 'big'],
      ['INCRBY', 'big', '-18014398509481986'],
      ['SET', 'n', 'abc'],
      ['INCR', 'n'],
      ['SET', 'n', ' 1'],
      ['INCR', 'n'],
      ['SET', 'n', '01'],
      ['INCR', 'n'],
      ['SET', 'n', '-0'],
      ['INCR', 'n'],
      ['SET', 'n', '0'],
      ['DECR', 'n'],
      ['SET', 'n', '12345678901234567890'],
      ['INCR', 'n'],
      ['SET', 'n', '99'],
      ['INCR', 'n'],
      ['INCR', 'n'],
      ['SET', 'n', '-100'],
      ['INCR', 'n'],
      ['GET', 'n'],
      ['SETEX', 'n', 100, '5'],
      ['INCR', 'n'],
      ['TTL', 'n'],
      ['RPUSH', 'l', 'x'],
      ['INCR', 'l'],
      ['INCRBY', 'l', 'x'],
      ['DECRBY', 'l', 1],
      ['INCR'],
      ['INCR', 'a', 'b'],
      ['INCRBY', 'a'],
    ]);
  });

  differential('INCRBYFLOAT: extended precision and formatting', async (d) => {
    await d.all([
      ['SET', 'f', '10.5'],
      ['INCRBYFLOAT', 'f', '0.1'],
      ['INCRBYFLOAT', 'f', '0.1'],
      ['INCRBYFLOAT', 'f', '0.1'],
      ['INCRBYFLOAT', 'f', '-5'],
      ['INCRBYFLOAT', 'f', '5.0e3'],
      ['INCRBYFLOAT', 'f', '1E-3'],
      ['INCRBYFLOAT', 'a', '0.1'],
      ['INCRBYFLOAT', 'a', '0.2'],
      ['INCRBYFLOAT', 'a', '0.3'],
      ['INCRBYFLOAT', 'b', '1e300'],
      ['INCRBYFLOAT', 'c', '-0.000000000000000001'],
      ['INCRBYFLOAT', 'c2', '1e-4940'],
      ['INCRBYFLOAT', 'c3', '0.00000000000000001'],
      ['INCRBYFLOAT', 'c3', '0.000000000000000005'],
      ['INCRBYFLOAT', 'e', '0x10'],
      ['INCRBYFLOAT', 'e', '0x1.8p1'],
      ['INCRBYFLOAT', 'e', '.5'],
      ['INCRBYFLOAT', 'e', '5.'],
      ['INCRBYFLOAT', 'e', '+7'],
      ['INCRBYFLOAT', 'e', '-1.25e+2'],
      ['INCRBYFLOAT', 'g', '1.23456789012345678901234567890'],
      ['INCRBYFLOAT', 'g', '98765432109876543210'],
      ['INCRBYFLOAT', 'h', '3'],
      ['INCRBYFLOAT', 'h', '-3'],
      ['GET', 'h'],
      ['INCRBYFLOAT', 'x', 'abc'],
      ['INCRBYFLOAT', 'x', ''],
      ['INCRBYFLOAT', 'x', ' 1'],
      ['INCRBYFLOAT', 'x', '1 '],
      ['INCRBYFLOAT', 'x', '1.5e'],
      ['INCRBYFLOAT', 'x', 'e5'],
      ['INCRBYFLOAT', 'x', '.'],
      ['INCRBYFLOAT', 'x', '0x'],
      ['INCRBYFLOAT', 'x', 'nan'],
      ['INCRBYFLOAT', 'x', 'inf'],
      ['INCRBYFLOAT', 'x', '-Infinity'],
      ['INCRBYFLOAT', 'x', '1e5000'],
      ['INCRBYFLOAT', 'x', '1e-5000'],
      ['INCRBYFLOAT', 'x', Buffer.from('2\x00junk', 'latin1')],
      ['EXISTS', 'x'],
      ['SET', 'bad', 'abc'],
      ['INCRBYFLOAT', 'bad', '1'],
      ['SET', 'inf', 'inf'],
      ['INCRBYFLOAT', 'inf', '1'],
      ['SET', 'huge', '1e4900'],
      ['INCRBYFLOAT', 'huge', '1e4900'],
      ['INCRBYFLOAT', 'huge', '-1e4900'],
      ['SETEX', 'ttl', 100, '1'],
      ['INCRBYFLOAT', 'ttl', '1.5'],
      ['TTL', 'ttl'],
      ['RPUSH', 'l', 'x'],
      ['INCRBYFLOAT', 'l', '1'],
      ['INCRBYFLOAT', 'l', 'abc'],
      ['INCRBYFLOAT', 'l'],
    ]);
    // Random decimals accumulated: any rounding difference from x87 long double shows.
    const rnd = prng(7);
    for (let i = 0; i < 60; i++) {
      const mag = Math.floor(rnd() * 12) - 6;
      const digits = 1 + Math.floor(rnd() * 18);
      const v = ((rnd() - 0.5) * 10 ** mag).toPrecision(digits);
      await d.same('INCRBYFLOAT', 'acc', v);
    }
  });

  differential('APPEND, STRLEN, GETRANGE, SUBSTR, SETRANGE', async (d) => {
    await d.all([
      ['APPEND', 'k', 'hello'],
      ['APPEND', 'k', ' world'],
      ['APPEND', 'k', ''],
      ['GET', 'k'],
      ['STRLEN', 'k'],
      ['STRLEN', 'missing'],
      ['APPEND', 'e', ''],
      ['EXISTS', 'e'],
      ['GETRANGE', 'k', 0, -1],
      ['GETRANGE', 'k', 1, 3],
      ['GETRANGE', 'k', -3, -1],
      ['GETRANGE', 'k', 5, 1],
      ['GETRANGE', 'k', -1, -5],
      ['GETRANGE', 'k', 0, 100],
      ['GETRANGE', 'k', 100, 200],
      ['GETRANGE', 'k', -100, 2],
      ['GETRANGE', 'k', 0, '9223372036854775807'],
      ['GETRANGE', 'k', '-9223372036854775808', '-9223372036854775808'],
      ['GETRANGE', 'k', 'a', 1],
      ['GETRANGE', 'missing', 0, 1],
      ['GETRANGE', 'missing', 'a', 1],
      ['GETRANGE', 'e', 0, -1],
      ['SUBSTR', 'k', 0, 2],
      ['SETRANGE', 'k', 0, 'J'],
      ['SETRANGE', 'k', 15, 'X'],
      ['GET', 'k'],
      ['SETRANGE', 'k', 3, ''],
      ['SETRANGE', 'new', 5, 'abc'],
      ['GET', 'new'],
      ['SETRANGE', 'new2', 3, ''],
      ['EXISTS', 'new2'],
      ['SETRANGE', 'new3', 0, 'x'],
      ['SETRANGE', 'k', -1, 'x'],
      ['SETRANGE', 'k', 'abc', 'x'],
      ['SETRANGE', 'k', 536870911, 'xx'],
      ['SETRANGE', 'k', 536870912, ''],
      ['SETRANGE', 'nothing', 536870912, 'x'],
      ['SETEX', 't', 100, 'abc'],
      ['APPEND', 't', 'def'],
      ['SETRANGE', 't', 1, 'ZZ'],
      ['GET', 't'],
      ['TTL', 't'],
      ['SADD', 's', 'a'],
      ['APPEND', 's', 'x'],
      ['STRLEN', 's'],
      ['GETRANGE', 's', 0, 1],
      ['SETRANGE', 's', 0, 'x'],
      ['SETRANGE', 's', 0, ''],
      ['APPEND', 'k'],
      ['GETRANGE', 'k', 0],
      ['SETRANGE', 'k', 0],
      ['STRLEN'],
    ]);
  });

  differential('large and binary values', async (d) => {
    const rnd = prng(11);
    const big = Buffer.alloc(1024 * 1024 + 7);
    for (let i = 0; i < big.length; i++) big[i] = Math.floor(rnd() * 256);
    const bin = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) bin[i] = i;
    const binKey = Buffer.from([0, 13, 10, 255, 128, 0x7f, 42, 63]);
    await d.all([
      ['SET', 'big', big],
      ['GET', 'big'],
      ['STRLEN', 'big'],
      ['APPEND', 'big', big.subarray(0, 300_000)],
      ['APPEND', 'big', 'tail'],
      ['APPEND', 'big', big.subarray(5, 70_000)],
      ['STRLEN', 'big'],
      ['GETRANGE', 'big', 1_000_000, 1_000_100],
      ['SETRANGE', 'big', 2_000_000, 'far'],
      ['STRLEN', 'big'],
      ['GET', 'big'],
      ['SET', binKey, bin],
      ['GET', binKey],
      ['EXISTS', binKey],
      ['TYPE', binKey],
      ['APPEND', binKey, bin],
      ['GET', binKey],
      ['SET', Buffer.from(''), 'empty-key'],
      ['GET', Buffer.from('')],
      ['SET', 'emptyval', ''],
      ['GET', 'emptyval'],
      ['STRLEN', 'emptyval'],
      ['HSET', binKey.subarray(1), bin, binKey, binKey, bin],
      ['HGET', binKey.subarray(1), bin],
      ['HMGET', binKey.subarray(1), binKey, bin, 'none'],
      ['SADD', 'binset', bin, binKey, Buffer.from([0xe9])],
      ['SISMEMBER', 'binset', Buffer.from([0xe9])],
      ['SISMEMBER', 'binset', Buffer.from('é')],
      ['RPUSH', 'binlist', bin, big.subarray(0, 100_000), binKey],
      ['LRANGE', 'binlist', 0, -1],
      ['LPOS', 'binlist', binKey],
      ['INCR', big.subarray(0, 20)],
    ]);
    await d.unordered('KEYS', '*');
    await d.unordered('HGETALL', binKey.subarray(1));
    await d.unordered('SMEMBERS', 'binset');
    await d.unordered('KEYS', Buffer.from([0x5b, 0x00, 0x7f, 0x5d, 0x2a]));
    await d.scanAll((c) => ['SCAN', c, 'COUNT', 2]);
  });
});

describe('keys, differential', () => {
  differential('DEL, UNLINK, EXISTS, TOUCH, TYPE, RENAME, RENAMENX', async (d) => {
    await d.all([
      ['MSET', 'a', '1', 'b', '2', 'c', '3'],
      ['RPUSH', 'l', 'x'],
      ['SADD', 's', 'x'],
      ['HSET', 'h', 'f', 'v'],
      ['TYPE', 'a'],
      ['TYPE', 'l'],
      ['TYPE', 's'],
      ['TYPE', 'h'],
      ['TYPE', 'none'],
      ['EXISTS', 'a', 'a', 'b', 'nope', 'l'],
      ['TOUCH', 'a', 'a', 'nope', 's'],
      ['DEL', 'a', 'a', 'nope'],
      ['UNLINK', 'b', 'c', 'l'],
      ['EXISTS', 'a', 'b', 'c', 'l'],
      ['DEL', 'nope'],
      ['SETEX', 'ttl', 100, 'v'],
      ['RENAME', 'ttl', 'moved'],
      ['TTL', 'moved'],
      ['GET', 'moved'],
      ['EXISTS', 'ttl'],
      ['RENAME', 'moved', 'h'],
      ['TYPE', 'h'],
      ['TTL', 'h'],
      ['RENAME', 'nope', 'x'],
      ['RENAME', 'nope', 'nope'],
      ['RENAME', 'h', 'h'],
      ['RENAMENX', 'h', 'h'],
      ['RENAMENX', 'h', 's'],
      ['RENAMENX', 'h', 'fresh'],
      ['RENAMENX', 'nope', 'x'],
      ['GET', 'fresh'],
      ['TYPE', 's'],
      ['DEL'],
      ['EXISTS'],
      ['TYPE'],
      ['RENAME', 'a'],
      ['RENAMENX', 'a', 'b', 'c'],
    ]);
  });

  differential('EXPIRE family, TTL, PTTL, EXPIRETIME, PERSIST', async (d) => {
    const at = Math.floor(Date.now() / 1000) + 1000;
    await d.all([
      ['SET', 'k', 'v'],
      ['TTL', 'k'],
      ['PTTL', 'k'],
      ['TTL', 'missing'],
      ['PTTL', 'missing'],
      ['EXPIRETIME', 'k'],
      ['PEXPIRETIME', 'missing'],
      ['EXPIRE', 'k', 100],
      ['TTL', 'k'],
      ['EXPIRE', 'k', 50, 'GT'],
      ['EXPIRE', 'k', 200, 'GT'],
      ['TTL', 'k'],
      ['EXPIRE', 'k', 300, 'LT'],
      ['EXPIRE', 'k', 150, 'lt'],
      ['TTL', 'k'],
      ['EXPIRE', 'k', 10, 'NX'],
      ['EXPIRE', 'k', 120, 'XX'],
      ['TTL', 'k'],
      ['PERSIST', 'k'],
      ['PERSIST', 'k'],
      ['PERSIST', 'missing'],
      ['TTL', 'k'],
      ['EXPIRE', 'k', 10, 'XX'],
      ['EXPIRE', 'k', 10, 'GT'],
      ['EXPIRE', 'k', 100, 'LT'],
      ['TTL', 'k'],
      ['PERSIST', 'k'],
      ['EXPIRE', 'k', 100, 'NX'],
      ['TTL', 'k'],
      ['EXPIRE', 'k', 10, 'NX', 'GT'],
      ['EXPIRE', 'k', 10, 'XX', 'NX'],
      ['EXPIRE', 'k', 10, 'GT', 'LT'],
      ['EXPIRE', 'k', 10, 'XX', 'GT'],
      ['EXPIRE', 'k', 10, 'foo'],
      ['EXPIRE', 'k', 10, Buffer.from('b\xe9d\r\nx', 'latin1')],
      ['EXPIRE', 'k', 'abc'],
      ['EXPIRE', 'k', 'abc', 'foo'],
      ['EXPIRE', 'k', '9223372036854775807'],
      ['EXPIRE', 'k', '-9223372036854775808'],
      ['EXPIRE', 'k', '9223372036854775'],
      ['PEXPIRE', 'k', '9223372036854775807'],
      ['EXPIREAT', 'k', '9223372036854775807'],
      ['EXPIRE', 'missing', 100],
      ['EXPIRE', 'missing', 'abc'],
      ['EXPIREAT', 'k', at],
      ['EXPIRETIME', 'k'],
      ['EXPIRETIME', 'k'],
      ['PEXPIRETIME', 'k'],
      ['PEXPIREAT', 'k', at * 1000 + 123],
      ['EXPIRETIME', 'k'],
      ['PEXPIRETIME', 'k'],
      ['PEXPIRE', 'k', 500000],
      ['TTL', 'k'],
      ['EXPIRE', 'k', 0],
      ['EXISTS', 'k'],
      ['SET', 'k', 'v'],
      ['EXPIRE', 'k', -10],
      ['GET', 'k'],
      ['SET', 'k', 'v'],
      ['EXPIREAT', 'k', 1],
      ['EXISTS', 'k'],
      ['SET', 'k', 'v'],
      ['PEXPIREAT', 'k', 1000],
      ['TTL', 'k'],
      ['EXPIRE', 'k'],
      ['TTL'],
      ['PERSIST', 'a', 'b'],
    ]);
    await d.same('SET', 'p', 'v', 'PX', 100_000);
    await d.approx(100, 'PTTL', 'p');
  });

  differential('expiry: lazy on access, ignored by KEYS and SCAN', async (d) => {
    await d.all([
      ['SET', 'short', 'v', 'PX', 60],
      ['SET', 'long', 'v', 'EX', 100],
      ['RPUSH', 'list', 'a'],
      ['PEXPIRE', 'list', 60],
      ['HSET', 'hash', 'f', 'v'],
      ['PEXPIRE', 'hash', 60],
      ['SADD', 'set', 'm'],
      ['PEXPIRE', 'set', 60],
      ['SET', 'forever', 'v'],
      ['SET', 'r', 'v', 'PX', 60],
      ['SET', 'r2', 'v', 'PX', 60],
    ]);
    await sleep(150);
    await d.approx(1, 'TTL', 'long');
    await d.unordered('KEYS', '*');
    await d.scanAll((c) => ['SCAN', c]);
    await d.all([
      ['GET', 'short'],
      ['EXISTS', 'short', 'long', 'forever'],
      ['TTL', 'short'],
      ['LLEN', 'list'],
      ['HGETALL', 'hash'],
      ['SMEMBERS', 'set'],
      ['TYPE', 'list'],
      ['RENAME', 'r', 'x'],
      ['SETNX', 'r2', 'new'],
      ['GET', 'r2'],
      ['TTL', 'r2'],
      ['INCR', 'short'],
      ['TTL', 'short'],
      ['LPUSH', 'list', 'fresh'],
      ['TTL', 'list'],
    ]);
    // Writes that keep the TTL (redis replaces the value in place) and those that drop it.
    await d.all([
      ['SETEX', 'i', 100, '1'],
      ['INCRBY', 'i', 5],
      ['APPEND', 'i', '0'],
      ['TTL', 'i'],
      ['HSET', 'h2', 'a', '1'],
      ['EXPIRE', 'h2', 100],
      ['HSET', 'h2', 'b', '2'],
      ['HDEL', 'h2', 'a'],
      ['TTL', 'h2'],
      ['SADD', 's1', 'a', 'b'],
      ['SADD', 's2', 'b', 'c'],
      ['SADD', 'dst', 'z'],
      ['EXPIRE', 'dst', 100],
      ['SUNIONSTORE', 'dst', 's1', 's2'],
      ['TTL', 'dst'],
      ['SET', 'i', 'x'],
      ['TTL', 'i'],
    ]);
  });

  differential('KEYS patterns', async (d) => {
    await d.same('MSET', 'hello', 1, 'hallo', 2, 'hxllo', 3, 'hllo', 4, 'heeeello', 5, 'h*llo', 6, 'h[llo', 7, 'x', 8, 'h\\llo', 9, Buffer.from('h\xe9llo', 'latin1'), 10);
    for (const p of [
      '*',
      'h?llo',
      'h*llo',
      'h[ae]llo',
      'h[^e]llo',
      'h[a-b]llo',
      'h[b-a]llo',
      'h[a-]llo',
      'h\\*llo',
      'h[\\[]llo',
      'h[',
      'h[a',
      'h\\',
      '*llo',
      '*l*l*o*',
      'h**o',
      '?',
      '',
      'nomatch*',
      'h[\x01-\x7f]llo',
      Buffer.from('h[\x80-\xff]llo', 'latin1'),
      Buffer.from('h[a-\xff]llo', 'latin1'),
      Buffer.from('h[^\xe9]llo', 'latin1'),
      'h\\\\llo',
      '[hx]*',
    ]) {
      await d.unordered('KEYS', p);
    }
    await d.same('KEYS');
  });

  differential('SCAN: cursor walk, MATCH, COUNT, TYPE, errors', async (d) => {
    await d.same('SCAN', 0);
    const mset: Arg[] = ['MSET'];
    for (let i = 0; i < 400; i++) mset.push(`key:${i}`, `v${i}`);
    await d.same(...mset);
    for (let i = 0; i < 40; i++) {
      await d.same('RPUSH', `list:${i}`, 'x');
      await d.same('SADD', `set:${i}`, 'x');
      await d.same('HSET', `hash:${i}`, 'f', 'v');
    }
    await d.scanAll((c) => ['SCAN', c]);
    await d.scanAll((c) => ['SCAN', c, 'COUNT', 7]);
    await d.scanAll((c) => ['SCAN', c, 'COUNT', 1000]);
    await d.scanAll((c) => ['SCAN', c, 'MATCH', 'key:1*', 'COUNT', 13]);
    await d.scanAll((c) => ['SCAN', c, 'TYPE', 'set']);
    await d.scanAll((c) => ['SCAN', c, 'type', 'HASH', 'match', '*:3*']);
    await d.scanAll((c) => ['SCAN', c, 'TYPE', 'string', 'COUNT', 50]);
    await d.scanAll((c) => ['SCAN', c, 'TYPE', 'nosuchtype']);
    await d.scanAll((c) => ['SCAN', c, 'MATCH', '*']);
    await d.all([
      ['SCAN', 'abc'],
      ['SCAN', '-'],
      ['SCAN', '1.5'],
      ['SCAN', ' 1'],
      ['SCAN', '18446744073709551616'],
      ['SCAN', 0, 'COUNT', 0],
      ['SCAN', 0, 'COUNT', -1],
      ['SCAN', 0, 'COUNT', 'x'],
      ['SCAN', 0, 'FOO', 'bar'],
      ['SCAN', 0, 'MATCH'],
      ['SCAN', 0, 'COUNT'],
      ['SCAN'],
    ]);
    await d.select(5);
    await d.same('SCAN', 0);
    await d.same('SCAN', '');
  });

  differential('databases, DBSIZE, FLUSHDB, FLUSHALL, RANDOMKEY', async (d) => {
    await d.all([
      ['RANDOMKEY'],
      ['DBSIZE'],
      ['SET', 'only', 'v'],
      ['RANDOMKEY'],
      ['DBSIZE'],
    ]);
    await d.select(3);
    await d.all([
      ['GET', 'only'],
      ['SET', 'only', 'three'],
      ['SET', 'more', 'x'],
      ['DBSIZE'],
    ]);
    const r = await d.shape('RANDOMKEY');
    assert.ok(r.type === 'bulk' && ['only', 'more'].includes(r.value.toString()));
    await d.select(0);
    await d.all([['GET', 'only'], ['DBSIZE'], ['FLUSHDB'], ['DBSIZE']]);
    await d.select(3);
    await d.all([
      ['DBSIZE'],
      ['FLUSHDB', 'ASYNC'],
      ['DBSIZE'],
      ['SET', 'a', 'b'],
      ['FLUSHDB', 'sync'],
      ['FLUSHDB', 'foo'],
      ['FLUSHDB', 'async', 'sync'],
      ['SET', 'a', 'b'],
    ]);
    await d.select(15);
    await d.all([['SET', 'z', 'z'], ['FLUSHALL', 'foo'], ['FLUSHALL'], ['DBSIZE']]);
    await d.select(3);
    await d.all([['DBSIZE'], ['FLUSHALL', 'ASYNC'], ['RANDOMKEY', 'x'], ['DBSIZE', 'x']]);
  });

  differential('PING, ECHO', async (d) => {
    await d.all([['PING'], ['PING', 'hello'], ['PING', Buffer.from([0, 255])], ['PING', 'a', 'b'], ['ECHO', 'x'], ['ECHO', ''], ['ECHO'], ['ECHO', 'a', 'b']]);
  });
});

describe('hashes, differential', () => {
  differential('HSET, HGET, HMGET, HSETNX, HDEL, HEXISTS, HLEN, HSTRLEN, HKEYS, HVALS, HGETALL', async (d) => {
    await d.all([
      ['HSET', 'h', 'f1', 'v1', 'f2', 'v2'],
      ['HSET', 'h', 'f1', 'new', 'f3', 'v3'],
      ['HSET', 'h', 'f4', 'a', 'f4', 'b'],
      ['HGET', 'h', 'f1'],
      ['HGET', 'h', 'f4'],
      ['HGET', 'h', 'nope'],
      ['HGET', 'missing', 'f'],
      ['HMGET', 'h', 'f1', 'nope', 'f2'],
      ['HMGET', 'missing', 'a', 'b'],
      ['HSETNX', 'h', 'f1', 'x'],
      ['HSETNX', 'h', 'f5', 'v5'],
      ['HSETNX', 'new', 'f', 'v'],
      ['HGET', 'h', 'f5'],
      ['HEXISTS', 'h', 'f1'],
      ['HEXISTS', 'h', 'nope'],
      ['HEXISTS', 'missing', 'f'],
      ['HLEN', 'h'],
      ['HLEN', 'missing'],
      ['HSTRLEN', 'h', 'f1'],
      ['HSTRLEN', 'h', 'nope'],
      ['HSTRLEN', 'missing', 'f'],
      ['HDEL', 'h', 'f1', 'nope', 'f1'],
      ['HDEL', 'missing', 'f'],
      ['HLEN', 'h'],
      ['HMSET', 'h', 'a', '1', 'b', '2'],
      ['HKEYS', 'missing'],
      ['HVALS', 'missing'],
      ['HGETALL', 'missing'],
      ['HSET', 'one', 'f', 'v'],
      ['HGETALL', 'one'],
      ['HKEYS', 'one'],
      ['HVALS', 'one'],
      ['HDEL', 'one', 'f'],
      ['EXISTS', 'one'],
      ['HSET', 'h', 'a'],
      ['HSET', 'h', 'a', '1', 'b'],
      ['HSET', 'h'],
      ['HMSET', 'h', 'a'],
      ['HMSET', 'h', 'a', '1', 'b'],
      ['HSETNX', 'h', 'a'],
      ['HGET', 'h'],
      ['HMGET', 'h'],
      ['HDEL', 'h'],
    ]);
    await d.unordered('HKEYS', 'h');
    await d.unordered('HVALS', 'h');
    await d.unordered('HGETALL', 'h');
    const fields: Arg[] = ['HSET', 'big'];
    for (let i = 0; i < 1000; i++) fields.push(`field:${i}`, `value:${i}:${'x'.repeat(i % 50)}`);
    await d.same(...fields);
    await d.same('HLEN', 'big');
    await d.unordered('HGETALL', 'big');
    await d.same('HSET', 'bigval', 'f', 'y'.repeat(200_000));
    await d.same('HGET', 'bigval', 'f');
    await d.same('SET', 'str', 'v');
    await WRONG(d, [
      ['HSET', 'str', 'f', 'v'],
      ['HMSET', 'str', 'f', 'v'],
      ['HSETNX', 'str', 'f', 'v'],
      ['HGET', 'str', 'f'],
      ['HMGET', 'str', 'f'],
      ['HDEL', 'str', 'f'],
      ['HEXISTS', 'str', 'f'],
      ['HLEN', 'str'],
      ['HSTRLEN', 'str', 'f'],
      ['HKEYS', 'str'],
      ['HVALS', 'str'],
      ['HGETALL', 'str'],
      ['HINCRBY', 'str', 'f', 1],
      ['HINCRBYFLOAT', 'str', 'f', 1],
      ['HSCAN', 'str', 0],
      ['HRANDFIELD', 'str'],
      ['HRANDFIELD', 'str', 2],
    ]);
  });

  differential('HINCRBY, HINCRBYFLOAT', async (d) => {
    await d.all([
      ['HINCRBY', 'h', 'n', 5],
      ['HINCRBY', 'h', 'n', -10],
      ['HINCRBY', 'h', 'n', 'abc'],
      ['HINCRBY', 'missing', 'n', 'abc'],
      ['EXISTS', 'missing'],
      ['HSET', 'h', 's', 'text', 'sp', ' 1', 'max', '9223372036854775807'],
      ['HINCRBY', 'h', 's', 1],
      ['HINCRBY', 'h', 'sp', 1],
      ['HINCRBY', 'h', 'max', 1],
      ['HINCRBY', 'h', 'max', -1],
      ['HINCRBY', 'h', 'min', '-9223372036854775808'],
      ['HINCRBY', 'h', 'min', -1],
      ['HGET', 'h', 'max'],
      ['HINCRBYFLOAT', 'h', 'fl', '1.5'],
      ['HINCRBYFLOAT', 'h', 'fl', '0.1'],
      ['HINCRBYFLOAT', 'h', 'fl', '0.1'],
      ['HINCRBYFLOAT', 'h', 'n', '0.5'],
      ['HINCRBYFLOAT', 'h', 's', '1'],
      ['HINCRBYFLOAT', 'h', 'x', 'inf'],
      ['HINCRBYFLOAT', 'h', 'x', '-inf'],
      ['HINCRBYFLOAT', 'h', 'x', 'nan'],
      ['HINCRBYFLOAT', 'h', 'x', 'abc'],
      ['HINCRBYFLOAT', 'h', 'x', '1e5000'],
      ['HSET', 'h', 'i', 'inf'],
      ['HINCRBYFLOAT', 'h', 'i', '1'],
      ['HINCRBYFLOAT', 'h', 'fl', '1e300'],
      ['HINCRBYFLOAT', 'nh', 'f', '-2.5'],
      ['HGETALL', 'nh'],
      ['HINCRBY', 'h', 'n'],
      ['HINCRBYFLOAT', 'h', 'n'],
    ]);
    await d.unordered('HGETALL', 'h');
  });

  differential('HSCAN and HRANDFIELD', async (d) => {
    const fields: Arg[] = ['HSET', 'h'];
    for (let i = 0; i < 300; i++) fields.push(`f${i}`, `v${i}`);
    await d.same(...fields);
    await d.scanAll((c) => ['HSCAN', 'h', c], true);
    await d.scanAll((c) => ['HSCAN', 'h', c, 'COUNT', 17], true);
    await d.scanAll((c) => ['HSCAN', 'h', c, 'MATCH', 'f1*'], true);
    await d.same('HSET', 'small', 'a', '1', 'b', '2');
    await d.scanAll((c) => ['HSCAN', 'small', c], true);
    await d.all([
      ['HSCAN', 'missing', 0],
      ['HSCAN', 'missing', 0, 'FOO'],
      ['HSCAN', 'missing', 'abc'],
      ['HSCAN', 'h', 'abc'],
      ['HSCAN', 'h', 0, 'TYPE', 'hash'],
      ['HSCAN', 'h', 0, 'COUNT', 0],
      ['HSCAN', 'h', 0, 'MATCH'],
      ['HSCAN', 'h'],
      ['HSET', 'one', 'f', 'v'],
      ['HRANDFIELD', 'one'],
      ['HRANDFIELD', 'one', 1],
      ['HRANDFIELD', 'one', 5],
      ['HRANDFIELD', 'one', -3],
      ['HRANDFIELD', 'one', 2, 'WITHVALUES'],
      ['HRANDFIELD', 'one', -2, 'withvalues'],
      ['HRANDFIELD', 'one', 0],
      ['HRANDFIELD', 'one', 0, 'WITHVALUES'],
      ['HRANDFIELD', 'missing'],
      ['HRANDFIELD', 'missing', 3],
      ['HRANDFIELD', 'missing', 3, 'WITHVALUES'],
      ['HRANDFIELD', 'one', 1, 'FOO'],
      ['HRANDFIELD', 'one', 1, 'WITHVALUES', 'x'],
      ['HRANDFIELD', 'one', 'abc'],
      ['HRANDFIELD', 'missing', 'abc'],
      ['HRANDFIELD', 'one', '-9223372036854775808'],
      ['HRANDFIELD', 'one', '4611686018427387904', 'WITHVALUES'],
      ['HRANDFIELD', 'one', '-4611686018427387904', 'WITHVALUES'],
    ]);
    await d.unordered('HRANDFIELD', 'small', 10);
    await d.unordered('HRANDFIELD', 'small', 10, 'WITHVALUES');
    const v = await d.shape('HRANDFIELD', 'h', 5);
    assert.equal(new Set((v as { value: Array<{ value: Buffer }> }).value.map((x) => x.value.toString())).size, 5, 'distinct fields');
    await d.shape('HRANDFIELD', 'h', -500);
    await d.shape('HRANDFIELD', 'h', 3, 'WITHVALUES');
    await d.shape('HRANDFIELD', 'h');
  });
});

describe('lists, differential', () => {
  differential('push, pop, LRANGE, LINDEX, LSET, LLEN', async (d) => {
    await d.all([
      ['RPUSH', 'l', 'a', 'b', 'c'],
      ['LPUSH', 'l', 'x', 'y'],
      ['LRANGE', 'l', 0, -1],
      ['LLEN', 'l'],
      ['LLEN', 'missing'],
      ['LINDEX', 'l', 0],
      ['LINDEX', 'l', -1],
      ['LINDEX', 'l', 4],
      ['LINDEX', 'l', 5],
      ['LINDEX', 'l', -6],
      ['LINDEX', 'l', 'abc'],
      ['LINDEX', 'missing', 'abc'],
      ['LINDEX', 'missing', 0],
      ['LSET', 'l', 0, 'first'],
      ['LSET', 'l', -1, 'last'],
      ['LSET', 'l', 5, 'z'],
      ['LSET', 'l', -6, 'z'],
      ['LSET', 'l', 'abc', 'z'],
      ['LSET', 'missing', 0, 'z'],
      ['LSET', 'missing', 'abc', 'z'],
      ['LRANGE', 'l', 0, -1],
      ['LRANGE', 'l', 1, 2],
      ['LRANGE', 'l', -2, -1],
      ['LRANGE', 'l', -100, 100],
      ['LRANGE', 'l', 3, 1],
      ['LRANGE', 'l', 5, 10],
      ['LRANGE', 'l', 0, '9223372036854775807'],
      ['LRANGE', 'l', 'a', 1],
      ['LRANGE', 'missing', 0, -1],
      ['LRANGE', 'missing', 'a', -1],
      ['LPUSHX', 'missing', 'a'],
      ['RPUSHX', 'missing', 'a'],
      ['EXISTS', 'missing'],
      ['LPUSHX', 'l', 'lx1', 'lx2'],
      ['RPUSHX', 'l', 'rx'],
      ['LRANGE', 'l', 0, -1],
      ['LPOP', 'l'],
      ['RPOP', 'l'],
      ['LPOP', 'l', 2],
      ['RPOP', 'l', 1],
      ['LPOP', 'l', 0],
      ['LPOP', 'l', -1],
      ['LPOP', 'l', 'abc'],
      ['LPOP', 'l', 1, 2],
      ['LPOP', 'missing'],
      ['LPOP', 'missing', 2],
      ['LPOP', 'missing', 0],
      ['RPOP', 'missing', 'abc'],
      ['RPOP', 'l', 100],
      ['EXISTS', 'l'],
      ['RPUSH', 'one', 'x'],
      ['RPOP', 'one'],
      ['EXISTS', 'one'],
      ['LPUSH', 'l'],
      ['LPUSHX', 'l'],
      ['LPOP'],
      ['LINDEX', 'l'],
    ]);
  });

  differential('LREM, LTRIM, LINSERT, LPOS', async (d) => {
    const fill: Arg[][] = [['DEL', 'l'], ['RPUSH', 'l', 'a', 'b', 'a', 'c', 'a', 'b', 'a']];
    await d.all([
      ...fill,
      ['LREM', 'l', 2, 'a'],
      ['LRANGE', 'l', 0, -1],
      ...fill,
      ['LREM', 'l', -2, 'a'],
      ['LRANGE', 'l', 0, -1],
      ...fill,
      ['LREM', 'l', 0, 'a'],
      ['LRANGE', 'l', 0, -1],
      ['LREM', 'l', 0, 'zz'],
      ['LREM', 'l', 'x', 'a'],
      ['LREM', 'missing', 'x', 'a'],
      ['LREM', 'missing', 1, 'a'],
      ['LREM', 'l', 0, 'b'],
      ['LREM', 'l', 0, 'c'],
      ['EXISTS', 'l'],
      ...fill,
      ['LTRIM', 'l', 1, -2],
      ['LRANGE', 'l', 0, -1],
      ['LTRIM', 'l', -3, 100],
      ['LRANGE', 'l', 0, -1],
      ['LTRIM', 'l', 2, 1],
      ['EXISTS', 'l'],
      ['LTRIM', 'missing', 0, 1],
      ['LTRIM', 'missing', 'a', 1],
      ...fill,
      ['LTRIM', 'l', 'a', 1],
      ['LTRIM', 'l', 100, 200],
      ['EXISTS', 'l'],
      ...fill,
      ['LINSERT', 'l', 'BEFORE', 'c', 'X'],
      ['LINSERT', 'l', 'after', 'c', 'Y'],
      ['LINSERT', 'l', 'BEFORE', 'a', 'head'],
      ['LINSERT', 'l', 'AFTER', 'zz', 'Y'],
      ['LINSERT', 'l', 'MIDDLE', 'c', 'Y'],
      ['LINSERT', 'missing', 'BEFORE', 'c', 'Y'],
      ['LINSERT', 'missing', 'foo', 'c', 'Y'],
      ['LRANGE', 'l', 0, -1],
      ['LINDEX', 'l', -1],
      ['LINSERT', 'l', 'AFTER', 'a', 'tail'],
      ['LRANGE', 'l', 0, -1],
      ...fill,
      ['LPOS', 'l', 'a'],
      ['LPOS', 'l', 'b'],
      ['LPOS', 'l', 'zz'],
      ['LPOS', 'l', 'a', 'RANK', 2],
      ['LPOS', 'l', 'a', 'RANK', -1],
      ['LPOS', 'l', 'a', 'RANK', -3],
      ['LPOS', 'l', 'a', 'RANK', 9],
      ['LPOS', 'l', 'a', 'RANK', '-9223372036854775808'],
      ['LPOS', 'l', 'a', 'RANK', '-9223372036854775807'],
      ['LPOS', 'l', 'a', 'RANK', '9223372036854775807'],
      ['LPOS', 'l', 'a', 'COUNT', 0],
      ['LPOS', 'l', 'a', 'COUNT', 2],
      ['LPOS', 'l', 'a', 'COUNT', 2, 'RANK', -1],
      ['LPOS', 'l', 'a', 'COUNT', 0, 'MAXLEN', 3],
      ['LPOS', 'l', 'a', 'RANK', -1, 'MAXLEN', 2],
      ['LPOS', 'l', 'c', 'MAXLEN', 3],
      ['LPOS', 'l', 'zz', 'COUNT', 3],
      ['LPOS', 'missing', 'a'],
      ['LPOS', 'missing', 'a', 'COUNT', 1],
      ['LPOS', 'l', 'a', 'RANK', 0],
      ['LPOS', 'l', 'a', 'RANK', 'x'],
      ['LPOS', 'l', 'a', 'COUNT', -1],
      ['LPOS', 'l', 'a', 'COUNT', 'x'],
      ['LPOS', 'l', 'a', 'MAXLEN', -1],
      ['LPOS', 'l', 'a', 'MAXLEN', 'x'],
      ['LPOS', 'l', 'a', 'FOO'],
      ['LPOS', 'l', 'a', 'RANK'],
      ['LPOS', 'missing', 'a', 'RANK', 0],
      ['LPOS', 'l'],
      ['LREM', 'l', 1],
      ['LTRIM', 'l', 1],
      ['LINSERT', 'l', 'BEFORE', 'a'],
    ]);
  });

  differential('LMOVE, RPOPLPUSH, and a large list', async (d) => {
    await d.all([
      ['RPUSH', 'src', 'a', 'b', 'c'],
      ['LMOVE', 'src', 'dst', 'LEFT', 'RIGHT'],
      ['LMOVE', 'src', 'dst', 'right', 'left'],
      ['LRANGE', 'src', 0, -1],
      ['LRANGE', 'dst', 0, -1],
      ['LMOVE', 'dst', 'dst', 'LEFT', 'RIGHT'],
      ['LRANGE', 'dst', 0, -1],
      ['RPOPLPUSH', 'src', 'dst'],
      ['EXISTS', 'src'],
      ['LRANGE', 'dst', 0, -1],
      ['LMOVE', 'missing', 'dst', 'LEFT', 'LEFT'],
      ['RPOPLPUSH', 'missing', 'dst'],
      ['SET', 'str', 'x'],
      ['LMOVE', 'dst', 'str', 'LEFT', 'LEFT'],
      ['LMOVE', 'str', 'dst', 'LEFT', 'LEFT'],
      ['RPOPLPUSH', 'dst', 'str'],
      ['LRANGE', 'dst', 0, -1],
      ['LMOVE', 'dst', 'x', 'UP', 'LEFT'],
      ['LMOVE', 'missing', 'x', 'LEFT', 'DOWN'],
      ['RPUSH', 'one', 'only'],
      ['LMOVE', 'one', 'one', 'LEFT', 'LEFT'],
      ['LRANGE', 'one', 0, -1],
      ['LMOVE', 'one', 'other', 'LEFT', 'LEFT'],
      ['EXISTS', 'one'],
      ['LMOVE', 'a', 'b', 'LEFT'],
      ['RPOPLPUSH', 'a'],
    ]);
    await WRONG(d, [
      ['LPUSH', 'str', 'a'],
      ['RPUSH', 'str', 'a'],
      ['LPUSHX', 'str', 'a'],
      ['RPUSHX', 'str', 'a'],
      ['LPOP', 'str'],
      ['RPOP', 'str', 2],
      ['LLEN', 'str'],
      ['LRANGE', 'str', 0, 1],
      ['LINDEX', 'str', 0],
      ['LSET', 'str', 0, 'x'],
      ['LREM', 'str', 0, 'x'],
      ['LTRIM', 'str', 0, 1],
      ['LINSERT', 'str', 'BEFORE', 'a', 'b'],
      ['LPOS', 'str', 'a'],
    ]);
    const many: Arg[] = ['RPUSH', 'big'];
    for (let i = 0; i < 2000; i++) many.push(`e${i}`);
    await d.same(...many);
    for (let i = 0; i < 300; i++) await d.same(i % 2 ? 'LPUSH' : 'RPUSH', 'big', `p${i}`);
    await d.all([
      ['LLEN', 'big'],
      ['LRANGE', 'big', 0, -1],
      ['LRANGE', 'big', 1000, 1100],
      ['LINDEX', 'big', 1234],
      ['LINDEX', 'big', -777],
      ['LPOP', 'big', 700],
      ['RPOP', 'big', 700],
      ['LTRIM', 'big', 10, -10],
      ['LLEN', 'big'],
      ['LRANGE', 'big', 0, 20],
      ['LPOS', 'big', 'e1500'],
      ['LREM', 'big', 0, 'e1000'],
      ['LINSERT', 'big', 'BEFORE', 'e1001', 'ins'],
      ['LRANGE', 'big', 0, -1],
      ['LPOP', 'big', 5000],
      ['EXISTS', 'big'],
    ]);
  });
});

describe('sets, differential', () => {
  differential('SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SMOVE', async (d) => {
    await d.all([
      ['SADD', 's', 'a', 'b', 'c'],
      ['SADD', 's', 'a', 'd', 'd'],
      ['SCARD', 's'],
      ['SCARD', 'missing'],
      ['SISMEMBER', 's', 'a'],
      ['SISMEMBER', 's', 'z'],
      ['SISMEMBER', 'missing', 'a'],
      ['SMISMEMBER', 's', 'a', 'z', 'd'],
      ['SMISMEMBER', 'missing', 'a', 'b'],
      ['SREM', 's', 'a', 'z', 'a'],
      ['SREM', 'missing', 'a'],
      ['SMEMBERS', 'missing'],
      ['SADD', 'one', 'x'],
      ['SMEMBERS', 'one'],
      ['SREM', 'one', 'x'],
      ['EXISTS', 'one'],
      ['SMOVE', 's', 'dst', 'b'],
      ['SMOVE', 's', 'dst', 'b'],
      ['SMOVE', 's', 's', 'c'],
      ['SMOVE', 's', 's', 'zz'],
      ['SMOVE', 'missing', 'dst', 'b'],
      ['SADD', 'dst', 'c'],
      ['SMOVE', 's', 'dst', 'c'],
      ['SCARD', 's'],
      ['SMOVE', 's', 'dst', 'd'],
      ['EXISTS', 's'],
      ['SET', 'str', 'x'],
      ['SMOVE', 'str', 'dst', 'b'],
      ['SMOVE', 'dst', 'str', 'b'],
      ['SMOVE', 'missing', 'str', 'b'],
      ['SADD', 'ints', 1, 2, 3, 100, -5],
      ['SISMEMBER', 'ints', 100],
      ['SADD', 's'],
      ['SREM', 's'],
      ['SISMEMBER', 's'],
      ['SMISMEMBER', 's'],
      ['SMOVE', 's', 'd'],
    ]);
    await d.unordered('SMEMBERS', 'dst');
    await d.unordered('SMEMBERS', 'ints');
    await WRONG(d, [
      ['SADD', 'str', 'a'],
      ['SREM', 'str', 'a'],
      ['SMEMBERS', 'str'],
      ['SISMEMBER', 'str', 'a'],
      ['SMISMEMBER', 'str', 'a'],
      ['SCARD', 'str'],
      ['SPOP', 'str'],
      ['SPOP', 'str', 2],
      ['SRANDMEMBER', 'str'],
      ['SRANDMEMBER', 'str', 2],
      ['SINTER', 'str'],
      ['SUNION', 'missing', 'str'],
      ['SDIFF', 'dst', 'str'],
      ['SINTERSTORE', 'x', 'dst', 'str'],
      ['SUNIONSTORE', 'x', 'str'],
      ['SDIFFSTORE', 'x', 'missing', 'str'],
      ['SINTERCARD', 2, 'dst', 'str'],
      ['SSCAN', 'str', 0],
    ]);
  });

  differential('SINTER, SUNION, SDIFF and their STORE forms, SINTERCARD', async (d) => {
    await d.all([
      ['SADD', 'a', '1', '2', '3', '4', 'x'],
      ['SADD', 'b', '3', '4', '5', 'x'],
      ['SADD', 'c', '4', 'x', 'y'],
      ['SET', 'str', 'v'],
    ]);
    for (const op of ['SINTER', 'SUNION', 'SDIFF']) {
      await d.unordered(op, 'a');
      await d.unordered(op, 'a', 'b');
      await d.unordered(op, 'a', 'b', 'c');
      await d.unordered(op, 'a', 'missing');
      await d.unordered(op, 'missing', 'a');
      await d.unordered(op, 'missing');
      await d.unordered(op, 'a', 'a');
      await d.same(op);
      await d.same(op, 'missing', 'str');
      await d.same(`${op}STORE`, 'dst', 'a', 'b');
      await d.unordered('SMEMBERS', 'dst');
      await d.same(`${op}STORE`, 'dst', 'missing', 'missing2');
      await d.same('EXISTS', 'dst');
      await d.same('SETEX', 'dst', 100, 'v');
      await d.same(`${op}STORE`, 'dst', 'a', 'c');
      await d.same('TTL', 'dst');
      await d.same('TYPE', 'dst');
      await d.same(`${op}STORE`, 'a', 'a', 'b');
      await d.unordered('SMEMBERS', 'a');
      await d.same('DEL', 'a');
      await d.same('SADD', 'a', '1', '2', '3', '4', 'x');
      await d.same(`${op}STORE`, 'dst');
      await d.same(`${op}STORE`, 'dst', 'str');
    }
    await d.all([
      ['SINTERCARD', 2, 'a', 'b'],
      ['SINTERCARD', 3, 'a', 'b', 'c'],
      ['SINTERCARD', 2, 'a', 'b', 'LIMIT', 1],
      ['SINTERCARD', 2, 'a', 'b', 'LIMIT', 0],
      ['SINTERCARD', 1, 'missing'],
      ['SINTERCARD', 0, 'a'],
      ['SINTERCARD', -1, 'a'],
      ['SINTERCARD', 3, 'a', 'b'],
      ['SINTERCARD', 'x', 'a'],
      ['SINTERCARD', 2, 'a', 'b', 'LIMIT', -1],
      ['SINTERCARD', 2, 'a', 'b', 'LIMIT', 'x'],
      ['SINTERCARD', 2, 'a', 'b', 'LIMIT'],
      ['SINTERCARD', 1, 'a', 'b'],
      ['SINTERCARD', 1],
    ]);
  });

  differential('SPOP, SRANDMEMBER, SSCAN', async (d) => {
    await d.all([
      ['SADD', 'one', 'only'],
      ['SRANDMEMBER', 'one'],
      ['SRANDMEMBER', 'one', 1],
      ['SRANDMEMBER', 'one', 5],
      ['SRANDMEMBER', 'one', -3],
      ['SRANDMEMBER', 'one', 0],
      ['SRANDMEMBER', 'missing'],
      ['SRANDMEMBER', 'missing', 2],
      ['SRANDMEMBER', 'missing', -2],
      ['SRANDMEMBER', 'one', 'x'],
      ['SRANDMEMBER', 'one', 1, 2],
      ['SRANDMEMBER', 'one', '-9223372036854775808'],
      ['SPOP', 'one', 0],
      ['SPOP', 'one', -1],
      ['SPOP', 'one', 'x'],
      ['SPOP', 'one', 1, 2],
      ['SPOP', 'one'],
      ['EXISTS', 'one'],
      ['SPOP', 'missing'],
      ['SPOP', 'missing', 3],
      ['SPOP', 'missing', 0],
      ['SADD', 'three', 'a', 'b', 'c'],
    ]);
    await d.unordered('SRANDMEMBER', 'three', 10);
    await d.unordered('SPOP', 'three', 3);
    await d.same('EXISTS', 'three');
    await d.same('SADD', 'three', 'a', 'b', 'c');
    await d.unordered('SPOP', 'three', 5);
    const members: Arg[] = ['SADD', 'big'];
    for (let i = 0; i < 300; i++) members.push(`m${i}`);
    await d.same(...members);
    const picked = await d.shape('SRANDMEMBER', 'big', 20);
    const names = (picked as { value: Array<{ value: Buffer }> }).value.map((x) => x.value.toString());
    assert.equal(new Set(names).size, 20);
    for (const n of names) assert.match(n, /^m\d+$/);
    await d.shape('SRANDMEMBER', 'big', -400);
    await d.shape('SRANDMEMBER', 'big', 250);
    await d.shape('SRANDMEMBER', 'big');
    await d.scanAll((c) => ['SSCAN', 'big', c]);
    await d.scanAll((c) => ['SSCAN', 'big', c, 'COUNT', 33, 'MATCH', 'm2*']);
    await d.same('SADD', 'ints', 1, 2, 3);
    await d.scanAll((c) => ['SSCAN', 'ints', c]);
    await d.all([
      ['SSCAN', 'missing', 0],
      ['SSCAN', 'missing', 'x'],
      ['SSCAN', 'big', 'x'],
      ['SSCAN', 'big', 0, 'TYPE', 'set'],
      ['SSCAN', 'big', 0, 'COUNT', 0],
      ['SSCAN', 'big'],
    ]);
  });
});

describe('random command sequences, differential', () => {
  // Many keys of every type created, renamed, moved and deleted in random
  // order: exercises the dense slot moves, the expiry index and WRONGTYPE
  // paths together. Seeded, so a failure replays.
  differential('3000 random commands over 24 keys', async (d) => {
    const rnd = prng(2024);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const keys = Array.from({ length: 24 }, (_, i) => `k${i}`);
    const vals = ['a', 'b', 'c', '1', '2', '10', ''];
    const ops: Array<() => Arg[]> = [
      () => ['SET', pick(keys), pick(vals)],
      () => ['SET', pick(keys), pick(vals), 'EX', 1000],
      () => ['SET', pick(keys), pick(vals), 'NX'],
      () => ['SET', pick(keys), pick(vals), 'XX', 'KEEPTTL', 'GET'],
      () => ['GET', pick(keys)],
      () => ['DEL', pick(keys), pick(keys)],
      () => ['EXISTS', pick(keys), pick(keys)],
      () => ['TYPE', pick(keys)],
      () => ['EXPIRE', pick(keys), 1000],
      // Distinct times: GT/LT between equal relative times would depend on the ms clock.
      () => ['EXPIRE', pick(keys), 2000 + Math.floor(rnd() * 1e6), pick(['NX', 'XX', 'GT', 'LT'])],
      () => ['PERSIST', pick(keys)],
      () => ['RENAME', pick(keys), pick(keys)],
      () => ['RENAMENX', pick(keys), pick(keys)],
      () => ['INCR', pick(keys)],
      () => ['APPEND', pick(keys), pick(vals)],
      () => ['LPUSH', pick(keys), pick(vals), pick(vals)],
      () => ['RPOP', pick(keys)],
      () => ['LRANGE', pick(keys), 0, -1],
      () => ['LMOVE', pick(keys), pick(keys), pick(['LEFT', 'RIGHT']), pick(['LEFT', 'RIGHT'])],
      () => ['LREM', pick(keys), 0, pick(vals)],
      () => ['SADD', pick(keys), pick(vals), pick(vals)],
      () => ['SREM', pick(keys), pick(vals)],
      () => ['SCARD', pick(keys)],
      () => ['SISMEMBER', pick(keys), pick(vals)],
      () => ['SMOVE', pick(keys), pick(keys), pick(vals)],
      () => ['SINTERSTORE', pick(keys), pick(keys), pick(keys)],
      () => ['SUNIONSTORE', pick(keys), pick(keys), pick(keys)],
      () => ['HSET', pick(keys), pick(vals), pick(vals)],
      () => ['HDEL', pick(keys), pick(vals)],
      () => ['HGET', pick(keys), pick(vals)],
      () => ['HLEN', pick(keys)],
      () => ['HINCRBY', pick(keys), pick(vals), 3],
      () => ['DBSIZE'],
    ];
    for (let i = 0; i < 3000; i++) {
      const r = rnd();
      if (r < 0.02) await d.approx(1, 'TTL', pick(keys));
      else if (r < 0.03) await d.unordered('KEYS', '*');
      else if (r < 0.035) await d.scanAll((c) => ['SCAN', c, 'COUNT', 3]);
      else if (r < 0.045) await d.unordered('SMEMBERS', pick(keys));
      else if (r < 0.055) await d.unordered('HGETALL', pick(keys));
      else await d.same(...pick(ops)());
    }
  });
});

describe('arity', () => {
  differential('every command with no arguments and with one too many', async (d) => {
    for (const name of memoryCommandNames) {
      if (name === 'FLUSHALL' || name === 'FLUSHDB') continue;
      await d.same(name);
    }
    await d.same('FLUSHDB', 'a', 'b');
    await d.same('GET', 'a', 'b');
    await d.same('TTL', 'a', 'b');
    await d.same('LINDEX', 'a', 'b', 'c');
    await d.same('SMOVE', 'a', 'b', 'c', 'd');
    await d.same('HSETNX', 'a', 'b', 'c', 'd');
    await d.same('get', 'a', 'b');
    await d.same('GeT');
  });
});

describe('memory component on its own', () => {
  test('unknown commands get an error naming the component', () => {
    const c = new MemoryComponent({ sweepIntervalMs: 0 });
    const r = execute(c, ['ZADD', 'z', '1', 'm']).toString();
    assert.equal(r, "-ERR unknown command 'ZADD' for component 'memory' (supported: strings, hashes, lists, sets, keys, TTL)\r\n");
    assert.match(execute(c, ['xyzzy']).toString(), /^-ERR unknown command 'xyzzy' for component 'memory'/);
    assert.match(execute(c, ['BLPOP', 'l', '0']).toString(), /for component 'memory'/);
    assert.equal(execute(c, ['GET', 'a'], 2, 16).toString(), '-ERR DB index is out of range\r\n');
    c.close();
  });

  test('max_keys with eviction none: writes that would add keys fail with -OOM, others pass', () => {
    const c = new MemoryComponent({ maxKeys: 3, sweepIntervalMs: 0 });
    const ok = (args: Arg[], expect: string, db = 0) => assert.equal(execute(c, args, 2, db).toString(), expect, label(args));
    const oom = (args: Arg[], db = 0) => assert.match(execute(c, args, 2, db).toString(), /^-OOM .*'max_keys' \(3\)/, label(args));
    ok(['SET', 'a', '1'], '+OK\r\n');
    ok(['RPUSH', 'b', 'x'], ':1\r\n');
    ok(['SADD', 'c', 'x'], ':1\r\n', 5);
    oom(['SET', 'd', '1']);
    oom(['HSET', 'h', 'f', 'v']);
    oom(['SET', 'd', '1'], 7);
    oom(['MSET', 'a', '2', 'd', '1']);
    oom(['LMOVE', 'b', 'e', 'LEFT', 'LEFT']);
    // Writes to existing keys, reads, and deletes still work.
    ok(['SET', 'a', '2'], '+OK\r\n');
    ok(['MSET', 'a', '3', 'a', '4'], '+OK\r\n');
    ok(['RPUSH', 'b', 'y'], ':2\r\n');
    ok(['LMOVE', 'b', 'b', 'LEFT', 'RIGHT'], '$1\r\nx\r\n');
    ok(['RPUSHX', 'nope', 'x'], ':0\r\n');
    ok(['GET', 'a'], '$1\r\n4\r\n');
    ok(['DEL', 'a'], ':1\r\n');
    ok(['SET', 'd', '1'], '+OK\r\n');
    oom(['INCR', 'e']);
    ok(['DBSIZE'], ':2\r\n');
    // Expired keys are reclaimed before refusing.
    ok(['PEXPIRE', 'd', '1'], ':1\r\n');
    const until = Date.now() + 5;
    while (Date.now() < until) {
      // wait for the 1 ms expiry without a timer
    }
    ok(['SET', 'e', '1'], '+OK\r\n');
    const h = c.health();
    assert.equal(h.ok, true);
    assert.equal(h.detail?.keys, 3);
    assert.equal(h.detail?.max_keys, 3);
    c.close();
  });

  test('max_keys with eviction random: random keys make room, the new key stays', () => {
    const c = new MemoryComponent({ maxKeys: 5, eviction: 'random', sweepIntervalMs: 0 });
    for (let i = 0; i < 50; i++) {
      assert.equal(execute(c, ['SET', `k${i}`, 'v'], 2, i % 3).toString(), '+OK\r\n');
      assert.equal(execute(c, ['EXISTS', `k${i}`], 2, i % 3).toString(), ':1\r\n');
    }
    assert.equal(c.store.totalKeys(), 5);
    assert.equal(execute(c, ['MSET', 'x1', '1', 'x2', '2', 'x3', '3']).toString(), '+OK\r\n');
    assert.equal(execute(c, ['EXISTS', 'x1', 'x2', 'x3']).toString(), ':3\r\n');
    assert.equal(c.store.totalKeys(), 5);
    assert.equal(c.health().detail?.evicted_keys, 48);
    c.close();
  });

  test('the sweep reclaims expired keys nobody reads, from one timer', async () => {
    const c = new MemoryComponent({ sweepIntervalMs: 10 });
    for (let i = 0; i < 200; i++) execute(c, ['SET', `t${i}`, 'v', 'PX', '20'], 2, i % 2);
    execute(c, ['SET', 'stays', 'v', 'EX', '100']);
    execute(c, ['SET', 'plain', 'v']);
    assert.equal(c.store.totalKeys(), 202);
    const deadline = Date.now() + 5000;
    while (c.store.totalKeys() > 2 && Date.now() < deadline) await sleep(20);
    assert.equal(c.store.totalKeys(), 2);
    assert.equal(execute(c, ['DBSIZE']).toString(), ':2\r\n');
    assert.equal(c.health().detail?.expiring, 1);
    assert.equal(c.health().detail?.expired_keys, 200);
    c.close();
    assert.equal(c.store.totalKeys(), 0);
  });

  test('SCAN returns every key present for the whole scan, despite writes between steps', () => {
    const c = new MemoryComponent({ sweepIntervalMs: 0 });
    const rnd = prng(3);
    const stable = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      execute(c, ['SET', `k${i}`, 'v']);
      stable.add(`k${i}`);
    }
    for (let i = 0; i < 300; i++) execute(c, ['SET', `tmp${i}`, 'v']);
    const seen = new Set<string>();
    let cursor = '0';
    let added = 0;
    let tmpDeleted = 0;
    do {
      const r = scanReply(execute(c, ['SCAN', cursor, 'COUNT', '10']));
      for (const x of r.items) seen.add(x);
      cursor = r.cursor;
      // Churn: delete temporary keys, add new ones, delete some stable ones.
      for (let j = 0; j < 3; j++) {
        if (tmpDeleted < 300) execute(c, ['DEL', `tmp${tmpDeleted++}`]);
        execute(c, ['SET', `new${added++}`, 'v']);
      }
      if (rnd() < 0.2) {
        const victim = `k${Math.floor(rnd() * 1000)}`;
        execute(c, ['DEL', victim]);
        stable.delete(victim);
      }
    } while (cursor !== '0');
    for (const k of stable) assert.ok(seen.has(k), `SCAN missed ${k}`);
    c.close();
  });

  test('SSCAN and HSCAN keep the guarantee under removals too', () => {
    const c = new MemoryComponent({ sweepIntervalMs: 0 });
    const members = Array.from({ length: 500 }, (_, i) => `m${i}`);
    execute(c, ['SADD', 's', ...members]);
    execute(c, ['HSET', 'h', ...members.flatMap((m) => [m, 'v'])]);
    for (const [cmd, removeCmd] of [
      ['SSCAN', 'SREM'],
      ['HSCAN', 'HDEL'],
    ] as const) {
      const key = cmd === 'SSCAN' ? 's' : 'h';
      const present = new Set(members);
      const seen = new Set<string>();
      let cursor = '0';
      let victim = 499;
      do {
        const r = scanReply(execute(c, [cmd, key, cursor, 'COUNT', '7']));
        for (let i = 0; i < r.items.length; i += cmd === 'HSCAN' ? 2 : 1) seen.add(r.items[i]);
        cursor = r.cursor;
        execute(c, [removeCmd, key, `m${victim}`]);
        present.delete(`m${victim}`);
        victim -= 3;
      } while (cursor !== '0');
      for (const m of present) assert.ok(seen.has(m), `${cmd} missed ${m}`);
    }
    c.close();
  });

  test('SPOP and RANDOMKEY draw members that exist, and SPOP removes them', () => {
    const c = new MemoryComponent({ sweepIntervalMs: 0 });
    execute(c, ['SADD', 's', 'a', 'b', 'c', 'd', 'e']);
    const left = new Set(['a', 'b', 'c', 'd', 'e']);
    for (let i = 0; i < 5; i++) {
      const r = parseReply(execute(c, ['SPOP', 's']));
      assert.equal(r.type, 'bulk');
      const m = (r as { value: Buffer }).value.toString();
      assert.ok(left.delete(m), `SPOP returned ${m} twice or out of the set`);
    }
    assert.equal(execute(c, ['EXISTS', 's']).toString(), ':0\r\n');
    execute(c, ['MSET', 'x', '1', 'y', '2']);
    const drawn = new Set<string>();
    for (let i = 0; i < 200; i++) drawn.add((parseReply(execute(c, ['RANDOMKEY'])) as { value: Buffer }).value.toString());
    assert.deepEqual([...drawn].sort(), ['x', 'y']);
    execute(c, ['SADD', 'p', ...Array.from({ length: 100 }, (_, i) => `m${i}`)]);
    const popped = parseReply(execute(c, ['SPOP', 'p', '30'], 3));
    assert.equal(popped.type, 'set');
    assert.equal((popped as { value: unknown[] }).value.length, 30);
    assert.equal(execute(c, ['SCARD', 'p']).toString(), ':70\r\n');
    c.close();
  });

  test('config: max_keys and eviction are validated at load', () => {
    const reg = builtins().registries;
    const cfg = (component: string) => `clusters:\n  - name: cache\n    component: ${component}\n`;
    const issues = (text: string): ConfigIssue[] => {
      try {
        loadConfigText(text, reg);
      } catch (e) {
        if (e instanceof ConfigError) return e.issues;
        throw e;
      }
      return [];
    };
    assert.deepEqual(issues(cfg('{ type: memory }')), []);
    assert.deepEqual(issues(cfg('{ type: memory, max_keys: 1000, eviction: random }')), []);
    assert.ok(issues(cfg('{ type: memory, max_keys: 0 }')).some((i) => i.path.includes('max_keys')));
    assert.ok(issues(cfg('{ type: memory, max_keys: 1.5 }')).length > 0);
    assert.ok(issues(cfg('{ type: memory, eviction: lru, max_keys: 5 }')).some((i) => i.path.includes('eviction')));
    assert.ok(issues(cfg('{ type: memory, max_memory: 5 }')).length > 0);
    assert.ok(issues(cfg('{ type: memory, eviction: random }')).some((i) => /needs max_keys/.test(i.message)));
  });
});
