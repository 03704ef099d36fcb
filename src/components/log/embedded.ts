/**
 * embedded: the default 'log' component. Kafka record batches in
 * append-only segment files on local disk, one directory per partition:
 *
 *   <data_dir>/.lock                            pid of the process using it
 *   <data_dir>/group-offsets.log                committed offsets (group-offsets.ts)
 *   <data_dir>/<topic>-<partition>/<base offset, 20 digits>.log     batches
 *   <data_dir>/<topic>-<partition>/<base offset, 20 digits>.index   sparse index
 *
 * Topics are the partition directories found at start, plus `topics` from
 * config, plus those created through createTopic (the broker's CreateTopics
 * and auto-create). Partition logic, group commit and recovery are in
 * partition.ts; the segment format in segment.ts and index-file.ts.
 *
 * Durability (what a crash may lose):
 * - fsync 'always': an append resolves after fdatasync of the bytes it wrote
 *   (appends arriving together share the write and the fsync). Nothing
 *   acknowledged is lost by a process kill or a power cut (as far as the
 *   disk honours fdatasync).
 * - fsync 'interval' (default, every fsync_interval = 100ms): an append
 *   resolves once its bytes are written to the file (the OS page cache). A
 *   process kill loses nothing acknowledged; a power cut or kernel crash can
 *   lose what was acknowledged during the last interval (recovery then
 *   truncates the torn tail; nothing after a lost batch survives).
 * Group offset commits follow the same policy.
 *
 * Recovery on start: the last segment of each partition is read whole and
 * every batch checked (length, magic 2, offset continuity, CRC-32C of
 * attributes..end); the file is cut after the last sound batch. Closed
 * segments keep their index when its last entry points at the batch it
 * claims; otherwise the index is rebuilt by a header scan. Start-up time is
 * therefore bounded by segment_bytes per partition.
 *
 * Within one process, two components with the same data_dir (a config
 * reload that changed this component's options) share one open log, which
 * takes the newer options; the files are released when the last one closes.
 * Across processes the .lock file refuses a second user while the recorded
 * pid is alive.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { ComponentBuildContext, ComponentFactory, ComponentHealth } from '../component';
import type { CommittedOffset, LogComponent, TopicInfo } from '../log-component';
import { Duration } from '../../config/schema';
import type { ConfigIssue } from '../../config/validate';
import pino from 'pino';
import type { Logger } from '../../logger';
import { MetricsRegistry } from '../../metrics';
import { parseDuration } from '../../util/duration';
import { checkPartitionCount, checkTopicName, RetentionBytesOption, RetentionOption, TopicsOption, topicExists } from './common';
import { GroupOffsetStore } from './group-offsets';
import { EmbeddedPartition, fsyncDirSync, type FsyncPolicy, type LogMetrics, type PartitionSettings } from './partition';

const MiB = 1024 * 1024;

export const EmbeddedLogConfig = Type.Object(
  {
    data_dir: Type.String({ minLength: 1, description: 'Directory holding the segment files, one sub-directory per partition (created when missing). One process uses it at a time (a .lock file with its pid).' }),
    topics: TopicsOption,
    fsync: Type.Optional(
      Type.Union([Type.Literal('always'), Type.Literal('interval')], {
        default: 'interval',
        description:
          "'always': an append is acknowledged after fdatasync (appends arriving together share one); nothing acknowledged is lost even by a power cut. 'interval': acknowledged once written to the file, fsynced every fsync_interval; a process kill loses nothing acknowledged, a power cut or kernel crash may lose the last interval.",
      }),
    ),
    fsync_interval: Type.Optional(Duration("With fsync 'interval': time between two fsyncs of the files written to (default 100ms).")),
    segment_bytes: Type.Optional(
      Type.Integer({ minimum: 4096, maximum: 1024 * MiB, default: 64 * MiB, description: 'A partition starts a new segment file once the active one would pass this size. Retention deletes whole segments; recovery reads the last one whole.' }),
    ),
    index_interval_bytes: Type.Optional(Type.Integer({ minimum: 64, maximum: 16 * MiB, default: 4096, description: 'Bytes between two entries of a segment\'s sparse offset/time index.' })),
    max_batch_bytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1024 * MiB, default: 100 * MiB, description: 'Largest record batch accepted (and believed during recovery).' })),
    retention_bytes: RetentionBytesOption,
    retention: RetentionOption,
    retention_check_interval: Type.Optional(Duration('How often retention looks for segments to delete.', '1m')),
  },
  { additionalProperties: false },
);
export type EmbeddedLogConfig = Static<typeof EmbeddedLogConfig>;

export interface EmbeddedLogOptions {
  dataDir: string;
  topics?: Record<string, number>;
  fsync?: FsyncPolicy;
  fsyncIntervalMs?: number;
  segmentBytes?: number;
  indexIntervalBytes?: number;
  maxBatchBytes?: number;
  retentionBytes?: number;
  retentionMs?: number;
  /** 0 disables the retention timer (tests call enforceRetention()). */
  retentionCheckMs?: number;
}

