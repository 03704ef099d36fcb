/**
 * The RESP codec of the Redis listener: one import for the session.
 *
 *   request-decoder  client -> proxy: multibulk and inline requests, with
 *                    redis-server 7.0's exact acceptance rules and errors
 *   reply-decoder    upstream -> proxy: frames RESP2/RESP3 replies as raw
 *                    byte ranges, without building values
 *   resp-value       full parse of a reply, RESP2 <-> RESP3 conversion
 *   resp-writer      encoding into slabs for corked, coalesced writes
 *
 * Wire grammar (RESP2 + RESP3): every element starts with a type byte and
 * ends its header with CRLF; "$"/"!"/"=" carry a length-prefixed payload
 * and "*"/"%"/"~"/">"/"|" a count of nested elements (pairs for "%", "|").
 */
export {
  RespCommand,
  RespRequestDecoder,
  splitInline,
  REDIS_INLINE_MAX_SIZE,
  REDIS_MAX_BULK_LENGTH,
  REDIS_MAX_MULTIBULK_LENGTH,
  REDIS_QUERY_BUFFER_LIMIT,
  type RequestDecoderOptions,
  type RequestHandler,
} from './request-decoder';
export { RespReplyDecoder, RespType, validScalar, type ReplyDecoderOptions, type ReplyHandler } from './reply-decoder';
export { RespProtocolError, type RespErrorKind, type RespReplyErrorKind, type RespRequestErrorKind } from './protocol-error';
export { parseRespInteger } from './frame-decoder';
export { commandName, internCommandNames, upperAscii } from './command-name';
export {
  parseReply,
  parseReplies,
  toResp2,
  toResp3,
  doubleText,
  readAggregateHeader,
  type AggregateHeader,
  type Resp3Shape,
  type RespValue,
  type RespPairs,
  type ToResp2Options,
} from './resp-value';
export {
  RespWriter,
  encodeCommand,
  encodeError,
  encodeValue,
  RESP_OK,
  RESP_PONG,
  RESP_QUEUED,
  RESP_NULL_BULK,
  RESP_NULL_ARRAY,
  RESP3_NULL,
  RESP_EMPTY_ARRAY,
  RESP_ZERO,
  RESP_ONE,
  type RespProtocolVersion,
} from './resp-writer';
