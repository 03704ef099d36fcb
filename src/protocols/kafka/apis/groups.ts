/**
 * Group APIs.
 * FindCoordinator (10) 0-2: req key string, key_type int8 (v1+);
 *   resp throttle_time_ms int32 (v1+), error_code int16, error_message nullable_string (v1+), node_id int32, host string, port int32
 * JoinGroup (11) 0-5: req group_id string, session_timeout_ms int32, rebalance_timeout_ms int32 (v1+),
 *   member_id string, group_instance_id nullable_string (v5+), protocol_type string, protocols [name string, metadata bytes];
 *   resp throttle_time_ms int32 (v2+), error_code int16, generation_id int32, protocol_name string, leader string,
 *   member_id string, members [member_id string, group_instance_id nullable_string (v5+), metadata bytes]
 * SyncGroup (14) 0-3: req group_id string, generation_id int32, member_id string, group_instance_id nullable_string (v3+),
 *   assignments [member_id string, assignment bytes]; resp throttle_time_ms int32 (v1+), error_code int16, assignment bytes
 * Heartbeat (12) 0-3: req group_id string, generation_id int32, member_id string, group_instance_id nullable_string (v3+);
 *   resp throttle_time_ms int32 (v1+), error_code int16
 * LeaveGroup (13) 0-3: req group_id string, member_id string (v0-2) | members [member_id string, group_instance_id nullable_string] (v3+);
 *   resp throttle_time_ms int32 (v1+), error_code int16, members [member_id string, group_instance_id nullable_string, error_code int16] (v3+)
 * DescribeGroups (15) 0-2: req groups [string]; resp throttle_time_ms int32 (v1+), groups [error_code int16, group_id string,
 *   group_state string, protocol_type string, protocol_data string, members [member_id string, client_id string,
 *   client_host string, member_metadata bytes, member_assignment bytes]]
 * ListGroups (16) 0-2: req (empty); resp throttle_time_ms int32 (v1+), error_code int16, groups [group_id string, protocol_type string]
 */
import type { KafkaReader } from '../reader';
import type { KafkaWriter } from '../writer';

export function decodeFindCoordinatorRequest(r: KafkaReader, v: number): { key: string; keyType: number } {
  const key = r.string();
  return { key, keyType: v >= 1 ? r.int8() : 0 };
}

export function encodeFindCoordinatorResponse(w: KafkaWriter, v: number, errorCode: number, nodeId: number, host: string, port: number): void {
  if (v >= 1) w.int32(0);
  w.int16(errorCode);
  if (v >= 1) w.nullableString(null);
  w.int32(nodeId).string(host).int32(port);
}

export interface JoinGroupRequest {
  groupId: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  memberId: string;
  groupInstanceId: string | null;
  protocolType: string;
  protocols: { name: string; metadata: Buffer }[];
}

export function decodeJoinGroupRequest(r: KafkaReader, v: number): JoinGroupRequest {
  const groupId = r.string();
  const sessionTimeoutMs = r.int32();
  const rebalanceTimeoutMs = v >= 1 ? r.int32() : sessionTimeoutMs;
  const memberId = r.string();
  const groupInstanceId = v >= 5 ? r.nullableString() : null;
  const protocolType = r.string();
  // Metadata is kept past this request (the leader gets it): copy it out of the frame.
  const protocols = r.array((r) => ({ name: r.string(), metadata: Buffer.from(r.bytes()) }));
  return { groupId, sessionTimeoutMs, rebalanceTimeoutMs, memberId, groupInstanceId, protocolType, protocols };
}

export interface JoinGroupResponse {
  errorCode: number;
  generationId: number;
  protocolName: string;
  leader: string;
  memberId: string;
  members: { memberId: string; groupInstanceId: string | null; metadata: Buffer }[];
}

export function encodeJoinGroupResponse(w: KafkaWriter, v: number, j: JoinGroupResponse): void {
  if (v >= 2) w.int32(0);
  w.int16(j.errorCode).int32(j.generationId).string(j.protocolName).string(j.leader).string(j.memberId);
  w.array(j.members, (w, m) => {
    w.string(m.memberId);
    if (v >= 5) w.nullableString(m.groupInstanceId);
    w.bytes(m.metadata);
  });
}

export interface SyncGroupRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  assignments: { memberId: string; assignment: Buffer }[];
}

export function decodeSyncGroupRequest(r: KafkaReader, v: number): SyncGroupRequest {
  const groupId = r.string();
  const generationId = r.int32();
  const memberId = r.string();
  if (v >= 3) r.nullableString();
  const assignments = r.array((r) => ({ memberId: r.string(), assignment: Buffer.from(r.bytes()) }));
  return { groupId, generationId, memberId, assignments };
}

export function encodeSyncGroupResponse(w: KafkaWriter, v: number, errorCode: number, assignment: Buffer): void {
  if (v >= 1) w.int32(0);
  w.int16(errorCode).bytes(assignment);
}

export interface HeartbeatRequest {
  groupId: string;
  generationId: number;
  memberId: string;
}

export function decodeHeartbeatRequest(r: KafkaReader, v: number): HeartbeatRequest {
  const groupId = r.string();
  const generationId = r.int32();
  const memberId = r.string();
  if (v >= 3) r.nullableString();
  return { groupId, generationId, memberId };
}

/** Heartbeat and ListGroups-less error-only responses share this shape. */
export function encodeErrorOnlyResponse(w: KafkaWriter, v: number, errorCode: number, throttleFrom = 1): void {
  if (v >= throttleFrom) w.int32(0);
  w.int16(errorCode);
}

export interface LeaveGroupRequest {
  groupId: string;
  members: { memberId: string; groupInstanceId: string | null }[];
}

export function decodeLeaveGroupRequest(r: KafkaReader, v: number): LeaveGroupRequest {
  const groupId = r.string();
  if (v < 3) return { groupId, members: [{ memberId: r.string(), groupInstanceId: null }] };
  return { groupId, members: r.array((r) => ({ memberId: r.string(), groupInstanceId: r.nullableString() })) };
}

export function encodeLeaveGroupResponse(w: KafkaWriter, v: number, errorCode: number, members: { memberId: string; groupInstanceId: string | null; errorCode: number }[]): void {
  if (v >= 1) w.int32(0);
  w.int16(errorCode);
  if (v >= 3) {
    w.array(members, (w, m) => {
      w.string(m.memberId).nullableString(m.groupInstanceId).int16(m.errorCode);
    });
  }
}

export function decodeDescribeGroupsRequest(r: KafkaReader, _v: number): { groups: string[] } {
  return { groups: r.array((r) => r.string()) };
}

export interface GroupDescription {
  errorCode: number;
  groupId: string;
  state: string;
  protocolType: string;
  protocolData: string;
  members: { memberId: string; clientId: string; clientHost: string; metadata: Buffer; assignment: Buffer }[];
}

export function encodeDescribeGroupsResponse(w: KafkaWriter, v: number, groups: GroupDescription[]): void {
  if (v >= 1) w.int32(0);
  w.array(groups, (w, g) => {
    w.int16(g.errorCode).string(g.groupId).string(g.state).string(g.protocolType).string(g.protocolData);
    w.array(g.members, (w, m) => {
      w.string(m.memberId).string(m.clientId).string(m.clientHost).bytes(m.metadata).bytes(m.assignment);
    });
  });
}

export function encodeListGroupsResponse(w: KafkaWriter, v: number, groups: { groupId: string; protocolType: string }[]): void {
  if (v >= 1) w.int32(0);
  w.int16(0);
  w.array(groups, (w, g) => {
    w.string(g.groupId).string(g.protocolType);
  });
}
