/**
 * Client side fast path: the plain request most traffic is made of is read
 * and answered without node:http; anything else hands the connection to
 * node:http (with the bytes already read), which keeps it from then on.
 *
 * Why: measured on loopback, node:http's server side cost about 11 us of
 * CPU per request more than reading and writing the socket directly (of
 * some 40 us the whole proxied request cost after the upstream fast path).
 *
 * Taken here (all must hold; otherwise node:http gets the connection):
 *   request-line = method SP origin-form SP "HTTP/1.1" CRLF
 *     method GET / HEAD / DELETE / OPTIONS; target starts with "/", bytes 0x21-0x7E
 *   field-line   = token ":" OWS value OWS CRLF, value bytes HTAB / 0x20-0x7E
 *   Host present; no Transfer-Encoding, Expect, Upgrade; Content-Length only "0";
 *   Connection only "keep-alive"; the whole head within the first read and
 *   within max_header_size.
 * So no request here has a body, and node:http's checks (431, 400, 100-continue,
 * header and request timeouts, chunked bodies) apply to every request that
 * could need them. Responses are written in one write when small: status
 * line, the given headers, Date and keep-alive fields, then the body framed
 * by the given Content-Length or chunked. Requests that arrive while a
 * response is in flight (pipelining) wait in the buffer, answered in order.
 */
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';

const METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);

/** RFC 9110 tchar. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** Fields node:http keeps only the first of in req.headers (others are joined with ", "). */
const FIRST_ONLY = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const INVALID_NAME = /[^!#$%&'*+.^_`|~0-9A-Za-z-]/;

let dateSecond = -1;
let dateLine = '';
/** "date: <IMF-fixdate>\r\n", made once a second. */
function dateField(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateLine = `date: ${new Date(now).toUTCString()}\r\n`;
  }
  return dateLine;
}

/** What the listener sees of a request read here (the members of IncomingMessage it uses). */
export class FastRequest {
  readonly complete = true;
  readonly httpVersion = '1.1';
  private parsed: Record<string, string> | null = null;
  constructor(
    readonly method: string,
    readonly url: string,
    readonly rawHeaders: string[],
    readonly socket: Socket,
    readonly clientIp: string,
  ) {}

  /** Lowercased names, node:http's joining rules (header-matching routes read it). */
  get headers(): Record<string, string> {
    if (this.parsed !== null) return this.parsed;
    const h: Record<string, string> = Object.create(null) as Record<string, string>;
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!.toLowerCase();
      const prev = h[n];
      if (prev === undefined) h[n] = raw[i + 1]!;
      else if (!FIRST_ONLY.has(n)) h[n] = n === 'cookie' ? `${prev}; ${raw[i + 1]}` : `${prev}, ${raw[i + 1]}`;
    }
    return (this.parsed = h);
  }
}

type Listener = (this: FastResponse) => void;

/** The members of ServerResponse the listener uses, written straight to the socket. */
export class FastResponse {
  statusCode = 200;
  headersSent = false;
  shouldKeepAlive = true;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  private head: string | null = null;
  private chunked = false;
  private noBody: boolean;
  private closeFn: Listener | null = null;
  drainFn: Listener | null = null;
  private closed = false;

  constructor(
    private readonly conn: FastClientConnection,
    readonly socket: Socket,
    method: string,
  ) {
    this.noBody = method === 'HEAD';
  }

  on(event: string, fn: Listener): this {
    if (event === 'close') this.closeFn = fn;
    else if (event === 'drain') this.drainFn = fn;
    return this;
  }

