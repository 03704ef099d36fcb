/**
 * SOFA Bolt framing: an incremental decoder for both directions and the few
 * frames Portway writes itself. Nothing here looks at the payload.
 *
 * Bolt v1 (proto 1)
 *   request   proto:1 type:1 cmdcode:2 ver2:1 requestId:4 codec:1 timeout:4
 *             classLen:2 headerLen:2 contentLen:4 | class | header | content      (22-byte head)
 *   response  proto:1 type:1 cmdcode:2 ver2:1 requestId:4 codec:1 status:2
 *             classLen:2 headerLen:2 contentLen:4 | class | header | content      (20-byte head)
 * Bolt v2 (proto 2) adds ver1:1 after proto and switch:1 after codec (24 / 22
 * bytes); when switch bit 0 is set a CRC32 of everything before it trails the
 * frame (4 bytes, big endian).
 *
 *   type     0 response, 1 request, 2 one-way request
 *   cmdcode  0 heartbeat, 1 rpc request, 2 rpc response
 *   codec    1 hessian2, 11 protobuf
 *
 * The header is a flat string map: repeated (keyLen:int32 key valLen:int32
 * value), valLen -1 for null. The call's target is under `service`.
 */

import * as zlib from 'node:zlib';

export const BoltType = { Response: 0, Request: 1, Oneway: 2 } as const;
export const BoltCmd = { Heartbeat: 0, Request: 1, Response: 2 } as const;
export const CODEC_HESSIAN2 = 1;
export const CODEC_PROTOBUF = 11;

/** The largest frame accepted by default (class + header + content), as Bolt's own default limit. */
export const DEFAULT_MAX_FRAME = 16 * 1024 * 1024;

const crcImpl: ((data: Buffer, value?: number) => number) | undefined = (zlib as unknown as { crc32?: (data: Buffer, value?: number) => number }).crc32;
let table: Int32Array | null = null;

/** CRC-32 (IEEE) as an unsigned number; zlib's native one where Node has it. */
export function crc32(buf: Buffer, start = 0, end = buf.length): number {
  if (crcImpl !== undefined) return crcImpl(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
  if (table === null) {
    table = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c;
    }
  }
  let c = -1;
  for (let i = start; i < end; i++) c = table[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** One complete frame: a view over the bytes it arrived in, and its fixed fields. */
export class BoltFrame {
  constructor(
    readonly buf: Buffer,
    /** Offset of the first byte (proto) in buf. */
    readonly start: number,
    /** Offset after the last byte (after the CRC when there is one). */
    readonly end: number,
  ) {}

  get proto(): number {
    return this.buf[this.start]!;
  }
  /** v2: the protocol version byte (1, or 2 for the CRC-capable form); v1: 1. */
  get ver1(): number {
    return this.proto === 2 ? this.buf[this.start + 1]! : 1;
  }
  private get o(): number {
    return this.proto === 2 ? this.start + 1 : this.start;
  }
  get type(): number {
    return this.buf[this.o + 1]!;
  }
  get cmd(): number {
    return this.buf.readUInt16BE(this.o + 2);
  }
  get requestId(): number {
    return this.buf.readUInt32BE(this.o + 5);
  }
  get codec(): number {
    return this.buf[this.o + 9]!;
  }
  /** v2 switch byte (0 for v1). */
  get switches(): number {
    return this.proto === 2 ? this.buf[this.start + 11]! : 0;
  }
  get crc(): boolean {
    return (this.switches & 1) === 1;
  }
  get isRequest(): boolean {
    return this.type !== BoltType.Response;
  }
  /** Offset of the timeout (requests) or status (responses) field. */
  private get varAt(): number {
    return this.proto === 2 ? this.start + 12 : this.start + 10;
  }
  /** Request timeout in ms (0: none). */
  get timeout(): number {
    return this.buf.readInt32BE(this.varAt);
  }
  /** Response status. */
  get status(): number {
    return this.buf.readUInt16BE(this.varAt);
  }
  get headLength(): number {
    return headLength(this.proto, this.type);
  }
  private get lensAt(): number {
    return this.start + this.headLength - 8;
  }
  get classLength(): number {
    return this.buf.readUInt16BE(this.lensAt);
  }
  get headerLength(): number {
    return this.buf.readUInt16BE(this.lensAt + 2);
  }
  get contentLength(): number {
    return this.buf.readInt32BE(this.lensAt + 4);
  }
  get classStart(): number {
    return this.start + this.headLength;
  }
  get headerStart(): number {
    return this.classStart + this.classLength;
  }
  get contentStart(): number {
    return this.headerStart + this.headerLength;
  }
  get contentEnd(): number {
    return this.contentStart + this.contentLength;
  }
  className(): string {
    return this.buf.toString('latin1', this.classStart, this.headerStart);
  }
  content(): Buffer {
    return this.buf.subarray(this.contentStart, this.contentEnd);
  }
  /** The value of one header key, without building the map; undefined when absent, null when present as null. */
  header(key: Buffer): string | null | undefined {
    return findHeader(this.buf, this.headerStart, this.contentStart, key);
  }
  /** The whole header map (for translation); throws BoltCodecError on a malformed map. */
  headers(): Record<string, string | null> {
    return decodeHeaderMap(this.buf, this.headerStart, this.contentStart);
  }
  bytes(): Buffer {
    return this.buf.subarray(this.start, this.end);
  }
}

export class BoltCodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BoltCodecError';
  }
}

