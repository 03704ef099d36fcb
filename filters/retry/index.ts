/**
 * retry: sends a failed request again, by calling the rest of the chain
 * again (the protocol's terminal picks an endpoint anew: for L4 another
 * connect, for Redis another send; passive health has usually ejected the
 * endpoint that failed).
 *
 * - retry_on (retry-on.ts) says which failures; reset and timeout are only
 *   ever retried for requests the protocol marked idempotent.
 * - Between tries: full-jitter exponential backoff (backoff.ts) on the shared
 *   timer wheel, so waits are rounded up to its 10 ms buckets.
 * - per_try_timeout: each try gets its own deadline (at most the request's);
 *   the inner chain sees it as ex.deadline while the try starts, so an L4
 *   connect and an inner circuit breaker respect it too. A try that runs out
 *   fails with PW_ERR_TIMEOUT (retried only for idempotent requests).
 * - No retry starts once the request deadline (from a timeout filter) would
 *   pass during its backoff.
 * - Budget (budget.ts): retries in flight to a cluster stay under
 *   budget_percent of its requests in flight (at least
 *   min_retry_concurrency), and under a circuit breaker's max_retries for the
 *   cluster. A retry refused there is counted and the last failure returned.
 *
 * When every try failed the client gets the last failure.
 */
import { Type, type Static } from '@sinclair/typebox';
import { aroundPolicy, dispatchOf, type AroundPolicy, type Dispatch, type FilterFactory, type Invoke, type ResultHandler } from '../../src/filter';
import type { ConfigIssue } from '../../src/config/validate';
import type { Exchange } from '../../src/exchange';
import { Duration } from '../../src/config/schema';
import { ErrorCode, ProxyError } from '../../src/errors';
import { parseDuration } from '../../src/util/duration';
import { sharedTimerWheel, TimerTask, type TimerWheel } from '../../src/util/timer-wheel';
import { raceDispatch } from '../timeout/deadline';
import { resilienceOf, type ClusterResilience } from '../circuit_breaker/state';
import type { Cluster } from '../../src/routing/cluster';
import { fullJitterBackoff } from './backoff';
import { retryFits } from './budget';
import { CONNECT_FAILURE, RETRY_ON, mayRetry, retryMask, type RetryOn } from './retry-on';

const RetryConfig = Type.Object(
  {
    max_retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10, default: 1, description: 'Retries after the first try (so at most max_retries + 1 tries).' })),
    per_try_timeout: Type.Optional(Duration('Deadline of each try (never beyond the request deadline). Not set: a try may use all the time the request has.')),
    backoff: Type.Optional(
      Type.Object(
        {
          base: Type.Optional(Duration('Backoff before the first retry is drawn from [0, base); each further retry doubles the range.', '25ms')),
          max: Type.Optional(Duration('The range never grows beyond this.', '250ms')),
        },
        { additionalProperties: false, description: 'Exponential backoff with full jitter between tries.' },
      ),
    ),
    retry_on: Type.Optional(
      Type.Array(Type.Union(RETRY_ON.map((r) => Type.Literal(r))), {
        minItems: 1,
        uniqueItems: true,
        default: [...RETRY_ON],
        description:
          'Failures that are retried: connect-failure (the request never reached the upstream; any request), reset (the upstream connection broke after the request was sent; idempotent requests only), timeout (a try ran out of time; idempotent requests only).',
      }),
    ),
    budget_percent: Type.Optional(
      Type.Number({ minimum: 0, maximum: 100, default: 20, description: 'Retries in flight to a cluster may be at most this percentage of the requests in flight to it.' }),
    ),
    min_retry_concurrency: Type.Optional(
      Type.Integer({ minimum: 0, default: 3, description: 'Retries in flight always allowed, whatever budget_percent gives (so a quiet cluster can retry).' }),
    ),
  },
  { additionalProperties: false },
);

type RetryConfig = Static<typeof RetryConfig>;

export interface RetrySettings {
  maxRetries: number;
  perTryTimeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  retryOn: readonly RetryOn[];
  budgetPercent: number;
  minRetryConcurrency: number;
}

