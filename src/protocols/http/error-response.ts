/**
 * The one mapping from a ProxyError to an HTTP response: status, headers
 * (x-portway-error with the code, Retry-After for rejections that carry a
 * hint) and a small body (JSON or text) that never holds a stack trace or a
 * cause. Used for node:http responses and for raw sockets (errors before or
 * instead of a parsed request: bad request lines, failed upgrades).
 *
 *   PW_ERR_RATE_LIMITED            429 Too Many Requests (+ Retry-After)
 *   PW_ERR_CIRCUIT_OPEN, _OVERFLOW 503 Service Unavailable (+ Retry-After when known)
 *   PW_ERR_NO_HEALTHY_UPSTREAM     503
 *   PW_ERR_DRAINING                503
 *   PW_ERR_UPSTREAM_CONNECT        502 Bad Gateway
 *   PW_ERR_UPSTREAM_RESET          502
 *   PW_ERR_CONNECT_TIMEOUT         504 Gateway Timeout
 *   PW_ERR_TIMEOUT                 504
 *   PW_ERR_NO_ROUTE                404 Not Found
 *   PW_ERR_FORBIDDEN               403 Forbidden
 *   PW_ERR_PROTOCOL                400 Bad Request (431 / 413 / 405 / 501 by `status` hint)
 *   PW_ERR_IDLE_TIMEOUT            408 Request Timeout
 *   PW_ERR_FAULT_ABORT             503 (an injected failure)
 *   anything else                  500 Internal Server Error
 */
import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { ErrorCode, ProxyError } from '../../errors';

/** Marks a downstream ProxyError with the 4xx that fits it better than 400 (413, 431, 405, 501). */
export class HttpClientError extends ProxyError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(ErrorCode.Protocol, message, { source: 'downstream' });
  }
}

export function statusOf(err: ProxyError): number {
  switch (err.code) {
    case ErrorCode.RateLimited:
      return 429;
    case ErrorCode.CircuitOpen:
    case ErrorCode.Overflow:
    case ErrorCode.NoHealthyUpstream:
    case ErrorCode.Draining:
    case ErrorCode.FaultAbort:
      return 503;
    case ErrorCode.UpstreamConnect:
    case ErrorCode.UpstreamReset:
      return 502;
    case ErrorCode.ConnectTimeout:
    case ErrorCode.Timeout:
      return 504;
    case ErrorCode.NoRoute:
      return 404;
    case ErrorCode.Forbidden:
      return 403;
    case ErrorCode.Protocol:
      return err instanceof HttpClientError ? err.status : 400;
    case ErrorCode.IdleTimeout:
      return 408;
    default:
      return 500;
  }
}

export interface RenderedError {
  status: number;
  /** Flat [name, value, ...]. */
  headers: string[];
  body: Buffer;
}

/** The message shown to clients: one line, bounded, nothing but the error's own text. */
function publicMessage(err: ProxyError): string {
  const m = err.message.replace(/[\r\n]+/g, ' ');
  return m.length > 300 ? `${m.slice(0, 300)}...` : m;
}

export function renderError(err: ProxyError, format: 'json' | 'text'): RenderedError {
  const status = statusOf(err);
  const message = publicMessage(err);
  const body =
    format === 'json' ? Buffer.from(`${JSON.stringify({ error: err.code, message })}\n`) : Buffer.from(`${status} ${STATUS_CODES[status] ?? ''}: ${message} (${err.code})\n`);
  const headers = ['content-type', format === 'json' ? 'application/json' : 'text/plain; charset=utf-8', 'content-length', String(body.length), 'x-portway-error', err.code];
  if (err.retryAfterMs !== undefined && (status === 429 || status === 503)) headers.push('retry-after', String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))));
  return { status, headers, body };
}

/**
 * Answers on a node:http response that has sent nothing yet. `close` asks
 * the client to close the connection (the request body may be unread).
 * Returns false when headers were already sent (the caller destroys the socket).
 */
export function writeErrorResponse(res: ServerResponse, err: ProxyError, format: 'json' | 'text', close = false): boolean {
  if (res.headersSent) return false;
  const r = renderError(err, format);
  if (close) res.shouldKeepAlive = false;
  res.writeHead(r.status, r.headers);
  res.end(r.body);
  return true;
}

/** Answers on a raw socket (no node:http response exists) and closes it once written. */
export function writeErrorToSocket(socket: Socket, err: ProxyError, format: 'json' | 'text'): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const r = renderError(err, format);
  let head = `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}\r\nconnection: close\r\n`;
  for (let i = 0; i < r.headers.length; i += 2) head += `${r.headers[i]}: ${r.headers[i + 1]}\r\n`;
  socket.end(Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), r.body]));
  // A client that never reads must not keep the socket: end() is followed by destroy once flushed, or soon.
  socket.setTimeout(5000, () => socket.destroy());
}