  writeHead(status: number, a?: string | readonly string[], b?: readonly string[]): this {
    if (this.headersSent) throw new Error('headers already sent');
    const text = typeof a === 'string' && a !== '' ? a : (STATUS_CODES[status] ?? 'unknown');
    const headers = typeof a === 'string' ? b : a;
    if (INVALID_VALUE.test(text) || text.includes('\r') || text.includes('\n')) throw new Error('invalid status message');
    let head = `HTTP/1.1 ${status} ${text}\r\n`;
    let length = false;
    if (headers !== undefined) {
      for (let i = 0; i < headers.length; i += 2) {
        const n = headers[i]!;
        const v = headers[i + 1]!;
        if (n === '' || INVALID_NAME.test(n)) throw new Error(`invalid header name ${JSON.stringify(n)}`);
        if (INVALID_VALUE.test(v)) throw new Error(`invalid character in header ${n}`);
        if (n.length === 14 && n.toLowerCase() === 'content-length') length = true;
        head += `${n}: ${v}\r\n`;
      }
    }
    if (status === 204 || status === 304 || status < 200) this.noBody = true;
    // Like node:http: no framing field for a response without a body (HEAD, 204, 304), chunked when the length is unknown.
    if (!length && !this.noBody) {
      this.chunked = true;
      head += 'transfer-encoding: chunked\r\n';
    }
    head += dateField();
    head += this.shouldKeepAlive ? this.conn.keepAliveFields : 'connection: close\r\n';
    this.statusCode = status;
    this.head = `${head}\r\n`;
    this.headersSent = true;
    return this;
  }

  write(chunk: Buffer): boolean {
    if (this.writableEnded || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(this.statusCode, []);
    const s = this.socket;
    const head = this.head;
    if (this.noBody) {
      if (head !== null) {
        this.head = null;
        return s.write(head, 'latin1');
      }
      return true;
    }
    if (chunk.length === 0) return true;
    if (this.chunked) {
      s.cork();
      if (head !== null) {
        this.head = null;
        s.write(head, 'latin1');
      }
      s.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      s.write(chunk);
      const ok = s.write('\r\n', 'latin1');
      s.uncork();
      return ok;
    }
    if (head !== null) {
      this.head = null;
      if (chunk.length <= 16384) {
        // One buffer, one write(2): cheaper than a corked writev of two.
        const out = Buffer.allocUnsafe(head.length + chunk.length);
        out.write(head, 0, 'latin1');
        chunk.copy(out, head.length);
        return s.write(out);
      }
      s.cork();
      s.write(head, 'latin1');
      const ok = s.write(chunk);
      s.uncork();
      return ok;
    }
    return s.write(chunk);
  }

  end(chunk?: Buffer): this {
    if (this.writableEnded || this.destroyed) return this;
    if (!this.headersSent) {
      // Nothing written yet and no head: an empty 200 like node:http's.
      this.writeHead(this.statusCode, chunk !== undefined ? ['content-length', String(chunk.length)] : ['content-length', '0']);
    }
    const s = this.socket;
    s.cork();
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    else if (this.head !== null) {
      s.write(this.head, 'latin1');
      this.head = null;
    }
    if (this.chunked && !this.noBody) s.write('0\r\n\r\n', 'latin1');
    s.uncork();
    this.writableEnded = true;
    this.writableFinished = true;
    this.conn.responseEnded(this);
    this.emitClose();
    return this;
  }

  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.socket.destroy();
    this.emitClose();
    return this;
  }

  emitClose(): void {
    if (this.closed) return;
    this.closed = true;
    const fn = this.closeFn;
    if (fn !== null) fn.call(this);
  }
}

/** What the connection needs from its listener. */
export interface FastClientHost {
  /** Takes a request; false: node:http should have this request (and the connection). */
  fastRequest(req: FastRequest, res: FastResponse): boolean;
  /** Gives the connection to node:http (bytes already read were put back on the socket). */
  handover(socket: Socket): void;
}

export interface FastClientSettings {
  maxHeaderSize: number;
  keepAliveTimeoutMs: number;
  /** performance.now() as of the listener's last sweep, and the sweep period (the stamp's possible lag). */
  clock: { now: number; lagMs: number };
  /** Close after this many requests (0: no limit). */
  maxRequests: number;
}

