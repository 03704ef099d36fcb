/**
 * What a router needs to know about a Redis command: where its keys are,
 * whether it reads or writes, blocks, subscribes, administers. Built from
 * command-table.json (generated from redis-server 7.0's COMMAND output by
 * gen-command-table.ts), so the runtime needs no server.
 *
 * Key positions follow redis-server's own order of preference
 * (db.c getKeysFromCommandWithSpecs): the key specs, unless one of them is
 * unknown, incomplete or does not fit the arguments; then the command's
 * own key procedure, re-implemented here for SORT, SORT_RO, MIGRATE,
 * GEORADIUS(BYMEMBER), XREAD(GROUP). For the numkeys commands (EVAL,
 * ZUNIONSTORE, LMPOP ...) a numkeys that does not fit means a syntax error
 * and no keys, as in redis. Results were checked against COMMAND GETKEYS
 * of the real server.
 */
import { internCommandNames } from './command-name';
import tableFile from './command-table.json';
import type { BeginSearchJson, CommandTableEntry, CommandTableFile, FindKeysJson, KeySpecJson } from './command-table-types';

/** The arguments of a command, as RespCommand exposes them. */
export interface CommandArgs {
  readonly argc: number;
  /** argv[0], ASCII-uppercased. */
  readonly name: string;
  /** argv[i], ASCII-uppercased. */
  argUpper(i: number): string;
  /** argv[i] equals `upper` ignoring ASCII case. */
  argEquals(i: number, upper: string): boolean;
  /** argv[i] as a string2ll integer, or undefined. */
  argInteger(i: number): number | undefined;
  argLength(i: number): number;
}

/** A key spec with its JSON unpacked into numbers for the hot path. */
interface CompiledSpec {
  readonly bs: 0 | 1 | 2; // index, keyword, unknown
  readonly index: number;
  readonly keyword: string;
  readonly startFrom: number;
  readonly fk: 0 | 1 | 2; // range, keynum, unknown
  readonly lastKey: number;
  readonly keyStep: number;
  readonly limit: number;
  readonly keyNumIdx: number;
  readonly firstKey: number;
  readonly notKey: boolean;
  readonly incomplete: boolean;
}

/** When the specs cannot say, the command's own key procedure. */
type KeyProc = (cmd: CommandArgs, out: number[]) => void;

export type RequestPolicy = 'all_nodes' | 'all_shards' | 'multi_shard' | 'special';
export type ResponsePolicy =
  | 'one_succeeded'
  | 'all_succeeded'
  | 'agg_logical_and'
  | 'agg_logical_or'
  | 'agg_min'
  | 'agg_max'
  | 'agg_sum'
  | 'special';

export class CommandInfo {
  /** "GET", or "OBJECT|ENCODING" for a subcommand. */
  readonly name: string;
  /** Exact argument count if positive, minimum if negative (argv[0] counts). */
  readonly arity: number;
  readonly flags: readonly string[];
  readonly firstKey: number;
  readonly lastKey: number;
  readonly step: number;
  /** ACL categories without '@'. */
  readonly acl: readonly string[];
  readonly tips: readonly string[];
  readonly keySpecs: readonly KeySpecJson[];
  readonly group: string | undefined;
  readonly since: string | undefined;
  readonly deprecated: boolean;
  /** Subcommands by uppercase name (without the parent), or null. */
  readonly subcommands: ReadonlyMap<string, CommandInfo> | null;

