import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { applyRules, buildRules, cleanRules, DEFAULT_OPTIONS, iptablesBinary, renderCommands, CHAINS, type Runner } from '../../src/sidecar/iptables';
import { parseIptablesArgs, iptablesCommand } from '../../src/sidecar/iptables-cli';

/** A fake nat table: enough of iptables' -N/-F/-X/-A/-C/-D/-S semantics to check idempotence. */
function fakeIptables(): { run: Runner; dump: () => string; calls: string[][] } {
  const chains = new Map<string, string[]>([
    ['PREROUTING', []],
    ['OUTPUT', ['-d 10.9.9.9/32 -j RETURN']],
    ['INPUT', []],
    ['POSTROUTING', []],
  ]);
  const calls: string[][] = [];
  const run: Runner = (_bin, args) => {
    calls.push(args);
    assert.deepEqual(args.slice(0, 2), ['-t', 'nat']);
    const [op, chain, ...rest] = args.slice(2);
    const rule = rest.join(' ');
    const c = chains.get(chain!);
    switch (op) {
      case '-N':
        if (c) return { status: 1, stderr: 'Chain already exists.' };
        chains.set(chain!, []);
        return { status: 0, stderr: '' };
      case '-S':
        return c ? { status: 0, stderr: '' } : { status: 1, stderr: 'No chain/target/match by that name.' };
      case '-F':
        if (!c) return { status: 1, stderr: 'no chain' };
        c.length = 0;
        return { status: 0, stderr: '' };
      case '-X':
        if (!c || c.length) return { status: 1, stderr: 'not empty or missing' };
        for (const [, rules] of chains) if (rules.some((r) => r.endsWith(`-j ${chain}`))) return { status: 1, stderr: 'Too many links.' };
        chains.delete(chain!);
        return { status: 0, stderr: '' };
      case '-A': {
        if (!c) return { status: 1, stderr: 'no chain' };
        const target = rest[rest.indexOf('-j') + 1]!;
        if (target.startsWith('PORTWAY_') && !chains.has(target)) return { status: 1, stderr: "Couldn't load target" };
        c.push(rule);
        return { status: 0, stderr: '' };
      }
      case '-C':
        return c && c.includes(rule) ? { status: 0, stderr: '' } : { status: 1, stderr: 'Bad rule' };
      case '-D': {
        const i = c ? c.indexOf(rule) : -1;
        if (i < 0) return { status: 1, stderr: 'Bad rule' };
        c!.splice(i, 1);
        return { status: 0, stderr: '' };
      }
      default:
        return { status: 2, stderr: `unknown op ${op}` };
    }
  };
  const dump = () => [...chains].map(([k, v]) => `${k}: ${v.join(' | ')}`).join('\n');
  return { run, dump, calls };
}

