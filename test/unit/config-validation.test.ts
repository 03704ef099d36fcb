/**
 * Config validation: every problem comes back as {path, message}, all of them
 * at once, and a valid document comes back normalized (durations in ms,
 * defaults filled in).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load';
import { ConfigError } from '../../src/config/validate';
import type { Config } from '../../src/config/types';
import { reg, issuesOf, hasIssue } from '../helpers/filters';

function load(text: string): Config {
  return loadConfigText(text, reg);
}

/** One tcp listener, with extra YAML lines (indented four spaces) appended. */
function listener(extra = '', name = 'l1', address = '127.0.0.1:7000'): string {
  return `listeners:\n  - name: ${name}\n    address: "${address}"\n    protocol: tcp\n${extra}`;
}

const CLUSTER_C = 'clusters:\n  - name: c\n    endpoints: ["127.0.0.1:6379"]\n';

describe('schema errors', () => {
  test('unknown top-level key lists the expected keys', () => {
    const issues = issuesOf('listenerz: []\n');
    assert.equal(issues.length, 1);
    hasIssue(issues, 'listenerz', /^unknown property \(expected one of: .*listeners.*\)$/);
    hasIssue(issues, 'listenerz', /clusters/);
  });

  test('unknown property inside a listener lists the listener keys', () => {
    const issues = issuesOf(listener('    adress: x\n'));
    hasIssue(issues, 'listeners[0].adress', /unknown property/);
    for (const key of ['name', 'address', 'protocol', 'filters', 'routes', 'idle_timeout']) {
      hasIssue(issues, 'listeners[0].adress', new RegExp(`\\b${key}\\b`));
    }
  });

  test('each missing required field is reported at its own path', () => {
    const issues = issuesOf('listeners:\n  - {}\nclusters:\n  - {}\n');
    for (const p of ['listeners[0].name', 'listeners[0].address', 'listeners[0].protocol', 'clusters[0].name']) {
      hasIssue(issues, p, /^is required$/);
    }
    // A cluster needs endpoints or a discovery source.
    hasIssue(issues, 'clusters[0].endpoints', /at least one endpoint \(or a discovery source, or a component\)/);
  });

  test('wrong types name the expected type', () => {
    const issues = issuesOf('listeners: {}\nclusters: 5\nadmin:\n  enabled: "yes"\n');
    hasIssue(issues, 'listeners', /must be array/);
    hasIssue(issues, 'clusters', /must be array/);
    hasIssue(issues, 'admin.enabled', /must be boolean/);
  });

  test('a string where an integer belongs', () => {
    hasIssue(issuesOf(listener('    max_connections: "10"\n')), 'listeners[0].max_connections', /must be integer/);
  });

  test('a name with forbidden characters explains what a name is', () => {
    hasIssue(issuesOf(listener('', '-bad name')), 'listeners[0].name', /name of letters, digits/);
  });

  test('bad duration strings say what a duration looks like', () => {
    const issues = issuesOf(`drain_timeout: 5 seconds\n${listener('    idle_timeout: 1d\n')}${CLUSTER_C}    connect_timeout: true\n`);
    hasIssue(issues, 'drain_timeout', /duration/);
    hasIssue(issues, 'listeners[0].idle_timeout', /duration/);
    hasIssue(issues, 'clusters[0].connect_timeout', /duration/);
  });

  test('a fractional number of milliseconds is not a duration', () => {
    hasIssue(issuesOf('drain_timeout: 1.5\n'), 'drain_timeout', /duration/);
  });

  test('a negative duration is rejected', () => {
    hasIssue(issuesOf('reload:\n  debounce: -1\n'), 'reload.debounce', />= 0/);
  });

  test('bad lb lists the choices', () => {
    const issues = issuesOf(`${CLUSTER_C}    lb: foo\n`);
    assert.equal(issues.length, 1, JSON.stringify(issues));
    hasIssue(issues, 'clusters[0].lb', /^must be one of: round_robin, random, least_request, weighted$/);
  });

  test('bad log level lists the choices', () => {
    hasIssue(issuesOf('log:\n  level: loud\n'), 'log.level', /must be one of: .*info.*silent/);
  });

  test('weighted cluster weight must be at least 1', () => {
    const issues = issuesOf(`${listener('    routes:\n      - weighted_clusters: [{cluster: c, weight: 0}]\n')}${CLUSTER_C}`);
    hasIssue(issues, 'listeners[0].routes[0].weighted_clusters[0].weight', />= 1/);
  });

  test('an endpoint object with an unknown key', () => {
    const issues = issuesOf('clusters:\n  - name: c\n    endpoints: [{address: "1.2.3.4:5", wieght: 2}]\n');
    hasIssue(issues, 'clusters[0].endpoints[0].wieght', /unknown property/);
  });

  test('tcp listener options are checked by the protocol schema', () => {
    hasIssue(issuesOf(listener('    options: {nodelay: true}\n')), 'listeners[0].options.nodelay', /unknown property/);
  });
});

