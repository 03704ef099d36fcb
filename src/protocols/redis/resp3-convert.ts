/**
 * RESP2 -> RESP3 reply conversion, per command.
 *
 * Upstream links speak RESP2; a client that said HELLO 3 must get the reply
 * redis-server 7 would send it. Most replies are the same bytes in both
 * protocols. The ones that differ, and how (checked against redis-server
 * 7.0.15 by test/integration/redis-resp3-diff.test.ts):
 *
 *   nulls            "$-1" / "*-1", at any depth        -> "_"
 *   maps             flat array k1 v1 k2 v2             -> "%"   HGETALL, CONFIG GET, XINFO, LCS IDX,
 *                                                                 MEMORY STATS, COMMAND DOCS, FUNCTION LIST ...
 *   sets             array                              -> "~"   SMEMBERS, SINTER, SUNION, SDIFF, SPOP n,
 *                                                                 flags in COMMAND INFO / DOCS, ACL GETUSER ...
 *   doubles          bulk string "2.5"                  -> ","   ZSCORE, ZINCRBY, ZADD INCR, ZMSCORE,
 *                                                                 GEOPOS and WITHCOORD, MEMORY STATS ratios
 *   score pairs      flat m1 s1 m2 s2                   -> [[m1, ,s1], [m2, ,s2]]   ZRANGE... WITHSCORES,
 *                                                                 ZRANDMEMBER / HRANDFIELD WITH..., ZPOPMIN n
 *   keyed arrays     [[k1, v1], [k2, v2]]               -> %{k1: v1, k2: v2}        XREAD, XREADGROUP
 *   verbatim text    bulk string                        -> "=" txt:  INFO, MEMORY DOCTOR, LATENCY DOCTOR,
 *                                                                 CLIENT INFO / LIST, CLUSTER INFO / NODES, LOLWUT
 *   EXEC             each element as its queued command's reply
 *
 * What cannot be told from a RESP2 reply is not converted: a script's Lua
 * double ({double=...}) arrives as a bulk string, a script that called
 * redis.setresp(3) returns its maps flattened.
 *
 * The hot path stays cheap: RESP2 clients never reach this file; for RESP3
 * clients a command that needs no conversion costs one Map lookup, and a
 * reply with nothing to convert (no nulls) is forwarded as the same bytes.
 */
import type { RespCommand } from './request-decoder';
import { RespType } from './reply-decoder';
import { parseReply, type RespPairs, type RespValue } from './resp-value';
import type { RespWriter } from './resp-writer';
import { RespProtocolError } from './protocol-error';

/** Turns one parsed RESP2 reply into its RESP3 form. Values already in RESP3 form pass unchanged. */
export type Resp3Conv = (v: RespValue) => RespValue;

const NULL3: RespValue = { type: 'null', kind: 'null' };
const NULL3_BYTES = Buffer.from('_\r\n');
const NULL_BULK = Buffer.from('$-1\r\n');
const NULL_ARRAY = Buffer.from('*-1\r\n');

function bad(message: string): RespProtocolError {
  return new RespProtocolError('reply-unexpected', `Protocol error: ${message}`, 'upstream');
}

// --- converters --------------------------------------------------------------

/** Same value; nulls at any depth become "_". */
export const plain: Resp3Conv = (v) => {
  if (v.type === 'null') return v.kind === 'null' ? v : NULL3;
  if (v.type === 'array') return { type: 'array', value: v.value.map(plain) };
  return v;
};

/** Bulk string holding a number -> double (the text is kept, so the bytes match redis' own). */
const double: Resp3Conv = (v) => {
  if (v.type !== 'bulk') return plain(v);
  const text = v.value.toString('latin1');
  const d = text === 'inf' ? Infinity : text === '-inf' ? -Infinity : Number(text);
  if (text.length === 0 || Number.isNaN(d)) return v;
  return { type: 'double', value: d, text };
};

/** Bulk string -> verbatim string "txt". */
const verbatim: Resp3Conv = (v) => (v.type === 'bulk' ? { type: 'verbatim', format: 'txt', value: v.value } : plain(v));

/** Array of elements -> array with each element converted. */
function arrayOf(el: Resp3Conv): Resp3Conv {
  return (v) => (v.type === 'array' ? { type: 'array', value: v.value.map(el) } : plain(v));
}

/** Array -> set. */
function setOf(el: Resp3Conv = plain): Resp3Conv {
  return (v) => (v.type === 'array' ? { type: 'set', value: v.value.map(el) } : plain(v));
}
const set = setOf();