/** One client connection while it stays on the fast path. */
export class FastClientConnection {
  private buf: Buffer | null = null;
  private cur: FastResponse | null = null;
  private requests = 0;
  private gone = false;
  private ending = false;
  private scheduled = false;
  /** When the connection became idle (turn clock), or -1 while a request is in flight. */
  idleSince = 0;
  /** The client address as X-Forwarded-For shows it. */
  readonly clientIp: string;
  readonly keepAliveFields: string;
  private readonly onDataFn = (d: Buffer): void => this.onData(d);
  private readonly onEndFn = (): void => this.onEnd();
  private readonly onCloseFn = (): void => this.onClose();
  private readonly onErrorFn = (): void => {
    this.socket.destroy();
  };
  private readonly onDrainFn = (): void => {
    const r = this.cur;
    if (r !== null && r.drainFn !== null) r.drainFn.call(r);
  };

  constructor(
    private readonly host: FastClientHost,
    readonly socket: Socket,
    private readonly s: FastClientSettings,
    private readonly registry: Set<FastClientConnection>,
  ) {
    const ka = Math.floor(s.keepAliveTimeoutMs / 1000);
    this.keepAliveFields = ka > 0 ? `connection: keep-alive\r\nkeep-alive: timeout=${ka}\r\n` : 'connection: keep-alive\r\n';
    this.idleSince = s.clock.now;
    this.clientIp = clientIp(socket);
    registry.add(this);
    socket.setNoDelay(true);
    socket.on('data', this.onDataFn);
    socket.on('end', this.onEndFn);
    socket.on('close', this.onCloseFn);
    socket.on('error', this.onErrorFn);
    socket.on('drain', this.onDrainFn);
  }

  private onData(d: Buffer): void {
    this.buf = this.buf === null ? d : Buffer.concat([this.buf, d]);
    if (this.cur !== null) {
      // Pipelined: wait for the response in flight; do not read without bound meanwhile.
      if (this.buf.length > this.s.maxHeaderSize) this.socket.pause();
      return;
    }
    this.next();
  }

  /** Serves the buffered request(s), or hands the connection over. */
  private next(): void {
    while (this.cur === null && this.buf !== null && !this.gone) {
      const b = this.buf;
      const end = b.indexOf('\r\n\r\n', 0, 'latin1');
      if (end < 0 || end + 4 > this.s.maxHeaderSize) {
        this.handover();
        return;
      }
      const head = b.toString('latin1', 0, end);
      const parsed = parseHead(head);
      if (parsed === null) {
        this.handover();
        return;
      }
      const rest = end + 4 < b.length ? b.subarray(end + 4) : null;
      const req = new FastRequest(parsed.method, parsed.url, parsed.raw, this.socket, this.clientIp);
      const res = new FastResponse(this, this.socket, parsed.method);
      this.requests++;
      if (this.ending || (this.s.maxRequests > 0 && this.requests >= this.s.maxRequests)) res.shouldKeepAlive = false;
      this.cur = res;
      this.idleSince = -1;
      // The response may end within fastRequest: the buffer must already be what follows this request.
      this.buf = rest;
      if (!this.host.fastRequest(req, res)) {
        // Refused: node:http gets the request whole.
        this.buf = b;
        this.cur = null;
        this.requests--;
        this.handover();
        return;
      }
    }
    if (this.buf === null && this.ending && this.cur === null) this.socket.end();
  }

