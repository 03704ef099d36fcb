/**
 * Kafka record batch v2 header, as far as a log needs it (offsets are from
 * the batch's first byte; big-endian):
 *
 *   0  baseOffset int64         (written by the log; outside the CRC)
 *   8  batchLength int32        (bytes after this field: total - 12)
 *  12  partitionLeaderEpoch int32 (outside the CRC)
 *  16  magic int8 = 2
 *  17  crc uint32               CRC-32C of bytes 21..end
 *  21  attributes int16
 *  23  lastOffsetDelta int32
 *  27  firstTimestamp int64
 *  35  maxTimestamp int64
 *  43  producerId int64
 *  51  producerEpoch int16
 *  53  baseSequence int32
 *  57  recordCount int32
 *  61  records...
 */
import { crc32c } from './crc32c';

export const BATCH_HEADER_BYTES = 61;
/** baseOffset + batchLength: the part of a batch batchLength does not count. */
export const LOG_OVERHEAD = 12;
export const MAGIC_V2 = 2;
export const OFF_BASE_OFFSET = 0;
export const OFF_BATCH_LENGTH = 8;
export const OFF_MAGIC = 16;
export const OFF_CRC = 17;
export const OFF_ATTRIBUTES = 21;
export const OFF_LAST_OFFSET_DELTA = 23;
export const OFF_FIRST_TIMESTAMP = 27;
export const OFF_MAX_TIMESTAMP = 35;
export const OFF_RECORD_COUNT = 57;

/** Why a batch was refused; null when it is whole and sound. */
export type BatchProblem = 'short' | 'length' | 'magic' | 'crc' | 'delta';

/**
 * Checks the batch at buf[pos..end): length field, magic 2, CRC-32C and a
 * non-negative lastOffsetDelta. Returns the batch's total size, or the
 * problem. 'short' means the bytes end inside the batch (a torn tail when
 * reading a file; a truncated frame on the wire).
 */
export function checkBatch(buf: Buffer, pos: number, end: number, maxBytes = 0x7fffffff): number | BatchProblem {
  if (end - pos < LOG_OVERHEAD) return 'short';
  const len = buf.readInt32BE(pos + OFF_BATCH_LENGTH);
  if (len < BATCH_HEADER_BYTES - LOG_OVERHEAD || len + LOG_OVERHEAD > maxBytes) return 'length';
  const total = len + LOG_OVERHEAD;
  if (end - pos < OFF_MAGIC + 1) return 'short';
  if (buf[pos + OFF_MAGIC] !== MAGIC_V2) return 'magic';
  if (end - pos < total) return 'short';
  if (buf.readInt32BE(pos + OFF_LAST_OFFSET_DELTA) < 0) return 'delta';
  if (crc32c(buf, pos + OFF_ATTRIBUTES, pos + total) !== buf.readUInt32BE(pos + OFF_CRC)) return 'crc';
  return total;
}

/** The structural check the log itself makes on append (the caller already checked the CRC). */
export function batchShapeProblem(batch: Buffer): string | null {
  if (batch.length < BATCH_HEADER_BYTES) return `record batch of ${batch.length} bytes is shorter than its ${BATCH_HEADER_BYTES}-byte header`;
  if (batch[OFF_MAGIC] !== MAGIC_V2) return `record batch magic ${batch[OFF_MAGIC]} (only magic 2 is kept)`;
  const len = batch.readInt32BE(OFF_BATCH_LENGTH);
  if (len + LOG_OVERHEAD !== batch.length) return `record batch length field ${len} does not match its ${batch.length} bytes`;
  if (batch.readInt32BE(OFF_LAST_OFFSET_DELTA) < 0) return 'record batch lastOffsetDelta is negative';
  return null;
}

export function lastOffsetDelta(batch: Buffer, pos = 0): number {
  return batch.readInt32BE(pos + OFF_LAST_OFFSET_DELTA);
}

export function maxTimestamp(batch: Buffer, pos = 0): bigint {
  return batch.readBigInt64BE(pos + OFF_MAX_TIMESTAMP);
}
