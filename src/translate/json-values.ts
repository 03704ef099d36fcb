/**
 * The JSON mapping of RpcValue (src/translate/rpc-upstream.ts), used by the
 * JSON-over-HTTP upstream. Requests (RpcValue -> JSON):
 *
 *   null            -> null
 *   boolean, string -> as is
 *   number          -> JSON number (NaN and ±Infinity become null, as JSON.stringify does)
 *   bigint          -> JSON number when it is a safe integer (|n| <= 2^53-1), else a decimal string
 *   Buffer          -> {"$base64": "<base64>"} (bytes: tagged, the default) or a bare base64 string (bytes: base64)
 *   Date            -> ISO 8601 string in UTC, "2024-05-01T12:00:00.000Z"
 *   array, object   -> array, object (keys as they are)
 *
 * Replies (JSON -> RpcValue), what an XML-RPC or Bolt front needs to give its
 * clients typed values back:
 *
 *   {"$base64": "..."} (an object with that one key)  -> Buffer
 *   a string in ISO 8601 date-time form with a zone (Z or ±hh:mm), when
 *   revive_dates is on (the default)                   -> Date
 *   numbers -> number (JSON.parse: integers beyond 2^53 lose precision;
 *   a service that needs them exact sends them as strings, which stay strings)
 *   everything else as JSON.parse gives it.
 *
 * JSON has one number type: an integral double (2.0) comes back as the
 * number 2, which an XML-RPC front writes as <int>.
 */
import type { RpcValue } from './rpc-upstream';

export type BytesMapping = 'tagged' | 'base64';

export interface JsonMapping {
  bytes: BytesMapping;
  reviveDates: boolean;
}

export const DEFAULT_JSON_MAPPING: JsonMapping = { bytes: 'tagged', reviveDates: true };

const TAGGED_BYTES = '$base64';
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

function taggedReplacer(this: Record<string, unknown>, key: string, v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) && BigInt(Number(v)) === v ? Number(v) : v.toString();
  // JSON.stringify has already called Buffer#toJSON: look at the holder's own value.
  const raw = this[key];
  if (Buffer.isBuffer(raw)) return { [TAGGED_BYTES]: raw.toString('base64') };
  return v;
}

function bareReplacer(this: Record<string, unknown>, key: string, v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) && BigInt(Number(v)) === v ? Number(v) : v.toString();
  const raw = this[key];
  if (Buffer.isBuffer(raw)) return raw.toString('base64');
  return v;
}

/** JSON text of a value (Date becomes its ISO string through Date#toJSON). */
export function stringifyRpcValue(v: unknown, m: JsonMapping = DEFAULT_JSON_MAPPING): string {
  // The replacer (called for every key, slow) is needed only for bigints and bytes.
  if (!needsReplacer(v, 0)) return JSON.stringify(v) ?? 'null';
  return JSON.stringify(v, m.bytes === 'tagged' ? taggedReplacer : bareReplacer) ?? 'null';
}

/** True when v holds a bigint or a byte array (Buffer, any typed array) anywhere, or nests too deep to look. */
function needsReplacer(v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'bigint':
      return true;
    case 'object': {
      if (v === null || v instanceof Date) return false;
      if (depth > 64 || ArrayBuffer.isView(v)) return true;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) if (needsReplacer(v[i], depth + 1)) return true;
        return false;
      }
      const o = v as Record<string, unknown>;
      for (const k in o) if (needsReplacer(o[k], depth + 1)) return true;
      return false;
    }
    default:
      return false;
  }
}

/**
 * The value that replaces v in the parsed tree (v itself when nothing does):
 * a date-time string becomes a Date, an object whose one key is $base64 a
 * Buffer. Children first, as a JSON.parse reviver would (bottom-up); this walk
 * is several times faster than a reviver, which V8 calls for every key.
 */
function revive(v: unknown, dates: boolean): unknown {
  if (typeof v === 'string') {
    if (dates && v.length >= 20 && v.length <= 35 && ISO_DATE_TIME.test(v)) {
      const d = new Date(v);
      if (!Number.isNaN(d.getTime())) return d;
    }
    return v;
  }
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const e = v[i] as unknown;
      if (typeof e === 'object' || typeof e === 'string') {
        const r = revive(e, dates);
        if (r !== e) v[i] = r;
      }
    }
    return v;
  }
  const o = v as Record<string, unknown>;
  let n = 0;
  for (const k in o) {
    n++;
    const e = o[k];
    if (typeof e === 'object' || typeof e === 'string') {
      const r = revive(e, dates);
      // A key named __proto__ is JSON.parse's own data property: replace it as data too.
      if (r !== e) Object.defineProperty(o, k, { value: r, enumerable: true, writable: true, configurable: true });
    }
  }
  if (n === 1) {
    const b = o[TAGGED_BYTES];
    if (typeof b === 'string') return Buffer.from(b, 'base64');
  }
  return o;
}

const MAYBE_DATE = /"\d{4}-\d{2}-\d{2}T/;

/** Parses a JSON reply into RpcValue. Walks the result (revive) only when the text can hold a tagged Buffer or a date. */
export function parseRpcValue(text: string, m: JsonMapping = DEFAULT_JSON_MAPPING): RpcValue {
  const dates = m.reviveDates && MAYBE_DATE.test(text);
  const v = JSON.parse(text) as RpcValue;
  if (!dates && !text.includes(`"${TAGGED_BYTES}"`)) return v;
  return revive(v, dates) as RpcValue;
}
