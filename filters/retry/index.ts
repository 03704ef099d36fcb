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
import type { AroundPolicy, FilterFactory, Invoke } from '../../src/filter';
import type { ConfigIssue } from '../../src/config/validate';
import type { Exchange } from '../../src/exchange';
import { Duration } from '../../src/config/schema';
import { ErrorCode, ProxyError, toProxyError } from '../../src/errors';
import { parseDuration } from '../../src/util/duration';
import { sharedTimerWheel, TimerTask, type TimerWheel } from '../../src/util/timer-wheel';
import { callNext, raceDeadline } from '../timeout/deadline';
import { resilienceOf, type ClusterResilience } from '../circuit_breaker/state';
import { fullJitterBackoff } from './backoff';
import { retryFits } from './budget';
import { RETRY_ON, mayRetry, retryMask, type RetryOn } from './retry-on';

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

/** A backoff wait on the timer wheel. */
class Sleep extends TimerTask {
  resolve: () => void = () => {};
  onTimer(): void {
    this.resolve();
  }
}

function sleep(wheel: TimerWheel, ms: number): Promise<void> {
  const s = new Sleep();
  return new Promise<void>((resolve) => {
    s.resolve = resolve;
    wheel.scheduleIn(s, ms);
  });
}

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

  async run<R>(ex: Exchange, next: Invoke<R>): Promise<R> {
    const shared: ClusterResilience | null = ex.cluster !== null ? resilienceOf(ex.cluster) : null;
    if (shared !== null) shared.requests++;
    let retrying = false;
    try {
      for (let retry = 0; ; retry++) {
        let err: ProxyError;
        try {
          const v = await this.attempt(ex, next);
          if (retry > 0) this.counters.recovered.inc();
          return v;
        } catch (e) {
          err = toProxyError(e);
        } finally {
          if (retrying && shared !== null) shared.retries--;
          retrying = false;
        }
        if (retry >= this.s.maxRetries || !mayRetry(err, ex.idempotent, this.mask)) throw err;
        const delay = fullJitterBackoff(retry + 1, this.s.backoffBaseMs, this.s.backoffMaxMs, this.random);
        if (ex.deadline > 0 && this.wheel.now() + delay >= ex.deadline) throw err;
        if (shared !== null) {
          if (shared.retries >= shared.maxRetries) {
            this.counters.overflow.inc();
            shared.onRetryOverflow?.();
            throw err;
          }
          if (!retryFits(shared.requests, shared.retries, this.s.budgetPercent, this.s.minRetryConcurrency)) {
            this.counters.budgetExhausted.inc();
            throw err;
          }
          shared.retries++;
        }
        retrying = true;
        this.counters.retries.inc();
        if (delay >= 1) await sleep(this.wheel, delay);
      }
    } finally {
      if (retrying && shared !== null) shared.retries--;
      if (shared !== null) shared.requests--;
    }
  }

  /** One try, under its own deadline when per_try_timeout is set. */
  private attempt<R>(ex: Exchange, next: Invoke<R>): Promise<R> {
    const perTry = this.s.perTryTimeoutMs;
    if (perTry <= 0) return callNext(next, ex);
    const overall = ex.deadline;
    const d = this.wheel.now() + perTry;
    if (overall !== 0 && overall <= d) return callNext(next, ex);
    // The inner chain reads the deadline as the try starts (the L4 connect, a circuit breaker): show it the try's own.
    ex.deadline = d;
    let call: Promise<R>;
    try {
      call = callNext(next, ex);
    } finally {
      ex.deadline = overall;
    }
    return raceDeadline(call, d, ex, this.perTryExpired, this.wheel);
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
    return {
      kind: 'around',
      name: ctx.name,
      wrap<R>(next: Invoke<R>): Invoke<R> {
        return (ex) => runner.run(ex, next);
      },
    };
  },
};
