/**
 * Log micro-benchmark: appends of record batches (100 records of 1 KiB
 * each, about 103 KB a batch) to one partition of the embedded log, with
 * fsync 'always' and 'interval', 8 appends in flight (as a broker with
 * several producers has).
 *
 * Baseline, measured in the same run on the same disk: a plain file
 * append of the same batches with the same policy, written the obvious way
 * (one positional write per batch; 'always': fdatasync after each write,
 * one at a time; 'interval': fdatasync every 100 ms). Ratio = embedded /
 * baseline. memory_log is printed as the CPU-only ceiling of the log
 * interface (no disk).
 *
 *   node dist/bench/log.js [--seconds 3] [--quick] [--dir DIR] [--json FILE]
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmbeddedLog } from '../src/components/log/embedded';
import { MemoryLog } from '../src/components/log/memory';
import { buildBatch } from '../src/components/log/batch-builder';
import type { PartitionLog } from '../src/components/log-component';
import { fmt, machineLine, parseBenchArgs, ratio, runAsMain, say, table } from './lib';

const RECORDS = 100;
const VALUE_BYTES = 1024;
const IN_FLIGHT = 8;

interface Figure {
  appendsPerSec: number;
  recordsPerSec: number;
  mbPerSec: number;
  error?: string;
}

interface Result {
  machine: string;
  batchBytes: number;
  seconds: number;
  paths: Partial<Record<string, Figure>>;
}

const HELP = `Usage: node dist/bench/log.js [--seconds N] [--quick] [--dir DIR] [--json FILE]
  --seconds N  length of each phase (default 3; --quick: 1)
  --dir DIR    where the files go (default: a new directory under the OS temp dir; must be a real disk for fsync figures)
`;

function figure(appends: number, bytes: number, ms: number): Figure {
  const s = ms / 1000;
  return { appendsPerSec: appends / s, recordsPerSec: (appends * RECORDS) / s, mbPerSec: bytes / s / 1e6 };
}

/** Appends `batch` with IN_FLIGHT loops for `seconds`. */
async function drive(p: PartitionLog, batch: Buffer, seconds: number): Promise<Figure> {
  let appends = 0;
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  const loop = async () => {
    while (performance.now() < until) {
      await p.append(batch);
      appends++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, loop));
  return figure(appends, appends * batch.length, performance.now() - t0);
}

async function rawFile(file: string, batch: Buffer, seconds: number, fsync: 'always' | 'interval'): Promise<Figure> {
  const fh = await fsp.open(file, 'w');
  let pos = 0;
  let appends = 0;
  let syncing: Promise<void> | null = null;
  const timer =
    fsync === 'interval'
      ? setInterval(() => {
          if (syncing === null) syncing = fh.datasync().finally(() => (syncing = null));
        }, 100)
      : null;
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  try {
    while (performance.now() < until) {
      await fh.write(batch, 0, batch.length, pos);
      pos += batch.length;
      if (fsync === 'always') await fh.datasync();
      appends++;
    }
    return figure(appends, pos, performance.now() - t0);
  } finally {
    if (timer !== null) clearInterval(timer);
    await syncing;
    await fh.close();
  }
}

async function run(opts: { seconds: number; dir: string | null }): Promise<Result> {
  const root = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'pw-bench-log-'));
  fs.mkdirSync(root, { recursive: true });
  const batch = buildBatch(Array.from({ length: RECORDS }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.alloc(VALUE_BYTES, 97 + (i % 26)) })));
  const result: Result = { machine: machineLine(), batchBytes: batch.length, seconds: opts.seconds, paths: {} };
  const attempt = async (name: string, f: () => Promise<Figure>) => {
    say(`bench log: ${name}`);
    try {
      result.paths[name] = await f();
    } catch (e) {
      result.paths[name] = { appendsPerSec: NaN, recordsPerSec: NaN, mbPerSec: NaN, error: (e as Error).message };
    }
  };
  try {
    for (const fsync of ['always', 'interval'] as const) {
      await attempt(`raw-${fsync}`, () => rawFile(path.join(root, `raw-${fsync}.bin`), batch, opts.seconds, fsync));
      await attempt(`embedded-${fsync}`, async () => {
        const dir = path.join(root, `embedded-${fsync}`);
        const log = EmbeddedLog.open({ dataDir: dir, topics: { bench: 1 }, fsync, fsyncIntervalMs: 100, retentionCheckMs: 0 });
        try {
          return await drive(log.partition('bench', 0)!, batch, opts.seconds);
        } finally {
          await log.close();
        }
      });
    }
    await attempt('memory_log', async () => {
      const log = new MemoryLog({ topics: { bench: 1 }, retentionBytes: 256 * 1024 * 1024 });
      try {
        return await drive(log.partition('bench', 0)!, batch, opts.seconds);
      } finally {
        log.close();
      }
    });
  } finally {
    if (opts.dir === null) fs.rmSync(root, { recursive: true, force: true });
  }
  return result;
}

function report(r: Result): string {
  const p = r.paths;
  const rows: string[][] = [];
  for (const fsync of ['always', 'interval'] as const) {
    const e = p[`embedded-${fsync}`];
    const b = p[`raw-${fsync}`];
    const cell = (f: Figure | undefined, k: keyof Figure) => (f?.error ? 'error' : fmt((f?.[k] as number) ?? NaN));
    rows.push([`fsync ${fsync}: embedded`, cell(e, 'appendsPerSec'), cell(e, 'recordsPerSec'), cell(e, 'mbPerSec'), '']);
    rows.push([`fsync ${fsync}: raw file (baseline)`, cell(b, 'appendsPerSec'), cell(b, 'recordsPerSec'), cell(b, 'mbPerSec'), '']);
    rows.push([`fsync ${fsync}: embedded / baseline`, '', '', '', ratio(e?.mbPerSec ?? NaN, b?.mbPerSec ?? NaN)]);
  }
  const m = p['memory_log'];
  rows.push(['memory_log (no disk)', fmt(m?.appendsPerSec ?? NaN), fmt(m?.recordsPerSec ?? NaN), fmt(m?.mbPerSec ?? NaN), '']);
  const errors = Object.entries(p)
    .filter(([, f]) => f?.error)
    .map(([n, f]) => `${n}: ${f!.error}`);
  return [
    `Log appends: batches of ${RECORDS} x ${VALUE_BYTES} B records (${r.batchBytes} B), ${IN_FLIGHT} in flight on one partition, ${r.seconds} s per phase`,
    r.machine,
    '',
    table(['path', 'appends/s', 'records/s', 'MB/s', 'ratio'], rows),
    ...(errors.length ? ['', ...errors] : []),
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseBenchArgs(argv, { seconds: { type: 'string' }, dir: { type: 'string' } }, HELP);
  if (parsed === null) return 0;
  const seconds = Number(parsed.values.seconds ?? (parsed.quick ? 1 : 3));
  if (!(seconds > 0)) throw new Error('--seconds must be a positive number');
  const r = await run({ seconds, dir: parsed.values.dir ?? null });
  process.stdout.write(report(r) + '\n');
  if (parsed.values.json) fs.writeFileSync(parsed.values.json, JSON.stringify(r, null, 2) + '\n');
  return Object.values(r.paths).some((f) => f?.error) ? 1 : 0;
}

runAsMain(main);
