/**
 * Key-to-server distributions, as twemproxy (nutcracker 0.5.0) computes them,
 * and the shard picker the Redis proxy calls per key.
 *
 * ketama (consistent hashing). With n live servers of total weight W, server
 * s gets
 *
 *   points(s) = 4 * floor(weight(s) / W * 160 / 4 * n)
 *
 * evaluated in single-precision float step by step, as twemproxy's C does.
 * It is not exact arithmetic: weights 3,6,7,6,3 give the weight-3 servers
 * 92 points (exactly, 96) and the weight-6 ones 188 (192); nor double: seven
 * equal servers get 160 points each in float, 156 in double. For i = 0 ..
 * points(s)/4 - 1 the string "<name>-<i>" (i in decimal, cut to 272 bytes)
 * is MD5ed and the digest yields four points: its bytes 0-3, 4-7, 8-11 and
 * 12-15, each read little-endian. All points are sorted by value (ties keep
 * the server order below, as glibc's merge-sort qsort does). A key goes to
 * the owner of the first point whose value is >= hash(key), wrapping to the
 * first point past the end.
 *
 * <name> is what twemproxy calls the server's name: the name written after
 * the address ("127.0.0.1:6379:1 redis-a" -> "redis-a"), else "host:port" as
 * written in the config, else just "host" when the port is 11211 (libmemcached
 * compatibility). For a unix socket ("/tmp/r.sock:1") the name is the path
 * followed by a colon: "/tmp/r.sock:". parseTwemproxyServer() derives it.
 *
 * Server order: twemproxy sorts a pool's servers by name when it validates
 * the config (shorter names first, then bytewise), and builds every
 * distribution over that order. It matters to modula (which server owns
 * which residue) and to ketama only for ties. The builders here take servers
 * in config order, walk them in twemproxy's order, and return config indexes.
 *
 * modula: the servers, in twemproxy's order, each repeated weight times; a
 * key goes to entry hash(key) mod W.
 *
 * random: a uniformly random live server per request; weights and the key
 * are ignored (so keys do not stay anywhere: for caches only).
 *
 * Around the distribution (twemproxy's server_pool_idx): a pool of one
 * server always answers that server, without hashing; an empty key (after
 * the hash tag rule) hashes to 0 rather than to hash(""); with a hash tag
 * configured, only the tag's content is hashed (see hash-tag.ts).
 *
 * With auto_eject_hosts, twemproxy rebuilds the distribution from the live
 * servers only (n and W count live ones) while keeping their original
 * indexes: the `live` argument of createShardPicker does the same.
 */
import { createHash } from 'node:crypto';
import { HashTag } from './hash-tag';
import { hashFunctionInt32, isHashName, HASH_NAMES, type CharSignedness, type HashName, type KeyHash } from './hashing';

export type DistributionName = 'ketama' | 'modula' | 'random';
export const DISTRIBUTION_NAMES: readonly DistributionName[] = Object.freeze(['ketama', 'modula', 'random']);

export class ShardingConfigError extends Error {
  readonly code = 'PW_ERR_SHARDING_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ShardingConfigError';
  }
}

/** A server as the distributions see it. */
export interface ShardServer {
  /** twemproxy's server name: what ketama hashes (see parseTwemproxyServer). */
  name: string;
  /** A positive integer. */
  weight: number;
}

/** Maps a key hash to a server index (into the array the distribution was built from). */
export interface Distribution {
  /** hash: 32 bits, as uint32 or as the same bits in an int32. */
  dispatch(hash: number): number;
}

/** Twemproxy's server order: by name, shorter first, then bytewise (its string_compare). Returns config indexes. */
export function twemproxyServerOrder(servers: readonly ShardServer[]): number[] {
  const names = servers.map((s) => Buffer.from(s.name, 'utf8'));
  return servers.map((_, i) => i).sort((a, b) => names[a]!.length - names[b]!.length || Buffer.compare(names[a]!, names[b]!));
}

// ---------------------------------------------------------------- ketama

const KETAMA_POINTS_PER_SERVER = 160;
const KETAMA_POINTS_PER_HASH = 4;
/** twemproxy formats "<name>-<i>" into a 273-byte buffer: longer strings are cut to 272 bytes. */
const KETAMA_MAX_NAME_BYTES = 272;

