/**
 * The Kafka codec against an independent implementation: requests encoded
 * by kafkajs's own protocol encoders (the bytes the client really sends) are
 * decoded by ours, and our responses are decoded by kafkajs's response
 * decoders. Flexible (ApiVersions v3, OffsetFetch v6+) forms are checked
 * against hand-assembled fixtures since kafkajs has none.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { crc32c } from '../../src/components/log/crc32c';
import { KafkaDecodeError, KafkaReader } from '../../src/protocols/kafka/reader';
import { KafkaWriter } from '../../src/protocols/kafka/writer';
import { KafkaFrameDecoder } from '../../src/protocols/kafka/frame-decoder';
import { readHeaderRest, readHeaderStart, type RequestHeader } from '../../src/protocols/kafka/request-header';
import { ApiKey, SUPPORTED } from '../../src/protocols/kafka/api-keys';
import { KafkaError, kafkaErrorOf } from '../../src/protocols/kafka/error-codes';
import { buildBatch, checkRecords, decodeRecords, encodeRecords } from '../../src/protocols/kafka/record-batch';
import { decodeApiVersionsRequest, encodeApiVersionsResponse } from '../../src/protocols/kafka/apis/api-versions';
import { decodeMetadataRequest, encodeMetadataResponse } from '../../src/protocols/kafka/apis/metadata';
import { decodeProduceRequest, encodeProduceResponse } from '../../src/protocols/kafka/apis/produce';
import { decodeFetchRequest, encodeFetchResponse } from '../../src/protocols/kafka/apis/fetch';
import {
  decodeListOffsetsRequest,
  decodeOffsetCommitRequest,
  decodeOffsetFetchRequest,
  encodeListOffsetsResponse,
  encodeOffsetCommitResponse,
  encodeOffsetFetchResponse,
} from '../../src/protocols/kafka/apis/offsets';
import {
  decodeFindCoordinatorRequest,
  decodeHeartbeatRequest,
  decodeJoinGroupRequest,
  decodeLeaveGroupRequest,
  decodeSyncGroupRequest,
  encodeDescribeGroupsResponse,
  encodeFindCoordinatorResponse,
  encodeJoinGroupResponse,
  encodeSyncGroupResponse,
} from '../../src/protocols/kafka/apis/groups';
import { decodeCreateTopicsRequest, encodeCreateTopicsResponse } from '../../src/protocols/kafka/apis/admin';
import { ErrorCode, ProxyError } from '../../src/errors';

/* eslint-disable @typescript-eslint/no-var-requires */
const kjs = (p: string): any => require(`kafkajs/src/protocol/${p}`);
const kafkajsRequest = kjs('request');
const kafkajsCrc = kjs('recordBatch/crc32C');

/** A request as kafkajs frames it: size, header v1, body. */
async function clientFrame(request: any, correlationId = 7, clientId = 'test-client'): Promise<Buffer> {
  const enc = await kafkajsRequest({ correlationId, clientId, request });
  return enc.buffer as Buffer;
}

/** Parses a frame (size prefix included) the way the session does. */
function open(frame: Buffer): { h: RequestHeader; r: KafkaReader } {
  assert.equal(frame.readInt32BE(0), frame.length - 4);
  const r = new KafkaReader(frame, 4);
  const h = readHeaderStart(r);
  readHeaderRest(r, h);
  return { h, r };
}

/** Our response for kafkajs's decoder: without size and correlation id. */
function body(w: KafkaWriter, correlationId = 7): Buffer {
  const f = w.finishOne();
  assert.equal(f.readInt32BE(0), f.length - 4);
  assert.equal(f.readInt32BE(4), correlationId);
  return f.subarray(8);
}

function w0(): KafkaWriter {
  return new KafkaWriter(16).header(7, false);
}

describe('crc32c', () => {
  test('check value and agreement with kafkajs', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    for (const n of [0, 1, 7, 8, 9, 63, 64, 65, 1000, 4096 + 3]) {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = (i * 131 + 7) & 0xff;
      assert.equal(crc32c(b), kafkajsCrc(b) >>> 0, `length ${n}`);
      if (n > 10) assert.equal(crc32c(b, 3, n - 2), kafkajsCrc(b.subarray(3, n - 2)) >>> 0);
    }
  });
});

