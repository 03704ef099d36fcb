/**
 * Merges the Prometheus text expositions of several worker processes into
 * one: the same series (name and labels) in every worker becomes one line
 * whose value is the sum (counters, histogram buckets/sums/counts, and
 * gauges such as open connections). A few process-wide gauges are not
 * additive: the config generation reads as the lowest any worker runs, the
 * start time as the earliest, build info as 1.
 */
const NOT_SUMMED: Readonly<Record<string, (a: number, b: number) => number>> = {
  portway_config_generation: Math.min,
  process_start_time_seconds: Math.min,
  portway_build_info: Math.max,
};

interface MergedFamily {
  header: string[];
  series: Map<string, number>;
  combine: ((a: number, b: number) => number) | null;
}

/** The family a series line belongs to: histograms' _bucket/_sum/_count lines belong to the histogram. */
function familyOf(name: string, families: Map<string, MergedFamily>): string {
  if (families.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix) && families.has(name.slice(0, -suffix.length))) return name.slice(0, -suffix.length);
  }
  return name;
}

export function mergeExpositions(texts: readonly string[]): string {
  const families = new Map<string, MergedFamily>();
  const get = (name: string): MergedFamily => {
    let f = families.get(name);
    if (!f) {
      f = { header: [], series: new Map(), combine: NOT_SUMMED[name] ?? null };
      families.set(name, f);
    }
    return f;
  };
  for (const text of texts) {
    for (const line of text.split('\n')) {
      if (line === '') continue;
      if (line.startsWith('#')) {
        const m = /^# (HELP|TYPE) (\S+)/.exec(line);
        if (!m) continue;
        const f = get(m[2]!);
        if (f.header.length < 2 && !f.header.some((h) => h.startsWith(`# ${m[1]} `))) f.header.push(line);
        continue;
      }
      // name{labels} value: label values may hold spaces, so the value is what follows the last space.
      const sp = line.lastIndexOf(' ');
      if (sp <= 0) continue;
      const key = line.slice(0, sp);
      const value = Number(line.slice(sp + 1).replace('+Inf', 'Infinity'));
      const brace = key.indexOf('{');
      const f = get(familyOf(brace === -1 ? key : key.slice(0, brace), families));
      const prev = f.series.get(key);
      f.series.set(key, prev === undefined ? value : f.combine ? f.combine(prev, value) : prev + value);
    }
  }
  const out: string[] = [];
  for (const f of families.values()) {
    if (f.series.size === 0) continue;
    out.push(...f.header);
    for (const [key, v] of f.series) out.push(`${key} ${Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v)}`);
  }
  return out.join('\n') + '\n';
}
