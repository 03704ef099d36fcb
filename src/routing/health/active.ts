/**
 * Active health checks for one cluster: one timer (unref'd) fires a round
 * every interval +/- jitter; a round probes every endpoint that has no probe
 * still running. unhealthy_threshold failures in a row mark an endpoint
 * unhealthy (the balancer skips it, as it skips ejected ones);
 * healthy_threshold successes in a row bring it back. Endpoints start
 * healthy, so a fresh cluster serves before its first round completes.
 */
import type { ActiveHealthConfig } from '../../config/types';
import type { Endpoint } from '../endpoint';
import type { HealthProbe } from './probe';

export interface ActiveCheckHooks {
  /** The current endpoint snapshot. */
  endpoints(): readonly Endpoint[];
  /** Called when an endpoint turns healthy or unhealthy. */
  changed(ep: Endpoint, healthy: boolean, reason: string | null): void;
  /** Called after every probe (for counters). */
  probed?(ep: Endpoint, ok: boolean): void;
}

export class ActiveHealthChecker {
  private timer: NodeJS.Timeout | null = null;
  private readonly running = new Set<Endpoint>();
  private stopped = false;

  constructor(
    private readonly cfg: ActiveHealthConfig,
    private readonly probe: HealthProbe,
    private readonly hooks: ActiveCheckHooks,
    private readonly rand: () => number = Math.random,
  ) {}

  /** Runs a first round now, then one every interval. */
  start(): void {
    this.stopped = false;
    this.round();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The next delay: interval lengthened or shortened by up to jitter of it. */
  nextDelay(): number {
    const j = this.cfg.jitter * this.cfg.intervalMs;
    return Math.max(1, Math.round(this.cfg.intervalMs + (this.rand() * 2 - 1) * j));
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.round();
      this.schedule();
    }, this.nextDelay());
    this.timer.unref();
  }

  private round(): void {
    for (const ep of this.hooks.endpoints()) {
      if (this.running.has(ep)) continue;
      this.running.add(ep);
      this.probe.check(ep, this.cfg.timeoutMs, this.cfg).then(
        () => this.record(ep, true, null),
        (err: Error) => this.record(ep, false, err.message),
      );
    }
  }

  /** Applies one probe outcome to the endpoint's streaks. Public for tests. */
  record(ep: Endpoint, ok: boolean, reason: string | null): void {
    this.running.delete(ep);
    if (this.stopped) return;
    ep.lastProbeAt = Date.now();
    this.hooks.probed?.(ep, ok);
    if (ok) {
      ep.probeFailStreak = 0;
      ep.probeOkStreak++;
      ep.lastProbeError = null;
      if (!ep.activeHealthy && ep.probeOkStreak >= this.cfg.healthyThreshold) {
        ep.activeHealthy = true;
        this.hooks.changed(ep, true, null);
      }
    } else {
      ep.probeOkStreak = 0;
      ep.probeFailStreak++;
      ep.lastProbeError = reason;
      if (ep.activeHealthy && ep.probeFailStreak >= this.cfg.unhealthyThreshold) {
        ep.activeHealthy = false;
        this.hooks.changed(ep, false, reason);
      }
    }
  }
}