/**
 * Points a server gets on the ketama continuum, computed in float32 the way
 * twemproxy's C expression is: pct = (float)weight / (float)total, then
 * floorf(pct * 160 / 4 * (float)n + 1e-10) * 4. The 1e-10 is added in double
 * and vanishes when the sum is rounded back to float, so it is a no-op.
 */
export function ketamaPoints(weight: number, totalWeight: number, liveServers: number): number {
  const f = Math.fround;
  const pct = f(f(weight) / f(totalWeight));
  const scaled = f(f(f(pct * KETAMA_POINTS_PER_SERVER) / 4) * f(liveServers));
  return Math.floor(f(scaled + 1e-10)) * KETAMA_POINTS_PER_HASH;
}

/** An immutable ketama continuum: sorted point values and, beside each, its server's index. */
export class KetamaContinuum implements Distribution {
  private constructor(
    /** Point values, ascending. */
    readonly values: Uint32Array,
    /** owners[i]: index of the server that owns values[i]. */
    readonly owners: Uint32Array,
  ) {}

  /**
   * servers: the full list; live: which of them take part (all when omitted).
   * Indexes returned by dispatch() are into `servers`.
   */
  static build(servers: readonly ShardServer[], live?: ArrayLike<boolean>): KetamaContinuum {
    let n = 0;
    let total = 0;
    for (let i = 0; i < servers.length; i++) {
      if (live !== undefined && !live[i]) continue;
      n++;
      total += servers[i]!.weight;
    }
    const values: number[] = [];
    const owners: number[] = [];
    for (const s of twemproxyServerOrder(servers)) {
      if (live !== undefined && !live[s]) continue;
      const server = servers[s]!;
      const groups = ketamaPoints(server.weight, total, n) / KETAMA_POINTS_PER_HASH;
      for (let i = 0; i < groups; i++) {
        let label = Buffer.from(`${server.name}-${i}`, 'utf8');
        if (label.length > KETAMA_MAX_NAME_BYTES) label = label.subarray(0, KETAMA_MAX_NAME_BYTES);
        const d = createHash('md5').update(label).digest();
        for (let x = 0; x < KETAMA_POINTS_PER_HASH; x++) {
          values.push(d.readUInt32LE(4 * x));
          owners.push(s);
        }
      }
    }
    // Sort positions by value; Array#sort is stable, so equal values keep twemproxy's server order.
    const order = values.map((_, i) => i).sort((a, b) => values[a]! - values[b]!);
    const v = new Uint32Array(order.length);
    const o = new Uint32Array(order.length);
    for (let i = 0; i < order.length; i++) {
      v[i] = values[order[i]!]!;
      o[i] = owners[order[i]!]!;
    }
    return new KetamaContinuum(v, o);
  }

  get size(): number {
    return this.values.length;
  }

  /** Owner of the first point >= hash (binary search), wrapping past the last point; -1 on an empty continuum. */
  dispatch(hash: number): number {
    const v = this.values;
    const n = v.length;
    if (n === 0) return -1;
    const h = hash >>> 0;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (v[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === n ? 0 : lo]!;
  }
}

// ---------------------------------------------------------------- modula

/**
 * hash mod total weight, over the servers each repeated weight times. Kept as
 * cumulative weights (searched) rather than a table of W entries, so large
 * weights cost nothing.
 */
export class ModulaDistribution implements Distribution {
  /** ends[j]: cumulative weight through the j-th live server; indexes[j]: its index. */
  private readonly ends: Float64Array;
  private readonly indexes: Uint32Array;
  readonly totalWeight: number;

  constructor(servers: readonly ShardServer[], live?: ArrayLike<boolean>) {
    const ends: number[] = [];
    const indexes: number[] = [];
    let total = 0;
    for (const i of twemproxyServerOrder(servers)) {
      if (live !== undefined && !live[i]) continue;
      total += servers[i]!.weight;
      ends.push(total);
      indexes.push(i);
    }
    this.ends = Float64Array.from(ends);
    this.indexes = Uint32Array.from(indexes);
    this.totalWeight = total;
  }

