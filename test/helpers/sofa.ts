/**
 * Real SOFARPC Node.js peers (npm sofa-rpc-node) for the Bolt tests, each in
 * a child process: the Hessian dialect is process-global in sofa-bolt-node
 * (setHessianVersion), and a closed client lingers about 30 s, so both are
 * killed rather than closed.
 *
 * The same file is the child's program: run with PORTWAY_SOFA_CHILD=client
 * or =server it serves JSON lines on stdin/stdout instead of exporting.
 *
 * Values cross the pipe as JSON with tags: {"$bytes": base64},
 * {"$date": iso}, {"$long": "decimal"}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export const SOFA_SERVICE = 'com.example.EchoService';

export type HessianVersion = '3.0' | '4.0';

export interface SofaPeerOptions {
  /** sofa-bolt-node setHessianVersion: '3.0' (default, npm hessian.js-1) or '4.0' (Hessian 2.0, npm hessian.js). */
  hessian?: HessianVersion;
  /** Bolt v2 framing (proto byte 2), with a CRC32 trailer when crc is true. Client side only. */
  boltV2?: { crc: boolean };
  /** ZooKeeper connect string: the server registers there, the client subscribes there. */
  zookeeper?: string;
}

export interface InvokeResult {
  ok: boolean;
  value?: unknown;
  error?: { name: string; message: string };
  /** Milliseconds the call took, measured in the child. */
  ms: number;
}

// ---------------------------------------------------------------------------
// tagged JSON across the pipe

function tag(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return { $bytes: v.toString('base64') };
  if (v instanceof Date) return { $date: v.toISOString() };
  if (typeof v === 'bigint') return { $long: v.toString() };
  if (Array.isArray(v)) return v.map(tag);
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    // hessian.js Long-like objects
    if (typeof o.toString === 'function' && 'high' in o && 'low' in o && 'unsigned' in o) return { $long: String(o.toString()) };
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(o)) out[k] = tag(o[k]);
    return out;
  }
  return v;
}

export function untag(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(untag);
  const o = v as Record<string, unknown>;
  if (typeof o.$bytes === 'string') return Buffer.from(o.$bytes, 'base64');
  if (typeof o.$date === 'string') return new Date(o.$date);
  if (typeof o.$long === 'string') return BigInt(o.$long);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) out[k] = untag(o[k]);
  return out;
}

// ---------------------------------------------------------------------------
// parent side

class ChildPeer {
  private readonly waiting = new Map<number, (m: Record<string, unknown>) => void>();
  private seq = 0;
  readonly ready: Promise<Record<string, unknown>>;
  readonly exited: Promise<number | null>;
  stderr = '';

