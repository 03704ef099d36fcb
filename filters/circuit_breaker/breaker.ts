/**
 * The breaker state machine, on its own: no timers, no I/O, time from an
 * injected clock (performance.now() in production).
 *
 *   closed --(consecutive_failures in a row, or error_rate over window
 *             with at least min_requests)--> open
 *   open --(open duration passed; checked when asked, no timer)--> half-open
 *   half-open --(half_open_probes requests admitted; all succeed)--> closed
 *   half-open --(any probe fails)--> open, for twice the last open duration,
 *               at most max_open_duration
 *
 * The open duration starts at open_duration after closed -> open and
 * doubles on each half-open -> open; it is fixed when max_open_duration is
 * not above open_duration (the default).
 *
 * acquire() returns a ticket; release(ticket, outcome) reports how the
 * request ended. A ticket carries the epoch it was issued in (the epoch
 * changes with every transition), so a straggler from an earlier state
 * (a slow request admitted while closed that fails after the breaker opened)
 * changes nothing. A neutral outcome (the request never reached the upstream
 * or ended for a reason that says nothing about it) only gives its probe
 * place back.
 */

export const CLOSED = 0;
export const OPEN = 1;
export const HALF_OPEN = 2;
export type BreakerStateValue = typeof CLOSED | typeof OPEN | typeof HALF_OPEN;
export const STATE_NAMES = ['closed', 'open', 'half-open'] as const;

export const SUCCESS = 0;
export const FAILURE = 1;
export const NEUTRAL = 2;
export type Outcome = typeof SUCCESS | typeof FAILURE | typeof NEUTRAL;

/** acquire() refused the request. */
export const REJECTED = -1;

export interface BreakerSettings {
  /** Failures in a row that open the breaker; 0: never on this ground. */
  consecutiveFailures: number;
  /** Failure share (0-1] over the window that opens the breaker; 0: never on this ground. */
  errorRate: number;
  windowMs: number;
  /** Requests the window must hold before errorRate is judged. */
  minRequests: number;
  openDurationMs: number;
  maxOpenDurationMs: number;
  /** Requests admitted while half-open; all must succeed to close. */
  halfOpenProbes: number;
}

const WINDOW_BUCKETS = 10;

/** Requests and failures over a sliding window, in ten buckets (so it slides in tenths). */
export class OutcomeWindow {
  private readonly keys: number[] = new Array(WINDOW_BUCKETS).fill(Number.NEGATIVE_INFINITY);
  private readonly totals: number[] = new Array(WINDOW_BUCKETS).fill(0);
  private readonly fails: number[] = new Array(WINDOW_BUCKETS).fill(0);
  private readonly width: number;

  constructor(readonly windowMs: number) {
    this.width = windowMs / WINDOW_BUCKETS;
  }

  /** The bucket record() used last and the time span it covers: requests of one turn (one turn clock) skip the arithmetic. */
  private curIndex = -1;
  private curFrom = 0;
  private curTo = 0;

  record(now: number, failed: boolean): void {
    let i = this.curIndex;
    if (i < 0 || now < this.curFrom || now >= this.curTo) {
      const k = Math.floor(now / this.width);
      i = ((k % WINDOW_BUCKETS) + WINDOW_BUCKETS) % WINDOW_BUCKETS;
      if (this.keys[i] !== k) {
        this.keys[i] = k;
        this.totals[i] = 0;
        this.fails[i] = 0;
      }
      this.curIndex = i;
      this.curFrom = k * this.width;
      this.curTo = (k + 1) * this.width;
    }
    this.totals[i]!++;
    if (failed) this.fails[i]!++;
  }

  /** Requests in the window ending now. */
  total(now: number): number {
    return this.sum(now, this.totals);
  }

  failures(now: number): number {
    return this.sum(now, this.fails);
  }

  private sum(now: number, arr: number[]): number {
    const k = Math.floor(now / this.width);
    let n = 0;
    for (let i = 0; i < WINDOW_BUCKETS; i++) {
      const key = this.keys[i]!;
      if (key > k - WINDOW_BUCKETS && key <= k) n += arr[i]!;
    }
    return n;
  }

  reset(): void {
    this.curIndex = -1;
    this.keys.fill(Number.NEGATIVE_INFINITY);
    this.totals.fill(0);
    this.fails.fill(0);
  }
}

