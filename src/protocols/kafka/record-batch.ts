/**
 * Record batches v2 (magic 2) as producers send them:
 *
 *   baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 |
 *   magic int8 | crc uint32 | attributes int16 | lastOffsetDelta int32 |
 *   baseTimestamp int64 | maxTimestamp int64 | producerId int64 |
 *   producerEpoch int16 | baseSequence int32 | recordCount int32 | records
 *
 * The CRC-32C covers attributes to the end. attributes bits 0-2: compression
 * (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd); bit 3 timestamp type; bit 4
 * transactional; bit 5 control. Records stay as the producer wrote them:
 * the log only writes baseOffset, which is outside the CRC.
 */
import { crc32c } from '../../components/log/crc32c';
import { KafkaError } from './error-codes';

export const BATCH_HEADER = 61;
const OFF_LENGTH = 8;
const OFF_MAGIC = 16;
const OFF_CRC = 17;
const OFF_ATTRIBUTES = 21;
const OFF_LAST_DELTA = 23;
const OFF_COUNT = 57;

export interface BatchCheck {
  /** KafkaError.NONE when the batch may be appended. */
  error: number;
  /** Why not, for logs. */
  reason?: string;
  /** Whole batches (each a view of the request) when error is NONE. */
  batches: Buffer[];
  records: number;
}

/**
 * Splits a produce request's records field into batches and checks each one:
 * complete, magic 2, CRC-32C, a supported compression, and (uncompressed) a
 * record count matching lastOffsetDelta.
 */
export function checkRecords(records: Buffer): BatchCheck {
  const batches: Buffer[] = [];
  let total = 0;
  let p = 0;
  const fail = (error: number, reason: string): BatchCheck => ({ error, reason, batches: [], records: 0 });
  if (records.length === 0) return fail(KafkaError.INVALID_RECORD, 'empty records');
  while (p < records.length) {
    if (records.length - p < BATCH_HEADER) return fail(KafkaError.CORRUPT_MESSAGE, 'truncated record batch header');
    const len = records.readInt32BE(p + OFF_LENGTH);
    const size = 12 + len;
    if (len < BATCH_HEADER - 12 || p + size > records.length) return fail(KafkaError.CORRUPT_MESSAGE, `record batch length ${len} does not fit the ${records.length - p} bytes sent`);
    const magic = records[p + OFF_MAGIC]!;
    if (magic !== 2) return fail(KafkaError.CORRUPT_MESSAGE, `record batch magic ${magic} (only v2 is accepted)`);
    const want = records.readUInt32BE(p + OFF_CRC);
    const got = crc32c(records, p + OFF_ATTRIBUTES, p + size);
    if (want !== got) return fail(KafkaError.CORRUPT_MESSAGE, `record batch CRC mismatch (sent ${want.toString(16)}, computed ${got.toString(16)})`);
    const attributes = records.readInt16BE(p + OFF_ATTRIBUTES);
    const compression = attributes & 7;
    const lastDelta = records.readInt32BE(p + OFF_LAST_DELTA);
    const count = records.readInt32BE(p + OFF_COUNT);
    if (count <= 0 || lastDelta < count - 1) return fail(KafkaError.INVALID_RECORD, `record batch with ${count} records and lastOffsetDelta ${lastDelta}`);
    const batch = records.subarray(p, p + size);
    // gzip batches are kept compressed (the CRC covers them; consumers inflate them): only the gzip magic is checked here.
    if (compression === 1 && (size < BATCH_HEADER + 2 || records[p + BATCH_HEADER] !== 0x1f || records[p + BATCH_HEADER + 1] !== 0x8b)) {
      return fail(KafkaError.CORRUPT_MESSAGE, 'gzip batch without a gzip stream');
    }
    if (compression > 1) return fail(KafkaError.UNSUPPORTED_COMPRESSION_TYPE, `compression codec ${compression} is not supported (none and gzip are)`);
    batches.push(batch);
    total += count;
    p += size;
  }
  return { error: KafkaError.NONE, batches, records: total };
}

export function batchRecordCount(batch: Buffer): number {
  return batch.readInt32BE(OFF_COUNT);
}

export function batchLastOffsetDelta(batch: Buffer): number {
  return batch.readInt32BE(OFF_LAST_DELTA);
}

// --- building batches (tests, the benchmark's payloads, the no-op sink) -----

export interface SimpleRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers?: { key: string; value: Buffer }[];
  timestampDelta?: number;
}

function varintSize(v: number): number {
  let z = ((v << 1) ^ (v >> 31)) >>> 0;
  let n = 1;
  while (z > 0x7f) {
    z >>>= 7;
    n++;
  }
  return n;
}

