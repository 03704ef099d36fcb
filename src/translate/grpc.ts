/**
 * RpcUpstream over gRPC (@grpc/grpc-js, messages described by a .proto file
 * loaded with @grpc/proto-loader). Unary calls only.
 *
 * Method mapping (config): the front's full method name "service.method" ->
 * "package.Service/Method" (`methods`), or a whole front service -> a gRPC
 * service (`services`: the method is found by name, case-insensitively, so
 * `billing.charge` reaches billing.v1.Billing/Charge). Failing both, a front
 * service that is itself a fully qualified gRPC service name is used as is.
 *
 * Arguments -> request message (`args`):
 *   auto (default)  one struct argument is the whole message (unless the
 *                   request's only field is itself a struct); otherwise the
 *                   arguments fill the request's fields in declaration order
 *   message         the one argument must be a struct: the whole message
 *   [f1, f2, ...]   positional arguments fill these fields
 * Reply -> result: the reply message as a struct, or one of its fields
 * (`result_field`).
 *
 * Values (proto-loader options: keepCase, longs String, enums String, bytes
 * Buffer, defaults true):
 *   int32/uint32/sint32/fixed32/sfixed32, float, double  <->  number
 *   int64 family   -> bigint (longs: string, the default) or number (longs: number);
 *                     from number, bigint or a decimal string
 *   bool <-> boolean, string <-> string, enum -> its name (from a name or a number)
 *   bytes          <-> Buffer (a base64 string is accepted too)
 *   google.protobuf.Timestamp <-> Date (millisecond precision)
 *   message        <-> struct; repeated <-> array; map<string, V> <-> struct
 *   an unset message field or unset proto3 `optional` field -> null; null in a request leaves the field unset
 * Unknown fields or values of the wrong type in a request: RpcFault 3 (INVALID_ARGUMENT), nothing sent.
 *
 * Failures: a gRPC status is an RpcFault (faultCode = the status number,
 * faultString = details, detail.grpcStatus = its name), except
 * UNAVAILABLE (ProxyError PW_ERR_UPSTREAM_CONNECT, retryable, when no
 * connection could be made, else PW_ERR_UPSTREAM_RESET) and DEADLINE_EXCEEDED
 * once the call's own deadline passed (PW_ERR_TIMEOUT).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ErrorCode, ProxyError } from '../errors';
import type { EndpointPicker, RpcEndpoint } from './endpoints';
import { RpcFault, type RpcCall, type RpcUpstream, type RpcValue } from './rpc-upstream';

export interface GrpcMethodMapping {
  /** "package.Service/Method". */
  rpc: string;
  /** How arguments make the request message: 'auto' (default), 'message', or the field names for positional arguments. */
  args?: 'auto' | 'message' | string[];
  /** Return this field of the reply instead of the whole reply message. */
  resultField?: string;
}

export interface GrpcUpstreamOptions {
  /** .proto files (resolved against includeDirs and the working directory). */
  protoFiles: string[];
  includeDirs?: string[];
  /** 64-bit integers in replies: 'string' (default) gives exact bigints, 'number' gives numbers (precision lost beyond 2^53). */
  longs?: 'string' | 'number';
  /** Per front "service.method". */
  methods?: Record<string, GrpcMethodMapping>;
  /** Per front service: the gRPC "package.Service" whose methods it reaches by name. */
  services?: Record<string, string>;
  /** Largest message either way (bytes). */
  maxMessageBytes?: number;
}

type Field = { name: string; label: string; type: string; typeName: string };
type MessageDescriptor = { name: string; field: Field[]; nestedType?: MessageDescriptor[]; options?: { mapEntry?: boolean } | null };

interface MessageInfo {
  fullName: string;
  fields: Map<string, FieldInfo>;
  order: FieldInfo[];
}

interface FieldInfo {
  name: string;
  repeated: boolean;
  type: string;
  /** For TYPE_MESSAGE (not a map): the message. */
  message?: MessageInfo;
  timestamp?: boolean;
  /** For map fields: the value field. */
  mapValue?: FieldInfo;
}

interface ResolvedMethod {
  path: string;
  front: string;
  def: protoLoader.MethodDefinition<object, object>;
  request: MessageInfo;
  reply: MessageInfo;
  args: 'auto' | 'message' | string[];
  resultField: string | null;
}