describe('reader and writer primitives', () => {
  test('classic and compact forms round-trip', () => {
    for (const flex of [false, true]) {
      const w = new KafkaWriter(8);
      w.flex = flex;
      w.int8(-3).int16(-2).int32(123456789).int64(-5n).uvarint(300).string('héllo').nullableString(null).bytes(Buffer.from([1, 2, 3])).nullableBytes(null);
      w.array([1, 2, 3], (w, x) => w.int32(x)).nullArray().tags();
      const f = w.finishOne();
      const r = new KafkaReader(f, 4);
      r.flex = flex;
      assert.equal(r.int8(), -3);
      assert.equal(r.int16(), -2);
      assert.equal(r.int32(), 123456789);
      assert.equal(r.int64(), -5n);
      assert.equal(r.uvarint(), 300);
      assert.equal(r.string(), 'héllo');
      assert.equal(r.nullableString(), null);
      assert.deepEqual([...r.bytes()], [1, 2, 3]);
      assert.equal(r.nullableBytes(), null);
      assert.deepEqual(r.int32Array(), [1, 2, 3]);
      assert.equal(r.nullableArray((r) => r.int8()), null);
      r.taggedFields();
      assert.equal(r.remaining, 0);
    }
  });

  test('tagged fields with content are skipped', () => {
    const b = Buffer.from([2, 0, 2, 0xaa, 0xbb, 5, 1, 0xcc, 9]);
    const r = new KafkaReader(b);
    r.flex = true;
    r.taggedFields();
    assert.equal(r.int8(), 9);
  });

  test('truncation and forged lengths throw KafkaDecodeError', () => {
    assert.throws(() => new KafkaReader(Buffer.from([0, 5, 65])).string(), KafkaDecodeError);
    assert.throws(() => new KafkaReader(Buffer.from([0x7f, 0xff, 0xff, 0xff])).arrayLength(), KafkaDecodeError);
    assert.throws(() => new KafkaReader(Buffer.from([0, 0])).int32(), KafkaDecodeError);
  });

  test('large byte fields become their own parts, not copies', () => {
    const big = Buffer.alloc(5000, 1);
    const w = new KafkaWriter(16).header(1, false);
    w.bytesList([big, big]).int16(3);
    const parts = w.finish();
    assert.ok(parts.includes(big));
    const whole = Buffer.concat(parts);
    assert.equal(whole.readInt32BE(0), whole.length - 4);
    assert.equal(whole.readInt32BE(8), 10000);
    assert.equal(whole.readInt16BE(whole.length - 2), 3);
  });
});

describe('frame decoder', () => {
  const frames = [Buffer.alloc(12, 1), Buffer.alloc(300, 2), Buffer.alloc(10, 3)];
  const stream = Buffer.concat(frames.map((f) => Buffer.concat([Buffer.from([0, 0, f.length >> 8, f.length & 0xff]), f])));

  test('frames split at every byte boundary come out whole', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const got: Buffer[] = [];
      const d = new KafkaFrameDecoder({ onFrame: (f) => got.push(Buffer.from(f)), onFrameError: (r) => assert.fail(r) }, 1 << 20);
      d.push(stream.subarray(0, cut));
      d.push(stream.subarray(cut));
      assert.deepEqual(got, frames, `cut at ${cut}`);
    }
    const got: Buffer[] = [];
    const d = new KafkaFrameDecoder({ onFrame: (f) => got.push(Buffer.from(f)), onFrameError: (r) => assert.fail(r) }, 1 << 20);
    for (let i = 0; i < stream.length; i++) d.push(stream.subarray(i, i + 1));
    assert.deepEqual(got, frames);
  });

  test('a size over the limit or below the minimum is an error, then nothing more', () => {
    const errors: string[] = [];
    let n = 0;
    const d = new KafkaFrameDecoder({ onFrame: () => n++, onFrameError: (r) => errors.push(r) }, 100);
    d.push(Buffer.from([0, 0, 0, 101]));
    d.push(stream);
    assert.equal(n, 0);
    assert.match(errors[0]!, /exceeds max_frame_size 100/);
    const d2 = new KafkaFrameDecoder({ onFrame: () => n++, onFrameError: (r) => errors.push(r) }, 100);
    d2.push(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    assert.match(errors[1]!, /below/);
  });
});

