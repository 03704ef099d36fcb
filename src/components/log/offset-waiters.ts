/**
 * Fetch long polling: promises that resolve true when a partition's high
 * watermark passes an offset, or false at their deadline. Deadlines share
 * one coarse timer wheel for all logs, whose interval is unref'd, so a
 * pending wait never keeps the process alive (no timer per fetch).
 */
import { TimerTask, TimerWheel } from '../../util/timer-wheel';

const wheel = new TimerWheel({ resolutionMs: 10 });

class Waiter extends TimerTask {
  constructor(
    readonly offset: bigint,
    readonly resolve: (ok: boolean) => void,
    readonly owner: OffsetWaiters,
  ) {
    super();
  }
  onTimer(): void {
    this.owner.drop(this);
    this.resolve(false);
  }
}

export class OffsetWaiters {
  private readonly waiting = new Set<Waiter>();

  get size(): number {
    return this.waiting.size;
  }

  /** Resolves true once notify() reports a high watermark above `offset` (at once when `highWatermark` already is). */
  wait(offset: bigint, timeoutMs: number, highWatermark: bigint): Promise<boolean> {
    if (highWatermark > offset) return Promise.resolve(true);
    if (!(timeoutMs > 0)) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const w = new Waiter(offset, resolve, this);
      this.waiting.add(w);
      wheel.scheduleIn(w, timeoutMs);
    });
  }

  /** The high watermark moved: wake every wait it passed. */
  notify(highWatermark: bigint): void {
    if (this.waiting.size === 0) return;
    for (const w of this.waiting) {
      if (highWatermark > w.offset) {
        this.waiting.delete(w);
        wheel.cancel(w);
        w.resolve(true);
      }
    }
  }

  /** Resolves every pending wait with false (the partition is closing or deleted). */
  cancelAll(): void {
    for (const w of this.waiting) {
      wheel.cancel(w);
      w.resolve(false);
    }
    this.waiting.clear();
  }

  drop(w: Waiter): void {
    this.waiting.delete(w);
  }
}