export function retrySettings(c: RetryConfig): RetrySettings {
  return {
    maxRetries: c.max_retries ?? 1,
    perTryTimeoutMs: c.per_try_timeout !== undefined ? parseDuration(c.per_try_timeout) : 0,
    backoffBaseMs: parseDuration(c.backoff?.base ?? '25ms'),
    backoffMaxMs: parseDuration(c.backoff?.max ?? '250ms'),
    retryOn: c.retry_on ?? [...RETRY_ON],
    budgetPercent: c.budget_percent ?? 20,
    minRetryConcurrency: c.min_retry_concurrency ?? 3,
  };
}

export interface RetryCounters {
  /** Retries sent. */
  retries: { inc(): void };
  /** Retries not made because the budget was spent. */
  budgetExhausted: { inc(): void };
  /** Retries not made because of the circuit breaker's max_retries. */
  overflow: { inc(): void };
  /** Requests that failed at first and succeeded on a retry. */
  recovered: { inc(): void };
}

/** The retry loop of one filter instance; random and wheel are injectable for tests. */
export class RetryRunner {
  private readonly mask: number;
  private lastCluster: Cluster | null = null;
  private lastShared: ClusterResilience | null = null;
  private readonly perTryExpired: (ex: Exchange) => ProxyError;

  constructor(
    private readonly s: RetrySettings,
    private readonly counters: RetryCounters,
    private readonly random: () => number = Math.random,
    private readonly wheel: TimerWheel = sharedTimerWheel,
  ) {
    this.mask = retryMask(s.retryOn);
    this.perTryExpired = (ex) =>
      new ProxyError(ErrorCode.Timeout, `no answer within per_try_timeout (${s.perTryTimeoutMs} ms)`, { source: 'upstream', retryable: ex.idempotent });
  }

  /** Promise form (tests, promise-composed chains). */
  run<R>(ex: Exchange, next: Invoke<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.dispatch(ex, dispatchOf(next), { onResult: (_e, v) => resolve(v), onFailure: (_e, err) => reject(err) });
    });
  }

  /**
   * Callback form: one RetryCall per request (the handler of every try and
   * the backoff's wheel task). A request no failure could be retried for
   * (not idempotent, and connect failures not in retry_on) goes straight
   * through.
   */
  dispatch<R>(ex: Exchange, next: Dispatch<R>, h: ResultHandler<R>): void {
    if (this.s.maxRetries === 0 || (!ex.idempotent && (this.mask & CONNECT_FAILURE) === 0)) {
      next(ex, h);
      return;
    }
    const cluster = ex.cluster;
    let shared: ClusterResilience | null = null;
    if (cluster !== null) {
      // Most chains send to one cluster: remember the last one rather than look it up per request.
      if (cluster !== this.lastCluster) {
        this.lastCluster = cluster;
        this.lastShared = resilienceOf(cluster);
      }
      shared = this.lastShared;
      shared!.requests++;
    }
    new RetryCall(this, ex, next, h, shared).attempt();
  }

  /** After a failed try: true when another is made (the caller then waits for it), false when err is final. */
  decide(call: RetryCall<unknown>, err: ProxyError): boolean {
    const ex = call.ex;
    const shared = call.shared;
    if (call.retry >= this.s.maxRetries || !mayRetry(err, ex.idempotent, this.mask)) return false;
    const delay = fullJitterBackoff(call.retry + 1, this.s.backoffBaseMs, this.s.backoffMaxMs, this.random);
    if (ex.deadline > 0 && this.wheel.now() + delay >= ex.deadline) return false;
    if (shared !== null) {
      if (shared.retries >= shared.maxRetries) {
        this.counters.overflow.inc();
        shared.onRetryOverflow?.();
        return false;
      }
      if (!retryFits(shared.requests, shared.retries, this.s.budgetPercent, this.s.minRetryConcurrency)) {
        this.counters.budgetExhausted.inc();
        return false;
      }
      shared.retries++;
    }
    call.retry++;
    call.retrying = true;
    this.counters.retries.inc();
    // The failed try's endpoint is no longer the request's: a deadline passing during the backoff blames none.
    ex.endpoint = null;
    if (delay >= 1) this.wheel.scheduleIn(call, delay);
    else call.attempt();
    return true;
  }

  /** One try, under its own deadline when per_try_timeout is set. */
  tryOnce<R>(call: RetryCall<R>): void {
    const ex = call.ex;
    const perTry = this.s.perTryTimeoutMs;
    if (perTry <= 0) {
      call.next(ex, call);
      return;
    }
    const overall = ex.deadline;
    const d = this.wheel.now() + perTry;
    if (overall !== 0 && overall <= d) {
      call.next(ex, call);
      return;
    }
    // The inner chain reads the deadline as the try starts (the L4 connect, a circuit breaker): show it the try's own.
    ex.deadline = d;
    try {
      raceDispatch(call.next, ex, call, d, this.perTryExpired, this.wheel);
    } finally {
      ex.deadline = overall;
    }
  }

  recovered(): void {
    this.counters.recovered.inc();
  }
}

