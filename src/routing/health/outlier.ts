/**
 * Ejection decisions for one cluster: passive (connect failures in a row)
 * and outlier detection (request errors in a row, or an error rate well above
 * the peers'). Both share the ejection bookkeeping on the Endpoint:
 *
 * - An ejection lasts base x level, capped at max_ejection_time, where level
 *   counts recent ejections: it grows by one per ejection and drops by one
 *   per `interval` the endpoint spends un-ejected, so a flapping endpoint is
 *   kept out longer and longer while one that recovered starts over.
 * - Outlier ejections never take more than max_ejection_percent of the
 *   endpoints out at once (one may always go when there are 2 or more);
 *   endpoints ejected for any reason count toward that limit. Passive
 *   ejections are not capped: a refused connect is unambiguous, and when every
 *   endpoint is out the cluster falls back to all of them (panic mode).
 *
 * Error rate (chosen over the success-rate standard deviation method because
 * it behaves with two or three endpoints, the common sidecar case): at the
 * end of each interval, every endpoint with at least min_requests outcomes
 * is compared with the mean error rate of its peers that also reached
 * min_requests; one whose rate exceeds that mean by more than threshold_percent
 * percentage points is ejected, worst first.
 *
 * Pure bookkeeping: the clock is passed in, no timers; the interval ends on
 * the first report after it is due.
 */
import type { OutlierConfig } from '../../config/types';
import type { Endpoint, EjectReason } from '../endpoint';

export interface PassiveSettings {
  consecutiveFailures: number;
  ejectionTimeMs: number;
}

/** Used when only passive ejection is configured. */
const DEFAULT_MAX_EJECTION_MS = 300_000;
const DEFAULT_DECAY_MS = 10_000;

export interface Ejection {
  endpoint: Endpoint;
  reason: EjectReason;
  forMs: number;
}

/** How many endpoints outlier detection may hold ejected at once. */
export function maxEjectable(total: number, percent: number): number {
  if (total < 2) return 0;
  return Math.max(1, Math.floor((total * percent) / 100));
}

/** The ejection time for the level-th recent ejection (level >= 1). */
export function ejectionDuration(level: number, baseMs: number, maxMs: number): number {
  return Math.min(baseMs * Math.max(1, level), Math.max(baseMs, maxMs));
}

/**
 * Endpoints whose error rate is more than thresholdPercent points above the
 * mean of their peers (each side needing minRequests outcomes), worst first.
 */
export function errorRateOutliers(
  stats: readonly { endpoint: Endpoint; ok: number; errors: number }[],
  minRequests: number,
  thresholdPercent: number,
): Endpoint[] {
  const judged = stats.filter((s) => s.ok + s.errors >= minRequests).map((s) => ({ endpoint: s.endpoint, rate: (100 * s.errors) / (s.ok + s.errors) }));
  if (judged.length < 2) return [];
  const sum = judged.reduce((a, s) => a + s.rate, 0);
  const out: { endpoint: Endpoint; rate: number }[] = [];
  for (const s of judged) {
    const peerMean = (sum - s.rate) / (judged.length - 1);
    if (s.rate - peerMean > thresholdPercent) out.push(s);
  }
  return out.sort((a, b) => b.rate - a.rate).map((s) => s.endpoint);
}

export class OutlierDetector {
  /** When the current error-rate interval ends (clock units: ms). */
  private windowEnd: number;

  constructor(
    private readonly outlier: OutlierConfig | null,
    private readonly passive: PassiveSettings,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.windowEnd = outlier ? clock() + outlier.intervalMs : Infinity;
  }

  get enabled(): boolean {
    return this.outlier !== null;
  }

  now(): number {
    return this.clock();
  }

  private get maxEjectionMs(): number {
    return this.outlier ? this.outlier.maxEjectionTimeMs : Math.max(this.passive.ejectionTimeMs, DEFAULT_MAX_EJECTION_MS);
  }

  private get decayMs(): number {
    return this.outlier ? Math.max(1, this.outlier.intervalMs) : DEFAULT_DECAY_MS;
  }

