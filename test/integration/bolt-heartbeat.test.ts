/**
 * Heartbeats towards providers: idle pooled connections get a Bolt heartbeat
 * (seen through a tap in front of a real sofa-rpc-node server, which answers
 * it), a provider that does not answer loses the connection, and the `bolt`
 * active health check probes with a heartbeat.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { startPortway, type InProcess } from '../helpers/portway';
import { sleep, waitFor } from '../helpers/net';
import { cluster } from '../helpers/discovery';
import { RawBolt, startSofaServer, type SofaServer } from '../helpers/sofa';
import { BoltDecoder, type BoltFrame } from '../../src/protocols/bolt/codec';

/** A TCP tap: forwards both ways and decodes what passes. */
class BoltTap {
  readonly toServer: BoltFrame[] = [];
  readonly toClient: BoltFrame[] = [];
  readonly conns = new Set<Socket>();
  port = 0;
  /** false: nothing goes back to the client (a provider that stopped answering). */
  answer = true;
  private readonly server: Server;
  constructor(target: number) {
    this.server = createServer((down) => {
      this.conns.add(down);
      const up = connect({ port: target, host: '127.0.0.1' });
      const d1 = new BoltDecoder({ onFrame: (f) => this.toServer.push(f), onError: () => {} });
      const d2 = new BoltDecoder({ onFrame: (f) => this.toClient.push(f), onError: () => {} });
      down.on('data', (c: Buffer) => {
        d1.push(c);
        up.write(c);
      });
      up.on('data', (c: Buffer) => {
        if (!this.answer) return;
        d2.push(c);
        down.write(c);
      });
      const end = () => {
        this.conns.delete(down);
        down.destroy();
        up.destroy();
      };
      down.on('close', end);
      up.on('close', end);
      down.on('error', () => {});
      up.on('error', () => {});
    });
  }
  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }
  close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe('bolt heartbeats and health checks', { timeout: 60_000 }, () => {
  let s: SofaServer;
  let tap: BoltTap;
  let pw: InProcess;
  let garbage: Server;
  let garbagePort: number;
  const garbageConns = new Set<Socket>();

  before(async () => {
    s = await startSofaServer({ name: 'hb' });
    tap = new BoltTap(s.port);
    await tap.listen();
    garbage = createServer((c) => {
      garbageConns.add(c);
      c.on('close', () => garbageConns.delete(c));
      c.on('error', () => {});
      c.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    });
    await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
    garbagePort = (garbage.address() as AddressInfo).port;
    pw = await startPortway(`
listeners:
  - name: bolt
    address: 127.0.0.1:0
    protocol: bolt
    options: { upstream_heartbeat: 200ms, connections_per_endpoint: 1 }
    routes: [{ cluster: tapped }]
clusters:
  - { name: tapped, endpoints: [127.0.0.1:${tap.port}] }
  - name: probed
    connect_timeout: 1s
    endpoints: [${s.address}, 127.0.0.1:${garbagePort}]
    health_check:
      active: { type: bolt, interval: 100ms, timeout: 500ms, unhealthy_threshold: 1, healthy_threshold: 1 }
`);
  });

  after(async () => {
    await pw?.stop();
    await tap?.close();
    for (const c of garbageConns) c.destroy();
    await new Promise<void>((r) => garbage?.close(() => r()));
    await s?.kill();
  });

  test('an idle provider connection gets heartbeats, the provider acks them, and the connection stays usable', async () => {
    const raw = await RawBolt.connect(pw.port('bolt'));
    assert.equal((await raw.call(1, 'echo', ['x'])).value, 'x');
    await waitFor(async () => tap.toServer.some((f) => f.cmd === 0) && tap.toClient.some((f) => f.cmd === 0), 5000, 'a heartbeat and its ack');
    const hb = tap.toServer.find((f) => f.cmd === 0)!;
    const ack = tap.toClient.find((f) => f.cmd === 0)!;
    assert.equal(ack.requestId, hb.requestId);
    assert.equal(tap.conns.size, 1);
    assert.equal((await raw.call(2, 'echo', ['still'])).value, 'still');
    assert.equal(tap.conns.size, 1, 'the same pooled connection');
    raw.close();
  });

  test('a provider that stops answering heartbeats loses its connection', async () => {
    tap.answer = false;
    try {
      await waitFor(async () => tap.conns.size === 0, 5000, 'the silent connection closed by Portway');
    } finally {
      tap.answer = true;
    }
    // A new call opens a new connection.
    const raw = await RawBolt.connect(pw.port('bolt'));
    assert.equal((await raw.call(3, 'echo', ['new'])).value, 'new');
    raw.close();
  });

  test('the bolt health probe: a provider answering heartbeats is healthy, anything else is not', async () => {
    const ep = async (addr: string) => ((await cluster(pw, 'probed')).endpoints as { address: string; health: string; reason?: string }[]).find((e) => e.address === addr)!;
    await waitFor(async () => (await ep(`127.0.0.1:${garbagePort}`)).health === 'unhealthy', 5000, 'garbage endpoint unhealthy');
    assert.match((await ep(`127.0.0.1:${garbagePort}`)).reason!, /not a Bolt answer|connection closed/);
    await sleep(300);
    assert.equal((await ep(s.address)).health, 'healthy');
  });
});