describe('addresses', () => {
  test('a host without a port', () => {
    hasIssue(issuesOf(listener('', 'l1', 'localhost')), 'listeners[0].address', /'localhost' must be host:port/);
  });

  test('a port out of range', () => {
    hasIssue(issuesOf(listener('', 'l1', '1.2.3.4:99999')), 'listeners[0].address', /99999 is out of range/);
  });

  test('a port that is not a number', () => {
    hasIssue(issuesOf(listener('', 'l1', '1.2.3.4:http')), 'listeners[0].address', /'http' is not a number/);
  });

  test('IPv6 without brackets', () => {
    hasIssue(issuesOf(listener('', 'l1', '::1:7000')), 'listeners[0].address', /\[addr\]:port/);
  });

  test('brackets around something that is not IPv6', () => {
    hasIssue(issuesOf(listener('', 'l1', '[1.2.3.4]:7000')), 'listeners[0].address', /not an IPv6 address/);
  });

  test('bracketed IPv6 is accepted and parsed', () => {
    const cfg = load(listener('', 'l1', '[::1]:7000'));
    assert.equal(cfg.listeners[0]!.host, '::1');
    assert.equal(cfg.listeners[0]!.port, 7000);
  });

  test('a bad endpoint address, as a string and as an object', () => {
    const issues = issuesOf('clusters:\n  - name: c\n    endpoints: ["nohost", {address: "1.2.3.4:70000"}]\n');
    hasIssue(issues, 'clusters[0].endpoints[0]', /must be host:port/);
    hasIssue(issues, 'clusters[0].endpoints[1].address', /out of range/);
  });

  test('upstream port 0 is rejected', () => {
    hasIssue(issuesOf('clusters:\n  - name: c\n    endpoints: ["1.2.3.4:0"]\n'), 'clusters[0].endpoints[0]', /port 0/);
  });

  test('a cluster without endpoints', () => {
    hasIssue(issuesOf('clusters:\n  - name: c\n    endpoints: []\n'), 'clusters[0].endpoints', /at least one endpoint/);
  });

  test('a bad admin address', () => {
    hasIssue(issuesOf('admin:\n  address: nope\n'), 'admin.address', /must be host:port/);
  });

  test('listener port 0 is allowed, and two port-0 listeners do not clash', () => {
    const cfg = load(
      'listeners:\n  - {name: a, address: "127.0.0.1:0", protocol: tcp}\n  - {name: b, address: "127.0.0.1:0", protocol: tcp}\n',
    );
    assert.deepEqual(
      cfg.listeners.map((l) => l.port),
      [0, 0],
    );
  });
});