describe('iptables rule generation', () => {
  const base = { ...DEFAULT_OPTIONS, inboundPort: 15006, outboundPort: 15001, excludeUids: ['1337'] };

  test('outbound: own uid first, then loopback, exclusions, then the redirect', () => {
    const rs = buildRules({ ...base, inboundPort: null, excludeGids: ['1337'], excludeOutboundPorts: [22], excludeOutboundCidrs: ['10.0.0.0/8'] });
    assert.deepEqual(rs.chains, [CHAINS.output, CHAINS.redirect]);
    const out = rs.rules.filter((r) => r.chain === CHAINS.output).map((r) => r.args.join(' '));
    assert.deepEqual(out, [
      '-m owner --uid-owner 1337 -j RETURN',
      '-m owner --gid-owner 1337 -j RETURN',
      '-d 127.0.0.0/8 -j RETURN',
      '-p tcp --dport 22 -j RETURN',
      '-d 10.0.0.0/8 -j RETURN',
      '-p tcp -j PORTWAY_REDIRECT',
    ]);
    assert.deepEqual(rs.jumps, [{ chain: 'OUTPUT', args: ['-p', 'tcp', '-j', CHAINS.output] }]);
    assert.deepEqual(rs.rules.find((r) => r.chain === CHAINS.redirect)!.args, ['-p', 'tcp', '-j', 'REDIRECT', '--to-ports', '15001']);
  });

  test('included CIDRs and ports make one rule per pair; loopback kept when asked', () => {
    const rs = buildRules({ ...base, inboundPort: null, skipLoopback: false, includeOutboundCidrs: ['10.200.0.0/16', '192.168.1.5'], includeOutboundPorts: [6379, 9092] });
    const out = rs.rules.filter((r) => r.chain === CHAINS.output && r.args.includes(CHAINS.redirect)).map((r) => r.args.join(' '));
    assert.deepEqual(out, [
      '-d 10.200.0.0/16 -p tcp --dport 6379 -j PORTWAY_REDIRECT',
      '-d 10.200.0.0/16 -p tcp --dport 9092 -j PORTWAY_REDIRECT',
      '-d 192.168.1.5 -p tcp --dport 6379 -j PORTWAY_REDIRECT',
      '-d 192.168.1.5 -p tcp --dport 9092 -j PORTWAY_REDIRECT',
    ]);
    assert.ok(!rs.rules.some((r) => r.args.includes('127.0.0.0/8')));
  });

  test('inbound: the inbound port itself is never redirected; excluded ports return first', () => {
    const rs = buildRules({ ...base, outboundPort: null, excludeInboundPorts: [22], includeInboundPorts: [6379] });
    assert.deepEqual(
      rs.rules.filter((r) => r.chain === CHAINS.inbound).map((r) => r.args.join(' ')),
      ['-p tcp --dport 15006 -j RETURN', '-p tcp --dport 22 -j RETURN', '-p tcp --dport 6379 -j PORTWAY_IN_REDIRECT'],
    );
    assert.deepEqual(rs.jumps, [{ chain: 'PREROUTING', args: ['-p', 'tcp', '-j', CHAINS.inbound] }]);
  });

  test('IPv6 uses ::1 for loopback and rejects IPv4 CIDRs', () => {
    const rs = buildRules({ ...base, family: 6 });
    assert.ok(rs.rules.some((r) => r.args.join(' ') === '-d ::1/128 -j RETURN'));
    assert.throws(() => buildRules({ ...base, family: 6, excludeOutboundCidrs: ['10.0.0.0/8'] }), /not an IPv6/);
    assert.throws(() => buildRules({ ...base, excludeOutboundCidrs: ['10.0.0.0/33'] }), /not an IPv4/);
    assert.throws(() => buildRules({ ...base, outboundPort: 70000 }), /not a port/);
  });

  test('binaries by backend and family', () => {
    assert.equal(iptablesBinary('default', 4), 'iptables');
    assert.equal(iptablesBinary('nft', 4), 'iptables-nft');
    assert.equal(iptablesBinary('legacy', 6), 'ip6tables-legacy');
  });

  test('printed commands create chains before rules that jump to them', () => {
    const text = renderCommands(buildRules(base), 'iptables-nft');
    const lines = text.trim().split('\n');
    assert.equal(lines[0], 'iptables-nft -t nat -N PORTWAY_INBOUND');
    assert.ok(lines.indexOf('iptables-nft -t nat -N PORTWAY_REDIRECT') < lines.indexOf('iptables-nft -t nat -A PORTWAY_OUTPUT -p tcp -j PORTWAY_REDIRECT'));
    assert.equal(lines.at(-1), 'iptables-nft -t nat -A OUTPUT -p tcp -j PORTWAY_OUTPUT');
  });

  test('apply twice equals apply once; clean restores the table exactly', () => {
    const f = fakeIptables();
    const before = f.dump();
    const rs = buildRules(base);
    applyRules(rs, 'iptables', f.run);
    const once = f.dump();
    applyRules(rs, 'iptables', f.run);
    assert.equal(f.dump(), once);
    assert.match(once, /OUTPUT: -d 10.9.9.9\/32 -j RETURN \| -p tcp -j PORTWAY_OUTPUT/);
    cleanRules('iptables', f.run);
    assert.equal(f.dump(), before);
    // Clean on a clean table is a no-op, not an error.
    cleanRules('iptables', f.run);
    assert.equal(f.dump(), before);
  });

  test('turning a direction off on a second apply removes its jump and chains', () => {
    const f = fakeIptables();
    applyRules(buildRules(base), 'iptables', f.run);
    applyRules(buildRules({ ...base, inboundPort: null }), 'iptables', f.run);
    assert.doesNotMatch(f.dump(), /PORTWAY_INBOUND|PORTWAY_IN_REDIRECT/);
    assert.match(f.dump(), /PORTWAY_OUTPUT/);
  });
});

describe('portway iptables arguments', () => {
  test('defaults: both directions, all ports, loopback skipped', () => {
    const p = parseIptablesArgs(['--exclude-uid', '1337']);
    assert.equal(p.action, 'print');
    assert.equal(p.options.outboundPort, 15001);
    assert.equal(p.options.inboundPort, 15006);
    assert.equal(p.options.includeOutboundCidrs, '*');
    assert.equal(p.options.skipLoopback, true);
    assert.equal(p.backend, 'default');
  });

  test('port 0 switches a direction off; lists parse', () => {
    const p = parseIptablesArgs(['--inbound-port', '0', '--exclude-gid', 'portway', '--exclude-outbound-ports', '22,53', '--include-outbound-cidrs', '10.0.0.0/8', '--backend', 'legacy', '--apply']);
    assert.equal(p.options.inboundPort, null);
    assert.deepEqual(p.options.excludeOutboundPorts, [22, 53]);
    assert.deepEqual(p.options.includeOutboundCidrs, ['10.0.0.0/8']);
    assert.equal(p.backend, 'legacy');
    assert.equal(p.action, 'apply');
  });

  test('outbound interception without an excluded uid/gid is refused (it would loop)', () => {
    assert.throws(() => parseIptablesArgs([]), /exclude-uid/);
    assert.doesNotThrow(() => parseIptablesArgs(['--outbound-port', '0']));
    assert.doesNotThrow(() => parseIptablesArgs(['--clean']));
  });

  test('bad arguments exit 2 with a reason; iptables failures exit 1', () => {
    const errs: string[] = [];
    assert.equal(iptablesCommand(['--backend', 'x'], () => {}, (s) => errs.push(s)), 2);
    assert.match(errs[0]!, /--backend must be nft or legacy/);
    assert.equal(iptablesCommand(['--exclude-outbound-ports', 'abc', '--exclude-uid', '1'], () => {}, (s) => errs.push(s)), 2);
    const failing: Runner = () => ({ status: 4, stderr: 'Permission denied (you must be root)' });
    assert.equal(iptablesCommand(['--exclude-uid', '1', '--apply'], () => {}, (s) => errs.push(s), failing), 1);
    assert.match(errs.at(-1)!, /Permission denied/);
  });
});
