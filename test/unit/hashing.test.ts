/**
 * Key hashing and sharding as twemproxy does it: the twelve hash functions,
 * hash tags, the Redis Cluster key slot, the ketama / modula / random
 * distributions and the shard picker built from them.
 *
 * Expected values come from three places, never from the code under test:
 * - published check values of the underlying algorithms (CRC-32, CRC16/XMODEM,
 *   FNV, one-at-a-time, lookup3, MD5 via node:crypto), or a BigInt
 *   re-implementation of the definition (64-bit FNV);
 * - twemproxy itself: TWEMPROXY_* tables were produced by nutcracker 0.5.0's
 *   own hashkit sources compiled on x86-64 (and once more with
 *   -funsigned-char for the arm64-style table), and the GOLDEN_* placements by
 *   a running nutcracker 0.5.0 (which redis-server each key landed on);
 * - redis-server 7.0.15's CLUSTER KEYSLOT for the slot table.
 * test/integration/nutcracker-compat.test.ts checks the same against live
 * processes with thousands of random keys.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { HASH_NAMES, crc16, crc32, crc32a, fnv1_32, fnv1_64, fnv1a_32, fnv1a_64, hashFunction, lookup3, md5, md5Digest, oneAtATime, type HashName } from '../../src/routing/hashing';
import { HashTag, HashTagError } from '../../src/routing/hash-tag';
import { CLUSTER_SLOTS, crc16Xmodem, keySlot } from '../../src/routing/redis-slot';
import {
  KetamaContinuum,
  ModulaDistribution,
  RandomDistribution,
  ShardingConfigError,
  createShardPicker,
  ketamaPoints,
  parseTwemproxyServer,
  twemproxyServerOrder,
  type ShardServer,
} from '../../src/routing/ketama';

const b = (s: string) => Buffer.from(s, 'latin1');
const whole = (f: (k: Uint8Array, s: number, e: number) => number, k: Uint8Array) => f(k, 0, k.length);

/** Deterministic key with bytes above 0x7f: byte i = (151 i + 0x83) mod 256. */
function seq(n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 151 + 0x83) & 0xff;
  return out;
}

function keyOf(label: string): Buffer {
  const m = /^seq\((\d+)\)$/.exec(label);
  return m ? seq(Number(m[1])) : Buffer.from(label);
}

// ------------------------------------------------------------------ hash functions