export interface EmbeddedLogDeps {
  logger?: Logger;
  metrics?: MetricsRegistry;
  cluster?: string;
}

/** Per-partition gauges only up to this many partitions per log (bounded label cardinality). */
export const PARTITION_METRICS_LIMIT = 256;
const DIR_NAME = /^(.+)-(\d+)$/;
const LOCK_FILE = '.lock';

/** Logs open in this process, by resolved data_dir. */
const OPEN = new Map<string, EmbeddedLog>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function settingsOf(o: EmbeddedLogOptions): PartitionSettings {
  return {
    fsync: o.fsync ?? 'interval',
    segmentBytes: o.segmentBytes ?? 64 * MiB,
    indexIntervalBytes: o.indexIntervalBytes ?? 4096,
    maxBatchBytes: o.maxBatchBytes ?? 100 * MiB,
    retentionBytes: o.retentionBytes,
    retentionMs: o.retentionMs,
  };
}

export class EmbeddedLog implements LogComponent {
  readonly type = 'embedded';
  readonly capability = 'log' as const;
  readonly dataDir: string;
  private refs = 1;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly settings: PartitionSettings;
  private readonly parts = new Map<string, EmbeddedPartition[]>();
  private readonly offsets: GroupOffsetStore;
  private readonly metrics: LogMetrics;
  private readonly registry: MetricsRegistry;
  private readonly labels: Record<string, string>;
  private readonly log: Logger;
  private syncTimer: NodeJS.Timeout | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;
  private opts: EmbeddedLogOptions;
  /** Partitions with a high watermark gauge ("topic\0partition"), at most PARTITION_METRICS_LIMIT. */
  private readonly gauged = new Set<string>();
  /** Topic deletions under way, so a createTopic of the same name waits for the old directories to go. */
  private readonly deleting = new Map<string, Promise<void>>();

  /** Opens the log at opts.dataDir, or shares the one this process already has open there. */
  static open(opts: EmbeddedLogOptions, deps: EmbeddedLogDeps = {}): EmbeddedLog {
    const dir = path.resolve(opts.dataDir);
    const cur = OPEN.get(dir);
    if (cur !== undefined && !cur.closed) {
      cur.refs++;
      cur.configure(opts);
      return cur;
    }
    return new EmbeddedLog({ ...opts, dataDir: dir }, deps);
  }

