/**
 * One error type for the whole proxy. Decisions (retry, which wire error to
 * send, which counter to bump) read `code`, never the message text.
 */
export type ErrorSource = 'downstream' | 'upstream' | 'internal';

export const ErrorCode = {
  /** No route matched the request. */
  NoRoute: 'PW_ERR_NO_ROUTE',
  /** The route's cluster has no endpoint that can be used. */
  NoHealthyUpstream: 'PW_ERR_NO_HEALTHY_UPSTREAM',
  /** Connecting to an upstream endpoint failed (refused, unreachable, reset). */
  UpstreamConnect: 'PW_ERR_UPSTREAM_CONNECT',
  /** Connecting to an upstream endpoint took longer than connect_timeout. */
  ConnectTimeout: 'PW_ERR_CONNECT_TIMEOUT',
  /** An established upstream connection failed mid-request. */
  UpstreamReset: 'PW_ERR_UPSTREAM_RESET',
  /** A cluster or listener limit was reached (connections, pending requests). */
  Overflow: 'PW_ERR_OVERFLOW',
  /** The request deadline passed. */
  Timeout: 'PW_ERR_TIMEOUT',
  /** The request was rejected by a rate limit. */
  RateLimited: 'PW_ERR_RATE_LIMITED',
  /** A circuit breaker is open. */
  CircuitOpen: 'PW_ERR_CIRCUIT_OPEN',
  /** A fault filter aborted the request on purpose. */
  FaultAbort: 'PW_ERR_FAULT_ABORT',
  /** The client sent bytes the protocol codec cannot accept. */
  Protocol: 'PW_ERR_PROTOCOL',
  /** The client went away (reset, broken pipe, closed early): an ordinary abort. */
  DownstreamClosed: 'PW_ERR_DOWNSTREAM_CLOSED',
  /** The connection was idle for longer than idle_timeout. */
  IdleTimeout: 'PW_ERR_IDLE_TIMEOUT',
  /** The request was refused by an access policy. */
  Forbidden: 'PW_ERR_FORBIDDEN',
  /** The proxy is shutting down. */
  Draining: 'PW_ERR_DRAINING',
  /** Sidecar mode: a connection's original destination is Portway's own listener (a direct connection or a redirect loop), or unknown; refused. */
  OriginalDstLoop: 'PW_ERR_ORIGINAL_DST_LOOP',
  /** Protocol detection (protocol: auto): the client sent nothing within detect_timeout, or bytes no known protocol starts with. */
  ProtocolUnknown: 'PW_ERR_PROTOCOL_UNKNOWN',
  /** A bug or an unexpected condition inside Portway. */
  Internal: 'PW_ERR_INTERNAL',
  /** A log component was asked to create a topic that exists. */
  TopicExists: 'PW_ERR_TOPIC_EXISTS',
  /** A topic name a log component cannot keep (empty, too long, characters outside [A-Za-z0-9._-], '.' or '..'). */
  InvalidTopic: 'PW_ERR_INVALID_TOPIC',
  /** A log component's storage failed (disk full, I/O error, closed log); Kafka's KAFKA_STORAGE_ERROR. */
  Storage: 'PW_ERR_STORAGE',
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export class ProxyError extends Error {
  readonly code: ErrorCodeValue;
  readonly source: ErrorSource;
  /** True when the request may be sent again without side effects (e.g. nothing reached the upstream). */
  readonly retryable: boolean;
  override readonly cause?: unknown;
  /** For rejections (rate limit, overload): when the client may try again, in ms. Protocols map it (HTTP Retry-After, Kafka throttle_time_ms). */
  readonly retryAfterMs?: number;

  constructor(code: ErrorCodeValue, message: string, opts: { source?: ErrorSource; retryable?: boolean; cause?: unknown; retryAfterMs?: number } = {}) {
    super(message);
    this.name = 'ProxyError';
    this.code = code;
    this.source = opts.source ?? 'internal';
    this.retryable = opts.retryable ?? false;
    if (opts.cause !== undefined) this.cause = opts.cause;
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, source: this.source, retryable: this.retryable, message: this.message, ...(this.retryAfterMs !== undefined ? { retry_after_ms: this.retryAfterMs } : {}) };
  }
}

export function isProxyError(e: unknown): e is ProxyError {
  return e instanceof ProxyError;
}

/** Wrap anything thrown into a ProxyError so callers handle one type. */
export function toProxyError(e: unknown, fallback: ErrorCodeValue = ErrorCode.Internal): ProxyError {
  if (e instanceof ProxyError) return e;
  const err = e as NodeJS.ErrnoException | undefined;
  const message = err && typeof err.message === 'string' ? err.message : String(e);
  return new ProxyError(fallback, message, { cause: e });
}
