/**
 * Prometheus text exposition, written by hand on purpose: the hot path must be
 * a plain field increment on an object resolved once (per listener, cluster or
 * endpoint), with no label hashing per request. Rendering happens only when
 * /metrics is scraped.
 */
export type Labels = Readonly<Record<string, string>>;

export class Counter {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

export class Gauge {
  value = 0;
  constructor(private readonly fn?: () => number) {}
  set(v: number): void {
    this.value = v;
  }
  inc(n = 1): void {
    this.value += n;
  }
  dec(n = 1): void {
    this.value -= n;
  }
  read(): number {
    return this.fn ? this.fn() : this.value;
  }
}

/** Cumulative histogram with fixed upper bounds (seconds for latencies). */
export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array(bounds.length).fill(0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

export const LATENCY_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Metric = Counter | Gauge | Histogram;
type Kind = 'counter' | 'gauge' | 'histogram';

interface Family {
  kind: Kind;
  help: string;
  series: Map<string, { labels: string; metric: Metric }>;
}

function labelText(labels: Labels | undefined): string {
  if (!labels) return '';
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  return keys.map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(',');
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function fmt(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

export class MetricsRegistry {
  private readonly families = new Map<string, Family>();

  private family(name: string, kind: Kind, help: string): Family {
    let f = this.families.get(name);
    if (!f) {
      f = { kind, help, series: new Map() };
      this.families.set(name, f);
    } else if (f.kind !== kind) {
      throw new Error(`metric ${name} registered as ${f.kind}, requested as ${kind}`);
    }
    return f;
  }

  private getOrCreate<M extends Metric>(name: string, kind: Kind, help: string, labels: Labels | undefined, make: () => M): M {
    const f = this.family(name, kind, help);
    const key = labelText(labels);
    const s = f.series.get(key);
    if (s) return s.metric as M;
    const metric = make();
    f.series.set(key, { labels: key, metric });
    return metric;
  }

  /** Returns the same Counter for the same name and labels, so counts survive config reloads. */
  counter(name: string, help: string, labels?: Labels): Counter {
    return this.getOrCreate(name, 'counter', help, labels, () => new Counter());
  }

  gauge(name: string, help: string, labels?: Labels, fn?: () => number): Gauge {
    if (fn) {
      // A callback gauge replaces an earlier one with the same labels (e.g. after a reload).
      const f = this.family(name, 'gauge', help);
      const g = new Gauge(fn);
      const key = labelText(labels);
      f.series.set(key, { labels: key, metric: g });
      return g;
    }
    return this.getOrCreate(name, 'gauge', help, labels, () => new Gauge());
  }

  /** A counter whose value is read from elsewhere at scrape time (e.g. process CPU time). */
  counterFn(name: string, help: string, labels: Labels | undefined, fn: () => number): void {
    const f = this.family(name, 'counter', help);
    const key = labelText(labels);
    f.series.set(key, { labels: key, metric: new Gauge(fn) });
  }

  histogram(name: string, help: string, labels?: Labels, bounds: readonly number[] = LATENCY_BUCKETS_SECONDS): Histogram {
    return this.getOrCreate(name, 'histogram', help, labels, () => new Histogram(bounds));
  }

  /** Drops one series (an endpoint that left the cluster). */
  remove(name: string, labels?: Labels): void {
    this.families.get(name)?.series.delete(labelText(labels));
  }

  render(): string {
    const out: string[] = [];
    for (const [name, f] of this.families) {
      if (f.series.size === 0) continue;
      out.push(`# HELP ${name} ${f.help}`);
      out.push(`# TYPE ${name} ${f.kind}`);
      for (const { labels, metric } of f.series.values()) {
        if (metric instanceof Histogram) {
          const sep = labels ? `${labels},` : '';
          let cum = 0;
          for (let i = 0; i < metric.bounds.length; i++) {
            cum += metric.counts[i]!;
            out.push(`${name}_bucket{${sep}le="${fmt(metric.bounds[i]!)}"} ${cum}`);
          }
          out.push(`${name}_bucket{${sep}le="+Inf"} ${metric.count}`);
          const l = labels ? `{${labels}}` : '';
          out.push(`${name}_sum${l} ${fmt(metric.sum)}`);
          out.push(`${name}_count${l} ${metric.count}`);
        } else {
          const v = metric instanceof Gauge ? metric.read() : metric.value;
          out.push(labels ? `${name}{${labels}} ${fmt(v)}` : `${name} ${fmt(v)}`);
        }
      }
    }
    return out.join('\n') + '\n';
  }
}