describe('hash functions: published check values', () => {
  test('CRC-32 (crc32a) and libmemcached crc32 of "123456789"', () => {
    assert.equal(whole(crc32a, b('123456789')), 0xcbf43926);
    // libmemcached keeps bits 16..30: (0xcbf43926 >> 16) & 0x7fff.
    assert.equal(whole(crc32, b('123456789')), 0x4bf4);
    assert.equal(whole(crc32a, b('')), 0);
  });

  test('CRC16/XMODEM of "123456789" is 0x31C3; twemproxy crc16 keeps the higher bits too', () => {
    assert.equal(crc16Xmodem(b('123456789')), 0x31c3);
    const t = whole(crc16, b('123456789'));
    assert.equal(t & 0xffff, 0x31c3);
    assert.equal(t, 0x869031c3);
    // After one byte nothing has been shifted out yet; from the second on, bits pile up above bit 15.
    assert.equal(whole(crc16, b('a')), crc16Xmodem(b('a')));
    assert.ok(whole(crc16, b('ab')) > 0xffff);
  });

  test('FNV-1 / FNV-1a 32-bit', () => {
    assert.equal(whole(fnv1a_32, b('')), 0x811c9dc5);
    assert.equal(whole(fnv1a_32, b('a')), 0xe40c292c);
    assert.equal(whole(fnv1_32, b('a')), 0x050c5d7e);
    assert.equal(whole(fnv1a_32, b('foobar')), 0xbf9cf968);
    assert.equal(whole(fnv1_32, b('foobar')), 0x31f0b262);
  });

  test('FNV-1 / FNV-1a 64-bit: the low 32 bits of the 64-bit hash (BigInt reference, bytes widened as signed char)', () => {
    const M = (1n << 64n) - 1n;
    const ref = (key: Buffer, a: boolean): number => {
      let h = 0xcbf29ce484222325n;
      for (const byte of key) {
        const v = BigInt.asUintN(64, BigInt(byte >= 0x80 ? byte - 256 : byte));
        if (a) h = ((h ^ v) * 0x100000001b3n) & M;
        else h = ((h * 0x100000001b3n) & M) ^ v;
      }
      return Number(h & 0xffffffffn);
    };
    assert.equal(whole(fnv1a_64, b('a')), 0x8601ec8c); // FNV-1a 64 "a" = 0xaf63dc4c8601ec8c
    assert.equal(whole(fnv1_64, b('a')), 0x8601b7be); // FNV-1 64 "a" = 0xaf63bd4c8601b7be
    for (const key of [b(''), b('foobar'), seq(1), seq(7), seq(33), randomBytes(64)]) {
      assert.equal(whole(fnv1a_64, key), ref(key, true), key.toString('hex'));
      assert.equal(whole(fnv1_64, key), ref(key, false), key.toString('hex'));
    }
  });

  test("Jenkins' one-at-a-time", () => {
    assert.equal(whole(oneAtATime, b('a')), 0xca2e9442);
    assert.equal(whole(oneAtATime, b('The quick brown fox jumps over the lazy dog')), 0x519e91f5);
  });

  test('lookup3 hashlittle() self-test values; twemproxy jenkins uses initval 13', () => {
    const four = b('Four score and seven years ago');
    assert.equal(lookup3(four, 0, four.length, 0), 0x17770551);
    assert.equal(lookup3(four, 0, four.length, 1), 0xcd628161);
    assert.equal(lookup3(b(''), 0, 0, 0), 0xdeadbeef);
    assert.equal(lookup3(b(''), 0, 0, 0xdeadbeef), 0xbd5b7dde);
    assert.equal(hashFunction('jenkins')(four, 0, four.length), lookup3(four, 0, four.length, 13));
  });

  test('md5 equals node:crypto for every length 0..200, at any offset', () => {
    const out = Buffer.alloc(16);
    for (let n = 0; n <= 200; n++) {
      const buf = randomBytes(n + 7);
      const at = n % 7;
      const want = createHash('md5').update(buf.subarray(at, at + n)).digest();
      md5Digest(buf, at, at + n, out);
      assert.deepEqual(out, want, `length ${n}`);
      assert.equal(md5(buf, at, at + n), want.readUInt32LE(0), `length ${n}`);
    }
    assert.equal(whole(md5, b('abc')), 0x98500190); // digest 900150983cd2...
  });
});

/**
 * From nutcracker 0.5.0's src/hashkit compiled on x86-64 (signed char), in
 * HASH_NAMES order: one_at_a_time, md5, crc16, crc32, crc32a, fnv1_64,
 * fnv1a_64, fnv1_32, fnv1a_32, hsieh, murmur, jenkins.
 */
