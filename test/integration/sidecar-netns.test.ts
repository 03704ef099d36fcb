/**
 * Transparent interception end to end, in network namespaces this test
 * creates (root required): an "app" namespace where Portway runs as uid 1337
 * and `portway iptables --apply` redirects outbound TCP to it, and a
 * "remote" namespace (veth pair) holding a real redis-server, an HTTP server
 * and a TCP echo server at 10.200.0.2. Unmodified redis-cli, curl, kafkajs and a sofa-rpc-node consumer in the
 * app namespace connect to their usual remote addresses and are served
 * through Portway (protocol: auto, original_dst cluster), with the original
 * destination in the access log. Also: a port no rule names is passed
 * through; a direct connection to Portway is refused and counted; applying
 * the rules twice then cleaning leaves the nat table as it was (nft and
 * legacy backends). The namespaces are removed whatever happens.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, REPO, tempDir } from '../helpers/portway';
import { ensureDebianBinary, ensureDebianPackage, onPath, startProcess, type StartedProcess } from '../helpers/process';
import { sleep, waitFor } from '../helpers/net';

const execFileP = promisify(execFile);
const tag = `${process.pid % 100000}`;
const APP = `pwapp${tag}`;
const REMOTE = `pwrem${tag}`;
const APP_IP = '10.200.0.1';
const REMOTE_IP = '10.200.0.2';
const PORTWAY_UID = '1337';

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

function inNs(ns: string, args: string[]): string {
  return sh('ip', ['netns', 'exec', ns, ...args]);
}

async function inNsAsync(ns: string, args: string[], timeoutMs = 10_000): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await execFileP('ip', ['netns', 'exec', ns, ...args], { timeout: timeoutMs });
    return { stdout: r.stdout, stderr: r.stderr, code: 0 };
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; code?: number };
    return { stdout: x.stdout ?? '', stderr: x.stderr ?? '', code: typeof x.code === 'number' ? x.code : 1 };
  }
}

function removeNamespaces(): void {
  for (const ns of [APP, REMOTE]) spawnSync('ip', ['netns', 'del', ns], { encoding: 'utf8' });
}

/** The nat table without comments and packet counters, to compare before and after. */
function natTable(backend: 'nft' | 'legacy'): string {
  return inNs(APP, [`iptables-${backend}-save`, '-t', 'nat'])
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/, ''))
    .join('\n');
}

function portwayIptables(args: string[]): string {
  return inNs(APP, [process.execPath, CLI, 'iptables', ...args]);
}