  dispatch(hash: number): number {
    const n = this.ends.length;
    if (n === 0) return -1;
    const slot = (hash >>> 0) % this.totalWeight;
    // First j with ends[j] > slot.
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid]! > slot) hi = mid;
      else lo = mid + 1;
    }
    return this.indexes[lo]!;
  }
}

// ---------------------------------------------------------------- random

/** A uniformly random live server; the hash is ignored. */
export class RandomDistribution implements Distribution {
  private readonly indexes: Uint32Array;

  constructor(
    servers: readonly ShardServer[],
    live?: ArrayLike<boolean>,
    private readonly rand: () => number = Math.random,
  ) {
    const idx: number[] = [];
    for (const i of twemproxyServerOrder(servers)) if (live === undefined || live[i]) idx.push(i);
    this.indexes = Uint32Array.from(idx);
  }

  dispatch(_hash: number): number {
    const n = this.indexes.length;
    if (n === 0) return -1;
    return this.indexes[Math.floor(this.rand() * n) % n]!;
  }
}

export function createDistribution(
  name: DistributionName,
  servers: readonly ShardServer[],
  live?: ArrayLike<boolean>,
  rand?: () => number,
): Distribution {
  switch (name) {
    case 'ketama':
      return KetamaContinuum.build(servers, live);
    case 'modula':
      return new ModulaDistribution(servers, live);
    case 'random':
      return new RandomDistribution(servers, live, rand);
  }
}

// ---------------------------------------------------------------- the picker

export interface ShardPickerOptions {
  /** twemproxy `hash`; its default is fnv1a_64. */
  hash?: HashName;
  /** twemproxy `distribution`; its default is ketama. */
  distribution?: DistributionName;
  /** twemproxy `hash_tag`: two single-byte characters such as "{}"; none when omitted or null. */
  hashTag?: string | null;
  /**
   * The char signedness of the twemproxy build being replaced: 'signed' for
   * x86 / x86-64 (the default), 'unsigned' for arm64, ppc64el, s390x. It only
   * matters for keys with bytes >= 0x80 under one_at_a_time, the fnv hashes
   * and hsieh.
   */
  chars?: CharSignedness;
  /** For distribution 'random'. */
  random?: () => number;
}

export interface ShardPicker {
  readonly servers: readonly ShardServer[];
  /** Index (into `servers`) of the server for key[start, end); -1 when no server is live. */
  pick(key: Uint8Array, start?: number, end?: number): number;
  /** The hash pick() feeds the distribution (after the hash tag rule; 0 for an empty key). */
  hashKey(key: Uint8Array, start?: number, end?: number): number;
}

class TwemproxyShardPicker implements ShardPicker {
  private readonly single: boolean;

  constructor(
    readonly servers: readonly ShardServer[],
    /** Returns int32 (hashFunctionInt32). */
    private readonly hash: KeyHash,
    private readonly tag: HashTag | null,
    private readonly dist: Distribution,
  ) {
    // twemproxy skips hashing when the pool has one server (live or not).
    this.single = servers.length === 1;
  }

  hashKey(key: Uint8Array, start = 0, end = key.length): number {
    return this.hashInt32(key, start, end) >>> 0;
  }

  pick(key: Uint8Array, start = 0, end = key.length): number {
    if (this.single) return 0;
    return this.dist.dispatch(this.hashInt32(key, start, end));
  }

  /** The hash as int32 so that no heap number is made per key (see hashing.ts). */
  private hashInt32(key: Uint8Array, start: number, end: number): number {
    const tag = this.tag;
    if (tag !== null) {
      tag.apply(key, start, end);
      start = tag.start;
      end = tag.end;
    }
    return end > start ? this.hash(key, start, end) : 0;
  }
}

/**
 * Builds a picker for one set of servers, in config order (and, optionally,
 * which of them are live); pick() returns indexes into that array. The
 * distribution is computed here, once; pick() is a hash and a binary search.
 * Build a new picker when the server set or their health changes.
 */
