/**
 * Idle timeouts for many connections with one timer.
 *
 * socket.setTimeout() re-arms a timer on every read and every write: Node
 * refreshes it in its read callback and in the write path, which on the
 * Redis path at pipeline 1 cost ~2 % of the proxy's CPU. Idleness of a
 * client connection needs no such precision, so connections only note the
 * sweep tick of their last activity (a field store), and one interval per
 * timeout value walks them a few times per timeout.
 *
 * A connection is reported idle after between `timeoutMs` and
 * `timeoutMs * (1 + 1 / SLICES)` without activity. The interval is unref'd:
 * it never keeps the process alive, and it stops when nobody is tracked.
 */
export interface IdleTracked {
  /** The sweeper's tick at the connection's last activity: set `idleMark = sweeper.tick` on each read and write. */
  idleMark: number;
  /** Called from the sweep when the connection has been idle for the timeout. May remove itself. */
  onIdleSweep(): void;
}

const SLICES = 4;

export class IdleSweeper {
  /** Incremented at each sweep; what a connection stores as its activity mark. */
  tick = 0;
  private readonly members = new Set<IdleTracked>();
  private timer: NodeJS.Timeout | null = null;
  private readonly intervalMs: number;

  constructor(readonly timeoutMs: number) {
    this.intervalMs = Math.max(1, Math.ceil(timeoutMs / SLICES));
  }

  add(m: IdleTracked): void {
    m.idleMark = this.tick;
    this.members.add(m);
    if (this.timer === null) {
      this.timer = setInterval(() => this.sweep(), this.intervalMs);
      this.timer.unref();
    }
  }

  delete(m: IdleTracked): void {
    this.members.delete(m);
    if (this.members.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  get size(): number {
    return this.members.size;
  }

  private sweep(): void {
    const t = ++this.tick;
    for (const m of this.members) {
      if (t - m.idleMark > SLICES) {
        // Report once per idle period: a connection that stays (a subscriber) is looked at again a full timeout later.
        m.idleMark = t;
        m.onIdleSweep();
      }
    }
  }
}

const sweepers = new Map<number, IdleSweeper>();

/** The process's sweeper for this timeout (shared by every listener that uses the same value). */
export function idleSweeper(timeoutMs: number): IdleSweeper {
  let s = sweepers.get(timeoutMs);
  if (s === undefined) {
    s = new IdleSweeper(timeoutMs);
    sweepers.set(timeoutMs, s);
  }
  return s;
}

/**
 * Registers m with the sweeper (when there is one) and returns the 'data'
 * handler to install: it notes the activity, then hands the chunk to push.
 */
export function markingReader(sweeper: IdleSweeper | null, m: IdleTracked, push: (chunk: Buffer) => void): (chunk: Buffer) => void {
  if (sweeper === null) return push;
  sweeper.add(m);
  return (chunk) => {
    m.idleMark = sweeper.tick;
    push(chunk);
  };
}
