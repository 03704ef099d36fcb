/**
 * memory_log: a 'log' component that keeps record batches in process memory.
 * For tests and throwaway setups: everything is gone when the process (or a
 * config reload that changes this cluster's component) ends.
 *
 * Each partition is an array of stored batches in offset order. An append
 * copies the batch out of the request (so the request buffer is not kept
 * alive), writes its baseOffset and resolves at once. Reads binary-search the
 * batch holding the offset and return views of the stored buffers. Retention
 * (retention_bytes, retention) drops whole batches from the head, checked on
 * append and read; the last batch goes too when it is older than retention.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ComponentBuildContext, ComponentFactory, ComponentHealth } from '../component';
import type { AppendResult, CommittedOffset, LogComponent, PartitionLog, ReadResult, StoredBatch, TopicInfo } from '../log-component';
import { ErrorCode, ProxyError } from '../../errors';
import { parseDuration } from '../../util/duration';
import { batchShapeProblem, lastOffsetDelta, maxTimestamp } from './batch';
import { checkPartitionCount, checkTopicName, GroupOffsetTable, RetentionBytesOption, RetentionOption, TopicsOption, topicExists } from './common';
import { OffsetWaiters } from './offset-waiters';

export const MemoryLogConfig = Type.Object(
  {
    topics: TopicsOption,
    retention_bytes: RetentionBytesOption,
    retention: RetentionOption,
  },
  { additionalProperties: false },
);
export type MemoryLogConfig = Static<typeof MemoryLogConfig>;

interface MemoryBatch extends StoredBatch {
  maxTimestamp: bigint;
  appendTimeMs: number;
}

export interface MemoryLogOptions {
  topics?: Record<string, number>;
  retentionBytes?: number;
  retentionMs?: number;
  /** The clock for append times and retention (tests move it). Default Date.now. */
  now?: () => number;
}

export class MemoryPartition implements PartitionLog {
  private readonly batches: MemoryBatch[] = [];
  /** Index in `batches` of the first batch still kept (dropped ones are spliced off in bulk). */
  private head = 0;
  private bytes = 0;
  private hw = 0n;
  private start = 0n;
  private readonly waiters = new OffsetWaiters();
  closed = false;

  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly opts: MemoryLogOptions,
  ) {}

  append(batch: Buffer): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new ProxyError(ErrorCode.Storage, `partition ${this.topic}-${this.partition} is closed`, { source: 'upstream' }));
    const problem = batchShapeProblem(batch);
    if (problem !== null) return Promise.reject(new ProxyError(ErrorCode.Protocol, problem, { source: 'downstream' }));
    const now = this.now();
    const bytes = Buffer.allocUnsafe(batch.length);
    batch.copy(bytes);
    const base = this.hw;
    bytes.writeBigInt64BE(base, 0);
    const last = base + BigInt(lastOffsetDelta(bytes));
    this.batches.push({ baseOffset: base, lastOffset: last, bytes, maxTimestamp: maxTimestamp(bytes), appendTimeMs: now });
    this.bytes += bytes.length;
    this.hw = last + 1n;
    this.retain(now);
    this.waiters.notify(this.hw);
    return Promise.resolve({ baseOffset: base, appendTimeMs: BigInt(now), logStartOffset: this.start });
  }

  read(offset: bigint, maxBytes: number): Promise<ReadResult> {
    this.retain(this.now());
    const out: StoredBatch[] = [];
    let i = this.find(offset);
    let total = 0;
    for (; i < this.batches.length; i++) {
      const b = this.batches[i]!;
      if (out.length > 0 && total + b.bytes.length > maxBytes) break;
      out.push(b);
      total += b.bytes.length;
    }
    return Promise.resolve({ batches: out, highWatermark: this.hw, logStartOffset: this.start });
  }

  logStartOffset(): bigint {
    this.retain(this.now());
    return this.start;
  }

  highWatermark(): bigint {
    return this.hw;
  }

  offsetForTimestamp(ts: bigint): Promise<bigint | null> {
    this.retain(this.now());
    for (let i = this.head; i < this.batches.length; i++) {
      const b = this.batches[i]!;
      if (b.maxTimestamp >= ts) return Promise.resolve(b.baseOffset > this.start ? b.baseOffset : this.start);
    }
    return Promise.resolve(null);
  }

  waitFor(offset: bigint, timeoutMs: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return this.waiters.wait(offset, timeoutMs, this.hw);
  }

  /** Bytes held. */
  size(): number {
    return this.bytes;
  }

  close(): void {
    this.closed = true;
    this.waiters.cancelAll();
  }

  /** Index of the first kept batch whose lastOffset >= offset (batches.length when none). */
  private find(offset: bigint): number {
    let lo = this.head;
    let hi = this.batches.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.batches[mid]!.lastOffset < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private retain(now: number): void {
    const { retentionBytes, retentionMs } = this.opts;
    if (retentionBytes === undefined && retentionMs === undefined) return;
    const b = this.batches;
    let h = this.head;
    if (retentionBytes !== undefined) {
      // Size: keep the newest batch even when it alone is larger than the bound.
      while (this.bytes > retentionBytes && b.length - h > 1) this.bytes -= b[h++]!.bytes.length;
    }
    if (retentionMs !== undefined) {
      const cutoff = now - retentionMs;
      while (h < b.length && b[h]!.appendTimeMs < cutoff) this.bytes -= b[h++]!.bytes.length;
    }
    if (h === this.head) return;
    this.start = h < b.length ? b[h]!.baseOffset : this.hw;
    if (h > 1024 && h * 2 > b.length) {
      b.splice(0, h);
      h = 0;
    }
    this.head = h;
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }
}