const LONG_TYPES = new Set(['TYPE_INT64', 'TYPE_UINT64', 'TYPE_SINT64', 'TYPE_FIXED64', 'TYPE_SFIXED64']);
const INT32_TYPES = new Set(['TYPE_INT32', 'TYPE_UINT32', 'TYPE_SINT32', 'TYPE_FIXED32', 'TYPE_SFIXED32']);
const FALLBACK_TIMEOUT_MS = 300_000;

export class GrpcUpstream<E extends RpcEndpoint = RpcEndpoint> implements RpcUpstream {
  readonly kind = 'grpc';
  private readonly pkg: protoLoader.PackageDefinition;
  private readonly messages = new Map<string, MessageInfo>();
  /** "package.Service" -> lowercased method name -> its definition. */
  private readonly services = new Map<string, Map<string, { name: string; def: protoLoader.MethodDefinition<object, object> }>>();
  private readonly byFront = new Map<string, ResolvedMethod>();
  private readonly frontServices: ReadonlyMap<string, string>;
  private readonly clients = new Map<string, grpc.Client>();
  private readonly longsAsBigint: boolean;
  private readonly channelOptions: grpc.ChannelOptions;
  private closed = false;

  constructor(
    private readonly target: EndpointPicker<E>,
    options: GrpcUpstreamOptions,
  ) {
    this.longsAsBigint = (options.longs ?? 'string') === 'string';
    this.pkg = protoLoader.loadSync(options.protoFiles, {
      keepCase: true,
      longs: String,
      enums: String,
      bytes: Buffer,
      defaults: true,
      oneofs: false,
      ...(options.includeDirs !== undefined && options.includeDirs.length > 0 ? { includeDirs: options.includeDirs } : {}),
    });
    for (const [name, v] of Object.entries(this.pkg)) {
      if ('format' in v && v.format === 'Protocol Buffer 3 DescriptorProto') continue;
      if (!('format' in v)) {
        const methods = new Map<string, { name: string; def: protoLoader.MethodDefinition<object, object> }>();
        for (const [m, def] of Object.entries(v as protoLoader.ServiceDefinition)) methods.set(m.toLowerCase(), { name: m, def });
        this.services.set(name, methods);
      }
    }
    const max = options.maxMessageBytes ?? 16 << 20;
    this.channelOptions = { 'grpc.max_receive_message_length': max, 'grpc.max_send_message_length': max };
    this.frontServices = new Map(Object.entries(options.services ?? {}));
    for (const [svc, full] of this.frontServices) {
      if (!this.services.has(full)) throw new Error(`services.${svc}: no gRPC service '${full}' in the .proto (known: ${[...this.services.keys()].join(', ')})`);
    }
    for (const [front, m] of Object.entries(options.methods ?? {})) {
      const slash = m.rpc.lastIndexOf('/');
      const svc = this.services.get(m.rpc.slice(0, slash));
      const found = slash > 0 ? svc?.get(m.rpc.slice(slash + 1).toLowerCase()) : undefined;
      if (found === undefined) throw new Error(`methods.${front}: no gRPC method '${m.rpc}' in the .proto`);
      const r = this.resolved(front, found.def, m.args ?? 'auto', m.resultField ?? null);
      if (r.resultField !== null && !r.reply.fields.has(r.resultField)) throw new Error(`methods.${front}: the reply ${r.reply.fullName} has no field '${r.resultField}'`);
      if (Array.isArray(r.args)) {
        for (const f of r.args) if (!r.request.fields.has(f)) throw new Error(`methods.${front}: the request ${r.request.fullName} has no field '${f}'`);
      }
      this.byFront.set(front, r);
    }
  }

  private resolved(front: string, def: protoLoader.MethodDefinition<object, object>, args: ResolvedMethod['args'], resultField: string | null): ResolvedMethod {
    if (def.requestStream || def.responseStream) throw new Error(`${def.path}: only unary methods can be called`);
    return { path: def.path, front, def, request: this.messageOf(def.requestType), reply: this.messageOf(def.responseType), args, resultField };
  }

  private messageOf(t: protoLoader.MessageTypeDefinition<object, object>): MessageInfo {
    const d = t.type as unknown as MessageDescriptor;
    // proto-loader gives the method's types as copies: find the entry by name, and by content when names repeat.
    const named = Object.keys(this.pkg).filter((k) => k === d.name || k.endsWith(`.${d.name}`));
    let full = named[0] ?? d.name;
    if (named.length > 1) {
      const want = JSON.stringify(d);
      full = named.find((k) => JSON.stringify((this.pkg[k] as protoLoader.MessageTypeDefinition<object, object>).type) === want) ?? full;
    }
    return this.message(full);
  }