describe('names and bound addresses', () => {
  test('duplicate listener names', () => {
    const issues = issuesOf('listeners:\n  - {name: a, address: "127.0.0.1:7000", protocol: tcp}\n  - {name: a, address: "127.0.0.1:7001", protocol: tcp}\n');
    assert.equal(issues.length, 1, JSON.stringify(issues));
    hasIssue(issues, 'listeners[1].name', /duplicate listener name 'a'/);
  });

  test('duplicate cluster names', () => {
    const issues = issuesOf('clusters:\n  - {name: c, endpoints: ["1.1.1.1:1"]}\n  - {name: c, endpoints: ["1.1.1.1:2"]}\n');
    assert.equal(issues.length, 1, JSON.stringify(issues));
    hasIssue(issues, 'clusters[1].name', /duplicate cluster name 'c'/);
  });

  test('two listeners on the same address', () => {
    const issues = issuesOf('listeners:\n  - {name: a, address: "127.0.0.1:7000", protocol: tcp}\n  - {name: b, address: "127.0.0.1:7000", protocol: tcp}\n');
    hasIssue(issues, 'listeners[1].address', /also used by listener 'a' \(listeners\[0\]\.address\)/);
  });

  test('a wildcard address overlaps a specific one on the same port, in either order', () => {
    hasIssue(
      issuesOf('listeners:\n  - {name: a, address: "0.0.0.0:7000", protocol: tcp}\n  - {name: b, address: "127.0.0.1:7000", protocol: tcp}\n'),
      'listeners[1].address',
      /also used by listener 'a'/,
    );
    hasIssue(
      issuesOf('listeners:\n  - {name: a, address: "127.0.0.1:7000", protocol: tcp}\n  - {name: b, address: "0.0.0.0:7000", protocol: tcp}\n'),
      'listeners[1].address',
      /also used by listener 'a'/,
    );
    hasIssue(
      issuesOf('listeners:\n  - {name: a, address: "[::]:7000", protocol: tcp}\n  - {name: b, address: "0.0.0.0:7000", protocol: tcp}\n'),
      'listeners[1].address',
      /also used by listener 'a'/,
    );
  });

  test('different specific hosts on the same port do not clash', () => {
    const cfg = load('listeners:\n  - {name: a, address: "127.0.0.1:7000", protocol: tcp}\n  - {name: b, address: "127.0.0.2:7000", protocol: tcp}\n');
    assert.equal(cfg.listeners.length, 2);
  });

  test('a listener on the admin address', () => {
    hasIssue(issuesOf(listener('', 'l1', '127.0.0.1:9901')), 'listeners[0].address', /also used by admin \(admin\.address\)/);
    hasIssue(issuesOf(listener('', 'l1', '0.0.0.0:9901')), 'listeners[0].address', /also used by admin/);
    hasIssue(issuesOf(`admin:\n  address: "0.0.0.0:7000"\n${listener()}`), 'listeners[0].address', /also used by admin/);
  });

  test('the admin address is free when admin is disabled', () => {
    const cfg = load(`admin:\n  enabled: false\n${listener('', 'l1', '127.0.0.1:9901')}`);
    assert.equal(cfg.admin.enabled, false);
    assert.equal(cfg.listeners[0]!.port, 9901);
  });
});

describe('protocols and filters', () => {
  test('unknown protocol lists the known ones', () => {
    const issues = issuesOf('listeners:\n  - {name: a, address: "127.0.0.1:7000", protocol: gopher}\n');
    hasIssue(issues, 'listeners[0].protocol', /unknown protocol 'gopher' \(known: .*tcp.*\)/);
  });

  test('unknown filter type lists the known ones', () => {
    const issues = issuesOf(listener('    filters:\n      - type: access_log\n      - type: ratelimit\n'));
    hasIssue(issues, 'listeners[0].filters[1].type', /unknown filter type 'ratelimit' \(known: .*access_log.*router.*\)/);
  });

  test("filter config is validated by the filter's own schema", () => {
    const issues = issuesOf(listener('    filters:\n      - type: access_log\n        level: loud\n        colour: red\n        sample: 2\n'));
    hasIssue(issues, 'listeners[0].filters[0].level', /must be one of: fatal, error, warn, info, debug, trace/);
    hasIssue(issues, 'listeners[0].filters[0].colour', /unknown property \(expected one of: level, only_errors, sample\)/);
    hasIssue(issues, 'listeners[0].filters[0].sample', /<= 1/);
    // Each message names the filter, as well as the path of the field.
    hasIssue(issues, 'listeners[0].filters[0].level', /^filter access_log: /);
  });

  test('the router takes no options', () => {
    hasIssue(issuesOf(listener('    filters:\n      - type: router\n        mode: fast\n')), 'listeners[0].filters[0].mode', /unknown property/);
  });

  test('filter defaults are filled in, and name defaults to the type', () => {
    const cfg = load(listener('    filters:\n      - type: access_log\n      - type: access_log\n        name: errors\n        only_errors: true\n      - type: router\n'));
    const f = cfg.listeners[0]!.filters;
    assert.deepEqual(
      f.map((x) => [x.type, x.name]),
      [
        ['access_log', 'access_log'],
        ['access_log', 'errors'],
        ['router', 'router'],
      ],
    );
    assert.deepEqual(f[0]!.config, { level: 'info', only_errors: false, sample: 1 });
    assert.equal(f[1]!.config['only_errors'], true);
    assert.ok(!('type' in f[0]!.config) && !('name' in f[1]!.config), 'type and name are not part of the filter config');
  });
});