  constructor(readonly proc: ChildProcess) {
    let onReady: (m: Record<string, unknown>) => void = () => {};
    let onFail: (e: Error) => void = () => {};
    this.ready = new Promise((resolve, reject) => {
      onReady = resolve;
      onFail = reject;
    });
    this.exited = new Promise((r) => proc.on('exit', (code) => r(code)));
    void this.exited.then((code) => {
      onFail(new Error(`sofa child exited (${code}) before it was ready: ${this.stderr.slice(-800)}`));
      for (const w of this.waiting.values()) w({ ok: false, error: { name: 'ChildExited', message: 'child exited' }, ms: 0 });
      this.waiting.clear();
    });
    proc.stderr!.on('data', (c: Buffer) => (this.stderr = (this.stderr + c.toString()).slice(-4000)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let m: Record<string, unknown>;
      try {
        m = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (m.ready) onReady(m);
      else if (typeof m.id === 'number') {
        const w = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        w?.(m);
      }
    });
  }

  request(msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = ++this.seq;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.proc.stdin!.write(JSON.stringify({ ...msg, id }) + '\n');
    });
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function spawnChild(role: 'client' | 'server', opts: SofaPeerOptions, extra: Record<string, string> = {}): ChildPeer {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORTWAY_SOFA_CHILD: role,
    PORTWAY_SOFA_HESSIAN: opts.hessian ?? '3.0',
    PORTWAY_SOFA_BOLT2: opts.boltV2 ? (opts.boltV2.crc ? 'crc' : 'nocrc') : '',
    PORTWAY_SOFA_ZK: opts.zookeeper ?? '',
    ...extra,
  };
  const proc = spawn(process.execPath, [__filename], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  return new ChildPeer(proc);
}

export interface SofaServer {
  port: number;
  address: string;
  /** The name given at start, returned by whoami(). */
  name: string;
  pid: number;
  /** Kills the process (SIGKILL): as abrupt as a crash. */
  kill(): Promise<void>;
}

/**
 * A sofa-rpc-node RpcServer serving com.example.EchoService (version 1.0) in a
 * child process. Methods: echo(x) -> x, add(a, b) -> a + b, fail(msg) throws,
 * slow(ms, x) -> x after ms, whoami() -> name, record(x) keeps x and
 * recorded() returns what was kept; crash() and crashNoRetry() make a
 * `crashy` server exit without answering (a provider that dies mid-call)
 * and any other answer its name.
 */
export async function startSofaServer(opts: SofaPeerOptions & { name?: string; crashy?: boolean } = {}): Promise<SofaServer> {
  const name = opts.name ?? 'provider';
  const child = spawnChild('server', opts, { PORTWAY_SOFA_NAME: name, PORTWAY_SOFA_CRASHY: opts.crashy ? '1' : '' });
  const m = await child.ready;
  const port = m.port as number;
  return { port, address: `127.0.0.1:${port}`, name, pid: child.proc.pid ?? -1, kill: () => child.kill() };
}

export interface SofaClient {
  pid: number;
  /** Calls a method of the service (default com.example.EchoService, version 1.0). */
  invoke(method: string, args: unknown[], o?: { service?: string; version?: string; timeoutMs?: number }): Promise<InvokeResult>;
  /** Runs n calls with `concurrency` in flight; returns per-call latencies (ms) and errors. */
  load(method: string, args: unknown[], n: number, concurrency: number, o?: { durationMs?: number; service?: string }): Promise<{ calls: number; errors: number; latencies: number[]; elapsedMs: number; firstError?: string }>;
  /**
   * Open loop: calls started at a fixed `rate` (calls/s) for durationMs,
   * whatever the answers do (slow answers never hold later calls back),
   * each latency counted from when the call was sent. `late` counts calls
   * the generator itself sent more than 1 ms after they were due (its timer
   * granularity and its own CPU), the same for every path measured.
   */
  rateLoad(method: string, args: unknown[], rate: number, durationMs: number, o?: { service?: string }): Promise<{ calls: number; errors: number; latencies: number[]; elapsedMs: number; late: number; firstError?: string }>;
  kill(): Promise<void>;
}

/** A sofa-rpc-node RpcClient in a child process, calling `serverHost` (host:port) or through its ZooKeeper registry. */
export async function startSofaClient(target: { serverHost?: string } & SofaPeerOptions): Promise<SofaClient> {
  const child = spawnChild('client', target, { PORTWAY_SOFA_SERVER_HOST: target.serverHost ?? '' });
  await child.ready;
  return {
    pid: child.proc.pid ?? -1,
    async invoke(method, args, o = {}) {
      const m = await child.request({ op: 'invoke', method, args: tag(args), service: o.service ?? SOFA_SERVICE, version: o.version ?? '1.0', timeout: o.timeoutMs ?? 3000 });
      return { ok: m.ok === true, value: untag(m.value), ...(m.error ? { error: m.error as { name: string; message: string } } : {}), ms: m.ms as number };
    },
    async load(method, args, n, concurrency, o = {}) {
      const m = await child.request({ op: 'load', method, args: tag(args), n, concurrency, durationMs: o.durationMs ?? 0, service: o.service ?? SOFA_SERVICE, version: '1.0', timeout: 5000 });
      return m as unknown as { calls: number; errors: number; latencies: number[]; elapsedMs: number; firstError?: string };
    },
    async rateLoad(method, args, rate, durationMs, o = {}) {
      const m = await child.request({ op: 'rate', method, args: tag(args), rate, durationMs, service: o.service ?? SOFA_SERVICE, version: '1.0', timeout: 5000 });
      return m as unknown as { calls: number; errors: number; latencies: number[]; elapsedMs: number; late: number; firstError?: string };
    },
    kill: () => child.kill(),
  };
}

// ---------------------------------------------------------------------------
// raw Bolt from the test process (frames written by sofa-bolt-node, default Hessian)

/* eslint-disable @typescript-eslint/no-require-imports */
interface BoltLib {
  requestEncode(id: number, req: unknown, options: unknown): Buffer;
  decode(buf: Buffer, options?: unknown): { packetId: number; packetType: string; data?: { error?: Error | null; appResponse?: unknown } };
}
/* eslint-enable @typescript-eslint/no-require-imports */

/** A SofaRequest frame as sofa-rpc-node writes it (Bolt v1 unless v2 is given, Hessian of this process: '3.0'). */
export function sofaRequestFrame(id: number, method: string, args: unknown[], o: { service?: string; timeoutMs?: number; oneway?: boolean; v2?: { crc: boolean } } = {}): Buffer {
  const lib = require('sofa-bolt-node/lib/protocol') as BoltLib;
  return Buffer.from(
    lib.requestEncode(
      id,
      { serverSignature: o.service ?? `${SOFA_SERVICE}:1.0`, methodName: method, args, timeout: o.timeoutMs ?? 3000, oneway: o.oneway === true },
      o.v2 ? { protocolType: 'bolt2', codecType: 'hessian2', boltVersion: o.v2.crc ? 2 : 1, crcEnable: o.v2.crc } : { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1 },
    ),
  );
}

export interface RawReply {
  id: number;
  /** The Bolt response status (0 for heartbeat acks). */
  status: number;
  cmd: number;
  /** As sofa-bolt-node decodes it: the error message, or the appResponse. */
  error: string | null;
  value: unknown;
  bytes: Buffer;
}

/** A Bolt connection driven frame by frame: replies by request id, and whether the peer closed. */
export class RawBolt {
  private readonly replies = new Map<number, (r: RawReply) => void>();
  private readonly early = new Map<number, RawReply>();
  readonly closed: Promise<void>;
  isClosed = false;

