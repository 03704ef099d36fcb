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
  return JSON.stringify(v, m.bytes === 'tagged' ? taggedReplacer : bareReplacer) ?? 'null';
}

function reviver(reviveDates: boolean): (this: unknown, key: string, v: unknown) => unknown {
  return function (_key, v) {
    if (typeof v === 'string') {
      if (reviveDates && v.length >= 20 && v.length <= 35 && ISO_DATE_TIME.test(v)) {
        const d = new Date(v);
        if (!Number.isNaN(d.getTime())) return d;
      }
      return v;
    }
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      const b = o[TAGGED_BYTES];
      if (typeof b === 'string') {
        let n = 0;
        for (const _ in o) n++;
        if (n === 1) return Buffer.from(b, 'base64');
      }
    }
    return v;
  };
}

const REVIVE_DATES = reviver(true);
const KEEP_DATES = reviver(false);
const MAYBE_DATE = /"\d{4}-\d{2}-\d{2}T/;

/** Parses a JSON reply into RpcValue. Runs the (slower) reviver only when the text can hold a tagged Buffer or a date. */
export function parseRpcValue(text: string, m: JsonMapping = DEFAULT_JSON_MAPPING): RpcValue {
  const dates = m.reviveDates && MAYBE_DATE.test(text);
  if (!dates && !text.includes(`"${TAGGED_BYTES}"`)) return JSON.parse(text) as RpcValue;
  return JSON.parse(text, dates ? REVIVE_DATES : KEEP_DATES) as RpcValue;
}
