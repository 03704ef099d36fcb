/**
 * SofaRequest / SofaResponse payloads in the two Hessian dialects
 * sofa-rpc-node speaks, and the mapping between Hessian values and the
 * protocol-neutral RpcValue (src/translate/rpc-upstream.ts).
 *
 * Dialects (sofa-bolt-node setHessianVersion):
 *   '3.0'  the default: an early Hessian 2 draft (npm hessian.js-1). A
 *          SofaRequest payload starts with 'O' (0x4f), its class definition.
 *   '4.0'  final Hessian 2.0 (npm hessian.js). The payload starts with 'C' (0x43).
 * Payload: the SofaRequest object (methodName, methodArgSigs,
 * targetServiceUniqueName, targetAppName, requestProps), then one value per
 * entry of methodArgSigs. A reply is one SofaResponse object (isError,
 * errorMsg, appResponse, responseProps), or, with a non-zero status, an
 * RpcServerException (detailMessage, stackTrace, cause).
 *
 * Hessian -> RpcValue (decoding call arguments)
 *   null -> null; boolean, int, double -> boolean / number; string -> string
 *   long -> number when it fits a double exactly, else bigint (in the 4.0
 *     dialect the library hands longs beyond 2^53 over as decimal strings;
 *     for a top-level argument the signature 'long' turns them back into bigint)
 *   date -> Date; byte[] -> Buffer
 *   list / array (typed or not) -> array (the element type is dropped)
 *   map (HashMap, untyped, any *Map class) -> plain object (keys as strings)
 *   typed object of class C -> plain object of its fields plus '$class': C
 * RpcValue -> Hessian (encoding a result)
 *   null -> null; boolean -> boolean; string -> string
 *   number: integer within int32 -> int; other integer -> long; else double
 *   bigint -> long; Date -> date; Buffer -> byte[]
 *   array -> untyped list (java.util.ArrayList on the Java side)
 *   object with '$class' -> typed object of that class (the other keys are its fields)
 *   other object -> map (java.util.HashMap)
 */
import type { RpcValue } from '../../translate/rpc-upstream';

export type HessianDialect = '3.0' | '4.0';

interface HessianDecoder {
  read(withType?: boolean): unknown;
}
interface HessianEncoder {
  write(v: unknown): unknown;
  get(): Buffer;
}
interface HessianLib {
  DecoderV2: new (buf: Buffer) => HessianDecoder;
  EncoderV2: new (opts?: { size?: number }) => HessianEncoder;
}

// Untyped CommonJS libraries.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hessianDraft = require('hessian.js-1') as HessianLib;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hessianFinal = require('hessian.js') as HessianLib;

function lib(d: HessianDialect): HessianLib {
  return d === '3.0' ? hessianDraft : hessianFinal;
}

/** The dialect of a SofaRequest / SofaResponse payload from its first byte; null when it is neither. */
export function detectDialect(content: Buffer): HessianDialect | null {
  if (content.length === 0) return null;
  const b = content[0]!;
  if (b === 0x4f) return '3.0';
  if (b === 0x43) return '4.0';
  return null;
}

export interface SofaRequestHead {
  methodName: string;
  methodArgSigs: string[];
  targetServiceUniqueName: string | null;
  targetAppName: string | null;
  requestProps: Record<string, unknown> | null;
}

export interface DecodedSofaRequest extends SofaRequestHead {
  args: RpcValue[];
}

function readHead(d: HessianDecoder): SofaRequestHead {
  const o = d.read(false) as Record<string, unknown> | null;
  if (o === null || typeof o !== 'object' || typeof o.methodName !== 'string') throw new Error('payload is not a SofaRequest');
  const sigs = Array.isArray(o.methodArgSigs) ? (o.methodArgSigs as unknown[]).map(String) : [];
  return {
    methodName: o.methodName,
    methodArgSigs: sigs,
    targetServiceUniqueName: typeof o.targetServiceUniqueName === 'string' ? o.targetServiceUniqueName : null,
    targetAppName: typeof o.targetAppName === 'string' ? o.targetAppName : null,
    requestProps: o.requestProps !== null && typeof o.requestProps === 'object' ? (o.requestProps as Record<string, unknown>) : null,
  };
}

/** Only the method name (for routing by method): reads the SofaRequest object, not the arguments. */
export function readMethodName(content: Buffer, dialect: HessianDialect): string {
  return readHead(new (lib(dialect).DecoderV2)(content)).methodName;
}

export function decodeSofaRequest(content: Buffer, dialect: HessianDialect): DecodedSofaRequest {
  const d = new (lib(dialect).DecoderV2)(content);
  const head = readHead(d);
  const args: RpcValue[] = [];
  for (let i = 0; i < head.methodArgSigs.length; i++) {
    const sig = head.methodArgSigs[i]!;
    const v = d.read(true);
    if ((sig === 'long' || sig === 'java.lang.Long') && typeof v === 'string' && /^-?[0-9]+$/.test(v)) args.push(toLong(v));
    else args.push(fromHessian(v));
  }
  return { ...head, args };
}

