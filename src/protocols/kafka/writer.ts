/**
 * Builds one response frame: a 4-byte size, the response header, the body.
 * Small fields are written into a growable buffer; large byte fields (record
 * batches) are kept as their own parts, so a fetch response is written with
 * cork/uncork and never copies the records it returns.
 */
const COPY_BELOW = 1024;

export class KafkaWriter {
  private buf: Buffer;
  private pos = 0;
  /** Where the current buffer's not-yet-flushed bytes start. */
  private mark = 0;
  private readonly parts: Buffer[] = [];
  private partsLength = 0;
  flex = false;

  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
    this.pos = 4;
  }

  /** Response header: v0 is the correlation id; v1 adds tagged fields (flexible responses, ApiVersions excepted). */
  header(correlationId: number, headerFlex: boolean): this {
    this.int32(correlationId);
    if (headerFlex) this.uvarint(0);
    return this;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos - this.mark + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, this.mark, this.pos);
    // The first part owns the size prefix: keep it in `next` only while nothing was flushed.
    this.pos -= this.mark;
    this.mark = 0;
    this.buf = next;
  }

  int8(v: number): this {
    this.room(1);
    this.buf.writeInt8(v, this.pos);
    this.pos += 1;
    return this;
  }
  bool(v: boolean): this {
    return this.int8(v ? 1 : 0);
  }
  int16(v: number): this {
    this.room(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }
  int32(v: number): this {
    this.room(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }
  uint32(v: number): this {
    this.room(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }
  int64(v: bigint): this {
    this.room(8);
    this.buf.writeBigInt64BE(v, this.pos);
    this.pos += 8;
    return this;
  }
  uvarint(v: number): this {
    this.room(5);
    v >>>= 0;
    while (v > 0x7f) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.pos++] = v;
    return this;
  }

  private length(n: number, classic16: boolean): this {
    if (this.flex) return this.uvarint(n + 1);
    return classic16 ? this.int16(n) : this.int32(n);
  }

  nullableString(s: string | null): this {
    if (s === null) return this.length(-1, true);
    const n = Buffer.byteLength(s);
    this.length(n, true);
    this.room(n);
    this.pos += this.buf.write(s, this.pos, 'utf8');
    return this;
  }
  string(s: string): this {
    return this.nullableString(s);
  }

  nullableBytes(b: Buffer | null): this {
    if (b === null) return this.length(-1, false);
    this.length(b.length, false);
    return this.raw(b);
  }
  bytes(b: Buffer): this {
    return this.nullableBytes(b);
  }

  /** Length-prefixed bytes made of several buffers (the record batches of one partition). */
  bytesList(list: readonly Buffer[]): this {
    let n = 0;
    for (let i = 0; i < list.length; i++) n += list[i]!.length;
    this.length(n, false);
    for (let i = 0; i < list.length; i++) this.raw(list[i]!);
    return this;
  }

  /** Appends bytes with no length: small ones are copied, large ones kept as a part. */
  raw(b: Buffer): this {
    if (b.length < COPY_BELOW) {
      this.room(b.length);
      b.copy(this.buf, this.pos);
      this.pos += b.length;
      return this;
    }
    this.flushCurrent();
    this.parts.push(b);
    this.partsLength += b.length;
    return this;
  }

  private flushCurrent(): void {
    if (this.pos === this.mark) return;
    const view = this.buf.subarray(this.mark, this.pos);
    this.parts.push(view);
    this.partsLength += view.length;
    this.mark = this.pos;
  }

  arrayLength(n: number): this {
    return this.length(n, false);
  }
  nullArray(): this {
    return this.length(-1, false);
  }
  array<T>(items: readonly T[], each: (w: KafkaWriter, item: T) => void): this {
    this.arrayLength(items.length);
    for (let i = 0; i < items.length; i++) each(this, items[i]!);
    return this;
  }
  int32Array(items: readonly number[]): this {
    this.arrayLength(items.length);
    for (let i = 0; i < items.length; i++) this.int32(items[i]!);
    return this;
  }

  /** An empty tagged-field section, in flexible versions only. */
  tags(): this {
    if (this.flex) this.uvarint(0);
    return this;
  }

  /** The finished frame (size prefix filled in) as one or more buffers. */
  finish(): Buffer[] {
    this.flushCurrent();
    const first = this.parts[0]!;
    first.writeInt32BE(this.partsLength - 4, 0);
    return this.parts;
  }

  /** The finished frame as one buffer (tests, small replies). */
  finishOne(): Buffer {
    const parts = this.finish();
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}
