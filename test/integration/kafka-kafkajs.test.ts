/**
 * kafkajs 2.2.4 (unmodified) against Portway's Kafka listener: producing
 * with every acks setting, batches and gzip; admin; routing with topic
 * rename; the filter chain (rate limit by topic, circuit breaker on a
 * failing log component).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CompressionTypes, type Admin, type Consumer, type Producer } from 'kafkajs';
import { kafkaClient, kafkaConfig, startKafkaPortway, RawKafka, requestFrame, produceBody } from '../helpers/kafka';
import type { InProcess } from '../helpers/portway';
import { http, sleep, waitFor } from '../helpers/net';
import { buildBatch, decodeRecords, encodeRecords } from '../../src/protocols/kafka/record-batch';
import { KafkaReader } from '../../src/protocols/kafka/reader';
import { KafkaError } from '../../src/protocols/kafka/error-codes';
import type { LogComponent } from '../../src/components/log-component';

/** Consumes `count` messages of `topic` from the beginning with a fresh group; returns them in arrival order. */
async function consumeAll(broker: string, topic: string, count: number): Promise<{ partition: number; offset: string; key: string | null; value: string }[]> {
  const consumer: Consumer = kafkaClient(broker).consumer({ groupId: `reader-${topic}-${Math.random()}`, maxWaitTimeInMs: 200 });
  const got: { partition: number; offset: string; key: string | null; value: string }[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          got.push({ partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value!.toString() });
          if (got.length === count) resolve();
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return got;
}

describe('kafkajs through the Kafka listener', () => {
  let pw: InProcess & { broker: string };
  let admin: Admin;
  let producer: Producer;

  before(async () => {
    pw = await startKafkaPortway({
      options: `      topics: [{ name: configured, partitions: 2 }]
      topic_routes:
        - { prefix: orders, cluster: tenant-a, store_prefix: tenant-a.orders }`,
      clusters: `  - name: tenant-a
    component: { type: memory_log }`,
    });
    admin = kafkaClient(pw.broker).admin();
    await admin.connect();
    producer = kafkaClient(pw.broker).producer({ allowAutoTopicCreation: true });
    await producer.connect();
  });

  after(async () => {
    await producer?.disconnect();
    await admin?.disconnect();
    await pw?.stop();
  });

  test('admin: createTopics, listTopics, fetchTopicOffsets, configured topics, deleteTopics', async () => {
    assert.equal(await admin.createTopics({ topics: [{ topic: 'admin-t', numPartitions: 3 }], waitForLeaders: true }), true);
    assert.equal(await admin.createTopics({ topics: [{ topic: 'admin-t', numPartitions: 3 }] }), false, 'exists already');
    const topics = await admin.listTopics();
    assert.ok(topics.includes('admin-t'));
    assert.ok(topics.includes('configured'), 'created from the listener options');
    const md = await admin.fetchTopicMetadata({ topics: ['configured'] });
    assert.equal(md.topics[0]!.partitions.length, 2);
    await producer.send({ topic: 'admin-t', messages: [{ value: 'a', partition: 1 }, { value: 'b', partition: 1 }, { value: 'c', partition: 2 }] });
    const offs = await admin.fetchTopicOffsets('admin-t');
    assert.deepEqual(
      offs.sort((a, b) => a.partition - b.partition).map((o) => [o.partition, o.low, o.high]),
      [
        [0, '0', '0'],
        [1, '0', '2'],
        [2, '0', '1'],
      ],
    );
    await admin.deleteTopics({ topics: ['admin-t'] });
    assert.ok(!(await admin.listTopics()).includes('admin-t'));
  });

  test('producer with acks 0, 1 and -1, batches and gzip; a consumer reads every record once, in order', async () => {
    await admin.createTopics({ topics: [{ topic: 'acks', numPartitions: 2 }] });
    const expect: string[] = [];
    for (const acks of [1, -1]) {
      for (let b = 0; b < 5; b++) {
        const messages = Array.from({ length: 20 }, (_, i) => ({ key: `k${i % 4}`, value: `acks${acks}-b${b}-m${i}` }));
        const res = await producer.send({ topic: 'acks', acks, messages });
        assert.ok(res.every((r) => r.errorCode === 0));
        expect.push(...messages.map((m) => m.value));
      }
    }
    const gz = Array.from({ length: 50 }, (_, i) => ({ key: 'gz', value: `gzip-${i}-${'x'.repeat(200)}` }));
    await producer.send({ topic: 'acks', compression: CompressionTypes.GZIP, messages: gz });
    expect.push(...gz.map((m) => m.value));
    // acks=0: no response at all; the records still land.
    const zero = Array.from({ length: 30 }, (_, i) => ({ key: 'z', value: `acks0-${i}` }));
    await producer.send({ topic: 'acks', acks: 0, messages: zero });
    expect.push(...zero.map((m) => m.value));
    await waitFor(async () => (await admin.fetchTopicOffsets('acks')).reduce((n, o) => n + Number(o.high), 0) === expect.length, 5000, 'acks=0 records');
    const got = await consumeAll(pw.broker, 'acks', expect.length);
    assert.deepEqual(got.map((g) => g.value).sort(), [...expect].sort(), 'every record exactly once');
    // Within a key (one partition) order is kept.
    const z = got.filter((g) => g.key === 'z').map((g) => g.value);
    assert.deepEqual(z, zero.map((m) => m.value));
    for (const p of [0, 1]) {
      const offsets = got.filter((g) => g.partition === p).map((g) => Number(g.offset));
      assert.deepEqual(offsets, offsets.map((_, i) => i), `partition ${p} offsets dense from 0`);
    }
  });

  test('topic routes: the app sees "orders", the tenant log keeps "tenant-a.orders"', async () => {
    await producer.send({ topic: 'orders', messages: [{ value: 'o1' }, { value: 'o2' }] });
    const tenant = pw.proxy.clusters.get('tenant-a')!.component as LogComponent;
    const main = pw.proxy.clusters.get('log')!.component as LogComponent;
    assert.deepEqual(
      tenant.topics().map((t) => t.name),
      ['tenant-a.orders'],
    );
    assert.equal(main.topic('orders'), undefined);
    assert.equal(tenant.partition('tenant-a.orders', 0)!.highWatermark(), 2n);
    assert.ok((await admin.listTopics()).includes('orders'));
    assert.ok(!(await admin.listTopics()).includes('tenant-a.orders'));
    const got = await consumeAll(pw.broker, 'orders', 2);
    assert.deepEqual(
      got.map((g) => g.value),
      ['o1', 'o2'],
    );
  });
});

describe('Kafka listener filter chain', () => {
  let pw: InProcess & { broker: string };

  before(async () => {
    pw = await startKafkaPortway({
      filters: `      - type: rate_limit
        rate: 1
        per: 1h
        burst: 2
        key: attribute:topic
        match: { attributes: { topic: { exact: limited } } }
      - type: circuit_breaker
        consecutive_failures: 1
        open_duration: 1h`,
      options: `      topics: [{ name: limited }, { name: free }]`,
    });
  });

  after(async () => {
    await pw?.stop();
  });

  const batch = () => buildBatch(encodeRecords([{ key: null, value: Buffer.from('v') }]), 1);

  /** Produce v7 over a raw connection: [error code, throttle ms]. */
  async function rawProduce(raw: RawKafka, topic: string, cid: number): Promise<[number, number]> {
    raw.send(requestFrame(0, 7, cid, produceBody(topic, 0, batch())));
    const f = (await raw.next())!;
    const r = new KafkaReader(f);
    assert.equal(r.int32(), cid);
    r.int32();
    r.string();
    r.int32();
    r.int32();
    const code = r.int16();
    r.int64();
    r.int64();
    r.int64();
    return [code, r.int32()];
  }

  test('a rate limit by topic answers THROTTLING_QUOTA_EXCEEDED with a throttle time; other topics pass', async () => {
    const raw = await RawKafka.open(pw.port('kafka'));
    try {
      assert.deepEqual(await rawProduce(raw, 'limited', 1), [0, 0]);
      assert.deepEqual(await rawProduce(raw, 'limited', 2), [0, 0]);
      const [code, throttle] = await rawProduce(raw, 'limited', 3);
      assert.equal(code, KafkaError.THROTTLING_QUOTA_EXCEEDED);
      assert.ok(throttle > 0, `throttle ${throttle}`);
      assert.deepEqual(await rawProduce(raw, 'free', 4), [0, 0]);
      assert.equal((pw.proxy.clusters.get('log')!.component as LogComponent).partition('limited', 0)!.highWatermark(), 2n);
    } finally {
      raw.close();
    }
  });

  test('a failing log component opens the breaker: storage error, then LEADER_NOT_AVAILABLE without touching it', async () => {
    const raw = await RawKafka.open(pw.port('kafka'));
    try {
      const log = pw.proxy.clusters.get('log')!.component as LogComponent;
      const part = log.partition('free', 0)!;
      const realAppend = part.append.bind(part);
      let calls = 0;
      part.append = () => {
        calls++;
        return Promise.reject(new Error('EIO: disk on fire'));
      };
      try {
        const [first] = await rawProduce(raw, 'free', 10);
        assert.equal(first, KafkaError.KAFKA_STORAGE_ERROR);
        const [second] = await rawProduce(raw, 'free', 11);
        assert.equal(second, KafkaError.LEADER_NOT_AVAILABLE);
        assert.equal(calls, 1, 'the open breaker keeps requests off the component');
        const clusters = JSON.parse((await http('GET', `${pw.admin}/clusters`)).body);
        assert.match(JSON.stringify(clusters), /"open"/);
      } finally {
        part.append = realAppend;
      }
    } finally {
      raw.close();
    }
  });
});

describe('Kafka listener with an async filter and a config reload', () => {
  let pw: InProcess & { broker: string };

  before(async () => {
    // A delay makes the filter verdict a promise: appends must still keep the connection's order.
    pw = await startKafkaPortway({
      filters: `      - type: fault
        delay: { duration: 5ms, percentage: 100 }
        match: { attributes: { api: { exact: produce } } }`,
      options: '      topics: [{ name: ordered }]',
    });
  });

  after(async () => {
    await pw?.stop();
  });

  test('pipelined produce requests behind an async filter are appended in request order', async () => {
    const raw = await RawKafka.open(pw.port('kafka'));
    try {
      const frames = Array.from({ length: 30 }, (_, i) => requestFrame(0, 7, 100 + i, produceBody('ordered', 0, buildBatch(encodeRecords([{ key: null, value: Buffer.from(`n${i}`) }]), 1), i % 3 === 0 ? 0 : 1)));
      raw.send(Buffer.concat(frames));
      const ids: number[] = [];
      for (let i = 0; i < 30; i++) if (i % 3 !== 0) ids.push((await raw.next())!.readInt32BE(0));
      assert.deepEqual(
        ids,
        Array.from({ length: 30 }, (_, i) => i).filter((i) => i % 3 !== 0).map((i) => 100 + i),
        'responses in request order, none for acks=0',
      );
      const log = (pw.proxy.clusters.get('log')!.component as LogComponent).partition('ordered', 0)!;
      await waitFor(async () => log.highWatermark() === 30n, 5000, 'all 30 appended');
      const read = await log.read(0n, 1 << 20);
      const values = read.batches.flatMap((b) => decodeRecords(b.bytes).map((r) => r.value!.toString()));
      assert.deepEqual(values, Array.from({ length: 30 }, (_, i) => `n${i}`));
    } finally {
      raw.close();
    }
  });

  test('a config reload keeps the consumer groups', async () => {
    const kafka = kafkaClient(pw.broker);
    const consumer = kafka.consumer({ groupId: 'reloaded', heartbeatInterval: 200, maxWaitTimeInMs: 100 });
    let joins = 0;
    consumer.on(consumer.events.GROUP_JOIN, () => joins++);
    await consumer.connect();
    await consumer.subscribe({ topic: 'ordered', fromBeginning: true });
    await consumer.run({ eachMessage: async () => {} });
    try {
      await waitFor(async () => joins === 1, 10_000, 'joined');
      const res = await pw.proxy.reload(kafkaConfig({ options: '      topics: [{ name: ordered }]\n      default_partitions: 2' }));
      assert.equal(res.ok, true, JSON.stringify(res));
      // A new connection is served by the new generation: it sees the same group, still stable with its member.
      const admin = kafkaClient(pw.broker).admin();
      await admin.connect();
      const d = await admin.describeGroups(['reloaded']);
      await admin.disconnect();
      assert.equal(d.groups[0]!.state, 'Stable');
      assert.equal(d.groups[0]!.members.length, 1);
      await sleep(600);
      assert.equal(joins, 1, 'no rebalance');
    } finally {
      await consumer.disconnect();
    }
  });
});