  /** The response was written completely. */
  responseEnded(res: FastResponse): void {
    if (this.cur !== res) return;
    this.cur = null;
    if (!res.shouldKeepAlive) {
      this.gone = true;
      this.detach();
      this.socket.end();
      return;
    }
    this.idleSince = this.s.clock.now;
    if (this.socket.isPaused()) this.socket.resume();
    if (this.buf !== null && !this.scheduled) {
      // Not inside the upstream's callback that ended this response.
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        if (this.cur === null && !this.gone) this.next();
      });
    } else if (this.buf === null && this.ending) this.socket.end();
  }

  private handover(): void {
    if (this.gone) return;
    this.gone = true;
    const s = this.socket;
    s.pause();
    this.detach();
    const buf = this.buf;
    this.buf = null;
    // node:http must read through 'data' events, not from the handle directly: it gets the bytes put back first.
    const h = (s as Socket & { _handle?: { _consumed?: boolean } | null })._handle;
    if (h) h._consumed = true;
    if (buf !== null) s.unshift(buf);
    this.host.handover(s);
    s.resume();
  }

  private detach(): void {
    this.registry.delete(this);
    const s = this.socket;
    s.removeListener('data', this.onDataFn);
    s.removeListener('end', this.onEndFn);
    s.removeListener('close', this.onCloseFn);
    s.removeListener('error', this.onErrorFn);
    s.removeListener('drain', this.onDrainFn);
    // Errors after the last response (a reset) must not be unhandled.
    if (this.cur === null) s.on('error', noop);
  }

  private onEnd(): void {
    // The client sent everything it will: answer what is buffered, then close.
    this.ending = true;
    if (this.cur === null && this.buf === null) this.socket.end();
    else if (this.cur === null) this.next();
  }

  private onClose(): void {
    this.registry.delete(this);
    this.gone = true;
    const r = this.cur;
    this.cur = null;
    if (r !== null) {
      r.destroyed = true;
      r.emitClose();
    }
  }

  /** Closes the connection when idle past the keep-alive timeout (the listener's sweep calls this). */
  sweep(now: number): void {
    if (this.idleSince >= 0 && this.s.keepAliveTimeoutMs > 0 && now - this.idleSince - this.s.clock.lagMs >= this.s.keepAliveTimeoutMs) this.socket.destroy();
  }
}

function noop(): void {}

/** Client IPs as X-Forwarded-For shows them (IPv4-mapped IPv6 as plain IPv4). */
export function clientIp(socket: Socket): string {
  const a = socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.indexOf('.') > 0 ? a.slice(7) : a;
}

interface ParsedHead {
  method: string;
  url: string;
  raw: string[];
}

/** The request head if it is one the fast path takes, else null. */
export function parseHead(head: string): ParsedHead | null {
  const sp1 = head.indexOf(' ');
  if (sp1 < 3 || sp1 > 7) return null;
  const method = head.slice(0, sp1);
  if (!METHODS.has(method)) return null;
  const lineEnd = head.indexOf('\r\n');
  const line = lineEnd < 0 ? head : head.slice(0, lineEnd);
  if (!line.endsWith(' HTTP/1.1')) return null;
  const urlEnd = line.length - 9;
  if (urlEnd <= sp1 + 1 || head.charCodeAt(sp1 + 1) !== 0x2f /* / */) return null;
  for (let i = sp1 + 1; i < urlEnd; i++) {
    const c = head.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return null;
  }
  const url = head.slice(sp1 + 1, urlEnd);
  const raw: string[] = [];
  let host = false;
  let length = false;
  let pos = lineEnd + 2;
  if (lineEnd < 0) return null;
  while (pos < head.length) {
    let e = head.indexOf('\r\n', pos);
    if (e < 0) e = head.length;
    let colon = -1;
    for (let i = pos; i < e; i++) {
      const c = head.charCodeAt(i);
      if (c === 0x3a) {
        colon = i;
        break;
      }
      if (c > 0x7f || TCHAR[c] !== 1) return null;
    }
    if (colon <= pos) return null;
    let vs = colon + 1;
    let ve = e;
    for (let i = vs; i < ve; i++) {
      const c = head.charCodeAt(i);
      if ((c < 0x20 && c !== 0x09) || c > 0x7e) return null;
    }
    while (vs < ve && (head.charCodeAt(vs) === 0x20 || head.charCodeAt(vs) === 0x09)) vs++;
    while (ve > vs && (head.charCodeAt(ve - 1) === 0x20 || head.charCodeAt(ve - 1) === 0x09)) ve--;
    const name = head.slice(pos, colon);
    const value = head.slice(vs, ve);
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'host') {
          if (host) return null;
          host = true;
        }
        break;
      case 6:
        if (name.toLowerCase() === 'expect') return null;
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') return null;
        break;
      case 10:
        if (name.toLowerCase() === 'connection' && value.toLowerCase() !== 'keep-alive') return null;
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          // Only one, and "0": node:http judges any other framing (duplicates are a 400 there).
          if (value !== '0' || length) return null;
          length = true;
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') return null;
        break;
      default:
    }
    raw.push(name, value);
    pos = e + 2;
  }
  return host ? { method, url, raw } : null;
}