describe('routes', () => {
  test('a route naming an unknown cluster', () => {
    hasIssue(issuesOf(`${listener('    routes:\n      - cluster: nope\n')}${CLUSTER_C}`), 'listeners[0].routes[0].cluster', /unknown cluster 'nope'/);
  });

  test('a weighted route naming an unknown cluster', () => {
    const issues = issuesOf(`${listener('    routes:\n      - weighted_clusters: [{cluster: c, weight: 1}, {cluster: d, weight: 1}]\n')}${CLUSTER_C}`);
    hasIssue(issues, 'listeners[0].routes[0].weighted_clusters[1].cluster', /unknown cluster 'd'/);
  });

  test('a route with both cluster and weighted_clusters', () => {
    const issues = issuesOf(`${listener('    routes:\n      - cluster: c\n        weighted_clusters: [{cluster: c, weight: 1}]\n')}${CLUSTER_C}`);
    hasIssue(issues, 'listeners[0].routes[0]', /exactly one of cluster or weighted_clusters/);
  });

  test('a route with neither cluster nor weighted_clusters', () => {
    hasIssue(issuesOf(listener('    routes:\n      - name: r\n')), 'listeners[0].routes[0]', /exactly one of cluster or weighted_clusters/);
  });

  test('bad CIDRs', () => {
    const issues = issuesOf(`${listener('    routes:\n      - match: {source_cidr: ["10.0.0.1", "10.0.0.0/33", "nonsense/8", "::/129"]}\n        cluster: c\n')}${CLUSTER_C}`);
    hasIssue(issues, 'listeners[0].routes[0].match.source_cidr[1]', /prefix length must be 0-32/);
    hasIssue(issues, 'listeners[0].routes[0].match.source_cidr[2]', /not a CIDR/);
    hasIssue(issues, 'listeners[0].routes[0].match.source_cidr[3]', /prefix length must be 0-128/);
    assert.ok(!issues.some((i) => i.path.endsWith('source_cidr[0]')), 'a bare address is a /32');
  });

  test('a CIDR with an empty prefix length is rejected (not read as /0)', () => {
    const issues = issuesOf(`${listener('    routes:\n      - match: {source_cidr: ["10.0.0.0/"]}\n        cluster: c\n')}${CLUSTER_C}`);
    hasIssue(issues, 'listeners[0].routes[0].match.source_cidr[0]', /prefix length/);
  });

  test('a bad regular expression', () => {
    const issues = issuesOf(`${listener('    routes:\n      - match: {attributes: {destination: {regex: "(a"}}}\n        cluster: c\n')}${CLUSTER_C}`);
    hasIssue(issues, 'listeners[0].routes[0].match.attributes.destination.regex', /invalid regular expression/);
  });

  test('an attribute the protocol does not have', () => {
    const issues = issuesOf(`${listener('    routes:\n      - match: {attributes: {key: {prefix: "user:"}}}\n        cluster: c\n')}${CLUSTER_C}`);
    hasIssue(issues, 'listeners[0].routes[0].match.attributes.key', /protocol 'tcp' has no attribute 'key' \(known: destination\)/);
  });

  test('a string matcher with two kinds, or none', () => {
    const issues = issuesOf(
      `${listener('    routes:\n      - match: {attributes: {destination: {exact: a, prefix: b}}}\n        cluster: c\n      - match: {attributes: {destination: {invert: true}}}\n        cluster: c\n')}${CLUSTER_C}`,
    );
    hasIssue(issues, 'listeners[0].routes[0].match.attributes.destination', /exactly one of .* \(got exact, prefix\)/);
    hasIssue(issues, 'listeners[0].routes[1].match.attributes.destination', /\(got none\)/);
  });

  test('an unknown matcher key', () => {
    const issues = issuesOf(`${listener('    routes:\n      - match: {attributes: {destination: {contains: a}}}\n        cluster: c\n')}${CLUSTER_C}`);
    hasIssue(issues, 'listeners[0].routes[0].match.attributes.destination.contains', /unknown property/);
  });

  test('routes are normalized: default names, one cluster becomes weight 1', () => {
    const cfg = load(
      `${listener('    routes:\n      - match: {source_cidr: ["10.0.0.0/8"]}\n        cluster: c\n      - name: rest\n        weighted_clusters: [{cluster: c, weight: 3}, {cluster: d, weight: 1}]\n')}${CLUSTER_C}  - name: d\n    endpoints: ["127.0.0.1:6380"]\n`,
    );
    const [r0, r1] = cfg.listeners[0]!.routes;
    assert.equal(r0!.name, 'route-0');
    assert.deepEqual(r0!.sourceCidr, ['10.0.0.0/8']);
    assert.deepEqual(r0!.clusters, [{ cluster: 'c', weight: 1 }]);
    assert.equal(r1!.name, 'rest');
    assert.deepEqual(r1!.clusters, [
      { cluster: 'c', weight: 3 },
      { cluster: 'd', weight: 1 },
    ]);
  });
});

