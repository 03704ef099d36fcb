import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileRules, ruleProblem, sha256, UserTable } from '../../src/protocols/redis/acl';
import { commandInfo } from '../../src/protocols/redis/commands';
import { RespCommand } from '../../src/protocols/redis/codec';

const cmd = (...args: string[]) => RespCommand.from(args.map((a) => Buffer.from(a)));

test('rules apply in order: categories, commands, subcommands', () => {
  const a = compileRules(['+@all', '-@dangerous', '+flushall']);
  assert.ok(a.has('GET') && a.has('SET'));
  assert.ok(!a.has('KEYS'), 'KEYS is @dangerous');
  assert.ok(a.has('FLUSHALL'), 'a later rule re-allows');
  assert.ok(!a.has('CONFIG|SET'));
  const b = compileRules(['-@all', '+get', '+config|get']);
  assert.deepEqual([...b].sort(), ['CONFIG|GET', 'GET']);
  const c = compileRules(['+@read', '-get']);
  assert.ok(c.has('MGET') && !c.has('GET') && !c.has('SET'));
  const d = compileRules(['+config', '-config|set']);
  assert.ok(d.has('CONFIG|GET') && !d.has('CONFIG|SET'));
  assert.equal(compileRules(['allcommands', 'nocommands']).size, 0);
});

test('bad rules are named', () => {
  assert.equal(ruleProblem('+@nosuch'), "unknown ACL category 'nosuch'");
  assert.equal(ruleProblem('+nosuch'), "unknown command 'nosuch'");
  assert.equal(ruleProblem('+config|nosuch'), "unknown subcommand 'config|nosuch'");
  assert.match(ruleProblem('get')!, /must start with \+ or -/);
  assert.equal(ruleProblem('+@Write'), null);
  assert.throws(() => compileRules(['+@nosuch']), /unknown ACL category/);
});

test('users: passwords (clear or sha256), unknown users, denied names as redis prints them', () => {
  const t = new UserTable([
    { name: 'default', passwordSha256: sha256('s3cret'), commands: ['+@all'] },
    { name: 'ro', passwordSha256: Buffer.from(sha256('ro-pw').toString('hex'), 'hex'), commands: ['-@all', '+@read', '+config|get'] },
  ]);
  assert.equal(t.authenticate('default', Buffer.from('s3cret'))?.name, 'default');
  assert.equal(t.authenticate('default', Buffer.from('s3cre')), null);
  assert.equal(t.authenticate(Buffer.from('nobody'), Buffer.from('s3cret')), null);
  const ro = t.authenticate('ro', Buffer.from('ro-pw'))!;
  assert.equal(ro.denied(commandInfo('GET')!, cmd('GET', 'k')), null);
  assert.equal(ro.denied(commandInfo('SET')!, cmd('SET', 'k', 'v')), 'set');
  assert.equal(ro.denied(commandInfo('CONFIG')!, cmd('CONFIG', 'GET', 'x')), null);
  assert.equal(ro.denied(commandInfo('CONFIG')!, cmd('CONFIG', 'set', 'x', 'y')), 'config|set');
});

test('config: users, upstreams, read_replicas and mirror are checked with their paths', async () => {
  const { loadConfigText } = await import('../../src/config/load');
  const { ConfigError } = await import('../../src/config/validate');
  const { builtins } = await import('../../src/builtins');
  const text = `
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: a }]
    options:
      users:
        - { password: x, commands: ["+@all", "-@nosuch"] }
        - { name: default, password: y, password_sha256: "${'0'.repeat(64)}" }
      upstreams: { nope: { password: p }, a: { username: u } }
      read_replicas: [{ primary: a, replicas: ghost }]
      mirror: [{ cluster: shadow, sample: 0.5 }]
clusters:
  - { name: a, endpoints: ["127.0.0.1:1"] }
`;
  let issues: { path: string; message: string }[] = [];
  try {
    loadConfigText(text, builtins().registries);
    assert.fail('expected a ConfigError');
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    issues = e.issues;
  }
  const has = (path: string, re: RegExp) =>
    assert.ok(
      issues.some((i) => i.path === path && re.test(i.message)),
      `no issue at ${path} matching ${re}: ${JSON.stringify(issues)}`,
    );
  const p = 'listeners[0].options';
  has(`${p}.users[0].commands[1]`, /unknown ACL category 'nosuch'/);
  has(`${p}.users[1].name`, /duplicate user 'default'/);
  has(`${p}.users[1]`, /exactly one of password and password_sha256/);
  has(`${p}.upstreams.nope`, /unknown cluster 'nope'/);
  has(`${p}.upstreams.a.username`, /needs a password/);
  has(`${p}.read_replicas[0].replicas`, /unknown cluster 'ghost'/);
  has(`${p}.mirror[0].cluster`, /unknown cluster 'shadow'/);
});
