/**
 * A clock read once per event-loop iteration. On this kind of machine a
 * performance.now() costs 100-200 ns (the clock source is not the vDSO's),
 * and the request path of a filter chain used to read it six or seven times
 * per request: more than everything else the chain does. Deadlines, token
 * refills, breaker windows and latency statistics only need the time the
 * request was read at, so the first read in an iteration takes the clock,
 * the rest of the iteration reuses it, and one setImmediate per iteration
 * (the check phase, not one per read) marks it stale. Envoy's dispatchers
 * keep their approximate time the same way.
 *
 * The value is never ahead of performance.now(); it lags by at most the
 * time the current iteration has run so far (every I/O callback of one poll
 * phase shares it). A deadline taken from it counts from the start of the
 * iteration that read the request, so it may fire that much earlier than a
 * deadline taken from a fresh clock: under load, a millisecond or two.
 *
 * An earlier version marked the clock stale after every callback with
 * queueMicrotask. In Node that call makes an AsyncResource and a bound
 * function each time, which cost more per request than the clock reads it
 * saved.
 */
let cached = 0;
let fresh = false;

function stale(): void {
  fresh = false;
}

/** performance.now() as of the first read in this event-loop iteration. */
export function turnNow(): number {
  if (fresh) return cached;
  cached = performance.now();
  fresh = true;
  setImmediate(stale);
  return cached;
}
