/**
 * Header rewriting in both directions, in one pass over the raw header list
 * (node:http's req.rawHeaders, undici's raw response headers), never through
 * a parsed header object.
 *
 * Removed both ways (hop-by-hop, RFC 9110 7.6.1): Connection and every field
 * it names, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
 * Upgrade (an upgrade is re-requested explicitly). Requests also lose Host
 * (sent separately, possibly rewritten) and Expect (node:http answers
 * 100-continue itself). Added: X-Forwarded-For/-Proto/-Host on requests and
 * a Via element on requests and responses.
 */

export const enum H {
  Other = 0,
  Hop = 1,
  Host = 2,
  Expect = 3,
  ContentLength = 4,
  TransferEncoding = 5,
  Upgrade = 6,
  Connection = 7,
  Via = 8,
  Xff = 9,
  Xfp = 10,
  Xfh = 11,
}

/** Classifies a header name; lowercases only names whose length can matter. */
export function classify(name: string): H {
  switch (name.length) {
    case 2:
      return name.toLowerCase() === 'te' ? H.Hop : H.Other;
    case 3:
      return name.toLowerCase() === 'via' ? H.Via : H.Other;
    case 4:
      return name.toLowerCase() === 'host' ? H.Host : H.Other;
    case 6:
      return name.toLowerCase() === 'expect' ? H.Expect : H.Other;
    case 7: {
      const l = name.toLowerCase();
      return l === 'upgrade' ? H.Upgrade : l === 'trailer' ? H.Hop : H.Other;
    }
    case 10: {
      const l = name.toLowerCase();
      return l === 'connection' ? H.Connection : l === 'keep-alive' ? H.Hop : H.Other;
    }
    case 14:
      return name.toLowerCase() === 'content-length' ? H.ContentLength : H.Other;
    case 15:
      return name.toLowerCase() === 'x-forwarded-for' ? H.Xff : H.Other;
    case 16: {
      const l = name.toLowerCase();
      return l === 'proxy-connection' ? H.Hop : l === 'x-forwarded-host' ? H.Xfh : H.Other;
    }
    case 17: {
      const l = name.toLowerCase();
      return l === 'transfer-encoding' ? H.TransferEncoding : l === 'x-forwarded-proto' ? H.Xfp : H.Other;
    }
    default:
      return H.Other;
  }
}

/** Field names listed in a Connection header other than close/keep-alive/upgrade (to drop), lowercased; null when none. */
function connectionTokens(value: string, into: string[] | null): string[] | null {
  for (const t of value.split(',')) {
    const n = t.trim().toLowerCase();
    if (n === '' || n === 'close' || n === 'keep-alive' || n === 'upgrade') continue;
    (into ??= []).push(n);
  }
  return into;
}

function dropNamed(out: string[], names: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) {
    if (!names.includes(out[i]!.toLowerCase())) kept.push(out[i]!, out[i + 1]!);
  }
  return kept;
}

export interface ForwardSettings {
  xForwarded: boolean;
  trustForwarded: boolean;
  /** "1.1 portway", or null. */
  via: string | null;
}

/** What the request scan found besides the headers to send. */
export interface RequestHead {
  /** The headers to send upstream, flat [name, value, ...], without Host. */
  headers: string[];
  /** The first Host value, or '' when none. */
  host: string;
  /** Content-Length, or -1 when absent. */
  contentLength: number;
  /** True when the request has a Transfer-Encoding (a chunked body). */
  chunked: boolean;
  /** The Upgrade value (e.g. "websocket"), or null. */
  upgrade: string | null;
}

/**
 * Scans a request's raw headers once: the end-to-end headers to forward
 * (hop-by-hop removed, forwarding headers added) and the framing facts.
 * `proto` is the scheme the client used ('http').
 */
export function scanRequestHeaders(raw: readonly string[], clientIp: string, proto: string, s: ForwardSettings): RequestHead {
  const out: string[] = [];
  let host = '';
  let contentLength = -1;
  let chunked = false;
  let upgrade: string | null = null;
  let drop: string[] | null = null;
  let xff: string | null = null;
  let via: string | null = null;
  let xfp: string | null = null;
  let xfh: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    switch (classify(name)) {
      case H.Other:
        out.push(name, value);
        break;
      case H.Host:
        if (host === '') host = value;
        break;
      case H.ContentLength:
        contentLength = Number(value);
        out.push(name, value);
        break;
      case H.TransferEncoding:
        chunked = true;
        break;
      case H.Upgrade:
        upgrade = value;
        break;
      case H.Connection:
        drop = connectionTokens(value, drop);
        break;
      case H.Via:
        if (s.via === null) out.push(name, value);
        else via = via === null ? value : `${via}, ${value}`;
        break;
      case H.Xff:
        if (!s.xForwarded) out.push(name, value);
        else xff = xff === null ? value : `${xff}, ${value}`;
        break;
      case H.Xfp:
        if (!s.xForwarded) out.push(name, value);
        else if (s.trustForwarded && xfp === null) xfp = value;
        break;
      case H.Xfh:
        if (!s.xForwarded) out.push(name, value);
        else if (s.trustForwarded && xfh === null) xfh = value;
        break;
      default:
      // Hop-by-hop and Expect: not forwarded.
    }
  }
  if (s.xForwarded) {
    out.push('x-forwarded-for', xff === null ? clientIp : `${xff}, ${clientIp}`);
    out.push('x-forwarded-proto', xfp ?? proto);
    if (xfh !== null) out.push('x-forwarded-host', xfh);
    else if (host !== '') out.push('x-forwarded-host', host);
  }
  if (s.via !== null) out.push('via', via === null ? s.via : `${via}, ${s.via}`);
  return { headers: drop !== null ? dropNamed(out, drop) : out, host, contentLength, chunked, upgrade };
}

/**
 * A response's raw headers (undici gives Buffers) as the flat string list
 * node:http's writeHead takes, hop-by-hop removed and Via added. For a 101
 * the Connection and Upgrade fields are kept: they are the switch itself.
 */
export function responseHeaders(raw: readonly Buffer[] | readonly string[] | null, via: string | null, switching = false): string[] {
  const out: string[] = [];
  let drop: string[] | null = null;
  let prior: string | null = null;
  if (raw !== null) {
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      const v = raw[i + 1]!;
      const name = typeof n === 'string' ? n : n.toString('latin1');
      const value = typeof v === 'string' ? v : v.toString('latin1');
      switch (classify(name)) {
        case H.Other:
        case H.ContentLength:
        case H.Xff:
        case H.Xfp:
        case H.Xfh:
        case H.Host:
        case H.Expect:
          out.push(name, value);
          break;
        case H.Via:
          if (via === null) out.push(name, value);
          else prior = prior === null ? value : `${prior}, ${value}`;
          break;
        case H.Connection:
          if (switching) out.push(name, value);
          else drop = connectionTokens(value, drop);
          break;
        case H.Upgrade:
          if (switching) out.push(name, value);
          break;
        default:
        // Hop-by-hop: not forwarded.
      }
    }
  }
  if (via !== null) out.push('via', prior === null ? via : `${prior}, ${via}`);
  return drop !== null ? dropNamed(out, drop) : out;
}