  /** Flag readonly: never modifies data; may go to a replica. */
  readonly readonly: boolean;
  /** Flag write: may modify data. */
  readonly write: boolean;
  /** Flag blocking: may block the connection (XREAD/XREADGROUP only with BLOCK; WAIT blocks without the flag). */
  readonly blocking: boolean;
  /** Flag pubsub: SUBSCRIBE, PUBLISH, PUBSUB ... */
  readonly pubsub: boolean;
  /** Flag admin: CONFIG, DEBUG, SHUTDOWN, ... */
  readonly admin: boolean;
  /** Flag movablekeys: key positions depend on the arguments. */
  readonly movableKeys: boolean;
  /** Flag no_mandatory_keys: may run with zero keys (EVAL with numkeys 0). */
  readonly noMandatoryKeys: boolean;
  /** Flag noscript: refused inside scripts. */
  readonly noScript: boolean;
  /** Flag no_multi: refused inside MULTI. */
  readonly noMulti: boolean;
  /** Flag no_auth: allowed before AUTH (AUTH, HELLO). */
  readonly noAuth: boolean;
  readonly fast: boolean;
  readonly denyOom: boolean;
  /** Never any key argument (neither specs, nor legacy range, nor movable keys). */
  readonly noKeys: boolean;
  /** Some key specs are unknown/incomplete: keys come from the command's own procedure. */
  readonly keysNeedProc: boolean;
  /** Cluster hints from the tips: where to send it and how to merge replies. */
  readonly requestPolicy: RequestPolicy | null;
  readonly responsePolicy: ResponsePolicy | null;
  readonly nondeterministicOutput: boolean;

  /** @internal The key specs unpacked for extractKeys(). */
  readonly specs: readonly CompiledSpec[];
  /** @internal The command's own key procedure, used when the specs cannot answer. */
  readonly proc: KeyProc | null;
  /** @internal argv index of the one key when the specs name exactly one at a fixed index (GET, SET, INCR ...), else -1. */
  readonly singleKey: number;

  constructor(name: string, e: CommandTableEntry, subcommands: ReadonlyMap<string, CommandInfo> | null) {
    this.proc = procs.get(name) ?? null;
    this.name = name;
    this.arity = e.arity;
    this.flags = Object.freeze(e.flags.slice());
    this.firstKey = e.firstKey;
    this.lastKey = e.lastKey;
    this.step = e.step;
    this.acl = Object.freeze(e.acl.slice());
    this.tips = Object.freeze(e.tips.slice());
    this.keySpecs = Object.freeze(e.keySpecs);
    this.group = e.group;
    this.since = e.since;
    this.deprecated = e.docFlags?.includes('deprecated') ?? false;
    this.subcommands = subcommands;
    const has = (f: string): boolean => e.flags.includes(f);
    this.readonly = has('readonly');
    this.write = has('write');
    this.blocking = has('blocking');
    this.pubsub = has('pubsub');
    this.admin = has('admin');
    this.movableKeys = has('movablekeys');
    this.noMandatoryKeys = has('no_mandatory_keys');
    this.noScript = has('noscript');
    this.noMulti = has('no_multi');
    this.noAuth = has('no_auth');
    this.fast = has('fast');
    this.denyOom = has('denyoom');
    this.specs = e.keySpecs.map(compileSpec);
    this.keysNeedProc = this.specs.some((s) => s.incomplete || s.bs === 2 || s.fk === 2);
    this.noKeys = e.firstKey === 0 && !this.movableKeys && this.specs.every((s) => s.notKey);
    const s0 = this.specs.length === 1 ? this.specs[0]! : undefined;
    this.singleKey = s0 !== undefined && s0.bs === 0 && s0.fk === 0 && s0.lastKey === 0 && !s0.notKey && !s0.incomplete && s0.index > 0 ? s0.index : -1;
    const tip = (prefix: string): string | null => {
      const t = e.tips.find((x) => x.startsWith(prefix));
      return t === undefined ? null : t.slice(prefix.length);
    };
    this.requestPolicy = tip('request_policy:') as RequestPolicy | null;
    this.responsePolicy = tip('response_policy:') as ResponsePolicy | null;
    this.nondeterministicOutput = e.tips.some((t) => t.startsWith('nondeterministic_output'));
  }

  /** Whether argc (argv[0] included) satisfies the arity, as redis checks before running. */
  arityOk(argc: number): boolean {
    return this.arity >= 0 ? argc === this.arity : argc >= -this.arity;
  }
}

