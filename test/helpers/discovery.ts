import assert from 'node:assert/strict';
import { builtins } from '../../src/builtins';
import { loadConfigText } from '../../src/config/load';
import { startPortway, type InProcess } from './portway';
import { tcpServer, roundTrip, http, waitFor, type TestServer } from './net';

/** Shared harness of the discovery integration tests. */

/** An upstream that answers "<name>:<what it received>" once the client half-closes. */
export function namedEcho(name: string): Promise<TestServer> {
  return tcpServer(
    (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => s.end(`${name}:${Buffer.concat(chunks).toString()}`));
    },
    { allowHalfOpen: true },
  );
}

/** The three named echo upstreams 'a', 'b' and 'c'. */
export function namedEchoes(): Promise<[TestServer, TestServer, TestServer]> {
  return Promise.all([namedEcho('a'), namedEcho('b'), namedEcho('c')]);
}

/** Opens n connections through the proxy; returns the names of the upstreams that answered (bytes checked both ways). */
export async function reached(port: number, n: number): Promise<string[]> {
  const names = new Set<string>();
  for (let i = 0; i < n; i++) {
    const reply = (await roundTrip(port, `ping-${i}`)).toString();
    const [name, echoed] = reply.split(':');
    assert.equal(echoed, `ping-${i}`, `reply '${reply}'`);
    names.add(name!);
  }
  return [...names].sort();
}

/** The cluster's entry in the admin /clusters listing. */
export async function cluster(pw: InProcess, name = 'up'): Promise<any> {
  const body = (await http('GET', `${pw.admin}/clusters`)).json();
  return body.clusters.find((c: { name: string }) => c.name === name);
}

/** Polls /clusters until the cluster's endpoint addresses are exactly `addresses`; returns that cluster entry. */
export async function endpointsAre(pw: InProcess, addresses: string[], opts: { cluster?: string; ms?: number } = {}): Promise<any> {
  const name = opts.cluster ?? 'up';
  const want = [...addresses].sort().join(',');
  return waitFor(
    async () => {
      const c = await cluster(pw, name);
      const have = c.endpoints.map((e: { address: string }) => e.address).sort().join(',');
      return have === want ? c : null;
    },
    opts.ms ?? 5000,
    opts.cluster === undefined ? `endpoints ${want}` : `${name} endpoints ${want}`,
  );
}

/**
 * Runs Portway with one TCP listener 'main' routed to one cluster 'up' whose
 * endpoints come from `discovery` (a YAML flow mapping).
 */
export function startDiscovered(discovery: string, opts: { lb?: string } = {}): Promise<InProcess> {
  const lb = opts.lb ? `    lb: ${opts.lb}\n` : '';
  return startPortway(`
listeners:
  - { name: main, address: 127.0.0.1:0, protocol: tcp, routes: [{ cluster: up }] }
clusters:
  - name: up
${lb}    discovery: ${discovery}
`);
}

/** Loads a config with no listeners and one cluster 'up' discovered by `type` with the settings `extra`. */
export function loadDiscoveryConfig(type: string, extra: string) {
  return loadConfigText(`listeners: []\nclusters:\n  - { name: up, discovery: { type: ${type}, ${extra} } }\n`, builtins().registries);
}