/** Bytes before class/header/content for a proto byte and type; 0 for an unknown proto. */
export function headLength(proto: number, type: number): number {
  if (proto === 1) return type === BoltType.Response ? 20 : 22;
  if (proto === 2) return type === BoltType.Response ? 22 : 24;
  return 0;
}

/** Reads a header key's value by scanning the map; stops at the first malformed entry (undefined). */
export function findHeader(buf: Buffer, start: number, end: number, key: Buffer): string | null | undefined {
  let p = start;
  const klen = key.length;
  while (p + 4 <= end) {
    const kl = buf.readInt32BE(p);
    p += 4;
    if (kl < 0 || p + kl + 4 > end) return undefined;
    const match = kl === klen && buf.compare(key, 0, klen, p, p + kl) === 0;
    p += kl;
    const vl = buf.readInt32BE(p);
    p += 4;
    if (vl < -1 || p + Math.max(0, vl) > end) return undefined;
    if (match) return vl < 0 ? null : buf.toString('utf8', p, p + vl);
    if (vl > 0) p += vl;
  }
  return undefined;
}

/** Checks that a header map is well formed (lengths add up exactly); returns the problem or null. */
export function checkHeaderMap(buf: Buffer, start: number, end: number): string | null {
  let p = start;
  while (p < end) {
    if (p + 4 > end) return 'header map: truncated key length';
    const kl = buf.readInt32BE(p);
    p += 4;
    if (kl < 0 || p + kl > end) return `header map: key length ${kl} runs past the header`;
    p += kl;
    if (p + 4 > end) return 'header map: truncated value length';
    const vl = buf.readInt32BE(p);
    p += 4;
    if (vl < -1 || p + Math.max(0, vl) > end) return `header map: value length ${vl} runs past the header`;
    if (vl > 0) p += vl;
  }
  return null;
}

export function decodeHeaderMap(buf: Buffer, start: number, end: number): Record<string, string | null> {
  const bad = checkHeaderMap(buf, start, end);
  if (bad !== null) throw new BoltCodecError(bad);
  const out: Record<string, string | null> = Object.create(null) as Record<string, string | null>;
  let p = start;
  while (p < end) {
    const kl = buf.readInt32BE(p);
    p += 4;
    const k = buf.toString('utf8', p, p + kl);
    p += kl;
    const vl = buf.readInt32BE(p);
    p += 4;
    if (vl < 0) out[k] = null;
    else {
      out[k] = buf.toString('utf8', p, p + vl);
      p += vl;
    }
  }
  return out;
}

export function encodeHeaderMap(map: Record<string, string | null>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(map)) {
    const kb = Buffer.from(k, 'utf8');
    const len = Buffer.alloc(4);
    len.writeInt32BE(kb.length);
    parts.push(len, kb);
    const vl = Buffer.alloc(4);
    if (v === null) vl.writeInt32BE(-1);
    else {
      const vb = Buffer.from(v, 'utf8');
      vl.writeInt32BE(vb.length);
      parts.push(vl, vb);
      continue;
    }
    parts.push(vl);
  }
  return Buffer.concat(parts);
}

export interface BoltDecoderHandler {
  onFrame(frame: BoltFrame): void;
  /** The stream cannot be framed any further; the decoder stops. */
  onError(err: BoltCodecError): void;
}

/**
 * Incremental framer. A frame that lies inside one chunk is handed out as a
 * view of that chunk; only a frame split over chunks is copied, once, when
 * its last byte arrives. Checks: a known proto byte, type and cmdcode, v2
 * version, lengths within maxFrame, and the CRC when the frame carries one.
 */
export class BoltDecoder {
  /** Chunks holding the start of an incomplete frame. */
  private parts: Buffer[] = [];
  private partsLength = 0;
  /** Total length of the frame being assembled, once its head is known; 0 before. */
  private need = 0;
  private dead = false;

  constructor(
    private readonly h: BoltDecoderHandler,
    private readonly maxFrame: number = DEFAULT_MAX_FRAME,
  ) {}

