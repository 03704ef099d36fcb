import { ErrorCode, ProxyError, type ErrorSource } from '../../errors';

/**
 * Why a RESP stream could not be decoded. Request kinds mirror the checks of
 * redis-server 7.0 (networking.c processInlineBuffer / processMultibulkBuffer);
 * reply kinds are ours (redis-server never parses replies).
 */
/** Request errors: the message is redis-server's own text. */
export type RespRequestErrorKind =
  | 'invalid-multibulk-length'
  | 'invalid-bulk-length'
  | 'expected-dollar'
  | 'unbalanced-quotes'
  | 'too-big-inline-request'
  | 'too-big-mbulk-count-string'
  | 'too-big-bulk-count-string'
  | 'unauthenticated-multibulk-length'
  | 'unauthenticated-bulk-length'
  /** Only with `strictCrlf`: redis-server itself never checks these bytes. */
  | 'expected-crlf'
  /** The frame outgrew `maxFrameBytes`: redis closes such a client without a reply. */
  | 'query-buffer-limit';

/** Reply errors (upstream -> proxy): the upstream stream cannot be trusted any more. */
export type RespReplyErrorKind =
  | 'reply-invalid-type'
  | 'reply-invalid-length'
  | 'reply-expected-crlf'
  | 'reply-line-too-long'
  | 'reply-too-large'
  | 'reply-unexpected';

export type RespErrorKind = RespRequestErrorKind | RespReplyErrorKind;

/**
 * A framing error. For requests `message` is exactly what redis-server
 * answers after "-ERR " (e.g. "Protocol error: invalid bulk length"); the
 * caller writes `toReply()` and closes the connection, as redis does.
 */
export class RespProtocolError extends ProxyError {
  readonly kind: RespErrorKind;

  constructor(kind: RespErrorKind, message: string, source: ErrorSource) {
    super(ErrorCode.Protocol, message, { source, retryable: false });
    this.name = 'RespProtocolError';
    this.kind = kind;
  }

  /**
   * False when redis-server closes without answering (query buffer limit).
   * Otherwise it answers "-ERR <message>" and then closes.
   */
  get hasReply(): boolean {
    return this.kind !== 'query-buffer-limit';
  }

  /**
   * The error reply redis-server sends. latin1 keeps the one raw byte that
   * "expected '$', got 'x'" may carry (redis only turns CR and LF into spaces).
   */
  toReply(): Buffer {
    return Buffer.from(`-ERR ${this.message}\r\n`, 'latin1');
  }
}
