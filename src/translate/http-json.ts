/**
 * RpcUpstream over JSON-over-HTTP (undici, a keep-alive Pool per endpoint).
 *
 * A call service=S, method=M, args=[a, b] becomes
 *
 *   POST {base_path}/S/M            (or the path mapped for "S.M" in config)
 *   content-type: application/json
 *   [a, b]                          (args: array, the default)
 *   {...a}                          (args: object, when the one argument is a struct)
 *
 * The reply body (JSON) is the result. Values map as json-values.ts says.
 * A non-2xx reply is an RpcFault: when the body is {"faultCode": int,
 * "faultString": string} those two are used, else faultCode = the HTTP status
 * and faultString = "HTTP <status> <reason>" (the body itself is not passed
 * on: it may hold a stack trace). Transport failures are ProxyErrors
 * (http-pools.ts).
 */
import { STATUS_CODES } from 'node:http';
import { ErrorCode, ProxyError } from '../errors';
import type { EndpointPicker, RpcEndpoint } from './endpoints';
import { DEFAULT_HTTP_POOL, HttpPools, type HttpPoolOptions } from './http-pools';
import { DEFAULT_JSON_MAPPING, parseRpcValue, stringifyRpcValue, type JsonMapping } from './json-values';
import { RpcFault, type RpcCall, type RpcUpstream, type RpcValue } from './rpc-upstream';

export interface HttpJsonOptions {
  /** Prefix of every path, without a trailing slash ('' by default; e.g. '/api'). */
  basePath?: string;
  /** 'array' (default): the body is the JSON array of arguments. 'object': one struct argument is sent as the object itself (anything else still as an array). */
  args?: 'array' | 'object';
  /** Per "service.method" (the front's full method name): the path to POST to, replacing {base_path}/service/method. */
  paths?: Record<string, string>;
  /** Buffer as {"$base64": "..."} (tagged, default) or a bare base64 string. */
  bytes?: JsonMapping['bytes'];
  /** Turn ISO 8601 date-time strings of replies back into dates (default true). */
  reviveDates?: boolean;
  /** Extra request headers sent with every call. */
  headers?: Record<string, string>;
  pool?: Partial<HttpPoolOptions>;
}

export class HttpJsonUpstream<E extends RpcEndpoint = RpcEndpoint> implements RpcUpstream {
  readonly kind = 'http_json';
  private readonly pools: HttpPools<E>;
  private readonly basePath: string;
  private readonly argsAsObject: boolean;
  private readonly paths: ReadonlyMap<string, string>;
  private readonly mapping: JsonMapping;
  private readonly headers: Record<string, string>;
  /** Paths already worked out, by service and method (bounded: method names come from clients). */
  private readonly pathCache = new Map<string, string>();

  constructor(target: EndpointPicker<E>, options: HttpJsonOptions = {}) {
    this.pools = new HttpPools(target, { ...DEFAULT_HTTP_POOL, ...options.pool });
    this.basePath = (options.basePath ?? '').replace(/\/+$/, '');
    this.argsAsObject = options.args === 'object';
    this.paths = new Map(Object.entries(options.paths ?? {}));
    this.mapping = { bytes: options.bytes ?? DEFAULT_JSON_MAPPING.bytes, reviveDates: options.reviveDates ?? DEFAULT_JSON_MAPPING.reviveDates };
    this.headers = { 'content-type': 'application/json', accept: 'application/json', ...options.headers };
  }

  /** The path a call goes to. */
  pathOf(service: string, method: string): string {
    const key = `${service}\n${method}`;
    let p = this.pathCache.get(key);
    if (p === undefined) {
      p = this.pathFor(service, method);
      if (this.pathCache.size >= PATH_CACHE_SIZE) this.pathCache.clear();
      this.pathCache.set(key, p);
    }
    return p;
  }

  private pathFor(service: string, method: string): string {
    const full = service === '' ? method : `${service}.${method}`;
    const mapped = this.paths.get(full);
    if (mapped !== undefined) return mapped;
    return service === '' ? `${this.basePath}/${encodeURIComponent(method)}` : `${this.basePath}/${encodeURIComponent(service)}/${encodeURIComponent(method)}`;
  }

  /** Methods named in config (paths); the service itself cannot be asked. */
  knownMethods(): string[] {
    return [...this.paths.keys()];
  }

  async call(call: RpcCall): Promise<RpcValue> {
    const a = call.args;
    const one = a.length === 1 ? a[0] : undefined;
    const body =
      this.argsAsObject && one !== undefined && isStruct(one) ? stringifyRpcValue(one, this.mapping) : stringifyRpcValue(a, this.mapping);
    const headers = call.headers === undefined ? this.headers : { ...call.headers, ...this.headers };
    const r = await this.pools.post(this.pathOf(call.service, call.method), headers, body, call.deadline);
    const text = r.body.toString('utf8');
    if (r.status >= 200 && r.status < 300) {
      if (text.length === 0 || r.status === 204) return null;
      try {
        return parseRpcValue(text, this.mapping);
      } catch {
        throw new ProxyError(ErrorCode.Protocol, `${r.endpoint.address} answered ${r.status} with a body that is not JSON`, { source: 'upstream' });
      }
    }
    throw faultOf(r.status, text);
  }

  close(): Promise<void> {
    return this.pools.close();
  }
}

const PATH_CACHE_SIZE = 1024;

function isStruct(v: RpcValue): v is { [key: string]: RpcValue } {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v) && !(v instanceof Date);
}

function faultOf(status: number, text: string): RpcFault {
  if (text.length > 0 && text.length < 65536 && text.charCodeAt(0) === 123 /* { */) {
    try {
      const o = JSON.parse(text) as { faultCode?: unknown; faultString?: unknown };
      if (typeof o.faultCode === 'number' && Number.isInteger(o.faultCode) && typeof o.faultString === 'string') {
        return new RpcFault(o.faultCode, o.faultString, { httpStatus: status });
      }
    } catch {
      // Not a fault body: fall through to the status.
    }
  }
  return new RpcFault(status, `HTTP ${status} ${STATUS_CODES[status] ?? ''}`.trimEnd(), { httpStatus: status });
}
