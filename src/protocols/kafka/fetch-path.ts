/**
 * The fetch path: each topic is routed and passed through the filter chain
 * (attributes topic, client_id, api=fetch), then every partition is read
 * within the request's byte limits; below min_bytes the request waits on
 * the logs (PartitionLog.waitFor) until data arrives or max_wait passes.
 * A rate-limited topic gets no records and a throttle time, as Kafka quotas do.
 */
import type { Exchange } from '../../exchange';
import { ErrorCode, toProxyError } from '../../errors';
import type { Verdict } from '../../filter';
import type { PartitionLog } from '../../components/log-component';
import { KafkaError, componentError, kafkaErrorOf, throttleOf } from './error-codes';
import type { TopicPlace } from './listener';
import type { RequestHeader } from './request-header';
import type { Reply, RequestContext } from './session';
import { encodeFetchResponse, type FetchPartitionResult, type FetchRequest, type FetchTopicResult } from './apis/fetch';

interface FetchPart {
  log: PartitionLog | null;
  offset: bigint;
  maxBytes: number;
  result: FetchPartitionResult;
}

interface FetchTopicState {
  place: TopicPlace | null;
  ex: Exchange | null;
  /** Set when the filter chain refused the topic. */
  refused: boolean;
  parts: FetchPart[];
  result: FetchTopicResult;
}

function isThenable<T>(v: unknown): v is Promise<T> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

const noop = (): void => {};

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

export function serveFetch(ctx: RequestContext, h: RequestHeader, req: FetchRequest): Reply | Promise<Reply> {
  const l = ctx.l;
  const topics: FetchTopicState[] = [];
  const verdicts: Promise<void>[] = [];
  let throttle = 0;
  for (const t of req.topics) {
    const place = l.place(t.topic);
    const result: FetchTopicResult = { topic: t.topic, partitions: [] };
    const st: FetchTopicState = { place, ex: null, refused: false, parts: [], result };
    for (const p of t.partitions) {
      const r: FetchPartitionResult = { partition: p.partition, errorCode: KafkaError.NONE, highWatermark: -1n, logStartOffset: -1n, batches: [] };
      result.partitions.push(r);
      const log = place === null ? undefined : place.log.partition(place.stored, p.partition);
      if (log === undefined) r.errorCode = KafkaError.UNKNOWN_TOPIC_OR_PARTITION;
      st.parts.push({ log: log ?? null, offset: p.fetchOffset, maxBytes: Math.min(p.partitionMaxBytes, req.maxBytes), result: r });
    }
    topics.push(st);
    if (l.plain || place === null) continue;
    const ex = l.exchange(ctx.socket, 'fetch', t.topic, h.clientId);
    st.ex = ex;
    const apply = (v: Verdict): void => {
      if (v === undefined) return;
      st.refused = true;
      ex.error = v.error;
      l.stats.countError(v.error.code);
      if (v.error.code === ErrorCode.RateLimited) {
        // Kafka's answer to a fetch over quota: no data and a throttle time, not an error.
        throttle = Math.max(throttle, throttleOf(v.error));
      } else {
        const code = kafkaErrorOf(v.error);
        for (const p of st.parts) if (p.result.errorCode === KafkaError.NONE) p.result.errorCode = code;
      }
    };
    const verdict = l.chain.runRequest(ex);
    if (isThenable<Verdict>(verdict)) verdicts.push(verdict.then(apply, (e) => apply({ error: toProxyError(e) })));
    else apply(verdict);
  }
  const run = async (): Promise<Reply> => {
    const deadline = performance.now() + Math.max(0, req.maxWaitMs);
    for (;;) {
      const total = await readAll(ctx, topics, req.maxBytes);
      const left = deadline - performance.now();
      if (total < 0 || total >= req.minBytes || left <= 0 || throttle > 0) break;
      const waiting: Promise<boolean>[] = [];
      for (const t of topics) {
        if (t.refused) continue;
        for (const p of t.parts) {
          if (p.log === null || p.result.errorCode !== KafkaError.NONE) continue;
          // Wait for data beyond what this pass saw (not beyond the fetch offset: that may be below it already).
          const seen = p.result.highWatermark > p.offset ? p.result.highWatermark : p.offset;
          waiting.push(p.log.waitFor(seen, left));
        }
      }
      if (waiting.length === 0 || !(await Promise.race(waiting))) {
        if (waiting.length === 0) await sleep(left);
        else break;
      }
      if (ctx.socket.destroyed) break;
    }
    for (const t of topics) if (t.ex !== null) l.chain.complete(t.ex);
    if (throttle > 0 && req.maxWaitMs > 0) await sleep(Math.min(throttle, req.maxWaitMs));
    let bytes = 0;
    for (const t of topics) for (const p of t.result.partitions) for (const b of p.batches) bytes += b.length;
    l.fetchedBytes.value += bytes;
    const w = ctx.writer(h, 128 + topics.length * 64);
    encodeFetchResponse(
      w,
      h.apiVersion,
      topics.map((t) => t.result),
      throttle,
    );
    return w.finish();
  };
  return verdicts.length > 0 ? Promise.all(verdicts).then(run) : run();
}

