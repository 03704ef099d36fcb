import { isIP } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses the "host:port" and "[v6]:port" forms used throughout the config.
 * Returns a reason string instead of throwing so config validation can report it.
 */
export function parseHostPort(s: string): HostPort | string {
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0 || s[end + 1] !== ':') return `'${s}' is not [ipv6]:port`;
    host = s.slice(1, end);
    portText = s.slice(end + 2);
    if (isIP(host) !== 6) return `'${host}' is not an IPv6 address`;
  } else {
    const i = s.lastIndexOf(':');
    if (i <= 0) return `'${s}' must be host:port`;
    host = s.slice(0, i);
    portText = s.slice(i + 1);
    if (host.includes(':')) return `'${s}': write IPv6 addresses as [addr]:port`;
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return `port '${portText}' is not a number`;
  const port = Number(portText);
  if (port > 65535) return `port ${port} is out of range (0-65535)`;
  if (!/^[A-Za-z0-9._:-]+$/.test(host)) return `host '${host}' is not a valid host name or address`;
  return { host, port };
}

export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** An IPv4/IPv6 CIDR matcher, compiled once. */
export class Cidr {
  private readonly family: 4 | 6;
  private readonly bits: number;
  private readonly net: bigint;
  private readonly mask: bigint;

  constructor(readonly text: string) {
    const slash = text.indexOf('/');
    const addr = slash < 0 ? text : text.slice(0, slash);
    const fam = isIP(addr);
    if (fam === 0) throw new Error(`'${text}' is not a CIDR (address/bits)`);
    this.family = fam as 4 | 6;
    const max = fam === 4 ? 32 : 128;
    const bitsText = slash < 0 ? String(max) : text.slice(slash + 1);
    this.bits = /^[0-9]{1,3}$/.test(bitsText) ? Number(bitsText) : -1;
    if (this.bits < 0 || this.bits > max) throw new Error(`'${text}': prefix length must be 0-${max}`);
    this.mask = this.bits === 0 ? 0n : ((1n << BigInt(this.bits)) - 1n) << BigInt(max - this.bits);
    this.net = ipToBigInt(addr, this.family) & this.mask;
  }

  contains(ip: string): boolean {
    let fam = isIP(ip);
    if (fam === 6 && this.family === 4 && ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4) {
      ip = ip.slice(7);
      fam = 4;
    }
    if (fam !== this.family) return false;
    return (ipToBigInt(ip, this.family) & this.mask) === this.net;
  }
}

function ipToBigInt(ip: string, family: 4 | 6): bigint {
  if (family === 4) {
    let n = 0n;
    for (const part of ip.split('.')) n = (n << 8n) | BigInt(Number(part));
    return n;
  }
  // Expand "::" and an embedded IPv4 tail.
  let head = ip;
  let tail4: number[] = [];
  const lastColon = ip.lastIndexOf(':');
  if (ip.slice(lastColon + 1).includes('.')) {
    tail4 = ip.slice(lastColon + 1).split('.').map(Number);
    head = ip.slice(0, lastColon + 1) + '0:0';
  }
  const [l, r] = head.split('::') as [string, string | undefined];
  const left = l ? l.split(':') : [];
  const right = r !== undefined && r !== '' ? r.split(':') : [];
  const groups = r === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(parseInt(g || '0', 16));
  if (tail4.length === 4) n = (n & ~0xffffffffn) | BigInt(((tail4[0]! << 24) >>> 0) + (tail4[1]! << 16) + (tail4[2]! << 8) + tail4[3]!);
  return n;
}