/**
 * One request through a retry filter: the handler of each try (a per-try
 * deadline, when set, is a DeadlineCall in front of it, which drops a late
 * answer of an abandoned try) and the wheel task of the backoff.
 */
class RetryCall<R> extends TimerTask implements ResultHandler<R> {
  retry = 0;
  /** A retry is in flight (counted in shared.retries). */
  retrying = false;

  constructor(
    private readonly runner: RetryRunner,
    readonly ex: Exchange,
    readonly next: Dispatch<R>,
    private readonly outer: ResultHandler<R>,
    readonly shared: ClusterResilience | null,
  ) {
    super();
  }

  attempt(): void {
    this.runner.tryOnce(this);
  }

  /** The backoff is over. */
  onTimer(): void {
    this.attempt();
  }

  private tryEnded(): void {
    if (this.retrying && this.shared !== null) this.shared.retries--;
    this.retrying = false;
  }

  onResult(ex: Exchange, v: R): void {
    this.tryEnded();
    if (this.retry > 0) this.runner.recovered();
    if (this.shared !== null) this.shared.requests--;
    this.outer.onResult(ex, v);
  }

  onFailure(ex: Exchange, err: ProxyError): void {
    this.tryEnded();
    if (this.runner.decide(this as RetryCall<unknown>, err)) return;
    if (this.shared !== null) this.shared.requests--;
    this.outer.onFailure(ex, err);
  }
}

function check(c: RetryConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (c.per_try_timeout !== undefined && parseDuration(c.per_try_timeout) <= 0) issues.push({ path: 'per_try_timeout', message: 'must be greater than 0' });
  const base = parseDuration(c.backoff?.base ?? '25ms');
  const max = parseDuration(c.backoff?.max ?? '250ms');
  if (max < base) issues.push({ path: 'backoff.max', message: `must not be shorter than backoff.base (${base} ms)` });
  return issues;
}

export const retryFilter: FilterFactory<RetryConfig> = {
  type: 'retry',
  description: 'Retries failed requests (connect failures; resets and timeouts of idempotent requests) with jittered backoff, within a retry budget.',
  schema: RetryConfig,
  check: (c) => check(c),
  create(config, ctx): AroundPolicy {
    const labels = { listener: ctx.listener.name, filter: ctx.name };
    const m = ctx.metrics;
    const runner = new RetryRunner(retrySettings(config), {
      retries: m.counter('portway_retry_total', 'Retries sent (tries after the first).', labels),
      budgetExhausted: m.counter('portway_retry_budget_exhausted_total', 'Retries not made because the retry budget of the cluster was spent.', labels),
      overflow: m.counter('portway_retry_overflow_total', "Retries not made because of the cluster circuit breaker's max_retries.", labels),
      recovered: m.counter('portway_retry_recovered_total', 'Requests that failed at first and succeeded on a retry.', labels),
    });
    return aroundPolicy(ctx.name, <R>(next: Dispatch<R>): Dispatch<R> => (ex, h) => runner.dispatch(ex, next, h));
  },
};
