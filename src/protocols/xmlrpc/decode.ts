/**
 * XML-RPC documents -> typed values (fast-xml-parser does the XML; this file
 * gives it XML-RPC meaning).
 *
 *   methodCall     := <methodCall> <methodName>NAME</methodName> [<params> <param> value </param>* </params>] </methodCall>
 *   methodResponse := <methodResponse> ( <params><param> value </param></params>
 *                                      | <fault> value(struct faultCode int, faultString string) </fault> ) </methodResponse>
 *   value  := <value> ( TEXT                                   untyped: a string
 *                     | <int>|<i4>|<i8> INTEGER                 number (i8: bigint)
 *                     | <boolean> 0|1                           boolean
 *                     | <string> TEXT                           string
 *                     | <double> NUMBER                         number
 *                     | <dateTime.iso8601> YYYYMMDDTHH:MM:SS    Date (no zone: read as UTC)
 *                     | <base64> B64                            Buffer
 *                     | <struct> (<member><name>N</name> value</member>)*
 *                     | <array><data> value* </data></array>
 *                     | <nil/> ) </value>
 *
 * Safety: any DOCTYPE (and so every entity declaration, internal or
 * external) is refused before parsing, which stops billion-laughs expansion
 * and external entities; the only entity references are the five XML
 * built-ins and numeric character references, decoded here. Nesting is
 * bounded. Element names may carry a namespace prefix (ex:nil, ex:i8).
 *
 * Speed: documents in the plain form clients write (an optional XML
 * declaration, elements without attributes or prefixes, text with entity
 * references, in the grammar's order) are read in one hand-written pass
 * that checks well-formedness and builds the values at once. Anything else
 * (comments, CDATA, attributes, a DOCTYPE, any error) is read again by the
 * general path (XMLValidator + fast-xml-parser), which alone decides errors
 * and their messages; so both paths give the same values and the same
 * faults.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { RpcValue } from '../../translate/rpc-upstream';

/** A document that is not XML, or XML that is not XML-RPC. `parse` tells which fault code applies. */
export class XmlRpcDecodeError extends Error {
  constructor(
    message: string,
    /** true: not well-formed XML (or refused XML: DOCTYPE); false: well-formed but not valid XML-RPC. */
    readonly parse: boolean,
  ) {
    super(message);
    this.name = 'XmlRpcDecodeError';
  }
}

export interface MethodCall {
  methodName: string;
  params: RpcValue[];
}

export type MethodResponse = { ok: true; value: RpcValue } | { ok: false; faultCode: number; faultString: string };

type Node = Record<string, unknown>;

const MAX_DEPTH = 64;

const parser = new XMLParser({
  preserveOrder: true,
  trimValues: false,
  parseTagValue: false,
  ignoreAttributes: true,
  processEntities: false,
  htmlEntities: false,
  cdataPropName: '#cdata',
  ignoreDeclaration: true,
  ignorePiTags: true,
  removeNSPrefix: true,
  maxNestedTags: MAX_DEPTH * 3 + 8,
});

const DOCTYPE = /<!DOCTYPE|<!ENTITY/i;

/** Throws XmlRpcDecodeError unless the text is well-formed XML without a DOCTYPE. */
export function checkWellFormed(text: string): void {
  // A plain methodCall is well-formed (the usual case: no validator pass).
  if (readPlain(text, plainMethodCall) !== undefined) return;
  if (DOCTYPE.test(text)) throw new XmlRpcDecodeError('DOCTYPE and entity declarations are not accepted', true);
  const v = XMLValidator.validate(text);
  if (v !== true) throw new XmlRpcDecodeError(`not well-formed XML: ${v.err.msg} (line ${v.err.line}, column ${v.err.col})`, true);
}

function parseXml(text: string): Node[] {
  checkWellFormed(text);
  try {
    return parser.parse(text) as Node[];
  } catch (e) {
    throw new XmlRpcDecodeError(`not well-formed XML: ${(e as Error).message}`, true);
  }
}

/** The tag of a preserveOrder node ('#text', '#cdata' or an element name). */
function tagOf(n: Node): string {
  for (const k in n) if (k !== ':@') return k;
  return '';
}