function compileSpec(s: KeySpecJson): CompiledSpec {
  const bs: BeginSearchJson = s.beginSearch;
  const fk: FindKeysJson = s.findKeys;
  return {
    bs: bs.type === 'index' ? 0 : bs.type === 'keyword' ? 1 : 2,
    index: bs.type === 'index' ? bs.index : 0,
    keyword: bs.type === 'keyword' ? bs.keyword.toUpperCase() : '',
    startFrom: bs.type === 'keyword' ? bs.startFrom : 0,
    fk: fk.type === 'range' ? 0 : fk.type === 'keynum' ? 1 : 2,
    lastKey: fk.type === 'range' ? fk.lastKey : 0,
    keyStep: fk.type === 'unknown' ? 1 : fk.keyStep,
    limit: fk.type === 'range' ? fk.limit : 0,
    keyNumIdx: fk.type === 'keynum' ? fk.keyNumIdx : 0,
    firstKey: fk.type === 'keynum' ? fk.firstKey : 0,
    notKey: s.flags.includes('not_key'),
    incomplete: s.flags.includes('incomplete'),
  };
}

// --- key procedures (db.c *GetKeys), for when the specs cannot answer --------

/** SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA] [STORE destination] */
function sortKeys(cmd: CommandArgs, out: number[]): void {
  out.push(1);
  // BY and GET take a pattern, LIMIT two numbers; the last STORE wins.
  // Patterns name other keys only through the sorted values, so they are
  // not key arguments (Redis Cluster refuses patterns outside the key's slot).
  let store = -1;
  for (let i = 2; i < cmd.argc; i++) {
    if (cmd.argEquals(i, 'LIMIT')) i += 2;
    else if (cmd.argEquals(i, 'GET') || cmd.argEquals(i, 'BY')) i += 1;
    else if (cmd.argEquals(i, 'STORE') && i + 1 < cmd.argc) store = i + 1;
  }
  if (store > 0) out.push(store);
}

/** SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA] */
function sortRoKeys(_cmd: CommandArgs, out: number[]): void {
  out.push(1);
}

/**
 * MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
 *         [AUTH password | AUTH2 username password] [KEYS key [key ...]]
 * With KEYS the key argument must be empty; otherwise it is a syntax error
 * and no keys are reported.
 */
function migrateKeys(cmd: CommandArgs, out: number[]): void {
  let first = 3;
  let num = 1;
  for (let i = 6; i < cmd.argc; i++) {
    if (cmd.argEquals(i, 'KEYS')) {
      if (cmd.argLength(3) > 0) {
        num = 0;
      } else {
        first = i + 1;
        num = cmd.argc - first;
      }
      break;
    }
    if (cmd.argEquals(i, 'AUTH')) i += 1;
    else if (cmd.argEquals(i, 'AUTH2')) i += 2;
  }
  for (let k = 0; k < num; k++) out.push(first + k);
}

/** GEORADIUS key lon lat radius unit ... [STORE key] [STOREDIST key]: the last store option wins. */
function georadiusKeys(cmd: CommandArgs, out: number[]): void {
  let stored = -1;
  for (let i = 5; i < cmd.argc; i++) {
    if ((cmd.argEquals(i, 'STORE') || cmd.argEquals(i, 'STOREDIST')) && i + 1 < cmd.argc) {
      stored = i + 1;
      i++;
    }
  }
  out.push(1);
  if (stored > 0) out.push(stored);
}

/**
 * XREAD [COUNT n] [BLOCK ms] STREAMS key ... id ...
 * XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key ... id ...
 * Options are parsed because "STREAMS" may also name the group or a key.
 */
function xreadKeys(cmd: CommandArgs, out: number[]): void {
  let streams = -1;
  for (let i = 1; i < cmd.argc; i++) {
    if (cmd.argEquals(i, 'BLOCK') || cmd.argEquals(i, 'COUNT')) i++;
    else if (cmd.argEquals(i, 'GROUP')) i += 2;
    else if (cmd.argEquals(i, 'NOACK')) continue;
    else if (cmd.argEquals(i, 'STREAMS')) {
      streams = i;
      break;
    } else break;
  }
  if (streams < 0) return;
  const rest = cmd.argc - streams - 1;
  if (rest === 0 || rest % 2 !== 0) return;
  for (let i = streams + 1; i < streams + 1 + rest / 2; i++) out.push(i);
}

