/**
 * Where a translating upstream sends its calls: a Portway Cluster (picks an
 * endpoint per call, takes health reports), or a fixed list of addresses for
 * tools and tests. Structural, so a Cluster fits without an adapter.
 */
import { formatHostPort, parseHostPort } from '../util/address';

export interface RpcEndpoint {
  readonly host: string;
  readonly port: number;
  /** host:port as connected to. */
  readonly address: string;
  /** In-flight requests, read by least_request balancers (a Cluster's Endpoint has it). */
  rqActive?: number;
  readonly rqTotal?: { inc(n?: number): void };
  readonly rqError?: { inc(n?: number): void };
}

export interface EndpointPicker<E extends RpcEndpoint = RpcEndpoint> {
  readonly name: string;
  /** An endpoint for one call, skipping those in exclude; null when none can be used. */
  pick(exclude?: ReadonlySet<E> | null): E | null;
  reportConnectFailure?(ep: E): void;
  reportConnectSuccess?(ep: E): void;
  /** ok=false only for transport failures that are the endpoint's fault, never for application faults. */
  reportResult?(ep: E, ok: boolean): void;
}

/** Round robin over fixed addresses (host:port): for tests, benchmarks and tools outside a config. */
export function staticEndpoints(addresses: readonly string[], name = 'static'): EndpointPicker {
  if (addresses.length === 0) throw new Error('staticEndpoints: no address');
  const eps: RpcEndpoint[] = addresses.map((a) => {
    const hp = parseHostPort(a);
    if (typeof hp === 'string') throw new Error(`staticEndpoints: ${hp}`);
    const { host, port } = hp;
    return { host, port, address: formatHostPort(host, port) };
  });
  let next = 0;
  return {
    name,
    pick(exclude) {
      for (let i = 0; i < eps.length; i++) {
        const ep = eps[next++ % eps.length]!;
        if (exclude === undefined || exclude === null || !exclude.has(ep)) return ep;
      }
      return null;
    },
  };
}
