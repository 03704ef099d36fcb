/**
 * Produce (key 0), versions 3-7.
 *   Request: transactional_id nullable_string, acks int16, timeout_ms int32,
 *            topic_data [name string, partition_data [index int32, records nullable_bytes]]
 *   Response: responses [name string, partition_responses [index int32, error_code int16,
 *                        base_offset int64, log_append_time_ms int64, log_start_offset int64 (v5+)]],
 *             throttle_time_ms int32
 */
import type { KafkaReader } from '../reader';
import type { KafkaWriter } from '../writer';

export interface ProducePartition {
  index: number;
  /** A view of the request frame. */
  records: Buffer | null;
}

export interface ProduceTopic {
  name: string;
  partitions: ProducePartition[];
}

export interface ProduceRequest {
  transactionalId: string | null;
  acks: number;
  timeoutMs: number;
  topics: ProduceTopic[];
}

export function decodeProduceRequest(r: KafkaReader, _v: number): ProduceRequest {
  const transactionalId = r.nullableString();
  const acks = r.int16();
  const timeoutMs = r.int32();
  const topics = r.array((r) => ({
    name: r.string(),
    partitions: r.array((r) => ({ index: r.int32(), records: r.nullableBytes() })),
  }));
  return { transactionalId, acks, timeoutMs, topics };
}

export interface ProducePartitionResult {
  index: number;
  errorCode: number;
  baseOffset: bigint;
  logAppendTimeMs: bigint;
  logStartOffset: bigint;
}

export interface ProduceTopicResult {
  name: string;
  partitions: ProducePartitionResult[];
}

export function encodeProduceResponse(w: KafkaWriter, v: number, topics: ProduceTopicResult[], throttleMs: number): void {
  w.array(topics, (w, t) => {
    w.string(t.name);
    w.array(t.partitions, (w, p) => {
      w.int32(p.index).int16(p.errorCode).int64(p.baseOffset).int64(p.logAppendTimeMs);
      if (v >= 5) w.int64(p.logStartOffset);
    });
  });
  w.int32(throttleMs);
}
