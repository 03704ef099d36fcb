/**
 * A tiny authoritative DNS server over UDP on loopback, answering SRV queries
 * from a table the test changes at will (RFC 1035 wire format, written by
 * hand: this is test code, and the point is to be a second implementation,
 * independent of the c-ares resolver under test).
 *
 *   header   id(2) flags(2) qdcount(2) ancount(2) nscount(2) arcount(2)
 *   question name(labels) type(2) class(2)
 *   answer   name(pointer 0xC00C) type(2)=33 class(2)=1 ttl(4) rdlength(2)
 *            rdata: priority(2) weight(2) port(2) target(labels, uncompressed)
 *
 * A name not in the table gets NXDOMAIN; a known name asked for another type
 * gets an empty NOERROR answer.
 */
import { createSocket, type Socket, type RemoteInfo } from 'node:dgram';

export interface SrvEntry {
  priority?: number;
  weight?: number;
  port: number;
  target: string;
}

const TYPE_SRV = 33;
const CLASS_IN = 1;

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter((p) => p.length > 0);
  const bufs: Buffer[] = [];
  for (const p of parts) {
    const b = Buffer.from(p, 'ascii');
    if (b.length > 63) throw new Error(`label too long: ${p}`);
    bufs.push(Buffer.from([b.length]), b);
  }
  bufs.push(Buffer.from([0]));
  return Buffer.concat(bufs);
}

/** Reads the question name (queries never use compression there). Returns the name and the offset after it. */
function readName(msg: Buffer, offset: number): [string, number] {
  const labels: string[] = [];
  for (;;) {
    const len = msg[offset];
    if (len === undefined) throw new Error('truncated name');
    offset++;
    if (len === 0) break;
    if (len >= 0xc0) throw new Error('compressed question name');
    labels.push(msg.toString('ascii', offset, offset + len));
    offset += len;
  }
  return [labels.join('.'), offset];
}

export class SrvDnsServer {
  /** name (lower case, no trailing dot) -> records. */
  readonly records = new Map<string, SrvEntry[]>();
  queries = 0;
  private socket: Socket | null = null;
  port = 0;

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  set(name: string, entries: SrvEntry[]): void {
    this.records.set(name.toLowerCase().replace(/\.$/, ''), entries);
  }

  delete(name: string): void {
    this.records.delete(name.toLowerCase().replace(/\.$/, ''));
  }

  /** Binds a UDP socket (a free port the first time, the same port again after stop()). */
  start(): Promise<void> {
    const sock = createSocket('udp4');
    sock.on('message', (msg, rinfo) => this.answer(sock, msg, rinfo));
    sock.on('error', () => {});
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(this.port, '127.0.0.1', () => {
        sock.removeListener('error', reject);
        this.port = sock.address().port;
        this.socket = sock;
        resolve();
      });
    });
  }

  /** Closes the socket: queries then get ICMP port unreachable (the registry is down). */
  stop(): Promise<void> {
    const s = this.socket;
    this.socket = null;
    return new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()));
  }

  private answer(sock: Socket, msg: Buffer, rinfo: RemoteInfo): void {
    if (msg.length < 12) return;
    this.queries++;
    const id = msg.readUInt16BE(0);
    const flags = msg.readUInt16BE(2);
    const qd = msg.readUInt16BE(4);
    if (qd !== 1 || flags & 0x8000) return;
    let name: string;
    let end: number;
    try {
      [name, end] = readName(msg, 12);
    } catch {
      return;
    }
    if (end + 4 > msg.length) return;
    const qtype = msg.readUInt16BE(end);
    const question = msg.subarray(12, end + 4);
    const entries = this.records.get(name.toLowerCase());
    const answers: Buffer[] = [];
    let rcode = 0;
    if (entries === undefined) rcode = 3; // NXDOMAIN
    else if (qtype === TYPE_SRV) {
      for (const e of entries) {
        const target = encodeName(e.target);
        const rr = Buffer.alloc(12 + 6);
        rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
        rr.writeUInt16BE(TYPE_SRV, 2);
        rr.writeUInt16BE(CLASS_IN, 4);
        rr.writeUInt32BE(5, 6); // TTL
        rr.writeUInt16BE(6 + target.length, 10);
        rr.writeUInt16BE(e.priority ?? 0, 12);
        rr.writeUInt16BE(e.weight ?? 0, 14);
        rr.writeUInt16BE(e.port, 16);
        answers.push(rr, target);
      }
    }
    const header = Buffer.alloc(12);
    header.writeUInt16BE(id, 0);
    // QR=1, opcode from the query, AA=1, RD copied, RA=0, rcode.
    header.writeUInt16BE(0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | rcode, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(entries && qtype === TYPE_SRV ? entries.length : 0, 6);
    sock.send(Buffer.concat([header, question, ...answers]), rinfo.port, rinfo.address);
  }
}

export async function startSrvDns(): Promise<SrvDnsServer> {
  const s = new SrvDnsServer();
  await s.start();
  return s;
}
