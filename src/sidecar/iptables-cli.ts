/** `portway iptables`: print, apply or clean the interception rules (see iptables.ts). */
import { parseArgs } from 'node:util';
import { applyRules, buildRules, cleanRules, DEFAULT_OPTIONS, iptablesBinary, renderCommands, spawnRunner, type Backend, type InterceptionOptions, type Runner } from './iptables';

export const IPTABLES_HELP = `Usage: portway iptables [options] [--apply | --clean]

Prints (default), installs (--apply, idempotent) or removes (--clean) the nat
rules that redirect a pod's TCP traffic to Portway, as an init container would.
Own chains: PORTWAY_INBOUND, PORTWAY_IN_REDIRECT (from PREROUTING),
PORTWAY_OUTPUT, PORTWAY_REDIRECT (from OUTPUT).

  --outbound-port N            redirect outbound traffic here (default 15001; 0: off)
  --inbound-port N             redirect inbound traffic here (default 15006; 0: off)
  --include-inbound-ports L    comma list, or * (default *)
  --exclude-inbound-ports L    comma list (e.g. 22)
  --include-outbound-cidrs L   comma list, or * (default *)
  --exclude-outbound-cidrs L   comma list
  --include-outbound-ports L   comma list, or * (default *)
  --exclude-outbound-ports L   comma list
  --exclude-uid L              Portway's own uid(s) or user name(s): never redirected
  --exclude-gid L              Portway's own gid(s) or group name(s): never redirected
  --redirect-loopback          also redirect connections to 127.0.0.0/8 (::1)
  --ipv6                       ip6tables rules instead of iptables
  --backend nft|legacy         iptables-nft or iptables-legacy (default: iptables)
  --apply                      install the rules (idempotent)
  --clean                      remove exactly the rules --apply installs

Outbound interception needs --exclude-uid or --exclude-gid: without it
Portway's own upstream connections would be redirected back to it.
`;

function ports(v: string | undefined, what: string, star: boolean): number[] | '*' {
  if (v === undefined || v === '') return star ? '*' : [];
  if (v === '*') {
    if (!star) throw new Error(`${what}: '*' is not allowed here`);
    return '*';
  }
  return v.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${what}: '${s}' is not a port`);
    return n;
  });
}

function list(v: string | undefined): string[] {
  return v === undefined || v === '' ? [] : v.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function port(v: string | undefined, def: number, what: string): number | null {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${what}: '${v}' is not a port`);
  return n === 0 ? null : n;
}

/** Parses the arguments after `iptables`; throws with a message for bad ones. */
export function parseIptablesArgs(argv: string[]): { options: InterceptionOptions; backend: Backend; action: 'print' | 'apply' | 'clean' } {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      'outbound-port': { type: 'string' },
      'inbound-port': { type: 'string' },
      'include-inbound-ports': { type: 'string' },
      'exclude-inbound-ports': { type: 'string' },
      'include-outbound-cidrs': { type: 'string' },
      'exclude-outbound-cidrs': { type: 'string' },
      'include-outbound-ports': { type: 'string' },
      'exclude-outbound-ports': { type: 'string' },
      'exclude-uid': { type: 'string' },
      'exclude-gid': { type: 'string' },
      'redirect-loopback': { type: 'boolean' },
      ipv6: { type: 'boolean' },
      backend: { type: 'string' },
      apply: { type: 'boolean' },
      clean: { type: 'boolean' },
    },
  });
  const backend = values.backend ?? 'default';
  if (backend !== 'nft' && backend !== 'legacy' && backend !== 'default') throw new Error(`--backend must be nft or legacy`);
  if (values.apply && values.clean) throw new Error('give --apply or --clean, not both');
  const cidrs = list(values['include-outbound-cidrs']);
  const options: InterceptionOptions = {
    ...DEFAULT_OPTIONS,
    outboundPort: port(values['outbound-port'], 15001, '--outbound-port'),
    inboundPort: port(values['inbound-port'], 15006, '--inbound-port'),
    includeInboundPorts: ports(values['include-inbound-ports'], '--include-inbound-ports', true),
    excludeInboundPorts: ports(values['exclude-inbound-ports'], '--exclude-inbound-ports', false) as number[],
    includeOutboundCidrs: cidrs.length === 0 || cidrs.includes('*') ? '*' : cidrs,
    excludeOutboundCidrs: list(values['exclude-outbound-cidrs']),
    includeOutboundPorts: ports(values['include-outbound-ports'], '--include-outbound-ports', true),
    excludeOutboundPorts: ports(values['exclude-outbound-ports'], '--exclude-outbound-ports', false) as number[],
    excludeUids: list(values['exclude-uid']),
    excludeGids: list(values['exclude-gid']),
    skipLoopback: values['redirect-loopback'] !== true,
    family: values.ipv6 ? 6 : 4,
  };
  if (!values.clean && options.outboundPort !== null && options.excludeUids.length === 0 && options.excludeGids.length === 0) {
    throw new Error("outbound interception needs --exclude-uid or --exclude-gid (Portway's own user or group), or --outbound-port 0");
  }
  return { options, backend, action: values.apply ? 'apply' : values.clean ? 'clean' : 'print' };
}

/** Runs `portway iptables ...`; resolves to the exit code. */
export function iptablesCommand(argv: string[], out: (s: string) => void, err: (s: string) => void, run: Runner = spawnRunner): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    out(IPTABLES_HELP);
    return 0;
  }
  let parsed;
  try {
    parsed = parseIptablesArgs(argv);
  } catch (e) {
    err(`portway iptables: ${(e as Error).message}\n\n${IPTABLES_HELP}`);
    return 2;
  }
  const binary = iptablesBinary(parsed.backend, parsed.options.family);
  try {
    if (parsed.action === 'clean') {
      cleanRules(binary, run);
      out(`${binary}: Portway's nat rules removed`);
      return 0;
    }
    const rs = buildRules(parsed.options);
    if (parsed.action === 'print') {
      out(renderCommands(rs, binary));
      return 0;
    }
    applyRules(rs, binary, run);
    out(`${binary}: Portway's nat rules installed (${rs.rules.length} rules in ${rs.chains.join(', ')})`);
    return 0;
  } catch (e) {
    err(`portway iptables: ${(e as Error).message}`);
    return 1;
  }
}