export class BreakerMachine {
  state: BreakerStateValue = CLOSED;
  /** Changes with every transition; part of each ticket. */
  epoch = 0;
  consecutive = 0;
  /** When an open breaker turns half-open (clock time). */
  openUntil = 0;
  /** The current open duration (doubles on re-open from half-open). */
  openMs: number;
  probesAdmitted = 0;
  probeSuccesses = 0;
  /** Times the breaker opened. */
  opened = 0;
  /** When the state last changed (clock time). */
  since: number;
  private window: OutcomeWindow;
  /** Told of every transition (logs, counters). */
  onChange: ((from: BreakerStateValue, to: BreakerStateValue, now: number) => void) | null = null;

  constructor(
    private settings: BreakerSettings,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.openMs = settings.openDurationMs;
    this.window = new OutcomeWindow(settings.windowMs);
    this.since = clock();
  }

  get current(): BreakerSettings {
    return this.settings;
  }

  /** New thresholds; the state and counts stay (the window restarts if its length changed). */
  setSettings(s: BreakerSettings): void {
    if (s.windowMs !== this.settings.windowMs) this.window = new OutcomeWindow(s.windowMs);
    this.settings = s;
    if (this.state === CLOSED) this.openMs = s.openDurationMs;
    else this.openMs = Math.min(Math.max(this.openMs, s.openDurationMs), Math.max(s.maxOpenDurationMs, s.openDurationMs));
  }

  /** Applies the time-driven transition (open -> half-open) if it is due; returns the state. */
  refresh(now = this.clock()): BreakerStateValue {
    if (this.state === OPEN && now >= this.openUntil) this.transition(HALF_OPEN, now);
    return this.state;
  }

  /** A ticket (>= 0) when the request may go, REJECTED otherwise. */
  acquire(): number {
    // Closed changes only on a release: no clock read needed.
    if (this.state === CLOSED) return this.epoch * 2;
    const now = this.clock();
    const state = this.refresh(now);
    if (state === CLOSED) return this.epoch * 2;
    if (state === HALF_OPEN && this.probesAdmitted < this.settings.halfOpenProbes) {
      this.probesAdmitted++;
      return this.epoch * 2 + 1;
    }
    return REJECTED;
  }

  /** How a request admitted with `ticket` ended. */
  release(ticket: number, outcome: Outcome): void {
    if (ticket < 0) return;
    const epoch = Math.floor(ticket / 2);
    if (epoch !== this.epoch) return;
    if (this.state === CLOSED) {
      if (outcome === NEUTRAL) return;
      const now = this.clock();
      const failed = outcome === FAILURE;
      this.window.record(now, failed);
      if (!failed) {
        this.consecutive = 0;
        return;
      }
      this.consecutive++;
      const s = this.settings;
      if (s.consecutiveFailures > 0 && this.consecutive >= s.consecutiveFailures) {
        this.transition(OPEN, now);
        return;
      }
      if (s.errorRate > 0) {
        const total = this.window.total(now);
        if (total >= s.minRequests && this.window.failures(now) >= s.errorRate * total) this.transition(OPEN, now);
      }
      return;
    }
    const now = this.clock();
    if (this.state === HALF_OPEN && ticket % 2 === 1) {
      if (outcome === NEUTRAL) {
        this.probesAdmitted--;
        return;
      }
      if (outcome === FAILURE) {
        this.transition(OPEN, now);
        return;
      }
      this.probeSuccesses++;
      if (this.probeSuccesses >= this.settings.halfOpenProbes) this.transition(CLOSED, now);
    }
  }

  /** For a rejection: ms until the breaker admits probes again (0 when it already would). */
  retryAfterMs(now = this.clock()): number {
    return this.state === OPEN ? Math.max(0, this.openUntil - now) : 0;
  }

  /** Requests and failures in the current window (closed state). */
  windowCounts(now = this.clock()): { requests: number; failures: number } {
    return { requests: this.window.total(now), failures: this.window.failures(now) };
  }

  private transition(to: BreakerStateValue, now: number): void {
    const from = this.state;
    if (to === OPEN) {
      const s = this.settings;
      this.openMs = from === HALF_OPEN ? Math.min(this.openMs * 2, Math.max(s.maxOpenDurationMs, s.openDurationMs)) : s.openDurationMs;
      this.openUntil = now + this.openMs;
      this.opened++;
    } else if (to === HALF_OPEN) {
      this.probesAdmitted = 0;
      this.probeSuccesses = 0;
    } else {
      this.consecutive = 0;
      this.window.reset();
      this.openMs = this.settings.openDurationMs;
    }
    this.state = to;
    this.epoch++;
    this.since = now;
    this.onChange?.(from, to, now);
  }
}
