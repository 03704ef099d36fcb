/**
 * kcat 1.7.1 / librdkafka 2.0.2 (Debian) against Portway's Kafka listener:
 * metadata, producing, consuming from the beginning, an offset and the end,
 * and the balanced consumer (-G) with its commits.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { kafkaClient, kcat, kcatBinary, startKafkaPortway } from '../helpers/kafka';
import type { InProcess } from '../helpers/portway';

describe('kcat through the Kafka listener', () => {
  let pw: InProcess & { broker: string };

  before(async () => {
    kcatBinary();
    pw = await startKafkaPortway({ options: '      topics: [{ name: kc, partitions: 1 }, { name: kc3, partitions: 3 }, { name: kc2, partitions: 2 }]' });
  });

  after(async () => {
    await pw?.stop();
  });

  test('-L lists the broker (Portway itself) and the topics', async () => {
    const r = await kcat(['-b', pw.broker, '-L']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`broker 1 at ${pw.broker.replace(/\./g, '\\.')}`));
    assert.match(r.stdout, /topic "kc" with 1 partitions/);
    assert.match(r.stdout, /topic "kc3" with 3 partitions/);
    // ApiVersions v3 (flexible) was understood: no fallback complaint.
    assert.doesNotMatch(r.stderr, /ApiVersionRequest v3 failed/);
  });

  test('-P then -C from the beginning, from an offset, from the end', async () => {
    const lines = Array.from({ length: 10 }, (_, i) => `line-${i}`);
    const p = await kcat(['-b', pw.broker, '-P', '-t', 'kc', '-p', '0'], lines.join('\n') + '\n');
    assert.equal(p.code, 0, p.stderr);
    let c = await kcat(['-b', pw.broker, '-C', '-t', 'kc', '-o', 'beginning', '-e', '-f', '%o %s\\n']);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(c.stdout.trim().split('\n'), lines.map((l, i) => `${i} ${l}`));
    c = await kcat(['-b', pw.broker, '-C', '-t', 'kc', '-o', '7', '-e', '-f', '%o %s\\n']);
    assert.deepEqual(c.stdout.trim().split('\n'), ['7 line-7', '8 line-8', '9 line-9']);
    c = await kcat(['-b', pw.broker, '-C', '-t', 'kc', '-o', '-2', '-e', '-f', '%o %s\\n']);
    assert.deepEqual(c.stdout.trim().split('\n'), ['8 line-8', '9 line-9']);
    c = await kcat(['-b', pw.broker, '-C', '-t', 'kc', '-o', 'end', '-e']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout.trim(), '');
  });

  test('kcat and kafkajs see the same records (keys too, gzip from librdkafka)', async () => {
    const p = await kcat(['-b', pw.broker, '-P', '-t', 'kc3', '-K', ':', '-z', 'gzip'], 'a:1\nb:2\nc:3\nd:4\n');
    assert.equal(p.code, 0, p.stderr);
    const admin = kafkaClient(pw.broker).admin();
    await admin.connect();
    const offs = await admin.fetchTopicOffsets('kc3');
    await admin.disconnect();
    assert.equal(
      offs.reduce((n, o) => n + Number(o.high), 0),
      4,
    );
    const c = await kcat(['-b', pw.broker, '-C', '-t', 'kc3', '-o', 'beginning', '-e', '-f', '%k=%s\\n']);
    assert.deepEqual(c.stdout.trim().split('\n').sort(), ['a=1', 'b=2', 'c=3', 'd=4']);
  });

  test('-G: the balanced consumer joins a group, consumes, commits; a second run resumes after the commit', async () => {
    const first = Array.from({ length: 5 }, (_, i) => `g-${i}`);
    await kcat(['-b', pw.broker, '-P', '-t', 'kc', '-p', '0'], first.join('\n') + '\n');
    const all = (await kcat(['-b', pw.broker, '-C', '-t', 'kc', '-o', 'beginning', '-e'])).stdout.trim().split('\n');
    const g1 = await kcat(['-b', pw.broker, '-G', 'kcat-group', '-o', 'beginning', '-e', '-X', 'enable.auto.commit=true', '-X', 'auto.commit.interval.ms=100', 'kc']);
    assert.equal(g1.code, 0, g1.stderr);
    assert.deepEqual(g1.stdout.trim().split('\n'), all);
    assert.match(g1.stderr, /rebalanced .*assigned: kc \[0\]/);
    const admin = kafkaClient(pw.broker).admin();
    await admin.connect();
    const committed = await admin.fetchOffsets({ groupId: 'kcat-group', topics: ['kc'] });
    await admin.disconnect();
    assert.equal(committed[0]!.partitions[0]!.offset, String(all.length));
    await kcat(['-b', pw.broker, '-P', '-t', 'kc', '-p', '0'], 'after-commit\n');
    const g2 = await kcat(['-b', pw.broker, '-G', 'kcat-group', '-e', 'kc']);
    assert.equal(g2.code, 0, g2.stderr);
    assert.equal(g2.stdout.trim(), 'after-commit');
  });
  test('-G with two librdkafka members: the partitions are shared and every record is read', async () => {
    for (const p of [0, 1]) {
      const r = await kcat(['-b', pw.broker, '-P', '-t', 'kc2', '-p', String(p)], Array.from({ length: 10 }, (_, i) => `p${p}-${i}`).join('\n') + '\n');
      assert.equal(r.code, 0, r.stderr);
    }
    const [a, b] = await Promise.all([0, 1].map(() => kcat(['-b', pw.broker, '-G', 'kcat-pair', '-o', 'beginning', '-e', 'kc2'])));
    for (const r of [a!, b!]) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /rebalanced .*assigned:/);
    }
    const lines = new Set([...a!.stdout.trim().split('\n'), ...b!.stdout.trim().split('\n')].filter((l) => l !== ''));
    for (const p of [0, 1]) for (let i = 0; i < 10; i++) assert.ok(lines.has(`p${p}-${i}`), `p${p}-${i}`);
  });
});
