/**
 * The XML-RPC upstream: calls go to a real XML-RPC server over HTTP (undici,
 * a keep-alive Pool per endpoint). A call the client sent is forwarded as the
 * very bytes it sent and the server's reply goes back as is; calls Portway
 * makes itself (system.multicall parts, system.listMethods) are encoded and
 * the reply decoded.
 *
 * HTTP 200: the body is the reply. HTTP 404: method not found (the npm
 * xmlrpc server answers an unknown method so, without a fault). Other
 * statuses: a transport failure (ProxyError, PW_ERR_PROTOCOL from upstream).
 */
import { ErrorCode, ProxyError } from '../../errors';
import type { EndpointPicker, RpcEndpoint } from '../../translate/endpoints';
import { DEFAULT_HTTP_POOL, HttpPools, type HttpPoolOptions } from '../../translate/http-pools';
import { RpcFault, type RpcCall, type RpcUpstream, type RpcValue } from '../../translate/rpc-upstream';
import { decodeMethodResponse, XmlRpcDecodeError } from './decode';
import { encodeMethodCall } from './encode';
import { FaultCode } from './faults';

export interface XmlRpcUpstreamOptions {
  /** Request path on the server; unset: the path the client used (own calls: /RPC2). */
  path?: string;
  pool?: Partial<HttpPoolOptions>;
}

export type ForwardResult = { ok: true; body: Buffer } | { ok: false; fault: RpcFault };

const HEADERS = { 'content-type': 'text/xml' };

export class XmlRpcUpstream<E extends RpcEndpoint = RpcEndpoint> implements RpcUpstream {
  readonly kind = 'xmlrpc';
  private readonly pools: HttpPools<E>;
  readonly path: string | null;

  constructor(target: EndpointPicker<E>, options: XmlRpcUpstreamOptions = {}) {
    this.pools = new HttpPools(target, { ...DEFAULT_HTTP_POOL, ...options.pool });
    this.path = options.path ?? null;
  }

  /** Sends a methodCall document as is; the reply document comes back as is. */
  async forward(body: string | Buffer, clientPath: string, deadline: number | undefined): Promise<ForwardResult> {
    const r = await this.pools.post(this.path ?? clientPath, HEADERS, body, deadline);
    if (r.status === 200) return { ok: true, body: r.body };
    if (r.status === 404) return { ok: false, fault: new RpcFault(FaultCode.MethodNotFound, 'method not found (the XML-RPC server answered HTTP 404)', { httpStatus: 404 }) };
    throw new ProxyError(ErrorCode.Protocol, `XML-RPC server ${r.endpoint.address} answered HTTP ${r.status}`, { source: 'upstream' });
  }

  async call(call: RpcCall, clientPath = '/RPC2'): Promise<RpcValue> {
    const name = call.service === '' ? call.method : `${call.service}.${call.method}`;
    const r = await this.forward(encodeMethodCall(name, call.args), clientPath, call.deadline);
    if (!r.ok) throw r.fault;
    let reply;
    try {
      reply = decodeMethodResponse(r.body.toString('utf8'));
    } catch (e) {
      if (e instanceof XmlRpcDecodeError) throw new ProxyError(ErrorCode.Protocol, `the XML-RPC server's reply is not a methodResponse: ${e.message}`, { source: 'upstream' });
      throw e;
    }
    if (!reply.ok) throw new RpcFault(reply.faultCode, reply.faultString);
    return reply.value;
  }

  close(): Promise<void> {
    return this.pools.close();
  }
}