const TWEMPROXY_SIGNED: Array<[string, number[]]> = [
  ['', [0, 3649838548, 0, 0, 0, 2216829733, 2216829733, 2166136261, 2166136261, 0, 0, 3735928572]],
  ['a', [3392050242, 3111502092, 31879, 26807, 3904355907, 2248259518, 2248273036, 84696446, 3826002220, 2472816263, 1262581116, 3768813200]],
  ['123456789', [3328923845, 2498230565, 2257596867, 19444, 3421780262, 737744598, 600231420, 605325334, 3146166556, 3841726064, 3077965456, 427260662]],
  ['foo:{user42}:bar', [1026075294, 1374482114, 2859259135, 18964, 1242849452, 2579268347, 73081419, 2908615259, 4018464619, 3522408365, 660486250, 1644876040]],
  ['The quick brown fox jumps over the lazy dog', [1369346549, 2642219166, 581169352, 16719, 1095738169, 2112060110, 3890508048, 3922226286, 76545936, 471461527, 818385189, 314054204]],
  ['seq(1)', [3852309287, 72931333, 41451, 9907, 2796764439, 2046707804, 2046684690, 4210270876, 99857458, 1394728050, 2117907181, 3686654865]],
  ['seq(2)', [2611704237, 651956313, 10616240, 11285, 2887065613, 1259664462, 1249605528, 2844326798, 2258934520, 1957199805, 2350526488, 2703560578]],
  ['seq(3)', [4199492408, 657873684, 2717727048, 4217, 276366602, 1801772859, 1882414507, 2405171003, 1407218155, 1466473482, 912357125, 1009817123]],
  ['seq(4)', [442880577, 1245754524, 4248381110, 19136, 1254143540, 2087145737, 2806548665, 3906128297, 2907890585, 867466795, 2869843974, 1243131369]],
  ['seq(5)', [2694053288, 4081778691, 958842934, 26000, 3851424971, 2624671124, 3217023570, 3542911700, 1820557874, 3357471280, 2448693054, 829769230]],
  ['seq(7)', [2018355651, 2867380440, 3362830906, 29913, 1960415066, 555149043, 2676560147, 1930825459, 1066189971, 2392603884, 2410164634, 2834462827]],
  ['seq(11)', [3925848070, 3491530850, 813694983, 1368, 89677142, 4172654795, 3732089555, 2120505355, 2149543763, 151423542, 3933175232, 656189884]],
  ['seq(12)', [1455794235, 932971603, 2147485440, 20495, 1343177489, 2628636913, 4256285833, 49715537, 75251625, 384768745, 1694326384, 3598953163]],
  ['seq(13)', [1807106038, 2523465507, 492473, 22153, 3599353563, 3299210772, 3941495802, 80520468, 778543514, 71633488, 109832315, 2585853642]],
  ['seq(24)', [1829187329, 1864526921, 4073098303, 14672, 3109076672, 4054805309, 1011621013, 3688078301, 1177224309, 663715936, 394336150, 1591297384]],
  ['seq(25)', [2348569847, 1638850613, 3331091333, 2267, 148572131, 1391249164, 2326471258, 350331724, 1749581434, 1553412060, 2437674688, 4137184056]],
  ['seq(64)', [3910511888, 3271264503, 2119422960, 10718, 702457222, 3228246885, 2311455141, 1139040133, 2811899205, 4026072983, 1324372980, 593092173]],
  ['seq(65)', [3519524813, 3672460346, 1406366649, 14629, 958727959, 4128056540, 460667346, 1703042588, 3719618674, 2418738038, 788360956, 3879112636]],
];

/** The same sources built with -funsigned-char (as on arm64), for the hashes that widen a char. */
const UNSIGNED_AFFECTED: HashName[] = ['one_at_a_time', 'fnv1_64', 'fnv1a_64', 'fnv1_32', 'fnv1a_32', 'hsieh'];
const TWEMPROXY_UNSIGNED: Array<[string, number[]]> = [
  ['seq(1)', [340797564, 2248259420, 2248315666, 84696476, 2248906034, 1394728050]],
  ['seq(2)', [638957656, 3035271502, 3059734168, 2390187150, 742116856, 1957199805]],
  ['seq(3)', [3845300517, 1788143419, 3839420331, 3555111739, 3945015787, 3036045656]],
  ['seq(4)', [3935282575, 453306633, 3700557497, 3475776937, 3438119833, 867466795]],
  ['seq(5)', [2644279523, 3914857108, 3424706386, 3414116820, 3757195058, 3357471280]],
  ['seq(7)', [195118288, 1466932211, 2506659347, 973891059, 3624552851, 2392603884]],
  ['seq(11)', [523614524, 1793826763, 1607096275, 3002656011, 1979052627, 151423542]],
  ['seq(12)', [316631818, 2925561329, 3302177673, 3369111633, 86800553, 384768745]],
  ['seq(13)', [2006413145, 1308858388, 1928164346, 1901276948, 1661028762, 71633488]],
  ['seq(24)', [3517978799, 3061875773, 2608714645, 4202424541, 464986485, 663715936]],
  ['seq(25)', [3124694350, 476099340, 919466586, 772772684, 2135576698, 1553412060]],
  ['seq(64)', [148670013, 2979181157, 2183113381, 1266873989, 1578685509, 4026072983]],
  ['seq(65)', [2184681757, 3158647260, 466576594, 1680479004, 655738226, 2418738038]],
];

