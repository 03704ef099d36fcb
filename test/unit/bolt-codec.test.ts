/**
 * Bolt codec: frames captured from a real sofa-rpc-node 2.10 client/server
 * exchange (through a TCP tap between the two, one call of echo('hi') per
 * setting), decoded whole, split at every byte boundary and byte by byte;
 * frames Portway writes are read back by sofa-bolt-node's own decoder; bad
 * input stops the decoder with a reason.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BoltDecoder,
  BoltFrame,
  BoltCodecError,
  copyWithId,
  crc32,
  decodeHeaderMap,
  encodeHeaderMap,
  encodeResponse,
  heartbeatAck,
  heartbeatRequest,
  shapeOf,
  SERVICE_KEY,
  METHOD_KEY,
} from '../../src/protocols/bolt/codec';
import { BoltStatus, boltStatusOf } from '../../src/protocols/bolt/status';
import { ErrorCode, ProxyError } from '../../src/errors';

// sofa-bolt-node (devDependency, untyped): the real implementation, as a second reader and writer.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const boltProtocol = require('sofa-bolt-node/lib/protocol') as {
  decode(buf: Buffer, options?: unknown): { packetId: number; packetType: string; data?: { error?: Error; appResponse?: unknown }; options: Record<string, unknown> };
  heartbeatEncode(id: number, hb: unknown, options: unknown): Buffer;
  heartbeatAckEncode(id: number, options: unknown): Buffer;
};

/** sofa-rpc-node 2.10 client -> server, Bolt v1, default Hessian ('3.0'): echo('hi'), request id 1. */
const V1_H3_REQUEST =
  '0101000101000000010100000bb8002c002a000000f1636f6d2e616c697061792e736f66612e7270632e636f72652e726571756573742e536f666152' +
  '65717565737400000007736572766963650000001b636f6d2e6578616d706c652e4563686f536572766963653a312e304fbc636f6d2e616c69706179' +
  '2e736f66612e7270632e636f72652e726571756573742e536f666152657175657374950a6d6574686f644e616d650d6d6574686f6441726753696773' +
  '1774617267657453657276696365556e697175654e616d650d7461726765744170704e616d650c7265717565737450726f70736f90046563686f5674' +
  '00115b6a6176612e6c616e672e537472696e676e01106a6176612e6c616e672e537472696e677a1b636f6d2e6578616d706c652e4563686f53657276' +
  '6963653a312e304e4d07736572766963651b636f6d2e6578616d706c652e4563686f536572766963653a312e307a026869';

/** The server's reply: SofaResponse { appResponse: 'hi' }. */
const V1_H3_RESPONSE =
  '010000020100000001010000002e000000000064636f6d2e616c697061792e736f66612e7270632e636f72652e726573706f6e73652e536f66615265' +
  '73706f6e73654fbe636f6d2e616c697061792e736f66612e7270632e636f72652e726573706f6e73652e536f6661526573706f6e7365940769734572' +
  '726f72086572726f724d73670b617070526573706f6e73650d726573706f6e736550726f70736f90464e0268694e';

/** The same call with setHessianVersion('4.0') (final Hessian 2.0). */
const V1_H4_REQUEST =
  '0101000101000000010100000bb8002c002a000000ec636f6d2e616c697061792e736f66612e7270632e636f72652e726571756573742e536f666152' +
  '65717565737400000007736572766963650000001b636f6d2e6578616d706c652e4563686f536572766963653a312e3043302c636f6d2e616c697061' +
  '792e736f66612e7270632e636f72652e726571756573742e536f666152657175657374950a6d6574686f644e616d650d6d6574686f64417267536967' +
  '731774617267657453657276696365556e697175654e616d650d7461726765744170704e616d650c7265717565737450726f707360046563686f7111' +
  '5b6a6176612e6c616e672e537472696e67106a6176612e6c616e672e537472696e671b636f6d2e6578616d706c652e4563686f536572766963653a31' +
  '2e304e4807736572766963651b636f6d2e6578616d706c652e4563686f536572766963653a312e305a026869';

const V1_H4_RESPONSE =
  '010000020100000001010000002e000000000064636f6d2e616c697061792e736f66612e7270632e636f72652e726573706f6e73652e536f66615265' +
  '73706f6e736543302e636f6d2e616c697061792e736f66612e7270632e636f72652e726573706f6e73652e536f6661526573706f6e73659407697345' +
  '72726f72086572726f724d73670b617070526573706f6e73650d726573706f6e736550726f707360464e0268694e';

