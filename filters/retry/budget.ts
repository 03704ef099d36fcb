/**
 * The retry budget: retries in flight to a cluster may be at most
 * budget_percent of the requests in flight to it, but always at least
 * min_retry_concurrency (so a quiet cluster can still retry). When most
 * requests fail, most retries are refused: retries cannot multiply the load
 * on an upstream that is already down.
 */
export function retryBudget(activeRequests: number, budgetPercent: number, minRetryConcurrency: number): number {
  return Math.max(minRetryConcurrency, Math.floor((activeRequests * budgetPercent) / 100));
}

/** True when one more retry fits the budget. */
export function retryFits(activeRequests: number, activeRetries: number, budgetPercent: number, minRetryConcurrency: number): boolean {
  return activeRetries < retryBudget(activeRequests, budgetPercent, minRetryConcurrency);
}