/** Flat array k1 v1 k2 v2 -> map, values converted by `val`. */
function mapOf(val: Resp3Conv = plain): Resp3Conv {
  return (v) => {
    if (v.type !== 'array') return plain(v);
    const a = v.value;
    if (a.length % 2 !== 0) throw bad('odd number of elements for a map');
    const pairs: RespPairs = new Array<[RespValue, RespValue]>(a.length / 2);
    for (let i = 0; i < a.length; i += 2) pairs[i / 2] = [plain(a[i]!), val(a[i + 1]!)];
    return { type: 'map', value: pairs };
  };
}
const map = mapOf();

/** A map whose values are converted by field name (others: `rest`). */
function fields(spec: Record<string, Resp3Conv>, rest: Resp3Conv = plain): Resp3Conv {
  const by = new Map(Object.entries(spec));
  return (v) => {
    if (v.type !== 'array') return plain(v);
    const a = v.value;
    if (a.length % 2 !== 0) throw bad('odd number of elements for a map');
    const pairs: RespPairs = new Array<[RespValue, RespValue]>(a.length / 2);
    for (let i = 0; i < a.length; i += 2) {
      const k = a[i]!;
      const conv = k.type === 'bulk' || k.type === 'simple' ? by.get(k.type === 'bulk' ? k.value.toString('latin1') : k.value) : undefined;
      pairs[i / 2] = [plain(k), (conv ?? rest)(a[i + 1]!)];
    }
    return { type: 'map', value: pairs };
  };
}

/** Flat array a1 b1 a2 b2 -> array of [a, b] pairs. */
function pairsOf(first: Resp3Conv, second: Resp3Conv): Resp3Conv {
  return (v) => {
    if (v.type !== 'array') return plain(v);
    const a = v.value;
    if (a.length % 2 !== 0) throw bad('odd number of elements for pairs');
    const out: RespValue[] = new Array<RespValue>(a.length / 2);
    for (let i = 0; i < a.length; i += 2) out[i / 2] = { type: 'array', value: [first(a[i]!), second(a[i + 1]!)] };
    return { type: 'array', value: out };
  };
}
const scorePairs = pairsOf(plain, double);
const fieldValuePairs = pairsOf(plain, plain);

/** Array converted element by element by position; elements past the list stay plain. */
function tuple(...els: Resp3Conv[]): Resp3Conv {
  return (v) => (v.type === 'array' ? { type: 'array', value: v.value.map((x, i) => (els[i] ?? plain)(x)) } : plain(v));
}

/** Array of [key, value] arrays -> map (XREAD: stream name -> entries). */
function keyedMap(val: Resp3Conv = plain): Resp3Conv {
  return (v) => {
    if (v.type !== 'array') return plain(v);
    const pairs: RespPairs = v.value.map((e) => {
      if (e.type !== 'array' || e.value.length !== 2) throw bad('expected [key, value] pairs');
      return [plain(e.value[0]!), val(e.value[1]!)];
    });
    return { type: 'map', value: pairs };
  };
}

/** Array whose last element, when an array, is converted by `last` (GEO* WITHCOORD items). */
function lastOf(last: Resp3Conv): Resp3Conv {
  return (v) => {
    if (v.type !== 'array') return plain(v);
    const n = v.value.length;
    return { type: 'array', value: v.value.map((x, i) => (i === n - 1 && x.type === 'array' ? last(x) : plain(x))) };
  };
}

/** An empty array becomes an empty set, others go to `conv`. */
function emptyAsSet(conv: Resp3Conv): Resp3Conv {
  return (v) => (v.type === 'array' && v.value.length === 0 ? { type: 'set', value: [] } : conv(v));
}

/** Lazily resolved converter, for recursive shapes (COMMAND DOCS subcommands, COMMAND INFO subcommands). */
function lazy(f: () => Resp3Conv): Resp3Conv {
  let c: Resp3Conv | null = null;
  return (v) => (c ??= f())(v);
}

// --- shapes of composite replies ----------------------------------------------

const coords = arrayOf(double);

/** COMMAND DOCS argument: map, its flags a set, nested arguments likewise. */
const docArgument: Resp3Conv = lazy(() => fields({ flags: set, arguments: arrayOf(docArgument) }));
/** COMMAND DOCS entry: map with doc_flags a set, arguments, subcommands (map of entries). */
const docEntry: Resp3Conv = lazy(() => fields({ doc_flags: set, history: set, arguments: arrayOf(docArgument), subcommands: mapOf(docEntry) }));