  /** Field info of a message, built once (recursive types share the object). */
  private message(fullName: string): MessageInfo {
    const known = this.messages.get(fullName);
    if (known !== undefined) return known;
    const def = this.pkg[fullName] as protoLoader.MessageTypeDefinition<object, object> | undefined;
    if (def === undefined) throw new Error(`message type '${fullName}' not found in the .proto`);
    const d = def.type as unknown as MessageDescriptor;
    const info: MessageInfo = { fullName, fields: new Map(), order: [] };
    this.messages.set(fullName, info);
    for (const f of d.field) {
      const fi = this.fieldInfo(f, fullName, d);
      info.fields.set(f.name, fi);
      info.order.push(fi);
    }
    return info;
  }

  private fieldInfo(f: Field, scope: string, d: MessageDescriptor): FieldInfo {
    const fi: FieldInfo = { name: f.name, repeated: f.label === 'LABEL_REPEATED', type: f.type };
    if (f.type !== 'TYPE_MESSAGE') return fi;
    const entry = d.nestedType?.find((n) => n.name === f.typeName && n.options?.mapEntry === true);
    if (entry !== undefined) {
      fi.repeated = false;
      fi.mapValue = this.fieldInfo(entry.field[1]!, `${scope}.${entry.name}`, entry);
      return fi;
    }
    const full = this.resolveType(f.typeName, scope);
    if (full === 'google.protobuf.Timestamp') fi.timestamp = true;
    else fi.message = this.message(full);
    return fi;
  }

  /** Protobuf scoping: a relative type name is looked up from the innermost scope outwards. */
  private resolveType(name: string, scope: string): string {
    const n = name.startsWith('.') ? name.slice(1) : name;
    if (n in this.pkg) return n;
    const parts = scope.split('.');
    for (let i = parts.length; i >= 0; i--) {
      const c = [...parts.slice(0, i), n].join('.');
      if (c in this.pkg) return c;
    }
    throw new Error(`type '${name}' (in ${scope}) not found in the .proto`);
  }

  /** The gRPC method of a front call, or null. */
  private methodOf(service: string, method: string): ResolvedMethod | null {
    const front = service === '' ? method : `${service}.${method}`;
    const known = this.byFront.get(front);
    if (known !== undefined) return known;
    const svc = this.frontServices.get(service) ?? (this.services.has(service) ? service : undefined);
    if (svc === undefined) return null;
    const m = this.services.get(svc)!.get(method.toLowerCase());
    if (m === undefined) return null;
    const r = this.resolved(front, m.def, 'auto', null);
    if (this.byFront.size < 10_000) this.byFront.set(front, r);
    return r;
  }

  /** Front method names this upstream can serve (from config and the .proto). */
  knownMethods(): string[] {
    const out = new Set<string>(this.byFront.keys());
    for (const [front, svc] of this.frontServices) for (const m of this.services.get(svc)!.values()) out.add(`${front}.${m.name}`);
    return [...out];
  }

  /** One line for system.methodHelp. */
  describe(service: string, method: string): string | null {
    const m = this.methodOf(service, method);
    if (m === null) return null;
    const args = Array.isArray(m.args) ? m.args : m.request.order.map((f) => f.name);
    return `gRPC ${m.path.slice(1)}: arguments (${args.join(', ')}) or one struct ${m.request.fullName}; returns ${m.resultField !== null ? `${m.reply.fullName}.${m.resultField}` : m.reply.fullName}`;
  }

  private client(ep: E): grpc.Client {
    let c = this.clients.get(ep.address);
    if (c === undefined) {
      c = new grpc.Client(ep.address, grpc.credentials.createInsecure(), this.channelOptions);
      this.clients.set(ep.address, c);
    }
    return c;
  }

