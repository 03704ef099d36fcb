/**
 * Admin APIs.
 * CreateTopics (19) 0-4: req topics [name string, num_partitions int32, replication_factor int16,
 *   assignments [partition_index int32, broker_ids [int32]], configs [name string, value nullable_string]],
 *   timeout_ms int32, validate_only bool (v1+)
 *   resp throttle_time_ms int32 (v2+), topics [name string, error_code int16, error_message nullable_string (v1+)]
 * DeleteTopics (20) 0-3: req topic_names [string], timeout_ms int32;
 *   resp throttle_time_ms int32 (v1+), responses [name string, error_code int16]
 * InitProducerId (22) 0-1: req transactional_id nullable_string, transaction_timeout_ms int32;
 *   resp throttle_time_ms int32, error_code int16, producer_id int64, producer_epoch int16
 */
import type { KafkaReader } from '../reader';
import type { KafkaWriter } from '../writer';

export interface CreateTopicsRequest {
  topics: { name: string; numPartitions: number; replicationFactor: number; assignments: number }[];
  timeoutMs: number;
  validateOnly: boolean;
}

export function decodeCreateTopicsRequest(r: KafkaReader, v: number): CreateTopicsRequest {
  const topics = r.array((r) => {
    const name = r.string();
    const numPartitions = r.int32();
    const replicationFactor = r.int16();
    const assignments = r.array((r) => [r.int32(), r.int32Array()]).length;
    r.array((r) => [r.string(), r.nullableString()]);
    return { name, numPartitions, replicationFactor, assignments };
  });
  const timeoutMs = r.int32();
  const validateOnly = v >= 1 ? r.bool() : false;
  return { topics, timeoutMs, validateOnly };
}

export function encodeCreateTopicsResponse(w: KafkaWriter, v: number, topics: { name: string; errorCode: number; message: string | null }[]): void {
  if (v >= 2) w.int32(0);
  w.array(topics, (w, t) => {
    w.string(t.name).int16(t.errorCode);
    if (v >= 1) w.nullableString(t.message);
  });
}

export function decodeDeleteTopicsRequest(r: KafkaReader, _v: number): { topics: string[]; timeoutMs: number } {
  const topics = r.array((r) => r.string());
  return { topics, timeoutMs: r.int32() };
}

export function encodeDeleteTopicsResponse(w: KafkaWriter, v: number, topics: { name: string; errorCode: number }[]): void {
  if (v >= 1) w.int32(0);
  w.array(topics, (w, t) => {
    w.string(t.name).int16(t.errorCode);
  });
}

export function decodeInitProducerIdRequest(r: KafkaReader, _v: number): { transactionalId: string | null; timeoutMs: number } {
  const transactionalId = r.nullableString();
  return { transactionalId, timeoutMs: r.int32() };
}

export function encodeInitProducerIdResponse(w: KafkaWriter, _v: number, errorCode: number, producerId: bigint, epoch: number): void {
  w.int32(0).int16(errorCode).int64(producerId).int16(epoch);
}
