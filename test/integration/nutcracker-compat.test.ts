/**
 * Sharding compatibility with twemproxy: keys written through a real
 * nutcracker (Debian `nutcracker` 0.5.0) must be where Portway's shard picker
 * says they are, for every (hash, distribution, hash_tag) combination, with
 * unequal weights, named servers and unix-socket servers.
 *
 * Setup: five redis-servers on loopback (TCP and a unix socket each), one
 * nutcracker with one pool per combination. Every pool uses its own database
 * (`redis_db`) on the same servers so that pools do not mix. The same few
 * thousand keys (random binary ones, hash-tagged ones, the empty key) are SET
 * through every pool; then each redis-server is asked directly (KEYS * in each
 * database) which keys it holds, and the picker built from the pool's config
 * must name that server for every key.
 *
 * A second suite checks keySlot() against CLUSTER KEYSLOT of a cluster-enabled
 * redis-server for the same keys.
 *
 * Missing binaries are installed from Debian (redis-server, nutcracker) when
 * running as root; otherwise the test fails naming the package. Never skipped.
 * The key set comes from a seeded PRNG; the seed is printed on failure and
 * can be fixed with NUTCRACKER_COMPAT_SEED.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep } from '../helpers/net';
import { ensureDebianBinary } from '../helpers/process';
import { createShardPicker, parseTwemproxyServer, type DistributionName, type ShardPicker } from '../../src/routing/ketama';
import type { HashName } from '../../src/routing/hashing';
import { keySlot } from '../../src/routing/redis-slot';
import { mulberry32 as prng } from '../helpers/random';

// ------------------------------------------------------------------ binaries

/**
 * Resolved (and installed if need be) when the file loads, outside the suites' timeouts: an apt-get
 * install may take minutes. A failure is reported by the suites that need the binary.
 */
function resolveBinary(name: string, pkg: string, path: string): string | Error {
  try {
    return ensureDebianBinary(name, pkg, [path]);
  } catch (e) {
    return e as Error;
  }
}
const REDIS_SERVER = resolveBinary('redis-server', 'redis-server', '/usr/bin/redis-server');
const NUTCRACKER = resolveBinary('nutcracker', 'nutcracker', '/usr/sbin/nutcracker');

function binary(b: string | Error): string {
  if (b instanceof Error) throw b;
  return b;
}

// ------------------------------------------------------------------ processes

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function startChild(bin: string, args: string[]): { proc: ChildProcess; output: () => string } {
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const take = (b: Buffer) => (out = (out + b.toString()).slice(-4000));
  proc.stdout!.on('data', take);
  proc.stderr!.on('data', take);
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return { proc, output: () => out };
}

async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGKILL');
  await gone;
}

