/**
 * The produce path: each topic of a request is routed (topic routes, or the
 * filter chain with attributes topic, client_id, api=produce), its batches
 * checked (framing, magic, CRC-32C, compression) and appended to the
 * partition logs, through the around-policies when there are any.
 *
 * Appends of one connection keep the order the requests came in: they are
 * issued synchronously while decoding, and when a filter has to wait (an
 * async rate limit) later produce requests of the connection wait for it.
 */
import type { Exchange } from '../../exchange';
import { toProxyError, type ProxyError } from '../../errors';
import type { Verdict } from '../../filter';
import { KafkaError, componentError, kafkaErrorOf, throttleOf } from './error-codes';
import { checkRecords } from './record-batch';
import type { TopicPlace } from './listener';
import type { RequestHeader } from './request-header';
import type { Reply, RequestContext } from './session';
import { encodeProduceResponse, type ProducePartitionResult, type ProduceRequest, type ProduceTopic, type ProduceTopicResult } from './apis/produce';

function isThenable<T>(v: unknown): v is Promise<T> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

function setAll(parts: { errorCode: number }[], code: number): void {
  for (const p of parts) p.errorCode = code;
}

export class ProducePath {
  /** Set while a produce request waits for an async filter: later produce requests wait for it. */
  private gate: Promise<void> | null = null;

  constructor(private readonly ctx: RequestContext) {}

  produce(h: RequestHeader, req: ProduceRequest): Reply | Promise<Reply> {
    const gate = this.gate;
    if (gate === null) return this.produceNow(h, req);
    const out = gate.then(() => this.produceNow(h, req));
    this.setGate(out);
    return out;
  }

  private setGate(p: Promise<unknown>): void {
    const g: Promise<void> = p.then(
      () => {
        if (this.gate === g) this.gate = null;
      },
      () => {
        if (this.gate === g) this.gate = null;
      },
    );
    this.gate = g;
  }

  private produceNow(h: RequestHeader, req: ProduceRequest): Reply | Promise<Reply> {
    const l = this.ctx.l;
    const results: ProduceTopicResult[] = [];
    const waits: Promise<unknown>[] = [];
    let throttle = 0;
    const badAcks = req.acks !== 0 && req.acks !== 1 && req.acks !== -1;
    for (const t of req.topics) {
      const parts: ProducePartitionResult[] = t.partitions.map((p) => ({ index: p.index, errorCode: 0, baseOffset: -1n, logAppendTimeMs: -1n, logStartOffset: -1n }));
      results.push({ name: t.name, partitions: parts });
      if (badAcks) {
        setAll(parts, KafkaError.INVALID_REQUIRED_ACKS);
        continue;
      }
      const place = l.place(t.name);
      if (place === null || place.log.topic(place.stored) === undefined) {
        setAll(parts, KafkaError.UNKNOWN_TOPIC_OR_PARTITION);
        continue;
      }
      if (l.plain) {
        const w = this.appendTopic(place, t, parts);
        if (w !== null) waits.push(w);
        continue;
      }
      const ex = l.exchange(this.ctx.socket, 'produce', t.name, h.clientId);
      const verdict = l.chain.runRequest(ex);
      const go = (v: Verdict): Promise<unknown> | null => {
        if (v !== undefined) {
          throttle = Math.max(throttle, throttleOf(v.error));
          this.refuse(ex, v.error, parts);
          return null;
        }
        return this.produceVia(ex, place, t, parts);
      };
      if (isThenable<Verdict>(verdict)) {
        // Later produce requests wait until this one's appends are issued.
        const issued = verdict.then(go, (e) => {
          this.refuse(ex, toProxyError(e), parts);
          return null;
        });
        this.setGate(issued);
        waits.push(issued.then((w) => w));
      } else {
        const w = go(verdict);
        if (w !== null) waits.push(w);
      }
    }
    if (req.acks === 0) return waits.length > 0 ? Promise.all(waits).then(() => []) : [];
    const encode = (): Reply => {
      const w = this.ctx.writer(h, 64 + results.length * 64);
      encodeProduceResponse(w, h.apiVersion, results, throttle);
      return w.finish();
    };
    return waits.length === 0 ? encode() : Promise.all(waits).then(encode);
  }

  /** The filter chain passed: the appends, through the around-policies when there are any. */
  private produceVia(ex: Exchange, place: TopicPlace, t: ProduceTopic, parts: ProducePartitionResult[]): Promise<unknown> | null {
    const l = this.ctx.l;
    if (l.chain.direct) {
      const w = this.appendTopic(place, t, parts);
      if (w === null) {
        l.chain.complete(ex);
        return null;
      }
      return w.then((err) => {
        if (err !== null) ex.error = err;
        l.chain.complete(ex);
      });
    }
    return l
      .invoke(ex, () => {
        ex.attempts++;
        const w = this.appendTopic(place, t, parts);
        return w === null ? Promise.resolve(null) : w.then((err) => (err !== null ? Promise.reject(err) : null));
      })
      .then(
        () => l.chain.complete(ex),
        (e) => {
          const pe = toProxyError(e);
          this.refuse(ex, pe, parts);
        },
      );
  }

  private refuse(ex: Exchange, err: ProxyError, parts: { errorCode: number }[]): void {
    ex.error = err;
    this.ctx.l.stats.countError(err.code);
    const code = kafkaErrorOf(err);
    for (const p of parts) if (p.errorCode === KafkaError.NONE) p.errorCode = code;
    this.ctx.l.chain.complete(ex);
  }

  /**
   * Checks and appends every partition's batches of one topic. The appends
   * are issued before this returns (so they keep the request order); the
   * promise settles with the first append failure, or null.
   */
  private appendTopic(place: TopicPlace, t: ProduceTopic, parts: ProducePartitionResult[]): Promise<ProxyError | null> | null {
    const l = this.ctx.l;
    let waits: Promise<void>[] | null = null;
    let failure: ProxyError | null = null;
    for (let i = 0; i < t.partitions.length; i++) {
      const p = t.partitions[i]!;
      const res = parts[i]!;
      const log = place.log.partition(place.stored, p.index);
      if (log === undefined) {
        res.errorCode = KafkaError.UNKNOWN_TOPIC_OR_PARTITION;
        continue;
      }
      if (p.records === null) {
        res.errorCode = KafkaError.INVALID_RECORD;
        continue;
      }
      const c = checkRecords(p.records);
      if (c.error !== KafkaError.NONE) {
        res.errorCode = c.error;
        l.corrupt.value++;
        l.log.debug({ topic: t.name, partition: p.index, reason: c.reason, client: this.ctx.socket.remoteAddress }, 'produced record batch refused');
        continue;
      }
      l.producedRecords.value += c.records;
      l.producedBytes.value += p.records.length;
      waits ??= [];
      for (let b = 0; b < c.batches.length; b++) {
        const first = b === 0;
        waits.push(
          log.append(c.batches[b]!).then(
            (a) => {
              if (first) {
                res.baseOffset = a.baseOffset;
                res.logStartOffset = a.logStartOffset;
              }
            },
            (e) => {
              const pe = componentError(e);
              failure ??= pe;
              res.errorCode = kafkaErrorOf(pe);
              res.baseOffset = -1n;
            },
          ),
        );
      }
    }
    if (waits === null) return null;
    return Promise.all(waits).then(() => failure);
  }

}
