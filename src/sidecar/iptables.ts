/**
 * The nat rules that send a pod's traffic through Portway, as a service-mesh
 * init container installs them:
 *
 *   PREROUTING -p tcp -> PORTWAY_INBOUND     (traffic arriving for the app)
 *       excluded inbound ports RETURN; included ones -> PORTWAY_IN_REDIRECT
 *   PORTWAY_IN_REDIRECT -p tcp -j REDIRECT --to-ports <inbound port>
 *
 *   OUTPUT -p tcp -> PORTWAY_OUTPUT          (traffic the app sends out)
 *       Portway's own uid/gid RETURN (its upstream connections must not loop back)
 *       loopback destinations RETURN, excluded ports and CIDRs RETURN
 *       included CIDRs (and ports) -> PORTWAY_REDIRECT
 *   PORTWAY_REDIRECT -p tcp -j REDIRECT --to-ports <outbound port>
 *
 * Only our own chains and the two jumps into them are ever touched: apply
 * creates or flushes and refills the chains and adds a jump only when it is
 * missing (so applying twice changes nothing), clean removes the jumps and
 * the chains and nothing else.
 */
import { spawnSync } from 'node:child_process';
import { isIPv4, isIPv6 } from 'node:net';

export const CHAINS = {
  inbound: 'PORTWAY_INBOUND',
  inboundRedirect: 'PORTWAY_IN_REDIRECT',
  output: 'PORTWAY_OUTPUT',
  redirect: 'PORTWAY_REDIRECT',
} as const;

export type Backend = 'nft' | 'legacy' | 'default';

export interface InterceptionOptions {
  /** Where inbound traffic is redirected; null: no inbound interception. */
  inboundPort: number | null;
  /** Where outbound traffic is redirected; null: no outbound interception. */
  outboundPort: number | null;
  /** Inbound destination ports to intercept; '*' for all. */
  includeInboundPorts: number[] | '*';
  excludeInboundPorts: number[];
  /** Outbound destination CIDRs to intercept; '*' for all. */
  includeOutboundCidrs: string[] | '*';
  excludeOutboundCidrs: string[];
  /** Outbound destination ports to intercept; '*' for all. */
  includeOutboundPorts: number[] | '*';
  excludeOutboundPorts: number[];
  /** Portway's own user and group ids (names are accepted too): their connections are never redirected. */
  excludeUids: string[];
  excludeGids: string[];
  /** Leave connections to loopback destinations (127.0.0.0/8, ::1) alone. */
  skipLoopback: boolean;
  family: 4 | 6;
}

export const DEFAULT_OPTIONS: InterceptionOptions = {
  inboundPort: null,
  outboundPort: null,
  includeInboundPorts: '*',
  excludeInboundPorts: [],
  includeOutboundCidrs: '*',
  excludeOutboundCidrs: [],
  includeOutboundPorts: '*',
  excludeOutboundPorts: [],
  excludeUids: [],
  excludeGids: [],
  skipLoopback: true,
  family: 4,
};

/** The iptables program for a backend and address family. */
export function iptablesBinary(backend: Backend, family: 4 | 6): string {
  const base = family === 6 ? 'ip6tables' : 'iptables';
  return backend === 'default' ? base : `${base}-${backend}`;
}

/** One rule: the chain it is appended to and its match/target arguments. */
export interface Rule {
  chain: string;
  args: string[];
}

export interface RuleSet {
  /** Our chains, in creation order. */
  chains: string[];
  /** Rules inside our chains, in order. */
  rules: Rule[];
  /** Jumps from the built-in chains (PREROUTING, OUTPUT) into ours. */
  jumps: Rule[];
}

function checkPort(p: number, what: string): void {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`${what}: ${p} is not a port (1-65535)`);
}