function children(n: Node, tag: string): Node[] {
  return n[tag] as Node[];
}

/** Element children, skipping whitespace text; other text is an error in element-only content. */
function elements(list: Node[], where: string): Node[] {
  const out: Node[] = [];
  for (const n of list) {
    const t = tagOf(n);
    if (t === '#text') {
      if (!/^\s*$/.test(n['#text'] as string)) throw invalidRpc(`unexpected text in <${where}>`);
      continue;
    }
    if (t === '#cdata' || t === '#comment') continue;
    out.push(n);
  }
  return out;
}

const ENTITY = /&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|amp|lt|gt|quot|apos|[^;\s]{0,32});?/g;

function decodeEntity(m: string, name: string): string {
  if (!m.endsWith(';')) throw new XmlRpcDecodeError(`bare '&' or unterminated entity reference '${m.slice(0, 40)}'`, true);
  switch (name) {
    case 'amp':
      return '&';
    case 'lt':
      return '<';
    case 'gt':
      return '>';
    case 'quot':
      return '"';
    case 'apos':
      return "'";
  }
  if (name.startsWith('#')) {
    const cp = name[1] === 'x' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
    // NaN: '&#;' or '&#x;' (no digits).
    if (Number.isNaN(cp) || cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new XmlRpcDecodeError(`invalid character reference &${name};`, true);
    return String.fromCodePoint(cp);
  }
  throw new XmlRpcDecodeError(`undefined entity &${name.slice(0, 32)};`, true);
}

/** Character data of a node list: text with references decoded, CDATA as is. */
function textOf(list: Node[]): string {
  let s = '';
  for (const n of list) {
    const t = tagOf(n);
    if (t === '#text') {
      const raw = n['#text'] as string;
      s += raw.indexOf('&') < 0 ? raw : raw.replace(ENTITY, decodeEntity);
    } else if (t === '#cdata') {
      // CDATA is literal: no references inside.
      for (const c of n['#cdata'] as Node[]) if (tagOf(c) === '#text') s += c['#text'] as string;
    }
    else if (t === '#comment') continue;
    else throw invalidRpc(`unexpected element <${t}> in character data`);
  }
  return s;
}

function invalidRpc(msg: string): XmlRpcDecodeError {
  return new XmlRpcDecodeError(msg, false);
}

const INT = /^[+-]?\d+$/;
const DOUBLE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const DATE_TIME = /^(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/;
const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

function intOf(text: string, tag: string): number | bigint {
  const t = text.trim();
  if (!INT.test(t)) throw invalidRpc(`<${tag}> '${t.slice(0, 40)}' is not an integer`);
  if (tag === 'i8') {
    const b = BigInt(t);
    if (b < -(2n ** 63n) || b >= 2n ** 63n) throw invalidRpc(`<i8> ${t} is out of the 64-bit range`);
    return b;
  }
  const n = Number(t);
  // int and i4 are 32-bit by the spec; bigger values are accepted (some writers emit them) and kept exact.
  return Number.isSafeInteger(n) ? n : BigInt(t);
}

/** Parses an XML-RPC dateTime.iso8601 (also the dashed ISO form, optional fraction and zone). No zone: UTC. */
export function parseDateTime(text: string): Date {
  const m = DATE_TIME.exec(text.trim());
  if (m === null) throw invalidRpc(`<dateTime.iso8601> '${text.trim().slice(0, 40)}' is not YYYYMMDDTHH:MM:SS`);
  const ms = m[7] !== undefined ? Math.floor(Number(m[7]) * 1000) : 0;
  let t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), ms);
  const z = m[8];
  if (z !== undefined && z !== 'Z') {
    const sign = z[0] === '-' ? -1 : 1;
    const hh = Number(z.slice(1, 3));
    const mm = Number(z.slice(z.length - 2));
    t -= sign * (hh * 60 + mm) * 60_000;
  }
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) throw invalidRpc(`<dateTime.iso8601> '${text.trim()}' is not a valid date`);
  return d;
}