  /** Ejects ep now; returns how long for. */
  private eject(ep: Endpoint, reason: EjectReason, baseMs: number, now: number): number {
    if (ep.ejectionLevel > 0 && ep.lastEjectionEnd > 0) {
      const calm = Math.max(0, now - ep.lastEjectionEnd);
      ep.ejectionLevel = Math.max(0, ep.ejectionLevel - Math.floor(calm / this.decayMs));
    }
    ep.ejectionLevel++;
    const forMs = ejectionDuration(ep.ejectionLevel, baseMs, this.maxEjectionMs);
    ep.ejectedUntil = now + forMs;
    ep.lastEjectionEnd = ep.ejectedUntil;
    ep.ejectReason = reason;
    ep.ejections++;
    ep.countEjection(reason);
    return forMs;
  }

  /** A failed connect. Returns the ejection it caused, if any. */
  connectFailure(ep: Endpoint): Ejection | null {
    ep.consecutiveFailures++;
    const now = this.clock();
    if (ep.consecutiveFailures < this.passive.consecutiveFailures || ep.isEjectedOnly(now)) return null;
    return { endpoint: ep, reason: 'connect_failure', forMs: this.eject(ep, 'connect_failure', this.passive.ejectionTimeMs, now) };
  }

  /** A successful connect: clears the connect-failure streak and a connect-failure ejection (not an outlier one). Returns true when ep came back. */
  connectSuccess(ep: Endpoint): boolean {
    ep.consecutiveFailures = 0;
    if (ep.ejectedUntil !== 0 && ep.ejectReason === 'connect_failure') {
      ep.ejectedUntil = 0;
      ep.lastEjectionEnd = this.clock();
      ep.ejectReason = null;
      return true;
    }
    return false;
  }

  /** One request outcome at ep. Returns the ejections it caused (usually none). */
  result(ep: Endpoint, ok: boolean, endpoints: readonly Endpoint[]): Ejection[] | null {
    const o = this.outlier;
    if (o === null) return null;
    const now = this.clock();
    let out: Ejection[] | null = null;
    if (ok) {
      ep.windowOk++;
      ep.consecutiveErrors = 0;
    } else {
      ep.windowErrors++;
      ep.consecutiveErrors++;
      if (ep.consecutiveErrors >= o.consecutiveErrors && !ep.isEjectedOnly(now) && this.roomToEject(endpoints, now)) {
        ep.consecutiveErrors = 0;
        out = [{ endpoint: ep, reason: 'consecutive_errors', forMs: this.eject(ep, 'consecutive_errors', o.baseEjectionTimeMs, now) }];
      }
    }
    if (now >= this.windowEnd) {
      const more = this.endInterval(endpoints, now);
      if (more.length) out = out ? out.concat(more) : more;
    }
    return out;
  }

  /** Closes the error-rate interval: ejects the outliers (within the cap) and starts a new one. */
  endInterval(endpoints: readonly Endpoint[], now: number): Ejection[] {
    const o = this.outlier;
    if (o === null) return [];
    this.windowEnd = now + o.intervalMs;
    const out: Ejection[] = [];
    if (o.errorRate !== null) {
      const stats = endpoints.filter((e) => !e.isEjectedOnly(now)).map((e) => ({ endpoint: e, ok: e.windowOk, errors: e.windowErrors }));
      for (const ep of errorRateOutliers(stats, o.errorRate.minRequests, o.errorRate.thresholdPercent)) {
        if (!this.roomToEject(endpoints, now)) break;
        out.push({ endpoint: ep, reason: 'error_rate', forMs: this.eject(ep, 'error_rate', o.baseEjectionTimeMs, now) });
      }
    }
    for (const e of endpoints) {
      e.windowOk = 0;
      e.windowErrors = 0;
    }
    return out;
  }

  private roomToEject(endpoints: readonly Endpoint[], now: number): boolean {
    let ejected = 0;
    for (const e of endpoints) if (e.isEjectedOnly(now)) ejected++;
    return ejected < maxEjectable(endpoints.length, this.outlier?.maxEjectionPercent ?? 0);
  }
}
