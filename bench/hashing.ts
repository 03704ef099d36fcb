/**
 * Shard picking micro-benchmark: keys per second through createShardPicker()
 * (hash tag + hash + ketama/modula lookup) for every twemproxy hash, keys
 * hashed in place inside one large buffer as the Redis proxy does.
 *
 * Baseline, measured in the same run: a loop that only reads every byte of
 * the same keys once (summing them): the floor any hash has to pay. Ratio =
 * picker time / baseline time per key (1.0 would mean hashing and the ring
 * lookup cost no more than touching the bytes). For md5 a second line
 * compares the allocation-free md5 with node:crypto's createHash('md5') per
 * key, the obvious alternative.
 *
 *   node dist/bench/hashing.js [--seconds 1] [--quick] [--json FILE]
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { HASH_NAMES, md5 } from '../src/routing/hashing';
import { createShardPicker, type DistributionName } from '../src/routing/ketama';

const argv = process.argv.slice(2);
const arg = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const QUICK = argv.includes('--quick') || process.env.BENCH_QUICK === '1';
const SECONDS = Number(arg('--seconds') ?? (QUICK ? 0.2 : 1));
const JSON_FILE = arg('--json');

const N = 100_000;

/** N keys of 8..40 bytes ("user:{<id>}:<random>"), back to back in one buffer; offsets[i]..offsets[i+1]. */
function makeKeys(): { buf: Buffer; offsets: Uint32Array } {
  const parts: Buffer[] = [];
  const offsets = new Uint32Array(N + 1);
  let at = 0;
  let seed = 12345;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < N; i++) {
    const k = Buffer.from(`user:{${Math.floor(rand() * 1e6)}}:${'x'.repeat(Math.floor(rand() * 24))}`);
    parts.push(k);
    offsets[i] = at;
    at += k.length;
  }
  offsets[N] = at;
  return { buf: Buffer.concat(parts), offsets };
}

/** Best time of one pass over all keys, repeated for SECONDS after a warm-up long enough for the optimizing JIT; ns per key. */
function measure(pass: () => number): number {
  const warm = performance.now() + Math.max(150, SECONDS * 250);
  do pass();
  while (performance.now() < warm);
  let best = Infinity;
  const until = performance.now() + SECONDS * 1000;
  let sink = 0;
  do {
    const t0 = performance.now();
    sink += pass();
    best = Math.min(best, performance.now() - t0);
  } while (performance.now() < until);
  if (sink === -1) console.log('');
  return (best * 1e6) / N;
}

function main(): void {
  const { buf, offsets } = makeKeys();
  const servers = Array.from({ length: 8 }, (_, i) => ({ name: `10.0.0.${i + 1}:6379`, weight: 1 + (i % 3) }));
  console.log(`node ${process.version}; ${N} keys of 8..40 B in one buffer, 8 servers; best pass of ${SECONDS}s per line\n`);

  const baseline = measure(() => {
    let s = 0;
    for (let i = 0; i < N; i++) for (let p = offsets[i]!; p < offsets[i + 1]!; p++) s += buf[p]!;
    return s;
  });

  const rows: Array<{ name: string; ns: number; baseline: number }> = [];
  const line = (name: string, ns: number, base: number, baseName: string) => {
    rows.push({ name, ns, baseline: base });
    console.log(
      `${name.padEnd(34)} ${(1e3 / ns).toFixed(1).padStart(7)} M keys/s ${ns.toFixed(1).padStart(7)} ns/key` +
        `   ${baseName} ${base.toFixed(1).padStart(6)} ns/key   ratio ${(ns / base).toFixed(2)}`,
    );
  };

  for (const dist of ['ketama', 'modula'] as DistributionName[]) {
    for (const hash of HASH_NAMES) {
      if (dist === 'modula' && hash !== 'fnv1a_64' && hash !== 'md5') continue;
      const picker = createShardPicker({ hash, distribution: dist, hashTag: hash === 'crc16' ? '{}' : null }, servers);
      const ns = measure(() => {
        let s = 0;
        for (let i = 0; i < N; i++) s += picker.pick(buf, offsets[i]!, offsets[i + 1]!);
        return s;
      });
      line(`${dist} ${hash}${hash === 'crc16' ? ' (tag {})' : ''}`, ns, baseline, 'byte scan');
    }
  }

  console.log('');
  const crypto = measure(() => {
    let s = 0;
    for (let i = 0; i < N; i++) s += createHash('md5').update(buf.subarray(offsets[i]!, offsets[i + 1]!)).digest().readUInt32LE(0);
    return s;
  });
  const ours = measure(() => {
    let s = 0;
    for (let i = 0; i < N; i++) s += md5(buf, offsets[i]!, offsets[i + 1]!);
    return s;
  });
  line('md5 hash only', ours, crypto, 'node:crypto');

  if (JSON_FILE) writeFileSync(JSON_FILE, JSON.stringify({ keys: N, baseline_byte_scan_ns: baseline, node_crypto_md5_ns: crypto, rows }, null, 2) + '\n');
}

main();
