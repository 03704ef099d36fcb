/**
 * Nothing acknowledged is lost: Portway (the CLI, a child process) is killed
 * with SIGKILL while a kafkajs producer is sending with acks=all; after a
 * restart on the same data directory every acknowledged record is consumed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kafkaClient } from '../helpers/kafka';
import { runCli, tempDir, waitReady, type Child } from '../helpers/portway';
import { freePort, sleep, waitFor } from '../helpers/net';

test('SIGKILL during production, restart: every acknowledged record is there', async () => {
  const dir = tempDir('portway-kafka-kill-');
  const port = await freePort();
  const adminPort = await freePort();
  const cfg = join(dir, 'portway.yaml');
  writeFileSync(
    cfg,
    `admin: { address: 127.0.0.1:${adminPort} }
log: { level: warn }
listeners:
  - name: kafka
    address: 127.0.0.1:${port}
    protocol: kafka
    options: { topics: [{ name: crash, partitions: 3 }] }
    routes: [{ cluster: log }]
clusters:
  - name: log
    component: { type: embedded, data_dir: ${join(dir, 'data')}, fsync: interval, fsync_interval: 50ms }
`,
  );
  let child: Child | null = null;
  const start = async (): Promise<Child> => {
    const c = runCli(['run', '-c', cfg]);
    await waitReady(`http://127.0.0.1:${adminPort}`, 15_000);
    return c;
  };
  try {
    child = await start();
    const broker = `127.0.0.1:${port}`;
    const producer = kafkaClient(broker, { retry: { retries: 0 } }).producer();
    await producer.connect();
    const acked: string[] = [];
    let sent = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const messages = Array.from({ length: 10 }, (_, i) => ({ key: `k${(sent + i) % 7}`, value: `r-${sent + i}` }));
        sent += 10;
        try {
          await producer.send({ topic: 'crash', acks: -1, messages });
          acked.push(...messages.map((m) => m.value));
        } catch {
          return;
        }
      }
    })();
    await waitFor(async () => acked.length >= 300, 20_000, '300 records acknowledged');
    child.proc.kill('SIGKILL');
    await child.exited;
    stop = true;
    await loop;
    await producer.disconnect().catch(() => {});
    assert.ok(acked.length >= 300);

    child = await start();
    const consumer = kafkaClient(broker).consumer({ groupId: 'after-crash', maxWaitTimeInMs: 100 });
    const seen = new Set<string>();
    await consumer.connect();
    await consumer.subscribe({ topic: 'crash', fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => void seen.add(message.value!.toString()) });
    await waitFor(async () => acked.every((v) => seen.has(v)), 30_000, `all ${acked.length} acknowledged records (have ${seen.size})`);
    await sleep(200);
    await consumer.disconnect();
    for (const v of seen) assert.match(v, /^r-\d+$/, 'only records that were sent');
  } finally {
    if (child !== null) {
      child.proc.kill('SIGKILL');
      await child.exited;
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
});