  call(call: RpcCall): Promise<RpcValue> {
    if (this.closed) return Promise.reject(new ProxyError(ErrorCode.Draining, 'upstream is closed', { source: 'internal', retryable: true }));
    const m = this.methodOf(call.service, call.method);
    if (m === null) {
      const front = call.service === '' ? call.method : `${call.service}.${call.method}`;
      return Promise.reject(new RpcFault(grpc.status.UNIMPLEMENTED, `no gRPC method is mapped to '${front}'`, { grpcStatus: 'UNIMPLEMENTED' }));
    }
    let request: Record<string, unknown>;
    try {
      request = this.requestOf(m, call.args);
    } catch (e) {
      return Promise.reject(e);
    }
    const ep = this.target.pick(null);
    if (ep === null) return Promise.reject(new ProxyError(ErrorCode.NoHealthyUpstream, `cluster '${this.target.name}' has no usable endpoint`, { source: 'upstream', retryable: true }));
    const deadline = call.deadline ?? Date.now() + FALLBACK_TIMEOUT_MS;
    if (deadline <= Date.now()) return Promise.reject(new ProxyError(ErrorCode.Timeout, 'deadline passed before the call was sent', { source: 'upstream', retryable: true }));
    const md = new grpc.Metadata();
    if (call.headers !== undefined) {
      for (const [k, v] of Object.entries(call.headers)) {
        try {
          md.set(k.toLowerCase(), v);
        } catch {
          // A header gRPC cannot carry (reserved or invalid name) is left out.
        }
      }
    }
    ep.rqTotal?.inc();
    if (ep.rqActive !== undefined) ep.rqActive++;
    return new Promise<RpcValue>((resolve, reject) => {
      this.client(ep).makeUnaryRequest(
        m.path,
        m.def.requestSerialize as (v: object) => Buffer,
        m.def.responseDeserialize as (b: Buffer) => object,
        request,
        md,
        { deadline: new Date(deadline) },
        (err: grpc.ServiceError | null, reply?: object) => {
          if (ep.rqActive !== undefined) ep.rqActive--;
          if (err === null) {
            this.target.reportResult?.(ep, true);
            try {
              const v = this.fromMessage(m.reply, (reply ?? {}) as Record<string, unknown>);
              resolve(m.resultField !== null ? ((v as Record<string, RpcValue>)[m.resultField] ?? null) : v);
            } catch (e) {
              reject(new ProxyError(ErrorCode.Protocol, `cannot map the reply of ${m.path}: ${(e as Error).message}`, { source: 'upstream', cause: e }));
            }
            return;
          }
          const fail = this.failure(err, ep, deadline);
          if (fail instanceof ProxyError) {
            ep.rqError?.inc();
            this.target.reportResult?.(ep, false);
          } else this.target.reportResult?.(ep, true);
          reject(fail);
        },
      );
    });
  }

  /** The one mapping from a gRPC status to RpcFault or ProxyError. */
  private failure(err: grpc.ServiceError, ep: E, deadline: number): RpcFault | ProxyError {
    const details = err.details ?? err.message;
    if (err.code === grpc.status.UNAVAILABLE) {
      // grpc-js says so when no connection was ever made: the request never left.
      const neverSent = /No connection established|ECONNREFUSED|connect/i.test(details);
      return neverSent
        ? new ProxyError(ErrorCode.UpstreamConnect, `cannot connect to ${ep.address}`, { source: 'upstream', retryable: true, cause: err })
        : new ProxyError(ErrorCode.UpstreamReset, `gRPC connection to ${ep.address} failed: ${details}`, { source: 'upstream', cause: err });
    }
    if (err.code === grpc.status.DEADLINE_EXCEEDED && Date.now() >= deadline - 5) {
      return new ProxyError(ErrorCode.Timeout, `${ep.address} did not answer before the deadline`, { source: 'upstream', cause: err });
    }
    return new RpcFault(err.code, details, { grpcStatus: grpc.status[err.code] ?? String(err.code) });
  }

  private requestOf(m: ResolvedMethod, args: RpcValue[]): Record<string, unknown> {
    const one = args.length === 1 ? args[0]! : undefined;
    const whole = m.args === 'message' || (m.args === 'auto' && one !== undefined && isStruct(one) && !takesOneStructField(m.request));
    if (whole) {
      if (one === undefined || !isStruct(one)) throw invalid(`${m.front} takes one struct (the ${m.request.fullName} message)`);
      return this.toMessage(m.request, one, m.request.fullName);
    }
    const names = Array.isArray(m.args) ? m.args : m.request.order.map((f) => f.name);
    if (args.length > names.length) throw invalid(`${m.front} takes at most ${names.length} arguments (${names.join(', ')}), got ${args.length}`);
    const o: Record<string, RpcValue> = {};
    for (let i = 0; i < args.length; i++) o[names[i]!] = args[i]!;
    return this.toMessage(m.request, o, m.request.fullName);
  }

