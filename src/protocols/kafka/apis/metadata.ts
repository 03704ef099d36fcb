/**
 * Metadata (key 3), versions 0-7.
 *   Request: topics [name string] (v1+: nullable, null = all; v0: empty = all),
 *            allow_auto_topic_creation bool (v4+)
 *   Response: throttle_time_ms int32 (v3+),
 *             brokers [node_id int32, host string, port int32, rack nullable_string (v1+)],
 *             cluster_id nullable_string (v2+), controller_id int32 (v1+),
 *             topics [error_code int16, name string, is_internal bool (v1+),
 *                     partitions [error_code int16, partition_index int32, leader_id int32,
 *                                 leader_epoch int32 (v7+), replica_nodes [int32], isr_nodes [int32],
 *                                 offline_replicas [int32] (v5+)]]
 */
import type { KafkaReader } from '../reader';
import type { KafkaWriter } from '../writer';

export interface MetadataRequest {
  /** null: every topic. */
  topics: string[] | null;
  allowAutoTopicCreation: boolean;
}

export function decodeMetadataRequest(r: KafkaReader, v: number): MetadataRequest {
  let topics = r.nullableArray((r) => r.string());
  if (v === 0 && topics !== null && topics.length === 0) topics = null;
  const allowAutoTopicCreation = v >= 4 ? r.bool() : true;
  return { topics, allowAutoTopicCreation };
}

export interface BrokerInfo {
  nodeId: number;
  host: string;
  port: number;
}

export interface TopicMetadata {
  errorCode: number;
  name: string;
  partitions: number;
}

export interface MetadataResponse {
  brokers: BrokerInfo[];
  clusterId: string;
  controllerId: number;
  topics: TopicMetadata[];
}

export function encodeMetadataResponse(w: KafkaWriter, v: number, m: MetadataResponse): void {
  if (v >= 3) w.int32(0);
  w.array(m.brokers, (w, b) => {
    w.int32(b.nodeId).string(b.host).int32(b.port);
    if (v >= 1) w.nullableString(null);
  });
  if (v >= 2) w.nullableString(m.clusterId);
  if (v >= 1) w.int32(m.controllerId);
  const leader = m.controllerId;
  w.array(m.topics, (w, t) => {
    w.int16(t.errorCode).string(t.name);
    if (v >= 1) w.bool(false);
    w.arrayLength(t.partitions);
    for (let p = 0; p < t.partitions; p++) {
      w.int16(0).int32(p).int32(leader);
      if (v >= 7) w.int32(0);
      w.int32Array([leader]).int32Array([leader]);
      if (v >= 5) w.arrayLength(0);
    }
  });
}
