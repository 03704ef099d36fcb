/**
 * INFO over shards (a sharded pool or a Redis Cluster): every shard answers
 * INFO [section ...] and the client gets one reply in redis' own layout,
 *
 *   # Section\r\n  field:value\r\n ...  \r\n  # Next section ...
 *
 * merged field by field:
 *   - Server is Portway's own: what the client is connected to (redis_mode
 *     standalone, Portway's pid, port and uptime), with redis_version of the
 *     first shard and the shard count;
 *   - text equal on every shard is kept as is;
 *   - integers are summed (keys, memory, connections, commands processed),
 *     except flags, timestamps, durations and recent maxima, where the largest
 *     wins (loading, *_in_progress, *_enabled, *_time, rdb_last_*,
 *     client_recent_max_* ...);
 *   - decimals are summed for CPU seconds and instantaneous rates, averaged
 *     otherwise (ratios, percentages);
 *   - "a=1,b=2" values (db0:keys=..,expires=..,avg_ttl=..; cmdstat_*,
 *     errorstat_*, latency_percentiles_*) are merged per sub-field the same
 *     way: summed, avg_ttl weighted by expiring keys, usec_per_call
 *     recomputed from usec / calls, percentiles the largest;
 *   - *_human fields are recomputed from their summed byte counts;
 *   - other text that differs between shards is listed, comma-separated;
 *   - cluster_enabled is 0: the client talks to Portway as to one server.
 * A shard that fails is left out (proxy_shards_failed counts them), so that
 * clients whose connect-time ready check sends INFO still connect.
 */
import { release } from 'node:os';

export interface InfoContext {
  listener: string;
  /** The listener's port, as the client connected to it. */
  port: number;
}

type Section = { name: string; fields: Map<string, string[]> };

/** The text of a bulk (or verbatim) string reply; null for anything else. */
function bulkText(reply: Buffer): string | null {
  if (reply[0] !== 36 /* $ */ && reply[0] !== 61 /* = */) return null;
  const nl = reply.indexOf(10);
  if (nl < 0) return null;
  const len = Number(reply.toString('latin1', 1, nl - 1));
  if (!(len >= 0)) return null;
  let text = reply.toString('utf8', nl + 1, nl + 1 + len);
  if (reply[0] === 61) text = text.slice(4); // "txt:"
  return text;
}

function parseSections(text: string, into: Section[]): void {
  let cur: Section | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.length === 0) continue;
    if (line.startsWith('#')) {
      const name = line.slice(1).trim();
      cur = into.find((s) => s.name === name) ?? null;
      if (cur === null) into.push((cur = { name, fields: new Map() }));
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0 || cur === null) continue;
    const k = line.slice(0, colon);
    let vals = cur.fields.get(k);
    if (vals === undefined) cur.fields.set(k, (vals = []));
    vals.push(line.slice(colon + 1));
  }
}

const INT = /^-?\d+$/;
const DEC = /^-?\d+\.\d+$/;
const LARGEST = /^(loading|async_loading)$|_recent_max_|_in_progress$|_enabled$|_scheduled$|_time$|_time_sec$|_timestamp$|^rdb_last_|^aof_last_|_seconds$|_days$|^p\d+/;
const SUMMED_DECIMALS = /^used_cpu_|^instantaneous_|_kbps$|_per_sec$/;

function mergeScalar(k: string, vals: string[]): string {
  if (vals.length === 1) return vals[0]!;
  if (vals.every((v) => INT.test(v))) {
    const ns = vals.map((v) => BigInt(v));
    if (LARGEST.test(k)) return ns.reduce((a, b) => (b > a ? b : a)).toString();
    return ns.reduce((a, b) => a + b, 0n).toString();
  }
  if (vals.every((v) => INT.test(v) || DEC.test(v))) {
    const ns = vals.map(Number);
    if (LARGEST.test(k)) return Math.max(...ns).toFixed(2);
    const sum = ns.reduce((a, b) => a + b, 0);
    return (SUMMED_DECIMALS.test(k) ? sum : sum / ns.length).toFixed(2);
  }
  // Text: kept when every shard says the same, else each distinct value listed.
  return [...new Set(vals)].join(',');
}