  private constructor(readonly socket: import('node:net').Socket) {
    const { BoltDecoder } = require('../../src/protocols/bolt/codec') as typeof import('../../src/protocols/bolt/codec');
    const lib = require('sofa-bolt-node/lib/protocol') as BoltLib;
    const d = new BoltDecoder({
      onFrame: (f) => {
        const bytes = Buffer.from(f.bytes());
        let error: string | null = null;
        let value: unknown = null;
        if (f.cmd !== 0) {
          const o = lib.decode(bytes, {});
          error = o.data?.error ? o.data.error.message : null;
          value = o.data?.appResponse ?? null;
        }
        const r: RawReply = { id: f.requestId, status: f.status, cmd: f.cmd, error, value, bytes };
        const w = this.replies.get(r.id);
        this.replies.delete(r.id);
        if (w) w(r);
        else this.early.set(r.id, r);
      },
      onError: () => socket.destroy(),
    });
    socket.on('data', (c: Buffer) => d.push(c));
    socket.on('error', () => {});
    this.closed = new Promise((r) =>
      socket.on('close', () => {
        this.isClosed = true;
        r();
      }),
    );
  }

  static connect(port: number): Promise<RawBolt> {
    const net = require('node:net') as typeof import('node:net');
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => resolve(new RawBolt(s)));
      s.once('error', reject);
    });
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  /** The reply to request `id`; rejects after ms. */
  reply(id: number, ms = 5000): Promise<RawReply> {
    const e = this.early.get(id);
    if (e) {
      this.early.delete(id);
      return Promise.resolve(e);
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.replies.delete(id);
        reject(new Error(`no reply to request ${id} within ${ms} ms`));
      }, ms);
      this.replies.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
    });
  }

  /** Sends a SofaRequest and waits for its reply. */
  call(id: number, method: string, args: unknown[], o: { service?: string; timeoutMs?: number; v2?: { crc: boolean } } = {}): Promise<RawReply> {
    this.write(sofaRequestFrame(id, method, args, o));
    return this.reply(id, (o.timeoutMs ?? 3000) + 3000);
  }

  close(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------
// child side (plain JS objects of an untyped library)

/* eslint-disable @typescript-eslint/no-explicit-any */
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

function send(m: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(m) + '\n');
}

