/**
 * Bolt response status codes (com.alipay.remoting.ResponseStatus; the Node
 * implementation sofa-bolt-node has the first eleven) and the one mapping
 * from a ProxyError to a status.
 */
import { ErrorCode, type ProxyError } from '../../errors';

export const BoltStatus = {
  SUCCESS: 0x0000,
  ERROR: 0x0001,
  SERVER_EXCEPTION: 0x0002,
  UNKNOWN: 0x0003,
  SERVER_THREADPOOL_BUSY: 0x0004,
  ERROR_COMM: 0x0005,
  NO_PROCESSOR: 0x0006,
  TIMEOUT: 0x0007,
  CLIENT_SEND_ERROR: 0x0008,
  CODEC_EXCEPTION: 0x0009,
  CONNECTION_CLOSED: 0x0010,
  SERVER_SERIAL_EXCEPTION: 0x0011,
  SERVER_DESERIAL_EXCEPTION: 0x0012,
} as const;

/**
 * ProxyError code -> Bolt status. Rejections by a limit are "server busy"
 * (clients back off), a deadline is TIMEOUT, no route is NO_PROCESSOR (as a
 * server without the service), failures to reach or keep a provider are
 * communication errors, a payload Portway cannot read is a deserialization
 * error, and everything else a server exception.
 */
export function boltStatusOf(err: ProxyError): number {
  switch (err.code) {
    case ErrorCode.RateLimited:
    case ErrorCode.Overflow:
    case ErrorCode.CircuitOpen:
    case ErrorCode.Draining:
      return BoltStatus.SERVER_THREADPOOL_BUSY;
    case ErrorCode.Timeout:
      return BoltStatus.TIMEOUT;
    case ErrorCode.NoRoute:
      return BoltStatus.NO_PROCESSOR;
    case ErrorCode.NoHealthyUpstream:
    case ErrorCode.UpstreamConnect:
    case ErrorCode.ConnectTimeout:
      return BoltStatus.ERROR_COMM;
    case ErrorCode.UpstreamReset:
      return BoltStatus.CONNECTION_CLOSED;
    case ErrorCode.Protocol:
      return BoltStatus.SERVER_DESERIAL_EXCEPTION;
    default:
      return BoltStatus.SERVER_EXCEPTION;
  }
}
