/**
 * The one mapping from a Portway failure to an XML-RPC fault. Codes follow
 * the XML-RPC fault code interoperability convention (-32768..-32000), with
 * Portway's own failures in the transport band -32300..-32399; faultString
 * ends with the PW_ERR_ code. Application faults of an upstream (an XML-RPC
 * fault, an RpcFault from JSON or gRPC) pass through with their own codes.
 *
 *   -32700  parse error: not well-formed XML, or a DOCTYPE/entity declaration
 *   -32600  not a valid XML-RPC request (well-formed XML, wrong structure or value)
 *   -32601  method not found: no route for the method; an XML-RPC upstream answered HTTP 404
 *   -32602  invalid method parameters (system.* methods)
 *   -32603  internal error in Portway
 *   -32300  upstream transport error: cannot connect, connection reset, no usable endpoint, bad reply
 *   -32301  timeout: the upstream did not answer before the deadline
 *   -32302  rate limited (a rate_limit filter): the call was not made
 *   -32303  overloaded: circuit breaker open, limit reached, shutting down
 *   -32304  aborted by a fault filter (fault injection)
 *   -32305  forbidden by an access policy
 */
import { ErrorCode, type ProxyError } from '../../errors';

export const FaultCode = {
  Parse: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  Internal: -32603,
  Transport: -32300,
  Timeout: -32301,
  RateLimited: -32302,
  Overloaded: -32303,
  FaultInjected: -32304,
  Forbidden: -32305,
} as const;

export interface Fault {
  faultCode: number;
  faultString: string;
}

export function faultOf(err: ProxyError): Fault {
  let code: number;
  let text = err.message;
  switch (err.code) {
    case ErrorCode.Protocol:
      code = err.source === 'downstream' ? FaultCode.InvalidRequest : FaultCode.Transport;
      break;
    case ErrorCode.NoRoute:
      code = FaultCode.MethodNotFound;
      break;
    case ErrorCode.UpstreamConnect:
    case ErrorCode.ConnectTimeout:
    case ErrorCode.UpstreamReset:
    case ErrorCode.NoHealthyUpstream:
      code = FaultCode.Transport;
      break;
    case ErrorCode.Timeout:
      code = FaultCode.Timeout;
      break;
    case ErrorCode.RateLimited:
      code = FaultCode.RateLimited;
      text = `rate limit exceeded${err.retryAfterMs !== undefined ? `, retry in ${Math.ceil(err.retryAfterMs)} ms` : ''}`;
      break;
    case ErrorCode.CircuitOpen:
    case ErrorCode.Overflow:
    case ErrorCode.Draining:
      code = FaultCode.Overloaded;
      break;
    case ErrorCode.FaultAbort:
      code = FaultCode.FaultInjected;
      break;
    case ErrorCode.Forbidden:
      code = FaultCode.Forbidden;
      break;
    default:
      code = FaultCode.Internal;
      // An unexpected failure: its message may describe Portway's insides; keep it out of the reply.
      text = 'internal error';
  }
  return { faultCode: code, faultString: `${text.replace(/[\r\n]+/g, ' ')} (${err.code})` };
}
