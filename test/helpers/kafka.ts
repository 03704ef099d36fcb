/**
 * Kafka test helpers: Portway with a Kafka listener in this process, kafkajs
 * clients that log nothing, kcat runs (async spawn), and a raw connection for
 * hand-made frames.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { Kafka, logLevel, type KafkaConfig } from 'kafkajs';
import { startPortway, type InProcess } from './portway';
import { ensureDebianBinary } from './process';

export interface KafkaPortwayOptions {
  /** `component:` of the log cluster (YAML flow map). Default memory_log. */
  component?: string;
  /** Extra listener options (YAML lines, indented 6). */
  options?: string;
  /** Extra listener filters (YAML list items, indented 6). */
  filters?: string;
  /** Extra clusters (YAML list items, indented 2). */
  clusters?: string;
  address?: string;
}

export function kafkaConfig(o: KafkaPortwayOptions = {}): string {
  return `
listeners:
  - name: kafka
    address: ${o.address ?? '127.0.0.1:0'}
    protocol: kafka
    options:
      group: { initial_rebalance_delay: 200ms }
${o.options ?? ''}
    filters:
${o.filters ?? ''}
      - type: router
    routes: [{ cluster: log }]
clusters:
  - name: log
    component: ${o.component ?? '{ type: memory_log }'}
${o.clusters ?? ''}
`;
}

export async function startKafkaPortway(o: KafkaPortwayOptions = {}): Promise<InProcess & { broker: string }> {
  const pw = await startPortway(kafkaConfig(o));
  return Object.assign(pw, { broker: `127.0.0.1:${pw.port('kafka')}` });
}

export function kafkaClient(broker: string, extra: Partial<KafkaConfig> = {}): Kafka {
  return new Kafka({ brokers: [broker], clientId: 'portway-test', logLevel: logLevel.NOTHING, retry: { retries: 3, initialRetryTime: 100 }, ...extra });
}

let kcatPath: string | null = null;

export function kcatBinary(): string {
  kcatPath ??= ensureDebianBinary('kcat', 'kcat');
  return kcatPath;
}

export interface KcatResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs kcat to completion (killed after timeoutMs), feeding `input` on stdin. */
export function kcat(args: string[], input?: string, timeoutMs = 20_000): Promise<KcatResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(kcatBinary(), args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) p.stdin.end(input);
    else p.stdin.end();
  });
}

/** A raw client connection: send frames, read whole response frames. */
export class RawKafka {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static open(port: number): Promise<RawKafka> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new RawKafka(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(b: Buffer): void {
    this.socket.write(b);
  }

  /** The next response frame without its size prefix (starts with the correlation id); null when the peer closed. */
  async next(timeoutMs = 5000): Promise<Buffer | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 4) {
        const n = this.buf.readInt32BE(0);
        if (this.buf.length >= 4 + n) {
          const f = this.buf.subarray(4, 4 + n);
          this.buf = this.buf.subarray(4 + n);
          return f;
        }
      }
      if (this.closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no response frame in time');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A request frame: size, header v1 (api key, version, correlation id, client id), body. */
export function requestFrame(apiKey: number, version: number, correlationId: number, body: Buffer, clientId = 'raw'): Buffer {
  const id = Buffer.from(clientId);
  const head = Buffer.alloc(14 + id.length);
  head.writeInt32BE(10 + id.length + body.length, 0);
  head.writeInt16BE(apiKey, 4);
  head.writeInt16BE(version, 6);
  head.writeInt32BE(correlationId, 8);
  head.writeInt16BE(id.length, 12);
  id.copy(head, 14);
  return Buffer.concat([head, body]);
}

/** Produce v7 body: one topic, one partition, the given records bytes. */
export function produceBody(topic: string, partition: number, records: Buffer, acks = 1): Buffer {
  const t = Buffer.from(topic);
  const b = Buffer.alloc(2 + 2 + 4 + 4 + 2 + t.length + 4 + 4 + 4);
  let p = 0;
  p = b.writeInt16BE(-1, p);
  p = b.writeInt16BE(acks, p);
  p = b.writeInt32BE(5000, p);
  p = b.writeInt32BE(1, p);
  p = b.writeInt16BE(t.length, p);
  p += t.copy(b, p);
  p = b.writeInt32BE(1, p);
  p = b.writeInt32BE(partition, p);
  b.writeInt32BE(records.length, p);
  return Buffer.concat([b, records]);
}

/** A request frame encoded by kafkajs's own protocol code, e.g. kafkajsFrame('fetch/v11', {...}, 5). */
export async function kafkajsFrame(api: string, args: Record<string, unknown>, correlationId: number): Promise<Buffer> {
  const request = require(`kafkajs/src/protocol/requests/${api}/request`)(args);
  const encoder = await require('kafkajs/src/protocol/request')({ correlationId, clientId: 'raw', request });
  return encoder.buffer as Buffer;
}
