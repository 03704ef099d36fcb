/**
 * Consumer groups with real kafkajs consumers: three members share a topic,
 * one leaves mid-stream, the others take its partitions over and nothing is
 * skipped (at-least-once); committed offsets survive a Portway restart on the
 * embedded log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import type { Consumer } from 'kafkajs';
import { kafkaClient, startKafkaPortway } from '../helpers/kafka';
import { tempDir } from '../helpers/portway';
import { sleep, waitFor } from '../helpers/net';

interface Member {
  consumer: Consumer;
  seen: string[];
  /** GROUP_JOIN events: one per generation the member took part in. */
  joins: number;
  assigned: number[];
}

async function member(broker: string, groupId: string, topic: string, sink: Set<string>): Promise<Member> {
  const consumer = kafkaClient(broker).consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 300, maxWaitTimeInMs: 100, rebalanceTimeout: 10000 });
  const m: Member = { consumer, seen: [], joins: 0, assigned: [] };
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    m.joins++;
    m.assigned = (e.payload.memberAssignment[topic] as number[] | undefined) ?? [];
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const id = `${partition}:${message.offset}`;
      m.seen.push(id);
      sink.add(id);
    },
  });
  return m;
}

test('three kafkajs members: partitions split, one leaves mid-stream, no record skipped', async () => {
  const pw = await startKafkaPortway();
  const kafka = kafkaClient(pw.broker);
  const admin = kafka.admin();
  const producer = kafka.producer();
  const members: Member[] = [];
  try {
    await admin.connect();
    await producer.connect();
    await admin.createTopics({ topics: [{ topic: 'grp', numPartitions: 6 }] });
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) members.push(await member(pw.broker, 'g3', 'grp', seen));
    // Everyone in one generation, six partitions split among three.
    await waitFor(async () => members.every((m) => m.assigned.length === 2), 20_000, 'three members with two partitions each');
    assert.deepEqual(members.flatMap((m) => m.assigned).sort(), [0, 1, 2, 3, 4, 5]);
    const send = async (from: number, n: number) => {
      for (let b = 0; b < n; b += 20) {
        await producer.send({ topic: 'grp', messages: Array.from({ length: 20 }, (_, i) => ({ key: `key-${from + b + i}`, value: `m${from + b + i}` })) });
      }
    };
    await send(0, 200);
    await waitFor(async () => seen.size === 200, 20_000, '200 records consumed');
    assert.ok(members.every((m) => m.seen.length > 0), 'each member got records');
    // One member leaves while records keep coming.
    const producing = send(200, 400);
    await sleep(100);
    const leaver = members.pop()!;
    await leaver.consumer.disconnect();
    await producing;
    const offsets = await admin.fetchTopicOffsets('grp');
    const total = offsets.reduce((n, o) => n + Number(o.high), 0);
    assert.equal(total, 600);
    await waitFor(async () => seen.size === total, 30_000, `all ${total} records consumed (have ${seen.size})`);
    // The two left take over the leaver's partitions in a later generation (the records may all be
    // consumed before that rebalance ends, when the leaver read its share before leaving: wait for it).
    await waitFor(async () => members.flatMap((m) => m.assigned).length === 6, 30_000, 'the leaver\'s partitions reassigned');
    assert.deepEqual(members.flatMap((m) => m.assigned).sort(), [0, 1, 2, 3, 4, 5]);
    for (const m of members) assert.ok(m.joins >= 2, `rebalanced: ${m.joins} joins`);
    // No gap: every offset below each partition's high watermark was delivered.
    for (const o of offsets) for (let i = 0; i < Number(o.high); i++) assert.ok(seen.has(`${o.partition}:${i}`), `partition ${o.partition} offset ${i}`);
    const desc = await admin.describeGroups(['g3']);
    assert.equal(desc.groups[0]!.members.length, 2);
  } finally {
    for (const m of members) await m.consumer.disconnect();
    await producer.disconnect();
    await admin.disconnect();
    await pw.stop();
  }
});