/** COMMAND INFO key spec. */
const keySpec = fields({ flags: set, begin_search: fields({ spec: map }), find_keys: fields({ spec: map }) });
/**
 * COMMAND INFO entry: [name, arity, flags, first, last, step, acl categories,
 * tips, key specs, subcommands]; flags, categories, tips and key specs are
 * sets, subcommands an array (an empty set when there are none).
 */
const commandEntry: Resp3Conv = lazy(() => tuple(plain, plain, set, plain, plain, plain, set, set, setOf(keySpec), emptyAsSet(arrayOf(commandEntry))));

/** XINFO STREAM [FULL]. */
const xinfoStream = fields({
  groups: arrayOf(fields({ consumers: arrayOf(map) })),
});

/** FUNCTION LIST entry. */
const functionLibrary = fields({ functions: arrayOf(fields({ flags: set })) });

/** MEMORY STATS: ratios are doubles, db.N a map. */
const memoryStatsValue: Resp3Conv = (v) => (v.type === 'bulk' ? double(v) : v.type === 'array' ? map(v) : plain(v));

/** ACL GETUSER. */
const aclUser = fields({ flags: set, selectors: arrayOf(map) });

/** ACL LOG [count] (not RESET). */
const aclLog = arrayOf(fields({ 'age-seconds': double }));

/** LATENCY HISTOGRAM: command -> {calls, histogram_usec: {bucket: count}}. */
const latencyHistogram = mapOf(fields({ histogram_usec: map }));

/** CLUSTER SLOTS: [[start, end, node ...]], node = [ip, port, id, {hostname ...}]. */
const clusterNode = tuple(plain, plain, plain, map);
const clusterSlots = arrayOf((v) => (v.type === 'array' ? { type: 'array', value: v.value.map((x, i) => (i < 2 ? plain(x) : clusterNode(x))) } : plain(v)));

/** CLUSTER SHARDS: [{slots, nodes: [{...}]}]. */
const clusterShards = arrayOf(fields({ nodes: arrayOf(map) }));

// --- per command -----------------------------------------------------------------

/** True when any argument from `from` on is the word (case-insensitive). */
function hasArg(cmd: RespCommand, from: number, word: string): boolean {
  for (let i = from; i < cmd.argc; i++) if (cmd.argEquals(i, word)) return true;
  return false;
}

/** A converter chosen by the arguments (WITHSCORES, a subcommand ...). */
class Pick {
  constructor(readonly choose: (cmd: RespCommand) => Resp3Conv | null) {}
}
type Entry = Resp3Conv | Pick;

function pick(choose: (cmd: RespCommand) => Resp3Conv | null): Pick {
  return new Pick(choose);
}

function resolve(e: Entry, cmd: RespCommand): Resp3Conv | null {
  return e instanceof Pick ? e.choose(cmd) : e;
}

// Options are looked for after the key and the positional arguments, so a key or member named like an option is not taken for one.
/** ZRANGE key start stop [... WITHSCORES] and the older range commands. */
const rangeWithScores = pick((cmd) => (hasArg(cmd, 4, 'WITHSCORES') ? scorePairs : null));
/** ZUNION / ZINTER / ZDIFF numkeys key ... [WITHSCORES]. */
const setOpWithScores = pick((cmd) => {
  const n = cmd.argc > 1 ? cmd.argInteger(1) : undefined;
  return n !== undefined && n >= 0 && hasArg(cmd, 2 + n, 'WITHSCORES') ? scorePairs : null;
});
/** ZRANDMEMBER key count WITHSCORES. */
const randWithScores = pick((cmd) => (cmd.argc === 4 && cmd.argEquals(3, 'WITHSCORES') ? scorePairs : null));
const geoWithCoord = arrayOf(lastOf(coords));
/** GEORADIUS key lon lat radius unit [...], GEORADIUSBYMEMBER key member radius unit [...]. */
const geoRadius = (from: number) => pick((cmd) => (hasArg(cmd, from, 'WITHCOORD') ? geoWithCoord : null));
/** GEOSEARCH key FROMMEMBER member | FROMLONLAT lon lat ... [WITHCOORD]. */
const geoSearch = pick((cmd) => {
  for (let i = 2; i < cmd.argc; i++) {
    if (cmd.argEquals(i, 'FROMMEMBER')) i++;
    else if (cmd.argEquals(i, 'WITHCOORD')) return geoWithCoord;
  }
  return null;
});
const popScores = pick((cmd) => (cmd.argc >= 3 ? scorePairs : tuple(plain, double)));
const rankWithScore = pick((cmd) => (cmd.argc === 4 ? tuple(plain, double) : null));

