/**
 * Splits the client byte stream into request frames: int32 size, then size
 * bytes. A frame inside one chunk is a view of that chunk; a frame spread
 * over chunks keeps views of its pieces and is joined once when complete
 * (never re-concatenating everything received so far, and never allocating
 * more than has arrived: a size prefix alone reserves nothing). A size below the smallest
 * request header or above maxFrameSize is fatal for the connection: framing
 * cannot be trusted after it.
 */
export interface FrameSink {
  onFrame(frame: Buffer): void;
  onFrameError(reason: string): void;
}

/** api_key + api_version + correlation_id + client_id length. */
const MIN_FRAME = 10;

export class KafkaFrameDecoder {
  /** Pieces of the frame being assembled across chunks (views: socket chunks are never reused). */
  private pieces: Buffer[] = [];
  /** Size of that frame; -1 when none is in progress. */
  private want = -1;
  private filled = 0;
  /** Bytes of a size prefix split across chunks. */
  private readonly sizeBytes = Buffer.alloc(4);
  private sizeFilled = 0;
  private failed = false;

  constructor(
    private readonly sink: FrameSink,
    readonly maxFrameSize: number,
  ) {}

  push(chunk: Buffer): void {
    if (this.failed) return;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.want >= 0) {
        const take = Math.min(this.want - this.filled, n - i);
        this.pieces.push(chunk.subarray(i, i + take));
        this.filled += take;
        i += take;
        if (this.filled < this.want) return;
        const frame = Buffer.concat(this.pieces, this.want);
        this.pieces = [];
        this.want = -1;
        this.sink.onFrame(frame);
        if (this.failed) return;
        continue;
      }
      let size: number;
      if (this.sizeFilled === 0 && n - i >= 4) {
        size = chunk.readInt32BE(i);
        i += 4;
      } else {
        while (this.sizeFilled < 4 && i < n) this.sizeBytes[this.sizeFilled++] = chunk[i++]!;
        if (this.sizeFilled < 4) return;
        this.sizeFilled = 0;
        size = this.sizeBytes.readInt32BE(0);
      }
      if (size < MIN_FRAME || size > this.maxFrameSize) {
        this.failed = true;
        this.sink.onFrameError(size < MIN_FRAME ? `request size ${size} is below the ${MIN_FRAME}-byte minimum` : `request size ${size} exceeds max_frame_size ${this.maxFrameSize}`);
        return;
      }
      if (n - i >= size) {
        const frame = chunk.subarray(i, i + size);
        i += size;
        this.sink.onFrame(frame);
        if (this.failed) return;
        continue;
      }
      this.want = size;
      this.filled = 0;
    }
  }

  /** Bytes of an unfinished frame (for logs when the client closes mid-frame). */
  get pendingBytes(): number {
    return this.want >= 0 ? this.filled : this.sizeFilled;
  }

  fail(): void {
    this.failed = true;
    this.pieces = [];
    this.want = -1;
  }
}
