/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
 * Kafka record batches v2. Table-driven, eight bytes per step ("slicing by
 * 8"): table k holds the CRC contribution of a byte followed by k zero bytes.
 */
const POLY = 0x82f63b78;

const T = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n]!;
  for (let t = 1; t < 8; t++) {
    c = (c >>> 8) ^ T[c & 0xff]!;
    T[t * 256 + n] = c;
  }
}

/** CRC-32C of buf[start, end), as an unsigned 32-bit number. */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = -1;
  let i = start;
  const stop8 = end - ((end - start) & 7);
  while (i < stop8) {
    const a = crc ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
    const b = buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24);
    crc =
      T[1792 + (a & 0xff)]! ^
      T[1536 + ((a >>> 8) & 0xff)]! ^
      T[1280 + ((a >>> 16) & 0xff)]! ^
      T[1024 + (a >>> 24)]! ^
      T[768 + (b & 0xff)]! ^
      T[512 + ((b >>> 8) & 0xff)]! ^
      T[256 + ((b >>> 16) & 0xff)]! ^
      T[b >>> 24]!;
    i += 8;
  }
  while (i < end) crc = (crc >>> 8) ^ T[(crc ^ buf[i++]!) & 0xff]!;
  return ~crc >>> 0;
}