function valueOf(node: Node, depth: number): RpcValue {
  if (depth > MAX_DEPTH) throw invalidRpc(`values nested deeper than ${MAX_DEPTH}`);
  const content = children(node, 'value');
  const els = content.filter((n) => {
    const t = tagOf(n);
    return t !== '#text' && t !== '#cdata' && t !== '#comment';
  });
  if (els.length === 0) return textOf(content);
  if (els.length > 1) throw invalidRpc('<value> holds more than one element');
  const el = els[0]!;
  for (const n of content) {
    if (n !== el && tagOf(n) === '#text' && !/^\s*$/.test(n['#text'] as string)) throw invalidRpc('<value> mixes text and a typed element');
  }
  const tag = tagOf(el);
  const inner = children(el, tag);
  switch (tag) {
    case 'int':
    case 'i4':
    case 'i8':
      return intOf(textOf(inner), tag);
    case 'boolean': {
      const t = textOf(inner).trim();
      if (t === '1' || t === 'true') return true;
      if (t === '0' || t === 'false') return false;
      throw invalidRpc(`<boolean> '${t.slice(0, 40)}' is not 0 or 1`);
    }
    case 'string':
      return textOf(inner);
    case 'double': {
      const t = textOf(inner).trim();
      if (!DOUBLE.test(t)) throw invalidRpc(`<double> '${t.slice(0, 40)}' is not a number`);
      return Number(t);
    }
    case 'dateTime.iso8601':
      return parseDateTime(textOf(inner));
    case 'base64': {
      const t = textOf(inner);
      if (!BASE64.test(t)) throw invalidRpc('<base64> holds characters outside base64');
      return Buffer.from(t, 'base64');
    }
    case 'nil':
      return null;
    case 'struct': {
      const out: { [k: string]: RpcValue } = {};
      for (const m of elements(inner, 'struct')) {
        if (tagOf(m) !== 'member') throw invalidRpc(`<struct> holds <${tagOf(m)}>, not <member>`);
        let name: string | undefined;
        let value: Node | undefined;
        for (const p of elements(children(m, 'member'), 'member')) {
          const pt = tagOf(p);
          if (pt === 'name') name = textOf(children(p, 'name'));
          else if (pt === 'value') value = p;
          else throw invalidRpc(`<member> holds <${pt}>`);
        }
        if (name === undefined || value === undefined) throw invalidRpc('<member> needs a <name> and a <value>');
        const v = valueOf(value, depth + 1);
        // A member named __proto__ is data, not the object's prototype.
        if (name === '__proto__') Object.defineProperty(out, name, { value: v, enumerable: true, writable: true, configurable: true });
        else out[name] = v;
      }
      return out;
    }
    case 'array': {
      const data = elements(inner, 'array');
      if (data.length !== 1 || tagOf(data[0]!) !== 'data') throw invalidRpc('<array> needs exactly one <data>');
      const out: RpcValue[] = [];
      for (const v of elements(children(data[0]!, 'data'), 'data')) {
        if (tagOf(v) !== 'value') throw invalidRpc(`<data> holds <${tagOf(v)}>, not <value>`);
        out.push(valueOf(v, depth + 1));
      }
      return out;
    }
    default:
      throw invalidRpc(`unknown value type <${tag}>`);
  }
}

function root(doc: Node[], want: string): Node[] {
  const els = elements(doc, 'document');
  if (els.length !== 1 || tagOf(els[0]!) !== want) throw invalidRpc(`the document is not a <${want}>`);
  return children(els[0]!, want);
}

function paramsOf(list: Node[]): RpcValue[] {
  const out: RpcValue[] = [];
  for (const p of elements(list, 'params')) {
    if (tagOf(p) !== 'param') throw invalidRpc(`<params> holds <${tagOf(p)}>, not <param>`);
    const vs = elements(children(p, 'param'), 'param');
    if (vs.length !== 1 || tagOf(vs[0]!) !== 'value') throw invalidRpc('<param> needs exactly one <value>');
    out.push(valueOf(vs[0]!, 1));
  }
  return out;
}

const METHOD_NAME = /^[A-Za-z0-9_.:/]+$/;

export function decodeMethodCall(text: string): MethodCall {
  return readPlain(text, plainMethodCall) ?? decodeMethodCallGeneral(text);
}

