/**
 * Key prefix rewriting on prefix routes: `strip: true` removes the matched
 * prefix from a key, `add: "x:"` puts another in front, so that
 *
 *   client key  "app1:user:7"   route { prefix: "app1:", strip: true, add: "t1:" }
 *   upstream    "t1:user:7"
 *
 * Every key of a command is rewritten by its own route (the longest prefix
 * it matches). Replies that carry key names are mapped back so the client
 * sees its own keys:
 *   - BLPOP, BRPOP, BZPOPMIN, BZPOPMAX, LMPOP, BLMPOP, ZMPOP, BZMPOP (the
 *     key element) and XREAD, XREADGROUP (the stream names): through the
 *     keys the client sent;
 *   - KEYS pattern and SCAN ... MATCH pattern whose pattern begins with a
 *     route's prefix (literally: no glob character inside the prefix) go to
 *     that route's cluster with the pattern rewritten, and the keys found
 *     are mapped back through the route;
 *   - KEYS, SCAN and RANDOMKEY otherwise go where keyless commands go (the
 *     catch-all); when exactly one rewriting route targets that cluster,
 *     keys are mapped back through it (with `add`, only keys that carry the
 *     added prefix).
 */
import type { Cluster } from '../../routing/cluster';
import { RespCommand } from './codec';
import { parseReply, type RespValue } from './resp-value';
import { encodeValue, type RespProtocolVersion } from './resp-writer';

export interface RewriteRoute {
  prefix: Buffer;
  cluster: Cluster;
  strip: boolean;
  /** Added in front; empty when nothing is added. */
  add: Buffer;
}

export interface Rewritten {
  cmd: RespCommand;
  /** The cluster of each key argument's route (argument index -> cluster), as the client's keys matched. */
  clusters: Map<number, Cluster>;
  /** Upstream key (latin1) -> the client's key, for replies that name keys. */
  back: Map<string, Buffer>;
}

/** Replies whose elements name keys, and where. */
const KEY_FIRST = new Set(['BLPOP', 'BRPOP', 'BZPOPMIN', 'BZPOPMAX', 'LMPOP', 'BLMPOP', 'ZMPOP', 'BZMPOP']);
const STREAMS = new Set(['XREAD', 'XREADGROUP']);
const GLOB = /[*?[\\]/;

export class KeyRewriter {
  /** Every prefix route, longest first: the longest match decides, rewriting or not. */
  private readonly routes: RewriteRoute[];

  constructor(routes: RewriteRoute[]) {
    this.routes = [...routes].sort((a, b) => b.prefix.length - a.prefix.length);
  }

  private static rewrites(r: RewriteRoute): boolean {
    return r.strip || r.add.length > 0;
  }

  /** The route of key bytes buf[start, end); null when no prefix matches. */
  route(buf: Buffer, start: number, end: number): RewriteRoute | null {
    const len = end - start;
    for (const r of this.routes) {
      const pl = r.prefix.length;
      if (pl <= len && buf.compare(r.prefix, 0, pl, start, start + pl) === 0) return r;
    }
    return null;
  }

  /** Client key -> upstream key. */
  static forward(r: RewriteRoute, key: Buffer): Buffer {
    const rest = r.strip ? key.subarray(r.prefix.length) : key;
    return r.add.length > 0 ? Buffer.concat([r.add, rest]) : Buffer.from(rest);
  }

  /** Upstream key -> client key (unchanged when it does not carry the added prefix). */
  static back(r: RewriteRoute, key: Buffer): Buffer {
    if (r.add.length > 0 && (key.length < r.add.length || key.compare(r.add, 0, r.add.length, 0, r.add.length) !== 0)) return key;
    const rest = key.subarray(r.add.length);
    return r.strip ? Buffer.concat([r.prefix, rest]) : Buffer.from(rest);
  }

  /** The command with its keys rewritten; null when no key's route rewrites. */
  rewrite(cmd: RespCommand, keys: number[]): Rewritten | null {
    let args: Buffer[] | null = null;
    const clusters = new Map<number, Cluster>();
    const back = new Map<string, Buffer>();
    for (const k of keys) {
      const r = this.route(cmd.buffer, cmd.argStart(k), cmd.argEnd(k));
      if (r === null) continue;
      clusters.set(k, r.cluster);
      if (!KeyRewriter.rewrites(r)) continue;
      if (args === null) args = cmd.args();
      const key = cmd.arg(k);
      const up = KeyRewriter.forward(r, key);
      args[k] = up;
      back.set(up.toString('latin1'), Buffer.from(key));
    }
    if (args === null) return null;
    return { cmd: RespCommand.from(args), clusters, back };
  }

  /**
   * KEYS pattern / SCAN cursor MATCH pattern beginning with a rewriting
   * route's prefix: the command with the pattern rewritten, and that route.
   */
  rewritePattern(cmd: RespCommand): { cmd: RespCommand; route: RewriteRoute } | null {
    let at = -1;
    if (cmd.name === 'KEYS' && cmd.argc === 2) at = 1;
    else if (cmd.name === 'SCAN') {
      for (let i = 2; i + 1 < cmd.argc; i += 2) if (cmd.argEquals(i, 'MATCH')) at = i + 1;
    }
    if (at < 0) return null;
    const r = this.route(cmd.buffer, cmd.argStart(at), cmd.argEnd(at));
    if (r === null || !KeyRewriter.rewrites(r) || GLOB.test(r.prefix.toString('latin1'))) return null;
    const args = cmd.args();
    args[at] = KeyRewriter.forward(r, cmd.arg(at));
    return { cmd: RespCommand.from(args), route: r };
  }

  /** The one rewriting route targeting `cluster`, through which keyless commands' keys come back; null if none or several. */
  clusterRoute(cluster: Cluster): RewriteRoute | null {
    let found: RewriteRoute | null = null;
    for (const r of this.routes) {
      if (r.cluster !== cluster || !KeyRewriter.rewrites(r)) continue;
      if (found !== null) return null;
      found = r;
    }
    return found;
  }

  /** True when the reply of `command` names keys (so it must be mapped back). */
  static namesKeys(command: string): boolean {
    return KEY_FIRST.has(command) || STREAMS.has(command) || command === 'KEYS' || command === 'SCAN' || command === 'RANDOMKEY';
  }
}

/**
 * The reply of `command` with every key name in it passed through `map`.
 * Errors and replies of another shape are returned unchanged.
 */
export function mapReplyKeys(command: string, reply: Buffer, proto: RespProtocolVersion, map: (key: Buffer) => Buffer): Buffer {
  if (reply.length === 0 || reply[0] === 45 /* - */ || reply[0] === 33 /* ! */) return reply;
  let v: RespValue;
  try {
    v = parseReply(reply);
  } catch {
    return reply;
  }
  const key = (e: RespValue | undefined): void => {
    if (e !== undefined && e.type === 'bulk') e.value = map(e.value);
  };
  const list = (e: RespValue | undefined): void => {
    if (e !== undefined && (e.type === 'array' || e.type === 'set')) e.value.forEach(key);
  };
  if (command === 'RANDOMKEY') key(v);
  else if (command === 'KEYS') list(v);
  else if (command === 'SCAN') {
    if (v.type === 'array') list(v.value[1]);
  } else if (KEY_FIRST.has(command)) {
    if (v.type === 'array') key(v.value[0]);
  } else if (STREAMS.has(command)) {
    if (v.type === 'array') for (const e of v.value) if (e.type === 'array') key(e.value[0]);
    if (v.type === 'map') for (const pair of v.value) key(pair[0]);
  } else return reply;
  return encodeValue(v, proto);
}
