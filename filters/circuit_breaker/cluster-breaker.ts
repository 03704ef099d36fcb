/**
 * The circuit breaker of one cluster: the state machine (breaker.ts) plus
 * the cluster's limits, its queue of pending requests, its metrics and its
 * entry in GET /clusters. One per Cluster object (see state.ts), whichever
 * listeners and filters name it.
 *
 * Admission, in order:
 * 1. open (or half-open with every probe place taken): PW_ERR_CIRCUIT_OPEN,
 *    retryAfterMs = what is left of the open duration;
 * 2. max_connections: the cluster already has that many upstream connections
 *    open (cluster.cxActive, every listener counted): PW_ERR_OVERFLOW;
 * 3. max_requests: that many requests in flight through this breaker: wait
 *    in the pending queue if it has room (max_pending_requests, FIFO, until
 *    the request deadline), else PW_ERR_OVERFLOW.
 *
 * What counts: a call that settles with a value is a success (a Redis
 * "-ERR" reply included); a ProxyError from upstream (connect failure,
 * reset, timeout) is a failure; anything else (a limit of an inner policy, a
 * client gone) is neutral. A call still unanswered at the exchange deadline
 * fails with PW_ERR_TIMEOUT and counts as a failure then, so a hung upstream
 * opens the breaker even when nothing else notices.
 */
import type { Exchange } from '../../src/exchange';
import { dispatchOf, type Dispatch, type Invoke, type ResultHandler } from '../../src/filter';
import type { Counter, MetricsRegistry } from '../../src/metrics';
import type { Logger } from '../../src/logger';
import type { Cluster } from '../../src/routing/cluster';
import { ErrorCode, ProxyError, toProxyError } from '../../src/errors';
import { sharedTimerWheel, TimerTask, type TimerWheel } from '../../src/util/timer-wheel';
import { discardLate } from '../timeout/deadline';
import { turnNow } from '../../src/util/turn-clock';
import { BreakerMachine, FAILURE, HALF_OPEN, NEUTRAL, REJECTED, STATE_NAMES, SUCCESS, OPEN, type BreakerSettings, type BreakerStateValue, type Outcome } from './breaker';
import type { ClusterResilience } from './state';

export interface BreakerLimits {
  /** Infinity: no limit. */
  maxConnections: number;
  maxRequests: number;
  /** Requests that may wait for a place under maxRequests; 0: none wait. */
  maxPendingRequests: number;
  maxRetries: number;
}

export type CircuitBreakerSettings = BreakerSettings & BreakerLimits;