describe('reporting', () => {
  test('many schema errors are reported at once', () => {
    const issues = issuesOf(
      [
        'bogus: 1',
        'drain_timeout: soon',
        'listeners:',
        '  - name: a',
        '    address: "127.0.0.1:7000"',
        '    protocol: tcp',
        '    extra: 1',
        '  - address: "127.0.0.1:7001"',
        '    protocol: tcp',
        'clusters:',
        '  - name: c',
        '    endpoints: ["1.1.1.1:1"]',
        '    lb: fastest',
        '',
      ].join('\n'),
    );
    hasIssue(issues, 'bogus', /unknown property/);
    hasIssue(issues, 'drain_timeout', /duration/);
    hasIssue(issues, 'listeners[0].extra', /unknown property/);
    hasIssue(issues, 'listeners[1].name', /is required/);
    hasIssue(issues, 'clusters[0].lb', /must be one of/);
    assert.equal(issues.length, 5, JSON.stringify(issues));
  });

  test('many semantic errors are reported at once', () => {
    const issues = issuesOf(
      [
        'listeners:',
        '  - {name: a, address: "127.0.0.1:7000", protocol: tcp, filters: [{type: nope}], routes: [{cluster: missing}]}',
        '  - {name: a, address: "127.0.0.1:7000", protocol: smtp}',
        'clusters:',
        '  - {name: c, endpoints: ["localhost"]}',
        '  - {name: c, endpoints: ["1.1.1.1:1"]}',
        '',
      ].join('\n'),
    );
    hasIssue(issues, 'listeners[0].filters[0].type', /unknown filter type/);
    hasIssue(issues, 'listeners[0].routes[0].cluster', /unknown cluster 'missing'/);
    hasIssue(issues, 'listeners[1].name', /duplicate listener name/);
    hasIssue(issues, 'listeners[1].address', /also used by/);
    hasIssue(issues, 'listeners[1].protocol', /unknown protocol/);
    hasIssue(issues, 'clusters[0].endpoints[0]', /must be host:port/);
    hasIssue(issues, 'clusters[1].name', /duplicate cluster name/);
  });

  test('the error message lists every issue with its path', () => {
    try {
      loadConfigText('a: 1\nb: 2\n', reg, '/etc/portway.yaml');
      assert.fail('expected a ConfigError');
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.file, '/etc/portway.yaml');
      assert.match(e.message, /in \/etc\/portway\.yaml/);
      assert.match(e.message, /^ {2}a: unknown property/m);
      assert.match(e.message, /^ {2}b: unknown property/m);
    }
  });

  test('YAML syntax errors carry line and column', () => {
    const issues = issuesOf('listeners:\n  - name: a\n    address: [127.0.0.1:7000\n');
    assert.ok(issues.length >= 1);
    for (const i of issues) assert.match(i.path, /^line \d+, column \d+$/);
    assert.ok(issues.every((i) => i.message.length > 0 && !i.message.includes('\n')));
  });

  test('a duplicate YAML key is reported at its line', () => {
    const issues = issuesOf('drain_timeout: 1s\nlog:\n  level: info\ndrain_timeout: 2s\n');
    assert.equal(issues.length, 1);
    assert.equal(issues[0]!.path, 'line 4, column 1');
    assert.match(issues[0]!.message, /unique/);
  });

  test('JSON text is accepted', () => {
    const cfg = load(
      JSON.stringify({
        listeners: [{ name: 'a', address: '127.0.0.1:7000', protocol: 'tcp', routes: [{ cluster: 'c' }], idle_timeout: '2m' }],
        clusters: [{ name: 'c', endpoints: ['127.0.0.1:1', { address: '127.0.0.1:2', weight: 4 }], lb: 'weighted' }],
      }),
    );
    assert.equal(cfg.listeners[0]!.idleTimeoutMs, 120_000);
    assert.equal(cfg.clusters[0]!.lb, 'weighted');
    assert.deepEqual(
      cfg.clusters[0]!.endpoints.map((e) => e.weight),
      [1, 4],
    );
  });
});

