/**
 * The 'log' capability: what the Kafka listener needs from whatever keeps the
 * records (the embedded segment store, later Redis Streams, NATS JetStream or
 * a real Kafka cluster). Kept small on purpose: a later implementation should
 * fit in one file.
 *
 * Records travel as Kafka record batches (magic 2), byte for byte as the
 * producer sent them: the log assigns offsets by writing the batch's
 * baseOffset (bytes 0..7, outside the CRC) and hands the same bytes back to
 * fetchers. A log that is not Kafka-shaped inside converts at its edge.
 */
import type { Component } from './component';

/** One stored record batch as returned by a read. */
export interface StoredBatch {
  /** Offset of the batch's first record. */
  baseOffset: bigint;
  /** Offset of its last record (baseOffset + lastOffsetDelta). */
  lastOffset: bigint;
  /** The whole batch, baseOffset already written into it. */
  bytes: Buffer;
}

export interface ReadResult {
  batches: StoredBatch[];
  /** Next offset to be written (Kafka's high watermark: everything below is acknowledged). */
  highWatermark: bigint;
  logStartOffset: bigint;
}

export interface AppendResult {
  baseOffset: bigint;
  /** Broker time of the append (ms), for LogAppendTime and ListOffsets. */
  appendTimeMs: bigint;
  logStartOffset: bigint;
}

export interface PartitionLog {
  readonly topic: string;
  readonly partition: number;
  /**
   * Appends one record batch (magic 2, CRC already checked by the caller).
   * Resolves once the batch is as durable as the fsync policy promises; a
   * resolved append is never lost by a crash when the policy is 'always'.
   */
  append(batch: Buffer): Promise<AppendResult>;
  /**
   * Batches holding offsets >= offset, at least one whole batch when any
   * exists (even above maxBytes, as Kafka does), then whole batches while the
   * total stays within maxBytes. The first batch may start below offset.
   */
  read(offset: bigint, maxBytes: number): Promise<ReadResult>;
  /** First offset still kept (moves with retention). */
  logStartOffset(): bigint;
  /** Next offset to be written. */
  highWatermark(): bigint;
  /** Earliest offset whose batch max timestamp is >= ts, or null when none. */
  offsetForTimestamp(ts: bigint): Promise<bigint | null>;
  /**
   * Resolves true when the high watermark passes `offset`, false after
   * timeoutMs (Fetch long polling). Must not keep the process alive.
   */
  waitFor(offset: bigint, timeoutMs: number): Promise<boolean>;
}

export interface TopicInfo {
  name: string;
  partitions: number;
}

export interface CommittedOffset {
  offset: bigint;
  metadata: string | null;
  commitTimeMs: bigint;
}

export interface LogComponent extends Component {
  readonly capability: 'log';
  /** Topics known to this log. */
  topics(): TopicInfo[];
  topic(name: string): TopicInfo | undefined;
  /** Creates a topic; throws ProxyError PW_ERR_TOPIC_EXISTS when it exists. */
  createTopic(name: string, partitions: number): Promise<TopicInfo>;
  deleteTopic(name: string): Promise<boolean>;
  /** The partition's log, or undefined when the topic or partition does not exist. */
  partition(topic: string, partition: number): PartitionLog | undefined;
  /** Durable consumer group offsets (survive restarts). */
  commitOffsets(group: string, offsets: { topic: string; partition: number; offset: bigint; metadata: string | null }[]): Promise<void>;
  fetchOffset(group: string, topic: string, partition: number): CommittedOffset | undefined;
  /** Every group with committed offsets (ListGroups, DescribeGroups of empty groups). */
  groups(): string[];
}

export function isLogComponent(c: Component | undefined): c is LogComponent {
  return c !== undefined && c.capability === 'log';
}