describe('requests encoded by kafkajs', () => {
  test('ApiVersions v2 and the flexible v3 (header v2)', async () => {
    const { h, r } = open(await clientFrame(kjs('requests/apiVersions/v2/request')()));
    assert.deepEqual([h.apiKey, h.apiVersion, h.correlationId, h.clientId, h.flexible], [18, 2, 7, 'test-client', false]);
    decodeApiVersionsRequest(r, 2);
    // librdkafka's v3: header v2 (client id, empty tagged fields), compact strings, tagged fields.
    const v3 = Buffer.from([0, 18, 0, 3, 0, 0, 0, 1, 0, 3, 0x72, 0x64, 0x6b, 0, 11, ...Buffer.from('librdkafka'), 6, ...Buffer.from('2.0.2'), 0]);
    const r3 = new KafkaReader(v3);
    const h3 = readHeaderStart(r3);
    readHeaderRest(r3, h3);
    assert.equal(h3.clientId, 'rdk');
    assert.deepEqual(decodeApiVersionsRequest(r3, 3), { clientSoftwareName: 'librdkafka', clientSoftwareVersion: '2.0.2' });
    assert.equal(r3.remaining, 0);
  });

  test('Produce v7 with a record batch: decoded, CRC checked, records intact', async () => {
    const req = kjs('requests/produce/v7/request')({
      acks: -1,
      timeout: 30000,
      compression: 0,
      topicData: [{ topic: 'orders', partitions: [{ partition: 2, messages: [{ key: 'k1', value: 'v1' }, { key: null, value: 'v2' }] }] }],
    });
    const { h, r } = open(await clientFrame(req));
    assert.equal(h.apiKey, ApiKey.Produce);
    const p = decodeProduceRequest(r, 7);
    assert.equal(r.remaining, 0);
    assert.equal(p.acks, -1);
    assert.equal(p.timeoutMs, 30000);
    assert.equal(p.topics[0]!.name, 'orders');
    const part = p.topics[0]!.partitions[0]!;
    assert.equal(part.index, 2);
    const c = checkRecords(part.records!);
    assert.equal(c.error, KafkaError.NONE, c.reason);
    assert.equal(c.records, 2);
    const recs = decodeRecords(c.batches[0]!);
    assert.deepEqual(
      recs.map((x) => [x.key?.toString() ?? null, x.value?.toString()]),
      [
        ['k1', 'v1'],
        [null, 'v2'],
      ],
    );
    // One flipped bit anywhere under the CRC is CORRUPT_MESSAGE.
    const bad = Buffer.from(part.records!);
    bad[bad.length - 1]! ^= 1;
    assert.equal(checkRecords(bad).error, KafkaError.CORRUPT_MESSAGE);
    assert.equal(checkRecords(part.records!.subarray(0, 40)).error, KafkaError.CORRUPT_MESSAGE);
  });

  test('gzip batches from kafkajs pass; snappy/lz4/zstd are UNSUPPORTED_COMPRESSION_TYPE', async () => {
    const req = kjs('requests/produce/v7/request')({
      acks: 1,
      timeout: 1000,
      compression: 1,
      topicData: [{ topic: 't', partitions: [{ partition: 0, messages: [{ value: 'x'.repeat(500) }, { value: 'y' }] }] }],
    });
    const { r } = open(await clientFrame(req));
    const recs = decodeProduceRequest(r, 7).topics[0]!.partitions[0]!.records!;
    assert.equal(recs.readInt16BE(21) & 7, 1);
    assert.equal(checkRecords(recs).error, KafkaError.NONE);
    for (const codec of [2, 3, 4]) {
      const b = buildBatch(gzipSync(encodeRecords([{ key: null, value: Buffer.from('a') }])), 1, { compression: codec });
      assert.equal(checkRecords(b).error, KafkaError.UNSUPPORTED_COMPRESSION_TYPE);
    }
  });

  test('Fetch v11', async () => {
    const req = kjs('requests/fetch/v11/request')({
      replicaId: -1,
      maxWaitTime: 500,
      minBytes: 1,
      maxBytes: 1 << 20,
      topics: [{ topic: 'a', partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: '42', logStartOffset: '-1', maxBytes: 1000 }] }],
      rackId: 'r1',
    });
    const { r } = open(await clientFrame(req));
    const f = decodeFetchRequest(r, 11);
    assert.equal(r.remaining, 0);
    assert.deepEqual([f.maxWaitMs, f.minBytes, f.maxBytes, f.isolationLevel], [500, 1, 1 << 20, 1]);
    assert.deepEqual(f.topics, [{ topic: 'a', partitions: [{ partition: 0, fetchOffset: 42n, partitionMaxBytes: 1000 }] }]);
  });

  test('Metadata v6, ListOffsets v3, FindCoordinator v2, CreateTopics v3', async () => {
    let o = open(await clientFrame(kjs('requests/metadata/v6/request')({ topics: ['x', 'y'], allowAutoTopicCreation: false })));
    assert.deepEqual(decodeMetadataRequest(o.r, 6), { topics: ['x', 'y'], allowAutoTopicCreation: false });
    o = open(await clientFrame(kjs('requests/metadata/v0/request')({ topics: [] })));
    assert.deepEqual(decodeMetadataRequest(o.r, 0), { topics: null, allowAutoTopicCreation: true });
    o = open(await clientFrame(kjs('requests/listOffsets/v3/request')({ replicaId: -1, isolationLevel: 1, topics: [{ topic: 't', partitions: [{ partition: 1, timestamp: -2 }] }] })));
    assert.deepEqual(decodeListOffsetsRequest(o.r, 3), { topics: [{ name: 't', partitions: [{ partition: 1, timestamp: -2n }] }] });
    o = open(await clientFrame(kjs('requests/findCoordinator/v2/request')({ coordinatorKey: 'g', coordinatorType: 0 })));
    assert.deepEqual(decodeFindCoordinatorRequest(o.r, 2), { key: 'g', keyType: 0 });
    o = open(await clientFrame(kjs('requests/createTopics/v3/request')({ topics: [{ topic: 'n', numPartitions: 3, replicationFactor: 1 }], validateOnly: false, timeout: 5000 })));
    const ct = decodeCreateTopicsRequest(o.r, 3);
    assert.equal(o.r.remaining, 0);
    assert.deepEqual(ct, { topics: [{ name: 'n', numPartitions: 3, replicationFactor: 1, assignments: 0 }], timeoutMs: 5000, validateOnly: false });
  });

  test('group requests: JoinGroup v5, SyncGroup v3, Heartbeat v3, LeaveGroup v3, OffsetCommit v5, OffsetFetch v4', async () => {
    let o = open(
      await clientFrame(
        kjs('requests/joinGroup/v5/request')({
          groupId: 'g',
          sessionTimeout: 30000,
          rebalanceTimeout: 60000,
          memberId: '',
          protocolType: 'consumer',
          groupProtocols: [{ name: 'RoundRobinAssigner', metadata: Buffer.from([1, 2]) }],
        }),
      ),
    );
    const j = decodeJoinGroupRequest(o.r, 5);
    assert.deepEqual(j, { groupId: 'g', sessionTimeoutMs: 30000, rebalanceTimeoutMs: 60000, memberId: '', groupInstanceId: null, protocolType: 'consumer', protocols: [{ name: 'RoundRobinAssigner', metadata: Buffer.from([1, 2]) }] });
    o = open(await clientFrame(kjs('requests/syncGroup/v3/request')({ groupId: 'g', generationId: 3, memberId: 'm', groupAssignment: [{ memberId: 'm', memberAssignment: Buffer.from([9]) }] })));
    assert.deepEqual(decodeSyncGroupRequest(o.r, 3), { groupId: 'g', generationId: 3, memberId: 'm', assignments: [{ memberId: 'm', assignment: Buffer.from([9]) }] });
    o = open(await clientFrame(kjs('requests/heartbeat/v3/request')({ groupId: 'g', groupGenerationId: 3, memberId: 'm' })));
    assert.deepEqual(decodeHeartbeatRequest(o.r, 3), { groupId: 'g', generationId: 3, memberId: 'm' });
    o = open(await clientFrame(kjs('requests/leaveGroup/v3/request')({ groupId: 'g', members: [{ memberId: 'm' }] })));
    assert.deepEqual(decodeLeaveGroupRequest(o.r, 3), { groupId: 'g', members: [{ memberId: 'm', groupInstanceId: null }] });
    o = open(
      await clientFrame(kjs('requests/offsetCommit/v5/request')({ groupId: 'g', groupGenerationId: 3, memberId: 'm', topics: [{ topic: 't', partitions: [{ partition: 0, offset: '17' }] }] })),
    );
    assert.deepEqual(decodeOffsetCommitRequest(o.r, 5), { groupId: 'g', generationId: 3, memberId: 'm', topics: [{ name: 't', partitions: [{ partition: 0, offset: 17n, metadata: null }] }] });
    o = open(await clientFrame(kjs('requests/offsetFetch/v4/request')({ groupId: 'g', topics: [{ topic: 't', partitions: [{ partition: 0 }, { partition: 1 }] }] })));
    assert.deepEqual(decodeOffsetFetchRequest(o.r, 4), { groupId: 'g', topics: [{ name: 't', partitions: [0, 1] }] });
  });
});

