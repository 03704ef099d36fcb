import type { Counter, MetricsRegistry } from '../metrics';
import { formatHostPort } from '../util/address';

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
  ejections = 0;
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
    metrics: MetricsRegistry,
    /** Labels from discovery (version, zone ...); empty for static endpoints. */
    readonly metadata: Readonly<Record<string, string>> = {},
  ) {
    this.address = formatHostPort(host, port);
    const labels = { cluster, endpoint: this.address };
    this.cxTotal = metrics.counter('portway_upstream_cx_total', 'Upstream connections opened, per endpoint.', labels);
    this.cxConnectFail = metrics.counter('portway_upstream_cx_connect_fail_total', 'Upstream connect attempts that failed or timed out, per endpoint.', labels);
    this.rqTotal = metrics.counter('portway_upstream_rq_total', 'Requests (L4: connections) sent to an endpoint.', labels);
    this.rqError = metrics.counter('portway_upstream_rq_error_total', 'Requests (L4: connections) that failed at an endpoint.', labels);
  }

  isEjected(now: number): boolean {
    return this.ejectedUntil > now;
  }

  toJSON(now = performance.now()): Record<string, unknown> {
    return {
      address: this.address,
      configured: this.configured,
      weight: this.weight,
      metadata: Object.keys(this.metadata).length ? this.metadata : undefined,
      health: this.isEjected(now) ? 'ejected' : 'healthy',
      ejected_for_ms: this.isEjected(now) ? Math.round(this.ejectedUntil - now) : 0,
      ejections: this.ejections,
      consecutive_failures: this.consecutiveFailures,
      cx_active: this.cxActive,
      cx_total: this.cxTotal.value,
      cx_connect_fail: this.cxConnectFail.value,
      rq_active: this.rqActive,
      rq_total: this.rqTotal.value,
      rq_error: this.rqError.value,
    };
  }
}
