/**
 * Redis Cluster key slots.
 *
 *   slot(key) = CRC16/XMODEM(hashed part of key) mod 16384
 *
 * CRC16/XMODEM: polynomial 0x1021, initial value 0, no reflection, no final
 * XOR (check value: "123456789" -> 0x31C3). The hashed part is the whole key
 * unless it contains a hash tag: the bytes between the first '{' and the
 * first '}' after it, when there is at least one byte between them. "{}x{a}"
 * hashes the whole key (the first tag is empty; later braces do not count).
 */
import { HashTag } from './hash-tag';

export const CLUSTER_SLOTS = 16384;

/** Byte-at-a-time table of CRC16/XMODEM, derived from the polynomial (MSB first). */
export const CRC16_XMODEM_TABLE: Uint16Array = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let b = 0; b < 8; b++) c = c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1;
    t[i] = c & 0xffff;
  }
  return t;
})();

/** CRC16/XMODEM of key[start, end). */
export function crc16Xmodem(key: Uint8Array, start = 0, end = key.length): number {
  const t = CRC16_XMODEM_TABLE;
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) ^ t[((crc >>> 8) ^ key[i]!) & 0xff]!) & 0xffff;
  return crc;
}

/** Redis Cluster's tag rule is the same as twemproxy's hash_tag "{}". One scratch object: pick is synchronous. */
const clusterTag = new HashTag('{}');

/** The Redis Cluster slot (0..16383) of key[start, end), as CLUSTER KEYSLOT answers. */
export function keySlot(key: Uint8Array, start = 0, end = key.length): number {
  clusterTag.apply(key, start, end);
  return crc16Xmodem(key, clusterTag.start, clusterTag.end) & (CLUSTER_SLOTS - 1);
}
