/**
 * A clock read once per event-loop turn. On this kind of machine a
 * performance.now() costs 100-200 ns (the clock source is not the vDSO's),
 * and the request path of a filter chain used to read it six or seven times
 * per request: more than everything else the chain does. Deadlines, token
 * refills and breaker windows only need the time the request was read at,
 * so the first read in a turn takes the clock and the rest of the turn
 * reuses it; one setImmediate per turn (not per read) marks it stale.
 *
 * The value is never ahead of performance.now(); it lags by at most the
 * time the current turn has run so far. A deadline taken from it counts from
 * the start of the turn that read the request, so it may fire that much
 * earlier than a deadline taken from a fresh clock.
 */
let cached = 0;
let fresh = false;

function stale(): void {
  fresh = false;
}

/** performance.now() as of the first read in this event-loop turn. */
export function turnNow(): number {
  if (fresh) return cached;
  cached = performance.now();
  fresh = true;
  queueMicrotask(stale);
  return cached;
}

let loopCached = 0;
let loopFresh = false;

function loopStale(): void {
  loopFresh = false;
}

/**
 * performance.now() as of the first read in this event-loop iteration:
 * every I/O callback of one poll phase (at pipeline 1, one per client read)
 * shares one clock read, and the check phase marks it stale. Coarser than
 * turnNow(): it lags by up to the time the iteration has run so far, so it
 * is meant for statistics (latency histograms), never for deadlines.
 */
export function loopNow(): number {
  if (loopFresh) return loopCached;
  loopCached = performance.now();
  loopFresh = true;
  setImmediate(loopStale);
  return loopCached;
}
