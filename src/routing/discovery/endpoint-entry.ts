/**
 * Turns what a registry holds into EndpointConfig: the shapes a person or a
 * tool writes into a file or a key-value store.
 *
 *   "host:port"                                    weight 1, no metadata
 *   {address: "host:port", weight?, metadata?}
 *   {host, port, weight?, metadata?}
 *
 * Weights are positive integers; metadata values are strings (numbers and
 * booleans are written as strings).
 */
import type { EndpointConfig } from '../../config/types';
import { formatHostPort, parseHostPort } from '../../util/address';

export function makeEndpoint(host: string, port: number, weight: number, metadata?: Record<string, string>): EndpointConfig {
  const ep: EndpointConfig = { address: formatHostPort(host, port), host, port, weight };
  if (metadata && Object.keys(metadata).length > 0) ep.metadata = metadata;
  return ep;
}

/** A registry weight (possibly 0, fractional or huge) as a cluster weight: an integer of at least 1. */
export function clampWeight(w: number): number {
  if (!Number.isFinite(w)) return 1;
  return Math.min(Math.max(1, Math.round(w)), 1_000_000);
}

const KNOWN_KEYS = new Set(['address', 'host', 'port', 'weight', 'metadata']);

/**
 * Parses one entry. Returns a reason string when it is not an endpoint.
 * `strict` rejects unknown keys (a file written by hand: a typo should be
 * reported); without it they are ignored (values written by other tools).
 */
export function endpointFromEntry(entry: unknown, strict: boolean): EndpointConfig | string {
  if (typeof entry === 'string') return fromAddress(entry, 1, undefined);
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return 'must be "host:port" or an object with an address';
  const o = entry as Record<string, unknown>;
  if (strict) {
    const unknown = Object.keys(o).filter((k) => !KNOWN_KEYS.has(k));
    if (unknown.length) return `unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} (expected address, weight, metadata)`;
  }
  let weight = 1;
  if (o.weight !== undefined) {
    if (typeof o.weight !== 'number' || !Number.isInteger(o.weight) || o.weight < 1) return 'weight must be a positive integer';
    weight = o.weight;
  }
  let metadata: Record<string, string> | undefined;
  if (o.metadata !== undefined && o.metadata !== null) {
    if (typeof o.metadata !== 'object' || Array.isArray(o.metadata)) return 'metadata must be a map of strings';
    metadata = {};
    for (const [k, v] of Object.entries(o.metadata as Record<string, unknown>)) {
      if (typeof v === 'string') metadata[k] = v;
      else if (typeof v === 'number' || typeof v === 'boolean') metadata[k] = String(v);
      else return `metadata.${k} must be a string, number or boolean`;
    }
  }
  if (typeof o.address === 'string') return fromAddress(o.address, weight, metadata);
  if (o.address !== undefined) return 'address must be a "host:port" string';
  if (typeof o.host === 'string' && (typeof o.port === 'number' || typeof o.port === 'string')) {
    const host = o.host.startsWith('[') && o.host.endsWith(']') ? o.host.slice(1, -1) : o.host;
    return fromAddress(`${host.includes(':') ? `[${host}]` : host}:${String(o.port)}`, weight, metadata);
  }
  return 'needs an address ("host:port") or host and port';
}

function fromAddress(address: string, weight: number, metadata: Record<string, string> | undefined): EndpointConfig | string {
  const hp = parseHostPort(address.trim());
  if (typeof hp === 'string') return hp;
  if (hp.port === 0) return `port 0 is not a valid upstream port ('${address}')`;
  return makeEndpoint(hp.host, hp.port, weight, metadata);
}
