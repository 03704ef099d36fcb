/**
 * timeout: a deadline for each request. The exchange deadline becomes
 * now + timeout unless an earlier one is already set (an outer timeout
 * keeps its say), then the upstream call is raced against it on the shared
 * timer wheel (10 ms buckets: a timeout fires between `timeout` and
 * `timeout` + 10 ms plus event-loop lag after the event-loop turn that read
 * the request; "now" is read once per turn, see src/util/turn-clock.ts).
 * Callback form: one DeadlineCall per request, no promise. A deadline that
 * wins counts as an error of the endpoint the try went to (outlier
 * detection), and an inner circuit breaker counts it as a failure.
 *
 * When the deadline passes first the call is abandoned (a late reply is
 * ignored; a late L4 connection is closed) and the request fails with
 * PW_ERR_TIMEOUT, source upstream, retryable only when the protocol marked
 * the request idempotent (a Redis read; never an L4 connection).
 *
 * The deadline also bounds what runs inside this filter: the L4 connect
 * (connect_timeout is cut to what is left), retries (no retry starts after
 * it), a circuit breaker (an unanswered call counts as a failure). Put
 * timeout first among the around-policies so it covers all of them.
 */
import { Type, type Static } from '@sinclair/typebox';
import { aroundPolicy, type AroundPolicy, type Dispatch, type FilterFactory } from '../../src/filter';
import type { ConfigIssue } from '../../src/config/validate';
import type { Exchange } from '../../src/exchange';
import { Duration } from '../../src/config/schema';
import { ErrorCode, ProxyError } from '../../src/errors';
import { parseDuration } from '../../src/util/duration';
import { raceDispatch } from './deadline';
import { turnNow } from '../../src/util/turn-clock';

const TimeoutConfig = Type.Object(
  {
    timeout: Duration('The longest a request may wait for its upstream (for L4: for the upstream connection), from when it reaches this filter.'),
  },
  { additionalProperties: false },
);

type TimeoutConfig = Static<typeof TimeoutConfig>;

export const timeoutFilter: FilterFactory<TimeoutConfig> = {
  type: 'timeout',
  description: 'Fails a request with PW_ERR_TIMEOUT when its upstream has not answered within `timeout`.',
  schema: TimeoutConfig,
  check(c): ConfigIssue[] {
    return parseDuration(c.timeout) > 0 ? [] : [{ path: 'timeout', message: 'must be greater than 0' }];
  },
  create(config, ctx): AroundPolicy {
    const timeoutMs = parseDuration(config.timeout);
    const labels = { listener: ctx.listener.name, filter: ctx.name };
    const timedOut = ctx.metrics.counter('portway_timeout_total', 'Requests a timeout filter failed because their deadline passed first.', labels);
    const expired = (ex: Exchange): ProxyError => {
      timedOut.inc();
      return new ProxyError(ErrorCode.Timeout, `no answer within ${timeoutMs} ms`, { source: 'upstream', retryable: ex.idempotent });
    };
    // Callback form: one DeadlineCall per request (the wheel task and the handler in one object), no promise.
    return aroundPolicy(
      ctx.name,
      <R>(next: Dispatch<R>): Dispatch<R> =>
        (ex, h) => {
          const now = turnNow();
          const d = now + timeoutMs;
          if (ex.deadline === 0 || d < ex.deadline) ex.deadline = d;
          // An earlier deadline set outside may already have passed: then nothing is sent.
          else if (ex.deadline <= now) {
            h.onFailure(ex, expired(ex));
            return;
          }
          raceDispatch(next, ex, h, ex.deadline, expired);
        },
    );
  },
};