/** decodeMethodCall by the general path alone (tests hold the two paths to the same answers). */
export function decodeMethodCallGeneral(text: string): MethodCall {
  const body = elements(root(parseXml(text), 'methodCall'), 'methodCall');
  let methodName: string | undefined;
  let params: RpcValue[] = [];
  for (const n of body) {
    const t = tagOf(n);
    if (t === 'methodName') methodName = textOf(children(n, t)).trim();
    else if (t === 'params') params = paramsOf(children(n, t));
    else throw invalidRpc(`<methodCall> holds <${t}>`);
  }
  if (methodName === undefined || methodName === '') throw invalidRpc('<methodCall> has no <methodName>');
  if (!METHOD_NAME.test(methodName)) throw invalidRpc(`method name '${methodName.slice(0, 80)}' has characters outside A-Z a-z 0-9 _ . : /`);
  return { methodName, params };
}

export function decodeMethodResponse(text: string): MethodResponse {
  return readPlain(text, plainMethodResponse) ?? decodeMethodResponseGeneral(text);
}

/** decodeMethodResponse by the general path alone. */
export function decodeMethodResponseGeneral(text: string): MethodResponse {
  const body = elements(root(parseXml(text), 'methodResponse'), 'methodResponse');
  if (body.length !== 1) throw invalidRpc('<methodResponse> needs one <params> or one <fault>');
  const n = body[0]!;
  const t = tagOf(n);
  if (t === 'params') {
    const ps = paramsOf(children(n, t));
    if (ps.length !== 1) throw invalidRpc('<methodResponse> <params> needs exactly one <param>');
    return { ok: true, value: ps[0]! };
  }
  if (t === 'fault') {
    const vs = elements(children(n, t), 'fault');
    if (vs.length !== 1 || tagOf(vs[0]!) !== 'value') throw invalidRpc('<fault> needs one <value>');
    return faultReply(valueOf(vs[0]!, 1));
  }
  throw invalidRpc(`<methodResponse> holds <${t}>`);
}

function faultReply(v: RpcValue): MethodResponse {
  const f = v as { faultCode?: unknown; faultString?: unknown } | null;
  const code = f !== null && typeof f === 'object' ? f.faultCode : undefined;
  const str = f !== null && typeof f === 'object' ? f.faultString : undefined;
  return { ok: false, faultCode: typeof code === 'number' ? code : typeof code === 'bigint' ? Number(code) : 0, faultString: typeof str === 'string' ? str : String(str ?? '') };
}

/**
 * The methodName of a methodCall without parsing the document: enough to
 * route a call that is forwarded as is (passthrough). null when it is not
 * plainly there; the caller then parses the whole document.
 */
export function peekMethodName(text: string): string | null {
  if (DOCTYPE.test(text)) return null;
  const m = /^\s*(?:<\?xml[^?]*\?>\s*)?<methodCall>\s*<methodName>\s*([A-Za-z0-9_.:/]+)\s*<\/methodName>/.exec(text);
  return m === null ? null : m[1]!;
}

// ---- the plain-form reader (see the header) ----------------------------------

/** Thrown inside the plain reader when the document leaves the plain form; never escapes readPlain. */
const NOT_PLAIN = new Error('not in the plain form');
/** The plain reader goes less deep than MAX_DEPTH: documents near the limit are the general path's to judge. */
const PLAIN_MAX_DEPTH = MAX_DEPTH - 4;
/** An XML declaration the general path ignores (the validator and the parser accept every one of these). */
const PLAIN_DECL = /<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(?:"1\.[0-9]"|'1\.[0-9]')(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(?:"[A-Za-z][A-Za-z0-9._-]{0,39}"|'[A-Za-z][A-Za-z0-9._-]{0,39}'))?(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(?:"(?:yes|no)"|'(?:yes|no)'))?[ \t\r\n]*\?>/y;

// The document being read and the position in it (one document at a time: reading is synchronous).
let src = '';
let pos = 0;
/** Set by openTag: the element just opened was `<name/>`. */
let selfClosed = false;

function notPlain(): never {
  throw NOT_PLAIN;
}

/** The plain reader alone: the call, or undefined when the document is not in the plain form. */
export function readPlainMethodCall(text: string): MethodCall | undefined {
  return readPlain(text, plainMethodCall);
}