const procs: ReadonlyMap<string, KeyProc> = new Map<string, KeyProc>([
  ['SORT', sortKeys],
  ['SORT_RO', sortRoKeys],
  ['MIGRATE', migrateKeys],
  ['GEORADIUS', georadiusKeys],
  ['GEORADIUSBYMEMBER', georadiusKeys],
  ['XREAD', xreadKeys],
  ['XREADGROUP', xreadKeys],
]);

// --- the table --------------------------------------------------------------

const file = tableFile as unknown as CommandTableFile;
const table = new Map<string, CommandInfo>();

for (const [name, e] of Object.entries(file.commands)) {
  if (name.includes('|')) continue;
  let subs: Map<string, CommandInfo> | null = null;
  if (e.subcommands) {
    subs = new Map();
    for (const sub of e.subcommands) {
      const full = `${name}|${sub}`;
      const se = file.commands[full];
      if (se === undefined) throw new Error(`command table: ${full} is listed but missing`);
      const info = new CommandInfo(full, se, null);
      subs.set(sub, info);
      table.set(full, info);
    }
  }
  table.set(name, new CommandInfo(name, e, subs));
}
internCommandNames([...table.keys()].filter((n) => !n.includes('|')));

/** Where the table came from (server version). */
export const commandTableSource: string = file.source;

/** Look a command up by its uppercase name ("GET", or "OBJECT|ENCODING"). */
export function commandInfo(nameUpper: string): CommandInfo | undefined {
  // Pipelines repeat one command: the last answer is kept (names are interned, so the compare is usually one pointer).
  if (nameUpper === lastName) return lastInfo;
  const info = table.get(nameUpper);
  lastName = nameUpper;
  lastInfo = info;
  return info;
}

let lastName = '';
let lastInfo: CommandInfo | undefined;

/** Every entry, subcommands included ("PARENT|SUB"). */
export function allCommands(): IterableIterator<CommandInfo> {
  return table.values();
}

/**
 * The entry that governs this call: the subcommand when the command has
 * subcommands and argv[1] names one, else the command itself. Undefined
 * for an unknown command or subcommand (redis answers "unknown command" /
 * "unknown subcommand").
 */
export function resolveCommand(cmd: CommandArgs): CommandInfo | undefined {
  const info = table.get(cmd.name);
  if (info === undefined || info.subcommands === null || cmd.argc < 2) return info;
  return info.subcommands.get(cmd.argUpper(1));
}

export interface ExtractKeysOptions {
  /**
   * Also return "not_key" positions: the shard channel of SPUBLISH,
   * SSUBSCRIBE and SUNSUBSCRIBE, which Redis Cluster routes by slot like a key.
   */
  includeNotKeys?: boolean;
}

/**
 * Indexes (into argv, the name being 0) of the key arguments of cmd, in
 * key-spec order. Empty for unknown commands, wrong arity, commands
 * without keys, or arguments the server will refuse as a syntax error.
 * Pass `out` to reuse an array on the hot path.
 */
export function extractKeys(cmd: CommandArgs, out: number[] = [], opts?: ExtractKeysOptions): number[] {
  const info = resolveCommand(cmd);
  if (info === undefined || !info.arityOk(cmd.argc)) {
    if (out.length !== 0) out.length = 0;
    return out;
  }
  // Keys are written in place and the length set last: `out.length = 0` then
  // push() would drop the array's backing store and allocate a new one on
  // every request (V8 frees the elements of an array truncated to 0).
  const one = info.singleKey;
  if (one > 0 && one < cmd.argc) {
    out[0] = one;
    // Setting length calls into the runtime even when it does not change it: only set it when it does.
    if (out.length !== 1) out.length = 1;
    return out;
  }
  const n = keysFromSpecs(info, cmd, out, opts?.includeNotKeys === true);
  if (n >= 0) {
    if (out.length !== n) out.length = n;
    return out;
  }
  out.length = 0;
  if (info.proc !== null) info.proc(cmd, out);
  return out;
}