describe('hash functions: twemproxy reference values', () => {
  test('x86-64 build (signed char), every function, keys of 0..65 bytes with bytes above 0x7f', () => {
    for (const [label, want] of TWEMPROXY_SIGNED) {
      const key = keyOf(label);
      const got = HASH_NAMES.map((name) => hashFunction(name)(key, 0, key.length));
      assert.deepEqual(got, want, label);
    }
  });

  test('unsigned-char build: the six functions that widen a char differ; the others do not', () => {
    for (const [label, want] of TWEMPROXY_UNSIGNED) {
      const key = keyOf(label);
      assert.deepEqual(
        UNSIGNED_AFFECTED.map((name) => hashFunction(name, 'unsigned')(key, 0, key.length)),
        want,
        label,
      );
      for (const name of HASH_NAMES) {
        if (UNSIGNED_AFFECTED.includes(name)) continue;
        assert.equal(hashFunction(name, 'unsigned')(key, 0, key.length), hashFunction(name, 'signed')(key, 0, key.length), `${name} ${label}`);
      }
    }
    // ASCII keys hash the same either way.
    const ascii = b('user:{42}:profile');
    for (const name of HASH_NAMES) assert.equal(hashFunction(name, 'unsigned')(ascii, 0, ascii.length), hashFunction(name)(ascii, 0, ascii.length), name);
  });

  test('hashing a range in place reads nothing outside it', () => {
    for (const [label, want] of TWEMPROXY_SIGNED) {
      const key = keyOf(label);
      for (const fill of [0x00, 0xff, 0x7b]) {
        const frame = Buffer.alloc(key.length + 19, fill);
        key.copy(frame, 11);
        const got = HASH_NAMES.map((name) => hashFunction(name)(frame, 11, 11 + key.length));
        assert.deepEqual(got, want, `${label} in a frame filled with ${fill}`);
      }
    }
  });

  test('unknown names are rejected', () => {
    assert.throws(() => hashFunction('sha1' as HashName), RangeError);
  });
});

// ------------------------------------------------------------------ hash tags and slots

describe('hash tags', () => {
  const tagged = (tag: string, key: string): string => {
    const t = new HashTag(tag);
    const k = b(key);
    t.apply(k, 0, k.length);
    return k.subarray(t.start, t.end).toString('latin1');
  };

  test('the content between the first open and the next close', () => {
    assert.equal(tagged('{}', 'user:{42}:name'), '42');
    assert.equal(tagged('{}', '{a}{b}'), 'a');
    assert.equal(tagged('{}', 'x{{a}}'), '{a');
    assert.equal(tagged('{}', 'a}b{c}'), 'c');
    assert.equal(tagged('[]', 'k[7]'), '7');
  });

  test('no tag, an unclosed tag or an empty first tag: the whole key', () => {
    assert.equal(tagged('{}', 'plain'), 'plain');
    assert.equal(tagged('{}', 'a{b'), 'a{b');
    assert.equal(tagged('{}', 'a{}b'), 'a{}b');
    assert.equal(tagged('{}', '{}{x}'), '{}{x}');
    assert.equal(tagged('{}', ''), '');
  });

  test('the same byte for open and close', () => {
    assert.equal(tagged('$$', 'a$b$c$d'), 'b');
    assert.equal(tagged('$$', 'a$$b'), 'a$$b');
    assert.equal(tagged('::', 'user:42:name'), '42');
  });

  test('within a range of a larger buffer', () => {
    const t = new HashTag('{}');
    const frame = b('{zz}__a{bc}d__{yy}');
    t.apply(frame, 6, 12); // "a{bc}d"
    assert.deepEqual([t.start, t.end], [8, 10]);
    t.apply(frame, 6, 9); // "a{b": unclosed within the range, although a '}' follows it
    assert.deepEqual([t.start, t.end], [6, 9]);
  });

  test('a tag must be two single-byte characters', () => {
    assert.throws(() => new HashTag('{'), HashTagError);
    assert.throws(() => new HashTag('{}}'), HashTagError);
    assert.throws(() => new HashTag('é}'), HashTagError);
  });
});