export function createShardPicker(opts: ShardPickerOptions, servers: readonly ShardServer[], live?: ArrayLike<boolean>): ShardPicker {
  const hashName = opts.hash ?? 'fnv1a_64';
  const distName = opts.distribution ?? 'ketama';
  if (!isHashName(hashName)) throw new ShardingConfigError(`unknown hash ${JSON.stringify(hashName)}; expected one of ${HASH_NAMES.join(', ')}`);
  if (!DISTRIBUTION_NAMES.includes(distName)) {
    throw new ShardingConfigError(`unknown distribution ${JSON.stringify(distName)}; expected one of ${DISTRIBUTION_NAMES.join(', ')}`);
  }
  if (servers.length === 0) throw new ShardingConfigError('a shard picker needs at least one server');
  if (live !== undefined && live.length !== servers.length) {
    throw new ShardingConfigError(`live has ${live.length} entries for ${servers.length} servers`);
  }
  const names = new Set<string>();
  for (const s of servers) {
    if (!Number.isInteger(s.weight) || s.weight <= 0 || s.weight > 0xffffffff) {
      throw new ShardingConfigError(`server ${JSON.stringify(s.name)}: weight must be a positive integer, got ${s.weight}`);
    }
    // twemproxy refuses a pool "with servers with same name"; the name decides the order and the ketama points.
    if (names.has(s.name)) throw new ShardingConfigError(`two servers are named ${JSON.stringify(s.name)}; give them distinct names`);
    names.add(s.name);
  }
  let tag: HashTag | null = null;
  if (opts.hashTag !== undefined && opts.hashTag !== null && opts.hashTag !== '') {
    try {
      tag = new HashTag(opts.hashTag);
    } catch (e) {
      throw new ShardingConfigError((e as Error).message);
    }
  }
  const frozen = Object.freeze(servers.map((s) => Object.freeze({ name: s.name, weight: s.weight })));
  return new TwemproxyShardPicker(frozen, hashFunctionInt32(hashName, opts.chars), tag, createDistribution(distName, frozen, live, opts.random));
}

// ---------------------------------------------------------------- twemproxy server lines

export interface TwemproxyServer {
  /** Host name or address as written (absent for a unix socket). */
  host?: string;
  port?: number;
  /** Unix socket path. */
  path?: string;
  weight: number;
  /** The name written after the address, if any. */
  alias?: string;
  /** What ketama hashes: alias, else "host:port" as written, else "host" for port 11211, else "path:". */
  name: string;
}

/**
 * Parses a twemproxy `servers:` entry, "host:port:weight [name]" or
 * "/path/to/socket:weight [name]", the way twemproxy does: from the end, the
 * name after the last space, then the weight after the last ':', then (not
 * for paths) the port after the next ':'. Throws ShardingConfigError.
 */
export function parseTwemproxyServer(spec: string): TwemproxyServer {
  let rest = spec;
  let alias: string | undefined;
  const sp = rest.lastIndexOf(' ');
  if (sp >= 0) {
    alias = rest.slice(sp + 1);
    rest = rest.slice(0, sp);
  }
  const wc = rest.lastIndexOf(':');
  if (wc < 0) throw new ShardingConfigError(`server ${JSON.stringify(spec)}: expected "host:port:weight [name]" or "/path:weight [name]"`);
  const weightText = rest.slice(wc + 1);
  const weight = /^[0-9]+$/.test(weightText) ? Number(weightText) : NaN;
  if (!Number.isInteger(weight) || weight <= 0) throw new ShardingConfigError(`server ${JSON.stringify(spec)}: weight must be a positive integer`);
  const addr = rest.slice(0, wc);
  if (spec.startsWith('/')) {
    return { path: addr, weight, ...(alias !== undefined ? { alias } : {}), name: alias ?? `${addr}:` };
  }
  const pc = addr.lastIndexOf(':');
  if (pc < 0) throw new ShardingConfigError(`server ${JSON.stringify(spec)}: expected "host:port:weight [name]"`);
  const host = addr.slice(0, pc);
  const portText = addr.slice(pc + 1);
  const port = /^[0-9]+$/.test(portText) ? Number(portText) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ShardingConfigError(`server ${JSON.stringify(spec)}: invalid port`);
  return { host, port, weight, ...(alias !== undefined ? { alias } : {}), name: alias ?? (port === 11211 ? host : addr) };
}
