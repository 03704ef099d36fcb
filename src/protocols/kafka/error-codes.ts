/**
 * Kafka error codes this broker facade sends, and the one mapping from a
 * ProxyError (filters, routing, components) to a Kafka error code.
 */
import { ErrorCode, ProxyError } from '../../errors';

export const KafkaError = {
  UNKNOWN_SERVER_ERROR: -1,
  NONE: 0,
  OFFSET_OUT_OF_RANGE: 1,
  CORRUPT_MESSAGE: 2,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  LEADER_NOT_AVAILABLE: 5,
  REQUEST_TIMED_OUT: 7,
  MESSAGE_TOO_LARGE: 10,
  COORDINATOR_NOT_AVAILABLE: 15,
  NOT_COORDINATOR: 16,
  INVALID_TOPIC_EXCEPTION: 17,
  INVALID_REQUIRED_ACKS: 21,
  ILLEGAL_GENERATION: 22,
  INCONSISTENT_GROUP_PROTOCOL: 23,
  INVALID_GROUP_ID: 24,
  UNKNOWN_MEMBER_ID: 25,
  INVALID_SESSION_TIMEOUT: 26,
  REBALANCE_IN_PROGRESS: 27,
  TOPIC_AUTHORIZATION_FAILED: 29,
  UNSUPPORTED_VERSION: 35,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  INVALID_REPLICATION_FACTOR: 38,
  INVALID_REQUEST: 42,
  POLICY_VIOLATION: 44,
  KAFKA_STORAGE_ERROR: 56,
  NON_EMPTY_GROUP: 68,
  GROUP_ID_NOT_FOUND: 69,
  UNSUPPORTED_COMPRESSION_TYPE: 76,
  MEMBER_ID_REQUIRED: 79,
  INVALID_RECORD: 87,
  THROTTLING_QUOTA_EXCEEDED: 89,
} as const;

/** The Kafka error a failure of Portway's own path becomes. */
export function kafkaErrorOf(err: ProxyError): number {
  switch (err.code) {
    case ErrorCode.RateLimited:
      return KafkaError.THROTTLING_QUOTA_EXCEEDED;
    case ErrorCode.NoRoute:
      return KafkaError.UNKNOWN_TOPIC_OR_PARTITION;
    case ErrorCode.Timeout:
      return KafkaError.REQUEST_TIMED_OUT;
    case ErrorCode.CircuitOpen:
    case ErrorCode.Overflow:
    case ErrorCode.NoHealthyUpstream:
    case ErrorCode.Draining:
      // Retriable: clients refresh metadata, back off and try again.
      return KafkaError.LEADER_NOT_AVAILABLE;
    case ErrorCode.Forbidden:
      return KafkaError.TOPIC_AUTHORIZATION_FAILED;
    case ErrorCode.Protocol:
      // A log refusing a malformed batch, or a request the codec cannot take.
      return err.source === 'downstream' ? KafkaError.CORRUPT_MESSAGE : KafkaError.INVALID_REQUEST;
    case ErrorCode.TopicExists:
      return KafkaError.TOPIC_ALREADY_EXISTS;
    case ErrorCode.InvalidTopic:
      return KafkaError.INVALID_TOPIC_EXCEPTION;
    case ErrorCode.Storage:
    case ErrorCode.UpstreamConnect:
    case ErrorCode.ConnectTimeout:
    case ErrorCode.UpstreamReset:
      return KafkaError.KAFKA_STORAGE_ERROR;
    default:
      // A failing log component (disk full, I/O error) is a storage error: retriable for clients.
      return err.source === 'upstream' ? KafkaError.KAFKA_STORAGE_ERROR : KafkaError.UNKNOWN_SERVER_ERROR;
  }
}

/** Throttle time (ms) a rejection asks the client to wait, 0 when none. */
export function throttleOf(err: ProxyError): number {
  return err.retryAfterMs !== undefined ? Math.min(0x7fffffff, Math.ceil(err.retryAfterMs)) : 0;
}

/** A log component's failure: its own ProxyError, or anything else it threw as a storage failure (judged by breakers as upstream). */
export function componentError(e: unknown): ProxyError {
  if (e instanceof ProxyError) return e;
  return new ProxyError(ErrorCode.Storage, e instanceof Error ? e.message : String(e), { source: 'upstream', cause: e });
}
