/**
 * Reads Kafka protocol primitives from one request frame. `flex` switches
 * strings, bytes and arrays to their compact forms (unsigned varint length
 * plus one, 0 meaning null) for flexible versions (KIP-482). Slices are views
 * of the frame, never copies. Running past the end throws KafkaDecodeError.
 */
export class KafkaDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KafkaDecodeError';
  }
}

export class KafkaReader {
  pos: number;
  flex = false;

  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): number {
    const p = this.pos;
    if (p + n > this.end) throw new KafkaDecodeError(`truncated: needs ${n} more byte(s) at ${p - 0}, has ${this.end - p}`);
    this.pos = p + n;
    return p;
  }

  int8(): number {
    return this.buf.readInt8(this.need(1));
  }
  bool(): boolean {
    return this.buf[this.need(1)] !== 0;
  }
  int16(): number {
    return this.buf.readInt16BE(this.need(2));
  }
  int32(): number {
    return this.buf.readInt32BE(this.need(4));
  }
  int64(): bigint {
    return this.buf.readBigInt64BE(this.need(8));
  }

  uvarint(): number {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = this.buf[this.need(1)]!;
      if (shift === 28 && b > 0x0f) throw new KafkaDecodeError('varint longer than 32 bits');
      v |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v >>> 0;
      shift += 7;
    }
  }

  /** A length: int16/int32 in classic versions, uvarint - 1 in flexible ones; -1 means null. */
  private length(classic16: boolean): number {
    if (this.flex) return this.uvarint() - 1;
    return classic16 ? this.int16() : this.int32();
  }

  nullableString(): string | null {
    const n = this.length(true);
    if (n < 0) return null;
    const p = this.need(n);
    return this.buf.toString('utf8', p, p + n);
  }

  string(): string {
    const s = this.nullableString();
    if (s === null) throw new KafkaDecodeError('null where a string is required');
    return s;
  }

  /** Bytes as a view of the frame; null when the length is -1. */
  nullableBytes(): Buffer | null {
    const n = this.length(false);
    if (n < 0) return null;
    const p = this.need(n);
    return this.buf.subarray(p, p + n);
  }

  bytes(): Buffer {
    return this.nullableBytes() ?? Buffer.alloc(0);
  }

  /** An array's element count; -1 for null. Bounded by the bytes left, so a forged count cannot allocate. */
  arrayLength(): number {
    const n = this.length(false);
    if (n > this.end - this.pos) throw new KafkaDecodeError(`array of ${n} elements in ${this.end - this.pos} bytes`);
    return n;
  }

  array<T>(item: (r: KafkaReader) => T): T[] {
    const n = this.arrayLength();
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(item(this));
    return out;
  }

  nullableArray<T>(item: (r: KafkaReader) => T): T[] | null {
    const n = this.arrayLength();
    if (n < 0) return null;
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(item(this));
    return out;
  }

  int32Array(): number[] {
    return this.array((r) => r.int32());
  }

  /** Tagged fields of a flexible structure: none of ours are known, so all are skipped. */
  taggedFields(): void {
    if (!this.flex) return;
    const n = this.uvarint();
    for (let i = 0; i < n; i++) {
      this.uvarint();
      this.need(this.uvarint());
    }
  }
}