/**
 * Reads every partition once, within maxBytes overall (the first batch
 * found is returned whatever its size, so a consumer always progresses).
 * Returns the bytes found, or -1 when some partition has an error to report.
 */
async function readAll(ctx: RequestContext, topics: FetchTopicState[], maxBytes: number): Promise<number> {
  const l = ctx.l;
  let error = false;
  const reads: Promise<void>[] = [];
  const order: FetchPart[] = [];
  for (const t of topics) {
    if (t.refused) continue;
    const readTopic = (): Promise<void> => {
      const ps: Promise<void>[] = [];
      for (const p of t.parts) {
        const log = p.log;
        if (log === null || p.result.errorCode !== KafkaError.NONE) continue;
        const hw = log.highWatermark();
        const start = log.logStartOffset();
        p.result.highWatermark = hw;
        p.result.logStartOffset = start;
        p.result.batches = [];
        if (p.offset > hw || p.offset < start) {
          p.result.errorCode = KafkaError.OFFSET_OUT_OF_RANGE;
          continue;
        }
        if (p.offset === hw) continue;
        order.push(p);
        ps.push(
          log.read(p.offset, p.maxBytes).then((res) => {
            p.result.highWatermark = res.highWatermark;
            p.result.logStartOffset = res.logStartOffset;
            p.result.batches = res.batches.map((b) => b.bytes);
          }),
        );
      }
      return ps.length === 0 ? Promise.resolve() : Promise.all(ps).then(noop, (e) => Promise.reject(componentError(e)));
    };
    if (t.ex !== null && !l.chain.direct) {
      const ex = t.ex;
      reads.push(
        l.invoke(ex, readTopic).catch((e) => {
          const pe = toProxyError(e);
          ex.error = pe;
          l.stats.countError(pe.code);
          const code = kafkaErrorOf(pe);
          for (const p of t.parts) if (p.result.errorCode === KafkaError.NONE) p.result.errorCode = code;
        }),
      );
    } else {
      reads.push(
        readTopic().catch((e) => {
          const code = kafkaErrorOf(toProxyError(e));
          for (const p of t.parts) if (p.result.errorCode === KafkaError.NONE) p.result.errorCode = code;
        }),
      );
    }
  }
  await Promise.all(reads);
  let total = 0;
  for (const p of order) {
    const bs = p.result.batches;
    let keep = 0;
    for (; keep < bs.length; keep++) {
      const n = bs[keep]!.length;
      if (total > 0 && total + n > maxBytes) break;
      total += n;
    }
    if (keep < bs.length) bs.length = keep;
  }
  for (const t of topics) for (const p of t.parts) if (p.result.errorCode !== KafkaError.NONE) error = true;
  return error ? -1 : total;
}

