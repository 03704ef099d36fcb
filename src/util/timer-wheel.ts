/**
 * A coarse timer wheel: deadlines, per-try timeouts and backoff sleeps share
 * one interval timer instead of one setTimeout each ("no timer per request").
 *
 * Time is cut into buckets of `resolutionMs`; a task due at `at` sits in
 * bucket ceil(at / resolutionMs) and fires on the first tick at or after the
 * bucket's end, so it never fires early and fires at most one resolution
 * (plus event-loop lag) late. Buckets live in a Map keyed by bucket number:
 * far deadlines cost nothing until their turn. The interval runs only while
 * tasks are pending; a tick that finds the wheel empty stops it. Cancelling
 * is O(1) (swap-remove inside the bucket), so a request that ends before its
 * deadline leaves nothing behind.
 *
 * Tasks are objects (a subclass of TimerTask), not callbacks: a caller that
 * already has a per-request object schedules it without another allocation.
 */

/** wheelBucket of a task taken out of its bucket to be fired in this tick. */
const FIRING = -2;

/** Something the wheel can fire. The two fields belong to the wheel. */
export abstract class TimerTask {
  /** Bucket number while scheduled, -1 otherwise (-2 while its bucket is being fired). */
  wheelBucket = -1;
  /** Position inside that bucket. */
  wheelIndex = -1;
  abstract onTimer(now: number): void;

  get scheduled(): boolean {
    return this.wheelBucket !== -1;
  }
}

/** A task that calls a function: for the rare caller without an object of its own. */
export class CallbackTask extends TimerTask {
  constructor(private readonly fn: (now: number) => void) {
    super();
  }
  onTimer(now: number): void {
    this.fn(now);
  }
}

export interface TimerWheelOptions {
  /** Bucket width in ms. Default 10. */
  resolutionMs?: number;
  /** The clock tasks are scheduled on. Default performance.now. */
  clock?: () => number;
  /** false: no interval timer; the owner calls tick() (tests drive time this way). Default true. */
  autoTick?: boolean;
}

export class TimerWheel {
  readonly resolutionMs: number;
  private readonly clock: () => number;
  private readonly autoTick: boolean;
  private readonly buckets = new Map<number, TimerTask[]>();
  private size = 0;
  /** The lowest bucket number a new task may go to: earlier ones have been (or are being) fired. */
  private floor = 0;
  private interval: NodeJS.Timeout | null = null;
  private readonly onInterval = () => this.tick();
  /*
   * The bucket used last. Requests read in one event-loop turn get deadlines
   * in the same bucket (one timeout, one turn clock), so most schedules and
   * cancels hit it and skip the Map. It stays in the Map while empty (fire()
   * drops it when its time comes), so the cache never points at a bucket the
   * Map lost.
   */
  private lastKey = -1;
  private lastBucket: TimerTask[] | null = null;
  /** The same for cancel(): replies end requests about in the order they began, so cancels cluster on an older bucket. */
  private cancelKey = -1;
  private cancelBucket: TimerTask[] | null = null;

  constructor(opts: TimerWheelOptions = {}) {
    this.resolutionMs = opts.resolutionMs ?? 10;
    if (!(this.resolutionMs > 0)) throw new Error('timer wheel resolution must be greater than 0');
    this.clock = opts.clock ?? (() => performance.now());
    this.autoTick = opts.autoTick ?? true;
    this.floor = Math.floor(this.clock() / this.resolutionMs);
  }

  /** Tasks waiting to fire. */
  get pending(): number {
    return this.size;
  }

  /** True while the interval timer runs. */
  get ticking(): boolean {
    return this.interval !== null;
  }

  now(): number {
    return this.clock();
  }

  /**
   * Schedules `task` to fire at `at` (on the wheel's clock). A time already
   * past fires on the next tick, never synchronously. A task already
   * scheduled is moved.
   */
  schedule(task: TimerTask, at: number): void {
    if (task.wheelBucket !== -1) this.cancel(task);
    if (this.size === 0 && this.interval === null) {
      // Idle wheel: nothing before now is pending, so start counting from now.
      const nowBucket = Math.floor(this.clock() / this.resolutionMs);
      if (nowBucket > this.floor) this.floor = nowBucket;
    }
    let key = Math.ceil(at / this.resolutionMs);
    if (!(key >= this.floor)) key = this.floor; // also catches NaN
    let b: TimerTask[] | undefined;
    if (key === this.lastKey) b = this.lastBucket!;
    else {
      b = this.buckets.get(key);
      if (b === undefined) {
        b = [];
        this.buckets.set(key, b);
      }
      this.lastKey = key;
      this.lastBucket = b;
    }
    task.wheelBucket = key;
    task.wheelIndex = b.length;
    b.push(task);
    this.size++;
    if (this.autoTick && this.interval === null) {
      this.interval = setInterval(this.onInterval, this.resolutionMs);
      this.interval.unref();
    }
  }

