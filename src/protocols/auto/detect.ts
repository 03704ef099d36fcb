/**
 * Protocol detection from the first bytes a client sends (all the protocols
 * here are client-speaks-first). Returns the protocol, 'more' when the bytes
 * so far could still be several things, or null when they match nothing.
 *
 *   RESP     '*' then a digit or '-' (a multibulk: *<n>\r\n), or an inline
 *            command: a line of printable words that is not an HTTP request line
 *   Kafka    int32 size (0 < size < 16 MiB, so byte 0 is 0), int16 api key
 *            (0..MAX_KAFKA_API_KEY), int16 api version (0..MAX_KAFKA_VERSION)
 *   Bolt     v1: proto 0x01, type (0 response, 1 request, 2 oneway),
 *            int16 cmdcode (0 heartbeat, 1 request, 2 response);
 *            v2: proto 0x02, ver1, then the same type and cmdcode
 *   HTTP/1.x request line: METHOD SP request-target SP HTTP/1.x CRLF
 *   TLS      ClientHello record: 0x16, 0x03, minor version 0..4
 */
export type Detected = 'redis' | 'kafka' | 'bolt' | 'http' | 'tls';

const MAX_KAFKA_API_KEY = 90;
const MAX_KAFKA_VERSION = 30;
/** A request line or an inline command longer than this without a newline: HTTP if it starts like one, else nothing. */
export const MAX_LINE = 8192;

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'REPORT', 'SEARCH', 'PURGE']);

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isTokenChar(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function boltHead(type: number, cmd: number): boolean {
  return type <= 2 && cmd <= 2;
}

export function detect(b: Buffer, n: number): Detected | 'more' | null {
  if (n === 0) return 'more';
  const c0 = b[0]!;
  if (c0 === 0x16) {
    if (n < 3) return n === 2 && b[1] !== 0x03 ? null : 'more';
    return b[1] === 0x03 && b[2]! <= 4 ? 'tls' : null;
  }
  if (c0 === 0x2a) {
    // '*'
    if (n < 2) return 'more';
    return isDigit(b[1]!) || b[1] === 0x2d ? 'redis' : null;
  }
  if (c0 === 0x00) {
    if (n < 8) return 'more';
    const size = b.readInt32BE(0);
    const key = b.readInt16BE(4);
    const ver = b.readInt16BE(6);
    return size >= 8 && key >= 0 && key <= MAX_KAFKA_API_KEY && ver >= 0 && ver <= MAX_KAFKA_VERSION ? 'kafka' : null;
  }
  if (c0 === 0x01) {
    if (n < 4) return 'more';
    return boltHead(b[1]!, b.readUInt16BE(2)) ? 'bolt' : null;
  }
  if (c0 === 0x02) {
    if (n < 5) return 'more';
    return b[1]! >= 1 && b[1]! <= 2 && boltHead(b[2]!, b.readUInt16BE(3)) ? 'bolt' : null;
  }
  if (isTokenChar(c0)) return detectLine(b, n);
  return null;
}

/** A text first line: an HTTP request line, or a Redis inline command. */
function detectLine(b: Buffer, n: number): Detected | 'more' | null {
  let sp = -1;
  let i = 0;
  for (; i < n; i++) {
    const c = b[i]!;
    if (c === 0x0a) break;
    if (c === 0x20 && sp < 0) sp = i;
    // Inline commands and request lines are printable ASCII (and tabs).
    if ((c < 0x20 && c !== 0x0d && c !== 0x09) || c === 0x7f) return null;
  }
  const method = sp > 0 ? b.toString('latin1', 0, sp) : null;
  const httpMethod = method !== null && HTTP_METHODS.has(method);
  if (i === n) {
    // No newline yet: an HTTP method followed by a space is HTTP, however long the target.
    if (n >= MAX_LINE) return httpMethod ? 'http' : null;
    return 'more';
  }
  let end = i;
  if (end > 0 && b[end - 1] === 0x0d) end--;
  const line = b.toString('latin1', 0, end);
  if (httpMethod && / HTTP\/1\.[01]$/.test(line)) return 'http';
  // Redis inline: a command word of letters, then arguments.
  return /^[A-Za-z]+([ \t]|$)/.test(line) ? 'redis' : null;
}
