/**
 * Generates command-table.json from a real redis-server's COMMAND and
 * COMMAND DOCS, so the runtime never needs a server to know key positions.
 *
 *   node dist/src/protocols/redis/gen-command-table.js [--out FILE]
 *
 * With REDIS_PORT (and optionally REDIS_HOST) set it asks that server;
 * otherwise it starts `redis-server` (REDIS_SERVER to override the binary)
 * on a free loopback port with persistence off, and stops it afterwards.
 * The output has one line per command ("GET", and "OBJECT|ENCODING" for
 * subcommands) so a regeneration diffs per command.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { RespReplyDecoder } from './reply-decoder';
import { parseReply, type RespValue } from './resp-value';
import { encodeCommand } from './resp-writer';
import type { CommandTableEntry, CommandTableFile, KeySpecJson } from './command-table-types';

/** A minimal request/response client over one socket, using our own codec. */
class MiniClient {
  private readonly waiting: Array<(v: RespValue) => void> = [];
  private readonly decoder: RespReplyDecoder;

  constructor(private readonly socket: Socket) {
    this.decoder = new RespReplyDecoder({
      onReply: (buf, start, end) => {
        const w = this.waiting.shift();
        if (w) w(parseReply(buf, start, end));
      },
      onError: (err) => socket.destroy(err),
    });
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
  }

  call(...args: string[]): Promise<RespValue> {
    return new Promise((res, rej) => {
      this.waiting.push((v) => (v.type === 'error' ? rej(new Error(v.value)) : res(v)));
      this.socket.write(encodeCommand(args));
    });
  }

