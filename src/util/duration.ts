/** Durations in config are either integers (milliseconds) or strings such as "250ms", "5s", "2m", "1h". */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export const DURATION_PATTERN = '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$';
const DURATION_RE = new RegExp(DURATION_PATTERN);

export function parseDuration(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = DURATION_RE.exec(v);
  if (!m) throw new Error(`invalid duration '${v}'`);
  const unit = m[2]!;
  const n = Number(v.slice(0, v.length - unit.length));
  return Math.round(n * UNIT_MS[unit]!);
}
