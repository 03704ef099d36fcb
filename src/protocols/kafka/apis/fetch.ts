/**
 * Fetch (key 1), versions 4-11.
 *   Request: replica_id int32, max_wait_ms int32, min_bytes int32, max_bytes int32,
 *            isolation_level int8, session_id int32 (v7+), session_epoch int32 (v7+),
 *            topics [topic string, partitions [partition int32, current_leader_epoch int32 (v9+),
 *                    fetch_offset int64, log_start_offset int64 (v5+), partition_max_bytes int32]],
 *            forgotten_topics_data [topic string, partitions [int32]] (v7+), rack_id string (v11+)
 *   Response: throttle_time_ms int32, error_code int16 (v7+), session_id int32 (v7+),
 *             responses [topic string, partitions [partition_index int32, error_code int16,
 *                        high_watermark int64, last_stable_offset int64, log_start_offset int64 (v5+),
 *                        aborted_transactions nullable [producer_id int64, first_offset int64],
 *                        preferred_read_replica int32 (v11+), records nullable_bytes]]
 * Sessions (KIP-227) are not kept: every fetch is a full fetch, session_id 0.
 */
import type { KafkaReader } from '../reader';
import type { KafkaWriter } from '../writer';

export interface FetchPartition {
  partition: number;
  fetchOffset: bigint;
  partitionMaxBytes: number;
}

export interface FetchTopic {
  topic: string;
  partitions: FetchPartition[];
}

export interface FetchRequest {
  maxWaitMs: number;
  minBytes: number;
  maxBytes: number;
  isolationLevel: number;
  topics: FetchTopic[];
}

export function decodeFetchRequest(r: KafkaReader, v: number): FetchRequest {
  r.int32();
  const maxWaitMs = r.int32();
  const minBytes = r.int32();
  const maxBytes = r.int32();
  const isolationLevel = r.int8();
  if (v >= 7) {
    r.int32();
    r.int32();
  }
  const topics = r.array((r) => ({
    topic: r.string(),
    partitions: r.array((r) => {
      const partition = r.int32();
      if (v >= 9) r.int32();
      const fetchOffset = r.int64();
      if (v >= 5) r.int64();
      return { partition, fetchOffset, partitionMaxBytes: r.int32() };
    }),
  }));
  if (v >= 7) r.array((r) => [r.string(), r.int32Array()]);
  if (v >= 11) r.string();
  return { maxWaitMs, minBytes, maxBytes, isolationLevel, topics };
}

export interface FetchPartitionResult {
  partition: number;
  errorCode: number;
  highWatermark: bigint;
  logStartOffset: bigint;
  /** Whole record batches, written without copying. */
  batches: Buffer[];
}

export interface FetchTopicResult {
  topic: string;
  partitions: FetchPartitionResult[];
}

export function encodeFetchResponse(w: KafkaWriter, v: number, topics: FetchTopicResult[], throttleMs: number, errorCode = 0): void {
  w.int32(throttleMs);
  if (v >= 7) w.int16(errorCode).int32(0);
  w.array(topics, (w, t) => {
    w.string(t.topic);
    w.array(t.partitions, (w, p) => {
      w.int32(p.partition).int16(p.errorCode).int64(p.highWatermark).int64(p.highWatermark);
      if (v >= 5) w.int64(p.logStartOffset);
      w.arrayLength(0);
      if (v >= 11) w.int32(-1);
      w.bytesList(p.batches);
    });
  });
}
