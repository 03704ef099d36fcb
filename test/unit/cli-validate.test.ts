/**
 * `portway validate` as a user runs it: a subprocess, a config file, an exit
 * code and what it prints.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const CLI = resolve(__dirname, '../../src/cli.js');
const { version } = require('../../../package.json') as { version: string };

let dir: string;

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: dir, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'portway-cli-'));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('portway validate', () => {
  test('an invalid file: exit 1, every problem on stderr with its path', () => {
    const p = file(
      'bad.yaml',
      [
        'drain_timeout: whenever',
        'listeners:',
        '  - name: a',
        '    address: localhost',
        '    protocol: tcp',
        '    colour: blue',
        'clusters:',
        '  - name: c',
        '    endpoints: ["127.0.0.1:1"]',
        '    lb: foo',
        '',
      ].join('\n'),
    );
    const r = cli('validate', '-c', p);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    // Schema problems and cross-reference problems are reported together.
    assert.match(r.stderr, /4 problems/);
    assert.match(r.stderr, /listeners\[0\]\.address: 'localhost' must be host:port/);
    assert.match(r.stderr, /drain_timeout: .*duration/);
    assert.match(r.stderr, /listeners\[0\]\.colour: unknown property/);
    assert.match(r.stderr, /clusters\[0\]\.lb: must be one of: round_robin, random, least_request, weighted/);
    assert.ok(r.stderr.includes(p), 'names the file');
  });

  test('semantic problems are printed too', () => {
    const p = file(
      'semantic.yaml',
      [
        'listeners:',
        '  - {name: a, address: "127.0.0.1:7000", protocol: tcp, routes: [{cluster: nope}]}',
        '  - {name: a, address: "127.0.0.1:7000", protocol: tcp}',
        '',
      ].join('\n'),
    );
    const r = cli('validate', '-c', p);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /listeners\[0\]\.routes\[0\]\.cluster: unknown cluster 'nope'/);
    assert.match(r.stderr, /listeners\[1\]\.name: duplicate listener name 'a'/);
    assert.match(r.stderr, /listeners\[1\]\.address: .*also used by listener 'a'/);
  });

  test('a YAML syntax error: exit 1 with line and column', () => {
    const r = cli('validate', '-c', file('syntax.yaml', 'listeners:\n  - name: [a\n'));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /line \d+, column \d+: /);
  });

  test('a missing file: exit 1 and says it cannot read it', () => {
    const r = cli('validate', '-c', join(dir, 'does-not-exist.yaml'));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cannot read .*does-not-exist\.yaml: ENOENT/);
  });

  test('a valid file: exit 0 and a summary', () => {
    const p = file(
      'good.yaml',
      [
        'listeners:',
        '  - {name: pg, address: "127.0.0.1:15432", protocol: tcp, routes: [{cluster: postgres}]}',
        'clusters:',
        '  - {name: postgres, endpoints: ["127.0.0.1:5432", "127.0.0.1:5433"], lb: least_request}',
        '',
      ].join('\n'),
    );
    const r = cli('validate', '-c', p);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /: valid$/m);
    assert.match(r.stdout, /admin: 127\.0\.0\.1:9901/);
    assert.match(r.stdout, /listeners \(1\): pg 127\.0\.0\.1:15432 tcp/);
    assert.match(r.stdout, /clusters \(1\): postgres \[2 endpoints, least_request\]/);
  });

  test('a JSON file is accepted', () => {
    const r = cli('validate', '-c', file('good.json', JSON.stringify({ admin: { enabled: false } })));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /admin: disabled/);
  });
});

describe('portway flags', () => {
  test('--version prints the package version', () => {
    const r = cli('--version');
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), version);
  });

  test('--help prints usage', () => {
    const r = cli('--help');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage:/);
    assert.match(r.stdout, /portway validate/);
  });

  test('an unknown command exits 2', () => {
    const r = cli('frobnicate');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
  });

  test('an unknown flag exits 2', () => {
    const r = cli('validate', '--nope');
    assert.equal(r.code, 2);
  });
});
