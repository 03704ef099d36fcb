/**
 * Builds uncompressed record batches v2 (tests and benchmarks; the broker
 * gets its batches from producers). Record grammar, varints zigzag-encoded:
 *
 *   length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
 *   keyLength varint (-1: null), key, valueLength varint, value,
 *   headerCount varint (always 0 here)
 */
import { crc32c } from './crc32c';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2, OFF_ATTRIBUTES, OFF_CRC } from './batch';

export interface BuildRecord {
  key?: Buffer | null;
  value: Buffer | null;
  /** Record timestamp (ms); default the batch's timestamp. */
  timestamp?: number;
}

function zigzagSize(n: number): number {
  let v = n >= 0 ? n * 2 : -n * 2 - 1;
  let size = 1;
  while (v >= 128) (v = Math.floor(v / 128), size++);
  return size;
}

function writeZigzag(buf: Buffer, pos: number, n: number): number {
  let v = n >= 0 ? n * 2 : -n * 2 - 1;
  while (v >= 128) {
    buf[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/** One uncompressed batch v2 holding `records`, baseOffset 0, CRC filled in. */
export function buildBatch(records: readonly BuildRecord[], opts: { timestamp?: number; producerId?: bigint } = {}): Buffer {
  if (records.length === 0) throw new Error('a record batch needs at least one record');
  const first = opts.timestamp ?? records[0]!.timestamp ?? Date.now();
  let maxTs = first;
  const bodies: number[] = [];
  let recordsBytes = 0;
  records.forEach((r, i) => {
    const ts = r.timestamp ?? first;
    if (ts > maxTs) maxTs = ts;
    const k = r.key ?? null;
    const v = r.value;
    const body =
      1 + zigzagSize(ts - first) + zigzagSize(i) + zigzagSize(k === null ? -1 : k.length) + (k?.length ?? 0) + zigzagSize(v === null ? -1 : v.length) + (v?.length ?? 0) + 1;
    bodies.push(body);
    recordsBytes += zigzagSize(body) + body;
  });
  const total = BATCH_HEADER_BYTES + recordsBytes;
  const b = Buffer.alloc(total);
  b.writeBigInt64BE(0n, 0);
  b.writeInt32BE(total - LOG_OVERHEAD, 8);
  b.writeInt32BE(-1, 12);
  b[16] = MAGIC_V2;
  b.writeInt16BE(0, 21);
  b.writeInt32BE(records.length - 1, 23);
  b.writeBigInt64BE(BigInt(first), 27);
  b.writeBigInt64BE(BigInt(maxTs), 35);
  b.writeBigInt64BE(opts.producerId ?? -1n, 43);
  b.writeInt16BE(-1, 51);
  b.writeInt32BE(-1, 53);
  b.writeInt32BE(records.length, 57);
  let p = BATCH_HEADER_BYTES;
  records.forEach((r, i) => {
    const ts = r.timestamp ?? first;
    const k = r.key ?? null;
    const v = r.value;
    p = writeZigzag(b, p, bodies[i]!);
    b[p++] = 0;
    p = writeZigzag(b, p, ts - first);
    p = writeZigzag(b, p, i);
    p = writeZigzag(b, p, k === null ? -1 : k.length);
    if (k !== null) p += k.copy(b, p);
    p = writeZigzag(b, p, v === null ? -1 : v.length);
    if (v !== null) p += v.copy(b, p);
    p = writeZigzag(b, p, 0);
  });
  b.writeUInt32BE(crc32c(b, OFF_ATTRIBUTES, total), OFF_CRC);
  return b;
}

/** Values of an uncompressed batch (tests read back what they wrote). */
export function batchValues(batch: Buffer): (Buffer | null)[] {
  const out: (Buffer | null)[] = [];
  const count = batch.readInt32BE(57);
  let p = BATCH_HEADER_BYTES;
  const readZigzag = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const byte = batch[p++]!;
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) break;
      mul *= 128;
    }
    return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
  };
  for (let i = 0; i < count; i++) {
    readZigzag(); // length
    p++; // attributes
    readZigzag(); // timestampDelta
    readZigzag(); // offsetDelta
    const kl = readZigzag();
    if (kl > 0) p += kl;
    const vl = readZigzag();
    out.push(vl < 0 ? null : batch.subarray(p, p + vl));
    if (vl > 0) p += vl;
    const hc = readZigzag();
    for (let h = 0; h < hc; h++) {
      const hk = readZigzag();
      p += hk;
      const hv = readZigzag();
      if (hv > 0) p += hv;
    }
  }
  return out;
}