function boltProtocol(): any {
  const bolt = require('sofa-bolt-node');
  const mode = process.env.PORTWAY_SOFA_BOLT2;
  if (!mode) return bolt;
  // Bolt v2 is chosen on the encoder; the decoder reads both.
  return {
    ...bolt,
    encoder(options: unknown) {
      const e = bolt.encoder(options);
      e.protocolType = 'bolt2';
      e.boltVersion = mode === 'crc' ? 2 : 1;
      e.crcEnable = mode === 'crc';
      return e;
    },
  };
}

async function runServerChild(): Promise<void> {
  require('sofa-bolt-node').setHessianVersion(process.env.PORTWAY_SOFA_HESSIAN ?? '3.0');
  const sofa = require('sofa-rpc-node');
  const zk = process.env.PORTWAY_SOFA_ZK;
  const name = process.env.PORTWAY_SOFA_NAME ?? 'provider';
  const registry = zk ? new sofa.registry.ZookeeperRegistry({ logger: quiet, address: zk }) : undefined;
  const recorded: unknown[] = [];
  const crashOrName = async (): Promise<string> => {
    if (process.env.PORTWAY_SOFA_CRASHY !== '1') return name;
    setImmediate(() => process.exit(3));
    return new Promise<string>(() => {});
  };
  const server = new sofa.server.RpcServer({ logger: quiet, port: 0, publishAddress: '127.0.0.1', appName: 'portway-test', ...(registry ? { registry } : {}) });
  server.addService(
    { interfaceName: SOFA_SERVICE },
    {
      async echo(x: unknown) {
        return x;
      },
      async add(a: number, b: number) {
        return a + b;
      },
      async fail(msg: string) {
        throw new Error(msg);
      },
      async slow(ms: number, x: unknown) {
        await new Promise((r) => setTimeout(r, ms));
        return x;
      },
      async whoami() {
        return name;
      },
      // crash / crashNoRetry: a crashy provider exits mid-call; any other answers its name.
      async crash() {
        return crashOrName();
      },
      async crashNoRetry() {
        return crashOrName();
      },
      async record(x: unknown) {
        recorded.push(x);
        return null;
      },
      async recorded() {
        return recorded;
      },
    },
  );
  await server.start();
  if (registry) await server.publish();
  send({ ready: true, port: server.publishPort });
}

