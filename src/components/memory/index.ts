/**
 * memory: an in-process, Redis-compatible store behind the 'redis'
 * capability, so the embedded default config serves a working Redis
 * listener with nothing else installed.
 *
 * Commands: strings, keys and TTLs, hashes, lists, sets, PING and ECHO
 * (the table below), answered in RESP2 or RESP3 as the client negotiated,
 * in 16 databases. Replies and errors match redis-server 7.0 byte for byte
 * (test/unit/memory-component.test.ts runs the same commands against a
 * real server); connection commands (HELLO, SELECT, CLIENT ...) belong to
 * the session, blocking commands and everything else get an -ERR naming
 * this component.
 *
 * Design:
 * - Keys, hash fields and set members are latin1 strings (one char per
 *   byte), so binary keys round-trip; string values and list elements are
 *   Buffers copied out of the request.
 * - Keyspaces, hashes and sets keep their elements in dense slots (see
 *   values.ts): O(1) random picks and a stateless SCAN cursor that keeps
 *   redis' guarantee (every element present for the whole scan is
 *   returned).
 * - Expiry is lazy on access plus one unref'd sweep timer for the whole
 *   store sampling keys that carry a TTL (store.ts).
 * - max_keys bounds the key count over all databases. A write that may add
 *   keys beyond it fails with -OOM (eviction: none, the default) or first
 *   evicts random keys (eviction: random, like redis' allkeys-random).
 *   "May add" counts the absent keys a command could create (SET's key,
 *   MSET's keys, LMOVE's destination ...), so at the bound a command that
 *   would in the end create nothing (SET ... XX on a missing key) is refused
 *   too, as redis refuses writes at maxmemory.
 * - Data lives only in process memory. A config reload keeps it (the
 *   cluster is reused) unless this cluster's own config changed, which
 *   builds a new, empty store.
 *
 * Kept differences from redis: SCAN cursors are slot positions, not
 * redis' reverse-binary bucket cursors, and COUNT counts slots; small
 * hashes and sets are not answered whole in one SCAN step; element order
 * of HGETALL/SMEMBERS/KEYS differs (it is unspecified in redis too);
 * DBSIZE counts expired keys not yet reclaimed, as redis does, but which
 * ones are reclaimed when differs; expiry times past 2^53 ms are kept at
 * double precision; no memory accounting beyond the key count.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ComponentBuildContext, ComponentFactory, ComponentHealth } from '../component';
import type { RedisCommandContext, RedisComponent } from '../redis-component';
import type { ConfigIssue } from '../../config/validate';
import type { RespCommand } from '../../protocols/redis/request-decoder';
import type { RespWriter } from '../../protocols/redis/resp-writer';
import { commandInfo } from '../../protocols/redis/commands';
import { Exec, key, type CommandSpec } from './exec';
import { hashCommands } from './hashes';
import { keyCommands } from './keys';
import { listCommands } from './lists';
import { setCommands } from './sets';
import { MemoryStore, type EvictionPolicy } from './store';
import { stringCommands } from './strings';

export const MemoryConfig = Type.Object(
  {
    max_keys: Type.Optional(
      Type.Integer({
        minimum: 1,
        description: 'Most keys the store holds, over all 16 databases. Unset: no bound.',
      }),
    ),
    eviction: Type.Optional(
      Type.Union([Type.Literal('none'), Type.Literal('random')], {
        default: 'none',
        description: "At max_keys: 'none' fails writes that would add keys with -OOM; 'random' evicts random keys to make room.",
      }),
    ),
  },
  { additionalProperties: false },
);

export type MemoryConfig = Static<typeof MemoryConfig>;

interface Entry extends CommandSpec {
  /** redis' arity: exact count if positive, minimum if negative (the name counts). */
  readonly arity: number;
  /** The wrong-arity error, encoded once. */
  readonly arityError: Buffer;
}

const SUPPORTED = 'strings, hashes, lists, sets, keys, TTL';

/** The command table, by interned upper-case name; arity comes from redis' own COMMAND output. */
const COMMANDS: ReadonlyMap<string, Entry> = (() => {
  const table = new Map<string, Entry>();
  for (const [name, spec] of [...stringCommands, ...keyCommands, ...hashCommands, ...listCommands, ...setCommands]) {
    const info = commandInfo(name);
    if (info === undefined) throw new Error(`memory component: '${name}' is missing from the redis command table`);
    table.set(name, {
      ...spec,
      arity: info.arity,
      arityError: Buffer.from(`-ERR wrong number of arguments for '${name.toLowerCase()}' command\r\n`, 'latin1'),
    });
  }
  return table;
})();