/** The first key index, or -1: enough for single-key routing, without an array. */
export function firstKeyIndex(cmd: CommandArgs): number {
  const info = resolveCommand(cmd);
  if (info === undefined || !info.arityOk(cmd.argc) || info.noKeys) return -1;
  // The common case: one index-based spec of a fixed range.
  const s = info.specs.length === 1 ? info.specs[0] : undefined;
  if (s !== undefined && s.bs === 0 && s.fk === 0 && s.lastKey >= 0 && !s.notKey && !s.incomplete) {
    return s.index < cmd.argc ? s.index : -1;
  }
  const keys = extractKeys(cmd, scratchKeys);
  return keys.length > 0 ? keys[0] : -1;
}
const scratchKeys: number[] = [];

/**
 * Whether this call can hold its connection until something happens
 * elsewhere, so a multiplexing proxy must not send it on a shared upstream
 * connection: commands flagged blocking (XREAD and XREADGROUP only with a
 * BLOCK option), and WAIT, which blocks but is not flagged.
 */
export function blocksConnection(cmd: CommandArgs): boolean {
  const info = resolveCommand(cmd);
  if (info === undefined) return false;
  if (info.name === 'WAIT') return true;
  if (!info.blocking) return false;
  if (info.name === 'XREAD' || info.name === 'XREADGROUP') {
    for (let i = 1; i < cmd.argc; i++) {
      if (cmd.argEquals(i, 'STREAMS')) return false;
      if (cmd.argEquals(i, 'BLOCK')) return true;
    }
    return false;
  }
  return true;
}

/**
 * getKeysUsingKeySpecs() semantics: writes the key indexes to out[0 ..]
 * and returns how many (out's length is the caller's to set). Returns -1
 * when a spec does not fit the arguments (or is unknown/incomplete): the
 * caller then falls back to the command's procedure, as redis does.
 */
function keysFromSpecs(info: CommandInfo, cmd: CommandArgs, out: number[], includeNotKeys: boolean): number {
  const argc = cmd.argc;
  const specs = info.specs;
  let n = 0;
  for (let j = 0; j < specs.length; j++) {
    const s = specs[j];
    if (s.notKey && !includeNotKeys) continue;
    let first = 0;
    if (s.bs === 0) {
      first = s.index;
    } else if (s.bs === 1) {
      // Search forward from startFrom, or backward from argc+startFrom down to 2.
      const forward = s.startFrom > 0;
      const from = forward ? s.startFrom : argc + s.startFrom;
      const to = forward ? argc - 1 : 1;
      for (let i = from; i !== to; i = from <= to ? i + 1 : i - 1) {
        if (i >= argc || i < 1) break;
        if (cmd.argEquals(i, s.keyword)) {
          first = i + 1;
          break;
        }
      }
      // Keyword absent: this spec has no keys, even when marked incomplete.
      if (first === 0) continue;
    } else {
      return -1;
    }
    let last: number;
    let step: number;
    if (s.fk === 0) {
      step = s.keyStep;
      if (s.lastKey >= 0) last = first + s.lastKey;
      else if (s.limit === 0) last = argc + s.lastKey;
      else last = first + (Math.floor((argc - first) / s.limit) + s.lastKey);
    } else if (s.fk === 1) {
      step = s.keyStep;
      const at = first + s.keyNumIdx;
      if (at >= argc) return -1;
      const numkeys = cmd.argInteger(at);
      if (numkeys === undefined || numkeys < 0) return -1;
      first += s.firstKey;
      last = first + (numkeys - 1) * step;
    } else {
      return -1;
    }
    if (last >= argc || last < first || first >= argc) return -1;
    for (let i = first; i <= last; i += step) out[n++] = i;
    if (s.incomplete) return -1;
  }
  return n;
}