describe('responses decoded by kafkajs', () => {
  test('ApiVersions v2 lists every supported API', async () => {
    const w = w0();
    encodeApiVersionsResponse(w, 2, 0);
    const res = kjs('requests/apiVersions/v2/response');
    const d = await res.parse(await res.decode(body(w)));
    assert.equal(d.apiVersions.length, SUPPORTED.length);
    assert.deepEqual(d.apiVersions.find((a: any) => a.apiKey === 1), { apiKey: 1, minVersion: 4, maxVersion: 11 });
  });

  test('ApiVersions v3 (flexible body, header v0) fixture, and the v0-form UNSUPPORTED_VERSION', async () => {
    const w = new KafkaWriter(16).header(1, false);
    w.flex = true;
    encodeApiVersionsResponse(w, 3, 0);
    const f = w.finishOne();
    const r = new KafkaReader(f, 8);
    r.flex = true;
    assert.equal(r.int16(), 0);
    assert.equal(f[10], SUPPORTED.length + 1);
    const keys = r.array((r) => {
      const k = [r.int16(), r.int16(), r.int16()];
      r.taggedFields();
      return k;
    });
    assert.deepEqual(keys[0], [0, 3, 7]);
    assert.equal(r.int32(), 0);
    r.taggedFields();
    assert.equal(r.remaining, 0);
    const w2 = w0();
    encodeApiVersionsResponse(w2, 0, KafkaError.UNSUPPORTED_VERSION);
    // kafkajs's decoder raises UNSUPPORTED_VERSION from it: that is what makes it fall back to an older version.
    await assert.rejects(kjs('requests/apiVersions/v0/response').decode(body(w2)), { code: 35 });
    const r0 = new KafkaReader(body(w2));
    assert.equal(r0.int16(), 35);
    assert.equal(r0.array((r) => [r.int16(), r.int16(), r.int16()]).length, SUPPORTED.length);
    assert.equal(r0.remaining, 0);
  });

  test('Metadata v6 and v0', async () => {
    for (const v of [0, 6]) {
      const w = w0();
      encodeMetadataResponse(w, v, {
        brokers: [{ nodeId: 1, host: '127.0.0.1', port: 9092 }],
        clusterId: 'pw',
        controllerId: 1,
        topics: [
          { errorCode: 0, name: 't', partitions: 2 },
          { errorCode: 3, name: 'gone', partitions: 0 },
        ],
      });
      const res = kjs(`requests/metadata/v${v}/response`);
      const d = await res.decode(body(w));
      assert.deepEqual(
        d.brokers.map((b: any) => [b.nodeId, b.host, b.port]),
        [[1, '127.0.0.1', 9092]],
      );
      assert.equal(d.topicMetadata[0].topic, 't');
      assert.deepEqual(
        d.topicMetadata[0].partitionMetadata.map((p: any) => [p.partitionId, p.leader, p.replicas, p.isr]),
        [
          [0, 1, [1], [1]],
          [1, 1, [1], [1]],
        ],
      );
      assert.equal(d.topicMetadata[1].topicErrorCode, 3);
      if (v === 6) assert.deepEqual([d.clusterId, d.controllerId], ['pw', 1]);
    }
  });

  test('Produce v7 and v3', async () => {
    for (const v of [3, 7]) {
      const w = w0();
      encodeProduceResponse(w, v, [{ name: 't', partitions: [{ index: 0, errorCode: 0, baseOffset: 41n, logAppendTimeMs: -1n, logStartOffset: 0n }] }], 5);
      const res = kjs(`requests/produce/v${v}/response`);
      const d = await res.parse(await res.decode(body(w)));
      assert.equal(d.topics[0].partitions[0].baseOffset, '41');
      // From v6 the client throttles itself (KIP-219): kafkajs reads it as clientSideThrottleTime.
      assert.equal(v >= 6 ? d.clientSideThrottleTime : d.throttleTime, 5);
    }
  });

  test('Fetch v11 with record batches kafkajs decodes into messages', async () => {
    const b1 = buildBatch(
      encodeRecords([
        { key: Buffer.from('a'), value: Buffer.from('1') },
        { key: null, value: Buffer.from('2') },
      ]),
      2,
      { baseOffset: 10n },
    );
    const b2 = buildBatch(encodeRecords([{ key: null, value: Buffer.alloc(2000, 0x61) }]), 1, { baseOffset: 12n });
    const w = w0();
    encodeFetchResponse(w, 11, [{ topic: 't', partitions: [{ partition: 0, errorCode: 0, highWatermark: 13n, logStartOffset: 0n, batches: [b1, b2] }] }], 0);
    const res = kjs('requests/fetch/v11/response');
    const d = await res.parse(await res.decode(body(w)));
    const p = d.responses[0].partitions[0];
    assert.equal(p.highWatermark, '13');
    assert.deepEqual(
      p.messages.map((m: any) => [m.offset, m.value.length]),
      [
        ['10', 1],
        ['11', 1],
        ['12', 2000],
      ],
    );
  });

  test('group and offset responses', async () => {
    let w = w0();
    encodeJoinGroupResponse(w, 5, { errorCode: 0, generationId: 4, protocolName: 'rr', leader: 'm1', memberId: 'm1', members: [{ memberId: 'm1', groupInstanceId: null, metadata: Buffer.from([1]) }] });
    let res = kjs('requests/joinGroup/v5/response');
    let d = await res.parse(await res.decode(body(w)));
    assert.deepEqual([d.generationId, d.groupProtocol, d.leaderId, d.memberId, d.members[0].memberId], [4, 'rr', 'm1', 'm1', 'm1']);
    w = w0();
    encodeSyncGroupResponse(w, 3, 0, Buffer.from([7, 7]));
    res = kjs('requests/syncGroup/v3/response');
    d = await res.parse(await res.decode(body(w)));
    assert.deepEqual([...d.memberAssignment], [7, 7]);
    w = w0();
    encodeFindCoordinatorResponse(w, 2, 0, 1, 'h', 9);
    res = kjs('requests/findCoordinator/v2/response');
    d = await res.parse(await res.decode(body(w)));
    assert.deepEqual(d.coordinator, { nodeId: 1, host: 'h', port: 9 });
    w = w0();
    encodeOffsetCommitResponse(w, 5, [{ name: 't', partitions: [{ partition: 0, errorCode: 0 }] }]);
    res = kjs('requests/offsetCommit/v5/response');
    d = await res.parse(await res.decode(body(w)));
    assert.equal(d.responses[0].partitions[0].errorCode, 0);
    w = w0();
    encodeOffsetFetchResponse(w, 4, [{ name: 't', partitions: [{ partition: 0, offset: 5n, metadata: '', errorCode: 0 }] }], 0);
    res = kjs('requests/offsetFetch/v4/response');
    d = await res.parse(await res.decode(body(w)));
    assert.equal(d.responses[0].partitions[0].offset, '5');
    w = w0();
    encodeListOffsetsResponse(w, 3, [{ name: 't', partitions: [{ partition: 0, errorCode: 0, timestamp: -1n, offset: 99n }] }]);
    res = kjs('requests/listOffsets/v3/response');
    d = await res.parse(await res.decode(body(w)));
    assert.equal(d.responses[0].partitions[0].offset, '99');
    w = w0();
    encodeCreateTopicsResponse(w, 3, [{ name: 'n', errorCode: 0, message: null }]);
    res = kjs('requests/createTopics/v3/response');
    d = await res.parse(await res.decode(body(w)));
    assert.equal(d.topicErrors[0].topic, 'n');
    w = w0();
    encodeDescribeGroupsResponse(w, 2, [{ errorCode: 0, groupId: 'g', state: 'Stable', protocolType: 'consumer', protocolData: 'rr', members: [] }]);
    res = kjs('requests/describeGroups/v2/response');
    d = await res.parse(await res.decode(body(w)));
    assert.equal(d.groups[0].state, 'Stable');
  });

  test('OffsetFetch v6/v7 (flexible) fixture: compact arrays, tagged fields, response header v1', () => {
    const req = Buffer.from([0, 9, 0, 7, 0, 0, 0, 3, 0xff, 0xff, 0, 2, 0x67, 2, 2, 0x74, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    const r = new KafkaReader(req);
    const h = readHeaderStart(r);
    readHeaderRest(r, h);
    assert.equal(h.flexible, true);
    assert.deepEqual(decodeOffsetFetchRequest(r, 7), { groupId: 'g', topics: [{ name: 't', partitions: [0, 1] }] });
    assert.equal(r.remaining, 0);
    const w = new KafkaWriter(16).header(3, true);
    w.flex = true;
    encodeOffsetFetchResponse(w, 7, [{ name: 't', partitions: [{ partition: 0, offset: 5n, metadata: '', errorCode: 0 }] }], 0);
    const f = w.finishOne();
    // size | correlation 3 | header tags | throttle | topics(1+1) | name | partitions(1+1) | p0 | offset 5 | epoch -1 | metadata '' | error | tags | tags | error | tags
    assert.deepEqual(
      [...f.subarray(4)],
      [0, 0, 0, 3, 0, 0, 0, 0, 0, 2, 2, 0x74, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0],
    );
  });
});

test('ProxyError -> Kafka error code mapping', () => {
  const e = (code: any, source: any = 'internal') => kafkaErrorOf(new ProxyError(code, 'x', { source }));
  assert.equal(e(ErrorCode.RateLimited), KafkaError.THROTTLING_QUOTA_EXCEEDED);
  assert.equal(e(ErrorCode.CircuitOpen), KafkaError.LEADER_NOT_AVAILABLE);
  assert.equal(e(ErrorCode.Timeout), KafkaError.REQUEST_TIMED_OUT);
  assert.equal(e(ErrorCode.Storage, 'upstream'), KafkaError.KAFKA_STORAGE_ERROR);
  assert.equal(e(ErrorCode.TopicExists), KafkaError.TOPIC_ALREADY_EXISTS);
  assert.equal(e(ErrorCode.Protocol, 'downstream'), KafkaError.CORRUPT_MESSAGE);
  assert.equal(e(ErrorCode.Internal), KafkaError.UNKNOWN_SERVER_ERROR);
});