/** Names of the commands the component serves (for docs and tests). */
export const memoryCommandNames: readonly string[] = [...COMMANDS.keys()];

export class MemoryComponent implements RedisComponent {
  readonly type = 'memory';
  readonly capability = 'redis' as const;
  readonly store: MemoryStore;
  private readonly x: Exec;
  /** Reused by the max_keys check of MSET/MSETNX. */
  private readonly absent = new Set<string>();

  constructor(opts: { maxKeys?: number; eviction?: EvictionPolicy; sweepIntervalMs?: number } = {}) {
    this.store = new MemoryStore({ maxKeys: opts.maxKeys ?? 0, eviction: opts.eviction ?? 'none', sweepIntervalMs: opts.sweepIntervalMs });
    this.x = new Exec(this.store);
  }

  execute(cmd: RespCommand, out: RespWriter, ctx: RedisCommandContext): void {
    const e = COMMANDS.get(cmd.name);
    if (e === undefined) return this.unknown(cmd, out);
    const argc = cmd.argc;
    if (e.arity >= 0 ? argc !== e.arity : argc < -e.arity) return void out.raw(e.arityError);
    const db = this.store.dbs[ctx.db];
    if (db === undefined) return void out.error('ERR DB index is out of range');
    const x = this.x;
    x.db = db;
    x.resp = ctx.resp;
    if (e.creates !== 'none' && this.store.maxKeys > 0 && !this.roomFor(e, cmd)) {
      return void out.error(`OOM command not allowed when the key count would exceed 'max_keys' (${this.store.maxKeys})`);
    }
    e.run(x, cmd, out);
  }

  /** The max_keys check: room for the absent keys the command could create. */
  private roomFor(e: Entry, cmd: RespCommand): boolean {
    const store = this.store;
    const most = e.creates === 'pairs' ? (cmd.argc - 1) >> 1 : 1;
    if (store.totalKeys() + most <= store.maxKeys) return true;
    const db = this.x.db;
    let adding = 0;
    if (e.creates === 'first') adding = db.find(key(cmd, 1)) < 0 ? 1 : 0;
    else if (e.creates === 'second') adding = db.find(key(cmd, 2)) < 0 ? 1 : 0;
    else {
      const absent = this.absent;
      absent.clear();
      for (let j = 1; j < cmd.argc; j += 2) {
        const k = key(cmd, j);
        if (db.find(k) < 0) absent.add(k);
      }
      adding = absent.size;
      absent.clear();
    }
    return adding === 0 || store.makeRoom(adding);
  }

  private unknown(cmd: RespCommand, out: RespWriter): void {
    // redis echoes the name as sent, at most 128 bytes.
    const name = cmd.argString(0, 'latin1').slice(0, 128);
    out.error(`ERR unknown command '${name}' for component 'memory' (supported: ${SUPPORTED})`);
  }

  health(): ComponentHealth {
    const perDb: Record<string, number> = {};
    let expiring = 0;
    this.store.dbs.forEach((db, i) => {
      if (db.size > 0) perDb[`db${i}`] = db.size;
      expiring += db.volatileCount;
    });
    return {
      ok: true,
      detail: {
        keys: this.store.totalKeys(),
        expiring,
        databases: perDb,
        max_keys: this.store.maxKeys === 0 ? null : this.store.maxKeys,
        eviction: this.store.eviction,
        expired_keys: this.store.expiredKeys(),
        evicted_keys: this.store.evictedKeys,
      },
    };
  }

  close(): void {
    this.store.close();
  }
}

export const memoryComponent: ComponentFactory<MemoryConfig, MemoryComponent> = {
  type: 'memory',
  capability: 'redis',
  description: `An in-process Redis-compatible store (${SUPPORTED}), 16 databases, RESP2 and RESP3.`,
  schema: MemoryConfig,
  check(config): ConfigIssue[] {
    if (config.eviction === 'random' && config.max_keys === undefined) {
      return [{ path: 'eviction', message: "eviction: random needs max_keys (without a bound nothing is ever evicted)" }];
    }
    return [];
  },
  create(config, ctx: ComponentBuildContext): MemoryComponent {
    const c = new MemoryComponent({ maxKeys: config.max_keys, eviction: config.eviction });
    ctx.metrics.gauge('portway_memory_keys', 'Keys held by a memory component, over all its databases.', { cluster: ctx.cluster }, () => c.store.totalKeys());
    return c;
  },
};
