/**
 * Racing an upstream call against a deadline on the shared timer wheel.
 * Used by timeout (the request deadline), retry (per_try_timeout) and
 * circuit_breaker (a call still unanswered at its deadline is a failure).
 *
 * When the deadline wins, the call is abandoned: its result is ignored when
 * it arrives, except that a late upstream connection (the L4 terminal's
 * UpstreamConnection) is closed and its slot given back, so an abandoned
 * connect cannot leak a socket or a place under max_connections.
 */
import type { DeadlineWatch, Exchange } from '../../src/exchange';
import type { ProxyError } from '../../src/errors';
import type { Dispatch, ResultHandler } from '../../src/filter';
import { sharedTimerWheel, TimerTask, type TimerWheel } from '../../src/util/timer-wheel';

/** Builds the error of a lost race; called only when the deadline wins. */
export type ExpiryError = (ex: Exchange) => ProxyError;

/** Closes what a call produced after nobody waited for it any more. */
export function discardLate(value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  const v = value as { socket?: { destroy?: unknown }; release?: unknown };
  if (typeof v.release === 'function' && v.socket !== undefined && typeof v.socket.destroy === 'function') {
    (v.socket.destroy as () => void).call(v.socket);
    (v.release as () => void).call(v);
  }
}

class DeadlineRace<R> extends TimerTask {
  settled = false;
  resolve!: (v: R) => void;
  reject!: (e: unknown) => void;

  constructor(
    private readonly wheel: TimerWheel,
    private readonly ex: Exchange,
    private readonly expired: ExpiryError,
  ) {
    super();
  }

  onTimer(): void {
    if (this.settled) return;
    this.settled = true;
    this.ex.reportTimeout();
    this.reject(this.expired(this.ex));
  }

  readonly onValue = (v: R): void => {
    if (this.settled) {
      discardLate(v);
      return;
    }
    this.settled = true;
    this.wheel.cancel(this);
    this.resolve(v);
  };

  readonly onError = (e: unknown): void => {
    if (this.settled) return; // abandoned: nobody waits for this failure
    this.settled = true;
    this.wheel.cancel(this);
    this.reject(e);
  };
}

/**
 * Settles like `call` unless `deadline` (performance.now() clock, the wheel's
 * clock) passes first; then rejects with expired(ex). A deadline of 0 means
 * none: `call` is returned as it is.
 */
export function raceDeadline<R>(call: Promise<R>, deadline: number, ex: Exchange, expired: ExpiryError, wheel: TimerWheel = sharedTimerWheel): Promise<R> {
  if (deadline <= 0) return call;
  const race = new DeadlineRace<R>(wheel, ex, expired);
  const out = new Promise<R>((resolve, reject) => {
    race.resolve = resolve;
    race.reject = reject;
  });
  if (deadline <= wheel.now()) {
    race.settled = true;
    race.reject(expired(ex));
    call.then(discardLate, () => {});
    return out;
  }
  wheel.schedule(race, deadline);
  call.then(race.onValue, race.onError);
  return out;
}

/** Calls next(ex), turning a synchronous throw into a rejection. */
export function callNext<R>(next: (ex: Exchange) => Promise<R>, ex: Exchange): Promise<R> {
  try {
    return next(ex);
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * The callback form of a race: the handler the inner call answers, and the
 * wheel task of the deadline, in one object (no promise, no closure). The
 * first of the three (result, failure, deadline) wins; a late result is
 * discarded (discardLate), a late failure ignored. A deadline that wins
 * counts as an error of the try's endpoint (outlier detection).
 *
 * While the inner call starts it is the exchange's DeadlineWatch: an inner
 * policy with a task due at the same deadline (a circuit breaker) attaches
 * it here, and it fires (the last attached first) just before this race
 * fails the exchange, so one request keeps one wheel entry.
 */
export class DeadlineCall<R> extends TimerTask implements ResultHandler<R>, DeadlineWatch {
  settled = false;
  /** The first attached task, and any further ones. */
  private dep: TimerTask | null = null;
  private deps: TimerTask[] | null = null;

  constructor(
    readonly ex: Exchange,
    private readonly outer: ResultHandler<R>,
    private readonly expired: ExpiryError,
    readonly wheel: TimerWheel,
    readonly at: number,
  ) {
    super();
  }

  attach(task: TimerTask): void {
    if (this.dep === null) this.dep = task;
    else (this.deps ??= []).push(task);
  }

  onTimer(now: number): void {
    if (this.settled) return;
    this.settled = true;
    if (this.dep !== null) this.fireAttached(now);
    this.ex.reportTimeout();
    this.outer.onFailure(this.ex, this.expired(this.ex));
  }

  /** Innermost first: an inner policy settles (and passes its failure up to this race, which ignores it) before this race fails outward. */
  private fireAttached(now: number): void {
    const deps = this.deps;
    const first = this.dep!;
    this.dep = null;
    this.deps = null;
    if (deps !== null) for (let i = deps.length - 1; i >= 0; i--) fireQuietly(deps[i]!, now);
    fireQuietly(first, now);
  }

  onResult(ex: Exchange, v: R): void {
    if (this.settled) {
      discardLate(v);
      return;
    }
    this.settled = true;
    this.dep = null;
    this.deps = null;
    this.wheel.cancel(this);
    this.outer.onResult(ex, v);
  }

  onFailure(ex: Exchange, e: ProxyError): void {
    if (this.settled) return;
    this.settled = true;
    this.dep = null;
    this.deps = null;
    this.wheel.cancel(this);
    this.outer.onFailure(ex, e);
  }
}

function fireQuietly(t: TimerTask, now: number): void {
  try {
    t.onTimer(now);
  } catch {
    // One task's failure must not keep the race from failing the exchange.
  }
}

/**
 * Calls next(ex, ...) raced against `deadline` (0: no race, next gets h
 * itself). The caller checks that the deadline has not passed yet (it has
 * the time at hand; a clock read costs more than the rest of this); one
 * that has fires on the wheel's next tick.
 */
export function raceDispatch<R>(next: Dispatch<R>, ex: Exchange, h: ResultHandler<R>, deadline: number, expired: ExpiryError, wheel: TimerWheel = sharedTimerWheel): void {
  if (deadline <= 0) {
    next(ex, h);
    return;
  }
  const race = new DeadlineCall<R>(ex, h, expired, wheel, deadline);
  wheel.schedule(race, deadline);
  const prev = ex.deadlineWatch;
  ex.deadlineWatch = race;
  next(ex, race);
  ex.deadlineWatch = prev;
}
