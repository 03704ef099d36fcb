/**
 * memory_log: offsets, reads within maxBytes, retention, timestamps, long
 * polling, group offsets and topic management. Also the CRC-32C and the
 * batch checks both log components share.
 */
import { describe, test } from 'node:test';
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { MemoryLog } from '../../src/components/log/memory';
import { buildBatch, batchValues } from '../../src/components/log/batch-builder';
import { checkBatch } from '../../src/components/log/batch';
import { crc32c } from '../../src/components/log/crc32c';
import { builtins } from '../../src/builtins';
import { loadConfigText } from '../../src/config/load';
import { ConfigError, type ConfigIssue } from '../../src/config/validate';
import { isProxyError } from '../../src/errors';

const values = (...v: string[]) => v.map((s) => ({ value: Buffer.from(s) }));

/** Keeps the event loop alive while a test awaits something only the unref'd wheel can settle. */
async function alive<T>(p: Promise<T>): Promise<T> {
  const t = setInterval(() => {}, 1000);
  try {
    return await p;
  } finally {
    clearInterval(t);
  }
}

describe('crc32c', () => {
  test('check value and continuation', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(0)), 0);
    assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa);
    const b = Buffer.from('The quick brown fox jumps over the lazy dog, twice: the quick brown fox.');
    for (let k = 0; k <= b.length; k++) assert.equal(crc32c(b, k, b.length, crc32c(b, 0, k)), crc32c(b));
  });

  test('agrees with a bitwise reference at every length and alignment', () => {
    const ref = (buf: Buffer, s: number, e: number) => {
      let c = 0xffffffff;
      for (let i = s; i < e; i++) {
        c ^= buf[i]!;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      }
      return (c ^ 0xffffffff) >>> 0;
    };
    const buf = Buffer.alloc(70);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 131 + 7) & 0xff;
    for (let s = 0; s < 9; s++) for (let e = s; e <= buf.length; e++) assert.equal(crc32c(buf, s, e), ref(buf, s, e));
  });
});

describe('batch checks', () => {
  test('a built batch passes; damage is named', () => {
    const b = buildBatch(values('a', 'bb', 'ccc'));
    assert.equal(checkBatch(b, 0, b.length), b.length);
    assert.deepEqual(batchValues(b).map((v) => v?.toString()), ['a', 'bb', 'ccc']);
    assert.equal(checkBatch(b, 0, b.length - 1), 'short');
    assert.equal(checkBatch(b, 0, 5), 'short');
    const c = Buffer.from(b);
    c[c.length - 1]! ^= 1;
    assert.equal(checkBatch(c, 0, c.length), 'crc');
    const m = Buffer.from(b);
    m[16] = 1;
    assert.equal(checkBatch(m, 0, m.length), 'magic');
    const l = Buffer.from(b);
    l.writeInt32BE(3, 8);
    assert.equal(checkBatch(l, 0, l.length), 'length');
    // baseOffset and partitionLeaderEpoch are outside the CRC.
    const o = Buffer.from(b);
    o.writeBigInt64BE(12345n, 0);
    o.writeInt32BE(7, 12);
    assert.equal(checkBatch(o, 0, o.length), o.length);
  });
});