function canConnect(target: { port: number } | { path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const s = 'path' in target ? connect(target.path) : connect(target.port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

async function waitListening(what: string, target: { port: number } | { path: string }, proc: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(target))) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}): ${output()}`);
    if (Date.now() > deadline) throw new Error(`${what} not listening after 10 s: ${output()}`);
    await sleep(20);
  }
}

// ------------------------------------------------------------------ a minimal RESP2 client

type Reply = string | number | Buffer | null | Error | Reply[];

/** Parses one RESP2 reply at buf[pos]; null when incomplete. */
function parseReply(buf: Buffer, pos: number): { value: Reply; next: number } | null {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const line = buf.toString('latin1', pos + 1, eol);
  switch (buf[pos]) {
    case 0x2b: // +
      return { value: line, next: eol + 2 };
    case 0x2d: // -
      return { value: new Error(line), next: eol + 2 };
    case 0x3a: // :
      return { value: Number(line), next: eol + 2 };
    case 0x24: {
      // $
      const n = Number(line);
      if (n < 0) return { value: null, next: eol + 2 };
      if (buf.length < eol + 2 + n + 2) return null;
      return { value: Buffer.from(buf.subarray(eol + 2, eol + 2 + n)), next: eol + 2 + n + 2 };
    }
    case 0x2a: {
      // *
      const n = Number(line);
      if (n < 0) return { value: null, next: eol + 2 };
      const items: Reply[] = [];
      let p = eol + 2;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p);
        if (r === null) return null;
        items.push(r.value);
        p = r.next;
      }
      return { value: items, next: p };
    }
    default:
      throw new Error(`bad RESP at ${pos}: ${buf.subarray(pos, pos + 20).toString('latin1')}`);
  }
}

function encodeCommand(args: ReadonlyArray<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Sends all commands pipelined on a new connection; resolves with their replies in order. */
function pipeline(target: { port: number } | { path: string }, commands: ReadonlyArray<ReadonlyArray<string | Buffer>>): Promise<Reply[]> {
  return new Promise((resolve, reject) => {
    const s: Socket = 'path' in target ? connect(target.path) : connect(target.port, '127.0.0.1');
    const replies: Reply[] = [];
    let pending: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => (s.destroy(), reject(new Error(`pipeline: ${replies.length}/${commands.length} replies after 20 s`))), 20_000);
    s.on('error', (e) => (clearTimeout(timer), reject(e)));
    s.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let pos = 0;
      for (;;) {
        const r = parseReply(pending, pos);
        if (r === null) break;
        replies.push(r.value);
        pos = r.next;
      }
      pending = pending.subarray(pos);
      if (replies.length >= commands.length) {
        clearTimeout(timer);
        s.end();
        resolve(replies);
      }
    });
    s.on('connect', () => s.write(Buffer.concat(commands.map(encodeCommand))));
  });
}

// ------------------------------------------------------------------ keys

const SEED = process.env.NUTCRACKER_COMPAT_SEED ? Number(process.env.NUTCRACKER_COMPAT_SEED) : (Date.now() ^ process.pid) >>> 0;

/** Random binary keys, keys with hash tags of every style used below (empty, unclosed, repeated), and the empty key. */
function makeKeys(seed: number): Buffer[] {
  const rand = prng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const bytes = (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  const ascii = (n: number) => Buffer.from(Array.from({ length: n }, () => 'abcdefghijklmnopqrstuvwxyz0123456789:_'[int(38)]).join(''));
  const piece = () => (rand() < 0.5 ? bytes(int(8)) : ascii(int(10)));
  const tags = ['{}', '$$', '::', '[]'];
  const keys: Buffer[] = [Buffer.alloc(0)];
  for (let i = 0; i < 1500; i++) keys.push(bytes(1 + int(40)));
  for (let i = 0; i < 600; i++) keys.push(Buffer.from(`user:${int(100000)}:${['name', 'email', 'cart'][int(3)]}`));
  for (let i = 0; i < 1200; i++) {
    const [o, c] = tags[int(tags.length)]!;
    const shape = int(6);
    const parts: Buffer[] = [piece()];
    if (shape === 0) parts.push(Buffer.from(o! + c!), piece()); // empty tag
    else if (shape === 1) parts.push(Buffer.from(o!), piece()); // unclosed
    else if (shape === 2) parts.push(Buffer.from(o! + c! + o!), ascii(1 + int(4)), Buffer.from(c!)); // empty first tag, then a full one
    else parts.push(Buffer.from(o!), rand() < 0.3 ? bytes(1 + int(6)) : ascii(1 + int(8)), Buffer.from(c!), piece());
    keys.push(Buffer.concat(parts));
  }
  const seen = new Set<string>();
  return keys.filter((k) => {
    const h = k.toString('hex');
    if (seen.has(h)) return false;
    seen.add(h);
    return true;
  });
}

// ------------------------------------------------------------------ pools

interface PoolCase {
  hash: HashName;
  distribution: DistributionName;
  hashTag?: string;
  /** Which redis-servers, in order; an index may repeat only with aliases. */
  redis: number[];
  weights: number[];
  /** twemproxy server names ("host:port:weight name"). */
  aliases?: string[];
  /** Address servers by their unix socket path instead of host:port. */
  unix?: boolean;
}

const ALL_HASHES: HashName[] = ['one_at_a_time', 'md5', 'crc16', 'crc32', 'crc32a', 'fnv1_64', 'fnv1a_64', 'fnv1_32', 'fnv1a_32', 'hsieh', 'murmur', 'jenkins'];
const WEIGHT_SETS = [
  [1, 2, 3],
  [5, 3, 1],
  [100, 50, 7],
  [1, 1, 1],
];
const TAGS: Array<string | undefined> = ['{}', '$$', '::', undefined];

const POOLS: PoolCase[] = [
  ...ALL_HASHES.map((hash, i): PoolCase => ({ hash, distribution: 'ketama', hashTag: TAGS[i % TAGS.length], redis: [0, 1, 2], weights: WEIGHT_SETS[i % WEIGHT_SETS.length]! })),
  ...ALL_HASHES.map((hash, i): PoolCase => ({ hash, distribution: 'modula', hashTag: TAGS[(i + 1) % TAGS.length], redis: [0, 1, 2], weights: WEIGHT_SETS[(i + 1) % WEIGHT_SETS.length]! })),
  // Weights where twemproxy's float arithmetic gives the weight-3 servers 92 points, not the exact 96.
  { hash: 'fnv1a_64', distribution: 'ketama', hashTag: '{}', redis: [0, 1, 2, 3, 4], weights: [3, 6, 7, 6, 3] },
  // Seven equal servers: double arithmetic would give 156 points each, twemproxy's float gives 160.
  { hash: 'murmur', distribution: 'ketama', hashTag: '{}', redis: [0, 1, 2, 3, 4, 0, 1], weights: [1, 1, 1, 1, 1, 1, 1], aliases: ['s0', 's1', 's2', 's3', 's4', 's5', 's6'] },
  // Named servers: ketama hashes the names, not the addresses.
  { hash: 'fnv1a_64', distribution: 'ketama', hashTag: '{}', redis: [0, 1, 2], weights: [1, 1, 1], aliases: ['alpha', 'beta', 'gamma'] },
  { hash: 'md5', distribution: 'modula', hashTag: '[]', redis: [2, 0, 1], weights: [2, 2, 1], aliases: ['cache-a', 'cache-b', 'cache-c'] },
  // twemproxy orders servers by name (shorter first) before building modula: mid, zeta, alpha.
  { hash: 'crc16', distribution: 'modula', hashTag: '{}', redis: [0, 1, 2], weights: [1, 2, 3], aliases: ['zeta', 'alpha', 'mid'] },
  // Unix sockets: ketama's name is "path:". (nutcracker 0.5.0 never sends SELECT on a unix-socket server
  // connection, because its connect() completes at once and skips the post-connect step, so redis_db is
  // ignored there: this pool uses database 0.)
  { hash: 'md5', distribution: 'ketama', hashTag: '{}', redis: [0, 1, 2], weights: [1, 2, 1], unix: true },
  { hash: 'jenkins', distribution: 'ketama', hashTag: '[]', redis: [3, 4], weights: [2, 3] },
];

/** Each pool its own database; the one unix-socket pool gets 0 (see above). */
function dbOf(p: number): number {
  return POOLS[p]!.unix ? 0 : p + 1;
}

function label(p: PoolCase): string {
  const tag = p.hashTag === undefined ? 'no tag' : `tag ${p.hashTag}`;
  return `${p.distribution} ${p.hash}, ${tag}, weights ${p.weights.join('/')}${p.aliases ? ', named' : ''}${p.unix ? ', unix sockets' : ''}`;
}

// ------------------------------------------------------------------ the suites

describe('shard picker vs a real nutcracker 0.5.0', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'portway-ncx-'));
  const keys = makeKeys(SEED);
  const redis: Array<{ port: number; sock: string; proc: ChildProcess }> = [];
  let nutcracker: ChildProcess | null = null;
  /** Per pool: its server lines, and for every key (by hex) the redis index that holds it. */
  const results: Array<{ lines: string[]; holder: Map<string, number>; setErrors: string[] }> = [];

  before(async () => {
    const redisBin = binary(REDIS_SERVER);
    const ncBin = binary(NUTCRACKER);

    for (let i = 0; i < 5; i++) {
      const port = await freePort();
      const sock = join(dir, `r${i}.sock`);
      const c = startChild(redisBin, [
        '--port', String(port), '--bind', '127.0.0.1', '--unixsocket', sock, '--unixsocketperm', '700',
        '--save', '', '--appendonly', 'no', '--databases', String(POOLS.length + 1), '--dir', dir, '--loglevel', 'warning',
      ]);
      redis.push({ port, sock, proc: c.proc });
      await waitListening(`redis-server ${i}`, { port }, c.proc, c.output);
      await waitListening(`redis-server ${i} (unix)`, { path: sock }, c.proc, c.output);
    }

    const listenPorts: number[] = [];
    let yaml = '';
    for (let p = 0; p < POOLS.length; p++) {
      const pool = POOLS[p]!;
      // freePort() releases the port it found, so two calls can return the same one: nutcracker refuses two pools on one port.
      let port = await freePort();
      while (listenPorts.includes(port) || redis.some((r) => r.port === port)) port = await freePort();
      listenPorts.push(port);
      const lines = pool.redis.map((r, j) => {
        const addr = pool.unix ? redis[r]!.sock : `127.0.0.1:${redis[r]!.port}`;
        return `${addr}:${pool.weights[j]}${pool.aliases ? ` ${pool.aliases[j]}` : ''}`;
      });
      results.push({ lines, holder: new Map(), setErrors: [] });
      yaml += `pool_${p}:\n  listen: 127.0.0.1:${port}\n  hash: ${pool.hash}\n  distribution: ${pool.distribution}\n`;
      if (pool.hashTag !== undefined) yaml += `  hash_tag: ${JSON.stringify(pool.hashTag)}\n`;
      yaml += `  redis: true\n  redis_db: ${dbOf(p)}\n  timeout: 5000\n  auto_eject_hosts: false\n  preconnect: false\n  servers:\n`;
      for (const l of lines) yaml += `    - ${l}\n`;
    }
    const conf = join(dir, 'nutcracker.yml');
    writeFileSync(conf, yaml);
    const check = spawnSync(ncBin, ['-t', '-c', conf], { encoding: 'utf8' });
    assert.equal(check.status, 0, `nutcracker rejected the config: ${check.stdout}${check.stderr}\n${yaml}`);

    const statsPort = await freePort();
    const log = join(dir, 'nutcracker.log');
    const nc = startChild(ncBin, ['-c', conf, '-s', String(statsPort), '-a', '127.0.0.1', '-o', log, '-p', join(dir, 'nutcracker.pid')]);
    nutcracker = nc.proc;
    const ncOutput = () => nc.output() + (existsSync(log) ? readFileSync(log, 'utf8').slice(-4000) : '');
    for (const port of listenPorts) await waitListening('nutcracker', { port }, nc.proc, ncOutput);

    // SET every key through every pool (pipelined, pools in parallel).
    // nutcracker's own server connections sometimes time out in this burst (about 25 pools connect to the same
    // three servers at once; seen in full-suite runs only, whatever the keys): it then fails every request queued
    // on that connection with "ERR Connection timed out". That says nothing about where keys go, so keys failed
    // that way are sent once more; any other failure, or a second timeout, fails the test.
    const sets = keys.map((k) => ['SET', k, 'v']);
    const transient = (r: unknown) => r instanceof Error && /Connection (timed out|refused|reset)/.test(r.message);
    await Promise.all(
      listenPorts.map(async (port, p) => {
        let idx = keys.map((_k, i) => i);
        for (let round = 0; round < 2 && idx.length > 0; round++) {
          if (round > 0) await sleep(500);
          const replies = await pipeline({ port }, idx.map((i) => sets[i]!));
          const again: number[] = [];
          replies.forEach((r, j) => {
            const i = idx[j]!;
            if (r === 'OK') return;
            if (round === 0 && transient(r)) again.push(i);
            else results[p]!.setErrors.push(`${keys[i]!.toString('hex')}: ${r instanceof Error ? r.message : String(r)}`);
          });
          idx = again;
        }
      }),
    );

    // Ask each redis-server directly what it holds, database by database.
    for (let r = 0; r < redis.length; r++) {
      const cmds: string[][] = [];
      for (let p = 0; p < POOLS.length; p++) cmds.push(['SELECT', String(dbOf(p))], ['KEYS', '*']);
      const replies = await pipeline({ port: redis[r]!.port }, cmds);
      for (let p = 0; p < POOLS.length; p++) {
        const list = replies[2 * p + 1];
        assert.ok(Array.isArray(list), `KEYS on redis ${r} db ${dbOf(p)}: ${String(list)}`);
        for (const k of list) {
          const hex = (k as Buffer).toString('hex');
          const prev = results[p]!.holder.get(hex);
          assert.equal(prev, undefined, `pool ${p}: key ${hex} on redis ${prev} and ${r}`);
          results[p]!.holder.set(hex, r);
        }
      }
    }
  });

  after(async () => {
    if (nutcracker) await stopChild(nutcracker);
    await Promise.all(redis.map((r) => stopChild(r.proc)));
    rmSync(dir, { recursive: true, force: true });
  });

  POOLS.forEach((pool, p) => {
    test(label(pool), () => {
      const { lines, holder, setErrors } = results[p]!;
      assert.deepEqual(setErrors.slice(0, 5), [], `SET through nutcracker failed for ${setErrors.length} keys`);
      assert.equal(holder.size, keys.length, 'every key is on exactly one redis-server');
      const servers = lines.map(parseTwemproxyServer);
      const picker: ShardPicker = createShardPicker({ hash: pool.hash, distribution: pool.distribution, hashTag: pool.hashTag ?? null }, servers);
      const mismatches: string[] = [];
      const perServer = new Array<number>(lines.length).fill(0);
      // Each key inside a larger buffer, as the proxy hashes it in place.
      const frame = Buffer.alloc(4096, 0x7b);
      for (const k of keys) {
        k.copy(frame, 100);
        const idx = picker.pick(frame, 100, 100 + k.length);
        perServer[idx]!++;
        const want = holder.get(k.toString('hex'));
        if (pool.redis[idx] !== want) mismatches.push(`${k.toString('hex')}: picker ${idx} (redis ${pool.redis[idx]}), nutcracker redis ${want}`);
      }
      assert.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} of ${keys.length} keys differ (seed ${SEED}; servers ${JSON.stringify(servers.map((s) => s.name))})`);
      // Every server got some keys, so the comparison was not one-sided. Not for ketama with crc32: its
      // 15-bit hashes almost always fall below the first point of the 32-bit continuum, so twemproxy (and
      // we) send nearly every key to the owner of the lowest point (see the unit test).
      if (!(pool.distribution === 'ketama' && pool.hash === 'crc32')) assert.ok(perServer.every((n) => n > 0), `keys per server: ${perServer.join(', ')}`);
    });
  });
});

