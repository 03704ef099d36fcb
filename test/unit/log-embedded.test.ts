/**
 * The embedded log on a temporary directory: segments, indexes, recovery
 * from torn and corrupt tails, retention, fsync policies, group offsets,
 * long polling, the data_dir lock and config validation.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmbeddedLog, type EmbeddedLogOptions } from '../../src/components/log/embedded';
import { buildBatch, batchValues } from '../../src/components/log/batch-builder';
import { checkBatch } from '../../src/components/log/batch';
import { GROUP_OFFSETS_FILE } from '../../src/components/log/group-offsets';
import { MetricsRegistry } from '../../src/metrics';
import { builtins } from '../../src/builtins';
import { loadConfigText } from '../../src/config/load';
import { ConfigError, type ConfigIssue } from '../../src/config/validate';
import { isProxyError } from '../../src/errors';

const roots: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-log-'));
  roots.push(d);
  return d;
}
after(() => {
  for (const d of roots) fs.rmSync(d, { recursive: true, force: true });
});

function open(dir: string, o: Partial<EmbeddedLogOptions> = {}, metrics?: MetricsRegistry): EmbeddedLog {
  return EmbeddedLog.open({ dataDir: dir, topics: { t: 1 }, retentionCheckMs: 0, ...o }, { metrics, cluster: 'c' });
}

/** A batch of `n` records whose values say where they belong: "<tag>:<i>". */
function batch(tag: string, n = 1, pad = 0, timestamp?: number): Buffer {
  return buildBatch(
    Array.from({ length: n }, (_, i) => ({ value: Buffer.from(`${tag}:${i}` + '~'.repeat(pad)) })),
    timestamp === undefined ? {} : { timestamp },
  );
}

async function readAll(log: EmbeddedLog, topic = 't', p = 0, from = 0n): Promise<{ offsets: bigint[]; values: string[] }> {
  const part = log.partition(topic, p)!;
  const offsets: bigint[] = [];
  const values: string[] = [];
  let at = from;
  for (;;) {
    const r = await part.read(at, 3000);
    if (r.batches.length === 0) break;
    for (const b of r.batches) {
      assert.equal(checkBatch(b.bytes, 0, b.bytes.length), b.bytes.length, 'every batch read back is whole and its CRC holds');
      assert.equal(b.bytes.readBigInt64BE(0), b.baseOffset);
      batchValues(b.bytes).forEach((v, i) => {
        const o = b.baseOffset + BigInt(i);
        if (o >= at) {
          offsets.push(o);
          values.push(v!.toString().split('~')[0]!);
        }
      });
      at = b.lastOffset + 1n;
    }
  }
  return { offsets, values };
}

function segmentFiles(dir: string, tp = 't-0'): string[] {
  return fs.readdirSync(path.join(dir, tp)).filter((f) => f.endsWith('.log')).sort();
}

function lastSegment(dir: string, tp = 't-0'): string {
  const s = segmentFiles(dir, tp);
  return path.join(dir, tp, s[s.length - 1]!);
}

async function alive<T>(p: Promise<T>): Promise<T> {
  const t = setInterval(() => {}, 1000);
  try {
    return await p;
  } finally {
    clearInterval(t);
  }
}

