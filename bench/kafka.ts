/**
 * Kafka benchmark: kafkajs (the client, in this process) producing 1 KiB
 * records in batches of 100 with acks=1, then consuming them back with a
 * consumer group, against two targets in one run:
 *
 * - sink: a no-op Kafka broker written here (its own process). It answers
 *   produce requests without checking or storing anything and serves fetches
 *   from one pre-built batch, so its figures are what the client alone can
 *   do on this machine: the ceiling.
 * - portway: Portway's Kafka listener (the CLI, its own process) on the
 *   embedded log with interval fsync, CRCs checked, records on disk.
 *
 * After an unrecorded warm-up of both, the paths alternate (and swap which
 * goes first) round by round; each figure is the median of the rounds. Goal: Portway's produce throughput at least 70% of the sink's.
 *
 * Usage: node dist/bench/kafka.js [--quick] [--records N] [--rounds N] [--component embedded|memory_log] [--json FILE]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { benchMain, Children, CpuMeter, fmt, freePort, machineLine, parseBenchArgs, PORTWAY_CLI, PORTWAY_NODE_FLAGS, ratio, runAsMain, say, table, waitForHttp200, waitForPort, type Child } from './lib';
import { KafkaFrameDecoder } from '../src/protocols/kafka/frame-decoder';
import { KafkaReader } from '../src/protocols/kafka/reader';
import { KafkaWriter } from '../src/protocols/kafka/writer';
import { readHeaderRest, readHeaderStart } from '../src/protocols/kafka/request-header';
import { ApiKey, isSupported } from '../src/protocols/kafka/api-keys';
import { buildBatch, encodeRecords } from '../src/protocols/kafka/record-batch';
import { encodeApiVersionsResponse } from '../src/protocols/kafka/apis/api-versions';
import { decodeMetadataRequest, encodeMetadataResponse } from '../src/protocols/kafka/apis/metadata';
import { decodeProduceRequest, encodeProduceResponse } from '../src/protocols/kafka/apis/produce';
import { decodeFetchRequest, encodeFetchResponse } from '../src/protocols/kafka/apis/fetch';
import { decodeListOffsetsRequest, decodeOffsetCommitRequest, decodeOffsetFetchRequest, encodeListOffsetsResponse, encodeOffsetCommitResponse, encodeOffsetFetchResponse } from '../src/protocols/kafka/apis/offsets';
import { decodeJoinGroupRequest, decodeSyncGroupRequest, encodeErrorOnlyResponse, encodeFindCoordinatorResponse, encodeJoinGroupResponse, encodeLeaveGroupResponse, encodeSyncGroupResponse } from '../src/protocols/kafka/apis/groups';

const HELP = `Usage: node dist/bench/kafka.js [--quick] [--records N] [--rounds N] [--component embedded|memory_log] [--json FILE]
  kafkajs produce (1 KiB records, batches of 100, acks=1) and consume through
  Portway's Kafka listener (embedded log, interval fsync) beside a no-op sink.
`;

const RECORD = 1024;
const BATCH = 100;

// ------------------------------------------------------------------ the no-op sink

/** A broker that keeps only a counter per partition. Serves one kafkajs producer and one consumer. */
function runSink(port: number): void {
  const hw = new Map<string, bigint>();
  const template = buildBatch(encodeRecords(Array.from({ length: BATCH }, () => ({ key: null, value: Buffer.alloc(RECORD, 0x78) }))), BATCH);
  const serve = (socket: Socket) => {
    socket.setNoDelay(true);
    const out = (w: KafkaWriter) => {
      const parts = w.finish();
      socket.cork();
      for (const p of parts) socket.write(p);
      process.nextTick(() => socket.uncork());
    };
    const decoder = new KafkaFrameDecoder(
      {
        onFrameError: () => socket.destroy(),
        onFrame: (frame) => {
          const r = new KafkaReader(frame);
          const h = readHeaderStart(r);
          const w = new KafkaWriter(256).header(h.correlationId, false);
          if (!isSupported(h.apiKey, h.apiVersion)) return out(w.int16(35));
          readHeaderRest(r, h);
          const v = h.apiVersion;
          w.flex = h.flexible;
          switch (h.apiKey) {
            case ApiKey.ApiVersions:
              encodeApiVersionsResponse(w, v, 0);
              break;
            case ApiKey.Metadata: {
              const req = decodeMetadataRequest(r, v);
              const names = req.topics ?? [...new Set([...hw.keys()].map((k) => k.slice(0, k.lastIndexOf(':'))))];
              encodeMetadataResponse(w, v, { brokers: [{ nodeId: 1, host: '127.0.0.1', port }], clusterId: 'sink', controllerId: 1, topics: names.map((name) => ({ errorCode: 0, name, partitions: 1 })) });
              break;
            }
            case ApiKey.Produce: {
              const req = decodeProduceRequest(r, v);
              const res = req.topics.map((t) => ({
                name: t.name,
                partitions: t.partitions.map((p) => {
                  const key = `${t.name}:${p.index}`;
                  const base = hw.get(key) ?? 0n;
                  const count = p.records !== null && p.records.length >= 61 ? p.records.readInt32BE(57) : 0;
                  hw.set(key, base + BigInt(count));
                  return { index: p.index, errorCode: 0, baseOffset: base, logAppendTimeMs: -1n, logStartOffset: 0n };
                }),
              }));
              if (req.acks === 0) return;
              encodeProduceResponse(w, v, res, 0);
              break;
            }
            case ApiKey.Fetch: {
              const req = decodeFetchRequest(r, v);
              const topics = req.topics.map((t) => ({
                topic: t.topic,
                partitions: t.partitions.map((p) => {
                  const high = hw.get(`${t.topic}:${p.partition}`) ?? 0n;
                  const batches: Buffer[] = [];
                  let o = p.fetchOffset;
                  let bytes = 0;
                  while (o < high && bytes < p.partitionMaxBytes) {
                    const n = high - o >= BigInt(BATCH) ? BATCH : Number(high - o);
                    const b = n === BATCH ? Buffer.from(template) : buildBatch(encodeRecords(Array.from({ length: n }, () => ({ key: null, value: Buffer.alloc(RECORD, 0x78) }))), n);
                    b.writeBigInt64BE(o, 0);
                    batches.push(b);
                    bytes += b.length;
                    o += BigInt(n);
                  }
                  return { partition: p.partition, errorCode: 0, highWatermark: high, logStartOffset: 0n, batches };
                }),
              }));
              encodeFetchResponse(w, v, topics, 0);
              break;
            }
            case ApiKey.ListOffsets: {
              const req = decodeListOffsetsRequest(r, v);
              encodeListOffsetsResponse(
                w,
                v,
                req.topics.map((t) => ({
                  name: t.name,
                  partitions: t.partitions.map((p) => ({ partition: p.partition, errorCode: 0, timestamp: -1n, offset: p.timestamp === -1n ? (hw.get(`${t.name}:${p.partition}`) ?? 0n) : 0n })),
                })),
              );
              break;
            }
            case ApiKey.FindCoordinator:
              encodeFindCoordinatorResponse(w, v, 0, 1, '127.0.0.1', port);
              break;
            case ApiKey.JoinGroup: {
              const req = decodeJoinGroupRequest(r, v);
              const id = req.memberId || 'sink-member';
              encodeJoinGroupResponse(w, v, { errorCode: 0, generationId: 1, protocolName: req.protocols[0]!.name, leader: id, memberId: id, members: [{ memberId: id, groupInstanceId: null, metadata: req.protocols[0]!.metadata }] });
              break;
            }
            case ApiKey.SyncGroup: {
              const req = decodeSyncGroupRequest(r, v);
              encodeSyncGroupResponse(w, v, 0, req.assignments.find((a) => a.memberId === req.memberId)?.assignment ?? Buffer.alloc(0));
              break;
            }
            case ApiKey.Heartbeat:
              encodeErrorOnlyResponse(w, v, 0);
              break;
            case ApiKey.LeaveGroup:
              encodeLeaveGroupResponse(w, v, 0, []);
              break;
            case ApiKey.OffsetCommit: {
              const req = decodeOffsetCommitRequest(r, v);
              encodeOffsetCommitResponse(
                w,
                v,
                req.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partition: p.partition, errorCode: 0 })) })),
              );
              break;
            }
            case ApiKey.OffsetFetch: {
              const req = decodeOffsetFetchRequest(r, v);
              encodeOffsetFetchResponse(
                w,
                v,
                (req.topics ?? []).map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partition: p, offset: -1n, metadata: '', errorCode: 0 })) })),
                0,
              );
              break;
            }
            default:
              w.int16(35);
          }
          out(w);
        },
      },
      100 * 1024 * 1024,
    );
    socket.on('data', (c: Buffer) => decoder.push(c));
    socket.on('error', () => socket.destroy());
  };
  createServer(serve).listen(port, '127.0.0.1');
}

