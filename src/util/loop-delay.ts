/**
 * Event-loop delay on /metrics: how late the loop ran a 10 ms timer, the
 * usual way to see a proxy's own stalls (GC pauses, a long callback, CPU
 * starvation) behind a tail latency. Node's monitorEventLoopDelay keeps the
 * histogram in C++; every `windowMs` the figures of the window are kept and
 * the histogram starts again, so the gauges show the last full window (the
 * current one until a window has passed), not the whole life of the process.
 * Names as prom-client's default Node metrics, so dashboards made for them
 * work; unlike prom-client's, the figures are the delay alone (Node's
 * histogram includes the timer's own 10 ms period, which is taken off).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { MetricsRegistry } from '../metrics';

export interface LoopDelayFigures {
  /** Seconds. */
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** The monitor's timer period, ms. Node records the whole time between two runs of it, so this is taken off every figure. */
const RESOLUTION_MS = 10;

export class LoopDelayMonitor {
  private readonly h: IntervalHistogram;
  private readonly timer: NodeJS.Timeout;
  private last: LoopDelayFigures | null = null;

  constructor(metrics: MetricsRegistry, windowMs = 10_000) {
    this.h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.h.enable();
    this.timer = setInterval(() => {
      this.last = this.current();
      this.h.reset();
    }, windowMs);
    this.timer.unref();
    const help = (what: string) => `Event-loop delay ${what} over the last ${windowMs / 1000} s window, in seconds.`;
    metrics.gauge('nodejs_eventloop_lag_p50_seconds', help('median'), undefined, () => this.figures().p50);
    metrics.gauge('nodejs_eventloop_lag_p99_seconds', help('99th percentile'), undefined, () => this.figures().p99);
    metrics.gauge('nodejs_eventloop_lag_max_seconds', help('maximum'), undefined, () => this.figures().max);
    metrics.gauge('nodejs_eventloop_lag_mean_seconds', help('mean'), undefined, () => this.figures().mean);
  }

  /** The last full window's figures, or the current window's before one has passed. */
  figures(): LoopDelayFigures {
    return this.last ?? this.current();
  }

  private current(): LoopDelayFigures {
    const h = this.h;
    // The histogram is in nanoseconds; with no sample yet it reports NaN mean and huge min: show zeros.
    if (h.count === 0) return { p50: 0, p99: 0, max: 0, mean: 0 };
    const late = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS) / 1000;
    return { p50: late(h.percentile(50)), p99: late(h.percentile(99)), max: late(h.max), mean: late(h.mean) };
  }

  stop(): void {
    clearInterval(this.timer);
    this.h.disable();
  }
}