describe('Redis Cluster key slot', () => {
  /** CLUSTER KEYSLOT answers of redis-server 7.0.15 (keys in hex). */
  const REDIS_SLOTS: Array<[string, number]> = [
    ['', 0],
    ['61', 15495], // a
    ['313233343536373839', 12739], // 123456789
    ['666f6f', 12182], // foo
    ['626172', 5061], // bar
    ['68656c6c6f20776f726c64', 15332], // hello world
    ['7b75736572313030307d2e666f6c6c6f77696e67', 3443], // {user1000}.following
    ['7b75736572313030307d2e666f6c6c6f77657273', 3443], // {user1000}.followers
    ['666f6f7b7d7b6261727d', 8363], // foo{}{bar}: empty first tag, whole key
    ['666f6f7b7b6261727d7d7a6170', 4015], // foo{{bar}}zap: hashes "{bar"
    ['666f6f7b6261727d7b7a61707d', 5061], // foo{bar}{zap}: hashes "bar"
    ['7b7d', 15257], // {}
    ['7b', 4092], // {
    ['7d', 12090], // }
    ['7d7b', 12793], // }{
    ['617b62', 13340], // a{b
    ['617d627b637d', 7365], // a}b{c}
    ['7b617d', 15495], // {a}: same as "a"
    ['787b797a7d', 11548], // x{yz}
    ['7b7d7b617d', 13650], // {}{a}
    ['757365723a7b34327d3a6e616d65', 8000], // user:{42}:name
    ['ff80007b417d', 6373],
    ['7bc3a97d01', 10180],
    ['00', 0],
    ['feedfacedeadbeef', 3724],
  ];

  test('matches CLUSTER KEYSLOT', () => {
    for (const [hex, slot] of REDIS_SLOTS) assert.equal(keySlot(Buffer.from(hex, 'hex')), slot, hex);
  });

  test('in place; random keys against the rule written out with indexOf', () => {
    const frame = b('xx{user1000}.followingyy');
    assert.equal(keySlot(frame, 2, frame.length - 2), 3443);
    const rule = (k: Buffer): number => {
      const o = k.indexOf(0x7b);
      const c = o < 0 ? -1 : k.indexOf(0x7d, o + 1);
      const part = c > o + 1 ? k.subarray(o + 1, c) : k;
      return crc16Xmodem(part) % CLUSTER_SLOTS;
    };
    const alphabet = b('{}ab\xff');
    for (let i = 0; i < 3000; i++) {
      const k = Buffer.from(Array.from(randomBytes(i % 12), (x) => (i % 2 ? alphabet[x % alphabet.length]! : x)));
      assert.equal(keySlot(k), rule(k), k.toString('hex'));
    }
  });
});

// ------------------------------------------------------------------ distributions

const servers = (...spec: Array<[string, number]>): ShardServer[] => spec.map(([name, weight]) => ({ name, weight }));