export class MemoryLog implements LogComponent {
  readonly type = 'memory_log';
  readonly capability = 'log' as const;
  private readonly parts = new Map<string, MemoryPartition[]>();
  private readonly offsets = new GroupOffsetTable();
  private closed = false;

  constructor(private readonly opts: MemoryLogOptions = {}) {
    for (const [name, n] of Object.entries(opts.topics ?? {})) this.add(name, n);
  }

  topics(): TopicInfo[] {
    return [...this.parts].map(([name, p]) => ({ name, partitions: p.length }));
  }

  topic(name: string): TopicInfo | undefined {
    const p = this.parts.get(name);
    return p === undefined ? undefined : { name, partitions: p.length };
  }

  createTopic(name: string, partitions: number): Promise<TopicInfo> {
    try {
      checkTopicName(name);
      checkPartitionCount(partitions);
      if (this.parts.has(name)) throw topicExists(name);
      this.add(name, partitions);
      return Promise.resolve({ name, partitions });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  deleteTopic(name: string): Promise<boolean> {
    const p = this.parts.get(name);
    if (p === undefined) return Promise.resolve(false);
    this.parts.delete(name);
    for (const x of p) x.close();
    this.offsets.dropTopic(name);
    return Promise.resolve(true);
  }

  partition(topic: string, partition: number): MemoryPartition | undefined {
    return this.parts.get(topic)?.[partition];
  }

  commitOffsets(group: string, offsets: { topic: string; partition: number; offset: bigint; metadata: string | null }[]): Promise<void> {
    if (this.closed) return Promise.reject(new ProxyError(ErrorCode.Storage, 'log is closed', { source: 'upstream' }));
    const at = BigInt(this.opts.now ? this.opts.now() : Date.now());
    for (const o of offsets) this.offsets.set(group, o.topic, o.partition, { offset: o.offset, metadata: o.metadata, commitTimeMs: at });
    return Promise.resolve();
  }

  fetchOffset(group: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.offsets.get(group, topic, partition);
  }

  groups(): string[] {
    return this.offsets.names();
  }

  health(): ComponentHealth {
    let partitions = 0;
    let bytes = 0;
    for (const p of this.parts.values()) for (const x of p) (partitions++, (bytes += x.size()));
    return { ok: !this.closed, detail: { topics: this.parts.size, partitions, bytes, groups: this.offsets.groups.size } };
  }

  close(): void {
    this.closed = true;
    for (const p of this.parts.values()) for (const x of p) x.close();
  }

  private add(name: string, n: number): void {
    checkTopicName(name);
    checkPartitionCount(n);
    const list: MemoryPartition[] = [];
    for (let i = 0; i < n; i++) list.push(new MemoryPartition(name, i, this.opts));
    this.parts.set(name, list);
  }
}

export const memoryLogComponent: ComponentFactory<MemoryLogConfig, MemoryLog> = {
  type: 'memory_log',
  capability: 'log',
  description: 'Kafka record batches kept in process memory (tests, throwaway setups): lost when the process ends or this component config changes.',
  schema: MemoryLogConfig,
  create(config, ctx: ComponentBuildContext): MemoryLog {
    const log = new MemoryLog({
      topics: config.topics,
      retentionBytes: config.retention_bytes,
      retentionMs: config.retention === undefined ? undefined : parseDuration(config.retention),
    });
    ctx.metrics.gauge('portway_log_topics', 'Topics held by a log component.', { cluster: ctx.cluster }, () => log.topics().length);
    return log;
  },
};
