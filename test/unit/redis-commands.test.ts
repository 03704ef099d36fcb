/**
 * Redis command table and key extraction. Expected keys are what
 * redis-server 7.0.15 answered to COMMAND GETKEYS for the same arguments.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RespCommand, RespRequestDecoder, encodeCommand } from '../../src/protocols/redis/codec';
import {
  allCommands,
  blocksConnection,
  commandInfo,
  commandTableSource,
  extractKeys,
  firstKeyIndex,
  resolveCommand,
} from '../../src/protocols/redis/commands';

const cmd = (...args: string[]): RespCommand => RespCommand.from(args);
const keysOf = (args: string[]): string[] => {
  const c = RespCommand.from(args);
  return extractKeys(c).map((i) => c.argString(i));
};

/** Hand-picked calls and the keys COMMAND GETKEYS returned for them. */
const GETKEYS: Array<[string[], string[]]> = [
  [['GET', 'k'], ['k']],
  [['SET', 'k', 'v', 'GET'], ['k']],
  [['MSET', 'a', '1', 'b', '2'], ['a', 'b']],
  [['MGET', 'a', 'b', 'c'], ['a', 'b', 'c']],
  [['DEL', 'a', 'b', 'c'], ['a', 'b', 'c']],
  [['BLPOP', 'a', 'b', '0'], ['a', 'b']],
  [['BLMOVE', 'src', 'dst', 'LEFT', 'RIGHT', '0'], ['src', 'dst']],
  [['EVAL', 's', '0'], []],
  [['EVAL', 's', '2', 'a', 'b', 'c'], ['a', 'b']],
  [['EVAL', 's', '3', 'a'], []],
  [['EVALSHA', 'sha', '1', 'k', 'arg'], ['k']],
  [['FCALL', 'f', '1', 'k', 'a'], ['k']],
  [['ZUNIONSTORE', 'd', '2', 'a', 'b', 'WEIGHTS', '1', '2'], ['d', 'a', 'b']],
  [['ZINTER', '2', 'a', 'b', 'WITHSCORES'], ['a', 'b']],
  [['LMPOP', '2', 'a', 'b', 'LEFT'], ['a', 'b']],
  [['BLMPOP', '0', '2', 'a', 'b', 'LEFT'], ['a', 'b']],
  [['SINTERCARD', '2', 'a', 'b', 'LIMIT', '1'], ['a', 'b']],
  [['XREAD', 'BLOCK', '0', 'STREAMS', 'a', 'b', '0', '0'], ['a', 'b']],
  [['XREAD', 'COUNT', '1', 'STREAMS', 'streams', '0'], ['streams']],
  [['XREAD', 'STREAMS', 'STREAMS', '0'], ['STREAMS']],
  [['XREADGROUP', 'GROUP', 'streams', 'c', 'STREAMS', 'k', '0'], ['k']],
  [['GEORADIUS', 'k', '0', '0', '1', 'm', 'STOREDIST', 'store'], ['k', 'store']],
  [['GEORADIUS', 'k', '0', '0', '1', 'm', 'STORE', 'a', 'STOREDIST', 'b'], ['k', 'a', 'b']],
  [['SORT', 'k', 'BY', 'x', 'GET', 'y', 'STORE', 'd'], ['k', 'd']],
  [['SORT', 'k', 'STORE', 'd', 'GET', 'store'], ['k', 'd']],
  [['SORT_RO', 'k', 'BY', 'w_*', 'GET', '#'], ['k']],
  [['MIGRATE', 'h', '1', '', '0', '10', 'KEYS', 'a', 'b'], ['a', 'b']],
  [['MIGRATE', 'h', '1', 'k', '0', '10'], ['k']],
  [['MIGRATE', 'h', '1', '', '0', '10', 'COPY', 'AUTH2', 'u', 'p', 'KEYS', 'a', 'keys'], ['a', 'keys']],
  [['OBJECT', 'ENCODING', 'k'], ['k']],
  [['object', 'encoding', 'k'], ['k']],
  [['MEMORY', 'USAGE', 'k'], ['k']],
  [['XINFO', 'STREAM', 'k'], ['k']],
  [['XGROUP', 'CREATE', 'k', 'g', '0'], ['k']],
  [['BITFIELD', 'k', 'GET', 'u8', '0'], ['k']],
  [['PING'], []],
  [['PUBLISH', 'ch', 'm'], []],
  [['SCRIPT', 'LOAD', 'x'], []],
  [['SPUBLISH', 'ch', 'm'], []],
];