describe('memory_log', () => {
  test('appends get consecutive offsets written into the stored bytes', async () => {
    const log = new MemoryLog({ topics: { t: 2 } });
    const p = log.partition('t', 0)!;
    assert.equal(log.partition('t', 2), undefined);
    assert.equal(log.partition('nope', 0), undefined);
    const b1 = buildBatch(values('a', 'b', 'c'));
    const r1 = await p.append(b1);
    const r2 = await p.append(buildBatch(values('d')));
    assert.equal(r1.baseOffset, 0n);
    assert.equal(r2.baseOffset, 3n);
    assert.equal(p.highWatermark(), 4n);
    assert.equal(p.logStartOffset(), 0n);
    assert.equal(b1.readBigInt64BE(0), 0n, 'the caller buffer is not kept or changed');
    const r = await p.read(1n, 1 << 20);
    assert.deepEqual(r.batches.map((b) => [b.baseOffset, b.lastOffset]), [[0n, 2n], [3n, 3n]]);
    assert.equal(r.batches[1]!.bytes.readBigInt64BE(0), 3n);
    assert.equal(checkBatch(r.batches[1]!.bytes, 0, r.batches[1]!.bytes.length), r.batches[1]!.bytes.length);
    assert.equal(r.highWatermark, 4n);
    assert.deepEqual((await p.read(4n, 100)).batches, []);
    assert.equal(log.partition('t', 1)!.highWatermark(), 0n);
    log.close();
  });

  test('read returns one whole batch above maxBytes, then whole batches within it', async () => {
    const log = new MemoryLog({ topics: { t: 1 } });
    const p = log.partition('t', 0)!;
    const big = buildBatch(values('x'.repeat(500)));
    for (let i = 0; i < 4; i++) await p.append(big);
    assert.equal((await p.read(0n, 10)).batches.length, 1);
    assert.equal((await p.read(0n, big.length * 2)).batches.length, 2);
    assert.equal((await p.read(0n, big.length * 2 + 1)).batches.length, 2);
    assert.deepEqual((await p.read(2n, 1 << 20)).batches.map((b) => b.baseOffset), [2n, 3n]);
    log.close();
  });

  test('malformed batches are refused with a downstream error', async () => {
    const log = new MemoryLog({ topics: { t: 1 } });
    const p = log.partition('t', 0)!;
    await assert.rejects(p.append(Buffer.alloc(20)), (e: unknown) => isProxyError(e) && e.code === 'PW_ERR_PROTOCOL' && e.source === 'downstream');
    const b = buildBatch(values('a'));
    await assert.rejects(p.append(b.subarray(0, b.length - 1)), /does not match/);
    assert.equal(p.highWatermark(), 0n);
    log.close();
  });

  test('retention by size drops the oldest batches and moves logStartOffset', async () => {
    const log = new MemoryLog({ topics: { t: 1 }, retentionBytes: 1000 });
    const p = log.partition('t', 0)!;
    const b = buildBatch(values('y'.repeat(300)));
    for (let i = 0; i < 10; i++) await p.append(b);
    const start = BigInt(10 - Math.floor(1000 / b.length));
    assert.equal(p.logStartOffset(), start);
    const r = await p.read(0n, 1 << 20);
    assert.equal(r.batches[0]!.baseOffset, start);
    assert.equal(r.logStartOffset, start);
    const alone = new MemoryLog({ topics: { t: 1 }, retentionBytes: 10 });
    await alone.partition('t', 0)!.append(b);
    await alone.partition('t', 0)!.append(b);
    assert.equal(alone.partition('t', 0)!.logStartOffset(), 1n, 'the newest batch stays even above the bound');
    alone.close();
    log.close();
  });

  test('retention by age, on the log clock', async () => {
    let now = 1_000_000;
    const log = new MemoryLog({ topics: { t: 1 }, retentionMs: 1000, now: () => now });
    const p = log.partition('t', 0)!;
    await p.append(buildBatch(values('a', 'b')));
    now += 600;
    await p.append(buildBatch(values('c')));
    now += 600;
    assert.equal(p.logStartOffset(), 2n);
    now += 600;
    assert.equal(p.logStartOffset(), 3n);
    assert.deepEqual((await p.read(0n, 1000)).batches, []);
    const r = await p.append(buildBatch(values('d')));
    assert.equal(r.baseOffset, 3n);
    log.close();
  });

  test('offsetForTimestamp finds the first batch whose max timestamp reaches ts', async () => {
    const log = new MemoryLog({ topics: { t: 1 } });
    const p = log.partition('t', 0)!;
    await p.append(buildBatch([{ value: Buffer.from('a'), timestamp: 100 }, { value: Buffer.from('b'), timestamp: 200 }]));
    await p.append(buildBatch([{ value: Buffer.from('c'), timestamp: 300 }]));
    assert.equal(await p.offsetForTimestamp(50n), 0n);
    assert.equal(await p.offsetForTimestamp(200n), 0n);
    assert.equal(await p.offsetForTimestamp(201n), 2n);
    assert.equal(await p.offsetForTimestamp(301n), null);
    log.close();
  });

  test('waitFor: at once when data is there, wakes on append, times out, ends on close', async () => {
    const log = new MemoryLog({ topics: { t: 1 } });
    const p = log.partition('t', 0)!;
    assert.equal(await p.waitFor(0n, 0), false);
    const woken = p.waitFor(0n, 60_000);
    const notYet = p.waitFor(1n, 60_000);
    await p.append(buildBatch(values('a')));
    assert.equal(await woken, true);
    assert.equal(await p.waitFor(0n, 10), true);
    assert.equal(await alive(p.waitFor(5n, 30)), false);
    log.close();
    assert.equal(await notYet, false);
    assert.equal(await p.waitFor(5n, 1000), false);
  });

  test('a pending waitFor does not keep the process alive', async () => {
    const mod = require.resolve('../../src/components/log/memory');
    const child = spawn(process.execPath, ['-e', `const { MemoryLog } = require(${JSON.stringify(mod)}); const log = new MemoryLog({ topics: { t: 1 } }); log.partition('t', 0).waitFor(0n, 600000).then(() => process.exit(3));`], { stdio: 'inherit' });
    const code = await new Promise<number | null>((resolve) => {
      const guard = setTimeout(() => (child.kill('SIGKILL'), resolve(-1)), 20_000);
      child.on('exit', (c) => (clearTimeout(guard), resolve(c)));
    });
    assert.equal(code, 0, 'the child exited by itself while its wait was pending');
  });

  test('topics: create, exists, invalid names, delete drops partitions and offsets', async () => {
    const log = new MemoryLog();
    assert.deepEqual(await log.createTopic('orders', 3), { name: 'orders', partitions: 3 });
    await assert.rejects(log.createTopic('orders', 1), (e: unknown) => isProxyError(e) && e.code === 'PW_ERR_TOPIC_EXISTS');
    await assert.rejects(log.createTopic('../etc', 1), (e: unknown) => isProxyError(e) && e.code === 'PW_ERR_INVALID_TOPIC');
    await assert.rejects(log.createTopic('..', 1), (e: unknown) => isProxyError(e) && e.code === 'PW_ERR_INVALID_TOPIC');
    await assert.rejects(log.createTopic('x', 0));
    assert.deepEqual(log.topics(), [{ name: 'orders', partitions: 3 }]);
    assert.deepEqual(log.topic('orders'), { name: 'orders', partitions: 3 });
    await log.commitOffsets('g', [{ topic: 'orders', partition: 1, offset: 5n, metadata: null }]);
    const waiting = log.partition('orders', 0)!.waitFor(0n, 60_000);
    assert.equal(await log.deleteTopic('orders'), true);
    assert.equal(await waiting, false);
    assert.equal(await log.deleteTopic('orders'), false);
    assert.equal(log.topic('orders'), undefined);
    assert.equal(log.fetchOffset('g', 'orders', 1), undefined);
    assert.deepEqual(log.groups(), []);
    log.close();
  });

  test('group offsets', async () => {
    const log = new MemoryLog({ topics: { t: 2 } });
    await log.commitOffsets('g1', [
      { topic: 't', partition: 0, offset: 10n, metadata: 'm' },
      { topic: 't', partition: 1, offset: 3n, metadata: null },
    ]);
    await log.commitOffsets('g1', [{ topic: 't', partition: 0, offset: 12n, metadata: null }]);
    await log.commitOffsets('g2', [{ topic: 't', partition: 0, offset: 1n, metadata: null }]);
    assert.equal(log.fetchOffset('g1', 't', 0)!.offset, 12n);
    assert.equal(log.fetchOffset('g1', 't', 1)!.offset, 3n);
    assert.equal(typeof log.fetchOffset('g1', 't', 1)!.commitTimeMs, 'bigint');
    assert.equal(log.fetchOffset('g3', 't', 0), undefined);
    assert.deepEqual(log.groups().sort(), ['g1', 'g2']);
    assert.equal(log.health().ok, true);
    log.close();
    assert.equal(log.health().ok, false);
  });

  test('config: memory_log validates its options', () => {
    const reg = builtins().registries;
    const cfg = (component: string) => `clusters:\n  - name: events\n    component: ${component}\n`;
    const issues = (text: string): ConfigIssue[] => {
      try {
        loadConfigText(text, reg);
      } catch (e) {
        if (e instanceof ConfigError) return e.issues;
        throw e;
      }
      return [];
    };
    assert.deepEqual(issues(cfg('{ type: memory_log }')), []);
    assert.deepEqual(issues(cfg('{ type: memory_log, topics: { orders: 3 }, retention: 1h, retention_bytes: 1000000 }')), []);
    assert.ok(issues(cfg('{ type: memory_log, topics: { orders: 0 } }')).length > 0);
    assert.ok(issues(cfg("{ type: memory_log, topics: { 'a/b': 1 } }")).length > 0);
    assert.ok(issues(cfg('{ type: memory_log, retention: forever }')).some((i) => i.path.includes('retention')));
    assert.ok(issues(cfg('{ type: memory_log, data_dir: /tmp }')).length > 0);
  });
});