  private constructor(opts: EmbeddedLogOptions, deps: EmbeddedLogDeps) {
    this.opts = opts;
    this.dataDir = opts.dataDir;
    this.log = deps.logger ?? pino({ level: 'silent' });
    this.registry = deps.metrics ?? new MetricsRegistry();
    this.labels = { cluster: deps.cluster ?? '' };
    this.settings = settingsOf(opts);
    const m = this.registry;
    const l = this.labels;
    this.metrics = {
      appendedBytes: m.counter('portway_log_appended_bytes_total', 'Record batch bytes appended to an embedded log.', l),
      appendedRecords: m.counter('portway_log_appended_records_total', 'Records appended to an embedded log.', l),
      appendedBatches: m.counter('portway_log_appended_batches_total', 'Record batches appended to an embedded log.', l),
      fsyncSeconds: m.histogram('portway_log_fsync_seconds', 'Time an fdatasync of an embedded log file took.', l),
      segmentsDeleted: m.counter('portway_log_segments_deleted_total', 'Segments deleted by retention.', l),
      truncatedBytes: m.counter('portway_log_recovery_truncated_bytes_total', 'Bytes cut from torn or corrupt segment tails at start.', l),
    };
    fs.mkdirSync(this.dataDir, { recursive: true });
    this.lock();
    try {
      this.loadTopics();
      for (const [name, n] of Object.entries(opts.topics ?? {})) this.ensureTopic(name, n);
      this.offsets = new GroupOffsetStore(this.dataDir, this.settings, this.metrics.fsyncSeconds, this.log);
    } catch (e) {
      this.unlock();
      throw e;
    }
    m.gauge('portway_log_segments', 'Segment files held by an embedded log.', l, () => this.segmentCount());
    m.gauge('portway_log_partitions', 'Partitions held by a log component.', l, () => this.partitionCount());
    m.gauge('portway_log_bytes', 'Bytes held by an embedded log, over all segments.', l, () => this.bytes());
    OPEN.set(this.dataDir, this);
    this.startTimers();
    this.log.info({ data_dir: this.dataDir, topics: this.parts.size, partitions: this.partitionCount(), fsync: this.settings.fsync }, 'embedded log open');
  }

  /** Applies options of a newer config to the open log (shared by a reload). */
  private configure(opts: EmbeddedLogOptions): void {
    this.opts = { ...opts, dataDir: this.dataDir };
    Object.assign(this.settings, settingsOf(opts));
    for (const [name, n] of Object.entries(opts.topics ?? {})) this.ensureTopic(name, n);
    this.startTimers();
  }

  private startTimers(): void {
    if (this.syncTimer !== null) clearInterval(this.syncTimer);
    if (this.retentionTimer !== null) clearInterval(this.retentionTimer);
    this.syncTimer = this.retentionTimer = null;
    if (this.settings.fsync === 'interval') {
      this.syncTimer = setInterval(() => void this.syncAll(), Math.max(1, this.opts.fsyncIntervalMs ?? 100));
      this.syncTimer.unref();
    }
    const every = this.opts.retentionCheckMs ?? 60_000;
    if (every > 0 && (this.settings.retentionBytes !== undefined || this.settings.retentionMs !== undefined)) {
      this.retentionTimer = setInterval(() => void this.enforceRetention(), every);
      this.retentionTimer.unref();
    }
  }