export const REJECT_REASONS = ['open', 'max_connections', 'max_requests', 'max_pending_requests', 'max_retries'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** A ProxyError that says something about the upstream's health. */
export function isUpstreamFailure(e: unknown): boolean {
  return e instanceof ProxyError && e.source === 'upstream' && e.code !== ErrorCode.CircuitOpen && e.code !== ErrorCode.Overflow;
}

const expired = (ex: Exchange): ProxyError =>
  new ProxyError(ErrorCode.Timeout, 'no answer before the request deadline', { source: 'upstream', retryable: ex.idempotent });

/** A request waiting for a place under max_requests; fires at its deadline. */
class Waiter extends TimerTask {
  constructor(
    readonly breaker: ClusterBreaker,
    readonly ex: Exchange,
    readonly next: Dispatch<unknown>,
    readonly h: ResultHandler<unknown>,
  ) {
    super();
  }
  onTimer(): void {
    this.breaker.dropWaiter(this);
  }
}

/**
 * One admitted request: the handler its call answers and, when it has a
 * deadline, the wheel task that fails it then (a hung upstream is a failure
 * even when nothing else notices). The first of the three wins.
 */
class BreakerCall<R> extends TimerTask implements ResultHandler<R> {
  settled = false;

  constructor(
    private readonly breaker: ClusterBreaker,
    private readonly ticket: number,
    readonly ex: Exchange,
    private readonly outer: ResultHandler<R>,
    private readonly wheel: TimerWheel,
  ) {
    super();
  }

  onTimer(): void {
    if (this.settled) return;
    this.settled = true;
    this.breaker.settle(this.ticket, FAILURE);
    this.ex.reportTimeout();
    this.outer.onFailure(this.ex, expired(this.ex));
  }

  onResult(ex: Exchange, v: R): void {
    if (this.settled) {
      discardLate(v);
      return;
    }
    this.settled = true;
    if (this.wheelBucket !== -1) this.wheel.cancel(this);
    this.breaker.settle(this.ticket, SUCCESS);
    this.outer.onResult(ex, v);
  }

  onFailure(ex: Exchange, e: ProxyError): void {
    if (this.settled) return;
    this.settled = true;
    if (this.wheelBucket !== -1) this.wheel.cancel(this);
    this.breaker.settle(this.ticket, isUpstreamFailure(e) ? FAILURE : NEUTRAL);
    this.outer.onFailure(ex, e);
  }
}

export class ClusterBreaker {
  readonly machine: BreakerMachine;
  /** Requests in flight through this breaker. */
  active = 0;
  private readonly queue: Waiter[] = [];
  private settings: CircuitBreakerSettings;
  /** Build order of the filter whose settings apply; -1 before any request. */
  private seq = -1;
  private readonly rejected: Record<RejectReason, Counter>;
  private readonly openedTotal: Counter;

  constructor(
    readonly cluster: Cluster,
    private readonly shared: ClusterResilience,
    settings: CircuitBreakerSettings,
    metrics: MetricsRegistry,
    private readonly log: Logger,
    private readonly clock: () => number = turnNow,
    private readonly wheel: TimerWheel = sharedTimerWheel,
  ) {
    this.settings = settings;
    this.machine = new BreakerMachine(settings, clock);
    const labels = { cluster: cluster.name };
    const help = 'Requests a circuit breaker refused, by reason (open, max_connections, max_requests, max_pending_requests, max_retries).';
    this.rejected = Object.fromEntries(
      REJECT_REASONS.map((r) => [r, metrics.counter('portway_circuit_rejected_total', help, { ...labels, reason: r })]),
    ) as Record<RejectReason, Counter>;
    this.openedTotal = metrics.counter('portway_circuit_opened_total', 'Times a circuit breaker opened.', labels);
    metrics.gauge('portway_circuit_state', 'Circuit breaker state: 0 closed, 1 open, 2 half-open.', labels, () => this.machine.refresh());
    metrics.gauge('portway_circuit_rq_active', 'Requests in flight through a circuit breaker.', labels, () => this.active);
    metrics.gauge('portway_circuit_rq_pending', 'Requests waiting for a place under max_requests.', labels, () => this.queue.length);
    metrics.gauge('portway_circuit_retries_active', 'Retries in flight to the cluster (limit: max_retries).', labels, () => this.shared.retries);
    this.machine.onChange = (from, to) => this.changed(from, to);
    shared.onRetryOverflow = () => this.rejected.max_retries.inc();
    cluster.reports.set('circuit_breaker', () => this.report());
  }

  /**
   * Takes the settings of the filter built `seq`-th when it is newer than the
   * one that applies. Done on a request, not at build time: a generation that
   * fails to build never changes the running breaker, and an old generation
   * still draining does not undo a newer one.
   */
  use(settings: CircuitBreakerSettings, seq: number): void {
    if (seq <= this.seq) return;
    this.seq = seq;
    this.settings = settings;
    this.machine.setSettings(settings);
    this.shared.maxRetries = settings.maxRetries;
  }

  /** Promise form (tests, promise-composed chains). */
  run<R>(ex: Exchange, next: Invoke<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.dispatch(ex, dispatchOf(next), { onResult: (_e, v) => resolve(v), onFailure: (_e, err) => reject(err) });
    });
  }

  /** Callback form: admits (or refuses, or queues) the request; one BreakerCall per admitted request. */
  dispatch<R>(ex: Exchange, next: Dispatch<R>, h: ResultHandler<R>): void {
    this.admit(ex, next, h, false);
  }

  private admit<R>(ex: Exchange, next: Dispatch<R>, h: ResultHandler<R>, fromQueue: boolean): void {
    const s = this.settings;
    const ticket = this.machine.acquire();
    if (ticket === REJECTED) {
      h.onFailure(ex, this.openError());
      return;
    }
    if (this.cluster.cxActive >= s.maxConnections) {
      this.machine.release(ticket, NEUTRAL);
      h.onFailure(ex, this.overflow('max_connections', `cluster '${this.cluster.name}' has ${this.cluster.cxActive} upstream connections open (circuit breaker max_connections ${s.maxConnections})`));
      return;
    }
    if (this.active >= s.maxRequests || (!fromQueue && this.queue.length > 0)) {
      this.machine.release(ticket, NEUTRAL);
      if (this.queue.length < s.maxPendingRequests) {
        this.enqueue(ex, next, h);
        return;
      }
      h.onFailure(
        ex,
        s.maxPendingRequests > 0
          ? this.overflow('max_pending_requests', `cluster '${this.cluster.name}': ${this.queue.length} requests already wait (circuit breaker max_pending_requests ${s.maxPendingRequests})`)
          : this.overflow('max_requests', `cluster '${this.cluster.name}' has ${this.active} requests in flight (circuit breaker max_requests ${s.maxRequests})`),
      );
      return;
    }
    this.active++;
    const deadline = ex.deadline;
    const call = new BreakerCall<R>(this, ticket, ex, h, this.wheel);
    if (deadline > 0) {
      if (deadline <= this.clock()) {
        call.onTimer();
        return;
      }
      // An outer race (a timeout filter, a retry try) fails the exchange at this very deadline: ride on its wheel entry.
      const w = ex.deadlineWatch;
      if (w !== null && w.at === deadline && w.wheel === this.wheel && !w.settled) w.attach(call);
      else this.wheel.schedule(call, deadline);
    }
    try {
      next(ex, call);
    } catch (e) {
      call.onFailure(ex, toProxyError(e));
    }
  }

  /** A call admitted with `ticket` ended. */
  settle(ticket: number, outcome: Outcome): void {
    this.active--;
    this.machine.release(ticket, outcome);
    if (this.queue.length > 0) this.drain();
  }

  private enqueue<R>(ex: Exchange, next: Dispatch<R>, h: ResultHandler<R>): void {
    const w = new Waiter(this, ex, next as Dispatch<unknown>, h as ResultHandler<unknown>);
    this.queue.push(w);
    if (ex.deadline > 0) this.wheel.schedule(w, ex.deadline);
  }

  /** Starts waiting requests while there is room. */
  private drain(): void {
    while (this.queue.length > 0 && this.active < this.settings.maxRequests) {
      const w = this.queue.shift()!;
      this.wheel.cancel(w);
      if (w.ex.deadline > 0 && w.ex.deadline <= this.clock()) {
        w.h.onFailure(w.ex, expired(w.ex));
        continue;
      }
      this.admit(w.ex, w.next, w.h, true);
    }
  }

  /** A waiter's deadline passed while it waited. */
  dropWaiter(w: Waiter): void {
    const i = this.queue.indexOf(w);
    if (i < 0) return;
    this.queue.splice(i, 1);
    w.h.onFailure(w.ex, expired(w.ex));
  }

  private openError(): ProxyError {
    this.rejected.open.inc();
    const left = Math.ceil(this.machine.retryAfterMs());
    const half = this.machine.state !== OPEN;
    return new ProxyError(
      ErrorCode.CircuitOpen,
      half ? `circuit breaker of cluster '${this.cluster.name}' is half-open and its probes are taken` : `circuit breaker of cluster '${this.cluster.name}' is open for ${left} ms more`,
      { source: 'upstream', ...(half ? {} : { retryAfterMs: left }) },
    );
  }

  private overflow(reason: RejectReason, message: string): ProxyError {
    this.rejected[reason].inc();
    return new ProxyError(ErrorCode.Overflow, message, { source: 'internal' });
  }

  private changed(from: BreakerStateValue, to: BreakerStateValue): void {
    const fields = { cluster: this.cluster.name, from: STATE_NAMES[from], to: STATE_NAMES[to] };
    if (to === OPEN) {
      this.openedTotal.inc();
      this.log.warn({ ...fields, open_ms: this.machine.openMs, consecutive_failures: this.machine.consecutive }, 'circuit breaker opened');
    } else this.log.info(fields, 'circuit breaker state changed');
  }

  /** What GET /clusters shows under circuit_breaker. */
  report(): Record<string, unknown> {
    const m = this.machine;
    const now = this.clock();
    const state = m.refresh(now);
    const s = this.settings;
    const limit = (n: number) => (Number.isFinite(n) ? n : null);
    return {
      state: STATE_NAMES[state],
      since_ms: Math.round(now - m.since),
      ...(state === OPEN ? { retry_in_ms: Math.ceil(m.retryAfterMs(now)), open_ms: m.openMs } : {}),
      ...(state === HALF_OPEN ? { probes_admitted: m.probesAdmitted, probes_succeeded: m.probeSuccesses, probes: s.halfOpenProbes } : {}),
      consecutive_failures: m.consecutive,
      window: m.windowCounts(now),
      opened: m.opened,
      rq_active: this.active,
      rq_pending: this.queue.length,
      retries_active: this.shared.retries,
      rejected: Object.fromEntries(REJECT_REASONS.map((r) => [r, this.rejected[r].value])),
      limits: {
        max_connections: limit(s.maxConnections),
        max_requests: limit(s.maxRequests),
        max_pending_requests: s.maxPendingRequests,
        max_retries: limit(s.maxRetries),
      },
    };
  }
}
