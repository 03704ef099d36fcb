import type { Counter, MetricsRegistry } from '../metrics';
import { formatHostPort } from '../util/address';

/** Why an endpoint is ejected: passive connect failures, or outlier detection. */
export type EjectReason = 'connect_failure' | 'consecutive_errors' | 'error_rate';
export const EJECT_REASONS: readonly EjectReason[] = ['connect_failure', 'consecutive_errors', 'error_rate'];

/** One upstream address with its health and counters. Counters are plain fields, read by the admin API. */
export class Endpoint {
  /** ip:port as connected to. */
  readonly address: string;
  /** Active connections (L4) or pooled connections (L7) open to it. */
  cxActive = 0;
  /** Requests (L4: connections) in flight; read by least_request. */
  rqActive = 0;
  consecutiveFailures = 0;
  /** performance.now() until which the endpoint is skipped; 0 when healthy. */
  ejectedUntil = 0;
  /** Times ejected, for any reason, since the endpoint appeared. */
  ejections = 0;
  /** Why the current (or last) ejection happened; null when none or cleared by a successful connect. */
  ejectReason: EjectReason | null = null;
  /** Multiplier of the ejection time: recent ejections, decaying while the endpoint stays in (see health/outlier.ts). */
  ejectionLevel = 0;
  /** When the last ejection ended or will end (performance.now() clock). */
  lastEjectionEnd = 0;
  /** Outlier detection: request errors in a row, and outcomes in the current interval. */
  consecutiveErrors = 0;
  windowOk = 0;
  windowErrors = 0;
  /** Active health checks: false once unhealthy_threshold probes failed in a row. */
  activeHealthy = true;
  probeOkStreak = 0;
  probeFailStreak = 0;
  lastProbeError: string | null = null;
  /** Date.now() of the last probe result; 0 before any. */
  lastProbeAt = 0;
  /** Smooth weighted round robin state. */
  lbCurrent = 0;
  readonly cxTotal: Counter;
  readonly cxConnectFail: Counter;
  readonly rqTotal: Counter;
  readonly rqError: Counter;

  constructor(
    readonly cluster: string,
    readonly host: string,
    readonly port: number,
    readonly weight: number,
    /** The name written in config (a host name, or the address itself). */
    readonly configured: string,
    private readonly metrics: MetricsRegistry,
    /** Labels from discovery (version, zone ...); empty for static endpoints. */
    readonly metadata: Readonly<Record<string, string>> = {},
  ) {
    this.address = formatHostPort(host, port);
    const labels = { cluster, endpoint: this.address };
    this.cxTotal = metrics.counter('portway_upstream_cx_total', 'Upstream connections opened, per endpoint.', labels);
    this.cxConnectFail = metrics.counter('portway_upstream_cx_connect_fail_total', 'Upstream connect attempts that failed or timed out, per endpoint.', labels);
    this.rqTotal = metrics.counter('portway_upstream_rq_total', 'Requests (L4: connections) sent to an endpoint.', labels);
    this.rqError = metrics.counter('portway_upstream_rq_error_total', 'Requests (L4: connections) that failed at an endpoint.', labels);
    metrics.gauge('portway_upstream_health', 'Endpoint health: 1 healthy, 0 ejected or failing active health checks.', labels, () => (this.health() === 'healthy' ? 1 : 0));
  }

  /** unhealthy (active checks) wins over ejected (passive or outlier). */
  health(now = performance.now()): 'healthy' | 'unhealthy' | 'ejected' {
    if (!this.activeHealthy) return 'unhealthy';
    return this.ejectedUntil > now ? 'ejected' : 'healthy';
  }

  /** Counted on every ejection (rare, so the series is looked up then). */
  countEjection(reason: EjectReason): void {
    this.metrics.counter('portway_upstream_ejections_total', 'Endpoint ejections, by reason (connect_failure, consecutive_errors, error_rate).', { cluster: this.cluster, endpoint: this.address, reason }).inc();
  }

  /**
   * True while the balancer skips the endpoint: ejected (passive or outlier
   * detection) or failing active health checks. Callers that keep an endpoint
   * (sticky sessions) test this to know when to pick again.
   */
  isEjected(now: number): boolean {
    return this.ejectedUntil > now || !this.activeHealthy;
  }

  /** isEjected(performance.now()), reading the clock only when an ejection time is set (a hot path's common case reads none). */
  isEjectedNow(): boolean {
    return !this.activeHealthy || (this.ejectedUntil > 0 && this.ejectedUntil > performance.now());
  }

  /** Ejected by passive or outlier detection (active health aside). */
  isEjectedOnly(now: number): boolean {
    return this.ejectedUntil > now;
  }

  toJSON(now = performance.now()): Record<string, unknown> {
    return {
      address: this.address,
      configured: this.configured,
      weight: this.weight,
      metadata: Object.keys(this.metadata).length ? this.metadata : undefined,
      health: this.health(now),
      reason: !this.activeHealthy ? `active health check failed: ${this.lastProbeError ?? 'unknown'}` : this.ejectedUntil > now ? this.ejectReason : undefined,
      ejected_for_ms: this.ejectedUntil > now ? Math.round(this.ejectedUntil - now) : 0,
      ejections: this.ejections,
      consecutive_failures: this.consecutiveFailures,
      consecutive_errors: this.consecutiveErrors,
      active_check: this.lastProbeAt
        ? { healthy: this.activeHealthy, ok_streak: this.probeOkStreak, fail_streak: this.probeFailStreak, last_error: this.lastProbeError, last_at: new Date(this.lastProbeAt).toISOString() }
        : undefined,
      cx_active: this.cxActive,
      cx_total: this.cxTotal.value,
      cx_connect_fail: this.cxConnectFail.value,
      rq_active: this.rqActive,
      rq_total: this.rqTotal.value,
      rq_error: this.rqError.value,
    };
  }
}