  push(chunk: Buffer): void {
    if (this.dead) return;
    let buf = chunk;
    let pos = 0;
    if (this.partsLength > 0) {
      // Only enough to complete the pending frame (or its head) is joined.
      if (this.need === 0) {
        this.parts.push(chunk);
        this.partsLength += chunk.length;
        const joined = Buffer.concat(this.parts, this.partsLength);
        this.parts = [];
        this.partsLength = 0;
        buf = joined;
      } else {
        const missing = this.need - this.partsLength;
        if (chunk.length < missing) {
          this.parts.push(chunk);
          this.partsLength += chunk.length;
          return;
        }
        this.parts.push(chunk.subarray(0, missing));
        const frameBuf = Buffer.concat(this.parts, this.need);
        this.parts = [];
        this.partsLength = 0;
        this.need = 0;
        if (!this.emit(frameBuf, 0, frameBuf.length)) return;
        pos = missing;
      }
    }
    while (pos < buf.length && !this.dead) {
      const total = this.frameLength(buf, pos);
      if (total < 0) return; // error reported
      if (total === 0 || pos + total > buf.length) {
        // Incomplete: keep the rest (a copy would pin nothing more than the view does).
        this.parts.push(buf.subarray(pos));
        this.partsLength = buf.length - pos;
        this.need = total;
        return;
      }
      if (!this.emit(buf, pos, pos + total)) return;
      pos += total;
    }
  }

  /** Total frame length at pos; 0 when the head is not complete yet; -1 after an error. */
  private frameLength(buf: Buffer, pos: number): number {
    const avail = buf.length - pos;
    const proto = buf[pos]!;
    if (proto !== 1 && proto !== 2) return this.fail(`unknown protocol byte 0x${proto.toString(16).padStart(2, '0')}`);
    if (avail < 2) return 0;
    const o = proto === 2 ? pos + 1 : pos;
    if (proto === 2) {
      const v = buf[pos + 1]!;
      if (v !== 1 && v !== 2) return this.fail(`unknown Bolt v2 version ${v}`);
    }
    if (o + 1 >= buf.length) return 0;
    const type = buf[o + 1]!;
    if (type > 2) return this.fail(`unknown command type ${type}`);
    const head = headLength(proto, type);
    if (avail < head) {
      if (avail >= (proto === 2 ? 5 : 4)) {
        const cmd = buf.readUInt16BE(o + 2);
        if (cmd > 2) return this.fail(`unknown command code ${cmd}`);
      }
      return 0;
    }
    const cmd = buf.readUInt16BE(o + 2);
    if (cmd > 2) return this.fail(`unknown command code ${cmd}`);
    const lens = pos + head - 8;
    const classLen = buf.readUInt16BE(lens);
    const headerLen = buf.readUInt16BE(lens + 2);
    const contentLen = buf.readInt32BE(lens + 4);
    if (contentLen < 0) return this.fail(`negative content length ${contentLen}`);
    const body = classLen + headerLen + contentLen;
    if (body > this.maxFrame) return this.fail(`frame of ${body} bytes is over the limit of ${this.maxFrame}`);
    const crc = proto === 2 && (buf[pos + 11]! & 1) === 1 ? 4 : 0;
    return head + body + crc;
  }

  private emit(buf: Buffer, start: number, end: number): boolean {
    const f = new BoltFrame(buf, start, end);
    if (f.crc) {
      const want = buf.readUInt32BE(end - 4);
      const got = crc32(buf, start, end - 4);
      if (want !== got) {
        this.fail(`CRC mismatch (frame says ${want.toString(16)}, computed ${got.toString(16)})`);
        return false;
      }
    }
    if (f.headerLength > 0) {
      const bad = checkHeaderMap(buf, f.headerStart, f.contentStart);
      if (bad !== null) {
        this.fail(bad);
        return false;
      }
    }
    this.h.onFrame(f);
    return !this.dead;
  }

  private fail(msg: string): -1 {
    this.dead = true;
    this.parts = [];
    this.partsLength = 0;
    this.h.onError(new BoltCodecError(msg));
    return -1;
  }

  /** Stops decoding (the connection is closing). */
  destroy(): void {
    this.dead = true;
    this.parts = [];
    this.partsLength = 0;
  }
}

/**
 * A copy of a frame with another request id (and its CRC recomputed when
 * it has one): what goes upstream under the link's own id, and what comes
 * back under the client's.
 */
export function copyWithId(f: BoltFrame, id: number, into?: Buffer, at = 0): Buffer {
  const len = f.end - f.start;
  const out = into ?? Buffer.allocUnsafe(len);
  f.buf.copy(out, at, f.start, f.end);
  rewriteId(out, at, at + len, id);
  return out;
}

/** Rewrites the request id of the frame at out[start, end) in place (and its CRC). */
export function rewriteId(out: Buffer, start: number, end: number, id: number): void {
  const proto = out[start]!;
  const o = proto === 2 ? start + 1 : start;
  out.writeUInt32BE(id >>> 0, o + 5);
  if (proto === 2 && (out[start + 11]! & 1) === 1) out.writeUInt32BE(crc32(out, start, end - 4), end - 4);
}