test('committed offsets survive a Portway restart (embedded log on disk)', async () => {
  const dir = tempDir('portway-kafka-offsets-');
  const component = `{ type: embedded, data_dir: ${dir}, fsync: interval }`;
  try {
    let pw = await startKafkaPortway({ component });
    let kafka = kafkaClient(pw.broker);
    let producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'dur', messages: Array.from({ length: 20 }, (_, i) => ({ value: `old-${i}` })) });
    await producer.disconnect();
    const seen = new Set<string>();
    const first = await member(pw.broker, 'gd', 'dur', seen);
    await waitFor(async () => seen.size === 20, 20_000, 'first 20 consumed');
    await first.consumer.disconnect(); // commits what it processed, leaves
    await pw.stop();

    pw = await startKafkaPortway({ component });
    kafka = kafkaClient(pw.broker);
    const admin = kafka.admin();
    await admin.connect();
    const committed = await admin.fetchOffsets({ groupId: 'gd', topics: ['dur'] });
    assert.deepEqual(
      committed[0]!.partitions.map((p) => p.offset),
      ['20'],
    );
    const groups = await admin.listGroups();
    assert.ok(groups.groups.some((g) => g.groupId === 'gd'));
    producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'dur', messages: Array.from({ length: 5 }, (_, i) => ({ value: `new-${i}` })) });
    const values: string[] = [];
    const consumer = kafka.consumer({ groupId: 'gd', maxWaitTimeInMs: 100, heartbeatInterval: 300 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'dur', fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => void values.push(message.value!.toString()) });
    await waitFor(async () => values.length >= 5, 20_000, 'the 5 new records');
    await sleep(300);
    assert.deepEqual(values, ['new-0', 'new-1', 'new-2', 'new-3', 'new-4'], 'resumes at the committed offset');
    await consumer.disconnect();
    await producer.disconnect();
    await admin.disconnect();
    await pw.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
});

test('a member killed without leaving times out (session timeout); the survivor takes its partitions', async () => {
  const pw = await startKafkaPortway();
  const kafka = kafkaClient(pw.broker);
  const admin = kafka.admin();
  const producer = kafka.producer();
  let survivor: Member | null = null;
  // The doomed member runs in a child process so that SIGKILL is a real crash: no LeaveGroup, no goodbye.
  const script = `
    const { Kafka, logLevel } = require(${JSON.stringify(require.resolve('kafkajs'))});
    const c = new Kafka({ brokers: [${JSON.stringify(pw.broker)}], logLevel: logLevel.NOTHING }).consumer({ groupId: 'crashy', sessionTimeout: 2000, heartbeatInterval: 300, maxWaitTimeInMs: 100 });
    c.on(c.events.GROUP_JOIN, (e) => console.log('assigned ' + JSON.stringify(e.payload.memberAssignment.crash2 || [])));
    c.connect().then(() => c.subscribe({ topic: 'crash2', fromBeginning: true })).then(() => c.run({ eachMessage: async () => {} }));
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let childOut = '';
  child.stdout.on('data', (c: Buffer) => (childOut += c.toString()));
  try {
    await admin.connect();
    await producer.connect();
    await admin.createTopics({ topics: [{ topic: 'crash2', numPartitions: 4 }] });
    const seen = new Set<string>();
    survivor = await member(pw.broker, 'crashy', 'crash2', seen);
    await waitFor(async () => survivor!.assigned.length === 2 && /assigned \[\d,\d\]/.test(childOut), 20_000, 'two members, two partitions each');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // Within the session timeout (2 s) plus a heartbeat the coordinator drops the dead member and rebalances.
    await waitFor(async () => survivor!.assigned.length === 4, 20_000, 'the survivor owns all four partitions');
    for (let p = 0; p < 4; p++) await producer.send({ topic: 'crash2', messages: [{ value: `after-${p}`, partition: p }] });
    await waitFor(async () => [0, 1, 2, 3].every((p) => seen.has(`${p}:0`)), 20_000, 'records on every partition consumed');
  } finally {
    child.kill('SIGKILL');
    await survivor?.consumer.disconnect();
    await producer.disconnect();
    await admin.disconnect();
    await pw.stop();
  }
});