/** Random argument vectors for the movable-keys commands, with the server's answer. */
const GETKEYS_RANDOM: Array<[string[], string[]]> = [
  [["sort","k"], ["k"]],
  [["sort","0","BLOCK","storedist"], ["0"]],
  [["sort","KEYS"], ["KEYS"]],
  [["sort_ro","AUTH","AUTH2","NOACK"], ["AUTH"]],
  [["sort_ro","AUTH","","streams"], ["AUTH"]],
  [["sort_ro","COUNT"], ["COUNT"]],
  [["migrate","x","1","storedist","1","k"], ["storedist"]],
  [["migrate","k","STORE","3","STREAMS","STREAMS","3","GROUP"], ["3"]],
  [["migrate","BY","KEYS","NOACK","AUTH","GROUP","GROUP","KEYS"], []],
  [["georadius","STORE","storedist","STREAMS","AUTH2","x","STREAMS","2","0","BLOCK"], ["STORE"]],
  [["georadius","AUTH2","STREAMS","BLOCK","3","streams","GET","k","storedist","0"], ["AUTH2","0"]],
  [["georadius","NOACK","x","storedist","3","","0","0"], ["NOACK"]],
  [["georadiusbymember","2","GET","COUNT","STREAMS","2"], ["2"]],
  [["georadiusbymember","AUTH2","","KEYS","STREAMS","0","STREAMS","x","x"], ["AUTH2"]],
  [["georadiusbymember","GET","AUTH2","streams","BLOCK"], ["GET"]],
  [["xread","NOACK","GET","BLOCK","streams","1"], []],
  [["xread","GROUP","k","GET","BLOCK","NOACK","k"], []],
  [["xread","GROUP","BY","3","0","COUNT"], []],
  [["xreadgroup","NOACK","AUTH","k","GET","1","COUNT","3","k"], []],
  [["xreadgroup","AUTH2","2","0","NOACK","storedist","BLOCK","storedist"], []],
  [["xreadgroup","x","x","0","BY","0","AUTH","k","0","3","LIMIT"], []],
  [["eval","COUNT","AUTH","BY","storedist","STORE","AUTH"], []],
  [["eval","2","streams","x","NOACK","GET"], []],
  [["eval","0","STREAMS","NOACK"], []],
  [["zunionstore","GET","2","2","BY","BY"], ["GET","2","BY"]],
  [["zunionstore","2","3","3"], []],
  [["zunionstore","STREAMS","x",""], []],
  [["zinter","KEYS","AUTH","GET"], []],
  [["zinter","1","LIMIT"], ["LIMIT"]],
  [["zinter","KEYS","BY"], []],
  [["lmpop","COUNT","KEYS","GET","2","COUNT"], []],
  [["lmpop","2","1","k","GROUP"], ["1","k"]],
  [["lmpop","0","COUNT","storedist","streams","KEYS","x",""], []],
  [["blmpop","COUNT","0","streams","NOACK","GROUP"], []],
  [["blmpop","x","2","3","BLOCK","COUNT","1","LIMIT"], ["3","BLOCK"]],
  [["blmpop","2","GET","storedist","KEYS"], []],
  [["sintercard","1","3","AUTH","BLOCK","GROUP"], ["3"]],
  [["sintercard","STORE","1","BY","STORE","AUTH2","AUTH"], []],
  [["sintercard","COUNT","GET","k","STORE","STORE","AUTH2"], []],
  [["bzmpop","3","2","1","AUTH2","0","STORE","NOACK"], ["1","AUTH2"]],
  [["bzmpop","BY","KEYS","","KEYS"], []],
  [["bzmpop","","BY","NOACK","","1","1","0","3"], []],
  [["fcall_ro","GROUP","AUTH","BLOCK","BY"], []],
  [["fcall_ro","0","streams","NOACK","KEYS","GET"], []],
  [["fcall_ro","GET","streams","k"], []],
  [["zdiffstore","GET","GROUP","2","STREAMS"], []],
  [["zdiffstore","x","BY","GET","storedist","AUTH2"], []],
  [["zdiffstore","0","3","streams"], []],
];

const KNOWN_FLAGS = new Set([
  'admin', 'allow_busy', 'asking', 'blocking', 'denyoom', 'fast', 'loading', 'movablekeys', 'no_async_loading', 'no_auth',
  'no_mandatory_keys', 'no_multi', 'noscript', 'pubsub', 'readonly', 'skip_monitor', 'skip_slowlog', 'stale', 'write',
]);
const KNOWN_KEY_FLAGS = new Set(['RO', 'RW', 'OW', 'RM', 'access', 'update', 'insert', 'delete', 'not_key', 'incomplete', 'variable_flags']);