/** The framing of a request being answered: responses mirror it. */
export interface ReplyShape {
  proto: number;
  ver1: number;
  switches: number;
  codec: number;
}

export function shapeOf(f: BoltFrame): ReplyShape {
  return { proto: f.proto, ver1: f.ver1, switches: f.switches, codec: f.codec };
}

/** Encodes a response frame (cmdcode 2, or 0 for a heartbeat ack) in the shape of the request. */
export function encodeResponse(shape: ReplyShape, id: number, status: number, cmd: number, className: Buffer | null, header: Buffer | null, content: Buffer | null): Buffer {
  const head = headLength(shape.proto, BoltType.Response);
  const cl = className?.length ?? 0;
  const hl = header?.length ?? 0;
  const bl = content?.length ?? 0;
  const crc = shape.proto === 2 && (shape.switches & 1) === 1 ? 4 : 0;
  const out = Buffer.allocUnsafe(head + cl + hl + bl + crc);
  let p = 0;
  out[p++] = shape.proto;
  if (shape.proto === 2) out[p++] = shape.ver1;
  out[p++] = BoltType.Response;
  out.writeUInt16BE(cmd, p);
  p += 2;
  out[p++] = 1; // ver2
  out.writeUInt32BE(id >>> 0, p);
  p += 4;
  out[p++] = shape.codec;
  if (shape.proto === 2) out[p++] = shape.switches;
  out.writeUInt16BE(status, p);
  p += 2;
  out.writeUInt16BE(cl, p);
  out.writeUInt16BE(hl, p + 2);
  out.writeInt32BE(bl, p + 4);
  p += 8;
  if (className) p += className.copy(out, p);
  if (header) p += header.copy(out, p);
  if (content) p += content.copy(out, p);
  if (crc) out.writeUInt32BE(crc32(out, 0, p), p);
  return out;
}

/** Encodes a request frame (rpc request, one-way, or a heartbeat with cmd 0). */
export function encodeRequest(
  shape: ReplyShape,
  id: number,
  type: number,
  cmd: number,
  timeoutMs: number,
  className: Buffer | null,
  header: Buffer | null,
  content: Buffer | null,
): Buffer {
  const head = headLength(shape.proto, BoltType.Request);
  const cl = className?.length ?? 0;
  const hl = header?.length ?? 0;
  const bl = content?.length ?? 0;
  const crc = shape.proto === 2 && (shape.switches & 1) === 1 ? 4 : 0;
  const out = Buffer.allocUnsafe(head + cl + hl + bl + crc);
  let p = 0;
  out[p++] = shape.proto;
  if (shape.proto === 2) out[p++] = shape.ver1;
  out[p++] = type;
  out.writeUInt16BE(cmd, p);
  p += 2;
  out[p++] = 1;
  out.writeUInt32BE(id >>> 0, p);
  p += 4;
  out[p++] = shape.codec;
  if (shape.proto === 2) out[p++] = shape.switches;
  out.writeInt32BE(timeoutMs, p);
  p += 4;
  out.writeUInt16BE(cl, p);
  out.writeUInt16BE(hl, p + 2);
  out.writeInt32BE(bl, p + 4);
  p += 8;
  if (className) p += className.copy(out, p);
  if (header) p += header.copy(out, p);
  if (content) p += content.copy(out, p);
  if (crc) out.writeUInt32BE(crc32(out, 0, p), p);
  return out;
}

export const V1_SHAPE: ReplyShape = { proto: 1, ver1: 1, switches: 0, codec: CODEC_HESSIAN2 };

/** A heartbeat request as sofa-bolt-node sends it (v1, hessian2 codec, timeout 3000). */
export function heartbeatRequest(id: number, shape: ReplyShape = V1_SHAPE, timeoutMs = 3000): Buffer {
  return encodeRequest(shape, id, BoltType.Request, BoltCmd.Heartbeat, timeoutMs, null, null, null);
}

export function heartbeatAck(shape: ReplyShape, id: number): Buffer {
  return encodeResponse(shape, id, 0, BoltCmd.Heartbeat, null, null, null);
}

export const SOFA_REQUEST_CLASS = Buffer.from('com.alipay.sofa.rpc.core.request.SofaRequest', 'latin1');
export const SOFA_RESPONSE_CLASS = Buffer.from('com.alipay.sofa.rpc.core.response.SofaResponse', 'latin1');
export const SERVICE_KEY = Buffer.from('service', 'latin1');
/** Set by protobuf-codec clients (and some Java ones): the method without decoding the payload. */
export const METHOD_KEY = Buffer.from('sofa_head_method_name', 'latin1');
