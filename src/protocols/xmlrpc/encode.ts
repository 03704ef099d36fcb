/**
 * Typed values -> canonical XML-RPC text.
 *
 *   null -> <nil/>;  boolean -> <boolean>0|1</boolean>;  string -> <string> (escaped &, <, >)
 *   number: an integer in the 32-bit range -> <int>, another safe integer -> <i8>, else <double>
 *   bigint -> <i8>;  Date -> <dateTime.iso8601>YYYYMMDDTHH:MM:SS</dateTime.iso8601> (UTC)
 *   Buffer -> <base64>;  array -> <array><data>...;  object -> <struct><member>...
 */
import type { RpcValue } from '../../translate/rpc-upstream';

const XML_DECL = '<?xml version="1.0"?>\n';

export function escapeXml(s: string): string {
  if (!/[&<>\r]/.test(s)) return s;
  // \r would be normalized to \n by the client's XML parser unless written as a reference.
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#13;');
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

export function formatDateTime(d: Date): string {
  return `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

function formatDouble(n: number): string {
  if (Number.isFinite(n)) {
    const s = String(n);
    // XML-RPC doubles have no exponent.
    const e = s.indexOf('e');
    if (e < 0) return s;
    // Move the point in the shortest round-trip digits instead of asking toFixed (which adds noise digits).
    const neg = s[0] === '-';
    const mant = s.slice(neg ? 1 : 0, e);
    const exp = Number(s.slice(e + 1));
    const dot = mant.indexOf('.');
    const digits = mant.replace('.', '');
    const point = (dot < 0 ? mant.length : dot) + exp;
    const body = point <= 0 ? `0.${'0'.repeat(-point)}${digits}` : point >= digits.length ? `${digits}${'0'.repeat(point - digits.length)}` : `${digits.slice(0, point)}.${digits.slice(point)}`;
    return neg ? `-${body}` : body;
  }
  return Number.isNaN(n) ? 'nan' : n > 0 ? 'inf' : '-inf';
}

function writeValue(v: RpcValue, out: string[], depth: number): void {
  if (depth > 128) throw new Error('value nested too deeply to encode');
  switch (typeof v) {
    case 'string':
      out.push('<value><string>', escapeXml(v), '</string></value>');
      return;
    case 'number':
      if (Number.isInteger(v)) {
        if (v >= -2147483648 && v <= 2147483647) out.push('<value><int>', String(v), '</int></value>');
        else if (Number.isSafeInteger(v)) out.push('<value><i8>', String(v), '</i8></value>');
        else out.push('<value><double>', formatDouble(v), '</double></value>');
      } else out.push('<value><double>', formatDouble(v), '</double></value>');
      return;
    case 'bigint':
      out.push('<value><i8>', v.toString(), '</i8></value>');
      return;
    case 'boolean':
      out.push(v ? '<value><boolean>1</boolean></value>' : '<value><boolean>0</boolean></value>');
      return;
    case 'object':
      if (v === null) {
        out.push('<value><nil/></value>');
        return;
      }
      if (Buffer.isBuffer(v)) {
        out.push('<value><base64>', v.toString('base64'), '</base64></value>');
        return;
      }
      if (v instanceof Date) {
        out.push('<value><dateTime.iso8601>', formatDateTime(v), '</dateTime.iso8601></value>');
        return;
      }
      if (Array.isArray(v)) {
        out.push('<value><array><data>');
        for (const e of v) writeValue(e, out, depth + 1);
        out.push('</data></array></value>');
        return;
      }
      out.push('<value><struct>');
      for (const k of Object.keys(v)) {
        out.push('<member><name>', escapeXml(k), '</name>');
        writeValue(v[k]!, out, depth + 1);
        out.push('</member>');
      }
      out.push('</struct></value>');
      return;
    default:
      // undefined (a sparse array, a struct member left unset) is written as nil.
      out.push('<value><nil/></value>');
  }
}

export function encodeValue(v: RpcValue): string {
  const out: string[] = [];
  writeValue(v, out, 0);
  return out.join('');
}

export function encodeMethodResponse(v: RpcValue): string {
  const out: string[] = [XML_DECL, '<methodResponse><params><param>'];
  writeValue(v, out, 0);
  out.push('</param></params></methodResponse>\n');
  return out.join('');
}

export function encodeFault(faultCode: number, faultString: string): string {
  return `${XML_DECL}<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>${faultCode | 0}</int></value></member><member><name>faultString</name><value><string>${escapeXml(faultString)}</string></value></member></struct></value></fault></methodResponse>\n`;
}

export function encodeMethodCall(methodName: string, params: readonly RpcValue[]): string {
  const out: string[] = [XML_DECL, '<methodCall><methodName>', escapeXml(methodName), '</methodName><params>'];
  for (const p of params) {
    out.push('<param>');
    writeValue(p, out, 0);
    out.push('</param>');
  }
  out.push('</params></methodCall>\n');
  return out.join('');
}
