/**
 * Durability under SIGKILL: a child process (this same file, started with
 * PW_LOG_CRASH_CHILD set) appends to an embedded log as fast as it can and
 * prints every acknowledged append and offset commit on stdout (a pipe:
 * synchronous writes on Linux, so a printed ack was acknowledged first).
 * The test kills it with SIGKILL mid-stream, reopens the log in this
 * process and checks that every acknowledged batch is there, whole, at its
 * offset, and every acknowledged commit is too. Run once per fsync policy:
 * a process kill must lose nothing acknowledged under either.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmbeddedLog } from '../../src/components/log/embedded';
import { buildBatch, batchValues } from '../../src/components/log/batch-builder';
import { checkBatch } from '../../src/components/log/batch';

const CHILD = process.env.PW_LOG_CRASH_CHILD;

if (CHILD !== undefined) {
  void runChild(JSON.parse(CHILD) as { dir: string; fsync: 'always' | 'interval' });
} else {
  const roots: string[] = [];
  after(() => {
    for (const d of roots) fs.rmSync(d, { recursive: true, force: true });
  });

  describe('embedded log survives SIGKILL', () => {
    for (const fsync of ['always', 'interval'] as const) {
      test(`fsync ${fsync}: every acknowledged append and commit is there after a kill`, async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-log-crash-'));
        roots.push(dir);
        const acked = await runAndKill(dir, fsync, 600);
        assert.ok(acked.appends.length >= 600, `the child acknowledged ${acked.appends.length} appends before the kill`);
        const log = EmbeddedLog.open({ dataDir: dir, fsync, segmentBytes: 64 * 1024, retentionCheckMs: 0 });
        try {
          for (const a of acked.appends) {
            const p = log.partition('t', a.partition)!;
            assert.ok(p.highWatermark() > a.offset, `offset ${a.offset} of partition ${a.partition} is below the high watermark ${p.highWatermark()}`);
            const r = await p.read(a.offset, 1);
            const b = r.batches[0]!;
            assert.equal(b.baseOffset, a.offset);
            assert.equal(checkBatch(b.bytes, 0, b.bytes.length), b.bytes.length);
            assert.equal(batchValues(b.bytes)[0]!.toString(), `seq:${a.seq}`);
          }
          // Offsets are dense: nothing acknowledged sits after a hole.
          for (const part of [0, 1]) {
            const p = log.partition('t', part)!;
            let at = p.logStartOffset();
            for (;;) {
              const r = await p.read(at, 1 << 20);
              if (r.batches.length === 0) break;
              for (const b of r.batches) {
                assert.equal(b.baseOffset, at);
                at = b.lastOffset + 1n;
              }
            }
            assert.equal(at, p.highWatermark());
          }
          const lastCommit = acked.commits[acked.commits.length - 1];
          assert.ok(lastCommit !== undefined, 'the child committed offsets');
          assert.ok(log.fetchOffset('g', 't', 0)!.offset >= lastCommit, 'the last acknowledged commit survived');
          // The log goes on where it stopped.
          const hw = log.partition('t', 0)!.highWatermark();
          assert.equal((await log.partition('t', 0)!.append(buildBatch([{ value: Buffer.from('after') }]))).baseOffset, hw);
        } finally {
          await log.close();
        }
      });
    }
  });
}

interface Acked {
  appends: { partition: number; offset: bigint; seq: number }[];
  commits: bigint[];
}

function runAndKill(dir: string, fsync: string, killAfter: number): Promise<Acked> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename], { env: { ...process.env, PW_LOG_CRASH_CHILD: JSON.stringify({ dir, fsync }) }, stdio: ['ignore', 'pipe', 'inherit'] });
    const acked: Acked = { appends: [], commits: [] };
    let rest = '';
    let killed = false;
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the child acknowledged only ${acked.appends.length} appends in 30 s`));
    }, 30_000);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl).split(' ');
        rest = rest.slice(nl + 1);
        if (killed) continue;
        if (line[0] === 'ack') acked.appends.push({ partition: Number(line[1]), offset: BigInt(line[2]!), seq: Number(line[3]) });
        else if (line[0] === 'commit') acked.commits.push(BigInt(line[1]!));
      }
      if (!killed && acked.appends.length >= killAfter) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (signal !== 'SIGKILL') reject(new Error(`the child exited on its own (code ${code})`));
      else resolve(acked);
    });
  });
}

/** The child: appends without end (20 in flight per partition), commits now and then, prints acks. */
async function runChild(opts: { dir: string; fsync: 'always' | 'interval' }): Promise<void> {
  const log = EmbeddedLog.open({ dataDir: opts.dir, topics: { t: 2 }, fsync: opts.fsync, fsyncIntervalMs: 50, segmentBytes: 64 * 1024, retentionCheckMs: 0 });
  const keepAlive = setInterval(() => {}, 1000);
  let seq = 0;
  const worker = async (partition: number) => {
    const p = log.partition('t', partition)!;
    for (;;) {
      const s = seq++;
      const values = Array.from({ length: 1 + (s % 5) }, (_, i) => ({ value: Buffer.from(i === 0 ? `seq:${s}` : 'v'.repeat(100 + ((s * 7) % 300))) }));
      const r = await p.append(buildBatch(values));
      process.stdout.write(`ack ${partition} ${r.baseOffset} ${s}\n`);
      if (s % 50 === 0 && partition === 0) {
        await log.commitOffsets('g', [{ topic: 't', partition: 0, offset: r.baseOffset, metadata: null }]);
        process.stdout.write(`commit ${r.baseOffset}\n`);
      }
    }
  };
  const workers: Promise<void>[] = [];
  for (let i = 0; i < 20; i++) workers.push(worker(i % 2));
  await Promise.all(workers);
  clearInterval(keepAlive);
}