describe('ketama', () => {
  test('points per server: 4 * floor(weight / total * 40 * n) in float32, as twemproxy computes it', () => {
    assert.deepEqual([1, 2, 3].map((w) => ketamaPoints(w, 6, 3)), [80, 160, 240]);
    assert.deepEqual([100, 50, 7].map((w) => ketamaPoints(w, 157, 3)), [304, 152, 20]);
    // Seven equal servers: in double 1/7 * 40 * 7 = 39.99999... (156 points); twemproxy's float gives 40.
    assert.equal(ketamaPoints(1, 7, 7), 160);
    // Weights 3,6,7,6,3: exactly 24 and 48 groups for weights 3 and 6, but float32 lands just below
    // and floors to 23 and 47 (checked against nutcracker by the integration test).
    assert.deepEqual([3, 6, 7].map((w) => ketamaPoints(w, 25, 5)), [92, 188, 224]);
  });

  test('continuum: md5("<name>-<i>") gives four little-endian points; sorted; sized by weight', () => {
    // Total weight 4 over 3 servers: 4 * floor(w / 4 * 40 * 3) = 120 per unit of weight.
    const ring = KetamaContinuum.build(servers(['alpha', 1], ['beta', 2], ['gamma', 1]));
    assert.equal(ring.size, 120 + 240 + 120);
    for (let i = 1; i < ring.size; i++) assert.ok(ring.values[i - 1]! <= ring.values[i]!);
    const d = createHash('md5').update('beta-0').digest();
    for (let x = 0; x < 4; x++) {
      const v = d.readUInt32LE(4 * x);
      const at = ring.values.indexOf(v);
      assert.ok(at >= 0, `point ${x} of beta-0`);
      assert.equal(ring.owners[at], 1);
    }
    const counts = [0, 0, 0];
    for (const o of ring.owners) counts[o]!++;
    assert.deepEqual(counts, [120, 240, 120]);
  });

  test('dispatch: the owner of the first point >= hash, wrapping after the last', () => {
    const ring = KetamaContinuum.build(servers(['a', 1], ['b', 1], ['c', 1]));
    const n = ring.size;
    for (const i of [0, 1, 57, n - 1]) {
      const v = ring.values[i]!;
      assert.equal(ring.dispatch(v), ring.owners[i], `exactly point ${i}`);
      if (v > 0 && ring.values[i - 1] !== v - 1) assert.equal(ring.dispatch(v - 1), ring.owners[i], `just below point ${i}`);
    }
    assert.equal(ring.dispatch(0), ring.owners[0]);
    if (ring.values[n - 1]! < 0xffffffff) assert.equal(ring.dispatch(0xffffffff), ring.owners[0]);
  });

  test('a 273-byte name buffer: labels longer than 272 bytes are cut', () => {
    const long = 'h'.repeat(300);
    const ring = KetamaContinuum.build(servers([long, 1], ['x', 1]));
    const d = createHash('md5').update(long.slice(0, 272)).digest();
    const at = ring.values.indexOf(d.readUInt32LE(0));
    assert.ok(at >= 0);
    assert.equal(ring.owners[at], 0);
  });

  test('placement by a real nutcracker 0.5.0 (fnv1a_64, hash_tag "{}", servers alpha, beta, gamma)', () => {
    // Which server each key landed on through nutcracker; names make it independent of ports.
    const GOLDEN: Record<string, number> = {
      foo: 2, bar: 2, baz: 2, qux: 2, 'user:1': 2, 'user:2': 2, 'user:3': 2, hello: 1, world: 2, xyzzy: 0,
      '{user42}:a': 2, '{user42}:b': 2, 'a{}b': 2, 'x{y': 2, 'session:9f2c': 2, 'cart:{u7}': 2, k0: 2, k1: 2, k2: 2, k3: 2, k4: 2,
    };
    const picker = createShardPicker({ hash: 'fnv1a_64', distribution: 'ketama', hashTag: '{}' }, servers(['alpha', 1], ['beta', 1], ['gamma', 1]));
    for (const [k, want] of Object.entries(GOLDEN)) assert.equal(picker.pick(b(k)), want, k);
  });

  test('ejecting a server (live mask) moves only its keys when weights are equal', () => {
    const list = servers(['a', 1], ['b', 1], ['c', 1], ['d', 1]);
    const all = createShardPicker({ hash: 'murmur' }, list);
    const live = [true, false, true, true];
    const some = createShardPicker({ hash: 'murmur' }, list, live);
    const subset = createShardPicker({ hash: 'murmur' }, [list[0]!, list[2]!, list[3]!]);
    const remap = [0, 2, 3];
    let moved = 0;
    for (let i = 0; i < 2000; i++) {
      const k = b(`key:${i}`);
      const before = all.pick(k);
      const after = some.pick(k);
      assert.notEqual(after, 1);
      assert.equal(after, remap[subset.pick(k)], 'same as a ring built from the live servers');
      if (before !== 1) assert.equal(after, before, `key:${i} was on a live server`);
      else moved++;
    }
    assert.ok(moved > 300 && moved < 700, `moved ${moved}`);
  });

  test('crc32 (15-bit hashes) on a 32-bit continuum: every key goes to the owner of the lowest point', () => {
    const list = servers(['alpha', 1], ['beta', 1], ['gamma', 1]);
    const ring = KetamaContinuum.build(list);
    assert.ok(ring.values[0]! > 0x7fff);
    const p = createShardPicker({ hash: 'crc32' }, list);
    for (let i = 0; i < 500; i++) assert.equal(p.pick(randomBytes(1 + (i % 30))), ring.owners[0]);
  });

  test('keys spread in proportion to weight', () => {
    const picker = createShardPicker({ hash: 'md5', distribution: 'ketama' }, servers(['a', 1], ['b', 2], ['c', 3]));
    const counts = [0, 0, 0];
    for (let i = 0; i < 30000; i++) counts[picker.pick(b(`k${i}`))]!++;
    const share = counts.map((c) => c / 30000);
    assert.ok(Math.abs(share[0]! - 1 / 6) < 0.04 && Math.abs(share[1]! - 2 / 6) < 0.05 && Math.abs(share[2]! - 3 / 6) < 0.05, share.join(' '));
  });
});

