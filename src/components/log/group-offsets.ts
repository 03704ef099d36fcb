/**
 * Durable consumer group offsets of the embedded log: one append-only file,
 * `<data_dir>/group-offsets.log`, one line a commit entry:
 *
 *   <CRC-32C of the JSON, 8 hex digits> <JSON>\n
 *   JSON: {"g": group, "t": topic, "p": partition, "o": "offset", "m": metadata|null, "at": "ms"}
 *      or {"drop": topic}          (topic deleted: forget its offsets)
 *
 * On open the file is replayed (a line with a bad CRC or no newline, i.e. a
 * torn tail, is skipped) and rewritten compacted (temp file, fsync, rename,
 * fsync of the directory), so it holds one line per live offset. It is
 * compacted the same way while running when it grows past 4 MiB and 8x its
 * live size. Commits are grouped like partition appends and follow the
 * log's fsync policy; the in-memory table changes only once the line is
 * written (and, with 'always', synced).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Logger } from '../../logger';
import type { Histogram } from '../../metrics';
import { ErrorCode, ProxyError } from '../../errors';
import { crc32c } from './crc32c';
import { GroupOffsetTable } from './common';
import { fsyncDir, fsyncDirSync, type PartitionSettings } from './partition';

export const GROUP_OFFSETS_FILE = 'group-offsets.log';
const COMPACT_MIN_BYTES = 4 * 1024 * 1024;

interface Entry {
  g?: string;
  t?: string;
  p?: number;
  o?: string;
  m?: string | null;
  at?: string;
  drop?: string;
}

function line(e: Entry): string {
  const json = JSON.stringify(e);
  return `${crc32c(Buffer.from(json)).toString(16).padStart(8, '0')} ${json}\n`;
}

function apply(table: GroupOffsetTable, e: Entry): void {
  if (typeof e.drop === 'string') table.dropTopic(e.drop);
  else if (typeof e.g === 'string' && typeof e.t === 'string' && typeof e.p === 'number' && typeof e.o === 'string') {
    table.set(e.g, e.t, e.p, { offset: BigInt(e.o), metadata: e.m ?? null, commitTimeMs: BigInt(e.at ?? '0') });
  }
}

function compactedText(table: GroupOffsetTable): string {
  let out = '';
  for (const [g, m] of table.groups) {
    for (const [k, c] of m) {
      const z = k.lastIndexOf('\0');
      out += line({ g, t: k.slice(0, z), p: Number(k.slice(z + 1)), o: c.offset.toString(), m: c.metadata, at: c.commitTimeMs.toString() });
    }
  }
  return out;
}

class PendingWrite {
  constructor(
    readonly text: string,
    readonly entries: Entry[],
    readonly resolve: () => void,
    readonly reject: (e: unknown) => void,
  ) {}
}

export class GroupOffsetStore {
  readonly table = new GroupOffsetTable();
  private readonly file: string;
  private fh: Promise<fsp.FileHandle> | null = null;
  private size = 0;
  private synced = 0;
  private liveBytes = 0;
  private queue: PendingWrite[] = [];
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private closed = false;
  failure: Error | null = null;

  constructor(
    readonly dir: string,
    private readonly settings: PartitionSettings,
    private readonly fsyncSeconds: Histogram,
    private readonly log: Logger,
  ) {
    this.file = path.join(dir, GROUP_OFFSETS_FILE);
    let text = '';
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    let bad = 0;
    let start = 0;
    while (start < text.length) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) {
        bad++;
        break;
      }
      const l = text.slice(start, nl);
      start = nl + 1;
      const sp = l.indexOf(' ');
      const json = l.slice(sp + 1);
      if (sp !== 8 || parseInt(l.slice(0, 8), 16) !== crc32c(Buffer.from(json))) {
        bad++;
        continue;
      }
      try {
        apply(this.table, JSON.parse(json) as Entry);
      } catch {
        bad++;
      }
    }
    if (bad > 0) log.warn({ file: this.file, skipped_lines: bad }, 'group offsets: skipped torn or corrupt lines');
    const compact = compactedText(this.table);
    const tmp = `${this.file}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, compact);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    fsyncDirSync(dir);
    this.size = this.synced = this.liveBytes = Buffer.byteLength(compact);
  }

  commit(group: string, offsets: { topic: string; partition: number; offset: bigint; metadata: string | null }[], now: number): Promise<void> {
    const at = String(now);
    const entries: Entry[] = offsets.map((o) => ({ g: group, t: o.topic, p: o.partition, o: o.offset.toString(), m: o.metadata, at }));
    return this.enqueue(entries);
  }

  dropTopic(topic: string): Promise<void> {
    return this.enqueue([{ drop: topic }]);
  }

  private enqueue(entries: Entry[]): Promise<void> {
    if (this.closed) return Promise.reject(new ProxyError(ErrorCode.Storage, 'log is closed', { source: 'upstream' }));
    if (this.failure !== null) return Promise.reject(new ProxyError(ErrorCode.Storage, `group offsets store failed: ${this.failure.message}`, { source: 'upstream' }));
    if (entries.length === 0) return Promise.resolve();
    const text = entries.map(line).join('');
    return new Promise<void>((resolve, reject) => {
      this.queue.push(new PendingWrite(text, entries, resolve, reject));
      this.kick();
    });
  }

  private kick(): void {
    if (this.queue.length > 0 && this.flushing === null && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        if (this.flushing !== null) return;
        this.flushing = this.flushLoop().finally(() => {
          this.flushing = null;
          this.kick();
        });
      });
    }
  }

  private handle(): Promise<fsp.FileHandle> {
    if (this.fh === null) {
      this.fh = fsp.open(this.file, 'r+');
      this.fh.catch(() => (this.fh = null));
    }
    return this.fh;
  }

  private async flushLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const group = this.queue;
      this.queue = [];
      try {
        if (this.failure !== null) throw this.failure;
        const buf = Buffer.from(group.map((p) => p.text).join(''));
        const fh = await this.handle();
        let done = 0;
        while (done < buf.length) done += (await fh.write(buf, done, buf.length - done, this.size + done)).bytesWritten;
        this.size += buf.length;
        if (this.settings.fsync === 'always') await this.syncNow();
        for (const p of group) for (const e of p.entries) apply(this.table, e);
        for (const p of group) p.resolve();
        if (this.size > COMPACT_MIN_BYTES && this.size > 8 * Math.max(this.liveBytes, 1)) await this.compact();
      } catch (e) {
        if (this.failure === null) {
          this.failure = e instanceof Error ? e : new Error(String(e));
          this.log.error({ error: this.failure.message }, 'group offsets store failed: commits refused until restart');
        }
        const err = new ProxyError(ErrorCode.Storage, `committing offsets failed: ${this.failure.message}`, { source: 'upstream', cause: e });
        for (const p of group) p.reject(err);
      }
    }
  }

  /** Rewrites the file with one line per live offset. Runs inside the write loop. */
  private async compact(): Promise<void> {
    const text = compactedText(this.table);
    const tmp = `${this.file}.tmp`;
    const out = await fsp.open(tmp, 'w');
    try {
      await out.writeFile(text);
      await out.datasync();
    } finally {
      await out.close();
    }
    const old = this.fh;
    this.fh = null;
    await fsp.rename(tmp, this.file);
    await fsyncDir(this.dir);
    if (old !== null) await (await old).close();
    this.size = this.synced = this.liveBytes = Buffer.byteLength(text);
  }

  async syncNow(): Promise<void> {
    const target = this.size;
    if (this.synced >= target || this.fh === null) return;
    const t0 = performance.now();
    await (await this.fh).datasync();
    this.fsyncSeconds.observe((performance.now() - t0) / 1000);
    if (target > this.synced) this.synced = target;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing !== null || this.scheduled) {
      if (this.flushing !== null) await this.flushing;
      else await new Promise((r) => setImmediate(r));
    }
    try {
      await this.syncNow();
    } catch (e) {
      this.log.warn({ error: (e as Error).message }, 'closing: group offsets sync failed');
    }
    const fh = this.fh;
    this.fh = null;
    if (fh !== null) await (await fh).close();
  }
}