/** Hessian '4.0' over Bolt v2 with CRC32 (proto 2, ver1 2, switch 1); the server answers in kind. */
const V2_CRC_REQUEST =
  '02020100010100000001010100000bb8002c002a000000ec636f6d2e616c697061792e736f66612e7270632e636f72652e726571756573742e536f66' +
  '615265717565737400000007736572766963650000001b636f6d2e6578616d706c652e4563686f536572766963653a312e3043302c636f6d2e616c69' +
  '7061792e736f66612e7270632e636f72652e726571756573742e536f666152657175657374950a6d6574686f644e616d650d6d6574686f6441726753' +
  '6967731774617267657453657276696365556e697175654e616d650d7461726765744170704e616d650c7265717565737450726f707360046563686f' +
  '71115b6a6176612e6c616e672e537472696e67106a6176612e6c616e672e537472696e671b636f6d2e6578616d706c652e4563686f53657276696365' +
  '3a312e304e4807736572766963651b636f6d2e6578616d706c652e4563686f536572766963653a312e305a026869e0b202aa';

const V2_CRC_RESPONSE =
  '0202000002010000000101010000002e000000000064636f6d2e616c697061792e736f66612e7270632e636f72652e726573706f6e73652e536f6661' +
  '526573706f6e736543302e636f6d2e616c697061792e736f66612e7270632e636f72652e726573706f6e73652e536f6661526573706f6e7365940769' +
  '734572726f72086572726f724d73670b617070526573706f6e73650d726573706f6e736550726f707360464e0268694e73f8c34c';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const setHessianVersion = (require('sofa-bolt-node') as { setHessianVersion(v: string): void }).setHessianVersion;

const hex = (s: string) => Buffer.from(s, 'hex');

function decodeAll(chunks: Buffer[], maxFrame?: number): { frames: BoltFrame[]; error: BoltCodecError | null } {
  const frames: BoltFrame[] = [];
  let error: BoltCodecError | null = null;
  const d = new BoltDecoder({ onFrame: (f) => frames.push(f), onError: (e) => (error = e) }, maxFrame);
  for (const c of chunks) d.push(c);
  return { frames, error };
}

/** Every way of cutting `buf` in two, and byte by byte. */
function splits(buf: Buffer): Buffer[][] {
  const out: Buffer[][] = [];
  for (let i = 1; i < buf.length; i++) out.push([buf.subarray(0, i), buf.subarray(i)]);
  out.push([...buf].map((b) => Buffer.from([b])));
  return out;
}

const SERVICE = 'com.example.EchoService:1.0';