describe('sidecar mode in network namespaces', { timeout: 90_000 }, () => {
  const dir = tempDir('portway-netns-');
  const logFile = join(dir, 'portway.log');
  const procs: StartedProcess[] = [];
  let redisCli: string;
  let curl: string;

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this test creates network namespaces: it runs as root');
    ensureDebianPackage('iproute2', () => onPath('ip') !== null);
    ensureDebianPackage('iptables', () => onPath('iptables-nft') !== null && onPath('iptables-legacy') !== null);
    const redisServer = ensureDebianBinary('redis-server', 'redis-server');
    redisCli = ensureDebianBinary('redis-cli', 'redis-tools');
    curl = ensureDebianBinary('curl', 'curl');
    removeNamespaces();
    sh('ip', ['netns', 'add', APP]);
    sh('ip', ['netns', 'add', REMOTE]);
    sh('ip', ['link', 'add', `pwa${tag}`, 'type', 'veth', 'peer', 'name', `pwr${tag}`]);
    sh('ip', ['link', 'set', `pwa${tag}`, 'netns', APP]);
    sh('ip', ['link', 'set', `pwr${tag}`, 'netns', REMOTE]);
    for (const [ns, dev, ip] of [
      [APP, `pwa${tag}`, APP_IP],
      [REMOTE, `pwr${tag}`, REMOTE_IP],
    ] as const) {
      inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
      inNs(ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', dev]);
      inNs(ns, ['ip', 'link', 'set', dev, 'up']);
    }

    // The remote side: redis on 6379, HTTP on 8080, a TCP echo on 7000 (a port no rule names).
    procs.push(
      await startProcess('ip', ['netns', 'exec', REMOTE, redisServer, '--bind', REMOTE_IP, '--port', '6379', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', dir], {
        name: 'redis-server (remote ns)',
        ready: async () => (await inNsAsync(REMOTE, [redisCli, '-h', REMOTE_IP, 'PING'], 2000)).stdout.trim() === 'PONG',
      }),
    );
    const servers = `
      const net = require('net'), http = require('http');
      http.createServer((q, s) => s.end('remote http ' + q.url)).listen(8080, '${REMOTE_IP}');
      net.createServer((c) => c.pipe(c)).listen(7000, '${REMOTE_IP}');`;
    procs.push(
      await startProcess('ip', ['netns', 'exec', REMOTE, process.execPath, '-e', servers], {
        name: 'http + echo (remote ns)',
        ready: async () => (await inNsAsync(REMOTE, [curl, '-s', `http://${REMOTE_IP}:8080/`], 2000)).stdout.startsWith('remote http'),
      }),
    );

    // A SOFARPC provider on 12200 (sofa-rpc-node, Bolt v1).
    procs.push(
      await startProcess('ip', ['netns', 'exec', REMOTE, process.execPath, '-e', `
        const sofa = require(${JSON.stringify(join(REPO, 'node_modules', 'sofa-rpc-node'))});
        const quiet = { info() {}, warn() {}, error() {}, debug() {} };
        const server = new sofa.server.RpcServer({ logger: quiet, port: 12200, publishAddress: '${REMOTE_IP}', appName: 'remote' });
        server.addService({ interfaceName: 'com.example.EchoService' }, { async echo(x) { return 'remote:' + x; } });
        server.start();`], {
        name: 'sofa provider (remote ns)',
        ready: async () => (await inNsAsync(REMOTE, ['bash', '-c', `exec 3<>/dev/tcp/${REMOTE_IP}/12200`], 2000)).code === 0,
      }),
    );

    // Portway in the app namespace, as uid 1337 (excluded from redirection).
    const cfg = join(dir, 'sidecar.yaml');
    writeFileSync(
      cfg,
      `
admin: { address: 127.0.0.1:9901 }
listeners:
  - name: outbound
    address: 0.0.0.0:15001
    protocol: auto
    original_dst: true
    options:
      detect_timeout: 1s
      redis: {}
      http: {}
      bolt: {}
      tls: {}
      # No Kafka broker exists here: Portway is the broker (memory log) for the app's "remote" Kafka address.
      kafka: { advertised_host: ${REMOTE_IP}, advertised_port: 9092 }
      fallback: tcp
    filters: [{ type: access_log }]
    routes:
      - { match: { attributes: { protocol: { exact: kafka } } }, cluster: log }
      - { cluster: passthrough }
clusters:
  - { name: passthrough, original_dst: true }
  - { name: log, component: { type: memory_log } }
`,
    );
    chmodSync(dir, 0o755);
    chmodSync(cfg, 0o644);
    procs.push(
      await startProcess('ip', ['netns', 'exec', APP, 'setpriv', `--reuid=${PORTWAY_UID}`, `--regid=${PORTWAY_UID}`, '--clear-groups', process.execPath, CLI, 'run', '-c', cfg], {
        name: 'portway (app ns)',
        logFile,
        ready: async () => (await inNsAsync(APP, [curl, '-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:9901/ready'], 2000)).stdout === '200',
      }),
    );
  });

  after(async () => {
    for (const p of procs.reverse()) await p.kill();
    removeNamespaces();
  });

  test('portway iptables --apply twice, then --clean, leaves the nat table as it was (nft and legacy)', () => {
    for (const backend of ['nft', 'legacy'] as const) {
      // Someone else's rule must survive: clean removes exactly ours.
      inNs(APP, [`iptables-${backend}`, '-t', 'nat', '-A', 'OUTPUT', '-d', '192.0.2.1/32', '-j', 'RETURN']);
      const before = natTable(backend);
      const args = ['--backend', backend, '--outbound-port', '15001', '--inbound-port', '15006', '--exclude-uid', PORTWAY_UID];
      portwayIptables([...args, '--apply']);
      const once = natTable(backend);
      portwayIptables([...args, '--apply']);
      assert.equal(natTable(backend), once);
      assert.match(once, /-A OUTPUT -p tcp -j PORTWAY_OUTPUT/);
      assert.match(once, /-A PORTWAY_OUTPUT -m owner --uid-owner 1337 -j RETURN/);
      portwayIptables(['--backend', backend, '--clean']);
      assert.equal(natTable(backend), before);
      inNs(APP, [`iptables-${backend}`, '-t', 'nat', '-D', 'OUTPUT', '-d', '192.0.2.1/32', '-j', 'RETURN']);
    }
  });

  test('unmodified redis-cli and curl reach their usual remote addresses through Portway', async () => {
    portwayIptables(['--outbound-port', '15001', '--inbound-port', '0', '--exclude-uid', PORTWAY_UID, '--apply']);
    try {
      const set = await inNsAsync(APP, [redisCli, '-h', REMOTE_IP, '-p', '6379', 'SET', 'sidecar:k', 'through-portway']);
      assert.equal(set.stdout.trim(), 'OK', set.stderr);
      // The value is really in the remote redis (read there directly, without Portway).
      assert.equal(inNs(REMOTE, [redisCli, '-h', REMOTE_IP, 'GET', 'sidecar:k']).trim(), 'through-portway');
      const web = await inNsAsync(APP, [curl, '-s', `http://${REMOTE_IP}:8080/hello`]);
      assert.equal(web.stdout, 'remote http /hello');
      // A port no rule names: detected as nothing known, passed through as TCP to its original destination.
      const echo = await inNsAsync(APP, [process.execPath, '-e', `
        const s = require('net').connect(7000, '${REMOTE_IP}', () => s.write(Buffer.from([0xfe, 1, 2, 3])));
        s.on('data', (d) => { process.stdout.write(d.toString('hex')); s.destroy(); });`]);
      assert.equal(echo.stdout, 'fe010203');

      // kafkajs, unmodified, talks to its usual broker address; Portway serves it (and advertises that address).
      const kafka = await inNsAsync(
        APP,
        [
          process.execPath,
          '-e',
          `const { Kafka, logLevel } = require(${JSON.stringify(join(REPO, 'node_modules', 'kafkajs'))});
          (async () => {
            const k = new Kafka({ brokers: ['${REMOTE_IP}:9092'], clientId: 'sidecar-test', logLevel: logLevel.NOTHING, retry: { retries: 2 } });
            const p = k.producer({ allowAutoTopicCreation: true });
            const a = k.admin();
            await p.connect(); await a.connect();
            await a.createTopics({ topics: [{ topic: 'sidecar', numPartitions: 1 }] });
            await p.send({ topic: 'sidecar', messages: [{ value: 'a' }, { value: 'b' }] });
            const o = await a.fetchTopicOffsets('sidecar');
            process.stdout.write(o[0].high);
            await p.disconnect(); await a.disconnect();
            process.exit(0);
          })().catch((e) => { process.stderr.write(e.message); process.exit(1); });`,
        ],
        20_000,
      );
      assert.equal(kafka.stdout, '2', kafka.stderr);

      // A sofa-rpc-node consumer calls its provider's usual address; Portway's Bolt listener forwards the call there.
      const sofa = await inNsAsync(
        APP,
        [
          process.execPath,
          '-e',
          `const sofa = require(${JSON.stringify(join(REPO, 'node_modules', 'sofa-rpc-node'))});
          const quiet = { info() {}, warn() {}, error() {}, debug() {} };
          (async () => {
            const client = new sofa.client.RpcClient({ logger: quiet });
            client.on('error', () => {});
            const c = client.createConsumer({ interfaceName: 'com.example.EchoService', serverHost: '${REMOTE_IP}:12200' });
            await c.ready();
            process.stdout.write(String(await c.invoke('echo', ['hi'], { responseTimeout: 5000 })));
            process.exit(0);
          })().catch((e) => { process.stderr.write(e.message); process.exit(1); });`,
        ],
        20_000,
      );
      assert.equal(sofa.stdout, 'remote:hi', sofa.stderr);

      // The access log shows where each connection was going.
      const lines = await waitFor(() => {
        const l = readFileSync(logFile, 'utf8').split('\n').filter((x) => x.includes('"log":"access"'));
        const seen = (port: number) => l.some((x) => x.includes(`"original_dst":"${REMOTE_IP}:${port}"`));
        return [6379, 8080, 7000, 9092, 12200].every(seen) ? l : null;
      }, 5000, 'access log lines');
      assert.ok(lines !== null);
      const redisLine = JSON.parse(lines.find((x) => x.includes(`"original_dst":"${REMOTE_IP}:6379"`))!) as Record<string, unknown>;
      assert.equal(redisLine['protocol'], 'redis');
      assert.equal(redisLine['upstream'], `${REMOTE_IP}:6379`);
      assert.ok(lines.some((x) => x.includes(`"original_dst":"${REMOTE_IP}:7000"`)));
      assert.ok(lines.some((x) => x.includes(`"original_dst":"${REMOTE_IP}:9092"`) && x.includes('"protocol":"kafka"')));
      assert.ok(lines.some((x) => x.includes(`"original_dst":"${REMOTE_IP}:12200"`) && x.includes('"protocol":"bolt"')));

      // A direct connection to Portway (not redirected: loopback is excluded) is refused and counted.
      const direct = await inNsAsync(APP, [redisCli, '-h', '127.0.0.1', '-p', '15001', 'PING'], 5000);
      assert.notEqual(direct.stdout.trim(), 'PONG');
      await sleep(50);
      const metrics = (await inNsAsync(APP, [curl, '-s', 'http://127.0.0.1:9901/metrics'])).stdout;
      assert.match(metrics, /portway_original_dst_total\{listener="outbound",result="direct_refused"\} [1-9]/);
      assert.match(metrics, /portway_original_dst_total\{listener="outbound",result="redirected"\} [3-9]/);
      assert.match(metrics, /portway_downstream_errors_total\{code="PW_ERR_ORIGINAL_DST_LOOP",listener="outbound"\} [1-9]/);

      // Misconfigured exclusion (the wrong uid): Portway's own upstream connection comes back to it. The loop is
      // recognised by its source (one of Portway's own sockets), refused and counted; the client gets an error, not a hang.
      portwayIptables(['--outbound-port', '15001', '--inbound-port', '0', '--exclude-uid', '4242', '--apply']);
      // (L4 passthrough opens a new upstream connection per client; pooled Redis links opened earlier would stay.)
      const looped = await inNsAsync(APP, [process.execPath, '-e', `
        const s = require('net').connect(7000, '${REMOTE_IP}', () => s.write(Buffer.from([0xfe, 9])));
        s.on('data', (d) => process.stdout.write(d.toString('hex')));
        s.on('error', () => {});
        s.on('close', () => process.exit(0));`], 5000);
      assert.equal(looped.stdout, '');
      const after = (await inNsAsync(APP, [curl, '-s', 'http://127.0.0.1:9901/metrics'])).stdout;
      assert.match(after, /portway_original_dst_total\{listener="outbound",result="loop_refused"\} [1-9]/);
    } finally {
      portwayIptables(['--clean']);
    }
  });
});