function writeVarint(buf: Buffer, pos: number, v: number): number {
  let z = ((v << 1) ^ (v >> 31)) >>> 0;
  while (z > 0x7f) {
    buf[pos++] = (z & 0x7f) | 0x80;
    z >>>= 7;
  }
  buf[pos++] = z;
  return pos;
}

/** Encodes records (varint framing, as in a v2 batch). */
export function encodeRecords(records: readonly SimpleRecord[]): Buffer {
  const bodies: Buffer[] = [];
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const headers = r.headers ?? [];
    let n = 1 + varintSize(r.timestampDelta ?? 0) + varintSize(i);
    n += varintSize(r.key === null ? -1 : r.key.length) + (r.key?.length ?? 0);
    n += varintSize(r.value === null ? -1 : r.value.length) + (r.value?.length ?? 0);
    n += varintSize(headers.length);
    for (const h of headers) n += varintSize(Buffer.byteLength(h.key)) + Buffer.byteLength(h.key) + varintSize(h.value.length) + h.value.length;
    const b = Buffer.allocUnsafe(varintSize(n) + n);
    let p = writeVarint(b, 0, n);
    b[p++] = 0;
    p = writeVarint(b, p, r.timestampDelta ?? 0);
    p = writeVarint(b, p, i);
    if (r.key === null) p = writeVarint(b, p, -1);
    else {
      p = writeVarint(b, p, r.key.length);
      p += r.key.copy(b, p);
    }
    if (r.value === null) p = writeVarint(b, p, -1);
    else {
      p = writeVarint(b, p, r.value.length);
      p += r.value.copy(b, p);
    }
    p = writeVarint(b, p, headers.length);
    for (const h of headers) {
      const k = Buffer.from(h.key);
      p = writeVarint(b, p, k.length);
      p += k.copy(b, p);
      p = writeVarint(b, p, h.value.length);
      p += h.value.copy(b, p);
    }
    bodies.push(b);
  }
  return Buffer.concat(bodies);
}

/** A whole v2 batch around records (already encoded, maybe compressed), CRC filled in. */
export function buildBatch(recordBytes: Buffer, count: number, opts: { baseTimestamp?: bigint; compression?: number; baseOffset?: bigint } = {}): Buffer {
  const b = Buffer.alloc(BATCH_HEADER + recordBytes.length);
  const ts = opts.baseTimestamp ?? BigInt(Date.now());
  b.writeBigInt64BE(opts.baseOffset ?? 0n, 0);
  b.writeInt32BE(b.length - 12, OFF_LENGTH);
  b.writeInt32BE(0, 12);
  b[OFF_MAGIC] = 2;
  b.writeInt16BE(opts.compression ?? 0, OFF_ATTRIBUTES);
  b.writeInt32BE(count - 1, OFF_LAST_DELTA);
  b.writeBigInt64BE(ts, 27);
  b.writeBigInt64BE(ts, 35);
  b.writeBigInt64BE(-1n, 43);
  b.writeInt16BE(-1, 51);
  b.writeInt32BE(-1, 53);
  b.writeInt32BE(count, OFF_COUNT);
  recordBytes.copy(b, BATCH_HEADER);
  b.writeUInt32BE(crc32c(b, OFF_ATTRIBUTES), OFF_CRC);
  return b;
}

/** Decodes the records of an uncompressed batch (tests). */
export function decodeRecords(batch: Buffer): { offset: bigint; key: Buffer | null; value: Buffer | null }[] {
  const base = batch.readBigInt64BE(0);
  const count = batch.readInt32BE(OFF_COUNT);
  let p = BATCH_HEADER;
  const readVarint = (): number => {
    let z = 0;
    let shift = 0;
    for (;;) {
      const byte = batch[p++]!;
      z |= (byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) break;
      shift += 7;
    }
    z >>>= 0;
    return (z >>> 1) ^ -(z & 1);
  };
  const out: { offset: bigint; key: Buffer | null; value: Buffer | null }[] = [];
  for (let i = 0; i < count; i++) {
    readVarint();
    p++;
    readVarint();
    const delta = readVarint();
    const kl = readVarint();
    const key = kl < 0 ? null : batch.subarray(p, p + kl);
    if (kl > 0) p += kl;
    const vl = readVarint();
    const value = vl < 0 ? null : batch.subarray(p, p + vl);
    if (vl > 0) p += vl;
    const hn = readVarint();
    for (let h = 0; h < hn; h++) {
      const hk = readVarint();
      p += Math.max(0, hk);
      const hv = readVarint();
      p += Math.max(0, hv);
    }
    out.push({ offset: base + BigInt(delta), key, value });
  }
  return out;
}
