import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { builtins } from './builtins';
import { loadConfigFile } from './config/load';
import { ConfigError } from './config/validate';
import { createLogger, LOG_LEVELS, type Logger } from './logger';
import { Proxy } from './proxy';
import { VERSION } from './version';
import { iptablesCommand } from './sidecar/iptables-cli';
import { announceFailed, announceReady, isSuccessor, receiveSockets, startSuccessor, type InheritedSockets } from './handoff';
import { announceWorkerFailed, isWorker, runPrimary, serveWorker } from './workers';

const HELP = `portway ${VERSION}: a protocol-translating sidecar proxy

Usage:
  portway run      [-c FILE] [--log-level LEVEL]   run the proxy
  portway validate [-c FILE]                       check a config; print every problem
  portway iptables [--apply|--clean] [options]     print/install/remove the sidecar nat rules
                                                   (portway iptables --help)
  portway --help | --version

Options:
  -c, --config FILE    YAML or JSON config (default: config/portway.yaml in the
                       current directory, else the embedded default config)
  --log-level LEVEL    ${LOG_LEVELS.join(', ')} (overrides log.level)
  -h, --help           this text
  -v, --version        print the version

Signals (run): SIGHUP reloads the config file; SIGTERM or SIGINT stop accepting,
drain open connections for up to drain_timeout, and exit 0. SIGUSR2 restarts
with zero downtime: a new process (same arguments, config file read anew)
takes over the listening and admin sockets, then this one drains and exits 0.
Admin API (default http://127.0.0.1:9901): /ready /healthz /metrics /config
/clusters /listeners, POST /reload, GET|POST /logging.
`;

/** The embedded default config shipped with the package. */
export const EMBEDDED_CONFIG = resolve(__dirname, '../../config/portway.yaml');

function defaultConfigPath(): string {
  const local = resolve('config/portway.yaml');
  return existsSync(local) ? local : EMBEDDED_CONFIG;
}

function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : s + '\n');
}
function err(s: string): void {
  process.stderr.write(s.endsWith('\n') ? s : s + '\n');
}

/** Runs the CLI; resolves to the exit code (run resolves only when the proxy has stopped). */
export async function main(argv: string[]): Promise<number> {
  // Its own options: parsed by the sidecar module.
  if (argv[0] === 'iptables') return iptablesCommand(argv.slice(1), out, err);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (e) {
    err(`portway: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    out(VERSION);
    return 0;
  }
  const command = positionals[0] ?? (values.help ? 'help' : 'run');
  if (values.help || command === 'help') {
    out(HELP);
    return 0;
  }
  const level = values['log-level'];
  if (level !== undefined && !LOG_LEVELS.includes(level as never)) {
    err(`portway: --log-level must be one of: ${LOG_LEVELS.join(', ')}`);
    return 2;
  }
  const file = resolve(values.config ?? defaultConfigPath());
  const b = builtins();

  if (command === 'validate') {
    try {
      const cfg = loadConfigFile(file, b.registries);
      out(`${file}: valid`);
      out(`  admin: ${cfg.admin.enabled ? cfg.admin.address : 'disabled'}`);
      out(`  listeners (${cfg.listeners.length}): ${cfg.listeners.map((l) => `${l.name} ${l.address} ${l.protocol}`).join('; ') || 'none'}`);
      out(`  clusters (${cfg.clusters.length}): ${cfg.clusters.map((c) => `${c.name} [${c.endpoints.length} endpoint${c.endpoints.length === 1 ? '' : 's'}, ${c.lb}]`).join('; ') || 'none'}`);
      return 0;
    } catch (e) {
      if (e instanceof ConfigError) {
        err(`${file}: ${e.issues.length} problem${e.issues.length === 1 ? '' : 's'}`);
        for (const i of e.issues) err(`  ${i.path || '(root)'}: ${i.message}`);
        return 1;
      }
      throw e;
    }
  }

  if (command !== 'run') {
    err(`portway: unknown command '${command}'\n\n${HELP}`);
    return 2;
  }
  return run(file, level);
}

async function run(file: string, levelOverride: string | undefined): Promise<number> {
  const b = builtins();
  let config;
  // Started by a running Portway to take over its sockets (zero-downtime restart, src/handoff).
  const successor = isSuccessor();
  const worker = isWorker();
  try {
    config = loadConfigFile(file, b.registries);
  } catch (e) {
    if (e instanceof ConfigError) {
      err(e.message);
      if (successor) await announceFailed(e.message);
      if (worker) await announceWorkerFailed(e.message);
      return 1;
    }
    throw e;
  }
  const log = createLogger(levelOverride ?? config.logLevel);
  if (config.workers > 1 && !worker) {
    if (successor) {
      await announceFailed('a zero-downtime restart into workers > 1 is not supported: stop and start instead');
      return 1;
    }
    return runPrimary(config, log, () => flush(log));
  }
  let proxy: Proxy;
  try {
    let inherited: InheritedSockets | undefined;
    if (successor) inherited = await receiveSockets();
    proxy = await Proxy.start(config, log, b, { ...(inherited ? { inherited } : {}), admin: !worker });
  } catch (e) {
    log.fatal({ error: (e as Error).message }, 'cannot start');
    await flush(log);
    err(`portway: ${(e as Error).message}`);
    if (successor) await announceFailed((e as Error).message);
    if (worker) await announceWorkerFailed((e as Error).message);
    return 1;
  }
  if (successor) {
    log.info('handoff: took over the listening sockets');
    announceReady();
  }
  return new Promise<number>((done) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now');
        void flush(log).then(() => process.exit(1));
        return;
      }
      stopping = true;
      log.info({ signal }, 'shutdown requested');
      proxy.shutdown().then(
        () => flush(log).then(() => done(0)),
        (e: Error) => {
          log.error({ err: e }, 'shutdown failed');
          void flush(log).then(() => done(1));
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      // A worker reloads when the primary asks: SIGHUP sent to the whole process group reaches it too.
      if (worker) return;
      log.info('SIGHUP: reloading');
      void proxy.reload();
    });
    // A worker asked to stop by the primary (or left by it) while it already drains for a signal just goes on draining.
    if (worker) serveWorker(proxy, log, () => {
      if (!stopping) stop('primary');
    });
    let handingOff = false;
    process.on('SIGUSR2', () => {
      if (worker || stopping || handingOff) return;
      handingOff = true;
      log.info('SIGUSR2: zero-downtime restart');
      startSuccessor(() => proxy.handoffSource(), log).then(
        (pid) => {
          log.info({ successor_pid: pid }, 'handoff complete: the successor serves; draining');
          void proxy.closeAdmin().then(() => {
            if (!stopping) stop('handoff');
          });
        },
        (e: Error) => {
          handingOff = false;
          log.error({ error: e.message }, 'handoff failed; this process keeps serving');
        },
      );
    });
  });
}

function flush(log: Logger): Promise<void> {
  return new Promise((resolve) => {
    try {
      log.flush(() => resolve());
    } catch {
      resolve();
    }
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      err(e.stack ?? String(e));
      process.exit(1);
    },
  );
}