/** "a=1,b=2" from every shard, merged per sub-field. */
function mergeSubfields(vals: string[]): string {
  const parts = vals.map((v) => new Map(v.split(',').map((kv) => {
    const eq = kv.indexOf('=');
    return [kv.slice(0, eq), kv.slice(eq + 1)] as [string, string];
  })));
  const names: string[] = [];
  for (const p of parts) for (const k of p.keys()) if (!names.includes(k)) names.push(k);
  const out = names.map((n) => {
    const vs = parts.map((p) => p.get(n)).filter((v): v is string => v !== undefined);
    if (n === 'avg_ttl') {
      // Weighted by the keys with a TTL on each shard.
      let w = 0;
      let sum = 0;
      parts.forEach((p) => {
        const e = Number(p.get('expires') ?? 0);
        w += e;
        sum += e * Number(p.get('avg_ttl') ?? 0);
      });
      return `${n}=${w > 0 ? Math.round(sum / w) : 0}`;
    }
    if (n === 'usec_per_call') {
      const calls = parts.reduce((a, p) => a + Number(p.get('calls') ?? 0), 0);
      const usec = parts.reduce((a, p) => a + Number(p.get('usec') ?? 0), 0);
      return `${n}=${(calls > 0 ? usec / calls : 0).toFixed(2)}`;
    }
    return `${n}=${mergeScalar(n, vs)}`;
  });
  return out.join(',');
}

/** Redis' bytesToHuman: B, K, M, G, T with two decimals. */
function bytesToHuman(n: number): string {
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  if (n < 1024) return `${n}B`;
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(2)}${units[i]}`;
}

function serverSection(first: Section | undefined, ctx: InfoContext, shards: number): string[] {
  const uptime = Math.floor(process.uptime());
  return [
    `redis_version:${first?.fields.get('redis_version')?.[0] ?? 'unknown'}`,
    'redis_mode:standalone',
    `os:${process.platform === 'linux' ? 'Linux' : process.platform} ${release()} ${process.arch}`,
    `arch_bits:${process.arch.endsWith('64') ? 64 : 32}`,
    `process_id:${process.pid}`,
    `tcp_port:${ctx.port}`,
    `uptime_in_seconds:${uptime}`,
    `uptime_in_days:${Math.floor(uptime / 86400)}`,
    'proxy:portway',
    `proxy_listener:${ctx.listener}`,
    `proxy_shards:${shards}`,
  ];
}

/**
 * One INFO reply (a RESP bulk string) from the raw replies of every shard.
 * Shards that failed (an error reply) are left out and counted in
 * proxy_shards_failed; when none answered, the first error is the reply.
 */
export function mergeInfo(replies: Buffer[], ctx: InfoContext): Buffer {
  const sections: Section[] = [];
  let failed = 0;
  for (const r of replies) {
    const text = bulkText(r);
    if (text === null) failed++;
    else parseSections(text, sections);
  }
  if (failed === replies.length) return replies[0]!;
  const out: string[] = [];
  for (const s of sections) {
    out.push(`# ${s.name}`);
    if (s.name === 'Server') {
      out.push(...serverSection(s, ctx, replies.length), `proxy_shards_failed:${failed}`);
    } else {
      const merged = new Map<string, string>();
      for (const [k, vals] of s.fields) {
        if (k === 'cluster_enabled') merged.set(k, '0');
        else if (vals.length > 0 && vals.every((v) => /^[A-Za-z_][\w-]*=[^,]*(,[A-Za-z_][\w-]*=[^,]*)*$/.test(v))) merged.set(k, mergeSubfields(vals));
        else merged.set(k, mergeScalar(k, vals));
      }
      for (const [k, v] of merged) {
        if (k.endsWith('_human')) {
          const base = merged.get(k.slice(0, -6));
          if (base !== undefined && INT.test(base)) {
            out.push(`${k}:${bytesToHuman(Number(base))}`);
            continue;
          }
        }
        out.push(`${k}:${v}`);
      }
    }
    out.push('');
  }
  const body = Buffer.from(out.join('\r\n'), 'utf8');
  return Buffer.concat([Buffer.from(`$${body.length}\r\n`), body, Buffer.from('\r\n')]);
}