describe('bolt codec: captured frames', () => {
  test('v1 request (Hessian 3.0 payload): fixed fields, class, header map', () => {
    const { frames, error } = decodeAll([hex(V1_H3_REQUEST)]);
    assert.equal(error, null);
    assert.equal(frames.length, 1);
    const f = frames[0]!;
    assert.equal(f.proto, 1);
    assert.equal(f.type, 1);
    assert.equal(f.cmd, 1);
    assert.equal(f.requestId, 1);
    assert.equal(f.codec, 1);
    assert.equal(f.timeout, 3000);
    assert.equal(f.crc, false);
    assert.equal(f.className(), 'com.alipay.sofa.rpc.core.request.SofaRequest');
    assert.equal(f.header(SERVICE_KEY), SERVICE);
    assert.equal(f.header(METHOD_KEY), undefined, 'sofa-rpc-node sends the method only with the protobuf codec');
    assert.deepEqual({ ...f.headers() }, { service: SERVICE });
    assert.equal(f.content()[0], 0x4f, "the draft dialect's object definition 'O'");
    assert.equal(f.end - f.start, hex(V1_H3_REQUEST).length);
  });

  test('v1 response: status, class, content', () => {
    const f = decodeAll([hex(V1_H3_RESPONSE)]).frames[0]!;
    assert.equal(f.type, 0);
    assert.equal(f.cmd, 2);
    assert.equal(f.requestId, 1);
    assert.equal(f.status, 0);
    assert.equal(f.className(), 'com.alipay.sofa.rpc.core.response.SofaResponse');
    assert.equal(f.headerLength, 0);
  });

  test("v1 with Hessian 4.0: the payload starts with 'C'", () => {
    const f = decodeAll([hex(V1_H4_REQUEST)]).frames[0]!;
    assert.equal(f.content()[0], 0x43);
    assert.equal(f.header(SERVICE_KEY), SERVICE);
  });

  test('v2 with CRC32: version, switch, CRC checked; the response mirrors it', () => {
    const req = decodeAll([hex(V2_CRC_REQUEST)]);
    assert.equal(req.error, null);
    const f = req.frames[0]!;
    assert.equal(f.proto, 2);
    assert.equal(f.ver1, 2);
    assert.equal(f.switches, 1);
    assert.equal(f.crc, true);
    assert.equal(f.timeout, 3000);
    assert.equal(f.header(SERVICE_KEY), SERVICE);
    const raw = hex(V2_CRC_REQUEST);
    assert.equal(raw.readUInt32BE(raw.length - 4), crc32(raw, 0, raw.length - 4));
    const r = decodeAll([hex(V2_CRC_RESPONSE)]).frames[0]!;
    assert.equal(r.proto, 2);
    assert.equal(r.status, 0);
    assert.equal(r.crc, true);
  });

  test('every capture decodes the same split at every byte boundary and byte by byte', () => {
    for (const fx of [V1_H3_REQUEST, V1_H3_RESPONSE, V1_H4_REQUEST, V1_H4_RESPONSE, V2_CRC_REQUEST, V2_CRC_RESPONSE]) {
      const whole = hex(fx);
      for (const parts of splits(whole)) {
        const { frames, error } = decodeAll(parts);
        assert.equal(error, null);
        assert.equal(frames.length, 1);
        assert.deepEqual(frames[0]!.bytes(), whole);
      }
    }
  });

  test('several frames in one chunk, and across chunks, come out in order', () => {
    const all = Buffer.concat([hex(V1_H3_REQUEST), heartbeatRequest(9), hex(V2_CRC_REQUEST), hex(V1_H4_REQUEST)]);
    for (const cut of [1, 7, 22, 100, 300, all.length - 3]) {
      const { frames, error } = decodeAll([all.subarray(0, cut), all.subarray(cut)]);
      assert.equal(error, null);
      assert.deepEqual(
        frames.map((f) => [f.proto, f.cmd, f.requestId]),
        [
          [1, 1, 1],
          [1, 0, 9],
          [2, 1, 1],
          [1, 1, 1],
        ],
      );
    }
  });
});

describe('bolt codec: frames Portway writes', () => {
  test('copyWithId changes only the id (and the CRC), and sofa-bolt-node reads the copy', () => {
    for (const fx of [V1_H3_REQUEST, V2_CRC_REQUEST]) {
      const f = decodeAll([hex(fx)]).frames[0]!;
      const copy = copyWithId(f, 0x7ffffffe);
      const g = decodeAll([copy]).frames[0]!;
      assert.equal(g.requestId, 0x7ffffffe);
      assert.deepEqual(g.content(), f.content());
      const diff = [...copy].map((b, i) => (b !== f.buf[f.start + i] ? i : -1)).filter((i) => i >= 0);
      const idAt = f.proto === 2 ? 6 : 5;
      assert.ok(diff.every((i) => (i >= idAt && i < idAt + 4) || i >= copy.length - 4), `only id and CRC bytes differ: ${diff.join(',')}`);
      // The V2 capture's payload is Hessian 4.0: sofa-bolt-node reads it only in that (process-wide) setting.
      setHessianVersion(fx === V2_CRC_REQUEST ? '4.0' : '3.0');
      try {
        const lib = boltProtocol.decode(copy, {});
        assert.equal(lib.packetId, 0x7ffffffe);
        assert.equal(lib.packetType, 'request');
      } finally {
        setHessianVersion('3.0');
      }
    }
  });

  test('heartbeat request and ack are byte for byte what sofa-bolt-node writes', () => {
    const libHb = Buffer.from(boltProtocol.heartbeatEncode(42, { timeout: 3000 }, { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1 }));
    assert.deepEqual(heartbeatRequest(42), libHb);
    const f = decodeAll([libHb]).frames[0]!;
    const libAck = Buffer.from(boltProtocol.heartbeatAckEncode(42, { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1 }));
    assert.deepEqual(heartbeatAck(shapeOf(f), 42), libAck);
    const v2 = Buffer.from(boltProtocol.heartbeatAckEncode(5, { protocolType: 'bolt2', codecType: 'hessian2', boltVersion: 2, crcEnable: true }));
    assert.deepEqual(heartbeatAck({ proto: 2, ver1: 2, switches: 1, codec: 1 }, 5), v2);
    assert.equal(boltProtocol.decode(v2, {}).packetType, 'heartbeat_ack');
  });

  test('header maps round trip, null values included', () => {
    const m = { service: SERVICE, sofa_head_method_name: 'echo', empty: '', nothing: null };
    const b = encodeHeaderMap(m);
    assert.deepEqual({ ...decodeHeaderMap(b, 0, b.length) }, m);
  });

  test('an error response (status + empty body) is read as an error by sofa-bolt-node', () => {
    const req = decodeAll([hex(V1_H3_REQUEST)]).frames[0]!;
    const res = encodeResponse(shapeOf(req), 77, BoltStatus.TIMEOUT, 2, Buffer.from('com.alipay.sofa.rpc.core.response.SofaResponse'), null, null);
    const lib = boltProtocol.decode(res, {});
    assert.equal(lib.packetId, 77);
    assert.ok(lib.data?.error instanceof Error);
  });

  test('ProxyError codes map to Bolt statuses', () => {
    const st = (code: (typeof ErrorCode)[keyof typeof ErrorCode]) => boltStatusOf(new ProxyError(code, 'x'));
    assert.equal(st(ErrorCode.Timeout), 0x07);
    assert.equal(st(ErrorCode.RateLimited), 0x04);
    assert.equal(st(ErrorCode.CircuitOpen), 0x04);
    assert.equal(st(ErrorCode.NoRoute), 0x06);
    assert.equal(st(ErrorCode.UpstreamConnect), 0x05);
    assert.equal(st(ErrorCode.NoHealthyUpstream), 0x05);
    assert.equal(st(ErrorCode.UpstreamReset), 0x10);
    assert.equal(st(ErrorCode.Protocol), 0x12);
    assert.equal(st(ErrorCode.Internal), 0x02);
  });
});