/** The plain reader alone, for a methodResponse. */
export function readPlainMethodResponse(text: string): MethodResponse | undefined {
  return readPlain(text, plainMethodResponse);
}

/** Runs a plain reader over text; undefined when the text is not in the plain form (or has any error). */
function readPlain<T>(text: string, read: () => T): T | undefined {
  src = text;
  pos = 0;
  try {
    if (text.startsWith('<?')) {
      PLAIN_DECL.lastIndex = 0;
      if (!PLAIN_DECL.test(text)) return undefined;
      pos = PLAIN_DECL.lastIndex;
    }
    skipSpace();
    const v = read();
    skipSpace();
    return pos === text.length ? v : undefined;
  } catch {
    return undefined;
  } finally {
    src = '';
  }
}

/** Skips XML white space (space, tab, CR, LF). */
function skipSpace(): void {
  let c = src.charCodeAt(pos);
  while (c === 32 || c === 10 || c === 13 || c === 9) c = src.charCodeAt(++pos);
}

/** Reads `<name>` or `<name/>` (no attributes, no prefix); sets selfClosed. */
function openNamed(name: string): void {
  if (src.charCodeAt(pos) !== 60 || !src.startsWith(name, pos + 1)) notPlain();
  const end = pos + 1 + name.length;
  const c = src.charCodeAt(end);
  if (c === 62) {
    selfClosed = false;
    pos = end + 1;
  } else if (c === 47 && src.charCodeAt(end + 1) === 62) {
    selfClosed = true;
    pos = end + 2;
  } else notPlain();
}

/** Reads an opening tag whose name is not known in advance: letters, digits, '.', '-', '_' only. */
function openAny(): string {
  if (src.charCodeAt(pos) !== 60) notPlain();
  const start = pos + 1;
  let i = start;
  let c = src.charCodeAt(i);
  if (!((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95)) notPlain();
  do c = src.charCodeAt(++i);
  while ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 46 || c === 45 || c === 95);
  const name = src.slice(start, i);
  if (c === 62) {
    selfClosed = false;
    pos = i + 1;
  } else if (c === 47 && src.charCodeAt(i + 1) === 62) {
    selfClosed = true;
    pos = i + 2;
  } else notPlain();
  return name;
}

/** Reads `</name>`. */
function close(name: string): void {
  if (src.charCodeAt(pos) !== 60 || src.charCodeAt(pos + 1) !== 47 || !src.startsWith(name, pos + 2) || src.charCodeAt(pos + 2 + name.length) !== 62) notPlain();
  pos += name.length + 3;
}

/** True (and consumed) when `</name>` is next. */
function closing(name: string): boolean {
  if (src.charCodeAt(pos) !== 60 || src.charCodeAt(pos + 1) !== 47) return false;
  close(name);
  return true;
}

const EOL = /\r\n?/g;

/** Character data up to the next tag: text with references decoded, CDATA sections as they are. */
function text(): string {
  let out = '';
  for (;;) {
    const lt = src.indexOf('<', pos);
    if (lt < 0) notPlain();
    if (lt > pos) {
      let raw = src.slice(pos, lt);
      // Line ends as XML (and fast-xml-parser) read them: CR LF and a lone CR become LF, before references are decoded.
      if (raw.indexOf('\r') >= 0) raw = raw.replace(EOL, '\n');
      out += raw.indexOf('&') < 0 ? raw : raw.replace(ENTITY, decodeEntity);
    }
    pos = lt;
    if (!src.startsWith('<![CDATA[', lt)) return out;
    const end = src.indexOf(']]>', lt + 9);
    if (end < 0) notPlain();
    const cdata = src.slice(lt + 9, end);
    out += cdata.indexOf('\r') < 0 ? cdata : cdata.replace(EOL, '\n');
    pos = end + 3;
  }
}

/** The text content of an element just opened, and its end tag. */
function leafText(name: string): string {
  if (selfClosed) return '';
  const t = text();
  close(name);
  return t;
}