  private toMessage(info: MessageInfo, v: { [k: string]: RpcValue }, path: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) {
      const f = info.fields.get(k);
      if (f === undefined) throw invalid(`${path}: unknown field '${k}'`);
      const x = v[k]!;
      if (x === null) continue;
      const p = `${path}.${k}`;
      if (f.mapValue !== undefined) {
        if (!isStruct(x)) throw invalid(`${p}: expected a struct (map)`);
        const mo: Record<string, unknown> = {};
        for (const mk of Object.keys(x)) if (x[mk] !== null) mo[mk] = this.toField(f.mapValue, x[mk]!, `${p}.${mk}`);
        out[k] = mo;
      } else if (f.repeated) {
        if (!Array.isArray(x)) throw invalid(`${p}: expected an array`);
        out[k] = x.map((e, i) => this.toField(f, e, `${p}[${i}]`));
      } else out[k] = this.toField(f, x, p);
    }
    return out;
  }

  private toField(f: FieldInfo, x: RpcValue, p: string): unknown {
    if (f.timestamp === true) {
      if (x instanceof Date) {
        const ms = x.getTime();
        const s = Math.floor(ms / 1000);
        return { seconds: String(s), nanos: (ms - s * 1000) * 1_000_000 };
      }
      if (isStruct(x)) return x;
      throw invalid(`${p}: expected a dateTime`);
    }
    if (f.message !== undefined) {
      if (!isStruct(x)) throw invalid(`${p}: expected a struct (${f.message.fullName})`);
      return this.toMessage(f.message, x, p);
    }
    switch (f.type) {
      case 'TYPE_BOOL':
        if (typeof x !== 'boolean') throw invalid(`${p}: expected a boolean`);
        return x;
      case 'TYPE_STRING':
        if (typeof x !== 'string') throw invalid(`${p}: expected a string`);
        return x;
      case 'TYPE_BYTES':
        if (Buffer.isBuffer(x) || typeof x === 'string') return x;
        throw invalid(`${p}: expected base64 bytes`);
      case 'TYPE_DOUBLE':
      case 'TYPE_FLOAT':
        if (typeof x === 'number') return x;
        if (typeof x === 'bigint') return Number(x);
        throw invalid(`${p}: expected a number`);
      case 'TYPE_ENUM':
        if (typeof x === 'string' || typeof x === 'number') return x;
        throw invalid(`${p}: expected an enum name or number`);
      default:
        if (LONG_TYPES.has(f.type)) {
          if (typeof x === 'bigint') return x.toString();
          if (typeof x === 'number' && Number.isInteger(x)) return x;
          if (typeof x === 'string' && /^-?\d+$/.test(x)) return x;
          throw invalid(`${p}: expected a 64-bit integer`);
        }
        if (INT32_TYPES.has(f.type)) {
          if (typeof x === 'number' && Number.isInteger(x)) return x;
          if (typeof x === 'bigint' && x >= -2147483648n && x <= 4294967295n) return Number(x);
          throw invalid(`${p}: expected an integer`);
        }
        throw invalid(`${p}: unsupported field type ${f.type}`);
    }
  }

  private fromMessage(info: MessageInfo, o: Record<string, unknown>): RpcValue {
    const out: { [k: string]: RpcValue } = {};
    for (const f of info.order) {
      const x = o[f.name];
      if (x === undefined || x === null) {
        out[f.name] = null;
        continue;
      }
      if (f.mapValue !== undefined) {
        const mo: { [k: string]: RpcValue } = {};
        for (const [k, e] of Object.entries(x as Record<string, unknown>)) mo[k] = this.fromField(f.mapValue, e);
        out[f.name] = mo;
      } else if (f.repeated) out[f.name] = (x as unknown[]).map((e) => this.fromField(f, e));
      else out[f.name] = this.fromField(f, x);
    }
    return out;
  }

  private fromField(f: FieldInfo, x: unknown): RpcValue {
    if (x === null || x === undefined) return null;
    if (f.timestamp === true) {
      const t = x as { seconds: string | number; nanos: number };
      return new Date(Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1_000_000));
    }
    if (f.message !== undefined) return this.fromMessage(f.message, x as Record<string, unknown>);
    if (LONG_TYPES.has(f.type)) return this.longsAsBigint ? BigInt(x as string) : Number(x);
    return x as RpcValue;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

function isStruct(v: RpcValue): v is { [key: string]: RpcValue } {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v) && !(v instanceof Date);
}

/** A request whose only field is itself a struct (message or map): one struct argument fills that field. */
function takesOneStructField(m: MessageInfo): boolean {
  if (m.order.length !== 1) return false;
  const f = m.order[0]!;
  return !f.repeated && (f.message !== undefined || f.mapValue !== undefined || f.timestamp === true);
}

function invalid(msg: string): RpcFault {
  return new RpcFault(grpc.status.INVALID_ARGUMENT, msg, { grpcStatus: 'INVALID_ARGUMENT', local: true });
}