describe('bolt codec: bad input', () => {
  const bad = (chunks: Buffer[], maxFrame?: number) => {
    const r = decodeAll(chunks, maxFrame);
    assert.ok(r.error !== null, 'an error');
    return r;
  };

  test('an unknown protocol byte', () => {
    assert.match(bad([Buffer.from('GET / HTTP/1.1\r\n\r\n')]).error!.message, /unknown protocol byte 0x47/);
    assert.match(bad([Buffer.from([0x09, 1, 0, 1])]).error!.message, /unknown protocol byte 0x09/);
  });

  test('an unknown type, command code or v2 version', () => {
    const f = hex(V1_H3_REQUEST);
    const t = Buffer.from(f);
    t[1] = 7;
    assert.match(bad([t]).error!.message, /unknown command type 7/);
    const c = Buffer.from(f);
    c.writeUInt16BE(9, 2);
    assert.match(bad([c]).error!.message, /unknown command code 9/);
    const v = Buffer.from(hex(V2_CRC_REQUEST));
    v[1] = 5;
    assert.match(bad([v]).error!.message, /unknown Bolt v2 version 5/);
  });

  test('lengths that lie: negative, over the frame limit, a header map that runs past the header', () => {
    const f = hex(V1_H3_REQUEST);
    const neg = Buffer.from(f);
    neg.writeInt32BE(-5, 18);
    assert.match(bad([neg]).error!.message, /negative content length/);
    assert.match(bad([f], 100).error!.message, /over the limit of 100/);
    const lie = Buffer.from(f);
    // The header's first key length claims more bytes than the header holds.
    const headerAt = 22 + lie.readUInt16BE(14);
    lie.writeInt32BE(1000, headerAt);
    assert.match(bad([lie]).error!.message, /header map: key length 1000/);
  });

  test('a CRC mismatch', () => {
    const f = Buffer.from(hex(V2_CRC_REQUEST));
    f[f.length - 10] ^= 0xff;
    assert.match(bad([f]).error!.message, /CRC mismatch/);
  });

  test('after an error the decoder takes nothing more', () => {
    let frames = 0;
    let errors = 0;
    const d = new BoltDecoder({ onFrame: () => frames++, onError: () => errors++ });
    d.push(Buffer.from([0xff]));
    d.push(hex(V1_H3_REQUEST));
    assert.equal(frames, 0);
    assert.equal(errors, 1);
  });
});
