/**
 * Which failures a retry may follow. Decided by the error's code, source and
 * retryable flag, never its text:
 * - connect-failure: an upstream error marked retryable, i.e. the request
 *   never reached the upstream (PW_ERR_UPSTREAM_CONNECT,
 *   PW_ERR_CONNECT_TIMEOUT, PW_ERR_NO_HEALTHY_UPSTREAM, a send on a link
 *   already down). Safe for any request.
 * - reset: PW_ERR_UPSTREAM_RESET after the request was sent. The upstream
 *   may have acted on it, so only idempotent requests.
 * - timeout: PW_ERR_TIMEOUT (a per-try timeout, or a deadline inside the
 *   retry). Only idempotent requests.
 * Refusals by a limit or an open breaker (PW_ERR_OVERFLOW,
 * PW_ERR_CIRCUIT_OPEN) are never retried: retrying them is the amplification
 * the limits exist to stop.
 */
import { ErrorCode, type ProxyError } from '../../src/errors';

export const RETRY_ON = ['connect-failure', 'reset', 'timeout'] as const;
export type RetryOn = (typeof RETRY_ON)[number];

export const CONNECT_FAILURE = 1;
export const RESET = 2;
export const TIMEOUT = 4;

export function retryMask(on: readonly RetryOn[]): number {
  let m = 0;
  for (const o of on) m |= o === 'connect-failure' ? CONNECT_FAILURE : o === 'reset' ? RESET : TIMEOUT;
  return m;
}

/** The class of a failure (one of the bits above), or 0 when it is never retried. */
export function failureClass(err: ProxyError): number {
  if (err.code === ErrorCode.CircuitOpen || err.code === ErrorCode.Overflow) return 0;
  if (err.code === ErrorCode.Timeout) return TIMEOUT;
  if (err.source !== 'upstream') return 0;
  if (err.retryable) return CONNECT_FAILURE;
  if (err.code === ErrorCode.UpstreamReset) return RESET;
  return 0;
}

/** True when `mask` allows retrying `err` for a request that is (or is not) idempotent. */
export function mayRetry(err: ProxyError, idempotent: boolean, mask: number): boolean {
  const c = failureClass(err);
  if ((c & mask) === 0) return false;
  return c === CONNECT_FAILURE || idempotent;
}