async function runClientChild(): Promise<void> {
  const bolt = require('sofa-bolt-node');
  bolt.setHessianVersion(process.env.PORTWAY_SOFA_HESSIAN ?? '3.0');
  const sofa = require('sofa-rpc-node');
  const zk = process.env.PORTWAY_SOFA_ZK;
  const serverHost = process.env.PORTWAY_SOFA_SERVER_HOST;
  const registry = zk ? new sofa.registry.ZookeeperRegistry({ logger: quiet, address: zk }) : undefined;
  const client = new sofa.client.RpcClient({ logger: quiet, protocol: boltProtocol(), ...(registry ? { registry } : {}) });
  client.on('error', () => {});
  const consumers = new Map<string, any>();
  const consumer = async (service: string, version: string, timeout: number): Promise<any> => {
    const key = `${service}:${version}:${timeout}`;
    let c = consumers.get(key);
    if (!c) {
      c = client.createConsumer({ interfaceName: service, version, responseTimeout: timeout, ...(serverHost ? { serverHost } : {}) });
      consumers.set(key, c);
      await c.ready();
    }
    return c;
  };
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const m = JSON.parse(line) as Record<string, any>;
    void (async () => {
      const c = await consumer(m.service, m.version, m.timeout);
      const args = untag(m.args) as unknown[];
      if (m.op === 'invoke') {
        const t0 = performance.now();
        try {
          const value = await c.invoke(m.method, args, { responseTimeout: m.timeout });
          send({ id: m.id, ok: true, value: tag(value), ms: performance.now() - t0 });
        } catch (e) {
          const err = e as Error;
          send({ id: m.id, ok: false, error: { name: err.name, message: err.message }, ms: performance.now() - t0 });
        }
        return;
      }
      if (m.op === 'rate') {
        // Open loop: call i is due at start + i / rate and is sent then, answered or not; its latency counts from when it was sent.
        const latencies: number[] = [];
        let errors = 0;
        let late = 0;
        let firstError: string | undefined;
        const start = performance.now() + 1;
        const total = Math.floor((m.rate * m.durationMs) / 1000);
        let issued = 0;
        let done = 0;
        await new Promise<void>((resolve) => {
          const one = () => {
            const t0 = performance.now();
            c.invoke(m.method, args, { responseTimeout: m.timeout }).then(
              () => latencies.push(performance.now() - t0),
              (e: Error) => {
                errors++;
                firstError ??= e.message;
              },
            ).finally(() => {
              if (++done === total) resolve();
            });
          };
          const tick = () => {
            const now = performance.now();
            while (issued < total) {
              const due = start + (issued * 1000) / m.rate;
              if (due > now) break;
              if (now - due > 1) late++;
              issued++;
              one();
            }
            if (issued < total) setTimeout(tick, 1);
          };
          if (total === 0) resolve();
          else setTimeout(tick, 1);
        });
        send({ id: m.id, calls: latencies.length, errors, latencies, late, elapsedMs: performance.now() - start, ...(firstError ? { firstError } : {}) });
        return;
      }
      // load: n calls (or until durationMs), `concurrency` in flight.
      const latencies: number[] = [];
      let errors = 0;
      let firstError: string | undefined;
      let started = 0;
      const start = performance.now();
      const until = m.durationMs > 0 ? start + m.durationMs : Infinity;
      const worker = async () => {
        while (started < m.n && performance.now() < until) {
          started++;
          const t0 = performance.now();
          try {
            await c.invoke(m.method, args, { responseTimeout: m.timeout });
            latencies.push(performance.now() - t0);
          } catch (e) {
            errors++;
            firstError ??= (e as Error).message;
          }
        }
      };
      await Promise.all(Array.from({ length: m.concurrency }, worker));
      send({ id: m.id, calls: latencies.length, errors, latencies, elapsedMs: performance.now() - start, ...(firstError ? { firstError } : {}) });
    })().catch((e: Error) => send({ id: m.id, ok: false, error: { name: e.name, message: e.message }, ms: 0 }));
  });
  send({ ready: true });
}

if (require.main === module && process.env.PORTWAY_SOFA_CHILD) {
  const role = process.env.PORTWAY_SOFA_CHILD;
  // The parent going away ends the child.
  process.stdin.on('end', () => process.exit(0));
  (role === 'server' ? runServerChild() : runClientChild()).catch((e: Error) => {
    process.stderr.write(`${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