  close(): void {
    this.socket.end();
  }
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

async function connectWithRetry(host: string, port: number, deadline: number): Promise<Socket> {
  for (;;) {
    try {
      return await new Promise<Socket>((res, rej) => {
        const s = connect(port, host);
        s.once('connect', () => res(s));
        s.once('error', rej);
      });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

// --- RESP3 reply helpers (COMMAND answers maps and sets under HELLO 3) ---

function text(v: RespValue): string {
  if (v.type === 'simple' || v.type === 'error') return v.value;
  if (v.type === 'bulk' || v.type === 'verbatim') return v.value.toString('utf8');
  if (v.type === 'integer') return String(v.value);
  throw new Error(`expected a string, got ${v.type}`);
}

function int(v: RespValue): number {
  if (v.type !== 'integer') throw new Error(`expected an integer, got ${v.type}`);
  return Number(v.value);
}

function list(v: RespValue): RespValue[] {
  if (v.type === 'array' || v.type === 'set') return v.value;
  if (v.type === 'null') return [];
  throw new Error(`expected an array, got ${v.type}`);
}

function record(v: RespValue): Map<string, RespValue> {
  const m = new Map<string, RespValue>();
  if (v.type === 'map') for (const [k, x] of v.value) m.set(text(k), x);
  else if (v.type === 'array') for (let i = 0; i + 1 < v.value.length; i += 2) m.set(text(v.value[i]), v.value[i + 1]);
  else throw new Error(`expected a map, got ${v.type}`);
  return m;
}

function need(m: Map<string, RespValue>, key: string): RespValue {
  const v = m.get(key);
  if (v === undefined) throw new Error(`missing field ${key}`);
  return v;
}

function keySpec(v: RespValue): KeySpecJson {
  const m = record(v);
  const bs = record(need(m, 'begin_search'));
  const fk = record(need(m, 'find_keys'));
  const bsType = text(need(bs, 'type'));
  const fkType = text(need(fk, 'type'));
  const bsSpec = record(need(bs, 'spec'));
  const fkSpec = record(need(fk, 'spec'));
  const spec: KeySpecJson = {
    flags: list(need(m, 'flags')).map(text),
    beginSearch:
      bsType === 'index'
        ? { type: 'index', index: int(need(bsSpec, 'index')) }
        : bsType === 'keyword'
          ? { type: 'keyword', keyword: text(need(bsSpec, 'keyword')), startFrom: int(need(bsSpec, 'startfrom')) }
          : { type: 'unknown' },
    findKeys:
      fkType === 'range'
        ? { type: 'range', lastKey: int(need(fkSpec, 'lastkey')), keyStep: int(need(fkSpec, 'keystep')), limit: int(need(fkSpec, 'limit')) }
        : fkType === 'keynum'
          ? {
              type: 'keynum',
              keyNumIdx: int(need(fkSpec, 'keynumidx')),
              firstKey: int(need(fkSpec, 'firstkey')),
              keyStep: int(need(fkSpec, 'keystep')),
            }
          : { type: 'unknown' },
  };
  const notes = m.get('notes');
  if (notes !== undefined) spec.notes = text(notes);
  return spec;
}

interface Docs {
  group?: string;
  since?: string;
  deprecatedSince?: string;
  replacedBy?: string;
  docFlags?: string[];
  subcommands: Map<string, Docs>;
}

function docs(v: RespValue): Docs {
  const m = record(v);
  const d: Docs = { subcommands: new Map() };
  const g = m.get('group');
  if (g) d.group = text(g);
  const s = m.get('since');
  if (s) d.since = text(s);
  const ds = m.get('deprecated_since');
  if (ds) d.deprecatedSince = text(ds);
  const rb = m.get('replaced_by');
  if (rb) d.replacedBy = text(rb);
  const df = m.get('doc_flags');
  if (df) d.docFlags = list(df).map(text);
  const subs = m.get('subcommands');
  if (subs) for (const [name, sv] of record(subs)) d.subcommands.set(name.toUpperCase(), docs(sv));
  return d;
}

/** COMMAND's entry: name, arity, flags, first, last, step, acl, tips, key specs, subcommands. */
function entries(v: RespValue, docsOf: Map<string, Docs>, out: Map<string, CommandTableEntry>): void {
  const f = list(v);
  const name = text(f[0]).toUpperCase();
  const d = docsOf.get(name);
  const subs = list(f[9] ?? { type: 'null', kind: 'null' });
  const e: CommandTableEntry = {
    arity: int(f[1]),
    flags: list(f[2]).map(text).sort(),
    firstKey: int(f[3]),
    lastKey: int(f[4]),
    step: int(f[5]),
    acl: list(f[6])
      .map(text)
      .map((c) => c.replace(/^@/, ''))
      .sort(),
    tips: list(f[7]).map(text),
    keySpecs: list(f[8]).map(keySpec),
  };
  if (d?.group) e.group = d.group;
  if (d?.since) e.since = d.since;
  if (d?.deprecatedSince) e.deprecatedSince = d.deprecatedSince;
  if (d?.replacedBy) e.replacedBy = d.replacedBy;
  if (d?.docFlags && d.docFlags.length > 0) e.docFlags = d.docFlags;
  const subNames: string[] = [];
  const subDocs = new Map<string, Docs>();
  for (const [k, sd] of d?.subcommands ?? []) subDocs.set(k, sd);
  for (const s of subs) {
    const full = text(list(s)[0]).toUpperCase();
    subNames.push(full.slice(full.indexOf('|') + 1));
    entries(s, subDocs, out);
  }
  if (subNames.length > 0) e.subcommands = subNames.sort();
  out.set(name, e);
}

function render(file: CommandTableFile): string {
  const names = Object.keys(file.commands).sort();
  const lines = names.map((n) => `  ${JSON.stringify(n)}: ${JSON.stringify(file.commands[n])}`);
  return `{\n"source": ${JSON.stringify(file.source)},\n"commands": {\n${lines.join(',\n')}\n}\n}\n`;
}

function repoRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
  return dir;
}

async function main(): Promise<void> {
  const outArg = process.argv.indexOf('--out');
  const out = outArg > 0 ? resolve(process.argv[outArg + 1]) : join(repoRoot(), 'src/protocols/redis/command-table.json');
  const host = process.env.REDIS_HOST ?? '127.0.0.1';
  let port = Number(process.env.REDIS_PORT ?? 0);
  let server: ChildProcess | null = null;
  if (!port) {
    port = await freePort();
    const bin = process.env.REDIS_SERVER ?? 'redis-server';
    server = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    server.on('error', (err) => {
      console.error(`cannot start ${bin}: ${err.message}`);
      process.exit(1);
    });
  }
  try {
    const client = new MiniClient(await connectWithRetry(host, port, Date.now() + 10_000));
    const version = text(need(record(await client.call('HELLO', '3')), 'version'));
    const docsOf = new Map<string, Docs>();
    for (const [k, v] of record(await client.call('COMMAND', 'DOCS'))) docsOf.set(k.toUpperCase(), docs(v));
    const table = new Map<string, CommandTableEntry>();
    for (const v of list(await client.call('COMMAND'))) entries(v, docsOf, table);
    client.close();
    const commands: Record<string, CommandTableEntry> = {};
    for (const k of [...table.keys()].sort()) commands[k] = table.get(k) as CommandTableEntry;
    writeFileSync(out, render({ source: `redis-server ${version}: COMMAND, COMMAND DOCS`, commands }));
    console.log(`wrote ${table.size} commands from redis ${version} to ${out}`);
  } finally {
    server?.kill('SIGTERM');
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