  private lock(): void {
    const file = path.join(this.dataDir, LOCK_FILE);
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
      throw new Error(`embedded log: data_dir ${this.dataDir} is in use by process ${pid} (${file})`);
    }
    fs.writeFileSync(file, String(process.pid));
  }

  private unlock(): void {
    try {
      const file = path.join(this.dataDir, LOCK_FILE);
      if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file, { force: true });
    } catch {
      // already gone
    }
  }

  private loadTopics(): void {
    const found = new Map<string, number[]>();
    for (const d of fs.readdirSync(this.dataDir, { withFileTypes: true })) {
      if (!d.isDirectory()) continue;
      if (d.name.endsWith('.deleted')) {
        // A topic deletion that a restart interrupted.
        fs.rmSync(path.join(this.dataDir, d.name), { recursive: true, force: true });
        continue;
      }
      const m = DIR_NAME.exec(d.name);
      if (m === null) continue;
      const topic = m[1]!;
      try {
        checkTopicName(topic);
      } catch {
        continue;
      }
      let list = found.get(topic);
      if (list === undefined) found.set(topic, (list = []));
      list.push(Number(m[2]));
    }
    for (const [topic, ps] of found) {
      const n = Math.max(...ps) + 1;
      this.openPartitions(topic, n, 0);
    }
  }

  private openPartitions(topic: string, n: number, from: number): void {
    let list = this.parts.get(topic);
    if (list === undefined) list = [];
    for (let p = from; p < n; p++) {
      list.push(EmbeddedPartition.openSync(topic, p, path.join(this.dataDir, `${topic}-${p}`), this.settings, this.metrics, this.log));
    }
    this.parts.set(topic, list);
    fsyncDirSync(this.dataDir);
    this.partitionGauges(topic);
  }

  /** Creates a config topic, or adds partitions to it when config asks for more (never fewer). */
  private ensureTopic(name: string, n: number): void {
    checkTopicName(name);
    checkPartitionCount(n);
    const cur = this.parts.get(name);
    if (cur === undefined) this.openPartitions(name, n, 0);
    else if (cur.length < n) this.openPartitions(name, n, cur.length);
    else if (cur.length > n) this.log.warn({ topic: name, partitions: cur.length, configured: n }, 'topic has more partitions than configured; keeping them');
  }

  private partitionGauges(topic: string): void {
    const list = this.parts.get(topic) ?? [];
    for (const p of list) {
      const key = `${topic}\0${p.partition}`;
      if (this.gauged.has(key)) continue;
      if (this.gauged.size >= PARTITION_METRICS_LIMIT) return;
      const labels = { ...this.labels, topic, partition: String(p.partition) };
      this.registry.gauge('portway_log_high_watermark', `Next offset to be written, per partition (first ${PARTITION_METRICS_LIMIT} partitions of a log only).`, labels, () => Number(p.highWatermark()));
      this.gauged.add(key);
    }
  }

  // ---- LogComponent ----

  topics(): TopicInfo[] {
    return [...this.parts].map(([name, p]) => ({ name, partitions: p.length }));
  }

  topic(name: string): TopicInfo | undefined {
    const p = this.parts.get(name);
    return p === undefined ? undefined : { name, partitions: p.length };
  }

  async createTopic(name: string, partitions: number): Promise<TopicInfo> {
    checkTopicName(name);
    checkPartitionCount(partitions);
    // A deletion of the same name still moving its directories away finishes first.
    await this.deleting.get(name);
    if (this.parts.has(name)) throw topicExists(name);
    this.openPartitions(name, partitions, 0);
    this.log.info({ topic: name, partitions }, 'topic created');
    return { name, partitions };
  }

  async deleteTopic(name: string): Promise<boolean> {
    const list = this.parts.get(name);
    if (list === undefined) return false;
    this.parts.delete(name);
    for (const p of list) {
      if (this.gauged.delete(`${name}\0${p.partition}`)) this.registry.remove('portway_log_high_watermark', { ...this.labels, topic: name, partition: String(p.partition) });
    }
    const done = (async () => {
      await this.offsets.dropTopic(name);
      for (const p of list) await p.destroy();
    })();
    this.deleting.set(name, done.catch(() => {}));
    try {
      await done;
    } finally {
      this.deleting.delete(name);
    }
    this.log.info({ topic: name }, 'topic deleted');
    return true;
  }

  partition(topic: string, partition: number): EmbeddedPartition | undefined {
    return this.parts.get(topic)?.[partition];
  }

  commitOffsets(group: string, offsets: { topic: string; partition: number; offset: bigint; metadata: string | null }[]): Promise<void> {
    return this.offsets.commit(group, offsets, Date.now());
  }

  fetchOffset(group: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.offsets.table.get(group, topic, partition);
  }

  groups(): string[] {
    return this.offsets.table.names();
  }

  health(): ComponentHealth {
    const failed: string[] = [];
    for (const list of this.parts.values()) for (const p of list) if (p.failure !== null) failed.push(`${p.topic}-${p.partition}`);
    const ok = !this.closed && failed.length === 0 && this.offsets.failure === null;
    return {
      ok,
      detail: {
        data_dir: this.dataDir,
        fsync: this.settings.fsync,
        topics: this.parts.size,
        partitions: this.partitionCount(),
        segments: this.segmentCount(),
        bytes: this.bytes(),
        groups: this.offsets.table.groups.size,
        ...(failed.length > 0 ? { failed_partitions: failed.slice(0, 20) } : {}),
        ...(this.offsets.failure !== null ? { group_offsets_error: this.offsets.failure.message } : {}),
        ...(this.closed ? { closed: true } : {}),
      },
    };
  }

  /** Releases this user's share; the last one syncs and closes every file. */
  close(): Promise<void> {
    if (this.closed) return this.closing ?? Promise.resolve();
    if (--this.refs > 0) return Promise.resolve();
    this.closed = true;
    OPEN.delete(this.dataDir);
    if (this.syncTimer !== null) clearInterval(this.syncTimer);
    if (this.retentionTimer !== null) clearInterval(this.retentionTimer);
    for (const name of ['portway_log_segments', 'portway_log_partitions', 'portway_log_bytes']) this.registry.remove(name, this.labels);
    for (const key of this.gauged) {
      const z = key.lastIndexOf('\0');
      this.registry.remove('portway_log_high_watermark', { ...this.labels, topic: key.slice(0, z), partition: key.slice(z + 1) });
    }
    this.gauged.clear();
    this.closing = (async () => {
      const all: Promise<void>[] = [];
      for (const list of this.parts.values()) for (const p of list) all.push(p.close());
      await Promise.all(all);
      await this.offsets.close();
      this.unlock();
      this.log.info({ data_dir: this.dataDir }, 'embedded log closed');
    })();
    return this.closing;
  }

  // ---- maintenance (timers; tests call them directly) ----

  /** fsync 'interval': syncs every partition's written bytes and the offsets file. */
  async syncAll(): Promise<void> {
    const all: Promise<void>[] = [];
    for (const list of this.parts.values()) for (const p of list) all.push(p.syncNow());
    all.push(this.offsets.syncNow().catch((e: Error) => this.log.warn({ error: e.message }, 'group offsets fsync failed')));
    await Promise.all(all);
  }

  /** Deletes segments past retention in every partition; returns how many went. */
  async enforceRetention(now = Date.now()): Promise<number> {
    let n = 0;
    for (const list of [...this.parts.values()]) for (const p of list) n += await p.enforceRetention(now);
    return n;
  }

  private partitionCount(): number {
    let n = 0;
    for (const list of this.parts.values()) n += list.length;
    return n;
  }

  private segmentCount(): number {
    let n = 0;
    for (const list of this.parts.values()) for (const p of list) n += p.segments.length;
    return n;
  }

  private bytes(): number {
    let n = 0;
    for (const list of this.parts.values()) for (const p of list) n += p.size();
    return n;
  }
}