describe('command table (generated from redis-server COMMAND)', () => {
  test('every entry has the expected shape', () => {
    assert.match(commandTableSource, /^redis-server 7\.\d+\.\d+: COMMAND, COMMAND DOCS$/);
    const all = [...allCommands()];
    const top = all.filter((c) => !c.name.includes('|'));
    assert.equal(top.length, 240, 'COMMAND COUNT of redis-server 7.0.15');
    for (const c of all) {
      assert.match(c.name, /^[A-Z_\-]+(\|[A-Z_\-]+)?$/, c.name);
      assert.ok(Number.isInteger(c.arity) && c.arity !== 0, c.name);
      for (const f of c.flags) assert.ok(KNOWN_FLAGS.has(f), `${c.name} flag ${f}`);
      assert.ok(Number.isInteger(c.firstKey) && Number.isInteger(c.lastKey) && Number.isInteger(c.step), c.name);
      assert.ok(c.firstKey >= 0 && c.step >= 0, c.name);
      assert.ok(c.acl.length > 0 && c.acl.every((a) => /^[a-z]+$/.test(a)), c.name);
      assert.equal(typeof c.group, 'string', c.name);
      assert.ok(c.readonly === false || c.write === false, `${c.name} is not both readonly and write`);
      for (const s of c.keySpecs) {
        for (const f of s.flags) assert.ok(KNOWN_KEY_FLAGS.has(f), `${c.name} key flag ${f}`);
        const bs = s.beginSearch;
        if (bs.type === 'index') assert.ok(bs.index >= 1, c.name);
        else if (bs.type === 'keyword') assert.ok(bs.keyword.length > 0 && bs.startFrom !== 0, c.name);
        else assert.equal(bs.type, 'unknown');
        const fk = s.findKeys;
        if (fk.type === 'range') assert.ok(fk.keyStep >= 1 && fk.limit >= 0, c.name);
        else if (fk.type === 'keynum') assert.ok(fk.keyNumIdx >= 0 && fk.firstKey >= 1 && fk.keyStep >= 1, c.name);
        else assert.equal(fk.type, 'unknown');
      }
      // The legacy range and the specs agree on whether there are keys.
      if (c.firstKey > 0) assert.ok(c.keySpecs.length > 0, c.name);
      if (c.subcommands !== null) {
        assert.ok(c.subcommands.size > 0);
        for (const [sub, info] of c.subcommands) {
          assert.equal(info.name, `${c.name}|${sub}`);
          assert.equal(commandInfo(info.name), info);
          assert.ok(Math.abs(info.arity) >= 2, info.name);
        }
      }
      if (c.name.includes('|')) assert.notEqual(commandInfo(c.name.split('|')[0])?.subcommands, null);
    }
  });

  test('flags a router decides on', () => {
    const info = (n: string) => {
      const i = commandInfo(n);
      assert.ok(i, n);
      return i;
    };
    assert.equal(info('GET').readonly, true);
    assert.equal(info('GET').fast, true);
    assert.equal(info('SET').write, true);
    assert.equal(info('SET').denyOom, true);
    assert.equal(info('BLPOP').blocking, true);
    assert.equal(info('XREAD').blocking, true);
    assert.equal(info('SUBSCRIBE').pubsub, true);
    assert.equal(info('CONFIG|SET').admin, true);
    assert.equal(info('PING').noKeys, true);
    assert.equal(info('EVAL').movableKeys, true);
    assert.equal(info('EVAL').noMandatoryKeys, true);
    assert.equal(info('SORT').keysNeedProc, true);
    assert.equal(info('MULTI').noScript, true);
    assert.equal(info('AUTH').noAuth, true);
    assert.equal(info('DBSIZE').requestPolicy, 'all_shards');
    assert.equal(info('DBSIZE').responsePolicy, 'agg_sum');
    assert.equal(info('KEYS').requestPolicy, 'all_shards');
    assert.equal(info('SCAN').requestPolicy, 'special');
    assert.equal(info('GET').requestPolicy, null);
    assert.equal(info('RANDOMKEY').nondeterministicOutput, true);
    assert.equal(info('GEORADIUS').deprecated, true);
    assert.equal(info('GET').arity, 2);
    assert.equal(info('GET').arityOk(2), true);
    assert.equal(info('GET').arityOk(3), false);
    assert.equal(info('MSET').arityOk(5), true);
    assert.equal(info('MSET').arityOk(2), false);
  });
});