/** After `<value>` (or `<value/>`): the value and `</value>`. */
function plainValue(depth: number): RpcValue {
  if (selfClosed) return '';
  if (depth > PLAIN_MAX_DEPTH) notPlain();
  const start = pos;
  const t = text();
  if (src.charCodeAt(pos + 1) === 47) {
    // Only text: an untyped string.
    close('value');
    return t;
  }
  // Text before a typed element must be XML white space.
  for (let i = start; i < pos; i++) {
    const c = src.charCodeAt(i);
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) notPlain();
  }
  const tag = openAny();
  let v: RpcValue;
  switch (tag) {
    case 'int':
    case 'i4':
    case 'i8':
      v = intOf(leafText(tag), tag);
      break;
    case 'boolean': {
      const b = leafText(tag).trim();
      if (b === '1' || b === 'true') v = true;
      else if (b === '0' || b === 'false') v = false;
      else notPlain();
      break;
    }
    case 'string':
      v = leafText(tag);
      break;
    case 'double': {
      const d = leafText(tag).trim();
      if (!DOUBLE.test(d)) notPlain();
      v = Number(d);
      break;
    }
    case 'dateTime.iso8601':
      v = parseDateTime(leafText(tag));
      break;
    case 'base64': {
      const b = leafText(tag);
      if (!BASE64.test(b)) notPlain();
      v = Buffer.from(b, 'base64');
      break;
    }
    case 'nil':
      // The general path ignores what <nil> holds; here it must be plain text.
      leafText(tag);
      v = null;
      break;
    case 'struct':
      v = plainStruct(depth);
      break;
    case 'array':
      v = plainArray(depth);
      break;
    default:
      notPlain();
  }
  skipSpace();
  close('value');
  return v;
}

/** After `<struct>`: the members and `</struct>`. */
function plainStruct(depth: number): { [k: string]: RpcValue } {
  const out: { [k: string]: RpcValue } = {};
  if (selfClosed) return out;
  skipSpace();
  while (!closing('struct')) {
    openNamed('member');
    if (selfClosed) notPlain();
    skipSpace();
    openNamed('name');
    const name = leafText('name');
    skipSpace();
    openNamed('value');
    const v = plainValue(depth + 1);
    skipSpace();
    close('member');
    skipSpace();
    if (name === '__proto__') Object.defineProperty(out, name, { value: v, enumerable: true, writable: true, configurable: true });
    else out[name] = v;
  }
  return out;
}

/** After `<array>`: `<data>` with its values, and `</array>`. */
function plainArray(depth: number): RpcValue[] {
  if (selfClosed) notPlain();
  skipSpace();
  openNamed('data');
  const out: RpcValue[] = [];
  if (!selfClosed) {
    skipSpace();
    while (!closing('data')) {
      openNamed('value');
      out.push(plainValue(depth + 1));
      skipSpace();
    }
  }
  skipSpace();
  close('array');
  return out;
}

/** `<param> <value>...</value> </param>` */
function plainParam(): RpcValue {
  openNamed('param');
  if (selfClosed) notPlain();
  skipSpace();
  openNamed('value');
  const v = plainValue(1);
  skipSpace();
  close('param');
  return v;
}

function plainMethodCall(): MethodCall {
  openNamed('methodCall');
  if (selfClosed) notPlain();
  skipSpace();
  openNamed('methodName');
  const methodName = leafText('methodName').trim();
  if (methodName === '' || !METHOD_NAME.test(methodName)) notPlain();
  skipSpace();
  const params: RpcValue[] = [];
  if (!closing('methodCall')) {
    openNamed('params');
    if (!selfClosed) {
      skipSpace();
      while (!closing('params')) {
        params.push(plainParam());
        skipSpace();
      }
    }
    skipSpace();
    close('methodCall');
  }
  return { methodName, params };
}

function plainMethodResponse(): MethodResponse {
  openNamed('methodResponse');
  if (selfClosed) notPlain();
  skipSpace();
  let r: MethodResponse;
  if (src.startsWith('<params>', pos)) {
    openNamed('params');
    skipSpace();
    r = { ok: true, value: plainParam() };
    skipSpace();
    close('params');
  } else {
    openNamed('fault');
    if (selfClosed) notPlain();
    skipSpace();
    openNamed('value');
    r = faultReply(plainValue(1));
    skipSpace();
    close('fault');
  }
  skipSpace();
  close('methodResponse');
  return r;
}