export function embeddedOptions(config: EmbeddedLogConfig): EmbeddedLogOptions {
  return {
    dataDir: config.data_dir,
    topics: config.topics,
    fsync: config.fsync ?? 'interval',
    fsyncIntervalMs: parseDuration(config.fsync_interval ?? '100ms'),
    segmentBytes: config.segment_bytes,
    indexIntervalBytes: config.index_interval_bytes,
    maxBatchBytes: config.max_batch_bytes,
    retentionBytes: config.retention_bytes,
    retentionMs: config.retention === undefined ? undefined : parseDuration(config.retention),
    retentionCheckMs: parseDuration(config.retention_check_interval ?? '1m'),
  };
}

export const embeddedLogComponent: ComponentFactory<EmbeddedLogConfig, EmbeddedLog> = {
  type: 'embedded',
  capability: 'log',
  description: 'Kafka record batches in append-only segment files under data_dir, with offset/time indexes, fsync always or on an interval, retention by size and age, crash recovery, and durable consumer group offsets.',
  schema: EmbeddedLogConfig,
  check(config): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    if (config.fsync_interval !== undefined && parseDuration(config.fsync_interval) <= 0) issues.push({ path: 'fsync_interval', message: 'must be more than 0' });
    if (config.fsync_interval !== undefined && config.fsync === 'always') issues.push({ path: 'fsync_interval', message: "only applies with fsync: interval" });
    if (config.retention_check_interval !== undefined && parseDuration(config.retention_check_interval) <= 0) issues.push({ path: 'retention_check_interval', message: 'must be more than 0' });
    return issues;
  },
  create(config, ctx: ComponentBuildContext): EmbeddedLog {
    return EmbeddedLog.open(embeddedOptions(config), { logger: ctx.logger, metrics: ctx.metrics, cluster: ctx.cluster });
  },
};