describe('keySlot vs CLUSTER KEYSLOT of a real redis-server', { timeout: 30_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'portway-slot-'));
  let proc: ChildProcess | null = null;
  let port = 0;

  before(async () => {
    const bin = binary(REDIS_SERVER);
    port = await freePort();
    const c = startChild(bin, [
      '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'),
      '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning',
    ]);
    proc = c.proc;
    await waitListening('redis-server (cluster)', { port }, c.proc, c.output);
  });

  after(async () => {
    if (proc) await stopChild(proc);
    rmSync(dir, { recursive: true, force: true });
  });

  test('every key of the compatibility key set', async () => {
    const keys = [...makeKeys(SEED), ...['{', '}', '{}', '}{', '{}{a}', 'a{b}c{d}', '{{a}}', '{a'].map((s) => Buffer.from(s))];
    const replies = await pipeline({ port }, keys.map((k) => ['CLUSTER', 'KEYSLOT', k]));
    const bad: string[] = [];
    keys.forEach((k, i) => {
      if (keySlot(k) !== replies[i]) bad.push(`${k.toString('hex')}: ${keySlot(k)} vs ${String(replies[i])}`);
    });
    assert.deepEqual(bad.slice(0, 10), [], `${bad.length} of ${keys.length} slots differ (seed ${SEED})`);
  });
});