// ------------------------------------------------------------------ the load

interface PathResult {
  produceRecordsPerSec: number[];
  consumeRecordsPerSec: number[];
  targetCpuProduce: number[];
  clientCpuProduce: number[];
  error?: string;
}

interface Result {
  machine: string;
  records: number;
  rounds: number;
  component: string;
  paths: Partial<Record<'sink' | 'portway', PathResult>>;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
};

async function produceAndConsume(broker: string, pid: number, topic: string, records: number, into: PathResult): Promise<void> {
  const kafka = new Kafka({ brokers: [broker], clientId: 'bench', logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }).catch(() => false);
  await admin.disconnect();
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  const value = Buffer.alloc(RECORD, 0x78);
  const messages = Array.from({ length: BATCH }, () => ({ value }));
  await producer.send({ topic, acks: 1, messages }); // warm-up: metadata, connections, JIT
  const sends = Math.ceil(records / BATCH);
  let next = 1;
  const cpu = new CpuMeter([pid]);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  // A few sends in flight at once, as an application with concurrent producers has.
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < sends + 1) {
        next++;
        await producer.send({ topic, acks: 1, messages });
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const [targetCpu] = cpu.stop();
  const cu = process.cpuUsage(c0);
  into.produceRecordsPerSec.push((sends * BATCH) / secs);
  into.targetCpuProduce.push(targetCpu!);
  into.clientCpuProduce.push((100 * (cu.user + cu.system)) / 1e6 / secs);
  await producer.disconnect();

  const total = (sends + 1) * BATCH;
  const consumer = kafka.consumer({ groupId: `bench-${topic}`, maxBytesPerPartition: 4 << 20, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let got = 0;
  let first = 0;
  await new Promise<void>((resolve) => {
    void consumer.run({
      autoCommitInterval: 1000,
      eachBatch: async ({ batch }) => {
        if (first === 0) first = performance.now();
        got += batch.messages.length;
        if (got >= total) resolve();
      },
    });
  });
  into.consumeRecordsPerSec.push((got - BATCH) / ((performance.now() - first) / 1000));
  await consumer.disconnect();
}

async function startSink(children: Children): Promise<{ child: Child; broker: string }> {
  const port = await freePort();
  const child = children.spawn('sink', process.execPath, [__filename, '--sink', String(port)]);
  await waitForPort(port, 10_000, child);
  return { child, broker: `127.0.0.1:${port}` };
}

async function startPortway(children: Children, dir: string, component: string): Promise<{ child: Child; broker: string }> {
  const port = await freePort();
  const admin = await freePort();
  const cfg = join(dir, 'portway.yaml');
  writeFileSync(
    cfg,
    `admin: { address: 127.0.0.1:${admin} }
log: { level: warn }
listeners:
  - name: kafka
    address: 127.0.0.1:${port}
    protocol: kafka
    options: { group: { initial_rebalance_delay: 0s } }
    routes: [{ cluster: log }]
clusters:
  - name: log
    component: ${component === 'memory_log' ? '{ type: memory_log }' : `{ type: embedded, data_dir: ${join(dir, 'data')}, fsync: interval }`}
`,
  );
  const child = children.spawn('portway', process.execPath, [...PORTWAY_NODE_FLAGS, PORTWAY_CLI, 'run', '-c', cfg]);
  await waitForHttp200(`http://127.0.0.1:${admin}/ready`, 15_000, child);
  return { child, broker: `127.0.0.1:${port}` };
}

interface Opts {
  quick: boolean;
  /** The log behind Portway: embedded (default) or memory_log. */
  component: string;
  records: number;
  rounds: number;
  json: string | null;
}

async function run(o: Opts): Promise<Result> {
  const children = new Children();
  const dir = mkdtempSync(join(tmpdir(), 'portway-bench-kafka-'));
  const result: Result = { machine: machineLine(), records: o.records, rounds: o.rounds, component: o.component, paths: {} };
  try {
    const sink = await startSink(children);
    const pw = await startPortway(children, dir, o.component);
    const targets = { sink, portway: pw } as const;
    // Warm-up (not recorded): kafkajs's encoders and decoders get compiled before anything is measured.
    for (const name of ['sink', 'portway'] as const) {
      say(`bench kafka: warm-up ${name}`);
      const scratch: PathResult = { produceRecordsPerSec: [], consumeRecordsPerSec: [], targetCpuProduce: [], clientCpuProduce: [] };
      await produceAndConsume(targets[name].broker, targets[name].child.pid, 'warm-up', Math.min(5000, o.records), scratch);
    }
    for (let round = 0; round < o.rounds; round++) {
      // Alternate which path goes first, so neither always runs on a warmer client.
      const order = round % 2 === 0 ? (['portway', 'sink'] as const) : (['sink', 'portway'] as const);
      for (const name of order) {
        const into = (result.paths[name] ??= { produceRecordsPerSec: [], consumeRecordsPerSec: [], targetCpuProduce: [], clientCpuProduce: [] });
        if (into.error) continue;
        say(`bench kafka: round ${round + 1}/${o.rounds} ${name}`);
        try {
          await produceAndConsume(targets[name].broker, targets[name].child.pid, `bench-${round}`, o.records, into);
        } catch (e) {
          into.error = (e as Error).message;
        }
      }
    }
  } finally {
    await children.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

function report(r: Result): string {
  const mbs = (recs: number) => (recs * RECORD) / (1024 * 1024);
  const s = r.paths.sink;
  const p = r.paths.portway;
  const row = (label: string, f: (x: PathResult) => number, unit: (n: number) => string = (n) => fmt(n)) => [
    label,
    s && !s.error ? unit(f(s)) : 'failed',
    p && !p.error ? unit(f(p)) : 'failed',
    s && p && !s.error && !p.error ? ratio(f(p), f(s)) : '-',
  ];
  const lines = [
    `Kafka: kafkajs 2.2.4, ${RECORD} B records, batches of ${BATCH}, acks=1, 4 sends in flight, 1 partition; ${r.records} records per round, median of ${r.rounds} round(s)`,
    r.machine,
    table(
      ['', 'no-op sink (ceiling)', r.component === 'memory_log' ? 'portway (memory_log)' : 'portway (embedded, fsync interval)', 'portway / sink'],
      [
        row('produce records/s', (x) => median(x.produceRecordsPerSec)),
        row('produce MB/s', (x) => mbs(median(x.produceRecordsPerSec))),
        row('consume records/s (group, end to end)', (x) => median(x.consumeRecordsPerSec)),
        row('consume MB/s', (x) => mbs(median(x.consumeRecordsPerSec))),
        row('target CPU % while producing', (x) => median(x.targetCpuProduce)),
        row('client (kafkajs) CPU % while producing', (x) => median(x.clientCpuProduce)),
      ],
    ),
  ];
  for (const [k, v] of Object.entries(r.paths)) if (v?.error) lines.push(`${k} failed: ${v.error}`);
  if (s && p && !s.error && !p.error) {
    const share = median(p.produceRecordsPerSec) / median(s.produceRecordsPerSec);
    lines.push(`goal: portway produce >= 70% of the sink: ${(share * 100).toFixed(0)}% ${share >= 0.7 ? '(met)' : '(not met)'}`);
  }
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--sink') {
    runSink(Number(argv[1]));
    return -1;
  }
  return benchMain<Opts, Result>(argv, {
    help: HELP,
    parse: (args) => {
      const parsed = parseBenchArgs(args, { records: { type: 'string' }, rounds: { type: 'string' }, component: { type: 'string' } }, HELP);
      if (parsed === null) return null;
      const v = parsed.values as { records?: string; rounds?: string; component?: string; json?: string };
      if (v.component !== undefined && v.component !== 'embedded' && v.component !== 'memory_log') throw new Error('--component must be embedded or memory_log');
      return {
        quick: parsed.quick,
        records: Number(v.records ?? (parsed.quick ? 20_000 : 200_000)),
        rounds: Number(v.rounds ?? (parsed.quick ? 1 : 3)),
        component: v.component ?? 'embedded',
        json: v.json ?? null,
      };
    },
    run,
    report,
  });
}

runAsMain(main);
