/**
 * Bad input on the Kafka listener: requests cut short inside their grammar,
 * frames over max_frame_size, bad CRCs, unknown APIs and versions,
 * unsupported compression. Each gets the protocol's error (or, for framing
 * that cannot be trusted, a logged close) and the listener stays healthy.
 * Also: responses in request order, acks=0 without a response.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { kafkajsFrame, produceBody, RawKafka, requestFrame, startKafkaPortway } from '../helpers/kafka';

const fetchV11Response = require('kafkajs/src/protocol/requests/fetch/v11/response');
import type { InProcess } from '../helpers/portway';
import { http } from '../helpers/net';
import { KafkaReader } from '../../src/protocols/kafka/reader';
import { KafkaError } from '../../src/protocols/kafka/error-codes';
import { buildBatch, encodeRecords } from '../../src/protocols/kafka/record-batch';

const batch = (value = 'v') => buildBatch(encodeRecords([{ key: null, value: Buffer.from(value) }]), 1);

/** Partition error code of a Produce v7 response frame (one topic, one partition). */
function produceError(f: Buffer): number {
  const r = new KafkaReader(f, 4);
  r.int32();
  r.string();
  r.int32();
  r.int32();
  return r.int16();
}

describe('bad input on the Kafka listener', () => {
  let pw: InProcess & { broker: string };
  let port: number;
  const apiVersions = () => requestFrame(18, 2, 99, Buffer.alloc(0));

  async function healthy(raw: RawKafka): Promise<void> {
    raw.send(apiVersions());
    const f = await raw.next();
    assert.ok(f !== null, 'connection still open');
    assert.equal(f.readInt32BE(0), 99);
    assert.equal(f.readInt16BE(4), 0);
  }

  before(async () => {
    pw = await startKafkaPortway({ options: '      max_frame_size: 4096\n      topics: [{ name: t }, { name: poll }, { name: sized }, { name: minb }]' });
    port = pw.port('kafka');
  });

  after(async () => {
    await pw?.stop();
  });

  test('a request cut short inside its grammar: INVALID_REQUEST in the API shape, connection stays', async () => {
    const raw = await RawKafka.open(port);
    try {
      // Metadata v6 claiming 5 topic names and carrying none.
      raw.send(requestFrame(3, 6, 1, Buffer.from([0, 0, 0, 5])));
      // JoinGroup v5 cut after the group id.
      raw.send(requestFrame(11, 5, 2, Buffer.from([0, 1, 0x67])));
      const m = (await raw.next())!;
      assert.equal(m.readInt32BE(0), 1);
      const j = (await raw.next())!;
      assert.equal(j.readInt32BE(0), 2);
      assert.equal(j.readInt16BE(8), KafkaError.INVALID_REQUEST, 'JoinGroup v5: throttle_time_ms then error_code');
      await healthy(raw);
    } finally {
      raw.close();
    }
  });

  test('a frame cut off by the client closing does not disturb others', async () => {
    const raw = await RawKafka.open(port);
    const f = await kafkajsFrame('metadata/v6', { topics: ['t'] }, 3);
    raw.send(f.subarray(0, f.length - 3));
    raw.close();
    const other = await RawKafka.open(port);
    await healthy(other);
    other.close();
  });

  test('a size over max_frame_size (or negative) closes the connection; the listener goes on', async () => {
    const before = (await http('GET', `${pw.admin}/metrics`)).body;
    const count = (text: string) => Number(/portway_downstream_errors_total\{[^}]*code="PW_ERR_PROTOCOL"[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
    for (const size of [5000, -1, 100 * 1024 * 1024 + 1]) {
      const raw = await RawKafka.open(port);
      const b = Buffer.alloc(8);
      b.writeInt32BE(size, 0);
      raw.send(b);
      assert.equal(await raw.next(), null, `size ${size}: closed`);
    }
    const afterText = (await http('GET', `${pw.admin}/metrics`)).body;
    assert.equal(count(afterText) - count(before), 3);
    const ok = await RawKafka.open(port);
    await healthy(ok);
    ok.close();
  });

  test('a bad CRC is CORRUPT_MESSAGE for that partition; snappy is UNSUPPORTED_COMPRESSION_TYPE; then a good batch lands', async () => {
    const raw = await RawKafka.open(port);
    try {
      const bad = batch('corrupt me');
      bad[bad.length - 2]! ^= 0x40;
      raw.send(requestFrame(0, 7, 10, produceBody('t', 0, bad)));
      assert.equal(produceError((await raw.next())!), KafkaError.CORRUPT_MESSAGE);
      const snappy = buildBatch(gzipSync(encodeRecords([{ key: null, value: Buffer.from('s') }])), 1, { compression: 2 });
      raw.send(requestFrame(0, 7, 11, produceBody('t', 0, snappy)));
      assert.equal(produceError((await raw.next())!), KafkaError.UNSUPPORTED_COMPRESSION_TYPE);
      const lying = buildBatch(Buffer.from('not gzip at all'), 1, { compression: 1 });
      raw.send(requestFrame(0, 7, 12, produceBody('t', 0, lying)));
      assert.equal(produceError((await raw.next())!), KafkaError.CORRUPT_MESSAGE);
      raw.send(requestFrame(0, 7, 13, produceBody('t', 0, batch('good'))));
      assert.equal(produceError((await raw.next())!), KafkaError.NONE);
      raw.send(requestFrame(0, 7, 14, produceBody('nope', 0, batch())));
      assert.equal(produceError((await raw.next())!), KafkaError.UNKNOWN_TOPIC_OR_PARTITION);
      raw.send(requestFrame(0, 7, 15, produceBody('t', 0, batch(), 2)));
      assert.equal(produceError((await raw.next())!), KafkaError.INVALID_REQUIRED_ACKS);
      const metrics = (await http('GET', `${pw.admin}/metrics`)).body;
      assert.match(metrics, /portway_kafka_corrupt_batches_total\{[^}]*\} 3/);
    } finally {
      raw.close();
    }
  });

  test('unknown API keys and versions: UNSUPPORTED_VERSION, ApiVersions answered in v0 form', async () => {
    const raw = await RawKafka.open(port);
    try {
      raw.send(requestFrame(57, 0, 20, Buffer.alloc(4)));
      raw.send(requestFrame(3, 42, 21, Buffer.alloc(4)));
      raw.send(requestFrame(18, 9, 22, Buffer.alloc(0)));
      let f = (await raw.next())!;
      assert.deepEqual([f.readInt32BE(0), f.readInt16BE(4)], [20, KafkaError.UNSUPPORTED_VERSION]);
      f = (await raw.next())!;
      assert.deepEqual([f.readInt32BE(0), f.readInt16BE(4)], [21, KafkaError.UNSUPPORTED_VERSION]);
      f = (await raw.next())!;
      const r = new KafkaReader(f, 4);
      assert.equal(r.int16(), KafkaError.UNSUPPORTED_VERSION);
      const keys = r.array((r) => [r.int16(), r.int16(), r.int16()]);
      assert.deepEqual(keys.find((k) => k[0] === 18), [18, 0, 3]);
      assert.equal(r.remaining, 0, 'v0 form: no throttle time');
      await healthy(raw);
    } finally {
      raw.close();
    }
  });

  test('fetch limits: the first batch whatever its size, then whole batches within max_bytes; OFFSET_OUT_OF_RANGE', async () => {
    const raw = await RawKafka.open(port);
    try {
      for (let i = 0; i < 3; i++) {
        raw.send(requestFrame(0, 7, 40 + i, produceBody('sized', 0, buildBatch(encodeRecords([{ key: null, value: Buffer.alloc(2000, 0x61 + i) }]), 1))));
        assert.equal(produceError((await raw.next())!), KafkaError.NONE);
      }
      const fetch = async (cid: number, offset: string, maxBytes: number, partitionMaxBytes: number) => {
        raw.send(
          await kafkajsFrame(
            'fetch/v11',
            { replicaId: -1, maxWaitTime: 0, minBytes: 0, maxBytes, topics: [{ topic: 'sized', partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: offset, logStartOffset: '-1', maxBytes: partitionMaxBytes }] }] },
            cid,
          ),
        );
        const f = (await raw.next())!;
        assert.equal(f.readInt32BE(0), cid);
        return (await fetchV11Response.decode(f.subarray(4))).responses[0].partitions[0];
      };
      let p = await fetch(50, '0', 100, 100);
      assert.deepEqual(p.messages.map((m: { offset: string }) => m.offset), ['0'], 'one batch above both limits');
      p = await fetch(51, '0', 4500, 1 << 20);
      assert.deepEqual(p.messages.map((m: { offset: string }) => m.offset), ['0', '1'], 'whole batches within max_bytes');
      p = await fetch(52, '1', 1 << 20, 1 << 20);
      assert.deepEqual(p.messages.map((m: { offset: string }) => m.offset), ['1', '2']);
      assert.equal(p.highWatermark, '3');
      p = await fetch(53, '9', 1 << 20, 1 << 20);
      assert.equal(p.errorCode, KafkaError.OFFSET_OUT_OF_RANGE);
      await healthy(raw);
    } finally {
      raw.close();
    }
  });

  test('fetch long polling: min_bytes not reached waits until another producer adds enough', async () => {
    const consumer = await RawKafka.open(port);
    const producer = await RawKafka.open(port);
    try {
      const one = () => buildBatch(encodeRecords([{ key: null, value: Buffer.alloc(1000, 0x62) }]), 1);
      producer.send(requestFrame(0, 7, 60, produceBody('minb', 0, one())));
      assert.equal(produceError((await producer.next())!), KafkaError.NONE);
      consumer.send(
        await kafkajsFrame(
          'fetch/v11',
          { replicaId: -1, maxWaitTime: 10_000, minBytes: 1500, maxBytes: 1 << 20, topics: [{ topic: 'minb', partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: '0', logStartOffset: '-1', maxBytes: 1 << 20 }] }] },
          61,
        ),
      );
      // Not answered with one batch (about 1070 bytes < min_bytes) ...
      await new Promise((r) => setTimeout(r, 200));
      producer.send(requestFrame(0, 7, 62, produceBody('minb', 0, one())));
      assert.equal(produceError((await producer.next())!), KafkaError.NONE);
      // ... but as soon as the second one lands.
      const f = (await consumer.next())!;
      assert.equal(f.readInt32BE(0), 61);
      const p = (await fetchV11Response.decode(f.subarray(4))).responses[0].partitions[0];
      assert.deepEqual(p.messages.map((m: { offset: string }) => m.offset), ['0', '1']);
    } finally {
      consumer.close();
      producer.close();
    }
  });

  test('pipelined requests are answered in order (a long-polling fetch first); acks=0 gets no response', async () => {
    const raw = await RawKafka.open(port);
    try {
      const fetch = await kafkajsFrame(
        'fetch/v11',
        { replicaId: -1, maxWaitTime: 300, minBytes: 1, maxBytes: 1 << 20, topics: [{ topic: 'poll', partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: '0', logStartOffset: '-1', maxBytes: 1000 }] }] },
        30,
      );
      raw.send(Buffer.concat([fetch, requestFrame(0, 7, 31, produceBody('t', 0, batch('quiet'), 0)), requestFrame(18, 2, 32, Buffer.alloc(0))]));
      const a = (await raw.next())!;
      const b = (await raw.next())!;
      assert.deepEqual([a.readInt32BE(0), b.readInt32BE(0)], [30, 32]);
    } finally {
      raw.close();
    }
  });
});
