/**
 * Random choices for SPOP, SRANDMEMBER and HRANDFIELD over dense slots.
 */

/**
 * k distinct slots out of 0..n-1 (all of them when k >= n), uniformly.
 * Small samples of large collections draw with rejection, costing O(k);
 * larger ones shuffle a slot array partially, costing O(n).
 */
export function pickDistinct(n: number, k: number): number[] {
  if (k >= n) {
    const all = new Array<number>(n);
    for (let i = 0; i < n; i++) all[i] = i;
    return all;
  }
  if (k * 4 < n) {
    const seen = new Set<number>();
    while (seen.size < k) seen.add(Math.floor(Math.random() * n));
    return [...seen];
  }
  const slots = new Array<number>(n);
  for (let i = 0; i < n; i++) slots[i] = i;
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(Math.random() * (n - i));
    const t = slots[i];
    slots[i] = slots[j];
    slots[j] = t;
  }
  slots.length = k;
  return slots;
}