function checkCidr(c: string, family: 4 | 6): void {
  const [ip, len, ...rest] = c.split('/');
  const ok = family === 4 ? isIPv4(ip ?? '') : isIPv6(ip ?? '');
  const max = family === 4 ? 32 : 128;
  if (!ok || rest.length > 0 || (len !== undefined && !(/^[0-9]+$/.test(len) && Number(len) <= max))) {
    throw new Error(`'${c}' is not an IPv${family} address or CIDR`);
  }
}

/** The rules for the options; throws on an invalid option (a bad port or CIDR). */
export function buildRules(o: InterceptionOptions): RuleSet {
  const chains: string[] = [];
  const rules: Rule[] = [];
  const jumps: Rule[] = [];
  const fam = o.family;
  if (o.inboundPort !== null) {
    checkPort(o.inboundPort, 'inbound port');
    chains.push(CHAINS.inbound, CHAINS.inboundRedirect);
    rules.push({ chain: CHAINS.inboundRedirect, args: ['-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(o.inboundPort)] });
    // Connections to Portway's own inbound port are never redirected again.
    rules.push({ chain: CHAINS.inbound, args: ['-p', 'tcp', '--dport', String(o.inboundPort), '-j', 'RETURN'] });
    for (const p of o.excludeInboundPorts) {
      checkPort(p, 'excluded inbound port');
      rules.push({ chain: CHAINS.inbound, args: ['-p', 'tcp', '--dport', String(p), '-j', 'RETURN'] });
    }
    if (o.includeInboundPorts === '*') rules.push({ chain: CHAINS.inbound, args: ['-p', 'tcp', '-j', CHAINS.inboundRedirect] });
    else
      for (const p of o.includeInboundPorts) {
        checkPort(p, 'included inbound port');
        rules.push({ chain: CHAINS.inbound, args: ['-p', 'tcp', '--dport', String(p), '-j', CHAINS.inboundRedirect] });
      }
    jumps.push({ chain: 'PREROUTING', args: ['-p', 'tcp', '-j', CHAINS.inbound] });
  }
  if (o.outboundPort !== null) {
    checkPort(o.outboundPort, 'outbound port');
    chains.push(CHAINS.output, CHAINS.redirect);
    rules.push({ chain: CHAINS.redirect, args: ['-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(o.outboundPort)] });
    for (const u of o.excludeUids) rules.push({ chain: CHAINS.output, args: ['-m', 'owner', '--uid-owner', u, '-j', 'RETURN'] });
    for (const g of o.excludeGids) rules.push({ chain: CHAINS.output, args: ['-m', 'owner', '--gid-owner', g, '-j', 'RETURN'] });
    if (o.skipLoopback) rules.push({ chain: CHAINS.output, args: ['-d', fam === 4 ? '127.0.0.0/8' : '::1/128', '-j', 'RETURN'] });
    for (const p of o.excludeOutboundPorts) {
      checkPort(p, 'excluded outbound port');
      rules.push({ chain: CHAINS.output, args: ['-p', 'tcp', '--dport', String(p), '-j', 'RETURN'] });
    }
    for (const c of o.excludeOutboundCidrs) {
      checkCidr(c, fam);
      rules.push({ chain: CHAINS.output, args: ['-d', c, '-j', 'RETURN'] });
    }
    const cidrs = o.includeOutboundCidrs === '*' ? [null] : o.includeOutboundCidrs;
    const ports = o.includeOutboundPorts === '*' ? [null] : o.includeOutboundPorts;
    for (const c of cidrs) {
      if (c !== null) checkCidr(c, fam);
      for (const p of ports) {
        if (p !== null) checkPort(p, 'included outbound port');
        rules.push({
          chain: CHAINS.output,
          args: [...(c !== null ? ['-d', c] : []), '-p', 'tcp', ...(p !== null ? ['--dport', String(p)] : []), '-j', CHAINS.redirect],
        });
      }
    }
    jumps.push({ chain: 'OUTPUT', args: ['-p', 'tcp', '-j', CHAINS.output] });
  }
  return { chains, rules, jumps };
}

function shellQuote(a: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** The rules as the shell commands an init container would run (what `portway iptables` prints). */
export function renderCommands(rs: RuleSet, binary: string): string {
  const lines: string[] = [];
  const cmd = (args: string[]) => lines.push([binary, '-t', 'nat', ...args].map(shellQuote).join(' '));
  for (const c of rs.chains) cmd(['-N', c]);
  for (const r of rs.rules) cmd(['-A', r.chain, ...r.args]);
  for (const j of rs.jumps) cmd(['-A', j.chain, ...j.args]);
  return lines.join('\n') + (lines.length ? '\n' : '');
}

/** Runs one iptables command; returns its exit status and stderr. */
export type Runner = (binary: string, args: string[]) => { status: number; stderr: string };

export const spawnRunner: Runner = (binary, args) => {
  const r = spawnSync(binary, args, { encoding: 'utf8' });
  if (r.error) return { status: 127, stderr: (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? `${binary}: not found` : r.error.message };
  return { status: r.status ?? 1, stderr: r.stderr ?? '' };
};

export class IptablesError extends Error {
  constructor(
    readonly command: string,
    readonly stderr: string,
  ) {
    super(`${command} failed: ${stderr.trim() || 'no message'}`);
    this.name = 'IptablesError';
  }
}

function must(run: Runner, binary: string, args: string[]): void {
  const r = run(binary, args);
  if (r.status !== 0) throw new IptablesError([binary, ...args].join(' '), r.stderr);
}

function chainExists(run: Runner, binary: string, chain: string): boolean {
  return run(binary, ['-t', 'nat', '-S', chain]).status === 0;
}

/** Removes every copy of a jump rule (a half-done earlier run may have left two). */
function deleteJump(run: Runner, binary: string, j: Rule): void {
  for (let i = 0; i < 16 && run(binary, ['-t', 'nat', '-C', j.chain, ...j.args]).status === 0; i++) must(run, binary, ['-t', 'nat', '-D', j.chain, ...j.args]);
}

const ALL_JUMPS: Rule[] = [
  { chain: 'PREROUTING', args: ['-p', 'tcp', '-j', CHAINS.inbound] },
  { chain: 'OUTPUT', args: ['-p', 'tcp', '-j', CHAINS.output] },
];

/**
 * Installs the rules idempotently: our chains are created when missing, else
 * flushed and refilled; a jump is added only when it is not there. A
 * direction that is off has its jump and chains removed.
 */
export function applyRules(rs: RuleSet, binary: string, run: Runner = spawnRunner): void {
  for (const c of rs.chains) {
    if (chainExists(run, binary, c)) must(run, binary, ['-t', 'nat', '-F', c]);
    else must(run, binary, ['-t', 'nat', '-N', c]);
  }
  for (const r of rs.rules) must(run, binary, ['-t', 'nat', '-A', r.chain, ...r.args]);
  for (const j of rs.jumps) {
    if (run(binary, ['-t', 'nat', '-C', j.chain, ...j.args]).status !== 0) must(run, binary, ['-t', 'nat', '-A', j.chain, ...j.args]);
  }
  // A direction switched off since the last apply: take its rules away.
  const wanted = new Set(rs.chains);
  for (const j of ALL_JUMPS) if (!rs.jumps.some((x) => x.chain === j.chain)) deleteJump(run, binary, j);
  removeChains(
    run,
    binary,
    Object.values(CHAINS).filter((c) => !wanted.has(c)),
  );
}

function removeChains(run: Runner, binary: string, chains: string[]): void {
  const present = chains.filter((c) => chainExists(run, binary, c));
  // Flush all first: one of ours may jump to another.
  for (const c of present) must(run, binary, ['-t', 'nat', '-F', c]);
  for (const c of present) must(run, binary, ['-t', 'nat', '-X', c]);
}

/** Removes exactly what applyRules installed: the two jumps and our chains. Nothing else is touched. */
export function cleanRules(binary: string, run: Runner = spawnRunner): void {
  for (const j of ALL_JUMPS) deleteJump(run, binary, j);
  removeChains(run, binary, Object.values(CHAINS));
}
