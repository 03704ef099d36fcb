/**
 * Starting the real servers integration tests run against (redis-server,
 * etcd, ZooKeeper): installing their Debian packages when missing, spawning
 * them, waiting until they answer, and killing them (also when the test
 * process exits without stopping them).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync } from 'node:fs';
import { sleep } from './net';

/** The path of `binary` on PATH, or null. */
export function onPath(binary: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' });
  const p = r.status === 0 ? r.stdout.trim() : '';
  return p || null;
}

/**
 * Makes sure a Debian package is installed: as root, apt-get installs it
 * (running apt-get update first when the plain install fails); otherwise the
 * test fails with a message naming the package. Tests never skip.
 */
export function ensureDebianPackage(pkg: string, present: () => boolean): void {
  if (present()) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`the Debian package '${pkg}' is required by this test: install it with 'apt-get install -y ${pkg}'`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '-q', pkg], { env, encoding: 'utf8', timeout: 600_000 });
  let r = install();
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-q'], { env, encoding: 'utf8', timeout: 600_000 });
    r = install();
  }
  if (r.status !== 0 || !present()) {
    throw new Error(`could not install the Debian package '${pkg}' (apt-get exit ${r.status}): ${(r.stderr ?? '').slice(-500)}`);
  }
}

/**
 * The path of `binary` (on PATH, else the first of `candidates` that exists),
 * installing the Debian package `pkg` when it is missing.
 */
export function ensureDebianBinary(binary: string, pkg: string, candidates: string[] = [`/usr/bin/${binary}`]): string {
  const find = () => onPath(binary) ?? candidates.find((c) => existsSync(c)) ?? null;
  ensureDebianPackage(pkg, () => find() !== null);
  return find()!;
}

/** Every process started here, killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export interface StartedProcess {
  readonly child: ChildProcess;
  /** Resolves once the process is gone. */
  readonly exited: Promise<void>;
  hasExited(): boolean;
  /** Sends a signal (SIGSTOP/SIGCONT to freeze and thaw it). */
  signal(sig: NodeJS.Signals): void;
  /** Kills it with SIGKILL (a paused process too) and waits until it is gone. */
  kill(): Promise<void>;
}

export interface StartOptions {
  /** Names the process in errors. */
  name: string;
  /** Appends stdout and stderr to this file; without it stdout is dropped and stderr kept for errors. */
  logFile?: string;
  /** The readiness probe, polled until it answers true. */
  ready: () => Promise<boolean>;
  /** How long the probe may take to answer true (default 30 s). */
  timeoutMs?: number;
  /** The pause between probes (default 100 ms). */
  pollMs?: number;
}

/**
 * Spawns `command args` and resolves once `ready` answers true. Fails when the
 * process exits first or is not ready in time (then it is killed); the error
 * points at the log file or quotes the end of stderr.
 */
export async function startProcess(command: string, args: string[], opts: StartOptions): Promise<StartedProcess> {
  let child: ChildProcess;
  let stderr = '';
  if (opts.logFile) {
    const log = openSync(opts.logFile, 'a');
    child = spawn(command, args, { stdio: ['ignore', log, log] });
    closeSync(log);
  } else {
    child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  }
  live.add(child);
  let gone = false;
  const exited = new Promise<void>((resolve) => {
    const done = () => {
      gone = true;
      live.delete(child);
      resolve();
    };
    child.once('exit', done);
    child.once('error', done); // could not be spawned
  });
  const started: StartedProcess = {
    child,
    exited,
    hasExited: () => gone,
    signal: (sig) => {
      if (!gone) child.kill(sig);
    },
    kill: async () => {
      if (!gone) {
        child.kill('SIGCONT'); // a paused process still dies on SIGKILL, but be explicit
        child.kill('SIGKILL');
      }
      await exited;
    },
  };
  const why = () => (opts.logFile ? `; see ${opts.logFile}` : `: ${stderr.slice(-500)}`);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gone) throw new Error(`${opts.name} exited during startup${why()}`);
    if (await opts.ready()) return started;
    if (Date.now() > deadline) {
      await started.kill();
      throw new Error(`${opts.name} did not become ready within ${timeoutMs / 1000} s${why()}`);
    }
    await sleep(opts.pollMs ?? 100);
  }
}

/**
 * A server that a test can kill (SIGKILL, as abrupt as a crash) and start
 * again with the same ports and data: `launch` starts one process of it.
 */
export class ServerProcess {
  private proc: StartedProcess | null = null;

  /** `dir`, when given, is removed by close(). */
  constructor(
    private readonly launch: () => Promise<StartedProcess>,
    private readonly dir?: string,
  ) {}

  running(): boolean {
    return this.proc !== null;
  }

  /** Starts it unless it runs; resolves once it is ready. */
  async start(): Promise<void> {
    if (this.proc) return;
    const p = await this.launch();
    this.proc = p;
    void p.exited.then(() => {
      if (this.proc === p) this.proc = null;
    });
  }

  /** Kills it and waits until it is gone. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    await p.kill();
    this.proc = null;
  }

  signal(sig: NodeJS.Signals): void {
    this.proc?.signal(sig);
  }

  /** Stops it and removes its directory. */
  async close(): Promise<void> {
    await this.stop();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
