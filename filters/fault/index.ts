/**
 * fault: injects latency and failures into chosen requests, to test how
 * clients and the rest of the chain cope (Envoy's fault filter, for legacy
 * protocols). For L4 protocols a request is a whole connection.
 *
 * - delay: hold a request for a fixed time before it goes on. This is the
 *   only path that returns a promise. It never outlives the exchange
 *   deadline: when ex.deadline comes first, the request waits until the
 *   deadline and fails with PW_ERR_TIMEOUT.
 * - abort: answer locally with a chosen error code instead of calling the
 *   upstream. An injected fault stands in for an upstream failure, so its
 *   source is 'upstream'.
 *
 * Both apply to the share of matching requests given by `percentage`
 * (0-100), drawn with Math.random; 0 and 100 draw nothing, which is how a
 * test makes the filter deterministic. When both are chosen, the delay comes
 * first and the abort after it.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FilterFactory, LocalReply, PhaseFilter, Verdict } from '../../src/filter';
import type { ConfigIssue } from '../../src/config/validate';
import { Duration } from '../../src/config/schema';
import { ErrorCode, ProxyError, type ErrorCodeValue } from '../../src/errors';
import { parseDuration } from '../../src/util/duration';
import { RequestMatchSchema, checkRequestMatch, compileRequestMatch } from '../rate_limit/request-match';
import { sharedTimerWheel, TimerTask } from '../../src/util/timer-wheel';

const Percentage = (description: string) => Type.Optional(Type.Number({ minimum: 0, maximum: 100, default: 100, description }));

const FaultConfig = Type.Object(
  {
    match: Type.Optional(RequestMatchSchema),
    delay: Type.Optional(
      Type.Object(
        {
          duration: Duration('How long a chosen request is held before it goes on.'),
          percentage: Percentage('Share of matching requests delayed, 0-100.'),
        },
        { additionalProperties: false, description: 'Add latency to requests.' },
      ),
    ),
    abort: Type.Optional(
      Type.Object(
        {
          percentage: Percentage('Share of matching requests aborted, 0-100.'),
          code: Type.Optional(
            Type.Union(
              Object.values(ErrorCode).map((c) => Type.Literal(c)),
              { default: ErrorCode.FaultAbort, description: 'The error the client gets, as the protocol renders it (e.g. PW_ERR_UPSTREAM_RESET to look like a dropped upstream).' },
            ),
          ),
          message: Type.Optional(Type.String({ description: 'Error text, where the protocol shows one.' })),
        },
        { additionalProperties: false, description: 'Fail requests without calling the upstream.' },
      ),
    ),
  },
  { additionalProperties: false },
);

type FaultConfig = Static<typeof FaultConfig>;

const never = (): boolean => false;

/** Returns a test that is true for `pct` percent of calls; the fixed cases draw no random number. */
function chance(pct: number): () => boolean {
  if (pct >= 100) return () => true;
  if (pct <= 0) return never;
  return () => Math.random() * 100 < pct;
}

/** A delayed request waiting on the shared timer wheel (not a setTimeout per request). */
class Delay extends TimerTask {
  constructor(
    readonly until: number,
    readonly then: () => Verdict,
    readonly resolve: (v: Verdict) => void,
  ) {
    super();
  }
  onTimer(): void {
    this.resolve(this.then());
  }
}

export const faultFilter: FilterFactory<FaultConfig> = {
  type: 'fault',
  description: 'Injects delays and aborts into a share of the matching requests.',
  schema: FaultConfig,
  check(c): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    if (c.delay === undefined && c.abort === undefined) issues.push({ path: 'delay', message: 'give delay, abort or both (a fault filter with neither does nothing)' });
    issues.push(...checkRequestMatch(c.match));
    return issues;
  },
  create(config, ctx): PhaseFilter {
    const match = compileRequestMatch(config.match);
    const labels = { listener: ctx.listener.name, filter: ctx.name };
    const delayed = ctx.metrics.counter('portway_fault_delayed_total', 'Requests a fault filter delayed.', labels);
    const aborted = ctx.metrics.counter('portway_fault_aborted_total', 'Requests a fault filter aborted.', labels);
    const delayMs = config.delay ? parseDuration(config.delay.duration) : 0;
    const delayHit = delayMs > 0 ? chance(config.delay?.percentage ?? 100) : never;
    const abortHit = config.abort ? chance(config.abort.percentage ?? 100) : never;
    const code: ErrorCodeValue = config.abort?.code ?? ErrorCode.FaultAbort;
    // One reply for every abort: it carries nothing request-specific, and the data path allocates nothing for it.
    const abortReply: LocalReply = {
      error: new ProxyError(code, config.abort?.message ?? `fault injected by filter '${ctx.name}'`, { source: 'upstream' }),
    };
    const timeoutReply: LocalReply = {
      error: new ProxyError(ErrorCode.Timeout, `the request deadline passed during a ${delayMs} ms injected delay`, { source: 'upstream' }),
    };

    const abort = (): Verdict => {
      aborted.inc();
      return abortReply;
    };

    // Nothing can ever be injected (percentages 0): no onRequest, so the chain skips this filter entirely.
    if (delayHit === never && abortHit === never) return { kind: 'phase', name: ctx.name };

    return {
      kind: 'phase',
      name: ctx.name,
      onRequest(ex) {
        if (match !== null && !match(ex)) return undefined;
        const thenAbort = abortHit();
        if (!delayHit()) return thenAbort ? abort() : undefined;
        const now = performance.now();
        let until = now + delayMs;
        let cut = false;
        if (ex.deadline > 0) {
          if (ex.deadline <= now) return timeoutReply;
          if (ex.deadline < until) {
            until = ex.deadline;
            cut = true;
          }
        }
        delayed.inc();
        // The wheel never fires a task before its time (it rounds up to its 10 ms buckets).
        const then = cut ? () => timeoutReply : thenAbort ? abort : () => undefined;
        return new Promise<Verdict>((resolve) => sharedTimerWheel.schedule(new Delay(until, then, resolve), until));
      },
    };
  },
};
