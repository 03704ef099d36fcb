/**
 * Runs every benchmark in bench/ in sequence, each in its own process (a
 * benchmark owns the machine while it runs, and a crash in one does not stop
 * the others). Arguments are passed on to each; `--json FILE` collects every
 * benchmark's JSON result under its name.
 *
 * Every .ts file in bench/ but lib and this runner is a benchmark (redis,
 * tcp, and the redis-codec and hashing micro-benchmarks), run in name order;
 * a new one is picked up without editing this file.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Children, REPO } from './lib';

/** Not benchmarks: the helpers and this runner. */
const NOT_BENCHMARKS = new Set(['lib', 'run-all']);

/** Benchmark names, from the sources when present (dist/ may hold stale files of deleted ones). */
function benchmarks(): string[] {
  const src = join(REPO, 'bench');
  const dir = existsSync(src) ? src : __dirname;
  const ext = dir === src ? '.ts' : '.js';
  return readdirSync(dir)
    .filter((f) => f.endsWith(ext) && !f.endsWith('.d.ts'))
    .map((f) => basename(f, ext))
    .filter((n) => !NOT_BENCHMARKS.has(n) && existsSync(join(__dirname, `${n}.js`)))
    .sort();
}

async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  let jsonFile: string | null = null;
  const j = args.indexOf('--json');
  if (j >= 0) {
    jsonFile = args[j + 1] ?? null;
    if (!jsonFile) {
      process.stderr.write('run-all: --json needs a file name\n');
      return 2;
    }
    args.splice(j, 2);
  }
  const names = benchmarks();
  if (names.length === 0) {
    process.stderr.write(`run-all: no benchmark found next to ${__filename}\n`);
    return 1;
  }
  const children = new Children();
  const results: Record<string, unknown> = {};
  const failed: string[] = [];
  for (const name of names) {
    process.stdout.write(`\n=== bench/${name} ===\n`);
    const tmp = join(tmpdir(), `portway-bench-${process.pid}-${name}.json`);
    const child = children.spawn(name, process.execPath, [join(__dirname, `${name}.js`), ...args, ...(jsonFile ? ['--json', tmp] : [])], { stdio: 'inherit' });
    const code = await child.exited;
    if (code !== 0) failed.push(`${name} (exit ${code})`);
    if (jsonFile && existsSync(tmp)) {
      results[name] = JSON.parse(readFileSync(tmp, 'utf8'));
      rmSync(tmp, { force: true });
    }
  }
  if (jsonFile) {
    writeFileSync(jsonFile, JSON.stringify(results, null, 2) + '\n');
    process.stderr.write(`run-all: results written to ${jsonFile}\n`);
  }
  if (failed.length) {
    process.stderr.write(`run-all: failed: ${failed.join(', ')}\n`);
    return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`run-all: ${e.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