function toLong(v: string | number): number | bigint {
  if (typeof v === 'number') return v;
  const b = BigInt(v);
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

const SCALAR_CLASSES = new Set([
  'int',
  'short',
  'byte',
  'double',
  'float',
  'boolean',
  'char',
  'java.lang.Integer',
  'java.lang.Short',
  'java.lang.Byte',
  'java.lang.Double',
  'java.lang.Float',
  'java.lang.Boolean',
  'java.lang.String',
  'java.lang.Character',
  'java.lang.Object',
]);

function isMapClass(cls: string): boolean {
  return cls === 'java.util.Map' || cls.endsWith('Map') || cls === 'java.util.Hashtable' || cls === 'java.util.Properties';
}

/** A value as the libraries decode it with types (read(true)) -> RpcValue. */
export function fromHessian(v: unknown): RpcValue {
  if (v === null || v === undefined) return null;
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return v;
    case 'bigint':
      return v;
    case 'object':
      break;
    default:
      return String(v);
  }
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Date) return v;
  if (Array.isArray(v)) return v.map(fromHessian);
  const o = v as Record<string, unknown>;
  if (typeof o.$class === 'string' && '$' in o && Object.keys(o).length === 2) {
    const cls = o.$class;
    const inner = o.$;
    if (inner === null || inner === undefined) return null;
    if (cls === 'long' || cls === 'java.lang.Long') return typeof inner === 'string' || typeof inner === 'number' ? toLong(inner) : fromHessian(inner);
    if (SCALAR_CLASSES.has(cls)) return fromHessian(inner);
    if (cls === 'java.util.Date' || inner instanceof Date) return inner instanceof Date ? inner : new Date(Number(inner));
    if (Array.isArray(inner) || Buffer.isBuffer(inner)) return fromHessian(inner);
    if (typeof inner !== 'object') return fromHessian(inner);
    const fields = fieldsOf(inner as Record<string, unknown>);
    if (isMapClass(cls)) return fields;
    return { $class: cls, ...fields };
  }
  return fieldsOf(o);
}

function fieldsOf(o: Record<string, unknown>): { [key: string]: RpcValue } {
  const out: { [key: string]: RpcValue } = {};
  for (const k of Object.keys(o)) out[k] = fromHessian(o[k]);
  return out;
}

const INT_MIN = -0x80000000;
const INT_MAX = 0x7fffffff;

/** RpcValue -> what the libraries' encoders write with the types listed in the header comment. */
export function toHessian(v: RpcValue | undefined): unknown {
  if (v === null || v === undefined) return null;
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return v;
    case 'number':
      if (Number.isInteger(v)) return v >= INT_MIN && v <= INT_MAX ? v : { $class: 'long', $: v };
      return { $class: 'double', $: v };
    case 'bigint':
      return { $class: 'long', $: v.toString() };
    default:
      break;
  }
  if (Buffer.isBuffer(v) || v instanceof Date) return v;
  if (Array.isArray(v)) return v.map(toHessian);
  const o = v as { [key: string]: RpcValue };
  const cls = o.$class;
  const fields: Record<string, unknown> = {};
  for (const k of Object.keys(o)) if (k !== '$class') fields[k] = toHessian(o[k]);
  if (typeof cls === 'string') return { $class: cls, $: fields };
  return { $class: 'java.util.HashMap', $: fields };
}

const SOFA_RESPONSE = 'com.alipay.sofa.rpc.core.response.SofaResponse';
const SERVER_EXCEPTION = 'com.alipay.remoting.rpc.exception.RpcServerException';

function encode(dialect: HessianDialect, v: unknown): Buffer {
  const e = new (lib(dialect).EncoderV2)();
  e.write(v);
  return Buffer.from(e.get());
}

/** A successful call's payload: SofaResponse { isError: false, appResponse }. */
export function encodeSofaResult(dialect: HessianDialect, value: RpcValue): Buffer {
  return encode(dialect, { $class: SOFA_RESPONSE, $: { isError: false, errorMsg: null, appResponse: toHessian(value), responseProps: null } });
}

/** An application fault (status SUCCESS): SofaResponse { isError: true, errorMsg }; sofa-rpc-node clients throw Error(errorMsg). */
export function encodeSofaFault(dialect: HessianDialect, errorMsg: string): Buffer {
  return encode(dialect, { $class: SOFA_RESPONSE, $: { isError: true, errorMsg, appResponse: null, responseProps: null } });
}

/**
 * The payload that goes with a non-zero status: an RpcServerException as Bolt
 * servers send it. sofa-rpc-node clients throw an Error whose message is
 * "com.alipay.remoting.rpc.exception.RpcServerException: <detailMessage>".
 */
export function encodeServerException(dialect: HessianDialect, detailMessage: string): Buffer {
  return encode(dialect, {
    $class: SERVER_EXCEPTION,
    $: { detailMessage, stackTrace: { $class: '[java.lang.StackTraceElement', $: [] }, cause: null },
  });
}

/** Reads a SofaResponse payload (tests and the HTTP side of benchmarks): appResponse, or the error text. */
export function decodeSofaResponse(content: Buffer, dialect: HessianDialect): { isError: boolean; errorMsg: string | null; appResponse: RpcValue } {
  const o = new (lib(dialect).DecoderV2)(content).read(true);
  const v = fromHessian(o) as { [k: string]: RpcValue };
  return { isError: v.isError === true, errorMsg: typeof v.errorMsg === 'string' ? v.errorMsg : null, appResponse: v.appResponse ?? null };
}
