/**
 * Protocol-neutral RPC calls, the meeting point of translation: a legacy
 * front (Bolt, XML-RPC) decodes a call into an RpcCall of plain values, an
 * RpcUpstream (JSON over HTTP, gRPC, ...) performs it, and the front encodes
 * the result or the fault in its own wire form.
 *
 * Values are the JSON-like model every mapping documents against:
 * null, boolean, number (int or double), bigint (64-bit integers that do not
 * fit a double), string, Buffer (bytes), Date, arrays, and plain objects
 * (structs/maps with string keys). A typed object from Hessian may carry its
 * class name under the key '$class'.
 */

export type RpcValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Buffer
  | Date
  | RpcValue[]
  | { [key: string]: RpcValue };

export interface RpcCall {
  /** Service (Bolt `service` header without version, XML-RPC method prefix, gRPC package.Service). */
  service: string;
  method: string;
  args: RpcValue[];
  /** Absolute deadline (Date.now() ms); the upstream call is abandoned after it. */
  deadline?: number;
  /** Headers to pass on (tracing, caller identity). */
  headers?: Record<string, string>;
}

/** A failure the remote side reported (not a transport failure). */
export class RpcFault extends Error {
  constructor(
    readonly faultCode: number,
    readonly faultString: string,
    /** Upstream-specific detail (gRPC status name, HTTP status ...). */
    readonly detail?: Record<string, unknown>,
  ) {
    super(faultString);
    this.name = 'RpcFault';
  }
}

export interface RpcUpstream {
  readonly kind: string;
  /**
   * Performs the call. Resolves with the result value; rejects with RpcFault
   * for an application fault, or ProxyError (src/errors.ts) for transport
   * failures (connect, timeout, protocol).
   */
  call(call: RpcCall): Promise<RpcValue>;
  close(): Promise<void>;
}
