import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { builtins } from '../../src/builtins';
import { loadConfigText } from '../../src/config/load';
import { createLogger } from '../../src/logger';
import { Proxy } from '../../src/proxy';
import { http, waitFor } from './net';

export const REPO = resolve(__dirname, '../../..');
/** The built CLI beside this build of the tests (dist/, or a private out dir). */
export const CLI = resolve(__dirname, '../../src/cli.js');

export interface InProcess {
  proxy: Proxy;
  admin: string;
  port(listener: string): number;
  stop(drainMs?: number): Promise<void>;
}

/**
 * Runs Portway in this process on a YAML config. Listener and admin ports may
 * be 0 (the admin address defaults to 127.0.0.1:0 here). `file` makes reloads
 * read from that file.
 */
export async function startPortway(yaml: string, opts: { file?: string } = {}): Promise<InProcess> {
  const text = /^admin:/m.test(yaml) ? yaml : `admin: { address: 127.0.0.1:0 }\n${yaml}`;
  if (opts.file) writeFileSync(opts.file, text);
  const cfg = loadConfigText(text, builtins().registries, opts.file);
  const proxy = await Proxy.start(cfg, createLogger(process.env.PORTWAY_TEST_LOG ?? 'silent'));
  return {
    proxy,
    admin: `http://${proxy.adminAddress()}`,
    port: (name) => {
      const p = proxy.listenerPort(name);
      if (p === undefined) throw new Error(`no listener ${name}`);
      return p;
    },
    stop: (drainMs = 200) => proxy.shutdown(drainMs),
  };
}

export function tempDir(prefix = 'portway-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Runs the CLI as a subprocess (as users and CI do). */
export function runCli(args: string[], opts: { cwd?: string } = {}): Child {
  const proc = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, stdout: () => out, stderr: () => err, exited };
}

export async function waitReady(adminUrl: string, ms = 10000): Promise<void> {
  await waitFor(async () => {
    try {
      return (await http('GET', `${adminUrl}/ready`)).status === 200;
    } catch {
      return false;
    }
  }, ms, `${adminUrl}/ready`);
}