describe('resolveCommand', () => {
  test('subcommands, unknown names', () => {
    assert.equal(resolveCommand(cmd('object', 'encoding', 'k'))?.name, 'OBJECT|ENCODING');
    assert.equal(resolveCommand(cmd('OBJECT'))?.name, 'OBJECT');
    assert.equal(resolveCommand(cmd('OBJECT', 'NOPE', 'k')), undefined);
    assert.equal(resolveCommand(cmd('NOSUCH', 'x')), undefined);
    assert.equal(resolveCommand(cmd('get', 'k'))?.name, 'GET');
  });
});

describe('extractKeys', () => {
  for (const [args, keys] of GETKEYS) {
    test(args.join(' '), () => {
      assert.deepEqual(keysOf(args), keys);
    });
  }

  test('random argument vectors agree with COMMAND GETKEYS', () => {
    for (const [args, keys] of GETKEYS_RANDOM) assert.deepEqual(keysOf(args), keys, JSON.stringify(args));
  });

  test('wrong arity, unknown command or subcommand: no keys', () => {
    assert.deepEqual(keysOf(['GET']), []);
    assert.deepEqual(keysOf(['GET', 'a', 'b']), []);
    assert.deepEqual(keysOf(['NOSUCH', 'a']), []);
    assert.deepEqual(keysOf(['OBJECT', 'NOPE', 'k']), []);
    assert.deepEqual(keysOf(['ZUNIONSTORE', 'd', '3', 'a']), []);
    assert.deepEqual(keysOf(['ZUNIONSTORE', 'd', 'x', 'a']), []);
    assert.deepEqual(keysOf(['MIGRATE', 'h', '1', 'k', '0', '10', 'KEYS', 'a']), [], 'KEYS with a non-empty key is a syntax error');
  });

  test('shard channels are returned only when asked (Redis Cluster routes them by slot)', () => {
    const c = cmd('SPUBLISH', 'ch', 'm');
    assert.deepEqual(extractKeys(c), []);
    assert.deepEqual(extractKeys(c, [], { includeNotKeys: true }), [1]);
    assert.deepEqual(extractKeys(cmd('SSUBSCRIBE', 'a', 'b'), [], { includeNotKeys: true }), [1, 2]);
  });

  test('decoded wire commands, a reused output array, firstKeyIndex', () => {
    const decoded: RespCommand[] = [];
    const d = new RespRequestDecoder({ onCommand: (c) => decoded.push(c), onError: assert.fail });
    d.push(Buffer.concat([encodeCommand(['get', 'user:1']), Buffer.from('mset a 1 b 2\r\nPING\r\n'), encodeCommand(['blpop', 'q1', 'q2', '5'])]));
    const out: number[] = [];
    assert.deepEqual(extractKeys(decoded[0], out), [1]);
    assert.equal(extractKeys(decoded[1], out), out);
    assert.deepEqual(out, [1, 3]);
    assert.deepEqual(extractKeys(decoded[2], out), []);
    assert.deepEqual(extractKeys(decoded[3], out), [1, 2]);
    assert.deepEqual(decoded.map(firstKeyIndex), [1, 1, -1, 1]);
    assert.equal(firstKeyIndex(cmd('EVAL', 's', '1', 'k')), 3);
    assert.equal(firstKeyIndex(cmd('EVAL', 's', '0')), -1);
    assert.equal(firstKeyIndex(cmd('GET')), -1);
    assert.equal(firstKeyIndex(cmd('OBJECT', 'ENCODING', 'k')), 2);
  });
});

describe('blocksConnection', () => {
  test('blocking commands, XREAD only with BLOCK, WAIT', () => {
    assert.equal(blocksConnection(cmd('BLPOP', 'a', '0')), true);
    assert.equal(blocksConnection(cmd('BZMPOP', '1', '1', 'z', 'MIN')), true);
    assert.equal(blocksConnection(cmd('XREAD', 'STREAMS', 'a', '0')), false);
    assert.equal(blocksConnection(cmd('XREAD', 'COUNT', '1', 'BLOCK', '0', 'STREAMS', 'a', '0')), true);
    assert.equal(blocksConnection(cmd('XREAD', 'STREAMS', 'BLOCK', '0')), false, 'BLOCK after STREAMS is a key');
    assert.equal(blocksConnection(cmd('XREADGROUP', 'GROUP', 'g', 'c', 'BLOCK', '10', 'STREAMS', 'a', '>')), true);
    assert.equal(blocksConnection(cmd('WAIT', '1', '0')), true);
    assert.equal(blocksConnection(cmd('GET', 'k')), false);
    assert.equal(blocksConnection(cmd('NOSUCH')), false);
  });
});