/** Subcommand -> converter, for container commands (CONFIG, MEMORY, XINFO ...). */
function sub(table: Record<string, Entry>): Pick {
  const by = new Map(Object.entries(table));
  return pick((cmd) => {
    if (cmd.argc < 2) return null;
    const e = by.get(cmd.argUpper(1));
    return e === undefined ? null : resolve(e, cmd);
  });
}

const allCommands = arrayOf(commandEntry);
const commandSub = sub({ INFO: allCommands, DOCS: mapOf(docEntry), GETKEYSANDFLAGS: arrayOf(tuple(plain, set)) });
const command = pick((cmd) => (cmd.argc === 1 ? allCommands : commandSub.choose(cmd)));

/**
 * Commands whose RESP3 reply differs from their RESP2 reply by more than
 * nulls: a converter, or a Pick that chooses one by the arguments.
 */
const TABLE = new Map<string, Entry>([
  // hashes
  ['HGETALL', map],
  ['HRANDFIELD', pick((cmd) => (cmd.argc === 4 && cmd.argEquals(3, 'WITHVALUES') ? fieldValuePairs : null))],
  // sets
  ['SMEMBERS', set],
  ['SINTER', set],
  ['SUNION', set],
  ['SDIFF', set],
  ['SPOP', pick((cmd) => (cmd.argc >= 3 ? set : null))],
  // sorted sets
  ['ZSCORE', double],
  ['ZINCRBY', double],
  ['ZMSCORE', arrayOf(double)],
  // A member named "incr" may make this pick double for an integer reply, which then passes unchanged.
  ['ZADD', pick((cmd) => (hasArg(cmd, 2, 'INCR') ? double : null))],
  ['ZRANGE', rangeWithScores],
  ['ZRANGEBYSCORE', rangeWithScores],
  ['ZREVRANGE', rangeWithScores],
  ['ZREVRANGEBYSCORE', rangeWithScores],
  ['ZUNION', setOpWithScores],
  ['ZINTER', setOpWithScores],
  ['ZDIFF', setOpWithScores],
  ['ZRANDMEMBER', randWithScores],
  // 7.2: ZRANK / ZREVRANK ... WITHSCORE -> [rank, score]
  ['ZRANK', rankWithScore],
  ['ZREVRANK', rankWithScore],
  ['ZPOPMIN', popScores],
  ['ZPOPMAX', popScores],
  ['BZPOPMIN', tuple(plain, plain, double)],
  ['BZPOPMAX', tuple(plain, plain, double)],
  ['ZMPOP', tuple(plain, arrayOf(tuple(plain, double)))],
  ['BZMPOP', tuple(plain, arrayOf(tuple(plain, double)))],
  // geo
  ['GEOPOS', arrayOf(coords)],
  ['GEORADIUS', geoRadius(6)],
  ['GEORADIUS_RO', geoRadius(6)],
  ['GEORADIUSBYMEMBER', geoRadius(5)],
  ['GEORADIUSBYMEMBER_RO', geoRadius(5)],
  ['GEOSEARCH', geoSearch],
  // strings
  ['LCS', pick((cmd) => (hasArg(cmd, 3, 'IDX') ? map : null))],
  // streams
  ['XREAD', keyedMap()],
  ['XREADGROUP', keyedMap()],
  ['XINFO', sub({ STREAM: xinfoStream, GROUPS: arrayOf(map), CONSUMERS: arrayOf(map) })],
  // server
  ['INFO', verbatim],
  ['LOLWUT', verbatim],
  ['CONFIG', sub({ GET: map })],
  ['MEMORY', sub({ STATS: mapOf(memoryStatsValue), DOCTOR: verbatim, 'MALLOC-STATS': verbatim })],
  ['LATENCY', sub({ DOCTOR: verbatim, GRAPH: verbatim, HISTOGRAM: latencyHistogram })],
  ['COMMAND', command],
  ['CLIENT', sub({ INFO: verbatim, LIST: verbatim, TRACKINGINFO: fields({ flags: set }) })],
  ['FUNCTION', sub({ LIST: arrayOf(functionLibrary), STATS: fields({ running_script: map, engines: mapOf(map) }) })],
  ['ACL', sub({ GETUSER: aclUser, LOG: pick((cmd) => (cmd.argc === 2 || cmd.argInteger(2) !== undefined ? aclLog : null)) })],
  ['MODULE', sub({ LIST: arrayOf(map) })],
  ['CLUSTER', sub({ INFO: verbatim, NODES: verbatim, SLOTS: clusterSlots, SHARDS: clusterShards, LINKS: arrayOf(map) })],
]);