describe('embedded log', () => {
  test('appends across segments read back in order, with reads bounded by maxBytes', async () => {
    const dir = tmpDir();
    const log = open(dir, { segmentBytes: 4096, indexIntervalBytes: 256 });
    const p = log.partition('t', 0)!;
    let expect = 0n;
    for (let i = 0; i < 60; i++) {
      const r = await p.append(batch(`b${i}`, 3, 100));
      assert.equal(r.baseOffset, expect);
      expect += 3n;
    }
    assert.equal(p.highWatermark(), 180n);
    assert.ok(segmentFiles(dir).length > 3, 'rolled into several segments');
    const all = await readAll(log);
    assert.deepEqual(all.offsets, Array.from({ length: 180 }, (_, i) => BigInt(i)));
    assert.equal(all.values[0], 'b0:0');
    assert.equal(all.values[179], 'b59:2');
    // A read from the middle of a batch starts at that batch.
    const mid = await p.read(31n, 1);
    assert.equal(mid.batches.length, 1, 'one whole batch even above maxBytes');
    assert.equal(mid.batches[0]!.baseOffset, 30n);
    const many = await p.read(0n, 1 << 20);
    assert.equal(many.batches.length, 60, 'a large maxBytes reads across segments');
    assert.deepEqual((await p.read(180n, 1000)).batches, []);
    // Closed segments have their index file.
    const idx = fs.readdirSync(path.join(dir, 't-0')).filter((f) => f.endsWith('.index'));
    assert.ok(idx.length >= segmentFiles(dir).length - 1);
    await log.close();
  });

  test('concurrent appends are grouped, keep their order per partition and get distinct offsets', async () => {
    const dir = tmpDir();
    const metrics = new MetricsRegistry();
    const log = open(dir, { topics: { t: 2 }, fsync: 'always', segmentBytes: 8192 }, metrics);
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => log.partition('t', i % 2)!.append(batch(`c${i}`, 2, 30))));
    for (let i = 0; i < 200; i++) assert.equal(results[i]!.baseOffset, BigInt(Math.floor(i / 2) * 2));
    const p0 = await readAll(log, 't', 0);
    assert.deepEqual(
      p0.values.filter((_, i) => i % 2 === 0),
      Array.from({ length: 100 }, (_, i) => `c${i * 2}:0`),
    );
    const text = metrics.render();
    const fsyncs = Number(/portway_log_fsync_seconds_count\{cluster="c"\} (\d+)/.exec(text)![1]);
    assert.ok(fsyncs > 0 && fsyncs < 200, `group commit shares fsyncs (${fsyncs} for 200 appends)`);
    assert.match(text, /portway_log_appended_records_total\{cluster="c"\} 400/);
    assert.match(text, /portway_log_high_watermark\{cluster="c",partition="1",topic="t"\} 200/);
    await log.close();
  });

  test('a restart recovers every batch, the high watermark and the indexes', async () => {
    const dir = tmpDir();
    let log = open(dir, { segmentBytes: 4096, indexIntervalBytes: 200 });
    for (let i = 0; i < 40; i++) await log.partition('t', 0)!.append(batch(`r${i}`, 2, 80));
    const before = await readAll(log);
    await log.close();
    log = open(dir, { segmentBytes: 4096, indexIntervalBytes: 200 });
    assert.equal(log.partition('t', 0)!.highWatermark(), 80n);
    assert.deepEqual(await readAll(log), before);
    await log.close();
    // Missing and garbage index files are rebuilt.
    const idx = fs.readdirSync(path.join(dir, 't-0')).filter((f) => f.endsWith('.index')).sort();
    fs.rmSync(path.join(dir, 't-0', idx[0]!));
    fs.writeFileSync(path.join(dir, 't-0', idx[1]!), Buffer.alloc(37, 0xab));
    log = open(dir, { segmentBytes: 4096, indexIntervalBytes: 200 });
    assert.deepEqual(await readAll(log), before);
    assert.ok(fs.existsSync(path.join(dir, 't-0', idx[0]!)), 'rebuilt index written');
    assert.equal((await log.partition('t', 0)!.append(batch('after'))).baseOffset, 80n);
    await log.close();
  });

  test('a torn tail (garbage, or half a batch) is cut off on open', async () => {
    const dir = tmpDir();
    let log = open(dir);
    for (let i = 0; i < 5; i++) await log.partition('t', 0)!.append(batch(`t${i}`, 2));
    await log.close();
    const file = lastSegment(dir);
    const good = fs.statSync(file).size;
    fs.appendFileSync(file, Buffer.from('garbage that is not a batch'));
    const metrics = new MetricsRegistry();
    log = open(dir, {}, metrics);
    assert.equal(log.partition('t', 0)!.highWatermark(), 10n);
    assert.equal(fs.statSync(file).size, good);
    assert.match(metrics.render(), /portway_log_recovery_truncated_bytes_total\{cluster="c"\} 27/);
    await log.close();
    const half = batch('half', 4);
    fs.appendFileSync(file, half.subarray(0, 40));
    log = open(dir);
    assert.equal(log.partition('t', 0)!.highWatermark(), 10n);
    assert.equal(fs.statSync(file).size, good);
    // Appends go on from the cut.
    assert.equal((await log.partition('t', 0)!.append(batch('next'))).baseOffset, 10n);
    assert.deepEqual((await readAll(log)).values.slice(-1), ['next:0']);
    await log.close();
  });

  test('a corrupt CRC in the tail truncates from that batch on', async () => {
    const dir = tmpDir();
    let log = open(dir);
    const sizes: number[] = [];
    for (let i = 0; i < 6; i++) {
      const b = batch(`k${i}`, 3, 10);
      sizes.push(b.length);
      await log.partition('t', 0)!.append(b);
    }
    await log.close();
    const file = lastSegment(dir);
    const buf = fs.readFileSync(file);
    const fourth = sizes[0]! + sizes[1]! + sizes[2]! + sizes[3]!;
    buf[fourth + 70]! ^= 0xff; // inside the 5th batch's records
    fs.writeFileSync(file, buf);
    log = open(dir);
    assert.equal(log.partition('t', 0)!.highWatermark(), 12n);
    assert.equal(fs.statSync(file).size, fourth);
    assert.deepEqual((await readAll(log)).values.slice(-3), ['k3:0', 'k3:1', 'k3:2']);
    await log.close();
  });

  test('a batch whose offset breaks the sequence ends recovery there', async () => {
    const dir = tmpDir();
    let log = open(dir);
    for (let i = 0; i < 3; i++) await log.partition('t', 0)!.append(batch(`s${i}`));
    await log.close();
    const file = lastSegment(dir);
    const stray = batch('stray');
    stray.writeBigInt64BE(99n, 0);
    fs.appendFileSync(file, stray);
    log = open(dir);
    assert.equal(log.partition('t', 0)!.highWatermark(), 3n);
    await log.close();
  });

  test('retention by size deletes whole old segments and moves logStartOffset', async () => {
    const dir = tmpDir();
    const log = open(dir, { segmentBytes: 2048, retentionBytes: 4096 });
    const p = log.partition('t', 0)!;
    for (let i = 0; i < 40; i++) await p.append(batch(`z${i}`, 1, 200));
    await log.enforceRetention();
    const start = p.logStartOffset();
    assert.ok(start > 0n);
    assert.ok(p.size() >= 4096 - 2048 && p.size() < 4096 + 2048, `size ${p.size()} near the bound`);
    assert.equal(BigInt(segmentFiles(dir)[0]!.slice(0, 20)), start);
    const r = await p.read(0n, 1000);
    assert.equal(r.batches[0]!.baseOffset, start, 'a read below the start begins at the start');
    assert.equal(r.logStartOffset, start);
    await log.close();
    const again = open(dir, { segmentBytes: 2048, retentionBytes: 4096 });
    assert.equal(again.partition('t', 0)!.logStartOffset(), start);
    await again.close();
  });

  test('retention by age deletes old segments, rolling the active one when it is old too', async () => {
    const dir = tmpDir();
    const log = open(dir, { segmentBytes: 2048, retentionMs: 60_000 });
    const p = log.partition('t', 0)!;
    for (let i = 0; i < 20; i++) await p.append(batch(`a${i}`, 1, 200));
    assert.equal(await log.enforceRetention(Date.now()), 0, 'nothing old yet');
    assert.ok((await log.enforceRetention(Date.now() + 120_000)) > 0);
    assert.equal(p.logStartOffset(), 20n);
    assert.equal(p.highWatermark(), 20n);
    assert.deepEqual((await p.read(0n, 1000)).batches, []);
    assert.equal((await p.append(batch('new'))).baseOffset, 20n);
    assert.deepEqual((await readAll(log)).values, ['new:0']);
    await log.close();
  });

  test("fsync 'interval' acknowledges after the write and syncs on the timer", async () => {
    const dir = tmpDir();
    const metrics = new MetricsRegistry();
    const log = open(dir, { fsync: 'interval', fsyncIntervalMs: 20 }, metrics);
    await log.partition('t', 0)!.append(batch('i'));
    const count = () => Number(/portway_log_fsync_seconds_count\{cluster="c"\} (\d+)/.exec(metrics.render())?.[1] ?? 0);
    assert.equal(count(), 0, 'no fsync on the append path');
    // The timer syncs on its own; wait for it (bounded), whatever the machine's load.
    await alive(
      (async () => {
        for (let i = 0; i < 500 && count() === 0; i++) await new Promise((r) => setTimeout(r, 20));
      })(),
    );
    assert.ok(count() >= 1, 'the interval synced');
    await log.close();
  });

  test('offsetForTimestamp across segments, before and after a restart', async () => {
    const dir = tmpDir();
    let log = open(dir, { segmentBytes: 1024, indexIntervalBytes: 128 });
    for (let i = 0; i < 30; i++) await log.partition('t', 0)!.append(batch(`ts${i}`, 2, 50, 1000 + i * 10));
    const check = async (l: EmbeddedLog) => {
      const p = l.partition('t', 0)!;
      assert.equal(await p.offsetForTimestamp(0n), 0n);
      assert.equal(await p.offsetForTimestamp(1000n), 0n);
      assert.equal(await p.offsetForTimestamp(1001n), 2n);
      assert.equal(await p.offsetForTimestamp(1150n), 30n);
      assert.equal(await p.offsetForTimestamp(1290n), 58n);
      assert.equal(await p.offsetForTimestamp(1291n), null);
    };
    await check(log);
    await log.close();
    log = open(dir, { segmentBytes: 1024, indexIntervalBytes: 128 });
    await check(log);
    await log.close();
  });

  test('group offsets survive a restart; a torn line is skipped; deleting a topic drops them', async () => {
    const dir = tmpDir();
    let log = open(dir, { topics: { t: 2, u: 1 }, fsync: 'always' });
    await log.commitOffsets('g1', [
      { topic: 't', partition: 0, offset: 10n, metadata: 'meta' },
      { topic: 't', partition: 1, offset: 20n, metadata: null },
    ]);
    await log.commitOffsets('g1', [{ topic: 't', partition: 0, offset: 11n, metadata: null }]);
    await log.commitOffsets('g2', [{ topic: 'u', partition: 0, offset: 5n, metadata: null }]);
    await log.close();
    fs.appendFileSync(path.join(dir, GROUP_OFFSETS_FILE), '0badc0de {"g":"g1","t":"t","p":0,"o":"999"');
    log = open(dir, { topics: { t: 2, u: 1 } });
    assert.equal(log.fetchOffset('g1', 't', 0)!.offset, 11n);
    assert.equal(log.fetchOffset('g1', 't', 0)!.metadata, null);
    assert.equal(log.fetchOffset('g1', 't', 1)!.offset, 20n);
    assert.equal(log.fetchOffset('g2', 'u', 0)!.offset, 5n);
    assert.deepEqual(log.groups().sort(), ['g1', 'g2']);
    assert.equal(await log.deleteTopic('u'), true);
    assert.equal(log.fetchOffset('g2', 'u', 0), undefined);
    await log.close();
    log = open(dir, { topics: { t: 2 } });
    assert.equal(log.topic('u'), undefined);
    assert.equal(fs.existsSync(path.join(dir, 'u-0')), false);
    assert.equal(log.fetchOffset('g2', 'u', 0), undefined);
    assert.deepEqual(log.groups(), ['g1']);
    const lines = fs.readFileSync(path.join(dir, GROUP_OFFSETS_FILE), 'utf8').trim().split('\n');
    assert.equal(lines.length, 2, 'compacted on open: one line per live offset');
    await log.close();
  });

  test('waitFor wakes on append and times out', async () => {
    const dir = tmpDir();
    const log = open(dir);
    const p = log.partition('t', 0)!;
    const woken = p.waitFor(0n, 60_000);
    const timedOut = alive(p.waitFor(1n, 30));
    await p.append(batch('w'));
    assert.equal(await woken, true);
    assert.equal(await timedOut, false);
    const pending = p.waitFor(1n, 60_000);
    await log.close();
    assert.equal(await pending, false, 'close ends pending waits');
  });

  test('topics: created topics persist, names are checked, config adds partitions', async () => {
    const dir = tmpDir();
    let log = open(dir, { topics: {} });
    assert.deepEqual(await log.createTopic('orders.v1', 3), { name: 'orders.v1', partitions: 3 });
    await assert.rejects(log.createTopic('orders.v1', 3), (e: unknown) => isProxyError(e) && e.code === 'PW_ERR_TOPIC_EXISTS');
    await assert.rejects(log.createTopic('../x', 1), (e: unknown) => isProxyError(e) && e.code === 'PW_ERR_INVALID_TOPIC');
    await log.partition('orders.v1', 2)!.append(batch('o'));
    await log.close();
    log = open(dir, { topics: { 'orders.v1': 5 } });
    assert.deepEqual(log.topic('orders.v1'), { name: 'orders.v1', partitions: 5 });
    assert.equal(log.partition('orders.v1', 2)!.highWatermark(), 1n);
    assert.equal(log.partition('orders.v1', 4)!.highWatermark(), 0n);
    assert.equal(log.health().ok, true);
    await log.close();
  });

  test('malformed appends are refused and the partition stays usable', async () => {
    const dir = tmpDir();
    const log = open(dir, { maxBatchBytes: 2048 });
    const p = log.partition('t', 0)!;
    await assert.rejects(p.append(Buffer.alloc(10)), (e: unknown) => isProxyError(e) && e.code === 'PW_ERR_PROTOCOL');
    await assert.rejects(p.append(batch('big', 1, 3000)), /max_batch_bytes/);
    assert.equal((await p.append(batch('ok'))).baseOffset, 0n);
    await log.close();
    await assert.rejects(p.append(batch('late')), (e: unknown) => isProxyError(e) && e.code === 'PW_ERR_STORAGE');
  });

  test('one user of a data_dir at a time; the same process shares the open log', async () => {
    const dir = tmpDir();
    const a = open(dir);
    const b = open(dir, { topics: { t: 1, extra: 2 } });
    assert.equal(a, b, 'a reload shares the open log');
    assert.deepEqual(a.topic('extra'), { name: 'extra', partitions: 2 });
    await b.close();
    await a.partition('t', 0)!.append(batch('still open'));
    await a.close();
    assert.equal(fs.existsSync(path.join(dir, '.lock')), false);
    // A lock held by another live process refuses the open.
    fs.writeFileSync(path.join(dir, '.lock'), String(process.ppid));
    assert.throws(() => open(dir), /in use by process/);
    // A stale lock (dead pid) is taken over.
    fs.writeFileSync(path.join(dir, '.lock'), '999999999');
    const c = open(dir);
    assert.equal(c.partition('t', 0)!.highWatermark(), 1n);
    await c.close();
  });

  test('reads racing retention return contiguous batches from the new start', async () => {
    const dir = tmpDir();
    const log = open(dir, { segmentBytes: 1024, retentionBytes: 2048 });
    const p = log.partition('t', 0)!;
    for (let i = 0; i < 60; i++) await p.append(batch(`q${i}`, 1, 150));
    const reads = Array.from({ length: 20 }, (_, i) => p.read(BigInt(i), 1 << 16));
    const [deleted] = await Promise.all([log.enforceRetention(), ...reads]);
    assert.ok(deleted > 0);
    for (const r of await Promise.all(reads)) {
      assert.ok(r.batches.length > 0);
      for (let i = 1; i < r.batches.length; i++) assert.equal(r.batches[i]!.baseOffset, r.batches[i - 1]!.lastOffset + 1n);
      const next = r.batches[r.batches.length - 1]!.lastOffset + 1n;
      // Either the read reached the end, or it stopped where retention cut the log (the next fetch is out of range).
      assert.ok(next === 60n || next < p.logStartOffset(), `read ended at ${next}, log start ${p.logStartOffset()}`);
    }
    const after = await p.read(0n, 1 << 16);
    assert.equal(after.batches[0]!.baseOffset, p.logStartOffset());
    await log.close();
  });

  test('a topic deleted and created again starts empty', async () => {
    const dir = tmpDir();
    const log = open(dir, { topics: { t: 1 } });
    await log.partition('t', 0)!.append(batch('old', 3));
    const del = log.deleteTopic('t');
    const created = log.createTopic('t', 2);
    assert.equal(await del, true);
    assert.deepEqual(await created, { name: 't', partitions: 2 });
    assert.equal(log.partition('t', 0)!.highWatermark(), 0n);
    assert.deepEqual(fs.readdirSync(dir).filter((d) => d.startsWith('t-')).sort(), ['t-0', 't-1']);
    await log.close();
  });

  test('config: embedded validates its options', () => {
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
    assert.deepEqual(issues(cfg('{ type: embedded, data_dir: /tmp/x }')), []);
    assert.deepEqual(issues(cfg('{ type: embedded, data_dir: /tmp/x, fsync: always, segment_bytes: 1048576, retention: 7d }')).length > 0, true, '7d is not a duration unit');
    assert.deepEqual(issues(cfg('{ type: embedded, data_dir: /tmp/x, fsync: interval, fsync_interval: 50ms, retention: 168h, retention_bytes: 1000000000, topics: { a: 1 } }')), []);
    assert.ok(issues(cfg('{ type: embedded }')).some((i) => /data_dir/.test(i.path + i.message)));
    assert.ok(issues(cfg('{ type: embedded, data_dir: /tmp/x, fsync: sometimes }')).some((i) => i.path.includes('fsync')));
    assert.ok(issues(cfg('{ type: embedded, data_dir: /tmp/x, fsync: always, fsync_interval: 10ms }')).some((i) => i.path.includes('fsync_interval')));
    assert.ok(issues(cfg('{ type: embedded, data_dir: /tmp/x, segment_bytes: 10 }')).some((i) => i.path.includes('segment_bytes')));
  });
});