describe('normalization', () => {
  test('an empty document gives the defaults', () => {
    const cfg = load('');
    assert.deepEqual(cfg.admin, { enabled: true, address: '127.0.0.1:9901', host: '127.0.0.1', port: 9901 });
    assert.equal(cfg.logLevel, 'info');
    assert.deepEqual(cfg.reload, { watch: false, debounceMs: 250 });
    assert.equal(cfg.drainTimeoutMs, 30_000);
    assert.deepEqual(cfg.listeners, []);
    assert.deepEqual(cfg.clusters, []);
  });

  test('listener and cluster defaults', () => {
    const cfg = load(`${listener('    routes: [{cluster: c}]\n')}${CLUSTER_C}`);
    const l = cfg.listeners[0]!;
    assert.equal(l.idleTimeoutMs, 3_600_000);
    assert.equal(l.maxConnections, 0);
    assert.deepEqual(l.filters, []);
    assert.deepEqual(l.options, {});
    const c = cfg.clusters[0]!;
    assert.equal(c.lb, 'round_robin');
    assert.equal(c.connectTimeoutMs, 5000);
    assert.equal(c.maxConnectAttempts, 3);
    assert.equal(c.dnsRefreshMs, 30_000);
    assert.deepEqual(c.passive, { consecutiveFailures: 1, ejectionTimeMs: 5000 });
    assert.deepEqual(c.limits, { maxConnections: 10_000, maxPendingRequests: 1024, maxConnectionsPerEndpoint: 16, poolIdleTimeoutMs: 60_000 });
    assert.deepEqual(c.endpoints, [{ address: '127.0.0.1:6379', host: '127.0.0.1', port: 6379, weight: 1 }]);
  });

  test('durations become milliseconds, in every unit and as plain numbers', () => {
    const cfg = load(
      [
        'drain_timeout: 1.5s',
        'reload: {debounce: 100}',
        'listeners:',
        '  - {name: a, address: "127.0.0.1:7000", protocol: tcp, idle_timeout: 2m}',
        '  - {name: b, address: "127.0.0.1:7001", protocol: tcp, idle_timeout: 0}',
        'clusters:',
        '  - name: c',
        '    endpoints: ["[::1]:6379"]',
        '    connect_timeout: 250ms',
        '    dns_refresh: 1h',
        '    health_check: {passive: {consecutive_failures: 3, ejection_time: 10s}}',
        '    limits: {pool_idle_timeout: 90s}',
        '',
      ].join('\n'),
    );
    assert.equal(cfg.drainTimeoutMs, 1500);
    assert.equal(cfg.reload.debounceMs, 100);
    assert.deepEqual(
      cfg.listeners.map((l) => l.idleTimeoutMs),
      [120_000, 0],
    );
    const c = cfg.clusters[0]!;
    assert.equal(c.connectTimeoutMs, 250);
    assert.equal(c.dnsRefreshMs, 3_600_000);
    assert.deepEqual(c.passive, { consecutiveFailures: 3, ejectionTimeMs: 10_000 });
    assert.equal(c.limits.poolIdleTimeoutMs, 90_000);
    assert.equal(c.endpoints[0]!.host, '::1');
  });

  test('an explicit admin address is parsed', () => {
    const cfg = load('admin:\n  address: "[::1]:9000"\n');
    assert.deepEqual(cfg.admin, { enabled: true, address: '[::1]:9000', host: '::1', port: 9000 });
  });

  test('the listener fingerprint does not depend on key order', () => {
    const a = load('listeners:\n  - {name: a, address: "127.0.0.1:7000", protocol: tcp, idle_timeout: 5s}\n');
    const b = load('listeners:\n  - {idle_timeout: 5s, protocol: tcp, address: "127.0.0.1:7000", name: a}\n');
    const c = load('listeners:\n  - {name: a, address: "127.0.0.1:7000", protocol: tcp, idle_timeout: 6s}\n');
    assert.equal(a.listeners[0]!.fingerprint, b.listeners[0]!.fingerprint);
    assert.notEqual(a.listeners[0]!.fingerprint, c.listeners[0]!.fingerprint);
  });
});
