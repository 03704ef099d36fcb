/**
 * Exponential backoff with full jitter: the n-th retry waits a uniform draw
 * in [0, min(max, base * 2^(n-1))). Spreading retries over the whole range
 * (rather than around the exponential value) is what keeps many clients that
 * failed together from retrying together.
 */
export function fullJitterBackoff(retry: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  if (retry < 1 || baseMs <= 0) return 0;
  // 2^(n-1) overflows nothing below n = 1024; the cap applies long before.
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(retry - 1, 52));
  return random() * ceiling;
}
