/**
 * file: endpoints listed in a YAML or JSON file, read again when it changes.
 *
 *   - 10.0.0.1:6379                         # or, as objects:
 *   - { address: 10.0.0.2:6379, weight: 2, metadata: { zone: a } }
 *
 * or the same list under `endpoints:`. The directory is watched, not the
 * file: editors and config managers replace a file by renaming a new one over
 * it (Kubernetes swaps a symlink), which a watch on the old inode never sees.
 * Events are debounced, and a slow poll of the file's stat covers file
 * systems whose events are unreliable. A file that cannot be read or parsed,
 * or that holds one bad entry, changes nothing: the last good list stays and
 * status() says why.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { parseDocument } from 'yaml';
import { Duration } from '../../config/schema';
import type { ConfigIssue } from '../../config/validate';
import type { EndpointConfig } from '../../config/types';
import type { Logger } from '../../logger';
import { parseDuration } from '../../util/duration';
import type { DiscoveryFactory, DiscoverySource, DiscoveryStatus } from './source';
import { SourceState, describeError } from './source-state';
import { endpointFromEntry } from './endpoint-entry';

const FileConfig = Type.Object(
  {
    path: Type.String({ minLength: 1, description: 'The file listing the endpoints (YAML or JSON). A relative path is relative to the working directory.' }),
    debounce: Type.Optional(Duration('Wait this long after the last change event before reading the file.', '100ms')),
    poll: Type.Optional(Duration("Also compare the file's size and modification time this often (0 disables), for file systems without reliable change events.", '5s')),
  },
  { additionalProperties: false },
);
type FileConfig = Static<typeof FileConfig>;

/** Parses the file's text. Returns the endpoints, or the reasons it is not a valid list. */
export function parseEndpointFile(text: string): EndpointConfig[] | string {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const where = e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}: ` : '';
    // The library's first line repeats the position at its end; say it once.
    return `${where}${(e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, '')}`;
  }
  const value: unknown = doc.toJS({ maxAliasCount: 100 });
  if (value === null || value === undefined) return 'the file is empty (write [] for no endpoints)';
  let entries: unknown[];
  let base = '';
  if (Array.isArray(value)) entries = value;
  else if (typeof value === 'object' && Array.isArray((value as { endpoints?: unknown }).endpoints)) {
    const extra = Object.keys(value).filter((k) => k !== 'endpoints');
    if (extra.length) return `unknown top-level key${extra.length > 1 ? 's' : ''} ${extra.map((k) => `'${k}'`).join(', ')} (expected endpoints)`;
    entries = (value as { endpoints: unknown[] }).endpoints;
    base = 'endpoints';
  } else return 'expected a list of endpoints, or a map with an endpoints list';
  const out: EndpointConfig[] = [];
  const problems: string[] = [];
  entries.forEach((entry, i) => {
    const ep = endpointFromEntry(entry, true);
    if (typeof ep === 'string') problems.push(`${base}[${i}]: ${ep}`);
    else out.push(ep);
  });
  if (problems.length) return problems.slice(0, 5).join('; ') + (problems.length > 5 ? ` (and ${problems.length - 5} more)` : '');
  return out;
}

function fileError(err: unknown): unknown {
  return (err as NodeJS.ErrnoException).code === 'ENOENT' ? new Error('no such file') : err;
}

class FileSource implements DiscoverySource {
  private readonly state: SourceState;
  private readonly path: string;
  private readonly debounceMs: number;
  private readonly pollMs: number;
  private watcher: FSWatcher | null = null;
  private debounceTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private reading = false;
  private readAgain = false;
  /** size:mtime:inode of the file at the last read, to tell whether a poll sees a change. */
  private lastSeen = '';
  private watchError: string | null = null;

  constructor(
    config: FileConfig,
    private readonly log: Logger,
  ) {
    this.state = new SourceState('file', log);
    this.path = resolve(config.path);
    this.debounceMs = parseDuration(config.debounce ?? '100ms');
    this.pollMs = parseDuration(config.poll ?? '5s');
  }

  start(update: (endpoints: EndpointConfig[]) => void): void {
    this.state.bind(update);
    this.watchDir();
    void this.read();
    if (this.pollMs > 0) {
      this.pollTimer = setInterval(() => void this.poll(), this.pollMs);
      this.pollTimer.unref();
    }
  }

  private watchDir(): void {
    if (this.stopped || this.watcher) return;
    try {
      // Every event in the directory schedules a read: a symlink swap or a rename names another entry than our file.
      const w = watch(dirname(this.path), { persistent: false }, () => this.schedule());
      w.on('error', (err) => {
        // The directory went away (or similar): the poll will try to watch again.
        this.watchError = describeError(err);
        w.close();
        if (this.watcher === w) this.watcher = null;
        this.schedule();
      });
      this.watcher = w;
      this.watchError = null;
    } catch (err) {
      this.watchError = describeError(err);
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = null;
      void this.read();
    }, this.debounceMs);
    this.debounceTimer.unref();
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    if (!this.watcher) this.watchDir();
    try {
      const st = await stat(this.path);
      if (`${st.size}:${st.mtimeMs}:${st.ino}` !== this.lastSeen) this.schedule();
    } catch (err) {
      // A vanished file is reported (logged once however often the poll sees it); the last list stays.
      if (!this.stopped) this.state.fail(fileError(err), `reading ${this.path}`);
    }
  }

  /** One read at a time; a change during a read triggers another. */
  private async read(): Promise<void> {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    try {
      await this.readOnce();
    } catch (err) {
      if (!this.stopped) this.state.fail(err, `reading ${this.path}`);
    } finally {
      this.reading = false;
      if (this.readAgain && !this.stopped) {
        this.readAgain = false;
        void this.read();
      }
    }
  }

  private async readOnce(): Promise<void> {
    let text: string;
    let seen: string;
    try {
      const st = await stat(this.path);
      seen = `${st.size}:${st.mtimeMs}:${st.ino}`;
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (this.stopped) return;
      this.state.fail(fileError(err), `reading ${this.path}`);
      return;
    }
    if (this.stopped) return;
    this.lastSeen = seen;
    const parsed = parseEndpointFile(text);
    if (typeof parsed === 'string') {
      this.state.fail(new Error(parsed), this.path);
      return;
    }
    this.state.publish(parsed);
  }

  status(): DiscoveryStatus {
    return this.state.status({
      path: this.path,
      watching: this.watcher !== null,
      ...(this.watchError ? { watch_error: this.watchError } : {}),
      endpoints: this.state.endpoints.length,
    });
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.debounceTimer = null;
    this.pollTimer = null;
    this.log.debug({ path: this.path }, 'file discovery stopped');
  }
}

export const fileDiscovery: DiscoveryFactory<FileConfig> = {
  type: 'file',
  description: 'Endpoints from a watched YAML or JSON file.',
  schema: FileConfig,
  check(config): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    const poll = parseDuration(config.poll ?? '5s');
    if (poll > 0 && poll < 100) issues.push({ path: 'poll', message: 'must be 0 (off) or at least 100ms' });
    if (basename(config.path) === '' || config.path.endsWith('/')) issues.push({ path: 'path', message: 'must name a file, not a directory' });
    return issues;
  },
  create(config, ctx): DiscoverySource {
    return new FileSource(config, ctx.logger);
  },
};