  /** Schedules `task` `ms` from now. */
  scheduleIn(task: TimerTask, ms: number): void {
    this.schedule(task, this.clock() + ms);
  }

  /** Removes a scheduled task; returns false when it was not scheduled (already fired or cancelled). */
  cancel(task: TimerTask): boolean {
    const key = task.wheelBucket;
    if (key === -1) return false;
    if (key === FIRING) {
      // Its bucket is being fired and its turn has not come yet: it is skipped.
      task.wheelBucket = -1;
      return true;
    }
    let b: TimerTask[] | undefined;
    if (key === this.lastKey) b = this.lastBucket!;
    else if (key === this.cancelKey) b = this.cancelBucket!;
    else {
      b = this.buckets.get(key);
      if (b !== undefined) {
        this.cancelKey = key;
        this.cancelBucket = b;
      }
    }
    task.wheelBucket = -1;
    if (b === undefined || b[task.wheelIndex] !== task) {
      task.wheelIndex = -1;
      return false;
    }
    const last = b.pop()!;
    if (last !== task) {
      b[task.wheelIndex] = last;
      last.wheelIndex = task.wheelIndex;
    }
    task.wheelIndex = -1;
    if (b.length === 0 && key !== this.lastKey) {
      this.buckets.delete(key);
      if (key === this.cancelKey) this.forgetCancelBucket();
    }
    this.size--;
    return true;
  }

  /**
   * Fires every task whose bucket has ended by now. Called by the interval;
   * tests call it directly. Tasks scheduled while firing go after this tick.
   */
  tick(): void {
    const now = this.clock();
    const limit = Math.floor(now / this.resolutionMs);
    if (this.size > 0 && limit >= this.floor) {
      if (limit - this.floor > this.buckets.size * 4) {
        // After a long stall: visit the buckets that exist rather than every number in between.
        const keys = [...this.buckets.keys()].filter((k) => k <= limit).sort((a, b) => a - b);
        this.floor = limit + 1;
        for (const k of keys) this.fire(k, now);
      } else {
        const from = this.floor;
        this.floor = limit + 1;
        for (let k = from; k <= limit && this.size > 0; k++) this.fire(k, now);
      }
    } else if (limit >= this.floor) this.floor = limit + 1;
    if (this.size === 0) {
      // Only empty buckets are left (the cached one): drop them.
      if (this.buckets.size > 0) this.buckets.clear();
      this.lastKey = -1;
      this.lastBucket = null;
      this.forgetCancelBucket();
      if (this.interval !== null) {
        clearInterval(this.interval);
        this.interval = null;
      }
    }
  }

  private fire(key: number, now: number): void {
    const b = this.buckets.get(key);
    if (b === undefined) return;
    this.buckets.delete(key);
    if (key === this.lastKey) {
      this.lastKey = -1;
      this.lastBucket = null;
    }
    if (key === this.cancelKey) this.forgetCancelBucket();
    this.size -= b.length;
    for (let i = 0; i < b.length; i++) {
      const t = b[i]!;
      t.wheelBucket = FIRING;
      t.wheelIndex = -1;
    }
    for (let i = 0; i < b.length; i++) {
      const t = b[i]!;
      // Cancelled or moved by a task fired before it in this bucket.
      if (t.wheelBucket !== FIRING) continue;
      t.wheelBucket = -1;
      try {
        t.onTimer(now);
      } catch {
        // One task's failure must not stop the others (or the interval).
      }
    }
  }

  private forgetCancelBucket(): void {
    this.cancelKey = -1;
    this.cancelBucket = null;
  }

  /** Drops every task without firing it and stops the interval. */
  clear(): void {
    for (const b of this.buckets.values()) for (const t of b) (t.wheelBucket = -1), (t.wheelIndex = -1);
    this.buckets.clear();
    this.lastKey = -1;
    this.lastBucket = null;
    this.forgetCancelBucket();
    this.size = 0;
    if (this.interval !== null) clearInterval(this.interval);
    this.interval = null;
  }
}

/** The process-wide wheel (10 ms buckets, performance.now clock) the resilience filters share. */
export const sharedTimerWheel = new TimerWheel();