/**
 * The converter for a command's reply to a RESP3 client: null when only
 * nulls may need converting. `tx` tracks MULTI ... EXEC so EXEC's elements
 * are converted as their commands' replies: a command inside the
 * transaction gets a marker that records its converter when the server
 * answers +QUEUED (so commands refused, or answered by Portway itself, take
 * no place in EXEC's reply), and EXEC takes the list.
 */
export function resp3Conversion(cmd: RespCommand, tx: Resp3Transaction): Resp3Conv | null {
  const name = cmd.name;
  const entry = TABLE.get(name);
  let conv: Resp3Conv | null = null;
  if (entry !== undefined) conv = resolve(entry, cmd);
  const list = tx.queued;
  if (list === null) {
    if (name === 'MULTI') tx.queued = [];
    return conv;
  }
  switch (name) {
    case 'EXEC':
      tx.queued = null;
      return (v) => (v.type === 'array' ? { type: 'array', value: v.value.map((x, i) => (list[i] ?? plain)(x)) } : plain(v));
    case 'DISCARD':
    case 'RESET':
      tx.queued = null;
      return conv;
    case 'MULTI':
      return conv; // "MULTI calls can not be nested": the transaction goes on
  }
  const own = conv;
  const marker: Resp3Conv = (v) => {
    if (v.type === 'simple') {
      if (v.value === 'QUEUED') list.push(own);
      return v;
    }
    return own !== null ? own(v) : plain(v);
  };
  QUEUE_MARKERS.add(marker);
  return marker;
}

/** Converters of commands sent inside MULTI: they also see the +QUEUED reply. */
const QUEUE_MARKERS = new WeakSet<Resp3Conv>();
const QUEUED_REPLY = Buffer.from('+QUEUED\r\n');

/** Per-session state for EXEC: the converters of the commands queued since MULTI (null: no transaction). */
export class Resp3Transaction {
  queued: (Resp3Conv | null)[] | null = null;
}

/**
 * A RESP2 reply as a RESP3 client must see it, written with `w` when it
 * changes. `type` is the reply's first byte; conv null means only nulls can
 * differ. A reply that cannot be converted (an unexpected shape) is passed
 * on unchanged.
 */
export function resp3Reply(conv: Resp3Conv | null, buf: Buffer, start: number, end: number, type: number, w: RespWriter): Buffer {
  const raw = buf.subarray(start, end);
  if (type !== RespType.BulkString && type !== RespType.Array) {
    if (type === RespType.SimpleString && conv !== null && QUEUE_MARKERS.has(conv) && raw.equals(QUEUED_REPLY)) conv({ type: 'simple', value: 'QUEUED' });
    return raw;
  }
  if (end - start === 5 && buf[start + 1] === 45 /* - */) return NULL3_BYTES; // $-1 or *-1
  if (type === RespType.Array) {
    // Nulls nested in an aggregate (MGET, EXEC ...) must become "_" too: convert when any may be there.
    const nulls = raw.includes(NULL_BULK) || raw.includes(NULL_ARRAY);
    if (!nulls) {
      if (conv === null) return raw;
      // The common maps and sets (HGETALL, CONFIG GET, SMEMBERS ...): only the header changes.
      if (conv === map || conv === set) return reheaded(raw, conv === map);
    } else if (conv === null) conv = plain;
  } else if (conv === null) return raw;
  else if (conv === double) {
    // ZSCORE, ZINCRBY ...: "$3\r\n1.5\r\n" -> ",1.5\r\n".
    const cr = raw.indexOf(13);
    const text = raw.toString('latin1', cr + 2, raw.length - 2);
    if (text.length > 0 && (text === 'inf' || text === '-inf' || !Number.isNaN(Number(text)))) return Buffer.from(`,${text}\r\n`, 'latin1');
    return raw;
  }
  try {
    w.value(conv(parseReply(buf, start, end)), 3);
    return Buffer.from(w.take());
  } catch {
    w.discard();
    return raw;
  }
}

/** A flat array with a new type byte and count: "%" with half the elements (a map), or "~" (a set). */
function reheaded(raw: Buffer, asMap: boolean): Buffer {
  const cr = raw.indexOf(13);
  const n = Number(raw.toString('latin1', 1, cr));
  if (!Number.isSafeInteger(n) || n < 0 || (asMap && n % 2 !== 0)) return raw;
  const head = asMap ? `%${n / 2}\r\n` : `~${n}\r\n`;
  const out = Buffer.allocUnsafe(head.length + raw.length - cr - 2);
  out.write(head, 0, 'latin1');
  raw.copy(out, head.length, cr + 2);
  return out;
}