describe('modula', () => {
  test('hash mod total weight over the servers repeated weight times', () => {
    const m = new ModulaDistribution(servers(['a', 2], ['b', 1], ['c', 3]));
    // 0xffffffff mod 6 = 3: c.
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 0xffffffff].map((h) => m.dispatch(h)), [0, 0, 1, 2, 2, 2, 0, 0, 1, 2]);
  });

  test("in twemproxy's server order: names sorted shorter first, then bytewise", () => {
    assert.deepEqual(twemproxyServerOrder(servers(['zeta', 1], ['alpha', 1], ['mid', 1])), [2, 0, 1]);
    assert.deepEqual(twemproxyServerOrder(servers(['127.0.0.1:10000', 1], ['127.0.0.1:6379', 1], ['10.0.0.1:6379', 1])), [2, 1, 0]);
    // zeta(1), alpha(2), mid(3) are used as mid, zeta, alpha: residues 0-2 mid, 3 zeta, 4-5 alpha.
    const m = new ModulaDistribution(servers(['zeta', 1], ['alpha', 2], ['mid', 3]));
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((h) => m.dispatch(h)), [2, 2, 2, 0, 1, 1]);
  });

  test('placement by a real nutcracker 0.5.0 (md5, servers zeta:1, alpha:2, mid:3, no hash tag)', () => {
    const GOLDEN: Record<string, number> = {
      foo: 1, bar: 1, baz: 1, qux: 2, 'user:1': 0, 'user:2': 0, 'user:3': 2, hello: 0, world: 2, xyzzy: 2,
      '{user42}:a': 2, '{user42}:b': 1, 'a{}b': 1, 'x{y': 2, 'session:9f2c': 2, 'cart:{u7}': 1, k0: 2, k1: 2, k2: 0, k3: 0, k4: 0,
    };
    const picker = createShardPicker({ hash: 'md5', distribution: 'modula' }, servers(['zeta', 1], ['alpha', 2], ['mid', 3]));
    for (const [k, want] of Object.entries(GOLDEN)) assert.equal(picker.pick(b(k)), want, k);
  });

  test('live mask: the residues are taken over the live servers only', () => {
    const m = new ModulaDistribution(servers(['a', 2], ['b', 1], ['c', 3]), [true, false, true]);
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((h) => m.dispatch(h)), [0, 0, 2, 2, 2, 0]);
  });
});

describe('random', () => {
  test('a uniformly random live server; weights and the hash are ignored', () => {
    const values = [0, 0.26, 0.51, 0.76, 0.99];
    let i = 0;
    const r = new RandomDistribution(servers(['a', 100], ['b', 1], ['c', 1], ['d', 1]), undefined, () => values[i++]!);
    assert.deepEqual(values.map(() => r.dispatch(123)), [0, 1, 2, 3, 3]);
    const live = new RandomDistribution(servers(['a', 1], ['b', 1]), [false, true], Math.random);
    for (let k = 0; k < 20; k++) assert.equal(live.dispatch(k), 1);
  });
});

// ------------------------------------------------------------------ the picker

