/**
 * Bad input on the Bolt listener: garbage, an unknown protocol byte, lengths
 * that lie, a frame over the size limit, a CRC mismatch. Each closes its
 * own connection with the reason logged; Portway keeps serving the other
 * connections (a sofa-rpc-node client under load, a raw connection opened
 * before) and new ones.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { builtins } from '../../src/builtins';
import { loadConfigText } from '../../src/config/load';
import { createLogger } from '../../src/logger';
import { Proxy } from '../../src/proxy';
import { http, sleep } from '../helpers/net';
import { RawBolt, sofaRequestFrame, startSofaClient, startSofaServer, type SofaClient, type SofaServer } from '../helpers/sofa';

describe('bolt: bad input closes only the offending connection', { timeout: 90_000 }, () => {
  let server: SofaServer;
  let proxy: Proxy;
  let port: number;
  let client: SofaClient;
  const logs: Record<string, unknown>[] = [];

  before(async () => {
    server = await startSofaServer({ name: 'p' });
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    });
    const cfg = loadConfigText(
      `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: bolt
    address: 127.0.0.1:0
    protocol: bolt
    options: { max_frame_size: 4096 }
    routes: [{ cluster: p }]
clusters:
  - { name: p, endpoints: [${server.address}] }
`,
      builtins().registries,
    );
    proxy = await Proxy.start(cfg, createLogger('warn', sink));
    port = proxy.listenerPort('bolt')!;
    client = await startSofaClient({ serverHost: `127.0.0.1:${port}` });
  });

  after(async () => {
    await client?.kill();
    await proxy?.shutdown(100);
    await server?.kill();
  });

  /** Sends bytes on a fresh connection; resolves once Portway closed it. */
  async function closedAfter(bytes: Buffer): Promise<void> {
    const raw = await RawBolt.connect(port);
    raw.write(bytes);
    await Promise.race([raw.closed, sleep(5000).then(() => assert.fail('Portway did not close the connection'))]);
  }

  function logged(re: RegExp): boolean {
    return logs.some((l) => typeof l.reason === 'string' && re.test(l.reason) && /invalid frame/.test(String(l.msg)));
  }

  test('each kind of bad input closes its connection and is logged; everyone else keeps going', async () => {
    const bystander = await RawBolt.connect(port);
    assert.equal((await bystander.call(1, 'echo', ['before'])).value, 'before');
    const load = client.load('echo', ['x'], 1_000_000, 4, { durationMs: 3000 });

    const good = sofaRequestFrame(2, 'echo', ['x']);
    const cases: [string, Buffer, RegExp][] = [];
    cases.push(['garbage', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /unknown protocol byte 0x47/]);
    cases.push(['unknown protocol byte', Buffer.concat([Buffer.from([0x05]), good.subarray(1)]), /unknown protocol byte 0x05/]);
    const negative = Buffer.from(good);
    negative.writeInt32BE(-1, 18);
    cases.push(['negative content length', negative, /negative content length/]);
    const headerLie = Buffer.from(good);
    headerLie.writeInt32BE(70000, 22 + headerLie.readUInt16BE(14));
    cases.push(['header map length that lies', headerLie, /header map/]);
    cases.push(['frame over max_frame_size', sofaRequestFrame(3, 'echo', ['y'.repeat(5000)]), /over the limit of 4096/]);
    const crc = sofaRequestFrame(4, 'echo', ['x'], { v2: { crc: true } });
    crc[crc.length - 8] ^= 0x55;
    cases.push(['CRC mismatch', crc, /CRC mismatch/]);
    const wrongCmd = Buffer.from(good);
    wrongCmd.writeUInt16BE(2, 2);
    cases.push(['a request carrying the response command code', wrongCmd, /response command code 2/]);
    for (const [name, bytes, reason] of cases) {
      await closedAfter(bytes);
      // Logging is rate-limited to one line a second: give each case its own second.
      await sleep(1100);
      assert.ok(logged(reason), `${name}: a log line with reason ${reason} (got ${JSON.stringify(logs.slice(-3))})`);
    }

    // A frame that claims more bytes than ever come, then the client goes: nothing waits forever, nothing breaks.
    const truncated = await RawBolt.connect(port);
    truncated.write(good.subarray(0, good.length - 5));
    truncated.close();

    const l = await load;
    assert.ok(l.calls > 0);
    assert.equal(l.errors, 0, l.firstError);
    assert.equal((await bystander.call(5, 'echo', ['after'])).value, 'after');
    bystander.close();
    const fresh = await RawBolt.connect(port);
    assert.equal((await fresh.call(6, 'echo', ['fresh'])).value, 'fresh');
    fresh.close();
    const metrics = (await http('GET', `http://${proxy.adminAddress()}/metrics`)).body;
    assert.match(metrics, /portway_downstream_errors_total\{code="PW_ERR_PROTOCOL",listener="bolt"\} 7/);
  });
});
