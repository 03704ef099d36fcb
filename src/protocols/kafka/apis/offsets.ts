/**
 * ListOffsets (key 2) 1-3, OffsetCommit (key 8) 0-7, OffsetFetch (key 9) 1-7.
 *
 * ListOffsets request: replica_id int32, isolation_level int8 (v2+),
 *   topics [name string, partitions [partition_index int32, timestamp int64]]
 * ListOffsets response: throttle_time_ms int32 (v2+),
 *   topics [name string, partitions [partition_index int32, error_code int16, timestamp int64, offset int64]]
 *
 * OffsetCommit request: group_id string, generation_id int32 (v1+), member_id string (v1+),
 *   retention_time_ms int64 (v2-4), group_instance_id nullable_string (v7+),
 *   topics [name string, partitions [partition_index int32, committed_offset int64,
 *           committed_leader_epoch int32 (v6+), commit_timestamp int64 (v1), committed_metadata nullable_string]]
 * OffsetCommit response: throttle_time_ms int32 (v3+), topics [name string, partitions [partition_index int32, error_code int16]]
 *
 * OffsetFetch request: group_id string, topics nullable [name string, partition_indexes [int32]] (null = all, v2+),
 *   require_stable bool (v7+); flexible from v6
 * OffsetFetch response: throttle_time_ms int32 (v3+), topics [name string, partitions [partition_index int32,
 *   committed_offset int64, committed_leader_epoch int32 (v5+), metadata nullable_string, error_code int16]],
 *   error_code int16 (v2+)
 */
import type { KafkaReader } from '../reader';
import type { KafkaWriter } from '../writer';

export interface ListOffsetsRequest {
  topics: { name: string; partitions: { partition: number; timestamp: bigint }[] }[];
}

export function decodeListOffsetsRequest(r: KafkaReader, v: number): ListOffsetsRequest {
  r.int32();
  if (v >= 2) r.int8();
  const topics = r.array((r) => ({
    name: r.string(),
    partitions: r.array((r) => ({ partition: r.int32(), timestamp: r.int64() })),
  }));
  return { topics };
}

export interface ListOffsetsResult {
  name: string;
  partitions: { partition: number; errorCode: number; timestamp: bigint; offset: bigint }[];
}

export function encodeListOffsetsResponse(w: KafkaWriter, v: number, topics: ListOffsetsResult[]): void {
  if (v >= 2) w.int32(0);
  w.array(topics, (w, t) => {
    w.string(t.name);
    w.array(t.partitions, (w, p) => {
      w.int32(p.partition).int16(p.errorCode).int64(p.timestamp).int64(p.offset);
    });
  });
}

export interface OffsetCommitRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  topics: { name: string; partitions: { partition: number; offset: bigint; metadata: string | null }[] }[];
}

export function decodeOffsetCommitRequest(r: KafkaReader, v: number): OffsetCommitRequest {
  const groupId = r.string();
  const generationId = v >= 1 ? r.int32() : -1;
  const memberId = v >= 1 ? r.string() : '';
  if (v >= 2 && v <= 4) r.int64();
  if (v >= 7) r.nullableString();
  const topics = r.array((r) => ({
    name: r.string(),
    partitions: r.array((r) => {
      const partition = r.int32();
      const offset = r.int64();
      if (v >= 6) r.int32();
      if (v === 1) r.int64();
      return { partition, offset, metadata: r.nullableString() };
    }),
  }));
  return { groupId, generationId, memberId, topics };
}

export interface PartitionErrors {
  name: string;
  partitions: { partition: number; errorCode: number }[];
}

export function encodeOffsetCommitResponse(w: KafkaWriter, v: number, topics: PartitionErrors[], throttleMs = 0): void {
  if (v >= 3) w.int32(throttleMs);
  w.array(topics, (w, t) => {
    w.string(t.name);
    w.array(t.partitions, (w, p) => {
      w.int32(p.partition).int16(p.errorCode);
    });
  });
}

export interface OffsetFetchRequest {
  groupId: string;
  /** null: every partition with a committed offset. */
  topics: { name: string; partitions: number[] }[] | null;
}

export function decodeOffsetFetchRequest(r: KafkaReader, v: number): OffsetFetchRequest {
  const groupId = r.string();
  const topics = r.nullableArray((r) => {
    const name = r.string();
    const partitions = r.int32Array();
    r.taggedFields();
    return { name, partitions };
  });
  if (v >= 7) r.bool();
  r.taggedFields();
  return { groupId, topics };
}

export interface OffsetFetchResult {
  name: string;
  partitions: { partition: number; offset: bigint; metadata: string | null; errorCode: number }[];
}

export function encodeOffsetFetchResponse(w: KafkaWriter, v: number, topics: OffsetFetchResult[], errorCode: number): void {
  if (v >= 3) w.int32(0);
  w.array(topics, (w, t) => {
    w.string(t.name);
    w.array(t.partitions, (w, p) => {
      w.int32(p.partition).int64(p.offset);
      if (v >= 5) w.int32(-1);
      w.nullableString(p.metadata).int16(p.errorCode).tags();
    });
    w.tags();
  });
  if (v >= 2) w.int16(errorCode);
  w.tags();
}