describe('createShardPicker', () => {
  test('defaults are twemproxy defaults: fnv1a_64 and ketama', () => {
    const list = servers(['a', 1], ['b', 1], ['c', 1]);
    const d = createShardPicker({}, list);
    const e = createShardPicker({ hash: 'fnv1a_64', distribution: 'ketama' }, list);
    for (let i = 0; i < 200; i++) assert.equal(d.pick(b(`k${i}`)), e.pick(b(`k${i}`)));
  });

  test('one server: always 0, without hashing', () => {
    const p = createShardPicker({ hash: 'md5' }, servers(['only', 5]));
    assert.equal(p.pick(b('anything')), 0);
    assert.equal(p.pick(b('')), 0);
  });

  test('an empty key hashes to 0, not to hash("")', () => {
    const list = servers(['a', 1], ['b', 1], ['c', 1]);
    const p = createShardPicker({ hash: 'md5' }, list);
    assert.equal(p.hashKey(b('')), 0);
    assert.equal(p.pick(b('')), KetamaContinuum.build(list).dispatch(0));
    assert.notEqual(whole(md5, b('')), 0);
  });

  test('the hash tag decides, and related keys share a server', () => {
    const p = createShardPicker({ hash: 'crc32a', hashTag: '{}' }, servers(['a', 1], ['b', 1], ['c', 1]));
    assert.equal(p.hashKey(b('user:{42}:name')), whole(crc32a, b('42')));
    assert.equal(p.hashKey(b('user:{}:name')), whole(crc32a, b('user:{}:name')));
    for (let i = 0; i < 100; i++) assert.equal(p.pick(b(`cart:{u${i}}:items`)), p.pick(b(`profile:{u${i}}`)));
    const frame = b('*2\r\n$3\r\nGET\r\n$14\r\nuser:{42}:name\r\n');
    const at = frame.indexOf('user:');
    assert.equal(p.pick(frame, at, at + 14), p.pick(b('42')));
  });

  test('chars: unsigned matches an unsigned-char twemproxy build', () => {
    const list = servers(['a', 1], ['b', 1], ['c', 1]);
    const s = createShardPicker({ hash: 'fnv1a_32' }, list);
    const u = createShardPicker({ hash: 'fnv1a_32', chars: 'unsigned' }, list);
    const key = seq(3);
    assert.equal(s.hashKey(key), 1407218155);
    assert.equal(u.hashKey(key), 3945015787);
  });

  test('no live server: -1', () => {
    const p = createShardPicker({ distribution: 'modula' }, servers(['a', 1], ['b', 1]), [false, false]);
    assert.equal(p.pick(b('k')), -1);
    const k = createShardPicker({}, servers(['a', 1], ['b', 1]), [false, false]);
    assert.equal(k.pick(b('k')), -1);
  });

  test('configuration errors', () => {
    const list = servers(['a', 1], ['b', 1]);
    const bad = (f: () => unknown) => assert.throws(f, (e: unknown) => e instanceof ShardingConfigError && e.code === 'PW_ERR_SHARDING_CONFIG');
    bad(() => createShardPicker({ hash: 'sha1' as HashName }, list));
    bad(() => createShardPicker({ distribution: 'rendezvous' as 'ketama' }, list));
    bad(() => createShardPicker({ hashTag: '{' }, list));
    bad(() => createShardPicker({}, []));
    bad(() => createShardPicker({}, servers(['a', 0], ['b', 1])));
    bad(() => createShardPicker({}, servers(['a', 1.5], ['b', 1])));
    bad(() => createShardPicker({}, servers(['a', 1], ['a', 2])));
    bad(() => createShardPicker({}, list, [true]));
  });

  test('the picker keeps its own frozen copy of the servers', () => {
    const list = servers(['a', 1], ['b', 1]);
    const p = createShardPicker({}, list);
    list[0]!.name = 'changed';
    assert.equal(p.servers[0]!.name, 'a');
    assert.ok(Object.isFrozen(p.servers) && Object.isFrozen(p.servers[0]));
  });
});

describe('parseTwemproxyServer', () => {
  test('"host:port:weight": the name is "host:port" as written', () => {
    assert.deepEqual(parseTwemproxyServer('127.0.0.1:6379:1'), { host: '127.0.0.1', port: 6379, weight: 1, name: '127.0.0.1:6379' });
    assert.equal(parseTwemproxyServer('redis-a.local:06380:20').name, 'redis-a.local:06380');
  });

  test('a configured name wins', () => {
    assert.deepEqual(parseTwemproxyServer('10.0.0.5:6379:3 shard-1'), { host: '10.0.0.5', port: 6379, weight: 3, alias: 'shard-1', name: 'shard-1' });
  });

  test('port 11211: the name is the host alone (libmemcached compatibility)', () => {
    assert.equal(parseTwemproxyServer('10.0.0.5:11211:1').name, '10.0.0.5');
  });

  test('unix socket: the name is the path and a trailing colon', () => {
    assert.deepEqual(parseTwemproxyServer('/var/run/redis.sock:2'), { path: '/var/run/redis.sock', weight: 2, name: '/var/run/redis.sock:' });
    assert.equal(parseTwemproxyServer('/var/run/redis.sock:2 r1').name, 'r1');
  });

  test('malformed entries', () => {
    for (const s of ['127.0.0.1:6379', '127.0.0.1:6379:0', '127.0.0.1:x:1', 'host', '127.0.0.1:70000:1', '/sock']) {
      assert.throws(() => parseTwemproxyServer(s), ShardingConfigError, s);
    }
  });
});
