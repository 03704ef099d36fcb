import pino, { type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Every logger made from a root, so a level change reaches children made earlier (pino copies the level at child creation). */
const families = new WeakMap<Logger, Set<WeakRef<Logger>>>();

/**
 * The root logger. Everything logs through children of it (one per listener or
 * cluster, never one per request). Keys that may carry secrets are redacted.
 */
export function createLogger(level: string = 'info', destination?: pino.DestinationStream): Logger {
  const members = new Set<WeakRef<Logger>>();
  const root = pino(
    {
      level,
      base: { pid: process.pid },
      redact: {
        paths: ['password', '*.password', 'auth', '*.auth', 'secret', '*.secret', 'token', '*.token'],
        censor: '[redacted]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
      onChild: (child: Logger) => {
        members.add(new WeakRef(child));
      },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
  families.set(root, members);
  return root;
}

/** Sets the level of a root logger and of every child made from it. */
export function setLogLevel(root: Logger, level: string): void {
  root.level = level;
  const members = families.get(root);
  if (!members) return;
  for (const ref of members) {
    const l = ref.deref();
    if (l) l.level = level;
    else members.delete(ref);
  }
}
